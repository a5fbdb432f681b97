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

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define G VMC_GRANULE_SIZE

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

/* ----------------------------- killed at (nearly) every instruction */

/* The child attaches a VM, stops, then commits and releases memory through
 * the public API (which takes granules from its cache, refills it from the
 * shared list, drains it back and remaps the window).  A dry run records
 * every instruction it executes in this binary (the library is linked in
 * statically; calls into libc - memset, system calls, mutexes - run at full
 * speed under a breakpoint at their return address).  Then, for each
 * recorded instruction (or a sample, if there are too many), a fresh child
 * runs to that point with a breakpoint and is SIGKILLed there.  After every
 * kill: recovery orphans the VM, vmc_check is clean, and the VM can be
 * reclaimed and reused. */
#if defined(__x86_64__)
#include <sys/user.h>

struct step_arg { vmc_t *c; uint32_t vm; };
static uintptr_t text_lo, text_hi, load_base;

static int stepped_worker(void *p)
{
	struct step_arg *a = p;
	void *base;

	if (vmc_attach(a->c, a->vm, &base))
		return 2;
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
		return 3;
	raise(SIGSTOP);
	/* commit 3 granules (refills of 1), release them (the cache of 2
	 * overflows: a drain), commit one again (from the cache), detach */
	if (vmc_commit(a->c, base, 3 * G, 0) || vmc_release(a->c, base, 3 * G, 0) ||
	    vmc_commit(a->c, (char *)base + G, G, 0) || vmc_detach(a->c, a->vm))
		return 4;
	return 0;
}

static int find_text(void)
{
	char exe[512], line[1024];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	FILE *f = fopen("/proc/self/maps", "r");
	if (n <= 0 || !f)
		return -1;
	exe[n] = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8], path[512] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %511s", &lo, &hi, perm, path) >= 3 &&
		    !strcmp(path, exe) && (!load_base || lo < load_base))
			load_base = lo;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %511s", &lo, &hi, perm, path) >= 3 &&
		    perm[2] == 'x' && !strcmp(path, exe)) {
			text_lo = lo;
			text_hi = hi;
		}
	}
	fclose(f);
	return text_hi ? 0 : -1;
}

/* Print, for failing instruction addresses of this binary, how many
 * failed in each function (one addr2line run, if addr2line is there). */
static void summarize(const uintptr_t *ips, long n)
{
	char cmd[256], fn[200], line[300], seen[64][200];
	int count[64], nseen = 0;
	char tmp[] = "/tmp/vmc_crash_ips_XXXXXX";
	int fd = mkstemp(tmp);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f)
		return;
	for (long k = 0; k < n; k++)
		fprintf(f, "%#lx\n", (unsigned long)(ips[k] - load_base));
	fclose(f);
	snprintf(cmd, sizeof cmd, "addr2line -f -e /proc/%d/exe < %s 2>/dev/null", (int)getpid(),
		 tmp);
	if ((f = popen(cmd, "r"))) {
		while (fgets(fn, sizeof fn, f) && fgets(line, sizeof line, f)) {
			fn[strcspn(fn, "\n")] = 0;
			line[strcspn(line, " \n")] = 0;   /* file:line */
			const char *src = strstr(line, "src/");
			char key[200];
			snprintf(key, sizeof key, "%.100s (%.90s)", fn, src ? src : line);
			int i = 0;
			while (i < nseen && strcmp(seen[i], key))
				i++;
			if (i == nseen && nseen < 64) {
				snprintf(seen[nseen], sizeof seen[0], "%s", key);
				count[nseen++] = 0;
			}
			if (i < nseen)
				count[i]++;
		}
		pclose(f);
		for (int i = 0; i < nseen; i++)
			fprintf(stderr, "    %4d kill points in %s\n", count[i], seen[i]);
	}
	unlink(tmp);
}

static int in_text(uintptr_t ip)
{
	return ip >= text_lo && ip < text_hi;
}

/* Wait for a stop; 1 if stopped, 0 if it ended (status in *st). */
static int wait_stop(pid_t pid, int *st)
{
	if (waitpid(pid, st, 0) != pid)
		return 0;
	return WIFSTOPPED(*st);
}

struct bp { uintptr_t addr; long orig; };

