/*
 * test_threads.c - the thread model of vmc.h: one handle, several threads.
 * A process has one window, so one VM attached at a time; the thread that
 * attaches it owns the window until it detaches (a second attach gets
 * EALREADY), while other threads create, destroy, clone, reclaim and look
 * at VMs.  Those never touch the window under the attacher: a VM destroyed
 * while this process's window may still show it lazily waits in
 * quarantine instead.
 *
 * The race that broke this before: thread 1 attaches and detaches B, then
 * attaches A, while thread 2 destroys B.  Right after every successful
 * attach, A's memory must read back and B's indices must not be readable.
 * Also run under ThreadSanitizer (make tsan; CI runs this test there).
 */
#include "test.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define G test_granule()
#if defined(__SANITIZE_THREAD__)
#define ROUNDS 60   /* ThreadSanitizer is slow; the races show early */
#else
#define ROUNDS 300
#endif

struct shared {
	vmc_t *c;
	uint32_t a;
	_Atomic uint32_t b;         /* B's id, VMC_NO_VM while destroyed      */
	_Atomic int done;
	_Atomic long bad_a, bad_b, attaches, destroys, already;
};

/* Thread 1: switch between B and A; check A right after each attach. */
static void *switcher(void *p)
{
	struct shared *s = p;
	char *base;

	for (int r = 0; r < ROUNDS; r++) {
		uint32_t b = atomic_load(&s->b);
		if (b != VMC_NO_VM && vmc_attach(s->c, b, (void **)&base) == 0) {
			vmc_probe_t pr;
			if (vmc_probe(s->c, at(base, 1), &pr) == 0 && !pr.committed &&
			    vmc_commit(s->c, at(base, 1), 2 * G, 0) == 0)
				memset(at(base, 1), 0xbb, 64);
			vmc_detach(s->c, b);
		}
		int err;
		/* thread 2 may hold the window (EALREADY) or A (EBUSY) a moment */
		while ((err = vmc_attach(s->c, s->a, (void **)&base)) == EALREADY || err == EBUSY)
			;
		if (err) {
			atomic_fetch_add(&s->bad_a, 1);
			continue;
		}
		atomic_fetch_add(&s->attaches, 1);
		if (!readable(at(base, 0)) || !has_pat(base, 0xa, 0))
			atomic_fetch_add(&s->bad_a, 1);
		if (readable(at(base, 1)) || readable(at(base, 2)))
			atomic_fetch_add(&s->bad_b, 1);
		vmc_detach(s->c, s->a);
	}
	atomic_store(&s->done, 1);
	return NULL;
}

/* Thread 2: destroy and re-create B, clone A, look at things; try to
 * attach while thread 1 holds the window. */
static void *churner(void *p)
{
	struct shared *s = p;
	vmc_stats_t st;
	uint32_t id;

	while (!atomic_load(&s->done)) {
		uint32_t b = atomic_load(&s->b);
		if (b != VMC_NO_VM && vmc_vm_destroy(s->c, b) == 0) {
			atomic_store(&s->b, VMC_NO_VM);
			atomic_fetch_add(&s->destroys, 1);
		}
		if (atomic_load(&s->b) == VMC_NO_VM && vmc_vm_create(s->c, "B", 8 * MiB, &id) == 0)
			atomic_store(&s->b, id);
		if (vmc_vm_clone(s->c, s->a, "A2", &id) == 0)
			vmc_vm_destroy(s->c, id);
		if (vmc_attach(s->c, s->a, NULL) == EALREADY)
			atomic_fetch_add(&s->already, 1);
		else
			vmc_detach(s->c, s->a);
		vmc_stats(s->c, &st);
	}
	return NULL;
}

static void race(int isolation)
{
	struct shared s = { .c = make("th", isolation, 64 * MiB, 64 * MiB) };
	pthread_t t1, t2;
	uint32_t b;

	REQUIRE(s.c);
	s.a = mkvm(s.c, "A", 8 * MiB);
	b = mkvm(s.c, "B", 8 * MiB);
	REQUIRE(s.a != VMC_NO_VM && b != VMC_NO_VM && commit_fill(s.c, s.a, 0, 1) == 0);
	/* commit_fill tags with the VM id: make A's pattern independent of it */
	{
		char *base;
		REQUIRE(vmc_attach(s.c, s.a, (void **)&base) == 0);
		put_pat(base, 0xa, 0);
		vmc_detach(s.c, s.a);
	}
	atomic_store(&s.b, b);
	REQUIRE(pthread_create(&t1, NULL, switcher, &s) == 0);
	REQUIRE(pthread_create(&t2, NULL, churner, &s) == 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	fprintf(stderr, "  %s: %ld attaches of A, %ld destroys of B, %ld EALREADY; A unreadable "
		"or wrong %ld times, B's indices readable %ld times\n",
		isolation ? "strict" : "lazy", (long)s.attaches, (long)s.destroys,
		(long)s.already, (long)s.bad_a, (long)s.bad_b);
	CHECK_EQ(s.bad_a, 0);
	CHECK_EQ(s.bad_b, 0);
	CHECK(s.attaches == ROUNDS);
	CHECK(check_clean(s.c));
	finish(s.c);
}

TEST(destroy_races_attach_lazy)
{
	race(0);
}

TEST(destroy_races_attach_strict)
{
	race(1);
}

int main(void)
{
	RUN(destroy_races_attach_lazy);
	RUN(destroy_races_attach_strict);
	destroy_all();
	return test_done();
}
