/*
 * tour.c - a short tour of a vmc container, the foundation's `make run`:
 * create a container with page_kind auto (it says which kind it picked),
 * fund it, balloon it down and up again with timings, print the stats and
 * destroy it.  Public API only.
 */
#include <vmc.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024.0 * 1024.0)

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "vmc-tour: %s: %s\n", what, *vmc_errmsg() ? vmc_errmsg() : vmc_strerror(err));
	return 1;
}

static void show(vmc_t *c, const char *when)
{
	vmc_stats_t s;
	if (vmc_stats(c, &s))
		return;
	printf("%-22s %8.0f MiB funded | unfunded %5u free %5u cached %4u used %4u quarantined %u\n",
	       when, (double)s.funded_bytes / MiB, s.unfunded, s.free, s.cached, s.used,
	       s.quarantined);
}

static int balloon(vmc_t *c, uint64_t target, const char *what)
{
	uint64_t got;
	double t = now();
	int err = vmc_balloon(c, target, &got);
	t = now() - t;
	if (err)
		return die(what, err);
	printf("%-22s %8.1f ms\n", what, t * 1e3);
	show(c, "");
	return 0;
}

int main(void)
{
	char name[64];
	vmc_config_t cfg;
	vmc_stats_t s;
	vmc_check_report_t r;
	vmc_t *c;
	int err;

	if ((err = vmc_config_init(&cfg)))
		return die("profile", err);
	cfg.pool_size = 512ull << 20;
	cfg.fund_size = 256ull << 20;
	snprintf(name, sizeof name, "tour-%d", (int)getpid());

	printf("== vmc tour: container %s, pool %.0f MiB, fund %.0f MiB, page_kind %s\n",
	       name, (double)cfg.pool_size / MiB, (double)cfg.fund_size / MiB,
	       vmc_page_kind_name(cfg.page_kind));
	double t = now();
	if ((err = vmc_create(name, &cfg, &c)))
		return die("create", err);
	vmc_stats(c, &s);
	printf("%-22s %8.1f ms (page kind %s, arena at %#llx)\n", "created + funded", (now() - t) * 1e3,
	       vmc_page_kind_name(s.page_kind), (unsigned long long)s.arena_base);
	show(c, "");
	if (balloon(c, cfg.pool_size, "inflate to empty") ||
	    balloon(c, 0, "deflate to full") ||
	    balloon(c, cfg.pool_size - cfg.fund_size, "back to the fund size"))
		goto fail;
	if ((err = vmc_check(c, &r)))
		printf("check: INCONSISTENT: %s\n", r.first);
	else
		printf("check: consistent\n");
	vmc_stats(c, &s);
	printf("counters: fund %llu ops / %llu granules, unfund %llu ops / %llu granules, "
	       "workers %u/%u\n", (unsigned long long)s.fund_ops,
	       (unsigned long long)s.fund_granules, (unsigned long long)s.unfund_ops,
	       (unsigned long long)s.unfund_granules, s.workers, s.max_workers);
	vmc_close(c);
	if ((err = vmc_destroy(name)))
		return die("destroy", err);
	printf("destroyed %s\n", name);
	return 0;
fail:
	vmc_close(c);
	vmc_destroy(name);
	return 1;
}
