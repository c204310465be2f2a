/* fig_series.c - the figures drawn from series CSVs (docs/FORMATS.md section 2): norm vs step,
 * angular update vs step (figures 1 and 2, script series.gp) and the warmup transient (figure 6,
 * script transient.gp). A series row holds across-neuron statistics of one recorded step for one
 * group (an optimizer in `roteq simulate --out`, a layer in `roteq analyze --series`).
 *
 * The prediction drawn is the `pred_*` column of the input: theory stays the one source and the
 * plot never recomputes it. The equilibrium line is the `eq_norm`/`eq_angle` column when the
 * writer provides a value for the group, else the prediction at the group's last recorded step,
 * also when --max-step draws only the first steps (the transient has settled there when the run
 * is long enough; the data file says which was used). */
#include "plots_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const roteq_plots_csv *t;
    const char *group;
    char label[256];
    size_t *rows; /* row indices of this group, file order */
    size_t nrows;
    double eq_norm, eq_angle;
    int eq_norm_from_column, eq_angle_from_column; /* else the prediction at the last step */
} series_group;

typedef struct {
    series_group *g;
    size_t n;
} series_set;

static void series_free(series_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->g[i].rows);
    free(s->g);
}

static const char *const COL_STEP[] = {"step", NULL};

static int group_count_in(roteq_plots_csv *const *tables, size_t n, const char *name)
{
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        long gc = roteq_plots_csv_col(tables[i], "group");
        for (size_t r = 0; r < tables[i]->nrows; r++)
            if (strcmp(roteq_plots_csv_str(tables[i], r, gc), name) == 0) {
                count++;
                break;
            }
    }
    return count;
}

/* Collect the groups of every input (rows with step <= max_step when max_step > 0). */
static int series_collect(roteq_plots_csv *const *tables, size_t n, double max_step, series_set *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        const roteq_plots_csv *t = tables[i];
        long sc, gc = roteq_plots_csv_col(t, "group");
        int status = roteq_plots_csv_need(t, COL_STEP, &sc);
        if (status)
            return status;
        const char **names = NULL;
        size_t ng = 1;
        static const char *const whole[] = {""};
        if (gc >= 0 && (status = roteq_plots_csv_groups(t, gc, &names, &ng)))
            return status;
        if (t->nrows == 0) {
            free(names);
            return roteq_error_set(ROTEQ_EFORMAT, "%s: no data rows", t->path);
        }
        series_group *grown = realloc(s->g, (s->n + ng) * sizeof *s->g);
        if (grown == NULL) {
            free(names);
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        }
        s->g = grown;
        for (size_t k = 0; k < ng; k++) {
            series_group *g = &s->g[s->n];
            memset(g, 0, sizeof *g);
            g->t = t;
            g->group = names ? names[k] : whole[0];
            g->rows = malloc(t->nrows * sizeof *g->rows);
            if (g->rows == NULL) {
                free(names);
                return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            }
            s->n++;
            for (size_t r = 0; r < t->nrows; r++) {
                if (gc >= 0 && strcmp(roteq_plots_csv_str(t, r, gc), g->group) != 0)
                    continue;
                double step;
                if ((status = roteq_plots_csv_num(t, r, sc, &step))) {
                    free(names);
                    return status;
                }
                if (max_step > 0 && step > max_step)
                    continue;
                g->rows[g->nrows++] = r;
            }
            /* Legend: LABEL for a one-group file given as LABEL=PATH, "LABEL: group" for more;
             * the file name joins the group name when the same group comes from several files. */
            char base[128];
            roteq_plots_basename(t->path, base, sizeof base);
            if (t->label && ng == 1)
                snprintf(g->label, sizeof g->label, "%s", t->label);
            else if (t->label)
                snprintf(g->label, sizeof g->label, "%s: %s", t->label, g->group);
            else if (g->group[0] == '\0')
                snprintf(g->label, sizeof g->label, "%s", base);
            else if (group_count_in(tables, n, g->group) > 1)
                snprintf(g->label, sizeof g->label, "%s: %s", base, g->group);
            else
                snprintf(g->label, sizeof g->label, "%s", g->group);
            if (g->nrows < 2) {
                status = roteq_error_set(
                    ROTEQ_EFORMAT,
                    "%s: %s '%s' has %zu recorded step%s%s; a curve needs two or more", t->path,
                    gc >= 0 ? "group" : "file", g->label, g->nrows, g->nrows == 1 ? "" : "s",
                    max_step > 0 ? " within --max-step" : "");
                free(names);
                return status;
            }
        }
        free(names);
    }
    return ROTEQ_OK;
}

