/*
 * test_soak.c - the service under a mixed load for a few seconds
 * (VMC_SOAK_SECS, default 3; ctest lua_soak).
 *
 * A host with 2 workers serves tenants from a directory over a real Unix
 * socket.  8 client processes each keep one connection, pipelining rounds
 * of up to 40 lines, and every few rounds use a fresh connection that they
 * half-close after writing (shutdown SHUT_WR, as `nc -N` does) and read to
 * its EOF.  The lines mix:
 *   - ordinary requests to 4 counting tenants (the count must grow on each
 *     connection; the reply echoes the line's token),
 *   - malformed lines: empty, NUL, a control byte, 20000 bytes, an unknown
 *     tenant (each must get its exact ERR),
 *   - runaway loops (ERR CPU budget exceeded), memory bombs (ERR not enough
 *     memory) and the ordinary requests of the same tenants after them,
 *   - requests to a tenant whose script a 9th process replaces on disk and
 *     reloads through the control socket every 150 ms while it serves: the
 *     version in a reply never goes back on a connection, and its count (the
 *     state, kept by the reloads) grows,
 *   - one request that hangs inside a C function, for the watchdog; the
 *     tenant is recovered and serves the same client's next requests.
 * Every reply is checked in order.  The test passes with 0 lost and 0 wrong
 * replies, every client done, the host alive (each tenant answers, the
 * workers are the ones that were started, but for the one the watchdog
 * killed), and vmc_check clean.
 */
#include "test_util.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLIENTS  8
#define ROUND    40
#define BUDGET   2000000

static const char count_lua[] =
	"n = n or 0\n"
	"function handle(b)\n"
	"  n = n + 1\n"
	"  if b == 'hang' then string.find(string.rep('a', 40), string.rep('a-', 12) .. 'b') end\n"
	"  return b .. ' ' .. n\n"
	"end\n";

static const char bomb_lua[] =
	"-- vmc-lua: limit = 4M\n"
	"local KiB = string.rep('x', 1024)\n"
	"function handle(b)\n"
	"  local t = {}\n"
	"  for i = 1, (b == 'big' and 100000 or 64) // 64 do t[i] = KiB:rep(64) .. i end\n"
	"  return 'held ' .. b\n"
	"end\n";

static const char spin_lua[] =
	"function handle(b) if b == 'loop' then while true do end end return b end\n";

static const char swap_fmt[] =
	"n = n or 0\n"
	"function handle(b) n = n + 1 return 'v%d ' .. b .. ' ' .. n end\n";

enum { E_COUNT, E_EXACT, E_SWAP };

struct expect {
	int  kind, tenant;               /* E_COUNT: which counter (5: swap) */
	char text[96];                   /* E_COUNT/E_SWAP: the token; else the reply */
};

struct conn_state { long last[6]; long version; };

struct result { uint64_t lines, replies, wrong; char first[256]; };

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Append one random line to buf and what its reply must be to *e. */
static size_t make_line(uint64_t *rng, int c, uint64_t seq, char *buf, struct expect *e)
{
	static const char *const counters[] = { "acct0", "acct1", "acct2", "acct3" };
	int k = (int)(rnd(rng) % 100);
	memset(e, 0, sizeof *e);
	if (k < 50) {
		e->kind = E_COUNT;
		e->tenant = (int)(rnd(rng) % 4);
		snprintf(e->text, sizeof e->text, "c%d-%llu", c, (unsigned long long)seq);
		return (size_t)sprintf(buf, "%s %s\n", counters[e->tenant], e->text);
	}
	if (k < 62) {
		e->kind = E_SWAP;
		e->tenant = 5;
		snprintf(e->text, sizeof e->text, "s%d-%llu", c, (unsigned long long)seq);
		return (size_t)sprintf(buf, "swap %s\n", e->text);
	}
	e->kind = E_EXACT;
	static const struct { const char *line; size_t len; const char *reply; } fixed[] = {
		{ "spin loop\n", 10, "ERR CPU budget exceeded (2000000 Lua instructions per request)" },
		{ "spin ok\n", 8, "OK ok" },
		{ "bomb big\n", 9, "ERR not enough memory" },
		{ "bomb small\n", 11, "OK held small" },
		{ "\n", 1, "ERR empty line: send TENANT SP BODY" },
		{ "\0 x\n", 4, "ERR byte 0x00 at offset 0 is not text: a request is a line TENANT SP BODY" },
		{ "acct0 a\033b\n", 10,
		  "ERR byte 0x1b at offset 7 is not text: a request is a line TENANT SP BODY" },
		{ "nobody x\n", 9, "ERR unknown tenant 'nobody'" },
		{ NULL, 20001, "ERR line longer than 16384 bytes (dropped)" },
	};
	int f = (int)(rnd(rng) % (sizeof fixed / sizeof fixed[0]));
	snprintf(e->text, sizeof e->text, "%s", fixed[f].reply);
	if (fixed[f].line)
		memcpy(buf, fixed[f].line, fixed[f].len);
	else
		memset(buf, 'z', fixed[f].len - 1), buf[fixed[f].len - 1] = '\n';
	return fixed[f].len;
}

