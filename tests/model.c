/*
 * model.c - the mapping engine against a model (model.h).
 *
 * Random sequences of operations (commit, release with and without
 * VMC_RELEASE_DEFER, move, alias, protect, flush, batches of several
 * operations, detach / attach of other VMs, destroy / create of a VM, and
 * calls with bad arguments) run on the engine and on a plain in-memory
 * model of every VM's page map: window index -> (granule identity,
 * protection, alias flag).  After every step, for every window index of
 * the attached VM:
 *  - vmc_probe's committed / prot / alias agree with the model, and the
 *    pool granule stays the one first seen for that identity (moves carry
 *    it, aliases share it, no two live identities share one);
 *  - committed, accessible granules hold their 8-byte tag at offset 0 and
 *    a copy at the end: moves carry tags, aliases share them; a new commit
 *    reads zero (the whole granule is checked once), or with
 *    VMC_COMMIT_NOZERO zero or a tag of this same VM (invariant 4: never
 *    another VM's), and then gets a fresh tag: the leak oracle, exact;
 *  - PROT_NONE and uncommitted indices are not readable, except indices
 *    released with VMC_RELEASE_DEFER since the last flush (they may still
 *    be mapped until vmc_flush, a batch commit or detach);
 * and the return code of every call is the one the model predicts
 * (VMC_EUNCOMMITTED, EEXIST, EINVAL, VMC_ELIMIT, VMC_EFUNDS, in the
 * engine's order of validation); a call with bad arguments fails and
 * changes nothing.  Every 50 steps vmc_check must be clean and the VMs'
 * committed / hwm / reserve_used and the pool's used count must match the
 * model.  The randomness comes from a seed (test_model) or from the
 * input bytes (the fuzz target, fuzz/fuzz_api.c).
 */
#include "vm.h"
#include "window.h"
#include "model.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define G test_granule()
#define NW 32            /* window granules */
#define NVM 3
#define MAXID 4096       /* identities alive at once (far more than the pool) */
#define NIL (-1)
#define RW (PROT_READ | PROT_WRITE)

/* ------------------------------------------------------------ random */

static uint64_t rng;
static const uint8_t *bytes;   /* fuzzing: the input is the randomness */
static size_t nbytes, used;

static uint64_t next(void)
{
	if (bytes) {   /* two bytes a draw: every choice is among a few hundred */
		uint64_t v = 0;
		for (int k = 0; k < 2; k++)
			v = v << 8 | (used < nbytes ? bytes[used++] : 0);
		return v;
	}
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rnd(uint32_t n)
{
	return n ? (uint32_t)(next() % n) : 0;
}

static int chance(uint32_t percent)
{
	return rnd(100) < percent;
}

/* ----------------------------------------------- the log, in shared memory */

struct oplog *oplog;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(oplog->line[oplog->n % LOGN], LOGW, fmt, ap);
	va_end(ap);
	oplog->n++;
}

void dump_log(void)
{
	uint64_t from = oplog->n > LOGN ? oplog->n - LOGN : 0;
	fprintf(stderr, "  last operations (oldest first):\n");
	for (uint64_t k = from; k < oplog->n; k++)
		fprintf(stderr, "    %s\n", oplog->line[k % LOGN]);
}

/* ---------------------------------------------------------------- model */

enum { T_KNOWN, T_ZERO, T_OWN };   /* what a granule must hold */

struct ident {
	int live;
	int views;
	int state;          /* T_*: a known tag, all zero, or zero / one of ours */
	int checked;        /* T_ZERO: the whole granule was seen zero once */
	uint64_t tag;
	uint32_t pool;      /* the pool granule, once seen (VMC_NIL before) */
	uint32_t serial;    /* the model VM it belongs to */
};

struct mvm {
	uint32_t id;        /* the engine's VM id */
	uint32_t serial;    /* unique per model VM (a recreated VM is another) */
	uint32_t limit;     /* granules */
	int e[NW];          /* identity or NIL */
	uint8_t alias[NW];
	int prot[NW];
	uint32_t committed, hwm, reserve_used;
	char name[32];
};

