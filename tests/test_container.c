/*
 * test_container.c - containers: create / open / close / destroy, bad input,
 * joining from an unrelated process (fork + execve of this binary in a
 * "child mode"), the arena being taken, forked children using the parent's
 * handle, private containers, the balloon, take/put through the worker
 * cache, exhaustion, and metadata or pool files damaged on disk.
 */
#include "pool.h"
#include "worker.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define G test_granule()


static void shm_file(char *buf, size_t n, const char *name, const char *what)
{
	snprintf(buf, n, "/dev/shm/vmc.%s.%s", name, what);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ------------------------------------------------------ child modes */

#define CFAIL(code, ...) do { fprintf(stderr, "child: " __VA_ARGS__); \
	fprintf(stderr, " [%s]\n", vmc_errmsg()); return code; } while (0)

/* open NAME granules funded unfunded free cached used arena_base */
static int child_open(char **a)
{
	vmc_t *c;
	vmc_stats_t s;
	uint64_t want[7];
	int err;

	for (int i = 0; i < 7; i++)
		want[i] = strtoull(a[1 + i], NULL, 0);
	if ((err = vmc_open(a[0], &c)))
		CFAIL(10, "vmc_open(%s) = %d", a[0], err);
	if ((err = vmc_stats(c, &s)))
		CFAIL(11, "vmc_stats = %d", err);
	if (s.granules != want[0] || s.funded_bytes != want[1] || s.unfunded != want[2] ||
	    s.free != want[3] || s.cached != want[4] || s.used != want[5])
		CFAIL(12, "stats differ: granules %u funded %llu unfunded %u free %u cached %u "
		      "used %u", s.granules, (unsigned long long)s.funded_bytes, s.unfunded,
		      s.free, s.cached, s.used);
	if (s.arena_base != want[6] || (uint64_t)(uintptr_t)c->arena != want[6])
		CFAIL(13, "arena at %#llx, creator has it at %#llx",
		      (unsigned long long)s.arena_base, (unsigned long long)want[6]);
	if (s.workers != 2)
		CFAIL(14, "%u workers, expected the creator and us", s.workers);
	if (vmc_worker_slot(c) == 0 || vmc_worker_slot(c) >= s.max_workers)
		CFAIL(15, "slot %u", vmc_worker_slot(c));
	/* the arena is really reserved here: a NOREPLACE map on it must fail */
	void *p = mmap((void *)(uintptr_t)s.arena_base, 4096, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != MAP_FAILED)
		CFAIL(16, "the arena range is not reserved in the opener");
	if (vmc_check(c, NULL))
		CFAIL(17, "vmc_check");
	if ((err = vmc_close(c)))
		CFAIL(18, "vmc_close = %d", err);
	return 0;
}

/* arena NAME ADDR BASE: map something at ADDR (in the arena at BASE) first,
 * then open must say EARENA and name BASE */
static int child_arena(char **a)
{
	uint64_t addr = strtoull(a[1], NULL, 0), base = strtoull(a[2], NULL, 0);
	char hex[32];
	vmc_t *c = NULL;
	int fds = test_count_fds(), err;

	void *p = mmap((void *)(uintptr_t)addr, 4096, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED || (uint64_t)(uintptr_t)p != addr)
		CFAIL(20, "could not map the squatter at %#llx", (unsigned long long)addr);
	err = vmc_open(a[0], &c);
	if (err != VMC_EARENA || c)
		CFAIL(21, "vmc_open = %d (%s), expected VMC_EARENA", err, vmc_strerror(err));
	snprintf(hex, sizeof hex, "%#llx", (unsigned long long)base);
	if (!strstr(vmc_errmsg(), hex))
		CFAIL(22, "message does not name the address %s", hex);
	if (test_count_fds() != fds)
		CFAIL(23, "vmc_open leaked fds on EARENA (%d -> %d)", fds, test_count_fds());
	if (*(volatile char *)p != 0)   /* our mapping is untouched */
		CFAIL(24, "squatter mapping changed");
	return 0;
}

/* ----------------------------------------------------------- tests */

