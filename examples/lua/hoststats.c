/*
 * hoststats.c - what the dispatcher can tell about itself: tenants,
 * workers, the attach figures of its workers' slots (vmc_worker_stats) and
 * the memory of its processes (/proc).  For the demo, the tests and
 * bench_lua.
 */
#include "host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

vmc_t *vl_host_vmc(struct vl_host *h) { return h->c; }
const char *vl_host_name(struct vl_host *h) { return *h->name ? h->name : "(private)"; }
int vl_host_ntenants(struct vl_host *h) { return h->nt; }
int vl_host_nworkers(struct vl_host *h) { return h->nw; }
int vl_host_find(struct vl_host *h, const char *name) { return tenant_lookup(h, name, strlen(name)); }
pid_t vl_host_worker_pid(struct vl_host *h, int w) { return w >= 0 && w < h->nw ? h->w[w].pid : 0; }

int vl_host_busy(struct vl_host *h)
{
	int n = 0;
	for (struct req *r = h->ph; r; r = r->next)
		n++;
	for (int i = 0; i < h->nw; i++)
		n += h->w[i].inflight;
	return n;
}

int vl_host_tenant(struct vl_host *h, int i, struct vl_tenant_info *out)
{
	if (i < 0 || i >= h->nt)
		return -1;
	struct tenant *t = &h->t[i];
	out->name = t->name;
	out->vm = t->vm;
	out->orphaned = t->orphaned;
	out->limit = t->limit;
	out->served = t->served;
	memcpy(out->by_worker, t->by_worker, sizeof out->by_worker);
	return 0;
}

int vl_host_attach_stats(struct vl_host *h, vmc_attach_stats_t *out)
{
	vmc_stats_t st;
	memset(out, 0, sizeof *out);
	if (!h->c || vmc_stats(h->c, &st))
		return -1;
	for (uint32_t s = 0; s < st.max_workers; s++) {
		vmc_worker_stats_t ws;
		int mine = 0;
		if (vmc_worker_stats(h->c, s, &ws) || !ws.pid)
			continue;
		if (h->nw == 0)
			mine = s == vmc_worker_slot(h->c);
		for (int i = 0; i < h->nw; i++)
			mine |= h->w[i].alive && h->w[i].pid == ws.pid;
		if (!mine)
			continue;
		out->attaches += ws.attach.attaches;
		out->affinity_hits += ws.attach.affinity_hits;
		out->remaps += ws.attach.remaps;
		out->detaches += ws.attach.detaches;
		out->syscalls += ws.attach.syscalls;
		for (int k = 0; k < VMC_HIST_BUCKETS; k++) {
			out->attach_hist[k] += ws.attach.attach_hist[k];
			out->detach_hist[k] += ws.attach.detach_hist[k];
		}
	}
	return 0;
}

static uint64_t proc_kb(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	uint64_t v = 0;
	size_t kl = strlen(key);
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl)) {
			v = strtoull(line + kl, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

void vl_host_memory(struct vl_host *h, uint64_t *rss_kb, uint64_t *pss_kb,
		    uint64_t *pss_shmem_kb)
{
	*rss_kb = *pss_kb = *pss_shmem_kb = 0;
	for (int i = -1; i < h->nw; i++) {
		pid_t pid = i < 0 ? getpid() : h->w[i].pid;
		if (i >= 0 && !h->w[i].alive)
			continue;
		*rss_kb += proc_kb(pid, "status", "VmRSS:");
		*pss_kb += proc_kb(pid, "smaps_rollup", "Pss:");
		*pss_shmem_kb += proc_kb(pid, "smaps_rollup", "Pss_Shmem:");
	}
}
