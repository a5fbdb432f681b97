/*
 * vm.c - the VM table: create, find, destroy, reclaim and statistics.
 *
 * A VM is an isolated heap: a name, a byte limit, a page map from window
 * granule index to pool granule, and a state word `own` that holds the
 * state (free, idle, attached, orphaned) and the worker slot that holds it.
 * Whoever holds a VM as attached owns its page map, so attach/detach need
 * no global lock: a compare-and-swap on `own` makes attach exclusive
 * (invariant 9).  Destroy and reset-reclaim claim the VM the same way and
 * then return its granules like a release does.
 */
#include "vm.h"
#include "container.h"
#include "pool.h"
#include "quarantine.h"
#include "window.h"
#include "worker.h"
#include "remap.h"
#include "backing.h"
#include "budget.h"
#include "image.h"
#include "fund.h"
#include "os/os.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

struct vmc_vm *vm_get(struct vmc *c, uint32_t id, int *err)
{
	if (id >= c->h.max_vms) {
		*err = vmc_fail(EINVAL, "VM id %u out of range 0..%u", id, c->h.max_vms - 1);
		return NULL;
	}
	if (VM_STATE(__atomic_load_n(&c->vms[id].own, __ATOMIC_ACQUIRE)) == VM_FREE) {
		*err = vmc_fail(ENOENT, "no VM with id %u", id);
		return NULL;
	}
	*err = 0;
	return &c->vms[id];
}

/* VM id's name, for a message: copied under the pool lock, since another
 * thread may be naming a new VM in this entry. */
static const char *vm_label(struct vmc *c, uint32_t id, char buf[VMC_NAME_MAX])
{
	snprintf(buf, VMC_NAME_MAX, "%u", id);
	if (pool_lock(c) == 0) {
		snprintf(buf, VMC_NAME_MAX, "%s", c->vms[id].name);
		pool_unlock(c);
	}
	return buf;
}

/* VM id is attached by the worker in slot VM_SLOT(own).  If that worker is
 * dead, recover it (the VM becomes orphaned) and say so; else EBUSY. */
static int busy(struct vmc *c, uint32_t id, uint64_t own)
{
	struct vmc_vm *vm = &c->vms[id];
	uint32_t s = VM_SLOT(own) % c->h.max_workers;
	int32_t pid = __atomic_load_n(&c->slots[s].pid, __ATOMIC_RELAXED);
	char name[VMC_NAME_MAX];
	int err;

	if (worker_alive(c, s))
		return vmc_fail(EBUSY, "VM %s is attached by worker slot %u (pid %d)",
				vm_label(c, id, name), s, pid);
	if ((err = workers_recover(c, NULL, 0)))
		return err;
	if (VM_STATE(__atomic_load_n(&vm->own, __ATOMIC_ACQUIRE)) == VM_HIBERNATED)
		return vmc_fail(VMC_EHIBERNATED, "VM %s is hibernated: its worker (pid %d) died "
				"hibernating or waking it; vmc_vm_wake it", vm_label(c, id, name), pid);
	if (VM_STATE(__atomic_load_n(&vm->own, __ATOMIC_ACQUIRE)) != VM_ORPHANED)
		return vmc_fail(EBUSY, "VM %s is busy (its worker pid %d died; try again)",
				vm_label(c, id, name), pid);
	return vmc_fail(VMC_EORPHANED, "VM %s is orphaned: its worker (pid %d) died while it "
			"was attached; vmc_vm_reclaim it first (VMC_RECLAIM_KEEP keeps its "
			"memory, VMC_RECLAIM_RESET empties it)", vm_label(c, id, name), pid);
}

