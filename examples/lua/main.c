/*
 * main.c - the vmc-lua command line: serve, demo, client, control.
 */
#include "vmclua.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VMC_LUA_TENANTS
#define VMC_LUA_TENANTS "examples/lua/tenants"
#endif

static const char usage[] =
"usage: vmc-lua --serve SOCKET [--tenants DIR] [--workers N] [options]\n"
"       vmc-lua --client SOCKET\n"
"       vmc-lua --control SOCKET.ctl COMMAND...\n"
"       vmc-lua --demo [--workers N] [--requests N] [--conns N] [--page-kind K] [--granule G]\n"
"\n"
"A prefork multi-tenant Lua 5.4 host on vmc.  Each tenant is a Lua script that\n"
"defines handle(request); its lua_State and whole heap live in a VM of a vmc\n"
"container, so any worker can serve it: the worker attaches the VM, calls\n"
"handle(body), replies, detaches.  Tenant state persists across requests and\n"
"workers.\n"
"\n"
"  --serve SOCKET    serve on Unix socket SOCKET (mode 0600) until SIGINT/SIGTERM;\n"
"                    one line each way, any number of lines per connection:\n"
"                      TENANT SP BODY LF  ->  \"OK \" RESULT LF  |  \"ERR \" MESSAGE LF\n"
"                    the control socket is SOCKET.ctl (see --control); the\n"
"                    container is named vmc-lua-PID (or --name): `vmcctl stat NAME`\n"
"  --client SOCKET   send stdin, print a reply for each line; waits for them all\n"
"  --control SOCKET.ctl COMMAND\n"
"                    stats | stats --json | reload NAME | reset NAME | hibernate NAME | help\n"
"  --demo            what `make run` shows: the sample tenants, 2 workers and the\n"
"                    built-in load generator, in strict and lazy isolation and on\n"
"                    malloc in one process, side by side; exit 0 if every reply\n"
"                    was as expected\n"
"\n"
"options:\n"
"  --tenants DIR     DIR/NAME.lua becomes tenant NAME (default " VMC_LUA_TENANTS ");\n"
"                    \"-- vmc-lua: limit = 4M, budget = 20M\" at its top sets its memory\n"
"                    limit and CPU budget.  A script that does not load makes a broken\n"
"                    tenant (it answers ERR until `reload NAME`); the others serve\n"
"  --workers N       worker processes (default: the number of cores; demo: 2)\n"
"  --name NAME       the container's name (default vmc-lua-PID)\n"
"  --control-socket PATH  the control socket (default SOCKET.ctl)\n"
"  --isolation M     strict (default: detach revokes access) or lazy\n"
"  --limit SIZE      default memory limit of a tenant (default 8M); a tenant that\n"
"                    exceeds it gets a Lua \"not enough memory\" error\n"
"  --budget N        default CPU budget of a request in Lua instructions (default\n"
"                    50M; 0: none); beyond it the request ends with a Lua error\n"
"  --timeout SEC     kill -9 a worker whose request runs longer (default 10, 0 never):\n"
"                    for hangs inside C functions, where the budget cannot count\n"
"  --recover P       a tenant whose worker died while it was attached: keep (default:\n"
"                    its state, if a check of its heap and state passes, else reset),\n"
"                    reset (a fresh state from its template) or manual (it answers\n"
"                    ERR until `reset NAME`)\n"
"  --affinity on|off a tenant goes back to the worker that ran it last (default on)\n"
"  --batch N         requests of one tenant served in one attachment (1..16, default\n"
"                    16; 1: one attach per request)\n"
"  --pool SIZE       the container's pool, all funded (default 512M)\n"
"  --page-kind K     auto (default), hugetlb, thp or 4k\n"
"  --granule SIZE    the unit a tenant's memory grows by, on 4k pages: a power of\n"
"                    two from 4K to 2M (default 64K; hugetlb and thp: 2M)\n"
"  --hibernate-after SEC  a tenant idle this long (seconds, e.g. 30 or 0.5) goes to\n"
"                    an image file and its memory back to the pool; its next\n"
"                    request wakes it, byte for byte (default: never)\n"
"  --hibernate-dir DIR  where the images go (default: vmc's, /var/tmp/vmc; a tmpfs\n"
"                    such as /dev/shm is faster, but its images are memory too)\n"
"  --no-clone        make each tenant from scratch, not as a clone of a template\n"
"  --mode M          vmc (default); oneproc or procs: the baselines of bench_lua\n"
"                    (all tenants in the dispatcher on malloc; one process per tenant)\n"
"  --requests N      demo: requests per mode (default 4000)\n"
"  --conns N         demo: load generator connections (default 8)\n"
"\n"
"Environment: VMC_* profile overrides (see the vmc README), e.g. VMC_VERBOSE=0.\n";

