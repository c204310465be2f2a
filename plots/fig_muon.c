/* fig_muon.c - figure 7, Muon's equilibrium against momentum: one summary of
 * `roteq simulate --optimizer muon --format json` per momentum (docs/FORMATS.md §4), the
 * measured per-row norm and RMS angular update with their confidence intervals beside theory's
 * three predictions (best, plain = uncorrelated updates, lionlike). Momentum correlates
 * successive orthogonalised updates, which the plain prediction ignores; the figure shows by how
 * much, and a second row of panels the error of each prediction in percent, which a log axis
 * cannot resolve.
 *
 * The inputs are one sweep: every setting but the momentum (shape, lr, weight decay, Nesterov,
 * ns_steps, adjust_lr, eps) must agree, and each momentum appears once. Predictions are read
 * from the summaries (theory/ stays the one source), never recomputed here. */
#include "plots_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Measured values and predictions, in data-file order after the momentum. */
enum {
    V_NORM,
    V_NORM_SE,
    V_NORM_BEST,
    V_NORM_PLAIN,
    V_NORM_LION,
    V_ANGLE,
    V_ANGLE_SE,
    V_ANGLE_BEST,
    V_ANGLE_PLAIN,
    V_ANGLE_LION,
    V_COUNT
};

static const char *const value_keys[V_COUNT] = {
    "row_norm",
    "row_norm_se",
    "predicted_norm",
    "predicted_norm_plain",
    "predicted_norm_lionlike",
    "row_angle_rms",
    "row_angle_rms_se",
    "predicted_angular_update",
    "predicted_angular_update_plain",
    "predicted_angular_update_lionlike",
};

/* The settings one sweep shares (compared as written). */
static const char *const setting_keys[] = {
    "hparams.shape.0",  "hparams.shape.1",  "hparams.lr",        "hparams.weight_decay",
    "hparams.nesterov", "hparams.ns_steps", "hparams.adjust_lr", "hparams.eps",
};
#define NSETTINGS (sizeof setting_keys / sizeof setting_keys[0])

typedef struct {
    double momentum;
    double v[V_COUNT];
    size_t input;
} muon_point;

static int need_key(const roteq_plots_csv *t, const char *key, long *col)
{
    if ((*col = roteq_plots_csv_col(t, key)) >= 0)
        return ROTEQ_OK;
    return roteq_error_set(ROTEQ_ENOTFOUND,
                           "%s: no key '%s': roteq plot muon reads the summaries of `roteq "
                           "simulate --optimizer muon --format json`",
                           t->path, key);
}

/* One summary into `p`: a Muon run, every value present, measured and predicted positive. */
static int read_point(const roteq_plots_csv *t, size_t input, muon_point *p)
{
    long col;
    int status = need_key(t, "optimizer", &col);
    if (status)
        return status;
    if (strcmp(roteq_plots_csv_str(t, 0, col), "muon") != 0)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: optimizer '%s': roteq plot muon reads the summaries of "
                               "`roteq simulate --optimizer muon --format json`",
                               t->path, roteq_plots_csv_str(t, 0, col));
    if ((status = need_key(t, "hparams.momentum", &col)) ||
        (status = roteq_plots_csv_num(t, 0, col, &p->momentum)))
        return status;
    if (!(p->momentum >= 0 && p->momentum < 1))
        return roteq_error_set(ROTEQ_EFORMAT, "%s: momentum %s is not in [0, 1)", t->path,
                               roteq_plots_csv_str(t, 0, col));
    for (int k = 0; k < V_COUNT; k++) {
        if ((status = need_key(t, value_keys[k], &col)) ||
            (status = roteq_plots_csv_num(t, 0, col, &p->v[k])))
            return status;
        int se = k == V_NORM_SE || k == V_ANGLE_SE; /* null with one matrix: no error bar */
        if (se ? !(isnan(p->v[k]) || p->v[k] >= 0) : !(p->v[k] > 0 && isfinite(p->v[k])))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %s is '%s', not a positive number", t->path,
                                   value_keys[k], roteq_plots_csv_str(t, 0, col));
    }
    p->input = input;
    return ROTEQ_OK;
}

