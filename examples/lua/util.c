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
	return vmc_parse_size(s, out) ? -1 : 0;
}
