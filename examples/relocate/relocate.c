/*
 * relocate.c - a C4-style page-relocating compactor over a VM heap, to show
 * in numbers what the mapping engine buys a garbage collector.  Public API
 * only.
 *
 * The heap lives in one VM.  Its first granules hold the heap's own table
 * (the root set and, per window granule, the bytes allocated in it); every
 * other granule of the window is a "page" of the heap, filled by bump
 * allocation with objects:
 *
 *     header  magic, size, mark (== epoch: the live bit), nrefs, id, checksum
 *     refs    nrefs x { pointer to another object, that object's id }
 *     payload words derived from the id; the checksum covers them
 *
 * References are plain pointers into the window: the window is at the same
 * address in every worker, so they stay valid wherever the VM is attached
 * (the run ends by checking the heap from a forked worker).
 *
 * Each cycle:
 *  1. mutate: kill a random fraction of the roots (objects that nothing
 *     else references die), allocate new rooted objects that reference
 *     random live ones, plus short-lived garbage, until the heap budget is
 *     used up (a commit without VMC_COMMIT_RESERVE fails with VMC_EFUNDS:
 *     the GC trigger).  New pages are committed at the lowest free window
 *     granule with VMC_COMMIT_NOZERO: the pages the last cycle released
 *     (VMC_RELEASE_DEFER) are recycled first, the same granule at the same
 *     address needing no system call;
 *  2. vmc_flush: the one flush of the cycle, for deferred releases the
 *     mutator did not recycle;
 *  3. mark from the roots through the references (the live bit is an
 *     epoch number, so nothing has to be cleared);
 *  4. for comparison, the copy a semispace collector would make of the same
 *     heap state: every live object into a to-space (a pre-faulted buffer);
 *  5. evacuate the sparse pages (live fraction below --threshold), sparsest
 *     first, as far as the free budget and the reserve fund can hold their
 *     live data: live objects are copied into fresh to-space pages
 *     (VMC_COMMIT_RESERVE: the heap is full, so this is what the pause-
 *     prevention reserve fund is for; VMC_COMMIT_POPULATE: the page is
 *     about to be written whole, so its faults are taken in one call and
 *     counted as mapping time, not copy time) and leave a forwarding
 *     pointer;
 *  6. plan the compaction (unless --no-compact): the highest occupied pages
 *     go down into the lowest holes, so the heap's address range shrinks;
 *  7. fix every reference of every live object and every root: forwarded
 *     objects to their copies, objects on moving pages to their new address;
 *  8. one batch: release every page with no live object and every
 *     evacuated page (VMC_RELEASE_DEFER), and move the compacted pages
 *     (vmc_batch_move of whole granules: no byte is copied);
 *  9. check every live object: header, checksum, each reference pointing to
 *     a live object of the right id, and the live count unchanged.
 *
 * The report shows per cycle and in total the pages evacuated, released
 * and moved, the bytes copied and the time against the semispace copy, the
 * mapping operations (granules committed, released, moved) and their wall
 * time, and the reserve fund used.  Exit 0 if every check passed, 1 if any
 * failed, 2 for bad arguments.
 */
#include <vmc.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE        VMC_GRANULE_SIZE
#define MiB         (1024.0 * 1024.0)
#define MAX_PAGES   8192u            /* window granules the heap table covers */
#define NONE        0xffffffffu
#define OBJ_MAGIC   0x4f424a31u      /* "OBJ1" */
#define OBJ_FWD     0x46574431u      /* "FWD1": copied away, sum holds the new address */
#define HEAP_MAGIC  0x52454c4f43415445ull
#define PG_FREE     0
#define PG_USED     1
#define PG_META     2

/* ------------------------------------------------------------- objects */

struct obj;
struct ref {
	struct obj *p;       /* the object referenced, or NULL */
	uint64_t id;         /* its id: a fixed-up pointer must still find it */
};

struct obj {
	uint32_t magic;      /* OBJ_MAGIC, or OBJ_FWD once evacuated */
	uint32_t size;       /* bytes, header included, a multiple of 8 */
	uint32_t mark;       /* the live bit: == the heap's epoch when marked live */
	uint32_t nrefs;
	uint64_t id;
	union {
		uint64_t sum;        /* checksum of the payload */
		struct obj *fwd;     /* OBJ_FWD: where the copy is */
	};
	struct ref refs[];   /* then the payload */
};

/* The heap's table, at the window base (VM memory: it travels with the VM). */
struct heap {
	uint64_t magic;
	uint64_t next_id;
	uint32_t epoch;              /* the current mark epoch                    */
	uint32_t nroots;
	uint32_t npages;             /* window granules                           */
	uint32_t first;              /* first heap page (after the table)         */
	uint64_t live_objects;       /* counted by the last mark                  */
	uint32_t top[MAX_PAGES];     /* bytes allocated in each page              */
	uint8_t  state[MAX_PAGES];   /* PG_FREE, PG_USED or PG_META               */
	struct obj *roots[];         /* nroots slots, NULL when empty             */
};

/* ------------------------------------------------------------- options */

