/*
 * demo.c - `vmc-lua --demo`, what `make run` shows.  The sample tenants
 * serve the same request mix three ways, each in a host of its own with 2
 * workers and the load generator on the Unix socket:
 *   - strict isolation: a worker attaches a tenant's VM, runs, detaches
 *     (detach revokes access);
 *   - lazy isolation: the same, but detach leaves the mapping for a cheap
 *     re-attach;
 *   - one process on malloc with no isolation at all: the baseline the
 *     other two are judged against.
 * First one line says which page kind the pool got and why (and, as root,
 * how to get hugepages when they are missing).  In the vmc modes, pinned
 * requests then show the counter's state carried from worker 0 to worker
 * 1, a tenant over its memory limit, a runaway request ended by the CPU
 * budget, and a Lua error, each followed by a request that works.  At the
 * end one table puts the three side by side: requests/s, request and
 * attach latencies in µs (exact percentiles of measured times), affinity
 * hits, system calls and page faults per request, memory in use.
 * Exits 0 only if every reply was what the mix expects.
 */
#include "vmclua.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mode_result {
	int    ran;
	double rps, p50, p99, mem_mib;
	struct vl_run_stats rs;
};

static const struct { const char *title, *col; int mode, iso; } modes[] = {
	{ "strict isolation (vmc/memory_isolation = 1)", "strict", VL_VMC, 1 },
	{ "lazy isolation (vmc/memory_isolation = 0)", "lazy", VL_VMC, 0 },
	{ "one process, malloc, no isolation (the baseline)", "no isolation", VL_ONEPROC, 1 },
};
#define NMODES (int)(sizeof modes / sizeof modes[0])

static const char *mib(uint64_t b, char *buf)
{
	if (b >= 1024 * 1024)
		sprintf(buf, "%.1f MiB", (double)b / (1024.0 * 1024));
	else
		sprintf(buf, "%.1f KiB", (double)b / 1024.0);
	return buf;
}

