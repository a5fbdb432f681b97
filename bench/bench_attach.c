/*
 * bench_attach.c - what it costs a worker to switch between VMs and to
 * re-attach the VM it had, in strict and lazy memory isolation, against
 * the stock ways of giving each tenant its own shared memory (targets P1,
 * P2, P3 and P7 of DESIGN.md).
 *
 * Per page kind (hugetlb, THP, 4K; a kind the host cannot give is skipped
 * with the reason) two private containers are made, one strict
 * (memory_isolation = 1) and one lazy (0), each with K = 8 VMs of 64 MiB,
 * all committed and with a pattern written over every page; the window is
 * 64 MiB.
 *
 *  P1  switch: attach VM i, touch (read + write one word) every 2 MiB of
 *      its 64 MiB, detach, i = next VM.  The target is against the floor:
 *      the bare system calls the same switch needs, made by hand from the
 *      VM's page map at an address range of its own (one mmap per run of
 *      contiguous pool granules, populated as vmc populates it; strict:
 *      plus the mprotect that revokes it).  Measured the same way, in the
 *      same run and interleaved batch by batch with the vmc variants, on
 *      memfds of 4 KiB shmem of 64 MiB each (pattern written, so the page
 *      cache is populated), one set of 8 for each of the stock ways:
 *        (a) mmap(MAP_SHARED) on attach, touch, munmap on detach;
 *        (b) all 8 mapped at distinct addresses for good (every page
 *            faulted in by the pattern), mprotect RW on attach and
 *            PROT_NONE on detach: naive strict isolation.
 *      Reported in µs per switch (median of VMC_BENCH_RUNS batches of
 *      about 20 ms each, default 9) and as stock/vmc speedups (median of
 *      the per-batch ratios; batches are paired because they run in turn).
 *  P2  re-attach: attach + detach of the same unchanged VM in a tight
 *      loop (the VM fully touched before, so its whole window is mapped):
 *      ns per attach alone (each attach bracketed by the clock, the
 *      clock's own cost subtracted) and per attach+detach pair, and system
 *      calls per pair from vmc_stats().attach.syscalls deltas.
 *  P3  strict / lazy: the ratio column of the strict rows of P1 and P2.
 *  P7  N = 2 forked workers, each switching as in P1 over its own 4 VMs,
 *      against one forked worker alone on 4 VMs: aggregate switches/s.
 *      Workers warm up, report ready through a pipe and start together
 *      when the parent closes a second pipe; each runs VMC_BENCH_P7_MS
 *      (default 500 ms); VMC_BENCH_P7_RUNS rounds (default 5), each round
 *      one 1-worker and one 2-worker run of vmc lazy, vmc strict and, as a
 *      control for what the machine allows, stock (a) (each worker its own
 *      4 memfds).  A 1-worker + 2-worker pair during which other
 *      processes kept more than 0.1 CPU busy (/proc/stat busy time minus
 *      our own and our children's CPU time) is run again after a pause,
 *      within VMC_BENCH_P7_RETRY_S seconds in all (default 30); pairs still
 *      disturbed are left out of the medians while 3 clean ones remain.
 *      If the stock control does not reach 1.6x either, the host did not
 *      give the workers 2 CPUs and the P7 verdict is INCONCLUSIVE.  The CPU
 *      time stolen by the hypervisor during the whole run is noted too.
 *
 * Every touch checks that the word it reads carries the tag of the VM it
 * meant to touch, so a switch that showed the wrong VM fails the run.
 * VMC_BENCH_STRIDE (default 2M) changes the touch stride, e.g. 4K to touch
 * every page.  VMC_BENCH_KINDS=hugetlb,4k measures only the kinds named.
 * As root, hugepages are reserved with vmc_hugepages_setup() and shmem THP
 * is set to "advise" for the run; both are put back at the end
 * (VMC_BENCH_KEEP_HOST=1 leaves them).  Takes about 60 s on an idle
 * 2-CPU machine (plus up to 30 s of repeated P7 runs on a busy one).
 */
#include "benchlib.h"
#include "container.h"
#include "os/os.h"
#include "vm.h"
#include "vmc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define K         8                      /* VMs per container              */
#define VM_SIZE   (64 * BENCH_MiB)
#define POOL_SIZE (K * VM_SIZE + 64 * BENCH_MiB)   /* + a worker cache's worth */
#define NWORK     2                      /* P7 workers                     */
#define PER_WORK  (K / NWORK)            /* VMs per P7 worker              */
#define MAX_RUNS  64
#define BATCH_NS  20000000ull            /* ~20 ms per timed batch         */
#define TAG(k)    ((uint64_t)((k) + 1) << 48)
#define P7_FOREIGN 0.10                  /* CPUs others may use during a P7 run */
#define P7_PAUSE_NS 500000000ull         /* pause before repeating a disturbed pair */
#ifdef PM_GRANULE                        /* page-map entries with protection bits */
#define PM_G(e)   ((e) & PM_GRANULE)
#else
#define PM_G(e)   (e)
#endif

static int runs, p7_runs;
static uint64_t stride, p7_ns, p7_retry_ns;

/* ------------------------------------------------------------ touching */

/* Read + write one word every `stride` bytes of a 64 MiB VM whose words
 * carry `tag` in their top 16 bits.  Returns 0, or -1 if a word does not:
 * the mapping showed another VM (or nothing). */
