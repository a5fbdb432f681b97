/*
 * test_hugetlb.c - page kinds.  Each of hugetlb, thp and 4k: a named
 * container funds, balloons down and up, really holds memory (a VM writes
 * it, an unrelated process opened by name reads it back), and reports its
 * kind.  Hugepage exhaustion is an error code with advice, never a SIGBUS,
 * both when the up-front check catches it and when the kernel's fallocate
 * does.  page_kind auto picks hugetlb exactly when pages and a mount exist;
 * a private hugetlb container lives in a memfd.
 *
 * Needs free hugepages, or root to reserve them (nr_hugepages and the
 * shmem THP setting are put back as they were at the end).
 */
#include "pool.h"
#include "os/os.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define G test_granule()

static long orig_nr = -1;
static int huge_ran;           /* some hugetlb part really ran */
static char skip_why[300];
static char orig_thp[32];

/* ----------------------------------------------------------- host state */

/* Pages free for new reservations (what vmc counts as free). */
static long huge_free(void)
{
	return meminfo("HugePages_Free:") - meminfo("HugePages_Rsvd:");
}

static long read_nr(void)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
	long n = -1;
	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

static void thp_setting(char *out, size_t n)
{
	char buf[256] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
	out[0] = 0;
	if (!f)
		return;
	if (fgets(buf, sizeof buf, f)) {
		char *l = strchr(buf, '['), *r = l ? strchr(l, ']') : NULL;
		if (l && r && (size_t)(r - l) < n) {
			memcpy(out, l + 1, (size_t)(r - l - 1));
			out[r - l - 1] = 0;
		}
	}
	fclose(f);
}

static void restore_host(void)
{
	if (orig_nr >= 0 && read_nr() != orig_nr)
		test_set_hugepages(orig_nr);
	char now[32];
	thp_setting(now, sizeof now);
	if (orig_thp[0] && strcmp(now, orig_thp) && geteuid() == 0) {
		FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "w");
		if (f) {
			fputs(orig_thp, f);
			fclose(f);
		}
	}
}

static int mount_dir(char *dir, size_t n)
{
	return vmc_os_hugetlbfs_mount(dir, n);
}

static int pool_file_exists(const char *name, int kind)
{
	char p[400], dir[256];
	struct stat st;
	if (kind == VMC_PAGE_HUGETLB) {
		if (!mount_dir(dir, sizeof dir))
			return 0;
		snprintf(p, sizeof p, "%s/vmc.%s.pool", dir, name);
	} else {
		snprintf(p, sizeof p, "/dev/shm/vmc.%s.pool", name);
	}
	return stat(p, &st) == 0;
}

static int meta_exists(const char *name)
{
	char p[300];
	struct stat st;
	snprintf(p, sizeof p, "/dev/shm/vmc.%s.meta", name);
	return stat(p, &st) == 0;
}

/* Any SIGBUS during this test is a failure (invariant 7): count them. */
static volatile sig_atomic_t sigbus_seen;

static void on_sigbus(int sig)
{
	(void)sig;
	sigbus_seen++;
	_exit(97);   /* cannot continue safely: say so loudly */
}

/* ------------------------------------------------------ memory in a VM */

/* Create VM `vm`, commit 2 granules and fill them with byte b. */
static int fill_vm(vmc_t *c, const char *vm, unsigned char b)
{
	uint32_t id;
	void *base;
	int err;

	if ((err = vmc_vm_create(c, vm, 4 * G, &id)) || (err = vmc_attach(c, id, &base)))
		return err;
	if (!(err = vmc_commit(c, base, 2 * G, 0))) {
		memset(base, b, 2 * G);
		((unsigned char *)base)[2 * G - 1] = (unsigned char)(b + 1);
	}
	int e2 = vmc_detach(c, id);
	return err ? err : e2;
}

/* Read VM `vm` back: byte b everywhere, b+1 at the end. */
static int vm_reads(vmc_t *c, const char *vm, unsigned char b)
{
	uint32_t id;
	void *base;
	int err, ok = 1;

	if ((err = vmc_vm_find(c, vm, &id)) || (err = vmc_attach(c, id, &base)))
		return 0;
	const unsigned char *p = base;
	for (size_t i = 0; i < 2 * G - 1; i += 4096 - 1)
		ok &= p[i] == b;
	ok &= p[2 * G - 1] == (unsigned char)(b + 1);
	vmc_detach(c, id);
	return ok;
}

/* ------------------------------------------------------- child mode */

#define CFAIL(code, ...) do { fprintf(stderr, "child: " __VA_ARGS__); \
	fprintf(stderr, " [%s]\n", vmc_errmsg()); return code; } while (0)

