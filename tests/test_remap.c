/*
 * test_remap.c - the mapping engine: commit, release, move, alias,
 * protect, probe, flush and batches.
 *
 *  - move and alias keep every byte; the old range of a move faults; the
 *    two views of an alias see each other's writes; releasing one view
 *    keeps the other, releasing both frees the granule;
 *  - an overlapping move keeps contents;
 *  - every error leaves nothing changed: the container's and the VM's
 *    counters, the page map (vmc_probe of every index), what is readable
 *    and every byte of the contents, and vmc_check stays clean;
 *  - protection: read-only ranges fault on a write, PROT_NONE on a read,
 *    in this process and in another worker, and across detach / attach;
 *  - batches coalesce: N moves of contiguous ranges cost O(1) system
 *    calls (counted by the OS layer), N single moves cost >= N;
 *  - an aborted batch leaves no trace;
 *  - VMC_RELEASE_DEFER keeps the mapping until vmc_flush, a batch commit
 *    or detach, and a granule recycled in place costs no system call;
 *  - invariant 3 with deferral: a granule released by X waits in
 *    quarantine while another worker still maps X lazily;
 *  - the VM limit and the reserve fund, up to exhaustion;
 *  - a system call failing in the middle of a batch (fault injection):
 *    the check is clean, the window matches the page map, nothing leaks.
 *
 * Faults that must happen are taken in forked children (test_wait() ==
 * 128+SIGSEGV); accesses that must not fault are probed without a signal
 * by write(2)ing the byte into a pipe (EFAULT if it is not readable).
 * Operations that might crash the library itself (found bugs) also run in
 * forked children, so that one of them cannot take the whole binary down.
 */
#include "vm.h"
#include "window.h"
#include "os/os.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define G test_granule()
#define MAXW 512

/* Two views of one granule are two addresses the compiler thinks cannot
 * overlap: after writing through one, make it forget what it knows. */
#define BARRIER() __asm__ __volatile__("" ::: "memory")

/* ------------------------------------------------------------- helpers */

/* Readable at its first, a middle and its last page. */
static int gran_readable(const void *p)
{
	const char *b = p;
	return readable(b) && readable(b + G / 2 + 4096) && readable(b + G - 1);
}

/* Not readable anywhere we look. */
static int gran_faults(const void *p)
{
	const char *b = p;
	return !readable(b) && !readable(b + G / 2 + 4096) && !readable(b + G - 1);
}

/* A per-granule pattern over every word of the granule. */
static uint64_t seed_of(uint32_t tag, uint32_t i)
{
	return 0x9e3779b97f4a7c15ull * ((uint64_t)tag * 1000003u + i + 1);
}

static void fill(void *p, uint64_t s)
{
	uint64_t *w = p;
	for (size_t k = 0; k < G / 8; k++)
		w[k] = s ^ (k * 0xff51afd7ed558ccdull);
}

/* Every byte of the granule at p holds pattern s. */
static int same(const void *p, uint64_t s)
{
	const uint64_t *w = p;
	for (size_t k = 0; k < G / 8; k++)
		if (w[k] != (s ^ (k * 0xff51afd7ed558ccdull))) {
			fprintf(stderr, "  %p: word %zu is %#llx, expected %#llx\n", p, k,
				(unsigned long long)w[k],
				(unsigned long long)(s ^ (k * 0xff51afd7ed558ccdull)));
			return 0;
		}
	return 1;
}

static uint64_t hash_gran(const void *p)
{
	const uint64_t *w = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t k = 0; k < G / 8; k++)
		h = (h ^ w[k]) * 1099511628211ull;
	return h;
}

static uint32_t wgran(vmc_t *c)
{
	return (uint32_t)(c->h.window_size / G);
}

static vmc_probe_t probe(vmc_t *c, void *p)
{
	vmc_probe_t r;
	memset(&r, 0xee, sizeof r);
	int err = vmc_probe(c, p, &r);
	if (err)
		fprintf(stderr, "  vmc_probe(%p): %d %s\n", p, err, vmc_errmsg());
	return r;
}

static uint64_t calls(enum vmc_os_entry e)
{
	return vmc_os_calls(e);
}

/* A forked child: returns test_wait()'s code (exit code or 128+signal). */
static int run_child(int (*fn)(void *), void *arg)
{
	return test_wait(test_fork(fn, arg));
}

static volatile uint64_t sink;

#define FAILC(code, ...) do { fprintf(stderr, "  child: " __VA_ARGS__); fputc('\n', stderr); \
			       return (code); } while (0)

/* ----------------------------------------- snapshots for "nothing changed" */

struct snap {
	vmc_stats_t s;
	vmc_vm_stats_t vs;
	uint32_t n;
	vmc_probe_t p[MAXW];
	int rd[MAXW];
	uint64_t h[MAXW];
};

static void take(vmc_t *c, uint32_t vm, struct snap *x)
{
	void *base = c->arena;
	memset(x, 0, sizeof *x);
	vmc_stats(c, &x->s);
	vmc_vm_stats(c, vm, &x->vs);
	x->n = wgran(c);
	for (uint32_t i = 0; i < x->n; i++) {
		x->p[i] = probe(c, at(base, i));
		x->rd[i] = readable(at(base, i));
		x->h[i] = x->rd[i] ? hash_gran(at(base, i)) : 0;
	}
}

static int snap_same(const struct snap *a, const struct snap *b)
{
	int ok = 1;
#define SAME(f) do { if (a->f != b->f) { fprintf(stderr, "  %s: %lld -> %lld\n", #f, \
		(long long)a->f, (long long)b->f); ok = 0; } } while (0)
	SAME(s.used); SAME(s.free); SAME(s.cached); SAME(s.quarantined); SAME(s.unfunded);
	SAME(vs.committed); SAME(vs.hwm); SAME(vs.reserve_used); SAME(vs.state);
	for (uint32_t i = 0; i < a->n; i++) {
		SAME(p[i].committed); SAME(p[i].granule); SAME(p[i].prot); SAME(p[i].alias);
		SAME(rd[i]); SAME(h[i]);
	}
#undef SAME
	return ok;
}

/* ------------------------------------------------ move and alias, contents */

static void move_case(int strict)
{
	vmc_t *c = make(strict ? "mvs" : "mvl", strict, 64 * MiB, 64 * MiB);
	vmc_stats_t s0, s1;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "mover", 64 * MiB);
	REQUIRE(x != VMC_NIL);
	REQUIRE(vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 6 * G, 0) == 0);
	uint32_t g[6];
	for (uint32_t i = 0; i < 6; i++) {
		fill(at(base, i), seed_of(x, i));
		g[i] = probe(c, at(base, i)).granule;
	}
	REQUIRE(vmc_stats(c, &s0) == 0);

	/* [0,4) -> [10,14): every byte follows, the old range faults */
	uint64_t mm = calls(VMC_OS_MMAP);
	CHECK_EQ(vmc_move(c, base, at(base, 10), 4 * G, 0), 0);
	CHECK(calls(VMC_OS_MMAP) - mm >= 1);
	for (uint32_t i = 0; i < 4; i++) {
		CHECK(gran_faults(at(base, i)));
		CHECK(gran_readable(at(base, 10 + i)));
		CHECK(same(at(base, 10 + i), seed_of(x, i)));
		vmc_probe_t p = probe(c, at(base, 10 + i));
		CHECK_EQ(p.committed, 1);
		CHECK_EQ(p.granule, g[i]);       /* the backing moved, not a copy */
		CHECK_EQ(p.alias, 0);
		CHECK_EQ(probe(c, at(base, i)).committed, 0);
	}
	CHECK(same(at(base, 4), seed_of(x, 4)) && same(at(base, 5), seed_of(x, 5)));
	REQUIRE(vmc_stats(c, &s1) == 0);
	CHECK_EQ(s1.used, s0.used);        /* a move takes and frees nothing */
	vmc_vm_stats_t vs;
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 6 * G);

	/* the moved range stays writable, and it survives detach/attach */
	((volatile uint64_t *)at(base, 10))[3] ^= 1;
	((volatile uint64_t *)at(base, 10))[3] ^= 1;
	CHECK_EQ(vmc_detach(c, x), 0);
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	for (uint32_t i = 0; i < 4; i++) {
		CHECK(same(at(base, 10 + i), seed_of(x, i)));
		CHECK(gran_faults(at(base, i)));
	}
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

TEST(move_keeps_contents_strict) { move_case(1); }
TEST(move_keeps_contents_lazy) { move_case(0); }

/* Another worker attaching the VM after a move faults on the old range. */
struct fault_arg {
	vmc_t *c;
	uint32_t vm, idx;
	int write;             /* 1: write a word, 0: read one */
	int want_prot;         /* -1: don't care; else vmc_probe's prot must be this */
	int want_committed;    /* -1: don't care */
	uint64_t want_seed;    /* if readable first: its pattern (0: don't check) */
};

static int child_touch(void *p)
{
	struct fault_arg *a = p;
	void *base;
	int err;
	if ((err = vmc_attach(a->c, a->vm, &base)))
		FAILC(2, "attach: %d %s", err, vmc_errmsg());
	vmc_probe_t pr = probe(a->c, at(base, a->idx));
	if (a->want_committed >= 0 && pr.committed != a->want_committed)
		FAILC(3, "index %u committed %d, expected %d", a->idx, pr.committed,
		      a->want_committed);
	if (a->want_prot >= 0 && pr.prot != a->want_prot)
		FAILC(4, "index %u prot %d, expected %d", a->idx, pr.prot, a->want_prot);
	if (a->want_seed && (!readable(at(base, a->idx)) || !same(at(base, a->idx), a->want_seed)))
		FAILC(5, "index %u does not show its pattern", a->idx);
	volatile uint64_t *w = (volatile uint64_t *)((char *)at(base, a->idx) + 4096 + 8);
	/* die of the signal itself, also under ASan (whose handler exits 1) */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGSEGV, &dfl, NULL);
	if (a->write)
		*w = *w;   /* faults on a read-only page, changes nothing otherwise */
	else
		sink = *w;
	fprintf(stderr, "  child: survived a %s of index %u\n", a->write ? "write" : "read",
		a->idx);
	return 99;
}

/* Run child_touch; a child that died attached leaves the VM orphaned:
 * reclaim it (keeping its memory) for the next one. */
static int touch(struct fault_arg *a)
{
	vmc_vm_stats_t vs;
	int code = run_child(child_touch, a);
	vmc_recover(a->c, NULL);
	if (vmc_vm_stats(a->c, a->vm, &vs) == 0 && vs.state == VMC_VM_ORPHANED)
		vmc_vm_reclaim(a->c, a->vm, VMC_RECLAIM_KEEP);
	return code;
}

