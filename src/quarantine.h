/*
 * quarantine.h - lazy reuse made safe (invariant 3).
 */
#ifndef VMC_QUARANTINE_H
#define VMC_QUARANTINE_H

#include "meta.h"

/* 1 if a live worker other than this one (self: or this one) may still
 * map VM vm's granules accessibly (a lazy window), so that a granule
 * released by vm must wait in quarantine instead of going straight to a
 * cache. */
VMC_HIDDEN int quarantine_needed(struct vmc *c, uint32_t vm, int self);

/* Put granule g (used, or cached and unlisted) into quarantine, waiting
 * for the windows of VM `mapper` (the VM that may still map it), tagged
 * with a new epoch.  A used granule's bytes are recorded as its owner's
 * unless it was never zeroed.  Pool lock. */
VMC_HIDDEN void quarantine_add(struct vmc *c, uint32_t g, uint32_t mapper);

/* Free every quarantined granule that no live window can reach any more.
 * Pool lock.  Returns the number freed. */
VMC_HIDDEN uint32_t quarantine_reap(struct vmc *c);

/* Publish what this worker's window may map: VM vm (VMC_NIL: nothing
 * accessible), as of now.  Call after the window's system calls are done. */
VMC_HIDDEN void quarantine_publish(struct vmc *c, uint32_t vm);

#endif