static inline int touch(char *base, uint64_t tag)
{
	for (uint64_t off = 0; off < VM_SIZE; off += stride) {
		volatile uint64_t *p = (volatile uint64_t *)(base + off);
		uint64_t v = *p;
		if ((v & 0xffff000000000000ull) != tag)
			return -1;
		*p = v + 1;
	}
	return 0;
}

/* The pattern: the tag in every word's top bits, one store per 4 KiB page
 * plus the touched words (every page faulted in / written). */
static void write_pattern(char *base, uint64_t tag)
{
	for (uint64_t off = 0; off < VM_SIZE; off += 4096)
		*(volatile uint64_t *)(base + off) = tag;
	for (uint64_t off = 0; off < VM_SIZE; off += stride)
		*(volatile uint64_t *)(base + off) = tag;
}

/* ------------------------------------------------------------ variants */

enum way { WAY_VMC, WAY_MMAP, WAY_MPROTECT, WAY_FLOOR };

struct variant {
	enum way way;
	vmc_t *c;              /* WAY_VMC */
	uint32_t ids[K];       /* WAY_VMC: VM ids; index k carries TAG(k0 + k) */
	uint32_t k0, nvm;      /* first tag index and VMs to cycle through */
	int *fds;              /* WAY_MMAP */
	char **maps;           /* WAY_MPROTECT */
	char *fbase;           /* WAY_FLOOR: an address range of its own */
	int fstrict;           /* WAY_FLOOR: revoke access after the touch */
	uint32_t cur;
	const char *what;
};

/* The floor: the bare system calls vmc's switch to VM k needs, made by
 * hand from the VM's page map: one mmap per run of contiguous pool
 * granules (MAP_FIXED over the last VM's mapping), populated as vmc
 * populates it (2 MiB pages: MAP_POPULATE; 4 KiB pages up to
 * vmc/populate_limit: MADV_POPULATE_WRITE per run). */
static int floor_map(const struct variant *v, uint32_t k)
{
	struct vmc *c = v->c;
	const uint32_t *map = vm_pagemap(c, v->ids[k]);
	int huge = c->h.page_kind != VMC_PAGE_4K;
	int pop = !huge && (uint64_t)c->vms[v->ids[k]].committed << GSHIFT(c) <= c->h.populate_limit;

	for (uint32_t i = 0, j; i < vm_span(c, v->ids[k]); i = j) {
		for (j = i + 1; j < vm_span(c, v->ids[k]) && PM_G(map[j]) == PM_G(map[j - 1]) + 1; j++)
			;
		size_t len = (size_t)(j - i) << GSHIFT(c);
		char *at = v->fbase + ((size_t)i << GSHIFT(c));
		if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED |
			 (huge ? MAP_POPULATE : 0), c->pool_fd, (off_t)PM_G(map[i]) << GSHIFT(c)) ==
		    MAP_FAILED) {
			perror("bench_attach: floor mmap");
			return -1;
		}
		if (pop)
			madvise(at, len, 23 /* MADV_POPULATE_WRITE */);
	}
	return 0;
}

static int fail_touch(const struct variant *v, uint32_t k)
{
	fprintf(stderr, "bench_attach: %s: VM %u did not show its own pattern after attach\n",
		v->what, v->k0 + k);
	return -1;
}

/* n switches; 0 or an error (printed). */
static int run_switches(struct variant *v, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t k = v->cur;
		uint64_t tag = TAG(v->k0 + k);
		void *base;
		int err;

		v->cur = k + 1 == v->nvm ? 0 : k + 1;
		switch (v->way) {
		case WAY_VMC:
			if ((err = vmc_attach(v->c, v->ids[k], &base))) {
				fprintf(stderr, "bench_attach: %s: vmc_attach: %s: %s\n", v->what,
					vmc_strerror(err), vmc_errmsg());
				return -1;
			}
			if (touch(base, tag))
				return fail_touch(v, k);
			if ((err = vmc_detach(v->c, v->ids[k]))) {
				fprintf(stderr, "bench_attach: %s: vmc_detach: %s: %s\n", v->what,
					vmc_strerror(err), vmc_errmsg());
				return -1;
			}
			break;
		case WAY_MMAP:
			base = mmap(NULL, VM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
				    v->fds[v->k0 + k], 0);
			if (base == MAP_FAILED) {
				perror("bench_attach: mmap");
				return -1;
			}
			if (touch(base, tag))
				return fail_touch(v, k);
			if (munmap(base, VM_SIZE)) {
				perror("bench_attach: munmap");
				return -1;
			}
			break;
		case WAY_FLOOR:
			base = v->fbase;
			if (floor_map(v, k))
				return -1;
			if (touch(base, tag))
				return fail_touch(v, k);
			if (v->fstrict && mprotect(base, VM_SIZE, PROT_NONE)) {
				perror("bench_attach: mprotect");
				return -1;
			}
			break;
		case WAY_MPROTECT:
			base = v->maps[v->k0 + k];
			if (mprotect(base, VM_SIZE, PROT_READ | PROT_WRITE)) {
				perror("bench_attach: mprotect");
				return -1;
			}
			if (touch(base, tag))
				return fail_touch(v, k);
			if (mprotect(base, VM_SIZE, PROT_NONE)) {
				perror("bench_attach: mprotect");
				return -1;
			}
			break;
		}
	}
	return 0;
}

