/*
 * test_util.c - the helpers of vmc-lua's test programs (test_util.h).
 */
#include "test_util.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void tu_opts(struct vl_host_opts *o, int workers, int iso)
{
	vl_host_opts_init(o);
	o->private_c = o->quiet = 1;
	o->workers = workers;
	o->isolation = iso;
	o->timeout_ms = 0;
	o->pool_size = 64 * MiB;
}

struct vl_host *tu_host_opts(const struct vl_host_opts *o)
{
	char err[512];
	struct vl_host *h = vl_host_new(o, err, sizeof err);
	CHECK(h, "%s", err);
	CHECK(!vl_host_start(h, err, sizeof err), "%s", err);
	return h;
}

struct vl_host *tu_host(int workers, int iso, int timeout_ms)
{
	struct vl_host_opts o;
	tu_opts(&o, workers, iso);
	o.timeout_ms = timeout_ms;
	return tu_host_opts(&o);
}

int tu_add(struct vl_host *h, const char *name, const char *src, uint64_t limit)
{
	char err[512];
	int i = vl_host_add(h, name, src, strlen(src), limit, 0, err, sizeof err);
	CHECK(i >= 0, "adding %s: %s", name, err);
	return i;
}

int tu_call(struct vl_host *h, const char *t, const char *body, int pin, int want_err,
	    const char *want, struct vl_reply *out)
{
	static struct vl_reply r;
	int w = vl_host_call(h, t, body, pin, &r);
	CHECK(r.err == want_err && (!want || strstr(r.text, want)),
	      "%s '%s' -> %s '%s' (wanted %s '%s')", t, body, r.err ? "ERR" : "OK", r.text,
	      want_err ? "ERR" : "OK", want ? want : "*");
	if (out)
		*out = r;
	return w;
}

void tu_record(void *arg, const struct vl_reply *r, int worker)
{
	struct tu_pending *p = arg;
	p->r = *r;
	p->worker = worker;
	p->done = 1;
}

void tu_admin(struct vl_host *h, int op, const char *name, int want_err, const char *want)
{
	static struct tu_pending a;
	a.done = 0;
	vl_host_admin(h, op, name, tu_record, &a);
	for (double end = vl_now() + 30; !a.done && vl_now() < end;)
		tu_pump(h, 100);
	CHECK(a.done && a.r.err == want_err && (!want || strstr(a.r.text, want)),
	      "%s %s -> %s '%s' (wanted %s '%s')", op == VL_OP_RELOAD ? "reload" :
	      op == VL_OP_RESET ? "reset" : "op", name,
	      a.r.err ? "ERR" : "OK", a.done ? a.r.text : "(no answer)", want_err ? "ERR" : "OK",
	      want ? want : "*");
}

void tu_info(struct vl_host *h, const char *name, struct vl_tenant_info *out)
{
	CHECK(!vl_host_tenant(h, vl_host_find(h, name), out), "no tenant %s", name);
}

uint32_t tu_vm(struct vl_host *h, const char *name)
{
	struct vl_tenant_info ti;
	tu_info(h, name, &ti);
	return ti.vm;
}

void tu_pump(struct vl_host *h, int ms)
{
	struct pollfd pfd[VL_MAX_WORKERS + 8];
	int timeout = ms, k = vl_host_pollfds(h, pfd, VL_MAX_WORKERS + 8, &timeout);
	if (poll(pfd, (nfds_t)k, timeout) >= 0)
		vl_host_events(h, pfd, k);
}

int tu_serve(struct vl_host *h, int (*client)(const char *path, const char *ctl, void *arg),
	     void *arg)
{
	char err[512], path[64], ctl[68];
	int p[2], st = 0;
	snprintf(path, sizeof path, "/tmp/vmc-lua-test-%d.sock", (int)getpid());
	snprintf(ctl, sizeof ctl, "%s.ctl", path);
	int lfd = vl_listen(path, err, sizeof err), cfd = vl_listen(ctl, err, sizeof err);
	CHECK(lfd >= 0 && cfd >= 0, "%s", err);
	CHECK(!pipe(p), "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		_exit(client(path, ctl, arg));
	}
	close(p[1]);
	vl_serve(h, lfd, cfd, p[0]);
	close(p[0]);
	waitpid(pid, &st, 0);
	close(lfd);
	close(cfd);
	unlink(path);
	unlink(ctl);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

size_t tu_exchange(int fd, const char *buf, size_t len, int half, size_t lines, char *out,
		   size_t cap)
{
	size_t got = 0, seen = 0, sent = 0;
	if (half && !len)
		shutdown(fd, SHUT_WR);
	while (seen < lines && got + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0) };
		if (poll(&p, 1, 30000) <= 0)
			break;
		if ((p.revents & POLLOUT) && sent < len) {
			ssize_t w = send(fd, buf + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			sent += w > 0 ? (size_t)w : 0;
			if (half && sent == len)
				shutdown(fd, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			ssize_t r = recv(fd, out + got, cap - 1 - got, MSG_DONTWAIT);
			if (r == 0)
				break;
			for (ssize_t i = 0; i < r; i++)
				seen += out[got + (size_t)i] == '\n';
			got += r > 0 ? (size_t)r : 0;
		}
	}
	out[got] = 0;
	return got;
}

int tu_main(int argc, char **argv, const struct tu_test *tests, int n)
{
	const char *which = argc > 1 ? argv[1] : "all";
	int ran = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < n; i++)
		if (!strcmp(which, "all") || !strcmp(which, tests[i].name)) {
			tests[i].fn();
			ran++;
		}
	if (!ran) {
		fprintf(stderr, "usage: %s [all", argv[0]);
		for (int i = 0; i < n; i++)
			fprintf(stderr, "|%s", tests[i].name);
		fprintf(stderr, "]\n");
		return 2;
	}
	return 0;
}
