/*
 * lock.h - robust process-shared mutexes.  A lock lives in shared memory;
 * when its owner dies holding it, the next locker gets it back together
 * with the duty to repair what the lock guards (the repair callback).
 */
#ifndef VMC_LOCK_H
#define VMC_LOCK_H

#include <pthread.h>
#include "internal.h"

typedef struct vmc_lock {
	pthread_mutex_t m;
} vmc_lock_t;

/* Repair what a dead owner may have left half-done; called with the lock
 * held, before it is marked consistent again. */
typedef void (*vmc_repair_fn)(void *arg);

VMC_HIDDEN int vmc_lock_init(vmc_lock_t *l);

/* Lock; if the previous owner died, run repair(arg) and count it in
 * *repairs (may be NULL).  Returns 0, or VMC_EPANIC if the lock is
 * unrecoverable (a repair itself died half-way). */
VMC_HIDDEN int vmc_lock(vmc_lock_t *l, vmc_repair_fn repair, void *arg, uint64_t *repairs);
/* As vmc_lock, but EBUSY at once if another owner holds it. */
VMC_HIDDEN int vmc_trylock(vmc_lock_t *l, vmc_repair_fn repair, void *arg, uint64_t *repairs);
/* As vmc_lock, but ETIMEDOUT (with a message) after `seconds`: for joining,
 * where a lock word garbled in a bad metadata file must not hang us. */
VMC_HIDDEN int vmc_lock_timed(vmc_lock_t *l, unsigned seconds, vmc_repair_fn repair,
			      void *arg, uint64_t *repairs);
VMC_HIDDEN void vmc_unlock(vmc_lock_t *l);

#endif
