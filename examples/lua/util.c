/*
 * util.c - small things vmc-lua's files share: the clock, the process's
 * page faults, parsing sizes and counts, and quantiles of samples.
 */
#include "vmclua.h"

#include <stdlib.h>
#include <sys/resource.h>
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

uint64_t vl_minflt(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) ? 0 : (uint64_t)ru.ru_minflt;
}

int vl_parse_size(const char *s, uint64_t *out)
{
	return vmc_parse_size(s, out) ? -1 : 0;
}

int vl_parse_count(const char *s, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	unsigned long long v = strtoull(s, &end, 10), m = 1;
	switch (*end) {
	case 'k': case 'K': m = 1000; end++; break;
	case 'm': case 'M': m = 1000000; end++; break;
	case 'g': case 'G': m = 1000000000; end++; break;
	}
	if (*end || v > ~0ull / m)
		return -1;
	*out = v * m;
	return 0;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double vl_quantile(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, cmpd);
	double pos = p * (double)(n - 1);
	size_t i = (size_t)pos;
	return i + 1 < n ? v[i] + (pos - (double)i) * (v[i + 1] - v[i]) : v[n - 1];
}
