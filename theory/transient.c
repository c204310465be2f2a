/* transient.c - expected-value recurrences for the approach to rotational equilibrium, the
 * steps it takes, and the angle between checkpoints k steps apart: the drivers, for any
 * optimizer type; the recurrences themselves are its family's hooks (families/<family>.c).
 *
 * Each optimizer is linear in (w, momentum) given the gradient, and under the random-walk model
 * the gradient of step t has zero mean given the past and is orthogonal to w_t. So the second
 * moments E||w||^2, E||buffer||^2 and E<buffer, w> obey closed recurrences; the only mean-field
 * step is E||g_t||^2 = ||g~||^2 / E||w_t||^2 (exact as C grows: ||w||^2 concentrates). Lion's
 * sign is handled through the arcsine law on the jointly Gaussian pre-sign signals.
 * Derivations: theory/README.md ("Transient"). */
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_setting(const roteq_setting *s, double init_norm)
{
    if (!isnan(s->grad_norm) && !(s->grad_norm > 0 && isfinite(s->grad_norm)))
        return roteq_error_set(ROTEQ_EINVAL, "grad_norm must be positive, got %.17g", s->grad_norm);
    if (!isnan(init_norm) && !(init_norm > 0 && isfinite(init_norm)))
        return roteq_error_set(ROTEQ_EINVAL, "init_norm must be positive, got %.17g", init_norm);
    if (s->dim > ROTEQ_THEORY_DIM_MAX)
        return roteq_error_set(ROTEQ_EINVAL, "dim must be at most 2^53 = %zu, got %zu",
                               ROTEQ_THEORY_DIM_MAX, s->dim);
    return ROTEQ_OK;
}

/* Which scales the absolute norm needs (the type's `needs`): SGD the gradient norm, AdamW and
 * Lion the dimension (their norm grows as sqrt(C)), Adam+L2 both. */
int roteq_theory_scale_known(const roteq_optimizer_type *opt, const roteq_setting *s)
{
    if ((opt->needs & ROTEQ_NEED_GRAD_NORM) && isnan(s->grad_norm))
        return 0;
    if ((opt->needs & (ROTEQ_NEED_DIM | ROTEQ_NEED_SHAPE)) && !(s->dim > 0))
        return 0;
    return 1;
}

roteq_transient *roteq_transient_alloc(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                       const roteq_setting *s, double init_norm)
{
    if (opt == NULL || hp == NULL || s == NULL) {
        roteq_error_set(ROTEQ_EINVAL, "roteq_transient_alloc: NULL argument");
        return NULL;
    }
    if (opt->family->granularity == ROTEQ_GRAN_MATRIX) {
        roteq_error_set(ROTEQ_EUNSUPPORTED,
                        "%s updates whole matrices: its transient needs the shape (the family's "
                        "matrix hooks, theory/roteq_theory.h)",
                        opt->name);
        return NULL;
    }
    if (roteq_hparams_validate(opt, hp, NULL) || check_setting(s, init_norm))
        return NULL;
    roteq_transient *tr = calloc(1, sizeof *tr);
    if (tr == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        return NULL;
    }
    tr->opt = opt;
    tr->hp = *hp;
    const roteq_family *f = opt->family;
    int known = roteq_theory_scale_known(opt, s);
    /* Unknown scales are replaced by placeholders; starting at the equilibrium norm, the
     * recurrences are then scale-free, so angles stay meaningful while norms do not. */
    tr->C = s->dim > 0 ? (double)s->dim : 1.0;
    tr->G2 = !isnan(s->grad_norm) ? s->grad_norm * s->grad_norm : tr->C;
    tr->norm_known = known && (!f->holds_norm || !isnan(init_norm));
    tr->angle_known = f->holds_norm || known || isnan(init_norm);
    if (opt->angle_needs_scale && !known)
        tr->angle_known = 0; /* no scale-free form (Adam+L2: lambda^2 ||w||^2 and eps enter v) */

    double A0;
    if (!isnan(init_norm)) {
        A0 = init_norm * init_norm;
    } else if (f->holds_norm) {
        A0 = 1.0;
    } else {
        /* Start at the closed-form equilibrium norm with a fresh optimizer state. */
        roteq_setting s2 = {(size_t)tr->C, sqrt(tr->G2)};
        roteq_equilibrium eq;
        if (roteq_theory_equilibrium(opt, hp, &s2, ROTEQ_PRED_BEST, &eq)) {
            free(tr);
            return NULL;
        }
        if (!(eq.norm > 0 && isfinite(eq.norm))) {
            roteq_error_set(ROTEQ_EINVAL,
                            "%s has no finite equilibrium norm at lr %.17g, weight decay %.17g",
                            opt->name, hp->lr, hp->weight_decay);
            free(tr);
            return NULL;
        }
        A0 = eq.norm * eq.norm;
    }
    tr->A = A0;
    if (f->transient_init && f->transient_init(tr)) {
        roteq_transient_free(tr);
        return NULL;
    }
    return tr;
}

