/*
 * benchlib.h - what every vmc benchmark shares: a monotonic clock, medians
 * of repeated runs, a description of the machine, and a report that prints
 * a table to stdout and writes the same rows as JSON to $VMC_BENCH_OUT (a
 * directory) or bench/results/, as <bench>-<date>.json.
 *
 * A row is one measured quantity: its median over `runs` runs, its unit,
 * and optionally the name of another row it is compared with; the ratio
 * (this median / that median) is filled in when the report is finished.
 *
 * Below the report come the pieces the benchmarks would otherwise each
 * write again: calibrated timing loops, /proc readers, the host set-up
 * that makes a page kind available (reserving hugepages and switching
 * shmem THP to advise as root, and putting both back), and the container
 * configuration every benchmark starts from.  These use the library's
 * public API (vmc.h); the report does not.
 */
#ifndef VMC_BENCHLIB_H
#define VMC_BENCHLIB_H

#include <stddef.h>
#include <stdint.h>

#include "vmc.h"

#define BENCH_KiB (1024ull)
#define BENCH_MiB (1024ull * 1024)
#define BENCH_GiB (1024ull * 1024 * 1024)

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Median of v[0..n-1] (sorts v in place). 0 if n == 0. */
double bench_median(double *v, int n);
double bench_min(const double *v, int n);
double bench_max(const double *v, int n);

/* Machine description, filled once from uname, /proc/cpuinfo, sysconf and
 * /proc/meminfo. */
struct bench_machine {
	char kernel[128];      /* uname -r                        */
	char cpu[128];         /* "model name" of /proc/cpuinfo   */
	long nproc;            /* online CPUs                     */
	uint64_t mem_total;    /* bytes, MemTotal                 */
	char line[384];        /* "AMD EPYC, 2 CPUs, 23.5 GiB RAM, Linux 6.18" */
};
void bench_machine(struct bench_machine *m);

/* What page-table work costs here (benchprobe.c), measured when a report
 * starts and printed with it: a system call; a first touch of an
 * allocated 4 KiB shmem page (a minor fault), MADV_POPULATE_WRITE and
 * munmap of a populated page, each per page; an mmap of a memfd range; an
 * mprotect pair on a populated page.  All in ns. */
struct bench_probe {
	double syscall_ns, fault_ns, populate_ns, munmap_ns, mmap_ns, mprotect_pair_ns;
};
void bench_probe(struct bench_probe *out);

/* Environment knobs shared by the benchmarks.
 * bench_env_size: parse $name ("1G", "512M", "4096"); def if unset.
 * Exits with a message if the value is malformed.
 * bench_env_int: likewise for a plain integer. */
uint64_t bench_env_size(const char *name, uint64_t def);
long bench_env_int(const char *name, long def);

/* Format a byte count as "1 GiB", "512 MiB", ... into buf. */
const char *bench_fmt_size(uint64_t bytes, char *buf, size_t n);

struct bench_report;

/* Start a report for benchmark `bench` ("balloon"); page_kind is what the
 * rows were measured on (a single kind or a list like "hugetlb,thp,4k"). */
struct bench_report *bench_report_new(const char *bench, const char *page_kind);

/* Change the report's page kind (e.g. to the kinds that were not skipped);
 * NULL or "" (none was measured): "none". */
void bench_report_set_page_kind(struct bench_report *r, const char *page_kind);

/* Add a row.  ratio_vs names an earlier or later row (NULL: no ratio).
 * min/max are shown next to the median for the spread of the runs.
 * page_kind may be NULL (the report's). */
void bench_row(struct bench_report *r, const char *name, const char *unit,
	       double median, double min, double max, int runs,
	       const char *ratio_vs, const char *page_kind);

/* Add a row from the raw per-run values (computes median/min/max). */
void bench_row_runs(struct bench_report *r, const char *name, const char *unit,
		    double *values, int runs, const char *ratio_vs, const char *page_kind);

/* A free-text note (skipped page kinds, target verdicts); printed under
 * the table and stored in the JSON. printf-style. */
