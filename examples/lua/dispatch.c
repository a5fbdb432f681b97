/*
 * dispatch.c - routing requests to workers.
 *
 * Every tenant has a queue of what waits for it: requests, and maintenance
 * operations (maint.c) in their places among them.  Tenants with something
 * waiting are in a run queue; a dispatch pass visits each once, round robin.
 *
 * Rules that keep "a tenant is attached in one worker at a time" without a
 * single EBUSY, and a tenant's requests in order:
 *   - all requests of a tenant that are in flight go to the same worker
 *     (its owner), which runs them in order;
 *   - a tenant with none in flight goes to the least busy worker; with
 *     affinity on (the default), to the worker that ran it last instead if
 *     that one is no busier: in lazy isolation that re-attach makes no
 *     system call (the worker still has the VM mapped);
 *   - amortised switches: the requests waiting at the head of a tenant's
 *     queue go to the worker together, up to --batch of them, in one
 *     message, and the worker serves them in one attachment;
 *   - an operation waits until its tenant has nothing in flight, then runs
 *     as a job while the requests behind it wait; a hibernation
 *     (hibernate.c) goes to a worker instead, alone in its message.
 * A worker has up to VL_DEPTH messages queued.  With no workers (or in the
 * oneproc baseline) the dispatcher runs the requests itself, the same way.
 */
#include "host.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* ------------------------------------------------------------- queues */

static void runq_add(struct vl_host *h, int ti)
{
	struct tenant *t = &h->t[ti];
	if (t->inrunq)
		return;
	t->inrunq = 1;
	t->rnext = -1;
	t->rprev = h->rq_tail;
	if (h->rq_tail >= 0)
		h->t[h->rq_tail].rnext = ti;
	else
		h->rq_head = ti;
	h->rq_tail = ti;
	h->rq_n++;
}

static void runq_del(struct vl_host *h, int ti)
{
	struct tenant *t = &h->t[ti];
	if (!t->inrunq)
		return;
	if (t->rprev >= 0)
		h->t[t->rprev].rnext = t->rnext;
	else
		h->rq_head = t->rnext;
	if (t->rnext >= 0)
		h->t[t->rnext].rprev = t->rprev;
	else
		h->rq_tail = t->rprev;
	t->inrunq = 0;
	h->rq_n--;
}

struct req *host_new_req(struct vl_host *h, int ti, int op, const char *body, size_t len,
			 vl_done_fn *done, void *arg)
{
	struct req *r = malloc(sizeof *r + len);
	if (!r)
		return NULL;
	*r = (struct req){ .id = ++h->next_id, .tenant = ti, .pin = -1, .op = op,
			   .done = done, .arg = arg, .len = len };
	memcpy(r->body, body, len);
	return r;
}

void host_enqueue(struct vl_host *h, struct req *r)
{
	struct tenant *t = &h->t[r->tenant];
	r->next = NULL;
	if (t->qt)
		t->qt->next = r;
	else
		t->qh = r;
	t->qt = r;
	h->queued++;
	runq_add(h, r->tenant);
}

void host_push_front(struct vl_host *h, struct req *r)
{
	struct tenant *t = &h->t[r->tenant];
	r->next = t->qh;
	t->qh = r;
	if (!t->qt)
		t->qt = r;
	h->queued++;
	runq_add(h, r->tenant);
}

struct req *host_dequeue(struct vl_host *h, struct tenant *t)
{
	struct req *r = t->qh;
	t->qh = r->next;
	if (!t->qh)
		t->qt = NULL;
	h->queued--;
	return r;
}

void host_finish(struct vl_host *h, struct req *r, const struct vl_reply *rep, int worker)
{
	struct tenant *t = &h->t[r->tenant];
	if (r->op == VL_OP_HIBERNATE)
		host_hibernate_done(h, r, rep);
	if (r->op == VL_OP_REQUEST) {
		t->idle_since = vl_now_ns();
		t->served++;
		t->errors += rep->err != 0;
		t->budget_kills += rep->kind == VL_R_BUDGET;
		t->nomem += rep->kind == VL_R_NOMEM;
	}
	if (r->done)
		r->done(r->arg, rep, worker);
	free(r);
}

