/*
 * vmc.h - VM containers: isolated, shareable heaps for managed runtimes.
 *
 * A *container* is one shared-memory domain: a metadata file, a pool file
 * of *granules* ("physical memory": 2 MiB, or 4 KiB .. 2 MiB on plain 4 KiB
 * pages, see vmc/granule_size) and an address *arena* reserved at
 * the same base address in every process that joins it.  Processes join by
 * creating the container, opening it by name, or being forked from a
 * process that has joined; each joined process holds one *worker slot*.
 *
 * Return codes.  Every function that returns int returns 0 on success, a
 * positive errno value (EINVAL, ENOMEM, EEXIST, ...) for errors the system
 * already has a name for, or a negative VMC_E* code for errors specific to
 * vmc.  vmc_strerror() names both; vmc_errmsg() gives a sentence about the
 * last failure in the calling thread that says what was wrong and what to do.
 *
 * Threads.  A vmc_t handle may be used by several threads of a process.
 * A process has one address window, so one VM attached at a time: the
 * thread that attaches a VM owns the window until the VM is detached (by
 * it, or by another thread it handed the VM to); an attach in the
 * meantime gets EALREADY.  The mapping engine and the in-VM heap act on
 * the attached VM: run them from one thread at a time (the one running the
 * VM).  Every other call - creating, finding, destroying, cloning,
 * reclaiming VMs, statistics, vmc_check, vmc_recover, the balloon, regions
 * and the code cache - may run in any thread at any time, and never waits
 * for the window.
 *
 * Processes.  Any number of processes may use one container at the same
 * time; the functions serialise on robust process-shared locks in the
 * container where they touch shared state.  No wait is unbounded: a lock
 * held for more than 10 s by a live thread ends the wait with ETIMEDOUT
 * and a message that names the lock; a lock whose holder no longer exists
 * is taken back and repaired.  A forked child keeps using its parent's
 * handle: the library notices the fork on the next call and gives the
 * child a worker slot of its own (its window starts empty).
 */
#ifndef VMC_H
#define VMC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VMC_API __attribute__((visibility("default")))
#else
#define VMC_API
#endif

/* ---------------------------------------------------------------- errors */

enum {
	VMC_ECORRUPT   = -1,  /* metadata or a VM image failed validation (bad magic, layout, table, checksum) */
	VMC_EVERSION   = -2,  /* metadata or a VM image of an incompatible format version */
	VMC_EORPHANED  = -3,  /* the VM's worker died while attached; reclaim it first  */
	VMC_EPANIC     = -4,  /* a lock could not be recovered; the container is unusable */
	VMC_EARENA     = -5,  /* the arena's address range is taken in this process     */
	VMC_EPROFILE   = -6,  /* unknown profile key or bad value                       */
	VMC_ENOTSHARED = -7,  /* container cannot be opened by name (memfd-backed pool) */
	VMC_EFUNDS     = -8,  /* not enough funded granules (balloon deflate or fund)   */
	VMC_ENOTATTACHED = -9, /* the operation needs a VM attached in this worker      */
	VMC_ELIMIT     = -10, /* the VM's byte limit would be exceeded                  */
	VMC_EUNCOMMITTED = -11, /* the range holds granules that are not committed      */
	VMC_EHIBERNATED = -12, /* the VM is hibernated: vmc_vm_wake it (or set vmc/wake_on_attach) */
	VMC_EMISMATCH   = -13, /* an image from a container of another geometry: window base
				* or granule size differ (vmc_errmsg says which key to set) */
};
/* A VM image (vmc_vm_hibernate, _wake, _export, _import) that is truncated
 * or corrupt gets VMC_ECORRUPT, one of a foreign format version
 * VMC_EVERSION; vmc_errmsg says what exactly. */

/* Name of any return code of this library (errno or VMC_E*). Never NULL. */
VMC_API const char *vmc_strerror(int err);

/* The detailed message of the last failing call in this thread, e.g.
 * "need 512 hugepages, 0 free: run `vmcctl hugepages 512` as root".
 * Empty string if the thread has seen no failure. Thread-local; valid until
 * the next vmc call in the same thread. */
VMC_API const char *vmc_errmsg(void);

/* ----------------------------------------------------------- configuration */

/* The largest granule, and the only one of hugetlb and THP pools.  A
 * container's own is vmc_granule_size(). */
#define VMC_GRANULE_SHIFT 21
#define VMC_GRANULE_SIZE  ((size_t)1 << VMC_GRANULE_SHIFT)   /* 2 MiB */

/* vmc/fund_policy values (vmc_config_t.fund_policy). */
enum { VMC_FUND_UPFRONT = 0, VMC_FUND_ONDEMAND = 1 };

enum vmc_page_kind {
	VMC_PAGE_AUTO    = 0,  /* hugetlb if pages can be had, else THP, else 4K; says which */
	VMC_PAGE_HUGETLB = 1,  /* hugetlbfs 2 MiB pages (hugetlbfs mount, or memfd MFD_HUGETLB) */
	VMC_PAGE_THP     = 2,  /* shmem with transparent huge pages (needs shmem_enabled != never) */
	VMC_PAGE_4K      = 3,  /* plain 4 KiB shmem in /dev/shm */
};

/* Container parameters.  Sizes are in bytes.  One rule for every size that
 * describes memory, here and in every call that takes one (VM limits and
 * spans, region sizes, balloon targets): it is rounded up to a whole number
 * of granules, and what the container reports is the rounded value.  Each
 * field has a profile key (shown) and an environment override (VMC_ + key
 * upper-cased, e.g. VMC_MEMORY_ISOLATION for vmc/memory_isolation). */
