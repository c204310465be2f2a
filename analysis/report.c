/* report.c - the analysis results as a table a person reads at a glance, a per-layer CSV, the
 * per-neuron CSV of docs/FORMATS.md §3 and the JSON of §5. Unknown values are '-' in the table,
 * empty in CSV and null in JSON: never a NaN. */
#include "roteq_analysis.h"
#include "roteq_util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cell(FILE *out, int width, const char *fmt, double x)
{
    if (isfinite(x))
        fprintf(out, fmt, width, x);
    else
        fprintf(out, "%*s", width, "-");
}

static void pct(FILE *out, int width, double x)
{
    if (isfinite(x) && fabs(x) < 1e3) /* beyond +100000%: a power of ten, not 150 digits */
        fprintf(out, "%+*.1f%%", width - 1, 100 * x);
    else if (isfinite(x))
        fprintf(out, "%+*.2g%%", width - 1, 100 * x);
    else
        fprintf(out, "%*s", width, "-");
}

static int check(FILE *out)
{
    return ferror(out) ? roteq_error_set(ROTEQ_EIO, "cannot write the report") : ROTEQ_OK;
}

static void write_balance(FILE *out, const roteq_analysis_result *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nlayers; i++)
        n += isfinite(r->layers[i].angular_update) && r->layers[i].angular_update > 0;
    if (isfinite(r->balance)) {
        fprintf(out,
                "balance (max/min of the layers' RMS angular update) over the %zu of %zu layers "
                "not classified as non-scale-invariant: %.3g",
                r->balance_layers, n, r->balance);
        if (isfinite(r->balance_pred))
            fprintf(out, ", predicted %.3g", r->balance_pred);
        fputc('\n', out);
    } else if (n > 1)
        fprintf(out,
                "balance: none of the %zu layers is scale-invariant or unclassified "
                "(the theory covers none of them)\n",
                n);
    if (isfinite(r->balance_all)) {
        fprintf(out, "balance over all layers: %.3g", r->balance_all);
        if (isfinite(r->balance_all_pred))
            fprintf(out, ", predicted %.3g", r->balance_all_pred);
        fputc('\n', out);
    }
}

/* One line per fact a reader of the table needs: classification evidence, left-out neurons,
 * snapshot gaps (and what a k-step angle implies), and both predictions where they differ. */
static void write_notes(FILE *out, const roteq_analysis_result *r)
{
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        if (L->evidence[0] && strcmp(L->evidence, "no grad_cos column") != 0)
            fprintf(out, "%s: scale-invariant %s (%s)\n", L->name,
                    L->scale_invariant > 0    ? "yes"
                    : L->scale_invariant == 0 ? "no"
                                              : "unknown",
                    L->evidence);
        if (L->dead || L->collapsed)
            fprintf(out, "%s: %zu dead and %zu collapsed neurons left out of the estimates\n",
                    L->name, L->dead, L->collapsed);
        if (strncmp(L->angle_source, "per-step from", 13) == 0)
            fprintf(out, "%s: angles %s\n", L->name, L->angle_source);
        if (!L->angle_judged && L->records > 1) {
            if (L->gap > 1)
                fprintf(out, "%s: snapshots %ld steps apart: angles span %ld updates; ", L->name,
                        L->gap, L->gap);
            else
                fprintf(out, "%s: snapshot gaps vary: angles span several updates; ", L->name);
            fputs("the rotation is not judged from them (the random-walk k-step model ignores "
                  "the updates' correlation)",
                  out);
            if (isfinite(L->implied_corr))
                fprintf(out,
                        "; implied update correlation %.3g (angle^2 / (k x predicted per-step "
                        "angle^2), 1 if uncorrelated)",
                        L->implied_corr);
            fputc('\n', out);
        }
        if (L->scheduled || strcmp(L->prediction, "transient") == 0) {
            fprintf(out, "%s: compared with the %s prediction", L->name,
                    strcmp(L->prediction, "transient") == 0 ? "transient" : "per-step equilibrium");
            if (L->scheduled)
                fputs(" (lr/weight decay follow a schedule)", out);
            fputs("; closed-form equilibrium at the window's values: norm ", out);
            cell(out, 0, "%*.4g", L->eq_norm);
            fputs(" (", out);
            pct(out, 0, L->rel_eq_norm);
            fputs("), angle ", out);
            cell(out, 0, "%*.4g", L->eq_angle);
            fputs(" (", out);
            pct(out, 0, L->rel_eq_angle);
            fputs(")\n", out);
        }
    }
}

