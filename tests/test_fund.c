/*
 * test_fund.c - funding on demand (vmc/fund_policy ondemand, fund.c) and
 * the out-of-funds messages of both policies:
 *  - commits beyond fund_size fund more, a batch at a time, up to the
 *    pool size; at exhaustion a clean VMC_EFUNDS that says so, and every
 *    committed page can be touched (a child that gets SIGBUS fails);
 *  - the balloon target holds: what vmc_balloon left unfunded stays so;
 *  - a failing funding system call (the N-th fallocate, or every one) is a
 *    clean error that leaks no memory, and a later commit works;
 *  - two workers funding at once count every funded granule exactly;
 *  - a worker killed at a sample of the instructions of an on-demand fund
 *    leaves a pool whose funded granules are exactly the memory of the
 *    pool file, whose counters add up, and that funds to the end again;
 *  - hugetlb (2 MiB granules; hugepages reserved as root if none are
 *    free): a fund the host has no hugepages for is VMC_EFUNDS naming
 *    `vmcctl hugepages`, never a SIGBUS;
 *  - the profile key and its environment override, bad values included.
 */
#include "meta.h"
#include "os/os.h"
#include "ptstep.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define G test_granule()

/* An on-demand container: pool and fund bytes, fund_batch bytes per fund. */
static vmc_t *make_od(const char *tag, uint64_t pool, uint64_t fund, uint64_t batch)
{
	vmc_config_t cfg;

	test_config(&cfg, pool, fund);
	cfg.fund_policy = VMC_FUND_ONDEMAND;
	cfg.fund_batch = batch;
	return make_cfg(tag, &cfg);
}

static uint64_t funded(vmc_t *c)
{
	vmc_stats_t s;
	return vmc_stats(c, &s) ? ~0ull : s.funded_bytes;
}

/* Funded granules are exactly the pool file's memory, the tables check,
 * and the counts add up. */
static int sound(vmc_t *c)
{
	vmc_stats_t s;
	int ok = stats_conserved(c, &s) && check_clean(c);
	if (ok && pool_file_bytes(c) != s.funded_bytes) {
		fprintf(stderr, "  the pool file holds %llu bytes, %llu are funded\n",
			(unsigned long long)pool_file_bytes(c), (unsigned long long)s.funded_bytes);
		ok = 0;
	}
	return ok;
}

struct touch { vmc_t *c; uint32_t vm, from, n; };

/* Child: write and read back every 4 KiB page of granules [from, n) of the VM. */
static int touch_all(void *p)
{
	struct touch *t = p;
	volatile char *base;

	default_segv();
	if (vmc_attach(t->c, t->vm, (void **)&base))
		return 2;
	for (size_t off = (size_t)t->from * G; off < (size_t)t->n * G; off += 4096) {
		base[off] = 0x5a;
		if (base[off] != 0x5a)
			return 3;
	}
	return vmc_detach(t->c, t->vm) ? 4 : 0;
}

/* Touch every page of vm's granules [from, n) in a forked child: 0 if it
 * got through (no SIGBUS, no SIGSEGV). */
static int touch_range(vmc_t *c, uint32_t vm, uint32_t from, uint32_t n)
{
	struct touch t = { c, vm, from, n };
	return test_wait(test_fork(touch_all, &t));
}

static int touch_in_child(vmc_t *c, uint32_t vm, uint32_t n)
{
	struct touch t = { c, vm, 0, n };
	return test_wait(test_fork(touch_all, &t));
}

/* -------------------------------------------------------- the commit path */

