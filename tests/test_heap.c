/*
 * test_heap.c - the in-VM heap (vmc_heap_alloc/free/realloc, vmc_vm_root,
 * vmc_heap_trim, vmc_heap_stats):
 *
 *  - a random mix of alloc, free and realloc against a model (the live
 *    blocks, each filled with a byte derived from its id and verified on
 *    free, on realloc and at the end), sizes 1 B .. 3 MiB skewed to small,
 *    with a full heap check every 1000 operations and detach/attach in the
 *    middle; freeing everything and trimming brings top back to the start
 *    and committed down to one granule;
 *  - the same with trims (random `keep`) in the mix and the full heap
 *    check after every single step;
 *  - realloc: in place (shrink, grow at top, grow into a free neighbour),
 *    moving, contents kept, and a block of whole granules carried over
 *    (vmc_move) without ever being committed twice;
 *  - trimming: after a 100 MiB spike back to 1 MiB live, vmc_heap_trim
 *    and, after the decay time, the detach's decay check leave at most
 *    2 MiB + one granule committed, the holes fill again, and a heap that
 *    frees and allocates within the decay time gives nothing back;
 *  - trim under quarantine: granules VM A trims while worker P (a forked
 *    process) still maps A lazily never reach VM B before P lets go, P
 *    keeps seeing A's old bytes, and B gets them zeroed afterwards;
 *  - exhaustion: VMs of 8 MiB, 4 MiB and one granule are filled until
 *    NULL (with "out of memory" and the limit in vmc_errmsg), stay
 *    consistent with every block intact, and work again after frees
 *    (everything free goes back for a large request);
 *  - the heap travels: a linked structure found from vmc_vm_root is walked
 *    and extended by a forked worker, and the parent sees the additions,
 *    in strict and lazy isolation; a clone is an independent heap;
 *  - refusals: no VM attached, a VM whose granule 0 holds other data,
 *    sizes beyond the window, a corrupted block tag or slab header
 *    (VMC_ECORRUPT with the offset), bad and double frees, and a pointer
 *    into memory the heap gave back (abort in debug builds, ignored in
 *    release builds, never a fault).
 */
#include "test.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* Allocation sizes are real byte counts: so are the VMs and pools here
 * (at small granules a VM simply has more of them). */
#undef MiB
#define MiB (1ull << 20)
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* ------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;   /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static size_t rnd_range(size_t lo, size_t hi)
{
	return lo + (size_t)(rnd() % (hi - lo + 1));
}

/* 1 B .. 3 MiB, most of it small. */
static size_t rnd_size(void)
{
	unsigned r = (unsigned)(rnd() % 1000);
	if (r < 700)
		return rnd_range(1, 256);
	if (r < 900)
		return rnd_range(257, 4096);
	if (r < 995)
		return rnd_range(4097, 64 * 1024);
	return rnd_range(64 * 1024, 3 * MiB);
}

static unsigned char fill_byte(uint64_t id)
{
	return (unsigned char)(id * 167 + 13);
}

/* 1 if p[0..n) all hold byte b. */
static int holds(const void *p, size_t n, unsigned char b)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		if (s[i] != b)
			return 0;
	return 1;
}

static int heap_ok(vmc_t *c)
{
	vmc_heap_stats_t st;
	int err = vmc_heap_stats(c, &st, 1);
	if (err)
		fprintf(stderr, "heap check: %s: %s\n", vmc_strerror(err), vmc_errmsg());
	return err == 0;
}

static vmc_t *make_window(int isolation, uint64_t pool, uint64_t window)
{
	vmc_config_t cfg;
	vmc_t *c = NULL;

	test_config(&cfg, pool, pool);
	cfg.window_size = window;
	cfg.memory_isolation = isolation;
	if (vmc_create(NULL, &cfg, &c)) {
		fprintf(stderr, "vmc_create: %s\n", vmc_errmsg());
		return NULL;
	}
	return c;
}

/* A container with one VM of `limit` bytes, attached. */
static vmc_t *make_attached(int isolation, uint64_t pool, uint64_t window, uint64_t limit,
			    uint32_t *id, void **base)
{
	vmc_t *c = make_window(isolation, pool, window);
	if (!c)
		return NULL;
	if (vmc_vm_create(c, "heap", limit, id) || vmc_attach(c, *id, base)) {
		fprintf(stderr, "vm: %s\n", vmc_errmsg());
		vmc_close(c);
		return NULL;
	}
	return c;
}

static int in_window(vmc_t *c, const void *p, size_t n)
{
	vmc_stats_t st;
	vmc_stats(c, &st);
	return (uintptr_t)p >= st.arena_base && (uintptr_t)p + n <= st.arena_base + st.window_size;
}

/* ------------------------------------------------------- random vs model */

struct live {
	unsigned char *p;
	size_t n;
	uint64_t id;
};

#define NLIVE 1500
#define NOPS  200000

