/*
 * pool.c - the physical pool: 2 MiB granules and their states.
 *
 * Every granule is in exactly one state (invariant 5): unfunded (a hole in
 * the pool file), free (funded, on the shared free list), cached (on one
 * worker's local cache list), used (mapped by a VM) or quarantined.  The
 * per-granule state word is the truth; the lists and counters are derived
 * from it, which is what makes a dead lock owner repairable.
 *
 * Workers take and return granules through their own cache, a list kept in
 * their slot in shared memory so that a dead worker's cache can be found
 * and returned.  Only the owner touches its cache (under its slot lock,
 * uncontended), so take/put is a few stores; the shared free list and the
 * pool lock are touched once per batch, when the cache runs dry (refill)
 * or overflows (drain).
 */
#include "pool.h"
#include "fund.h"
#include "quarantine.h"
#include "vm.h"
#include "window.h"
#include "worker.h"

#include <errno.h>

/* A region made or freed half-way (its maker died holding the pool lock)
 * may leave granules used by a region entry that is free, or not in its
 * run: they are free. */
static void free_strays(struct vmc *c)
{
	for (uint32_t g = 0; g < c->h.ngranules; g++) {
		struct vmc_granule *e = &c->gran[g];
		uint32_t r = e->owner & ~REGION_OWNER;
		if (e->state != G_USED || !(e->owner & REGION_OWNER))
			continue;
		if (r < VMC_MAX_REGIONS && c->regions[r].state != REGION_FREE &&
		    g - c->regions[r].first < c->regions[r].ngran)
			continue;
		e->last_vm = LAST_REGION;   /* zeroed before a VM sees it */
		gran_state(e, G_FREE);
		e->owner = e->index = e->slot = VMC_NIL;
		e->views = 0;
		e->flags = 0;
	}
}

void pool_rebuild(struct vmc *c)
{
	struct vmc_meta *m = c->m;
	uint32_t qhead = VMC_NIL, qtail = VMC_NIL, nq = 0, nfree = 0, nunfunded = 0;

	m->free_head = VMC_NIL;
	for (uint32_t g = c->h.ngranules; g-- > 0;) {
		struct vmc_granule *e = &c->gran[g];
		/* a state entered, its old flags not yet cleared (the state byte
		 * goes first when leaving one): free and quarantined have none */
		if (e->state == G_FREE || e->state == G_QUARANTINED)
			e->flags = 0;
		if (e->state == G_FREE) {
			e->next = m->free_head;
			e->owner = VMC_NIL;
			m->free_head = g;
			nfree++;
		} else if (e->state == G_UNFUNDED) {
			nunfunded++;
		} else if (e->state == G_QUARANTINED) {
			e->next = qhead;
			qhead = g;
			if (qtail == VMC_NIL)
				qtail = g;
			nq++;
		}
	}
	m->quar_head = qhead;
	m->quar_tail = qtail;
	CNT_SET(&m->nquarantined, nq);
	CNT_SET(&m->nfree, nfree);
	CNT_SET(&m->nunfunded, nunfunded);
}

/* The pool lock's repair: its owner died anywhere in a pool change. */
static void pool_repair(void *arg)
{
	struct vmc *c = arg;

	free_strays(c);
	pool_rebuild(c);
	c->m->pm_top = vm_pm_top(c);   /* a VM made or destroyed half-way */
	/* a region made or freed half-way may have left the budget off */
	__atomic_store_n(&c->m->budget_stale, 1, __ATOMIC_RELEASE);
}

void pool_lock_use(struct vmc *c, struct vmc_lock_use *u)
{
	*u = (struct vmc_lock_use){ "pool lock", c->h.name, -1, pool_repair, c,
				    &c->m->cnt.lock_repairs };
}

int pool_lock(struct vmc *c)
{
	struct vmc_lock_use u;
	pool_lock_use(c, &u);
	return vmc_lock(&c->m->pool_lock, &u);
}

void pool_unlock(struct vmc *c)
{
	vmc_unlock(&c->m->pool_lock);
}

