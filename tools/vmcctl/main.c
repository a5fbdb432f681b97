/*
 * main.c - vmcctl, the administrator's view of vmc containers.  A container
 * outlives the processes that use it (its files live in /dev/shm or on a
 * hugetlbfs mount), so an administrator needs a tool to make one, look
 * inside a live one, move memory between it and the host, check and repair
 * it, and remove it; and to prepare the host (hugepages) and see what it
 * offers.  This file only picks the subcommand named by the first argument
 * and hands it the rest.
 */
#include "vmcctl.h"

#include <stdio.h>
#include <string.h>

static const struct vmcctl_cmd *const commands[] = {
	&cmd_create, &cmd_stat, &cmd_region, &cmd_balloon, &cmd_check, &cmd_destroy,
	&cmd_hugepages, &cmd_caps,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage_all(FILE *f)
{
	fprintf(f, "usage: vmcctl COMMAND [ARGS...]\n\n"
		"Manage vmc containers (shared-memory heaps for managed runtimes).\n\n"
		"commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "\n`vmcctl COMMAND --help` describes a command.\n\n"
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

int main(int argc, char **argv)
{
	const struct vmcctl_cmd *cmd;
	const char *name = argc > 1 ? argv[1] : NULL;
	int help = name && !strcmp(name, "help");   /* `vmcctl help [COMMAND]` */

	if (!name) {
		usage_all(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(name, "-h") || !strcmp(name, "--help") || (help && argc < 3)) {
		usage_all(stdout);
		return EXIT_OK;
	}
	if (help)
		name = argv[2];
	if (!(cmd = find(name))) {
		fprintf(stderr, "vmcctl: unknown command '%s' (`vmcctl --help` lists them)\n",
			name);
		return EXIT_USAGE;
	}
	if (help) {
		usage_print(cmd);
		return EXIT_OK;
	}
	return cmd->run(cmd, argc - 1, argv + 1);
}
