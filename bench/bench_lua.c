/*
 * bench_lua.c - P8, P9, P10: Lua requests through vmc-lua with isolation
 * on, against the same Lua code and the same requests hosted the usual
 * ways, at 12 and 1,000 tenants (VMC_BENCH_LUA_TENANTS, default "12,1000";
 * "12,1000,10000" tries 10,000 too).
 *
 * The tenants are examples/lua/tenants' counter, wordfreq and memhog in
 * turn (counter-0, wordfreq-1, memhog-2, counter-3, ...).  Every variant
 * serves them through the same code path: vmc-lua's dispatcher and
 * Unix-socket line protocol, driven by its load generator with the "plain"
 * mix (counter "incr", wordfreq 8-24 words, memhog 64 KiB; each tenant
 * equally likely) over VMC_BENCH_LUA_CONNS connections (default 8), each
 * with VMC_BENCH_LUA_DEPTH requests in flight (default 1).  A run is a
 * warm-up (a request to each tenant in turn, then 1000 at random), then
 * VMC_BENCH_LUA_REQUESTS (default 4000) measured ones.  Only where the Lua states live and who
 * runs them differs:
 *
 *   (1) strict    each tenant in its own VM, strict isolation, W forked
 *                 workers (W = online CPUs) attach, run, detach
 *   (2) lazy      the same with lazy isolation
 *   (3) one process  all tenants in the dispatcher itself, malloc, no
 *                 isolation at all: the upper bound
 *   (4) process per tenant  the dispatcher routes each request to its
 *                 tenant's own process (malloc): the usual way to isolate
 *   (5), (6)      strict / lazy with the requests run in the dispatcher (no
 *                 workers): the process structure of (3), so (5)/(3) is the
 *                 cost of the VM alone
 * and, on the first page kind measured and up to 100 tenants, (1) and (2)
 * with affinity dispatch off and with amortised switches off (--batch 1);
 * the rows without those words have both on (vmc-lua's defaults).
 *
 * (1), (2), (5), (6) run on each page kind of VMC_BENCH_KINDS (default
 * "hugetlb,4k,4k/2M": KIND/GRANULE sets vmc/granule_size, 4k alone has the
 * default 64 KiB granules; hugetlb only if enough 2 MiB pages are free: this
 * benchmark reserves none).  A variant that cannot run at a size is skipped with the
 * reason.  Each run is a fresh forked dispatcher; runs are interleaved,
 * VMC_BENCH_RUNS times (default 3; sizes above 100 tenants a third as
 * often, at least once); rows are medians.  Per row, measured after the
 * warm-up in the processes that ran the requests (the workers report their
 * figures with each answer; (3), (5), (6): the dispatcher): requests/s,
 * page faults per request (trap faults, perf; getrusage's minor faults where
 * perf events are not allowed: the notes say which), system calls through vmc per
 * request (vmc_syscalls), attach p50/p99 in µs (exact percentiles of the
 * attach times), attaches per request (below 1: batches), memory in use
 * (the private memory of the dispatcher and its workers, Pss - Pss_Shmem of
 * smaps_rollup, plus the granules the VMs hold; the pool is funded up front
 * beyond that).  Targets: P8 (2) >= 0.8 x (3), (1) >= 1.0 x (4) at 1,000
 * tenants; P9 <= 1 fault per request; P10 memory <= (4); and (issue 14)
 * (1) on 4k at 64 KiB granules >= 0.9 x (1) on 4k/2M.
 */
#include "benchlib.h"
#include "vmclua.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef VMC_LUA_TENANTS
#error "VMC_LUA_TENANTS must name examples/lua/tenants"
#endif

