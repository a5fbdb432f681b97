/*
 * proto.c - the line protocol server on Unix stream sockets.
 *
 *   request:  TENANT SP BODY LF      (BODY may be empty; CR before LF is dropped)
 *   reply:    "OK " TEXT LF          handle(BODY) returned TEXT (tostring'ed)
 *             "ERR " MESSAGE LF      a Lua error, the CPU budget, the memory limit,
 *                                    an unknown or broken tenant, a worker that
 *                                    died, a malformed line
 *
 * Every line gets exactly one reply, and a connection's replies come in the
 * order of its lines, however its requests are spread over tenants and
 * workers: a connection keeps a queue of replies-to-be, one per line, and
 * writes each as soon as the ones before it are written.  A client may
 * pipeline up to CONN_DEPTH lines before the server stops reading from it.
 * Malformed lines are answered in their place: an empty line, a byte that
 * is not text (NUL and other control characters but TAB), a line longer
 * than VL_LINE_MAX (answered once, the rest of it dropped).
 *
 * A client that half-closes (shutdown(SHUT_WR), as `nc -N` and socat do
 * after their input) still gets every reply it is owed: EOF only ends the
 * reading (a last line without LF counts as a line); the connection closes
 * once the last reply is written.
 *
 * The control socket speaks the same way, but its lines are commands
 * (control.c) and their replies may span several lines.  The server is the
 * dispatcher's event loop: one poll() over the listening sockets, the
 * connections, the workers' and jobs' pipes (vl_host_pollfds) and the stop fd.
 */
#include "vmclua.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS  1024
#define CONN_DEPTH 64            /* lines of one connection being answered at once */
#define OUT_MAX    (1 << 20)     /* replies waiting for a slow reader before we stop reading */

struct pend {                    /* the reply to one line, in line order */
	struct pend *next;
	struct conn *k;
	int          done;
	size_t       len;
	char        *text;           /* the bytes to write, LF included */
};

struct conn {
	struct vl_host *h;
	int    fd, ctl;
	int    eof, dead, skipping, pumping;
	struct pend *ph, **ptail;        /* replies to come, in line order */
	int    npend;
	size_t inlen, outlen, outcap;
	char  *out;
	char   in[VL_LINE_MAX + 2];
};

