/*
 * bench_fund.c - funding on demand (vmc/fund_policy ondemand) against
 * funding up front, side by side in one run, for each page kind:
 *
 *  (a) the cost per funded granule, in us per granule: up front it is paid at create
 *      (create with the whole pool funded, less create with none, per
 *      granule); on demand it is paid inside commits (committing the
 *      whole pool granule by granule on an on-demand container, less the
 *      same commits on a container funded up front, per granule), for a
 *      few batch sizes: one granule per fund (what batching avoids), the
 *      default (1/64 of the pool, at least 2 MiB) and 1/8 of the pool;
 *  (b) the time a process takes to create a container of the pool size
 *      (1 GiB by default) and close it: up front with all of it funded
 *      (what a process that wants headroom pays today), on demand with
 *      nothing funded (the target: <= 1/10 of up front); and to
 *      create one and commit 16 MiB, a small tenant's start.
 *
 * Medians over VMC_BENCH_RUNS runs (default 7); the pool is argv[1] or
 * VMC_BENCH_POOL (default 1G).  The funds per on-demand pass are noted
 * (one fallocate, or a THP populate, each: at most 64 granules).  Hugetlb needs
 * pool / 2 MiB free hugepages (reserved as root for the run, given back
 * after); THP needs shmem_enabled != never.  VMC_BENCH_KINDS=4k,thp
 * limits the kinds.
 */
#include "benchlib.h"
#include "os/os.h"
#include "vmc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 64
#define NBATCH 3
#define START_BYTES (16 * BENCH_MiB)   /* a small tenant's first commit */

static uint64_t pool;
static int runs;

static void die_err(const char *what, int err)
{
	fprintf(stderr, "bench_fund: %s: %s: %s\n", what, vmc_strerror(err), vmc_errmsg());
}

/* A private container of page kind `kind`: up front with `fund` funded, or
 * on demand (fund 0) with batches of `batch` bytes.  ns to create it, or
 * 0 on error (said why).  *out receives it. */
static uint64_t create(int kind, int policy, uint64_t fund, uint64_t batch, vmc_t **out)
{
	vmc_config_t cfg;
	int err;

	if ((err = bench_config(&cfg, kind, pool, pool))) {
		die_err("vmc_config_init", err);
		return 0;
	}
	cfg.max_vms = 4;
	cfg.max_workers = 4;
	cfg.fund_policy = policy;
	cfg.fund_size = fund;
	cfg.fund_batch = batch;
	uint64_t t0 = bench_now_ns();
	if ((err = vmc_create(NULL, &cfg, out))) {
		die_err("vmc_create", err);
		return 0;
	}
	return bench_now_ns() - t0;
}

/* Commit `bytes` of a fresh VM of c one granule at a time: ns, 0 on error. */
static uint64_t commit_granules(vmc_t *c, uint64_t bytes)
{
	size_t g = vmc_granule_size(c);
	uint32_t id;
	char *base;
	int err;

	if ((err = vmc_vm_create(c, "v", pool, &id)) || (err = vmc_attach(c, id, (void **)&base))) {
		die_err("VM", err);
		return 0;
	}
	uint64_t t0 = bench_now_ns();
	for (uint64_t off = 0; off < bytes; off += g)
		if ((err = vmc_commit(c, base + off, g, 0))) {
			die_err("vmc_commit", err);
			return 0;
		}
	uint64_t t = bench_now_ns() - t0;
	vmc_detach(c, id);
	return t;
}

/* Funds made on demand so far: one fallocate (THP: one populate) each. */
static uint64_t ondemand_ops(vmc_t *c)
{
	vmc_stats_t st;
	return vmc_stats(c, &st) ? 0 : st.ondemand_ops;
}