struct model {
	struct mvm vm[NVM];
	struct ident id[MAXID];
	uint32_t total;     /* granules committed by all VMs */
	uint32_t funded, rsv;
	int cur;            /* model VM attached, or -1 */
	uint8_t maybe[NW];  /* released with DEFER since the last flush */
	uint32_t serials, tags;
};

static struct model M;
static vmc_t *C;
static void *B;
static int strict;
int avoid_defer, avoid_nozero, avoid_batchfresh, avoid_recreate;
static uint64_t step;
static int failed;

/* error counts, for the summary */
static uint64_t seen_err[16], n_ops, n_batches;

static void count_err(int err)
{
	int k = err == 0 ? 0 : err == VMC_EUNCOMMITTED ? 1 : err == EEXIST ? 2 :
		err == EINVAL ? 3 : err == VMC_ELIMIT ? 4 : err == VMC_EFUNDS ? 5 : 6;
	seen_err[k]++;
}

#define FAIL(...) do { fprintf(stderr, "  step %llu: ", (unsigned long long)step); \
		       fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failed = 1; } while (0)

static int new_ident(uint32_t serial, int nozero)
{
	for (int k = 0; k < MAXID; k++)
		if (!M.id[k].live) {
			M.id[k] = (struct ident){ 1, 1, nozero ? T_OWN : T_ZERO, 0, 0, VMC_NIL, serial };
			return k;
		}
	fprintf(stderr, "model: out of identities\n");
	abort();
}

/* Store v at p without a signal: the kernel copies it out of a pipe, or
 * fails with EFAULT if p is not writable.  Returns 1 if stored. */
static int store(uint64_t *p, uint64_t v)
{
	static int fds[2] = { -1, -1 };
	static pid_t owner;
	uint64_t junk;
	if (owner != getpid()) {
		if (fds[0] >= 0) {
			close(fds[0]);
			close(fds[1]);
		}
		if (pipe(fds))
			abort();
		owner = getpid();
	}
	if (write(fds[1], &v, 8) != 8)
		abort();
	if (read(fds[0], p, 8) == 8)
		return 1;
	if (read(fds[0], &junk, 8) != 8)
		abort();
	return 0;
}

static uint64_t *word0(int i)
{
	return (uint64_t *)((char *)B + (size_t)i * G);
}

static uint64_t *wordn(int i)
{
	return (uint64_t *)((char *)B + (size_t)i * G + G - 8);
}

static uint64_t make_tag(uint32_t serial)
{
	return 0x7a00000000000000ull | ((uint64_t)(serial & 0xffff) << 40) | ++M.tags;
}

static int own_tag(uint64_t t, uint32_t serial)
{
	return (t >> 56) == 0x7a && ((t >> 40) & 0xffff) == (serial & 0xffff);
}

/* ------------------------------------------------------------ operations */

enum { K_COMMIT, K_RELEASE, K_MOVE, K_ALIAS, K_PROTECT };
static const char *const kname[] = { "commit", "release", "move", "alias", "protect" };

struct mop {
	int kind, from, to, n, flags;   /* flags: commit/release flags, or the prot */
};

static void op_str(const struct mop *o, char *buf, size_t n)
{
	if (o->kind == K_MOVE || o->kind == K_ALIAS)
		snprintf(buf, n, "%s [%d,+%d)->[%d]", kname[o->kind], o->from, o->n, o->to);
	else if (o->kind == K_PROTECT)
		snprintf(buf, n, "protect [%d,+%d) %s", o->from, o->n,
			 o->flags == RW ? "rw" : o->flags == PROT_READ ? "r" : "none");
	else
		snprintf(buf, n, "%s [%d,+%d) flags %d", kname[o->kind], o->from, o->n, o->flags);
}

/* The first index that holds identity id in v, other than skip, with the
 * alias flag set: the view the engine promotes when the primary goes. */
static void promote(struct mvm *v, int id)
{
	for (int j = 0; j < NW; j++)
		if (v->e[j] == id && v->alias[j]) {
			v->alias[j] = 0;
			return;
		}
}

/* Run ops on VM v as the engine does: a dry run on a copy validates in
 * order (first error wins), then the limit and the funds; then for real.
 * Returns the predicted error; on 0 the model has changed and *deferred
 * lists the indices released with DEFER. */
