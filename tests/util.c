/*
 * util.c - test helpers (see util.h).
 */
#include "util.h"
#include "pool.h"
#include "vm.h"
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
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

#define G test_granule()

static char made[128][64];
static int nmade;

const char *tname(const char *tag)
{
	const char *n = test_name(tag);
	if (nmade < 128)
		snprintf(made[nmade++], sizeof made[0], "%s", n);
	return n;
}

void destroy_all(void)
{
	for (int i = 0; i < nmade; i++)
		vmc_destroy(made[i]);
}

size_t test_granule(void)
{
	static size_t g;
	const char *e;
	uint64_t v;

	if (!g)
		g = (e = getenv("VMC_TEST_GRANULE")) && vmc_parse_size(e, &v) == 0 ? v : (size_t)2 << 20;
	return g;
}

void test_config(vmc_config_t *cfg, uint64_t pool, uint64_t fund)
{
	vmc_config_init(cfg);
	cfg->pool_size = pool;
	cfg->fund_size = fund;
	cfg->window_size = 64 * MiB;
	cfg->region_space = 0;
	cfg->page_kind = VMC_PAGE_4K;
	cfg->granule_size = test_granule();
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

long meminfo(const char *key)
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

/* ------------------------------------------------- window memory probes */

int readable(const void *p)
{
	static int fds[2] = { -1, -1 };
	static pid_t owner;
	char b;

	if (owner != getpid()) {
		if (fds[0] >= 0) {
			close(fds[0]);
			close(fds[1]);
		}
		if (pipe(fds))
			abort();
		owner = getpid();
	}
	if (write(fds[1], p, 1) != 1)
		return 0;
	if (read(fds[0], &b, 1) != 1)
		abort();
	return 1;
}

void *at(void *base, uint32_t i)
{
	return (char *)base + (size_t)i * G;
}

uint64_t pat(uint32_t vm, uint32_t i)
{
	return 0xa5a5000000000000ull | ((uint64_t)vm << 16) | i;
}

void put_pat(void *base, uint32_t vm, uint32_t i)
{
	uint64_t *g = at(base, i), v = pat(vm, i);
	g[0] = v;
	g[G / 16] = v;
	g[G / 8 - 1] = v;
}

int has_pat(void *base, uint32_t vm, uint32_t i)
{
	uint64_t *g = at(base, i), v = pat(vm, i);
	return g[0] == v && g[G / 16] == v && g[G / 8 - 1] == v;
}

int all_zero(const void *p, size_t n)
{
	const uint64_t *w = p;
	for (size_t k = 0; k < n / 8; k++)
		if (w[k]) {
			fprintf(stderr, "  %p: word %zu is %#llx, expected 0\n", p, k,
				(unsigned long long)w[k]);
			return 0;
		}
	return 1;
}

/* ------------------------------------------------------------- checks */

int conserved(const vmc_stats_t *s)
{
	uint64_t sum = (uint64_t)s->unfunded + s->free + s->cached + s->used + s->quarantined;
	if (sum == s->granules)
		return 1;
	fprintf(stderr, "  states add up to %llu of %u granules\n", (unsigned long long)sum,
		s->granules);
	return 0;
}

int stats_conserved(vmc_t *c, vmc_stats_t *s)
{
	int err = vmc_stats(c, s);
	if (err) {
		fprintf(stderr, "  vmc_stats: %d %s\n", err, vmc_errmsg());
		return 0;
	}
	if (!conserved(s))
		return 0;
	if (s->funded_bytes == (uint64_t)(s->granules - s->unfunded) * G)
		return 1;
	fprintf(stderr, "  %llu funded bytes for %u funded granules\n",
		(unsigned long long)s->funded_bytes, s->granules - s->unfunded);
	return 0;
}

int check_clean(vmc_t *c)
{
	vmc_check_report_t r;
	int err = vmc_check(c, &r);
	if (err == 0 && r.errors == 0)
		return 1;
	fprintf(stderr, "  vmc_check: %d (%s): %s [%s]\n", err, vmc_strerror(err), r.first,
		vmc_errmsg());
	return 0;
}

int errmsg_has(const char *needle)
{
	if (strstr(vmc_errmsg(), needle))
		return 1;
	fprintf(stderr, "  errmsg \"%s\" lacks \"%s\"\n", vmc_errmsg(), needle);
	return 0;
}

/* ------------------------------------------------- containers and VMs */

vmc_t *make_cfg(const char *tag, vmc_config_t *cfg)
{
	vmc_t *c = NULL;
	int err;
	if ((err = vmc_create(tname(tag), cfg, &c))) {
		fprintf(stderr, "  vmc_create: %d %s\n", err, vmc_errmsg());
		return NULL;
	}
	return c;
}

vmc_t *make(const char *tag, int isolation, uint64_t pool, uint64_t fund)
{
	vmc_config_t cfg;
	test_config(&cfg, pool, fund);
	cfg.memory_isolation = isolation;
	return make_cfg(tag, &cfg);
}

void finish(vmc_t *c)
{
	char name[VMC_NAME_MAX];
	snprintf(name, sizeof name, "%s", c->h.name);
	vmc_close(c);
	vmc_destroy(name);
}

uint32_t mkvm(vmc_t *c, const char *name, size_t limit)
{
	uint32_t id = VMC_NIL;
	int err = vmc_vm_create_span(c, name, limit, c->h.window_size, &id);
	if (err)
		fprintf(stderr, "  vmc_vm_create(%s): %d %s\n", name, err, vmc_errmsg());
	return id;
}

int commit_fill(vmc_t *c, uint32_t vm, uint32_t i, uint32_t n)
{
	void *base;
	int err;

	if ((err = vmc_attach(c, vm, &base)))
		return err;
	if (!(err = vmc_commit(c, at(base, i), (size_t)n * G, 0)))
		for (uint32_t k = i; k < i + n; k++)
			put_pat(base, vm, k);
	int e2 = vmc_detach(c, vm);
	return err ? err : e2;
}

uint32_t make_vm(vmc_t *c, const char *name)
{
	return mkvm(c, name, c->h.window_size);
}

int take_n(vmc_t *c, uint32_t vm, uint32_t n, uint32_t *g)
{
	uint32_t *map, i = 0;
	int err;

	if (vm >= c->h.max_vms)
		return EINVAL;
	map = vm_pagemap(c, vm);
	if ((err = slot_lock(c, c->slot)))
		return err;
	for (uint32_t k = 0; !err && k < n; k++) {
		while (i < vm_span(c, vm) && map[i] != VMC_NIL)
			i++;
		if (i == vm_span(c, vm)) {
			err = ENOSPC;
			break;
		}
		if (!(err = pool_take(c, vm, &g[k]))) {
			map[i] = g[k];
			c->gran[g[k]].index = i;
			c->gran[g[k]].views = 1;
			c->vms[vm].committed++;
			c->m->committed++;   /* the budget, as a commit charges it */
		}
	}
	slot_unlock(c, c->slot);
	return err;
}

int drain_cache(vmc_t *c)
{
	int err = slot_lock(c, c->slot);
	if (err)
		return err;
	err = pool_drain(c, c->slot, 0);
	slot_unlock(c, c->slot);
	return err;
}

int put_n(vmc_t *c, uint32_t n, const uint32_t *g)
{
	int err = slot_lock(c, c->slot);
	for (uint32_t k = 0; !err && k < n; k++) {
		struct vmc_granule *e = &c->gran[g[k]];
		if (e->state == G_USED && e->owner < c->h.max_vms &&
		    e->index < vm_span(c, e->owner)) {
			vm_pagemap(c, e->owner)[e->index] = VMC_NIL;
			c->vms[e->owner].committed--;
			c->m->committed--;
		}
		err = pool_put(c, g[k]);
	}
	slot_unlock(c, c->slot);
	return err;
}

uint64_t pool_file_bytes(vmc_t *c)
{
	struct stat st;
	if (fstat(c->pool_fd, &st))
		return ~0ull;
	return (uint64_t)st.st_blocks * 512;
}

/* ---------------------------------------------------- child processes */

int run_self(char *const argv[])
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", argv);
		_exit(126);
	}
	return pid < 0 ? -1 : test_wait(pid);
}

void default_segv(void)
{
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
}