int vm_claim(struct vmc *c, uint32_t id, uint32_t from)
{
	char name[VMC_NAME_MAX];
	struct vmc_vm *vm;
	uint64_t own;
	int err;

	if (!(vm = vm_get(c, id, &err)))
		return err;
	own = __atomic_load_n(&vm->own, __ATOMIC_ACQUIRE);
	do {
		switch (VM_STATE(own)) {
		case VM_FREE:
			return vmc_fail(ENOENT, "no VM with id %u", id);
		case VM_ATTACHED:
			if (from == VM_ATTACHED)
				break;
			err = busy(c, id, own);
			own = __atomic_load_n(&vm->own, __ATOMIC_ACQUIRE);
			/* its dead worker was hibernating or waking it: recovery
			 * left it hibernated, which is what a wake wants */
			if (err == VMC_EHIBERNATED && from == VM_HIBERNATED &&
			    VM_STATE(own) == VM_HIBERNATED)
				break;
			return err;
		case VM_ORPHANED:
			if (from != VM_ORPHANED)
				return vmc_fail(VMC_EORPHANED, "VM %s is orphaned: its worker "
						"(pid %d) died while it was attached; vmc_vm_reclaim "
						"it first (VMC_RECLAIM_KEEP keeps its memory, "
						"VMC_RECLAIM_RESET empties it)", vm_label(c, id, name),
						__atomic_load_n(&vm->pid, __ATOMIC_RELAXED));
			break;
		case VM_IDLE:
			if (from != VM_IDLE)
				return vmc_fail(EINVAL, "VM %s is idle, not %s", vm_label(c, id, name),
						from == VM_HIBERNATED ? "hibernated" : "orphaned");
			break;
		case VM_HIBERNATED:
			if (from != VM_HIBERNATED)
				return vmc_fail(VMC_EHIBERNATED, "VM %s is hibernated: vmc_vm_wake it "
						"(`vmcctl vm wake`), or create the container with "
						"vmc/wake_on_attach = 1", vm_label(c, id, name));
			break;
		default:
			return vmc_fail(VMC_ECORRUPT, "VM %u: bad state word", id);
		}
	} while (!__atomic_compare_exchange_n(&vm->own, &own, VM_OWN(VM_ATTACHED, c->slot), 0,
					      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	__atomic_store_n(&vm->pid, c->slots[c->slot].pid, __ATOMIC_RELAXED);
	return 0;
}

void vm_unclaim(struct vmc *c, uint32_t id, uint32_t to)
{
	__atomic_store_n(&c->vms[id].own, VM_OWN(to, VMC_NIL), __ATOMIC_RELEASE);
}

int vm_repair(struct vmc *c, uint32_t id)
{
	uint32_t *map = vm_pagemap(c, id), committed = 0;
	struct vmc_vm *vm = &c->vms[id];

	for (uint32_t g = 0; g < c->h.ngranules; g++)
		if (c->gran[g].state == G_USED && c->gran[g].owner == id) {
			c->gran[g].views = 0;
			c->gran[g].index = VMC_NIL;
		}
	for (uint32_t i = 0; i < vm_span(c, id); i++) {
		uint32_t e = map[i], g = e & PM_GRANULE;
		if (e == VMC_NIL)
			continue;
		if (g >= c->h.ngranules || c->gran[g].state != G_USED || c->gran[g].owner != id) {
			map[i] = VMC_NIL;   /* cannot happen: entries follow takes */
			continue;
		}
		c->gran[g].views++;
		if (!(e & PM_ALIAS))
			c->gran[g].index = i;
	}
	for (uint32_t i = 0; i < vm_span(c, id); i++) {
		uint32_t e = map[i], g = e & PM_GRANULE;
		if (e == VMC_NIL || c->gran[g].index != VMC_NIL)
			continue;
		map[i] &= ~PM_ALIAS;   /* an alias whose primary went: promote it */
		c->gran[g].index = i;
	}
	for (uint32_t g = 0; g < c->h.ngranules; g++) {
		if (c->gran[g].state != G_USED || c->gran[g].owner != id)
			continue;
		if (c->gran[g].views)
			committed++;
		else
			quarantine_add(c, g, id);   /* taken or released, not in the map */
	}
	__atomic_store_n(&c->m->budget_stale, 1, __ATOMIC_RELEASE);   /* budget.c */
	vm->committed = committed;
	vm->reserve_used = VMC_MIN(vm->reserve_used, committed);
	__atomic_add_fetch(&vm->gen, 1, __ATOMIC_RELEASE);
	return 0;
}

static int check_vm_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!n || n >= VMC_NAME_MAX)
		return vmc_fail(EINVAL, "VM name must be 1..%d characters", VMC_NAME_MAX - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f)
			return vmc_fail(EINVAL, "VM name: use printable characters without spaces");
	return 0;
}

/* Index of the VM named `name`, or VMC_NIL. Pool lock. */
static uint32_t lookup(struct vmc *c, const char *name)
{
	for (uint32_t v = 0; v < c->h.max_vms; v++)
		if (VM_STATE(__atomic_load_n(&c->vms[v].own, __ATOMIC_ACQUIRE)) != VM_FREE &&
		    strncmp(c->vms[v].name, name, VMC_NAME_MAX) == 0)
			return v;
	return VMC_NIL;
}

