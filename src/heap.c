/*
 * heap.c - the in-VM heap: an allocator whose every byte of metadata lives
 * in the attached VM's memory, so the heap travels with the VM to any
 * worker (the window is at the same address everywhere, so pointers into
 * it stay valid).  It owns the VM's window from offset 0 up.
 *
 * Layout.  A header at offset 0 (magic, version, the root slot, the
 * free-list heads, `top`, `committed_end`, counters), then blocks from
 * HEAP_FIRST up to `top`.  Each block starts with a 16-byte header: the
 * size of the block before it and its own size with a tag and flags, so
 * the heap can be walked from the first block to top and a block's
 * neighbours are found both ways (boundary tags).  Free blocks keep their
 * list links (offsets from the window base) in their first 16 payload
 * bytes.  Small requests (up to 1 KiB) are rounded to one of 20 size
 * classes, each with a LIFO list: O(1) both ways, never coalesced, carved
 * from top when the list is empty.  Larger blocks live on one
 * address-ordered first-fit list; a freed large block merges with free
 * large neighbours.  A block freed at the end of the heap lowers top, and
 * every free block before it goes too, so the block before top is never
 * free.  Carving past committed_end commits whole granules with
 * vmc_commit; when the VM's limit or the pool refuses, runs of free
 * blocks (small ones too) are merged once (dlmalloc's consolidation) and
 * the request retried.  Every check is made before anything is written,
 * so a failure leaves the heap as it was.
 */
#include "container.h"
#include "vm.h"
#include "window.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define HEAP_MAGIC   0x3150414548434d56ull   /* "VMCHEAP1" little-endian */
#define HEAP_VERSION 1u
#define NCLASSES     20
#define SMALL_MAX    1024u      /* largest small payload                       */
#define HDR          16u        /* block header                                */
#define MIN_BLOCK    32u        /* header + two list links                     */
#define MIN_SPLIT    64u        /* a split must leave a free block this big    */

/* Block header word: tag | size | flags.  Sizes are multiples of 16 below
 * 2^48; the tag in the top 16 bits catches most pointers that are not
 * blocks. */
#define TAG       (0xb10cull << 48)
#define TAG_MASK  (0xffffull << 48)
#define SIZE_MASK 0x0000fffffffffff0ull
#define F_FREE    1u            /* on a free list                              */
#define F_SMALL   2u            /* a size-class block: never coalesced         */
#define F_MASK    0xfull

struct heap {
	uint64_t magic;          /* HEAP_MAGIC: written last at set-up          */
	uint32_t version;
	uint32_t hdr_size;       /* sizeof(struct heap)                         */
	void    *root;           /* vmc_vm_root()                               */
	uint64_t top;            /* offset: end of the carved area              */
	uint64_t committed_end;  /* offset: end of the granules committed       */
	uint64_t last;           /* size of the block that ends at top, 0: none */
	uint64_t large;          /* first free large block (offset), 0: none    */
	uint64_t in_use;         /* bytes of blocks in use, headers included    */
	uint64_t allocs, frees;
	uint64_t cons_frees;     /* `frees` at the last consolidation           */
	uint64_t small[NCLASSES];/* free list of each size class                */
};

#define HEAP_FIRST ((sizeof(struct heap) + 15) & ~(uint64_t)15)

/* A block.  next_free and prev_free exist only while the block is free
 * (they are its first payload bytes). */
struct blk {
	uint64_t prev;           /* size of the block before, 0 for the first   */
	uint64_t word;           /* TAG | size | flags                          */
	uint64_t next_free, prev_free;
};

_Static_assert(sizeof(struct blk) == MIN_BLOCK, "block links fit the smallest block");
_Static_assert(HEAP_FIRST % 16 == 0 && HEAP_FIRST < VMC_GRANULE_SIZE, "heap header");

#define BLK(h, off) ((struct blk *)((char *)(h) + (off)))

static const uint16_t class_size[NCLASSES] = {
	16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	384, 512, 768, 1024,
};

