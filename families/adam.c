/* adam.c - the Adam family (torch.optim.Adam with L2 weight decay, torch.optim.AdamW with
 * decoupled weight decay). Coordinate granularity; AdamW's norm needs the dimension, Adam+L2's
 * norm and angle need the dimension and the gradient norm. The variants differ only in where the
 * decay acts (ROTEQ_OPTF_DECOUPLED).
 *
 * Theory part without ROTEQ_KERNEL_SUFFIX, sim part with it (families/README.md). Derivations:
 * theory/README.md ("AdamW", "Adam with L2"). */
#ifndef ROTEQ_KERNEL_SUFFIX
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>

#define B(x)    ROTEQ_HP_BIT(ROTEQ_HP_##x)
#define ADAM_HP (B(LR) | B(WEIGHT_DECAY) | B(BETA1) | B(BETA2) | B(EPS))
#define NONE    ((double)NAN)

extern const roteq_family roteq_family_adam;

/* PyTorch's defaults; Adam's default weight decay is 0, which has no equilibrium: required. */
const roteq_optimizer_type roteq_adam_l2 = {
    .name = "adam_l2",
    .description = "Adam with L2 weight decay in the gradient (torch.optim.Adam)",
    .formula = "norm (eta*G*sqrt(C)/(2*lambda))^(1/3); angle sqrt(2*eta*lambda_eff*(1-beta1)/"
               "(1+beta1)), lambda_eff = lambda*norm*sqrt(C)/G  [approx.: gradient dominates "
               "the second moment; derived here]",
    .hparams = ADAM_HP,
    .required = B(WEIGHT_DECAY),
    .defaults = {.lr = 1e-3, .weight_decay = NONE, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
    .flags = ROTEQ_OPTF_ADAPTIVE,
    .base = &roteq_adam_l2,
    .family = &roteq_family_adam,
    .needs = ROTEQ_NEED_DIM | ROTEQ_NEED_GRAD_NORM,
    .angle_needs_scale = 1,
    .predictions = 1,
    .example_lr = 1e-3,
    .example_wd = 0.05,
};
const roteq_optimizer_type roteq_adamw = {
    .name = "adamw",
    .description = "AdamW, decoupled weight decay (torch.optim.AdamW)",
    .formula = "norm sqrt(eta*C/(2*lambda)); angle sqrt(2*eta*lambda*(1-beta1)/(1+beta1))  "
               "[exact; paper]",
    .hparams = ADAM_HP,
    .required = 0,
    .defaults = {.lr = 1e-3, .weight_decay = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
    .flags = ROTEQ_OPTF_DECOUPLED | ROTEQ_OPTF_ADAPTIVE,
    .base = &roteq_adamw,
    .family = &roteq_family_adam,
    .needs = ROTEQ_NEED_DIM,
    .predictions = 1,
    .example_lr = 1e-3,
    .example_wd = 1.0,
};

static int decoupled(const roteq_optimizer_type *opt)
{
    return (opt->flags & ROTEQ_OPTF_DECOUPLED) != 0;
}

static int equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp, double C, double G,
                       roteq_prediction which, roteq_equilibrium *out)
{
    (void)which;
    double eta = hp->lr, lam = hp->weight_decay;
    if (decoupled(opt)) {
        /* Normalised updates of squared size C(1-beta1)/(1+beta1) per step, each gradient
         * moving w by eta*g/sqrt(v) in total through the momentum. */
        roteq_theory_set(out, sqrt(eta * C / (2 * lam)),
                         sqrt(2 * eta * lam * (1 - hp->beta1) / (1 + hp->beta1)), 1,
                         ROTEQ_SRC_PAPER " (AdamW row)");
        return ROTEQ_OK;
    }
    /* Assumes the gradient dominates Adam's second moment (lambda*||w||^2 << ||g~||) and
     * eps << sqrt(v): the L2 term then acts as a decoupled decay of rate
     * lambda_eff = lambda*||w||*sqrt(C)/||g~||, and the AdamW balance gives
     * ||w||^3 = eta*||g~||*sqrt(C)/(2*lambda). */
    double norm = cbrt(eta * G * sqrt(C) / (2 * lam));
    double lam_eff = lam * norm * sqrt(C) / G;
    roteq_theory_set(out, norm, sqrt(2 * eta * lam_eff * (1 - hp->beta1) / (1 + hp->beta1)), 0,
                     ROTEQ_SRC_DERIVED " (Adam+L2, gradient dominates the second moment)");
    return ROTEQ_OK;
}

/* One step of Adam: decoupled decay (AdamW) or L2 through the normaliser (Adam+L2). The
 * per-coordinate second moment lags the gradient scale, which changes as 1/||w||^2. */
static double transient_step(roteq_transient *tr, double eta, double lam)
{
    const roteq_hparams *hp = &tr->hp;
    double b1 = hp->beta1, b2 = hp->beta2, A = tr->A, gam = tr->G2 / A;
    int l2 = !decoupled(tr->opt);
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

/* Adam's balance F(A) = 0, increasing in A (theory/README.md, "Transient: stationary state"). */
static double balance(const roteq_transient *tr, double eta, double lam, double A,
                      roteq_stationary *st)
{
    double b1 = tr->hp.beta1, gam = tr->G2 / A;
    if (decoupled(tr->opt)) {
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

static int stationary(const roteq_transient *tr, double eta, double lam, roteq_stationary *st)
{
    /* Bisection in log A around the closed form's scale (F is increasing). */
    double lo = tr->A * 1e-12, hi = tr->A * 1e12;
    roteq_stationary tmp;
    if (balance(tr, eta, lam, lo, &tmp) > 0 || balance(tr, eta, lam, hi, &tmp) < 0)
        return roteq_error_set(ROTEQ_ERUNTIME, "no stationary state for %s", tr->opt->name);
    for (int i = 0; i < 300 && hi / lo - 1 > 1e-15; i++) {
        double mid = sqrt(lo * hi);
        if (balance(tr, eta, lam, mid, &tmp) > 0)
            hi = mid;
        else
            lo = mid;
    }
    balance(tr, eta, lam, sqrt(lo * hi), st);
    double b1 = tr->hp.beta1, d = decoupled(tr->opt) ? 1 - eta * lam : 1.0;
    double lam_g = decoupled(tr->opt) ? 0.0 : lam;
    double Z = b1 * st->Y + (1 - b1) * lam_g * st->A;
    st->angle = roteq_step_angle(st->A, d, st->k * Z, st->k * st->k * st->B);
    /* Adam+L2 treats the second moment as the same for every coordinate (README). */
    st->exact = decoupled(tr->opt);
    return ROTEQ_OK;
}

static double kstep_drift(const roteq_transient *tr, const roteq_stationary *st, double eta,
                          double lam, long k)
{
    double A = st->A, E = 0.0;
    double b1 = tr->hp.beta1, d = decoupled(tr->opt) ? 1 - eta * lam : 1.0;
    double lam_g = decoupled(tr->opt) ? 0.0 : lam, Q = st->Y;
    if (k > ROTEQ_KSTEP_LOOP_MAX) {
        /* Qn = b1 Q + (1-b1) lam_g (A - E); E' = (1-d) A + d E + k Qn; X = M - I, with 1 - d
         * from the rounded d the stationary state used (the subtraction is exact) */
        double g = (1 - b1) * lam_g, omd = 1 - d;
        double X[3][3] = {{-omd - st->k * g, st->k * b1, omd * A + st->k * g * A},
                          {-g, b1 - 1, g * A},
                          {0, 0, 0}};
        return roteq_theory_affine_power_E(X, k, 0.0, Q);
    }
    for (long i = 0; i < k; i++) {
        double Qn = b1 * Q + (1 - b1) * lam_g * (A - E);
        E = (1 - d) * A + d * E + st->k * Qn;
        Q = Qn;
    }
    return E;
}

/* Decoupled decay with a norm-independent update size contracts the deviation by
 * (1 - eta*lambda)^2 per step (analysis/README.md); Adam+L2 has no closed form here. */
static double convergence_rate(const roteq_optimizer_type *opt, double lr, double wd)
{
    return decoupled(opt) ? -2.0 * log1p(-lr * wd) : (double)NAN;
}

/* Besides order eta*lambda, the closed forms drop order 1 - beta2 (the second-moment estimate
 * is taken as exact): at beta2 = 0.999 AdamW's norm shows it at verify's standard errors. */
static double model_floor(const roteq_optimizer_type *opt, const roteq_hparams *hp, size_t dim)
{
    return roteq_theory_floor_lr_wd(opt, hp, dim) + (1.0 - hp->beta2);
}

const roteq_family roteq_family_adam = {
    .name = "adam",
    .granularity = ROTEQ_GRAN_COORDINATE,
    .equilibrium = equilibrium,
    .transient_step = transient_step,
    .stationary = stationary,
    .kstep_drift = kstep_drift,
    .convergence_rate = convergence_rate,
    .model_floor = model_floor,
    .verify_groups =
        "{\"fixed\": {\"optimizer\": \"adamw\", \"lr\": 0.001, \"weight_decay\": 0.1},\n"
        "   \"points\": [{\"beta1\": 0.9, \"dim\": 64}, {\"beta1\": 0.5, \"dim\": 256},\n"
        "              {\"beta1\": 0.9, \"beta2\": 0.9999, \"dim\": 256}]},\n"
        "  {\"fixed\": {\"optimizer\": \"adam_l2\", \"lr\": 0.001, \"weight_decay\": 0.05}}",
};

#else /* ---- sim part: compiled once per instruction set (sim/meson.build) ---- */
#include "family_sim.h"

/* Adam's moment updates and step (torch.optim.Adam/AdamW, non-fused path):
 * m = beta1*m + (1-beta1)*d; v = beta2*v + (1-beta2)*d*d;
 * denom = sqrt(v)/sqrt(1-beta2^t) + eps; w += (-lr/(1-beta1^t)) * m / denom. */
static inline double rule_adam_core(const roteq_sim_coef *k, double w, double d, double *m,
                                    double *v)
{
    double mm = k->beta1 * *m + k->one_m_beta1 * d;
    double vv = k->beta2 * *v + k->one_m_beta2 * d * d;
    *m = mm;
    *v = vv;
    double denom = sqrt(vv) / k->bc2_sqrt + k->eps;
    return w + k->neg_step_size * mm / denom;
}

/* Adam with L2: the decay enters the gradient and so passes through the normaliser. */
static inline double rule_adam_l2(const roteq_sim_coef *k, double w, double g, double *m, double *v)
{
    return rule_adam_core(k, w, g + k->wd * w, m, v);
}

/* AdamW: decoupled decay first (param.mul_(1 - lr*wd)), then the Adam step on the raw gradient. */
static inline double rule_adamw(const roteq_sim_coef *k, double w, double g, double *m, double *v)
{
    return rule_adam_core(k, w * k->decay, g, m, v);
}

static void step_adam_l2(const roteq_sim_coef *k, double *w, const double *g, double *state,
                         double *scalars, size_t dim, size_t stride)
{
    (void)scalars;
    for (size_t i = 0; i < dim; i++)
        w[i] = rule_adam_l2(k, w[i], g[i], &state[i], &state[stride + i]);
}

static void step_adamw(const roteq_sim_coef *k, double *w, const double *g, double *state,
                       double *scalars, size_t dim, size_t stride)
{
    (void)scalars;
    for (size_t i = 0; i < dim; i++)
        w[i] = rule_adamw(k, w[i], g[i], &state[i], &state[stride + i]);
}

ROTEQ_FUSED(fused_adam_l2, wn = rule_adam_l2(k, wo, g, &s1[i + l], &s2[i + l]))
ROTEQ_FUSED(fused_adamw, wn = rule_adamw(k, wo, g, &s1[i + l], &s2[i + l]))

ROTEQ_SIM_RULE(adam_l2, 2, 0, roteq_sim_init_zero, step_adam_l2, NULL, fused_adam_l2);
ROTEQ_SIM_RULE(adamw, 2, 0, roteq_sim_init_zero, step_adamw, NULL, fused_adamw);
#endif
