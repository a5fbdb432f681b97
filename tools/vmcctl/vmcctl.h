/*
 * vmcctl.h - what the subcommands of vmcctl share.  Each subcommand is one
 * struct vmcctl_cmd (its name, synopsis, help text and entry point) in a
 * file of its own; main.c dispatches on the first argument.  The helpers
 * below keep the subcommands to their own concern: option parsing with
 * --help built in, sizes read and printed in powers of 1024, errors printed
 * in one format (`vmcctl: WHAT: MESSAGE`) with one set of exit codes, a
 * progress bar for long funding runs, a snapshot of a live container, and
 * reports that print one description of what is shown either as a table
 * or as JSON.  vmcctl uses the public API (vmc.h) only, like any other
 * program.
 */
#ifndef VMCCTL_H
#define VMCCTL_H

#include <stdint.h>
#include <time.h>

#include "vmc.h"

/* Exit codes (`vmcctl --help` documents them): done, the operation
 * failed, the command line was wrong. */
enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

struct vmcctl_cmd {
	const char *name;       /* "create" */
	const char *synopsis;   /* what follows "vmcctl create" in usage lines */
	const char *summary;    /* one line for `vmcctl --help` */
	const char *help;       /* options, behaviour and an example */
	int (*run)(const struct vmcctl_cmd *cmd, int argc, char **argv);
};

extern const struct vmcctl_cmd cmd_list, cmd_create, cmd_stat, cmd_region, cmd_balloon,
	cmd_check, cmd_destroy, cmd_hugepages, cmd_caps, cmd_vm;

/* ------------------------------------------------------------ arguments */

/* An option `--name VALUE` (or `--name=VALUE`); a flag if metavar is NULL,
 * in which case *value is set to the option's name when given. */
struct vmcctl_opt {
	const char *name;
	const char *metavar;
	const char **value;
};

#define ARGS_OK (-1)

/* Parse argv[1..argc-1] of subcommand cmd: options from opts (terminated by
 * a zero entry; may be NULL), -h/--help, "--", and exactly npos positional
 * arguments into pos[].  Returns ARGS_OK to go on, or the exit code to
 * leave with: EXIT_OK after printing help, EXIT_USAGE after a usage error. */
int args_parse(const struct vmcctl_cmd *cmd, int argc, char **argv,
	       const struct vmcctl_opt *opts, const char **pos, int npos);

/* The same for a subcommand that takes any number of positional arguments:
 * they go to pos[] (room for argc), their number to *npos. */
int args_parse_list(const struct vmcctl_cmd *cmd, int argc, char **argv,
		    const struct vmcctl_opt *opts, const char **pos, int *npos);

/* A subcommand made of actions ("vm list", "vm wake", ...): run the action
 * named by argv[1] (each action's name is cmd's name, a space, then its
 * own), or answer -h/--help; `names` lists them for usage errors ("list,
 * create or destroy").  Returns the exit code. */
int run_action(const struct vmcctl_cmd *cmd, const struct vmcctl_cmd *const *actions,
	       size_t n, const char *names, int argc, char **argv);

/* Print the help of cmd to stdout. */
void usage_print(const struct vmcctl_cmd *cmd);

/* Print "vmcctl: CMD: MESSAGE" and the usage line to stderr; returns
 * EXIT_USAGE. */
