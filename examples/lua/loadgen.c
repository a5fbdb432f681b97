/*
 * loadgen.c - the built-in load generator: it connects to the socket like
 * any client and keeps `depth` requests in flight on each of `conns`
 * connections (pipelined), drawn from a mix over the host's tenants by what
 * each one is:
 *   counter*   "incr"                              -> OK <new count>
 *   wordfreq*  8-24 words from a 64-word vocabulary -> OK <summary>
 *   memhog*    "64" (KiB)                           -> OK
 *              1 in 8 (vl_mix.overlimit): "100000" (~100 MB, far over its limit)
 *                                                   -> ERR ... not enough memory
 *   other      "ping"                               -> any reply
 * Every reply is checked against that (a connection's replies come in the
 * order of its lines); the counts, the exact p50/p99 of the round trips and
 * the successful increments of the tenant "counter" come back in struct
 * vl_lg_result.
 */
#include "vmclua.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const vocab[64] = {
	"the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on",
	"are", "as", "with", "his", "they", "at", "be", "this", "have", "from", "or", "one",
	"had", "by", "word", "but", "not", "what", "all", "were", "we", "when", "your", "can",
	"said", "there", "use", "an", "each", "which", "she", "do", "how", "their", "if",
	"will", "up", "other", "about", "out", "many", "then", "them", "these", "so", "some",
	"her", "would", "make", "like",
};

enum { EXP_ANY, EXP_OK, EXP_MEMERR };

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

int vl_mix_from_host(struct vl_mix *m, struct vl_host *h)
{
	static const struct { const char *prefix; int kind; } kinds[] = {
		{ "counter", VL_K_COUNTER }, { "wordfreq", VL_K_WORDS }, { "memhog", VL_K_MEMHOG },
	};
	struct vl_tenant_info ti;
	m->n = 0;
	m->overlimit = 8;
	m->sequential = 0;
	if (!(m->t = calloc((size_t)vl_host_ntenants(h) + 1, sizeof *m->t)))
		return -1;
	for (int i = 0; i < vl_host_ntenants(h); i++) {
		if (vl_host_tenant(h, i, &ti) || ti.state != VL_T_READY)
			continue;
		snprintf(m->t[m->n].name, sizeof m->t[0].name, "%s", ti.name);
		m->t[m->n].kind = VL_K_OTHER;
		for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
			if (!strncmp(ti.name, kinds[k].prefix, strlen(kinds[k].prefix)))
				m->t[m->n].kind = kinds[k].kind;
		m->n++;
	}
	return 0;
}

void vl_mix_free(struct vl_mix *m)
{
	free(m->t);
	m->t = NULL;
	m->n = 0;
}

/* The generator's state: its random numbers, and the lines made so far. */
struct gen { uint64_t rng, seq; };

/* One request line (with LF) for a tenant of the mix: the next one in turn
 * (m->sequential), or one at random. */
static size_t make_line(const struct vl_mix *m, struct gen *g, char *buf, size_t cap, int *ti,
			int *expect)
{
	uint64_t *rng = &g->rng;
	int t = (int)((m->sequential ? g->seq++ : rnd(rng)) % (uint64_t)m->n), n;
	*ti = t;
	switch (m->t[t].kind) {
	case VL_K_COUNTER:
		*expect = EXP_OK;
		n = snprintf(buf, cap, "%s incr\n", m->t[t].name);
		break;
	case VL_K_WORDS: {
		int words = 8 + (int)(rnd(rng) % 17);
		*expect = EXP_OK;
		n = snprintf(buf, cap, "%s", m->t[t].name);
		for (int i = 0; i < words; i++)
			n += snprintf(buf + n, cap - (size_t)n, " %s", vocab[rnd(rng) % 64]);
		n += snprintf(buf + n, cap - (size_t)n, "\n");
		break;
	}
	case VL_K_MEMHOG:
		*expect = m->overlimit && rnd(rng) % (uint64_t)m->overlimit == 0 ? EXP_MEMERR : EXP_OK;
		n = snprintf(buf, cap, "%s %s\n", m->t[t].name, *expect == EXP_OK ? "64" : "100000");
		break;
	default:
		*expect = EXP_ANY;
		n = snprintf(buf, cap, "%s ping\n", m->t[t].name);
	}
	return (size_t)n;
}

#define MAX_DEPTH 64

struct inflight { int ti, expect; uint64_t t0; char line[512]; };

struct lconn {
	int      fd, head, count;        /* in flight: ring[head .. head + count) */
	struct inflight ring[MAX_DEPTH];
	size_t   inlen;
	char     in[VL_LINE_MAX + 8];
};

