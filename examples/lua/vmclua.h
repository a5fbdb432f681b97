/*
 * vmclua.h - vmc-lua, a prefork multi-tenant Lua 5.4 host on vmc.
 *
 * One file per concept:
 *   sandbox.c   the sandboxed Lua environment, the CPU budget, the protected
 *               calls of handle(), of a script and of the state check
 *   tenant.c    a lua_State whose every byte lives in a VM (vmc_heap_*)
 *   plain.c     the same environment on the system allocator (baselines)
 *   host.c      the host's life: container, workers, deaths (host.h: its state)
 *   dispatch.c  routing: per-tenant queues, affinity, batches, replies
 *   maint.c     maintenance jobs: reload, reset, the check of an orphan
 *   hibernate.c idle tenants to image files (--hibernate-after), woken by
 *               their next request
 *   hoststats.c what the host tells: per tenant, per worker, text and JSON
 *   tenants.c   making tenants: templates, clones
 *   scripts.c   tenants' scripts: files, header lines, directories
 *   worker.c    the worker processes
 *   proto.c     the line protocol server (requests and control lines)
 *   control.c   the control commands: stats, reload, reset
 *   client.c    the client side: --client and --control
 *   loadgen.c   the built-in load generator and its request mix
 *   demo.c      `vmc-lua --demo` (what `make run` shows)
 *   main.c      the command line;  util.c  clock, sizes, percentiles
 * Public vmc API only (<vmc.h>).  README.md explains the design.
 */
#ifndef VMCLUA_H
#define VMCLUA_H

#include <vmc.h>

#include <lua.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VL_LINE_MAX    16384  /* longest request or reply line, without the newline */
#define VL_NAME_MAX    63     /* longest tenant name */
#define VL_MAX_WORKERS 64     /* vmc-mode worker processes */
#define VL_DEPTH       4      /* messages (requests or batches) queued in one worker */
#define VL_BATCH_MAX   16     /* requests of one tenant served in one attachment, at most */
#define VL_BUDGET_DEFAULT 50000000ull   /* Lua instructions a request may run */

/* -------------------------------------------------------------- sandbox.c */

/* What a reply is (struct vl_reply.kind). */
enum vl_rkind {
	VL_R_OK = 0,
	VL_R_ERR,       /* handle() raised an error */
	VL_R_BUDGET,    /* the request ran out of its CPU budget */
	VL_R_NOMEM,     /* the tenant's memory limit ("not enough memory") */
	VL_R_HOST,      /* not the script's doing: a bad line, an unknown or broken
			 * tenant, a worker that died, ... */
};

/* The outcome of one request: err = 0 and the value handle() returned, or
 * err = 1 and the error message.  One line: control characters become
 * spaces; longer text is cut at VL_LINE_MAX - 8 bytes. */
struct vl_reply {
	int    err;
	int    kind;      /* enum vl_rkind */
	size_t len;
	char   text[VL_LINE_MAX];
};

