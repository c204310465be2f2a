/* sgd.c - the SGD family (torch.optim.SGD, weight decay as L2 in the gradient): plain SGD, heavy
 * ball with optional dampening, Nesterov. Coordinate granularity; the equilibrium norm needs the
 * gradient norm, the angle needs nothing.
 *
 * One file, two parts (families/README.md): without ROTEQ_KERNEL_SUFFIX it is the theory part
 * (optimizer types, closed forms, transient recurrences; compiled into libroteq_theory, uses
 * theory/ and util/ only), with it the sim part (update rules and fused kernels; compiled into
 * each of sim/'s instruction-set kernels). So theory never depends on sim, and the variants'
 * math for both lives side by side. Derivations: theory/README.md ("SGD family"). */
#ifndef ROTEQ_KERNEL_SUFFIX
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <string.h>

#define B(x)   ROTEQ_HP_BIT(ROTEQ_HP_##x)
#define SGD_HP (B(LR) | B(WEIGHT_DECAY) | B(MOMENTUM) | B(DAMPENING) | B(NESTEROV))
#define NONE   ((double)NAN)

extern const roteq_family roteq_family_sgd;

/* Defaults are PyTorch's (torch.optim 1.13). SGD has no default lr; a zero weight decay has no
 * equilibrium, so both are required. sgdm defaults to momentum 0.9, the value the paper and
 * most recipes use (PyTorch's 0 would make it plain SGD). */
const roteq_optimizer_type roteq_sgd = {
    .name = "sgd",
    .description = "SGD, weight decay as L2 in the gradient (torch.optim.SGD)",
    .formula = "norm (eta*G^2/(2*lambda))^(1/4); angle sqrt(2*eta*lambda)  [exact; paper]",
    .hparams = B(LR) | B(WEIGHT_DECAY),
    .required = B(LR) | B(WEIGHT_DECAY),
    .defaults = {.lr = NONE, .weight_decay = NONE},
    .base = &roteq_sgd,
    .family = &roteq_family_sgd,
    .needs = ROTEQ_NEED_GRAD_NORM,
    .predictions = 1,
    .example_lr = 0.1,
    .example_wd = 0.01,
};
const roteq_optimizer_type roteq_sgdm = {
    .name = "sgdm",
    .description = "SGD with heavy-ball momentum and optional dampening (torch.optim.SGD)",
    .formula = "norm (eta*c*G^2/(2*lambda*(1-alpha)))^(1/4), c = 1-dampening; "
               "angle sqrt(2*eta*lambda*c/(1+alpha))  [exact; paper, dampening derived here]",
    .hparams = SGD_HP,
    .required = B(LR) | B(WEIGHT_DECAY),
    .defaults = {.lr = NONE, .weight_decay = NONE, .momentum = 0.9},
    .flags = ROTEQ_OPTF_MOMENTUM,
    .base = &roteq_sgdm,
    .family = &roteq_family_sgd,
    .needs = ROTEQ_NEED_GRAD_NORM,
    .predictions = 1,
    .nesterov_variant = &roteq_nesterov,
    .example_lr = 0.1,
    .example_wd = 0.01,
};
const roteq_optimizer_type roteq_nesterov = {
    .name = "nesterov",
    .description = "SGD with Nesterov momentum (torch.optim.SGD, nesterov=True)",
    .formula = "norm (eta*G^2/(2*lambda*(1-alpha)))^(1/4); "
               "angle sqrt(2*eta*lambda*(1+2*alpha-2*alpha^3)/(1+alpha))  [exact; derived here]",
    .hparams = B(LR) | B(WEIGHT_DECAY) | B(MOMENTUM),
    .required = B(LR) | B(WEIGHT_DECAY),
    .defaults = {.lr = NONE, .weight_decay = NONE, .momentum = 0.9, .nesterov = 1},
    .flags = ROTEQ_OPTF_MOMENTUM,
    .base = &roteq_nesterov,
    .family = &roteq_family_sgd,
    .needs = ROTEQ_NEED_GRAD_NORM,
    .predictions = 1,
    .nesterov_variant = &roteq_nesterov,
    .example_lr = 0.1,
    .example_wd = 0.01,
};

