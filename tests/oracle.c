/*
 * oracle.c - the leak oracle of oracle.h.  A tag is one 8-byte word: a
 * magic in the high half and a hash of the VM's name in the low half,
 * written at the start and the end of every 64th 4 KiB page of a granule
 * (and its last page): reading a sample is enough, because what the
 * oracle hunts for, a granule handed to a VM without being zeroed, is
 * foreign as a whole.
 */
#include "oracle.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define MAGIC 0x7a61676bull   /* high half of every tag */
#define PAGE  4096u
#define STEP  (64 * PAGE)

uint64_t oracle_tag(const char *name)
{
	uint32_t h = 2166136261u;
	for (const char *p = name; *p && *p != '@'; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return MAGIC << 32 | h;
}

/* May VM `name` hold tag t? */
static int may_hold(const char *name, uint64_t t)
{
	for (const char *p = name; p; p = strchr(p, '@') ? strchr(p, '@') + 1 : NULL)
		if (oracle_tag(p) == t)
			return 1;
	return 0;
}

/* Sampled pages of a granule: every 64th, and the last. */
static size_t next_sample(size_t off, size_t granule)
{
	if (off + PAGE >= granule)
		return granule;
	return off + STEP < granule - PAGE ? off + STEP : granule - PAGE;
}
#define FOR_SAMPLES(off, granule) \
	for (size_t off = 0; off < (granule); off = next_sample(off, granule))

void oracle_fill(void *p, size_t granule, uint64_t tag)
{
	FOR_SAMPLES(off, granule) {
		uint64_t *w = (uint64_t *)((char *)p + off);
		w[0] = tag;
		w[PAGE / 8 - 1] = tag;
	}
}

/* The first word of the sample at q that `name` may not hold, or 0. */
static uint64_t foreign(const char *name, const uint64_t *q)
{
	uint64_t a = q[0], b = q[PAGE / 8 - 1];
	if (a && !may_hold(name, a))
		return a;
	if (b && !may_hold(name, b))
		return b;
	return 0;
}

/* Whose tag is t, among the VMs of c (for the message). */
static void whose(vmc_t *c, uint64_t t, char *out, size_t n)
{
	vmc_vm_stats_t vs;
	snprintf(out, n, "no VM's (garbage %#llx)", (unsigned long long)t);
	for (uint32_t v = 0; v < 4096; v++) {
		int err = vmc_vm_stats(c, v, &vs);
		if (err == EINVAL)
			break;
		if (!err && oracle_tag(vs.name) == t) {
			snprintf(out, n, "VM %s's", vs.name);
			return;
		}
	}
	if ((t >> 32) == MAGIC)
		snprintf(out, n, "a VM's that is gone (%#llx)", (unsigned long long)t);
}

/* Scan VM v (named name): every readable committed granule. */
static int scan_vm(vmc_t *c, uint32_t v, const char *name, char *why, size_t n)
{
	size_t G = vmc_granule_size(c);
	vmc_stats_t s;
	void *base;
	int err;

	if ((err = vmc_stats(c, &s)) || (err = vmc_attach(c, v, &base)))
		return snprintf(why, n, "attach %s: %s", name, vmc_errmsg()), -1;
	for (uint64_t off = 0; off < s.window_size; off += G) {
		char *p = (char *)base + off;
		vmc_probe_t pr;
		if (vmc_probe(c, p, &pr) || !pr.committed || !(pr.prot & PROT_READ))
			continue;
		FOR_SAMPLES(k, G) {
			uint64_t t = foreign(name, (const uint64_t *)(p + k));
			if (t) {
				char who[96];
				whose(c, t, who, sizeof who);
				snprintf(why, n, "VM %s at window offset %#llx+%#zx holds %s bytes",
					 name, (unsigned long long)off, k, who);
				vmc_detach(c, v);
				return -1;
			}
		}
	}
	vmc_detach(c, v);
	return 0;
}

/* A probe VM commits every granule it can get: each must read zero. */
static int probe(vmc_t *c, char *why, size_t n)
{
	size_t G = vmc_granule_size(c);
	vmc_stats_t s;
	uint32_t v;
	char *base;
	int err = 0, bad = 0;

	if (vmc_stats(c, &s) || vmc_vm_create(c, "oracle-probe", s.window_size, &v))
		return snprintf(why, n, "probe VM: %s", vmc_errmsg()), -1;
	if (vmc_attach(c, v, (void **)&base)) {
		snprintf(why, n, "attach probe: %s", vmc_errmsg());
		vmc_vm_destroy(c, v);
		return -1;
	}
	for (uint64_t off = 0; off < s.window_size && !bad; off += G) {
		if ((err = vmc_commit(c, base + off, G, 0)))
			break;
		FOR_SAMPLES(k, G) {
			const uint64_t *q = (const uint64_t *)(base + off + k);
			if (q[0] || q[PAGE / 8 - 1]) {
				char who[96];
				whose(c, q[0] ? q[0] : q[PAGE / 8 - 1], who, sizeof who);
				snprintf(why, n, "a fresh commit at window offset %#llx+%#zx holds "
					 "%s bytes", (unsigned long long)off, k, who);
				bad = 1;
				break;
			}
		}
	}
	if (!bad && err != VMC_EFUNDS && err != VMC_ELIMIT && err != 0)
		bad = snprintf(why, n, "probe commit: %s", vmc_errmsg());
	vmc_detach(c, v);
	if (vmc_vm_destroy(c, v) && !bad)
		bad = snprintf(why, n, "destroy probe: %s", vmc_errmsg());
	return bad ? -1 : 0;
}

int oracle_scan(vmc_t *c, char *why, size_t n)
{
	vmc_vm_stats_t vs;
	vmc_check_report_t r;
	int err;

	if ((err = vmc_recover(c, NULL)))
		return snprintf(why, n, "recover: %s", vmc_errmsg()), -1;
	for (uint32_t v = 0;; v++) {
		if ((err = vmc_vm_stats(c, v, &vs)) == EINVAL)
			break;
		if (err)
			continue;
		if (vs.state == VMC_VM_ORPHANED && vmc_vm_reclaim(c, v, VMC_RECLAIM_KEEP))
			return snprintf(why, n, "reclaim %s: %s", vs.name, vmc_errmsg()), -1;
	}
	if (vmc_check(c, &r))
		return snprintf(why, n, "check: %s", r.first[0] ? r.first : vmc_errmsg()), -1;
	for (uint32_t v = 0;; v++) {
		if ((err = vmc_vm_stats(c, v, &vs)) == EINVAL)
			break;
		if (!err && scan_vm(c, v, vs.name, why, n))
			return -1;
	}
	if (probe(c, why, n))
		return -1;
	if (vmc_check(c, &r))
		return snprintf(why, n, "check after the probe: %s",
				r.first[0] ? r.first : vmc_errmsg()), -1;
	return 0;
}
