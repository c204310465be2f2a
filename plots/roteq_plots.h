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
    int log_y;           /* angle figures: logarithmic y axis */
    /* Added by the plots issue; zero-initialised callers keep the defaults. */
    const char *name; /* base name of the outputs NAME.dat and NAME.FORMAT; NULL: the kind */
    double max_step;  /* series figures: draw steps <= max_step only; 0: all (transient: all) */
} roteq_plot_options;

/* Kinds: "norm", "angle", "histogram", "balance", "verify", "transient" (see plots/README.md for
 * what each reads). Draw figure `kind` from `inputs` (files in the formats of docs/FORMATS.md;
 * "balance" and "transient" take two or more) into opt->out_dir; the figure's path is written to
 * `figure` when non-NULL. ROTEQ_ERUNTIME with a clear message when gnuplot is missing or fails.
 * An input may be given as LABEL=PATH to name its run in the legend (default: the file name).
 * The data file NAME.dat is written beside the figure in every case where the inputs were valid. */
int roteq_plot(const char *kind, const char *const *inputs, size_t ninputs,
               const roteq_plot_options *opt, char *figure, size_t figure_len);

/* The folder holding the .gp scripts (and gallery.sh): $ROTEQ_PLOTS_DIR, else the source folder,
 * else the installed copy, else EXE_DIR/../share/roteq/plots. ROTEQ_ENOTFOUND when none has
 * style.gp. */
int roteq_plot_scripts_dir(char *buf, size_t len);

/* The figure kinds in order, with a one-line summary, for usage texts; NULL past the end. */
const char *roteq_plot_kind(size_t i, const char **summary);

#endif
