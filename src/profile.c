/*
 * profile.c - container parameters, SAP-style profile parameters.  Every
 * field of vmc_config_t that an administrator may tune has a profile key
 * ("vmc/pool_size"; the short form "pool_size" is accepted too).  A
 * configuration is built in three layers, each overriding the one before:
 * the built-in defaults, then the profile file named by $VMC_PROFILE (lines
 * of `key = value`, '#' starts a comment), then one environment variable per
 * key, VMC_ + the key upper-cased (VMC_POOL_SIZE, VMC_PAGE_KIND,
 * VMC_MEMORY_ISOLATION, ...).  Other VMC_* variables are left alone: other
 * tools may use the prefix.  All keys live in one table below; parsing,
 * validation and error messages are driven by it.  Values are checked for
 * syntax and range only; granule alignment of sizes is vmc_create's job.
 */
#include "internal.h"
#include "os/os.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROFILE_MAX (64 * 1024)   /* largest profile file we read */

enum key_type { KEY_SIZE, KEY_UINT, KEY_BOOL, KEY_PAGE_KIND, KEY_FUND_POLICY, KEY_ADDR,
		KEY_PATH };

struct key {
	const char *name;         /* short form; the profile key is "vmc/" name */
	enum key_type type;
	size_t off;               /* offsetof(vmc_config_t, field) */
	uint64_t min, max;        /* accepted range (named values: enum values) */
};

