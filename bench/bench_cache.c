/*
 * bench_cache.c - what a granule costs a worker to take and give back
 * through its process-local cache, against the shared free list (target
 * P6: >= 5 M/s per worker, with no system call).
 *
 * One op is one granule round trip: pool_take() + pool_put(), the pool half
 * of a commit + release (the mapping half is measured elsewhere).  Variants:
 *   local, lock per op    { slot_lock; take; put; slot_unlock } - what every
 *                         commit/release pays when the cache has granules;
 *   local, lock per 1000  the slot lock held around 1000 pairs (batches);
 *   shared list           a container with worker_cache = 1 and the cache
 *                         drained after every put, so every take refills
 *                         from and every put drains to the shared free list
 *                         under the pool lock (worker_cache = 1 alone is not
 *                         enough: a one-granule cache absorbs a take/put
 *                         pair without touching the pool lock);
 *   2 processes           both of the above with two forked workers
 *                         hammering at once, per worker and in aggregate:
 *                         local caches should scale, the pool lock should not.
 * Rates are M ops/s, medians over VMC_BENCH_RUNS runs (default 7) of about
 * 0.1 s each.  vmc_os_calls_total() counts the library's system calls in
 * each timed loop (must be 0 for the local cache); voluntary context
 * switches in the 2-process runs show time spent asleep on a contended lock.
 * VMC_BENCH_VERBOSE=1 prints each 2-process run's timeline to stderr.
 */
#include "benchlib.h"
#include "container.h"
#include "os/os.h"
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RUNS  64
#define BATCH     1000
#define TARGET_NS 100000000ull   /* ~0.1 s per timed loop */

enum variant { LOCAL_PER_OP, LOCAL_BATCH, SHARED };

static const char *const vname[] = {
	"local cache, lock per op", "local cache, lock per 1000", "shared list",
};

static int runs;

/* n round trips of variant v on container c; returns 0 or an error. */
static int loop(struct vmc *c, enum variant v, uint64_t n)
{
	uint32_t slot = c->slot, g;
	int err;

	switch (v) {
	case LOCAL_PER_OP:
		for (uint64_t i = 0; i < n; i++) {
			if ((err = slot_lock(c, slot)))
				return err;
			err = pool_take(c, 0, &g);
			if (!err)
				err = pool_put(c, g);
			slot_unlock(c, slot);
			if (err)
				return err;
		}
		return 0;
	case LOCAL_BATCH:
		for (uint64_t i = 0; i < n;) {
			uint64_t end = i + BATCH < n ? i + BATCH : n;
			if ((err = slot_lock(c, slot)))
				return err;
			for (; i < end; i++) {
				if ((err = pool_take(c, 0, &g)) || (err = pool_put(c, g)))
					break;
			}
			slot_unlock(c, slot);
			if (err)
				return err;
		}
		return 0;
	case SHARED:
		for (uint64_t i = 0; i < n; i++) {
			if ((err = slot_lock(c, slot)))
				return err;
			err = pool_take(c, 0, &g);        /* cache empty: refill 1 */
			if (!err)
				err = pool_put(c, g);
			if (!err)
				err = pool_drain(c, slot, 0);  /* back to the free list */
			slot_unlock(c, slot);
			if (err)
				return err;
		}
		return 0;
	}
	return 0;
}

static uint64_t timed(struct vmc *c, enum variant v, uint64_t n)
{
	uint64_t t0 = bench_now_ns();
	int err = loop(c, v, n);
	if (err)
		bench_die(vname[v], err);
	return bench_now_ns() - t0;
}

struct timed_arg {
	struct vmc *c;
	enum variant v;
};

static uint64_t timed_fn(void *arg, uint64_t n)
{
	struct timed_arg *a = arg;
	return timed(a->c, a->v, n);
}

/* Round trips that take about TARGET_NS. */
static uint64_t calibrate(struct vmc *c, enum variant v)
{
	struct timed_arg a = { c, v };
	/* warm: fills the cache, faults the tables in */
	uint64_t n = bench_calibrate(timed_fn, &a, 1 << 12, 1 << 12, TARGET_NS, 10);

	return n < 1000 ? 1000 : n;
}

/* -------------------------------------------------------- one process */

