/*
 * test_size.c - vmc_parse_size, the one size parser of vmc: what it
 * accepts (digits, K/M/G/T in any case, "B" and "iB"), what it refuses
 * and with which code (EINVAL for anything that is not a size, ERANGE for
 * a size past 64 bits), that a refused string leaves *out alone and
 * leaves a message that quotes it, and that profile values go through the
 * same parser.
 */
#include "test.h"
#include "vmc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#define SENTINEL 0x5a5a5a5aull

TEST(accepted)
{
	static const struct { const char *s; uint64_t v; } t[] = {
		{ "0", 0 }, { "1", 1 }, { "4096", 4096 }, { "007", 7 },
		{ "4k", 4096 }, { "4K", 4096 }, { "4KB", 4096 }, { "4kb", 4096 },
		{ "4KiB", 4096 }, { "4kib", 4096 }, { "4KIB", 4096 },
		{ "512M", 512ull << 20 }, { "512MiB", 512ull << 20 }, { "2m", 2ull << 20 },
		{ "3G", 3ull << 30 }, { "3GB", 3ull << 30 }, { "3gib", 3ull << 30 },
		{ "2T", 2ull << 40 }, { "2tib", 2ull << 40 },
		{ "4096B", 4096 }, { "4096b", 4096 }, { "0K", 0 },
		{ "16777215T", 16777215ull << 40 },
		{ "18446744073709551615", UINT64_MAX },          /* 2^64 - 1 */
		{ "18014398509481983K", UINT64_MAX >> 10 << 10 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t v = SENTINEL;
		int err = vmc_parse_size(t[i].s, &v);
		if (err || v != t[i].v)
			fprintf(stderr, "  \"%s\": %d, %llu (want %llu)\n", t[i].s, err,
				(unsigned long long)v, (unsigned long long)t[i].v);
		CHECK_EQ(err, 0);
		CHECK(v == t[i].v);
	}
}

TEST(refused)
{
	static const struct { const char *s; int err; } t[] = {
		{ "", EINVAL }, { "K", EINVAL }, { "iB", EINVAL }, { "abc", EINVAL },
		{ "-1", EINVAL }, { "-0", EINVAL }, { "+1", EINVAL }, { "-1G", EINVAL },
		{ " 1", EINVAL }, { "1 ", EINVAL }, { "\t1", EINVAL }, { "1\n", EINVAL },
		{ "1 G", EINVAL }, { "1G ", EINVAL },
		{ "1.5G", EINVAL }, { "0x10", EINVAL }, { "1e3", EINVAL },
		{ "12X", EINVAL }, { "1P", EINVAL }, { "1E", EINVAL }, { "1GG", EINVAL },
		{ "1Gi", EINVAL }, { "1iB", EINVAL }, { "1i", EINVAL }, { "1GBB", EINVAL },
		{ "1GiBx", EINVAL }, { "1Bk", EINVAL }, { "1,024", EINVAL },
		{ "18446744073709551616", ERANGE },              /* 2^64 */
		{ "99999999999999999999999", ERANGE },
		{ "16777216T", ERANGE },                         /* 2^64 by the suffix */
		{ "18014398509481984K", ERANGE },
		{ "17179869184GiB", ERANGE },
		{ "99999999999999999999999x", EINVAL },          /* not a size first */
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t v = SENTINEL;
		int err = vmc_parse_size(t[i].s, &v);
		if (err != t[i].err || v != SENTINEL)
			fprintf(stderr, "  \"%s\": %d, %llu (want %d)\n", t[i].s, err,
				(unsigned long long)v, t[i].err);
		CHECK_EQ(err, t[i].err);
		CHECK(v == SENTINEL);
	}
}

TEST(messages)
{
	uint64_t v;

	CHECK_EQ(vmc_parse_size("12X", &v), EINVAL);
	CHECK(strstr(vmc_errmsg(), "\"12X\" is not a size") != NULL);
	CHECK(strstr(vmc_errmsg(), "K, M, G or T") != NULL);
	CHECK_EQ(vmc_parse_size("16777216T", &v), ERANGE);
	CHECK(strstr(vmc_errmsg(), "\"16777216T\" is too large") != NULL);
	CHECK_EQ(vmc_parse_size(NULL, &v), EINVAL);
	CHECK(strstr(vmc_errmsg(), "NULL") != NULL);
	CHECK_EQ(vmc_parse_size("1", NULL), EINVAL);
}

/* Profile values are read by the same parser: what it takes, they take. */
TEST(profile_uses_it)
{
	vmc_config_t c;

	memset(&c, 0, sizeof c);
	CHECK_EQ(vmc_config_set(&c, "reserve_size", "2GiB"), 0);
	CHECK(c.reserve_size == 2ull << 30);
	CHECK_EQ(vmc_config_set(&c, "reserve_size", "64kb"), 0);
	CHECK(c.reserve_size == 64ull << 10);
	CHECK_EQ(vmc_config_set(&c, "reserve_size", "1.5G"), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(&c, "reserve_size", "16777216T"), VMC_EPROFILE);
	CHECK(c.reserve_size == 64ull << 10);
}

int main(void)
{
	RUN(accepted);
	RUN(refused);
	RUN(messages);
	RUN(profile_uses_it);
	return test_done();
}
