/*
 * heap_check.c - the full check of the in-VM heap (vmc_heap_stats with
 * check, and vmc_check in debug builds): every block from HEAP_FIRST to
 * top is walked and every book the heap keeps is rebuilt and compared.
 *
 *  - the header: top, ready and end in order, the committed count equal
 *    to the granules the page map shows below end, [top, ready) committed;
 *  - each block: a valid tag, its size within top, the size of the block
 *    before it; in use (large or slab): every granule committed; free:
 *    its first FREE_KEEP bytes committed, all of it if not F_HOLEY, none
 *    of its inner granules if F_TRIMMED; never two free blocks in a row,
 *    never a free block before top;
 *  - slabs (heap_slab.c): header, chunk map, bitmap and count;
 *  - the counters: bytes and blocks in use, slabs, untrimmed blocks;
 *  - the bins: every member a free block of the walk, in its size's bin,
 *    linked both ways, listed once; the bitmap of non-empty bins; the
 *    slab lists hold exactly the slabs with a free slot.
 * The walk reads a tag only after the page map says its memory is there,
 * so a corrupt size is reported, never a fault.  O(heap).
 */
#include "heap_slab.h"
#include "vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct walk {
	uint64_t *frees, nfree, cap;
	uint64_t in_use, live, slabs, partial, chunks, untrimmed;
};

