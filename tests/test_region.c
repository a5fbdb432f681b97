/*
 * test_region.c - shared cache regions and the W^X code cache, with real
 * processes.
 *
 *  - code cache: a forked worker emits a function through the read-write
 *    alias, another forked worker and an unrelated process (fork + execve of
 *    this binary, vmc_open by name) call it at the read+execute address;
 *    writing through rx, or running code at rw, dies of SIGSEGV (W^X);
 *  - code allocator: many random-sized allocations, each a distinct
 *    function, freed by half and allocated again, from one process and from
 *    two concurrently: no overlap, every function still returns its constant;
 *  - regions of 3 GiB and 5 GiB (64-bit offsets): bytes written near 0,
 *    2 GiB-1, 2 GiB, 4 GiB+1 and the end are seen by an unrelated reader,
 *    whose writes through a read-only opening fault;
 *  - attach/detach makes no system call on the code cache or any region
 *    (the system-call table is replaced with recording wrappers), in strict
 *    and lazy mode; with code_cache_protect = 1 it does (the check can fail);
 *  - bad input and its error codes, EBUSY while another live process has a
 *    region open and success once it is dead, granules back in the pool,
 *    vmc_check clean; vmc_stats and vmc_region_stats;
 *  - a region never shows what a VM left in its granules, a VM never shows
 *    what a region left (invariant 4); a forked child that inherited a
 *    region's mapping, or an opener caught between finding a region and
 *    mapping it while another worker destroys it, never reaches granules
 *    a VM has since been given (invariants 1, 3).
 *
 * A fault that must happen is done in a child that resets SIGSEGV to the
 * default first (so that it dies of the signal under ASan too).
 */
#include "os/os.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define G test_granule()


/* A config for these tests: 4K pages, the given pool and fund, a code
 * cache and region space. */
static void cfg_of(vmc_config_t *cfg, uint64_t pool, uint64_t fund, uint64_t code,
		   uint64_t space)
{
	test_config(cfg, pool, fund);
	cfg->code_cache_size = code;
	cfg->region_space = space;
	cfg->memory_isolation = 1;
	cfg->code_cache_protect = 0;
}

static vmc_t *make_named(const char *tag, const vmc_config_t *cfg, const char **name)
{
	vmc_t *c = NULL;
	const char *n = tname(tag);
	int err = vmc_create(n, cfg, &c);
	if (err) {
		fprintf(stderr, "  vmc_create(%s): %s: %s\n", n, vmc_strerror(err), vmc_errmsg());
		return NULL;
	}
	if (name)
		*name = n;
	return c;
}

static void finish_named(vmc_t *c, const char *name)
{
	vmc_check_report_t r;
	CHECK_EQ(vmc_check(c, &r), 0);
	if (r.errors)
		fprintf(stderr, "  vmc_check: %s\n", r.first);
	CHECK_EQ(vmc_close(c), 0);
	CHECK_EQ(vmc_destroy(name), 0);
}

static int child_store(void *p)
{
	default_segv();
	*(volatile uint8_t *)p = 0x42;
	return 3;   /* the store went through */
}

/* ------------------------------------------------------- machine code */

#if defined(__x86_64__) || defined(__aarch64__)
#define HAVE_CODE 1
#define CODE_MIN 12   /* bytes of the longest function emit_const writes */

/* Write "return k" at rw: mov eax, imm32; ret (x86-64) or
 * movz w0, #lo; movk w0, #hi, lsl 16; ret (arm64). */
static size_t emit_const(void *rw, uint32_t k)
{
#if defined(__x86_64__)
	uint8_t b[6] = { 0xb8, (uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16),
			 (uint8_t)(k >> 24), 0xc3 };
	memcpy(rw, b, sizeof b);
	return sizeof b;
#else
	uint32_t ins[3] = { 0x52800000u | ((k & 0xffffu) << 5), 0x72a00000u | ((k >> 16) << 5),
			    0xd65f03c0u };
	memcpy(rw, ins, sizeof ins);
	return sizeof ins;
#endif
}

static uint32_t call_rx(void *rx)
{
	uint32_t (*fn)(void);
	memcpy(&fn, &rx, sizeof fn);
	return fn();
}
#else
#define HAVE_CODE 0
#define CODE_MIN 12
static size_t emit_const(void *rw, uint32_t k) { (void)rw; (void)k; return 0; }
static uint32_t call_rx(void *rx) { (void)rx; return 0; }
#endif

#define NEED_CODE()                                                          \
	do {                                                                 \
		if (!HAVE_CODE) {                                            \
			fprintf(stderr, "  skipped: no machine code for this " \
				"architecture\n");                           \
			return;                                              \
		}                                                            \
	} while (0)

/* ------------------------------------------------ code cache, processes */

struct code_job {
	vmc_t *c;
	int fd;          /* write end of a pipe (emitter) */
	void *rx, *rw;
	uint32_t k;
};

#define K_SHARED 0x1bad5eedu

/* Worker A: allocate, write through rw, report rx. */
static int child_emit(void *p)
{
	struct code_job *j = p;
	void *rx, *rw;
	int err = vmc_code_alloc(j->c, 64, &rx, &rw);
	if (err) {
		fprintf(stderr, "  emitter: vmc_code_alloc: %s: %s\n", vmc_strerror(err),
			vmc_errmsg());
		return 1;
	}
	if ((uintptr_t)rx % 64 || rx == rw)
		return 2;
	emit_const(rw, K_SHARED);
	vmc_code_flush(rx, 64);
	if (call_rx(rx) != K_SHARED)
		return 3;
	void *v[2] = { rx, rw };
	if (write(j->fd, v, sizeof v) != (ssize_t)sizeof v)
		return 4;
	return 0;
}

/* Worker B: join, then run the code at rx. */
static int child_call(void *p)
{
	struct code_job *j = p;
	vmc_stats_t s;
	if (vmc_stats(j->c, &s) || s.workers < 2)
		return 1;
	return call_rx(j->rx) == j->k ? 0 : 2;
}

/* Execute at the rw alias: it must not be executable. */
static int child_exec_rw(void *p)
{
	struct code_job *j = p;
	default_segv();
	call_rx(j->rw);
	return 3;
}

/* child mode: --child-call NAME RX K */
static int mode_call(char **a)
{
	vmc_t *c;
	void *rx = (void *)(uintptr_t)strtoull(a[1], NULL, 16);
	uint32_t k = (uint32_t)strtoul(a[2], NULL, 16);
	vmc_region_stats_t rs;
	int err = vmc_open(a[0], &c);

	if (err) {
		fprintf(stderr, "  child: vmc_open: %s: %s\n", vmc_strerror(err), vmc_errmsg());
		return 10;
	}
	if (vmc_region_stats(c, 0, &rs) || !rs.code || (char *)rx < (char *)rs.addr ||
	    (char *)rx >= (char *)rs.addr + rs.size)
		return 11;
	uint32_t got = call_rx(rx);
	if (got != k) {
		fprintf(stderr, "  child: code at %p returned %#x, want %#x\n", rx, got, k);
		return 12;
	}
	return vmc_close(c) ? 13 : 0;
}

