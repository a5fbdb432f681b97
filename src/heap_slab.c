/*
 * heap_slab.c - small blocks of the in-VM heap: size classes and slabs.
 *
 * A request of up to SMALL_MAX bytes is rounded to one of 32 classes:
 * every multiple of 16 up to 256, then eight classes per power of two
 * (at most 12.5% apart), so 24 * 2^k and 16 * 2^k, the sizes of Lua's
 * hash and array parts, are classes of their own.  Blocks of one class
 * live in a slab: a CHUNK-aligned in-use block of one to eight chunks
 * (the fewest that waste under 1%, 8 to 256 slots) with a 64-byte header
 * after its tag and the slots after that, with no header per slot.  The
 * header keeps a bitmap of the slots in use (a freed slot is never written
 * to, a double free is caught, and the heap walk can count them) and the
 * link of its class's list of slabs with a free slot.  An address finds
 * its slab through the chunk map, a byte per CHUNK of the heap (a large
 * block itself): 0 for no slab, else 1 + how many chunks back the slab
 * starts.
 *
 * Allocation takes the first slab of the class's list (a bit scan of at
 * most four words from a hint), drops it from the list when it fills, and
 * makes a new slab, from the free blocks first, when the list is empty; a
 * free into a full slab puts it back at the head.  So the list is singly
 * linked and neither touches another slab.  A slab that becomes empty
 * stays for reuse (a class that allocates and frees in a loop does not make
 * and break a slab each time) until slab_release_empty gives it back: on
 * the decay check, before the heap grows, and when it is trimmed.
 */
#include "heap_slab.h"

#include <stdio.h>
#include <string.h>

#define SLAB_MIN_SLOTS 8u
#define SLAB_MAX_CHUNKS 8u

const uint16_t heap_class_size[NCLASSES] = {
	16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512,
	576, 640, 704, 768, 832, 896, 960, 1024,
};

/* ------------------------------------------------------------ chunk map */

static inline uint8_t *cmap(const struct heap *h)
{
	return (uint8_t *)h + h->cmap;
}

/* Make the chunk map cover chunk `last`: a bigger copy. */
static int cmap_grow(struct hx *x, uint64_t last)
{
	struct heap *h = x->h;
	/* at first enough for the VM's limit (up to 64 MiB of heap), then twice as much */
	uint64_t lim = VMC_MIN(x->c->vms[x->vm].limit >> CHUNK_SHIFT, 16384);
	uint64_t n = VMC_MAX(VMC_MAX(2 * h->cmap_n, last + 1), lim), off;

	n = (n + 15) & ~(uint64_t)15;
	if (!(off = large_take(x, HDR + n, 0)))
		return -1;
	memset((char *)h + off + HDR, 0, n);
	if (h->cmap) {
		memcpy((char *)h + off + HDR, cmap(h), h->cmap_n);
		large_give(x, h->cmap - HDR);
	}
	h->cmap = off + HDR;
	h->cmap_n = n;
	return 0;
}

static void cmap_set(struct heap *h, uint64_t so, unsigned nchunks, int on)
{
	for (unsigned i = 0; i < nchunks; i++)
		cmap(h)[(so >> CHUNK_SHIFT) + i] = on ? (uint8_t)(i + 1) : 0;
}

/* ----------------------------------------------------------------- slabs */

static unsigned slots_in(unsigned nch, uint32_t csize)
{
	return (unsigned)(((uint64_t)nch * CHUNK - SLAB_FIRST) / csize);
}

/* Chunks of a slab of class size csize: the fewest that use 99% of the
 * space, else the best use up to SLAB_MAX_CHUNKS; 8 to 256 slots.  A
 * small heap (fewer slabs than classes) takes the fewest chunks that hold
 * 8 slots instead: a tenant of a few dozen KiB, with a slab for each of
 * twenty classes, would otherwise commit several times what it uses. */
static unsigned chunks_for(uint32_t csize, int small)
{
	unsigned best = SLAB_MAX_CHUNKS;
	double use, best_use = 0;

	for (unsigned n = 1; n <= SLAB_MAX_CHUNKS && slots_in(n, csize) <= 256; n++) {
		if (slots_in(n, csize) < SLAB_MIN_SLOTS)
			continue;
		if (small)
			return n;
		use = (double)slots_in(n, csize) * csize / ((double)n * CHUNK);
		if (use >= 0.99)
			return n;
		if (use > best_use) {
			best_use = use;
			best = n;
		}
	}
	return best;
}

