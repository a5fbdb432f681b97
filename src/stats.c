/*
 * stats.c - statistics.  Every counter lives in the metadata file and is
 * updated with relaxed atomics by whichever process does the work, so any
 * process (vmcctl stat, a monitoring agent) sees the container's totals.
 * Granule counts by state are taken from the table under the pool lock, so
 * a snapshot always adds up to the pool size.
 */
#include "container.h"
#include "pool.h"
#include "worker.h"
#include "os/os.h"

#include <errno.h>
#include <string.h>

const char *vmc_page_kind_name(int kind)
{
	switch (kind) {
	case VMC_PAGE_AUTO: return "auto";
	case VMC_PAGE_HUGETLB: return "hugetlb";
	case VMC_PAGE_THP: return "thp";
	case VMC_PAGE_4K: return "4k";
	}
	return "?";
}

size_t vmc_granule_size(vmc_t *c)
{
	return c && c->m ? GSIZE(c) : 0;
}

uint64_t vmc_syscalls(void)
{
	return vmc_os_calls_total();
}

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* to += from, field by field (all fields are uint64_t counters). */
static void sum_stats(vmc_attach_stats_t *to, const vmc_attach_stats_t *from)
{
	const uint64_t *f = (const uint64_t *)from;
	uint64_t *t = (uint64_t *)to;
	for (size_t i = 0; i < sizeof *from / sizeof *f; i++)
		t[i] += load(&f[i]);
}

uint64_t vmc_hist_percentile(const uint64_t hist[VMC_HIST_BUCKETS], double p)
{
	uint64_t total = 0, seen = 0;
	for (int k = 0; k < VMC_HIST_BUCKETS; k++)
		total += hist[k];
	if (!total)
		return 0;
	for (int k = 0; k < VMC_HIST_BUCKETS; k++) {
		seen += hist[k];
		if ((double)seen >= p * (double)total)
			return 2ull << k;
	}
	return 2ull << (VMC_HIST_BUCKETS - 1);
}

int vmc_stats(vmc_t *c, vmc_stats_t *out)
{
	uint32_t n[G_NSTATES];
	const struct vmc_counters *k;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!out)
		return vmc_fail(EINVAL, "vmc_stats: out is NULL");
	memset(out, 0, sizeof *out);
	if ((err = pool_lock(c)))
		return err;
	pool_count(c, n);
	for (uint32_t v = 0; v < c->h.max_vms; v++)
		out->vms += VM_STATE(__atomic_load_n(&c->vms[v].own, __ATOMIC_ACQUIRE)) != VM_FREE;
	for (uint32_t r = 0; r < VMC_MAX_REGIONS; r++)
		if (c->regions[r].state == REGION_LIVE) {
			out->regions++;
			out->region_bytes += (uint64_t)c->regions[r].ngran << GSHIFT(c);
		}
	out->code_cache_size = c->h.code_cache_size;
	out->code_cache_used = __atomic_load_n(&c->m->code_used, __ATOMIC_RELAXED);
	pool_unlock(c);
	sum_stats(&out->attach, &c->m->cnt.gone);
	for (uint32_t s = 0; s < c->h.max_workers; s++) {
		if (!__atomic_load_n(&c->slots[s].pid, __ATOMIC_ACQUIRE))
			continue;
		sum_stats(&out->attach, &c->slots[s].st);
		if (worker_alive(c, s))
			out->workers++;
		else
			out->dead_workers++;
	}
	out->pool_size = c->h.pool_size;
	out->reserve_size = c->h.reserve_size;
	out->fund_policy = (int)c->h.fund_policy;
	out->fund_batch = (uint64_t)c->h.fund_batch << GSHIFT(c);
	out->balloon_target = (uint64_t)__atomic_load_n(&c->m->balloon_target, __ATOMIC_RELAXED)
			      << GSHIFT(c);
	out->granules = c->h.ngranules;
	out->unfunded = n[G_UNFUNDED];
	out->free = n[G_FREE];
	out->cached = n[G_CACHED];
	out->used = n[G_USED];
	out->quarantined = n[G_QUARANTINED];
	out->funded_bytes = (uint64_t)(c->h.ngranules - n[G_UNFUNDED]) << GSHIFT(c);
	out->max_workers = c->h.max_workers;
	out->max_vms = c->h.max_vms;
	out->page_kind = (int)c->h.page_kind;
	out->memory_isolation = (int)c->h.memory_isolation;
	out->window_size = c->h.window_size;
	out->arena_base = c->h.arena_base;
	out->arena_size = c->h.arena_size;
	k = &c->m->cnt;
	out->fund_ops = load(&k->fund_ops);
	out->fund_granules = load(&k->fund_granules);
	out->unfund_ops = load(&k->unfund_ops);
	out->unfund_granules = load(&k->unfund_granules);
	out->ondemand_ops = load(&k->ondemand_ops);
	out->ondemand_granules = load(&k->ondemand_granules);
	out->cache_refills = load(&k->cache_refills);
	out->cache_drains = load(&k->cache_drains);
	out->lock_repairs = load(&k->lock_repairs);
	out->workers_recovered = load(&k->workers_recovered);
	return 0;
}

int vmc_worker_stats(vmc_t *c, uint32_t slot, vmc_worker_stats_t *out)
{
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (!out || slot >= c->h.max_workers)
		return vmc_fail(EINVAL, "worker slot %u out of range 0..%u", slot,
				c->h.max_workers - 1);
	memset(out, 0, sizeof *out);
	out->pid = __atomic_load_n(&c->slots[slot].pid, __ATOMIC_ACQUIRE);
	out->cached = __atomic_load_n(&c->slots[slot].cache_count, __ATOMIC_RELAXED);
	out->alive = out->pid ? worker_alive(c, slot) : 0;
	out->attached = __atomic_load_n(&c->slots[slot].attached, __ATOMIC_RELAXED);
	if (out->pid)
		sum_stats(&out->attach, &c->slots[slot].st);
	return 0;
}

uint32_t vmc_worker_slot(vmc_t *c)
{
	return vmc_enter(c) ? VMC_NO_SLOT : c->slot;
}

void vmc_set_progress(vmc_t *c, void (*fn)(void *, uint64_t, uint64_t), void *arg)
{
	if (!c)
		return;
	c->progress = fn;
	c->progress_arg = arg;
}

void stats_retire(struct vmc *c, uint32_t slot)
{
	vmc_attach_stats_t snap;
	memset(&snap, 0, sizeof snap);
	sum_stats(&snap, &c->slots[slot].st);
	const uint64_t *f = (const uint64_t *)&snap;
	uint64_t *t = (uint64_t *)&c->m->cnt.gone;
	for (size_t i = 0; i < sizeof snap / sizeof *f; i++)
		__atomic_add_fetch(&t[i], f[i], __ATOMIC_RELAXED);
}