/* Every setting of `t` as in the first summary `t0`. */
static int same_sweep(const roteq_plots_csv *t0, const roteq_plots_csv *t)
{
    for (size_t k = 0; k < NSETTINGS; k++) {
        long c0, c;
        int status = need_key(t0, setting_keys[k], &c0);
        if (status || (status = need_key(t, setting_keys[k], &c)))
            return status;
        const char *a = roteq_plots_csv_str(t0, 0, c0), *b = roteq_plots_csv_str(t, 0, c);
        if (strcmp(a, b) != 0)
            return roteq_error_set(ROTEQ_EINVAL,
                                   "%s: %s %s differs from %s in '%s': a muon figure is one "
                                   "sweep over momentum, every other setting must agree",
                                   t->path, setting_keys[k], b, a, t0->path);
    }
    return ROTEQ_OK;
}

static int cmp_momentum(const void *a, const void *b)
{
    const muon_point *x = a, *y = b;
    return (x->momentum > y->momentum) - (x->momentum < y->momentum);
}

static const char *str(const roteq_plots_csv *t, const char *key)
{
    return roteq_plots_csv_str(t, 0, roteq_plots_csv_col(t, key));
}

/* The command that wrote a summary, for the data file's '#' lines (hparams.nesterov is 1/0). */
static void put_command(FILE *f, const roteq_plots_csv *t)
{
    fprintf(f,
            "#   roteq simulate --optimizer muon --shape %sx%s --lr %s --weight-decay %s "
            "--momentum %s%s --ns-steps %s --adjust-lr %s --eps %s --matrices %s --steps %s "
            "--seed %s --format json\n",
            str(t, "hparams.shape.0"), str(t, "hparams.shape.1"), str(t, "hparams.lr"),
            str(t, "hparams.weight_decay"), str(t, "hparams.momentum"),
            strcmp(str(t, "hparams.nesterov"), "0") == 0 ? " --no-nesterov" : "",
            str(t, "hparams.ns_steps"), str(t, "hparams.adjust_lr"), str(t, "hparams.eps"),
            str(t, "matrices"), str(t, "steps"), str(t, "seed"));
}

/* One data row: momentum, x, tick label, then per quantity (norm, angle) measured, CI low and
 * high (+-1.96 SE), best, plain, lionlike; then per quantity the three errors
 * 100 (predicted/measured - 1) and the CI half-width in percent of the measurement. */
static void put_row(FILE *f, const muon_point *p)
{
    roteq_plots_put(f, p->momentum);
    fputc(' ', f);
    roteq_plots_put(f, 1.0 / (1.0 - p->momentum));
    fprintf(f, " \"%g\"", p->momentum);
    for (int q = 0; q < 2; q++) {
        const double *v = p->v + q * V_ANGLE;
        double ci = 1.96 * v[V_NORM_SE];
        const double cols[6] = {v[V_NORM],      v[V_NORM] - ci,  v[V_NORM] + ci,
                                v[V_NORM_BEST], v[V_NORM_PLAIN], v[V_NORM_LION]};
        for (int k = 0; k < 6; k++) {
            fputc(' ', f);
            roteq_plots_put(f, cols[k]);
        }
    }
    for (int q = 0; q < 2; q++) {
        const double *v = p->v + q * V_ANGLE;
        for (int k = V_NORM_BEST; k <= V_NORM_LION; k++) {
            fputc(' ', f);
            roteq_plots_put(f, 100.0 * (v[k] / v[V_NORM] - 1.0));
        }
        fputc(' ', f);
        roteq_plots_put(f, 100.0 * 1.96 * v[V_NORM_SE] / v[V_NORM]);
    }
    fputc('\n', f);
}

/* Half-range of the error panels in percent: room for best's errors and their intervals, at
 * least 2%, on a 1-2-5 step; larger errors are pinned to the edge and labelled by the script. */
