/*
 * test_profile.c - profile parameters: defaults, vmc_config_set for every
 * key and type, profile files, environment overrides and the messages that
 * bad input produces.
 */
#include "vmc.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

static const char *const env_names[] = {
	"VMC_PROFILE", "VMC_POOL_SIZE", "VMC_FUND_SIZE", "VMC_WINDOW_SIZE",
	"VMC_CODE_CACHE_SIZE", "VMC_REGION_SPACE", "VMC_RESERVE_SIZE",
	"VMC_MAX_VMS", "VMC_MAX_WORKERS", "VMC_WORKER_CACHE", "VMC_PAGE_KIND",
	"VMC_MEMORY_ISOLATION", "VMC_VERBOSE",
};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
		unsetenv(env_names[i]);
}

/* Write text into a fresh file under /tmp; path gets its name. */
static int write_tmp(char path[64], const char *text)
{
	FILE *f;
	int fd;

	strcpy(path, "/tmp/vmc_profile_XXXXXX");
	if ((fd = mkstemp(path)) < 0)
		return -1;
	if (!(f = fdopen(fd, "w"))) {
		close(fd);
		return -1;
	}
	fputs(text, f);
	return fclose(f);
}

static vmc_config_t fresh(void)
{
	vmc_config_t c;
	clear_env();
	if (vmc_config_init(&c) != 0)
		fprintf(stderr, "vmc_config_init: %s\n", vmc_errmsg());
	return c;
}

TEST(defaults)
{
	vmc_config_t c;

	clear_env();
	memset(&c, 0xab, sizeof c);
	CHECK_EQ(vmc_config_init(&c), 0);
	CHECK(c.pool_size == 1ull << 30);
	CHECK(c.fund_size == 256ull << 20);
	CHECK(c.window_size == 1ull << 30);
	CHECK(c.code_cache_size == 0);
	CHECK(c.region_space == 64ull << 30);
	CHECK(c.reserve_size == 0);
	CHECK_EQ(c.max_vms, 256);
	CHECK_EQ(c.max_workers, 64);
	CHECK_EQ(c.worker_cache, 32);
	CHECK_EQ(c.page_kind, VMC_PAGE_AUTO);
	CHECK_EQ(c.memory_isolation, 1);
	CHECK_EQ(c.verbose, 0);
	CHECK(c.progress == NULL);
	CHECK(c.progress_arg == NULL);

	setenv("VMC_PROFILE", "", 1);        /* empty: no profile */
	CHECK_EQ(vmc_config_init(&c), 0);
	setenv("VMC_SOMETHING_ELSE", "x", 1); /* not ours: ignored */
	CHECK_EQ(vmc_config_init(&c), 0);
	unsetenv("VMC_SOMETHING_ELSE");
	clear_env();
}

TEST(set_every_key_both_forms)
{
	for (int form = 0; form < 2; form++) {
		vmc_config_t c = fresh();
		const char *p = form ? "vmc/" : "";
		char k[64];
#define SET(key, val) \
	(snprintf(k, sizeof k, "%s%s", p, key), vmc_config_set(&c, k, val))
		CHECK_EQ(SET("pool_size", "2G"), 0);
		CHECK_EQ(SET("fund_size", "512M"), 0);
		CHECK_EQ(SET("window_size", "4G"), 0);
		CHECK_EQ(SET("code_cache_size", "64M"), 0);
		CHECK_EQ(SET("region_space", "1T"), 0);
		CHECK_EQ(SET("reserve_size", "32M"), 0);
		CHECK_EQ(SET("max_vms", "65536"), 0);
		CHECK_EQ(SET("max_workers", "4096"), 0);
		CHECK_EQ(SET("worker_cache", "1"), 0);
		CHECK_EQ(SET("page_kind", "thp"), 0);
		CHECK_EQ(SET("memory_isolation", "0"), 0);
		CHECK_EQ(SET("verbose", "0"), 0);
#undef SET
		CHECK(c.pool_size == 2ull << 30);
		CHECK(c.fund_size == 512ull << 20);
		CHECK(c.window_size == 4ull << 30);
		CHECK(c.code_cache_size == 64ull << 20);
		CHECK(c.region_space == 1ull << 40);
		CHECK(c.reserve_size == 32ull << 20);
		CHECK_EQ(c.max_vms, 65536);
		CHECK_EQ(c.max_workers, 4096);
		CHECK_EQ(c.worker_cache, 1);
		CHECK_EQ(c.page_kind, VMC_PAGE_THP);
		CHECK_EQ(c.memory_isolation, 0);
		CHECK_EQ(c.verbose, 0);
	}
}

TEST(page_kinds)
{
	vmc_config_t c = fresh();

	CHECK_EQ(vmc_config_set(&c, "page_kind", "hugetlb"), 0);
	CHECK_EQ(c.page_kind, VMC_PAGE_HUGETLB);
	CHECK_EQ(vmc_config_set(&c, "page_kind", "4K"), 0);
	CHECK_EQ(c.page_kind, VMC_PAGE_4K);
	CHECK_EQ(vmc_config_set(&c, "vmc/page_kind", "THP"), 0);
	CHECK_EQ(c.page_kind, VMC_PAGE_THP);
	CHECK_EQ(vmc_config_set(&c, "page_kind", "Auto"), 0);
	CHECK_EQ(c.page_kind, VMC_PAGE_AUTO);
}

