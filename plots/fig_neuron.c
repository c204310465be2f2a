/* fig_neuron.c - figures about how rotation is shared out: the per-neuron histogram of
 * measured/predicted angular update per layer (figure 3, histogram.gp) and the balance across
 * layers of several runs side by side (figure 4, balance.gp), the paper's central picture:
 * decoupled weight decay (AdamW) equalises the angular update across layers and neurons where
 * Adam with L2 regularisation does not.
 *
 * Inputs are per-neuron CSVs (docs/FORMATS.md section 3) or, for the balance, also series CSVs
 * (section 2, one group per layer). Neurons whose status is not `ok` (dead or collapsed) are left
 * out and counted in the data file. The angular update of a layer is the RMS over its neurons,
 * the statistic the theory predicts (theory/README.md). */
#include "plots_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One layer of one input: its finite values, sorted. */
typedef struct {
    const roteq_plots_csv *t;
    const char *layer;
    char label[256];
    double *x;    /* measured/predicted ratio (histogram) or measured angular update (balance) */
    double *pred; /* balance: the prediction of each kept neuron, same order as x */
    size_t n, excluded;
    double meas, q05, q95, pred_rms; /* balance summaries */
} layer_values;

typedef struct {
    layer_values *l;
    size_t n;
} layer_set;

static void layers_free(layer_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->l[i].x);
        free(s->l[i].pred);
    }
    free(s->l);
    s->l = NULL;
    s->n = 0;
}

static const char *const COL_LAYER[] = {"layer", NULL};

/* Read every (input, layer) of per-neuron CSVs. `ratio`: collect measured/predicted (the `ratio`
 * column, else angular_update/pred_angle); otherwise the measured angular update with its
 * prediction. Only finite values with status ok (when there is a status column) are kept. */
static int read_layers(roteq_plots_csv *const *tables, size_t n, int ratio, layer_set *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        const roteq_plots_csv *t = tables[i];
        long lc, mc, pc = roteq_plots_csv_col(t, "pred_angle");
        long rc = roteq_plots_csv_col(t, "ratio"), sc = roteq_plots_csv_col(t, "status");
        static const char *const COL_MEAS[] = {"angular_update", NULL};
        int status = roteq_plots_csv_need(t, COL_LAYER, &lc);
        if (status == ROTEQ_OK && !(ratio && rc >= 0))
            status = roteq_plots_csv_need(t, COL_MEAS, &mc);
        else
            mc = roteq_plots_csv_col(t, "angular_update");
        if (status == ROTEQ_OK && ratio && rc < 0 && pc < 0) {
            static const char *const COL_RATIO[] = {"ratio", "pred_angle", NULL};
            status = roteq_plots_csv_need(t, COL_RATIO, &rc);
        }
        if (status)
            return status;
        const char **names;
        size_t nl;
        if ((status = roteq_plots_csv_groups(t, lc, &names, &nl)))
            return status;
        layer_values *grown = realloc(s->l, (s->n + nl) * sizeof *s->l);
        if (grown == NULL) {
            free(names);
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        }
        s->l = grown;
        for (size_t k = 0; k < nl; k++) {
            layer_values *L = &s->l[s->n++];
            memset(L, 0, sizeof *L);
            L->t = t;
            L->layer = names[k];
            if (t->label && nl == 1)
                snprintf(L->label, sizeof L->label, "%s", t->label);
            else if (t->label)
                snprintf(L->label, sizeof L->label, "%s: %s", t->label, names[k]);
            else
                snprintf(L->label, sizeof L->label, "%s", names[k]);
            L->x = malloc(t->nrows * sizeof *L->x);
            L->pred = malloc(t->nrows * sizeof *L->pred);
            if (L->x == NULL || L->pred == NULL) {
                free(names);
                return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            }
            for (size_t r = 0; r < t->nrows; r++) {
                if (strcmp(roteq_plots_csv_str(t, r, lc), names[k]) != 0)
                    continue;
                double m, p, q;
                if ((status = roteq_plots_csv_num(t, r, mc, &m)) ||
                    (status = roteq_plots_csv_num(t, r, pc, &p)) ||
                    (status = roteq_plots_csv_num(t, r, rc, &q))) {
                    free(names);
                    return status;
                }
                if (ratio && rc < 0)
                    q = m / p;
                double v = ratio ? q : m;
                int ok = sc < 0 || strcmp(roteq_plots_csv_str(t, r, sc), "ok") == 0;
                if (!ok || !isfinite(v) || v < 0) {
                    L->excluded++;
                    continue;
                }
                L->pred[L->n] = p;
                L->x[L->n++] = v;
            }
        }
        free(names);
    }
    return ROTEQ_OK;
}

