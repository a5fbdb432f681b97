/*
 * test_lazy.c - lazy isolation (memory_isolation = 0) and the quarantine
 * that makes it safe, with real worker processes.
 *
 *  - affinity: re-attaching the same unchanged VM makes no system call at
 *    all, and neither does a lazy detach; any change to the VM (a commit or
 *    release by another worker, destroy and re-create, reclaim) makes the
 *    next attach remap;
 *  - strict mode: detach is one mprotect, re-attach of the same unchanged
 *    VM is one mprotect per run of granules and no mmap;
 *  - invariant 3, the recycled-granule sequence: worker P detaches VM X
 *    lazily (its window still maps X), worker Q attaches X and releases a
 *    granule g.  g waits in quarantine: Q takes every granule it can for VM
 *    Y and never gets g, Y's memory reads as zero, and P, reading its stale
 *    window, keeps seeing X's old data and never Y's.  When P attaches
 *    something else, exits, or is killed and recovered, the quarantine
 *    drains and g can be had again;
 *  - pointer stability: a linked list built in VM A by one worker process
 *    is walked by another.
 */
#include "vm.h"
#include "window.h"
#include "os/os.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#define G test_granule()

/* ------------------------------------------------------------- helpers */

static uint64_t calls(enum vmc_os_entry e) { return vmc_os_calls(e); }

static uint64_t hits(vmc_t *c)
{
	vmc_worker_stats_t ws;
	if (vmc_worker_stats(c, vmc_worker_slot(c), &ws))
		return ~0ull;
	return ws.attach.affinity_hits;
}

/* ---------------------------------------------------------- affinity */

struct other { vmc_t *c; uint32_t vm; int op; };

/* Another worker: attach vm; op 1: commit index 8; op 2: release index 8;
 * op 0: just write a word; op 3: destroy it instead. */
static int child_other(void *p)
{
	struct other *o = p;
	void *base;
	int err = 0;
	if (o->op == 3)
		return vmc_vm_destroy(o->c, o->vm) ? 2 : 0;
	if (vmc_attach(o->c, o->vm, &base))
		return 3;
	if (o->op == 0)
		((uint64_t *)base)[1] = 0x0123456789abcdefull;
	else if (o->op == 1)
		err = vmc_commit(o->c, at(base, 8), G, 0);
	else
		err = vmc_release(o->c, at(base, 8), G, 0);
	if (err || vmc_detach(o->c, o->vm))
		return 4;
	return vmc_close(o->c) ? 5 : 0;
}

