/*
 * test_recovery.c - a worker killed with SIGKILL (invariant 6), with real
 * processes: at each system call inside attach, detach, commit, release and
 * destroy (vmc_os_inject(..., VMC_OS_KILL_SELF) makes the child kill itself
 * exactly there), while holding the pool lock, and plainly while attached.
 *
 * After each death the parent recovers the slot and checks that:
 *  - the tables are consistent (vmc_check) and the granules add up;
 *  - the VM the worker held is orphaned (state, pid) and refuses attach
 *    with VMC_EORPHANED;
 *  - vmc_vm_reclaim(KEEP) gives it back with its data intact, and nothing
 *    else is visible in it (a granule the dead worker was committing reads
 *    as zero, never as another VM's data); RESET empties it and every
 *    granule comes back;
 *  - pid reuse: a slot whose pid now belongs to another live process is
 *    still recognised as dead (the start time differs).
 */
#include "pool.h"
#include "vm.h"
#include "window.h"
#include "worker.h"
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

/* Granules in all VMs' page maps of this container. */
static uint32_t committed_total(vmc_t *c)
{
	uint32_t n = 0;
	for (uint32_t v = 0; v < c->h.max_vms; v++) {
		vmc_vm_stats_t vs;
		if (vmc_vm_stats(c, v, &vs) == 0)
			n += (uint32_t)(vs.committed / G);
	}
	return n;
}

/* Used granules equal committed ones, the counts add up, check is clean. */
static int accounted(vmc_t *c)
{
	vmc_stats_t s;
	int ok = check_clean(c);
	if (vmc_stats(c, &s))
		return 0;
	ok &= conserved(&s);
	if (s.used != committed_total(c)) {
		fprintf(stderr, "  %u granules used, %u committed in VMs\n", s.used,
			committed_total(c));
		ok = 0;
	}
	return ok;
}

/* --------------------------------------------------------- kill points */

enum point {
	P_ATTACH_MMAP,        /* attach of A, at the nth mmap of the remap          */
	P_REATTACH_MPROTECT,  /* strict re-attach of unchanged A, at its mprotect   */
	P_DETACH_MPROTECT,    /* strict detach, at the revoking mprotect            */
	P_PLAIN,              /* kill -9 from outside while attached                */
	P_COMMIT_MMAP,        /* commit of a dirty recycled granule, at its mmap    */
	P_RELEASE_MMAP,       /* release of index 1, at the mmap that clears it     */
	P_DESTROY_MMAP,       /* vmc_vm_destroy(A), at its first mmap              */
	P_COMMIT_DRY_OPEN,    /* commit that drains the pool and looks for dead workers */
	P_COUNT
};

static const char *const point_name[P_COUNT] = {
	"attach/mmap", "re-attach/mprotect", "detach/mprotect", "plain kill -9",
	"commit/mmap", "release/mmap", "destroy/mmap", "commit(dry)/open",
};

struct kp {
	vmc_t *c;
	uint32_t a, d, y;     /* A: the victim VM; D: dirty donor; Y: reap case */
	enum point point;
	int nth;
	int ready[2];
};

#define SURVIVED 50

