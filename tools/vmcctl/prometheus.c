/*
 * prometheus.c - `vmcctl stat NAME --prometheus`: a container's figures in
 * the Prometheus text exposition format (version 0.0.4), so that they go
 * straight into the monitoring people already run (node_exporter's
 * textfile collector, or any exporter that runs vmcctl).  Every family has
 * its # HELP and # TYPE lines and a vmc_ name; counters end in _total,
 * sizes are in bytes and latencies in seconds, as Prometheus' naming rules
 * ask.  Every sample has the label container="NAME"; per-VM samples add
 * vm="VM" (the VM's name), per-worker samples worker="SLOT" and pid="PID".
 * Label values are escaped (backslash, double quote, newline).  vmcctl's
 * own worker slot is left out: it exists only while vmcctl looks.  The
 * attach and detach latencies are histograms whose buckets are the
 * library's powers of two; the library keeps no sum of latencies, so the
 * histograms have no _sum series (histogram_quantile needs only buckets).
 */
#include "vmcctl.h"

#include <stdio.h>

#define MAX_LABELS 3
struct labels {
	int n;
	const char *k[MAX_LABELS], *v[MAX_LABELS];
};

static void family(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_value(const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
	}
}

/* NAME{k="v",...} VALUE; extra, if not NULL, is one more label. */
static void sample(const char *name, const struct labels *l, const char *ek, const char *ev,
		   uint64_t v)
{
	printf("%s{", name);
	for (int i = 0; i < l->n; i++) {
		printf("%s%s=\"", i ? "," : "", l->k[i]);
		label_value(l->v[i]);
		putchar('"');
	}
	if (ek) {
		printf(",%s=\"", ek);
		label_value(ev);
		putchar('"');
	}
	printf("} %llu\n", (unsigned long long)v);
}

/* ------------------------------------------------------------ container */

struct metric {
	const char *name, *type, *help;
	uint64_t v;
};

static void container_metrics(const struct snapshot *s, const struct labels *l)
{
	const vmc_stats_t *st = &s->st;
	const vmc_attach_stats_t *a = &st->attach;
	const struct metric m[] = {
		{ "vmc_pool_bytes", "gauge", "Bytes in the container's pool.", st->pool_size },
		{ "vmc_funded_bytes", "gauge", "Bytes of the pool backed by memory.",
		  st->funded_bytes },
		{ "vmc_reserve_bytes", "gauge", "Bytes of the pause-prevention reserve fund.",
		  st->reserve_size },
		{ "vmc_window_bytes", "gauge", "Bytes of a worker's address window (the "
		  "largest VM).", st->window_size },
		{ "vmc_granule_bytes", "gauge", "Bytes in a granule, the unit of funding and "
		  "mapping.", s->granule },
		{ "vmc_memory_isolation", "gauge", "1 if detach revokes a VM's memory "
		  "(strict), 0 if not (lazy).", (uint64_t)st->memory_isolation },
		{ "vmc_workers", "gauge", "Live worker processes (vmcctl not counted).",
		  st->workers - (s->self != VMC_NO_SLOT) },
		{ "vmc_dead_workers", "gauge", "Worker slots of processes that died, not yet "
		  "recovered.", st->dead_workers },
		{ "vmc_max_workers", "gauge", "Worker slots.", st->max_workers },
		{ "vmc_vms", "gauge", "VMs in the VM table.", st->vms },
		{ "vmc_max_vms", "gauge", "VM table entries.", st->max_vms },
		{ "vmc_regions", "gauge", "Shared cache regions (the code cache not counted).",
		  st->regions },
		{ "vmc_region_bytes", "gauge", "Bytes of the shared cache regions.",
		  st->region_bytes },
		{ "vmc_code_cache_bytes", "gauge", "Bytes of the JIT code cache (0: none).",
		  st->code_cache_size },
		{ "vmc_code_cache_used_bytes", "gauge", "Bytes of the code cache allocated.",
		  st->code_cache_used },
		{ "vmc_fund_operations_total", "counter", "Funding calls.", st->fund_ops },
		{ "vmc_funded_granules_total", "counter", "Granules funded.", st->fund_granules },
		{ "vmc_unfund_operations_total", "counter", "Hole punches (balloon inflates).",
		  st->unfund_ops },
		{ "vmc_unfunded_granules_total", "counter", "Granules given back to the host.",
		  st->unfund_granules },
		{ "vmc_cache_refills_total", "counter", "Moves of granules from the shared free "
		  "list to a worker's cache.", st->cache_refills },
		{ "vmc_cache_drains_total", "counter", "Moves of granules from a worker's cache "
		  "to the shared free list.", st->cache_drains },
		{ "vmc_lock_repairs_total", "counter", "Locks repaired after their owner died.",
		  st->lock_repairs },
		{ "vmc_workers_recovered_total", "counter", "Slots of dead workers reclaimed.",
		  st->workers_recovered },
		{ "vmc_attaches_total", "counter", "VM attaches, all workers.", a->attaches },
		{ "vmc_attach_affinity_hits_total", "counter", "Re-attaches that needed no "
		  "system call.", a->affinity_hits },
		{ "vmc_attach_remaps_total", "counter", "Attaches that changed the window's "
		  "mappings.", a->remaps },
		{ "vmc_detaches_total", "counter", "VM detaches, all workers.", a->detaches },
		{ "vmc_attach_syscalls_total", "counter", "System calls made by attach and "
		  "detach.", a->syscalls },
	};
	const char *states[] = { "unfunded", "free", "cached", "used", "quarantined" };
	const uint32_t counts[] = { st->unfunded, st->free, st->cached, st->used,
				    st->quarantined };

	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		family(m[i].name, m[i].type, m[i].help);
		sample(m[i].name, l, NULL, NULL, m[i].v);
	}
	family("vmc_info", "gauge", "The container's page kind, as a label; always 1.");
	sample("vmc_info", l, "page_kind", vmc_page_kind_name(st->page_kind), 1);
	family("vmc_granules", "gauge", "Granules of the pool by state; they add up to the "
	       "pool.");
	for (int i = 0; i < 5; i++)
		sample("vmc_granules", l, "state", states[i], counts[i]);
}