/* err 0: VL_R_OK; err 1: VL_R_HOST. */
void vl_reply_set(struct vl_reply *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The prefix of print() lines on stderr, e.g. "w1 counter". Process-local. */
void vl_log_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The CPU budget of the next protected call in this process: that many
 * Lua instructions (counted by a LUA_MASKCOUNT hook, in every coroutine
 * too), then every further instruction raises "CPU budget exceeded", so
 * that no pcall in the script can keep it running.  0: no budget. */
void vl_sandbox_budget(lua_State *L, uint64_t instructions);

/* Open the sandbox in a fresh state: base (without dofile, loadfile; load
 * takes text chunks only), string, table, math, utf8, coroutine; print goes
 * to stderr with the log prefix; the budget hook is installed.  Returns 0,
 * or -1 with a message in err. */
int vl_sandbox_open(lua_State *L, char *err, size_t n);

/* Run chunk src (the tenant's script, text only) under the budget and
 * check that it defines a global function handle.  If it fails, handle is
 * what it was before (a reload that fails leaves the old code serving;
 * other globals the chunk set before its error stay set).  0 or -1 (err). */
int vl_sandbox_load(lua_State *L, const char *name, const char *src, size_t len,
		    char *err, size_t n);

/* Call handle(body) in protected mode under the budget and put the outcome
 * in *r (kind VL_R_OK, _ERR, _BUDGET or _NOMEM). */
void vl_sandbox_call(lua_State *L, const char *body, size_t len, struct vl_reply *r);

/* Make a state that a dead worker left mid-call usable, or say why not:
 * unwind its call stack (lua_resetthread), run a full collection (it walks
 * every object) and a nesting probe (pcalls as deep as a fresh state
 * allows), under the budget.  0 or -1 (err). */
int vl_sandbox_check(lua_State *L, char *err, size_t n);

/* --------------------------------------------------------------- tenant.c */

/* With a VM attached in this process: create a sandboxed lua_State in the
 * VM's heap and store it in *vmc_vm_root(c).  Returns 0 or -1 (err). */
int vl_vm_new_state(vmc_t *c, char *err, size_t n);

/* The lua_State of the attached VM (NULL if it has none), made ready to
 * run: the allocator is pointed at c. */
lua_State *vl_vm_state(vmc_t *c);

/* Attach VM vm, retrying while another process has it (EBUSY: only a safety
 * net, the dispatcher routes a tenant to one worker at a time). */
int vl_vm_attach(vmc_t *c, uint32_t vm);

/* Serve n requests of one tenant in one attachment: attach VM vm, then for
 * each request i, handle(body[i]) under the budget, and fn(arg, i, r, ns,
 * sys) with its reply (ns, sys: the attach's time and system calls, for
 * i = 0; 0 after).  The detach comes before the last fn.  If the attach
 * fails, every request gets that error.  Returns 0 or the attach error. */
typedef void vl_served_fn(void *arg, int i, const struct vl_reply *r, uint32_t attach_ns,
			  uint32_t attach_sys);
int vl_vm_serve(vmc_t *c, uint32_t vm, uint64_t budget, int n, const char *const *body,
		const size_t *len, struct vl_reply *r, vl_served_fn *fn, void *arg);

/* Hibernate VM vm (detached, in this process's container): attach it, run
 * a full collection of its state under the budget, give the heap's free
 * granules back (vmc_heap_trim), detach, then vmc_vm_hibernate: the VM's
 * memory goes to an image file and its granules to the pool.  *r gets
 * "hibernated" or the error.  Returns 0 or the vmc error. */
int vl_vm_hibernate(vmc_t *c, uint32_t vm, uint64_t budget, struct vl_reply *r);

/* With VM vm attached: the heap check (vmc_heap_stats with check) and then
 * vl_sandbox_check.  0 or -1 (err). */
int vl_vm_check(vmc_t *c, char *err, size_t n);

/* Lua's own count of its bytes and the heap's bytes in use, for VM vm
 * (attaches and detaches it). */
int vl_vm_memory(vmc_t *c, uint32_t vm, uint64_t *lua_bytes, uint64_t *heap_in_use);

/* ---------------------------------------------------------------- plain.c */

/* A sandboxed state on malloc that fails allocations beyond `limit` bytes
 * (the same rule a VM's limit makes), or NULL (err). */
lua_State *vl_plain_new(uint64_t limit, char *err, size_t n);
void vl_plain_close(lua_State *L);
/* vl_vm_serve for a plain state (no attach: ns and sys are 0). */
void vl_plain_serve(lua_State *L, uint64_t budget, int n, const char *const *body,
		    const size_t *len, struct vl_reply *r, vl_served_fn *fn, void *arg);

/* ----------------------------------------------------------------- host.c */

enum vl_mode {
	VL_VMC     = 0,  /* every tenant in its own VM; any worker serves any tenant */
	VL_ONEPROC = 1,  /* baseline: all tenants in the dispatcher, malloc, no isolation */
	VL_PROCS   = 2,  /* baseline: one process per tenant (malloc), the usual isolation */
};

/* What happens to a tenant whose worker died while it was attached (its VM
 * is then orphaned).  The requests that arrive meanwhile wait. */
enum vl_recover {
	VL_RECOVER_KEEP   = 0,  /* vmc_vm_reclaim KEEP, then the heap and state check in a
				 * child process; if that fails, reset (the default) */
	VL_RECOVER_RESET  = 1,  /* a fresh clone of the template with the script */
	VL_RECOVER_MANUAL = 2,  /* stay orphaned (for inspection) until `reset NAME` */
};

struct vl_host_opts {
	int         mode;          /* enum vl_mode */
	const char *name;          /* container name; NULL: "vmc-lua-<pid>" */
	int         private_c;     /* 1: an unnamed container (forked workers only) */
	int         workers;       /* VL_VMC: worker processes; 0 runs requests in the dispatcher */
	int         isolation;     /* 1 strict, 0 lazy (vmc/memory_isolation) */
	int         clone;         /* 1: new tenants are clones of a template VM */
	int         affinity;      /* 1: a tenant goes back to the worker that ran it last
				    * when that one is no busier than the least busy */
	int         batch;         /* requests of one tenant one attachment may serve, 1..VL_BATCH_MAX */
	int         recover;       /* enum vl_recover */
	int         max_tenants;   /* sizes the VM table (default 1024) */
	uint64_t    pool_size;     /* bytes; all of it is funded */
	uint64_t    limit;         /* default tenant memory limit, bytes */
	uint64_t    budget;        /* default CPU budget per request, Lua instructions; 0: none */
	const char *page_kind;     /* NULL: the profile's (auto) */
	const char *granule;       /* vmc/granule_size ("64K", 4k pages only); NULL: the profile's */
	int         timeout_ms;    /* kill -9 a worker whose request runs longer; 0: never */
	int         quiet;         /* 1: no notices on stderr */
	int         hibernate_after_ms; /* VL_VMC: hibernate a tenant idle this long (its
				    * VM to an image file; the next request wakes it);
				    * 0: never */
	const char *hibernate_dir; /* where the images go (vmc/hibernate_dir); NULL: the
				    * profile's */
};
void vl_host_opts_init(struct vl_host_opts *o);

struct vl_host;

/* done(arg, reply, worker): the outcome of a submitted request; worker is
 * the worker index that ran it (-1: the dispatcher, or it never ran). */
typedef void vl_done_fn(void *arg, const struct vl_reply *r, int worker);

/* Create the container (VL_VMC) and the host.  Returns NULL with a message. */
struct vl_host *vl_host_new(const struct vl_host_opts *o, char *err, size_t n);

/* Fork the workers (VL_VMC).  Tenants may be added before or after. */
int vl_host_start(struct vl_host *h, char *err, size_t n);

/* Stop the workers and jobs, close and destroy the container, free the host. */
void vl_host_free(struct vl_host *h);

/* Called in every child the host forks, before anything else (the server
 * closes its sockets there). */
void vl_host_set_atfork(struct vl_host *h, void (*fn)(void *), void *arg);

/* ----------------------------------------------------- tenants.c, scripts.c */

/* Add tenant `name` running script src with memory limit `limit` and CPU
 * budget `budget` (0: the host's defaults).  The script runs once, in the
 * dispatcher, under the budget.  Returns its index, or -1 (err) and adds
 * nothing. */
int vl_host_add(struct vl_host *h, const char *name, const char *src, size_t len,
		uint64_t limit, uint64_t budget, char *err, size_t n);

/* Add tenant `name` running the script in file `path`; a comment in its
 * first lines sets its limit and budget: "-- vmc-lua: limit = 4M, budget =
 * 20M".  A script that does not load makes a *broken* tenant all the same
 * (err says why): it answers "tenant 'x' failed to load: ..." until a
 * reload succeeds.  Returns the index, or -1 (err: no tenant was added). */
int vl_host_add_file(struct vl_host *h, const char *name, const char *path, char *err,
		     size_t n);

/* vl_host_add_file for every DIR/NAME.lua, in name order; the directory is
 * remembered (`reload NAME` of a new NAME.lua adds it).  Returns the count
 * of tenants (broken ones included: their messages go to stderr) or -1. */
int vl_host_add_dir(struct vl_host *h, const char *dir, char *err, size_t n);

/* VL_VMC: tenant `name` becomes a copy of tenant src (vmc_vm_clone). */
int vl_host_clone(struct vl_host *h, const char *src, const char *name, char *err, size_t n);

/* ------------------------------------------------------------- dispatch.c */

/* Queue a request (pin: a worker index, or -1 for any).  done is called
 * exactly once, possibly before this returns.  A tenant's requests are
 * served in the order they were submitted. */
void vl_host_submit(struct vl_host *h, const char *tenant, size_t tlen, const char *body,
		    size_t blen, int pin, vl_done_fn *done, void *arg);

/* Run one request to completion (drives the host's events meanwhile). */
int vl_host_call(struct vl_host *h, const char *tenant, const char *body, int pin,
		 struct vl_reply *r);

/* Maintenance of one tenant, queued behind its requests (VL_VMC):
 *   VL_OP_RELOAD  read its script again (its file, or the source it was
 *                 added with) and run it in the tenant's state: globals
 *                 stay, handle is replaced; a broken tenant gets a fresh
 *                 state.  A reload that fails leaves the old code serving.
 *   VL_OP_RESET   a fresh state: a clone of the template, and the script.
 *   VL_OP_HIBERNATE  its VM to an image file now (vl_vm_hibernate, run by a
 *                 worker); the next request wakes it.  Needs an idle tenant:
 *                 skipped ("OK ... busy") when requests wait behind it.
 * done gets "OK ..." or "ERR ..." when it is over.  A reload of a name that
 * is not a tenant adds DIR/NAME.lua if the host was given a directory. */
enum vl_op { VL_OP_REQUEST = 0, VL_OP_RELOAD, VL_OP_RESET, VL_OP_CHECK, VL_OP_HIBERNATE };
void vl_host_admin(struct vl_host *h, int op, const char *name, vl_done_fn *done, void *arg);

/* The event loop's share: fill pfd[0..] with the workers' and jobs'
 * sockets (returns how many) and lower *timeout_ms to the next watchdog
 * deadline; after poll(), hand the same entries to vl_host_events. */
int  vl_host_pollfds(struct vl_host *h, struct pollfd *pfd, int max, int *timeout_ms);
void vl_host_events(struct vl_host *h, const struct pollfd *pfd, int n);

/* ------------------------------------------------------------ hoststats.c */

enum vl_tstate { VL_T_READY, VL_T_BROKEN, VL_T_ORPHANED, VL_T_MAINT };

struct vl_tenant_info {
	const char *name;
	const char *msg;         /* broken: the load error; else "" */
	uint32_t    vm;          /* VL_VMC */
	int         state;       /* enum vl_tstate */
	uint64_t    limit, budget;
	int         hibernated;  /* its VM is an image file (--hibernate-after) */
	uint64_t    served, errors, budget_kills, nomem, orphans, recoveries, reloads;
	uint64_t    hibernations, wakes;
	uint64_t    by_worker[VL_MAX_WORKERS];
};

/* Figures of the requests since the last vl_host_stats_reset, summed over
 * the processes that ran them (the workers, or the dispatcher itself). */
struct vl_run_stats {
	uint64_t requests;       /* replies from workers (or run in the dispatcher) */
	uint64_t attaches;       /* batches: one attach each */
	uint64_t affinity_hits;  /* attaches that made no system call */
	uint64_t syscalls;       /* vmc_syscalls() of those processes */
	uint64_t minflt;         /* their page faults (vl_minflt) */
	double   attach_p50_us, attach_p99_us;   /* from exact samples; 0 if none */
	uint64_t hibernations;   /* tenants hibernated (all time) */
	uint64_t wakes;          /* requests that woke a hibernated tenant (all time) */
	int      hibernated;     /* tenants hibernated now */
};

vmc_t      *vl_host_vmc(struct vl_host *h);
const char *vl_host_name(struct vl_host *h);
int   vl_host_ntenants(struct vl_host *h);
int   vl_host_tenant(struct vl_host *h, int i, struct vl_tenant_info *out);
int   vl_host_find(struct vl_host *h, const char *name);
int   vl_host_nworkers(struct vl_host *h);
pid_t vl_host_worker_pid(struct vl_host *h, int w);
int   vl_host_busy(struct vl_host *h);   /* requests and jobs queued or running */
void  vl_host_stats_reset(struct vl_host *h);
void  vl_host_run_stats(struct vl_host *h, struct vl_run_stats *out);
/* Sums over the dispatcher and its workers (kB): VmRSS (/proc/PID/status),
 * Pss and its shared-memory part Pss_Shmem (/proc/PID/smaps_rollup). */
void  vl_host_memory(struct vl_host *h, uint64_t *rss_kb, uint64_t *pss_kb,
		     uint64_t *pss_shmem_kb);
/* Memory in use (bytes): private memory of the host's processes (Pss minus
 * Pss_Shmem) plus the granules the VMs hold; hugetlb pages are in no Pss. */
uint64_t vl_host_mem_in_use(struct vl_host *h);
/* The host's state as text (a table per tenant and per worker) or as one
 * line of JSON; malloc'ed, NULL if out of memory. */
char *vl_host_report(struct vl_host *h, int json);
/* Tenant-init timings: median µs of `samples` from-scratch inits
 * (vmc_vm_create, attach, lua_newstate, libraries, detach) and clones of
 * the template (vmc_vm_clone). */
int   vl_host_init_times(struct vl_host *h, int samples, double *scratch_us, double *clone_us);

/* ---------------------------------------------------------------- worker.c */

/* The body of a worker process (never returns).  tenant >= 0: a
 * VL_PROCS process that serves that tenant only, from a plain state. */
void vl_worker_main(struct vl_host *h, int index, int fd, int tenant) __attribute__((noreturn));

/* Dispatcher -> worker (SOCK_SEQPACKET, one message per packet): a batch
 * of requests to one tenant, served in one attachment:
 *   struct vl_msg, the tenant name (tlen bytes), then n times
 *   struct vl_sub and its body (len bytes). */
struct vl_msg {
	uint32_t vm;
	uint16_t tlen;
	uint8_t  n;              /* requests in the batch (VL_OP_HIBERNATE: one, empty) */
	uint8_t  op;             /* VL_OP_REQUEST or VL_OP_HIBERNATE */
	uint64_t budget;
};
struct vl_sub {
	uint32_t id, len;
};
/* Worker -> dispatcher: one per request, in order: struct vl_ans, text. */
struct vl_ans {
	uint32_t id, len;
	int32_t  kind;            /* enum vl_rkind */
	uint32_t attach_ns;       /* the attach this request needed; 0: none (a batch's later ones) */
	uint32_t attach_sys;      /* system calls that attach made */
	uint32_t pad;
	uint64_t syscalls;        /* the worker's vmc_syscalls() after the request */
	uint64_t minflt;          /* its page faults (vl_minflt) after the request */
};
#define VL_MSG_MAX (sizeof(struct vl_msg) + VL_NAME_MAX + 1 + VL_LINE_MAX + \
		    VL_BATCH_MAX * sizeof(struct vl_sub))
