/*
 * test.h - a tiny CHECK-style harness.  Each test binary defines tests with
 * TEST(name) { ... }, registers them in main with RUN(name), and returns
 * test_done().  It prints "N passed, N failed" and exits non-zero on a
 * failure; test_skip(reason) exits 77 (ctest's SKIP_RETURN_CODE) with the
 * reason on stderr.
 */
#ifndef VMC_TEST_H
#define VMC_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_, test_cur_failed_;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",         \
				__FILE__, __LINE__, #cond);                  \
			test_cur_failed_ = 1;                                \
		}                                                            \
	} while (0)

/* CHECK_EQ for integers: prints both values. */
#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);          \
		if (a_ != b_) {                                              \
			fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s "  \
				"(%lld vs %lld)\n", __FILE__, __LINE__, #a,  \
				#b, a_, b_);                                 \
			test_cur_failed_ = 1;                                \
		}                                                            \
	} while (0)

/* Stop the current test if a check already failed (for setup steps). */
#define REQUIRE(cond)                                                        \
	do {                                                                 \
		CHECK(cond);                                                 \
		if (test_cur_failed_)                                        \
			return;                                              \
	} while (0)

#define RUN(name)                                                            \
	do {                                                                 \
		test_cur_failed_ = 0;                                        \
		name();                                                      \
		if (test_cur_failed_) {                                      \
			test_failed_++;                                      \
			fprintf(stderr, "FAIL %s\n", #name);                 \
		} else {                                                     \
			test_passed_++;                                      \
			fprintf(stderr, "ok   %s\n", #name);                 \
		}                                                            \
	} while (0)

static inline int test_done(void)
{
	printf("%d passed, %d failed\n", test_passed_, test_failed_);
	return test_failed_ ? 1 : 0;
}

static inline void test_skip(const char *reason)
{
	fprintf(stderr, "SKIP: %s\n", reason);
	printf("0 passed, 0 failed, 1 skipped\n");
	exit(77);
}

#endif
