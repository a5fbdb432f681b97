/*
 * bench_hibernate.c - hibernation of a small tenant (issue 14, P11): a VM
 * of 64 KiB (one granule of 64 KiB, 4k page kind, its bytes random, so
 * that nothing is skipped as zero) is hibernated to an image on tmpfs and
 * woken again, and that round trip is set against a plain memcpy of its
 * 64 KiB in the same run (the floor: what moving its bytes out and back
 * in costs at the least is two of those).  Also: hibernate and wake
 * alone, the system calls of a round trip, and the round trip with the
 * image directory on /var/tmp (a disk file system: the fsync of the image
 * and of its directory are real there; on tmpfs they cost a system call
 * each).  Targets: round trip <= 200 us and <= 20x the copy.
 * VMC_BENCH_RUNS (default 7) runs of VMC_BENCH_ITERS (default 200) round
 * trips each; medians of the per-run means.
 */
#include "benchlib.h"
#include "meta.h"   /* h.hibernate_sync: what the fsyncs cost, measured */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RUNS 32
#define TENANT   (64u << 10)

static int rm_one(const char *p, const struct stat *s, int flag, struct FTW *f)
{
	(void)s; (void)flag; (void)f;
	return remove(p);
}

struct tenant {
	vmc_t *c;
	uint32_t vm;
	char name[64], dir[128];
};

static int tenant_make(struct tenant *t, const char *dirbase, const char *tag)
{
	vmc_config_t cfg;
	void *base;
	int err;

	snprintf(t->name, sizeof t->name, "bench-hib-%s-%d", tag, (int)getpid());
	snprintf(t->dir, sizeof t->dir, "%s/vmc-bench-hib-%d", dirbase, (int)getpid());
	if ((err = bench_config(&cfg, VMC_PAGE_4K, 64 * BENCH_MiB, 64 * BENCH_MiB)))
		return err;
	cfg.granule_size = TENANT;
	cfg.max_vms = 16;
	snprintf(cfg.hibernate_dir, sizeof cfg.hibernate_dir, "%s", t->dir);
	vmc_destroy(t->name);
	if ((err = vmc_create(t->name, &cfg, &t->c)) ||
	    (err = vmc_vm_create(t->c, "tenant", TENANT, &t->vm)) ||
	    (err = vmc_attach(t->c, t->vm, &base)) ||
	    (err = vmc_commit(t->c, base, TENANT, 0)))
		return err;
	uint64_t x = 88172645463325252ull, *w = base;
	for (size_t i = 0; i < TENANT / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		w[i] = x;
	}
	return vmc_detach(t->c, t->vm);
}

static void tenant_end(struct tenant *t)
{
	if (t->c)
		vmc_close(t->c);
	vmc_destroy(t->name);
	nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* n round trips (what: 0 hibernate+wake, 1 hibernate only, 2 wake only:
 * the other half untimed); mean us. */
static double trips(struct tenant *t, int n, int what)
{
	uint64_t ns = 0;
	int err;

	for (int i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns(), t1, t2;
		if ((err = vmc_vm_hibernate(t->c, t->vm)))
			bench_die("hibernate", err);
		t1 = bench_now_ns();
		if ((err = vmc_vm_wake(t->c, t->vm)))
			bench_die("wake", err);
		t2 = bench_now_ns();
		ns += what == 0 ? t2 - t0 : what == 1 ? t1 - t0 : t2 - t1;
	}
	return (double)ns / n / 1e3;
}

static double copies(char *dst, const char *src, int n)
{
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < n; i++) {
		memcpy(dst, src, TENANT);
		__asm__ volatile("" : : "r"(dst) : "memory");   /* keep every copy */
	}
	return (double)(bench_now_ns() - t0) / n / 1e3;
}

