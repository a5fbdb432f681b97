/*
 * sandbox.c - the environment a tenant's script runs in, and the protected
 * call of its handle(request).  Wherever the state's memory comes from (a
 * VM's heap or malloc), this is the same code.
 *
 * Opened: base, string, table, math, utf8, coroutine.  Not opened: io and
 * os (files, processes, the clock: they escape the sandbox, and io keeps
 * FILE* pointers into this process's libc heap inside the state), package
 * (require, and loadlib of C modules: dlopen handles are process-local),
 * debug (it reaches past every boundary: registry, upvalues, metatables of
 * anything).  From base, dofile and loadfile (the file system) are removed
 * and load() takes text chunks only: precompiled bytecode is not verified
 * by Lua and can crash the worker.  print() writes one line to stderr,
 * prefixed with the worker and the tenant.
 *
 * Every entry here that can allocate runs inside lua_pcall: in a VM an
 * allocation fails at the VM's limit, and that must become a Lua error
 * ("not enough memory"), never a panic.
 *
 * The CPU budget.  A count hook (LUA_MASKCOUNT) runs every PERIOD Lua
 * instructions of any thread of the state (coroutines inherit it) and
 * takes them off the budget of the call under way.  When none is left it
 * raises "CPU budget exceeded", and from then on it runs after every
 * instruction and raises again: a script that catches the error with pcall
 * gets it back at its next instruction, so the error reaches the host's
 * pcall.  The request ends like any Lua error: the state stays intact and
 * the worker lives on.  A hang inside a C function (a pathological
 * string.find) runs no instructions; the host's watchdog is for that.
 * Lua runs two kinds of code with hooks off, where no budget could stop a
 * loop, so the sandbox changes them: xpcall's message handler (Lua calls
 * it from inside the hook that raised the error) runs after the stack has
 * unwound instead (without the debug library it could not look at the
 * stack anyway), and __gc metamethods (finalizers run with hooks off) are
 * refused by setmetatable.
 */
#include "vmclua.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PERIOD 10000           /* instructions between two runs of the hook */

static char log_prefix[128];
static struct {
	uint64_t given;        /* the budget of the call under way (0: none) */
	int64_t  left;         /* instructions it may still run */
	int      hit;          /* it ran out */
} budget;

void vl_log_prefix(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(log_prefix, sizeof log_prefix, fmt, ap);
	va_end(ap);
}

