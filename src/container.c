/*
 * container.c - create, open, close and destroy a container.
 *
 * A named container is two files: /dev/shm/vmc.NAME.meta (the metadata,
 * see meta.h) and the pool, /dev/shm/vmc.NAME.pool for 4K/THP or
 * HUGETLBFS/vmc.NAME.pool for hugetlb, both mode 0600.  A hugetlb pool on
 * a machine without a hugetlbfs mount, and every pool of a private
 * (NULL-named) container, is a memfd instead: sealed against shrinking,
 * and shared with forked workers only.
 *
 * Create builds everything, funds the pool (fund_size; under the on-demand
 * policy commits fund the rest, fund.c) and writes the header's magic
 * last, so an opener never trusts a half-made file.  Open validates the
 * header and every table entry before using it (validate.c), then reserves
 * the arena at the recorded base with MAP_FIXED_NOREPLACE: the arena is at
 * the same address in every process, or the open fails and says why.
 * (arena.c).  Handles and forks are handles.c's.
 */
#include "container.h"
#include "pool.h"
#include "region.h"
#include "window.h"
#include "worker.h"
#include "image.h"
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 4U
#endif

#define SHM_DIR        "/dev/shm"

static int check_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!n || n >= VMC_NAME_MAX)
		return vmc_fail(EINVAL, "container name must be 1..%d characters", VMC_NAME_MAX - 1);
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || strchr("._-", name[i])))
			return vmc_fail(EINVAL, "container name \"%s\": use only A-Z a-z 0-9 . _ -", name);
	return 0;
}

static void meta_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, SHM_DIR "/vmc.%s.meta", name);
}

/* ---------------------------------------------------------- page kinds */

#define DEFAULT_4K_GRANULE (64u << 10)
#define MAX_WINDOW_GRANULES (1u << 22)   /* a process keeps 9 bytes per window granule */
#define MAX_PM_ENTRIES (1u << 28)

static uint64_t round_up(uint64_t v, unsigned shift)
{
	return (v + ((1ull << shift) - 1)) >> shift << shift;
}

static int resolve_kind(const vmc_config_t *cfg, const char *name, int *kind)
{
	vmc_caps_t caps;
	char why[200] = "";
	/* on demand, the first batch comes soon after create */
	uint64_t first = cfg->fund_policy == VMC_FUND_ONDEMAND ?
			 VMC_MAX(cfg->fund_size, VMC_MAX(cfg->fund_batch, VMC_GRANULE_SIZE)) :
			 cfg->fund_size;
	uint64_t need = VMC_MAX(round_up(first, VMC_GRANULE_SHIFT) >> VMC_GRANULE_SHIFT, 1);

	vmc_caps_probe(&caps);
	if (cfg->page_kind == VMC_PAGE_THP && !caps.thp_shmem)
		return vmc_fail(EINVAL, "page_kind thp, but shmem THP is \"%s\": run `echo "
				"advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled` "
				"as root, or use page_kind 4k", caps.thp_shmem_setting);
	if (cfg->page_kind != VMC_PAGE_AUTO) {
		*kind = cfg->page_kind;
		return 0;
	}
	if (cfg->granule_size && cfg->granule_size < VMC_GRANULE_SIZE)
		snprintf(why, sizeof why, "granules of %lluK need 4 KiB pages",
			 (unsigned long long)(cfg->granule_size >> 10));
	else if ((uint64_t)caps.hugepages_free < need)
		snprintf(why, sizeof why, "hugetlb: %ld free hugepages, need %llu: run `vmcctl "
			 "hugepages %llu` as root", caps.hugepages_free, (unsigned long long)need,
			 (unsigned long long)need);
	else if (name && !caps.hugetlbfs_mounted)
		snprintf(why, sizeof why, "hugetlb: no hugetlbfs mount to share the pool by "
			 "name: `vmcctl hugepages N` mounts one");
	else
		*kind = VMC_PAGE_HUGETLB;
	if (why[0])
		*kind = caps.thp_shmem && !(cfg->granule_size && cfg->granule_size < VMC_GRANULE_SIZE) ?
			VMC_PAGE_THP : VMC_PAGE_4K;
	if (cfg->verbose)
		fprintf(stderr, "vmc: page_kind auto -> %s%s%s%s\n", vmc_page_kind_name(*kind),
			why[0] ? " (" : "", why, why[0] ? ")" : "");
	return 0;
}

