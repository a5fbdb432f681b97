/*
 * lock.h - robust process-shared mutexes.  A lock lives in shared memory;
 * when its owner dies holding it, the next locker gets it back together
 * with the duty to repair what the lock guards (the repair callback).
 * Every wait is bounded: a lock held longer than VMC_LOCK_TIMEOUT_S
 * seconds ends the wait with ETIMEDOUT and a message that names the lock.
 */
#ifndef VMC_LOCK_H
#define VMC_LOCK_H

#include <pthread.h>
#include "internal.h"

#define VMC_LOCK_TIMEOUT_S 10
VMC_HIDDEN extern unsigned vmc_lock_timeout_s;   /* VMC_LOCK_TIMEOUT_S; tests lower it */

typedef struct vmc_lock {
	pthread_mutex_t m;
} vmc_lock_t;

/* Repair what a dead owner may have left half-done; called with the lock
 * held, before it is marked consistent again. */
typedef void (*vmc_repair_fn)(void *arg);

/* What a lock is called in messages, how it is repaired, and where the
 * repairs are counted (repairs may be NULL). */
struct vmc_lock_use {
	const char    *what;      /* "pool lock", "balloon lock", ...         */
	const char    *container; /* its container's name ("" if private)     */
	int            slot;      /* a worker slot's lock: its number; else -1 */
	vmc_repair_fn  repair;    /* NULL: nothing to repair                  */
	void          *arg;
	uint64_t      *repairs;
};

VMC_HIDDEN int vmc_lock_init(vmc_lock_t *l);

/* Lock, waiting at most vmc_lock_timeout_s seconds.  If the previous owner
 * died, run u->repair first.  A lock still held when the time is up by a
 * thread that does not exist is taken back (and repaired); one held by a
 * live thread gives ETIMEDOUT, with a message naming the lock and
 * `vmcctl check --recover`.  Returns 0, ETIMEDOUT, or VMC_EPANIC if the
 * lock is unrecoverable. */
VMC_HIDDEN int vmc_lock(vmc_lock_t *l, const struct vmc_lock_use *u);
/* As vmc_lock, but EBUSY at once if another owner holds it. */
VMC_HIDDEN int vmc_trylock(vmc_lock_t *l, const struct vmc_lock_use *u);
VMC_HIDDEN void vmc_unlock(vmc_lock_t *l);

/* A lock whose owner is gone without the kernel having said so (a word
 * garbled in the file, or an owner in a robust list the kernel could not
 * walk): if l is held by a thread that no longer exists, initialise it
 * afresh and run u->repair under it (counted in u->repairs).  Returns 0
 * (also when the lock is free or its owner alive) or an error. */
VMC_HIDDEN int vmc_lock_reset_if_orphaned(vmc_lock_t *l, const struct vmc_lock_use *u);

#endif
