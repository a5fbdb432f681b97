/*
 * balloon.c - funding and ballooning, Azul-style.  Funding backs holes of
 * the pool file with memory (free granules appear); inflating the balloon
 * gives free granules back to the host by punching holes (at hole-punch
 * speed on hugetlb: no copying, no page-table walk of live mappings);
 * deflating funds holes again.  Used granules are never touched, so a
 * running VM cannot lose memory to the balloon.
 *
 * One balloon operation runs at a time (the balloon lock), and it makes its
 * slow system calls without the pool lock, so workers taking granules are
 * not held up behind a fallocate:
 *  - fund: pick holes (only a balloon-lock holder changes unfunded
 *    granules), fallocate them, then free them under the pool lock;
 *  - unfund: take free granules and mark them unfunded under the pool
 *    lock, then punch them.  A granule is marked unfunded before its hole
 *    is punched and funded only after fallocate succeeded, so it is never
 *    mapped without memory behind it (invariant 7, no SIGBUS).
 * A balloon holder that dies mid-call may leave memory behind unfunded
 * granules; the balloon lock's repair punches them again.
 */
#include "container.h"
#include "backing.h"
#include "pool.h"

#include <errno.h>
#include <stdlib.h>

#define CHUNK 64u   /* granules per system call batch and pool-lock hold */

/* Punch granules [g, g+n) (unfunded ones: the balloon lock is held) and
 * only then record that they read as zero: a granule whose punch failed
 * or never happened keeps its last user, and is zeroed before reuse. */
static int punch(struct vmc *c, uint32_t g, uint32_t n)
{
	int err = backing_unfund(c, g, n);
	for (uint32_t k = 0; k < n && !err; k++)
		c->gran[g + k].last_vm = VMC_NIL;
	return err;
}

/* The balloon lock's repair: give back what a dead funder half-allocated,
 * and punch what a dead unfunder marked but did not punch. */
static void balloon_repair(void *arg)
{
	struct vmc *c = arg;
	for (uint32_t g = 0, run; g < c->h.ngranules; g += run ? run : 1) {
		for (run = 0; g + run < c->h.ngranules &&
			      __atomic_load_n(&c->gran[g + run].state, __ATOMIC_RELAXED) == G_UNFUNDED;
		     run++)
			;
		if (run)
			punch(c, g, run);
	}
}

void balloon_lock_use(struct vmc *c, struct vmc_lock_use *u)
{
	*u = (struct vmc_lock_use){ "balloon lock", c->h.name, -1, balloon_repair, c,
				    &c->m->cnt.lock_repairs };
}

int balloon_lock(struct vmc *c)
{
	struct vmc_lock_use u;
	balloon_lock_use(c, &u);
	return vmc_lock(&c->m->balloon_lock, &u);
}

void balloon_unlock(struct vmc *c)
{
	vmc_unlock(&c->m->balloon_lock);
}

