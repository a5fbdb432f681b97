/*
 * image.c - VM images: hibernation, wake, export and import.
 *
 * A VM's memory is position-stable (the window is at the same address in
 * every worker) and self-contained, so its granules plus its page map are
 * the whole VM: written to a file, its granules can go back to the pool,
 * and read back - here, or in another container whose window is at the
 * same address with the same granule size - it is the same VM, byte for
 * byte, its pointers still valid.
 *
 * The image format (version 1; integers little-endian):
 *
 *   head      struct img_head, 160 bytes: magic "VMCIMAGE", format version,
 *             head size, window base, granule shift, page kind, the VM's
 *             limit and span, nprimary (granules the VM commits), nstored
 *             (of those, the ones not all zero), its name, meta_bytes (head
 *             + map + sums: where the data starts), total_bytes (the whole
 *             file) and meta_sum, the checksum of head (meta_sum as 0),
 *             map and sums together
 *   map       span 32-bit entries, one per window granule (zero-padded to a
 *             multiple of 8 bytes): 0xffffffff
 *             uncommitted; else bit 31 alias, bits 29-30 protection (0 rw,
 *             1 r, 2 none), bits 0-28: for a primary view the index of
 *             its granule in the data (0, 1, 2, ... in window order) or
 *             IMG_ZERO for a granule that read as zero (not stored); for
 *             an alias the window index of its primary view
 *   sums      nprimary 64-bit checksums: sums[d] of data granule d (the
 *             rest 0)
 *   data      nstored granules, in window order
 *
 * The checksum (image_hash) runs four lanes over 64-bit words, each step
 * lane = rotl((lane ^ word) * K, 29): a bijection of the word for a given
 * lane, and of the lane for a given word, so a change in one word always
 * changes that lane's end state; the lanes are folded the same way, so
 * every change confined to one 8-byte word - every flipped bit or byte -
 * is caught for certain, and any other with probability 1 - 2^-64.
 *
 * Hibernate claims the idle VM (as an attach would), writes the image to
 * DIR/NAME/vm<id>.<incarnation>.img.tmp, fsyncs it, renames it into place
 * and fsyncs the directory; only then does it mark the VM IMG_VALID (the
 * commit point), release its granules through the release path of
 * destroy, and leave it HIBERNATED.  Wake claims the hibernated VM,
 * checks the image (size, header checksum, geometry), commits the
 * granules, fills them checking each checksum, and only then clears
 * IMG_VALID (the commit point the other way), leaves it IDLE and removes
 * the file.  A worker killed in between leaves the VM claimed by a dead
 * slot: recovery orphans it (memory intact) when IMG_VALID is clear, and
 * hibernates it (image_recover: what it holds of the pool to quarantine)
 * when it is set.  Either way the VM is resident with its memory or
 * hibernated with a valid image, never neither.
 */
#include "image.h"
#include "container.h"
#include "pool.h"
#include "pool_io.h"
#include "quarantine.h"
#include "remap.h"
#include "vm.h"
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "image.c writes little-endian images: add byte swapping for this target"
#endif

#define IMG_MAGIC   "VMCIMAGE"
#define IMG_FORMAT  1u
#define IMG_ZERO    PM_GRANULE          /* map: a primary that read as zero */
#define IMG_KEEP    (4u << 20)          /* bytes of data kept between the passes */
#define MAP_BYTES(span) (((size_t)(span) * 4 + 7) & ~(size_t)7)   /* padded: sums are aligned */

struct img_head {
	char     magic[8];
	uint32_t format;
	uint32_t head_bytes;
	uint64_t window_base;
	uint32_t granule_shift;
	uint32_t page_kind;
	uint64_t limit;
	uint32_t span;
	uint32_t nprimary;
	uint32_t nstored;
	uint32_t pad;
	char     name[VMC_NAME_MAX];
	uint64_t meta_bytes;
	uint64_t total_bytes;
	uint64_t meta_sum;
	uint64_t reserved[2];
};
_Static_assert(sizeof(struct img_head) == 160, "image head layout");

/* An image's metadata in memory: head, map, sums (one allocation). */
struct img {
	struct img_head h;
	uint32_t *map;
	uint64_t *sums;
	void     *mem;
};

