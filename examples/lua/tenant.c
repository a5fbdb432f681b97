/*
 * tenant.c - a Lua state that lives entirely in a VM.
 *
 * lua_newstate(vm_alloc, &current): every allocation the state ever makes
 * (the global state, the stacks, strings, tables, closures, the string
 * table) comes from vmc_heap_alloc/realloc/free of the attached VM, and the
 * lua_State* is kept in the VM's root slot.  Nothing of the tenant lives in
 * the worker, so any worker that attaches the VM finds the state at the
 * same address (the window is at the same address in every worker) and
 * carries on where the last one stopped.
 *
 * Two process addresses are stored inside the state, in VM memory: the
 * allocator function (vm_alloc) and its ud (&current).  Likewise every C
 * function the libraries registered (print, string.format, ...) and the
 * panic function.  All of them are addresses in this executable or in
 * liblua, which a forked worker has at the very same addresses as the
 * dispatcher that created the state: fork copies the address space, ASLR
 * included.  So ud must not point into malloc'ed or other per-process
 * memory, and it does not: &current is in the executable's .bss, and
 * `current` is set to the right handle before each use (vl_vm_state).  An
 * unrelated process could only run these states with the same binary and
 * libraries mapped at the same addresses; vmc-lua therefore serves tenants
 * from forked workers only (see README.md).
 */
#include "vmclua.h"

#include <lauxlib.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The allocator's ud.  Its address is the same in the dispatcher and every
 * forked worker; the handle in it is this process's and set before each use. */
static struct vm_ctx { vmc_t *c; } current;

static void *vm_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
	struct vm_ctx *x = ud;
	if (nsize == 0) {
		vmc_heap_free(x->c, p);
		return NULL;
	}
	void *q = vmc_heap_realloc(x->c, p, nsize);
	/* Lua assumes shrinking never fails; the old block is still good */
	if (!q && p && nsize <= osize)
		return p;
	return q;     /* NULL at the VM's limit: Lua raises "not enough memory" */
}

static int panic(lua_State *L)
{
	const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
	fprintf(stderr, "vmc-lua: PANIC: unprotected Lua error (%s); worker %d aborts\n", m,
		(int)getpid());
	abort();
}

int vl_vm_new_state(vmc_t *c, char *err, size_t n)
{
	current.c = c;
	void **root = vmc_vm_root(c);
	if (!root) {
		snprintf(err, n, "no heap in the VM: %s", vmc_errmsg());
		return -1;
	}
	lua_State *L = lua_newstate(vm_alloc, &current);
	if (!L) {
		snprintf(err, n, "lua_newstate: not enough memory in the VM");
		return -1;
	}
	lua_atpanic(L, panic);
	if (vl_sandbox_open(L, err, n)) {
		lua_close(L);
		return -1;
	}
	*root = L;
	return 0;
}

lua_State *vl_vm_state(vmc_t *c)
{
	current.c = c;
	void **root = vmc_vm_root(c);
	return root ? *root : NULL;
}

int vl_vm_attach(vmc_t *c, uint32_t vm)
{
	void *base;
	int err;
	for (int i = 0; (err = vmc_attach(c, vm, &base)) == EBUSY && i < 2000; i++)
		usleep(i < 100 ? 50 : 1000);
	return err;
}

int vl_vm_serve(vmc_t *c, uint32_t vm, uint64_t budget, int n, const char *const *body,
		const size_t *len, struct vl_reply *r, vl_served_fn *fn, void *arg)
{
	uint64_t sys = vmc_syscalls(), t0 = vl_now_ns();
	int err = vl_vm_attach(c, vm);
	uint64_t dt = vl_now_ns() - t0;
	uint32_t ns = dt < 1 ? 1 : dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
	uint32_t nsys = (uint32_t)(vmc_syscalls() - sys);
	lua_State *L = err ? NULL : vl_vm_state(c);

	for (int i = 0; i < n; i++) {
		if (err)
			vl_reply_set(r, 1, "attach: %s", *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(err));
		else if (!L)
			vl_reply_set(r, 1, "the tenant's VM holds no Lua state");
		if (L) {
			vl_sandbox_budget(L, budget);
			vl_sandbox_call(L, body[i], len[i], r);   /* copies the reply out of the VM */
		}
		/* the last reply only after the detach: once the dispatcher has all
		 * of them, it may send the tenant to another worker */
		if (i == n - 1 && !err)
			vmc_detach(c, vm);
		fn(arg, i, r, i ? 0 : ns, i ? 0 : nsys);
	}
	return err;
}

static int collect(lua_State *L)
{
	lua_gc(L, LUA_GCCOLLECT);
	return 0;
}

int vl_vm_hibernate(vmc_t *c, uint32_t vm, uint64_t budget, struct vl_reply *r)
{
	int err = vl_vm_attach(c, vm);
	if (err) {
		vl_reply_set(r, 1, "attach: %s", *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(err));
		return err;
	}
	/* the garbage need not go into the image; a finalizer that runs out of
	 * the budget only ends the collection early */
	lua_State *L = vl_vm_state(c);
	if (L) {
		vl_sandbox_budget(L, budget);
		lua_pushcfunction(L, collect);
		if (lua_pcall(L, 0, 0, 0) != LUA_OK)
			lua_pop(L, 1);
	}
	if ((err = vmc_heap_trim(c, 0)) == 0)
		err = vmc_detach(c, vm);
	else
		vmc_detach(c, vm);
	if (!err)
		err = vmc_vm_hibernate(c, vm);
	if (err)
		vl_reply_set(r, 1, "hibernate: %s", *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(err));
	else
		vl_reply_set(r, 0, "hibernated");
	return err;
}

int vl_vm_check(vmc_t *c, char *err, size_t n)
{
	vmc_heap_stats_t hs;
	lua_State *L;
	if (vmc_heap_stats(c, &hs, 1)) {
		snprintf(err, n, "the heap check failed: %s", vmc_errmsg());
		return -1;
	}
	if (!(L = vl_vm_state(c))) {
		snprintf(err, n, "the VM holds no Lua state");
		return -1;
	}
	return vl_sandbox_check(L, err, n);
}

int vl_vm_memory(vmc_t *c, uint32_t vm, uint64_t *lua_bytes, uint64_t *heap_in_use)
{
	vmc_heap_stats_t hs;
	int err = vl_vm_attach(c, vm);
	if (err)
		return err;
	lua_State *L = vl_vm_state(c);
	*lua_bytes = L ? (uint64_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (uint64_t)lua_gc(L, LUA_GCCOUNTB)
		       : 0;
	*heap_in_use = vmc_heap_stats(c, &hs, 0) ? 0 : hs.in_use;
	vmc_detach(c, vm);
	return 0;
}
