/*
 * bench_code.c - what a JIT code cache costs attach and detach (issue 5).
 *
 * vmc maps the code cache read+execute once per worker, at the same
 * address in every worker, and attach and detach never touch it: switching
 * VMs costs nothing on its account ("static").  The naive alternative keeps
 * each tenant's code out of reach while it is not attached by mprotecting
 * the whole cache on every attach (PROT_READ|PROT_EXEC) and every detach
 * (PROT_NONE): vmc does exactly that with vmc/code_cache_protect = 1
 * ("protect"), so both are the same library, measured in the same run.
 *
 * Per page kind (hugetlb, if hugepages can be had: as root they are
 * reserved with vmc_hugepages_setup() and returned at the end; else it is
 * skipped with the reason; then 4K) and per isolation mode (strict, lazy),
 * four private containers are made, each with 2 VMs of 16 MiB (committed,
 * every page written), a 16 MiB window and the default worker cache:
 *   no code cache   code_cache_size = 0 (the control: what attach costs alone)
 *   static          a 256 MiB code cache, code_cache_protect = 0
 *   static 1-run    the same, but each VM committed a granule at a time from
 *                   its top, so that its memory is one contiguous pool run
 *                   as in the control (before the commit path sorted its
 *                   granules, a plain vmc_commit after the code cache was
 *                   carved out got descending granules: one mmap per granule
 *                   on every remap).  The pool runs per VM of every variant
 *                   are noted, with a warning if static 1-run missed one run
 *                   per VM
 *   protect         a 256 MiB code cache, code_cache_protect = 1
 * The code cache is warm, as a JIT's is: all of it is allocated with
 * vmc_code_alloc, one byte written per 4 KiB page through the read-write
 * alias and read back through the read+execute view, so the view's page
 * tables are populated (VMC_BENCH_CODE_TOUCH=0 leaves it cold instead).
 * Before timing, /proc/self/maps must show the view r-x while attached in
 * both and --- while detached with protect, or the run fails.
 *
 * Two loops, each vmc_attach + vmc_detach with nothing in between:
 *   re-attach   the same VM every time (lazy: the affinity path, no
 *               system call; strict: one mprotect each way)
 *   switch      2 VMs in turn, so every attach remaps the window
 * Reported in ns per attach+detach pair: the median of VMC_BENCH_RUNS
 * batches (default 9) of about 20 ms each, batches of the four variants
 * interleaved so that they share the machine's moods; the ratio column
 * gives static (and static 1-run) / no code cache and protect / static.
 * System calls per pair (vmc_stats().attach.syscalls deltas), what
 * protect adds per pair, and the load average at the start are noted.
 * Without root, hugetlb is measured only if the hugepages for one mode's
 * four containers are free.  VMC_BENCH_KINDS=4k
 * measures only the kinds named.  VMC_BENCH_KEEP_HOST=1 leaves the
 * hugepages reserved.
 */
#include "benchlib.h"
#include "vmc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CODE_SIZE  (256 * BENCH_MiB)
#define VM_SIZE    (16 * BENCH_MiB)
#define NVM        2
#define WCACHE     32                                   /* worker_cache (the default) */
#define SLACK      (2 * WCACHE * VMC_GRANULE_SIZE)      /* room for a worker cache */
#define POOL_NONE  (NVM * VM_SIZE + SLACK)
#define POOL_CODE  (CODE_SIZE + POOL_NONE)
#define MAX_RUNS   64
#define BATCH_NS   20000000ull                          /* ~20 ms per timed batch */
#define PAGE       4096
#define TAG(k)     (0x5a5a000000000000ull | ((uint64_t)(k) + 1))

static int runs, touch_code;

enum { V_NONE, V_STATIC, V_STATIC1, V_PROTECT, NV };
enum { W_REATTACH, W_SWITCH, NW };
static const char *const vname[NV] = { "no code cache", "static", "static 1-run", "protect" };
/* the row each variant's ratio is taken against */
static const int vbase[NV] = { -1, V_NONE, V_NONE, V_STATIC };
static const char *const wname[NW] = { "re-attach", "switch 2 VMs" };

struct variant {
	vmc_t *c;
	uint32_t ids[NVM];
	uint32_t cur;          /* switch: the VM attached last */
	char *rx;              /* the code cache's read+execute view (NULL: none) */
	uint32_t runs;         /* contiguous pool runs of the VMs' memory, in all */
};

/* ------------------------------------------------------------ mappings */

/* The permissions ("r-xs") of the mapping holding addr, from
 * /proc/self/maps; "none" if no mapping holds it. */