TEST(commits_fund_in_batches_up_to_the_pool)
{
	vmc_t *c = make_od("od", 64 * MiB, 0, 4 * G);
	vmc_stats_t s;
	char *base;

	REQUIRE(c);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.funded_bytes, 0);
	CHECK_EQ(s.fund_policy, VMC_FUND_ONDEMAND);
	CHECK_EQ(s.fund_batch, 4 * G);
	uint32_t a = mkvm(c, "A", 64 * MiB), b = mkvm(c, "B", 2 * MiB);
	REQUIRE(a != VMC_NIL && b != VMC_NIL);
	REQUIRE(vmc_attach(c, a, (void **)&base) == 0);
	for (uint32_t i = 0; i < 32; i++) {
		CHECK_EQ(vmc_commit(c, at(base, i), G, 0), 0);
		put_pat(base, 7, i);
		CHECK_EQ(funded(c), (uint64_t)(i + 4) / 4 * 4 * G);   /* a batch at a time */
	}
	for (uint32_t i = 0; i < 32; i++)
		CHECK(has_pat(base, 7, i));
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.ondemand_ops, 8);
	CHECK_EQ(s.ondemand_granules, 32);
	CHECK_EQ(s.fund_granules, 32);
	CHECK_EQ(vmc_detach(c, a), 0);
	/* the pool is used up: a clean error that says so, and nothing else */
	REQUIRE(vmc_attach(c, b, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, G, 0), VMC_EFUNDS);
	CHECK(errmsg_has("all ") && errmsg_has("of the pool is funded"));
	CHECK(!strstr(vmc_errmsg(), "reserve") && !strstr(vmc_errmsg(), "balloon"));
	CHECK_EQ(vmc_detach(c, b), 0);
	CHECK_EQ(touch_in_child(c, a, 32), 0);
	CHECK(sound(c));
	finish(c);
}

TEST(a_large_commit_funds_what_it_needs_at_once)
{
	vmc_t *c = make_od("big", 64 * MiB, 0, 4 * G);
	vmc_stats_t s;
	char *base;

	REQUIRE(c);
	uint32_t a = mkvm(c, "A", 64 * MiB);
	REQUIRE(a != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, 10 * G, 0), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.funded_bytes, 10 * G);
	CHECK_EQ(s.ondemand_ops, 1);   /* one run of holes: one system call */
	/* a clone funds what it copies into */
	for (uint32_t i = 0; i < 10; i++)
		put_pat(base, 3, i);
	CHECK_EQ(vmc_detach(c, a), 0);
	uint32_t a2;
	CHECK_EQ(vmc_vm_clone(c, a, "A2", &a2), 0);
	CHECK_EQ(funded(c), 20 * G);
	REQUIRE(vmc_attach(c, a2, (void **)&base) == 0);
	for (uint32_t i = 0; i < 10; i++)
		CHECK(has_pat(base, 3, i));
	CHECK_EQ(vmc_detach(c, a2), 0);
	CHECK(sound(c));
	finish(c);

	/* a region takes a run of free funded granules: funded on demand too */
	vmc_config_t cfg;
	void *rp;
	test_config(&cfg, 32 * MiB, 0);
	cfg.fund_policy = VMC_FUND_ONDEMAND;
	cfg.fund_batch = 2 * G;
	cfg.region_space = 16 * MiB;
	REQUIRE((c = make_cfg("rg", &cfg)));
	CHECK_EQ(vmc_region_create(c, "R", 6 * G, 0, &rp), 0);
	CHECK_EQ(funded(c), 6 * G);
	CHECK(all_zero(rp, 6 * G));
	CHECK_EQ(vmc_region_create(c, "S", 12 * G, 0, &rp), VMC_EFUNDS);  /* 16 in all */
	CHECK(sound(c));
	finish(c);
}