static int stop_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	(void)sig;
	if (write(stop_pipe[1], "x", 1) < 0) {
		/* nothing to do: the loop stops on the first byte */
	}
}

static void list_tenants(struct vl_host *h)
{
	for (int i = 0; i < vl_host_ntenants(h); i++) {
		struct vl_tenant_info ti;
		vl_host_tenant(h, i, &ti);
		if (ti.state == VL_T_BROKEN)
			fprintf(stderr, "vmc-lua:   tenant %s FAILED TO LOAD (it answers ERR until "
				"`reload %s`): %s\n", ti.name, ti.name, ti.msg);
		else
			fprintf(stderr, "vmc-lua:   tenant %s (limit %llu MiB, budget %llu "
				"instructions)\n", ti.name, (unsigned long long)(ti.limit >> 20),
				(unsigned long long)ti.budget);
	}
}

static int serve(const char *sock, const char *ctl, const char *dir, struct vl_host_opts *ho)
{
	char err[1024], ctlpath[4096];
	struct vl_host *h = vl_host_new(ho, err, sizeof err);
	int lfd = -1, cfd = -1, rc = 1, n;

	if (!h) {
		fprintf(stderr, "vmc-lua: %s\n", err);
		return 1;
	}
	snprintf(ctlpath, sizeof ctlpath, "%s", ctl ? ctl : sock);
	if (!ctl)
		snprintf(ctlpath + strlen(ctlpath), sizeof ctlpath - strlen(ctlpath), ".ctl");
	if ((n = vl_host_add_dir(h, dir, err, sizeof err)) < 0 || vl_host_start(h, err, sizeof err) ||
	    (lfd = vl_listen(sock, err, sizeof err)) < 0 ||
	    (cfd = vl_listen(ctlpath, err, sizeof err)) < 0 || pipe(stop_pipe)) {
		fprintf(stderr, "vmc-lua: %s\n", err);
		goto out;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "vmc-lua: serving %d tenants on %s with %d workers (%s isolation); "
		"control: %s; container %s: `vmcctl stat %s`; SIGINT/SIGTERM stops\n", n, sock,
		ho->mode == VL_VMC ? ho->workers : vl_host_nworkers(h),
		ho->isolation ? "strict" : "lazy", ctlpath, vl_host_name(h), vl_host_name(h));
	list_tenants(h);
	rc = vl_serve(h, lfd, cfd, stop_pipe[0]) ? 1 : 0;
	fprintf(stderr, "vmc-lua: stopped\n");
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(sock);
	}
	if (cfd >= 0) {
		close(cfd);
		unlink(ctlpath);
	}
	vl_host_free(h);
	return rc;
}

/* The words after --control, as one command line. */
static int control(const char *path, int argc, char **argv)
{
	char line[512] = "";
	for (int i = 0; i < argc; i++)
		snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s", i ? " " : "", argv[i]);
	if (!*line) {
		fprintf(stderr, "vmc-lua: --control SOCKET.ctl needs a command (help lists them)\n");
		return 2;
	}
	return vl_control_client(path, line);
}

static int onoff(const char *v, int *out)
{
	if (strcmp(v, "on") && strcmp(v, "off"))
		return -1;
	*out = !strcmp(v, "on");
	return 0;
}

/* "30", "0.5", "2.5s": seconds, at most a day, to milliseconds (> 0). */
static int seconds_ms(const char *v, int *out)
{
	char *end;
	double sec = strtod(v, &end);
	if (end == v || (*end && strcmp(end, "s")) || !(sec > 0) || sec > 86400)
		return -1;
	*out = (int)(sec * 1000 + 0.5) ? (int)(sec * 1000 + 0.5) : 1;
	return 0;
}

static int recover_policy(const char *v, int *out)
{
	static const char *const names[] = { "keep", "reset", "manual" };
	for (int i = 0; i < 3; i++)
		if (!strcmp(v, names[i])) {
			*out = i;
			return 0;
		}
	return -1;
}

