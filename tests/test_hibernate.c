/*
 * test_hibernate.c - hibernation, wake, export and import (image.c): an
 * image round trip byte for byte (4k, and hugetlb and THP where the host
 * has them), with aliases and protections; zero granules not stored;
 * truncation at every length (small VM) and at sampled lengths (larger
 * one); random byte flips, each caught; a foreign version; a foreign
 * geometry (VMC_EMISMATCH naming the key); attach of a hibernated VM with
 * and without vmc/wake_on_attach; export/import between two containers
 * with the same vmc/arena_base; a failure injected at every system call
 * of hibernate and wake; and a worker SIGKILLed at every system call of
 * hibernate and wake.  After each failure the VM is hibernated with a
 * valid image or resident with its bytes, and vmc_check passes.
 */
#include "image.h"
#include "os/os.h"
#include "test.h"
#include "util.h"
#include "ptstep.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define G test_granule()

static char hdir[128];

static void hconfig(vmc_config_t *cfg)
{
	test_config(cfg, 64 * MiB, 64 * MiB);
	snprintf(cfg->hibernate_dir, sizeof cfg->hibernate_dir, "%s", hdir);
}

static vmc_t *hmake(const char *tag)
{
	vmc_config_t cfg;
	hconfig(&cfg);
	return make_cfg(tag, &cfg);
}

/* Fill window granules [0, n) of vm with bytes from seed, except those
 * with bit k of zmask set, which stay zero.  0 or an error. */
/* Window granule k of container c's granule size. */
static void *gat(vmc_t *c, void *base, uint32_t k)
{
	return (char *)base + (size_t)k * vmc_granule_size(c);
}

static int fill(vmc_t *c, uint32_t vm, uint32_t n, uint32_t seed, uint64_t zmask)
{
	void *base;
	int err;

	if ((err = vmc_attach(c, vm, &base)))
		return err;
	if (!(err = vmc_commit(c, base, (size_t)n * vmc_granule_size(c), 0)))
		for (uint32_t k = 0; k < n; k++) {
			uint64_t *w = gat(c, base, k), x = seed * 0x9e3779b97f4a7c15ull + k + 1;
			if (k < 64 && (zmask >> k & 1))
				continue;
			for (size_t i = 0; i < vmc_granule_size(c) / 8; i += 1 + (i & 7)) {
				x ^= x << 13; x ^= x >> 7; x ^= x << 17;
				w[i] = x;
			}
		}
	int e2 = vmc_detach(c, vm);
	return err ? err : e2;
}

/* Hash of each of window granules [0, n) of vm into h[] (attach, read,
 * detach); a granule not committed or not readable hashes as 1. */
static int digest(vmc_t *c, uint32_t vm, uint32_t n, uint64_t *h)
{
	void *base;
	int err;

	if ((err = vmc_attach(c, vm, &base)))
		return err;
	for (uint32_t k = 0; k < n; k++) {
		vmc_probe_t p;
		h[k] = 1;
		if (vmc_probe(c, gat(c, base, k), &p) == 0 && p.committed && p.prot != PROT_NONE)
			h[k] = image_hash(gat(c, base, k), vmc_granule_size(c), NULL);
	}
	return vmc_detach(c, vm);
}

static int same_digest(vmc_t *c, uint32_t vm, uint32_t n, const uint64_t *want)
{
	uint64_t h[64];
	if (digest(c, vm, n, h))
		return fprintf(stderr, "  digest: %s\n", vmc_errmsg()), 0;
	for (uint32_t k = 0; k < n; k++)
		if (h[k] != want[k])
			return fprintf(stderr, "  granule %u differs after the round trip\n", k), 0;
	return 1;
}

static int state(vmc_t *c, uint32_t vm)
{
	vmc_vm_stats_t s;
	return vmc_vm_stats(c, vm, &s) ? -1 : s.state;
}

static char *path_of(vmc_t *c, uint32_t vm, char *buf)
{
	image_path(c, vm, buf, IMAGE_PATH_MAX, 0);
	return buf;
}

static int exists(const char *p)
{
	return access(p, F_OK) == 0;
}

/* The whole file into a malloc'ed buffer. */
static char *slurp(const char *p, size_t *n)
{
	struct stat st;
	int fd = open(p, O_RDONLY);
	char *b = NULL;
	if (fd >= 0 && fstat(fd, &st) == 0 && (b = malloc((size_t)st.st_size + 1)) &&
	    read(fd, b, (size_t)st.st_size) != st.st_size) {
		free(b);
		b = NULL;
	}
	if (b)
		*n = (size_t)st.st_size;
	if (fd >= 0)
		close(fd);
	return b;
}

static int spill(const char *p, const void *b, size_t n)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int ok = fd >= 0 && write(fd, b, n) == (ssize_t)n;
	if (fd >= 0)
		close(fd);
	return ok;
}

static uint64_t image_size(uint32_t span, uint32_t nprim, uint32_t nstored)
{
	return 160 + ((uint64_t)span * 4 + 7) / 8 * 8 + (uint64_t)nprim * 8 + (uint64_t)nstored * G;
}

/* ------------------------------------------------------------ round trip */

