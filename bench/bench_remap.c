/*
 * bench_remap.c - the mapping engine against the stock way (targets P4 and
 * P6, in one run, for each page kind: hugetlb, THP, 4K).
 *
 * P4, relocation: a populated 64 MiB range (32 granules) is moved back and
 * forth between two adjacent window ranges with vmc_move, as one call of
 * 32 granules and as one batch of 32 one-granule moves, and reported in
 * GB/s (10^9 bytes/s of range moved per second of wall time), median over
 * VMC_BENCH_REPS moves (default 101).  Before every timed move the source
 * is populated again (MADV_POPULATE_WRITE, untimed): a move has to zap a
 * populated source, as a runtime's would.  "move + repopulate" adds the
 * MADV_POPULATE_WRITE of the destination to the timed part, i.e. what it
 * costs to have the moved range mapped again as mremap leaves it (hugetlb
 * windows are mapped MAP_POPULATE, so there it costs next to nothing).
 * The stock baselines, measured in the same run on anonymous memory:
 *   - mremap(MREMAP_MAYMOVE|MREMAP_FIXED) of 64 MiB of populated 4 KiB
 *     pages between two reserved areas, 2 MiB-aligned (the kernel moves
 *     whole page-table pages, one PMD per 2 MiB) and 4 KiB-offset (the
 *     kernel moves PTE by PTE: what page-granular relocation costs);
 *   - the same of 64 MiB of THP (MADV_HUGEPAGE, 2 MiB-aligned, populated);
 *   - memcpy of the same 64 MiB between two faulted-in buffers.
 *
 * Batching: runs of N = 1, 16 and 512 granules are moved one granule per
 * operation, either one vmc_move per granule or all N in one batch
 * (vmc_batch_move x N + vmc_batch_commit), in granules/s, with the
 * library's system calls per granule (vmc_os_calls_total() deltas).
 *
 * P6, commit + release through the process-local cache: a loop of
 * { vmc_commit(1 granule, VMC_COMMIT_NOZERO); vmc_release(same,
 * VMC_RELEASE_DEFER) } in M ops/s (one op = one commit + release pair) and
 * system calls per op; and the same with a plain release, which unmaps.
 *
 * Hugetlb needs about 530 free 2 MiB pages: as root they are reserved
 * with vmc_hugepages_setup() and given back at the end; THP needs
 * shmem_enabled != never: as root it is set to "advise" for the run and put
 * back.  A kind that cannot be had is skipped with the reason.
 * VMC_BENCH_KEEP_HOST=1 leaves the host settings as the benchmark made them.
 * VMC_BENCH_RUNS (default 7) sets the runs of the P6 loops, VMC_BENCH_REPS
 * (default 101) the moves per P4 figure.  The containers keep the default
 * max_workers and max_vms.
 */
#include "benchlib.h"
#include "os/os.h"
#include "vmc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define G          VMC_GRANULE_SIZE
#define RANGE      (64 * BENCH_MiB)           /* the P4 range: 32 granules */
#define RANGE_G    (RANGE / G)
#define MAX_RUN    512                       /* the largest run of the batch test */
#define POOL_G     (MAX_RUN + 16)            /* pool granules */
#define WINDOW_G   (2 * MAX_RUN + 16)        /* window granules: two runs and a spare */
#define MAX_REPS   1001
#define MAX_RUNS   64
#define TARGET_NS  100000000ull              /* ~0.1 s per P6 timed loop */

static int reps, runs;

/* Populate [p, p+len) for writing; touch it if the kernel has no
 * MADV_POPULATE_WRITE. */
static void populate(void *p, size_t len)
{
	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return;
	if (errno != EINVAL) {
		perror("bench_remap: MADV_POPULATE_WRITE");
		exit(1);
	}
	for (size_t off = 0; off < len; off += 4096)
		((volatile char *)p)[off] = ((volatile char *)p)[off];
}

/* ----------------------------------------------- baselines: anonymous */

static char *reserve(size_t len)
{
	return bench_map_anon(len, PROT_NONE);
}

