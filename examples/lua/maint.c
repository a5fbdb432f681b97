/*
 * maint.c - maintenance of one tenant: reload its script, reset it, and
 * recover it when its worker died while it was attached (its VM orphaned).
 *
 * An operation waits in the tenant's queue like a request, until the
 * tenant has nothing in flight; the requests behind it wait for it.  The
 * tenant code it runs (the script's top level, the check of a state a dead
 * worker left) never runs in the dispatcher: a forked job process attaches
 * the VM, does it under the tenant's CPU budget, detaches, and writes the
 * outcome to a pipe.  So a job that crashes or hangs (the watchdog kills it
 * like a worker) costs the host nothing.  The dispatcher only does what
 * runs no tenant code: destroying and cloning VMs, vmc_vm_reclaim.
 *
 *   reload   the script (read again from its file) runs in the tenant's
 *            state: globals stay, handle is replaced.  If it fails, the old
 *            handle serves on.  A broken or orphaned tenant gets a fresh
 *            state instead.
 *   reset    a fresh state: a clone of the template, and the script.
 *   recover  (a worker died with the VM attached) by the policy --recover:
 *            keep: vmc_vm_reclaim KEEP, then a job checks the heap
 *            (vmc_heap_stats with check), unwinds the dead call and runs a
 *            full collection and a nesting probe; if any of it fails, or the
 *            job dies, reset.  reset: reset with the script it ran.  manual:
 *            the tenant stays orphaned, for inspection, until `reset NAME`.
 */
#include "host.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

enum { J_INPLACE, J_FRESH, J_CHECK };

struct result {
	int32_t ok;
	char    text[2040];       /* the whole struct fits in PIPE_BUF: one write */
};

void vl_host_admin(struct vl_host *h, int op, const char *name, vl_done_fn *done, void *arg)
{
	size_t len = strlen(name);
	int ti = tenant_lookup(h, name, len);
	char path[4096], err[256];

	if (h->o.mode != VL_VMC) {
		vl_reply_set(&h->reply, 1, "reload, reset and hibernate need --mode vmc");
		done(arg, &h->reply, -1);
		return;
	}
	if (ti < 0 && op == VL_OP_RELOAD && h->dir && tenant_name_ok(name, len)) {
		snprintf(path, sizeof path, "%s/%s.lua", h->dir, name);
		if (!access(path, R_OK) &&
		    (ti = tenant_register(h, name, path, 0, 0, err, sizeof err)) < 0)
			host_log(h, "adding tenant '%s': %s", name, err);
	}
	if (ti < 0) {
		vl_reply_set(&h->reply, 1, "unknown tenant '%.*s'", (int)(len > 64 ? 64 : len), name);
		done(arg, &h->reply, -1);
		return;
	}
	if (op != VL_OP_HIBERNATE)
		host_queue_op(h, ti, op, done, arg);
	else if (host_hibernate_queue(h, ti, done, arg)) {
		vl_reply_set(&h->reply, 1, "dispatcher out of memory");
		done(arg, &h->reply, -1);
	}
}

void maint_orphaned(struct vl_host *h, int ti)
{
	struct tenant *t = &h->t[ti];
	t->orphans++;
	if (h->o.recover == VL_RECOVER_MANUAL) {
		t->state = VL_T_ORPHANED;
		tenant_set_msg(t, "its worker died during a request; its VM is kept as the worker "
			       "left it (vmcctl stat shows it); `reset` on the control socket makes "
			       "it serve again");
		return;
	}
	struct req *r = host_new_req(h, ti, h->o.recover == VL_RECOVER_KEEP ? VL_OP_CHECK : VL_OP_RESET,
				     "", 0, NULL, NULL);
	if (!r) {
		t->state = VL_T_ORPHANED;
		tenant_set_msg(t, "out of memory while recovering it");
		return;
	}
	t->state = VL_T_MAINT;
	host_push_front(h, r);
}

