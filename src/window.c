/*
 * window.c - the address window: one fixed range at the start of the arena,
 * at the same address in every worker, where the attached VM's granules
 * appear (pool granule page_map[i] at window offset i * 2 MiB).
 *
 * The process keeps its own record of what each window index maps and with
 * which protection.  window_sync() compares that record with the page map
 * it must show and issues only the system calls the difference needs,
 * coalescing runs: a re-attach of an unchanged VM costs nothing (lazy) or
 * one mprotect per run (strict); attaching another VM remaps only what
 * differs and clears the old VM's tail, so a smaller VM never shows a
 * larger one's memory (invariant 1).  If a call fails half-way the window
 * is cleared whole, so an error never leaves another VM reachable.
 */
#include "window.h"
#include "pool.h"
#include "os/os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RW (PROT_READ | PROT_WRITE)

int window_init(struct vmc *c)
{
	struct vmc_window *w = calloc(1, sizeof *w);
	uint32_t n = c->h.window_granules;

	if (!w)
		return ENOMEM;
	w->n = n;
	w->vm = w->attached = VMC_NIL;
	w->map = malloc(n * sizeof *w->map);
	w->last = malloc(n * sizeof *w->last);
	w->prot = calloc(n, 1);
	if (!w->map || !w->last || !w->prot) {
		c->win = w;
		window_free(c);
		return ENOMEM;
	}
	memset(w->map, 0xff, n * sizeof *w->map);
	memset(w->last, 0xff, n * sizeof *w->last);
	c->win = w;
	return 0;
}

void window_free(struct vmc *c)
{
	if (!c->win)
		return;
	free(c->win->map);
	free(c->win->last);
	free(c->win->prot);
	free(c->win);
	c->win = NULL;
}

static int clear_range(struct vmc *c, uint32_t i, uint32_t n)
{
	void *p = os_mmap(window_addr(c, i), (size_t)n << VMC_GRANULE_SHIFT, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return p == MAP_FAILED ? errno : 0;
}

static void forget(struct vmc_window *w)
{
	memset(w->map, 0xff, w->n * sizeof *w->map);
	w->ext = 0;
	w->vm = VMC_NIL;
	w->open = 0;
}

/* The last resort after a failed call: nothing of any VM stays reachable. */
static int clear_all(struct vmc *c, int err)
{
	clear_range(c, 0, c->win->n);
	forget(c->win);
	return vmc_fail(err, "remapping the window failed: %s", vmc_strerror(err));
}

enum op { OP_NONE, OP_CLEAR, OP_MAP, OP_PROT };

static enum op op_at(struct vmc_window *w, const uint32_t *want, uint32_t i)
{
	uint32_t g = want ? want[i] : VMC_NIL, cur = w->map[i];
	if (g == VMC_NIL)
		return cur == VMC_NIL ? OP_NONE : OP_CLEAR;
	if (g != cur)
		return OP_MAP;
	return w->prot[i] == RW ? OP_NONE : OP_PROT;
}

int window_sync(struct vmc *c, uint32_t vm)
{
	struct vmc_window *w = c->win;
	const uint32_t *want = vm == VMC_NIL ? NULL
				: c->pagemaps + (uint64_t)vm * c->h.window_granules;
	uint32_t n = w->n, end = 0, i = 0;
	int populate = c->h.page_kind == VMC_PAGE_HUGETLB ? MAP_POPULATE : 0;

	/* how far the new page map reaches; indices beyond ext and end map nothing */
	if (want)
		for (uint32_t k = n; k-- > 0;)
			if (want[k] != VMC_NIL) {
				if (want[k] >= c->h.ngranules)
					return clear_all(c, VMC_ECORRUPT);
				end = k + 1;
				break;
			}
	end = VMC_MAX(end, w->ext);
	while (i < end) {
		enum op op = op_at(w, want, i);
		uint32_t j = i + 1;
		int err = 0;

		while (j < end && op_at(w, want, j) == op &&
		       (op != OP_MAP || want[j] == want[j - 1] + 1))
			j++;
		size_t len = (size_t)(j - i) << VMC_GRANULE_SHIFT;
		if (op == OP_CLEAR)
			err = clear_range(c, i, j - i);
		else if (op == OP_MAP)
			err = os_mmap(window_addr(c, i), len, RW, MAP_SHARED | MAP_FIXED | populate,
				      c->pool_fd, (off_t)want[i] << VMC_GRANULE_SHIFT) == MAP_FAILED
				      ? errno : 0;
		else if (op == OP_PROT)
			err = os_mprotect(window_addr(c, i), len, RW) ? errno : 0;
		if (err)
			return clear_all(c, err);
		for (uint32_t k = i; k < j; k++) {
			if (op == OP_NONE)
				continue;
			w->map[k] = want ? want[k] : VMC_NIL;
			w->prot[k] = RW;
			if (want && want[k] != VMC_NIL)
				w->last[k] = vm;
		}
		i = j;
	}
	w->ext = 0;
	for (uint32_t k = end; k-- > 0;)
		if (w->map[k] != VMC_NIL) {
			w->ext = k + 1;
			break;
		}
	w->vm = vm;
	w->open = 1;
	if (vm != VMC_NIL) {
		w->vm_gen = c->vms[vm].gen;
		w->vm_inc = c->vms[vm].incarnation;
	}
	return 0;
}

int window_revoke(struct vmc *c)
{
	struct vmc_window *w = c->win;

	if (w->ext && os_mprotect(c->arena, (size_t)w->ext << VMC_GRANULE_SHIFT, PROT_NONE))
		return clear_all(c, errno);
	memset(w->prot, PROT_NONE, w->ext);
	w->open = 0;
	return 0;
}

void window_reset_child(struct vmc *c)
{
	if (c->win->ext)
		clear_range(c, 0, c->win->ext);
	forget(c->win);
	c->win->attached = VMC_NIL;
}