TEST(random_against_model)
{
	static struct live m[NLIVE];
	uint64_t next_id = 1, live = 0, ops_alloc = 0, ops_free = 0, ops_realloc = 0, peak = 0;
	vmc_heap_stats_t st;
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 192 * MiB, 128 * MiB, 128 * MiB, &id, &base);

	/* HEAP_SEED and HEAP_OPS vary the run (for soak testing) */
	const char *env_seed = getenv("HEAP_SEED"), *env_ops = getenv("HEAP_OPS");
	int nops = env_ops ? atoi(env_ops) : NOPS;
	if (env_seed)
		rng_state = strtoull(env_seed, NULL, 0) * 0x9e3779b97f4a7c15ull | 1;

	REQUIRE(c);
	memset(m, 0, sizeof m);
	for (int op = 1; op <= nops && !test_cur_failed_; op++) {
		struct live *e = &m[rnd() % NLIVE];
		unsigned r = (unsigned)(rnd() % 100);

		if (!e->p) {
			size_t n = rnd_size();
			e->p = vmc_heap_alloc(c, n);
			if (!e->p) {
				fprintf(stderr, "alloc %zu: %s\n", n, vmc_errmsg());
				CHECK(e->p);
				break;
			}
			CHECK(((uintptr_t)e->p & 15) == 0);
			CHECK(in_window(c, e->p, n));
			e->n = n;
			e->id = next_id++;
			memset(e->p, fill_byte(e->id), n);
			live++;
			ops_alloc++;
		} else if (r < 55) {
			CHECK(holds(e->p, e->n, fill_byte(e->id)));
			vmc_heap_free(c, e->p);
			e->p = NULL;
			live--;
			ops_free++;
		} else if (r < 85) {
			/* half anywhere, half near the old size */
			long near = (long)e->n + (long)rnd_range(0, 512) - 256;
			size_t n = r < 70 ? rnd_size() : near < 1 ? 1 : (size_t)near;
			unsigned char *q = vmc_heap_realloc(c, e->p, n);
			if (!q) {
				fprintf(stderr, "realloc %zu -> %zu: %s\n", e->n, n, vmc_errmsg());
				CHECK(q);
				break;
			}
			CHECK(((uintptr_t)q & 15) == 0);
			CHECK(holds(q, MIN(n, e->n), fill_byte(e->id)));
			if (n > e->n)
				memset(q + e->n, fill_byte(e->id), n - e->n);
			e->p = q;
			e->n = n;
			ops_realloc++;
		} else {
			CHECK(holds(e->p, e->n, fill_byte(e->id)));
		}
		if (op % 1000 == 0) {
			CHECK(vmc_heap_stats(c, &st, 1) == 0);
			if (test_cur_failed_)
				fprintf(stderr, "after op %d: %s\n", op, vmc_errmsg());
			CHECK_EQ(st.allocs - st.frees, live);
			peak = st.in_use > peak ? st.in_use : peak;
		}
		if (op % 20000 == 0) {   /* the heap survives detach and attach */
			CHECK(vmc_detach(c, id) == 0);
			CHECK(vmc_attach(c, id, &base) == 0);
		}
	}
	CHECK(vmc_heap_stats(c, &st, 1) == 0);
	fprintf(stderr, "  %llu allocs, %llu frees, %llu reallocs; %llu live blocks, "
		"%llu KiB in use (peak %llu KiB), top %llu KiB, committed %llu MiB\n",
		(unsigned long long)ops_alloc, (unsigned long long)ops_free,
		(unsigned long long)ops_realloc, (unsigned long long)live,
		(unsigned long long)st.in_use >> 10, (unsigned long long)peak >> 10,
		(unsigned long long)st.top >> 10,
		(unsigned long long)st.committed >> 20);
	for (int i = 0; i < NLIVE; i++)
		if (m[i].p) {
			CHECK(holds(m[i].p, m[i].n, fill_byte(m[i].id)));
			vmc_heap_free(c, m[i].p);
			m[i].p = NULL;
		}
	CHECK(vmc_heap_stats(c, &st, 1) == 0);
	CHECK_EQ(st.in_use, 0);
	CHECK_EQ(st.allocs, st.frees);
	/* everything freed and trimmed: top is back at the first block, and
	 * only the header's granule stays */
	CHECK_EQ(vmc_heap_trim(c, 0), 0);
	CHECK(vmc_heap_stats(c, &st, 1) == 0);
	CHECK(st.top <= 4096);
	CHECK_EQ(st.committed, vmc_granule_size(c));
	CHECK_EQ(st.slabs, 0);
	vmc_close(c);
}

/* ---------------------------------------------------------------- realloc */

TEST(realloc_in_place_and_moving)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 64 * MiB, 32 * MiB, &id, &base);
	unsigned char *a, *b, *q, *guard;
	vmc_heap_stats_t st;

	REQUIRE(c);
	CHECK(vmc_heap_realloc(c, NULL, 0) == NULL);
	/* small: same class stays, another class moves */
	a = vmc_heap_realloc(c, NULL, 20);
	REQUIRE(a);
	memset(a, 0x11, 20);
	CHECK(vmc_heap_realloc(c, a, 30) == a);
	q = vmc_heap_realloc(c, a, 200);
	REQUIRE(q);
	CHECK(holds(q, 20, 0x11));
	memset(q, 0x22, 200);
	/* small -> large moves, keeps contents */
	a = vmc_heap_realloc(c, q, 5000);
	REQUIRE(a);
	CHECK(holds(a, 200, 0x22));
	memset(a, 0x33, 5000);
	/* a large block at top grows in place (nothing free is big enough
	 * for 64 KiB: it goes to top) */
	vmc_heap_stats(c, &st, 0);
	CHECK(st.largest_free < 64 * 1024);
	q = vmc_heap_alloc(c, 64 * 1024);
	REQUIRE(q);
	memcpy(q, a, 5000);
	vmc_heap_free(c, a);
	a = q;
	q = vmc_heap_realloc(c, a, 3 * MiB);
	CHECK(q == a);
	CHECK(holds(q, 5000, 0x33));
	memset(q, 0x33, 3 * MiB);
	CHECK(heap_ok(c));
	/* shrink in place: same pointer, the tail is free again */
	vmc_heap_stats(c, &st, 0);
	uint64_t before = st.in_use;
	q = vmc_heap_realloc(c, a, 100000);
	CHECK(q == a);
	CHECK(holds(q, 100000, 0x33));
	vmc_heap_stats(c, &st, 0);
	CHECK(st.in_use < before - 2 * MiB);
	CHECK(heap_ok(c));
	/* grow into a free neighbour: a, hole, guard (bigger than any free
	 * block below, so it goes after b) */
	b = vmc_heap_alloc(c, 200000);
	guard = vmc_heap_alloc(c, 70000);
	REQUIRE(b && guard);
	CHECK(b > a && guard > b);
	vmc_heap_free(c, b);
	q = vmc_heap_realloc(c, a, 250000);
	CHECK(q == a);
	CHECK(holds(q, 100000, 0x33));
	memset(q, 0x44, 250000);
	CHECK(heap_ok(c));
	/* too large for the free neighbour: moves */
	q = vmc_heap_realloc(c, a, 2 * MiB);
	REQUIRE(q);
	CHECK(q != a);
	CHECK(holds(q, 250000, 0x44));
	memset(guard, 0x55, 5000);
	/* large -> small size: shrinks in place */
	a = vmc_heap_realloc(c, q, 10);
	CHECK(a == q);
	CHECK(holds(a, 10, 0x44));
	CHECK(heap_ok(c));
	/* realloc to 0 frees */
	CHECK(vmc_heap_realloc(c, a, 0) == NULL);
	/* a failed realloc leaves p as it was */
	CHECK(vmc_heap_realloc(c, guard, 40 * MiB) == NULL);
	CHECK(strstr(vmc_errmsg(), "out of memory") != NULL);
	CHECK(holds(guard, 5000, 0x55));
	CHECK(vmc_heap_realloc(c, guard, 100 * MiB) == NULL);   /* beyond the window */
	CHECK(holds(guard, 5000, 0x55));
	vmc_heap_free(c, guard);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK_EQ(st.in_use, 0);
	vmc_close(c);
}

/* ------------------------------------------------------------- exhaustion */

