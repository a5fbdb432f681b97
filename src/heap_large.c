/*
 * heap_large.c - the blocks of the in-VM heap: boundary tags, free blocks
 * sorted into bins for a best fit in O(1), and growth at top.
 *
 * Every block starts with a 16-byte tag (the size of the block before it,
 * its own size and flags), so a block's neighbours are found both ways and
 * the heap can be walked from HEAP_FIRST to top.  A freed block merges at
 * once with free neighbours, and a free block at the end of the heap is
 * not kept: top drops below it, so the block before top is never free.
 *
 * Free blocks sit in segregated bins, TLSF style: exact bins of 16 bytes
 * below 256 bytes, then eight bins per power of two, with a bitmap of the
 * bins that hold a block.  A request takes the best fit among the first
 * blocks of its own bin, else the first block of the first non-empty bin
 * whose every block is big enough (a bit scan), and only then grows the
 * heap at top, committing whole granules.  The rest of a block that was too big goes back to a bin.
 *
 * A free block may have given whole granules back to the pool
 * (heap_trim.c): its first FREE_KEEP bytes (tag, links, the time it was
 * freed) always stay committed, and taking memory from a block marked
 * F_HOLEY first commits what the new block and the remainder's tag need.
 * Every check is made before anything is written, so a failed commit
 * leaves the heap as it was.
 */
#include "heap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ bins */

unsigned heap_bin_of(uint64_t size)
{
	uint64_t u = size >> 4;
	unsigned fl;

	if (u < 16)
		return (unsigned)u;
	fl = 63 - (unsigned)__builtin_clzll(u);
	return 16 + (fl - 4) * 8 + (unsigned)((u >> (fl - 3)) & 7);
}

/* The first bin whose every block holds at least size bytes. */
static unsigned bin_up(uint64_t size)
{
	uint64_t u = (size + 15) >> 4, step;
	unsigned fl;

	if (u < 16)
		return (unsigned)u;
	fl = 63 - (unsigned)__builtin_clzll(u);
	step = (uint64_t)1 << (fl - 3);
	return heap_bin_of(((u + step - 1) & ~(step - 1)) << 4);
}

/* Free block [off, off+size) holds a whole granule past the part that
 * stays committed. */
int heap_trimmable(const struct hx *x, uint64_t off, uint64_t size)
{
	return gran_up(x, off + FREE_KEEP) < gran_down(x, off + size);
}

static int counts_untrimmed(const struct hx *x, const struct blk *b, uint64_t off)
{
	return !(b->word & F_TRIMMED) && heap_trimmable(x, off, bsize(b));
}

static void bin_insert(struct hx *x, uint64_t off)
{
	struct heap *h = x->h;
	struct blk *b = BLK(h, off);
	unsigned k = heap_bin_of(bsize(b));

	vmc_assert(k < NBINS && (b->word & F_FREE));
	list_push(h, &h->bins[k], off, BIN_LINKS);
	h->binmap[k / 64] |= (uint64_t)1 << (k % 64);
	h->untrimmed += (uint64_t)counts_untrimmed(x, b, off);
}

static void bin_remove(struct hx *x, uint64_t off)
{
	struct heap *h = x->h;
	struct blk *b = BLK(h, off);
	unsigned k = heap_bin_of(bsize(b));

	list_unlink(h, &h->bins[k], off, BIN_LINKS);
	if (!h->bins[k])
		h->binmap[k / 64] &= ~((uint64_t)1 << (k % 64));
	h->untrimmed -= (uint64_t)counts_untrimmed(x, b, off);
}

/* A free block of at least size bytes, or 0: the best fit among the first
 * blocks of the request's own bin, else the first block of the first bin
 * above it that holds one (every block there is big enough). */
static uint64_t bin_find(const struct heap *h, uint64_t size)
{
	uint64_t best = 0, have;
	unsigned k = bin_up(size), n = 0;

	for (uint64_t off = h->bins[heap_bin_of(size)]; off && n < 2; off = BLK(h, off)->next_free, n++)
		if ((have = bsize(BLK(h, off))) >= size && (!best || have < bsize(BLK(h, best)))) {
			best = off;
			if (have == size)
				break;
		}
	if (best)
		return best;
	for (unsigned w = k / 64; k < NBINS && w < NBINS / 64; w++) {
		uint64_t m = h->binmap[w];
		if (w == k / 64)
			m &= ~(uint64_t)0 << (k % 64);
		if (m)
			return h->bins[w * 64 + (unsigned)__builtin_ctzll(m)];
	}
	return 0;
}