static void wrong(struct result *r, const struct expect *e, const char *got, size_t len)
{
	if (!r->wrong++)
		snprintf(r->first, sizeof r->first, "wanted '%s' (kind %d), got '%.*s'", e->text,
			 e->kind, (int)(len > 120 ? 120 : len), got);
}

/* Check reply line got[0..len) against e. */
static void check(struct conn_state *cs, const struct expect *e, const char *got, size_t len,
		  struct result *r)
{
	char tok[96];
	long n = 0, v = 0;
	if (e->kind == E_EXACT) {
		if (len != strlen(e->text) || memcmp(got, e->text, len))
			wrong(r, e, got, len);
		return;
	}
	if (e->kind == E_SWAP) {
		if (len < 5 || sscanf(got, "OK v%ld %95s %ld", &v, tok, &n) != 3 || strcmp(tok, e->text) ||
		    v < cs->version || n <= cs->last[5])
			wrong(r, e, got, len);
		cs->version = v;
		cs->last[5] = n;
		return;
	}
	if (sscanf(got, "OK %95s %ld", tok, &n) != 2 || strcmp(tok, e->text) ||
	    n <= cs->last[e->tenant])
		wrong(r, e, got, len);
	cs->last[e->tenant] = n;
}

/* One round on fd: `count` lines, and their replies checked.  half: shut
 * the writing side down after the lines and read to EOF. */
static void round_trip(int fd, int half, struct conn_state *cs, const char *out, size_t olen,
		       const struct expect *e, int count, struct result *r)
{
	static char in[1 << 16];
	size_t n = tu_exchange(fd, out, olen, half, half ? (size_t)-1 : (size_t)count, in, sizeof in);
	const char *p = in;
	r->lines += (uint64_t)count;
	for (int i = 0; i < count; i++) {
		const char *nl = memchr(p, '\n', (size_t)(in + n - p));
		if (!nl)
			break;                   /* the rest are lost */
		check(cs, &e[i], p, (size_t)(nl - p), r);
		r->replies++;
		p = nl + 1;
	}
	if (p != in + n)
		r->wrong++;                      /* more replies than lines */
}