/* build/X/vmcctl, next to build/X/examples/lua/vmc-lua, or "vmcctl". */
static void vmcctl_path(char *out, size_t n)
{
	char self[PATH_MAX], path[PATH_MAX + 16], real[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;
	snprintf(out, n, "vmcctl");
	if (k <= 0)
		return;
	self[k] = 0;
	if ((slash = strrchr(self, '/'))) {
		*slash = 0;
		snprintf(path, sizeof path, "%s/../../vmcctl", self);
		if (!access(path, X_OK) && realpath(path, real))
			snprintf(out, n, "%s", real);
	}
}

/* One line: the page kind the container got, and why. */
static void page_kind_line(struct vl_host *h, const char *asked)
{
	vmc_stats_t st;
	vmc_caps_t caps;
	char ctl[PATH_MAX + 16];
	long need = 0;
	if (vmc_stats(vl_host_vmc(h), &st))
		return;
	vmc_caps_probe(&caps);
	need = (long)(st.pool_size / VMC_GRANULE_SIZE);
	printf("page kind: %s (%s", vmc_page_kind_name(st.page_kind), asked ? "asked for" : "auto");
	if (st.page_kind == VMC_PAGE_HUGETLB)
		printf(": enough free 2 MiB hugepages: the pool took %ld, %ld are left)\n", need,
		       caps.hugepages_free);
	else
		printf(": %ld free 2 MiB hugepages, %ld needed; shmem THP is \"%s\")\n",
		       caps.hugepages_free, need, caps.thp_shmem_setting);
	printf("  granule %zu KiB: a tenant's memory grows by that much\n",
	       vmc_granule_size(vl_host_vmc(h)) >> 10);
	if (st.page_kind == VMC_PAGE_HUGETLB || asked)
		return;
	vmcctl_path(ctl, sizeof ctl);
	printf("  with hugepages an attach fills one page table entry per 2 MiB, not 512; "
	       "%s`%s hugepages %ld` reserves them, then run this again\n",
	       geteuid() == 0 ? "you are root: " : "as root, ", ctl, need);
}

static int expect(struct vl_host *h, const char *tenant, const char *body, int pin,
		  int want_err, const char *want, const char *why)
{
	struct vl_reply r;
	int w = vl_host_call(h, tenant, body, pin, &r);
	int good = r.err == want_err && (!want || strstr(r.text, want));
	printf("  %-8s %-8s -> %s %.70s    [worker %d] %s\n", tenant, body, r.err ? "ERR" : "OK",
	       r.text, w, good ? why : "UNEXPECTED");
	return good ? 0 : -1;
}

static void tenant_table(struct vl_host *h)
{
	char b1[32], b2[32], b3[32], b4[32];
	printf("\n  %-9s %9s %11s %11s %11s %9s  %s\n", "tenant", "limit", "committed",
	       "Lua heap", "VM heap", "requests", "by worker");
	for (int i = 0; i < vl_host_ntenants(h); i++) {
		struct vl_tenant_info ti;
		vmc_vm_stats_t vs;
		uint64_t lua = 0, heap = 0;
		char bw[128] = "";
		vl_host_tenant(h, i, &ti);
		if (ti.state != VL_T_READY || vmc_vm_stats(vl_host_vmc(h), ti.vm, &vs))
			continue;
		vl_vm_memory(vl_host_vmc(h), ti.vm, &lua, &heap);
		for (int w = 0, n = 0; w < vl_host_nworkers(h) && w < VL_MAX_WORKERS; w++)
			n += snprintf(bw + n, sizeof bw - (size_t)n, "%sw%d:%llu", w ? " " : "", w,
				      (unsigned long long)ti.by_worker[w]);
		printf("  %-9s %9s %11s %11s %11s %9llu  %s\n", ti.name, mib(ti.limit, b1),
		       mib(vs.committed, b2), mib(lua, b3), mib(heap, b4),
		       (unsigned long long)ti.served, bw);
	}
}

/* Pinned requests that show what isolation, limits and budgets do. */
static int pinned(struct vl_host *h, uint64_t incr)
{
	char want[64];
	int bad = 0;
	if (vl_host_find(h, "counter") >= 0) {
		printf("\n  the counter took %llu increments from the load generator; now pinned "
		       "requests:\n", (unsigned long long)incr);
		snprintf(want, sizeof want, "%llu", (unsigned long long)incr);
		bad |= expect(h, "counter", "get", 0, 0, want, "worker 0 sees every increment");
		snprintf(want, sizeof want, "%llu", (unsigned long long)incr + 1);
		bad |= expect(h, "counter", "incr", 1, 0, want,
			      "worker 1 carries on: the state is in the VM, not the worker");
		bad |= expect(h, "counter", "bogus", -1, 1, "unknown request",
			      "a Lua error is an ERR reply");
	}
	if (vl_host_find(h, "memhog") >= 0) {
		bad |= expect(h, "memhog", "100000", -1, 1, "not enough memory",
			      "over its VM's limit: the allocator returned NULL");
		bad |= expect(h, "memhog", "64", -1, 0, NULL, "and its next request works");
	}
	if (vl_host_find(h, "spin") >= 0) {
		bad |= expect(h, "spin", "forever", -1, 1, "CPU budget exceeded",
			      "a runaway loop: the CPU budget ends it");
		bad |= expect(h, "spin", "again", -1, 0, NULL, "the worker and the state live on");
	}
	return bad;
}

static int run_mode(const struct vl_demo_opts *o, int m, struct mode_result *mr)
{
	struct vl_host_opts ho;
	struct vl_host *h;
	struct vl_lg_result res;
	struct vl_mix mix = { 0 };
	char err[1024], name[96], path[128];
	double scratch, clone;
	int rc = -1, lfd = -1, stopfd = -1;

	vl_host_opts_init(&ho);
	ho.mode = modes[m].mode;
	ho.workers = o->workers;
	ho.isolation = modes[m].iso;
	ho.page_kind = o->page_kind;
	ho.granule = o->granule;
	ho.pool_size = 128ull << 20;
	ho.quiet = 1;
	snprintf(name, sizeof name, "vmc-lua-%d-%s", (int)getpid(), modes[m].col);
	ho.name = name;
	fflush(stdout);
	if (!(h = vl_host_new(&ho, err, sizeof err))) {
		fprintf(stderr, "vmc-lua: %s\n", err);
		return -1;
	}
	if (m == 0)
		page_kind_line(h, o->page_kind);
	printf("\n== %s ==\n", modes[m].title);
	if (ho.mode == VL_VMC && vl_host_init_times(h, 7, &scratch, &clone) == 0)
		printf("tenant init (median of 7): from scratch %.0f us (vmc_vm_create + lua_newstate"
		       " + libraries), clone %.0f us (vmc_vm_clone of the template)\n", scratch, clone);
	snprintf(path, sizeof path, "/tmp/vmc-lua-%d.sock", (int)getpid());
	if (vl_host_add_dir(h, o->tenants, err, sizeof err) < 0 || vl_host_start(h, err, sizeof err) ||
	    (lfd = vl_listen(path, err, sizeof err)) < 0 || vl_mix_from_host(&mix, h))
		goto fail;
	mix.overlimit = 0;     /* ordinary requests only; the pinned ones show the limits */
	/* warm-up, then the measured run */
	uint64_t incr = 0;
	for (int run = 0; run < 2; run++) {
		int n = run ? o->requests : o->requests / 10 + 1;
		pid_t lg = vl_loadgen_spawn(path, &mix, n, o->conns, 1, 42 + (uint64_t)run, &stopfd);
		if (lg < 0) {
			snprintf(err, sizeof err, "cannot start the load generator: %s", strerror(errno));
			goto fail;
		}
		vl_host_stats_reset(h);
		vl_serve(h, lfd, -1, stopfd);
		int lg_err = vl_loadgen_wait(lg, stopfd, &res);
		stopfd = -1;
		if (lg_err) {
			snprintf(err, sizeof err, "the load generator failed");
			goto fail;
		}
		incr += res.counter_incr;
	}
	vl_host_run_stats(h, &mr->rs);
	mr->rps = (double)res.sent / res.secs;
	mr->p50 = res.p50_us;
	mr->p99 = res.p99_us;
	mr->mem_mib = (double)vl_host_mem_in_use(h) / (1024.0 * 1024);
	mr->ran = 1;
	printf("load: %llu requests over %d connections in %.3f s: %.0f requests/s; "
	       "%llu OK, %llu ERR, %llu unexpected%s%s\n", (unsigned long long)res.sent, o->conns,
	       res.secs, mr->rps, (unsigned long long)res.ok, (unsigned long long)res.err,
	       (unsigned long long)res.unexpected, res.unexpected ? ": first " : "",
	       res.first_unexpected);
	int bad = res.unexpected != 0;
	if (ho.mode == VL_VMC) {
		tenant_table(h);
		bad |= pinned(h, incr);
	}
	rc = bad ? -1 : 0;
	goto out;
fail:
	fprintf(stderr, "vmc-lua: %s\n", err);
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(path);
	}
	if (stopfd >= 0)
		close(stopfd);
	vl_mix_free(&mix);
	vl_host_free(h);
	return rc;
}