void roteq_transient_free(roteq_transient *tr)
{
    if (tr == NULL)
        return;
    if (tr->opt->family->transient_free)
        tr->opt->family->transient_free(tr);
    free(tr);
}

/* One step with the internal (possibly placeholder-scaled) quantities; returns the angle. */
static double advance(roteq_transient *tr, double lr, double weight_decay)
{
    tr->t++;
    return tr->opt->family->transient_step(tr, lr, weight_decay);
}

int roteq_transient_step(roteq_transient *tr, double lr, double weight_decay, double *norm,
                         double *angular_update)
{
    if (!(lr >= 0 && isfinite(lr)) || !(weight_decay >= 0 && isfinite(weight_decay))) {
        *norm = *angular_update = ROTEQ_NAN;
        return roteq_error_set(ROTEQ_EINVAL,
                               "transient step needs lr and weight decay >= 0, got %g, %g", lr,
                               weight_decay);
    }
    double angle = advance(tr, lr, weight_decay);
    *norm = tr->norm_known ? sqrt(tr->A) : ROTEQ_NAN;
    *angular_update = tr->angle_known ? angle : ROTEQ_NAN;
    return ROTEQ_OK;
}

/* "gradient norm and the dimension": the scales `opt` needs, as text. */
static const char *tr_needs(const roteq_optimizer_type *opt)
{
    if (opt->needs & ROTEQ_NEED_SHAPE)
        return "matrix shape";
    if ((opt->needs & ROTEQ_NEED_GRAD_NORM) && (opt->needs & ROTEQ_NEED_DIM))
        return "gradient norm and the dimension";
    return (opt->needs & ROTEQ_NEED_GRAD_NORM) ? "gradient norm" : "dimension";
}

static int stationary_state(const roteq_transient *tr, double eta, double lam, roteq_stationary *st)
{
    memset(st, 0, sizeof *st);
    return tr->opt->family->stationary(tr, eta, lam, st);
}

long roteq_theory_steps_to_equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                       const roteq_setting *s, double init_norm, double tol,
                                       long max_steps)
{
    if (!(tol > 0 && tol < 1)) {
        roteq_error_set(ROTEQ_EINVAL, "tolerance must be in (0, 1), got %g", tol);
        return -1;
    }
    roteq_transient *tr = roteq_transient_alloc(opt, hp, s, init_norm);
    if (tr == NULL)
        return -1;
    if (!tr->norm_known && !tr->angle_known) {
        roteq_transient_free(tr);
        roteq_error_set(ROTEQ_EINVAL, "%s from a given initial norm needs the %s", opt->name,
                        tr_needs(opt));
        return -1;
    }
    roteq_stationary st;
    if (stationary_state(tr, hp->lr, hp->weight_decay, &st)) {
        roteq_transient_free(tr);
        return -1;
    }
    /* Compare the internal (placeholder-scaled) quantities so that the count exists whenever
     * the trajectory is determined, even if the absolute norm is unknown. */
    double norm_eq = sqrt(st.A);
    long last_out = 0, result = -1;
    for (long t = 1; t <= max_steps; t++) {
        double angle = advance(tr, hp->lr, hp->weight_decay);
        double en = fabs(sqrt(tr->A) / norm_eq - 1);
        double ea = st.angle > 0 ? fabs(angle / st.angle - 1) : 0.0;
        if (en > tol || ea > tol)
            last_out = t;
        else if (en < tol * 1e-2 && ea < tol * 1e-2) {
            /* The deviation decays geometrically from here: it cannot come back above tol. */
            result = last_out + 1;
            break;
        }
    }
    roteq_transient_free(tr);
    if (result < 0)
        roteq_error_set(ROTEQ_ERUNTIME, "not within %g of equilibrium after %ld steps", tol,
                        max_steps);
    return result;
}

