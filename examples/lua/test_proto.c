/*
 * test_proto.c - the protocol over a real socket, and the dispatch rules
 * (ctest lua_NAME):
 *   halfclose  a client that shuts down its writing side after its lines gets
 *              every reply, then EOF; a last line without LF is a line
 *   malformed  empty lines, NUL and control bytes, an overlong line, unknown
 *              tenants: each line one ERR reply, in its place
 *   pipeline   300 pipelined lines over 10 tenants on one connection: the
 *              replies come in the order of the lines
 *   control    stats (text and JSON) count what happened; reload, reset, help
 *              and bad commands on the control socket
 *   batch      64 queued requests of one tenant take a few attachments (batches
 *              of 16); with --batch 1, one each; the order holds either way
 *   affinity   on: a tenant's sequential requests stay on its worker; off: they
 *              spread over the workers
 */
#include "test_util.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char counter_lua[] =
	"n = 0\n"
	"function handle(b)\n"
	"  n = n + 1\n"
	"  if b:match('^work ') then local x = 0 for i = 1, tonumber(b:sub(6)) do x = x + i end end\n"
	"  return n\n"
	"end\n";

static const char echo_lua[] =
	"function handle(b)\n"
	"  local x = 0 for i = 1, (#b % 7) * 20000 do x = x + i end\n"
	"  return NAME .. ' ' .. b\n"
	"end\n";

static struct vl_host *proto_host(void)
{
	struct vl_host *h = tu_host(2, 1, 0);
	tu_add(h, "counter", counter_lua, 0);
	return h;
}

/* Expect exactly `want` from sending `send` (half-closed after it). */
static int exchange(const char *path, const char *send, size_t len, const char *want)
{
	static char got[1 << 16];
	int fd = vl_connect(path);
	if (fd < 0)
		return 1;
	size_t n = tu_exchange(fd, send, len, 1, (size_t)-1, got, sizeof got);
	close(fd);
	if (n == strlen(want) && !memcmp(got, want, n))
		return 0;
	fprintf(stderr, "sent '%.60s...': got\n%s\nwanted\n%s\n", send, got, want);
	return 1;
}

static int halfclose_client(const char *path, const char *ctl, void *arg)
{
	(void)ctl;
	(void)arg;
	/* the work makes the replies come long after the EOF */
	static const char a[] = "counter work 300000\ncounter work 300000\ncounter";
	return exchange(path, a, sizeof a - 1, "OK 1\nOK 2\nOK 3\n") ||
	       exchange(path, "", 0, "");
}

/* Serve a host with the tenant counter to client; what: what failed if not 0. */
static void over_socket(int (*client)(const char *, const char *, void *), const char *what)
{
	struct vl_host *h = proto_host();
	CHECK(tu_serve(h, client, NULL) == 0, "%s", what);
	vl_host_free(h);
}

static void t_halfclose(void)
{
	over_socket(halfclose_client, "replies lost after a half-close");
	printf("halfclose: every reply came after the client's EOF, then the server closed\n");
}

static int malformed_client(const char *path, const char *ctl, void *arg)
{
	static char buf[40000];
	static const char head[] = "\n\0x\na\001b c\nnobody x\n../x y\n";
	static const char tail[] = "\ncounter\r\n\r\ncounter x\xc3\xa9\n\177\n";
	size_t n = 0;
	(void)arg;
	memcpy(buf, head, sizeof head - 1);
	n += sizeof head - 1;
	memset(buf + n, 'a', 20000);
	n += 20000;
	memcpy(buf + n, tail, sizeof tail - 1);
	n += sizeof tail - 1;
	return exchange(path, buf, n,
			"ERR empty line: send TENANT SP BODY\n"
			"ERR byte 0x00 at offset 0 is not text: a request is a line TENANT SP BODY\n"
			"ERR byte 0x01 at offset 1 is not text: a request is a line TENANT SP BODY\n"
			"ERR unknown tenant 'nobody'\n"
			"ERR unknown tenant '../x'\n"
			"ERR line longer than 16384 bytes (dropped)\n"
			"OK 1\n"
			"ERR empty line: send TENANT SP BODY\n"
			"OK 2\n"
			"ERR byte 0x7f at offset 0 is not text: a request is a line TENANT SP BODY\n") ||
	       exchange(ctl, "\n", 1, "ERR empty line: send a command (`help` lists them)\n");
}

static void t_malformed(void)
{
	over_socket(malformed_client, "malformed lines");
	printf("malformed: each bad line got its ERR in its place\n");
}

#define PIPE_LINES 300

static int pipeline_client(const char *path, const char *ctl, void *arg)
{
	static char out[PIPE_LINES * 32], in[PIPE_LINES * 64];
	size_t n = 0;
	int fd = vl_connect(path), bad = 0;
	(void)ctl;
	(void)arg;
	for (int i = 0; i < PIPE_LINES; i++)
		n += (size_t)sprintf(out + n, "e%d %d\n", (i * 7) % 10, i);
	tu_exchange(fd, out, n, 0, PIPE_LINES, in, sizeof in);
	close(fd);
	char *line = in;
	for (int i = 0; i < PIPE_LINES && !bad; i++) {
		char want[64];
		int l = sprintf(want, "OK e%d %d\n", (i * 7) % 10, i);
		if (strncmp(line, want, (size_t)l)) {
			fprintf(stderr, "line %d: got '%.40s', wanted '%s'\n", i, line, want);
			bad = 1;
		}
		line += l;
	}
	return bad;
}