TEST(move_old_range_faults_in_other_worker)
{
	vmc_t *c = make("mvf", 1, 64 * MiB, 32 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "mvf", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 2 * G, 0) == 0);
	fill(at(base, 0), seed_of(x, 0));
	fill(at(base, 1), seed_of(x, 1));
	REQUIRE(vmc_move(c, base, at(base, 7), 2 * G, 0) == 0);
	REQUIRE(vmc_detach(c, x) == 0);
	struct fault_arg a = { c, x, 0, 0, -1, 0, 0 };
	CHECK_EQ(touch(&a), 128 + SIGSEGV);
	a.idx = 1;
	CHECK_EQ(touch(&a), 128 + SIGSEGV);
	/* the new place is there (and writable) in the other worker */
	struct fault_arg b = { c, x, 8, 1, PROT_READ | PROT_WRITE, 1, seed_of(x, 1) };
	CHECK_EQ(touch(&b), 99);
	REQUIRE(vmc_recover(c, NULL) == 0);
	CHECK(check_clean(c));
	finish(c);
}

static void alias_case(int strict)
{
	vmc_t *c = make(strict ? "als" : "all", strict, 64 * MiB, 64 * MiB);
	vmc_stats_t s0, s;
	vmc_vm_stats_t vs;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "aliaser", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, at(base, 2), 3 * G, 0) == 0);
	for (uint32_t i = 0; i < 3; i++)
		fill(at(base, 2 + i), seed_of(x, i));
	REQUIRE(vmc_stats(c, &s0) == 0);

	/* [2,5) also at [20,23) */
	CHECK_EQ(vmc_alias(c, at(base, 2), at(base, 20), 3 * G), 0);
	for (uint32_t i = 0; i < 3; i++) {
		vmc_probe_t p = probe(c, at(base, 2 + i)), q = probe(c, at(base, 20 + i));
		CHECK(gran_readable(at(base, 20 + i)));
		CHECK(same(at(base, 20 + i), seed_of(x, i)));
		CHECK(same(at(base, 2 + i), seed_of(x, i)));
		CHECK_EQ(q.committed, 1);
		CHECK_EQ(q.granule, p.granule);
		CHECK_EQ(q.alias, 1);
		CHECK_EQ(p.alias, 0);
		CHECK_EQ(q.prot, PROT_READ | PROT_WRITE);
	}
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used);          /* no new granule */
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 3 * G);      /* an alias commits nothing */

	/* writes through either view show in the other, both ways */
	volatile uint64_t *a = at(base, 3), *b = at(base, 21);
	a[100] = 0x1111;
	CHECK_EQ(b[100], 0x1111);
	b[G / 8 - 1] = 0x2222;
	CHECK_EQ(a[G / 8 - 1], 0x2222);
	fill(at(base, 21), seed_of(x, 77));
	BARRIER();
	CHECK(same(at(base, 3), seed_of(x, 77)));
	fill(at(base, 3), seed_of(x, 1));
	BARRIER();
	CHECK(same(at(base, 21), seed_of(x, 1)));

	/* release the primary view of [2]: the alias at [20] keeps it */
	uint32_t g2 = probe(c, at(base, 2)).granule;
	CHECK_EQ(vmc_release(c, at(base, 2), G, 0), 0);
	CHECK(gran_faults(at(base, 2)));
	CHECK(gran_readable(at(base, 20)) && same(at(base, 20), seed_of(x, 0)));
	CHECK_EQ(probe(c, at(base, 20)).granule, g2);
	CHECK_EQ(probe(c, at(base, 20)).alias, 0);  /* the remaining view is the primary */
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used);
	CHECK(check_clean(c));
	/* release the alias view of [3]: the primary keeps it */
	CHECK_EQ(vmc_release(c, at(base, 21), G, 0), 0);
	CHECK(gran_faults(at(base, 21)));
	CHECK(gran_readable(at(base, 3)) && same(at(base, 3), seed_of(x, 1)));
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used);
	CHECK(check_clean(c));
	/* and the other views survive a detach / attach */
	CHECK_EQ(vmc_detach(c, x), 0);
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	CHECK(same(at(base, 20), seed_of(x, 0)) && same(at(base, 3), seed_of(x, 1)));
	CHECK(same(at(base, 4), seed_of(x, 2)) && same(at(base, 22), seed_of(x, 2)));
	CHECK(gran_faults(at(base, 2)) && gran_faults(at(base, 21)));

	/* release the last views: the granules are free */
	CHECK_EQ(vmc_release(c, at(base, 20), G, 0), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used - 1);
	CHECK_EQ(vmc_release(c, at(base, 3), G, 0), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used - 2);
	/* both views of [4]/[22] in one call */
	CHECK_EQ(vmc_release(c, at(base, 4), G, 0), 0);
	CHECK_EQ(vmc_release(c, at(base, 22), G, 0), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used - 3);
	CHECK(conserved(&s));
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 0);
	for (uint32_t i = 0; i < wgran(c); i++)
		CHECK(!readable(at(base, i)));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

TEST(alias_shares_contents_strict) { alias_case(1); }
TEST(alias_shares_contents_lazy) { alias_case(0); }

/* One range released in one call while it holds both views of a granule,
 * and an alias moved somewhere else. */
TEST(alias_release_both_views_in_one_call)
{
	vmc_t *c = make("al2", 1, 64 * MiB, 32 * MiB);
	vmc_stats_t s0, s;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "al2", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, G, 0) == 0);
	fill(base, seed_of(x, 0));
	REQUIRE(vmc_stats(c, &s0) == 0);
	CHECK_EQ(vmc_alias(c, base, at(base, 1), G), 0);
	CHECK_EQ(vmc_move(c, at(base, 1), at(base, 9), G, 0), 0);   /* move the alias */
	CHECK_EQ(probe(c, at(base, 9)).alias, 1);
	CHECK(same(at(base, 9), seed_of(x, 0)));
	CHECK(gran_faults(at(base, 1)));
	CHECK_EQ(vmc_alias(c, at(base, 9), at(base, 1), G), 0);    /* an alias of an alias */
	CHECK(same(at(base, 1), seed_of(x, 0)));
	CHECK_EQ(vmc_move(c, base, at(base, 2), G, 0), 0);         /* move the primary */
	CHECK_EQ(probe(c, at(base, 2)).alias, 0);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_release(c, at(base, 1), 2 * G, 0), 0);       /* alias + primary */
	CHECK(gran_faults(at(base, 1)) && gran_faults(at(base, 2)));
	CHECK(same(at(base, 9), seed_of(x, 0)));
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_release(c, at(base, 9), G, 0), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, s0.used - 1);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

