/*
 * check.c - vmc_check and vmc_recover.  vmc_check stops the world briefly
 * (the balloon lock, every slot lock, then the pool lock: the lock order)
 * and runs the
 * deep validator over the live tables: every granule in exactly one state,
 * each list holding exactly the granules marked so, the counters matching.
 * Debug builds also walk the heap of the VM attached here.  vmc_recover
 * reclaims the slots and caches of dead workers.
 */
#include "container.h"
#include "pool.h"
#include "vm.h"
#include "window.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int vmc_check(vmc_t *c, vmc_check_report_t *out)
{
	vmc_check_report_t r;
	uint32_t locked = 0;
	int err;

	vmc_clear_error();
	memset(&r, 0, sizeof r);
	if ((err = vmc_enter(c)) || (err = balloon_lock(c)))
		return err;
	for (; locked < c->h.max_workers; locked++)
		if ((err = slot_lock(c, locked)))
			goto unlock;
	if ((err = pool_lock(c)))
		goto unlock;
	err = meta_validate(c->m, c->meta_len, META_DEEP, r.first, sizeof r.first);
	if (!err && memcmp(c->m, &c->h, offsetof(struct vmc_meta, pool_lock))) {
		err = VMC_ECORRUPT;
		snprintf(r.first, sizeof r.first, "the immutable header was overwritten");
	}
	pool_unlock(c);
	r.errors = err != 0;
unlock:
	while (locked-- > 0)
		slot_unlock(c, locked);
	balloon_unlock(c);
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

int vmc_recover(vmc_t *c, vmc_recover_report_t *out)
{
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	return workers_recover(c, out);
}
