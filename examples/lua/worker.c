/*
 * worker.c - a worker process.  It reads messages from its socket to the
 * dispatcher; each is a batch of requests to one tenant, and each request
 * gets one answer, in order.
 *
 * vmc mode: the message names the tenant's VM.  The worker attaches it
 * once for the whole batch (the amortised switch), finds the lua_State in
 * the VM's root slot, calls handle(body) for each request under the
 * tenant's CPU budget, copies each reply out of the VM, and detaches.  It
 * keeps nothing of any tenant between messages, so a tenant can run in any
 * worker, one after another.  Each answer also carries what the attach
 * cost and the worker's running counts of system calls through vmc and of
 * minor page faults, for the dispatcher's figures.
 *
 * A message may also be an operation: VL_OP_HIBERNATE (hibernate.c) puts
 * the tenant's VM into an image file; it gets one answer too.
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

struct batch {
	int         fd, failed;
	uint32_t    id[VL_BATCH_MAX];
	const char *body[VL_BATCH_MAX];
	size_t      len[VL_BATCH_MAX];
};

static void answer(void *arg, int i, const struct vl_reply *r, uint32_t attach_ns,
		   uint32_t attach_sys)
{
	struct batch *b = arg;
	struct vl_ans a = { .id = b->id[i], .len = (uint32_t)r->len, .kind = r->kind,
			    .attach_ns = attach_ns, .attach_sys = attach_sys,
			    .syscalls = vmc_syscalls(), .minflt = vl_minflt() };
	struct iovec iov[2] = { { &a, sizeof a }, { (void *)r->text, r->len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	while (!b->failed && sendmsg(b->fd, &mh, MSG_NOSIGNAL) < 0)
		b->failed = errno != EINTR;
}

/* Split message buf[0..n) into *m, the tenant name and the batch. */
static int parse(const char *buf, size_t n, struct vl_msg *m, struct batch *b)
{
	size_t off = sizeof *m;
	if (n < off)
		return -1;
	memcpy(m, buf, sizeof *m);
	if (m->n < 1 || m->n > VL_BATCH_MAX || m->tlen > VL_NAME_MAX || n < off + m->tlen ||
	    (m->op != VL_OP_REQUEST && (m->op != VL_OP_HIBERNATE || m->n != 1)))
		return -1;
	off += m->tlen;
	for (int i = 0; i < m->n; i++) {
		struct vl_sub s;
		if (n - off < sizeof s)
			return -1;
		memcpy(&s, buf + off, sizeof s);
		off += sizeof s;
		if (n - off < s.len)
			return -1;
		b->id[i] = s.id;
		b->body[i] = buf + off;
		b->len[i] = s.len;
		off += s.len;
	}
	return off == n ? 0 : -1;
}

void vl_worker_main(struct vl_host *h, int index, int fd, int tenant)
{
	static char buf[VL_MSG_MAX];
	static struct vl_reply r;
	static struct batch b;
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
		    (vl_sandbox_budget(L, t->budget),
		     vl_sandbox_load(L, t->name, t->src, t->srclen, err, sizeof err))) {
			fprintf(stderr, "vmc-lua: tenant process %s: %s\n", t->name, err);
			_exit(1);
		}
	} else if (h->c) {
		vmc_fault_install(h->c, 0);
	}
	b.fd = fd;
	while (!b.failed) {
		struct vl_msg m;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (parse(buf, (size_t)n, &m, &b)) {
			fprintf(stderr, "vmc-lua: worker %d: bad request message\n", index);
			break;
		}
		vl_log_prefix("w%d %.*s", index, (int)m.tlen, buf + sizeof m);
		if (m.op == VL_OP_HIBERNATE) {
			if (L)
				vl_reply_set(&r, 1, "a tenant process does not hibernate");
			else
				vl_vm_hibernate(h->c, m.vm, m.budget, &r);
			answer(&b, 0, &r, 0, 0);
		} else if (L)
			vl_plain_serve(L, m.budget, m.n, b.body, b.len, &r, answer, &b);
		else
			vl_vm_serve(h->c, m.vm, m.budget, m.n, b.body, b.len, &r, answer, &b);
	}
	if (L)
		vl_plain_close(L);
	if (h->c)
		vmc_close(h->c);
	_exit(0);
}
