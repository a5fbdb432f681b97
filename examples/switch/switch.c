/*
 * switch.c - vmc-switch, the VM-switching scenario: a dispatcher creates a
 * container with 16 VMs that commit 8-64 MiB each and write a pattern,
 * then forks 2 workers and routes 2000 requests to random VMs.  A worker
 * attaches the VM, verifies its pattern (one word per 2 MiB granule),
 * writes the next version, and detaches.  The run is done in strict and
 * then in lazy isolation and prints attach latency, affinity hits and
 * requests/s for both.  Public API only.
 *
 *   vmc-switch [--requests N] [--vms N] [--workers N] [--page-kind K]
 */
#include <vmc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

struct opts { int requests, vms, workers; const char *page_kind; };

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "vmc-switch: %s: %s\n", what, *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(err));
	return 1;
}

static uint64_t cookie(uint32_t vm, uint64_t version, uint64_t granule)
{
	return ((uint64_t)vm << 48) ^ (version << 16) ^ granule ^ 0x5a5a000000000000ull;
}

/* Granule 0 word 1 holds the VM's version; every granule's word 0 the cookie. */
static int visit(void *base, uint32_t vm, uint64_t bytes, int first)
{
	uint64_t *v = (uint64_t *)base + 1, version = first ? 0 : *v;
	for (uint64_t g = 0; g < bytes / (2 * MiB); g++) {
		uint64_t *w = (uint64_t *)((char *)base + g * 2 * MiB);
		if (!first && *w != cookie(vm, version, g))
			return -1;
		*w = cookie(vm, version + 1, g);
	}
	*v = version + 1;
	return 0;
}

/* A worker: read VM indices from `in` (-1 ends), serve each, answer on
 * `out` with (worker << 16 | vm). */
static int worker(vmc_t *c, int self, const uint32_t *ids, const uint64_t *sizes, int in, int out)
{
	int32_t req;
	while (read(in, &req, sizeof req) == sizeof req && req >= 0) {
		void *base;
		int err = vmc_attach(c, ids[req], &base), bad = 0;
		if (err)
			return fail("attach", err);
		bad = visit(base, (uint32_t)req, sizes[req], 0);
		if ((err = vmc_detach(c, ids[req])))
			return fail("detach", err);
		if (bad) {
			fprintf(stderr, "vmc-switch: VM %d: pattern mismatch\n", req);
			return 1;
		}
		int32_t ack = self << 16 | req;
		if (write(out, &ack, sizeof ack) != sizeof ack)
			return 1;
	}
	return 0;
}

/* A random VM that no worker has now (a VM is attached in one place only). */
static int32_t pick(const struct opts *o, const char *busy)
{
	int32_t vm;
	do
		vm = rand() % o->vms;
	while (busy[vm]);
	return vm;
}

struct result { double secs; vmc_attach_stats_t st; int ok; };

