/*
 * remap.c - the mapping engine: commit, release, move, alias and protect
 * on a VM's page map, applied to the window with the fewest system calls.
 *
 * Every operation, alone or in a batch, runs in these steps:
 *  1. a dry run on a scratch copy of the touched part of the page map
 *     (pmops.c) validates every operation in order and counts the granules
 *     the commits need, so a batch is all or nothing; it also tells where
 *     each new commit ends up;
 *  2. under this worker's slot lock: the budget is charged and the
 *     granules are taken (this worker's deferred list first, then its local
 *     cache: no shared lock in the common case); under the on-demand
 *     funding policy, a commit short of funded granules funds more first,
 *     with no slot lock held (fund.c);
 *  3. a new granule that held another VM's bytes is zeroed before anything
 *     can show them (invariant 4): before the page map changes, through a
 *     temporary mapping, unless the window will show it once and
 *     read-write, where the memset after the sync is both the zeroing and
 *     the first touch.  A failure up to here undoes everything;
 *  4. the operations run for real on the page map (they cannot fail), and
 *     one window_sync over the touched span maps the result: adjacent runs
 *     coalesce, so N moves of contiguous ranges cost O(1) system calls, and
 *     a granule recycled where it is still mapped costs none.  If the sync
 *     fails, the window is cleared and the new commits the window was to
 *     zero are undone, so no byte of another VM is ever reachable;
 *  5. released granules go to this worker's cache, or to quarantine while
 *     a window may still map them (invariant 3), or stay mapped on the
 *     deferred list (VMC_RELEASE_DEFER) until a flush.
 * A crash at any point leaves the page map as the truth; recovery
 * (vm_repair) puts granules in flight back, reclaim zeroes what a commit
 * cut short never zeroed, and the budget is counted again (budget.c).
 */
#include "pmops.h"
#include "backing.h"
#include "budget.h"
#include "container.h"
#include "fund.h"
#include "pool.h"
#include "quarantine.h"
#include "vm.h"
#include "window.h"
#include "os/os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define FUND_TRIES 4   /* on-demand funds per commit before VMC_EFUNDS stands */

/* Does granule g, taken for commit k, need zeroing?  Not if fresh, nor
 * with VMC_COMMIT_NOZERO for one this same VM used last. */
static int must_zero(struct run *r, uint32_t k, uint32_t g)
{
	const struct vmc_granule *e = &r->c->gran[g];
	return (e->flags & G_DIRTY) &&
	       !((r->atf.v[k] & VMC_COMMIT_NOZERO) && gran_is_from(r->c, e, r->vm));
}

/* The granule holds this VM's bytes from now on. */
static void mark_clean(struct run *r, uint32_t g)
{
	r->c->gran[g].flags &= (uint8_t)~G_DIRTY;
	gran_set_last(r->c, &r->c->gran[g], r->vm);
}

/* Before the page map changes: zero the new granules the window will not
 * zero, through a temporary mapping.  Returns 0 or the error (nothing is
 * mapped anywhere yet: the caller gives the granules back). */
static int zero_before(struct run *r)
{
	for (uint32_t k = 0; k < r->need; k++) {
		uint32_t g = r->got.v[k];
		int err;
		if (r->zmode.v[k] != Z_BEFORE || (r->atf.v[k] & OPF_FILL))
			continue;
		if (must_zero(r, k, g) && (err = backing_zero(r->c, g)))
			return err;
		mark_clean(r, g);
	}
	return 0;
}

/* After the sync: zero through the window what it shows once, read-write
 * (the memset is the first touch, too), and populate on request. */
static void zero_through_window(struct run *r)
{
	struct vmc *c = r->c;

	for (uint32_t k = 0; k < r->need; k++) {
		uint32_t g = r->got.v[k], i;
		if (g == VMC_NIL || r->zmode.v[k] != Z_WINDOW)
			continue;
		i = c->gran[g].index;
		vmc_assert(c->win->vm == r->vm && c->win->map[i] == g &&
			   c->win->prot[i] == (PROT_READ | PROT_WRITE));
		if (must_zero(r, k, g))
			memset(window_addr(c, i), 0, GSIZE(c));
		else if (r->atf.v[k] & VMC_COMMIT_POPULATE)
			os_madvise(window_addr(c, i), GSIZE(c), MADV_POPULATE_WRITE);
		mark_clean(r, g);
	}
}

