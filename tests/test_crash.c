/*
 * test_crash.c - invariant 6, with real processes and SIGKILL: a worker
 * killed with granules in its cache, while holding the pool lock, while
 * holding its slot lock inside a balloon deflate, at every fallocate of a
 * deflate, and at (nearly) every instruction of commit/release; pid reuse
 * must not make a dead worker look alive or a live one dead.  After each
 * crash the survivors' vmc_recover / vmc_check / vmc_balloon work, the
 * tables are consistent and the dead worker's granules are back.
 */
#include "pool.h"
#include "worker.h"
#include "os/os.h"
#include "test.h"
#include "util.h"
#include "ptstep.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define G test_granule()

static int pipes[2];

static void tell(uint32_t v)
{
	if (write(pipes[1], &v, sizeof v) != sizeof v)
		_exit(99);
}

static int hear(uint32_t *v)
{
	return read(pipes[0], v, sizeof *v) == sizeof *v;
}

static int kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	return test_wait(pid);
}

/* --------------------------------------- a dead worker's cache comes back */

struct cache_arg { vmc_t *c; uint32_t vm; };

static int cache_worker(void *p)
{
	struct cache_arg *a = p;
	uint32_t g[3];

	if (vmc_worker_slot(a->c) == VMC_NIL || take_n(a->c, a->vm, 3, g) || put_n(a->c, 3, g))
		return 2;
	tell(a->c->slot);
	tell(a->c->slots[a->c->slot].cache_count);
	pause();
	return 0;
}

TEST(killed_worker_cache_returns)
{
	const char *name = tname("kc");
	vmc_config_t cfg;
	vmc_stats_t s;
	vmc_worker_stats_t w;
	vmc_recover_report_t rr;
	vmc_t *c = NULL;
	uint32_t slot = 0, cached = 0;

	test_config(&cfg, 64 * MiB, 64 * MiB);
	NEED(vmc_create(name, &cfg, &c) == 0);
	struct cache_arg a = { c, make_vm(c, "vm") };
	pid_t pid = test_fork(cache_worker, &a);
	NEED(pid > 0);
	CHECK(hear(&slot) && hear(&cached));
	CHECK(cached > 0);
	CHECK(slot != c->slot);
	CHECK_EQ(kill_and_reap(pid), 128 + SIGKILL);

	CHECK(stats_conserved(c, &s));
	CHECK_EQ(s.dead_workers, 1);
	CHECK_EQ(s.cached, cached);
	CHECK_EQ(vmc_worker_stats(c, slot, &w), 0);
	CHECK(w.pid == pid && !w.alive && w.cached == cached);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	CHECK_EQ(rr.granules_returned, cached);
	CHECK_EQ(vmc_worker_stats(c, slot, &w), 0);
	CHECK_EQ(w.pid, 0);
	CHECK(stats_conserved(c, &s));
	CHECK_EQ(s.cached, 0);
	CHECK_EQ(s.free, 32);
	CHECK_EQ(s.dead_workers, 0);
	CHECK(check_clean(c));
	/* a second recover finds nothing */
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 0);
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* ---------------------------------------------------------- pid reuse */

/* Write slot s by hand, as a process (pid, start) would have left it,
 * with ncache granules from the free list in its cache. */
static int plant_slot(vmc_t *c, uint32_t s, int32_t pid, uint64_t start, uint32_t ncache)
{
	struct vmc_slot *sl = &c->slots[s];
	int err;

	if ((err = slot_lock(c, s)))
		return err;
	if ((err = pool_lock(c))) {
		slot_unlock(c, s);
		return err;
	}
	sl->pid = pid;
	sl->start_time = start;
	sl->cache_head = VMC_NIL;
	sl->cache_count = 0;
	for (uint32_t k = 0; k < ncache; k++) {
		uint32_t g = c->m->free_head;
		if (g == VMC_NIL) {
			err = ENOSPC;
			break;
		}
		c->m->free_head = c->gran[g].next;
		c->m->nfree--;
		c->gran[g].state = G_CACHED;
		c->gran[g].slot = s;
		c->gran[g].next = sl->cache_head;
		sl->cache_head = g;
		sl->cache_count++;
	}
	pool_unlock(c);
	slot_unlock(c, s);
	return err;
}

