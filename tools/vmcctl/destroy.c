/*
 * destroy.c - `vmcctl destroy NAME`: remove a container's files (its
 * metadata and its pool).  Like unlinking an open file, this does not pull
 * memory from under anyone: processes that have the container open keep
 * working until they close it, and the memory goes back to the host when
 * the last one does.  The name is free for a new container at once.
 */
#include "vmcctl.h"

#include <stdio.h>

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *name;
	int err, rc;

	if ((rc = args_parse(cmd, argc, argv, NULL, &name, 1)) != ARGS_OK)
		return rc;
	if ((err = vmc_destroy(name)))
		return fail(err, "destroy %s", name);
	printf("destroyed %s\n", name);
	return EXIT_OK;
}

const struct vmcctl_cmd cmd_destroy = {
	.name = "destroy",
	.synopsis = "NAME",
	.summary = "remove a container (processes using it keep it until they close)",
	.help =
	"Removes the container's metadata and pool files.  Processes that have it\n"
	"open keep working until they close it.\n\n"
	"example:\n"
	"  vmcctl destroy web\n",
	.run = run,
};