/* open NAME KIND FUNDED: open by name, compare, read the VM "data" */
static int child_open(char **a)
{
	vmc_t *c = NULL;
	vmc_stats_t s;
	int err;

	signal(SIGBUS, on_sigbus);
	if ((err = vmc_open(a[0], &c)))
		CFAIL(10, "vmc_open(%s) = %d", a[0], err);
	if ((err = vmc_stats(c, &s)))
		CFAIL(11, "vmc_stats = %d", err);
	if (s.page_kind != atoi(a[1]) || s.funded_bytes != strtoull(a[2], NULL, 0))
		CFAIL(12, "page kind %d funded %llu, expected %s %s", s.page_kind,
		      (unsigned long long)s.funded_bytes, a[1], a[2]);
	if (!vm_reads(c, "data", 0x5a))
		CFAIL(13, "VM data does not read back what the creator wrote");
	if (!check_clean(c))
		CFAIL(14, "vmc_check");
	if ((err = vmc_close(c)))
		CFAIL(15, "vmc_close = %d", err);
	return 0;
}

/* ----------------------------------------------------------- tests */

static void one_kind(int kind)
{
	const char *name = tname(vmc_page_kind_name(kind));
	vmc_config_t cfg;
	vmc_stats_t s;
	uint64_t got;
	vmc_t *c = NULL;

	test_config(&cfg, 16 * MiB, 8 * MiB);
	cfg.page_kind = kind;
	int err = vmc_create(name, &cfg, &c);
	if (err)
		fprintf(stderr, "  %s: vmc_create: %d %s\n", vmc_page_kind_name(kind), err,
			vmc_errmsg());
	CHECK_EQ(err, 0);
	if (err)
		return;
	CHECK(meta_exists(name));
	CHECK(pool_file_exists(name, kind));
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(s.page_kind, kind);
	CHECK_EQ(s.funded_bytes, 8 * MiB);
	CHECK_EQ(pool_file_bytes(c), 8 * MiB);
	/* balloon up (all unfunded), down (all funded) */
	CHECK_EQ(vmc_balloon(c, 16 * MiB, &got), 0);
	CHECK_EQ(got, 16 * MiB);
	CHECK_EQ(pool_file_bytes(c), 0);
	CHECK_EQ(vmc_balloon(c, 0, &got), 0);
	CHECK_EQ(got, 0);
	CHECK_EQ(pool_file_bytes(c), 16 * MiB);
	CHECK(vmc_stats(c, &s) == 0 && s.funded_bytes == 16 * MiB && s.page_kind == kind);
	CHECK(check_clean(c));
	/* real memory: a VM writes it, an unrelated process reads it back */
	CHECK_EQ(fill_vm(c, "data", 0x5a), 0);
	CHECK(vm_reads(c, "data", 0x5a));
	char k[16], funded[32];
	snprintf(k, sizeof k, "%d", kind);
	snprintf(funded, sizeof funded, "%llu", (unsigned long long)s.funded_bytes);
	char *argv[] = { "test_hugetlb", "--child-open", (char *)name, k, funded, NULL };
	CHECK_EQ(run_self(argv), 0);
	CHECK(check_clean(c));
	CHECK_EQ(vmc_close(c), 0);
	CHECK_EQ(vmc_destroy(name), 0);
	CHECK(!meta_exists(name));
	CHECK(!pool_file_exists(name, kind));
}

TEST(page_kind_hugetlb)
{
	char why[300];
	if (!test_hugepages(12, why, sizeof why)) {
		fprintf(stderr, "  hugetlb part skipped: %s\n", why);
		snprintf(skip_why, sizeof skip_why, "%s", why);
		return;
	}
	huge_ran = 1;
	one_kind(VMC_PAGE_HUGETLB);
}

TEST(page_kind_thp)
{
	if (!test_thp()) {
		fprintf(stderr, "  thp part skipped: shmem THP is not available\n");
		return;
	}
	one_kind(VMC_PAGE_THP);
}

TEST(page_kind_4k)
{
	one_kind(VMC_PAGE_4K);
}

/* Make /proc/meminfo, as the library reads it, show many free hugepages:
 * the up-front check then passes and the kernel's fallocate must say no. */
static ssize_t (*real_read)(int, void *, size_t);

static ssize_t read_rich_meminfo(int fd, void *buf, size_t n)
{
	ssize_t r = real_read(fd, buf, n);
	if (r <= 0)
		return r;
	char *p = memmem(buf, (size_t)r, "HugePages_Free:", 15);
	if (p) {
		char *q = p + 15, *end = memchr(q, '\n', (size_t)((char *)buf + r - q));
		if (end && end - q >= 5) {
			memset(q, ' ', (size_t)(end - q));
			memcpy(end - 5, "99999", 5);
		}
	}
	return r;
}