TEST(exhaustion_keeps_heap_consistent)
{
	enum { MAXB = 20000 };
	static struct live m[MAXB];
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 64 * MiB, 8 * MiB, &id, &base);
	vmc_heap_stats_t st;
	vmc_vm_stats_t vs;
	int n = 0, nulls = 0;

	REQUIRE(c);
	/* fill until NULL: keep going with smaller sizes after the first NULL */
	for (uint64_t k = 1; n < MAXB && nulls < 200; k++) {
		size_t sz = nulls ? rnd_range(1, 2048) : rnd_range(1, 256 * 1024);
		void *p = vmc_heap_alloc(c, sz);
		if (!p) {
			if (!nulls)
				fprintf(stderr, "  first NULL after %d blocks: %s\n", n, vmc_errmsg());
			CHECK(strstr(vmc_errmsg(), "out of memory") != NULL);
			CHECK(strstr(vmc_errmsg(), "limit 8 MiB") != NULL);
			nulls++;
			continue;
		}
		m[n].p = p;
		m[n].n = sz;
		m[n].id = k;
		memset(p, fill_byte(k), sz);
		n++;
	}
	CHECK(nulls > 0);
	CHECK(heap_ok(c));
	CHECK(vmc_vm_stats(c, id, &vs) == 0);
	CHECK(vs.committed <= 8 * MiB);
	CHECK(vmc_heap_alloc(c, 4 * MiB) == NULL);
	CHECK(heap_ok(c));
	for (int i = 0; i < n; i++)
		CHECK(holds(m[i].p, m[i].n, fill_byte(m[i].id)));
	/* free every other block: allocation works again */
	for (int i = 0; i < n; i += 2) {
		vmc_heap_free(c, m[i].p);
		m[i].p = NULL;
	}
	CHECK(heap_ok(c));
	void *again = vmc_heap_alloc(c, 100);
	CHECK(again != NULL);
	vmc_heap_free(c, again);
	for (int i = 1; i < n; i += 2) {
		CHECK(holds(m[i].p, m[i].n, fill_byte(m[i].id)));
		vmc_heap_free(c, m[i].p);
		m[i].p = NULL;
	}
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK_EQ(st.in_use, 0);
	again = vmc_heap_alloc(c, 6 * MiB);
	CHECK(again != NULL);
	if (again)
		memset(again, 1, 6 * MiB);
	vmc_heap_free(c, again);
	CHECK(heap_ok(c));

	vmc_close(c);
}

/* Small blocks fill the VM; all but the one at top are freed; a large
 * request can only be met by merging them. */
TEST(exhaustion_consolidates_small_blocks)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 64 * MiB, 4 * MiB, &id, &base);
	size_t cap = 4 * MiB / 32 + 16, n = 0;
	void **ps = malloc(cap * sizeof *ps);
	vmc_heap_stats_t st;

	REQUIRE(c && ps);
	while (n < cap && (ps[n] = vmc_heap_alloc(c, 32)) != NULL)
		n++;
	CHECK(n < cap);
	CHECK(n > 100000);   /* no header per block: 32 bytes each, and little else */
	CHECK(heap_ok(c));
	for (size_t i = 0; i + 1 < n; i++)
		vmc_heap_free(c, ps[i]);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK(st.top > 3 * MiB);         /* the last block keeps top up */
	void *big = vmc_heap_alloc(c, 3 * MiB);
	CHECK(big != NULL);
	if (big)
		memset(big, 7, 3 * MiB);
	CHECK(heap_ok(c));
	void *small = vmc_heap_alloc(c, 32);
	CHECK(small != NULL);
	vmc_heap_free(c, small);
	vmc_heap_free(c, big);
	vmc_heap_free(c, ps[n - 1]);
	CHECK(heap_ok(c));
	CHECK_EQ(vmc_heap_trim(c, 0), 0);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK_EQ(st.in_use, 0);
	CHECK(st.top <= 4096);
	free(ps);
	vmc_close(c);
}

TEST(too_large_and_zero)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 64 * MiB, 16 * MiB, &id, &base);

	REQUIRE(c);
	CHECK(vmc_heap_alloc(c, 0) == NULL);
	CHECK(vmc_heap_alloc(c, 65 * MiB) == NULL);
	CHECK(strstr(vmc_errmsg(), "span") != NULL);
	CHECK(vmc_heap_alloc(c, SIZE_MAX) == NULL);
	CHECK(vmc_heap_alloc(c, SIZE_MAX - 8) == NULL);
	CHECK(vmc_heap_alloc(c, 64 * MiB) == NULL);
	CHECK(vmc_heap_alloc(c, 40 * MiB) == NULL);          /* over the limit (and span) */
	CHECK(strstr(vmc_errmsg(), "out of memory") != NULL);
	CHECK(strstr(vmc_errmsg(), "16 MiB") != NULL);
	void *p = vmc_heap_alloc(c, 12 * MiB);                 /* this fits */
	CHECK(p != NULL);
	CHECK(heap_ok(c));
	vmc_heap_free(c, p);
	CHECK(heap_ok(c));
	vmc_close(c);
}

/* ------------------------------------------------------ the heap travels */

struct node {
	struct node *next;
	uint64_t value;
	unsigned char *blob;   /* some nodes own a large block */
	size_t blob_n;
};

struct travel {
	vmc_t *c;
	uint32_t id;
};

/* Walk the list from the root: values 0..n-1 in order, blobs intact. */
static long walk(vmc_t *c)
{
	void **root = vmc_vm_root(c);
	long n = 0;

	if (!root)
		return -1;
	for (struct node *x = *root; x; x = x->next, n++) {
		if (x->value != (uint64_t)n)
			return -2;
		if (x->blob && !holds(x->blob, x->blob_n, fill_byte(x->value)))
			return -3;
	}
	return n;
}

/* Append nodes first..first+count-1 (every 50th with a 1 MiB blob). */
static int append(vmc_t *c, long first, long count)
{
	void **root = vmc_vm_root(c);
	struct node **tail;

	if (!root)
		return -1;
	for (tail = (struct node **)root; *tail; tail = &(*tail)->next)
		;
	for (long k = first; k < first + count; k++) {
		struct node *x = vmc_heap_alloc(c, sizeof *x);
		if (!x)
			return -2;
		x->next = NULL;
		x->value = (uint64_t)k;
		x->blob = NULL;
		x->blob_n = 0;
		if (k % 50 == 0) {
			x->blob_n = MiB + (size_t)k;
			if (!(x->blob = vmc_heap_alloc(c, x->blob_n)))
				return -3;
			memset(x->blob, fill_byte(x->value), x->blob_n);
		}
		*tail = x;
		tail = &x->next;
	}
	return 0;
}