#define VL_ANS_MAX (sizeof(struct vl_ans) + VL_LINE_MAX)

/* ----------------------------------------------------------------- proto.c */

/* Listen on Unix socket `path` (a stale socket file is replaced; mode
 * 0600).  Returns the fd or -1 (err). */
int vl_listen(const char *path, char *err, size_t n);

/* Serve lines "TENANT BODY" -> "OK TEXT" / "ERR TEXT" on listening socket
 * lfd, and control commands (control.c) on cfd (-1: none), until stopfd
 * becomes readable or hangs up; then answer what is in flight (up to 5 s).
 * Returns 0 or -1. */
int vl_serve(struct vl_host *h, int lfd, int cfd, int stopfd);

/* Client side: connect to `path`; returns fd or -1 (errno). */
int vl_connect(const char *path);

/* --------------------------------------------------------------- control.c */

/* Run control command `line`; the reply (one or more lines, each ending in
 * LF) goes to done, now or when a reload or reset is over. */
typedef void vl_text_fn(void *arg, const char *text, size_t len);
void vl_control(struct vl_host *h, const char *line, size_t len, vl_text_fn *done, void *arg);

/* ---------------------------------------------------------------- client.c */

/* --client: stream stdin to the socket as it is, print every reply, and
 * after EOF wait for the reply to every line.  Exit status. */