static void measure_memcpy(struct bench_report *r)
{
	double v[MAX_REPS];
	char *a = reserve(RANGE), *b = reserve(RANGE);

	if (mprotect(a, RANGE, PROT_READ | PROT_WRITE) || mprotect(b, RANGE, PROT_READ | PROT_WRITE)) {
		perror("bench_remap: mprotect");
		exit(1);
	}
	memset(a, 1, RANGE);
	memset(b, 2, RANGE);
	for (int i = 0; i < reps; i++) {
		uint64_t t0 = bench_now_ns();
		memcpy(i & 1 ? a : b, i & 1 ? b : a, RANGE);
		__asm__ __volatile__("" : : "r"(a), "r"(b) : "memory");
		v[i] = bench_gbps(RANGE, bench_now_ns() - t0);
	}
	munmap(a, RANGE);
	munmap(b, RANGE);
	bench_row_runs(r, "memcpy 64 MiB (faulted-in anon)", "GB/s", v, reps, NULL, "anon");
}

/* mremap 64 MiB of populated anonymous memory back and forth between two
 * areas inside one reservation.  offset: 0 (2 MiB-aligned) or 4096.
 * thp: MADV_HUGEPAGE instead of MADV_NOHUGEPAGE.  Returns 0, or 1 if
 * skipped (why[] says why). */