int main(void)
{
	int runs = (int)bench_env_int("VMC_BENCH_RUNS", 7);
	int iters = (int)bench_env_int("VMC_BENCH_ITERS", 200);
	double rt[MAX_RUNS], hib[MAX_RUNS], wake[MAX_RUNS], cp[MAX_RUNS], disk[MAX_RUNS];
	double nosync[MAX_RUNS];
	struct tenant shm = { 0 }, var = { 0 };
	struct bench_report *r;
	char *src, *dst;
	int err, have_disk;

	if (runs < 1 || runs > MAX_RUNS || iters < 1) {
		fprintf(stderr, "bench_hibernate: VMC_BENCH_RUNS must be 1..%d, "
			"VMC_BENCH_ITERS at least 1\n", MAX_RUNS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = bench_report_new("hibernate", "4k");
	if ((err = tenant_make(&shm, "/dev/shm", "shm")))
		bench_die("set-up on /dev/shm", err);
	have_disk = tenant_make(&var, "/var/tmp", "var") == 0;
	if (!have_disk)
		bench_note(r, "/var/tmp round trip skipped: %s", vmc_errmsg());
	src = malloc(TENANT);
	dst = malloc(TENANT);
	if (!src || !dst)
		return 1;
	memset(src, 7, TENANT);
	memset(dst, 1, TENANT);
	trips(&shm, iters / 4 + 1, 0);   /* warm: directories made, caches filled */
	copies(dst, src, iters);
	uint64_t calls0 = vmc_syscalls();
	trips(&shm, 1, 0);
	uint64_t calls = vmc_syscalls() - calls0;
	for (int j = 0; j < runs; j++) {
		rt[j] = trips(&shm, iters, 0);
		hib[j] = trips(&shm, iters, 1);
		wake[j] = trips(&shm, iters, 2);
		cp[j] = copies(dst, src, iters * 20);
		shm.c->h.hibernate_sync = 0;   /* not a setting: the cost of the syncs */
		nosync[j] = trips(&shm, iters, 0);
		shm.c->h.hibernate_sync = 1;
		if (have_disk)
			disk[j] = trips(&var, iters / 10 + 1, 0);
	}
	bench_row_runs(r, "memcpy of the tenant's 64 KiB", "us", cp, runs, NULL, "4k");
	bench_row_runs(r, "hibernate + wake, image on tmpfs", "us", rt, runs,
		       "memcpy of the tenant's 64 KiB", "4k");
	bench_row_runs(r, "hibernate + wake, tmpfs, without the fsyncs", "us", nosync, runs,
		       "hibernate + wake, image on tmpfs", "4k");
	bench_row_runs(r, "hibernate alone (tmpfs)", "us", hib, runs, NULL, "4k");
	bench_row_runs(r, "wake alone (tmpfs)", "us", wake, runs, NULL, "4k");
	if (have_disk)
		bench_row_runs(r, "hibernate + wake, image on /var/tmp (fsync real)", "us", disk,
			       runs, "hibernate + wake, image on tmpfs", "4k");
	double m_rt = bench_row_median(r, "hibernate + wake, image on tmpfs");
	double m_cp = bench_row_median(r, "memcpy of the tenant's 64 KiB");
	bench_note(r, "a round trip makes %llu system calls (hibernate: open, pread, write, "
		   "fsync, close, rename, open + fsync + close of the directory; wake: open, "
		   "fstat, pread of the head, read, pwrite, close, unlink)",
		   (unsigned long long)calls);
	bench_note(r, "target P11: hibernate + wake <= 200 us: %.1f us, %s; <= 20x the copy: "
		   "%.1fx, %s", m_rt, m_rt <= 200 ? "met" : "NOT met", m_cp > 0 ? m_rt / m_cp : 0,
		   m_cp > 0 && m_rt / m_cp <= 20 ? "met" : "NOT met");
	tenant_end(&shm);
	if (have_disk)
		tenant_end(&var);
	free(src);
	free(dst);
	return bench_report_finish(r) ? 1 : 0;
}