int vmc_vm_create_span(vmc_t *c, const char *name, size_t limit, size_t span, uint32_t *id)
{
	uint32_t v, free_v = VMC_NIL, off, n;
	size_t gmask;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = check_vm_name(name)))
		return err;
	gmask = GSIZE(c) - 1;
	char a[VMC_SIZE_STR], b[VMC_SIZE_STR], w[VMC_SIZE_STR];
	if (!id || !limit || !span || limit > c->h.window_size || span > c->h.window_size)
		return vmc_fail(EINVAL, "VM %s: limit %s and span %s must be more than 0 and at "
				"most the window (vmc/window_size = %s), and id not NULL", name,
				vmc_size_str(limit, a), vmc_size_str(span, b),
				vmc_size_str(c->h.window_size, w));
	limit = (limit + gmask) & ~gmask;   /* whole granules, rounded up (vmc.h) */
	span = (span + gmask) & ~gmask;
	if (limit > span)
		return vmc_fail(EINVAL, "VM %s: its limit (%s) is larger than its span (%s)", name,
				vmc_size_str(limit, a), vmc_size_str(span, b));
	n = (uint32_t)(span >> GSHIFT(c));
	if ((err = pool_lock(c)))
		return err;
	if (lookup(c, name) != VMC_NIL) {
		pool_unlock(c);
		return vmc_fail(EEXIST, "a VM named %s exists", name);
	}
	for (v = 0; v < c->h.max_vms && free_v == VMC_NIL; v++)
		if (VM_STATE(__atomic_load_n(&c->vms[v].own, __ATOMIC_ACQUIRE)) == VM_FREE)
			free_v = v;
	if (free_v == VMC_NIL) {
		pool_unlock(c);
		return vmc_fail(ENOSPC, "the VM table is full (%u VMs): raise vmc/max_vms",
				c->h.max_vms);
	}
	if ((err = pm_alloc(c, n, &off))) {
		pool_unlock(c);
		return err;
	}
	struct vmc_vm *vm = &c->vms[free_v];
	snprintf(vm->name, sizeof vm->name, "%s", name);
	vm->limit = limit;
	vm->pm_off = off;
	vm->pm_len = n;
	vm->committed = vm->hwm = vm->reserve_used = 0;
	vm->attaches = 0;
	vm->image = IMG_NONE;
	vm->image_bytes = 0;
	vm->incarnation++;
	__atomic_store_n(&vm->own, VM_OWN(VM_IDLE, VMC_NIL), __ATOMIC_RELEASE);
	pool_unlock(c);
	*id = free_v;
	return 0;
}

int vmc_vm_create(vmc_t *c, const char *name, size_t limit, uint32_t *id)
{
	return vmc_vm_create_span(c, name, limit, limit, id);
}

int vmc_vm_find(vmc_t *c, const char *name, uint32_t *id)
{
	uint32_t v;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = check_vm_name(name)))
		return err;
	if (!id)
		return vmc_fail(EINVAL, "vmc_vm_find: id is NULL");
	if ((err = pool_lock(c)))
		return err;
	v = lookup(c, name);
	pool_unlock(c);
	if (v == VMC_NIL)
		return vmc_fail(ENOENT, "no VM named %s", name);
	*id = v;
	return 0;
}

int vm_empty(struct vmc *c, uint32_t id)
{
	struct vmc_op op = { VMC_OP_RELEASE, OPF_SKIP_HOLES, 0, 0, vm_span(c, id) };

	/* our window may show it still (lazy, or revoked): clear it, unless
	 * another thread is attaching; then its granules wait in quarantine
	 * until that attach has replaced the window */
	if (window_try_busy(c)) {
		if (c->win->vm == id && window_sync(c, VMC_NIL, WINDOW_ALL, 0) == 0)
			quarantine_publish(c, VMC_NIL);
		window_unclaim(c);
	}
	return remap_run(c, id, &op, 1, 0);
}

/* Claim VM id from `from`, drop it from our own window and release all its
 * granules.  On success the VM stays claimed by us; on error it is back in
 * `from`. */
static int claim_and_empty(struct vmc *c, uint32_t id, uint32_t from)
{
	int err;

	if ((err = vm_claim(c, id, from)))
		return err;
	if ((err = vm_empty(c, id)))
		vm_unclaim(c, id, from);
	return err;
}

/* Destroy VM id, idle, orphaned or hibernated (from), keeping vmc_errmsg
 * intact.  A hibernated VM's image goes after its entry: a crash in
 * between leaves a file no VM will ever name (the path has the
 * incarnation), never a VM without its image. */
