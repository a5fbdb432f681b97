/*
 * pool_io.c - the bytes of one pool granule, read or written through the
 * pool file without mapping it into any window: what hibernation, export
 * and import need to move a VM's memory to and from image files.  4 KiB
 * and THP pools live on tmpfs, which takes pread/pwrite (one system call
 * per granule, no mapping to set up and tear down); hugetlbfs does not
 * support write(2), so there the granule is mapped for the copy.  The
 * caller owns the granule (a VM it has claimed), so nothing else writes it
 * meanwhile.
 */
#include "pool_io.h"
#include "os/os.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* Copy granule g to buf (out != 0) or buf to granule g through a temporary
 * mapping (hugetlbfs). */
static int via_map(struct vmc *c, uint32_t g, void *buf, int out)
{
	void *p = os_mmap(NULL, GSIZE(c), out ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
			  c->pool_fd, (off_t)g << GSHIFT(c));
	if (p == MAP_FAILED)
		return errno;
	if (out)
		memcpy(buf, p, GSIZE(c));
	else
		memcpy(p, buf, GSIZE(c));
	os_munmap(p, GSIZE(c));
	return 0;
}

static int io(struct vmc *c, uint32_t g, void *buf, int out)
{
	size_t done = 0, n = GSIZE(c);
	off_t off = (off_t)g << GSHIFT(c);
	int err = 0;

	vmc_assert(g < c->h.ngranules);
	if (c->h.page_kind == VMC_PAGE_HUGETLB)
		err = via_map(c, g, buf, out);
	while (!err && c->h.page_kind != VMC_PAGE_HUGETLB && done < n) {
		ssize_t r = out ? os_pread(c->pool_fd, (char *)buf + done, n - done, off + (off_t)done)
				: os_pwrite(c->pool_fd, (char *)buf + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			err = r < 0 ? errno : EIO;   /* a used granule is never past the end */
		else
			done += (size_t)r;
	}
	if (err)
		return vmc_fail(err, "%s granule %u of the pool: %s", out ? "reading" : "writing",
				g, vmc_strerror(err));
	return 0;
}

int pool_read(struct vmc *c, uint32_t g, void *buf)
{
	return io(c, g, buf, 1);
}

int pool_write(struct vmc *c, uint32_t g, const void *buf)
{
	return io(c, g, (void *)buf, 0);
}
