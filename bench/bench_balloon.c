/*
 * bench_balloon.c - how fast the pool balloon gives memory back to the host
 * and takes it again (target P5: inflate >= 100 GB/s on hugetlb, deflate
 * >= 25% of memset bandwidth).
 *
 * For each page kind (hugetlb, THP, 4K) a private container with a fully
 * funded pool (1 GiB by default; argv[1] or VMC_BENCH_POOL=4G changes it)
 * is ballooned to all-unfunded (inflate: hole punches) and back to fully
 * funded (deflate: fallocate / populate), and each direction is reported in
 * GB/s of pool (decimal GB, 1e9 bytes), median over VMC_BENCH_RUNS runs
 * (default 7).  The latency of a one-granule balloon step is measured too,
 * since a runtime that breathes in small steps pays the fixed cost of
 * every call.  For scale, the same run measures memset() over an
 * already-faulted buffer of the pool's size (the bandwidth deflate is
 * compared with: funding must zero the memory, so memset is its ceiling
 * for hugetlb) and the first touch of a fresh anonymous mapping of that
 * size (what a process pays to get memory from the kernel the stock way).
 *
 * Last, a second process keeps taking and returning granules through the
 * shared free list (more than its cache holds) while the pool is deflated
 * from 256 MiB funded to full and inflated back; its longest round shows
 * how long a balloon can keep a worker from the pool lock (a worker that
 * needs a granule during a balloon should wait one chunk at most, not the
 * whole balloon).  Pools under 512 MiB leave this part out.
 *
 * Hugetlb needs pool/2 MiB free hugepages: as root they are reserved with
 * vmc_hugepages_setup() and the reservation is returned at the end; THP
 * needs shmem_enabled != never: as root it is set to "advise" for the run
 * and put back.  A kind that cannot be had is skipped with the reason.
 * VMC_BENCH_KEEP_HOST=1 leaves the host settings as the benchmark made them.
 */
#include "benchlib.h"
#include "container.h"
#include "os/os.h"
#include "pool.h"
#include "vmc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RUNS  64
#define STEP_REPS 51   /* one-granule balloon steps timed per kind */
#define STALL_RUNS 3   /* balloons with a worker refilling alongside, per kind */
#define STALL_FLOOR (256 * BENCH_MiB)  /* funded while the worker runs */
#define STALL_TAKE 40  /* granules per worker round: more than its cache holds */

static uint64_t pool;
static int runs;

/* --------------------------------------------------- baselines (anon) */

static void measure_memset(struct bench_report *r)
{
	double v[MAX_RUNS];
	char *buf = bench_map_anon(pool, PROT_READ | PROT_WRITE);

	memset(buf, 1, pool);                   /* fault it in */
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = bench_now_ns();
		memset(buf, i & 0xff, pool);
		__asm__ __volatile__("" : : "r"(buf) : "memory");
		v[i] = bench_gbps(pool, bench_now_ns() - t0);
	}
	munmap(buf, pool);
	bench_row_runs(r, "memset (faulted-in anon)", "GB/s", v, runs, NULL, "anon");
}

static void measure_first_touch(struct bench_report *r)
{
	double v[MAX_RUNS];

	for (int i = 0; i < runs; i++) {
		volatile char *buf = bench_map_anon(pool, PROT_READ | PROT_WRITE);
		uint64_t t0 = bench_now_ns();
		for (uint64_t off = 0; off < pool; off += 4096)
			buf[off] = 1;
		v[i] = bench_gbps(pool, bench_now_ns() - t0);
		munmap((void *)buf, pool);
	}
	bench_row_runs(r, "first touch (fresh anon, 4K pages)", "GB/s", v, runs, NULL, "anon");
}

/* ------------------------------------------------------ page kinds */

static int balloon_to(vmc_t *c, uint64_t target, const char *what)
{
	uint64_t achieved = 0;
	int err = vmc_balloon(c, target, &achieved);

	if (err || achieved != target) {
		fprintf(stderr, "bench_balloon: %s to %llu unfunded: %s (reached %llu): %s\n",
			what, (unsigned long long)target, vmc_strerror(err),
			(unsigned long long)achieved, vmc_errmsg());
		return err ? err : -1;
	}
	return 0;
}

/* --------------------------------------- a worker alongside the balloon */