/* ------------------------------------------------------------ commits */

static uint64_t granules_committed(const struct hx *x, uint64_t from, uint64_t to)
{
	uint64_t n = 0;
	for (uint64_t g = from >> x->gshift; g < to >> x->gshift; g++)
		n += x->pm[g] != VMC_NIL;
	return n;
}

/* Commit the granules of [from, to) (granule-aligned) that are not. */
static int heap_commit(struct hx *x, uint64_t from, uint64_t to)
{
	struct heap *h = x->h;
	uint64_t before = granules_committed(x, from, to), got;
	char why[256];
	int err;

	if (before == (to - from) >> x->gshift)
		return 0;
	err = vmc_commit(x->c, (char *)h + from, to - from, VMC_COMMIT_NOZERO | VMC_COMMIT_POPULATE);
	got = granules_committed(x, from, to) - before;   /* a system error may keep some */
	h->committed += got << x->gshift;
	h->peak = VMC_MAX(h->peak, h->committed);
	if (got)
		h->end = VMC_MAX(h->end, to);
	if (likely(!err))
		return 0;
	char lim[VMC_SIZE_STR], com[VMC_SIZE_STR], use[VMC_SIZE_STR], more[VMC_SIZE_STR];
	snprintf(why, sizeof why, "%s", vmc_errmsg());
	return vmc_fail(err, "VM %s out of memory: limit %s (the heap has %s committed, %s in "
			"use, and needs %s more): %s", heap_vm_name(x),
			vmc_size_str(x->c->vms[x->vm].limit, lim), vmc_size_str(h->committed, com),
			vmc_size_str(h->in_use, use),
			vmc_size_str((((to - from) >> x->gshift) - before) << x->gshift, more), why);
}

/* Commit what [from, to) needs (from granule-aligned), padded to GROW_MIN
 * past from but not past cap where the VM's limit allows: with small
 * granules the heap commits in fewer, bigger steps (with 2 MiB granules
 * one granule is more than the pad).  The end of what is committed now
 * from `from` on, or 0 with the reason in vmc_errmsg(). */
static uint64_t commit_ahead(struct hx *x, uint64_t from, uint64_t to, uint64_t cap)
{
	uint64_t need = gran_up(x, to);
	uint64_t want = gran_down(x, VMC_MAX(need, VMC_MIN(from + GROW_MIN, cap)));

	if (want > need && !heap_commit(x, from, want))
		return want;
	return heap_commit(x, from, need) ? 0 : need;
}

/* --------------------------------------------------------- free blocks */

/* [off, off+size) is a free block now. */
static void make_free(struct hx *x, uint64_t off, uint64_t size, unsigned flags, uint64_t since)
{
	struct blk *b = BLK(x->h, off);

	set_hdr(b, size, F_FREE | flags);
	b->since = since;
	set_prev_of(x->h, off + size, size);
	bin_insert(x, off);
}

/* Take [p, q) out of free block [a, b): the piece before p (none, or at
 * least MIN_BLOCK) and the piece after q (likewise) stay free.  The block
 * that will end at q starts at `owner` (p, or the block before a that
 * grows into it); the caller writes its tag.  On a failed commit nothing
 * changed. */
static int take_from(struct hx *x, uint64_t a, uint64_t p, uint64_t q, uint64_t owner)
{
	struct heap *h = x->h;
	struct blk *fb = BLK(h, a);
	uint64_t b = a + bsize(fb), since = fb->since;
	unsigned fl = (unsigned)(fb->word & (F_HOLEY | F_TRIMMED));

	vmc_assert(a <= p && p < q && q <= b && (p == a || p - a >= MIN_BLOCK));
	vmc_assert(q == b || b - q >= MIN_BLOCK);
	if (fl & F_HOLEY) {
		uint64_t to = commit_ahead(x, gran_down(x, p), q < b ? q + FREE_KEEP : q,
					   gran_down(x, b));
		if (!to)
			return -1;
		if (to > gran_up(x, q + FREE_KEEP))   /* the rest has granules to give again */
			fl &= ~(unsigned)F_TRIMMED;
	}
	bin_remove(x, a);
	if (q < b) {
		BLK(h, q)->prev = q - owner;
		make_free(x, q, b - q, fl, since);
	} else {
		set_prev_of(h, b, b - owner);
	}
	if (p > a) {
		set_hdr(fb, p - a, F_FREE | fl);
		BLK(h, p)->prev = p - a;
		bin_insert(x, a);
	}
	return 0;
}

