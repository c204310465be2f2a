/* roteq_plots.h - figures drawn by gnuplot from the scripts in plots/*.gp. The C side only
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
} roteq_plot_options;

/* Kinds: "norm", "angle", "histogram", "balance", "verify", "transient" (see plots/README.md for
 * what each reads). Draw figure `kind` from `inputs` (files in the formats of docs/FORMATS.md;
 * "balance" and "transient" take two or more) into opt->out_dir; the figure's path is written to
 * `figure` when non-NULL. ROTEQ_ERUNTIME with a clear message when gnuplot is missing or fails. */
int roteq_plot(const char *kind, const char *const *inputs, size_t ninputs,
               const roteq_plot_options *opt, char *figure, size_t figure_len);

#endif