static void one_process(struct bench_report *r, struct vmc *c, enum variant v,
			uint64_t *n_out, double *calls)
{
	double mops[MAX_RUNS];
	uint64_t n = calibrate(c, v);
	char name[96];

	for (int i = 0; i < runs; i++) {
		uint64_t k0 = vmc_os_calls_total();
		uint64_t ns = timed(c, v, n);
		calls[i] = (double)(vmc_os_calls_total() - k0);
		mops[i] = (double)n * 1e3 / (double)ns;
	}
	snprintf(name, sizeof name, "%s (1 proc)", vname[v]);
	bench_row_runs(r, name, "M ops/s", mops, runs, v == SHARED ? NULL : "shared list (1 proc)",
		       NULL);
	*n_out = n;
}

/* ------------------------------------------------------- two processes */

struct shared_run {
	int ready;
	int failed;
	struct {
		uint64_t start, end, calls, csw;
	} w[2];
};

static long vol_csw(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_nvcsw;
}

static void child(struct vmc *c, enum variant v, uint64_t n, struct shared_run *sr, int id)
{
	int err;

	/* a fresh slot of its own for this process */
	if ((err = vmc_enter(c))) {
		fprintf(stderr, "bench_cache: child join: %s: %s\n", vmc_strerror(err), vmc_errmsg());
		_exit(1);
	}
	if ((err = loop(c, v, 1000)))   /* fill its cache, like a warm worker */
		_exit(1);
	__atomic_add_fetch(&sr->ready, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&sr->ready, __ATOMIC_ACQUIRE) < 2)
		;
	long csw = vol_csw();
	uint64_t k0 = vmc_os_calls_total(), t0 = bench_now_ns();
	err = loop(c, v, n);
	uint64_t t1 = bench_now_ns();
	sr->w[id].start = t0;
	sr->w[id].end = t1;
	sr->w[id].calls = vmc_os_calls_total() - k0;
	sr->w[id].csw = (uint64_t)(vol_csw() - csw);
	if (err) {
		fprintf(stderr, "bench_cache: child %s: %s: %s\n", vname[v], vmc_strerror(err),
			vmc_errmsg());
		_exit(1);
	}
	vmc_close(c);   /* gives the slot and its cache back */
	_exit(0);
}

