/*
 * demo.c - `vmc-lua --demo`, what `make run` shows.  For strict and then
 * lazy isolation: a container with the sample tenants (cloned from a
 * template; both ways of making a tenant are timed), 2 workers, the
 * load generator driving a few thousand requests through the Unix socket,
 * then requests/s, attach p50/p99, affinity hits and memory per tenant,
 * and a few pinned requests that show
 *   - the counter's state carried from worker 0 to worker 1,
 *   - a tenant over its memory limit failing with "not enough memory" and
 *     serving its next request,
 *   - a Lua error becoming an ERR reply.
 * Exits 0 only if every reply was what the mix expects and the counter
 * counted every increment.
 */
#include "vmclua.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct mode_result {
	double rps;
	vmc_attach_stats_t st;
	int ok;
};

static void diff(vmc_attach_stats_t *a, const vmc_attach_stats_t *b)
{
	a->attaches -= b->attaches;
	a->affinity_hits -= b->affinity_hits;
	a->remaps -= b->remaps;
	a->detaches -= b->detaches;
	a->syscalls -= b->syscalls;
	for (int k = 0; k < VMC_HIST_BUCKETS; k++) {
		a->attach_hist[k] -= b->attach_hist[k];
		a->detach_hist[k] -= b->detach_hist[k];
	}
}

static const char *mib(uint64_t b, char *buf)
{
	if (b >= 1024 * 1024)
		sprintf(buf, "%.1f MiB", (double)b / (1024.0 * 1024));
	else
		sprintf(buf, "%.1f KiB", (double)b / 1024.0);
	return buf;
}

/* The VM table of `vmcctl stat NAME`, if vmcctl was built next to us
 * (build/X/vmcctl): the tenants are the VMs of the same names. */
static void show_vmcctl(const char *name)
{
	char self[PATH_MAX], cmd[2 * PATH_MAX], line[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;
	if (n <= 0)
		return;
	self[n] = 0;
	if (!(slash = strrchr(self, '/')))
		return;
	*slash = 0;
	snprintf(cmd, sizeof cmd, "%s/../../vmcctl", self);
	if (access(cmd, X_OK)) {
		printf("\n(vmcctl is not next to vmc-lua: `vmcctl stat %s` shows the tenants)\n", name);
		return;
	}
	printf("\n$ vmcctl stat %s      (its VMs and workers)\n", name);
	fflush(stdout);
	snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " stat %s", name);
	FILE *p = popen(cmd, "r");
	int show = 0;
	while (p && fgets(line, sizeof line, p)) {
		show |= !strncmp(line, "VMs", 3);
		if (show)
			fputs(line, stdout);
	}
	if (p)
		pclose(p);
}

static int expect(struct vl_host *h, const char *tenant, const char *body, int pin,
		  int want_err, const char *want, const char *why)
{
	struct vl_reply r;
	int w = vl_host_call(h, tenant, body, pin, &r);
	int good = r.err == want_err && (!want || strstr(r.text, want));
	printf("  %-9s %-8s -> %s %s    [worker %d] %s\n", tenant, body, r.err ? "ERR" : "OK",
	       r.text, w, good ? why : "UNEXPECTED");
	return good ? 0 : -1;
}

