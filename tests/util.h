/*
 * util.h - helpers shared by the tests: unique container names, resource
 * counts for leak checks, child processes, hugepage set-up.
 */
#ifndef VMC_TEST_UTIL_H
#define VMC_TEST_UTIL_H

#include <stdint.h>
#include <sys/types.h>
#include "vmc.h"

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

/* A container name unique to this process and call: "t-<tag>-<pid>-<n>". */
const char *test_name(const char *tag);

/* A small config: 4K pages, pool `pool` bytes, fund `fund`, verbose off. */
void test_config(vmc_config_t *cfg, uint64_t pool, uint64_t fund);

/* Open fds and lines of /proc/self/maps, for leak checks. */
int test_count_fds(void);
int test_count_maps(void);

/* Make sure n 2 MiB hugepages are free (raising nr_hugepages as root) and
 * a hugetlbfs mount exists.  Returns 1 if so; 0 with *why filled if not. */
int test_hugepages(long n, char *why, size_t whylen);

/* Set nr_hugepages to exactly n (root only). Returns 0 on success. */
int test_set_hugepages(long n);

/* THP for shmem available (setting it to advise as root if needed). */
int test_thp(void);

/* Fork; the child runs fn(arg) and exits with its return value.
 * Returns the child's pid. */
pid_t test_fork(int (*fn)(void *), void *arg);

/* Wait for pid; returns the exit code, or 128+signal if killed. */
int test_wait(pid_t pid);

#endif
