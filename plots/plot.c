/* plot.c - roteq_plot(), the one entry point: look the kind up, read the inputs by column name,
 * let the kind write its data file and script arguments, then run gnuplot. The data file is
 * committed before gnuplot runs, so even when gnuplot is missing the user keeps the numbers and
 * the exact command to draw them. */
#include "plots_internal.h"

#include <string.h>

typedef struct {
    const char *name;
    const char *script;
    roteq_plots_prepare prepare;
    const char *summary;
    roteq_plots_reader read;
} plot_kind;

static const plot_kind kinds[] = {
    {"norm", "series.gp", roteq_plots_prepare_norm,
     "norm vs step: mean, 5-95% band, predicted transient, equilibrium (series CSV)",
     roteq_plots_csv_read},
    {"angle", "series.gp", roteq_plots_prepare_angle,
     "angular update vs step, the same way; --log-y (series CSV)", roteq_plots_csv_read},
    {"histogram", "histogram.gp", roteq_plots_prepare_histogram,
     "per-neuron measured/predicted angular update per layer (per-neuron CSV)",
     roteq_plots_csv_read},
    {"balance", "balance.gp", roteq_plots_prepare_balance,
     "angular update per layer, runs side by side (per-neuron/series CSVs)", roteq_plots_csv_read},
    {"verify", "verify.gp", roteq_plots_prepare_verify,
     "predicted vs measured, log-log and error in % (verify/sweep CSV rows)", roteq_plots_csv_read},
    {"transient", "transient.gp", roteq_plots_prepare_transient,
     "warmup: rotation and norm relative to equilibrium (series CSVs)", roteq_plots_csv_read},
    {"muon", "muon.gp", roteq_plots_prepare_muon,
     "Muon's row norm and angle vs momentum, 3 predictions (simulate JSONs)",
     roteq_plots_json_read},
};

const char *roteq_plot_kind(size_t i, const char **summary)
{
    if (i >= sizeof kinds / sizeof kinds[0])
        return NULL;
    if (summary)
        *summary = kinds[i].summary;
    return kinds[i].name;
}

int roteq_plot_scripts_dir(char *buf, size_t len)
{
    return roteq_plots_scripts_dir(buf, len);
}

/* A job's two outputs against the inputs and each other (roteq_plot_check_outputs). */
static int check_job(const roteq_plots_job *job, const char *const *inputs, size_t ninputs)
{
    const char *outs[2] = {job->data_path, job->figure_path};
    for (size_t o = 0; o < 2; o++) {
        for (size_t i = 0; i < ninputs; i++) {
            const char *path = roteq_plots_input_path(inputs[i]);
            if (strcmp(path, outs[o]) == 0 || roteq_same_file(path, outs[o]))
                return roteq_error_set(ROTEQ_EINVAL, "'%s' is the same file as the input '%s'",
                                       outs[o], path);
        }
        int status = roteq_ofile_check(outs[o], NULL, 0);
        if (status != ROTEQ_OK)
            return status;
    }
    if (roteq_same_file(outs[0], outs[1]))
        return roteq_error_set(ROTEQ_EINVAL,
                               "the figure '%s' and its data file '%s' are the same file", outs[1],
                               outs[0]);
    return ROTEQ_OK;
}

int roteq_plot_check_outputs(const char *kind, const char *const *inputs, size_t ninputs,
                             const roteq_plot_options *opt)
{
    roteq_plots_job job;
    int status = roteq_plots_job_init(&job, kind, "", opt);
    return status ? status : check_job(&job, inputs, ninputs);
}

int roteq_plot(const char *kind, const char *const *inputs, size_t ninputs,
               const roteq_plot_options *opt, char *figure, size_t figure_len)
{
    const plot_kind *k = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kind && strcmp(kind, kinds[i].name) == 0)
            k = &kinds[i];
    if (k == NULL)
        return roteq_error_set(ROTEQ_ENOTFOUND,
                               "unknown figure kind '%s' (known: norm, angle, histogram, balance, "
                               "verify, transient, muon)",
                               kind ? kind : "");
    if (ninputs == 0)
        return roteq_error_set(ROTEQ_EINVAL, "%s: no input file", kind);

    roteq_plots_job job;
    int status = roteq_plots_job_init(&job, k->name, k->script, opt);
    if (status || (status = check_job(&job, inputs, ninputs)))
        return status;
    roteq_plots_csv **tables = NULL;
    if ((status = roteq_plots_read_inputs(inputs, ninputs, k->read ? k->read : roteq_plots_csv_read,
                                          &tables)))
        return status;
    roteq_ofile *data = NULL;
    status = roteq_plots_data_open(&job, inputs, ninputs, tables, opt, &data);
    if (status == ROTEQ_OK) {
        status = k->prepare(&job, tables, ninputs, opt, roteq_ofile_stream(data));
        if (status == ROTEQ_OK)
            status = roteq_plots_data_finish(&job, data);
        else
            roteq_ofile_abort(data);
    }
    roteq_plots_free_inputs(tables, ninputs);
    if (status == ROTEQ_OK)
        status = roteq_plots_job_run(&job);
    if (status == ROTEQ_OK && figure != NULL && figure_len > 0)
        snprintf(figure, figure_len, "%s", job.figure_path);
    return status;
}
