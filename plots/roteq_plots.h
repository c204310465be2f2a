/* roteq_plots.h - figures drawn by gnuplot from the .gp scripts in plots/. The C side only
 * prepares data files (beside the figure, so users can restyle with gnuplot alone) and runs
 * `gnuplot -c script.gp DATA OUT ...`; it never builds a whole script as a string. */
#ifndef ROTEQ_PLOTS_H
#define ROTEQ_PLOTS_H

#include <stddef.h>

typedef struct {
    const char *out_dir; /* where the figure and its data file go (created if missing) */
    const char *format;  /* "png" (default) or "svg" */
    const char *title;   /* NULL: a title derived from the input */
    int log_y;           /* logarithmic y axis (norm, angle, balance, transient) */
    /* Added by the plots issue; zero-initialised callers keep the defaults. */
    const char *name; /* base name of the outputs NAME.dat and NAME.FORMAT; NULL: the kind */
    double max_step;  /* norm, angle, transient: draw steps <= max_step only; 0: all */
} roteq_plot_options;

/* Kinds: "norm", "angle", "histogram", "balance", "verify", "transient" (plots/README.md says what
 * each reads and draws). Draw figure `kind` from `inputs` (CSV files in the formats of
 * docs/FORMATS.md; "transient" compares two or more groups, "balance" two or more runs or
 * layers) into opt->out_dir (opt may be NULL: ".", png). The figure's path is written to `figure`
 * when non-NULL. An input may be given as LABEL=PATH to name its run in the legend (default: the
 * group or file name). The data file NAME.dat is written beside the figure whenever the inputs
 * were valid, also when gnuplot then fails. Errors: ROTEQ_EIO/EFORMAT/ENOTFOUND/EINVAL naming the
 * file, line and column for bad input; ROTEQ_ERUNTIME when gnuplot is missing or fails (with its
 * last error line). */
int roteq_plot(const char *kind, const char *const *inputs, size_t ninputs,
               const roteq_plot_options *opt, char *figure, size_t figure_len);

/* What roteq_plot() checks before it reads anything: the folder opt->out_dir (created if
 * missing) takes the outputs NAME.dat and NAME.FORMAT, neither is a directory, neither is the
 * same file as an input (PATH or LABEL=PATH, under any name) or as the other. ROTEQ_EIO
 * "cannot write 'P': ..." for an output that cannot be written, ROTEQ_EINVAL naming both files
 * for an output that is an input; callers run it before their own work too. */
int roteq_plot_check_outputs(const char *kind, const char *const *inputs, size_t ninputs,
                             const roteq_plot_options *opt);

/* The folder holding the .gp scripts (and gallery.sh): $ROTEQ_PLOTS_DIR, else the source folder,
 * else the installed copy, else EXE_DIR/../share/roteq/plots. ROTEQ_ENOTFOUND when none has
 * style.gp. */
int roteq_plot_scripts_dir(char *buf, size_t len);

/* The figure kinds in order, with a one-line summary, for usage texts; NULL past the end. */
const char *roteq_plot_kind(size_t i, const char **summary);

#endif