TEST(lazy_reattach_makes_no_system_call)
{
	vmc_t *c = make("aff", 0, 128 * MiB, 64 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "aff-A", 32 * MiB), b = mkvm(c, "aff-B", 32 * MiB);
	REQUIRE(a != VMC_NIL && b != VMC_NIL);
	REQUIRE(commit_fill(c, a, 0, 2) == 0);
	REQUIRE(commit_fill(c, a, 4, 2) == 0);
	REQUIRE(commit_fill(c, b, 0, 1) == 0);

	/* the first attach of A after B remaps; the detach costs nothing */
	uint64_t m0 = calls(VMC_OS_MMAP), t0 = vmc_os_calls_total(), h0 = hits(c);
	REQUIRE(vmc_attach(c, a, &base) == 0);
	CHECK(calls(VMC_OS_MMAP) > m0);
	CHECK_EQ(hits(c), h0);
	t0 = vmc_os_calls_total();
	REQUIRE(vmc_detach(c, a) == 0);
	CHECK_EQ(vmc_os_calls_total(), t0);

	/* now: 100 re-attaches of the unchanged VM, not one system call */
	uint64_t mm = calls(VMC_OS_MMAP), mp = calls(VMC_OS_MPROTECT);
	h0 = hits(c);   /* (reading the stats makes system calls: first) */
	t0 = vmc_os_calls_total();
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(vmc_attach(c, a, &base), 0);
		CHECK(has_pat(base, a, 5));
		CHECK_EQ(vmc_detach(c, a), 0);
	}
	CHECK_EQ(calls(VMC_OS_MMAP), mm);
	CHECK_EQ(calls(VMC_OS_MPROTECT), mp);
	CHECK_EQ(vmc_os_calls_total(), t0);
	CHECK_EQ(hits(c), h0 + 100);

	/* another worker attached A and only wrote to it: still no remap,
	 * and its write is visible through our mapping */
	struct other o = { c, a, 0 };
	CHECK_EQ(test_wait(test_fork(child_other, &o)), 0);
	t0 = vmc_os_calls_total();
	CHECK_EQ(vmc_attach(c, a, &base), 0);
	CHECK_EQ(vmc_os_calls_total(), t0);
	CHECK_EQ(((uint64_t *)base)[1], 0x0123456789abcdefull);
	CHECK_EQ(vmc_detach(c, a), 0);

	/* another worker committed to A: the page map changed, we remap */
	o.op = 1;
	CHECK_EQ(test_wait(test_fork(child_other, &o)), 0);
	mm = calls(VMC_OS_MMAP);
	h0 = hits(c);
	CHECK_EQ(vmc_attach(c, a, &base), 0);
	CHECK(calls(VMC_OS_MMAP) > mm);
	CHECK_EQ(hits(c), h0);
	CHECK(readable(at(base, 8)) && all_zero(at(base, 8), G));
	CHECK_EQ(vmc_detach(c, a), 0);
	t0 = vmc_os_calls_total();
	CHECK_EQ(vmc_attach(c, a, &base), 0);       /* and then it is a hit again */
	CHECK_EQ(vmc_os_calls_total(), t0);
	CHECK_EQ(vmc_detach(c, a), 0);

	/* another worker released from A: remap, and the granule is gone */
	o.op = 2;
	CHECK_EQ(test_wait(test_fork(child_other, &o)), 0);
	mm = calls(VMC_OS_MMAP);
	CHECK_EQ(vmc_attach(c, a, &base), 0);
	CHECK(calls(VMC_OS_MMAP) > mm);
	CHECK(!readable(at(base, 8)));
	CHECK(has_pat(base, a, 0) && has_pat(base, a, 5));
	CHECK_EQ(vmc_detach(c, a), 0);

	/* destroyed and re-created in the same table entry: never a hit */
	o.op = 3;
	CHECK_EQ(test_wait(test_fork(child_other, &o)), 0);
	uint32_t a2 = mkvm(c, "aff-A2", 32 * MiB);
	CHECK_EQ(a2, a);
	CHECK_EQ(commit_fill(c, b, 1, 1), 0);   /* and something else in between */
	REQUIRE(vmc_attach(c, b, &base) == 0);
	REQUIRE(vmc_detach(c, b) == 0);
	REQUIRE(commit_fill(c, a2, 0, 1) == 0); /* commits: a fresh page map */
	h0 = hits(c);
	CHECK_EQ(vmc_attach(c, a2, &base), 0);
	CHECK_EQ(hits(c), h0 + 1);       /* fill left it mapped, unchanged */
	CHECK(has_pat(base, a2, 0));
	CHECK(!readable(at(base, 1)) && !readable(at(base, 4)) && !readable(at(base, 5)));
	CHECK_EQ(vmc_detach(c, a2), 0);

	vmc_stats_t s;
	CHECK_EQ(vmc_recover(c, NULL), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.quarantined, 0);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	finish(c);
}

/* A VM destroyed and re-created while this worker's lazy window still
 * shows it: the next attach of the new VM in the same entry must remap. */