static uint64_t rotl(uint64_t x, int r)
{
	return x << r | x >> (64 - r);
}

#define K0 0x9e3779b97f4a7c15ull   /* odd: multiplication by it is a bijection */
#define K1 0xd6e8feb86659fd93ull

uint64_t image_hash(const void *p, size_t n, int *zero)
{
	const unsigned char *b = p;
	uint64_t l[4] = { K1, K1 ^ 1, K1 ^ 2, K1 ^ 3 }, any = 0, w, h;
	size_t i = 0;

	for (; i + 32 <= n; i += 32)
		for (int k = 0; k < 4; k++) {
			memcpy(&w, b + i + 8 * k, 8);
			any |= w;
			l[k] = rotl((l[k] ^ w) * K0, 29);
		}
	for (int k = 0; i < n; i += 8, k++) {
		w = 0;
		memcpy(&w, b + i, VMC_MIN(8, n - i));
		any |= w;
		l[k] = rotl((l[k] ^ w) * K0, 29);
	}
	h = n * K1;
	for (int k = 0; k < 4; k++)
		h = rotl((h ^ l[k]) * K0, 27);
	if (zero)
		*zero = !any;
	return h ^ h >> 31;
}

/* ------------------------------------------------------------ file I/O */

static int write_all(int fd, const void *buf, size_t n, const char *what)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = os_write(fd, (const char *)buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return vmc_fail(r < 0 ? errno : EIO, "writing %s: %s", what,
					vmc_strerror(r < 0 ? errno : EIO));
		done += (size_t)r;
	}
	return 0;
}

/* A buffered reader: an image is read in as few system calls as its size
 * allows (a small VM's whole image in one). */
#define RD_BUF (256u << 10)
struct rd {
	int fd;
	char *b;
	size_t pos, end;
};

static int rd_open(struct rd *r, int fd)
{
	r->fd = fd;
	r->pos = r->end = 0;
	if (!(r->b = malloc(RD_BUF)))
		return vmc_fail(ENOMEM, "out of memory for an image read buffer");
	return 0;
}

static void rd_close(struct rd *r)
{
	free(r->b);
	r->b = NULL;
}

/* One read into dst (or into the buffer, dst NULL); 0 at the end. */
static ssize_t rd_fill(struct rd *r, void *dst, size_t n)
{
	for (;;) {
		ssize_t k = os_read(r->fd, dst ? dst : r->b, dst ? n : RD_BUF);
		if (k >= 0 || errno != EINTR)
			return k;
	}
}

/* Read exactly n bytes; a short read is a truncated image. */
static int rd_get(struct rd *r, void *buf, size_t n, const char *what)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k;
		if (r->pos < r->end) {
			size_t m = VMC_MIN(n - done, r->end - r->pos);
			memcpy((char *)buf + done, r->b + r->pos, m);
			r->pos += m;
			done += m;
			continue;
		}
		/* large reads go straight to their place */
		k = n - done >= RD_BUF ? rd_fill(r, (char *)buf + done, n - done) : rd_fill(r, NULL, 0);
		if (k < 0)
			return vmc_fail(errno, "reading %s: %s", what, vmc_strerror(errno));
		if (k == 0)
			return vmc_fail(VMC_ECORRUPT, "the image is truncated: it ends %zu bytes "
					"into %s", done, what);
		if (n - done >= RD_BUF)
			done += (size_t)k;
		else
			r->pos = 0, r->end = (size_t)k;
	}
	return 0;
}

/* After the last byte of an image: nothing may follow. */
static int rd_at_end(struct rd *r)
{
	ssize_t k = r->pos < r->end ? 1 : rd_fill(r, NULL, 0);

	if (k > 0)
		return vmc_fail(VMC_ECORRUPT, "the image has bytes after its end");
	if (k < 0)
		return vmc_fail(errno, "reading the image: %s", vmc_strerror(errno));
	return 0;
}

