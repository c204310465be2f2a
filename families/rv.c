/* rv.c - the rotational variants (Kosson et al. 2024, Algorithm 1): RV-AdamW, RV-SGDM, RV-Lion.
 * Neuron granularity (the update is projected, centred and scaled per neuron); each enforces its
 * base optimizer's equilibrium rotation from the first step and holds the norm at its initial
 * value, so predictions need no scale.
 *
 * Facts checked against the public epfml/REQ code (shared/optimizers/rotational_wrapper.py): the
 * base optimizer's update without weight decay and without -lr, projected orthogonal to w and
 * centred (zero mean over the neuron); a running mean of its squared norm with decay
 * update_norm_decay and bias correction 1 - decay^t; the step
 * w <- w - eta_r * ||w_0|| * u / (sqrt(running mean) + 1e-8), then w rescaled back to ||w_0||.
 * eta_r is theory's equilibrium angular update (sim/engine.c). See sim/README.md for each choice.
 *
 * Theory part without ROTEQ_KERNEL_SUFFIX, sim part with it (families/README.md). */
#ifndef ROTEQ_KERNEL_SUFFIX
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>

#define B(x)    ROTEQ_HP_BIT(ROTEQ_HP_##x)
#define SGD_HP  (B(LR) | B(WEIGHT_DECAY) | B(MOMENTUM) | B(DAMPENING) | B(NESTEROV))
#define ADAM_HP (B(LR) | B(WEIGHT_DECAY) | B(BETA1) | B(BETA2) | B(EPS))
#define LION_HP (B(LR) | B(WEIGHT_DECAY) | B(BETA1) | B(BETA2))
#define RV      B(UPDATE_NORM_DECAY)
#define NONE    ((double)NAN)
#define SRC_RV  "rotation fixed by construction: epfml/REQ rotational optimizers (etar)"

extern const roteq_family roteq_family_rv;

/* Base defaults; the update-size decay 0.9 is update_norm_decay_factor in the published code. */
const roteq_optimizer_type roteq_rv_adamw = {
    .name = "rv_adamw",
    .description = "rotational AdamW: equilibrium rotation from step 1",
    .formula = "angle sqrt(2*eta*lambda*(1-beta1)/(1+beta1)) from step 1 (AdamW's); norm held "
               "at its initial value  [by construction]",
    .hparams = ADAM_HP | RV,
    .required = 0,
    .defaults = {.lr = 1e-3,
                 .weight_decay = 1e-2,
                 .beta1 = 0.9,
                 .beta2 = 0.999,
                 .eps = 1e-8,
                 .update_norm_decay = 0.9},
    .flags = ROTEQ_OPTF_ROTATIONAL | ROTEQ_OPTF_ADAPTIVE,
    .base = &roteq_adamw,
    .base_prediction = ROTEQ_PRED_BEST,
    .family = &roteq_family_rv,
    .predictions = 1,
    .example_lr = 1e-3,
    .example_wd = 1.0,
};
const roteq_optimizer_type roteq_rv_sgdm = {
    .name = "rv_sgdm",
    .description = "rotational SGD with momentum: equilibrium rotation from step 1",
    .formula = "angle sqrt(2*eta*lambda*c/(1+alpha)) from step 1 (SGDM's; Nesterov's with "
               "--nesterov); norm held at its initial value  [by construction]",
    .hparams = SGD_HP | RV,
    .required = B(LR) | B(WEIGHT_DECAY),
    .defaults = {.lr = NONE, .weight_decay = NONE, .momentum = 0.9, .update_norm_decay = 0.9},
    .flags = ROTEQ_OPTF_ROTATIONAL | ROTEQ_OPTF_MOMENTUM,
    .base = &roteq_sgdm,
    .base_prediction = ROTEQ_PRED_BEST,
    .family = &roteq_family_rv,
    .predictions = 1,
    .example_lr = 0.1,
    .example_wd = 0.01,
};
/* RV-Lion targets the paper's Lion rotation, as the published RotationalLion does. */
const roteq_optimizer_type roteq_rv_lion = {
    .name = "rv_lion",
    .description = "rotational Lion: equilibrium rotation from step 1",
    .formula = "angle sqrt(pi*eta*lambda*K) from step 1 (Lion's paper formula, as the published "
               "RotationalLion); norm held at its initial value  [by construction]",
    .hparams = LION_HP | RV,
    .required = B(WEIGHT_DECAY),
    .defaults =
        {.lr = 1e-4, .weight_decay = NONE, .beta1 = 0.9, .beta2 = 0.99, .update_norm_decay = 0.9},
    .flags = ROTEQ_OPTF_ROTATIONAL | ROTEQ_OPTF_SIGN,
    .base = &roteq_lion,
    .base_prediction = ROTEQ_PRED_PAPER,
    .family = &roteq_family_rv,
    .predictions = 1,
    .example_lr = 1e-3,
    .example_wd = 1.0,
};