struct opts {
	int cycles;
	uint64_t heap;               /* heap budget, bytes */
	uint64_t reserve;            /* reserve fund, bytes */
	uint32_t roots;
	double kill, threshold;
	int garbage;                 /* short-lived objects per rooted one */
	int fill;                    /* allocate until the heap is full */
	uint32_t min_size, max_size;
	int compact;
	const char *page_kind;
	uint64_t seed;
	int verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: relocate [options]\n"
"A C4-style page-relocating compactor over a vmc VM heap: evacuates sparse\n"
"2 MiB pages, releases whole granules and closes holes with vmc_move, and\n"
"compares what it copies with a semispace copy of all live data.\n"
"\n"
"  --cycles N        GC cycles (default 10)\n"
"  --heap SIZE       heap budget, e.g. 128M (default 128M)\n"
"  --reserve SIZE    reserve fund for evacuation (default heap/8, >= 4M)\n"
"  --roots N         root slots (default 40000)\n"
"  --kill F          fraction of the roots killed per cycle (default 0.3)\n"
"  --garbage N       short-lived objects allocated per rooted one (default 2)\n"
"  --no-fill         do not fill the rest of the heap with garbage each cycle\n"
"  --size N | MIN-MAX  object size in bytes, fixed or variable (default 48-1024)\n"
"  --threshold F     evacuate pages whose live fraction is below F (default 0.5)\n"
"  --no-compact      do not move pages down to close holes\n"
"  --page-kind K     auto | hugetlb | thp | 4k (default auto)\n"
"  --seed N          random seed (default 1)\n"
"  --quiet           totals only\n"
"  --help            this text\n"
"Exit status: 0 if every object check passed, 1 if one failed, 2 on bad usage.\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_CYCLES = 256, O_HEAP, O_RESERVE, O_ROOTS, O_KILL, O_GARBAGE, O_NOFILL, O_SIZE,
	       O_THRESHOLD, O_NOCOMPACT, O_KIND, O_SEED, O_QUIET, O_HELP };
	static const struct option lo[] = {
		{ "cycles", 1, 0, O_CYCLES }, { "heap", 1, 0, O_HEAP },
		{ "reserve", 1, 0, O_RESERVE }, { "roots", 1, 0, O_ROOTS },
		{ "kill", 1, 0, O_KILL }, { "garbage", 1, 0, O_GARBAGE },
		{ "no-fill", 0, 0, O_NOFILL }, { "size", 1, 0, O_SIZE },
		{ "threshold", 1, 0, O_THRESHOLD }, { "no-compact", 0, 0, O_NOCOMPACT },
		{ "page-kind", 1, 0, O_KIND }, { "seed", 1, 0, O_SEED },
		{ "quiet", 0, 0, O_QUIET }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 },
	};
	char *end;
	int ch;

	*o = (struct opts){ .cycles = 10, .heap = 128ull << 20, .roots = 40000, .kill = 0.3,
			    .garbage = 2, .fill = 1, .min_size = 48, .max_size = 1024,
			    .threshold = 0.5, .compact = 1, .page_kind = "auto", .seed = 1,
			    .verbose = 1 };
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case O_CYCLES:
			o->cycles = (int)strtol(optarg, &end, 10);
			if (*end || o->cycles < 1)
				goto bad;
			break;
		case O_HEAP:
			if (parse_size(optarg, &o->heap))
				goto bad;
			break;
		case O_RESERVE:
			if (parse_size(optarg, &o->reserve))
				goto bad;
			break;
		case O_ROOTS:
			o->roots = (uint32_t)strtoul(optarg, &end, 10);
			if (*end || o->roots < 1)
				goto bad;
			break;
		case O_KILL:
			o->kill = strtod(optarg, &end);
			if (*end || o->kill < 0 || o->kill > 1)
				goto bad;
			break;
		case O_GARBAGE:
			o->garbage = (int)strtol(optarg, &end, 10);
			if (*end || o->garbage < 0)
				goto bad;
			break;
		case O_NOFILL:
			o->fill = 0;
			break;
		case O_SIZE: {
			unsigned long a = strtoul(optarg, &end, 10), b = a;
			if (*end == '-')
				b = strtoul(end + 1, &end, 10);
			if (*end || a > b)
				goto bad;
			o->min_size = (uint32_t)a;
			o->max_size = (uint32_t)b;
			break;
		}
		case O_THRESHOLD:
			o->threshold = strtod(optarg, &end);
			if (*end || o->threshold < 0 || o->threshold > 1)
				goto bad;
			break;
		case O_NOCOMPACT:
			o->compact = 0;
			break;
		case O_KIND:
			o->page_kind = optarg;
			break;
		case O_SEED:
			o->seed = strtoull(optarg, &end, 10);
			if (*end)
				goto bad;
			break;
		case O_QUIET:
			o->verbose = 0;
			break;
		case 'h':
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "relocate: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	o->min_size = (o->min_size + 7) & ~7u;
	o->max_size = (o->max_size + 7) & ~7u;
	if (o->min_size < sizeof(struct obj) + 8 || o->max_size > 64 * 1024) {
		fprintf(stderr, "relocate: object sizes must be %zu .. 65536 bytes\n",
			sizeof(struct obj) + 8);
		return -1;
	}
	if (o->heap < 8 * PAGE || o->heap % PAGE) {
		fprintf(stderr, "relocate: --heap must be a multiple of 2 MiB, at least 16M\n");
		return -1;
	}
	if (!o->reserve)
		o->reserve = o->heap / 8 < 2 * PAGE ? 2 * PAGE : o->heap / 8;
	o->reserve = (o->reserve + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	return 0;
bad:
	fprintf(stderr, "relocate: bad value for an option: %s\n", optarg);
	usage(stderr);
	return -1;
}

/* ------------------------------------------------------------- helpers */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t *payload(struct obj *o, size_t *n)
{
	size_t head = sizeof *o + o->nrefs * sizeof(struct ref);
	*n = (o->size - head) / 8;
	return (uint64_t *)((char *)o + head);
}

static uint64_t checksum(struct obj *o)
{
	size_t n;
	const uint64_t *w = payload(o, &n);
	uint64_t h = o->id ^ 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "relocate: %s: %s\n", what, *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(err));
	return 1;
}