TEST(code_shared_between_processes)
{
	NEED_CODE();
	vmc_config_t cfg;
	const char *name;
	vmc_stats_t s;
	int fds[2];
	void *v[2];

	cfg_of(&cfg, 32 * MiB, 16 * MiB, 4 * MiB, 16 * MiB);
	vmc_t *c = make_named("code", &cfg, &name);
	REQUIRE(c);
	REQUIRE(pipe(fds) == 0);

	struct code_job j = { c, fds[1], NULL, NULL, K_SHARED };
	CHECK_EQ(test_wait(test_fork(child_emit, &j)), 0);
	close(fds[1]);
	REQUIRE(read(fds[0], v, sizeof v) == (ssize_t)sizeof v);
	close(fds[0]);
	j.rx = v[0];
	j.rw = v[1];

	/* another forked worker, this process, an unrelated process */
	CHECK_EQ(test_wait(test_fork(child_call, &j)), 0);
	CHECK_EQ(call_rx(j.rx), K_SHARED);
	char rx[32], k[32];
	snprintf(rx, sizeof rx, "%" PRIxPTR, (uintptr_t)j.rx);
	snprintf(k, sizeof k, "%x", K_SHARED);
	char *argv[] = { "test_region", "--child-call", (char *)name, rx, k, NULL };
	CHECK_EQ(run_self(argv), 0);

	/* W^X: rx is not writable, rw is not executable */
	CHECK_EQ(test_wait(test_fork(child_store, j.rx)), 128 + SIGSEGV);
	CHECK_EQ(test_wait(test_fork(child_exec_rw, &j)), 128 + SIGSEGV);
	/* and the creator, which never allocated code, has no rw alias */
	CHECK(!readable(j.rw));
	CHECK(readable(j.rx));
	CHECK_EQ(call_rx(j.rx), K_SHARED);   /* the faults changed nothing */

	/* the allocation outlives the worker that made it */
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_size, 4 * MiB);
	CHECK_EQ(s.code_cache_used, 64);
	CHECK_EQ(vmc_code_free(c, j.rx), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, 0);
	finish_named(c, name);
}

/* The creator's own code: rx faults on store, in a fork of the writer. */
TEST(store_through_rx_faults)
{
	NEED_CODE();
	vmc_config_t cfg;
	const char *name;
	void *rx, *rw;

	cfg_of(&cfg, 32 * MiB, 16 * MiB, 2 * MiB, 0);
	vmc_t *c = make_named("wx", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_code_alloc(c, 8192, &rx, &rw) == 0);
	emit_const(rw, 77);
	vmc_code_flush(rx, 8192);
	CHECK_EQ(call_rx(rx), 77);
	/* the child has the rw alias too (inherited): rw works, rx faults */
	CHECK_EQ(test_wait(test_fork(child_store, (char *)rw + 4096)), 3);
	CHECK_EQ(((volatile uint8_t *)rx)[4096], 0x42);   /* the same memory */
	CHECK_EQ(test_wait(test_fork(child_store, rx)), 128 + SIGSEGV);
	CHECK_EQ(test_wait(test_fork(child_store, (char *)rx + 4096)), 128 + SIGSEGV);
	CHECK_EQ(call_rx(rx), 77);
	finish_named(c, name);
}

/* ------------------------------------------------------ code allocator */

struct alloc {
	void *rx, *rw;
	size_t n;
	uint32_t k;
	int live;
};

static size_t round64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

/* Allocate n bytes, write "return k" followed by int3/brk filler. */
static int alloc_fn(vmc_t *c, struct alloc *a, size_t n, uint32_t k)
{
	int err = vmc_code_alloc(c, n, &a->rx, &a->rw);
	if (err)
		return err;
	a->n = n;
	a->k = k;
	a->live = 1;
	memset(a->rw, 0xcc, n);
	emit_const(a->rw, k);
	vmc_code_flush(a->rx, n);
	return 0;
}

static int cmp_rx(const void *x, const void *y)
{
	const struct alloc *a = x, *b = y;
	return (uintptr_t)a->rx < (uintptr_t)b->rx ? -1 : (uintptr_t)a->rx > (uintptr_t)b->rx;
}

/* Live allocations are 64-byte aligned, inside [lo, lo+size), disjoint,
 * at a fixed rw-rx distance, and each returns its constant. 0 if so. */
static int verify_allocs(struct alloc *a, int n, void *lo, size_t size, ptrdiff_t rwdist)
{
	struct alloc *s = malloc(sizeof *s * (size_t)(n ? n : 1));
	int m = 0, bad = 0;

	for (int i = 0; i < n; i++)
		if (a[i].live)
			s[m++] = a[i];
	qsort(s, (size_t)m, sizeof *s, cmp_rx);
	for (int i = 0; i < m && !bad; i++) {
		char *rx = s[i].rx;
		if ((uintptr_t)rx % 64 || rx < (char *)lo || rx + s[i].n > (char *)lo + size ||
		    (char *)s[i].rw - rx != rwdist) {
			fprintf(stderr, "  allocation %p (+%zu) misplaced\n", (void *)rx, s[i].n);
			bad = 1;
		} else if (i && (char *)s[i - 1].rx + s[i - 1].n > rx) {
			fprintf(stderr, "  allocations %p+%zu and %p overlap\n", s[i - 1].rx,
				s[i - 1].n, (void *)rx);
			bad = 1;
		} else if (call_rx(rx) != s[i].k) {
			fprintf(stderr, "  function at %p returned %#x, want %#x\n", (void *)rx,
				call_rx(rx), s[i].k);
			bad = 1;
		}
	}
	free(s);
	return bad;
}

static uint64_t live_bytes(const struct alloc *a, int n)
{
	uint64_t b = 0;
	for (int i = 0; i < n; i++)
		if (a[i].live)
			b += round64(a[i].n);
	return b;
}

#define NALLOC 600

struct verify_job {
	struct alloc *a;
	int n;
	void *lo;
	size_t size;
	ptrdiff_t dist;
};

static int child_verify(void *p)
{
	struct verify_job *v = p;
	return verify_allocs(v->a, v->n, v->lo, v->size, v->dist);
}

TEST(code_alloc_free_random)
{
	NEED_CODE();
	static struct alloc a[NALLOC + NALLOC / 2];
	vmc_config_t cfg;
	vmc_region_stats_t rs;
	vmc_stats_t s;
	const char *name;
	uint64_t seed = 0x5eed;
	int n = 0;

	/* the allocations are real byte counts: so is the code cache */
	cfg_of(&cfg, 32u << 20, 16u << 20, 2u << 20, 0);
	vmc_t *c = make_named("alloc", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_region_stats(c, 0, &rs) == 0);
	CHECK(rs.code);
	CHECK_EQ(rs.size, 2u << 20);
	memset(a, 0, sizeof a);

	for (; n < NALLOC; n++) {
		size_t len = CODE_MIN + rnd(&seed) % 3000;
		int err = alloc_fn(c, &a[n], len, 0x10000u + (uint32_t)n);
		if (err) {
			fprintf(stderr, "  alloc %d of %zu: %s: %s\n", n, len, vmc_strerror(err),
				vmc_errmsg());
			CHECK(0);
			break;
		}
	}
	REQUIRE(n == NALLOC);
	ptrdiff_t dist = (char *)a[0].rw - (char *)a[0].rx;
	CHECK(dist != 0);
	CHECK_EQ(verify_allocs(a, n, rs.addr, rs.size, dist), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, live_bytes(a, n));

	/* free every other one (in a scattered order), allocate again */
	for (int i = 0; i < n; i += 2) {
		CHECK_EQ(vmc_code_free(c, a[i].rx), 0);
		a[i].live = 0;
	}
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, live_bytes(a, n));
	CHECK_EQ(verify_allocs(a, n, rs.addr, rs.size, dist), 0);
	int refilled_holes = 0;
	for (int i = 0; i < NALLOC / 2; i++, n++) {
		size_t len = CODE_MIN + rnd(&seed) % 3000;
		REQUIRE(alloc_fn(c, &a[n], len, 0x20000u + (uint32_t)i) == 0);
		for (int k = 0; k < NALLOC && !refilled_holes; k += 2)
			refilled_holes = a[n].rx == a[k].rx;
	}
	CHECK(refilled_holes);   /* first fit reuses freed space */
	CHECK_EQ(verify_allocs(a, n, rs.addr, rs.size, dist), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, live_bytes(a, n));

	/* another worker sees the same functions */
	struct verify_job vj = { a, n, rs.addr, rs.size, dist };
	CHECK_EQ(test_wait(test_fork(child_verify, &vj)), 0);

	/* free everything: the whole cache is one free run again */
	for (int i = 0; i < n; i++)
		if (a[i].live) {
			CHECK_EQ(vmc_code_free(c, a[i].rx), 0);
			a[i].live = 0;
		}
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, 0);
	void *rx, *rw;
	CHECK_EQ(vmc_code_alloc(c, 2 * MiB, &rx, &rw), 0);
	CHECK(rx == rs.addr);
	CHECK_EQ(vmc_code_free(c, rx), 0);
	finish_named(c, name);
}

