/*
 * main.c - the vmc-lua command line: serve, demo, client.
 */
#include "vmclua.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef VMC_LUA_TENANTS
#define VMC_LUA_TENANTS "examples/lua/tenants"
#endif

static const char usage[] =
"usage: vmc-lua --serve SOCKET [--tenants DIR] [--workers N] [options]\n"
"       vmc-lua --demo [--workers N] [--requests N] [--conns N] [--page-kind K]\n"
"       vmc-lua --client SOCKET\n"
"\n"
"A prefork multi-tenant Lua 5.4 host on vmc.  Each tenant is a Lua script that\n"
"defines handle(request); its lua_State and whole heap live in a VM of a vmc\n"
"container, so any worker can serve it: the worker attaches the VM, calls\n"
"handle(body), replies, detaches.  Tenant state persists across requests and\n"
"workers.\n"
"\n"
"  --serve SOCKET    serve on Unix socket SOCKET (mode 0600) until SIGINT/SIGTERM:\n"
"                      vmc-lua --serve /tmp/vmc-lua.sock --tenants DIR --workers 4\n"
"                    protocol, one line each way:\n"
"                      TENANT SP BODY LF  ->  \"OK \" RESULT LF  |  \"ERR \" MESSAGE LF\n"
"                      printf 'counter incr\\n' | vmc-lua --client /tmp/vmc-lua.sock\n"
"                    the container is named vmc-lua-PID (or --name): `vmcctl stat NAME`\n"
"                    shows the tenants as VMs of that name while it serves\n"
"  --demo            what `make run` shows: the sample tenants, 2 workers and the\n"
"                    built-in load generator, in strict then lazy isolation; prints\n"
"                    requests/s, attach p50/p99, affinity hits, memory per tenant,\n"
"                    and the counter's state surviving across workers; exit 0 if\n"
"                    every reply was as expected\n"
"  --client SOCKET   send each line of stdin, print each reply\n"
"\n"
"options:\n"
"  --tenants DIR     DIR/NAME.lua becomes tenant NAME (default " VMC_LUA_TENANTS ");\n"
"                    a line \"-- vmc-lua: limit = 4M\" at the top sets its memory limit\n"
"  --workers N       worker processes (default: the number of cores; demo: 2)\n"
"  --name NAME       the container's name (default vmc-lua-PID)\n"
"  --isolation M     strict (default: detach revokes access) or lazy\n"
"  --limit SIZE      default memory limit of a tenant (default 8M); a tenant that\n"
"                    exceeds it gets a Lua \"not enough memory\" error\n"
"  --pool SIZE       the container's pool, all funded (default 512M)\n"
"  --page-kind K     auto (default), hugetlb, thp or 4k\n"
"  --no-clone        make each tenant from scratch, not as a clone of a template\n"
"  --timeout SEC     kill -9 a worker whose request runs longer (default 10, 0 never);\n"
"                    its tenant is then orphaned and reported\n"
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

static int serve(const char *sock, const char *dir, struct vl_host_opts *ho)
{
	char err[512];
	struct vl_host *h = vl_host_new(ho, err, sizeof err);
	int lfd = -1, rc = 1, n;

	if (!h) {
		fprintf(stderr, "vmc-lua: %s\n", err);
		return 1;
	}
	if ((n = vl_host_add_dir(h, dir, err, sizeof err)) < 0 || vl_host_start(h, err, sizeof err) ||
	    (lfd = vl_listen(sock, err, sizeof err)) < 0 || pipe(stop_pipe)) {
		fprintf(stderr, "vmc-lua: %s\n", err);
		goto out;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "vmc-lua: serving %d tenants on %s with %d workers (%s isolation); "
		"container %s: `vmcctl stat %s`; SIGINT/SIGTERM stops\n", n, sock,
		ho->mode == VL_VMC ? ho->workers : vl_host_nworkers(h),
		ho->isolation ? "strict" : "lazy", vl_host_name(h), vl_host_name(h));
	for (int i = 0; i < vl_host_ntenants(h); i++) {
		struct vl_tenant_info ti;
		vl_host_tenant(h, i, &ti);
		fprintf(stderr, "vmc-lua:   tenant %s (limit %llu MiB)\n", ti.name,
			(unsigned long long)(ti.limit >> 20));
	}
	rc = vl_serve(h, lfd, stop_pipe[0]) ? 1 : 0;
	fprintf(stderr, "vmc-lua: stopped\n");
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(sock);
	}
	vl_host_free(h);
	return rc;
}

static int client(const char *sock)
{
	int fd = vl_connect(sock);
	char line[VL_LINE_MAX + 2], reply[VL_LINE_MAX + 8];
	size_t have = 0;

	if (fd < 0) {
		fprintf(stderr, "vmc-lua: %s: %s\n", sock, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof line, stdin)) {
		size_t len = strlen(line);
		if (!len || line[len - 1] != '\n')
			line[len++] = '\n';
		if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
			return 1;
		char *nl;
		while (!(nl = memchr(reply, '\n', have))) {
			ssize_t r = recv(fd, reply + have, sizeof reply - have, 0);
			if (r <= 0) {
				fprintf(stderr, "vmc-lua: the server closed the connection\n");
				return 1;
			}
			have += (size_t)r;
		}
		fwrite(reply, 1, (size_t)(nl - reply) + 1, stdout);
		fflush(stdout);
		have -= (size_t)(nl - reply) + 1;
		memmove(reply, nl + 1, have);
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct vl_host_opts ho;
	struct vl_demo_opts d = { VMC_LUA_TENANTS, 2, 4000, 8, NULL };
	const char *sock = NULL, *client_sock = NULL;
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
		} else if (!strcmp(a, "--serve")) {
			sock = val;
		} else if (!strcmp(a, "--client")) {
			client_sock = val;
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
		} else if (!strcmp(a, "--pool") && !vl_parse_size(val, &v)) {
			ho.pool_size = v;
		} else if (!strcmp(a, "--page-kind")) {
			ho.page_kind = d.page_kind = val;
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
		return client(client_sock);
	if (demo && d.workers < 1) {
		fprintf(stderr, "vmc-lua: the demo needs at least one worker\n");
		return 2;
	}
	if (demo)
		return vl_demo(&d) ? 1 : 0;
	if (sock)
		return serve(sock, d.tenants, &ho);
	fputs(usage, stderr);
	return 2;
}
