/*
 * stat.c - `vmcctl stat NAME [--json | --prometheus] [--hist]`: a look
 * inside a live container.  It takes a snapshot (snapshot.c: the pool, its
 * counters and attach figures, each VM and each worker slot, vmcctl's own
 * marked "(vmcctl)") and prints it as a table for people or, with --json,
 * as one JSON object for scripts: the counter lists and row descriptions
 * below drive both (report.c renders them), so the two outputs always carry
 * the same fields.  --prometheus hands the snapshot to prometheus.c, for
 * the monitoring people already run.
 */
#include "vmcctl.h"

#include <stdio.h>

struct count { const char *key; uint64_t n; };

static void states(const vmc_stats_t *st, struct count out[5])
{
	out[0] = (struct count){ "unfunded", st->unfunded };
	out[1] = (struct count){ "free", st->free };
	out[2] = (struct count){ "cached", st->cached };
	out[3] = (struct count){ "used", st->used };
	out[4] = (struct count){ "quarantined", st->quarantined };
}

#define NCOUNTERS 10
static void counters(const vmc_stats_t *st, struct counter out[NCOUNTERS])
{
	out[0] = (struct counter){ "fund_ops", "fund ops", .n = st->fund_ops };
	out[1] = (struct counter){ "fund_granules", "funded granules", .n = st->fund_granules };
	out[2] = (struct counter){ "ondemand_ops", "on-demand fund ops", .n = st->ondemand_ops };
	out[3] = (struct counter){ "ondemand_granules", "funded on demand",
				   .n = st->ondemand_granules };
	out[4] = (struct counter){ "unfund_ops", "unfund ops", .n = st->unfund_ops };
	out[5] = (struct counter){ "unfund_granules", "unfunded granules",
				   .n = st->unfund_granules };
	out[6] = (struct counter){ "cache_refills", "cache refills", .n = st->cache_refills };
	out[7] = (struct counter){ "cache_drains", "cache drains", .n = st->cache_drains };
	out[8] = (struct counter){ "lock_repairs", "lock repairs", .n = st->lock_repairs };
	out[9] = (struct counter){ "workers_recovered", "workers recovered",
				   .n = st->workers_recovered };
}

/* Latencies are upper bucket edges in ns (0: none yet). */
#define NATTACH 9
static void attach_counters(const vmc_attach_stats_t *a, struct counter out[NATTACH])
{
	out[0] = (struct counter){ "attaches", "attaches", .n = a->attaches };
	out[1] = (struct counter){ "affinity_hits", "affinity hits", .n = a->affinity_hits,
				   .of = a->attaches, .pct_of = "attaches" };
	out[2] = (struct counter){ "remaps", "remaps", .n = a->remaps };
	out[3] = (struct counter){ "detaches", "detaches", .n = a->detaches };
	out[4] = (struct counter){ "syscalls", "system calls", .n = a->syscalls,
				   .of = a->attaches, .per = "attach" };
	out[5] = (struct counter){ "attach_p50_ns", "attach latency p50",
				   .n = vmc_hist_percentile(a->attach_hist, 0.50), .usec = 1 };
	out[6] = (struct counter){ "attach_p99_ns", "attach latency p99",
				   .n = vmc_hist_percentile(a->attach_hist, 0.99), .usec = 1 };
	out[7] = (struct counter){ "detach_p50_ns", "detach latency p50",
				   .n = vmc_hist_percentile(a->detach_hist, 0.50), .usec = 1 };
	out[8] = (struct counter){ "detach_p99_ns", "detach latency p99",
				   .n = vmc_hist_percentile(a->detach_hist, 0.99), .usec = 1 };
}

/* ------------------------------------------------------------------ rows */

#define MAX_CELLS 9
typedef int row_fn(const struct snapshot *s, uint32_t i, struct cell *c);

static int vm_row(const struct snapshot *s, uint32_t i, struct cell *c)
{
	const vmc_vm_stats_t *v = &s->vm[i];

	c[0] = (struct cell){ "id", "id", 4, CELL_NUM, .n = s->vm_id[i] };
	c[1] = (struct cell){ "name", "name", -s->namew, CELL_STR, .s = v->name };
	c[2] = (struct cell){ "state", "state", -8, CELL_STR, .s = vm_state_name(v->state) };
	c[3] = (struct cell){ "committed", "committed", 0, CELL_MIB, .n = v->committed };
	c[4] = (struct cell){ "hwm", "hwm", 6, CELL_MIB, .n = v->hwm };
	c[5] = (struct cell){ "limit", "limit", 6, CELL_MIB, .n = v->limit };
	c[6] = (struct cell){ "pid", "pid", 8, CELL_NUM, .n = (uint64_t)v->pid,
			      .none = !v->pid };
	c[7] = (struct cell){ "attaches", "attaches", 0, CELL_NUM, .n = v->attaches };
	return 8;
}

