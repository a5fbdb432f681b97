/*
 * image.h - VM images: hibernation, export and import (image.c).
 */
#ifndef VMC_IMAGE_H
#define VMC_IMAGE_H

#include "meta.h"

#define IMAGE_PATH_MAX 512

/* The directory of a container's images: <hibernate_dir>/<name>, or
 * <hibernate_dir>/private.<arena base> for a private one.  0 or ENAMETOOLONG. */
VMC_HIDDEN int image_dir(const struct vmc_meta *h, const char *name, char *buf, size_t n);

/* The path of VM id's image (this incarnation of it), or with tmp != 0 the
 * temporary name it is written under: DIR/NAME/vm<id>.<incarnation>.img.
 * Returns 0 or ENAMETOOLONG (vmc_errmsg says so). */
VMC_HIDDEN int image_path(struct vmc *c, uint32_t id, char *buf, size_t n, int tmp);

/* Remove an image file; a file that is gone already is fine. */
VMC_HIDDEN void image_unlink(const char *path);

/* The worker holding VM v died with IMG_VALID set (in a hibernate after
 * its image was durable, or in a wake before all was back): the image is
 * the VM, so what it holds of the pool goes (to quarantine) and it is
 * hibernated.  Pool lock held (recovery of the dead worker's slot). */
VMC_HIDDEN void image_recover(struct vmc *c, uint32_t v);

/* The 64-bit checksum of image files (image.c): exposed for tests. */
VMC_HIDDEN uint64_t image_hash(const void *p, size_t n, int *zero);

#endif