TEST(lazy_reattach_after_recreate_remaps)
{
	vmc_t *c = make("rec", 0, 64 * MiB, 32 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "rc-A", 32 * MiB);
	REQUIRE(a != VMC_NIL && commit_fill(c, a, 0, 3) == 0);
	REQUIRE(vmc_attach(c, a, &base) == 0);     /* a hit: shows A lazily */
	REQUIRE(vmc_detach(c, a) == 0);
	struct other o = { c, a, 3 };
	CHECK_EQ(test_wait(test_fork(child_other, &o)), 0);
	uint32_t a2 = mkvm(c, "rc-A2", 32 * MiB);
	CHECK_EQ(a2, a);
	/* still lazily mapped here: the granules cannot go anywhere yet */
	vmc_stats_t s;
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.quarantined, 3);
	uint64_t h0 = hits(c);
	CHECK_EQ(vmc_attach(c, a2, &base), 0);
	CHECK_EQ(hits(c), h0);
	for (uint32_t i = 0; i < 32; i++)
		CHECK(!readable(at(base, i)));
	CHECK_EQ(vmc_commit(c, base, 4 * G, 0), 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(all_zero(at(base, i), G));
	CHECK_EQ(vmc_detach(c, a2), 0);
	CHECK_EQ(vmc_recover(c, NULL), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.quarantined, 0);
	CHECK(check_clean(c));
	finish(c);
}

/* ------------------------------------------- strict: mprotect only */

TEST(strict_reattach_mprotect_only)
{
	vmc_t *c = make("sre", 1, 128 * MiB, 64 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "sr-A", 32 * MiB), b = mkvm(c, "sr-B", 32 * MiB);
	REQUIRE(a != VMC_NIL && b != VMC_NIL);
	REQUIRE(commit_fill(c, a, 0, 4) == 0);
	REQUIRE(commit_fill(c, b, 0, 1) == 0);
	REQUIRE(vmc_attach(c, a, &base) == 0);
	REQUIRE(vmc_detach(c, a) == 0);

	for (int round = 0; round < 3; round++) {
		uint64_t mm = calls(VMC_OS_MMAP), mp = calls(VMC_OS_MPROTECT);
		CHECK_EQ(vmc_attach(c, a, &base), 0);
		CHECK_EQ(calls(VMC_OS_MMAP), mm);
		CHECK_EQ(calls(VMC_OS_MPROTECT), mp + 1);   /* one run */
		CHECK(has_pat(base, a, 3));
		mp = calls(VMC_OS_MPROTECT);
		CHECK_EQ(vmc_detach(c, a), 0);
		CHECK_EQ(calls(VMC_OS_MMAP), mm);
		CHECK_EQ(calls(VMC_OS_MPROTECT), mp + 1);   /* one revoke */
		CHECK(!readable(base));
	}
	/* two runs: two mprotects, still no mmap */
	REQUIRE(vmc_attach(c, a, &base) == 0);
	REQUIRE(vmc_release(c, at(base, 2), G, 0) == 0);
	REQUIRE(vmc_detach(c, a) == 0);
	uint64_t mm = calls(VMC_OS_MMAP), mp = calls(VMC_OS_MPROTECT);
	CHECK_EQ(vmc_attach(c, a, &base), 0);
	CHECK_EQ(calls(VMC_OS_MMAP), mm);
	CHECK_EQ(calls(VMC_OS_MPROTECT), mp + 2);
	CHECK(!readable(at(base, 2)) && has_pat(base, a, 3) && has_pat(base, a, 1));
	CHECK_EQ(vmc_detach(c, a), 0);

	/* another VM in between: that is a remap */
	REQUIRE(vmc_attach(c, b, &base) == 0);
	REQUIRE(vmc_detach(c, b) == 0);
	mm = calls(VMC_OS_MMAP);
	CHECK_EQ(vmc_attach(c, a, &base), 0);
	CHECK(calls(VMC_OS_MMAP) > mm);
	CHECK(has_pat(base, a, 0) && has_pat(base, a, 3) && !readable(at(base, 2)));
	CHECK_EQ(vmc_detach(c, a), 0);
	CHECK(check_clean(c));
	finish(c);
}

/* -------------------------------------- invariant 3: the quarantine */

