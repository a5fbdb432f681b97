/*
 * window.h - this process's address window and what it shows.
 */
#ifndef VMC_WINDOW_H
#define VMC_WINDOW_H

#include "meta.h"

/* Process-local state of the window: which granule each window index maps
 * and with what protection, so that a change costs only the system calls
 * that the difference needs. */
struct vmc_window {
	uint32_t n;          /* window granules                                 */
	uint32_t ext;        /* indices >= ext map nothing                       */
	uint32_t vm;         /* VM whose page map the mapped indices show        */
	uint32_t attached;   /* VM attached now (VMC_NIL: none); written by the
			      * holder of `owner`, read by any thread           */
	uint32_t owner;      /* atomic: who may change the window: VMC_NIL free,
			      * a VM id (the thread that attached it), WIN_BUSY
			      * (a destroy clearing a VM off the window)         */
	uint64_t vm_gen;     /* that VM's gen and incarnation when last synced   */
	uint64_t vm_inc;
	int      open;       /* every mapped index is read-write                 */
	uint32_t *map;       /* map[i]: granule at index i, VMC_NIL: none        */
	uint32_t *last;      /* last[i]: VM that index i last showed (fault reports) */
	uint8_t  *prot;      /* prot[i]: PROT_* of index i when mapped           */
};

#define WIN_BUSY (VMC_NIL - 1)

VMC_HIDDEN int window_init(struct vmc *c);

/* Take the window for attaching VM id (waiting out a WIN_BUSY holder).
 * Returns 0, or EALREADY if a VM is attached in this process. */
VMC_HIDDEN int window_claim(struct vmc *c, uint32_t id);
/* Take the window for clearing if nobody holds it: 1 if taken. */
VMC_HIDDEN int window_try_busy(struct vmc *c);
/* Let the window go (after claim or try_busy). */
VMC_HIDDEN void window_unclaim(struct vmc *c);
VMC_HIDDEN void window_free(struct vmc *c);

/* Make the window show VM vm's page map (vm == VMC_NIL: show nothing),
 * looking only at indices [lo, hi) when the window already shows vm, with
 * the fewest system calls: runs of contiguous granules with one
 * protection are one mmap, runs to clear one mmap of PROT_NONE, runs that
 * only need their protection changed one mprotect.  keep_deferred leaves
 * granules released with VMC_RELEASE_DEFER mapped.  On failure the window
 * is cleared. */
VMC_HIDDEN int window_sync(struct vmc *c, uint32_t vm, uint32_t lo, uint32_t hi,
			   int keep_deferred);
#define WINDOW_ALL 0, 0xffffffffu

/* Revoke all access (strict detach): one mprotect to PROT_NONE. */
VMC_HIDDEN int window_revoke(struct vmc *c);

/* After fork, in the child: drop every mapping the parent's window had. */
VMC_HIDDEN void window_reset_child(struct vmc *c);

static inline void *window_addr(struct vmc *c, uint32_t i)
{
	return (char *)c->arena + ((size_t)i << GSHIFT(c));
}

#endif
