/*
 * backing.h - turning a run of pool granules into real memory and back,
 * per page kind, and the up-front check that the host has the memory.
 */
#ifndef VMC_BACKING_H
#define VMC_BACKING_H

#include "meta.h"

/* Back granules [g, g+n) with memory.  On failure nothing of the run stays
 * allocated.  Returns 0, ENOSPC/ENOMEM (with vmc_errmsg) or an errno. */
VMC_HIDDEN int backing_fund(struct vmc *c, uint32_t g, uint32_t n);

/* Punch granules [g, g+n) out of the pool file.  Returns 0 or an errno. */
VMC_HIDDEN int backing_unfund(struct vmc *c, uint32_t g, uint32_t n);

/* Zero granule g through a temporary mapping. Returns 0 or an errno. */
VMC_HIDDEN int backing_zero(struct vmc *c, uint32_t g);

/* Refuse up front to fund `bytes` of `kind` that the host has not got
 * (free hugepages, MemAvailable, tmpfs space of fd).  Returns 0 or ENOMEM
 * / ENOSPC with a message that says what to do: free hugepages or memory,
 * or `instead` (what the caller can do, e.g. "fund less"). */
VMC_HIDDEN int backing_precheck(int kind, int fd, uint64_t bytes, const char *instead);

#endif