/* Worker P, driven through pipes. */
struct pcmd { char op; uint32_t arg; };
struct prsp { int err; int readable; uint64_t w[3]; };

struct pworker {
	vmc_t *c;
	int cmd[2], rsp[2];
	pid_t pid;
};

static int p_main(void *arg)
{
	struct pworker *p = arg;
	struct pcmd k;
	void *base = p->c->arena;

	close(p->cmd[1]);
	close(p->rsp[0]);
	while (read(p->cmd[0], &k, sizeof k) == sizeof k) {
		struct prsp r = { 0, 0, { 0, 0, 0 } };
		switch (k.op) {
		case 'a':   /* attach, look at index 0, detach (lazy: still mapped) */
			if (!(r.err = vmc_attach(p->c, k.arg, &base))) {
				r.readable = readable(base);
				if (r.readable)
					r.w[0] = *(uint64_t *)base;
				r.err = vmc_detach(p->c, k.arg);
			}
			break;
		case 'A':
			r.err = vmc_attach(p->c, k.arg, &base);
			break;
		case 'd':
			r.err = vmc_detach(p->c, k.arg);
			break;
		case 'r': { /* read the window at index arg, attached or not */
			uint64_t *g = at(p->c->arena, k.arg);
			r.readable = readable(g);
			if (r.readable) {
				r.w[0] = g[0];
				r.w[1] = g[G / 16];
				r.w[2] = g[G / 8 - 1];
			}
			break;
		}
		case 'q':
			_exit(0);
		case 'c':
			_exit(vmc_close(p->c) ? 1 : 0);
		}
		if (write(p->rsp[1], &r, sizeof r) != sizeof r)
			return 2;
	}
	return 0;
}

static int p_start(struct pworker *p, vmc_t *c)
{
	p->c = c;
	if (pipe(p->cmd) || pipe(p->rsp))
		return -1;
	p->pid = test_fork(p_main, p);
	close(p->cmd[0]);
	close(p->rsp[1]);
	return p->pid > 0 ? 0 : -1;
}

static struct prsp p_do(struct pworker *p, char op, uint32_t arg)
{
	struct pcmd k = { op, arg };
	struct prsp r = { -1000, 0, { 0, 0, 0 } };
	if (write(p->cmd[1], &k, sizeof k) != sizeof k || read(p->rsp[0], &r, sizeof r) != sizeof r)
		r.err = -1000;
	return r;
}

static void p_end(struct pworker *p)
{
	close(p->cmd[1]);
	close(p->rsp[0]);
}

static uint32_t quarantined(vmc_t *c)
{
	vmc_stats_t s;
	return vmc_stats(c, &s) ? ~0u : s.quarantined;
}

/* P sees X's own pattern at index i of its stale window. */
static int p_sees_x(struct pworker *p, uint32_t x, uint32_t i)
{
	struct prsp r = p_do(p, 'r', i);
	uint64_t v = pat(x, i);
	if (r.err == 0 && r.readable && r.w[0] == v && r.w[1] == v && r.w[2] == v)
		return 1;
	fprintf(stderr, "  P at index %u: err %d readable %d words %#llx %#llx %#llx, "
		"expected %#llx\n", i, r.err, r.readable, (unsigned long long)r.w[0],
		(unsigned long long)r.w[1], (unsigned long long)r.w[2], (unsigned long long)v);
	return 0;
}

enum letgo { LETGO_ATTACH, LETGO_EXIT, LETGO_KILL, LETGO_CLOSE };