void host_fail(struct vl_host *h, struct req *r, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	vl_reply_set(&h->reply, 1, "%s", buf);
	host_finish(h, r, &h->reply, -1);
}

/* ------------------------------------------------------------- routing */

static int usable(const struct worker *w)
{
	return w->alive && !w->full && w->msgs < VL_DEPTH;
}

static int pick(struct vl_host *h, const struct tenant *t, int pin)
{
	if (t->owner >= 0)
		return (pin < 0 || pin == t->owner) && usable(&h->w[t->owner]) ? t->owner : -1;
	if (t->proc >= 0)
		return usable(&h->w[t->proc]) ? t->proc : -1;
	if (pin >= 0)
		return pin < h->nw && usable(&h->w[pin]) ? pin : -1;
	int best = -1, start = h->o.affinity ? 0 : (int)(h->rr++ % (unsigned)h->nw);
	for (int k = 0; k < h->nw; k++) {
		int i = (start + k) % h->nw;
		if (usable(&h->w[i]) && (best < 0 || h->w[i].inflight < h->w[best].inflight))
			best = i;
	}
	if (h->o.affinity && best >= 0 && t->last >= 0 && usable(&h->w[t->last]) &&
	    h->w[t->last].inflight <= h->w[best].inflight)
		best = t->last;
	return best;
}

/* The requests at the head of t's queue that go together: same pin, at
 * most --batch of them and VL_LINE_MAX bytes of bodies (the first one may
 * be that long by itself). */
static int batch_size(struct vl_host *h, const struct tenant *t)
{
	size_t bytes = 0;
	int n = 0;
	if (t->qh->op == VL_OP_HIBERNATE)
		return 1;
	for (const struct req *r = t->qh; r && r->op == VL_OP_REQUEST && n < h->o.batch &&
	     r->pin == t->qh->pin && (!n || bytes + r->len <= VL_LINE_MAX); r = r->next) {
		bytes += r->len;
		n++;
	}
	return n;
}

/* Send the batch at the head of tenant ti's queue to worker wi. */
static int send_batch(struct vl_host *h, int wi, int ti)
{
	struct worker *w = &h->w[wi];
	struct tenant *t = &h->t[ti];
	int n = batch_size(h, t);
	int op = t->qh->op;
	if (op == VL_OP_REQUEST)
		host_waking(t);
	struct vl_msg m = { .vm = t->vm, .tlen = (uint16_t)strlen(t->name), .n = (uint8_t)n,
			    .op = (uint8_t)op, .budget = t->budget };
	struct vl_sub sub[VL_BATCH_MAX];
	struct iovec iov[2 + 2 * VL_BATCH_MAX] = { { &m, sizeof m }, { t->name, m.tlen } };
	struct req *r = t->qh;
	for (int i = 0; i < n; i++, r = r->next) {
		sub[i] = (struct vl_sub){ .id = r->id, .len = (uint32_t)r->len };
		iov[2 + 2 * i] = (struct iovec){ &sub[i], sizeof sub[i] };
		iov[3 + 2 * i] = (struct iovec){ r->body, r->len };
	}
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)(2 + 2 * n) };
	if (sendmsg(w->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		w->full = 1;    /* EAGAIN: until it answers; EPIPE: its hang-up comes next */
		return -1;
	}
	if (w->inflight == 0)
		w->busy_since = vl_now_ns();
	for (int i = 0; i < n; i++) {
		r = host_dequeue(h, t);
		r->next = NULL;
		r->batch_end = i == n - 1;
		if (w->tail)
			w->tail->next = r;
		else
			w->head = r;
		w->tail = r;
	}
	w->inflight += n;
	w->msgs++;
	t->inflight += n;
	t->owner = wi;
	return 0;
}