static void count_op(uint64_t *ops, uint64_t *granules, uint32_t n)
{
	__atomic_add_fetch(ops, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(granules, n, __ATOMIC_RELAXED);
}

static void progress(struct vmc *c, uint32_t done, uint32_t total)
{
	if (c->progress)
		c->progress(c->progress_arg, (uint64_t)done << GSHIFT(c),
			    (uint64_t)total << GSHIFT(c));
}

/* Fund n holes, lowest first.  Balloon lock held. */
int pool_fund(struct vmc *c, uint32_t n, int ondemand)
{
	uint32_t done = 0, g = 0, ng = c->h.ngranules;
	int err;

	if (n > c->m->nunfunded)
		return vmc_fail(VMC_EFUNDS, "cannot fund %u granules: only %u of the pool's %u "
				"are unfunded", n, c->m->nunfunded, ng);
	if ((err = backing_precheck((int)c->h.page_kind,
				    c->h.flags & META_POOL_MEMFD ? -1 : c->pool_fd,
				    (uint64_t)n << GSHIFT(c), ondemand ?
				    "release memory in the container's VMs" :
				    "fund less (vmc/fund_size, vmc_balloon)")))
		return err;
	while (done < n) {
		uint32_t run = 0;
		while (g < ng && c->gran[g].state != G_UNFUNDED)
			g++;
		if (g == ng)
			return vmc_fail(VMC_EFUNDS, "no unfunded granules left to fund");
		while (g + run < ng && run < VMC_MIN(CHUNK, n - done) &&
		       c->gran[g + run].state == G_UNFUNDED)
			run++;
		if ((err = backing_fund(c, g, run)) || (err = pool_lock(c)))
			return err;
		for (uint32_t i = 0; i < run; i++)   /* last_vm: see punch() */
			pool_free_granule(c, g + i);
		CNT_ADD(&c->m->nunfunded, -run);
		pool_unlock(c);
		count_op(&c->m->cnt.fund_ops, &c->m->cnt.fund_granules, run);
		if (ondemand)
			count_op(&c->m->cnt.ondemand_ops, &c->m->cnt.ondemand_granules, run);
		done += run;
		g += run;
		if (!ondemand)   /* a commit draws no progress bar */
			progress(c, done, n);
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Take up to `want` free granules and mark them unfunded (pool lock), then
 * punch them, contiguous runs in one call each.  *got = granules taken. */
static int unfund_chunk(struct vmc *c, uint32_t want, uint32_t *got)
{
	uint32_t pick[CHUNK], n = 0;
	int err;

	if ((err = pool_lock(c)))
		return err;
	while (n < want && (pick[n] = pool_pop_free(c)) != VMC_NIL) {
		struct vmc_granule *e = &c->gran[pick[n++]];
		e->next = VMC_NIL;
		gran_state(e, G_UNFUNDED);
	}
	CNT_ADD(&c->m->nunfunded, n);
	pool_unlock(c);
	*got = n;
	qsort(pick, n, sizeof *pick, cmp_u32);
	for (uint32_t i = 0, run; i < n; i += run) {
		for (run = 1; i + run < n && pick[i + run] == pick[i] + run; run++)
			;
		/* a failed punch leaves memory behind an unfunded granule: a
		 * leak until the next deflate, never a granule without memory */
		if ((err = punch(c, pick[i], run)))
			return err;
		count_op(&c->m->cnt.unfund_ops, &c->m->cnt.unfund_granules, run);
	}
	return 0;
}

/* Unfund n free granules, taking back workers' caches if the free list
 * runs short.  Balloon lock held. */
static int pool_unfund(struct vmc *c, uint32_t n)
{
	uint32_t done = 0, got;
	int err, drained = 0;

	while (done < n) {
		if ((err = unfund_chunk(c, VMC_MIN(CHUNK, n - done), &got)))
			return err;
		done += got;
		if (got)
			continue;
		if (drained++)
			return vmc_fail(VMC_EFUNDS, "only %u of %u granules could be unfunded: "
					"the rest are in use", done, n);
		if ((err = pool_drain_all(c)))
			return err;
	}
	return 0;
}

int vmc_balloon(vmc_t *c, uint64_t target_unfunded, uint64_t *achieved)
{
	uint32_t target, now;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (target_unfunded > c->h.pool_size)
		return vmc_fail(EINVAL, "balloon target %llu MiB is larger than the pool (%llu MiB)",
				(unsigned long long)(target_unfunded >> 20),
				(unsigned long long)(c->h.pool_size >> 20));
	/* whole granules, rounded up (vmc.h) */
	target = (uint32_t)((target_unfunded + GSIZE(c) - 1) >> GSHIFT(c));
	if ((err = balloon_lock(c)))
		return err;
	/* what the operator asked stays asked: on-demand funding keeps to it */
	__atomic_store_n(&c->m->balloon_target, target, __ATOMIC_RELAXED);
	now = __atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED);
	if (target > now)
		err = pool_unfund(c, target - now);
	else if (target < now)
		err = pool_fund(c, now - target, 0);
	balloon_unlock(c);
	if (achieved)
		*achieved = (uint64_t)__atomic_load_n(&c->m->nunfunded, __ATOMIC_RELAXED)
			    << GSHIFT(c);
	return err;
}