static const char *perms(const void *addr, char out[8])
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long long lo, hi, a = (uintptr_t)addr;
	char line[512], p[8];

	snprintf(out, 8, "none");
	if (!f)
		return out;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%llx-%llx %7s", &lo, &hi, p) == 3 && lo <= a && a < hi) {
			snprintf(out, 8, "%s", p);
			break;
		}
	fclose(f);
	return out;
}

/* ------------------------------------------------------------ setup */

static void make_variant(struct variant *v, int kind, int strict, int var)
{
	vmc_config_t cfg;
	void *base, *rx, *rw;
	int err;

	memset(v, 0, sizeof *v);
	if ((err = bench_config(&cfg, kind, var == V_NONE ? POOL_NONE : POOL_CODE, VM_SIZE)))
		bench_die("vmc_config_init", err);
	cfg.code_cache_size = var == V_NONE ? 0 : CODE_SIZE;
	cfg.code_cache_protect = var == V_PROTECT;
	cfg.reserve_size = 0;
	cfg.max_vms = 4;
	cfg.max_workers = 4;
	cfg.worker_cache = WCACHE;
	cfg.memory_isolation = strict;
	if ((err = vmc_create(NULL, &cfg, &v->c))) {
		v->c = NULL;
		return;   /* the caller says why */
	}
	for (uint32_t k = 0; k < NVM; k++) {
		char name[16];
		snprintf(name, sizeof name, "vm%u", k);
		if ((err = vmc_vm_create(v->c, name, VM_SIZE, &v->ids[k])))
			bench_die("vmc_vm_create", err);
		if ((err = vmc_attach(v->c, v->ids[k], &base)))
			bench_die("vmc_attach", err);
		if (var != V_STATIC1) {
			if ((err = vmc_commit(v->c, base, VM_SIZE, 0)))
				bench_die("vmc_commit", err);
		} else {
			/* a granule at a time from the top: the worker cache hands
			 * them out in descending order, so the VM gets one run */
			for (uint64_t off = VM_SIZE; off > 0; off -= VMC_GRANULE_SIZE)
				if ((err = vmc_commit(v->c, (char *)base + off - VMC_GRANULE_SIZE,
						      VMC_GRANULE_SIZE, 0)))
					bench_die("vmc_commit", err);
		}
		for (uint64_t off = 0; off < VM_SIZE; off += PAGE)
			*(volatile uint64_t *)((char *)base + off) = TAG(k);
		/* how many mmaps a remap of the window needs */
		for (uint64_t off = 0, prev = UINT64_MAX; off < VM_SIZE; off += VMC_GRANULE_SIZE) {
			vmc_probe_t pr;
			if ((err = vmc_probe(v->c, (char *)base + off, &pr)))
				bench_die("vmc_probe", err);
			if (prev == UINT64_MAX || pr.granule != prev + 1)
				v->runs++;
			prev = pr.granule;
		}
		if ((err = vmc_detach(v->c, v->ids[k])))
			bench_die("vmc_detach", err);
	}
	if (var == V_NONE)
		return;
	/* a full code cache: one allocation of all of it */
	if ((err = vmc_code_alloc(v->c, CODE_SIZE, &rx, &rw)))
		bench_die("vmc_code_alloc", err);
	v->rx = rx;
	if (!touch_code)
		return;
	for (uint64_t off = 0; off < CODE_SIZE; off += PAGE)
		((volatile char *)rw)[off] = (char)0xc3;   /* ret */
	vmc_code_flush(rx, CODE_SIZE);
	/* read it through the r-x view, attached (protect opens it then) */
	if ((err = vmc_attach(v->c, v->ids[0], NULL)))
		bench_die("vmc_attach", err);
	for (uint64_t off = 0; off < CODE_SIZE; off += PAGE)
		if (((volatile char *)rx)[off] != (char)0xc3) {
			fprintf(stderr, "bench_code: the code cache's r-x view does not show "
				"what was written through the rw alias at +%#llx\n",
				(unsigned long long)off);
			exit(1);
		}
	if ((err = vmc_detach(v->c, v->ids[0])))
		bench_die("vmc_detach", err);
}

/* The r-x view is r-x while attached in both variants, and --- while
 * detached with protect: else the comparison would be of something else. */
static void check_protection(const struct variant *v, int var)
{
	char p[8], q[8];
	int err;

	if (var == V_NONE)
		return;
	perms(v->rx, p);
	if ((err = vmc_attach(v->c, v->ids[0], NULL)))
		bench_die("vmc_attach", err);
	perms(v->rx, q);
	if ((err = vmc_detach(v->c, v->ids[0])))
		bench_die("vmc_detach", err);
	if (strncmp(q, "r-x", 3) || strncmp(p, var == V_PROTECT ? "---" : "r-x", 3)) {
		fprintf(stderr, "bench_code: %s: the code cache is %s detached and %s attached "
			"(expected %s and r-x)\n", vname[var], p, q,
			var == V_PROTECT ? "---" : "r-x");
		exit(1);
	}
}

