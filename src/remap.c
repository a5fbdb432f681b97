/*
 * remap.c - the mapping engine: commit, release, move, alias and protect
 * on a VM's page map, applied to the window with the fewest system calls.
 *
 * Every operation, alone or in a batch, runs in three steps:
 *  1. a dry run on a scratch copy of the touched part of the page map,
 *     which validates every operation in order and counts the granules the
 *     commits need, so a batch is all or nothing;
 *  2. the granules are taken (this worker's deferred list first, then its
 *     local cache: no shared lock in the common case) and the operations
 *     run for real on the page map, where they cannot fail;
 *  3. one window_sync over the touched span maps the result: adjacent runs
 *     coalesce, so N moves of contiguous ranges cost O(1) system calls, and
 *     a granule recycled where it is still mapped costs none.  New granules
 *     are zeroed unless fresh (invariant 4); released ones go to this
 *     worker's cache, or to quarantine while another worker may still map
 *     them (invariant 3), or stay mapped on the deferred list
 *     (VMC_RELEASE_DEFER) until a flush.
 * A crash at any point leaves the page map as the truth; recovery
 * (vm_repair) puts granules in flight back.
 */
#include "remap.h"
#include "backing.h"
#include "container.h"
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

/* Growable array of uint32_t with a small inline buffer: no malloc for the
 * single-granule operations of the hot path. */
struct u32v {
	uint32_t *v, n, cap;
	uint32_t small[16];
};

static void u32v_init(struct u32v *a)
{
	a->v = a->small;
	a->n = 0;
	a->cap = 16;
}

static int u32v_push(struct u32v *a, uint32_t x)
{
	if (a->n == a->cap) {
		uint32_t *v = a->v == a->small ? malloc(a->cap * 2 * sizeof *v)
					       : realloc(a->v, a->cap * 2 * sizeof *v);
		if (!v)
			return vmc_fail(ENOMEM, "out of memory");
		if (a->v == a->small)
			memcpy(v, a->small, sizeof a->small);
		a->v = v;
		a->cap *= 2;
	}
	a->v[a->n++] = x;
	return 0;
}

static void u32v_free(struct u32v *a)
{
	if (a->v != a->small)
		free(a->v);
}

/* One run of the engine over VM vm. */
struct run {
	struct vmc *c;
	uint32_t vm;
	uint32_t *e;         /* entries: e[i - lo] is index i                     */
	uint32_t lo, hi;     /* the span the operations touch                     */
	int real;            /* 0: dry run on a scratch copy; 1: the page map      */
	uint32_t need;       /* dry: granules the commits take                    */
	struct u32v at;      /* dry: the window index of each of them, in order    */
	struct u32v got;     /* granules taken, handed out by the commits in order */
	uint32_t used;
	struct u32v fresh;   /* real: (granule, commit flags) pairs of new commits  */
	struct u32v freed;   /* real: (granule, index << 1 | defer) pairs whose last
			      * view went                                        */
};

#define E(r, i) ((r)->e[(i) - (r)->lo])

static int uncommitted(const struct vmc_op *op, uint32_t i)
{
	return vmc_fail(VMC_EUNCOMMITTED, "%s: window offset %#llx is not committed",
			vmc_op_name(op->kind), (unsigned long long)i << VMC_GRANULE_SHIFT);
}

static int op_commit(struct run *r, const struct vmc_op *op)
{
	struct vmc_granule *g;
	for (uint32_t i = op->from; i < op->from + op->n; i++) {
		if (E(r, i) != VMC_NIL)
			continue;
		if (!r->real) {
			E(r, i) = 0;   /* committed, as far as later operations can tell */
			r->need++;
			if (u32v_push(&r->at, i))
				return ENOMEM;
			continue;
		}
		uint32_t gn = r->got.v[r->used++];
		g = &r->c->gran[gn];
		g->index = i;
		g->views = 1;
		E(r, i) = gn;
		if (u32v_push(&r->fresh, gn) || u32v_push(&r->fresh, op->flags))
			return ENOMEM;
	}
	return 0;
}