static int kill_child(void *p)
{
	struct kp *k = p;
	vmc_t *c = k->c;
	void *base;
	int err = 0;

	if (vmc_worker_slot(c) == VMC_NO_SLOT)
		return 2;
	switch (k->point) {
	case P_ATTACH_MMAP:
		vmc_os_inject(VMC_OS_MMAP, (uint64_t)k->nth, VMC_OS_KILL_SELF);
		err = vmc_attach(c, k->a, &base);
		break;
	case P_REATTACH_MPROTECT:
		if (vmc_attach(c, k->a, &base) || vmc_detach(c, k->a))
			return 3;
		vmc_os_inject(VMC_OS_MPROTECT, (uint64_t)k->nth, VMC_OS_KILL_SELF);
		err = vmc_attach(c, k->a, &base);
		break;
	case P_DETACH_MPROTECT:
		if (vmc_attach(c, k->a, &base))
			return 3;
		vmc_os_inject(VMC_OS_MPROTECT, (uint64_t)k->nth, VMC_OS_KILL_SELF);
		err = vmc_detach(c, k->a);
		break;
	case P_PLAIN:
		err = vmc_attach(c, k->a, &base);
		if (write(k->ready[1], &err, sizeof err) != sizeof err || err)
			return 3;
		for (;;)
			pause();
	case P_COMMIT_MMAP:
		/* D's granule, full of 0xdd, goes to this worker's cache ... */
		if (vmc_attach(c, k->d, &base) || vmc_commit(c, base, G, 0))
			return 3;
		memset(base, 0xdd, G);
		if (vmc_release(c, base, G, 0) || vmc_detach(c, k->d))
			return 4;
		/* ... and is A's next commit: die before it is zeroed */
		if (vmc_attach(c, k->a, &base))
			return 5;
		vmc_os_inject(VMC_OS_MMAP, (uint64_t)k->nth, VMC_OS_KILL_SELF);
		err = vmc_commit(c, at(base, 8), G, 0);
		break;
	case P_RELEASE_MMAP:
		if (vmc_attach(c, k->a, &base))
			return 3;
		vmc_os_inject(VMC_OS_MMAP, (uint64_t)k->nth, VMC_OS_KILL_SELF);
		err = vmc_release(c, at(base, 1), G, 0);
		break;
	case P_DESTROY_MMAP:
		if (vmc_attach(c, k->a, &base) || vmc_detach(c, k->a))
			return 3;
		vmc_os_inject(VMC_OS_MMAP, (uint64_t)k->nth, VMC_OS_KILL_SELF);
		err = vmc_vm_destroy(c, k->a);
		break;
	case P_COMMIT_DRY_OPEN:
		if (vmc_attach(c, k->a, &base))
			return 3;
		vmc_os_inject(VMC_OS_OPEN, (uint64_t)k->nth, VMC_OS_KILL_SELF);
		err = vmc_commit(c, at(base, 8), 5 * G, 0);
		break;
	default:
		return 6;
	}
	vmc_os_inject_clear();
	if (err && err != VMC_EFUNDS)
		fprintf(stderr, "  %s #%d: survived with %d (%s)\n", point_name[k->point],
			k->nth, err, vmc_errmsg());
	return SURVIVED;
}

/* One kill case; returns 1 if the child died at the injection point, 0 if
 * it got through (nth is past the last call of that kind), -1 on a setup
 * failure. */