/* The class of a payload of n bytes, 1 <= n <= SMALL_MAX. */
static inline unsigned size_class(size_t n)
{
	if (n <= 256)
		return (unsigned)((n + 15) >> 4) - 1;
	return n <= 384 ? 16 : n <= 512 ? 17 : n <= 768 ? 18 : 19;
}

/* The class of a small block of `size` bytes, or -1 if no class has it. */
static inline int block_class(uint64_t size)
{
	uint64_t p = size - HDR;
	if (size < MIN_BLOCK || p > SMALL_MAX)
		return -1;
	unsigned k = size_class((size_t)p);
	return class_size[k] == p ? (int)k : -1;
}

static inline uint64_t bsize(const struct blk *b)
{
	return b->word & SIZE_MASK;
}

static inline void set_hdr(struct blk *b, uint64_t size, unsigned flags)
{
	b->word = TAG | size | flags;
}

static inline int free_large(const struct blk *b)
{
	return (b->word & (F_FREE | F_SMALL)) == F_FREE;
}

/* The block that ends at `end` is now `size` bytes: tell its successor. */
static inline void set_prev_of(struct heap *h, uint64_t end, uint64_t size)
{
	if (end == h->top)
		h->last = size;
	else
		BLK(h, end)->prev = size;
}

/* One heap operation: the handle, the VM and its heap. */
struct ctx {
	struct vmc *c;
	struct heap *h;
	uint32_t vm;
};

/* ------------------------------------------------------------ free lists */

static inline uint64_t *head_of(struct heap *h, const struct blk *b)
{
	return (b->word & F_SMALL) ? &h->small[block_class(bsize(b))] : &h->large;
}

static void unlink_blk(struct heap *h, uint64_t *head, struct blk *b)
{
	if (b->prev_free)
		BLK(h, b->prev_free)->next_free = b->next_free;
	else
		*head = b->next_free;
	if (b->next_free)
		BLK(h, b->next_free)->prev_free = b->prev_free;
}

/* Put block `off` where a block with links (next, prev) was: used when a
 * free block is split or merged, which keeps the address order.  The links
 * are passed by value because the new block may overlap the old one. */
static void link_at(struct heap *h, uint64_t *head, uint64_t off, uint64_t next, uint64_t prev)
{
	struct blk *b = BLK(h, off);
	b->next_free = next;
	b->prev_free = prev;
	if (prev)
		BLK(h, prev)->next_free = off;
	else
		*head = off;
	if (next)
		BLK(h, next)->prev_free = off;
}

static void push_small(struct heap *h, unsigned cls, uint64_t off)
{
	struct blk *b = BLK(h, off);
	b->prev_free = 0;
	b->next_free = h->small[cls];
	if (b->next_free)
		BLK(h, b->next_free)->prev_free = off;
	h->small[cls] = off;
}

static inline uint64_t pop_small(struct heap *h, unsigned cls)
{
	uint64_t off = h->small[cls];
	struct blk *b;

	if (!off)
		return 0;
	b = BLK(h, off);
	vmc_assert(off >= HEAP_FIRST && off < h->top);
	vmc_assert(b->word == (TAG | (class_size[cls] + HDR) | F_FREE | F_SMALL));
	h->small[cls] = b->next_free;
	if (b->next_free)
		BLK(h, b->next_free)->prev_free = 0;
	b->word &= ~(uint64_t)F_FREE;
	return off;
}

/* Insert free large block `off` into the address-ordered list. */
static void insert_large(struct heap *h, uint64_t off)
{
	uint64_t prev = 0, cur = h->large;
	while (cur && cur < off) {
		prev = cur;
		cur = BLK(h, cur)->next_free;
	}
	link_at(h, &h->large, off, cur, prev);
}

/* The free blocks at the end of the heap go: block `off` (on no list)
 * ends at top; top drops to it, then to every free block before it. */
static void drop_tail(struct heap *h, uint64_t off)
{
	uint64_t prev = BLK(h, off)->prev;

	for (;;) {
		h->top = off;
		h->last = prev;
		if (!prev)
			break;
		struct blk *b = BLK(h, off - prev);
		if (!(b->word & F_FREE))
			break;
		unlink_blk(h, head_of(h, b), b);
		off -= prev;
		prev = b->prev;
	}
}