/* to = from + 1 granule, 4 granules; and the other direction. */
TEST(overlapping_move_keeps_contents)
{
	vmc_t *c = make("ovl", 1, 64 * MiB, 32 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "ovl", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, at(base, 4), 4 * G, 0) == 0);
	uint32_t g[4];
	for (uint32_t i = 0; i < 4; i++) {
		fill(at(base, 4 + i), seed_of(x, i));
		g[i] = probe(c, at(base, 4 + i)).granule;
	}
	CHECK_EQ(vmc_move(c, at(base, 4), at(base, 5), 4 * G, 0), 0);
	CHECK(gran_faults(at(base, 4)));
	for (uint32_t i = 0; i < 4; i++) {
		CHECK(same(at(base, 5 + i), seed_of(x, i)));
		CHECK_EQ(probe(c, at(base, 5 + i)).granule, g[i]);
	}
	CHECK(check_clean(c));
	/* back down by 3: to = from - 3 */
	CHECK_EQ(vmc_move(c, at(base, 5), at(base, 2), 4 * G, 0), 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(same(at(base, 2 + i), seed_of(x, i)));
	for (uint32_t i = 6; i < 10; i++)
		CHECK(gran_faults(at(base, i)));
	/* onto itself: nothing changes */
	CHECK_EQ(vmc_move(c, at(base, 2), at(base, 2), 4 * G, 0), 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(same(at(base, 2 + i), seed_of(x, i)));
	/* in a batch, overlapping and chained */
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_move(b, at(base, 2), at(base, 3), 4 * G, 0), 0);
	CHECK_EQ(vmc_batch_move(b, at(base, 3), at(base, 4), 4 * G, 0), 0);
	CHECK_EQ(vmc_batch_commit(b), 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(same(at(base, 4 + i), seed_of(x, i)));
	CHECK(gran_faults(at(base, 2)) && gran_faults(at(base, 3)));
	vmc_vm_stats_t vs;
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 4 * G);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

/* --------------------------------------------------------------- errors */

struct errcase {
	const char *what;
	int got, want;
};

TEST(errors_change_nothing)
{
	vmc_t *c = make("err", 1, 64 * MiB, 32 * MiB);
	struct snap *s0 = malloc(sizeof *s0), *s1 = malloc(sizeof *s1);
	void *base;
	REQUIRE(c && s0 && s1);
	uint32_t x = mkvm(c, "err", 16 * MiB);   /* limit: 8 granules */
	REQUIRE(x != VMC_NIL);
	char *w = c->arena;
	size_t ws = c->h.window_size;

	/* nothing attached */
	CHECK_EQ(vmc_move(c, w, w + G, G, 0), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_alias(c, w, w + G, G), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_protect(c, w, G, PROT_READ), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_release(c, w, G, 0), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_commit(c, w, G, 0), VMC_ENOTATTACHED);
	vmc_probe_t pr;
	CHECK_EQ(vmc_probe(c, w, &pr), VMC_ENOTATTACHED);
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_move(b, w, w + G, G, 0), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_batch_commit_range(b, w, G, 0), VMC_ENOTATTACHED);
	CHECK_EQ(vmc_batch_commit(b), VMC_ENOTATTACHED);

	REQUIRE(vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, w, 4 * G, 0) == 0);          /* [0,4) committed */
	for (uint32_t i = 0; i < 4; i++)
		fill(w + i * G, seed_of(x, i));
	REQUIRE(vmc_alias(c, w + 3 * G, w + 12 * G, G) == 0);
	REQUIRE(vmc_protect(c, w + 2 * G, G, PROT_READ) == 0);
	take(c, x, s0);

	struct errcase cases[] = {
		/* unaligned, empty, out of the window */
		{ "move from+4K", vmc_move(c, w + 4096, w + 8 * G, G, 0), EINVAL },
		{ "move to+4K", vmc_move(c, w, w + 8 * G + 4096, G, 0), EINVAL },
		{ "move len+4K", vmc_move(c, w, w + 8 * G, G + 4096, 0), EINVAL },
		{ "move len 0", vmc_move(c, w, w + 8 * G, 0, 0), EINVAL },
		{ "move to past end", vmc_move(c, w, w + ws, G, 0), EINVAL },
		{ "move to straddles end", vmc_move(c, w, w + ws - G, 2 * G, 0), EINVAL },
		{ "move to below", vmc_move(c, w, w - G, G, 0), EINVAL },
		{ "move from past end", vmc_move(c, w + ws, w, G, 0), EINVAL },
		{ "alias from+4K", vmc_alias(c, w + 4096, w + 8 * G, G), EINVAL },
		{ "alias to past end", vmc_alias(c, w, w + ws, G), EINVAL },
		{ "alias len 0", vmc_alias(c, w, w + 8 * G, 0), EINVAL },
		{ "protect +4K", vmc_protect(c, w + 4096, G, PROT_READ), EINVAL },
		{ "protect past end", vmc_protect(c, w + ws, G, PROT_READ), EINVAL },
		{ "protect len 4K", vmc_protect(c, w, 4096, PROT_READ), EINVAL },
		{ "release +4K", vmc_release(c, w + 4096, G, 0), EINVAL },
		{ "release huge len", vmc_release(c, w, (size_t)-1 & ~(G - 1), 0), EINVAL },
		{ "commit below", vmc_commit(c, w - G, G, 0), EINVAL },
		/* uncommitted ranges, whole or in part */
		{ "move uncommitted", vmc_move(c, w + 5 * G, w + 8 * G, G, 0), VMC_EUNCOMMITTED },
		{ "move partly", vmc_move(c, w + 3 * G, w + 8 * G, 2 * G, 0), VMC_EUNCOMMITTED },
		{ "alias uncommitted", vmc_alias(c, w + 5 * G, w + 8 * G, G), VMC_EUNCOMMITTED },
		{ "alias partly", vmc_alias(c, w + 2 * G, w + 8 * G, 3 * G), VMC_EUNCOMMITTED },
		{ "protect uncommitted", vmc_protect(c, w + 6 * G, G, PROT_NONE), VMC_EUNCOMMITTED },
		{ "protect partly", vmc_protect(c, w, 5 * G, PROT_NONE), VMC_EUNCOMMITTED },
		{ "release uncommitted", vmc_release(c, w + 6 * G, G, 0), VMC_EUNCOMMITTED },
		{ "release partly", vmc_release(c, w + 2 * G, 3 * G, 0), VMC_EUNCOMMITTED },
		{ "release partly DEFER", vmc_release(c, w + 3 * G, 2 * G, VMC_RELEASE_DEFER),
		  VMC_EUNCOMMITTED },
		/* committed targets */
		{ "move onto committed", vmc_move(c, w, w + 3 * G, G, 0), EEXIST },
		{ "move onto alias", vmc_move(c, w, w + 12 * G, G, 0), EEXIST },
		{ "move partly onto", vmc_move(c, w, w + 11 * G, 2 * G, 0), EEXIST },
		{ "move overlap + committed", vmc_move(c, w, w + 2 * G, 3 * G, 0), EEXIST },
		{ "alias onto committed", vmc_alias(c, w, w + G, G), EEXIST },
		{ "alias onto alias", vmc_alias(c, w, w + 12 * G, G), EEXIST },
		/* alias overlapping itself */
		{ "alias overlap +1", vmc_alias(c, w, w + G, 2 * G), EINVAL },
		{ "alias onto itself", vmc_alias(c, w, w, G), EINVAL },
		/* protections */
		{ "PROT_WRITE", vmc_protect(c, w, G, PROT_WRITE), EINVAL },
		{ "PROT_EXEC", vmc_protect(c, w, G, PROT_EXEC), EINVAL },
		{ "PROT_READ|EXEC", vmc_protect(c, w, G, PROT_READ | PROT_EXEC), EINVAL },
		{ "PROT_RWX", vmc_protect(c, w, G, PROT_READ | PROT_WRITE | PROT_EXEC), EINVAL },
		{ "prot -1", vmc_protect(c, w, G, -1), EINVAL },
		/* flags */
		{ "move flags 1", vmc_move(c, w, w + 8 * G, G, 1), EINVAL },
		{ "move flags DEFER", vmc_move(c, w, w + 8 * G, G, VMC_RELEASE_DEFER), EINVAL },
		{ "release flags 2", vmc_release(c, w, G, 2), EINVAL },
		{ "release flags -1", vmc_release(c, w, G, -1), EINVAL },
		{ "release flags 0x100", vmc_release(c, w + 6 * G, G, 0x100), EINVAL },
		{ "commit flags 8", vmc_commit(c, w + 8 * G, G, 8), EINVAL },
		{ "commit flags 0x100", vmc_commit(c, w + 8 * G, G, 0x100), EINVAL },
		/* the limit: 4 committed of 8 */
		{ "commit past limit", vmc_commit(c, w + 4 * G, 5 * G, 0), VMC_ELIMIT },
		/* probe */
		{ "probe below", vmc_probe(c, w - 1, &pr), EINVAL },
		{ "probe past end", vmc_probe(c, w + ws, &pr), EINVAL },
		{ "probe NULL", vmc_probe(c, w, NULL), EINVAL },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
		if (cases[k].got != cases[k].want) {
			fprintf(stderr, "  %s: got %d (%s), expected %d (%s)\n", cases[k].what,
				cases[k].got, vmc_strerror(cases[k].got), cases[k].want,
				vmc_strerror(cases[k].want));
			test_cur_failed_ = 1;
		}
	take(c, x, s1);
	CHECK(snap_same(s0, s1));
	CHECK(check_clean(c));

	/* batches: recording checks the form; the commit validates all or
	 * nothing (the ops before the bad one are not applied) */
	struct { int bad; int want; } bcase[] = {
		{ 0, VMC_EUNCOMMITTED }, { 1, EEXIST }, { 2, EEXIST }, { 3, VMC_ELIMIT },
		{ 4, VMC_EUNCOMMITTED },
	};
	for (size_t k = 0; k < sizeof bcase / sizeof bcase[0]; k++) {
		REQUIRE(vmc_batch_begin(c, &b) == 0);
		CHECK_EQ(vmc_batch_commit_range(b, w + 20 * G, G, 0), 0);
		CHECK_EQ(vmc_batch_move(b, w, w + 8 * G, G, 0), 0);
		CHECK_EQ(vmc_batch_protect(b, w + G, G, PROT_NONE), 0);
		CHECK_EQ(vmc_batch_release(b, w + 8 * G, G, 0), 0);   /* what the move put there */
		switch (bcase[k].bad) {
		case 0: CHECK_EQ(vmc_batch_release(b, w + 8 * G, G, 0), 0); break;  /* twice */
		case 1: CHECK_EQ(vmc_batch_move(b, w + G, w + 2 * G, G, 0), 0); break;
		case 2:   /* a move of what this batch committed onto [1] */
			CHECK_EQ(vmc_batch_commit_range(b, w + 21 * G, G, 0), 0);
			CHECK_EQ(vmc_batch_move(b, w + 21 * G, w + 1 * G, G, 0), 0);
			break;
		case 3: CHECK_EQ(vmc_batch_commit_range(b, w + 24 * G, 4 * G, 0), 0); break;
		case 4: CHECK_EQ(vmc_batch_protect(b, w + 8 * G, G, PROT_READ), 0); break;
		}
		CHECK_EQ(vmc_batch_commit_range(b, w + 30 * G, G, 0), 0);
		int err = vmc_batch_commit(b);
		if (err != bcase[k].want)
			fprintf(stderr, "  batch case %zu: %d (%s), expected %d\n", k, err,
				vmc_strerror(err), bcase[k].want);
		CHECK_EQ(err, bcase[k].want);
		take(c, x, s1);
		CHECK(snap_same(s0, s1));
		CHECK(check_clean(c));
	}
	/* bad forms are refused when recorded, and the batch stays usable */
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_move(b, w + 4096, w + 8 * G, G, 0), EINVAL);
	CHECK_EQ(vmc_batch_move(b, w, w + 8 * G, G, 1), EINVAL);
	CHECK_EQ(vmc_batch_protect(b, w, G, PROT_WRITE), EINVAL);
	CHECK_EQ(vmc_batch_protect(b, w, G, PROT_EXEC), EINVAL);
	CHECK_EQ(vmc_batch_release(b, w, G, 4), EINVAL);
	CHECK_EQ(vmc_batch_commit_range(b, w + ws, G, 0), EINVAL);
	CHECK_EQ(vmc_batch_commit_range(b, w + 8 * G, G, 0x80), EINVAL);
	CHECK_EQ(vmc_batch_release(b, w + 8 * G, G, 0), 0);   /* uncommitted */
	CHECK_EQ(vmc_batch_commit(b), VMC_EUNCOMMITTED);
	CHECK_EQ(vmc_batch_move(NULL, w, w + G, G, 0), EINVAL);
	CHECK_EQ(vmc_batch_commit(NULL), EINVAL);
	take(c, x, s1);
	CHECK(snap_same(s0, s1));
	CHECK(check_clean(c));
	for (uint32_t i = 0; i < 4; i++)
		CHECK(same(w + i * G, seed_of(x, i)));
	CHECK_EQ(vmc_detach(c, x), 0);
	free(s0);
	free(s1);
	finish(c);
}

/* ------------------------------------------------------------- protect */

