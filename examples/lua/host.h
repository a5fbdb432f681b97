/*
 * host.h - the dispatcher's private state, shared by the files of the host:
 * host.c (workers, deaths, the event loop's share), dispatch.c (queues and
 * routing), maint.c (maintenance jobs), tenants.c (making tenants),
 * scripts.c (their scripts) and hoststats.c.  Process-local: nothing here is in shared memory.
 */
#ifndef VMCLUA_HOST_H
#define VMCLUA_HOST_H

#include "vmclua.h"

#define VL_JOBS     4        /* maintenance jobs running at once */
#define VL_SAMPLES  8192     /* attach times kept per worker (a ring) */

/* A request, or a maintenance operation (op != VL_OP_REQUEST), queued on
 * its tenant, then in flight on a worker. */
struct req {
	struct req *next;
	uint32_t    id;
	int         tenant, pin, op;
	int         batch_end;    /* the last request of the message it went in */
	vl_done_fn *done;         /* NULL: an operation the host queued itself */
	void       *arg;
	size_t      len;
	char        body[];
};

struct tenant {
	char       name[VL_NAME_MAX + 1];
	uint32_t   vm;            /* VL_VMC; VMC_NO_VM while it has none */
	int        state;         /* enum vl_tstate */
	char      *msg;           /* broken: why (malloc'ed) */
	uint64_t   limit, budget;
	char      *path;          /* its script file, or NULL */
	char      *src;           /* the script it runs */
	size_t     srclen;
	struct req *qh, *qt;      /* waiting: requests and operations, in order */
	int        rprev, rnext;  /* the run queue: tenants with something waiting */
	int        inrunq;
	int        owner;         /* worker with this tenant's requests in flight, or -1 */
	int        inflight;
	int        last;          /* worker that served it last (affinity), or -1 */
	int        job;           /* a maintenance job runs on it */
	int        proc;          /* VL_PROCS: its own worker, else -1 */
	int        hibernated;    /* its VM is an image file (hibernate.c) */
	int        hib_op;        /* hibernate operations queued or running */
	uint64_t   idle_since;    /* ns: its last request ended (or it was made) */
	uint64_t   hibernations, wakes;
	lua_State *L;             /* VL_ONEPROC */
	uint64_t   served, errors, budget_kills, nomem, orphans, recoveries, reloads;
	uint64_t   by_worker[VL_MAX_WORKERS];
};

struct worker {
	pid_t       pid;
	int         fd;           /* dispatcher's end of the socketpair, -1 when dead */
	int         alive, full, killed;
	int         tenant;       /* VL_PROCS: the tenant it serves, else -1 */
	struct req *head, *tail;  /* requests sent, in order */
	int         inflight;     /* requests sent and not answered */
	int         msgs;         /* messages (batches) sent and not answered */
	uint64_t    busy_since;   /* ns: when the request at head started */
	/* figures since the last vl_host_stats_reset */
	uint64_t    requests, attaches, hits, syscalls, minflt;
	uint64_t    seen_sys, seen_flt;   /* the process's counters in its last answer */
	uint32_t   *samples;      /* attach times, ns */
	uint64_t    nsamples;
};

struct job {
	pid_t       pid;          /* 0: the slot is free */
	int         fd;           /* read end of the result pipe */
	int         tenant, kind, killed;
	struct req *op;
	char       *src;          /* the script it loads (malloc'ed), or NULL */
	size_t      srclen;
	uint64_t    started;      /* ns */
};

struct tpl { uint64_t limit; uint32_t vm; };

struct vl_host {
	struct vl_host_opts o;
	vmc_t   *c;
	char     name[96];
	char    *dir;             /* the tenants' directory, or NULL */
	pid_t    pid;
	int      started, stopping, respawns;
	struct tenant *t;
	int      nt, capt;
	int     *hash;            /* open addressing: tenant index + 1, 0 empty */
	uint32_t hmask;
	struct worker *w;
	int      nw, capw;
	int     *fdmap;           /* fd -> worker index, or -2 - job slot; -1: neither */
	int      nfdmap;
	int      rq_head, rq_tail, rq_n;   /* the run queue of tenants */
	int      queued;          /* requests and operations waiting in tenants' queues */
	uint32_t next_id;
	unsigned rr;              /* round robin start when affinity is off */
	int      in_dispatch, again;
	struct job job[VL_JOBS];
	struct tpl tpl[16];
	int      ntpl;
	void   (*atfork)(void *);
	void    *atfork_arg;
	int      hib_ops;         /* hibernate operations queued or running */
	int      hib_cursor;      /* the tenant the next scan starts at */
	uint64_t hib_next;        /* ns: the next scan for idle tenants; UINT64_MAX: when
				   * an operation ends */
	struct worker own;        /* the figures of requests run in the dispatcher itself */
	struct vl_reply reply;    /* scratch for the reply being delivered */
};

