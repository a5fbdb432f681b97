/*
 * test_lua.c - vmc-lua's tests (ctest runs each as lua_NAME):
 *   persist   a global set by a request in worker 0 is read by a request in worker 1
 *   parallel  100 tenants served at once over 16 connections, none sees another's state
 *   clone     a clone is independent of its template after writes (both ways)
 *   memlimit  exhausting a tenant's memory limit is a Lua error; the tenant recovers
 *   error     Lua errors are ERR replies; the worker and other tenants carry on;
 *             the sandbox has no io, os, debug, require, dofile, loadfile, bytecode
 *   kill9     kill -9 of a worker inside a request: its tenant is orphaned
 *             (VMC_VM_ORPHANED) and reported, the others keep being served; the
 *             watchdog (--timeout) does the same for a request that never ends
 *   all       every one of them
 * Public API only.
 */
#include "vmclua.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c, ...)                                                              \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #c); \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
			exit(1);                                                   \
		}                                                                  \
	} while (0)

#define MiB (1024ull * 1024)

static uint64_t pool_size = 64 * MiB;

static struct vl_host *mkhost(int workers, int iso, int timeout_ms)
{
	struct vl_host_opts o;
	char err[512];
	vl_host_opts_init(&o);
	o.private_c = 1;
	o.quiet = 1;
	o.workers = workers;
	o.isolation = iso;
	o.timeout_ms = timeout_ms;
	o.pool_size = pool_size;
	struct vl_host *h = vl_host_new(&o, err, sizeof err);
	CHECK(h, "%s", err);
	CHECK(!vl_host_start(h, err, sizeof err), "%s", err);
	return h;
}

static int add(struct vl_host *h, const char *name, const char *src, uint64_t limit)
{
	char err[512];
	int i = vl_host_add(h, name, src, strlen(src), limit, err, sizeof err);
	CHECK(i >= 0, "adding %s: %s", name, err);
	return i;
}