static int predict(struct mvm *v, const struct mop *ops, int n, uint8_t deferred[NW])
{
	int e[NW], need = 0, reserve = 0;
	memcpy(e, v->e, sizeof e);
	for (int k = 0; k < n; k++) {
		const struct mop *o = &ops[k];
		switch (o->kind) {
		case K_COMMIT:
			for (int i = o->from; i < o->from + o->n; i++)
				if (e[i] == NIL) {
					e[i] = -2;
					need++;
				}
			reserve |= o->flags & VMC_COMMIT_RESERVE;
			break;
		case K_RELEASE:
			for (int i = o->from; i < o->from + o->n; i++) {
				if (e[i] == NIL)
					return VMC_EUNCOMMITTED;
				e[i] = NIL;
			}
			break;
		case K_MOVE:
		case K_ALIAS: {
			for (int k2 = 0; k2 < o->n; k2++) {
				int t = o->to + k2, in_from = t >= o->from && t < o->from + o->n;
				if (e[o->from + k2] == NIL)
					return VMC_EUNCOMMITTED;
				if (o->kind == K_ALIAS && in_from)
					return EINVAL;
				if (!in_from && e[t] != NIL)
					return EEXIST;
			}
			int tmp[NW];
			for (int k2 = 0; k2 < o->n; k2++)
				tmp[k2] = e[o->from + k2];
			if (o->kind == K_MOVE)
				for (int k2 = 0; k2 < o->n; k2++)
					e[o->from + k2] = NIL;
			for (int k2 = 0; k2 < o->n; k2++)
				e[o->to + k2] = tmp[k2];
			break;
		}
		case K_PROTECT:
			for (int i = o->from; i < o->from + o->n; i++)
				if (e[i] == NIL)
					return VMC_EUNCOMMITTED;
			break;
		}
	}
	if (need && v->committed + need > v->limit)
		return VMC_ELIMIT;
	uint32_t budget = M.funded > M.rsv ? M.funded - M.rsv : 0;
	if (need && M.total + need > (reserve ? M.funded : budget))
		return VMC_EFUNDS;

	/* for real */
	uint32_t freed = 0, cur = M.total;
	memset(deferred, 0, NW);
	for (int k = 0; k < n; k++) {
		const struct mop *o = &ops[k];
		switch (o->kind) {
		case K_COMMIT:
			for (int i = o->from; i < o->from + o->n; i++)
				if (v->e[i] == NIL) {
					v->e[i] = new_ident(v->serial, o->flags & VMC_COMMIT_NOZERO);
					v->alias[i] = 0;
					v->prot[i] = RW;
				}
			break;
		case K_RELEASE:
			for (int i = o->from; i < o->from + o->n; i++) {
				int id = v->e[i], was_alias = v->alias[i];
				v->e[i] = NIL;
				v->alias[i] = 0;
				if (--M.id[id].views) {
					if (!was_alias)
						promote(v, id);
					continue;
				}
				M.id[id].live = 0;
				freed++;
				if (o->flags & VMC_RELEASE_DEFER)
					deferred[i] = 1;
			}
			break;
		case K_MOVE:
		case K_ALIAS: {
			int te[NW], tp[NW];
			uint8_t ta[NW];
			for (int k2 = 0; k2 < o->n; k2++) {
				te[k2] = v->e[o->from + k2];
				tp[k2] = v->prot[o->from + k2];
				ta[k2] = v->alias[o->from + k2];
			}
			if (o->kind == K_MOVE)
				for (int k2 = 0; k2 < o->n; k2++) {
					v->e[o->from + k2] = NIL;
					v->alias[o->from + k2] = 0;
				}
			for (int k2 = 0; k2 < o->n; k2++) {
				int t = o->to + k2;
				v->e[t] = te[k2];
				v->prot[t] = tp[k2];
				v->alias[t] = o->kind == K_ALIAS ? 1 : ta[k2];
				if (o->kind == K_ALIAS)
					M.id[te[k2]].views++;
			}
			break;
		}
		case K_PROTECT:
			for (int i = o->from; i < o->from + o->n; i++)
				v->prot[i] = o->flags;
			break;
		}
	}
	uint32_t from_reserve = cur + need > budget ? VMC_MIN((uint32_t)need, cur + need - budget) : 0;
	v->committed = v->committed + need - freed;
	v->reserve_used += from_reserve;
	v->reserve_used -= VMC_MIN(v->reserve_used, freed);
	if (v->committed > v->hwm)
		v->hwm = v->committed;
	M.total = M.total + need - freed;
	return 0;
}

