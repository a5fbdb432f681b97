/*
 * batch.c - the public face of the mapping engine: argument checks, the
 * single operations (each a batch of one, so that one code path does the
 * work), batches, vmc_flush and vmc_probe.
 */
#include "container.h"
#include "remap.h"
#include "vm.h"
#include "window.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

struct vmc_batch {
	struct vmc *c;
	uint32_t n, cap;
	struct vmc_op *ops;
};

/* A VM must be attached and [addr, addr+len) be a granule-aligned range of
 * its span (window offsets [0, span)): its first index and count. */
static int range(struct vmc *c, const void *addr, size_t len, const char *what,
		 uint32_t *first, uint32_t *n)
{
	uintptr_t a = (uintptr_t)addr, base = (uintptr_t)c->arena;
	uint32_t vm = c->win->attached;
	uint64_t span;

	if (vm == VMC_NIL)
		return vmc_fail(VMC_ENOTATTACHED, "%s: no VM is attached in this worker", what);
	span = (uint64_t)vm_span(c, vm) << GSHIFT(c);
	if (!len || (a | len) & (GSIZE(c) - 1))
		return vmc_fail(EINVAL, "%s: address %p and length %zu must be non-zero "
				"multiples of the granule (%zu KiB)", what, addr, len, GSIZE(c) >> 10);
	if (a < base || a - base > span || len > span - (a - base))
		return vmc_fail(EINVAL, "%s: [%p, +%zu) is outside VM %s's span [%p, +%llu)", what,
				addr, len, c->vms[vm].name, c->arena, (unsigned long long)span);
	*first = (uint32_t)((a - base) >> GSHIFT(c));
	*n = (uint32_t)(len >> GSHIFT(c));
	return 0;
}

static int prot_code(int prot, uint32_t *code)
{
	switch (prot) {
	case PROT_READ | PROT_WRITE: *code = 0; return 0;
	case PROT_READ: *code = 1; return 0;
	case PROT_NONE: *code = 2; return 0;
	}
	return vmc_fail(EINVAL, "protection %#x: use PROT_READ|PROT_WRITE, PROT_READ or "
			"PROT_NONE", prot);
}

/* Build the operation for kind from public arguments. */
static int make_op(struct vmc *c, uint32_t kind, void *addr, void *to, size_t len, int flags,
		   struct vmc_op *op)
{
	static const int allowed[] = {
		[VMC_OP_COMMIT] = VMC_COMMIT_RESERVE | VMC_COMMIT_NOZERO | VMC_COMMIT_POPULATE,
		[VMC_OP_RELEASE] = VMC_RELEASE_DEFER, [VMC_OP_MOVE] = 0, [VMC_OP_ALIAS] = 0,
	};
	const char *what = vmc_op_name(kind);
	int err;

	op->kind = kind;
	op->to = 0;
	if ((err = range(c, addr, len, what, &op->from, &op->n)))
		return err;
	if (kind == VMC_OP_PROTECT)
		return prot_code(flags, &op->flags);
	if (flags & ~allowed[kind])
		return vmc_fail(EINVAL, "%s: unknown flags %#x", what, flags);
	op->flags = (uint32_t)flags;
	if (kind == VMC_OP_MOVE || kind == VMC_OP_ALIAS) {
		uint32_t n;
		return range(c, to, len, what, &op->to, &n);
	}
	return 0;
}

static int one(vmc_t *c, uint32_t kind, void *addr, void *to, size_t len, int flags)
{
	struct vmc_op op;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = make_op(c, kind, addr, to, len, flags, &op)))
		return err;
	return remap_run(c, c->win->attached, &op, 1, 1);
}

int vmc_commit(vmc_t *c, void *addr, size_t len, int flags)
{
	return one(c, VMC_OP_COMMIT, addr, NULL, len, flags);
}

int vmc_release(vmc_t *c, void *addr, size_t len, int flags)
{
	return one(c, VMC_OP_RELEASE, addr, NULL, len, flags);
}

int vmc_move(vmc_t *c, void *from, void *to, size_t len, int flags)
{
	return one(c, VMC_OP_MOVE, from, to, len, flags);
}

int vmc_alias(vmc_t *c, void *from, void *to, size_t len)
{
	return one(c, VMC_OP_ALIAS, from, to, len, 0);
}

