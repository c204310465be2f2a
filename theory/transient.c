/* transient.c - expected-value recurrences for the approach to rotational equilibrium, the
 * steps it takes, and the angle between checkpoints k steps apart.
 *
 * Each optimizer is linear in (w, momentum) given the gradient, and under the random-walk model
 * the gradient of step t has zero mean given the past and is orthogonal to w_t. So the second
 * moments E||w||^2, E||buffer||^2 and E<buffer, w> obey closed recurrences; the only mean-field
 * step is E||g_t||^2 = ||g~||^2 / E||w_t||^2 (exact as C grows: ||w||^2 concentrates). Lion's
 * sign is handled through the arcsine law on the jointly Gaussian pre-sign signals (lion.c).
 * Derivations: theory/README.md ("Transient"). */
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { FAM_SGD, FAM_ADAMW, FAM_ADAM_L2, FAM_LION, FAM_RV } family;

/* Lags up to this many are summed with the exact arcsine; beyond, a power series. */
#define LION_LAG_MAX 65536

struct roteq_transient {
    const roteq_optimizer_type *opt;
    roteq_hparams hp; /* base values; lr and weight decay come with each step */
    family fam;
    double C, G2;    /* dimension and E||g~||^2 used (placeholders when the scale is unknown) */
    int norm_known;  /* the absolute norm is determined */
    int angle_known; /* the angles are determined (scale-free when starting at equilibrium) */
    long t;          /* steps taken */
    double A;        /* E||w_t||^2 */
    double B;        /* E||b_{t-1}||^2: SGD buffer or Adam first moment (raw gradient units) */
    double Y;        /* E<b_{t-1}, w_t> */
    double v;        /* Adam: per-coordinate second moment (before bias correction) */
    double alpha, c; /* SGD momentum and 1 - dampening */
    int nesterov;
    /* Lion: Var of the momentum per coordinate, and the lag history (ring of the last `lags`
     * steps: weight eta_s * prod d, and q_s) plus the series tail for older lags. */
    double Vm;
    size_t lags, nhist, head;
    double *hw, *hq;
    double tail[ROTEQ_ASIN_TERMS];
    double coef[ROTEQ_ASIN_TERMS], b2pow[ROTEQ_ASIN_TERMS]; /* asin coefficients, beta2^(2n+1) */
};

static family family_of(const roteq_optimizer_type *opt)
{
    switch (opt->id) {
    case ROTEQ_OPT_ADAMW:
        return FAM_ADAMW;
    case ROTEQ_OPT_ADAM_L2:
        return FAM_ADAM_L2;
    case ROTEQ_OPT_LION:
        return FAM_LION;
    case ROTEQ_OPT_RV_ADAMW:
    case ROTEQ_OPT_RV_SGDM:
    case ROTEQ_OPT_RV_LION:
        return FAM_RV;
    default:
        return FAM_SGD;
    }
}

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

/* Which scales the absolute norm needs: SGD the gradient norm, AdamW and Lion the dimension
 * (their norm grows as sqrt(C)), Adam+L2 both. */
static int scale_known(family f, const roteq_setting *s)
{
    int g = !isnan(s->grad_norm), c = s->dim > 0;
    switch (f) {
    case FAM_SGD:
        return g;
    case FAM_ADAMW:
    case FAM_LION:
        return c;
    case FAM_ADAM_L2:
        return g && c;
    default:
        return 1;
    }
}

