/*
 * vm.c - `vmcctl vm list|hibernate|wake|export|import`: a container's VMs
 * and their images.  An idle VM can be hibernated: its memory goes to an
 * image file (in vmc/hibernate_dir) and its granules back to the pool,
 * until it is woken (or, with vmc/wake_on_attach, attached).  An image
 * can also be exported to a file (or stdout) and imported into another
 * container - on this host or another - whose window base
 * (vmc/arena_base) and granule size are the same: the unit a cluster
 * scheduler moves when a tenant changes hosts.  The VM's memory never
 * passes through vmcctl's window: the library copies it between the pool
 * file and the image.
 */
#include "vmcctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ----------------------------------------------------------------- list */

static int vm_row(const struct snapshot *s, uint32_t i, struct cell *c)
{
	const vmc_vm_stats_t *v = &s->vm[i];

	c[0] = (struct cell){ "id", "id", 5, CELL_NUM, .n = s->vm_id[i] };
	c[1] = (struct cell){ "name", "name", -s->namew, CELL_STR, .s = v->name };
	c[2] = (struct cell){ "state", "state", -10, CELL_STR, .s = vm_state_name(v->state) };
	c[3] = (struct cell){ "committed", "committed", 10, CELL_SIZE, .n = v->committed };
	c[4] = (struct cell){ "limit", "limit", 10, CELL_SIZE, .n = v->limit };
	c[5] = (struct cell){ "image_bytes", "image", 10, CELL_SIZE, .n = v->image_bytes,
			      .none = v->state != VMC_VM_HIBERNATED };
	return 6;
}
#define VM_CELLS 6

static int run_list(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *json = NULL, *pos[1];
	const struct vmcctl_opt opts[] = { { "json", NULL, &json }, { 0 } };
	struct snapshot s = { 0 };
	struct cell c[VM_CELLS];
	vmc_t *vc;
	int rc;

	if ((rc = args_parse(cmd, argc, argv, opts, pos, 1)) != ARGS_OK)
		return rc;
	if ((rc = open_container(pos[0], &vc)))
		return rc;
	s.name = pos[0];
	if ((rc = snapshot_take(vc, &s))) {
		snapshot_free(&s);
		return close_container(vc, pos[0], rc);
	}
	if (json)
		printf("{\"container\": ");
	if (json) {
		json_str(pos[0]);
		printf(", \"vms\": [");
	}
	for (uint32_t i = 0; i < s.nvms; i++) {
		int k = vm_row(&s, i, c);
		if (json) {
			printf("%s\n  ", i ? "," : "");
			cells_json(c, k);
			continue;
		}
		if (!i)
			cells_head(c, k);
		cells_row(c, k);
	}
	if (json)
		printf(s.nvms ? "\n]}\n" : "]}\n");
	else if (!s.nvms)
		printf("no VMs in %s\n", pos[0]);
	snapshot_free(&s);
	return close_container(vc, pos[0], EXIT_OK);
}

/* ------------------------------------------------- hibernate, wake, export */

/* Open container pos[0] and find VM pos[1] in it. */
static int open_vm(const char **pos, vmc_t **c, uint32_t *id)
{
	int err, rc;

	if ((rc = open_container(pos[0], c)))
		return rc;
	if ((err = vmc_vm_find(*c, pos[1], id)))
		return close_container(*c, pos[0], fail(err, "VM %s in %s", pos[1], pos[0]));
	return EXIT_OK;
}

static int run_state(const struct vmcctl_cmd *cmd, int argc, char **argv, int wake)
{
	const char *pos[2];
	char sz[SIZE_BUF];
	vmc_vm_stats_t st;
	uint32_t id;
	vmc_t *c;
	int err, rc;

	if ((rc = args_parse(cmd, argc, argv, NULL, pos, 2)) != ARGS_OK ||
	    (rc = open_vm(pos, &c, &id)))
		return rc;
	err = wake ? vmc_vm_wake(c, id) : vmc_vm_hibernate(c, id);
	if (err)
		rc = fail(err, "%s VM %s in %s", wake ? "wake" : "hibernate", pos[1], pos[0]);
	else if (vmc_vm_stats(c, id, &st) == 0 && wake)
		printf("woke VM %s in %s: %s committed\n", pos[1], pos[0],
		       size_str(st.committed, sz));
	else if (vmc_vm_stats(c, id, &st) == 0)
		printf("hibernated VM %s in %s: image of %s\n", pos[1], pos[0],
		       size_str(st.image_bytes, sz));
	return close_container(c, pos[0], rc);
}