/* ------------------------------------------------------------- checking */

static int full_zero(int i)
{
	const uint64_t *w = word0(i);
	for (size_t k = 0; k < G / 8; k++)
		if (w[k])
			return 0;
	return 1;
}

static void check_window(void)
{
	struct mvm *v = &M.vm[M.cur];
	for (int i = 0; i < NW && !failed; i++) {
		vmc_probe_t p;
		int err = vmc_probe(C, word0(i), &p), id = v->e[i];
		if (err) {
			FAIL("vmc_probe [%d]: %d", i, err);
			return;
		}
		int rd = readable(word0(i));
		if (id == NIL) {
			if (p.committed)
				FAIL("[%d] is committed in the engine, not in the model", i);
			else if (rd && !M.maybe[i])
				FAIL("[%d] is not committed but readable (%#llx)", i,
				     (unsigned long long)*word0(i));
			continue;
		}
		struct ident *d = &M.id[id];
		if (!p.committed) {
			FAIL("[%d] is committed in the model, not in the engine", i);
			continue;
		}
		if (p.prot != v->prot[i])
			FAIL("[%d] prot %d, model %d", i, p.prot, v->prot[i]);
		if (p.alias != v->alias[i])
			FAIL("[%d] alias %d, model %d", i, p.alias, v->alias[i]);
		if (p.vm != v->id)
			FAIL("[%d] vm %u, model %u", i, p.vm, v->id);
		if (d->pool == VMC_NIL) {
			/* first sight: no other live identity may have it */
			for (int k = 0; k < MAXID; k++)
				if (M.id[k].live && M.id[k].pool == p.granule)
					FAIL("[%d] granule %u also backs another live identity", i,
					     p.granule);
			d->pool = p.granule;
		} else if (d->pool != p.granule) {
			FAIL("[%d] granule %u, expected %u (moves and aliases keep it)", i,
			     p.granule, d->pool);
		}
		if (rd && !readable((char *)word0(i) + G - 1)) {
			FAIL("[%d] readable at its start, not at its end", i);
			continue;
		}
		if (rd != (v->prot[i] != PROT_NONE)) {
			FAIL("[%d] readable %d with prot %d", i, rd, v->prot[i]);
			continue;
		}
		if (!rd)
			continue;
		uint64_t a = *word0(i), b = *wordn(i);
		switch (d->state) {
		case T_KNOWN:
			if (a != d->tag || b != d->tag)
				FAIL("[%d] holds %#llx/%#llx, expected tag %#llx", i,
				     (unsigned long long)a, (unsigned long long)b,
				     (unsigned long long)d->tag);
			break;
		case T_ZERO:
			if (!d->checked) {
				if (!full_zero(i))
					FAIL("[%d] new memory is not zero (word 0 %#llx%s)", i,
					     (unsigned long long)a,
					     (a >> 56) == 0x7a ? ", a tag: old contents" : "");
				d->checked = 1;
			} else if (a || b) {
				FAIL("[%d] was zero, now %#llx/%#llx", i, (unsigned long long)a,
				     (unsigned long long)b);
			}
			break;
		case T_OWN:
			if (a != b || (a && !own_tag(a, v->serial)))
				FAIL("[%d] NOZERO memory holds %#llx/%#llx: not zero nor this VM's "
				     "(serial %u)", i, (unsigned long long)a, (unsigned long long)b,
				     v->serial);
			break;
		}
		/* a fresh tag wherever one can be written */
		if (!failed && d->state != T_KNOWN && v->prot[i] == RW) {
			d->tag = make_tag(v->serial);
			d->state = T_KNOWN;
			if (!store(word0(i), d->tag) || !store(wordn(i), d->tag))
				FAIL("[%d] is not writable, though its prot is read-write", i);
		}
	}
}