static int send_next(const struct vl_mix *m, struct gen *g, struct lconn *k)
{
	struct inflight *f = &k->ring[(k->head + k->count) % MAX_DEPTH];
	size_t n = make_line(m, g, f->line, sizeof f->line, &f->ti, &f->expect);
	f->t0 = vl_now_ns();
	k->count++;
	for (size_t off = 0; off < n;) {
		ssize_t w = send(k->fd, f->line + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

static void check(const struct vl_mix *m, const struct inflight *f, const char *reply,
		  size_t len, struct vl_lg_result *res)
{
	int bad = 0;
	if (len >= 3 && !memcmp(reply, "OK ", 3)) {
		res->ok++;
		bad = f->expect == EXP_MEMERR;
		if (!bad && !strcmp(m->t[f->ti].name, "counter"))
			res->counter_incr++;
	} else {
		res->err++;
		int mem = memmem(reply, len, "not enough memory", 17) != NULL;
		if (f->expect == EXP_MEMERR && mem)
			res->expected_err++;
		bad = f->expect != EXP_ANY && !(f->expect == EXP_MEMERR && mem);
	}
	if (bad && !res->unexpected++) {
		size_t l = strcspn(f->line, "\n");
		snprintf(res->first_unexpected, sizeof res->first_unexpected, "'%.*s' -> '%.*s'",
			 (int)(l > 80 ? 80 : l), f->line, (int)(len > 120 ? 120 : len), reply);
	}
}

/* Take the replies in k->in; each one frees a slot that a new request fills. */
static int replies(const struct vl_mix *m, struct gen *g, struct lconn *k, int requests,
		   int *sent, int *done, double *lat, struct vl_lg_result *res)
{
	char *nl;
	while ((nl = memchr(k->in, '\n', k->inlen))) {
		size_t len = (size_t)(nl - k->in);
		if (!k->count)
			return -1;               /* a reply to nothing */
		struct inflight *f = &k->ring[k->head];
		lat[(*done)++] = (double)(vl_now_ns() - f->t0) / 1000.0;
		check(m, f, k->in, len, res);
		k->head = (k->head + 1) % MAX_DEPTH;
		k->count--;
		memmove(k->in, nl + 1, k->inlen - len - 1);
		k->inlen -= len + 1;
		if (*sent < requests) {
			if (send_next(m, g, k))
				return -1;
			(*sent)++;
		}
	}
	return k->inlen == sizeof k->in ? -1 : 0;
}

int vl_loadgen(const char *path, const struct vl_mix *m, int requests, int conns, int depth,
	       uint64_t seed, struct vl_lg_result *res)
{
	struct gen g = { seed ? seed : 0x9e3779b97f4a7c15ull, 0 };
	struct lconn *c = calloc((size_t)conns, sizeof *c);
	struct pollfd *pfd = calloc((size_t)conns, sizeof *pfd);
	double *lat = malloc((size_t)requests * sizeof *lat);
	int sent = 0, done = 0, rc = -1;

	memset(res, 0, sizeof *res);
	if (!c || !pfd || !lat || m->n < 1 || conns < 1 || depth < 1 || depth > MAX_DEPTH)
		goto out;
	for (int i = 0; i < conns; i++)
		c[i].fd = -1;
	for (int i = 0; i < conns; i++)
		if ((c[i].fd = vl_connect(path)) < 0) {
			fprintf(stderr, "vmc-lua loadgen: %s: %s\n", path, strerror(errno));
			goto out;
		}
	double t0 = vl_now();
	for (int d = 0; d < depth; d++)
		for (int i = 0; i < conns && sent < requests; i++, sent++)
			if (send_next(m, &g, &c[i]))
				goto out;
	while (done < sent) {
		for (int i = 0; i < conns; i++)
			pfd[i] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
		if (poll(pfd, (nfds_t)conns, -1) < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		for (int i = 0; i < conns; i++) {
			struct lconn *k = &c[i];
			if (!pfd[i].revents)
				continue;
			ssize_t r = recv(k->fd, k->in + k->inlen, sizeof k->in - k->inlen, 0);
			if (r <= 0) {
				fprintf(stderr, "vmc-lua loadgen: the server closed a connection\n");
				goto out;
			}
			k->inlen += (size_t)r;
			if (replies(m, &g, k, requests, &sent, &done, lat, res))
				goto out;
		}
	}
	res->secs = vl_now() - t0;
	res->sent = (uint64_t)sent;
	res->p50_us = vl_quantile(lat, (size_t)done, 0.5);
	res->p99_us = vl_quantile(lat, (size_t)done, 0.99);
	rc = 0;
out:
	for (int i = 0; c && i < conns; i++)
		if (c[i].fd >= 0)
			close(c[i].fd);
	free(c);
	free(pfd);
	free(lat);
	return rc;
}

pid_t vl_loadgen_spawn(const char *path, const struct vl_mix *m, int requests, int conns,
		       int depth, uint64_t seed, int *stopfd)
{
	int p[2];
	if (pipe(p))
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* the result travels back through the pipe, then the hang-up
		 * tells the server to stop */
		struct vl_lg_result r;
		close(p[0]);
		memset(&r, 0, sizeof r);
		int rc = vl_loadgen(path, m, requests, conns, depth, seed, &r);
		_exit(write(p[1], &r, sizeof r) != (ssize_t)sizeof r || rc ? 1 : 0);
	}
	close(p[1]);
	*stopfd = p[0];
	return pid;
}

int vl_loadgen_wait(pid_t pid, int stopfd, struct vl_lg_result *res)
{
	size_t got = 0;
	int st = 0;

	memset(res, 0, sizeof *res);
	while (got < sizeof *res) {
		ssize_t r = read(stopfd, (char *)res + got, sizeof *res - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(stopfd);
	waitpid(pid, &st, 0);
	return got == sizeof *res && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}
