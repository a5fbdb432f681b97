/*
 * code.c - the JIT code cache: one region, mapped read+execute at the same
 * address in every worker and never touched by attach or detach, so
 * switching VMs costs nothing on its account.  Code is written only through
 * a read-write alias of the same granules at another address (W^X dual
 * mapping), which a process maps when it first allocates code.
 *
 * The allocator hands out 64-byte units, first fit, with two bitmaps in
 * the container (units in use; units that start an allocation), guarded by
 * a robust lock; vmc_code_free finds an allocation's end from them.  With
 * vmc/code_cache_protect = 1 every attach opens the cache and every detach
 * locks it again, the naive way, so its cost can be measured.
 */
#include "region.h"
#include "container.h"
#include "os/os.h"

#include <errno.h>
#include <sys/mman.h>

#define UNIT ((uint64_t)1 << CODE_UNIT_SHIFT)

static uint64_t nunits(struct vmc *c)
{
	return c->h.code_cache_size >> CODE_UNIT_SHIFT;
}

static uint64_t *used_map(struct vmc *c)
{
	return c->codemap;
}

static uint64_t *start_map(struct vmc *c)
{
	return c->codemap + codemap_bytes(c->h.code_cache_size) / 8;
}

static int test_bit(const uint64_t *m, uint64_t i)
{
	return (int)(m[i / 64] >> (i % 64) & 1);
}

static void set_bits(uint64_t *m, uint64_t i, uint64_t n, int on)
{
	for (uint64_t k = i; k < i + n; k++) {
		if (on)
			m[k / 64] |= 1ull << (k % 64);
		else
			m[k / 64] &= ~(1ull << (k % 64));
	}
}

static void *rx_base(struct vmc *c)
{
	return (char *)c->arena + c->h.window_size;
}

static void *rw_base(struct vmc *c)
{
	return (char *)c->arena + c->h.window_size + c->h.code_cache_size;
}

int code_create(struct vmc *c)
{
	uint32_t r;
	if (!c->h.code_cache_size)
		return 0;
	return region_new(c, "(code cache)", c->h.code_cache_size, REGION_CODE, &r);
}

int code_join(struct vmc *c)
{
	if (!c->h.code_cache_size)
		return 0;
	return region_map(c, 0, NULL, c->h.code_cache_protect ? PROT_NONE : PROT_READ | PROT_EXEC);
}

int code_protect(struct vmc *c, int open)
{
	if (!c->h.code_cache_size || !c->h.code_cache_protect)
		return 0;
	if (os_mprotect(rx_base(c), c->h.code_cache_size,
			open ? PROT_READ | PROT_EXEC : PROT_NONE))
		return vmc_fail(errno, "code cache mprotect: %s", vmc_strerror(errno));
	return 0;
}

/* The code lock's repair: a dead allocator may have left a run of used
 * units without its start bit, or a start bit on a free unit.  Clear
 * both, then count code_used from the used bitmap again. */
static void code_repair(void *arg)
{
	struct vmc *c = arg;
	uint64_t used = 0, total = nunits(c);
	int in_alloc = 0;

	for (uint64_t i = 0; i < total; i++) {
		int u = test_bit(used_map(c), i), st = test_bit(start_map(c), i);
		if (st && !u)
			set_bits(start_map(c), i, 1, 0);
		in_alloc = u && (st || in_alloc);
		if (u && !in_alloc)
			set_bits(used_map(c), i, 1, 0);
		used += in_alloc;
	}
	c->m->code_used = used * UNIT;
}

uint64_t code_used_bytes(struct vmc *c)
{
	uint64_t used = 0, words = codemap_bytes(c->h.code_cache_size) / 8;
	for (uint64_t w = 0; w < words; w++)
		used += (uint64_t)__builtin_popcountll(used_map(c)[w]);
	return used * UNIT;
}

void code_lock_use(struct vmc *c, struct vmc_lock_use *u)
{
	*u = (struct vmc_lock_use){ "code-cache lock", c->h.name, -1, code_repair, c,
				    &c->m->cnt.lock_repairs };
}

static int code_lock(struct vmc *c)
{
	struct vmc_lock_use u;
	code_lock_use(c, &u);
	return vmc_lock(&c->m->code_lock, &u);
}

int vmc_code_alloc(vmc_t *c, size_t n, void **rx, void **rw)
{
	uint64_t want, run = 0, i, total;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!c->h.code_cache_size)
		return vmc_fail(ENOSYS, "this container has no code cache: set "
				"vmc/code_cache_size when creating it");
	if (!n || n > c->h.code_cache_size || !rx)
	{
		char sz[VMC_SIZE_STR];
		return vmc_fail(EINVAL, "code allocation of %zu bytes: must be 1 byte .. the code "
				"cache (%s), and rx not NULL", n,
				vmc_size_str(c->h.code_cache_size, sz));
	}
	if (!c->code_rw) {
		if ((err = region_map(c, 0, rw_base(c), PROT_READ | PROT_WRITE)))
			return err;
		c->code_rw = 1;
	}
	want = (n + UNIT - 1) / UNIT;
	total = nunits(c);
	if ((err = code_lock(c)))
		return err;
	for (i = 0; i < total && run < want; i++)
		run = test_bit(used_map(c), i) ? 0 : run + 1;
	if (run < want) {
		vmc_unlock(&c->m->code_lock);
		return vmc_fail(ENOMEM, "the code cache has no %zu free contiguous bytes "
				"(%llu of %llu used): raise vmc/code_cache_size", n,
				(unsigned long long)c->m->code_used,
				(unsigned long long)c->h.code_cache_size);
	}
	i -= want;
	set_bits(used_map(c), i, want, 1);
	set_bits(start_map(c), i, 1, 1);
	c->m->code_used += want * UNIT;
	vmc_unlock(&c->m->code_lock);
	*rx = (char *)rx_base(c) + i * UNIT;
	if (rw)
		*rw = (char *)rw_base(c) + i * UNIT;
	return 0;
}

int vmc_code_free(vmc_t *c, void *rx)
{
	uint64_t i, end, total;
	uintptr_t off = (uintptr_t)rx - (uintptr_t)rx_base(c);
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	total = nunits(c);
	if (!c->h.code_cache_size || (uintptr_t)rx < (uintptr_t)rx_base(c) ||
	    off >= c->h.code_cache_size || off % UNIT)
		return vmc_fail(EINVAL, "%p is not in the code cache", rx);
	i = off / UNIT;
	if ((err = code_lock(c)))
		return err;
	if (!test_bit(start_map(c), i)) {
		vmc_unlock(&c->m->code_lock);
		return vmc_fail(EINVAL, "%p is not the start of a code allocation", rx);
	}
	for (end = i + 1; end < total && test_bit(used_map(c), end) &&
			  !test_bit(start_map(c), end); end++)
		;
	set_bits(used_map(c), i, end - i, 0);
	set_bits(start_map(c), i, 1, 0);
	c->m->code_used -= (end - i) * UNIT;
	vmc_unlock(&c->m->code_lock);
	return 0;
}

void vmc_code_flush(void *rx, size_t n)
{
	__builtin___clear_cache((char *)rx, (char *)rx + n);
}