/* Free space made of parts freed at different times is as old as its
 * biggest part: a small block freed now does not make a big free
 * neighbour wait another decay time, nor the other way round.  A free
 * block that gave back all it could (F_TRIMMED) has no age: memory freed
 * next to it now waits the decay time. */
struct age {
	uint64_t since, size;
};

static void age_add(struct age *a, uint64_t since, uint64_t size)
{
	if (size > a->size) {
		a->since = since;
		a->size = size;
	}
}

static void age_add_free(struct age *a, const struct blk *b)
{
	if (!(b->word & F_TRIMMED))
		age_add(a, b->since, bsize(b));
}

/* Top drops below block `off` (on no bin, freed now), which ends at top,
 * and below every free block before it; holey: `off` has given granules
 * back. */
static void drop_tail(struct hx *x, uint64_t off, int holey)
{
	struct heap *h = x->h;
	uint64_t prev = BLK(h, off)->prev, tail = h->end - gran_up(x, h->top);
	struct age age = { h->tail_since, tail };

	age_add(&age, heap_now_ms(), h->top - off);
	for (;;) {
		h->top = off;
		h->last = prev;
		if (!prev)
			break;
		struct blk *b = BLK(h, off - prev);
		if (!(b->word & F_FREE))
			break;
		holey |= !!(b->word & F_HOLEY);
		age_add_free(&age, b);
		bin_remove(x, off - prev);
		off -= prev;
		prev = b->prev;
	}
	/* the granule of the new top held a tag: it is committed; past it,
	 * what the dropped blocks had given back is missing */
	if (holey)
		h->ready = gran_down(x, h->top) + ((uint64_t)1 << x->gshift);
	h->tail_since = age.since;
}

/* Give back in-use block `off` (large or slab): merged with free
 * neighbours, or below top.  fl: F_HOLEY if some of its whole granules
 * are gone already. */
static void give(struct hx *x, uint64_t off, unsigned fl)
{
	struct heap *h = x->h;
	struct blk *b = BLK(h, off), *nb;
	uint64_t start = off, end = off + bsize(b);
	struct age age = { heap_now_ms(), end - off };

	if (end == h->top) {
		drop_tail(x, off, fl != 0);
		return;
	}
	nb = BLK(h, end);
	if (nb->word & F_FREE) {
		fl |= nb->word & F_HOLEY;
		age_add_free(&age, nb);
		bin_remove(x, end);
		end += bsize(nb);
	}
	if (b->prev && (BLK(h, off - b->prev)->word & F_FREE)) {
		start = off - b->prev;
		fl |= BLK(h, start)->word & F_HOLEY;
		age_add_free(&age, BLK(h, start));
		bin_remove(x, start);
	}
	make_free(x, start, end - start, fl, age.since);
}

void large_give(struct hx *x, uint64_t off)
{
	give(x, off, 0);
}

/* ---------------------------------------------------------- allocation */

/* [top, top+gap) becomes a free block and [top+gap, +size) a new block
 * with `flags`; the memory is committed.  The new block's offset. */
static uint64_t top_place(struct hx *x, uint64_t gap, uint64_t size, unsigned flags)
{
	struct heap *h = x->h;
	uint64_t off = h->top, last = h->last;

	h->top = off + gap + size;
	h->last = size;
	h->ready = VMC_MAX(h->ready, gran_up(x, h->top));
	BLK(h, off)->prev = last;
	if (gap) {
		BLK(h, off + gap)->prev = gap;
		make_free(x, off, gap, 0, heap_now_ms());
	}
	set_hdr(BLK(h, off + gap), size, flags);
	return off + gap;
}

