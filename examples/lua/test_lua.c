/*
 * test_lua.c - vmc-lua's tests (ctest runs each as lua_NAME):
 *   persist   a global set by a request in worker 0 is read by a request in worker 1
 *   parallel  100 tenants served at once over 16 connections, none sees another's state
 *   clone     a clone is independent of its template after writes (both ways)
 *   memlimit  exhausting a tenant's memory limit is a Lua error; the tenant recovers
 *   error     Lua errors are ERR replies; the worker and other tenants carry on;
 *             the sandbox has no io, os, debug, require, dofile, loadfile, bytecode
 *   budget    the CPU budget ends runaway requests (loops, loops in pcall, xpcall,
 *             coroutines, __close) with an error; state and worker live on; work
 *             under the budget (a coroutine living across requests too) is not
 *             touched; a script's header sets its own budget
 *   hibernate idle tenants go to image files (--hibernate-after) and give their
 *             memory back; a request wakes one byte for byte; `hibernate NAME`;
 *             with workers (strict, lazy) and in the dispatcher
 *   all       every one of them
 * test_recover.c has worker deaths, recovery, reload and reset; test_proto.c the
 * protocol over a socket; test_soak.c the soak test.
 * Public API only.
 */
#include "test_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ persist */

static const char persist_lua[] =
	"function handle(b)\n"
	"  if b:sub(1, 4) == 'set ' then v = b:sub(5) return 'stored' end\n"
	"  return tostring(v)\n"
	"end\n";

