/*
 * test_stress.c - two forked workers run random attach / detach / commit /
 * release / rewrite / destroy+re-create over 8 VMs, in strict and in lazy
 * mode, while the parent runs vmc_check and vmc_stats concurrently.
 *
 * Every VM carries its own bookkeeping in its memory: granule 0 holds a
 * header (magic, which logical VM, its "life" (bumped on re-create), a
 * version bumped at every detach, and for each window index whether it is
 * committed and the version of its cookie).  Each committed granule holds
 * the cookie (VM, life, index, version) at its start, middle and end.  On
 * every attach the worker checks the whole window against the header:
 * committed indices carry their cookie, every other index is unreadable
 * (invariant 1), the header's version is the one the last detacher wrote
 * (no lost update: attach is exclusive, invariant 9), and the VM's
 * committed bytes match.  New memory must read as zero (invariant 4).
 * After a strict detach nothing is readable (invariant 2).  In lazy mode
 * the stale window left by a detach must keep showing the VM it showed,
 * never another VM's cookies, whatever the other worker does meanwhile
 * (invariant 3).
 *
 * A third phase kills workers with SIGKILL at random moments while they
 * run; the parent recovers, reclaims the orphans (KEEP), and the next
 * attach of such a VM checks it tolerantly (an operation may have been cut
 * short) but still insists that nothing of another VM shows up in it.
 *
 * Duration: VMC_STRESS_SECONDS (default 3) split over the runs; the seed is
 * printed and can be fixed with VMC_STRESS_SEED.
 */
#include "vm.h"
#include "window.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define G test_granule()
#define NVM 8
#define NW 2
#define NIDX 32                 /* window granules (64 MiB window) */
#define LIMIT_G 10              /* granules per VM */
#define MAGIC 0x5354524553533031ull

/* ------------------------------------------------------------- helpers */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static uint32_t rn(uint32_t n) { return (uint32_t)(rnd() % n); }

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* The VM's bookkeeping, in its granule 0. */
struct hdr {
	uint64_t magic;
	uint32_t lv, life;
	uint64_t version;
	uint32_t ver[NIDX];
	uint8_t  committed[NIDX];
};

/* What the processes share (an anonymous shared mapping). */
struct shared {
	uint32_t ids[NVM];          /* table id of logical VM lv */
	uint32_t life[NVM];         /* bumped when lv is destroyed and re-created */
	uint64_t expect[NVM];       /* header version the last detacher wrote */
	uint32_t dirty[NVM];        /* reclaimed after a kill: check tolerantly */
	uint32_t stop;
	uint64_t attaches[NW], busy[NW], commits[NW], releases[NW], efunds[NW],
		 elimits[NW], recreates[NW], stale_checks[NW];
	char     why[NW][256];      /* a worker's first failure */
};

static uint64_t cookie(uint32_t lv, uint32_t life, uint32_t i, uint32_t ver)
{
	return 0xc0de000000000000ull | ((uint64_t)(life & 0xff) << 40) |
	       ((uint64_t)lv << 32) | ((uint64_t)i << 24) | (ver & 0xffffff);
}

/* Does word w look like a cookie of (lv, life, i), any version? */
static int cookie_of(uint64_t w, uint32_t lv, uint32_t life, uint32_t i)
{
	return (w & 0xffffffffff000000ull) == (cookie(lv, life, i, 0) & 0xffffffffff000000ull);
}

static void put_cookie(void *base, uint32_t i, uint64_t v)
{
	uint64_t *g = at(base, i);
	g[0] = v;
	g[G / 16] = v;
	g[G / 8 - 1] = v;
}

static int has_cookie(void *base, uint32_t i, uint64_t v)
{
	uint64_t *g = at(base, i);
	return g[0] == v && g[G / 16] == v && g[G / 8 - 1] == v;
}