TEST(create_open_close_destroy)
{
	const char *name = tname("rt");
	char meta[128], pool[128];
	vmc_config_t cfg;
	vmc_stats_t s;
	struct stat st;
	vmc_t *c = NULL, *o = NULL;

	test_config(&cfg, 64 * MiB, 16 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0 && c);
	shm_file(meta, sizeof meta, name, "meta");
	shm_file(pool, sizeof pool, name, "pool");
	CHECK(stat(meta, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
	CHECK(stat(pool, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
	CHECK_EQ(st.st_size, 64 * MiB);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.granules, 32);
	CHECK_EQ(s.pool_size, 64 * MiB);
	CHECK_EQ(s.funded_bytes, 16 * MiB);
	CHECK_EQ(s.unfunded, 24);
	CHECK_EQ(s.free, 8);
	CHECK_EQ(s.workers, 1);
	CHECK_EQ(s.page_kind, VMC_PAGE_4K);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_close(c), 0);

	CHECK_EQ(vmc_open(name, &o), 0);
	if (o) {
		CHECK(vmc_stats(o, &s) == 0);
		CHECK_EQ(s.granules, 32);
		CHECK_EQ(s.funded_bytes, 16 * MiB);
		CHECK_EQ(s.workers, 1);   /* the creator's slot was given back */
		CHECK(check_clean(o));
		CHECK_EQ(vmc_close(o), 0);
	}
	CHECK_EQ(vmc_destroy(name), 0);
	CHECK(!exists(meta));
	CHECK(!exists(pool));
	CHECK_EQ(vmc_destroy(name), ENOENT);
	CHECK(vmc_errmsg()[0] != 0);
	o = (vmc_t *)1;
	CHECK_EQ(vmc_open(name, &o), ENOENT);
	CHECK(o == NULL);
	CHECK(errmsg_has(name));
}

TEST(create_existing_is_eexist)
{
	const char *name = tname("ex");
	char meta[128], pool[128];
	vmc_config_t cfg, other;
	vmc_stats_t before, after;
	struct stat m1, p1, m2, p2;
	vmc_t *c = NULL, *d = NULL;

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	shm_file(meta, sizeof meta, name, "meta");
	shm_file(pool, sizeof pool, name, "pool");
	CHECK(stat(meta, &m1) == 0 && stat(pool, &p1) == 0);
	CHECK(vmc_stats(c, &before) == 0);

	/* a different geometry must not touch the existing files */
	test_config(&other, 64 * MiB, 64 * MiB);
	d = (vmc_t *)1;
	CHECK_EQ(vmc_create(name, &other, &d), EEXIST);
	CHECK(d == NULL);
	CHECK(errmsg_has(name));
	CHECK(stat(meta, &m2) == 0 && stat(pool, &p2) == 0);
	CHECK(m1.st_ino == m2.st_ino && m1.st_size == m2.st_size);
	CHECK(p1.st_ino == p2.st_ino && p1.st_size == p2.st_size);
	CHECK(vmc_stats(c, &after) == 0);
	CHECK_EQ(after.granules, before.granules);
	CHECK_EQ(after.funded_bytes, before.funded_bytes);
	CHECK_EQ(after.free, before.free);
	CHECK_EQ(after.workers, 1);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_close(c), 0);

	/* and the same when nobody has it open */
	CHECK_EQ(vmc_create(name, &other, &d), EEXIST);
	CHECK(exists(meta) && exists(pool));
	CHECK_EQ(vmc_open(name, &d), 0);
	if (d) {
		CHECK(vmc_stats(d, &after) == 0);
		CHECK_EQ(after.granules, 16);
		CHECK(check_clean(d));
		vmc_close(d);
	}
	CHECK_EQ(vmc_destroy(name), 0);
}

TEST(destroy_while_open_keeps_working)
{
	const char *name = tname("dw");
	vmc_config_t cfg;
	vmc_stats_t s;
	uint64_t got;
	uint32_t g[4];
	vmc_t *c = NULL;

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	CHECK_EQ(vmc_destroy(name), 0);
	CHECK_EQ(vmc_open(name, &(vmc_t *){0}), ENOENT);
	CHECK_EQ(take_n(c, make_vm(c, "vm"), 4, g), 0);
	CHECK_EQ(put_n(c, 4, g), 0);
	CHECK_EQ(vmc_balloon(c, 0, &got), 0);
	CHECK_EQ(got, 0);
	CHECK(vmc_stats(c, &s) == 0 && s.funded_bytes == 32 * MiB && conserved(&s));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_close(c), 0);
	CHECK_EQ(vmc_destroy(name), ENOENT);
}

TEST(bad_input)
{
	const char *name = tname("bad");
	char long_name[71];
	vmc_config_t cfg;
	vmc_t *c = (vmc_t *)1;
	const char *bad_names[] = { "", long_name, "a/b", "../x", "a b", "x\n" };

	memset(long_name, 'a', 70);
	long_name[70] = 0;
	test_config(&cfg, 32 * MiB, 8 * MiB);

	vmc_clear_error();
	CHECK_EQ(vmc_create(name, &cfg, NULL), EINVAL);
	CHECK(vmc_errmsg()[0]);
	CHECK_EQ(vmc_open(name, NULL), EINVAL);
	CHECK(vmc_errmsg()[0]);

	for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
		c = (vmc_t *)1;
		CHECK_EQ(vmc_create(bad_names[i], &cfg, &c), EINVAL);
		CHECK(c == NULL);
		CHECK(vmc_errmsg()[0]);
		CHECK_EQ(vmc_open(bad_names[i], &c), EINVAL);
		CHECK(vmc_errmsg()[0]);
		CHECK_EQ(vmc_destroy(bad_names[i]), EINVAL);
		CHECK(vmc_errmsg()[0]);
	}
	CHECK_EQ(vmc_open(NULL, &c), EINVAL);
	CHECK_EQ(vmc_destroy(NULL), EINVAL);
	/* a 63-character name is fine */
	{
		char n63[64];
		snprintf(n63, sizeof n63, "%s", name);
		memset(n63 + strlen(n63), 'z', 63 - strlen(n63));
		n63[63] = 0;
		c = NULL;
		CHECK_EQ(vmc_create(n63, &cfg, &c), 0);
		if (c) {
			vmc_close(c);
			CHECK_EQ(vmc_destroy(n63), 0);
		}
	}