/* The job process: attach, do it, detach, write the result. */
static void job_main(struct vl_host *h, int kind, const struct tenant *t, const char *src,
		     size_t len, int fd)
{
	static struct result res;
	int e;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, SIG_IGN);
	vl_log_prefix("job %s", t->name);
	if ((e = vl_vm_attach(h->c, t->vm))) {
		snprintf(res.text, sizeof res.text, "attach: %s",
			 *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(e));
	} else {
		lua_State *L = vl_vm_state(h->c);
		if (kind == J_CHECK) {
			res.ok = !vl_vm_check(h->c, res.text, sizeof res.text);
		} else if (L) {
			vl_sandbox_budget(L, t->budget);
			res.ok = !vl_sandbox_load(L, t->name, src, len, res.text, sizeof res.text);
		} else {
			snprintf(res.text, sizeof res.text, "the VM holds no Lua state");
		}
		vmc_detach(h->c, t->vm);
	}
	e = write(fd, &res, sizeof res) == (ssize_t)sizeof res;
	vmc_close(h->c);
	_exit(e ? 0 : 1);
}

static void finish(struct vl_host *h, struct req *op, int err, const char *fmt, const char *a,
		   const char *b)
{
	vl_reply_set(&h->reply, err, fmt, a, b);
	host_finish(h, op, &h->reply, -1);
}

int maint_start(struct vl_host *h, int ti)
{
	struct tenant *t = &h->t[ti];
	char err[1024];
	char *src = NULL;
	size_t len = 0;
	int j = 0, p[2], kind, e;

	while (j < VL_JOBS && h->job[j].pid)
		j++;
	if (j == VL_JOBS)
		return -1;
	struct req *op = host_dequeue(h, t);
	int internal = !op->done;
	host_waking(t);    /* the job attaches the VM: that wakes it */
	if (op->op == VL_OP_CHECK) {
		kind = J_CHECK;
		if ((e = vmc_vm_reclaim(h->c, t->vm, VMC_RECLAIM_KEEP))) {
			host_log(h, "tenant '%s': vmc_vm_reclaim: %s; resetting it", t->name, vmc_strerror(e));
			op->op = VL_OP_RESET;
			host_push_front(h, op);
			return 0;
		}
	} else {
		kind = op->op == VL_OP_RELOAD && t->state == VL_T_READY ? J_INPLACE : J_FRESH;
		if (!(src = tenant_script(h, ti, !internal, &len, err, sizeof err))) {
			finish(h, op, 1, "tenant '%s': %s", t->name, err);
			return 0;
		}
	}
	if (kind == J_FRESH && tenant_fresh_vm(h, ti, err, sizeof err)) {
		t->state = VL_T_BROKEN;
		tenant_set_msg(t, err);
		free(src);
		finish(h, op, 1, "tenant '%s' failed to load: %s", t->name, err);
		return 0;
	}
	if (pipe(p)) {
		free(src);
		finish(h, op, 1, "tenant '%s': pipe: %s", t->name, strerror(errno));
		return 0;
	}
	pid_t pid = host_fork(h);
	if (pid == 0) {
		close(p[0]);
		job_main(h, kind, t, src, len, p[1]);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		free(src);
		finish(h, op, 1, "tenant '%s': fork: %s", t->name, strerror(errno));
		return 0;
	}
	h->job[j] = (struct job){ .pid = pid, .fd = p[0], .tenant = ti, .kind = kind, .op = op,
				  .src = src, .srclen = len, .started = vl_now_ns() };
	host_fd_set(h, p[0], -2 - j);
	t->job = 1;
	if (kind != J_INPLACE)
		t->state = VL_T_MAINT;
	return 0;
}

