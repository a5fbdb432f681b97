/*
 * bench_heap.c - the in-VM heap (vmc_heap_*) against glibc malloc and
 * mimalloc (if libmimalloc.so.2 can be loaded: `apt-get install
 * libmimalloc-dev`), on the same work in the same run.
 *
 * Memory.  Each (workload, allocator) runs in a fresh process (this binary
 * executed again), so no allocator starts with free memory another left.
 * Live bytes are counted by the benchmark itself (the sum of the sizes
 * asked for, Lua's allocator function or the synthetic driver), and the
 * allocator's footprint is what the host pays for it: for vmc the bytes of
 * granules the heap has committed (vmc_heap_stats: its high-water mark),
 * for glibc and mimalloc the growth of the process's resident set (VmHWM
 * at the end minus VmRSS before the work).  Rows give footprint / live at
 * the peak; the target is vmc <= glibc.  Workloads:
 *   lua-script      an allocation-heavy Lua script (tables, strings,
 *                   closures, a growing array, a shrink phase and growth
 *                   again);
 *   lua-tables      2^21 empty tables kept in one array (issue 15's case);
 *   tenant-*        the vmc-lua tenants (examples/lua/tenants), each in its
 *                   own Lua state, serving VMC_BENCH_HEAP_REQUESTS requests
 *                   (default 2000): vmc commits whole granules, so a small
 *                   tenant's footprint is one granule at least;
 *   synthetic       a size mix (60% 16-128 B, 25% to 1 KiB, 12% to 16 KiB,
 *                   3% to 256 KiB) grown to 64 MiB live with random frees,
 *                   churned, then shrunk to a tenth.
 * Trimming.  "spike": 1 MiB of small blocks stays live, 100 MiB more are
 * allocated (the same mix) and freed; the footprint is read just after the
 * free, after the decay time (vmc: a detach, which runs the decay check;
 * glibc, mimalloc: a sleep) and after an explicit trim (vmc_heap_trim,
 * malloc_trim, mi_collect).  Target: vmc <= 2 MiB + one granule after the
 * decay time.
 * Speed.  In this process: alloc+free pairs on a table of 8192 slots with
 * random replacement (70% 16-256 B, 20% to 1 KiB, 10% to 8 KiB), and the
 * wall time of the lua-script workload in its child.  Medians over
 * VMC_BENCH_RUNS runs (default 3), allocators interleaved.
 * Page kind 4k, 2 MiB granules (what vmc_granule_size says).
 */
#include "benchlib.h"

#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef VMC_LUA_TENANTS
#error "VMC_LUA_TENANTS must name examples/lua/tenants"
#endif

#define MAX_RUNS 32
enum { A_VMC, A_GLIBC, A_MI, NA };
static const char *const aname[NA] = { "vmc", "glibc", "mimalloc" };

/* ------------------------------------------------------------ allocators */

static int kind;                 /* the allocator of this process's work */
static vmc_t *vc;
static uint32_t vmid;
static void *(*mi_realloc_p)(void *, size_t);
static void (*mi_free_p)(void *);
static void (*mi_collect_p)(int);

/* mimalloc through dlopen(RTLD_LOCAL): its malloc does not replace glibc's. */
static int mi_load(void)
{
	void *h = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return 0;
	mi_realloc_p = (void *(*)(void *, size_t))dlsym(h, "mi_realloc");
	mi_free_p = (void (*)(void *))dlsym(h, "mi_free");
	mi_collect_p = (void (*)(int))dlsym(h, "mi_collect");
	return mi_realloc_p && mi_free_p && mi_collect_p;
}

static void vmc_setup(void)
{
	vmc_config_t cfg;
	void *base;
	int err;

	if ((err = bench_config(&cfg, VMC_PAGE_4K, 768 * BENCH_MiB, 1 * BENCH_GiB)))
		bench_die("vmc_config_init", err);
	if ((err = vmc_create(NULL, &cfg, &vc)))
		bench_die("vmc_create", err);
	if ((err = vmc_vm_create(vc, "bench", 768 * BENCH_MiB, &vmid)) ||
	    (err = vmc_attach(vc, vmid, &base)))
		bench_die("vm", err);
}

