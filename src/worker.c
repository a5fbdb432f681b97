/*
 * worker.c - worker slots.  Each process that joins a container holds one
 * slot, recorded with its pid and its start time from /proc, so that a
 * recycled pid is never mistaken for the worker that died (the start time
 * differs).  A dead worker's slot is reclaimed lazily by whoever notices
 * first: on join, when the free list runs dry, or by vmc_recover().
 * Reclaiming takes the dead slot's lock (repairing it if the worker died
 * holding it) and returns its cached granules to the free list.
 */
#include "worker.h"
#include "pool.h"
#include "quarantine.h"
#include "vm.h"
#include "region.h"
#include "image.h"
#include "os/os.h"

#include <errno.h>
#include <string.h>

int worker_alive(struct vmc *c, uint32_t s)
{
	struct vmc_slot *sl = &c->slots[s];
	int32_t pid = __atomic_load_n(&sl->pid, __ATOMIC_ACQUIRE);

	uint64_t start;

	if (pid <= 0)
		return 0;
	/* only a definite answer makes a worker dead: a failed read of /proc
	 * must not get a live worker's slot reclaimed under it */
	switch (vmc_os_proc_start(pid, &start)) {
	case 0: return start == sl->start_time;
	case ESRCH: return 0;
	default: return 1;
	}
}

int worker_join(struct vmc *c)
{
	pid_t pid = os_getpid();
	uint64_t start;
	int err, retried = 0;

	if ((err = vmc_os_proc_start(pid, &start)))
		return vmc_fail(err, "cannot read this process's start time from /proc/%d/stat "
				"(%s): vmc needs /proc to tell live workers from dead ones",
				(int)pid, vmc_strerror(err));

again:
	if ((err = pool_lock(c)))
		return err;
	for (uint32_t s = 0; s < c->h.max_workers; s++) {
		struct vmc_slot *sl = &c->slots[s];
		if (sl->pid)
			continue;
		sl->start_time = start;
		sl->cache_head = sl->defer_head = sl->attached = sl->window_vm = VMC_NIL;
		sl->cache_count = sl->defer_count = 0;
		sl->window_epoch = 0;
		memset(&sl->st, 0, sizeof sl->st);
		__atomic_store_n(&sl->pid, pid, __ATOMIC_RELEASE);
		pool_unlock(c);
		c->slot = s;
		return 0;
	}
	pool_unlock(c);
	if (!retried++) {
		vmc_recover_report_t r;
		if ((err = workers_recover(c, &r, 0)))
			return err;
		if (r.workers_reclaimed)
			goto again;
	}
	return vmc_fail(EAGAIN, "all %u worker slots of container %s are taken by live "
			"processes: raise vmc/max_workers when creating it",
			c->h.max_workers, c->h.name);
}

/* A worker that dies with a VM attached (or half-way through attaching or
 * destroying one) leaves it orphaned, memory intact (invariant 6); one
 * that dies hibernating or waking it once its image is the truth
 * (IMG_VALID) leaves it hibernated (image.c). */
static void orphan_vms(struct vmc *c, uint32_t s)
{
	for (uint32_t v = 0; v < c->h.max_vms; v++) {
		uint64_t own = __atomic_load_n(&c->vms[v].own, __ATOMIC_ACQUIRE);
		if (VM_STATE(own) != VM_ATTACHED || VM_SLOT(own) != s)
			continue;
		if (__atomic_load_n(&c->vms[v].image, __ATOMIC_ACQUIRE) == IMG_VALID) {
			image_recover(c, v);   /* died hibernating or waking it: its image is it */
			continue;
		}
		vm_repair(c, v);
		__atomic_store_n(&c->vms[v].own, VM_OWN(VM_ORPHANED, s), __ATOMIC_RELEASE);
	}
}

/* A slot's deferred granules: its window is gone, but other workers may
 * still map their VM lazily, so they go through quarantine. Slot lock. */
static int drain_deferred(struct vmc *c, uint32_t s)
{
	uint32_t g[64], n;
	int err = pool_lock(c);

	if (err)
		return err;
	while ((n = pool_undefer(c, s, g, 64)) > 0)
		for (uint32_t k = 0; k < n; k++)
			quarantine_add(c, g[k], c->gran[g[k]].owner);
	pool_unlock(c);
	return 0;
}

/* Free slot s if it still belongs to (pid, start): its cache goes to the
 * free list, then the slot itself.  Two recoverers of one dead slot, or a
 * recoverer racing a process that took the slot afresh, are told apart by
 * re-checking the identity under the locks.  *returned = granules freed. */
static int release_slot(struct vmc *c, uint32_t s, int32_t pid, uint64_t start, int try,
			uint32_t *returned)
{
	struct vmc_slot *sl = &c->slots[s];
	int err;

	*returned = 0;
	if ((err = try ? slot_trylock(c, s) : slot_lock(c, s)))
		return err == EBUSY ? ESRCH : err;   /* busy: someone else recovers it */
	if (sl->pid != pid || sl->start_time != start) {
		slot_unlock(c, s);
		return ESRCH;
	}
	if (s != c->slot) {   /* a dead worker: whatever it was doing, file its granules */
		struct slot_repair r = { c, s };
		slot_repair(&r);
	}
	*returned = sl->cache_count + sl->defer_count;
	err = pool_drain(c, s, 0);
	if (!err && sl->defer_count)
		err = drain_deferred(c, s);
	slot_unlock(c, s);
	if (err)
		return err;
	if ((err = pool_lock(c)))
		return err;
	if (sl->pid == pid && sl->start_time == start) {
		orphan_vms(c, s);
		region_forget_slot(c, s);
		stats_retire(c, s);
		__atomic_store_n(&sl->window_vm, VMC_NIL, __ATOMIC_SEQ_CST);
		__atomic_store_n(&sl->pid, 0, __ATOMIC_RELEASE);
		quarantine_reap(c);   /* its window no longer holds anything back */
	}
	pool_unlock(c);
	return 0;
}

int worker_leave(struct vmc *c)
{
	struct vmc_slot *sl;
	uint32_t returned;
	int err;

	if (c->slot == VMC_NIL)
		return 0;
	sl = &c->slots[c->slot];
	err = release_slot(c, c->slot, sl->pid, sl->start_time, 0, &returned);
	c->slot = VMC_NIL;
	return err;
}

int workers_recover(struct vmc *c, vmc_recover_report_t *out, int try)
{
	vmc_recover_report_t r = {0, 0};
	int err = 0;

	for (uint32_t s = 0; s < c->h.max_workers; s++) {
		struct vmc_slot *sl = &c->slots[s];
		int32_t pid = __atomic_load_n(&sl->pid, __ATOMIC_ACQUIRE);
		uint64_t start = sl->start_time;
		uint32_t returned;

		if (s == c->slot || !pid || worker_alive(c, s))
			continue;
		err = release_slot(c, s, pid, start, try, &returned);
		if (err == ESRCH) {
			err = 0;
			continue;
		}
		if (err)
			break;
		r.workers_reclaimed++;
		r.granules_returned += returned;
		__atomic_add_fetch(&c->m->cnt.workers_recovered, 1, __ATOMIC_RELAXED);
	}
	if (out)
		*out = r;
	return err;
}
