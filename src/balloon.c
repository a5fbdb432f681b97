/*
 * balloon.c - vmc_balloon: move the pool's funded size toward a target,
 * Azul-style.  Inflating the balloon gives free granules back to the host
 * by punching holes in the pool file (at hole-punch speed on hugetlb: no
 * copying, no page-table walk of live mappings); deflating funds holes
 * again.  Used granules are never touched, so a running VM cannot lose
 * memory to the balloon.
 */
#include "container.h"
#include "pool.h"

#include <errno.h>

int vmc_balloon(vmc_t *c, uint64_t target_unfunded, uint64_t *achieved)
{
	uint32_t target, now, done = 0;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (target_unfunded % VMC_GRANULE_SIZE || target_unfunded > c->h.pool_size)
		return vmc_fail(EINVAL, "balloon target %llu: must be a multiple of 2 MiB "
				"no larger than the pool (%llu)",
				(unsigned long long)target_unfunded,
				(unsigned long long)c->h.pool_size);
	target = (uint32_t)(target_unfunded >> VMC_GRANULE_SHIFT);
	now = __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
	if (target > now)
		err = pool_unfund(c, target - now, &done);
	else if (target < now)
		err = pool_fund(c, now - target);
	if (achieved)
		*achieved = (uint64_t)__atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED)
			    << VMC_GRANULE_SHIFT;
	return err;
}
