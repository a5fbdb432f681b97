/*
 * test_cutshort.c - operations cut short by a kill or a failed system call,
 * one test per defect found by an attack on the isolation promise (the
 * leak oracle, test_oracle.c, covers them all again, systematically):
 *  - a clone killed before it copied anything leaves the copy with granules
 *    that read zero after a KEEP reclaim, not their previous user's bytes;
 *  - a commit whose zeroing cannot be done (a failed mmap) leaves nothing
 *    of the previous user readable;
 *  - a worker killed between charging the commit budget and filling the
 *    page map leaks no budget: after five such kills every funded granule
 *    can still be committed.
 */
#include "meta.h"
#include "os/os.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define G test_granule()

/* VM X fills n granules with 0xCC and releases them to the shared free
 * list: the next refill of any worker takes them, marked to be zeroed. */
static uint32_t dirty(vmc_t *c, uint32_t n)
{
	uint32_t x = mkvm(c, "X", 32 * MiB);
	char *base;

	if (x == VMC_NIL || vmc_attach(c, x, (void **)&base) || vmc_commit(c, base, n * G, 0))
		return VMC_NIL;
	memset(base, 0xcc, n * G);
	if (vmc_release(c, base, n * G, 0) || vmc_detach(c, x) || drain_cache(c))
		return VMC_NIL;
	return x;
}

/* Count the pages of [p, p+len) that hold a 0xCC byte at their start. */
static size_t cc_pages(const char *p, size_t len)
{
	size_t n = 0;
	for (size_t off = 0; off < len; off += 4096)
		n += (unsigned char)p[off] == 0xcc;
	return n;
}

struct clone_arg { vmc_t *c; uint32_t s; };

static int clone_and_die(void *p)
{
	struct clone_arg *a = p;
	uint32_t id;

	if (vmc_worker_slot(a->c) == VMC_NO_SLOT)
		return 2;
	vmc_os_inject(VMC_OS_MMAP, 1, VMC_OS_KILL_SELF);   /* its first mmap: the copy */
	vmc_vm_clone(a->c, a->s, "S2", &id);
	return 3;
}

TEST(clone_cut_short_shows_no_third_vm)
{
	vmc_t *c = make("cl", 1, 64 * MiB, 64 * MiB);
	vmc_vm_stats_t vs;
	uint32_t s2;
	char *base;

	REQUIRE(c);
	struct clone_arg a = { c, mkvm(c, "S", 16 * MiB) };
	REQUIRE(a.s != VMC_NIL && commit_fill(c, a.s, 0, 8) == 0);
	REQUIRE(dirty(c, 8) != VMC_NIL);
	CHECK_EQ(test_wait(test_fork(clone_and_die, &a)), 128 + SIGKILL);
	CHECK_EQ(vmc_recover(c, NULL), 0);
	REQUIRE(vmc_vm_find(c, "S2", &s2) == 0);
	CHECK(vmc_vm_stats(c, s2, &vs) == 0 && vs.state == VMC_VM_ORPHANED);
	CHECK_EQ(vmc_vm_reclaim(c, s2, VMC_RECLAIM_KEEP), 0);
	CHECK_EQ(vmc_vm_reclaim(c, a.s, VMC_RECLAIM_KEEP), 0);   /* the source was held too */
	REQUIRE(vmc_attach(c, s2, (void **)&base) == 0);
	size_t leaked = 0;
	for (uint32_t i = 0; i < 8; i++) {
		vmc_probe_t pr;
		if (vmc_probe(c, at(base, i), &pr) == 0 && pr.committed)
			leaked += cc_pages(at(base, i), G);
	}
	CHECK_EQ(leaked, 0);
	CHECK_EQ(vmc_detach(c, s2), 0);
	CHECK(check_clean(c));
	finish(c);
}

TEST(failed_zeroing_shows_nothing)
{
	for (uint64_t nth = 1; nth <= 3; nth++) {
		vmc_t *c = make("fz", 1, 64 * MiB, 64 * MiB);
		char *base;
		vmc_batch_t *b;

		REQUIRE(c);
		uint32_t y = mkvm(c, "Y", 16 * MiB);
		REQUIRE(y != VMC_NIL && dirty(c, 1) != VMC_NIL);
		REQUIRE(vmc_attach(c, y, (void **)&base) == 0);
		REQUIRE(vmc_batch_begin(c, &b) == 0);
		REQUIRE(vmc_batch_commit_range(b, base, G, 0) == 0);
		REQUIRE(vmc_batch_protect(b, base, G, PROT_READ) == 0);
		vmc_os_inject(VMC_OS_MMAP, nth, ENOMEM);
		int err = vmc_batch_commit(b);
		vmc_os_inject_clear();
		vmc_flush(c);
		vmc_probe_t pr;
		CHECK_EQ(vmc_probe(c, base, &pr), 0);
		/* the zeroing failed: nothing happened; the mapping failed after
		 * it: committed, zero (vmc.h, "system errors") */
		CHECK(err == 0 || err == ENOMEM);
		if (pr.committed)
			CHECK(readable(base) && all_zero(base, G));
		else
			CHECK(err && !readable(base));
		CHECK_EQ(vmc_detach(c, y), 0);
		CHECK(check_clean(c));
		finish(c);
	}
}

struct charge_arg { vmc_t *c; uint32_t vm; };

/* Die after charging the budget and taking granules, before the page map
 * changes: at the mmap that zeroes a granule the window cannot zero. */
static int charge_and_die(void *p)
{
	struct charge_arg *a = p;
	vmc_batch_t *b;
	char *base;

	if (vmc_attach(a->c, a->vm, (void **)&base) || vmc_batch_begin(a->c, &b) ||
	    vmc_batch_commit_range(b, base, 2 * G, 0) ||
	    vmc_batch_protect(b, base, 2 * G, PROT_READ))
		return 2;
	vmc_os_inject(VMC_OS_MMAP, 1, VMC_OS_KILL_SELF);
	vmc_batch_commit(b);
	return 3;
}

TEST(killed_inside_a_charge_leaks_no_budget)
{
	vmc_t *c = make("ch", 1, 32 * MiB, 32 * MiB);
	char *base;

	REQUIRE(c);
	struct charge_arg a = { c, mkvm(c, "V", 32 * MiB) };
	REQUIRE(a.vm != VMC_NIL && dirty(c, 4) != VMC_NIL);
	for (int k = 0; k < 5; k++) {
		CHECK_EQ(test_wait(test_fork(charge_and_die, &a)), 128 + SIGKILL);
		CHECK_EQ(vmc_recover(c, NULL), 0);
		CHECK_EQ(vmc_vm_reclaim(c, a.vm, VMC_RECLAIM_RESET), 0);
		CHECK(check_clean(c));
	}
	/* all 16 funded granules can be committed (X holds none) */
	REQUIRE(vmc_attach(c, a.vm, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, 16 * G, 0), 0);
	CHECK_EQ(vmc_detach(c, a.vm), 0);
	CHECK(check_clean(c));
	finish(c);
}

int main(void)
{
	RUN(clone_cut_short_shows_no_third_vm);
	RUN(failed_zeroing_shows_nothing);
	RUN(killed_inside_a_charge_leaks_no_budget);
	destroy_all();
	return test_done();
}