static int client(const char *path, int c, double end, int wfd)
{
	static char out[ROUND * 20100];
	static struct expect e[ROUND];
	struct conn_state keep = { { 0 }, 0 }, fresh;
	struct result r = { 0 };
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(c + 1), seq = 0;
	int fd = vl_connect(path);

	for (int round = 0; fd >= 0 && vl_now() < end; round++) {
		int half = round % 4 == 3, count = 1 + (int)(rnd(&rng) % ROUND);
		size_t olen = 0;
		if (c == 0 && round == 1) {              /* the one hang, for the watchdog */
			static char in[512];
			static const char hang[] = "hang hang\n";
			size_t n = tu_exchange(fd, hang, sizeof hang - 1, 0, 1, in, sizeof in);
			r.lines++;
			r.replies += n > 0;
			if (!strstr(in, "ERR worker") || !strstr(in, "watchdog"))
				wrong(&r, &(struct expect){ E_EXACT, 4, "ERR worker ... (the watchdog)" },
				      in, n);
			continue;
		}
		for (int i = 0; i < count; i++)
			olen += make_line(&rng, c, seq++, out + olen, &e[i]);
		if (!half) {
			round_trip(fd, 0, &keep, out, olen, e, count, &r);
			continue;
		}
		int hfd = vl_connect(path);
		fresh = keep;                            /* the counts only grow */
		if (hfd < 0) {
			r.wrong++;
			break;
		}
		round_trip(hfd, 1, &fresh, out, olen, e, count, &r);
		close(hfd);
		keep = fresh;
	}
	if (fd >= 0)
		close(fd);
	if (fd < 0)
		r.wrong++;
	return write(wfd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1;
}

static int write_swap(const char *dir, int v)
{
	char tmp[128], path[128];
	snprintf(tmp, sizeof tmp, "%s/.swap.tmp", dir);
	snprintf(path, sizeof path, "%s/swap.lua", dir);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, swap_fmt, v) < 0 || fclose(f))
		return -1;
	return rename(tmp, path);
}

/* The 9th process: replace swap.lua and reload it every 150 ms. */
static int reloader(const char *ctl, const char *dir, double end, int wfd)
{
	static char got[1 << 16];
	struct result r = { 0 };
	for (int v = 2; vl_now() < end; v++) {
		usleep(150000);
		int fd = vl_connect(ctl);
		if (fd < 0 || write_swap(dir, v)) {
			r.wrong++;
			break;
		}
		static const char cmd[] = "reload swap\nstats --json\n";
		tu_exchange(fd, cmd, sizeof cmd - 1, 0, 2, got, sizeof got);
		close(fd);
		r.lines += 2;
		if (!strncmp(got, "OK tenant 'swap' reloaded: its state kept", 41) &&
		    strstr(got, "\n{\"container\":"))
			r.replies += 2;
		else if (!r.wrong++)
			snprintf(r.first, sizeof r.first, "reload: '%.200s'", got);
	}
	return write(wfd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1;
}

static void write_tenant(const char *dir, const char *name, const char *src)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s.lua", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f && fputs(src, f) >= 0 && !fclose(f), "writing %s", path);
}