/* Two processes allocate at the same time; the parent checks the union. */
#define NCONC 300

struct conc_job {
	vmc_t *c;
	int fd;
	uint32_t tag;
};

static int child_conc(void *p)
{
	struct conc_job *j = p;
	uint64_t seed = j->tag;
	struct alloc a;

	for (int i = 0; i < NCONC; i++) {
		size_t len = CODE_MIN + rnd(&seed) % 1500;
		int err = alloc_fn(j->c, &a, len, j->tag + (uint32_t)i);
		if (err) {
			fprintf(stderr, "  conc alloc: %s: %s\n", vmc_strerror(err), vmc_errmsg());
			return 1;
		}
		if (write(j->fd, &a, sizeof a) != (ssize_t)sizeof a)
			return 2;
		if (i % 3 == 2) {   /* give some back while the other allocates */
			if (vmc_code_free(j->c, a.rx))
				return 3;
			a.live = 0;
			if (write(j->fd, &a, sizeof a) != (ssize_t)sizeof a)
				return 2;
		}
	}
	return 0;
}

TEST(code_alloc_concurrent_processes)
{
	NEED_CODE();
	static struct alloc a[2 * NCONC];
	vmc_config_t cfg;
	vmc_region_stats_t rs;
	vmc_stats_t s;
	const char *name;
	int fds[2], n = 0;

	cfg_of(&cfg, 32u << 20, 16u << 20, 4u << 20, 0);   /* real bytes, as the allocations */
	vmc_t *c = make_named("conc", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_region_stats(c, 0, &rs) == 0);
	REQUIRE(pipe(fds) == 0);
	struct conc_job j1 = { c, fds[1], 0x100000 }, j2 = { c, fds[1], 0x200000 };
	pid_t p1 = test_fork(child_conc, &j1), p2 = test_fork(child_conc, &j2);
	close(fds[1]);
	struct alloc x;
	while (read(fds[0], &x, sizeof x) == (ssize_t)sizeof x) {
		int i;
		for (i = 0; i < n && !(a[i].live && a[i].rx == x.rx && a[i].k == x.k); i++)
			;
		if (i < n)            /* the free of an allocation seen before */
			a[i].live = x.live;
		else if (n < 2 * NCONC)
			a[n++] = x;
	}
	close(fds[0]);
	CHECK_EQ(test_wait(p1), 0);
	CHECK_EQ(test_wait(p2), 0);
	int live = 0;
	for (int i = 0; i < n; i++)
		live += a[i].live;
	CHECK_EQ(live, 2 * (NCONC - NCONC / 3));
	ptrdiff_t dist = n ? (char *)a[0].rw - (char *)a[0].rx : 0;
	CHECK_EQ(verify_allocs(a, n, rs.addr, rs.size, dist), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, live_bytes(a, n));
	finish_named(c, name);
}

/* --------------------------------------------------- large regions */

/* The regions beyond 4 GiB are about real 64-bit sizes: real bytes here. */
#define RMiB (1ull << 20)
#define RGiB (1ull << 30)
static const uint64_t offs3[] = { 0, 1, 2 * RGiB - 1, 2 * RGiB, 2 * RGiB + 1, 3 * RGiB - 1 };
static const uint64_t offs5[] = { 0, 1, 2 * RGiB - 1, 2 * RGiB, 2 * RGiB + 1, 4 * RGiB - 1,
				  4 * RGiB, 4 * RGiB + 1, 5 * RGiB - 1 };
#define NOFF(a) (sizeof(a) / sizeof(a)[0])

/* The byte at offset off of region r: differs between offsets that agree
 * in their low 32 bits, and between the two regions. */
static uint8_t bpat(int r, uint64_t off)
{
	return (uint8_t)(0x5b ^ (off * 131) ^ (off >> 29) ^ ((uint64_t)r * 77));
}

static int check_bytes(const uint8_t *p, int r, const uint64_t *offs, size_t n)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		if (p[offs[i]] != bpat(r, offs[i])) {
			fprintf(stderr, "  region %d offset %#llx: %#x, want %#x\n", r,
				(unsigned long long)offs[i], p[offs[i]], bpat(r, offs[i]));
			bad = 1;
		}
	return bad;
}

#define MARK3 (2 * RGiB + 7)

/* child mode: --child-regions NAME ADDR3 ADDR5.  Opens big3 read-write and
 * big5 read-only, checks the bytes and the addresses, writes markers into
 * big3, then stores into big5: must die of SIGSEGV. */
static int mode_regions(char **a)
{
	vmc_t *c;
	void *p3, *p5;
	vmc_region_stats_t rs;
	int err = vmc_open(a[0], &c);

	if (err) {
		fprintf(stderr, "  child: vmc_open: %s: %s\n", vmc_strerror(err), vmc_errmsg());
		return 10;
	}
	if ((err = vmc_region_open(c, "big3", VMC_REGION_WRITE, &p3)) ||
	    (err = vmc_region_open(c, "big5", VMC_REGION_READ, &p5))) {
		fprintf(stderr, "  child: vmc_region_open: %s: %s\n", vmc_strerror(err),
			vmc_errmsg());
		return 11;
	}
	if ((uintptr_t)p3 != strtoull(a[1], NULL, 16) || (uintptr_t)p5 != strtoull(a[2], NULL, 16))
		return 12;
	if (check_bytes(p3, 3, offs3, NOFF(offs3)) || check_bytes(p5, 5, offs5, NOFF(offs5)))
		return 13;
	/* never-written pages read as zero */
	if (((uint8_t *)p5)[3 * RGiB + 12345] || ((uint8_t *)p3)[RGiB])
		return 14;
	for (uint32_t i = 1; i < VMC_MAX_REGIONS; i++)
		if (vmc_region_stats(c, i, &rs) == 0 && rs.openers != 2) {
			fprintf(stderr, "  child: region %s has %u openers, want 2\n", rs.name,
				rs.openers);
			return 15;
		}
	((volatile uint8_t *)p3)[MARK3] = 0xa5;
	((volatile uint8_t *)p3)[3 * RGiB - 2] = 0x5a;
	default_segv();
	((volatile uint8_t *)p5)[4 * RGiB + 1] = 0;
	return 16;
}

static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	unsigned long long kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

