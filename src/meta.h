/*
 * meta.h - the layout of the metadata file, shared by every process of a
 * container, and the process-local handle.  Nothing in shared memory is a
 * pointer: tables are found by offsets from the header and entries refer
 * to each other by index, and every index read from shared memory is
 * bounds-checked before use (see validate.c).
 *
 * Lock order: balloon lock -> slot lock -> pool lock.  Counters marked "atomic" are
 * updated with relaxed atomics and need no lock.
 */
#ifndef VMC_META_H
#define VMC_META_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include "internal.h"
#include "lock.h"

#define VMC_MAGIC   0x31415445434d4d56ull  /* "VMMCETA1" little-endian */
#define VMC_VERSION 4u
#define VMC_NIL     0xffffffffu
#define VMC_NAME_MAX 64
#define VMC_PAGE    4096u

/* Granule states (invariant 5: every granule is in exactly one). */
enum {
	G_UNFUNDED = 0,  /* a hole in the pool file: no memory behind it        */
	G_FREE,          /* funded, on the shared free list                      */
	G_CACHED,        /* funded, on worker `owner`'s local cache list         */
	G_USED,          /* funded, mapped by VM `owner` at window index `index` */
	G_QUARANTINED,   /* funded, released, waiting for epoch `epoch` to pass  */
	G_NSTATES
};
enum { G_DEFERRED = 1, G_DIRTY = 2 };

/* One per granule of pool.  Guarded by the pool lock, except while CACHED
 * (the owning slot's lock) or USED (the lock that guards the VM's page map). */
struct vmc_granule {
	uint8_t  state;    /* G_*                                                */
	uint8_t  flags;    /* G_DEFERRED: CACHED on the slot's deferred list, still
			    * mapped at window index `index` of VM `last_vm`;
			    * G_DIRTY: USED but not zeroed yet (commit in flight) */
	uint16_t views;    /* USED: page-map entries that show it (1 + aliases)  */
	uint32_t next;     /* link in the free list, a cache list or quarantine  */
	uint32_t owner;    /* USED: VM id (or REGION_OWNER | region); CACHED and
			    * G_DEFERRED: the VM whose window maps it at `index`;
			    * QUARANTINED: the VM whose windows it waits on;
			    * else VMC_NIL                                      */
	uint32_t index;    /* USED: window index of its primary view; deferred:
			    * where it is still mapped; else VMC_NIL            */
	uint32_t last_vm;  /* the VM that used it last (zeroing, fault reports)  */
	uint32_t last_inc; /* that VM's incarnation (low bits): NOZERO trusts the
			    * contents only for the same VM, not a successor  */
	uint32_t pad1;
	uint32_t slot;     /* CACHED: the worker slot whose cache holds it.  A
			    * field of its own, so that no state change ever
			    * rewrites what the state it leaves needs: the state
			    * byte is written last when entering, first when
			    * leaving a state, and a crash in between leaves a
			    * granule that repair can file by its state alone */
	uint64_t epoch;    /* QUARANTINED: the epoch it waits for                */
};

/* Change a granule's state byte, in program order with the stores around
 * it: a crash is precise (a killed process has executed exactly the
 * instructions before some point), so the compiler must not move a store
 * across this one; a release store for threads that read it without the
 * lock (stats). */