static void check_books(void)
{
	vmc_check_report_t r;
	vmc_stats_t s;
	if (vmc_check(C, &r)) {
		FAIL("vmc_check: %s", r.first);
		return;
	}
	if (vmc_stats(C, &s)) {
		FAIL("vmc_stats failed");
		return;
	}
	uint32_t live = 0;
	for (int k = 0; k < MAXID; k++)
		live += M.id[k].live;
	if (s.used != live)
		FAIL("%u granules used, the model has %u", s.used, live);
	if ((uint64_t)s.unfunded + s.free + s.cached + s.used + s.quarantined != s.granules)
		FAIL("granule states do not add up");
	for (int k = 0; k < NVM; k++) {
		vmc_vm_stats_t vs;
		struct mvm *v = &M.vm[k];
		if (vmc_vm_stats(C, v->id, &vs)) {
			FAIL("vmc_vm_stats %u", v->id);
			continue;
		}
		if (vs.committed != (uint64_t)v->committed * G || vs.hwm != (uint64_t)v->hwm * G ||
		    vs.reserve_used != (uint64_t)v->reserve_used * G)
			FAIL("VM %s: committed/hwm/reserve_used %llu/%llu/%llu MiB, model %u/%u/%u",
			     v->name, (unsigned long long)(vs.committed >> 20),
			     (unsigned long long)(vs.hwm >> 20),
			     (unsigned long long)(vs.reserve_used >> 20), v->committed * 2,
			     v->hwm * 2, v->reserve_used * 2);
	}
}

/* ------------------------------------------------------------ generating */

static void pick_range(struct mop *o, int want_committed)
{
	struct mvm *v = &M.vm[M.cur];
	o->n = 1 + (chance(80) ? rnd(4) : rnd(8));
	o->from = (int)rnd(NW - o->n + 1);
	if (want_committed && chance(75)) {
		int c[NW], nc = 0;
		for (int i = 0; i < NW; i++)
			if (v->e[i] != NIL)
				c[nc++] = i;
		if (nc) {
			int i = c[rnd(nc)];
			/* a run of committed indices from i, mostly */
			int len = 1;
			while (i + len < NW && v->e[i + len] != NIL && len < 8)
				len++;
			o->n = chance(85) ? 1 + (int)rnd(len) : o->n;
			o->from = VMC_MIN(i, NW - o->n);
		}
	}
	o->to = (int)rnd(NW - o->n + 1);
}

static void gen(struct mop *o, int in_batch)
{
	uint32_t r = rnd(100);
	memset(o, 0, sizeof *o);
	if (r < 30) {
		o->kind = K_COMMIT;
		pick_range(o, 0);
		o->flags = (chance(20) ? VMC_COMMIT_RESERVE : 0) |
			   (!avoid_nozero && chance(25) ? VMC_COMMIT_NOZERO : 0) |
			   (chance(10) ? VMC_COMMIT_POPULATE : 0);
	} else if (r < 52) {
		o->kind = K_RELEASE;
		pick_range(o, 1);
		o->flags = !avoid_defer && chance(40) ? VMC_RELEASE_DEFER : 0;
	} else if (r < 68) {
		o->kind = K_MOVE;
		pick_range(o, 1);
		if (chance(20)) {   /* overlapping */
			int t = o->from + (int)rnd(5) - 2;
			o->to = t < 0 ? 0 : t > NW - o->n ? NW - o->n : t;
		}
	} else if (r < 80 && !in_batch) {
		o->kind = K_ALIAS;
		pick_range(o, 1);
	} else {
		o->kind = K_PROTECT;
		pick_range(o, 1);
		uint32_t p = rnd(10);
		o->flags = p < 4 ? RW : p < 7 ? PROT_READ : PROT_NONE;
	}
}

static int call(const struct mop *o)
{
	void *a = word0(o->from), *t = word0(o->to);
	size_t len = (size_t)o->n * G;
	switch (o->kind) {
	case K_COMMIT: return vmc_commit(C, a, len, o->flags);
	case K_RELEASE: return vmc_release(C, a, len, o->flags);
	case K_MOVE: return vmc_move(C, a, t, len, 0);
	case K_ALIAS: return vmc_alias(C, a, t, len);
	default: return vmc_protect(C, a, len, o->flags);
	}
}