static int child_extends(void *arg)
{
	struct travel *t = arg;
	void *base;
	vmc_heap_stats_t st;

	if (vmc_attach(t->c, t->id, &base))
		return 10;
	if (walk(t->c) != 1000)
		return 11;
	if (vmc_heap_stats(t->c, &st, 1))
		return 12;
	if (append(t->c, 1000, 500))
		return 13;
	if (walk(t->c) != 1500 || vmc_heap_stats(t->c, &st, 1))
		return 14;
	if (vmc_detach(t->c, t->id))
		return 15;
	return 0;
}

static void travels(int isolation)
{
	struct travel t;
	void *base;
	vmc_heap_stats_t st, st2;
	vmc_vm_stats_t vs;
	vmc_t *c = make_attached(isolation, 128 * MiB, 64 * MiB, 64 * MiB, &t.id, &base);

	REQUIRE(c);
	t.c = c;
	void **root = vmc_vm_root(c);
	REQUIRE(root);
	CHECK(*root == NULL);
	CHECK((char *)root >= (char *)base && (char *)root < (char *)base + 4096);
	CHECK(vmc_vm_root(c) == root);
	CHECK(append(c, 0, 1000) == 0);
	CHECK(walk(c) == 1000);
	CHECK(vmc_heap_stats(c, &st, 1) == 0);
	CHECK(vmc_detach(c, t.id) == 0);

	pid_t pid = test_fork(child_extends, &t);
	CHECK_EQ(test_wait(pid), 0);

	CHECK(vmc_attach(c, t.id, &base) == 0);
	CHECK(vmc_vm_root(c) == root);
	CHECK_EQ(walk(c), 1500);
	CHECK(vmc_heap_stats(c, &st2, 1) == 0);
	CHECK_EQ(st2.allocs, st.allocs + 500 + 10);
	CHECK(st2.committed > st.committed);      /* the child grew the heap */
	CHECK(vmc_vm_stats(c, t.id, &vs) == 0);
	CHECK_EQ(vs.committed, st2.committed);
	/* and the parent goes on */
	CHECK(append(c, 1500, 100) == 0);
	CHECK_EQ(walk(c), 1600);
	CHECK(heap_ok(c));
	/* a clone is an independent heap */
	uint32_t copy;
	CHECK(vmc_detach(c, t.id) == 0);
	if (vmc_vm_clone(c, t.id, "copy", &copy) == 0) {
		CHECK(vmc_attach(c, copy, &base) == 0);
		CHECK_EQ(walk(c), 1600);
		CHECK(append(c, 1600, 10) == 0);
		CHECK(heap_ok(c));
		CHECK(vmc_detach(c, copy) == 0);
		CHECK(vmc_attach(c, t.id, &base) == 0);
		CHECK_EQ(walk(c), 1600);
		CHECK(vmc_detach(c, t.id) == 0);
	} else {
		fprintf(stderr, "  (vmc_vm_clone: %s)\n", vmc_errmsg());
		CHECK(!"vmc_vm_clone failed");
	}
	vmc_close(c);
}

TEST(heap_travels_strict)
{
	travels(1);
}

TEST(heap_travels_lazy)
{
	travels(0);
}

/* Two VMs, two heaps at the same address, switched back and forth. */
TEST(two_vms_two_heaps)
{
	vmc_t *c = make_window(0, 64 * MiB, 32 * MiB);
	uint32_t a, b;
	void *base;

	REQUIRE(c);
	REQUIRE(vmc_vm_create(c, "a", 16 * MiB, &a) == 0 && vmc_vm_create(c, "b", 16 * MiB, &b) == 0);
	for (int round = 0; round < 20; round++) {
		uint32_t id = round % 2 ? b : a;
		REQUIRE(vmc_attach(c, id, &base) == 0);
		void **root = vmc_vm_root(c);
		REQUIRE(root);
		if (round < 2) {
			CHECK(*root == NULL);
			*root = vmc_heap_alloc(c, 64);
			REQUIRE(*root);
			memset(*root, 0, 64);
			((uint64_t *)*root)[1] = id;
		}
		uint64_t *cnt = *root;
		CHECK_EQ(cnt[0], round / 2);
		CHECK_EQ(cnt[1], id);
		cnt[0]++;
		cnt[1] = id;
		CHECK(vmc_heap_alloc(c, 1000 + (size_t)round) != NULL);
		CHECK(heap_ok(c));
		REQUIRE(vmc_detach(c, id) == 0);
	}
	vmc_close(c);
}

/* -------------------------------------------------- every step checked */

/* alloc, realloc, free and trim at random, with the full heap check after
 * every step and the VM's committed bytes equal to the heap's; detach and
 * attach now and then (the decay check runs). */
TEST(random_with_trim_checked_each_step)
{
	enum { N = 300 };
	static struct live m[N];
	uint64_t next_id = 1;
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 192 * MiB, 128 * MiB, 128 * MiB, &id, &base);
	const char *env_ops = getenv("HEAP_STEP_OPS");
	int nops = env_ops ? atoi(env_ops) : 3000, trims = 0;
	vmc_heap_stats_t st;
	vmc_vm_stats_t vs;

	REQUIRE(c);
	memset(m, 0, sizeof m);
	for (int op = 1; op <= nops && !test_cur_failed_; op++) {
		struct live *e = &m[rnd() % N];
		unsigned r = (unsigned)(rnd() % 100);
		if (r < 4) {
			const size_t keeps[] = { 0, 1 * MiB, 8 * MiB, 64 * MiB };
			CHECK_EQ(vmc_heap_trim(c, keeps[rnd() % 4]), 0);
			trims++;
		} else if (!e->p) {
			e->n = rnd_size();
			e->p = vmc_heap_alloc(c, e->n);
			REQUIRE(e->p);
			e->id = next_id++;
			memset(e->p, fill_byte(e->id), e->n);
		} else if (r < 50) {
			CHECK(holds(e->p, e->n, fill_byte(e->id)));
			vmc_heap_free(c, e->p);
			e->p = NULL;
		} else {
			size_t n = r < 75 || e->n > MiB ? rnd_size() : e->n + rnd_range(1, 3 * MiB);
			unsigned char *q = vmc_heap_realloc(c, e->p, n);
			if (!q)
				fprintf(stderr, "realloc %zu -> %zu: %s\n", e->n, n, vmc_errmsg());
			REQUIRE(q);
			CHECK(holds(q, MIN(n, e->n), fill_byte(e->id)));
			if (n > e->n)
				memset(q + e->n, fill_byte(e->id), n - e->n);
			e->p = q;
			e->n = n;
		}
		if (vmc_heap_stats(c, &st, 1)) {
			fprintf(stderr, "after op %d: %s\n", op, vmc_errmsg());
			CHECK(!"heap check");
		}
		/* the VM's figure right after the heap's: the detach below
		 * may give aged memory back (the decay check) */
		CHECK(vmc_vm_stats(c, id, &vs) == 0);
		CHECK_EQ(vs.committed, st.committed);
		if (op % 500 == 0) {
			CHECK(vmc_detach(c, id) == 0);
			CHECK(vmc_attach(c, id, &base) == 0);
		}
	}
	fprintf(stderr, "  %d ops, %d trims: %llu release calls gave back %llu MiB; committed "
		"%llu MiB (peak %llu), %llu KiB in use\n", nops, trims,
		(unsigned long long)st.trims, (unsigned long long)st.trimmed >> 20,
		(unsigned long long)st.committed >> 20, (unsigned long long)st.peak_committed >> 20,
		(unsigned long long)st.in_use >> 10);
	CHECK(st.trims > 0);
	for (int i = 0; i < N; i++)
		if (m[i].p) {
			CHECK(holds(m[i].p, m[i].n, fill_byte(m[i].id)));
			vmc_heap_free(c, m[i].p);
		}
	CHECK_EQ(vmc_heap_trim(c, 0), 0);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK_EQ(st.committed, vmc_granule_size(c));
	vmc_close(c);
}