static int worker_row(const struct snapshot *s, uint32_t i, struct cell *c)
{
	const vmc_worker_stats_t *w = &s->ws[i];
	const char *vm = snapshot_vm_name(s, w->attached);

	c[0] = (struct cell){ "slot", "slot", 4, CELL_NUM, .n = s->slot[i] };
	c[1] = (struct cell){ "pid", "pid", 8, CELL_NUM, .n = (uint64_t)w->pid };
	c[2] = (struct cell){ "alive", "alive", 5, CELL_BOOL, .n = w->alive != 0 };
	c[3] = (struct cell){ "vm", "VM", -s->namew, CELL_STR, .s = vm, .none = !vm };
	c[4] = (struct cell){ "cached", "cached", 0, CELL_NUM, .n = w->cached };
	c[5] = (struct cell){ "attaches", "attaches", 0, CELL_NUM, .n = w->attach.attaches };
	c[6] = (struct cell){ "affinity_hits", "affinity hits", 0, CELL_NUM,
			      .n = w->attach.affinity_hits };
	c[7] = (struct cell){ "syscalls", "syscalls", 0, CELL_NUM, .n = w->attach.syscalls };
	c[8] = (struct cell){ "vmcctl", "vmcctl", 0, CELL_MARK, .n = s->slot[i] == s->self };
	return 9;
}

static void rows_table(const char *title, const struct snapshot *s, uint32_t n, row_fn *row)
{
	struct cell c[MAX_CELLS];

	printf("\n%s\n", title);
	for (uint32_t i = 0; i < n; i++) {
		int k = row(s, i, c);
		if (!i)
			cells_head(c, k);
		cells_row(c, k);
	}
	if (!n)
		printf("  none\n");
}

static void rows_json(const char *key, const struct snapshot *s, uint32_t n, row_fn *row)
{
	struct cell c[MAX_CELLS];

	printf("  \"%s\": [", key);
	for (uint32_t i = 0; i < n; i++) {
		int k = row(s, i, c);
		printf("%s\n    ", i ? "," : "");
		cells_json(c, k);
	}
	printf(n ? "\n  ]" : "]");
}

static void print_table(const struct snapshot *s, int hist)
{
	const vmc_stats_t *st = &s->st;
	struct count sc[5];
	struct counter k[NCOUNTERS], a[NATTACH], rg[NREGION_COUNTERS];
	char b[SIZE_BUF], g[SIZE_BUF];

	printf("container %s\n", s->name);
	printf("  %-18s %s in %u granules of %s, page kind %s\n", "pool",
	       size_str(st->pool_size, b), st->granules, size_str(s->granule, g),
	       vmc_page_kind_name(st->page_kind));
	printf("  %-18s %s\n", "funded", size_str(st->funded_bytes, b));
	if (st->fund_policy == VMC_FUND_ONDEMAND)
		printf("  %-18s ondemand, %s at a time, down to the balloon target (%s)\n",
		       "fund policy", size_str(st->fund_batch, b), size_str(st->balloon_target, g));
	else
		printf("  %-18s upfront\n", "fund policy");
	printf("  %-18s %s\n", "reserve", size_str(st->reserve_size, b));
	printf("  %-18s %s\n", "window", size_str(st->window_size, b));
	printf("  %-18s %#llx-%#llx (%s)\n", "arena", (unsigned long long)st->arena_base,
	       (unsigned long long)(st->arena_base + st->arena_size),
	       size_str(st->arena_size, b));
	printf("  %-18s %s (memory_isolation = %d)\n", "isolation",
	       st->memory_isolation ? "strict" : "lazy", st->memory_isolation);
	printf("  %-18s %u live / %u dead (not yet recovered) / %u max\n", "workers",
	       st->workers, st->dead_workers, st->max_workers);
	printf("  %-18s %u / %u max\n", "VMs", st->vms, st->max_vms);

	printf("\ngranules          %8s %12s\n", "count", "size");
	states(st, sc);
	for (int i = 0; i < 5; i++)
		printf("  %-15s %8llu %12s\n", sc[i].key, (unsigned long long)sc[i].n,
		       size_str(sc[i].n * s->granule, b));

	region_counters(st, rg);
	counters_table("regions and code cache (`vmcctl region list` shows them)", rg,
		       NREGION_COUNTERS);
	counters(st, k);
	counters_table("counters", k, NCOUNTERS);
	attach_counters(&st->attach, a);
	counters_table("attach/detach (all workers, past and present)", a, NATTACH);
	if (hist) {
		hist_table("attach latency", st->attach.attach_hist);
		hist_table("detach latency", st->attach.detach_hist);
	}
	rows_table("VMs (sizes in MiB)", s, s->nvms, vm_row);
	rows_table("workers", s, s->nworkers, worker_row);
}