int vmc_protect(vmc_t *c, void *addr, size_t len, int prot)
{
	return one(c, VMC_OP_PROTECT, addr, NULL, len, prot);
}

int vmc_flush(vmc_t *c)
{
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	return remap_flush(c);
}

int vmc_probe(vmc_t *c, const void *addr, vmc_probe_t *out)
{
	static const int prot[] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE, PROT_NONE };
	uintptr_t off = (uintptr_t)addr - (uintptr_t)c->arena;
	uint32_t vm, e;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!out)
		return vmc_fail(EINVAL, "vmc_probe: out is NULL");
	if ((vm = c->win->attached) == VMC_NIL)
		return vmc_fail(VMC_ENOTATTACHED, "vmc_probe: no VM is attached in this worker");
	if ((uintptr_t)addr < (uintptr_t)c->arena || off >= c->h.window_size)
		return vmc_fail(EINVAL, "vmc_probe: %p is outside the window", addr);
	e = off >> GSHIFT(c) < vm_span(c, vm) ? vm_pagemap(c, vm)[off >> GSHIFT(c)] : VMC_NIL;
	out->vm = vm;
	out->committed = e != VMC_NIL;
	out->granule = e == VMC_NIL ? VMC_NIL : e & PM_GRANULE;
	out->prot = e == VMC_NIL ? PROT_NONE : prot[(e & PM_PROT_MASK) >> PM_PROT_SHIFT];
	out->alias = e != VMC_NIL && (e & PM_ALIAS);
	out->huge = c->h.page_kind == VMC_PAGE_HUGETLB || c->h.page_kind == VMC_PAGE_THP;
	return 0;
}

int vmc_batch_begin(vmc_t *c, vmc_batch_t **out)
{
	struct vmc_batch *b;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!out)
		return vmc_fail(EINVAL, "vmc_batch_begin: out is NULL");
	if (!(b = calloc(1, sizeof *b)))
		return vmc_fail(ENOMEM, "out of memory");
	b->c = c;
	*out = b;
	return 0;
}

static int add(vmc_batch_t *b, uint32_t kind, void *addr, void *to, size_t len, int flags)
{
	struct vmc_op op;
	int err;

	vmc_clear_error();
	if (!b)
		return vmc_fail(EINVAL, "NULL batch");
	if ((err = vmc_enter(b->c)) || (err = make_op(b->c, kind, addr, to, len, flags, &op)))
		return err;
	if (b->n == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 16;
		struct vmc_op *ops = realloc(b->ops, cap * sizeof *ops);
		if (!ops)
			return vmc_fail(ENOMEM, "out of memory");
		b->ops = ops;
		b->cap = cap;
	}
	b->ops[b->n++] = op;
	return 0;
}

int vmc_batch_move(vmc_batch_t *b, void *from, void *to, size_t len, int flags)
{
	return add(b, VMC_OP_MOVE, from, to, len, flags);
}

int vmc_batch_release(vmc_batch_t *b, void *addr, size_t len, int flags)
{
	return add(b, VMC_OP_RELEASE, addr, NULL, len, flags);
}

int vmc_batch_commit_range(vmc_batch_t *b, void *addr, size_t len, int flags)
{
	return add(b, VMC_OP_COMMIT, addr, NULL, len, flags);
}

int vmc_batch_protect(vmc_batch_t *b, void *addr, size_t len, int prot)
{
	return add(b, VMC_OP_PROTECT, addr, NULL, len, prot);
}

int vmc_batch_commit(vmc_batch_t *b)
{
	int err, e2;

	vmc_clear_error();
	if (!b)
		return vmc_fail(EINVAL, "NULL batch");
	if ((err = vmc_enter(b->c)))
		goto out;
	if (b->c->win->attached == VMC_NIL) {
		err = vmc_fail(VMC_ENOTATTACHED, "batch: no VM is attached in this worker");
		goto out;
	}
	/* releases deferred before this batch end here; the batch's own
	 * deferred releases last until the next batch commit or flush */
	err = remap_flush(b->c);
	e2 = remap_run(b->c, b->c->win->attached, b->ops, b->n, 1);
	err = err ? err : e2;
out:
	free(b->ops);
	free(b);
	return err;
}

int vmc_batch_abort(vmc_t *c, vmc_batch_t *b)
{
	(void)c;
	if (!b)
		return vmc_fail(EINVAL, "NULL batch");
	free(b->ops);
	free(b);
	return 0;
}