static void quarantine_case(enum letgo how)
{
	vmc_t *c = make("quar", 0, 64 * MiB, 32 * MiB);   /* 16 funded granules */
	struct pworker p;
	vmc_stats_t s;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "quar-X", 64 * MiB), y = mkvm(c, "quar-Y", 64 * MiB);
	uint32_t z = mkvm(c, "quar-Z", 4 * MiB);
	REQUIRE(x != VMC_NIL && y != VMC_NIL && z != VMC_NIL);
	REQUIRE(commit_fill(c, x, 0, 4) == 0);
	REQUIRE(commit_fill(c, z, 0, 1) == 0);
	/* this worker (Q) moves its own window off X */
	REQUIRE(vmc_attach(c, z, &base) == 0 && vmc_detach(c, z) == 0);

	/* P attaches X and detaches lazily: its window still shows X */
	REQUIRE(p_start(&p, c) == 0);
	struct prsp r = p_do(&p, 'a', x);
	REQUIRE(r.err == 0 && r.readable && r.w[0] == pat(x, 0));
	CHECK(p_sees_x(&p, x, 2));

	/* Q attaches X and releases index 2: g must wait */
	REQUIRE(vmc_attach(c, x, &base) == 0);
	uint32_t g = vm_pagemap(c, x)[2];
	REQUIRE(g < c->h.ngranules);
	REQUIRE(vmc_release(c, at(base, 2), G, 0) == 0);
	CHECK(!readable(at(base, 2)));
	CHECK_EQ(quarantined(c), 1);
	CHECK_EQ(c->gran[g].state, G_QUARANTINED);
	REQUIRE(vmc_detach(c, x) == 0);

	/* Q takes every granule it can for Y: never g, always zero */
	REQUIRE(vmc_attach(c, y, &base) == 0);
	uint32_t ny = 0;
	int err;
	while ((err = vmc_commit(c, at(base, ny), G, 0)) == 0) {
		CHECK(vm_pagemap(c, y)[ny] != g);
		CHECK(all_zero(at(base, ny), G));
		put_pat(base, y, ny);
		ny++;
		REQUIRE(ny < 32);
		/* P still sees X's data at g, never Y's */
		if (ny % 4 == 0)
			CHECK(p_sees_x(&p, x, 2));
	}
	CHECK_EQ(err, VMC_EFUNDS);
	CHECK_EQ(ny, 16 - 3 - 1 - 1);   /* all but X's three, Z's one and g */
	CHECK_EQ(quarantined(c), 1);
	CHECK(p_sees_x(&p, x, 2));
	CHECK(p_sees_x(&p, x, 0) && p_sees_x(&p, x, 3));
	REQUIRE(vmc_detach(c, y) == 0);
	CHECK(check_clean(c));

	/* P lets go of X */
	int reaped_by_p = 0;
	switch (how) {
	case LETGO_ATTACH:
		r = p_do(&p, 'A', z);
		CHECK_EQ(r.err, 0);
		reaped_by_p = 1;
		break;
	case LETGO_CLOSE:
		p_do(&p, 'c', 0);    /* no answer: it exits */
		CHECK_EQ(test_wait(p.pid), 0);
		reaped_by_p = 1;
		break;
	case LETGO_EXIT:
		p_do(&p, 'q', 0);
		CHECK_EQ(test_wait(p.pid), 0);
		break;
	case LETGO_KILL:
		kill(p.pid, SIGKILL);
		CHECK_EQ(test_wait(p.pid), 128 + SIGKILL);
		break;
	}
	if (reaped_by_p)
		CHECK_EQ(quarantined(c), 0);
	if (how == LETGO_KILL) {
		vmc_recover_report_t rr;
		CHECK_EQ(quarantined(c), 1);   /* a dead, unrecovered slot: still listed */
		CHECK_EQ(vmc_recover(c, &rr), 0);
		CHECK_EQ(rr.workers_reclaimed, 1);
		CHECK_EQ(quarantined(c), 0);
	}
	/* LETGO_EXIT: the next refill finds g free to go */
	REQUIRE(vmc_attach(c, y, &base) == 0);
	CHECK_EQ(vmc_commit(c, at(base, ny), G, 0), 0);
	CHECK_EQ(vm_pagemap(c, y)[ny], g);
	CHECK(all_zero(at(base, ny), G));   /* X's data is gone */
	CHECK_EQ(quarantined(c), 0);
	for (uint32_t i = 0; i < ny; i++)
		CHECK(has_pat(base, y, i));
	REQUIRE(vmc_detach(c, y) == 0);
	if (how == LETGO_ATTACH) {
		CHECK_EQ(p_do(&p, 'd', z).err, 0);
		p_do(&p, 'c', 0);
		CHECK_EQ(test_wait(p.pid), 0);
	}
	p_end(&p);
	CHECK_EQ(vmc_recover(c, NULL), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.quarantined, 0);
	CHECK_EQ(s.used, 3 + ny + 1 + 1);   /* X, Y, Z */
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	finish(c);
}