void slot_repair(void *arg)
{
	struct slot_repair *r = arg;
	struct vmc_slot *s = &r->c->slots[r->slot];

	s->cache_head = s->defer_head = VMC_NIL;
	s->cache_count = s->defer_count = 0;
	/* its worker may have died inside a charge (budget.c) */
	__atomic_store_n(&r->c->m->budget_stale, 1, __ATOMIC_RELEASE);
	for (uint32_t g = r->c->h.ngranules; g-- > 0;) {
		struct vmc_granule *e = &r->c->gran[g];
		if (e->state != G_CACHED || e->slot != r->slot)
			continue;
		if (e->flags & G_DEFERRED) {
			e->next = s->defer_head;
			s->defer_head = g;
			s->defer_count++;
		} else {
			e->next = s->cache_head;
			s->cache_head = g;
			s->cache_count++;
		}
	}
}

void slot_lock_use(struct vmc *c, struct slot_repair *r, struct vmc_lock_use *u)
{
	*u = (struct vmc_lock_use){ "slot lock", c->h.name, (int)r->slot, slot_repair, r,
				    &c->m->cnt.lock_repairs };
}

static int slot_lock_how(struct vmc *c, uint32_t slot, int try)
{
	struct slot_repair r = { c, slot };
	struct vmc_lock_use u;

	slot_lock_use(c, &r, &u);
	return try ? vmc_trylock(&c->slots[slot].lock, &u) : vmc_lock(&c->slots[slot].lock, &u);
}

int slot_lock(struct vmc *c, uint32_t slot)
{
	return slot_lock_how(c, slot, 0);
}

int slot_trylock(struct vmc *c, uint32_t slot)
{
	return slot_lock_how(c, slot, 1);
}

void slot_unlock(struct vmc *c, uint32_t slot)
{
	vmc_unlock(&c->slots[slot].lock);
}

int world_stop(struct vmc *c, int balloon)
{
	uint32_t locked = 0;
	int err;

	if (balloon && (err = balloon_lock(c)))
		return err;
	for (; locked < c->h.max_workers; locked++)
		if ((err = slot_lock(c, locked)))
			goto undo;
	if (!(err = pool_lock(c)))
		return 0;
undo:
	while (locked-- > 0)
		slot_unlock(c, locked);
	if (balloon)
		balloon_unlock(c);
	return err;
}

void world_start(struct vmc *c, int balloon)
{
	pool_unlock(c);
	for (uint32_t s = c->h.max_workers; s-- > 0;)
		slot_unlock(c, s);
	if (balloon)
		balloon_unlock(c);
}

void pool_init(struct vmc *c)
{
	for (uint32_t g = 0; g < c->h.ngranules; g++) {
		struct vmc_granule *e = &c->gran[g];
		gran_state(e, G_UNFUNDED);
		e->next = e->owner = e->index = e->last_vm = e->slot = VMC_NIL;
	}
	c->m->free_head = c->m->quar_head = c->m->quar_tail = VMC_NIL;
	CNT_SET(&c->m->nunfunded, c->h.ngranules);
}

void pool_free_granule(struct vmc *c, uint32_t g)
{
	struct vmc_granule *e = &c->gran[g];
	gran_state(e, G_FREE);   /* first: what the old state needed is garbage now */
	e->owner = e->index = e->slot = VMC_NIL;
	e->flags = 0;
	e->next = c->m->free_head;
	c->m->free_head = g;
	CNT_ADD(&c->m->nfree, 1);
}

/* Pop the head of the free list; VMC_NIL if empty or corrupt. Pool lock. */
uint32_t pool_pop_free(struct vmc *c)
{
	struct vmc_meta *m = c->m;
	uint32_t g = m->free_head;

	if (g >= c->h.ngranules || c->gran[g].state != G_FREE)
		return VMC_NIL;
	m->free_head = c->gran[g].next;
	CNT_ADD(&m->nfree, -1);
	return g;
}

