/*
 * test_lockword.c - a metadata file whose pool lock word says it is held
 * by a live process that will never release it (garbage, or a foreign
 * file) must not hang vmc_open forever: joining gives up after its timeout
 * with ETIMEDOUT and a message pointing at `vmcctl check`.
 */
#include "test.h"
#include "util.h"
#include "meta.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TEST(held_lock_word_times_out)
{
	vmc_config_t cfg;
	vmc_t *c, *d = NULL;
	const char *name = test_name("lockw");
	char path[256];
	int word = 1;   /* "locked by thread 1": init, alive, never gives it back */

	test_config(&cfg, 32 * MiB, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	vmc_close(c);
	snprintf(path, sizeof path, "/dev/shm/vmc.%s.meta", name);
	int fd = open(path, O_RDWR);
	REQUIRE(fd >= 0);
	CHECK(pwrite(fd, &word, sizeof word, offsetof(struct vmc_meta, pool_lock)) == sizeof word);
	close(fd);

	time_t t0 = time(NULL);
	CHECK_EQ(vmc_open(name, &d), ETIMEDOUT);
	CHECK(d == NULL);
	CHECK(strstr(vmc_errmsg(), "vmcctl check") != NULL);
	CHECK(time(NULL) - t0 < 30);
	CHECK_EQ(vmc_destroy(name), 0);
}

int main(void)
{
	RUN(held_lock_word_times_out);
	return test_done();
}