TEST(quarantine_until_p_attaches_other) { quarantine_case(LETGO_ATTACH); }
TEST(quarantine_until_p_closes) { quarantine_case(LETGO_CLOSE); }
TEST(quarantine_until_p_exits) { quarantine_case(LETGO_EXIT); }
TEST(quarantine_until_p_killed) { quarantine_case(LETGO_KILL); }

/* The same with X destroyed by Q while P still shows it lazily: all of
 * X's granules wait, and a VM created in X's table entry gets none. */
TEST(quarantine_destroyed_vm)
{
	vmc_t *c = make("qdes", 0, 64 * MiB, 32 * MiB);
	struct pworker p;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "qd-X", 64 * MiB), z = mkvm(c, "qd-Z", 4 * MiB);
	REQUIRE(x != VMC_NIL && z != VMC_NIL);
	REQUIRE(commit_fill(c, x, 0, 4) == 0);
	REQUIRE(commit_fill(c, z, 0, 1) == 0);
	uint32_t xg[4];
	memcpy(xg, vm_pagemap(c, x), sizeof xg);
	REQUIRE(vmc_attach(c, z, &base) == 0 && vmc_detach(c, z) == 0);
	REQUIRE(p_start(&p, c) == 0);
	REQUIRE(p_do(&p, 'a', x).err == 0);

	REQUIRE(vmc_vm_destroy(c, x) == 0);
	CHECK_EQ(quarantined(c), 4);
	uint32_t w = mkvm(c, "qd-W", 64 * MiB);
	CHECK_EQ(w, x);                        /* the same table entry */
	REQUIRE(vmc_attach(c, w, &base) == 0);
	uint32_t n = 0;
	while (vmc_commit(c, at(base, n), G, 0) == 0) {
		for (int k = 0; k < 4; k++)
			CHECK(vm_pagemap(c, w)[n] != xg[k]);
		CHECK(all_zero(at(base, n), G));
		memset(at(base, n), 0xee, 64);
		n++;
		REQUIRE(n < 32);
	}
	CHECK_EQ(n, 16 - 4 - 1);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(p_sees_x(&p, x, i));
	REQUIRE(vmc_detach(c, w) == 0);
	CHECK(check_clean(c));
	CHECK_EQ(p_do(&p, 'a', z).err, 0);
	CHECK_EQ(quarantined(c), 0);
	p_do(&p, 'c', 0);
	CHECK_EQ(test_wait(p.pid), 0);
	p_end(&p);
	CHECK(check_clean(c));
	finish(c);
}

/* Strict mode: P's detach revoked its window, so nothing waits, and P's
 * stale window reads nothing. */
