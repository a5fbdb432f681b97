/*
 * util.c - small things vmc-lua's files share: the clock, the process's
 * page faults, parsing sizes and counts, and quantiles of samples.
 *
 * Page faults are the ones the CPU took (perf's software page-fault event,
 * which counts traps only).  getrusage's ru_minflt would also count the
 * pages an attach populates (MADV_POPULATE_WRITE runs the fault handler
 * without a trap), and those cost no trap; it is the fallback where perf
 * events are not allowed (kernel.perf_event_paranoid).
 */
#include "vmclua.h"

#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

/* The counter of this process (-1: perf refused; a forked child opens its own). */
static int   pf_fd = -1;
static pid_t pf_pid;

static int pf_counter(void)
{
	pid_t me = getpid();
	if (pf_pid == me)
		return pf_fd;
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.type = PERF_TYPE_SOFTWARE;
	a.size = sizeof a;
	a.config = PERF_COUNT_SW_PAGE_FAULTS;
	a.exclude_hv = 1;
	if (pf_pid && pf_fd >= 0)
		close(pf_fd);                    /* the parent's counter, inherited */
	pf_fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	pf_pid = me;
	return pf_fd;
}

uint64_t vl_minflt(void)
{
	int fd = pf_counter();
	uint64_t n;
	if (fd >= 0 && read(fd, &n, sizeof n) == (ssize_t)sizeof n)
		return n;
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) ? 0 : (uint64_t)ru.ru_minflt;
}

const char *vl_fault_source(void)
{
	return pf_counter() >= 0 ? "trap faults (perf)" : "minor faults (getrusage)";
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
