/*
 * args.c - command lines and usage.  Every subcommand takes a fixed number
 * of positional arguments and a few long options, in any order: `--size
 * 1G`, `--size=1G`, flags like `--json`, and `--` to end the options.  -h
 * and --help print the subcommand's help and leave with 0; anything the
 * subcommand does not know is a usage error (exit 2) that names the
 * offending word and shows the usage line.  One parser for all subcommands
 * keeps their command lines alike.
 */
#include "vmcctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void usage_print(const struct vmcctl_cmd *cmd)
{
	printf("usage: vmcctl %s%s%s\n\n%s\n\n%s", cmd->name, *cmd->synopsis ? " " : "",
	       cmd->synopsis, cmd->summary, cmd->help);
}

int usage_error(const struct vmcctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vmcctl: %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: vmcctl %s%s%s\n(`vmcctl %s --help` for more)\n",
		cmd->name, *cmd->synopsis ? " " : "", cmd->synopsis, cmd->name);
	return EXIT_USAGE;
}

/* The option named by arg ("--size" or "--size=1G"); NULL if none. */
static const struct vmcctl_opt *find_opt(const struct vmcctl_opt *opts, const char *arg)
{
	size_t n = strcspn(arg + 2, "=");

	for (; opts && opts->name; opts++)
		if (strlen(opts->name) == n && !strncmp(opts->name, arg + 2, n))
			return opts;
	return NULL;
}

/* The synopsis begins with the names of the positional arguments
 * ("NAME TARGET [...]"); skip n of them. */
static const char *skip_words(const char *s, int n)
{
	while (n-- > 0) {
		s += strcspn(s, " ");
		s += strspn(s, " ");
	}
	return s;
}

int args_parse(const struct vmcctl_cmd *cmd, int argc, char **argv,
	       const struct vmcctl_opt *opts, const char **pos, int npos)
{
	int got = 0, options = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq;
		const struct vmcctl_opt *o;

		/* "-" and negative numbers are arguments, for the command to judge */
		if (!options || a[0] != '-' || !a[1] || (a[1] >= '0' && a[1] <= '9')) {
			if (got == npos)
				return usage_error(cmd, "unexpected argument '%s'", a);
			pos[got++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			options = 0;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage_print(cmd);
			return EXIT_OK;
		}
		if (a[1] != '-' || !(o = find_opt(opts, a)))
			return usage_error(cmd, "unknown option '%s'", a);
		eq = strchr(a, '=');
		if (!o->metavar) {
			if (eq)
				return usage_error(cmd, "option --%s takes no value", o->name);
			*o->value = o->name;
		} else if (eq) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			return usage_error(cmd, "option --%s needs a value (%s)", o->name,
					   o->metavar);
		}
	}
	if (got < npos) {
		const char *from = skip_words(cmd->synopsis, got);
		const char *to = skip_words(from, npos - got);
		while (to > from && to[-1] == ' ')
			to--;
		return usage_error(cmd, "missing %.*s", (int)(to - from), from);
	}
	return ARGS_OK;
}
