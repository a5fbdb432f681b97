/*
 * check.c - vmc_check and vmc_recover.  vmc_check stops the world briefly
 * (the balloon lock, every slot lock, then the pool lock: the lock order)
 * and runs the deep validator over the live tables: every granule in
 * exactly one state, each list holding exactly the granules marked so,
 * every derived counter (list lengths, VMs' committed, the budget, the
 * code cache's bytes) equal to what the state bytes say.  Debug builds
 * also walk the heap of the VM attached here.  vmc_recover takes back
 * locks whose owner is gone, reclaims the slots and caches of dead
 * workers and counts the budget again.
 */
#include "container.h"
#include "budget.h"
#include "region.h"
#include "pool.h"
#include "vm.h"
#include "window.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The derived figures that meta_validate does not see: the budget and the
 * code cache's bytes in use.  World stopped. */
static int check_derived(struct vmc *c, char *why, size_t n)
{
	uint32_t want = budget_count(c);

	if (c->m->committed != want)
		return snprintf(why, n, "the budget says %u granules are committed, the page maps "
				"and regions hold %u", c->m->committed, want), VMC_ECORRUPT;
	if (c->m->pm_top != vm_pm_top(c))
		return snprintf(why, n, "page-map space is used up to entry %u, its top says %u",
				vm_pm_top(c), c->m->pm_top), VMC_ECORRUPT;
	if (c->h.code_cache_size && c->m->code_used != code_used_bytes(c))
		return snprintf(why, n, "the code cache says %llu bytes are used, its bitmap %llu",
				(unsigned long long)c->m->code_used,
				(unsigned long long)code_used_bytes(c)), VMC_ECORRUPT;
	return 0;
}

int vmc_check(vmc_t *c, vmc_check_report_t *out)
{
	vmc_check_report_t r;
	int err;

	vmc_clear_error();
	memset(&r, 0, sizeof r);
	if ((err = vmc_enter(c)) || (err = world_stop(c, 1)))
		return err;
	err = meta_validate(c->m, c->meta_len, META_DEEP, r.first, sizeof r.first);
	if (!err && memcmp(c->m, &c->h, offsetof(struct vmc_meta, pool_lock))) {
		err = VMC_ECORRUPT;
		snprintf(r.first, sizeof r.first, "the immutable header was overwritten");
	}
	if (!err)
		err = check_derived(c, r.first, sizeof r.first);
	world_start(c, 1);
	r.errors = err != 0;
#ifndef NDEBUG
	/* debug builds also walk the heap of the VM attached here, if it has one */
	if (!err && c->win->attached != VMC_NIL) {
		if ((err = heap_check(c))) {
			r.errors = 1;
			snprintf(r.first, sizeof r.first, "%s", vmc_errmsg());
		}
	}
#endif
	if (out)
		*out = r;
	if (err && r.errors)
		return vmc_fail(err, "check: %s", r.first);
	return err;
}

/* Locks whose owner is gone without the kernel knowing: take them back. */
static int recover_locks(struct vmc *c)
{
	struct vmc_lock_use u[3];
	vmc_lock_t *l[3] = { &c->m->pool_lock, &c->m->balloon_lock, &c->m->code_lock };
	int err = 0;

	pool_lock_use(c, &u[0]);
	balloon_lock_use(c, &u[1]);
	code_lock_use(c, &u[2]);
	for (int k = 0; k < 3 && !err; k++)
		err = vmc_lock_reset_if_orphaned(l[k], &u[k]);
	for (uint32_t s = 0; s < c->h.max_workers && !err; s++) {
		struct slot_repair r = { c, s };
		slot_lock_use(c, &r, &u[0]);
		err = vmc_lock_reset_if_orphaned(&c->slots[s].lock, &u[0]);
	}
	return err;
}

int vmc_recover(vmc_t *c, vmc_recover_report_t *out)
{
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)) || (err = recover_locks(c)) || (err = workers_recover(c, out, 0)))
		return err;
	return budget_recount(c, 1);
}
