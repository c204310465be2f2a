/* record.c - one row per grid point: the verdict rule and the CSV / JSON-lines text of a row.
 *
 * A row is formatted into memory first, so that the output file receives it in a single write()
 * and a killed sweep never leaves half a row. Every column except `seconds` and `threads` is a
 * pure function of the grid and the point, which is what makes the rows of a 1-process run and
 * of an MPI run identical. Columns are documented in sweep/README.md. */
#include "roteq_sweep.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const roteq_sweep_verdict_names[ROTEQ_SWEEP_VERDICT_COUNT] = {"PASS", "FAIL", "APPROX",
                                                                          "UNKNOWN", "ERROR"};

double roteq_sweep_rel_err(double measured, double predicted)
{
    if (!isfinite(measured) || !isfinite(predicted) || predicted == 0.0)
        return NAN;
    return (measured - predicted) / predicted;
}

double roteq_sweep_z(double measured, double predicted, double se)
{
    if (!isfinite(measured) || !isfinite(predicted) || !isfinite(se) || !(se > 0.0))
        return NAN;
    return (measured - predicted) / se;
}

double roteq_sweep_model_floor(const roteq_sweep_point *p)
{
    return roteq_theory_model_floor(p->cfg.opt, &p->cfg.hp, p->cfg.dim);
}

static int within(double measured, double predicted, double se, double k, double rel_floor)
{
    /* NAN anywhere (no standard error, e.g. one neuron) fails: the check would be vacuous. */
    if (!isfinite(measured) || !isfinite(se) || !(se > 0.0))
        return 0;
    return fabs(measured - predicted) <= k * se + rel_floor * fabs(predicted);
}

void roteq_sweep_judge(roteq_sweep_record *rec, double tolerance, double rel_floor)
{
    if (rec->verdict == ROTEQ_SWEEP_VERDICT_ERROR)
        return;
    const roteq_sweep_prediction *best = &rec->pred[ROTEQ_PRED_BEST];
    int has_norm = isfinite(best->norm), has_angle = isfinite(best->angular_update);
    if (!has_norm && !has_angle) {
        rec->verdict = ROTEQ_SWEEP_VERDICT_UNKNOWN;
        return;
    }
    if (!best->exact) {
        rec->verdict = ROTEQ_SWEEP_VERDICT_APPROX;
        return;
    }
    /* Judge what is predicted: the rotational variants predict the angular update only (their
     * norm is whatever it started at). */
    int ok = (!has_norm || within(rec->norm, best->norm, rec->norm_se, tolerance, rel_floor)) &&
             (!has_angle ||
              within(rec->angle, best->angular_update, rec->angle_se, tolerance, rel_floor));
    rec->verdict = ok ? ROTEQ_SWEEP_VERDICT_PASS : ROTEQ_SWEEP_VERDICT_FAIL;
}

/* ---- CSV ---------------------------------------------------------------------------------- */

static const char *const result_columns =
    "pred_norm,pred_angle,pred_exact,pred_norm_paper,pred_angle_paper,pred_norm_plain,"
    "pred_angle_plain,norm,norm_se,norm_ci_lo,norm_ci_hi,angle,angle_se,angle_ci_lo,angle_ci_hi,"
    "norm_rel_err,angle_rel_err,norm_z,angle_z,rel_floor,norm_rel_err_paper,angle_rel_err_paper,"
    "norm_rel_err_plain,angle_rel_err_plain,status,reason,grid,seconds,threads";

void roteq_sweep_csv_header(FILE *out)
{
    fputs("index,seed,optimizer", out);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        fprintf(out, ",%s", roteq_hparam_descs[i].key);
    fputs(",neurons,dim,steps,gradient,grad_norm,grad_spread,dead_fraction,radial,init_norm,"
          "schedule,wd_schedule,",
          out);
    fputs(result_columns, out);
    fputc('\n', out);
}

/* A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break. */
static void csv_string(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, out);
    }
    fputc('"', out);
}

static void csv_num(FILE *out, double x)
{
    fputc(',', out);
    roteq_fprint_csv_double(out, x);
}

static double ci(double x, double se, int sign)
{
    return x + sign * ROTEQ_SWEEP_CI_Z * se;
}