int image_dir(const struct vmc_meta *h, const char *name, char *buf, size_t n)
{
	int len;
	if (name[0])
		len = snprintf(buf, n, "%s/%s", h->hibernate_dir, name);
	else   /* a private container: its arena is its name */
		len = snprintf(buf, n, "%s/private.%llx", h->hibernate_dir,
			       (unsigned long long)h->arena_base);
	return len < 0 || (size_t)len >= n ? ENAMETOOLONG : 0;
}

int image_path(struct vmc *c, uint32_t id, char *buf, size_t n, int tmp)
{
	size_t len;

	if (image_dir(&c->h, c->h.name, buf, n) ||
	    (len = strlen(buf), snprintf(buf + len, n - len, "/vm%u.%llu.img%s", id,
					 (unsigned long long)c->vms[id].incarnation,
					 tmp ? ".tmp" : "") >= (int)(n - len)))
		return vmc_fail(ENAMETOOLONG, "vmc/hibernate_dir %s: image paths get too long",
				c->h.hibernate_dir);
	return 0;
}

void image_unlink(const char *path)
{
	os_unlink(path);
}

/* mkdir -p of the directory part of path, mode 0700. */
static int make_dirs(const char *path)
{
	char d[IMAGE_PATH_MAX];

	snprintf(d, sizeof d, "%s", path);
	for (char *p = d + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (os_mkdir(d, 0700) != 0 && errno != EEXIST)
			return vmc_fail(errno, "cannot make the image directory %s: %s "
					"(vmc/hibernate_dir)", d, vmc_strerror(errno));
		*p = '/';
	}
	return 0;
}

/* fsync the directory that holds path (after a rename into it). */
static int sync_dir(const char *path)
{
	char d[IMAGE_PATH_MAX];
	char *slash;
	int fd, err = 0;

	snprintf(d, sizeof d, "%s", path);
	if ((slash = strrchr(d, '/')))
		*slash = 0;
	if ((fd = os_open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)) < 0 || os_fsync(fd) != 0)
		err = vmc_fail(errno, "syncing the image directory %s: %s", d, vmc_strerror(errno));
	if (fd >= 0)
		os_close(fd);
	return err;
}

/* -------------------------------------------------------------- writing */

/* Write VM id's image (claimed by us) to fd, sequentially.  Two passes
 * over the granules: the first checksums them and finds the zero ones
 * (the head needs the sums), the second writes the data; up to IMG_KEEP
 * bytes of data are kept from the first pass, not read again. */
static int image_write(struct vmc *c, uint32_t id, int fd, uint64_t *bytes)
{
	const uint32_t *pm = vm_pagemap(c, id);
	struct vmc_vm *vm = &c->vms[id];
	uint32_t span = vm_span(c, id), nprim = 0, d = 0, keep;
	size_t gs = GSIZE(c), meta;
	struct img_head *h;
	uint32_t *map, *gran;
	uint64_t *sums;
	char *mem, *data = NULL;
	int err = 0;

	for (uint32_t i = 0; i < span; i++)
		nprim += pm[i] != VMC_NIL && !(pm[i] & PM_ALIAS);
	meta = sizeof *h + MAP_BYTES(span) + (size_t)nprim * 8;
	keep = (uint32_t)VMC_MIN(nprim, IMG_KEEP / gs);
	/* head, map, sums, then the kept data and a scratch granule: a small
	 * image goes out in one write */
	mem = malloc(meta + (size_t)(keep + 1) * gs);
	gran = malloc(((size_t)nprim + 1) * sizeof *gran);   /* the pool granule of data d */
	if (!mem || !gran) {
		free(mem);
		free(gran);
		return vmc_fail(ENOMEM, "out of memory for the image of VM %s", vm->name);
	}
	memset(mem, 0, meta);
	h = (struct img_head *)(void *)mem;
	map = (uint32_t *)(void *)(mem + sizeof *h);
	sums = (uint64_t *)(void *)(mem + sizeof *h + MAP_BYTES(span));
	data = mem + meta;
	for (uint32_t i = 0; i < span && !err; i++) {
		uint32_t e = pm[i], g = e & PM_GRANULE;
		int zero;
		map[i] = e;
		if (e == VMC_NIL)
			continue;
		if (e & PM_ALIAS) {
			map[i] = (e & (PM_ALIAS | PM_PROT_MASK)) | c->gran[g].index;
			continue;
		}
		char *buf = data + (size_t)VMC_MIN(d, keep) * gs;
		if ((err = pool_read(c, g, buf)))
			break;
		uint64_t s = image_hash(buf, gs, &zero);
		map[i] = (e & PM_PROT_MASK) | (zero ? IMG_ZERO : d);
		if (!zero) {
			gran[d] = g;
			sums[d++] = s;
		}
	}
	memcpy(h->magic, IMG_MAGIC, 8);
	h->format = IMG_FORMAT;
	h->head_bytes = sizeof *h;
	h->window_base = c->h.arena_base;
	h->granule_shift = GSHIFT(c);
	h->page_kind = c->h.page_kind;
	h->limit = vm->limit;
	h->span = span;
	h->nprimary = nprim;
	h->nstored = d;
	snprintf(h->name, sizeof h->name, "%s", vm->name);
	h->meta_bytes = meta;
	h->total_bytes = meta + (uint64_t)d * gs;
	h->meta_sum = image_hash(mem, meta, NULL);
	if (!err)
		err = write_all(fd, mem, meta + (size_t)VMC_MIN(d, keep) * gs, "the image");
	for (uint32_t k = keep; k < d && !err; k++) {
		char *buf = data + (size_t)VMC_MIN(k, keep) * gs;
		if (k >= keep && (err = pool_read(c, gran[k], buf)))
			break;
		vmc_assert(k < keep || image_hash(buf, gs, NULL) == sums[k]);  /* VM held still */
		err = write_all(fd, buf, gs, "the image data");
	}
	if (!err)
		*bytes = h->total_bytes;
	free(gran);
	free(mem);
	return err;
}

