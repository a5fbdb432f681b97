/*
 * test_isolation.c - memory isolation between VMs, with real processes.
 *
 *  - invariant 1: the tail of the window after a bigger VM faults (strict
 *    and lazy), a released range faults, a granule that moved to another VM
 *    shows up only where that VM maps it;
 *  - invariant 2: after a strict detach a stale pointer faults;
 *  - invariant 4: a granule that last belonged to another VM reads as zero;
 *  - invariant 9: attach is exclusive across processes (EBUSY), and in one
 *    worker (EALREADY);
 *  - invariant 10: a forked child cannot read its parent's window;
 *  - fault attribution: the line vmc_fault_install prints (captured from the
 *    dying child's stderr through a pipe);
 *  - errors of the VM table and of commit / release / attach / detach.
 *
 * A fault that must happen is done in a forked child (which has its own,
 * empty window: invariant 10), so every such child first builds the state
 * it needs itself, then touches the address and must die of SIGSEGV.
 * Accesses that must not fault are probed without a signal: write(2) from
 * the address into a pipe fails with EFAULT if the page is not readable.
 */
#include "vm.h"
#include "window.h"
#include "os/os.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define G test_granule()

/* ------------------------------------------------------------- helpers */

/* A forked child whose stderr is captured. */
struct run {
	int code;             /* test_wait(): exit code or 128+signal */
	char err[4096];
};

static int run_child(int (*fn)(void *), void *arg, struct run *r)
{
	int p[2];
	size_t n = 0;
	ssize_t k;
	pid_t pid;

	memset(r, 0, sizeof *r);
	if (pipe(p))
		return r->code = -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 2);
		close(p[1]);
		_exit(fn(arg));
	}
	close(p[1]);
	while (n < sizeof r->err - 1 && (k = read(p[0], r->err + n, sizeof r->err - 1 - n)) > 0)
		n += (size_t)k;
	r->err[n] = 0;
	close(p[0]);
	r->code = test_wait(pid);
	return r->code;
}

/* The child must have died of SIGSEGV, with an attribution line holding
 * every string in want[] (NULL-terminated). */
/* "window offset 0x...", as the fault line prints it (a few at a time). */
static const char *woff(uint64_t off)
{
	static char buf[4][40];
	static int n;
	char *b = buf[n++ % 4];
	snprintf(b, sizeof buf[0], "window offset %#llx", (unsigned long long)off);
	return b;
}

static int died_attributed(const struct run *r, const char *const *want)
{
	int ok = r->code == 128 + SIGSEGV;
	if (!ok)
		fprintf(stderr, "  child ended with %d, expected %d (SIGSEGV)\n", r->code,
			128 + SIGSEGV);
	for (; ok && *want; want++)
		if (!strstr(r->err, *want)) {
			fprintf(stderr, "  attribution lacks \"%s\"\n", *want);
			ok = 0;
		}
	if (!ok || getenv("VMC_TEST_VERBOSE"))
		fprintf(stderr, "  child's stderr: <<%s>>\n", r->err);
	return ok;
}

static volatile uint64_t sink;

/* Read p; the child is meant to die here.  If it survives: exit 99. */
static int touch_and_survive(const void *p)
{
	__asm__ volatile("" : "+r"(p));   /* an address the compiler cannot reason about */
	sink = *(const volatile uint64_t *)p;
	fprintf(stderr, "survived a read of %p (read %#llx)\n", p, (unsigned long long)sink);
	return 99;
}

#define FAILC(code, ...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
			       return (code); } while (0)

struct iso {
	vmc_t *c;
	uint32_t a, b;         /* VM ids */
	uint32_t n;            /* granules of a */
	int strict;
};

/* ----------------------------------------- invariant 1: the window tail */

/* Attach A (4 granules), see all of it, detach, attach B (1 granule):
 * B's granule shows B's data, A's tail reads nothing, and touching it
 * faults. */
static int child_tail(void *p)
{
	struct iso *x = p;
	void *base;
	int err;

	if ((err = vmc_fault_install(x->c, 0)))
		FAILC(2, "fault_install: %d", err);
	if ((err = vmc_attach(x->c, x->a, &base)))
		FAILC(3, "attach A: %d %s", err, vmc_errmsg());
	for (uint32_t i = 0; i < x->n; i++)
		if (!has_pat(base, x->a, i))
			FAILC(4, "A's granule %u lacks its pattern", i);
	if ((err = vmc_detach(x->c, x->a)))
		FAILC(5, "detach A: %d", err);
	if ((err = vmc_attach(x->c, x->b, &base)))
		FAILC(6, "attach B: %d %s", err, vmc_errmsg());
	if (!readable(at(base, 0)) || !has_pat(base, x->b, 0))
		FAILC(7, "B's granule 0 does not show B's data");
	for (uint32_t i = 1; i < x->n; i++)
		if (readable(at(base, i)))
			FAILC(8, "window index %u (A's tail) is readable with B attached", i);
	return touch_and_survive((char *)at(base, 2) + 4096);
}