static uint64_t timed_switches(struct variant *v, uint64_t n)
{
	uint64_t t0 = bench_now_ns();
	if (run_switches(v, n))
		exit(1);
	return bench_now_ns() - t0;
}

static uint64_t timed_fn(void *v, uint64_t n)
{
	return timed_switches(v, n);
}

/* Switches per batch of about BATCH_NS (a multiple of nvm, at least nvm). */
static uint64_t calibrate(struct variant *v)
{
	/* warm: every VM mapped once */
	uint64_t n = bench_calibrate(timed_fn, v, 2 * v->nvm, v->nvm, BATCH_NS, 8);

	n = (n + v->nvm - 1) / v->nvm * v->nvm;
	return n < v->nvm ? v->nvm : n;
}

/* ------------------------------------------------------------ setup */

static vmc_t *make_container(int kind, int strict)
{
	vmc_config_t cfg;
	vmc_t *c;
	int err;

	if ((err = bench_config(&cfg, kind, POOL_SIZE, VM_SIZE)))
		bench_die("vmc_config_init", err);
	cfg.max_vms = 2 * K;
	cfg.max_workers = 8;
	cfg.memory_isolation = strict;
	if ((err = vmc_create(NULL, &cfg, &c))) {
		fprintf(stderr, "bench_attach: vmc_create (%s, %s): %s: %s\n",
			vmc_page_kind_name(kind), strict ? "strict" : "lazy", vmc_strerror(err),
			vmc_errmsg());
		return NULL;
	}
	return c;
}

/* K VMs of 64 MiB, all committed, the pattern written; returns the number
 * of contiguous pool runs of the page maps (sum over the VMs). */
static uint32_t make_vms(vmc_t *c, uint32_t *ids)
{
	uint32_t runs_total = 0;

	for (uint32_t k = 0; k < K; k++) {
		char name[32];
		void *base;
		int err;

		snprintf(name, sizeof name, "vm%u", k);
		if ((err = vmc_vm_create(c, name, VM_SIZE, &ids[k])))
			bench_die("vmc_vm_create", err);
		if ((err = vmc_attach(c, ids[k], &base)))
			bench_die("vmc_attach", err);
		if ((err = vmc_commit(c, base, VM_SIZE, 0)))
			bench_die("vmc_commit", err);
		write_pattern(base, TAG(k));
		const uint32_t *map = vm_pagemap(c, ids[k]);
		for (uint32_t i = 0; i < c->h.window_granules; i++)
			if (map[i] != VMC_NIL &&
			    (i == 0 || map[i - 1] == VMC_NIL || PM_G(map[i]) != PM_G(map[i - 1]) + 1))
				runs_total++;
		if ((err = vmc_detach(c, ids[k])))
			bench_die("vmc_detach", err);
	}
	return runs_total;
}

/* The stock tenants, two sets of K memfds of 4 KiB shmem with the pattern
 * written.  (a)'s are left unmapped between switches; (b)'s are each
 * mapped for good at their own address (PROT_NONE).  The sets are apart
 * because pages that another mapping also maps are cheaper to map and
 * unmap again: sharing them would flatter (a) by about 15%. */
static int make_memfd(uint32_t k, char **map)
{
	char name[32];
	int fd;

	snprintf(name, sizeof name, "bench_attach.%u", k);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)VM_SIZE)) {
		perror("bench_attach: memfd");
		exit(1);
	}
	*map = mmap(NULL, VM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*map == MAP_FAILED) {
		perror("bench_attach: mmap");
		exit(1);
	}
	write_pattern(*map, TAG(k));
	return fd;
}

static void make_stock(int *fds_a, int *fds_b, char **maps)
{
	for (uint32_t k = 0; k < K; k++) {
		char *p;
		fds_a[k] = make_memfd(k, &p);
		munmap(p, VM_SIZE);
		fds_b[k] = make_memfd(k, &maps[k]);
		if (mprotect(maps[k], VM_SIZE, PROT_NONE)) {
			perror("bench_attach: mprotect");
			exit(1);
		}
	}
}

static void free_stock(int *fds_a, int *fds_b, char **maps)
{
	for (uint32_t k = 0; k < K; k++) {
		munmap(maps[k], VM_SIZE);
		close(fds_a[k]);
		close(fds_b[k]);
	}
}

/* ------------------------------------------------------------ P1 */

enum { V_STRICT, V_LAZY, V_MMAP, V_MPROT, V_FLOOR_S, V_FLOOR_L, NV };