/* Copy text into r as one line. */
static void reply_text(struct vl_reply *r, int err, const char *s, size_t len)
{
	size_t max = sizeof r->text - 8;
	if (len > max)
		len = max;
	for (size_t i = 0; i < len; i++)
		r->text[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	r->text[len] = 0;
	r->len = len;
	r->err = err;
}

void vl_reply_set(struct vl_reply *r, int err, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	reply_text(r, err, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
	r->kind = err ? VL_R_HOST : VL_R_OK;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	int count = lua_gethookcount(L);
	(void)ar;
	budget.left -= count;
	if (budget.left > 0) {
		if (count != PERIOD)       /* a coroutine still at 1 from an earlier call */
			lua_sethook(L, budget_hook, LUA_MASKCOUNT, PERIOD);
		return;
	}
	budget.hit = 1;
	if (count != 1)
		lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
	luaL_error(L, "CPU budget exceeded (%I Lua instructions per request)",
		   (lua_Integer)budget.given);
}

void vl_sandbox_budget(lua_State *L, uint64_t instructions)
{
	budget.given = instructions;
	budget.left = !instructions || instructions > INT64_MAX ? INT64_MAX : (int64_t)instructions;
	budget.hit = 0;
	lua_sethook(L, budget_hook, LUA_MASKCOUNT,
		    instructions && instructions < PERIOD ? (int)instructions : PERIOD);
}

static int l_print(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		luaL_tolstring(L, i, NULL);
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	fprintf(stderr, "[%s] %s\n", log_prefix, lua_tostring(L, -1));
	return 0;
}

/* Lua code run once in every new sandbox: load() for text only; xpcall's
 * message handler runs after the unwinding; no __gc metamethods (see the
 * top of the file). */
static const char sandbox_lua[] =
	"local load, pcall, pack, unpack = load, pcall, table.pack, table.unpack\n"
	"local setmt, rawget, type, error = setmetatable, rawget, type, error\n"
	"_G.load = function(chunk, name, mode, ...) return load(chunk, name, 't', ...) end\n"
	"_G.xpcall = function(f, msgh, ...)\n"
	"  local r = pack(pcall(f, ...))\n"
	"  if r[1] then return unpack(r, 1, r.n) end\n"
	"  return false, msgh(r[2])\n"
	"end\n"
	"_G.setmetatable = function(t, mt)\n"
	"  if type(mt) == 'table' and rawget(mt, '__gc') ~= nil then\n"
	"    error('__gc metamethods are not allowed: finalizers run outside the CPU budget', 2)\n"
	"  end\n"
	"  return setmt(t, mt)\n"
	"end\n";

static int open_fn(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base },         { LUA_STRLIBNAME, luaopen_string },
		{ LUA_TABLIBNAME, luaopen_table },   { LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 },   { LUA_COLIBNAME, luaopen_coroutine },
		{ NULL, NULL },
	};
	for (const luaL_Reg *l = libs; l->name; l++) {
		luaL_requiref(L, l->name, l->func, 1);
		lua_pop(L, 1);
	}
	lua_pushnil(L);
	lua_setglobal(L, "dofile");
	lua_pushnil(L);
	lua_setglobal(L, "loadfile");
	lua_pushcfunction(L, l_print);
	lua_setglobal(L, "print");
	if (luaL_loadbufferx(L, sandbox_lua, sizeof sandbox_lua - 1, "=sandbox", "t"))
		return lua_error(L);
	lua_call(L, 0, 0);
	return 0;
}

/* The nesting probe of vl_sandbox_check: 150 nested pcalls, each a C call.
 * A fresh state allows 200 (LUAI_MAXCCALLS); a state that lost headroom to
 * calls a dead worker left on it fails with "C stack overflow". */
static const char probe_lua[] =
	"local function f(n) if n == 0 then return true end\n"
	"  local ok, r = pcall(f, n - 1) return ok and r end\n"
	"return f(150)\n";

/* The message of the error object on top of the stack (allocates nothing). */
static const char *errmsg(lua_State *L)
{
	if (lua_type(L, -1) == LUA_TSTRING)
		return lua_tostring(L, -1);
	return lua_type(L, -1) == LUA_TNIL ? "error object is nil" : "error object is not a string";
}

/* Run fn(ud) protected; 0, or -1 with the message in err. */
static int protect(lua_State *L, lua_CFunction fn, void *ud, char *err, size_t n)
{
	lua_settop(L, 0);
	lua_pushcfunction(L, fn);          /* a light C function: no allocation */
	lua_pushlightuserdata(L, ud);
	int st = lua_pcall(L, 1, 0, 0);
	if (st != LUA_OK && err)
		snprintf(err, n, "%s", errmsg(L));
	lua_settop(L, 0);
	return st == LUA_OK ? 0 : -1;
}

int vl_sandbox_open(lua_State *L, char *err, size_t n)
{
	vl_sandbox_budget(L, 0);
	return protect(L, open_fn, NULL, err, n);
}

struct load_args { const char *name, *src; size_t len; };