struct own_run { struct vl_host *h; struct req **r; };

static void own_served(void *arg, int i, const struct vl_reply *rep, uint32_t ns, uint32_t sys)
{
	struct own_run *x = arg;
	struct vl_ans a = { .attach_ns = ns, .attach_sys = sys,
			    .syscalls = vmc_syscalls(), .minflt = vl_minflt() };
	host_account(&x->h->own, &a, 1);
	host_finish(x->h, x->r[i], rep, -1);
}

/* No workers: run the batch at the head of ti's queue here. */
static void run_here(struct vl_host *h, int ti)
{
	struct tenant *t = &h->t[ti];
	struct req *r[VL_BATCH_MAX];
	const char *body[VL_BATCH_MAX];
	size_t len[VL_BATCH_MAX];
	int n = batch_size(h, t);
	struct own_run x = { h, r };

	for (int i = 0; i < n; i++) {
		r[i] = host_dequeue(h, t);
		body[i] = r[i]->body;
		len[i] = r[i]->len;
	}
	vl_log_prefix("dispatcher %s", t->name);
	if (r[0]->op == VL_OP_HIBERNATE) {
		vl_vm_hibernate(h->c, t->vm, t->budget, &h->reply);
		struct vl_ans a = { .syscalls = vmc_syscalls(), .minflt = vl_minflt() };
		host_account(&h->own, &a, 0);
		host_finish(h, r[0], &h->reply, -1);
		return;
	}
	host_waking(t);
	if (t->L)
		vl_plain_serve(t->L, t->budget, n, body, len, &h->reply, own_served, &x);
	else
		vl_vm_serve(h->c, t->vm, t->budget, n, body, len, &h->reply, own_served, &x);
}

static const char *unavailable(const struct tenant *t)
{
	return t->state == VL_T_BROKEN ? "failed to load: " : "is orphaned: ";
}

/* Place what can be placed of tenant ti's queue. */
static void serve_tenant(struct vl_host *h, int ti)
{
	struct tenant *t = &h->t[ti];
	while (t->qh) {
		struct req *r = t->qh;
		if (r->op == VL_OP_HIBERNATE && (t->inflight || t->job))
			return;
		if (r->op == VL_OP_HIBERNATE && !host_hibernate_admit(h, ti))
			continue;
		if (r->op != VL_OP_REQUEST && r->op != VL_OP_HIBERNATE) {
			if (t->inflight || t->job || maint_start(h, ti))
				return;
			continue;
		}
		if (t->job)
			return;
		if (t->state == VL_T_BROKEN || t->state == VL_T_ORPHANED) {
			host_fail(h, host_dequeue(h, t), "tenant '%s' %s%s", t->name, unavailable(t),
				  t->msg ? t->msg : "");
			continue;
		}
		if (h->o.mode == VL_ONEPROC || (h->o.mode == VL_VMC && h->nw == 0)) {
			run_here(h, ti);
			continue;
		}
		int wi = pick(h, t, r->pin);
		if (wi < 0 || send_batch(h, wi, ti))
			return;
		if (t->qh) {           /* the rest waits for the next pass, behind the others */
			runq_del(h, ti);
			runq_add(h, ti);
		}
		return;
	}
	runq_del(h, ti);
}

void host_dispatch(struct vl_host *h)
{
	if (h->in_dispatch) {
		h->again = 1;
		return;
	}
	h->in_dispatch = 1;
	do {
		h->again = 0;
		int ti = h->rq_head;
		for (int k = h->rq_n; k > 0 && ti >= 0; k--) {
			int next = h->t[ti].rnext;
			serve_tenant(h, ti);
			ti = next;
		}
	} while (h->again);
	h->in_dispatch = 0;
}

