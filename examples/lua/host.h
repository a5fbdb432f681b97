/*
 * host.h - the dispatcher's private state, shared by host.c (routing,
 * workers, deaths) and tenants.c (making tenants).  Process-local: nothing
 * here is in shared memory.
 */
#ifndef VMCLUA_HOST_H
#define VMCLUA_HOST_H

#include "vmclua.h"

struct req {
	struct req *next;
	uint32_t    id;
	int         tenant, pin;
	vl_done_fn *done;
	void       *arg;
	size_t      len;
	char        body[];
};

struct tenant {
	char       name[VL_NAME_MAX + 1];
	uint32_t   vm;            /* VL_VMC */
	int        orphaned;
	uint64_t   limit;
	int        owner;         /* worker with this tenant's requests in flight, or -1 */
	int        inflight;
	int        last;          /* worker that served it last (affinity), or -1 */
	uint32_t   blocked;       /* dispatch pass in which it could not be placed */
	int        proc;          /* VL_PROCS: its own worker, else -1 */
	lua_State *L;             /* VL_ONEPROC */
	char      *src;           /* VL_PROCS: the script, to start its process again */
	size_t     srclen;
	uint64_t   served, by_worker[VL_MAX_WORKERS];
};

struct worker {
	pid_t       pid;
	int         fd;           /* dispatcher's end of the socketpair, -1 when dead */
	int         alive, full, killed;
	int         tenant;       /* VL_PROCS: the tenant it serves, else -1 */
	struct req *head, *tail;  /* requests sent, in order */
	int         inflight;
	uint64_t    busy_since;   /* ns: when the request at head started */
};

struct tpl { uint64_t limit; uint32_t vm; };

struct vl_host {
	struct vl_host_opts o;
	vmc_t   *c;
	char     name[96];
	pid_t    pid;
	int      started, stopping, respawns;
	struct tenant *t;
	int      nt, capt;
	int     *hash;            /* open addressing: tenant index + 1, 0 empty */
	uint32_t hmask;
	struct worker *w;
	int      nw, capw;
	struct req *ph, *pt;      /* pending, in arrival order */
	uint32_t next_id, pass;
	int      in_dispatch, again;
	struct tpl tpl[16];
	int      ntpl;
	void   (*atfork)(void *);
	void    *atfork_arg;
	struct vl_reply reply;    /* scratch for the reply being delivered */
};

/* host.c */
int  host_spawn(struct vl_host *h, int wi, int tenant, char *err, size_t n);
int  host_new_worker(struct vl_host *h);   /* index of a fresh slot in h->w, or -1 */
void host_log(struct vl_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* tenants.c */
int  tenant_lookup(struct vl_host *h, const char *name, size_t len);
int  tenant_name_ok(const char *name);

#endif