TEST(the_balloon_target_holds)
{
	vmc_t *c = make_od("bt", 64 * MiB, 0, 4 * G);
	uint64_t achieved;
	vmc_stats_t s;
	char *base;

	REQUIRE(c);
	/* the operator funds half and keeps the other half out */
	CHECK_EQ(vmc_balloon(c, 16 * G, &achieved), 0);
	CHECK_EQ(achieved, 16 * G);
	uint32_t a = mkvm(c, "A", 64 * MiB);
	REQUIRE(a != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, 16 * G, 0), 0);
	CHECK_EQ(vmc_commit(c, at(base, 16), G, 0), VMC_EFUNDS);
	CHECK(errmsg_has("balloon target") && errmsg_has("vmcctl balloon t-bt-"));
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.unfunded, 16);
	CHECK_EQ(s.balloon_target, 16 * G);
	CHECK_EQ(s.ondemand_granules, 0);
	/* a lower target lets on-demand funding go further, to it */
	CHECK_EQ(vmc_balloon(c, 12 * G, NULL), 0);   /* funds 4 itself */
	CHECK_EQ(vmc_balloon(c, 8 * G, NULL), 0);
	CHECK_EQ(vmc_commit(c, at(base, 16), 8 * G, 0), 0);
	CHECK_EQ(vmc_commit(c, at(base, 24), G, 0), VMC_EFUNDS);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.unfunded, 8);
	/* release 4: they are reused, and still nothing is funded past it */
	CHECK_EQ(vmc_release(c, base, 4 * G, 0), 0);
	CHECK_EQ(vmc_commit(c, at(base, 24), 4 * G, 0), 0);
	CHECK_EQ(funded(c), 24 * G);
	CHECK_EQ(vmc_detach(c, a), 0);
	CHECK_EQ(touch_range(c, a, 4, 28), 0);
	CHECK(sound(c));
	finish(c);
}

/* Up front nothing is funded by a commit, and the message names only what
 * applies: the balloon when something is unfunded (the vmcctl command only
 * for a named container), the reserve fund only when it is in the way. */
TEST(upfront_messages_say_only_what_applies)
{
	vmc_config_t cfg;
	vmc_t *c;
	char *base;

	test_config(&cfg, 64 * MiB, 16 * MiB);   /* 8 of 32 granules funded */
	REQUIRE(vmc_create(NULL, &cfg, &c) == 0);
	uint32_t a = mkvm(c, "A", 64 * MiB);
	REQUIRE(a != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, 9 * G, 0), VMC_EFUNDS);
	CHECK(errmsg_has("vmc_balloon") && !strstr(vmc_errmsg(), "vmcctl") &&
	      !strstr(vmc_errmsg(), "reserve"));
	CHECK_EQ(vmc_commit(c, base, 8 * G, 0), 0);
	CHECK_EQ(vmc_commit(c, at(base, 8), G, 0), VMC_EFUNDS);
	CHECK_EQ(funded(c), 8 * G);
	CHECK_EQ(vmc_detach(c, a), 0);
	CHECK(sound(c));
	vmc_close(c);

	test_config(&cfg, 16 * MiB, 16 * MiB);   /* all funded, named */
	cfg.reserve_size = 4 * MiB;              /* 2 granules */
	REQUIRE((c = make_cfg("up", &cfg)));
	REQUIRE((a = mkvm(c, "A", 16 * MiB)) != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, 7 * G, 0), VMC_EFUNDS);
	CHECK(errmsg_has("reserve fund") && errmsg_has("of the pool is funded") &&
	      !strstr(vmc_errmsg(), "balloon"));
	CHECK_EQ(vmc_commit(c, base, 8 * G, VMC_COMMIT_RESERVE), 0);
	CHECK_EQ(vmc_detach(c, a), 0);
	uint32_t b = mkvm(c, "B", 2 * MiB);
	REQUIRE(b != VMC_NIL && vmc_attach(c, b, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, G, VMC_COMMIT_RESERVE), VMC_EFUNDS);
	CHECK(errmsg_has("of the pool is funded") && !strstr(vmc_errmsg(), "reserve") &&
	      !strstr(vmc_errmsg(), "balloon"));
	CHECK_EQ(vmc_detach(c, b), 0);
	CHECK(sound(c));
	finish(c);
}

/* ------------------------------------------------------ failing system calls */

static int (*real_fallocate)(int, int, off_t, off_t);

/* Funding fails (ENOMEM), punching works. */
static int no_memory(int fd, int mode, off_t off, off_t len)
{
	if (!mode) {
		errno = ENOMEM;
		return -1;
	}
	return real_fallocate(fd, mode, off, len);
}