/* ------------------------------------------------------------- files */

static int open_pool(const vmc_config_t *cfg, const char *name, int kind,
		     char *path, size_t pathlen, int *fd)
{
	char dir[256];
	int memfd = !name || (kind == VMC_PAGE_HUGETLB && !vmc_os_hugetlbfs_mount(dir, sizeof dir));

	path[0] = 0;
	if (memfd) {
		unsigned fl = MFD_CLOEXEC | MFD_ALLOW_SEALING |
			      (kind == VMC_PAGE_HUGETLB ? MFD_HUGETLB : 0);
		*fd = os_memfd_create("vmc-pool", fl);
		if (*fd < 0 && errno == EINVAL && (fl & MFD_HUGETLB))  /* pre-4.16 sealing */
			*fd = os_memfd_create("vmc-pool", fl & ~MFD_ALLOW_SEALING);
	} else {
		if (snprintf(path, pathlen, "%s/vmc.%s.pool", kind == VMC_PAGE_HUGETLB ?
			     dir : SHM_DIR, name) >= (int)pathlen) {
			path[0] = 0;
			return vmc_fail(ENAMETOOLONG, "hugetlbfs mount path %s is too long", dir);
		}
		*fd = os_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (*fd < 0)
		return vmc_fail(errno, "cannot create the pool %s: %s", path[0] ? path : "memfd",
				vmc_strerror(errno));
	if (os_ftruncate(*fd, (off_t)cfg->pool_size) != 0) {
		int err = errno;
		os_close(*fd);
		*fd = -1;
		if (path[0])
			os_unlink(path);
		return vmc_fail(err, "cannot size the pool to %llu bytes: %s",
				(unsigned long long)cfg->pool_size, vmc_strerror(err));
	}
	/* invariant 7: a sealed pool cannot shrink under a mapping (no SIGBUS) */
	if (memfd)
		os_fcntl(*fd, F_ADD_SEALS, F_SEAL_SHRINK);
	return 0;
}

/* ------------------------------------------------------------ handles */

static void locate_tables(struct vmc *c)
{
	c->gran = (struct vmc_granule *)((char *)c->m + c->h.off_granules);
	c->slots = (struct vmc_slot *)((char *)c->m + c->h.off_slots);
	c->vms = (struct vmc_vm *)((char *)c->m + c->h.off_vms);
	c->pagemaps = (uint32_t *)((char *)c->m + c->h.off_pagemaps);
	c->regions = (struct vmc_region *)((char *)c->m + c->h.off_regions);
	c->codemap = (uint64_t *)((char *)c->m + c->h.off_codemap);
}

static int check_config(const vmc_config_t *cfg)
{
	const struct { const char *key; uint64_t v; int zero_ok; } sizes[] = {
		{ "pool_size", cfg->pool_size, 0 }, { "fund_size", cfg->fund_size, 1 },
		{ "window_size", cfg->window_size, 0 }, { "code_cache_size", cfg->code_cache_size, 1 },
		{ "region_space", cfg->region_space, 1 }, { "reserve_size", cfg->reserve_size, 1 },
		{ "span_total", cfg->span_total, 1 }, { "fund_batch", cfg->fund_batch, 1 },
	};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		if ((!sizes[i].v && !sizes[i].zero_ok) || sizes[i].v > (1ull << 44))
			return vmc_fail(EINVAL, "vmc/%s = %llu: must be %s16T at most", sizes[i].key,
					(unsigned long long)sizes[i].v,
					sizes[i].zero_ok ? "" : "more than 0 and ");
	if (cfg->granule_size && (cfg->granule_size & (cfg->granule_size - 1) ||
				  cfg->granule_size < 4096 || cfg->granule_size > VMC_GRANULE_SIZE))
		return vmc_fail(EINVAL, "vmc/granule_size = %llu: must be a power of two from 4K "
				"to 2M (or 0 for the page kind's default)",
				(unsigned long long)cfg->granule_size);
	if (!cfg->max_vms || cfg->max_vms > 65536 || !cfg->max_workers ||
	    cfg->max_workers > 4096 || !cfg->worker_cache || cfg->worker_cache > 4096)
		return vmc_fail(EINVAL, "max_vms 1..65536, max_workers 1..4096, "
				"worker_cache 1..4096");
	if (cfg->arena_base & (VMC_GRANULE_SIZE - 1) || cfg->arena_base >= (1ull << 47))
		return vmc_fail(EINVAL, "vmc/arena_base = %#llx: must be 2 MiB aligned and below "
				"2^47 (or 0: chosen from the name)",
				(unsigned long long)cfg->arena_base);
	if (!memchr(cfg->hibernate_dir, 0, sizeof cfg->hibernate_dir) ||
	    cfg->hibernate_dir[0] != '/')
		return vmc_fail(EINVAL, "vmc/hibernate_dir: must be an absolute path of at most "
				"255 characters");
	if (cfg->page_kind < VMC_PAGE_AUTO || cfg->page_kind > VMC_PAGE_4K ||
	    (cfg->memory_isolation != 0 && cfg->memory_isolation != 1) ||
	    (cfg->code_cache_protect != 0 && cfg->code_cache_protect != 1))
		return vmc_fail(EINVAL, "bad page_kind or memory_isolation");
	if (cfg->fund_policy != VMC_FUND_UPFRONT && cfg->fund_policy != VMC_FUND_ONDEMAND)
		return vmc_fail(EINVAL, "vmc/fund_policy = %d: must be VMC_FUND_UPFRONT (0, "
				"upfront) or VMC_FUND_ONDEMAND (1, ondemand)", cfg->fund_policy);
	return 0;
}

/* The configuration as a container of page kind `kind` has it: its
 * granule, and every size rounded up to whole granules (vmc.h). */
static int shape(const vmc_config_t *in, int kind, vmc_config_t *cfg, unsigned *shift)
{
	uint64_t g = in->granule_size;

	*cfg = *in;
	if (!g)
		g = kind == VMC_PAGE_4K ? DEFAULT_4K_GRANULE : VMC_GRANULE_SIZE;
	if (kind != VMC_PAGE_4K && g != VMC_GRANULE_SIZE)
		return vmc_fail(EINVAL, "vmc/granule_size = %lluK: the %s page kind maps 2 MiB "
				"pages, so its granules are 2M (smaller ones need page_kind 4k)",
				(unsigned long long)(g >> 10), vmc_page_kind_name(kind));
	*shift = (unsigned)__builtin_ctzll(g);
	cfg->pool_size = round_up(in->pool_size, *shift);
	cfg->fund_size = round_up(in->fund_size, *shift);
	cfg->window_size = round_up(in->window_size, *shift);
	cfg->code_cache_size = round_up(in->code_cache_size, *shift);
	cfg->region_space = round_up(in->region_space, *shift);
	cfg->reserve_size = round_up(in->reserve_size, *shift);
	cfg->span_total = in->span_total ? round_up(in->span_total, *shift) :
		VMC_MIN((uint64_t)in->max_vms * cfg->window_size, (uint64_t)1 << (24 + *shift));
	cfg->fund_batch = round_up(in->fund_batch ? in->fund_batch :
				   VMC_MAX(cfg->pool_size / 64, VMC_MAX(VMC_GRANULE_SIZE, g << 2)),
				   *shift);
	if (!in->fund_batch)
		cfg->fund_batch = VMC_MIN(cfg->fund_batch, cfg->pool_size);
	if (cfg->fund_policy == VMC_FUND_ONDEMAND)   /* what must be funded at once */
		cfg->fund_size = VMC_MAX(cfg->fund_size,
					 cfg->code_cache_size + cfg->reserve_size);
	if (cfg->fund_batch > cfg->pool_size)
		return vmc_fail(EINVAL, "vmc/fund_batch (%llu MiB) must not exceed pool_size "
				"(%llu MiB)", (unsigned long long)(cfg->fund_batch >> 20),
				(unsigned long long)(cfg->pool_size >> 20));
	if (cfg->code_cache_size > cfg->fund_size)
		return vmc_fail(EINVAL, "code_cache_size (%llu MiB) comes out of the funded pool: "
				"fund_size (%llu MiB) must be at least as large",
				(unsigned long long)(cfg->code_cache_size >> 20),
				(unsigned long long)(cfg->fund_size >> 20));
	if (cfg->fund_size > cfg->pool_size || cfg->reserve_size > cfg->pool_size)
		return vmc_fail(EINVAL, "fund_size and reserve_size must not exceed pool_size "
				"(%llu MiB)", (unsigned long long)(cfg->pool_size >> 20));
	if (cfg->pool_size >> *shift >= PM_MAX_GRANULES)
		return vmc_fail(EINVAL, "a pool of %llu MiB has too many %zuK granules: raise "
				"vmc/granule_size", (unsigned long long)(cfg->pool_size >> 20),
				(size_t)1 << (*shift - 10));
	if (cfg->window_size >> *shift > MAX_WINDOW_GRANULES)
		return vmc_fail(EINVAL, "a window of %llu MiB has more than %u granules of %zuK: "
				"lower vmc/window_size or raise vmc/granule_size",
				(unsigned long long)(cfg->window_size >> 20), MAX_WINDOW_GRANULES,
				(size_t)1 << (*shift - 10));
	if (cfg->span_total >> *shift > MAX_PM_ENTRIES)
		return vmc_fail(EINVAL, "vmc/span_total of %llu MiB needs more than %u page-map "
				"entries: lower it or raise vmc/granule_size",
				(unsigned long long)(cfg->span_total >> 20), MAX_PM_ENTRIES);
	return 0;
}

/* Fill the immutable header of a new container into c->h, from a shaped
 * configuration. */
static void init_header(struct vmc *c, const vmc_config_t *cfg, const char *name, int kind,
			unsigned shift)
{
	struct vmc_meta *h = &c->h;
	struct meta_layout l;

	memset(h, 0, sizeof *h);
	h->version = VMC_VERSION;
	h->hdr_size = sizeof *h;
	h->gentry_size = sizeof(struct vmc_granule);
	h->slot_size = sizeof(struct vmc_slot);
	h->vm_size = sizeof(struct vmc_vm);
	h->granule_shift = shift;
	h->ngranules = (uint32_t)(cfg->pool_size >> shift);
	h->max_workers = cfg->max_workers;
	h->max_vms = cfg->max_vms;
	h->worker_cache = cfg->worker_cache;
	h->page_kind = (uint32_t)kind;
	h->memory_isolation = (uint32_t)cfg->memory_isolation;
	h->pool_size = cfg->pool_size;
	h->window_size = cfg->window_size;
	h->code_cache_size = cfg->code_cache_size;
	h->region_space = cfg->region_space;
	h->reserve_size = cfg->reserve_size;
	h->arena_size = arena_size(cfg->window_size + 2 * cfg->code_cache_size +
				   cfg->region_space);
	h->window_granules = (uint32_t)(cfg->window_size >> shift);
	h->pm_entries = (uint32_t)(cfg->span_total >> shift);
	h->populate_limit = cfg->populate_limit;
	h->fund_policy = (uint32_t)cfg->fund_policy;
	h->fund_batch = (uint32_t)(cfg->fund_batch >> shift);
	h->code_cache_protect = (uint32_t)cfg->code_cache_protect;
	h->arena_base = cfg->arena_base;   /* 0: arena_create picks it */
	h->wake_on_attach = cfg->wake_on_attach != 0;
	h->hibernate_sync = 1;
	snprintf(h->hibernate_dir, sizeof h->hibernate_dir, "%s", cfg->hibernate_dir);
	meta_layout(h, &l);
	h->off_slots = l.off_slots;
	h->off_granules = l.off_granules;
	h->off_vms = l.off_vms;
	h->off_pagemaps = l.off_pagemaps;
	h->off_regions = l.off_regions;
	h->off_codemap = l.off_codemap;
	h->meta_size = l.size;
	snprintf(h->name, sizeof h->name, "%s", name ? name : "");
}

static int create_meta(struct vmc *c, const char *name, char *path, size_t n)
{
	path[0] = 0;
	if (name) {
		meta_path(path, n, name);
		c->meta_fd = os_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	} else {
		c->meta_fd = os_memfd_create("vmc-meta", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	}
	if (c->meta_fd < 0) {
		int err = errno;
		path[0] = 0;   /* not ours to unlink */
		if (err == EEXIST)
			return vmc_fail(EEXIST, "container %s exists: open it, or `vmcctl destroy "
					"%s` first", name, name);
		return vmc_fail(err, "cannot create the metadata file: %s", vmc_strerror(err));
	}
	if (os_ftruncate(c->meta_fd, (off_t)c->h.meta_size) != 0)
		return vmc_fail(errno, "cannot size the metadata file: %s", vmc_strerror(errno));
	/* allocate it now: a tmpfs too small for it is an error here, never a
	 * SIGBUS while the tables are written */
	if (os_fallocate(c->meta_fd, 0, 0, (off_t)c->h.meta_size) != 0) {
		int err = errno;
		struct statfs st;
		uint64_t avail = os_fstatfs(c->meta_fd, &st) == 0 ?
				 (uint64_t)st.f_bavail * (uint64_t)st.f_bsize : 0;
		return vmc_fail(err == EFBIG ? ENOSPC : err, "the metadata needs %llu MiB of %s, "
				"which has %llu MiB free (%s): lower max_vms or window_size "
				"(the page maps take max_vms x window_size / 512 Ki), or free "
				"space there", (unsigned long long)(c->h.meta_size >> 20),
				name ? SHM_DIR : "memory", (unsigned long long)(avail >> 20),
				vmc_strerror(err));
	}
	if (!name)
		os_fcntl(c->meta_fd, F_ADD_SEALS, F_SEAL_SHRINK);
	c->meta_len = c->h.meta_size;
	c->m = os_mmap(NULL, c->meta_len, PROT_READ | PROT_WRITE, MAP_SHARED, c->meta_fd, 0);
	if (c->m == MAP_FAILED) {
		c->m = NULL;
		return vmc_fail(errno, "cannot map the metadata file: %s", vmc_strerror(errno));
	}
	return 0;
}

static int init_tables(struct vmc *c)
{
	int err;

	memcpy(c->m, &c->h, sizeof c->h);
	c->m->magic = 0;
	locate_tables(c);
	if ((err = vmc_lock_init(&c->m->pool_lock)) || (err = vmc_lock_init(&c->m->balloon_lock)) ||
	    (err = vmc_lock_init(&c->m->code_lock)))
		return vmc_fail(err, "cannot initialise the pool locks");
	for (uint32_t s = 0; s < c->h.max_workers; s++) {
		c->slots[s].cache_head = c->slots[s].defer_head = VMC_NIL;
		c->slots[s].attached = c->slots[s].window_vm = VMC_NIL;
		if ((err = vmc_lock_init(&c->slots[s].lock)))
			return vmc_fail(err, "cannot initialise a slot lock");
	}
	memset(c->pagemaps, 0xff, (uint64_t)c->h.pm_entries * sizeof(uint32_t));
	pool_init(c);
	return 0;
}

/* Build the container with page kind `kind`. */
static int create_as(const char *name, const vmc_config_t *asked, int kind, vmc_t **out)
{
	struct vmc *c;
	char mpath[300] = "", ppath[sizeof c->h.pool_path] = "";
	vmc_config_t shaped, *cfg = &shaped;
	unsigned shift = 0;
	int err;

	if ((err = shape(asked, kind, &shaped, &shift)))
		return err;
	if (!(c = handle_new()))
		return vmc_fail(ENOMEM, "out of memory");
	c->progress = cfg->progress;
	c->progress_arg = cfg->progress_arg;
	init_header(c, cfg, name, kind, shift);
	if ((err = create_meta(c, name, mpath, sizeof mpath)) ||
	    (err = open_pool(cfg, name, kind, ppath, sizeof ppath, &c->pool_fd)) ||
	    (err = arena_create(c, name)))
		goto fail;
	if ((err = window_init(c)) || (err = handle_register(c)))
		goto fail;
	snprintf(c->h.pool_path, sizeof c->h.pool_path, "%s", ppath);
	c->h.flags = ppath[0] ? 0 : META_POOL_MEMFD;
	if ((err = init_tables(c)) || (err = worker_join(c)) || (err = balloon_lock(c)))
		goto fail;
	err = pool_fund(c, (uint32_t)(cfg->fund_size >> shift), 0);
	balloon_unlock(c);
	if (err || (err = code_create(c)) || (err = code_join(c)))
		goto fail;
	c->h.magic = VMC_MAGIC;
	__atomic_store_n(&c->m->magic, VMC_MAGIC, __ATOMIC_RELEASE);
	*out = c;
	return 0;
fail:
	if (mpath[0])
		os_unlink(mpath);
	if (ppath[0])
		os_unlink(ppath);
	handle_free(c);
	return err;
}

int vmc_create(const char *name, const vmc_config_t *cfg, vmc_t **out)
{
	vmc_config_t defaults;
	int kind = VMC_PAGE_4K, err;

	vmc_clear_error();
	if (!out)
		return vmc_fail(EINVAL, "vmc_create: out is NULL");
	*out = NULL;
	if (!cfg) {
		if ((err = vmc_config_init(&defaults)))
			return err;
		cfg = &defaults;
	}
	if ((name && (err = check_name(name))) || (err = check_config(cfg)))
		return err;
	if ((err = resolve_kind(cfg, name, &kind)))
		return err;
	err = create_as(name, cfg, kind, out);
	/* auto: the hugepages it saw free were taken before it could fund them
	 * (another process got there first); the next best kind will do */
	if (cfg->page_kind == VMC_PAGE_AUTO && kind == VMC_PAGE_HUGETLB &&
	    (err == ENOMEM || err == ENOSPC)) {
		vmc_caps_t caps;
		vmc_caps_probe(&caps);
		kind = caps.thp_shmem ? VMC_PAGE_THP : VMC_PAGE_4K;
		if (cfg->verbose)
			fprintf(stderr, "vmc: page_kind auto -> %s (the free hugepages were taken: "
				"%s)\n", vmc_page_kind_name(kind), vmc_errmsg());
		err = create_as(name, cfg, kind, out);
	}
	return err;
}

/* Read and validate the header, map the file, validate the tables. */
static int map_meta(struct vmc *c, const char *path)
{
	struct stat st;
	char why[200];
	ssize_t r;
	int err;

	if (os_fstat(c->meta_fd, &st) != 0)
		return vmc_fail(errno, "%s: %s", path, vmc_strerror(errno));
	r = os_pread(c->meta_fd, &c->h, sizeof c->h, 0);
	if (r < 0)
		return vmc_fail(errno, "%s: %s", path, vmc_strerror(errno));
	if ((size_t)r < sizeof c->h)
		memset((char *)&c->h + r, 0, sizeof c->h - (size_t)r);
	if ((err = meta_validate(&c->h, (size_t)r, META_HEADER, why, sizeof why)))
		return vmc_fail(err, "%s: %s", path, why);
	if ((uint64_t)st.st_size != c->h.meta_size)
		return vmc_fail(VMC_ECORRUPT, "%s: file is %lld bytes, its header says %llu",
				path, (long long)st.st_size, (unsigned long long)c->h.meta_size);
	c->meta_len = c->h.meta_size;
	c->m = os_mmap(NULL, c->meta_len, PROT_READ | PROT_WRITE, MAP_SHARED, c->meta_fd, 0);
	if (c->m == MAP_FAILED) {
		c->m = NULL;
		return vmc_fail(errno, "%s: cannot map it: %s", path, vmc_strerror(errno));
	}
	/* the tables, validated from the mapping; the header from our copy */
	if ((err = meta_validate(c->m, c->meta_len, 0, why, sizeof why)) ||
	    memcmp(c->m, &c->h, offsetof(struct vmc_meta, pool_lock)))
		return vmc_fail(err ? err : VMC_ECORRUPT, "%s: %s", path,
				err ? why : "header changed while opening");
	locate_tables(c);
	return 0;
}

static int open_pool_file(struct vmc *c)
{
	struct stat st;

	char base[VMC_NAME_MAX + 16];
	const char *slash = strrchr(c->h.pool_path, '/');

	snprintf(base, sizeof base, "vmc.%s.pool", c->h.name);
	if (!(c->h.flags & META_POOL_MEMFD) && (!slash || strcmp(slash + 1, base)))
		return vmc_fail(VMC_ECORRUPT, "container %s: its pool path \"%s\" does not name "
				"its own pool", c->h.name, c->h.pool_path);
	if (c->h.flags & META_POOL_MEMFD)
		return vmc_fail(VMC_ENOTSHARED, "container %s keeps its pool in a memfd (no "
				"hugetlbfs mount when it was created): only processes forked from "
				"its creator can join; `vmcctl hugepages N` mounts hugetlbfs, then "
				"re-create it", c->h.name);
	c->pool_fd = os_open(c->h.pool_path, O_RDWR | O_CLOEXEC, 0);
	if (c->pool_fd < 0)
		return vmc_fail(errno == ENOENT ? VMC_ECORRUPT : errno, "pool %s of container "
				"%s: %s", c->h.pool_path, c->h.name, vmc_strerror(errno));
	if (os_fstat(c->pool_fd, &st) != 0 || (uint64_t)st.st_size != c->h.pool_size)
		return vmc_fail(VMC_ECORRUPT, "pool %s is not %llu bytes: it was truncated; "
				"destroy and re-create the container", c->h.pool_path,
				(unsigned long long)c->h.pool_size);
	return 0;
}

int vmc_open(const char *name, vmc_t **out)
{
	char path[300];
	struct vmc *c;
	int err;

	vmc_clear_error();
	if (!out)
		return vmc_fail(EINVAL, "vmc_open: out is NULL");
	*out = NULL;
	if ((err = check_name(name)))
		return err;
	if (!(c = handle_new()))
		return vmc_fail(ENOMEM, "out of memory");
	meta_path(path, sizeof path, name);
	c->meta_fd = os_open(path, O_RDWR | O_CLOEXEC, 0);
	if (c->meta_fd < 0) {
		err = errno == ENOENT ? vmc_fail(ENOENT, "no container %s (%s does not exist): "
						 "create it first", name, path)
				      : vmc_fail(errno, "%s: %s", path, vmc_strerror(errno));
		goto fail;
	}
	if ((err = map_meta(c, path)))
		goto fail;
	if (strcmp(c->h.name, name)) {
		err = vmc_fail(VMC_ECORRUPT, "%s holds container \"%s\", not %s", path,
			       c->h.name, name);
		goto fail;
	}
	if ((err = open_pool_file(c)))
		goto fail;
	if ((err = arena_join(c)))
		goto fail;
	if ((err = window_init(c)) || (err = handle_register(c)) || (err = worker_join(c)) ||
	    (err = code_join(c)))
		goto fail;
	*out = c;
	return 0;
fail:
	handle_free(c);
	return err;
}

int vmc_close(vmc_t *c)
{
	int err = 0;

	if (!c)
		return vmc_fail(EINVAL, "vmc_close: NULL handle");
	/* a forked child that never joined has no slot to give back */
	if (c->m && !handle_forked(c)) {
		if (c->win->attached != VMC_NIL)
			err = vmc_detach(c, c->win->attached);
		int e2 = worker_leave(c);
		err = err ? err : e2;
	}
	/* a private container ends with the process that made it (its forked
	 * workers cannot outlive it): so do its VMs' images */
	char dir[300];
	if (c->m && !c->h.name[0] && !handle_forked(c) &&
	    !image_dir(&c->h, "", dir, sizeof dir))
		vmc_os_remove_images(dir);
	handle_free(c);
	return err;
}

/* The pool path recorded in meta file `path`, if it names this container's
 * pool (a corrupt file must not make us unlink anything else), and the
 * directory of its images (img; "" if the header does not say). */
static int recorded_pool(const char *path, const char *name, char *out, size_t n, char *img,
			 size_t m)
{
	struct vmc_meta h;
	char base[VMC_NAME_MAX + 16];
	const char *slash;
	int fd = os_open(path, O_RDONLY | O_CLOEXEC, 0);
	ssize_t r;

	*img = 0;
	if (fd < 0)
		return 0;
	r = os_pread(fd, &h, sizeof h, 0);
	os_close(fd);
	if (r != (ssize_t)sizeof h || h.magic != VMC_MAGIC ||
	    !memchr(h.pool_path, 0, sizeof h.pool_path) || !(slash = strrchr(h.pool_path, '/')))
		return 0;
	snprintf(base, sizeof base, "vmc.%s.pool", name);
	if (strcmp(slash + 1, base))
		return 0;
	if (memchr(h.hibernate_dir, 0, sizeof h.hibernate_dir) && h.hibernate_dir[0] == '/' &&
	    image_dir(&h, name, img, m))
		*img = 0;
	snprintf(out, n, "%s", h.pool_path);
	return 1;
}

/* Unlink path; *found is set if it existed.  Returns 0 or the errno of a
 * file that exists but could not be removed. */
static int remove_file(const char *path, int *found)
{
	if (os_unlink(path) == 0) {
		*found = 1;
		return 0;
	}
	if (errno == ENOENT)
		return 0;
	return vmc_fail(errno, "cannot remove %s: %s", path, vmc_strerror(errno));
}

int vmc_destroy(const char *name)
{
	char meta[300], pool[300], dir[256], img[300];
	int err, found = 0;

	vmc_clear_error();
	if ((err = check_name(name)))
		return err;
	meta_path(meta, sizeof meta, name);
	if (recorded_pool(meta, name, pool, sizeof pool, img, sizeof img) &&
	    (err = remove_file(pool, &found)))
		return err;
	if (*img)      /* the images of its hibernated VMs go with it */
		vmc_os_remove_images(img);
	if ((err = remove_file(meta, &found)))
		return err;
	/* a half-made or corrupt container: its pool is where create puts it */
	snprintf(pool, sizeof pool, SHM_DIR "/vmc.%s.pool", name);
	if ((err = remove_file(pool, &found)))
		return err;
	if (vmc_os_hugetlbfs_mount(dir, sizeof dir)) {
		snprintf(pool, sizeof pool, "%s/vmc.%s.pool", dir, name);
		if ((err = remove_file(pool, &found)))
			return err;
	}
	return found ? 0 : vmc_fail(ENOENT, "no container %s", name);
}