static void csv_row(FILE *out, const roteq_sweep_grid *g, const roteq_sweep_point *p,
                    const roteq_sweep_record *r)
{
    const roteq_sim_config *c = &p->cfg;
    const roteq_optimizer_type *opt = c->opt;
    fprintf(out, "%zu,%llu,", p->index, (unsigned long long)p->seed);
    csv_string(out, p->optimizer);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        csv_num(out, opt && (opt->hparams & ROTEQ_HP_BIT(i))
                         ? roteq_hparams_get(&c->hp, (roteq_hparam_id)i)
                         : (double)NAN);
    if (opt)
        fprintf(out, ",%zu,%zu,%zu,%s", c->neurons, c->dim, c->steps,
                roteq_grad_model_names[c->grad_model]);
    else
        fputs(",,,,", out);
    csv_num(out, opt ? c->grad_norm : (double)NAN);
    csv_num(out, opt ? c->grad_spread : (double)NAN);
    csv_num(out, opt ? c->dead_fraction : (double)NAN);
    csv_num(out, opt ? c->radial : (double)NAN);
    csv_num(out, opt ? c->init_norm : (double)NAN);
    fprintf(out, ",%s,%s", p->lr_schedule, p->wd_schedule);

    const roteq_sweep_prediction *pb = &r->pred[ROTEQ_PRED_BEST], *pp = &r->pred[ROTEQ_PRED_PAPER],
                                 *pl = &r->pred[ROTEQ_PRED_PLAIN];
    csv_num(out, pb->norm);
    csv_num(out, pb->angular_update);
    if (isfinite(pb->norm) || isfinite(pb->angular_update))
        fprintf(out, ",%d", pb->exact ? 1 : 0);
    else
        fputc(',', out);
    csv_num(out, pp->norm);
    csv_num(out, pp->angular_update);
    csv_num(out, pl->norm);
    csv_num(out, pl->angular_update);
    csv_num(out, r->norm);
    csv_num(out, r->norm_se);
    csv_num(out, ci(r->norm, r->norm_se, -1));
    csv_num(out, ci(r->norm, r->norm_se, +1));
    csv_num(out, r->angle);
    csv_num(out, r->angle_se);
    csv_num(out, ci(r->angle, r->angle_se, -1));
    csv_num(out, ci(r->angle, r->angle_se, +1));
    csv_num(out, roteq_sweep_rel_err(r->norm, pb->norm));
    csv_num(out, roteq_sweep_rel_err(r->angle, pb->angular_update));
    csv_num(out, roteq_sweep_z(r->norm, pb->norm, r->norm_se));
    csv_num(out, roteq_sweep_z(r->angle, pb->angular_update, r->angle_se));
    csv_num(out, r->rel_floor);
    csv_num(out, roteq_sweep_rel_err(r->norm, pp->norm));
    csv_num(out, roteq_sweep_rel_err(r->angle, pp->angular_update));
    csv_num(out, roteq_sweep_rel_err(r->norm, pl->norm));
    csv_num(out, roteq_sweep_rel_err(r->angle, pl->angular_update));
    fprintf(out, ",%s,", roteq_sweep_verdict_names[r->verdict]);
    csv_string(out, r->reason);
    fprintf(out, ",%016llx", (unsigned long long)g->hash);
    csv_num(out, r->seconds);
    fprintf(out, ",%u\n", r->threads);
}

/* ---- JSON lines ----------------------------------------------------------------------------- */

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_num(FILE *out, const char *key, double x, int comma)
{
    fprintf(out, "%s\"%s\":", comma ? "," : "", key);
    roteq_fprint_json_double(out, x);
}

/* A measured quantity with its standard error and 95% interval:
 * "KEY":x,"KEY_se":se,"KEY_ci":[lo,hi]. */
static void json_measure(FILE *out, const char *key, double x, double se, int comma)
{
    json_num(out, key, x, comma);
    fprintf(out, ",\"%s_se\":", key);
    roteq_fprint_json_double(out, se);
    fprintf(out, ",\"%s_ci\":[", key);
    roteq_fprint_json_double(out, ci(x, se, -1));
    fputc(',', out);
    roteq_fprint_json_double(out, ci(x, se, +1));
    fputc(']', out);
}

static void json_pred(FILE *out, const char *key, const roteq_sweep_prediction *pr,
                      const roteq_sweep_record *r)
{
    fprintf(out, "\"%s\":{", key);
    json_num(out, "norm", pr->norm, 0);
    json_num(out, "angular_update", pr->angular_update, 1);
    fprintf(out, ",\"exact\":%s",
            isfinite(pr->norm) || isfinite(pr->angular_update) ? (pr->exact ? "true" : "false")
                                                               : "null");
    json_num(out, "norm_rel_err", roteq_sweep_rel_err(r->norm, pr->norm), 1);
    json_num(out, "angular_update_rel_err", roteq_sweep_rel_err(r->angle, pr->angular_update), 1);
    fputc('}', out);
}