static void write_explain(FILE *out, const roteq_analysis_result *r)
{
    fputs("\nexplain: the angle's deviation from the random-walk equilibrium, in parts of the "
          "predicted angle (analysis/README.md \"Explain\")\n",
          out);
    fprintf(out, "%-24s %9s %9s %9s %9s %9s %9s %9s %10s %10s %8s\n", "layer", "deviation",
            "upd.size", "norm resp", "radial", "correl.", "nonstat.", "residual", "cond.norm",
            "cond.angle", "upd/model");
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        const roteq_analysis_explain *E = &L->explain;
        fprintf(out, "%-24.24s", L->name);
        if (!E->valid) {
            fputs(" (no update_norm/update_radial columns)\n", out);
            continue;
        }
        double v[] = {E->deviation,   E->update_size,   E->norm_response, E->radial,
                      E->correlation, E->nonstationary, E->residual};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            fputc(' ', out);
            pct(out, 9, v[k]);
        }
        fputc(' ', out);
        cell(out, 10, "%*.4g", E->cond_norm);
        fputc(' ', out);
        cell(out, 10, "%*.4g", E->cond_angle);
        fputc(' ', out);
        cell(out, 8, "%*.3f", E->update_ratio);
        fputc('\n', out);
    }
}

/* Muon layers: the whole matrix (the measured angle needs every row one step apart). */
static void write_matrices(FILE *out, const roteq_analysis_result *r)
{
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        if (!L->has_matrix)
            continue;
        fprintf(out, "matrix %s %zux%zu: Frobenius norm ", L->name, L->matrix_rows, L->matrix_cols);
        cell(out, 0, "%*.4g", L->matrix_norm);
        fputs(" (predicted ", out);
        cell(out, 0, "%*.4g", L->matrix_pred_norm);
        fputs("), RMS matrix angle ", out);
        cell(out, 0, "%*.4g", L->matrix_angle);
        fputs(" (predicted ", out);
        cell(out, 0, "%*.4g", L->matrix_pred_angle);
        fputs(")\n", out);
    }
}

int roteq_analysis_write_text(FILE *out, const roteq_analysis_result *r)
{
    int w = 5;
    for (size_t i = 0; i < r->nlayers; i++) {
        int n = (int)strlen(r->layers[i].name);
        w = n > w ? n : w;
    }
    if (w > 40)
        w = 40;
    fprintf(out,
            "optimizer %s, tolerance %g%%, final window: last quarter of the records (at "
            "most %zu)\n\n",
            r->optimizer ? r->optimizer : "(none: no predictions)", 100 * r->tolerance, r->window);
    fprintf(out, "%-*s %6s %7s %8s %10s %10s %7s %10s %10s %7s %9s %6s %3s  %s\n", w, "layer",
            "dim", "neurons", "dead+col", "norm", "predicted", "error", "angle", "predicted",
            "error", "settled", "CV", "SI", "verdict");
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        fprintf(out, "%-*.*s ", w, w, L->name);
        if (L->dim)
            fprintf(out, "%6zu", L->dim);
        else
            fprintf(out, "%6s", "-");
        fprintf(out, " %7zu %8zu ", L->neurons, L->dead + L->collapsed);
        cell(out, 10, "%*.4g", L->norm);
        fputc(' ', out);
        cell(out, 10, "%*.4g", L->pred_norm);
        fputc(' ', out);
        pct(out, 7, L->rel_norm);
        fputc(' ', out);
        cell(out, 10, "%*.4g", L->angular_update);
        fputc(' ', out);
        cell(out, 10, "%*.4g", L->pred_angle);
        fputc(' ', out);
        pct(out, 7, L->rel_angle);
        if (L->converged_at >= 0)
            fprintf(out, " %9ld", L->converged_at);
        else
            fprintf(out, " %9s", "never");
        fputc(' ', out);
        cell(out, 6, "%*.3f", L->cv);
        fprintf(out, " %3s  %s",
                L->scale_invariant > 0    ? "yes"
                : L->scale_invariant == 0 ? "no"
                                          : "?",
                roteq_analysis_verdict_names[L->verdict]);
        if (L->verdict != ROTEQ_ANALYSIS_NO_DATA && L->verdict != ROTEQ_ANALYSIS_NO_PREDICTION &&
            L->detail[0] &&
            (L->verdict != ROTEQ_ANALYSIS_AT_EQUILIBRIUM || !L->angle_judged || L->collapsed))
            fprintf(out, " (%s)", L->detail);
        fputc('\n', out);
    }
    fputc('\n', out);
    write_matrices(out, r);
    write_balance(out, r);
    write_notes(out, r);
    if (r->explain)
        write_explain(out, r);
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        if (L->per_neuron == NULL)
            continue;
        fprintf(out, "\n%s, per neuron:\n%8s %10s %10s %8s  %s\n", L->name, "neuron", "norm",
                "angle", "ratio", "status");
        for (size_t k = 0; k < L->neurons; k++) {
            const roteq_analysis_neuron *n = &L->per_neuron[k];
            fprintf(out, "%8zu ", n->index);
            cell(out, 10, "%*.4g", n->norm);
            fputc(' ', out);
            cell(out, 10, "%*.4g", n->angular_update);
            fputc(' ', out);
            cell(out, 8, "%*.3f", n->pred_angle > 0 ? n->angular_update / n->pred_angle : DNAN);
            fprintf(out, "  %s\n", roteq_analysis_status_names[n->status]);
        }
    }
    return check(out);
}

