/*
 * vm.h - the VM table.
 */
#ifndef VMC_VM_H
#define VMC_VM_H

#include "meta.h"

/* VM vm's page map: vm_span(c, vm) entries, for window indices 0 up. */
static inline uint32_t *vm_pagemap(struct vmc *c, uint32_t vm)
{
	return c->pagemaps + c->vms[vm].pm_off;
}

static inline uint32_t vm_span(struct vmc *c, uint32_t vm)
{
	return c->vms[vm].pm_len;
}

/* Page-map space (pagemap.c), pool lock: the end of the highest live VM's
 * page map (what m->pm_top must be); place n entries for a new VM (*off),
 * or ENOSPC; lower pm_top after a VM went. */
VMC_HIDDEN uint32_t vm_pm_top(struct vmc *c);
VMC_HIDDEN int pm_alloc(struct vmc *c, uint32_t n, uint32_t *off);
VMC_HIDDEN void pm_release(struct vmc *c);

/* Check id and return the VM, or NULL with vmc_errmsg set (ENOENT/EINVAL). */
VMC_HIDDEN struct vmc_vm *vm_get(struct vmc *c, uint32_t id, int *err);

/* Take VM id from state `from` to ATTACHED by this slot (compare-and-swap).
 * Returns 0, EBUSY (attached elsewhere), VMC_EORPHANED, ENOENT or EINVAL
 * (not in state `from`). */
VMC_HIDDEN int vm_claim(struct vmc *c, uint32_t id, uint32_t from);

/* VM id, claimed by us: clear it off our own window and release every
 * granule of its page map (the release path of destroy: through quarantine
 * while a window may still show them).  Returns 0 or remap_run's error. */
VMC_HIDDEN int vm_empty(struct vmc *c, uint32_t id);

/* Give back a VM this slot has claimed, into state `to`. */
VMC_HIDDEN void vm_unclaim(struct vmc *c, uint32_t id, uint32_t to);

/* Make VM id's books match its page map after its worker died mid-way:
 * views, primary indices and committed are recounted, and granules marked
 * used by it that no entry shows (taken or released in flight) go to
 * quarantine.  Granules still G_DIRTY stay: reclaim zeroes them.  Pool
 * lock held. */
VMC_HIDDEN int vm_repair(struct vmc *c, uint32_t id);

/* Walk the heap of the VM attached here, if it has one (heap.c): 0, or
 * VMC_ECORRUPT with vmc_errmsg naming the offset. */
VMC_HIDDEN int heap_check(struct vmc *c);

#endif
