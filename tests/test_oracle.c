/*
 * test_oracle.c - invariant 11 proven by the leak oracle (oracle.h): an
 * operation cut short, by a kill at any instruction or by any system call
 * that fails, never lets a VM read bytes that another VM wrote.
 *
 * Every round starts from the same world: VM S (three tagged granules,
 * one read-only, one aliased), VM X (it tagged six granules and released
 * five, so the free list's head holds X's bytes, marked to be zeroed), VM
 * Y (two tagged granules: the subject of most operations), and for the
 * reclaim operation VM O, orphaned by a worker killed inside a commit
 * (its page map holds a granule that was never zeroed).  Each operation
 * (commit, release, move, alias, two batches, clone, reclaim, balloon,
 * destroy, attach/detach, regions; and a commit in a world funded on
 * demand, larger than the free list, so that it funds in the middle) then
 * runs
 *  - in a child killed at a sample of every instruction it executes
 *    (ptstep.h), and
 *  - in this process with the N-th call of each system-call entry it
 *    makes failing, for every N (SQLite's way);
 * and after each, the oracle recovers, reclaims orphans keeping their
 * memory, checks the tables, scans every VM for foreign tags and probes
 * fresh commits for zeros.  Any foreign tag fails the test and names the
 * operation, the kill point or system call, and the VM the bytes came
 * from.  VMC_TEST_BUDGET sets the kill points per operation;
 * VMC_ORACLE_OPS=clone,balloon runs only the operations whose names
 * contain one of those words.
 */
#include "meta.h"
#include "os/os.h"
#include "oracle.h"
#include "ptstep.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define G test_granule()

struct world {
	char name[64];
	vmc_t *c;
	uint32_t s, x, y, o;
	int isolation;
	int orphan;       /* make VM O */
	int ondemand;     /* fund_policy ondemand: nothing funded but what the
			   * world committed, in batches of two granules */
};

/* ------------------------------------------------------------ the world */

/* Attach vm, commit [i, i+n) and tag it with `tag`'s name, detach. */
static int fill(vmc_t *c, uint32_t vm, const char *tag, uint32_t i, uint32_t n)
{
	char *base;
	int err;

	if ((err = vmc_attach(c, vm, (void **)&base)))
		return err;
	if (!(err = vmc_commit(c, base + (size_t)i * G, (size_t)n * G, 0)))
		for (uint32_t k = i; k < i + n; k++)
			oracle_fill(base + (size_t)k * G, G, oracle_tag(tag));
	vmc_detach(c, vm);
	return err;
}

/* A worker that dies inside a commit of VM O: O is orphaned with a granule
 * in its page map that nothing zeroed. */
static int die_in_commit(void *p)
{
	struct world *w = p;
	char *base;

	if (vmc_attach(w->c, w->o, (void **)&base))
		return 2;
	vmc_os_inject(VMC_OS_MMAP, 1, VMC_OS_KILL_SELF);
	vmc_commit(w->c, base + G, G, 0);
	return 3;
}

static int make_world(struct world *w)
{
	vmc_config_t cfg;
	char *base;

	snprintf(w->name, sizeof w->name, "%s", test_name("or"));
	test_config(&cfg, 64 * MiB, w->ondemand ? 0 : 64 * MiB);
	cfg.fund_policy = w->ondemand ? VMC_FUND_ONDEMAND : VMC_FUND_UPFRONT;
	cfg.fund_batch = 2 * G;
	cfg.memory_isolation = w->isolation;
	cfg.worker_cache = 4;
	cfg.region_space = 16 * MiB;
	w->c = NULL;
	if (vmc_create(w->name, &cfg, &w->c))
		return -1;
	vmc_t *c = w->c;
	if ((w->s = mkvm(c, "S", 16 * MiB)) == VMC_NIL || (w->x = mkvm(c, "X", 16 * MiB)) == VMC_NIL ||
	    (w->y = mkvm(c, "Y", 32 * MiB)) == VMC_NIL)
		return -1;
	if (fill(c, w->s, "S", 0, 3) || vmc_attach(c, w->s, (void **)&base) ||
	    vmc_protect(c, base + 2 * G, G, PROT_READ) || vmc_alias(c, base, base + 4 * G, G) ||
	    vmc_detach(c, w->s))
		return -1;
	if (fill(c, w->x, "X", 0, 6) || vmc_attach(c, w->x, (void **)&base) ||
	    vmc_release(c, base + G, 5 * G, 0) || vmc_detach(c, w->x))
		return -1;
	if (fill(c, w->y, "Y", 0, 2))
		return -1;
	/* X's bytes to the head of the shared free list, where a worker's
	 * refill takes them */
	if (drain_cache(c))
		return -1;
	if (w->orphan) {
		vmc_vm_stats_t vs;
		if ((w->o = mkvm(c, "O", 16 * MiB)) == VMC_NIL || fill(c, w->o, "O", 0, 1) ||
		    test_wait(test_fork(die_in_commit, w)) != 128 + SIGKILL ||
		    vmc_recover(c, NULL) || vmc_vm_stats(c, w->o, &vs) ||
		    vs.state != VMC_VM_ORPHANED)
			return -1;
	}
	return 0;
}

