/*
 * region.c - shared regions: named cache regions and the code cache.
 *
 * A region is a contiguous run of pool granules mapped at a fixed place in
 * the arena (after the window), so it is at the same address in every
 * worker and a single mmap maps it, whatever its size (64-bit sizes
 * throughout: > 2 GiB and > 4 GiB work).  Readers map it read-only, the
 * processes that open it for writing read-write.  Its granules are USED by
 * the region, never by a VM, so attach and detach never touch it, and it
 * never causes SIGBUS: the granules are funded before it exists.
 *
 * The code cache is region 0 when code_cache_size > 0: mapped read+execute
 * at the start of the region space in every worker, and writable only
 * through a second, read-write mapping of the same granules at another
 * address (W^X), which a process gets when it first allocates code.
 */
#include "region.h"
#include "container.h"
#include "fund.h"
#include "pool.h"
#include "worker.h"
#include "os/os.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static void region_free_locked(struct vmc *c, uint32_t r);

void *region_addr(struct vmc *c, uint32_t r)
{
	return (char *)c->arena + c->regions[r].arena_off;
}

/* Map region r at its place: prot is PROT_READ, PROT_READ|PROT_WRITE or,
 * for the code cache, PROT_READ|PROT_EXEC.  `at` overrides the address
 * (the code cache's read-write alias). */
int region_map(struct vmc *c, uint32_t r, void *at, int prot)
{
	struct vmc_region *e = &c->regions[r];
	size_t len = (size_t)e->ngran << GSHIFT(c);
	int populate = c->h.page_kind == VMC_PAGE_HUGETLB ? MAP_POPULATE : 0;

	if (os_mmap(at ? at : region_addr(c, r), len, prot, MAP_SHARED | MAP_FIXED | populate,
		    c->pool_fd, (off_t)e->first << GSHIFT(c)) == MAP_FAILED)
		return vmc_fail(errno, "mapping region %s: %s", e->name, vmc_strerror(errno));
	return 0;
}

/* Give [addr, addr+len) of the arena back to its PROT_NONE reservation. */
static void unmap_range(void *addr, size_t len)
{
	os_mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		-1, 0);
}

/* First fit in the region space for `size` bytes; UINT64_MAX if none.
 * Pool lock. */
static uint64_t place(struct vmc *c, uint64_t size)
{
	uint64_t lo = c->h.window_size + 2 * c->h.code_cache_size;
	uint64_t end = lo + c->h.region_space, at = lo;

	for (;;) {
		uint64_t next = at;
		for (uint32_t r = 0; r < VMC_MAX_REGIONS; r++) {
			struct vmc_region *e = &c->regions[r];
			uint64_t a = e->arena_off, b = a + ((uint64_t)e->ngran << GSHIFT(c));
			if (e->state == REGION_LIVE && a < at + size && b > at)
				next = VMC_MAX(next, b);
		}
		if (next == at)
			return at + size <= end ? at : UINT64_MAX;
		at = next;
	}
}

/* Take a run of n contiguous free granules for region r. Pool lock. */
static int take_run(struct vmc *c, uint32_t r, uint32_t n, uint32_t *first)
{
	uint32_t run = 0, g;

	for (g = 0; g < c->h.ngranules && run < n; g++)
		run = c->gran[g].state == G_FREE ? run + 1 : 0;
	if (run < n) {
		char adv[320];
		return vmc_fail(VMC_EFUNDS, "no run of %u contiguous free funded granules "
				"(%u free): use smaller regions, or %s", n, c->m->nfree,
				funds_advice(c, adv, sizeof adv));
	}
	*first = g - n;
	for (uint32_t k = 0; k < n; k++) {
		struct vmc_granule *e = &c->gran[*first + k];
		e->owner = REGION_OWNER | r;
		e->index = k;
		e->views = 1;
		e->flags = 0;
		gran_state(e, G_USED);
		e->next = VMC_NIL;
	}
	pool_rebuild(c);   /* they came out of the middle of the free list */
	__atomic_add_fetch(&c->m->committed, n, __ATOMIC_RELAXED);
	return 0;
}

