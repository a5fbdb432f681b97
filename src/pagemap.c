/*
 * pagemap.c - the page-map space.  A VM's page map has one entry per
 * granule of its span (its window offsets [0, span)), so ten thousand
 * small VMs do not cost ten thousand window-sized maps.  The maps are
 * extents of one array of entries in the metadata file (h.pm_entries),
 * placed at VM create: at the top of the used part in the common case
 * (m->pm_top, O(1)), else first fit among the live VMs' extents.  Entries
 * outside every live VM's extent are empty (vmc_check verifies it), so a
 * new VM's map needs no clearing; pm_top is derived and recounted by the
 * pool lock's repair.
 */
#include "vm.h"

#include <errno.h>
#include <stdlib.h>

uint32_t vm_pm_top(struct vmc *c)
{
	uint32_t top = 0;
	for (uint32_t v = 0; v < c->h.max_vms; v++) {
		const struct vmc_vm *vm = &c->vms[v];
		if (VM_STATE(__atomic_load_n(&vm->own, __ATOMIC_ACQUIRE)) != VM_FREE &&
		    vm->pm_off + vm->pm_len > top)
			top = vm->pm_off + vm->pm_len;
	}
	return top;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* First fit among the live VMs' extents. */
static int first_fit(struct vmc *c, uint32_t n, uint32_t *off)
{
	uint64_t *ext = malloc(c->h.max_vms * sizeof *ext);
	uint32_t k = 0, at = 0;

	if (!ext)
		return vmc_fail(ENOMEM, "out of memory");
	for (uint32_t v = 0; v < c->h.max_vms; v++)
		if (VM_STATE(__atomic_load_n(&c->vms[v].own, __ATOMIC_ACQUIRE)) != VM_FREE &&
		    c->vms[v].pm_len)
			ext[k++] = (uint64_t)c->vms[v].pm_off << 32 | c->vms[v].pm_len;
	qsort(ext, k, sizeof *ext, cmp_u64);
	for (uint32_t j = 0; j <= k; j++) {
		uint32_t end = j < k ? (uint32_t)(ext[j] >> 32) : c->h.pm_entries;
		if (end >= at && end - at >= n) {
			*off = at;
			free(ext);
			return 0;
		}
		if (j < k)
			at = VMC_MAX(at, end + (uint32_t)ext[j]);
	}
	free(ext);
	return vmc_fail(ENOSPC, "no page-map space for a VM of %llu MiB: the container's VMs "
			"may span %llu MiB together (vmc/span_total), and the free space is "
			"fragmented or used", (unsigned long long)(((uint64_t)n << GSHIFT(c)) >> 20),
			(unsigned long long)(((uint64_t)c->h.pm_entries << GSHIFT(c)) >> 20));
}

int pm_alloc(struct vmc *c, uint32_t n, uint32_t *off)
{
	uint32_t top = c->m->pm_top;

	if (top <= c->h.pm_entries && c->h.pm_entries - top >= n) {
		*off = top;
		c->m->pm_top = top + n;
		return 0;
	}
	return first_fit(c, n, off);
}

void pm_release(struct vmc *c)
{
	c->m->pm_top = vm_pm_top(c);
}
