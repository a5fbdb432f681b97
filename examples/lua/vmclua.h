/*
 * vmclua.h - vmc-lua, a prefork multi-tenant Lua 5.4 host on vmc.
 *
 * One file per concept:
 *   sandbox.c  the sandboxed Lua environment and the protected call of handle()
 *   tenant.c   a lua_State whose every byte lives in a VM (vmc_heap_*)
 *   plain.c    the same environment on the system allocator (baselines)
 *   host.c     the dispatcher: routing, worker deaths, watchdog (host.h: its state)
 *   hoststats.c  what the dispatcher tells about tenants, workers, memory
 *   tenants.c  making tenants: templates, clones, scripts from a directory
 *   worker.c   the worker processes
 *   proto.c    the line protocol over a Unix socket (server and client)
 *   loadgen.c  the built-in load generator and its request mix
 *   demo.c     `vmc-lua --demo` (what `make run` shows)
 *   main.c     the command line;  util.c  clock and sizes
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

#define VL_LINE_MAX   16384   /* longest request or reply line, without the newline */
#define VL_NAME_MAX   63      /* longest tenant name */
#define VL_MAX_WORKERS 64     /* vmc-mode worker processes */
#define VL_DEPTH      4       /* requests queued in one worker at a time */

/* -------------------------------------------------------------- sandbox.c */

/* The outcome of one request: err = 0 and the value handle() returned, or
 * err = 1 and the error message.  One line: control characters become
 * spaces; longer text is cut at VL_LINE_MAX - 8 bytes. */
struct vl_reply {
	int    err;
	size_t len;
	char   text[VL_LINE_MAX];
};