static void t_pipeline(void)
{
	struct vl_host *h = tu_host(2, 0, 0);
	char name[16], src[256];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "e%d", i);
		snprintf(src, sizeof src, "NAME = '%s'\n%s", name, echo_lua);
		tu_add(h, name, src, 0);
	}
	CHECK(tu_serve(h, pipeline_client, NULL) == 0, "replies out of order");
	vl_host_free(h);
	printf("pipeline: %d pipelined lines over 10 tenants answered in order\n", PIPE_LINES);
}

static int control_client(const char *path, const char *ctl, void *arg)
{
	static char got[1 << 16];
	int fd;
	(void)arg;
	if (exchange(path, "counter x\ncounter work 100000000\nnobody x\n", 42,
		     "OK 1\nERR CPU budget exceeded (5000000 Lua instructions per request)\n"
		     "ERR unknown tenant 'nobody'\n"))
		return 1;
	if ((fd = vl_connect(ctl)) < 0)
		return 1;
	tu_exchange(fd, "stats\nstats --json\nhelp\nbogus\n", 30, 1, (size_t)-1, got, sizeof got);
	close(fd);
	static const char *const want[] = {
		"\ncounter          ready              2       1         1          0",
		"\nworker ", "\n0 ", "\n1 ",
		("{\"name\":\"counter\",\"state\":\"ready\",\"message\":\"\",\"requests\":2,\"errors\":1,"
		 "\"budget_kills\":1,\"nomem\":0,\"orphans\":0"),
		"\"workers\":[{\"worker\":0,", "commands: stats",
		"\nERR unknown command 'bogus' (help lists them)\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(got, want[i])) {
			fprintf(stderr, "control: no '%s' in\n%s\n", want[i], got);
			return 1;
		}
	return exchange(ctl, "reset counter\nreload counter\nreset nobody\n", 42,
			"OK tenant 'counter' reset: a fresh state\n"
			"OK tenant 'counter' reloaded: its state kept, handle replaced\n"
			"ERR unknown tenant 'nobody'\n") ||
	       exchange(ctl, "hibernate counter\nhibernate counter\n", 36,
			"OK hibernated\nOK tenant 'counter' is hibernated already\n") ||
	       exchange(path, "counter x\n", 10, "OK 1\n");
}

static void t_control(void)
{
	struct vl_host_opts o;
	char dir[64], cmd[96];
	snprintf(dir, sizeof dir, "/tmp/vmc-lua-test-ctl-%d", (int)getpid());
	tu_opts(&o, 2, 1);
	o.budget = 5000000;
	o.hibernate_dir = dir;
	struct vl_host *h = tu_host_opts(&o);
	tu_add(h, "counter", counter_lua, 0);
	CHECK(tu_serve(h, control_client, NULL) == 0, "control socket");
	vl_host_free(h);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0, "%s", cmd);
	printf("control: stats and stats --json counted requests, errors, budget kills; reload, "
	       "reset, hibernate and bad commands answered\n");
}

/* 64 requests of one tenant queued at once: attaches and replies. */
static void burst(int batch)
{
	struct vl_host_opts o;
	struct vl_run_stats rs;
	struct tu_pending p[64];
	tu_opts(&o, 2, 0);
	o.batch = batch;
	struct vl_host *h = tu_host_opts(&o);
	tu_add(h, "counter", counter_lua, 0);
	memset(p, 0, sizeof p);
	vl_host_stats_reset(h);
	for (int i = 0; i < 64; i++)
		vl_host_submit(h, "counter", 7, "x", 1, -1, tu_record, &p[i]);
	for (double end = vl_now() + 20; !p[63].done && vl_now() < end;)
		tu_pump(h, 100);
	for (int i = 0; i < 64; i++)
		CHECK(p[i].done && atoi(p[i].r.text) == i + 1, "request %d: '%s'", i, p[i].r.text);
	vl_host_run_stats(h, &rs);
	CHECK(rs.requests == 64, "%llu requests", (unsigned long long)rs.requests);
	CHECK(batch == 1 ? rs.attaches == 64 : rs.attaches <= 16, "batch %d: %llu attaches", batch,
	      (unsigned long long)rs.attaches);
	vl_host_free(h);
	printf("batch %d: 64 queued requests in order, %llu attaches\n", batch,
	       (unsigned long long)rs.attaches);
}

static void t_batch(void)
{
	burst(VL_BATCH_MAX);
	burst(1);
}

static void t_affinity(void)
{
	for (int on = 1; on >= 0; on--) {
		struct vl_host_opts o;
		struct vl_tenant_info ti;
		tu_opts(&o, 2, 0);
		o.affinity = on;
		struct vl_host *h = tu_host_opts(&o);
		tu_add(h, "counter", counter_lua, 0);
		for (int i = 0; i < 20; i++)
			tu_call(h, "counter", "x", -1, 0, NULL, NULL);
		tu_info(h, "counter", &ti);
		CHECK(on ? !ti.by_worker[0] != !ti.by_worker[1] : ti.by_worker[0] && ti.by_worker[1],
		      "affinity %s: worker 0 served %llu, worker 1 %llu", on ? "on" : "off",
		      (unsigned long long)ti.by_worker[0], (unsigned long long)ti.by_worker[1]);
		vl_host_free(h);
		printf("affinity %s: workers served %llu and %llu of 20\n", on ? "on" : "off",
		       (unsigned long long)ti.by_worker[0], (unsigned long long)ti.by_worker[1]);
	}
}

int main(int argc, char **argv)
{
	static const struct tu_test tests[] = {
		{ "halfclose", t_halfclose }, { "malformed", t_malformed }, { "pipeline", t_pipeline },
		{ "control", t_control }, { "batch", t_batch }, { "affinity", t_affinity },
	};
	return tu_main(argc, argv, tests, (int)(sizeof tests / sizeof tests[0]));
}