static int run_mode(const struct vl_demo_opts *o, int iso, struct mode_result *mr)
{
	struct vl_host_opts ho;
	struct vl_host *h;
	char err[512], name[96], path[128], b1[32], b2[32], b3[32], b4[32], b5[32];
	double scratch, clone;
	int rc = -1, lfd = -1, stopfd = -1;
	struct vl_lg_result *res = calloc(1, sizeof *res);
	struct vl_mix *mix = calloc(1, sizeof *mix);

	vl_host_opts_init(&ho);
	ho.workers = o->workers;
	ho.isolation = iso;
	ho.page_kind = o->page_kind;
	ho.pool_size = 128ull << 20;
	snprintf(name, sizeof name, "vmc-lua-%d-%s", (int)getpid(), iso ? "strict" : "lazy");
	ho.name = name;
	printf("\n== %s isolation (vmc/memory_isolation = %d) ==\n", iso ? "strict" : "lazy", iso);
	fflush(stdout);    /* the library's notices go to stderr */
	if (!res || !mix || !(h = vl_host_new(&ho, err, sizeof err))) {
		fprintf(stderr, "vmc-lua: %s\n", res && mix ? err : "out of memory");
		free(mix);
		free(res);
		return -1;
	}
	vmc_stats_t cs;
	vmc_stats(vl_host_vmc(h), &cs);
	printf("container %s: %s pages, pool %s, %d workers\n", name,
	       vmc_page_kind_name(cs.page_kind), mib(cs.pool_size, b1), o->workers);
	if (vl_host_init_times(h, 7, &scratch, &clone) == 0)
		printf("tenant init (median of 7): from scratch %.0f us (vmc_vm_create + lua_newstate"
		       " + libraries), clone %.0f us (vmc_vm_clone of the template)\n", scratch, clone);
	if (vl_host_add_dir(h, o->tenants, err, sizeof err) < 0 || vl_host_start(h, err, sizeof err))
		goto fail;
	snprintf(path, sizeof path, "/tmp/vmc-lua-%d.sock", (int)getpid());
	if ((lfd = vl_listen(path, err, sizeof err)) < 0)
		goto fail;
	vl_mix_from_host(mix, h);
	vmc_attach_stats_t before;
	vl_host_attach_stats(h, &before);
	pid_t lg = vl_loadgen_spawn(h, path, mix, o->requests, o->conns, 42, &stopfd);
	if (lg < 0) {
		snprintf(err, sizeof err, "cannot start the load generator: %s", strerror(errno));
		goto fail;
	}
	vl_serve(h, lfd, stopfd);
	int lg_err = vl_loadgen_wait(lg, stopfd, res);
	stopfd = -1;
	vl_host_attach_stats(h, &mr->st);
	diff(&mr->st, &before);
	if (lg_err) {
		snprintf(err, sizeof err, "the load generator failed");
		goto fail;
	}
	mr->rps = (double)res->sent / res->secs;
	printf("load: %llu requests over %d connections in %.3f s: %.0f requests/s\n",
	       (unsigned long long)res->sent, o->conns, res->secs, mr->rps);
	printf("      %llu OK, %llu ERR (%llu of them memhog over its limit, as intended), "
	       "%llu unexpected%s%s\n", (unsigned long long)res->ok, (unsigned long long)res->err,
	       (unsigned long long)res->expected_err, (unsigned long long)res->unexpected,
	       res->unexpected ? ": first " : "", res->first_unexpected);
	printf("      attach p50 %llu ns, p99 %llu ns; %llu attaches, %llu affinity hits, "
	       "%llu remaps\n",
	       (unsigned long long)vmc_hist_percentile(mr->st.attach_hist, 0.5),
	       (unsigned long long)vmc_hist_percentile(mr->st.attach_hist, 0.99),
	       (unsigned long long)mr->st.attaches, (unsigned long long)mr->st.affinity_hits,
	       (unsigned long long)mr->st.remaps);
	int bad = res->unexpected != 0;

	printf("\n  %-10s %9s %11s %11s %11s %11s %9s  %s\n", "tenant", "limit", "committed",
	       "high water", "Lua heap", "VM heap", "requests", "by worker");
	for (int i = 0; i < vl_host_ntenants(h); i++) {
		struct vl_tenant_info ti;
		vmc_vm_stats_t vs;
		uint64_t lua = 0, heap = 0;
		char bw[128] = "";
		vl_host_tenant(h, i, &ti);
		vmc_vm_stats(vl_host_vmc(h), ti.vm, &vs);
		vl_vm_memory(vl_host_vmc(h), ti.vm, &lua, &heap);
		for (int w = 0, n = 0; w < vl_host_nworkers(h) && w < VL_MAX_WORKERS; w++)
			n += snprintf(bw + n, sizeof bw - (size_t)n, "%sw%d:%llu", w ? " " : "", w,
				      (unsigned long long)ti.by_worker[w]);
		printf("  %-10s %9s %11s %11s %11s %11s %9llu  %s\n", ti.name, mib(ti.limit, b1),
		       mib(vs.committed, b2), mib(vs.hwm, b3), mib(lua, b4),
		       mib(heap, b5), (unsigned long long)ti.served, bw);
	}

	int ci = vl_host_find(h, "counter");
	if (ci >= 0) {
		struct vl_tenant_info ti;
		char want[64];
		vl_host_tenant(h, ci, &ti);
		uint64_t n = res->incr_ok[0];
		for (int i = 0; i < mix->n; i++)
			if (!strcmp(mix->t[i].name, "counter"))
				n = res->incr_ok[i];
		printf("\n  the counter took %llu increments from the load generator, served by %s "
		       "workers; now pinned requests:\n", (unsigned long long)n,
		       ti.by_worker[0] && ti.by_worker[1] ? "both" : "the");
		snprintf(want, sizeof want, "%llu", (unsigned long long)n);
		bad |= expect(h, "counter", "get", 0, 0, want, "worker 0 sees every increment");
		snprintf(want, sizeof want, "%llu", (unsigned long long)n + 1);
		bad |= expect(h, "counter", "incr", 0, 0, want, "");
		snprintf(want, sizeof want, "%llu", (unsigned long long)n + 2);
		bad |= expect(h, "counter", "incr", vl_host_nworkers(h) > 1, 0, want,
			      "the state survived the move to another worker");
		bad |= expect(h, "counter", "bogus", -1, 1, "unknown request",
			      "a Lua error is an ERR reply");
	}
	if (vl_host_find(h, "memhog") >= 0) {
		bad |= expect(h, "memhog", "100000", -1, 1, "not enough memory",
			      "over its VM's limit: the allocator returned NULL");
		bad |= expect(h, "memhog", "64", -1, 0, NULL, "and its next request works");
	}
	if (iso)
		show_vmcctl(name);
	mr->ok = !bad;
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
	vl_host_free(h);
	free(mix);
	free(res);
	return rc;
}