/* ------------------------------------------------------------- trimming */

/* 1 MiB stays live; a 100 MiB spike of mixed sizes comes and goes. */
static int spike(vmc_t *c, void **keep, size_t nkeep, int first)
{
	enum { MAXS = 200000 };
	static void *sp[MAXS];
	size_t n = 0, bytes = 0;

	for (size_t i = 0; first && i < nkeep; i++) {
		if (!(keep[i] = vmc_heap_alloc(c, 64)))
			return -1;
		memset(keep[i], (int)(i & 0xff), 64);
	}
	while (bytes < 100 * MiB && n < MAXS) {
		size_t sz = rnd() % 10 ? rnd_range(16, 2048) : rnd_range(4096, 512 * 1024);
		if (!(sp[n] = vmc_heap_alloc(c, sz)))
			return -2;
		memset(sp[n++], 0x5a, sz);
		bytes += sz;
	}
	for (size_t i = n; i-- > 0;)    /* not in order: holes everywhere first */
		if (i % 3 == 0)
			vmc_heap_free(c, sp[i]);
	for (size_t i = 0; i < n; i++)
		if (i % 3)
			vmc_heap_free(c, sp[i]);
	return 0;
}

static int kept_intact(void **keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (!holds(keep[i], 64, (unsigned char)(i & 0xff)))
			return 0;
	return 1;
}

TEST(trim_after_a_spike)
{
	enum { NKEEP = 16384 };   /* 1 MiB of 64-byte blocks */
	static void *keep[NKEEP];
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(0, 256 * MiB, 256 * MiB, 200 * MiB, &id, &base);
	vmc_heap_stats_t st, st2;
	vmc_vm_stats_t vs;
	uint64_t g;

	REQUIRE(c);
	g = vmc_granule_size(c);
	REQUIRE(spike(c, keep, NKEEP, 1) == 0);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK(st.peak_committed > 100 * MiB);
	CHECK(st.committed > 10 * MiB);   /* not given back at once: the decay time */
	/* on request: everything that can go */
	CHECK_EQ(vmc_heap_trim(c, 0), 0);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK(vmc_vm_stats(c, id, &vs) == 0);
	CHECK_EQ(vs.committed, st.committed);
	fprintf(stderr, "  after vmc_heap_trim: %llu KiB committed, %llu KiB in use, %llu trims\n",
		(unsigned long long)st.committed >> 10, (unsigned long long)st.in_use >> 10,
		(unsigned long long)st.trims);
	CHECK(st.committed <= 2 * MiB + g);
	CHECK(st.fragmentation >= 0 && st.fragmentation < 1);
	CHECK(kept_intact(keep, NKEEP));
	/* the holes fill again */
	REQUIRE(spike(c, keep, NKEEP, 0) == 0);
	CHECK(kept_intact(keep, NKEEP));
	CHECK(heap_ok(c));
	/* by decay: once the spike has been free for the decay time, the
	 * detach's check gives it back */
	vmc_heap_stats(c, &st, 0);
	CHECK(st.committed > 10 * MiB);
	CHECK(st.decay_ms > 0 && st.decay_ms <= 10000);
	usleep((st.decay_ms + 300) * 1000u);
	CHECK(vmc_detach(c, id) == 0);
	CHECK(vmc_attach(c, id, &base) == 0);
	vmc_heap_stats(c, &st2, 0);
	fprintf(stderr, "  after the decay time: %llu KiB committed\n",
		(unsigned long long)st2.committed >> 10);
	CHECK(st2.committed <= 2 * MiB + g);
	CHECK(st2.trims > st.trims);
	CHECK(kept_intact(keep, NKEEP));
	CHECK(heap_ok(c));
	/* a busy heap does not thrash: allocated and freed again well within
	 * the decay time, memory stays (checked only if the loop was quick) */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 20; i++) {
		void *p = vmc_heap_alloc(c, 8 * MiB);
		CHECK(p != NULL);
		vmc_heap_free(c, p);
		for (int k = 0; k < 300; k++)
			vmc_heap_free(c, vmc_heap_alloc(c, 100));   /* reaches the decay check */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	vmc_heap_stats(c, &st, 0);
	if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < st.decay_ms / 2)
		CHECK_EQ(st.trims, st2.trims);
	CHECK(heap_ok(c));
	vmc_close(c);
}

/* realloc of a block of whole granules carries them over (vmc_move)
 * instead of copying: the heap never holds both copies. */
TEST(realloc_moves_granules)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 128 * MiB, 128 * MiB, 64 * MiB, &id, &base);
	vmc_heap_stats_t st, st2;

	REQUIRE(c);
	unsigned char *a = vmc_heap_alloc(c, 7 * MiB), *guard = vmc_heap_alloc(c, 5000);
	REQUIRE(a && guard);
	for (size_t i = 0; i < 7 * MiB; i += 4096)
		a[i] = (unsigned char)(i >> 12);
	memset(guard, 0x77, 5000);
	vmc_heap_stats(c, &st, 0);
	unsigned char *q = vmc_heap_realloc(c, a, 15 * MiB);
	REQUIRE(q);
	CHECK(q != a);
	for (size_t i = 0; i < 7 * MiB; i += 4096)
		if (q[i] != (unsigned char)(i >> 12)) {
			CHECK(!"moved contents");
			break;
		}
	memset(q + 7 * MiB, 1, 8 * MiB);
	CHECK(holds(guard, 5000, 0x77));
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st2, 0);
	/* a copy would have committed all of the new 15 MiB with the old
	 * block still there */
	CHECK(st2.peak_committed < st.committed + 15 * MiB);
	/* the old place is free, with its middle given back, and fills again */
	unsigned char *b = vmc_heap_alloc(c, 6 * MiB);
	REQUIRE(b);
	CHECK(b < q);
	memset(b, 2, 6 * MiB);
	CHECK(heap_ok(c));
	vmc_heap_free(c, b);
	vmc_heap_free(c, q);
	vmc_heap_free(c, guard);
	CHECK_EQ(vmc_heap_trim(c, 0), 0);
	CHECK(heap_ok(c));
	vmc_close(c);
}

