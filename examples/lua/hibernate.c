/*
 * hibernate.c - idle tenants go to image files (--hibernate-after).
 *
 * A tenant that has had no request for the configured time, and has
 * nothing queued or running, gets a VL_OP_HIBERNATE operation in its
 * queue.  A worker runs it (vl_vm_hibernate): a full collection of the
 * tenant's Lua state, the heap's free granules back to the pool, then
 * vmc_vm_hibernate writes what is left to an image file and frees the
 * VM's granules.  The container is made with vmc/wake_on_attach, so the
 * tenant's next request wakes it in whichever worker attaches it: the
 * dispatcher only counts the wakes, it does not do them.
 *
 * Hibernation runs in the background of the requests: at most HIB_MAX
 * operations are queued or running at a time (a busy worker serves
 * requests too), and an operation that finds requests waiting behind it
 * is skipped, so a tenant that becomes busy again never waits for its own
 * image to be written and read back.  The scan for idle tenants resumes
 * where it stopped, so every tenant gets its turn.
 */
#include "host.h"

#include <stdint.h>
#include <string.h>

#define HIB_MAX     2      /* hibernations queued or running at once */
#define HIB_SCAN_MS 250    /* the longest wait between two scans */

static uint64_t scan_gap(const struct vl_host *h)
{
	uint64_t after = (uint64_t)h->o.hibernate_after_ms * 1000000;
	uint64_t most = (uint64_t)HIB_SCAN_MS * 1000000;
	return after / 4 && after / 4 < most ? after / 4 : most;
}

int host_hibernate_queue(struct vl_host *h, int ti, vl_done_fn *done, void *arg)
{
	struct req *r = host_new_req(h, ti, VL_OP_HIBERNATE, "", 0, done, arg);
	if (!r)
		return -1;
	h->t[ti].hib_op++;
	h->hib_ops++;
	host_enqueue(h, r);
	host_dispatch(h);
	return 0;
}

static int idle(const struct tenant *t, uint64_t now, uint64_t after)
{
	return t->state == VL_T_READY && t->vm != VMC_NO_VM && !t->hibernated && !t->hib_op &&
	       !t->qh && !t->inflight && !t->job && now - t->idle_since >= after;
}

void host_hibernate_tick(struct vl_host *h, uint64_t now, int *timeout_ms)
{
	uint64_t after = (uint64_t)h->o.hibernate_after_ms * 1000000;
	if (!after || h->o.mode != VL_VMC || h->stopping || !h->nt)
		return;
	if (now >= h->hib_next) {
		for (int k = 0; k < h->nt && h->hib_ops < HIB_MAX; k++) {
			int ti = h->hib_cursor;
			h->hib_cursor = (ti + 1) % h->nt;
			if (idle(&h->t[ti], now, after) &&
			    host_hibernate_queue(h, ti, NULL, NULL))
				break;
		}
		/* full: the next operation to end scans again (host_hibernate_done) */
		h->hib_next = h->hib_ops < HIB_MAX ? now + scan_gap(h) : UINT64_MAX;
	}
	if (h->hib_next != UINT64_MAX) {
		int left = (int)((h->hib_next - now) / 1000000) + 1;
		if (*timeout_ms < 0 || left < *timeout_ms)
			*timeout_ms = left;
	}
}

int host_hibernate_admit(struct vl_host *h, int ti)
{
	struct tenant *t = &h->t[ti];
	struct req *r = t->qh;
	const char *why = NULL;

	if (t->hibernated)
		why = "is hibernated already";
	else if (t->state != VL_T_READY || t->vm == VMC_NO_VM)
		why = "has no state to hibernate";
	else if (r->next)
		why = "is busy: not hibernated";
	if (!why)
		return 1;
	vl_reply_set(&h->reply, t->state != VL_T_READY, "tenant '%s' %s", t->name, why);
	host_finish(h, host_dequeue(h, t), &h->reply, -1);
	return 0;
}

void host_hibernate_done(struct vl_host *h, const struct req *r, const struct vl_reply *rep)
{
	struct tenant *t = &h->t[r->tenant];
	t->hib_op--;
	h->hib_ops--;
	h->hib_next = 0;                  /* room for the next one: scan at once */
	if (rep->err || strcmp(rep->text, "hibernated"))
		return;
	t->hibernations++;
	/* requests that were sent behind it to the same worker wake it again */
	t->hibernated = 1;
	if (t->inflight)
		host_waking(t);
}

void host_waking(struct tenant *t)
{
	if (t->hibernated) {
		t->hibernated = 0;
		t->wakes++;
	}
}
