/*
 * validate.c - trust nothing read from a metadata file.  A container's
 * metadata is shared with every process that joins it, so a bad file (a
 * different version, a truncated copy, random bytes, a buggy or hostile
 * worker) must produce an error code, never a crash.  meta_validate() is a
 * pure function over a byte image: it checks the header, recomputes the
 * layout from the table sizes and compares, range-checks every table
 * entry, and with META_DEEP walks every list (bounded, so a cycle is an
 * error, not a hang) and reconciles list lengths with the counters.  It is
 * the libFuzzer target's entry point and the first half of vmc_check().
 */
#include "meta.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

void meta_layout(const struct vmc_meta *h, struct meta_layout *out)
{
	uint64_t off = ALIGN_UP(sizeof(struct vmc_meta), 64);
	out->off_slots = off;
	off = ALIGN_UP(off + (uint64_t)h->max_workers * sizeof(struct vmc_slot), 64);
	out->off_granules = off;
	off = ALIGN_UP(off + (uint64_t)h->ngranules * sizeof(struct vmc_granule), 64);
	out->off_vms = off;
	off = ALIGN_UP(off + (uint64_t)h->max_vms * sizeof(struct vmc_vm), 64);
	out->off_pagemaps = off;
	off = ALIGN_UP(off + (uint64_t)h->pm_entries * sizeof(uint32_t), 64);
	out->off_regions = off;
	off = ALIGN_UP(off + VMC_MAX_REGIONS * sizeof(struct vmc_region), 64);
	out->off_codemap = off;
	off += 2 * codemap_bytes(h->code_cache_size);
	out->size = ALIGN_UP(off, VMC_PAGE);
}

static int bad(int err, char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && n)
		vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return err;
}

