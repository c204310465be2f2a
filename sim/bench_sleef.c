/* bench_sleef.c - the SLEEF comparison behind `roteq bench`'s "normals via SLEEF" row: the
 * engine's Philox4x32-10 words (philox_inline.h, the same stream and layout as kernel.c) turned
 * into normals by a Box-Muller whose log and sin/cos come from SLEEF's vectorised functions
 * instead of the kernel's own fdlibm polynomials. It exists to make the decision not to use SLEEF
 * in the engine measurable (sim/README.md, Speed); the engine never calls it.
 *
 * Compiled twice (sim/meson.build): ROTEQ_SLEEF_AVX512 with -march=x86-64-v4 (8 doubles per
 * call: Sleef_logd8_*avx512f, Sleef_sincospid8_*avx512f) and ROTEQ_SLEEF_AVX2 with
 * -march=x86-64-v3 (4 doubles: the ...d4_...avx2 functions). The ISA-named entry points are
 * called directly, not SLEEF's dispatchers, so no indirect call per vector is timed.
 *
 * Two accuracy classes: u10, the one that matches the kernel's (fdlibm, below 1 ulp) - log with a
 * 1.0-ulp bound, sincospi 0.506 ulp (u05) - and u35, SLEEF's fast class (3.5 ulp both).
 * sincospi(2 u2) rather than sincos(2 pi u2): 2 u2 is
 * exact, whereas 2 pi u2 rounds the argument (an absolute error ~1e-15 that becomes a large
 * relative error of the normal near a zero of sin or cos); it is also the cheaper of the two, as
 * it needs no Cody-Waite reduction. Uniforms as the kernel: u = (x + 1/2) 2^-32. SLEEF's
 * functions use FMA, so these normals agree with the engine's to a few ulp, not bit for bit
 * (tests/sim/test_sleef.c checks 1e-12 relative). */
#include "kernel.h"
#include "philox_inline.h"

#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#if defined(ROTEQ_SLEEF_AVX512)
#define SUFFIX avx512
#define VW     8
#define VLOAD  _mm512_load_pd
#define VSTORE _mm512_store_pd
#define VPAIR  Sleef___m512d_2
#elif defined(ROTEQ_SLEEF_AVX2)
#define SUFFIX avx2
#define VW     4
#define VLOAD  _mm256_load_pd
#define VSTORE _mm256_store_pd
#define VPAIR  Sleef___m256d_2
#else
#error "bench_sleef.c is compiled with -DROTEQ_SLEEF_AVX512 or -DROTEQ_SLEEF_AVX2"
#endif

#define CAT2(a, b) a##_##b
#define CAT(a, b)  CAT2(a, b)
#define S(name)    CAT(name, SUFFIX)
#define L          ROTEQ_KERNEL_LANES
#define LANES      _Pragma("omp simd")

/* ngen normals (a multiple of ROTEQ_KERNEL_BATCH) in the kernel's layout: batch b holds Philox
 * blocks 16b..16b+15; block j gives out[j], out[16+j] (words 0, 1) and out[32+j], out[48+j]
 * (words 2, 3); radius from the even word, angle from the odd one. A macro so that the two
 * accuracy classes share one text: ACC u10 (log u10, sincospi u05) and u35 (both u35). */
#define SLEEF_NORMALS(ACC, VLOG, VSINCOSPI)                                                        \
    static void S(CAT(normals, ACC))(uint64_t seed, uint32_t stream, uint64_t step, double *out,   \
                                     size_t ngen)                                                  \
    {                                                                                              \
        const uint32_t k0 = (uint32_t)seed, k1 = stream;                                           \
        const uint32_t c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32);                           \
        const uint32_t c3 = (uint32_t)(seed >> 32);                                                \
        _Alignas(64) double u1[L], v2[L], lg[L], sn[L], cs[L];                                     \
        for (size_t b = 0; b < ngen / ROTEQ_KERNEL_BATCH; b++) {                                   \
            uint32_t x[4][L];                                                                      \
            philox_lanes(k0, k1, (uint32_t)(b * L), c1, c2, c3, x);                                \
            double *o = out + b * ROTEQ_KERNEL_BATCH;                                              \
            for (int h = 0; h < 2; h++) {                                                          \
                for (int l = 0; l < L; l++) {                                                      \
                    u1[l] = (small_to_double(x[2 * h][l]) + 0.5) * 0x1p-32;                        \
                    v2[l] = (small_to_double(x[2 * h + 1][l]) + 0.5) * 0x1p-31; /* 2 u2 */         \
                }                                                                                  \
                for (int l = 0; l < L; l += VW) {                                                  \
                    VSTORE(lg + l, VLOG(VLOAD(u1 + l)));                                           \
                    VPAIR sc = VSINCOSPI(VLOAD(v2 + l));                                           \
                    VSTORE(sn + l, sc.x);                                                          \
                    VSTORE(cs + l, sc.y);                                                          \
                }                                                                                  \
                for (int l = 0; l < L; l++) {                                                      \
                    double r = sqrt(-2.0 * lg[l]);                                                 \
                    o[2 * h * L + l] = r * cs[l];                                                  \
                    o[(2 * h + 1) * L + l] = r * sn[l];                                            \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

#if defined(ROTEQ_SLEEF_AVX512)
SLEEF_NORMALS(u10, Sleef_logd8_u10avx512f, Sleef_sincospid8_u05avx512f)
SLEEF_NORMALS(u35, Sleef_logd8_u35avx512f, Sleef_sincospid8_u35avx512f)
#else
SLEEF_NORMALS(u10, Sleef_logd4_u10avx2, Sleef_sincospid4_u05avx2)
SLEEF_NORMALS(u35, Sleef_logd4_u35avx2, Sleef_sincospid4_u35avx2)
#endif

/* The same bare loop as the kernel's bench: normals for neurons [n0, n1), steps 1..steps. */
#define SLEEF_BENCH(ACC)                                                                           \
    static double S(CAT(bench, ACC))(uint64_t seed, size_t n0, size_t n1, size_t steps,            \
                                     double *scratch, size_t ngen)                                 \
    {                                                                                              \
        double acc[8] = {0};                                                                       \
        for (size_t n = n0; n < n1; n++)                                                           \
            for (size_t t = 1; t <= steps; t++) {                                                  \
                S(CAT(normals, ACC))(seed, (uint32_t)n, t, scratch, ngen);                         \
                for (size_t i = 0; i < ngen; i += 8)                                               \
                    LANES for (int l = 0; l < 8; l++) acc[l] += scratch[i + l];                    \
            }                                                                                      \
        return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));  \
    }
SLEEF_BENCH(u10)
SLEEF_BENCH(u35)

/* No fused step: only the normals and the bare loop exist in SLEEF form. */
const roteq_kernel_ops S(roteq_sleef_u10) = {NULL, S(normals_u10), S(bench_u10), NULL, NULL, NULL};
const roteq_kernel_ops S(roteq_sleef_u35) = {NULL, S(normals_u35), S(bench_u35), NULL, NULL, NULL};