static void round_trip(vmc_t *c, const char *what)
{
	uint32_t span = (uint32_t)(c->h.window_size / vmc_granule_size(c)), vm;
	size_t gs = vmc_granule_size(c);
	uint64_t want[8], have[8];
	vmc_vm_stats_t s;
	vmc_stats_t st0, st1;
	char p[IMAGE_PATH_MAX];

	(void)have;
	vm = mkvm(c, "rt", 8 * gs);
	NEED(vm != VMC_NIL);
	NEED(vmc_vm_create(c, "rt-other", gs, &(uint32_t){0}) == 0);
	int err = fill(c, vm, 8, 7, 1u << 2 | 1u << 5);   /* 2 and 5 stay zero */
	if (err)
		fprintf(stderr, "  fill: %s\n", vmc_errmsg());
	NEED(err == 0);
	NEED(digest(c, vm, 8, want) == 0);
	NEED(vmc_stats(c, &st0) == 0);
	CHECK_EQ(vmc_vm_hibernate(c, vm), 0);
	CHECK(vmc_vm_stats(c, vm, &s) == 0);
	CHECK_EQ(s.state, VMC_VM_HIBERNATED);
	CHECK_EQ(s.committed, 0);
	CHECK_EQ(s.image_bytes, 160 + ((uint64_t)span * 4 + 7) / 8 * 8 + 8 * 8 + 6 * (uint64_t)gs);
	CHECK(exists(path_of(c, vm, p)));
	CHECK(vmc_stats(c, &st1) == 0);
	CHECK_EQ(st0.used - st1.used, 8);   /* its granules went back */
	CHECK(check_clean(c));
	CHECK_EQ(vmc_vm_hibernate(c, vm), EALREADY);
	CHECK_EQ(vmc_vm_wake(c, vm), 0);
	CHECK_EQ(state(c, vm), VMC_VM_IDLE);
	CHECK(!exists(p));
	CHECK(vmc_vm_stats(c, vm, &s) == 0 && s.image_bytes == 0 && s.committed == 8 * gs);
	CHECK(same_digest(c, vm, 8, want));
	CHECK_EQ(vmc_vm_wake(c, vm), EINVAL);
	CHECK(errmsg_has("not hibernated"));
	CHECK(check_clean(c));
	if (test_cur_failed_)
		fprintf(stderr, "  (round trip on %s)\n", what);
}

TEST(round_trip_4k)
{
	vmc_t *c = hmake("rt");
	NEED(c);
	round_trip(c, "4k");
	finish(c);
}

TEST(round_trip_huge)
{
	vmc_config_t cfg;
	vmc_caps_t caps;
	vmc_t *c;

	/* only what the host has now: changing nr_hugepages or the THP
	 * setting is test_hugetlb's, which runs alone */
	vmc_caps_probe(&caps);
	hconfig(&cfg);
	cfg.granule_size = 0;
	cfg.pool_size = cfg.fund_size = 32ull << 20;
	cfg.window_size = 32ull << 20;
	if (caps.hugepages_free >= 16 && caps.hugetlbfs_mounted) {
		cfg.page_kind = VMC_PAGE_HUGETLB;
		if ((c = make_cfg("rth", &cfg))) {
			round_trip(c, "hugetlb");
			finish(c);
		} else {
			fprintf(stderr, "  hugetlb round trip skipped: the hugepages were taken\n");
		}
	} else {
		fprintf(stderr, "  hugetlb round trip skipped: %ld free hugepages (16 needed) "
			"and %sa hugetlbfs mount: `vmcctl hugepages 16` as root\n",
			caps.hugepages_free, caps.hugetlbfs_mounted ? "" : "no ");
	}
	if (caps.thp_shmem) {
		cfg.page_kind = VMC_PAGE_THP;
		if ((c = make_cfg("rtt", &cfg))) {
			round_trip(c, "thp");
			finish(c);
		}
	} else {
		fprintf(stderr, "  THP round trip skipped: shmem THP is not available here\n");
	}
}

TEST(aliases_and_protections_survive)
{
	vmc_t *c = hmake("al");
	uint32_t vm;
	void *base;
	vmc_probe_t p;

	NEED(c);
	vm = mkvm(c, "al", 8 * G);
	NEED(vm != VMC_NIL);
	NEED(fill(c, vm, 4, 3, 0) == 0);
	NEED(vmc_attach(c, vm, &base) == 0);
	CHECK_EQ(vmc_alias(c, at(base, 0), at(base, 10), G), 0);
	CHECK_EQ(vmc_protect(c, at(base, 1), G, PROT_READ), 0);
	CHECK_EQ(vmc_protect(c, at(base, 2), G, PROT_NONE), 0);
	CHECK_EQ(vmc_detach(c, vm), 0);
	CHECK_EQ(vmc_vm_hibernate(c, vm), 0);
	CHECK_EQ(vmc_vm_wake(c, vm), 0);
	NEED(vmc_attach(c, vm, &base) == 0);
	CHECK(vmc_probe(c, at(base, 10), &p) == 0 && p.committed && p.alias);
	uint32_t g0 = p.granule;
	CHECK(vmc_probe(c, at(base, 0), &p) == 0 && p.committed && !p.alias && p.granule == g0);
	CHECK(vmc_probe(c, at(base, 1), &p) == 0 && p.prot == PROT_READ);
	CHECK(vmc_probe(c, at(base, 2), &p) == 0 && p.committed && p.prot == PROT_NONE);
	CHECK(vmc_probe(c, at(base, 3), &p) == 0 && p.prot == (PROT_READ | PROT_WRITE));
	CHECK(memcmp(at(base, 0), at(base, 10), G) == 0);
	*(volatile uint64_t *)at(base, 0) = 0x1234;   /* one granule, two views */
	CHECK_EQ(*(volatile uint64_t *)at(base, 10), 0x1234);
	CHECK(!readable(at(base, 2)));
	CHECK_EQ(vmc_detach(c, vm), 0);
	CHECK(check_clean(c));
	finish(c);
}