static int check_header(const struct vmc_meta *h, size_t len, int flags, char *why, size_t n)
{
	struct meta_layout l;

	if (len < sizeof *h)
		return bad(VMC_ECORRUPT, why, n, "file is %zu bytes, shorter than the header", len);
	if (h->magic != VMC_MAGIC)
		return bad(VMC_ECORRUPT, why, n, "bad magic %#llx", (unsigned long long)h->magic);
	if (h->version != VMC_VERSION)
		return bad(VMC_EVERSION, why, n, "format version %u, this library reads %u",
			   h->version, VMC_VERSION);
	if (h->hdr_size != sizeof *h || h->gentry_size != sizeof(struct vmc_granule) ||
	    h->slot_size != sizeof(struct vmc_slot) || h->vm_size != sizeof(struct vmc_vm))
		return bad(VMC_EVERSION, why, n, "entry sizes differ from this library's");
	if (h->granule_shift < 12 || h->granule_shift > VMC_GRANULE_SHIFT ||
	    (h->page_kind != VMC_PAGE_4K && h->granule_shift != VMC_GRANULE_SHIFT))
		return bad(VMC_ECORRUPT, why, n, "bad granule size (2^%u)", h->granule_shift);
	if (!h->ngranules || h->ngranules >= PM_MAX_GRANULES || !h->max_workers ||
	    h->max_workers > 4096 || !h->max_vms || h->max_vms > 65536 ||
	    !h->worker_cache || h->worker_cache > 4096 ||
	    h->window_granules != h->window_size >> h->granule_shift ||
	    !h->window_granules || h->window_granules > (1u << 22) ||
	    !h->pm_entries || h->pm_entries > (1u << 28))
		return bad(VMC_ECORRUPT, why, n, "table sizes out of range");
	if (h->pool_size != (uint64_t)h->ngranules << h->granule_shift)
		return bad(VMC_ECORRUPT, why, n, "pool size does not match granule count");
	if (h->page_kind < VMC_PAGE_HUGETLB || h->page_kind > VMC_PAGE_4K ||
	    h->memory_isolation > 1)
		return bad(VMC_ECORRUPT, why, n, "bad page kind or isolation mode");
	if (h->fund_policy > VMC_FUND_ONDEMAND || !h->fund_batch || h->fund_batch > h->ngranules)
		return bad(VMC_ECORRUPT, why, n, "bad fund policy or batch");
	uint64_t gmask = ((uint64_t)1 << h->granule_shift) - 1;
	if (h->code_cache_size & gmask || h->region_space & gmask ||
	    h->code_cache_size > h->pool_size || h->code_cache_protect > 1)
		return bad(VMC_ECORRUPT, why, n, "bad code cache or region geometry");
	meta_layout(h, &l);
	if (h->off_slots != l.off_slots || h->off_granules != l.off_granules ||
	    h->off_vms != l.off_vms || h->off_pagemaps != l.off_pagemaps ||
	    h->off_regions != l.off_regions || h->off_codemap != l.off_codemap ||
	    h->meta_size != l.size)
		return bad(VMC_ECORRUPT, why, n, "table offsets do not match the layout");
	if (!(flags & META_HEADER) && len < h->meta_size)
		return bad(VMC_ECORRUPT, why, n, "file is %zu bytes, layout needs %llu",
			   len, (unsigned long long)h->meta_size);
	if (h->window_size & gmask || !h->window_size ||
	    h->arena_base % VMC_GRANULE_SIZE || !h->arena_base ||
	    h->arena_size < h->window_size + 2 * h->code_cache_size + h->region_space ||
	    h->arena_base + h->arena_size < h->arena_base ||
	    h->arena_base + h->arena_size > (1ull << 47))
		return bad(VMC_ECORRUPT, why, n, "bad arena geometry");
	if (memchr(h->name, 0, sizeof h->name) == NULL ||
	    memchr(h->pool_path, 0, sizeof h->pool_path) == NULL ||
	    memchr(h->hibernate_dir, 0, sizeof h->hibernate_dir) == NULL)
		return bad(VMC_ECORRUPT, why, n, "unterminated name, pool path or hibernate dir");
	if (h->wake_on_attach > 1 || h->hibernate_sync > 1)
		return bad(VMC_ECORRUPT, why, n, "bad wake_on_attach or hibernate_sync");
	return 0;
}