static int kill_case(int strict, enum point point, int nth, int how)
{
	vmc_t *c = make("kill", strict, 64 * MiB, point == P_COMMIT_DRY_OPEN ? 16 * MiB : 32 * MiB);
	vmc_stats_t s;
	void *base;
	int died = -1;
	if (!c)
		return -1;
	struct kp k = { c, mkvm(c, "victim-A", 32 * MiB), mkvm(c, "donor-D", 32 * MiB),
			mkvm(c, "reap-Y", 32 * MiB), point, nth, { -1, -1 } };
	uint32_t victim = k.a;
	/* A: two runs, indices 0-1 and 4-5 */
	if (k.a == VMC_NIL || k.d == VMC_NIL || k.y == VMC_NIL ||
	    commit_fill(c, k.a, 0, 2) || commit_fill(c, k.a, 4, 2))
		goto out;
	if (point != P_COMMIT_DRY_OPEN && commit_fill(c, k.y, 0, 1))
		goto out;
	if (pipe(k.ready))
		goto out;

	pid_t pid = test_fork(kill_child, &k);
	if (point == P_PLAIN) {
		int err = -1;
		CHECK(read(k.ready[0], &err, sizeof err) == sizeof err);
		CHECK_EQ(err, 0);
		kill(pid, SIGKILL);
	}
	int code = test_wait(pid);
	close(k.ready[0]);
	close(k.ready[1]);
	if (code == SURVIVED) {
		died = 0;
		goto out;
	}
	CHECK_EQ(code, 128 + SIGKILL);
	if (code != 128 + SIGKILL)
		goto out;
	died = 1;

	/* the dead worker's slot is recovered; its VM is orphaned */
	vmc_recover_report_t rr;
	vmc_vm_stats_t vs;
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	CHECK_EQ(vmc_vm_stats(c, victim, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ORPHANED);
	CHECK_EQ(vs.pid, pid);
	CHECK_EQ(vmc_attach(c, victim, &base), VMC_EORPHANED);
	CHECK(strstr(vmc_errmsg(), "reclaim") != NULL);
	CHECK_EQ(vmc_attached(c), VMC_NO_VM);
	CHECK(accounted(c));
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.workers, 1);
	/* other VMs are untouched and usable */
	if (point != P_COMMIT_DRY_OPEN && victim != k.y) {
		CHECK_EQ(vmc_attach(c, k.y, &base), 0);
		CHECK(has_pat(base, k.y, 0));
		CHECK_EQ(vmc_detach(c, k.y), 0);
	}

	/* reclaim */
	CHECK_EQ(vmc_vm_reclaim(c, victim, how), 0);
	CHECK_EQ(vmc_vm_stats(c, victim, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_IDLE);
	CHECK_EQ(vmc_vm_reclaim(c, victim, how), EINVAL);    /* not orphaned any more */
	CHECK_EQ(vmc_attach(c, victim, &base), 0);
	if (how == VMC_RECLAIM_RESET) {
		CHECK_EQ(vs.committed, 0);
		for (uint32_t i = 0; i < 32; i++)
			CHECK(!readable(at(base, i)));
	} else {
		/* what must be there, and what may be (the operation was cut short) */
		uint32_t must = victim == k.y ? 1u : 0x33u, may = 0;
		if (point == P_RELEASE_MMAP)
			must &= ~2u, may = 2u;
		if (point == P_DESTROY_MMAP)
			may = must, must = 0;
		for (uint32_t i = 0; i < 32; i++) {
			int r = readable(at(base, i));
			if (must & (1u << i)) {
				CHECK(r && has_pat(base, victim, i));
			} else if (r && !((may & (1u << i)) && has_pat(base, victim, i))) {
				/* a granule the dead worker was committing: zero,
				 * never anything another VM left in it */
				if (!all_zero(at(base, i), G)) {
					fprintf(stderr, "  index %u of the reclaimed VM holds "
						"%#llx, not zero\n", i,
						(unsigned long long)*(uint64_t *)at(base, i));
					CHECK(!"reclaimed VM shows another VM's data");
				}
			}
		}
		CHECK(vs.committed >= (uint64_t)__builtin_popcount(must) * G);
	}
	CHECK_EQ(vmc_detach(c, victim), 0);
	/* gone: the granules come back */
	CHECK_EQ(vmc_vm_destroy(c, victim), 0);
	CHECK(accounted(c));
	CHECK_EQ(vmc_recover(c, NULL), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.quarantined, 0);
	CHECK_EQ(s.workers, 1);
	CHECK(accounted(c));
out:
	if (died < 0)
		fprintf(stderr, "  setup of %s #%d failed: %s\n", point_name[point], nth,
			vmc_errmsg());
	finish(c);
	return died;
}

/* Kill at the 1st, 2nd, ... call of the point until the operation gets
 * through without reaching it; both reclaim modes. */
static void kill_points(int strict, enum point point, int at_least)
{
	for (int how = VMC_RECLAIM_KEEP; how <= VMC_RECLAIM_RESET; how++) {
		int nth, r = 1;
		for (nth = 1; nth <= 16 && r == 1; nth++) {
			int f0 = test_cur_failed_;
			r = kill_case(strict, point, nth, how);
			if (test_cur_failed_ && !f0)
				fprintf(stderr, "  ^ %s, %s, killed at call #%d, reclaim %s\n",
					strict ? "strict" : "lazy", point_name[point], nth,
					how == VMC_RECLAIM_KEEP ? "KEEP" : "RESET");
		}
		CHECK(r >= 0);
		CHECK(nth - 2 >= at_least);   /* it died at least that many times */
	}
}

TEST(kill_in_attach_mmap_strict) { kill_points(1, P_ATTACH_MMAP, 2); }
TEST(kill_in_attach_mmap_lazy) { kill_points(0, P_ATTACH_MMAP, 2); }
TEST(kill_in_reattach_mprotect_strict) { kill_points(1, P_REATTACH_MPROTECT, 1); }
TEST(kill_in_detach_mprotect_strict) { kill_points(1, P_DETACH_MPROTECT, 1); }
TEST(kill_while_attached_strict) { kill_case(1, P_PLAIN, 1, VMC_RECLAIM_KEEP);
				   kill_case(1, P_PLAIN, 1, VMC_RECLAIM_RESET); }
TEST(kill_while_attached_lazy) { kill_case(0, P_PLAIN, 1, VMC_RECLAIM_KEEP);
				 kill_case(0, P_PLAIN, 1, VMC_RECLAIM_RESET); }
TEST(kill_in_commit_mmap_strict) { kill_points(1, P_COMMIT_MMAP, 1); }
TEST(kill_in_commit_mmap_lazy) { kill_points(0, P_COMMIT_MMAP, 1); }
/* the container-wide budget may refuse the commit before the pool runs
 * dry (no call to kill at), which is fine: nothing may break either way */
TEST(kill_in_commit_dry_pool) { kill_points(1, P_COMMIT_DRY_OPEN, 0); }
TEST(kill_in_release_mmap_strict) { kill_points(1, P_RELEASE_MMAP, 1); }
TEST(kill_in_release_mmap_lazy) { kill_points(0, P_RELEASE_MMAP, 1); }
TEST(kill_in_destroy_mmap_strict) { kill_points(1, P_DESTROY_MMAP, 1); }
TEST(kill_in_destroy_mmap_lazy) { kill_points(0, P_DESTROY_MMAP, 1); }

/* An orphan can be destroyed without reclaiming it first; reclaim of a VM
 * attached by a live worker is refused. */
static int child_hold(void *p)
{
	struct kp *k = p;
	void *base;
	int err = vmc_attach(k->c, k->a, &base);
	if (write(k->ready[1], &err, sizeof err) != sizeof err || err)
		return 3;
	for (;;)
		pause();
}

TEST(orphan_destroy_and_reclaim_refusals)
{
	vmc_t *c = make("orph", 1, 64 * MiB, 32 * MiB);
	vmc_vm_stats_t vs;
	void *base;
	int err = -1;
	REQUIRE(c);
	struct kp k = { c, mkvm(c, "orph-A", 32 * MiB), VMC_NIL, VMC_NIL, P_PLAIN, 0, { -1, -1 } };
	REQUIRE(k.a != VMC_NIL && commit_fill(c, k.a, 0, 3) == 0);
	REQUIRE(pipe(k.ready) == 0);
	pid_t pid = test_fork(child_hold, &k);
	REQUIRE(read(k.ready[0], &err, sizeof err) == sizeof err && err == 0);
	/* attached by a live worker: not orphaned, nothing to reclaim */
	err = vmc_vm_reclaim(c, k.a, VMC_RECLAIM_KEEP);
	CHECK(err == EBUSY || err == EINVAL);
	err = vmc_vm_reclaim(c, k.a, VMC_RECLAIM_RESET);
	CHECK(err == EBUSY || err == EINVAL);
	CHECK_EQ(vmc_vm_destroy(c, k.a), EBUSY);
	CHECK_EQ(vmc_vm_stats(c, k.a, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ATTACHED);
	CHECK_EQ(vs.committed, 3 * G);
	/* dead but not yet recovered: still attached as far as the table knows */
	kill(pid, SIGKILL);
	CHECK_EQ(test_wait(pid), 128 + SIGKILL);
	vmc_worker_stats_t ws;
	CHECK_EQ(vmc_worker_stats(c, 1, &ws), 0);
	CHECK_EQ(ws.pid, pid);
	CHECK_EQ(ws.alive, 0);
	vmc_stats_t s;
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.dead_workers, 1);
	/* an attach notices the dead holder, recovers it and says what to do
	 * (not EBUSY naming a dead pid) */
	CHECK_EQ(vmc_attach(c, k.a, &base), VMC_EORPHANED);
	CHECK(errmsg_has("orphaned") && errmsg_has("vmc_vm_reclaim") && errmsg_has("died"));
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.dead_workers, 0);
	CHECK_EQ(vmc_recover(c, NULL), 0);
	CHECK_EQ(vmc_vm_stats(c, k.a, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ORPHANED);
	CHECK_EQ(vs.pid, pid);
	CHECK_EQ(vmc_attach(c, k.a, &base), VMC_EORPHANED);
	CHECK_EQ(vmc_attach(c, k.a, &base), VMC_EORPHANED);   /* and stays so */
	/* destroy needs no reclaim */
	CHECK_EQ(vmc_vm_destroy(c, k.a), 0);
	CHECK_EQ(vmc_vm_stats(c, k.a, &vs), ENOENT);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, 0);
	CHECK_EQ(s.dead_workers, 0);
	CHECK(accounted(c));
	close(k.ready[0]);
	close(k.ready[1]);
	finish(c);
}

