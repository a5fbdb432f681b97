/*
 * ptstep.h - kill a worker at (a sample of) every instruction of an
 * operation, with ptrace (x86-64).  A dry run single-steps a child through
 * the operation and records every instruction it executes in this binary
 * (the library is linked in statically; calls into libc - memset, system
 * calls, mutexes - run at full speed under a breakpoint at their return
 * address).  Then, for each recorded instruction (or a sample, if there
 * are too many), a fresh child runs to that point under a breakpoint and
 * is SIGKILLed there, and the parent checks what it left behind.
 */
#ifndef VMC_TEST_PTSTEP_H
#define VMC_TEST_PTSTEP_H

#include <stddef.h>
#include <stdint.h>

struct kill_sweep {
	const char *what;                 /* for messages                          */
	/* parent: make a fresh world, the same each round (0 or an error)       */
	int (*prepare)(void *arg);
	/* child: untraced set-up (may be NULL), then the traced operation;
	 * both return 0 on success                                              */
	int (*pre)(void *arg);
	int (*op)(void *arg);
	/* parent, after the kill (and after the dry run): 0 if all is well, else
	 * a failure with why[] filled                                           */
	int (*after)(void *arg, char *why, size_t n);
	void (*cleanup)(void *arg);       /* parent: end the round                 */
	void *arg;
	long budget;                      /* about this many kill points; 0: default */
};

struct kill_result {
	long total;       /* instructions of ours the operation executes             */
	long kills;       /* children killed where asked                             */
	long missed;      /* kill points a child did not reach (must stay rare)      */
	long failures;    /* rounds whose `after` check failed                       */
};

/* Run the sweep.  Returns 0, or -1 if ptrace single-stepping is not
 * usable here (the caller skips, saying so).  VMC_TEST_BUDGET=n overrides
 * the budget (n >= total: every instruction); VMC_TEST_SEED=n repeats a
 * run's sample.  Failures are printed (the first few, then a summary of
 * the functions they were in). */
int kill_sweep(const struct kill_sweep *s, struct kill_result *out);

#endif
