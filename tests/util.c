/*
 * util.c - test helpers (see util.h).
 */
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *test_name(const char *tag)
{
	static char buf[8][64];
	static int n;
	char *b = buf[n % 8];
	snprintf(b, 64, "t-%s-%d-%d", tag, (int)getpid(), n++);
	return b;
}

void test_config(vmc_config_t *cfg, uint64_t pool, uint64_t fund)
{
	vmc_config_init(cfg);
	cfg->pool_size = pool;
	cfg->fund_size = fund;
	cfg->window_size = 64 * MiB;
	cfg->region_space = 0;
	cfg->page_kind = VMC_PAGE_4K;
	cfg->verbose = 0;
	cfg->max_workers = 16;
	cfg->max_vms = 16;
	cfg->worker_cache = 8;
}

int test_count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;   /* the DIR's own fd */
}

int test_count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, ch;
	if (!f)
		return -1;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

int test_set_hugepages(long n)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
	if (!f)
		return -1;
	fprintf(f, "%ld\n", n);
	return fclose(f) ? -1 : 0;
}

int test_hugepages(long n, char *why, size_t whylen)
{
	vmc_caps_t caps;
	vmc_caps_probe(&caps);
	if (!caps.hugetlbfs_mounted && geteuid() == 0) {
		mkdir("/dev/hugepages", 0755);
		mount("none", "/dev/hugepages", "hugetlbfs", 0, "pagesize=2M");
		vmc_caps_probe(&caps);
	}
	if (caps.hugepages_free < n && geteuid() == 0) {
		test_set_hugepages(caps.hugepages_total + n - caps.hugepages_free);
		vmc_caps_probe(&caps);
	}
	if (caps.hugepages_free >= n && caps.hugetlbfs_mounted)
		return 1;
	snprintf(why, whylen, "need %ld free hugepages and a hugetlbfs mount, have %ld "
		 "(mounted: %d): run `vmcctl hugepages %ld` as root", n,
		 meminfo("HugePages_Free:"), caps.hugetlbfs_mounted, n);
	return 0;
}

int test_thp(void)
{
	vmc_caps_t caps;
	vmc_caps_probe(&caps);
	if (!caps.thp_shmem && geteuid() == 0) {
		FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "w");
		if (f) {
			fputs("advise", f);
			fclose(f);
		}
		vmc_caps_probe(&caps);
	}
	return caps.thp_shmem;
}

pid_t test_fork(int (*fn)(void *), void *arg)
{
	pid_t pid;
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int test_wait(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}