typedef struct vmc_config {
	uint64_t pool_size;       /* vmc/pool_size: pool bytes. Default 1G                         */
	uint64_t fund_size;       /* vmc/fund_size: bytes funded at create. Default 256M up
				   * front; 0 on demand (see fund_policy)                    */
	int      fund_policy;     /* vmc/fund_policy: upfront | ondemand (VMC_FUND_*).  Default
				   * upfront: the pool holds fund_size funded from create on,
				   * and only vmc_balloon changes that (Azul-style: what is
				   * funded is there when a commit or the reserve fund needs
				   * it).  ondemand: create funds fund_size (at least the code
				   * cache and the reserve fund), and a commit (or clone) that
				   * finds no free funded granule funds more, fund_batch at a
				   * time, up to pool_size less the balloon target (the
				   * unfunded bytes last asked of vmc_balloon: what the
				   * operator ballooned out stays out).  A fund the host
				   * cannot back (MemAvailable, free hugepages, tmpfs space)
				   * fails that commit with VMC_EFUNDS, never a SIGBUS later.
				   * Under ondemand, fund_size defaults to 0: a fund_size still
				   * at the up-front default (256M) when the policy becomes
				   * ondemand (profile, environment or vmc_config_set) is
				   * set to 0; set it after the policy to fund some at create */
	uint64_t fund_batch;      /* vmc/fund_batch: bytes an on-demand fund adds at once (one
				   * system call per run of holes).  0 (default): 1/64 of the
				   * pool, at least 2M and 4 granules, at most the pool     */
	uint64_t window_size;     /* vmc/window_size: address window of a worker: the largest
				   * span a VM may have. Default 1G                            */
	uint64_t granule_size;    /* vmc/granule_size: the unit of mapping, funding and
				   * accounting: a power of two, 4K .. 2M; hugetlb and THP
				   * need 2M.  0 (default): 2M, or 64K on the 4k page kind.
				   * Smaller granules waste less memory per VM and cost
				   * more table entries and, where a VM's granules are not
				   * contiguous, more mmap calls per attach             */
	uint64_t populate_limit;  /* vmc/populate_limit: on 4 KiB pages, an attach that maps
				   * a VM of at most this many committed bytes populates
				   * its pages (MADV_POPULATE_WRITE, one call per run), so
				   * the request that follows takes no page fault; a larger
				   * VM's pages fault in as they are touched.  0: never.
				   * Default 16M.  (hugetlb and THP map a 2 MiB page per
				   * granule at once: always populated) */
	uint64_t span_total;      /* vmc/span_total: the spans of all VMs together (page
				   * maps take 4 bytes per granule of span).  0 (default):
				   * max_vms * window_size, at most 2^24 granules         */
	uint64_t code_cache_size; /* vmc/code_cache_size: JIT code cache. Default 0 (none)        */
	uint64_t region_space;    /* vmc/region_space: arena space for cache regions. Default 64G */
	uint64_t reserve_size;    /* vmc/reserve_size: pause-prevention reserve fund. Default 0   */
	uint32_t max_vms;         /* vmc/max_vms: VM table entries. Default 256                  */
	uint32_t max_workers;     /* vmc/max_workers: worker slots. Default 64                   */
	uint32_t worker_cache;    /* vmc/worker_cache: granules a worker caches locally. Default 32 */
	int      page_kind;       /* vmc/page_kind: auto | hugetlb | thp | 4k. Default auto        */
	int      memory_isolation;/* vmc/memory_isolation: 1 strict, 0 lazy. Default 1            */
	int      verbose;         /* vmc/verbose: 1 prints one-line notices (the auto choice) on
				   * stderr. Default 0                                       */
	int      code_cache_protect; /* vmc/code_cache_protect: 1 mprotects the code cache on
				   * every attach/detach (the naive way, for comparison). Default 0 */
	uint64_t arena_base;      /* vmc/arena_base: the arena's (and so the window's) address.
				   * 0 (default): chosen from a hash of the name.  Else
				   * exactly this address (2 MiB aligned, the arena below
				   * 2^47; VMC_EARENA if the range is taken): to import
				   * images made by a container elsewhere, whose window was
				   * there (hex with 0x, as VMC_EMISMATCH messages print it) */
	int      wake_on_attach;  /* vmc/wake_on_attach: 1: vmc_attach wakes a hibernated VM
				   * first; 0 (default): it returns VMC_EHIBERNATED       */
	char     hibernate_dir[256]; /* vmc/hibernate_dir: vmc_vm_hibernate writes images to
				   * DIR/NAME/ (NAME: the container's; created mode 0700 if
				   * missing).  Default /var/tmp/vmc.  Recorded at create:
				   * every process of the container uses the same */
	/* Called while funding runs longer than a moment (vmcctl draws a progress
	 * bar with it); NULL for none.  Not a profile key. */
	void   (*progress)(void *arg, uint64_t done_bytes, uint64_t total_bytes);
	void    *progress_arg;
} vmc_config_t;

/* Fill *cfg with the built-in defaults, then the profile file named by
 * $VMC_PROFILE (if set), then environment overrides ($VMC_POOL_SIZE, ...).
 * Returns 0, or VMC_EPROFILE (vmc_errmsg() names the key, the file and the
 * line), or an errno if the profile file cannot be read. On error *cfg holds
 * the defaults plus everything applied before the bad line. */
VMC_API int vmc_config_init(vmc_config_t *cfg);

/* Set one parameter by profile key ("vmc/pool_size") or its short form
 * ("pool_size"). Values: sizes take K/M/G/T suffixes (powers of 1024);
 * page_kind takes auto|hugetlb|thp|4k. Returns 0 or VMC_EPROFILE. */
VMC_API int vmc_config_set(vmc_config_t *cfg, const char *key, const char *value);

