/*
 * oracle.h - the leak oracle (invariant 11: an operation cut short leaks
 * nothing).  Every VM tags what it writes with a word that names it, and
 * every page a commit hands out must read zero.  After any crash or failed
 * system call, oracle_scan attaches every VM and looks at a sample of the
 * pages of every granule it can read: each must hold zero or a tag that VM
 * may hold.  Then a probe VM commits every granule it can get, each of
 * which must read zero.  A foreign tag is a failure that names the VM it
 * came from.
 */
#ifndef VMC_TEST_ORACLE_H
#define VMC_TEST_ORACLE_H

#include <stddef.h>
#include <stdint.h>
#include "vmc.h"

/* The tag of VM name `name`.  A VM named "a@b" (a clone of b, say) may hold
 * the tags of both a and b. */
uint64_t oracle_tag(const char *name);

/* Write tag into the sampled pages of the granule at p (the window must
 * show it read-write). */
void oracle_fill(void *p, size_t granule, uint64_t tag);

/* Recover dead workers, reclaim orphaned VMs keeping their memory (where
 * a commit cut short would show), check the tables, scan every VM, then
 * probe fresh commits.  No VM may be attached here.  Returns 0, or -1
 * with why[] saying what was wrong and where. */
int oracle_scan(vmc_t *c, char *why, size_t n);

#endif