/* Give back in-use block `off`: a small block to its class, a large one
 * merged with its free large neighbours; either lowers top at the end. */
static void release_block(struct heap *h, uint64_t off)
{
	struct blk *b = BLK(h, off), *nb, *pb;
	uint64_t size = bsize(b), start = off, end = off + size;
	int next_free, prev_free;

	if (end == h->top) {
		drop_tail(h, off);
		return;
	}
	if (b->word & F_SMALL) {
		b->word |= F_FREE;
		push_small(h, (unsigned)block_class(size), off);
		return;
	}
	nb = BLK(h, end);
	pb = b->prev ? BLK(h, off - b->prev) : NULL;
	next_free = free_large(nb);
	prev_free = pb && free_large(pb);
	if (next_free)
		end += bsize(nb);
	if (prev_free) {
		start = off - b->prev;         /* pb keeps its place in the list */
		if (next_free)
			unlink_blk(h, &h->large, nb);
	} else if (next_free) {
		link_at(h, &h->large, off, nb->next_free, nb->prev_free);
	} else {
		insert_large(h, off);
	}
	set_hdr(BLK(h, start), end - start, F_FREE);
	set_prev_of(h, end, end - start);
}

/* Merge every run of adjacent free blocks, small ones included, into one
 * free large block and rebuild the lists (a lone small block goes back to
 * its class).  O(heap): only when the heap cannot grow. */
static void consolidate(struct heap *h)
{
	uint64_t off = HEAP_FIRST, tail = 0;

	memset(h->small, 0, sizeof h->small);
	h->large = 0;
	while (off < h->top) {
		struct blk *s = BLK(h, off);
		uint64_t start = off;
		unsigned n = 0;

		if (!(s->word & F_FREE)) {
			off += bsize(s);
			continue;
		}
		while (off < h->top && (BLK(h, off)->word & F_FREE)) {
			off += bsize(BLK(h, off));
			n++;
		}
		if (off == h->top) {           /* cannot happen: the block before top is in use */
			drop_tail(h, start);
			break;
		}
		if (n == 1 && (s->word & F_SMALL)) {
			push_small(h, (unsigned)block_class(off - start), start);
			continue;
		}
		set_hdr(s, off - start, F_FREE);
		BLK(h, off)->prev = off - start;
		s->next_free = 0;
		s->prev_free = tail;
		if (tail)
			BLK(h, tail)->next_free = start;
		else
			h->large = start;
		tail = start;
	}
	h->cons_frees = h->frees;
}

/* ------------------------------------------------------------ allocation */

static const char *vm_name(struct ctx *x)
{
	return x->c->vms[x->vm].name;
}

/* Make the window up to `end` committed: whole granules, by vmc_commit. */
static int grow(struct ctx *x, uint64_t end)
{
	struct heap *h = x->h;
	uint64_t to = (end + VMC_GRANULE_SIZE - 1) & ~(uint64_t)(VMC_GRANULE_SIZE - 1);
	char why[256];
	int err;

	err = vmc_commit(x->c, (char *)h + h->committed_end, to - h->committed_end,
			 VMC_COMMIT_NOZERO);
	if (likely(!err)) {
		h->committed_end = to;
		return 0;
	}
	snprintf(why, sizeof why, "%s", vmc_errmsg());
	return vmc_fail(err, "VM %s out of memory: limit %llu MiB (the heap has %llu MiB "
			"committed, %llu MiB in use, and needs %llu MiB more): %s",
			vm_name(x), (unsigned long long)(x->c->vms[x->vm].limit >> 20),
			(unsigned long long)(h->committed_end >> 20),
			(unsigned long long)(h->in_use >> 20),
			(unsigned long long)((to - h->committed_end) >> 20), why);
}

/* A new block of `size` bytes at top, or 0. */
static uint64_t carve(struct ctx *x, uint64_t size, unsigned flags)
{
	struct heap *h = x->h;
	uint64_t off = h->top;
	struct blk *b;

	if (size > x->c->h.window_size - off) {
		vmc_fail(ENOMEM, "VM %s out of memory: the heap spans %llu MiB and %llu more "
			 "bytes do not fit in the %llu MiB window", vm_name(x),
			 (unsigned long long)(off >> 20), (unsigned long long)size,
			 (unsigned long long)(x->c->h.window_size >> 20));
		return 0;
	}
	if (off + size > h->committed_end && grow(x, off + size))
		return 0;
	b = BLK(h, off);
	b->prev = h->last;
	set_hdr(b, size, flags);
	h->top = off + size;
	h->last = size;
	return off;
}

