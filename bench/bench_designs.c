/*
 * bench_designs.c - the tenant-switch designs of issue 10, measured side by
 * side with the bare system calls each one makes, so that the choice rests
 * on figures from this machine and not on guesses.  No vmc here: each
 * design is the sequence of calls it would make, on one memfd of 4 KiB
 * shmem holding T tenants of F bytes each (written, so the pages exist).
 * A "request" attaches tenant i, writes one word in each of its first W
 * pages, and detaches; tenants are visited round robin (every switch goes
 * to another tenant: the worst case for keeping page tables).
 *
 *  populate-only   vmc's design: one window; attach maps the tenant's run
 *                  over the last one (MAP_FIXED) and populates it
 *                  (MADV_POPULATE_WRITE); strict detach revokes it
 *                  (mprotect PROT_NONE), lazy detach does nothing.
 *  lazy faults     the same without the populate: the touches fault.
 *  affine slots    wasmtime's pooling idea: every tenant mapped for good at
 *                  a slot address of its own, populated once; attach opens
 *                  its slot (mprotect RW) and closes the last one (mprotect
 *                  PROT_NONE, in lazy mode too: no address may show another
 *                  tenant without a system call).
 *  batched k       populate-only serving k queued requests of one tenant in
 *                  one attachment (what vmc-lua's --batch does): the cost
 *                  per request.
 * VMC_BENCH_RUNS (default 7) batches per figure, medians.
 */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define MAX_RUNS 32

enum design { D_POP, D_FAULT, D_AFFINE, D_BATCH4, ND };
static const char *const dname[ND] = { "populate-only", "lazy faults", "affine slots",
				       "populate-only, batched 4" };

struct setup {
	int fd;
	size_t f;          /* bytes per tenant */
	unsigned t, w;     /* tenants, pages touched per request */
	int strict;
	char *win;         /* the one window (populate-only, faults) */
	char *slots;       /* t slots (affine) */
};

static void touch(char *base, unsigned w)
{
	for (unsigned k = 0; k < w; k++)
		((volatile char *)base)[(size_t)k * 4096]++;
}

/* n requests of design d; ns. */
static uint64_t run(struct setup *s, enum design d, unsigned n)
{
	uint64_t t0 = bench_now_ns();
	unsigned batch = d == D_BATCH4 ? 4 : 1;

	for (unsigned r = 0; r < n; r += batch) {
		unsigned i = (r / batch) % s->t, prev = (r / batch + s->t - 1) % s->t;
		char *base = s->win;
		if (d == D_AFFINE) {
			base = s->slots + (size_t)i * s->f;
			mprotect(s->slots + (size_t)prev * s->f, s->f, PROT_NONE);
			mprotect(base, s->f, PROT_READ | PROT_WRITE);
		} else {
			mmap(base, s->f, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, s->fd,
			     (off_t)((size_t)i * s->f));
			if (d != D_FAULT)
				madvise(base, s->f, MADV_POPULATE_WRITE);
		}
		for (unsigned b = 0; b < batch; b++)
			touch(base, s->w);
		if (s->strict && d != D_AFFINE)
			mprotect(base, s->f, PROT_NONE);
	}
	return bench_now_ns() - t0;
}

static int setup(struct setup *s, unsigned t, size_t f, unsigned w, int strict)
{
	size_t all = (size_t)t * f;

	memset(s, 0, sizeof *s);
	s->t = t;
	s->f = f;
	s->w = w;
	s->strict = strict;
	if ((s->fd = memfd_create("bench-designs", MFD_CLOEXEC)) < 0 || ftruncate(s->fd, (off_t)all))
		return -1;
	char *p = mmap(NULL, all, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED)
		return -1;
	memset(p, 1, all);
	munmap(p, all);
	s->win = mmap(NULL, f, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	s->slots = mmap(NULL, all, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, s->fd, 0);
	if (s->win == MAP_FAILED || s->slots == MAP_FAILED)
		return -1;
	madvise(s->slots, all, MADV_POPULATE_WRITE);
	mprotect(s->slots, all, PROT_NONE);
	return 0;
}

static void teardown(struct setup *s)
{
	munmap(s->win, s->f);
	munmap(s->slots, (size_t)s->t * s->f);
	close(s->fd);
}

int main(void)
{
	static const struct { unsigned t; size_t f; unsigned w; } cases[] = {
		{ 12, 64 << 10, 8 }, { 12, 192 << 10, 24 }, { 12, 1 << 20, 32 },
		{ 1000, 64 << 10, 8 }, { 1000, 192 << 10, 24 },
	};
	int runs = (int)bench_env_int("VMC_BENCH_RUNS", 7);
	struct bench_report *r;

	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_designs: VMC_BENCH_RUNS must be 1..%d\n", MAX_RUNS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = bench_report_new("designs", "4k");
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
		for (int strict = 1; strict >= 0; strict--) {
			double us[ND][MAX_RUNS];
			char name[128], vs[128], sz[32];
			struct setup s;
			unsigned n = 2 * cases[k].t > 400 ? 2 * cases[k].t : 400;
			if (setup(&s, cases[k].t, cases[k].f, cases[k].w, strict)) {
				bench_note(r, "%u tenants of %zu KiB: set-up failed", cases[k].t,
					   cases[k].f >> 10);
				continue;
			}
			for (int d = 0; d < ND; d++)
				run(&s, (enum design)d, cases[k].t);   /* warm */
			for (int j = 0; j < runs; j++)
				for (int d = 0; d < ND; d++)
					us[d][j] = (double)run(&s, (enum design)d, n) / 1e3 / n;
			teardown(&s);
			bench_fmt_size(cases[k].f, sz, sizeof sz);
			for (int d = 0; d < ND; d++) {
				snprintf(name, sizeof name, "%u x %s, %u pages, %s: %s", cases[k].t, sz,
					 cases[k].w, strict ? "strict" : "lazy", dname[d]);
				snprintf(vs, sizeof vs, "%u x %s, %u pages, %s: %s", cases[k].t, sz,
					 cases[k].w, strict ? "strict" : "lazy", dname[D_POP]);
				bench_row_runs(r, name, "us/req", us[d], runs, d ? vs : NULL, "4k");
			}
		}
	bench_note(r, "a request: attach, one write in each of W pages, detach; round robin "
		   "over the tenants; ratios against populate-only (vmc's design)");
	return bench_report_finish(r) ? 1 : 0;
}
