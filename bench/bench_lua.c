/*
 * bench_lua.c - P8: Lua requests/s through vmc-lua with isolation on,
 * against the same Lua code and the same request mix hosted the usual ways.
 *
 * Every variant serves the same tenants (examples/lua/tenants: counter,
 * wordfreq, memhog, each VMC_BENCH_LUA_COPIES times, default 4, so 12
 * tenants named counter-0 ...) through the same code path: vmc-lua's
 * dispatcher and Unix-socket line protocol, driven by its load generator
 * (VMC_BENCH_LUA_REQUESTS requests, default 10000, after 2000 of warm-up,
 * over VMC_BENCH_LUA_CONNS connections, default 8) with two mixes of
 * loadgen.c, each tenant equally likely:
 *   "demo"   counter "incr", wordfreq 8-24 words, memhog 64 KiB, and 1 in 8
 *            memhog requests far over its 4 MiB limit (what make run sends);
 *   "plain"  the same without requests over the limit (every request is an
 *            ordinary one: the cost of isolation per request shows best).
 * Only where the Lua states live and who runs them differs:
 *
 *   (1) vmc strict    each tenant in its own VM, strict isolation, W
 *                     forked workers (W = online CPUs) attach, run, detach
 *   (2) vmc lazy      the same with lazy isolation
 *   (3) one process   all tenants in the dispatcher itself, malloc, no
 *                     isolation at all: the upper bound
 *   (4) procs         one process per tenant (malloc), the dispatcher
 *                     routes each request to its tenant's process: the
 *                     usual way to isolate tenants
 *   (5), (6)          vmc strict / lazy with the requests run in the
 *                     dispatcher (no workers): the same process structure
 *                     as (3), so (5)/(3) is the cost of the VM alone
 *
 * (1), (2), (5), (6) run on each page kind of VMC_BENCH_KINDS (default
 * "hugetlb,4k"; hugetlb is skipped unless enough 2 MiB pages are free:
 * this benchmark does not reserve any).  Each variant runs in a fresh
 * forked dispatcher, VMC_BENCH_RUNS times (default 5), interleaved; the
 * rows are medians.  Memory, measured after the "demo" run with the
 * dispatcher and its workers alive: the sum of VmRSS (/proc/PID/status)
 * over them; and the memory in use: the sum of Pss minus Pss_Shmem
 * (/proc/PID/smaps_rollup: private memory, shared pages counted once) plus
 * the VMs' committed granules (the tenants' memory, whatever part of it is
 * mapped where; hugetlb pages are in neither VmRSS nor Pss).  The pool is
 * funded up front beyond that (noted); vmc_balloon can give the rest back.
 * Target P8: (1) >= 80% of (3).
 */
#include "benchlib.h"
#include "vmclua.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VMC_LUA_TENANTS
#error "VMC_LUA_TENANTS must name examples/lua/tenants"
#endif

enum { V_STRICT, V_LAZY, V_ONEPROC, V_PROCS, V_STRICT1, V_LAZY1, NV };

static const struct vdef {
	const char *name;
	int mode, isolation, inline_;
} vdefs[NV] = {
	[V_STRICT]  = { "vmc strict, W workers", VL_VMC, 1, 0 },
	[V_LAZY]    = { "vmc lazy, W workers", VL_VMC, 0, 0 },
	[V_ONEPROC] = { "one process, malloc, no isolation", VL_ONEPROC, 1, 1 },
	[V_PROCS]   = { "one process per tenant", VL_PROCS, 1, 0 },
	[V_STRICT1] = { "vmc strict, in the dispatcher", VL_VMC, 1, 1 },
	[V_LAZY1]   = { "vmc lazy, in the dispatcher", VL_VMC, 0, 1 },
};

struct outcome {
	int      ok;
	char     err[256];
	double   rps;
	uint64_t rss_kb, pss_kb, pss_shmem_kb, committed, funded, attaches, hits, p50, p99;
};

static int requests, conns, copies, workers, overlimit;

static int add_tenants(struct vl_host *h, char *err, size_t n)
{
	static const char *const names[] = { "counter", "wordfreq", "memhog" };
	for (int k = 0; k < copies; k++)
		for (int i = 0; i < 3; i++) {
			char path[4096], name[64];
			snprintf(path, sizeof path, "%s/%s.lua", VMC_LUA_TENANTS, names[i]);
			snprintf(name, sizeof name, "%s-%d", names[i], k);
			if (vl_host_add_file(h, name, path, err, n) < 0)
				return -1;
		}
	return 0;
}

