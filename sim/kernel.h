/* kernel.h - internal interface between the engine (engine.c) and its per-instruction-set
 * kernels. kernel.c is compiled once per instruction set (generic, AVX2, AVX-512) with a suffix
 * on every name; the engine picks one table at run time. All variants execute the same C
 * arithmetic in the same order (no contraction, fixed 8-lane reductions), so they give
 * identical bits; only their speed differs. */
#ifndef ROTEQ_SIM_KERNEL_H
#define ROTEQ_SIM_KERNEL_H

#include "roteq_sim.h"

#include <stddef.h>
#include <stdint.h>

/* Normals are drawn in batches of ROTEQ_KERNEL_BATCH (normal_inline.h). A neuron of dimension C
 * draws roteq_sim_normals_padded(C) of them per step, of the kind ROTEQ_KERNEL_NORMALS. */
#define ROTEQ_KERNEL_NORMALS ROTEQ_NORMALS_ARS5_ZIGGURAT
#define ROTEQ_KERNEL_LANES   16
#define ROTEQ_KERNEL_BATCH   (4 * ROTEQ_KERNEL_LANES)
/* Vectors are padded to a multiple of 8 doubles (one AVX-512 register, the reduction width). */
#define ROTEQ_KERNEL_PAD 8

/* Reserved step counters: 0 draws the initial weights, ROTEQ_KERNEL_STEP_NEURON the
 * per-neuron constants (heterogeneous gradient scale); optimizer step t uses counter t. */
#define ROTEQ_KERNEL_STEP_NEURON UINT64_MAX

/* Per-neuron scalars: ||w||^2 after the last step, gradient scale, rule scalars (RV). */
enum { ROTEQ_NS_A2, ROTEQ_NS_GSCALE, ROTEQ_NS_RULE, ROTEQ_NS_COUNT = ROTEQ_NS_RULE + 2 };

typedef struct {
    const roteq_sim_rule *rule; /* the optimizer's rule built for this kernel's instruction set */
    const roteq_sim_rule *ref;  /* its reference build (generic), for `reference` */
    int reference;              /* materialise g and call ref->step instead of the fused loop */
    size_t dim, cpad;           /* C and C rounded up to ROTEQ_KERNEL_PAD */
    size_t ngen;                /* normals drawn per neuron-step: roteq_sim_normals_padded(C) */
    size_t stride;              /* doubles between a neuron's vectors (cpad) */
    uint64_t seed;
    double g_scale;            /* coordinate scale of the isotropic Gaussian before projection */
    double radial_coef;        /* radial * RMS||g~||: radial component = coef*gscale/||w||^2 * w */
    const double *coord_scale; /* anisotropic per-coordinate scales (cpad, zero padded) or NULL */
} roteq_kernel_cfg;

/* Statistics of one step of one neuron. */
typedef struct {
    double norm, angle, update_rms;
} roteq_kernel_out;

typedef struct {
    /* One step of one neuron. vec: w then the rule's state vectors, `stride` apart; nsc: the
     * neuron's ROTEQ_NS_COUNT scalars; scratch: 3 * ngen doubles, 64-byte aligned. */
    void (*step)(const roteq_kernel_cfg *kc, const roteq_sim_coef *k, uint64_t t, uint32_t neuron,
                 double *vec, double *nsc, double *scratch, roteq_kernel_out *out);
    /* ngen normals (a multiple of ROTEQ_KERNEL_BATCH) for (seed, stream, step). */
    void (*normals)(uint64_t seed, uint32_t stream, uint64_t step, double *out, size_t ngen);
    /* The bare loop: normals for neurons [n0, n1) and steps 1..steps; returns their sum. */
    double (*bench)(uint64_t seed, size_t n0, size_t n1, size_t steps, double *scratch,
                    size_t ngen);
    /* The same for any kind of normals (the benchmark's rows and the tests; NULL for SLEEF). */
    void (*normals_as)(roteq_sim_normal_kind kind, uint64_t seed, uint32_t stream, uint64_t step,
                       double *out, size_t ngen);
    double (*bench_as)(roteq_sim_normal_kind kind, uint64_t seed, size_t n0, size_t n1,
                       size_t steps, double *scratch, size_t ngen);
    /* The rule of an optimizer type built for this instruction set; NULL if it has none. */
    const roteq_sim_rule *(*rule_for)(const roteq_optimizer_type *opt);
} roteq_kernel_ops;

extern const roteq_kernel_ops roteq_kernel_generic, roteq_kernel_avx2, roteq_kernel_avx512;
/* The SLEEF comparison (bench_sleef.c): normals and bench only, step is NULL; u10 = SLEEF's
 * accurate functions (log u10, sincospi u05), u35 = its fast ones. */
extern const roteq_kernel_ops roteq_sleef_u10_avx2, roteq_sleef_u10_avx512, roteq_sleef_u35_avx2,
    roteq_sleef_u35_avx512;

/* The stable angle between w_old and w_new = w_old + d from the sums a2 = ||w_old||^2,
 * dd = ||d||^2, dw = d.w_old (shared by every kernel; see kernel.c). */
double roteq_kernel_angle(double a2, double dd, double dw, const double *wnew, const double *d,
                          size_t n);

#endif