/* The class's list was empty: a new slab on it, or 0. */
uint64_t slab_refill(struct hx *x, unsigned cls)
{
	struct heap *h = x->h;
	uint32_t csize = heap_class_size[cls];
	unsigned nch = chunks_for(csize, h->slabs < NCLASSES);
	uint64_t so = large_take_aligned(x, (uint64_t)nch * CHUNK);
	struct slab *s;

	if (!so)
		return 0;
	if (((so >> CHUNK_SHIFT) + nch > h->cmap_n) && cmap_grow(x, (so >> CHUNK_SHIFT) + nch - 1)) {
		large_give(x, so);
		return 0;
	}
	cmap_set(h, so, nch, 1);
	s = SLAB(h, so);
	memset(s, 0, sizeof *s);
	s->magic = SLAB_MAGIC;
	s->cls = (uint8_t)cls;
	s->nchunks = (uint8_t)nch;
	s->csize = (uint16_t)csize;
	s->recip = (uint32_t)(((uint64_t)1 << 32) / csize + 1);
	s->nslots = (uint16_t)slots_in(nch, csize);
	vmc_assert(s->nslots >= SLAB_MIN_SLOTS && s->nslots <= 256);
	for (unsigned i = s->nslots; i < 256; i++)
		s->bits[i / 64] |= (uint64_t)1 << (i % 64);
	slab_push(h, cls, so);
	h->slabs++;
	h->empty_slabs++;
	return so;
}

/* Give back every empty slab, wherever it is on its class's list.  The
 * number given back. */
uint64_t slab_release_empty(struct hx *x)
{
	struct heap *h = x->h;
	uint64_t n = 0;

	for (unsigned k = 0; k < NCLASSES; k++)
		for (uint64_t *link = &h->partial[k]; *link;) {
			uint64_t so = *link;
			struct slab *s = SLAB(h, so);
			if (s->used) {
				link = &s->next;
				continue;
			}
			*link = s->next;
			cmap_set(h, so, s->nchunks, 0);
			s->magic = 0;
			h->slabs--;
			h->empty_slabs--;
			large_give(x, so);
			n++;
		}
	return n;
}

/* With no slab left, the chunk map goes too. */
void slab_drop_map(struct hx *x)
{
	struct heap *h = x->h;

	if (!h->slabs && h->cmap) {
		large_give(x, h->cmap - HDR);
		h->cmap = 0;
		h->cmap_n = 0;
	}
}

/* --------------------------------------------------------------- checks */

/* Slab block `so` of `size` bytes is intact: its header, its chunks in
 * the map, its bitmap and count.  Adds its slots in use to *in_use. */
int slab_check(struct hx *x, uint64_t so, uint64_t size, uint64_t *in_use, char *why, size_t n)
{
	const struct heap *h = x->h;
	const struct slab *s = SLAB(h, so);
	unsigned used = 0;

	if (so % CHUNK || s->magic != SLAB_MAGIC || s->cls >= NCLASSES ||
	    s->csize != heap_class_size[s->cls] ||
	    s->recip != (uint32_t)(((uint64_t)1 << 32) / s->csize + 1) || size < (uint64_t)s->nchunks * CHUNK ||
	    size - (uint64_t)s->nchunks * CHUNK >= MIN_BLOCK ||
	    s->nslots != ((uint64_t)s->nchunks * CHUNK - SLAB_FIRST) / s->csize || s->hint > 3) {
		snprintf(why, n, "bad slab header (class %u, %u chunks, %u slots)", s->cls,
			 s->nchunks, s->nslots);
		return -1;
	}
	for (unsigned i = 0; i < s->nchunks; i++)
		if (slab_of(h, so + ((uint64_t)i << CHUNK_SHIFT)) != so) {
			snprintf(why, n, "chunk %u of the slab is not in the chunk map", i);
			return -1;
		}
	for (unsigned i = 0; i < 256; i++) {
		int on = !!(s->bits[i / 64] & ((uint64_t)1 << (i % 64)));
		if (i >= s->nslots && !on) {
			snprintf(why, n, "slab bitmap: bit %u past the slots is clear", i);
			return -1;
		}
		if (i < s->nslots && !on && i / 64 < s->hint) {
			snprintf(why, n, "slab hint %u, but slot %u is free", s->hint, i);
			return -1;
		}
		used += i < s->nslots && on;
	}
	if (used != s->used || s->listed != (used < s->nslots)) {
		snprintf(why, n, "slab counts %u slots in use (%slisted), its bitmap %u", s->used,
			 s->listed ? "" : "not ", used);
		return -1;
	}
	*in_use += (uint64_t)used * s->csize;
	return 0;
}

/* The class lists: each member a slab with a free slot, of its class,
 * marked listed; *count receives the members, *empty the empty ones. */
int slab_check_lists(const struct heap *h, uint64_t *count, uint64_t *empty, char *why, size_t n)
{
	uint64_t c = 0, e = 0;

	for (unsigned k = 0; k < NCLASSES; k++)
		for (uint64_t so = h->partial[k]; so; so = SLAB(h, so)->next) {
			const struct slab *s = SLAB(h, so);
			if (slab_of(h, so) != so || s->cls != k || s->used >= s->nslots || !s->listed) {
				snprintf(why, n, "class %u's slab list holds %#llx, which is not a "
					 "slab of that class with a free slot", k,
					 (unsigned long long)so);
				return -1;
			}
			if (++c > h->slabs) {
				snprintf(why, n, "class %u's slab list loops", k);
				return -1;
			}
			e += !s->used;
		}
	*count = c;
	*empty = e;
	return 0;
}