static void print_json(const struct snapshot *s)
{
	const vmc_stats_t *st = &s->st;
	struct count sc[5];
	struct counter k[NCOUNTERS], a[NATTACH], rg[NREGION_COUNTERS];

	printf("{\n  \"name\": ");
	json_str(s->name);
	printf(",\n  \"pool_size\": %llu,\n  \"granule_size\": %llu,\n  \"granules\": %u,\n",
	       (unsigned long long)st->pool_size, (unsigned long long)s->granule,
	       st->granules);
	printf("  \"page_kind\": \"%s\",\n", vmc_page_kind_name(st->page_kind));
	printf("  \"fund_policy\": \"%s\",\n  \"fund_batch\": %llu,\n  \"balloon_target\": %llu,\n",
	       fund_policy_name(st->fund_policy), (unsigned long long)st->fund_batch,
	       (unsigned long long)st->balloon_target);
	printf("  \"funded_bytes\": %llu,\n  \"reserve_size\": %llu,\n"
	       "  \"window_size\": %llu,\n  \"arena_base\": %llu,\n  \"arena_size\": %llu,\n",
	       (unsigned long long)st->funded_bytes, (unsigned long long)st->reserve_size,
	       (unsigned long long)st->window_size, (unsigned long long)st->arena_base,
	       (unsigned long long)st->arena_size);
	printf("  \"memory_isolation\": %d,\n  \"workers\": %u,\n  \"dead_workers\": %u,\n"
	       "  \"max_workers\": %u,\n  \"vms\": %u,\n  \"max_vms\": %u,",
	       st->memory_isolation, st->workers, st->dead_workers, st->max_workers,
	       st->vms, st->max_vms);
	region_counters(st, rg);
	counters_json(rg, NREGION_COUNTERS, 2);
	printf(",\n");

	states(st, sc);
	printf("  \"granule_states\": {");
	for (int i = 0; i < 5; i++)
		printf("%s\"%s\": %llu", i ? ", " : "", sc[i].key, (unsigned long long)sc[i].n);
	printf("},\n  \"counters\": {");
	counters(st, k);
	counters_json(k, NCOUNTERS, 4);
	printf("\n  },\n  \"attach\": {");
	attach_counters(&st->attach, a);
	counters_json(a, NATTACH, 4);
	printf(",\n    \"attach_hist\": ");
	hist_json(st->attach.attach_hist);
	printf(",\n    \"detach_hist\": ");
	hist_json(st->attach.detach_hist);
	printf("\n  },\n");
	rows_json("vm_table", s, s->nvms, vm_row);
	printf(",\n");
	rows_json("worker_slots", s, s->nworkers, worker_row);
	printf("\n}\n");
}

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *json = NULL, *hist = NULL, *prom = NULL;
	const struct vmcctl_opt opts[] = {
		{ "json", NULL, &json }, { "hist", NULL, &hist },
		{ "prometheus", NULL, &prom }, { 0 },
	};
	struct snapshot s = { 0 };
	vmc_t *c;
	int rc;

	if ((rc = args_parse(cmd, argc, argv, opts, &s.name, 1)) != ARGS_OK)
		return rc;
	if (json && prom)
		return usage_error(cmd, "--json and --prometheus: choose one");
	if ((rc = open_container(s.name, &c)))
		return rc;
	if (!(rc = snapshot_take(c, &s))) {
		if (json)
			print_json(&s);
		else if (prom)
			prometheus_print(&s);
		else
			print_table(&s, hist != NULL);
	}
	snapshot_free(&s);
	return close_container(c, s.name, rc);
}

const struct vmcctl_cmd cmd_stat = {
	.name = "stat",
	.synopsis = "NAME [--json | --prometheus] [--hist]",
	.summary = "show a container's pool, counters, attach figures, VMs and workers",
	.help =
	"vmcctl joins the container while it looks, so one worker slot is its own\n"
	"(marked \"(vmcctl)\").  A worker that is not alive died without leaving;\n"
	"`vmcctl check NAME --recover` reclaims its slot and cached granules.\n\n"
	"attach/detach sums all workers, past and present: affinity hits are\n"
	"re-attaches that needed no system call, remaps attaches that changed the\n"
	"window's mappings; latencies (p50, p99) are upper edges of power-of-two\n"
	"buckets.  Each VM is idle, attached (to the pid shown) or orphaned (its\n"
	"worker, pid shown, died attached); its memory is shown in MiB.  Each worker\n"
	"shows the VM attached there and its own attach figures.  Regions are the\n"
	"shared cache regions (count and bytes, not counting the code cache); the\n"
	"code cache line is bytes allocated / its size (\"-\" if it has none).\n"
	"`vmcctl region list NAME` shows each region.\n\n"
	"options:\n"
	"  --json   print one JSON object with the same fields (numbers as numbers,\n"
	"           sizes in bytes, latencies in ns, histograms as arrays of the\n"
	"           32 buckets, null for none)\n"
	"  --hist   also print the non-zero buckets of the attach and detach latency\n"
	"           histograms: [2^k ns, 2^(k+1) ns), count and a bar\n"
	"  --prometheus\n"
	"           print the figures in the Prometheus text exposition format:\n"
	"           vmc_* gauges and *_total counters labelled with container (and vm,\n"
	"           or worker and pid), attach and detach latency histograms in\n"
	"           seconds (buckets and count; the library keeps no sum).  vmcctl's\n"
	"           own worker slot is left out, so vmc_workers counts the others.\n\n"
	"example:\n"
	"  vmcctl stat web --json | python3 -m json.tool\n"
	"  vmcctl stat web --prometheus > /var/lib/node_exporter/textfile/vmc-web.prom\n",
	.run = run,
};