struct stall {
	int ready, stop, phase;    /* phase: 0 idle, 1 deflating, 2 inflating */
	int failed;
	uint64_t max_ns[3];        /* longest take/put round seen in each phase */
};

/* A worker that takes STALL_TAKE granules and puts them back, over and
 * over: more than its cache holds, so it refills from and drains to the
 * shared free list under the pool lock every round. */
static void stall_worker(vmc_t *c, struct stall *st)
{
	uint32_t g[STALL_TAKE];
	int err = vmc_enter(c);

	while (!err && !__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		int phase = __atomic_load_n(&st->phase, __ATOMIC_ACQUIRE);
		uint64_t t0 = bench_now_ns();
		int k = 0;
		if ((err = slot_lock(c, c->slot)))
			break;
		while (k < STALL_TAKE && !(err = pool_take(c, 0, &g[k])))
			k++;
		while (k-- > 0)
			pool_put(c, g[k]);
		slot_unlock(c, c->slot);
		uint64_t d = bench_now_ns() - t0;
		if (!phase)   /* a round that began just before a phase counts in it */
			phase = __atomic_load_n(&st->phase, __ATOMIC_ACQUIRE);
		if (d > st->max_ns[phase])
			st->max_ns[phase] = d;
		__atomic_store_n(&st->ready, 1, __ATOMIC_RELEASE);
	}
	if (err) {
		fprintf(stderr, "bench_balloon: stall worker: %s: %s\n", vmc_strerror(err),
			vmc_errmsg());
		st->failed = 1;
	}
	vmc_close(c);
	_exit(err != 0);
}

/* Deflate from STALL_FLOOR funded to all funded, then inflate back, while
 * a worker refills; the worker's longest round in each phase, in ms,
 * goes to def[i] / inf[i], and the balloon durations to dur_def/dur_inf. */
static int measure_stall(vmc_t *c, double *def, double *inf, double *dur_def, double *dur_inf)
{
	struct stall *st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ok = 1;

	if (st == MAP_FAILED)
		return -1;
	for (int i = 0; i < STALL_RUNS && ok; i++) {
		uint64_t t0, t1, t2;
		pid_t pid;
		int ws;

		if (balloon_to(c, pool - STALL_FLOOR, "inflate to the floor"))
			ok = 0;
		memset(st, 0, sizeof *st);
		fflush(NULL);
		if (!ok || (pid = fork()) < 0) {
			ok = 0;
			break;
		}
		if (pid == 0)
			stall_worker(c, st);
		while (!__atomic_load_n(&st->ready, __ATOMIC_ACQUIRE)) {
			if (waitpid(pid, &ws, WNOHANG) == pid) {
				fprintf(stderr, "bench_balloon: stall worker died early\n");
				munmap(st, sizeof *st);
				return -1;
			}
			usleep(1000);
		}
		usleep(20000);
		__atomic_store_n(&st->phase, 1, __ATOMIC_RELEASE);
		t0 = bench_now_ns();
		ok = !balloon_to(c, 0, "deflate");
		t1 = bench_now_ns();
		__atomic_store_n(&st->phase, 0, __ATOMIC_RELEASE);
		usleep(10000);
		__atomic_store_n(&st->phase, 2, __ATOMIC_RELEASE);
		t2 = bench_now_ns();
		if (ok)
			ok = !balloon_to(c, pool - STALL_FLOOR, "inflate");
		dur_inf[i] = (double)(bench_now_ns() - t2) / 1e6;
		__atomic_store_n(&st->phase, 0, __ATOMIC_RELEASE);
		usleep(10000);
		__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
		if (waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws) || WEXITSTATUS(ws))
			ok = 0;
		def[i] = (double)st->max_ns[1] / 1e6;
		inf[i] = (double)st->max_ns[2] / 1e6;
		dur_def[i] = (double)(t1 - t0) / 1e6;
	}
	munmap(st, sizeof *st);
	return ok && !balloon_to(c, 0, "deflate") ? 0 : -1;
}

