/*
 * create.c - `vmcctl create NAME`: make a container that outlives vmcctl.
 * The parameters come in the library's three layers (built-in defaults,
 * then $VMC_PROFILE, then VMC_* environment variables, all applied by
 * vmc_config_init), then --profile FILE, then the command-line options,
 * each of which is just a profile key set through vmc_config_set, so the
 * CLI accepts exactly what a profile accepts and reports bad values in the
 * same words.  Creating funds the pool up front (fund_size; under
 * --fund-policy ondemand commits fund the rest); if that takes more than a
 * second and stderr is a terminal, a progress bar shows how far it got.
 * vmcctl then closes its handle: the container stays, in its files.
 */
#include "vmcctl.h"

#include <stdio.h>
#include <unistd.h>

/* Command-line options and the profile keys they set, in the order they
 * are applied: the policy before fund_size, so that an explicit --fund
 * stands under ondemand (whose default fund_size is 0). */
static const char *const keys[] = {
	"pool_size", "fund_policy", "fund_size", "fund_batch", "page_kind", "window_size",
	"max_workers", "max_vms", "code_cache_size", "region_space", "granule_size",
};
#define NKEYS (sizeof keys / sizeof keys[0])

static int print_created(vmc_t *c, const char *name)
{
	vmc_stats_t st;
	char pool[SIZE_BUF], funded[SIZE_BUF], window[SIZE_BUF], arena[SIZE_BUF];
	char code[SIZE_BUF];
	int err = vmc_stats(c, &st);

	if (err)
		return fail(err, "stat %s", name);
	char gran[SIZE_BUF];
	printf("created %s: pool %s (%s, granules of %s), funded %s", name,
	       size_str(st.pool_size, pool), vmc_page_kind_name(st.page_kind),
	       size_str(vmc_granule_size(c), gran), size_str(st.funded_bytes, funded));
	if (st.fund_policy == VMC_FUND_ONDEMAND)
		printf(" (more on demand, %s at a time)", size_str(st.fund_batch, code));
	printf(", window %s, arena %#llx (%s)", size_str(st.window_size, window),
	       (unsigned long long)st.arena_base, size_str(st.arena_size, arena));
	if (st.code_cache_size)
		printf(", code cache %s", size_str(st.code_cache_size, code));
	putchar('\n');
	return EXIT_OK;
}

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *name, *profile = NULL, *val[NKEYS] = { 0 };   /* val[i]: keys[i] */
	const struct vmcctl_opt opts[] = {
		{ "size", "BYTES", &val[0] }, { "fund-policy", "POLICY", &val[1] },
		{ "fund", "BYTES", &val[2] }, { "fund-batch", "BYTES", &val[3] },
		{ "page-kind", "KIND", &val[4] }, { "window", "BYTES", &val[5] },
		{ "max-workers", "N", &val[6] }, { "max-vms", "N", &val[7] },
		{ "code-cache", "BYTES", &val[8] }, { "region-space", "BYTES", &val[9] },
		{ "granule", "BYTES", &val[10] }, { "profile", "FILE", &profile }, { 0 },
	};
	struct progress bar = { 0 };
	vmc_config_t cfg;
	vmc_t *c;
	int err, rc;

	if ((rc = args_parse(cmd, argc, argv, opts, &name, 1)) != ARGS_OK)
		return rc;
	if ((err = vmc_config_init(&cfg)))
		return fail(err, "create %s", name);
	if (profile && (err = vmc_config_load(&cfg, profile)))
		return fail(err, "create %s", name);
	for (size_t i = 0; i < NKEYS; i++)
		if (val[i] && (err = vmc_config_set(&cfg, keys[i], val[i]))) {
			fail(err, "create %s: --%s %s", name, opts[i].name, val[i]);
			return EXIT_USAGE;   /* a bad value on the command line */
		}
	if (isatty(STDERR_FILENO)) {
		progress_begin(&bar);
		cfg.progress = progress_update;
		cfg.progress_arg = &bar;
	}
	err = vmc_create(name, &cfg, &c);
	if (cfg.progress)
		progress_end(&bar);
	if (err)
		return fail(err, "create %s", name);
	rc = print_created(c, name);
	return close_container(c, name, rc);
}

const struct vmcctl_cmd cmd_create = {
	.name = "create",
	.synopsis = "NAME [--size BYTES] [--fund BYTES] [--fund-policy POLICY]\n"
		    "                     [--fund-batch BYTES] [--page-kind KIND] [--window BYTES]\n"
		    "                     [--max-workers N] [--max-vms N] [--code-cache BYTES]\n"
		    "                     [--region-space BYTES] [--granule BYTES] [--profile FILE]",
	.summary = "create a container (it persists until `vmcctl destroy`)",
	.help =
	"Parameters start from the defaults, $VMC_PROFILE and the VMC_* environment\n"
	"variables, then --profile FILE, then the options below.  Sizes take K/M/G/T\n"
	"suffixes (powers of 1024); every size is rounded up to whole granules.\n\n"
	"options:\n"
	"  --size BYTES       pool size (vmc/pool_size, default 1G)\n"
	"  --fund BYTES       memory funded at create (vmc/fund_size, default 256M;\n"
	"                     0 under --fund-policy ondemand)\n"
	"  --fund-policy POLICY\n"
	"                     upfront: only create and `vmcctl balloon` fund memory;\n"
	"                     ondemand: commits fund more when they need it, up to\n"
	"                     the pool size less the balloon target\n"
	"                     (vmc/fund_policy, default upfront)\n"
	"  --fund-batch BYTES what an on-demand fund adds at once (vmc/fund_batch,\n"
	"                     default 0: 1/64 of the pool, at least 2M)\n"
	"  --page-kind KIND   auto, hugetlb, thp or 4k (vmc/page_kind, default auto)\n"
	"  --window BYTES     address window of a worker (vmc/window_size, default 1G)\n"
	"  --max-workers N    worker slots (vmc/max_workers, default 64)\n"
	"  --max-vms N        VM table entries (vmc/max_vms, default 256)\n"
	"  --code-cache BYTES JIT code cache, mapped read+execute in every worker and\n"
	"                     taken from the funded pool (vmc/code_cache_size,\n"
	"                     default 0: none; at most --fund)\n"
	"  --region-space BYTES\n"
	"                     arena address space that shared regions are placed in:\n"
	"                     they must fit in it (vmc/region_space, default 64G;\n"
	"                     it costs address space, not memory)\n"
	"  --granule BYTES    the unit of mapping and accounting: 2M for hugetlb and\n"
	"                     thp, a power of two from 4K to 2M on 4k pages\n"
	"                     (vmc/granule_size, default 2M, or 64K on 4k pages)\n"
	"  --profile FILE     a profile of `vmc/key = value` lines\n\n"
	"example:\n"
	"  vmcctl create web --size 4G --fund 1G --page-kind hugetlb --code-cache 256M\n"
	"  vmcctl create lua --size 1G --fund-policy ondemand\n",
	.run = run,
};