/* Bucket k of the library holds [2^k, 2^(k+1)) ns; the last also holds
 * everything slower, so it is only in +Inf. */
static void histogram(const char *name, const char *help, const struct labels *l,
		      const uint64_t hist[VMC_HIST_BUCKETS])
{
	char bucket[128], count[128], le[32];
	uint64_t sum = 0;

	snprintf(bucket, sizeof bucket, "%s_bucket", name);
	snprintf(count, sizeof count, "%s_count", name);
	family(name, "histogram", help);
	for (int k = 0; k < VMC_HIST_BUCKETS - 1; k++) {
		sum += hist[k];
		snprintf(le, sizeof le, "%.10g", (double)(2ull << k) * 1e-9);
		sample(bucket, l, "le", le, sum);
	}
	sum += hist[VMC_HIST_BUCKETS - 1];
	sample(bucket, l, "le", "+Inf", sum);
	sample(count, l, NULL, NULL, sum);
}

/* ------------------------------------------------------------ VMs, workers */

static void vm_metrics(const struct snapshot *s, const struct labels *cl)
{
	static const struct { const char *name, *type, *help; } f[] = {
		{ "vmc_vm_limit_bytes", "gauge", "The VM's memory limit." },
		{ "vmc_vm_committed_bytes", "gauge", "Bytes committed in the VM." },
		{ "vmc_vm_committed_max_bytes", "gauge", "High-water mark of the VM's committed "
		  "bytes." },
		{ "vmc_vm_reserve_used_bytes", "gauge", "Bytes the VM committed from the reserve "
		  "fund." },
		{ "vmc_vm_attaches_total", "counter", "Attaches of the VM." },
	};
	static const int states[] = { VMC_VM_IDLE, VMC_VM_ATTACHED, VMC_VM_ORPHANED,
				      VMC_VM_HIBERNATED };
	struct labels l = *cl;

	l.k[l.n++] = "vm";
	for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) {
		family(f[j].name, f[j].type, f[j].help);
		for (uint32_t i = 0; i < s->nvms; i++) {
			const vmc_vm_stats_t *v = &s->vm[i];
			const uint64_t val[] = { v->limit, v->committed, v->hwm, v->reserve_used,
						 v->attaches };
			l.v[l.n - 1] = v->name;
			sample(f[j].name, &l, NULL, NULL, val[j]);
		}
	}
	family("vmc_vm_state", "gauge", "1 for the VM's state (idle, attached or orphaned), "
	       "0 for the others.");
	for (uint32_t i = 0; i < s->nvms; i++) {
		l.v[l.n - 1] = s->vm[i].name;
		for (int k = 0; k < 3; k++)
			sample("vmc_vm_state", &l, "state", vm_state_name(states[k]),
			       s->vm[i].state == states[k]);
	}
}

static void worker_metrics(const struct snapshot *s, const struct labels *cl)
{
	static const struct { const char *name, *type, *help; } f[] = {
		{ "vmc_worker_alive", "gauge", "1 if the worker's process lives; 0 if it died "
		  "without leaving (`vmcctl check NAME --recover`)." },
		{ "vmc_worker_cached_granules", "gauge", "Granules in the worker's local cache." },
		{ "vmc_worker_attaches_total", "counter", "Attaches in the worker." },
		{ "vmc_worker_affinity_hits_total", "counter", "Re-attaches in the worker that "
		  "needed no system call." },
		{ "vmc_worker_attach_syscalls_total", "counter", "System calls made by attach "
		  "and detach in the worker." },
	};
	struct labels l = *cl;
	char slot[16], pid[16];

	l.k[l.n] = "worker";
	l.k[l.n + 1] = "pid";
	l.v[l.n] = slot;
	l.v[l.n + 1] = pid;
	l.n += 2;
	for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) {
		family(f[j].name, f[j].type, f[j].help);
		for (uint32_t i = 0; i < s->nworkers; i++) {
			const vmc_worker_stats_t *w = &s->ws[i];
			const uint64_t val[] = { w->alive != 0, w->cached, w->attach.attaches,
						 w->attach.affinity_hits, w->attach.syscalls };
			if (s->slot[i] == s->self)
				continue;
			snprintf(slot, sizeof slot, "%u", s->slot[i]);
			snprintf(pid, sizeof pid, "%d", (int)w->pid);
			sample(f[j].name, &l, NULL, NULL, val[j]);
		}
	}
}

void prometheus_print(const struct snapshot *s)
{
	struct labels l = { 1, { "container" }, { s->name } };

	container_metrics(s, &l);
	histogram("vmc_attach_duration_seconds", "Attach latency, all workers.", &l,
		  s->st.attach.attach_hist);
	histogram("vmc_detach_duration_seconds", "Detach latency, all workers.", &l,
		  s->st.attach.detach_hist);
	vm_metrics(s, &l);
	worker_metrics(s, &l);
}
