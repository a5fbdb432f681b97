/*
 * worker.h - worker slots: joining, leaving, liveness and recovery.
 */
#ifndef VMC_WORKER_H
#define VMC_WORKER_H

#include "meta.h"

/* Take a free slot for this process (recovering dead workers' slots
 * first if none is free).  Returns 0 or EAGAIN. */
VMC_HIDDEN int worker_join(struct vmc *c);

/* Give this process's slot back: its cache goes to the free list. */
VMC_HIDDEN int worker_leave(struct vmc *c);

/* 1 if the process in slot s is alive (pid and start time both match). */
VMC_HIDDEN int worker_alive(struct vmc *c, uint32_t s);

/* Reclaim every dead worker's slot and cache. out may be NULL.  try: the
 * caller holds a slot lock of its own, so a dead slot whose lock another
 * process holds (it is recovering it, or checking) is skipped, not waited
 * for (two slot locks are only ever waited for in slot order). */
VMC_HIDDEN int workers_recover(struct vmc *c, vmc_recover_report_t *out, int try);

/* Add slot's attach statistics to the container's totals of departed
 * workers (stats.c), before the slot is freed. */
VMC_HIDDEN void stats_retire(struct vmc *c, uint32_t slot);

#endif
