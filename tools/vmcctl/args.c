/*
 * args.c - command lines and usage.  Every subcommand takes a fixed number
 * of positional arguments and a few long options, in any order, the way
 * GNU tools do (getopt_long does the parsing): `--size 1G`, `--size=1G`,
 * an unambiguous prefix (`--si 1G`), flags like `--json`, and `--` to end
 * the options.  -h and --help print the subcommand's help and leave with
 * 0; anything the subcommand does not know is a usage error (exit 2) that
 * names the offending word and shows the usage line.  One parser for all
 * subcommands keeps their command lines alike.
 */
#include "vmcctl.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define OPT_BASE 256    /* getopt_long's value for opts[i] is OPT_BASE + i */

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

int run_action(const struct vmcctl_cmd *cmd, const struct vmcctl_cmd *const *actions,
	       size_t n, const char *names, int argc, char **argv)
{
	const char *a = argc > 1 ? argv[1] : NULL;
	size_t skip = strlen(cmd->name) + 1;

	if (!a)
		return usage_error(cmd, "missing ACTION (%s)", names);
	if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
		usage_print(cmd);
		return EXIT_OK;
	}
	for (size_t i = 0; i < n; i++)
		if (!strcmp(actions[i]->name + skip, a))
			return actions[i]->run(actions[i], argc - 1, argv + 1);
	return usage_error(cmd, "unknown action '%s' (%s)", a, names);
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

/* If word ("--max") begins two or more option names, say which; 1 if so. */
static int ambiguous(const struct vmcctl_cmd *cmd, const struct vmcctl_opt *opts,
		     const char *word)
{
	size_t len = strcspn(word, "="), at = 0;
	char names[256] = "";
	int n = 0;

	if (strncmp(word, "--", 2) || len < 3)
		return 0;
	for (; opts && opts->name; opts++)
		if (!strncmp(opts->name, word + 2, len - 2) && at < sizeof names)
			at += (size_t)snprintf(names + at, sizeof names - at, "%s--%s",
					       n++ ? ", " : "", opts->name);
	if (n < 2)
		return 0;
	usage_error(cmd, "ambiguous option '%.*s' (%s)", (int)len, word, names);
	return 1;
}

/* getopt_long returned '?': say what was wrong with the word it refused. */
static int bad_option(const struct vmcctl_cmd *cmd, const struct vmcctl_opt *opts,
		      const char *word)
{
	if (optopt >= OPT_BASE)     /* a flag given a value: --json=1 */
		return usage_error(cmd, "option --%s takes no value", opts[optopt - OPT_BASE].name);
	if (optopt >= '0' && optopt <= '9')
		return usage_error(cmd, "unknown option '-%c': sizes and counts cannot be "
				   "negative", optopt);
	if (optopt)
		return usage_error(cmd, "unknown option '-%c'", optopt);
	return ambiguous(cmd, opts, word) ? EXIT_USAGE :
	       usage_error(cmd, "unknown option '%.*s'", (int)strcspn(word, "="), word);
}

/* Options from opts, then between min and max positional arguments into
 * pos[], their number into *got. */
static int parse(const struct vmcctl_cmd *cmd, int argc, char **argv,
		 const struct vmcctl_opt *opts, const char **pos, int min, int max, int *got)
{
	int n = 0, ch;

	while (opts && opts[n].name)
		n++;
	struct option lo[n + 2];
	for (int i = 0; i < n; i++)
		lo[i] = (struct option){ opts[i].name,
					 opts[i].metavar ? required_argument : no_argument,
					 NULL, OPT_BASE + i };
	lo[n] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[n + 1] = (struct option){ 0 };
	*got = 0;
	optind = 0;     /* start afresh */
	opterr = 0;     /* the messages are ours */
	/* "-": positional arguments come back in order as 1, whatever
	 * POSIXLY_CORRECT says; ":": a missing value comes back as ':' */
	while ((ch = getopt_long(argc, argv, "-:h", lo, NULL)) != -1) {
		if (ch == 1) {
			if (*got == max)
				return usage_error(cmd, "unexpected argument '%s'", optarg);
			pos[(*got)++] = optarg;
		} else if (ch == 'h') {
			usage_print(cmd);
			return EXIT_OK;
		} else if (ch == ':') {
			return usage_error(cmd, "option --%s needs a value (%s)",
					   opts[optopt - OPT_BASE].name,
					   opts[optopt - OPT_BASE].metavar);
		} else if (ch >= OPT_BASE && ch < OPT_BASE + n) {
			const struct vmcctl_opt *o = &opts[ch - OPT_BASE];
			*o->value = o->metavar ? optarg : o->name;
		} else {
			return bad_option(cmd, opts, argv[optind - 1]);
		}
	}
	for (; optind < argc; optind++) {     /* after "--" */
		if (*got == max)
			return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
		pos[(*got)++] = argv[optind];
	}
	if (*got < min) {
		const char *from = skip_words(cmd->synopsis, *got);
		const char *to = skip_words(from, min - *got);
		while (to > from && to[-1] == ' ')
			to--;
		return usage_error(cmd, "missing %.*s", (int)(to - from), from);
	}
	return ARGS_OK;
}

int args_parse(const struct vmcctl_cmd *cmd, int argc, char **argv,
	       const struct vmcctl_opt *opts, const char **pos, int npos)
{
	int got;

	return parse(cmd, argc, argv, opts, pos, npos, npos, &got);
}

int args_parse_list(const struct vmcctl_cmd *cmd, int argc, char **argv,
		    const struct vmcctl_opt *opts, const char **pos, int *npos)
{
	return parse(cmd, argc, argv, opts, pos, 0, argc, npos);
}
