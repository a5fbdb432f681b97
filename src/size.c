/*
 * size.c - sizes as people write them.  Profile values, vmcctl arguments
 * and the examples' options all take byte counts like "512M" or "8GiB":
 * decimal digits and an optional unit, in powers of 1024.  This is the one
 * parser for all of them, exported so that programs built on vmc read sizes
 * exactly as its profile does.  It is strict on purpose: no sign, no
 * fraction, no white space, no hex, and a value that does not fit in 64
 * bits is an error rather than a wrapped-around number.  The other way
 * round, vmc_size_str writes a size for a message: "64 KiB", "1.5 GiB".
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>

static int lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* The shift of unit letter ch (k, m, g, t in any case); 0 if none. */
static unsigned unit_shift(char ch)
{
	switch (lower(ch)) {
	case 'k': return 10;
	case 'm': return 20;
	case 'g': return 30;
	case 't': return 40;
	}
	return 0;
}

int vmc_parse_size(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t v = 0;
	unsigned shift;
	int over = 0;   /* the digits alone do not fit */

	if (!s || !out)
		return vmc_fail(EINVAL, "size: %s is NULL", !s ? "the string" : "out");
	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		over |= v > (UINT64_MAX - d) / 10;
		v = v * 10 + d;
	}
	if ((shift = unit_shift(*p)))
		p++;
	if (shift && lower(p[0]) == 'i' && lower(p[1]) == 'b')
		p += 2;
	else if (lower(*p) == 'b')
		p++;
	if (*p)
		goto bad;
	if (over || v > UINT64_MAX >> shift)
		return vmc_fail(ERANGE, "size \"%.64s\" is too large: sizes go up to "
				"2^64-1 bytes (16 EiB)", s);
	*out = v << shift;
	return 0;
bad:
	return vmc_fail(EINVAL, "\"%.64s\" is not a size: expected a number of bytes with an "
			"optional K, M, G or T suffix (powers of 1024), e.g. 4096, 512M or 8GiB", s);
}

const char *vmc_size_str(uint64_t bytes, char buf[VMC_SIZE_STR])
{
	static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (u < 4 && bytes >> (10 * (u + 1)))
		u++;
	if (!u || !(bytes & ((1ull << (10 * u)) - 1)))
		snprintf(buf, VMC_SIZE_STR, "%llu %s", (unsigned long long)(bytes >> (10 * u)),
			 unit[u]);
	else
		snprintf(buf, VMC_SIZE_STR, "%.1f %s", (double)bytes / (double)(1ull << (10 * u)),
			 unit[u]);
	return buf;
}