roteq_transient *roteq_transient_alloc(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                       const roteq_setting *s, double init_norm)
{
    if (opt == NULL || hp == NULL || s == NULL) {
        roteq_error_set(ROTEQ_EINVAL, "roteq_transient_alloc: NULL argument");
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
    tr->fam = family_of(opt);
    int known = scale_known(tr->fam, s);
    /* Unknown scales are replaced by placeholders; starting at the equilibrium norm, the
     * recurrences are then scale-free, so angles stay meaningful while norms do not. */
    tr->C = s->dim > 0 ? (double)s->dim : 1.0;
    tr->G2 = !isnan(s->grad_norm) ? s->grad_norm * s->grad_norm : tr->C;
    tr->norm_known = known && (tr->fam != FAM_RV || !isnan(init_norm));
    tr->angle_known = tr->fam == FAM_RV || known || isnan(init_norm);
    if (tr->fam == FAM_ADAM_L2 && !known)
        tr->angle_known = 0; /* no scale-free form: lambda^2 ||w||^2 and eps enter v */

    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_MOMENTUM))
        tr->alpha = hp->momentum;
    tr->c = (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING)) ? 1.0 - hp->dampening : 1.0;
    tr->nesterov = opt->id == ROTEQ_OPT_NESTEROV ||
                   ((opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV)) && hp->nesterov != 0.0);
    if (tr->alpha == 0.0)
        tr->c = 1.0, tr->nesterov = 0; /* PyTorch keeps no buffer without momentum */

    double A0;
    if (!isnan(init_norm)) {
        A0 = init_norm * init_norm;
    } else if (tr->fam == FAM_RV) {
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

    if (tr->fam == FAM_LION) {
        /* Exact arcsine for lags where the stationary correlation exceeds 1/2, a power series
         * (48 terms: error < 1e-15 for rho <= 1/2) beyond. */
        double rho1 = roteq_lion_rho1(hp->beta1, hp->beta2);
        size_t L = 1;
        double r = rho1;
        while (r > 0.5 && L < LION_LAG_MAX)
            r *= hp->beta2, L++;
        tr->lags = L;
        for (int n = 0; n < ROTEQ_ASIN_TERMS; n++) {
            tr->coef[n] = roteq_asin_coef(n);
            tr->b2pow[n] = pow(hp->beta2, 2.0 * n + 1);
        }
        tr->hw = calloc(L, sizeof *tr->hw);
        tr->hq = calloc(L, sizeof *tr->hq);
        if (tr->hw == NULL || tr->hq == NULL) {
            roteq_transient_free(tr);
            roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            return NULL;
        }
    }
    return tr;
}

void roteq_transient_free(roteq_transient *tr)
{
    if (tr == NULL)
        return;
    free(tr->hw);
    free(tr->hq);
    free(tr);
}

/* One step of SGD (plain, heavy ball, Nesterov) with L2 weight decay in the gradient. */
static double step_sgd(roteq_transient *tr, double eta, double lam)
{
    double A = tr->A, gam = tr->G2 / A, al = tr->alpha;
    double P, Q, angle;
    if (al == 0.0) {
        P = eta * lam * A;
        Q = eta * eta * (gam + lam * lam * A);
    } else {
        double c = tr->t == 1 ? 1.0 : tr->c; /* PyTorch's first buffer is g' itself */
        double Z = al * tr->Y + c * lam * A; /* E<b_t, w_t> */
        double Bn = al * al * tr->B + c * c * (gam + lam * lam * A) + 2 * al * c * lam * tr->Y;
        double Yn;
        if (tr->nesterov) {
            double Eb = al * lam * tr->Y + c * (gam + lam * lam * A); /* E<b_t, g'_t> */
            P = eta * (lam * A + al * Z);
            Q = eta * eta * (gam + lam * lam * A + al * al * Bn + 2 * al * Eb);
            Yn = Z - eta * (Eb + al * Bn);
        } else {
            P = eta * Z;
            Q = eta * eta * Bn;
            Yn = Z - eta * Bn;
        }
        tr->B = Bn;
        tr->Y = Yn;
    }
    angle = roteq_step_angle(A, 1.0, P, Q);
    tr->A = A - 2 * P + Q;
    return angle;
}

/* One step of Adam: decoupled decay (AdamW) or L2 through the normaliser (Adam+L2). The
 * per-coordinate second moment lags the gradient scale, which changes as 1/||w||^2. */
static double step_adam(roteq_transient *tr, double eta, double lam)
{
    const roteq_hparams *hp = &tr->hp;
    double b1 = hp->beta1, b2 = hp->beta2, A = tr->A, gam = tr->G2 / A;
    int l2 = tr->fam == FAM_ADAM_L2;
    double lam_g = l2 ? lam : 0.0;         /* decay inside the gradient */
    double d = l2 ? 1.0 : 1.0 - eta * lam; /* decay outside */
    double t = (double)tr->t;
    tr->v = b2 * tr->v + (1 - b2) * (gam + lam_g * lam_g * A) / tr->C;
    double vhat = tr->v / (1 - pow(b2, t));
    double k = eta / ((1 - pow(b1, t)) * (sqrt(vhat) + hp->eps));
    double Z = b1 * tr->Y + (1 - b1) * lam_g * A;
    double Mn = b1 * b1 * tr->B + (1 - b1) * (1 - b1) * (gam + lam_g * lam_g * A) +
                2 * b1 * (1 - b1) * lam_g * tr->Y;
    double angle = roteq_step_angle(A, d, k * Z, k * k * Mn);
    tr->A = d * d * A - 2 * d * k * Z + k * k * Mn;
    tr->B = Mn;
    tr->Y = d * Z - k * Mn;
    return angle;
}

