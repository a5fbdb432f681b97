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
#include "backing.h"
#include "quarantine.h"
#include "worker.h"

#include <errno.h>
#include <stdlib.h>

#define FUND_CHUNK 64u   /* granules funded or unfunded per pool-lock hold */

static void pool_repair(void *arg)
{
	struct vmc *c = arg;
	struct vmc_meta *m = c->m;
	uint32_t qhead = VMC_NIL, qtail = VMC_NIL, nq = 0;

	m->free_head = VMC_NIL;
	m->nfree = m->nunfunded = 0;
	for (uint32_t g = c->h.ngranules; g-- > 0;) {
		struct vmc_granule *e = &c->gran[g];
		if (e->state == G_FREE) {
			e->next = m->free_head;
			e->owner = VMC_NIL;
			m->free_head = g;
			m->nfree++;
		} else if (e->state == G_UNFUNDED) {
			m->nunfunded++;
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
	m->nquarantined = nq;
	/* the dead owner may have died inside a fallocate: punch the holes
	 * again so that no memory stays allocated behind an unfunded granule */
	for (uint32_t g = 0, run; g < c->h.ngranules; g += run ? run : 1) {
		for (run = 0; g + run < c->h.ngranules &&
			      c->gran[g + run].state == G_UNFUNDED; run++)
			;
		if (run)
			backing_unfund(c, g, run);
	}
}

int pool_lock(struct vmc *c)
{
	return vmc_lock(&c->m->pool_lock, pool_repair, c, &c->m->cnt.lock_repairs);
}

void pool_unlock(struct vmc *c)
{
	vmc_unlock(&c->m->pool_lock);
}

struct slot_repair { struct vmc *c; uint32_t slot; };

static void slot_repair(void *arg)
{
	struct slot_repair *r = arg;
	struct vmc_slot *s = &r->c->slots[r->slot];

	s->cache_head = VMC_NIL;
	s->cache_count = 0;
	for (uint32_t g = r->c->h.ngranules; g-- > 0;) {
		struct vmc_granule *e = &r->c->gran[g];
		if (e->state == G_CACHED && e->owner == r->slot) {
			e->next = s->cache_head;
			s->cache_head = g;
			s->cache_count++;
		}
	}
}

int slot_lock(struct vmc *c, uint32_t slot)
{
	struct slot_repair r = { c, slot };
	return vmc_lock(&c->slots[slot].lock, slot_repair, &r, &c->m->cnt.lock_repairs);
}

void slot_unlock(struct vmc *c, uint32_t slot)
{
	vmc_unlock(&c->slots[slot].lock);
}

void pool_init(struct vmc *c)
{
	for (uint32_t g = 0; g < c->h.ngranules; g++) {
		struct vmc_granule *e = &c->gran[g];
		e->state = G_UNFUNDED;
		e->next = e->owner = e->index = e->last_vm = VMC_NIL;
	}
	c->m->free_head = c->m->quar_head = c->m->quar_tail = VMC_NIL;
	c->m->nunfunded = c->h.ngranules;
}

void pool_free_granule(struct vmc *c, uint32_t g)
{
	struct vmc_granule *e = &c->gran[g];
	e->owner = e->index = VMC_NIL;
	e->next = c->m->free_head;
	c->m->free_head = g;
	e->state = G_FREE;
	c->m->nfree++;
}

/* Pop the head of the free list; VMC_NIL if empty or corrupt. Pool lock. */
static uint32_t pop_free(struct vmc *c)
{
	struct vmc_meta *m = c->m;
	uint32_t g = m->free_head;

	if (g >= c->h.ngranules || c->gran[g].state != G_FREE)
		return VMC_NIL;
	m->free_head = c->gran[g].next;
	m->nfree--;
	return g;
}

static void count_op(uint64_t *ops, uint64_t *granules, uint32_t n)
{
	__atomic_add_fetch(ops, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(granules, n, __ATOMIC_RELAXED);
}

/* Under the pool lock: fund up to `want` holes, as runs of contiguous
 * granules. *done += granules funded. */
static int fund_chunk(struct vmc *c, uint32_t want, uint32_t *done)
{
	uint32_t g = 0, ng = c->h.ngranules;
	int err = 0;

	while (want && !err) {
		uint32_t run = 0;
		while (g < ng && c->gran[g].state != G_UNFUNDED)
			g++;
		if (g == ng)
			break;
		while (g + run < ng && run < want && c->gran[g + run].state == G_UNFUNDED)
			run++;
		err = backing_fund(c, g, run);
		if (err)
			break;
		for (uint32_t i = 0; i < run; i++)
			pool_free_granule(c, g + i);
		c->m->nunfunded -= run;
		count_op(&c->m->cnt.fund_ops, &c->m->cnt.fund_granules, run);
		*done += run;
		want -= run;
		g += run;
	}
	return err;
}

static void progress(struct vmc *c, uint32_t done, uint32_t total)
{
	if (c->progress)
		c->progress(c->progress_arg, (uint64_t)done << VMC_GRANULE_SHIFT,
			    (uint64_t)total << VMC_GRANULE_SHIFT);
}

int pool_fund(struct vmc *c, uint32_t n)
{
	uint32_t done = 0;
	int err;

	if (n > c->m->nunfunded)
		return vmc_fail(VMC_EFUNDS, "cannot fund %u granules: only %u of the pool's %u "
				"are unfunded", n, c->m->nunfunded, c->h.ngranules);
	if ((err = backing_precheck((int)c->h.page_kind,
				    c->h.flags & META_POOL_MEMFD ? -1 : c->pool_fd, n)))
		return err;
	while (done < n) {
		uint32_t before = done;
		if ((err = pool_lock(c)))
			return err;
		err = fund_chunk(c, VMC_MIN(FUND_CHUNK, n - done), &done);
		pool_unlock(c);
		progress(c, done, n);
		if (err)
			return err;
		if (done == before)
			return vmc_fail(VMC_EFUNDS, "no unfunded granules left to fund");
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Under the pool lock: unfund up to `want` free granules, sorted so that
 * contiguous ones go back in one hole punch. */
static int unfund_chunk(struct vmc *c, uint32_t want, uint32_t *done)
{
	uint32_t pick[FUND_CHUNK], n = 0, i = 0;
	int err = 0;

	while (n < want && (pick[n] = pop_free(c)) != VMC_NIL)
		n++;
	qsort(pick, n, sizeof *pick, cmp_u32);
	while (i < n) {
		uint32_t run = 1;
		while (i + run < n && pick[i + run] == pick[i] + run)
			run++;
		if (!err)
			err = backing_unfund(c, pick[i], run);
		for (uint32_t k = i; k < i + run; k++) {
			if (err) {
				pool_free_granule(c, pick[k]);
				continue;
			}
			c->gran[pick[k]].state = G_UNFUNDED;
			c->gran[pick[k]].next = VMC_NIL;
			c->gran[pick[k]].last_vm = VMC_NIL;   /* a hole reads as zero */
		}
		if (!err) {
			c->m->nunfunded += run;
			*done += run;
			count_op(&c->m->cnt.unfund_ops, &c->m->cnt.unfund_granules, run);
		}
		i += run;
	}
	return err;
}

/* Take the cached granules of every worker back to the free list. */
static int drain_all_caches(struct vmc *c)
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

int pool_unfund(struct vmc *c, uint32_t n, uint32_t *done)
{
	int err = 0, drained = 0;

	*done = 0;
	while (*done < n) {
		uint32_t before = *done;
		if ((err = pool_lock(c)))
			return err;
		err = unfund_chunk(c, VMC_MIN(FUND_CHUNK, n - *done), done);
		pool_unlock(c);
		if (err)
			return err;
		if (*done == before) {
			if (drained++)
				return vmc_fail(VMC_EFUNDS, "only %u of %u granules could be "
						"unfunded: the rest are in use", *done, n);
			if ((err = drain_all_caches(c)))
				return err;
		}
	}
	return 0;
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
	for (uint32_t g; got < k && (g = pop_free(c)) != VMC_NIL; got++) {
		struct vmc_granule *e = &c->gran[g];
		e->owner = c->slot;
		e->state = G_CACHED;
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

int pool_take(struct vmc *c, uint32_t vm, uint32_t index, uint32_t *out)
{
	struct vmc_slot *s = &c->slots[c->slot];
	struct vmc_granule *e;
	uint32_t g;
	int err;

	if (s->cache_head == VMC_NIL) {
		uint32_t batch = VMC_MAX(c->h.worker_cache / 2, 1);
		if ((err = refill(c, s, batch)))
			return err;
		if (s->cache_head == VMC_NIL) {
			/* the free list is dry: a dead worker's cache may hold some */
			if ((err = workers_recover(c, NULL)) || (err = refill(c, s, batch)))
				return err;
		}
		if (s->cache_head == VMC_NIL)
			return vmc_fail(VMC_EFUNDS, "the pool has no free funded granule "
					"(%u unfunded of %u): deflate the balloon "
					"(`vmcctl balloon %s 0`)", c->m->nunfunded,
					c->h.ngranules, c->h.name);
	}
	g = s->cache_head;
	if (g >= c->h.ngranules || (e = &c->gran[g])->state != G_CACHED || e->owner != c->slot)
		return vmc_fail(VMC_ECORRUPT, "worker cache list is corrupt at granule %u", g);
	s->cache_head = e->next;
	s->cache_count--;
	e->next = VMC_NIL;
	e->owner = vm;
	e->index = index;
	e->state = G_USED;
	*out = g;
	return 0;
}

int pool_put(struct vmc *c, uint32_t g)
{
	struct vmc_slot *s = &c->slots[c->slot];
	struct vmc_granule *e;

	if (g >= c->h.ngranules || (e = &c->gran[g])->state != G_USED)
		return vmc_fail(EINVAL, "granule %u is not in use", g);
	e->last_vm = e->owner;
	e->owner = c->slot;
	e->index = VMC_NIL;
	e->next = s->cache_head;
	e->state = G_CACHED;
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

void pool_count(struct vmc *c, uint32_t counts[G_NSTATES])
{
	for (int i = 0; i < G_NSTATES; i++)
		counts[i] = 0;
	for (uint32_t g = 0; g < c->h.ngranules; g++) {
		uint8_t st = __atomic_load_n(&c->gran[g].state, __ATOMIC_RELAXED);
		counts[st < G_NSTATES ? st : G_FREE]++;
	}
}