/* A VM of one granule: the heap header and small blocks fit; exhaustion
 * is NULL with the reason, and the heap stays sound. */
TEST(one_granule_vm)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_window(1, 64 * MiB, 32 * MiB);
	vmc_heap_stats_t st;
	size_t n = 0;
	static void *ps[200000];

	REQUIRE(c);
	REQUIRE(vmc_vm_create(c, "tiny", vmc_granule_size(c), &id) == 0);
	REQUIRE(vmc_attach(c, id, &base) == 0);
	REQUIRE(vmc_vm_root(c) != NULL);
	CHECK(vmc_heap_alloc(c, vmc_granule_size(c)) == NULL);
	CHECK(strstr(vmc_errmsg(), "out of memory") != NULL);
	while (n < 200000 && (ps[n] = vmc_heap_alloc(c, 1 + n % 700)) != NULL)
		memset(ps[n], (int)(n & 0xff), 1 + n % 700), n++;
	/* 2 MiB hold hundreds; 64 KiB what is left after the header, the chunk
	 * map and a slab per size class */
	CHECK(n > (vmc_granule_size(c) >= 256 * 1024 ? 100 : 8) && n < 200000);
	CHECK(strstr(vmc_errmsg(), "out of memory") != NULL);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK_EQ(st.committed, vmc_granule_size(c));
	fprintf(stderr, "  %zu blocks in one granule: %llu KiB in use of %llu KiB\n", n,
		(unsigned long long)st.in_use >> 10, (unsigned long long)st.committed >> 10);
	for (size_t i = 0; i < n; i++) {
		CHECK(holds(ps[i], 1 + i % 700, (unsigned char)(i & 0xff)));
		vmc_heap_free(c, ps[i]);
	}
	CHECK_EQ(vmc_heap_trim(c, 0), 0);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK_EQ(st.in_use, 0);
	CHECK(st.top <= 4096);
	vmc_close(c);
}

/* ---------------------------------------------- trimming and quarantine */

/* Worker P of the quarantine test, driven by one byte per step. */
struct qp {
	vmc_t *c;
	uint32_t a, z;
	unsigned char *x;         /* the block P looks at */
	int go[2], back[2];
};

static int qp_step(struct qp *q, unsigned char *out)
{
	char k;
	if (read(q->go[0], &k, 1) != 1)
		return 1;   /* the test is done */
	switch (k) {
	case 'a':   /* attach A, look, detach: lazy, so A stays mapped here */
		if (vmc_attach(q->c, q->a, NULL))
			return -2;
		*out = q->x[3 * MiB];
		return vmc_detach(q->c, q->a) ? -3 : 0;
	case 'r':   /* read A's old memory through the stale window */
		*out = readable(q->x + 3 * MiB) ? q->x[3 * MiB] : 0;
		return 0;
	case 'z':   /* let go of A: attach Z instead */
		if (vmc_attach(q->c, q->z, NULL) || vmc_detach(q->c, q->z))
			return -4;
		return 0;
	}
	return 1;
}

static int qp_main(void *arg)
{
	struct qp *q = arg;
	unsigned char v = 0;
	int r;

	close(q->go[1]);
	close(q->back[0]);
	while ((r = qp_step(q, &v)) == 0)
		if (write(q->back[1], &v, 1) != 1)
			return 2;
	return r == 1 ? 0 : 3;
}

static int qp_do(struct qp *q, char k, unsigned char *v)
{
	return write(q->go[1], &k, 1) == 1 && read(q->back[0], v, 1) == 1 ? 0 : -1;
}

static uint32_t quarantined(vmc_t *c)
{
	vmc_stats_t s;
	return vmc_stats(c, &s) ? ~0u : s.quarantined;
}

/* VM A trims granules while worker P still maps A lazily: they wait in
 * quarantine, VM B never gets them (and P keeps seeing A's old bytes)
 * until P lets go; then B gets them zeroed. */