/* Returns 0, 1 if skipped, -1 on failure. */
static int measure_kind(struct bench_report *r, int kind)
{
	const char *kn = vmc_page_kind_name(kind);
	double in[MAX_RUNS], out[MAX_RUNS], sin[STEP_REPS], sout[STEP_REPS];
	double sdef[STALL_RUNS], sinf[STALL_RUNS], ddef[STALL_RUNS], dinf[STALL_RUNS];
	int stall = pool >= 2 * STALL_FLOOR;
	uint64_t calls_in = 0, calls_out = 0, calls_sout = 0;
	char name[96], sz[32];
	vmc_config_t cfg;
	vmc_t *c;
	int err;

	if (!bench_kind_ready(r, kind, (long)(pool >> 21)))
		return 1;
	if ((err = bench_config(&cfg, kind, pool, 64 * BENCH_MiB))) {
		fprintf(stderr, "bench_balloon: vmc_config_init: %s\n", vmc_errmsg());
		return -1;
	}
	cfg.max_workers = 4;
	cfg.max_vms = 4;
	printf("%s: funding a %s pool ...\n", kn, bench_fmt_size(pool, sz, sizeof sz));
	fflush(stdout);
	long long shm_huge0 = bench_meminfo("ShmemHugePages:");
	if ((err = vmc_create(NULL, &cfg, &c))) {
		bench_note(r, "%s skipped: vmc_create: %s: %s", kn, vmc_strerror(err), vmc_errmsg());
		return 1;
	}
	/* one untimed cycle: the first fund happened at create */
	if (balloon_to(c, pool, "inflate") || balloon_to(c, 0, "deflate"))
		goto fail;
	for (int i = 0; i < runs; i++) {
		uint64_t k0 = vmc_os_calls_total(), t0 = bench_now_ns();
		if (balloon_to(c, pool, "inflate"))
			goto fail;
		uint64_t t1 = bench_now_ns(), k1 = vmc_os_calls_total();
		if (balloon_to(c, 0, "deflate"))
			goto fail;
		uint64_t t2 = bench_now_ns(), k2 = vmc_os_calls_total();
		in[i] = bench_gbps(pool, t1 - t0);
		out[i] = bench_gbps(pool, t2 - t1);
		calls_in = k1 - k0;
		calls_out = k2 - k1;
	}
	/* one granule out and back in: the fixed cost per balloon call */
	for (int i = 0; i < STEP_REPS; i++) {
		uint64_t t0 = bench_now_ns();
		if (balloon_to(c, VMC_GRANULE_SIZE, "inflate 1 granule"))
			goto fail;
		uint64_t t1 = bench_now_ns(), k1 = vmc_os_calls_total();
		if (balloon_to(c, 0, "deflate 1 granule"))
			goto fail;
		uint64_t t2 = bench_now_ns();
		calls_sout = vmc_os_calls_total() - k1;
		sin[i] = (double)(t1 - t0) / 1e3;
		sout[i] = (double)(t2 - t1) / 1e3;
	}
	if (stall && measure_stall(c, sdef, sinf, ddef, dinf))
		goto fail;
	if (kind == VMC_PAGE_THP) {
		/* is the THP pool really in huge pages? (other processes may
		 * move the figure a little) */
		long long grew = bench_meminfo("ShmemHugePages:") - shm_huge0;
		bench_note(r, "thp: ShmemHugePages grew by %lld MiB while the %llu MiB pool "
			   "was funded", grew >> 20, (unsigned long long)(pool >> 20));
	}
	vmc_close(c);

	snprintf(name, sizeof name, "%s inflate", kn);
	bench_row_runs(r, name, "GB/s", in, runs, kind == VMC_PAGE_4K ? NULL : "4k inflate", kn);
	snprintf(name, sizeof name, "%s deflate", kn);
	bench_row_runs(r, name, "GB/s", out, runs, "memset (faulted-in anon)", kn);
	snprintf(name, sizeof name, "%s 1-granule inflate", kn);
	bench_row_runs(r, name, "us", sin, STEP_REPS, NULL, kn);
	snprintf(name, sizeof name, "%s 1-granule deflate", kn);
	bench_row_runs(r, name, "us", sout, STEP_REPS, NULL, kn);
	if (stall) {
		char deflate_name[96];
		snprintf(deflate_name, sizeof deflate_name, "%s deflate %llu MiB (worker alongside)",
			 kn, (unsigned long long)((pool - STALL_FLOOR) >> 20));
		bench_row_runs(r, deflate_name, "ms", ddef, STALL_RUNS, NULL, kn);
		snprintf(name, sizeof name, "%s worker stall during that deflate", kn);
		bench_row_runs(r, name, "ms", sdef, STALL_RUNS, deflate_name, kn);
		snprintf(deflate_name, sizeof deflate_name, "%s inflate %llu MiB (worker alongside)",
			 kn, (unsigned long long)((pool - STALL_FLOOR) >> 20));
		bench_row_runs(r, deflate_name, "ms", dinf, STALL_RUNS, NULL, kn);
		snprintf(name, sizeof name, "%s worker stall during that inflate", kn);
		bench_row_runs(r, name, "ms", sinf, STALL_RUNS, deflate_name, kn);
	}
	bench_note(r, "%s: %llu vmc system calls per full inflate, %llu per full deflate, "
		   "%llu per 1-granule deflate", kn, (unsigned long long)calls_in,
		   (unsigned long long)calls_out, (unsigned long long)calls_sout);
	return 0;
fail:
	vmc_close(c);
	return -1;
}