/* The base optimizer's rotation (its `base_prediction`); the norm is held at its initial value,
 * unknown here. */
static int equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp, double C, double G,
                       roteq_prediction which, roteq_equilibrium *out)
{
    (void)C, (void)G, (void)which;
    const roteq_optimizer_type *base = opt->base;
    roteq_equilibrium b;
    int st = base->family->equilibrium(base, hp, (double)NAN, (double)NAN,
                                       (roteq_prediction)opt->base_prediction, &b);
    if (st)
        return st;
    roteq_theory_set(out, (double)NAN, b.angular_update, 1, SRC_RV);
    return ROTEQ_OK;
}

static double rv_angle(const roteq_transient *tr, double eta, double lam)
{
    roteq_hparams hp = tr->hp;
    hp.lr = eta;
    hp.weight_decay = lam;
    roteq_setting s = {0, (double)NAN};
    roteq_equilibrium eq;
    if (roteq_theory_equilibrium(tr->opt, &hp, &s, ROTEQ_PRED_BEST, &eq))
        return (double)NAN;
    /* The wrapper moves w by eta_r*||w|| orthogonally and rescales: the angle is
     * atan(eta_r) = eta_r (1 - eta_r^2/3); like the paper, we report eta_r itself. */
    return eq.angular_update;
}

static double transient_step(roteq_transient *tr, double eta, double lam)
{
    return lam > 0 && eta > 0 ? rv_angle(tr, eta, lam) : 0.0;
}

static int stationary(const roteq_transient *tr, double eta, double lam, roteq_stationary *st)
{
    st->A = tr->A;
    st->angle = rv_angle(tr, eta, lam);
    st->exact = 1;
    st->source = "rotation fixed by construction (epfml/REQ etar)";
    return ROTEQ_OK;
}

/* The rotational variants move like their base optimizer at equilibrium (same update
 * directions, same rotation per step). Where the target differs from the base's own rotation
 * (RV-Lion targets the paper's formula), the base is evaluated at the weight decay whose best
 * rotation matches it (rotation ~ sqrt(lambda)). Approximate: theory/README.md, "k-step angle". */
static double kstep_angle(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                          const roteq_setting *s, long k)
{
    const roteq_optimizer_type *base = opt->base;
    roteq_hparams h = *hp;
    roteq_equilibrium target, own;
    roteq_setting s0 = {0, (double)NAN};
    if (roteq_theory_equilibrium(opt, hp, &s0, ROTEQ_PRED_BEST, &target))
        return (double)NAN;
    if (opt->base_prediction != ROTEQ_PRED_BEST) {
        for (int it = 0; it < 4; it++) {
            if (roteq_theory_equilibrium(base, &h, &s0, ROTEQ_PRED_BEST, &own))
                return (double)NAN;
            double r = target.angular_update / own.angular_update;
            h.weight_decay *= r * r;
        }
    }
    return roteq_theory_kstep_generic(base, &h, s, k);
}

