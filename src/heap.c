/*
 * heap.c - the in-VM heap's public calls: vmc_heap_alloc, _free, _realloc,
 * _trim, _stats and vmc_vm_root, and how a call finds (or sets up) the
 * heap of the VM attached in this worker.
 *
 * The heap owns the VM's window from offset 0 up and keeps every byte of
 * its metadata there (heap.h), so it travels with the VM to any worker.
 * Requests up to SMALL_MAX bytes come from slabs of one size class with no
 * header per block (heap_slab.c); larger ones are blocks with a 16-byte
 * tag, found by best fit among the free blocks before the heap grows
 * (heap_large.c); free memory goes back to the pool after a decay time or
 * on request (heap_trim.c); the debug walk is heap_check.c.
 *
 * A call touches the window only once the VM's page map says granule 0 is
 * committed read-write, and any other granule only once the heap's own
 * books (or the page map) say it is.  A pointer that is not a block in use
 * of this heap is refused without being written through: debug builds
 * stop, release builds ignore it.
 */
#include "heap_slab.h"
#include "container.h"
#include "vm.h"
#include "window.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *heap_vm_name(const struct hx *x)
{
	return x->c->vms[x->vm].name;
}

uint64_t heap_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);   /* vDSO: no system call */
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* --------------------------------------------------------- finding a heap */

#define MAGIC_KIND(m) ((m) & 0x00ffffffffffffffull)   /* "VMCHEAP" of any version */

/* The attached VM's heap header is ours, on read-write memory, made for
 * this granule size. */
static inline int heap_ready(const struct hx *x, uint32_t e)
{
	return e != VMC_NIL && !(e & PM_PROT_MASK) && x->h->magic == HEAP_MAGIC &&
	       x->h->version == HEAP_VERSION && x->h->gshift == x->gshift;
}

/* Set up a heap on the attached VM, whose granule 0 has page-map entry e:
 * commit granule 0 if needed and write the header.  With create == 0 only
 * report: x->h = NULL if there is no heap yet. */