/* -------------------------------------------------------------- reading */

static void img_free(struct img *m)
{
	free(m->mem);
	m->mem = NULL;
}

/* Read and check an image's head, map and sums from fd.  c: the container
 * whose geometry it must have (VMC_EMISMATCH), or NULL. */
static int img_read_meta(struct vmc *c, struct rd *fd, struct img *m)
{
	struct img_head *h = &m->h;
	uint64_t meta, sum;
	uint32_t d = 0;
	int err;

	m->mem = NULL;
	if ((err = rd_get(fd, h, sizeof *h, "the image header")))
		return err;
	if (memcmp(h->magic, IMG_MAGIC, 8))
		return vmc_fail(VMC_ECORRUPT, "not a vmc VM image (bad magic)");
	if (h->format != IMG_FORMAT)
		return vmc_fail(VMC_EVERSION, "the image has format version %u, this library "
				"reads version %u", h->format, IMG_FORMAT);
	meta = sizeof *h + MAP_BYTES(h->span) + (uint64_t)h->nprimary * 8;
	if (h->head_bytes != sizeof *h || h->granule_shift < 12 ||
	    h->granule_shift > VMC_GRANULE_SHIFT || !h->span || h->span > (1u << 22) ||
	    h->nprimary > h->span || h->nstored > h->nprimary || h->meta_bytes != meta ||
	    h->total_bytes != meta + ((uint64_t)h->nstored << h->granule_shift) ||
	    !memchr(h->name, 0, sizeof h->name))
		return vmc_fail(VMC_ECORRUPT, "the image header is corrupt (sizes out of range)");
	if (!(m->mem = malloc(meta)))
		return vmc_fail(ENOMEM, "out of memory for an image header of %llu bytes",
				(unsigned long long)meta);
	memcpy(m->mem, h, sizeof *h);
	m->map = (uint32_t *)(void *)((char *)m->mem + sizeof *h);
	m->sums = (uint64_t *)(void *)((char *)m->map + MAP_BYTES(h->span));
	if ((err = rd_get(fd, m->map, meta - sizeof *h, "the image's page map")))
		goto fail;
	((struct img_head *)m->mem)->meta_sum = 0;
	sum = image_hash(m->mem, meta, NULL);
	if (sum != h->meta_sum) {
		err = vmc_fail(VMC_ECORRUPT, "the image header's checksum does not match: the "
			       "image is corrupt");
		goto fail;
	}
	for (uint32_t i = 0, prim = 0; i < h->span; i++) {
		uint32_t e = m->map[i], v = e & PM_GRANULE;
		if (e == VMC_NIL)
			continue;
		if ((e & PM_PROT_MASK) == PM_PROT_MASK ||
		    ((e & PM_ALIAS) ? v >= h->span || m->map[v] == VMC_NIL ||
				      (m->map[v] & PM_ALIAS) || v == i
				    : (v != IMG_ZERO && v != d++) || ++prim > h->nprimary)) {
			err = vmc_fail(VMC_ECORRUPT, "the image's page map is corrupt at window "
				       "granule %u", i);
			goto fail;
		}
	}
	if (d != h->nstored) {
		err = vmc_fail(VMC_ECORRUPT, "the image's page map stores %u granules, its header "
			       "says %u", d, h->nstored);
		goto fail;
	}
	if (c && (h->window_base != c->h.arena_base || h->granule_shift != GSHIFT(c))) {
		char a[VMC_SIZE_STR], b[VMC_SIZE_STR], keys[160] = "";
		int n = 0;
		if (h->window_base != c->h.arena_base)
			n += snprintf(keys, sizeof keys, "vmc/arena_base=%#llx",
				      (unsigned long long)h->window_base);
		if (h->granule_shift != GSHIFT(c))
			snprintf(keys + n, sizeof keys - (size_t)n, "%svmc/granule_size=%lluK",
				 n ? " and " : "", (unsigned long long)(1ull << (h->granule_shift - 10)));
		err = vmc_fail(VMC_EMISMATCH, "the image comes from a container whose window is at "
			       "%#llx with %s granules; this one's is at %#llx with %s granules "
			       "(a VM's pointers are absolute): create the container with %s",
			       (unsigned long long)h->window_base,
			       vmc_size_str(1ull << h->granule_shift, a),
			       (unsigned long long)c->h.arena_base, vmc_size_str(GSIZE(c), b), keys);
		goto fail;
	}
	return 0;
fail:
	img_free(m);
	return err;
}