static int sleeper(void *p)
{
	(void)p;
	pause();
	return 0;
}

/* Field 22 of /proc/PID/stat, read here independently of the library. */
static uint64_t proc_start(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long v = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &v) != 1)
		return 0;
	return v;
}

static int is_zombie(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *r = strrchr(buf, ')');
	return r && r[1] == ' ' && r[2] == 'Z';
}

TEST(pid_reuse_does_not_fool_liveness)
{
	const char *name = tname("pr");
	vmc_config_t cfg;
	vmc_worker_stats_t w;
	vmc_recover_report_t rr;
	vmc_stats_t s;
	vmc_t *c = NULL;

	test_config(&cfg, 64 * MiB, 64 * MiB);
	NEED(vmc_create(name, &cfg, &c) == 0);
	pid_t kid = test_fork(sleeper, NULL);
	NEED(kid > 0);
	uint64_t kid_start = proc_start(kid), my_start = proc_start(getpid());
	CHECK(kid_start != 0 && my_start != 0);

	/* a live pid, but not the process that joined: dead */
	CHECK_EQ(plant_slot(c, 5, kid, kid_start + 1, 2), 0);
	CHECK_EQ(plant_slot(c, 6, getpid(), my_start - 1, 3), 0);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_worker_stats(c, 5, &w), 0);
	CHECK(w.pid == kid && !w.alive);
	CHECK_EQ(vmc_worker_stats(c, 6, &w), 0);
	CHECK(w.pid == getpid() && !w.alive);
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 2);
	CHECK_EQ(rr.granules_returned, 5);
	CHECK(vmc_worker_stats(c, 5, &w) == 0 && w.pid == 0);
	CHECK(vmc_worker_stats(c, 6, &w) == 0 && w.pid == 0);
	CHECK(check_clean(c));

	/* the right pid and start time of a live process: alive, left alone */
	CHECK_EQ(plant_slot(c, 7, kid, kid_start, 2), 0);
	CHECK_EQ(vmc_worker_stats(c, 7, &w), 0);
	CHECK(w.pid == kid && w.alive && w.cached == 2);
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 0);
	CHECK(vmc_worker_stats(c, 7, &w) == 0 && w.pid == kid && w.cached == 2);
	CHECK(stats_conserved(c, &s) && s.workers == 2 && s.cached == 2);

	/* killed but not reaped (a zombie) is dead */
	kill(kid, SIGKILL);
	for (int i = 0; i < 2000 && !is_zombie(kid); i++)
		usleep(1000);
	CHECK(is_zombie(kid));
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	CHECK_EQ(rr.granules_returned, 2);
	CHECK_EQ(test_wait(kid), 128 + SIGKILL);
	CHECK(stats_conserved(c, &s) && s.cached == 0 && s.free == 32 && s.workers == 1);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* ------------------------------------------- killed holding the pool lock */

static int pool_lock_holder(void *p)
{
	vmc_t *c = p;
	if (vmc_worker_slot(c) == VMC_NIL || pool_lock(c))
		return 2;
	/* leave the derived state in a mess: the repair rebuilds it from
	 * the granule table */
	c->m->free_head = VMC_NIL;
	c->m->nfree = 12345;
	c->m->nunfunded = 0;
	tell(1);
	pause();
	return 0;
}