TEST(hugepage_exhaustion)
{
	const char *name = tname("hx");
	vmc_config_t cfg;
	vmc_stats_t s;
	char dir[256], why[300];
	vmc_t *c = (vmc_t *)1;
	uint64_t got;

	if (geteuid() != 0) {
		fprintf(stderr, "  exhaustion part skipped: needs root to set nr_hugepages\n");
		return;
	}
	if (!test_hugepages(4, why, sizeof why) || !mount_dir(dir, sizeof dir)) {
		fprintf(stderr, "  exhaustion part skipped: %s\n", why);
		return;
	}
	/* exactly 4 free pages */
	long total = meminfo("HugePages_Total:"), in_use = total - huge_free();
	NEED(test_set_hugepages(in_use + 4) == 0);
	if (huge_free() != 4) {
		fprintf(stderr, "  exhaustion part skipped: the kernel gave %ld free pages, not 4\n",
			huge_free());
		return;
	}

	/* 8 granules cannot be funded: ENOMEM with advice, nothing left behind */
	test_config(&cfg, 32 * MiB, 16 * MiB);
	cfg.page_kind = VMC_PAGE_HUGETLB;
	CHECK_EQ(vmc_create(name, &cfg, &c), ENOMEM);
	CHECK(c == NULL);
	CHECK(errmsg_has("hugepages"));
	CHECK(errmsg_has("vmcctl hugepages"));
	CHECK(!meta_exists(name));
	CHECK(!pool_file_exists(name, VMC_PAGE_HUGETLB));
	CHECK_EQ(huge_free(), 4);

	/* the same, when the kernel's fallocate is what runs out */
	real_read = vmc_os.read;
	vmc_os.read = read_rich_meminfo;
	c = (vmc_t *)1;
	int err = vmc_create(name, &cfg, &c);
	vmc_os.read = real_read;
	CHECK(err == ENOSPC || err == ENOMEM);
	CHECK(c == NULL);
	CHECK(errmsg_has("hugepages"));
	CHECK(!meta_exists(name));
	CHECK(!pool_file_exists(name, VMC_PAGE_HUGETLB));
	CHECK_EQ(huge_free(), 4);            /* what fallocate took is back */

	/* 2 granules fit */
	cfg.fund_size = 4 * MiB;
	c = NULL;
	NEED(vmc_create(name, &cfg, &c) == 0);
	CHECK_EQ(huge_free(), 2);
	CHECK_EQ(pool_file_bytes(c), 4 * MiB);
	CHECK(vmc_stats(c, &s) == 0 && s.page_kind == VMC_PAGE_HUGETLB && s.funded_bytes == 4 * MiB);

	/* deflating beyond the pages there are: refused up front ... */
	got = 0;
	CHECK_EQ(vmc_balloon(c, 0, &got), ENOMEM);
	CHECK(errmsg_has("vmcctl hugepages"));
	CHECK_EQ(got, 28 * MiB);
	CHECK(check_clean(c));
	CHECK_EQ(huge_free(), 2);
	/* ... or by the kernel */
	vmc_os.read = read_rich_meminfo;
	err = vmc_balloon(c, 0, &got);
	vmc_os.read = real_read;
	CHECK(err == ENOSPC || err == ENOMEM);
	CHECK(errmsg_has("hugepages"));
	CHECK(vmc_stats(c, &s) == 0);
	CHECK_EQ(got, (uint64_t)s.unfunded * G);
	CHECK(s.funded_bytes >= 4 * MiB && s.funded_bytes <= 8 * MiB);
	CHECK(check_clean(c));
	CHECK_EQ(pool_file_bytes(c), s.funded_bytes);   /* what fallocate took is back */
	CHECK_EQ(huge_free(), 2 - (long)((s.funded_bytes - 4 * MiB) / G));
	/* what there is can still be funded and used */
	CHECK_EQ(vmc_balloon(c, 24 * MiB, &got), 0);
	CHECK_EQ(got, 24 * MiB);
	CHECK_EQ(huge_free(), 0);
	CHECK_EQ(fill_vm(c, "data", 0x33), 0);
	CHECK(vm_reads(c, "data", 0x33));
	CHECK(vmc_stats(c, &s) == 0 && s.used == 2);
	CHECK(check_clean(c));
	vmc_close(c);
	CHECK_EQ(vmc_destroy(name), 0);
	CHECK_EQ(huge_free(), 4);
	CHECK_EQ(sigbus_seen, 0);
	restore_host();
}