/* The window could not show the result: the new commits it was to zero
 * are still unzeroed; take them out of the page map (each is one primary
 * view at its index) and give them back. */
static void undo_window_zeroed(struct run *r, struct vmc_vm *vm, uint32_t old_hwm,
			       uint32_t from_reserve)
{
	uint32_t *map = vm_pagemap(r->c, r->vm), undone = 0;

	for (uint32_t k = 0; k < r->need; k++) {
		uint32_t g = r->got.v[k];
		if (r->zmode.v[k] != Z_WINDOW)
			continue;
		map[r->c->gran[g].index] = VMC_NIL;
		pool_put(r->c, g);   /* still G_DIRTY if it must be zeroed */
		r->got.v[k] = VMC_NIL;
		undone++;
	}
	vm->committed -= undone;
	vm->reserve_used -= VMC_MIN(VMC_MIN(from_reserve, undone), vm->reserve_used);
	vm->hwm = VMC_MAX(old_hwm, vm->committed);
	budget_uncharge(r->c, undone);
}

/* Before the sync: released granules with VMC_RELEASE_DEFER go on our
 * deferred list, so that the sync leaves them mapped. */
static void defer_released(struct run *r)
{
	for (uint32_t k = 0; k < r->freed.n; k += 2)
		if (r->freed.v[k + 1] & 1) {
			pool_defer(r->c, r->freed.v[k], r->vm, r->freed.v[k + 1] >> 1);
			r->freed.v[k] = VMC_NIL;
		}
}

/* After the sync: the other released granules go to quarantine or our
 * cache.  A VM not attached here may still be shown by our own window. */