static void tail_case(int strict)
{
	struct run r;
	vmc_t *c = make(strict ? "tails" : "taill", strict, 128 * MiB, 64 * MiB);
	REQUIRE(c);
	struct iso x = { c, mkvm(c, "heap-A", 16 * MiB), mkvm(c, "heap-B", 16 * MiB), 4, strict };
	REQUIRE(x.a != VMC_NIL && x.b != VMC_NIL);
	REQUIRE(commit_fill(c, x.a, 0, 4) == 0);
	REQUIRE(commit_fill(c, x.b, 0, 1) == 0);
	run_child(child_tail, &x, &r);
	const char *want[] = { "vmc: SIGSEGV", "attached VM \"heap-B\"", "\"heap-A\"",
			       woff(2 * G + 4096),
			       strict ? "isolation strict" : "isolation lazy", NULL };
	CHECK(died_attributed(&r, want));
	/* the parent's own window is untouched by what the child did */
	void *base;
	REQUIRE(vmc_recover(c, NULL) == 0);
	REQUIRE(vmc_vm_reclaim(c, x.b, VMC_RECLAIM_KEEP) == 0);
	CHECK_EQ(vmc_attach(c, x.a, &base), 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(readable(at(base, i)) && has_pat(base, x.a, i));
	CHECK_EQ(vmc_detach(c, x.a), 0);
	CHECK(check_clean(c));
	finish(c);
}

TEST(tail_after_bigger_vm_faults_strict) { tail_case(1); }
TEST(tail_after_bigger_vm_faults_lazy) { tail_case(0); }

/* ------------------------------ invariant 1: after X shrinks, in place */

static int child_shrink(void *p)
{
	struct iso *x = p;
	void *base;
	int err;

	vmc_fault_install(x->c, 0);
	if ((err = vmc_attach(x->c, x->a, &base)))
		FAILC(3, "attach: %d %s", err, vmc_errmsg());
	for (uint32_t i = 0; i < 4; i++)
		if (!has_pat(base, x->a, i))
			FAILC(4, "granule %u lacks its pattern", i);
	if ((err = vmc_release(x->c, at(base, 1), 2 * G, 0)))
		FAILC(5, "release: %d %s", err, vmc_errmsg());
	if (readable(at(base, 1)) || readable(at(base, 2)))
		FAILC(6, "a released granule is still readable");
	if (!has_pat(base, x->a, 0) || !has_pat(base, x->a, 3))
		FAILC(7, "the granules around the released range lost their data");
	if (x->strict) {
		/* and again after a detach and re-attach */
		if (vmc_detach(x->c, x->a) || vmc_attach(x->c, x->a, &base))
			FAILC(8, "re-attach: %s", vmc_errmsg());
		if (readable(at(base, 1)) || !has_pat(base, x->a, 3))
			FAILC(9, "re-attach after the release shows the wrong thing");
	}
	return touch_and_survive(at(base, 2));
}

static void shrink_case(int strict)
{
	struct run r;
	vmc_vm_stats_t vs;
	vmc_t *c = make("shr", strict, 128 * MiB, 64 * MiB);
	REQUIRE(c);
	struct iso x = { c, mkvm(c, "shrinker", 16 * MiB), VMC_NIL, 4, strict };
	REQUIRE(x.a != VMC_NIL);
	REQUIRE(commit_fill(c, x.a, 0, 4) == 0);
	run_child(child_shrink, &x, &r);
	const char *want[] = { "vmc: SIGSEGV", "\"shrinker\"", woff(2 * G),
			       strict ? "isolation strict" : "isolation lazy", NULL };
	CHECK(died_attributed(&r, want));
	REQUIRE(vmc_recover(c, NULL) == 0);
	CHECK_EQ(vmc_vm_stats(c, x.a, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ORPHANED);
	CHECK_EQ(vs.committed, 2 * G);
	CHECK(check_clean(c));
	finish(c);
}

TEST(shrink_released_range_faults_strict) { shrink_case(1); }
TEST(shrink_released_range_faults_lazy) { shrink_case(0); }

/* --------------------------------- invariant 2: strict detach revokes */

static int child_stale(void *p)
{
	struct iso *x = p;
	void *base;
	uint64_t *stale;
	int err;

	vmc_fault_install(x->c, 0);
	if ((err = vmc_attach(x->c, x->a, &base)))
		FAILC(3, "attach: %d %s", err, vmc_errmsg());
	stale = (uint64_t *)at(base, 1) + 7;   /* a pointer the VM handed out */
	*stale = 42;
	if ((err = vmc_detach(x->c, x->a)))
		FAILC(4, "detach: %d", err);
	for (uint32_t i = 0; i < x->n; i++)
		if (readable(at(base, i)))
			FAILC(5, "index %u readable after a strict detach", i);
	return touch_and_survive(stale);
}

TEST(strict_detach_revokes_everything)
{
	struct run r;
	vmc_t *c = make("strict", 1, 128 * MiB, 64 * MiB);
	REQUIRE(c);
	struct iso x = { c, mkvm(c, "stale-vm", 16 * MiB), VMC_NIL, 3, 1 };
	REQUIRE(x.a != VMC_NIL);
	REQUIRE(commit_fill(c, x.a, 0, 3) == 0);
	run_child(child_stale, &x, &r);
	const char *want[] = { "vmc: SIGSEGV", "attached VM none", "\"stale-vm\"",
			       woff(G + 0x38), "isolation strict", NULL };
	CHECK(died_attributed(&r, want));
	/* the child detached before it died: nothing is orphaned */
	vmc_vm_stats_t vs;
	REQUIRE(vmc_recover(c, NULL) == 0);
	CHECK_EQ(vmc_vm_stats(c, x.a, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_IDLE);

	/* in this process too, without a signal */
	void *base;
	REQUIRE(vmc_attach(c, x.a, &base) == 0);
	CHECK(readable(at(base, 1)) && ((uint64_t *)at(base, 1))[7] == 42);
	REQUIRE(vmc_detach(c, x.a) == 0);
	for (uint32_t i = 0; i < 32; i++)
		CHECK(!readable(at(base, i)));
	CHECK(check_clean(c));
	finish(c);
}

/* Lazy: the window stays mapped after detach (the point of lazy mode), but
 * the next attach of another VM replaces all of it. */
TEST(lazy_window_replaced_by_next_attach)
{
	vmc_t *c = make("lazyrep", 0, 128 * MiB, 64 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "lazy-A", 16 * MiB), b = mkvm(c, "lazy-B", 16 * MiB);
	REQUIRE(a != VMC_NIL && b != VMC_NIL);
	REQUIRE(commit_fill(c, a, 0, 4) == 0);
	REQUIRE(commit_fill(c, b, 2, 1) == 0);
	REQUIRE(vmc_attach(c, a, &base) == 0);
	REQUIRE(vmc_detach(c, a) == 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(readable(at(base, i)) && has_pat(base, a, i));   /* lazily kept */
	REQUIRE(vmc_attach(c, b, &base) == 0);
	for (uint32_t i = 0; i < 32; i++)
		CHECK_EQ(readable(at(base, i)), i == 2);
	CHECK(has_pat(base, b, 2));
	REQUIRE(vmc_detach(c, b) == 0);
	CHECK(check_clean(c));
	finish(c);
}

/* --------------- invariants 1 and 4: a granule that moves from X to Y */

static void moved_case(int strict)
{
	vmc_t *c = make("mv", strict, 64 * MiB, 32 * MiB);
	vmc_stats_t s;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "mv-X", 64 * MiB), y = mkvm(c, "mv-Y", 64 * MiB);
	REQUIRE(x != VMC_NIL && y != VMC_NIL);
	REQUIRE(vmc_stats(c, &s) == 0);
	uint32_t funded = s.granules - s.unfunded;   /* 16 */

	/* X takes every funded granule and dirties all of it */
	REQUIRE(vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, (size_t)funded * G, 0) == 0);
	memset(base, 0xab, (size_t)funded * G);
	uint32_t g1 = vm_pagemap(c, x)[1];
	/* X shrinks: index 1 and the upper half go */
	REQUIRE(vmc_release(c, at(base, 1), G, 0) == 0);
	REQUIRE(vmc_release(c, at(base, funded / 2), (size_t)(funded / 2) * G, 0) == 0);
	CHECK(!readable(at(base, 1)));
	CHECK(readable(at(base, 0)) && readable(at(base, 2)));
	REQUIRE(vmc_detach(c, x) == 0);

	/* Y takes them, at other indices: all zero, and X's indices show nothing */
	REQUIRE(vmc_attach(c, y, &base) == 0);
	uint32_t ny = 1 + funded / 2;
	REQUIRE(vmc_commit(c, at(base, 20), (size_t)ny * G, 0) == 0);
	int found = 0;
	for (uint32_t i = 20; i < 20 + ny; i++) {
		found |= vm_pagemap(c, y)[i] == g1;
		CHECK(all_zero(at(base, i), G));
	}
	CHECK(found);   /* X's granule 1 did move to Y */
	for (uint32_t i = 0; i < 32; i++)
		CHECK_EQ(readable(at(base, i)), i >= 20 && i < 20 + ny);
	memset(at(base, 20), 0xcd, (size_t)ny * G);
	REQUIRE(vmc_detach(c, y) == 0);

	/* back to X: its remaining data intact, nothing of Y visible */
	REQUIRE(vmc_attach(c, x, &base) == 0);
	for (uint32_t i = 0; i < 32; i++) {
		int in_x = i == 0 || (i >= 2 && i < funded / 2);
		CHECK_EQ(readable(at(base, i)), in_x);
		if (in_x)
			CHECK(((unsigned char *)at(base, i))[G - 1] == 0xab);
	}
	REQUIRE(vmc_detach(c, x) == 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK(conserved(&s));
	CHECK_EQ(s.used, funded);
	CHECK(check_clean(c));
	finish(c);
}

TEST(moved_granule_reads_zero_strict) { moved_case(1); }
TEST(moved_granule_reads_zero_lazy) { moved_case(0); }

/* Invariant 4 across workers: X's dirty granules go through a dead
 * worker's cache and the free list to Y in another worker. */
static int child_dirty_release(void *p)
{
	struct iso *x = p;
	void *base;
	if (vmc_attach(x->c, x->a, &base) || vmc_commit(x->c, base, (size_t)x->n * G, 0))
		FAILC(2, "attach/commit: %s", vmc_errmsg());
	memset(base, 0x5a, (size_t)x->n * G);
	if (vmc_release(x->c, base, (size_t)x->n * G, 0) || vmc_detach(x->c, x->a))
		FAILC(3, "release/detach: %s", vmc_errmsg());
	return vmc_close(x->c) ? 4 : 0;
}

TEST(dirty_granules_from_other_worker_read_zero)
{
	struct run r;
	vmc_stats_t s;
	void *base;
	vmc_t *c = make("dirty", 0, 64 * MiB, 32 * MiB);
	REQUIRE(c);
	struct iso x = { c, mkvm(c, "dirty-X", 64 * MiB), mkvm(c, "clean-Y", 64 * MiB), 16, 0 };
	REQUIRE(x.a != VMC_NIL && x.b != VMC_NIL);
	run_child(child_dirty_release, &x, &r);
	CHECK_EQ(r.code, 0);
	if (r.code)
		fprintf(stderr, "  child: %s\n", r.err);
	REQUIRE(vmc_attach(c, x.b, &base) == 0);
	REQUIRE(vmc_commit(c, base, 16 * G, 0) == 0);
	for (uint32_t i = 0; i < 16; i++)
		CHECK(all_zero(at(base, i), G));
	REQUIRE(vmc_detach(c, x.b) == 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 16);
	CHECK(check_clean(c));
	finish(c);
}

/* ------------------------------------------ invariant 9: exclusivity */

struct hold {
	vmc_t *c;
	uint32_t vm;
	int ready[2], go[2];
};

/* Attach vm, say so, wait for the word to detach. */
static int child_hold(void *p)
{
	struct hold *h = p;
	void *base;
	char b = 0;
	int err = vmc_attach(h->c, h->vm, &base);
	if (write(h->ready[1], &err, sizeof err) != sizeof err)
		return 2;
	if (err)
		return 3;
	if (read(h->go[0], &b, 1) != 1)
		return 4;
	if ((err = vmc_detach(h->c, h->vm)))
		return 5;
	return vmc_close(h->c) ? 6 : 0;
}

static int child_try_attach(void *p)
{
	struct hold *h = p;
	void *base;
	int err = vmc_attach(h->c, h->vm, &base);
	if (err == EBUSY)
		return strstr(vmc_errmsg(), "attached") ? 0 : 11;
	return 10;
}

TEST(attach_is_exclusive)
{
	vmc_t *c = make("excl", 1, 64 * MiB, 32 * MiB);
	struct hold h;
	vmc_worker_stats_t ws;
	vmc_vm_stats_t vs;
	void *base;
	int err = -1;
	REQUIRE(c);
	uint32_t a = mkvm(c, "excl-A", 16 * MiB), b = mkvm(c, "excl-B", 16 * MiB);
	REQUIRE(a != VMC_NIL && b != VMC_NIL);
	h.c = c;
	h.vm = a;
	REQUIRE(pipe(h.ready) == 0 && pipe(h.go) == 0);
	pid_t w1 = test_fork(child_hold, &h);
	REQUIRE(w1 > 0);
	CHECK(read(h.ready[0], &err, sizeof err) == sizeof err);
	CHECK_EQ(err, 0);

	/* worker 2 (this process) and worker 3 (another child): EBUSY */
	CHECK_EQ(vmc_attach(c, a, &base), EBUSY);
	CHECK(errmsg_has("attached"));
	CHECK_EQ(vmc_attached(c), VMC_NO_VM);
	CHECK_EQ(test_wait(test_fork(child_try_attach, &h)), 0);
	CHECK_EQ(vmc_vm_stats(c, a, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ATTACHED);
	CHECK_EQ(vs.pid, w1);
	/* a failed attach leaves this worker free to attach something else */
	CHECK_EQ(vmc_attach(c, b, &base), 0);
	CHECK_EQ(vmc_attached(c), b);
	CHECK_EQ(vmc_worker_stats(c, vmc_worker_slot(c), &ws), 0);
	CHECK_EQ(ws.attached, b);
	/* one VM at a time per worker */
	CHECK_EQ(vmc_attach(c, a, &base), EALREADY);
	CHECK_EQ(vmc_attach(c, b, &base), EALREADY);
	CHECK_EQ(vmc_detach(c, a), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_attached(c), b);
	CHECK_EQ(vmc_detach(c, b), 0);
	CHECK_EQ(vmc_detach(c, b), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_detach(c, VMC_NO_VM), VMC_ENOTATTACHED);

	/* worker 1 lets go: now it is ours */
	CHECK(write(h.go[1], "x", 1) == 1);
	CHECK_EQ(test_wait(w1), 0);
	CHECK_EQ(vmc_attach(c, a, &base), 0);
	CHECK_EQ(vmc_vm_stats(c, a, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ATTACHED);
	CHECK_EQ(vs.pid, getpid());
	CHECK_EQ(vs.attaches, 2);
	CHECK_EQ(vmc_detach(c, a), 0);
	close(h.ready[0]);
	close(h.ready[1]);
	close(h.go[0]);
	close(h.go[1]);
	CHECK(check_clean(c));
	finish(c);
}

/* Two processes race to attach the same VM many times: never both. */
struct race {
	vmc_t *c;
	uint32_t vm;
	int rounds;
	volatile int *inside;   /* shared: how many hold it now */
};

static int child_race(void *p)
{
	struct race *r = p;
	void *base;
	int got = 0;
	for (int i = 0; i < r->rounds; i++) {
		int err = vmc_attach(r->c, r->vm, &base);
		if (err == EBUSY)
			continue;
		if (err)
			FAILC(2, "attach: %d %s", err, vmc_errmsg());
		if (__atomic_add_fetch(r->inside, 1, __ATOMIC_SEQ_CST) != 1)
			FAILC(3, "two workers have the VM attached");
		uint64_t *w = base;
		w[0]++;                          /* not atomic: exclusive access */
		got++;
		__atomic_sub_fetch(r->inside, 1, __ATOMIC_SEQ_CST);
		if (vmc_detach(r->c, r->vm))
			FAILC(4, "detach: %s", vmc_errmsg());
	}
	fprintf(stderr, "%d\n", got);
	return 0;
}

TEST(attach_race_two_processes)
{
	vmc_t *c = make("race", 0, 64 * MiB, 32 * MiB);
	struct run r1;
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "race-A", 16 * MiB);
	REQUIRE(a != VMC_NIL && commit_fill(c, a, 0, 1) == 0);
	int *inside = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(inside != MAP_FAILED);
	struct race rc = { c, a, 20000, inside };
	int go[2];
	REQUIRE(pipe(go) == 0);
	pid_t other = fork();
	if (other == 0) {
		char b;
		close(go[1]);
		int dn = open("/dev/null", O_WRONLY);
		if (read(go[0], &b, 1) != 1)
			_exit(9);
		if (dn >= 0)
			dup2(dn, 2);   /* the count it prints; failures show in the code */
		_exit(child_race(&rc));
	}
	close(go[0]);
	CHECK(write(go[1], "x", 1) == 1);
	close(go[1]);
	run_child(child_race, &rc, &r1);
	CHECK_EQ(r1.code, 0);
	CHECK_EQ(test_wait(other), 0);
	long got1 = strtol(r1.err, NULL, 10);
	REQUIRE(vmc_attach(c, a, &base) == 0);
	uint64_t *w = base;
	/* the counter started at the pattern word */
	uint64_t n = w[0] - pat(a, 0);
	CHECK(n >= (uint64_t)got1 && n <= 2 * 20000);
	CHECK_EQ(vmc_detach(c, a), 0);
	munmap(inside, 4096);
	CHECK(check_clean(c));
	finish(c);
}

/* ---------------------------------------------- invariant 10: fork */

static int child_fork_read(void *p)
{
	struct iso *x = p;
	vmc_fault_install(x->c, 0);   /* inherited already: a no-op */
	return touch_and_survive(at(x->c->arena, 1));
}

static int child_fork_probe(void *p)
{
	struct iso *x = p;
	void *base;
	for (uint32_t i = 0; i < 32; i++)
		if (readable(at(x->c->arena, i)))
			FAILC(2, "window index %u readable in the child", i);
	if (vmc_attached(x->c) != VMC_NO_VM)
		FAILC(3, "the child thinks it has a VM attached");
	/* nor can it act on the parent's attachment */
	int e1 = vmc_detach(x->c, x->a), e2 = vmc_commit(x->c, at(x->c->arena, 9), G, 0);
	if (e1 != VMC_ENOTATTACHED || e2 != VMC_ENOTATTACHED)
		FAILC(8, "detach/commit in the child: %d %d, expected VMC_ENOTATTACHED", e1, e2);
	int err = vmc_attach(x->c, x->a, &base);
	if (x->strict == 2) {      /* parent still attached */
		if (err != EBUSY)
			FAILC(4, "attach in the child: %d, expected EBUSY", err);
	} else {
		if (err)
			FAILC(5, "attach in the child: %d %s", err, vmc_errmsg());
		if (!has_pat(base, x->a, 1))
			FAILC(6, "the child's own attach does not show the VM");
		vmc_detach(x->c, x->a);
	}
	return vmc_close(x->c) ? 7 : 0;
}

static void fork_case(int strict, int parent_detached)
{
	struct run r;
	void *base;
	vmc_t *c = make("fork", strict, 64 * MiB, 32 * MiB);
	REQUIRE(c);
	struct iso x = { c, mkvm(c, "forked-A", 16 * MiB), VMC_NIL, 2, strict };
	REQUIRE(x.a != VMC_NIL);
	REQUIRE(vmc_fault_install(c, 0) == 0);
	REQUIRE(commit_fill(c, x.a, 0, 2) == 0);
	REQUIRE(vmc_attach(c, x.a, &base) == 0);
	REQUIRE(has_pat(base, x.a, 1));
	if (parent_detached) {
		REQUIRE(vmc_detach(c, x.a) == 0);
		CHECK_EQ(readable(at(base, 1)), !strict);   /* lazily still mapped */
	}
	run_child(child_fork_read, &x, &r);
	const char *want[] = { "vmc: SIGSEGV", "attached VM none", "\"forked-A\"",
			       woff(G),
			       strict ? "isolation strict" : "isolation lazy", NULL };
	CHECK(died_attributed(&r, want));
	x.strict = parent_detached ? strict : 2;
	run_child(child_fork_probe, &x, &r);
	CHECK_EQ(r.code, 0);
	if (r.code)
		fprintf(stderr, "  child: %s\n", r.err);
	/* the parent's window is as it was */
	if (!parent_detached) {
		CHECK(readable(at(base, 1)) && has_pat(base, x.a, 1));
		CHECK_EQ(vmc_detach(c, x.a), 0);
	} else {
		CHECK_EQ(readable(at(base, 1)), !strict);
	}
	REQUIRE(vmc_recover(c, NULL) == 0);
	CHECK(check_clean(c));
	finish(c);
}

TEST(fork_child_cannot_read_attached_strict) { fork_case(1, 0); }
TEST(fork_child_cannot_read_attached_lazy) { fork_case(0, 0); }
TEST(fork_child_cannot_read_after_lazy_detach) { fork_case(0, 1); }

/* A fault outside every arena is not attributed to vmc. */
static int child_null(void *p)
{
	struct iso *x = p;
	vmc_fault_install(x->c, 0);
	return touch_and_survive((void *)(uintptr_t)8);
}

TEST(fault_outside_arena_not_attributed)
{
	struct run r;
	vmc_t *c = make("null", 1, 32 * MiB, 16 * MiB);
	REQUIRE(c);
	struct iso x = { c, VMC_NIL, VMC_NIL, 0, 1 };
	run_child(child_null, &x, &r);
#ifdef UNDER_ASAN
	/* the handler before vmc's is ASan's: it reports and exits(1) */
	CHECK(r.code == 128 + SIGSEGV || (r.code == 1 && strstr(r.err, "AddressSanitizer")));
#else
	CHECK_EQ(r.code, 128 + SIGSEGV);
#endif
	CHECK(!strstr(r.err, "vmc: SIGSEGV"));
	CHECK_EQ(vmc_fault_install(c, 1), EINVAL);
	finish(c);
}

/* ---------------------------------------------------- API errors */

static int child_destroy_busy(void *p)
{
	struct hold *h = p;
	int err = vmc_vm_destroy(h->c, h->vm);
	if (err != EBUSY)
		FAILC(2, "destroy of a VM attached elsewhere: %d", err);
	return 0;
}

TEST(vm_table_errors)
{
	vmc_t *c = make("vmerr", 1, 64 * MiB, 32 * MiB);
	uint32_t id, ids[16];
	vmc_vm_stats_t vs;
	void *base;
	REQUIRE(c);

	/* names */
	CHECK_EQ(vmc_vm_create(c, "", G, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, NULL, G, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "has space", G, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "tab\there", G, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "ctl\x01", G, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "hi\x80", G, &id), EINVAL);
	char longname[80];
	memset(longname, 'n', sizeof longname);
	longname[64] = 0;
	CHECK_EQ(vmc_vm_create(c, longname, G, &id), EINVAL);
	longname[63] = 0;
	CHECK_EQ(vmc_vm_create(c, longname, G, &id), 0);   /* 63 characters */
	CHECK_EQ(vmc_vm_find(c, longname, &ids[0]), 0);
	CHECK_EQ(ids[0], id);
	CHECK_EQ(vmc_vm_destroy(c, id), 0);
	CHECK_EQ(vmc_vm_find(c, "", &id), EINVAL);
	CHECK_EQ(vmc_vm_find(c, "x", NULL), EINVAL);

	/* limits and spans: 0, above the window, a limit above the span;
	 * rounding up to whole granules (vmc.h: one rule for every size) */
	CHECK_EQ(vmc_vm_create(c, "lim", 0, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "lim", 64 * MiB + 1, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "lim", 128 * MiB, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "lim", G, NULL), EINVAL);
	CHECK_EQ(vmc_vm_create_span(c, "lim", 2 * G, G, &id), EINVAL);
	CHECK_EQ(vmc_vm_create_span(c, "lim", G, 0, &id), EINVAL);
	CHECK_EQ(vmc_vm_create(c, "lim", 2 * G + 1, &id), 0);
	CHECK_EQ(vmc_vm_stats(c, id, &vs), 0);
	CHECK_EQ(vs.limit, 3 * G);
	CHECK_EQ(vs.span, 3 * G);
	CHECK_EQ(vs.state, VMC_VM_IDLE);
	CHECK_EQ(vs.committed, 0);
	CHECK(!strcmp(vs.name, "lim"));
	CHECK_EQ(vmc_vm_create(c, "lim", G, &ids[0]), EEXIST);
	CHECK(errmsg_has("lim"));
	CHECK_EQ(vmc_vm_destroy(c, id), 0);

	/* find / stats / destroy of unknown or bad ids */
	CHECK_EQ(vmc_vm_find(c, "nope", &id), ENOENT);
	CHECK_EQ(vmc_vm_find(c, "lim", &id), ENOENT);
	CHECK_EQ(vmc_vm_destroy(c, 3), ENOENT);
	CHECK_EQ(vmc_vm_destroy(c, 16), EINVAL);
	CHECK_EQ(vmc_vm_destroy(c, VMC_NO_VM), EINVAL);
	CHECK_EQ(vmc_vm_stats(c, 3, &vs), ENOENT);
	CHECK_EQ(vmc_vm_stats(c, 99, &vs), EINVAL);
	CHECK_EQ(vmc_attach(c, 3, &base), ENOENT);
	CHECK_EQ(vmc_attach(c, 99, &base), EINVAL);
	CHECK_EQ(vmc_attach(c, VMC_NO_VM, &base), EINVAL);
	CHECK_EQ(vmc_vm_reclaim(c, 3, VMC_RECLAIM_KEEP), ENOENT);

	/* the table fills up (max_vms 16) */
	char nm[32];
	int made_n = 0;
	for (int i = 0; i < 16; i++) {
		snprintf(nm, sizeof nm, "vm%d", i);
		made_n += vmc_vm_create(c, nm, G, &ids[i]) == 0;
	}
	CHECK_EQ(made_n, 16);
	CHECK_EQ(vmc_vm_create(c, "one-more", G, &id), ENOSPC);
	CHECK(errmsg_has("max_vms"));
	CHECK_EQ(vmc_vm_find(c, "vm7", &id), 0);
	CHECK_EQ(id, ids[7]);

	/* destroy attached: here, and in another worker */
	CHECK_EQ(vmc_attach(c, ids[7], &base), 0);
	CHECK_EQ(vmc_commit(c, base, G, 0), 0);
	CHECK_EQ(vmc_vm_destroy(c, ids[7]), EBUSY);
	CHECK_EQ(vmc_vm_stats(c, ids[7], &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ATTACHED);
	CHECK_EQ(vs.committed, G);
	CHECK(readable(base));
	/* destroying another VM while one is attached here works, and leaves
	 * the attached one alone */
	CHECK_EQ(vmc_vm_destroy(c, ids[3]), 0);
	CHECK_EQ(vmc_attached(c), ids[7]);
	vmc_worker_stats_t ws;
	CHECK_EQ(vmc_worker_stats(c, vmc_worker_slot(c), &ws), 0);
	CHECK_EQ(ws.attached, ids[7]);
	CHECK(readable(base));
	struct hold h = { c, ids[7], { -1, -1 }, { -1, -1 } };
	CHECK_EQ(test_wait(test_fork(child_destroy_busy, &h)), 0);
	CHECK_EQ(vmc_detach(c, ids[7]), 0);
	/* a free entry again: the name and the slot can be reused */
	CHECK_EQ(vmc_vm_create(c, "again", G, &id), 0);
	CHECK_EQ(id, ids[3]);
	CHECK_EQ(vmc_vm_find(c, "vm3", &id), ENOENT);
	CHECK_EQ(vmc_vm_destroy(c, ids[7]), 0);   /* its granule goes back */
	CHECK_EQ(vmc_vm_find(c, "vm7", &id), ENOENT);
	CHECK_EQ(vmc_vm_create(c, "vm7", G, &id), 0);
	CHECK_EQ(vmc_vm_stats(c, id, &vs), 0);
	CHECK_EQ(vs.committed, 0);
	CHECK_EQ(vs.attaches, 0);

	/* reclaim of a VM that is not orphaned */
	CHECK_EQ(vmc_vm_reclaim(c, id, VMC_RECLAIM_KEEP), EINVAL);
	CHECK_EQ(vmc_vm_reclaim(c, id, VMC_RECLAIM_RESET), EINVAL);
	CHECK_EQ(vmc_vm_reclaim(c, id, 0), EINVAL);
	CHECK_EQ(vmc_vm_reclaim(c, id, 7), EINVAL);
	CHECK_EQ(vmc_vm_stats(c, id, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_IDLE);
	vmc_stats_t s;
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, 0);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	finish(c);
}

TEST(commit_release_errors)
{
	vmc_t *c = make("cmerr", 1, 64 * MiB, 16 * MiB);   /* 8 funded granules */
	vmc_vm_stats_t vs;
	vmc_stats_t s;
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "cm-A", 6 * MiB), big = mkvm(c, "cm-big", 64 * MiB);
	REQUIRE(a != VMC_NIL && big != VMC_NIL);
	char *w = c->arena;

	/* nothing attached */
	CHECK_EQ(vmc_commit(c, w, G, 0), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_release(c, w, G, 0), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_detach(c, a), VMC_ENOTATTACHED);

	REQUIRE(vmc_attach(c, a, &base) == 0);
	CHECK(base == (void *)w);
	/* alignment, length, flags, range */
	CHECK_EQ(vmc_commit(c, w + 4096, G, 0), EINVAL);
	CHECK_EQ(vmc_commit(c, w, G + 4096, 0), EINVAL);
	CHECK_EQ(vmc_commit(c, w, 4096, 0), EINVAL);
	CHECK_EQ(vmc_commit(c, w, 0, 0), EINVAL);
	CHECK_EQ(vmc_commit(c, w, G, 0x40), EINVAL);   /* an unknown flag */
	CHECK_EQ(vmc_commit(c, w - G, G, 0), EINVAL);
	CHECK_EQ(vmc_commit(c, w + 64 * MiB, G, 0), EINVAL);
	CHECK_EQ(vmc_commit(c, w + 62 * MiB, 2 * G, 0), EINVAL);
	CHECK_EQ(vmc_commit(c, w + 2 * G, (size_t)-1 & ~(G - 1), 0), EINVAL);
	CHECK_EQ(vmc_commit(c, (void *)(uintptr_t)G, G, 0), EINVAL);
	CHECK_EQ(vmc_release(c, w + 4096, G, 0), EINVAL);
	CHECK_EQ(vmc_release(c, w + 64 * MiB, G, 0), EINVAL);
	CHECK_EQ(vmc_vm_stats(c, a, &vs), 0);
	CHECK_EQ(vs.committed, 0);
	CHECK(!readable(w));

	/* the limit (3 granules): a commit that would pass it does nothing */
	CHECK_EQ(vmc_commit(c, w + 62 * MiB, G, 0), 0);   /* the last index is fine */
	CHECK_EQ(vmc_commit(c, w, 2 * G, 0), 0);
	CHECK_EQ(vmc_commit(c, w + 4 * G, G, 0), VMC_ELIMIT);
	CHECK(errmsg_has("cm-A"));
	CHECK_EQ(vmc_commit(c, w, 2 * G, 0), 0);          /* already committed: no-op */
	CHECK_EQ(vmc_commit(c, w + G, 3 * G, 0), VMC_ELIMIT);
	CHECK_EQ(vmc_vm_stats(c, a, &vs), 0);
	CHECK_EQ(vs.committed, 3 * G);
	CHECK(!readable(w + 2 * G) && !readable(w + 3 * G) && !readable(w + 4 * G));
	/* nothing there: the range must be committed */
	CHECK_EQ(vmc_release(c, w + 10 * G, 4 * G, 0), VMC_EUNCOMMITTED);
	CHECK_EQ(vmc_release(c, w + 62 * MiB, G, 0), 0);
	CHECK(!readable(w + 62 * MiB));
	CHECK_EQ(vmc_commit(c, w + 2 * G, G, 0), 0);
	CHECK_EQ(vmc_vm_stats(c, a, &vs), 0);
	CHECK_EQ(vs.committed, 3 * G);
	CHECK_EQ(vs.hwm, 3 * G);
	CHECK_EQ(vmc_detach(c, a), 0);

	/* the pool runs dry (8 funded, 3 used): all or nothing */
	REQUIRE(vmc_attach(c, big, &base) == 0);
	CHECK_EQ(vmc_commit(c, w, 4 * G, 0), 0);
	memset(w, 0x11, 4 * G);
	CHECK_EQ(vmc_commit(c, w + 8 * G, 4 * G, 0), VMC_EFUNDS);
	CHECK(errmsg_has("balloon"));
	CHECK_EQ(vmc_vm_stats(c, big, &vs), 0);
	CHECK_EQ(vs.committed, 4 * G);
	for (uint32_t i = 4; i < 32; i++)
		CHECK(!readable(w + (size_t)i * G));
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, 7);
	CHECK_EQ(s.free + s.cached, 1);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	/* what is left can still be had, and the data so far is intact */
	CHECK_EQ(vmc_commit(c, w + 8 * G, G, 0), 0);
	CHECK(all_zero(w + 8 * G, G));
	CHECK_EQ(vmc_commit(c, w + 9 * G, G, 0), VMC_EFUNDS);
	CHECK_EQ(((unsigned char *)w)[4 * G - 1], 0x11);
	CHECK_EQ(vmc_detach(c, big), 0);
	CHECK(check_clean(c));
	finish(c);
}

/* A commit or release whose mapping call fails (ENOMEM from mmap, injected)
 * is all or nothing: the error comes back, the page map and the counts are
 * as before, and the VM's other memory stays where it was, readable. */
static void map_failure_case(int strict)
{
	vmc_t *c = make("mapfail", strict, 64 * MiB, 32 * MiB);
	vmc_vm_stats_t vs;
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "mf-A", 32 * MiB);
	REQUIRE(a != VMC_NIL && commit_fill(c, a, 0, 3) == 0);
	REQUIRE(vmc_attach(c, a, &base) == 0);

	vmc_os_inject(VMC_OS_MMAP, 1, ENOMEM);
	CHECK_EQ(vmc_commit(c, at(base, 6), G, 0), ENOMEM);
	vmc_os_inject_clear();
	CHECK_EQ(vmc_vm_stats(c, a, &vs), 0);
	CHECK_EQ(vs.committed, 3 * G);
	CHECK(!readable(at(base, 6)));
	for (uint32_t i = 0; i < 3; i++)
		CHECK(readable(at(base, i)) && has_pat(base, a, i));
	CHECK(check_clean(c));
	/* and the next commit works and reads zero */
	CHECK_EQ(vmc_commit(c, at(base, 6), G, 0), 0);
	CHECK(all_zero(at(base, 6), G));

	vmc_os_inject(VMC_OS_MMAP, 1, ENOMEM);
	int err = vmc_release(c, at(base, 6), G, 0);
	vmc_os_inject_clear();
	CHECK_EQ(vmc_vm_stats(c, a, &vs), 0);
	if (err == 0)
		CHECK_EQ(vs.committed, 3 * G);
	else
		CHECK(vs.committed == 4 * G || vs.committed == 3 * G);
	CHECK_EQ(readable(at(base, 6)), vs.committed == 4 * G);
	for (uint32_t i = 0; i < 3; i++)
		CHECK(readable(at(base, i)) && has_pat(base, a, i));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, a), 0);
	vmc_stats_t s;
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, vs.committed / G);
	CHECK(conserved(&s));
	finish(c);
}

TEST(map_failure_is_all_or_nothing_strict) { map_failure_case(1); }
TEST(map_failure_is_all_or_nothing_lazy) { map_failure_case(0); }

int main(void)
{
	RUN(tail_after_bigger_vm_faults_strict);
	RUN(tail_after_bigger_vm_faults_lazy);
	RUN(shrink_released_range_faults_strict);
	RUN(shrink_released_range_faults_lazy);
	RUN(strict_detach_revokes_everything);
	RUN(lazy_window_replaced_by_next_attach);
	RUN(moved_granule_reads_zero_strict);
	RUN(moved_granule_reads_zero_lazy);
	RUN(dirty_granules_from_other_worker_read_zero);
	RUN(attach_is_exclusive);
	RUN(attach_race_two_processes);
	RUN(fork_child_cannot_read_attached_strict);
	RUN(fork_child_cannot_read_attached_lazy);
	RUN(fork_child_cannot_read_after_lazy_detach);
	RUN(fault_outside_arena_not_attributed);
	RUN(vm_table_errors);
	RUN(commit_release_errors);
	RUN(map_failure_is_all_or_nothing_strict);
	RUN(map_failure_is_all_or_nothing_lazy);
	destroy_all();
	return test_done();
}
