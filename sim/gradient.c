/* gradient.c - the synthetic gradient models (sim/README.md, "Gradient models"): their names,
 * the constants the kernels apply per step, the anisotropic model's coordinate scales, and the
 * initial state of every neuron (weights, rule state, the heterogeneous model's per-neuron
 * scale). The per-step arithmetic itself is in kernel.c, fused with the update. */
#include "sim_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const roteq_grad_model_names[ROTEQ_GRAD_COUNT] = {"scale-invariant", "heterogeneous",
                                                              "anisotropic", "radial"};

int roteq_grad_model_lookup(const char *name, roteq_grad_model *out)
{
    for (int i = 0; i < ROTEQ_GRAD_COUNT; i++)
        if (name && strcmp(name, roteq_grad_model_names[i]) == 0) {
            *out = (roteq_grad_model)i;
            return ROTEQ_OK;
        }
    return roteq_error_set(ROTEQ_ENOTFOUND,
                           "unknown gradient model '%s' (known: scale-invariant, heterogeneous, "
                           "anisotropic, radial)",
                           name ? name : "");
}

void roteq_sim_gradient_setup(roteq_kernel_cfg *kc, const roteq_sim_config *cfg, double gnorm)
{
    /* isotropic: E||g~||^2 = s^2 (C-1) after projection, so s = G/sqrt(C-1) */
    kc->g_scale = isnan(cfg->grad_norm) ? 1.0 : cfg->grad_norm / sqrt((double)kc->dim - 1.0);
    kc->radial_coef = cfg->grad_model == ROTEQ_GRAD_RADIAL ? cfg->radial * gnorm : 0.0;
}

/* Anisotropic coordinate scales (sim/README.md): the last floor(f*C) coordinates are dead
 * (always zero, like inputs that never fire); the live ones have variances spread
 * log-uniformly over a factor 10, normalised so the total variance is C as in the isotropic
 * model. */
double *roteq_sim_anisotropic_scales(const roteq_sim_config *cfg, size_t cpad)
{
    double *sc = roteq_sim_aligned_doubles(cpad);
    if (!sc)
        return NULL;
    size_t dead = (size_t)floor(cfg->dead_fraction * (double)cfg->dim);
    size_t live = cfg->dim - dead;
    if (live < 2)
        live = 2;
    double total = 0.0;
    for (size_t i = 0; i < live; i++) {
        double var = pow(10.0, live > 1 ? (double)i / (double)(live - 1) : 0.0);
        sc[i] = var;
        total += var;
    }
    for (size_t i = 0; i < live; i++)
        sc[i] = sqrt(sc[i] * (double)cfg->dim / total);
    return sc;
}

/* Initial weights: a uniformly random direction (normals of step counter 0) scaled to the
 * initial norm; the heterogeneous model's per-neuron scale from a reserved counter. */
void roteq_sim_init_neurons(const roteq_sim_config *cfg, const roteq_kernel_ops *ops,
                            const roteq_kernel_cfg *kc, double init_norm, double *vec,
                            size_t neuron_doubles, double *nsc, double *init)
{
    const size_t C = kc->dim, cpad = kc->cpad;
    for (size_t n = 0; n < cfg->neurons; n++) {
        double *w = vec + n * neuron_doubles, *ns = nsc + n * ROTEQ_NS_COUNT;
        ops->normals(cfg->seed, (uint32_t)n, 0, init, kc->ngen);
        double ss = 0.0;
        for (size_t i = 0; i < C; i++)
            ss += init[i] * init[i];
        double f = init_norm / sqrt(ss);
        for (size_t i = 0; i < C; i++)
            w[i] = init[i] * f;
        kc->rule->init(w, w + cpad, ns + ROTEQ_NS_RULE, C, cpad);
        double acc[8] = {0};
        for (size_t i = 0; i < cpad; i += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += w[i + l] * w[i + l];
        ns[ROTEQ_NS_A2] =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        ns[ROTEQ_NS_GSCALE] = 1.0;
        if (cfg->grad_model == ROTEQ_GRAD_HETEROGENEOUS) {
            ops->normals(cfg->seed, (uint32_t)n, ROTEQ_KERNEL_STEP_NEURON, init, kc->ngen);
            ns[ROTEQ_NS_GSCALE] = exp(cfg->grad_spread * init[0]);
        }
    }
}
