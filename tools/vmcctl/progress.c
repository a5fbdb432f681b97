/*
 * progress.c - a progress bar for funding.  Funding a large pool can take
 * seconds (4 KiB tmpfs pages are zeroed one by one), and a silent command
 * looks hung.  The library reports progress through a callback - the one
 * in vmc_config_t at create, the one vmc_set_progress installs on a handle
 * for balloon deflates; this one stays quiet for the first second, so that
 * quick runs print nothing, then redraws one line on stderr in place:
 *
 *     [############..................]  37%  1.2/3.0 GiB
 *
 * and ends the line when done reaches total (or, if funding fails part
 * way, when the caller calls progress_end).  Callers install it only when
 * stderr is a terminal.
 */
#include "vmcctl.h"

#include <stdio.h>
#include <string.h>

#define BAR_WIDTH 30

void progress_begin(struct progress *p)
{
	memset(p, 0, sizeof *p);
	clock_gettime(CLOCK_MONOTONIC, &p->start);
}

static double elapsed(const struct progress *p)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - p->start.tv_sec) +
	       (double)(now.tv_nsec - p->start.tv_nsec) / 1e9;
}

/* "1.2/3.0 GiB": both in the unit of total. */
static void amounts(uint64_t done, uint64_t total, char *buf, size_t n)
{
	const char *unit;
	double scale = (double)(1ull << size_unit(total, &unit));

	snprintf(buf, n, "%.1f/%.1f %s", (double)done / scale, (double)total / scale, unit);
}

void progress_update(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	char bar[BAR_WIDTH + 1], amt[64];
	unsigned filled, pct;

	if (p->finished || !total || (!p->drawn && elapsed(p) < 1.0))
		return;
	if (done > total)
		done = total;
	filled = (unsigned)(done * BAR_WIDTH / total);
	pct = (unsigned)(done * 100 / total);
	memset(bar, '#', filled);
	memset(bar + filled, '.', BAR_WIDTH - filled);
	bar[BAR_WIDTH] = 0;
	amounts(done, total, amt, sizeof amt);
	fprintf(stderr, "\r[%s] %3u%%  %s", bar, pct, amt);
	p->drawn = 1;
	if (done == total) {
		fputc('\n', stderr);
		p->finished = 1;
	}
	fflush(stderr);
}

void progress_end(struct progress *p)
{
	if (p->drawn && !p->finished) {
		fputc('\n', stderr);
		p->finished = 1;
	}
}