static int bp_set(pid_t pid, struct bp *b, uintptr_t addr)
{
	errno = 0;
	b->addr = addr;
	b->orig = ptrace(PTRACE_PEEKTEXT, pid, (void *)addr, NULL);
	if (errno)
		return -1;
	return (int)ptrace(PTRACE_POKETEXT, pid, (void *)addr, (void *)((b->orig & ~0xffL) | 0xcc));
}

static int bp_clear(pid_t pid, struct bp *b, struct user_regs_struct *r)
{
	if (ptrace(PTRACE_POKETEXT, pid, (void *)b->addr, (void *)b->orig))
		return -1;
	r->rip = b->addr;
	return (int)ptrace(PTRACE_SETREGS, pid, NULL, r);
}

/* Run to the breakpoint at addr (already in place); 1 if hit. */
static int run_to(pid_t pid, struct bp *b, struct user_regs_struct *r, int *st)
{
	for (;;) {
		if (ptrace(PTRACE_CONT, pid, NULL, NULL) || !wait_stop(pid, st))
			return 0;
		if (WSTOPSIG(*st) != SIGTRAP)
			return 0;
		if (ptrace(PTRACE_GETREGS, pid, NULL, r))
			return 0;
		if (r->rip == b->addr + 1)
			return 1;
	}
}

/* The dry run: the instructions executed in our text, in order. */
static long record(pid_t pid, uintptr_t *ips, long cap, int *status)
{
	struct user_regs_struct r;
	int st;
	long k = 0;

	*status = -1;
	if (!wait_stop(pid, &st))
		return -1;
	for (;;) {
		if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) || !wait_stop(pid, &st))
			break;
		if (ptrace(PTRACE_GETREGS, pid, NULL, &r))
			return -1;
		if (in_text(r.rip)) {
			if (k < cap)
				ips[k] = r.rip;
			k++;
			continue;
		}
		/* left our text: if it was a call, run the callee natively */
		errno = 0;
		long ret = ptrace(PTRACE_PEEKDATA, pid, (void *)r.rsp, NULL);
		if (errno || !in_text((uintptr_t)ret))
			continue;          /* e.g. back in qsort from a comparator */
		struct bp b;
		if (bp_set(pid, &b, (uintptr_t)ret))
			return -1;
		if (!run_to(pid, &b, &r, &st))
			break;
		if (bp_clear(pid, &b, &r))
			return -1;
		if (k < cap)
			ips[k] = r.rip;
		k++;
	}
	if (WIFEXITED(st))
		*status = WEXITSTATUS(st);
	return k;
}

/* Run a fresh child to the m-th execution of ip. 1 if it got there. */
static int run_to_nth(pid_t pid, uintptr_t ip, long m)
{
	struct user_regs_struct r;
	struct bp b;
	int st;

	if (!wait_stop(pid, &st) || bp_set(pid, &b, ip))
		return 0;
	for (long hit = 1;; hit++) {
		if (!run_to(pid, &b, &r, &st))
			return 0;
		if (hit == m)
			return 1;
		/* step over the breakpoint and put it back */
		if (bp_clear(pid, &b, &r) || ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) ||
		    !wait_stop(pid, &st) || bp_set(pid, &b, ip))
			return 0;
	}
}

/* Every round starts from the same state: a new container with one empty
 * VM, so that the child runs the same instructions as in the dry run. */
static int new_round(vmc_t **c, struct step_arg *a, char *name)
{
	vmc_config_t cfg;

	snprintf(name, 64, "%s", test_name("ki"));
	test_config(&cfg, 8 * MiB, 8 * MiB);
	cfg.worker_cache = 2;
	*c = NULL;
	if (vmc_create(name, &cfg, c))
		return -1;
	a->c = *c;
	a->vm = make_vm(*c, "stepped");
	return a->vm == VMC_NIL ? -1 : 0;
}

static void end_round(vmc_t *c, const char *name)
{
	vmc_close(c);
	vmc_destroy(name);
}