void vl_host_submit(struct vl_host *h, const char *tenant, size_t tlen, const char *body,
		    size_t blen, int pin, vl_done_fn *done, void *arg)
{
	struct vl_reply *rep = &h->reply;
	int ti = tenant_lookup(h, tenant, tlen);
	struct req *r;

	if (ti < 0)
		vl_reply_set(rep, 1, "unknown tenant '%.*s'", (int)(tlen > 64 ? 64 : tlen), tenant);
	else if (blen > VL_LINE_MAX)
		vl_reply_set(rep, 1, "request longer than %d bytes", VL_LINE_MAX);
	else if (pin >= h->nw || (pin >= 0 && h->o.mode == VL_PROCS))
		vl_reply_set(rep, 1, "no worker %d", pin);
	else if (!(r = host_new_req(h, ti, VL_OP_REQUEST, body, blen, done, arg)))
		vl_reply_set(rep, 1, "dispatcher out of memory");
	else {
		r->pin = pin;
		host_enqueue(h, r);
		host_dispatch(h);
		return;
	}
	done(arg, rep, -1);
}

void host_queue_op(struct vl_host *h, int ti, int op, vl_done_fn *done, void *arg)
{
	struct req *r = host_new_req(h, ti, op, "", 0, done, arg);
	if (!r) {
		vl_reply_set(&h->reply, 1, "dispatcher out of memory");
		if (done)
			done(arg, &h->reply, -1);
		return;
	}
	host_enqueue(h, r);
	host_dispatch(h);
}

/* --------------------------------------------------------------- answers */

int host_drain(struct vl_host *h, int wi)
{
	static char buf[VL_ANS_MAX];
	struct vl_ans a;
	for (;;) {
		struct worker *w = &h->w[wi];
		ssize_t n = recv(w->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		struct req *r = w->head;
		if (n >= (ssize_t)sizeof a)
			memcpy(&a, buf, sizeof a);
		if (n < (ssize_t)sizeof a || a.len != (size_t)n - sizeof a || !r || r->id != a.id ||
		    a.kind < VL_R_OK || a.kind > VL_R_HOST) {
			if (n > 0) {
				host_log(h, "worker %d: bad answer; stopping it", wi);
				kill(w->pid, SIGKILL);
			}
			return -1;
		}
		w->head = r->next;
		if (!w->head)
			w->tail = NULL;
		w->full = 0;
		w->msgs -= r->batch_end;
		w->busy_since = --w->inflight ? vl_now_ns() : 0;
		host_account(w, &a, r->op == VL_OP_REQUEST);
		struct tenant *t = &h->t[r->tenant];
		if (--t->inflight == 0)
			t->owner = -1;
		t->last = wi;
		if (wi < VL_MAX_WORKERS && r->op == VL_OP_REQUEST)
			t->by_worker[wi]++;
		struct vl_reply *rep = &h->reply;
		rep->err = a.kind != VL_R_OK;
		rep->kind = a.kind;
		rep->len = a.len < sizeof rep->text ? a.len : sizeof rep->text - 1;
		memcpy(rep->text, buf + sizeof a, rep->len);
		rep->text[rep->len] = 0;
		host_finish(h, r, rep, wi);
	}
}

struct sync { int done, worker; struct vl_reply *r; };

static void sync_done(void *arg, const struct vl_reply *r, int worker)
{
	struct sync *s = arg;
	if (s->r != r)
		memcpy(s->r, r, sizeof *r);
	s->done = 1;
	s->worker = worker;
}

int vl_host_call(struct vl_host *h, const char *tenant, const char *body, int pin,
		 struct vl_reply *r)
{
	struct sync s = { 0, -1, r };
	vl_host_submit(h, tenant, strlen(tenant), body, strlen(body), pin, sync_done, &s);
	while (!s.done) {
		int max = h->nw + VL_JOBS, timeout = -1, k;
		struct pollfd *pfd = malloc((size_t)max * sizeof *pfd);
		if (!pfd)
			break;
		k = vl_host_pollfds(h, pfd, max, &timeout);
		if (poll(pfd, (nfds_t)k, timeout) >= 0 || errno == EINTR)
			vl_host_events(h, pfd, k);
		free(pfd);
	}
	return s.worker;
}
