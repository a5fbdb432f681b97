/*
 * heap_slab.h - the slab layout and the fast paths of small blocks (see
 * heap_slab.c), inline: a small alloc or free is a few loads, a bit scan
 * and a store, with a call out only when a slab is made.
 */
#ifndef VMC_HEAP_SLAB_H
#define VMC_HEAP_SLAB_H

#include "heap.h"

#define SLAB_MAGIC 0x51abu

/* After the slab block's tag. */
struct slab {
	uint16_t magic;
	uint16_t csize;         /* the class size                                */
	uint8_t  cls;
	uint8_t  nchunks;
	uint8_t  hint;          /* no free slot in bits[0 .. hint)               */
	uint8_t  listed;        /* on its class's list: it has a free slot       */
	uint16_t nslots;
	uint16_t used;
	uint32_t recip;         /* 2^32 / csize + 1: a slot's index by a multiply */
	uint64_t next;          /* the class's list of slabs with a free slot   */
	uint64_t pad;           /* keeps the slots 16-byte aligned               */
	uint64_t bits[4];       /* 1: slot in use, or past nslots                */
};

#define SLAB_FIRST (HDR + sizeof(struct slab))
_Static_assert(sizeof(struct slab) == 64 && SLAB_FIRST % 16 == 0, "slab header");

#define SLAB(h, off) ((struct slab *)((char *)(h) + (off) + HDR))

VMC_HIDDEN extern const uint16_t heap_class_size[NCLASSES];
VMC_HIDDEN uint64_t slab_refill(struct hx *x, unsigned cls);

/* The class of a request of n bytes, 1 <= n <= SMALL_MAX: every multiple
 * of 16 to 256, then eight classes per power of two. */
static inline unsigned heap_size_class(size_t n)
{
	unsigned fl;

	if (n <= 256)
		return (unsigned)((n + 15) >> 4) - 1;
	fl = 63 - (unsigned)__builtin_clzll((unsigned long long)n - 1);
	return 16 + (fl - 8) * 8 + (unsigned)((n - 1 - ((size_t)1 << fl)) >> (fl - 3));
}

/* The slab that holds window offset off, or 0. */
static inline uint64_t slab_of(const struct heap *h, uint64_t off)
{
	uint64_t ch = off >> CHUNK_SHIFT;
	uint8_t v;

	if (ch >= h->cmap_n || !(v = ((const uint8_t *)h + h->cmap)[ch]))
		return 0;
	return (ch - (v - 1u)) << CHUNK_SHIFT;
}

/* Slab so (with a free slot again) goes on its class's list: a slab is
 * taken off only at the head, when it fills, so the list needs one link
 * and a push touches no other slab. */
static inline void slab_push(struct heap *h, unsigned cls, uint64_t so)
{
	struct slab *s = SLAB(h, so);

	s->next = h->partial[cls];
	s->listed = 1;
	h->partial[cls] = so;
}

/* A slot of class cls: its offset, or 0 with the reason in vmc_errmsg(). */
static inline uint64_t slab_alloc(struct hx *x, unsigned cls)
{
	struct heap *h = x->h;
	uint64_t so = h->partial[cls];
	struct slab *s;
	unsigned w, bit;

	if (unlikely(!so) && !(so = slab_refill(x, cls)))
		return 0;
	s = SLAB(h, so);
	for (w = s->hint; s->bits[w] == ~(uint64_t)0; w++)
		vmc_assert(w < 3);
	bit = (unsigned)__builtin_ctzll(~s->bits[w]);
	s->bits[w] |= (uint64_t)1 << bit;
	s->hint = (uint8_t)w;
	h->empty_slabs -= !s->used;
	if (++s->used == s->nslots) {
		h->partial[cls] = s->next;
		s->listed = 0;
	}
	h->in_use += s->csize;
	return so + SLAB_FIRST + (uint64_t)(w * 64 + bit) * s->csize;
}

/* The index of slot off of slab so, or -1 (and *why) if off is not a slot
 * in use there. */
static inline int slab_slot(const struct heap *h, uint64_t so, uint64_t off, const char **why)
{
	const struct slab *s = SLAB(h, so);
	uint64_t rel = off - so - SLAB_FIRST;
	uint32_t i;

	if (unlikely((BLK(h, so)->word & (TAG_MASK | F_MASK)) != (TAG | F_SLAB) ||
		     s->magic != SLAB_MAGIC || !s->csize)) {
		*why = "its slab is not intact (the heap is corrupt)";
		return -1;
	}
	i = (uint32_t)((rel * s->recip) >> 32);   /* exact: rel < 2^22 */
	if (unlikely(off < so + SLAB_FIRST || rel >= ((uint64_t)1 << 22) ||
		     (uint64_t)i * s->csize != rel || i >= s->nslots)) {
		*why = "not the start of a heap block";
		return -1;
	}
	if (unlikely(!(s->bits[i / 64] & ((uint64_t)1 << (i % 64))))) {
		*why = "freed already (double free)";
		return -1;
	}
	return (int)i;
}

/* Free slot i of slab so (found by slab_slot).  An empty slab stays on its
 * list for reuse; slab_release_empty gives it back. */
static inline void slab_free(struct heap *h, uint64_t so, unsigned i)
{
	struct slab *s = SLAB(h, so);

	s->bits[i / 64] &= ~((uint64_t)1 << (i % 64));
	if (i / 64 < s->hint)
		s->hint = (uint8_t)(i / 64);
	h->in_use -= s->csize;
	if (!s->listed)
		slab_push(h, s->cls, so);
	h->empty_slabs += !--s->used;
}

#endif