static void p1(struct bench_report *r, const char *kn, vmc_t *cs, const uint32_t *ids_s,
	       vmc_t *cl, const uint32_t *ids_l, int *fds, char **maps)
{
	static const char *const label[NV] = {
		"P1 switch, vmc strict", "P1 switch, vmc lazy",
		"P1 switch, stock (a) 4K mmap/munmap", "P1 switch, stock (b) 4K mprotect",
		"P1 switch, floor strict", "P1 switch, floor lazy",
	};
	struct variant v[NV];
	double us[NV][MAX_RUNS], sp[4][MAX_RUNS];
	uint64_t n[NV], calls[2] = { 0, 0 }, nsw[2] = { 0, 0 };
	char name[96], vs[96];

	memset(v, 0, sizeof v);
	for (int i = 0; i < NV; i++) {
		v[i].nvm = K;
		v[i].what = label[i];
	}
	v[V_STRICT].way = v[V_LAZY].way = WAY_VMC;
	v[V_STRICT].c = cs;
	v[V_LAZY].c = cl;
	memcpy(v[V_STRICT].ids, ids_s, sizeof v[V_STRICT].ids);
	memcpy(v[V_LAZY].ids, ids_l, sizeof v[V_LAZY].ids);
	v[V_MMAP].way = WAY_MMAP;
	v[V_MMAP].fds = fds;
	v[V_MPROT].way = WAY_MPROTECT;
	v[V_MPROT].maps = maps;
	/* the floors map the same VMs' granules at an address range of their own */
	for (int i = V_FLOOR_S; i <= V_FLOOR_L; i++) {
		v[i].way = WAY_FLOOR;
		v[i].c = i == V_FLOOR_S ? cs : cl;
		memcpy(v[i].ids, i == V_FLOOR_S ? ids_s : ids_l, sizeof v[i].ids);
		v[i].fstrict = i == V_FLOOR_S;
		v[i].fbase = mmap(NULL, VM_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
				  MAP_NORESERVE, -1, 0);
		if (v[i].fbase == MAP_FAILED)
			bench_die("mmap", errno);
	}

	for (int i = 0; i < NV; i++)
		n[i] = calibrate(&v[i]);
	/* interleaved: each round runs one batch of every variant */
	for (int j = 0; j < runs; j++)
		for (int i = 0; i < NV; i++) {
			uint64_t k0 = i < 2 ? bench_attach_syscalls(v[i].c) : 0;
			uint64_t ns = timed_switches(&v[i], n[i]);
			if (i < 2) {
				calls[i] += bench_attach_syscalls(v[i].c) - k0;
				nsw[i] += n[i];
			}
			us[i][j] = (double)ns / 1e3 / (double)n[i];
		}
	for (int j = 0; j < runs; j++) {
		sp[0][j] = us[V_MMAP][j] / us[V_STRICT][j];
		sp[1][j] = us[V_MMAP][j] / us[V_LAZY][j];
		sp[2][j] = us[V_MPROT][j] / us[V_STRICT][j];
		sp[3][j] = us[V_MPROT][j] / us[V_LAZY][j];
	}
	for (int i = 0; i < NV; i++) {
		/* strict vs lazy (P3); each vmc mode vs its floor (P1) */
		int vs_i = i == V_STRICT ? V_FLOOR_S : i == V_LAZY ? V_FLOOR_L : -1;
		snprintf(name, sizeof name, "%s %s", kn, label[i]);
		if (vs_i >= 0)
			snprintf(vs, sizeof vs, "%s %s", kn, label[vs_i]);
		bench_row_runs(r, name, "us", us[i], runs, vs_i >= 0 ? vs : NULL, kn);
	}
	for (int i = V_FLOOR_S; i <= V_FLOOR_L; i++)
		munmap(v[i].fbase, VM_SIZE);
	static const char *const spn[4] = {
		"P1 speedup (a)/strict", "P1 speedup (a)/lazy",
		"P1 speedup (b)/strict", "P1 speedup (b)/lazy",
	};
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "%s %s", kn, spn[i]);
		bench_row_runs(r, name, "x", sp[i], runs, NULL, kn);
	}
	bench_note(r, "%s P1: batches of %llu (strict), %llu (lazy), %llu (a), %llu (b) "
		   "switches; vmc system calls per switch (attach+detach, vmc_stats): "
		   "strict %.2f, lazy %.2f", kn, (unsigned long long)n[V_STRICT],
		   (unsigned long long)n[V_LAZY], (unsigned long long)n[V_MMAP],
		   (unsigned long long)n[V_MPROT], (double)calls[0] / (double)nsw[0],
		   (double)calls[1] / (double)nsw[1]);
}

/* ------------------------------------------------------------ P2 */

/* n attach+detach pairs of VM id; sum of the attach-alone brackets into
 * *attach_ns. */
static void reattach_loop(vmc_t *c, uint32_t id, uint64_t n, uint64_t *attach_ns,
			  uint64_t *attach_calls)
{
	for (uint64_t i = 0; i < n; i++) {
		int err;
		if (attach_ns) {
			uint64_t k0 = vmc_os_calls_total();
			uint64_t t0 = bench_now_ns();
			err = vmc_attach(c, id, NULL);
			*attach_ns += bench_now_ns() - t0;
			*attach_calls += vmc_os_calls_total() - k0;
		} else {
			err = vmc_attach(c, id, NULL);
		}
		if (err)
			bench_die("vmc_attach (re-attach)", err);
		if ((err = vmc_detach(c, id)))
			bench_die("vmc_detach (re-attach)", err);
	}
}

struct reattach_arg {
	vmc_t *c;
	uint32_t id;
};

static uint64_t reattach_timed(void *arg, uint64_t n)
{
	struct reattach_arg *a = arg;
	uint64_t t0 = bench_now_ns();
	reattach_loop(a->c, a->id, n, NULL, NULL);
	return bench_now_ns() - t0;
}