/* Each VM shows its own data, and the code cache is readable attached. */
static void check_vms(const struct variant *v)
{
	for (uint32_t k = 0; k < NVM; k++) {
		void *base;
		int err = vmc_attach(v->c, v->ids[k], &base);
		if (err)
			bench_die("vmc_attach", err);
		volatile char *code = touch_code ? (volatile char *)v->rx : NULL;
		if (*(volatile uint64_t *)((char *)base + VM_SIZE - PAGE) != TAG(k) ||
		    (code && code[CODE_SIZE - PAGE] != (char)0xc3)) {
			fprintf(stderr, "bench_code: VM %u (or the code cache) does not show "
				"its own data after the run\n", k);
			exit(1);
		}
		if ((err = vmc_detach(v->c, v->ids[k])))
			bench_die("vmc_detach", err);
	}
}

/* ------------------------------------------------------------ timing */

/* n attach+detach pairs: of VM 0 (re-attach) or of the 2 VMs in turn. */
static void pairs(struct variant *v, int w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t id;
		int err;

		if (w == W_SWITCH)
			v->cur ^= 1;
		id = v->ids[w == W_SWITCH ? v->cur : 0];
		if ((err = vmc_attach(v->c, id, NULL)))
			bench_die("vmc_attach", err);
		if ((err = vmc_detach(v->c, id)))
			bench_die("vmc_detach", err);
	}
}

static uint64_t timed(struct variant *v, int w, uint64_t n)
{
	uint64_t t0 = bench_now_ns();
	pairs(v, w, n);
	return bench_now_ns() - t0;
}

struct timed_arg {
	struct variant *v;
	int w;
};

static uint64_t timed_fn(void *arg, uint64_t n)
{
	struct timed_arg *a = arg;
	return timed(a->v, a->w, n);
}

/* Pairs per batch of about BATCH_NS (even, at least 16). */
static uint64_t calibrate(struct variant *v, int w)
{
	struct timed_arg a = { v, w };
	uint64_t n = bench_calibrate(timed_fn, &a, 64, 16, BATCH_NS, 8);

	n &= ~1ull;
	return n < 16 ? 16 : n;
}

/* ------------------------------------------------------------ per mode */

/* Returns 0, or 1 if a container could not be made (noted). */
static int measure_mode(struct bench_report *r, int kind, int strict)
{
	const char *kn = vmc_page_kind_name(kind), *mode = strict ? "strict" : "lazy";
	struct variant v[NV];
	double ns[NW][NV][MAX_RUNS];
	uint64_t n[NW][NV], calls[NW][NV], done[NW][NV];
	char name[96], vs[96], note[640];
	size_t len;

	printf("%s %s: containers with no code cache, static (twice) and protected %llu MiB "
	       "code caches, %d VMs of %llu MiB ...\n", kn, mode,
	       (unsigned long long)(CODE_SIZE >> 20), NVM,
	       (unsigned long long)(VM_SIZE >> 20));
	fflush(stdout);
	for (int i = 0; i < NV; i++) {
		make_variant(&v[i], kind, strict, i);
		if (!v[i].c) {
			bench_note(r, "%s %s skipped: vmc_create (%s): %s", kn, mode, vname[i],
				   vmc_errmsg());
			while (i-- > 0)
				vmc_close(v[i].c);
			return 1;
		}
		check_protection(&v[i], i);
	}
	memset(calls, 0, sizeof calls);
	memset(done, 0, sizeof done);
	for (int w = 0; w < NW; w++)
		for (int i = 0; i < NV; i++)
			n[w][i] = calibrate(&v[i], w);
	for (int j = 0; j < runs; j++)
		for (int w = 0; w < NW; w++)
			for (int i = 0; i < NV; i++) {
				uint64_t k0 = bench_attach_syscalls(v[i].c);
				ns[w][i][j] = (double)timed(&v[i], w, n[w][i]) / (double)n[w][i];
				calls[w][i] += bench_attach_syscalls(v[i].c) - k0;
				done[w][i] += n[w][i];
			}
	for (int i = 0; i < NV; i++) {
		check_vms(&v[i]);
		vmc_close(v[i].c);
	}
	for (int w = 0; w < NW; w++)
		for (int i = 0; i < NV; i++) {
			snprintf(name, sizeof name, "%s %s %s, %s", kn, mode, wname[w], vname[i]);
			snprintf(vs, sizeof vs, "%s %s %s, %s", kn, mode, wname[w],
				 vname[vbase[i] < 0 ? 0 : vbase[i]]);
			bench_row_runs(r, name, "ns", ns[w][i], runs, vbase[i] < 0 ? NULL : vs, kn);
		}
	len = (size_t)snprintf(note, sizeof note, "%s %s: vmc system calls per attach+detach",
			       kn, mode);
	for (int w = 0; w < NW && len < sizeof note; w++)
		for (int i = 0; i < NV && len < sizeof note; i++)
			len += (size_t)snprintf(note + len, sizeof note - len, "%s %s %s %.2f",
						i ? "," : ";", wname[w], vname[i],
						(double)calls[w][i] / (double)done[w][i]);
	if (v[V_STATIC1].runs != NVM)
		bench_note(r, "%s %s: static 1-run got %u pool runs for its %d VMs, not one each: "
			   "the granule allocation order changed, so it no longer isolates the "
			   "layout (compare it with care)", kn, mode, v[V_STATIC1].runs, NVM);
	len = strlen(note);
	for (int i = 0; i < NV && len < sizeof note; i++)
		len += (size_t)snprintf(note + len, sizeof note - len, "%s %s %.1f",
					i ? "," : "; contiguous pool runs per VM:", vname[i],
					(double)v[i].runs / NVM);
	bench_note(r, "%s", note);
	return 0;
}