TEST(zero_granules_not_stored)
{
	vmc_t *c = hmake("zero");
	uint32_t vm;
	vmc_vm_stats_t s;

	NEED(c);
	NEED(vmc_vm_create(c, "z", 8 * G, &vm) == 0);
	NEED(fill(c, vm, 8, 1, ~0ull) == 0);   /* all zero */
	CHECK_EQ(vmc_vm_hibernate(c, vm), 0);
	CHECK(vmc_vm_stats(c, vm, &s) == 0);
	CHECK_EQ(s.image_bytes, image_size(8, 8, 0));
	CHECK_EQ(vmc_vm_wake(c, vm), 0);
	CHECK(vmc_vm_stats(c, vm, &s) == 0 && s.committed == 8 * G);
	CHECK_EQ(vmc_vm_hibernate(c, vm), 0);   /* and the destroy of one removes it */
	char p[IMAGE_PATH_MAX];
	CHECK(exists(path_of(c, vm, p)));
	CHECK_EQ(vmc_vm_destroy(c, vm), 0);
	CHECK(!exists(p));
	CHECK(check_clean(c));
	finish(c);
}

/* ------------------------------------------------------- damaged images */

/* A hibernated VM whose wake must fail with `want` (or VMC_EVERSION when
 * allowed), leaving it hibernated. */
static int wake_fails(vmc_t *c, uint32_t vm, int want, int version_ok)
{
	int err = vmc_vm_wake(c, vm);
	if (err != want && !(version_ok && err == VMC_EVERSION))
		return fprintf(stderr, "  wake: %d (%s), expected %d\n", err, vmc_errmsg(), want), 0;
	if (state(c, vm) != VMC_VM_HIBERNATED)
		return fprintf(stderr, "  the VM is no longer hibernated\n"), 0;
	return 1;
}

/* Truncate at lengths from the top down: every length with `every`, else
 * every one in the header and the first and last 8 KiB of the data (1 KiB
 * under ASan), and a stride in between. */
static void truncations(vmc_t *c, uint32_t vm, int every, long *tried)
{
	char p[IMAGE_PATH_MAX];
	size_t n, meta;
	char *good = slurp(path_of(c, vm, p), &n);

	NEED(good);
	meta = n - (n / G) * G;   /* the data is whole granules */
	for (size_t len = n; len-- > 0;) {
#ifdef UNDER_ASAN
		const size_t stride = 16381, edge = 1024;   /* ASan: fewer samples */
#else
		const size_t stride = 4093, edge = 8192;
#endif
		if (!every && len > meta + edge && len + edge < n && len % stride)
			continue;
		NEED(truncate(p, (off_t)len) == 0);
		if (!wake_fails(c, vm, VMC_ECORRUPT, 0)) {
			fprintf(stderr, "  truncated to %zu of %zu bytes\n", len, n);
			break;
		}
		++*tried;
	}
	CHECK(spill(p, good, n));
	free(good);
}

TEST(truncated_images)
{
	vmc_t *c = hmake("trunc");
	uint32_t small, large;
	uint64_t want[6];
	long tried = 0;

	NEED(c);
	NEED(vmc_vm_create(c, "small", G, &small) == 0);
	NEED(vmc_vm_create(c, "large", 6 * G, &large) == 0);
	NEED(fill(c, small, 1, 5, 0) == 0 && fill(c, large, 6, 6, 1u << 4) == 0);
	NEED(digest(c, small, 1, want) == 0);
	NEED(vmc_vm_hibernate(c, small) == 0 && vmc_vm_hibernate(c, large) == 0);
#ifdef UNDER_ASAN
	truncations(c, small, 0, &tried);   /* every length only without ASan: too slow */
#else
	truncations(c, small, G <= 65536, &tried);
#endif
	truncations(c, large, 0, &tried);
	fprintf(stderr, "  %ld truncated images refused\n", tried);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_vm_wake(c, small), 0);
	CHECK(same_digest(c, small, 1, want));
	NEED(digest(c, small, 1, want) == 0);
	CHECK_EQ(vmc_vm_wake(c, large), 0);
	CHECK(check_clean(c));
	finish(c);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return rng;
}