void vl_reply_set(struct vl_reply *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The prefix of print() lines on stderr, e.g. "w1 counter". Process-local. */
void vl_log_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Open the sandbox in a fresh state: base (without dofile, loadfile; load
 * takes text chunks only), string, table, math, utf8, coroutine; print goes
 * to stderr with the log prefix.  Returns 0, or -1 with a message in err. */
int vl_sandbox_open(lua_State *L, char *err, size_t n);

/* Run chunk src (the tenant's script, text only) and check that it
 * defines a global function handle.  Returns 0 or -1 with a message. */
int vl_sandbox_load(lua_State *L, const char *name, const char *src, size_t len,
		    char *err, size_t n);

/* Call handle(body) in protected mode and put the outcome in *r. */
void vl_sandbox_call(lua_State *L, const char *body, size_t len, struct vl_reply *r);

/* --------------------------------------------------------------- tenant.c */

/* With a VM attached in this process: create a sandboxed lua_State in the
 * VM's heap and store it in *vmc_vm_root(c).  Returns 0 or -1 (err). */
int vl_vm_new_state(vmc_t *c, char *err, size_t n);

/* The lua_State of the attached VM (NULL if it has none), made ready to
 * run: the allocator is pointed at c. */
lua_State *vl_vm_state(vmc_t *c);

/* Attach VM vm (retrying while another worker has it: EBUSY), run
 * handle(body), detach.  Always fills *r.  Returns 0 or the attach error. */
int vl_vm_request(vmc_t *c, uint32_t vm, const char *body, size_t len, struct vl_reply *r);

/* Lua's own count of its bytes and the heap's bytes in use, for VM vm
 * (attaches and detaches it). */
int vl_vm_memory(vmc_t *c, uint32_t vm, uint64_t *lua_bytes, uint64_t *heap_in_use);

/* ---------------------------------------------------------------- plain.c */

/* A sandboxed state on malloc that fails allocations beyond `limit` bytes
 * (the same rule a VM's limit makes), or NULL (err). */
lua_State *vl_plain_new(uint64_t limit, char *err, size_t n);
void vl_plain_close(lua_State *L);

/* ----------------------------------------------------------------- host.c */

enum vl_mode {
	VL_VMC     = 0,  /* every tenant in its own VM; any worker serves any tenant */
	VL_ONEPROC = 1,  /* baseline: all tenants in the dispatcher, malloc, no isolation */
	VL_PROCS   = 2,  /* baseline: one process per tenant (malloc), the usual isolation */
};

struct vl_host_opts {
	int         mode;          /* enum vl_mode */
	const char *name;          /* container name; NULL: "vmc-lua-<pid>" */
	int         private_c;     /* 1: an unnamed container (forked workers only) */
	int         workers;       /* VL_VMC: worker processes; 0 runs requests in the dispatcher */
	int         isolation;     /* 1 strict, 0 lazy (vmc/memory_isolation) */
	int         clone;         /* 1: new tenants are clones of a template VM */
	uint64_t    pool_size;     /* bytes; all of it is funded */
	uint64_t    limit;         /* default tenant memory limit, bytes */
	const char *page_kind;     /* NULL: the profile's (auto) */
	int         timeout_ms;    /* kill -9 a worker whose request runs longer; 0: never */
	int         quiet;         /* 1: no notices on stderr */
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

/* Stop the workers, close and destroy the container, free the host. */
void vl_host_free(struct vl_host *h);

/* Add tenant `name` running script src with memory limit `limit` (0: the
 * default).  Returns its index or -1 (err). */
int vl_host_add(struct vl_host *h, const char *name, const char *src, size_t len,
		uint64_t limit, char *err, size_t n);

/* Add tenant `name` running the script in file `path`; a first-lines
 * comment "-- vmc-lua: limit = 4M" sets its limit.  Index or -1 (err). */
int vl_host_add_file(struct vl_host *h, const char *name, const char *path, char *err,
		     size_t n);

/* Add every DIR/NAME.lua as tenant NAME (vl_host_add_file), in name
 * order.  Returns the count or -1. */
int vl_host_add_dir(struct vl_host *h, const char *dir, char *err, size_t n);

/* VL_VMC: tenant `name` becomes a copy of tenant src (vmc_vm_clone). */
int vl_host_clone(struct vl_host *h, const char *src, const char *name, char *err, size_t n);

/* Queue a request (pin: a worker index, or -1 for any).  done is called
 * exactly once, possibly before this returns. */
void vl_host_submit(struct vl_host *h, const char *tenant, size_t tlen, const char *body,
		    size_t blen, int pin, vl_done_fn *done, void *arg);

/* Run one request to completion (drives the host's events meanwhile). */
int vl_host_call(struct vl_host *h, const char *tenant, const char *body, int pin,
		 struct vl_reply *r);

/* The event loop's share: fill pfd[0..] with the workers' sockets (returns
 * how many) and lower *timeout_ms to the next watchdog deadline; after
 * poll(), hand the same entries to vl_host_events. */
int  vl_host_pollfds(struct vl_host *h, struct pollfd *pfd, int max, int *timeout_ms);
void vl_host_events(struct vl_host *h, const struct pollfd *pfd, int n);

/* Called in every child the host forks, before anything else (the server
 * closes its sockets there). */
void vl_host_set_atfork(struct vl_host *h, void (*fn)(void *), void *arg);

/* Introspection for the demo, the tests and the benchmark. */
struct vl_tenant_info {
	const char *name;
	uint32_t    vm;          /* VL_VMC */
	int         orphaned;
	uint64_t    limit;
	uint64_t    served;
	uint64_t    by_worker[VL_MAX_WORKERS];
};
vmc_t      *vl_host_vmc(struct vl_host *h);
const char *vl_host_name(struct vl_host *h);
int   vl_host_ntenants(struct vl_host *h);
int   vl_host_tenant(struct vl_host *h, int i, struct vl_tenant_info *out);
int   vl_host_find(struct vl_host *h, const char *name);
int   vl_host_nworkers(struct vl_host *h);
pid_t vl_host_worker_pid(struct vl_host *h, int w);
int   vl_host_busy(struct vl_host *h);   /* requests queued or in flight */
/* Attach figures summed over the worker slots (or the dispatcher's own
 * slot when it runs the requests itself). */
int   vl_host_attach_stats(struct vl_host *h, vmc_attach_stats_t *out);
/* Sums over the dispatcher and its workers (kB): VmRSS (/proc/PID/status),
 * Pss and its shared-memory part Pss_Shmem (/proc/PID/smaps_rollup). */
void  vl_host_memory(struct vl_host *h, uint64_t *rss_kb, uint64_t *pss_kb,
		     uint64_t *pss_shmem_kb);
/* Tenant-init timings: median µs of `samples` from-scratch inits
 * (vmc_vm_create, attach, lua_newstate, libraries, detach) and clones of
 * the template (vmc_vm_clone). */
int   vl_host_init_times(struct vl_host *h, int samples, double *scratch_us, double *clone_us);

/* ---------------------------------------------------------------- worker.c */

/* The body of a worker process (never returns).  tenant >= 0: a
 * VL_PROCS process that serves that tenant only, from a plain state. */
void vl_worker_main(struct vl_host *h, int index, int fd, int tenant) __attribute__((noreturn));

/* Worker <-> dispatcher messages (SOCK_SEQPACKET: one message per packet).
 * Request: header, tenant name (tlen bytes), body (len bytes).
 * Reply:   header (status 0 OK, 1 ERR), text (len bytes). */
struct vl_msg {
	uint32_t id;
	uint32_t vm;
	int32_t  status;
	uint16_t tlen, pad;
	uint32_t len;
};
#define VL_MSG_MAX (sizeof(struct vl_msg) + VL_NAME_MAX + 1 + VL_LINE_MAX)

/* ----------------------------------------------------------------- proto.c */

/* Listen on Unix socket `path` (a stale socket file is replaced; mode
 * 0600).  Returns the fd or -1 (err). */
int vl_listen(const char *path, char *err, size_t n);

/* Serve lines "TENANT BODY" -> "OK TEXT" / "ERR TEXT" on listening socket
 * lfd until stopfd becomes readable or hangs up.  Returns 0 or -1. */
int vl_serve(struct vl_host *h, int lfd, int stopfd);

/* Client side: connect to `path`; returns fd or -1 (errno). */
int vl_connect(const char *path);

/* ---------------------------------------------------------------- loadgen.c */

enum vl_kind { VL_K_OTHER, VL_K_COUNTER, VL_K_WORDS, VL_K_MEMHOG };

#define VL_LG_TENANTS 256
struct vl_mix {
	int n;
	int overlimit;          /* 1 in this many memhog requests is over its limit; 0: none */
	struct { char name[VL_NAME_MAX + 1]; int kind; } t[VL_LG_TENANTS];
};

/* The request mix over the host's tenants: the kind of each comes from
 * its name (counter*, wordfreq*, memhog*; anything else gets "ping");
 * overlimit = 8. */
void vl_mix_from_host(struct vl_mix *m, struct vl_host *h);

struct vl_lg_result {
	uint64_t sent, ok, err;
	uint64_t expected_err;      /* memhog requests over the limit that failed as they should */
	uint64_t unexpected;        /* replies that were not what the mix expects */
	char     first_unexpected[256];
	double   secs;
	uint64_t lat_hist[32];      /* request round trips, [k]: [2^k, 2^(k+1)) ns */
	uint64_t incr_ok[VL_LG_TENANTS]; /* counter increments that succeeded, by tenant */
};

/* Drive `requests` requests of mix m over `conns` connections to `path`
 * (each connection has one request in flight).  Blocking; 0 or -1. */
int vl_loadgen(const char *path, const struct vl_mix *m, int requests, int conns,
	       uint64_t seed, struct vl_lg_result *res);

/* Run vl_loadgen in a forked child.  *stopfd becomes readable when the
 * child is done: hand it to vl_serve, then collect the result with
 * vl_loadgen_wait (which also reaps the child and closes stopfd).
 * Returns the child's pid or -1. */
pid_t vl_loadgen_spawn(struct vl_host *h, const char *path, const struct vl_mix *m,
		       int requests, int conns, uint64_t seed, int *stopfd);
int vl_loadgen_wait(pid_t pid, int stopfd, struct vl_lg_result *res);   /* 0 or -1 */

/* ------------------------------------------------------------------ demo.c */

struct vl_demo_opts {
	const char *tenants;     /* directory of *.lua tenants */
	int workers, requests, conns;
	const char *page_kind;
};
int vl_demo(const struct vl_demo_opts *o);

/* ------------------------------------------------------------------ util */
double   vl_now(void);        /* CLOCK_MONOTONIC seconds */
uint64_t vl_now_ns(void);
int      vl_parse_size(const char *s, uint64_t *out);   /* 4096, 64K, 8M, 1G */

#endif
