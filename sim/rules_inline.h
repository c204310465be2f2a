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

#endif