static const struct config {
	const char *label;
	int mode, isolation, inline_, affinity, batch, num, all_kinds;
} configs[] = {
	{ "(1) strict",               VL_VMC, 1, 0, 1, VL_BATCH_MAX, 1, 1 },
	{ "(2) lazy",                 VL_VMC, 0, 0, 1, VL_BATCH_MAX, 2, 1 },
	{ "(5) strict, inline",       VL_VMC, 1, 1, 1, VL_BATCH_MAX, 5, 1 },
	{ "(6) lazy, inline",         VL_VMC, 0, 1, 1, VL_BATCH_MAX, 6, 1 },
	{ "(1) strict, affinity off", VL_VMC, 1, 0, 0, VL_BATCH_MAX, 1, 0 },
	{ "(1) strict, batch 1",      VL_VMC, 1, 0, 1, 1, 1, 0 },
	{ "(2) lazy, affinity off",   VL_VMC, 0, 0, 0, VL_BATCH_MAX, 2, 0 },
	{ "(2) lazy, batch 1",        VL_VMC, 0, 0, 1, 1, 2, 0 },
	{ "(3) one process",          VL_ONEPROC, 1, 1, 1, VL_BATCH_MAX, 3, 1 },
	{ "(4) process per tenant",   VL_PROCS, 1, 0, 1, VL_BATCH_MAX, 4, 1 },
};
#define NCONF (int)(sizeof configs / sizeof configs[0])
#define MAXK  3
#define MAXRUNS 64

struct outcome {
	int      ok;
	char     err[256];
	double   rps, faults, syscalls, p50, p99, attaches, hits, mem_mib;
};

static int requests, conns, depth, workers;

static uint64_t pool_for(int tenants)
{
	/* counter and wordfreq hold a 2 MiB granule, memhog two; templates, slack */
	uint64_t mib = (uint64_t)tenants * 8 / 3 + 64;
	return (mib + 1) / 2 * 2 * BENCH_MiB;
}

static int add_tenants(struct vl_host *h, int n, char *err, size_t len)
{
	static const char *const kinds[] = { "counter", "wordfreq", "memhog" };
	for (int i = 0; i < n; i++) {
		char path[4096], name[64];
		struct vl_tenant_info ti;
		snprintf(path, sizeof path, "%s/%s.lua", VMC_LUA_TENANTS, kinds[i % 3]);
		snprintf(name, sizeof name, "%s-%d", kinds[i % 3], i);
		int k = vl_host_add_file(h, name, path, err, len);
		if (k < 0 || vl_host_tenant(h, k, &ti) || ti.state != VL_T_READY)
			return -1;
	}
	return 0;
}

/* Serve one load-generator run of `nreq` requests. */
static int drive(struct vl_host *h, const char *path, int lfd, const struct vl_mix *mix,
		 int nreq, struct vl_lg_result *res, char *err, size_t n)
{
	int stopfd;
	pid_t pid = vl_loadgen_spawn(path, mix, nreq, conns, depth, 7, &stopfd);
	if (pid < 0) {
		snprintf(err, n, "load generator: %s", strerror(errno));
		return -1;
	}
	vl_serve(h, lfd, -1, stopfd);
	if (vl_loadgen_wait(pid, stopfd, res) || res->unexpected) {
		snprintf(err, n, "load generator failed; %llu unexpected replies, first %.150s",
			 (unsigned long long)res->unexpected, res->first_unexpected);
		return -1;
	}
	return 0;
}

static double per(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

/* The dispatcher of one run (a forked child). */
static int dispatcher(const struct config *v, const char *kind, int tenants, struct outcome *out)
{
	struct vl_host_opts o;
	struct vl_host *h;
	struct vl_mix mix = { 0 };
	struct vl_lg_result res;
	struct vl_run_stats rs;
	char path[64];
	int lfd = -1, rc = -1;

	vl_host_opts_init(&o);
	o.mode = v->mode;
	o.private_c = 1;
	o.quiet = 1;
	o.isolation = v->isolation;
	o.workers = v->inline_ ? 0 : workers;
	o.affinity = v->affinity;
	o.batch = v->batch;
	o.max_tenants = tenants;
	o.pool_size = pool_for(tenants);
	char kbuf[32], *slash;
	snprintf(kbuf, sizeof kbuf, "%s", kind);
	if ((slash = strchr(kbuf, '/')))
		*slash = 0;
	o.page_kind = kbuf;
	o.granule = slash ? slash + 1 : NULL;
	o.timeout_ms = 0;
	if (!(h = vl_host_new(&o, out->err, sizeof out->err)))
		return -1;
	snprintf(path, sizeof path, "/tmp/vmc-bench-lua-%d.sock", (int)getpid());
	if (add_tenants(h, tenants, out->err, sizeof out->err) ||
	    vl_host_start(h, out->err, sizeof out->err) ||
	    (lfd = vl_listen(path, out->err, sizeof out->err)) < 0 || vl_mix_from_host(&mix, h))
		goto out;
	mix.overlimit = 0;
	mix.sequential = 1;              /* the warm-up: each tenant once, then 1000 at random */
	if (drive(h, path, lfd, &mix, tenants, &res, out->err, sizeof out->err))
		goto out;
	mix.sequential = 0;
	if (drive(h, path, lfd, &mix, 1000, &res, out->err, sizeof out->err))
		goto out;
	vl_host_stats_reset(h);
	if (drive(h, path, lfd, &mix, requests, &res, out->err, sizeof out->err))
		goto out;
	vl_host_run_stats(h, &rs);
	out->rps = (double)res.sent / res.secs;
	out->faults = per(rs.minflt, rs.requests);
	out->syscalls = per(rs.syscalls, rs.requests);
	out->attaches = per(rs.attaches, rs.requests);
	out->hits = per(rs.affinity_hits, rs.attaches);
	out->p50 = rs.attach_p50_us;
	out->p99 = rs.attach_p99_us;
	out->mem_mib = (double)vl_host_mem_in_use(h) / BENCH_MiB;
	out->ok = 1;
	rc = 0;
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(path);
	}
	vl_mix_free(&mix);
	vl_host_free(h);
	return rc;
}

