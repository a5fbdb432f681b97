/*
 * check.c - `vmcctl check NAME [--recover]`: is the container sound?
 * vmc_check stops the container's workers for a moment and verifies every
 * table invariant (each granule in exactly one state, counts adding up to
 * the pool, lists holding exactly the granules marked so).  A container
 * whose metadata fails validation cannot even be opened; that is reported
 * as inconsistent too.  With --recover, vmcctl first reclaims the slots of
 * workers that died without leaving and returns their cached granules to
 * the pool, which is what an administrator does after a crash.
 */
#include "vmcctl.h"

#include <stdio.h>

static int recover(vmc_t *c, const char *name)
{
	vmc_recover_report_t r;
	int err = vmc_recover(c, &r);

	if (err)
		return fail(err, "recover %s", name);
	printf("%s: recovered %u dead worker%s, %u granule%s returned to the pool\n", name,
	       r.workers_reclaimed, r.workers_reclaimed == 1 ? "" : "s",
	       r.granules_returned, r.granules_returned == 1 ? "" : "s");
	return EXIT_OK;
}

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *name, *do_recover = NULL;
	const struct vmcctl_opt opts[] = { { "recover", NULL, &do_recover }, { 0 } };
	vmc_check_report_t report;
	vmc_t *c;
	int err, rc;

	if ((rc = args_parse(cmd, argc, argv, opts, &name, 1)) != ARGS_OK)
		return rc;
	if ((err = vmc_open(name, &c))) {
		if (err != VMC_ECORRUPT)
			return fail(err, "open %s", name);
		printf("%s: INCONSISTENT: %s\n", name, vmc_errmsg());
		return EXIT_ERR;
	}
	if (do_recover && (rc = recover(c, name)))
		return close_container(c, name, rc);
	err = vmc_check(c, &report);
	if (!err)
		printf("%s: consistent\n", name);
	else if (err == VMC_ECORRUPT)
		printf("%s: INCONSISTENT: %s\n", name, report.first);
	else
		fail(err, "check %s", name);
	return close_container(c, name, err ? EXIT_ERR : EXIT_OK);
}

const struct vmcctl_cmd cmd_check = {
	.name = "check",
	.synopsis = "NAME [--recover]",
	.summary = "verify a container's invariants (exit 1 if inconsistent)",
	.help =
	"Prints \"NAME: consistent\" and exits 0, or \"NAME: INCONSISTENT: WHY\" and\n"
	"exits 1.  The check briefly blocks the container's other workers.\n\n"
	"options:\n"
	"  --recover   first reclaim the slots and cached granules of dead workers\n\n"
	"example:\n"
	"  vmcctl check web --recover\n",
	.run = run,
};