/* The prediction the verdict was drawn against, as --against names it. */
static const char *against(const roteq_analysis_layer_result *L)
{
    return strcmp(L->prediction, "transient") == 0 ? "transient"
           : strcmp(L->prediction, "none") == 0    ? "none"
                                                   : "equilibrium";
}

static const char *csv_header = "layer,dim,neurons,dead,collapsed,records,first_step,last_step,"
                                "window_start,prediction,pred_norm,pred_angle,norm,"
                                "angular_update,rel_err_norm,rel_err_angle,converged_at_step,"
                                "rate,pred_rate,angular_update_cv,angular_update_q05,"
                                "angular_update_q50,angular_update_q95,verdict,ratio,"
                                "off_quantity,detail,against,eq_norm,eq_angle,tr_norm,tr_angle,"
                                "angle_judged,implied_update_correlation,scale_invariant,"
                                "grad_cos_rms,neuron_axis\n";

int roteq_analysis_write_csv(FILE *out, const roteq_analysis_result *r)
{
    fputs(csv_header, out);
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        fprintf(out, "%s,", L->name);
        if (L->dim)
            fprintf(out, "%zu", L->dim);
        fprintf(out, ",%zu,%zu,%zu,%zu,%ld,%ld,%ld,%s", L->neurons, L->dead, L->collapsed,
                L->records, L->first_step, L->last_step, L->window_start, L->prediction);
        double v[] = {L->pred_norm, L->pred_angle, L->norm,     L->angular_update,
                      L->norm_se,   L->angle_se,   L->rel_norm, L->rel_angle};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            fputc(',', out);
            roteq_fprint_csv_double(out, v[k]);
        }
        fputc(',', out);
        if (L->converged_at >= 0)
            fprintf(out, "%ld", L->converged_at);
        double w[] = {L->rate, L->pred_rate, L->cv, L->q05, L->q50, L->q95};
        for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
            fputc(',', out);
            roteq_fprint_csv_double(out, w[k]);
        }
        fprintf(out, ",%s,", roteq_analysis_verdict_names[L->verdict]);
        roteq_fprint_csv_double(out, L->ratio);
        fprintf(out, ",%s,\"%s\",%s", L->off_quantity ? L->off_quantity : "", L->detail,
                against(L));
        double x[] = {L->eq_norm, L->eq_angle, L->tr_norm, L->tr_angle};
        for (size_t k = 0; k < sizeof x / sizeof x[0]; k++) {
            fputc(',', out);
            roteq_fprint_csv_double(out, x[k]);
        }
        fprintf(out, ",%d,", L->angle_judged);
        roteq_fprint_csv_double(out, L->implied_corr);
        fprintf(out, ",%s,",
                L->scale_invariant > 0    ? "true"
                : L->scale_invariant == 0 ? "false"
                                          : "");
        roteq_fprint_csv_double(out, L->grad_cos_rms);
        fprintf(out, ",%d\n", L->neuron_axis);
    }
    return check(out);
}