/* --------------------------------------------------------------- state */

struct gc {
	struct opts o;
	vmc_t *c;
	uint32_t vm;
	char *base;
	struct heap *h;
	uint32_t budget, reserve;     /* heap pages: budget, reserve fund        */
	uint32_t used;                /* heap pages committed                    */
	uint32_t alloc_page;          /* the mutator's current page, or NONE     */
	uint32_t to_page;             /* the evacuation's current page, or NONE  */
	/* per cycle, process memory */
	uint64_t *live_bytes;
	uint8_t *release;             /* 1: released in this cycle's batch      */
	uint32_t *move_to;            /* new index of a page that moves, or NONE */
	uint32_t *rel_gran;           /* granule a page had when released        */
	struct obj **stack;
	size_t stack_cap;
	struct obj **live;            /* the live objects the mark found         */
	size_t nlive, live_cap;
	char *scratch;                /* the semispace comparison's to-space     */
	size_t scratch_size;
	int bad;                      /* a check failed                          */
};

struct cycle_stats {
	uint64_t allocated, alloc_objects, live_bytes, live_objects;
	uint32_t heap_pages, dead, evacuated, to_pages, moved, page_commits, in_place, stalls;
	uint64_t copied, semi_bytes;
	double t_mut, t_mark, t_semi, t_copy, t_fix, t_map, t_check, t_flush;
	double t_tocommit;            /* to-space commits (part of t_map)         */
	double t_pgcommit;            /* the mutator's page commits               */
	uint32_t map_ops;             /* granules committed + released + moved by the GC */
	uint64_t reserve_peak;
};

static inline uint32_t page_of(const struct gc *g, const void *p)
{
	return (uint32_t)(((const char *)p - g->base) / PAGE);
}

static inline char *page_addr(const struct gc *g, uint32_t i)
{
	return g->base + (size_t)i * PAGE;
}

/* The lowest free page; NONE if the window is full. */
static uint32_t lowest_free(struct gc *g)
{
	for (uint32_t i = g->h->first; i < g->h->npages; i++)
		if (g->h->state[i] == PG_FREE)
			return i;
	return NONE;
}

/* Commit a new page; VMC_EFUNDS (heap full) is returned, not reported. */
static int new_page(struct gc *g, int flags, uint32_t *out, struct cycle_stats *cs)
{
	uint32_t i = lowest_free(g);
	vmc_probe_t pr;
	int err;

	if (i == NONE)
		return VMC_EFUNDS;
	double t0 = now();
	if ((err = vmc_commit(g->c, page_addr(g, i), PAGE, flags | VMC_COMMIT_NOZERO)))
		return err;
	if (cs)
		cs->t_pgcommit += now() - t0;
	if (cs) {
		cs->page_commits++;
		/* the granule released here last cycle, recycled in place? */
		if (g->rel_gran[i] != NONE && !vmc_probe(g->c, page_addr(g, i), &pr) &&
		    pr.granule == g->rel_gran[i])
			cs->in_place++;
	}
	g->rel_gran[i] = NONE;
	g->h->state[i] = PG_USED;
	g->h->top[i] = 0;
	g->used++;
	*out = i;
	return 0;
}

/* ------------------------------------------------------------- mutator */

static int rooted_target(struct gc *g, struct ref *r)
{
	for (int tries = 0; tries < 4; tries++) {
		struct obj *t = g->h->roots[rnd() % g->h->nroots];
		if (t) {
			r->p = t;
			r->id = t->id;
			return 1;
		}
	}
	return 0;
}

/* Allocate and fill one object; NULL when the heap is full. */
static struct obj *allocate(struct gc *g, struct cycle_stats *cs)
{
	uint32_t span = (g->o.max_size - g->o.min_size) / 8 + 1;
	uint32_t size = g->o.min_size + (uint32_t)(rnd() % span) * 8;
	struct heap *h = g->h;
	int err;

	if (g->alloc_page == NONE || h->top[g->alloc_page] + size > PAGE) {
		uint32_t i;
		if ((err = new_page(g, 0, &i, cs))) {
			if (err != VMC_EFUNDS) {
				fail("commit a heap page", err);
				g->bad = 1;
			}
			cs->stalls++;
			return NULL;
		}
		g->alloc_page = i;
	}
	struct obj *o = (struct obj *)(page_addr(g, g->alloc_page) + h->top[g->alloc_page]);
	uint32_t maxrefs = (uint32_t)((size - sizeof *o - 8) / sizeof(struct ref));
	uint32_t nrefs = (uint32_t)(rnd() % 4);
	nrefs = nrefs > 2 ? 0 : nrefs;             /* 0, 1, 2 or 0: 0.75 on average */
	if (nrefs > maxrefs)
		nrefs = maxrefs;
	o->magic = OBJ_MAGIC;
	o->size = size;
	o->mark = 0;
	o->nrefs = 0;
	o->id = h->next_id++;
	for (uint32_t k = 0; k < nrefs; k++)
		if (rooted_target(g, &o->refs[o->nrefs]))
			o->nrefs++;
	size_t n;
	uint64_t *w = payload(o, &n);
	for (size_t i = 0; i < n; i++)
		w[i] = mix(o->id * 131 + i);
	o->sum = checksum(o);
	h->top[g->alloc_page] += size;
	cs->allocated += size;
	cs->alloc_objects++;
	return o;
}

