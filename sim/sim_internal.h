/* sim_internal.h - what the files of the engine share, and nobody else: engine.c (the run: its
 * threads, the ring of records, the summaries), config.c (configuration, instruction sets,
 * buffers, the normals API), gradient.c (gradient models and initial weights), stats.c
 * (across-neuron statistics) and bench.c (the bare normal loops `roteq bench` times). */
#ifndef ROTEQ_SIM_INTERNAL_H
#define ROTEQ_SIM_INTERNAL_H

#include "kernel.h"
#include "roteq_sim.h"

#include <stddef.h>

/* The kernels for `isa` (AUTO: the best here); NULL when this build or CPU cannot run it. */
const roteq_kernel_ops *roteq_sim_kernel_for(roteq_sim_isa isa);
/* The kernels of `isa` for normals of `kind`, or NULL with the error set. */
const roteq_kernel_ops *roteq_sim_normal_ops(roteq_sim_normal_kind kind, roteq_sim_isa isa);
/* n zeroed doubles, 64-byte aligned (free()); NULL when out of memory. */
double *roteq_sim_aligned_doubles(size_t n);
unsigned roteq_sim_online_cores(void);

/* The gradient model's constants in the kernel configuration (kc->dim set): the isotropic scale
 * and the radial coefficient; gnorm is the RMS of ||g~|| in use. */
void roteq_sim_gradient_setup(roteq_kernel_cfg *kc, const roteq_sim_config *cfg, double gnorm);
/* Anisotropic coordinate scales (cpad doubles, the dead ones zero); NULL when out of memory. */
double *roteq_sim_anisotropic_scales(const roteq_sim_config *cfg, size_t cpad);
/* Initial weights of every neuron (a uniformly random direction scaled to init_norm), the rule's
 * initial state and the per-neuron scalars; `scratch` holds kc->ngen doubles. */
void roteq_sim_init_neurons(const roteq_sim_config *cfg, const roteq_kernel_ops *ops,
                            const roteq_kernel_cfg *kc, double init_norm, double *vec,
                            size_t neuron_doubles, double *nsc, double *scratch);

/* Mean, sample std and quantiles of x[0..n) skipping NaNs; `tmp` holds n doubles. */
roteq_sim_stat roteq_sim_summarise(const double *x, size_t n, double *tmp);
/* The last-quarter measurements of `out` from each neuron's sums over its `quarter` steps. */
void roteq_sim_last_quarter(roteq_sim_result *out, const double *sum_norm, const double *sum_ang2,
                            size_t neurons, size_t quarter);

#endif