static void t_persist(void)
{
	for (int iso = 1; iso >= 0; iso--) {
		struct vl_host *h = tu_host(2, iso, 0);
		struct vl_reply r;
		tu_add(h, "p", persist_lua, 0);
		CHECK(vl_host_worker_pid(h, 0) != vl_host_worker_pid(h, 1), "two workers");
		CHECK(tu_call(h, "p", "set from-A", 0, 0, "stored", NULL) == 0, "ran in worker 0");
		CHECK(tu_call(h, "p", "get", 1, 0, NULL, &r) == 1, "ran in worker 1");
		CHECK(!strcmp(r.text, "from-A"), "worker 1 read '%s'", r.text);
		CHECK(tu_call(h, "p", "set from-B", 1, 0, "stored", NULL) == 1, "worker 1");
		CHECK(tu_call(h, "p", "get", 0, 0, NULL, &r) == 0, "worker 0");
		CHECK(!strcmp(r.text, "from-B"), "worker 0 read '%s'", r.text);
		vmc_vm_stats_t vs;
		CHECK(!vmc_vm_stats(vl_host_vmc(h), tu_vm(h, "p"), &vs) && vs.state == VMC_VM_IDLE,
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

static int parallel_run(const char *path, const char *ctl, void *arg)
{
	(void)ctl;
	(void)arg;
	return parallel_client(path);
}

static void t_parallel(void)
{
	struct vl_host_opts o;
	tu_opts(&o, 2, 1);
	o.pool_size = 256 * MiB;     /* 100 tenants of one 2 MiB granule, 2 templates */
	struct vl_host *h = tu_host_opts(&o);
	char name[16];
	for (int i = 0; i < NT; i++) {
		snprintf(name, sizeof name, "t%03d", i);
		tu_add(h, name, parallel_lua, 2 * MiB);
	}
	double t0 = vl_now();
	CHECK(tu_serve(h, parallel_run, NULL) == 0, "the client saw another tenant's state");
	uint64_t by[2] = { 0, 0 };
	for (int i = 0; i < NT; i++) {
		struct vl_reply r;
		char body[32], want[64];
		struct vl_tenant_info ti;
		snprintf(name, sizeof name, "t%03d", i);
		secret(i, body, sizeof body);
		snprintf(want, sizeof want, "%s %d", body, ROUNDS + 1);
		tu_call(h, name, body, -1, 0, NULL, &r);
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
		tu_opts(&o, 2, 1);
		o.clone = !scratch;
		o.limit = 16 * MiB;
		struct vl_host *h = tu_host_opts(&o);
		tu_add(h, "tpl", clone_lua, 0);
		tu_call(h, "tpl", "", -1, 0, "template", NULL);
		CHECK(vl_host_clone(h, "tpl", "copy", err, sizeof err) >= 0, "%s", err);
		tu_call(h, "copy", "", -1, 0, "template", NULL);
		tu_call(h, "copy", "copy-write", 1, 0, "copy-write", NULL);
		tu_call(h, "tpl", "", 0, 0, "template", NULL);
		tu_call(h, "tpl", "tpl-write", 0, 0, "tpl-write", NULL);
		tu_call(h, "copy", "", 1, 0, "copy-write", NULL);
		vmc_vm_stats_t a, b;
		vmc_vm_stats(vl_host_vmc(h), tu_vm(h, "tpl"), &a);
		tu_call(h, "copy", "grow", -1, 0, "200000", NULL);
		vmc_vm_stats(vl_host_vmc(h), tu_vm(h, "tpl"), &b);
		CHECK(a.committed == b.committed, "the template grew with its clone");
		tu_call(h, "tpl", "", -1, 0, "tpl-write", NULL);
		tu_call(h, "copy", "", -1, 0, "copy-write", NULL);
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
			tu_call(h, "memhog", "100000", w, 1, "not enough memory", NULL);
			over++;
		} else {
			snprintf(want, sizeof want, "held %s KiB; request %d", r == 2 ? "1500" : "64",
				 ++ok);
			tu_call(h, "memhog", r == 2 ? "1500" : "64", w, 0, want, NULL);
		}
	}
	CHECK(over > 20, "only %d requests over the limit", over);
}

static void t_memlimit(void)
{
	struct vl_host *h = tu_host(2, 1, 0);
	char err[512];
	tu_add(h, "memhog", memhog_lua, 4 * MiB);
	tu_add(h, "other", persist_lua, 4 * MiB);
	tu_call(h, "other", "set kept", -1, 0, "stored", NULL);
	memhog_run(h, 1);
	vmc_vm_stats_t vs;
	vmc_vm_stats(vl_host_vmc(h), tu_vm(h, "memhog"), &vs);
	CHECK(vs.hwm <= 4 * MiB && vs.state == VMC_VM_IDLE, "hwm %llu", (unsigned long long)vs.hwm);
	tu_call(h, "other", "get", -1, 0, "kept", NULL);
	/* a script that exhausts the limit while loading is refused, cleanly */
	const char *greedy = "t = {} for i = 1, 1e7 do t[i] = i end function handle() end";
	CHECK(vl_host_add(h, "greedy", greedy, strlen(greedy), 2 * MiB, 0, err, sizeof err) < 0 &&
	      strstr(err, "not enough memory"), "greedy: %s", err);
	tu_call(h, "memhog", "64", -1, 0, "held 64 KiB", NULL);
	CHECK(vmc_check(vl_host_vmc(h), NULL) == 0, "vmc_check");
	vl_host_free(h);

	/* the same on malloc with the same limit (the benchmark's baseline) */
	struct vl_host_opts o;
	vl_host_opts_init(&o);
	o.mode = VL_ONEPROC;
	o.quiet = 1;
	CHECK((h = vl_host_new(&o, err, sizeof err)), "%s", err);
	tu_add(h, "memhog", memhog_lua, 4 * MiB);
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
	struct vl_host *h = tu_host(2, 1, 0);
	char err[512];
	tu_add(h, "bad", bad_lua, 0);
	tu_add(h, "good", persist_lua, 0);
	pid_t p0 = vl_host_worker_pid(h, 0), p1 = vl_host_worker_pid(h, 1);
	tu_call(h, "good", "set safe", -1, 0, "stored", NULL);
	for (int w = 0; w < 2; w++) {
		tu_call(h, "bad", "boom", w, 1, "bad:2: boom!", NULL);
		tu_call(h, "good", "get", w, 0, "safe", NULL);
		tu_call(h, "bad", "nil", w, 1, "attempt to index", NULL);
		tu_call(h, "bad", "table", w, 1, "error object is not a string", NULL);
		tu_call(h, "bad", "deep", w, 1, NULL, NULL);
		tu_call(h, "bad", "ok", w, 0, "fine", NULL);
		tu_call(h, "good", "get", w, 0, "safe", NULL);
	}
	tu_call(h, "bad", "sandbox", -1, 0,
	     "nil nil nil nil nil nil nil attempt to load a binary chunk", NULL);
	tu_call(h, "bad", "print", -1, 0, "printed", NULL);
	tu_call(h, "nobody", "x", -1, 1, "unknown tenant 'nobody'", NULL);
	CHECK(vl_host_add(h, "syntax", "function handle(", 16, 0, 0, err, sizeof err) < 0 &&
	      strstr(err, "syntax:1:"), "syntax error: %s", err);
	CHECK(vl_host_add(h, "nohandle", "x = 1", 5, 0, 0, err, sizeof err) < 0 &&
	      strstr(err, "handle"), "no handle: %s", err);
	CHECK(vl_host_find(h, "syntax") < 0 && vl_host_find(h, "nohandle") < 0, "not added");
	CHECK(p0 == vl_host_worker_pid(h, 0) && p1 == vl_host_worker_pid(h, 1),
	      "a worker was replaced");
	vl_host_free(h);
	printf("error: Lua errors (error, nil index, non-string error, stack overflow) are ERR "
	       "replies; workers %d and %d lived on; the sandbox holds no io/os/debug/require\n",
	       (int)p0, (int)p1);
}

/* ------------------------------------------------------------------- budget */

static const char spin_lua[] =
	"n = 0\n"
	"function handle(b)\n"
	"  n = n + 1\n"
	"  if b == 'loop' then while true do end end\n"
	"  if b == 'pcall' then while true do pcall(function() while true do end end) end end\n"
	"  if b == 'xpcall' then\n"
	"    local function loop() while true do end end\n"
	"    while true do xpcall(loop, loop) end\n"
	"  end\n"
	"  if b == 'co' then coroutine.wrap(function() while true do end end)() end\n"
	"  if b == 'close' then\n"
	"    local t <close> = setmetatable({}, { __close = function() while true do end end })\n"
	"    return 'closing'\n"
	"  end\n"
	"  if b == 'keep' then\n"
	"    keep = coroutine.create(function()\n"
	"      while true do for i = 1, 1000 do end coroutine.yield() end end)\n"
	"  end\n"
	"  if b == 'resume' then for i = 1, 100 do assert(coroutine.resume(keep)) end end\n"
	"  if b:match('^work ') then local x = 0 for i = 1, tonumber(b:sub(6)) do x = x + i end end\n"
	"  return n\n"
	"end\n";

/* Every way a script might keep running ends with "CPU budget exceeded";
 * the state and the worker live on; work under the budget is untouched,
 * also in a coroutine that lives across requests. */
static void budget_run(struct vl_host *h, const char *where)
{
	static const char *const runaway[] = { "loop", "pcall", "xpcall", "co", "close" };
	struct vl_reply r;
	struct vl_tenant_info ti;
	pid_t p0 = vl_host_worker_pid(h, 0);
	long n = 0;

	tu_call(h, "spin", "keep", -1, 0, NULL, &r);
	n = atol(r.text);
	for (int k = 0; k < 20; k++) {       /* 20 x 100 resumes of 2000 instructions > budget */
		tu_call(h, "spin", "resume", -1, 0, NULL, &r);
		CHECK(atol(r.text) == ++n, "count %s, wanted %ld", r.text, n);
	}
	for (size_t k = 0; k < sizeof runaway / sizeof runaway[0]; k++) {
		tu_call(h, "spin", runaway[k], -1, 1, k == 2 ? NULL : "CPU budget exceeded", &r);
		n++;
		tu_call(h, "spin", "work 100000", -1, 0, NULL, &r);
		CHECK(atol(r.text) == ++n, "after '%s': count %s, wanted %ld (state lost?)", runaway[k],
		      r.text, n);
		tu_call(h, "spin", "resume", -1, 0, NULL, &r);   /* no leftover of the last one */
		n++;
	}
	tu_call(h, "spin", "work 10000000", -1, 1, "CPU budget exceeded", NULL);
	tu_info(h, "spin", &ti);
	CHECK(ti.budget_kills == 6, "%llu budget kills counted", (unsigned long long)ti.budget_kills);
	CHECK(vl_host_worker_pid(h, 0) == p0, "the worker was replaced");
	printf("budget (%s): loops, pcall/xpcall loops, a coroutine and a __close loop ended by the "
	       "budget; a coroutine living across requests was not; the state counted on (%ld)\n",
	       where, n + 1);
}

static void t_budget(void)
{
	struct vl_host_opts o;
	char err[512], path[64];
	tu_opts(&o, 1, 1);
	o.budget = 2000000;
	struct vl_host *h = tu_host_opts(&o);
	tu_add(h, "spin", spin_lua, 0);
	budget_run(h, "a VM");
	/* the budget of a script's top level, and one a script's header sets */
	const char *endless = "while true do end function handle() end";
	CHECK(vl_host_add(h, "endless", endless, strlen(endless), 0, 0, err, sizeof err) < 0 &&
	      strstr(err, "CPU budget exceeded"), "endless top level: %s", err);
	snprintf(path, sizeof path, "/tmp/vmc-lua-test-%d.lua", (int)getpid());
	FILE *f = fopen(path, "w");
	CHECK(f && fputs("-- vmc-lua: budget = 100K\n", f) >= 0 && fputs(spin_lua, f) >= 0 &&
	      !fclose(f), "writing %s", path);
	CHECK(vl_host_add_file(h, "small", path, err, sizeof err) >= 0 && !*err, "%s", err);
	unlink(path);
	tu_call(h, "small", "work 1000", -1, 0, NULL, NULL);
	tu_call(h, "small", "work 100000", -1, 1, "CPU budget exceeded (100000 ", NULL);
	tu_call(h, "spin", "work 100000", -1, 0, NULL, NULL);
	vl_host_free(h);

	o.mode = VL_ONEPROC;
	h = tu_host_opts(&o);
	tu_add(h, "spin", spin_lua, 0);
	budget_run(h, "malloc, in the dispatcher");
	vl_host_free(h);
}
/* ---------------------------------------------------------------- hibernate */

static const char hib_lua[] =
	"data = {}\n"
	"for i = 1, 2000 do data[i] = 'x' .. i .. ('y'):rep(i % 7) end\n"
	"n = 0\n"
	"function handle(b)\n"
	"  if b == 'check' then return n .. ':' .. #data .. ':' .. data[1999] end\n"
	"  n = n + 1 return tostring(n)\n"
	"end\n";

/* Pump until tenant `name` is hibernated (or 20 s passed). */
static void await_hibernated(struct vl_host *h, const char *name)
{
	struct vl_tenant_info ti;
	for (double end = vl_now() + 20; tu_info(h, name, &ti), !ti.hibernated && vl_now() < end;)
		tu_pump(h, 20);
	CHECK(ti.hibernated, "tenant %s was not hibernated within 20 s of idling", name);
}

static void hibernate_run(int workers, int iso)
{
	char dir[64], cmd[96];
	struct vl_host_opts o;
	struct vl_tenant_info ti;
	vmc_vm_stats_t vs;
	snprintf(dir, sizeof dir, "/tmp/vmc-lua-test-hib-%d", (int)getpid());
	tu_opts(&o, workers, iso);
	o.hibernate_after_ms = 200;
	o.hibernate_dir = dir;
	struct vl_host *h = tu_host_opts(&o);
	vmc_t *c = vl_host_vmc(h);
	tu_add(h, "a", hib_lua, 0);
	tu_add(h, "b", hib_lua, 0);
	tu_call(h, "a", "inc", -1, 0, "1", NULL);
	tu_call(h, "b", "inc", -1, 0, "1", NULL);

	/* idle: both go to images and hold no granule */
	await_hibernated(h, "a");
	await_hibernated(h, "b");
	CHECK(!vmc_vm_stats(c, tu_vm(h, "a"), &vs) && vs.state == VMC_VM_HIBERNATED &&
	      vs.committed == 0 && vs.image_bytes > 0, "a: state %d, %llu bytes committed, "
	      "image %llu bytes", vs.state, (unsigned long long)vs.committed,
	      (unsigned long long)vs.image_bytes);

	/* a request wakes it, byte for byte; the host counts the wake */
	tu_call(h, "a", "inc", -1, 0, "2", NULL);
	tu_call(h, "a", "check", -1, 0, "2:2000:x1999yyyy", NULL);
	tu_info(h, "a", &ti);
	CHECK(!ti.hibernated && ti.wakes == 1 && ti.hibernations == 1,
	      "a is awake again, and the host knows it: hibernated %d, %llu wakes, %llu "
	      "hibernations", ti.hibernated, (unsigned long long)ti.wakes,
	      (unsigned long long)ti.hibernations);
	tu_info(h, "b", &ti);
	CHECK(ti.hibernated, "b stays hibernated while a serves");

	/* a hibernation with requests waiting behind it is skipped: the first
	 * request is in flight, the hibernation and a second one wait */
	if (workers) {
		struct tu_pending p1 = { 0 }, p2 = { 0 }, ph = { 0 };
		vl_host_submit(h, "a", 1, "inc", 3, -1, tu_record, &p1);
		vl_host_admin(h, VL_OP_HIBERNATE, "a", tu_record, &ph);
		vl_host_submit(h, "a", 1, "inc", 3, -1, tu_record, &p2);
		for (double end = vl_now() + 20; !(p1.done && p2.done && ph.done) && vl_now() < end;)
			tu_pump(h, 20);
		CHECK(ph.done && !ph.r.err && strstr(ph.r.text, "is busy: not hibernated"),
		      "hibernate with a request behind it -> '%s'", ph.done ? ph.r.text : "");
		CHECK(p2.done && !strcmp(p2.r.text, "4"), "the request behind it -> '%s'",
		      p2.r.text);
		tu_call(h, "a", "dec", -1, 0, "5", NULL);   /* any body counts one up */
	}

	/* it goes back to sleep by itself, and on request */
	await_hibernated(h, "a");
	tu_admin(h, VL_OP_HIBERNATE, "a", 0, "is hibernated already");
	tu_call(h, "a", "check", -1, 0, workers ? "5:2000:x1999yyyy" : "2:2000:x1999yyyy", NULL);
	tu_call(h, "b", "check", -1, 0, "1:2000:x1999yyyy", NULL);

	struct vl_run_stats rs;
	vl_host_run_stats(h, &rs);
	CHECK(rs.hibernations >= 3 && rs.wakes >= 2, "%llu hibernations, %llu wakes",
	      (unsigned long long)rs.hibernations, (unsigned long long)rs.wakes);
	/* hibernations are no requests: they add no requests, calls or faults */
	CHECK(rs.requests == (workers ? 9u : 6u), "%llu requests counted for %d",
	      (unsigned long long)rs.requests, workers ? 9 : 6);
	char *rep = vl_host_report(h, 0);
	CHECK(rep && strstr(rep, "hibernation after 0.2 s idle"), "report: %s", rep ? rep : "");
	free(rep);
	vl_host_free(h);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0, "%s", cmd);
	printf("hibernate (%d workers, %s): idle tenants hibernated and woke byte for byte; "
	       "%llu hibernations, %llu wakes\n", workers, iso ? "strict" : "lazy",
	       (unsigned long long)rs.hibernations, (unsigned long long)rs.wakes);
}

static void t_hibernate(void)
{
	hibernate_run(2, 1);
	hibernate_run(2, 0);
	hibernate_run(0, 1);
}

int main(int argc, char **argv)
{
	static const struct tu_test tests[] = {
		{ "persist", t_persist }, { "parallel", t_parallel }, { "clone", t_clone },
		{ "memlimit", t_memlimit }, { "error", t_error }, { "budget", t_budget },
		{ "hibernate", t_hibernate },
	};
	return tu_main(argc, argv, tests, (int)(sizeof tests / sizeof tests[0]));
}