static void mutate(struct gc *g, struct cycle_stats *cs)
{
	struct heap *h = g->h;
	uint32_t kill = (uint32_t)(g->o.kill * h->nroots);
	int full = 0;

	for (uint32_t k = 0; k < kill; k++)
		h->roots[rnd() % h->nroots] = NULL;
	for (uint32_t r = 0; r < h->nroots && !full; r++) {
		if (h->roots[r])
			continue;
		struct obj *o = allocate(g, cs);
		if (!o)
			break;
		h->roots[r] = o;
		for (int k = 0; k < g->o.garbage && !full; k++)
			full = !allocate(g, cs);
	}
	while (g->o.fill && !g->bad && allocate(g, cs))
		;
}

/* ---------------------------------------------------------------- mark */

static int push(struct gc *g, size_t *n, struct obj *o)
{
	if (*n == g->stack_cap) {
		size_t cap = g->stack_cap ? g->stack_cap * 2 : 4096;
		struct obj **s = realloc(g->stack, cap * sizeof *s);
		if (!s)
			return -1;
		g->stack = s;
		g->stack_cap = cap;
	}
	g->stack[(*n)++] = o;
	return 0;
}

static int mark(struct gc *g, struct cycle_stats *cs)
{
	struct heap *h = g->h;
	uint32_t epoch = ++h->epoch;
	size_t n = 0;

	memset(g->live_bytes, 0, h->npages * sizeof *g->live_bytes);
	for (uint32_t r = 0; r < h->nroots; r++) {
		struct obj *o = h->roots[r];
		if (o && o->mark != epoch) {
			o->mark = epoch;
			if (push(g, &n, o))
				return -1;
		}
	}
	g->nlive = 0;
	while (n) {
		struct obj *o = g->stack[--n];
		if (g->nlive == g->live_cap) {
			size_t cap = g->live_cap ? g->live_cap * 2 : 4096;
			struct obj **l = realloc(g->live, cap * sizeof *l);
			if (!l)
				return -1;
			g->live = l;
			g->live_cap = cap;
		}
		g->live[g->nlive++] = o;
		g->live_bytes[page_of(g, o)] += o->size;
		cs->live_bytes += o->size;
		cs->live_objects++;
		for (uint32_t k = 0; k < o->nrefs; k++) {
			struct obj *t = o->refs[k].p;
			if (t && t->mark != epoch) {
				t->mark = epoch;
				if (push(g, &n, t))
					return -1;
			}
		}
	}
	h->live_objects = cs->live_objects;
	return 0;
}

/* Run body with o set to every live object of every used page (but the
 * pages released this cycle, if skip_released). */
#define FOR_LIVE(g, o, skip_released, body)                                          \
	for (uint32_t pg_ = (g)->h->first; pg_ < (g)->h->npages; pg_++) {              \
		if ((g)->h->state[pg_] != PG_USED || ((skip_released) && (g)->release[pg_])) \
			continue;                                                      \
		char *p_ = page_addr((g), pg_), *e_ = p_ + (g)->h->top[pg_];            \
		while (p_ < e_) {                                                      \
			struct obj *o = (struct obj *)p_;                              \
			if (o->size < sizeof *o + 8 || o->size > (size_t)(e_ - p_))    \
				break;   /* broken: check_heap reports it */           \
			p_ += o->size;                                                 \
			if (o->mark == (g)->h->epoch && o->magic == OBJ_MAGIC) {       \
				body                                                   \
			}                                                              \
		}                                                              \
	}

/* The copy a semispace collector makes of the same heap state: every live
 * object (as the mark found them: no heap walk) into a to-space that is
 * already faulted in, as a semispace's flipped spaces are. */
static void semispace(struct gc *g, struct cycle_stats *cs)
{
	size_t at = 0;
	double t0 = now();
	for (size_t k = 0; k < g->nlive; k++) {
		struct obj *o = g->live[k];
		memcpy(g->scratch + at, o, o->size);
		at += o->size;
	}
	cs->t_semi = now() - t0;
	cs->semi_bytes = at;
}

/* ------------------------------------------------------------ evacuate */

static int by_live(const void *a, const void *b, void *arg)
{
	const uint64_t *lb = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (lb[x] > lb[y]) - (lb[x] < lb[y]);
}

static struct obj *to_alloc(struct gc *g, uint32_t size, struct cycle_stats *cs)
{
	int err;
	if (g->to_page == NONE || g->h->top[g->to_page] + size > PAGE) {
		uint32_t i;
		double t0 = now();
		if ((err = new_page(g, VMC_COMMIT_RESERVE | VMC_COMMIT_POPULATE, &i, NULL))) {
			fail("commit a to-space page (VMC_COMMIT_RESERVE)", err);
			return NULL;
		}
		cs->t_tocommit += now() - t0;
		g->to_page = i;
		cs->to_pages++;
		cs->map_ops++;
	}
	struct obj *o = (struct obj *)(page_addr(g, g->to_page) + g->h->top[g->to_page]);
	g->h->top[g->to_page] += size;
	return o;
}

