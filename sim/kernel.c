/* kernel.c - the hot loop: Philox4x32-10 normals, a vectorised Box-Muller, the gradient model and
 * each optimizer's fused update for one neuron and one step.
 *
 * Compiled three times (sim/meson.build) with ROTEQ_KERNEL_SUFFIX = generic / avx2 / avx512 and
 * the matching -march; every name below gets the suffix. The code is written as short fixed-width
 * lane loops that GCC vectorises on its own. Determinism across the three builds: only +, -, *,
 * /, sqrt and integer operations (all exactly rounded), no contraction into FMA (ISO C mode),
 * and every reduction accumulates 8 lanes in a fixed order - so the bits never depend on the
 * vector width.
 *
 * Random numbers: Philox4x32-10 (Salmon et al. 2011, as Random123's philox4x32) with
 * key = (seed low 32 bits, neuron) and counter = (block, step low, step high, seed high);
 * tests/sim/test_engine.c checks the output against Random123's own header. Each block's four
 * 32-bit words give two Box-Muller pairs: u = (x + 1/2) 2^-32 in (0, 1), r = sqrt(-2 log u1),
 * angle 2 pi u2. log and sin/cos are the fdlibm kernels (polynomials on a reduced range, below
 * 1 ulp); the angle is reduced exactly in integer arithmetic (quadrant from the top bits of u2),
 * so no argument-reduction error enters. */
#include "kernel.h"
#include "philox_inline.h"
#include "rules_inline.h"

#include <math.h>
#include <string.h>

#ifndef ROTEQ_KERNEL_SUFFIX
#error "kernel.c is compiled with -DROTEQ_KERNEL_SUFFIX=generic|avx2|avx512"
#endif
#define CAT2(a, b) a##_##b
#define CAT(a, b)  CAT2(a, b)
#define K(name)    CAT(name, ROTEQ_KERNEL_SUFFIX)

#define L          ROTEQ_KERNEL_LANES
#define ALIGNED(p) ((double *)__builtin_assume_aligned((p), 64))
/* The 8-lane inner loops are the ones to vectorise (one lane per accumulator): said explicitly,
 * because GCC otherwise sometimes vectorises the outer loop and then adds the lanes one by one.
 * The pragma needs only -fopenmp-simd (no OpenMP runtime); elementwise semantics are unchanged. */
#define LANES _Pragma("omp simd")

