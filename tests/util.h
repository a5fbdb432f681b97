/*
 * util.h - helpers shared by the tests: unique container names (tracked so
 * main can destroy what a test that stopped early left behind), resource
 * counts for leak checks, child processes, hugepage set-up, probes of
 * window memory, granule patterns, and the checks most tests end with.
 */
#ifndef VMC_TEST_UTIL_H
#define VMC_TEST_UTIL_H

#include <stdint.h>
#include <sys/types.h>
#include "vmc.h"

/* UNDER_ASAN is 1 when built with AddressSanitizer (gcc or clang). */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Like REQUIRE (test.h), but stops only if this condition fails (REQUIRE
 * also stops after any earlier failed CHECK, which would leave children
 * unreaped). */
#define NEED(cond) do { if (!(cond)) { CHECK(cond); return; } } while (0)

/* A test mebibyte: half a granule.  The suite runs at 2 MiB granules and
 * at smaller ones ($VMC_TEST_GRANULE, e.g. 64K); written in these units,
 * every size in a test is the same number of granules at any granule size,
 * so its figures hold at both.  Real byte counts are written as numbers. */
#define MiB ((uint64_t)test_granule() / 2)
#define GiB (1024ull * MiB)

/* A container name unique to this process and call: "t-<tag>-<pid>-<n>". */
const char *test_name(const char *tag);

/* The granule the tests run at: $VMC_TEST_GRANULE (e.g. 64K), else 2 MiB.
 * Tests write G for it. */
size_t test_granule(void);

/* A small config: 4K pages of test_granule(), pool `pool` bytes, fund
 * `fund`, window 64 MiB, verbose off. */
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

/* test_name(tag), also recorded (up to 128 names) for destroy_all(). */
const char *tname(const char *tag);

/* vmc_destroy every name tname handed out in this process. */
void destroy_all(void);

/* Lines of /proc/meminfo: the number after `key` (e.g. "HugePages_Free:"),
 * or -1. */
long meminfo(const char *key);

/* 1 if one byte at p can be read, without a signal: the kernel copies it
 * into a pipe, or write(2) fails with EFAULT (0).  One pipe per process. */
int readable(const void *p);

/* The address of window granule i from base. */
void *at(void *base, uint32_t i);

/* The pattern word of VM-tag `vm`, window index i. */
uint64_t pat(uint32_t vm, uint32_t i);

/* Write pat(vm, i) at the start, middle and end of granule i. */
void put_pat(void *base, uint32_t vm, uint32_t i);

/* Granule i holds pat(vm, i) at all three places put_pat writes. */
int has_pat(void *base, uint32_t vm, uint32_t i);

/* Every word of [p, p+n) is zero; if not, says which word is not. */
int all_zero(const void *p, size_t n);

/* Granule counts in *s add up to the pool (invariant 5); says so if not. */
int conserved(const vmc_stats_t *s);

/* vmc_stats(c, s), then the counts add up (conserved) and the funded bytes
 * are exactly the funded granules.  0 if any of that fails. */
int stats_conserved(vmc_t *c, vmc_stats_t *s);

/* vmc_check(c) succeeds with no errors; prints the first one if not. */
int check_clean(vmc_t *c);

/* vmc_errmsg() contains needle; prints both if not. */
int errmsg_has(const char *needle);

/* Create a container named tname(tag) from cfg; NULL (said why) on error. */
vmc_t *make_cfg(const char *tag, vmc_config_t *cfg);

/* Create a container: test_config(pool, fund) with memory_isolation. */
vmc_t *make(const char *tag, int isolation, uint64_t pool, uint64_t fund);

/* Close c and destroy its container. */
void finish(vmc_t *c);

/* vmc_vm_create_span(name, limit, the window): a VM that may commit limit
 * bytes anywhere in the window; the id, or VMC_NIL (said why). */
uint32_t mkvm(vmc_t *c, const char *name, size_t limit);

/* In this worker: attach vm, commit indices [i, i+n), write their patterns
 * (put_pat), detach.  Returns 0 or the first error. */
int commit_fill(vmc_t *c, uint32_t vm, uint32_t i, uint32_t n);

/* Bytes of memory really allocated to c's pool file (st_blocks), ~0 if it
 * cannot be told: exactly the funded granules for every page kind (a
 * per-file count, so other processes' pages do not matter). */
uint64_t pool_file_bytes(vmc_t *c);

/* Run this binary (/proc/self/exe) again as an unrelated process with argv
 * (argv[1] is the mode); its exit code as test_wait gives it, -1 if the
 * fork failed, 126 if the exec did. */
int run_self(char *const argv[]);

/* A VM of window size, to own granules taken with take_n; VMC_NIL (said
 * why) on error. */
uint32_t make_vm(vmc_t *c, const char *name);

/* Take n granules for VM `vm` (at its lowest free window indices) into g[]
 * through this worker's cache, keeping the page map in step as the VM layer
 * does (vmc_check cross-checks used granules against it). */
int take_n(vmc_t *c, uint32_t vm, uint32_t n, uint32_t *g);

/* This worker's cached granules to the shared free list (where the next
 * refill of any worker finds them).  0 or an error. */
int drain_cache(vmc_t *c);

/* Give used granules back into this worker's cache, the page map first. */
int put_n(vmc_t *c, uint32_t n, const uint32_t *g);

/* Reset SIGSEGV and SIGBUS to their defaults, so that a child dies of the
 * signal even under ASan (whose handler would exit(1)). */
void default_segv(void);

#endif