/* Move up to k free granules into this worker's cache. Slot lock held. */
static int refill(struct vmc *c, struct vmc_slot *s, uint32_t k)
{
	uint32_t got = 0;
	int err;

	if ((err = pool_lock(c)))
		return err;
	if (c->m->nfree < k && c->m->nquarantined)
		quarantine_reap(c);
	for (uint32_t g; got < k && (g = pool_pop_free(c)) != VMC_NIL; got++) {
		struct vmc_granule *e = &c->gran[g];
		e->slot = c->slot;
		e->flags = 0;
		gran_state(e, G_CACHED);
		e->next = s->cache_head;
		s->cache_head = g;
		s->cache_count++;
	}
	pool_unlock(c);
	if (got) {
		__atomic_add_fetch(&c->m->cnt.cache_refills, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&s->refills, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

/* Make sure this worker's cache holds a granule. Slot lock held. */
static int ensure_cached(struct vmc *c, struct vmc_slot *s)
{
	uint32_t batch = VMC_MAX(c->h.worker_cache / 2, 1);
	int err;

	if (s->cache_head != VMC_NIL)
		return 0;
	if ((err = refill(c, s, batch)))
		return err;
	if (s->cache_head == VMC_NIL) {
		/* the free list is dry: a dead worker's cache may hold some */
		if ((err = workers_recover(c, NULL, 1)) || (err = refill(c, s, batch)))
			return err;
	}
	if (s->cache_head == VMC_NIL) {
		/* and so may live workers' caches: take them back, but only from
		 * workers not busy right now (we hold our own slot lock, so
		 * waiting for another could deadlock) */
		for (uint32_t o = 0; o < c->h.max_workers; o++) {
			if (o == c->slot || !c->slots[o].cache_count || slot_trylock(c, o))
				continue;
			err = pool_drain(c, o, 0);
			slot_unlock(c, o);
			if (err)
				return err;
		}
		if ((err = refill(c, s, batch)))
			return err;
	}
	if (s->cache_head == VMC_NIL) {
		char adv[320];
		return vmc_fail(VMC_EFUNDS, "no free funded granule is left (the others are "
				"committed, in quarantine or cached by busy workers): %s",
				funds_advice(c, adv, sizeof adv));
	}
	return 0;
}

/* CACHED (unlinked) -> USED by vm.  The state byte goes before the flags:
 * a deferred mark belongs to the old state. */
static void make_used(struct vmc_granule *e, uint32_t vm)
{
	e->next = VMC_NIL;
	e->owner = vm;
	e->index = VMC_NIL;
	e->views = 0;
	gran_state(e, G_USED);
	e->flags = e->last_vm == VMC_NIL ? 0 : G_DIRTY;
}

int pool_take(struct vmc *c, uint32_t vm, uint32_t *out)
{
	struct vmc_slot *s = &c->slots[c->slot];
	struct vmc_granule *e;
	uint32_t g;
	int err;

	if ((err = ensure_cached(c, s)))
		return err;
	g = s->cache_head;
	if (g >= c->h.ngranules || (e = &c->gran[g])->state != G_CACHED || e->slot != c->slot)
		return vmc_fail(VMC_ECORRUPT, "worker cache list is corrupt at granule %u", g);
	s->cache_head = e->next;
	s->cache_count--;
	make_used(e, vm);
	*out = g;
	return 0;
}

int pool_recycle(struct vmc *c, uint32_t vm, uint32_t index, uint32_t *out)
{
	struct vmc_slot *s = &c->slots[c->slot];
	uint32_t *link = &s->defer_head, n = 0, m = c->win->map[index];

	/* what the window still maps there is the only candidate */
	if (m >= c->h.ngranules || !(c->gran[m].flags & G_DEFERRED) || c->gran[m].slot != c->slot)
		return ENOENT;
	while (*link < c->h.ngranules && n++ < s->defer_count) {
		uint32_t g = *link;
		struct vmc_granule *e = &c->gran[g];
		if (e->index == index && e->owner == vm) {
			*link = e->next;
			s->defer_count--;
			make_used(e, vm);
			*out = g;
			return 0;
		}
		link = &e->next;
	}
	return ENOENT;
}

int pool_put(struct vmc *c, uint32_t g)
{
	struct vmc_slot *s = &c->slots[c->slot];
	struct vmc_granule *e;

	if (g >= c->h.ngranules || (e = &c->gran[g])->state != G_USED)
		return vmc_fail(EINVAL, "granule %u is not in use", g);
	/* a granule never zeroed still holds what its last user left in it */
	if (!(e->flags & G_DIRTY))
		gran_set_last(c, e, e->owner);
	e->slot = c->slot;
	e->flags = 0;
	gran_state(e, G_CACHED);
	e->owner = e->index = VMC_NIL;
	e->next = s->cache_head;
	s->cache_head = g;
	s->cache_count++;
	if (s->cache_count > c->h.worker_cache)
		return pool_drain(c, c->slot, c->h.worker_cache / 2);
	return 0;
}

int pool_drain(struct vmc *c, uint32_t slot, uint32_t keep)
{
	struct vmc_slot *s = &c->slots[slot];
	uint32_t moved = 0;
	int err;

	if (s->cache_count <= keep)
		return 0;
	if ((err = pool_lock(c)))
		return err;
	while (s->cache_count > keep) {
		uint32_t g = s->cache_head;
		if (g >= c->h.ngranules || c->gran[g].state != G_CACHED) {
			pool_unlock(c);
			return vmc_fail(VMC_ECORRUPT, "slot %u cache list is corrupt", slot);
		}
		s->cache_head = c->gran[g].next;
		s->cache_count--;
		pool_free_granule(c, g);
		moved++;
	}
	pool_unlock(c);
	if (moved) {
		__atomic_add_fetch(&c->m->cnt.cache_drains, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&s->drains, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

int pool_defer(struct vmc *c, uint32_t g, uint32_t vm, uint32_t index)
{
	struct vmc_slot *s = &c->slots[c->slot];
	struct vmc_granule *e = &c->gran[g];

	if (!(e->flags & G_DIRTY))
		gran_set_last(c, e, vm);
	e->slot = c->slot;
	e->index = index;
	e->flags = G_DEFERRED;
	gran_state(e, G_CACHED);
	e->owner = vm;   /* whose window still maps it (not always whose bytes) */
	e->next = s->defer_head;
	s->defer_head = g;
	s->defer_count++;
	return 0;
}

uint32_t pool_undefer(struct vmc *c, uint32_t slot, uint32_t *out, uint32_t max)
{
	struct vmc_slot *s = &c->slots[slot];
	uint32_t n = 0;

	while (n < max && s->defer_head < c->h.ngranules) {
		uint32_t g = s->defer_head;
		s->defer_head = c->gran[g].next;
		s->defer_count--;
		c->gran[g].next = VMC_NIL;   /* still G_DEFERRED until filed */
		out[n++] = g;
	}
	return n;
}

void pool_cache(struct vmc *c, uint32_t g)
{
	struct vmc_slot *s = &c->slots[c->slot];
	c->gran[g].flags = 0;
	c->gran[g].owner = c->gran[g].index = VMC_NIL;
	c->gran[g].next = s->cache_head;
	s->cache_head = g;
	s->cache_count++;
}

int pool_drain_all(struct vmc *c)
{
	for (uint32_t s = 0; s < c->h.max_workers; s++) {
		int err;
		if (!__atomic_load_n(&c->slots[s].cache_count, __ATOMIC_RELAXED))
			continue;
		if ((err = slot_lock(c, s)))
			return err;
		err = pool_drain(c, s, 0);
		slot_unlock(c, s);
		if (err)
			return err;
	}
	return 0;
}

void pool_count(struct vmc *c, uint32_t counts[G_NSTATES])
{
	for (int i = 0; i < G_NSTATES; i++)
		counts[i] = 0;
	for (uint32_t g = 0; g < c->h.ngranules; g++) {
		uint8_t st = __atomic_load_n(&c->gran[g].state, __ATOMIC_RELAXED);
		if (st < G_NSTATES)   /* validated at open; a bad byte counts nowhere */
			counts[st]++;
	}
}