TEST(strict_needs_no_quarantine)
{
	vmc_t *c = make("qstr", 1, 64 * MiB, 32 * MiB);
	struct pworker p;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "qs-X", 64 * MiB), y = mkvm(c, "qs-Y", 64 * MiB);
	REQUIRE(x != VMC_NIL && y != VMC_NIL);
	REQUIRE(commit_fill(c, x, 0, 4) == 0);
	REQUIRE(p_start(&p, c) == 0);
	struct prsp r = p_do(&p, 'a', x);
	REQUIRE(r.err == 0 && r.readable && r.w[0] == pat(x, 0));
	r = p_do(&p, 'r', 2);
	CHECK(r.err == 0 && !r.readable);
	REQUIRE(vmc_attach(c, x, &base) == 0);
	uint32_t g = vm_pagemap(c, x)[2];
	REQUIRE(vmc_release(c, at(base, 2), G, 0) == 0);
	CHECK_EQ(quarantined(c), 0);
	REQUIRE(vmc_detach(c, x) == 0);
	REQUIRE(vmc_attach(c, y, &base) == 0);
	REQUIRE(vmc_commit(c, base, G, 0) == 0);
	CHECK_EQ(vm_pagemap(c, y)[0], g);      /* straight from the cache */
	CHECK(all_zero(base, G));
	put_pat(base, y, 0);
	REQUIRE(vmc_detach(c, y) == 0);
	for (uint32_t i = 0; i < 4; i++) {
		r = p_do(&p, 'r', i);
		CHECK(r.err == 0 && !r.readable);
	}
	p_do(&p, 'c', 0);
	CHECK_EQ(test_wait(p.pid), 0);
	p_end(&p);
	CHECK(check_clean(c));
	finish(c);
}

/* Two lazy workers take turns with X while Q recycles X's granules: the
 * quarantine holds as long as either still shows X. */
TEST(quarantine_two_stale_workers)
{
	vmc_t *c = make("q2", 0, 64 * MiB, 32 * MiB);
	struct pworker p1, p2;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "q2-X", 64 * MiB), y = mkvm(c, "q2-Y", 64 * MiB);
	uint32_t z = mkvm(c, "q2-Z", 4 * MiB);
	REQUIRE(x != VMC_NIL && y != VMC_NIL && z != VMC_NIL);
	REQUIRE(commit_fill(c, x, 0, 4) == 0);
	REQUIRE(commit_fill(c, z, 0, 1) == 0);
	REQUIRE(vmc_attach(c, z, &base) == 0 && vmc_detach(c, z) == 0);
	REQUIRE(p_start(&p1, c) == 0 && p_start(&p2, c) == 0);
	REQUIRE(p_do(&p1, 'a', x).err == 0);
	REQUIRE(p_do(&p2, 'a', x).err == 0);
	REQUIRE(vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_release(c, at(base, 1), 2 * G, 0) == 0);
	REQUIRE(vmc_detach(c, x) == 0);
	CHECK_EQ(quarantined(c), 2);
	REQUIRE(p_do(&p1, 'a', z).err == 0);       /* p1 lets go, p2 does not */
	CHECK_EQ(quarantined(c), 2);
	REQUIRE(vmc_attach(c, y, &base) == 0);
	uint32_t n = 0;
	while (vmc_commit(c, at(base, n), G, 0) == 0) {
		CHECK(all_zero(at(base, n), G));
		memset(at(base, n), 0x77, 4096);
		n++;
		REQUIRE(n < 32);
	}
	CHECK_EQ(n, 16 - 2 - 2 - 1);
	CHECK(p_sees_x(&p2, x, 1) && p_sees_x(&p2, x, 2));
	REQUIRE(vmc_detach(c, y) == 0);
	REQUIRE(p_do(&p2, 'a', x).err == 0);        /* p2 re-attaches X: remaps */
	CHECK_EQ(quarantined(c), 0);
	struct prsp r = p_do(&p2, 'r', 1);
	CHECK(r.err == 0 && !r.readable);
	p_do(&p1, 'c', 0);
	p_do(&p2, 'c', 0);
	CHECK_EQ(test_wait(p1.pid), 0);
	CHECK_EQ(test_wait(p2.pid), 0);
	p_end(&p1);
	p_end(&p2);
	CHECK(check_clean(c));
	finish(c);
}

/* ----------------------------------------------- pointer stability */

struct node { struct node *next; uint64_t value; uint64_t pad[6]; };

struct list_arg { vmc_t *c; uint32_t vm; uint32_t n; };

#define LIST_FIRST 5     /* the VM's memory: window indices 5..7 */
#define LIST_GRANULES 3