struct job { const struct config *v; const char *kind; int tenants; };

static int run_job(void *arg, void *out)
{
	struct job *j = arg;
	return dispatcher(j->v, j->kind, j->tenants, out);
}

/* One run in a fresh forked dispatcher. */
static int run_config(const struct config *v, const char *kind, int tenants, struct outcome *out)
{
	struct job j = { v, kind, tenants };
	int st;
	if (bench_in_child(run_job, &j, out, sizeof *out, &st))
		out->ok = 0;
	if (!out->ok && !out->err[0])
		snprintf(out->err, sizeof out->err, "the dispatcher died (status %d)", st);
	return out->ok ? 0 : -1;
}

/* Why variant v cannot run at this size on this kind ("" if it can). */
static void cannot(const struct config *v, const char *kind, int tenants, char *why, size_t n)
{
	vmc_caps_t caps;
	uint64_t pool = pool_for(tenants);
	char a[32], b[32];
	*why = 0;
	vmc_caps_probe(&caps);
	if (v->mode == VL_PROCS && (uint64_t)tenants * 4 * BENCH_MiB > caps.mem_available / 2)
		snprintf(why, n, "%d processes of a few MiB each would take more than half of "
			 "MemAvailable (%s)", tenants, bench_fmt_size(caps.mem_available, a, sizeof a));
	if (v->mode != VL_VMC)
		return;
	if (!strncmp(kind, "hugetlb", 7) && (uint64_t)caps.hugepages_free * VMC_GRANULE_SIZE < pool)
		snprintf(why, n, "%ld free 2 MiB hugepages, %llu needed (run `vmcctl hugepages N` as "
			 "root)", caps.hugepages_free, (unsigned long long)(pool / VMC_GRANULE_SIZE));
	else if (!strncmp(kind, "thp", 3) && !caps.thp_shmem)
		snprintf(why, n, "shmem THP is \"%s\"", caps.thp_shmem_setting);
	else if (pool > caps.mem_available / 2)
		snprintf(why, n, "a pool of %s (sized for tenants of 2 MiB granules) is more than "
			 "half of MemAvailable (%s)", bench_fmt_size(pool, a, sizeof a),
			 bench_fmt_size(caps.mem_available, b, sizeof b));
}

/* The results of one size: per config and kind, the runs. */
struct size_results {
	int tenants, runs, nk;
	char *kinds[MAXK];
	char why[NCONF][MAXK][256];          /* skipped: the reason */
	struct outcome o[NCONF][MAXK][MAXRUNS];
};

/* Does config c run on kind k at this size?  The rows with affinity or
 * batches off: on the first kind, up to 100 tenants (beyond, a tenant's
 * requests hardly ever queue up, and the runs take long). */
static int applies(const struct size_results *s, int c, int k)
{
	return (configs[c].mode == VL_VMC || k == 0) && k < (configs[c].mode == VL_VMC ? s->nk : 1) &&
	       (configs[c].all_kinds || (k == 0 && s->tenants <= 100));
}

