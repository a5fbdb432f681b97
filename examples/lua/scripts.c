/*
 * scripts.c - tenants' scripts and their files: reading a script (and the
 * limit and budget its header line sets), adding a tenant from a file, and
 * every NAME.lua of a directory.
 *
 * A script that does not load (a syntax error, no handle, an error or a
 * memory or CPU limit at its top level) still makes a tenant when it comes
 * from a file: a *broken* one, which answers every request with the reason
 * until a reload succeeds.  The other tenants serve on.
 */
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "-- vmc-lua: limit = 4M, budget = 20M" in the first 512 bytes: the
 * limit in bytes (K, M, G: powers of 1024), the budget in Lua
 * instructions (K, M, G: powers of 1000). */
static void script_header(const char *src, size_t len, uint64_t *limit, uint64_t *budget)
{
	char head[513], tok[32], *p, *v;
	memcpy(head, src, len < 512 ? len : 512);
	head[len < 512 ? len : 512] = 0;
	*limit = *budget = 0;
	if (!(p = strstr(head, "vmc-lua:")))
		return;
	p[strcspn(p, "\n")] = 0;
	if ((v = strstr(p, "limit")) && (v = strchr(v, '=')) &&
	    sscanf(v + 1, " %31[0-9KMGkmg]", tok) == 1 && vl_parse_size(tok, limit))
		*limit = 0;
	if ((v = strstr(p, "budget")) && (v = strchr(v, '=')) &&
	    sscanf(v + 1, " %31[0-9KMGkmg]", tok) == 1 && vl_parse_count(tok, budget))
		*budget = 0;
}

static char *read_file(const char *path, size_t *len, char *err, size_t n)
{
	FILE *f;
	char *src = NULL;
	long l = -1;
	errno = 0;
	if ((f = fopen(path, "r")) && !fseek(f, 0, SEEK_END) && (l = ftell(f)) >= 0 &&
	    !fseek(f, 0, SEEK_SET) &&
	    (src = malloc((size_t)l + 1)) && fread(src, 1, (size_t)l, f) == (size_t)l) {
		src[l] = 0;
		*len = (size_t)l;
	} else {
		snprintf(err, n, "%s: %s", path, errno ? strerror(errno) : "cannot read it");
		free(src);
		src = NULL;
	}
	if (f)
		fclose(f);
	return src;
}

char *tenant_script(struct vl_host *h, int ti, int from_file, size_t *len, char *err, size_t n)
{
	struct tenant *t = &h->t[ti];
	char *src;
	uint64_t limit, budget;
	if (from_file && t->path) {
		if ((src = read_file(t->path, len, err, n))) {
			script_header(src, *len, &limit, &budget);
			t->budget = budget ? budget : h->o.budget;   /* the limit stays: it is the VM's */
		}
		return src;
	}
	if (!t->src) {
		snprintf(err, n, "tenant '%s' has no script", t->name);
		return NULL;
	}
	if ((src = malloc(t->srclen + 1))) {
		memcpy(src, t->src, t->srclen + 1);
		*len = t->srclen;
	} else {
		snprintf(err, n, "out of memory");
	}
	return src;
}

int vl_host_add_file(struct vl_host *h, const char *name, const char *path, char *err,
		     size_t n)
{
	uint64_t limit, budget;
	size_t len;
	char e2[1024];
	char *src = read_file(path, &len, err, n);
	int ti = -1;

	if (!src || tenant_check(h, name, err, n)) {
		free(src);
		return -1;
	}
	script_header(src, len, &limit, &budget);
	*err = 0;
	if ((ti = vl_host_add(h, name, src, len, limit, budget, e2, sizeof e2)) < 0 &&
	    (ti = tenant_register(h, name, path, limit, budget, err, n)) >= 0) {
		struct tenant *t = &h->t[ti];
		snprintf(err, n, "%s", e2);
		tenant_set_msg(t, e2);
		t->src = src;
		t->srclen = len;
		return ti;
	}
	if (ti >= 0 && !(h->t[ti].path = strdup(path)))
		ti = -1;
	free(src);
	return ti;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vl_host_add_dir(struct vl_host *h, const char *dir, char *err, size_t n)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	int k = 0, cap = 0, added = 0;
	struct dirent *e;

	free(h->dir);
	if (!d || !(h->dir = strdup(dir))) {
		snprintf(err, n, "%s: %s", dir, d ? "out of memory" : strerror(errno));
		if (d)
			closedir(d);
		return -1;
	}
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l <= 4 || strcmp(e->d_name + l - 4, ".lua"))
			continue;
		if (k == cap) {
			char **nn = realloc(names, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *nn);
			if (!nn)
				break;
			names = nn;
		}
		if (!(names[k] = strdup(e->d_name)))
			break;
		k++;
	}
	closedir(d);
	if (k)
		qsort(names, (size_t)k, sizeof names[0], cmp);
	for (int i = 0; i < k && added >= 0; i++) {
		char path[4096], tname[VL_NAME_MAX + 1];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		snprintf(tname, sizeof tname, "%.*s", (int)strlen(names[i]) - 4, names[i]);
		added = vl_host_add_file(h, tname, path, err, n) < 0 ? -1 : added + 1;
	}
	for (int i = 0; i < k; i++)
		free(names[i]);
	free(names);
	if (added == 0)
		snprintf(err, n, "%s: no *.lua tenants", dir);
	return added > 0 ? added : -1;
}