/* One request; checks the outcome (want: a substring, or NULL). Returns the worker. */
static int call(struct vl_host *h, const char *t, const char *body, int pin, int want_err,
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

static uint32_t vm_of(struct vl_host *h, const char *name)
{
	struct vl_tenant_info ti;
	CHECK(!vl_host_tenant(h, vl_host_find(h, name), &ti), "no tenant %s", name);
	return ti.vm;
}

/* ------------------------------------------------------------------ persist */

static const char persist_lua[] =
	"function handle(b)\n"
	"  if b:sub(1, 4) == 'set ' then v = b:sub(5) return 'stored' end\n"
	"  return tostring(v)\n"
	"end\n";

static void t_persist(void)
{
	for (int iso = 1; iso >= 0; iso--) {
		struct vl_host *h = mkhost(2, iso, 0);
		struct vl_reply r;
		add(h, "p", persist_lua, 0);
		CHECK(vl_host_worker_pid(h, 0) != vl_host_worker_pid(h, 1), "two workers");
		CHECK(call(h, "p", "set from-A", 0, 0, "stored", NULL) == 0, "ran in worker 0");
		CHECK(call(h, "p", "get", 1, 0, NULL, &r) == 1, "ran in worker 1");
		CHECK(!strcmp(r.text, "from-A"), "worker 1 read '%s'", r.text);
		CHECK(call(h, "p", "set from-B", 1, 0, "stored", NULL) == 1, "worker 1");
		CHECK(call(h, "p", "get", 0, 0, NULL, &r) == 0, "worker 0");
		CHECK(!strcmp(r.text, "from-B"), "worker 0 read '%s'", r.text);
		vmc_vm_stats_t vs;
		CHECK(!vmc_vm_stats(vl_host_vmc(h), vm_of(h, "p"), &vs) && vs.state == VMC_VM_IDLE,
		      "idle after the requests");
		vl_host_free(h);
		printf("persist (%s): state set in worker 0 read in worker 1 and back\n",
		       iso ? "strict" : "lazy");
	}
}

/* ----------------------------------------------------------------- parallel */

static const char parallel_lua[] =
	"function handle(b)\n"
	"  if not mine then mine = b end\n"
	"  if mine ~= b then return 'LEAK ' .. mine end\n"
	"  n = (n or 0) + 1\n"
	"  return mine .. ' ' .. n\n"
	"end\n";

#define NT 100
#define ROUNDS 20
#define CONNS 16

static void secret(int i, char *buf, size_t n)
{
	snprintf(buf, n, "s%03d-%08x", i, (unsigned)(i * 2654435761u));
}

/* The client: CONNS connections, each pipelines its share of lines
 * (tenant (k + r) % NT ...), then checks every reply. */
static int parallel_client(const char *path)
{
	static char out[CONNS][NT * ROUNDS / CONNS * 40 + 64], in[CONNS][NT * ROUNDS / CONNS * 40 + 64];
	size_t olen[CONNS] = { 0 }, ilen[CONNS] = { 0 };
	int fd[CONNS], lines[CONNS] = { 0 }, bad = 0;
	for (int r = 0, k = 0; r < ROUNDS; r++)
		for (int i = 0; i < NT; i++, k = (k + 1) % CONNS) {
			char s[32];
			secret(i, s, sizeof s);
			olen[k] += (size_t)sprintf(out[k] + olen[k], "t%03d %s\n", i, s);
			lines[k]++;
		}
	for (int k = 0; k < CONNS; k++) {
		if ((fd[k] = vl_connect(path)) < 0)
			return 1;
		if (send(fd[k], out[k], olen[k], MSG_NOSIGNAL) != (ssize_t)olen[k])
			return 1;
	}
	for (int k = 0; k < CONNS; k++) {
		int got = 0;
		while (got < lines[k]) {
			ssize_t n = recv(fd[k], in[k] + ilen[k], sizeof in[k] - ilen[k] - 1, 0);
			if (n <= 0)
				return 1;
			ilen[k] += (size_t)n;
			got = 0;
			for (size_t j = 0; j < ilen[k]; j++)
				got += in[k][j] == '\n';
		}
		in[k][ilen[k]] = 0;
		char *save, *line = strtok_r(in[k], "\n", &save), *o = out[k];
		for (; line; line = strtok_r(NULL, "\n", &save)) {
			char want[32];
			int i = atoi(o + 1);
			secret(i, want, sizeof want);
			o = strchr(o, '\n') + 1;
			if (strncmp(line, "OK ", 3) || strncmp(line + 3, want, strlen(want)) ||
			    line[3 + strlen(want)] != ' ') {
				if (!bad++)
					fprintf(stderr, "tenant t%03d answered '%s'\n", i, line);
			}
		}
	}
	return bad ? 1 : 0;
}

static void t_parallel(void)
{
	pool_size = 256 * MiB;     /* 100 tenants of one 2 MiB granule, 2 templates */
	struct vl_host *h = mkhost(2, 1, 0);
	pool_size = 64 * MiB;
	char err[512], path[64], name[16];
	int p[2];
	for (int i = 0; i < NT; i++) {
		snprintf(name, sizeof name, "t%03d", i);
		add(h, name, parallel_lua, 2 * MiB);
	}
	snprintf(path, sizeof path, "/tmp/vmc-lua-test-%d.sock", (int)getpid());
	int lfd = vl_listen(path, err, sizeof err);
	CHECK(lfd >= 0, "%s", err);
	CHECK(!pipe(p), "pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		_exit(parallel_client(path));
	}
	close(p[1]);
	double t0 = vl_now();
	vl_serve(h, lfd, p[0]);
	int st;
	waitpid(pid, &st, 0);
	close(lfd);
	unlink(path);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the client saw another tenant's state");
	uint64_t by[2] = { 0, 0 };
	for (int i = 0; i < NT; i++) {
		struct vl_reply r;
		char body[32], want[64];
		struct vl_tenant_info ti;
		snprintf(name, sizeof name, "t%03d", i);
		secret(i, body, sizeof body);
		snprintf(want, sizeof want, "%s %d", body, ROUNDS + 1);
		call(h, name, body, -1, 0, NULL, &r);
		CHECK(!strcmp(r.text, want), "t%03d: '%s', wanted '%s'", i, r.text, want);
		vl_host_tenant(h, vl_host_find(h, name), &ti);
		by[0] += ti.by_worker[0];
		by[1] += ti.by_worker[1];
	}
	CHECK(by[0] && by[1], "both workers served (%llu, %llu)", (unsigned long long)by[0],
	      (unsigned long long)by[1]);
	printf("parallel: %d tenants x %d requests over %d connections in %.2f s (worker 0: %llu,"
	       " worker 1: %llu); each saw only its own state\n", NT, ROUNDS, CONNS,
	       vl_now() - t0, (unsigned long long)by[0], (unsigned long long)by[1]);
	vl_host_free(h);
}

/* -------------------------------------------------------------------- clone */

static const char clone_lua[] =
	"x = x or 'template'\n"
	"function handle(b)\n"
	"  if b == 'grow' then big = {} for i = 1, 200000 do big[i] = i end return #big end\n"
	"  if b ~= '' then x = b end\n"
	"  return x\n"
	"end\n";

static void t_clone(void)
{
	for (int scratch = 0; scratch < 2; scratch++) {
		struct vl_host_opts o;
		char err[512];
		vl_host_opts_init(&o);
		o.private_c = 1;
		o.quiet = 1;
		o.workers = 2;
		o.clone = !scratch;
		o.limit = 16 * MiB;
		o.pool_size = 64 * MiB;
		struct vl_host *h = vl_host_new(&o, err, sizeof err);
		CHECK(h && !vl_host_start(h, err, sizeof err), "%s", err);
		add(h, "tpl", clone_lua, 0);
		call(h, "tpl", "", -1, 0, "template", NULL);
		CHECK(vl_host_clone(h, "tpl", "copy", err, sizeof err) >= 0, "%s", err);
		call(h, "copy", "", -1, 0, "template", NULL);
		call(h, "copy", "copy-write", 1, 0, "copy-write", NULL);
		call(h, "tpl", "", 0, 0, "template", NULL);
		call(h, "tpl", "tpl-write", 0, 0, "tpl-write", NULL);
		call(h, "copy", "", 1, 0, "copy-write", NULL);
		vmc_vm_stats_t a, b;
		vmc_vm_stats(vl_host_vmc(h), vm_of(h, "tpl"), &a);
		call(h, "copy", "grow", -1, 0, "200000", NULL);
		vmc_vm_stats(vl_host_vmc(h), vm_of(h, "tpl"), &b);
		CHECK(a.committed == b.committed, "the template grew with its clone");
		call(h, "tpl", "", -1, 0, "tpl-write", NULL);
		call(h, "copy", "", -1, 0, "copy-write", NULL);
		vl_host_free(h);
		printf("clone (tenants made %s): clone and template independent after writes\n",
		       scratch ? "from scratch" : "as clones of a template");
	}
}

/* ----------------------------------------------------------------- memlimit */

/* Big strings are built in lauxlib buffers (string.rep), which call the
 * allocator directly: no emergency collection retries those. */
static const char memhog_lua[] =
	"served = 0\n"
	"local KiB = string.rep('x', 1024)\n"
	"function handle(req)\n"
	"  local kib = tonumber(req)\n"
	"  local t = {}\n"
	"  for i = 1, (kib + 63) // 64 do t[i] = string.rep(KiB, 63) .. string.rep('y', 1024) .. i end\n"
	"  served = served + 1\n"
	"  return 'held ' .. kib .. ' KiB; request ' .. served\n"
	"end\n";

/* The requests of the tenant memhog: the load generator's mix (64 KiB,
 * 1 in 8 far over the limit) from a fixed seed, plus 1500 KiB now and then;
 * every one of them must get the answer it deserves. */
static void memhog_run(struct vl_host *h, int pinned)
{
	char want[64];
	uint64_t seed = 12345;
	int ok = 0, over = 0;
	for (int k = 0; k < 400; k++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		int w = pinned ? (int)(seed >> 40) & 1 : -1, r = (int)(seed >> 33) % 16;
		if (r < 2) {
			call(h, "memhog", "100000", w, 1, "not enough memory", NULL);
			over++;
		} else {
			snprintf(want, sizeof want, "held %s KiB; request %d", r == 2 ? "1500" : "64",
				 ++ok);
			call(h, "memhog", r == 2 ? "1500" : "64", w, 0, want, NULL);
		}
	}
	CHECK(over > 20, "only %d requests over the limit", over);
}

static void t_memlimit(void)
{
	struct vl_host *h = mkhost(2, 1, 0);
	char err[512];
	add(h, "memhog", memhog_lua, 4 * MiB);
	add(h, "other", persist_lua, 4 * MiB);
	call(h, "other", "set kept", -1, 0, "stored", NULL);
	memhog_run(h, 1);
	vmc_vm_stats_t vs;
	vmc_vm_stats(vl_host_vmc(h), vm_of(h, "memhog"), &vs);
	CHECK(vs.hwm <= 4 * MiB && vs.state == VMC_VM_IDLE, "hwm %llu", (unsigned long long)vs.hwm);
	call(h, "other", "get", -1, 0, "kept", NULL);
	/* a script that exhausts the limit while loading is refused, cleanly */
	const char *greedy = "t = {} for i = 1, 1e7 do t[i] = i end function handle() end";
	CHECK(vl_host_add(h, "greedy", greedy, strlen(greedy), 2 * MiB, err, sizeof err) < 0 &&
	      strstr(err, "not enough memory"), "greedy: %s", err);
	call(h, "memhog", "64", -1, 0, "held 64 KiB", NULL);
	CHECK(vmc_check(vl_host_vmc(h), NULL) == 0, "vmc_check");
	vl_host_free(h);

	/* the same on malloc with the same limit (the benchmark's baseline) */
	struct vl_host_opts o;
	vl_host_opts_init(&o);
	o.mode = VL_ONEPROC;
	o.quiet = 1;
	CHECK((h = vl_host_new(&o, err, sizeof err)), "%s", err);
	add(h, "memhog", memhog_lua, 4 * MiB);
	memhog_run(h, 0);
	vl_host_free(h);
	printf("memlimit: requests far over the 4 MiB limit -> 'not enough memory'; every next "
	       "request worked, in a VM (high water %llu MiB) and on malloc\n",
	       (unsigned long long)(vs.hwm >> 20));
}

/* -------------------------------------------------------------------- error */

static const char bad_lua[] =
	"function handle(b)\n"
	"  if b == 'boom' then error('boom!') end\n"
	"  if b == 'nil' then local t; return t.x end\n"
	"  if b == 'table' then error({}) end\n"
	"  if b == 'deep' then local function f() return 1 + f() end return f() end\n"
	"  if b == 'sandbox' then\n"
	"    return table.concat({type(io), type(os), type(debug), type(require), type(package),\n"
	"      type(dofile), type(loadfile), tostring(select(2, load(string.dump(handle))))}, ' ')\n"
	"  end\n"
	"  if b == 'print' then print('hello from', b) return 'printed' end\n"
	"  return 'fine'\n"
	"end\n";

static void t_error(void)
{
	struct vl_host *h = mkhost(2, 1, 0);
	char err[512];
	add(h, "bad", bad_lua, 0);
	add(h, "good", persist_lua, 0);
	pid_t p0 = vl_host_worker_pid(h, 0), p1 = vl_host_worker_pid(h, 1);
	call(h, "good", "set safe", -1, 0, "stored", NULL);
	for (int w = 0; w < 2; w++) {
		call(h, "bad", "boom", w, 1, "bad:2: boom!", NULL);
		call(h, "good", "get", w, 0, "safe", NULL);
		call(h, "bad", "nil", w, 1, "attempt to index", NULL);
		call(h, "bad", "table", w, 1, "error object is not a string", NULL);
		call(h, "bad", "deep", w, 1, NULL, NULL);
		call(h, "bad", "ok", w, 0, "fine", NULL);
		call(h, "good", "get", w, 0, "safe", NULL);
	}
	call(h, "bad", "sandbox", -1, 0,
	     "nil nil nil nil nil nil nil attempt to load a binary chunk", NULL);
	call(h, "bad", "print", -1, 0, "printed", NULL);
	call(h, "nobody", "x", -1, 1, "unknown tenant 'nobody'", NULL);
	CHECK(vl_host_add(h, "syntax", "function handle(", 16, 0, err, sizeof err) < 0 &&
	      strstr(err, "syntax:1:"), "syntax error: %s", err);
	CHECK(vl_host_add(h, "nohandle", "x = 1", 5, 0, err, sizeof err) < 0 &&
	      strstr(err, "handle"), "no handle: %s", err);
	CHECK(vl_host_find(h, "syntax") < 0 && vl_host_find(h, "nohandle") < 0, "not added");
	CHECK(p0 == vl_host_worker_pid(h, 0) && p1 == vl_host_worker_pid(h, 1),
	      "a worker was replaced");
	vl_host_free(h);
	printf("error: Lua errors (error, nil index, non-string error, stack overflow) are ERR "
	       "replies; workers %d and %d lived on; the sandbox holds no io/os/debug/require\n",
	       (int)p0, (int)p1);
}

/* -------------------------------------------------------------------- kill9 */

static const char loop_lua[] =
	"function handle(b)\n"
	"  if b == 'spin' then while true do end end\n"
	"  return 'alive'\n"
	"end\n";

struct pending { int done, worker; struct vl_reply r; };

static void on_done(void *arg, const struct vl_reply *r, int worker)
{
	struct pending *p = arg;
	p->r = *r;
	p->worker = worker;
	p->done = 1;
}

static void pump(struct vl_host *h, int ms)
{
	struct pollfd pfd[VL_MAX_WORKERS];
	int timeout = ms, k = vl_host_pollfds(h, pfd, VL_MAX_WORKERS, &timeout);
	if (poll(pfd, (nfds_t)k, timeout) >= 0)
		vl_host_events(h, pfd, k);
}

static void serve_others(struct vl_host *h, int n)
{
	struct vl_reply r;
	long last = -1;
	for (int i = 0; i < n; i++) {
		call(h, "other", "incr", i % 2, 0, NULL, &r);
		CHECK(last < 0 || atol(r.text) == last + 1, "count %s after %ld", r.text, last);
		last = atol(r.text);
	}
}

static void t_kill9(void)
{
	static const char counter_lua[] =
		"n = 0 function handle(b) n = n + 1 return n end\n";
	for (int iso = 1; iso >= 0; iso--) {
		struct vl_host *h = mkhost(2, iso, 0);
		struct pending p = { 0 };
		vmc_vm_stats_t vs;
		add(h, "loop", loop_lua, 0);
		add(h, "other", counter_lua, 0);
		serve_others(h, 4);
		uint32_t vm = vm_of(h, "loop");
		vl_host_submit(h, "loop", 4, "spin", 4, -1, on_done, &p);
		double end = vl_now() + 10;
		while (!vmc_vm_stats(vl_host_vmc(h), vm, &vs) && vs.state != VMC_VM_ATTACHED &&
		       vl_now() < end)
			pump(h, 1);
		CHECK(vs.state == VMC_VM_ATTACHED && vs.pid > 0, "loop never got attached");
		pid_t victim = vs.pid;
		usleep(20000);    /* well inside handle() */
		CHECK(!kill(victim, SIGKILL), "kill");
		while (!p.done && vl_now() < end)
			pump(h, 100);
		CHECK(p.done && p.r.err && strstr(p.r.text, "orphaned") && strstr(p.r.text, "signal 9"),
		      "reply: %s", p.r.text);
		CHECK(!vmc_vm_stats(vl_host_vmc(h), vm, &vs) && vs.state == VMC_VM_ORPHANED,
		      "state %d", vs.state);
		CHECK(vl_host_worker_pid(h, p.worker) != victim, "the worker was started again");
		serve_others(h, 20);
		call(h, "loop", "hello", -1, 1, "orphaned", NULL);
		struct vl_tenant_info ti;
		vl_host_tenant(h, vl_host_find(h, "loop"), &ti);
		CHECK(ti.orphaned, "reported");
		CHECK(vmc_check(vl_host_vmc(h), NULL) == 0, "vmc_check");
		vl_host_free(h);
		printf("kill9 (%s): worker %d killed inside 'loop': tenant orphaned (VMC_VM_ORPHANED),"
		       " 'other' kept being served by both workers\n", iso ? "strict" : "lazy",
		       (int)victim);
	}
	/* the watchdog does the same to a request that runs too long */
	struct vl_host *h = mkhost(2, 1, 300);
	add(h, "loop", loop_lua, 0);
	add(h, "other", counter_lua, 0);
	double t0 = vl_now();
	call(h, "loop", "spin", -1, 1, "orphaned", NULL);
	CHECK(vl_now() - t0 < 5, "the watchdog took %.1f s", vl_now() - t0);
	serve_others(h, 10);
	vl_host_free(h);
	printf("kill9 (watchdog 300 ms): the endless request was killed after %.2f s; others "
	       "served\n", vl_now() - t0);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*fn)(void); } tests[] = {
		{ "persist", t_persist }, { "parallel", t_parallel }, { "clone", t_clone },
		{ "memlimit", t_memlimit }, { "error", t_error }, { "kill9", t_kill9 },
	};
	const char *which = argc > 1 ? argv[1] : "all";
	int ran = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!strcmp(which, "all") || !strcmp(which, tests[i].name)) {
			tests[i].fn();
			ran++;
		}
	if (!ran) {
		fprintf(stderr, "usage: test_lua [all|persist|parallel|clone|memlimit|error|kill9]\n");
		return 2;
	}
	return 0;
}
