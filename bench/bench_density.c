/*
 * bench_density.c - issue 14's density target: many tenants, few of them
 * active, served from one container, and the memory that takes next to
 * the usual ways of hosting the same tenants.
 *
 * VMC_BENCH_DENSITY_TENANTS tenants (default 10,000: counter and wordfreq
 * of examples/lua/tenants in turn), of which VMC_BENCH_DENSITY_ACTIVE
 * percent (default 1) keep getting requests.  Each variant runs in a fresh
 * forked process: a warm-up request to every tenant, then requests to the
 * active ones only, until the variant has settled, then
 * VMC_BENCH_LUA_REQUESTS (default 4000) measured requests to the active
 * tenants, VMC_BENCH_DENSITY_WAKES (default 50) requests to idle tenants
 * one at a time, and the memory in use:
 *
 *   (a) hibernating  vmc-lua, 2 workers, strict, 64 KiB granules on 4k
 *                    pages, --hibernate-after VMC_BENCH_DENSITY_IDLE_MS
 *                    (default 1000 ms); images in VMC_BENCH_DENSITY_DIR
 *                    (default /var/tmp/vmc-bench: on disk, so they are not
 *                    memory; on a tmpfs they would be, and are counted);
 *                    settled when every idle tenant is hibernated
 *   (b) resident     the same without hibernation
 *   (c) one lua_State per tenant in one process (malloc, no isolation)
 *   (d) one process per tenant: VMC_BENCH_DENSITY_SAMPLE tenants (default
 *                    100) measured, the memory extrapolated to all of them
 *                    (memory / sample * tenants) - a host cannot start
 *                    10,000 processes here
 *
 * Memory in use: the private memory of the host's processes (Pss minus
 * Pss_Shmem, smaps_rollup), plus, for vmc, the pool's funded memory after
 * the free granules were ballooned back to the host (what an operator does;
 * used, cached and quarantined granules stay) and the metadata file.
 * Target (issue 14): (a) <= 0.1 x (d).
 */
#include "benchlib.h"
#include "vmclua.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef VMC_LUA_TENANTS
#error "VMC_LUA_TENANTS must name examples/lua/tenants"
#endif

enum { V_HIB, V_RESIDENT, V_ONEPROC, V_PROCS, NV };
static const char *const vname[NV] = {
	"(a) vmc, hibernating", "(b) vmc, all resident", "(c) one lua_State per tenant",
	"(d) one process per tenant",
};

struct outcome {
	int      ok;
	char     err[256];
	double   mem_mib, private_mib, pool_mib, meta_mib, image_mib;
	double   rps, active_p50_us, wake_p50_us, wake_p99_us, make_s, settle_s;
	int      tenants, hibernated;
};

static int ntenants, nactive, nsample, idle_ms, nreq, nwakes;
static const char *img_dir;

/* ------------------------------------------------------------- requests */

struct flight { int out, done, bad; double *lat; int nlat; char first_bad[160]; };
struct one { struct flight *f; uint64_t t0; };

static void landed(void *arg, const struct vl_reply *r, int worker)
{
	struct one *o = arg;
	struct flight *f = o->f;
	(void)worker;
	if (r->err && !f->bad++)
		snprintf(f->first_bad, sizeof f->first_bad, "%.150s", r->text);
	if (f->lat)
		f->lat[f->nlat++] = (double)(bench_now_ns() - o->t0) / 1000.0;
	f->out--;
	f->done++;
	free(o);
}

/* The host's events for up to ms: every worker's socket (one per tenant
 * in (d)) and the jobs'. */
static void pump(struct vl_host *h, int ms)
{
	static struct pollfd *pfd;
	static int cap;
	int timeout = ms, max = vl_host_nworkers(h) + 16, k;
	if (max > cap) {
		struct pollfd *p = realloc(pfd, (size_t)max * sizeof *p);
		if (!p)
			return;
		pfd = p;
		cap = max;
	}
	k = vl_host_pollfds(h, pfd, cap, &timeout);
	if (poll(pfd, (nfds_t)k, timeout) >= 0 || errno == EINTR)
		vl_host_events(h, pfd, k);
}

static const char *body_of(int ti)
{
	return ti % 2 ? "the quick brown fox jumps over the lazy dog the end" : "incr";
}