/* Cost of an empty clock bracket, ns (subtracted from attach-alone). */
static double clock_cost(void)
{
	double v[15];
	for (int j = 0; j < 15; j++) {
		uint64_t sum = 0;
		for (int i = 0; i < 100000; i++) {
			uint64_t t0 = bench_now_ns();
			sum += bench_now_ns() - t0;
		}
		v[j] = (double)sum / 100000;
	}
	return bench_median(v, 15);
}

static void p2(struct bench_report *r, const char *kn, vmc_t *c, uint32_t id, int strict,
	       double clk, uint64_t *out_calls_attach, double *out_calls_pair)
{
	double pair[MAX_RUNS], alone[MAX_RUNS], calls[MAX_RUNS];
	struct reattach_arg arg = { c, id };
	uint64_t n, acalls = 0;
	char name[96], vs[96];
	void *base;
	int err;

	/* the VM in use: every page of it touched through this window */
	if ((err = vmc_attach(c, id, &base)))
		bench_die("vmc_attach", err);
	write_pattern(base, TAG(0));
	if ((err = vmc_detach(c, id)))
		bench_die("vmc_detach", err);
	n = bench_calibrate(reattach_timed, &arg, 16, 1024, BATCH_NS, 8);
	if (n < 16)
		n = 16;
	for (int j = 0; j < runs; j++) {
		uint64_t k0 = bench_attach_syscalls(c), t0 = bench_now_ns(), a = 0;
		reattach_loop(c, id, n, NULL, NULL);
		uint64_t t1 = bench_now_ns();
		calls[j] = (double)(bench_attach_syscalls(c) - k0) / (double)n;
		pair[j] = (double)(t1 - t0) / (double)n;
		reattach_loop(c, id, n, &a, &acalls);
		alone[j] = (double)a / (double)n - clk;
	}
	snprintf(name, sizeof name, "%s P2 re-attach, %s (attach alone)", kn,
		 strict ? "strict" : "lazy");
	snprintf(vs, sizeof vs, "%s P2 re-attach, lazy (attach alone)", kn);
	bench_row_runs(r, name, "ns", alone, runs, strict ? vs : NULL, kn);
	snprintf(name, sizeof name, "%s P2 re-attach, %s (attach+detach)", kn,
		 strict ? "strict" : "lazy");
	snprintf(vs, sizeof vs, "%s P2 re-attach, lazy (attach+detach)", kn);
	bench_row_runs(r, name, "ns", pair, runs, strict ? vs : NULL, kn);
	snprintf(name, sizeof name, "%s P2 syscalls/attach+detach, %s", kn,
		 strict ? "strict" : "lazy");
	bench_row_runs(r, name, "calls", calls, runs, NULL, kn);
	double med_calls = bench_median(calls, runs);
	*out_calls_attach = acalls;
	*out_calls_pair = med_calls;
}

/* ------------------------------------------------------------ P7 */

struct p7_res {
	struct {
		uint64_t switches, ns;
		int failed;
	} w[NWORK];
};

static void p7_child(struct variant *v, int ready_w, int go_r, struct p7_res *res, int w)
{
	uint64_t n = 0, t0, t;
	char b = 'r';

	/* joins a worker slot of its own on the first call; maps its VMs once */
	if (run_switches(v, 2 * v->nvm))
		_exit(1);
	if (write(ready_w, &b, 1) != 1)
		_exit(1);
	if (read(go_r, &b, 1) != 0)   /* EOF: the parent closed it, go */
		_exit(1);
	t0 = bench_now_ns();
	do {
		if (run_switches(v, v->nvm)) {
			res->w[w].failed = 1;
			_exit(1);
		}
		n += v->nvm;
	} while ((t = bench_now_ns()) - t0 < p7_ns);
	res->w[w].switches = n;
	res->w[w].ns = t - t0;
	if (v->c)
		vmc_close(v->c);
	_exit(0);
}

/* CPU seconds the whole machine spent running tasks or stolen by the
 * hypervisor (user, nice, system, steal; interrupts are left out, since
 * ours would count as someone else's), from /proc/stat. */
static double machine_busy(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	double busy = 0;

	if (!f)
		return 0;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8)
		busy = (double)(v[0] + v[1] + v[2] + v[7]) / (double)sysconf(_SC_CLK_TCK);
	fclose(f);
	return busy;
}

/* CPU seconds used by this process and its reaped children. */
static double own_cpu(void)
{
	struct rusage a, b;
	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
			b.ru_stime.tv_sec) +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
			b.ru_stime.tv_usec) / 1e6;
}

/* One run with nw workers, each switching over its own PER_WORK VMs the
 * way `tmpl` does; aggregate switches/s, or -1.  *foreign receives the
 * CPUs (0..nproc) that other processes kept busy meanwhile, on average. */