/* Where each data granule of an image goes: into the pool (wake, import)
 * or to a file (export of a hibernated VM). */
struct sink {
	struct vmc *c;
	uint32_t vm;    /* pool: the VM whose page map says where */
	int fd;         /* >= 0: write there instead */
};

static int sink_put(struct sink *s, const struct img *m, uint32_t i, const void *buf)
{
	uint32_t g;
	int err;

	if (s->fd >= 0)
		return write_all(s->fd, buf, (size_t)1 << m->h.granule_shift, "the image data");
	g = vm_pagemap(s->c, s->vm)[i] & PM_GRANULE;
	if ((err = pool_write(s->c, g, buf)))
		return err;
	/* committed with OPF_FILL: its bytes are the VM's only now */
	s->c->gran[g].flags &= (uint8_t)~G_DIRTY;
	gran_set_last(s->c, &s->c->gran[g], s->vm);
	return 0;
}

/* Read the data granules of m from r, check each one's checksum and hand
 * it to the sink; then the image must end (known_end: its size was
 * checked already, a regular file). */
static int img_stream(struct rd *r, const struct img *m, struct sink *s, int known_end)
{
	size_t gs = (size_t)1 << m->h.granule_shift;
	char *buf = malloc(gs);
	int err = 0;

	if (!buf)
		return vmc_fail(ENOMEM, "out of memory for a granule buffer");
	for (uint32_t i = 0; i < m->h.span && !err; i++) {
		uint32_t e = m->map[i], d = e & PM_GRANULE;
		if (e == VMC_NIL || (e & PM_ALIAS) || d == IMG_ZERO)
			continue;
		if ((err = rd_get(r, buf, gs, "the image data")))
			break;
		if (image_hash(buf, gs, NULL) != m->sums[d]) {
			err = vmc_fail(VMC_ECORRUPT, "the image is corrupt: the granule at window "
				       "offset %#llx does not match its checksum",
				       (unsigned long long)((uint64_t)i << m->h.granule_shift));
			break;
		}
		err = sink_put(s, m, i, buf);
	}
	free(buf);
	if (!err && !known_end)
		err = rd_at_end(r);
	return err;
}