/* Momentum alpha, dampening factor c = 1 - dampening and Nesterov as they apply to `opt`: a
 * variant without the hyperparameter has its default (nesterov's Nesterov is fixed on). */
static void sgd_params(const roteq_optimizer_type *opt, const roteq_hparams *hp, double *alpha,
                       double *c, int *nesterov)
{
    *alpha = 0.0, *c = 1.0, *nesterov = 0;
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_MOMENTUM))
        *alpha = hp->momentum;
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING))
        *c = 1.0 - hp->dampening;
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV))
        *nesterov = hp->nesterov != 0.0;
    else
        *nesterov = opt->defaults.nesterov != 0.0;
}

/* SGD with heavy-ball (or Nesterov) momentum alpha, dampening factor c, weight decay as L2 in
 * the gradient (PyTorch semantics). The decay passes through the momentum exactly like the
 * gradient does, so both act with the effective learning rate eta*c/(1-alpha). */
static int equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp, double C, double G,
                       roteq_prediction which, roteq_equilibrium *out)
{
    (void)C, (void)which;
    double eta = hp->lr, lam = hp->weight_decay, alpha, c;
    int nesterov;
    sgd_params(opt, hp, &alpha, &c, &nesterov);
    if (alpha == 0.0)
        c = 1.0; /* PyTorch ignores dampening without momentum (no buffer) */
    double norm = isnan(G) ? (double)NAN : pow(eta * c * G * G / (2 * lam * (1 - alpha)), 0.25);
    if (nesterov) {
        double a = alpha;
        roteq_theory_set(out, norm, sqrt(2 * eta * lam * (1 + 2 * a - 2 * a * a * a) / (1 + a)), 1,
                         ROTEQ_SRC_DERIVED " (Nesterov)");
    } else {
        roteq_theory_set(out, norm, sqrt(2 * eta * lam * c / (1 + alpha)), 1,
                         alpha == 0.0 || c == 1.0 ? ROTEQ_SRC_PAPER " (SGDM row)"
                                                  : ROTEQ_SRC_DERIVED " (dampening)");
    }
    return ROTEQ_OK;
}

static int transient_init(roteq_transient *tr)
{
    sgd_params(tr->opt, &tr->hp, &tr->alpha, &tr->c, &tr->nesterov);
    if (tr->alpha == 0.0)
        tr->c = 1.0, tr->nesterov = 0; /* PyTorch keeps no buffer without momentum */
    return ROTEQ_OK;
}

/* One step of SGD (plain, heavy ball, Nesterov) with L2 weight decay in the gradient. */
static double transient_step(roteq_transient *tr, double eta, double lam)
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

static int stationary(const roteq_transient *tr, double eta, double lam, roteq_stationary *st)
{
    double al = tr->alpha, c = tr->c, G2 = tr->G2;
    st->exact = 1;
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
        return ROTEQ_OK;
    }
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
    st->angle = roteq_step_angle(A, 1.0, eta * (lam * A + al * Z),
                                 eta * eta * (gam + lam * lam * A + al * al * st->B + 2 * al * Eb));
    return ROTEQ_OK;
}

/* E = A - E<w_t, w_{t+k}> by the cross-moment recurrence, Q = E<w_t, b_{t+i-1}>; long gaps
 * by the power of its affine map. */
static double kstep_drift(const roteq_transient *tr, const roteq_stationary *st, double eta,
                          double lam, long k)
{
    double A = st->A, E = 0.0, al = tr->alpha, c = tr->c, Q = st->Y;
    if (k > ROTEQ_KSTEP_LOOP_MAX) {
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
        return roteq_theory_affine_power_E(X, k, 0.0, Q);
    }
    for (long i = 0; i < k; i++) {
        double Qn = al * Q + c * lam * (A - E);
        E += tr->nesterov ? eta * (lam * (A - E) + al * Qn) : eta * Qn;
        Q = Qn;
    }
    return E;
}

