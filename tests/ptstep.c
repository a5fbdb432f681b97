/*
 * ptstep.c - the kill sweep of ptstep.h: a dry run records the instructions
 * an operation executes in this binary, then a fresh child is stopped at
 * each sampled one by a breakpoint (int3) and killed there.
 */
#include "ptstep.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <sys/user.h>

static uintptr_t text_lo, text_hi, load_base;

static int find_text(void)
{
	char exe[512], line[1024];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	FILE *f = fopen("/proc/self/maps", "r");
	if (n <= 0 || !f)
		return -1;
	exe[n] = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8], path[512] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %511s", &lo, &hi, perm, path) >= 3 &&
		    !strcmp(path, exe) && (!load_base || lo < load_base))
			load_base = lo;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %511s", &lo, &hi, perm, path) >= 3 &&
		    perm[2] == 'x' && !strcmp(path, exe)) {
			text_lo = lo;
			text_hi = hi;
		}
	}
	fclose(f);
	return text_hi ? 0 : -1;
}

/* Print, for failing instruction addresses of this binary, how many
 * failed in each function (one addr2line run, if addr2line is there). */
static void summarize(const uintptr_t *ips, long n)
{
	char cmd[256], fn[200], line[300], seen[64][200];
	int count[64], nseen = 0;
	char tmp[] = "/tmp/vmc_crash_ips_XXXXXX";
	int fd = mkstemp(tmp);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f)
		return;
	for (long k = 0; k < n; k++)
		fprintf(f, "%#lx\n", (unsigned long)(ips[k] - load_base));
	fclose(f);
	snprintf(cmd, sizeof cmd, "addr2line -f -e /proc/%d/exe < %s 2>/dev/null", (int)getpid(),
		 tmp);
	if ((f = popen(cmd, "r"))) {
		while (fgets(fn, sizeof fn, f) && fgets(line, sizeof line, f)) {
			fn[strcspn(fn, "\n")] = 0;
			line[strcspn(line, " \n")] = 0;   /* file:line */
			const char *src = strstr(line, "src/");
			char key[200];
			snprintf(key, sizeof key, "%.100s (%.90s)", fn, src ? src : line);
			int i = 0;
			while (i < nseen && strcmp(seen[i], key))
				i++;
			if (i == nseen && nseen < 64) {
				snprintf(seen[nseen], sizeof seen[0], "%s", key);
				count[nseen++] = 0;
			}
			if (i < nseen)
				count[i]++;
		}
		pclose(f);
		for (int i = 0; i < nseen; i++)
			fprintf(stderr, "    %4d kill points in %s\n", count[i], seen[i]);
	}
	unlink(tmp);
}

static int in_text(uintptr_t ip)
{
	return ip >= text_lo && ip < text_hi;
}

/* Wait for a stop; 1 if stopped, 0 if it ended (status in *st). */
static int wait_stop(pid_t pid, int *st)
{
	if (waitpid(pid, st, 0) != pid)
		return 0;
	return WIFSTOPPED(*st);
}

struct bp { uintptr_t addr; long orig; };

static int bp_set(pid_t pid, struct bp *b, uintptr_t addr)
{
	errno = 0;
	b->addr = addr;
	b->orig = ptrace(PTRACE_PEEKTEXT, pid, (void *)addr, NULL);
	if (errno)
		return -1;
	return (int)ptrace(PTRACE_POKETEXT, pid, (void *)addr, (void *)((b->orig & ~0xffL) | 0xcc));
}

static int bp_clear(pid_t pid, struct bp *b, struct user_regs_struct *r)
{
	if (ptrace(PTRACE_POKETEXT, pid, (void *)b->addr, (void *)b->orig))
		return -1;
	r->rip = b->addr;
	return (int)ptrace(PTRACE_SETREGS, pid, NULL, r);
}

/* Run to the breakpoint at addr (already in place); 1 if hit. */
static int run_to(pid_t pid, struct bp *b, struct user_regs_struct *r, int *st)
{
	for (;;) {
		if (ptrace(PTRACE_CONT, pid, NULL, NULL) || !wait_stop(pid, st))
			return 0;
		if (WSTOPSIG(*st) != SIGTRAP)
			return 0;
		if (ptrace(PTRACE_GETREGS, pid, NULL, r))
			return 0;
		if (r->rip == b->addr + 1)
			return 1;
	}
}