/* Stack: 1 the args, 2 the chunk, 3 the old handle. */
static int load_fn(lua_State *L)
{
	struct load_args *a = lua_touserdata(L, 1);
	char chunk[VL_NAME_MAX + 2];
	snprintf(chunk, sizeof chunk, "=%s", a->name);
	if (luaL_loadbufferx(L, a->src, a->len, chunk, "t"))
		return lua_error(L);
	lua_getglobal(L, "handle");
	lua_pushnil(L);
	lua_setglobal(L, "handle");
	lua_pushvalue(L, 2);
	int st = lua_pcall(L, 0, 0, 0);
	if (st == LUA_OK && lua_getglobal(L, "handle") == LUA_TFUNCTION)
		return 0;
	if (st == LUA_OK) {
		lua_pop(L, 1);
		lua_pushfstring(L, "%s: the script does not define a function handle(request)",
				a->name);
	}
	lua_pushvalue(L, 3);              /* the old handle serves on */
	lua_setglobal(L, "handle");
	return lua_error(L);
}

int vl_sandbox_load(lua_State *L, const char *name, const char *src, size_t len,
		    char *err, size_t n)
{
	struct load_args a = { name, src, len };
	return protect(L, load_fn, &a, err, n);
}

struct call_args { const char *body; size_t len; struct vl_reply *r; };

static int call_fn(lua_State *L)
{
	struct call_args *a = lua_touserdata(L, 1);
	size_t len = 0;
	const char *s;

	lua_getglobal(L, "handle");
	lua_pushlstring(L, a->body, a->len);
	lua_call(L, 1, 1);
	switch (lua_type(L, -1)) {
	case LUA_TNIL:
		s = "";
		break;
	case LUA_TSTRING:
	case LUA_TNUMBER:
		s = lua_tolstring(L, -1, &len);
		break;
	default:
		s = luaL_tolstring(L, -1, &len);
	}
	reply_text(a->r, 0, s, len);
	return 0;
}

void vl_sandbox_call(lua_State *L, const char *body, size_t len, struct vl_reply *r)
{
	struct call_args a = { body, len, r };
	lua_settop(L, 0);
	lua_pushcfunction(L, call_fn);
	lua_pushlightuserdata(L, &a);
	int st = lua_pcall(L, 1, 0, 0);
	r->kind = VL_R_OK;
	if (st != LUA_OK) {
		const char *m = errmsg(L);
		reply_text(r, 1, m, strlen(m));
		r->kind = budget.hit ? VL_R_BUDGET : st == LUA_ERRMEM ? VL_R_NOMEM : VL_R_ERR;
	}
	lua_settop(L, 0);
	/* After a memory error the failed request's garbage fills the heap up
	 * to the limit, and Lua's collector has no reason to run soon (its
	 * debt was set when all of that was live).  Allocations through
	 * lauxlib buffers (string.rep, table.concat, string.format, ...) call
	 * the allocator directly, with no emergency collection to retry them,
	 * so the next request would fail too.  Collect now (finalizers get a
	 * budget of their own). */
	if (st == LUA_ERRMEM) {
		vl_sandbox_budget(L, budget.given);
		lua_gc(L, LUA_GCCOLLECT);
	}
}

static int check_fn(lua_State *L)
{
	lua_gc(L, LUA_GCCOLLECT);
	if (luaL_loadbufferx(L, probe_lua, sizeof probe_lua - 1, "=probe", "t"))
		return lua_error(L);
	lua_call(L, 0, 1);
	if (!lua_toboolean(L, -1))
		return luaL_error(L, "the nesting probe failed: the dead worker's calls left the "
				  "state without C-call headroom");
	return 0;
}

int vl_sandbox_check(lua_State *L, char *err, size_t n)
{
#if defined(LUA_VERSION_RELEASE_NUM) && LUA_VERSION_RELEASE_NUM >= 50406
	int st = lua_closethread(L, NULL);   /* also resets the C-call count */
#else
	int st = lua_resetthread(L);         /* 5.4.4 leaves the count: the probe tells */
#endif
	if (st != LUA_OK) {
		snprintf(err, n, "unwinding the dead call: %s", errmsg(L));
		return -1;
	}
	return protect(L, check_fn, NULL, err, n);
}
