/*
 * snapshot.c - what `vmcctl stat` reads from a live container, once, for
 * each of its renderings (a table, JSON, Prometheus).  It joins the
 * container like any worker (so vmcctl holds a worker slot while it looks),
 * takes one consistent snapshot of the pool (vmc_stats: granules by state,
 * shared regions and code cache use, counters and attach/detach figures
 * summed over every process that ever used it), then reads each VM (ids
 * 0..max_vms-1) and each used worker slot (pid, whether that process still
 * lives, the VM attached there, its cache and attach figures).  Those reads
 * follow the snapshot, so a VM created or destroyed meanwhile may show in
 * one and not the other.
 */
#include "vmcctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int snapshot_take(vmc_t *c, struct snapshot *s)
{
	const vmc_stats_t *st = &s->st;
	int err;

	if ((err = vmc_stats(c, &s->st)))
		return fail(err, "stat %s", s->name);
	s->self = vmc_worker_slot(c);
	s->granule = vmc_granule_size(c);
	s->vm_id = calloc(st->max_vms, sizeof *s->vm_id);
	s->vm = calloc(st->max_vms, sizeof *s->vm);
	s->slot = calloc(st->max_workers, sizeof *s->slot);
	s->ws = calloc(st->max_workers, sizeof *s->ws);
	if (!s->vm_id || !s->vm || !s->slot || !s->ws)
		return fail(ENOMEM, "stat %s: out of memory", s->name);
	s->namew = 4;
	for (uint32_t id = 0; id < st->max_vms; id++) {
		vmc_vm_stats_t *v = &s->vm[s->nvms];
		if ((err = vmc_vm_stats(c, id, v)) == ENOENT)
			continue;
		if (err)
			return fail(err, "stat %s: VM %u", s->name, id);
		s->vm_id[s->nvms++] = id;
		if ((int)strlen(v->name) > s->namew)
			s->namew = (int)strlen(v->name);
	}
	for (uint32_t i = 0; i < st->max_workers; i++) {
		vmc_worker_stats_t *w = &s->ws[s->nworkers];
		if ((err = vmc_worker_stats(c, i, w)))
			return fail(err, "stat %s: worker slot %u", s->name, i);
		if (w->pid)
			s->slot[s->nworkers++] = i;
	}
	return EXIT_OK;
}

void snapshot_free(struct snapshot *s)
{
	free(s->vm_id);
	free(s->vm);
	free(s->slot);
	free(s->ws);
}

const char *vm_state_name(int state)
{
	switch (state) {
	case VMC_VM_IDLE: return "idle";
	case VMC_VM_ATTACHED: return "attached";
	case VMC_VM_ORPHANED: return "orphaned";
	case VMC_VM_HIBERNATED: return "hibernated";
	}
	return "?";
}

const char *snapshot_vm_name(const struct snapshot *s, uint32_t id)
{
	if (id == VMC_NO_VM)
		return NULL;
	for (uint32_t i = 0; i < s->nvms; i++)
		if (s->vm_id[i] == id)
			return s->vm[i].name;
	return "?";
}
