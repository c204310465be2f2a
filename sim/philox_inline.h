/* philox_inline.h - Philox4x32-R for 16 counters at once and the exact int-to-double helpers,
 * shared by the engine's kernels (kernel.c) and the SLEEF comparison (bench_sleef.c) so that both
 * turn the same random words into normals. Header-only: each translation unit is compiled with
 * its own -march and vectorises these loops for its instruction set. */
#ifndef ROTEQ_SIM_PHILOX_INLINE_H
#define ROTEQ_SIM_PHILOX_INLINE_H

#include "kernel.h"

#include <stdint.h>
#include <string.h>

static inline double as_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* x < 2^52 as a double, exactly, with integer operations that AVX2 has (no int64 convert). */
static inline double small_to_double(uint64_t x)
{
    return as_double(0x4330000000000000ull | x) - 0x1p52;
}

/* Philox4x32-R for counters (base + l, c1, c2, c3), l = 0..ROTEQ_KERNEL_LANES-1 (rounds <= 10;
 * a constant where it is inlined). Written lane-wise with the rounds unrolled so that each
 * lane's 32x32->64 multiplies map onto vector multiplies. */
static inline void philox_lanes_r(int rounds, uint32_t k0, uint32_t k1, uint32_t base, uint32_t c1,
                                  uint32_t c2, uint32_t c3, uint32_t out[4][ROTEQ_KERNEL_LANES])
{
    /* Words live in 64-bit lanes (upper half zero) so that each 32x32->64 product is one
     * vpmuludq rather than a full 64-bit multiply. */
    for (int l = 0; l < ROTEQ_KERNEL_LANES; l++) {
        uint64_t x0 = base + (uint32_t)l, x1 = c1, x2 = c2, x3 = c3, q0 = k0, q1 = k1;
#pragma GCC unroll 10
        for (int r = 0; r < rounds; r++) {
            uint64_t p0 = 0xD2511F53ull * (x0 & 0xffffffffu);
            uint64_t p1 = 0xCD9E8D57ull * (x2 & 0xffffffffu);
            uint64_t y0 = (p1 >> 32) ^ x1 ^ q0;
            uint64_t y2 = (p0 >> 32) ^ x3 ^ q1;
            x1 = p1 & 0xffffffffu;
            x3 = p0 & 0xffffffffu;
            x0 = y0;
            x2 = y2;
            q0 = (q0 + 0x9E3779B9u) & 0xffffffffu; /* Weyl key schedule */
            q1 = (q1 + 0xBB67AE85u) & 0xffffffffu;
        }
        out[0][l] = (uint32_t)x0;
        out[1][l] = (uint32_t)x1;
        out[2][l] = (uint32_t)x2;
        out[3][l] = (uint32_t)x3;
    }
}

/* Philox4x32-10 (Random123's default rounds). */
static inline void philox_lanes(uint32_t k0, uint32_t k1, uint32_t base, uint32_t c1, uint32_t c2,
                                uint32_t c3, uint32_t out[4][ROTEQ_KERNEL_LANES])
{
    philox_lanes_r(10, k0, k1, base, c1, c2, c3, out);
}

#endif
