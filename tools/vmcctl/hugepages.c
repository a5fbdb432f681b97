/*
 * hugepages.c - `vmcctl hugepages N`: prepare the host for hugetlb pools.
 * Pools of 2 MiB hugetlb pages are what makes vmc fast, but a fresh machine
 * has no hugepages reserved and often no hugetlbfs mount (without one, a
 * hugetlb pool cannot be shared by name).  As root, this raises
 * /proc/sys/vm/nr_hugepages until N pages are free and mounts hugetlbfs on
 * /dev/hugepages if there is no mount; as anyone else, it prints the exact
 * commands root has to run.
 */
#include "vmcctl.h"

#include <stdio.h>

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *arg;
	vmc_caps_t caps;
	long n, got = 0;
	int err;

	if ((err = args_parse(cmd, argc, argv, NULL, &arg, 1)) != ARGS_OK)
		return err;
	if (count_parse(arg, &n))
		return usage_error(cmd, "bad page count '%s' (expected a number, e.g. 512)", arg);
	if ((err = vmc_hugepages_setup(n, &got))) {
		fail(err, "hugepages %ld", n);
		if (got)
			fprintf(stderr, "vmcctl: hugepages %ld: %ld free now\n", n, got);
		return EXIT_ERR;
	}
	vmc_caps_probe(&caps);
	printf("%ld hugepages free, hugetlbfs mounted on %s\n", got,
	       caps.hugetlbfs_mounted ? caps.hugetlbfs_path : "(none found)");
	return EXIT_OK;
}

const struct vmcctl_cmd cmd_hugepages = {
	.name = "hugepages",
	.synopsis = "N",
	.summary = "reserve N free 2 MiB hugepages and mount hugetlbfs (root)",
	.help =
	"Raises /proc/sys/vm/nr_hugepages so that N 2 MiB pages are free, and mounts\n"
	"hugetlbfs on /dev/hugepages if no 2 MiB hugetlbfs mount exists.  Needs root;\n"
	"otherwise it prints the commands to run as root.  The kernel may reserve\n"
	"fewer pages than asked when memory is fragmented: that is an error too.\n"
	"A pool of S bytes funded up front needs S / 2 MiB pages.\n\n"
	"example:\n"
	"  sudo vmcctl hugepages 512     # 1 GiB of hugepages\n",
	.run = run,
};
