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
 * attached.  vl_host_init_times measures both ways.
 */
#include "host.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
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

int tenant_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > VL_NAME_MAX || !isalnum((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
			return 0;
	return 1;
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

static struct tenant *new_tenant(struct vl_host *h, const char *name, uint64_t limit)
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
	t->limit = limit;
	t->owner = t->last = t->proc = -1;
	return t;
}

/* Run the script in the tenant's VM (attach, load, detach). */
static int load_in_vm(struct vl_host *h, uint32_t vm, const char *name, const char *src,
		      size_t len, char *err, size_t n)
{
	void *base;
	int e = vmc_attach(h->c, vm, &base);
	if (e)
		return vmc_err(err, n, "vmc_attach", e);
	lua_State *L = vl_vm_state(h->c);
	vl_log_prefix("dispatcher %s", name);
	e = L ? vl_sandbox_load(L, name, src, len, err, n) : -1;
	if (!L)
		snprintf(err, n, "the VM holds no Lua state");
	vmc_detach(h->c, vm);
	return e;
}

static int check(struct vl_host *h, const char *name, char *err, size_t n)
{
	if (!tenant_name_ok(name)) {
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

int vl_host_add(struct vl_host *h, const char *name, const char *src, size_t len,
		uint64_t limit, char *err, size_t n)
{
	uint32_t vm = 0, tpl;
	lua_State *L = NULL;
	int e;

	limit = round_limit(limit ? limit : h->o.limit);
	if (check(h, name, err, n))
		return -1;
	if (h->o.mode == VL_PROCS && h->nw >= VL_LG_TENANTS) {
		snprintf(err, n, "at most %d tenant processes", VL_LG_TENANTS);
		return -1;
	}
	if (h->o.mode == VL_VMC) {
		if (h->o.clone) {
			if (template_for(h, limit, &tpl, err, n))
				return -1;
			if ((e = vmc_vm_clone(h->c, tpl, name, &vm)))
				return vmc_err(err, n, "vmc_vm_clone", e);
		} else if (scratch_vm(h, name, limit, &vm, err, n)) {
			return -1;
		}
		if (load_in_vm(h, vm, name, src, len, err, n)) {
			vmc_vm_destroy(h->c, vm);
			return -1;
		}
	} else {
		/* VL_PROCS loads it here too, to report errors now */
		if (!(L = vl_plain_new(limit, err, n)))
			return -1;
		vl_log_prefix("dispatcher %s", name);
		if (vl_sandbox_load(L, name, src, len, err, n)) {
			vl_plain_close(L);
			return -1;
		}
		if (h->o.mode == VL_PROCS) {
			vl_plain_close(L);
			L = NULL;
		}
	}
	struct tenant *t = new_tenant(h, name, limit);
	if (!t) {
		snprintf(err, n, "out of memory");
		return -1;
	}
	t->vm = vm;
	t->L = L;
	if (h->o.mode == VL_PROCS) {
		int wi = host_new_worker(h);
		t->src = malloc(len + 1);
		if (wi < 0 || !t->src) {
			snprintf(err, n, "out of memory");
			return -1;
		}
		memcpy(t->src, src, len);
		t->srclen = len;
		t->proc = wi;
		h->nt++;
		if (host_spawn(h, wi, h->nt - 1, err, n))
			return -1;
	} else {
		h->nt++;
	}
	hash_add(h, h->nt - 1);
	return h->nt - 1;
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
	if (check(h, name, err, n))
		return -1;
	if ((e = vmc_vm_clone(h->c, h->t[s].vm, name, &vm)))
		return vmc_err(err, n, "vmc_vm_clone", e);
	struct tenant *t = new_tenant(h, name, h->t[s].limit);
	if (!t) {
		vmc_vm_destroy(h->c, vm);
		snprintf(err, n, "out of memory");
		return -1;
	}
	t->vm = vm;
	h->nt++;
	hash_add(h, h->nt - 1);
	return h->nt - 1;
}

/* "-- vmc-lua: limit = 4M" in the first 512 bytes sets the limit. */
static uint64_t script_limit(const char *src, size_t len)
{
	char head[513], *p;
	uint64_t v;
	memcpy(head, src, len < 512 ? len : 512);
	head[len < 512 ? len : 512] = 0;
	if (!(p = strstr(head, "vmc-lua:")) || !(p = strstr(p, "limit")) || !(p = strchr(p, '=')))
		return 0;
	char tok[32] = "";
	sscanf(p + 1, " %31[0-9KMGkmg]", tok);
	return vl_parse_size(tok, &v) ? 0 : v;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vl_host_add_file(struct vl_host *h, const char *name, const char *path, char *err,
		     size_t n)
{
	FILE *f = fopen(path, "r");
	char *src = NULL, e2[512];
	long len = -1;
	int rc = -1;

	if (f && !fseek(f, 0, SEEK_END) && (len = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
	    (src = malloc((size_t)len + 1)) && fread(src, 1, (size_t)len, f) == (size_t)len) {
		rc = vl_host_add(h, name, src, (size_t)len, script_limit(src, (size_t)len), e2,
				 sizeof e2);
		if (rc < 0)
			snprintf(err, n, "%s: %s", path, e2);
	} else {
		snprintf(err, n, "%s: %s", path, strerror(errno));
	}
	if (f)
		fclose(f);
	free(src);
	return rc;
}

int vl_host_add_dir(struct vl_host *h, const char *dir, char *err, size_t n)
{
	DIR *d = opendir(dir);
	char *names[VL_LG_TENANTS];
	int k = 0, added = 0;
	struct dirent *e;

	if (!d) {
		snprintf(err, n, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) && k < VL_LG_TENANTS) {
		size_t l = strlen(e->d_name);
		if (l > 4 && !strcmp(e->d_name + l - 4, ".lua"))
			names[k++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)k, sizeof names[0], cmp);
	for (int i = 0; i < k && added >= 0; i++) {
		char path[4096], tname[VL_NAME_MAX + 1];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		snprintf(tname, sizeof tname, "%.*s", (int)strlen(names[i]) - 4, names[i]);
		added = vl_host_add_file(h, tname, path, err, n) < 0 ? -1 : added + 1;
	}
	for (int i = 0; i < k; i++)
		free(names[i]);
	if (added == 0)
		snprintf(err, n, "%s: no *.lua tenants", dir);
	return added > 0 ? added : -1;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
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
	qsort(s, (size_t)samples, sizeof s[0], cmpd);
	qsort(c, (size_t)samples, sizeof c[0], cmpd);
	*scratch_us = s[samples / 2];
	*clone_us = c[samples / 2];
	return 0;
}