static inline void *a_realloc(void *p, size_t n)
{
	switch (kind) {
	case A_VMC: return vmc_heap_realloc(vc, p, n);
	case A_MI: return mi_realloc_p(p, n);
	default: return realloc(p, n);
	}
}

static inline void a_free(void *p)
{
	switch (kind) {
	case A_VMC: vmc_heap_free(vc, p); break;
	case A_MI: mi_free_p(p); break;
	default: free(p);
	}
}

/* The footprint now (vmc: committed; others: resident set). */
static double footprint(void)
{
	if (kind == A_VMC) {
		vmc_heap_stats_t st;
		vmc_heap_stats(vc, &st, 0);
		return (double)st.committed;
	}
	return (double)bench_kb_field("/proc/self/status", "VmRSS:");
}

/* -------------------------------------------------------------- workloads */

static size_t live, peak;

static void count(size_t old, size_t n)
{
	live = live - old + n;
	peak = live > peak ? live : peak;
}

static void *l_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
	(void)ud;
	if (!nsize) {
		if (p)
			count(osize, 0);
		a_free(p);
		return NULL;
	}
	void *q = a_realloc(p, nsize);
	if (q)
		count(p ? osize : 0, nsize);
	return q;
}

static const char lua_script[] =
	"local N = 200000\n"
	"local t, s, f = {}, {}, {}\n"
	"for i = 1, N do t[i] = { i, i * 2, name = 'n' .. i, v = i / 3 } end\n"
	"for i = 1, N do s[i] = string.rep(string.char(65 + i % 26), 8 + i % 120) .. i end\n"
	"for i = 1, N // 2 do local k = i; f[i] = function() return k + #s[k] end end\n"
	"local big = {}\n"
	"for i = 1, 4 * N do big[i] = i end\n"
	"local acc = {}\n"
	"for i = 1, N // 10 do acc[#acc + 1] = tostring(i) end\n"
	"local joined = table.concat(acc, ',')\n"
	"for i = 1, N, 2 do t[i] = nil; s[i] = nil end\n"
	"big = nil; f = nil\n"
	"collectgarbage()\n"
	"for i = 1, N, 2 do t[i] = { x = i, y = { i } } end\n"
	"for k = 1, 20 do local tmp = {} for i = 1, 5000 do tmp[i] = { k, i, tostring(i) } end end\n"
	"collectgarbage()\n"
	"return #joined\n";

static void lua_die(lua_State *L, const char *what)
{
	fprintf(stderr, "bench_heap: %s: %s\n", what, lua_tostring(L, -1));
	exit(1);
}

static void run_lua(const char *chunk)
{
	lua_State *L = lua_newstate(l_alloc, NULL);
	if (!L)
		bench_die("lua_newstate", 12);
	luaL_openlibs(L);
	if (luaL_loadstring(L, chunk) || lua_pcall(L, 0, 0, 0))
		lua_die(L, "script");
	lua_close(L);
}

