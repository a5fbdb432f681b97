/*
 * pool_io.h - copy one granule's bytes out of or into the pool file
 * (pool_io.c).  The caller owns the granule.
 */
#ifndef VMC_POOL_IO_H
#define VMC_POOL_IO_H

#include "meta.h"

/* GSIZE(c) bytes of granule g into buf / from buf.  0 or an errno (with
 * vmc_errmsg naming the granule). */
VMC_HIDDEN int pool_read(struct vmc *c, uint32_t g, void *buf);
VMC_HIDDEN int pool_write(struct vmc *c, uint32_t g, const void *buf);

#endif
