/*
 * stat.c - `vmcctl stat NAME [--json]`: a look inside a live container.
 * It joins the container like any worker (so vmcctl holds a worker slot
 * for as long as it looks, marked "(vmcctl)"), takes one consistent
 * snapshot of the pool (vmc_stats: granules by state, counters summed
 * over every process that ever used it) and reads each used worker slot
 * (pid, whether that process still lives, granules in its local cache).
 * The same snapshot prints as a table for people or, with --json, as one
 * JSON object for monitoring; the state and counter tables below drive
 * both, so the two outputs always carry the same fields.
 */
#include "vmcctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct snapshot {
	const char *name;
	vmc_stats_t st;
	uint32_t self;               /* vmcctl's own slot */
	uint32_t nworkers, live;     /* used slots, and those whose process lives */
	uint32_t *slot;              /* [nworkers] slot numbers */
	vmc_worker_stats_t *ws;      /* [nworkers] */
};

struct count { const char *key; uint64_t n; };
struct counter { const char *key, *label; uint64_t n; };

static void states(const vmc_stats_t *st, struct count out[5])
{
	out[0] = (struct count){ "unfunded", st->unfunded };
	out[1] = (struct count){ "free", st->free };
	out[2] = (struct count){ "cached", st->cached };
	out[3] = (struct count){ "used", st->used };
	out[4] = (struct count){ "quarantined", st->quarantined };
}

#define NCOUNTERS 8
static void counters(const vmc_stats_t *st, struct counter out[NCOUNTERS])
{
	out[0] = (struct counter){ "fund_ops", "fund ops", st->fund_ops };
	out[1] = (struct counter){ "fund_granules", "funded granules", st->fund_granules };
	out[2] = (struct counter){ "unfund_ops", "unfund ops", st->unfund_ops };
	out[3] = (struct counter){ "unfund_granules", "unfunded granules", st->unfund_granules };
	out[4] = (struct counter){ "cache_refills", "cache refills", st->cache_refills };
	out[5] = (struct counter){ "cache_drains", "cache drains", st->cache_drains };
	out[6] = (struct counter){ "lock_repairs", "lock repairs", st->lock_repairs };
	out[7] = (struct counter){ "workers_recovered", "workers recovered",
				   st->workers_recovered };
}

static int take(vmc_t *c, struct snapshot *s)
{
	int err;

	if ((err = vmc_stats(c, &s->st)))
		return fail(err, "stat %s", s->name);
	s->self = vmc_worker_slot(c);
	s->slot = calloc(s->st.max_workers, sizeof *s->slot);
	s->ws = calloc(s->st.max_workers, sizeof *s->ws);
	if (!s->slot || !s->ws)
		return fail(ENOMEM, "stat %s: out of memory", s->name);
	for (uint32_t i = 0; i < s->st.max_workers; i++) {
		vmc_worker_stats_t *w = &s->ws[s->nworkers];
		if ((err = vmc_worker_stats(c, i, w)))
			return fail(err, "stat %s: worker slot %u", s->name, i);
		if (!w->pid)
			continue;
		s->slot[s->nworkers++] = i;
		s->live += w->alive != 0;
	}
	return EXIT_OK;
}

static void print_table(const struct snapshot *s)
{
	const vmc_stats_t *st = &s->st;
	struct count sc[5];
	struct counter k[NCOUNTERS];
	char a[SIZE_BUF], b[SIZE_BUF];

	printf("container %s\n", s->name);
	printf("  %-18s %s in %u granules of 2 MiB, page kind %s\n", "pool",
	       size_str(st->pool_size, a), st->granules, vmc_page_kind_name(st->page_kind));
	printf("  %-18s %s\n", "funded", size_str(st->funded_bytes, a));
	printf("  %-18s %s\n", "reserve", size_str(st->reserve_size, a));
	printf("  %-18s %s\n", "window", size_str(st->window_size, a));
	printf("  %-18s %#llx-%#llx (%s)\n", "arena", (unsigned long long)st->arena_base,
	       (unsigned long long)(st->arena_base + st->arena_size),
	       size_str(st->arena_size, a));
	printf("  %-18s %s (memory_isolation = %d)\n", "isolation",
	       st->memory_isolation ? "strict" : "lazy", st->memory_isolation);
	printf("  %-18s %u live / %u max (slots held: %u)\n", "workers", s->live,
	       st->max_workers, st->workers);
	printf("  %-18s %u\n", "max VMs", st->max_vms);

	printf("\ngranules          %8s %12s\n", "count", "size");
	states(st, sc);
	for (int i = 0; i < 5; i++)
		printf("  %-15s %8llu %12s\n", sc[i].key, (unsigned long long)sc[i].n,
		       size_str(sc[i].n * VMC_GRANULE_SIZE, b));

	printf("\ncounters\n");
	counters(st, k);
	for (int i = 0; i < NCOUNTERS; i++)
		printf("  %-18s %llu\n", k[i].label, (unsigned long long)k[i].n);

	printf("\nworkers\n  %4s %8s %5s %7s\n", "slot", "pid", "alive", "cached");
	for (uint32_t i = 0; i < s->nworkers; i++)
		printf("  %4u %8d %5s %7u%s\n", s->slot[i], (int)s->ws[i].pid,
		       s->ws[i].alive ? "yes" : "NO", s->ws[i].cached,
		       s->slot[i] == s->self ? "  (vmcctl)" : "");
}