/* Apply a profile file of `key = value` lines ('#' starts a comment).
 * Returns 0, VMC_EPROFILE (naming key and line) or an errno. */
VMC_API int vmc_config_load(vmc_config_t *cfg, const char *path);

/* Parse a size the way profile values are read, for programs that take
 * sizes from their users: decimal digits, then optionally a unit K, M, G
 * or T (powers of 1024), which may be followed by "B" or "iB"; or "B"
 * alone.  Letters may be in any case: "4096", "64k", "512M", "8GiB",
 * "1tb", "4096B".  No sign, fraction, hex or white space (trim first).
 * Returns 0 and sets *out; EINVAL if s is not a size (NULL, empty,
 * negative, garbage, a unit it does not know); ERANGE if the value does
 * not fit in 64 bits.  On error *out is left alone and vmc_errmsg() says
 * what was wrong. */
VMC_API int vmc_parse_size(const char *s, uint64_t *out);

/* ------------------------------------------------------------- containers */

typedef struct vmc vmc_t;

/* Create container `name` ([A-Za-z0-9._-], 1..64 chars) with *cfg (NULL: the
 * result of vmc_config_init).  The metadata lives in /dev/shm/vmc.NAME.meta
 * and the pool in /dev/shm/vmc.NAME.pool (4K, THP) or on a hugetlbfs mount
 * (hugetlb), both mode 0600.  A NULL name makes a private container that
 * only forked children can share.  Funds cfg->fund_size bytes up front
 * (under fund_policy ondemand, at least the code cache and reserve fund;
 * commits fund the rest when they need it).
 * Errors: EINVAL (bad name or sizes), EEXIST, ENOMEM/ENOSPC (cannot fund:
 * see vmc_errmsg()), VMC_EARENA, VMC_EPROFILE. */
VMC_API int vmc_create(const char *name, const vmc_config_t *cfg, vmc_t **out);

/* Join an existing container from an unrelated process.  Errors: ENOENT,
 * VMC_ECORRUPT, VMC_EVERSION, VMC_EARENA (the arena's address range is
 * taken here), VMC_ENOTSHARED, EAGAIN (all worker slots in use). */
VMC_API int vmc_open(const char *name, vmc_t **out);

/* Leave the container: this worker's cached granules go back to the shared
 * free list, its slot is freed, the arena is unmapped.  The handle is freed
 * even on error.  A forked child that never called vmc may close too.  A
 * private container ends with the process that created it: its close
 * removes the images of its hibernated VMs. */
VMC_API int vmc_close(vmc_t *c);

/* The container's granule size in bytes: the unit of the mapping engine
 * (addresses and lengths of vmc_commit and friends are multiples of it),
 * of funding and of accounting (vmc/granule_size).  VMC_GRANULE_SIZE (2 MiB)
 * for hugetlb and THP pools.  0 for a NULL or closed handle.  Any thread. */
VMC_API size_t vmc_granule_size(vmc_t *c);

/* Remove container `name`'s files, and the images of its hibernated VMs
 * (vmc/hibernate_dir/NAME).  Processes that have it open keep working
 * until they close it (but cannot wake what was hibernated).  Errors:
 * ENOENT, EINVAL. */
VMC_API int vmc_destroy(const char *name);

/* ------------------------------------------------------------ pool, funds */

/* Balloon the pool so that `target_unfunded` bytes (in whole granules) are
 * unfunded: inflate gives free granules back to the host (punching holes),
 * deflate funds holes again.  Used granules are never touched; granules in
 * workers' caches are taken back when inflating needs them.  *achieved (may
 * be NULL) receives the unfunded bytes reached.  The target is recorded:
 * under fund_policy ondemand, commits fund on demand only down to it (the
 * granules ballooned out stay out until a balloon call lowers it).
 * Errors: EINVAL, VMC_EFUNDS
 * (inflate: not enough unused granules; *achieved tells how far it got),
 * ENOMEM/ENOSPC (deflate: the host has not got the memory; vmc_errmsg()). */
VMC_API int vmc_balloon(vmc_t *c, uint64_t target_unfunded, uint64_t *achieved);

/* -------------------------------------------------------------------- VMs */

/* VM states (vmc_vm_stats_t.state).  HIBERNATED: the VM holds no memory;
 * what it held is in its image file (vmc_vm_hibernate, vmc_vm_wake). */
enum { VMC_VM_IDLE = 1, VMC_VM_ATTACHED = 2, VMC_VM_ORPHANED = 3, VMC_VM_HIBERNATED = 4 };
/* vmc_vm_reclaim modes. */
enum { VMC_RECLAIM_KEEP = 1, VMC_RECLAIM_RESET = 2 };

/* Create an empty VM named `name` (1..63 printable characters, unique in the
 * container) that may commit up to `limit` bytes (1 .. window_size, rounded
 * up to whole granules) at window offsets [0, limit): its span is its
 * limit.  *id receives its id.  Errors: EINVAL, EEXIST (name taken), ENOSPC
 * (VM table full: raise vmc/max_vms; or no page-map space left: raise
 * vmc/span_total).  Process- and thread-safe. */
VMC_API int vmc_vm_create(vmc_t *c, const char *name, size_t limit, uint32_t *id);

/* As vmc_vm_create, for a VM that may commit up to `limit` bytes anywhere in
 * window offsets [0, span) (limit <= span <= window_size): a relocating
 * collector's from- and to-space, or address space reserved for growth.
 * Its page map costs 4 bytes per granule of span. */
VMC_API int vmc_vm_create_span(vmc_t *c, const char *name, size_t limit, size_t span,
			       uint32_t *id);