/* Pick the pages to release and evacuate; copy the live objects out. */
static int evacuate(struct gc *g, struct cycle_stats *cs)
{
	struct heap *h = g->h;
	uint32_t *cand = malloc(h->npages * sizeof *cand), nc = 0;
	uint64_t want = 0, limit = (uint64_t)(PAGE * g->o.threshold);
	/* what the to-space may take: the free budget plus the reserve fund,
	 * counting a to-space page as holding PAGE - max_size (tail waste) */
	int64_t avail = (int64_t)g->budget + g->reserve - g->used;
	uint64_t per_page = PAGE - g->o.max_size;
	double t0;

	if (!cand)
		return -1;
	memset(g->release, 0, h->npages);
	for (uint32_t i = h->first; i < h->npages; i++) {
		if (h->state[i] != PG_USED)
			continue;
		if (!g->live_bytes[i]) {
			g->release[i] = 1;      /* nothing live: released, nothing copied */
			cs->dead++;
		} else if (g->live_bytes[i] < limit) {
			cand[nc++] = i;
		}
	}
	qsort_r(cand, nc, sizeof *cand, by_live, g->live_bytes);
	for (uint32_t k = 0; k < nc; k++) {
		uint64_t w = want + g->live_bytes[cand[k]];
		if ((int64_t)((w + per_page - 1) / per_page) > avail)
			break;
		want = w;
		g->release[cand[k]] = 1;
		cs->evacuated++;
	}
	free(cand);

	/* copy the live objects of the chosen pages, in the order the mark
	 * found them (as the semispace copy does: no walk over dead objects) */
	g->to_page = NONE;
	t0 = now();
	for (size_t k = 0; k < g->nlive; k++) {
		struct obj *o = g->live[k];
		if (!g->release[page_of(g, o)])
			continue;
		struct obj *to = to_alloc(g, o->size, cs);
		if (!to)
			return -1;
		memcpy(to, o, o->size);
		o->magic = OBJ_FWD;
		o->fwd = to;
		cs->copied += o->size;
	}
	/* the to-space commits are mapping time, not copy time */
	cs->t_copy = now() - t0 - cs->t_tocommit;
	cs->t_map += cs->t_tocommit;
	return 0;
}

/* ------------------------------------------------------- compact, fix up */

static void plan_moves(struct gc *g, struct cycle_stats *cs)
{
	struct heap *h = g->h;
	int64_t lo = h->first, hi = (int64_t)h->npages - 1;

	for (uint32_t i = 0; i < h->npages; i++)
		g->move_to[i] = NONE;
	if (!g->o.compact)
		return;
	/* the highest occupied page goes into the lowest hole, until no hole
	 * is left below an occupied page */
#define OCCUPIED(i) (h->state[i] == PG_USED && !g->release[i])
	for (;;) {
		while (lo < (int64_t)h->npages && OCCUPIED(lo))
			lo++;
		while (hi > lo && !OCCUPIED(hi))
			hi--;
		if (hi <= lo)
			break;
		g->move_to[hi] = (uint32_t)lo;
		cs->moved++;
		lo++;
		hi--;
	}
#undef OCCUPIED
}

static inline struct obj *fixed(struct gc *g, struct obj *p)
{
	if (!p)
		return NULL;
	if (p->magic == OBJ_FWD)
		p = p->fwd;
	uint32_t i = page_of(g, p), to = g->move_to[i];
	if (to != NONE)
		p = (struct obj *)((char *)p + ((int64_t)to - (int64_t)i) * (int64_t)PAGE);
	return p;
}

static void fix_up(struct gc *g, struct cycle_stats *cs)
{
	double t0 = now();
	for (uint32_t r = 0; r < g->h->nroots; r++)
		g->h->roots[r] = fixed(g, g->h->roots[r]);
	FOR_LIVE(g, o, 1, {
		for (uint32_t k = 0; k < o->nrefs; k++)
			o->refs[k].p = fixed(g, o->refs[k].p);
	})
	cs->t_fix = now() - t0;
}

/* One batch: release dead and evacuated pages (deferred), move pages down. */
static int remap(struct gc *g, struct cycle_stats *cs)
{
	struct heap *h = g->h;
	vmc_batch_t *b;
	vmc_probe_t pr;
	int err;
	double t0 = now();

	if ((err = vmc_batch_begin(g->c, &b)))
		return fail("vmc_batch_begin", err);
	for (uint32_t i = h->first; i < h->npages && !err; i++) {
		if (h->state[i] != PG_USED || !g->release[i])
			continue;
		/* remember the granule: does the mutator get it back in place? */
		g->rel_gran[i] = vmc_probe(g->c, page_addr(g, i), &pr) ? NONE : pr.granule;
		err = vmc_batch_release(b, page_addr(g, i), PAGE, VMC_RELEASE_DEFER);
		cs->map_ops++;
	}
	for (uint32_t i = h->first; i < h->npages && !err; i++)
		if (g->move_to[i] != NONE) {
			err = vmc_batch_move(b, page_addr(g, i), page_addr(g, g->move_to[i]), PAGE, 0);
			cs->map_ops++;
		}
	if (err) {
		vmc_batch_abort(g->c, b);
		return fail("recording the batch", err);
	}
	if ((err = vmc_batch_commit(b)))
		return fail("vmc_batch_commit", err);
	cs->t_map += now() - t0;
	for (uint32_t i = h->first; i < h->npages; i++)
		if (h->state[i] == PG_USED && g->release[i]) {
			h->state[i] = PG_FREE;
			h->top[i] = 0;
			g->used--;
		}
	for (uint32_t i = h->first; i < h->npages; i++) {
		uint32_t to = g->move_to[i];
		if (to == NONE)
			continue;
		h->state[to] = PG_USED;
		h->top[to] = h->top[i];
		h->state[i] = PG_FREE;
		h->top[i] = 0;
		g->rel_gran[to] = NONE;
		g->rel_gran[i] = NONE;
	}
	g->alloc_page = g->to_page = NONE;
	return 0;
}

/* --------------------------------------------------------------- check */

#define BAD(...) do { if (g->bad++ < 10) fprintf(stderr, "relocate: check: " __VA_ARGS__); } while (0)

/* Is p the address of a live, intact object (of id `id` unless id is 0)?
 * The address is checked before anything is read through it. */