static int two_processes(struct bench_report *r, struct vmc *c, enum variant v, uint64_t n,
			 double *calls, double *csw)
{
	double per[MAX_RUNS], agg[MAX_RUNS];
	struct shared_run *sr = mmap(NULL, sizeof *sr, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char name[96], vs[96];

	if (sr == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	for (int i = 0; i < runs; i++) {
		pid_t pid[2];
		int ok = 1;

		memset(sr, 0, sizeof *sr);
		fflush(NULL);
		for (int k = 0; k < 2; k++) {
			pid[k] = fork();
			if (pid[k] < 0) {
				perror("fork");
				exit(1);
			}
			if (pid[k] == 0)
				child(c, v, n, sr, k);
		}
		for (int k = 0; k < 2; k++) {
			int st;
			if (waitpid(pid[k], &st, 0) != pid[k] || !WIFEXITED(st) || WEXITSTATUS(st))
				ok = 0;
		}
		if (!ok) {
			fprintf(stderr, "bench_cache: a worker of %s (2 procs) failed\n", vname[v]);
			munmap(sr, sizeof *sr);
			return -1;
		}
		uint64_t lo = sr->w[0].start < sr->w[1].start ? sr->w[0].start : sr->w[1].start;
		uint64_t hi = sr->w[0].end > sr->w[1].end ? sr->w[0].end : sr->w[1].end;
		per[i] = 0;
		for (int k = 0; k < 2; k++)
			per[i] += (double)n * 1e3 / (double)(sr->w[k].end - sr->w[k].start) / 2;
		calls[i] = (double)(sr->w[0].calls + sr->w[1].calls);
		agg[i] = 2.0 * (double)n * 1e3 / (double)(hi - lo);
		if (getenv("VMC_BENCH_VERBOSE"))
			fprintf(stderr, "  %s run %d: worker 0 %.1f ms from +%.2f ms, "
				"worker 1 %.1f ms from +%.2f ms\n", vname[v], i,
				(double)(sr->w[0].end - sr->w[0].start) / 1e6,
				(double)(sr->w[0].start - lo) / 1e6,
				(double)(sr->w[1].end - sr->w[1].start) / 1e6,
				(double)(sr->w[1].start - lo) / 1e6);
		csw[i] = (double)(sr->w[0].csw + sr->w[1].csw) / 2;
	}
	munmap(sr, sizeof *sr);
	snprintf(name, sizeof name, "%s, per worker (2 procs)", v == SHARED ? "shared list"
		 : "local cache");
	bench_row_runs(r, name, "M ops/s", per, runs, v == SHARED ? "shared list (1 proc)"
		       : "shared list, per worker (2 procs)", NULL);
	snprintf(name, sizeof name, "%s, aggregate (2 procs)", v == SHARED ? "shared list"
		 : "local cache");
	snprintf(vs, sizeof vs, "%s (1 proc)", vname[v]);
	bench_row_runs(r, name, "M ops/s", agg, runs, vs, NULL);
	return 0;
}

/* --------------------------------------------------------------- main */

static struct vmc *make(uint32_t worker_cache)
{
	vmc_config_t cfg;
	vmc_t *c;
	int err;

	/* 128 granules: room for 3 workers' caches; 4K pages: take/put never
	 * touch the memory itself */
	if ((err = bench_config(&cfg, VMC_PAGE_4K, 256 * BENCH_MiB, 64 * BENCH_MiB)))
		bench_die("vmc_config_init", err);
	cfg.max_workers = 8;
	cfg.max_vms = 4;
	cfg.worker_cache = worker_cache;
	if ((err = vmc_create(NULL, &cfg, &c)))
		bench_die("vmc_create", err);
	return c;
}

int main(void)
{
	static double calls[5][MAX_RUNS], csw[2][MAX_RUNS];
	struct bench_report *r;
	struct vmc *local, *shared;
	uint64_t n[3], anycall = 0;
	int failed = 0;

	runs = (int)bench_env_int("VMC_BENCH_RUNS", 7);
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_cache: VMC_BENCH_RUNS must be 1..%d\n", MAX_RUNS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	local = make(32);
	shared = make(1);
	printf("bench_cache: %d runs per figure, local worker_cache %u, shared worker_cache %u\n",
	       runs, local->h.worker_cache, shared->h.worker_cache);
	r = bench_report_new("cache", "4k");

	one_process(r, local, LOCAL_PER_OP, &n[LOCAL_PER_OP], calls[0]);
	one_process(r, local, LOCAL_BATCH, &n[LOCAL_BATCH], calls[1]);
	one_process(r, shared, SHARED, &n[SHARED], calls[2]);
	if (two_processes(r, local, LOCAL_PER_OP, n[LOCAL_PER_OP], calls[3], csw[0]) ||
	    two_processes(r, shared, SHARED, n[SHARED], calls[4], csw[1]))
		failed = 1;

	for (int k = 0; k < (failed ? 3 : 5); k++)
		for (int i = 0; i < runs; i++)
			if (k != 2 && k != 4)
				anycall += (uint64_t)calls[k][i];
	bench_row_runs(r, "vmc syscalls per loop, local (1 proc)", "calls", calls[0], runs,
		       NULL, NULL);
	bench_row_runs(r, "vmc syscalls per loop, local 1000 (1 proc)", "calls", calls[1], runs,
		       NULL, NULL);
	bench_row_runs(r, "vmc syscalls per loop, shared (1 proc)", "calls", calls[2], runs,
		       NULL, NULL);
	if (!failed) {
		bench_row_runs(r, "vmc syscalls per loop, local (2 procs)", "calls", calls[3],
			       runs, NULL, NULL);
		bench_row_runs(r, "vmc syscalls per loop, shared (2 procs)", "calls", calls[4],
			       runs, NULL, NULL);
		bench_row_runs(r, "vol. ctx switches/worker, local (2 procs)", "switches", csw[0],
			       runs, NULL, NULL);
		bench_row_runs(r, "vol. ctx switches/worker, shared (2 procs)", "switches",
			       csw[1], runs, NULL, NULL);
	}
	bench_note(r, "one op = one granule round trip (pool_take + pool_put); loops of %llu "
		   "(local), %llu (local 1000), %llu (shared) ops per worker",
		   (unsigned long long)n[LOCAL_PER_OP], (unsigned long long)n[LOCAL_BATCH],
		   (unsigned long long)n[SHARED]);
	{
		double one = bench_row_median(r, "local cache, lock per op (1 proc)");
		double two = bench_row_median(r, "local cache, per worker (2 procs)");
		char twos[32] = "n/a";
		if (two >= 0)
			snprintf(twos, sizeof twos, "%.1f", two);
		bench_note(r, "P6 >= 5 M/s per worker with no system call: %.1f M/s (1 proc), "
			   "%s M/s per worker (2 procs), %llu vmc system calls in the local-cache "
			   "loops: %s", one, twos, (unsigned long long)anycall,
			   one >= 5 && (two < 0 || two >= 5) && !anycall ? "MET" : "NOT MET");
	}
	vmc_close(shared);
	vmc_close(local);
	if (bench_report_finish(r))
		failed = 1;
	return failed;
}
