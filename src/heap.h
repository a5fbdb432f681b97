/*
 * heap.h - the layout of the in-VM heap and what its files share.
 *
 * The heap lives in the attached VM's window from offset 0 up; every byte
 * of its metadata is in that memory, and every link is an offset from the
 * window base, so a heap works in any worker that attaches the VM.
 *
 *   offset 0    struct heap (< 4 KiB): counters, the root slot, the heads
 *               of the free-block bins and of the size classes' slab lists
 *   HEAP_FIRST  blocks up to `top`, each with a 16-byte boundary tag (the
 *               size of the block before it, and its own size and flags)
 *
 * A block is one of:
 *   large      in use, handed out as is (requests over SMALL_MAX);
 *   slab       in use, CHUNK-aligned, holding blocks of one size class
 *              with no header each (heap_slab.c), found from an address
 *              through the chunk map (a byte per CHUNK, itself a large
 *              block);
 *   free       on a bin (heap_large.c); whole granules inside it may have
 *              been given back to the pool (heap_trim.c): F_HOLEY says some
 *              may be missing, F_TRIMMED that none is left to give.
 * Above top, [top, ready) is committed; nothing the heap committed lies at
 * or above `end`.
 */
#ifndef VMC_HEAP_H
#define VMC_HEAP_H

#include "meta.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define HEAP_MAGIC   0x3250414548434d56ull   /* "VMCHEAP2" little-endian */
#define HEAP_VERSION 2u
#define HEAP_DECAY_MS 1000u   /* free memory older than this goes back to the pool */

#define HDR        16u        /* boundary tag of every block                    */
#define MIN_BLOCK  48u        /* a free block: tag, bin links, the time it was freed */
#define FREE_KEEP  40u        /* bytes of a free block that stay committed       */
#define SMALL_MAX  1024u      /* largest request served from a slab              */
#define NCLASSES   32
#define NBINS      320        /* a multiple of 64; sizes below 2^44 need 304 */
#define GROW_MIN   (64u << 10)  /* commit at least this much at a time (small granules) */
#define CHUNK_SHIFT 12
#define CHUNK      (1u << CHUNK_SHIFT)

/* Block tag word: TAG | size | flags.  Sizes are multiples of 16 below
 * 2^48; the tag in the top 16 bits catches most pointers that are not
 * blocks. */
#define TAG       (0xb10cull << 48)
#define TAG_MASK  (0xffffull << 48)
#define SIZE_MASK 0x0000fffffffffff0ull
#define F_FREE    1u          /* on a bin                                        */
#define F_SLAB    2u          /* in use as a slab                                */
#define F_HOLEY   4u          /* free: some whole granules inside may be released */
#define F_TRIMMED 8u          /* free: every granule inside that can go has gone */
#define F_MASK    0xfull

struct heap {
	uint64_t magic;          /* HEAP_MAGIC: written last at set-up          */
	uint32_t version;
	uint32_t hdr_size;       /* sizeof(struct heap)                         */
	void    *root;           /* vmc_vm_root()                               */
	uint32_t gshift;         /* log2 of the granule size                    */
	uint32_t decay_ms;
	uint64_t top;            /* offset: end of the last block               */
	uint64_t ready;          /* offset: [top, ready) is committed           */
	uint64_t end;            /* offset: nothing at or above it is the heap's */
	uint64_t last;           /* size of the block that ends at top, 0: none */
	uint64_t committed;      /* bytes of granules committed below end       */
	uint64_t peak;           /* high-water mark of committed                */
	uint64_t in_use;         /* bytes of the blocks handed out              */
	uint64_t allocs, frees;
	uint64_t cmap;           /* offset of the chunk map, 0: none            */
	uint64_t cmap_n;         /* chunks it covers                            */
	uint64_t slabs;
	uint64_t empty_slabs;    /* slabs with no slot in use                   */
	uint64_t untrimmed;      /* free blocks with a granule that could go    */
	uint64_t tail_since;     /* ms: when the committed tail above top grew  */
	uint64_t last_pass;      /* ms: the last decay pass                     */
	uint64_t trims, trimmed; /* release calls, bytes released               */
	uint64_t binmap[NBINS / 64]; /* bit k: bins[k] is not empty             */
	uint64_t bins[NBINS];    /* free blocks by size (heap_large.c)          */
	uint64_t partial[NCLASSES]; /* slabs with a free slot, by class         */
};

#define HEAP_FIRST ((sizeof(struct heap) + 15) & ~(uint64_t)15)
_Static_assert(HEAP_FIRST <= 4096 - 256, "the heap header fits the smallest granule");

/* A block.  The fields after `word` exist only while it is free. */
struct blk {
	uint64_t prev;           /* size of the block before, 0 for the first   */
	uint64_t word;           /* TAG | size | flags                          */
	uint64_t next_free, prev_free;
	uint64_t since;          /* ms when it became free                      */
};
_Static_assert(sizeof(struct blk) == FREE_KEEP && FREE_KEEP <= MIN_BLOCK, "free block");
#define BIN_LINKS offsetof(struct blk, next_free)

