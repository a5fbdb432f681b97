/*
 * hoststats.c - what the dispatcher can tell about itself: tenants (their
 * counts, state and memory), workers (requests, attaches, affinity hits,
 * attach times, system calls and page faults, from the figures each answer
 * carries), the memory of its processes (/proc), and the report of the
 * control socket's `stats` as a table or as JSON.
 *
 * Attach percentiles come from the attach times themselves (each worker
 * times vmc_attach and sends the time with the answer; the last
 * VL_SAMPLES of them are kept), interpolated between neighbours: not from
 * a histogram's bucket edges.
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
	int n = h->queued;
	for (int i = 0; i < h->nw; i++)
		n += h->w[i].inflight;
	for (int j = 0; j < VL_JOBS; j++)
		n += h->job[j].pid != 0;
	return n;
}

int vl_host_tenant(struct vl_host *h, int i, struct vl_tenant_info *out)
{
	if (i < 0 || i >= h->nt)
		return -1;
	struct tenant *t = &h->t[i];
	*out = (struct vl_tenant_info){
		.name = t->name, .msg = t->msg ? t->msg : "", .vm = t->vm, .state = t->state,
		.limit = t->limit, .budget = t->budget, .served = t->served, .errors = t->errors,
		.budget_kills = t->budget_kills, .nomem = t->nomem, .orphans = t->orphans,
		.recoveries = t->recoveries, .reloads = t->reloads, .hibernated = t->hibernated,
		.hibernations = t->hibernations, .wakes = t->wakes,
	};
	memcpy(out->by_worker, t->by_worker, sizeof out->by_worker);
	return 0;
}

static void reset(struct worker *w)
{
	w->requests = w->attaches = w->hits = w->syscalls = w->minflt = 0;
	w->nsamples = 0;
}

void vl_host_stats_reset(struct vl_host *h)
{
	for (int i = 0; i < h->nw; i++)
		reset(&h->w[i]);
	reset(&h->own);
}

/* Append w's kept attach times to v[*n]. */
static void samples(const struct worker *w, double *v, size_t *n)
{
	uint64_t k = w->nsamples < VL_SAMPLES ? w->nsamples : VL_SAMPLES;
	for (uint64_t i = 0; i < k; i++)
		v[(*n)++] = (double)w->samples[i] / 1000.0;
}

static void add(struct vl_run_stats *s, const struct worker *w)
{
	s->requests += w->requests;
	s->attaches += w->attaches;
	s->affinity_hits += w->hits;
	s->syscalls += w->syscalls;
	s->minflt += w->minflt;
}

/* Figures of worker w (-1: the dispatcher's own runs), or of all (-2). */
static void run_stats(struct vl_host *h, int which, struct vl_run_stats *out)
{
	size_t n = 0;
	double *v = malloc(((size_t)h->nw + 1) * VL_SAMPLES * sizeof *v);
	memset(out, 0, sizeof *out);
	for (int i = -1; i < h->nw; i++) {
		const struct worker *w = i < 0 ? &h->own : &h->w[i];
		if (which != -2 && which != i)
			continue;
		add(out, w);
		if (v)
			samples(w, v, &n);
	}
	if (v) {
		out->attach_p50_us = vl_quantile(v, n, 0.5);
		out->attach_p99_us = vl_quantile(v, n, 0.99);
	}
	free(v);
}

/* Hibernations, wakes and the tenants hibernated now, over all tenants. */
static void hib_sums(const struct vl_host *h, uint64_t *hib, uint64_t *wakes, int *now)
{
	*hib = *wakes = 0;
	*now = 0;
	for (int i = 0; i < h->nt; i++) {
		*hib += h->t[i].hibernations;
		*wakes += h->t[i].wakes;
		*now += h->t[i].hibernated;
	}
}

