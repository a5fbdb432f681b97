/*
 * test_nosigbus.c - invariant 7: running short of memory is an error code,
 * never a SIGBUS or an OOM kill.  Funding more than MemAvailable is refused
 * up front with a message that says what to do (at create and at balloon
 * deflate), pool memfds are sealed against shrinking, so no one can
 * truncate memory out from under a mapping, and metadata that does not fit
 * in /dev/shm is refused before a byte of it is written.
 */
#include "test.h"
#include "util.h"
#include "meta.h"

#define G test_granule()

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static uint64_t mem_available(void)
{
	vmc_caps_t caps;
	vmc_caps_probe(&caps);
	return caps.mem_available;
}

static int file_exists(const char *name, const char *what)
{
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/vmc.%s.%s", name, what);
	return access(path, F_OK) == 0;
}

TEST(create_refuses_more_than_available)
{
	vmc_config_t cfg;
	vmc_t *c = NULL;
	uint64_t avail = mem_available();
	const char *name = test_name("big");

	REQUIRE(avail > 0);
	uint64_t want = ((avail >> 21) + 1024) << 21;   /* 2 GiB more than there is */
	test_config(&cfg, want, want);
	CHECK_EQ(vmc_create(name, &cfg, &c), ENOMEM);
	CHECK(c == NULL);
	CHECK(strstr(vmc_errmsg(), "available") != NULL);
	CHECK(!file_exists(name, "meta") && !file_exists(name, "pool"));
}

TEST(deflate_refuses_more_than_available)
{
	vmc_config_t cfg;
	vmc_t *c;
	vmc_stats_t before, after;
	vmc_check_report_t r;
	uint64_t avail = mem_available(), achieved = 0;
	const char *name = test_name("defl");

	REQUIRE(avail > 0);
	uint64_t pool = ((avail >> 21) + 1024) << 21;   /* sparse: costs nothing */
	test_config(&cfg, pool, 8 * MiB);
	REQUIRE(vmc_create(name, &cfg, &c) == 0);
	CHECK_EQ(vmc_stats(c, &before), 0);
	CHECK_EQ(vmc_balloon(c, 0, &achieved), ENOMEM);
	CHECK(strstr(vmc_errmsg(), "available") != NULL);
	CHECK_EQ(vmc_stats(c, &after), 0);
	CHECK_EQ(after.funded_bytes, before.funded_bytes);   /* refused up front */
	CHECK_EQ(achieved, pool - 8 * MiB);
	CHECK_EQ(vmc_check(c, &r), 0);
	vmc_close(c);
	vmc_destroy(name);
}

TEST(memfd_pool_is_sealed_against_shrinking)
{
	vmc_config_t cfg;
	vmc_t *c;
	vmc_caps_t caps;

	vmc_caps_probe(&caps);
	if (!caps.memfd_seals) {
		fprintf(stderr, "  (no memfd seals on this kernel: nothing to check)\n");
		return;
	}
	test_config(&cfg, 64 * MiB, 16 * MiB);
	REQUIRE(vmc_create(NULL, &cfg, &c) == 0);   /* private: memfd pool */
	int seals = fcntl(c->pool_fd, F_GET_SEALS);
	CHECK(seals >= 0 && (seals & F_SEAL_SHRINK));
	CHECK(ftruncate(c->pool_fd, 0) == -1 && errno == EPERM);
	CHECK(ftruncate(c->pool_fd, 32 * MiB) == -1 && errno == EPERM);
	vmc_close(c);
}

/* In a mount namespace of its own, with a 16 MiB tmpfs on /dev/shm: a
 * container whose page maps need 256 MiB is refused with ENOSPC and a
 * message, not killed by SIGBUS while the tables are written.  Exit: 0 as
 * expected, 77 if the namespace cannot be had, else a failure. */
static int small_shm(void *p)
{
	vmc_config_t cfg;
	vmc_t *c = NULL;
	(void)p;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=16m"))
		return 77;
	test_config(&cfg, 64 * MiB, 0);
	cfg.window_size = (uint64_t)G << 22;   /* 16 VMs x 4 Mi granules x 4 bytes */
	int err = vmc_create("small-shm", &cfg, &c);
	if (err != ENOSPC || !strstr(vmc_errmsg(), "metadata") || !strstr(vmc_errmsg(), "/dev/shm")) {
		fprintf(stderr, "  create: %d %s\n", err, vmc_errmsg());
		return 1;
	}
	return file_exists("small-shm", "meta") || file_exists("small-shm", "pool") ? 2 : 0;
}

TEST(metadata_larger_than_shm_is_refused)
{
	int rc = test_wait(test_fork(small_shm, NULL));
	if (rc == 77) {
		fprintf(stderr, "  (no mount namespace here: not root? part skipped)\n");
		return;
	}
	CHECK_EQ(rc, 0);
}

int main(void)
{
	RUN(create_refuses_more_than_available);
	RUN(deflate_refuses_more_than_available);
	RUN(memfd_pool_is_sealed_against_shrinking);
	RUN(metadata_larger_than_shm_is_refused);
	return test_done();
}
