/* rules_inline.h - the per-coordinate arithmetic of every update rule, written once.
 *
 * Internal to sim/. Both the reference rule table (rules.c, which the parity test drives with
 * recorded PyTorch gradients) and the fused engine kernels (kernel.c, compiled once per
 * instruction set) inline these functions, so the parity test checks the very arithmetic the
 * engine runs. Each function follows the order of operations of the PyTorch 1.13 code it mirrors
 * (torch.optim.SGD/Adam/AdamW single-tensor path) or Lion's published Algorithm 2, written without
 * fused multiply-adds (ISO C mode, so the compiler never contracts) so that every instruction-set
 * path rounds identically. */
#ifndef ROTEQ_SIM_RULES_INLINE_H
#define ROTEQ_SIM_RULES_INLINE_H

#include "roteq_sim.h"

#include <math.h>

/* SGD family (torch.optim.SGD): d = g + lambda*w; buf = keep*buf + new*d, where the first step
 * has keep = 0, new = 1 (PyTorch clones d into the buffer) and later steps keep = momentum,
 * new = 1 - dampening; Nesterov uses d + momentum*buf, heavy ball uses buf; w += (-lr)*d. */
static inline double roteq_rule_sgd(const roteq_sim_coef *k, double w, double g)
{
    double d = g + k->wd * w;
    return w + k->neg_lr * d;
}

static inline double roteq_rule_sgdm(const roteq_sim_coef *k, double w, double g, double *buf)
{
    double d = g + k->wd * w;
    double b = k->mom_keep * *buf + k->mom_new * d;
    *buf = b;
    double step = k->nesterov ? d + k->momentum * b : b;
    return w + k->neg_lr * step;
}

/* Adam's moment updates and step (torch.optim.Adam/AdamW, non-fused path):
 * m = beta1*m + (1-beta1)*d; v = beta2*v + (1-beta2)*d*d;
 * denom = sqrt(v)/sqrt(1-beta2^t) + eps; w += (-lr/(1-beta1^t)) * m / denom. */
static inline double roteq_rule_adam_core(const roteq_sim_coef *k, double w, double d, double *m,
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
static inline double roteq_rule_adam_l2(const roteq_sim_coef *k, double w, double g, double *m,
                                        double *v)
{
    return roteq_rule_adam_core(k, w, g + k->wd * w, m, v);
}

/* AdamW: decoupled decay first (param.mul_(1 - lr*wd)), then the Adam step on the raw gradient. */
static inline double roteq_rule_adamw(const roteq_sim_coef *k, double w, double g, double *m,
                                      double *v)
{
    return roteq_rule_adam_core(k, w * k->decay, g, m, v);
}

/* sign(x) with sign(0) = 0, as torch.sign. Branch-free so loops vectorise. */
static inline double roteq_sign(double x)
{
    return (double)(x > 0.0) - (double)(x < 0.0);
}

/* Lion (Chen et al. 2023, Algorithm 2, decoupled decay as in the published code):
 * w = w*(1 - lr*lambda); c = beta1*m + (1-beta1)*g; w += (-lr)*sign(c);
 * m = beta2*m + (1-beta2)*g. */
static inline double roteq_rule_lion(const roteq_sim_coef *k, double w, double g, double *m)
{
    double c = k->beta1 * *m + k->one_m_beta1 * g;
    *m = k->beta2 * *m + k->one_m_beta2 * g;
    return w * k->decay + k->neg_lr * roteq_sign(c);
}

/* ---- Rotational variants (whole-neuron operations; see rules.c for the algorithm) ----
 * Four passes over the neuron: (1) the base optimizer's update u and the sums u.w, sum(u),
 * sum(w); (2) u projected orthogonal to w and centred, sum(u^2); (3) the step, sum(w^2);
 * (4) the rescale onto the sphere. Sums accumulate 8 lanes in a fixed order so that every
 * instruction-set build gives the same bits (the kernels inline this too). */

static inline double roteq_sum8(const double a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* rotational_eps of the published code: keeps the division finite before any update exists. */
#define ROTEQ_RV_EPS 1e-8

/* A loop over a neuron in blocks of 8 lanes (lane l accumulates coordinates = l mod 8), then
 * the tail into the same lanes: the same order on every instruction set, and the block part
 * vectorises. BODY sees the coordinate j and the lane l. */
#define ROTEQ_LANES8(dim, BODY)                                                                    \
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

/* Pass (1) for each base optimizer: u from g and the state; lane sums. */
#define ROTEQ_RV_PASS1(INNER)                                                                      \
    ROTEQ_LANES8(dim, {                                                                            \
        double ui;                                                                                 \
        INNER;                                                                                     \
        u[j] = ui;                                                                                 \
        suw[l] += ui * w[j];                                                                       \
        su[l] += ui;                                                                               \
        sw[l] += w[j];                                                                             \
    })

static inline void roteq_rule_rv(const roteq_sim_coef *k, roteq_opt_id id, double *restrict w,
                                 const double *restrict g, double *restrict state,
                                 double *restrict scalars, size_t dim, size_t stride)
{
    double *restrict s1 = state, *restrict s2 = state + stride;
    double *restrict u = state + (id == ROTEQ_OPT_RV_ADAMW ? 2 : 1) * stride;
    double suw[8] = {0}, su[8] = {0}, sw[8] = {0};
    switch (id) {
    case ROTEQ_OPT_RV_ADAMW:
        /* m / (sqrt(v)/sqrt(1-beta2^t) + eps) / (1-beta1^t): the Adam step without -lr */
        ROTEQ_RV_PASS1({
            double mm = k->beta1 * s1[j] + k->one_m_beta1 * g[j];
            double vv = k->beta2 * s2[j] + k->one_m_beta2 * g[j] * g[j];
            s1[j] = mm;
            s2[j] = vv;
            ui = mm / (sqrt(vv) / k->bc2_sqrt + k->eps) / k->bc1;
        });
        break;
    case ROTEQ_OPT_RV_SGDM:
        /* the undampened momentum buffer */
        ROTEQ_RV_PASS1({
            ui = k->mom_keep * s1[j] + k->mom_new * g[j];
            s1[j] = ui;
        });
        break;
    default: /* ROTEQ_OPT_RV_LION */
        ROTEQ_RV_PASS1({
            ui = roteq_sign(k->beta1 * s1[j] + k->one_m_beta1 * g[j]);
            s1[j] = k->beta2 * s1[j] + k->one_m_beta2 * g[j];
        });
        break;
    }
    const double r = scalars[0], c = roteq_sum8(suw) / (r * r);
    const double mean = (roteq_sum8(su) - c * roteq_sum8(sw)) / (double)dim;
    double suu[8] = {0};
    ROTEQ_LANES8(dim, {
        double x = u[j] - c * w[j] - mean;
        u[j] = x;
        suu[l] += x * x;
    });
    scalars[1] = (1.0 - k->rv_decay) * roteq_sum8(suu) + k->rv_decay * scalars[1];
    const double f = k->rv_rate * r / (sqrt(scalars[1] / k->rv_bc) + ROTEQ_RV_EPS);
    double sww[8] = {0};
    ROTEQ_LANES8(dim, {
        double wn = w[j] - f * u[j];
        w[j] = wn;
        sww[l] += wn * wn;
    });
    const double sc = r / sqrt(roteq_sum8(sww));
    for (size_t i = 0; i < dim; i++)
        w[i] *= sc;
}

#endif
