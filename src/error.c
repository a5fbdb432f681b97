/*
 * error.c - return codes and the per-thread detailed message.  Functions
 * return 0, a positive errno or a negative VMC_E* code; the failing path
 * also writes a sentence into a thread-local buffer so that a caller can
 * tell a user what was wrong and what to do about it (vmc_errmsg()).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errmsg[512];

const char *vmc_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case VMC_ECORRUPT: return "container metadata is corrupt";
	case VMC_EVERSION: return "container metadata has an incompatible version";
	case VMC_EORPHANED: return "VM is orphaned (its worker died); reclaim it";
	case VMC_EPANIC: return "container lock is unrecoverable";
	case VMC_EARENA: return "arena address range is taken in this process";
	case VMC_EPROFILE: return "bad profile parameter";
	case VMC_ENOTSHARED: return "container cannot be opened by name";
	case VMC_EFUNDS: return "not enough funded granules";
	case VMC_ENOTATTACHED: return "no VM is attached in this worker";
	case VMC_ELIMIT: return "the VM's memory limit would be exceeded";
	case VMC_EUNCOMMITTED: return "the range is not committed";
	case VMC_EHIBERNATED: return "the VM is hibernated; wake it";
	case VMC_EMISMATCH: return "the image comes from a container of another geometry";
	/* errno values whose libc names would mislead here */
	case ETIMEDOUT: return "a container lock was held too long (timed out)";
	case EALREADY: return "a VM is attached in this process already";
	}
	if (err > 0)
		return strerror(err);
	return "unknown vmc error";
}

const char *vmc_errmsg(void)
{
	return errmsg;
}

void vmc_clear_error(void)
{
	errmsg[0] = 0;
}

int vmc_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof errmsg, fmt, ap);
	va_end(ap);
	return err;
}

void vmc_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "vmc: assertion failed: %s (%s:%d)\n", expr, file, line);
	abort();
}
