/*
 * host.c - the dispatcher: it owns the container, forks the workers and
 * routes every request to one of them.
 *
 * Routing keeps the rule "a tenant is attached in one worker at a time"
 * without a single EBUSY: all requests of a tenant that are in flight go
 * to the same worker (its owner), which runs them in order; when none is
 * in flight the tenant goes to the least loaded worker, preferring the one
 * that served it last (affinity: in lazy isolation that re-attach costs no
 * system call).  A worker has up to VL_DEPTH requests queued.
 *
 * A worker that dies (kill -9, a crash, the watchdog) is noticed as a
 * hang-up on its socket.  The request it was running fails with an error
 * reply; if its tenant's VM was attached it is now orphaned (vmc_recover
 * finds the dead worker) and further requests to it fail until an operator
 * reclaims it.  Requests queued behind it had not started and go to
 * another worker.  The worker is forked again.
 */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

void host_log(struct vl_host *h, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	(void)h;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmc-lua: %s\n", buf);
}

void vl_host_opts_init(struct vl_host_opts *o)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	memset(o, 0, sizeof *o);
	o->mode = VL_VMC;
	o->workers = n < 1 ? 1 : n > VL_MAX_WORKERS ? VL_MAX_WORKERS : (int)n;
	o->isolation = 1;
	o->clone = 1;
	o->pool_size = 512 * MiB;
	o->limit = 8 * MiB;
	o->timeout_ms = 10000;
}

struct vl_host *vl_host_new(const struct vl_host_opts *o, char *err, size_t n)
{
	struct vl_host *h = calloc(1, sizeof *h);
	vmc_config_t cfg;
	int e;

	if (!h) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	h->o = *o;
	h->pid = getpid();
	if (h->o.limit < VMC_GRANULE_SIZE)
		h->o.limit = VMC_GRANULE_SIZE;
	if (o->mode != VL_VMC)
		return h;
	if ((e = vmc_config_init(&cfg))) {
		snprintf(err, n, "profile: %s", vmc_errmsg());
		free(h);
		return NULL;
	}
	cfg.pool_size = o->pool_size;
	cfg.fund_size = o->pool_size;
	cfg.window_size = 64 * MiB;
	while (cfg.window_size < h->o.limit)
		cfg.window_size *= 2;
	cfg.region_space = 0;
	cfg.max_vms = 1024;
	cfg.max_workers = VL_MAX_WORKERS + 16;
	/* Tenants commit a granule now and then.  A granule cached by one live
	 * worker cannot be had by another (only a dead worker's cache goes back
	 * when the free list runs dry), so keep the caches small. */
	cfg.worker_cache = 4;
	cfg.memory_isolation = o->isolation;
	if (o->quiet)
		cfg.verbose = 0;
	if (o->page_kind && vmc_config_set(&cfg, "page_kind", o->page_kind)) {
		snprintf(err, n, "page kind: %s", vmc_errmsg());
		free(h);
		return NULL;
	}
	if (!o->private_c)
		snprintf(h->name, sizeof h->name, "%s", o->name ? o->name : "");
	if (!o->private_c && !o->name)
		snprintf(h->name, sizeof h->name, "vmc-lua-%d", (int)h->pid);
	e = vmc_create(o->private_c ? NULL : h->name, &cfg, &h->c);
	/* page_kind auto probes the free hugepages, then funds: a container
	 * created meanwhile can take them (ENOMEM).  Probing again sees that. */
	for (int retry = 0; e == ENOMEM && !o->page_kind && cfg.page_kind == VMC_PAGE_AUTO &&
			    retry < 2; retry++)
		e = vmc_create(o->private_c ? NULL : h->name, &cfg, &h->c);
	if (e) {
		snprintf(err, n, "creating container %s: %s", o->private_c ? "(private)" : h->name,
			 *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(e));
		free(h);
		return NULL;
	}
	vmc_fault_install(h->c, 0);
	return h;
}

int host_new_worker(struct vl_host *h)
{
	if (h->nw == h->capw) {
		int cap = h->capw ? 2 * h->capw : 8;
		struct worker *w = realloc(h->w, (size_t)cap * sizeof *w);
		if (!w)
			return -1;
		h->w = w;
		h->capw = cap;
	}
	memset(&h->w[h->nw], 0, sizeof h->w[0]);
	h->w[h->nw].fd = -1;
	h->w[h->nw].tenant = -1;
	return h->nw++;
}