TEST(killed_holding_pool_lock)
{
	const char *name = tname("pl");
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	vmc_recover_report_t rr;
	uint64_t got;
	uint32_t v;
	vmc_t *c = NULL;

	test_config(&cfg, 64 * MiB, 32 * MiB);
	NEED(vmc_create(name, &cfg, &c) == 0);
	CHECK(stats_conserved(c, &s0));
	pid_t pid = test_fork(pool_lock_holder, c);
	NEED(pid > 0);
	CHECK(hear(&v));
	CHECK_EQ(kill_and_reap(pid), 128 + SIGKILL);

	CHECK(stats_conserved(c, &s));
	CHECK_EQ(s.lock_repairs - s0.lock_repairs, 1);
	CHECK_EQ(s.free, 16);
	CHECK_EQ(s.unfunded, 16);
	CHECK_EQ(c->m->nfree, 16);
	CHECK_EQ(c->m->nunfunded, 16);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_balloon(c, 64 * MiB, &got), 0);
	CHECK_EQ(got, 64 * MiB);
	CHECK_EQ(vmc_balloon(c, 0, &got), 0);
	CHECK_EQ(got, 0);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	CHECK(stats_conserved(c, &s) && s.free == 32 && s.lock_repairs - s0.lock_repairs == 1);
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* --------------------------- killed holding its slot lock, in a deflate */

struct deflate_arg { vmc_t *c; uint32_t vm; uint64_t kill_at; int hold_slot; int partial; };

static int (*real_fallocate)(int, int, off_t, off_t);

/* fallocate half of what was asked, then die: a crash inside the call */
static int fallocate_half_then_die(int fd, int mode, off_t off, off_t len)
{
	if (!mode)
		real_fallocate(fd, mode, off, len / 2);
	kill(getpid(), SIGKILL);
	return -1;
}

static int deflater(void *p)
{
	struct deflate_arg *a = p;
	uint32_t g[2];

	if (vmc_worker_slot(a->c) == VMC_NIL)
		return 2;
	if (a->vm != VMC_NIL && (take_n(a->c, a->vm, 2, g) || put_n(a->c, 2, g)))
		return 3;
	if (a->hold_slot && slot_lock(a->c, a->c->slot))
		return 4;
	if (a->partial) {
		real_fallocate = vmc_os.fallocate;
		vmc_os.fallocate = fallocate_half_then_die;
	} else if (a->kill_at) {
		vmc_os_inject(VMC_OS_FALLOCATE, a->kill_at, VMC_OS_KILL_SELF);
	}
	int err = vmc_balloon(a->c, 0, NULL);
	return err ? 5 : 0;
}

