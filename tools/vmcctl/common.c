/*
 * common.c - errors and sizes, the same in every subcommand.  An error is
 * one line on stderr, `vmcctl: WHAT: MESSAGE`, where MESSAGE is the
 * library's own sentence for the failure (vmc_errmsg(), which says what to
 * do about it) or, if it left none, the name of the return code; the exit
 * code is then 1.  Sizes are read and written in powers of 1024, the way
 * vmc's profile parameters are: read by the library's own parser
 * (vmc_parse_size: 512M, 2G, 1GiB), written as "256 MiB" or "1.0 GiB".
 */
#include "vmcctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int fail(int err, const char *what_fmt, ...)
{
	const char *msg = vmc_errmsg();
	va_list ap;

	fprintf(stderr, "vmcctl: ");
	va_start(ap, what_fmt);
	vfprintf(stderr, what_fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", msg && *msg ? msg : vmc_strerror(err));
	return EXIT_ERR;
}

int open_container(const char *name, vmc_t **out)
{
	int err = vmc_open(name, out);
	return err ? fail(err, "open %s", name) : 0;
}

int close_container(vmc_t *c, const char *name, int rc)
{
	int err = vmc_close(c);
	if (err) {
		fail(err, "close %s", name);
		return rc ? rc : EXIT_ERR;
	}
	return rc;
}

/* ----------------------------------------------------------------- sizes */

int size_arg(const struct vmcctl_cmd *cmd, const char *what, const char *s, uint64_t *out)
{
	if (vmc_parse_size(s, out))
		return usage_error(cmd, "bad %s: %s", what, vmc_errmsg());
	return 0;
}

int count_parse(const char *s, long *out)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

unsigned size_unit(uint64_t bytes, const char **name)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned u = 0;

	while (u + 1 < sizeof units / sizeof units[0] && bytes >> (10 * (u + 1)))
		u++;
	*name = units[u];
	return 10 * u;
}

const char *fund_policy_name(int policy)
{
	return policy == VMC_FUND_ONDEMAND ? "ondemand" : "upfront";
}

const char *size_str(uint64_t bytes, char buf[SIZE_BUF])
{
	const char *unit;
	unsigned shift = size_unit(bytes, &unit);
	double v = (double)bytes / (double)(1ull << shift);

	if (!shift)
		snprintf(buf, SIZE_BUF, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, SIZE_BUF, v < 10 ? "%.1f %s" : "%.0f %s", v, unit);
	return buf;
}
