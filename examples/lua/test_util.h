/*
 * test_util.h - what vmc-lua's test programs share: a CHECK that stops the
 * program with a message, a host on a private container, requests with
 * checked replies, the host's event loop for a while, serving a socket to
 * a forked client, and the table of named tests each program runs.
 */
#ifndef VMCLUA_TEST_UTIL_H
#define VMCLUA_TEST_UTIL_H

#include "vmclua.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c, ...)                                                              \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #c); \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
			exit(1);                                                   \
		}                                                                  \
	} while (0)

#define MiB (1024ull * 1024)

/* Options for a test host: a private container of 64 MiB, quiet, no
 * watchdog, `workers` workers, isolation `iso`. */
void tu_opts(struct vl_host_opts *o, int workers, int iso);
struct vl_host *tu_host_opts(const struct vl_host_opts *o);   /* made and started */
struct vl_host *tu_host(int workers, int iso, int timeout_ms);

/* Add tenant `name` running src (limit 0: the default); returns its index. */
int tu_add(struct vl_host *h, const char *name, const char *src, uint64_t limit);

/* One request; checks the outcome (want: a substring, or NULL), copies
 * the reply to *out if out.  Returns the worker that ran it. */
int tu_call(struct vl_host *h, const char *t, const char *body, int pin, int want_err,
	    const char *want, struct vl_reply *out);

/* A reply to come: tu_record (a vl_done_fn) fills it in. */
struct tu_pending { int done, worker; struct vl_reply r; };
void tu_record(void *arg, const struct vl_reply *r, int worker);

/* A maintenance operation (VL_OP_RELOAD, VL_OP_RESET) to its end; checks
 * the outcome like tu_call. */
void tu_admin(struct vl_host *h, int op, const char *name, int want_err, const char *want);

uint32_t tu_vm(struct vl_host *h, const char *name);
void     tu_info(struct vl_host *h, const char *name, struct vl_tenant_info *out);

/* Run the host's events for up to ms milliseconds (one poll). */
void tu_pump(struct vl_host *h, int ms);

/* Serve h on fresh sockets /tmp/vmc-lua-test-PID.sock (and .ctl) while a
 * forked child runs client(path, ctl, arg); returns the child's exit
 * status (0: its checks passed). */
int tu_serve(struct vl_host *h, int (*client)(const char *path, const char *ctl, void *arg),
	     void *arg);

/* Client side: send all of buf (then, if half, shut the writing side
 * down) while reading replies until `lines` LFs came or the server closed;
 * returns the bytes read into out (NUL-terminated). */
size_t tu_exchange(int fd, const char *buf, size_t len, int half, size_t lines, char *out,
		   size_t cap);

struct tu_test { const char *name; void (*fn)(void); };
/* Run the test named argv[1] ("all": every one).  Exit status. */
int tu_main(int argc, char **argv, const struct tu_test *tests, int n);

#endif
