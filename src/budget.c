/*
 * budget.c - the commit budget, Azul-style.  The container has `funded`
 * granules; `committed` counts those that VMs and regions hold.  A commit
 * first charges the budget, then takes granules: non-reserve commits must
 * leave reserve_size funded bytes for the pause-prevention reserve fund,
 * which only VMC_COMMIT_RESERVE may draw on.
 *
 * The counter is one atomic word that every worker updates without a
 * shared lock, so it cannot be derived on every commit; instead it is kept
 * exact where it can be checked.  A worker charges with its own slot lock
 * held and keeps it until the granules are in the VM's page map (or the
 * charge is given back), so with every slot lock held (vmc_check) the
 * counter equals what the page maps and regions hold.  A worker that dies
 * inside a charge dies holding its slot lock; the lock's repair marks the
 * budget stale, and the next charge (or vmc_recover) stops the world and
 * counts again from the page maps, so a crash never leaks budget.
 */
#include "budget.h"
#include "fund.h"
#include "pool.h"
#include "vm.h"

int budget_charge(struct vmc *c, uint32_t n, int reserve, uint32_t *from_reserve)
{
	uint32_t funded = c->h.ngranules - __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
	uint32_t rsv = (uint32_t)(c->h.reserve_size >> GSHIFT(c));
	uint32_t budget = funded > rsv ? funded - rsv : 0;
	uint32_t cur = __atomic_load_n(&c->m->committed, __ATOMIC_RELAXED);

	char adv[320];

	do {
		if (cur + n <= (reserve ? funded : budget))
			continue;
		/* the reserve fund is named only where it is what stands in the way */
		if (!reserve && rsv && cur + n <= funded)
			return vmc_fail(VMC_EFUNDS, "%u granules needed: %u of the %u funded "
					"are committed and the other %u are the reserve fund, "
					"which only VMC_COMMIT_RESERVE may use; %s", n, cur,
					funded, funded - cur, funds_advice(c, adv, sizeof adv));
		return vmc_fail(VMC_EFUNDS, "%u granules needed, %u of the %u funded are "
				"committed: %s", n, cur, funded, funds_advice(c, adv, sizeof adv));
	} while (!__atomic_compare_exchange_n(&c->m->committed, &cur, cur + n, 0,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	*from_reserve = cur + n > budget ? VMC_MIN(n, cur + n - budget) : 0;
	return 0;
}

void budget_uncharge(struct vmc *c, uint32_t n)
{
	__atomic_sub_fetch(&c->m->committed, n, __ATOMIC_RELAXED);
}

/* Primary page-map entries of VM v. */
static uint32_t primaries(struct vmc *c, uint32_t v)
{
	const uint32_t *map = vm_pagemap(c, v);
	uint32_t n = 0;

	for (uint32_t i = 0; i < vm_span(c, v); i++)
		n += map[i] != VMC_NIL && !(map[i] & PM_ALIAS);
	return n;
}

uint32_t budget_count(struct vmc *c)
{
	uint32_t n = 0;

	for (uint32_t g = 0; g < c->h.ngranules; g++)
		n += c->gran[g].state == G_USED && (c->gran[g].owner & REGION_OWNER);
	for (uint32_t v = 0; v < c->h.max_vms; v++)
		if (VM_STATE(c->vms[v].own) != VM_FREE)
			n += primaries(c, v);
	return n;
}

int budget_recount(struct vmc *c, int force)
{
	int err;

	if (!force && !__atomic_load_n(&c->m->budget_stale, __ATOMIC_ACQUIRE))
		return 0;
	if ((err = world_stop(c, 0)))
		return err;
	__atomic_store_n(&c->m->budget_stale, 0, __ATOMIC_RELAXED);
	for (uint32_t v = 0; v < c->h.max_vms; v++) {
		struct vmc_vm *vm = &c->vms[v];
		if (VM_STATE(vm->own) == VM_FREE)
			continue;
		vm->committed = primaries(c, v);
		vm->hwm = VMC_MAX(vm->hwm, vm->committed);
		vm->reserve_used = VMC_MIN(vm->reserve_used, vm->committed);
	}
	__atomic_store_n(&c->m->committed, budget_count(c), __ATOMIC_RELAXED);
	world_start(c, 0);
	return 0;
}
