/*
 * backing.c - how each page kind turns pool granules into memory.
 *
 *  hugetlb  fallocate on the hugetlbfs file or MFD_HUGETLB memfd takes
 *           2 MiB pages from the reserved pool; ENOSPC when there are none.
 *  4k       fallocate on a tmpfs file; ENOSPC when tmpfs is full.
 *  thp      tmpfs with shmem_enabled=advise only allocates huge pages on a
 *           fault in a MADV_HUGEPAGE mapping, so funding maps the run
 *           2 MiB-aligned, advises it and populates it with
 *           MADV_POPULATE_WRITE, which reports ENOMEM/EFAULT instead of
 *           raising SIGBUS.  Kernels without it fall back to fallocate.
 *
 * Unfunding punches a hole (FALLOC_FL_PUNCH_HOLE) for every kind.  Before
 * funding, backing_precheck refuses what the host has not got, so that
 * running short is an error code up front and never an OOM kill later.
 */
#include "backing.h"
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/vfs.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static off_t gran_off(struct vmc *c, uint32_t g)
{
	return (off_t)g << GSHIFT(c);
}

static int fund_thp(struct vmc *c, uint32_t g, uint32_t n)
{
	size_t len = (size_t)n << GSHIFT(c);
	char *raw, *aligned;
	int err = 0;

	raw = os_mmap(NULL, len + VMC_GRANULE_SIZE, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return errno;
	aligned = (char *)(((uintptr_t)raw + VMC_GRANULE_SIZE - 1) & ~(VMC_GRANULE_SIZE - 1));
	if (os_mmap(aligned, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		    c->pool_fd, gran_off(c, g)) == MAP_FAILED)
		err = errno;
	if (!err)
		os_madvise(aligned, len, MADV_HUGEPAGE);   /* advice only: never fatal */
	if (!err && os_madvise(aligned, len, MADV_POPULATE_WRITE) != 0) {
		err = errno;
		if (err == EINVAL)  /* no MADV_POPULATE_WRITE: fallocate, 4K pages */
			err = os_fallocate(c->pool_fd, 0, gran_off(c, g), (off_t)len) ? errno : 0;
	}
	os_munmap(raw, len + VMC_GRANULE_SIZE);
	return err;
}

int backing_fund(struct vmc *c, uint32_t g, uint32_t n)
{
	int err;

	if (c->h.page_kind == VMC_PAGE_THP)
		err = fund_thp(c, g, n);
	else
		err = os_fallocate(c->pool_fd, 0, gran_off(c, g), (off_t)n << GSHIFT(c)) ? errno : 0;
	if (!err)
		return 0;
	backing_unfund(c, g, n);  /* give back what a partial fallocate took */
	if (err == EFAULT)        /* POPULATE_WRITE's word for "no memory behind it" */
		err = ENOSPC;
	if (err == ENOSPC || err == ENOMEM)
		return vmc_fail(err, "funding %u granules (%llu MiB) of %s memory failed: %s; "
				"free memory%s", n,
				(unsigned long long)(((uint64_t)n << GSHIFT(c)) >> 20),
				vmc_page_kind_name((int)c->h.page_kind), vmc_strerror(err),
				c->h.page_kind == VMC_PAGE_HUGETLB ?
				" (`vmcctl hugepages N` reserves hugepages)" : "");
	return vmc_fail(err, "funding granules %u..%u failed: %s", g, g + n - 1,
			vmc_strerror(err));
}

int backing_unfund(struct vmc *c, uint32_t g, uint32_t n)
{
	if (os_fallocate(c->pool_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 gran_off(c, g), (off_t)n << GSHIFT(c)) == 0)
		return 0;
	return vmc_fail(errno, "punching granules %u..%u out of the pool failed: %s",
			g, g + n - 1, vmc_strerror(errno));
}

int backing_precheck(int kind, int fd, uint64_t bytes, const char *instead)
{
	long huge_free, huge_total;
	uint64_t n = (bytes + VMC_GRANULE_SIZE - 1) >> VMC_GRANULE_SHIFT, avail;   /* hugepages */
	struct statfs st;

	if (!bytes)
		return 0;
	vmc_os_meminfo(&huge_free, &huge_total, &avail);
	if (kind == VMC_PAGE_HUGETLB) {
		if ((uint64_t)huge_free >= n)
			return 0;
		return vmc_fail(ENOMEM, "need %llu hugepages, %ld free: run `vmcctl hugepages "
				"%llu` as root", (unsigned long long)n, huge_free,
				(unsigned long long)n);
	}
	if (avail && bytes > avail)
		return vmc_fail(ENOMEM, "need %llu MiB to fund, only %llu MiB of memory "
				"available (MemAvailable in /proc/meminfo): %s, or free memory",
				(unsigned long long)(bytes >> 20),
				(unsigned long long)(avail >> 20), instead);
	if (fd >= 0 && os_fstatfs(fd, &st) == 0 && st.f_bsize &&
	    (uint64_t)st.f_bavail * (uint64_t)st.f_bsize < bytes)
		return vmc_fail(ENOSPC, "need %llu MiB to fund, the pool's tmpfs has %llu MiB "
				"free: %s, or remount /dev/shm bigger",
				(unsigned long long)(bytes >> 20),
				(unsigned long long)(((uint64_t)st.f_bavail * st.f_bsize) >> 20),
				instead);
	return 0;
}

int backing_zero(struct vmc *c, uint32_t g)
{
	void *p = os_mmap(NULL, GSIZE(c), PROT_READ | PROT_WRITE, MAP_SHARED, c->pool_fd,
			  gran_off(c, g));
	if (p == MAP_FAILED)
		return vmc_fail(errno, "zeroing granule %u: %s", g, vmc_strerror(errno));
	memset(p, 0, GSIZE(c));
	os_munmap(p, GSIZE(c));
	return 0;
}
