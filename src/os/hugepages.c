/*
 * hugepages.c - vmc_hugepages_setup: the root-only host set-up behind
 * `vmcctl hugepages N`.  It reserves 2 MiB pages through
 * /proc/sys/vm/nr_hugepages (the kernel may reserve fewer than asked when
 * memory is fragmented, so the result is read back) and mounts hugetlbfs
 * on /dev/hugepages so that named hugetlb pools can be shared by name.
 */
#include "os.h"

#include <errno.h>
#include <stdio.h>

#define HUGE_MOUNT "/dev/hugepages"

/* n: free pages wanted; total: what nr_hugepages must become. */
static int setup_fail(int err, long n, long total, int mounted)
{
	return vmc_fail(err, "reserving hugepages needs root: run `sudo vmcctl hugepages %ld`, "
			"or as root: `echo %ld > /proc/sys/vm/nr_hugepages%s`", n, total,
			mounted ? "" : " && mkdir -p " HUGE_MOUNT " && mount -t hugetlbfs -o "
				       "pagesize=2M none " HUGE_MOUNT);
}

int vmc_hugepages_setup(long n, long *got)
{
	vmc_caps_t caps;
	char num[32];
	long total;
	int err;

	vmc_clear_error();
	if (n < 0 || n > (1L << 30))
		return vmc_fail(EINVAL, "hugepages: %ld is not a page count", n);
	vmc_caps_probe(&caps);
	total = caps.hugepages_total + VMC_MAX(n - caps.hugepages_free, 0);
	if (caps.hugepages_free < n) {
		snprintf(num, sizeof num, "%ld", total);
		if ((err = vmc_os_write_file("/proc/sys/vm/nr_hugepages", num)))
			return err == EACCES || err == EPERM || err == EROFS ? setup_fail(err, n, total, caps.hugetlbfs_mounted)
				: vmc_fail(err, "writing /proc/sys/vm/nr_hugepages: %s",
					   vmc_strerror(err));
	}
	if (!caps.hugetlbfs_mounted) {
		if (os_mkdir(HUGE_MOUNT, 0755) != 0 && errno != EEXIST)
			return vmc_fail(errno, "mkdir " HUGE_MOUNT ": %s", vmc_strerror(errno));
		if (os_mount("none", HUGE_MOUNT, "hugetlbfs", 0, "pagesize=2M") != 0)
			return errno == EPERM ? setup_fail(EPERM, n, total, 0)
				: vmc_fail(errno, "mount hugetlbfs on " HUGE_MOUNT ": %s",
					   vmc_strerror(errno));
	}
	vmc_caps_probe(&caps);
	if (got)
		*got = caps.hugepages_free;
	if (caps.hugepages_free < n)
		return vmc_fail(ENOMEM, "asked the kernel for %ld hugepages, it has %ld free: "
				"memory is short or fragmented; try again after freeing memory, "
				"or reserve at boot (hugepages=%ld on the kernel command line)",
				n, caps.hugepages_free, n);
	return 0;
}