void vl_host_run_stats(struct vl_host *h, struct vl_run_stats *out)
{
	run_stats(h, -2, out);
	hib_sums(h, &out->hibernations, &out->wakes, &out->hibernated);
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

uint64_t vl_host_mem_in_use(struct vl_host *h)
{
	uint64_t rss, pss, shm, vms = 0;
	vmc_stats_t st;
	vl_host_memory(h, &rss, &pss, &shm);
	if (h->c && !vmc_stats(h->c, &st))
		vms = (uint64_t)st.used * vmc_granule_size(h->c);
	return (pss - shm) * 1024 + vms;
}

/* ------------------------------------------------------------- report */

static const char *const state_name[] = { "ready", "broken", "orphaned", "maint" };

static const char *tstate(const struct tenant *t)
{
	return t->hibernated && t->state == VL_T_READY ? "hibernated" : state_name[t->state];
}

/* A JSON string that is valid whatever the bytes: printable ASCII as it
 * is, everything else as \u00XX (so a byte >= 0x80 of an error message
 * shows as the Latin-1 character of the same number). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		fprintf(f, *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' ? "%c" : "\\u%04x", *p);
	fputc('"', f);
}

static void mem(const struct vl_host *h, const struct tenant *t, uint64_t *committed)
{
	vmc_vm_stats_t vs;
	*committed = h->c && t->vm != VMC_NO_VM && !vmc_vm_stats(h->c, t->vm, &vs) ? vs.committed : 0;
}

static void report_json(struct vl_host *h, FILE *f, const char *kind)
{
	fprintf(f, "{\"container\":");
	json_str(f, vl_host_name(h));
	uint64_t hib, wakes;
	int hibernated;
	hib_sums(h, &hib, &wakes, &hibernated);
	fprintf(f, ",\"page_kind\":\"%s\",\"isolation\":\"%s\",\"affinity\":%d,\"batch\":%d,"
		"\"hibernate_after_ms\":%d,\"hibernated\":%d,\"hibernations\":%llu,\"wakes\":%llu,"
		"\"tenants\":[", kind, h->o.isolation ? "strict" : "lazy", h->o.affinity, h->o.batch,
		h->o.hibernate_after_ms, hibernated, (unsigned long long)hib,
		(unsigned long long)wakes);
	for (int i = 0; i < h->nt; i++) {
		struct tenant *t = &h->t[i];
		uint64_t committed;
		mem(h, t, &committed);
		fprintf(f, "%s{\"name\":", i ? "," : "");
		json_str(f, t->name);
		fprintf(f, ",\"state\":\"%s\",\"message\":", tstate(t));
		json_str(f, t->msg ? t->msg : "");
		fprintf(f, ",\"requests\":%llu,\"errors\":%llu,\"budget_kills\":%llu,\"nomem\":%llu,"
			"\"orphans\":%llu,\"recoveries\":%llu,\"reloads\":%llu,\"committed\":%llu,"
			"\"limit\":%llu,\"budget\":%llu,\"hibernations\":%llu,\"wakes\":%llu}",
			(unsigned long long)t->served, (unsigned long long)t->errors,
			(unsigned long long)t->budget_kills, (unsigned long long)t->nomem,
			(unsigned long long)t->orphans, (unsigned long long)t->recoveries,
			(unsigned long long)t->reloads, (unsigned long long)committed,
			(unsigned long long)t->limit, (unsigned long long)t->budget,
			(unsigned long long)t->hibernations, (unsigned long long)t->wakes);
	}
	fprintf(f, "],\"workers\":[");
	for (int i = -1, k = 0; i < h->nw; i++) {
		struct vl_run_stats s;
		run_stats(h, i, &s);
		if (i < 0 && !s.requests)
			continue;
		fprintf(f, "%s{\"worker\":%d,\"pid\":%d,\"requests\":%llu,\"attaches\":%llu,"
			"\"affinity_hits\":%llu,\"attach_p50_us\":%.3f,\"attach_p99_us\":%.3f,"
			"\"syscalls\":%llu,\"minflt\":%llu}", k++ ? "," : "", i,
			i < 0 ? (int)getpid() : (int)h->w[i].pid, (unsigned long long)s.requests,
			(unsigned long long)s.attaches, (unsigned long long)s.affinity_hits,
			s.attach_p50_us, s.attach_p99_us, (unsigned long long)s.syscalls,
			(unsigned long long)s.minflt);
	}
	fprintf(f, "]}\n");
}

static double per(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

static void report_text(struct vl_host *h, FILE *f, const char *kind)
{
	fprintf(f, "container %s: %s pages, %s isolation, %d workers, affinity %s, batches of up "
		"to %d\n\n", vl_host_name(h), kind, h->o.isolation ? "strict" : "lazy", h->nw,
		h->o.affinity ? "on" : "off", h->o.batch);
	if (h->o.hibernate_after_ms) {
		uint64_t hib, wakes;
		int now;
		hib_sums(h, &hib, &wakes, &now);
		fprintf(f, "hibernation after %.1f s idle: %d of %d tenants hibernated; %llu "
			"hibernations, %llu wakes\n\n", h->o.hibernate_after_ms / 1000.0, now, h->nt,
			(unsigned long long)hib, (unsigned long long)wakes);
	}
	fprintf(f, "%-16s %-10s %9s %7s %9s %10s %7s %9s %7s %10s %9s %10s\n", "tenant", "state",
		"requests", "errors", "cpu-kills", "mem-errors", "orphans", "recovered", "reloads",
		"committed", "limit", "budget");
	for (int i = 0; i < h->nt; i++) {
		struct tenant *t = &h->t[i];
		uint64_t committed;
		mem(h, t, &committed);
		fprintf(f, "%-16s %-10s %9llu %7llu %9llu %10llu %7llu %9llu %7llu %6.1f MiB %5llu MiB "
			"%9.0fM\n", t->name, tstate(t), (unsigned long long)t->served,
			(unsigned long long)t->errors, (unsigned long long)t->budget_kills,
			(unsigned long long)t->nomem, (unsigned long long)t->orphans,
			(unsigned long long)t->recoveries, (unsigned long long)t->reloads,
			(double)committed / (1 << 20), (unsigned long long)(t->limit >> 20),
			(double)t->budget / 1e6);
	}
	for (int i = 0; i < h->nt; i++)
		if (h->t[i].msg && h->t[i].state != VL_T_READY)
			fprintf(f, "  %s %s: %s\n", h->t[i].name, state_name[h->t[i].state], h->t[i].msg);
	fprintf(f, "\n%-10s %8s %9s %9s %9s %12s %12s %12s %11s\n", "worker", "pid", "requests",
		"attaches", "affinity", "attach p50", "attach p99", "syscalls/req", "faults/req");
	for (int i = -1; i < h->nw; i++) {
		struct vl_run_stats s;
		char name[16];
		run_stats(h, i, &s);
		if (i < 0 && !s.requests)
			continue;
		if (i < 0)
			snprintf(name, sizeof name, "dispatcher");
		else
			snprintf(name, sizeof name, "%d", i);
		fprintf(f, "%-10s %8d %9llu %9llu %9llu %9.2f us %9.2f us %12.2f %11.2f\n", name,
			i < 0 ? (int)getpid() : (int)h->w[i].pid, (unsigned long long)s.requests,
			(unsigned long long)s.attaches, (unsigned long long)s.affinity_hits,
			s.attach_p50_us, s.attach_p99_us, per(s.syscalls, s.requests),
			per(s.minflt, s.requests));
	}
	fputc('\n', f);
}

char *vl_host_report(struct vl_host *h, int json)
{
	char *buf = NULL;
	size_t size = 0;
	vmc_stats_t st;
	const char *kind = h->c && !vmc_stats(h->c, &st) ? vmc_page_kind_name(st.page_kind)
		: h->o.mode == VL_ONEPROC ? "malloc (oneproc)" : "malloc (procs)";
	FILE *f = open_memstream(&buf, &size);
	if (!f)
		return NULL;
	if (json)
		report_json(h, f, kind);
	else
		report_text(h, f, kind);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