/* host.c */
int   host_spawn(struct vl_host *h, int wi, int tenant, char *err, size_t n);
int   host_new_worker(struct vl_host *h);   /* index of a fresh slot in h->w, or -1 */
/* Count one answer in w's figures (host.c; drain and the dispatcher's own
 * runs); request 0: an operation's answer (a hibernation), whose system
 * calls and faults are no request's. */
void  host_account(struct worker *w, const struct vl_ans *a, int request);
pid_t host_fork(struct vl_host *h);         /* fork; the child closes the host's sockets */
void  host_fd_set(struct vl_host *h, int fd, int who);   /* fdmap[fd] = who */
void  host_log(struct vl_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  host_describe(int status, char *buf, size_t n);   /* "was killed by signal 9 (Killed)" */

/* dispatch.c */
void  host_dispatch(struct vl_host *h);
/* Take worker wi's answers; -1: it is gone (or sent garbage: then it is killed). */
int   host_drain(struct vl_host *h, int wi);
void  host_push_front(struct vl_host *h, struct req *r);   /* first in its tenant's queue */
struct req *host_dequeue(struct vl_host *h, struct tenant *t);   /* the head of t's queue */
void  host_queue_op(struct vl_host *h, int ti, int op, vl_done_fn *done, void *arg);
void  host_enqueue(struct vl_host *h, struct req *r);     /* last in its tenant's queue */
struct req *host_new_req(struct vl_host *h, int ti, int op, const char *body, size_t len,
			 vl_done_fn *done, void *arg);
/* Deliver reply text to r's done (counted for its tenant) and free r. */
void  host_finish(struct vl_host *h, struct req *r, const struct vl_reply *rep, int worker);
void  host_fail(struct vl_host *h, struct req *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* hibernate.c */
/* Queue a hibernation of tenant ti (counted until host_hibernate_done). */
int   host_hibernate_queue(struct vl_host *h, int ti, vl_done_fn *done, void *arg);
/* Scan for idle tenants when it is time; lower *timeout_ms to the next scan. */
void  host_hibernate_tick(struct vl_host *h, uint64_t now, int *timeout_ms);
/* The hibernation at the head of ti's queue may run (1), or it was answered
 * and dequeued: already hibernated, no state, requests behind it (0). */
int   host_hibernate_admit(struct vl_host *h, int ti);
/* A hibernation ended (from host_finish). */
void  host_hibernate_done(struct vl_host *h, const struct req *r, const struct vl_reply *rep);
/* Tenant t is about to be attached: if it was hibernated, this wakes it. */
void  host_waking(struct tenant *t);

/* maint.c */
int   maint_start(struct vl_host *h, int ti);   /* the op at the head of ti's queue; -1: later */
void  maint_done(struct vl_host *h, int j);     /* job j's pipe is readable or hung up */
void  maint_orphaned(struct vl_host *h, int ti);   /* the recovery policy */
void  maint_watchdog(struct vl_host *h, uint64_t now, int *timeout_ms);
void  maint_stop(struct vl_host *h);

/* tenants.c */
int   tenant_lookup(struct vl_host *h, const char *name, size_t len);
int   tenant_name_ok(const char *name, size_t len);
/* A fresh VM for tenant ti (the old one destroyed): a clone of the template
 * for its limit, or a state made from scratch.  0 or -1 (err). */
int   tenant_fresh_vm(struct vl_host *h, int ti, char *err, size_t n);
/* Register tenant `name` with no state yet (broken: "not loaded yet");
 * its script comes from `path`; limit and budget 0: the host's.  Index or -1. */
int   tenant_register(struct vl_host *h, const char *name, const char *path, uint64_t limit,
		      uint64_t budget, char *err, size_t n);
/* 0 if `name` is a good name and no tenant has it yet, else -1 (err). */
int   tenant_check(struct vl_host *h, const char *name, char *err, size_t n);

/* scripts.c */
/* The tenant's script: its file read again, or a copy of the source it
 * runs.  Returns malloc'ed text (len in *len) or NULL (err). */
char *tenant_script(struct vl_host *h, int ti, int from_file, size_t *len, char *err,
		    size_t n);
void  tenant_set_msg(struct tenant *t, const char *msg);

#endif
