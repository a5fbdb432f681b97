/*
 * caps.c - what this host offers: free and reservable hugetlb pages, a
 * hugetlbfs mount, the shmem THP setting, memfd seals, MAP_FIXED_NOREPLACE,
 * MADV_POPULATE_WRITE and mseal.  Each probe is a small real attempt (a
 * throw-away mapping or memfd) rather than a kernel-version guess, so it is
 * right on backported and locked-down kernels alike.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 4U
#endif

static long meminfo_value(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

void vmc_os_meminfo(long *huge_free, long *huge_total, uint64_t *mem_available)
{
	char buf[8192];
	*huge_free = *huge_total = 0;
	*mem_available = 0;
	if (vmc_os_read_file("/proc/meminfo", buf, sizeof buf) <= 0)
		return;
	*huge_free = meminfo_value(buf, "HugePages_Free:") - meminfo_value(buf, "HugePages_Rsvd:");
	if (*huge_free < 0)
		*huge_free = 0;
	*huge_total = meminfo_value(buf, "HugePages_Total:");
	*mem_available = (uint64_t)meminfo_value(buf, "MemAvailable:") << 10;
}

/* First hugetlbfs mount with 2 MiB pages (pagesize= absent means default,
 * which is 2 MiB on x86-64 and arm64 with 4K base pages). */
int vmc_os_hugetlbfs_mount(char *path, size_t cap)
{
	char buf[16384], *line, *save = NULL;
	if (vmc_os_read_file("/proc/mounts", buf, sizeof buf) <= 0)
		return 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char dev[256], dir[256], type[64], opts[512];
		if (sscanf(line, "%255s %255s %63s %511s", dev, dir, type, opts) != 4 ||
		    strcmp(type, "hugetlbfs"))
			continue;
		if (strstr(opts, "pagesize=") && !strstr(opts, "pagesize=2M") &&
		    !strstr(opts, "pagesize=2048k"))
			continue;
		snprintf(path, cap, "%s", dir);
		return 1;
	}
	return 0;
}

static void probe_thp(vmc_caps_t *c)
{
	char buf[256], *l, *r;
	if (vmc_os_read_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
			     buf, sizeof buf) <= 0)
		return;
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!l || !r || (size_t)(r - l - 1) >= sizeof c->thp_shmem_setting)
		return;
	memcpy(c->thp_shmem_setting, l + 1, (size_t)(r - l - 1));
	c->thp_shmem_setting[r - l - 1] = 0;
	c->thp_shmem = strcmp(c->thp_shmem_setting, "never") &&
		       strcmp(c->thp_shmem_setting, "deny");
}

static void probe_memory_calls(vmc_caps_t *c)
{
	size_t len = 2 * VMC_GRANULE_SIZE;
	char *a = os_mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a == MAP_FAILED)
		return;
	/* NOREPLACE over an existing mapping must say EEXIST; an old kernel
	 * ignores the flag and replaces it instead. */
	void *b = os_mmap(a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	c->map_fixed_noreplace = b == MAP_FAILED && errno == EEXIST;
	if (os_mprotect(a, 4096, PROT_READ | PROT_WRITE) == 0)
		c->madv_populate_write = os_madvise(a, 4096, MADV_POPULATE_WRITE) == 0;
	os_munmap(a, len);
}

static void probe_mseal(vmc_caps_t *c)
{
	/* mseal of a throw-away page; a sealed page can never be unmapped, so
	 * probe with 0 length, which the kernel validates and accepts. */
	char *a = os_mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return;
	c->mseal = os_mseal(a, 0, 0) == 0;
	os_munmap(a, 4096);
}

static void probe_seals(vmc_caps_t *c)
{
	int fd = os_memfd_create("vmc-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return;
	c->memfd_seals = os_fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0;
	os_close(fd);
}

void vmc_caps_probe(vmc_caps_t *out)
{
	memset(out, 0, sizeof *out);
	vmc_os_meminfo(&out->hugepages_free, &out->hugepages_total, &out->mem_available);
	out->hugetlbfs_mounted = vmc_os_hugetlbfs_mount(out->hugetlbfs_path,
							sizeof out->hugetlbfs_path);
	out->hugepages_reservable = os_access("/proc/sys/vm/nr_hugepages", W_OK) == 0;
	probe_thp(out);
	probe_memory_calls(out);
	probe_mseal(out);
	probe_seals(out);
}
