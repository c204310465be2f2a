/* family_sim.h - what the sim part of a family file (families/<family>.c, compiled once per
 * instruction set with ROTEQ_KERNEL_SUFFIX) needs: the suffixing macro, the fused-loop skeleton
 * and the rule-table entry. Internal to sim/.
 *
 * A rule's arithmetic is written once, as static inline functions in its family file; the
 * reference step (a loop over a materialised gradient, what the parity test drives) and the
 * fused loop (gradient model, rule and statistics in one pass, what the engine runs) both inline
 * it. Every instruction-set build executes the same C arithmetic in the same order (ISO C mode,
 * so no contraction into FMA; fixed 8-lane reductions), so all give identical bits. */
#ifndef ROTEQ_SIM_FAMILY_SIM_H
#define ROTEQ_SIM_FAMILY_SIM_H

#include "kernel.h"

#include <math.h>

#ifndef ROTEQ_KERNEL_SUFFIX
#error "the sim part of a family file is compiled with -DROTEQ_KERNEL_SUFFIX=generic|avx2|avx512"
#endif
#define ROTEQ_CAT2_(a, b) a##_##b
#define ROTEQ_CAT_(a, b)  ROTEQ_CAT2_(a, b)
/* name -> name_<suffix>: every external name of a per-instruction-set build */
#define K(name) ROTEQ_CAT_(name, ROTEQ_KERNEL_SUFFIX)

#define ROTEQ_ALIGNED(p) ((double *)__builtin_assume_aligned((p), 64))

static inline double roteq_reduce8(const double a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* sign(x) with sign(0) = 0, as torch.sign. Branch-free so loops vectorise. */
static inline double roteq_sign(double x)
{
    return (double)(x > 0.0) - (double)(x < 0.0);
}

/* A rule with no state to prepare (the vectors start at zero). */
static inline void roteq_sim_init_zero(double *w, double *state, double *scalars, size_t dim,
                                       size_t stride)
{
    (void)w, (void)state, (void)scalars, (void)dim, (void)stride;
}

/* A fused loop: for each coordinate the gradient g = alpha*z + beta*w (the model, kernel.c),
 * BODY computing wn from wo, g and the state vectors s1, s2 (coordinate i + l), and the sums
 * the statistics need; d (the step) overwrites z. The 8-lane inner loop is the one to
 * vectorise (one lane per accumulator), said explicitly (omp simd needs only -fopenmp-simd).
 * The coefficients are copied locally so the compiler keeps them in registers. */
#define ROTEQ_FUSED(NAME, BODY)                                                                    \
    static void NAME(const roteq_sim_coef *kp, size_t cp, double alpha, double beta, double *wv,   \
                     double *zv, double *s1v, double *s2v, double sums[3])                         \
    {                                                                                              \
        const roteq_sim_coef kk = *kp, *k = &kk;                                                   \
        double *restrict w = ROTEQ_ALIGNED(wv), *restrict z = ROTEQ_ALIGNED(zv);                   \
        double *restrict s1 = ROTEQ_ALIGNED(s1v), *restrict s2 = ROTEQ_ALIGNED(s2v);               \
        (void)s1, (void)s2;                                                                        \
        double sww[8] = {0}, sdd[8] = {0}, sdw[8] = {0};                                           \
        for (size_t i = 0; i < cp; i += 8)                                                         \
            _Pragma("omp simd") for (int l = 0; l < 8; l++)                                        \
            {                                                                                      \
                double wo = w[i + l];                                                              \
                double g = alpha * z[i + l] + beta * wo;                                           \
                double wn;                                                                         \
                BODY;                                                                              \
                double d = wn - wo;                                                                \
                w[i + l] = wn;                                                                     \
                z[i + l] = d;                                                                      \
                sww[l] += wn * wn;                                                                 \
                sdd[l] += d * d;                                                                   \
                sdw[l] += d * wo;                                                                  \
            }                                                                                      \
        sums[0] = roteq_reduce8(sww);                                                              \
        sums[1] = roteq_reduce8(sdd);                                                              \
        sums[2] = roteq_reduce8(sdw);                                                              \
    }

/* The rule-table entry of optimizer roteq_<name> for this instruction set (kernel.c lists
 * them from families/roteq_families.def): state vectors and per-neuron scalars it keeps, its
 * init, reference step, per-step coefficient adjustment (or NULL) and fused loop (or NULL: the
 * engine materialises the gradient and calls step). */
#define ROTEQ_SIM_RULE(name, vectors_, scalars_, init_, step_, coef_, fused_)                      \
    extern const roteq_sim_rule K(roteq_simrule_##name);                                           \
    const roteq_sim_rule K(roteq_simrule_##name) = {.opt = &roteq_##name,                          \
                                                    .state_vectors = (vectors_),                   \
                                                    .scalars = (scalars_),                         \
                                                    .init = (init_),                               \
                                                    .step = (step_),                               \
                                                    .coef = (coef_),                               \
                                                    .fused = (fused_)}

/* The rule-table entry of a matrix-granularity optimizer: no per-neuron rule (the engine refuses
 * it, roteq_sim_config_validate), and the matrix simulator `sim` (a roteq_sim_matrix, from
 * roteq_sim_muon.h) that the drivers reach through roteq_sim_matrix_for. */
#define ROTEQ_SIM_MATRIX_RULE(name, sim_)                                                          \
    extern const roteq_sim_rule K(roteq_simrule_##name);                                           \
    const roteq_sim_rule K(roteq_simrule_##name) = {                                               \
        .opt = &roteq_##name, .init = roteq_sim_init_zero, .matrix = (sim_)}

#endif