/* Look a VM up by name. Errors: ENOENT, EINVAL. */
VMC_API int vmc_vm_find(vmc_t *c, const char *name, uint32_t *id);

/* Destroy a VM that is idle, orphaned or hibernated: its granules return
 * to the pool (through quarantine while another worker may still map
 * them), a hibernated VM's image file is removed.  Errors: EBUSY
 * (attached: detach first), ENOENT, EINVAL. */
VMC_API int vmc_vm_destroy(vmc_t *c, uint32_t id);

/* Make an orphaned VM (its worker died while attached) usable again:
 * VMC_RECLAIM_KEEP keeps its memory as the dead worker left it,
 * VMC_RECLAIM_RESET releases all of it.  Errors: EINVAL (not orphaned, or
 * a bad mode), ENOENT. */
VMC_API int vmc_vm_reclaim(vmc_t *c, uint32_t id, int how);

typedef struct vmc_vm_stats {
	char     name[64];
	int      state;             /* VMC_VM_IDLE / _ATTACHED / _ORPHANED / _HIBERNATED */
	int32_t  pid;               /* the attached (or dead, if orphaned) worker, else 0 */
	uint64_t limit;             /* bytes */
	uint64_t span;              /* bytes: window offsets [0, span) are its own */
	uint64_t committed;         /* bytes in the page map */
	uint64_t hwm;               /* high-water mark of committed */
	uint64_t reserve_used;      /* bytes committed from the reserve fund */
	uint64_t attaches;
	uint64_t image_bytes;       /* bytes of its image file while hibernated, else 0 */
} vmc_vm_stats_t;

/* A snapshot of VM id. Errors: ENOENT, EINVAL. */
VMC_API int vmc_vm_stats(vmc_t *c, uint32_t id, vmc_vm_stats_t *out);

/* ------------------------------------------------------------ hibernation
 *
 * A VM's image holds its memory and what describes it: the window base,
 * granule size and page kind of the container it came from, its name,
 * limit and span, its page map (protections and aliases), a checksum of
 * every stored granule and one of the header.  Granules that read as zero
 * are not stored.  docs/ARCHITECTURE.md describes the format and the state
 * machine.  Images move between containers whose window base
 * (vmc/arena_base) and granule size (vmc/granule_size) are the same: a
 * VM's pointers are absolute addresses in the window.
 *
 * All four are process- and thread-safe: each holds the VM as if attached
 * while it works (another attach gets EBUSY meanwhile).  A process killed
 * at any point of a hibernate or a wake leaves the VM either hibernated
 * with a valid image or resident with its memory intact (orphaned, when
 * the dead process held it: vmc_vm_reclaim); no granule is lost. */

/* Write idle VM id's memory to an image file in DIR/NAME/ (vmc/hibernate_dir,
 * the container's name; the directories are made, mode 0700, if missing),
 * fsync'd and renamed into place, then release all its granules: the VM
 * stays in the table, state VMC_VM_HIBERNATED, committing nothing.
 * Errors: EBUSY (attached), VMC_EORPHANED, EALREADY (hibernated already),
 * ENOENT, EINVAL, or the errno of writing the image (ENOSPC, EIO, EACCES:
 * the VM then stays idle and intact, no half image is left behind). */
VMC_API int vmc_vm_hibernate(vmc_t *c, uint32_t id);

/* Bring hibernated VM id back: its granules are committed again and filled
 * from its image, byte for byte, with the same protections and aliases;
 * the state becomes VMC_VM_IDLE and the image file is removed.  Errors:
 * EINVAL (not hibernated), VMC_ECORRUPT (image truncated or corrupt),
 * VMC_EVERSION, VMC_EFUNDS / VMC_ELIMIT (no memory for it now), EBUSY, or
 * an errno of reading the image.  On every error the VM stays hibernated
 * and its image intact. */
VMC_API int vmc_vm_wake(vmc_t *c, uint32_t id);

/* Write the image of VM id, idle or hibernated, to fd (a file, a pipe or a
 * socket; written sequentially from its current position; not fsync'd and
 * not closed).  The VM is unchanged.  Errors: EBUSY (attached),
 * VMC_EORPHANED, ENOENT, EINVAL, VMC_ECORRUPT (a hibernated VM's image file
 * is damaged), or the errno of writing. */
VMC_API int vmc_vm_export(vmc_t *c, uint32_t id, int fd);

/* Make a new idle VM from an image read from fd (sequentially, to its
 * end): named `name`, or the name recorded in the image if name is NULL;
 * *id receives its id.  Errors: EEXIST (the name is taken), VMC_EMISMATCH
 * (the image comes from a container with another window base or granule
 * size: vmc_errmsg names the vmc/arena_base or vmc/granule_size to create
 * this container with), VMC_ECORRUPT (truncated, trailing bytes, a
 * checksum that does not match), VMC_EVERSION, ENOSPC (VM table or
 * page-map space full), VMC_EFUNDS, EINVAL, or the errno of reading.  On
 * error no VM is left behind, but if this process is killed while
 * importing: then the new VM is orphaned; destroy it. */
VMC_API int vmc_vm_import(vmc_t *c, const char *name, int fd, uint32_t *id);

/* ---------------------------------------------------- attach and detach */

/* Attach VM id to this worker: its memory appears at the window base
 * (*base, the same address in every worker), read-write.  Attach is
 * exclusive.  Re-attaching the VM this worker had last, unchanged, makes
 * no system call in lazy mode (memory_isolation = 0) and one mprotect per
 * run in strict mode.  Errors: EBUSY (attached by another, live worker),
 * EALREADY (this process has a VM attached, maybe by another thread:
 * detach it first), VMC_EORPHANED (its worker died while attached - found
 * out here, if no one had yet: vmc_vm_reclaim it), ENOENT, EINVAL,
 * ETIMEDOUT (a container lock, see above), VMC_EHIBERNATED (the VM is
 * hibernated and vmc/wake_on_attach is 0; with 1, attach wakes it first,
 * and returns vmc_vm_wake's errors), or an errno from mapping (the
 * window is then empty and the VM idle). */