TEST(killed_in_deflate_holding_slot_lock)
{
	const char *name = tname("sd");
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	vmc_recover_report_t rr;
	vmc_t *c = NULL;

	test_config(&cfg, 64 * MiB, 32 * MiB);
	NEED(vmc_create(name, &cfg, &c) == 0);
	struct deflate_arg a = { c, make_vm(c, "vm"), 1, 1, 0 };
	CHECK(stats_conserved(c, &s0));
	pid_t pid = test_fork(deflater, &a);
	NEED(pid > 0);
	CHECK_EQ(test_wait(pid), 128 + SIGKILL);

	CHECK(check_clean(c));           /* takes every lock: both repairs run */
	CHECK(stats_conserved(c, &s));
	CHECK(s.lock_repairs - s0.lock_repairs >= 2);
	CHECK_EQ(s.unfunded, 16);
	CHECK_EQ(s.cached, 4);           /* the dead worker's cache: refill 4, take 2, put 2 */
	CHECK_EQ(pool_file_bytes(c), 32 * MiB);
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	CHECK_EQ(rr.granules_returned, 4);
	CHECK_EQ(vmc_balloon(c, 0, NULL), 0);
	CHECK(stats_conserved(c, &s) && s.unfunded == 0 && s.free == 32 && s.cached == 0);
	CHECK_EQ(pool_file_bytes(c), 64 * MiB);
	CHECK(check_clean(c));

	/* dying inside a fallocate that had allocated part of its range: the
	 * repair must punch that memory out again */
	CHECK_EQ(vmc_balloon(c, 32 * MiB, NULL), 0);
	CHECK_EQ(pool_file_bytes(c), 32 * MiB);
	CHECK(stats_conserved(c, &s0));
	a.partial = 1;
	a.hold_slot = 0;
	pid = test_fork(deflater, &a);
	NEED(pid > 0);
	CHECK_EQ(test_wait(pid), 128 + SIGKILL);
	CHECK(check_clean(c));
	CHECK(stats_conserved(c, &s));
	CHECK(s.lock_repairs > s0.lock_repairs);
	CHECK_EQ(s.unfunded, 16);
	CHECK_EQ(pool_file_bytes(c), (uint64_t)(32 - s.unfunded) * G);
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(vmc_balloon(c, 0, NULL), 0);
	CHECK_EQ(pool_file_bytes(c), 64 * MiB);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* ------------------------------------- killed at every N-th fallocate */

/* 16 used granules at even pool indices, holes at the odd ones, so a
 * deflate of 16 granules makes 16 fallocate calls. */
static int fragment(vmc_t *c)
{
	uint32_t vm = make_vm(c, "frag"), g[32], odd[16], n = 0;
	int err;

	if (vm == VMC_NIL)
		return EINVAL;
	if ((err = take_n(c, vm, 32, g)))
		return err;
	for (uint32_t i = 0; i < 32; i++)
		if (g[i] & 1)
			odd[n++] = g[i];
	if ((err = put_n(c, n, odd)))
		return err;
	return vmc_balloon(c, 32 * MiB, NULL);
}

static int holes_are_odd(vmc_t *c)
{
	for (uint32_t g = 0; g < c->h.ngranules; g++)
		if ((c->gran[g].state == G_UNFUNDED) != (g & 1))
			return 0;
	return 1;
}

TEST(killed_at_every_fallocate_of_a_deflate)
{
	const char *name = tname("kf");
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	vmc_recover_report_t rr;
	vmc_t *c = NULL;
	int kills = 0;

	test_config(&cfg, 64 * MiB, 64 * MiB);
	NEED(vmc_create(name, &cfg, &c) == 0);
	NEED(fragment(c) == 0);
	NEED(holes_are_odd(c));
	CHECK(stats_conserved(c, &s0));
	for (uint64_t n = 1; n < 64; n++) {
		struct deflate_arg a = { c, VMC_NIL, n, 0, 0 };
		pid_t pid = test_fork(deflater, &a);
		NEED(pid > 0);
		int st = test_wait(pid);
		if (st == 0)
			break;                 /* the deflate finished before call n */
		CHECK_EQ(st, 128 + SIGKILL);
		kills++;
		if (!check_clean(c) || !stats_conserved(c, &s)) {
			fprintf(stderr, "  after a kill at fallocate #%llu\n", (unsigned long long)n);
			CHECK(0);
			break;
		}
		CHECK_EQ(s.used, 16);
		CHECK_EQ(s.unfunded, 16 - (n - 1));   /* the calls before n funded one each */
		CHECK_EQ(pool_file_bytes(c), (uint64_t)(32 - s.unfunded) * G);
		CHECK_EQ(vmc_recover(c, &rr), 0);
		CHECK_EQ(rr.workers_reclaimed, 1);
		/* put the holes back for the next round */
		CHECK_EQ(vmc_balloon(c, 32 * MiB, NULL), 0);
		CHECK(holes_are_odd(c));
	}
	fprintf(stderr, "  %d kills\n", kills);
	CHECK_EQ(kills, 16);
	CHECK(stats_conserved(c, &s));
	CHECK(s.lock_repairs - s0.lock_repairs >= 16);
	CHECK_EQ(s.unfunded, 0);
	CHECK_EQ(pool_file_bytes(c), 64 * MiB);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

struct step_arg { vmc_t *c; uint32_t vm; char name[64]; };

/* Every round starts from the same state: a new container with one empty
 * VM, so that the child runs the same instructions as in the dry run. */
static int step_prepare(void *p)
{
	struct step_arg *a = p;
	vmc_config_t cfg;

	snprintf(a->name, sizeof a->name, "%s", test_name("ki"));
	test_config(&cfg, 8 * MiB, 8 * MiB);
	cfg.worker_cache = 2;
	a->c = NULL;
	if (vmc_create(a->name, &cfg, &a->c))
		return -1;
	a->vm = make_vm(a->c, "stepped");
	return a->vm == VMC_NIL ? -1 : 0;
}

static int step_pre(void *p)
{
	struct step_arg *a = p;
	return vmc_attach(a->c, a->vm, NULL);
}

/* commit 3 granules (refills of 1), release them (the cache of 2
 * overflows: a drain), commit one again (from the cache), detach */
static int step_op(void *p)
{
	struct step_arg *a = p;
	char *base = a->c->arena;

	return vmc_commit(a->c, base, 3 * G, 0) || vmc_release(a->c, base, 3 * G, 0) ||
	       vmc_commit(a->c, base + G, G, 0) || vmc_detach(a->c, a->vm);
}

/* After the kill: recovery orphans the VM, vmc_check is clean, and the VM
 * can be reclaimed and reused. */
static int step_after(void *p, char *why, size_t n)
{
	struct step_arg *a = p;
	vmc_recover_report_t rr = {0, 0};
	vmc_vm_stats_t vs;
	vmc_stats_t s;
	int err;

	if ((err = vmc_recover(a->c, &rr)) || rr.workers_reclaimed != 1)
		return snprintf(why, n, "vmc_recover: %d, %u workers reclaimed (%s)", err,
				rr.workers_reclaimed, vmc_errmsg());
	if (!check_clean(a->c) || !stats_conserved(a->c, &s))
		return snprintf(why, n, "inconsistent after recovery: %s", vmc_errmsg());
	if (vmc_vm_stats(a->c, a->vm, &vs) ||
	    (vs.state != VMC_VM_ORPHANED && vs.state != VMC_VM_IDLE))
		return snprintf(why, n, "the VM is in state %d", vs.state);
	if (vs.state == VMC_VM_ORPHANED && vmc_vm_reclaim(a->c, a->vm, VMC_RECLAIM_RESET))
		return snprintf(why, n, "reclaim: %s", vmc_errmsg());
	if (vmc_vm_stats(a->c, a->vm, &vs) || vs.state != VMC_VM_IDLE)
		return snprintf(why, n, "not idle after reclaim");
	if (!check_clean(a->c) || !stats_conserved(a->c, &s) || s.used != vs.committed / G)
		return snprintf(why, n, "inconsistent after reclaim: %s", vmc_errmsg());
	return 0;
}

static void step_cleanup(void *p)
{
	struct step_arg *a = p;
	vmc_close(a->c);
	vmc_destroy(a->name);
}

/* ----------------------------- killed at (nearly) every instruction */

TEST(killed_at_every_instruction_of_commit_release)
{
	struct step_arg a;
	struct kill_sweep sw = { "commit/release", step_prepare, step_pre, step_op, step_after,
				 step_cleanup, &a, 600 };
	struct kill_result r;

	if (kill_sweep(&sw, &r)) {
		fprintf(stderr, "  ptrace single-step not usable here: part skipped\n");
		return;
	}
	CHECK_EQ(r.failures, 0);
	CHECK(r.kills > 0);
	CHECK(r.missed <= r.kills / 10);
}

int main(void)
{
	if (pipe(pipes))
		return 1;
	if (getenv("ONLY_STEP")) { RUN(killed_at_every_instruction_of_commit_release); return test_done(); }
	RUN(killed_worker_cache_returns);
	RUN(pid_reuse_does_not_fool_liveness);
	RUN(killed_holding_pool_lock);
	RUN(killed_in_deflate_holding_slot_lock);
	RUN(killed_at_every_fallocate_of_a_deflate);
	RUN(killed_at_every_instruction_of_commit_release);
	destroy_all();
	return test_done();
}