TEST(regions_beyond_4g)
{
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	struct statvfs sv;
	const char *name;
	void *p3, *p5;
	uint64_t avail = mem_available(), shm = 0;

	if (statvfs("/dev/shm", &sv) == 0)
		shm = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail < 10 * RGiB || shm < 9 * RGiB) {
		fprintf(stderr, "  SKIPPED regions_beyond_4g: needs 10 RGiB MemAvailable and 9 RGiB "
			"free in /dev/shm (have %llu RMiB, %llu RMiB)\n",
			(unsigned long long)(avail >> 20), (unsigned long long)(shm >> 20));
		return;
	}
	cfg_of(&cfg, 9 * RGiB, 8 * RGiB + 512 * RMiB, 0, 9 * RGiB);
	cfg.max_vms = 4;
	vmc_t *c = make_named("big", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_stats(c, &s0) == 0);
	CHECK_EQ(s0.funded_bytes, 8 * RGiB + 512 * RMiB);

	REQUIRE(vmc_region_create(c, "big3", 3 * RGiB, 0, &p3) == 0);
	REQUIRE(vmc_region_create(c, "big5", 5 * RGiB, 0, &p5) == 0);
	CHECK((char *)p3 + 3 * RGiB <= (char *)p5 || (char *)p5 + 5 * RGiB <= (char *)p3);
	CHECK((uintptr_t)p3 >= s0.arena_base && (uintptr_t)p5 + 5 * RGiB <= s0.arena_base +
	      s0.arena_size && (uintptr_t)p3 + 3 * RGiB <= s0.arena_base + s0.arena_size);
	CHECK((uintptr_t)p5 >= s0.arena_base + s0.window_size);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.regions, 2);
	CHECK_EQ(s.region_bytes, 8 * RGiB);
	CHECK_EQ(s.used, s0.used + 8 * RGiB / G);
	CHECK(conserved(&s));

	for (size_t i = 0; i < NOFF(offs3); i++)
		((uint8_t *)p3)[offs3[i]] = bpat(3, offs3[i]);
	for (size_t i = 0; i < NOFF(offs5); i++)
		((uint8_t *)p5)[offs5[i]] = bpat(5, offs5[i]);
	CHECK_EQ(check_bytes(p3, 3, offs3, NOFF(offs3)), 0);
	CHECK_EQ(check_bytes(p5, 5, offs5, NOFF(offs5)), 0);

	char a3[32], a5[32];
	snprintf(a3, sizeof a3, "%" PRIxPTR, (uintptr_t)p3);
	snprintf(a5, sizeof a5, "%" PRIxPTR, (uintptr_t)p5);
	char *argv[] = { "test_region", "--child-regions", (char *)name, a3, a5, NULL };
	CHECK_EQ(run_self(argv), 128 + SIGSEGV);
	/* the reader's writes through its read-write opening */
	CHECK_EQ(((volatile uint8_t *)p3)[MARK3], 0xa5);
	CHECK_EQ(((volatile uint8_t *)p3)[3 * RGiB - 2], 0x5a);
	/* its faulting store changed nothing */
	CHECK_EQ(((volatile uint8_t *)p5)[4 * RGiB + 1], bpat(5, 4 * RGiB + 1));

	/* the reader died with both open: destroy still works */
	CHECK_EQ(vmc_region_destroy(c, "big3"), 0);
	CHECK_EQ(vmc_region_destroy(c, "big5"), 0);
	CHECK(!readable(p3));
	CHECK(!readable((char *)p5 + 4 * RGiB));
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.regions, 0);
	CHECK_EQ(s.region_bytes, 0);
	CHECK_EQ(s.used, s0.used);
	CHECK_EQ(s.free + s.cached, s0.free + s0.cached);
	CHECK(conserved(&s));
	finish_named(c, name);
}

/* ---------------------------- attach/detach leave code and regions alone */

#define NFORBID 8
static struct { uintptr_t lo, hi; const char *what; } forbid[NFORBID];
static int nforbid;
static uint64_t rec_calls, rec_hits, rec_hits_mprotect;
static struct vmc_os_table real_os;

static void add_forbid(const void *p, size_t n, const char *what)
{
	if (nforbid < NFORBID) {
		forbid[nforbid].lo = (uintptr_t)p;
		forbid[nforbid].hi = (uintptr_t)p + n;
		forbid[nforbid].what = what;
		nforbid++;
	}
}

static int record(const char *call, const void *p, size_t n)
{
	uintptr_t lo = (uintptr_t)p, hi = lo + n;
	int hit = 0;

	rec_calls++;
	for (int i = 0; i < nforbid; i++)
		if (lo < forbid[i].hi && hi > forbid[i].lo) {
			if (!rec_hits)
				fprintf(stderr, "  %s(%p, %zu) touches the %s\n", call, p, n,
					forbid[i].what);
			hit = 1;
		}
	rec_hits += hit;
	return hit;
}

static void *rec_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
	void *p = real_os.mmap(a, n, prot, flags, fd, off);
	record("mmap", a ? a : p, n);
	return p;
}

static int rec_munmap(void *a, size_t n)
{
	record("munmap", a, n);
	return real_os.munmap(a, n);
}

static int rec_mprotect(void *a, size_t n, int prot)
{
	rec_hits_mprotect += record("mprotect", a, n);
	return real_os.mprotect(a, n, prot);
}

static int rec_madvise(void *a, size_t n, int advice)
{
	record("madvise", a, n);
	return real_os.madvise(a, n, advice);
}

static void recording(int on)
{
	if (on) {
		real_os = vmc_os;
		rec_calls = rec_hits = rec_hits_mprotect = 0;
		vmc_os.mmap = rec_mmap;
		vmc_os.munmap = rec_munmap;
		vmc_os.mprotect = rec_mprotect;
		vmc_os.madvise = rec_madvise;
	} else {
		vmc_os.mmap = real_os.mmap;
		vmc_os.munmap = real_os.munmap;
		vmc_os.mprotect = real_os.mprotect;
		vmc_os.madvise = real_os.madvise;
	}
}

#define NVM 5
#define CYCLES 1000

/* 1000 attach/detach cycles over NVM VMs with the code cache (rx and the
 * rw alias) and two regions (one read-write, one read-only) mapped. */
static void attach_loop(int isolation, int protect)
{
	vmc_config_t cfg;
	vmc_region_stats_t rs;
	const char *name;
	uint32_t id[NVM];
	void *base, *rx, *rw, *r1, *r2;

	cfg_of(&cfg, 64 * MiB, 48 * MiB, 4 * MiB, 32 * MiB);
	cfg.memory_isolation = isolation;
	cfg.code_cache_protect = protect;
	vmc_t *c = make_named("loop", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_code_alloc(c, 64, &rx, &rw) == 0);
	emit_const(rw, 0xc0de);
	vmc_code_flush(rx, 64);
	REQUIRE(vmc_region_create(c, "rw-region", 8 * MiB, 0, &r1) == 0);
	REQUIRE(vmc_region_create(c, "ro-region", 4 * MiB, 0, &r2) == 0);
	memset(r2, 0x77, 4096);
	REQUIRE(vmc_region_close(c, r2) == 0);
	REQUIRE(vmc_region_open(c, "ro-region", VMC_REGION_READ, &r2) == 0);
	for (int v = 0; v < NVM; v++) {
		char vn[16];
		snprintf(vn, sizeof vn, "vm%d", v);
		REQUIRE(vmc_vm_create(c, vn, 8 * MiB, &id[v]) == 0);
		REQUIRE(vmc_attach(c, id[v], &base) == 0);
		REQUIRE(vmc_commit(c, base, (size_t)(1 + v % 2) * G, 0) == 0);
		*(int *)base = v;
		REQUIRE(vmc_detach(c, id[v]) == 0);
	}
	REQUIRE(vmc_region_stats(c, 0, &rs) == 0);
	nforbid = 0;
	add_forbid(rs.addr, rs.size, "code cache (rx)");
	add_forbid((char *)rw - ((char *)rx - (char *)rs.addr), rs.size, "code cache (rw alias)");
	add_forbid(r1, 8 * MiB, "read-write region");
	add_forbid(r2, 4 * MiB, "read-only region");

	int bad = 0;
	recording(1);
	for (int i = 0; i < CYCLES; i++) {
		int v = i % NVM;
		if (vmc_attach(c, id[v], &base) || *(volatile int *)base != v ||
		    (i % 97 == 0 && call_rx(rx) != 0xc0de) || vmc_detach(c, id[v]))
			bad++;
	}
	recording(0);
	CHECK_EQ(bad, 0);
	fprintf(stderr, "  isolation %d, code_cache_protect %d: %llu calls in %d cycles, "
		"%llu on the code cache or a region (%llu mprotect)\n", isolation, protect,
		(unsigned long long)rec_calls, CYCLES, (unsigned long long)rec_hits,
		(unsigned long long)rec_hits_mprotect);
	/* the wrappers saw the window's calls: each cycle switches VMs */
	CHECK(rec_calls >= CYCLES);
	if (!protect) {
		CHECK_EQ(rec_hits, 0);
	} else {
		/* the naive way: one mprotect of the code cache per attach and detach */
		CHECK(rec_hits_mprotect >= 2 * CYCLES);
		REQUIRE(vmc_attach(c, id[0], &base) == 0);
	}
	/* everything still works */
	if (HAVE_CODE)
		CHECK_EQ(call_rx(rx), 0xc0de);
	if (protect)
		CHECK_EQ(vmc_detach(c, id[0]), 0);
	CHECK_EQ(((volatile uint8_t *)r2)[100], 0x77);
	((volatile uint8_t *)r1)[8 * MiB - 1] = 1;
	nforbid = 0;
	CHECK_EQ(vmc_region_destroy(c, "rw-region"), 0);
	CHECK_EQ(vmc_region_destroy(c, "ro-region"), 0);
	finish_named(c, name);
}

