/*
 * region.c - `vmcctl region list|create|destroy`: a container's shared
 * regions.  A region is a named run of pool granules at the same address
 * in every worker (a class-data archive, a string table, a cache that all
 * tenants read); the code cache, if the container has one, is region 0.
 * Regions live in the container, not in the processes that made them, so
 * an administrator can make one before the runtimes start (they map it
 * with vmc_region_open) and remove it after they have gone.
 *
 * `region create` makes the region in vmcctl's own worker, which leaves
 * the container as soon as it has printed the result: the region stays,
 * funded and zeroed, but nobody has it open until a runtime opens it.
 * `region destroy` gives its granules back to the pool; the library
 * refuses (EBUSY) while a live worker has it open.  `region list` prints
 * the region table (index, name, size, address, openers) as a table or
 * JSON, described once by the row below; vmc_stats() gives the totals, so
 * a region made or removed between the two reads may show in one only.
 */
#include "vmcctl.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void region_counters(const vmc_stats_t *st, struct counter out[NREGION_COUNTERS])
{
	out[0] = (struct counter){ "regions", "regions", .n = st->regions };
	out[1] = (struct counter){ "region_bytes", "region bytes", .n = st->region_bytes,
				   .bytes = 1 };
	out[2] = (struct counter){ "code_cache_used", "code cache used", .n = st->code_cache_used,
				   .bytes = 1, .of = st->code_cache_size,
				   .of_key = "code_cache_size" };
}

/* ----------------------------------------------------------------- list */

struct table {
	vmc_stats_t st;
	uint32_t n;                               /* entries in use */
	uint32_t index[VMC_MAX_REGIONS];
	vmc_region_stats_t r[VMC_MAX_REGIONS];
	int namew;
	char code_note[96];                       /* the code cache's mark */
};

static int region_row(const struct table *t, uint32_t i, struct cell *c)
{
	const vmc_region_stats_t *r = &t->r[i];

	c[0] = (struct cell){ "index", "index", 5, CELL_NUM, .n = t->index[i] };
	c[1] = (struct cell){ "name", "name", -t->namew, CELL_STR, .s = r->name };
	c[2] = (struct cell){ "size", "size", 6, CELL_MIB, .n = r->size };
	c[3] = (struct cell){ "addr", "address", 14, CELL_HEX, .n = (uintptr_t)r->addr };
	c[4] = (struct cell){ "openers", "openers", 0, CELL_NUM, .n = r->openers };
	c[5] = (struct cell){ "code", "code cache", 0, CELL_MARK, .n = r->code != 0,
			      .s = t->code_note };
	return 6;
}
#define REGION_CELLS 6

static int take(vmc_t *c, const char *name, struct table *t)
{
	char used[SIZE_BUF], size[SIZE_BUF];
	int err;

	if ((err = vmc_stats(c, &t->st)))
		return fail(err, "stat %s", name);
	t->namew = 4;
	for (uint32_t i = 0; i < VMC_MAX_REGIONS; i++) {
		vmc_region_stats_t *r = &t->r[t->n];
		if ((err = vmc_region_stats(c, i, r)) == ENOENT)
			continue;
		if (err)
			return fail(err, "stat %s: region %u", name, i);
		t->index[t->n++] = i;
		if ((int)strlen(r->name) > t->namew)
			t->namew = (int)strlen(r->name);
	}
	snprintf(t->code_note, sizeof t->code_note, "code cache: %s of %s used",
		 size_str(t->st.code_cache_used, used), size_str(t->st.code_cache_size, size));
	return EXIT_OK;
}

static void print_table(const char *name, const struct table *t)
{
	struct counter k[NREGION_COUNTERS];
	struct cell c[REGION_CELLS];

	printf("container %s\n", name);
	region_counters(&t->st, k);
	counters_table("regions and code cache", k, NREGION_COUNTERS);
	printf("\nregion table (sizes in MiB)\n");
	for (uint32_t i = 0; i < t->n; i++) {
		int n = region_row(t, i, c);
		if (!i)
			cells_head(c, n);
		cells_row(c, n);
	}
	if (!t->n)
		printf("  none\n");
}

static void print_json(const char *name, const struct table *t)
{
	struct counter k[NREGION_COUNTERS];
	struct cell c[REGION_CELLS];

	printf("{\n  \"name\": ");
	json_str(name);
	printf(",");
	region_counters(&t->st, k);
	counters_json(k, NREGION_COUNTERS, 2);
	printf(",\n  \"region_table\": [");
	for (uint32_t i = 0; i < t->n; i++) {
		int n = region_row(t, i, c);
		printf("%s\n    ", i ? "," : "");
		cells_json(c, n);
	}
	printf(t->n ? "\n  ]\n}\n" : "]\n}\n");
}

static int run_list(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *name, *json = NULL;
	const struct vmcctl_opt opts[] = { { "json", NULL, &json }, { 0 } };
	struct table t;
	vmc_t *c;
	int rc;

	if ((rc = args_parse(cmd, argc, argv, opts, &name, 1)) != ARGS_OK)
		return rc;
	if ((rc = open_container(name, &c)))
		return rc;
	memset(&t, 0, sizeof t);
	if (!(rc = take(c, name, &t))) {
		if (json)
			print_json(name, &t);
		else
			print_table(name, &t);
	}
	return close_container(c, name, rc);
}

/* --------------------------------------------------------------- create */

