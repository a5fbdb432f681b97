/*
 * internal.h - what every library file shares: assertions, the per-thread
 * error message, and small helpers.  Nothing here is exported.
 */
#ifndef VMC_INTERNAL_H
#define VMC_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "vmc.h"

#define VMC_HIDDEN __attribute__((visibility("hidden")))

/* vmc_assert: internal invariants.  Always on in debug builds (NDEBUG unset);
 * vmc_assert_expensive only in debug builds, for O(n) checks. */
VMC_HIDDEN void vmc_assert_fail(const char *expr, const char *file, int line)
	__attribute__((noreturn));
#ifdef NDEBUG
#define vmc_assert(e) ((void)0)
#define vmc_assert_expensive(e) ((void)0)
#else
#define vmc_assert(e) ((e) ? (void)0 : vmc_assert_fail(#e, __FILE__, __LINE__))
#define vmc_assert_expensive(e) vmc_assert(e)
#endif

/* Record the detailed message for vmc_errmsg() and return err, so that
 * error paths read `return vmc_fail(EINVAL, "size %zu is not ...", n);`. */
VMC_HIDDEN int vmc_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
VMC_HIDDEN void vmc_clear_error(void);

/* bytes for a message: "64 KiB", "1.5 GiB", "12 bytes" (size.c). */
#define VMC_SIZE_STR 24
VMC_HIDDEN const char *vmc_size_str(uint64_t bytes, char buf[VMC_SIZE_STR]);

#define VMC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VMC_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
