/*
 * proto.c - the line protocol over a Unix stream socket.
 *
 *   request:  TENANT SP BODY LF      (BODY may be empty; CR before LF is dropped)
 *   reply:    "OK " TEXT LF          handle(BODY) returned TEXT (tostring'ed)
 *             "ERR " MESSAGE LF      a Lua error, an unknown tenant, an orphaned
 *                                    tenant, a worker that died, a line too long
 *
 * A client may send many lines; they are answered one after another, in
 * order (one request of a connection is in flight at a time).  Lines are at
 * most VL_LINE_MAX bytes.  The server is the dispatcher's event loop: one
 * poll() over the listening socket, the connections, the workers' sockets
 * (vl_host_pollfds) and the stop fd.
 */
#include "vmclua.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS 1024

struct conn {
	struct vl_host *h;
	int    fd;
	int    busy, dead, skipping, pumping;
	size_t inlen, outlen, outcap;
	char  *out;
	char   in[VL_LINE_MAX + 2];
};

struct server {
	struct vl_host *h;
	int lfd;
	struct conn *c[MAX_CONNS];
	int n;
};

static int sun_path(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(a->sun_path, path);
	return 0;
}

int vl_listen(const char *path, char *err, size_t n)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || sun_path(&a, path)) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct stat st;
	if (!lstat(path, &st) && S_ISSOCK(st.st_mode))
		unlink(path);                    /* a stale socket of an earlier run */
	mode_t old = umask(0077);
	int e = bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128);
	umask(old);
	if (e) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int vl_connect(const char *path)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (sun_path(&a, path) || connect(fd, (struct sockaddr *)&a, sizeof a)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void conn_flush(struct conn *k)
{
	while (k->outlen && !k->dead) {
		ssize_t w = send(k->fd, k->out, k->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0) {
			k->dead = 1;
			return;
		}
		memmove(k->out, k->out + w, k->outlen - (size_t)w);
		k->outlen -= (size_t)w;
	}
}

static void conn_reply(struct conn *k, int err, const char *text, size_t len)
{
	size_t need = k->outlen + len + 6;
	if (need > k->outcap) {
		size_t cap = need * 2;
		char *o = realloc(k->out, cap);
		if (!o) {
			k->dead = 1;
			return;
		}
		k->out = o;
		k->outcap = cap;
	}
	memcpy(k->out + k->outlen, err ? "ERR " : "OK ", err ? 4 : 3);
	k->outlen += err ? 4 : 3;
	memcpy(k->out + k->outlen, text, len);
	k->outlen += len;
	k->out[k->outlen++] = '\n';
	conn_flush(k);
}

static void conn_pump(struct conn *k);

static void on_done(void *arg, const struct vl_reply *r, int worker)
{
	struct conn *k = arg;
	(void)worker;
	k->busy = 0;
	if (k->fd < 0) {        /* the client left while its request ran */
		free(k->out);
		free(k);
		return;
	}
	conn_reply(k, r->err, r->text, r->len);
	if (!k->pumping)
		conn_pump(k);
}

/* Submit the buffered lines, one at a time. */
static void conn_pump(struct conn *k)
{
	k->pumping = 1;
	while (!k->busy && !k->dead) {
		char *nl = memchr(k->in, '\n', k->inlen);
		if (!nl) {
			if (k->inlen > VL_LINE_MAX) {     /* too long: answer once, drop the rest */
				if (!k->skipping)
					conn_reply(k, 1, "line too long", 13);
				k->skipping = 1;
				k->inlen = 0;
			}
			break;
		}
		size_t len = (size_t)(nl - k->in), used = len + 1;
		if (len && k->in[len - 1] == '\r')
			len--;
		int skip = k->skipping;
		k->skipping = 0;
		if (!skip && len) {
			char *sp = memchr(k->in, ' ', len);
			size_t tl = sp ? (size_t)(sp - k->in) : len;
			const char *body = sp ? sp + 1 : k->in + len;
			k->busy = 1;
			vl_host_submit(k->h, k->in, tl, body, len - (size_t)(body - k->in), -1,
				       on_done, k);
		}
		memmove(k->in, k->in + used, k->inlen - used);
		k->inlen -= used;
	}
	k->pumping = 0;
}

static void conn_read(struct conn *k)
{
	for (;;) {
		size_t room = sizeof k->in - k->inlen;
		if (!room)
			break;
		ssize_t r = recv(k->fd, k->in + k->inlen, room, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			k->dead = 1;
			break;
		}
		k->inlen += (size_t)r;
		conn_pump(k);
		if (k->busy)
			break;
	}
	conn_pump(k);
}

static void conn_close(struct server *s, int i)
{
	struct conn *k = s->c[i];
	close(k->fd);
	k->fd = -1;
	if (!k->busy) {                    /* else on_done frees it */
		free(k->out);
		free(k);
	}
	s->c[i] = s->c[--s->n];
}

static void close_in_child(void *arg)
{
	struct server *s = arg;
	close(s->lfd);
	for (int i = 0; i < s->n; i++)
		close(s->c[i]->fd);
}

int vl_serve(struct vl_host *h, int lfd, int stopfd)
{
	struct server *s = calloc(1, sizeof *s);
	struct pollfd *pfd = calloc(MAX_CONNS + VL_MAX_WORKERS + 512, sizeof *pfd);
	int maxp = MAX_CONNS + VL_MAX_WORKERS + 512, stop = 0;

	if (!s || !pfd) {
		free(s);
		free(pfd);
		return -1;
	}
	s->h = h;
	s->lfd = lfd;
	vl_host_set_atfork(h, close_in_child, s);
	while (!stop) {
		int n = 0, timeout = -1;
		pfd[n++] = (struct pollfd){ .fd = stopfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = lfd, .events = s->n < MAX_CONNS ? POLLIN : 0 };
		int nc = s->n;
		for (int i = 0; i < nc; i++) {
			struct conn *k = s->c[i];
			short ev = (k->inlen < sizeof k->in ? POLLIN : 0) | (k->outlen ? POLLOUT : 0);
			pfd[n++] = (struct pollfd){ .fd = k->fd, .events = ev };
		}
		int hw = vl_host_pollfds(h, pfd + n, maxp - n, &timeout);
		if (poll(pfd, (nfds_t)(n + hw), timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			stop = 1;
		for (int i = 0; i < nc; i++) {
			struct conn *k = s->c[i];
			short re = pfd[2 + i].revents;
			if (re & POLLOUT)
				conn_flush(k);
			if (re & (POLLIN | POLLHUP | POLLERR))
				conn_read(k);
		}
		vl_host_events(h, pfd + n, hw);
		for (int i = s->n - 1; i >= 0; i--)
			if (s->c[i]->dead && !s->c[i]->outlen)
				conn_close(s, i);
			else if (s->c[i]->dead && s->c[i]->outlen)
				s->c[i]->outlen = 0;       /* the peer is gone: drop what it missed */
		if (pfd[1].revents & POLLIN)
			for (int fd; s->n < MAX_CONNS &&
				     (fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0;) {
				struct conn *k = calloc(1, sizeof *k);
				if (!k) {
					close(fd);
					break;
				}
				k->fd = fd;
				k->h = h;
				s->c[s->n++] = k;
			}
	}
	/* let what is in flight finish (for up to 5 s), so that clients get their answers */
	for (double end = vl_now() + 5; vl_host_busy(h) && vl_now() < end;) {
		int timeout = 1000, hw = vl_host_pollfds(h, pfd, maxp, &timeout);
		if (poll(pfd, (nfds_t)hw, timeout) < 0 && errno != EINTR)
			break;
		vl_host_events(h, pfd, hw);
	}
	while (s->n)
		conn_close(s, s->n - 1);
	vl_host_set_atfork(h, NULL, NULL);
	free(pfd);
	free(s);
	return 0;
}
