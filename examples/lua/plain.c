/*
 * plain.c - the same sandboxed state on the system allocator, for the
 * baselines (all tenants in one process; one process per tenant), and its
 * counterpart of vl_vm_serve.  The
 * allocator enforces a byte limit the way a VM's limit does, so that the
 * same request mix fails the same way everywhere.  Its ud is malloc'ed:
 * fine here, these states never leave the process that made them.
 */
#include "vmclua.h"

#include <lauxlib.h>

#include <stdio.h>
#include <stdlib.h>

struct plain { uint64_t used, limit; };

static void *plain_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
	struct plain *x = ud;
	size_t old = p ? osize : 0;
	if (nsize == 0) {
		free(p);
		x->used -= old;
		return NULL;
	}
	if (nsize > old && x->used - old + nsize > x->limit)
		return NULL;     /* over the limit: Lua raises "not enough memory" */
	void *q = realloc(p, nsize);
	if (!q)
		return nsize <= old ? p : NULL;
	x->used = x->used - old + nsize;
	return q;
}

lua_State *vl_plain_new(uint64_t limit, char *err, size_t n)
{
	struct plain *x = calloc(1, sizeof *x);
	if (!x) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	x->limit = limit;
	lua_State *L = lua_newstate(plain_alloc, x);
	if (!L) {
		free(x);
		snprintf(err, n, "lua_newstate: out of memory");
		return NULL;
	}
	if (vl_sandbox_open(L, err, n)) {
		vl_plain_close(L);
		return NULL;
	}
	return L;
}

void vl_plain_close(lua_State *L)
{
	void *ud;
	lua_getallocf(L, &ud);
	lua_close(L);
	free(ud);
}

void vl_plain_serve(lua_State *L, uint64_t budget, int n, const char *const *body,
		    const size_t *len, struct vl_reply *r, vl_served_fn *fn, void *arg)
{
	for (int i = 0; i < n; i++) {
		vl_sandbox_budget(L, budget);
		vl_sandbox_call(L, body[i], len[i], r);
		fn(arg, i, r, 0, 0);
	}
}
