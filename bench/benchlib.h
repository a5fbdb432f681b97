/*
 * benchlib.h - what every vmc benchmark shares: a monotonic clock, medians
 * of repeated runs, a description of the machine, and a report that prints
 * a table to stdout and writes the same rows as JSON to $VMC_BENCH_OUT (a
 * directory) or bench/results/, as <bench>-<date>.json.
 *
 * A row is one measured quantity: its median over `runs` runs, its unit,
 * and optionally the name of another row it is compared with; the ratio
 * (this median / that median) is filled in when the report is finished.
 */
#ifndef VMC_BENCHLIB_H
#define VMC_BENCHLIB_H

#include <stddef.h>
#include <stdint.h>

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

/* Environment knobs shared by the benchmarks.
 * bench_env_size: parse $name ("1G", "512M", "4096"); def if unset.
 * Exits with a message if the value is malformed.
 * bench_env_int: likewise for a plain integer. */
uint64_t bench_env_size(const char *name, uint64_t def);
long bench_env_int(const char *name, long def);

/* Parse a size with an optional K/M/G/T suffix (powers of 1024).
 * Returns 0 on success, -1 if malformed. */
int bench_parse_size(const char *s, uint64_t *out);

/* Format a byte count as "1 GiB", "512 MiB", ... into buf. */
const char *bench_fmt_size(uint64_t bytes, char *buf, size_t n);

struct bench_report;

/* Start a report for benchmark `bench` ("balloon"); page_kind is what the
 * rows were measured on (a single kind or a list like "hugetlb,thp,4k"). */
struct bench_report *bench_report_new(const char *bench, const char *page_kind);

/* Change the report's page kind (e.g. to the kinds that were not skipped). */
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

#endif
