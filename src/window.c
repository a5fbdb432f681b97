/*
 * window.c - the address window: one fixed range at the start of the arena,
 * at the same address in every worker, where the attached VM's granules
 * appear (pool granule page_map[i] at window offset i granules).
 *
 * The process keeps its own record of what each window index maps and with
 * which protection.  window_sync() compares that record with the page map
 * it must show and issues only the system calls the difference needs,
 * coalescing runs: a re-attach of an unchanged VM costs nothing (lazy) or
 * one mprotect per run (strict); attaching another VM remaps only what
 * differs and clears the old VM's tail, so a smaller VM never shows a
 * larger one's memory (invariant 1).  If a call fails half-way the window
 * is cleared whole, so an error never leaves another VM reachable.
 *
 * No fault storm after a switch: what a mapping call maps is populated at
 * once.  2 MiB pages cost one page-table entry per granule (MAP_POPULATE);
 * on 4 KiB pages, a VM of at most vmc/populate_limit committed bytes gets
 * writable entries for every page it has (MADV_POPULATE_WRITE, one call
 * per run: MAP_POPULATE would map a shared mapping read-only, and every
 * first write would still fault).  With small granules what a VM has
 * committed is its working set; a bigger VM faults in what it touches.
 */
#include "window.h"
#include "pool.h"
#include "vm.h"
#include "os/os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int window_init(struct vmc *c)
{
	struct vmc_window *w = calloc(1, sizeof *w);
	uint32_t n = c->h.window_granules;

	if (!w)
		return ENOMEM;
	w->n = n;
	w->vm = w->attached = w->owner = VMC_NIL;
	w->map = malloc(n * sizeof *w->map);
	w->last = malloc(n * sizeof *w->last);
	w->prot = calloc(n, 1);
	if (!w->map || !w->last || !w->prot) {
		c->win = w;
		window_free(c);
		return ENOMEM;
	}
	memset(w->map, 0xff, n * sizeof *w->map);
	memset(w->last, 0xff, n * sizeof *w->last);
	c->win = w;
	return 0;
}

void window_free(struct vmc *c)
{
	if (!c->win)
		return;
	free(c->win->map);
	free(c->win->last);
	free(c->win->prot);
	free(c->win);
	c->win = NULL;
}

int window_claim(struct vmc *c, uint32_t id)
{
	uint32_t cur = VMC_NIL;

	while (!__atomic_compare_exchange_n(&c->win->owner, &cur, id, 0, __ATOMIC_ACQUIRE,
					    __ATOMIC_ACQUIRE)) {
		if (cur != WIN_BUSY)
			return vmc_fail(EALREADY, "this worker has VM %u attached: detach it first",
					cur);
		os_sched_yield();   /* a destroy is clearing the window: a moment */
		cur = VMC_NIL;
	}
	return 0;
}