static int record(vmc_batch_t *b, const struct mop *o)
{
	void *a = word0(o->from), *t = word0(o->to);
	size_t len = (size_t)o->n * G;
	switch (o->kind) {
	case K_COMMIT: return vmc_batch_commit_range(b, a, len, o->flags);
	case K_RELEASE: return vmc_batch_release(b, a, len, o->flags);
	case K_MOVE: return vmc_batch_move(b, a, t, len, 0);
	default: return vmc_batch_protect(b, a, len, o->flags);
	}
}

static void apply_result(int want, int got, const char *what, const uint8_t deferred[NW])
{
	count_err(got);
	if (want != got) {
		FAIL("%s returned %d (%s), the model expects %d (%s); %s", what, got,
		     vmc_strerror(got), want, vmc_strerror(want), vmc_errmsg());
		return;
	}
	if (!want)
		for (int i = 0; i < NW; i++)
			M.maybe[i] |= deferred[i];
}

static void do_single(void)
{
	struct mop o;
	uint8_t deferred[NW];
	char s[120];
	gen(&o, 0);
	op_str(&o, s, sizeof s);
	logf_("%llu: %s", (unsigned long long)step, s);
	int want = predict(&M.vm[M.cur], &o, 1, deferred);
	int got = call(&o);
	n_ops++;
	apply_result(want, got, s, deferred);
}

static void do_batch(void)
{
	struct mop o[8];
	uint8_t deferred[NW], fresh[NW];
	char s[LOGW], one[100];
	int n = 2 + (int)rnd(5), len = 0;
	vmc_batch_t *b;
	memset(fresh, 0, sizeof fresh);
	for (int k = 0; k < n; k++) {
		gen(&o[k], 1);
		if (avoid_batchfresh && (o[k].kind == K_PROTECT || o[k].kind == K_RELEASE ||
					 o[k].kind == K_MOVE)) {
			/* leave out what touches an index committed in this batch */
			int bad = 0;
			for (int i = o[k].from; i < o[k].from + o[k].n; i++)
				bad |= fresh[i];
			if (bad) {
				k--;
				continue;
			}
		}
		if (o[k].kind == K_COMMIT)
			for (int i = o[k].from; i < o[k].from + o[k].n; i++)
				fresh[i] = 1;
	}
	snprintf(s, sizeof s, "%llu: batch", (unsigned long long)step);
	for (int k = 0; k < n; k++) {
		op_str(&o[k], one, sizeof one);
		len = (int)strlen(s);
		snprintf(s + len, sizeof s - (size_t)len, "; %s", one);
	}
	logf_("%s", s);
	if (vmc_batch_begin(C, &b)) {
		FAIL("vmc_batch_begin");
		return;
	}
	for (int k = 0; k < n; k++)
		if (record(b, &o[k])) {
			FAIL("recording a well-formed op failed: %s", vmc_errmsg());
			vmc_batch_abort(C, b);
			return;
		}
	if (chance(5)) {
		logf_("%llu: (aborted)", (unsigned long long)step);
		if (vmc_batch_abort(C, b))
			FAIL("vmc_batch_abort");
		return;
	}
	/* the batch commit flushes first, whatever comes of the batch */
	memset(M.maybe, 0, sizeof M.maybe);
	int want = predict(&M.vm[M.cur], o, n, deferred);
	int got = vmc_batch_commit(b);
	n_batches++;
	apply_result(want, got, "batch", deferred);
}

static void do_flush(void)
{
	logf_("%llu: flush", (unsigned long long)step);
	int err = vmc_flush(C);
	if (err)
		FAIL("vmc_flush: %d", err);
	memset(M.maybe, 0, sizeof M.maybe);
}