/* Returns 0, 1 if skipped. */
static int measure_kind(struct bench_report *r, int kind)
{
	int skipped = 0;

	/* hugepages for the four containers of one isolation mode (they are
	 * made one mode at a time) */
	if (!bench_kind_wanted(r, vmc_page_kind_name(kind)) ||
	    !bench_kind_ready(r, kind, (long)((3 * POOL_CODE + POOL_NONE) >> 21)))
		return 1;
	for (int strict = 1; strict >= 0; strict--)
		skipped += measure_mode(r, kind, strict);
	return skipped == 2;
}

int main(void)
{
	static const int kinds[] = { VMC_PAGE_HUGETLB, VMC_PAGE_4K };
	char measured[64] = "";
	struct bench_report *r;
	int failed = 0;

	runs = (int)bench_env_int("VMC_BENCH_RUNS", 9);
	touch_code = (int)bench_env_int("VMC_BENCH_CODE_TOUCH", 1) != 0;
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_code: VMC_BENCH_RUNS must be 1..%d\n", MAX_RUNS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_code: %llu MiB code cache (%s), %d VMs of %llu MiB, %d batches per "
	       "figure\n", (unsigned long long)(CODE_SIZE >> 20),
	       touch_code ? "warm: every page written and read" : "cold: untouched", NVM,
	       (unsigned long long)(VM_SIZE >> 20), runs);
	r = bench_report_new("code", "hugetlb,4k");
	{
		char la[64];
		bench_loadavg(la, sizeof la);
		bench_note(r, "load average at start: %s", la);
	}
	bench_note(r, "code cache %llu MiB, %s; VMs of %llu MiB, window %llu MiB; "
		   "ns per vmc_attach + vmc_detach, nothing between",
		   (unsigned long long)(CODE_SIZE >> 20),
		   touch_code ? "warm (every 4 KiB page written via rw and read via r-x)"
			      : "cold (untouched)",
		   (unsigned long long)(VM_SIZE >> 20), (unsigned long long)(VM_SIZE >> 20));
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		bench_kind_outcome(measure_kind(r, kinds[i]), kinds[i], measured, sizeof measured);
	bench_report_set_page_kind(r, measured);
	bench_host_restore(r);
	/* what the naive protection adds per attach+detach */
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		for (int strict = 1; strict >= 0; strict--)
			for (int w = 0; w < NW; w++) {
				const char *kn = vmc_page_kind_name(kinds[i]);
				const char *mode = strict ? "strict" : "lazy";
				char a[96], b[96];
				snprintf(a, sizeof a, "%s %s %s, protect", kn, mode, wname[w]);
				snprintf(b, sizeof b, "%s %s %s, static", kn, mode, wname[w]);
				double p = bench_row_median(r, a), s = bench_row_median(r, b);
				if (p >= 0 && s > 0)
					bench_note(r, "%s %s %s: protect adds %.0f ns per attach+detach "
						   "(%.1fx static)", kn, mode, wname[w], p - s, p / s);
			}
	if (bench_report_finish(r))
		failed = 1;
	return failed;
}