#define BAD_CFG(field, value) do {                                           \
		vmc_config_t bcfg_ = cfg;                                       \
		bcfg_.field = value;                                            \
		c = (vmc_t *)1;                                              \
		vmc_clear_error();                                           \
		int e_ = vmc_create(name, &bcfg_, &c);                          \
		if (e_ != EINVAL)                                            \
			fprintf(stderr, "  %s = %llu -> %d\n", #field,       \
				(unsigned long long)(value), e_);            \
		CHECK_EQ(e_, EINVAL);                                        \
		CHECK(c == NULL);                                            \
		CHECK(vmc_errmsg()[0]);                                      \
		if (!e_ && c) { vmc_close(c); vmc_destroy(name); }           \
	} while (0)

	BAD_CFG(pool_size, 0);
	BAD_CFG(window_size, 0);
	BAD_CFG(granule_size, 3000);
	BAD_CFG(granule_size, 2048);
	BAD_CFG(granule_size, 4u << 20);
	BAD_CFG(fund_size, 64 * MiB);          /* > pool */
	BAD_CFG(reserve_size, 64 * MiB);       /* > pool */
	BAD_CFG(pool_size, 1ull << 60);
	BAD_CFG(window_size, 1ull << 60);
	BAD_CFG(region_space, 1ull << 60);
	BAD_CFG(code_cache_size, 1ull << 60);
	BAD_CFG(code_cache_size, 12 * MiB);    /* > fund */
	BAD_CFG(max_workers, 0);
	BAD_CFG(max_vms, 0);
	BAD_CFG(worker_cache, 0);
	BAD_CFG(page_kind, 7);
	BAD_CFG(memory_isolation, 2);
	CHECK_EQ(vmc_destroy(name), ENOENT);   /* nothing was left behind */

	/* hugetlb and THP pools map 2 MiB pages: their granules are 2 MiB */
	{
		vmc_config_t t = cfg;
		t.page_kind = VMC_PAGE_HUGETLB;
		t.granule_size = 64 << 10;
		c = (vmc_t *)1;
		CHECK_EQ(vmc_create(name, &t, &c), EINVAL);
		CHECK(c == NULL && errmsg_has("granule"));
	}

	/* sizes are rounded up to whole granules (one rule for all) */
	{
		vmc_config_t r = cfg;
		vmc_stats_t rs;
		r.fund_size = G + 1;
		r.window_size = 3 * G - 1;
		c = NULL;
		REQUIRE(vmc_create(name, &r, &c) == 0);
		CHECK(vmc_stats(c, &rs) == 0 && rs.funded_bytes == 2 * G &&
		      rs.window_size == 3 * G);
		finish(c);
	}

	/* balloon targets */
	c = NULL;
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	uint64_t got = 12345;
	vmc_clear_error();
	CHECK_EQ(vmc_balloon(c, 24 * MiB + 1, &got), 0);   /* rounded up */
	CHECK_EQ(got, 24 * MiB + G);
	CHECK_EQ(vmc_balloon(c, 24 * MiB, &got), 0);
	CHECK_EQ(got, 24 * MiB);
	CHECK_EQ(vmc_balloon(c, 34 * MiB, NULL), EINVAL);
	CHECK(vmc_errmsg()[0]);
	CHECK_EQ(vmc_balloon(c, 1ull << 60, NULL), EINVAL);
	CHECK_EQ(vmc_balloon(NULL, 0, NULL), EINVAL);
	CHECK_EQ(vmc_stats(NULL, &(vmc_stats_t){0}), EINVAL);
	CHECK_EQ(vmc_stats(c, NULL), EINVAL);
	CHECK_EQ(vmc_worker_stats(c, 16, &(vmc_worker_stats_t){0}), EINVAL);
	CHECK_EQ(vmc_close(NULL), EINVAL);
	vmc_stats_t s;
	CHECK(vmc_stats(c, &s) == 0 && s.funded_bytes == 8 * MiB);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