static int check_entries(const struct vmc_meta *h, char *why, size_t n)
{
	const struct vmc_granule *gt = (const void *)((const char *)h + h->off_granules);
	const struct vmc_slot *st = (const void *)((const char *)h + h->off_slots);

	for (uint32_t g = 0; g < h->ngranules; g++) {
		const struct vmc_granule *e = &gt[g];
		if (e->state >= G_NSTATES)
			return bad(VMC_ECORRUPT, why, n, "granule %u: bad state %u", g, e->state);
		if (e->next != VMC_NIL && e->next >= h->ngranules)
			return bad(VMC_ECORRUPT, why, n, "granule %u: link out of range", g);
		if (e->state == G_CACHED && e->slot >= h->max_workers)
			return bad(VMC_ECORRUPT, why, n, "granule %u: cache owner out of range", g);
		if (e->state == G_USED && (e->owner & REGION_OWNER) &&
		    (e->owner & ~REGION_OWNER) >= VMC_MAX_REGIONS)
			return bad(VMC_ECORRUPT, why, n, "granule %u: region out of range", g);
		if (e->state == G_USED && !(e->owner & REGION_OWNER) &&
		    (e->owner >= h->max_vms ||
		     (e->index != VMC_NIL && e->index >= h->window_granules)))
			return bad(VMC_ECORRUPT, why, n, "granule %u: VM or index out of range", g);
	}
	for (uint32_t s = 0; s < h->max_workers; s++)
		if ((st[s].cache_head != VMC_NIL && st[s].cache_head >= h->ngranules) ||
		    (st[s].defer_head != VMC_NIL && st[s].defer_head >= h->ngranules) ||
		    (st[s].attached != VMC_NIL && st[s].attached >= h->max_vms) ||
		    (st[s].window_vm != VMC_NIL && st[s].window_vm >= h->max_vms))
			return bad(VMC_ECORRUPT, why, n, "slot %u: index out of range", s);
	for (uint32_t v = 0; v < h->max_vms; v++) {
		const struct vmc_vm *vm = (const void *)((const char *)h + h->off_vms +
							 v * sizeof(struct vmc_vm));
		uint32_t state = VM_STATE(vm->own);
		if (state > VM_HIBERNATED || ((state == VM_ATTACHED || state == VM_ORPHANED) &&
					      VM_SLOT(vm->own) >= h->max_workers) ||
		    vm->image > IMG_VALID || (state == VM_HIBERNATED && vm->image != IMG_VALID))
			return bad(VMC_ECORRUPT, why, n, "VM %u: bad state word %#llx (image %u)", v,
				   (unsigned long long)vm->own, vm->image);
		if (!memchr(vm->name, 0, sizeof vm->name))
			return bad(VMC_ECORRUPT, why, n, "VM %u: unterminated name", v);
		if (state != VM_FREE && (vm->pm_len > h->window_granules ||
					 vm->pm_off > h->pm_entries ||
					 vm->pm_len > h->pm_entries - vm->pm_off))
			return bad(VMC_ECORRUPT, why, n, "VM %u: page map out of range", v);
	}
	const struct vmc_region *rt = (const void *)((const char *)h + h->off_regions);
	for (uint32_t r = 0; r < VMC_MAX_REGIONS; r++) {
		const struct vmc_region *e = &rt[r];
		uint64_t size = (uint64_t)e->ngran << h->granule_shift;
		if (e->state > REGION_MAKING || !memchr(e->name, 0, sizeof e->name))
			return bad(VMC_ECORRUPT, why, n, "region %u: bad state or name", r);
		if (e->state != REGION_FREE &&
		    (!e->ngran || e->first >= h->ngranules || e->ngran > h->ngranules - e->first ||
		     e->arena_off < h->window_size || e->arena_off > h->arena_size ||
		     size > h->arena_size - e->arena_off))
			return bad(VMC_ECORRUPT, why, n, "region %u: out of the pool or arena", r);
	}
	const uint32_t *pm = (const void *)((const char *)h + h->off_pagemaps);
	for (uint32_t i = 0; i < h->pm_entries; i++)
		if (pm[i] != VMC_NIL && ((pm[i] & PM_GRANULE) >= h->ngranules ||
					 (pm[i] & PM_PROT_MASK) == PM_PROT_MASK))
			return bad(VMC_ECORRUPT, why, n, "page-map entry %u: granule out of range", i);
	if ((h->free_head != VMC_NIL && h->free_head >= h->ngranules) ||
	    (h->quar_head != VMC_NIL && h->quar_head >= h->ngranules) ||
	    h->nfree > h->ngranules || h->nunfunded > h->ngranules ||
	    h->nquarantined > h->ngranules || h->balloon_target > h->ngranules)
		return bad(VMC_ECORRUPT, why, n, "pool counters or list heads out of range");
	return 0;
}

/* Walk a list from head: every member must be in `state` (and owned by
 * `owner` unless VMC_NIL), and the length must be `count`. */
static int check_list(const struct vmc_meta *h, uint32_t head, uint32_t count,
		      int state, uint32_t owner, int flags, const char *what, char *why, size_t n)
{
	const struct vmc_granule *gt = (const void *)((const char *)h + h->off_granules);
	uint32_t len = 0;

	for (uint32_t g = head; g != VMC_NIL; g = gt[g].next) {
		if (g >= h->ngranules || ++len > h->ngranules)
			return bad(VMC_ECORRUPT, why, n, "%s: link out of range or cycle", what);
		if (gt[g].state != state || (owner != VMC_NIL && gt[g].slot != owner) ||
		    gt[g].flags != flags)
			return bad(VMC_ECORRUPT, why, n, "%s: granule %u is in state %u, slot %u",
				   what, g, gt[g].state, gt[g].slot);
	}
	if (len != count)
		return bad(VMC_ECORRUPT, why, n, "%s holds %u granules, counter says %u",
			   what, len, count);
	return 0;
}

