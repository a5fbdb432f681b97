/*
 * fault.c - SIGSEGV/SIGBUS attribution.  With isolation on, a stray access
 * into another VM's memory faults early; this handler says what it was:
 * one line on stderr with the worker's pid, the VM attached (or "none"),
 * the window offset, the VM that offset last showed, and the isolation
 * mode.  Then it restores the default action and returns, so the access
 * faults again and the process dies with the same signal, as it would
 * have without vmc.  Faults outside every arena go to the previous
 * handler.  Only async-signal-safe work happens here: lock-free reads of
 * the handle table and shared memory, a stack buffer and one write().
 */
#include "container.h"
#include "window.h"
#include "os/os.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static struct sigaction old_segv, old_bus;
static int installed;

struct line { char buf[512]; size_t n; };

static void put(struct line *l, const char *s)
{
	while (*s && l->n < sizeof l->buf - 1)
		l->buf[l->n++] = *s++;
}

static void put_num(struct line *l, uint64_t v, unsigned base)
{
	char tmp[24];
	int i = 0;
	if (base == 16)
		put(l, "0x");
	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (i-- > 0 && l->n < sizeof l->buf - 1)
		l->buf[l->n++] = tmp[i];
}

static void put_vm(struct line *l, struct vmc *c, uint32_t vm)
{
	if (vm >= c->h.max_vms) {
		put(l, "none");
		return;
	}
	put(l, "\"");
	put(l, c->vms[vm].name);
	put(l, "\" (id ");
	put_num(l, vm, 10);
	put(l, ")");
}

static void report(struct vmc *c, int sig, const void *addr)
{
	struct line l = { .n = 0 };
	uint64_t off = (uint64_t)((uintptr_t)addr - (uintptr_t)c->arena);

	put(&l, sig == SIGBUS ? "vmc: SIGBUS" : "vmc: SIGSEGV");
	put(&l, " at ");
	put_num(&l, (uintptr_t)addr, 16);
	put(&l, ": worker pid ");
	put_num(&l, (uint64_t)os_getpid(), 10);
	put(&l, ", attached VM ");
	put_vm(&l, c, c->win ? c->win->attached : VMC_NIL);
	if (off < c->h.window_size) {
		uint32_t i = (uint32_t)(off >> GSHIFT(c));
		put(&l, ", window offset ");
		put_num(&l, off, 16);
		put(&l, ", last owner of that granule: VM ");
		put_vm(&l, c, c->win ? c->win->last[i] : VMC_NIL);
	} else {
		put(&l, ", arena offset ");
		put_num(&l, off, 16);
		put(&l, " (outside the window)");
	}
	put(&l, ", isolation ");
	put(&l, c->h.memory_isolation ? "strict" : "lazy");
	put(&l, ", container ");
	put(&l, c->h.name[0] ? c->h.name : "(private)");
	put(&l, "\n");
	os_write(2, l.buf, l.n);
}

static void handler(int sig, siginfo_t *si, void *uctx)
{
	struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
	struct vmc *c = vmc_handle_at(si->si_addr);
	int saved = errno;

	if (c)
		report(c, sig, si->si_addr);
	if (c || old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
		/* die of the same signal: the access faults again, unhandled */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		os_sigaction(sig, &dfl, NULL);
	} else if (old->sa_flags & SA_SIGINFO) {
		old->sa_sigaction(sig, si, uctx);
	} else {
		old->sa_handler(sig);
	}
	errno = saved;
}

int vmc_fault_install(vmc_t *c, int flags)
{
	struct sigaction sa;
	int err;

	vmc_clear_error();
	if ((err = vmc_enter(c)))
		return err;
	if (flags)
		return vmc_fail(EINVAL, "vmc_fault_install: flags must be 0");
	if (__atomic_exchange_n(&installed, 1, __ATOMIC_ACQ_REL))
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (os_sigaction(SIGSEGV, &sa, &old_segv) || os_sigaction(SIGBUS, &sa, &old_bus)) {
		installed = 0;
		return vmc_fail(errno, "sigaction: %s", vmc_strerror(errno));
	}
	return 0;
}