TEST(protect_and_probe)
{
	vmc_t *c = make("prot", 1, 64 * MiB, 32 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "prot", 64 * MiB), y = mkvm(c, "other", 64 * MiB);
	REQUIRE(x != VMC_NIL && y != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 4 * G, 0) == 0);
	for (uint32_t i = 0; i < 4; i++)
		fill(at(base, i), seed_of(x, i));

	/* probe: everything it reports */
	vmc_probe_t p = probe(c, (char *)at(base, 1) + 12345);   /* any alignment */
	CHECK_EQ(p.committed, 1);
	CHECK_EQ(p.prot, PROT_READ | PROT_WRITE);
	CHECK_EQ(p.alias, 0);
	CHECK_EQ(p.vm, x);
	CHECK_EQ(p.huge, 0);              /* 4K pool */
	CHECK(p.granule < c->h.ngranules);
	CHECK(p.granule != probe(c, at(base, 0)).granule);
	p = probe(c, at(base, 9));
	CHECK_EQ(p.committed, 0);
	CHECK_EQ(p.prot, PROT_NONE);
	CHECK_EQ(p.vm, x);

	CHECK_EQ(vmc_protect(c, at(base, 1), G, PROT_READ), 0);
	CHECK_EQ(vmc_protect(c, at(base, 2), G, PROT_NONE), 0);
	CHECK_EQ(probe(c, at(base, 1)).prot, PROT_READ);
	CHECK_EQ(probe(c, at(base, 2)).prot, PROT_NONE);
	CHECK_EQ(probe(c, at(base, 2)).committed, 1);
	CHECK(gran_readable(at(base, 1)) && same(at(base, 1), seed_of(x, 1)));
	CHECK(gran_faults(at(base, 2)));
	CHECK(gran_readable(at(base, 3)));
	/* an alias takes the protection of its source; protecting one view
	 * leaves the other */
	CHECK_EQ(vmc_alias(c, at(base, 1), at(base, 10), G), 0);
	CHECK_EQ(probe(c, at(base, 10)).prot, PROT_READ);
	CHECK_EQ(probe(c, at(base, 10)).alias, 1);
	CHECK_EQ(vmc_protect(c, at(base, 10), G, PROT_READ | PROT_WRITE), 0);
	CHECK_EQ(probe(c, at(base, 1)).prot, PROT_READ);
	((volatile uint64_t *)at(base, 10))[5] = ((uint64_t *)at(base, 1))[5];   /* writable */
	/* a move carries the protection */
	CHECK_EQ(vmc_move(c, at(base, 2), at(base, 12), G, 0), 0);
	CHECK_EQ(probe(c, at(base, 12)).prot, PROT_NONE);
	CHECK(gran_faults(at(base, 12)) && gran_faults(at(base, 2)));
	CHECK_EQ(vmc_move(c, at(base, 12), at(base, 2), G, 0), 0);
	CHECK_EQ(vmc_release(c, at(base, 10), G, 0), 0);
	CHECK(check_clean(c));

	/* this worker: across detach and attach (strict mode) and another VM */
	CHECK_EQ(vmc_detach(c, x), 0);
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	CHECK_EQ(probe(c, at(base, 1)).prot, PROT_READ);
	CHECK(gran_readable(at(base, 1)) && gran_faults(at(base, 2)) && gran_readable(at(base, 3)));
	CHECK_EQ(vmc_detach(c, x), 0);
	CHECK_EQ(vmc_attach(c, y, &base), 0);
	CHECK_EQ(vmc_detach(c, y), 0);
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	CHECK(gran_readable(at(base, 1)) && gran_faults(at(base, 2)) && gran_readable(at(base, 3)));
	CHECK(same(at(base, 1), seed_of(x, 1)) && same(at(base, 3), seed_of(x, 3)));
	CHECK_EQ(vmc_detach(c, x), 0);

	/* another worker: the same protection through vmc_probe and faults */
	struct fault_arg wr = { c, x, 1, 1, PROT_READ, 1, seed_of(x, 1) };
	CHECK_EQ(touch(&wr), 128 + SIGSEGV);   /* write to read-only */
	struct fault_arg rd = { c, x, 2, 0, PROT_NONE, 1, 0 };
	CHECK_EQ(touch(&rd), 128 + SIGSEGV);   /* read of PROT_NONE */
	struct fault_arg ok = { c, x, 3, 1, PROT_READ | PROT_WRITE, 1, seed_of(x, 3) };
	CHECK_EQ(touch(&ok), 99);              /* read-write survives */
	REQUIRE(vmc_recover(c, NULL) == 0);

	/* and back to read-write */
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	CHECK_EQ(vmc_protect(c, base, 4 * G, PROT_READ | PROT_WRITE), 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK(same(at(base, i), seed_of(x, i)));
	fill(at(base, 1), seed_of(x, 11));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

/* Lazy mode: the protection holds in a re-attach with no system call
 * (an affinity hit) and in another worker. */
TEST(protect_persists_lazy)
{
	vmc_t *c = make("protl", 0, 64 * MiB, 32 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "protl", 64 * MiB), y = mkvm(c, "protl-y", 64 * MiB);
	REQUIRE(x != VMC_NIL && y != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 3 * G, 0) == 0);
	fill(at(base, 0), seed_of(x, 0));
	CHECK_EQ(vmc_protect(c, base, G, PROT_READ), 0);
	CHECK_EQ(vmc_protect(c, at(base, 1), G, PROT_NONE), 0);
	CHECK_EQ(vmc_detach(c, x), 0);
	uint64_t n0 = vmc_os_calls_total();
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	CHECK_EQ(vmc_os_calls_total() - n0, 0);
	CHECK(gran_readable(base) && gran_faults(at(base, 1)) && gran_readable(at(base, 2)));
	CHECK_EQ(vmc_detach(c, x), 0);
	CHECK_EQ(vmc_attach(c, y, &base), 0);
	CHECK_EQ(vmc_detach(c, y), 0);
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	CHECK(gran_readable(base) && gran_faults(at(base, 1)) && gran_readable(at(base, 2)));
	CHECK_EQ(vmc_detach(c, x), 0);
	struct fault_arg wr = { c, x, 0, 1, PROT_READ, 1, seed_of(x, 0) };
	CHECK_EQ(touch(&wr), 128 + SIGSEGV);
	struct fault_arg rd = { c, x, 1, 0, PROT_NONE, 1, 0 };
	CHECK_EQ(touch(&rd), 128 + SIGSEGV);
	REQUIRE(vmc_recover(c, NULL) == 0);
	CHECK(check_clean(c));
	finish(c);
}

/* ------------------------------------------------- batches: coalescing */

TEST(batch_moves_coalesce)
{
	vmc_config_t cfg;
	test_config(&cfg, 256 * MiB, 256 * MiB);
	cfg.window_size = 256 * MiB;    /* 128 granules */
	cfg.worker_cache = 256;         /* one refill hands out a contiguous run */
	cfg.memory_isolation = 1;
	vmc_t *c = make_cfg("bco", &cfg);
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "bco", 256 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 64 * G, 0) == 0);
	uint32_t runs = 1, g0 = probe(c, base).granule;
	for (uint32_t i = 0; i < 64; i++) {
		uint32_t g = probe(c, at(base, i)).granule;
		runs += i && g != probe(c, at(base, i - 1)).granule + 1;
		((uint64_t *)at(base, i))[0] = seed_of(x, i);
	}
	if (runs != 1)
		fprintf(stderr, "  the 64 committed granules form %u runs in the pool (from %u)\n",
			runs, g0);
	REQUIRE(runs == 1);   /* the precondition for O(1) */

	/* 64 moves, granule i to i + 64, in one batch */
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	for (uint32_t i = 0; i < 64; i++)
		CHECK_EQ(vmc_batch_move(b, at(base, i), at(base, i + 64), G, 0), 0);
	uint64_t mm = calls(VMC_OS_MMAP), mp = calls(VMC_OS_MPROTECT), all = vmc_os_calls_total();
	CHECK_EQ(vmc_batch_commit(b), 0);
	uint64_t batch = calls(VMC_OS_MMAP) - mm + calls(VMC_OS_MPROTECT) - mp;
	fprintf(stderr, "  64 moves in a batch: %llu mmap+mprotect, %llu system calls\n",
		(unsigned long long)batch, (unsigned long long)(vmc_os_calls_total() - all));
	CHECK(batch <= 4);
	CHECK(vmc_os_calls_total() - all <= 4);
	for (uint32_t i = 0; i < 64; i++) {
		CHECK_EQ(((uint64_t *)at(base, i + 64))[0], seed_of(x, i));
		CHECK(!readable(at(base, i)));
	}

	/* the same 64 moves one at a time (back down) */
	mm = calls(VMC_OS_MMAP);
	mp = calls(VMC_OS_MPROTECT);
	for (uint32_t i = 0; i < 64; i++)
		CHECK_EQ(vmc_move(c, at(base, i + 64), at(base, i), G, 0), 0);
	uint64_t single = calls(VMC_OS_MMAP) - mm + calls(VMC_OS_MPROTECT) - mp;
	fprintf(stderr, "  64 single moves: %llu mmap+mprotect\n", (unsigned long long)single);
	CHECK(single >= 64);
	for (uint32_t i = 0; i < 64; i++) {
		CHECK_EQ(((uint64_t *)at(base, i))[0], seed_of(x, i));
		CHECK(!readable(at(base, i + 64)));
	}

	/* a batch of 64 protects of single granules: one mprotect */
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	for (uint32_t i = 0; i < 64; i++)
		CHECK_EQ(vmc_batch_protect(b, at(base, i), G, PROT_READ), 0);
	all = vmc_os_calls_total();
	CHECK_EQ(vmc_batch_commit(b), 0);
	CHECK(vmc_os_calls_total() - all <= 2);
	CHECK(readable(at(base, 63)) && probe(c, at(base, 63)).prot == PROT_READ);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

TEST(batch_commits_coalesce)
{
	vmc_config_t cfg;
	test_config(&cfg, 1 * GiB, 1 * GiB);
	cfg.window_size = 1 * GiB;      /* 512 granules */
	cfg.worker_cache = 1024;
	cfg.memory_isolation = 0;
	vmc_t *c = NULL;
	void *base;
	int err = vmc_create(tname("bcc"), &cfg, &c);
	if (err == ENOSPC || err == ENOMEM) {
		fprintf(stderr, "  skipped: funding 1 GiB of /dev/shm failed: %s\n", vmc_errmsg());
		return;
	}
	REQUIRE(err == 0 && c);
	uint32_t x = mkvm(c, "bcc", 1 * GiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	for (uint32_t i = 0; i < 512; i++)
		CHECK_EQ(vmc_batch_commit_range(b, at(base, i), G, 0), 0);
	uint64_t mm = calls(VMC_OS_MMAP), mp = calls(VMC_OS_MPROTECT);
	CHECK_EQ(vmc_batch_commit(b), 0);
	uint64_t n = calls(VMC_OS_MMAP) - mm + calls(VMC_OS_MPROTECT) - mp;
	uint32_t runs = 1;
	for (uint32_t i = 1; i < 512; i++)
		runs += probe(c, at(base, i)).granule != probe(c, at(base, i - 1)).granule + 1;
	fprintf(stderr, "  512 commits in a batch: %llu mmap+mprotect (%u pool runs)\n",
		(unsigned long long)n, runs);
	CHECK(n <= 4);
	vmc_vm_stats_t vs;
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 512 * G);
	for (uint32_t i = 0; i < 512; i += 17)
		CHECK(readable(at(base, i)) && ((uint64_t *)at(base, i))[0] == 0);
	/* and releasing them in a batch of 512 */
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	for (uint32_t i = 0; i < 512; i++)
		CHECK_EQ(vmc_batch_release(b, at(base, i), G, 0), 0);
	mm = calls(VMC_OS_MMAP);
	mp = calls(VMC_OS_MPROTECT);
	CHECK_EQ(vmc_batch_commit(b), 0);
	CHECK(calls(VMC_OS_MMAP) - mm + calls(VMC_OS_MPROTECT) - mp <= 4);
	CHECK(!readable(at(base, 0)) && !readable(at(base, 511)));
	/* for information: the same range committed again, from the cache */
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	for (uint32_t i = 0; i < 512; i++)
		CHECK_EQ(vmc_batch_commit_range(b, at(base, i), G, 0), 0);
	mm = calls(VMC_OS_MMAP);
	CHECK_EQ(vmc_batch_commit(b), 0);
	fprintf(stderr, "  512 commits again (granules from the cache): %llu mmap\n",
		(unsigned long long)(calls(VMC_OS_MMAP) - mm));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

/* ------------------------------------------------------------- abort */

TEST(batch_abort_leaves_no_trace)
{
	vmc_t *c = make("abrt", 1, 64 * MiB, 32 * MiB);
	struct snap *s0 = malloc(sizeof *s0), *s1 = malloc(sizeof *s1);
	void *base;
	REQUIRE(c && s0 && s1);
	uint32_t x = mkvm(c, "abrt", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 4 * G, 0) == 0);
	for (uint32_t i = 0; i < 4; i++)
		fill(at(base, i), seed_of(x, i));
	take(c, x, s0);
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_commit_range(b, at(base, 8), 4 * G, VMC_COMMIT_POPULATE), 0);
	CHECK_EQ(vmc_batch_move(b, base, at(base, 16), 2 * G, 0), 0);
	CHECK_EQ(vmc_batch_protect(b, at(base, 2), G, PROT_NONE), 0);
	CHECK_EQ(vmc_batch_release(b, at(base, 3), G, 0), 0);
	CHECK_EQ(vmc_batch_release(b, at(base, 8), G, VMC_RELEASE_DEFER), 0);
	uint64_t n0 = vmc_os_calls_total();
	CHECK_EQ(vmc_batch_abort(c, b), 0);
	CHECK_EQ(vmc_os_calls_total() - n0, 0);
	take(c, x, s1);
	CHECK(snap_same(s0, s1));
	for (uint32_t i = 0; i < 4; i++)
		CHECK(same(at(base, i), seed_of(x, i)));
	CHECK_EQ(vmc_batch_abort(c, NULL), EINVAL);
	/* an empty batch commits to nothing */
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_commit(b), 0);
	take(c, x, s1);
	CHECK(snap_same(s0, s1));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	free(s0);
	free(s1);
	finish(c);
}