static int destroy(struct vmc *c, uint32_t id, uint32_t from)
{
	struct vmc_vm *vm = &c->vms[id];
	char img[IMAGE_PATH_MAX];
	int err, had_image;

	if ((err = claim_and_empty(c, id, from)))
		return err;
	had_image = vm->image == IMG_VALID && image_path(c, id, img, sizeof img, 0) == 0;
	if ((err = pool_lock(c))) {
		vm_unclaim(c, id, from);
		return err;
	}
	vm->incarnation++;
	vm->name[0] = 0;
	vm->reserve_used = 0;
	vm->image = IMG_NONE;
	vm->image_bytes = 0;
	__atomic_store_n(&vm->own, VM_OWN(VM_FREE, VMC_NIL), __ATOMIC_RELEASE);
	pm_release(c);
	pool_unlock(c);
	if (had_image)
		image_unlink(img);
	return 0;
}

int vmc_vm_destroy(vmc_t *c, uint32_t id)
{
	struct vmc_vm *vm;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!(vm = vm_get(c, id, &err)))
		return err;
	if (__atomic_load_n(&c->win->attached, __ATOMIC_RELAXED) == id)
		return vmc_fail(EBUSY, "VM %s is attached here: detach it first", vm->name);
	uint32_t st = VM_STATE(__atomic_load_n(&vm->own, __ATOMIC_ACQUIRE));
	return destroy(c, id, st == VM_ORPHANED || st == VM_HIBERNATED ? st : VM_IDLE);
}

int vmc_vm_reclaim(vmc_t *c, uint32_t id, int how)
{
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (how != VMC_RECLAIM_KEEP && how != VMC_RECLAIM_RESET)
		return vmc_fail(EINVAL, "reclaim mode %d: use VMC_RECLAIM_KEEP or _RESET", how);
	if (how == VMC_RECLAIM_KEEP) {
		if ((err = vm_claim(c, id, VM_ORPHANED)))
			return err;
		/* a commit cut short by the crash: its granules were never
		 * zeroed, and must not show the VM that used them before */
		for (uint32_t g = 0; g < c->h.ngranules && !err; g++)
			if (c->gran[g].state == G_USED && c->gran[g].owner == id &&
			    (c->gran[g].flags & G_DIRTY) && !(err = backing_zero(c, g)))
				c->gran[g].flags = 0;
		if (err) {
			vm_unclaim(c, id, VM_ORPHANED);
			return err;
		}
	} else if ((err = claim_and_empty(c, id, VM_ORPHANED))) {
		return err;
	}
	__atomic_add_fetch(&c->vms[id].gen, 1, __ATOMIC_RELEASE);
	if (how == VMC_RECLAIM_RESET && (err = pool_lock(c)) == 0) {
		c->vms[id].incarnation++;   /* a fresh start: its old memory is not its own */
		pool_unlock(c);
	}
	vm_unclaim(c, id, VM_IDLE);
	return err;
}

int vmc_vm_stats(vmc_t *c, uint32_t id, vmc_vm_stats_t *out)
{
	struct vmc_vm *vm;
	uint64_t own;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!out)
		return vmc_fail(EINVAL, "vmc_vm_stats: out is NULL");
	if ((err = pool_lock(c)))
		return err;
	if (!(vm = vm_get(c, id, &err))) {
		pool_unlock(c);
		return err;
	}
	own = __atomic_load_n(&vm->own, __ATOMIC_ACQUIRE);
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", vm->name);
	out->state = (int)VM_STATE(own);
	if (VM_STATE(own) == VM_ATTACHED || VM_STATE(own) == VM_ORPHANED)
		out->pid = vm->pid;
	out->limit = vm->limit;
	out->span = (uint64_t)vm->pm_len << GSHIFT(c);
	out->committed = (uint64_t)__atomic_load_n(&vm->committed, __ATOMIC_RELAXED)
			 << GSHIFT(c);
	out->hwm = (uint64_t)__atomic_load_n(&vm->hwm, __ATOMIC_RELAXED) << GSHIFT(c);
	out->reserve_used = (uint64_t)vm->reserve_used << GSHIFT(c);
	out->attaches = __atomic_load_n(&vm->attaches, __ATOMIC_RELAXED);
	if (VM_STATE(own) == VM_HIBERNATED)
		out->image_bytes = vm->image_bytes;
	pool_unlock(c);
	return 0;
}

/* Copy `n` granules' contents from pool granules src[] to dst[] through
 * temporary mappings of the pool file. */