int roteq_analysis_write_per_neuron_csv(FILE *out, const roteq_analysis_result *r)
{
    fputs("layer,neuron,norm,angular_update,pred_norm,pred_angle,ratio,status\n", out);
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        if (L->per_neuron == NULL)
            continue;
        for (size_t k = 0; k < L->neurons; k++) {
            const roteq_analysis_neuron *n = &L->per_neuron[k];
            fprintf(out, "%s,%zu,", L->name, n->index);
            double ratio = isfinite(n->angular_update) && n->pred_angle > 0
                               ? n->angular_update / n->pred_angle
                               : DNAN;
            double v[] = {n->norm, n->angular_update, n->pred_norm, n->pred_angle, ratio};
            for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) {
                roteq_fprint_csv_double(out, v[j]);
                fputc(',', out);
            }
            fprintf(out, "%s\n", roteq_analysis_status_names[n->status]);
        }
    }
    return check(out);
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, surrogates or code points
 * beyond U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) || (c == 0xF0 && p[1] < 0x90) ||
        (c == 0xF4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* A layer name as a JSON string: JSON holds only Unicode, so a byte that is not part of valid
 * UTF-8 (a Latin-1 name, say) is written as the four characters \xNN rather than the whole
 * key being dropped. */
static json_t *name_json(const char *name)
{
    json_t *j = json_string(name);
    if (j)
        return j;
    size_t n = strlen(name);
    char *buf = malloc(4 * n + 1), *q = buf;
    if (buf == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)name; *p;) {
        size_t k = utf8_len(p);
        if (k == 0) {
            q += sprintf(q, "\\x%02X", *p++);
            continue;
        }
        memcpy(q, p, k);
        q += k, p += k;
    }
    *q = '\0';
    j = json_string(buf);
    free(buf);
    return j;
}

static json_t *pair(double norm, double angle)
{
    return json_pack("{s:o,s:o}", "norm", num(norm), "angular_update", num(angle));
}

static json_t *predicted_block(double norm, double angle, double rel_norm, double rel_angle)
{
    return json_pack("{s:o,s:o,s:o}", "norm", num(norm), "angular_update", num(angle),
                     "relative_error", pair(rel_norm, rel_angle));
}

static json_t *explain_json(const roteq_analysis_explain *E)
{
    if (!E->valid)
        return json_null();
    json_t *o =
        json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "deviation", num(E->deviation), "update_size",
                  num(E->update_size), "norm_response", num(E->norm_response), "radial",
                  num(E->radial), "correlation", num(E->correlation), "nonstationary",
                  num(E->nonstationary), "residual", num(E->residual));
    json_object_set_new(o, "conditional", pair(E->cond_norm, E->cond_angle));
    json_object_set_new(o, "update_ratio", num(E->update_ratio));
    json_object_set_new(o, "update_radial_cos", num(E->radial_fraction));
    json_object_set_new(o, "update_cos_prev", num(E->cos_prev));
    return o;
}