TEST(byte_flips_are_caught)
{
	vmc_t *c = hmake("flip");
	char p[IMAGE_PATH_MAX];
	uint32_t vm;
	uint64_t want[2];
	size_t n;
	int fd, flips = 0;

	NEED(c);
	NEED(vmc_vm_create(c, "flip", 2 * G, &vm) == 0);
	NEED(fill(c, vm, 2, 9, 0) == 0 && digest(c, vm, 2, want) == 0);
	NEED(vmc_vm_hibernate(c, vm) == 0);
	char *good = slurp(path_of(c, vm, p), &n);
	NEED(good && (fd = open(p, O_WRONLY)) >= 0);
	size_t meta = n - 2 * G;
	/* every byte of the header, map and sums, then random ones anywhere */
#ifdef UNDER_ASAN
	const size_t random_flips = 150;   /* each one reads its data: slow under ASan */
#else
	const size_t random_flips = 600;
#endif
	for (size_t k = 0; k < meta + random_flips && !test_cur_failed_; k++) {
		size_t off = k < meta ? k : next() % n;
		unsigned char b = (unsigned char)(good[off] ^ (1 + next() % 255));
		NEED(pwrite(fd, &b, 1, (off_t)off) == 1);
		if (!wake_fails(c, vm, VMC_ECORRUPT, off >= 8 && off < 12))
			fprintf(stderr, "  flip at offset %zu of %zu not caught\n", off, n);
		NEED(pwrite(fd, good + off, 1, (off_t)off) == 1);
		flips++;
	}
	close(fd);
	fprintf(stderr, "  %d flips caught\n", flips);
	CHECK_EQ(vmc_vm_wake(c, vm), 0);
	CHECK(same_digest(c, vm, 2, want));
	CHECK(check_clean(c));
	free(good);
	finish(c);
}

TEST(foreign_version)
{
	vmc_t *c = hmake("ver");
	char p[IMAGE_PATH_MAX];
	uint32_t vm, v = 2, one = 1;
	int fd;

	NEED(c);
	NEED(vmc_vm_create(c, "ver", G, &vm) == 0);
	NEED(fill(c, vm, 1, 2, 0) == 0 && vmc_vm_hibernate(c, vm) == 0);
	NEED((fd = open(path_of(c, vm, p), O_WRONLY)) >= 0);
	CHECK(pwrite(fd, &v, 4, 8) == 4);
	CHECK_EQ(vmc_vm_wake(c, vm), VMC_EVERSION);
	CHECK(errmsg_has("version 2"));
	CHECK_EQ(state(c, vm), VMC_VM_HIBERNATED);
	CHECK(pwrite(fd, &one, 4, 8) == 4);
	close(fd);
	CHECK_EQ(vmc_vm_wake(c, vm), 0);
	finish(c);
}

/* ------------------------------------------------- across containers */