static int setup(struct hx *x, uint32_t e, int create)
{
	struct vmc *c = x->c;
	struct heap *h = x->h;
	uint64_t g = (uint64_t)1 << x->gshift;
	int err;

	if (e == VMC_NIL) {
		if (!create) {
			x->h = NULL;
			return 0;
		}
		if ((err = vmc_commit(c, h, g, 0))) {
			char why[256], lim[VMC_SIZE_STR];
			snprintf(why, sizeof why, "%s", vmc_errmsg());
			return vmc_fail(err, "VM %s out of memory: limit %s: cannot set up its "
					"heap: %s", heap_vm_name(x),
					vmc_size_str(c->vms[x->vm].limit, lim), why);
		}
	} else {
		if (e & PM_PROT_MASK)
			return vmc_fail(EACCES, "VM %s: window offset 0 is not read-write "
					"(vmc_protect), so it cannot hold a heap", heap_vm_name(x));
		if (MAGIC_KIND(h->magic) == MAGIC_KIND(HEAP_MAGIC))
			return vmc_fail(VMC_EVERSION, "VM %s: its heap has version %u (header %u "
					"bytes, granules of 2^%u bytes); this library reads "
					"version %u with granules of 2^%u", heap_vm_name(x),
					h->version, h->hdr_size, h->gshift, HEAP_VERSION, x->gshift);
		/* committed by someone else: a heap only on memory nobody used */
		const uint64_t *w = (const uint64_t *)(void *)h;
		for (size_t i = 0; i < g / sizeof *w; i++)
			if (w[i])
				return vmc_fail(EINVAL, "VM %s: window offset %#zx holds data that "
						"is not a vmc heap (%#llx); the heap needs offset "
						"0 up to itself", heap_vm_name(x), i * sizeof *w,
						(unsigned long long)w[i]);
		if (!create) {
			x->h = NULL;
			return 0;
		}
	}
	memset(h, 0, sizeof *h);
	h->version = HEAP_VERSION;
	h->hdr_size = sizeof *h;
	h->gshift = x->gshift;
	h->decay_ms = HEAP_DECAY_MS;
	h->top = HEAP_FIRST;
	h->ready = h->end = h->committed = h->peak = g;
	h->last_pass = heap_now_ms();
	__atomic_store_n(&h->magic, HEAP_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static inline void fill(struct vmc *c, uint32_t vm, struct hx *x)
{
	x->c = c;
	x->vm = vm;
	x->h = c->arena;
	x->pm = vm_pagemap(c, vm);
	x->gshift = (uint32_t)__builtin_ctzll(vmc_granule_size(c));
	x->span = (uint64_t)vm_span(c, vm) << x->gshift;
}

/* Enter a heap call: the handle, the attached VM, its heap (set up if
 * create and there is none; x->h is NULL if !create and there is none). */
static inline int heap_enter(struct vmc *c, struct hx *x, int create)
{
	uint32_t vm;
	int err;

	if (unlikely(err = vmc_enter(c)))
		return err;
	if (unlikely((vm = c->win->attached) == VMC_NIL))
		return vmc_fail(VMC_ENOTATTACHED, "the in-VM heap needs a VM attached in this "
				"worker");
	fill(c, vm, x);
	/* never touch the window before knowing granule 0 is mapped */
	if (likely(heap_ready(x, x->pm[0])))
		return 0;
	return setup(x, x->pm[0], create);
}

int heap_peek(struct vmc *c, struct hx *x)
{
	uint32_t vm = c->win->attached;

	if (vm == VMC_NIL)
		return 0;
	fill(c, vm, x);
	return heap_ready(x, x->pm[0]);
}

/* ------------------------------------------------------------ allocation */

static uint64_t take(struct hx *x, size_t n)
{
	uint64_t off;

	if (likely(n <= SMALL_MAX))
		return slab_alloc(x, heap_size_class(n));
	if ((off = large_take(x, ((uint64_t)n + HDR + 15) & ~(uint64_t)15, 0))) {
		x->h->in_use += bsize(BLK(x->h, off));
		off += HDR;
	}
	return off;
}

/* n bytes: the offset of the new block's first byte, or 0.  When the heap
 * cannot grow, everything free goes back first (empty slabs, free
 * granules that count against the VM's limit) and the request is tried
 * once more: dlmalloc's consolidation. */
static uint64_t alloc_n(struct hx *x, size_t n)
{
	uint64_t off;

	if (unlikely(n > x->span)) {
		char sp[VMC_SIZE_STR];
		vmc_fail(ENOMEM, "VM %s out of memory: a block of %zu bytes is more than its "
			 "span (%s)", heap_vm_name(x), n, vmc_size_str(x->span, sp));
		return 0;
	}
	if (unlikely(!(off = take(x, n)))) {
		heap_trim_now(x, 0);
		off = take(x, n);
	}
	x->h->allocs += off != 0;
	return off;
}

/* The block of user pointer p: its offset, with *slab its slab and *slot
 * its index there (*slab 0 for a large block); or 0 (and *why) if p is not
 * a block in use of this heap.  Cheap enough for every free: a large
 * block's tag and both neighbours' sizes must agree, and a tag is read
 * only where the heap keeps memory. */
static uint64_t block_of(const struct hx *x, const void *p, uint64_t *slab, int *slot,
			 const char **why)
{
	const struct heap *h = x->h;
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)h;
	uint64_t off, size, w, prev;
	const struct blk *b;

	if (unlikely(a < base + HEAP_FIRST + HDR || a - base >= h->top)) {
		*why = "not inside the heap";
		return 0;
	}
	if (unlikely(a & 15)) {
		*why = "misaligned";
		return 0;
	}
	off = a - base;
	if ((*slab = slab_of(h, off)))
		return (*slot = slab_slot(h, *slab, off, why)) >= 0 ? off : 0;
	off -= HDR;
	if (!committed_at(x, off)) {
		*why = "not a heap block (in memory the heap gave back)";
		return 0;
	}
	b = BLK(h, off);
	w = b->word;
	size = w & SIZE_MASK;
	prev = b->prev;
	if ((w & TAG_MASK) != TAG || (w & F_MASK & ~(uint64_t)F_FREE) || size < MIN_BLOCK ||
	    size > h->top - off || (prev & 15) || prev > off - HEAP_FIRST ||
	    !prev != (off == HEAP_FIRST)) {
		*why = "not the start of a heap block";
		return 0;
	}
	if (w & F_FREE) {
		*why = "freed already (double free)";
		return 0;
	}
	if ((prev && (!committed_at(x, off - prev) ||
		      (BLK(h, off - prev)->word & (TAG_MASK | SIZE_MASK)) != (TAG | prev))) ||
	    (off + size == h->top ? h->last :
	     committed_at(x, off + size) ? BLK(h, off + size)->prev : 0) != size) {
		*why = "its neighbours do not agree (freed already, or the heap is corrupt)";
		return 0;
	}
	return off + HDR;
}

/* A pointer that is not ours: a bug in the caller.  Debug builds stop
 * here; release builds ignore it (never corrupt the heap). */
static void bad_pointer(const char *fn, const void *p, const char *why)
{
	vmc_fail(EINVAL, "%s(%p): %s", fn, p, why);
#ifndef NDEBUG
	fprintf(stderr, "vmc: %s\n", vmc_errmsg());
	vmc_assert(!"bad pointer passed to the in-VM heap");
#endif
}

/* Free the block at off (found by block_of). */
static inline void free_block(struct hx *x, uint64_t off, uint64_t slab, int slot)
{
	struct heap *h = x->h;

	if (slab) {
		slab_free(h, slab, (unsigned)slot);
	} else {
		h->in_use -= bsize(BLK(h, off - HDR));
		large_give(x, off - HDR);
	}
	if (unlikely((++h->frees & 255) == 0))
		heap_tick(x);
}

/* ------------------------------------------------------------ public API */

void *vmc_heap_alloc(vmc_t *c, size_t n)
{
	struct hx x;
	uint64_t off;

	if (unlikely(heap_enter(c, &x, 1)))
		return NULL;
	if (unlikely(!n)) {
		vmc_fail(EINVAL, "vmc_heap_alloc: size 0");
		return NULL;
	}
	off = alloc_n(&x, n);
	return off ? (char *)x.h + off : NULL;
}

void vmc_heap_free(vmc_t *c, void *p)
{
	struct hx x;
	const char *why;
	uint64_t off, slab;
	int slot;

	if (!p || heap_enter(c, &x, 0))
		return;
	if (unlikely(!x.h)) {
		bad_pointer("vmc_heap_free", p, "the attached VM has no heap");
		return;
	}
	if (unlikely(!(off = block_of(&x, p, &slab, &slot, &why)))) {
		bad_pointer("vmc_heap_free", p, why);
		return;
	}
	free_block(&x, off, slab, slot);
}

void *vmc_heap_realloc(vmc_t *c, void *p, size_t n)
{
	struct hx x;
	const char *why;
	uint64_t off, slab, size, q;
	int slot;

	if (!p)
		return vmc_heap_alloc(c, n);
	if (!n) {
		vmc_heap_free(c, p);
		return NULL;
	}
	if (heap_enter(c, &x, 0))
		return NULL;
	if (!x.h || !(off = block_of(&x, p, &slab, &slot, &why))) {
		bad_pointer("vmc_heap_realloc", p, x.h ? why : "the attached VM has no heap");
		return NULL;
	}
	if (n > x.span) {
		char sp[VMC_SIZE_STR];
		vmc_fail(ENOMEM, "VM %s out of memory: a block of %zu bytes is more than its "
			 "span (%s)", heap_vm_name(&x), n, vmc_size_str(x.span, sp));
		return NULL;
	}
	if (slab) {
		size = SLAB(x.h, slab)->csize;
		/* stays while it fits and would not fit a class half its size */
		if (n <= size && 2 * (uint64_t)heap_class_size[heap_size_class(n)] > size)
			return p;
	} else {
		uint64_t need = VMC_MAX(((uint64_t)n + HDR + 15) & ~(uint64_t)15, MIN_BLOCK);
		size = bsize(BLK(x.h, off - HDR));
		if (need <= size) {
			large_shrink(&x, off - HDR, need);
			return p;
		}
		if (large_grow(&x, off - HDR, need))
			return p;
		if ((q = large_move(&x, off - HDR, need))) {
			x.h->allocs++;
			x.h->frees++;
			return (char *)x.h + q + HDR;
		}
		size -= HDR;
	}
	if (!(q = alloc_n(&x, n)))
		return n <= size ? p : NULL;   /* a shrink that could not move */
	vmc_clear_error();
	memcpy((char *)x.h + q, p, VMC_MIN(n, size));
	free_block(&x, off, slab, slot);
	return (char *)x.h + q;
}

void **vmc_vm_root(vmc_t *c)
{
	struct hx x;

	if (heap_enter(c, &x, 1))
		return NULL;
	return &x.h->root;
}

int vmc_heap_trim(vmc_t *c, size_t keep)
{
	struct hx x;
	int err;

	vmc_clear_error();
	if ((err = heap_enter(c, &x, 0)))
		return err;
	return x.h ? heap_trim_now(&x, keep) : 0;
}

int vmc_heap_stats(vmc_t *c, vmc_heap_stats_t *out, int check)
{
	struct hx x;
	vmc_heap_stats_t st;
	int err;

	vmc_clear_error();
	if ((err = heap_enter(c, &x, 0)))
		return err;
	memset(&st, 0, sizeof st);
	st.granule = vmc_granule_size(c);
	if (x.h) {
		const struct heap *h = x.h;
		st.in_use = h->in_use;
		st.top = h->top;
		st.committed = h->committed;
		st.peak_committed = h->peak;
		st.allocs = h->allocs;
		st.frees = h->frees;
		st.largest_free = large_largest_free(h);
		st.largest_free = st.largest_free ? st.largest_free - HDR : 0;
		st.fragmentation = h->committed ? 1.0 - (double)h->in_use / (double)h->committed : 0;
		st.trims = h->trims;
		st.trimmed = h->trimmed;
		st.slabs = h->slabs;
		st.decay_ms = h->decay_ms;
	}
	if (out)
		*out = st;
	return x.h && check ? heap_verify(&x) : 0;
}

int heap_check(struct vmc *c)
{
	struct hx x;

	return heap_peek(c, &x) ? heap_verify(&x) : 0;
}