int main(int argc, char **argv)
{
	static const int kinds[] = { VMC_PAGE_HUGETLB, VMC_PAGE_THP, VMC_PAGE_4K };
	char sz[32], measured[64] = "";
	struct bench_report *r;
	int failed = 0;

	pool = bench_env_size("VMC_BENCH_POOL", BENCH_GiB);
	if (argc > 1 && vmc_parse_size(argv[1], &pool)) {
		fprintf(stderr, "usage: %s [POOL_SIZE]   (e.g. 1G, 4G; or VMC_BENCH_POOL)\n",
			argv[0]);
		return 2;
	}
	if (!pool || pool % VMC_GRANULE_SIZE) {
		fprintf(stderr, "bench_balloon: pool size must be a non-zero multiple of 2 MiB\n");
		return 2;
	}
	runs = (int)bench_env_int("VMC_BENCH_RUNS", 7);
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_balloon: VMC_BENCH_RUNS must be 1..%d\n", MAX_RUNS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_balloon: pool %s, %d runs per figure\n",
	       bench_fmt_size(pool, sz, sizeof sz), runs);
	r = bench_report_new("balloon", "hugetlb,thp,4k");
	measure_memset(r);
	measure_first_touch(r);
	/* 4K first, so that hugetlb and THP can be compared with it */
	for (int i = 2; i >= 0; i--) {
		if (bench_kind_outcome(measure_kind(r, kinds[i]), kinds[i], measured,
				       sizeof measured))
			failed = 1;
	}
	bench_report_set_page_kind(r, measured);
	{
		/* every pool_fund() (so every deflate) probes the host first */
		double v[STEP_REPS];
		vmc_caps_t caps;
		for (int i = 0; i < STEP_REPS; i++) {
			uint64_t t0 = bench_now_ns();
			vmc_caps_probe(&caps);
			v[i] = (double)(bench_now_ns() - t0) / 1e3;
		}
		bench_row_runs(r, "vmc_caps_probe (done by every fund)", "us", v, STEP_REPS,
			       NULL, "-");
	}
	bench_host_restore(r);
	{
		double hin = bench_row_median(r, "hugetlb inflate");
		double mem = bench_row_median(r, "memset (faulted-in anon)");
		double ft = bench_row_median(r, "first touch (fresh anon, 4K pages)");
		if (hin >= 0)
			bench_note(r, "P5 inflate (hugetlb) >= 100 GB/s: %.1f GB/s: %s", hin,
				   hin >= 100 ? "MET" : "NOT MET");
		else
			bench_note(r, "P5 inflate (hugetlb) >= 100 GB/s: not measured (hugetlb skipped)");
		for (int i = 0; i < 3; i++) {
			char name[64];
			snprintf(name, sizeof name, "%s deflate", vmc_page_kind_name(kinds[i]));
			double d = bench_row_median(r, name);
			if (d >= 0 && mem > 0)
				bench_note(r, "P5 deflate >= 25%% of memset (%s): %.1f%% (%.2f of "
					   "%.2f GB/s): %s", vmc_page_kind_name(kinds[i]),
					   100 * d / mem, d, mem, d >= 0.25 * mem ? "MET" : "NOT MET");
			if (d >= 0 && ft > 0)
				bench_note(r, "%s deflate is %.1fx the first touch of fresh anonymous "
					   "memory (%.2f GB/s)", vmc_page_kind_name(kinds[i]), d / ft, ft);
		}
	}
	if (bench_report_finish(r))
		failed = 1;
	return failed;
}
