/*
 * lock.c - robust process-shared mutexes (LMDB's approach).  Every lock in
 * the metadata file is a PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST
 * mutex.  If a worker is killed while holding one, the kernel's robust
 * futex list hands the next locker EOWNERDEAD; that locker rebuilds what
 * the lock guards from the authoritative granule table (the repair
 * callback), marks the mutex consistent and carries on.  The data guarded
 * by each lock is laid out so that a repair is always possible: lists and
 * counters are derived state, the per-granule state words are the truth.
 */
#include "lock.h"

#include <errno.h>
#include <time.h>

int vmc_lock_init(vmc_lock_t *l)
{
	pthread_mutexattr_t a;
	int err;

	if ((err = pthread_mutexattr_init(&a)))
		return err;
	err = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!err)
		err = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!err)
		err = pthread_mutex_init(&l->m, &a);
	pthread_mutexattr_destroy(&a);
	return err;
}

/* What pthread_mutex_(try)lock said, turned into ours: a dead owner's lock
 * is repaired and made consistent; EBUSY stays EBUSY. */
static int settle(vmc_lock_t *l, int err, vmc_repair_fn repair, void *arg, uint64_t *repairs)
{
	if (__builtin_expect(err == 0, 1) || err == EBUSY)
		return err;
	if (err == EOWNERDEAD) {
		if (repair)
			repair(arg);
		if (repairs)
			__atomic_add_fetch(repairs, 1, __ATOMIC_RELAXED);
		pthread_mutex_consistent(&l->m);
		return 0;
	}
	return vmc_fail(VMC_EPANIC, "container lock unrecoverable (%d); "
			"destroy and re-create the container", err);
}

int vmc_lock(vmc_lock_t *l, vmc_repair_fn repair, void *arg, uint64_t *repairs)
{
	return settle(l, pthread_mutex_lock(&l->m), repair, arg, repairs);
}

int vmc_trylock(vmc_lock_t *l, vmc_repair_fn repair, void *arg, uint64_t *repairs)
{
	return settle(l, pthread_mutex_trylock(&l->m), repair, arg, repairs);
}

int vmc_lock_timed(vmc_lock_t *l, unsigned seconds, vmc_repair_fn repair, void *arg,
		   uint64_t *repairs)
{
	struct timespec t;
	int err;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += seconds;
	err = pthread_mutex_timedlock(&l->m, &t);
	if (err == ETIMEDOUT)
		return vmc_fail(ETIMEDOUT, "a container lock was held for more than %u s: a "
				"worker is stuck in the container, or its metadata is corrupt "
				"(`vmcctl check`)", seconds);
	return settle(l, err, repair, arg, repairs);
}

void vmc_unlock(vmc_lock_t *l)
{
	pthread_mutex_unlock(&l->m);
}