/* Besides order eta*lambda (and 1 - beta2 for the Adam-based variant), the target rotation
 * drops order (1 - update_norm_decay)/C: the update is divided by a running RMS of its size. */
static double model_floor(const roteq_optimizer_type *opt, const roteq_hparams *hp, size_t dim)
{
    double floor = roteq_theory_floor_lr_wd(opt, hp, dim);
    if (opt->flags & ROTEQ_OPTF_ADAPTIVE)
        floor += 1.0 - hp->beta2;
    if (dim > 0)
        floor += (1.0 - hp->update_norm_decay) / (double)dim;
    return floor;
}

const roteq_family roteq_family_rv = {
    .name = "rv",
    .granularity = ROTEQ_GRAN_NEURON,
    .equilibrium = equilibrium,
    .transient_step = transient_step,
    .stationary = stationary,
    .kstep_angle = kstep_angle,
    .model_floor = model_floor,
    .holds_norm = 1,
    .verify_groups = "{\"points\": [\n"
                     "    {\"optimizer\": \"rv_adamw\", \"lr\": 0.001, \"weight_decay\": 0.1},\n"
                     "    {\"optimizer\": \"rv_sgdm\", \"lr\": 0.01, \"weight_decay\": 0.001, "
                     "\"momentum\": 0.9},\n"
                     "    {\"optimizer\": \"rv_lion\", \"lr\": 0.001, \"weight_decay\": 0.1}]}",
};

#else /* ---- sim part: compiled once per instruction set (sim/meson.build) ---- */
#include "family_sim.h"

/* rotational_eps of the published code: keeps the division finite before any update exists. */
#define RV_EPS 1e-8

/* A loop over a neuron in blocks of 8 lanes (lane l accumulates coordinates = l mod 8), then
 * the tail into the same lanes: the same order on every instruction set, and the block part
 * vectorises. BODY sees the coordinate j and the lane l. */
#define LANES8(dim, BODY)                                                                          \
    do {                                                                                           \
        size_t d8_ = (dim) & ~(size_t)7;                                                           \
        for (size_t i_ = 0; i_ < d8_; i_ += 8)                                                     \
            for (size_t l = 0; l < 8; l++) {                                                       \
                size_t j = i_ + l;                                                                 \
                BODY;                                                                              \
            }                                                                                      \
        for (size_t l = 0; d8_ + l < (dim); l++) {                                                 \
            size_t j = d8_ + l;                                                                    \
            BODY;                                                                                  \
        }                                                                                          \
    } while (0)

/* Pass (1): the base optimizer's update u from g and the state (INNER sets ui), and the lane
 * sums u.w, sum(u), sum(w). */
#define PASS1(INNER)                                                                               \
    double suw[8] = {0}, su[8] = {0}, sw[8] = {0};                                                 \
    LANES8(dim, {                                                                                  \
        double ui;                                                                                 \
        INNER;                                                                                     \
        u[j] = ui;                                                                                 \
        suw[l] += ui * w[j];                                                                       \
        su[l] += ui;                                                                               \
        sw[l] += w[j];                                                                             \
    })

/* Passes (2)-(4): u projected orthogonal to w and centred, sum(u^2); the step, sum(w^2); the
 * rescale onto the sphere. */
static inline void rv_finish(const roteq_sim_coef *k, double *restrict w, double *restrict u,
                             double *restrict scalars, size_t dim, const double suw[8],
                             const double su[8], const double sw[8])
{
    const double r = scalars[0], c = roteq_reduce8(suw) / (r * r);
    const double mean = (roteq_reduce8(su) - c * roteq_reduce8(sw)) / (double)dim;
    double suu[8] = {0};
    LANES8(dim, {
        double x = u[j] - c * w[j] - mean;
        u[j] = x;
        suu[l] += x * x;
    });
    scalars[1] = (1.0 - k->rv_decay) * roteq_reduce8(suu) + k->rv_decay * scalars[1];
    const double f = k->rv_rate * r / (sqrt(scalars[1] / k->rv_bc) + RV_EPS);
    double sww[8] = {0};
    LANES8(dim, {
        double wn = w[j] - f * u[j];
        w[j] = wn;
        sww[l] += wn * wn;
    });
    const double sc = r / sqrt(roteq_reduce8(sww));
    for (size_t i = 0; i < dim; i++)
        w[i] *= sc;
}

