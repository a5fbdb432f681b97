/*
 * host.c - the host's life: it creates the container, forks the workers,
 * notices their deaths and watches over the requests they run.
 *
 * A worker that dies (kill -9, a crash, the watchdog) is noticed as a
 * hang-up on its socket.  The request it was running gets an error reply.
 * If its tenant's VM was attached, the VM is now orphaned (vmc_recover
 * finds the dead worker) and the recovery policy takes over (maint.c): by
 * default the tenant keeps its state if a check of it passes, or starts
 * afresh from its template; its next requests wait for that.  The requests
 * queued behind the dead one had not started: they go back to the front
 * of their tenants' queues.  The worker is forked again.
 *
 * The watchdog (--timeout) kills a worker whose request runs too long.  A
 * Lua loop never gets that far: the CPU budget ends it first (sandbox.c).
 * The watchdog is for hangs inside C functions.
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
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

void host_log(struct vl_host *h, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	if (h->o.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmc-lua: %s\n", buf);
}

void host_describe(int st, char *buf, size_t n)
{
	if (WIFSIGNALED(st))
		snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else if (WIFEXITED(st))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(buf, n, "died");
}

void vl_host_opts_init(struct vl_host_opts *o)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	memset(o, 0, sizeof *o);
	o->mode = VL_VMC;
	o->workers = n < 1 ? 1 : n > VL_MAX_WORKERS ? VL_MAX_WORKERS : (int)n;
	o->isolation = 1;
	o->clone = 1;
	o->affinity = 1;
	o->batch = VL_BATCH_MAX;
	o->recover = VL_RECOVER_KEEP;
	o->max_tenants = 1024;
	o->pool_size = 512 * MiB;
	o->limit = 8 * MiB;
	o->budget = VL_BUDGET_DEFAULT;
	o->timeout_ms = 10000;
}

static int make_container(struct vl_host *h, char *err, size_t n)
{
	const struct vl_host_opts *o = &h->o;
	vmc_config_t cfg;
	int e;

	if (vmc_config_init(&cfg)) {
		snprintf(err, n, "profile: %s", vmc_errmsg());
		return -1;
	}
	cfg.pool_size = o->pool_size;
	cfg.fund_size = o->pool_size;
	cfg.window_size = 64 * MiB;
	while (cfg.window_size < o->limit)
		cfg.window_size *= 2;
	cfg.region_space = 0;
	cfg.max_vms = (uint32_t)o->max_tenants + 32;     /* templates, resets, samples */
	cfg.max_workers = VL_MAX_WORKERS + VL_JOBS + 16;
	/* Tenants commit a granule now and then.  A granule cached by one live
	 * worker cannot be had by another (only a dead worker's cache goes back
	 * when the free list runs dry), so keep the caches small. */
	cfg.worker_cache = 4;
	cfg.memory_isolation = o->isolation;
	if (o->quiet)
		cfg.verbose = 0;
	if (o->page_kind && vmc_config_set(&cfg, "page_kind", o->page_kind)) {
		snprintf(err, n, "page kind: %s", vmc_errmsg());
		return -1;
	}
	if (o->granule && vmc_config_set(&cfg, "granule_size", o->granule)) {
		snprintf(err, n, "granule: %s", vmc_errmsg());
		return -1;
	}
	/* hibernated tenants (--hibernate-after, `hibernate NAME`) wake in
	 * whichever worker attaches them next */
	if (vmc_config_set(&cfg, "wake_on_attach", "1")) {
		snprintf(err, n, "hibernation: %s", vmc_errmsg());
		return -1;
	}
	if (o->hibernate_dir && vmc_config_set(&cfg, "hibernate_dir", o->hibernate_dir)) {
		snprintf(err, n, "hibernate directory: %s", vmc_errmsg());
		return -1;
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
		return -1;
	}
	vmc_fault_install(h->c, 0);
	return 0;
}

struct vl_host *vl_host_new(const struct vl_host_opts *o, char *err, size_t n)
{
	struct vl_host *h = calloc(1, sizeof *h);