/* A primary view went while aliases remain: the first alias becomes it. */
static void promote_alias(struct run *r, uint32_t gn)
{
	uint32_t *map = vm_pagemap(r->c, r->vm);
	for (uint32_t j = 0; j < r->c->h.window_granules; j++)
		if (map[j] != VMC_NIL && (map[j] & PM_ALIAS) && (map[j] & PM_GRANULE) == gn) {
			map[j] &= ~PM_ALIAS;
			r->c->gran[gn].index = j;
			return;
		}
}

static int op_release(struct run *r, const struct vmc_op *op)
{
	for (uint32_t i = op->from; i < op->from + op->n; i++) {
		uint32_t e = E(r, i);
		if (e == VMC_NIL) {
			if (op->flags & OPF_SKIP_HOLES)
				continue;
			return uncommitted(op, i);
		}
		E(r, i) = VMC_NIL;
		if (!r->real)
			continue;
		uint32_t gn = e & PM_GRANULE;
		struct vmc_granule *g = &r->c->gran[gn];
		if (--g->views) {
			if (!(e & PM_ALIAS))
				promote_alias(r, gn);
			continue;
		}
		if (u32v_push(&r->freed, gn) ||
		    u32v_push(&r->freed, i << 1 | !!(op->flags & VMC_RELEASE_DEFER)))
			return ENOMEM;
	}
	return 0;
}

/* Move and alias: `from` committed; `to` free (for a move, apart from
 * where it overlaps `from`). */
static int check_pair(struct run *r, const struct vmc_op *op)
{
	for (uint32_t k = 0; k < op->n; k++) {
		if (E(r, op->from + k) == VMC_NIL)
			return uncommitted(op, op->from + k);
		uint32_t t = op->to + k;
		int in_from = t >= op->from && t < op->from + op->n;
		if (op->kind == VMC_OP_ALIAS && in_from)
			return vmc_fail(EINVAL, "vmc_alias: the ranges overlap");
		if (!in_from && E(r, t) != VMC_NIL)
			return vmc_fail(EEXIST, "%s: window offset %#llx is committed already",
					vmc_op_name(op->kind), (unsigned long long)t << VMC_GRANULE_SHIFT);
		if (op->kind == VMC_OP_ALIAS && r->c->gran[E(r, op->from + k) & PM_GRANULE].views
					       == UINT16_MAX && r->real)
			return vmc_fail(EMLINK, "vmc_alias: too many views of one granule");
	}
	return 0;
}

static int op_move(struct run *r, const struct vmc_op *op)
{
	struct u32v tmp;
	int err = check_pair(r, op);

	if (err)
		return err;
	u32v_init(&tmp);
	for (uint32_t k = 0; k < op->n && !err; k++)
		err = u32v_push(&tmp, E(r, op->from + k));
	for (uint32_t k = 0; k < op->n && !err; k++)
		E(r, op->from + k) = VMC_NIL;
	for (uint32_t k = 0; k < op->n && !err; k++) {
		uint32_t e = tmp.v[k];
		E(r, op->to + k) = e;
		if (r->real && !(e & PM_ALIAS))
			r->c->gran[e & PM_GRANULE].index = op->to + k;
	}
	u32v_free(&tmp);
	return err;
}

static int op_alias(struct run *r, const struct vmc_op *op)
{
	int err = check_pair(r, op);
	if (err)
		return err;
	for (uint32_t k = 0; k < op->n; k++) {
		uint32_t e = E(r, op->from + k);
		E(r, op->to + k) = (e & (PM_GRANULE | PM_PROT_MASK)) | PM_ALIAS;
		if (r->real)
			r->c->gran[e & PM_GRANULE].views++;
	}
	return 0;
}

static int op_protect(struct run *r, const struct vmc_op *op)
{
	for (uint32_t i = op->from; i < op->from + op->n; i++) {
		if (E(r, i) == VMC_NIL)
			return uncommitted(op, i);
		E(r, i) = (E(r, i) & ~PM_PROT_MASK) | (uint32_t)op->flags << PM_PROT_SHIFT;
	}
	return 0;
}

