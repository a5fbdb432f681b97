/*
 * heap_trim.c - the in-VM heap gives memory back to the pool: whole
 * granules that hold no block in use, with vmc_release, so the library
 * zeroes them before another VM has them (and quarantines them while
 * another worker may still map this VM lazily).
 *
 * What can go: the committed tail above top, and the whole granules
 * inside a free block past its first FREE_KEEP bytes (its tag, bin links
 * and the time it was freed stay; heap_large.c commits the rest again
 * before it hands the space out).  Empty slabs kept for reuse go back to
 * the free blocks first.
 *
 * When: as jemalloc decays dirty pages, a free block or tail goes once it
 * has been free for the decay time (h->decay_ms), so a busy tenant that
 * frees and allocates again within that time never pays for a commit and
 * a release.  The check is cheap and made on heap calls: every 256th free
 * reads the coarse monotonic clock (no system call), and a pass runs at
 * most four times per decay time; the library also checks at vmc_detach.
 * vmc_heap_trim gives back everything that can go at once, down to what
 * the caller wants to keep.
 */
#include "heap.h"

/* Release the committed granules of [from, to) (granule-aligned), run by
 * run.  0, or the first error of vmc_release (what it kept stays). */
static int release_range(struct hx *x, uint64_t from, uint64_t to)
{
	struct heap *h = x->h;
	uint64_t g = from >> x->gshift, stop = to >> x->gshift;
	int err = 0;

	while (g < stop) {
		uint64_t r = g, gone = 0;
		if (x->pm[g] == VMC_NIL) {
			g++;
			continue;
		}
		while (r < stop && x->pm[r] != VMC_NIL)
			r++;
		int e = vmc_release(x->c, (char *)h + (g << x->gshift), (r - g) << x->gshift, 0);
		err = err ? err : e;
		for (uint64_t i = g; i < r; i++)
			gone += x->pm[i] == VMC_NIL;
		h->committed -= gone << x->gshift;
		h->trimmed += gone << x->gshift;
		h->trims++;
		g = r;
	}
	return err;
}

static int all_released(const struct hx *x, uint64_t from, uint64_t to)
{
	for (uint64_t g = from >> x->gshift; g < to >> x->gshift; g++)
		if (x->pm[g] != VMC_NIL)
			return 0;
	return 1;
}

/* The committed tail above top goes. */
static int trim_tail(struct hx *x)
{
	struct heap *h = x->h;
	uint64_t from = gran_up(x, h->top);
	int err = release_range(x, from, h->end);

	h->ready = from;
	if (all_released(x, from, h->end))
		h->end = from;
	return err;
}

/* The whole granules inside free block `off` go. */
static int trim_block(struct hx *x, uint64_t off)
{
	struct blk *b = BLK(x->h, off);
	uint64_t from = gran_up(x, off + FREE_KEEP), to = gran_down(x, off + bsize(b));
	int err = release_range(x, from, to);

	b->word |= F_HOLEY;
	if (all_released(x, from, to)) {
		b->word |= F_TRIMMED;
		x->h->untrimmed--;
	}
	return err;
}

/* Has `since` been at least the decay time ago?  A time from the future
 * (a heap woken on another boot) starts again from now. */
static int aged(const struct heap *h, uint64_t *since, uint64_t now)
{
	if (*since > now)
		*since = now;
	return now - *since >= h->decay_ms;
}

/* One pass: with all, everything that can go until the heap has no more
 * than in_use + keep bytes committed; else what has aged. */
static int pass(struct hx *x, int all, uint64_t keep)
{
	struct heap *h = x->h;
	uint64_t now = heap_now_ms();
	int err = 0;

	slab_release_empty(x);
	slab_drop_map(x);
	if (h->end > gran_up(x, h->top) && h->committed > h->in_use + keep &&
	    (all || aged(h, &h->tail_since, now)))
		err = trim_tail(x);
	if (!h->untrimmed)
		return err;
	unsigned lo = heap_bin_of(((uint64_t)1 << x->gshift) + FREE_KEEP);
	for (unsigned k = NBINS; k-- > lo;) {
		for (uint64_t off = h->bins[k]; off; off = BLK(h, off)->next_free) {
			struct blk *b = BLK(h, off);
			if (h->committed <= h->in_use + keep)
				return err;
			if ((b->word & F_TRIMMED) || !heap_trimmable(x, off, bsize(b)) ||
			    !(all || aged(h, &b->since, now)))
				continue;
			int e = trim_block(x, off);
			err = err ? err : e;
		}
	}
	return err;
}

void heap_tick(struct hx *x)
{
	struct heap *h = x->h;
	uint64_t now = heap_now_ms();

	if (now >= h->last_pass && now - h->last_pass < h->decay_ms / 4)
		return;
	h->last_pass = now;
	pass(x, 0, 0);
}

void heap_on_detach(struct vmc *c)
{
	struct hx x;

	if (heap_peek(c, &x))
		heap_tick(&x);
}

int heap_trim_now(struct hx *x, uint64_t keep)
{
	return pass(x, 1, keep);
}