VMC_API int vmc_attach(vmc_t *c, uint32_t id, void **base);

/* Detach VM id from this worker.  Strict mode revokes all access (one
 * mprotect); lazy mode makes no system call and leaves the mapping for a
 * cheap re-attach.  Errors: VMC_ENOTATTACHED (id is not attached here). */
VMC_API int vmc_detach(vmc_t *c, uint32_t id);

/* ------------------------------------------------------- the mapping engine
 *
 * Operations on the VM attached in this worker, at granule granularity:
 * addresses and lengths are non-zero multiples of the granule
 * (vmc_granule_size) inside the attached VM's span.
 * Each call is all or nothing: on an error nothing changed (but see
 * "system errors" below).  Errors common to all: VMC_ENOTATTACHED, EINVAL
 * (unaligned, outside the window, unknown flags), VMC_EUNCOMMITTED (a range
 * that must be committed is not).  System errors: a new granule that must
 * be zeroed and cannot be shown zeroed by the window is zeroed before the
 * page map changes, and a failure there changes nothing.  If mapping the
 * result fails (ENOMEM from mmap, say), the page map keeps the operation's
 * result, except for the new commits the window was to zero (they are
 * undone), and the window is remapped from it as far as possible;
 * vmc_flush() retries.  Never does a failure leave another VM's bytes
 * readable.  Not thread-safe against other calls on the same attached VM
 * (one worker thread runs a VM at a time). */

enum {
	VMC_COMMIT_RESERVE  = 1,  /* may draw on the container's reserve fund     */
	VMC_COMMIT_NOZERO   = 2,  /* skip zeroing a granule this VM used last     */
	VMC_COMMIT_POPULATE = 4,  /* prefault the range (MADV_POPULATE_WRITE)     */
};
enum {
	VMC_RELEASE_DEFER   = 1,  /* keep the old mapping until vmc_flush or the next
				   * batch commit; this VM may recycle the granule first */
};

/* Commit the uncommitted granules of [addr, addr+len) (committed ones are
 * left as they are).  New memory reads as zero, except with
 * VMC_COMMIT_NOZERO for a granule this same VM used last.  Granules
 * released with VMC_RELEASE_DEFER are recycled first: one recycled at the
 * address it was released from costs no system call.  Errors: VMC_ELIMIT
 * (the VM's limit), VMC_EFUNDS (no free funded granule, or only the reserve
 * fund is left and VMC_COMMIT_RESERVE is not given; under vmc/fund_policy
 * ondemand the commit funds more first, and VMC_EFUNDS means the pool is
 * used up to its balloon target or the host has not got the memory:
 * vmc_errmsg() says which and what to do). */
VMC_API int vmc_commit(vmc_t *c, void *addr, size_t len, int flags);

/* Release the granules of [addr, addr+len), which must all be committed:
 * the range becomes inaccessible (with VMC_RELEASE_DEFER: at the next
 * vmc_flush or batch commit) and the granules go back to this worker's
 * cache, or to quarantine while another worker may still map them. A
 * granule with an alias stays with its other view. */
VMC_API int vmc_release(vmc_t *c, void *addr, size_t len, int flags);

/* Move the backing of [from, from+len) to [to, to+len) without copying a
 * byte: the granules and their protections appear at `to`, and `from`
 * becomes inaccessible.  `from` must be committed; `to` must be
 * uncommitted except where it overlaps `from`.  flags: 0. */
VMC_API int vmc_move(vmc_t *c, void *from, void *to, size_t len, int flags);

/* A second view: [to, to+len) shows the same granules as [from, from+len)
 * (ZGC-style multi-mapping), with the same protection.  `from` committed,
 * `to` uncommitted, no overlap.  Releasing one view keeps the other. */
VMC_API int vmc_alias(vmc_t *c, void *from, void *to, size_t len);

/* Set the protection of the committed range: PROT_READ | PROT_WRITE,
 * PROT_READ or PROT_NONE (from <sys/mman.h>).  The VM keeps it across
 * detach and attach, in any worker. */
VMC_API int vmc_protect(vmc_t *c, void *addr, size_t len, int prot);

typedef struct vmc_probe {
	int      committed;   /* 1 if a granule backs the address              */
	uint32_t granule;     /* its pool granule (if committed)               */
	int      prot;        /* its protection in the VM's page map (PROT_*)  */
	int      alias;       /* 1 if this view is an alias                    */
	int      huge;        /* 1 if the pool is backed by 2 MiB pages (hugetlb or THP) */
	uint32_t vm;          /* the VM attached here                          */
} vmc_probe_t;

/* Describe the window address addr (any alignment). */
VMC_API int vmc_probe(vmc_t *c, const void *addr, vmc_probe_t *out);

/* Apply deferred releases: unmap what VMC_RELEASE_DEFER kept mapped and
 * hand those granules back.  Also remaps the window after a system error. */
VMC_API int vmc_flush(vmc_t *c);

/* Batches: record operations, then apply them together with the fewest
 * system calls (the result is mapped in one pass that coalesces adjacent
 * ranges: N moves of contiguous ranges cost O(1) calls).  Recording only
 * checks the arguments' form.  vmc_batch_commit first ends the releases
 * deferred before it (like vmc_flush), then validates and applies the
 * batch all or nothing, and frees it; the batch's own deferred releases
 * last until the next flush, batch commit or detach.  The VM's limit and
 * the funds are checked against the batch's commits alone (what it
 * releases is not credited first).  vmc_batch_abort frees a batch with no
 * effect. */