/* Several workers die at once, each holding a VM; one recover finds all. */
TEST(many_workers_die_at_once)
{
	vmc_t *c = make("many", 0, 128 * MiB, 64 * MiB);
	pid_t pids[6];
	struct kp k[6];
	void *base;
	REQUIRE(c);
	for (int i = 0; i < 6; i++) {
		char nm[16];
		snprintf(nm, sizeof nm, "m%d", i);
		k[i] = (struct kp){ c, mkvm(c, nm, 8 * MiB), VMC_NIL, VMC_NIL, P_PLAIN, 0,
				    { -1, -1 } };
		REQUIRE(k[i].a != VMC_NIL && commit_fill(c, k[i].a, (uint32_t)i, 2) == 0);
		REQUIRE(pipe(k[i].ready) == 0);
		pids[i] = test_fork(child_hold, &k[i]);
	}
	for (int i = 0; i < 6; i++) {
		int err = -1;
		CHECK(read(k[i].ready[0], &err, sizeof err) == sizeof err && err == 0);
	}
	for (int i = 0; i < 6; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < 6; i++)
		CHECK_EQ(test_wait(pids[i]), 128 + SIGKILL);
	vmc_recover_report_t rr;
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 6);
	for (int i = 0; i < 6; i++) {
		vmc_vm_stats_t vs;
		CHECK_EQ(vmc_vm_stats(c, k[i].a, &vs), 0);
		CHECK_EQ(vs.state, VMC_VM_ORPHANED);
		CHECK_EQ(vs.pid, pids[i]);
	}
	/* reclaim the first, attach it, and reclaim the others meanwhile:
	 * that does not disturb what this worker has attached */
	CHECK_EQ(vmc_vm_reclaim(c, k[0].a, VMC_RECLAIM_KEEP), 0);
	CHECK_EQ(vmc_attach(c, k[0].a, &base), 0);
	for (int i = 1; i < 6; i++)
		CHECK_EQ(vmc_vm_reclaim(c, k[i].a, i % 2 ? VMC_RECLAIM_RESET : VMC_RECLAIM_KEEP), 0);
	vmc_worker_stats_t ws;
	CHECK_EQ(vmc_attached(c), k[0].a);
	CHECK_EQ(vmc_worker_stats(c, vmc_worker_slot(c), &ws), 0);
	CHECK_EQ(ws.attached, k[0].a);
	CHECK(readable(base) && has_pat(base, k[0].a, 0) && has_pat(base, k[0].a, 1));
	CHECK_EQ(vmc_detach(c, k[0].a), 0);
	for (int i = 0; i < 6; i++) {
		vmc_vm_stats_t vs;
		CHECK_EQ(vmc_vm_stats(c, k[i].a, &vs), 0);
		CHECK_EQ(vs.state, VMC_VM_IDLE);
		CHECK_EQ(vmc_attach(c, k[i].a, &base), 0);
		for (uint32_t j = 0; j < 8; j++) {
			int in = !(i % 2) && (j == (uint32_t)i || j == (uint32_t)i + 1);
			CHECK_EQ(readable(at(base, j)), in);
			if (in)
				CHECK(has_pat(base, k[i].a, j));
		}
		CHECK_EQ(vmc_detach(c, k[i].a), 0);
		close(k[i].ready[0]);
		close(k[i].ready[1]);
	}
	CHECK(accounted(c));
	finish(c);
}