static int corrupt(const struct hx *x, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int corrupt(const struct hx *x, uint64_t off, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return vmc_fail(VMC_ECORRUPT, "heap of VM %s is corrupt at window offset %#llx: %s",
			heap_vm_name(x), (unsigned long long)off, what);
}

/* Every granule of [from, to) is committed (want 1) or released (want 0). */
static int granules_are(const struct hx *x, uint64_t from, uint64_t to, int want)
{
	for (uint64_t g = from >> x->gshift; g < (to + ((uint64_t)1 << x->gshift) - 1) >> x->gshift; g++)
		if ((x->pm[g] != VMC_NIL) != want)
			return 0;
	return 1;
}

static int check_header(const struct hx *x)
{
	const struct heap *h = x->h;
	uint64_t gmask = ((uint64_t)1 << x->gshift) - 1, n = 0;

	if (h->top < HEAP_FIRST || h->top % 16 || h->ready < h->top || h->end < h->ready ||
	    (h->ready & gmask) || (h->end & gmask) || h->end > x->span)
		return corrupt(x, 0, "header: top %#llx, ready %#llx, end %#llx",
			       (unsigned long long)h->top, (unsigned long long)h->ready,
			       (unsigned long long)h->end);
	for (uint64_t g = 0; g < h->end >> x->gshift; g++)
		n += x->pm[g] != VMC_NIL;
	if (n << x->gshift != h->committed)
		return corrupt(x, 0, "the header counts %llu bytes committed, the page map %llu",
			       (unsigned long long)h->committed, (unsigned long long)(n << x->gshift));
	if (!granules_are(x, h->top, h->ready, 1))
		return corrupt(x, h->top, "the granules up to %#llx are not all committed",
			       (unsigned long long)h->ready);
	return 0;
}

/* One free block: its commitment agrees with its flags; listed for the
 * bin check. */
static int check_free(const struct hx *x, uint64_t off, uint64_t size, struct walk *k)
{
	uint64_t w = BLK(x->h, off)->word;
	uint64_t from = gran_up(x, off + FREE_KEEP), to = gran_down(x, off + size);

	if ((w & F_SLAB) || ((w & F_TRIMMED) && !(w & F_HOLEY)))
		return corrupt(x, off, "a free block with flags %#llx", (unsigned long long)(w & F_MASK));
	if (!(w & F_HOLEY) && !granules_are(x, off, off + size, 1))
		return corrupt(x, off, "a free block misses granules but is not marked so");
	if ((w & F_TRIMMED) && from < to && !granules_are(x, from, to, 0))
		return corrupt(x, off, "a trimmed free block keeps granules");
	if (!(w & F_TRIMMED) && heap_trimmable(x, off, size))
		k->untrimmed++;
	if (k->nfree == k->cap) {
		uint64_t *v = realloc(k->frees, (k->cap = k->cap ? k->cap * 2 : 256) * sizeof *v);
		if (!v)
			return vmc_fail(ENOMEM, "out of memory");
		k->frees = v;
	}
	k->frees[k->nfree++] = off;
	return 0;
}

static int walk_blocks(struct hx *x, struct walk *k)
{
	struct heap *h = x->h;
	uint64_t off, prev = 0, prev_free = 0;
	char why[160];

	for (off = HEAP_FIRST; off < h->top; off += bsize(BLK(h, off))) {
		if (!granules_are(x, off, off + FREE_KEEP, 1))
			return corrupt(x, off, "a block tag in memory the heap gave back");
		struct blk *b = BLK(h, off);
		uint64_t size = bsize(b), w = b->word;
		if ((w & TAG_MASK) != TAG || size < MIN_BLOCK || size > h->top - off)
			return corrupt(x, off, "bad block tag %#llx", (unsigned long long)w);
		if (off + size < h->top && (!granules_are(x, off + size, off + size + HDR, 1) ||
					    BLK(h, off + size)->prev != size))
			return corrupt(x, off, "a block of %llu bytes, but the block after it does not "
				       "say so", (unsigned long long)size);
		if (b->prev != prev)
			return corrupt(x, off, "prev_size %llu, but the block before is %llu bytes",
				       (unsigned long long)b->prev, (unsigned long long)prev);
		if (w & F_FREE) {
			if (prev_free)
				return corrupt(x, off, "two free blocks in a row");
			if (check_free(x, off, size, k))
				return -1;
		} else {
			if (w & (F_HOLEY | F_TRIMMED))
				return corrupt(x, off, "a block in use with flags %#llx",
					       (unsigned long long)(w & F_MASK));
			if (!granules_are(x, off, off + size, 1))
				return corrupt(x, off, "a block in use misses granules");
			if (w & F_SLAB) {
				if (slab_check(x, off, size, &k->in_use, why, sizeof why))
					return corrupt(x, off, "%s", why);
				k->slabs++;
				k->live += SLAB(h, off)->used;
				k->partial += SLAB(h, off)->used < SLAB(h, off)->nslots;
				k->chunks += SLAB(h, off)->nchunks;
			} else if (off + HDR != h->cmap) {
				k->in_use += size;
				k->live++;
			}
		}
		prev_free = w & F_FREE;
		prev = size;
	}
	if (h->last != prev)
		return corrupt(x, h->top, "the block before top is %llu bytes, the header says %llu",
			       (unsigned long long)prev, (unsigned long long)h->last);
	if (prev_free)
		return corrupt(x, h->top - prev, "a free block ends at top");
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Every bin holds free blocks of the walk, of its sizes, linked both
 * ways, each once; together all of them. */
static int check_bins(const struct hx *x, const struct walk *k)
{
	const struct heap *h = x->h;
	uint8_t *seen = calloc(k->nfree / 8 + 1, 1);
	uint64_t listed = 0;
	int err = 0;

	if (!seen)
		return vmc_fail(ENOMEM, "out of memory");
	for (unsigned b = 0; b < NBINS && !err; b++) {
		if (!h->bins[b] != !(h->binmap[b / 64] & ((uint64_t)1 << (b % 64)))) {
			err = corrupt(x, 0, "bin %u and the bitmap of bins disagree", b);
			break;
		}
		for (uint64_t off = h->bins[b], prev = 0; off; prev = off, off = BLK(h, off)->next_free) {
			const uint64_t *at = bsearch(&off, k->frees, k->nfree, sizeof *k->frees, cmp_u64);
			size_t i = at ? (size_t)(at - k->frees) : 0;
			if (!at) {
				err = corrupt(x, off, "bin %u holds a block that is not free in the "
					      "heap (after %#llx)", b, (unsigned long long)prev);
				break;
			}
			if (seen[i / 8] & (1u << (i % 8))) {
				err = corrupt(x, off, "the block is in the bins twice");
				break;
			}
			seen[i / 8] |= (uint8_t)(1u << (i % 8));
			if (heap_bin_of(bsize(BLK(h, off))) != b || BLK(h, off)->prev_free != prev) {
				err = corrupt(x, off, "in bin %u with back link %#llx", b,
					      (unsigned long long)BLK(h, off)->prev_free);
				break;
			}
			listed++;
		}
	}
	if (!err && listed != k->nfree)
		err = corrupt(x, 0, "%llu free blocks, but the bins hold %llu",
			      (unsigned long long)k->nfree, (unsigned long long)listed);
	free(seen);
	return err;
}

static int check_books(const struct hx *x, const struct walk *k)
{
	const struct heap *h = x->h;
	uint64_t partial, empty, marked = 0;
	char why[160];

	if (k->in_use != h->in_use || k->live != h->allocs - h->frees)
		return corrupt(x, 0, "counters: %llu bytes in use in %llu blocks, the header says "
			       "%llu bytes in %llu blocks", (unsigned long long)k->in_use,
			       (unsigned long long)k->live, (unsigned long long)h->in_use,
			       (unsigned long long)(h->allocs - h->frees));
	if (k->slabs != h->slabs || k->untrimmed != h->untrimmed)
		return corrupt(x, 0, "%llu slabs and %llu untrimmed free blocks, the header says "
			       "%llu and %llu", (unsigned long long)k->slabs,
			       (unsigned long long)k->untrimmed, (unsigned long long)h->slabs,
			       (unsigned long long)h->untrimmed);
	if (slab_check_lists(h, &partial, &empty, why, sizeof why))
		return corrupt(x, 0, "%s", why);
	if (partial != k->partial || empty != h->empty_slabs)
		return corrupt(x, 0, "%llu slabs have a free slot, the class lists hold %llu (%llu "
			       "empty, the header says %llu)", (unsigned long long)k->partial,
			       (unsigned long long)partial, (unsigned long long)empty,
			       (unsigned long long)h->empty_slabs);
	if (h->cmap) {
		const struct blk *b = BLK(h, h->cmap - HDR);
		if (h->cmap < HEAP_FIRST + HDR || h->cmap >= h->top || (b->word & F_MASK) ||
		    bsize(b) < HDR + h->cmap_n)
			return corrupt(x, h->cmap, "the chunk map is not a block in use of %llu bytes",
				       (unsigned long long)h->cmap_n);
		for (uint64_t i = 0; i < h->cmap_n; i++)
			marked += ((const uint8_t *)h + h->cmap)[i] != 0;
	}
	if (marked != k->chunks)
		return corrupt(x, h->cmap, "the chunk map marks %llu chunks, the slabs have %llu",
			       (unsigned long long)marked, (unsigned long long)k->chunks);
	return 0;
}

int heap_verify(struct hx *x)
{
	struct walk k = { 0 };
	int err;

	if (!(err = check_header(x)) && !(err = walk_blocks(x, &k)) &&
	    !(err = check_bins(x, &k)))
		err = check_books(x, &k);
	free(k.frees);
	return err;
}