/* The equilibrium of a group, for norm and angle separately: the last finite value of the eq_*
 * column if the column exists and the group has one, else the prediction at the last recorded
 * step of the whole run (a writer leaves eq_norm empty where theory has no static norm, e.g. the
 * rotational variants, whose norm is whatever the initialisation gave). */
static int series_equilibrium(series_group *g)
{
    const roteq_plots_csv *t = g->t;
    long en = roteq_plots_csv_col(t, "eq_norm"), ea = roteq_plots_csv_col(t, "eq_angle");
    long pn = roteq_plots_csv_col(t, "pred_norm"), pa = roteq_plots_csv_col(t, "pred_angle");
    long gc = roteq_plots_csv_col(t, "group");
    double col[2] = {(double)NAN, (double)NAN}, pred[2] = {(double)NAN, (double)NAN};
    const long cc[2] = {en, ea}, pc[2] = {pn, pa};
    /* Every row of the group, also those beyond --max-step: the last prediction of the run. */
    for (size_t r = 0; r < t->nrows; r++) {
        if (gc >= 0 && strcmp(roteq_plots_csv_str(t, r, gc), g->group) != 0)
            continue;
        for (int k = 0; k < 2; k++) {
            double v;
            int status;
            if (cc[k] >= 0) {
                if ((status = roteq_plots_csv_num(t, r, cc[k], &v)))
                    return status;
                if (isfinite(v))
                    col[k] = v;
            }
            if (pc[k] >= 0) {
                if ((status = roteq_plots_csv_num(t, r, pc[k], &v)))
                    return status;
                if (isfinite(v))
                    pred[k] = v;
            }
        }
    }
    g->eq_norm_from_column = isfinite(col[0]);
    g->eq_angle_from_column = isfinite(col[1]);
    g->eq_norm = g->eq_norm_from_column ? col[0] : pred[0];
    g->eq_angle = g->eq_angle_from_column ? col[1] : pred[1];
    return ROTEQ_OK;
}

typedef struct {
    const char *measured, *q05, *q95, *pred;
    const char *what; /* for messages */
} series_columns;

/* A layer's type: its name with every dot-separated component made of digits only replaced by
 * '*' (h.3.attn.q.weight -> h.*.attn.q.weight), so that a transformer's repeated blocks fall
 * into one type per projection. */
static void layer_type(const char *name, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = name; *p && o + 2 < cap;) {
        size_t len = strcspn(p, ".");
        size_t digits = strspn(p, "0123456789");
        if (len > 0 && digits == len) {
            out[o++] = '*';
        } else {
            for (size_t k = 0; k < len && o + 2 < cap; k++)
                out[o++] = p[k];
        }
        p += len;
        if (*p == '.') {
            out[o++] = '.';
            p++;
        }
    }
    out[o] = '\0';
}

/* The panels of a figure with more than four groups, as the series.gp argument PANELS: words
 * "FIRST TITLE FIRST TITLE ...", FIRST the first block of the panel (blocks are written in
 * `order`), TITLE quoted. Groups of one type share a panel, each in its own colour, so that 20+
 * layers stay readable; types with a single group share one panel "other layers" when there are
 * two or more such and some type has several groups. When no type has several groups (a small
 * CNN's ten layers), or the titles do not fit in one script argument, PANELS is empty and each
 * group gets its own panel. */
static int series_panels(const series_set *s, size_t *order, char *panels, size_t cap)
{
    char(*type)[256] = calloc(s->n, sizeof *type);
    size_t *count = calloc(s->n, sizeof *count);
    int status = ROTEQ_OK;
    if (type == NULL || count == NULL) {
        status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto done;
    }
    size_t singles = 0, multi = 0;
    for (size_t i = 0; i < s->n; i++)
        layer_type(s->g[i].label, type[i], sizeof type[i]);
    for (size_t i = 0; i < s->n; i++)
        for (size_t j = 0; j < s->n; j++)
            count[i] += strcmp(type[i], type[j]) == 0;
    for (size_t i = 0; i < s->n; i++) {
        singles += count[i] == 1;
        multi += count[i] > 1;
    }
    /* Panel key: the type, "other layers" for the pooled singles, the label when no grouping. */
    if (multi == 0)
        goto done;
    for (size_t i = 0; i < s->n; i++)
        if (count[i] == 1 && singles >= 2)
            snprintf(type[i], sizeof type[i], "other layers");
    size_t o = 0, used = 0;
    for (size_t i = 0; i < s->n; i++) { /* panels in order of first appearance */
        size_t first = 0;
        while (first < i && strcmp(type[first], type[i]) != 0)
            first++;
        if (first < i)
            continue;
        int n = snprintf(panels + used, cap - used, "%s%zu \"", used ? " " : "", o);
        used += n > 0 ? (size_t)n : 0;
        for (const char *c = type[i]; *c && used + 3 < cap; c++)
            panels[used++] = *c == '"' ? '\'' : *c;
        if (used + 2 >= cap) { /* one panel per group instead */
            panels[0] = '\0';
            for (size_t j = 0; j < s->n; j++)
                order[j] = j;
            goto done;
        }
        panels[used++] = '"';
        panels[used] = '\0';
        for (size_t j = i; j < s->n; j++)
            if (strcmp(type[j], type[i]) == 0)
                order[o++] = j;
    }
done:
    free(type);
    free(count);
    return status;
}

