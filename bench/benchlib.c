/*
 * benchlib.c - timing, medians, machine information and the table/JSON
 * report shared by the benchmarks (see benchlib.h), then the helpers they
 * share around it: calibrated loops, /proc readers, the host set-up for a
 * page kind (hugepages, shmem THP) and its restoration, and the starting
 * container configuration.  The report uses nothing of the library (a
 * benchmark's report must not depend on the code it measures); the host
 * and library helpers at the end use its public API only.
 */
#include "benchlib.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
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

uint64_t bench_env_size(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	uint64_t v;

	if (!s || !*s)
		return def;
	if (vmc_parse_size(s, &v)) {
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
	struct bench_probe probe;   /* this machine's page-table costs, at the start */
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
	bench_probe(&r->probe);
	return r;
}

void bench_report_set_page_kind(struct bench_report *r, const char *page_kind)
{
	snprintf(r->page_kind, sizeof r->page_kind, "%s",
		 page_kind && *page_kind ? page_kind : "none");
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
	fprintf(f, ",\n  \"probe_ns\": {\"syscall\": %.0f, \"fault_4k\": %.0f, "
		"\"populate_4k\": %.0f, \"munmap_4k\": %.0f, \"mmap\": %.0f, "
		"\"mprotect_pair\": %.0f}", r->probe.syscall_ns, r->probe.fault_ns,
		r->probe.populate_ns, r->probe.munmap_ns, r->probe.mmap_ns,
		r->probe.mprotect_pair_ns);
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
	printf("probe: system call %.0f ns, minor fault %.0f ns/page (4 KiB shmem), "
	       "MADV_POPULATE_WRITE %.0f ns/page, munmap %.0f ns/page, mmap %.0f ns, "
	       "mprotect pair %.0f ns\n", r->probe.syscall_ns, r->probe.fault_ns,
	       r->probe.populate_ns, r->probe.munmap_ns, r->probe.mmap_ns,
	       r->probe.mprotect_pair_ns);
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

/* ------------------------------------------------------------ timing */

double bench_gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;   /* bytes/ns == GB/s */
}

uint64_t bench_calibrate(bench_timed_fn timed, void *arg, uint64_t warm, uint64_t n0,
			 uint64_t target_ns, unsigned div)
{
	uint64_t n = n0, ns;

	timed(arg, warm);   /* warm: caches filled, tables faulted in */
	while ((ns = timed(arg, n)) < target_ns / div)
		n *= 2;
	return (uint64_t)((double)n * (double)target_ns / (double)(ns ? ns : 1));
}

void *bench_map_anon(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "%s: mmap: %s\n", program_invocation_short_name, strerror(errno));
		exit(1);
	}
	return p;
}

/* ------------------------------------------------------------ /proc */

long long bench_kb_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t k = strlen(key);
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, k))
			v = strtoll(line + k, NULL, 10) * 1024;
	fclose(f);
	return v;
}

long long bench_meminfo(const char *key)
{
	return bench_kb_field("/proc/meminfo", key);
}

long bench_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

int bench_write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(s, f);
	return fclose(f) ? -1 : 0;
}

void bench_thp_setting(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	char line[256] = "", *a, *b;

	out[0] = 0;
	if (!f)
		return;
	if (fgets(line, sizeof line, f) && (a = strchr(line, '[')) && (b = strchr(a, ']'))) {
		*b = 0;
		snprintf(out, n, "%s", a + 1);
	}
	fclose(f);
}

void bench_loadavg(char *out, size_t n)
{
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(out, n, "?");
	if (!f)
		return;
	if (!fgets(out, (int)n, f))
		snprintf(out, n, "?");
	out[strcspn(out, "\n")] = 0;
	fclose(f);
}

void bench_list_add(char *list, size_t n, const char *item)
{
	size_t len = strlen(list);

	if (len < n)
		snprintf(list + len, n - len, "%s%s", len ? "," : "", item);
}

/* ------------------------------------------------------------ the host */

/* what to put back at the end */
static long huge_added;            /* hugepages we made the kernel reserve */
static char thp_before[32];        /* shmem_enabled before we changed it   */
static pid_t host_pid;             /* the process that changed them        */

static void host_restore_atexit(void)
{
	if (getpid() == host_pid)   /* not in a forked worker that exits */
		bench_host_restore(NULL);
}

/* The first change to the host arms the restore at exit. */
static void host_changing(void)
{
	if (host_pid)
		return;
	host_pid = getpid();
	atexit(host_restore_atexit);
}

static int hugetlb_available(long need, char *why, size_t n)
{
	vmc_caps_t caps;
	long before, after, got = 0;
	int err;

	vmc_caps_probe(&caps);
	if (caps.hugepages_free >= need)
		return 1;
	if (geteuid() != 0) {
		snprintf(why, n, "need %ld free hugepages, %ld free and not root: run "
			 "`vmcctl hugepages %ld` as root", need, caps.hugepages_free, need);
		return 0;
	}
	host_changing();
	/* keep the pages that were free for whoever else uses them */
	before = bench_read_long(BENCH_NR_HUGE);
	err = vmc_hugepages_setup(need + caps.hugepages_free, &got);
	after = bench_read_long(BENCH_NR_HUGE);
	/* never count more than this call can have added: another process
	 * may raise nr_hugepages at the same time */
	if (before >= 0 && after > before)
		huge_added += after - before < need ? after - before : need;
	if (err) {
		snprintf(why, n, "reserving %ld more hugepages failed (%s): %s", need,
			 vmc_strerror(err), vmc_errmsg());
		return 0;
	}
	return 1;
}