/* Plain SGD with L2: the linearised mean-square norm contracts by 2(1 - eta*lambda)^2 - 1 per
 * step (analysis/README.md); with momentum there is no closed form here. */
static double convergence_rate(const roteq_optimizer_type *opt, double lr, double wd)
{
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_MOMENTUM))
        return (double)NAN;
    double A = (1 - lr * wd) * (1 - lr * wd);
    return -log(2 * A - 1);
}

const roteq_family roteq_family_sgd = {
    .name = "sgd",
    .granularity = ROTEQ_GRAN_COORDINATE,
    .equilibrium = equilibrium,
    .transient_init = transient_init,
    .transient_step = transient_step,
    .stationary = stationary,
    .kstep_drift = kstep_drift,
    .convergence_rate = convergence_rate,
    .model_floor = roteq_theory_floor_lr_wd,
    .verify_groups =
        "{\"fixed\": {\"optimizer\": \"sgd\", \"weight_decay\": 0.001}, \"axes\": {\"lr\": [0.1, "
        "0.05]}},\n"
        "  {\"fixed\": {\"optimizer\": \"sgdm\", \"lr\": 0.01, \"weight_decay\": 0.001},\n"
        "   \"axes\": {\"momentum\": [0.9, 0.5]}},\n"
        "  {\"fixed\": {\"optimizer\": \"nesterov\", \"lr\": 0.01, \"weight_decay\": 0.001, "
        "\"momentum\": 0.9}}",
};

#else /* ---- sim part: compiled once per instruction set (sim/meson.build) ---- */
#include "family_sim.h"

/* torch.optim.SGD: d = g + lambda*w; buf = keep*buf + new*d, where the first step has keep = 0,
 * new = 1 (PyTorch clones d into the buffer) and later steps keep = momentum,
 * new = 1 - dampening; Nesterov uses d + momentum*buf, heavy ball uses buf; w += (-lr)*d. */
static inline double rule_sgd(const roteq_sim_coef *k, double w, double g)
{
    double d = g + k->wd * w;
    return w + k->neg_lr * d;
}

static inline double rule_sgdm(const roteq_sim_coef *k, double w, double g, double *buf)
{
    double d = g + k->wd * w;
    double b = k->mom_keep * *buf + k->mom_new * d;
    *buf = b;
    double step = k->nesterov ? d + k->momentum * b : b;
    return w + k->neg_lr * step;
}

static void step_sgd(const roteq_sim_coef *k, double *w, const double *g, double *state,
                     double *scalars, size_t dim, size_t stride)
{
    (void)state, (void)scalars, (void)stride;
    for (size_t i = 0; i < dim; i++)
        w[i] = rule_sgd(k, w[i], g[i]);
}

static void step_sgdm(const roteq_sim_coef *k, double *w, const double *g, double *state,
                      double *scalars, size_t dim, size_t stride)
{
    (void)scalars, (void)stride;
    for (size_t i = 0; i < dim; i++)
        w[i] = rule_sgdm(k, w[i], g[i], &state[i]);
}

ROTEQ_FUSED(fused_sgd, wn = rule_sgd(k, wo, g))
ROTEQ_FUSED(fused_sgdm, wn = rule_sgdm(k, wo, g, &s1[i + l]))

ROTEQ_SIM_RULE(sgd, 0, 0, roteq_sim_init_zero, step_sgd, NULL, fused_sgd);
ROTEQ_SIM_RULE(sgdm, 1, 0, roteq_sim_init_zero, step_sgdm, NULL, fused_sgdm);
ROTEQ_SIM_RULE(nesterov, 1, 0, roteq_sim_init_zero, step_sgdm, NULL, fused_sgdm);
#endif
