/* fig_verify.c - figure 5, the verification grid: every row of `roteq verify --out` or
 * `roteq sweep --out` (CSV rows, sweep/README.md) as one point predicted vs measured, for the
 * equilibrium norm and the angular update, on log-log axes around the line y = x. One point style
 * per optimizer; rows whose formula is approximate (status APPROX, or pred_exact = 0) are ringed,
 * rows that FAILed are crossed, so a reader sees at once which formulas hold exactly. A second
 * row of panels shows the relative error in percent, which the log-log panels cannot resolve.
 *
 * Columns read by name: optimizer, pred_norm, pred_angle, norm, angle, and when present
 * norm_ci_lo/norm_ci_hi/angle_ci_lo/angle_ci_hi (error bars), pred_exact and status. */
#include "plots_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int roteq_plots_prepare_verify(roteq_plots_job *job, roteq_plots_csv *const *tables, size_t n,
                               const roteq_plot_options *opt, FILE *data)
{
    static const char *const need_names[][3] = {
        {"optimizer", NULL, NULL},  {"pred_norm", NULL, NULL},         {"norm", "norm_mean", NULL},
        {"pred_angle", NULL, NULL}, {"angle", "angular_update", NULL},
    };
    static const char *const opt_names[] = {"norm_ci_lo",  "norm_ci_hi", "angle_ci_lo",
                                            "angle_ci_hi", "pred_exact", "status"};
    /* (table, optimizer) pairs in order of first appearance across inputs. */
    const char **groups = NULL;
    size_t ngroups = 0;
    int status = ROTEQ_OK;
    long cols[8][11];
    if (n > 8)
        return roteq_error_set(ROTEQ_EINVAL, "verify draws at most 8 row files, got %zu", n);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 5; k++)
            if ((status = roteq_plots_csv_need(tables[i], need_names[k], &cols[i][k])))
                goto done;
        for (int k = 0; k < 6; k++)
            cols[i][5 + k] = roteq_plots_csv_col(tables[i], opt_names[k]);
        const char **g;
        size_t ng;
        if ((status = roteq_plots_csv_groups(tables[i], cols[i][0], &g, &ng)))
            goto done;
        for (size_t k = 0; k < ng; k++) {
            size_t j = 0;
            while (j < ngroups && strcmp(groups[j], g[k]) != 0)
                j++;
            if (j < ngroups)
                continue;
            const char **grown = realloc(groups, (ngroups + 1) * sizeof *groups);
            if (grown == NULL) {
                free(g);
                status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
                goto done;
            }
            groups = grown;
            groups[ngroups++] = g[k];
        }
        free(g);
    }
    fprintf(data,
            "# %zu blocks (gnuplot index), one per optimizer; columns: pred_norm, norm "
            "(header = legend), norm_ci_lo, norm_ci_hi, pred_angle, angle, angle_ci_lo, "
            "angle_ci_hi, approx (1: approximate formula), fail (1: status FAIL), norm error %%, "
            "angle error %% (100 (measured - predicted) / predicted)\n",
            ngroups);
    size_t usable = 0, skipped = 0;
    for (size_t j = 0; j < ngroups; j++) {
        if (j > 0)
            fputs("\n\n", data);
        fputs("\"pred_norm\" ", data);
        roteq_plots_put_header(data, groups[j]);
        fputs(" \"norm_ci_lo\" \"norm_ci_hi\" \"pred_angle\" \"angle\" \"angle_ci_lo\" "
              "\"angle_ci_hi\" \"approx\" \"fail\" \"norm_err_pct\" \"angle_err_pct\"\n",
              data);
        size_t rows = 0;
        for (size_t i = 0; i < n; i++) {
            const roteq_plots_csv *t = tables[i];
            const long *c = cols[i];
            for (size_t r = 0; r < t->nrows; r++) {
                if (strcmp(roteq_plots_csv_str(t, r, c[0]), groups[j]) != 0)
                    continue;
                const char *st = roteq_plots_csv_str(t, r, c[10]);
                if (strcmp(st, "ERROR") == 0 || strcmp(st, "UNKNOWN") == 0) {
                    skipped++;
                    continue;
                }
                double v[9];
                const int map[9] = {1, 2, 5, 6, 3, 4, 7, 8, 9};
                for (int k = 0; k < 9; k++)
                    if ((status = roteq_plots_csv_num(t, r, c[map[k]], &v[k])))
                        goto done;
                int approx = strcmp(st, "APPROX") == 0 || (c[9] >= 0 && v[8] == 0);
                int fail = strcmp(st, "FAIL") == 0;
                /* Log axes: a non-positive value cannot be drawn; it becomes missing. */
                for (int k = 0; k < 8; k++)
                    if (!(v[k] > 0))
                        v[k] = (double)NAN;
                if (!(isfinite(v[0]) && isfinite(v[1])) && !(isfinite(v[4]) && isfinite(v[5]))) {
                    skipped++;
                    continue;
                }
                usable++;
                rows++;
                for (int k = 0; k < 8; k++) {
                    roteq_plots_put(data, v[k]);
                    fputc(' ', data);
                }
                fprintf(data, "%d %d ", approx, fail);
                roteq_plots_put(data, 100.0 * (v[1] - v[0]) / v[0]);
                fputc(' ', data);
                roteq_plots_put(data, 100.0 * (v[5] - v[4]) / v[4]);
                fputc('\n', data);
            }
        }
        if (rows == 0) /* keep the block so the legend and point style stay per optimizer */
            fputs("NaN NaN NaN NaN NaN NaN NaN NaN 0 0 NaN NaN\n", data);
    }
    fprintf(data,
            "# %zu points drawn, %zu rows skipped (ERROR, UNKNOWN or no positive "
            "prediction and measurement)\n",
            usable, skipped);
    if (usable == 0) {
        status = roteq_error_set(ROTEQ_EFORMAT,
                                 "%s: no row with a positive prediction and measurement to draw "
                                 "(%zu skipped)",
                                 tables[0]->path, skipped);
        goto done;
    }
    char title[512];
    if (opt && opt->title)
        snprintf(title, sizeof title, "%s", opt->title);
    else
        snprintf(title, sizeof title, "verification: predicted vs measured (%zu points)", usable);
    /* The legend names go to the script as one word list (keyentry), so an optimizer with
     * points in one panel only still has its entry. */
    char legend[480] = "";
    size_t len = 0;
    for (size_t j = 0; j < ngroups && len + 1 < sizeof legend; j++) {
        len += (size_t)snprintf(legend + len, sizeof legend - len, "%s%s", j ? " " : "", groups[j]);
        for (size_t k = len - strlen(groups[j]); k < len && k < sizeof legend; k++)
            if (legend[k] == ' ' || legend[k] == '"' || legend[k] == '\'')
                legend[k] = '_';
    }
    if ((status = roteq_plots_job_arg(job, "%s", title)) ||
        (status = roteq_plots_job_arg(job, "%zu", ngroups)) ||
        (status = roteq_plots_job_arg(job, "%s", legend)))
        goto done;
done:
    free(groups);
    return status;
}