TEST(trim_under_quarantine)
{
	vmc_t *c = make_window(0, 32 * MiB, 32 * MiB);   /* 16 granules */
	struct qp q;
	uint32_t b, gone[256];
	unsigned ngone = 0, nb = 0, v;
	unsigned char seen;
	void *base;
	int err;

	REQUIRE(c);
	uint64_t g = vmc_granule_size(c);
	REQUIRE(vmc_vm_create(c, "qA", 32 * MiB, &q.a) == 0 && vmc_vm_create(c, "qB", 32 * MiB, &b) == 0 &&
		vmc_vm_create(c, "qZ", g, &q.z) == 0);
	q.c = c;
	REQUIRE(vmc_attach(c, q.a, &base) == 0);
	unsigned char *guard = vmc_heap_alloc(c, 100);
	q.x = vmc_heap_alloc(c, 6 * MiB);
	unsigned char *guard2 = vmc_heap_alloc(c, 100);
	REQUIRE(guard && q.x && guard2);
	memset(q.x, 0xab, 6 * MiB);
	REQUIRE(vmc_detach(c, q.a) == 0);

	REQUIRE(pipe(q.go) == 0 && pipe(q.back) == 0);
	pid_t pid = test_fork(qp_main, &q);
	close(q.go[0]);
	close(q.back[1]);
	CHECK(qp_do(&q, 'a', &seen) == 0 && seen == 0xab);

	/* A frees the block and trims: its whole granules go, to quarantine */
	REQUIRE(vmc_attach(c, q.a, &base) == 0);
	for (uint64_t off = 0; off < 6 * MiB && ngone < 256; off += g) {
		vmc_probe_t pr;
		uint64_t at = (((uint64_t)(q.x - (unsigned char *)base) + off + g - 1) / g) * g;
		if (at + g <= (uint64_t)(q.x - (unsigned char *)base) + 6 * MiB &&
		    vmc_probe(c, (char *)base + at, &pr) == 0 && pr.committed &&
		    (!ngone || pr.granule != gone[ngone - 1]))
			gone[ngone++] = pr.granule;
	}
	vmc_heap_free(c, q.x);
	CHECK_EQ(vmc_heap_trim(c, 0), 0);
	CHECK(heap_ok(c));
	CHECK(ngone >= 2);
	CHECK(quarantined(c) >= ngone);
	REQUIRE(vmc_detach(c, q.a) == 0);

	/* B takes every granule it can: never one of A's, always zero */
	REQUIRE(vmc_attach(c, b, &base) == 0);
	while ((err = vmc_commit(c, (char *)base + nb * g, g, 0)) == 0) {
		vmc_probe_t pr;
		CHECK(vmc_probe(c, (char *)base + nb * g, &pr) == 0);
		for (unsigned k = 0; k < ngone; k++)
			CHECK(pr.granule != gone[k]);
		CHECK(all_zero((char *)base + nb * g, g));
		memset((char *)base + nb * g, 0xb0, g);
		nb++;
		REQUIRE(nb < 32 * MiB / g);
	}
	CHECK_EQ(err, VMC_EFUNDS);
	REQUIRE(vmc_detach(c, b) == 0);
	/* P still sees A's bytes there, never B's */
	CHECK(qp_do(&q, 'r', &seen) == 0);
	CHECK_EQ(seen, 0xab);

	/* P lets go: the quarantine drains, B gets them, zeroed */
	CHECK(qp_do(&q, 'z', &seen) == 0);
	CHECK_EQ(quarantined(c), 0);
	REQUIRE(vmc_attach(c, b, &base) == 0);
	/* (the heap trims what it committed ahead above its top too: with small
	 * granules that is more than A's block, so not every one is A's) */
	unsigned from_a = 0;
	for (v = 0; v < ngone && vmc_commit(c, (char *)base + nb * g, g, 0) == 0; v++, nb++) {
		vmc_probe_t pr;
		CHECK(vmc_probe(c, (char *)base + nb * g, &pr) == 0);
		for (unsigned k = 0; k < ngone; k++)
			from_a += pr.granule == gone[k];
		CHECK(all_zero((char *)base + nb * g, g));
	}
	CHECK_EQ(v, ngone);
	CHECK(from_a > 0);
	REQUIRE(vmc_detach(c, b) == 0);
	close(q.go[1]);          /* P's read ends: it exits */
	CHECK_EQ(test_wait(pid), 0);
	close(q.back[0]);
	CHECK(check_clean(c));
	vmc_close(c);
}

/* --------------------------------------------------------------- refusals */

TEST(no_vm_attached)
{
	vmc_t *c = make_window(1, 64 * MiB, 32 * MiB);
	vmc_heap_stats_t st;
	uint32_t id;
	void *base;

	REQUIRE(c);
	CHECK(vmc_heap_alloc(c, 16) == NULL);
	CHECK(vmc_errmsg()[0] != 0);
	CHECK(vmc_vm_root(c) == NULL);
	CHECK(vmc_heap_realloc(c, NULL, 16) == NULL);
	CHECK_EQ(vmc_heap_stats(c, &st, 1), VMC_ENOTATTACHED);
	vmc_heap_free(c, NULL);
	CHECK(vmc_heap_alloc(NULL, 16) == NULL);
	CHECK(vmc_vm_root(NULL) == NULL);
	/* a pointer of a VM that is not attached any more is ignored */
	REQUIRE(vmc_vm_create(c, "v", 8 * MiB, &id) == 0 && vmc_attach(c, id, &base) == 0);
	void *p = vmc_heap_alloc(c, 100);
	CHECK(p != NULL);
	CHECK(vmc_detach(c, id) == 0);
	vmc_heap_free(c, p);
	CHECK(vmc_attach(c, id, &base) == 0);
	CHECK(heap_ok(c));
	vmc_heap_stats(c, &st, 0);
	CHECK_EQ(st.allocs - st.frees, 1);
	vmc_close(c);
}

TEST(stats_do_not_create_a_heap)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 32 * MiB, 8 * MiB, &id, &base);
	vmc_heap_stats_t st;
	vmc_vm_stats_t vs;

	REQUIRE(c);
	memset(&st, 0xff, sizeof st);
	CHECK(vmc_heap_stats(c, &st, 1) == 0);
	CHECK_EQ(st.top, 0);
	CHECK_EQ(st.committed, 0);
	CHECK(vmc_vm_stats(c, id, &vs) == 0);
	CHECK_EQ(vs.committed, 0);
	CHECK(vmc_vm_root(c) != NULL);
	CHECK(vmc_heap_stats(c, &st, 1) == 0);
	CHECK_EQ(st.committed, vmc_granule_size(c));
	CHECK(st.top > 0 && st.top < 4096);
	vmc_close(c);
}

TEST(not_a_heap)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 32 * MiB, 8 * MiB, &id, &base);
	vmc_heap_stats_t st;

	REQUIRE(c);
	size_t g = vmc_granule_size(c);
	REQUIRE(vmc_commit(c, base, g, 0) == 0);
	((char *)base)[g - 1] = 1;   /* anywhere in granule 0 */
	CHECK(vmc_heap_alloc(c, 16) == NULL);
	CHECK(strstr(vmc_errmsg(), "not a vmc heap") != NULL);
	CHECK(vmc_vm_root(c) == NULL);
	CHECK_EQ(vmc_heap_stats(c, &st, 1), EINVAL);
	((char *)base)[g - 1] = 0;
	strcpy(base, "some runtime's own header");
	CHECK(vmc_heap_alloc(c, 16) == NULL);
	CHECK(strstr(vmc_errmsg(), "not a vmc heap") != NULL);
	CHECK(holds((char *)base + 32, g - 32, 0));   /* refused: nothing written */
	CHECK(!strcmp(base, "some runtime's own header"));
	/* committed and zero: the heap sets up there */
	memset(base, 0, 64);
	void *p = vmc_heap_alloc(c, 16);
	CHECK(p != NULL);
	CHECK(heap_ok(c));
	/* granule 0 read-only: refused, not a fault */
	CHECK(vmc_detach(c, id) == 0);
	uint32_t ro;
	REQUIRE(vmc_vm_create(c, "ro", 8 * MiB, &ro) == 0 && vmc_attach(c, ro, &base) == 0);
	REQUIRE(vmc_commit(c, base, g, 0) == 0);
	REQUIRE(vmc_protect(c, base, g, 1 /* PROT_READ */) == 0);
	CHECK(vmc_heap_alloc(c, 16) == NULL);
	CHECK(vmc_errmsg()[0] != 0);
	CHECK(vmc_detach(c, ro) == 0);
	/* a heap of another version (the first one): VMC_EVERSION, untouched */
	uint32_t old;
	REQUIRE(vmc_vm_create(c, "old", 8 * MiB, &old) == 0 && vmc_attach(c, old, &base) == 0);
	REQUIRE(vmc_commit(c, base, g, 0) == 0);
	((uint64_t *)base)[0] = 0x3150414548434d56ull;   /* "VMCHEAP1" */
	((uint32_t *)base)[2] = 1;
	CHECK(vmc_heap_alloc(c, 16) == NULL);
	CHECK_EQ(vmc_heap_stats(c, &st, 0), VMC_EVERSION);
	CHECK(strstr(vmc_errmsg(), "version 1") != NULL);
	CHECK_EQ(((uint64_t *)base)[0], 0x3150414548434d56ull);
	CHECK(vmc_detach(c, old) == 0);
	vmc_close(c);
}