/* Do gap + size more bytes fit in the window above top?  Says why not. */
static int fits_window(struct hx *x, uint64_t more)
{
	uint64_t top = x->h->top;

	if (more <= x->span - top)
		return 1;
	char t[VMC_SIZE_STR], m[VMC_SIZE_STR], sp[VMC_SIZE_STR], lim[VMC_SIZE_STR];
	vmc_fail(ENOMEM, "VM %s out of memory: limit %s, span %s: the heap reaches %s and %s "
		 "more do not fit", heap_vm_name(x), vmc_size_str(x->c->vms[x->vm].limit, lim),
		 vmc_size_str(x->span, sp), vmc_size_str(top, t), vmc_size_str(more, m));
	return 0;
}

/* Commit above top up to `end` at least: 1, or 0 (ready unchanged). */
static int grow_ready(struct hx *x, uint64_t end)
{
	uint64_t to = commit_ahead(x, x->h->ready, end, x->span);

	if (to)
		x->h->ready = to;
	return to != 0;
}

/* top_place after committing what is missing.  Its offset, or 0. */
static uint64_t top_take(struct hx *x, uint64_t gap, uint64_t size, unsigned flags)
{
	struct heap *h = x->h;
	uint64_t end = h->top + gap + size;

	if (!fits_window(x, gap + size))
		return 0;
	if (end > h->ready && !grow_ready(x, end))
		return 0;
	return top_place(x, gap, size, flags);
}

/* An in-use block of at least size bytes (a multiple of 16) tagged with
 * flags, or 0 with the reason in vmc_errmsg(). */
uint64_t large_take(struct hx *x, uint64_t size, unsigned flags)
{
	struct heap *h = x->h;
	uint64_t off;

	size = VMC_MAX(size, MIN_BLOCK);   /* a block is never smaller */
	off = bin_find(h, size);

	if (!off && h->empty_slabs && slab_release_empty(x))   /* before the heap grows */
		off = bin_find(h, size);
	if (off) {
		uint64_t have = bsize(BLK(h, off)), q = off + size;
		if (have - size < MIN_BLOCK)
			q = off + have;
		if (!take_from(x, off, off, q, off)) {
			set_hdr(BLK(h, off), q - off, flags);
			return off;
		}
	}
	return top_take(x, 0, size, flags);
}

/* Where a CHUNK-aligned block of size bytes fits in [a, b), or 0. */
static uint64_t aligned_in(uint64_t a, uint64_t b, uint64_t size)
{
	uint64_t p = (a + CHUNK - 1) & ~(uint64_t)(CHUNK - 1);

	if (p != a && p - a < MIN_BLOCK)
		p += CHUNK;
	return p + size <= b ? p : 0;
}

/* A free block where a CHUNK-aligned block of size bytes fits as it lies,
 * else one big enough to fit it anywhere; *p: the place.  0 if none. */
static uint64_t find_aligned(const struct heap *h, uint64_t size, uint64_t *p)
{
	uint64_t a;

	if ((a = bin_find(h, size)) && (*p = aligned_in(a, a + bsize(BLK(h, a)), size)))
		return a;
	if ((a = bin_find(h, size + CHUNK + MIN_BLOCK)) &&
	    (*p = aligned_in(a, a + bsize(BLK(h, a)), size)))
		return a;
	return 0;
}

/* A CHUNK-aligned in-use block of size bytes (a multiple of CHUNK; a few
 * more if the rest was too small for a block) tagged F_SLAB, or 0.  Empty
 * slabs go back before the heap grows. */
uint64_t large_take_aligned(struct hx *x, uint64_t size)
{
	struct heap *h = x->h;
	uint64_t a, b, p = 0, q, gap;

	a = find_aligned(h, size, &p);
	if (!a && h->empty_slabs && slab_release_empty(x))
		a = find_aligned(h, size, &p);
	if (a) {
		b = a + bsize(BLK(h, a));
		q = b - (p + size) < MIN_BLOCK ? b : p + size;
		if (!take_from(x, a, p, q, p)) {
			set_hdr(BLK(h, p), q - p, F_SLAB);
			return p;
		}
	}
	gap = ((h->top + CHUNK - 1) & ~(uint64_t)(CHUNK - 1)) - h->top;
	if (gap && gap < MIN_BLOCK)
		gap += CHUNK;
	return top_take(x, gap, size, F_SLAB);
}

