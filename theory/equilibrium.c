/* equilibrium.c - the closed-form rotational equilibrium of any optimizer type: validation,
 * then its family's formula (families/<family>.c). Kept apart from the transient (transient.c)
 * because these are the formulas people quote and check; every one cites its source, and the
 * derivations are in theory/README.md.
 *
 * "exact" means exact under the random-walk model in the limit of large C and small eta*lambda
 * (relative errors O(1/C) and O(eta*lambda/(1-beta)); the transient recurrences carry the
 * discrete-time corrections). Approximate formulas rely on a further assumption whose error
 * does not vanish in that limit (measured errors in theory/README.md). */
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>

const char *const roteq_prediction_names[ROTEQ_PRED_COUNT] = {"best", "paper", "plain"};

void roteq_theory_set(roteq_equilibrium *out, double norm, double angle, int exact, const char *src)
{
    out->norm = norm;
    out->angular_update = angle;
    out->exact = exact;
    out->source = src;
}

double roteq_step_angle(double A, double d, double P, double Q)
{
    double radial = (d * A - P) / sqrt(A);
    double perp2 = Q - P * P / A;
    return atan2(sqrt(perp2 > 0 ? perp2 : 0.0), radial);
}

int roteq_theory_equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                             const roteq_setting *s, roteq_prediction which, roteq_equilibrium *out)
{
    if (opt == NULL || hp == NULL || s == NULL || out == NULL)
        return roteq_error_set(ROTEQ_EINVAL, "roteq_theory_equilibrium: NULL argument");
    if ((int)which < 0 || which >= ROTEQ_PRED_COUNT)
        return roteq_error_set(ROTEQ_EINVAL, "unknown prediction %d", (int)which);
    if (!isnan(s->grad_norm) && !(s->grad_norm > 0 && isfinite(s->grad_norm)))
        return roteq_error_set(ROTEQ_EINVAL, "grad_norm must be positive, got %.17g", s->grad_norm);
    if (s->dim > ROTEQ_THEORY_DIM_MAX)
        return roteq_error_set(ROTEQ_EINVAL, "dim must be at most 2^53 = %zu, got %zu",
                               ROTEQ_THEORY_DIM_MAX, s->dim);
    int st = roteq_hparams_validate(opt, hp, NULL);
    if (st)
        return st;
    if (opt->family == NULL || opt->family->equilibrium == NULL)
        return roteq_error_set(ROTEQ_EUNSUPPORTED, "no equilibrium formula for %s", opt->name);
    /* dim 0 means unknown: norms that scale with sqrt(C) become NAN, rotations stay. */
    double C = s->dim > 0 ? (double)s->dim : ROTEQ_NAN;
    return opt->family->equilibrium(opt, hp, C, s->grad_norm, which, out);
}

const char *roteq_theory_formula(const roteq_optimizer_type *opt)
{
    return opt != NULL && opt->formula != NULL ? opt->formula : "";
}

double roteq_theory_convergence_rate(const roteq_optimizer_type *opt, double lr, double wd)
{
    if (opt == NULL || !(lr > 0) || !(wd > 0) || lr * wd >= 0.5)
        return ROTEQ_NAN;
    if (opt->family == NULL || opt->family->convergence_rate == NULL)
        return ROTEQ_NAN;
    return opt->family->convergence_rate(opt, lr, wd);
}

double roteq_theory_model_floor(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                size_t dim)
{
    if (opt == NULL || opt->family == NULL || opt->family->model_floor == NULL)
        return ROTEQ_NAN;
    return opt->family->model_floor(opt, hp, dim);
}

double roteq_theory_floor_lr_wd(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                size_t dim)
{
    (void)opt, (void)dim;
    return hp->lr * hp->weight_decay;
}