/* n requests to tenants first, first+1, ... (wrapping within span), with
 * up to `depth` in flight; latencies into lat (may be NULL). */
static int drive(struct vl_host *h, int first, int span, int n, int depth, double *lat,
		 char *err, size_t len)
{
	struct flight f = { .lat = lat };
	struct vl_tenant_info ti;
	for (int i = 0; i < n || f.out;) {
		while (i < n && f.out < depth) {
			struct one *o = malloc(sizeof *o);
			int t = first + i++ % span;
			if (!o || vl_host_tenant(h, t, &ti)) {
				snprintf(err, len, "out of memory");
				return -1;
			}
			*o = (struct one){ &f, bench_now_ns() };
			f.out++;
			vl_host_submit(h, ti.name, strlen(ti.name), body_of(t), strlen(body_of(t)), -1,
				       landed, o);
		}
		if (f.out)
			pump(h, 100);
	}
	if (f.bad) {
		snprintf(err, len, "%d requests failed, the first: %s", f.bad, f.first_bad);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- memory */

static uint64_t file_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

static uint64_t dir_bytes(const char *dir)
{
	char cmd[512], line[64] = "";
	snprintf(cmd, sizeof cmd, "du -sk '%s' 2>/dev/null", dir);
	FILE *p = popen(cmd, "r");
	if (!p)
		return 0;
	if (!fgets(line, sizeof line, p))
		line[0] = 0;
	pclose(p);
	return strtoull(line, NULL, 10) * 1024;
}

/* Whether dir (or, before it exists, the directory it will be made in)
 * is on a tmpfs. */
static int on_tmpfs(const char *dir)
{
	char path[4096], *slash;
	struct statfs st;
	snprintf(path, sizeof path, "%s", dir);
	while (statfs(path, &st) && (slash = strrchr(path, '/')) && slash != path)
		*slash = 0;
	return !statfs(path, &st) && st.f_type == TMPFS_MAGIC;
}

static void measure_memory(struct vl_host *h, int v, struct outcome *out)
{
	uint64_t rss, pss, shm;
	vl_host_memory(h, &rss, &pss, &shm);
	out->private_mib = (double)(pss - shm) / 1024;
	out->mem_mib = out->private_mib;
	vmc_t *c = vl_host_vmc(h);
	if (!c)
		return;
	vmc_stats_t st;
	char path[256];
	if (!vmc_stats(c, &st)) {
		uint64_t keep = (uint64_t)(st.used + st.cached + st.quarantined) * vmc_granule_size(c);
		vmc_balloon(c, st.pool_size - keep, NULL);    /* as far as it goes */
		vmc_stats(c, &st);
		out->pool_mib = (double)st.funded_bytes / BENCH_MiB;
	}
	snprintf(path, sizeof path, "/dev/shm/vmc.%s.meta", vl_host_name(h));
	out->meta_mib = (double)file_bytes(path) / BENCH_MiB;
	if (v == V_HIB) {
		snprintf(path, sizeof path, "%s/%s", img_dir, vl_host_name(h));
		out->image_mib = (double)dir_bytes(path) / BENCH_MiB;
	}
	out->mem_mib += out->pool_mib + out->meta_mib + (on_tmpfs(img_dir) ? out->image_mib : 0);
}

/* ------------------------------------------------------------- a variant */

static int hibernated(struct vl_host *h)
{
	struct vl_run_stats rs;
	vl_host_run_stats(h, &rs);
	return rs.hibernated;
}

static int variant(int v, struct outcome *out)
{
	static const char *const kinds[] = { "counter", "wordfreq" };
	struct vl_host_opts o;
	struct vl_host *h;
	int n = v == V_PROCS ? nsample : ntenants, act = n * nactive / 100 ? n * nactive / 100 : 1;
	double *lat = calloc((size_t)(nreq > nwakes ? nreq : nwakes), sizeof *lat);

	vl_host_opts_init(&o);
	o.mode = v == V_ONEPROC ? VL_ONEPROC : v == V_PROCS ? VL_PROCS : VL_VMC;
	o.quiet = 1;
	o.workers = 2;
	o.timeout_ms = 0;
	o.max_tenants = n;
	o.page_kind = "4k";
	o.pool_size = ((uint64_t)n * 512 * 1024 + 256 * BENCH_MiB) & ~(2 * BENCH_MiB - 1);
	o.hibernate_after_ms = v == V_HIB ? idle_ms : 0;
	o.hibernate_dir = img_dir;
	char name[64];
	snprintf(name, sizeof name, "vmc-bench-density-%d", (int)getpid());
	o.name = name;
	uint64_t t0 = bench_now_ns();
	if (!lat || !(h = vl_host_new(&o, out->err, sizeof out->err))) {
		free(lat);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096], tn[64];
		snprintf(path, sizeof path, "%s/%s.lua", VMC_LUA_TENANTS, kinds[i % 2]);
		snprintf(tn, sizeof tn, "%s-%d", kinds[i % 2], i);
		if (vl_host_add_file(h, tn, path, out->err, sizeof out->err) < 0)
			goto fail;
	}
	if (vl_host_start(h, out->err, sizeof out->err))
		goto fail;
	out->make_s = (double)(bench_now_ns() - t0) / 1e9;
	/* warm-up: every tenant once; then the active ones until settled */
	if (drive(h, 0, n, n, 16, NULL, out->err, sizeof out->err))
		goto fail;
	t0 = bench_now_ns();
	do {
		if (drive(h, 0, act, act, 4, NULL, out->err, sizeof out->err))
			goto fail;
		pump(h, 20);
	} while (v == V_HIB && hibernated(h) < n - act &&
		 bench_now_ns() - t0 < 600 * 1000000000ull);
	out->settle_s = (double)(bench_now_ns() - t0) / 1e9;
	uint64_t t1 = bench_now_ns();
	if (drive(h, 0, act, nreq, 8, lat, out->err, sizeof out->err))
		goto fail;
	out->rps = nreq / ((double)(bench_now_ns() - t1) / 1e9);
	out->active_p50_us = bench_median(lat, nreq);
	out->hibernated = hibernated(h);
	measure_memory(h, v, out);
	if (vl_host_vmc(h))          /* fund the pool again for the wakes */
		vmc_balloon(vl_host_vmc(h), 0, NULL);
	/* idle tenants, one at a time: in (a) each wakes from its image */
	int w = n - act < nwakes ? n - act : nwakes;
	for (int i = 0; i < w; i++)
		if (drive(h, act + (int)((uint64_t)i * (uint64_t)(n - act) / (uint64_t)w), 1, 1, 1,
			  lat + i, out->err, sizeof out->err))
			goto fail;
	if (w) {
		out->wake_p50_us = bench_median(lat, w);          /* sorts lat */
		out->wake_p99_us = lat[(w - 1) * 99 / 100];
	}
	out->tenants = n;
	out->ok = 1;
	vl_host_free(h);
	free(lat);
	return 0;
fail:
	vl_host_free(h);
	free(lat);
	return -1;
}

static int run_variant(void *arg, void *out)
{
	return variant(*(int *)arg, out);
}

/* Variant v in a fresh forked process. */
static int run(int v, struct outcome *out)
{
	int st;
	if (bench_in_child(run_variant, &v, out, sizeof *out, &st))
		out->ok = 0;
	if (!out->ok && !out->err[0])
		snprintf(out->err, sizeof out->err, "the host died (status %d)", st);
	return out->ok ? 0 : -1;
}

int main(void)
{
	static struct outcome o[NV];
	struct bench_machine m;
	int failed = 0;

	bench_machine(&m);
	ntenants = (int)bench_env_int("VMC_BENCH_DENSITY_TENANTS", 10000);
	nactive = (int)bench_env_int("VMC_BENCH_DENSITY_ACTIVE", 1);
	nsample = (int)bench_env_int("VMC_BENCH_DENSITY_SAMPLE", 100);
	idle_ms = (int)bench_env_int("VMC_BENCH_DENSITY_IDLE_MS", 1000);
	nwakes = (int)bench_env_int("VMC_BENCH_DENSITY_WAKES", 50);
	nreq = (int)bench_env_int("VMC_BENCH_LUA_REQUESTS", 4000);
	img_dir = getenv("VMC_BENCH_DENSITY_DIR") ? getenv("VMC_BENCH_DENSITY_DIR")
						  : "/var/tmp/vmc-bench";
	if (ntenants < 2 || nactive < 1 || nactive > 100 || nsample < 1 || idle_ms < 1 ||
	    nwakes < 0 || nreq < 1) {
		fprintf(stderr, "bench_density: bad VMC_BENCH_DENSITY_* or VMC_BENCH_LUA_REQUESTS\n");
		return 2;
	}
	if (nsample > ntenants)
		nsample = ntenants;
	setenv("VMC_VERBOSE", "0", 1);
	printf("bench_density: %d tenants, %d%% active, idle after %d ms, images in %s%s; "
	       "(d) measured on %d tenants; %s\n", ntenants, nactive, idle_ms, img_dir,
	       on_tmpfs(img_dir) ? " (tmpfs: counted as memory)" : "", nsample, m.line);
	for (int v = 0; v < NV; v++) {
		if (run(v, &o[v])) {
			fprintf(stderr, "bench_density: %s failed: %s\n", vname[v], o[v].err);
			failed = 1;
			continue;
		}
		if (v == V_PROCS) {      /* extrapolated from the sample */
			o[v].mem_mib = o[v].mem_mib / o[v].tenants * ntenants;
			o[v].private_mib = o[v].private_mib / o[v].tenants * ntenants;
		}
		fprintf(stderr, "bench_density: %s: %.1f MiB, %.0f req/s, made in %.1f s, settled in "
			"%.1f s\n", vname[v], o[v].mem_mib, o[v].rps, o[v].make_s, o[v].settle_s);
	}

	struct bench_report *rep = bench_report_new("density", "4k");
	for (int v = 0; v < NV; v++) {
		if (!o[v].ok)
			continue;
		char row[96];
		snprintf(row, sizeof row, "%s: memory", vname[v]);
		bench_row(rep, row, "MiB", o[v].mem_mib, o[v].mem_mib, o[v].mem_mib, 1,
			  "(d) one process per tenant: memory", NULL);
		snprintf(row, sizeof row, "%s: active req/s", vname[v]);
		bench_row(rep, row, "req/s", o[v].rps, o[v].rps, o[v].rps, 1, NULL, NULL);
		snprintf(row, sizeof row, "%s: idle-tenant request p50", vname[v]);
		bench_row(rep, row, "us", o[v].wake_p50_us, o[v].wake_p50_us, o[v].wake_p50_us, 1,
			  NULL, NULL);
	}
	if (o[V_HIB].ok)
		bench_note(rep, "(a): %d of %d tenants hibernated; private %.1f MiB, pool %.1f MiB, "
			   "metadata %.1f MiB, images %.1f MiB on %s (%s); made in %.1f s",
			   o[V_HIB].hibernated, ntenants, o[V_HIB].private_mib, o[V_HIB].pool_mib,
			   o[V_HIB].meta_mib, o[V_HIB].image_mib, img_dir,
			   on_tmpfs(img_dir) ? "tmpfs: counted" : "not memory", o[V_HIB].make_s);
	if (o[V_PROCS].ok)
		bench_note(rep, "(d) measured on %d tenants and extrapolated to %d (x %.0f)",
			   o[V_PROCS].tenants, ntenants, (double)ntenants / o[V_PROCS].tenants);
	if (o[V_HIB].ok && o[V_PROCS].ok) {
		double r = o[V_HIB].mem_mib / o[V_PROCS].mem_mib;
		bench_note(rep, "target (issue 14): %d tenants, %d%% active: (a) = %.3f x (d) "
			   "(target <= 0.1): %s", ntenants, nactive, r, r <= 0.1 ? "MET" : "NOT MET");
	}
	bench_note(rep, "%s", m.line);
	bench_report_finish(rep);
	printf("\n%-32s %10s %9s %10s %12s %12s\n", "", "memory", "vs (d)", "req/s",
	       "active p50", "idle p50");
	for (int v = 0; v < NV; v++)
		if (o[v].ok)
			printf("%-32s %6.1f MiB %9.3f %10.0f %9.1f us %9.1f us\n", vname[v],
			       o[v].mem_mib, o[V_PROCS].ok ? o[v].mem_mib / o[V_PROCS].mem_mib : 0,
			       o[v].rps, o[v].active_p50_us, o[v].wake_p50_us);
	return failed;
}