int host_spawn(struct vl_host *h, int wi, int tenant, char *err, size_t n)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) {
		snprintf(err, n, "socketpair: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, n, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		for (int i = 0; i < h->nw; i++)
			if (h->w[i].fd >= 0)
				close(h->w[i].fd);
		if (h->atfork)
			h->atfork(h->atfork_arg);
		vl_worker_main(h, wi, sv[1], tenant);
	}
	close(sv[1]);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	struct worker *w = &h->w[wi];
	w->pid = pid;
	w->fd = sv[0];
	w->alive = 1;
	w->full = w->killed = 0;
	w->tenant = tenant;
	return 0;
}

int vl_host_start(struct vl_host *h, char *err, size_t n)
{
	if (h->o.mode != VL_VMC || h->started)
		return 0;
	if (h->o.workers > VL_MAX_WORKERS) {
		snprintf(err, n, "at most %d workers", VL_MAX_WORKERS);
		return -1;
	}
	for (int i = 0; i < h->o.workers; i++) {
		int wi = host_new_worker(h);
		if (wi < 0 || host_spawn(h, wi, -1, err, n))
			return -1;
	}
	h->started = 1;
	return 0;
}

static void free_reqs(struct req *r)
{
	while (r) {
		struct req *next = r->next;
		free(r);
		r = next;
	}
}

void vl_host_free(struct vl_host *h)
{
	if (!h)
		return;
	h->stopping = 1;
	for (int i = 0; i < h->nw; i++) {
		struct worker *w = &h->w[i];
		if (!w->alive)
			continue;
		if (w->inflight)             /* it may be running a request forever */
			kill(w->pid, SIGKILL);
		close(w->fd);                /* the worker reads EOF and leaves */
	}
	for (int i = 0; i < h->nw; i++)
		if (h->w[i].alive)
			waitpid(h->w[i].pid, NULL, 0);
	for (int i = 0; i < h->nw; i++)
		free_reqs(h->w[i].head);
	free_reqs(h->ph);
	for (int i = 0; i < h->nt; i++) {
		if (h->t[i].L)
			vl_plain_close(h->t[i].L);
		free(h->t[i].src);
	}
	if (h->c) {
		vmc_close(h->c);
		if (*h->name)
			vmc_destroy(h->name);
	}
	free(h->t);
	free(h->hash);
	free(h->w);
	free(h);
}

void vl_host_set_atfork(struct vl_host *h, void (*fn)(void *), void *arg)
{
	h->atfork = fn;
	h->atfork_arg = arg;
}

/* ------------------------------------------------------------- routing */

static int usable(const struct worker *w)
{
	return w->alive && !w->full && w->inflight < VL_DEPTH;
}

static int pick(struct vl_host *h, const struct tenant *t, int pin)
{
	if (t->owner >= 0)
		return (pin < 0 || pin == t->owner) && usable(&h->w[t->owner]) ? t->owner : -1;
	if (t->proc >= 0)
		return usable(&h->w[t->proc]) ? t->proc : -1;
	if (pin >= 0)
		return pin < h->nw && usable(&h->w[pin]) ? pin : -1;
	int best = -1;
	for (int i = 0; i < h->nw; i++)
		if (usable(&h->w[i]) && (best < 0 || h->w[i].inflight < h->w[best].inflight))
			best = i;
	if (best >= 0 && t->last >= 0 && usable(&h->w[t->last]) &&
	    h->w[t->last].inflight <= h->w[best].inflight)
		best = t->last;
	return best;
}