TEST(unrelated_process_opens_by_name)
{
	const char *name = tname("un");
	vmc_config_t cfg;
	vmc_stats_t s;
	uint32_t g[5];
	vmc_t *c = NULL;
	char a[8][32];

	test_config(&cfg, 64 * MiB, 32 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	/* some of every state: used 5, cached 3 (batch of 4, twice), unfunded 16 */
	CHECK_EQ(take_n(c, make_vm(c, "vm"), 5, g), 0);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK(s.used == 5 && s.cached == 3 && s.unfunded == 16 && s.free == 8);
	snprintf(a[0], 32, "%u", s.granules);
	snprintf(a[1], 32, "%llu", (unsigned long long)s.funded_bytes);
	snprintf(a[2], 32, "%u", s.unfunded);
	snprintf(a[3], 32, "%u", s.free);
	snprintf(a[4], 32, "%u", s.cached);
	snprintf(a[5], 32, "%u", s.used);
	snprintf(a[6], 32, "%#llx", (unsigned long long)s.arena_base);
	char *argv[] = { "test_container", "--child-open", (char *)name, a[0], a[1], a[2],
			 a[3], a[4], a[5], a[6], NULL };
	CHECK_EQ(run_self(argv), 0);
	/* the opener left: its slot is free again, nothing changed */
	vmc_stats_t s2;
	CHECK(vmc_stats(c, &s2) == 0);
	CHECK_EQ(s2.workers, 1);
	CHECK_EQ(s2.used, 5);
	CHECK_EQ(s2.cached, 3);
	CHECK_EQ(s2.workers_recovered, s.workers_recovered);
	CHECK(check_clean(c));
	CHECK_EQ(put_n(c, 5, g), 0);
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

TEST(arena_taken_in_opener)
{
	const char *name = tname("ar");
	vmc_config_t cfg;
	vmc_stats_t s;
	vmc_t *c = NULL;
	char base[32];

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	CHECK(vmc_stats(c, &s) == 0);
	snprintf(base, sizeof base, "%#llx", (unsigned long long)s.arena_base);
	/* squat in the middle of the arena, too, not only at its base */
	char mid[32];
	snprintf(mid, sizeof mid, "%#llx", (unsigned long long)(s.arena_base + s.arena_size / 2));
	char *argv[] = { "test_container", "--child-arena", (char *)name, base, base, NULL };
	CHECK_EQ(run_self(argv), 0);
	char *argv2[] = { "test_container", "--child-arena", (char *)name, mid, base, NULL };
	CHECK_EQ(run_self(argv2), 0);
	CHECK(vmc_stats(c, &s) == 0 && s.workers == 1);   /* no slot was left taken */
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* ------------------------------------------- forked children, parent handle */

struct fork_arg { vmc_t *c; int fd; uint32_t take, put, vm; };
struct fork_report { uint32_t slot, cached, parent_slot_seen; int err; };

static int forked_worker(void *p)
{
	struct fork_arg *a = p;
	struct fork_report r = { 0, 0, 0, 0 };
	vmc_stats_t s;
	uint32_t g[64];

	r.err = vmc_stats(a->c, &s);
	r.slot = vmc_worker_slot(a->c);
	if (!r.err && r.slot != VMC_NIL) {
		r.err = take_n(a->c, a->vm, a->take, g);
		if (!r.err)
			r.err = put_n(a->c, a->put, g);
		r.cached = a->c->slots[r.slot].cache_count;
	}
	r.parent_slot_seen = a->c->slots[0].pid == getppid();
	return write(a->fd, &r, sizeof r) == sizeof r && !r.err ? 0 : 1;
}

TEST(forked_child_uses_parent_handle)
{
	const char *name = tname("fk");
	vmc_config_t cfg;
	vmc_stats_t s;
	vmc_worker_stats_t w;
	vmc_recover_report_t rr;
	struct fork_report r;
	int fds[2];
	vmc_t *c = NULL;

	test_config(&cfg, 64 * MiB, 32 * MiB);
	REQUIRE(pipe(fds) == 0);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	uint32_t mine = vmc_worker_slot(c);
	CHECK_EQ(mine, 0);

	struct fork_arg a = { c, fds[1], 6, 6, make_vm(c, "child") };
	pid_t pid = test_fork(forked_worker, &a);
	REQUIRE(pid > 0);
	CHECK(read(fds[0], &r, sizeof r) == sizeof r);
	CHECK_EQ(test_wait(pid), 0);
	CHECK_EQ(r.err, 0);
	CHECK(r.slot != mine && r.slot < 16);
	CHECK(r.parent_slot_seen);
	CHECK(r.cached > 0 && r.cached <= 8);
	CHECK_EQ(vmc_worker_slot(c), mine);       /* the parent keeps its slot */

	/* the child exited without closing: its slot is dead, with its cache */
	CHECK_EQ(vmc_worker_stats(c, r.slot, &w), 0);
	CHECK_EQ(w.pid, pid);
	CHECK_EQ(w.alive, 0);
	CHECK_EQ(w.cached, r.cached);
	CHECK_EQ(vmc_worker_stats(c, mine, &w), 0);
	CHECK(w.pid == getpid() && w.alive == 1);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 1);
	CHECK_EQ(rr.granules_returned, r.cached);
	CHECK_EQ(vmc_worker_stats(c, r.slot, &w), 0);
	CHECK_EQ(w.pid, 0);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.cached, 0);
	CHECK_EQ(s.free, 16);
	CHECK_EQ(s.workers, 1);
	CHECK(s.workers_recovered >= 1);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 0);
	close(fds[0]);
	close(fds[1]);
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

struct close_arg { vmc_t *c; int join; uint32_t vm; };

static int forked_closer(void *p)
{
	struct close_arg *a = p;
	if (a->join) {
		uint32_t g[3];
		if (vmc_worker_slot(a->c) == VMC_NIL || take_n(a->c, a->vm, 3, g) || put_n(a->c, 3, g))
			return 2;
	}
	return vmc_close(a->c) ? 3 : 0;
}

TEST(forked_child_closes)
{
	const char *name = tname("fc");
	vmc_config_t cfg;
	vmc_stats_t s;
	vmc_worker_stats_t w;
	vmc_recover_report_t rr;
	vmc_t *c = NULL;

	test_config(&cfg, 32 * MiB, 16 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	/* a child that never joined closes: the parent's slot stays the parent's */
	struct close_arg a = { c, 0, make_vm(c, "child") };
	CHECK_EQ(test_wait(test_fork(forked_closer, &a)), 0);
	CHECK_EQ(vmc_worker_stats(c, 0, &w), 0);
	CHECK(w.pid == getpid() && w.alive);
	/* a child that joined and closes gives its slot and cache back */
	a.join = 1;
	CHECK_EQ(test_wait(test_fork(forked_closer, &a)), 0);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.workers, 1);
	CHECK_EQ(s.cached, 0);
	CHECK_EQ(s.free, 8);
	CHECK_EQ(vmc_recover(c, &rr), 0);
	CHECK_EQ(rr.workers_reclaimed, 0);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

static int sleeper(void *p)
{
	vmc_t *c = p;
	if (vmc_worker_slot(c) == VMC_NIL)
		return 2;
	pause();
	return 0;
}

static int joiner(void *p)
{
	vmc_t *c = p;
	vmc_stats_t s;
	int err = vmc_stats(c, &s);
	if (err == EAGAIN && strstr(vmc_errmsg(), "max_workers"))
		return 42;
	return err == 0 ? 0 : 1;
}

TEST(worker_slots_run_out)
{
	const char *name = tname("sl");
	vmc_config_t cfg;
	vmc_t *c = NULL;

	test_config(&cfg, 32 * MiB, 8 * MiB);
	cfg.max_workers = 2;
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	pid_t p1 = test_fork(sleeper, c);
	REQUIRE(p1 > 0);
	vmc_worker_stats_t w;
	memset(&w, 0, sizeof w);
	for (int i = 0; i < 2000 && w.pid != p1; i++) {   /* wait for it to join */
		vmc_worker_stats(c, 1, &w);
		usleep(1000);
	}
	CHECK_EQ(w.pid, p1);
	CHECK_EQ(test_wait(test_fork(joiner, c)), 42);   /* EAGAIN: both slots live */
	kill(p1, SIGKILL);
	CHECK_EQ(test_wait(p1), 128 + SIGKILL);
	CHECK_EQ(test_wait(test_fork(joiner, c)), 0);    /* the dead slot is recovered */
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* ------------------------------------------------------- private */

static int private_child(void *p)
{
	vmc_t *c = p;
	vmc_stats_t s;
	uint32_t g[4];

	if (vmc_stats(c, &s) || s.used != 3 || s.workers != 2)
		return 2;
	if (take_n(c, c->h.max_vms - 1, 4, g) || put_n(c, 4, g))
		return 3;
	if (vmc_check(c, NULL))
		return 4;
	if (vmc_balloon(c, 8 * MiB, NULL))   /* the child may balloon too */
		return 5;
	return vmc_close(c) ? 6 : 0;
}

static int fd_is_memfd(int fd)
{
	char link[64], target[256];
	ssize_t n;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof target - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return !strncmp(target, "/memfd:", 7);
}

TEST(private_container)
{
	vmc_config_t cfg;
	vmc_stats_t s;
	uint32_t g[3];
	vmc_t *c = NULL;

	test_config(&cfg, 32 * MiB, 16 * MiB);
	REQUIRE(vmc_create(NULL, &cfg, &c) == 0 && c);
	CHECK(c->h.flags & META_POOL_MEMFD);
	CHECK_EQ(c->h.name[0], 0);
	CHECK(fd_is_memfd(c->meta_fd));
	CHECK(fd_is_memfd(c->pool_fd));
	uint32_t v1 = make_vm(c, "parent");
	for (uint32_t v = v1 + 1; v < c->h.max_vms; v++)
		make_vm(c, (char[]){ 'v', (char)('a' + v), 0 });
	CHECK_EQ(take_n(c, v1, 3, g), 0);
	CHECK_EQ(test_wait(test_fork(private_child, c)), 0);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 3);
	CHECK_EQ(s.unfunded, 4);      /* the child's balloon is seen by the parent */
	CHECK_EQ(s.workers, 1);
	CHECK(conserved(&s));
	CHECK(check_clean(c));
	CHECK_EQ(put_n(c, 3, g), 0);
	CHECK_EQ(vmc_open("", &(vmc_t *){0}), EINVAL);
	CHECK_EQ(vmc_destroy(""), EINVAL);
	CHECK_EQ(vmc_close(c), 0);
}

/* --------------------------------------------------------- balloon */

TEST(balloon)
{
	const char *name = tname("bl");
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	uint64_t got;
	uint32_t g[5];
	vmc_t *c = NULL;

	test_config(&cfg, 64 * MiB, 16 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	CHECK(vmc_stats(c, &s0) == 0);
	CHECK_EQ(s0.fund_granules, 8);
	CHECK(s0.fund_ops >= 1);

	/* nothing used: inflate all the way */
	got = 1;
	CHECK_EQ(vmc_balloon(c, 64 * MiB, &got), 0);
	CHECK_EQ(got, 64 * MiB);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK(s.unfunded == 32 && s.free == 0 && s.funded_bytes == 0 && conserved(&s));
	CHECK_EQ(s.unfund_granules - s0.unfund_granules, 8);
	CHECK(s.unfund_ops > s0.unfund_ops);
	CHECK(check_clean(c));

	/* deflate completely */
	s0 = s;
	CHECK_EQ(vmc_balloon(c, 0, &got), 0);
	CHECK_EQ(got, 0);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK(s.unfunded == 0 && s.free == 32 && s.funded_bytes == 64 * MiB && conserved(&s));
	CHECK_EQ(s.fund_granules - s0.fund_granules, 32);
	CHECK(s.fund_ops > s0.fund_ops);
	CHECK(check_clean(c));

	/* a partial target, and the same target again is a no-op */
	s0 = s;
	CHECK_EQ(vmc_balloon(c, 20 * MiB, &got), 0);
	CHECK_EQ(got, 20 * MiB);
	CHECK_EQ(vmc_balloon(c, 20 * MiB, &got), 0);
	CHECK(vmc_stats(c, &s) == 0 && s.unfunded == 10 && s.free == 22);
	CHECK_EQ(s.unfund_granules - s0.unfund_granules, 10);
	CHECK_EQ(s.fund_ops, s0.fund_ops);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_balloon(c, 0, NULL), 0);

	/* with granules used by VM 0: the 5 used stay, the 3 cached are taken back */
	CHECK(vmc_stats(c, &s0) == 0);
	uint32_t vm = make_vm(c, "vm");
	CHECK_EQ(take_n(c, vm, 5, g), 0);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 5);
	CHECK_EQ(s.cached, 3);
	CHECK_EQ(s.cache_refills - s0.cache_refills, 2);
	s0 = s;
	got = 0;
	vmc_clear_error();
	CHECK_EQ(vmc_balloon(c, 64 * MiB, &got), VMC_EFUNDS);
	CHECK(vmc_errmsg()[0]);
	CHECK_EQ(got, 27 * G);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK(s.unfunded == 27 && s.used == 5 && s.cached == 0 && s.free == 0 && conserved(&s));
	CHECK_EQ(s.unfund_granules - s0.unfund_granules, 27);
	CHECK(s.cache_drains > s0.cache_drains);
	CHECK_EQ(c->slots[c->slot].cache_count, 0);
	for (uint32_t i = 0; i < 5; i++) {
		struct vmc_granule *e = &c->gran[g[i]];
		CHECK(e->state == G_USED && e->owner == vm && e->index == i);
	}
	CHECK(check_clean(c));

	/* deflate back: the used granules are still untouched */
	CHECK_EQ(vmc_balloon(c, 0, &got), 0);
	CHECK_EQ(got, 0);
	CHECK(vmc_stats(c, &s) == 0 && s.unfunded == 0 && s.free == 27 && s.used == 5);
	for (uint32_t i = 0; i < 5; i++)
		CHECK(c->gran[g[i]].state == G_USED && c->gran[g[i]].index == i);
	CHECK(check_clean(c));
	CHECK_EQ(put_n(c, 5, g), 0);
	CHECK(vmc_stats(c, &s) == 0 && s.used == 0 && conserved(&s));
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* ----------------------------------------------- take / put via the cache */

TEST(take_put_through_cache)
{
	const char *name = tname("tp");
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	uint32_t g[24];
	vmc_t *c = NULL;
	const uint32_t wc = 8, batch = wc / 2;

	test_config(&cfg, 64 * MiB, 64 * MiB);
	cfg.worker_cache = wc;
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	struct vmc_slot *sl = &c->slots[c->slot];
	uint32_t vm = make_vm(c, "vm");
	CHECK(vmc_stats(c, &s0) == 0);
	uint64_t srefills = sl->refills, sdrains = sl->drains;

	/* take 24 one by one: the cache never exceeds wc, refills come in batches */
	uint32_t model = 0, refills = 0, drains = 0;
	for (uint32_t i = 0; i < 24; i++) {
		if (!model) {
			model = batch;
			refills++;
		}
		model--;
		CHECK_EQ(take_n(c, vm, 1, &g[i]), 0);
		CHECK(sl->cache_count <= wc);
		CHECK_EQ(sl->cache_count, model);
		CHECK(c->gran[g[i]].state == G_USED && c->gran[g[i]].owner == vm &&
		      c->gran[g[i]].index == i);
		for (uint32_t j = 0; j < i; j++)
			CHECK(g[j] != g[i]);
	}
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 24);
	CHECK_EQ(s.cached, model);
	CHECK_EQ(s.cache_refills - s0.cache_refills, refills);
	CHECK_EQ(sl->refills - srefills, refills);
	CHECK(conserved(&s));
	CHECK(check_clean(c));

	/* put them all back: overflowing the cache drains it in batches */
	for (uint32_t i = 0; i < 24; i++) {
		CHECK_EQ(put_n(c, 1, &g[i]), 0);
		if (++model > wc) {
			model = wc / 2;
			drains++;
		}
		CHECK(sl->cache_count <= wc);
		CHECK_EQ(sl->cache_count, model);
	}
	REQUIRE(slot_lock(c, c->slot) == 0);
	CHECK_EQ(pool_put(c, g[0]), EINVAL);      /* not in use any more */
	CHECK(vmc_errmsg()[0]);
	CHECK_EQ(pool_put(c, 1000), EINVAL);      /* out of range */
	slot_unlock(c, c->slot);
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 0);
	CHECK_EQ(s.cached, model);
	CHECK_EQ(s.free, 32 - model);
	CHECK_EQ(s.cache_drains - s0.cache_drains, drains);
	CHECK_EQ(sl->drains - sdrains, drains);
	CHECK(drains >= 2);
	CHECK(conserved(&s));
	CHECK(check_clean(c));

	/* pool_drain down to 0 */
	REQUIRE(slot_lock(c, c->slot) == 0);
	CHECK_EQ(pool_drain(c, c->slot, 0), 0);
	slot_unlock(c, c->slot);
	CHECK(vmc_stats(c, &s) == 0 && s.cached == 0 && s.free == 32);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

TEST(exhaustion)
{
	const char *name = tname("xh");
	vmc_config_t cfg;
	vmc_stats_t s;
	uint32_t g[10], extra;
	vmc_t *c = NULL;

	test_config(&cfg, 32 * MiB, 16 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	uint32_t vm = make_vm(c, "vm");
	CHECK_EQ(take_n(c, vm, 8, g), 0);
	REQUIRE(slot_lock(c, c->slot) == 0);
	vmc_clear_error();
	CHECK_EQ(pool_take(c, vm, &extra), VMC_EFUNDS);
	CHECK(errmsg_has("balloon"));
	CHECK_EQ(pool_take(c, vm, &extra), VMC_EFUNDS);   /* and again: no crash */
	slot_unlock(c, c->slot);
	CHECK(vmc_stats(c, &s) == 0 && s.used == 8 && s.free == 0 && s.cached == 0);
	CHECK(check_clean(c));
	/* more funding makes the next take succeed */
	CHECK_EQ(vmc_balloon(c, 14 * MiB, NULL), 0);
	CHECK_EQ(take_n(c, vm, 1, &g[8]), 0);
	CHECK(vmc_stats(c, &s) == 0 && s.used == 9 && conserved(&s));
	CHECK_EQ(put_n(c, 9, g), 0);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* ------------------------------------------------------- damaged files */

static int read_all(const char *path, unsigned char **buf, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return -1;
	*len = (size_t)st.st_size;
	*buf = malloc(*len);
	ssize_t r = pread(fd, *buf, *len, 0);
	close(fd);
	return r == (ssize_t)*len ? 0 : -1;
}

static int write_all(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -1;
	ssize_t r = pwrite(fd, buf, len, 0);
	close(fd);
	return r == (ssize_t)len ? 0 : -1;
}

static int poke(const char *path, off_t off, const void *v, size_t n)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t r = pwrite(fd, v, n, off);
	close(fd);
	return r == (ssize_t)n ? 0 : -1;
}

#define POKE32(path, off, v) poke(path, (off_t)(off), &(uint32_t){ (uint32_t)(v) }, 4)
#define POKE8(path, off, v) poke(path, (off_t)(off), &(uint8_t){ (uint8_t)(v) }, 1)

/* Open the damaged container: must be rejected with an error code, or
 * (deep damage) opened and then reported by vmc_check. */
static int expect_rejected(const char *name, const char *what, int deep_ok)
{
	vmc_t *c = NULL;
	int err = vmc_open(name, &c);

	if (err == VMC_ECORRUPT || err == VMC_EVERSION) {
		if (c || !vmc_errmsg()[0]) {
			fprintf(stderr, "  %s: handle or message wrong\n", what);
			return 0;
		}
		return 1;
	}
	if (err == 0 && deep_ok) {
		vmc_check_report_t r;
		int e2 = vmc_check(c, &r);
		vmc_close(c);
		if (e2 == VMC_ECORRUPT && r.errors && r.first[0])
			return 1;
		fprintf(stderr, "  %s: opened, vmc_check = %d\n", what, e2);
		return 0;
	}
	fprintf(stderr, "  %s: vmc_open = %d (%s) [%s]\n", what, err, vmc_strerror(err),
		vmc_errmsg());
	if (c)
		vmc_close(c);
	return 0;
}

/* Random damage may happen to hit only fields nobody reads: then opening
 * may succeed, and vmc_check may even be clean.  What must hold is an
 * error code or a consistent container, never a crash. */
static int survives(const char *name)
{
	vmc_t *c = NULL;
	vmc_check_report_t r;
	vmc_stats_t s;
	int err = vmc_open(name, &c);

	if (err == VMC_ECORRUPT || err == VMC_EVERSION)
		return c == NULL;
	if (err)
		return 0;
	err = vmc_check(c, &r);
	if (err == 0 && (vmc_stats(c, &s) || !conserved(&s)))
		err = -100;
	vmc_close(c);
	return err == 0 || err == VMC_ECORRUPT;
}

TEST(corrupt_metadata)
{
	const char *name = tname("cm");
	char meta[128];
	unsigned char *orig = NULL;
	size_t len = 0;
	vmc_config_t cfg;
	vmc_t *c = NULL;
	uint32_t g[3];

	test_config(&cfg, 64 * MiB, 32 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	CHECK_EQ(take_n(c, make_vm(c, "vm"), 3, g), 0);   /* used, cached, free on file */
	struct vmc_meta h = c->h;
	uint32_t free_head = c->m->free_head, nfree = c->m->nfree;
	vmc_close(c);                         /* drains the cache to the free list */
	shm_file(meta, sizeof meta, name, "meta");
	REQUIRE(read_all(meta, &orig, &len) == 0);
	REQUIRE(len == h.meta_size);
	REQUIRE(free_head != VMC_NIL);
	free_head = ((struct vmc_meta *)orig)->free_head;
	nfree = ((struct vmc_meta *)orig)->nfree;
	REQUIRE(free_head < h.ngranules && nfree >= 2);
	uint32_t second = ((struct vmc_granule *)(orig + h.off_granules))[free_head].next;
	REQUIRE(second < h.ngranules);

	const off_t GR = (off_t)h.off_granules;
	const off_t GS = sizeof(struct vmc_granule);
#define CASE(what, deep, stmt) do {                                           \
		CHECK(write_all(meta, orig, len) == 0);                      \
		CHECK((stmt) == 0);                                          \
		int ok_ = expect_rejected(name, what, deep);                 \
		CHECK(ok_);                                                  \
	} while (0)

	CASE("bad magic", 0, POKE32(meta, offsetof(struct vmc_meta, magic), 0xdeadbeef));
	CASE("version+1", 0, POKE32(meta, offsetof(struct vmc_meta, version), VMC_VERSION + 1));
	{
		vmc_t *x = NULL;
		CHECK(write_all(meta, orig, len) == 0);
		CHECK(POKE32(meta, offsetof(struct vmc_meta, version), VMC_VERSION + 1) == 0);
		CHECK_EQ(vmc_open(name, &x), VMC_EVERSION);
		CHECK(errmsg_has("version"));
	}
	CASE("hdr_size", 0, POKE32(meta, offsetof(struct vmc_meta, hdr_size), 8));
	CASE("ngranules+1", 0, POKE32(meta, offsetof(struct vmc_meta, ngranules), h.ngranules + 1));
	CASE("ngranules-1", 0, POKE32(meta, offsetof(struct vmc_meta, ngranules), h.ngranules - 1));
	CASE("ngranules huge", 0, POKE32(meta, offsetof(struct vmc_meta, ngranules), 0x7fffffff));
	CASE("max_workers", 0, POKE32(meta, offsetof(struct vmc_meta, max_workers), 100000));
	CASE("page_kind", 0, POKE32(meta, offsetof(struct vmc_meta, page_kind), 9));
	CASE("meta_size", 0, poke(meta, offsetof(struct vmc_meta, meta_size),
				  &(uint64_t){ h.meta_size * 2 }, 8));
	CASE("off_granules", 0, poke(meta, offsetof(struct vmc_meta, off_granules),
				     &(uint64_t){ h.off_granules + 64 }, 8));
	CASE("arena_base", 0, poke(meta, offsetof(struct vmc_meta, arena_base),
				   &(uint64_t){ 0xffffffffffe00000ull }, 8));
	CASE("arena_size", 0, poke(meta, offsetof(struct vmc_meta, arena_size),
				   &(uint64_t){ 1ull << 62 }, 8));
	{
		char junk[sizeof h.pool_path];
		memset(junk, 'x', sizeof junk);
		CASE("pool_path unterminated", 0,
		     poke(meta, offsetof(struct vmc_meta, pool_path), junk, sizeof junk));
	}
	CASE("truncated to half", 0, truncate(meta, (off_t)len / 2));
	CASE("truncated into the header", 0, truncate(meta, 100));
	CASE("truncated to 0", 0, truncate(meta, 0));
	CASE("grown", 0, truncate(meta, (off_t)len + 4096));
	CASE("granule state 200", 0, POKE8(meta, GR + 5 * GS + offsetof(struct vmc_granule, state), 200));
	CASE("free link out of range", 0,
	     POKE32(meta, GR + free_head * GS + offsetof(struct vmc_granule, next), h.ngranules + 7));
	CASE("free head out of range", 0,
	     POKE32(meta, offsetof(struct vmc_meta, free_head), h.ngranules));
	CASE("nfree out of range", 0,
	     POKE32(meta, offsetof(struct vmc_meta, nfree), h.ngranules + 1));
	CASE("cached owner out of range", 0, 
	     POKE8(meta, GR + free_head * GS + offsetof(struct vmc_granule, state), G_CACHED) ||
	     POKE32(meta, GR + free_head * GS + offsetof(struct vmc_granule, owner), 5000));
	CASE("used by VM out of range", 0,
	     POKE8(meta, GR + free_head * GS + offsetof(struct vmc_granule, state), G_USED) ||
	     POKE32(meta, GR + free_head * GS + offsetof(struct vmc_granule, owner), 5000));
	CASE("slot cache head out of range", 0,
	     POKE32(meta, (off_t)h.off_slots + 3 * sizeof(struct vmc_slot) +
			  offsetof(struct vmc_slot, cache_head), 99999));
	/* list-level damage: opening only range-checks, vmc_check must see it */
	CASE("free list cycle", 1,
	     POKE32(meta, GR + second * GS + offsetof(struct vmc_granule, next), free_head));
	CASE("free list self-loop", 1,
	     POKE32(meta, GR + free_head * GS + offsetof(struct vmc_granule, next), free_head));
	CASE("nfree off by one", 1, POKE32(meta, offsetof(struct vmc_meta, nfree), nfree - 1));
	CASE("nunfunded off by one", 1,
	     POKE32(meta, offsetof(struct vmc_meta, nunfunded),
		    ((struct vmc_meta *)orig)->nunfunded + 1));
	CASE("free granule marked unfunded", 1,
	     POKE8(meta, GR + second * GS + offsetof(struct vmc_granule, state), G_UNFUNDED));
	CASE("stray cached granule", 1,
	     POKE8(meta, GR + second * GS + offsetof(struct vmc_granule, state), G_CACHED) ||
	     POKE32(meta, GR + second * GS + offsetof(struct vmc_granule, owner), 2));
	CASE("cache count without list", 1,
	     POKE32(meta, (off_t)h.off_slots + 2 * sizeof(struct vmc_slot) +
			  offsetof(struct vmc_slot, cache_count), 4));

	/* random bytes over the immutable header, then with a valid magic and
	 * version so that the later checks are reached */
	srand(12345);
	for (int round = 0; round < 40; round++) {
		unsigned char junk[offsetof(struct vmc_meta, pool_lock)];
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = (unsigned char)rand();
		if (round >= 20) {
			memcpy(junk, orig, 24);   /* magic, version, hdr_size, meta_size */
			if (round >= 30)
				memcpy(junk, orig, 40);   /* and the entry sizes */
		}
		CASE("random header", 0, poke(meta, 0, junk, sizeof junk));
	}
	/* random bytes over the tables (locks left alone) */
	for (int round = 0; round < 20; round++) {
		size_t from = h.off_granules, n = (size_t)h.ngranules * GS;
		unsigned char *junk = malloc(n);
		for (size_t i = 0; i < n; i++)
			junk[i] = (unsigned char)rand();
		if (round >= 10)   /* sparse damage: a few bytes only */
			for (size_t i = 0; i < n; i++)
				junk[i] = i % 97 == (size_t)round ? junk[i] : orig[from + i];
		CHECK(write_all(meta, orig, len) == 0);
		CHECK(poke(meta, (off_t)from, junk, n) == 0);
		CHECK(survives(name));
		free(junk);
	}

	/* the clean copy still opens and checks clean */
	CHECK(write_all(meta, orig, len) == 0);
	c = NULL;
	CHECK_EQ(vmc_open(name, &c), 0);
	if (c) {
		vmc_stats_t s;
		CHECK(check_clean(c));
		CHECK(vmc_stats(c, &s) == 0 && s.used == 3 && s.free == nfree && conserved(&s));
		vmc_close(c);
	}
	free(orig);
	CHECK_EQ(vmc_destroy(name), 0);
}

TEST(pool_file_damaged)
{
	const char *name = tname("pf");
	char pool[128];
	vmc_config_t cfg;
	vmc_t *c = NULL;

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	vmc_close(c);
	shm_file(pool, sizeof pool, name, "pool");
	int fds = test_count_fds();

	CHECK(truncate(pool, 0) == 0);
	c = (vmc_t *)1;
	CHECK_EQ(vmc_open(name, &c), VMC_ECORRUPT);
	CHECK(c == NULL);
	CHECK(errmsg_has("truncated"));
	CHECK(truncate(pool, 16 * MiB) == 0);
	CHECK_EQ(vmc_open(name, &c), VMC_ECORRUPT);
	CHECK(truncate(pool, 32 * MiB) == 0);
	c = NULL;
	CHECK_EQ(vmc_open(name, &c), 0);     /* the right size again: accepted */
	if (c)
		vmc_close(c);
	CHECK(unlink(pool) == 0);
	CHECK_EQ(vmc_open(name, &c), VMC_ECORRUPT);
	CHECK(errmsg_has(pool));
	CHECK_EQ(test_count_fds(), fds);
	CHECK_EQ(vmc_destroy(name), 0);
	CHECK_EQ(vmc_destroy(name), ENOENT);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "--child-open") && argc == 10)
		return child_open(argv + 2);
	if (argc == 5 && !strcmp(argv[1], "--child-arena"))
		return child_arena(argv + 2);
	if (argc > 1) {
		fprintf(stderr, "unknown child mode %s\n", argv[1]);
		return 2;
	}
	RUN(create_open_close_destroy);
	RUN(create_existing_is_eexist);
	RUN(destroy_while_open_keeps_working);
	RUN(bad_input);
	RUN(unrelated_process_opens_by_name);
	RUN(arena_taken_in_opener);
	RUN(forked_child_uses_parent_handle);
	RUN(forked_child_closes);
	RUN(worker_slots_run_out);
	RUN(private_container);
	RUN(balloon);
	RUN(take_put_through_cache);
	RUN(exhaustion);
	RUN(corrupt_metadata);
	RUN(pool_file_damaged);
	destroy_all();
	return test_done();
}
