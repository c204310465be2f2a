/* plots_internal.h - what the plots/ sources share and nobody else sees: a CSV table read by column
 * names (docs/FORMATS.md), the writer of gnuplot data files, and the runner that hands a data file
 * to one of the .gp scripts in plots/. Each figure kind lives in its own fig_*.c file and only
 * turns input tables into one data file plus the script's extra arguments. */
#ifndef ROTEQ_PLOTS_INTERNAL_H
#define ROTEQ_PLOTS_INTERNAL_H

#include "roteq_plots.h"
#include "roteq_util.h"

#include <stddef.h>
#include <stdio.h>

/* ---- CSV tables (csv.c) ----------------------------------------------------------------- */

typedef struct {
    char *path;      /* the file as given */
    char *label;     /* the LABEL of a LABEL=PATH input, or NULL */
    char **comments; /* '#' lines before the header, without the '#' and leading blanks */
    size_t ncomments;
    char **names; /* column names */
    size_t ncols;
    char **cells;   /* nrows * ncols pointers into the row buffers ("" for an empty field) */
    size_t *lineno; /* file line of each row, for messages */
    size_t nrows;
    char *buffer; /* the whole file; cells and names point into it */
} roteq_plots_csv;

/* Read `path` (a CSV of docs/FORMATS.md). ROTEQ_EIO when it cannot be read, ROTEQ_EFORMAT
 * naming file and line when a row has the wrong number of fields or there is no header. */
int roteq_plots_csv_read(const char *path, roteq_plots_csv **out);
void roteq_plots_csv_free(roteq_plots_csv *t);
/* Index of column `name`, or -1. */
long roteq_plots_csv_col(const roteq_plots_csv *t, const char *name);
/* The first of the NULL-terminated `names` the file has; ROTEQ_ENOTFOUND naming the file, the
 * wanted column(s) and the columns present when none is there. */
int roteq_plots_csv_need(const roteq_plots_csv *t, const char *const *names, long *col);
const char *roteq_plots_csv_str(const roteq_plots_csv *t, size_t row, long col);
/* A number: an empty field, "nan" or "NaN" give NAN; anything else must parse completely
 * (ROTEQ_EFORMAT naming file, line and column otherwise). col < 0 gives NAN. */
int roteq_plots_csv_num(const roteq_plots_csv *t, size_t row, long col, double *out);

/* The distinct values of column `col` in order of first appearance (pointers into `t`). */
int roteq_plots_csv_groups(const roteq_plots_csv *t, long col, const char ***groups,
                           size_t *ngroups);

/* A JSON summary (one object; json.c) as a table of one row whose columns are its values by
 * dotted name ("hparams.momentum", "hparams.shape.0"); ROTEQ_EFORMAT naming file, line and column
 * for bad JSON or a top level that is not an object. */
int roteq_plots_json_read(const char *path, roteq_plots_csv **out);

/* Inputs: each string is PATH or LABEL=PATH (split only when PATH exists and the whole string
 * does not; the label may hold '=': the split is at the first '=' followed by an existing
 * file). Reads them all; on error frees what was read. */
/* The PATH part of one such input (a pointer into it). */
const char *roteq_plots_input_path(const char *input);
/* How a kind reads one input file: roteq_plots_csv_read, or roteq_plots_json_read. */
typedef int (*roteq_plots_reader)(const char *path, roteq_plots_csv **out);
int roteq_plots_read_inputs(const char *const *inputs, size_t n, roteq_plots_reader read,
                            roteq_plots_csv ***tables);
void roteq_plots_free_inputs(roteq_plots_csv **tables, size_t n);
/* The file name without directories and extension, into `buf`. */
void roteq_plots_basename(const char *path, char *buf, size_t len);
/* Grow the array *p of `size`-byte items to hold `need` (capacity doubling, *cap in items);
 * -1 when out of memory (*p unchanged). */
int roteq_plots_grow(void **p, size_t *cap, size_t need, size_t size);

/* ---- data files and gnuplot (gnuplot.c) --------------------------------------------------- */

