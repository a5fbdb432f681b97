/*
 * control.c - the commands of the control socket (vmc-lua --serve SOCKET
 * listens on SOCKET.ctl too, mode 0600; `vmc-lua --control SOCKET.ctl CMD`
 * or any line client talks to it):
 *
 *   stats           per tenant: state, requests, errors, CPU-budget kills,
 *                   memory errors, orphan events, recoveries, reloads, memory
 *                   committed and limit; per worker: requests, attaches,
 *                   affinity hits, attach p50/p99 in µs, system calls and
 *                   page faults per request.  Ends with an empty line.
 *   stats --json    the same as one line of JSON
 *   reload NAME     run NAME's script again (its file), in its state
 *   reset NAME      give NAME a fresh state from its template
 *   hibernate NAME  put NAME's VM into an image file now (its next request
 *                   wakes it); needs --mode vmc
 *   help            this list
 *
 * reload, reset and hibernate answer "OK ..." or "ERR ..." when they are over (the
 * tenant's requests queued before them are served first).
 */
#include "vmclua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
	"commands: stats | stats --json | reload NAME | reset NAME | hibernate NAME | help\n"
	"  stats         per tenant and per worker figures (a table; ends with an empty line)\n"
	"  stats --json  the same, one line of JSON\n"
	"  reload NAME   read NAME's script again and run it in its state (globals stay)\n"
	"  reset NAME    a fresh state for NAME: a clone of its template, and the script\n"
	"  hibernate NAME  NAME's memory to an image file now; its next request wakes it\n";

struct pending { vl_text_fn *done; void *arg; };

static void op_done(void *arg, const struct vl_reply *r, int worker)
{
	struct pending *x = arg;
	char buf[VL_LINE_MAX + 8];
	int n = snprintf(buf, sizeof buf, "%s%.*s\n", r->err ? "ERR " : "OK ", (int)r->len, r->text);
	(void)worker;
	x->done(x->arg, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
	free(x);
}

static void say(vl_text_fn *done, void *arg, const char *fmt, const char *a)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, fmt, a);
	done(arg, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void vl_control(struct vl_host *h, const char *line, size_t len, vl_text_fn *done, void *arg)
{
	char buf[256], cmd[32] = "", name[VL_NAME_MAX + 2] = "", extra[2] = "";
	snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
	int words = sscanf(buf, "%31s %64s %1s", cmd, name, extra);

	if (!strcmp(cmd, "help") && words == 1) {
		done(arg, help, sizeof help - 1);
	} else if (!strcmp(cmd, "stats") && (words == 1 || (words == 2 && !strcmp(name, "--json")))) {
		char *rep = vl_host_report(h, words == 2);
		if (rep)
			done(arg, rep, strlen(rep));
		else
			say(done, arg, "ERR %s\n", "out of memory");
		free(rep);
	} else if ((!strcmp(cmd, "reload") || !strcmp(cmd, "reset") || !strcmp(cmd, "hibernate")) &&
		   words == 2) {
		struct pending *x = malloc(sizeof *x);
		if (!x) {
			say(done, arg, "ERR %s\n", "out of memory");
			return;
		}
		*x = (struct pending){ done, arg };
		vl_host_admin(h, !strcmp(cmd, "reload") ? VL_OP_RELOAD :
			      !strcmp(cmd, "reset") ? VL_OP_RESET : VL_OP_HIBERNATE, name, op_done, x);
	} else {
		say(done, arg, "ERR unknown command '%s' (help lists them)\n", buf);
	}
}
