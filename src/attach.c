/*
 * attach.c - vmc_attach and vmc_detach: a worker takes a VM, runs it in its
 * window and gives it back, with memory isolation as SAP's VM Container
 * does it.
 *
 *  strict (memory_isolation = 1)  detach revokes access with one mprotect;
 *      re-attaching the same unchanged VM mprotects the mapping back,
 *      anything else remaps the difference.
 *  lazy (memory_isolation = 0)    detach makes no system call: the window
 *      stays mapped until the next attach replaces it.  Re-attaching the
 *      same unchanged VM (same incarnation and page-map generation) is an
 *      "affinity hit": a compare-and-swap and no system call at all.
 *
 * Threads.  A process has one window, so one VM attached at a time: the
 * thread that attaches it owns the window (a compare-and-swap on the
 * window's owner word, the only cost on the fast path) until it detaches.
 * Other threads may create, destroy, clone and reclaim VMs meanwhile:
 * those never wait for the window, and clear a VM off it only when no
 * attach holds it (window.h).
 *
 * Each attach and detach is timed into a log2 histogram in the worker's
 * slot, with the system calls it made (SAP STAD-style statistics).
 */
#include "container.h"
#include "heap.h"
#include "pool.h"
#include "quarantine.h"
#include "remap.h"
#include "region.h"
#include "vm.h"
#include "window.h"
#include "os/os.h"

#include <errno.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);   /* vDSO: no system call */
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void add(uint64_t *p, uint64_t n)
{
	__atomic_add_fetch(p, n, __ATOMIC_RELAXED);
}

static void record(uint64_t *hist, uint64_t t0, uint64_t calls0, vmc_attach_stats_t *st)
{
	uint64_t ns = now_ns() - t0;
	int b = ns ? 63 - __builtin_clzll(ns) : 0;
	add(&hist[b < VMC_HIST_BUCKETS ? b : VMC_HIST_BUCKETS - 1], 1);
	add(&st->syscalls, vmc_os_calls_total() - calls0);
}

/* After the window changed: publish it for the quarantine, and let
 * granules that nobody can reach any more out of quarantine. */
static int window_changed(struct vmc *c, uint32_t vm)
{
	int err;

	quarantine_publish(c, vm);
	if (!__atomic_load_n(&c->m->nquarantined, __ATOMIC_RELAXED))
		return 0;
	if ((err = pool_lock(c)))
		return err;
	quarantine_reap(c);
	pool_unlock(c);
	return 0;
}

int vmc_attach(vmc_t *c, uint32_t id, void **base)
{
	struct vmc_window *w;
	vmc_attach_stats_t *st;
	struct vmc_vm *vm;
	uint64_t t0, calls0;
	int err;

	if ((err = vmc_enter(c)))
		return err;
	w = c->win;
	st = &c->slots[c->slot].st;
	t0 = now_ns();
	calls0 = vmc_os_calls_total();
	for (int woke = 0;; woke++) {
		if ((err = window_claim(c, id)))
			return err;
		if (!(err = vm_claim(c, id, VM_IDLE)))
			break;
		window_unclaim(c);
		/* vmc/wake_on_attach: wake it, then attach (once: another
		 * process may hibernate it again in between) */
		if (err != VMC_EHIBERNATED || !c->h.wake_on_attach || woke)
			return err;
		if ((err = vmc_vm_wake(c, id)) && err != EINVAL)   /* EINVAL: woken by another */
			return err;
	}
	vm = &c->vms[id];
	__atomic_store_n(&w->attached, id, __ATOMIC_RELAXED);
	__atomic_store_n(&c->slots[c->slot].attached, id, __ATOMIC_RELAXED);
	add(&vm->attaches, 1);
	add(&st->attaches, 1);
	if ((err = code_protect(c, 1)))
		goto undo;
	if (w->vm == id && w->open && w->vm_inc == vm->incarnation &&
	    w->vm_gen == __atomic_load_n(&vm->gen, __ATOMIC_ACQUIRE)) {
		add(&st->affinity_hits, 1);   /* lazy re-attach: nothing to do */
	} else {
		/* the page map is ours while we hold the VM: no lock needed */
		if (!(err = window_sync(c, id, WINDOW_ALL, 0)))
			err = window_changed(c, id);
		if (err) {
			window_changed(c, VMC_NIL);   /* a failed sync left the window empty */
			goto undo;
		}
		add(&st->remaps, 1);
	}
	record(st->attach_hist, t0, calls0, st);
	if (base)
		*base = c->arena;
	return 0;
undo:
	__atomic_store_n(&w->attached, VMC_NIL, __ATOMIC_RELAXED);
	__atomic_store_n(&c->slots[c->slot].attached, VMC_NIL, __ATOMIC_RELAXED);
	vm_unclaim(c, id, VM_IDLE);
	window_unclaim(c);
	return err;
}

int vmc_detach(vmc_t *c, uint32_t id)
{
	vmc_attach_stats_t *st;
	uint64_t t0, calls0;
	int err = 0;

	if ((err = vmc_enter(c)))
		return err;
	if (id == VMC_NIL || __atomic_load_n(&c->win->owner, __ATOMIC_ACQUIRE) != id)
		return vmc_fail(VMC_ENOTATTACHED, "VM %u is not attached in this worker", id);
	st = &c->slots[c->slot].st;
	t0 = now_ns();
	calls0 = vmc_os_calls_total();
	heap_on_detach(c);   /* the heap's decay check: free memory that aged goes back */
	/* deferred releases end with the attachment (nothing if none) */
	err = remap_flush(c);
	if (c->h.memory_isolation) {
		int e2 = window_revoke(c);   /* on failure the window was cleared instead */
		err = err ? err : e2;
		quarantine_publish(c, VMC_NIL);
	}
	int e3 = code_protect(c, 0);
	err = err ? err : e3;
	__atomic_store_n(&c->win->attached, VMC_NIL, __ATOMIC_RELAXED);
	__atomic_store_n(&c->slots[c->slot].attached, VMC_NIL, __ATOMIC_RELAXED);
	vm_unclaim(c, id, VM_IDLE);
	window_unclaim(c);
	add(&st->detaches, 1);
	record(st->detach_hist, t0, calls0, st);
	return err;
}

uint32_t vmc_attached(vmc_t *c)
{
	return vmc_enter(c) ? VMC_NO_VM : __atomic_load_n(&c->win->attached, __ATOMIC_RELAXED);
}
