/*
 * cli_fixture.c - a worker for the vmcctl tests: it gives a container VMs
 * with names the tests choose (quotes, backslashes: what JSON and
 * Prometheus output must escape), commits memory in each so that the
 * figures are not all zero, leaves the last VM attached and stays joined,
 * so that vmcctl sees a live worker other than itself.  The first granule
 * of each VM holds a byte pattern (test_vmcctl_vm.sh moves its image).  It prints "ready"
 * when all is in place and leaves (detach, close, exit 0) on SIGTERM.  It
 * uses the public API only, like any runtime.
 *
 *   cli_fixture CONTAINER VM...
 */
#include <vmc.h>

#include <signal.h>
#include <stdio.h>

#define LIMIT (8u << 20)

static int die(const char *what, const char *name)
{
	fprintf(stderr, "cli_fixture: %s %s: %s\n", what, name, vmc_errmsg());
	return 1;
}

int main(int argc, char **argv)
{
	uint32_t id = VMC_NO_VM;
	sigset_t term;
	void *base;
	vmc_t *c;
	int sig;

	if (argc < 3) {
		fprintf(stderr, "usage: cli_fixture CONTAINER VM...\n");
		return 2;
	}
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);   /* taken by sigwait below */
	if (vmc_open(argv[1], &c))
		return die("open", argv[1]);
	for (int i = 2; i < argc; i++) {
		if (id != VMC_NO_VM && vmc_detach(c, id))
			return die("detach", argv[i - 1]);
		if (vmc_vm_create(c, argv[i], LIMIT, &id))
			return die("create VM", argv[i]);
		if (vmc_attach(c, id, &base))
			return die("attach", argv[i]);
		if (vmc_commit(c, base, vmc_granule_size(c) * (size_t)(i - 1), 0))
			return die("commit in", argv[i]);
		/* bytes in the first granule, so that an image of it is not all zero */
		for (size_t k = 0; k < vmc_granule_size(c); k += 4096)
			((unsigned char *)base)[k] = (unsigned char)(i + k / 4096);
	}
	printf("ready\n");
	fflush(stdout);
	sigwait(&term, &sig);
	if (vmc_detach(c, id))
		return die("detach", argv[argc - 1]);
	return vmc_close(c) ? die("close", argv[1]) : 0;
}