static void label(const struct size_results *s, int c, int k, char *buf, size_t n)
{
	if (configs[c].mode == VL_VMC)
		snprintf(buf, n, "%s %s", configs[c].label, s->kinds[k]);
	else
		snprintf(buf, n, "%s", configs[c].label);
}

static double median_of(const struct size_results *s, int c, int k, size_t field)
{
	double v[MAXRUNS];
	for (int r = 0; r < s->runs; r++)
		v[r] = *(const double *)((const char *)&s->o[c][k][r] + field);
	return bench_median(v, s->runs);
}

/* The index of the main row of variant (num): its first config. */
static int config_of(int num)
{
	int c = 0;
	while (c < NCONF - 1 && configs[c].num != num)
		c++;
	return c;
}

/* The median of a figure of variant (num) on kind k; -1 if it did not run. */
static double fig(const struct size_results *s, int num, int k, size_t field)
{
	int c = config_of(num);
	k = configs[c].mode == VL_VMC ? k : 0;
	return applies(s, c, k) && !s->why[c][k][0] ? median_of(s, c, k, field) : -1;
}

static const char *verdict(double v, double target, int at_most)
{
	return v < 0 ? "not measured" : (at_most ? v <= target : v >= target) ? "MET" : "NOT MET";
}

/* The targets of docs/DESIGN.md this benchmark measures, per page kind. */
static void verdicts(struct bench_report *rep, const struct size_results *s)
{
	const size_t rps = offsetof(struct outcome, rps), flt = offsetof(struct outcome, faults),
		     mem = offsetof(struct outcome, mem_mib);
	double r3 = fig(s, 3, 0, rps), r4 = fig(s, 4, 0, rps), m4 = fig(s, 4, 0, mem);
	for (int k = 0; k < s->nk; k++) {
		double lazy = fig(s, 2, k, rps), strict = fig(s, 1, k, rps);
		if (lazy < 0 && strict < 0)
			continue;                /* skipped at this size: the notes say why */
		double a = lazy > 0 && r3 > 0 ? lazy / r3 : -1, b = strict > 0 && r4 > 0 ? strict / r4 : -1;
		double f1 = fig(s, 1, k, flt), f2 = fig(s, 2, k, flt), m1 = fig(s, 1, k, mem);
		bench_note(rep, "%d tenants, %s: P8 lazy (2) = %.2f x (3): %s (target >= 0.8); strict "
			   "(1) = %.2f x (4): %s (target >= 1.0 at 1,000 tenants)", s->tenants,
			   s->kinds[k], a, verdict(a, 0.8, 0), b, verdict(b, 1.0, 0));
		bench_note(rep, "%d tenants, %s: P9 faults per request (1) %.2f, (2) %.2f: %s (target "
			   "<= 1); P10 memory in use (1) %.1f MiB vs (4) %.1f MiB: %s", s->tenants,
			   s->kinds[k], f1, f2, verdict(f1 > f2 ? f1 : f2, 1, 1), m1, m4,
			   verdict(m1 >= 0 && m4 > 0 ? m1 / m4 : -1, 1, 1));
	}
	int small = -1, big = -1;
	for (int k = 0; k < s->nk; k++) {
		small = strcmp(s->kinds[k], "4k") ? small : k;
		big = strcmp(s->kinds[k], "4k/2M") ? big : k;
	}
	double r64 = small >= 0 ? fig(s, 1, small, rps) : -1, r2m = big >= 0 ? fig(s, 1, big, rps) : -1;
	if (r64 >= 0 && r2m > 0)
		bench_note(rep, "%d tenants: strict (1) on 4k at 64 KiB granules = %.2f x at 2 MiB "
			   "granules: %s (target >= 0.9)", s->tenants, r64 / r2m,
			   verdict(r64 / r2m, 0.9, 0));
	bench_note(rep, "page faults are %s", vl_fault_source());
}

static void row(struct bench_report *rep, const struct size_results *s, int c, int k,
		const char *what, const char *unit, size_t field, const char *vs)
{
	char name[96], ref[96];
	double v[MAXRUNS];
	label(s, c, k, name, sizeof name);
	snprintf(name + strlen(name), sizeof name - strlen(name), ": %s", what);
	if (vs)
		snprintf(ref, sizeof ref, "%s: %s", vs, what);
	for (int r = 0; r < s->runs; r++)
		v[r] = *(const double *)((const char *)&s->o[c][k][r] + field);
	bench_row_runs(rep, name, unit, v, s->runs, vs ? ref : NULL,
		       configs[c].mode == VL_VMC ? s->kinds[k] : "-");
}