/* Serve one load-generator run of `nreq` requests. */
static int drive(struct vl_host *h, const char *path, int lfd, const struct vl_mix *mix,
		 int nreq, struct vl_lg_result *res, char *err, size_t n)
{
	int stopfd;
	pid_t pid = vl_loadgen_spawn(path, mix, nreq, conns, 1, 7, &stopfd);
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

/* The dispatcher of one variant (a forked child). */
static int dispatcher(const struct vdef *v, const char *kind, struct outcome *out,
		      struct vl_lg_result *res)
{
	struct vl_host_opts o;
	struct vl_host *h;
	struct vl_mix *mix = calloc(1, sizeof *mix);
	char path[64];
	int lfd = -1, rc = -1;

	vl_host_opts_init(&o);
	o.mode = v->mode;
	o.private_c = 1;
	o.quiet = 1;
	o.isolation = v->isolation;
	o.workers = v->inline_ ? 0 : workers;
	o.pool_size = (uint64_t)copies * 16 * BENCH_MiB + 32 * BENCH_MiB;
	o.page_kind = kind;
	o.timeout_ms = 0;
	if (!mix || !(h = vl_host_new(&o, out->err, sizeof out->err)))
		return -1;
	snprintf(path, sizeof path, "/tmp/vmc-bench-lua-%d.sock", (int)getpid());
	if (add_tenants(h, out->err, sizeof out->err) || vl_host_start(h, out->err, sizeof out->err) ||
	    (lfd = vl_listen(path, out->err, sizeof out->err)) < 0)
		goto out;
	vl_mix_from_host(mix, h);
	mix->overlimit = overlimit;
	if (drive(h, path, lfd, mix, 2000, res, out->err, sizeof out->err))
		goto out;
	struct vl_run_stats a1;
	vl_host_stats_reset(h);
	if (drive(h, path, lfd, mix, requests, res, out->err, sizeof out->err))
		goto out;
	vl_host_run_stats(h, &a1);
	out->rps = (double)res->sent / res->secs;
	vl_host_memory(h, &out->rss_kb, &out->pss_kb, &out->pss_shmem_kb);
	if (vl_host_vmc(h)) {
		vmc_stats_t st;
		vmc_stats(vl_host_vmc(h), &st);
		out->committed = (uint64_t)st.used * VMC_GRANULE_SIZE;
		out->funded = st.funded_bytes;
		out->attaches = a1.attaches;
		out->hits = a1.affinity_hits;
		out->p50 = (uint64_t)(a1.attach_p50_us * 1000);
		out->p99 = (uint64_t)(a1.attach_p99_us * 1000);
	}
	out->ok = 1;
	rc = 0;
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(path);
	}
	vl_host_free(h);
	free(mix);
	return rc;
}