static int write_series(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                        const roteq_plot_options *opt, FILE *data, const series_columns *cols,
                        const char *ylabel)
{
    series_set s;
    size_t *order = NULL;
    char panels[ROTEQ_PLOTS_ARG_MAX] = "";
    int status = series_collect(tables, n, opt ? opt->max_step : 0, &s);
    if (status)
        goto done;
    if ((order = malloc(s.n * sizeof *order)) == NULL) {
        status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < s.n; i++)
        order[i] = i;
    if (s.n > 4 && (status = series_panels(&s, order, panels, sizeof panels)))
        goto done;
    int log_y = opt && opt->log_y, eq_columns = 1;
    fprintf(data,
            "# %zu blocks (gnuplot index 0..%zu), one per group; columns: step, measured "
            "(%s, header = legend), %s, %s, %s, equilibrium\n",
            s.n, s.n - 1, cols->measured, cols->q05, cols->q95, cols->pred);
    for (size_t i = 0; i < s.n; i++) {
        series_group *g = &s.g[order[i]];
        const roteq_plots_csv *t = g->t;
        const char *const need[][2] = {{cols->measured, NULL},
                                       {cols->q05, NULL},
                                       {cols->q95, NULL},
                                       {cols->pred, NULL},
                                       {"step", NULL}};
        long c[5];
        for (int k = 0; k < 5; k++)
            if ((status = roteq_plots_csv_need(t, need[k], &c[k])))
                goto done;
        if ((status = series_equilibrium(g)))
            goto done;
        int is_norm = strcmp(cols->what, "norm") == 0;
        double eq = is_norm ? g->eq_norm : g->eq_angle;
        int from_column = is_norm ? g->eq_norm_from_column : g->eq_angle_from_column;
        eq_columns &= from_column;
        fprintf(data, "# block %zu: %s from %s; equilibrium %s\n", i, g->label, t->path,
                from_column ? "from the eq_* column" : "= prediction at the last step");
        if (i > 0)
            fputs("\n\n", data);
        fputs("\"step\" ", data);
        roteq_plots_put_header(data, g->label);
        fprintf(data, " \"q05\" \"q95\" \"predicted\" \"equilibrium\"\n");
        size_t finite = 0, positive = 0;
        for (size_t k = 0; k < g->nrows; k++) {
            double v[5];
            for (int j = 0; j < 5; j++)
                if ((status = roteq_plots_csv_num(t, g->rows[k], c[j], &v[j])))
                    goto done;
            finite += isfinite(v[0]) != 0;
            positive += isfinite(v[0]) && v[0] > 0;
            roteq_plots_put(data, v[4]);
            for (int j = 0; j < 4; j++) {
                fputc(' ', data);
                roteq_plots_put(data, v[j]);
            }
            fputc(' ', data);
            roteq_plots_put(data, eq);
            fputc('\n', data);
        }
        if (finite == 0) {
            status = roteq_error_set(ROTEQ_EFORMAT, "%s: '%s' has no finite %s value for %s",
                                     t->path, cols->measured, cols->what, g->label);
            goto done;
        }
        if (log_y && positive == 0) {
            status =
                roteq_error_set(ROTEQ_EFORMAT, "%s: --log-y but '%s' has no positive value for %s",
                                t->path, cols->measured, g->label);
            goto done;
        }
    }
    char title[512];
    if (opt && opt->title)
        snprintf(title, sizeof title, "%s", opt->title);
    else
        snprintf(title, sizeof title, "%s vs step", ylabel);
    if ((status = roteq_plots_job_arg(job, "%s", title)) ||
        (status = roteq_plots_job_arg(job, "%s", ylabel)) ||
        (status = roteq_plots_job_arg(job, "%d", log_y)) ||
        (status = roteq_plots_job_arg(job, "%zu", s.n)) ||
        (status = roteq_plots_job_arg(
             job, "%s", eq_columns ? "equilibrium" : "prediction at the last step")) ||
        (status = roteq_plots_job_arg(job, "%s", panels)))
        goto done;
done:
    free(order);
    series_free(&s);
    return status;
}