static void end_world(struct world *w)
{
	if (w->c) {
		if (vmc_attached(w->c) != VMC_NO_VM)
			vmc_detach(w->c, vmc_attached(w->c));
		vmc_close(w->c);
	}
	vmc_destroy(w->name);
	w->c = NULL;
}

/* ---------------------------------------------------------- operations */

/* Attach VM vm, run the engine call f on it, detach.  The VM stays
 * detached whatever fails. */
static int with(struct world *w, uint32_t vm, int (*f)(struct world *, char *))
{
	char *base;
	int err = vmc_attach(w->c, vm, (void **)&base);

	if (err)
		return err;
	err = f(w, base);
	int e2 = vmc_detach(w->c, vm);
	return err ? err : e2;
}

static int do_commit(struct world *w, char *base)
{
	int err = vmc_commit(w->c, base + 2 * G, 4 * G, 0);
	if (!err)
		for (uint32_t k = 2; k < 6; k++)
			oracle_fill(base + (size_t)k * G, G, oracle_tag("Y"));
	return err;
}

/* more than the free list holds (X's bytes first): the rest is funded on
 * demand, in the middle of the commit */
static int do_commit_more(struct world *w, char *base)
{
	int err = vmc_commit(w->c, base + 2 * G, 12 * G, 0);
	if (!err)
		for (uint32_t k = 2; k < 14; k++)
			oracle_fill(base + (size_t)k * G, G, oracle_tag("Y"));
	return err;
}

static int do_release(struct world *w, char *base)
{
	return vmc_release(w->c, base, 2 * G, 0);
}

static int do_move(struct world *w, char *base)
{
	return vmc_move(w->c, base, base + 8 * G, 2 * G, 0);
}

static int do_alias(struct world *w, char *base)
{
	return vmc_alias(w->c, base, base + 10 * G, 2 * G);
}

/* defect 2's shape: a commit that the window cannot zero */
static int do_batch_protect(struct world *w, char *base)
{
	vmc_batch_t *b;
	int err = vmc_batch_begin(w->c, &b);

	if (err)
		return err;
	if ((err = vmc_batch_commit_range(b, base + 2 * G, 2 * G, 0)) ||
	    (err = vmc_batch_protect(b, base + 2 * G, 2 * G, PROT_READ))) {
		vmc_batch_abort(w->c, b);
		return err;
	}
	return vmc_batch_commit(b);
}

static int do_batch_mix(struct world *w, char *base)
{
	vmc_batch_t *b;
	int err = vmc_batch_begin(w->c, &b);

	if (err)
		return err;
	if ((err = vmc_batch_commit_range(b, base + 2 * G, 3 * G, 0)) ||
	    (err = vmc_batch_move(b, base + 2 * G, base + 6 * G, G, 0)) ||
	    (err = vmc_batch_release(b, base + 3 * G, G, 0)) ||
	    (err = vmc_batch_release(b, base + G, G, VMC_RELEASE_DEFER)) ||
	    (err = vmc_batch_commit_range(b, base + G, G, VMC_COMMIT_NOZERO)) ||
	    (err = vmc_batch_move(b, base + 4 * G, base + 12 * G, G, 0))) {
		vmc_batch_abort(w->c, b);
		return err;
	}
	return vmc_batch_commit(b);
}

static int do_touch(struct world *w, char *base)
{
	(void)w;
	oracle_fill(base, G, oracle_tag("Y"));
	return 0;
}