static void do_detach_attach(int recreate)
{
	struct mvm *v = &M.vm[M.cur];
	logf_("%llu: detach %s", (unsigned long long)step, v->name);
	int err = vmc_detach(C, v->id);
	if (err) {
		FAIL("vmc_detach: %d", err);
		return;
	}
	memset(M.maybe, 0, sizeof M.maybe);
	M.cur = -1;
	if (vmc_commit(C, B, G, 0) != VMC_ENOTATTACHED ||
	    vmc_move(C, B, word0(1), G, 0) != VMC_ENOTATTACHED)
		FAIL("an operation with nothing attached did not say VMC_ENOTATTACHED");
	if (strict)
		for (int i = 0; i < NW; i++)
			if (readable(word0(i)))
				FAIL("[%d] is readable after a strict detach", i);
	int next = (int)rnd(NVM);
	if (recreate) {
		/* destroy a VM and make a new one in its place (same table slot) */
		struct mvm *d = &M.vm[next];
		logf_("%llu: destroy and recreate %s", (unsigned long long)step, d->name);
		if ((err = vmc_vm_destroy(C, d->id))) {
			FAIL("vmc_vm_destroy: %d %s", err, vmc_errmsg());
			return;
		}
		for (int i = 0; i < NW; i++)
			if (d->e[i] != NIL && --M.id[d->e[i]].views == 0)
				M.id[d->e[i]].live = 0;
		M.total -= d->committed;
		uint32_t limit = 8 + rnd(14);
		snprintf(d->name, sizeof d->name, "vm-%u", ++M.serials);
		memset(d, 0, offsetof(struct mvm, name));
		for (int i = 0; i < NW; i++)
			d->e[i] = NIL;
		d->serial = M.serials;
		d->limit = limit;
		if ((err = vmc_vm_create_span(C, d->name, (size_t)limit * G, (size_t)NW * G, &d->id))) {
			FAIL("vmc_vm_create: %d %s", err, vmc_errmsg());
			return;
		}
	}
	logf_("%llu: attach %s", (unsigned long long)step, M.vm[next].name);
	void *base;
	if ((err = vmc_attach(C, M.vm[next].id, &base))) {
		FAIL("vmc_attach: %d %s", err, vmc_errmsg());
		return;
	}
	M.cur = next;
	if (base != B)
		FAIL("the window moved");
}

/* A call with bad arguments: it must fail (with a message) and change
 * nothing (the checks after the step see to that). */
static void do_garbage(void)
{
	static const char *const what[] = {
		"commit unaligned", "commit of 0 bytes", "commit of 2^62 bytes",
		"commit before the window", "commit with bad flags", "release past the window",
		"move to an unaligned address", "protect PROT_EXEC", "probe into NULL",
		"attach of VM 9999", "destroy of VM 9999", "stats of VM 9999",
		"create with an empty name", "create with a space in the name",
		"create with limit 0", "reclaim with mode 99", "balloon past the pool",
		"batch move on no batch", "open of no region", "code without a cache",
	};
	uint32_t k = rnd(sizeof what / sizeof *what), id;
	char *b = B;
	void *p;
	vmc_vm_stats_t vs;
	int err = 0;

	logf_("%llu: garbage: %s", (unsigned long long)step, what[k]);
	switch (k) {
	case 0: err = vmc_commit(C, b + 1, G, 0); break;
	case 1: err = vmc_commit(C, b, 0, 0); break;
	case 2: err = vmc_commit(C, b, (size_t)1 << 62, 0); break;
	case 3: err = vmc_commit(C, b - G, G, 0); break;
	case 4: err = vmc_commit(C, b, G, 0x80); break;
	case 5: err = vmc_release(C, b + (size_t)NW * G, G, 0); break;
	case 6: err = vmc_move(C, b, b + 1, G, 0); break;
	case 7: err = vmc_protect(C, b, G, PROT_EXEC); break;
	case 8: err = vmc_probe(C, b, NULL); break;
	case 9: err = vmc_attach(C, 9999, NULL); break;
	case 10: err = vmc_vm_destroy(C, 9999); break;
	case 11: err = vmc_vm_stats(C, 9999, &vs); break;
	case 12: err = vmc_vm_create(C, "", G, &id); break;
	case 13: err = vmc_vm_create(C, "a b", G, &id); break;
	case 14: err = vmc_vm_create(C, "zero", 0, &id); break;
	case 15: err = vmc_vm_reclaim(C, M.vm[0].id, 99); break;
	case 16: err = vmc_balloon(C, (uint64_t)49 * G, NULL); break;
	case 17: err = vmc_batch_move(NULL, b, b + G, G, 0); break;
	case 18: err = vmc_region_open(C, "no-such-region", VMC_REGION_READ, &p); break;
	case 19: err = vmc_code_alloc(C, 16, &p, NULL); break;
	}
	if (!err)
		FAIL("%s succeeded", what[k]);
	else if (!vmc_errmsg()[0])
		FAIL("%s failed (%d) without a message", what[k], err);
}