/* First fit on the large list for a block of `size` bytes.  For a small
 * block (exhaustion only) the fit must be exact or leave a split. */
static uint64_t fit(struct heap *h, uint64_t size, unsigned flags)
{
	for (uint64_t off = h->large; off; off = BLK(h, off)->next_free) {
		struct blk *b = BLK(h, off);
		uint64_t have = bsize(b);

		vmc_assert(off >= HEAP_FIRST && off < h->top && free_large(b));
		if (have < size || ((flags & F_SMALL) && have != size && have - size < MIN_SPLIT))
			continue;
		if (have - size >= MIN_SPLIT) {
			uint64_t r = off + size;
			link_at(h, &h->large, r, b->next_free, b->prev_free);
			BLK(h, r)->prev = size;
			set_hdr(BLK(h, r), have - size, F_FREE);
			set_prev_of(h, off + have, have - size);
			have = size;
		} else {
			unlink_blk(h, &h->large, b);
		}
		set_hdr(b, have, flags);
		return off;
	}
	return 0;
}

/* A block of `size` bytes (a class size if small), or 0 with the reason
 * in vmc_errmsg(). */
static uint64_t take(struct ctx *x, uint64_t size, unsigned flags)
{
	struct heap *h = x->h;
	uint64_t off, top;

	if (!(flags & F_SMALL) && (off = fit(h, size, flags)))
		return off;
	if ((off = carve(x, size, flags)))
		return off;
	/* the heap cannot grow: merge what small frees left scattered (if
	 * anything was freed since the last time), and let a small request
	 * split a large free block */
	top = h->top;
	if (h->frees != h->cons_frees) {
		consolidate(h);
		if ((flags & F_SMALL) && (off = pop_small(h, (unsigned)block_class(size))))
			return off;
	}
	if ((off = fit(h, size, flags)))
		return off;
	return h->top < top ? carve(x, size, flags) : 0;
}

static void *alloc_n(struct ctx *x, size_t n)
{
	struct heap *h = x->h;
	uint64_t off;

	if (likely(n <= SMALL_MAX)) {
		unsigned cls = size_class(n);
		if (!(off = pop_small(h, cls)) && !(off = take(x, class_size[cls] + HDR, F_SMALL)))
			return NULL;
	} else {
		if (unlikely(n > x->c->h.window_size)) {
			vmc_fail(EINVAL, "vmc_heap_alloc: %zu bytes is more than the window "
				 "(%llu MiB)", n, (unsigned long long)(x->c->h.window_size >> 20));
			return NULL;
		}
		if (!(off = take(x, ((uint64_t)n + HDR + 15) & ~(uint64_t)15, 0)))
			return NULL;
	}
	h->in_use += bsize(BLK(h, off));
	h->allocs++;
	return (char *)h + off + HDR;
}

/* --------------------------------------------------------- finding a heap */

/* Set up a heap on the attached VM (x->vm), whose granule 0 has page-map
 * entry e: commit granule 0 if needed and write the header.  With
 * create == 0 only report: x->h = NULL if there is no heap yet. */