static void json_row(FILE *out, const roteq_sweep_grid *g, const roteq_sweep_point *p,
                     const roteq_sweep_record *r)
{
    const roteq_sim_config *c = &p->cfg;
    const roteq_optimizer_type *opt = c->opt;
    /* The seed as a string: 64-bit integers above 2^53 do not survive most JSON readers. */
    fprintf(out, "{\"index\":%zu,\"seed\":\"%llu\",\"grid\":\"%016llx\",\"optimizer\":", p->index,
            (unsigned long long)p->seed, (unsigned long long)g->hash);
    json_string(out, p->optimizer);
    fputs(",\"hparams\":{", out);
    int first = 1;
    for (int i = 0; opt && i < ROTEQ_HP_COUNT; i++)
        if (opt->hparams & ROTEQ_HP_BIT(i)) {
            json_num(out, roteq_hparam_descs[i].key, roteq_hparams_get(&c->hp, (roteq_hparam_id)i),
                     !first);
            first = 0;
        }
    fputc('}', out);
    if (opt) {
        fprintf(out, ",\"neurons\":%zu,\"dim\":%zu,\"steps\":%zu,\"gradient\":\"%s\"", c->neurons,
                c->dim, c->steps, roteq_grad_model_names[c->grad_model]);
        json_num(out, "grad_norm", c->grad_norm, 1);
        json_num(out, "grad_spread", c->grad_spread, 1);
        json_num(out, "dead_fraction", c->dead_fraction, 1);
        json_num(out, "radial", c->radial, 1);
        json_num(out, "init_norm", c->init_norm, 1);
    }
    fprintf(out, ",\"schedule\":\"%s\",\"wd_schedule\":\"%s\"", p->lr_schedule, p->wd_schedule);
    fputs(",\"predicted\":{", out);
    json_num(out, "norm", r->pred[ROTEQ_PRED_BEST].norm, 0);
    json_num(out, "angular_update", r->pred[ROTEQ_PRED_BEST].angular_update, 1);
    fprintf(out, ",\"exact\":%s}",
            isfinite(r->pred[0].norm) || isfinite(r->pred[0].angular_update)
                ? (r->pred[0].exact ? "true" : "false")
                : "null");
    fputs(",\"predictions\":{", out);
    for (int k = 0; k < ROTEQ_PRED_COUNT; k++) {
        if (k)
            fputc(',', out);
        json_pred(out, roteq_prediction_names[k], &r->pred[k], r);
    }
    fputs("},\"measured\":{", out);
    json_measure(out, "norm", r->norm, r->norm_se, 0);
    json_measure(out, "angular_update", r->angle, r->angle_se, 1);
    fputs("},\"relative_error\":{", out);
    const roteq_sweep_prediction *pb = &r->pred[ROTEQ_PRED_BEST];
    json_num(out, "norm", roteq_sweep_rel_err(r->norm, pb->norm), 0);
    json_num(out, "angular_update", roteq_sweep_rel_err(r->angle, pb->angular_update), 1);
    fputs("},\"z\":{", out);
    json_num(out, "norm", roteq_sweep_z(r->norm, pb->norm, r->norm_se), 0);
    json_num(out, "angular_update", roteq_sweep_z(r->angle, pb->angular_update, r->angle_se), 1);
    fputc('}', out);
    json_num(out, "rel_floor", r->rel_floor, 1);
    fprintf(out, ",\"status\":\"%s\",\"reason\":", roteq_sweep_verdict_names[r->verdict]);
    json_string(out, r->reason);
    json_num(out, "seconds", r->seconds, 1);
    fprintf(out, ",\"threads\":%u}\n", r->threads);
}

char *roteq_sweep_format_row(roteq_sweep_format fmt, const roteq_sweep_grid *g,
                             const roteq_sweep_point *p, const roteq_sweep_record *rec)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory formatting row %zu", p->index);
        return NULL;
    }
    if (fmt == ROTEQ_SWEEP_JSON)
        json_row(out, g, p, rec);
    else
        csv_row(out, g, p, rec);
    if (fclose(out) != 0 || buf == NULL) {
        free(buf);
        roteq_error_set(ROTEQ_ENOMEM, "out of memory formatting row %zu", p->index);
        return NULL;
    }
    return buf;
}