/* The size of region `name`, 0 if it is not in the table. */
static uint64_t region_size(vmc_t *c, const char *name)
{
	vmc_region_stats_t r;

	for (uint32_t i = 1; i < VMC_MAX_REGIONS; i++)
		if (!vmc_region_stats(c, i, &r) && !strcmp(r.name, name))
			return r.size;
	return 0;
}


static int run_create(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *pos[3];
	char sz[SIZE_BUF];
	uint64_t size;
	void *addr;
	vmc_t *c;
	int err, rc;

	if ((rc = args_parse(cmd, argc, argv, NULL, pos, 3)) != ARGS_OK)
		return rc;
	if ((rc = size_arg(cmd, "SIZE", pos[2], &size)))
		return rc;
	if ((rc = open_container(pos[0], &c)))
		return rc;
	if ((err = vmc_region_create(c, pos[1], (size_t)size, 0, &addr)))
		rc = fail(err, "create region %s in %s", pos[1], pos[0]);
	else   /* the size it got: whole granules */
		printf("created region %s in %s: %s at %p, open nowhere (it stays until "
		       "`vmcctl region destroy %s %s`)\n", pos[1], pos[0],
		       size_str(region_size(c, pos[1]), sz), addr, pos[0], pos[1]);
	return close_container(c, pos[0], rc);
}

/* -------------------------------------------------------------- destroy */


static int run_destroy(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *pos[2];
	char sz[SIZE_BUF];
	uint64_t size;
	vmc_t *c;
	int err, rc;

	if ((rc = args_parse(cmd, argc, argv, NULL, pos, 2)) != ARGS_OK)
		return rc;
	if ((rc = open_container(pos[0], &c)))
		return rc;
	size = region_size(c, pos[1]);
	if ((err = vmc_region_destroy(c, pos[1])))
		rc = fail(err, "destroy region %s in %s", pos[1], pos[0]);
	else if (size)
		printf("destroyed region %s in %s: %s back to the pool\n", pos[1], pos[0],
		       size_str(size, sz));
	else
		printf("destroyed region %s in %s\n", pos[1], pos[0]);
	return close_container(c, pos[0], rc);
}

/* ------------------------------------------------------------- dispatch */

static const struct vmcctl_cmd region_list = {
	.name = "region list",
	.synopsis = "NAME [--json]",
	.summary = "show a container's shared regions and its code cache",
	.help =
	"One row per region: its index in the region table, name, size (MiB), the\n"
	"address it has in every worker and the number of live workers that have it\n"
	"open (vmcctl opens none).  The code cache, if the container has one, is\n"
	"index 0, marked \"(code cache: USED of SIZE used)\"; every worker maps it,\n"
	"read+execute, when it joins.  Above the table: the number of regions and\n"
	"their bytes (the code cache not counted) and the code cache's use.\n\n"
	"options:\n"
	"  --json   print one JSON object with the same fields (sizes in bytes,\n"
	"           addresses as numbers, \"code\": true for the code cache)\n\n"
	"example:\n"
	"  vmcctl region list web --json | python3 -m json.tool\n",
	.run = run_list,
};

static const struct vmcctl_cmd region_create = {
	.name = "region create",
	.synopsis = "NAME REGION SIZE",
	.summary = "create shared region REGION of SIZE bytes in container NAME",
	.help =
	"REGION is a name of 1..63 characters, unique in the container (the code\n"
	"cache's name, \"(code cache)\", is taken).  SIZE is a multiple of 2 MiB with\n"
	"an optional K/M/G/T suffix; it comes out of the funded pool as one run of\n"
	"contiguous free granules, so a large region may need `vmcctl balloon NAME 0`\n"
	"first, and it must fit in the region space (vmcctl create --region-space).\n"
	"The region reads as zero.  vmcctl leaves the container right after making it,\n"
	"so nobody has it open, but it stays until `vmcctl region destroy`; runtimes\n"
	"map it with vmc_region_open() at the address printed.\n\n"
	"example:\n"
	"  vmcctl region create web classes 256M\n",
	.run = run_create,
};

static const struct vmcctl_cmd region_destroy = {
	.name = "region destroy",
	.synopsis = "NAME REGION",
	.summary = "destroy shared region REGION of container NAME",
	.help =
	"Gives the region's granules back to the pool.  Refused (exit 1) while a live\n"
	"worker has the region open; a worker that died holding it does not count.\n"
	"The code cache cannot be destroyed: it lives as long as the container.\n\n"
	"example:\n"
	"  vmcctl region destroy web classes\n",
	.run = run_destroy,
};

static const struct vmcctl_cmd *const actions[] = {
	&region_list, &region_create, &region_destroy,
};
#define NACTIONS (sizeof actions / sizeof actions[0])

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	return run_action(cmd, actions, NACTIONS, "list, create or destroy", argc, argv);
}

const struct vmcctl_cmd cmd_region = {
	.name = "region",
	.synopsis = "ACTION ...",
	.summary = "list, create or destroy shared regions (and see the code cache)",
	.help =
	"actions:\n"
	"  region list NAME [--json]         the region table, code cache included\n"
	"  region create NAME REGION SIZE    make a region that outlives vmcctl\n"
	"  region destroy NAME REGION        remove a region nobody has open\n\n"
	"`vmcctl region ACTION --help` describes an action.\n\n"
	"example:\n"
	"  vmcctl region create web classes 256M && vmcctl region list web\n",
	.run = run,
};