/* Find region `name` (live or code). Pool lock. */
static uint32_t lookup(struct vmc *c, const char *name)
{
	for (uint32_t r = 0; r < VMC_MAX_REGIONS; r++)
		if (c->regions[r].state != REGION_FREE &&
		    !strncmp(c->regions[r].name, name, VMC_NAME_MAX))
			return r;
	return VMC_NIL;
}

static void set_opener(struct vmc *c, uint32_t r, int on);

/* The live cache region `name` (not the code cache): *r, or ENOENT; with
 * open, this worker becomes an opener in the same pool-lock hold. */
static int find_live(struct vmc *c, const char *name, uint32_t *r, int open)
{
	int err = pool_lock(c);
	if (err)
		return err;
	*r = lookup(c, name);
	if (*r != VMC_NIL && c->regions[*r].state == REGION_CODE)
		err = vmc_fail(EINVAL, "%s is the code cache: use vmc_code_alloc", name);
	else if (*r == VMC_NIL || c->regions[*r].state != REGION_LIVE)
		err = vmc_fail(ENOENT, "no region named %s", name);
	else if (open)
		set_opener(c, *r, 1);
	pool_unlock(c);
	return err;
}

int region_new(struct vmc *c, const char *name, uint64_t size, int kind, uint32_t *out)
{
	uint32_t r, free_r = VMC_NIL, n = (uint32_t)(size >> GSHIFT(c)), first = 0;
	uint64_t at;
	int err;

	if ((err = pool_drain_all(c)) || (err = pool_lock(c)))   /* caches hold free granules */
		return err;
	if (lookup(c, name) != VMC_NIL) {
		err = vmc_fail(EEXIST, "a region named %s exists", name);
		goto out;
	}
	for (r = kind == REGION_CODE ? 0 : 1; r < VMC_MAX_REGIONS && free_r == VMC_NIL; r++)
		if (c->regions[r].state == REGION_FREE)
			free_r = r;
	if (free_r == VMC_NIL) {
		err = vmc_fail(ENOSPC, "all %d regions are in use", VMC_MAX_REGIONS - 1);
		goto out;
	}
	at = kind == REGION_CODE ? c->h.window_size : place(c, size);
	if (at == UINT64_MAX) {
		err = vmc_fail(ENOSPC, "no %llu MiB of free arena space for region %s: raise "
			       "vmc/region_space (%llu MiB)", (unsigned long long)(size >> 20),
			       name, (unsigned long long)(c->h.region_space >> 20));
		goto out;
	}
	if ((err = take_run(c, free_r, n, &first)))
		goto out;
	struct vmc_region *e = &c->regions[free_r];
	memset(e->openers, 0, sizeof e->openers);
	snprintf(e->name, sizeof e->name, "%s", name);
	e->first = first;
	e->ngran = n;
	e->arena_off = at;
	e->maker = c->slot;
	/* a cache region is not found by name until its creator has zeroed it */
	__atomic_store_n(&e->state, kind == REGION_CODE ? REGION_CODE : REGION_MAKING,
			 __ATOMIC_RELEASE);
	*out = free_r;
out:
	pool_unlock(c);
	return err;
}

static void set_opener(struct vmc *c, uint32_t r, int on)
{
	uint64_t bit = 1ull << (c->slot % 64), *w = &c->regions[r].openers[c->slot / 64];
	if (on)
		__atomic_or_fetch(w, bit, __ATOMIC_RELEASE);
	else
		__atomic_and_fetch(w, ~bit, __ATOMIC_RELEASE);
}

static int check_args(const char *name, uint64_t size)
{
	size_t n = name ? strlen(name) : 0;
	if (!n || n >= VMC_NAME_MAX)
		return vmc_fail(EINVAL, "region name must be 1..%d characters", VMC_NAME_MAX - 1);
	if (!size)
		return vmc_fail(EINVAL, "region size 0: a region needs at least one byte");
	return 0;
}

