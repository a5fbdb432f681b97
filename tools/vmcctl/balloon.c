/*
 * balloon.c - `vmcctl balloon NAME TARGET`: move memory between a live
 * container and the host.  TARGET is how many bytes of the pool should be
 * unfunded (holes that cost the host nothing).  Raising it inflates the
 * balloon: free granules, and granules idling in workers' caches, go back
 * to the host.  Lowering it deflates: holes are funded again.  Granules in
 * use by VMs are never taken, so inflating can stop short (VMC_EFUNDS);
 * vmcctl then says how far it got, and the container stays at that point.
 * Deflating funds memory, which can take seconds; as at create, a progress
 * bar shows on a terminal once it has taken more than one.
 */
#include "vmcctl.h"

#include <stdio.h>
#include <unistd.h>


static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *pos[2];
	char was[SIZE_BUF], now[SIZE_BUF], funded[SIZE_BUF], want[SIZE_BUF];
	uint64_t target, before, achieved, granule;
	struct progress bar = { 0 };
	vmc_stats_t st;
	vmc_t *c;
	int err, rc;

	if ((rc = args_parse(cmd, argc, argv, NULL, pos, 2)) != ARGS_OK)
		return rc;
	if ((rc = size_arg(cmd, "TARGET", pos[1], &target)))
		return rc;
	if ((rc = open_container(pos[0], &c)))
		return rc;
	if ((err = vmc_stats(c, &st))) {
		rc = fail(err, "stat %s", pos[0]);
		return close_container(c, pos[0], rc);
	}
	granule = vmc_granule_size(c);
	before = achieved = (uint64_t)st.unfunded * granule;
	if (isatty(STDERR_FILENO)) {
		progress_begin(&bar);
		vmc_set_progress(c, progress_update, &bar);
	}
	err = vmc_balloon(c, target, &achieved);
	progress_end(&bar);
	if (err)
		rc = fail(err, "balloon %s to %s unfunded%s", pos[0], size_str(target, want),
			  err == VMC_EFUNDS ? ": stopped short" : "");
	/* how far it got, also when it stopped part way */
	if (!err || err == VMC_EFUNDS || achieved != before)
		printf("%s: unfunded %s (was %s), funded now %s\n", pos[0],
		       size_str(achieved, now), size_str(before, was),
		       size_str(st.pool_size - achieved, funded));
	return close_container(c, pos[0], rc);
}

const struct vmcctl_cmd cmd_balloon = {
	.name = "balloon",
	.synopsis = "NAME TARGET",
	.summary = "give memory back to the host, or take it again",
	.help =
	"TARGET is the number of bytes of the pool to leave unfunded, with an optional\n"
	"K/M/G/T suffix, rounded up to whole granules.  A higher target inflates the balloon\n"
	"(free and cached granules go back to the host); a lower one deflates it\n"
	"(holes are funded again); 0 funds the whole pool.  Granules in use are never\n"
	"taken: if too few are unused, vmcctl says how far it got and exits 1.\n"
	"A deflate that takes more than a second shows a progress bar on a terminal.\n"
	"The target is kept: in a container created with --fund-policy ondemand,\n"
	"commits fund more only down to it (`vmcctl stat` shows it).\n\n"
	"example:\n"
	"  vmcctl balloon web 2G     # leave 2 GiB of web's pool to the host\n",
	.run = run,
};