static int hand_back(struct run *r)
{
	int q = -1, err = 0, locked = 0;

	for (uint32_t k = 0; k < r->freed.n; k += 2) {
		uint32_t g = r->freed.v[k];
		if (g == VMC_NIL)
			continue;
		if (q < 0)   /* a scan of the slots: only when something goes back */
			q = quarantine_needed(r->c, r->vm, !r->here);
		if (q) {
			if (!locked && (err = pool_lock(r->c)))
				return err;
			locked = 1;
			quarantine_add(r->c, g, r->vm);
		} else if ((err = pool_put(r->c, g))) {
			break;
		}
	}
	if (locked)
		pool_unlock(r->c);
	return err;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Give back what take_granules took (nothing new maps it). Slot lock. */
static void untake(struct run *r)
{
	for (uint32_t k = 0; k < r->got.n; k++) {
		uint32_t g = r->got.v[k];
		if (g == VMC_NIL)
			continue;
		if (r->here && r->c->win->map[r->at.v[k]] == g)
			pool_defer(r->c, g, r->vm, r->at.v[k]);   /* still mapped: deferred again */
		else
			pool_put(r->c, g);
	}
	r->got.n = 0;
}

/* Take a granule for each new commit: the one this VM deferred at its
 * index if any (no system call: it is still mapped), else from the cache,
 * handed out in ascending order so that contiguous indices get contiguous
 * granules and map in one call.  All or nothing. Slot lock. */
static int take_granules(struct run *r)
{
	struct vmc *c = r->c;
	struct u32v fresh;
	uint32_t misses = 0, m = 0;
	int err = 0;

	u32v_init(&fresh);
	r->got.n = 0;
	for (uint32_t k = 0; k < r->at.n && !err; k++) {
		uint32_t g = VMC_NIL;
		if (!r->here || pool_recycle(c, r->vm, r->at.v[k], &g))
			misses++;
		err = u32v_push(&r->got, g);
	}
	for (uint32_t k = 0; k < misses && !err; k++) {
		uint32_t g;
		if (!(err = pool_take(c, r->vm, &g)))
			err = u32v_push(&fresh, g);
	}
	qsort(fresh.v, fresh.n, sizeof *fresh.v, cmp_u32);
	for (uint32_t k = 0; k < r->got.n && m < fresh.n; k++)
		if (r->got.v[k] == VMC_NIL)
			r->got.v[k] = fresh.v[m++];
	if (err) {
		for (uint32_t k = m; k < fresh.n; k++)
			pool_put(c, fresh.v[k]);
		untake(r);
	}
	u32v_free(&fresh);
	return err;
}

/* Step 2 and 3: charge, take and zero, under the slot lock (held on
 * success).  On failure nothing changed and the slot lock is free.  Under
 * the on-demand policy a commit that finds too few free funded granules
 * lets go of the slot lock, funds more (fund.c) and tries again. */
static int provide(struct run *r, int reserve, uint32_t *from_reserve)
{
	struct vmc *c = r->c;
	int err, took, tries = 0;

	if (r->need && ((err = budget_recount(c, 0)) || (err = fund_ahead(c, r->need, reserve))))
		return err;
again:
	if ((err = slot_lock(c, c->slot)))
		return err;
	if (!r->need)
		return 0;
	took = 0;
	if ((err = budget_charge(c, r->need, reserve, from_reserve)))
		goto unlock;
	took = 1;
	err = take_granules(r);
	if (err == VMC_EFUNDS && r->here && c->slots[c->slot].defer_count) {
		/* the granules this worker keeps deferred are the last ones:
		 * end the deferral and try once more */
		budget_uncharge(c, r->need);
		slot_unlock(c, c->slot);
		if ((err = remap_flush(c)) || (err = slot_lock(c, c->slot)))
			return err;
		took = 0;
		if ((err = budget_charge(c, r->need, reserve, from_reserve)))
			goto unlock;
		took = 1;
		err = take_granules(r);
	}
	if (!err && !(err = zero_before(r)))
		return 0;
	if (r->got.n)
		untake(r);
	budget_uncharge(c, r->need);
unlock:
	slot_unlock(c, c->slot);
	/* another worker may take what we funded before we charge again:
	 * a few rounds, then the error stands */
	if (err == VMC_EFUNDS && fund_ondemand_policy(c) && tries++ < FUND_TRIES &&
	    !(err = fund_for_commit(c, r->need, reserve, took)))
		goto again;
	return err;
}

static void run_free(struct run *r, struct u32v *scratch)
{
	u32v_free(scratch);
	u32v_free(&r->tag);
	u32v_free(&r->at);
	u32v_free(&r->atf);
	u32v_free(&r->zmode);
	u32v_free(&r->got);
	u32v_free(&r->freed);
}

int remap_run(struct vmc *c, uint32_t vm_id, const struct vmc_op *ops, uint32_t n, int here)
{
	struct vmc_vm *vm = &c->vms[vm_id];
	uint32_t *map = vm_pagemap(c, vm_id), from_reserve = 0, freed, old_hwm;
	struct run r = { .c = c, .vm = vm_id, .here = here };
	struct u32v scratch;
	int err = 0, reserve = 0;

	if (!n)
		return 0;
	/* a system error left the window without the attached VM: show it
	 * again first, or nothing new can be zeroed through it */
	if (here && c->win->vm != vm_id && (err = window_sync(c, vm_id, WINDOW_ALL, 1)))
		return err;
	pmops_span(ops, n, &r.lo, &r.hi);
	u32v_init(&scratch);
	u32v_init(&r.tag);
	u32v_init(&r.at);
	u32v_init(&r.atf);
	u32v_init(&r.zmode);
	u32v_init(&r.got);
	u32v_init(&r.freed);
	for (uint32_t i = r.lo; i < r.hi && !err; i++)
		if (!(err = u32v_push(&scratch, map[i])))
			err = u32v_push(&r.tag, 0);
	r.e = scratch.v;
	if (err || (err = pmops_run(&r, ops, n)) || (err = pmops_zero_modes(&r)) ||
	    (err = u32v_reserve(&r.freed, 2 * pmops_released(ops, n))))
		goto out;
	/* limits count the commits of the batch, not what it releases too */
	if (r.need && (uint64_t)(vm->committed + r.need) << GSHIFT(c) > vm->limit) {
		err = vmc_fail(VMC_ELIMIT, "VM %s: committing %llu KiB more would exceed its "
			       "limit of %llu KiB (%llu KiB committed)", vm->name,
			       (unsigned long long)(((uint64_t)r.need << GSHIFT(c)) >> 10),
			       (unsigned long long)(vm->limit >> 10),
			       (unsigned long long)(((uint64_t)vm->committed << GSHIFT(c)) >> 10));
		goto out;
	}
	for (uint32_t k = 0; k < n; k++)
		reserve |= ops[k].kind == VMC_OP_COMMIT && (ops[k].flags & VMC_COMMIT_RESERVE);
	if ((err = provide(&r, reserve, &from_reserve)))
		goto out;
	/* for real: nothing below fails but the system calls */
	r.real = 1;
	r.e = map;
	r.lo = 0;
	pmops_run(&r, ops, n);
	freed = r.freed.n / 2;
	old_hwm = vm->hwm;
	vm->committed = vm->committed + r.need - freed;
	vm->reserve_used += from_reserve;
	vm->reserve_used -= VMC_MIN(vm->reserve_used, freed);
	if (vm->committed > vm->hwm)
		vm->hwm = vm->committed;
	budget_uncharge(c, freed);
	__atomic_add_fetch(&vm->gen, 1, __ATOMIC_RELEASE);
	if (here) {
		defer_released(&r);
		pmops_span(ops, n, &r.lo, &r.hi);
		if ((err = window_sync(c, vm_id, r.lo, r.hi, 1))) {
			undo_window_zeroed(&r, vm, old_hwm, from_reserve);
			window_sync(c, vm_id, WINDOW_ALL, 1);   /* best effort */
		}
		zero_through_window(&r);
	}
	int e2 = hand_back(&r);
	err = err ? err : e2;
	slot_unlock(c, c->slot);
out:
	run_free(&r, &scratch);
	return err;
}

/* File unlisted cached granules g[0..n) that our window no longer shows:
 * quarantine while another worker may map their VM, else our cache. */
static int file_back(struct vmc *c, const uint32_t *g, uint32_t n)
{
	int err = 0, locked = 0;
	for (uint32_t k = 0; k < n; k++) {
		struct vmc_granule *e = &c->gran[g[k]];
		uint32_t vm = e->owner;
		if (!quarantine_needed(c, vm, 0)) {
			pool_cache(c, g[k]);
			continue;
		}
		if (!locked && (err = pool_lock(c)))
			return err;
		locked = 1;
		quarantine_add(c, g[k], vm);
	}
	if (locked)
		pool_unlock(c);
	return 0;
}

int remap_flush(struct vmc *c)
{
	struct vmc_slot *s = &c->slots[c->slot];
	struct vmc_window *w = c->win;
	uint32_t g[64], n;
	int err = 0;

	if (!s->defer_count && w->vm == w->attached)
		return 0;
	if ((err = slot_lock(c, c->slot)))
		return err;
	while (!err && (n = pool_undefer(c, c->slot, g, 64)) > 0) {
		/* off the deferred list now, so the sync unmaps them; if it
		 * fails, the window is cleared, which unmaps them as well */
		uint32_t lo = UINT32_MAX, hi = 0;
		for (uint32_t k = 0; k < n; k++) {
			lo = VMC_MIN(lo, c->gran[g[k]].index);
			hi = VMC_MAX(hi, c->gran[g[k]].index + 1);
		}
		if (w->vm != VMC_NIL)
			err = window_sync(c, w->vm, lo, hi, 0);
		int e2 = file_back(c, g, n);
		err = err ? err : e2;
	}
	/* after a system error left the window empty: map the VM again */
	if (!err && w->attached != VMC_NIL && w->vm != w->attached)
		err = window_sync(c, w->attached, WINDOW_ALL, 0);
	if (s->cache_count > c->h.worker_cache)
		pool_drain(c, c->slot, c->h.worker_cache / 2);
	slot_unlock(c, c->slot);
	return err;
}