int window_try_busy(struct vmc *c)
{
	uint32_t cur = VMC_NIL;
	return __atomic_compare_exchange_n(&c->win->owner, &cur, WIN_BUSY, 0, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

void window_unclaim(struct vmc *c)
{
	__atomic_store_n(&c->win->owner, VMC_NIL, __ATOMIC_RELEASE);
}

static int clear_range(struct vmc *c, uint32_t i, uint32_t n)
{
	void *p = os_mmap(window_addr(c, i), (size_t)n << GSHIFT(c), PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return p == MAP_FAILED ? errno : 0;
}

static void forget(struct vmc_window *w)
{
	memset(w->map, 0xff, w->n * sizeof *w->map);
	w->ext = 0;
	w->vm = VMC_NIL;
	w->open = 0;
}

/* The last resort after a failed call: nothing of any VM stays reachable.
 * If even the clearing mmap fails, revoke access to what may be mapped. */
static int clear_all(struct vmc *c, int err)
{
	if (clear_range(c, 0, c->win->n) && c->win->ext)
		os_mprotect(c->arena, (size_t)c->win->ext << GSHIFT(c), PROT_NONE);
	forget(c->win);
	return vmc_fail(err, "remapping the window failed: %s", vmc_strerror(err));
}

enum op { OP_NONE, OP_CLEAR, OP_MAP, OP_PROT };

static const int prot_of[4] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE, PROT_NONE };

/* The page map a window must show: entries beyond the VM's span are
 * empty. */
struct want {
	const uint32_t *map;
	uint32_t span;
};

static inline uint32_t at(const struct want *t, uint32_t i)
{
	return i < t->span ? t->map[i] : VMC_NIL;
}

/* What index i needs.  A granule released with VMC_RELEASE_DEFER stays
 * mapped where it was until a flush (keep_deferred). */
static enum op op_at(struct vmc *c, const struct want *t, uint32_t i, int keep_deferred)
{
	struct vmc_window *w = c->win;
	uint32_t e = at(t, i), cur = w->map[i];
	if (e == VMC_NIL) {
		if (cur == VMC_NIL)
			return OP_NONE;
		if (keep_deferred) {
			const struct vmc_granule *g = &c->gran[cur];
			if ((g->flags & G_DEFERRED) && g->state == G_CACHED && g->slot == c->slot && g->index == i)
				return OP_NONE;
		}
		return OP_CLEAR;
	}
	if ((e & PM_GRANULE) != cur)
		return OP_MAP;
	return w->prot[i] == prot_of[(e & PM_PROT_MASK) >> PM_PROT_SHIFT] ? OP_NONE : OP_PROT;
}

/* Same operation, and for a map the next granule of the file. */
static int same_run(const struct want *t, enum op op, uint32_t j)
{
	if (op == OP_CLEAR)
		return 1;
	if ((at(t, j) ^ at(t, j - 1)) & PM_PROT_MASK)
		return 0;
	return op != OP_MAP || (at(t, j) & PM_GRANULE) == (at(t, j - 1) & PM_GRANULE) + 1;
}

/* Map run [i, j) of granules from pool granule g with prot; 2 MiB pages
 * are populated at once (one page-table entry per granule).  0 or an
 * errno. */
static int map_run(struct vmc *c, uint32_t i, uint32_t j, uint32_t g, int prot, int populate)
{
	size_t len = (size_t)(j - i) << GSHIFT(c);
	int flags = MAP_SHARED | MAP_FIXED;

	if (c->h.page_kind != VMC_PAGE_4K || (populate && c->no_populate_write))
		flags |= MAP_POPULATE;
	if (os_mmap(window_addr(c, i), len, prot, flags, c->pool_fd, (off_t)g << GSHIFT(c)) ==
	    MAP_FAILED)
		return errno;
	return 0;
}

/* A stretch of window indices [lo, hi) that map_run mapped read-write on
 * 4 KiB pages, to populate in one call however many runs it took. */
struct stretch {
	uint32_t lo, hi;
};

/* Writable page-table entries for the stretch (MAP_POPULATE of a shared
 * mapping maps them read-only: every first write would fault).  Advice
 * only, never fatal. */
static void populate(struct vmc *c, struct stretch *s)
{
	if (s->hi > s->lo && !c->no_populate_write &&
	    os_madvise(window_addr(c, s->lo), (size_t)(s->hi - s->lo) << GSHIFT(c),
		       MADV_POPULATE_WRITE) && errno == EINVAL)
		c->no_populate_write = 1;   /* a kernel before 5.14: MAP_POPULATE from now */
	s->lo = s->hi = 0;
}

int window_sync(struct vmc *c, uint32_t vm, uint32_t lo, uint32_t hi, int keep_deferred)
{
	struct vmc_window *w = c->win;
	struct want t = { NULL, 0 };
	unsigned shift = GSHIFT(c);
	struct stretch st = { 0, 0 };
	int pop = 0;
	uint32_t i;

	if (vm != VMC_NIL) {
		t.map = vm_pagemap(c, vm);
		t.span = VMC_MIN(vm_span(c, vm), w->n);
		/* the working set of a VM up to vmc/populate_limit: all it has */
		pop = c->h.page_kind == VMC_PAGE_4K &&
		      (uint64_t)c->vms[vm].committed << shift <= c->h.populate_limit;
	}
	if (w->vm != vm) {   /* another VM's view: every index may differ */
		lo = 0;
		hi = w->n;
	}
	hi = VMC_MIN(hi, w->n);
	/* nothing beyond ext is mapped, and nothing beyond the page map's end
	 * needs mapping: only look as far as either reaches */
	uint32_t end = VMC_MIN(hi, VMC_MAX(w->ext, t.span));
	while (end > lo && at(&t, end - 1) == VMC_NIL && end > w->ext)
		end--;
	/* a page map is shared memory: never map beyond the pool (SIGBUS) */
	for (i = lo; i < end; i++)
		if (at(&t, i) != VMC_NIL && (at(&t, i) & PM_GRANULE) >= c->h.ngranules)
			return clear_all(c, VMC_ECORRUPT);
	for (i = lo; i < end;) {
		enum op op = op_at(c, &t, i, keep_deferred);
		uint32_t j = i + 1, e = at(&t, i);
		int err = 0;

		while (j < end && op_at(c, &t, j, keep_deferred) == op &&
		       (op == OP_NONE || same_run(&t, op, j)))
			j++;
		size_t len = (size_t)(j - i) << shift;
		int prot = e != VMC_NIL ? prot_of[(e & PM_PROT_MASK) >> PM_PROT_SHIFT] : PROT_NONE;
		if (op == OP_CLEAR)
			err = clear_range(c, i, j - i);
		else if (op == OP_MAP && !(err = map_run(c, i, j, e & PM_GRANULE, prot, pop)) &&
			 pop && c->h.page_kind == VMC_PAGE_4K) {
			if (prot != (PROT_READ | PROT_WRITE) || st.hi != i)
				populate(c, &st);
			if (prot == (PROT_READ | PROT_WRITE)) {
				st.lo = st.hi ? st.lo : i;
				st.hi = j;
			}
		}
		else if (op == OP_PROT)
			err = os_mprotect(window_addr(c, i), len, prot) ? errno : 0;
		if (err)
			return clear_all(c, err);
		for (uint32_t k = i; k < j && op != OP_NONE; k++) {
			w->map[k] = op == OP_CLEAR ? VMC_NIL : at(&t, k) & PM_GRANULE;
			w->prot[k] = (uint8_t)(op == OP_CLEAR ? PROT_NONE : prot);
			if (op != OP_CLEAR)
				w->last[k] = vm;
		}
		i = j;
	}
	populate(c, &st);
	if (end > w->ext)
		w->ext = end;
	while (w->ext && w->map[w->ext - 1] == VMC_NIL)
		w->ext--;
	w->vm = vm;
	w->open = 1;
	if (vm != VMC_NIL) {
		w->vm_gen = __atomic_load_n(&c->vms[vm].gen, __ATOMIC_ACQUIRE);
		w->vm_inc = c->vms[vm].incarnation;
	}
	return 0;
}

int window_revoke(struct vmc *c)
{
	struct vmc_window *w = c->win;

	if (w->ext && os_mprotect(c->arena, (size_t)w->ext << GSHIFT(c), PROT_NONE))
		return clear_all(c, errno);
	memset(w->prot, PROT_NONE, w->ext);
	w->open = 0;
	return 0;
}

void window_reset_child(struct vmc *c)
{
	if (c->win->ext)
		clear_range(c, 0, c->win->ext);
	forget(c->win);
	c->win->attached = c->win->owner = VMC_NIL;
}
