/*
 * main.c - vmcctl, the administrator's view of vmc containers.  A container
 * outlives the processes that use it (its files live in /dev/shm or on a
 * hugetlbfs mount), so an administrator needs a tool to list them, make
 * one, look inside a live one, move memory between it and the host, check
 * and repair it, and remove it; and to prepare the host (hugepages) and see
 * what it offers.  This file reads the options that come before the
 * subcommand (--help, --version), picks the subcommand named by the first
 * other argument and hands it the rest.  Adding a subcommand is one file
 * with its struct vmcctl_cmd and one entry in the table below.
 */
#include "vmcctl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#ifndef VMCCTL_VERSION
#error "VMCCTL_VERSION is the project's version; the build defines it"
#endif

static const struct vmcctl_cmd *const commands[] = {
	&cmd_list, &cmd_create, &cmd_stat, &cmd_region, &cmd_balloon, &cmd_check,
	&cmd_destroy, &cmd_hugepages, &cmd_caps, &cmd_vm,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage_all(FILE *f)
{
	fprintf(f, "usage: vmcctl [--version] [--help] COMMAND [ARGS...]\n\n"
		"Manage vmc containers (shared-memory heaps for managed runtimes).\n\n"
		"commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "\n`vmcctl COMMAND --help` describes a command.\n\n"
		"exit status:\n"
		"  0  the command did what was asked\n"
		"  1  the operation failed (the message says why)\n"
		"  2  the command line was wrong (unknown command or option, bad value)\n\n"
		"example:\n"
		"  vmcctl create web --size 4G --fund 1G && vmcctl stat web\n");
}

static const struct vmcctl_cmd *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

#define GO_ON (-1)

/* --help and --version before the command.  Returns GO_ON with *cmd set to
 * the index of the command in argv, or the exit code to leave with. */
static int global_options(int argc, char **argv, int *cmd)
{
	static const struct option lo[] = {
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int ch;

	opterr = 0;
	/* "+": stop at the command, whose options are its own */
	if ((ch = getopt_long(argc, argv, "+hV", lo, NULL)) == 'h') {
		usage_all(stdout);
		return EXIT_OK;
	} else if (ch == 'V') {
		printf("vmcctl %s\n", VMCCTL_VERSION);
		return EXIT_OK;
	} else if (ch != -1) {
		fprintf(stderr, "vmcctl: unknown option '%s' (`vmcctl --help` lists the "
			"options and commands)\n", argv[optind - 1]);
		return EXIT_USAGE;
	}
	if (optind == argc) {
		usage_all(stderr);
		return EXIT_USAGE;
	}
	*cmd = optind;
	return GO_ON;
}

int main(int argc, char **argv)
{
	const struct vmcctl_cmd *cmd;
	const char *name;
	int i, help, rc;

	if ((rc = global_options(argc, argv, &i)) != GO_ON)
		return rc;
	name = argv[i];
	help = !strcmp(name, "help");   /* `vmcctl help [COMMAND]` */
	if (help && i + 1 == argc) {
		usage_all(stdout);
		return EXIT_OK;
	}
	if (help)
		name = argv[i + 1];
	if (!(cmd = find(name))) {
		fprintf(stderr, "vmcctl: unknown command '%s' (`vmcctl --help` lists them)\n",
			name);
		return EXIT_USAGE;
	}
	if (help) {
		usage_print(cmd);
		return EXIT_OK;
	}
	return cmd->run(cmd, argc - i, argv + i);
}
