/*
 * region.h - shared regions and the code cache (region.c, code.c).
 */
#ifndef VMC_REGION_H
#define VMC_REGION_H

#include "meta.h"

/* Make region r of `kind` (REGION_LIVE or REGION_CODE) named `name` of
 * `size` bytes: a run of contiguous funded granules and a place in the
 * arena.  *out = its index.  Errors: EEXIST, ENOSPC, VMC_EFUNDS. */
VMC_HIDDEN int region_new(struct vmc *c, const char *name, uint64_t size, int kind,
			  uint32_t *out);

/* Give region r's granules back and free its entry. */
VMC_HIDDEN void region_free(struct vmc *c, uint32_t r);

VMC_HIDDEN void *region_addr(struct vmc *c, uint32_t r);
VMC_HIDDEN int region_map(struct vmc *c, uint32_t r, void *at, int prot);

/* After fork, in the child: unmap the cache regions the parent had open
 * (the child is not counted as an opener; it must open them itself). */
VMC_HIDDEN void region_forget_inherited(struct vmc *c);

/* A dead worker's slot no longer holds regions open, and a region it was
 * still making is freed. Pool lock. */
VMC_HIDDEN void region_forget_slot(struct vmc *c, uint32_t s);

/* The code cache (code.c): make it at create, map it at join. */
VMC_HIDDEN int code_create(struct vmc *c);
VMC_HIDDEN int code_join(struct vmc *c);
/* The code lock, for vmc_recover; the bytes the used bitmap says are
 * allocated (what code_used must be).  Code lock held. */
VMC_HIDDEN void code_lock_use(struct vmc *c, struct vmc_lock_use *u);
VMC_HIDDEN uint64_t code_used_bytes(struct vmc *c);
/* code_cache_protect = 1: the naive per-attach lock (open) and unlock. */
VMC_HIDDEN int code_protect(struct vmc *c, int open);

#endif