int roteq_plots_prepare_norm(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                             const roteq_plot_options *opt, FILE *data)
{
    static const series_columns cols = {"norm_mean", "norm_q05", "norm_q95", "pred_norm", "norm"};
    return write_series(job, tables, n, opt, data, &cols, "weight norm ‖w‖");
}

int roteq_plots_prepare_angle(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                              const roteq_plot_options *opt, FILE *data)
{
    static const series_columns cols = {"angle_rms", "angle_q05", "angle_q95", "pred_angle",
                                        "angle"};
    return write_series(job, tables, n, opt, data, &cols, "angular update (rad)");
}

/* Figure 6: the first steps of each group, angular update and norm relative to the group's
 * equilibrium, so that AdamW's early over- or under-rotation and RV-AdamW's flat start share
 * one scale. */
int roteq_plots_prepare_transient(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                                  const roteq_plot_options *opt, FILE *data)
{
    series_set s;
    int status = series_collect(tables, n, opt ? opt->max_step : 0, &s);
    if (status)
        goto done;
    if (s.n < 2) {
        status = roteq_error_set(ROTEQ_EINVAL,
                                 "transient compares runs: give two or more groups "
                                 "(e.g. adamw and rv_adamw series), got %zu",
                                 s.n);
        goto done;
    }
    fprintf(data,
            "# %zu blocks (gnuplot index 0..%zu), one per group; columns: step, "
            "angle_rms/eq_angle (header = legend), pred_angle/eq_angle, "
            "norm_mean/eq_norm, pred_norm/eq_norm, angle_rms, norm_mean\n",
            s.n, s.n - 1);
    static const char *const names[] = {"step", "angle_rms", "pred_angle", "norm_mean",
                                        "pred_norm"};
    for (size_t i = 0; i < s.n; i++) {
        series_group *g = &s.g[i];
        const roteq_plots_csv *t = g->t;
        long c[5];
        for (int k = 0; k < 5; k++) {
            const char *const need[] = {names[k], NULL};
            if ((status = roteq_plots_csv_need(t, need, &c[k])))
                goto done;
        }
        if ((status = series_equilibrium(g)))
            goto done;
        if (!(g->eq_angle > 0) || !(g->eq_norm > 0)) {
            status = roteq_error_set(ROTEQ_EFORMAT,
                                     "%s: %s has no positive equilibrium (eq_* or the last "
                                     "pred_* values): the transient is drawn relative to it",
                                     t->path, g->label);
            goto done;
        }
        fprintf(data,
                "# block %zu: %s from %s; equilibrium norm %.17g (%s), angular update %.17g "
                "(%s)\n",
                i, g->label, t->path, g->eq_norm,
                g->eq_norm_from_column ? "eq_norm column" : "prediction at the last step",
                g->eq_angle,
                g->eq_angle_from_column ? "eq_angle column" : "prediction at the last step");
        if (i > 0)
            fputs("\n\n", data);
        fputs("\"step\" ", data);
        roteq_plots_put_header(data, g->label);
        fputs(" \"pred_angle_rel\" \"norm_rel\" \"pred_norm_rel\" \"angle_rms\" \"norm_mean\"\n",
              data);
        for (size_t k = 0; k < g->nrows; k++) {
            double v[5];
            for (int j = 0; j < 5; j++)
                if ((status = roteq_plots_csv_num(t, g->rows[k], c[j], &v[j])))
                    goto done;
            const double out[7] = {v[0],
                                   v[1] / g->eq_angle,
                                   v[2] / g->eq_angle,
                                   v[3] / g->eq_norm,
                                   v[4] / g->eq_norm,
                                   v[1],
                                   v[3]};
            for (int j = 0; j < 7; j++) {
                if (j)
                    fputc(' ', data);
                roteq_plots_put(data, out[j]);
            }
            fputc('\n', data);
        }
    }
    char title[512];
    if (opt && opt->title)
        snprintf(title, sizeof title, "%s", opt->title);
    else
        snprintf(title, sizeof title, "warmup: rotation relative to equilibrium");
    if ((status = roteq_plots_job_arg(job, "%s", title)) ||
        (status = roteq_plots_job_arg(job, "%d", opt && opt->log_y)) ||
        (status = roteq_plots_job_arg(job, "%zu", s.n)))
        goto done;
done:
    series_free(&s);
    return status;
}