static inline void gran_state(struct vmc_granule *e, uint8_t st)
{
	__atomic_store_n(&e->state, st, __ATOMIC_RELEASE);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Counters guarded by the pool lock but read without it (stats, the
 * budget, the quarantine's fast check): relaxed atomics. */
#define CNT_ADD(p, n) ((void)__atomic_add_fetch((p), (n), __ATOMIC_RELAXED))
#define CNT_SET(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* A worker slot: one per joined process. */
struct vmc_slot {
	vmc_lock_t lock;        /* guards cache_head, cache_count, the cached granules
				 * and the page map of the VM attached by this slot */
	int32_t  pid;           /* pool lock: 0 = slot unused                    */
	uint32_t attached;      /* owner (atomic store): VM attached here or VMC_NIL */
	uint64_t start_time;    /* pool lock: /proc start time, pid-reuse-safe   */
	uint32_t cache_head;    /* slot lock: first cached granule or VMC_NIL    */
	uint32_t cache_count;   /* slot lock                                     */
	uint32_t defer_head;    /* slot lock: released with VMC_RELEASE_DEFER, still
				 * mapped in this worker's window until a flush   */
	uint32_t defer_count;   /* slot lock                                     */
	uint32_t window_vm;     /* pool lock: VM whose granules this worker's window
				 * may still map accessibly (lazy), or VMC_NIL   */
	uint32_t pad0;
	uint64_t window_epoch;  /* pool lock: epoch at which that mapping was made */
	uint64_t refills;       /* atomic */
	uint64_t drains;        /* atomic */
	vmc_attach_stats_t st;   /* atomic, owner writes */
};

/* VM states, kept in the top half of vmc_vm.own; the bottom half holds
 * the slot of the worker that has it attached (or had, when orphaned).
 * HIBERNATED: no granule, its memory is in its image file (image.c). */
enum { VM_FREE = 0, VM_IDLE, VM_ATTACHED, VM_ORPHANED, VM_HIBERNATED };
/* vmc_vm.image: IMG_VALID while the VM's image file (its path follows from
 * the container, the VM id and its incarnation) is what the VM holds: set
 * by hibernate once the image is durable, before a granule is released;
 * cleared by wake once every granule is back.  A worker that dies with
 * the VM claimed and IMG_VALID set leaves it hibernated (worker.c). */
enum { IMG_NONE = 0, IMG_VALID = 1 };
#define VM_OWN(state, slot) (((uint64_t)(state) << 32) | (uint32_t)(slot))
#define VM_STATE(own)       ((uint32_t)((own) >> 32))
#define VM_SLOT(own)        ((uint32_t)(own))

/* The VM table.  An entry changes from FREE to IDLE and back under the
 * pool lock; IDLE <-> ATTACHED by compare-and-swap on `own` (that is what
 * makes attach exclusive without a global lock); ATTACHED -> ORPHANED by
 * the recoverer of the dead worker, under the pool lock. */
struct vmc_vm {
	uint64_t own;           /* atomic CAS: VM_OWN(state, slot)                  */
	uint64_t incarnation;   /* pool lock: bumped on create and destroy          */
	uint64_t gen;           /* page map owner: bumped on every page map change  */
	uint64_t limit;         /* pool lock: byte limit (set at create)            */
	uint32_t committed;     /* page map owner: granules in the page map         */
	uint32_t hwm;           /* page map owner: committed high-water mark        */
	uint32_t reserve_used;  /* page map owner: granules drawn from the reserve  */
	uint32_t pm_len;        /* pool lock: page-map entries: the VM's span in
				 * granules (set at create)                         */
	uint32_t pm_off;        /* pool lock: where its page map starts among the
				 * container's page-map entries                     */
	uint32_t image;         /* page map owner: IMG_* (above)                    */
	uint64_t attaches;      /* atomic */
	int32_t  pid;           /* page map owner: pid of the attacher (kept when orphaned) */
	uint32_t pad0;
	uint64_t image_bytes;   /* page map owner: bytes of its image while IMG_VALID */
	char     name[VMC_NAME_MAX]; /* pool lock */
};

/* A page-map entry: VMC_NIL, or a granule with its view's protection and
 * whether it is an alias (a second view of a granule shown elsewhere). */
#define PM_ALIAS       0x80000000u
#define PM_PROT_SHIFT  29
#define PM_PROT_MASK   (3u << PM_PROT_SHIFT)  /* 0 read-write, 1 read, 2 none */
#define PM_GRANULE     0x1fffffffu
#define PM_MAX_GRANULES PM_GRANULE            /* granule numbers stay below */

/* Shared regions (region.c): the code cache and named cache regions, each
 * a contiguous run of pool granules at a fixed place in the arena.  Their
 * granules are USED with owner REGION_OWNER | region index. */
#define REGION_OWNER    0x40000000u
#define CODE_UNIT_SHIFT 6           /* the code allocator hands out 64-byte units */
enum { REGION_FREE = 0, REGION_LIVE, REGION_CODE, REGION_MAKING };
#define LAST_REGION (VMC_NIL - 1)  /* granule.last_vm: it held a region's data */
struct vmc_region {
	uint32_t state;            /* pool lock: REGION_*                          */
	uint32_t first;            /* pool lock: first granule                     */
	uint32_t ngran;            /* pool lock: granules                          */
	uint32_t maker;            /* pool lock: MAKING: the slot zeroing it       */
	uint64_t arena_off;        /* pool lock: offset of its mapping in the arena */
	uint64_t openers[64];      /* atomic: bit s set while slot s has it open   */
	char     name[VMC_NAME_MAX]; /* pool lock                                  */
};

/* Counters shared by all processes; all atomic. */
struct vmc_counters {
	uint64_t fund_ops, fund_granules;
	uint64_t unfund_ops, unfund_granules;
	uint64_t ondemand_ops, ondemand_granules;  /* funds made by commits (fund.c) */
	uint64_t cache_refills, cache_drains;
	uint64_t lock_repairs, workers_recovered;
	vmc_attach_stats_t gone;  /* attach statistics of slots since freed */
};

enum { META_POOL_MEMFD = 1 };   /* flags: pool is a memfd, not openable by name */

struct vmc_meta {
	/* --- immutable after create ------------------------------------ */
	uint64_t magic;          /* written last: a file without it is still being made */
	uint32_t version;
	uint32_t hdr_size;       /* sizeof(struct vmc_meta) */
	uint64_t meta_size;      /* bytes of the whole metadata file */
	uint32_t gentry_size, slot_size, vm_size, flags;  /* entry sizes, for layout checks */
	uint32_t ngranules, max_workers, max_vms, worker_cache;
	uint32_t page_kind, memory_isolation, window_granules, code_cache_protect;
	uint32_t granule_shift;  /* granules are 1 << granule_shift bytes (12..21) */
	uint32_t pm_entries;     /* page-map entries of all VMs together */
	uint32_t fund_policy;    /* VMC_FUND_UPFRONT or VMC_FUND_ONDEMAND (fund.c) */
	uint32_t fund_batch;     /* granules an on-demand fund adds at once (>= 1) */
	uint64_t populate_limit; /* bytes: 4 KiB pools populate VMs up to this */
	uint64_t pool_size, window_size, code_cache_size, region_space, reserve_size;
	uint64_t arena_base, arena_size;
	uint64_t off_slots, off_granules, off_vms, off_pagemaps, off_regions, off_codemap;
	char     name[VMC_NAME_MAX];
	char     pool_path[256];
	uint32_t wake_on_attach; /* vmc/wake_on_attach: vmc_attach wakes a hibernated VM */
	uint32_t hibernate_sync; /* fsync images and their directory (always 1 for now) */
	char     hibernate_dir[256]; /* vmc/hibernate_dir: images go to DIR/NAME/ */
	/* --- mutable ---------------------------------------------------- */
	vmc_lock_t pool_lock;
	vmc_lock_t balloon_lock; /* serialises balloon operations (target arithmetic) */
	vmc_lock_t code_lock;    /* guards the code allocator's bitmaps          */
	uint64_t code_used;      /* code lock: bytes handed out by vmc_code_alloc */
	uint32_t free_head;      /* pool lock: first free granule or VMC_NIL */
	uint32_t nfree;          /* pool lock */
	uint32_t nunfunded;      /* pool lock */
	uint32_t nquarantined;   /* pool lock */
	uint32_t committed;      /* own slot lock + atomic: granules committed by VMs and
				  * regions (budget.c); exact with every slot lock held */
	uint32_t budget_stale;   /* atomic: a worker died inside a charge; recount
				  * `committed` before the next one (budget.c) */
	uint32_t quar_head;      /* pool lock: quarantine list, oldest first */
	uint32_t quar_tail;      /* pool lock */
	uint32_t pm_top;         /* pool lock: page-map entries from here up are free
				  * (the end of the highest live VM's page map)   */
	uint32_t balloon_target; /* balloon lock (read atomically): granules the last
				  * vmc_balloon asked to be unfunded; on-demand
				  * funding leaves that many unfunded (fund.c) */
	uint64_t epoch;          /* pool lock (read atomically): see quarantine.c */
	struct vmc_counters cnt; /* atomic */
};

/* The granule size of a container (1 << granule_shift bytes). */
#define GSHIFT(c) ((c)->h.granule_shift)
#define GSIZE(c)  ((size_t)1 << GSHIFT(c))

/* The process-local handle. */
struct vmc {
	struct vmc_meta *m;      /* the mapped metadata file */
	struct vmc_meta h;       /* private copy of the validated immutable header:
				  * geometry is read from here, never from m */
	struct vmc_granule *gran;/* the tables, located from h */
	struct vmc_slot *slots;
	struct vmc_vm *vms;
	uint32_t *pagemaps;      /* h.pm_entries entries: each VM's page map is
				  * pm_len of them from pm_off                   */
	struct vmc_region *regions;
	uint64_t *codemap;       /* used bitmap, then start bitmap               */
	uint64_t regions_mapped; /* bit r: region r is mapped in this process    */
	int      code_rw;        /* the code cache's read-write alias is mapped  */
	int      no_populate_write; /* the kernel has no MADV_POPULATE_WRITE      */
	struct vmc_window *win;  /* this process's view of its window (window.c) */
	size_t   meta_len;
	int      meta_fd, pool_fd;
	uint32_t slot;           /* our worker slot, VMC_NIL before joining */
	uint64_t fork_gen;       /* vmc_fork_gen when `slot` was taken */
	void    *arena;          /* == m->arena_base once reserved */
	void   (*progress)(void *, uint64_t, uint64_t);
	void    *progress_arg;
};


/* Layout of a metadata file for the given table sizes: offsets and total
 * size.  The validator recomputes this and compares. */
struct meta_layout {
	uint64_t off_slots, off_granules, off_vms, off_pagemaps, off_regions, off_codemap, size;
};
VMC_HIDDEN void meta_layout(const struct vmc_meta *h, struct meta_layout *out);

/* Bytes of each of the code allocator's two bitmaps (used, start). */
static inline uint64_t codemap_bytes(uint64_t code_cache_size)
{
	return ((code_cache_size >> CODE_UNIT_SHIFT) + 63) / 64 * 8;
}

/* Check a metadata image: header, layout, every table entry's ranges and
 * the lists' structure.  Pure function over bytes (the fuzz target).
 * Returns 0, VMC_ECORRUPT or VMC_EVERSION with why[] filled. */
#define META_HEADER 1  /* only the header: buf holds just the header     */
#define META_DEEP   2  /* also walk the lists (needs a quiescent image or all locks) */
VMC_HIDDEN int meta_validate(const void *buf, size_t len, int flags, char *why, size_t whylen);

#endif