#define KEY(f, t, lo, hi) { #f, t, offsetof(vmc_config_t, f), lo, hi }
static const struct key keys[] = {
	KEY(pool_size,        KEY_SIZE, 0, UINT64_MAX),
	KEY(fund_size,        KEY_SIZE, 0, UINT64_MAX),
	KEY(fund_policy,      KEY_FUND_POLICY, VMC_FUND_UPFRONT, VMC_FUND_ONDEMAND),
	KEY(fund_batch,       KEY_SIZE, 0, UINT64_MAX),
	KEY(window_size,      KEY_SIZE, 0, UINT64_MAX),
	KEY(granule_size,     KEY_SIZE, 0, 2u << 20),
	KEY(span_total,       KEY_SIZE, 0, UINT64_MAX),
	KEY(populate_limit,   KEY_SIZE, 0, UINT64_MAX),
	KEY(code_cache_size,  KEY_SIZE, 0, UINT64_MAX),
	KEY(region_space,     KEY_SIZE, 0, UINT64_MAX),
	KEY(reserve_size,     KEY_SIZE, 0, UINT64_MAX),
	KEY(max_vms,          KEY_UINT, 1, 65536),
	KEY(max_workers,      KEY_UINT, 1, 4096),
	KEY(worker_cache,     KEY_UINT, 1, 4096),
	KEY(page_kind,        KEY_PAGE_KIND, VMC_PAGE_AUTO, VMC_PAGE_4K),
	KEY(memory_isolation, KEY_BOOL, 0, 1),
	KEY(verbose,          KEY_BOOL, 0, 1),
	KEY(code_cache_protect, KEY_BOOL, 0, 1),
	KEY(arena_base,       KEY_ADDR, 0, 1ull << 47),
	KEY(wake_on_attach,   KEY_BOOL, 0, 1),
	KEY(hibernate_dir,    KEY_PATH, 1, 255),   /* min, max: string length */
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* The words of the named-value keys, indexed by their enum values. */
static const char *const page_kinds[] = { "auto", "hugetlb", "thp", "4k", NULL };
static const char *const fund_policies[] = { "upfront", "ondemand", NULL };

static const vmc_config_t defaults = {
	.pool_size = 1ull << 30, .fund_size = 256ull << 20,
	.fund_policy = VMC_FUND_UPFRONT, .fund_batch = 0,
	.window_size = 1ull << 30, .code_cache_size = 0,
	.region_space = 64ull << 30, .reserve_size = 0,
	.max_vms = 256, .max_workers = 64, .worker_cache = 32,
	.page_kind = VMC_PAGE_AUTO, .memory_isolation = 1, .verbose = 0,
	.populate_limit = 16ull << 20,
	.hibernate_dir = "/var/tmp/vmc",
	.progress = NULL, .progress_arg = NULL,
};

/* Parse s as a value of key k into *v; 1 if valid and in range. */
static int parse_value(const struct key *k, const char *s, uint64_t *v)
{
	const char *const *words;
	char *end;
	size_t i;

	switch (k->type) {
	case KEY_SIZE:
		return vmc_parse_size(s, v) == 0 && *v >= k->min && *v <= k->max;
	case KEY_UINT:
	case KEY_BOOL:
		if (*s < '0' || *s > '9')
			return 0;
		errno = 0;
		*v = strtoull(s, &end, 10);
		return !errno && !*end && *v >= k->min && *v <= k->max;
	case KEY_PAGE_KIND:
	case KEY_FUND_POLICY:
		words = k->type == KEY_PAGE_KIND ? page_kinds : fund_policies;
		for (i = 0; words[i]; i++)
			if (!strcasecmp(s, words[i]))
				return *v = i, 1;
		return 0;
	case KEY_ADDR:   /* an address: hex with 0x, or decimal */
		if (*s < '0' || *s > '9')
			return 0;
		errno = 0;
		*v = strtoull(s, &end, 0);
		return !errno && !*end && *v >= k->min && *v <= k->max;
	case KEY_PATH:
		*v = strlen(s);
		return *s == '/' && *v >= k->min && *v <= k->max;
	}
	return 0;
}

/* Set key k from the string val; ctx describes the assignment for errors
 * ("profile F line N: vmc/key = val", "environment VMC_KEY=val"). */
static int apply(vmc_config_t *cfg, const struct key *k, const char *val,
		 const char *ctx)
{
	char *field = (char *)cfg + k->off;
	uint64_t v = 0;

	if (!parse_value(k, val, &v)) {
		switch (k->type) {
		case KEY_SIZE:
			return vmc_fail(VMC_EPROFILE, "%s: expected a size in bytes "
					"with an optional K/M/G/T suffix, e.g. 512M or 8G, "
					"below 16 EiB", ctx);
		case KEY_UINT:
			return vmc_fail(VMC_EPROFILE, "%s: expected a number %llu..%llu",
					ctx, (unsigned long long)k->min,
					(unsigned long long)k->max);
		case KEY_BOOL:
			return vmc_fail(VMC_EPROFILE, "%s: expected 0 or 1", ctx);
		case KEY_PAGE_KIND:
			return vmc_fail(VMC_EPROFILE, "%s: expected auto, hugetlb, "
					"thp or 4k", ctx);
		case KEY_FUND_POLICY:
			return vmc_fail(VMC_EPROFILE, "%s: expected upfront or ondemand",
					ctx);
		case KEY_ADDR:
			return vmc_fail(VMC_EPROFILE, "%s: expected an address (0x... "
					"or decimal) below 2^47, or 0 for the default", ctx);
		case KEY_PATH:
			return vmc_fail(VMC_EPROFILE, "%s: expected an absolute path "
					"of at most %llu characters", ctx,
					(unsigned long long)k->max);
		}
	}
	if (k->type == KEY_PATH)
		memcpy(field, val, (size_t)v + 1);   /* parse_value checked the length */
	else if (k->type == KEY_SIZE || k->type == KEY_ADDR)
		*(uint64_t *)(void *)field = v;
	else if (k->type == KEY_UINT)
		*(uint32_t *)(void *)field = (uint32_t)v;
	else
		*(int *)(void *)field = (int)v;
	return 0;
}

/* Under the on-demand policy fund_size defaults to 0 (vmc.h): a fund_size
 * still at the up-front default when the policy becomes ondemand is
 * cleared.  Run after every layer that may set the policy. */
static void ondemand_default(vmc_config_t *cfg)
{
	if (cfg->fund_policy == VMC_FUND_ONDEMAND && cfg->fund_size == defaults.fund_size)
		cfg->fund_size = 0;
}

/* Look up key (long or short form) and set it; where ("profile F line N: ",
 * or "" for a single setting) prefixes messages. */
static int set_key(vmc_config_t *cfg, const char *where, const char *key,
		   const char *val)
{
	const char *name = strncmp(key, "vmc/", 4) ? key : key + 4;
	char ctx[512], known[NKEYS * 24] = "";
	size_t i, n = 0;

	for (i = 0; i < NKEYS; i++) {
		if (!strcmp(name, keys[i].name)) {
			snprintf(ctx, sizeof ctx, "%svmc/%s = %.64s", where,
				 keys[i].name, val);
			int err = apply(cfg, &keys[i], val, ctx);
			if (!err && keys[i].off == offsetof(vmc_config_t, fund_policy))
				ondemand_default(cfg);
			return err;
		}
	}
	for (i = 0; i < NKEYS && n < sizeof known; i++)
		n += (size_t)snprintf(known + n, sizeof known - n, "%svmc/%s",
				      i ? ", " : "", keys[i].name);
	return vmc_fail(VMC_EPROFILE, "%sunknown key \"%.64s\" (known: %s)",
			where, key, known);
}

/* Trim whitespace around [s, e) and NUL-terminate it. */
static char *trim(char *s, char *e)
{
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = 0;
	return s;
}

int vmc_config_set(vmc_config_t *cfg, const char *key, const char *value)
{
	if (!cfg || !key || !value)
		return vmc_fail(VMC_EPROFILE, "setting a parameter: no %s given (NULL)",
				!cfg ? "configuration" : !key ? "key" : "value");
	return set_key(cfg, "", key, value);
}

int vmc_config_load(vmc_config_t *cfg, const char *path)
{
	char *buf, *line, *next, *end, *hash, *eq, *key, where[320];
	unsigned lineno = 0;
	ssize_t n;
	int err = 0;

	if (!cfg || !path)
		return vmc_fail(EINVAL, "loading a profile: no %s given (NULL)",
				!cfg ? "configuration" : "file name");
	if (!(buf = malloc(PROFILE_MAX + 2)))
		return vmc_fail(ENOMEM, "profile %s: no memory for a %d KiB "
				"read buffer", path, PROFILE_MAX / 1024);
	n = vmc_os_read_file(path, buf, PROFILE_MAX + 2);
	if (n < 0)
		err = vmc_fail((int)-n, "profile %s: cannot read it: %s", path,
			       vmc_strerror((int)-n));
	else if (n > PROFILE_MAX)
		err = vmc_fail(EFBIG, "profile %s: larger than %d KiB; a profile "
			       "is a short list of key = value lines", path,
			       PROFILE_MAX / 1024);
	else if (memchr(buf, 0, (size_t)n))
		err = vmc_fail(VMC_EPROFILE, "profile %s: contains a NUL byte; "
			       "expected a text file of key = value lines", path);
	for (line = buf; !err && line < buf + n; line = next) {
		end = memchr(line, '\n', (size_t)(buf + n - line));
		if (!end)
			end = buf + n;
		next = end + 1;
		lineno++;
		if ((hash = memchr(line, '#', (size_t)(end - line))))
			end = hash;
		line = trim(line, end);
		if (!*line)
			continue;
		snprintf(where, sizeof where, "profile %s line %u: ", path, lineno);
		if (!(eq = strchr(line, '='))) {
			err = vmc_fail(VMC_EPROFILE, "%sexpected \"key = value\", "
				       "got \"%.64s\"", where, line);
			break;
		}
		key = trim(line, eq);
		err = set_key(cfg, where, key, trim(eq + 1, eq + 1 + strlen(eq + 1)));
	}
	free(buf);
	return err;
}

int vmc_config_init(vmc_config_t *cfg)
{
	const char *profile, *val;
	char env[32], ctx[512];
	size_t i, j;
	int err;

	if (!cfg)
		return vmc_fail(EINVAL, "no configuration to fill in (NULL)");
	*cfg = defaults;
	profile = getenv("VMC_PROFILE");
	if (profile && *profile && (err = vmc_config_load(cfg, profile)))
		return err;
	for (i = 0; i < NKEYS; i++) {
		memcpy(env, "VMC_", 4);
		for (j = 0; keys[i].name[j] && j + 5 < sizeof env; j++)
			env[4 + j] = (char)toupper((unsigned char)keys[i].name[j]);
		env[4 + j] = 0;
		val = getenv(env);
		if (!val || !*val)   /* unset or empty: no override */
			continue;
		snprintf(ctx, sizeof ctx, "environment %s=%.64s", env, val);
		if ((err = apply(cfg, &keys[i], val, ctx)))
			return err;
	}
	ondemand_default(cfg);
	return 0;
}