static inline uint64_t as_u64(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* sqrt(-2 log u) for u = (x + 1/2) 2^-32. log: fdlibm's e_log.c method - u = 2^k m with
 * m in [sqrt(2)/2, sqrt(2)), f = m - 1, s = f/(2+f), log(1+f) = 2s + s*R(s^2) (Lg1..Lg7),
 * k*ln2 split in a high and a low part. Branch-free so that it vectorises. */
static inline double bm_radius(uint32_t x)
{
    double u = (small_to_double(x) + 0.5) * 0x1p-32;
    uint64_t ix = as_u64(u) - 0x3fe6a09e00000000ull;
    double k = (small_to_double((ix + (0x800ull << 52)) >> 52)) - 2048.0;
    double m = as_double((ix & 0x000fffffffffffffull) + 0x3fe6a09e00000000ull);
    double f = m - 1.0, s = f / (2.0 + f), z = s * s, w = z * z;
    double t1 = w * (3.999999999940941908e-01 +
                     w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
    double t2 = z * (6.666666666666735130e-01 +
                     w * (2.857142874366239149e-01 +
                          w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
    double R = t2 + t1, hfsq = 0.5 * f * f;
    double lg = k * 6.93147180369123816490e-01 -
                ((hfsq - (s * (hfsq + R) + k * 1.90821492927058770002e-10)) - f);
    return sqrt(-2.0 * lg);
}

/* cos and sin of 2 pi u2 for u2 = (y + 1/2) 2^-32: the quadrant q and the offset v in
 * [-1/2, 1/2] (in units of pi/2) come exactly from the integer y; then fdlibm's k_sin/k_cos
 * polynomials on x = v*pi/2 in [-pi/4, pi/4], and a quadrant swap. */
static inline void bm_angle(uint32_t y, double *c, double *s)
{
    uint32_t b = y + 0x20000000u;
    double v = (small_to_double(b & 0x3fffffffu) - 536870911.5) * 0x1p-30;
    uint32_t q = b >> 30;
    double x = v * 1.57079632679489655800e+00, z = x * x;
    double sn =
        x +
        x * z *
            (-1.66666666666666324348e-01 +
             z * (8.33333333332248946124e-03 +
                  z * (-1.98412698298579493134e-04 +
                       z * (2.75573137070700676789e-06 +
                            z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10)))));
    double r =
        z * (4.16666666666666019037e-02 +
             z * (-1.38888888888741095749e-03 +
                  z * (2.48015872894767294178e-05 +
                       z * (-2.75573143513906633035e-07 +
                            z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11)))));
    double hz = 0.5 * z, w = 1.0 - hz;
    double cs = w + (((1.0 - w) - hz) + z * r);
    double S = (q & 1) ? cs : sn, Cc = (q & 1) ? sn : cs;
    *s = (q & 2) ? -S : S;
    *c = ((q + 1) & 2) ? -Cc : Cc;
}

/* ngen normals: batch b holds blocks 16b..16b+15; block j of the batch gives out[j], out[16+j]
 * (pair from words 0,1) and out[32+j], out[48+j] (words 2,3). */
static void K(normals)(uint64_t seed, uint32_t stream, uint64_t step, double *out, size_t ngen)
{
    const uint32_t k0 = (uint32_t)seed, k1 = stream;
    const uint32_t c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32), c3 = (uint32_t)(seed >> 32);
    for (size_t b = 0; b < ngen / ROTEQ_KERNEL_BATCH; b++) {
        uint32_t x[4][L];
        philox_lanes(k0, k1, (uint32_t)(b * L), c1, c2, c3, x);
        double *o = ALIGNED(out + b * ROTEQ_KERNEL_BATCH);
        for (int h = 0; h < 2; h++) {
            double rad[L];
            for (int l = 0; l < L; l++)
                rad[l] = bm_radius(x[2 * h][l]);
            for (int l = 0; l < L; l++) {
                double c, s;
                bm_angle(x[2 * h + 1][l], &c, &s);
                o[2 * h * L + l] = rad[l] * c;
                o[(2 * h + 1) * L + l] = rad[l] * s;
            }
        }
    }
}

static double K(bench)(uint64_t seed, size_t n0, size_t n1, size_t steps, double *scratch,
                       size_t ngen)
{
    double acc[8] = {0};
    for (size_t n = n0; n < n1; n++)
        for (size_t t = 1; t <= steps; t++) {
            K(normals)(seed, (uint32_t)n, t, scratch, ngen);
            for (size_t i = 0; i < ngen; i += 8)
#pragma omp simd
                for (int l = 0; l < 8; l++)
                    acc[l] += scratch[i + l];
        }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static inline double reduce8(const double a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* The fused update loops: gradient g = alpha*z + beta*w (the model, see step below), the rule,
 * and the sums the statistics need, in one pass over the neuron. d (the step) overwrites z. */
#define FUSED_LOOP(BODY)                                                                           \
    for (size_t i = 0; i < cp; i += 8)                                                             \
        LANES for (int l = 0; l < 8; l++)                                                          \
        {                                                                                          \
            double wo = w[i + l];                                                                  \
            double g = alpha * z[i + l] + beta * wo;                                               \
            double wn;                                                                             \
            BODY;                                                                                  \
            double d = wn - wo;                                                                    \
            w[i + l] = wn;                                                                         \
            z[i + l] = d;                                                                          \
            sww[l] += wn * wn;                                                                     \
            sdd[l] += d * d;                                                                       \
            sdw[l] += d * wo;                                                                      \
        }

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

    double sww[8] = {0}, sdd[8] = {0}, sdw[8] = {0};
    if (kc->reference || kc->coord_scale || !kc->rule ||
        (roteq_optimizers[kc->opt]->flags & ROTEQ_OPTF_ROTATIONAL)) {
        /* Materialised gradient through the reference rule table (RV rules, the anisotropic
         * model, and the check of the fused loops). */
        double *restrict g = ALIGNED(scratch + kc->ngen), *restrict wold = ALIGNED(g + kc->ngen);
        const double *sc = kc->coord_scale;
        for (size_t i = 0; i < cp; i++) {
            g[i] = sc ? alpha * z[i] + ((sc[i] > 0.0 ? proj : 0.0) + radial) * w[i]
                      : alpha * z[i] + beta * w[i];
            wold[i] = w[i];
        }
        if ((roteq_optimizers[kc->opt]->flags & ROTEQ_OPTF_ROTATIONAL) && !kc->reference)
            roteq_rule_rv(k, kc->opt, w, g, vec + st, nsc + ROTEQ_NS_RULE, kc->dim, st);
        else
            kc->rule->step(k, w, g, vec + st, nsc + ROTEQ_NS_RULE, kc->dim, st);
        for (size_t i = 0; i < cp; i += 8)
#pragma omp simd
            for (int l = 0; l < 8; l++) {
                double wn = w[i + l], wo = wold[i + l], d = wn - wo;
                z[i + l] = d;
                sww[l] += wn * wn;
                sdd[l] += d * d;
                sdw[l] += d * wo;
            }
    } else {
        double *restrict s1 = ALIGNED(vec + st), *restrict s2 = ALIGNED(vec + 2 * st);
        switch (kc->opt) {
        case ROTEQ_OPT_SGD:
            FUSED_LOOP(wn = roteq_rule_sgd(k, wo, g));
            break;
        case ROTEQ_OPT_SGDM:
        case ROTEQ_OPT_NESTEROV:
            FUSED_LOOP(wn = roteq_rule_sgdm(k, wo, g, &s1[i + l]));
            break;
        case ROTEQ_OPT_ADAM_L2:
            FUSED_LOOP(wn = roteq_rule_adam_l2(k, wo, g, &s1[i + l], &s2[i + l]));
            break;
        case ROTEQ_OPT_ADAMW:
            FUSED_LOOP(wn = roteq_rule_adamw(k, wo, g, &s1[i + l], &s2[i + l]));
            break;
        case ROTEQ_OPT_LION:
            FUSED_LOOP(wn = roteq_rule_lion(k, wo, g, &s1[i + l]));
            break;
        default:
            break;
        }
    }
    const double ww = reduce8(sww), dd = reduce8(sdd), dw = reduce8(sdw);
    nsc[ROTEQ_NS_A2] = ww;
    out->norm = sqrt(ww);
    out->update_rms = sqrt(dd / (double)kc->dim);
    out->angle = roteq_kernel_angle(a2, dd, dw, w, z, cp);
}

const roteq_kernel_ops K(roteq_kernel) = {K(step), K(normals), K(bench)};
