/*
 * budget.h - the container's commit budget and the reserve fund (budget.c).
 */
#ifndef VMC_BUDGET_H
#define VMC_BUDGET_H

#include "meta.h"

/* Charge n granules of new commits to the container's budget: non-reserve
 * commits leave reserve_size of the funded pool for VMC_COMMIT_RESERVE.
 * *from_reserve gets how many of the n come out of the reserve.  Call with
 * this worker's slot lock held, and keep holding it until the commit is in
 * the page map (vm->committed) or budget_uncharge gave it back: that is
 * what makes the counter exact under every slot lock (vmc_check) and
 * repairable after a crash.  Returns 0 or VMC_EFUNDS. */
VMC_HIDDEN int budget_charge(struct vmc *c, uint32_t n, int reserve, uint32_t *from_reserve);
VMC_HIDDEN void budget_uncharge(struct vmc *c, uint32_t n);

/* What the committed counter must be: granules of live regions plus every
 * VM's primary page-map entries (needs every slot lock and the pool lock,
 * or a quiescent image). */
VMC_HIDDEN uint32_t budget_count(struct vmc *c);

/* If a worker died inside a charge (m->budget_stale), stop the world and
 * recount every VM's committed and the container's total.  force: always.
 * Call with no container lock held. */
VMC_HIDDEN int budget_recount(struct vmc *c, int force);

#endif
