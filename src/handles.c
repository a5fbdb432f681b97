/*
 * handles.c - process-local handles.  Every open handle of the process is
 * in a small lock-free table, so that the fault handler can find the
 * container of a faulting address and the fork handler can empty windows.
 * A fork is noticed through a pthread_atfork counter: the child's first
 * call on an inherited handle takes a worker slot of its own (a compare of
 * a process-local counter on every call; no system call).
 */
#include "container.h"
#include "region.h"
#include "window.h"
#include "worker.h"
#include "os/os.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

static uint64_t fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Every open handle of this process, for the fork handler and the fault
 * handler (which must find them without taking a lock). */
#define MAX_HANDLES 64
static struct vmc *handles[MAX_HANDLES];

int handle_register(struct vmc *c)
{
	for (int i = 0; i < MAX_HANDLES; i++) {
		struct vmc *expect = NULL;
		if (__atomic_compare_exchange_n(&handles[i], &expect, c, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return 0;
	}
	return vmc_fail(EMFILE, "this process has %d containers open: close one", MAX_HANDLES);
}

static void handle_unregister(struct vmc *c)
{
	for (int i = 0; i < MAX_HANDLES; i++) {
		struct vmc *expect = c;
		__atomic_compare_exchange_n(&handles[i], &expect, NULL, 0, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
	}
}

struct vmc *vmc_handle_at(const void *addr)
{
	for (int i = 0; i < MAX_HANDLES; i++) {
		struct vmc *c = __atomic_load_n(&handles[i], __ATOMIC_ACQUIRE);
		if (c && c->arena && (uintptr_t)addr - (uintptr_t)c->arena < c->h.arena_size)
			return c;
	}
	return NULL;
}

/* Invariant 10: a child forked while its parent has a VM attached (or
 * lazily mapped) must not reach it: empty every window before the child
 * runs a single instruction of its own. */
static void on_fork_child(void)
{
	fork_gen++;
	for (int i = 0; i < MAX_HANDLES; i++)
		if (handles[i] && handles[i]->win) {
			window_reset_child(handles[i]);
			region_forget_inherited(handles[i]);
		}
}

static void install_atfork(void)
{
	pthread_atfork(NULL, NULL, on_fork_child);
}

int vmc_enter(struct vmc *c)
{
	if (!c || !c->m)
		return vmc_fail(EINVAL, "NULL or closed container handle");
	if (__builtin_expect(c->fork_gen == fork_gen, 1))
		return 0;
	c->slot = VMC_NIL;   /* the parent's slot stays the parent's */
	c->fork_gen = fork_gen;
	return worker_join(c);
}

void handle_free(struct vmc *c)
{
	handle_unregister(c);
	window_free(c);
	arena_unmap(c);
	if (c->m)
		os_munmap(c->m, c->meta_len);
	if (c->meta_fd >= 0)
		os_close(c->meta_fd);
	if (c->pool_fd >= 0)
		os_close(c->pool_fd);
	free(c);
}

struct vmc *handle_new(void)
{
	struct vmc *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->meta_fd = c->pool_fd = -1;
	c->slot = VMC_NIL;
	pthread_once(&atfork_once, install_atfork);
	c->fork_gen = fork_gen;
	return c;
}

int handle_forked(struct vmc *c)
{
	return c->fork_gen != fork_gen;
}