/* Page maps and used granules must mirror each other exactly: map[v][i]
 * == g if and only if granule g is used by VM v at index i. */
static int walk_pagemaps(const struct vmc_meta *h, const struct vmc_granule *gt,
			 const struct vmc_vm *vt, const uint32_t *pm, uint32_t used,
			 uint32_t *views, uint32_t *mapped_out, char *why, size_t n)
{
	uint32_t mapped = 0;

	for (uint32_t v = 0; v < h->max_vms; v++) {
		uint32_t committed = 0;
		if (VM_STATE(vt[v].own) == VM_FREE)
			continue;
		for (uint32_t i = 0; i < vt[v].pm_len; i++) {
			uint32_t g = pm[vt[v].pm_off + i];
			if (g == VMC_NIL)
				continue;
			uint32_t e = g;
			g &= PM_GRANULE;
			if (gt[g].state != G_USED || gt[g].owner != v ||
			    ((e & PM_ALIAS) ? gt[g].index == i : gt[g].index != i))
				return bad(VMC_ECORRUPT, why, n, "VM %u index %u maps granule %u, "
					   "which is in state %u owned by %u at %u", v, i, g,
					   gt[g].state, gt[g].owner, gt[g].index);
			if (!(e & PM_ALIAS))
				committed++;
			views[g]++;
		}
		if (committed != vt[v].committed)
			return bad(VMC_ECORRUPT, why, n, "VM %u maps %u granules, committed says %u",
				   v, committed, vt[v].committed);
		if (VM_STATE(vt[v].own) == VM_HIBERNATED && committed)
			return bad(VMC_ECORRUPT, why, n, "VM %u is hibernated but maps %u granules",
				   v, committed);
		mapped += committed;
	}
	const struct vmc_region *rt = (const void *)((const char *)h + h->off_regions);
	for (uint32_t r = 0; r < VMC_MAX_REGIONS; r++) {
		if (rt[r].state == REGION_FREE)
			continue;
		for (uint32_t k = 0; k < rt[r].ngran; k++) {
			const struct vmc_granule *e = &gt[rt[r].first + k];
			if (e->state != G_USED || e->owner != (REGION_OWNER | r) || e->index != k)
				return bad(VMC_ECORRUPT, why, n, "region %u: granule %u is not its own",
					   r, rt[r].first + k);
			views[rt[r].first + k]++;
		}
		mapped += rt[r].ngran;
	}
	*mapped_out = mapped;
	if (mapped != used)
		return bad(VMC_ECORRUPT, why, n, "%u granules are used but %u are in page maps",
			   used, mapped);
	for (uint32_t g = 0; g < h->ngranules; g++)
		if (gt[g].state == G_USED && gt[g].views != views[g])
			return bad(VMC_ECORRUPT, why, n, "granule %u has %u views, page maps show %u",
				   g, gt[g].views, views[g]);
	return 0;
}