int vl_client(const char *path);

/* --control: send one command line, print the reply.  Exit status. */
int vl_control_client(const char *path, const char *line);

/* ---------------------------------------------------------------- loadgen.c */

enum vl_kind { VL_K_OTHER, VL_K_COUNTER, VL_K_WORDS, VL_K_MEMHOG };

struct vl_mix_tenant { char name[VL_NAME_MAX + 1]; int kind; };
struct vl_mix {
	int n;
	int overlimit;          /* 1 in this many memhog requests is over its limit; 0: none */
	int sequential;         /* 1: the tenants in turn (a warm-up that visits each), 0: at random */
	struct vl_mix_tenant *t;
};

/* The request mix over the host's ready tenants: the kind of each comes
 * from its name (counter*, wordfreq*, memhog*; anything else gets "ping");
 * overlimit = 8, at random.  0 or -1 (out of memory).  vl_mix_free frees m->t. */
int  vl_mix_from_host(struct vl_mix *m, struct vl_host *h);
void vl_mix_free(struct vl_mix *m);

struct vl_lg_result {
	uint64_t sent, ok, err;
	uint64_t expected_err;      /* memhog requests over the limit that failed as they should */
	uint64_t unexpected;        /* replies that were not what the mix expects */
	char     first_unexpected[256];
	double   secs;
	double   p50_us, p99_us;    /* request round trips, exact */
	uint64_t counter_incr;      /* successful increments of the tenant named "counter" */
};