static double error_range(const muon_point *p, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        for (int q = 0; q < 2; q++) {
            const double *v = p[i].v + q * V_ANGLE;
            double e = 100.0 * fabs(v[V_NORM_BEST] / v[V_NORM] - 1.0);
            double ci = isnan(v[V_NORM_SE]) ? 0 : 100.0 * 1.96 * v[V_NORM_SE] / v[V_NORM];
            worst = fmax(worst, 1.5 * (e + ci));
        }
    static const double steps[] = {2, 5, 10, 20, 50, 100, 200, 500};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
        if (worst <= steps[k])
            return steps[k];
    return 1000;
}

int roteq_plots_prepare_muon(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                             const roteq_plot_options *opt, FILE *data)
{
    muon_point *pts = calloc(n, sizeof *pts);
    if (pts == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    int status = ROTEQ_OK;
    for (size_t i = 0; i < n && status == ROTEQ_OK; i++) {
        status = read_point(tables[i], i, &pts[i]);
        if (status == ROTEQ_OK && i > 0)
            status = same_sweep(tables[0], tables[i]);
    }
    if (status == ROTEQ_OK && n < 2)
        status = roteq_error_set(ROTEQ_EINVAL,
                                 "%s: a sweep over momentum needs two or more summaries, got one",
                                 tables[0]->path);
    if (status)
        goto done;
    qsort(pts, n, sizeof *pts, cmp_momentum);
    for (size_t i = 1; i < n; i++)
        if (pts[i].momentum == pts[i - 1].momentum) {
            status = roteq_error_set(ROTEQ_EINVAL, "%s: momentum %g is also the momentum of '%s'",
                                     tables[pts[i].input]->path, pts[i].momentum,
                                     tables[pts[i - 1].input]->path);
            goto done;
        }
    fprintf(data, "# %zu momenta, each from the summary written by\n", n);
    for (size_t i = 0; i < n; i++)
        put_command(data, tables[pts[i].input]);
    fputs("# columns: 1 momentum, 2 x = 1/(1 - momentum), 3 tick label; row norm: 4 measured, "
          "5-6 its 95% CI (+-1.96 SE), 7 best, 8 plain, 9 lionlike; row RMS angle: 10 measured, "
          "11-12 CI, 13 best, 14 plain, 15 lionlike; norm error 100 (predicted/measured - 1): "
          "16 best, 17 plain, 18 lionlike, 19 CI half-width (%); angle error: 20-22, 23\n",
          data);
    fputs("\"momentum\" \"x\" \"tick\" \"row_norm\" \"norm_ci_lo\" \"norm_ci_hi\" \"best\" "
          "\"plain\" \"lionlike\" \"row_angle\" \"angle_ci_lo\" \"angle_ci_hi\" \"best\" "
          "\"plain\" \"lionlike\" \"norm_err_best\" \"norm_err_plain\" \"norm_err_lionlike\" "
          "\"norm_err_ci\" \"angle_err_best\" \"angle_err_plain\" \"angle_err_lionlike\" "
          "\"angle_err_ci\"\n",
          data);
    for (size_t i = 0; i < n; i++)
        put_row(data, &pts[i]);

    const roteq_plots_csv *t = tables[0];
    char title[512], setting[512];
    if (opt && opt->title)
        snprintf(title, sizeof title, "%s", opt->title);
    else
        snprintf(title, sizeof title, "Muon: equilibrium per row vs momentum");
    snprintf(setting, sizeof setting, "%sx%s, lr %s, weight decay %s, %s, ns_steps %s",
             str(t, "hparams.shape.0"), str(t, "hparams.shape.1"), str(t, "hparams.lr"),
             str(t, "hparams.weight_decay"),
             strcmp(str(t, "hparams.nesterov"), "0") == 0 ? "heavy ball" : "Nesterov",
             str(t, "hparams.ns_steps"));
    double lo = 1.0 / (1.0 - pts[0].momentum), hi = 1.0 / (1.0 - pts[n - 1].momentum);
    if ((status = roteq_plots_job_arg(job, "%s", title)) ||
        (status = roteq_plots_job_arg(job, "%s", setting)) ||
        (status = roteq_plots_job_arg(job, "%.17g", lo / 1.3)) ||
        (status = roteq_plots_job_arg(job, "%.17g", hi * 1.3)) ||
        (status = roteq_plots_job_arg(job, "%g", error_range(pts, n))))
        goto done;
done:
    free(pts);
    return status;
}