static int valid_ref(struct gc *g, const struct obj *p, uint64_t id)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)page_addr(g, g->h->first);
	if (a < lo || a >= (uintptr_t)page_addr(g, g->h->npages) || (a & 7))
		return 0;
	uint32_t i = page_of(g, p);
	if (g->h->state[i] != PG_USED || a + sizeof *p > (uintptr_t)page_addr(g, i) + g->h->top[i])
		return 0;
	return p->magic == OBJ_MAGIC && (!id || p->id == id) && p->mark == g->h->epoch;
}

static uint64_t check_heap(struct gc *g)
{
	struct heap *h = g->h;
	uint64_t live = 0;

	for (uint32_t r = 0; r < h->nroots; r++)
		if (h->roots[r] && !valid_ref(g, h->roots[r], 0))
			BAD("root %u points to %p, not a live object\n", r, (void *)h->roots[r]);
	FOR_LIVE(g, o, 0, {
		live++;
		if (o->size < sizeof *o + 8 || (o->size & 7))
			BAD("object %" PRIu64 " at %p: bad size %u\n", o->id, (void *)o, o->size);
		else if (o->sum != checksum(o))
			BAD("object %" PRIu64 " at %p: checksum mismatch\n", o->id, (void *)o);
		for (uint32_t k = 0; k < o->nrefs; k++)
			if (o->refs[k].p && !valid_ref(g, o->refs[k].p, o->refs[k].id))
				BAD("object %" PRIu64 " at %p: reference %u to %p (id %" PRIu64 ") "
				    "is not a live object of that id\n", o->id, (void *)o, k,
				    (void *)o->refs[k].p, o->refs[k].id);
	})
	if (live != h->live_objects)
		BAD("%" PRIu64 " live objects in the heap, the mark found %" PRIu64 "\n", live,
		    h->live_objects);
	/* no object may be left forwarded, nor a page beyond its top */
	for (uint32_t i = h->first; i < h->npages; i++) {
		if (h->state[i] != PG_USED)
			continue;
		char *p = page_addr(g, i), *e = p + h->top[i];
		while (p < e) {
			struct obj *o = (struct obj *)p;
			if (o->magic != OBJ_MAGIC || o->size < sizeof *o + 8 || p + o->size > e) {
				BAD("page %u: broken object at +%#lx\n", i,
				    (unsigned long)(p - page_addr(g, i)));
				break;
			}
			p += o->size;
		}
	}
	return live;
}

/* In a forked worker: attach the VM and walk the heap from its roots. */
static int check_in_worker(struct gc *g)
{
	void *base;
	int err = vmc_attach(g->c, g->vm, &base);
	uint64_t seen = 0;
	size_t n = 0;

	if (err)
		return fail("worker: vmc_attach", err);
	if (base != g->base || g->h->magic != HEAP_MAGIC) {
		fprintf(stderr, "relocate: worker: the heap is not at %p\n", (void *)g->base);
		return 1;
	}
	uint32_t epoch = ++g->h->epoch;
	for (uint32_t r = 0; r < g->h->nroots; r++) {
		struct obj *o = g->h->roots[r];
		if (o && o->mark != epoch) {
			o->mark = epoch;
			if (push(g, &n, o))
				return 1;
		}
	}
	while (n) {
		struct obj *o = g->stack[--n];
		seen++;
		if (o->magic != OBJ_MAGIC || o->sum != checksum(o))
			BAD("worker: object %" PRIu64 " at %p is broken\n", o->id, (void *)o);
		for (uint32_t k = 0; k < o->nrefs; k++) {
			struct obj *t = o->refs[k].p;
			if (!t)
				continue;
			if (t->id != o->refs[k].id)
				BAD("worker: object %" PRIu64 ": reference %u finds id %" PRIu64
				    ", not %" PRIu64 "\n", o->id, k, t->id, o->refs[k].id);
			if (t->mark != epoch) {
				t->mark = epoch;
				if (push(g, &n, t))
					return 1;
			}
		}
	}
	if (seen != g->h->live_objects)
		BAD("worker: reached %" PRIu64 " objects, the collector had %" PRIu64 "\n", seen,
		    g->h->live_objects);
	printf("worker %d: attached the VM at %p and reached all %" PRIu64 " live objects "
	       "from the roots: pointers valid, checksums intact\n", (int)getpid(), base, seen);
	vmc_detach(g->c, g->vm);
	return g->bad ? 1 : 0;
}

/* ----------------------------------------------------------------- main */