TEST(auto_choice)
{
	vmc_config_t cfg;
	vmc_stats_t s;
	vmc_caps_t caps;
	char why[300];
	vmc_t *c = NULL;
	const char *name = tname("au");

	test_config(&cfg, 16 * MiB, 4 * MiB);
	cfg.page_kind = VMC_PAGE_AUTO;
	/* with pages and a mount: hugetlb */
	if (test_hugepages(4, why, sizeof why)) {
		NEED(vmc_create(name, &cfg, &c) == 0);
		CHECK(vmc_stats(c, &s) == 0);
		CHECK_EQ(s.page_kind, VMC_PAGE_HUGETLB);
		CHECK(pool_file_exists(name, VMC_PAGE_HUGETLB));
		vmc_close(c);
		CHECK_EQ(vmc_destroy(name), 0);
	} else {
		fprintf(stderr, "  auto with pages skipped: %s\n", why);
	}
	/* without free pages: not hugetlb */
	if (geteuid() == 0) {
		long in_use = meminfo("HugePages_Total:") - huge_free();
		CHECK(test_set_hugepages(in_use) == 0);
	}
	vmc_caps_probe(&caps);
	if (caps.hugepages_free < 2) {
		c = NULL;
		NEED(vmc_create(name, &cfg, &c) == 0);
		CHECK(vmc_stats(c, &s) == 0);
		CHECK(s.page_kind == (caps.thp_shmem ? VMC_PAGE_THP : VMC_PAGE_4K));
		CHECK(s.funded_bytes == 4 * MiB);
		CHECK(pool_file_exists(name, s.page_kind));
		CHECK(check_clean(c));
		vmc_close(c);
		CHECK_EQ(vmc_destroy(name), 0);
	}
	restore_host();
}

static int private_child(void *p)
{
	vmc_t *c = p;
	signal(SIGBUS, on_sigbus);
	if (!vm_reads(c, "data", 0x77))
		return 2;
	if (fill_vm(c, "child", 0x11))
		return 3;
	return vmc_check(c, NULL) ? 4 : 0;
}

TEST(private_hugetlb_memfd)
{
	vmc_config_t cfg;
	vmc_stats_t s;
	char why[300], link[64], target[256];
	vmc_t *c = NULL;

	if (!test_hugepages(8, why, sizeof why)) {
		fprintf(stderr, "  skipped: %s\n", why);
		return;
	}
	test_config(&cfg, 16 * MiB, 8 * MiB);
	cfg.page_kind = VMC_PAGE_HUGETLB;
	NEED(vmc_create(NULL, &cfg, &c) == 0);
	CHECK(c->h.flags & META_POOL_MEMFD);
	snprintf(link, sizeof link, "/proc/self/fd/%d", c->pool_fd);
	ssize_t n = readlink(link, target, sizeof target - 1);
	target[n > 0 ? n : 0] = 0;
	CHECK(!strncmp(target, "/memfd:", 7));
	CHECK(vmc_stats(c, &s) == 0 && s.page_kind == VMC_PAGE_HUGETLB);
	CHECK_EQ(pool_file_bytes(c), 8 * MiB);
	CHECK_EQ(vmc_balloon(c, 0, NULL), 0);
	CHECK_EQ(pool_file_bytes(c), 16 * MiB);
	CHECK_EQ(fill_vm(c, "data", 0x77), 0);
	CHECK_EQ(test_wait(test_fork(private_child, c)), 0);
	CHECK(vm_reads(c, "child", 0x11));   /* what the forked child wrote */
	CHECK(check_clean(c));
	CHECK_EQ(vmc_close(c), 0);
}

int main(int argc, char **argv)
{
	vmc_caps_t caps;
	char why[300];

	/* hugetlb and THP pools have 2 MiB granules, whatever the suite's */
	setenv("VMC_TEST_GRANULE", "2M", 1);

	if (argc == 5 && !strcmp(argv[1], "--child-open"))
		return child_open(argv + 2);
	signal(SIGBUS, on_sigbus);
	vmc_caps_probe(&caps);
	if (geteuid() != 0 && (caps.hugepages_free < 12 || !caps.hugetlbfs_mounted)) {
		snprintf(why, sizeof why, "not root and only %ld free hugepages (mounted: %d): "
			 "run `vmcctl hugepages 16` as root", caps.hugepages_free,
			 caps.hugetlbfs_mounted);
		test_skip(why);
	}
	orig_nr = read_nr();
	thp_setting(orig_thp, sizeof orig_thp);
	atexit(restore_host);
	RUN(page_kind_hugetlb);
	RUN(page_kind_thp);
	RUN(page_kind_4k);
	RUN(hugepage_exhaustion);
	RUN(auto_choice);
	RUN(private_hugetlb_memfd);
	destroy_all();
	restore_host();
	if (!huge_ran && !test_failed_)
		test_skip(skip_why[0] ? skip_why : "no hugepages could be had");
	return test_done();
}