TEST(export_import_same_arena_base)
{
	vmc_config_t cfg;
	vmc_t *a, *b;
	uint32_t vm, got, hib;
	uint64_t want[5], base, want2[2];
	char file[160], file2[160];
	int fd;

	snprintf(file, sizeof file, "%s/export.img", hdir);
	snprintf(file2, sizeof file2, "%s/export2.img", hdir);
	NEED((a = hmake("exa")));
	base = a->h.arena_base;
	NEED((vm = mkvm(a, "tenant", 5 * G)) != VMC_NIL);
	NEED(fill(a, vm, 5, 11, 1u << 1) == 0 && digest(a, vm, 5, want) == 0);
	NEED(vmc_vm_create(a, "sleeper", 2 * G, &hib) == 0);
	NEED(fill(a, hib, 2, 12, 0) == 0 && digest(a, hib, 2, want2) == 0);
	NEED(vmc_vm_hibernate(a, hib) == 0);
	NEED((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	CHECK_EQ(vmc_vm_export(a, vm, fd), 0);
	close(fd);
	CHECK_EQ(state(a, vm), VMC_VM_IDLE);   /* unchanged */
	NEED((fd = open(file2, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	CHECK_EQ(vmc_vm_export(a, hib, fd), 0);   /* a hibernated one: its image */
	close(fd);
	CHECK_EQ(state(a, hib), VMC_VM_HIBERNATED);
	CHECK(same_digest(a, vm, 5, want));
	finish(a);

	/* another container at another base: refused, naming the key */
	NEED((b = hmake("exb")));
	NEED((fd = open(file, O_RDONLY)) >= 0);
	CHECK_EQ(vmc_vm_import(b, NULL, fd, &got), VMC_EMISMATCH);
	char key[64];
	snprintf(key, sizeof key, "vmc/arena_base=%#llx", (unsigned long long)base);
	CHECK(errmsg_has(key));
	close(fd);
	CHECK(check_clean(b));
	finish(b);

	/* another granule size at the same base */
	hconfig(&cfg);
	cfg.arena_base = base;
	cfg.granule_size = G == (2u << 20) ? 65536 : 2u << 20;
	cfg.pool_size = cfg.fund_size = cfg.window_size = 32ull << 20;
	NEED((b = make_cfg("exc", &cfg)));
	CHECK_EQ(b->h.arena_base, base);
	NEED((fd = open(file, O_RDONLY)) >= 0);
	CHECK_EQ(vmc_vm_import(b, NULL, fd, &got), VMC_EMISMATCH);
	CHECK(errmsg_has("vmc/granule_size="));
	close(fd);
	finish(b);

	/* the same base and granule: imported, attached, the same bytes */
	hconfig(&cfg);
	cfg.arena_base = base;
	NEED((b = make_cfg("exd", &cfg)));
	NEED((fd = open(file, O_RDONLY)) >= 0);
	CHECK_EQ(vmc_vm_import(b, NULL, fd, &got), 0);
	close(fd);
	CHECK(same_digest(b, got, 5, want));
	vmc_vm_stats_t s;
	CHECK(vmc_vm_stats(b, got, &s) == 0 && !strcmp(s.name, "tenant") && s.limit == 5 * G);
	NEED((fd = open(file, O_RDONLY)) >= 0);
	CHECK_EQ(vmc_vm_import(b, NULL, fd, &got), EEXIST);   /* the name is taken */
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_EQ(vmc_vm_import(b, "tenant2", fd, &got), 0);
	close(fd);
	CHECK(same_digest(b, got, 5, want));
	NEED((fd = open(file2, O_RDONLY)) >= 0);
	CHECK_EQ(vmc_vm_import(b, NULL, fd, &got), 0);
	close(fd);
	CHECK(same_digest(b, got, 2, want2));
	/* a truncated stream: refused, nothing left behind */
	size_t n;
	char *img = slurp(file, &n);
	NEED(img);
	for (size_t len = 0; len < n; len += 1 + len / 3) {
		int pp[2];
		vmc_stats_t st;
		NEED(spill(file2, img, len) && (fd = open(file2, O_RDONLY)) >= 0);
		CHECK_EQ(vmc_vm_import(b, "cut", fd, &got), VMC_ECORRUPT);
		close(fd);
		CHECK(vmc_vm_find(b, "cut", &got) == ENOENT);
		(void)pp;
		(void)st;
	}
	free(img);
	CHECK(check_clean(b));
	finish(b);
}

TEST(attach_of_hibernated)
{
	vmc_config_t cfg;
	vmc_t *c;
	uint32_t vm;
	uint64_t want[3];
	void *base;

	NEED((c = hmake("att")));
	NEED(vmc_vm_create(c, "a", 3 * G, &vm) == 0);
	NEED(fill(c, vm, 3, 4, 0) == 0 && digest(c, vm, 3, want) == 0);
	NEED(vmc_vm_hibernate(c, vm) == 0);
	CHECK_EQ(vmc_attach(c, vm, &base), VMC_EHIBERNATED);
	CHECK(errmsg_has("wake_on_attach"));
	CHECK_EQ(vmc_vm_reclaim(c, vm, VMC_RECLAIM_KEEP), VMC_EHIBERNATED);
	CHECK_EQ(vmc_vm_wake(c, vm), 0);
	NEED(vmc_attach(c, vm, &base) == 0);
	CHECK_EQ(vmc_vm_hibernate(c, vm), EBUSY);   /* attached here */
	CHECK_EQ(vmc_detach(c, vm), 0);
	finish(c);

	hconfig(&cfg);
	cfg.wake_on_attach = 1;
	NEED((c = make_cfg("att2", &cfg)));
	NEED(vmc_vm_create(c, "a", 3 * G, &vm) == 0);
	NEED(fill(c, vm, 3, 4, 0) == 0);
	NEED(vmc_vm_hibernate(c, vm) == 0);
	CHECK(same_digest(c, vm, 3, want));   /* attach wakes it */
	CHECK_EQ(state(c, vm), VMC_VM_IDLE);
	CHECK(check_clean(c));
	finish(c);
}

TEST(profile_keys)
{
	vmc_config_t cfg;
	vmc_t *c;

	hconfig(&cfg);
	CHECK_EQ(vmc_config_set(&cfg, "vmc/arena_base", "0x200000001000"), 0);
	CHECK_EQ(vmc_create(tname("badbase"), &cfg, &c), EINVAL);   /* not 2 MiB aligned */
	CHECK(errmsg_has("arena_base"));
	CHECK_EQ(vmc_config_set(&cfg, "vmc/arena_base", "0x1000000000000"), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(&cfg, "vmc/arena_base", "0x200000000000"), 0);
	CHECK_EQ(cfg.arena_base, 0x200000000000ull);
	CHECK_EQ(vmc_config_set(&cfg, "vmc/hibernate_dir", "relative"), VMC_EPROFILE);
	CHECK_EQ(vmc_config_set(&cfg, "vmc/hibernate_dir", "/tmp/x"), 0);
	CHECK(!strcmp(cfg.hibernate_dir, "/tmp/x"));
	CHECK_EQ(vmc_config_set(&cfg, "vmc/wake_on_attach", "1"), 0);
	CHECK_EQ(cfg.wake_on_attach, 1);
	/* the base is taken (by a container at it): a clear error */
	hconfig(&cfg);
	NEED((c = hmake("base1")));
	cfg.arena_base = c->h.arena_base;
	vmc_t *d = NULL;
	CHECK_EQ(vmc_create(tname("base2"), &cfg, &d), VMC_EARENA);
	CHECK(errmsg_has("vmc/arena_base"));
	finish(c);
}

/* --------------------------------------------- failures and crashes */

/* A VM of 3 granules (one zero) and its digest, for the sweeps. */
#define WG 3
struct world {
	vmc_t *c;
	uint32_t vm;
	uint64_t want[WG];
	char *img;       /* the image bytes, when hibernated */
	size_t img_n;
};

static int world_new(struct world *w, const char *tag, int hibernated)
{
	char p[IMAGE_PATH_MAX];
	memset(w, 0, sizeof *w);
	if (!(w->c = hmake(tag)) || vmc_vm_create(w->c, "w", WG * G, &w->vm) ||
	    fill(w->c, w->vm, WG, 21, 1u << 1) || digest(w->c, w->vm, WG, w->want))
		return 0;
	if (hibernated && (vmc_vm_hibernate(w->c, w->vm) ||
			   !(w->img = slurp(path_of(w->c, w->vm, p), &w->img_n))))
		return 0;
	return 1;
}

/* After a failure or a crash: hibernated with its very image, or
 * resident (idle; orphaned is reclaimed first) with its bytes; and the
 * container consistent.  Leaves the VM in state `end` (0 any). */
static int world_ok(struct world *w, const char *what, int end)
{
	char p[IMAGE_PATH_MAX], tmp[IMAGE_PATH_MAX];
	int st = state(w->c, w->vm), ok = 1;
	size_t n;

	if (vmc_recover(w->c, NULL))
		return fprintf(stderr, "  %s: recover: %s\n", what, vmc_errmsg()), 0;
	st = state(w->c, w->vm);
	if (!check_clean(w->c))
		return fprintf(stderr, "  %s: check failed (state %d)\n", what, st), 0;
	if (st == VMC_VM_ORPHANED && vmc_vm_reclaim(w->c, w->vm, VMC_RECLAIM_KEEP))
		return fprintf(stderr, "  %s: reclaim: %s\n", what, vmc_errmsg()), 0;
	if (st == VMC_VM_HIBERNATED) {
		char *img = slurp(path_of(w->c, w->vm, p), &n);
		if (!img)
			return fprintf(stderr, "  %s: hibernated without an image\n", what), 0;
		if (w->img && (n != w->img_n || memcmp(img, w->img, n)))
			ok = (fprintf(stderr, "  %s: the image changed\n", what), 0);
		free(img);
		if (end == VMC_VM_IDLE && vmc_vm_wake(w->c, w->vm))
			return fprintf(stderr, "  %s: wake: %s\n", what, vmc_errmsg()), 0;
	} else if (st != VMC_VM_IDLE && st != VMC_VM_ORPHANED) {
		return fprintf(stderr, "  %s: state %d\n", what, st), 0;
	}
	image_path(w->c, w->vm, tmp, sizeof tmp, 1);
	if (state(w->c, w->vm) == VMC_VM_IDLE) {
		if (!same_digest(w->c, w->vm, WG, w->want))
			return fprintf(stderr, "  %s: resident, bytes lost\n", what), 0;
		if (end == VMC_VM_HIBERNATED && vmc_vm_hibernate(w->c, w->vm))
			return fprintf(stderr, "  %s: hibernate: %s\n", what, vmc_errmsg()), 0;
	}
	return ok && check_clean(w->c);
}

/* Before the wake sweeps: the VM hibernated, its image kept to compare. */
static int to_hibernated(struct world *w)
{
	char p[IMAGE_PATH_MAX];
	if (state(w->c, w->vm) != VMC_VM_HIBERNATED && vmc_vm_hibernate(w->c, w->vm))
		return fprintf(stderr, "  hibernate: %s\n", vmc_errmsg()), 0;
	if (!w->img && !(w->img = slurp(path_of(w->c, w->vm, p), &w->img_n)))
		return 0;
	return 1;
}

static void world_end(struct world *w)
{
	free(w->img);
	if (w->c)
		finish(w->c);
}

static const enum vmc_os_entry io_calls[] = {
	VMC_OS_OPEN, VMC_OS_WRITE, VMC_OS_FSYNC, VMC_OS_RENAME, VMC_OS_CLOSE, VMC_OS_MKDIR,
	VMC_OS_PREAD, VMC_OS_PWRITE, VMC_OS_READ, VMC_OS_FSTAT, VMC_OS_MMAP, VMC_OS_MUNMAP,
	VMC_OS_UNLINK,
};
#define NIO (sizeof io_calls / sizeof io_calls[0])

/* How many calls of each io_calls entry op makes (a dry run; the VM is
 * put back in its state after). */
static int count_calls(struct world *w, int op, uint64_t *n)
{
	uint64_t before[NIO];
	int err;
	for (size_t k = 0; k < NIO; k++)
		before[k] = vmc_os_calls(io_calls[k]);
	err = op ? vmc_vm_wake(w->c, w->vm) : vmc_vm_hibernate(w->c, w->vm);
	for (size_t k = 0; k < NIO; k++)
		n[k] = VMC_MIN(vmc_os_calls(io_calls[k]) - before[k], 16);
	if (!err)
		err = op ? vmc_vm_hibernate(w->c, w->vm) : vmc_vm_wake(w->c, w->vm);
	return err == 0;
}

static int errno_for(enum vmc_os_entry e)
{
	return e == VMC_OS_WRITE || e == VMC_OS_PWRITE ? ENOSPC :
	       e == VMC_OS_OPEN || e == VMC_OS_MKDIR ? EACCES : e == VMC_OS_MMAP ? ENOMEM : EIO;
}

TEST(failures_injected_in_hibernate_and_wake)
{
	struct world w;
	uint64_t calls[NIO];
	int runs = 0;

	NEED(world_new(&w, "inj", 0));
	for (int op = 0; op < 2; op++)
		for (size_t k = 0; k < NIO && (op == 0 || to_hibernated(&w)) &&
		     (k || count_calls(&w, op, calls)); k++)
			for (uint64_t nth = 1; nth <= calls[k]; nth++) {
				enum vmc_os_entry e = io_calls[k];
				uint64_t before = vmc_os_calls(e);
				char what[96];
				vmc_os_inject(e, nth, errno_for(e));
				int err = op ? vmc_vm_wake(w.c, w.vm) : vmc_vm_hibernate(w.c, w.vm);
				int fired = vmc_os_calls(e) - before >= nth;
				vmc_os_inject_clear();
				snprintf(what, sizeof what, "%s with %s #%llu failing (%d: %s)",
					 op ? "wake" : "hibernate", vmc_os_entry_name(e),
					 (unsigned long long)nth, err, vmc_errmsg());
				if (err && !vmc_errmsg()[0]) {
					fprintf(stderr, "  %s: no message\n", what);
					CHECK(0);
				}
				if (!world_ok(&w, what, op ? VMC_VM_HIBERNATED : VMC_VM_IDLE)) {
					CHECK(0);
					goto out;
				}
				runs += fired;
				if (!fired)
					break;
			}
out:
	fprintf(stderr, "  %d injected failures\n", runs);
	CHECK(runs > 12);
	world_end(&w);
}

struct kill_arg { struct world *w; int op; enum vmc_os_entry e; uint64_t nth; };

static int killed_child(void *p)
{
	struct kill_arg *a = p;
	vmc_stats_t st;
	if (vmc_stats(a->w->c, &st))   /* join (take a slot) before counting calls */
		return 3;
	vmc_os_inject(a->e, a->nth, VMC_OS_KILL_SELF);
	int err = a->op ? vmc_vm_wake(a->w->c, a->w->vm) : vmc_vm_hibernate(a->w->c, a->w->vm);
	vmc_os_inject_clear();
	return err ? 2 : 0;
}

TEST(killed_in_hibernate_and_wake)
{
	struct world w;
	uint64_t calls[NIO];
	int kills = 0, hib = 0, res = 0;

	NEED(world_new(&w, "kill", 0));
	for (int op = 0; op < 2; op++)
		for (size_t k = 0; k < NIO && (op == 0 || to_hibernated(&w)) &&
		     (k || count_calls(&w, op, calls)); k++)
			for (uint64_t nth = 1; nth <= calls[k]; nth++) {
				struct kill_arg a = { &w, op, io_calls[k], nth };
				char what[96];
				/* the child's vmc_enter joins first: count from its op */
				pid_t pid = test_fork(killed_child, &a);
				NEED(pid > 0);
				int rc = test_wait(pid);
				snprintf(what, sizeof what, "%s killed at %s #%llu (rc %d)",
					 op ? "wake" : "hibernate", vmc_os_entry_name(io_calls[k]),
					 (unsigned long long)nth, rc);
				int st0 = (vmc_recover(w.c, NULL), state(w.c, w.vm));
				hib += st0 == VMC_VM_HIBERNATED;
				res += st0 != VMC_VM_HIBERNATED;
				if (!world_ok(&w, what, op ? VMC_VM_HIBERNATED : VMC_VM_IDLE)) {
					CHECK(0);
					goto out;
				}
				if (rc != 128 + SIGKILL)
					break;   /* ran to its end: no more points of this call */
				kills++;
			}
out:
	fprintf(stderr, "  %d kills: %d left hibernated, %d resident\n", kills, hib, res);
	CHECK(kills > 12 && hib > 0 && res > 0);
	world_end(&w);
}

/* ------------------------ killed at (a sample of) every instruction */

/* Each round: a fresh container with the world's VM (hibernated for the
 * wake sweep); the child hibernates or wakes it under ptrace and is
 * killed at a sampled instruction; then the world must be whole. */
struct step_arg {
	struct world w;
	int op;
	char name[64];
};

static int step_prepare(void *p)
{
	struct step_arg *a = p;
	vmc_config_t cfg;

	memset(&a->w, 0, sizeof a->w);
	snprintf(a->name, sizeof a->name, "%s", test_name("step"));
	hconfig(&cfg);
	cfg.pool_size = cfg.fund_size = 8 * MiB;
	cfg.granule_size = 4096;   /* few instructions to step through per granule */
	if (vmc_create(a->name, &cfg, &a->w.c) || vmc_vm_create(a->w.c, "w", WG * 4096, &a->w.vm) ||
	    fill(a->w.c, a->w.vm, WG, 21, 1u << 1) || digest(a->w.c, a->w.vm, WG, a->w.want))
		return -1;
	/* wake: the image must come out of it untouched (hibernate: a wake
	 * of what it left checks its image, checksums and bytes) */
	if (a->op) {
		char path[IMAGE_PATH_MAX];
		if (vmc_vm_hibernate(a->w.c, a->w.vm) ||
		    !(a->w.img = slurp(path_of(a->w.c, a->w.vm, path), &a->w.img_n)))
			return -1;
	}
	return 0;
}

static int step_pre(void *p)
{
	struct step_arg *a = p;
	vmc_stats_t st;
	return vmc_stats(a->w.c, &st);   /* join first: the op alone is traced */
}

static int step_op(void *p)
{
	struct step_arg *a = p;
	return a->op ? vmc_vm_wake(a->w.c, a->w.vm) : vmc_vm_hibernate(a->w.c, a->w.vm);
}

static int step_after(void *p, char *why, size_t n)
{
	struct step_arg *a = p;
	if (!world_ok(&a->w, a->op ? "wake" : "hibernate", VMC_VM_IDLE))
		return snprintf(why, n, "not hibernated with its image nor resident with its "
				"bytes (above)");
	return 0;
}

static void step_cleanup(void *p)
{
	struct step_arg *a = p;
	free(a->w.img);
	a->w.img = NULL;
	if (a->w.c)
		vmc_close(a->w.c);
	vmc_destroy(a->name);
}

TEST(killed_at_sampled_instructions)
{
	struct step_arg a = { .op = 0 };
	struct kill_result r;

	/* single-stepping is slow (tens of us an instruction here): once, in
	 * the small-granule run, not under ASan; the kills at every system
	 * call above run everywhere */
#ifdef UNDER_ASAN
	fprintf(stderr, "  skipped under ASan (single-stepping is too slow there)\n");
	return;
#endif
	if (G > 65536) {
		fprintf(stderr, "  skipped at %zu KiB granules: runs in the 64K run\n", G >> 10);
		return;
	}

	for (a.op = 0; a.op < 2; a.op++) {
		struct kill_sweep sw = { a.op ? "wake" : "hibernate", step_prepare, step_pre,
					 step_op, step_after, step_cleanup, &a, 30 };
		if (kill_sweep(&sw, &r)) {
			fprintf(stderr, "  ptrace single-step not usable here: skipped\n");
			break;
		}
		fprintf(stderr, "  %s: %ld instructions, %ld kills, %ld missed\n", sw.what,
			r.total, r.kills, r.missed);
		CHECK_EQ(r.failures, 0);
		CHECK(r.kills > 0);
		CHECK(r.missed <= r.kills / 5 + 1);
	}
}

/* Hibernate one filled VM of c; its image's path into img, its
 * directory into dir. */
static void one_image(vmc_t *c, char *img, char *dir)
{
	uint32_t vm;
	CHECK(vmc_vm_create(c, "sleeper", 4 * G, &vm) == 0);
	CHECK(fill(c, vm, 2, 7, 0) == 0);
	CHECK(vmc_vm_hibernate(c, vm) == 0);
	path_of(c, vm, img);
	CHECK(exists(img));
	snprintf(dir, IMAGE_PATH_MAX, "%s", img);
	*strrchr(dir, '/') = 0;
}

/* No image outlives its container: vmc_destroy of a named container takes
 * its images' directory along, and so does the close of a private one by
 * the process that made it. */
TEST(images_go_with_their_container)
{
	char img[IMAGE_PATH_MAX], dir[IMAGE_PATH_MAX], name[VMC_NAME_MAX];
	vmc_t *c = hmake("gone");
	CHECK(c);
	snprintf(name, sizeof name, "%s", c->h.name);
	one_image(c, img, dir);
	CHECK(vmc_close(c) == 0);
	CHECK(exists(img));                       /* closing a named one keeps it */
	CHECK(vmc_destroy(name) == 0);
	CHECK(!exists(img) && !exists(dir));

	vmc_config_t cfg;
	hconfig(&cfg);
	CHECK(vmc_create(NULL, &cfg, &c) == 0);
	one_image(c, img, dir);
	CHECK(vmc_close(c) == 0);
	CHECK(!exists(img) && !exists(dir));
}

static int rm_one(const char *p, const struct stat *s, int flag, struct FTW *f)
{
	(void)s; (void)flag; (void)f;
	return remove(p);
}

int main(void)
{
	snprintf(hdir, sizeof hdir, "/dev/shm/vmc-test-hib-%d", (int)getpid());
	RUN(round_trip_4k);
	RUN(round_trip_huge);
	RUN(aliases_and_protections_survive);
	RUN(zero_granules_not_stored);
	RUN(truncated_images);
	RUN(byte_flips_are_caught);
	RUN(foreign_version);
	RUN(export_import_same_arena_base);
	RUN(attach_of_hibernated);
	RUN(profile_keys);
	RUN(failures_injected_in_hibernate_and_wake);
	RUN(killed_in_hibernate_and_wake);
	RUN(killed_at_sampled_instructions);
	RUN(images_go_with_their_container);
	destroy_all();
	nftw(hdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return test_done();
}
