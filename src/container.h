/*
 * container.h - what the rest of the library needs from container.c.
 */
#ifndef VMC_CONTAINER_H
#define VMC_CONTAINER_H

#include "meta.h"

/* Every public entry point that takes a handle calls this first: it checks
 * the handle, and after a fork gives the child a worker slot of its own
 * (a compare of a process-local counter; no system call otherwise).
 * Returns 0, EINVAL or the error of joining. */
VMC_HIDDEN int vmc_enter(struct vmc *c);

/* The open handle whose arena contains addr, or NULL.  Lock-free and
 * async-signal-safe (the fault handler uses it). */
VMC_HIDDEN struct vmc *vmc_handle_at(const void *addr);

/* handles.c */
VMC_HIDDEN struct vmc *handle_new(void);
VMC_HIDDEN void handle_free(struct vmc *c);
VMC_HIDDEN int handle_register(struct vmc *c);
VMC_HIDDEN int handle_forked(struct vmc *c);   /* 1 if c was opened by our parent */

/* arena.c */
VMC_HIDDEN uint64_t arena_size(uint64_t bytes);        /* rounded up to the alignment */
VMC_HIDDEN int arena_create(struct vmc *c, const char *name);  /* pick a base, reserve */
VMC_HIDDEN int arena_join(struct vmc *c);              /* reserve the recorded base */
VMC_HIDDEN void arena_unmap(struct vmc *c);

#endif