TEST(corruption_is_reported)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 32 * MiB, 8 * MiB, &id, &base);
	char want[64];

	REQUIRE(c);
	unsigned char *a = vmc_heap_alloc(c, 100), *b = vmc_heap_alloc(c, 5000),
		      *d = vmc_heap_alloc(c, 100);
	REQUIRE(a && b && d);
	CHECK(heap_ok(c));
	uint64_t *word = (uint64_t *)(void *)(b - 8), saved = *word;
	*word ^= 0x100;   /* the block's size */
	CHECK_EQ(vmc_heap_stats(c, NULL, 1), VMC_ECORRUPT);
	snprintf(want, sizeof want, "%#llx", (unsigned long long)(b - 16 - (unsigned char *)base));
	CHECK(strstr(vmc_errmsg(), want) != NULL);
	fprintf(stderr, "  %s\n", vmc_errmsg());
	*word = saved;
	CHECK(heap_ok(c));
	/* a small block's slab header (after the slab's 16-byte tag) */
	uint64_t slab = (uint64_t)(a - (unsigned char *)base) & ~(uint64_t)4095;
	uint32_t *magic = (uint32_t *)(void *)((unsigned char *)base + slab + 16), m0 = *magic;
	*magic ^= 1;
	CHECK_EQ(vmc_heap_stats(c, NULL, 1), VMC_ECORRUPT);
	CHECK(strstr(vmc_errmsg(), "slab") != NULL);
	*magic = m0;
	CHECK(heap_ok(c));
	vmc_close(c);
}

/* Bad pointers: debug builds abort, release builds ignore them. */
struct badfree {
	vmc_t *c;
	uint32_t id;
	int how;
};

static int child_bad_free(void *arg)
{
	struct badfree *t = arg;
	void *base;
	char local[32];

	if (vmc_attach(t->c, t->id, &base))
		return 10;
	char *p = vmc_heap_alloc(t->c, 200), *q = vmc_heap_alloc(t->c, 5000);
	if (!p || !q)
		return 11;
	switch (t->how) {
	case 0: vmc_heap_free(t->c, p + 16); break;         /* inside a block     */
	case 1: vmc_heap_free(t->c, p + 8); break;          /* misaligned         */
	case 2: vmc_heap_free(t->c, local); break;          /* not in the heap    */
	case 3: vmc_heap_free(t->c, p); vmc_heap_free(t->c, p); break;   /* double */
	case 4: vmc_heap_free(t->c, q); vmc_heap_free(t->c, q); break;   /* double, large */
	case 5: vmc_heap_free(t->c, (char *)base + 64 * MiB - 16); break; /* past top */
	case 6: if (vmc_heap_realloc(t->c, p + 32, 10)) return 12; break;
	case 7: {   /* into memory the heap gave back */
		char *big = vmc_heap_alloc(t->c, 7 * MiB);
		if (!big || !vmc_heap_alloc(t->c, 100))
			return 14;
		vmc_heap_free(t->c, big);
		if (vmc_heap_trim(t->c, 0))
			return 15;
		vmc_heap_free(t->c, big + 4 * MiB);
		break;
	}
	}
	vmc_heap_stats_t st;
	if (vmc_heap_stats(t->c, &st, 1))
		return 13;
	return 0;
}

TEST(bad_free)
{
	struct badfree t;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 64 * MiB, 8 * MiB, &t.id, &base);

	REQUIRE(c);
	REQUIRE(vmc_heap_alloc(c, 10) != NULL);
	REQUIRE(vmc_detach(c, t.id) == 0);
	t.c = c;
	for (t.how = 0; t.how <= 7; t.how++) {
		int st = test_wait(test_fork(child_bad_free, &t));
#ifdef NDEBUG
		CHECK_EQ(st, 0);
#else
		CHECK_EQ(st, 128 + SIGABRT);
#endif
		if (st != 128 + SIGABRT && st != 0)
			fprintf(stderr, "  case %d: child status %d\n", t.how, st);
		/* a crashed worker orphans the VM: reclaim it as it was */
		vmc_vm_stats_t vs;
		CHECK(vmc_recover(c, NULL) == 0);
		if (vmc_vm_stats(c, t.id, &vs) == 0 && vs.state == VMC_VM_ORPHANED)
			CHECK(vmc_vm_reclaim(c, t.id, VMC_RECLAIM_KEEP) == 0);
	}
	CHECK(vmc_attach(c, t.id, &base) == 0);
	CHECK(heap_ok(c));
	vmc_close(c);
}

/* Not a benchmark, a sanity figure for the fast path. */
TEST(fast_path_figure)
{
	uint32_t id;
	void *base;
	vmc_t *c = make_attached(1, 64 * MiB, 64 * MiB, 32 * MiB, &id, &base);
	void *ps[64];
	struct timespec t0, t1;
	const int rounds = 20000;

	REQUIRE(c);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < 64; i++)
			ps[i] = vmc_heap_alloc(c, (size_t)(16 + (i * 24) % 500));
		for (int i = 0; i < 64; i++)
			vmc_heap_free(c, ps[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
		    (rounds * 64.0);
	fprintf(stderr, "  small alloc+free pair: %.1f ns\n", ns);
	CHECK(heap_ok(c));
	vmc_close(c);
}

int main(void)
{
	RUN(random_against_model);
	RUN(random_with_trim_checked_each_step);
	RUN(realloc_in_place_and_moving);
	RUN(realloc_moves_granules);
	RUN(trim_after_a_spike);
	RUN(one_granule_vm);
	RUN(trim_under_quarantine);
	RUN(exhaustion_keeps_heap_consistent);
	RUN(exhaustion_consolidates_small_blocks);
	RUN(too_large_and_zero);
	RUN(heap_travels_strict);
	RUN(heap_travels_lazy);
	RUN(two_vms_two_heaps);
	RUN(no_vm_attached);
	RUN(stats_do_not_create_a_heap);
	RUN(not_a_heap);
	RUN(corruption_is_reported);
	RUN(bad_free);
	RUN(fast_path_figure);
	return test_done();
}