static double per_request(const struct mode_result *r, uint64_t v)
{
	return r->rs.requests ? (double)v / (double)r->rs.requests : 0;
}

/* Row k of the table for mode result r (base: the no-isolation one). */
static double value(int k, const struct mode_result *r, const struct mode_result *base)
{
	switch (k) {
	case 0: return r->rps;
	case 1: return base->rps > 0 ? r->rps / base->rps : 0;
	case 2: return r->p50;
	case 3: return r->p99;
	case 4: return r->rs.attach_p50_us;
	case 5: return r->rs.attach_p99_us;
	case 6: return per_request(r, r->rs.attaches);
	case 7: return r->rs.attaches ? 100.0 * (double)r->rs.affinity_hits / (double)r->rs.attaches : 0;
	case 8: return per_request(r, r->rs.syscalls);
	case 9: return per_request(r, r->rs.minflt);
	default: return r->mem_mib;
	}
}

static void table(const struct mode_result *r)
{
	static const struct { const char *label, *fmt; int vmc_only; } rows[] = {
		{ "requests/s", "%.0f", 0 },              { "  vs no isolation", "%.2fx", 0 },
		{ "request p50 (us)", "%.0f", 0 },        { "request p99 (us)", "%.0f", 0 },
		{ "attach p50 (us)", "%.2f", 1 },         { "attach p99 (us)", "%.2f", 1 },
		{ "attaches per request", "%.2f", 1 },    { "  of them affinity hits", "%.0f%%", 1 },
		{ "syscalls per request", "%.2f", 1 },    { "page faults per request", "%.2f", 0 },
		{ "memory in use (MiB)", "%.1f", 0 },
	};
	printf("\n%-24s", "");
	for (int m = 0; m < NMODES; m++)
		printf(" %14s", modes[m].col);
	for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
		printf("\n%-24s", rows[k].label);
		for (int m = 0; m < NMODES; m++) {
			char buf[32] = "-";
			if (r[m].ran && (!rows[k].vmc_only || r[m].rs.attaches))
				snprintf(buf, sizeof buf, rows[k].fmt, value((int)k, &r[m], &r[NMODES - 1]));
			printf(" %14s", buf);
		}
	}
	printf("\n\nrequest times are round trips through the socket, measured by the load "
	       "generator;\nattach times are measured around vmc_attach in the workers; system "
	       "calls are vmc's\n(vmc_syscalls) and page faults are %s of the processes\nthat "
	       "ran the requests; memory in use is their private memory plus the VMs' "
	       "granules.\n", vl_fault_source());
}

int vl_demo(const struct vl_demo_opts *o)
{
	struct mode_result r[NMODES];
	int rc = 0;

	memset(r, 0, sizeof r);
	printf("vmc-lua demo: the tenants in %s, %d workers, %d requests per mode over %d "
	       "connections (after %d of warm-up)\n", o->tenants, o->workers, o->requests, o->conns,
	       o->requests / 10 + 1);
	for (int m = 0; m < NMODES; m++)
		if (run_mode(o, m, &r[m]))
			rc = 1;
	table(r);
	printf("\n%s\n", rc ? "vmc-lua demo: FAILED (see above)"
			    : "vmc-lua demo: every reply as expected; the counter's state moved "
			      "between workers in both isolation modes");
	return rc;
}
