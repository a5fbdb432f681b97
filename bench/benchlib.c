/*
 * benchlib.c - timing, medians, machine information and the table/JSON
 * report shared by the benchmarks (see benchlib.h).  Nothing here uses the
 * library: a benchmark's report must not depend on the code it measures.
 */
#include "benchlib.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef VMC_BENCH_RESULTS_DIR
#define VMC_BENCH_RESULTS_DIR "bench/results"
#endif

#define MAX_ROWS  128
#define MAX_NOTES 32

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_min(const double *v, int n)
{
	double m = n > 0 ? v[0] : 0;
	for (int i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

double bench_max(const double *v, int n)
{
	double m = n > 0 ? v[0] : 0;
	for (int i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

/* ------------------------------------------------------------ machine */

static void read_field(const char *path, const char *key, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	char line[512];
	size_t k = strlen(key);

	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		char *p;
		if (strncmp(line, key, k))
			continue;
		p = strchr(line + k, ':');
		if (!p)
			continue;
		for (p++; *p == ' ' || *p == '\t'; p++)
			;
		p[strcspn(p, "\n")] = 0;
		snprintf(out, n, "%s", p);
		break;
	}
	fclose(f);
}

const char *bench_fmt_size(uint64_t bytes, char *buf, size_t n)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	double v = (double)bytes;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(buf, n, "%llu %s", (unsigned long long)v, unit[u]);
	else
		snprintf(buf, n, "%.1f %s", v, unit[u]);
	return buf;
}

void bench_machine(struct bench_machine *m)
{
	struct utsname u;
	char mem[32] = "", sz[32];

	memset(m, 0, sizeof *m);
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof m->kernel, "%s", u.release);
	snprintf(m->cpu, sizeof m->cpu, "unknown CPU");
	read_field("/proc/cpuinfo", "model name", m->cpu, sizeof m->cpu);
	m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	read_field("/proc/meminfo", "MemTotal", mem, sizeof mem);
	m->mem_total = strtoull(mem, NULL, 10) * 1024;   /* "24684084 kB" */
	snprintf(m->line, sizeof m->line, "%s, %ld CPUs, %s RAM, Linux %s", m->cpu, m->nproc,
		 bench_fmt_size(m->mem_total, sz, sizeof sz), m->kernel);
}

/* ------------------------------------------------------------ env */

int bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno)
		return -1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -1;
	}
	if ((*end == 'i' || *end == 'I') && (end[1] == 'b' || end[1] == 'B'))
		end += 2;
	else if (*end == 'b' || *end == 'B')
		end++;
	if (*end || (shift && v > (~0ull >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

uint64_t bench_env_size(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	uint64_t v;

	if (!s || !*s)
		return def;
	if (bench_parse_size(s, &v)) {
		fprintf(stderr, "%s=%s: not a size (use e.g. 1G, 512M)\n", name, s);
		exit(2);
	}
	return v;
}

long bench_env_int(const char *name, long def)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end || errno) {
		fprintf(stderr, "%s=%s: not an integer\n", name, s);
		exit(2);
	}
	return v;
}

/* ------------------------------------------------------------ report */

struct bench_row {
	char name[64], unit[16], ratio_vs[64], page_kind[64];
	double median, min, max, ratio;
	int runs, has_ratio;
};

struct bench_report {
	char bench[32], page_kind[64];
	struct bench_row rows[MAX_ROWS];
	int nrows;
	char *notes[MAX_NOTES];
	int nnotes;
};

struct bench_report *bench_report_new(const char *bench, const char *page_kind)
{
	struct bench_report *r = calloc(1, sizeof *r);
	if (!r) {
		perror("bench_report_new");
		exit(1);
	}
	snprintf(r->bench, sizeof r->bench, "%s", bench);
	snprintf(r->page_kind, sizeof r->page_kind, "%s", page_kind ? page_kind : "");
	return r;
}

void bench_report_set_page_kind(struct bench_report *r, const char *page_kind)
{
	snprintf(r->page_kind, sizeof r->page_kind, "%s", page_kind ? page_kind : "");
}

void bench_row(struct bench_report *r, const char *name, const char *unit,
	       double median, double min, double max, int runs,
	       const char *ratio_vs, const char *page_kind)
{
	struct bench_row *w;

	if (r->nrows == MAX_ROWS) {
		fprintf(stderr, "bench: too many rows, %s dropped\n", name);
		return;
	}
	w = &r->rows[r->nrows++];
	memset(w, 0, sizeof *w);
	snprintf(w->name, sizeof w->name, "%s", name);
	snprintf(w->unit, sizeof w->unit, "%s", unit);
	snprintf(w->ratio_vs, sizeof w->ratio_vs, "%s", ratio_vs ? ratio_vs : "");
	snprintf(w->page_kind, sizeof w->page_kind, "%s", page_kind ? page_kind : r->page_kind);
	w->median = median;
	w->min = min;
	w->max = max;
	w->runs = runs;
}

void bench_row_runs(struct bench_report *r, const char *name, const char *unit,
		    double *values, int runs, const char *ratio_vs, const char *page_kind)
{
	double lo = bench_min(values, runs), hi = bench_max(values, runs);
	bench_row(r, name, unit, bench_median(values, runs), lo, hi, runs, ratio_vs, page_kind);
}

void bench_note(struct bench_report *r, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	printf("  note: %s\n", buf);
	fflush(stdout);
	if (r->nnotes < MAX_NOTES)
		r->notes[r->nnotes++] = strdup(buf);
}

static const struct bench_row *find_row(const struct bench_report *r, const char *name)
{
	for (int i = 0; i < r->nrows; i++)
		if (!strcmp(r->rows[i].name, name))
			return &r->rows[i];
	return NULL;
}

double bench_row_median(const struct bench_report *r, const char *name)
{
	const struct bench_row *w = find_row(r, name);
	return w ? w->median : -1;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (v != v || v > 1e300 || v < -1e300)
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

static int mkdir_p(const char *path)
{
	char buf[512];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_json(const struct bench_report *r, const struct bench_machine *m,
		      const char *date)
{
	const char *dir = getenv("VMC_BENCH_OUT");
	char path[768], stamp[32];
	FILE *f;

	if (!dir || !*dir)
		dir = VMC_BENCH_RESULTS_DIR;
	if (mkdir_p(dir) != 0) {
		fprintf(stderr, "bench: cannot create %s: %s\n", dir, strerror(errno));
		return -1;
	}
	/* file-name-safe stamp: 2025-01-31T12-00-00 */
	snprintf(stamp, sizeof stamp, "%s", date);
	for (char *p = stamp; *p; p++)
		if (*p == ':')
			*p = '-';
	snprintf(path, sizeof path, "%s/%s-%s.json", dir, r->bench, stamp);
	if (!(f = fopen(path, "w"))) {
		fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	fputs("{\n  \"bench\": ", f);
	json_str(f, r->bench);
	fputs(",\n  \"date\": ", f);
	json_str(f, date);
	fputs(",\n  \"machine\": {\"line\": ", f);
	json_str(f, m->line);
	fputs(", \"cpu\": ", f);
	json_str(f, m->cpu);
	fprintf(f, ", \"nproc\": %ld, \"mem_total\": %llu},\n  \"kernel\": ", m->nproc,
		(unsigned long long)m->mem_total);
	json_str(f, m->kernel);
	fputs(",\n  \"page_kind\": ", f);
	json_str(f, r->page_kind);
	fputs(",\n  \"rows\": [", f);
	for (int i = 0; i < r->nrows; i++) {
		const struct bench_row *w = &r->rows[i];
		fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
		json_str(f, w->name);
		fputs(", \"unit\": ", f);
		json_str(f, w->unit);
		fputs(", \"median\": ", f);
		json_num(f, w->median);
		fprintf(f, ", \"runs\": %d, \"ratio_vs\": ", w->runs);
		if (w->ratio_vs[0])
			json_str(f, w->ratio_vs);
		else
			fputs("null", f);
		fputs(", \"ratio\": ", f);
		if (w->has_ratio)
			json_num(f, w->ratio);
		else
			fputs("null", f);
		fputs(", \"min\": ", f);
		json_num(f, w->min);
		fputs(", \"max\": ", f);
		json_num(f, w->max);
		fputs(", \"page_kind\": ", f);
		json_str(f, w->page_kind);
		fputc('}', f);
	}
	fputs("\n  ],\n  \"notes\": [", f);
	for (int i = 0; i < r->nnotes; i++) {
		fputs(i ? ",\n    " : "\n    ", f);
		json_str(f, r->notes[i]);
	}
	fputs("\n  ]\n}\n", f);
	if (fclose(f) != 0) {
		fprintf(stderr, "bench: writing %s: %s\n", path, strerror(errno));
		return -1;
	}
	printf("results: %s\n", path);
	return 0;
}

static void fmt_value(char *buf, size_t n, double v)
{
	if (v >= 1e5)
		snprintf(buf, n, "%.0f", v);
	else if (v >= 100)
		snprintf(buf, n, "%.1f", v);
	else if (v >= 1)
		snprintf(buf, n, "%.2f", v);
	else
		snprintf(buf, n, "%.3g", v);
}

int bench_report_finish(struct bench_report *r)
{
	struct bench_machine m;
	char date[32], med[32], lo[32], hi[32], ratio[96];
	time_t now = time(NULL);
	struct tm tm;
	int err;

	bench_machine(&m);
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	for (int i = 0; i < r->nrows; i++) {
		struct bench_row *w = &r->rows[i];
		const struct bench_row *b = w->ratio_vs[0] ? find_row(r, w->ratio_vs) : NULL;
		if (b && b->median > 0) {
			w->ratio = w->median / b->median;
			w->has_ratio = 1;
		}
	}
	printf("\n== %s  (%s)\n", r->bench, date);
	printf("machine: %s\n", m.line);
	printf("page kind: %s\n\n", r->page_kind);
	printf("  %-46s %12s %-8s %22s %4s  %s\n", "name", "median", "unit", "min .. max",
	       "runs", "ratio");
	for (int i = 0; i < r->nrows; i++) {
		const struct bench_row *w = &r->rows[i];
		char range[80];
		fmt_value(med, sizeof med, w->median);
		fmt_value(lo, sizeof lo, w->min);
		fmt_value(hi, sizeof hi, w->max);
		snprintf(range, sizeof range, "%s .. %s", lo, hi);
		if (w->has_ratio)
			snprintf(ratio, sizeof ratio, "%.3gx vs %s", w->ratio, w->ratio_vs);
		else if (w->ratio_vs[0])
			snprintf(ratio, sizeof ratio, "(no %s)", w->ratio_vs);
		else
			ratio[0] = 0;
		printf("  %-46s %12s %-8s %22s %4d  %s\n", w->name, med, w->unit, range,
		       w->runs, ratio);
	}
	if (r->nnotes)
		printf("\n");
	for (int i = 0; i < r->nnotes; i++)
		printf("  * %s\n", r->notes[i]);
	printf("\n");
	err = write_json(r, &m, date);
	fflush(stdout);
	for (int i = 0; i < r->nnotes; i++)
		free(r->notes[i]);
	free(r);
	return err;
}