static struct node *node_at(void *base, uint32_t k)
{
	/* scatter the nodes over the three granules */
	size_t slots = LIST_GRANULES * G / sizeof(struct node);
	size_t s = 1 + ((uint64_t)k * 2654435761u) % (slots - 1);
	return (struct node *)at(base, LIST_FIRST) + s;
}

static int child_build(void *p)
{
	struct list_arg *a = p;
	void *base;
	if (vmc_attach(a->c, a->vm, &base) ||
	    vmc_commit(a->c, at(base, LIST_FIRST), LIST_GRANULES * G, 0))
		return 2;
	struct node **head = (struct node **)at(base, LIST_FIRST);
	*head = NULL;
	for (uint32_t k = a->n; k-- > 0;) {   /* prepend: the list runs 0..n-1 */
		struct node *nd = node_at(base, k);
		nd->value = k * 3 + 1;
		nd->next = *head;
		*head = nd;
	}
	if (vmc_detach(a->c, a->vm))
		return 3;
	return vmc_close(a->c) ? 4 : 0;
}

/* Walk the list; append n more nodes if asked. */
static int walk(vmc_t *c, uint32_t vm, uint32_t expect, uint32_t append)
{
	void *base;
	uint32_t k = 0;
	if (vmc_attach(c, vm, &base))
		return 2;
	struct node *nd = *(struct node **)at(base, LIST_FIRST), *last = NULL;
	char *lo = at(base, LIST_FIRST), *hi = at(base, LIST_FIRST + LIST_GRANULES);
	for (; nd; nd = nd->next, k++) {
		if ((char *)nd < lo || (char *)nd >= hi || k >= expect)
			return 3;
		if (nd->value != k * 3 + 1 || nd != node_at(base, k))
			return 4;
		last = nd;
	}
	if (k != expect)
		return 5;
	for (uint32_t j = 0; j < append; j++) {
		struct node *m = node_at(base, expect + j);
		m->value = (expect + j) * 3 + 1;
		m->next = NULL;
		last->next = m;
		last = m;
	}
	return vmc_detach(c, vm) ? 6 : 0;
}

static int child_walk(void *p)
{
	struct list_arg *a = p;
	int r = walk(a->c, a->vm, a->n, 50);
	if (r)
		return r;
	return vmc_close(a->c) ? 7 : 0;
}

static void pointer_case(int strict)
{
	vmc_t *c = make("ptr", strict, 64 * MiB, 32 * MiB);
	REQUIRE(c);
	uint32_t decoy = mkvm(c, "decoy", 32 * MiB);
	struct list_arg a = { c, mkvm(c, "list-A", 32 * MiB), 1000 };
	REQUIRE(a.vm != VMC_NIL && decoy != VMC_NIL);
	REQUIRE(commit_fill(c, decoy, 0, 10) == 0);   /* other granules in the way */
	CHECK_EQ(test_wait(test_fork(child_build, &a)), 0);     /* worker 1 */
	CHECK_EQ(test_wait(test_fork(child_walk, &a)), 0);      /* worker 2 */
	CHECK_EQ(walk(c, a.vm, 1050, 0), 0);                     /* and this one */
	CHECK(check_clean(c));
	finish(c);
}

TEST(pointer_stability_strict) { pointer_case(1); }
TEST(pointer_stability_lazy) { pointer_case(0); }

int main(void)
{
	RUN(lazy_reattach_makes_no_system_call);
	RUN(lazy_reattach_after_recreate_remaps);
	RUN(strict_reattach_mprotect_only);
	RUN(quarantine_until_p_attaches_other);
	RUN(quarantine_until_p_closes);
	RUN(quarantine_until_p_exits);
	RUN(quarantine_until_p_killed);
	RUN(quarantine_destroyed_vm);
	RUN(strict_needs_no_quarantine);
	RUN(quarantine_two_stale_workers);
	RUN(pointer_stability_strict);
	RUN(pointer_stability_lazy);
	destroy_all();
	return test_done();
}