/* Job j is over; what it did is in *res (res->ok), or it died (how). */
static void job_outcome(struct vl_host *h, struct job *jb, const struct result *res,
			const char *how)
{
	struct tenant *t = &h->t[jb->tenant];
	struct req *op = jb->op;
	const char *why = how ? how : res->text;
	vmc_vm_stats_t vs;
	int ok = !how && res->ok, internal = !op->done;

	if (ok && jb->kind != J_CHECK) {
		free(t->src);
		t->src = jb->src;
		t->srclen = jb->srclen;
		jb->src = NULL;
	}
	if (ok) {
		t->state = VL_T_READY;
		tenant_set_msg(t, NULL);
		t->recoveries += internal;
		t->reloads += !internal && op->op == VL_OP_RELOAD;
		if (internal)
			host_log(h, "tenant '%s' recovered: %s", t->name, jb->kind == J_CHECK
				 ? "its state is kept (the heap and state checks passed)"
				 : "a fresh state");
		finish(h, op, 0, "tenant '%s' %s", t->name, op->op == VL_OP_RESET
		       ? "reset: a fresh state" : jb->kind == J_INPLACE
		       ? "reloaded: its state kept, handle replaced" : "reloaded: a fresh state");
		return;
	}
	if (jb->kind == J_CHECK) {
		host_log(h, "tenant '%s': the check failed (%s); resetting it", t->name, why);
		op->op = VL_OP_RESET;
		host_push_front(h, op);
		return;
	}
	if (jb->kind == J_INPLACE) {
		int orphaned = !vmc_vm_stats(h->c, t->vm, &vs) && vs.state == VMC_VM_ORPHANED;
		t->state = VL_T_READY;
		if (orphaned)
			maint_orphaned(h, jb->tenant);
		finish(h, op, 1, "reload of '%s' failed: %s", t->name, why);
		return;
	}
	if (t->vm != VMC_NO_VM && !vmc_vm_destroy(h->c, t->vm))
		t->vm = VMC_NO_VM;
	t->state = VL_T_BROKEN;
	tenant_set_msg(t, why);
	if (internal)
		host_log(h, "tenant '%s' could not be recovered: %s", t->name, why);
	finish(h, op, 1, "tenant '%s' failed to load: %s", t->name, why);
}

void maint_done(struct vl_host *h, int j)
{
	struct job *jb = &h->job[j];
	static struct result res;
	char how[160], desc[96];
	int st = 0;
	ssize_t got;

	while ((got = read(jb->fd, &res, sizeof res)) < 0 && errno == EINTR)
		;
	host_fd_set(h, jb->fd, -1);
	close(jb->fd);
	while (waitpid(jb->pid, &st, 0) < 0 && errno == EINTR)
		;
	if (got != (ssize_t)sizeof res) {
		host_describe(st, desc, sizeof desc);
		snprintf(how, sizeof how, "its job process (pid %d) %s%s", (int)jb->pid, desc,
			 jb->killed ? " (the watchdog)" : "");
		vmc_recover(h->c, NULL);
	}
	h->t[jb->tenant].job = 0;
	job_outcome(h, jb, &res, got == (ssize_t)sizeof res ? NULL : how);
	free(jb->src);
	*jb = (struct job){ 0 };
	host_dispatch(h);
}

void maint_watchdog(struct vl_host *h, uint64_t now, int *timeout_ms)
{
	uint64_t lim = (uint64_t)h->o.timeout_ms * 1000000;
	for (int j = 0; j < VL_JOBS && lim; j++) {
		struct job *jb = &h->job[j];
		if (!jb->pid || jb->killed)
			continue;
		if (now - jb->started >= lim) {
			host_log(h, "the job on tenant '%s' (pid %d) ran longer than %d ms: kill -9",
				 h->t[jb->tenant].name, (int)jb->pid, h->o.timeout_ms);
			kill(jb->pid, SIGKILL);
			jb->killed = 1;
			continue;
		}
		int left = (int)((lim - (now - jb->started)) / 1000000) + 1;
		if (*timeout_ms < 0 || left < *timeout_ms)
			*timeout_ms = left;
	}
}

void maint_stop(struct vl_host *h)
{
	for (int j = 0; j < VL_JOBS; j++) {
		struct job *jb = &h->job[j];
		if (!jb->pid)
			continue;
		kill(jb->pid, SIGKILL);
		waitpid(jb->pid, NULL, 0);
		close(jb->fd);
		free(jb->src);
		free(jb->op);
		*jb = (struct job){ 0 };
	}
}
