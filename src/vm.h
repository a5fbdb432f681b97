/*
 * vm.h - the VM table.
 */
#ifndef VMC_VM_H
#define VMC_VM_H

#include "meta.h"

static inline uint32_t *vm_pagemap(struct vmc *c, uint32_t vm)
{
	return c->pagemaps + (uint64_t)vm * c->h.window_granules;
}

/* Check id and return the VM, or NULL with vmc_errmsg set (ENOENT/EINVAL). */
VMC_HIDDEN struct vmc_vm *vm_get(struct vmc *c, uint32_t id, int *err);

/* Take VM id from state `from` to ATTACHED by this slot (compare-and-swap).
 * Returns 0, EBUSY (attached elsewhere), VMC_EORPHANED, ENOENT or EINVAL
 * (not in state `from`). */
VMC_HIDDEN int vm_claim(struct vmc *c, uint32_t id, uint32_t from);

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
