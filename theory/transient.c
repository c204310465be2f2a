/* transient.c - expected-value recurrences for the approach to equilibrium.
 * FOUNDATION DRAFT: completed by the theory issue (#8). */
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>

struct roteq_transient {
    int unused;
};

roteq_transient *roteq_transient_alloc(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                       const roteq_setting *s, double init_norm)
{
    (void)opt, (void)hp, (void)s, (void)init_norm;
    roteq_error_set(ROTEQ_EUNSUPPORTED, "transient not implemented yet");
    return NULL;
}

void roteq_transient_free(roteq_transient *tr)
{
    free(tr);
}

int roteq_transient_step(roteq_transient *tr, double lr, double weight_decay, double *norm,
                         double *angular_update)
{
    (void)tr, (void)lr, (void)weight_decay;
    *norm = *angular_update = NAN;
    return roteq_error_set(ROTEQ_EUNSUPPORTED, "transient not implemented yet");
}

long roteq_theory_steps_to_equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                       const roteq_setting *s, double init_norm, double tol,
                                       long max_steps)
{
    (void)opt, (void)hp, (void)s, (void)init_norm, (void)tol, (void)max_steps;
    return -1;
}

double roteq_theory_kstep_angle(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                const roteq_setting *s, long k)
{
    (void)opt, (void)hp, (void)s, (void)k;
    return NAN;
}

const char *roteq_theory_formula(const roteq_optimizer_type *opt)
{
    (void)opt;
    return "";
}