/* Zero, fully or at 16 places spread over the granule. */
static int zero_granule(const void *p, int full)
{
	const uint64_t *w = p;
	if (full) {
		for (size_t k = 0; k < G / 8; k++)
			if (w[k])
				return 0;
		return 1;
	}
	for (size_t k = 0; k < 16; k++)
		if (w[k * (G / 8 / 16) + (k * 37) % 512])
			return 0;
	return w[0] == 0 && w[G / 8 - 1] == 0;
}

/* Granule 0 past the header's own bytes is zero (sampled). */
static int zero_past_header(const void *p)
{
	const uint64_t *w = p;
	for (size_t k = 1; k < 16; k++)
		if (w[k * (G / 8 / 16) + (k * 37) % 512])
			return 0;
	return w[G / 8 - 1] == 0;
}

/* ------------------------------------------------------------- workers */

struct ctx {
	vmc_t *c;
	struct shared *sh;
	int w;                 /* worker number */
	int strict;
	int kills;             /* phase with kills: tolerate cut-short operations */
	uint32_t win_lv, win_life;   /* lazy: what the stale window shows */
	int win_valid;
};

#define FAILW(x, ...) do {                                                   \
		snprintf((x)->sh->why[(x)->w], sizeof (x)->sh->why[0], __VA_ARGS__); \
		return 1;                                                    \
	} while (0)

static const char *vm_name(uint32_t lv)
{
	static char b[16];
	snprintf(b, sizeof b, "vm%u", lv);
	return b;
}

/* Check the attached VM lv against its header; set it up if it is empty.
 * Returns 0, 1 (failure, why[] set) or 2 (could not set up: skip). */