#define ROTEQ_PLOTS_MAX_ARGS 9   /* gnuplot -c passes ARG1..ARG9 */
#define ROTEQ_PLOTS_ARG_MAX  512 /* bytes of one script argument, with its '\0' */

/* A figure being produced: where it goes and the arguments its script gets after DATA OUT. */
typedef struct {
    const char *kind;   /* "norm", ... */
    const char *script; /* file name in the scripts folder, e.g. "series.gp" */
    char dir[4096];
    char name[256];                         /* base name of the outputs: NAME.dat, NAME.png */
    const char *format;                     /* "png" or "svg" */
    const char *args[ROTEQ_PLOTS_MAX_ARGS]; /* ARG3... (ARG1 = DATA, ARG2 = OUT) */
    char argbuf[ROTEQ_PLOTS_MAX_ARGS][ROTEQ_PLOTS_ARG_MAX];
    size_t nargs;
    char data_path[4400];
    char figure_path[4400];
} roteq_plots_job;

/* Fill dir/name/format from the options and create the folder. */
int roteq_plots_job_init(roteq_plots_job *job, const char *kind, const char *script,
                         const roteq_plot_options *opt);
/* Append a script argument (printf-style; at most ROTEQ_PLOTS_MAX_ARGS - 2 of them). */
int roteq_plots_job_arg(roteq_plots_job *job, const char *fmt, ...) ROTEQ_PRINTF(2, 3);

/* Open the data file NAME.dat and write its '#' header: the equivalent command, the redraw
 * command, the inputs and their own '#' lines. Returns the stream through *f. */
int roteq_plots_data_open(roteq_plots_job *job, const char *const *inputs, size_t ninputs,
                          roteq_plots_csv *const *tables, const roteq_plot_options *opt,
                          roteq_ofile **f);
/* Append the redraw command (now that the script arguments are known) and commit the data
 * file; on error the data file is removed. */
int roteq_plots_data_finish(roteq_plots_job *job, roteq_ofile *of);
/* Write a gnuplot data value: %.17g, or NaN (the scripts `set datafile missing NaN`). */
void roteq_plots_put(FILE *f, double x);
/* A quoted column header (gnuplot reads "..." as one header token); '"' becomes '\''. */
void roteq_plots_put_header(FILE *f, const char *s);

/* Run `gnuplot -c SCRIPT DATA OUT ARGS...`, drawing into a temporary file that is renamed to
 * NAME.FORMAT only when gnuplot succeeded and wrote something. ROTEQ_ERUNTIME when gnuplot is
 * missing or fails (its last error line in the message). */
int roteq_plots_job_run(roteq_plots_job *job);
/* Folder holding the scripts: $ROTEQ_PLOTS_DIR, else the source folder, else the installed one,
 * else EXE_DIR/../share/roteq/plots. */
int roteq_plots_scripts_dir(char *buf, size_t len);

/* ---- figure kinds (fig_*.c): write the data file and set the script arguments ------------- */

typedef int (*roteq_plots_prepare)(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                                   const roteq_plot_options *opt, FILE *data);

int roteq_plots_prepare_norm(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                             const roteq_plot_options *opt, FILE *data);
int roteq_plots_prepare_angle(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                              const roteq_plot_options *opt, FILE *data);
int roteq_plots_prepare_transient(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                                  const roteq_plot_options *opt, FILE *data);
int roteq_plots_prepare_histogram(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                                  const roteq_plot_options *opt, FILE *data);
int roteq_plots_prepare_balance(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                                const roteq_plot_options *opt, FILE *data);
int roteq_plots_prepare_muon(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                             const roteq_plot_options *opt, FILE *data);
int roteq_plots_prepare_verify(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                               const roteq_plot_options *opt, FILE *data);

/* Small statistics shared by the kinds (stats.c). */
int roteq_plots_cmp_double(const void *a, const void *b);
/* Linear-interpolated quantile of sorted finite x[0..n-1] (type 7, as numpy's default). */
double roteq_plots_quantile(const double *sorted, size_t n, double p);

#endif