static int copy_granules(struct vmc *c, const uint32_t *src, const uint32_t *dst, uint32_t n)
{
	int populate = MAP_POPULATE;
	for (uint32_t k = 0; k < n; k++) {
		void *a = os_mmap(NULL, GSIZE(c), PROT_READ, MAP_SHARED | populate,
				  c->pool_fd, (off_t)src[k] << GSHIFT(c));
		void *b = os_mmap(NULL, GSIZE(c), PROT_READ | PROT_WRITE,
				  MAP_SHARED | populate, c->pool_fd, (off_t)dst[k] << GSHIFT(c));
		int err = a == MAP_FAILED || b == MAP_FAILED ? errno : 0;
		if (!err)
			memcpy(b, a, GSIZE(c));
		if (a != MAP_FAILED)
			os_munmap(a, GSIZE(c));
		if (b != MAP_FAILED)
			os_munmap(b, GSIZE(c));
		if (err)
			return vmc_fail(err, "clone: mapping the pool: %s", vmc_strerror(err));
	}
	return 0;
}

/* Copy the batch of granules taken for dst, then only mark them as dst's
 * bytes: until then they keep G_DIRTY, so a clone cut short leaves the
 * orphaned copy with granules that reclaim zeroes, never with what their
 * previous user left in them. */
static int copy_batch(struct vmc *c, uint32_t dst, const uint32_t *from, const uint32_t *to,
		      uint32_t k)
{
	int err = copy_granules(c, from, to, k);
	for (uint32_t j = 0; j < k && !err; j++) {
		c->gran[to[j]].flags &= (uint8_t)~G_DIRTY;
		gran_set_last(c, &c->gran[to[j]], dst);
	}
	return err;
}

/* Give dst (claimed by us, fresh) a copy of src's page map: one new
 * granule per primary entry, aliases pointing at the copies.  The budget
 * is charged first, under our slot lock (budget.c). */
static int copy_vm(struct vmc *c, uint32_t src, uint32_t dst)
{
	uint32_t *sm = vm_pagemap(c, src), *dm = vm_pagemap(c, dst);
	uint32_t n = vm_span(c, src), from[32], to[32], k = 0, rsv;
	uint32_t need = c->vms[src].committed;
	int err = 0;

	if (need && ((err = budget_recount(c, 0)) || (err = fund_ahead(c, need, 0))))
		return err;
	if ((err = slot_lock(c, c->slot)))
		return err;
	if (need && (err = budget_charge(c, need, 0, &rsv))) {
		slot_unlock(c, c->slot);
		return err;
	}
	for (uint32_t i = 0; i < n && !err; i++) {
		uint32_t e = sm[i], g;
		if (e == VMC_NIL || (e & PM_ALIAS))
			continue;
		if ((err = pool_take(c, dst, &g)))
			break;
		c->gran[g].index = i;
		c->gran[g].views = 1;
		dm[i] = g | (e & PM_PROT_MASK);
		c->vms[dst].committed++;
		need--;
		from[k] = e & PM_GRANULE;
		to[k++] = g;
		if (k == 32) {
			err = copy_batch(c, dst, from, to, k);
			k = 0;
		}
	}
	if (!err && k)
		err = copy_batch(c, dst, from, to, k);
	budget_uncharge(c, need);   /* what was charged and never taken */
	for (uint32_t i = 0; i < n && !err; i++) {
		uint32_t e = sm[i];
		if (e == VMC_NIL || !(e & PM_ALIAS))
			continue;
		uint32_t primary = c->gran[e & PM_GRANULE].index, g = dm[primary] & PM_GRANULE;
		dm[i] = g | (e & PM_PROT_MASK) | PM_ALIAS;
		c->gran[g].views++;
	}
	c->vms[dst].hwm = c->vms[dst].committed;
	__atomic_add_fetch(&c->vms[dst].gen, 1, __ATOMIC_RELEASE);
	slot_unlock(c, c->slot);
	return err;
}

int vmc_vm_clone(vmc_t *c, uint32_t src, const char *name, uint32_t *id)
{
	uint32_t dst;
	int err, e2;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!id)
		return vmc_fail(EINVAL, "vmc_vm_clone: id is NULL");
	if ((err = vm_claim(c, src, VM_IDLE)))   /* holds src still while we copy */
		return err;
	if ((err = vmc_vm_create_span(c, name, c->vms[src].limit,
				      (size_t)vm_span(c, src) << GSHIFT(c), &dst)))
		goto out;
	if ((err = vm_claim(c, dst, VM_IDLE)))
		goto out;
	err = copy_vm(c, src, dst);
	vm_unclaim(c, dst, VM_IDLE);
	if (err) {
		destroy(c, dst, VM_IDLE);
		goto out;
	}
	*id = dst;
out:
	e2 = err;
	vm_unclaim(c, src, VM_IDLE);
	return e2;
}