/* A crash: say where, then die of it. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	char buf[200];
	uintptr_t a = (uintptr_t)si->si_addr, b = (uintptr_t)B;
	(void)uc;
	int n = snprintf(buf, sizeof buf, "  step %llu: SIGSEGV at %p%s, window index %lld\n",
			 (unsigned long long)step, si->si_addr,
			 a >= b && a < b + NW * G ? " in the window" : " outside the window",
			 a >= b ? (long long)((a - b) / G) : -1ll);
	if (write(2, buf, (size_t)n) < 0)
		_exit(1);
	signal(sig, SIG_DFL);
	raise(sig);
}

void model_bytes(const uint8_t *data, size_t n)
{
	bytes = data;
	nbytes = n;
	used = 0;
}

/* One run of `steps` steps; returns 0 if the engine always agreed. */
int model_run(int isolation, uint64_t seed, uint64_t steps)
{
	vmc_config_t cfg;
	int err;
	test_config(&cfg, 48 * G, 32 * G);   /* 48 granules, 32 funded */
	cfg.reserve_size = 2 * G;            /* 2 of them the reserve */
	cfg.window_size = NW * G;
	cfg.memory_isolation = isolation;
	strict = isolation;
	rng = seed;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	memset(&M, 0, sizeof M);
	failed = 0;
	if ((err = vmc_create(NULL, &cfg, &C))) {
		fprintf(stderr, "vmc_create: %d %s\n", err, vmc_errmsg());
		return 2;
	}
	M.funded = 32;
	M.rsv = 2;
	for (int k = 0; k < NVM; k++) {
		struct mvm *v = &M.vm[k];
		v->serial = ++M.serials;
		v->limit = 8 + rnd(14);
		for (int i = 0; i < NW; i++)
			v->e[i] = NIL;
		snprintf(v->name, sizeof v->name, "vm-%u", v->serial);
		if ((err = vmc_vm_create_span(C, v->name, (size_t)v->limit * G, (size_t)NW * G, &v->id))) {
			fprintf(stderr, "vmc_vm_create: %d %s\n", err, vmc_errmsg());
			return 2;
		}
	}
	M.cur = 0;
	if ((err = vmc_attach(C, M.vm[0].id, &B))) {
		fprintf(stderr, "vmc_attach: %d\n", err);
		return 2;
	}
	for (step = 1; step <= steps && !failed && !(bytes && used >= nbytes); step++) {
		uint32_t r = rnd(100);
		if (r < 58)
			do_single();
		else if (r < 80)
			do_batch();
		else if (r < 88)
			do_flush();
		else if (r < 95)
			do_detach_attach(0);
		else if (r < 97)
			do_garbage();
		else
			do_detach_attach(!avoid_recreate && chance(50));
		if (!failed && M.cur >= 0)
			check_window();
		if (!failed && step % 50 == 0)
			check_books();
	}
	if (!failed)
		check_books();
	if (failed) {
		dump_log();
		fprintf(stderr, "  replay: VMC_MODEL_SEED=%llu VMC_MODEL_STEPS=%llu (the %s run "
			"uses seed %llu)\n", (unsigned long long)(seed - !isolation),
			(unsigned long long)(step - 1), isolation ? "strict" : "lazy",
			(unsigned long long)seed);
		return 1;
	}
	if (!bytes)
		fprintf(stderr, "  %s: %llu steps, %llu ops, %llu batches; results: ok %llu, "
			"EUNCOMMITTED %llu, EEXIST %llu, EINVAL %llu, ELIMIT %llu, EFUNDS %llu\n",
			isolation ? "strict" : "lazy", (unsigned long long)steps,
			(unsigned long long)n_ops, (unsigned long long)n_batches,
			(unsigned long long)seen_err[0], (unsigned long long)seen_err[1],
			(unsigned long long)seen_err[2], (unsigned long long)seen_err[3],
			(unsigned long long)seen_err[4], (unsigned long long)seen_err[5]);
	if (M.cur >= 0)
		vmc_detach(C, M.vm[M.cur].id);
	vmc_close(C);
	return 0;
}

