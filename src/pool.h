/*
 * pool.h - granules, funding, the shared free list and worker caches.
 */
#ifndef VMC_POOL_H
#define VMC_POOL_H

#include "meta.h"

/* Record that granule e was last used by VM vm (zeroing decisions). */
static inline void gran_set_last(struct vmc *c, struct vmc_granule *e, uint32_t vm)
{
	e->last_vm = vm;
	e->last_inc = vm < c->h.max_vms ? (uint32_t)c->vms[vm].incarnation : 0;
}

/* 1 if granule e holds what VM vm (this incarnation of it) left in it. */
static inline int gran_is_from(struct vmc *c, const struct vmc_granule *e, uint32_t vm)
{
	return e->last_vm == vm && e->last_inc == (uint32_t)c->vms[vm].incarnation;
}

/* The pool lock, with the repair that rebuilds the free list, quarantine
 * list and counters from the granule table after a dead owner.  Waits are
 * bounded (lock.h). */
VMC_HIDDEN int pool_lock(struct vmc *c);
VMC_HIDDEN void pool_unlock(struct vmc *c);
VMC_HIDDEN void pool_lock_use(struct vmc *c, struct vmc_lock_use *u);

/* A worker slot's lock, with the repair that rebuilds its cache list.
 * slot_trylock: EBUSY at once if another owner holds it. */
VMC_HIDDEN int slot_lock(struct vmc *c, uint32_t slot);
VMC_HIDDEN int slot_trylock(struct vmc *c, uint32_t slot);
struct slot_repair { struct vmc *c; uint32_t slot; };
VMC_HIDDEN void slot_repair(void *arg);   /* rebuild a slot's lists from states */
VMC_HIDDEN void slot_lock_use(struct vmc *c, struct slot_repair *r, struct vmc_lock_use *u);
VMC_HIDDEN void slot_unlock(struct vmc *c, uint32_t slot);

/* Stop the world: (the balloon lock,) every slot lock in slot order, then
 * the pool lock: no worker is inside a pool or page-map change.  Call with
 * no container lock held.  Returns 0 or the error of a lock. */
VMC_HIDDEN int world_stop(struct vmc *c, int balloon);
VMC_HIDDEN void world_start(struct vmc *c, int balloon);

/* Set up the granule table of a new container: everything unfunded. */
VMC_HIDDEN void pool_init(struct vmc *c);

/* Fund n more granules, lowest holes first (balloon.c), with the balloon
 * lock held; `ondemand`: for a commit (fund.c), counted as such and with
 * no progress report.  Returns 0 or an errno; the granules funded so far
 * stay funded. */
VMC_HIDDEN int pool_fund(struct vmc *c, uint32_t n, int ondemand);
VMC_HIDDEN int balloon_lock(struct vmc *c);
VMC_HIDDEN void balloon_lock_use(struct vmc *c, struct vmc_lock_use *u);
VMC_HIDDEN void balloon_unlock(struct vmc *c);

/* Pop the head of the free list (VMC_NIL if empty). Pool lock. */
VMC_HIDDEN uint32_t pool_pop_free(struct vmc *c);

/* Take a granule for VM vm from this worker's cache (refilled from the
 * free list in a batch when empty).  It is marked used by vm, with no view
 * yet (index VMC_NIL) and G_DIRTY if it must be zeroed.  Needs the
 * caller's slot lock.  Returns 0 or VMC_EFUNDS. */
VMC_HIDDEN int pool_take(struct vmc *c, uint32_t vm, uint32_t *g);

/* Recycle before invalidate: take the granule VM vm released with
 * VMC_RELEASE_DEFER from window index `index`, where it is still mapped.
 * Returns 0, or ENOENT if there is none.  Slot lock. */
VMC_HIDDEN int pool_recycle(struct vmc *c, uint32_t vm, uint32_t index, uint32_t *g);

/* Put a used granule into this worker's cache (draining half of the cache
 * to the free list in a batch when it overflows).  Needs the slot lock. */
VMC_HIDDEN int pool_put(struct vmc *c, uint32_t g);

/* A used granule released with VMC_RELEASE_DEFER: onto this worker's
 * deferred list, still mapped at window index `index` of VM vm (kept in
 * its `owner` while deferred).  Slot lock. */
VMC_HIDDEN int pool_defer(struct vmc *c, uint32_t g, uint32_t vm, uint32_t index);

/* Take up to max granules off slot's deferred list into out[] (they stay
 * CACHED by the slot, on no list, until the caller files them with
 * pool_cache or quarantine_add).  Slot lock. */
VMC_HIDDEN uint32_t pool_undefer(struct vmc *c, uint32_t slot, uint32_t *out, uint32_t max);

/* File an unlisted cached granule of this worker in its cache. Slot lock. */
VMC_HIDDEN void pool_cache(struct vmc *c, uint32_t g);

/* Move all but `keep` of slot's cached granules to the free list.  Needs
 * that slot's lock. */
VMC_HIDDEN int pool_drain(struct vmc *c, uint32_t slot, uint32_t keep);

/* Push granule g (funded, on no list) onto the free list. Pool lock. */
VMC_HIDDEN void pool_free_granule(struct vmc *c, uint32_t g);

/* Take the cached granules of every worker back to the free list.  Call
 * with no slot lock held. */
VMC_HIDDEN int pool_drain_all(struct vmc *c);

/* Rebuild the free list, quarantine and counters from the granule table
 * (the pool lock's repair; also after taking granules out of the middle of
 * the free list).  Pool lock held. */
VMC_HIDDEN void pool_rebuild(struct vmc *c);

/* Count granules by state and put them in counts[G_NSTATES]. Pool lock. */
VMC_HIDDEN void pool_count(struct vmc *c, uint32_t counts[G_NSTATES]);

#endif