typedef struct vmc_batch vmc_batch_t;
VMC_API int vmc_batch_begin(vmc_t *c, vmc_batch_t **b);
VMC_API int vmc_batch_move(vmc_batch_t *b, void *from, void *to, size_t len, int flags);
VMC_API int vmc_batch_release(vmc_batch_t *b, void *addr, size_t len, int flags);
VMC_API int vmc_batch_commit_range(vmc_batch_t *b, void *addr, size_t len, int flags);
VMC_API int vmc_batch_protect(vmc_batch_t *b, void *addr, size_t len, int prot);
VMC_API int vmc_batch_commit(vmc_batch_t *b);
VMC_API int vmc_batch_abort(vmc_t *c, vmc_batch_t *b);

/* The VM attached in this worker (VMC_NO_VM if none). */
#define VMC_NO_VM 0xffffffffu
VMC_API uint32_t vmc_attached(vmc_t *c);

/* ------------------------------------------------------------ in-VM heap
 *
 * An allocator whose every byte of metadata lives in the attached VM's
 * memory, so the heap travels with the VM to any worker (pointers stay
 * valid: the window is at the same address everywhere).  It manages the
 * VM's window from offset 0 up, committing whole granules as it grows,
 * within the VM's limit; do not vmc_commit/release that part yourself.
 * Requests up to 1 KiB are rounded to one of 32 size classes (16-byte
 * steps to 256, then at most 12.5% apart) and come from slabs of one class
 * with no header per block; larger ones are blocks with a 16-byte tag,
 * found by best fit among the free blocks before the heap grows.  Both
 * are O(1) (but for a decay check that runs at most four times per decay
 * time), with no system call unless the heap grows or gives memory back.
 * Free memory goes back to the pool (whole granules, through
 * vmc_release: zeroed before another VM has it) once it has been free for
 * the decay time (vmc_heap_stats_t.decay_ms), checked on heap calls and at
 * vmc_detach, or at once with vmc_heap_trim.  Not thread-safe: one thread
 * runs an attached VM at a time. */

/* n bytes, 16-byte aligned, or NULL (no VM attached, n == 0 or too large,
 * or the VM's limit / the pool is exhausted: vmc_errmsg() says which).
 * Exhaustion never corrupts the heap. */
VMC_API void *vmc_heap_alloc(vmc_t *c, size_t n);

/* Free p (NULL is ignored).  A pointer that is not a block in use of the
 * attached VM's heap (double free, interior or foreign pointer) stops a
 * debug build with a message and is ignored by a release build. */
VMC_API void vmc_heap_free(vmc_t *c, void *p);

/* Resize p to n bytes (realloc semantics: NULL p allocates, n == 0 frees
 * and returns NULL).  On failure returns NULL and p is untouched. */
VMC_API void *vmc_heap_realloc(vmc_t *c, void *p, size_t n);

/* The attached VM's root slot: one pointer the runtime stores its state
 * in and finds again after attach, in any worker.  NULL if no VM is
 * attached or the heap cannot be set up (the VM's limit). */
VMC_API void **vmc_vm_root(vmc_t *c);

/* Give the attached VM's free heap memory back to the pool now, whatever
 * its age: empty slabs, the free space above the last block and every
 * whole granule inside a free block, until the heap has no more than
 * `keep` bytes committed beyond the bytes in use (0: all it can).  The
 * heap header and granules that hold a block in use always stay.  Returns
 * 0 (also when the VM has no heap), VMC_ENOTATTACHED, or the error of a
 * vmc_release that failed (what it could not release stays committed). */
VMC_API int vmc_heap_trim(vmc_t *c, size_t keep);

typedef struct vmc_heap_stats {
	uint64_t in_use;      /* bytes of the blocks allocated and not freed: the size
			       * class of a small block, a large block with its tag */
	uint64_t top;         /* bytes of the window the heap spans (end of its last block) */
	uint64_t committed;   /* bytes of granules the heap holds committed now */
	uint64_t peak_committed; /* high-water mark of committed */
	uint64_t allocs, frees;  /* blocks handed out and given back (a moving realloc
				  * counts one of each) */
	uint64_t largest_free;   /* the largest free block inside the heap (bytes a
				  * request could get without growing the heap) */
	double   fragmentation;  /* 1 - in_use / committed: the share of committed
				  * memory not handed out (free blocks, free slab
				  * slots, size-class rounding, metadata); 0 if none */
	uint64_t trims;       /* vmc_release calls made to give memory back */
	uint64_t trimmed;     /* bytes given back by them in total */
	uint64_t slabs;       /* slabs (runs of blocks of one size class) */
	uint64_t granule;     /* the granule size: the unit of committed and trimmed */
	uint32_t decay_ms;    /* free memory goes back once free this long */
} vmc_heap_stats_t;

/* Figures of the attached VM's heap (all but granule 0 if it has none
 * yet); with check != 0 also walk every block and verify the heap's
 * integrity (VMC_ECORRUPT if broken, vmc_errmsg() says where).  Errors:
 * VMC_ENOTATTACHED. */
VMC_API int vmc_heap_stats(vmc_t *c, vmc_heap_stats_t *out, int check);

/* Copy detached VM src into a new VM `name` with the same limit: every
 * granule is copied (protections and aliases too), and since all VMs share
 * the window address the copy is a valid, independent heap at once.
 * Errors: EBUSY (src attached), VMC_EORPHANED, EEXIST, ENOSPC, VMC_EFUNDS. */
VMC_API int vmc_vm_clone(vmc_t *c, uint32_t src, const char *name, uint32_t *id);