/* Commit VM id's page map (claimed by us, empty) as the image says, then
 * fill it from fd.  On error the caller empties the VM. */
static int img_fill(struct vmc *c, uint32_t id, struct rd *fd, const struct img *m, int known_end)
{
	struct vmc_op *ops = malloc(3 * (size_t)m->h.span * sizeof *ops);
	uint32_t n = 0;
	int err;

	if (!ops)
		return vmc_fail(ENOMEM, "out of memory for the image's page map");
	for (int pass = 0; pass < 3; pass++)   /* commits, then aliases, then protections */
		for (uint32_t i = 0; i < m->h.span; i++) {
			uint32_t e = m->map[i], prot = (e & PM_PROT_MASK) >> PM_PROT_SHIFT;
			if (e == VMC_NIL)
				continue;
			if (pass == 0 && !(e & PM_ALIAS)) {
				/* stored granules are written whole: not zeroed first */
				uint32_t fl = (e & PM_GRANULE) == IMG_ZERO ? 0 : OPF_FILL;
				if (n && ops[n - 1].kind == VMC_OP_COMMIT && ops[n - 1].flags == fl &&
				    ops[n - 1].from + ops[n - 1].n == i)
					ops[n - 1].n++;
				else
					ops[n++] = (struct vmc_op){ VMC_OP_COMMIT, fl, i, i, 1 };
			} else if (pass == 1 && (e & PM_ALIAS)) {
				ops[n++] = (struct vmc_op){ VMC_OP_ALIAS, 0, e & PM_GRANULE, i, 1 };
			} else if (pass == 2 && prot) {
				ops[n++] = (struct vmc_op){ VMC_OP_PROTECT, prot, i, i, 1 };
			}
		}
	err = remap_run(c, id, ops, n, 0);
	free(ops);
	if (!err) {
		struct sink s = { c, id, -1 };
		err = img_stream(fd, m, &s, known_end);
	}
	return err;
}

/* Keep the message of err across a clean-up that may overwrite it. */
static int keep_error(int err, const char *saved)
{
	return vmc_fail(err, "%s", saved);
}

/* ------------------------------------------------------------ recovery */

void image_recover(struct vmc *c, uint32_t v)
{
	uint32_t *map = vm_pagemap(c, v);

	for (uint32_t i = 0; i < vm_span(c, v); i++)
		map[i] = VMC_NIL;
	vm_repair(c, v);   /* every granule it still holds: to quarantine */
	vmc_assert(c->vms[v].committed == 0);
	__atomic_store_n(&c->vms[v].own, VM_OWN(VM_HIBERNATED, VMC_NIL), __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------- the API */

/* Claim VM id for an image operation: from `from`, with the messages the
 * API promises. */
static int claim(struct vmc *c, uint32_t id, uint32_t from, const char *op)
{
	struct vmc_vm *vm;
	int err;

	if (!(vm = vm_get(c, id, &err)))
		return err;
	if (from == VM_IDLE && VM_STATE(__atomic_load_n(&vm->own, __ATOMIC_ACQUIRE)) ==
	    VM_HIBERNATED && strcmp(op, "export"))
		return vmc_fail(EALREADY, "VM %s is hibernated already", vm->name);
	err = vm_claim(c, id, from);
	if (err == VMC_EHIBERNATED && strcmp(op, "export"))
		err = vmc_fail(EALREADY, "VM %s is hibernated already", vm->name);
	return err;
}

int vmc_vm_hibernate(vmc_t *c, uint32_t id)
{
	char path[IMAGE_PATH_MAX], tmp[IMAGE_PATH_MAX], saved[512];
	struct vmc_vm *vm;
	uint64_t bytes = 0;
	int err, fd;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = claim(c, id, VM_IDLE, "hibernate")))
		return err;
	vm = &c->vms[id];
	if ((err = image_path(c, id, path, sizeof path, 0)) ||
	    (err = image_path(c, id, tmp, sizeof tmp, 1)))
		goto undo;
	/* the directories are made once: an open that finds them is the rule */
	fd = os_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		if ((err = make_dirs(path)))
			goto undo;
		fd = os_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		err = vmc_fail(errno, "cannot create the image %s: %s", tmp, vmc_strerror(errno));
		goto undo;
	}
	err = image_write(c, id, fd, &bytes);
	if (!err && c->h.hibernate_sync && os_fsync(fd) != 0)
		err = vmc_fail(errno, "syncing the image %s: %s", tmp, vmc_strerror(errno));
	if (os_close(fd) != 0 && !err)
		err = vmc_fail(errno, "closing the image %s: %s", tmp, vmc_strerror(errno));
	if (!err && os_rename(tmp, path) != 0)
		err = vmc_fail(errno, "renaming the image into place (%s): %s", path,
			       vmc_strerror(errno));
	if (!err && c->h.hibernate_sync && (err = sync_dir(path))) {
		snprintf(saved, sizeof saved, "%s", vmc_errmsg());
		image_unlink(path);
		err = keep_error(err, saved);
	}
	if (err) {
		image_unlink(tmp);
		goto undo;
	}
	/* the commit point: from here on the image is the VM */
	vm->image_bytes = bytes;
	__atomic_store_n(&vm->image, IMG_VALID, __ATOMIC_RELEASE);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if ((err = vm_empty(c, id))) {
		/* nothing was released (remap_run is all or nothing): stay resident */
		__atomic_store_n(&vm->image, IMG_NONE, __ATOMIC_RELEASE);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		snprintf(saved, sizeof saved, "%s", vmc_errmsg());
		image_unlink(path);
		err = keep_error(err, saved);
		goto undo;
	}
	vm_unclaim(c, id, VM_HIBERNATED);
	return 0;