TEST(attach_detach_no_syscalls_on_code_or_regions_strict) { attach_loop(1, 0); }
TEST(attach_detach_no_syscalls_on_code_or_regions_lazy) { attach_loop(0, 0); }
TEST(code_cache_protect_does_mprotect_the_code_cache) { attach_loop(1, 1); }

/* ---------------------------------------------------------- bad input */

TEST(region_bad_input)
{
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	vmc_region_stats_t rs;
	const char *name;
	void *a, *b, *x, *rx, *rw;
	char longname[80];

	cfg_of(&cfg, 64 * MiB, 32 * MiB, 0, 16 * MiB);
	vmc_t *c = make_named("bad", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_stats(c, &s0) == 0);

	CHECK_EQ(vmc_region_create(c, "z", 0, 0, &x), EINVAL);
	/* a size is rounded up to whole granules */
	{
		vmc_region_stats_t zs;
		CHECK_EQ(vmc_region_create(c, "z", G + 1, 0, &x), 0);
		CHECK(vmc_region_stats(c, 1, &zs) == 0 && zs.size == 2 * G);
		CHECK_EQ(vmc_region_close(c, x), 0);
		CHECK_EQ(vmc_region_destroy(c, "z"), 0);
	}
	CHECK_EQ(vmc_region_create(c, "", G, 0, &x), EINVAL);
	CHECK_EQ(vmc_region_create(c, NULL, G, 0, &x), EINVAL);
	memset(longname, 'n', sizeof longname);
	longname[64] = 0;   /* 64 characters: one too many */
	CHECK_EQ(vmc_region_create(c, longname, G, 0, &x), EINVAL);
	CHECK_EQ(vmc_region_create(c, "z", G, 1, &x), EINVAL);
	CHECK_EQ(vmc_region_create(c, "z", G, 0, NULL), EINVAL);
	CHECK_EQ(vmc_region_create(NULL, "z", G, 0, &x), EINVAL);
	CHECK_EQ(vmc_region_create(c, "z", 128 * MiB, 0, &x), EINVAL);   /* > pool */
	CHECK_EQ(vmc_region_create(c, "z", 48 * MiB, 0, &x), ENOSPC);    /* > region_space */

	CHECK_EQ(vmc_region_create(c, "a", 8 * MiB, 0, &a), 0);
	CHECK_EQ(vmc_region_create(c, "a", 2 * MiB, 0, &x), EEXIST);
	CHECK_EQ(vmc_region_create(c, "b", 8 * MiB, 0, &b), 0);
	CHECK_EQ(vmc_region_create(c, "c", 2 * MiB, 0, &x), ENOSPC);     /* arena full */
	CHECK(a != b);
	memset(a, 1, 8 * MiB);
	memset(b, 2, 8 * MiB);

	CHECK_EQ(vmc_region_open(c, "missing", VMC_REGION_READ, &x), ENOENT);
	CHECK_EQ(vmc_region_open(c, "a", 7, &x), EINVAL);
	CHECK_EQ(vmc_region_open(c, NULL, VMC_REGION_READ, &x), EINVAL);
	CHECK_EQ(vmc_region_open(c, "a", VMC_REGION_READ, NULL), EINVAL);
	CHECK_EQ(vmc_region_close(c, (char *)a + G), EINVAL);
	CHECK_EQ(vmc_region_close(c, &cfg), EINVAL);
	CHECK_EQ(vmc_region_destroy(c, "missing"), ENOENT);
	CHECK_EQ(vmc_region_destroy(c, NULL), EINVAL);
	CHECK_EQ(vmc_region_stats(c, VMC_MAX_REGIONS, &rs), EINVAL);
	CHECK_EQ(vmc_region_stats(c, 1, NULL), EINVAL);
	CHECK_EQ(vmc_region_stats(c, 0, &rs), ENOENT);   /* no code cache */
	CHECK_EQ(vmc_region_stats(c, 3, &rs), ENOENT);

	/* no code cache */
	CHECK_EQ(vmc_code_alloc(c, 64, &rx, &rw), ENOSYS);
	CHECK_EQ(vmc_code_free(c, a), EINVAL);

	/* closing twice; opening again maps it at the same place */
	CHECK_EQ(vmc_region_close(c, a), 0);
	CHECK(!readable(a));
	CHECK_EQ(vmc_region_close(c, a), EINVAL);
	CHECK_EQ(vmc_region_open(c, "a", VMC_REGION_READ, &x), 0);
	CHECK(x == a);
	CHECK_EQ(((uint8_t *)a)[8 * MiB - 1], 1);
	CHECK_EQ(test_wait(test_fork(child_store, a)), 128 + SIGSEGV);   /* read-only */

	/* the freed arena space and granules are reused */
	CHECK_EQ(vmc_region_destroy(c, "a"), 0);
	CHECK(!readable(a));
	CHECK_EQ(vmc_region_open(c, "a", VMC_REGION_READ, &x), ENOENT);
	CHECK_EQ(vmc_region_create(c, "c", 2 * MiB, 0, &x), 0);
	CHECK(x == a);
	CHECK_EQ(vmc_region_create(c, "d", 6 * MiB, 0, &x), 0);
	CHECK(x == (char *)a + 2 * MiB);
	CHECK_EQ(vmc_region_create(c, "e", 2 * MiB, 0, &x), ENOSPC);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, s0.used + 8);
	CHECK_EQ(s.regions, 3);
	CHECK_EQ(s.region_bytes, 16 * MiB);
	CHECK_EQ(vmc_check(c, NULL), 0);
	CHECK_EQ(((uint8_t *)b)[0], 2);   /* untouched by the others */

	CHECK_EQ(vmc_region_destroy(c, "b"), 0);
	CHECK_EQ(vmc_region_destroy(c, "c"), 0);
	CHECK_EQ(vmc_region_destroy(c, "d"), 0);
	CHECK_EQ(vmc_region_destroy(c, "d"), ENOENT);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, s0.used);
	CHECK_EQ(s.free + s.cached, s0.free + s0.cached);
	CHECK_EQ(s.regions, 0);
	CHECK_EQ(s.region_bytes, 0);
	CHECK(conserved(&s));
	finish_named(c, name);
}

/* More than is funded (but no more than the pool), and a full table. */
TEST(region_funds_and_table_limits)
{
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	const char *name;
	void *x, *addr[VMC_MAX_REGIONS];

	cfg_of(&cfg, 160 * MiB, 128 * MiB, 0, 1 * GiB);
	vmc_t *c = make_named("lim", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_stats(c, &s0) == 0);
	CHECK_EQ(vmc_region_create(c, "x", 130 * MiB, 0, &x), VMC_EFUNDS);
	CHECK_EQ(vmc_region_create(c, "x", 162 * MiB, 0, &x), EINVAL);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, s0.used);

	int made_n = 0;
	for (int r = 1; r < VMC_MAX_REGIONS; r++) {
		char rn[16];
		snprintf(rn, sizeof rn, "r%d", r);
		int err = vmc_region_create(c, rn, G, 0, &addr[r]);
		CHECK_EQ(err, 0);
		if (err)
			break;
		*(int *)addr[r] = r;
		made_n++;
	}
	CHECK_EQ(made_n, VMC_MAX_REGIONS - 1);
	CHECK_EQ(vmc_region_create(c, "one-too-many", G, 0, &x), ENOSPC);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.regions, VMC_MAX_REGIONS - 1);
	CHECK_EQ(s.used, s0.used + VMC_MAX_REGIONS - 1);
	for (int r = 1; r <= made_n; r++) {
		char rn[16];
		snprintf(rn, sizeof rn, "r%d", r);
		CHECK_EQ(*(int *)addr[r], r);
		CHECK_EQ(vmc_region_destroy(c, rn), 0);
	}
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.regions, 0);
	CHECK_EQ(s.used, s0.used);
	CHECK(conserved(&s));
	finish_named(c, name);
}