/* ----------------------------------------------------- deferred release */

static void defer_case(int strict)
{
	vmc_t *c = make(strict ? "dfs" : "dfl", strict, 64 * MiB, 32 * MiB);
	vmc_vm_stats_t vs;
	vmc_stats_t s;
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "defer", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 6 * G, 0) == 0);
	for (uint32_t i = 0; i < 6; i++)
		fill(at(base, i), seed_of(x, i));

	/* kept mapped until vmc_flush */
	CHECK_EQ(vmc_release(c, at(base, 0), G, VMC_RELEASE_DEFER), 0);
	CHECK_EQ(probe(c, at(base, 0)).committed, 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 5 * G);
	int kept = gran_readable(at(base, 0));
	if (!kept)
		fprintf(stderr, "  a range released with VMC_RELEASE_DEFER is unmapped at once\n");
	CHECK(kept);
	if (kept)
		CHECK(same(at(base, 0), seed_of(x, 0)));
	CHECK_EQ(vmc_flush(c), 0);
	CHECK(gran_faults(at(base, 0)));
	CHECK(check_clean(c));

	/* flushed when a batch commits (the batch's own ops apply too) */
	CHECK_EQ(vmc_release(c, at(base, 1), G, VMC_RELEASE_DEFER), 0);
	CHECK(gran_readable(at(base, 1)));
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_commit_range(b, at(base, 10), G, 0), 0);
	CHECK_EQ(vmc_batch_release(b, at(base, 2), G, VMC_RELEASE_DEFER), 0);
	CHECK_EQ(vmc_batch_commit(b), 0);
	CHECK(gran_faults(at(base, 1)));
	CHECK(gran_readable(at(base, 10)));
	/* ... and the batch's own deferred release lasts until the next flush */
	CHECK(gran_readable(at(base, 2)));
	CHECK_EQ(vmc_flush(c), 0);
	CHECK(gran_faults(at(base, 2)));
	CHECK_EQ(vmc_release(c, at(base, 10), G, VMC_RELEASE_DEFER), 0);
	CHECK_EQ(vmc_flush(c), 0);
	CHECK(gran_faults(at(base, 10)));
	CHECK(check_clean(c));

	/* recycled in place: no system call; NOZERO keeps the contents */
	CHECK_EQ(vmc_release(c, at(base, 3), G, VMC_RELEASE_DEFER), 0);
	uint64_t mm = calls(VMC_OS_MMAP), all = vmc_os_calls_total();
	CHECK_EQ(vmc_commit(c, at(base, 3), G, VMC_COMMIT_NOZERO), 0);
	CHECK_EQ(calls(VMC_OS_MMAP) - mm, 0);
	CHECK_EQ(vmc_os_calls_total() - all, 0);
	CHECK(same(at(base, 3), seed_of(x, 3)));
	/* without NOZERO: in place, no mmap, and zero */
	CHECK_EQ(vmc_release(c, at(base, 3), G, VMC_RELEASE_DEFER), 0);
	mm = calls(VMC_OS_MMAP);
	CHECK_EQ(vmc_commit(c, at(base, 3), G, 0), 0);
	CHECK_EQ(calls(VMC_OS_MMAP) - mm, 0);
	CHECK(all_zero(at(base, 3), G));
	fill(at(base, 3), seed_of(x, 3));
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 3 * G);   /* [3,6) */
	CHECK(check_clean(c));

	/* flushed at detach */
	CHECK_EQ(vmc_release(c, at(base, 4), G, VMC_RELEASE_DEFER), 0);
	CHECK(gran_readable(at(base, 4)));
	CHECK_EQ(vmc_detach(c, x), 0);
	CHECK(gran_faults(at(base, 4)));
	if (!strict)   /* lazy: the rest stays mapped, but not the deferred one */
		CHECK(gran_readable(at(base, 3)) && gran_readable(at(base, 5)));
	CHECK_EQ(vmc_attach(c, x, &base), 0);
	CHECK(gran_faults(at(base, 4)));
	CHECK(same(at(base, 3), seed_of(x, 3)) && same(at(base, 5), seed_of(x, 5)));
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 2);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

TEST(deferred_release_strict) { defer_case(1); }
TEST(deferred_release_lazy) { defer_case(0); }

/* A deferred granule recycled at another address: its old address must
 * not keep showing it (after a flush at the latest), or the window shows
 * memory the page map does not have - and, once that granule is released
 * again and reused, memory of another VM. */
struct grab { vmc_t *c; uint32_t y; };

/* Another worker: VM Y takes every granule it can and writes its pattern. */
static int child_grab(void *p)
{
	struct grab *a = p;
	void *base;
	uint32_t n = 0;
	if (vmc_attach(a->c, a->y, &base))
		FAILC(2, "attach Y: %s", vmc_errmsg());
	while (n < 32 && vmc_commit(a->c, at(base, n), G, 0) == 0) {
		fill(at(base, n), seed_of(a->y, 0));
		n++;
	}
	if (vmc_detach(a->c, a->y))
		FAILC(3, "detach Y");
	return n ? 0 : 4;
}

TEST(deferred_recycled_elsewhere_leaves_nothing_behind)
{
	vmc_config_t cfg;
	test_config(&cfg, 32 * MiB, 16 * MiB);
	cfg.worker_cache = 2;
	vmc_t *c = make_cfg("dfe", &cfg);
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "dfe", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 2 * G, 0) == 0);
	fill(at(base, 0), seed_of(x, 0));
	fill(at(base, 1), seed_of(x, 1));
	CHECK_EQ(vmc_release(c, at(base, 0), G, VMC_RELEASE_DEFER), 0);
	CHECK_EQ(vmc_release(c, at(base, 1), G, VMC_RELEASE_DEFER), 0);
	CHECK_EQ(vmc_commit(c, at(base, 5), G, 0), 0);    /* recycles one of them */
	CHECK(all_zero(at(base, 5), G));
	fill(at(base, 5), seed_of(x, 5));
	CHECK_EQ(vmc_flush(c), 0);
	for (uint32_t i = 0; i < wgran(c); i++)
		if (i != 5 && readable(at(base, i))) {
			fprintf(stderr, "  index %u is readable after the flush (not committed)%s\n",
				i, ((uint64_t *)at(base, i))[0] == seed_of(x, 5) ?
				": it shows index 5's granule" : "");
			test_cur_failed_ = 1;
		}
	CHECK(same(at(base, 5), seed_of(x, 5)));
	/* fill this worker's cache, then release [5]: its granule overflows
	 * to the shared free list, where another worker's VM Y takes it */
	CHECK_EQ(vmc_commit(c, at(base, 10), 2 * G, 0), 0);
	CHECK_EQ(vmc_release(c, at(base, 10), 2 * G, 0), 0);
	CHECK_EQ(vmc_release(c, at(base, 5), G, 0), 0);
	struct grab a = { c, mkvm(c, "dfe-Y", 64 * MiB) };
	CHECK(a.y != VMC_NIL);
	CHECK_EQ(run_child(child_grab, &a), 0);
	for (uint32_t i = 0; i < wgran(c); i++)
		if (readable(at(base, i))) {
			fprintf(stderr, "  index %u is readable with X attached and nothing committed%s\n",
				i, ((uint64_t *)at(base, i))[0] == seed_of(a.y, 0) ?
				": it shows VM Y's memory (invariant 1)" : "");
			test_cur_failed_ = 1;
		}
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

/* VMC_COMMIT_NOZERO is a property of one commit: in a batch, the other
 * commits still zero what they get. */
TEST(nozero_applies_to_its_own_commit_only)
{
	vmc_t *c = make("nz1", 1, 64 * MiB, 32 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t x = mkvm(c, "nz1", 64 * MiB);
	REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 2 * G, 0) == 0);
	fill(at(base, 0), seed_of(x, 0));
	fill(at(base, 1), seed_of(x, 1));
	REQUIRE(vmc_release(c, base, 2 * G, 0) == 0);   /* to this worker's cache */
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_commit_range(b, at(base, 4), 2 * G, 0), 0);
	CHECK_EQ(vmc_batch_commit_range(b, at(base, 8), G, VMC_COMMIT_NOZERO), 0);
	CHECK_EQ(vmc_batch_commit(b), 0);
	for (uint32_t i = 4; i < 6; i++)
		if (!all_zero(at(base, i), G)) {
			fprintf(stderr, "  [%u], committed without VMC_COMMIT_NOZERO, was not zeroed "
				"(another commit in the batch had the flag)\n", i);
			test_cur_failed_ = 1;
		}
	CHECK(check_clean(c));
	CHECK_EQ(vmc_detach(c, x), 0);
	finish(c);
}

/* Invariant 4 and NOZERO: a VM created where a destroyed one was (same
 * table slot, same id) is another VM; what the old one left must read as
 * zero even with VMC_COMMIT_NOZERO. */
TEST(nozero_does_not_leak_from_a_destroyed_vm)
{
	vmc_t *c = make("nz2", 1, 64 * MiB, 32 * MiB);
	void *base;
	REQUIRE(c);
	uint32_t a = mkvm(c, "nz2-old", 64 * MiB);
	REQUIRE(a != VMC_NIL && vmc_attach(c, a, &base) == 0);
	REQUIRE(vmc_commit(c, base, 4 * G, 0) == 0);
	for (uint32_t i = 0; i < 4; i++)
		fill(at(base, i), seed_of(a, i));
	REQUIRE(vmc_detach(c, a) == 0);
	REQUIRE(vmc_vm_destroy(c, a) == 0);
	uint32_t b = mkvm(c, "nz2-new", 64 * MiB);
	REQUIRE(b != VMC_NIL && vmc_attach(c, b, &base) == 0);
	CHECK_EQ(vmc_commit(c, base, 4 * G, VMC_COMMIT_NOZERO), 0);
	for (uint32_t i = 0; i < 4; i++)
		if (!all_zero(at(base, i), G)) {
			fprintf(stderr, "  [%u] shows the destroyed VM's memory (new VM id %u, old %u)\n",
				i, b, a);
			test_cur_failed_ = 1;
		}
	CHECK_EQ(vmc_detach(c, b), 0);
	CHECK(check_clean(c));
	finish(c);
}

/* ------------------------------------- invariant 3 with deferred unmaps */

struct inv3 {
	vmc_t *c;
	uint32_t x, z, idx;
	int down[2], up[2];
};

static int say(int fd, char ch)
{
	return write(fd, &ch, 1) == 1 ? 0 : -1;
}

/* The next word on fd; 0 on EOF or after 60 s of silence (a test must
 * fail, not hang, when the other side is stuck). */