static int run_hibernate(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	return run_state(cmd, argc, argv, 0);
}

static int run_wake(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	return run_state(cmd, argc, argv, 1);
}

static int run_export(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *pos[3];
	int err, rc, fd, out = 0;
	uint32_t id;
	vmc_t *c;

	if ((rc = args_parse(cmd, argc, argv, NULL, pos, 3)) != ARGS_OK ||
	    (rc = open_vm(pos, &c, &id)))
		return rc;
	if (!strcmp(pos[2], "-")) {
		fd = STDOUT_FILENO;
		out = 1;
	} else if ((fd = open(pos[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "vmcctl: export: cannot create %s: %s\n", pos[2], strerror(errno));
		return close_container(c, pos[0], EXIT_ERR);
	}
	err = vmc_vm_export(c, id, fd);
	if (!err && !out && (fsync(fd) != 0 || close(fd) != 0)) {
		fprintf(stderr, "vmcctl: export: writing %s: %s\n", pos[2], strerror(errno));
		unlink(pos[2]);
		return close_container(c, pos[0], EXIT_ERR);
	}
	if (err) {
		if (!out) {
			close(fd);
			unlink(pos[2]);   /* never leave half an image behind */
		}
		rc = fail(err, "export VM %s of %s", pos[1], pos[0]);
	} else if (!out) {
		printf("exported VM %s of %s to %s\n", pos[1], pos[0], pos[2]);
	}
	return close_container(c, pos[0], rc);
}

static int run_import(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	const char *pos[2], *as = NULL;
	const struct vmcctl_opt opts[] = { { "as", "VMNAME", &as }, { 0 } };
	vmc_vm_stats_t st;
	char sz[SIZE_BUF];
	int err, rc, fd;
	uint32_t id;
	vmc_t *c;

	if ((rc = args_parse(cmd, argc, argv, opts, pos, 2)) != ARGS_OK)
		return rc;
	if (!strcmp(pos[1], "-")) {
		fd = STDIN_FILENO;
	} else if ((fd = open(pos[1], O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "vmcctl: import: cannot open %s: %s\n", pos[1], strerror(errno));
		return EXIT_ERR;
	}
	if ((rc = open_container(pos[0], &c))) {
		if (fd != STDIN_FILENO)
			close(fd);
		return rc;
	}
	err = vmc_vm_import(c, as, fd, &id);
	if (fd != STDIN_FILENO)
		close(fd);
	if (err)
		rc = fail(err, "import %s into %s", pos[1], pos[0]);
	else if (vmc_vm_stats(c, id, &st) == 0)
		printf("imported VM %s into %s as id %u: %s committed\n", st.name, pos[0], id,
		       size_str(st.committed, sz));
	return close_container(c, pos[0], rc);
}

/* ------------------------------------------------------------- dispatch */

static const struct vmcctl_cmd vm_list = {
	.name = "vm list",
	.synopsis = "NAME [--json]",
	.summary = "show a container's VMs: state, committed bytes, image size",
	.help =
	"One row per VM: its id, name, state (idle, attached, orphaned, hibernated),\n"
	"the bytes it has committed, its limit, and the size of its image file while\n"
	"it is hibernated (\"-\" otherwise).\n\n"
	"options:\n"
	"  --json   print {\"container\": NAME, \"vms\": [...]} with the same fields\n"
	"           (sizes in bytes, \"image_bytes\": null unless hibernated)\n\n"
	"example:\n"
	"  vmcctl vm list web\n",
	.run = run_list,
};

static const struct vmcctl_cmd vm_hibernate = {
	.name = "vm hibernate",
	.synopsis = "NAME VM",
	.summary = "write idle VM VM's memory to its image and release its granules",
	.help =
	"The image goes to DIR/NAME/ (DIR: the container's vmc/hibernate_dir, default\n"
	"/var/tmp/vmc), written to a temporary name, synced and renamed.  The VM stays\n"
	"in the table, hibernated, holding no memory, until `vmcctl vm wake` (or an\n"
	"attach, if the container was made with vmc/wake_on_attach = 1).  Refused\n"
	"(exit 1) for a VM that is attached, orphaned or hibernated already.\n\n"
	"example:\n"
	"  vmcctl vm hibernate web tenant-42\n",
	.run = run_hibernate,
};

static const struct vmcctl_cmd vm_wake = {
	.name = "vm wake",
	.synopsis = "NAME VM",
	.summary = "bring hibernated VM VM back from its image",
	.help =
	"Commits the VM's memory again and fills it from its image, checking every\n"
	"checksum; then the image is removed.  A damaged image is refused (exit 1)\n"
	"and left as it was, the VM still hibernated.\n\n"
	"example:\n"
	"  vmcctl vm wake web tenant-42\n",
	.run = run_wake,
};

static const struct vmcctl_cmd vm_export = {
	.name = "vm export",
	.synopsis = "NAME VM FILE",
	.summary = "write the image of VM VM (idle or hibernated) to FILE",
	.help =
	"FILE is made mode 0600 (replaced if it exists), or \"-\" for stdout.  The VM\n"
	"is unchanged.  Import the file into a container with the same window base\n"
	"and granule size (create it with VMC_ARENA_BASE and VMC_GRANULE_SIZE set as\n"
	"`vmcctl vm import` says when they differ).\n\n"
	"example:\n"
	"  vmcctl vm hibernate web t42 && vmcctl vm export web t42 /tmp/t42.img\n"
	"  vmcctl vm export web t42 - | ssh hostb vmcctl vm import web -\n",
	.run = run_export,
};

static const struct vmcctl_cmd vm_import = {
	.name = "vm import",
	.synopsis = "NAME FILE [--as VMNAME]",
	.summary = "make a new idle VM in NAME from an image file",
	.help =
	"FILE is an image written by `vmcctl vm export` or vmc_vm_export (\"-\" reads\n"
	"stdin).  The new VM is named as in the image, or VMNAME.  Refused (exit 1)\n"
	"if the name is taken, if the image is damaged, or if it comes from a\n"
	"container with another window base or granule size: the message names\n"
	"the vmc/arena_base or vmc/granule_size to create the container with.\n\n"
	"options:\n"
	"  --as VMNAME   the new VM's name\n\n"
	"example:\n"
	"  VMC_ARENA_BASE=0x3c0000000000 vmcctl create web --size 4G\n"
	"  vmcctl vm import web /tmp/t42.img --as t42\n",
	.run = run_import,
};

static const struct vmcctl_cmd *const actions[] = {
	&vm_list, &vm_hibernate, &vm_wake, &vm_export, &vm_import,
};
#define NACTIONS (sizeof actions / sizeof actions[0])

static int run(const struct vmcctl_cmd *cmd, int argc, char **argv)
{
	return run_action(cmd, actions, NACTIONS, "list, hibernate, wake, export or import", argc, argv);
}

const struct vmcctl_cmd cmd_vm = {
	.name = "vm",
	.synopsis = "ACTION ...",
	.summary = "list VMs; hibernate, wake, export and import them",
	.help =
	"actions:\n"
	"  vm list NAME [--json]              the VMs: state, committed, image size\n"
	"  vm hibernate NAME VM               memory to an image, granules to the pool\n"
	"  vm wake NAME VM                    back from the image\n"
	"  vm export NAME VM FILE             the image of an idle or hibernated VM\n"
	"  vm import NAME FILE [--as VMNAME]  a new VM from an image\n\n"
	"`vmcctl vm ACTION --help` describes an action.\n\n"
	"example:\n"
	"  vmcctl vm hibernate web t42 && vmcctl vm list web\n",
	.run = run,
};