undo:
	vm_unclaim(c, id, VM_IDLE);
	return err;
}

/* Open VM id's image (claimed by us, hibernated) with reader r and read
 * its metadata: it must be whole (its size) and this VM's.  On success
 * the caller ends with own_image_close. */
static int open_own_image(struct vmc *c, uint32_t id, struct img *m, struct rd *r, char *path)
{
	struct vmc_vm *vm = &c->vms[id];
	struct stat st;
	int err, fd;

	if ((err = image_path(c, id, path, IMAGE_PATH_MAX, 0)))
		return err;
	if ((fd = os_open(path, O_RDONLY | O_CLOEXEC, 0)) < 0)
		return vmc_fail(errno, "VM %s: cannot open its image %s: %s", vm->name, path,
				vmc_strerror(errno));
	if ((err = rd_open(r, fd))) {
		os_close(fd);
		return err;
	}
	struct img_head h;
	if (os_fstat(fd, &st) != 0)
		err = vmc_fail(errno, "%s: %s", path, vmc_strerror(errno));
	/* a file of the wrong size is refused before anything is read or taken */
	else if (os_pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && !memcmp(h.magic, IMG_MAGIC, 8)
		 && h.format == IMG_FORMAT && (uint64_t)st.st_size != h.total_bytes)
		err = vmc_fail(VMC_ECORRUPT, "the image %s is %lld bytes, its header says "
			       "%llu: it is truncated or damaged", path,
			       (long long)st.st_size, (unsigned long long)h.total_bytes);
	else if (!(err = img_read_meta(c, r, m))) {
		if ((uint64_t)st.st_size != m->h.total_bytes)
			err = vmc_fail(VMC_ECORRUPT, "the image %s is %lld bytes, its header says "
				       "%llu: it is truncated or damaged", path,
				       (long long)st.st_size, (unsigned long long)m->h.total_bytes);
		else if (m->h.span != vm_span(c, id) || m->h.limit != vm->limit ||
			 strcmp(m->h.name, vm->name))
			err = vmc_fail(VMC_ECORRUPT, "the image %s is not VM %s's (name, limit or "
				       "span differ)", path, vm->name);
		if (err)
			img_free(m);
	}
	if (err) {
		rd_close(r);
		os_close(fd);
	}
	return err;
}

static void own_image_close(struct img *m, struct rd *r)
{
	img_free(m);
	os_close(r->fd);
	rd_close(r);
}