static double p7_run(const struct variant *tmpl, int nw, struct p7_res *res, double *foreign)
{
	int ready[2], go[2], ok = 1;
	pid_t pid[NWORK];
	double agg = 0, busy0 = machine_busy(), own0 = own_cpu();
	uint64_t t0 = bench_now_ns();
	char b[NWORK];

	memset(res, 0, sizeof *res);
	if (pipe(ready) || pipe(go)) {
		perror("bench_attach: pipe");
		return -1;
	}
	fflush(NULL);
	for (int w = 0; w < nw; w++) {
		struct variant v = *tmpl;
		v.k0 = (uint32_t)w * PER_WORK;
		v.nvm = PER_WORK;
		v.cur = 0;
		memcpy(v.ids, tmpl->ids + v.k0, PER_WORK * sizeof *v.ids);
		if ((pid[w] = fork()) < 0) {
			perror("bench_attach: fork");
			exit(1);
		}
		if (pid[w] == 0) {
			close(ready[0]);
			close(go[1]);
			p7_child(&v, ready[1], go[0], res, w);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (int got = 0; got < nw;) {
		ssize_t k = read(ready[0], b, (size_t)(nw - got));
		if (k <= 0) {
			ok = 0;   /* a worker died before it was ready */
			break;
		}
		got += (int)k;
	}
	close(go[1]);      /* all start */
	close(ready[0]);
	for (int w = 0; w < nw; w++) {
		int st;
		if (waitpid(pid[w], &st, 0) != pid[w] || !WIFEXITED(st) || WEXITSTATUS(st))
			ok = 0;
	}
	if (!ok) {
		fprintf(stderr, "bench_attach: a P7 worker (%s) failed\n", tmpl->what);
		return -1;
	}
	*foreign = ((machine_busy() - busy0) - (own_cpu() - own0)) * 1e9 /
		   (double)(bench_now_ns() - t0);
	for (int w = 0; w < nw; w++)
		agg += (double)res->w[w].switches * 1e9 / (double)res->w[w].ns;
	return agg;
}

struct verdict {
	int measured;
	double a_strict, a_lazy, p3_switch, p3_reattach, f_strict, f_lazy;
	double lazy_ns, lazy_calls, strict_calls;
	uint64_t lazy_attach_calls;
	double p7[3];   /* lazy, strict, stock (a): NWORK workers / 1 */
	int p7_disturbed;   /* P7 medians include runs other processes disturbed */
};

/* P7 for vmc lazy, vmc strict and, as a control for what the machine
 * itself allows, stock (a): each round runs 1 worker then NWORK workers
 * of each, in turn. */
static int p7(struct bench_report *r, const char *kn, vmc_t *cl, const uint32_t *ids_l,
	      vmc_t *cs, const uint32_t *ids_s, int *fds, struct verdict *out)
{
	static const char *const label[3] = { "lazy", "strict", "stock (a) 4K mmap" };
	double one[3][MAX_RUNS], two[3][MAX_RUNS];
	struct p7_res *res = mmap(NULL, sizeof *res, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct variant v[3];
	char name[96], vs[96];

	if (res == MAP_FAILED) {
		perror("bench_attach: mmap");
		return -1;
	}
	memset(v, 0, sizeof v);
	v[0].way = v[1].way = WAY_VMC;
	v[0].c = cl;
	v[1].c = cs;
	memcpy(v[0].ids, ids_l, sizeof v[0].ids);
	memcpy(v[1].ids, ids_s, sizeof v[1].ids);
	v[2].way = WAY_MMAP;
	v[2].fds = fds;
	for (int i = 0; i < 3; i++)
		v[i].what = label[i];
	/* A pair of runs during which other processes kept more than
	 * P7_FOREIGN of a CPU busy is run again after a pause (the host is
	 * shared: on 2 CPUs, one taken by someone else leaves nothing to
	 * scale into), within a time budget for the whole benchmark.  Pairs
	 * still disturbed are left out of the medians if at least 3 clean
	 * ones remain. */
	int retried = 0, dirty[3] = { 0, 0, 0 }, clean[3][MAX_RUNS];
	double worst = 0;
	for (int j = 0; j < p7_runs; j++)
		for (int i = 0; i < 3; i++)
			for (;;) {
				double f1 = 0, f2 = 0;
				uint64_t t0 = bench_now_ns();
				if ((one[i][j] = p7_run(&v[i], 1, res, &f1)) < 0 ||
				    (two[i][j] = p7_run(&v[i], NWORK, res, &f2)) < 0) {
					munmap(res, sizeof *res);
					return -1;
				}
				double f = f1 > f2 ? f1 : f2;
				clean[i][j] = f <= P7_FOREIGN;
				if (clean[i][j])
					break;
				if (p7_retry_ns < bench_now_ns() - t0 + P7_PAUSE_NS) {
					dirty[i]++;
					worst = f > worst ? f : worst;
					break;
				}
				p7_retry_ns -= bench_now_ns() - t0 + P7_PAUSE_NS;
				retried++;
				usleep(P7_PAUSE_NS / 1000);
			}
	munmap(res, sizeof *res);
	for (int i = 0; i < 3; i++) {
		int n = p7_runs - dirty[i];
		if (dirty[i] && n >= 3)
			for (int j = 0, k = 0; j < p7_runs; j++)
				if (clean[i][j]) {
					one[i][k] = one[i][j];
					two[i][k++] = two[i][j];
				}
		if (dirty[i] && n < 3) {
			n = p7_runs;
			out->p7_disturbed = 1;
		}
		snprintf(vs, sizeof vs, "%s P7 %s, 1 worker", kn, label[i]);
		bench_row_runs(r, vs, "switch/s", one[i], n, NULL, kn);
		snprintf(name, sizeof name, "%s P7 %s, %d workers", kn, label[i], NWORK);
		bench_row_runs(r, name, "switch/s", two[i], n, vs, kn);
	}
	bench_note(r, "%s P7: %d run pairs repeated because other processes kept > %.2f CPU "
		   "busy; still disturbed: %d lazy, %d strict, %d stock pairs (worst %.2f CPU), "
		   "%s", kn, retried, P7_FOREIGN, dirty[0], dirty[1], dirty[2], worst,
		   out->p7_disturbed ? "kept in the medians (fewer than 3 clean)"
		   : "left out of the medians");
	return 0;
}

/* ------------------------------------------------------------ per kind */


/* Returns 0, 1 if skipped, -1 on failure. */
static int measure_kind(struct bench_report *r, int kind, int *fds, char **maps,
			double clk, struct verdict *vd)
{
	const char *kn = vmc_page_kind_name(kind);
	uint32_t ids_s[K], ids_l[K], runs_s, runs_l;
	char name[96];
	vmc_t *cs, *cl;
	int failed = 0;

	/* hugepages for two pools */
	if (!bench_kind_wanted(r, kn) || !bench_kind_ready(r, kind, (long)(2 * POOL_SIZE >> 21)))
		return 1;
	printf("%s: two containers of %llu MiB (strict, lazy), %d VMs of 64 MiB each ...\n",
	       kn, (unsigned long long)(POOL_SIZE >> 20), K);
	fflush(stdout);
	if (!(cs = make_container(kind, 1))) {
		bench_note(r, "%s skipped: the strict container could not be made: %s", kn,
			   vmc_errmsg());
		return 1;
	}
	if (!(cl = make_container(kind, 0))) {
		bench_note(r, "%s skipped: the lazy container could not be made: %s", kn,
			   vmc_errmsg());
		vmc_close(cs);
		return 1;
	}
	runs_s = make_vms(cs, ids_s);
	runs_l = make_vms(cl, ids_l);

	p1(r, kn, cs, ids_s, cl, ids_l, fds, maps);
	if (kind == VMC_PAGE_THP) {
		/* the lazy window still maps the last VM: PMD-mapped or not? */
		bench_note(r, "thp: ShmemPmdMapped %lld MiB, ShmemHugePages %lld MiB while the "
			   "lazy window maps a 64 MiB VM", bench_meminfo("ShmemPmdMapped:") >> 20,
			   bench_meminfo("ShmemHugePages:") >> 20);
	}
	bench_note(r, "%s: the %d VMs' page maps have %u (strict) and %u (lazy) contiguous "
		   "pool runs in all (%d would be one per VM)", kn, K, runs_s, runs_l, K);

	uint64_t acalls_s = 0;
	double pcalls_s = 0;
	p2(r, kn, cl, ids_l[0], 0, clk, &vd->lazy_attach_calls, &vd->lazy_calls);
	p2(r, kn, cs, ids_s[0], 1, clk, &acalls_s, &pcalls_s);
	vd->strict_calls = pcalls_s;

	if (p7(r, kn, cl, ids_l, cs, ids_s, fds, vd))
		failed = 1;

	vmc_close(cl);
	vmc_close(cs);

	vd->measured = 1;
	snprintf(name, sizeof name, "%s P1 speedup (a)/strict", kn);
	vd->a_strict = bench_row_median(r, name);
	snprintf(name, sizeof name, "%s P1 speedup (a)/lazy", kn);
	vd->a_lazy = bench_row_median(r, name);
	{
		char a[96], b[96];
		snprintf(a, sizeof a, "%s P1 switch, vmc strict", kn);
		snprintf(b, sizeof b, "%s P1 switch, vmc lazy", kn);
		vd->p3_switch = bench_row_median(r, a) / bench_row_median(r, b);
		{
			char f[96];
			snprintf(f, sizeof f, "%s P1 switch, floor strict", kn);
			vd->f_strict = bench_row_median(r, a) / bench_row_median(r, f);
			snprintf(f, sizeof f, "%s P1 switch, floor lazy", kn);
			vd->f_lazy = bench_row_median(r, b) / bench_row_median(r, f);
		}
		snprintf(a, sizeof a, "%s P2 re-attach, strict (attach+detach)", kn);
		snprintf(b, sizeof b, "%s P2 re-attach, lazy (attach+detach)", kn);
		vd->p3_reattach = bench_row_median(r, a) / bench_row_median(r, b);
		snprintf(b, sizeof b, "%s P2 re-attach, lazy (attach alone)", kn);
		vd->lazy_ns = bench_row_median(r, b);
		for (int s = 0; s < 3 && !failed; s++) {
			static const char *const l[3] = { "lazy", "strict", "stock (a) 4K mmap" };
			snprintf(a, sizeof a, "%s P7 %s, %d workers", kn, l[s], NWORK);
			snprintf(b, sizeof b, "%s P7 %s, 1 worker", kn, l[s]);
			vd->p7[s] = bench_row_median(r, a) / bench_row_median(r, b);
		}
	}
	return failed ? -1 : 0;
}

/* Jiffies stolen by the hypervisor and in all, from /proc/stat. */
static void cpu_steal(uint64_t *steal, uint64_t *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*steal = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*steal = v[7];
	}
	fclose(f);
}

int main(void)
{
	uint64_t steal0, total0, steal1, total1;
	static const int kinds[] = { VMC_PAGE_HUGETLB, VMC_PAGE_THP, VMC_PAGE_4K };
	struct verdict vd[3];
	char measured[64] = "", sz[32];
	struct bench_report *r;
	int fds[K], fds_b[K], failed = 0;
	char *maps[K];
	double clk;

	runs = (int)bench_env_int("VMC_BENCH_RUNS", 9);
	p7_runs = (int)bench_env_int("VMC_BENCH_P7_RUNS", 5);
	p7_ns = (uint64_t)bench_env_int("VMC_BENCH_P7_MS", 500) * 1000000ull;
	p7_retry_ns = (uint64_t)bench_env_int("VMC_BENCH_P7_RETRY_S", 30) * 1000000000ull;
	stride = bench_env_size("VMC_BENCH_STRIDE", 2 * BENCH_MiB);
	if (runs < 1 || runs > MAX_RUNS || p7_runs < 1 || p7_runs > MAX_RUNS || !p7_ns) {
		fprintf(stderr, "bench_attach: VMC_BENCH_RUNS and VMC_BENCH_P7_RUNS must be 1..%d, "
			"VMC_BENCH_P7_MS > 0\n", MAX_RUNS);
		return 2;
	}
	if (stride < 8 || stride % 8 || stride > VM_SIZE) {
		fprintf(stderr, "bench_attach: VMC_BENCH_STRIDE must be a multiple of 8 up to 64M\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_attach: %d VMs of 64 MiB, touch every %s, %d batches per figure, "
	       "P7 %d x %llu ms\n", K, bench_fmt_size(stride, sz, sizeof sz), runs, p7_runs,
	       (unsigned long long)(p7_ns / 1000000));
	r = bench_report_new("attach", "hugetlb,thp,4k");
	{
		char la[64];
		bench_loadavg(la, sizeof la);
		bench_note(r, "load average at start: %s; touch stride %s", la,
			   bench_fmt_size(stride, sz, sizeof sz));
	}
	make_stock(fds, fds_b, maps);
	clk = clock_cost();
	cpu_steal(&steal0, &total0);
	memset(vd, 0, sizeof vd);
	for (int i = 0; i < 3; i++) {
		if (bench_kind_outcome(measure_kind(r, kinds[i], fds, maps, clk, &vd[i]), kinds[i],
				       measured, sizeof measured))
			failed = 1;
	}
	cpu_steal(&steal1, &total1);
	free_stock(fds, fds_b, maps);
	if (total1 > total0)
		bench_note(r, "CPU time stolen by the hypervisor during the run: %.1f%%",
			   100.0 * (double)(steal1 - steal0) / (double)(total1 - total0));
	bench_report_set_page_kind(r, measured);
	bench_host_restore(r);
	bench_note(r, "clock bracket cost subtracted from the attach-alone figures: %.1f ns", clk);
	for (int i = 0; i < 3; i++) {
		const char *kn = vmc_page_kind_name(kinds[i]);
		const struct verdict *v = &vd[i];
		if (!v->measured)
			continue;
		bench_note(r, "%s P1 switch <= 1.25x the floor (the bare mmap + populate per run "
			   "that the same switch needs): strict %.2fx, lazy %.2fx: %s; against stock "
			   "(a) 4K mmap/munmap vmc is %.1fx (strict) and %.1fx (lazy) faster", kn,
			   v->f_strict, v->f_lazy,
			   v->f_strict <= 1.25 && v->f_lazy <= 1.25 ? "MET" :
			   v->f_lazy <= 1.25 ? "MET for lazy only" : "NOT MET", v->a_strict, v->a_lazy);
		bench_note(r, "%s P2 lazy re-attach no system call and <= 200 ns: %.1f ns per "
			   "attach, %.2f calls per attach+detach (%llu in all attach-alone "
			   "brackets): %s", kn, v->lazy_ns, v->lazy_calls,
			   (unsigned long long)v->lazy_attach_calls,
			   v->lazy_ns <= 200 && v->lazy_calls == 0 && !v->lazy_attach_calls
			   ? "MET" : "NOT MET");
		bench_note(r, "%s P3 strict <= 2x lazy: switch %.2fx: %s; same-VM re-attach "
			   "%.1fx (%.2f calls per attach+detach): %s", kn, v->p3_switch,
			   v->p3_switch <= 2 ? "MET" : "NOT MET", v->p3_reattach, v->strict_calls,
			   v->p3_reattach <= 2 ? "MET" : "NOT MET");
		if (v->p7[0] > 0) {
			/* if the stock way itself did not scale, the host did not
			 * give the workers NWORK CPUs: no verdict */
			int judged = !v->p7_disturbed && v->p7[2] >= 0.8 * NWORK;
			bench_note(r, "%s P7 %d workers >= %.1fx one: lazy %.2fx: %s, strict "
				   "%.2fx: %s (stock (a) control on the same machine: %.2fx%s)", kn,
				   NWORK, 0.8 * NWORK, v->p7[0],
				   !judged ? "INCONCLUSIVE" : v->p7[0] >= 0.8 * NWORK ? "MET" : "NOT MET",
				   v->p7[1],
				   !judged ? "INCONCLUSIVE" : v->p7[1] >= 0.8 * NWORK ? "MET" : "NOT MET",
				   v->p7[2], v->p7_disturbed ? ", disturbed runs kept" :
				   v->p7[2] < 0.8 * NWORK ? ": the host did not give 2 CPUs" : "");
		}
	}
	if (bench_report_finish(r))
		failed = 1;
	return failed;
}
