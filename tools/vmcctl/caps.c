/*
 * caps.c - `vmcctl caps`: what this host offers vmc.  The library probes
 * each feature with a small real attempt rather than guessing from the
 * kernel version: free and reservable hugepages, a 2 MiB hugetlbfs mount,
 * the shmem THP setting, memfd seals, MAP_FIXED_NOREPLACE,
 * MADV_POPULATE_WRITE, mseal and the memory available.  The table explains
 * which page kind `auto` will pick, and belongs in CI logs next to test
 * and benchmark results.
 */
#include "vmcctl.h"

#include <stdio.h>

static const char *yes(int v)
{
	return v ? "yes" : "no";
}

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	vmc_caps_t c;
	char mem[SIZE_BUF];
	int rc;

	if ((rc = args_parse(cmd, argc, argv, NULL, NULL, 0)) != ARGS_OK)
		return rc;
	vmc_caps_probe(&c);
	printf("%-22s %ld free / %ld total (2 MiB)\n", "hugepages", c.hugepages_free,
	       c.hugepages_total);
	printf("%-22s %s\n", "hugepages reservable", yes(c.hugepages_reservable));
	printf("%-22s %s\n", "hugetlbfs mount", c.hugetlbfs_mounted ? c.hugetlbfs_path : "none");
	printf("%-22s %s (shmem_enabled: %s)\n", "shmem THP", yes(c.thp_shmem),
	       c.thp_shmem_setting[0] ? c.thp_shmem_setting : "unknown");
	printf("%-22s %s\n", "memfd seals", yes(c.memfd_seals));
	printf("%-22s %s\n", "MAP_FIXED_NOREPLACE", yes(c.map_fixed_noreplace));
	printf("%-22s %s\n", "MADV_POPULATE_WRITE", yes(c.madv_populate_write));
	printf("%-22s %s\n", "mseal", yes(c.mseal));
	printf("%-22s %s\n", "memory available", size_str(c.mem_available, mem));
	return EXIT_OK;
}

const struct vmcctl_cmd cmd_caps = {
	.name = "caps",
	.synopsis = "",
	.summary = "show what this host offers (hugepages, THP, kernel features)",
	.help =
	"Prints one line per capability that vmc probes.  With page_kind auto, a\n"
	"container uses hugetlb if enough hugepages are free (and, for a named\n"
	"container, hugetlbfs is mounted), else THP if shmem THP is enabled, else 4k.\n\n"
	"example:\n"
	"  vmcctl caps\n",
	.run = run,
};