static int verify(struct ctx *x, uint32_t lv, uint32_t id, void *base)
{
	struct shared *sh = x->sh;
	struct hdr *h = base;
	vmc_vm_stats_t vs;
	uint32_t life = __atomic_load_n(&sh->life[lv], __ATOMIC_ACQUIRE);
	int dirty = __atomic_load_n(&sh->dirty[lv], __ATOMIC_ACQUIRE);
	int err;

	if ((err = vmc_vm_stats(x->c, id, &vs)))
		FAILW(x, "vm_stats(%u): %d", id, err);
	if (vs.state != VMC_VM_ATTACHED || vs.pid != getpid())
		FAILW(x, "VM %u: state %d pid %d while attached here", id, vs.state, vs.pid);
	if (!readable(base) || (dirty && h->magic != MAGIC)) {
		/* empty (new, or re-created): set up the header */
		if (vs.committed && !dirty)
			FAILW(x, "VM lv%u: %llu bytes committed but granule 0 unreadable", lv,
			      (unsigned long long)vs.committed);
		if (__atomic_load_n(&sh->expect[lv], __ATOMIC_ACQUIRE) != 0 && !dirty)
			FAILW(x, "VM lv%u lost its header (expected version %llu)", lv,
			      (unsigned long long)sh->expect[lv]);
		if (!readable(base)) {
			if ((err = vmc_commit(x->c, base, G, 0)) == VMC_EFUNDS)
				return 2;
			if (err)
				FAILW(x, "commit header: %d %s", err, vmc_errmsg());
			if (!zero_granule(base, 1))
				FAILW(x, "VM lv%u: a new header granule is not zero", lv);
		} else if (!zero_past_header(base)) {
			/* a header whose writing a crash cut short: only the
			 * header's own bytes may be non-zero */
			FAILW(x, "VM lv%u: granule 0 holds neither a header nor zeros", lv);
		}
		memset(h, 0, sizeof *h);
		h->lv = lv;
		h->life = life;
		h->committed[0] = 1;
		h->magic = MAGIC;
	}
	if (h->magic != MAGIC || h->lv != lv || h->life != life)
		FAILW(x, "VM lv%u (id %u): header magic %#llx lv %u life %u, expected life %u",
		      lv, id, (unsigned long long)h->magic, h->lv, h->life, life);
	uint64_t expect = __atomic_load_n(&sh->expect[lv], __ATOMIC_ACQUIRE);
	if (!dirty && h->version != expect)
		FAILW(x, "VM lv%u: header version %llu, the last detach wrote %llu (lost update)",
		      lv, (unsigned long long)h->version, (unsigned long long)expect);
	uint32_t n = 1;
	for (uint32_t i = 1; i < NIDX; i++) {
		int r = readable(at(base, i));
		uint64_t *g = at(base, i);
		if (!dirty) {
			if (r != h->committed[i])
				FAILW(x, "VM lv%u index %u: readable %d, committed %d (%s)", lv, i, r,
				      h->committed[i], r ? "another VM's memory shows" : "lost");
			if (r && !has_cookie(base, i, cookie(lv, life, i, h->ver[i])))
				FAILW(x, "VM lv%u index %u: %#llx, expected %#llx", lv, i,
				      (unsigned long long)g[0],
				      (unsigned long long)cookie(lv, life, i, h->ver[i]));
			n += r;
			continue;
		}
		/* after a crash: an operation may have been cut short */
		if (!r) {
			h->committed[i] = 0;
			continue;
		}
		uint64_t w3[3] = { g[0], g[G / 16], g[G / 8 - 1] };
		int ok = 1, any = 0;
		for (int k = 0; k < 3; k++) {
			ok &= w3[k] == 0 || cookie_of(w3[k], lv, life, i);
			any |= w3[k] != 0;
		}
		if (!ok || (!any && !zero_granule(g, 1)))
			FAILW(x, "VM lv%u index %u after a crash: %#llx %#llx %#llx: not this "
			      "VM's (another VM's data?)", lv, i, (unsigned long long)w3[0],
			      (unsigned long long)w3[1], (unsigned long long)w3[2]);
		h->committed[i] = 1;
		h->ver[i] = (h->ver[i] + 1) & 0xffffff;
		put_cookie(base, i, cookie(lv, life, i, h->ver[i]));
		n++;
	}
	if ((err = vmc_vm_stats(x->c, id, &vs)))
		FAILW(x, "vm_stats(%u): %d", id, err);
	if ((uint64_t)n * G != vs.committed)
		FAILW(x, "VM lv%u: %u granules readable, %llu bytes committed", lv, n,
		      (unsigned long long)vs.committed);
	if (dirty) {
		__atomic_store_n(&sh->expect[lv], h->version, __ATOMIC_RELEASE);
		__atomic_store_n(&sh->dirty[lv], 0, __ATOMIC_RELEASE);
	}
	return 0;
}

/* Lazy mode, detached: the stale window shows (win_lv, win_life) and
 * nothing else, whatever happened to that VM since. */
static int check_stale(struct ctx *x)
{
	void *base = x->c->arena;
	if (!x->win_valid)
		return 0;
	x->sh->stale_checks[x->w]++;
	for (uint32_t i = 0; i < NIDX; i++) {
		if (!readable(at(base, i)))
			continue;
		uint64_t *g = at(base, i);
		if (i == 0) {
			struct hdr *h = base;
			if (h->magic != MAGIC || h->lv != x->win_lv || h->life != x->win_life)
				FAILW(x, "stale window index 0: magic %#llx lv %u life %u, showed "
				      "lv%u life %u", (unsigned long long)h->magic, h->lv, h->life,
				      x->win_lv, x->win_life);
			continue;
		}
		uint64_t w3[3] = { g[0], g[G / 16], g[G / 8 - 1] };
		for (int k = 0; k < 3; k++)
			if (!cookie_of(w3[k], x->win_lv, x->win_life, i) && !(x->kills && !w3[k]))
				FAILW(x, "stale window index %u shows %#llx, not a cookie of lv%u "
				      "life %u: a recycled granule reached another VM", i,
				      (unsigned long long)w3[k], x->win_lv, x->win_life);
	}
	return 0;
}

static int pick(struct hdr *h, int committed)
{
	uint32_t i = 1 + rn(NIDX - 1);
	for (uint32_t k = 0; k < NIDX - 1; k++, i = 1 + i % (NIDX - 1))
		if (!!h->committed[i] == committed)
			return (int)i;
	return -1;
}