/* ------------------------------------------------------- resizing in place */

/* Shrink large block `off` to `need` bytes if the rest is worth a block. */
void large_shrink(struct hx *x, uint64_t off, uint64_t need)
{
	struct heap *h = x->h;
	struct blk *b = BLK(h, off);
	uint64_t size = bsize(b), r = off + need;

	if (size - need < MIN_BLOCK)
		return;
	set_hdr(b, need, 0);
	BLK(h, r)->prev = need;
	set_hdr(BLK(h, r), size - need, 0);
	h->in_use -= size - need;
	large_give(x, r);
}

/* Grow large block `off` to at least `need` bytes where it is: into a
 * free successor, or by moving top.  1 if done; 0 (nothing changed) if
 * not. */
int large_grow(struct hx *x, uint64_t off, uint64_t need)
{
	struct heap *h = x->h;
	struct blk *b = BLK(h, off), *nb;
	uint64_t size = bsize(b), end = off + size, q, b_end;

	if (end == h->top) {
		if (!fits_window(x, need - size))
			return 0;
		if (off + need > h->ready && !grow_ready(x, off + need))
			return 0;
		h->top = off + need;
		h->last = need;
		q = off + need;
	} else {
		nb = BLK(h, end);
		if (!(nb->word & F_FREE) || size + bsize(nb) < need)
			return 0;
		b_end = end + bsize(nb);
		q = b_end - (off + need) < MIN_BLOCK ? b_end : off + need;
		if (take_from(x, end, end, q, off))
			return 0;
	}
	set_hdr(b, q - off, 0);
	h->in_use += q - off - size;
	return 1;
}

/* Bytes of the largest free block (its tag included). */
uint64_t large_largest_free(const struct heap *h)
{
	uint64_t best = 0;

	for (int w = NBINS / 64 - 1; w >= 0; w--) {
		if (!h->binmap[w])
			continue;
		unsigned k = (unsigned)w * 64 + 63 - (unsigned)__builtin_clzll(h->binmap[w]);
		for (uint64_t off = h->bins[k]; off; off = BLK(h, off)->next_free)
			best = VMC_MAX(best, bsize(BLK(h, off)));
		break;
	}
	return best;
}

/* Move large block `off` to a new block of `need` bytes at top, carrying
 * its whole granules over with vmc_move instead of copying them, as
 * mremap does: the new block starts at the same offset within a granule
 * as the old one, and the old block becomes a free block whose middle is
 * gone.  No more is committed than the new block's ends need.  The new
 * block's offset, or 0 (nothing changed) if the block has no whole granule
 * to carry or the space at top is not clear. */
uint64_t large_move(struct hx *x, uint64_t off, uint64_t need)
{
	struct heap *h = x->h;
	char *base = (char *)h;
	uint64_t g = (uint64_t)1 << x->gshift, size = bsize(BLK(h, off));
	uint64_t m0 = gran_up(x, off + FREE_KEEP), m1 = gran_down(x, off + size);
	uint64_t gap = (off - h->top) & (g - 1), q, d0, d1;

	if (m0 >= m1)
		return 0;
	if (gap && gap < MIN_BLOCK)
		gap += g;
	if (gap + need > x->span - h->top)
		return 0;
	q = h->top + gap;
	d0 = m0 + (q - off);
	d1 = m1 + (q - off);
	if (d0 < h->ready || granules_committed(x, d0, d1))
		return 0;
	if (heap_commit(x, h->ready, d0))
		return 0;
	h->ready = d0;
	if (heap_commit(x, d1, gran_up(x, q + need)) ||
	    vmc_move(x->c, base + m0, base + d0, m1 - m0, 0))
		return 0;
	h->end = VMC_MAX(h->end, gran_up(x, q + need));
	memcpy(base + q + HDR, base + off + HDR, m0 - off - HDR);
	memcpy(base + d1, base + m1, off + size - m1);
	top_place(x, gap, need, 0);
	h->in_use += need - size;
	give(x, off, F_HOLEY);
	return q;
}