/* Returns 0, 1 if skipped, -1 on failure. */
static int measure_kind(struct bench_report *r, int kind)
{
	const char *kn = vmc_page_kind_name(kind);
	double up_create[MAX_RUNS], od_create[MAX_RUNS], empty_create[MAX_RUNS];
	double up_start[MAX_RUNS], od_start[MAX_RUNS];
	double up_commit[MAX_RUNS], od_commit[NBATCH][MAX_RUNS];
	double at_create[MAX_RUNS], in_commit[NBATCH][MAX_RUNS];
	uint64_t batch[NBATCH], calls[NBATCH] = { 0 }, ngran = 0;
	char name[128], ref[128], sz[32], gz[32];
	vmc_t *c;

	if (!bench_kind_wanted(r, kn) || !bench_kind_ready(r, kind, (long)(pool >> 21)))
		return 1;
	for (int i = 0; i < runs; i++) {
		uint64_t t;
		/* (b) create and close: up front, all funded; on demand, none */
		if (!(t = create(kind, VMC_FUND_UPFRONT, pool, 0, &c)))
			return -1;
		ngran = pool / vmc_granule_size(c);
		up_create[i] = (double)t / 1e6;
		/* (a) commits that find the pool funded */
		if (!(t = commit_granules(c, pool)))
			return -1;
		up_commit[i] = (double)t / 1e3 / (double)ngran;
		vmc_close(c);
		if (!(t = create(kind, VMC_FUND_UPFRONT, 0, 0, &c)))
			return -1;
		empty_create[i] = (double)t / 1e6;
		vmc_close(c);
		at_create[i] = (up_create[i] - empty_create[i]) * 1e3 / (double)ngran;
		if (!(t = create(kind, VMC_FUND_ONDEMAND, 0, 0, &c)))
			return -1;
		od_create[i] = (double)t / 1e6;
		vmc_close(c);
		/* a small tenant's start: create, then commit 16 MiB */
		for (int p = 0; p < 2; p++) {
			uint64_t t0 = bench_now_ns();
			if (!create(kind, p ? VMC_FUND_ONDEMAND : VMC_FUND_UPFRONT, p ? 0 : pool, 0, &c) ||
			    !commit_granules(c, START_BYTES))
				return -1;
			(p ? od_start : up_start)[i] = (double)(bench_now_ns() - t0) / 1e6;
			vmc_close(c);
		}
		/* (a) commits that fund on demand, per batch size */
		size_t g = (size_t)(pool / ngran);
		batch[0] = g;
		batch[1] = 0;   /* the default */
		batch[2] = pool / 8;
		for (int b = 0; b < NBATCH; b++) {
			if (!create(kind, VMC_FUND_ONDEMAND, 0, batch[b], &c))
				return -1;
			vmc_stats_t st;
			if (!vmc_stats(c, &st))
				batch[b] = st.fund_batch;
			if (!(t = commit_granules(c, pool)))
				return -1;
			calls[b] = ondemand_ops(c);
			od_commit[b][i] = (double)t / 1e3 / (double)ngran;
			in_commit[b][i] = od_commit[b][i] - up_commit[i];
			vmc_close(c);
		}
	}
	bench_fmt_size(pool, sz, sizeof sz);
	bench_fmt_size(pool / ngran, gz, sizeof gz);
	snprintf(ref, sizeof ref, "%s: create %s, all funded up front", kn, sz);
	bench_row_runs(r, ref, "ms", up_create, runs, NULL, kn);
	snprintf(name, sizeof name, "%s: create %s, none funded up front", kn, sz);
	bench_row_runs(r, name, "ms", empty_create, runs, ref, kn);
	snprintf(name, sizeof name, "%s: create %s, on demand", kn, sz);
	bench_row_runs(r, name, "ms", od_create, runs, ref, kn);
	double up = bench_row_median(r, ref), od = bench_row_median(r, name);
	if (up > 0)
		bench_note(r, "%s: creating a %s container on demand takes %.3f of the up-front "
			   "time (%.2f vs %.2f ms): target <= 0.1: %s", kn, sz, od / up, od, up,
			   od <= 0.1 * up ? "MET" : "NOT MET");
	snprintf(ref, sizeof ref, "%s: create + commit 16 MiB, up front", kn);
	bench_row_runs(r, ref, "ms", up_start, runs, NULL, kn);
	snprintf(name, sizeof name, "%s: create + commit 16 MiB, on demand", kn);
	bench_row_runs(r, name, "ms", od_start, runs, ref, kn);

	snprintf(ref, sizeof ref, "%s: funding at create (%s granules)", kn, gz);
	bench_row_runs(r, ref, "us", at_create, runs, NULL, kn);
	char commit_ref[128];
	snprintf(commit_ref, sizeof commit_ref, "%s: commit, funded up front", kn);
	bench_row_runs(r, commit_ref, "us", up_commit, runs, NULL, kn);
	for (int b = 0; b < NBATCH; b++) {
		char bz[32];
		bench_fmt_size(batch[b], bz, sizeof bz);
		snprintf(name, sizeof name, "%s: commit on demand (batch %s%s)", kn, bz,
			 b == 1 ? ", default" : "");
		bench_row_runs(r, name, "us", od_commit[b], runs, commit_ref, kn);
		snprintf(name, sizeof name, "%s: funding in commit (batch %s)", kn, bz);
		bench_row_runs(r, name, "us", in_commit[b], runs, ref, kn);
		bench_note(r, "%s: on demand, batch %s: %llu funds (a fallocate or populate each, "
			   "at most 64 granules) for %llu granules",
			   kn, bz, (unsigned long long)calls[b], (unsigned long long)ngran);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const int kinds[] = { VMC_PAGE_4K, VMC_PAGE_THP, VMC_PAGE_HUGETLB };
	char sz[32], measured[64] = "";
	struct bench_report *r;
	int failed = 0;

	pool = bench_env_size("VMC_BENCH_POOL", BENCH_GiB);
	if (argc > 1 && vmc_parse_size(argv[1], &pool)) {
		fprintf(stderr, "usage: %s [POOL_SIZE]   (e.g. 1G; or VMC_BENCH_POOL)\n", argv[0]);
		return 2;
	}
	if (pool < 64 * BENCH_MiB || pool % VMC_GRANULE_SIZE) {
		fprintf(stderr, "bench_fund: the pool must be a multiple of 2 MiB, 64 MiB at least\n");
		return 2;
	}
	runs = (int)bench_env_int("VMC_BENCH_RUNS", 7);
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_fund: VMC_BENCH_RUNS must be 1..%d\n", MAX_RUNS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_fund: pool %s, %d runs per figure\n", bench_fmt_size(pool, sz, sizeof sz),
	       runs);
	r = bench_report_new("fund", "4k,thp,hugetlb");
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		if (bench_kind_outcome(measure_kind(r, kinds[i]), kinds[i], measured,
				       sizeof measured))
			failed = 1;
	bench_report_set_page_kind(r, measured);
	bench_host_restore(r);
	if (bench_report_finish(r))
		failed = 1;
	return failed;
}