static int send_req(struct vl_host *h, int wi, struct req *r)
{
	struct worker *w = &h->w[wi];
	struct tenant *t = &h->t[r->tenant];
	struct vl_msg m = { .id = r->id, .vm = t->vm, .tlen = (uint16_t)strlen(t->name),
			    .len = (uint32_t)r->len };
	struct iovec iov[3] = { { &m, sizeof m }, { t->name, m.tlen }, { r->body, r->len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };

	if (sendmsg(w->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		w->full = 1;    /* EAGAIN: until it answers; EPIPE: its hang-up comes next */
		return -1;
	}
	r->next = NULL;
	if (w->tail)
		w->tail->next = r;
	else
		w->head = r;
	w->tail = r;
	if (w->inflight++ == 0)
		w->busy_since = vl_now_ns();
	t->owner = wi;
	t->inflight++;
	return 0;
}

static void fail_req(struct vl_host *h, struct req *r, const char *fmt, const char *a)
{
	vl_reply_set(&h->reply, 1, fmt, a);
	r->done(r->arg, &h->reply, -1);
	free(r);
}

static const char orphan_fmt[] =
	"tenant '%s' is orphaned: its worker died during a request (its VM is kept as the "
	"worker left it, for inspection: vmcctl stat shows it)";

/* Place what can be placed, in arrival order (a tenant's requests keep
 * their order: once one of them waits, the later ones wait too). */
static void dispatch(struct vl_host *h)
{
	if (h->in_dispatch) {
		h->again = 1;
		return;
	}
	h->in_dispatch = 1;
	do {
		struct req *failed = NULL, **pp = &h->ph, *r, *last = NULL;
		uint32_t pass = ++h->pass;
		h->again = 0;
		while ((r = *pp)) {
			struct tenant *t = &h->t[r->tenant];
			if (t->orphaned && t->inflight == 0) {
				*pp = r->next;
				r->next = failed;
				failed = r;
				continue;
			}
			int wi = t->blocked == pass ? -1 : pick(h, t, r->pin);
			struct req *next = r->next;
			if (wi >= 0 && send_req(h, wi, r) == 0) {
				*pp = next;
				continue;
			}
			t->blocked = pass;
			last = r;
			pp = &r->next;
		}
		h->pt = last;
		while (failed) {
			r = failed;
			failed = r->next;
			fail_req(h, r, orphan_fmt, h->t[r->tenant].name);
		}
	} while (h->again);
	h->in_dispatch = 0;
}

void vl_host_submit(struct vl_host *h, const char *tenant, size_t tlen, const char *body,
		    size_t blen, int pin, vl_done_fn *done, void *arg)
{
	struct vl_reply *rep = &h->reply;
	int ti = tenant_lookup(h, tenant, tlen);

	if (ti < 0) {
		vl_reply_set(rep, 1, "unknown tenant '%.*s'", (int)(tlen > 64 ? 64 : tlen), tenant);
		done(arg, rep, -1);
		return;
	}
	struct tenant *t = &h->t[ti];
	if (blen > VL_LINE_MAX) {
		vl_reply_set(rep, 1, "request longer than %d bytes", VL_LINE_MAX);
		done(arg, rep, -1);
		return;
	}
	if (t->orphaned) {
		vl_reply_set(rep, 1, orphan_fmt, t->name);
		done(arg, rep, -1);
		return;
	}
	if (h->o.mode == VL_ONEPROC || (h->o.mode == VL_VMC && h->nw == 0)) {
		vl_log_prefix("dispatcher %s", t->name);
		if (t->L)
			vl_sandbox_call(t->L, body, blen, rep);
		else
			vl_vm_request(h->c, t->vm, body, blen, rep);
		t->served++;
		done(arg, rep, -1);
		return;
	}
	if (pin >= h->nw || (pin >= 0 && h->o.mode == VL_PROCS)) {
		vl_reply_set(rep, 1, "no worker %d", pin);
		done(arg, rep, -1);
		return;
	}
	struct req *r = malloc(sizeof *r + blen);
	if (!r) {
		vl_reply_set(rep, 1, "dispatcher out of memory");
		done(arg, rep, -1);
		return;
	}
	*r = (struct req){ .id = ++h->next_id, .tenant = ti, .pin = pin, .done = done,
			   .arg = arg, .len = blen };
	memcpy(r->body, body, blen);
	if (h->pt)
		h->pt->next = r;
	else
		h->ph = r;
	h->pt = r;
	dispatch(h);
}

/* --------------------------------------------------- replies and deaths */

static void describe(int st, char *buf, size_t n)
{
	if (WIFSIGNALED(st))
		snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else if (WIFEXITED(st))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(buf, n, "died");
}

static void worker_died(struct vl_host *h, int wi)
{
	struct worker *w = &h->w[wi];
	char how[96], err[256];
	int st = 0;

	if (!w->alive)
		return;
	close(w->fd);
	w->fd = -1;
	w->alive = 0;
	if (waitpid(w->pid, &st, 0) < 0)
		st = 0;
	describe(st, how, sizeof how);
	if (h->c)
		vmc_recover(h->c, NULL);
	struct req *r = w->head, *rest = r ? r->next : NULL;
	w->head = w->tail = NULL;
	w->inflight = 0;
	w->full = 0;
	if (r) {
		struct tenant *t = &h->t[r->tenant];
		vmc_vm_stats_t vs;
		if (--t->inflight == 0)
			t->owner = -1;
		if (h->c && !vmc_vm_stats(h->c, t->vm, &vs) && vs.state == VMC_VM_ORPHANED)
			t->orphaned = 1;
		host_log(h, "worker %d (pid %d) %s during a request to tenant '%s'%s", wi,
			 (int)w->pid, how, t->name,
			 t->orphaned ? ": the tenant is orphaned (VM state orphaned)"
			 : h->o.mode == VL_PROCS ? ": its state is lost, the tenant starts afresh" : "");
		vl_reply_set(&h->reply, 1, "worker %d (pid %d) %s during this request%s%s%s", wi,
			     (int)w->pid, how, t->orphaned ? "; tenant '" : "",
			     t->orphaned ? t->name : "", t->orphaned ? "' is orphaned" : "");
	} else if (!h->stopping) {
		host_log(h, "worker %d (pid %d) %s", wi, (int)w->pid, how);
	}
	/* the requests behind it never started: back to the front of the queue */
	struct req *q = rest, *qlast = NULL;
	for (; q; qlast = q, q = q->next) {
		struct tenant *t = &h->t[q->tenant];
		if (--t->inflight == 0)
			t->owner = -1;
	}
	if (rest) {
		qlast->next = h->ph;
		if (!h->ph)
			h->pt = qlast;
		h->ph = rest;
	}
	if (!h->stopping && h->respawns++ < 1000 && host_spawn(h, wi, w->tenant, err, sizeof err))
		host_log(h, "cannot start worker %d again: %s", wi, err);
	if (r) {
		r->done(r->arg, &h->reply, wi);
		free(r);
	}
	dispatch(h);
}

static void drain(struct vl_host *h, int wi)
{
	static char buf[VL_MSG_MAX];
	for (;;) {
		struct worker *w = &h->w[wi];
		if (!w->alive)
			return;
		ssize_t n = recv(w->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		struct vl_msg *m = (struct vl_msg *)buf;
		struct req *r = w->head;
		if (n <= 0 || (size_t)n < sizeof *m || m->len != (size_t)n - sizeof *m || !r ||
		    r->id != m->id) {
			if (n > 0)
				host_log(h, "worker %d: bad reply; stopping it", wi);
			if (n > 0)
				kill(w->pid, SIGKILL);
			worker_died(h, wi);
			return;
		}
		w->head = r->next;
		if (!w->head)
			w->tail = NULL;
		w->full = 0;
		w->busy_since = --w->inflight ? vl_now_ns() : 0;
		struct tenant *t = &h->t[r->tenant];
		if (--t->inflight == 0)
			t->owner = -1;
		t->last = wi;
		t->served++;
		if (wi < VL_MAX_WORKERS)
			t->by_worker[wi]++;
		struct vl_reply *rep = &h->reply;
		rep->err = m->status != 0;
		rep->len = m->len < sizeof rep->text ? m->len : sizeof rep->text - 1;
		memcpy(rep->text, buf + sizeof *m, rep->len);
		rep->text[rep->len] = 0;
		r->done(r->arg, rep, wi);
		free(r);
	}
}

int vl_host_pollfds(struct vl_host *h, struct pollfd *pfd, int max, int *timeout_ms)
{
	uint64_t now = h->o.timeout_ms ? vl_now_ns() : 0, lim = (uint64_t)h->o.timeout_ms * 1000000;
	int k = 0;
	for (int i = 0; i < h->nw && k < max; i++) {
		struct worker *w = &h->w[i];
		if (!w->alive)
			continue;
		pfd[k++] = (struct pollfd){ .fd = w->fd, .events = POLLIN };
		if (!lim || !w->inflight || w->killed)
			continue;
		if (now - w->busy_since >= lim) {
			host_log(h, "worker %d (pid %d): a request to tenant '%s' ran longer than "
				 "%d ms: kill -9", i, (int)w->pid, h->t[w->head->tenant].name,
				 h->o.timeout_ms);
			kill(w->pid, SIGKILL);
			w->killed = 1;
			continue;
		}
		int left = (int)((lim - (now - w->busy_since)) / 1000000) + 1;
		if (*timeout_ms < 0 || left < *timeout_ms)
			*timeout_ms = left;
	}
	return k;
}

void vl_host_events(struct vl_host *h, const struct pollfd *pfd, int n)
{
	for (int k = 0; k < n; k++) {
		if (!pfd[k].revents)
			continue;
		for (int i = 0; i < h->nw; i++)
			if (h->w[i].alive && h->w[i].fd == pfd[k].fd) {
				drain(h, i);
				break;
			}
	}
	dispatch(h);
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
	struct pollfd pfd[VL_MAX_WORKERS + 256];
	vl_host_submit(h, tenant, strlen(tenant), body, strlen(body), pin, sync_done, &s);
	while (!s.done) {
		int timeout = -1, k = vl_host_pollfds(h, pfd, (int)(sizeof pfd / sizeof pfd[0]), &timeout);
		if (poll(pfd, (nfds_t)k, timeout) < 0 && errno != EINTR)
			break;
		vl_host_events(h, pfd, k);
	}
	return s.worker;
}