/* The name needs no escaping: vmc_open accepted it, so it is [A-Za-z0-9._-]. */
static void print_json(const struct snapshot *s)
{
	const vmc_stats_t *st = &s->st;
	struct count sc[5];
	struct counter k[NCOUNTERS];

	printf("{\n  \"name\": \"%s\",\n", s->name);
	printf("  \"pool_size\": %llu,\n  \"granule_size\": %llu,\n  \"granules\": %u,\n",
	       (unsigned long long)st->pool_size, (unsigned long long)VMC_GRANULE_SIZE,
	       st->granules);
	printf("  \"page_kind\": \"%s\",\n", vmc_page_kind_name(st->page_kind));
	printf("  \"funded_bytes\": %llu,\n  \"reserve_size\": %llu,\n"
	       "  \"window_size\": %llu,\n  \"arena_base\": %llu,\n  \"arena_size\": %llu,\n",
	       (unsigned long long)st->funded_bytes, (unsigned long long)st->reserve_size,
	       (unsigned long long)st->window_size, (unsigned long long)st->arena_base,
	       (unsigned long long)st->arena_size);
	printf("  \"memory_isolation\": %d,\n  \"workers\": %u,\n  \"workers_live\": %u,\n"
	       "  \"max_workers\": %u,\n  \"max_vms\": %u,\n", st->memory_isolation,
	       st->workers, s->live, st->max_workers, st->max_vms);

	states(st, sc);
	printf("  \"granule_states\": {");
	for (int i = 0; i < 5; i++)
		printf("%s\"%s\": %llu", i ? ", " : "", sc[i].key, (unsigned long long)sc[i].n);
	printf("},\n  \"counters\": {");
	counters(st, k);
	for (int i = 0; i < NCOUNTERS; i++)
		printf("%s\n    \"%s\": %llu", i ? "," : "", k[i].key, (unsigned long long)k[i].n);
	printf("\n  },\n  \"worker_slots\": [");
	for (uint32_t i = 0; i < s->nworkers; i++)
		printf("%s\n    {\"slot\": %u, \"pid\": %d, \"alive\": %s, \"cached\": %u, "
		       "\"vmcctl\": %s}", i ? "," : "", s->slot[i], (int)s->ws[i].pid,
		       s->ws[i].alive ? "true" : "false", s->ws[i].cached,
		       s->slot[i] == s->self ? "true" : "false");
	printf("\n  ]\n}\n");
}

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *json = NULL;
	const struct vmcctl_opt opts[] = { { "json", NULL, &json }, { 0 } };
	struct snapshot s = { 0 };
	vmc_t *c;
	int rc;

	if ((rc = args_parse(cmd, argc, argv, opts, &s.name, 1)) != ARGS_OK)
		return rc;
	if ((rc = open_container(s.name, &c)))
		return rc;
	if (!(rc = take(c, &s)))
		(json ? print_json : print_table)(&s);
	free(s.slot);
	free(s.ws);
	return close_container(c, s.name, rc);
}

const struct vmcctl_cmd cmd_stat = {
	.name = "stat",
	.synopsis = "NAME [--json]",
	.summary = "show a container's pool, granules, counters and workers",
	.help =
	"vmcctl joins the container while it looks, so one worker slot is its own\n"
	"(marked \"(vmcctl)\").  A worker that is not alive died without leaving;\n"
	"`vmcctl check NAME --recover` reclaims its slot and cached granules.\n\n"
	"options:\n"
	"  --json   print one JSON object with the same fields (numbers as numbers)\n\n"
	"example:\n"
	"  vmcctl stat web --json | python3 -m json.tool\n",
	.run = run,
};