	if (!h) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	h->o = *o;
	h->pid = getpid();
	h->rq_head = h->rq_tail = -1;
	if (h->o.limit < VMC_GRANULE_SIZE)
		h->o.limit = VMC_GRANULE_SIZE;
	if (h->o.batch < 1 || h->o.batch > VL_BATCH_MAX)
		h->o.batch = h->o.batch < 1 ? 1 : VL_BATCH_MAX;
	if (!(h->own.samples = malloc(VL_SAMPLES * sizeof *h->own.samples)) ||
	    (o->mode == VL_VMC && make_container(h, err, n))) {
		if (!h->own.samples)
			snprintf(err, n, "out of memory");
		free(h->own.samples);
		free(h);
		return NULL;
	}
	h->own.seen_sys = vmc_syscalls();
	h->own.seen_flt = vl_minflt();
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
	struct worker *w = &h->w[h->nw];
	memset(w, 0, sizeof *w);
	w->fd = -1;
	w->tenant = -1;
	if (!(w->samples = malloc(VL_SAMPLES * sizeof *w->samples)))
		return -1;
	return h->nw++;
}

void host_account(struct worker *w, const struct vl_ans *a, int request)
{
	/* the process's counters; a new process starts from 0 again */
	uint64_t sys = a->syscalls >= w->seen_sys ? a->syscalls - w->seen_sys : a->syscalls;
	uint64_t flt = a->minflt >= w->seen_flt ? a->minflt - w->seen_flt : a->minflt;
	w->seen_sys = a->syscalls;
	w->seen_flt = a->minflt;
	if (!request)          /* a hibernation: not a request's cost */
		return;
	w->syscalls += sys;
	w->minflt += flt;
	w->requests++;
	if (a->attach_ns) {
		w->attaches++;
		w->hits += a->attach_sys == 0;
		w->samples[w->nsamples++ % VL_SAMPLES] = a->attach_ns;
	}
}

void host_fd_set(struct vl_host *h, int fd, int who)
{
	if (fd >= h->nfdmap) {
		int n = fd + 64;
		int *m = realloc(h->fdmap, (size_t)n * sizeof *m);
		if (!m)
			return;       /* vl_host_events then ignores that fd's events */
		for (int i = h->nfdmap; i < n; i++)
			m[i] = -1;
		h->fdmap = m;
		h->nfdmap = n;
	}
	h->fdmap[fd] = who;
}

pid_t host_fork(struct vl_host *h)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	for (int i = 0; i < h->nw; i++)
		if (h->w[i].fd >= 0)
			close(h->w[i].fd);
	for (int j = 0; j < VL_JOBS; j++)
		if (h->job[j].pid)
			close(h->job[j].fd);
	if (h->atfork)
		h->atfork(h->atfork_arg);
	return 0;
}

