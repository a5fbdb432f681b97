/*
 * lock.c - robust process-shared mutexes (LMDB's approach).  Every lock in
 * the metadata file is a PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST
 * mutex.  If a worker is killed while holding one, the kernel's robust
 * futex list hands the next locker EOWNERDEAD; that locker rebuilds what
 * the lock guards from the authoritative granule table (the repair
 * callback), marks the mutex consistent and carries on.  The data guarded
 * by each lock is laid out so that a repair is always possible: lists and
 * counters are derived state, the per-granule state words are the truth.
 *
 * No wait is unbounded.  An uncontended lock costs one trylock; a
 * contended one waits with a deadline.  When it passes, a lock held by a
 * thread that no longer exists (what the kernel cannot report: a lock word
 * garbled in the file, whose "owner" never existed) is taken back and
 * repaired; one held by a live thread is an error that names the lock.
 * The robust-futex ABI keeps the owner's thread id in the futex word,
 * which glibc puts first in the mutex.  vmc_recover (vmcctl check
 * --recover) takes such locks back at once, without waiting.
 */
#include "lock.h"
#include "os/os.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#if defined(__GLIBC__)
_Static_assert(__builtin_offsetof(pthread_mutex_t, __data.__lock) == 0,
	       "the futex word comes first in glibc's mutex");
#endif
#define FUTEX_TID_MASK 0x3fffffffu

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

/* The thread id in l's futex word (0: none). */
static uint32_t owner_tid(vmc_lock_t *l)
{
	return __atomic_load_n((uint32_t *)(void *)&l->m, __ATOMIC_RELAXED) & FUTEX_TID_MASK;
}

/* "the pool lock of container X", "the lock of worker slot 3 of ..." */
static const char *describe(const struct vmc_lock_use *u, char *buf, size_t n)
{
	const char *cn = u->container && u->container[0] ? u->container : "(private)";
	if (u->slot >= 0)
		snprintf(buf, n, "the lock of worker slot %d of container %s", u->slot, cn);
	else
		snprintf(buf, n, "the %s of container %s", u->what, cn);
	return buf;
}

/* What pthread_mutex_(try|timed)lock said, turned into ours: a dead
 * owner's lock is repaired and made consistent; EBUSY stays EBUSY. */
static int settle(vmc_lock_t *l, int err, const struct vmc_lock_use *u)
{
	char name[160];

	if (__builtin_expect(err == 0, 1) || err == EBUSY)
		return err;
	if (err == EOWNERDEAD) {
		if (u->repair)
			u->repair(u->arg);
		if (u->repairs)
			__atomic_add_fetch(u->repairs, 1, __ATOMIC_RELAXED);
		pthread_mutex_consistent(&l->m);
		return 0;
	}
	if (err == ETIMEDOUT)
		return vmc_fail(ETIMEDOUT, "%s has been held for more than %u s by thread %u, "
				"which is alive: a worker is stuck inside the container; find it "
				"with `vmcctl stat %s` and end it (its locks are then repaired), "
				"then run `vmcctl check --recover %s`", describe(u, name, sizeof name),
				vmc_lock_timeout_s, owner_tid(l), u->container, u->container);
	return vmc_fail(VMC_EPANIC, "%s is unrecoverable (%s): destroy and re-create the "
			"container", describe(u, name, sizeof name), vmc_strerror(err));
}

/* 1 if l is held (its word is not 0) by no thread that exists. */
static int orphaned(vmc_lock_t *l)
{
	uint32_t word = __atomic_load_n((uint32_t *)(void *)&l->m, __ATOMIC_ACQUIRE);
	uint32_t tid = owner_tid(l);
	char path[32];

	if (!word)
		return 0;
	snprintf(path, sizeof path, "/proc/%u", tid);
	return !tid || os_access(path, 0) != 0;
}

/* Take back a lock whose owner is gone: a fresh mutex, taken, repaired. */
static int take_back(vmc_lock_t *l, const struct vmc_lock_use *u)
{
	char name[160];
	int err;

	if ((err = vmc_lock_init(l)))
		return vmc_fail(err, "re-initialising %s: %s", describe(u, name, sizeof name),
				vmc_strerror(err));
	if ((err = pthread_mutex_trylock(&l->m)))
		return settle(l, err == EBUSY ? ETIMEDOUT : err, u);
	return settle(l, EOWNERDEAD, u);   /* runs the repair; the mutex is consistent */
}

unsigned vmc_lock_timeout_s = VMC_LOCK_TIMEOUT_S;

int vmc_lock(vmc_lock_t *l, const struct vmc_lock_use *u)
{
	struct timespec t;
	int err = pthread_mutex_trylock(&l->m);

	if (__builtin_expect(err != EBUSY, 1))
		return settle(l, err, u);
	clock_gettime(CLOCK_REALTIME, &t);   /* vDSO: no system call */
	t.tv_sec += vmc_lock_timeout_s;
	if ((err = pthread_mutex_timedlock(&l->m, &t)) == ETIMEDOUT &&
	    (err = pthread_mutex_trylock(&l->m)) == EBUSY)
		return orphaned(l) ? take_back(l, u) : settle(l, ETIMEDOUT, u);
	return settle(l, err, u);
}

int vmc_trylock(vmc_lock_t *l, const struct vmc_lock_use *u)
{
	return settle(l, pthread_mutex_trylock(&l->m), u);
}

void vmc_unlock(vmc_lock_t *l)
{
	pthread_mutex_unlock(&l->m);
}

int vmc_lock_reset_if_orphaned(vmc_lock_t *l, const struct vmc_lock_use *u)
{
	int err;

	if (!orphaned(l))
		return 0;
	if ((err = take_back(l, u)))
		return err;
	vmc_unlock(l);
	return 0;
}
