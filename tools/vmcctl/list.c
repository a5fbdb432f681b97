/*
 * list.c - `vmcctl list [--json]`: the containers on this host.  A named
 * container's metadata is /dev/shm/vmc.NAME.meta (vmc.h says so), so the
 * list is those files, sorted by name.  For each, vmcctl joins the
 * container for a moment (one at a time: each has its own arena) and shows
 * its page kind, pool size, funded bytes, bytes in use by VMs and regions,
 * VMs and live workers other than vmcctl.  A file that is not a container
 * vmcctl can open - corrupt, of another format version, a stray file with
 * a name no container can have, unreadable, a container whose worker slots
 * are all taken - is listed with the reason instead of the figures; the
 * list goes on.  Names come from the file system and may hold any byte:
 * the table shows control characters as '?', JSON escapes them.
 */
#include "vmcctl.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_DIR "/dev/shm"
#define PREFIX "vmc."
#define SUFFIX ".meta"

struct entry {
	char name[256];
	vmc_stats_t st;
	uint64_t granule;
	int err;                  /* 0, or why the figures are missing */
	char why[512];
};

static int is_meta(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > strlen(PREFIX SUFFIX) && !strncmp(d->d_name, PREFIX, strlen(PREFIX)) &&
	       !strcmp(d->d_name + n - strlen(SUFFIX), SUFFIX);
}

/* Why e has no figures: the library's sentence, or the code's name. */
static void explain(struct entry *e)
{
	const char *msg = vmc_errmsg();

	snprintf(e->why, sizeof e->why, "%s", *msg ? msg : vmc_strerror(e->err));
}

static void look(struct entry *e)
{
	vmc_t *c;

	if ((e->err = vmc_open(e->name, &c))) {
		explain(e);
		return;
	}
	e->granule = vmc_granule_size(c);
	if ((e->err = vmc_stats(c, &e->st)))
		explain(e);
	else
		e->st.workers -= vmc_worker_slot(c) != VMC_NO_SLOT;   /* not vmcctl */
	close_container(c, e->name, EXIT_OK);   /* says so if it fails */
}

static int row(const struct entry *e, int namew, struct cell *c)
{
	const vmc_stats_t *st = &e->st;
	int none = e->err != 0;

	c[0] = (struct cell){ "name", "name", -namew, CELL_STR, .s = e->name };
	c[1] = (struct cell){ "page_kind", "pages", -7, CELL_STR,
			      .s = vmc_page_kind_name(st->page_kind), .none = none };
	c[2] = (struct cell){ "pool_size", "size", 9, CELL_SIZE, .n = st->pool_size,
			      .none = none };
	c[3] = (struct cell){ "funded_bytes", "funded", 9, CELL_SIZE, .n = st->funded_bytes,
			      .none = none };
	c[4] = (struct cell){ "used_bytes", "in use", 9, CELL_SIZE,
			      .n = (uint64_t)st->used * e->granule, .none = none };
	c[5] = (struct cell){ "vms", "VMs", 5, CELL_NUM, .n = st->vms, .none = none };
	c[6] = (struct cell){ "workers", "workers", 0, CELL_NUM, .n = st->workers,
			      .none = none };
	c[7] = (struct cell){ "error", "error", 0, CELL_NOTE, .s = e->why, .none = !none };
	return 8;
}
#define CELLS 8

static void print_table(const struct entry *e, int n, int npattern)
{
	struct cell c[CELLS];
	int namew = 4;

	for (int i = 0; i < n; i++)
		if ((int)strlen(e[i].name) > namew)
			namew = (int)strlen(e[i].name);
	for (int i = 0; i < n; i++) {
		int k = row(&e[i], namew, c);
		if (!i)
			cells_head(c, k);
		cells_row(c, k);
	}
	if (!n && npattern)
		printf("no container matches\n");
	else if (!n)
		printf("no containers (no %s/%s*%s files)\n", META_DIR, PREFIX, SUFFIX);
}

static void print_json(const struct entry *e, int n)
{
	struct cell c[CELLS];

	printf("{\"containers\": [");
	for (int i = 0; i < n; i++) {
		int k = row(&e[i], 0, c);
		printf("%s\n  ", i ? "," : "");
		cells_json(c, k);
	}
	printf(n ? "\n]}\n" : "]}\n");
}

/* The containers whose metadata files are in META_DIR and whose names
 * match one of the patterns (all if none), sorted by name.  Returns 0 or
 * an errno. */
static int find(const char **pattern, int npattern, struct entry **out, int *n)
{
	struct dirent **files;
	int nfiles = scandir(META_DIR, &files, is_meta, alphasort);
	struct entry *e;

	*n = 0;
	if (nfiles < 0)
		return errno;
	if ((e = calloc((size_t)nfiles + 1, sizeof *e)))
		for (int i = 0; i < nfiles; i++) {
			const char *f = files[i]->d_name;
			int len = (int)(strlen(f) - strlen(PREFIX SUFFIX)), match = !npattern;
			snprintf(e[*n].name, sizeof e[*n].name, "%.*s", len, f + strlen(PREFIX));
			for (int j = 0; j < npattern && !match; j++)
				match = !fnmatch(pattern[j], e[*n].name, 0);
			*n += match;
		}
	for (int i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	*out = e;
	return e ? 0 : ENOMEM;
}

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *json = NULL, *pattern[argc];
	const struct vmcctl_opt opts[] = { { "json", NULL, &json }, { 0 } };
	struct entry *e = NULL;
	int n, npattern, err, rc;

	if ((rc = args_parse_list(cmd, argc, argv, opts, pattern, &npattern)) != ARGS_OK)
		return rc;
	if ((err = find(pattern, npattern, &e, &n)))
		return fail(err, "list: cannot read %s", META_DIR);
	for (int i = 0; i < n; i++)
		look(&e[i]);
	if (json)
		print_json(e, n);
	else
		print_table(e, n, npattern);
	free(e);
	return EXIT_OK;
}

const struct vmcctl_cmd cmd_list = {
	.name = "list",
	.synopsis = "[PATTERN...] [--json]",
	.summary = "list the containers on this host",
	.help =
	"One row per container (a /dev/shm/vmc.NAME.meta file) whose name matches a\n"
	"PATTERN (shell wildcards; all containers if none is given), sorted by name: its\n"
	"page kind, pool size, funded bytes, bytes in use (granules held by VMs,\n"
	"regions and the code cache), VMs, and live workers (vmcctl, which joins each\n"
	"container for a moment to read it, is not counted).  A file vmcctl cannot\n"
	"open as a container (corrupt, another format version, not a container,\n"
	"all worker slots taken, no permission) is listed with the reason; that\n"
	"does not change the exit status, which is 1 only if the list cannot be made.\n\n"
	"options:\n"
	"  --json   print {\"containers\": [...]} with the same fields (sizes in\n"
	"           bytes, null for a figure that could not be read, \"error\": null\n"
	"           for a container that could be)\n\n"
	"example:\n"
	"  vmcctl list\n"
	"  vmcctl list 'web*' --json\n",
	.run = run,
};