static int op_commit(struct world *w) { return with(w, w->y, do_commit); }
static int op_commit_more(struct world *w) { return with(w, w->y, do_commit_more); }
static int op_release(struct world *w) { return with(w, w->y, do_release); }
static int op_move(struct world *w) { return with(w, w->y, do_move); }
static int op_alias(struct world *w) { return with(w, w->y, do_alias); }
static int op_batch_protect(struct world *w) { return with(w, w->y, do_batch_protect); }
static int op_batch_mix(struct world *w) { return with(w, w->y, do_batch_mix); }

/* defect 1's shape: the clone takes X's granules from the free list */
static int op_clone(struct world *w)
{
	uint32_t id;
	return vmc_vm_clone(w->c, w->s, "S2@S", &id);
}

static int op_reclaim_keep(struct world *w)
{
	return vmc_vm_reclaim(w->c, w->o, VMC_RECLAIM_KEEP);
}

static int op_reclaim_reset(struct world *w)
{
	return vmc_vm_reclaim(w->c, w->o, VMC_RECLAIM_RESET);
}

static int op_balloon(struct world *w)
{
	int err = vmc_balloon(w->c, 16 * MiB, NULL);
	return err ? err : vmc_balloon(w->c, 0, NULL);
}

static int op_destroy(struct world *w)
{
	return vmc_vm_destroy(w->c, w->y);
}

static int op_switch(struct world *w)
{
	int err = with(w, w->y, do_touch);
	return err ? err : with(w, w->s, do_release);
}

static int op_region(struct world *w)
{
	void *p;
	int err = vmc_region_create(w->c, "R", 2 * G, 0, &p);

	if (err)
		return err;
	oracle_fill(p, G, oracle_tag("R"));
	oracle_fill((char *)p + G, G, oracle_tag("R"));
	vmc_region_close(w->c, p);
	return vmc_region_destroy(w->c, "R");
}

static const struct opdef {
	const char *name;
	int (*fn)(struct world *);
	int isolation, orphan, ondemand;
} ops[] = {
	{ "commit",          op_commit,        1, 0, 0 },
	{ "commit (lazy)",   op_commit,        0, 0, 0 },
	{ "commit (on demand)", op_commit_more, 1, 0, 1 },
	{ "release",         op_release,       1, 0, 0 },
	{ "release (lazy)",  op_release,       0, 0, 0 },
	{ "move",            op_move,          1, 0, 0 },
	{ "alias",           op_alias,         1, 0, 0 },
	{ "batch commit+protect", op_batch_protect, 1, 0, 0 },
	{ "batch mix (lazy)", op_batch_mix,    0, 0, 0 },
	{ "clone",           op_clone,         1, 0, 0 },
	{ "reclaim keep",    op_reclaim_keep,  1, 1, 0 },
	{ "reclaim reset",   op_reclaim_reset, 0, 1, 0 },
	{ "balloon",         op_balloon,       1, 0, 0 },
	{ "destroy (lazy)",  op_destroy,       0, 0, 0 },
	{ "attach/detach",   op_switch,        1, 0, 0 },
	{ "region",          op_region,        1, 0, 0 },
};
#define NOPS (sizeof ops / sizeof ops[0])

/* Is operation k selected by $VMC_ORACLE_OPS? */
static int selected(size_t k)
{
	const char *want = getenv("VMC_ORACLE_OPS");
	char buf[256], *save = NULL;

	if (!want)
		return 1;
	snprintf(buf, sizeof buf, "%s", want);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strstr(ops[k].name, t))
			return 1;
	return 0;
}

/* ------------------------------------------------------- the crash loop */

struct sweep_arg { struct world w; const struct opdef *op; };

static int sw_prepare(void *p)
{
	struct sweep_arg *a = p;
	a->w.isolation = a->op->isolation;
	a->w.orphan = a->op->orphan;
	a->w.ondemand = a->op->ondemand;
	return make_world(&a->w);
}

static int sw_pre(void *p)
{
	struct sweep_arg *a = p;
	return vmc_worker_slot(a->w.c) == VMC_NO_SLOT;   /* join before the tracing */
}

static int sw_op(void *p)
{
	struct sweep_arg *a = p;
	return a->op->fn(&a->w);
}

/* On demand: after the scan (whose probe funded the rest of the pool on
 * demand), the pool file's memory is exactly the funded granules: a fund
 * cut short left no memory behind an unfunded granule. */
