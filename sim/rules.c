/* rules.c - the per-step coefficients every update rule reads, and the lookup of an optimizer's
 * reference rule. The rules themselves live with their optimizers in the family files
 * (families/<family>.c, sim part), built once per instruction set; the reference rules are the
 * generic build's, which the parity test drives with PyTorch's trajectories and the engine's
 * reference path calls. */
#include "kernel.h"
#include "roteq_sim.h"
#include "roteq_util.h"

#include <math.h>
#include <string.h>

const roteq_sim_rule *roteq_sim_rule_for(const roteq_optimizer_type *opt)
{
    const roteq_sim_rule *r = opt ? roteq_kernel_generic.rule_for(opt) : NULL;
    if (r == NULL)
        roteq_error_set(ROTEQ_EUNSUPPORTED, "no update rule for %s", opt ? opt->name : "(null)");
    return r;
}

const struct roteq_sim_matrix *roteq_sim_matrix_for(const roteq_optimizer_type *opt)
{
    const roteq_sim_rule *r = opt ? roteq_kernel_generic.rule_for(opt) : NULL;
    return r ? r->matrix : NULL;
}

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
    /* Nesterov where the variant fixes it (its default) or the hyperparameter asks for it. */
    k->nesterov = opt->defaults.nesterov == 1.0 || (hp->nesterov == 1.0);
    double damp = isnan(hp->dampening) ? 0.0 : hp->dampening;
    /* PyTorch: the first step clones d into the buffer (no dampening). */
    k->mom_keep = t == 1 ? 0.0 : k->momentum;
    k->mom_new = t == 1 ? 1.0 : 1.0 - damp;
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
    const roteq_sim_rule *r = roteq_kernel_generic.rule_for(opt);
    if (r && r->coef)
        r->coef(k, opt, hp);
}
