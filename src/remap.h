/*
 * remap.h - the mapping engine (remap.c) and its operations.
 */
#ifndef VMC_REMAP_H
#define VMC_REMAP_H

#include "meta.h"

#define OPF_SKIP_HOLES 0x100  /* internal: release ignores uncommitted indices */
#define OPF_FILL       0x200  /* internal: commit of a VM not attached anywhere whose
			       * caller writes every byte of the granule next and then
			       * marks it clean (image.c): not zeroed, it keeps G_DIRTY
			       * until then, so a crash in between leaves it to be
			       * zeroed (reclaim) or quarantined, never shown */

enum { VMC_OP_COMMIT, VMC_OP_RELEASE, VMC_OP_MOVE, VMC_OP_ALIAS, VMC_OP_PROTECT };

/* One operation on window granule indices; for protect, flags holds the
 * page-map protection code (0 rw, 1 r, 2 none). */
struct vmc_op {
	uint32_t kind, flags;
	uint32_t from, to, n;
};

static inline const char *vmc_op_name(uint32_t kind)
{
	static const char *const names[] = { "commit", "release", "move", "alias", "protect" };
	return kind < 5 ? names[kind] : "?";
}

/* Validate and apply ops[0..n) to VM vm_id's page map, all or nothing.
 * here: vm_id is attached here (the caller holds the window): the result
 * is mapped into the window.  Otherwise (vm_id claimed, not attached:
 * destroy, reclaim) the window is not touched, and released granules our
 * own window may still show wait in quarantine.  Returns 0,
 * VMC_EUNCOMMITTED, EEXIST, EINVAL, VMC_ELIMIT, VMC_EFUNDS, or an errno of
 * the zeroing or the mapping (for the mapping: the page map then holds the
 * result without the new commits the window was to zero). */
VMC_HIDDEN int remap_run(struct vmc *c, uint32_t vm_id, const struct vmc_op *ops, uint32_t n,
			 int here);

/* Unmap what VMC_RELEASE_DEFER kept mapped and file those granules;
 * remap the attached VM if a system error left the window empty. */
VMC_HIDDEN int remap_flush(struct vmc *c);

#endif