static int run(const struct opts *o, int isolation, struct result *res)
{
	char name[64];
	vmc_config_t cfg;
	vmc_t *c;
	uint32_t ids[64];
	uint64_t sizes[64];
	int to[16][2], back[2], err;
	pid_t pids[16];

	if ((err = vmc_config_init(&cfg)))
		return fail("profile", err);
	cfg.memory_isolation = isolation;
	cfg.pool_size = 1280 * MiB;
	cfg.fund_size = cfg.pool_size;
	cfg.window_size = 64 * MiB;
	cfg.region_space = 0;
	if (o->page_kind && (err = vmc_config_set(&cfg, "page_kind", o->page_kind)))
		return fail("--page-kind", err);
	snprintf(name, sizeof name, "switch-%d", (int)getpid());
	if ((err = vmc_create(name, &cfg, &c)))
		return fail("create", err);
	srand(42);
	for (int i = 0; i < o->vms; i++) {
		char vname[32];
		void *base;
		sizes[i] = (uint64_t)(4 + rand() % 29) * 2 * MiB;   /* 8..64 MiB */
		snprintf(vname, sizeof vname, "vm%02d", i);
		if ((err = vmc_vm_create(c, vname, 64 * MiB, &ids[i])) ||
		    (err = vmc_attach(c, ids[i], &base)) ||
		    (err = vmc_commit(c, base, sizes[i], 0)))
			goto out;
		visit(base, (uint32_t)i, sizes[i], 1);
		if ((err = vmc_detach(c, ids[i])))
			goto out;
	}
	if (pipe(back))
		goto out;
	for (int w = 0; w < o->workers; w++) {
		if (pipe(to[w]))
			goto out;
		fflush(NULL);
		if ((pids[w] = fork()) == 0) {
			close(to[w][1]);
			_exit(worker(c, w, ids, sizes, to[w][0], back[1]));
		}
		close(to[w][0]);
	}
	double t0 = now();
	char busy[64] = {0};
	int sent = 0, done = 0;
	for (int w = 0; w < o->workers && sent < o->requests; w++, sent++) {
		int32_t vm = pick(o, busy);
		busy[vm] = 1;
		if (write(to[w][1], &vm, sizeof vm) != sizeof vm)
			goto out;
	}
	while (done < sent) {
		int32_t ack, vm;
		if (read(back[0], &ack, sizeof ack) != sizeof ack)
			break;
		done++;
		busy[ack & 0xffff] = 0;
		if (sent == o->requests)
			continue;
		vm = pick(o, busy);
		busy[vm] = 1;
		if (write(to[ack >> 16][1], &vm, sizeof vm) != sizeof vm)
			break;
		sent++;
	}
	res->secs = now() - t0;
	for (int w = 0; w < o->workers; w++) {
		int32_t stop = -1, st;
		if (write(to[w][1], &stop, sizeof stop) != sizeof stop)
			continue;
		waitpid(pids[w], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			fprintf(stderr, "vmc-switch: worker %d failed\n", w);
	}
	vmc_stats_t s;
	vmc_stats(c, &s);
	res->st = s.attach;
	res->ok = done == o->requests;
	err = res->ok ? 0 : EIO;
out:
	vmc_close(c);
	vmc_destroy(name);
	return err ? fail("run", err) : 0;
}

int main(int argc, char **argv)
{
	struct opts o = { 2000, 16, 2, NULL };
	struct result r[2];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			o.requests = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--vms") && i + 1 < argc)
			o.vms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
			o.workers = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--page-kind") && i + 1 < argc)
			o.page_kind = argv[++i];
		else {
			printf("usage: vmc-switch [--requests N] [--vms 1..64] [--workers 1..16] "
			       "[--page-kind auto|hugetlb|thp|4k]\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (o.vms < 1 || o.vms > 64 || o.workers < 1 || o.workers > 16 || o.workers >= o.vms ||
	    o.requests < 1)
		return fail("arguments", EINVAL);
	printf("vmc-switch: %d VMs of 8-64 MiB, %d workers, %d requests per mode\n",
	       o.vms, o.workers, o.requests);
	for (int iso = 1; iso >= 0; iso--)
		if (run(&o, iso, &r[1 - iso]))
			return 1;
	printf("\n%-8s %10s %12s %12s %14s %10s %12s\n", "mode", "requests/s", "attach p50",
	       "attach p99", "affinity hits", "remaps", "syscalls/req");
	for (int i = 0; i < 2; i++) {
		vmc_attach_stats_t *s = &r[i].st;
		uint64_t reqs = (uint64_t)o.requests;
		/* the set-up's attaches (one per VM, by the dispatcher) are in the totals */
		printf("%-8s %10.0f %10llu ns %10llu ns %14llu %10llu %12.1f\n", i ? "lazy" : "strict",
		       o.requests / r[i].secs,
		       (unsigned long long)vmc_hist_percentile(s->attach_hist, 0.5),
		       (unsigned long long)vmc_hist_percentile(s->attach_hist, 0.99),
		       (unsigned long long)s->affinity_hits, (unsigned long long)s->remaps,
		       (double)s->syscalls / (double)(reqs + (uint64_t)o.vms));
	}
	printf("\nall %d requests per mode verified their VM's pattern\n", o.requests);
	return 0;
}