static int run_ops(struct run *r, const struct vmc_op *ops, uint32_t n)
{
	static int (*const fn[])(struct run *, const struct vmc_op *) = {
		[VMC_OP_COMMIT] = op_commit, [VMC_OP_RELEASE] = op_release,
		[VMC_OP_MOVE] = op_move, [VMC_OP_ALIAS] = op_alias,
		[VMC_OP_PROTECT] = op_protect,
	};
	for (uint32_t k = 0; k < n; k++) {
		int err = fn[ops[k].kind](r, &ops[k]);
		if (err)
			return err;
	}
	return 0;
}

/* The container-wide budget (reserve fund): non-reserve commits leave
 * reserve_size funded bytes for VMC_COMMIT_RESERVE.  *from_reserve gets
 * how many of the n come out of the reserve. */
static int charge(struct vmc *c, uint32_t n, int reserve, uint32_t *from_reserve)
{
	uint32_t funded = c->h.ngranules - __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
	uint32_t rsv = (uint32_t)(c->h.reserve_size >> VMC_GRANULE_SHIFT);
	uint32_t budget = funded > rsv ? funded - rsv : 0;
	uint32_t cur = __atomic_load_n(&c->m->committed, __ATOMIC_RELAXED);

	do {
		if (cur + n > (reserve ? funded : budget))
			return vmc_fail(VMC_EFUNDS, "%u granules needed, %u of the %u funded are "
					"committed%s: release memory or deflate the balloon "
					"(`vmcctl balloon %s 0`)", n, cur, funded, reserve ? "" :
					" and the rest is the reserve fund (VMC_COMMIT_RESERVE)",
					c->h.name);
	} while (!__atomic_compare_exchange_n(&c->m->committed, &cur, cur + n, 0,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	*from_reserve = cur + n > budget ? VMC_MIN(n, cur + n - budget) : 0;
	return 0;
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
 * cache. */
static int hand_back(struct run *r)
{
	int q = -1, err = 0, locked = 0;

	for (uint32_t k = 0; k < r->freed.n; k += 2) {
		uint32_t g = r->freed.v[k];
		if (g == VMC_NIL)
			continue;
		if (q < 0)   /* a scan of the slots: only when something goes back */
			q = quarantine_needed(r->c, r->vm);
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

/* Is granule g still committed to the run's VM (not released again by a
 * later operation of the same batch)? */
static int still_ours(struct run *r, uint32_t g)
{
	const struct vmc_granule *e = &r->c->gran[g];
	return e->state == G_USED && e->owner == r->vm && e->views;
}

/* New granules: zero those that held data (invariant 4), through the
 * window where it maps them read-write, else through a temporary mapping;
 * populate on request.  A granule a later operation of the batch released
 * again keeps its mark, so whoever takes it next zeroes it. */
static int zero_and_populate(struct run *r)
{
	struct vmc *c = r->c;
	int err = 0;

	for (uint32_t k = 0; k < r->fresh.n; k += 2) {
		uint32_t g = r->fresh.v[k], flags = r->fresh.v[k + 1];
		struct vmc_granule *e = &c->gran[g];
		if (g == VMC_NIL || !still_ours(r, g))
			continue;
		uint32_t i = e->index;
		int open = c->win->vm == r->vm && c->win->map[i] == g &&
			   c->win->prot[i] == (PROT_READ | PROT_WRITE);
		if ((e->flags & G_DIRTY) && !((flags & VMC_COMMIT_NOZERO) && gran_is_from(c, e, r->vm))) {
			if (open)
				memset(window_addr(c, i), 0, VMC_GRANULE_SIZE);
			else if ((err = backing_zero(c, g)))
				continue;   /* stays marked: reclaim or the next taker zeroes it */
		} else if ((flags & VMC_COMMIT_POPULATE) && open) {
			os_madvise(window_addr(c, i), VMC_GRANULE_SIZE, MADV_POPULATE_WRITE);
		}
		e->flags &= (uint8_t)~G_DIRTY;
		gran_set_last(c, e, r->vm);
	}
	return err;
}

/* The window could not show the new commits: undo those still in the page
 * map alone (they were never zeroed) and their accounting. */
static void undo_fresh(struct run *r, struct vmc_vm *vm, uint32_t old_hwm, uint32_t reserve)
{
	uint32_t *map = vm_pagemap(r->c, r->vm), undone = 0;
	for (uint32_t k = 0; k < r->fresh.n; k += 2) {
		uint32_t g = r->fresh.v[k];
		struct vmc_granule *e = &r->c->gran[g];
		if (!still_ours(r, g) || e->views != 1 ||
		    (map[e->index] & (PM_GRANULE | PM_ALIAS)) != g)
			continue;
		map[e->index] = VMC_NIL;
		pool_put(r->c, g);
		r->fresh.v[k] = VMC_NIL;
		undone++;
	}
	vm->committed -= undone;
	vm->reserve_used -= VMC_MIN(VMC_MIN(reserve, undone), vm->reserve_used);
	vm->hwm = VMC_MAX(old_hwm, vm->committed);
	__atomic_sub_fetch(&r->c->m->committed, undone, __ATOMIC_RELAXED);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Take a granule for each index in r->at: the one this VM deferred there if
 * any (no system call: it is still mapped), else from the cache, handed
 * out in ascending order so that contiguous indices get contiguous
 * granules and map in one call.  All or nothing. Slot lock. */
static int take_granules(struct run *r)
{
	struct vmc *c = r->c;
	struct u32v fresh;
	uint32_t misses = 0, m = 0;
	int err = 0;

	u32v_init(&fresh);
	for (uint32_t k = 0; k < r->at.n && !err; k++) {
		uint32_t g = VMC_NIL;
		if (pool_recycle(c, r->vm, r->at.v[k], &g))
			misses++;
		err = u32v_push(&r->got, g);
	}
	for (uint32_t k = 0; k < misses && !err; k++) {
		uint32_t g;
		if (!(err = pool_take(c, r->vm, &g)))
			err = u32v_push(&fresh, g);
	}
	if (!err) {
		qsort(fresh.v, fresh.n, sizeof *fresh.v, cmp_u32);
		for (uint32_t k = 0; k < r->got.n; k++)
			if (r->got.v[k] == VMC_NIL)
				r->got.v[k] = fresh.v[m++];
	} else {
		for (uint32_t k = 0; k < fresh.n; k++)
			pool_put(c, fresh.v[k]);
		for (uint32_t k = 0; k < r->got.n; k++)   /* still mapped: deferred again */
			if (r->got.v[k] != VMC_NIL)
				pool_defer(c, r->got.v[k], r->vm, r->at.v[k]);
	}
	u32v_free(&fresh);
	return err;
}

static void span_of(const struct vmc_op *ops, uint32_t n, uint32_t *lo, uint32_t *hi)
{
	*lo = UINT32_MAX;
	*hi = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t a = ops[k].from, b = ops[k].from + ops[k].n;
		if (ops[k].kind == VMC_OP_MOVE || ops[k].kind == VMC_OP_ALIAS) {
			a = VMC_MIN(a, ops[k].to);
			b = VMC_MAX(b, ops[k].to + ops[k].n);
		}
		*lo = VMC_MIN(*lo, a);
		*hi = VMC_MAX(*hi, b);
	}
}

int remap_run(struct vmc *c, uint32_t vm_id, const struct vmc_op *ops, uint32_t n)
{
	struct vmc_vm *vm = &c->vms[vm_id];
	uint32_t *map = vm_pagemap(c, vm_id), from_reserve = 0, freed, old_hwm;
	struct run r = { .c = c, .vm = vm_id };
	struct u32v scratch;
	int err = 0, reserve = 0;

	if (!n)
		return 0;
	/* a system error left the window without the attached VM: show it
	 * again first, or nothing new can be zeroed through it */
	if (c->win->attached == vm_id && c->win->vm != vm_id &&
	    (err = window_sync(c, vm_id, WINDOW_ALL, 1)))
		return err;
	span_of(ops, n, &r.lo, &r.hi);
	u32v_init(&scratch);
	u32v_init(&r.at);
	u32v_init(&r.got);
	u32v_init(&r.fresh);
	u32v_init(&r.freed);
	for (uint32_t i = r.lo; i < r.hi && !err; i++)
		err = u32v_push(&scratch, map[i]);
	r.e = scratch.v;
	if (err || (err = run_ops(&r, ops, n)))
		goto out;
	/* limits count the commits of the batch, not what it releases too */
	if (r.need && (uint64_t)(vm->committed + r.need) << VMC_GRANULE_SHIFT > vm->limit) {
		err = vmc_fail(VMC_ELIMIT, "VM %s: committing %u more granules would exceed "
			       "its limit of %llu MiB (%u MiB committed)", vm->name, r.need,
			       (unsigned long long)(vm->limit >> 20), vm->committed * 2);
		goto out;
	}
	for (uint32_t k = 0; k < n; k++)
		reserve |= ops[k].kind == VMC_OP_COMMIT && (ops[k].flags & VMC_COMMIT_RESERVE);
	if (r.need && (err = charge(c, r.need, reserve, &from_reserve)))
		goto out;
	if ((err = slot_lock(c, c->slot)))
		goto uncharge;
	err = take_granules(&r);
	if (err == VMC_EFUNDS && c->slots[c->slot].defer_count) {
		/* the granules this worker keeps deferred are the last ones:
		 * end the deferral and try once more */
		slot_unlock(c, c->slot);
		r.got.n = 0;
		if ((err = remap_flush(c)) || (err = slot_lock(c, c->slot)))
			goto uncharge;
		err = take_granules(&r);
	}
	if (err) {
		slot_unlock(c, c->slot);
		goto uncharge;
	}
	/* for real: nothing below fails but the system calls */
	r.real = 1;
	r.e = map;
	r.lo = 0;
	run_ops(&r, ops, n);
	freed = r.freed.n / 2;
	old_hwm = vm->hwm;
	vm->committed = vm->committed + r.need - freed;
	vm->reserve_used += from_reserve;
	vm->reserve_used -= VMC_MIN(vm->reserve_used, freed);
	if (vm->committed > vm->hwm)
		vm->hwm = vm->committed;
	__atomic_sub_fetch(&c->m->committed, freed, __ATOMIC_RELAXED);
	__atomic_add_fetch(&vm->gen, 1, __ATOMIC_RELEASE);
	if (c->win->vm == vm_id) {
		defer_released(&r);
		span_of(ops, n, &r.lo, &r.hi);
		if ((err = window_sync(c, vm_id, r.lo, r.hi, 1))) {
			undo_fresh(&r, vm, old_hwm, from_reserve);
			window_sync(c, vm_id, WINDOW_ALL, 1);   /* best effort */
		}
	}
	int e2 = zero_and_populate(&r), e3 = hand_back(&r);
	err = err ? err : e2 ? e2 : e3;
	slot_unlock(c, c->slot);
	goto out;
uncharge:
	if (r.need)
		__atomic_sub_fetch(&c->m->committed, r.need, __ATOMIC_RELAXED);
out:
	u32v_free(&scratch);
	u32v_free(&r.at);
	u32v_free(&r.got);
	u32v_free(&r.fresh);
	u32v_free(&r.freed);
	return err;
}

/* File unlisted cached granules g[0..n) that VM vm's window no longer
 * shows: quarantine while another worker may map vm, else our cache. */
static int file_back(struct vmc *c, const uint32_t *g, uint32_t n)
{
	int err = 0, locked = 0;
	for (uint32_t k = 0; k < n; k++) {
		struct vmc_granule *e = &c->gran[g[k]];
		e->index = VMC_NIL;
		if (!quarantine_needed(c, e->last_vm)) {
			pool_cache(c, g[k]);
			continue;
		}
		if (!locked && (err = pool_lock(c)))
			return err;
		locked = 1;
		quarantine_add(c, g[k], e->last_vm);
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