int roteq_analysis_write_json(FILE *out, const roteq_analysis_result *r)
{
    json_t *root = json_object(), *layers = json_array();
    if (root == NULL || layers == NULL) {
        json_decref(root);
        json_decref(layers);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    json_object_set_new(root, "optimizer", r->optimizer ? json_string(r->optimizer) : json_null());
    json_object_set_new(root, "tolerance", json_real(r->tolerance));
    json_object_set_new(root, "window", json_integer((json_int_t)r->window));
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        json_t *o = json_object();
        json_object_set_new(o, "layer", name_json(L->name));
        json_object_set_new(o, "dim", L->dim ? json_integer((json_int_t)L->dim) : json_null());
        json_object_set_new(o, "neurons", json_integer((json_int_t)L->neurons));
        json_object_set_new(o, "dead", json_integer((json_int_t)L->dead));
        json_object_set_new(o, "collapsed", json_integer((json_int_t)L->collapsed));
        json_object_set_new(o, "records", json_integer((json_int_t)L->records));
        json_object_set_new(o, "first_step", json_integer(L->first_step));
        json_object_set_new(o, "last_step", json_integer(L->last_step));
        json_object_set_new(o, "window_start_step", json_integer(L->window_start));
        json_object_set_new(o, "window_records", json_integer((json_int_t)L->window_records));
        json_object_set_new(o, "gap_steps", L->gap > 0 ? json_integer(L->gap) : json_null());
        json_object_set_new(o, "scheduled", json_boolean(L->scheduled));
        json_object_set_new(o, "prediction", json_string(L->prediction));
        json_object_set_new(o, "lr", num(L->lr));
        json_object_set_new(o, "weight_decay", num(L->weight_decay));
        json_object_set_new(o, "predicted", pair(L->pred_norm, L->pred_angle));
        json_object_set_new(o, "measured", pair(L->norm, L->angular_update));
        json_object_set_new(o, "measured_se", pair(L->norm_se, L->angle_se));
        json_object_set_new(o, "relative_error", pair(L->rel_norm, L->rel_angle));
        json_object_set_new(o, "converged_at_step",
                            L->converged_at >= 0 ? json_integer(L->converged_at) : json_null());
        json_object_set_new(
            o, "convergence_rate",
            json_pack("{s:o,s:o}", "measured", num(L->rate), "predicted", num(L->pred_rate)));
        json_object_set_new(o, "angular_update_cv", num(L->cv));
        json_object_set_new(
            o, "angular_update_quantiles",
            json_pack("{s:o,s:o,s:o}", "q05", num(L->q05), "q50", num(L->q50), "q95", num(L->q95)));
        json_object_set_new(o, "verdict", json_string(roteq_analysis_verdict_names[L->verdict]));
        json_object_set_new(o, "ratio", num(L->ratio));
        json_object_set_new(o, "neuron_axis", json_integer(L->neuron_axis));
        if (L->has_matrix)
            json_object_set_new(o, "matrix",
                                json_pack("{s:[I,I],s:o,s:o,s:o,s:o}", "shape",
                                          (json_int_t)L->matrix_rows, (json_int_t)L->matrix_cols,
                                          "norm", num(L->matrix_norm), "predicted_norm",
                                          num(L->matrix_pred_norm), "angle", num(L->matrix_angle),
                                          "predicted_angle", num(L->matrix_pred_angle)));
        json_object_set_new(o, "off_quantity",
                            L->off_quantity ? json_string(L->off_quantity) : json_null());
        json_object_set_new(o, "verdict_detail", json_string(L->detail));
        json_object_set_new(o, "against", json_string(against(L)));
        json_object_set_new(
            o, "equilibrium",
            predicted_block(L->eq_norm, L->eq_angle, L->rel_eq_norm, L->rel_eq_angle));
        json_object_set_new(
            o, "transient",
            isfinite(L->tr_norm) || isfinite(L->tr_angle)
                ? predicted_block(L->tr_norm, L->tr_angle, L->rel_tr_norm, L->rel_tr_angle)
                : json_null());
        json_object_set_new(o, "angle_judged", json_boolean(L->angle_judged));
        json_object_set_new(o, "angle_source", json_string(L->angle_source));
        if (!L->angle_judged)
            json_object_set_new(o, "kstep",
                                json_pack("{s:o,s:o,s:o}", "steps",
                                          L->gap > 0 ? json_integer(L->gap) : json_null(),
                                          "predicted_step_angle", num(L->step_angle_pred),
                                          "implied_update_correlation", num(L->implied_corr)));
        json_object_set_new(o, "scale_invariant",
                            L->scale_invariant < 0 ? json_null()
                                                   : json_boolean(L->scale_invariant));
        json_object_set_new(
            o, "scale_invariant_evidence",
            json_pack("{s:s,s:o}", "reason", L->evidence, "grad_cos_rms", num(L->grad_cos_rms)));
        if (r->explain)
            json_object_set_new(o, "explain", explain_json(&L->explain));
        if (L->per_neuron) {
            json_t *arr = json_array();
            for (size_t k = 0; k < L->neurons; k++) {
                const roteq_analysis_neuron *n = &L->per_neuron[k];
                json_array_append_new(
                    arr, json_pack("{s:I,s:o,s:o,s:s}", "neuron", (json_int_t)n->index, "norm",
                                   num(n->norm), "angular_update", num(n->angular_update), "status",
                                   roteq_analysis_status_names[n->status]));
            }
            json_object_set_new(o, "per_neuron", arr);
        }
        json_array_append_new(layers, o);
    }
    json_object_set_new(root, "layers", layers);
    json_object_set_new(root, "balance", num(r->balance));
    json_object_set_new(root, "balance_predicted", num(r->balance_pred));
    json_object_set_new(root, "balance_layers", json_integer((json_int_t)r->balance_layers));
    json_object_set_new(root, "balance_all", num(r->balance_all));
    json_object_set_new(root, "balance_all_predicted", num(r->balance_all_pred));
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(root);
    fputc('\n', out);
    if (rc)
        return roteq_error_set(ROTEQ_EIO, "cannot write the JSON report");
    return check(out);
}