static int setup(struct gc *g)
{
	struct opts *o = &g->o;
	vmc_config_t cfg;
	uint32_t meta;
	size_t table = sizeof(struct heap) + (size_t)o->roots * sizeof(struct obj *);
	int err;

	g->budget = (uint32_t)(o->heap / PAGE);
	g->reserve = (uint32_t)(o->reserve / PAGE);
	meta = (uint32_t)((table + PAGE - 1) / PAGE);
	uint32_t npages = meta + g->budget + g->reserve + 2;
	if (npages > MAX_PAGES) {
		fprintf(stderr, "relocate: heap too large (%u pages, at most %u)\n", npages, MAX_PAGES);
		return 2;
	}
	if ((err = vmc_config_init(&cfg)))
		return fail("vmc_config_init", err);
	if ((err = vmc_config_set(&cfg, "page_kind", o->page_kind)))
		return fail("--page-kind", err);
	cfg.pool_size = (uint64_t)(meta + g->budget + g->reserve) * PAGE;
	cfg.fund_size = cfg.pool_size;
	cfg.reserve_size = (uint64_t)g->reserve * PAGE;
	cfg.window_size = (uint64_t)npages * PAGE;
	cfg.region_space = 0;
	cfg.max_vms = 4;
	cfg.max_workers = 4;
	if ((err = vmc_create(NULL, &cfg, &g->c)))
		return fail("vmc_create", err);
	if ((err = vmc_vm_create(g->c, "heap", cfg.window_size, &g->vm)))
		return fail("vmc_vm_create", err);
	void *base;
	if ((err = vmc_attach(g->c, g->vm, &base)))
		return fail("vmc_attach", err);
	g->base = base;
	if ((err = vmc_commit(g->c, base, (size_t)meta * PAGE, 0)))
		return fail("commit the heap table", err);
	g->h = base;
	g->h->magic = HEAP_MAGIC;
	g->h->next_id = 1;
	g->h->nroots = o->roots;
	g->h->npages = npages;
	g->h->first = meta;
	for (uint32_t i = 0; i < meta; i++)
		g->h->state[i] = PG_META;
	g->alloc_page = g->to_page = NONE;
	g->live_bytes = calloc(npages, sizeof *g->live_bytes);
	g->release = calloc(npages, 1);
	g->move_to = calloc(npages, sizeof *g->move_to);
	g->rel_gran = malloc(npages * sizeof *g->rel_gran);
	g->scratch_size = (size_t)(g->budget + g->reserve) * PAGE;
	g->scratch = malloc(g->scratch_size);
	if (!g->live_bytes || !g->release || !g->move_to || !g->rel_gran ||
	    !g->scratch) {
		fprintf(stderr, "relocate: out of memory\n");
		return 1;
	}
	memset(g->rel_gran, 0xff, npages * sizeof *g->rel_gran);
	memset(g->scratch, 0, g->scratch_size);   /* pre-faulted, as a to-space would be */
	return 0;
}