int main(int argc, char **argv)
{
	struct vl_host_opts ho;
	struct vl_demo_opts d = { VMC_LUA_TENANTS, 2, 4000, 8, NULL, NULL };
	const char *sock = NULL, *client_sock = NULL, *ctl = NULL;
	int demo = 0, workers = -1;
	uint64_t v;

	vl_host_opts_init(&ho);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		int used = 1;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage, stdout);
			return 0;
		} else if (!strcmp(a, "--demo")) {
			demo = 1;
			used = 0;
		} else if (!strcmp(a, "--no-clone")) {
			ho.clone = 0;
			used = 0;
		} else if (!val) {
			fprintf(stderr, "vmc-lua: %s: unknown option or missing value (--help)\n", a);
			return 2;
		} else if (!strcmp(a, "--control")) {
			return control(val, argc - i - 2, argv + i + 2);
		} else if (!strcmp(a, "--serve")) {
			sock = val;
		} else if (!strcmp(a, "--client")) {
			client_sock = val;
		} else if (!strcmp(a, "--control-socket")) {
			ctl = val;
		} else if (!strcmp(a, "--tenants")) {
			d.tenants = val;
		} else if (!strcmp(a, "--workers")) {
			workers = atoi(val);
		} else if (!strcmp(a, "--name")) {
			ho.name = val;
		} else if (!strcmp(a, "--isolation") && (!strcmp(val, "strict") || !strcmp(val, "lazy"))) {
			ho.isolation = !strcmp(val, "strict");
		} else if (!strcmp(a, "--limit") && !vl_parse_size(val, &v)) {
			ho.limit = v;
		} else if (!strcmp(a, "--budget") && !vl_parse_count(val, &v)) {
			ho.budget = v;
		} else if (!strcmp(a, "--recover") && !recover_policy(val, &ho.recover)) {
		} else if (!strcmp(a, "--affinity") && !onoff(val, &ho.affinity)) {
		} else if (!strcmp(a, "--batch") && atoi(val) >= 1 && atoi(val) <= VL_BATCH_MAX) {
			ho.batch = atoi(val);
		} else if (!strcmp(a, "--pool") && !vl_parse_size(val, &v)) {
			ho.pool_size = v;
		} else if (!strcmp(a, "--page-kind")) {
			ho.page_kind = d.page_kind = val;
		} else if (!strcmp(a, "--granule")) {
			ho.granule = d.granule = val;
		} else if (!strcmp(a, "--hibernate-after") && !seconds_ms(val, &ho.hibernate_after_ms)) {
		} else if (!strcmp(a, "--hibernate-dir")) {
			ho.hibernate_dir = val;
		} else if (!strcmp(a, "--timeout")) {
			ho.timeout_ms = atoi(val) * 1000;
		} else if (!strcmp(a, "--mode") && !strcmp(val, "vmc")) {
			ho.mode = VL_VMC;
		} else if (!strcmp(a, "--mode") && !strcmp(val, "oneproc")) {
			ho.mode = VL_ONEPROC;
		} else if (!strcmp(a, "--mode") && !strcmp(val, "procs")) {
			ho.mode = VL_PROCS;
		} else if (!strcmp(a, "--requests")) {
			d.requests = atoi(val);
		} else if (!strcmp(a, "--conns")) {
			d.conns = atoi(val);
		} else {
			fprintf(stderr, "vmc-lua: %s %s: bad option or value (--help)\n", a, val);
			return 2;
		}
		i += used;
	}
	if (workers >= 0)
		ho.workers = d.workers = workers;
	if (ho.workers < 0 || ho.workers > VL_MAX_WORKERS || d.requests < 1 || d.conns < 1) {
		fprintf(stderr, "vmc-lua: bad --workers (0..%d), --requests or --conns\n",
			VL_MAX_WORKERS);
		return 2;
	}
	if (client_sock)
		return vl_client(client_sock);
	if (demo && d.workers < 1) {
		fprintf(stderr, "vmc-lua: the demo needs at least one worker\n");
		return 2;
	}
	if (demo)
		return vl_demo(&d) ? 1 : 0;
	if (sock)
		return serve(sock, ctl, d.tenants, &ho);
	fputs(usage, stderr);
	return 2;
}
