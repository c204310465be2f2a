/* rules.c - the reference table of update rules, indexed by roteq_opt_id: one optimizer step on
 * one neuron, given its gradient vector, plus the per-step coefficients. Every rule's arithmetic
 * is in rules_inline.h, shared with the fused kernels (plain rules per coordinate, rotational
 * variants as whole-neuron passes), so this table and the engine compute the same thing; the
 * table is what the parity test drives and what the reference engine path calls.
 *
 * Rotational variants (Kosson et al. 2024, Algorithm 1; facts checked against the public
 * epfml/REQ code, shared/optimizers/rotational_wrapper.py): the base optimizer's update without
 * weight decay and without -lr, projected orthogonal to w and centred (zero mean over the
 * neuron); a running mean of its squared norm with decay update_norm_decay and bias correction
 * 1 - decay^t; the step  w <- w - eta_r * ||w_0|| * u / (sqrt(running mean) + 1e-8),  then w
 * rescaled back to ||w_0||. eta_r is theory's equilibrium angular update (engine.c). See
 * sim/README.md for each choice. */
#include "roteq_sim.h"
#include "rules_inline.h"

#include <math.h>
#include <string.h>

void roteq_sim_coef_init(roteq_sim_coef *k, const roteq_optimizer_type *opt,
                         const roteq_hparams *hp, size_t t, double lr, double wd, double rv_rate)
{
    memset(k, 0, sizeof *k);
    k->t = t;
    k->lr = lr;
    k->wd = wd;
    k->neg_lr = -lr;
    k->decay = 1.0 - lr * wd;
    k->momentum = isnan(hp->momentum) ? 0.0 : hp->momentum;
    k->nesterov = opt->id == ROTEQ_OPT_NESTEROV || (hp->nesterov == 1.0);
    double damp = isnan(hp->dampening) ? 0.0 : hp->dampening;
    /* PyTorch: the first step clones d into the buffer (no dampening); RV-SGDM accumulates
     * without dampening (buf = momentum*buf + g), as the published wrapper. */
    if (opt->id == ROTEQ_OPT_RV_SGDM) {
        k->mom_keep = k->momentum;
        k->mom_new = 1.0;
    } else {
        k->mom_keep = t == 1 ? 0.0 : k->momentum;
        k->mom_new = t == 1 ? 1.0 : 1.0 - damp;
    }
    k->beta1 = hp->beta1;
    k->one_m_beta1 = 1.0 - hp->beta1;
    k->beta2 = hp->beta2;
    k->one_m_beta2 = 1.0 - hp->beta2;
    k->eps = hp->eps;
    if (opt->flags & ROTEQ_OPTF_ADAPTIVE) {
        /* PyTorch: bias_correction = 1 - beta ** step, a Python float power. */
        k->bc1 = 1.0 - pow(hp->beta1, (double)t);
        k->bc2_sqrt = sqrt(1.0 - pow(hp->beta2, (double)t));
        k->neg_step_size = -(lr / k->bc1);
    }
    if (opt->flags & ROTEQ_OPTF_ROTATIONAL) {
        /* Every base equilibrium rate is sqrt(lr*wd) times a function of the betas. */
        k->rv_rate = rv_rate * sqrt((lr * wd) / (hp->lr * hp->weight_decay));
        k->rv_decay = hp->update_norm_decay;
        k->rv_bc = 1.0 - pow(hp->update_norm_decay, (double)t);
    }
}

static void init_zero(double *w, double *state, double *scalars, size_t dim, size_t stride)
{
    (void)w, (void)scalars, (void)dim, (void)stride;
    (void)state;
}

static void step_sgd(const roteq_sim_coef *k, double *w, const double *g, double *state,
                     double *scalars, size_t dim, size_t stride)
{
    (void)state, (void)scalars, (void)stride;
    for (size_t i = 0; i < dim; i++)
        w[i] = roteq_rule_sgd(k, w[i], g[i]);
}

static void step_sgdm(const roteq_sim_coef *k, double *w, const double *g, double *state,
                      double *scalars, size_t dim, size_t stride)
{
    (void)scalars, (void)stride;
    for (size_t i = 0; i < dim; i++)
        w[i] = roteq_rule_sgdm(k, w[i], g[i], &state[i]);
}

static void step_adam_l2(const roteq_sim_coef *k, double *w, const double *g, double *state,
                         double *scalars, size_t dim, size_t stride)
{
    (void)scalars;
    for (size_t i = 0; i < dim; i++)
        w[i] = roteq_rule_adam_l2(k, w[i], g[i], &state[i], &state[stride + i]);
}

static void step_adamw(const roteq_sim_coef *k, double *w, const double *g, double *state,
                       double *scalars, size_t dim, size_t stride)
{
    (void)scalars;
    for (size_t i = 0; i < dim; i++)
        w[i] = roteq_rule_adamw(k, w[i], g[i], &state[i], &state[stride + i]);
}

static void step_lion(const roteq_sim_coef *k, double *w, const double *g, double *state,
                      double *scalars, size_t dim, size_t stride)
{
    (void)scalars, (void)stride;
    for (size_t i = 0; i < dim; i++)
        w[i] = roteq_rule_lion(k, w[i], g[i], &state[i]);
}

/* ---- Rotational variants ---- */

/* The published wrapper centres the initial weights and keeps the norm of the centred vector.
 * The last state vector is the scratch for the inner update u (rules_inline.h). */
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

static void step_rv_adamw(const roteq_sim_coef *k, double *w, const double *g, double *state,
                          double *scalars, size_t dim, size_t stride)
{
    roteq_rule_rv(k, ROTEQ_OPT_RV_ADAMW, w, g, state, scalars, dim, stride);
}

static void step_rv_sgdm(const roteq_sim_coef *k, double *w, const double *g, double *state,
                         double *scalars, size_t dim, size_t stride)
{
    roteq_rule_rv(k, ROTEQ_OPT_RV_SGDM, w, g, state, scalars, dim, stride);
}

static void step_rv_lion(const roteq_sim_coef *k, double *w, const double *g, double *state,
                         double *scalars, size_t dim, size_t stride)
{
    roteq_rule_rv(k, ROTEQ_OPT_RV_LION, w, g, state, scalars, dim, stride);
}

const roteq_sim_rule roteq_sim_rules[ROTEQ_OPT_COUNT] = {
    [ROTEQ_OPT_SGD] = {ROTEQ_OPT_SGD, 0, 0, init_zero, step_sgd},
    [ROTEQ_OPT_SGDM] = {ROTEQ_OPT_SGDM, 1, 0, init_zero, step_sgdm},
    [ROTEQ_OPT_NESTEROV] = {ROTEQ_OPT_NESTEROV, 1, 0, init_zero, step_sgdm},
    [ROTEQ_OPT_ADAM_L2] = {ROTEQ_OPT_ADAM_L2, 2, 0, init_zero, step_adam_l2},
    [ROTEQ_OPT_ADAMW] = {ROTEQ_OPT_ADAMW, 2, 0, init_zero, step_adamw},
    [ROTEQ_OPT_LION] = {ROTEQ_OPT_LION, 1, 0, init_zero, step_lion},
    [ROTEQ_OPT_RV_ADAMW] = {ROTEQ_OPT_RV_ADAMW, 3, 2, init_rv, step_rv_adamw},
    [ROTEQ_OPT_RV_SGDM] = {ROTEQ_OPT_RV_SGDM, 2, 2, init_rv, step_rv_sgdm},
    [ROTEQ_OPT_RV_LION] = {ROTEQ_OPT_RV_LION, 2, 2, init_rv, step_rv_lion},
};