#define BLK(h, off) ((struct blk *)((char *)(h) + (off)))

/* Doubly linked lists of blocks by offset (the free bins, the slab
 * lists): the links of the block at `off` sit at off + lo. */
struct links {
	uint64_t next, prev;
};

#define LINKS(h, off, lo) ((struct links *)((char *)(h) + (off) + (lo)))

static inline void list_push(struct heap *h, uint64_t *head, uint64_t off, size_t lo)
{
	struct links *n = LINKS(h, off, lo);

	n->prev = 0;
	n->next = *head;
	if (n->next)
		LINKS(h, n->next, lo)->prev = off;
	*head = off;
}

static inline void list_unlink(struct heap *h, uint64_t *head, uint64_t off, size_t lo)
{
	struct links *n = LINKS(h, off, lo);

	if (n->prev)
		LINKS(h, n->prev, lo)->next = n->next;
	else
		*head = n->next;
	if (n->next)
		LINKS(h, n->next, lo)->prev = n->prev;
}

/* One heap call: the handle, the attached VM, its page map and its heap. */
struct hx {
	struct vmc *c;
	struct heap *h;
	uint32_t *pm;
	uint32_t vm;
	uint32_t gshift;
	uint64_t span;       /* bytes of the window the VM may use: its span */
};

static inline uint64_t bsize(const struct blk *b)
{
	return b->word & SIZE_MASK;
}

static inline void set_hdr(struct blk *b, uint64_t size, unsigned flags)
{
	b->word = TAG | size | flags;
}

/* The block that ends at `end` is now `size` bytes: tell its successor. */
static inline void set_prev_of(struct heap *h, uint64_t end, uint64_t size)
{
	if (end == h->top)
		h->last = size;
	else
		BLK(h, end)->prev = size;
}

static inline uint64_t gran_up(const struct hx *x, uint64_t off)
{
	uint64_t g = (uint64_t)1 << x->gshift;
	return (off + g - 1) & ~(g - 1);
}

static inline uint64_t gran_down(const struct hx *x, uint64_t off)
{
	return off & ~(((uint64_t)1 << x->gshift) - 1);
}

/* Granule of window offset off committed read-write in the VM's page map. */
static inline int committed_at(const struct hx *x, uint64_t off)
{
	uint32_t e = x->pm[off >> x->gshift];
	return e != VMC_NIL && !(e & PM_PROT_MASK);
}

/* heap.c */
VMC_HIDDEN const char *heap_vm_name(const struct hx *x);
VMC_HIDDEN uint64_t heap_now_ms(void);
/* Enter for the library's own hooks: 1 and *x filled if the VM attached
 * here has a heap of this version on read-write memory, else 0. */
VMC_HIDDEN int heap_peek(struct vmc *c, struct hx *x);

/* heap_large.c: free blocks in bins, best fit, growth at top */
VMC_HIDDEN unsigned heap_bin_of(uint64_t size);
VMC_HIDDEN int heap_trimmable(const struct hx *x, uint64_t off, uint64_t size);
VMC_HIDDEN uint64_t large_take(struct hx *x, uint64_t size, unsigned flags);
VMC_HIDDEN uint64_t large_take_aligned(struct hx *x, uint64_t size);
VMC_HIDDEN void large_give(struct hx *x, uint64_t off);
VMC_HIDDEN void large_shrink(struct hx *x, uint64_t off, uint64_t need);
VMC_HIDDEN int large_grow(struct hx *x, uint64_t off, uint64_t need);
VMC_HIDDEN uint64_t large_move(struct hx *x, uint64_t off, uint64_t need);
VMC_HIDDEN uint64_t large_largest_free(const struct heap *h);

/* heap_slab.c: size classes and slabs (fast paths: heap_slab.h) */
VMC_HIDDEN uint64_t slab_release_empty(struct hx *x);
VMC_HIDDEN void slab_drop_map(struct hx *x);
VMC_HIDDEN int slab_check(struct hx *x, uint64_t slab, uint64_t size, uint64_t *in_use, char *why,
			  size_t n);
VMC_HIDDEN int slab_check_lists(const struct heap *h, uint64_t *count, uint64_t *empty, char *why,
				size_t n);

/* heap_trim.c: giving memory back */
VMC_HIDDEN void heap_tick(struct hx *x);
/* vmc_heap_trim: everything that can go, down to in_use + keep. */
VMC_HIDDEN int heap_trim_now(struct hx *x, uint64_t keep);
/* The library's hook at vmc_detach (attach.c): the decay check. */
VMC_HIDDEN void heap_on_detach(struct vmc *c);

/* heap_check.c: the walk */
VMC_HIDDEN int heap_verify(struct hx *x);

#endif