struct server {
	struct vl_host *h;
	int lfd, cfd;
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

static void conn_free(struct conn *k)
{
	free(k->out);
	free(k);
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

/* Move the replies that are due (all before them written) to the output. */
static void conn_emit(struct conn *k)
{
	while (k->ph && k->ph->done) {
		struct pend *p = k->ph;
		if (!k->dead && k->outlen + p->len > k->outcap) {
			size_t cap = 2 * (k->outlen + p->len);
			char *o = realloc(k->out, cap);
			if (o) {
				k->out = o;
				k->outcap = cap;
			} else {
				k->dead = 1;
			}
		}
		if (!k->dead) {
			memcpy(k->out + k->outlen, p->text, p->len);
			k->outlen += p->len;
		}
		if (!(k->ph = p->next))
			k->ptail = &k->ph;
		k->npend--;
		free(p->text);
		free(p);
	}
	if (k->fd >= 0)
		conn_flush(k);
}

static void conn_pump(struct conn *k);

/* Reply p is ready: text[0..len) without the final LF. */
static void pend_done(struct pend *p, const char *head, const char *text, size_t len)
{
	struct conn *k = p->k;
	size_t hl = strlen(head);
	if ((p->text = malloc(hl + len + 1))) {
		memcpy(p->text, head, hl);
		memcpy(p->text + hl, text, len);
		p->text[hl + len] = '\n';
		p->len = hl + len + 1;
	}
	p->done = 1;
	conn_emit(k);
	if (k->fd < 0 && !k->npend)           /* the client left while its requests ran */
		conn_free(k);
	else if (k->fd >= 0 && !k->pumping)
		conn_pump(k);
}

static void on_reply(void *arg, const struct vl_reply *r, int worker)
{
	(void)worker;
	pend_done(arg, r->err ? "ERR " : "OK ", r->text, r->len);
}

/* control replies are text as it is, LF-separated lines, no prefix */
static void on_control(void *arg, const char *text, size_t len)
{
	pend_done(arg, "", text, len && text[len - 1] == '\n' ? len - 1 : len);
}

static void reject(struct pend *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reject(struct pend *p, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	pend_done(p, "ERR ", buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* One line (without LF and CR): a request, or an error in its place. */
static void conn_line(struct conn *k, const char *line, size_t len, int too_long)
{
	struct pend *p = calloc(1, sizeof *p);
	if (!p) {
		k->dead = 1;
		return;
	}
	p->k = k;
	*k->ptail = p;
	k->ptail = &p->next;
	k->npend++;
	if (too_long) {
		reject(p, "line longer than %d bytes (dropped)", VL_LINE_MAX);
		return;
	}
	if (!len) {
		reject(p, "empty line: %s", k->ctl ? "send a command (`help` lists them)"
						   : "send TENANT SP BODY");
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			reject(p, "byte 0x%02x at offset %zu is not text: a request is a line "
			       "TENANT SP BODY", (unsigned)ch, i);
			return;
		}
	}
	if (k->ctl) {
		vl_control(k->h, line, len, on_control, p);
		return;
	}
	const char *sp = memchr(line, ' ', len);
	size_t tl = sp ? (size_t)(sp - line) : len;
	const char *body = sp ? sp + 1 : line + len;
	vl_host_submit(k->h, line, tl, body, len - (size_t)(body - line), -1, on_reply, p);
}

/* Answer the buffered lines while the connection may have more in flight. */
static void conn_pump(struct conn *k)
{
	k->pumping = 1;
	while (!k->dead && k->npend < CONN_DEPTH && k->outlen < OUT_MAX) {
		char *nl = memchr(k->in, '\n', k->inlen);
		size_t len = nl ? (size_t)(nl - k->in) : k->inlen, used = nl ? len + 1 : len;
		int skip = k->skipping;
		if (nl) {                        /* a line */
			k->skipping = 0;
			if (len && k->in[len - 1] == '\r')
				len--;
			if (!skip)
				conn_line(k, k->in, len, 0);
		} else if (len > VL_LINE_MAX) {  /* too long: answer once, drop up to its LF */
			k->skipping = 1;
			if (!skip)
				conn_line(k, k->in, len, 1);
		} else if (k->eof && len) {      /* the last line, without LF */
			k->skipping = 0;
			if (!skip)
				conn_line(k, k->in, len, 0);
		} else {
			break;
		}
		memmove(k->in, k->in + used, k->inlen - used);
		k->inlen -= used;
	}
	k->pumping = 0;
}

static void conn_read(struct conn *k)
{
	while (!k->eof && !k->dead && k->inlen < sizeof k->in) {
		ssize_t r = recv(k->fd, k->in + k->inlen, sizeof k->in - k->inlen, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r < 0)
			k->dead = 1;
		else if (r == 0)
			k->eof = 1;              /* half-closed: answer what came, then close */
		else
			k->inlen += (size_t)r;
		conn_pump(k);
		if (k->npend >= CONN_DEPTH)
			break;
	}
	conn_pump(k);
}

static int conn_finished(const struct conn *k)
{
	return k->dead || (k->eof && !k->inlen && !k->npend && !k->outlen);
}

static void conn_close(struct server *s, int i)
{
	struct conn *k = s->c[i];
	close(k->fd);
	k->fd = -1;
	k->inlen = 0;
	if (!k->npend)                   /* else the last reply frees it */
		conn_free(k);
	s->c[i] = s->c[--s->n];
}

static void close_in_child(void *arg)
{
	struct server *s = arg;
	close(s->lfd);
	if (s->cfd >= 0)
		close(s->cfd);
	for (int i = 0; i < s->n; i++)
		close(s->c[i]->fd);
}

static void accept_all(struct server *s, int lfd, int ctl)
{
	for (int fd; s->n < MAX_CONNS && (fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0;) {
		struct conn *k = calloc(1, sizeof *k);
		if (!k) {
			close(fd);
			break;
		}
		k->fd = fd;
		k->h = s->h;
		k->ctl = ctl;
		k->ptail = &k->ph;
		s->c[s->n++] = k;
	}
}

int vl_serve(struct vl_host *h, int lfd, int cfd, int stopfd)
{
	int maxp = MAX_CONNS + VL_MAX_WORKERS + 3, stop = 0;
	struct server *s = calloc(1, sizeof *s);
	struct pollfd *pfd = NULL;
	double deadline = 0;

	if (!s)
		return -1;
	s->h = h;
	s->lfd = lfd;
	s->cfd = cfd;
	vl_host_set_atfork(h, close_in_child, s);
	while (!stop || ((s->n || vl_host_busy(h)) && vl_now() < deadline)) {
		int n = 3, timeout = stop ? 100 : -1, nc = s->n;
		int need = n + nc + vl_host_nworkers(h) + 8;
		if (need > maxp || !pfd) {
			free(pfd);
			maxp = need > maxp ? need : maxp;
			if (!(pfd = calloc((size_t)maxp, sizeof *pfd)))
				break;
		}
		pfd[0] = (struct pollfd){ .fd = stop ? -1 : stopfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = stop || s->n == MAX_CONNS ? -1 : lfd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = stop || s->n == MAX_CONNS ? -1 : cfd, .events = POLLIN };
		for (int i = 0; i < nc; i++) {
			struct conn *k = s->c[i];
			short ev = (!k->eof && k->inlen < sizeof k->in && k->npend < CONN_DEPTH &&
				    k->outlen < OUT_MAX ? POLLIN : 0) | (k->outlen ? POLLOUT : 0);
			pfd[n++] = (struct pollfd){ .fd = ev ? k->fd : -1, .events = ev };
		}
		int hw = vl_host_pollfds(h, pfd + n, maxp - n, &timeout);
		if (poll(pfd, (nfds_t)(n + hw), timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents && !stop) {
			stop = 1;                /* answer what is in flight, for up to 5 s */
			deadline = vl_now() + 5;
			for (int i = 0; i < s->n; i++) {
				s->c[i]->eof = 1;
				s->c[i]->inlen = 0;
			}
		}
		for (int i = 0; i < nc; i++) {
			struct conn *k = s->c[i];
			short re = pfd[3 + i].revents;
			if (re & POLLOUT)
				conn_flush(k);
			if (re & (POLLIN | POLLHUP | POLLERR))
				conn_read(k);
		}
		vl_host_events(h, pfd + n, hw);
		for (int i = s->n - 1; i >= 0; i--)
			if (conn_finished(s->c[i]))
				conn_close(s, i);
		if (pfd[1].revents & POLLIN)
			accept_all(s, lfd, 0);
		if (pfd[2].revents & POLLIN)
			accept_all(s, cfd, 1);
	}
	while (s->n)
		conn_close(s, s->n - 1);
	vl_host_set_atfork(h, NULL, NULL);
	free(pfd);
	free(s);
	return 0;
}