TEST(killed_at_every_instruction_of_commit_release)
{
	char name[64];
	vmc_stats_t s;
	vmc_vm_stats_t vs;
	vmc_recover_report_t rr;
	vmc_t *c = NULL;
	struct step_arg a;
	int status, failures = 0;
	const long cap = 200000;
	uintptr_t *ips = malloc(cap * sizeof *ips), failed_at[400];

	NEED(ips && find_text() == 0);
	NEED(new_round(&c, &a, name) == 0);
	pid_t pid = test_fork(stepped_worker, &a);
	NEED(pid > 0);
	long total = record(pid, ips, cap, &status);
	if (total <= 0) {
		kill(pid, SIGKILL);
		test_wait(pid);
		free(ips);
		end_round(c, name);
		fprintf(stderr, "  ptrace single-step not usable here: part skipped\n");
		return;
	}
	CHECK_EQ(status, 0);
	CHECK(total < cap);
	CHECK(check_clean(c));
	vmc_recover(c, NULL);
	CHECK(vmc_vm_stats(c, a.vm, &vs) == 0 && vs.state == VMC_VM_IDLE && vs.committed == G);
	CHECK_EQ(vmc_vm_reclaim(c, a.vm, VMC_RECLAIM_RESET), EINVAL);   /* not orphaned */
	end_round(c, name);

#ifdef UNDER_ASAN
	const long budget = 200;
#else
	const long budget = 600;
#endif
	/* VMC_TEST_BUDGET=n: about n kill points (n >= total: every instruction) */
	long want = getenv("VMC_TEST_BUDGET") ? atol(getenv("VMC_TEST_BUDGET")) : budget;
	long stride = total / (want > 0 ? want : budget) + 1, kills = 0, missed = 0;
	unsigned seed = getenv("VMC_TEST_SEED") ? (unsigned)atoi(getenv("VMC_TEST_SEED")) :
		(unsigned)time(NULL);   /* VMC_TEST_SEED=n repeats a run */
	srand(seed);
	fprintf(stderr, "  %ld instructions of ours, killing at every %ld (seed %u)\n",
		total, stride, seed);
	for (long n = rand() % stride; n < total && n < cap && failures < 400; n += stride) {
		long m = 0;
		for (long k = 0; k <= n; k++)
			m += ips[k] == ips[n];
		if (new_round(&c, &a, name)) {
			CHECK(!"new container");
			break;
		}
		pid = test_fork(stepped_worker, &a);
		if (pid <= 0) {
			CHECK(pid > 0);
			end_round(c, name);
			break;
		}
		int there = run_to_nth(pid, ips[n], m);
		kill_and_reap(pid);
		if (!there) {
			if (getenv("STEP_DEBUG"))
				fprintf(stderr, "  missed %ld (executable+%#lx pass %ld)\n", n,
					(unsigned long)(ips[n] - load_base), m);
			missed++;
			end_round(c, name);
			continue;
		}
		kills++;
		int bad = 0, rerr;
		memset(&rr, 0, sizeof rr);
		if ((rerr = vmc_recover(c, &rr)) || rr.workers_reclaimed != 1) {
			fprintf(stderr, "  vmc_recover: %d, %u workers reclaimed (%s)\n", rerr,
				rr.workers_reclaimed, vmc_errmsg());
			bad = 1;
		}
		else if (!check_clean(c))
			bad = 2;
		else if (!stats_conserved(c, &s))
			bad = 3;
		else if (vmc_vm_stats(c, a.vm, &vs))
			bad = 4;
		/* killed while attached: orphaned, with its memory */
		else if (vs.state != VMC_VM_ORPHANED && vs.state != VMC_VM_IDLE)
			bad = 5;
		else if (vs.state == VMC_VM_ORPHANED && vmc_vm_reclaim(c, a.vm, VMC_RECLAIM_RESET))
			bad = 6;
		else if (vmc_vm_stats(c, a.vm, &vs) || vs.state != VMC_VM_IDLE)
			bad = 7;
		else if (!check_clean(c) || !stats_conserved(c, &s) || s.used != vs.committed / G)
			bad = 8;
		if (bad) {
			if (failures < 8)
				fprintf(stderr, "  killed at instruction %ld of %ld (executable+%#lx, "
					"pass %ld): check %d failed [%s]\n", n, total,
					(unsigned long)(ips[n] - load_base), m, bad, vmc_errmsg());
			failed_at[failures++] = ips[n];
			CHECK(!bad);
		}
		end_round(c, name);
	}
	fprintf(stderr, "  %ld kills, %ld points not reached, %d left the container "
		"inconsistent%s\n", kills, missed, failures, failures ? ", by function:" : "");
	if (failures)
		summarize(failed_at, failures);
	CHECK(kills > 0);
	CHECK(missed <= kills / 10);
	free(ips);
}
#else
TEST(killed_at_every_instruction_of_commit_release)
{
	fprintf(stderr, "  (x86-64 only: part skipped)\n");
}
#endif

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