int vl_demo(const struct vl_demo_opts *o)
{
	struct mode_result r[2];
	int rc = 0;

	memset(r, 0, sizeof r);
	printf("vmc-lua demo: the tenants in %s, %d workers, %d requests per mode over %d "
	       "connections\n", o->tenants, o->workers, o->requests, o->conns);
	for (int iso = 1; iso >= 0; iso--)
		if (run_mode(o, iso, &r[1 - iso]))
			rc = 1;
	printf("\n%-8s %11s %12s %12s %15s %8s %16s\n", "mode", "requests/s", "attach p50",
	       "attach p99", "affinity hits", "remaps", "syscalls/attach");
	for (int i = 0; i < 2; i++) {
		vmc_attach_stats_t *s = &r[i].st;
		printf("%-8s %11.0f %9llu ns %9llu ns %8llu/%-6llu %8llu %16.2f\n",
		       i ? "lazy" : "strict", r[i].rps,
		       (unsigned long long)vmc_hist_percentile(s->attach_hist, 0.5),
		       (unsigned long long)vmc_hist_percentile(s->attach_hist, 0.99),
		       (unsigned long long)s->affinity_hits, (unsigned long long)s->attaches,
		       (unsigned long long)s->remaps,
		       s->attaches ? (double)s->syscalls / (double)s->attaches : 0.0);
	}
	printf("\n%s\n", rc ? "vmc-lua demo: FAILED (see above)"
			    : "vmc-lua demo: every reply as expected; the counter's state survived "
			      "across workers in both modes");
	return rc;
}