TEST(a_failing_fund_is_a_clean_error)
{
	char *base;

	/* the N-th fallocate of a commit fails with ENOSPC, for every N */
	for (uint64_t nth = 1; nth <= 4; nth++) {
		vmc_t *c = make_od("fi", 64 * MiB, 0, 8 * G);
		REQUIRE(c);
		uint32_t a = mkvm(c, "A", 64 * MiB);
		REQUIRE(a != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
		vmc_os_inject(VMC_OS_FALLOCATE, nth, ENOSPC);
		int err = vmc_commit(c, base, 2 * G, 0);
		vmc_os_inject_clear();
		/* the batch failed: the commit funded its own 2 instead */
		CHECK(err == 0 || err == VMC_EFUNDS);
		if (nth == 1)
			CHECK(err == 0 && funded(c) == 2 * G);
		CHECK(sound(c));
		CHECK_EQ(vmc_commit(c, at(base, 2), 20 * G, 0), 0);
		CHECK_EQ(vmc_detach(c, a), 0);
		CHECK(sound(c));
		finish(c);
	}

	/* the host has no memory at all: VMC_EFUNDS, nothing funded, nothing
	 * allocated; then it has again */
	vmc_t *c = make_od("nm", 64 * MiB, 0, 8 * G);
	vmc_stats_t s;
	REQUIRE(c);
	uint32_t a = mkvm(c, "A", 64 * MiB);
	REQUIRE(a != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
	real_fallocate = vmc_os.fallocate;
	vmc_os.fallocate = no_memory;
	CHECK_EQ(vmc_commit(c, base, G, 0), VMC_EFUNDS);
	vmc_os.fallocate = real_fallocate;
	CHECK(errmsg_has("funding on demand failed") && errmsg_has("Cannot allocate memory"));
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.funded_bytes, 0);
	CHECK_EQ(s.fund_granules, 0);
	CHECK_EQ(pool_file_bytes(c), 0);
	vmc_probe_t pr;
	CHECK(vmc_probe(c, base, &pr) == 0 && !pr.committed);
	CHECK_EQ(vmc_commit(c, base, G, 0), 0);
	CHECK_EQ(funded(c), 8 * G);
	CHECK_EQ(vmc_detach(c, a), 0);
	CHECK_EQ(touch_in_child(c, a, 1), 0);
	CHECK(sound(c));
	finish(c);
}

/* ------------------------------------------------------------ two workers */

struct worker { vmc_t *c; uint32_t vm, n; };

static int commit_one_by_one(void *p)
{
	struct worker *w = p;
	char *base;
	int err;

	if ((err = vmc_attach(w->c, w->vm, (void **)&base)))
		return 2;
	for (uint32_t i = 0; i < w->n; i++) {
		if ((err = vmc_commit(w->c, at(base, i), G, 0))) {
			fprintf(stderr, "  worker: commit %u: %s\n", i, vmc_errmsg());
			return 3;
		}
		put_pat(base, w->vm, i);
	}
	for (uint32_t i = 0; i < w->n; i++)
		if (!has_pat(base, w->vm, i))
			return 4;
	if (vmc_detach(w->c, w->vm))
		return 5;
	return vmc_close(w->c) ? 6 : 0;
}

TEST(two_workers_fund_at_once_and_every_granule_is_counted)
{
	vmc_t *c = make_od("mp", 128 * MiB, 0, 2 * G);
	vmc_stats_t s;

	REQUIRE(c);
	struct worker w[2] = { { c, mkvm(c, "A", 64 * MiB), 30 }, { c, mkvm(c, "B", 64 * MiB), 30 } };
	REQUIRE(w[0].vm != VMC_NIL && w[1].vm != VMC_NIL);
	pid_t p0 = test_fork(commit_one_by_one, &w[0]), p1 = test_fork(commit_one_by_one, &w[1]);
	CHECK_EQ(test_wait(p0), 0);
	CHECK_EQ(test_wait(p1), 0);
	REQUIRE(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.used, 60);
	CHECK(s.funded_bytes >= 60 * G && s.funded_bytes <= 64 * G);
	CHECK_EQ(s.funded_bytes, s.fund_granules * G);        /* counted exactly */
	CHECK_EQ(s.ondemand_granules, s.fund_granules);
	CHECK(s.ondemand_ops <= 32 && s.ondemand_ops >= 30 / 2);
	CHECK_EQ(touch_in_child(c, w[0].vm, 30), 0);
	CHECK_EQ(touch_in_child(c, w[1].vm, 30), 0);
	CHECK(sound(c));
	finish(c);
}

/* ------------------------------------------------------------- crash sweep */

struct sweep { vmc_t *c; uint32_t a, p; char *base; };

static int sw_prepare(void *p)
{
	struct sweep *w = p;
	vmc_config_t cfg;

	test_config(&cfg, 32 * MiB, 0);
	cfg.fund_policy = VMC_FUND_ONDEMAND;
	cfg.fund_batch = 4 * G;
	if (vmc_create(NULL, &cfg, &w->c))
		return -1;
	w->a = mkvm(w->c, "A", 8 * MiB);
	w->p = mkvm(w->c, "P", 32 * MiB);
	return w->a == VMC_NIL || w->p == VMC_NIL;
}

/* child, untraced: join and attach */
static int sw_pre(void *p)
{
	struct sweep *w = p;
	return vmc_attach(w->c, w->a, (void **)&w->base) != 0;
}

/* child, traced: a commit that funds on demand (the pool has none free) */
static int sw_op(void *p)
{
	struct sweep *w = p;
	return vmc_commit(w->c, w->base, 2 * G, 0);
}

static int sw_after(void *p, char *why, size_t n)
{
	struct sweep *w = p;
	vmc_check_report_t r;
	vmc_stats_t s;
	char *base;
	int err;

	if ((err = vmc_recover(w->c, NULL)) || (err = vmc_check(w->c, &r)))
		return snprintf(why, n, "recover/check: %s", vmc_errmsg()), -1;
	if ((err = vmc_stats(w->c, &s)))
		return snprintf(why, n, "stats: %s", vmc_errmsg()), -1;
	/* no memory behind an unfunded granule, none missing behind a funded one */
	if (pool_file_bytes(w->c) != s.funded_bytes)
		return snprintf(why, n, "the pool file holds %llu bytes, %llu are funded",
				(unsigned long long)pool_file_bytes(w->c),
				(unsigned long long)s.funded_bytes), -1;
	/* counted at most once; a funder killed after funding, before counting,
	 * leaves at most its run uncounted */
	if (s.fund_granules * G > s.funded_bytes || s.funded_bytes > (s.fund_granules + 4) * G ||
	    s.ondemand_granules > s.fund_granules)
		return snprintf(why, n, "funded %llu bytes, counters say %llu granules (%llu on "
				"demand)", (unsigned long long)s.funded_bytes,
				(unsigned long long)s.fund_granules,
				(unsigned long long)s.ondemand_granules), -1;
	/* and the rest of the pool funds on demand, reading zero */
	uint32_t rest = 16 - s.used;
	if (vmc_attach(w->c, w->p, (void **)&base))
		return snprintf(why, n, "attach P: %s", vmc_errmsg()), -1;
	err = vmc_commit(w->c, base, (size_t)rest * G, 0);
	int zero = !err;
	for (uint32_t i = 0; i < rest && zero; i++)   /* a page of each: faults cost */
		zero = all_zero(at(base, i), 4096);
	vmc_detach(w->c, w->p);
	if (err || !zero)
		return snprintf(why, n, "committing the other %u granules: %s", rest,
				err ? vmc_errmsg() : "they do not read zero"), -1;
	if (vmc_check(w->c, &r) || pool_file_bytes(w->c) != 16 * G)
		return snprintf(why, n, "after funding it all: %s", r.first), -1;
	return 0;
}

static void sw_cleanup(void *p)
{
	struct sweep *w = p;
	vmc_close(w->c);
	w->c = NULL;
}

TEST(a_worker_killed_inside_a_fund_leaves_it_whole)
{
	struct sweep w = { 0 };
	struct kill_sweep sw = { "on-demand commit", sw_prepare, sw_pre, sw_op, sw_after,
				 sw_cleanup, &w, 60 };
	struct kill_result r;

	if (kill_sweep(&sw, &r)) {
		fprintf(stderr, "  ptrace single-step not usable here: kill sweep skipped\n");
		return;
	}
	CHECK(r.kills >= 15);
	CHECK(r.missed <= r.kills / 10 + 1);
	CHECK_EQ(r.failures, 0);
}

/* ---------------------------------------------------------------- hugetlb */

TEST(hugetlb_without_pages_is_an_error_not_a_sigbus)
{
	char why[256], *base;
	long total0 = meminfo("HugePages_Total:");

	if (G != VMC_GRANULE_SIZE || !test_hugepages(8, why, sizeof why)) {
		fprintf(stderr, "  hugetlb part skipped: %s\n",
			G != VMC_GRANULE_SIZE ? "small granules" : why);
		return;
	}
	/* a pool larger than the free hugepages (other processes' pages are
	 * left alone: it only uses what is free, for a moment) */
	long free_now = meminfo("HugePages_Free:");
	uint32_t pool = (uint32_t)VMC_MIN(free_now + 4, 4096);
	vmc_config_t cfg;
	vmc_t *c;
	test_config(&cfg, (uint64_t)pool << 21, 0);
	cfg.window_size = (uint64_t)pool << 21;
	cfg.page_kind = VMC_PAGE_HUGETLB;
	cfg.granule_size = 0;
	cfg.fund_policy = VMC_FUND_ONDEMAND;
	cfg.fund_batch = 4ull << 21;
	int err = vmc_create(NULL, &cfg, &c);
	CHECK_EQ(err, 0);
	if (!err) {
		uint32_t a = mkvm(c, "A", (uint64_t)pool << 21), n = 0;
		REQUIRE(a != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
		while (n < pool && !(err = vmc_commit(c, at(base, n), G, 0)))
			n++;
		CHECK_EQ(err, VMC_EFUNDS);
		CHECK(n <= free_now && n + 8 >= free_now);  /* others may take a few */
		CHECK(errmsg_has("hugepages") && errmsg_has("vmcctl hugepages"));
		CHECK_EQ(vmc_detach(c, a), 0);
		CHECK_EQ(touch_in_child(c, a, n), 0);
		CHECK(check_clean(c));
		vmc_close(c);
	}
	if (meminfo("HugePages_Total:") != total0)   /* test_hugepages raised it */
		test_set_hugepages(total0);
}

/* ---------------------------------------------------------------- profile */

TEST(the_profile_key_and_its_environment_override)
{
	vmc_config_t cfg;
	char path[] = "/tmp/vmc_fund_profile_XXXXXX";

	unsetenv("VMC_FUND_POLICY");
	REQUIRE(vmc_config_init(&cfg) == 0);
	CHECK_EQ(cfg.fund_policy, VMC_FUND_UPFRONT);
	CHECK_EQ(cfg.fund_size, 256ull << 20);
	CHECK_EQ(cfg.fund_batch, 0);
	/* ondemand: the up-front default of fund_size becomes 0; a fund_size set
	 * after the policy stays */
	CHECK_EQ(vmc_config_set(&cfg, "vmc/fund_policy", "ondemand"), 0);
	CHECK_EQ(cfg.fund_policy, VMC_FUND_ONDEMAND);
	CHECK_EQ(cfg.fund_size, 0);
	CHECK_EQ(vmc_config_set(&cfg, "fund_size", "8M"), 0);
	CHECK_EQ(vmc_config_set(&cfg, "fund_policy", "UpFront"), 0);
	CHECK_EQ(cfg.fund_policy, VMC_FUND_UPFRONT);
	CHECK_EQ(cfg.fund_size, 8ull << 20);
	CHECK_EQ(vmc_config_set(&cfg, "fund_batch", "4M"), 0);
	CHECK_EQ(cfg.fund_batch, 4ull << 20);
	CHECK_EQ(vmc_config_set(&cfg, "vmc/fund_policy", "lazy"), VMC_EPROFILE);
	CHECK(errmsg_has("vmc/fund_policy = lazy") && errmsg_has("upfront or ondemand"));
	CHECK_EQ(cfg.fund_policy, VMC_FUND_UPFRONT);

	setenv("VMC_FUND_POLICY", "ondemand", 1);
	CHECK_EQ(vmc_config_init(&cfg), 0);
	CHECK_EQ(cfg.fund_policy, VMC_FUND_ONDEMAND);
	CHECK_EQ(cfg.fund_size, 0);
	setenv("VMC_FUND_POLICY", "sometimes", 1);
	CHECK_EQ(vmc_config_init(&cfg), VMC_EPROFILE);
	CHECK(errmsg_has("VMC_FUND_POLICY=sometimes"));
	unsetenv("VMC_FUND_POLICY");

	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	const char *text = "vmc/fund_policy = ondemand\nvmc/fund_size = 16M\nfund_batch = 1M\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	CHECK_EQ(vmc_config_init(&cfg), 0);
	CHECK_EQ(vmc_config_load(&cfg, path), 0);
	CHECK_EQ(cfg.fund_policy, VMC_FUND_ONDEMAND);
	CHECK_EQ(cfg.fund_size, 16ull << 20);
	CHECK_EQ(cfg.fund_batch, 1ull << 20);
	fd = open(path, O_WRONLY | O_TRUNC);
	REQUIRE(fd >= 0);
	text = "# a comment\nvmc/fund_policy = 1\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	CHECK_EQ(vmc_config_load(&cfg, path), VMC_EPROFILE);
	CHECK(errmsg_has("line 2") && errmsg_has("vmc/fund_policy"));
	unlink(path);

	/* vmc_create checks what a program sets directly */
	vmc_t *c;
	test_config(&cfg, 16 * MiB, 0);
	cfg.fund_policy = 7;
	CHECK_EQ(vmc_create(NULL, &cfg, &c), EINVAL);
	CHECK(errmsg_has("fund_policy"));
	cfg.fund_policy = VMC_FUND_ONDEMAND;
	cfg.fund_batch = 32 * MiB;
	CHECK_EQ(vmc_create(NULL, &cfg, &c), EINVAL);
	CHECK(errmsg_has("fund_batch"));
	/* on demand, create funds at least the reserve fund */
	cfg.fund_batch = 0;
	cfg.reserve_size = 4 * MiB;
	REQUIRE(vmc_create(NULL, &cfg, &c) == 0);
	CHECK_EQ(funded(c), 2 * G);
	/* and keeps it: only VMC_COMMIT_RESERVE commits use it, and the message
	 * says so when it is in the way */
	char *base;
	uint32_t a = mkvm(c, "A", 16 * MiB);
	REQUIRE(a != VMC_NIL && vmc_attach(c, a, (void **)&base) == 0);
	CHECK_EQ(vmc_commit(c, base, 6 * G, 0), 0);
	CHECK_EQ(funded(c), 8 * G);
	CHECK_EQ(vmc_commit(c, at(base, 6), G, 0), VMC_EFUNDS);
	CHECK(errmsg_has("reserve fund"));
	CHECK_EQ(vmc_commit(c, at(base, 6), 2 * G, VMC_COMMIT_RESERVE), 0);
	CHECK_EQ(vmc_detach(c, a), 0);
	CHECK(check_clean(c));
	vmc_close(c);
}

int main(void)
{
	RUN(commits_fund_in_batches_up_to_the_pool);
	RUN(a_large_commit_funds_what_it_needs_at_once);
	RUN(the_balloon_target_holds);
	RUN(upfront_messages_say_only_what_applies);
	RUN(a_failing_fund_is_a_clean_error);
	RUN(two_workers_fund_at_once_and_every_granule_is_counted);
	RUN(a_worker_killed_inside_a_fund_leaves_it_whole);
	RUN(hugetlb_without_pages_is_an_error_not_a_sigbus);
	RUN(the_profile_key_and_its_environment_override);
	destroy_all();
	return test_done();
}