static int measure_mremap(struct bench_report *r, const char *name, size_t offset, int thp,
			  char *why, size_t nwhy)
{
	double v[MAX_REPS];
	size_t span = 2 * RANGE + 4 * G;
	char *res = reserve(span);
	char *base = (char *)(((uintptr_t)res + G - 1) & ~(G - 1)) + offset;
	char *a = base, *b = base + RANGE + G;
	long long huge0 = bench_kb_field("/proc/self/smaps_rollup", "AnonHugePages:");

	if (mmap(a, RANGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
	    == MAP_FAILED) {
		perror("bench_remap: mmap");
		exit(1);
	}
	if (madvise(a, RANGE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) && thp) {
		snprintf(why, nwhy, "MADV_HUGEPAGE: %s", strerror(errno));
		munmap(res, span);
		return 1;
	}
	memset(a, 0x5a, RANGE);
	if (thp) {
		long long grew = bench_kb_field("/proc/self/smaps_rollup", "AnonHugePages:") - huge0;
		if (grew < (long long)RANGE / 2) {
			snprintf(why, nwhy, "only %lld MiB of the 64 MiB became THP (AnonHugePages)",
				 grew >> 20);
			munmap(res, span);
			return 1;
		}
		bench_note(r, "mremap THP baseline: %lld of 64 MiB in THP (AnonHugePages)",
			   grew >> 20);
	}
	for (int i = 0; i < reps; i++) {
		char *from = i & 1 ? b : a, *to = i & 1 ? a : b;
		uint64_t t0 = bench_now_ns();
		void *p = mremap(from, RANGE, RANGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		uint64_t t1 = bench_now_ns();
		if (p != to) {
			perror("bench_remap: mremap");
			exit(1);
		}
		v[i] = bench_gbps(RANGE, t1 - t0);
	}
	/* still populated and intact where it ended up */
	char *at = reps & 1 ? b : a;
	for (size_t off = 0; off < RANGE; off += 4096)
		if (at[off] != 0x5a) {
			fprintf(stderr, "bench_remap: mremap baseline lost data at +%zu\n", off);
			exit(1);
		}
	munmap(res, span);
	bench_row_runs(r, name, "GB/s", v, reps, NULL, "anon");
	return 0;
}

/* ------------------------------------------------------- one page kind */

struct kind_ctx {
	vmc_t *c;
	char *base;
	const char *kn;
	struct bench_report *r;
};

static void pattern(char *p, uint32_t n, uint64_t tag)
{
	for (uint32_t k = 0; k < n; k++)
		*(uint64_t *)(p + (size_t)k * G) = tag + k;
}

static void check_pattern(const char *what, char *p, uint32_t n, uint64_t tag)
{
	for (uint32_t k = 0; k < n; k++)
		if (*(uint64_t *)(p + (size_t)k * G) != tag + k) {
			fprintf(stderr, "bench_remap: %s: granule %u lost its data after the moves\n",
				what, k);
			exit(1);
		}
}

static void row(struct kind_ctx *x, const char *what, const char *unit, double *v, int n,
		const char *vs)
{
	char name[96];
	snprintf(name, sizeof name, "%s %s", x->kn, what);
	bench_row_runs(x->r, name, unit, v, n, vs, x->kn);
}

/* n one-granule moves from `from` to `to` in one batch; dies if the batch
 * cannot be built, returns vmc_batch_commit's error. */
static int batch_moves(struct kind_ctx *x, char *from, char *to, uint32_t n)
{
	vmc_batch_t *bt;
	int err;

	if ((err = vmc_batch_begin(x->c, &bt)))
		bench_die("vmc_batch_begin", err);
	for (uint32_t g = 0; g < n && !err; g++)
		err = vmc_batch_move(bt, from + (size_t)g * G, to + (size_t)g * G, G, 0);
	if (err)
		bench_die("vmc_batch_move", err);
	return vmc_batch_commit(bt);
}

/* P4: move the populated 64 MiB range back and forth. mode: 0 one call,
 * 1 a batch of 32 one-granule moves, 2 one call + repopulate destination. */
static void p4(struct kind_ctx *x, int mode, double *calls)
{
	static const char *const what[] = {
		"vmc_move 64 MiB (1 call)", "vmc_move 64 MiB (batch of 32)",
		"vmc_move 64 MiB + repopulate",
	};
	double v[MAX_REPS], k[MAX_REPS];
	char *a = x->base, *b = x->base + RANGE;
	int err;

	if ((err = vmc_commit(x->c, a, RANGE, VMC_COMMIT_POPULATE)))
		bench_die("commit 64 MiB", err);
	pattern(a, RANGE_G, 0x1000 * (mode + 1));
	for (int i = 0; i < reps; i++) {
		char *from = i & 1 ? b : a, *to = i & 1 ? a : b;
		populate(from, RANGE);
		uint64_t k0 = vmc_os_calls_total(), t0 = bench_now_ns();
		if (mode == 1) {
			err = batch_moves(x, from, to, RANGE_G);
		} else {
			err = vmc_move(x->c, from, to, RANGE, 0);
		}
		if (!err && mode == 2)
			populate(to, RANGE);
		uint64_t t1 = bench_now_ns(), k1 = vmc_os_calls_total();
		if (err)
			bench_die(what[mode], err);
		v[i] = bench_gbps(RANGE, t1 - t0);
		k[i] = (double)(k1 - k0) - (mode == 2);   /* the bench's own madvise is no vmc call */
	}
	char *at = reps & 1 ? b : a;
	check_pattern(what[mode], at, RANGE_G, 0x1000 * (mode + 1));
	if ((err = vmc_release(x->c, at, RANGE, 0)))
		bench_die("release 64 MiB", err);
	row(x, what[mode], "GB/s", v, reps, "mremap 64 MiB, 4K pages, 4K-offset");
	*calls = bench_median(k, reps);
}

/* One-granule moves of a run of n granules: one vmc_move per granule, or
 * all n in one batch.  Adds granules/s rows and system calls per granule. */
static void batch_test(struct kind_ctx *x, uint32_t n)
{
	double one[MAX_REPS], bat[MAX_REPS], kone[MAX_REPS], kbat[MAX_REPS];
	int passes = n == 1 ? reps * 2 : n <= 16 ? reps : reps / 10 + 1;
	char *a = x->base, *b = x->base + (size_t)n * G, name[64], vs[96];
	int err;

	if (passes > MAX_REPS)
		passes = MAX_REPS;
	if ((err = vmc_commit(x->c, a, (size_t)n * G, VMC_COMMIT_POPULATE)))
		bench_die("commit the run", err);
	pattern(a, n, 0x7000);
	for (int pass = 0; pass < 2 * passes; pass++) {
		int batched = pass >= passes, i = pass % passes;
		char *from = pass & 1 ? b : a, *to = pass & 1 ? a : b;
		populate(from, (size_t)n * G);
		uint64_t k0 = vmc_os_calls_total(), t0 = bench_now_ns();
		if (batched) {
			if ((err = batch_moves(x, from, to, n)))
				bench_die("vmc_batch_commit", err);
		} else {
			for (uint32_t g = 0; g < n; g++)
				if ((err = vmc_move(x->c, from + g * G, to + g * G, G, 0)))
					bench_die("vmc_move 1 granule", err);
		}
		uint64_t t1 = bench_now_ns(), k1 = vmc_os_calls_total();
		double rate = (double)n * 1e3 / (double)(t1 - t0);   /* M granules/s */
		double calls = (double)(k1 - k0) / n;
		if (batched) {
			bat[i] = rate;
			kbat[i] = calls;
		} else {
			one[i] = rate;
			kone[i] = calls;
		}
	}
	check_pattern("batch test", 2 * passes & 1 ? b : a, n, 0x7000);
	if ((err = vmc_release(x->c, a, (size_t)n * G, 0)))
		bench_die("release the run", err);
	snprintf(name, sizeof name, "move run of %u, 1 call/granule", n);
	row(x, name, "M gran/s", one, passes, NULL);
	snprintf(vs, sizeof vs, "%s %s", x->kn, name);
	snprintf(name, sizeof name, "move run of %u, 1 batch", n);
	row(x, name, "M gran/s", bat, passes, vs);
	snprintf(name, sizeof name, "syscalls/granule, run of %u, 1 call/gran", n);
	row(x, name, "calls", kone, passes, NULL);
	snprintf(name, sizeof name, "syscalls/granule, run of %u, 1 batch", n);
	row(x, name, "calls", kbat, passes, NULL);
}

/* P6: n rounds of commit + release of one granule at p. */
static uint64_t p6_loop(struct kind_ctx *x, char *p, uint64_t n, int rflags, uint64_t *calls)
{
	uint64_t k0 = vmc_os_calls_total(), t0 = bench_now_ns();
	int err;

	for (uint64_t i = 0; i < n; i++) {
		if ((err = vmc_commit(x->c, p, G, VMC_COMMIT_NOZERO)))
			bench_die("P6 commit", err);
		if ((err = vmc_release(x->c, p, G, rflags)))
			bench_die("P6 release", err);
	}
	uint64_t ns = bench_now_ns() - t0;
	*calls = vmc_os_calls_total() - k0;
	return ns;
}

struct p6_arg {
	struct kind_ctx *x;
	char *p;
	int rflags;
};

static uint64_t p6_timed(void *arg, uint64_t n)
{
	struct p6_arg *a = arg;
	uint64_t calls;
	return p6_loop(a->x, a->p, n, a->rflags, &calls);
}

static void p6(struct kind_ctx *x, int rflags)
{
	double v[MAX_RUNS], k[MAX_RUNS];
	char *p = x->base + (size_t)(WINDOW_G - 1) * G;
	struct p6_arg arg = { x, p, rflags };
	uint64_t n, ns, calls;
	int err;

	n = bench_calibrate(p6_timed, &arg, 256, 256, TARGET_NS, 10);
	if (n < 256)
		n = 256;
	for (int i = 0; i < runs; i++) {
		ns = p6_loop(x, p, n, rflags, &calls);
		v[i] = (double)n * 1e3 / (double)ns;
		k[i] = (double)calls / (double)n;
	}
	if ((err = vmc_flush(x->c)))
		bench_die("vmc_flush", err);
	if (rflags & VMC_RELEASE_DEFER) {
		row(x, "commit+release, deferred (P6)", "M ops/s", v, runs, NULL);
		row(x, "syscalls/op, commit+release deferred", "calls", k, runs, NULL);
	} else {
		char vs[96];
		snprintf(vs, sizeof vs, "%s commit+release, deferred (P6)", x->kn);
		row(x, "commit+release, unmapped", "M ops/s", v, runs, vs);
		row(x, "syscalls/op, commit+release unmapped", "calls", k, runs, NULL);
	}
}

/* Returns 0, 1 if skipped, -1 on failure. */
static int measure_kind(struct bench_report *r, int kind)
{
	const char *kn = vmc_page_kind_name(kind);
	vmc_config_t cfg;
	vmc_t *c;
	uint32_t id;
	void *base = NULL;
	double calls[3];
	int err;

	if (!bench_kind_ready(r, kind, POOL_G))
		return 1;
	/* max_workers and max_vms stay at their defaults: the hot path's cost
	 * may depend on them (P6 is "per worker" in a default container) */
	if ((err = bench_config(&cfg, kind, (uint64_t)POOL_G * G, (uint64_t)WINDOW_G * G))) {
		fprintf(stderr, "bench_remap: vmc_config_init: %s\n", vmc_errmsg());
		return -1;
	}
	printf("%s: funding a %llu MiB pool ...\n", kn, (unsigned long long)(cfg.pool_size >> 20));
	if ((err = vmc_create(NULL, &cfg, &c))) {
		bench_note(r, "%s skipped: vmc_create: %s: %s", kn, vmc_strerror(err), vmc_errmsg());
		return 1;
	}
	if ((err = vmc_vm_create(c, "bench", cfg.window_size, &id)) ||
	    (err = vmc_attach(c, id, &base)))
		bench_die("VM", err);

	struct kind_ctx x = { c, base, kn, r };
	for (int mode = 0; mode < 3; mode++)
		p4(&x, mode, &calls[mode]);
	bench_note(r, "%s: vmc system calls per 64 MiB move: %.0f (1 call), %.0f (batch of 32), "
		   "%.0f (1 call + repopulate)", kn, calls[0], calls[1], calls[2]);
	batch_test(&x, 1);
	batch_test(&x, 16);
	batch_test(&x, MAX_RUN);
	p6(&x, VMC_RELEASE_DEFER);
	p6(&x, 0);

	vmc_check_report_t rep;
	if ((err = vmc_check(c, &rep))) {
		fprintf(stderr, "bench_remap: %s: vmc_check: %s\n", kn, rep.first);
		vmc_close(c);
		return -1;
	}
	vmc_detach(c, id);
	vmc_close(c);
	return 0;
}

int main(int argc, char **argv)
{
	static const int kinds[] = { VMC_PAGE_HUGETLB, VMC_PAGE_THP, VMC_PAGE_4K };
	char measured[64] = "", why[256];
	struct bench_report *r;
	int failed = 0;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: bench_remap   (env: VMC_BENCH_REPS, VMC_BENCH_RUNS, "
			"VMC_BENCH_OUT, VMC_BENCH_KEEP_HOST)\n");
		return 2;
	}
	reps = (int)bench_env_int("VMC_BENCH_REPS", 101);
	runs = (int)bench_env_int("VMC_BENCH_RUNS", 7);
	if (reps < 2 || reps > MAX_REPS || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_remap: VMC_BENCH_REPS must be 2..%d, VMC_BENCH_RUNS 1..%d\n",
			MAX_REPS, MAX_RUNS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_remap: %d moves per P4 figure, %d runs per P6 figure\n", reps, runs);
	r = bench_report_new("remap", "hugetlb,thp,4k");

	measure_memcpy(r);
	measure_mremap(r, "mremap 64 MiB, 4K pages, 2M-aligned", 0, 0, why, sizeof why);
	measure_mremap(r, "mremap 64 MiB, 4K pages, 4K-offset", 4096, 0, why, sizeof why);
	{
		char set[32];
		bench_thp_setting(BENCH_THP_ANON, set, sizeof set);
		if (!strcmp(set, "never"))
			bench_note(r, "mremap THP baseline skipped: " BENCH_THP_ANON " is \"never\"");
		else if (measure_mremap(r, "mremap 64 MiB, THP", 0, 1, why, sizeof why))
			bench_note(r, "mremap THP baseline skipped: %s", why);
	}
	/* 4K first, then the huge kinds */
	for (int i = 2; i >= 0; i--) {
		if (bench_kind_outcome(measure_kind(r, kinds[i]), kinds[i], measured,
				       sizeof measured))
			failed = 1;
	}
	bench_report_set_page_kind(r, measured);
	bench_host_restore(r);

	/* verdicts */
	double m4k = bench_row_median(r, "mremap 64 MiB, 4K pages, 4K-offset");
	double m4a = bench_row_median(r, "mremap 64 MiB, 4K pages, 2M-aligned");
	double mcp = bench_row_median(r, "memcpy 64 MiB (faulted-in anon)");
	for (int i = 0; i < 3; i++) {
		const char *kn = vmc_page_kind_name(kinds[i]);
		char name[64];
		snprintf(name, sizeof name, "%s vmc_move 64 MiB (1 call)", kn);
		double mv = bench_row_median(r, name);
		snprintf(name, sizeof name, "%s vmc_move 64 MiB (batch of 32)", kn);
		double mb = bench_row_median(r, name);
		if (mv < 0)
			continue;
		double best = mv > mb ? mv : mb;
		bench_note(r, "P4 %s: vmc_move %.0f GB/s (1 call), %.0f GB/s (batch of 32); >= 1 TB/s: "
			   "%s; %.3gx mremap of 4K pages PTE by PTE (%.0f GB/s), %.3gx mremap of "
			   "2 MiB-aligned 4K pages (%.0f GB/s); >= 100x mremap of 4K pages: %s; "
			   "%.0fx memcpy (%.2f GB/s)", kn, mv, mb, best >= 1000 ? "MET" : "NOT MET",
			   best / m4k, m4k, best / m4a, m4a,
			   best >= 100 * m4k && best >= 100 * m4a ? "MET" : "NOT MET",
			   best / mcp, mcp);
		snprintf(name, sizeof name, "%s commit+release, deferred (P6)", kn);
		double p6r = bench_row_median(r, name);
		snprintf(name, sizeof name, "%s syscalls/op, commit+release deferred", kn);
		double p6k = bench_row_median(r, name);
		bench_note(r, "P6 %s: commit+release (deferred) %.2f M ops/s with %.2f system "
			   "calls per op; >= 5 M/s with no system call: %s", kn, p6r, p6k,
			   p6r >= 5 && p6k == 0 ? "MET" : "NOT MET");
	}
	if (bench_report_finish(r))
		failed = 1;
	return failed;
}
