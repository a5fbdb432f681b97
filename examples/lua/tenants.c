/*
 * tenants.c - making tenants.  In vmc mode a tenant is a VM named after it
 * that holds a sandboxed lua_State with its script loaded.  The state is
 * made in one of two ways:
 *   - from scratch: vmc_vm_create, attach, lua_newstate + the libraries
 *     (vl_vm_new_state), detach;
 *   - as a clone (the default): a template VM per memory limit holds a
 *     state with the libraries already open, and vmc_vm_clone copies its
 *     granules into the new VM.  The copy is a valid heap and a valid
 *     lua_State at once, because every VM appears at the same window
 *     address: no initialisation runs again.
 * Then the tenant's script runs once, in the dispatcher, with the VM
 * attached and under the tenant's CPU budget.
 * Scripts and their files are scripts.c's.
 */
#include "host.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t hash(const char *s, size_t n)
{
	uint32_t x = 2166136261u;
	for (size_t i = 0; i < n; i++)
		x = (x ^ (unsigned char)s[i]) * 16777619u;
	return x;
}

int tenant_lookup(struct vl_host *h, const char *name, size_t len)
{
	if (!h->hash)
		return -1;
	for (uint32_t i = hash(name, len) & h->hmask;; i = (i + 1) & h->hmask) {
		int k = h->hash[i] - 1;
		if (k < 0)
			return -1;
		if (!strncmp(h->t[k].name, name, len) && !h->t[k].name[len])
			return k;
	}
}

static int hash_add(struct vl_host *h, int k)
{
	if ((uint32_t)(2 * (h->nt + 1)) > h->hmask) {
		uint32_t size = h->hmask ? 2 * (h->hmask + 1) : 64;
		int *t = calloc(size, sizeof *t);
		if (!t)
			return -1;
		free(h->hash);
		h->hash = t;
		h->hmask = size - 1;
		for (int j = 0; j < h->nt; j++)
			if (j != k)
				hash_add(h, j);
	}
	uint32_t i = hash(h->t[k].name, strlen(h->t[k].name)) & h->hmask;
	while (h->hash[i])
		i = (i + 1) & h->hmask;
	h->hash[i] = k + 1;
	return 0;
}