TEST(size_suffixes)
{
	vmc_config_t c = fresh();
	static const struct { const char *s; uint64_t v; } t[] = {
		{ "0", 0 }, { "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 },
		{ "2M", 2ull << 20 }, { "2m", 2ull << 20 }, { "3G", 3ull << 30 },
		{ "3g", 3ull << 30 }, { "2T", 2ull << 40 }, { "2t", 2ull << 40 },
		{ "16777215T", 16777215ull << 40 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		c.pool_size = 12345;
		CHECK_EQ(vmc_config_set(&c, "pool_size", t[i].s), 0);
		CHECK(c.pool_size == t[i].v);
	}
}

TEST(bad_values)
{
	static const struct { const char *key, *val, *want; } t[] = {
		{ "pool_size", "abc", "K/M/G/T" },
		{ "vmc/fund_size", "", "K/M/G/T" },
		{ "window_size", "-1", "K/M/G/T" },
		{ "code_cache_size", "12X", "K/M/G/T" },
		{ "region_space", "16777216T", "K/M/G/T" },   /* 2^64: overflow */
		{ "reserve_size", " 5M", "K/M/G/T" },
		{ "max_vms", "0", "1..65536" },
		{ "max_vms", "65537", "1..65536" },
		{ "vmc/max_workers", "abc", "1..4096" },
		{ "max_workers", "4097", "1..4096" },
		{ "worker_cache", "-1", "1..4096" },
		{ "worker_cache", "1.5", "1..4096" },
		{ "worker_cache", "99999999999999999999999", "1..4096" },
		{ "max_vms", "", "1..65536" },
		{ "memory_isolation", "2", "expected 0 or 1" },
		{ "vmc/memory_isolation", "yes", "expected 0 or 1" },
		{ "verbose", "", "expected 0 or 1" },
		{ "verbose", "01x", "expected 0 or 1" },
		{ "page_kind", "huge", "auto, hugetlb, thp or 4k" },
		{ "page_kind", "", "auto, hugetlb, thp or 4k" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		vmc_config_t c = fresh(), before = c;
		const char *name = strncmp(t[i].key, "vmc/", 4) ? t[i].key : t[i].key + 4;
		char full[64];

		snprintf(full, sizeof full, "vmc/%s", name);
		CHECK_EQ(vmc_config_set(&c, t[i].key, t[i].val), VMC_EPROFILE);
		CHECK(errmsg_has(full));
		CHECK(errmsg_has(t[i].want));
		CHECK(memcmp(&c, &before, sizeof c) == 0);   /* unchanged */
	}
}

TEST(unknown_key)
{
	vmc_config_t c = fresh();

	CHECK_EQ(vmc_config_set(&c, "vmc/pool_sise", "1G"), VMC_EPROFILE);
	CHECK(errmsg_has("unknown key \"vmc/pool_sise\""));
	CHECK(errmsg_has("known: vmc/pool_size"));
	CHECK(errmsg_has("vmc/verbose"));
	CHECK_EQ(vmc_config_set(&c, "vmc/", "1"), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(&c, "", "1"), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(&c, "progress", "1"), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(&c, NULL, "1"), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(&c, "pool_size", NULL), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(NULL, "pool_size", "1G"), VMC_EPROFILE);
}

TEST(profile_file)
{
	char path[64];
	vmc_config_t c = fresh();

	REQUIRE(write_tmp(path,
		"# vmc profile\n"
		"\n"
		"vmc/pool_size = 8G\n"
		"   fund_size=1G   # trailing comment\n"
		"\t\n"
		"  # indented comment\n"
		"vmc/page_kind\t=\tHugeTLB\r\n"
		"vmc/max_vms = 100\n"
		"vmc/max_vms = 200\n"          /* later line wins */
		"vmc/memory_isolation = 0") == 0);  /* no final newline */
	CHECK_EQ(vmc_config_load(&c, path), 0);
	CHECK(c.pool_size == 8ull << 30);
	CHECK(c.fund_size == 1ull << 30);
	CHECK_EQ(c.page_kind, VMC_PAGE_HUGETLB);
	CHECK_EQ(c.max_vms, 200);
	CHECK_EQ(c.memory_isolation, 0);
	CHECK(c.window_size == 1ull << 30);   /* untouched */
	unlink(path);

	REQUIRE(write_tmp(path, "") == 0);     /* empty profile is fine */
	CHECK_EQ(vmc_config_load(&c, path), 0);
	unlink(path);
}

TEST(profile_then_env)
{
	char path[64];
	vmc_config_t c;

	REQUIRE(write_tmp(path, "vmc/pool_size = 2G\nvmc/max_vms = 17\n"
			  "vmc/page_kind = 4k\n") == 0);
	clear_env();
	setenv("VMC_PROFILE", path, 1);
	setenv("VMC_POOL_SIZE", "4G", 1);
	setenv("VMC_MEMORY_ISOLATION", "0", 1);
	setenv("VMC_PAGE_KIND", "thp", 1);
	CHECK_EQ(vmc_config_init(&c), 0);
	CHECK(c.pool_size == 4ull << 30);      /* env beats file */
	CHECK_EQ(c.max_vms, 17);               /* file beats default */
	CHECK_EQ(c.page_kind, VMC_PAGE_THP);
	CHECK_EQ(c.memory_isolation, 0);
	CHECK_EQ(c.max_workers, 64);           /* default */

	setenv("VMC_MAX_VMS", "abc", 1);
	CHECK_EQ(vmc_config_init(&c), VMC_EPROFILE);
	CHECK(errmsg_has("environment VMC_MAX_VMS=abc: expected a number 1..65536"));
	clear_env();
	unlink(path);
}

TEST(profile_unknown_key)
{
	char path[64], want[256];
	vmc_config_t c = fresh();

	REQUIRE(write_tmp(path, "# x\nvmc/max_vms = 9\nvmc/pool_sise = 1G\n"
			  "vmc/max_workers = 9\n") == 0);
	CHECK_EQ(vmc_config_load(&c, path), VMC_EPROFILE);
	snprintf(want, sizeof want, "profile %s line 3: unknown key "
		 "\"vmc/pool_sise\" (known: vmc/pool_size", path);
	CHECK(errmsg_has(want));
	CHECK_EQ(c.max_vms, 9);        /* applied before the bad line */
	CHECK_EQ(c.max_workers, 64);   /* not after it */
	unlink(path);
}

TEST(profile_bad_value)
{
	char path[64], want[256];
	vmc_config_t c = fresh();

	REQUIRE(write_tmp(path, "\n\n\nvmc/memory_isolation = 2 # no\n") == 0);
	CHECK_EQ(vmc_config_load(&c, path), VMC_EPROFILE);
	snprintf(want, sizeof want, "profile %s line 4: vmc/memory_isolation = 2: "
		 "expected 0 or 1", path);
	CHECK(errmsg_has(want));
	unlink(path);
}

TEST(profile_missing_equals)
{
	char path[64], want[256];
	vmc_config_t c = fresh();

	REQUIRE(write_tmp(path, "vmc/pool_size = 1G\nvmc/verbose 0\n") == 0);
	CHECK_EQ(vmc_config_load(&c, path), VMC_EPROFILE);
	snprintf(want, sizeof want, "profile %s line 2:", path);
	CHECK(errmsg_has(want));
	CHECK(errmsg_has("vmc/verbose 0"));
	unlink(path);
}

TEST(profile_missing_file)
{
	vmc_config_t c = fresh();
	const char *p = "/tmp/vmc_profile_does_not_exist.pfl";

	unlink(p);
	CHECK_EQ(vmc_config_load(&c, p), ENOENT);
	CHECK(errmsg_has(p));
	CHECK_EQ(vmc_config_load(&c, NULL), EINVAL);

	setenv("VMC_PROFILE", p, 1);
	CHECK_EQ(vmc_config_init(&c), ENOENT);
	CHECK(errmsg_has(p));
	clear_env();
}

TEST(profile_too_big)
{
	char path[64];
	vmc_config_t c = fresh();
	FILE *f;

	REQUIRE(write_tmp(path, "") == 0);
	REQUIRE((f = fopen(path, "w")) != NULL);
	for (int i = 0; i < 64 * 1024 / 16 + 1; i++)
		fputs("# padding......\n", f);   /* 16 bytes */
	fclose(f);
	CHECK_EQ(vmc_config_load(&c, path), EFBIG);
	CHECK(errmsg_has(path));

	REQUIRE((f = fopen(path, "w")) != NULL); /* exactly 64 KiB is fine */
	for (int i = 0; i < 64 * 1024 / 16; i++)
		fputs("# padding......\n", f);
	fclose(f);
	CHECK_EQ(vmc_config_load(&c, path), 0);
	unlink(path);
}

TEST(init_bad_profile)
{
	char path[64];
	vmc_config_t c;

	REQUIRE(write_tmp(path, "vmc/max_workers = 5\nvmc/max_workers = 0\n") == 0);
	clear_env();
	setenv("VMC_PROFILE", path, 1);
	CHECK_EQ(vmc_config_init(&c), VMC_EPROFILE);
	CHECK(errmsg_has(path));
	CHECK(errmsg_has("line 2"));
	CHECK(errmsg_has("vmc/max_workers"));
	CHECK_EQ(c.max_workers, 5);     /* defaults + lines before the bad one */
	CHECK(c.pool_size == 1ull << 30);
	clear_env();
	unlink(path);
}

int main(void)
{
	RUN(defaults);
	RUN(set_every_key_both_forms);
	RUN(page_kinds);
	RUN(size_suffixes);
	RUN(bad_values);
	RUN(unknown_key);
	RUN(profile_file);
	RUN(profile_then_env);
	RUN(profile_unknown_key);
	RUN(profile_bad_value);
	RUN(profile_missing_equals);
	RUN(profile_missing_file);
	RUN(profile_too_big);
	RUN(init_bad_profile);
	return test_done();
}
