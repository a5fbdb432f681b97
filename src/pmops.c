/*
 * pmops.c - commit, release, move, alias and protect on a page map.
 *
 * The mapping engine runs every batch twice through these functions.  The
 * dry run works on a scratch copy of the touched part of the page map: it
 * validates each operation in order (so a batch is all or nothing), counts
 * the granules the commits need, and follows each new commit by a tag
 * through later moves, aliases and releases of the same batch, so that the
 * engine knows before taking a single granule where each one will end up,
 * and so how it can be zeroed.  The real run repeats the operations on the
 * page map itself with the granules taken, and cannot fail.
 */
#include "pmops.h"
#include "vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void u32v_init(struct u32v *a)
{
	a->v = a->small;
	a->n = 0;
	a->cap = 16;
}

int u32v_reserve(struct u32v *a, uint32_t n)
{
	uint32_t cap = a->cap;

	while (cap - a->n < n)
		cap *= 2;
	if (cap == a->cap)
		return 0;
	uint32_t *v = a->v == a->small ? malloc(cap * sizeof *v) : realloc(a->v, cap * sizeof *v);
	if (!v)
		return vmc_fail(ENOMEM, "out of memory");
	if (a->v == a->small)
		memcpy(v, a->small, sizeof a->small);
	a->v = v;
	a->cap = cap;
	return 0;
}

int u32v_push(struct u32v *a, uint32_t x)
{
	int err;

	if (a->n == a->cap && (err = u32v_reserve(a, 1)))
		return err;
	a->v[a->n++] = x;
	return 0;
}

void u32v_free(struct u32v *a)
{
	if (a->v != a->small)
		free(a->v);
}

#define E(r, i) ((r)->e[(i) - (r)->lo])
#define T(r, i) ((r)->tag.v[(i) - (r)->lo])

static int uncommitted(const struct vmc_op *op, uint32_t i)
{
	return vmc_fail(VMC_EUNCOMMITTED, "%s: window granule %u is not committed",
			vmc_op_name(op->kind), i);
}

static int op_commit(struct run *r, const struct vmc_op *op)
{
	for (uint32_t i = op->from; i < op->from + op->n; i++) {
		if (E(r, i) != VMC_NIL)
			continue;
		if (!r->real) {
			E(r, i) = 0;   /* committed, as far as later operations can tell */
			T(r, i) = ++r->need;
			if (u32v_push(&r->at, i) || u32v_push(&r->atf, op->flags))
				return ENOMEM;
			continue;
		}
		uint32_t gn = r->got.v[r->used++];
		struct vmc_granule *g = &r->c->gran[gn];
		g->index = i;
		g->views = 1;
		E(r, i) = gn;
	}
	return 0;
}

/* A primary view went while aliases remain: the first alias becomes it. */
static void promote_alias(struct run *r, uint32_t gn)
{
	uint32_t *map = vm_pagemap(r->c, r->vm);
	for (uint32_t j = 0; j < vm_span(r->c, r->vm); j++)
		if (map[j] != VMC_NIL && (map[j] & PM_ALIAS) && (map[j] & PM_GRANULE) == gn) {
			map[j] &= ~PM_ALIAS;
			r->c->gran[gn].index = j;
			return;
		}
}

static int op_release(struct run *r, const struct vmc_op *op)
{
	for (uint32_t i = op->from; i < op->from + op->n; i++) {
		uint32_t e = E(r, i);
		if (e == VMC_NIL) {
			if (op->flags & OPF_SKIP_HOLES)
				continue;
			return uncommitted(op, i);
		}
		E(r, i) = VMC_NIL;
		if (!r->real) {
			T(r, i) = 0;
			continue;
		}
		uint32_t gn = e & PM_GRANULE;
		struct vmc_granule *g = &r->c->gran[gn];
		if (--g->views) {
			if (!(e & PM_ALIAS))
				promote_alias(r, gn);
			continue;
		}
		if (u32v_push(&r->freed, gn) ||
		    u32v_push(&r->freed, i << 1 | !!(op->flags & VMC_RELEASE_DEFER)))
			return ENOMEM;
	}
	return 0;
}

/* Move and alias: `from` committed; `to` free (for a move, apart from
 * where it overlaps `from`). */