/* ---- figure 3: histogram ---------------------------------------------------------------- */

int roteq_plots_prepare_histogram(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                                  const roteq_plot_options *opt, FILE *data)
{
    layer_set s;
    double *all = NULL;
    int status = read_layers(tables, n, 1, &s);
    if (status)
        goto done;
    size_t total = 0, nmax = 0, panels = 0;
    for (size_t i = 0; i < s.n; i++) {
        total += s.l[i].n;
        nmax = s.l[i].n > nmax ? s.l[i].n : nmax;
        panels += s.l[i].n > 0;
    }
    if (total == 0) {
        status = roteq_error_set(ROTEQ_EFORMAT,
                                 "%s: no neuron with status ok and a finite measured/predicted "
                                 "ratio (is pred_angle known?)",
                                 tables[0]->path);
        goto done;
    }
    all = malloc(total * sizeof *all);
    if (all == NULL) {
        status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto done;
    }
    size_t m = 0;
    for (size_t i = 0; i < s.n; i++) {
        memcpy(all + m, s.l[i].x, s.l[i].n * sizeof *all);
        m += s.l[i].n;
        qsort(s.l[i].x, s.l[i].n, sizeof *s.l[i].x, roteq_plots_cmp_double);
    }
    qsort(all, total, sizeof *all, roteq_plots_cmp_double);
    /* Shared bins over the central 99% of all ratios (extended to include 1, the prediction),
     * so panels compare; the few values outside are counted in the edge bins. Log-spaced when
     * the ratios span more than a factor 20 (Adam+L2 across heterogeneous neurons). */
    double lo = fmin(roteq_plots_quantile(all, total, 0.005), 1.0);
    double hi = fmax(roteq_plots_quantile(all, total, 0.995), 1.0);
    int logx = lo > 0 && hi / lo > 20;
    if (!(hi > lo)) {
        lo *= 0.95;
        hi = hi * 1.05 + 1e-12;
    }
    size_t nbins = (size_t)ceil(sqrt((double)nmax));
    nbins = nbins < 8 ? 8 : nbins > 40 ? 40 : nbins;
    double a = logx ? log(lo) : lo, b = logx ? log(hi) : hi;
    fprintf(data,
            "# %zu blocks (gnuplot index), one per layer with data; %zu bins %s from %.17g "
            "to %.17g (values outside are counted in the edge bins)\n",
            panels, nbins, logx ? "log-spaced" : "linear", lo, hi);
    fputs("# columns: bin centre, fraction of the layer's neurons (header = layer), bin left, bin "
          "right, count (header = summary)\n",
          data);
    size_t *count = calloc(nbins, sizeof *count);
    if (count == NULL) {
        status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto done;
    }
    size_t block = 0;
    for (size_t i = 0; i < s.n; i++) {
        layer_values *L = &s.l[i];
        if (L->n == 0) {
            fprintf(data,
                    "# layer %s of %s: no neuron with a finite ratio (%zu excluded): no panel\n",
                    L->layer, L->t->path, L->excluded);
            continue;
        }
        memset(count, 0, nbins * sizeof *count);
        for (size_t k = 0; k < L->n; k++) {
            double u = logx ? log(fmax(L->x[k], lo)) : L->x[k];
            double pos = (u - a) / (b - a) * (double)nbins;
            size_t bin = pos <= 0 ? 0 : pos >= (double)nbins ? nbins - 1 : (size_t)pos;
            count[bin]++;
        }
        /* The legend is two lines: the layer (header of column 2) and its summary (header of
         * column 5, the counts). */
        char summary[256];
        int len =
            snprintf(summary, sizeof summary, "n=%zu  median %.3g  5–95%% %.3g–%.3g", L->n,
                     roteq_plots_quantile(L->x, L->n, 0.5), roteq_plots_quantile(L->x, L->n, 0.05),
                     roteq_plots_quantile(L->x, L->n, 0.95));
        if (L->excluded && len > 0 && (size_t)len < sizeof summary)
            snprintf(summary + len, sizeof summary - (size_t)len, "  (%zu excluded)", L->excluded);
        if (block++ > 0)
            fputs("\n\n", data);
        fputs("\"centre\" ", data);
        roteq_plots_put_header(data, L->label);
        fputs(" \"left\" \"right\" ", data);
        roteq_plots_put_header(data, summary);
        fputc('\n', data);
        for (size_t k = 0; k < nbins; k++) {
            double e0 = a + (b - a) * (double)k / (double)nbins;
            double e1 = a + (b - a) * (double)(k + 1) / (double)nbins;
            if (logx) {
                e0 = exp(e0);
                e1 = exp(e1);
            }
            double c = logx ? sqrt(e0 * e1) : 0.5 * (e0 + e1);
            roteq_plots_put(data, c);
            fputc(' ', data);
            roteq_plots_put(data, (double)count[k] / (double)L->n);
            fputc(' ', data);
            roteq_plots_put(data, e0);
            fputc(' ', data);
            roteq_plots_put(data, e1);
            fprintf(data, " %zu\n", count[k]);
        }
    }
    free(count);
    char title[512];
    if (opt && opt->title)
        snprintf(title, sizeof title, "%s", opt->title);
    else
        snprintf(title, sizeof title, "per-neuron angular update, measured / predicted");
    if ((status = roteq_plots_job_arg(job, "%s", title)) ||
        (status = roteq_plots_job_arg(job, "%d", logx)) ||
        (status = roteq_plots_job_arg(job, "%zu", panels)))
        goto done;
done:
    free(all);
    layers_free(&s);
    return status;
}