TEST(code_bad_input)
{
	vmc_config_t cfg;
	vmc_stats_t s;
	vmc_region_stats_t rs;
	const char *name;
	void *rx, *rw, *rx2, *rx3;

	cfg_of(&cfg, 32 * MiB, 16 * MiB, 2 * MiB, 0);
	vmc_t *c = make_named("codebad", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_region_stats(c, 0, &rs) == 0);
	CHECK_EQ(vmc_code_alloc(c, 0, &rx, &rw), EINVAL);
	CHECK_EQ(vmc_code_alloc(c, 2 * MiB + 1, &rx, &rw), EINVAL);
	CHECK_EQ(vmc_code_alloc(c, SIZE_MAX, &rx, &rw), EINVAL);
	CHECK_EQ(vmc_code_alloc(c, 64, NULL, &rw), EINVAL);
	CHECK_EQ(vmc_code_alloc(NULL, 64, &rx, &rw), EINVAL);

	/* the whole cache, then nothing more */
	CHECK_EQ(vmc_code_alloc(c, 2 * MiB, &rx, &rw), 0);
	CHECK(rx == rs.addr);
	CHECK_EQ(vmc_code_alloc(c, 1, &rx2, NULL), ENOMEM);
	CHECK_EQ(vmc_code_free(c, rx), 0);
	/* rw may be NULL */
	CHECK_EQ(vmc_code_alloc(c, 2 * MiB - 64, &rx, NULL), 0);
	CHECK_EQ(vmc_code_alloc(c, 64, &rx2, &rw), 0);
	CHECK(rx2 == (char *)rx + 2 * MiB - 64);
	CHECK_EQ(vmc_code_alloc(c, 1, &rx3, &rw), ENOMEM);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, 2 * MiB);

	CHECK_EQ(vmc_code_free(c, NULL), EINVAL);
	CHECK_EQ(vmc_code_free(c, (char *)rx + 1), EINVAL);        /* unaligned */
	CHECK_EQ(vmc_code_free(c, (char *)rx + 64), EINVAL);       /* inside one */
	CHECK_EQ(vmc_code_free(c, (char *)rs.addr + rs.size), EINVAL);  /* past the end */
	CHECK_EQ(vmc_code_free(c, (char *)rs.addr - 64), EINVAL);  /* before it */
	CHECK_EQ(vmc_code_free(c, rw), EINVAL);                    /* the rw alias */
	CHECK_EQ(vmc_code_free(c, &cfg), EINVAL);
	CHECK_EQ(vmc_code_free(c, rx2), 0);
	CHECK_EQ(vmc_code_free(c, rx2), EINVAL);                   /* twice */
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, 2 * MiB - 64);
	CHECK_EQ(vmc_code_free(c, rx), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.code_cache_used, 0);

	/* the code cache is not a region one can open, close or destroy */
	CHECK_EQ(vmc_region_open(c, rs.name, VMC_REGION_WRITE, &rw), EINVAL);
	CHECK(strstr(vmc_errmsg(), "code cache") != NULL);
	CHECK_EQ(vmc_region_close(c, rs.addr), EINVAL);
	CHECK_EQ(vmc_region_destroy(c, rs.name), EINVAL);
	CHECK_EQ(vmc_region_create(c, rs.name, G, 0, &rw), EEXIST);
	finish_named(c, name);

	/* a code cache larger than the fund is refused at create */
	vmc_t *c2 = NULL;
	cfg_of(&cfg, 32 * MiB, 16 * MiB, 18 * MiB, 0);
	CHECK_EQ(vmc_create(tname("codebig"), &cfg, &c2), EINVAL);
	/* an odd size is rounded up to whole granules */
	cfg_of(&cfg, 32 * MiB, 16 * MiB, G + 1, 0);
	const char *odd = tname("codeodd");
	CHECK_EQ(vmc_create(odd, &cfg, &c2), 0);
	if (c2) {
		vmc_stats_t os;
		CHECK(vmc_stats(c2, &os) == 0 && os.code_cache_size == 2 * G);
		finish_named(c2, odd);
	}
}

/* ------------------------------------ destroy while open elsewhere */

struct hold {
	vmc_t *c;
	const char *region;
	void *addr;
	int ready[2], go[2];
	int close_first;
};

/* Open the region (read-only), maybe close it, say so, wait for the word. */
static int child_hold(void *p)
{
	struct hold *h = p;
	void *a;
	char b;
	int err;

	close(h->ready[0]);
	close(h->go[1]);
	err = vmc_region_open(h->c, h->region, VMC_REGION_READ, &a);
	if (!err && (a != h->addr || *(volatile uint8_t *)a != 0x3c))
		err = -100;
	if (!err && h->close_first)
		err = vmc_region_close(h->c, a);
	b = err ? 'E' : 'R';
	if (write(h->ready[1], &b, 1) != 1)
		return 4;
	if (read(h->go[0], &b, 1) < 0)
		return 5;
	return err ? 1 : 0;
}

static pid_t start_hold(struct hold *h)
{
	char b = 0;
	if (pipe(h->ready) || pipe(h->go))
		return -1;
	pid_t pid = test_fork(child_hold, h);
	close(h->ready[1]);
	close(h->go[0]);
	if (read(h->ready[0], &b, 1) != 1 || b != 'R') {
		fprintf(stderr, "  holder did not open the region (%c)\n", b);
		kill(pid, SIGKILL);
		test_wait(pid);
		pid = -1;
	}
	close(h->ready[0]);
	return pid;
}

TEST(destroy_busy_until_opener_dies)
{
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	vmc_region_stats_t rs;
	const char *name;
	void *a;

	cfg_of(&cfg, 32 * MiB, 16 * MiB, 0, 64 * MiB);
	vmc_t *c = make_named("busy", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_stats(c, &s0) == 0);
	REQUIRE(vmc_region_create(c, "shared", 4 * MiB, 0, &a) == 0);
	memset(a, 0x3c, 4 * MiB);

	/* a live opener: EBUSY; killed: destroy works */
	struct hold h = { c, "shared", a, {-1, -1}, {-1, -1}, 0 };
	pid_t pid = start_hold(&h);
	REQUIRE(pid > 0);
	CHECK_EQ(vmc_region_stats(c, 1, &rs), 0);
	CHECK_EQ(rs.openers, 2);
	CHECK_EQ(vmc_region_destroy(c, "shared"), EBUSY);
	CHECK_EQ(vmc_region_destroy(c, "shared"), EBUSY);
	CHECK_EQ(((uint8_t *)a)[0], 0x3c);   /* still ours */
	kill(pid, SIGKILL);
	CHECK_EQ(test_wait(pid), 128 + SIGKILL);
	close(h.go[1]);
	CHECK_EQ(vmc_region_destroy(c, "shared"), 0);
	CHECK(!readable(a));
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, s0.used);
	CHECK_EQ(s.regions, 0);
	CHECK_EQ(vmc_check(c, NULL), 0);

	/* a live opener that exits normally without closing */
	REQUIRE(vmc_region_create(c, "shared", 4 * MiB, 0, &a) == 0);
	memset(a, 0x3c, 4 * MiB);
	h.addr = a;
	pid = start_hold(&h);
	REQUIRE(pid > 0);
	CHECK_EQ(vmc_region_destroy(c, "shared"), EBUSY);
	close(h.go[1]);   /* the word: exit */
	CHECK_EQ(test_wait(pid), 0);
	CHECK_EQ(vmc_region_destroy(c, "shared"), 0);

	/* a live process that closed it again does not hold it */
	REQUIRE(vmc_region_create(c, "shared", 4 * MiB, 0, &a) == 0);
	memset(a, 0x3c, 4 * MiB);
	h.addr = a;
	h.close_first = 1;
	pid = start_hold(&h);
	REQUIRE(pid > 0);
	CHECK_EQ(vmc_region_stats(c, 1, &rs), 0);
	CHECK_EQ(rs.openers, 1);
	CHECK_EQ(vmc_region_destroy(c, "shared"), 0);
	close(h.go[1]);
	CHECK_EQ(test_wait(pid), 0);

	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.used, s0.used);
	CHECK_EQ(s.free + s.cached, s0.free + s0.cached);
	CHECK(conserved(&s));
	finish_named(c, name);
}