/* ---------------------------------------------------------- shared regions
 *
 * Named regions of any size (whole granules; 64-bit sizes), at a fixed
 * address in the arena, the same in every worker, readable by all that open
 * them and writable by those that open them for writing.  A region's
 * memory comes from the pool (funded: never SIGBUS) as one contiguous run
 * of granules.  Attach and detach never touch regions. */

enum { VMC_REGION_READ = 0, VMC_REGION_WRITE = 1 };

/* Create region `name` (1..63 characters) of `size` bytes and map it
 * read-write here at *addr.  flags: 0.  Errors: EINVAL (zero or unaligned
 * size, larger than the pool), EEXIST, ENOSPC (no arena space: raise
 * vmc/region_space, or no free region entry), VMC_EFUNDS (no run of free
 * funded granules that long). */
VMC_API int vmc_region_create(vmc_t *c, const char *name, size_t size, int flags, void **addr);

/* Map region `name` here, read-only (VMC_REGION_READ) or read-write
 * (VMC_REGION_WRITE), at the address it has in every worker.  Errors:
 * ENOENT, EINVAL. */
VMC_API int vmc_region_open(vmc_t *c, const char *name, int access, void **addr);

/* Unmap a region this process opened or created. Errors: EINVAL. */
VMC_API int vmc_region_close(vmc_t *c, void *addr);

/* Destroy region `name` when no other live worker has it open; its granules
 * return to the pool.  Errors: ENOENT, EBUSY. */
VMC_API int vmc_region_destroy(vmc_t *c, const char *name);

typedef struct vmc_region_stats {
	char     name[64];
	int      code;        /* 1 for the code cache */
	uint64_t size;        /* bytes */
	void    *addr;        /* where it is mapped in every worker */
	uint32_t openers;     /* workers that have it open */
} vmc_region_stats_t;

/* Region table entry i (0 .. VMC_MAX_REGIONS-1; 0 is the code cache).
 * Errors: ENOENT (unused entry), EINVAL. */
#define VMC_MAX_REGIONS 64
VMC_API int vmc_region_stats(vmc_t *c, uint32_t i, vmc_region_stats_t *out);

/* ------------------------------------------------------------- code cache
 *
 * A JIT code cache of vmc/code_cache_size bytes, mapped read+execute at the
 * same address in every worker and never changed by attach or detach.
 * Code is written through a separate read-write alias (W^X). */

/* Allocate n bytes of code space (64-byte aligned): *rx is where the code
 * runs, *rw where it is written (rw may be NULL for a reader).  The first
 * call in a process maps the read-write alias.  Errors: ENOSYS (no code
 * cache), EINVAL, ENOMEM (the cache is full).  Thread- and process-safe. */
VMC_API int vmc_code_alloc(vmc_t *c, size_t n, void **rx, void **rw);

/* Free an allocation by its rx address. Errors: EINVAL. */
VMC_API int vmc_code_free(vmc_t *c, void *rx);

/* Make code written through rw visible to instruction fetch at rx (needed
 * on arm64; a no-op on x86-64). */
VMC_API void vmc_code_flush(void *rx, size_t n);

/* ------------------------------------------------------ fault attribution */

/* Install a SIGSEGV/SIGBUS handler for this process.  A fault inside the
 * arena of any open container prints one line to stderr: worker pid, the
 * attached VM (or none), the window offset, the VM that offset last showed
 * and the isolation mode; then the process dies of the same signal, as
 * without the handler.  Faults elsewhere go to the handler that was
 * installed before.  Installing twice is a no-op.  flags: 0.  Errors:
 * EINVAL, or an errno from sigaction. */
VMC_API int vmc_fault_install(vmc_t *c, int flags);

/* ------------------------------------------------------------ statistics */

#define VMC_HIST_BUCKETS 32
/* Attach/detach figures of one worker or of all (SAP STAD style). */
typedef struct vmc_attach_stats {
	uint64_t attaches;
	uint64_t affinity_hits;     /* re-attaches that needed no system call      */
	uint64_t remaps;            /* attaches that changed the window's mappings */
	uint64_t detaches;
	uint64_t syscalls;          /* system calls made by attach and detach      */
	uint64_t attach_hist[VMC_HIST_BUCKETS]; /* [k]: attaches of [2^k, 2^(k+1)) ns */
	uint64_t detach_hist[VMC_HIST_BUCKETS];
} vmc_attach_stats_t;

/* The latency below which a fraction p (0..1) of a histogram's operations
 * fall, in ns (the upper edge of the bucket; 0 if the histogram is empty). */
VMC_API uint64_t vmc_hist_percentile(const uint64_t hist[VMC_HIST_BUCKETS], double p);

typedef struct vmc_stats {
	uint64_t pool_size;         /* bytes */
	uint64_t funded_bytes;      /* bytes backed by memory (all states but unfunded) */
	uint64_t reserve_size;
	int      fund_policy;       /* VMC_FUND_UPFRONT or VMC_FUND_ONDEMAND            */
	uint64_t fund_batch;        /* bytes an on-demand fund adds at once             */
	uint64_t balloon_target;    /* unfunded bytes last asked of vmc_balloon (0 if
				     * never): on-demand funding leaves them unfunded  */
	uint32_t granules;          /* pool granules in total                       */
	uint32_t unfunded, free, cached, used, quarantined; /* granules by state    */
	uint32_t workers;           /* slots held by live processes                 */
	uint32_t dead_workers;      /* slots of dead processes not yet recovered    */
	uint32_t max_workers, max_vms;
	int      page_kind;         /* the kind in use (never VMC_PAGE_AUTO)        */
	int      memory_isolation;
	uint64_t window_size, arena_base, arena_size;
	/* counters since create, summed over all processes */
	uint64_t fund_ops, fund_granules;       /* funding calls, granules funded      */
	uint64_t ondemand_ops, ondemand_granules; /* of those, funds by commits (ondemand) */
	uint64_t unfund_ops, unfund_granules;   /* hole punches, granules unfunded     */
	uint64_t cache_refills, cache_drains;   /* batch moves shared list <-> cache   */
	uint64_t lock_repairs;                  /* locks repaired after a dead owner   */
	uint64_t workers_recovered;             /* dead workers' slots reclaimed       */
	uint32_t vms;                           /* VMs in the table                    */
	uint32_t regions;                       /* cache regions (not the code cache)  */
	uint64_t region_bytes;
	uint64_t code_cache_size, code_cache_used; /* bytes                            */
	vmc_attach_stats_t attach;              /* all workers, past and present       */
} vmc_stats_t;