static int check_pair(struct run *r, const struct vmc_op *op)
{
	for (uint32_t k = 0; k < op->n; k++) {
		if (E(r, op->from + k) == VMC_NIL)
			return uncommitted(op, op->from + k);
		uint32_t t = op->to + k;
		int in_from = t >= op->from && t < op->from + op->n;
		if (op->kind == VMC_OP_ALIAS && in_from)
			return vmc_fail(EINVAL, "vmc_alias: the ranges overlap");
		if (!in_from && E(r, t) != VMC_NIL)
			return vmc_fail(EEXIST, "%s: window granule %u is committed already",
					vmc_op_name(op->kind), t);
		if (op->kind == VMC_OP_ALIAS && r->c->gran[E(r, op->from + k) & PM_GRANULE].views
					       == UINT16_MAX && r->real)
			return vmc_fail(EMLINK, "vmc_alias: too many views of one granule");
	}
	return 0;
}

static int op_move(struct run *r, const struct vmc_op *op)
{
	struct u32v tmp;
	int err = check_pair(r, op);

	if (err)
		return err;
	u32v_init(&tmp);
	for (uint32_t k = 0; k < op->n && !err; k++)
		if (!(err = u32v_push(&tmp, E(r, op->from + k))) && !r->real)
			err = u32v_push(&tmp, T(r, op->from + k));
	for (uint32_t k = 0; k < op->n && !err; k++) {
		E(r, op->from + k) = VMC_NIL;
		if (!r->real)
			T(r, op->from + k) = 0;
	}
	for (uint32_t k = 0, w = r->real ? 1 : 2; k < op->n && !err; k++) {
		uint32_t e = tmp.v[k * w];
		E(r, op->to + k) = e;
		if (!r->real)
			T(r, op->to + k) = tmp.v[k * w + 1];
		else if (!(e & PM_ALIAS))
			r->c->gran[e & PM_GRANULE].index = op->to + k;
	}
	u32v_free(&tmp);
	return err;
}

static int op_alias(struct run *r, const struct vmc_op *op)
{
	int err = check_pair(r, op);
	if (err)
		return err;
	for (uint32_t k = 0; k < op->n; k++) {
		uint32_t e = E(r, op->from + k);
		E(r, op->to + k) = (e & (PM_GRANULE | PM_PROT_MASK)) | PM_ALIAS;
		if (r->real)
			r->c->gran[e & PM_GRANULE].views++;
		else
			T(r, op->to + k) = T(r, op->from + k);
	}
	return 0;
}

static int op_protect(struct run *r, const struct vmc_op *op)
{
	for (uint32_t i = op->from; i < op->from + op->n; i++) {
		if (E(r, i) == VMC_NIL)
			return uncommitted(op, i);
		E(r, i) = (E(r, i) & ~PM_PROT_MASK) | (uint32_t)op->flags << PM_PROT_SHIFT;
	}
	return 0;
}

int pmops_run(struct run *r, const struct vmc_op *ops, uint32_t n)
{
	static int (*const fn[])(struct run *, const struct vmc_op *) = {
		[VMC_OP_COMMIT] = op_commit, [VMC_OP_RELEASE] = op_release,
		[VMC_OP_MOVE] = op_move, [VMC_OP_ALIAS] = op_alias,
		[VMC_OP_PROTECT] = op_protect,
	};
	for (uint32_t k = 0; k < n; k++) {
		int err = fn[ops[k].kind](r, &ops[k]);
		if (err)
			return err;
	}
	return 0;
}

int pmops_zero_modes(struct run *r)
{
	int err = 0;

	for (uint32_t k = 0; k < r->need && !err; k++)
		err = u32v_push(&r->zmode, Z_NONE);   /* released again in the batch */
	for (uint32_t i = r->lo; i < r->hi && !err; i++) {
		uint32_t t = T(r, i), e = E(r, i);
		if (!t)
			continue;
		/* the window zeroes a granule it shows once, read-write */
		int once_rw = r->here && !(e & (PM_ALIAS | PM_PROT_MASK));
		r->zmode.v[t - 1] = r->zmode.v[t - 1] == Z_NONE && once_rw ? Z_WINDOW : Z_BEFORE;
	}
	return err;
}

uint32_t pmops_released(const struct vmc_op *ops, uint32_t n)
{
	uint32_t k, total = 0;
	for (k = 0; k < n; k++)
		total += ops[k].kind == VMC_OP_RELEASE ? ops[k].n : 0;
	return total;
}

void pmops_span(const struct vmc_op *ops, uint32_t n, uint32_t *lo, uint32_t *hi)
{
	*lo = UINT32_MAX;
	*hi = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t a = ops[k].from, b = ops[k].from + ops[k].n;
		if (ops[k].kind == VMC_OP_MOVE || ops[k].kind == VMC_OP_ALIAS) {
			a = VMC_MIN(a, ops[k].to);
			b = VMC_MAX(b, ops[k].to + ops[k].n);
		}
		*lo = VMC_MIN(*lo, a);
		*hi = VMC_MAX(*hi, b);
	}
}