int tenant_name_ok(const char *name, size_t n)
{
	if (n < 1 || n > VL_NAME_MAX || !isalnum((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
			return 0;
	return 1;
}

void tenant_set_msg(struct tenant *t, const char *msg)
{
	free(t->msg);
	t->msg = msg ? strdup(msg) : NULL;
}

static uint64_t round_limit(uint64_t limit)
{
	limit &= ~(uint64_t)(VMC_GRANULE_SIZE - 1);
	return limit ? limit : VMC_GRANULE_SIZE;
}

static int vmc_err(char *err, size_t n, const char *what, int e)
{
	snprintf(err, n, "%s: %s", what, *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(e));
	return -1;
}

/* A new VM `name` holding a fresh sandboxed state (from scratch). */
static int scratch_vm(struct vl_host *h, const char *name, uint64_t limit, uint32_t *vm,
		      char *err, size_t n)
{
	void *base;
	int e;
	if ((e = vmc_vm_create(h->c, name, limit, vm)))
		return vmc_err(err, n, "vmc_vm_create", e);
	if ((e = vmc_attach(h->c, *vm, &base))) {
		vmc_vm_destroy(h->c, *vm);
		return vmc_err(err, n, "vmc_attach", e);
	}
	e = vl_vm_new_state(h->c, err, n);
	vmc_detach(h->c, *vm);
	if (e)
		vmc_vm_destroy(h->c, *vm);
	return e;
}

/* The template VM for this limit (made on first use). */
static int template_for(struct vl_host *h, uint64_t limit, uint32_t *vm, char *err, size_t n)
{
	char name[64];
	for (int i = 0; i < h->ntpl; i++)
		if (h->tpl[i].limit == limit) {
			*vm = h->tpl[i].vm;
			return 0;
		}
	if (h->ntpl == (int)(sizeof h->tpl / sizeof h->tpl[0])) {
		snprintf(err, n, "too many different tenant limits");
		return -1;
	}
	snprintf(name, sizeof name, "_template-%lluM", (unsigned long long)(limit >> 20));
	if (scratch_vm(h, name, limit, vm, err, n))
		return -1;
	h->tpl[h->ntpl++] = (struct tpl){ limit, *vm };
	return 0;
}

/* A VM `name` with a fresh state and no script yet. */
static int fresh_vm(struct vl_host *h, const char *name, uint64_t limit, uint32_t *vm,
		    char *err, size_t n)
{
	uint32_t tpl;
	int e;
	if (!h->o.clone)
		return scratch_vm(h, name, limit, vm, err, n);
	if (template_for(h, limit, &tpl, err, n))
		return -1;
	if ((e = vmc_vm_clone(h->c, tpl, name, vm)))
		return vmc_err(err, n, "vmc_vm_clone", e);
	return 0;
}

int tenant_fresh_vm(struct vl_host *h, int ti, char *err, size_t n)
{
	struct tenant *t = &h->t[ti];
	int e;
	if (t->vm != VMC_NO_VM && (e = vmc_vm_destroy(h->c, t->vm)))
		return vmc_err(err, n, "vmc_vm_destroy", e);
	t->vm = VMC_NO_VM;
	t->hibernated = 0;    /* its image went with it */
	return fresh_vm(h, t->name, t->limit, &t->vm, err, n);
}

/* Run the script in VM vm (attach, load, detach). */
static int load_in_vm(struct vl_host *h, uint32_t vm, const char *name, const char *src,
		      size_t len, uint64_t budget, char *err, size_t n)
{
	int e = vl_vm_attach(h->c, vm);
	if (e)
		return vmc_err(err, n, "vmc_attach", e);
	lua_State *L = vl_vm_state(h->c);
	vl_log_prefix("dispatcher %s", name);
	if (L)
		vl_sandbox_budget(L, budget);
	e = L ? vl_sandbox_load(L, name, src, len, err, n) : -1;
	if (!L)
		snprintf(err, n, "the VM holds no Lua state");
	vmc_detach(h->c, vm);
	return e;
}

int tenant_check(struct vl_host *h, const char *name, char *err, size_t n)
{
	if (!tenant_name_ok(name, strlen(name))) {
		snprintf(err, n, "bad tenant name '%s' (1-%d of A-Z a-z 0-9 _ - ., starting with "
			 "a letter or digit)", name, VL_NAME_MAX);
		return -1;
	}
	if (tenant_lookup(h, name, strlen(name)) >= 0) {
		snprintf(err, n, "tenant '%s' exists", name);
		return -1;
	}
	return 0;
}

/* A new entry in h->t (not yet counted in h->nt). */
static struct tenant *new_tenant(struct vl_host *h, const char *name, uint64_t limit,
				 uint64_t budget)
{
	if (h->nt == h->capt) {
		int cap = h->capt ? 2 * h->capt : 16;
		struct tenant *t = realloc(h->t, (size_t)cap * sizeof *t);
		if (!t)
			return NULL;
		h->t = t;
		h->capt = cap;
	}
	struct tenant *t = &h->t[h->nt];
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->vm = VMC_NO_VM;
	t->limit = round_limit(limit ? limit : h->o.limit);
	t->budget = budget ? budget : h->o.budget;
	t->owner = t->last = t->proc = t->rprev = t->rnext = -1;
	t->idle_since = vl_now_ns();
	return t;
}

/* Count the entry new_tenant made. */
static int commit_tenant(struct vl_host *h)
{
	h->nt++;
	if (hash_add(h, h->nt - 1)) {
		h->nt--;
		return -1;
	}
	return h->nt - 1;
}

int vl_host_add(struct vl_host *h, const char *name, const char *src, size_t len,
		uint64_t limit, uint64_t budget, char *err, size_t n)
{
	uint32_t vm = VMC_NO_VM;
	lua_State *L = NULL;

	if (tenant_check(h, name, err, n))
		return -1;
	struct tenant *t = new_tenant(h, name, limit, budget);
	char *copy = malloc(len + 1);
	if (!t || !copy) {
		free(copy);
		snprintf(err, n, "out of memory");
		return -1;
	}
	memcpy(copy, src, len);
	copy[len] = 0;
	if (h->o.mode == VL_VMC) {
		if (fresh_vm(h, name, t->limit, &vm, err, n))
			goto fail;
		if (load_in_vm(h, vm, name, src, len, t->budget, err, n)) {
			vmc_vm_destroy(h->c, vm);
			goto fail;
		}
	} else {
		/* VL_PROCS loads it here too, to report errors now */
		if (!(L = vl_plain_new(t->limit, err, n)))
			goto fail;
		vl_log_prefix("dispatcher %s", name);
		vl_sandbox_budget(L, t->budget);
		if (vl_sandbox_load(L, name, src, len, err, n)) {
			vl_plain_close(L);
			goto fail;
		}
		if (h->o.mode == VL_PROCS) {
			vl_plain_close(L);
			L = NULL;
		}
	}
	t->vm = vm;
	t->L = L;
	t->src = copy;
	t->srclen = len;
	int ti = commit_tenant(h);
	if (ti < 0 || h->o.mode != VL_PROCS)
		return ti;
	int wi = host_new_worker(h);
	if (wi < 0) {
		snprintf(err, n, "out of memory");
		return -1;
	}
	h->t[ti].proc = wi;
	return host_spawn(h, wi, ti, err, n) ? -1 : ti;
fail:
	free(copy);
	return -1;
}

int tenant_register(struct vl_host *h, const char *name, const char *path, uint64_t limit,
		    uint64_t budget, char *err, size_t n)
{
	if (tenant_check(h, name, err, n))
		return -1;
	struct tenant *t = new_tenant(h, name, limit, budget);
	if (!t || !(t->path = strdup(path))) {
		snprintf(err, n, "out of memory");
		return -1;
	}
	t->state = VL_T_BROKEN;
	tenant_set_msg(t, "not loaded yet");
	return commit_tenant(h);
}

int vl_host_clone(struct vl_host *h, const char *src, const char *name, char *err, size_t n)
{
	uint32_t vm;
	int s = tenant_lookup(h, src, strlen(src)), e;
	if (h->o.mode != VL_VMC) {
		snprintf(err, n, "clones need vmc mode");
		return -1;
	}
	if (s < 0) {
		snprintf(err, n, "no tenant '%s'", src);
		return -1;
	}
	if (tenant_check(h, name, err, n))
		return -1;
	if ((e = vmc_vm_clone(h->c, h->t[s].vm, name, &vm)))
		return vmc_err(err, n, "vmc_vm_clone", e);
	struct tenant *t = new_tenant(h, name, h->t[s].limit, h->t[s].budget);
	char *copy = t ? malloc(h->t[s].srclen + 1) : NULL;
	if (!copy) {
		vmc_vm_destroy(h->c, vm);
		snprintf(err, n, "out of memory");
		return -1;
	}
	memcpy(copy, h->t[s].src, h->t[s].srclen + 1);
	t->src = copy;
	t->srclen = h->t[s].srclen;
	t->vm = vm;
	return commit_tenant(h);
}

int vl_host_init_times(struct vl_host *h, int samples, double *scratch_us, double *clone_us)
{
	double s[64], c[64];
	char err[256], name[64];
	uint32_t vm, tpl;
	uint64_t limit = round_limit(h->o.limit);

	if (h->o.mode != VL_VMC || samples < 1 || samples > 64 ||
	    template_for(h, limit, &tpl, err, sizeof err))
		return -1;
	for (int i = 0; i < samples; i++) {
		snprintf(name, sizeof name, "_scratch-%d", i);
		double t0 = vl_now();
		if (scratch_vm(h, name, limit, &vm, err, sizeof err))
			return -1;
		s[i] = (vl_now() - t0) * 1e6;
		vmc_vm_destroy(h->c, vm);
		snprintf(name, sizeof name, "_clone-%d", i);
		t0 = vl_now();
		if (vmc_vm_clone(h->c, tpl, name, &vm))
			return -1;
		c[i] = (vl_now() - t0) * 1e6;
		vmc_vm_destroy(h->c, vm);
	}
	*scratch_us = vl_quantile(s, (size_t)samples, 0.5);
	*clone_us = vl_quantile(c, (size_t)samples, 0.5);
	return 0;
}
