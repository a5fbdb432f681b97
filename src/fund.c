/*
 * fund.c - funding on demand.  An up-front container (vmc/fund_policy
 * upfront, the default) is funded at create and changes only by balloon
 * calls: what is funded is there when a commit or the reserve fund needs
 * it, Azul-style.  An on-demand container funds little at create
 * (fund_size, at least its code cache and reserve fund), and a commit that
 * finds no free funded granule - its budget charge fails, or, after the
 * cache refill, the recovery of dead workers and the take-back of idle
 * workers' caches, no granule is left to take - funds more here and tries
 * again.
 *
 * A fund adds fund_batch granules at least (one fallocate per run of
 * holes, never one per granule), more when the commit needs more, and
 * stops at the balloon target: the granules the operator ballooned out
 * (vmc_balloon) are not funded again behind the operator's back.  It runs
 * with the balloon lock and no other, so its system calls hold up no
 * worker (pool_fund: holes are picked and backed under the balloon lock
 * alone, and turn FREE under the pool lock only after fallocate
 * succeeded); the committing worker lets go of its slot lock first (the
 * lock order is balloon -> slot -> pool) and charges again afterwards.
 *
 * Crash safety is pool_fund's: a funder killed anywhere leaves granules
 * UNFUNDED (the balloon lock's repair punches whatever memory a half-done
 * fallocate left behind them) or FREE (the pool lock's repair files them
 * and counts the unfunded again), never a granule mapped without memory
 * (invariant 7).  The host's limits (MemAvailable, free hugepages, tmpfs
 * space) are checked for every fund (backing_precheck), and a fund they
 * refuse fails the commit with VMC_EFUNDS and the host's figure.
 */
#include "fund.h"
#include "backing.h"
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *funds_advice(struct vmc *c, char *buf, size_t n)
{
	uint32_t unfunded = __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
	uint32_t target = __atomic_load_n(&c->m->balloon_target, __ATOMIC_RELAXED);
	char a[VMC_SIZE_STR], b[VMC_SIZE_STR], cmd[VMC_NAME_MAX + 48] = "";

	if (c->h.name[0])
		snprintf(cmd, sizeof cmd, " or `vmcctl balloon %s SIZE`", c->h.name);
	if (!unfunded)
		snprintf(buf, n, "release memory in the VMs: all %s of the pool is funded "
			 "(a larger pool needs a new container, vmc/pool_size)",
			 vmc_size_str(c->h.pool_size, a));
	else if (!fund_ondemand_policy(c))
		snprintf(buf, n, "release memory in the VMs, or fund more of the %s unfunded "
			 "(vmc_balloon%s, SIZE the bytes to leave unfunded)",
			 vmc_size_str((uint64_t)unfunded << GSHIFT(c), a), cmd);
	else
		snprintf(buf, n, "release memory in the VMs, or lower the balloon target: %s "
			 "of the pool is ballooned out (the last vmc_balloon asked %s "
			 "unfunded) and on-demand funding leaves it so (vmc_balloon%s)",
			 vmc_size_str((uint64_t)unfunded << GSHIFT(c), a),
			 vmc_size_str((uint64_t)target << GSHIFT(c), b), cmd);
	return buf;
}

/* Granules the commit lacks now: the budget's shortfall (funded less the
 * reserve it may not use, against what is committed), or with took, at
 * least one (the budget has room, but the free granules are out of reach:
 * in busy workers' caches or quarantine). */
static uint32_t lacking(struct vmc *c, uint32_t need, int reserve, int took)
{
	uint32_t funded = c->h.ngranules - __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
	uint32_t rsv = reserve ? 0 : (uint32_t)(c->h.reserve_size >> GSHIFT(c));
	uint64_t want = (uint64_t)__atomic_load_n(&c->m->committed, __ATOMIC_RELAXED) + need + rsv;
	uint32_t lack = want > funded ? (uint32_t)VMC_MIN(want - funded, UINT32_MAX) : 0;

	return took ? VMC_MAX(lack, 1) : lack;
}

/* Fund at least `min` granules and up to `want` (host permitting), down to
 * the balloon target.  Balloon lock held. */
static int fund_some(struct vmc *c, uint32_t need, int reserve, uint32_t min, uint32_t want)
{
	uint32_t unfunded = __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
	uint32_t target = __atomic_load_n(&c->m->balloon_target, __ATOMIC_RELAXED);
	uint32_t room = unfunded > target ? unfunded - target : 0, got;
	char adv[320], host[256], a[VMC_SIZE_STR], b[VMC_SIZE_STR], r[160] = "";
	int err;

	if (room < min) {
		size_t k = 0;
		if (room)
			k += (size_t)snprintf(r, sizeof r, ", on-demand funding may add %s",
					      vmc_size_str((uint64_t)room << GSHIFT(c), host));
		if (!reserve && c->h.reserve_size)   /* only where it is in the way */
			snprintf(r + k, sizeof r - k, ", and the reserve fund (%s) is kept for "
				 "VMC_COMMIT_RESERVE", vmc_size_str(c->h.reserve_size, host));
		return vmc_fail(VMC_EFUNDS, "committing %s needs %s more funded memory%s: %s",
				vmc_size_str((uint64_t)need << GSHIFT(c), a),
				vmc_size_str((uint64_t)min << GSHIFT(c), b), r,
				funds_advice(c, adv, sizeof adv));
	}
	want = VMC_MIN(VMC_MAX(want, min), room);
	vmc_assert(want >= min && want <= unfunded);   /* never below the balloon target */
	err = pool_fund(c, want, 1);
	if (err == ENOMEM || err == ENOSPC) {
		got = unfunded - __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
		if (got >= min)
			return 0;   /* part of the batch: enough for this commit */
		if (want > min)   /* a whole batch is more than the host has */
			err = pool_fund(c, min - got, 1);
	}
	if (err != ENOMEM && err != ENOSPC)
		return err;
	snprintf(host, sizeof host, "%s", vmc_errmsg());
	return vmc_fail(VMC_EFUNDS, "committing %s: funding on demand failed: %s",
			vmc_size_str((uint64_t)need << GSHIFT(c), a), host);
}

static int fund(struct vmc *c, uint32_t need, int reserve, int took)
{
	uint32_t min;
	int err;

	if ((err = balloon_lock(c)))
		return err;
	/* under the lock: another worker may have funded while we waited */
	min = lacking(c, need, reserve, took);
	err = min ? fund_some(c, need, reserve, min,
			      VMC_MAX(took ? need : min, c->h.fund_batch)) : 0;
	balloon_unlock(c);
	return err;
}

int fund_for_commit(struct vmc *c, uint32_t need, int reserve, int took)
{
	if (!fund_ondemand_policy(c))
		return VMC_EFUNDS;
	return fund(c, need, reserve, took);
}

int fund_ahead(struct vmc *c, uint32_t need, int reserve)
{
	if (!fund_ondemand_policy(c) || !need || !lacking(c, need, reserve, 0))
		return 0;
	return fund(c, need, reserve, 0);
}