/* E_k of the affine 3x3 map M of a linear recurrence (state (E, Q, 1)) by repeated squaring:
 * about 2 log2(k) products instead of k steps. Powers are kept as I + X: M is close to the
 * identity when eta*lambda is small, and (I+X)(I+Y) = I + (X + Y + XY) keeps the small parts
 * exact where a plain product would round 1 - eta*lambda once per factor (a relative error of k
 * ulps in d^k). */
static void near_identity_mul(double r[3][3], double x[3][3], double y[3][3])
{
    double t[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            t[i][j] =
                x[i][j] + y[i][j] + (x[i][0] * y[0][j] + x[i][1] * y[1][j] + x[i][2] * y[2][j]);
    memcpy(r, t, sizeof t);
}

double roteq_theory_affine_power_E(double X[3][3], long k, double E0, double Q0)
{
    double P[3][3] = {{0}}, B[3][3];
    memcpy(B, X, sizeof B);
    for (unsigned long n = (unsigned long)k; n; n >>= 1) {
        if (n & 1)
            near_identity_mul(P, P, B);
        if (n > 1)
            near_identity_mul(B, B, B);
    }
    return (1 + P[0][0]) * E0 + P[0][1] * Q0 + P[0][2];
}

/* E = A - E<w_t, w_{t+k}> at equilibrium, by the family's cross-moment recurrence; angle from
 * the chord ||w_{t+k} - w_t||^2 = 2E (equal norms). */
static double kstep_internal(const roteq_transient *tr, double eta, double lam, long k)
{
    roteq_stationary st;
    if (stationary_state(tr, eta, lam, &st) || tr->opt->family->kstep_drift == NULL)
        return ROTEQ_NAN;
    double A = st.A, E = tr->opt->family->kstep_drift(tr, &st, eta, lam, k);
    double x = sqrt(E > 0 ? E / (2 * A) : 0.0);
    return 2 * asin(x < 1 ? x : 1.0);
}

double roteq_theory_kstep_generic(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                  const roteq_setting *s, long k)
{
    /* Angles at equilibrium are scale-free: placeholders stand in for unknown scales, except
     * where the equilibrium angle depends on the scale (Adam+L2). */
    if (opt->angle_needs_scale && !roteq_theory_scale_known(opt, s)) {
        roteq_error_set(ROTEQ_EINVAL, "%s needs the %s", opt->name, tr_needs(opt));
        return ROTEQ_NAN;
    }
    roteq_transient *tr = roteq_transient_alloc(opt, hp, s, ROTEQ_NAN);
    if (tr == NULL)
        return ROTEQ_NAN;
    double a = kstep_internal(tr, hp->lr, hp->weight_decay, k);
    roteq_transient_free(tr);
    return a;
}

double roteq_theory_kstep_angle(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                const roteq_setting *s, long k)
{
    if (k < 1) {
        roteq_error_set(ROTEQ_EINVAL, "k must be at least 1, got %ld", k);
        return ROTEQ_NAN;
    }
    if (opt->family->kstep_angle)
        return opt->family->kstep_angle(opt, hp, s, k);
    return roteq_theory_kstep_generic(opt, hp, s, k);
}

int roteq_theory_stationary(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                            const roteq_setting *s, roteq_equilibrium *out)
{
    if (opt == NULL || hp == NULL || s == NULL || out == NULL)
        return roteq_error_set(ROTEQ_EINVAL, "roteq_theory_stationary: NULL argument");
    roteq_transient *tr = roteq_transient_alloc(opt, hp, s, ROTEQ_NAN);
    if (tr == NULL)
        return roteq_error_status() ? roteq_error_status() : ROTEQ_EINVAL;
    roteq_stationary st;
    int rc = stationary_state(tr, hp->lr, hp->weight_decay, &st);
    if (rc == ROTEQ_OK) {
        out->norm = tr->norm_known ? sqrt(st.A) : ROTEQ_NAN;
        out->angular_update = tr->angle_known ? st.angle : ROTEQ_NAN;
        /* Exact under the model as C grows, except where the model itself needs more (the
         * family says: Adam+L2, Lion). */
        out->exact = st.exact;
        out->source = st.source ? st.source
                                : "derived here: fixed point of the transient "
                                  "recurrence (theory/README.md)";
    }
    roteq_transient_free(tr);
    return rc;
}