static int one_op(struct ctx *x, uint32_t lv, uint32_t id, void *base)
{
	struct shared *sh = x->sh;
	struct hdr *h = base;
	uint32_t life = h->life, r = rn(100);
	int err;

	if (r < 40) {                                   /* commit 1..3 granules */
		int i = pick(h, 0);
		uint32_t n = 1 + rn(3), need = 0, have = 0;
		if (i < 0)
			return 0;
		if ((uint32_t)i + n > NIDX)
			n = NIDX - (uint32_t)i;
		for (uint32_t k = 0; k < NIDX; k++)
			have += h->committed[k];
		for (uint32_t k = (uint32_t)i; k < (uint32_t)i + n; k++)
			need += !h->committed[k];
		err = vmc_commit(x->c, at(base, (uint32_t)i), (size_t)n * G, 0);
		if (err == VMC_ELIMIT || err == VMC_EFUNDS) {
			if (err == VMC_ELIMIT && have + need <= LIMIT_G)
				FAILW(x, "ELIMIT with %u + %u <= %u granules", have, need, LIMIT_G);
			if (err == VMC_EFUNDS)
				sh->efunds[x->w]++;
			else
				sh->elimits[x->w]++;
			for (uint32_t k = (uint32_t)i; k < (uint32_t)i + n; k++)
				if (!h->committed[k] && readable(at(base, k)))
					FAILW(x, "failed commit (%d) left index %u mapped", err, k);
			return 0;
		}
		if (err)
			FAILW(x, "commit lv%u [%d, +%u): %d %s", lv, i, n, err, vmc_errmsg());
		if (have + need > LIMIT_G)
			FAILW(x, "commit past the limit succeeded");
		for (uint32_t k = (uint32_t)i; k < (uint32_t)i + n; k++) {
			if (h->committed[k]) {
				if (!has_cookie(base, k, cookie(lv, life, k, h->ver[k])))
					FAILW(x, "a commit changed committed index %u", k);
				continue;
			}
			if (!zero_granule(at(base, k), rn(4) == 0))
				FAILW(x, "new granule at lv%u index %u is not zero: %#llx", lv, k,
				      (unsigned long long)*(uint64_t *)at(base, k));
			h->ver[k] = 1;
			put_cookie(base, k, cookie(lv, life, k, 1));
			h->committed[k] = 1;
			sh->commits[x->w]++;
		}
	} else if (r < 70) {                            /* release one */
		int i = pick(h, 1);
		if (i < 0)
			return 0;
		h->committed[i] = 0;
		if ((err = vmc_release(x->c, at(base, (uint32_t)i), G, 0)))
			FAILW(x, "release lv%u %d: %d %s", lv, i, err, vmc_errmsg());
		if (readable(at(base, (uint32_t)i)))
			FAILW(x, "released index %d still readable", i);
		sh->releases[x->w]++;
	} else {                                        /* rewrite one */
		int i = pick(h, 1);
		if (i < 0)
			return 0;
		h->ver[i] = (h->ver[i] + 1) & 0xffffff;
		put_cookie(base, (uint32_t)i, cookie(lv, life, (uint32_t)i, h->ver[i]));
	}
	(void)id;
	return 0;
}

static int destroy_recreate(struct ctx *x, uint32_t lv)
{
	struct shared *sh = x->sh;
	uint32_t id = __atomic_load_n(&sh->ids[lv], __ATOMIC_ACQUIRE), nid;
	int err = vmc_vm_destroy(x->c, id);
	if (err == EBUSY)
		return 0;
	if (err)
		FAILW(x, "destroy lv%u (id %u): %d %s", lv, id, err, vmc_errmsg());
	__atomic_store_n(&sh->expect[lv], 0, __ATOMIC_RELEASE);
	__atomic_add_fetch(&sh->life[lv], 1, __ATOMIC_ACQ_REL);
	if ((err = vmc_vm_create_span(x->c, vm_name(lv), LIMIT_G * G, x->c->h.window_size, &nid)))
		FAILW(x, "re-create lv%u: %d %s", lv, err, vmc_errmsg());
	__atomic_store_n(&sh->ids[lv], nid, __ATOMIC_RELEASE);
	sh->recreates[x->w]++;
	return 0;
}

