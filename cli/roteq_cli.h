/* roteq_cli.h - the `roteq` executable: a table of subcommands, each `int main(argc, argv)` with
 * its own usage(FILE *), and helpers they share (hyperparameter flags, error reporting).
 *
 * Exit codes: 0 success; 1 the job ran but its result failed (a verification FAIL, a gnuplot
 * error); 2 usage errors and bad input (one line on stderr naming the flag, file, line or tensor).
 */
#ifndef ROTEQ_CLI_H
#define ROTEQ_CLI_H

#include "roteq_optimizer.h"
#include "roteq_schedule.h"
#include "roteq_util.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

enum { ROTEQ_EXIT_OK = 0, ROTEQ_EXIT_FAIL = 1, ROTEQ_EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv);
} roteq_cli_command;

int roteq_cmd_theory(int argc, char **argv);
int roteq_cmd_simulate(int argc, char **argv);
int roteq_cmd_verify(int argc, char **argv);
int roteq_cmd_sweep(int argc, char **argv);
int roteq_cmd_analyze(int argc, char **argv);
int roteq_cmd_plot(int argc, char **argv);
int roteq_cmd_bench(int argc, char **argv);
/* Matrix optimizers (cmd_muon.c): those whose family has matrix hooks (theory,
 * roteq_family.matrix) and a matrix simulator (sim, roteq_sim_matrix_for). theory and simulate
 * hand over to them when argv's --optimizer names one: roteq_cli_named_optimizer gives the type
 * it names (NULL when none or unknown: the caller's parser reports those). */
const roteq_optimizer_type *roteq_cli_named_optimizer(int argc, char **argv);
int roteq_cmd_matrix_theory(const roteq_optimizer_type *opt, int argc, char **argv);
/* The paragraph theory's and simulate's --help end with: the matrix optimizers and where their
 * flags are listed. */
void roteq_cli_matrix_usage_note(FILE *out, const char *cmd);
int roteq_cmd_matrix_simulate(const roteq_optimizer_type *opt, int argc, char **argv);
/* A matrix optimizer's rows of `roteq verify`: its family's verify points, the table into
 * `text` (printed after the per-neuron table) and, with `out`, one row each in the sweep format
 * (sweep/README.md, "Matrix rows"), as points next_index, next_index + 1, ...; exit code. */
struct roteq_sweep_out;
typedef struct {
    int quick;
    unsigned threads;
    uint64_t seed;
    double tolerance;
    struct roteq_sweep_out *out; /* NULL: the table only */
    size_t next_index;
    int write_failed; /* set when a row could not be written */
    FILE *text;
} roteq_cli_matrix_verify_args;
int roteq_cli_matrix_verify(const roteq_optimizer_type *opt, roteq_cli_matrix_verify_args *a);
/* A matrix optimizer's rows of `roteq bench` (printed when `text`; returned as a JSON array
 * either way): Newton-Schulz GFLOP/s against dgemm, and the walk against bench/muon_peer.py under
 * `python` (peers 0: not run). */
struct json_t;
struct json_t *roteq_cli_matrix_bench(const roteq_optimizer_type *opt, int peers,
                                      const char *python, const char *src, int text);

/* Print "roteq CMD: message" on stderr and return ROTEQ_EXIT_USAGE. */
int roteq_cli_fail(const char *cmd, const char *fmt, ...) ROTEQ_PRINTF(2, 3);
/* getopt_long's misuse cases, reported alike by every subcommand (one line, exit 2): call it
 * from the option switch's `case ':'` (a missing value; the optstring must start with ':',
 * after a '+' if any, and opterr be 0) and `default` (an unknown option). */
int roteq_cli_bad_option(const char *cmd, int c, char *const *argv);
/* The same with the library's last error message ("roteq CMD: <message>"); returns `code`. */
int roteq_cli_fail_lib(const char *cmd, int code);

/* Hyperparameter flags (--lr, --weight-decay, --beta1, ... --nesterov), generated from
 * roteq_hparam_descs so every subcommand spells them the same way. Option values are
 * ROTEQ_CLI_HP_OPT + roteq_hparam_id. */
#define ROTEQ_CLI_HP_OPT         0x1000
#define ROTEQ_CLI_HP_OPTIONS_MAX ROTEQ_HP_COUNT

typedef struct {
    roteq_hparams values;
    unsigned given; /* ROTEQ_HP_BIT mask of flags given on the command line */
} roteq_cli_hparams;

void roteq_cli_hparams_init(roteq_cli_hparams *h);
/* Append the hyperparameter long options to `opts` (which has room); returns the new count. */
size_t roteq_cli_hparam_options(struct option *opts, size_t n);
/* If `opt` is a hyperparameter option, parse it into `h` and return 1; 0 if not ours;
 * on a malformed value print "roteq CMD: --FLAG: 'x' is not a number" and return -1. */
int roteq_cli_hparam_option(const char *cmd, int opt, const char *arg, roteq_cli_hparams *h);
/* Merge the given flags over the optimizer's defaults and validate. Flags that do not apply to
 * the optimizer and invalid values are reported ("roteq CMD: --beta1: must be in [0, 1), got 1.5")
 * and give -1. `--nesterov` on sgdm selects nesterov (*opt is updated). */
int roteq_cli_hparams_finish(const char *cmd, const roteq_optimizer_type **opt,
                             const roteq_cli_hparams *h, roteq_hparams *out);
/* Usage lines for the hyperparameter flags. */
void roteq_cli_hparam_usage(FILE *out);

/* Parse helpers that report "roteq CMD: --FLAG: <why>" and return -1 on failure. */
int roteq_cli_double(const char *cmd, const char *flag, const char *arg, double *out);
int roteq_cli_size(const char *cmd, const char *flag, const char *arg, size_t *out);
int roteq_cli_schedule(const char *cmd, const char *flag, const char *arg, roteq_schedule *out);
/* Progress of a long run on stderr: on a terminal a bar redrawn at most 5 times a second, else
 * (a log, a pipe) one line every ROTEQ_CLI_PROGRESS_LOG_SECONDS (the environment variable
 * ROTEQ_PROGRESS_SECONDS overrides it), so that a long job is never silent and a short one
 * prints nothing. `total` is the number of steps. */
#define ROTEQ_CLI_PROGRESS_LOG_SECONDS 10.0
typedef struct {
    const char *cmd;
    int tty, enabled, drawn;
    double start, last, interval;
} roteq_cli_progress;
void roteq_cli_progress_init(roteq_cli_progress *p, const char *cmd, int enabled);
void roteq_cli_progress_update(roteq_cli_progress *p, size_t step, size_t total);

/* Longest runs `roteq theory --steps` and `roteq simulate --steps` accept: 1e10 steps, beyond
 * any training run (days of work at this machine's 1e8-1e9 neuron-coordinate steps a second). */
#define ROTEQ_CLI_STEPS_MAX ((size_t)10000000000ULL)

/* --format text|csv|json (any subset given by `allowed`, e.g. "text,csv,json"). */
typedef enum { ROTEQ_FORMAT_TEXT, ROTEQ_FORMAT_CSV, ROTEQ_FORMAT_JSON } roteq_format;
int roteq_cli_format(const char *cmd, const char *arg, const char *allowed, roteq_format *out);

#endif
