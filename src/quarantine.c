/*
 * quarantine.c - the epoch scheme behind invariant 3.
 *
 * In lazy mode a worker keeps its window mapped after detach.  If another
 * worker then attaches the same VM X and releases granule g, the first
 * worker's stale mapping still reaches g, so g must not be handed to any
 * VM Y until that mapping is gone.  Each slot publishes the VM its window
 * may map accessibly (window_vm) and the global epoch read after its last
 * change of the window (window_epoch).  Releasing g from X while some
 * other live slot has window_vm == X puts g in quarantine with tag
 * ++epoch.  g may leave quarantine once no live slot has
 * (window_vm == X && window_epoch < tag): every slot that could map g has
 * since replaced its window.  The VM a granule waits on (its `owner` while
 * quarantined) is the VM whose windows may map it, which is not always the
 * VM whose bytes it holds (`last_vm`): a granule never zeroed still holds
 * its previous user's.  A strict-mode detach revokes access and
 * publishes VMC_NIL; a dead worker's mappings died with it, and recovery
 * clears its slot.  A slot that publishes after its system calls cannot be
 * seen as "clean" while it still maps g: it published window_epoch before
 * the release (< tag), or after its window stopped showing g.
 */
#include "quarantine.h"
#include "pool.h"
#include "worker.h"

int quarantine_needed(struct vmc *c, uint32_t vm, int self)
{
	for (uint32_t s = 0; s < c->h.max_workers; s++)
		if ((self || s != c->slot) &&
		    __atomic_load_n(&c->slots[s].window_vm, __ATOMIC_SEQ_CST) == vm &&
		    __atomic_load_n(&c->slots[s].pid, __ATOMIC_RELAXED))
			return 1;
	return 0;
}

void quarantine_add(struct vmc *c, uint32_t g, uint32_t mapper)
{
	struct vmc_meta *m = c->m;
	struct vmc_granule *e = &c->gran[g];

	/* a used granule holds its owner's bytes, unless it was never zeroed:
	 * then still its previous user's (what last_vm says already) */
	if (e->state == G_USED && !(e->flags & G_DIRTY))
		gran_set_last(c, e, e->owner);
	e->epoch = __atomic_add_fetch(&m->epoch, 1, __ATOMIC_SEQ_CST);
	gran_state(e, G_QUARANTINED);
	e->flags = 0;
	e->owner = mapper;
	e->index = e->slot = VMC_NIL;
	e->next = VMC_NIL;
	if (m->quar_tail < c->h.ngranules)
		c->gran[m->quar_tail].next = g;
	else
		m->quar_head = g;
	m->quar_tail = g;
	CNT_ADD(&m->nquarantined, 1);
}

/* May g leave quarantine?  No liveness check here (it reads /proc: far too
 * slow for every release of a lazy container): a dead worker's slot blocks
 * until recovery frees it, which happens at the latest when the pool runs
 * dry (pool.c ensure_cached), so it never starves a commit. */
static int reachable(struct vmc *c, const struct vmc_granule *e)
{
	for (uint32_t s = 0; s < c->h.max_workers; s++) {
		struct vmc_slot *sl = &c->slots[s];
		if (__atomic_load_n(&sl->window_vm, __ATOMIC_SEQ_CST) == e->owner &&
		    __atomic_load_n(&sl->window_epoch, __ATOMIC_SEQ_CST) < e->epoch &&
		    __atomic_load_n(&sl->pid, __ATOMIC_RELAXED))
			return 1;
	}
	return 0;
}

uint32_t quarantine_reap(struct vmc *c)
{
	struct vmc_meta *m = c->m;
	uint32_t prev = VMC_NIL, g = m->quar_head, freed = 0;

	while (g < c->h.ngranules) {
		struct vmc_granule *e = &c->gran[g];
		uint32_t next = e->next;
		if (e->state != G_QUARANTINED || reachable(c, e)) {
			prev = g;
			g = next;
			continue;
		}
		if (prev == VMC_NIL)
			m->quar_head = next;
		else
			c->gran[prev].next = next;
		if (m->quar_tail == g)
			m->quar_tail = prev;
		CNT_ADD(&m->nquarantined, -1);
		pool_free_granule(c, g);
		freed++;
		g = next;
	}
	return freed;
}

void quarantine_publish(struct vmc *c, uint32_t vm)
{
	struct vmc_slot *sl = &c->slots[c->slot];
	__atomic_store_n(&sl->window_vm, vm, __ATOMIC_SEQ_CST);
	__atomic_store_n(&sl->window_epoch, __atomic_load_n(&c->m->epoch, __ATOMIC_SEQ_CST),
			 __ATOMIC_SEQ_CST);
}