static int cmp_extent(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Live VMs' page maps do not overlap, and every entry outside them is
 * empty.  ext[] has room for max_vms (offset << 32 | length) words. */
static int check_extents(const struct vmc_meta *h, const struct vmc_vm *vt, const uint32_t *pm,
			 uint64_t *ext, char *why, size_t n)
{
	uint32_t k = 0, at = 0;

	for (uint32_t v = 0; v < h->max_vms; v++)
		if (VM_STATE(vt[v].own) != VM_FREE && vt[v].pm_len)
			ext[k++] = (uint64_t)vt[v].pm_off << 32 | vt[v].pm_len;
	qsort(ext, k, sizeof *ext, cmp_extent);
	for (uint32_t j = 0; j <= k; j++) {
		uint32_t off = j < k ? (uint32_t)(ext[j] >> 32) : h->pm_entries;
		if (off < at)
			return bad(VMC_ECORRUPT, why, n, "two VMs' page maps overlap at entry %u", off);
		for (uint32_t i = at; i < off; i++)
			if (pm[i] != VMC_NIL)
				return bad(VMC_ECORRUPT, why, n, "page-map entry %u belongs to no VM "
					   "but maps granule %u", i, pm[i] & PM_GRANULE);
		if (j < k)
			at = off + (uint32_t)ext[j];
	}
	return 0;
}

static int check_pagemaps(const struct vmc_meta *h, uint32_t used, char *why, size_t n)
{
	const struct vmc_granule *gt = (const void *)((const char *)h + h->off_granules);
	const struct vmc_vm *vt = (const void *)((const char *)h + h->off_vms);
	const uint32_t *pm = (const void *)((const char *)h + h->off_pagemaps);
	uint32_t mapped = 0, *views = calloc(h->ngranules, sizeof *views);
	uint64_t *ext = calloc(h->max_vms, sizeof *ext);
	int err;

	if (!views || !ext)
		err = bad(ENOMEM, why, n, "out of memory");
	else if (!(err = check_extents(h, vt, pm, ext, why, n)))
		err = walk_pagemaps(h, gt, vt, pm, used, views, &mapped, why, n);
	free(views);
	free(ext);
	return err;
}

static int check_lists(const struct vmc_meta *h, char *why, size_t n)
{
	const struct vmc_granule *gt = (const void *)((const char *)h + h->off_granules);
	const struct vmc_slot *st = (const void *)((const char *)h + h->off_slots);
	uint32_t count[G_NSTATES] = {0};
	int err;

	for (uint32_t g = 0; g < h->ngranules; g++)
		count[gt[g].state]++;
	if (count[G_UNFUNDED] != h->nunfunded)
		return bad(VMC_ECORRUPT, why, n, "%u unfunded granules, counter says %u",
			   count[G_UNFUNDED], h->nunfunded);
	if ((err = check_list(h, h->free_head, h->nfree, G_FREE, VMC_NIL, 0, "free list",
			      why, n)) ||
	    (err = check_list(h, h->quar_head, h->nquarantined, G_QUARANTINED, VMC_NIL, 0,
			      "quarantine", why, n)))
		return err;
	if (count[G_FREE] != h->nfree || count[G_QUARANTINED] != h->nquarantined)
		return bad(VMC_ECORRUPT, why, n, "granules marked free/quarantined are not all listed");
	for (uint32_t s = 0; s < h->max_workers; s++) {
		char what[32];
		snprintf(what, sizeof what, "slot %u cache", s);
		if ((err = check_list(h, st[s].cache_head, st[s].cache_count, G_CACHED, s, 0,
				      what, why, n)))
			return err;
		snprintf(what, sizeof what, "slot %u deferred list", s);
		if ((err = check_list(h, st[s].defer_head, st[s].defer_count, G_CACHED, s,
				      G_DEFERRED, what, why, n)))
			return err;
		count[G_CACHED] -= st[s].cache_count + st[s].defer_count;
	}
	if (count[G_CACHED])
		return bad(VMC_ECORRUPT, why, n, "%u cached granules are on no worker's list",
			   count[G_CACHED]);
	return check_pagemaps(h, count[G_USED], why, n);
}

int meta_validate(const void *buf, size_t len, int flags, char *why, size_t whylen)
{
	const struct vmc_meta *h = buf;
	int err = check_header(h, len, flags, why, whylen);

	if (!err && !(flags & META_HEADER))
		err = check_entries(h, why, whylen);
	if (!err && (flags & META_DEEP))
		err = check_lists(h, why, whylen);
	return err;
}