int vmc_region_create(vmc_t *c, const char *name, size_t size, int flags, void **addr)
{
	uint32_t r;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = check_args(name, size)))
		return err;
	if (flags || !addr)
		return vmc_fail(EINVAL, "vmc_region_create: flags must be 0 and addr not NULL");
	if (size > c->h.pool_size)
		return vmc_fail(EINVAL, "region %s of %zu MiB is larger than the pool (%llu MiB)",
				name, size >> 20, (unsigned long long)(c->h.pool_size >> 20));
	size = (size + GSIZE(c) - 1) & ~(GSIZE(c) - 1);   /* whole granules (vmc.h) */
	/* on demand: fund what the free list lacks (a run is likeliest among
	 * granules funded together, lowest holes first) */
	uint32_t n = (uint32_t)(size >> GSHIFT(c));
	if (fund_ondemand_policy(c) && __atomic_load_n(&c->m->nfree, __ATOMIC_RELAXED) < n &&
	    (err = fund_for_commit(c, n, 1, 1)))
		return err;
	if ((err = region_new(c, name, size, REGION_LIVE, &r)))
		return err;
	if ((err = region_map(c, r, NULL, PROT_READ | PROT_WRITE)) || (err = pool_lock(c))) {
		region_free(c, r);
		return err;
	}
	pool_unlock(c);
	/* invariant 4 holds for regions too: what a VM left reads as zero */
	struct vmc_region *e = &c->regions[r];
	for (uint32_t k = 0; k < e->ngran; k++) {
		struct vmc_granule *g = &c->gran[e->first + k];
		if (g->last_vm != VMC_NIL)
			memset((char *)region_addr(c, r) + ((size_t)k << GSHIFT(c)), 0, GSIZE(c));
		g->last_vm = LAST_REGION;   /* from now on it holds the region's bytes */
	}
	if ((err = pool_lock(c)))
		return err;
	set_opener(c, r, 1);
	__atomic_store_n(&e->state, REGION_LIVE, __ATOMIC_RELEASE);
	pool_unlock(c);
	c->regions_mapped |= 1ull << r;
	*addr = region_addr(c, r);
	return 0;
}

int vmc_region_open(vmc_t *c, const char *name, int access, void **addr)
{
	uint32_t r;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!name || !addr || (access != VMC_REGION_READ && access != VMC_REGION_WRITE))
		return vmc_fail(EINVAL, "vmc_region_open: name, VMC_REGION_READ or _WRITE, addr");
	/* the opener bit goes up with the lookup, under the pool lock, so that a
	 * destroy either sees it or has freed the region before we look */
	if ((err = find_live(c, name, &r, 1)))
		return err;
	if ((err = region_map(c, r, NULL, access == VMC_REGION_WRITE ? PROT_READ | PROT_WRITE
								  : PROT_READ))) {
		set_opener(c, r, 0);
		return err;
	}
	c->regions_mapped |= 1ull << r;
	*addr = region_addr(c, r);
	return 0;
}

/* Region r mapped here at addr, or VMC_NIL. */
static uint32_t region_at(struct vmc *c, const void *addr)
{
	for (uint32_t r = 1; r < VMC_MAX_REGIONS; r++)
		if ((c->regions_mapped >> r & 1) && region_addr(c, r) == addr)
			return r;
	return VMC_NIL;
}

int vmc_region_close(vmc_t *c, void *addr)
{
	uint32_t r;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if ((r = region_at(c, addr)) == VMC_NIL)
		return vmc_fail(EINVAL, "%p is not a region open in this process", addr);
	unmap_range(addr, (size_t)c->regions[r].ngran << GSHIFT(c));
	c->regions_mapped &= ~(1ull << r);
	set_opener(c, r, 0);
	return 0;
}

void region_free(struct vmc *c, uint32_t r)
{
	if (pool_lock(c))
		return;
	region_free_locked(c, r);
	pool_unlock(c);
}