/* A forked child inherits the region's mapping with its parent's handle.
 * Either the region is then busy, or destroying it takes the mapping away
 * from the child: its granules must never be reachable from the child
 * once a VM has them (invariants 1 and 3). */
#define SECRET 0xe7

static int child_inherit(void *p)
{
	struct hold *h = p;
	vmc_stats_t s;
	char b = 'R';

	close(h->ready[0]);
	close(h->go[1]);
	if (vmc_stats(h->c, &s))   /* join: a worker of its own */
		b = 'E';
	if (!readable(h->addr))
		b = 'U';   /* the fork did not keep the mapping: nothing to leak */
	else if (*(volatile uint8_t *)h->addr != 0x3c)
		b = 'N';
	if (write(h->ready[1], &b, 1) != 1)
		return 4;
	if (read(h->go[0], &b, 1) < 0)
		return 5;
	if (!readable(h->addr))
		return 0;
	uint8_t v = *(volatile uint8_t *)h->addr;
	fprintf(stderr, "  forked child still maps the destroyed region at %p: reads %#x%s\n",
		h->addr, v, v == SECRET ? " (the new VM's data)" : "");
	return v == SECRET ? 2 : 1;
}

TEST(forked_child_keeps_inherited_region)
{
	vmc_config_t cfg;
	const char *name;
	char b = 0;
	uint32_t id;
	void *a, *base;

	cfg_of(&cfg, 16 * MiB, 16 * MiB, 0, 64 * MiB);
	vmc_t *c = make_named("inherit", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_region_create(c, "inh", 4 * MiB, 0, &a) == 0);
	memset(a, 0x3c, 4 * MiB);

	struct hold h = { c, "inh", a, {-1, -1}, {-1, -1}, 0 };
	REQUIRE(pipe(h.ready) == 0 && pipe(h.go) == 0);
	pid_t pid = test_fork(child_inherit, &h);
	close(h.ready[1]);
	close(h.go[0]);
	CHECK(read(h.ready[0], &b, 1) == 1 && (b == 'R' || b == 'U'));
	close(h.ready[0]);

	int err = vmc_region_destroy(c, "inh");
	CHECK(err == 0 || err == EBUSY);
	if (err == 0) {
		/* the pool's granules all go to a VM, which writes its secret */
		REQUIRE(vmc_vm_create(c, "heir", 16 * MiB, &id) == 0);
		REQUIRE(vmc_attach(c, id, &base) == 0);
		CHECK_EQ(vmc_commit(c, base, 16 * MiB, 0), 0);
		for (size_t off = 0; off < 16 * MiB; off += G)
			memset((char *)base + off, SECRET, 4096);
		CHECK_EQ(vmc_detach(c, id), 0);
		CHECK_EQ(write(h.go[1], "g", 1), 1);
		close(h.go[1]);
		CHECK_EQ(test_wait(pid), 0);
		CHECK_EQ(vmc_vm_destroy(c, id), 0);
	} else {
		close(h.go[1]);
		CHECK_EQ(test_wait(pid), 0);   /* region still there: it may read it */
		CHECK_EQ(vmc_region_destroy(c, "inh"), 0);
	}
	finish_named(c, name);
}

/* vmc_region_open racing vmc_region_destroy: the opener is stopped inside
 * vmc_region_open, after it found the region and before it maps it (its
 * mmap of the region's address waits for the parent), while the parent
 * destroys the region and gives all of the pool to a VM.  Either the
 * destroy is refused (EBUSY), or the open fails, or at least the opener
 * never maps the granules the VM now owns. */
static struct hold *race_h;
static void *(*race_real_mmap)(void *, size_t, int, int, int, off_t);

static void *race_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
	char b = 'M';
	if (a == race_h->addr) {
		if (write(race_h->ready[1], &b, 1) != 1 || read(race_h->go[0], &b, 1) < 0)
			_exit(6);
	}
	return race_real_mmap(a, n, prot, flags, fd, off);
}

static int child_open_race(void *p)
{
	struct hold *h = p;
	vmc_stats_t s;
	void *a;

	close(h->ready[0]);
	close(h->go[1]);
	if (vmc_stats(h->c, &s))   /* join first */
		return 4;
	/* what fork inherited is not the question here */
	if (readable(h->addr) && vmc_region_close(h->c, h->addr) &&
	    munmap(h->addr, 4 * MiB))
		return 7;
	race_h = h;
	race_real_mmap = vmc_os.mmap;
	vmc_os.mmap = race_mmap;
	int err = vmc_region_open(h->c, h->region, VMC_REGION_READ, &a);
	vmc_os.mmap = race_real_mmap;
	if (err)
		return 0;
	if (!readable(a))
		return 0;
	uint8_t v = *(volatile uint8_t *)a;
	if (v == 0x3c)
		return 0;   /* the region's own data: the destroy waited */
	fprintf(stderr, "  vmc_region_open returned a mapping of a destroyed region: "
		"reads %#x%s\n", v, v == SECRET ? " (the new VM's data)" : "");
	return v == SECRET ? 2 : 1;
}

/* The parent's side, in a thread: a fix that holds a lock across the
 * opener's mmap makes the destroy wait for the opener, which waits for
 * the word; the main thread gives it after a while either way. */
struct race_job {
	vmc_t *c;
	int err, done;
};

