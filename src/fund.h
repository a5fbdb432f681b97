/*
 * fund.h - funding on demand (vmc/fund_policy ondemand), and the advice
 * every out-of-funds message ends with.
 */
#ifndef VMC_FUND_H
#define VMC_FUND_H

#include "meta.h"

/* 1 if the container funds on demand. */
static inline int fund_ondemand_policy(const struct vmc *c)
{
	return c->h.fund_policy == VMC_FUND_ONDEMAND;
}

/* A commit of `need` granules (`reserve`: it may draw on the reserve fund)
 * found too few free funded granules: its budget charge failed (took == 0),
 * or the charge passed but no free granule could be taken (took == 1).
 * Under the on-demand policy, fund what it lacks, at least one batch, down
 * to the balloon target.  Call with no container lock held (it takes the
 * balloon lock; the system calls run under no other).  Returns 0 when the
 * commit may try again (also when another worker funded meanwhile), or
 * VMC_EFUNDS with a message that says what limit was met and what to do,
 * or the error of a lock.  Up-front containers: VMC_EFUNDS at once, the
 * message left as it was. */
VMC_HIDDEN int fund_for_commit(struct vmc *c, uint32_t need, int reserve, int took);

/* Before a commit of `need` granules: under the on-demand policy, fund
 * what the budget lacks now, so that the commit is likely to pass at
 * once (a clone takes its granules one by one and cannot retry).  No
 * container lock held.  Returns 0 or as fund_for_commit. */
VMC_HIDDEN int fund_ahead(struct vmc *c, uint32_t need, int reserve);

/* What the operator of this container can do when it is out of funded
 * granules, as the end of a message ("release memory in the VMs, or ..."):
 * only what applies (unfunded granules and the balloon, for a named
 * container the vmcctl command, the pool size when all of it is funded).
 * Writes into buf and returns it. */
VMC_HIDDEN const char *funds_advice(struct vmc *c, char *buf, size_t n);

#endif