static char hear(int fd)
{
	struct pollfd pf = { fd, POLLIN, 0 };
	char ch = 0;
	if (poll(&pf, 1, 60000) != 1)
		return 0;
	return read(fd, &ch, 1) == 1 ? ch : 0;
}

static int has_seed_word(void *base, uint32_t vm, uint32_t i)
{
	uint64_t *g = at(base, i);
	return g[0] == seed_of(vm, i) && g[G / 8 - 1] == (seed_of(vm, i) ^
		((G / 8 - 1) * 0xff51afd7ed558ccdull));
}

/* Worker P: maps X lazily, then watches X's granule idx at its stale
 * address while the parent hands memory to Y. */
static int child_watch(void *p)
{
	struct inv3 *a = p;
	void *base;
	int err;
	close(a->down[1]);
	close(a->up[0]);
	if ((err = vmc_attach(a->c, a->x, &base)))
		FAILC(2, "attach X: %d %s", err, vmc_errmsg());
	for (uint32_t i = 0; i < 4; i++)
		if (!same(at(base, i), seed_of(a->x, i)))
			FAILC(3, "X's granule %u lacks its pattern", i);
	if ((err = vmc_detach(a->c, a->x)))
		FAILC(4, "detach X: %d", err);
	say(a->up[1], 'R');
	if (hear(a->down[0]) != 'C')
		FAILC(5, "no word to start watching");
	uint64_t rounds = 0;
	for (;;) {
		struct pollfd pf = { a->down[0], POLLIN, 0 };
		int stop = poll(&pf, 1, 0) > 0;
		if (!readable(at(base, a->idx)) || !has_seed_word(base, a->x, a->idx)) {
			say(a->up[1], 'F');
			FAILC(6, "X's stale granule %u changed under this worker after %llu "
			      "rounds", a->idx, (unsigned long long)rounds);
		}
		rounds++;
		if (stop)
			break;
	}
	if (hear(a->down[0]) != 'S')
		FAILC(7, "unexpected word");
	if (!same(at(base, a->idx), seed_of(a->x, a->idx))) {
		say(a->up[1], 'F');
		FAILC(8, "X's stale granule lost bytes");
	}
	say(a->up[1], 'K');
	if (hear(a->down[0]) != 'M')
		FAILC(9, "no word to move on");
	if ((err = vmc_attach(a->c, a->z, &base)) || (err = vmc_detach(a->c, a->z)))
		FAILC(10, "attach/detach Z: %d %s", err, vmc_errmsg());
	if (readable(at(base, a->idx)))
		FAILC(11, "the stale mapping survived attaching Z");
	say(a->up[1], 'D');
	if (hear(a->down[0]) != 'E')
		FAILC(12, "no word to end");
	return 0;
}

TEST(deferred_release_waits_in_quarantine)
{
	vmc_t *c = make("inv3", 0, 32 * MiB, 16 * MiB);   /* 8 funded granules */
	vmc_stats_t s;
	void *base;
	REQUIRE(c);
	struct inv3 a = { c, mkvm(c, "inv3-X", 32 * MiB), mkvm(c, "inv3-Z", 32 * MiB), 1,
			  { -1, -1 }, { -1, -1 } };
	uint32_t y = mkvm(c, "inv3-Y", 32 * MiB);
	REQUIRE(a.x != VMC_NIL && a.z != VMC_NIL && y != VMC_NIL);
	REQUIRE(pipe(a.down) == 0 && pipe(a.up) == 0);
	REQUIRE(vmc_attach(c, a.x, &base) == 0);
	REQUIRE(vmc_commit(c, base, 4 * G, 0) == 0);
	for (uint32_t i = 0; i < 4; i++)
		fill(at(base, i), seed_of(a.x, i));
	REQUIRE(vmc_detach(c, a.x) == 0);

	pid_t pid = test_fork(child_watch, &a);
	REQUIRE(pid > 0);
	close(a.down[0]);
	close(a.up[1]);
	CHECK_EQ(hear(a.up[0]), 'R');

	/* X releases granule 1 with a deferred unmap; flush; detach */
	REQUIRE(vmc_attach(c, a.x, &base) == 0);
	uint32_t gold = probe(c, at(base, a.idx)).granule;
	CHECK_EQ(vmc_release(c, at(base, a.idx), G, VMC_RELEASE_DEFER), 0);
	CHECK_EQ(vmc_flush(c), 0);
	CHECK(!readable(at(base, a.idx)));
	CHECK_EQ(vmc_detach(c, a.x), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK(s.quarantined > 0);
	CHECK(check_clean(c));

	/* Y takes everything it can get, writing all over it while P watches */
	say(a.down[1], 'C');
	REQUIRE(vmc_attach(c, y, &base) == 0);
	uint32_t got = 0;
	int err = 0;
	while (got < 16 && !(err = vmc_commit(c, at(base, got), G, 0))) {
		vmc_probe_t p = probe(c, at(base, got));
		if (p.granule == gold)
			fprintf(stderr, "  Y got X's granule %u while P still maps it\n", gold);
		CHECK(p.granule != gold);
		memset(at(base, got), 0x77, G);
		fill(at(base, got), seed_of(y, got));
		got++;
	}
	CHECK_EQ(err, VMC_EFUNDS);
	CHECK_EQ(got, 4);   /* 8 funded - 3 of X - 1 in quarantine */
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK(s.quarantined > 0);
	say(a.down[1], 'S');
	char w = hear(a.up[0]);
	CHECK_EQ(w, 'K');

	/* P moves on: the granule leaves quarantine; Y gets it, zeroed */
	say(a.down[1], 'M');
	CHECK_EQ(hear(a.up[0]), 'D');
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.quarantined, 0);
	CHECK_EQ(vmc_commit(c, at(base, got), G, 0), 0);
	CHECK_EQ(probe(c, at(base, got)).granule, gold);
	CHECK(all_zero(at(base, got), G));
	CHECK_EQ(vmc_detach(c, y), 0);
	say(a.down[1], 'E');
	if (test_cur_failed_)
		kill(pid, SIGKILL);   /* our own child, in case it is stuck */
	CHECK_EQ(test_wait(pid), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 8);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	close(a.down[1]);
	close(a.up[0]);
	finish(c);
}

/* ------------------------------------------------- limit and reserve */

TEST(reserve_fund_and_limit)
{
	vmc_config_t cfg;
	vmc_vm_stats_t vs;
	vmc_stats_t s;
	void *base;
	test_config(&cfg, 32 * MiB, 16 * MiB);   /* 8 funded granules */
	cfg.reserve_size = 4 * MiB;              /* 2 of them in the reserve */
	vmc_t *c = make_cfg("rsv", &cfg);
	REQUIRE(c);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.reserve_size, 4 * MiB);
	uint32_t x = mkvm(c, "rsv-X", 64 * MiB), l = mkvm(c, "rsv-L", 4 * MiB);
	REQUIRE(x != VMC_NIL && l != VMC_NIL);
	REQUIRE(vmc_attach(c, x, &base) == 0);

	/* ordinary commits stop short of the reserve */
	CHECK_EQ(vmc_commit(c, base, 4 * G, 0), 0);
	CHECK_EQ(vmc_commit(c, at(base, 4), 3 * G, 0), VMC_EFUNDS);   /* all or nothing */
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 4 * G);
	CHECK(!readable(at(base, 4)));
	CHECK_EQ(vmc_commit(c, at(base, 4), 2 * G, 0), 0);
	CHECK_EQ(vmc_commit(c, at(base, 6), G, 0), VMC_EFUNDS);
	CHECK(strstr(vmc_errmsg(), "reserve") != NULL);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 6 * G);
	CHECK_EQ(vs.reserve_used, 0);
	CHECK_EQ(vs.hwm, 6 * G);
	for (uint32_t i = 0; i < 6; i++)
		fill(at(base, i), seed_of(x, i));

	/* the reserve: for VMC_COMMIT_RESERVE only; all or nothing */
	CHECK_EQ(vmc_commit(c, at(base, 6), 3 * G, VMC_COMMIT_RESERVE), VMC_EFUNDS);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 6 * G);
	CHECK_EQ(vs.reserve_used, 0);
	CHECK_EQ(vmc_commit(c, at(base, 6), G, VMC_COMMIT_RESERVE), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.reserve_used, G);
	CHECK_EQ(vs.hwm, 7 * G);
	CHECK(all_zero(at(base, 6), G));
	CHECK_EQ(vmc_commit(c, at(base, 7), G, VMC_COMMIT_RESERVE | VMC_COMMIT_NOZERO), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.reserve_used, 2 * G);
	CHECK_EQ(vs.committed, 8 * G);
	CHECK_EQ(vs.hwm, 8 * G);
	/* exhausted: both kinds fail, nothing half-done */
	CHECK_EQ(vmc_commit(c, at(base, 8), G, VMC_COMMIT_RESERVE), VMC_EFUNDS);
	CHECK_EQ(vmc_commit(c, at(base, 8), G, 0), VMC_EFUNDS);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 8);
	CHECK_EQ(s.free + s.cached, 0);
	CHECK(conserved(&s));
	CHECK(check_clean(c));

	/* releasing gives the reserve back first */
	CHECK_EQ(vmc_release(c, at(base, 7), G, 0), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.reserve_used, G);
	CHECK_EQ(vmc_commit(c, at(base, 7), G, 0), VMC_EFUNDS);   /* still in the reserve */
	CHECK_EQ(vmc_release(c, at(base, 6), G, 0), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.reserve_used, 0);
	CHECK_EQ(vs.committed, 6 * G);
	CHECK_EQ(vs.hwm, 8 * G);
	CHECK_EQ(vmc_commit(c, at(base, 6), G, 0), VMC_EFUNDS);
	/* a reserve commit partly inside the budget: only the excess counts */
	CHECK_EQ(vmc_release(c, at(base, 5), G, 0), 0);
	CHECK_EQ(vmc_commit(c, at(base, 5), 3 * G, VMC_COMMIT_RESERVE), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 8 * G);
	CHECK_EQ(vs.reserve_used, 2 * G);
	/* a reserve commit that fails to map gives the reserve back */
	CHECK_EQ(vmc_release(c, at(base, 5), 3 * G, 0), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.reserve_used, 0);
	CHECK_EQ(vmc_commit(c, at(base, 5), G, 0), 0);          /* 6 of 6 */
	vmc_os_inject(VMC_OS_MMAP, 1, ENOMEM);
	CHECK_EQ(vmc_commit(c, at(base, 8), 2 * G, VMC_COMMIT_RESERVE), ENOMEM);
	vmc_os_inject_clear();
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.committed, 6 * G);
	if (vs.reserve_used)
		fprintf(stderr, "  reserve_used is %llu after a reserve commit that failed to map\n",
			(unsigned long long)vs.reserve_used);
	CHECK_EQ(vs.reserve_used, 0);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_commit(c, at(base, 8), 2 * G, VMC_COMMIT_RESERVE), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.reserve_used, 2 * G);
	for (uint32_t i = 0; i < 5; i++)
		CHECK(same(at(base, i), seed_of(x, i)));
	CHECK_EQ(vmc_release(c, base, 2 * G, 0), 0);
	CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
	CHECK_EQ(vs.reserve_used, 0);
	CHECK_EQ(vmc_release(c, at(base, 2), 4 * G, 0), 0);   /* X keeps [8] and [9] */
	CHECK_EQ(vmc_detach(c, x), 0);

	/* the VM limit (2 granules): VMC_ELIMIT, nothing half-done, checked
	 * before the funds */
	REQUIRE(vmc_attach(c, l, &base) == 0);
	CHECK_EQ(vmc_commit(c, base, 3 * G, 0), VMC_ELIMIT);
	CHECK_EQ(vmc_commit(c, base, G, 0), 0);
	fill(base, seed_of(l, 0));
	vmc_batch_t *b;
	REQUIRE(vmc_batch_begin(c, &b) == 0);
	CHECK_EQ(vmc_batch_move(b, base, at(base, 9), G, 0), 0);
	CHECK_EQ(vmc_batch_commit_range(b, at(base, 1), G, 0), 0);
	CHECK_EQ(vmc_batch_commit_range(b, at(base, 2), G, VMC_COMMIT_RESERVE), 0);
	CHECK_EQ(vmc_batch_commit(b), VMC_ELIMIT);
	CHECK_EQ(vmc_vm_stats(c, l, &vs), 0);
	CHECK_EQ(vs.committed, G);
	CHECK_EQ(vs.reserve_used, 0);
	CHECK(same(base, seed_of(l, 0)) && !readable(at(base, 9)) && !readable(at(base, 1)));
	CHECK_EQ(vmc_commit(c, at(base, 1), G, VMC_COMMIT_RESERVE), 0);   /* 2 of 2 */
	CHECK_EQ(vmc_commit(c, at(base, 2), G, VMC_COMMIT_RESERVE), VMC_ELIMIT);
	CHECK_EQ(vmc_vm_stats(c, l, &vs), 0);
	CHECK_EQ(vs.committed, 2 * G);
	CHECK_EQ(vs.hwm, 2 * G);
	CHECK_EQ(vmc_detach(c, l), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 4);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	finish(c);
}

