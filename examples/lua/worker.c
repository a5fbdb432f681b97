/*
 * worker.c - a worker process.  It reads requests from its socket to the
 * dispatcher, one message each, and answers each with one message.
 *
 * vmc mode: the request names the tenant's VM.  The worker attaches it,
 * finds the lua_State in the VM's root slot, calls handle(body), copies
 * the reply out of the VM, and detaches.  It keeps nothing of any tenant
 * between requests, so a tenant can run in any worker, one after another.
 *
 * VL_PROCS (the baseline "one process per tenant"): the worker owns one
 * tenant's state on malloc and serves only that tenant.
 *
 * A worker ignores SIGINT (the dispatcher stops it by closing the socket)
 * and dies with its dispatcher (PR_SET_PDEATHSIG), so no tenant code keeps
 * running after the host is gone.
 */
#include "host.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

void vl_worker_main(struct vl_host *h, int index, int fd, int tenant)
{
	static char buf[VL_MSG_MAX];
	static struct vl_reply r;
	lua_State *L = NULL;
	char err[512];

	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != h->pid)
		_exit(1);
	if (tenant >= 0) {
		struct tenant *t = &h->t[tenant];
		vl_log_prefix("w%d %s", index, t->name);
		if (!(L = vl_plain_new(t->limit, err, sizeof err)) ||
		    vl_sandbox_load(L, t->name, t->src, t->srclen, err, sizeof err)) {
			fprintf(stderr, "vmc-lua: tenant process %s: %s\n", t->name, err);
			_exit(1);
		}
	} else if (h->c) {
		vmc_fault_install(h->c, 0);
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		struct vl_msg *m = (struct vl_msg *)buf;
		if ((size_t)n < sizeof *m || (size_t)n != sizeof *m + m->tlen + m->len) {
			fprintf(stderr, "vmc-lua: worker %d: bad request message\n", index);
			break;
		}
		const char *name = buf + sizeof *m, *body = name + m->tlen;
		vl_log_prefix("w%d %.*s", index, (int)m->tlen, name);
		if (L)
			vl_sandbox_call(L, body, m->len, &r);
		else
			vl_vm_request(h->c, m->vm, body, m->len, &r);
		struct vl_msg a = { .id = m->id, .status = r.err, .len = (uint32_t)r.len };
		struct iovec iov[2] = { { &a, sizeof a }, { r.text, r.len } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		while (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
			if (errno != EINTR)
				goto out;
	}
out:
	if (L)
		vl_plain_close(L);
	if (h->c)
		vmc_close(h->c);
	_exit(0);
}