/* The dry run: the instructions executed in our text, in order. */
static long record(pid_t pid, uintptr_t *ips, long cap, int *status)
{
	struct user_regs_struct r;
	int st;
	long k = 0;

	*status = -1;
	if (!wait_stop(pid, &st))
		return -1;
	for (;;) {
		if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) || !wait_stop(pid, &st))
			break;
		if (ptrace(PTRACE_GETREGS, pid, NULL, &r))
			return -1;
		if (in_text(r.rip)) {
			if (k < cap)
				ips[k] = r.rip;
			k++;
			continue;
		}
		/* left our text: if it was a call, run the callee natively */
		errno = 0;
		long ret = ptrace(PTRACE_PEEKDATA, pid, (void *)r.rsp, NULL);
		if (errno || !in_text((uintptr_t)ret))
			continue;          /* e.g. back in qsort from a comparator */
		struct bp b;
		if (bp_set(pid, &b, (uintptr_t)ret))
			return -1;
		if (!run_to(pid, &b, &r, &st))
			break;
		if (bp_clear(pid, &b, &r))
			return -1;
		if (k < cap)
			ips[k] = r.rip;
		k++;
	}
	if (WIFEXITED(st))
		*status = WEXITSTATUS(st);
	return k;
}

/* Run a fresh child to the m-th execution of ip. 1 if it got there. */
static int run_to_nth(pid_t pid, uintptr_t ip, long m)
{
	struct user_regs_struct r;
	struct bp b;
	int st;

	if (!wait_stop(pid, &st) || bp_set(pid, &b, ip))
		return 0;
	for (long hit = 1;; hit++) {
		if (!run_to(pid, &b, &r, &st))
			return 0;
		if (hit == m)
			return 1;
		/* step over the breakpoint and put it back */
		if (bp_clear(pid, &b, &r) || ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) ||
		    !wait_stop(pid, &st) || bp_set(pid, &b, ip))
			return 0;
	}
}


/* The child of every round: untraced set-up, then stop for the tracer and
 * run the operation. */
static const struct kill_sweep *cur;

static int child(void *p)
{
	(void)p;
	if (cur->pre && cur->pre(cur->arg))
		return 2;
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
		return 3;
	raise(SIGSTOP);
	return cur->op(cur->arg) ? 4 : 0;
}

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	test_wait(pid);
}

int kill_sweep(const struct kill_sweep *s, struct kill_result *out)
{
	const long cap = 400000;
	uintptr_t *ips = malloc(cap * sizeof *ips), failed_at[400];
	char why[256];
	int status;
	pid_t pid;

	memset(out, 0, sizeof *out);
	cur = s;
	if (!ips || (!text_hi && find_text()) || s->prepare(s->arg)) {
		free(ips);
		return -1;
	}
	pid = test_fork(child, NULL);
	long total = pid > 0 ? record(pid, ips, cap, &status) : -1;
	if (total <= 0) {
		if (pid > 0)
			kill_and_reap(pid);
		free(ips);
		s->cleanup(s->arg);
		return -1;
	}
	CHECK_EQ(status, 0);
	CHECK(total < cap);
	if (s->after(s->arg, why, sizeof why)) {
		fprintf(stderr, "  %s: after the dry run: %s\n", s->what, why);
		CHECK(!"the operation's dry run leaves a sound container");
	}
	s->cleanup(s->arg);
	out->total = total;

	long budget = s->budget ? s->budget : 300;
#ifdef UNDER_ASAN
	budget = budget / 3 + 1;
#endif
	long want = getenv("VMC_TEST_BUDGET") ? atol(getenv("VMC_TEST_BUDGET")) : budget;
	long stride = total / (want > 0 ? want : budget) + 1;
	unsigned seed = getenv("VMC_TEST_SEED") ? (unsigned)atoi(getenv("VMC_TEST_SEED")) :
		(unsigned)time(NULL);
	srand(seed);
	fprintf(stderr, "  %s: %ld instructions of ours, killing at every %ld (seed %u)\n",
		s->what, total, stride, seed);
	for (long n = rand() % stride; n < total && n < cap && out->failures < 400; n += stride) {
		long m = 0;
		for (long k = 0; k <= n; k++)
			m += ips[k] == ips[n];
		if (s->prepare(s->arg)) {
			CHECK(!"a fresh world for the next round");
			break;
		}
		pid = test_fork(child, NULL);
		if (pid <= 0) {
			CHECK(pid > 0);
			s->cleanup(s->arg);
			break;
		}
		int there = run_to_nth(pid, ips[n], m);
		kill_and_reap(pid);
		if (!there) {
			out->missed++;
			s->cleanup(s->arg);
			continue;
		}
		out->kills++;
		if (s->after(s->arg, why, sizeof why)) {
			if (out->failures < 8)
				fprintf(stderr, "  %s: killed at instruction %ld of %ld (executable+%#lx, "
					"pass %ld): %s\n", s->what, n, total,
					(unsigned long)(ips[n] - load_base), m, why);
			failed_at[out->failures++] = ips[n];
		}
		s->cleanup(s->arg);
	}
	fprintf(stderr, "  %s: %ld kills, %ld points not reached, %ld failed%s\n", s->what,
		out->kills, out->missed, out->failures, out->failures ? ", by function:" : "");
	if (out->failures)
		summarize(failed_at, out->failures);
	free(ips);
	return 0;
}
#else
int kill_sweep(const struct kill_sweep *s, struct kill_result *out)
{
	(void)s;
	memset(out, 0, sizeof *out);
	return -1;
}
#endif