/* ---- figure 4: balance ------------------------------------------------------------------ */

/* A series CSV as layers: per group, the RMS of angle_rms over the last quarter of its steps,
 * the mean of its 5% and 95% quantiles there, and pred_angle at the last step. */
static int series_layers(const roteq_plots_csv *t, layer_set *s)
{
    long gc, sc, ac, q5, q95, pc;
    static const char *const G[] = {"group", NULL}, *const S[] = {"step", NULL},
                             *const A[] = {"angle_rms", NULL}, *const Q5[] = {"angle_q05", NULL},
                             *const Q95[] = {"angle_q95", NULL}, *const P[] = {"pred_angle", NULL};
    int status;
    if ((status = roteq_plots_csv_need(t, G, &gc)) || (status = roteq_plots_csv_need(t, S, &sc)) ||
        (status = roteq_plots_csv_need(t, A, &ac)) || (status = roteq_plots_csv_need(t, Q5, &q5)) ||
        (status = roteq_plots_csv_need(t, Q95, &q95)) || (status = roteq_plots_csv_need(t, P, &pc)))
        return status;
    const char **names;
    size_t ng;
    if ((status = roteq_plots_csv_groups(t, gc, &names, &ng)))
        return status;
    layer_values *grown = realloc(s->l, (s->n + ng) * sizeof *s->l);
    if (grown == NULL) {
        free(names);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    s->l = grown;
    for (size_t k = 0; k < ng; k++) {
        layer_values *L = &s->l[s->n++];
        memset(L, 0, sizeof *L);
        L->t = t;
        L->layer = names[k];
        snprintf(L->label, sizeof L->label, "%s", names[k]);
        double last = -(double)INFINITY;
        for (size_t r = 0; r < t->nrows; r++) {
            double step;
            if (strcmp(roteq_plots_csv_str(t, r, gc), names[k]) != 0)
                continue;
            if ((status = roteq_plots_csv_num(t, r, sc, &step))) {
                free(names);
                return status;
            }
            last = fmax(last, step);
        }
        double sum2 = 0, s5 = 0, s95 = 0;
        size_t cnt = 0;
        L->pred_rms = (double)NAN;
        for (size_t r = 0; r < t->nrows; r++) {
            double step, v, a5, a95, p;
            if (strcmp(roteq_plots_csv_str(t, r, gc), names[k]) != 0)
                continue;
            if ((status = roteq_plots_csv_num(t, r, sc, &step)) ||
                (status = roteq_plots_csv_num(t, r, ac, &v)) ||
                (status = roteq_plots_csv_num(t, r, q5, &a5)) ||
                (status = roteq_plots_csv_num(t, r, q95, &a95)) ||
                (status = roteq_plots_csv_num(t, r, pc, &p))) {
                free(names);
                return status;
            }
            if (step == last)
                L->pred_rms = p;
            if (step < 0.75 * last || !isfinite(v))
                continue;
            sum2 += v * v;
            s5 += a5;
            s95 += a95;
            cnt++;
        }
        L->n = cnt;
        L->meas = cnt ? sqrt(sum2 / (double)cnt) : (double)NAN;
        L->q05 = cnt ? s5 / (double)cnt : (double)NAN;
        L->q95 = cnt ? s95 / (double)cnt : (double)NAN;
    }
    free(names);
    return ROTEQ_OK;
}

static void summarise(layer_values *L)
{
    double sum2 = 0, p2 = 0;
    size_t np = 0;
    for (size_t k = 0; k < L->n; k++) {
        sum2 += L->x[k] * L->x[k];
        if (isfinite(L->pred[k])) {
            p2 += L->pred[k] * L->pred[k];
            np++;
        }
    }
    L->meas = L->n ? sqrt(sum2 / (double)L->n) : (double)NAN;
    L->pred_rms = np ? sqrt(p2 / (double)np) : (double)NAN;
    double *sorted = malloc((L->n ? L->n : 1) * sizeof *sorted);
    if (sorted == NULL) {
        L->q05 = L->q95 = (double)NAN;
        return;
    }
    memcpy(sorted, L->x, L->n * sizeof *sorted);
    qsort(sorted, L->n, sizeof *sorted, roteq_plots_cmp_double);
    L->q05 = roteq_plots_quantile(sorted, L->n, 0.05);
    L->q95 = roteq_plots_quantile(sorted, L->n, 0.95);
    free(sorted);
}

typedef struct {
    layer_set layers; /* the layers of one run */
    char label[256];
    int per_neuron;
} balance_run;

typedef struct {
    double x, p;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    double x = ((const pair *)a)->x, y = ((const pair *)b)->x;
    return (x > y) - (x < y);
}

/* Order x by increasing value and carry p along. */
static int sort_pairs(double *x, double *p, size_t n)
{
    pair *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (tmp == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        tmp[i] = (pair){x[i], p[i]};
    qsort(tmp, n, sizeof *tmp, cmp_pair);
    for (size_t i = 0; i < n; i++) {
        x[i] = tmp[i].x;
        p[i] = tmp[i].p;
    }
    free(tmp);
    return ROTEQ_OK;
}

int roteq_plots_prepare_balance(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                                const roteq_plot_options *opt, FILE *data)
{
    balance_run *runs = calloc(n, sizeof *runs);
    const char **names = NULL; /* union of layer names, first appearance order */
    size_t nnames = 0;
    int status = ROTEQ_OK, all_single = 1;
    if (runs == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && status == ROTEQ_OK; i++) {
        const roteq_plots_csv *t = tables[i];
        balance_run *R = &runs[i];
        if (t->label)
            snprintf(R->label, sizeof R->label, "%s", t->label);
        else
            roteq_plots_basename(t->path, R->label, sizeof R->label);
        R->per_neuron = roteq_plots_csv_col(t, "angular_update") >= 0;
        if (R->per_neuron) {
            status = read_layers(&tables[i], 1, 0, &R->layers);
            for (size_t k = 0; k < R->layers.n; k++) {
                snprintf(R->layers.l[k].label, sizeof R->layers.l[k].label, "%s",
                         R->layers.l[k].layer);
                summarise(&R->layers.l[k]);
            }
        } else if (roteq_plots_csv_col(t, "angle_rms") >= 0) {
            status = series_layers(t, &R->layers);
        } else {
            status = roteq_error_set(ROTEQ_EFORMAT,
                                     "%s: neither a per-neuron CSV (column 'angular_update') nor a "
                                     "series CSV (column 'angle_rms')",
                                     t->path);
        }
        if (status == ROTEQ_OK && R->layers.n == 0)
            status = roteq_error_set(ROTEQ_EFORMAT, "%s: no data rows", t->path);
        all_single &= R->per_neuron && R->layers.n == 1;
    }
    if (status)
        goto done;
    if (n == 1 && runs[0].layers.n < 2) {
        status = roteq_error_set(ROTEQ_EINVAL,
                                 "balance compares layers or runs: %s has one layer; give two or "
                                 "more runs (e.g. AdamW=a.csv Adam+L2=b.csv)",
                                 tables[0]->path);
        goto done;
    }
    int log_y = opt && opt->log_y;
    const char *mode = all_single ? "neurons" : "layers";
    if (all_single) {
        /* Every run is one layer (the simulator's ensemble): draw each run's neurons sorted by
         * their angular update, so an equal share is a flat line and imbalance a slope. */
        fputs("# mode neurons: one block per run; columns: neuron rank (0..1), measured angular "
              "update sorted (header = legend), that neuron's prediction, measured/predicted\n",
              data);
        for (size_t i = 0; i < n; i++) {
            layer_values *L = &runs[i].layers.l[0];
            if (L->n == 0) {
                status = roteq_error_set(ROTEQ_EFORMAT,
                                         "%s: no neuron with status ok and a "
                                         "finite angular update",
                                         L->t->path);
                goto done;
            }
            if ((status = sort_pairs(L->x, L->pred, L->n)))
                goto done;
            fprintf(data,
                    "# block %zu: %s from %s, %zu neurons (%zu excluded), RMS %.17g, "
                    "predicted %.17g\n",
                    i, runs[i].label, L->t->path, L->n, L->excluded, L->meas, L->pred_rms);
            if (i > 0)
                fputs("\n\n", data);
            fputs("\"rank\" ", data);
            roteq_plots_put_header(data, runs[i].label);
            fputs(" \"predicted\" \"ratio\"\n", data);
            for (size_t k = 0; k < L->n; k++) {
                roteq_plots_put(data, ((double)k + 0.5) / (double)L->n);
                fputc(' ', data);
                roteq_plots_put(data, L->x[k]);
                fputc(' ', data);
                roteq_plots_put(data, L->pred[k]);
                fputc(' ', data);
                roteq_plots_put(data, L->x[k] / L->pred[k]);
                fputc('\n', data);
            }
        }
    } else {
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < runs[i].layers.n; k++) {
                const char *name = runs[i].layers.l[k].layer;
                size_t j = 0;
                while (j < nnames && strcmp(names[j], name) != 0)
                    j++;
                if (j < nnames)
                    continue;
                const char **grown = realloc(names, (nnames + 1) * sizeof *names);
                if (grown == NULL) {
                    status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
                    goto done;
                }
                names = grown;
                names[nnames++] = name;
            }
        fprintf(data,
                "# mode layers: %zu blocks (one per run) of %zu rows (one per layer); "
                "columns: layer position, measured RMS angular update (header = legend), "
                "q05, q95 across neurons, predicted, layer name\n",
                n, nnames);
        for (size_t i = 0; i < n; i++) {
            fprintf(data, "# block %zu: %s from %s (%s)\n", i, runs[i].label, tables[i]->path,
                    runs[i].per_neuron ? "per-neuron CSV: RMS over neurons with status ok"
                                       : "series CSV: RMS of angle_rms over the last quarter");
            if (i > 0)
                fputs("\n\n", data);
            fputs("\"x\" ", data);
            roteq_plots_put_header(data, runs[i].label);
            fputs(" \"q05\" \"q95\" \"predicted\" \"layer\"\n", data);
            for (size_t j = 0; j < nnames; j++) {
                const layer_values *L = NULL;
                for (size_t k = 0; k < runs[i].layers.n; k++)
                    if (strcmp(runs[i].layers.l[k].layer, names[j]) == 0)
                        L = &runs[i].layers.l[k];
                const double none = (double)NAN;
                const double v[4] = {L ? L->meas : none, L ? L->q05 : none, L ? L->q95 : none,
                                     L ? L->pred_rms : none};
                fprintf(data, "%zu", j);
                for (int c = 0; c < 4; c++) {
                    fputc(' ', data);
                    roteq_plots_put(data, v[c]);
                }
                fputc(' ', data);
                roteq_plots_put_header(data, names[j]);
                fputc('\n', data);
            }
        }
    }
    char title[512];
    if (opt && opt->title)
        snprintf(title, sizeof title, "%s", opt->title);
    else
        snprintf(title, sizeof title, "balance: angular update per %s",
                 all_single ? "neuron (sorted)" : "layer");
    if ((status = roteq_plots_job_arg(job, "%s", title)) ||
        (status = roteq_plots_job_arg(job, "%d", log_y)) ||
        (status = roteq_plots_job_arg(job, "%zu", n)) ||
        (status = roteq_plots_job_arg(job, "%s", mode)) ||
        (status = roteq_plots_job_arg(job, "%zu", all_single ? 0 : nnames)))
        goto done;
done:
    for (size_t i = 0; i < n; i++)
        layers_free(&runs[i].layers);
    free(runs);
    free(names);
    return status;
}