static void *race_destroy(void *p)
{
	struct race_job *j = p;
	uint32_t id;
	void *base;

	j->err = vmc_region_destroy(j->c, "contested");
	if (j->err == 0 && vmc_vm_create(j->c, "taker", 16 * MiB, &id) == 0) {
		if (vmc_attach(j->c, id, &base) == 0) {
			if (vmc_commit(j->c, base, 16 * MiB, 0) == 0)
				for (size_t off = 0; off < 16 * MiB; off += G)
					memset((char *)base + off, SECRET, 4096);
			vmc_detach(j->c, id);
		}
	}
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(open_racing_destroy)
{
	vmc_config_t cfg;
	const char *name;
	pthread_t t;
	void *a;
	char b = 0;

	cfg_of(&cfg, 16 * MiB, 16 * MiB, 0, 64 * MiB);
	vmc_t *c = make_named("race", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_region_create(c, "contested", 4 * MiB, 0, &a) == 0);
	memset(a, 0x3c, 4 * MiB);

	struct hold h = { c, "contested", a, {-1, -1}, {-1, -1}, 0 };
	REQUIRE(pipe(h.ready) == 0 && pipe(h.go) == 0);
	pid_t pid = test_fork(child_open_race, &h);
	close(h.ready[1]);
	close(h.go[0]);
	CHECK(read(h.ready[0], &b, 1) == 1 && b == 'M');
	close(h.ready[0]);

	struct race_job j = { c, -1, 0 };
	REQUIRE(pthread_create(&t, NULL, race_destroy, &j) == 0);
	for (int i = 0; i < 300 && !__atomic_load_n(&j.done, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	close(h.go[1]);   /* the opener goes on */
	pthread_join(t, NULL);
	CHECK(j.err == 0 || j.err == EBUSY);
	CHECK_EQ(test_wait(pid), 0);
	if (j.err == EBUSY)
		CHECK_EQ(vmc_region_destroy(c, "contested"), 0);
	finish_named(c, name);
}

/* ------------------------------------------------ invariant 4 both ways */

TEST(region_memory_starts_zeroed)
{
	vmc_config_t cfg;
	vmc_stats_t s;
	const char *name;
	uint32_t id;
	void *base, *r;
	size_t nonzero = 0;

	cfg_of(&cfg, 16 * MiB, 16 * MiB, 0, 64 * MiB);
	vmc_t *c = make_named("zero", &cfg, &name);
	REQUIRE(c);

	/* a VM fills the whole pool and goes away */
	REQUIRE(vmc_vm_create(c, "dirty", 16 * MiB, &id) == 0);
	REQUIRE(vmc_attach(c, id, &base) == 0);
	REQUIRE(vmc_commit(c, base, 16 * MiB, 0) == 0);
	memset(base, 0xab, 16 * MiB);
	CHECK_EQ(vmc_detach(c, id), 0);
	CHECK_EQ(vmc_vm_destroy(c, id), 0);

	/* a region made of those granules must not show it */
	int err = vmc_region_create(c, "fresh", 16 * MiB, 0, &r);
	CHECK_EQ(err, 0);
	if (err)
		fprintf(stderr, "  %s\n", vmc_errmsg());
	if (!err) {
		for (size_t k = 0; k < 16 * MiB; k++)
			nonzero += ((uint8_t *)r)[k] != 0;
		if (nonzero)
			fprintf(stderr, "  new region shows %zu bytes a destroyed VM left\n",
				nonzero);
		CHECK_EQ(nonzero, 0);

		/* and a VM never sees what a region left */
		memset(r, 0xcd, 16 * MiB);
		CHECK_EQ(vmc_region_destroy(c, "fresh"), 0);
		REQUIRE(vmc_vm_create(c, "clean", 16 * MiB, &id) == 0);
		REQUIRE(vmc_attach(c, id, &base) == 0);
		REQUIRE(vmc_commit(c, base, 16 * MiB, 0) == 0);
		nonzero = 0;
		for (size_t k = 0; k < 16 * MiB; k++)
			nonzero += ((uint8_t *)base)[k] != 0;
		CHECK_EQ(nonzero, 0);
		CHECK_EQ(vmc_detach(c, id), 0);
		CHECK_EQ(vmc_vm_destroy(c, id), 0);
	}
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK(conserved(&s));
	finish_named(c, name);
}

/* ------------------------------------------------------------ statistics */

struct open_job {
	vmc_t *c;
	int ready[2], go[2];
};

static int child_open_two(void *p)
{
	struct open_job *j = p;
	void *a;
	char b = 'R';
	close(j->ready[0]);
	close(j->go[1]);
	if (vmc_region_open(j->c, "s1", VMC_REGION_READ, &a) ||
	    vmc_region_open(j->c, "s2", VMC_REGION_WRITE, &a))
		b = 'E';
	if (write(j->ready[1], &b, 1) != 1)
		return 4;
	if (read(j->go[0], &b, 1) < 0)
		return 5;
	return vmc_close(j->c) ? 6 : 0;   /* closing the container closes both */
}

TEST(stats_list_regions)
{
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	vmc_region_stats_t rs;
	const char *name;
	void *a1, *a2, *rx, *rw;
	char b = 0;

	cfg_of(&cfg, 64 * MiB, 32 * MiB, 4 * MiB, 64 * MiB);
	vmc_t *c = make_named("stats", &cfg, &name);
	REQUIRE(c);
	REQUIRE(vmc_stats(c, &s0) == 0);
	CHECK_EQ(s0.regions, 0);            /* the code cache is not counted */
	CHECK_EQ(s0.region_bytes, 0);
	CHECK_EQ(s0.code_cache_size, 4 * MiB);
	CHECK_EQ(s0.code_cache_used, 0);
	CHECK_EQ(s0.used, 2);               /* but its granules are used */
	CHECK(conserved(&s0));

	REQUIRE(vmc_region_create(c, "s1", 4 * MiB, 0, &a1) == 0);
	REQUIRE(vmc_region_create(c, "s2", 6 * MiB, 0, &a2) == 0);
	REQUIRE(vmc_code_alloc(c, 100, &rx, &rw) == 0);
	REQUIRE(vmc_code_alloc(c, 64, &rx, &rw) == 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.regions, 2);
	CHECK_EQ(s.region_bytes, 10 * MiB);
	CHECK_EQ(s.code_cache_used, 192);
	CHECK_EQ(s.used, s0.used + 5);
	CHECK(conserved(&s));

	CHECK_EQ(vmc_region_stats(c, 0, &rs), 0);
	CHECK_EQ(rs.code, 1);
	CHECK_EQ(rs.size, 4 * MiB);
	CHECK((char *)rx >= (char *)rs.addr && (char *)rx < (char *)rs.addr + rs.size);
	CHECK(rs.name[0] != 0);
	int found = 0;
	for (uint32_t i = 1; i < VMC_MAX_REGIONS; i++) {
		int err = vmc_region_stats(c, i, &rs);
		if (err) {
			CHECK_EQ(err, ENOENT);
			continue;
		}
		found++;
		CHECK_EQ(rs.code, 0);
		CHECK_EQ(rs.openers, 1);
		if (!strcmp(rs.name, "s1")) {
			CHECK_EQ(rs.size, 4 * MiB);
			CHECK(rs.addr == a1);
		} else if (!strcmp(rs.name, "s2")) {
			CHECK_EQ(rs.size, 6 * MiB);
			CHECK(rs.addr == a2);
		} else {
			fprintf(stderr, "  unexpected region %s\n", rs.name);
			CHECK(0);
		}
	}
	CHECK_EQ(found, 2);

	/* a second process opens both: two openers each; it closes: one */
	struct open_job j = { c, {-1, -1}, {-1, -1} };
	REQUIRE(pipe(j.ready) == 0 && pipe(j.go) == 0);
	pid_t pid = test_fork(child_open_two, &j);
	close(j.ready[1]);
	close(j.go[0]);
	CHECK(read(j.ready[0], &b, 1) == 1 && b == 'R');
	close(j.ready[0]);
	for (uint32_t i = 1; i < VMC_MAX_REGIONS; i++)
		if (vmc_region_stats(c, i, &rs) == 0)
			CHECK_EQ(rs.openers, 2);
	close(j.go[1]);
	CHECK_EQ(test_wait(pid), 0);
	for (uint32_t i = 1; i < VMC_MAX_REGIONS; i++)
		if (vmc_region_stats(c, i, &rs) == 0)
			CHECK_EQ(rs.openers, 1);

	CHECK_EQ(vmc_region_destroy(c, "s1"), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.regions, 1);
	CHECK_EQ(s.region_bytes, 6 * MiB);
	CHECK_EQ(s.used, s0.used + 3);
	found = 0;
	for (uint32_t i = 1; i < VMC_MAX_REGIONS; i++)
		found += vmc_region_stats(c, i, &rs) == 0;
	CHECK_EQ(found, 1);
	CHECK_EQ(vmc_region_destroy(c, "s2"), 0);
	CHECK_EQ(vmc_stats(c, &s), 0);
	CHECK_EQ(s.regions, 0);
	CHECK_EQ(s.used, s0.used);
	finish_named(c, name);
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--child-call"))
		return mode_call(argv + 2);
	if (argc == 5 && !strcmp(argv[1], "--child-regions"))
		return mode_regions(argv + 2);
	if (argc > 1) {
		fprintf(stderr, "unknown child mode %s\n", argv[1]);
		return 2;
	}
	RUN(code_shared_between_processes);
	RUN(store_through_rx_faults);
	RUN(code_alloc_free_random);
	RUN(code_alloc_concurrent_processes);
	RUN(attach_detach_no_syscalls_on_code_or_regions_strict);
	RUN(attach_detach_no_syscalls_on_code_or_regions_lazy);
	RUN(code_cache_protect_does_mprotect_the_code_cache);
	RUN(region_bad_input);
	RUN(region_funds_and_table_limits);
	RUN(code_bad_input);
	RUN(destroy_busy_until_opener_dies);
	RUN(forked_child_keeps_inherited_region);
	RUN(open_racing_destroy);
	RUN(region_memory_starts_zeroed);
	RUN(stats_list_regions);
	RUN(regions_beyond_4g);
	destroy_all();
	return test_done();
}