static void report(const struct size_results *s, const struct bench_machine *m, const char *kl)
{
	char name[32], lbl[96];
	snprintf(name, sizeof name, "lua-%d", s->tenants);
	struct bench_report *rep = bench_report_new(name, kl);
	for (int c = 0; c < NCONF; c++)
		for (int k = 0; k < MAXK; k++) {
			if (!applies(s, c, k) || s->why[c][k][0])
				continue;
			int vmc = configs[c].mode == VL_VMC;
			row(rep, s, c, k, "req/s", "req/s", offsetof(struct outcome, rps), "(3) one process");
			row(rep, s, c, k, "faults/req", "faults", offsetof(struct outcome, faults), NULL);
			if (vmc) {
				row(rep, s, c, k, "syscalls/req", "calls", offsetof(struct outcome, syscalls), NULL);
				row(rep, s, c, k, "attach p50", "us", offsetof(struct outcome, p50), NULL);
				row(rep, s, c, k, "attach p99", "us", offsetof(struct outcome, p99), NULL);
				row(rep, s, c, k, "attaches/req", "ratio", offsetof(struct outcome, attaches), NULL);
			}
			row(rep, s, c, k, "memory", "MiB", offsetof(struct outcome, mem_mib),
			    "(4) process per tenant");
		}
	for (int c = 0; c < NCONF; c++)
		for (int k = 0; k < MAXK; k++)
			if (applies(s, c, k) && s->why[c][k][0]) {
				label(s, c, k, lbl, sizeof lbl);
				bench_note(rep, "%d tenants: %s skipped: %s", s->tenants, lbl, s->why[c][k]);
			}
	verdicts(rep, s);
	bench_note(rep, "%d tenants, W = %d workers, %d connections x %d in flight, %d measured "
		   "requests per run, %d runs; %s", s->tenants, workers, conns, depth, requests,
		   s->runs, m->line);
	bench_report_finish(rep);
}

/* One line per row with every figure, and the ratios to (3) and (4). */
static void summary(const struct size_results *s)
{
	double r3 = fig(s, 3, 0, offsetof(struct outcome, rps));
	double r4 = fig(s, 4, 0, offsetof(struct outcome, rps));
	printf("\nbench_lua, %d tenants (medians of %d runs):\n%-34s %8s %7s %7s %9s %9s %9s %9s "
	       "%8s %6s %9s\n", s->tenants, s->runs, "", "req/s", "vs (3)", "vs (4)", "faults/req",
	       "sys/req", "attach50", "attach99", "att/req", "hits", "mem MiB");
	for (int c = 0; c < NCONF; c++)
		for (int k = 0; k < MAXK; k++) {
			char lbl[96];
			if (!applies(s, c, k))
				continue;
			label(s, c, k, lbl, sizeof lbl);
			if (s->why[c][k][0]) {
				printf("%-34s skipped: %.90s\n", lbl, s->why[c][k]);
				continue;
			}
			double v[8];
			static const size_t f[8] = {
				offsetof(struct outcome, rps), offsetof(struct outcome, faults),
				offsetof(struct outcome, syscalls), offsetof(struct outcome, p50),
				offsetof(struct outcome, p99), offsetof(struct outcome, attaches),
				offsetof(struct outcome, hits), offsetof(struct outcome, mem_mib),
			};
			for (int i = 0; i < 8; i++)
				v[i] = median_of(s, c, k, f[i]);
			printf("%-34s %8.0f %7.2f %7.2f %9.2f", lbl, v[0], r3 > 0 ? v[0] / r3 : 0,
			       r4 > 0 ? v[0] / r4 : 0, v[1]);
			if (configs[c].mode == VL_VMC)
				printf(" %9.2f %7.1fus %7.1fus %8.2f %5.0f%%", v[2], v[3], v[4], v[5],
				       100 * v[6]);
			else
				printf(" %9s %9s %9s %8s %6s", "-", "-", "-", "-", "-");
			printf(" %9.1f\n", v[7]);
		}
}