/* ---------------------------------------------- fault injection mid-batch */

/* State before the batch: [0,8) committed with patterns, [7] aliased at
 * [30].  The batch: commit [8,10); move [0,2) -> [12,14); protect [3]
 * read-only; release [4]; protect [5] none; move [6] -> [20]; commit [22];
 * release [30] (the alias); move [7] -> [31]; release [2]
 * deferred. */
struct fi_expect {
	int committed;
	uint32_t from;   /* original index whose granule shows here */
	int prot;
};

static int fi_batch(vmc_t *c, void *base)
{
	vmc_batch_t *b;
	int err;
	if ((err = vmc_batch_begin(c, &b)))
		return err;
	vmc_batch_commit_range(b, at(base, 8), 2 * G, 0);
	vmc_batch_move(b, at(base, 0), at(base, 12), 2 * G, 0);
	vmc_batch_protect(b, at(base, 3), G, PROT_READ);
	vmc_batch_release(b, at(base, 4), G, 0);
	vmc_batch_protect(b, at(base, 5), G, PROT_NONE);
	vmc_batch_move(b, at(base, 6), at(base, 20), G, 0);
	vmc_batch_commit_range(b, at(base, 22), G, 0);
	vmc_batch_release(b, at(base, 30), G, 0);
	vmc_batch_move(b, at(base, 7), at(base, 31), G, 0);
	vmc_batch_release(b, at(base, 2), G, VMC_RELEASE_DEFER);
	return vmc_batch_commit(b);
}

static void fi_expected(struct fi_expect e[32], int ok)
{
	for (uint32_t i = 0; i < 32; i++)
		e[i] = (struct fi_expect){ 0, 0, PROT_READ | PROT_WRITE };
	e[12] = (struct fi_expect){ 1, 0, PROT_READ | PROT_WRITE };
	e[13] = (struct fi_expect){ 1, 1, PROT_READ | PROT_WRITE };
	e[3] = (struct fi_expect){ 1, 3, PROT_READ };
	e[5] = (struct fi_expect){ 1, 5, PROT_NONE };
	e[20] = (struct fi_expect){ 1, 6, PROT_READ | PROT_WRITE };
	e[31] = (struct fi_expect){ 1, 7, PROT_READ | PROT_WRITE };
	if (ok) {
		e[8] = e[9] = e[22] = (struct fi_expect){ 1, VMC_NIL, PROT_READ | PROT_WRITE };
	}
}

static void injection_case(enum vmc_os_entry entry)
{
	vmc_t *c = make(entry == VMC_OS_MMAP ? "fim" : "fip", 1, 64 * MiB, 64 * MiB);
	vmc_stats_t s;
	void *base;
	REQUIRE(c);
	int done = 0, points = 0;
	for (uint32_t k = 1; k <= 40 && !done && !test_cur_failed_; k++) {
		char name[32];
		snprintf(name, sizeof name, "fi-%u", k);
		uint32_t x = mkvm(c, name, 64 * MiB), g[8];
		REQUIRE(x != VMC_NIL && vmc_attach(c, x, &base) == 0);
		REQUIRE(vmc_commit(c, base, 8 * G, 0) == 0);
		for (uint32_t i = 0; i < 8; i++) {
			fill(at(base, i), seed_of(x, i));
			g[i] = probe(c, at(base, i)).granule;
		}
		REQUIRE(vmc_alias(c, at(base, 7), at(base, 30), G) == 0);

		vmc_os_inject(entry, k, ENOMEM);
		uint64_t before = vmc_os_calls(entry);
		int err = fi_batch(c, base);
		int hit = vmc_os_calls(entry) - before >= k;
		vmc_os_inject_clear();
		if (err == 0) {
			done = 1;   /* past the last call of that kind */
			CHECK(!hit);
		} else {
			points++;
			if (err != ENOMEM)
				fprintf(stderr, "  k=%u: batch returned %d (%s): %s\n", k, err,
					vmc_strerror(err), vmc_errmsg());
			CHECK_EQ(err, ENOMEM);
		}
		if (!check_clean(c)) {
			fprintf(stderr, "  k=%u: vmc_check after the injected failure\n", k);
			test_cur_failed_ = 1;
		}
		CHECK_EQ(vmc_flush(c), 0);
		CHECK(check_clean(c));
		/* the page map: the batch's result, without the new commits if
		 * it failed; the window: what the page map says */
		struct fi_expect e[32];
		fi_expected(e, err == 0);
		uint32_t committed = 0;
		for (uint32_t i = 0; i < 32; i++) {
			vmc_probe_t p = probe(c, at(base, i));
			if (p.committed != e[i].committed) {
				fprintf(stderr, "  k=%u err=%d: index %u committed %d, expected %d\n",
					k, err, i, p.committed, e[i].committed);
				test_cur_failed_ = 1;
				continue;
			}
			int rd = readable(at(base, i));
			if (!p.committed) {
				if (rd) {
					fprintf(stderr, "  k=%u: uncommitted index %u is readable\n", k, i);
					test_cur_failed_ = 1;
				}
				continue;
			}
			committed++;
			CHECK_EQ(p.prot, e[i].prot);
			if (e[i].from != VMC_NIL)
				CHECK_EQ(p.granule, g[e[i].from]);
			CHECK_EQ(rd, e[i].prot != PROT_NONE);
			if (rd && e[i].from != VMC_NIL && !same(at(base, i), seed_of(x, e[i].from))) {
				fprintf(stderr, "  k=%u: index %u lost its contents\n", k, i);
				test_cur_failed_ = 1;
			}
			if (rd && e[i].from == VMC_NIL && !all_zero(at(base, i), G)) {
				fprintf(stderr, "  k=%u: new index %u is not zero\n", k, i);
				test_cur_failed_ = 1;
			}
		}
		vmc_vm_stats_t vs;
		CHECK_EQ(vmc_vm_stats(c, x, &vs), 0);
		CHECK_EQ(vs.committed, (uint64_t)committed * G);
		REQUIRE(vmc_stats(c, &s) == 0);
		CHECK_EQ(s.used, committed);
		CHECK(conserved(&s));
		CHECK_EQ(vmc_detach(c, x), 0);
		CHECK_EQ(vmc_vm_destroy(c, x), 0);
		REQUIRE(vmc_stats(c, &s) == 0);
		CHECK_EQ(s.used, 0);   /* no granule leaked */
		CHECK(conserved(&s));
		CHECK_EQ(s.free + s.cached, s.granules - s.unfunded);
		CHECK(check_clean(c));
	}
	CHECK(done);
	fprintf(stderr, "  %s: failed at each of the batch's calls in turn, %d of them\n",
		vmc_os_entry_name(entry), points);
	CHECK(points >= (entry == VMC_OS_MMAP ? 3 : 2));
	finish(c);
}

TEST(injected_mmap_failure_mid_batch) { injection_case(VMC_OS_MMAP); }
TEST(injected_mprotect_failure_mid_batch) { injection_case(VMC_OS_MPROTECT); }

/* Fresh commits that the same batch aliases, releases or protects, with
 * the mapping failing: the undo must not leave an alias of a granule it
 * gave back, nor give one back twice. */
struct undo { vmc_t *c; int variant; };

static int child_fresh_undo(void *p)
{
	struct undo *u = p;
	vmc_t *c = u->c;
	uint32_t x;
	void *base;
	vmc_check_report_t r;
	int err;
	uint32_t d;
	if ((err = vmc_vm_create(c, "undo-d", 64 * MiB, &d)) ||
	    (err = vmc_vm_create(c, "undo", 64 * MiB, &x)))
		FAILC(2, "setup: %d %s", err, vmc_errmsg());
	/* dirty the granules through another VM first */
	if (vmc_attach(c, d, &base) || vmc_commit(c, base, 8 * G, 0))
		FAILC(2, "dirty: %s", vmc_errmsg());
	memset(base, 0x5a, 8 * G);
	if (vmc_release(c, base, 8 * G, 0) || vmc_detach(c, d) || vmc_attach(c, x, &base))
		FAILC(2, "setup: %s", vmc_errmsg());
	for (int variant = u->variant; variant == u->variant; variant++) {
		vmc_batch_t *b;
		if (vmc_batch_begin(c, &b))
			FAILC(3, "batch_begin");
		vmc_batch_commit_range(b, at(base, 8), G, 0);
		if (variant == 0) {
			/* commit [8], move [8] -> [9] (index follows), then commit [8] again */
			vmc_batch_move(b, at(base, 8), at(base, 9), G, 0);
			vmc_batch_commit_range(b, at(base, 8), G, 0);
		} else if (variant == 1) {
			/* commit [8], release it, commit [10] (whose mapping fails) */
			vmc_batch_release(b, at(base, 8), G, 0);
			vmc_batch_commit_range(b, at(base, 10), G, 0);
		} else {
			vmc_batch_release(b, at(base, 8), G, VMC_RELEASE_DEFER);
			vmc_batch_commit_range(b, at(base, 8), G, 0);
		}
		vmc_os_inject(VMC_OS_MMAP, 1, ENOMEM);
		err = vmc_batch_commit(b);
		vmc_os_inject_clear();
		if (err != ENOMEM && err != 0)
			FAILC(4, "variant %d: batch returned %d", variant, err);
		if (vmc_check(c, &r))
			FAILC(5, "variant %d: vmc_check: %s", variant, r.first);
		vmc_vm_stats_t vs;
		vmc_stats_t s;
		vmc_vm_stats(c, x, &vs);
		vmc_stats(c, &s);
		if (s.used != vs.committed / G || vs.committed > 64 * MiB)
			FAILC(6, "variant %d: used %u, committed %llu", variant, s.used,
			      (unsigned long long)vs.committed);
		if (vmc_flush(c))
			FAILC(7, "flush");
		for (uint32_t i = 0; i < 32; i++) {
			vmc_probe_t pr;
			vmc_probe(c, at(base, i), &pr);
			if (pr.committed != readable(at(base, i)))
				FAILC(8, "variant %d: index %u committed %d, readable %d", variant,
				      i, pr.committed, readable(at(base, i)));
		}
		/* empty again for the next variant */
		for (uint32_t i = 0; i < 32; i++) {
			vmc_probe_t pr;
			vmc_probe(c, at(base, i), &pr);
			if (pr.committed && vmc_release(c, at(base, i), G, 0))
				FAILC(9, "release %u: %s", i, vmc_errmsg());
		}
	}
	if (vmc_check(c, &r))
		FAILC(10, "vmc_check: %s", r.first);
	return 0;
}

