/*
 * test_lockword.c - no lock wait is unbounded (lock.c).  A lock word in the
 * metadata file that says "held by a live thread that never lets go" ends
 * the wait with ETIMEDOUT and a message that names the lock and says what
 * to do; a word garbled into an owner that does not exist (the issue's
 * 0x3ffff0) is taken back and repaired, at once by vmc_recover (`vmcctl
 * check --recover`), or by the first locker whose wait runs out.  The
 * timeout is lowered to 1 s here (vmc_lock_timeout_s) to keep the test
 * short.
 */
#include "test.h"
#include "util.h"
#include "meta.h"
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Write `word` into the lock at offset `off` of container name's file. */
static int garble(const char *name, uint64_t off, int word)
{
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/vmc.%s.meta", name);
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	int ok = pwrite(fd, &word, sizeof word, (off_t)off) == sizeof word;
	close(fd);
	return ok ? 0 : -1;
}

TEST(held_lock_word_times_out)
{
	vmc_config_t cfg;
	vmc_t *c, *d = NULL;
	const char *name = test_name("lockw");

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	vmc_close(c);
	/* "locked by thread 1": init, alive, never gives it back */
	REQUIRE(garble(name, offsetof(struct vmc_meta, pool_lock), 1) == 0);
	time_t t0 = time(NULL);
	CHECK_EQ(vmc_open(name, &d), ETIMEDOUT);
	CHECK(d == NULL);
	CHECK(errmsg_has("pool lock") && errmsg_has(name) && errmsg_has("thread 1") &&
	      errmsg_has("vmcctl check --recover"));
	CHECK(time(NULL) - t0 < 10);
	CHECK_EQ(vmc_destroy(name), 0);
}

/* The case: 0x3ffff0 written over the balloon lock. */
TEST(garbled_balloon_lock_recovered_at_once)
{
	vmc_config_t cfg;
	vmc_stats_t s0, s;
	vmc_t *c;
	const char *name = test_name("lockb");

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	REQUIRE(vmc_stats(c, &s0) == 0);
	REQUIRE(garble(name, offsetof(struct vmc_meta, balloon_lock), 0x3ffff0) == 0);
	time_t t0 = time(NULL);
	CHECK_EQ(vmc_recover(c, NULL), 0);           /* vmcctl check --recover */
	CHECK(time(NULL) - t0 < 1 + 1);
	CHECK(vmc_stats(c, &s) == 0 && s.lock_repairs == s0.lock_repairs + 1);
	CHECK_EQ(vmc_balloon(c, 16 * MiB, NULL), 0);
	CHECK_EQ(vmc_balloon(c, 24 * MiB, NULL), 0);
	CHECK(time(NULL) - t0 < 1 + 1);
	CHECK(check_clean(c));
	finish(c);
}

/* Without vmcctl: the waits of vmc_balloon and vmc_check end, take the
 * lock back, repair and go on. */
TEST(garbled_locks_taken_back_after_the_wait)
{
	vmc_config_t cfg;
	vmc_t *c;
	const char *name = test_name("lockt");

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	REQUIRE(garble(name, offsetof(struct vmc_meta, balloon_lock), 0x3ffff0) == 0);
	time_t t0 = time(NULL);
	CHECK_EQ(vmc_balloon(c, 16 * MiB, NULL), 0);
	CHECK(time(NULL) - t0 < 5);
	/* a slot lock: the slot of nobody */
	uint32_t s = (vmc_worker_slot(c) + 1) % cfg.max_workers;
	REQUIRE(garble(name, c->h.off_slots + s * sizeof(struct vmc_slot) +
		       offsetof(struct vmc_slot, lock), 0x3ffff0) == 0);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_balloon(c, 0, NULL), 0);
	CHECK(time(NULL) - t0 < 8);
	finish(c);
}

int main(void)
{
	vmc_lock_timeout_s = 1;
	RUN(held_lock_word_times_out);
	RUN(garbled_balloon_lock_recovered_at_once);
	RUN(garbled_locks_taken_back_after_the_wait);
	return test_done();
}
