/* kernel.c - the hot loop: the normals (normal_inline.h), the gradient model and a call into the
 * optimizer's fused update (its family file, families/<family>.c) for one neuron and one step;
 * and the table of rules built for this instruction set, from the list of optimizers
 * (families/roteq_families.def), keyed by the optimizer type.
 *
 * Compiled three times (sim/meson.build) with ROTEQ_KERNEL_SUFFIX = generic / avx2 / avx512 and
 * the matching -march; every name below gets the suffix. The code is written as short fixed-width
 * lane loops that GCC vectorises on its own. Determinism across the three builds: only +, -, *,
 * /, sqrt and integer operations (all exactly rounded), no contraction into FMA (ISO C mode),
 * and every reduction accumulates 8 lanes in a fixed order - so the bits never depend on the
 * vector width.
 */
#include "family_sim.h"
#include "kernel.h"
#include "normal_inline.h"

#include <math.h>
#include <string.h>

#define L          ROTEQ_KERNEL_LANES
#define ALIGNED(p) ROTEQ_ALIGNED(p)

static inline uint64_t as_u64(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* ngen normals of the engine's kind for (seed, stream, step). */
static void K(normals)(uint64_t seed, uint32_t stream, uint64_t step, double *out, size_t ngen)
{
    normals_of(ROTEQ_KERNEL_NORMALS, seed, stream, step, out, ngen);
}

static void K(normals_as)(roteq_sim_normal_kind kind, uint64_t seed, uint32_t stream, uint64_t step,
                          double *out, size_t ngen)
{
    normals_of(kind, seed, stream, step, out, ngen);
}

static double K(bench_as)(roteq_sim_normal_kind kind, uint64_t seed, size_t n0, size_t n1,
                          size_t steps, double *scratch, size_t ngen)
{
    double acc[8] = {0};
    for (size_t n = n0; n < n1; n++)
        for (size_t t = 1; t <= steps; t++) {
            normals_of(kind, seed, (uint32_t)n, t, scratch, ngen);
            for (size_t i = 0; i < ngen; i += 8)
#pragma omp simd
                for (int l = 0; l < 8; l++)
                    acc[l] += scratch[i + l];
        }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double K(bench)(uint64_t seed, size_t n0, size_t n1, size_t steps, double *scratch,
                       size_t ngen)
{
    return K(bench_as)(ROTEQ_KERNEL_NORMALS, seed, n0, n1, steps, scratch, ngen);
}

#define reduce8 roteq_reduce8

static void K(step)(const roteq_kernel_cfg *kc, const roteq_sim_coef *kp, uint64_t t,
                    uint32_t neuron, double *vec, double *nsc, double *scratch,
                    roteq_kernel_out *out)
{
    /* A local copy: the compiler then knows no store into the neuron can change a
     * coefficient, and keeps them in registers instead of versioning the loops. */
    const roteq_sim_coef kk = *kp, *k = &kk;
    const size_t cp = kc->cpad, st = kc->stride;
    double *restrict w = ALIGNED(vec);
    double *restrict z = ALIGNED(scratch);

    /* Gradient model (sim/README.md): z standard normal per coordinate (scaled per coordinate
     * for the anisotropic model), projected orthogonal to w and divided by ||w||, scaled by
     * g_scale and the neuron's own scale; plus an optional radial component along w. */
    K(normals)(kc->seed, neuron, t, z, kc->ngen);
    if (kc->coord_scale) {
        const double *sc = ALIGNED(kc->coord_scale);
        for (size_t i = 0; i < cp; i++)
            z[i] *= sc[i];
    } else {
        for (size_t i = kc->dim; i < cp; i++)
            z[i] = 0.0;
    }
    double acc[8] = {0};
    for (size_t i = 0; i < cp; i += 8)
#pragma omp simd
        for (int l = 0; l < 8; l++)
            acc[l] += z[i + l] * w[i + l];
    const double dot = reduce8(acc), a2 = nsc[ROTEQ_NS_A2], a = sqrt(a2);
    const double s = kc->g_scale * nsc[ROTEQ_NS_GSCALE];
    const double alpha = s / a;
    const double radial = kc->radial_coef * nsc[ROTEQ_NS_GSCALE] / a2;
    /* Dead coordinates (anisotropic) get exactly zero gradient, as a dead input does: the
     * projection then acts on the live coordinates only, which keeps g orthogonal to w. */
    double live_a2 = a2;
    if (kc->coord_scale) {
        const double *sc = ALIGNED(kc->coord_scale);
        double al[8] = {0};
        for (size_t i = 0; i < cp; i += 8)
#pragma omp simd
            for (int l = 0; l < 8; l++)
                al[l] += sc[i + l] > 0.0 ? w[i + l] * w[i + l] : 0.0;
        live_a2 = reduce8(al);
    }
    const double proj = -(alpha * (dot / live_a2));
    const double beta = proj + radial;

    double sums[3];
    if (kc->reference || kc->coord_scale || !kc->rule->fused) {
        /* Materialised gradient through the rule's step (whole-neuron rules, the anisotropic
         * model, and the reference build that checks the fused loops). */
        double sww[8] = {0}, sdd[8] = {0}, sdw[8] = {0};
        double *restrict g = ALIGNED(scratch + kc->ngen), *restrict wold = ALIGNED(g + kc->ngen);
        const double *sc = kc->coord_scale;
        for (size_t i = 0; i < cp; i++) {
            g[i] = sc ? alpha * z[i] + ((sc[i] > 0.0 ? proj : 0.0) + radial) * w[i]
                      : alpha * z[i] + beta * w[i];
            wold[i] = w[i];
        }
        const roteq_sim_rule *rule = kc->reference ? kc->ref : kc->rule;
        rule->step(k, w, g, vec + st, nsc + ROTEQ_NS_RULE, kc->dim, st);
        for (size_t i = 0; i < cp; i += 8)
#pragma omp simd
            for (int l = 0; l < 8; l++) {
                double wn = w[i + l], wo = wold[i + l], d = wn - wo;
                z[i + l] = d;
                sww[l] += wn * wn;
                sdd[l] += d * d;
                sdw[l] += d * wo;
            }
        sums[0] = reduce8(sww), sums[1] = reduce8(sdd), sums[2] = reduce8(sdw);
    } else {
        kc->rule->fused(k, cp, alpha, beta, w, z, vec + st, vec + 2 * st, sums);
    }
    const double ww = sums[0], dd = sums[1], dw = sums[2];
    nsc[ROTEQ_NS_A2] = ww;
    out->norm = sqrt(ww);
    out->update_rms = sqrt(dd / (double)kc->dim);
    out->angle = roteq_kernel_angle(a2, dd, dw, w, z, cp);
}

/* The rules of every optimizer in the list, as built for this instruction set. */
#define ROTEQ_OPTIMIZER(family, name) extern const roteq_sim_rule K(roteq_simrule_##name);
#include "roteq_families.def"
#undef ROTEQ_OPTIMIZER
static const roteq_sim_rule *const K(rules)[] = {
#define ROTEQ_OPTIMIZER(family, name) &K(roteq_simrule_##name),
#include "roteq_families.def"
#undef ROTEQ_OPTIMIZER
};

static const roteq_sim_rule *K(rule_for)(const roteq_optimizer_type *opt)
{
    for (size_t i = 0; i < sizeof K(rules) / sizeof K(rules)[0]; i++)
        if (K(rules)[i]->opt == opt)
            return K(rules)[i];
    return NULL;
}

const roteq_kernel_ops K(roteq_kernel) = {K(step),       K(normals),  K(bench),
                                          K(normals_as), K(bench_as), K(rule_for)};