static void undo_case(int variant)
{
	vmc_t *c = make("undo", 1, 64 * MiB, 32 * MiB);
	REQUIRE(c);
	struct undo u = { c, variant };
	int code = run_child(child_fresh_undo, &u);
	if (code)
		fprintf(stderr, "  variant %d: child ended with %d\n", variant, code);
	CHECK_EQ(code, 0);
	REQUIRE(vmc_recover(c, NULL) == 0);
	finish(c);
}

TEST(injected_failure_undo_commit_move_commit) { undo_case(0); }
TEST(injected_failure_undo_commit_release) { undo_case(1); }
TEST(injected_failure_undo_commit_defer_recommit) { undo_case(2); }

/* Batches that commit a granule (which must be zeroed: it held another
 * VM's data) and in the same batch make it read-only, inaccessible, or
 * release it again.  The zeroing must not write through a mapping that
 * the batch took away. */
struct zb { vmc_t *c; int variant; };

static int child_zero_in_batch(void *p)
{
	struct zb *a = p;
	vmc_t *c = a->c;
	uint32_t dirty, x;
	void *base;
	int err;
	char name[32];
	snprintf(name, sizeof name, "zb-d-%d", a->variant);
	if ((err = vmc_vm_create(c, name, 64 * MiB, &dirty)))
		FAILC(2, "vm_create: %s", vmc_errmsg());
	snprintf(name, sizeof name, "zb-x-%d", a->variant);
	if ((err = vmc_vm_create(c, name, 64 * MiB, &x)))
		FAILC(2, "vm_create: %s", vmc_errmsg());
	/* dirty all funded granules through another VM */
	if (vmc_attach(c, dirty, &base) || vmc_commit(c, base, 8 * G, 0))
		FAILC(3, "dirty: %s", vmc_errmsg());
	memset(base, 0x5a, 8 * G);
	if (vmc_release(c, base, 8 * G, 0) || vmc_detach(c, dirty))
		FAILC(4, "undirty: %s", vmc_errmsg());
	if (vmc_attach(c, x, &base))
		FAILC(5, "attach: %s", vmc_errmsg());
	vmc_batch_t *b;
	if (vmc_batch_begin(c, &b))
		FAILC(6, "begin");
	vmc_batch_commit_range(b, at(base, 4), 2 * G, 0);
	switch (a->variant) {
	case 0: vmc_batch_protect(b, at(base, 4), 2 * G, PROT_READ); break;
	case 1: vmc_batch_protect(b, at(base, 4), 2 * G, PROT_NONE); break;
	case 2: vmc_batch_release(b, at(base, 4), G, 0); break;
	case 3:
	case 4: vmc_batch_release(b, at(base, 4), G, VMC_RELEASE_DEFER); break;
	}
	if ((err = vmc_batch_commit(b)))
		FAILC(7, "batch: %d %s", err, vmc_errmsg());
	if (a->variant == 4) {
		/* the deferred granule was never zeroed: recycling it with NOZERO
		 * must not show the other VM's bytes (invariant 4) */
		if ((err = vmc_commit(c, at(base, 4), G, VMC_COMMIT_NOZERO)))
			FAILC(14, "commit NOZERO: %d %s", err, vmc_errmsg());
		if (!all_zero(at(base, 4), G))
			FAILC(15, "[4] recycled with NOZERO shows another VM's memory");
	}
	if (vmc_protect(c, at(base, 5), G, PROT_READ | PROT_WRITE))
		FAILC(8, "protect: %s", vmc_errmsg());
	if (!readable(at(base, 5)) || !all_zero(at(base, 5), G))
		FAILC(9, "variant %d: the new granule at [5] is not zero", a->variant);
	if (a->variant < 2) {
		if (vmc_protect(c, at(base, 4), G, PROT_READ | PROT_WRITE))
			FAILC(10, "protect: %s", vmc_errmsg());
		if (!all_zero(at(base, 4), G))
			FAILC(11, "variant %d: the new granule at [4] is not zero", a->variant);
	}
	vmc_check_report_t r;
	if (vmc_check(c, &r))
		FAILC(12, "vmc_check: %s", r.first);
	if (vmc_detach(c, x))
		FAILC(13, "detach");
	return 0;
}

static void zero_in_batch_case(int variant)
{
	vmc_t *c = make("zb", 1, 32 * MiB, 16 * MiB);
	REQUIRE(c);
	struct zb a = { c, variant };
	int code = run_child(child_zero_in_batch, &a);
	if (code)
		fprintf(stderr, "  variant %d: child ended with %d%s\n", variant, code,
			code == 128 + SIGSEGV ? " (SIGSEGV inside the library)" : "");
	CHECK_EQ(code, 0);
	REQUIRE(vmc_recover(c, NULL) == 0);
	finish(c);
}

TEST(batch_commit_then_read_only) { zero_in_batch_case(0); }
TEST(batch_commit_then_no_access) { zero_in_batch_case(1); }
TEST(batch_commit_then_release) { zero_in_batch_case(2); }
TEST(batch_commit_then_release_deferred) { zero_in_batch_case(3); }
TEST(batch_commit_release_deferred_then_nozero) { zero_in_batch_case(4); }

/* The mapping fails for good while a VM is attached (every mmap fails, so
 * the best-effort remap fails too and the window is left empty).  The
 * next commit must not assume the window shows the VM: it may fail or
 * succeed, but not crash, and after vmc_flush the window must match the
 * page map, with new memory reading zero. */
static int failing;
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

static void *flaky_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
	if (failing) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return real_mmap(a, n, prot, flags, fd, off);
}

static int child_window_lost(void *p)
{
	vmc_t *c = p;
	uint32_t x, d;
	void *base;
	int err;
	if (vmc_vm_create(c, "wl-d", 64 * MiB, &d) || vmc_vm_create(c, "wl-x", 64 * MiB, &x))
		FAILC(2, "vm_create: %s", vmc_errmsg());
	if (vmc_attach(c, d, &base) || vmc_commit(c, base, 4 * G, 0))
		FAILC(3, "dirty: %s", vmc_errmsg());
	memset(base, 0x5a, 4 * G);
	if (vmc_release(c, base, 4 * G, 0) || vmc_detach(c, d))
		FAILC(4, "undirty: %s", vmc_errmsg());
	if (vmc_attach(c, x, &base) || vmc_commit(c, base, G, 0))
		FAILC(5, "attach: %s", vmc_errmsg());
	fill(base, seed_of(x, 0));
	real_mmap = vmc_os.mmap;
	vmc_os.mmap = flaky_mmap;
	failing = 1;
	err = vmc_commit(c, at(base, 1), G, 0);
	failing = 0;
	if (err != ENOMEM)
		FAILC(6, "the failing commit returned %d", err);
	/* the window may be empty now; the page map still has [0] */
	err = vmc_commit(c, at(base, 2), G, 0);
	fprintf(stderr, "  child: commit after the lost window: %d\n", err);
	err = vmc_flush(c);
	vmc_os.mmap = real_mmap;
	if (err)
		FAILC(7, "flush: %d %s", err, vmc_errmsg());
	if (!readable(base) || !same(base, seed_of(x, 0)))
		FAILC(8, "[0] lost after the flush");
	vmc_probe_t pr;
	vmc_probe(c, at(base, 2), &pr);
	if (pr.committed && (!readable(at(base, 2)) || !all_zero(at(base, 2), G)))
		FAILC(9, "[2] committed but not mapped, or not zero");
	if (!pr.committed && readable(at(base, 2)))
		FAILC(10, "[2] not committed but readable");
	vmc_check_report_t r;
	if (vmc_check(c, &r))
		FAILC(11, "vmc_check: %s", r.first);
	return 0;
}

TEST(commit_after_window_lost)
{
	vmc_t *c = make("wl", 1, 32 * MiB, 16 * MiB);
	REQUIRE(c);
	int code = run_child(child_window_lost, c);
	if (code)
		fprintf(stderr, "  child ended with %d%s\n", code,
			code == 128 + SIGABRT ? " (SIGABRT: an assertion in the library)" : "");
	CHECK_EQ(code, 0);
	REQUIRE(vmc_recover(c, NULL) == 0);
	finish(c);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* a child that died early must not kill us */
	RUN(move_keeps_contents_strict);
	RUN(move_keeps_contents_lazy);
	RUN(move_old_range_faults_in_other_worker);
	RUN(alias_shares_contents_strict);
	RUN(alias_shares_contents_lazy);
	RUN(alias_release_both_views_in_one_call);
	RUN(overlapping_move_keeps_contents);
	RUN(errors_change_nothing);
	RUN(protect_and_probe);
	RUN(protect_persists_lazy);
	RUN(batch_moves_coalesce);
	RUN(batch_commits_coalesce);
	RUN(batch_abort_leaves_no_trace);
	RUN(deferred_release_strict);
	RUN(deferred_release_lazy);
	RUN(deferred_recycled_elsewhere_leaves_nothing_behind);
	RUN(nozero_applies_to_its_own_commit_only);
	RUN(nozero_does_not_leak_from_a_destroyed_vm);
	RUN(deferred_release_waits_in_quarantine);
	RUN(reserve_fund_and_limit);
	RUN(injected_mmap_failure_mid_batch);
	RUN(injected_mprotect_failure_mid_batch);
	RUN(injected_failure_undo_commit_move_commit);
	RUN(injected_failure_undo_commit_release);
	RUN(injected_failure_undo_commit_defer_recommit);
	RUN(batch_commit_then_read_only);
	RUN(batch_commit_then_no_access);
	RUN(batch_commit_then_release);
	RUN(batch_commit_then_release_deferred);
	RUN(batch_commit_release_deferred_then_nozero);
	RUN(commit_after_window_lost);
	destroy_all();
	return test_done();
}