static int thp_available(char *why, size_t n)
{
	vmc_caps_t caps;

	vmc_caps_probe(&caps);
	if (caps.thp_shmem)
		return 1;
	if (geteuid() != 0) {
		snprintf(why, n, "shmem THP is \"%s\" and not root to set it to advise",
			 caps.thp_shmem_setting);
		return 0;
	}
	host_changing();
	snprintf(thp_before, sizeof thp_before, "%s", caps.thp_shmem_setting);
	if (bench_write_file(BENCH_THP_SHMEM, "advise") != 0) {
		thp_before[0] = 0;
		snprintf(why, n, "cannot write advise to " BENCH_THP_SHMEM);
		return 0;
	}
	vmc_caps_probe(&caps);
	if (!caps.thp_shmem) {
		snprintf(why, n, "shmem THP still \"%s\" after writing advise",
			 caps.thp_shmem_setting);
		return 0;
	}
	return 1;
}

int bench_kind_available(int kind, long hugepages, char *why, size_t n)
{
	if (kind == VMC_PAGE_HUGETLB)
		return hugetlb_available(hugepages, why, n);
	if (kind == VMC_PAGE_THP)
		return thp_available(why, n);
	return 1;
}

int bench_kind_ready(struct bench_report *r, int kind, long hugepages)
{
	char why[512] = "";

	if (bench_kind_available(kind, hugepages, why, sizeof why))
		return 1;
	bench_note(r, "%s skipped: %s", vmc_page_kind_name(kind), why);
	return 0;
}

int bench_kind_wanted(struct bench_report *r, const char *kn)
{
	const char *only = getenv("VMC_BENCH_KINDS");

	if (!only || !*only || strstr(only, kn))
		return 1;
	bench_note(r, "%s skipped: not in VMC_BENCH_KINDS=%s", kn, only);
	return 0;
}

int bench_kind_outcome(int res, int kind, char *measured, size_t n)
{
	if (res == 0)
		bench_list_add(measured, n, vmc_page_kind_name(kind));
	return res < 0;
}

void bench_host_restore(struct bench_report *r)
{
	const char *keep = getenv("VMC_BENCH_KEEP_HOST");

	if (keep && !strcmp(keep, "1"))
		return;
	if (huge_added > 0) {
		long now = bench_read_long(BENCH_NR_HUGE);
		char num[32];
		snprintf(num, sizeof num, "%ld", now - huge_added);
		if (now >= huge_added && bench_write_file(BENCH_NR_HUGE, num) == 0 && r)
			bench_note(r, "host: returned the %ld hugepages reserved for the run "
				   "(nr_hugepages %ld -> %ld)", huge_added, now, now - huge_added);
		huge_added = 0;
	}
	if (thp_before[0]) {
		char cur[32];
		bench_thp_setting(BENCH_THP_SHMEM, cur, sizeof cur);
		if (!strcmp(cur, "advise") && bench_write_file(BENCH_THP_SHMEM, thp_before) == 0 &&
		    r)
			bench_note(r, "host: shmem_enabled put back to \"%s\"", thp_before);
		thp_before[0] = 0;
	}
}

/* ------------------------------------------------------------ the library */

void bench_die(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s: %s\n", program_invocation_short_name, what,
		vmc_strerror(err), vmc_errmsg());
	exit(1);
}

int bench_config(vmc_config_t *cfg, int kind, uint64_t pool, uint64_t window)
{
	int err = vmc_config_init(cfg);

	if (err)
		return err;
	cfg->pool_size = pool;
	cfg->fund_size = pool;
	cfg->window_size = window;
	cfg->region_space = 0;
	cfg->page_kind = kind;
	cfg->verbose = 0;
	return 0;
}

uint64_t bench_attach_syscalls(vmc_t *c)
{
	vmc_stats_t st;
	int err = vmc_stats(c, &st);

	if (err)
		bench_die("vmc_stats", err);
	return st.attach.syscalls;
}

int bench_in_child(int (*fn)(void *arg, void *out), void *arg, void *out, size_t size,
		   int *status)
{
	int st = 0, p[2];
	size_t got = 0;
	memset(out, 0, size);
	if (pipe(p))
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		int rc = fn(arg, out);
		_exit(write(p[1], out, size) != (ssize_t)size || rc ? 1 : 0);
	}
	close(p[1]);
	while (pid > 0 && got < size) {
		ssize_t r = read(p[0], (char *)out + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	if (got != size)
		memset(out, 0, size);
	if (status)
		*status = st;
	return pid > 0 && got == size && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}
