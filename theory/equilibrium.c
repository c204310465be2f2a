/* equilibrium.c - closed-form equilibria (norm and RMS angular update) per optimizer.
 * FOUNDATION DRAFT: AdamW, SGD(M) heavy-ball and the Lion paper/plain forms; the theory issue (#8)
 * completes Nesterov, dampening, Adam+L2, Lion best and the RV targets. */
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>

const char *const roteq_prediction_names[ROTEQ_PRED_COUNT] = {"best", "paper", "plain"};

int roteq_theory_equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                             const roteq_setting *s, roteq_prediction which, roteq_equilibrium *out)
{
    int st = roteq_hparams_validate(opt, hp, NULL);
    if (st)
        return st;
    double eta = hp->lr, lam = hp->weight_decay, C = (double)s->dim;
    (void)which;
    switch (roteq_optimizers[opt->base]->id) {
    case ROTEQ_OPT_ADAMW:
        out->norm = sqrt(eta * C / (2 * lam));
        out->angular_update = sqrt(2 * eta * lam * (1 - hp->beta1) / (1 + hp->beta1));
        out->exact = 1;
        out->source = "paper Table 1";
        return ROTEQ_OK;
    default:
        return roteq_error_set(ROTEQ_EUNSUPPORTED, "no equilibrium formula for %s yet",
                               opt->name);
    }
}