static int worker(struct ctx *x)
{
	struct shared *sh = x->sh;
	void *base;
	int err;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		uint32_t lv = rn(NVM);
		uint32_t id = __atomic_load_n(&sh->ids[lv], __ATOMIC_ACQUIRE);

		if (!x->strict && check_stale(x))
			return 1;
		if (!x->kills && rn(100) == 0) {
			if (destroy_recreate(x, lv))
				return 1;
			continue;
		}
		err = vmc_attach(x->c, id, &base);
		if (err == EBUSY) {
			sh->busy[x->w]++;
			continue;
		}
		if (err == ENOENT)   /* destroyed just now, not yet re-created */
			continue;
		if (err == VMC_EORPHANED && x->kills)
			continue;    /* the other worker was killed: the parent reclaims it */
		if (err)
			FAILW(x, "attach lv%u (id %u): %d %s", lv, id, err, vmc_errmsg());
		sh->attaches[x->w]++;
		if (base != x->c->arena)
			FAILW(x, "attach returned %p, the window is at %p", base, x->c->arena);
		int v = verify(x, lv, id, base);
		if (v == 1)
			return 1;
		if (v == 0)
			for (uint32_t k = 1 + rn(4); k-- > 0;)
				if (one_op(x, lv, id, base))
					return 1;
		if (v == 0) {
			struct hdr *h = base;
			h->version++;
			__atomic_store_n(&sh->expect[lv], h->version, __ATOMIC_RELEASE);
			x->win_lv = lv;
			x->win_life = h->life;
			x->win_valid = 1;
		} else {
			x->win_valid = 0;   /* (nothing of it to check) */
		}
		if ((err = vmc_detach(x->c, id)))
			FAILW(x, "detach lv%u: %d %s", lv, err, vmc_errmsg());
		if (x->strict) {
			for (uint32_t i = 0; i < NIDX; i += 1 + rn(4))
				if (readable(at(base, i)))
					FAILW(x, "strict: index %u readable after detach", i);
		} else if (check_stale(x)) {
			return 1;
		}
	}
	return vmc_close(x->c) ? 2 : 0;
}

/* --------------------------------------------------------------- parent */

static int check_clean_when(vmc_t *c, const char *when)
{
	vmc_check_report_t r;
	int err = vmc_check(c, &r);
	if (err == 0 && r.errors == 0)
		return 1;
	fprintf(stderr, "  vmc_check %s: %d (%s): %s\n", when, err, vmc_strerror(err), r.first);
	return 0;
}

static int conserved_now(vmc_t *c)
{
	vmc_stats_t s;
	if (vmc_stats(c, &s))
		return 0;
	uint64_t sum = (uint64_t)s.unfunded + s.free + s.cached + s.used + s.quarantined;
	if (sum == s.granules)
		return 1;
	fprintf(stderr, "  states add up to %llu of %u granules\n", (unsigned long long)sum,
		s.granules);
	return 0;
}

static double seconds_total(void)
{
	const char *e = getenv("VMC_STRESS_SECONDS");
	double s = e ? atof(e) : 3.0;
	return s > 0 ? s : 3.0;
}

static uint64_t seed0;

static pid_t start_worker(struct ctx *x)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		rng_state = seed0 * 2654435761u + (uint64_t)getpid() * 40503u + 1;
		_exit(worker(x));
	}
	return pid;
}