int usage_error(const struct vmcctl_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* --------------------------------------------------------------- errors */

/* Print "vmcctl: WHAT: " + vmc_errmsg() (or vmc_strerror(err) if the
 * library left no message) to stderr; returns EXIT_ERR. */
int fail(int err, const char *what_fmt, ...) __attribute__((format(printf, 2, 3)));

/* vmc_open(name), printing the error if it fails. Returns 0 or EXIT_ERR. */
int open_container(const char *name, vmc_t **out);

/* vmc_close(c), printing the error if it fails. Returns rc, or EXIT_ERR if
 * rc was EXIT_OK and closing failed. */
int close_container(vmc_t *c, const char *name, int rc);

/* ----------------------------------------------------------------- sizes */

/* Read argument s, named `what` in messages ("TARGET"), as a size with
 * vmc_parse_size ("512M", "2G", "4096", "1GiB").  Returns 0, or prints a
 * usage error that says what is wrong with it and returns EXIT_USAGE. */
int size_arg(const struct vmcctl_cmd *cmd, const char *what, const char *s, uint64_t *out);

/* A non-negative decimal count ("16"). Returns 0, or -1. */
int count_parse(const char *s, long *out);

/* The largest power-of-1024 unit not above bytes: returns its shift (0,
 * 10, 20, ...) and sets *name ("B", "KiB", "MiB", ...). */
unsigned size_unit(uint64_t bytes, const char **name);

/* "upfront" or "ondemand": a vmc/fund_policy value as the profile writes it. */
const char *fund_policy_name(int policy);

#define SIZE_BUF 32
/* "0 B", "512 KiB", "256 MiB", "1.0 GiB": one decimal below 10 units. */
const char *size_str(uint64_t bytes, char buf[SIZE_BUF]);

/* -------------------------------------------------------------- progress */

/* A progress bar on stderr for funding (vmc_config_t.progress at create,
 * vmc_set_progress for balloon deflates): silent for the first second,
 * then `[#####.....]  37%  1.2/3.0 GiB`, redrawn in place. */
struct progress {
	struct timespec start;
	int drawn;      /* a bar is on the line */
	int finished;   /* the line was ended */
};

/* Start timing. */
void progress_begin(struct progress *p);

/* The callback: arg is a struct progress *. */
void progress_update(void *arg, uint64_t done, uint64_t total);

/* End a bar left unfinished (funding failed part way). */
void progress_end(struct progress *p);

/* --------------------------------------------------------------- reports */

/* A name/value line: "  label  n (note)" in a table, "key": n in JSON. */
struct counter {
	const char *key, *label;
	uint64_t n;
	int usec;           /* n is in ns: the table shows µs ("-" for 0) */
	uint64_t of;        /* if not 0, the table adds n / of as ... */
	const char *pct_of; /* ... "(12.5% of PCT_OF)" */
	const char *per;    /* ... "(1.25 per PER)" */
	int bytes;          /* n (and of) are bytes: the table shows sizes ("1.5 MiB") */
	const char *of_key; /* a part of a whole: the table shows "n / of (12.5%)" ("-"
			     * if of is 0), JSON has "OF_KEY": of after "key": n */
};

/* "\nTITLE" and a line per counter. */
void counters_table(const char *title, const struct counter *k, int n);

/* The members `"key": n` of a JSON object, one a line, comma-separated,
 * each on a new line indented by `indent` spaces (4 in a section object,
 * 2 at the top level); no comma before the first or after the last. */
void counters_json(const struct counter *k, int n, int indent);

/* The shared regions and code cache of a vmc_stats() snapshot (region.c;
 * `vmcctl stat` and `vmcctl region list` show them): "regions",
 * "region_bytes" (the code cache not counted) and "code_cache_used" of
 * "code_cache_size". */
#define NREGION_COUNTERS 3
void region_counters(const vmc_stats_t *st, struct counter out[NREGION_COUNTERS]);

/* A cell of a table row, which is a JSON object in JSON. */
enum cell_kind {
	CELL_NUM,
	CELL_MIB,    /* bytes: MiB in the table */
	CELL_SIZE,   /* bytes: "1.5 GiB" in the table */
	CELL_HEX,    /* an address: 0x... in the table, a number in JSON */
	CELL_STR,
	CELL_BOOL,   /* "yes" / "NO" in the table */
	CELL_MARK,   /* "  (HEAD)" after the row if set (or "  (S)" if s is set),
		      * no column; true/false in JSON */
	CELL_NOTE,   /* "  HEAD: S" after the row unless none, no column; a string
		      * (or null) in JSON */
};
struct cell {
	const char *key, *head;  /* JSON key, table heading */
	int width;               /* at least the heading's; negative: left-aligned */
	enum cell_kind kind;
	uint64_t n;              /* all kinds but CELL_STR */
	const char *s;           /* CELL_STR, CELL_NOTE; CELL_MARK: shown instead of HEAD */
	int none;                /* no value: "-" in the table, null in JSON */
};

void cells_head(const struct cell *c, int n);
void cells_row(const struct cell *c, int n);
void cells_json(const struct cell *c, int n);   /* {"key": value, ...} */

/* ------------------------------------------------------------ snapshots */

/* What `vmcctl stat` shows, read once (snapshot.c). */
struct snapshot {
	const char *name;            /* the container's */
	vmc_stats_t st;
	uint64_t granule;            /* vmc_granule_size() */
	uint32_t self;               /* vmcctl's own worker slot */
	uint32_t nvms, nworkers;     /* VMs found, used worker slots */
	uint32_t *vm_id;             /* [nvms] */
	vmc_vm_stats_t *vm;          /* [nvms] */
	uint32_t *slot;              /* [nworkers] slot numbers */
	vmc_worker_stats_t *ws;      /* [nworkers] */
	int namew;                   /* the longest VM name, for the VM columns */
};

/* Fill s (zeroed, with s->name set) from the open container c.  Returns 0,
 * or prints the error and returns EXIT_ERR; snapshot_free() either way. */
int snapshot_take(vmc_t *c, struct snapshot *s);
void snapshot_free(struct snapshot *s);

/* "idle", "attached", "orphaned", "hibernated". */
const char *vm_state_name(int state);

/* The name of VM id; NULL for VMC_NO_VM, "?" for one not in the snapshot. */
const char *snapshot_vm_name(const struct snapshot *s, uint32_t id);

/* The snapshot in the Prometheus text format (prometheus.c). */
void prometheus_print(const struct snapshot *s);

/* A log2 histogram (bucket k: [2^k, 2^(k+1)) ns): "\nTITLE" and a row
 * with a bar per non-zero bucket; or a JSON array of all the buckets. */
void hist_table(const char *title, const uint64_t hist[VMC_HIST_BUCKETS]);
void hist_json(const uint64_t hist[VMC_HIST_BUCKETS]);

/* s as a JSON string: quoted; quotes, backslashes and control characters
 * escaped; bytes that are not UTF-8 as U+FFFD, so any name makes valid JSON. */
void json_str(const char *s);

#endif