/* A snapshot of the container's counters (consistent: taken under the pool
 * lock). Errors: EINVAL. */
VMC_API int vmc_stats(vmc_t *c, vmc_stats_t *out);

typedef struct vmc_worker_stats {
	int32_t  pid;               /* 0: slot unused */
	uint32_t cached;            /* granules in this worker's local cache */
	int      alive;             /* 1 if the process is alive (pid reuse-safe) */
	uint32_t attached;          /* VM attached there, or VMC_NO_VM */
	vmc_attach_stats_t attach;
} vmc_worker_stats_t;

/* Stats of worker slot `slot` (0 .. max_workers-1). Errors: EINVAL. */
VMC_API int vmc_worker_stats(vmc_t *c, uint32_t slot, vmc_worker_stats_t *out);

/* This process's worker slot number, or VMC_NO_SLOT if c is not usable. */
#define VMC_NO_SLOT 0xffffffffu
VMC_API uint32_t vmc_worker_slot(vmc_t *c);

/* System calls this process has made through vmc since it started (every
 * call of src/os/, all containers), for benchmarks that count the calls on
 * a request path.  Process-local; any thread. */
VMC_API uint64_t vmc_syscalls(void);

/* Report funding progress of this handle's balloon deflates (and, given in
 * vmc_config_t, of vmc_create) to fn; NULL for none. */
VMC_API void vmc_set_progress(vmc_t *c, void (*fn)(void *arg, uint64_t done, uint64_t total),
			      void *arg);

/* ------------------------------------------------ checking and recovery */

typedef struct vmc_check_report {
	uint32_t errors;            /* 0: consistent; 1: a violation (the check stops at the first) */
	char     first[256];        /* description of the first violation         */
} vmc_check_report_t;

/* Verify every table invariant: each granule is in exactly one state, the
 * counts add up to the pool size, the free list and worker caches hold
 * exactly the granules marked so, indices are in range, and every derived
 * figure (list lengths, VMs' committed, the container's commit budget, the
 * code cache's bytes in use) equals what the granule states say.  Takes all locks
 * (briefly blocks other workers).  Debug builds also walk the heap of the
 * VM attached here (vmc_heap_stats with check).  Returns 0 if consistent,
 * VMC_ECORRUPT if not (out->first says what). out may be NULL. */
VMC_API int vmc_check(vmc_t *c, vmc_check_report_t *out);

typedef struct vmc_recover_report {
	uint32_t workers_reclaimed; /* dead workers whose slots were freed  */
	uint32_t granules_returned; /* granules from their caches           */
} vmc_recover_report_t;

/* Repair what crashed workers left: take back container locks whose
 * holder no longer exists (without waiting for their timeout), reclaim the
 * slots of dead workers (pid reuse-safe) and return their cached granules
 * to the pool (VMs they had attached become orphaned), and count the
 * commit budget again from the page maps.  Dead workers are also found on
 * join, when the pool runs dry and when an attach meets a VM one of them
 * held.  out may be NULL. */
VMC_API int vmc_recover(vmc_t *c, vmc_recover_report_t *out);

/* ------------------------------------------------------ host capabilities */

typedef struct vmc_caps {
	long hugepages_free;        /* free 2 MiB hugetlb pages now                */
	long hugepages_total;
	int  hugepages_reservable;  /* 1 if this process may raise nr_hugepages     */
	int  hugetlbfs_mounted;     /* 1 if a 2 MiB hugetlbfs mount exists          */
	char hugetlbfs_path[256];
	int  thp_shmem;             /* 1 if shmem THP can be had (always/within_size/advise/force) */
	char thp_shmem_setting[32]; /* the bracketed word of shmem_enabled         */
	int  memfd_seals;           /* memfd_create + F_ADD_SEALS work             */
	int  map_fixed_noreplace;
	int  madv_populate_write;
	int  mseal;
	uint64_t mem_available;     /* bytes, from /proc/meminfo                   */
} vmc_caps_t;

/* Probe what this host offers. Never fails; unknowns read as 0. */
VMC_API void vmc_caps_probe(vmc_caps_t *out);

/* Make n 2 MiB hugepages available to vmc: raise /proc/sys/vm/nr_hugepages
 * to the current total plus what is missing for n free pages, and mount
 * hugetlbfs on /dev/hugepages if no 2 MiB hugetlbfs mount exists.  Needs
 * root.  Returns 0, EPERM/EACCES (vmc_errmsg() gives the commands to run as
 * root) or ENOMEM (the kernel reserved fewer pages than asked: memory is
 * fragmented or short; *got, if not NULL, receives the free pages now). */
VMC_API int vmc_hugepages_setup(long n, long *got);

/* Name of a page kind ("hugetlb", ...). */
VMC_API const char *vmc_page_kind_name(int kind);

#ifdef __cplusplus
}
#endif
#endif /* VMC_H */