int main(int argc, char **argv)
{
	struct gc g;
	struct cycle_stats tot;
	vmc_stats_t st;
	int err;

	memset(&g, 0, sizeof g);
	memset(&tot, 0, sizeof tot);
	if (parse_opts(argc, argv, &g.o))
		return 2;
	rng_state = mix(g.o.seed) | 1;
	if ((err = setup(&g)))
		return err;
	vmc_stats(g.c, &st);
	printf("relocate: %s pages, heap budget %.0f MiB + reserve fund %.0f MiB, %u roots, "
	       "objects %u-%u B, kill %.0f%%/cycle, evacuate pages < %.0f%% live, compaction %s\n",
	       vmc_page_kind_name(st.page_kind), (double)g.budget * 2, (double)g.reserve * 2,
	       g.o.roots, g.o.min_size, g.o.max_size, g.o.kill * 100, g.o.threshold * 100,
	       g.o.compact ? "on" : "off");
	if (g.o.verbose)
		printf("\n%3s %7s %5s %7s | %4s %4s %4s %4s | %8s %6s | %8s %6s | %5s %4s %6s %9s | %5s %8s\n",
		       "cyc", "alloc", "heap", "live", "dead", "evac", "to", "move",
		       "copied", "ms", "semisp", "ms", "ops", "rcyc", "map ms", "pages/s",
		       "rsv", "check");
	if (g.o.verbose)
		printf("%3s %7s %5s %7s | %4s %4s %4s %4s | %8s %6s | %8s %6s | %5s %4s %6s %9s | %5s %8s\n",
		       "", "MiB", "pages", "MiB", "pgs", "pgs", "pgs", "pgs", "MiB", "", "MiB", "",
		       "gran", "", "", "relocated", "MiB", "");

	double t_start = now();
	for (int cyc = 1; cyc <= g.o.cycles && !g.bad; cyc++) {
		struct cycle_stats cs;
		vmc_vm_stats_t vs;
		double t0;

		memset(&cs, 0, sizeof cs);
		t0 = now();
		mutate(&g, &cs);
		cs.t_mut = now() - t0;
		if (g.bad)
			break;
		cs.heap_pages = g.used;
		t0 = now();
		if ((err = vmc_flush(g.c))) {   /* the one flush of the cycle */
			fail("vmc_flush", err);
			g.bad = 1;
			break;
		}
		cs.t_flush = now() - t0;
		cs.t_map += cs.t_flush;
		t0 = now();
		if (mark(&g, &cs)) {
			fprintf(stderr, "relocate: out of memory (mark stack)\n");
			g.bad = 1;
			break;
		}
		cs.t_mark = now() - t0;
		semispace(&g, &cs);
		t0 = now();
		if (evacuate(&g, &cs)) {
			g.bad = 1;
			break;
		}
		vmc_vm_stats(g.c, g.vm, &vs);
		cs.reserve_peak = vs.reserve_used;
		plan_moves(&g, &cs);
		fix_up(&g, &cs);
		if (remap(&g, &cs)) {
			g.bad = 1;
			break;
		}
		t0 = now();
		uint64_t live = check_heap(&g);
		cs.t_check = now() - t0;
		(void)live;
		if (cs.alloc_objects == 0 && cs.dead + cs.evacuated == 0) {
			fprintf(stderr, "relocate: no progress: the heap is full, every page holds "
				"live data (%.1f MiB live in %u pages) and none can be evacuated "
				"(--threshold %.2f, reserve fund %u MiB): raise --heap, --threshold "
				"or --reserve\n", (double)cs.live_bytes / MiB, g.used,
				g.o.threshold, g.reserve * 2);
			g.bad = 1;
		}
		double reloc_t = cs.t_copy + cs.t_map;
		uint32_t reloc_pages = cs.evacuated + cs.moved;
		if (g.o.verbose)
			printf("%3d %7.1f %5u %7.1f | %4u %4u %4u %4u | %8.2f %6.2f | %8.2f %6.2f | "
			       "%5u %4u %6.3f %9.0f | %5.0f %8s\n",
			       cyc, (double)cs.allocated / MiB, cs.heap_pages,
			       (double)cs.live_bytes / MiB, cs.dead, cs.evacuated, cs.to_pages,
			       cs.moved, (double)cs.copied / MiB, cs.t_copy * 1e3,
			       (double)cs.semi_bytes / MiB, cs.t_semi * 1e3, cs.map_ops,
			       cs.in_place, cs.t_map * 1e3,
			       reloc_t > 0 ? reloc_pages / reloc_t : 0,
			       (double)cs.reserve_peak / MiB, g.bad ? "FAILED" : "ok");
		tot.allocated += cs.allocated;
		tot.alloc_objects += cs.alloc_objects;
		tot.live_bytes = cs.live_bytes;
		tot.live_objects = cs.live_objects;
		tot.dead += cs.dead;
		tot.evacuated += cs.evacuated;
		tot.to_pages += cs.to_pages;
		tot.moved += cs.moved;
		tot.page_commits += cs.page_commits;
		tot.in_place += cs.in_place;
		tot.stalls += cs.stalls;
		tot.copied += cs.copied;
		tot.semi_bytes += cs.semi_bytes;
		tot.t_mut += cs.t_mut;
		tot.t_mark += cs.t_mark;
		tot.t_semi += cs.t_semi;
		tot.t_copy += cs.t_copy;
		tot.t_fix += cs.t_fix;
		tot.t_map += cs.t_map;
		tot.t_check += cs.t_check;
		tot.t_pgcommit += cs.t_pgcommit;
		tot.map_ops += cs.map_ops;
		if (cs.reserve_peak > tot.reserve_peak)
			tot.reserve_peak = cs.reserve_peak;
	}
	double wall = now() - t_start;

	/* the heap, checked from another worker: detach, fork, attach there */
	int worker_bad = 0;
	if (!g.bad) {
		fflush(stdout);
		if ((err = vmc_detach(g.c, g.vm))) {
			fail("vmc_detach", err);
			g.bad = 1;
		} else {
			pid_t pid = fork();
			if (pid == 0) {
				int rc = check_in_worker(&g);
				fflush(stdout);
				vmc_close(g.c);
				_exit(rc);
			}
			int ws = 0;
			if (pid < 0 || waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws) ||
			    WEXITSTATUS(ws)) {
				fprintf(stderr, "relocate: the check in a forked worker failed\n");
				worker_bad = 1;
			}
		}
	}
	vmc_check_report_t rep;
	if (vmc_check(g.c, &rep)) {
		fprintf(stderr, "relocate: vmc_check: %s\n", rep.first);
		g.bad = 1;
	}

	double reloc_t = tot.t_copy + tot.t_map;
	uint32_t reloc_pages = tot.evacuated + tot.moved;
	uint32_t gc_ops = tot.map_ops;
	printf("\ntotals over %d cycles (%.2f s):\n", g.o.cycles, wall);
	printf("  mutator: %.1f MiB in %" PRIu64 " objects allocated, %u heap-full GC triggers; "
	       "%u page commits, %.1f us each, %u of them got back the granule released at that "
	       "address (VMC_RELEASE_DEFER)\n", (double)tot.allocated / MiB, tot.alloc_objects,
	       tot.stalls, tot.page_commits,
	       tot.page_commits ? tot.t_pgcommit * 1e6 / tot.page_commits : 0, tot.in_place);
	printf("  relocating compactor: %u pages freed without copying (no live object), %u "
	       "evacuated into %u to-space pages, %u moved down (vmc_move, no copy)\n",
	       tot.dead, tot.evacuated, tot.to_pages, tot.moved);
	printf("    copied %.1f MiB in %.1f ms; mapping: %u granule operations (commit/release/"
	       "move) in %.2f ms, %.1f us each\n", (double)tot.copied / MiB, tot.t_copy * 1e3,
	       gc_ops, tot.t_map * 1e3, gc_ops ? tot.t_map * 1e6 / gc_ops : 0);
	printf("    pages relocated (evacuated + moved) per second of copy + mapping time: %.0f\n",
	       reloc_t > 0 ? reloc_pages / reloc_t : 0);
	printf("  semispace copy of all live data, same heap states: %.1f MiB in %.1f ms\n",
	       (double)tot.semi_bytes / MiB, tot.t_semi * 1e3);
	if (tot.semi_bytes && tot.t_semi > 0)
		printf("  => the relocating compactor copied %.1f%% of the bytes in %.1f%% of the "
		       "time (copy + mapping) of the semispace copy\n",
		       100.0 * (double)tot.copied / (double)tot.semi_bytes,
		       100.0 * reloc_t / tot.t_semi);
	printf("  both collectors also need the mark (%.1f ms) and the reference fix-up "
	       "(%.1f ms); object checks took %.1f ms\n", tot.t_mark * 1e3, tot.t_fix * 1e3,
	       tot.t_check * 1e3);
	printf("  reserve fund: up to %.0f of %.0f MiB drawn by to-space commits "
	       "(VMC_COMMIT_RESERVE) while the heap was full\n", (double)tot.reserve_peak / MiB,
	       (double)g.reserve * 2);
	printf("  live at the end: %.1f MiB in %" PRIu64 " objects\n",
	       (double)tot.live_bytes / MiB, tot.live_objects);
	int ok = !g.bad && !worker_bad;
	printf("%s\n", ok ? "all object checks passed" : "OBJECT CHECKS FAILED");
	vmc_close(g.c);
	free(g.live_bytes);
	free(g.release);
	free(g.move_to);
	free(g.rel_gran);
	free(g.stack);
	free(g.live);
	free(g.scratch);
	return ok ? 0 : 1;
}
