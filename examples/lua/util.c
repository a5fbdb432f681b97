/*
 * util.c - clock and size parsing shared by vmc-lua's files.
 */
#include "vmclua.h"

#include <stdlib.h>
#include <time.h>

uint64_t vl_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

double vl_now(void)
{
	return (double)vl_now_ns() * 1e-9;
}

int vl_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s)
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end || end == s)
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}