/* One step of Lion. X = E<w_t, u_t> = -C sum_j eta_{t-j} prod(d) (2/pi) asin(rho(t, t-j)),
 * with rho(t, s) = beta2^(t-s-1) p_t q_s factorised (README, "Lion transient"). */
static double step_lion(roteq_transient *tr, double eta, double lam)
{
    const roteq_hparams *hp = &tr->hp;
    double b1 = hp->beta1, b2 = hp->beta2, d = 1 - eta * lam, A = tr->A;
    double sig2 = tr->G2 / A; /* gradient variance per coordinate, up to a constant */
    double K = (1 - b1) * (1 - b1) * sig2 + b1 * b1 * tr->Vm;
    double h = b1 * b2 * tr->Vm + (1 - b2) * (1 - b1) * sig2; /* Cov(m_t, c_t) */
    double p = K > 0 ? b1 / sqrt(K) : 0.0, q = K > 0 ? h / sqrt(K) : 0.0;

    double sum = 0.0, b2j = 1.0;
    for (size_t j = 0; j < tr->nhist; j++) { /* lag j+1 */
        size_t i = (tr->head + tr->lags - 1 - j) % tr->lags;
        double rho = b2j * p * tr->hq[i];
        sum += tr->hw[i] * asin(rho > 1 ? 1 : rho);
        b2j *= b2;
    }
    double pn = p;
    for (int n = 0; n < ROTEQ_ASIN_TERMS; n++) {
        sum += tr->coef[n] * pn * tr->tail[n];
        pn *= p * p;
    }
    double X = -tr->C * M_2_PI * sum;
    double angle = roteq_step_angle(A, d, eta * X, eta * eta * tr->C);
    tr->A = d * d * A - 2 * d * eta * X + eta * eta * tr->C;

    /* Age the history by one step: weights pick up this step's decay, the oldest ring entry
     * moves into the series tail, and this step enters at lag 1. */
    double b2L = pow(b2, (double)tr->lags);
    for (int n = 0; n < ROTEQ_ASIN_TERMS; n++)
        tr->tail[n] *= d * tr->b2pow[n];
    for (size_t j = 0; j < tr->nhist; j++)
        tr->hw[j] *= d;
    if (tr->nhist == tr->lags) {
        size_t old = tr->head; /* the slot about to be overwritten holds lag L */
        double qn = tr->hq[old], f = b2L * qn;
        for (int n = 0; n < ROTEQ_ASIN_TERMS; n++) {
            tr->tail[n] += tr->hw[old] * f;
            f *= b2L * b2L * qn * qn;
        }
    } else {
        tr->nhist++;
    }
    tr->hw[tr->head] = eta;
    tr->hq[tr->head] = q;
    tr->head = (tr->head + 1) % tr->lags;
    tr->Vm = b2 * b2 * tr->Vm + (1 - b2) * (1 - b2) * sig2;
    return angle;
}

static double rv_angle(const roteq_transient *tr, double eta, double lam)
{
    roteq_hparams hp = tr->hp;
    hp.lr = eta;
    hp.weight_decay = lam;
    roteq_setting s = {0, ROTEQ_NAN};
    roteq_equilibrium eq;
    if (roteq_theory_equilibrium(tr->opt, &hp, &s, ROTEQ_PRED_BEST, &eq))
        return ROTEQ_NAN;
    /* The wrapper moves w by eta_r*||w|| orthogonally and rescales: the angle is
     * atan(eta_r) = eta_r (1 - eta_r^2/3); like the paper, we report eta_r itself. */
    return eq.angular_update;
}