static void measure(struct size_results *s, char **kinds, int nk)
{
	s->nk = nk;
	for (int k = 0; k < nk; k++)
		s->kinds[k] = kinds[k];
	for (int c = 0; c < NCONF; c++)
		for (int k = 0; k < nk; k++)
			if (applies(s, c, k))
				cannot(&configs[c], s->kinds[k], s->tenants, s->why[c][k],
				       sizeof s->why[c][k]);
	for (int run = 0; run < s->runs; run++)
		for (int c = 0; c < NCONF; c++)
			for (int k = 0; k < nk; k++) {
				struct outcome *o = &s->o[c][k][run];
				char lbl[96];
				if (!applies(s, c, k) || s->why[c][k][0])
					continue;
				label(s, c, k, lbl, sizeof lbl);
				uint64_t t0 = bench_now_ns();
				if (run_config(&configs[c], configs[c].mode == VL_VMC ? s->kinds[k] : NULL,
					       s->tenants, o))
					snprintf(s->why[c][k], sizeof s->why[c][k], "failed: %.240s", o->err);
				fprintf(stderr, "bench_lua: %d tenants, run %d/%d: %s: %.0f req/s (%.1f s)\n",
					s->tenants, run + 1, s->runs, lbl, o->rps,
					(double)(bench_now_ns() - t0) / 1e9);
			}
}

int main(void)
{
	static struct size_results res;
	struct bench_machine m;
	struct rlimit rl;
	const char *kinds_env = getenv("VMC_BENCH_KINDS"), *sizes_env = getenv("VMC_BENCH_LUA_TENANTS");
	char kinds_buf[64], sizes_buf[64], *kinds[MAXK], kind_list[64] = "";
	int nk = 0, runs, failed = 0;

	bench_machine(&m);
	runs = (int)bench_env_int("VMC_BENCH_RUNS", 3);
	requests = (int)bench_env_int("VMC_BENCH_LUA_REQUESTS", 4000);
	conns = (int)bench_env_int("VMC_BENCH_LUA_CONNS", 8);
	depth = (int)bench_env_int("VMC_BENCH_LUA_DEPTH", 1);
	workers = (int)(m.nproc < 1 ? 1 : m.nproc > VL_MAX_WORKERS ? VL_MAX_WORKERS : m.nproc);
	if (runs < 1 || runs > MAXRUNS || requests < 1 || conns < 1 || depth < 1 || depth > 64) {
		fprintf(stderr, "bench_lua: bad VMC_BENCH_RUNS (1..%d), _LUA_REQUESTS, _LUA_CONNS or "
			"_LUA_DEPTH (1..64)\n", MAXRUNS);
		return 2;
	}
	/* (4) at 1,000 tenants holds a socket per tenant process */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	setenv("VMC_VERBOSE", "0", 1);
	snprintf(kinds_buf, sizeof kinds_buf, "%s", kinds_env ? kinds_env : "hugetlb,4k,4k/2M");
	snprintf(sizes_buf, sizeof sizes_buf, "%s", sizes_env ? sizes_env : "12,1000");
	for (char *save, *k = strtok_r(kinds_buf, ",", &save); k && nk < MAXK;
	     k = strtok_r(NULL, ",", &save)) {
		kinds[nk++] = k;
		bench_list_add(kind_list, sizeof kind_list, k);
	}
	printf("bench_lua: W = %d workers, %d connections x %d in flight, %d measured requests "
	       "per run; page kinds %s; %s\n", workers, conns, depth, requests, kind_list, m.line);
	for (char *save, *z = strtok_r(sizes_buf, ",", &save); z; z = strtok_r(NULL, ",", &save)) {
		memset(&res, 0, sizeof res);
		res.tenants = atoi(z);
		if (res.tenants < 1) {
			fprintf(stderr, "bench_lua: VMC_BENCH_LUA_TENANTS: bad size '%s'\n", z);
			return 2;
		}
		res.runs = res.tenants > 100 ? (runs + 2) / 3 : runs;
		measure(&res, kinds, nk);
		report(&res, &m, kind_list);
		summary(&res);
		for (int c = 0; c < NCONF; c++)
			for (int k = 0; k < MAXK; k++)
				failed |= !strncmp(res.why[c][k], "failed", 6);
	}
	return failed;
}