static void t_soak(void)
{
	const char *env = getenv("VMC_SOAK_SECS");
	double secs = env && atof(env) > 0 ? atof(env) : 3;
	char dir[64], path[96], ctl[100], err[512];
	int p[2], res[2];
	struct vl_host_opts o;

	snprintf(dir, sizeof dir, "/tmp/vmc-lua-soak-%d", (int)getpid());
	CHECK(!mkdir(dir, 0700), "mkdir %s: %s", dir, strerror(errno));
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof name, "acct%d", i);
		write_tenant(dir, name, count_lua);
	}
	write_tenant(dir, "hang", count_lua);
	write_tenant(dir, "bomb", bomb_lua);
	write_tenant(dir, "spin", spin_lua);
	CHECK(!write_swap(dir, 1), "swap.lua");
	tu_opts(&o, 2, 1);
	o.pool_size = 128 * MiB;
	o.budget = BUDGET;
	o.timeout_ms = 2000;
	struct vl_host *h = tu_host_opts(&o);
	CHECK(vl_host_add_dir(h, dir, err, sizeof err) == 8, "%s", err);
	pid_t w0 = vl_host_worker_pid(h, 0), w1 = vl_host_worker_pid(h, 1);
	snprintf(path, sizeof path, "%s.sock", dir);
	snprintf(ctl, sizeof ctl, "%s.ctl", path);
	int lfd = vl_listen(path, err, sizeof err), cfd = vl_listen(ctl, err, sizeof err);
	CHECK(lfd >= 0 && cfd >= 0, "%s", err);
	CHECK(!pipe(p) && !pipe(res), "pipe");
	double end = vl_now() + secs;
	pid_t pid[CLIENTS + 1];
	fflush(NULL);
	for (int c = 0; c <= CLIENTS; c++) {
		if ((pid[c] = fork()) == 0) {
			close(p[0]);
			close(res[0]);
			_exit(c < CLIENTS ? client(path, c, end, res[1]) : reloader(ctl, dir, end, res[1]));
		}
		CHECK(pid[c] > 0, "fork: %s", strerror(errno));
	}
	close(p[1]);
	close(res[1]);
	vl_serve(h, lfd, cfd, p[0]);      /* until every client has hung up */
	close(p[0]);

	struct result total = { 0 }, r;
	int failed = 0;
	for (int c = 0; c <= CLIENTS; c++) {
		int st;
		waitpid(pid[c], &st, 0);
		failed |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	for (int c = 0; c <= CLIENTS && read(res[0], &r, sizeof r) == (ssize_t)sizeof r; c++) {
		total.lines += r.lines;
		total.replies += r.replies;
		total.wrong += r.wrong;
		if (r.wrong && !*total.first)
			snprintf(total.first, sizeof total.first, "%s", r.first);
	}
	close(res[0]);
	CHECK(!failed, "a client failed");
	CHECK(total.lines == total.replies && !total.wrong,
	      "%llu lines, %llu replies (%llu lost), %llu wrong; first: %s",
	      (unsigned long long)total.lines, (unsigned long long)total.replies,
	      (unsigned long long)(total.lines - total.replies), (unsigned long long)total.wrong,
	      total.first);

	/* the host is alive: every tenant answers; the workers are those we
	 * started but for the one the watchdog killed */
	struct vl_tenant_info ti;
	uint64_t budget = 0, nomem = 0, served = 0;
	for (int i = 0; i < vl_host_ntenants(h); i++) {
		vl_host_tenant(h, i, &ti);
		CHECK(ti.state == VL_T_READY, "tenant %s is %d: %s", ti.name, ti.state, ti.msg);
		tu_call(h, ti.name, "ok", -1, 0, NULL, NULL);
		budget += ti.budget_kills;
		nomem += ti.nomem;
		served += ti.served;
	}
	int same = (vl_host_worker_pid(h, 0) == w0) + (vl_host_worker_pid(h, 1) == w1);
	CHECK(same == 1, "%d of the 2 first workers still serve (wanted 1)", same);
	tu_info(h, "swap", &ti);
	uint64_t reloads = ti.reloads;
	CHECK(reloads > 1 && budget && nomem, "reloads %llu, budget kills %llu, nomem %llu",
	      (unsigned long long)reloads, (unsigned long long)budget, (unsigned long long)nomem);
	tu_info(h, "hang", &ti);
	CHECK(ti.orphans == 1 && ti.recoveries == 1, "hang: %llu orphans, %llu recoveries",
	      (unsigned long long)ti.orphans, (unsigned long long)ti.recoveries);
	vmc_check_report_t rep;
	CHECK(vmc_check(vl_host_vmc(h), &rep) == 0, "vmc_check: %s", rep.first);
	vl_host_free(h);
	close(lfd);
	close(cfd);
	unlink(path);
	unlink(ctl);
	static const char *const files[] = { "acct0", "acct1", "acct2", "acct3", "hang", "bomb",
					     "spin", "swap" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s.lua", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	printf("soak: %.0f s, %d clients: %llu lines, every one answered as it should (%llu "
	       "requests served, %llu CPU-budget kills, %llu memory errors, %llu reloads of a "
	       "serving tenant, 1 watchdog kill recovered); vmc_check clean\n", secs, CLIENTS,
	       (unsigned long long)total.lines, (unsigned long long)served,
	       (unsigned long long)budget, (unsigned long long)nomem, (unsigned long long)reloads);
}

int main(int argc, char **argv)
{
	static const struct tu_test tests[] = { { "soak", t_soak } };
	signal(SIGPIPE, SIG_IGN);
	return tu_main(argc, argv, tests, 1);
}