/* Give region r's granules back and free its entry. Pool lock. */
static void region_free_locked(struct vmc *c, uint32_t r)
{
	struct vmc_region *e = &c->regions[r];

	/* the entry first: a crash below leaves granules of a free region,
	 * which the pool lock's repair frees (pool.c) */
	__atomic_store_n(&e->state, REGION_FREE, __ATOMIC_RELEASE);
	for (uint32_t k = 0; k < e->ngran; k++) {
		struct vmc_granule *g = &c->gran[e->first + k];
		g->views = 0;
		g->last_vm = LAST_REGION;   /* dirty: zeroed before a VM sees it */
		pool_free_granule(c, e->first + k);
	}
	__atomic_sub_fetch(&c->m->committed, e->ngran, __ATOMIC_RELAXED);
	e->name[0] = 0;
}

/* 1 if a live worker other than us has region r open. */
static int opened_elsewhere(struct vmc *c, uint32_t r)
{
	for (uint32_t s = 0; s < c->h.max_workers; s++)
		if (s != c->slot && (c->regions[r].openers[s / 64] >> (s % 64) & 1) &&
		    c->slots[s].pid)
			return 1;
	return 0;
}

int vmc_region_destroy(vmc_t *c, const char *name)
{
	uint32_t r;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!name)
		return vmc_fail(EINVAL, "vmc_region_destroy: name is NULL");
	if ((err = find_live(c, name, &r, 0)))
		return err;
	if (opened_elsewhere(c, r) && (err = workers_recover(c, NULL, 0)))   /* dead ones */
		return err;
	if ((err = pool_lock(c)))
		return err;
	/* check and free in one hold: an opener cannot slip in between */
	if (c->regions[r].state != REGION_LIVE || strncmp(c->regions[r].name, name, VMC_NAME_MAX))
		err = vmc_fail(ENOENT, "no region named %s", name);
	else if (opened_elsewhere(c, r))
		err = vmc_fail(EBUSY, "region %s is open in another worker", name);
	if (err) {
		pool_unlock(c);
		return err;
	}
	if (c->regions_mapped >> r & 1) {
		unmap_range(region_addr(c, r), (size_t)c->regions[r].ngran << GSHIFT(c));
		c->regions_mapped &= ~(1ull << r);
	}
	region_free_locked(c, r);
	pool_unlock(c);
	return 0;
}

int vmc_region_stats(vmc_t *c, uint32_t i, vmc_region_stats_t *out)
{
	struct vmc_region *e;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!out || i >= VMC_MAX_REGIONS)
		return vmc_fail(EINVAL, "region index %u out of range 0..%d", i, VMC_MAX_REGIONS - 1);
	e = &c->regions[i];
	if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == REGION_FREE)
		return vmc_fail(ENOENT, "no region %u", i);
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", e->name);
	out->code = e->state == REGION_CODE;
	out->size = (uint64_t)e->ngran << GSHIFT(c);
	out->addr = region_addr(c, i);
	/* every worker maps the code cache; cache regions count their openers */
	for (uint32_t s = 0; s < c->h.max_workers; s++)
		out->openers += out->code ? c->slots[s].pid != 0
					  : (uint32_t)(e->openers[s / 64] >> (s % 64) & 1);
	return 0;
}

void region_forget_slot(struct vmc *c, uint32_t s)
{
	for (uint32_t r = 0; r < VMC_MAX_REGIONS; r++) {
		__atomic_and_fetch(&c->regions[r].openers[s / 64], ~(1ull << (s % 64)),
				   __ATOMIC_RELEASE);
		if (c->regions[r].state == REGION_MAKING && c->regions[r].maker == s)
			region_free_locked(c, r);   /* its creator died before it was ready */
	}
}

void region_forget_inherited(struct vmc *c)
{
	for (uint32_t r = 1; r < VMC_MAX_REGIONS; r++)
		if (c->regions_mapped >> r & 1)
			unmap_range(region_addr(c, r), (size_t)c->regions[r].ngran << GSHIFT(c));
	c->regions_mapped &= 1;
}