int host_spawn(struct vl_host *h, int wi, int tenant, char *err, size_t n)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) {
		snprintf(err, n, "socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t pid = host_fork(h);
	if (pid < 0) {
		snprintf(err, n, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
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
	w->seen_sys = w->seen_flt = 0;
	host_fd_set(h, w->fd, wi);
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
	maint_stop(h);
	for (int i = 0; i < h->nw; i++) {
		struct worker *w = &h->w[i];
		if (!w->alive)
			continue;
		if (w->inflight)             /* it may be running a request forever */
			kill(w->pid, SIGKILL);
		close(w->fd);                /* the worker reads EOF and leaves */
	}
	for (int i = 0; i < h->nw; i++) {
		if (h->w[i].alive)
			waitpid(h->w[i].pid, NULL, 0);
		free_reqs(h->w[i].head);
		free(h->w[i].samples);
	}
	for (int i = 0; i < h->nt; i++) {
		if (h->t[i].L)
			vl_plain_close(h->t[i].L);
		free_reqs(h->t[i].qh);
		free(h->t[i].src);
		free(h->t[i].path);
		free(h->t[i].msg);
	}
	if (h->c) {
		vmc_close(h->c);
		if (*h->name)
			vmc_destroy(h->name);
	}
	free(h->own.samples);
	free(h->fdmap);
	free(h->dir);
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

/* ---------------------------------------------------------------- deaths */

/* The request a dead worker was running: its reply, and the tenant's fate. */
static void lost_request(struct vl_host *h, int wi, struct req *r, const char *how)
{
	struct worker *w = &h->w[wi];
	struct tenant *t = &h->t[r->tenant];
	static const char *const policy[] = {
		"recovering it (policy keep: its state if a check of it passes, else a fresh one)",
		"recovering it (policy reset: a fresh state from its template)",
		"it answers ERR until `reset` (policy manual)",
	};
	vmc_vm_stats_t vs;
	int orphaned = h->c && !vmc_vm_stats(h->c, t->vm, &vs) && vs.state == VMC_VM_ORPHANED;
	char why[96] = "";

	if (w->killed)
		snprintf(why, sizeof why, " (the watchdog: it ran longer than %d ms)", h->o.timeout_ms);
	if (--t->inflight == 0)
		t->owner = -1;
	host_log(h, "worker %d (pid %d) %s%s during a request to tenant '%s'%s%s", wi, (int)w->pid,
		 how, why, t->name, orphaned ? ": its VM is orphaned; " : "",
		 orphaned ? policy[h->o.recover] : h->o.mode == VL_PROCS
		 ? ": its state is lost, the tenant starts afresh" : "");
	if (orphaned)
		maint_orphaned(h, r->tenant);
	host_fail(h, r, "worker %d (pid %d) %s%s during this request%s%s%s%s", wi, (int)w->pid,
		  how, why, orphaned ? "; tenant '" : "", orphaned ? t->name : "",
		  orphaned ? "' is orphaned: " : "", orphaned ? policy[h->o.recover] : "");
}

static void worker_died(struct vl_host *h, int wi)
{
	struct worker *w = &h->w[wi];
	char how[96], err[256];
	int st = 0;

	if (!w->alive)
		return;
	host_fd_set(h, w->fd, -1);
	close(w->fd);
	w->fd = -1;
	w->alive = 0;
	if (waitpid(w->pid, &st, 0) < 0)
		st = 0;
	host_describe(st, how, sizeof how);
	if (h->c)
		vmc_recover(h->c, NULL);
	struct req *r = w->head, *rest = r ? r->next : NULL;
	w->head = w->tail = NULL;
	w->inflight = w->msgs = 0;
	w->full = 0;
	/* the requests behind it never started: back to the front of their
	 * queues, the last one first */
	struct req *rev = NULL;
	while (rest) {
		struct req *next = rest->next;
		struct tenant *t = &h->t[rest->tenant];
		if (--t->inflight == 0)
			t->owner = -1;
		rest->next = rev;
		rev = rest;
		rest = next;
	}
	while (rev) {
		struct req *next = rev->next;
		host_push_front(h, rev);
		rev = next;
	}
	if (r)
		lost_request(h, wi, r, how);
	else if (!h->stopping)
		host_log(h, "worker %d (pid %d) %s", wi, (int)w->pid, how);
	if (!h->stopping && h->respawns++ < 1000 && host_spawn(h, wi, w->tenant, err, sizeof err))
		host_log(h, "cannot start worker %d again: %s", wi, err);
	host_dispatch(h);
}

/* ------------------------------------------------------- the event loop */

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
	for (int j = 0; j < VL_JOBS && k < max; j++)
		if (h->job[j].pid)
			pfd[k++] = (struct pollfd){ .fd = h->job[j].fd, .events = POLLIN };
	maint_watchdog(h, now, timeout_ms);
	host_hibernate_tick(h, vl_now_ns(), timeout_ms);
	return k;
}

void vl_host_events(struct vl_host *h, const struct pollfd *pfd, int n)
{
	for (int k = 0; k < n; k++) {
		int fd = pfd[k].fd, who = fd >= 0 && fd < h->nfdmap ? h->fdmap[fd] : -1;
		if (!pfd[k].revents || who == -1)
			continue;
		if (who >= 0 && host_drain(h, who))
			worker_died(h, who);
		else if (who < -1)
			maint_done(h, -2 - who);
	}
	host_dispatch(h);
}

