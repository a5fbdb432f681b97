/*
 * remap.c - growing and shrinking the attached VM: vmc_commit and
 * vmc_release at granule granularity.
 *
 * Commit takes granules from this worker's local cache (no shared lock in
 * the common case), enters them in the VM's page map and maps the new runs
 * into the window.  A granule that last belonged to another VM is zeroed
 * before the VM can see it (invariant 4); a freshly funded one is zero
 * already.  Release takes granules out of the page map and the window and
 * gives them to the local cache, or to quarantine while another worker's
 * lazy window may still map them (invariant 3).
 */
#include "container.h"
#include "pool.h"
#include "quarantine.h"
#include "vm.h"
#include "window.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Check that a VM is attached and [addr, addr+len) is a granule-aligned
 * range of the window; give its first index and count. */
static int range(struct vmc *c, const void *addr, size_t len, int flags,
		 const char *what, uint32_t *first, uint32_t *n)
{
	uintptr_t a = (uintptr_t)addr, base = (uintptr_t)c->arena;

	if (c->win->attached == VMC_NIL)
		return vmc_fail(VMC_ENOTATTACHED, "%s: no VM is attached in this worker", what);
	if (flags)
		return vmc_fail(EINVAL, "%s: unknown flags %#x", what, flags);
	if (!len || (a | len) & (VMC_GRANULE_SIZE - 1))
		return vmc_fail(EINVAL, "%s: address %p and length %zu must be non-zero "
				"multiples of 2 MiB", what, addr, len);
	if (a < base || a - base > c->h.window_size || len > c->h.window_size - (a - base))
		return vmc_fail(EINVAL, "%s: [%p, +%zu) is outside the window [%p, +%llu)", what,
				addr, len, c->arena, (unsigned long long)c->h.window_size);
	*first = (uint32_t)((a - base) >> VMC_GRANULE_SHIFT);
	*n = (uint32_t)(len >> VMC_GRANULE_SHIFT);
	return 0;
}

/* Take one granule for each uncommitted index of [first, first+n) into
 * got[]; all or nothing. Slot lock held. */
static int take_all(struct vmc *c, uint32_t vm, const uint32_t *map, uint32_t first,
		    uint32_t n, uint32_t *got)
{
	uint32_t k = 0;
	int err = 0;

	for (uint32_t i = first; i < first + n && !err; i++)
		if (map[i] == VMC_NIL && !(err = pool_take(c, vm, i, &got[k])))
			k++;
	if (err)
		while (k-- > 0)
			pool_put(c, got[k]);
	return err;
}

int vmc_commit(vmc_t *c, void *addr, size_t len, int flags)
{
	uint32_t first = 0, n = 0, vm_id, need = 0, *map, *got, k = 0;
	struct vmc_vm *vm;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = range(c, addr, len, flags, "vmc_commit", &first, &n)))
		return err;
	vm_id = c->win->attached;
	vm = &c->vms[vm_id];
	map = vm_pagemap(c, vm_id);
	for (uint32_t i = first; i < first + n; i++)
		need += map[i] == VMC_NIL;
	if (!need)
		return 0;
	if ((uint64_t)(vm->committed + need) << VMC_GRANULE_SHIFT > vm->limit)
		return vmc_fail(VMC_ELIMIT, "VM %s: committing %u more granules would exceed its "
				"limit of %llu MiB (%u MiB committed)", vm->name, need,
				(unsigned long long)(vm->limit >> 20), vm->committed * 2);
	if (!(got = malloc(need * sizeof *got)))
		return vmc_fail(ENOMEM, "out of memory");
	if ((err = slot_lock(c, c->slot)))
		goto out;
	if ((err = take_all(c, vm_id, map, first, n, got)))
		goto unlock;
	for (uint32_t i = first; i < first + n; i++)
		if (map[i] == VMC_NIL)
			map[i] = got[k++];
	vm->committed += need;
	if (vm->committed > vm->hwm)
		vm->hwm = vm->committed;
	__atomic_add_fetch(&vm->gen, 1, __ATOMIC_RELEASE);
	if ((err = window_sync(c, vm_id))) {
		/* the window is empty now; undo, so that no granule stays
		 * committed without having been zeroed */
		for (k = 0; k < need; k++)
			map[c->gran[got[k]].index] = VMC_NIL;
		vm->committed -= need;
		__atomic_add_fetch(&vm->gen, 1, __ATOMIC_RELEASE);
		for (k = 0; k < need; k++)
			pool_put(c, got[k]);
		goto unlock;
	}
	/* invariant 4: memory that held data before reads as zero */
	for (k = 0; k < need; k++) {
		struct vmc_granule *e = &c->gran[got[k]];
		if (e->last_vm != VMC_NIL)
			memset(window_addr(c, e->index), 0, VMC_GRANULE_SIZE);
		e->last_vm = vm_id;
	}
unlock:
	slot_unlock(c, c->slot);
out:
	free(got);
	return err;
}

int vmc_release(vmc_t *c, void *addr, size_t len, int flags)
{
	uint32_t first = 0, n = 0;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = range(c, addr, len, flags, "vmc_release", &first, &n)))
		return err;
	if ((err = slot_lock(c, c->slot)))
		return err;
	err = vm_release_range(c, c->win->attached, first, n);
	slot_unlock(c, c->slot);
	return err;
}