int vmc_vm_wake(vmc_t *c, uint32_t id)
{
	char path[IMAGE_PATH_MAX], saved[512];
	struct img m;
	struct vmc_vm *vm;
	struct rd r;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if ((err = vm_claim(c, id, VM_HIBERNATED)))
		return err;
	vm = &c->vms[id];
	if ((err = open_own_image(c, id, &m, &r, path)))
		goto undo;
	err = img_fill(c, id, &r, &m, 1);
	own_image_close(&m, &r);
	if (err) {
		snprintf(saved, sizeof saved, "%s", vmc_errmsg());
		if (vm_empty(c, id) && pool_lock(c) == 0) {
			/* the release path failed before it changed anything (no
			 * memory, a lock): do what recovery does, under the pool
			 * lock - the granules go to quarantine */
			image_recover(c, id);
			pool_unlock(c);
		}
		err = keep_error(err, saved);
		goto undo;
	}
	/* the commit point: the memory is the VM again */
	__atomic_store_n(&vm->image, IMG_NONE, __ATOMIC_RELEASE);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	vm->image_bytes = 0;
	vm_unclaim(c, id, VM_IDLE);
	image_unlink(path);
	return 0;
undo:
	vm_unclaim(c, id, VM_HIBERNATED);
	return err;
}

int vmc_vm_export(vmc_t *c, uint32_t id, int fd)
{
	char path[IMAGE_PATH_MAX];
	struct vmc_vm *vm;
	uint64_t bytes;
	uint32_t st;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (fd < 0)
		return vmc_fail(EBADF, "vmc_vm_export: fd %d", fd);
	if (!(vm = vm_get(c, id, &err)))
		return err;
	st = VM_STATE(__atomic_load_n(&vm->own, __ATOMIC_ACQUIRE));
	st = st == VM_HIBERNATED ? VM_HIBERNATED : VM_IDLE;
	if ((err = claim(c, id, st, "export")))
		return err;
	if (st == VM_IDLE) {
		err = image_write(c, id, fd, &bytes);
	} else {
		/* a copy of its image, checked on the way: never pass on a bad one */
		struct img m;
		struct rd r;
		if (!(err = open_own_image(c, id, &m, &r, path))) {
			struct sink s = { c, id, fd };
			((struct img_head *)m.mem)->meta_sum = m.h.meta_sum;
			if (!(err = write_all(fd, m.mem, m.h.meta_bytes, "the image header")))
				err = img_stream(&r, &m, &s, 1);
			own_image_close(&m, &r);
		}
	}
	vm_unclaim(c, id, st);
	return err;
}

int vmc_vm_import(vmc_t *c, const char *name, int fd, uint32_t *id)
{
	char saved[512];
	struct img m = { .mem = NULL };
	uint64_t span;
	struct rd r;
	uint32_t v = VMC_NIL;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!id || fd < 0)
		return vmc_fail(EINVAL, "vmc_vm_import: %s", !id ? "id is NULL" : "bad fd");
	if ((err = rd_open(&r, fd)))
		return err;
	if ((err = img_read_meta(c, &r, &m)))
		goto out;
	span = (uint64_t)m.h.span << m.h.granule_shift;
	if (m.h.limit > span || span > c->h.window_size) {
		err = vmc_fail(m.h.limit > span ? VMC_ECORRUPT : EINVAL, "the image's VM spans "
			       "%llu MiB, more than this container's window (vmc/window_size) or "
			       "less than its limit", (unsigned long long)(span >> 20));
		goto out;
	}
	if ((err = vmc_vm_create_span(c, name ? name : m.h.name, m.h.limit, span, &v)))
		goto out;
	if (!(err = vm_claim(c, v, VM_IDLE))) {
		err = img_fill(c, v, &r, &m, 0);
		vm_unclaim(c, v, VM_IDLE);
	}
	if (err) {
		snprintf(saved, sizeof saved, "%s", vmc_errmsg());
		vmc_vm_destroy(c, v);
		err = keep_error(err, saved);
	}
out:
	img_free(&m);
	rd_close(&r);
	if (!err)
		*id = v;
	return err;
}