static int setup(struct ctx *x, uint32_t e, int create)
{
	struct vmc *c = x->c;
	struct heap *h = c->arena;
	int err;

	if (e == VMC_NIL) {
		if (!create) {
			x->h = NULL;
			return 0;
		}
		if ((err = vmc_commit(c, h, VMC_GRANULE_SIZE, 0))) {
			char why[256];
			snprintf(why, sizeof why, "%s", vmc_errmsg());
			return vmc_fail(err, "VM %s out of memory: limit %llu MiB: cannot set up "
					"its heap: %s", vm_name(x),
					(unsigned long long)(c->vms[x->vm].limit >> 20), why);
		}
	} else {
		if (e & PM_PROT_MASK)
			return vmc_fail(EACCES, "VM %s: window offset 0 is not read-write "
					"(vmc_protect), so it cannot hold a heap", vm_name(x));
		if (h->magic == HEAP_MAGIC) {
			if (h->version != HEAP_VERSION || h->hdr_size != sizeof *h)
				return vmc_fail(VMC_EVERSION, "VM %s: its heap has version %u "
						"(header %u bytes); this library reads version %u",
						vm_name(x), h->version, h->hdr_size, HEAP_VERSION);
			return 0;
		}
		/* committed by someone else: a heap only on memory nobody used */
		const uint64_t *w = (const uint64_t *)(void *)h;
		for (size_t i = 0; i < VMC_GRANULE_SIZE / sizeof *w; i++)
			if (w[i])
				return vmc_fail(EINVAL, "VM %s: window offset %#zx holds data that "
						"is not a vmc heap (%#llx); the heap needs offset "
						"0 up to itself", vm_name(x), i * sizeof *w,
						(unsigned long long)w[i]);
		if (!create) {
			x->h = NULL;
			return 0;
		}
	}
	memset(h, 0, sizeof *h);
	h->version = HEAP_VERSION;
	h->hdr_size = sizeof *h;
	h->top = HEAP_FIRST;
	h->committed_end = VMC_GRANULE_SIZE;
	__atomic_store_n(&h->magic, HEAP_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* Enter a heap call: the handle, the attached VM, its heap (set up if
 * create and there is none; x->h is NULL if !create and there is none). */
static inline int heap_enter(struct vmc *c, struct ctx *x, int create)
{
	uint32_t vm, e;
	struct heap *h;
	int err;

	if (unlikely(err = vmc_enter(c)))
		return err;
	if (unlikely((vm = c->win->attached) == VMC_NIL))
		return vmc_fail(VMC_ENOTATTACHED, "the in-VM heap needs a VM attached in this "
				"worker");
	e = vm_pagemap(c, vm)[0];
	h = c->arena;
	x->c = c;
	x->vm = vm;
	x->h = h;
	/* granule 0 committed read-write (never touch the window before
	 * knowing it is mapped) and holding our header */
	if (likely(e != VMC_NIL && !(e & PM_PROT_MASK) && h->magic == HEAP_MAGIC &&
		   h->version == HEAP_VERSION))
		return 0;
	return setup(x, e, create);
}

/* The block of user pointer p, or 0 (and *why) if p is not a block in use
 * of this heap.  Cheap enough for every free: the block's header and both
 * neighbours' sizes must agree. */
static uint64_t block_of(const struct heap *h, const void *p, const char **why)
{
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)h;
	uint64_t off, size, w;
	const struct blk *b;

	if (a < base + HEAP_FIRST + HDR || a - base >= h->top) {
		*why = "not inside the heap";
		return 0;
	}
	if (a & 15) {
		*why = "misaligned";
		return 0;
	}
	off = a - base - HDR;
	b = BLK(h, off);
	w = b->word;
	size = w & SIZE_MASK;
	if ((w & TAG_MASK) != TAG || (w & F_MASK & ~(uint64_t)(F_FREE | F_SMALL)) ||
	    size < MIN_BLOCK || size > h->top - off || (b->prev & 15) ||
	    b->prev > off - HEAP_FIRST || !b->prev != (off == HEAP_FIRST) ||
	    ((w & F_SMALL) && block_class(size) < 0)) {
		*why = "not the start of a heap block";
		return 0;
	}
	if (w & F_FREE) {
		*why = "freed already (double free)";
		return 0;
	}
	if ((b->prev && (BLK(h, off - b->prev)->word & (TAG_MASK | SIZE_MASK)) != (TAG | b->prev)) ||
	    (off + size == h->top ? h->last : BLK(h, off + size)->prev) != size) {
		*why = "its neighbours do not agree (freed already, or the heap is corrupt)";
		return 0;
	}
	return off;
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

/* ------------------------------------------------------------ public API */

void *vmc_heap_alloc(vmc_t *c, size_t n)
{
	struct ctx x;

	if (unlikely(heap_enter(c, &x, 1)))
		return NULL;
	if (unlikely(!n)) {
		vmc_fail(EINVAL, "vmc_heap_alloc: size 0");
		return NULL;
	}
	return alloc_n(&x, n);
}

void vmc_heap_free(vmc_t *c, void *p)
{
	struct ctx x;
	const char *why;
	uint64_t off;

	if (!p || heap_enter(c, &x, 0))
		return;
	if (unlikely(!x.h)) {
		bad_pointer("vmc_heap_free", p, "the attached VM has no heap");
		return;
	}
	if (unlikely(!(off = block_of(x.h, p, &why)))) {
		bad_pointer("vmc_heap_free", p, why);
		return;
	}
	x.h->in_use -= bsize(BLK(x.h, off));
	x.h->frees++;
	release_block(x.h, off);
}

/* Shrink large block `off` to `need` bytes if the rest is worth a block. */
static void shrink_in_place(struct heap *h, uint64_t off, uint64_t need)
{
	struct blk *b = BLK(h, off);
	uint64_t size = bsize(b), r = off + need;

	if (size - need < MIN_SPLIT)
		return;
	set_hdr(b, need, 0);
	BLK(h, r)->prev = need;
	set_hdr(BLK(h, r), size - need, 0);
	h->in_use -= size - need;
	release_block(h, r);
}

/* Grow large block `off` to `need` bytes where it is: into a free large
 * successor, or by moving top.  1 if done; 0 (nothing changed) if not. */
static int grow_in_place(struct ctx *x, uint64_t off, uint64_t need)
{
	struct heap *h = x->h;
	struct blk *b = BLK(h, off), *nb;
	uint64_t size = bsize(b), end = off + size, total;

	if (end == h->top) {
		if (need - size > x->c->h.window_size - end)
			return 0;
		if (off + need > h->committed_end && grow(x, off + need))
			return 0;
		set_hdr(b, need, 0);
		h->top = off + need;
		h->last = need;
		h->in_use += need - size;
		return 1;
	}
	nb = BLK(h, end);
	if (!free_large(nb) || (total = size + bsize(nb)) < need)
		return 0;
	if (total - need >= MIN_SPLIT) {
		uint64_t r = off + need, next = nb->next_free, prev = nb->prev_free;
		set_hdr(BLK(h, r), total - need, F_FREE);
		BLK(h, r)->prev = need;
		link_at(h, &h->large, r, next, prev);
		set_prev_of(h, off + total, total - need);
	} else {
		unlink_blk(h, &h->large, nb);
		need = total;
		set_prev_of(h, off + total, total);
	}
	set_hdr(b, need, 0);
	h->in_use += need - size;
	return 1;
}

void *vmc_heap_realloc(vmc_t *c, void *p, size_t n)
{
	struct ctx x;
	const char *why;
	uint64_t off, size, need;
	void *q;

	if (!p)
		return vmc_heap_alloc(c, n);
	if (!n) {
		vmc_heap_free(c, p);
		return NULL;
	}
	if (heap_enter(c, &x, 0))
		return NULL;
	if (!x.h || !(off = block_of(x.h, p, &why))) {
		bad_pointer("vmc_heap_realloc", p, x.h ? why : "the attached VM has no heap");
		return NULL;
	}
	if (n > x.c->h.window_size) {
		vmc_fail(EINVAL, "vmc_heap_realloc: %zu bytes is more than the window (%llu MiB)",
			 n, (unsigned long long)(x.c->h.window_size >> 20));
		return NULL;
	}
	size = bsize(BLK(x.h, off));
	if (BLK(x.h, off)->word & F_SMALL) {
		if (n <= SMALL_MAX && class_size[size_class(n)] + HDR == size)
			return p;
	} else {
		need = VMC_MAX(((uint64_t)n + HDR + 15) & ~(uint64_t)15, MIN_BLOCK);
		if (need <= size) {
			shrink_in_place(x.h, off, need);
			return p;
		}
		if (grow_in_place(&x, off, need))
			return p;
	}
	if (!(q = alloc_n(&x, n)))
		return n <= size - HDR ? p : NULL;   /* a shrink that could not move */
	vmc_clear_error();
	memcpy(q, p, VMC_MIN(n, size - HDR));
	x.h->in_use -= size;
	x.h->frees++;
	release_block(x.h, off);
	return q;
}

void **vmc_vm_root(vmc_t *c)
{
	struct ctx x;

	if (heap_enter(c, &x, 1))
		return NULL;
	return &x.h->root;
}

/* ---------------------------------------------------------------- check */

static int corrupt(struct ctx *x, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int corrupt(struct ctx *x, uint64_t off, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return vmc_fail(VMC_ECORRUPT, "heap of VM %s is corrupt at window offset %#llx: %s",
			vm_name(x), (unsigned long long)off, what);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Walk one free list: every member is a free block found by the walk
 * (frees[0..nfree), sorted), of the right kind, listed once, with
 * consistent back links.  *count receives the members. */
static int check_list(struct ctx *x, uint64_t head, int cls, const uint64_t *frees,
		      uint64_t nfree, uint8_t *seen, uint64_t *count)
{
	struct heap *h = x->h;
	uint64_t prev = 0, n = 0;

	for (uint64_t off = head; off; off = BLK(h, off)->next_free) {
		const uint64_t *at = bsearch(&off, frees, nfree, sizeof *frees, cmp_u64);
		const char *list = cls < 0 ? "the large list" : "a size-class list";
		if (!at)
			return corrupt(x, off, "%s holds a block that is not free in the heap "
				       "(after %#llx)", list, (unsigned long long)prev);
		size_t i = (size_t)(at - frees);
		if (seen[i / 8] & (1u << (i % 8)))
			return corrupt(x, off, "the block is on the free lists twice");
		seen[i / 8] |= (uint8_t)(1u << (i % 8));
		struct blk *b = BLK(h, off);
		if (cls < 0 ? !free_large(b) : (!(b->word & F_SMALL) || block_class(bsize(b)) != cls))
			return corrupt(x, off, "a %s block on %s", (b->word & F_SMALL) ? "small" :
				       "large", list);
		if (cls < 0 && prev >= off && prev)
			return corrupt(x, off, "the large list is out of address order");
		if (b->prev_free != prev)
			return corrupt(x, off, "back link %#llx, expected %#llx",
				       (unsigned long long)b->prev_free, (unsigned long long)prev);
		prev = off;
		n++;
	}
	*count += n;
	return 0;
}

static int check(struct ctx *x)
{
	struct heap *h = x->h;
	const uint32_t *pm = vm_pagemap(x->c, x->vm);
	uint64_t off, prev = 0, in_use = 0, live = 0, nfree = 0, cap = 0;
	uint64_t nsmall = 0, nlarge = 0, listed_small = 0, listed_large = 0;
	uint64_t *frees = NULL;
	uint8_t *seen = NULL;
	int err = 0, prev_free_large = 0;

	if (h->committed_end % VMC_GRANULE_SIZE || h->committed_end > x->c->h.window_size ||
	    h->top < HEAP_FIRST || h->top > h->committed_end || h->top % 16)
		return corrupt(x, 0, "header: top %#llx, committed_end %#llx",
			       (unsigned long long)h->top, (unsigned long long)h->committed_end);
	for (uint64_t g = 0; g < h->committed_end >> VMC_GRANULE_SHIFT; g++)
		if (pm[g] == VMC_NIL || (pm[g] & PM_PROT_MASK))
			return corrupt(x, g << VMC_GRANULE_SHIFT, "the heap's granule is %s",
				       pm[g] == VMC_NIL ? "not committed (released under the heap?)"
						       : "not read-write");
	for (off = HEAP_FIRST; off < h->top; off += bsize(BLK(h, off))) {
		struct blk *b = BLK(h, off);
		uint64_t size = bsize(b);
		if ((b->word & TAG_MASK) != TAG || (b->word & F_MASK & ~(uint64_t)(F_FREE | F_SMALL)) ||
		    size < MIN_BLOCK || size > h->top - off) {
			err = corrupt(x, off, "bad block header %#llx", (unsigned long long)b->word);
			goto out;
		}
		if (off + size < h->top && BLK(h, off + size)->prev != size) {
			err = corrupt(x, off, "a block of %llu bytes, but the next block's prev_size "
				      "says %llu", (unsigned long long)size,
				      (unsigned long long)BLK(h, off + size)->prev);
			goto out;
		}
		if (b->prev != prev) {
			err = corrupt(x, off, "prev_size %llu, but the block before is %llu bytes",
				      (unsigned long long)b->prev, (unsigned long long)prev);
			goto out;
		}
		if ((b->word & F_SMALL) && block_class(size) < 0) {
			err = corrupt(x, off, "small block of %llu bytes: no such class",
				      (unsigned long long)size);
			goto out;
		}
		if (b->word & F_FREE) {
			if (!(b->word & F_SMALL) && prev_free_large) {
				err = corrupt(x, off, "two adjacent free large blocks");
				goto out;
			}
			if (nfree == cap) {
				uint64_t *v = realloc(frees, (cap = cap ? cap * 2 : 256) * sizeof *v);
				if (!v) {
					err = vmc_fail(ENOMEM, "out of memory");
					goto out;
				}
				frees = v;
			}
			frees[nfree++] = off;
			if (b->word & F_SMALL)
				nsmall++;
			else
				nlarge++;
		} else {
			in_use += size;
			live++;
		}
		prev_free_large = free_large(b);
		prev = size;
	}
	if (h->last != prev) {
		err = corrupt(x, h->top, "the block before top is %llu bytes, the header says %llu",
			      (unsigned long long)prev, (unsigned long long)h->last);
		goto out;
	}
	if (prev && (BLK(h, h->top - prev)->word & F_FREE)) {
		err = corrupt(x, h->top - prev, "a free block ends at top");
		goto out;
	}
	if (in_use != h->in_use || live != h->allocs - h->frees) {
		err = corrupt(x, 0, "counters: %llu bytes in use in %llu blocks, the header says "
			      "%llu bytes in %llu blocks", (unsigned long long)in_use,
			      (unsigned long long)live, (unsigned long long)h->in_use,
			      (unsigned long long)(h->allocs - h->frees));
		goto out;
	}
	if (!(seen = calloc(nfree / 8 + 1, 1))) {
		err = vmc_fail(ENOMEM, "out of memory");
		goto out;
	}
	for (int k = 0; k < NCLASSES && !err; k++)
		err = check_list(x, h->small[k], k, frees, nfree, seen, &listed_small);
	if (!err)
		err = check_list(x, h->large, -1, frees, nfree, seen, &listed_large);
	if (!err && (listed_small != nsmall || listed_large != nlarge))
		err = corrupt(x, 0, "%llu small and %llu large free blocks, but the lists hold "
			      "%llu and %llu", (unsigned long long)nsmall, (unsigned long long)nlarge,
			      (unsigned long long)listed_small, (unsigned long long)listed_large);
out:
	free(frees);
	free(seen);
	return err;
}

int vmc_heap_stats(vmc_t *c, vmc_heap_stats_t *out, int check_it)
{
	struct ctx x;
	vmc_heap_stats_t st;
	int err;

	vmc_clear_error();
	if ((err = heap_enter(c, &x, 0)))
		return err;
	memset(&st, 0, sizeof st);
	if (x.h) {
		st.in_use = x.h->in_use;
		st.top = x.h->top;
		st.committed = x.h->committed_end;
		st.allocs = x.h->allocs;
		st.frees = x.h->frees;
	}
	if (out)
		*out = st;
	return x.h && check_it ? check(&x) : 0;
}

int heap_check(struct vmc *c)
{
	struct ctx x;
	uint32_t vm = c->win->attached, e;

	if (vm == VMC_NIL)
		return 0;
	e = vm_pagemap(c, vm)[0];
	x.c = c;
	x.vm = vm;
	x.h = c->arena;
	/* only a VM whose granule 0 is readable and holds a heap has one */
	if (e == VMC_NIL || (e & PM_PROT_MASK) == 2u << PM_PROT_SHIFT ||
	    x.h->magic != HEAP_MAGIC || x.h->version != HEAP_VERSION)
		return 0;
	return check(&x);
}