static int run_variant(const struct vdef *v, const char *kind, struct outcome *out)
{
	int st = 0, p[2];
	size_t got = 0;
	if (pipe(p))
		return -1;
	memset(out, 0, sizeof *out);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* the dispatcher's outcome comes back through the pipe */
		struct outcome o;
		struct vl_lg_result res;
		close(p[0]);
		memset(&o, 0, sizeof o);
		int rc = dispatcher(v, kind, &o, &res);
		_exit(write(p[1], &o, sizeof o) != (ssize_t)sizeof o || rc ? 1 : 0);
	}
	close(p[1]);
	while (pid > 0 && got < sizeof *out) {
		ssize_t r = read(p[0], (char *)out + got, sizeof *out - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	if (pid < 0 || got != sizeof *out || !WIFEXITED(st) || WEXITSTATUS(st))
		out->ok = 0;
	if (got != sizeof *out)
		out->err[0] = 0;
	if (pid < 0 || got != sizeof *out)
		out->ok = 0;
	if (!out->ok && !out->err[0])
		snprintf(out->err, sizeof out->err, "the dispatcher died (status %d)", st);
	return out->ok ? 0 : -1;
}

static int kind_usable(const char *kind, uint64_t pool, char *why, size_t n)
{
	vmc_caps_t caps;
	vmc_caps_probe(&caps);
	if (!strcmp(kind, "hugetlb") && (uint64_t)caps.hugepages_free * VMC_GRANULE_SIZE < pool) {
		snprintf(why, n, "%ld free 2 MiB hugepages, %llu needed (run `vmcctl hugepages N` "
			 "as root)", caps.hugepages_free,
			 (unsigned long long)(pool / VMC_GRANULE_SIZE));
		return 0;
	}
	if (!strcmp(kind, "thp") && !caps.thp_shmem) {
		snprintf(why, n, "shmem THP is \"%s\"", caps.thp_shmem_setting);
		return 0;
	}
	return 1;
}

#define MAXK 3
#define MAXRUNS 64
#define NMIX 2

static const char *const mix_name[NMIX] = { "demo", "plain" };
static double rps[NMIX][MAXK + 1][NV][MAXRUNS], rss[MAXK + 1][NV][MAXRUNS],
	mem[MAXK + 1][NV][MAXRUNS];
static struct outcome last[NMIX][MAXK + 1][NV];

static const int order[] = { V_STRICT, V_LAZY, V_STRICT1, V_LAZY1 };
static const char *const num[] = { "(1)", "(2)", "(5)", "(6)" };

/* The rows of one memory measure `what` in MiB: (3) and (1), (2) on each
 * kind against (4). */
static void mem_rows(struct bench_report *r, const char *what, double (*v)[NV][MAXRUNS],
		     char **kinds, int nk, int runs)
{
	char name[200], mref[200];

	snprintf(mref, sizeof mref, "(4) %s", what);
	snprintf(name, sizeof name, "(3) %s", what);
	bench_row_runs(r, name, "MiB", v[nk][V_ONEPROC], runs, mref, "-");
	bench_row_runs(r, mref, "MiB", v[nk][V_PROCS], runs, NULL, "-");
	for (int k = 0; k < nk; k++)
		for (int i = 0; i < 2; i++) {
			snprintf(name, sizeof name, "%s %s %s", num[i], kinds[k], what);
			bench_row_runs(r, name, "MiB", v[k][order[i]], runs, mref, kinds[k]);
		}
}

static void rows(struct bench_report *r, char **kinds, int nk, int runs)
{
	char name[200], ref[200];
	for (int x = 0; x < NMIX; x++) {
		snprintf(ref, sizeof ref, "%s: (3) %s", mix_name[x], vdefs[V_ONEPROC].name);
		bench_row_runs(r, ref, "req/s", rps[x][nk][V_ONEPROC], runs, NULL, "-");
		snprintf(name, sizeof name, "%s: (4) %s", mix_name[x], vdefs[V_PROCS].name);
		bench_row_runs(r, name, "req/s", rps[x][nk][V_PROCS], runs, ref, "-");
		for (int k = 0; k < nk; k++)
			for (int i = 0; i < 4; i++) {
				snprintf(name, sizeof name, "%s: %s %s %s", mix_name[x], num[i], kinds[k],
					 vdefs[order[i]].name);
				bench_row_runs(r, name, "req/s", rps[x][k][order[i]], runs, ref, kinds[k]);
			}
	}
	mem_rows(r, "sum of VmRSS", rss, kinds, nk, runs);
	mem_rows(r, "memory in use", mem, kinds, nk, runs);
}

static void notes(struct bench_report *r, char **kinds, int nk)
{
	char name[200], ref[200];
	for (int k = 0; k < nk; k++)
		for (int i = 0; i < 4; i++) {
			struct outcome *o = &last[1][k][order[i]];
			bench_note(r, "plain: %s %s (last run): attach p50 %llu ns, p99 %llu ns, %llu of "
				   "%llu attaches affinity hits", num[i], kinds[k],
				   (unsigned long long)o->p50, (unsigned long long)o->p99,
				   (unsigned long long)o->hits, (unsigned long long)o->attaches);
		}
	if (nk)
		bench_note(r, "memory: the VMs committed %llu MiB (12 tenants and 2 templates, whole "
			   "2 MiB granules); the pool funded %llu MiB up front",
			   (unsigned long long)(last[0][0][V_STRICT].committed >> 20),
			   (unsigned long long)(last[0][0][V_STRICT].funded >> 20));
	for (int x = 0; x < NMIX; x++) {
		snprintf(ref, sizeof ref, "%s: (3) %s", mix_name[x], vdefs[V_ONEPROC].name);
		double base = bench_row_median(r, ref);
		for (int k = 0; k < nk; k++) {
			snprintf(name, sizeof name, "%s: (1) %s %s", mix_name[x], kinds[k],
				 vdefs[V_STRICT].name);
			double a = bench_row_median(r, name) / base;
			snprintf(name, sizeof name, "%s: (5) %s %s", mix_name[x], kinds[k],
				 vdefs[V_STRICT1].name);
			double b = bench_row_median(r, name) / base;
			bench_note(r, "P8, %s mix, %s: vmc-lua strict (1) = %.1f%% of one process (3): "
				   "%s (target >= 80%%); in one process too (5) = %.1f%%: %s", mix_name[x],
				   kinds[k], 100 * a, a >= 0.8 ? "MET" : "NOT MET", 100 * b,
				   b >= 0.8 ? "met" : "not met");
		}
	}
}

int main(void)
{
	struct bench_machine m;
	const char *kinds_env = getenv("VMC_BENCH_KINDS");
	char kinds_buf[64], *kinds[MAXK], kind_list[64] = "", why[256];
	int nk = 0, runs;

	bench_machine(&m);
	runs = (int)bench_env_int("VMC_BENCH_RUNS", 5);
	requests = (int)bench_env_int("VMC_BENCH_LUA_REQUESTS", 10000);
	conns = (int)bench_env_int("VMC_BENCH_LUA_CONNS", 8);
	copies = (int)bench_env_int("VMC_BENCH_LUA_COPIES", 4);
	workers = (int)(m.nproc < 1 ? 1 : m.nproc > VL_MAX_WORKERS ? VL_MAX_WORKERS : m.nproc);
	if (runs < 1 || runs > MAXRUNS || requests < 1 || conns < 1 || copies < 1 || copies > 80) {
		fprintf(stderr, "bench_lua: bad VMC_BENCH_RUNS (1..%d), _LUA_REQUESTS, _LUA_CONNS "
			"or _LUA_COPIES (1..80)\n", MAXRUNS);
		return 2;
	}
	setenv("VMC_VERBOSE", "0", 1);
	snprintf(kinds_buf, sizeof kinds_buf, "%s", kinds_env ? kinds_env : "hugetlb,4k");
	struct bench_report *r = bench_report_new("lua", kinds_buf);
	uint64_t pool = (uint64_t)copies * 16 * BENCH_MiB + 32 * BENCH_MiB;
	for (char *save, *k = strtok_r(kinds_buf, ",", &save); k && nk < MAXK;
	     k = strtok_r(NULL, ",", &save)) {
		if (!kind_usable(k, pool, why, sizeof why)) {
			bench_note(r, "%s skipped: %s", k, why);
			continue;
		}
		kinds[nk++] = k;
		bench_list_add(kind_list, sizeof kind_list, k);
	}
	if (!nk) {
		fprintf(stderr, "bench_lua: no page kind to measure\n");
		return 1;
	}
	bench_report_set_page_kind(r, kind_list);
	printf("bench_lua: %d tenants (%d x counter, wordfreq, memhog), %d requests per run over "
	       "%d connections, W = %d workers, %d runs; %s\n", 3 * copies, copies, requests,
	       conns, workers, runs, m.line);

	/* slot nk holds the variants without VMs (page kind does not apply) */
	for (int run = 0; run < runs; run++)
		for (int x = 0; x < NMIX; x++)
			for (int k = 0; k <= nk; k++)
				for (int v = 0; v < NV; v++) {
					if ((vdefs[v].mode == VL_VMC) != (k < nk))
						continue;
					struct outcome *o = &last[x][k][v];
					overlimit = x == 0 ? 8 : 0;
					if (run_variant(&vdefs[v], k < nk ? kinds[k] : NULL, o)) {
						fprintf(stderr, "bench_lua: %s mix, %s%s%s: %s\n", mix_name[x],
							vdefs[v].name, k < nk ? " on " : "",
							k < nk ? kinds[k] : "", o->err);
						return 1;
					}
					rps[x][k][v][run] = o->rps;
					if (x)
						continue;
					rss[k][v][run] = (double)o->rss_kb / 1024.0;
					mem[k][v][run] = (double)(o->pss_kb - o->pss_shmem_kb) / 1024.0 +
							 (double)o->committed / BENCH_MiB;
				}
	rows(r, kinds, nk, runs);
	notes(r, kinds, nk);
	return bench_report_finish(r) ? 1 : 0;
}