/* The work the checks at the end need to mean something. */
static int enough_work(const struct shared *sh)
{
	uint64_t att = 0, com = 0, rel = 0;
	for (int w = 0; w < NW; w++) {
		att += __atomic_load_n(&sh->attaches[w], __ATOMIC_RELAXED);
		com += __atomic_load_n(&sh->commits[w], __ATOMIC_RELAXED);
		rel += __atomic_load_n(&sh->releases[w], __ATOMIC_RELAXED);
	}
	return att > 20 && com > 10 && rel > 5;
}

static void stress(int strict, int with_kills, double seconds)
{
	vmc_config_t cfg;
	vmc_t *c = NULL;
	struct shared *sh;
	struct ctx x[NW];
	pid_t pids[NW];
	int checks = 0, kills = 0, orphans = 0;

	test_config(&cfg, 256 * MiB, 128 * MiB);   /* 64 funded granules */
	cfg.memory_isolation = strict;
	REQUIRE(vmc_create(tname(strict ? "sts" : "stl"), &cfg, &c) == 0);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(sh != MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	for (uint32_t lv = 0; lv < NVM; lv++)
		REQUIRE(vmc_vm_create_span(c, vm_name(lv), LIMIT_G * G, c->h.window_size, &sh->ids[lv]) == 0);
	for (int w = 0; w < NW; w++) {
		x[w] = (struct ctx){ c, sh, w, strict, with_kills, 0, 0, 0 };
		pids[w] = start_worker(&x[w]);
		REQUIRE(pids[w] > 0);
	}

	/* the time, and enough work done: a loaded machine runs longer (up to
	 * ten times), it does not make the test fail */
	double end = now() + seconds, cap = now() + 10 * seconds, next_kill = now() + 0.1;
	while (now() < end || (end && now() < cap && !enough_work(sh))) {
		usleep(20000);
		CHECK(check_clean_when(c, "while running"));
		CHECK(conserved_now(c));
		checks++;
		for (int w = 0; w < NW; w++)
			if (sh->why[w][0]) {
				CHECK(!"a worker failed");
				end = 0;
			}
		if (with_kills && now() >= next_kill && end) {
			int w = (int)(rnd() % NW);
			usleep((useconds_t)(rnd() % 3000));
			kill(pids[w], SIGKILL);
			int code = test_wait(pids[w]);
			if (code != 128 + SIGKILL) {
				fprintf(stderr, "  worker %d ended with %d before the kill\n", w, code);
				CHECK(code == 128 + SIGKILL);
				break;
			}
			kills++;
			vmc_recover_report_t rr;
			CHECK_EQ(vmc_recover(c, &rr), 0);
			/* (the other worker may have recovered it already, when
			 * the pool ran dry) */
			CHECK(rr.workers_reclaimed <= 1);
			for (uint32_t lv = 0; lv < NVM; lv++) {
				vmc_vm_stats_t vs;
				if (vmc_vm_stats(c, sh->ids[lv], &vs) || vs.state != VMC_VM_ORPHANED)
					continue;
				CHECK_EQ(vs.pid, pids[w]);
				__atomic_store_n(&sh->dirty[lv], 1, __ATOMIC_RELEASE);
				CHECK_EQ(vmc_vm_reclaim(c, sh->ids[lv], VMC_RECLAIM_KEEP), 0);
				orphans++;
			}
			CHECK(check_clean_when(c, "after a kill"));
			CHECK(conserved_now(c));
			pids[w] = start_worker(&x[w]);
			next_kill = now() + 0.05 + (double)(rnd() % 200) / 1000;
		}
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	for (int w = 0; w < NW; w++) {
		int code = test_wait(pids[w]);
		if (code || sh->why[w][0])
			fprintf(stderr, "  worker %d: exit %d: %s\n", w, code, sh->why[w]);
		CHECK_EQ(code, 0);
	}

	/* at rest: everything adds up, and every VM is as its header says */
	uint64_t att = 0, busy = 0, com = 0, rel = 0, ef = 0, el = 0, rec = 0, st = 0;
	for (int w = 0; w < NW; w++) {
		att += sh->attaches[w];
		busy += sh->busy[w];
		com += sh->commits[w];
		rel += sh->releases[w];
		ef += sh->efunds[w];
		el += sh->elimits[w];
		rec += sh->recreates[w];
		st += sh->stale_checks[w];
	}
	fprintf(stderr, "  %s%s: %.1f s, %llu attaches, %llu EBUSY, %llu granules committed, "
		"%llu released, %llu EFUNDS, %llu ELIMIT, %llu re-creates, %llu stale checks, "
		"%d concurrent checks, %d kills, %d orphans\n",
		strict ? "strict" : "lazy", with_kills ? " with kills" : "", seconds,
		(unsigned long long)att, (unsigned long long)busy, (unsigned long long)com,
		(unsigned long long)rel, (unsigned long long)ef, (unsigned long long)el,
		(unsigned long long)rec, (unsigned long long)st, checks, kills, orphans);
	CHECK(att > 20);
	CHECK(com > 10 && rel > 5);
	/* a worker that failed died with its VM attached: reclaim it */
	vmc_recover(c, NULL);
	for (uint32_t lv = 0; lv < NVM; lv++) {
		vmc_vm_stats_t vs;
		if (vmc_vm_stats(c, sh->ids[lv], &vs) == 0 && vs.state == VMC_VM_ORPHANED) {
			sh->dirty[lv] = 1;
			CHECK_EQ(vmc_vm_reclaim(c, sh->ids[lv], VMC_RECLAIM_KEEP), 0);
		}
	}
	CHECK(check_clean_when(c, "at the end"));
	CHECK(conserved_now(c));
	vmc_stats_t s;
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.workers, 1);
	uint64_t committed = 0;
	struct ctx me = { c, sh, 0, strict, with_kills, 0, 0, 0 };
	for (uint32_t lv = 0; lv < NVM; lv++) {
		vmc_vm_stats_t vs;
		void *base;
		CHECK_EQ(vmc_vm_stats(c, sh->ids[lv], &vs), 0);
		CHECK_EQ(vs.state, VMC_VM_IDLE);
		CHECK_EQ(vmc_attach(c, sh->ids[lv], &base), 0);
		sh->why[0][0] = 0;
		if (verify(&me, lv, sh->ids[lv], base) == 1) {
			fprintf(stderr, "  final check of lv%u: %s\n", lv, sh->why[0]);
			CHECK(!"final check");
		}
		CHECK_EQ(vmc_detach(c, sh->ids[lv]), 0);
		/* (verify sets up the header of a VM re-created and never used) */
		CHECK_EQ(vmc_vm_stats(c, sh->ids[lv], &vs), 0);
		committed += vs.committed / G;
	}
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, committed);
	CHECK_EQ(s.quarantined, 0);
	if (test_cur_failed_)
		fprintf(stderr, "  (seed %llu: rerun with VMC_STRESS_SEED=%llu)\n",
			(unsigned long long)seed0, (unsigned long long)seed0);
	munmap(sh, sizeof *sh);
	char name[VMC_NAME_MAX];
	snprintf(name, sizeof name, "%s", c->h.name);
	vmc_close(c);
	vmc_destroy(name);
}

TEST(stress_strict) { stress(1, 0, seconds_total() / 2); }
TEST(stress_lazy) { stress(0, 0, seconds_total() / 2); }
TEST(stress_kills_strict) { stress(1, 1, seconds_total() / 3); }
TEST(stress_kills_lazy) { stress(0, 1, seconds_total() / 3); }

int main(void)
{
	const char *e = getenv("VMC_STRESS_SEED");
	seed0 = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	if (!seed0)
		seed0 = 1;
	rng_state = seed0;
	fprintf(stderr, "seed %llu\n", (unsigned long long)seed0);
	RUN(stress_strict);
	RUN(stress_lazy);
	RUN(stress_kills_strict);
	RUN(stress_kills_lazy);
	destroy_all();
	return test_done();
}