/* -------------------------------------------------------- pid reuse */

/* Start time of pid in clock ticks; 0 if it is gone. */
static uint64_t start_of(pid_t pid)
{
	uint64_t st = 0;
	return vmc_os_proc_start(pid, &st) ? 0 : st;
}

static int child_attach_and_exit(void *p)
{
	struct kp *k = p;
	void *base;
	uint32_t slot = vmc_worker_slot(k->c);
	if (vmc_attach(k->c, k->a, &base))
		return 2;
	if (write(k->ready[1], &slot, sizeof slot) != sizeof slot)
		return 3;
	return 0;   /* exits with the VM attached */
}

static int child_sleeper(void *p)
{
	struct kp *k = p;
	uint32_t slot = vmc_worker_slot(k->c);
	if (write(k->ready[1], &slot, sizeof slot) != sizeof slot)
		return 3;
	for (;;)
		pause();
}

TEST(pid_reuse_uses_start_time)
{
	vmc_t *c = make("pidre", 1, 64 * MiB, 32 * MiB);
	vmc_worker_stats_t ws;
	vmc_vm_stats_t vs;
	uint32_t dead_slot = VMC_NIL, live_slot = VMC_NIL;
	REQUIRE(c);
	struct kp k = { c, mkvm(c, "reuse-A", 32 * MiB), VMC_NIL, VMC_NIL, P_PLAIN, 0, { -1, -1 } };
	REQUIRE(k.a != VMC_NIL && commit_fill(c, k.a, 0, 2) == 0);
	REQUIRE(pipe(k.ready) == 0);

	CHECK(start_of(getpid()) != 0);
	pid_t dead = test_fork(child_attach_and_exit, &k);
	CHECK(read(k.ready[0], &dead_slot, sizeof dead_slot) == sizeof dead_slot);
	CHECK_EQ(test_wait(dead), 0);
	CHECK_EQ(start_of(dead), 0);
	usleep(30000);   /* start times count clock ticks: let one pass */
	pid_t live = test_fork(child_sleeper, &k);
	CHECK(read(k.ready[0], &live_slot, sizeof live_slot) == sizeof live_slot);
	REQUIRE(dead_slot < 16 && live_slot < 16 && dead_slot != live_slot);

	/* the dead worker's pid is "reused" by a live process: pretend the
	 * kernel handed it to the sleeper (same pid, other start time) */
	uint64_t dead_start = c->slots[dead_slot].start_time;
	CHECK(dead_start != 0 && dead_start < start_of(live));
	__atomic_store_n(&c->slots[dead_slot].pid, live, __ATOMIC_RELEASE);
	CHECK_EQ(vmc_worker_stats(c, dead_slot, &ws), 0);
	CHECK_EQ(ws.pid, live);
	CHECK_EQ(ws.alive, 0);                 /* the pid is alive, the worker is not */
	CHECK_EQ(vmc_worker_stats(c, live_slot, &ws), 0);
	CHECK_EQ(ws.alive, 1);
	/* an exactly matching start time would make it alive */
	c->slots[dead_slot].start_time = start_of(live);
	CHECK_EQ(vmc_worker_stats(c, dead_slot, &ws), 0);
	CHECK_EQ(ws.alive, 1);
	c->slots[dead_slot].start_time = dead_start;

	vmc_recover_report_t rr;
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	CHECK_EQ(vmc_worker_stats(c, dead_slot, &ws), 0);
	CHECK_EQ(ws.pid, 0);
	CHECK_EQ(vmc_worker_stats(c, live_slot, &ws), 0);
	CHECK(ws.pid == live && ws.alive == 1);   /* the real live worker is left alone */
	CHECK_EQ(vmc_vm_stats(c, k.a, &vs), 0);
	CHECK_EQ(vs.state, VMC_VM_ORPHANED);
	CHECK_EQ(vmc_vm_reclaim(c, k.a, VMC_RECLAIM_KEEP), 0);
	kill(live, SIGKILL);
	CHECK_EQ(test_wait(live), 128 + SIGKILL);
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	close(k.ready[0]);
	close(k.ready[1]);
	CHECK(accounted(c));
	finish(c);
}

int main(void)
{
	RUN(kill_in_attach_mmap_strict);
	RUN(kill_in_attach_mmap_lazy);
	RUN(kill_in_reattach_mprotect_strict);
	RUN(kill_in_detach_mprotect_strict);
	RUN(kill_while_attached_strict);
	RUN(kill_while_attached_lazy);
	RUN(kill_in_commit_mmap_strict);
	RUN(kill_in_commit_mmap_lazy);
	RUN(kill_in_commit_dry_pool);
	RUN(kill_in_release_mmap_strict);
	RUN(kill_in_release_mmap_lazy);
	RUN(kill_in_destroy_mmap_strict);
	RUN(kill_in_destroy_mmap_lazy);
	RUN(orphan_destroy_and_reclaim_refusals);
	RUN(many_workers_die_at_once);
	RUN(pid_reuse_uses_start_time);
	destroy_all();
	return test_done();
}