void bench_note(struct bench_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The median of a row added so far, or -1 if there is none by that name. */
double bench_row_median(const struct bench_report *r, const char *name);

/* Compute ratios, print the table and notes, write the JSON file, free the
 * report.  Returns 0, or -1 if the JSON file could not be written (the
 * table is printed regardless). */
int bench_report_finish(struct bench_report *r);

/* ------------------------------------------------------------ timing */

/* bytes per ns, i.e. GB/s (10^9 bytes/s); 0 if ns == 0. */
double bench_gbps(uint64_t bytes, uint64_t ns);

/* A loop to calibrate: run n iterations of what arg describes, return the
 * nanoseconds they took. */
typedef uint64_t (*bench_timed_fn)(void *arg, uint64_t n);

/* How many iterations of timed() take about target_ns: one warm-up call of
 * `warm` iterations, then n0 iterations, doubled until a call takes at
 * least target_ns / div, scaled to target_ns.  Not rounded or clamped: the
 * caller does that (to a multiple of its VMs, a minimum, ...). */
uint64_t bench_calibrate(bench_timed_fn timed, void *arg, uint64_t warm, uint64_t n0,
			 uint64_t target_ns, unsigned div);

/* A private anonymous mapping of len bytes (MAP_NORESERVE) with
 * protection prot; prints the error and exits if there is none. */
void *bench_map_anon(size_t len, int prot);

/* ------------------------------------------------------------ /proc */

/* The "Key:  123 kB" field `key` (with its colon) of a /proc file such as
 * /proc/meminfo or /proc/self/smaps_rollup, in bytes; -1 if absent.  The
 * last line that matches counts. */
long long bench_kb_field(const char *path, const char *key);

/* bench_kb_field("/proc/meminfo", key). */
long long bench_meminfo(const char *key);

/* The first number in a file (/proc/sys/vm/nr_hugepages), -1 if none. */
long bench_read_long(const char *path);

/* Write s to a file; 0 or -1. */
int bench_write_file(const char *path, const char *s);

/* The bracketed word of a THP setting file ("advise" of "always [advise]
 * never"), "" if unreadable. */
void bench_thp_setting(const char *path, char *out, size_t n);

/* The first line of /proc/loadavg without its newline, "?" if unreadable. */
void bench_loadavg(char *out, size_t n);

/* Run fn(arg, out) in a fresh forked child (a clean process for each
 * measured variant); the child's *out, size bytes, comes back through a
 * pipe.  Returns 0 if the child sent all of it and fn returned 0; else -1,
 * with *out zeroed if it did not come back whole and *status (may be NULL)
 * the child's wait status. */
int bench_in_child(int (*fn)(void *arg, void *out), void *arg, void *out, size_t size,
		   int *status);

/* Append item to a comma-separated list ("4k" -> "4k,thp"). */
void bench_list_add(char *list, size_t n, const char *item);

/* ------------------------------------------------------------ the host */

#define BENCH_THP_SHMEM "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define BENCH_THP_ANON  "/sys/kernel/mm/transparent_hugepage/enabled"
#define BENCH_NR_HUGE   "/proc/sys/vm/nr_hugepages"

/* Can page kind `kind` (VMC_PAGE_*) be had, with `hugepages` free 2 MiB
 * pages for hugetlb?  As root it sets the host up: hugepages are reserved
 * with vmc_hugepages_setup() (the ones already free are kept for whoever
 * else uses them) and shmem THP is set to "advise" if it is off.
 * What it changed is remembered for bench_host_restore(), which also runs
 * at exit of this process if the benchmark dies before it.  Returns 1, or
 * 0 with the reason in why[]. */
int bench_kind_available(int kind, long hugepages, char *why, size_t n);

/* bench_kind_available(), noting "<kind> skipped: <reason>" in r if not;
 * returns 1 if the kind can be measured. */
int bench_kind_ready(struct bench_report *r, int kind, long hugepages);

/* Is the kind named kn in $VMC_BENCH_KINDS (unset or empty: every kind)?
 * If not, notes "<kn> skipped: not in VMC_BENCH_KINDS=..." in r. */
int bench_kind_wanted(struct bench_report *r, const char *kn);

/* Count one page kind's outcome, res as a benchmark's measure of a kind
 * returns it: 0 measured (its name is added to the comma-separated list
 * measured[n]), 1 skipped, < 0 failed.  Returns 1 if it failed, else 0. */
int bench_kind_outcome(int res, int kind, char *measured, size_t n);

/* Put back what bench_kind_available() changed, unless
 * VMC_BENCH_KEEP_HOST=1: nr_hugepages lowered by the pages it added (never
 * more than it asked for, since another process may have raised
 * nr_hugepages meanwhile) and shmem_enabled back to what it was if it is
 * still "advise".  Notes what it did in r (NULL: no notes).  Idempotent. */
void bench_host_restore(struct bench_report *r);

/* ------------------------------------------------------------ the library */

/* Print "<program>: what: <error>: <vmc_errmsg()>" and exit(1). */
void bench_die(const char *what, int err) __attribute__((noreturn));

/* vmc_config_init(cfg), then the settings every benchmark starts from: a
 * pool of `pool` bytes funded in full, a window of `window` bytes, no
 * region space, page kind `kind`, not verbose.  The rest (max_workers,
 * max_vms, ...) keeps the defaults.  Returns vmc_config_init's error. */
int bench_config(vmc_config_t *cfg, int kind, uint64_t pool, uint64_t window);

/* The system calls vmc has made in attach and detach of c so far
 * (vmc_stats().attach.syscalls); dies if vmc_stats fails. */
uint64_t bench_attach_syscalls(vmc_t *c);

#endif