/* Drive `requests` requests of mix m over `conns` connections to `path`,
 * each with up to `depth` requests in flight.  Blocking; 0 or -1. */
int vl_loadgen(const char *path, const struct vl_mix *m, int requests, int conns, int depth,
	       uint64_t seed, struct vl_lg_result *res);

/* Run vl_loadgen in a forked child.  *stopfd becomes readable when the
 * child is done: hand it to vl_serve, then collect the result with
 * vl_loadgen_wait (which also reaps the child and closes stopfd).
 * Returns the child's pid or -1. */
pid_t vl_loadgen_spawn(const char *path, const struct vl_mix *m, int requests, int conns,
		       int depth, uint64_t seed, int *stopfd);
int vl_loadgen_wait(pid_t pid, int stopfd, struct vl_lg_result *res);   /* 0 or -1 */

/* ------------------------------------------------------------------ demo.c */

struct vl_demo_opts {
	const char *tenants;     /* directory of *.lua tenants */
	int workers, requests, conns;
	const char *page_kind, *granule;
};
int vl_demo(const struct vl_demo_opts *o);

/* ------------------------------------------------------------------ util */
double   vl_now(void);        /* CLOCK_MONOTONIC seconds */
uint64_t vl_now_ns(void);
uint64_t vl_minflt(void);     /* page faults this process took so far (util.c: perf traps) */
const char *vl_fault_source(void);   /* what vl_minflt counts, in words */
int      vl_parse_size(const char *s, uint64_t *out);   /* 4096, 64K, 8M, 1G */
int      vl_parse_count(const char *s, uint64_t *out);  /* 1000, 50M (10^6), 2G (10^9) */
/* The p-quantile (0..1) of v[0..n-1], interpolated between neighbours
 * (sorts v in place); 0 if n == 0. */
double   vl_quantile(double *v, size_t n, double p);

#endif
