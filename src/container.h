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

#endif