/* m / (sqrt(v)/sqrt(1-beta2^t) + eps) / (1-beta1^t): the Adam step without -lr. The last state
 * vector is the scratch for u. */
static void step_rv_adamw(const roteq_sim_coef *k, double *restrict w, const double *restrict g,
                          double *restrict state, double *restrict scalars, size_t dim,
                          size_t stride)
{
    double *restrict s1 = state, *restrict s2 = state + stride, *restrict u = state + 2 * stride;
    PASS1({
        double mm = k->beta1 * s1[j] + k->one_m_beta1 * g[j];
        double vv = k->beta2 * s2[j] + k->one_m_beta2 * g[j] * g[j];
        s1[j] = mm;
        s2[j] = vv;
        ui = mm / (sqrt(vv) / k->bc2_sqrt + k->eps) / k->bc1;
    });
    rv_finish(k, w, u, scalars, dim, suw, su, sw);
}

/* The undampened momentum buffer. */
static void step_rv_sgdm(const roteq_sim_coef *k, double *restrict w, const double *restrict g,
                         double *restrict state, double *restrict scalars, size_t dim,
                         size_t stride)
{
    double *restrict s1 = state, *restrict u = state + stride;
    PASS1({
        ui = k->mom_keep * s1[j] + k->mom_new * g[j];
        s1[j] = ui;
    });
    rv_finish(k, w, u, scalars, dim, suw, su, sw);
}

static void step_rv_lion(const roteq_sim_coef *k, double *restrict w, const double *restrict g,
                         double *restrict state, double *restrict scalars, size_t dim,
                         size_t stride)
{
    double *restrict s1 = state, *restrict u = state + stride;
    PASS1({
        ui = roteq_sign(k->beta1 * s1[j] + k->one_m_beta1 * g[j]);
        s1[j] = k->beta2 * s1[j] + k->one_m_beta2 * g[j];
    });
    rv_finish(k, w, u, scalars, dim, suw, su, sw);
}

/* The published wrapper centres the initial weights and keeps the norm of the centred vector. */
static void init_rv(double *w, double *state, double *scalars, size_t dim, size_t stride)
{
    (void)state, (void)stride;
    double mean = 0.0;
    for (size_t i = 0; i < dim; i++)
        mean += w[i];
    mean /= (double)dim;
    for (size_t i = 0; i < dim; i++)
        w[i] -= mean;
    double ss = 0.0;
    for (size_t i = 0; i < dim; i++)
        ss += w[i] * w[i];
    scalars[0] = sqrt(ss); /* ||w_0||, kept for the whole run */
    scalars[1] = 0.0;      /* running mean of ||u||^2 */
}

/* RV-SGDM accumulates without dampening from the first step (buf = momentum*buf + g), as the
 * published wrapper. */
static void coef_rv_sgdm(roteq_sim_coef *k, const roteq_optimizer_type *opt,
                         const roteq_hparams *hp)
{
    (void)opt, (void)hp;
    k->mom_keep = k->momentum;
    k->mom_new = 1.0;
}

ROTEQ_SIM_RULE(rv_adamw, 3, 2, init_rv, step_rv_adamw, NULL, NULL);
ROTEQ_SIM_RULE(rv_sgdm, 2, 2, init_rv, step_rv_sgdm, coef_rv_sgdm, NULL);
ROTEQ_SIM_RULE(rv_lion, 2, 2, init_rv, step_rv_lion, NULL, NULL);
#endif