/* A vmc-lua tenant file serving n requests of its kind. */
static void run_tenant(const char *name, int n)
{
	static const char *const words[] = { "alpha", "beta", "gamma", "delta", "vmc",
					     "heap", "lua", "granule", "slab", "tenant" };
	char path[4096], req[512];
	lua_State *L = lua_newstate(l_alloc, NULL);

	if (!L)
		bench_die("lua_newstate", 12);
	luaL_openlibs(L);
	snprintf(path, sizeof path, "%s/%s.lua", VMC_LUA_TENANTS, name);
	if (luaL_loadfile(L, path) || lua_pcall(L, 0, 0, 0))
		lua_die(L, path);
	for (int i = 0; i < n; i++) {
		if (!strcmp(name, "counter")) {
			snprintf(req, sizeof req, "incr");
		} else if (!strcmp(name, "memhog")) {
			snprintf(req, sizeof req, "%d", i % 8 ? 64 : 1024);
		} else {
			size_t o = 0;
			for (int w = 0; w < 8 + i % 16; w++)
				o += (size_t)snprintf(req + o, sizeof req - o, "%s%d ",
						      words[(i * 7 + w) % 10], (i + w) % 50);
		}
		lua_getglobal(L, "handle");
		lua_pushstring(L, req);
		if (lua_pcall(L, 1, 1, 0))
			lua_die(L, name);
		lua_pop(L, 1);
	}
	lua_close(L);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static size_t rnd_in(size_t lo, size_t hi)
{
	return lo + (size_t)(rnd() % (hi - lo + 1));
}

/* The synthetic mix: 60% 16-128, 25% to 1 KiB, 12% to 16 KiB, 3% to 256 KiB. */
static size_t mix_size(void)
{
	unsigned r = (unsigned)(rnd() % 100);
	return r < 60 ? rnd_in(16, 128) : r < 85 ? rnd_in(129, 1024) :
	       r < 97 ? rnd_in(1025, 16384) : rnd_in(16385, 262144);
}

struct slot { void *p; size_t n; };

/* Grow to `target` live bytes in slots[], freeing a random slot now and
 * then; then churn; then shrink to a tenth. */
static void run_synthetic(struct slot *sl, size_t nslots, size_t target)
{
	for (int phase = 0; phase < 3; phase++) {
		size_t goal = phase == 2 ? target / 10 : target;
		for (uint64_t op = 0; op < 4 * nslots; op++) {
			struct slot *e = &sl[rnd() % nslots];
			int grow = live < goal && (phase != 1 || rnd() % 2);
			if (e->p && (!grow || rnd() % 4 == 0)) {
				a_free(e->p);
				count(e->n, 0);
				e->p = NULL;
			} else if (!e->p && grow) {
				e->n = mix_size();
				if (!(e->p = a_realloc(NULL, e->n)))
					bench_die("synthetic alloc", 12);
				memset(e->p, 1, e->n);
				count(0, e->n);
			}
			if (phase == 2 && live <= goal)
				break;
		}
	}
	for (size_t i = 0; i < nslots; i++)
		if (sl[i].p) {
			a_free(sl[i].p);
			count(sl[i].n, 0);
			sl[i].p = NULL;
		}
}

/* 1 MiB stays, a 100 MiB spike comes and goes; footprints in out[3]. */
static void run_spike(struct slot *sl, size_t nslots, double out[3])
{
	size_t nkeep = 16384, n, spiked = 0;

	for (n = 0; n < nslots && (n < nkeep || spiked < 100 * BENCH_MiB); n++) {
		sl[n].n = n < nkeep ? 64 : mix_size();
		if (!(sl[n].p = a_realloc(NULL, sl[n].n)))
			bench_die("spike alloc", 12);
		memset(sl[n].p, 1, sl[n].n);
		spiked += n < nkeep ? 0 : sl[n].n;
		count(0, sl[n].n);
	}
	for (size_t i = nkeep; i < n; i++) {
		a_free(sl[i].p);
		count(sl[i].n, 0);
	}
	out[0] = footprint();
	if (kind == A_VMC) {
		vmc_heap_stats_t st;
		vmc_heap_stats(vc, &st, 0);
		usleep((st.decay_ms + 100) * 1000u);
		if (vmc_detach(vc, vmid) || vmc_attach(vc, vmid, NULL))
			bench_die("detach", 1);
		out[1] = footprint();
		vmc_heap_trim(vc, 0);
	} else {
		usleep(1100 * 1000);
		out[1] = footprint();
		if (kind == A_MI)
			mi_collect_p(1);
		else
			malloc_trim(0);
	}
	out[2] = footprint();
}

/* ------------------------------------------------------------ the child */

static const char *const workloads[] = {
	"lua-script", "lua-tables", "tenant-counter", "tenant-wordfreq", "tenant-memhog",
	"synthetic", "spike",
};
#define NWL (sizeof workloads / sizeof *workloads)

/* bench_heap --child ALLOC WORKLOAD: one line "live_peak foot_peak wall_ns
 * f0 f1 f2" on stdout. */
static int child(const char *alloc, const char *wl)
{
	size_t nslots = 1 << 20;
	struct slot *sl = bench_map_anon(nslots * sizeof *sl, PROT_READ | PROT_WRITE);
	double sp[3] = { 0, 0, 0 }, base, foot;
	int requests = (int)bench_env_int("VMC_BENCH_HEAP_REQUESTS", 2000);
	uint64_t t0;

	memset(sl, 0, nslots * sizeof *sl);
	for (kind = 0; kind < NA && strcmp(aname[kind], alloc); kind++)
		;
	if (kind == A_VMC)
		vmc_setup();
	else if (kind == A_MI && !mi_load())
		return 2;
	base = kind == A_VMC ? 0 : footprint();
	t0 = bench_now_ns();
	if (!strcmp(wl, "lua-script"))
		run_lua(lua_script);
	else if (!strcmp(wl, "lua-tables"))
		run_lua("local t = {} for i = 1, 1 << 21 do t[i] = {} end");
	else if (!strncmp(wl, "tenant-", 7))
		run_tenant(wl + 7, requests);
	else if (!strcmp(wl, "synthetic"))
		run_synthetic(sl, 1 << 16, 64 * BENCH_MiB);
	else
		run_spike(sl, nslots, sp);
	uint64_t wall = bench_now_ns() - t0;
	if (kind == A_VMC) {
		vmc_heap_stats_t st;
		vmc_heap_stats(vc, &st, 0);
		foot = (double)st.peak_committed;
	} else {
		foot = (double)bench_kb_field("/proc/self/status", "VmHWM:") - base;
	}
	printf("%zu %.0f %llu %.0f %.0f %.0f\n", peak, foot, (unsigned long long)wall,
	       sp[0] - base, sp[1] - base, sp[2] - base);
	return 0;
}

struct result { double live, foot, wall, sp[3]; int ok; };

static struct result spawn(const char *alloc, const char *wl)
{
	struct result r = { 0, 0, 0, { 0, 0, 0 }, 0 };
	char cmd[4200], self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	FILE *f;

	if (n <= 0)
		return r;
	self[n] = 0;
	snprintf(cmd, sizeof cmd, "'%s' --child %s %s", self, alloc, wl);
	if (!(f = popen(cmd, "r")))
		return r;
	r.ok = fscanf(f, "%lf %lf %lf %lf %lf %lf", &r.live, &r.foot, &r.wall, &r.sp[0], &r.sp[1],
		      &r.sp[2]) == 6;
	r.ok &= pclose(f) == 0;
	return r;
}

/* ------------------------------------------------------------ speed */

static double pairs_per_s(struct slot *sl, uint64_t n)
{
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		struct slot *e = &sl[rnd() % 8192];
		unsigned r = (unsigned)(rnd() % 100);
		size_t sz = r < 70 ? rnd_in(16, 256) : r < 90 ? rnd_in(257, 1024) : rnd_in(1025, 8192);
		a_free(e->p);
		if (!(e->p = a_realloc(NULL, sz)))
			bench_die("alloc", 12);
		*(char *)e->p = 1;
	}
	return (double)n / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--child"))
		return child(argv[2], argv[3]);

	int runs = (int)bench_env_int("VMC_BENCH_RUNS", 3), have_mi = mi_load(), na = have_mi ? NA : 2;
	double v[NA][MAX_RUNS], w[NA][MAX_RUNS], sp[NA][3][MAX_RUNS];
	struct bench_report *r = bench_report_new("heap", "4k");
	char name[160], vs[160];
	static struct slot sl[8192];

	if (runs < 1 || runs > MAX_RUNS)
		runs = 3;
	if (!have_mi)
		bench_note(r, "mimalloc skipped: libmimalloc.so.2 not found (apt-get install "
			   "libmimalloc-dev)");
	for (size_t k = 0; k < NWL; k++) {
		const char *wl = workloads[k];
		double lv_runs[MAX_RUNS];
		for (int i = 0; i < runs; i++)
			for (int a = 0; a < na; a++) {
				struct result res = spawn(aname[a], wl);
				if (!res.ok) {
					fprintf(stderr, "bench_heap: %s on %s failed\n", wl, aname[a]);
					return 1;
				}
				v[a][i] = res.foot / res.live;
				w[a][i] = res.wall / 1e6;
				for (int j = 0; j < 3; j++)
					sp[a][j][i] = res.sp[j] / (double)BENCH_MiB;
				if (a == A_GLIBC)
					lv_runs[i] = res.live / (double)BENCH_MiB;
			}
		snprintf(name, sizeof name, "%s: live peak", wl);
		bench_row_runs(r, name, "MiB", lv_runs, runs, NULL, NULL);
		snprintf(vs, sizeof vs, "%s: glibc RSS/live", wl);
		for (int a = 0; a < na; a++) {
			snprintf(name, sizeof name, "%s: %s %s/live", wl, aname[a],
				 a == A_VMC ? "committed" : "RSS");
			bench_row_runs(r, name, "ratio", v[a], runs, a == A_GLIBC ? NULL : vs, NULL);
		}
		if (!strcmp(wl, "lua-script") || !strcmp(wl, "lua-tables")) {
			snprintf(vs, sizeof vs, "%s: glibc wall", wl);
			for (int a = 0; a < na; a++) {
				snprintf(name, sizeof name, "%s: %s wall", wl, aname[a]);
				bench_row_runs(r, name, "ms", w[a], runs, a == A_GLIBC ? NULL : vs, NULL);
			}
		}
		if (!strcmp(wl, "spike")) {
			static const char *const when[3] = { "just after the free",
				"after the decay time", "after an explicit trim" };
			for (int j = 0; j < 3; j++)
				for (int a = 0; a < na; a++) {
					snprintf(name, sizeof name, "spike: %s footprint %s", aname[a],
						 when[j]);
					bench_row_runs(r, name, "MiB", sp[a][j], runs, NULL, NULL);
				}
		}
	}
	/* speed, in this process */
	double ops[NA][MAX_RUNS];
	for (int i = 0; i < runs; i++)
		for (int a = 0; a < na; a++) {
			kind = a;
			if (a == A_VMC && !vc)
				vmc_setup();
			pairs_per_s(sl, 200000);   /* warm */
			ops[a][i] = pairs_per_s(sl, 4000000);
			for (int s = 0; s < 8192; s++) {
				a_free(sl[s].p);
				sl[s].p = NULL;
			}
		}
	for (int a = 0; a < na; a++) {
		snprintf(name, sizeof name, "small mix: %s alloc+free", aname[a]);
		bench_row_runs(r, name, "M pairs/s", ops[a], runs,
			       a == A_GLIBC ? NULL : "small mix: glibc alloc+free", NULL);
	}
	double lv = bench_row_median(r, "lua-script: vmc committed/live"),
	       lg = bench_row_median(r, "lua-script: glibc RSS/live"),
	       tv = bench_row_median(r, "lua-tables: vmc committed/live"),
	       tg = bench_row_median(r, "lua-tables: glibc RSS/live"),
	       sv = bench_row_median(r, "spike: vmc footprint after the decay time");
	bench_note(r, "target committed/live <= glibc RSS/live at Lua's peak: lua-script %.3f vs "
		   "%.3f, lua-tables %.3f vs %.3f: %s", lv, lg, tv, tg,
		   lv <= lg && tv <= tg ? "met" : "NOT met");
	bench_note(r, "target after a 100 MiB spike back to 1 MiB live, committed <= 2 MiB + one "
		   "granule (%llu MiB) within the decay time: %.1f MiB: %s",
		   (unsigned long long)(vmc_granule_size(vc) >> 20), sv,
		   sv <= 2.0 + (double)(vmc_granule_size(vc) >> 20) ? "met" : "NOT met");
	bench_note(r, "vmc footprint = committed granules (%llu MiB each); glibc and mimalloc "
		   "footprint = resident set growth; live = bytes asked for and not freed",
		   (unsigned long long)(vmc_granule_size(vc) >> 20));
	return bench_report_finish(r) ? 1 : 0;
}