/* One step with the internal (possibly placeholder-scaled) quantities; returns the angle. */
static double advance(roteq_transient *tr, double lr, double weight_decay)
{
    tr->t++;
    switch (tr->fam) {
    case FAM_SGD:
        return step_sgd(tr, lr, weight_decay);
    case FAM_ADAMW:
    case FAM_ADAM_L2:
        return step_adam(tr, lr, weight_decay);
    case FAM_LION:
        return step_lion(tr, lr, weight_decay);
    default:
        return weight_decay > 0 && lr > 0 ? rv_angle(tr, lr, weight_decay) : 0.0;
    }
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

static const char *tr_needs(const roteq_optimizer_type *opt)
{
    switch (family_of(opt)) {
    case FAM_SGD:
        return "gradient norm";
    case FAM_ADAM_L2:
        return "gradient norm and the dimension";
    default:
        return "dimension";
    }
}

/* ---- Stationary state of the recurrences (constant hyperparameters) ---- */

typedef struct {
    double A, B, Y; /* E||w||^2, E||b||^2, E<b_{t-1}, w_t> */
    double k;       /* Adam: the step scale eta / (sqrt(v) + eps) */
    double angle;
} stationary;

/* Solve a 3x3 linear system by Gaussian elimination with partial pivoting. */
static int solve3(double M[3][4], double x[3])
{
    for (int col = 0; col < 3; col++) {
        int piv = col;
        for (int r = col + 1; r < 3; r++)
            if (fabs(M[r][col]) > fabs(M[piv][col]))
                piv = r;
        if (M[piv][col] == 0.0)
            return -1;
        for (int j = 0; j < 4; j++) {
            double tmp = M[col][j];
            M[col][j] = M[piv][j];
            M[piv][j] = tmp;
        }
        for (int r = col + 1; r < 3; r++) {
            double f = M[r][col] / M[col][col];
            for (int j = col; j < 4; j++)
                M[r][j] -= f * M[col][j];
        }
    }
    for (int r = 2; r >= 0; r--) {
        double s = M[r][3];
        for (int j = r + 1; j < 3; j++)
            s -= M[r][j] * x[j];
        x[r] = s / M[r][r];
    }
    return 0;
}

/* Adam's balance F(A) = 0, increasing in A (README, "Transient: stationary state"). */
static double adam_balance(const roteq_transient *tr, double eta, double lam, double A,
                           stationary *st)
{
    double b1 = tr->hp.beta1, gam = tr->G2 / A;
    if (tr->fam == FAM_ADAMW) {
        double d = 1 - eta * lam;
        double k = eta / (sqrt(gam / tr->C) + tr->hp.eps);
        double M = (1 - b1) * gam / (1 + b1);
        st->A = A, st->B = M, st->k = k, st->Y = -k * M / (1 - d * b1);
        return A * (1 - d * d) - k * k * M * (1 + d * b1) / (1 - d * b1);
    }
    double k = eta / (sqrt((gam + lam * lam * A) / tr->C) + tr->hp.eps);
    double Z = (1 - b1) * lam * A / (1 + b1);
    st->A = A, st->k = k, st->B = 2 * Z / k, st->Y = -Z;
    return A * (2 * lam / k - (1 - b1) * lam * lam / (1 + b1)) - gam;
}

static int stationary_state(const roteq_transient *tr, double eta, double lam, stationary *st)
{
    double al = tr->alpha, c = tr->c, G2 = tr->G2;
    memset(st, 0, sizeof *st);
    switch (tr->fam) {
    case FAM_SGD:
        if (!tr->nesterov) {
            /* 2Z = eta B, Y = -Z, Z = c lam A/(1+alpha), and the buffer's balance give
             * A^2 = c G2 eta / (lam (1-alpha) (2 - eta c lam/(1+alpha))). */
            double A = sqrt(c * G2 * eta / (lam * (1 - al) * (2 - eta * c * lam / (1 + al))));
            double Z = c * lam * A / (1 + al);
            st->A = A, st->B = 2 * Z / eta, st->Y = -Z;
            if (al == 0.0)
                st->angle = roteq_step_angle(A, 1.0, eta * lam * A, eta * 2 * Z);
            else
                st->angle = roteq_step_angle(A, 1.0, eta * Z, eta * eta * st->B);
        } else {
            /* Per unit A, unknowns (B, Y, gamma); then gamma = G2/A fixes A. */
            double M[3][4] = {
                {1 - al * al, -2 * al * lam, -1, lam * lam},
                {eta * al, 1 - al + eta * al * lam, eta, lam - eta * lam * lam},
                {al * al, 2 * al * al * lam - 2 * al * al / eta, 1 + 2 * al,
                 2 * lam * (1 + al) / eta - lam * lam * (1 + 2 * al)},
            };
            double x[3];
            if (solve3(M, x) || !(x[2] > 0))
                return roteq_error_set(ROTEQ_ERUNTIME, "no stationary state for Nesterov");
            double A = sqrt(G2 / x[2]), gam = G2 / A;
            st->A = A, st->B = x[0] * A, st->Y = x[1] * A;
            double Z = al * st->Y + lam * A;
            double Eb = al * lam * st->Y + gam + lam * lam * A;
            st->angle =
                roteq_step_angle(A, 1.0, eta * (lam * A + al * Z),
                                 eta * eta * (gam + lam * lam * A + al * al * st->B + 2 * al * Eb));
        }
        return ROTEQ_OK;
    case FAM_ADAMW:
    case FAM_ADAM_L2: {
        /* Bisection in log A around the closed form's scale (F is increasing). */
        double lo = tr->A * 1e-12, hi = tr->A * 1e12;
        stationary tmp;
        if (adam_balance(tr, eta, lam, lo, &tmp) > 0 || adam_balance(tr, eta, lam, hi, &tmp) < 0)
            return roteq_error_set(ROTEQ_ERUNTIME, "no stationary state for %s", tr->opt->name);
        for (int i = 0; i < 300 && hi / lo - 1 > 1e-15; i++) {
            double mid = sqrt(lo * hi);
            if (adam_balance(tr, eta, lam, mid, &tmp) > 0)
                hi = mid;
            else
                lo = mid;
        }
        adam_balance(tr, eta, lam, sqrt(lo * hi), st);
        double b1 = tr->hp.beta1, d = tr->fam == FAM_ADAMW ? 1 - eta * lam : 1.0;
        double lam_g = tr->fam == FAM_ADAM_L2 ? lam : 0.0;
        double Z = b1 * st->Y + (1 - b1) * lam_g * st->A;
        st->angle = roteq_step_angle(st->A, d, st->k * Z, st->k * st->k * st->B);
        return ROTEQ_OK;
    }
    case FAM_LION: {
        double d = 1 - eta * lam, S, R;
        roteq_lion_lag_sums(tr->hp.beta1, tr->hp.beta2, d, &S, &R);
        st->A = eta * eta * tr->C * S / (1 - d * d);
        st->angle = roteq_step_angle(st->A, d, -eta * eta * tr->C * R, eta * eta * tr->C);
        return ROTEQ_OK;
    }
    default:
        st->A = tr->A;
        st->angle = rv_angle(tr, eta, lam);
        return ROTEQ_OK;
    }
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
    stationary st;
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

/* Lion: F(i) = sum_{j>=1} d^(j-1) r_{i+j}, r_m = (2/pi) asin(rho1 beta2^(m-1)). */
static double lion_F(double rho1, double b2, double d, long i)
{
    double s = 0.0, rho = rho1 * pow(b2, (double)i), dj = 1.0;
    for (long j = 1; j <= 20000000L; j++) {
        double r = M_2_PI * asin(rho);
        s += dj * r;
        if (dj * r <= 1e-17 * s || rho == 0.0)
            break;
        rho *= b2;
        dj *= d;
    }
    return s;
}

/* Gaps up to this many steps run the cross-moment recurrence step by step (results identical to
 * earlier releases); longer ones use its closed forms, whose cost does not grow with k. */
#define KSTEP_LOOP_MAX 65536

/* E_k of the affine 3x3 map M of the SGD and Adam recurrences (state (E, Q, 1)) by repeated
 * squaring: about 2 log2(k) products instead of k steps. Powers are kept as I + X: M is close to
 * the identity when eta*lambda is small, and (I+X)(I+Y) = I + (X + Y + XY) keeps the small parts
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

/* X = M - I is given. */
static double affine_power_E(double X[3][3], long k, double E0, double Q0)
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

/* Lion's E_k = (1 - d^k) A - eta^2 C sum_i d^(k-1-i) F(i) without the sum over i: exchanging the
 * sums gives sum_m r_m d^|k-m| (1 - d^(2 min(k,m))) / (1 - d^2), and r_m decays like beta2^m,
 * so the terms that matter are the first few thousand whatever k is. */
static double lion_kstep_E(double A, double eta, double lam, double C, double rho1, double b2,
                           long k)
{
    /* 1 - d of the rounded d = 1 - eta lam that the stationary A was computed with */
    double omd = 1 - (1 - eta * lam), ld = log1p(-omd), one_m_d2 = omd * (2 - omd);
    double wmax = 1 / one_m_d2, s = 0.0, rho = rho1;
    for (long m = 1; m <= 100000000L && rho != 0.0; m++) {
        long n = m < k ? m : k;
        double w = exp((double)labs(k - m) * ld) * -expm1(2.0 * (double)n * ld) / one_m_d2;
        s += M_2_PI * asin(rho) * w;
        /* the rest of the sum is below wmax |rho| b2 / (1 - b2): stop once it is negligible
         * next to the terms so far, or next to A in E (when d^|k-m| has made them tiny) */
        double rest = wmax * fabs(rho) * b2 / (1 - b2);
        if (m > 1 && (rest <= 1e-17 * fabs(s) || eta * eta * C * rest <= 1e-17 * A))
            break;
        rho *= b2;
    }
    return -expm1((double)k * ld) * A - eta * eta * C * s;
}

/* E = A - E<w_t, w_{t+k}> at equilibrium, by the cross-moment recurrence; angle from the chord
 * ||w_{t+k} - w_t||^2 = 2E (equal norms). */
static double kstep_internal(const roteq_transient *tr, double eta, double lam, long k)
{
    stationary st;
    if (stationary_state(tr, eta, lam, &st))
        return ROTEQ_NAN;
    double A = st.A, E = 0.0;
    int fast = k > KSTEP_LOOP_MAX;
    switch (tr->fam) {
    case FAM_SGD: {
        double al = tr->alpha, c = tr->c, Q = st.Y; /* Q = E<w_t, b_{t+i-1}> */
        if (fast) {
            /* Qn = al Q + c lam (A - E); E += eta Qn, or eta (lam (A - E) + al Qn) (Nesterov);
             * X = M - I */
            double X[3][3] = {{-eta * c * lam, eta * al, eta * c * lam * A},
                              {-c * lam, al - 1, c * lam * A},
                              {0, 0, 0}};
            if (tr->nesterov) {
                X[0][0] = -eta * lam - eta * al * c * lam;
                X[0][1] = eta * al * al;
                X[0][2] = eta * lam * A + eta * al * c * lam * A;
            }
            E = affine_power_E(X, k, 0.0, Q);
            break;
        }
        for (long i = 0; i < k; i++) {
            double Qn = al * Q + c * lam * (A - E);
            E += tr->nesterov ? eta * (lam * (A - E) + al * Qn) : eta * Qn;
            Q = Qn;
        }
        break;
    }
    case FAM_ADAMW:
    case FAM_ADAM_L2: {
        double b1 = tr->hp.beta1, d = tr->fam == FAM_ADAMW ? 1 - eta * lam : 1.0;
        double lam_g = tr->fam == FAM_ADAM_L2 ? lam : 0.0, Q = st.Y;
        if (fast) {
            /* Qn = b1 Q + (1-b1) lam_g (A - E); E' = (1-d) A + d E + k Qn; X = M - I, with
             * 1 - d from the rounded d the stationary state used (the subtraction is exact) */
            double g = (1 - b1) * lam_g, omd = 1 - d;
            double X[3][3] = {{-omd - st.k * g, st.k * b1, omd * A + st.k * g * A},
                              {-g, b1 - 1, g * A},
                              {0, 0, 0}};
            E = affine_power_E(X, k, 0.0, Q);
            break;
        }
        for (long i = 0; i < k; i++) {
            double Qn = b1 * Q + (1 - b1) * lam_g * (A - E);
            E = (1 - d) * A + d * E + st.k * Qn;
            Q = Qn;
        }
        break;
    }
    case FAM_LION: {
        /* E_{i+1} = (1-d) A + d E_i - eta^2 C F(i); F computed backwards from F(k-1), where
         * the recursion F(i) = r_{i+1} + d F(i+1) is stable. */
        double d = 1 - eta * lam, b2 = tr->hp.beta2, rho1 = roteq_lion_rho1(tr->hp.beta1, b2);
        if (fast) {
            E = lion_kstep_E(A, eta, lam, tr->C, rho1, b2, k);
            break;
        }
        double F = lion_F(rho1, b2, d, k - 1), wsum = 0.0, wi = 1.0;
        for (long i = k - 1; i >= 0; i--) {
            wsum += wi * F; /* d^(k-1-i) F(i) */
            wi *= d;
            if (i > 0) /* F(i-1) = r_i + d F(i) */
                F = M_2_PI * asin(rho1 * pow(b2, (double)(i - 1))) + d * F;
        }
        /* E_k = (1 - d^k) A - eta^2 C sum_i d^(k-1-i) F(i) */
        E = (1 - pow(d, (double)k)) * A - eta * eta * tr->C * wsum;
        break;
    }
    default:
        return ROTEQ_NAN;
    }
    double x = sqrt(E > 0 ? E / (2 * A) : 0.0);
    return 2 * asin(x < 1 ? x : 1.0);
}

double roteq_theory_kstep_angle(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                const roteq_setting *s, long k)
{
    if (k < 1) {
        roteq_error_set(ROTEQ_EINVAL, "k must be at least 1, got %ld", k);
        return ROTEQ_NAN;
    }
    const roteq_optimizer_type *base = opt;
    roteq_hparams h = *hp;
    if (family_of(opt) == FAM_RV) {
        /* The rotational variants move like their base optimizer at equilibrium (same update
         * directions, same rotation per step); RV-Lion's target differs from Lion's own
         * rotation, so Lion is evaluated at the weight decay whose best rotation matches it
         * (rotation ~ sqrt(lambda)). Approximate: README, "k-step angle". */
        base = roteq_optimizers[opt->base];
        roteq_equilibrium target, own;
        roteq_setting s0 = {0, ROTEQ_NAN};
        if (roteq_theory_equilibrium(opt, hp, &s0, ROTEQ_PRED_BEST, &target))
            return ROTEQ_NAN;
        if (base->id == ROTEQ_OPT_LION) {
            for (int it = 0; it < 4; it++) {
                if (roteq_theory_equilibrium(base, &h, &s0, ROTEQ_PRED_BEST, &own))
                    return ROTEQ_NAN;
                double r = target.angular_update / own.angular_update;
                h.weight_decay *= r * r;
            }
        }
    }
    /* Angles at equilibrium are scale-free: placeholders stand in for unknown scales, except
     * for Adam+L2, whose equilibrium angle depends on the gradient scale. */
    if (base->id == ROTEQ_OPT_ADAM_L2 && !scale_known(FAM_ADAM_L2, s)) {
        roteq_error_set(ROTEQ_EINVAL, "adam_l2 needs the gradient norm and the dimension");
        return ROTEQ_NAN;
    }
    roteq_transient *tr = roteq_transient_alloc(base, &h, s, ROTEQ_NAN);
    if (tr == NULL)
        return ROTEQ_NAN;
    double a = kstep_internal(tr, h.lr, h.weight_decay, k);
    roteq_transient_free(tr);
    return a;
}

int roteq_theory_stationary(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                            const roteq_setting *s, roteq_equilibrium *out)
{
    if (opt == NULL || hp == NULL || s == NULL || out == NULL)
        return roteq_error_set(ROTEQ_EINVAL, "roteq_theory_stationary: NULL argument");
    roteq_transient *tr = roteq_transient_alloc(opt, hp, s, ROTEQ_NAN);
    if (tr == NULL)
        return roteq_error_status() ? roteq_error_status() : ROTEQ_EINVAL;
    stationary st;
    int rc = stationary_state(tr, hp->lr, hp->weight_decay, &st);
    if (rc == ROTEQ_OK) {
        out->norm = tr->norm_known ? sqrt(st.A) : ROTEQ_NAN;
        out->angular_update = tr->angle_known ? st.angle : ROTEQ_NAN;
        /* Exact under the model as C grows, except where the model itself needs more: Adam+L2
         * treats the second moment as the same for every coordinate, Lion's lag sums assume
         * Gaussian pre-sign signals in a fixed frame (README). */
        out->exact = tr->fam != FAM_ADAM_L2 && tr->fam != FAM_LION;
        out->source = tr->fam == FAM_RV ? "rotation fixed by construction (epfml/REQ etar)"
                                        : "derived here: fixed point of the transient "
                                          "recurrence (theory/README.md)";
    }
    roteq_transient_free(tr);
    return rc;
}