static int funds_whole(struct world *w, char *why, size_t n)
{
	vmc_stats_t s;
	if (!w->ondemand)
		return 0;
	if (vmc_stats(w->c, &s))
		return snprintf(why, n, "stats: %s", vmc_errmsg()), -1;
	if (pool_file_bytes(w->c) != s.funded_bytes)
		return snprintf(why, n, "the pool file holds %llu bytes, %llu are funded",
				(unsigned long long)pool_file_bytes(w->c),
				(unsigned long long)s.funded_bytes), -1;
	return 0;
}

static int sw_after(void *p, char *why, size_t n)
{
	struct sweep_arg *a = p;
	return oracle_scan(a->w.c, why, n) || funds_whole(&a->w, why, n) ? -1 : 0;
}

static void sw_cleanup(void *p)
{
	struct sweep_arg *a = p;
	end_world(&a->w);
}

TEST(crash_loop)
{
	long kills = 0, failures = 0;

	for (size_t k = 0; k < NOPS; k++) {
		if (!selected(k))
			continue;
		struct sweep_arg a = { .op = &ops[k] };
		struct kill_sweep sw = { ops[k].name, sw_prepare, sw_pre, sw_op, sw_after,
					 sw_cleanup, &a, 25 };
		struct kill_result r;
		if (kill_sweep(&sw, &r)) {
			fprintf(stderr, "  ptrace single-step not usable here: crash loop skipped\n");
			return;
		}
		CHECK(r.kills > 0);
		CHECK(r.missed <= r.kills / 10 + 1);
		kills += r.kills;
		failures += r.failures;
	}
	fprintf(stderr, "  crash loop: %ld kills, %ld with a foreign tag or an inconsistency\n",
		kills, failures);
	CHECK_EQ(failures, 0);
}

/* ------------------------------------------------------- the fault loop */

static int entry_errno(int e)
{
	switch (e) {
	case VMC_OS_MMAP: case VMC_OS_MUNMAP: case VMC_OS_MPROTECT: case VMC_OS_MADVISE:
		return ENOMEM;
	case VMC_OS_FALLOCATE:
		return ENOSPC;
	case VMC_OS_OPEN: case VMC_OS_MEMFD_CREATE:
		return EMFILE;
	}
	return EIO;
}

TEST(fault_loop)
{
	long points = 0, failures = 0;
	char why[256];

	for (size_t k = 0; k < NOPS; k++) {
		if (!selected(k))
			continue;
		struct world w = { .isolation = ops[k].isolation, .orphan = ops[k].orphan,
				   .ondemand = ops[k].ondemand };
		uint64_t calls[VMC_OS_NENTRIES];
		int err;

		/* the calls the operation makes, entry by entry */
		REQUIRE(make_world(&w) == 0);
		for (int e = 0; e < VMC_OS_NENTRIES; e++)
			calls[e] = vmc_os_calls((enum vmc_os_entry)e);
		err = ops[k].fn(&w);
		for (int e = 0; e < VMC_OS_NENTRIES; e++)
			calls[e] = vmc_os_calls((enum vmc_os_entry)e) - calls[e];
		CHECK_EQ(err, 0);
		if (oracle_scan(w.c, why, sizeof why) || funds_whole(&w, why, sizeof why)) {
			fprintf(stderr, "  %s, no failure injected: %s\n", ops[k].name, why);
			failures++;
		}
		end_world(&w);
		for (int e = 0; e < VMC_OS_NENTRIES; e++)
			for (uint64_t nth = 1; nth <= calls[e]; nth++) {
				if (make_world(&w)) {
					CHECK(!"a fresh world");
					end_world(&w);
					continue;
				}
				vmc_os_inject((enum vmc_os_entry)e, nth, entry_errno(e));
				ops[k].fn(&w);
				vmc_os_inject_clear();
				points++;
				if (oracle_scan(w.c, why, sizeof why) || funds_whole(&w, why, sizeof why)) {
					if (failures < 10)
						fprintf(stderr, "  %s, %s #%llu failing: %s\n", ops[k].name,
							vmc_os_entry_name((enum vmc_os_entry)e),
							(unsigned long long)nth, why);
					failures++;
				}
				end_world(&w);
			}
	}
	fprintf(stderr, "  fault loop: %ld injection points, %ld with a foreign tag or an "
		"inconsistency\n", points, failures);
	CHECK(points > 40 || getenv("VMC_ORACLE_OPS"));
	CHECK_EQ(failures, 0);
}

int main(void)
{
	RUN(fault_loop);
	RUN(crash_loop);
	destroy_all();
	return test_done();
}
