/* normal_inline.h - the simulator's standard normals: counter-based generators (Philox4x32-R,
 * ARS-5) and transforms (Box-Muller, 2048- and 256-box ziggurats), header-only so that each kernel
 * (kernel.c, compiled once per instruction set) inlines them for its own vector width.
 *
 * Every variant is a pure function of (seed, stream, step, index): a neuron's normals depend only
 * on the seed and its index, never on the thread or the instruction set. Bit-identical across
 * instruction sets because everything is integer arithmetic or exactly rounded double operations
 * (no FMA contraction: ISO C mode), and the AES rounds give the same bits in hardware (VAES on
 * AVX-512, AES-NI on AVX2) and in the portable software round below.
 *
 * Streams (key, counter as 32-bit words):
 *   Philox4x32-R: key (seed lo, stream), counter (block, step lo, step hi, seed hi).
 *   ARS-5 (Random123's ars4x32_R(5, ...)): key (seed lo, seed hi, stream, 0), counter (block, step
 *   lo, step hi, domain); domain 0 is the main draw, 1 + k the ziggurat's k-th fallback block of
 *   normal i (counter word 0 = i then).
 * Layouts (ngen is a multiple of ROTEQ_KERNEL_BATCH = 64):
 *   Philox + Box-Muller: batch b holds blocks 16b..16b+15; block j of the batch gives out[j],
 *   out[16+j] (pair from words 0, 1) and out[32+j], out[48+j] (words 2, 3).
 *   ARS + Box-Muller: batch b's 16 blocks give 64 words a[0..63] in memory order; pair p
 *   (0..31) takes the radius from a[p] and the angle from a[32+p] into out[p], out[32+p].
 *   Ziggurat (either generator): one 64-bit word per normal; batch b's 32 blocks, in memory order
 *   (Philox: words 0|1<<32 and 2|3<<32 of each block).
 * Box-Muller: u = (x + 1/2) 2^-32, r = sqrt(-2 log u1) (fdlibm's log method), angle 2 pi u2
 * reduced exactly in integers, fdlibm's sin/cos kernels. Ziggurat: sim/ziggurat_tables.h; the
 * fast path (99.8% of draws: one table lookup, a multiply and a compare) is branch-free over the
 * lanes; the rejected lanes follow per group of batches (zig_fix: wedge points decided by
 * precomputed bounds without a logarithm, branch-free), and what the bounds leave open goes
 * through the exact tests of zig_slow(), one normal at a time. */
#ifndef ROTEQ_SIM_NORMAL_INLINE_H
#define ROTEQ_SIM_NORMAL_INLINE_H

#include "kernel.h"
#include "philox_inline.h"
#include "ziggurat256_tables.h"
#include "ziggurat_tables.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AES__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#define NL ROTEQ_KERNEL_LANES

static inline uint64_t nrm_as_u64(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* ---- Box-Muller ---- */

/* log(u) for a positive normal double u: fdlibm's e_log.c method - u = 2^k m with m in
 * [sqrt(2)/2, sqrt(2)), f = m - 1, s = f/(2+f), log(1+f) = 2s + s*R(s^2) (Lg1..Lg7), k*ln2 split
 * in a high and a low part. Branch-free so that it vectorises. */
static inline double nrm_log(double u)
{
    uint64_t ix = nrm_as_u64(u) - 0x3fe6a09e00000000ull;
    double k = (small_to_double((ix + (0x800ull << 52)) >> 52)) - 2048.0;
    double m = as_double((ix & 0x000fffffffffffffull) + 0x3fe6a09e00000000ull);
    double f = m - 1.0, s = f / (2.0 + f), z = s * s, w = z * z;
    double t1 = w * (3.999999999940941908e-01 +
                     w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
    double t2 = z * (6.666666666666735130e-01 +
                     w * (2.857142874366239149e-01 +
                          w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
    double R = t2 + t1, hfsq = 0.5 * f * f;
    return k * 6.93147180369123816490e-01 -
           ((hfsq - (s * (hfsq + R) + k * 1.90821492927058770002e-10)) - f);
}

/* sqrt(-2 log u) for u = (x + 1/2) 2^-32. */
static inline double bm_radius(uint32_t x)
{
    return sqrt(-2.0 * nrm_log((small_to_double(x) + 0.5) * 0x1p-32));
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

/* n pairs: radius words rw[p], angle words aw[p] -> o[p] = r cos, o[os + p] = r sin. */
static inline void bm_pairs(const uint32_t *rw, const uint32_t *aw, double *o, size_t os, int n)
{
    double rad[2 * NL];
    for (int l = 0; l < n; l++)
        rad[l] = bm_radius(rw[l]);
    for (int l = 0; l < n; l++) {
        double c, s;
        bm_angle(aw[l], &c, &s);
        o[l] = rad[l] * c;
        o[os + l] = rad[l] * s;
    }
}

/* ---- ARS-5: AES rounds in hardware or in software, the same bits ---- */

typedef struct {
    uint64_t rk[6][2]; /* round keys: key + r * (golden ratio, sqrt(3) - 1), 64-bit lanes */
} ars_key;

static inline ars_key ars_key_make(uint64_t seed, uint32_t stream)
{
    ars_key k;
    k.rk[0][0] = seed;
    k.rk[0][1] = stream;
    for (int r = 1; r < 6; r++) {
        k.rk[r][0] = k.rk[r - 1][0] + 0x9E3779B97F4A7C15ull;
        k.rk[r][1] = k.rk[r - 1][1] + 0xBB67AE8584CAA73Bull;
    }
    return k;
}

#if !defined(__AES__)
static const uint8_t aes_sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

/* aes_te0[x] = the MixColumns column of S(x) in row 0: bytes (2 S, S, S, 3 S); the other rows are
 * its byte rotations. */
static const uint32_t aes_te0[256] = {
    0xa56363c6u, 0x847c7cf8u, 0x997777eeu, 0x8d7b7bf6u, 0x0df2f2ffu, 0xbd6b6bd6u, 0xb16f6fdeu,
    0x54c5c591u, 0x50303060u, 0x03010102u, 0xa96767ceu, 0x7d2b2b56u, 0x19fefee7u, 0x62d7d7b5u,
    0xe6abab4du, 0x9a7676ecu, 0x45caca8fu, 0x9d82821fu, 0x40c9c989u, 0x877d7dfau, 0x15fafaefu,
    0xeb5959b2u, 0xc947478eu, 0x0bf0f0fbu, 0xecadad41u, 0x67d4d4b3u, 0xfda2a25fu, 0xeaafaf45u,
    0xbf9c9c23u, 0xf7a4a453u, 0x967272e4u, 0x5bc0c09bu, 0xc2b7b775u, 0x1cfdfde1u, 0xae93933du,
    0x6a26264cu, 0x5a36366cu, 0x413f3f7eu, 0x02f7f7f5u, 0x4fcccc83u, 0x5c343468u, 0xf4a5a551u,
    0x34e5e5d1u, 0x08f1f1f9u, 0x937171e2u, 0x73d8d8abu, 0x53313162u, 0x3f15152au, 0x0c040408u,
    0x52c7c795u, 0x65232346u, 0x5ec3c39du, 0x28181830u, 0xa1969637u, 0x0f05050au, 0xb59a9a2fu,
    0x0907070eu, 0x36121224u, 0x9b80801bu, 0x3de2e2dfu, 0x26ebebcdu, 0x6927274eu, 0xcdb2b27fu,
    0x9f7575eau, 0x1b090912u, 0x9e83831du, 0x742c2c58u, 0x2e1a1a34u, 0x2d1b1b36u, 0xb26e6edcu,
    0xee5a5ab4u, 0xfba0a05bu, 0xf65252a4u, 0x4d3b3b76u, 0x61d6d6b7u, 0xceb3b37du, 0x7b292952u,
    0x3ee3e3ddu, 0x712f2f5eu, 0x97848413u, 0xf55353a6u, 0x68d1d1b9u, 0x00000000u, 0x2cededc1u,
    0x60202040u, 0x1ffcfce3u, 0xc8b1b179u, 0xed5b5bb6u, 0xbe6a6ad4u, 0x46cbcb8du, 0xd9bebe67u,
    0x4b393972u, 0xde4a4a94u, 0xd44c4c98u, 0xe85858b0u, 0x4acfcf85u, 0x6bd0d0bbu, 0x2aefefc5u,
    0xe5aaaa4fu, 0x16fbfbedu, 0xc5434386u, 0xd74d4d9au, 0x55333366u, 0x94858511u, 0xcf45458au,
    0x10f9f9e9u, 0x06020204u, 0x817f7ffeu, 0xf05050a0u, 0x443c3c78u, 0xba9f9f25u, 0xe3a8a84bu,
    0xf35151a2u, 0xfea3a35du, 0xc0404080u, 0x8a8f8f05u, 0xad92923fu, 0xbc9d9d21u, 0x48383870u,
    0x04f5f5f1u, 0xdfbcbc63u, 0xc1b6b677u, 0x75dadaafu, 0x63212142u, 0x30101020u, 0x1affffe5u,
    0x0ef3f3fdu, 0x6dd2d2bfu, 0x4ccdcd81u, 0x140c0c18u, 0x35131326u, 0x2fececc3u, 0xe15f5fbeu,
    0xa2979735u, 0xcc444488u, 0x3917172eu, 0x57c4c493u, 0xf2a7a755u, 0x827e7efcu, 0x473d3d7au,
    0xac6464c8u, 0xe75d5dbau, 0x2b191932u, 0x957373e6u, 0xa06060c0u, 0x98818119u, 0xd14f4f9eu,
    0x7fdcdca3u, 0x66222244u, 0x7e2a2a54u, 0xab90903bu, 0x8388880bu, 0xca46468cu, 0x29eeeec7u,
    0xd3b8b86bu, 0x3c141428u, 0x79dedea7u, 0xe25e5ebcu, 0x1d0b0b16u, 0x76dbdbadu, 0x3be0e0dbu,
    0x56323264u, 0x4e3a3a74u, 0x1e0a0a14u, 0xdb494992u, 0x0a06060cu, 0x6c242448u, 0xe45c5cb8u,
    0x5dc2c29fu, 0x6ed3d3bdu, 0xefacac43u, 0xa66262c4u, 0xa8919139u, 0xa4959531u, 0x37e4e4d3u,
    0x8b7979f2u, 0x32e7e7d5u, 0x43c8c88bu, 0x5937376eu, 0xb76d6ddau, 0x8c8d8d01u, 0x64d5d5b1u,
    0xd24e4e9cu, 0xe0a9a949u, 0xb46c6cd8u, 0xfa5656acu, 0x07f4f4f3u, 0x25eaeacfu, 0xaf6565cau,
    0x8e7a7af4u, 0xe9aeae47u, 0x18080810u, 0xd5baba6fu, 0x887878f0u, 0x6f25254au, 0x722e2e5cu,
    0x241c1c38u, 0xf1a6a657u, 0xc7b4b473u, 0x51c6c697u, 0x23e8e8cbu, 0x7cdddda1u, 0x9c7474e8u,
    0x211f1f3eu, 0xdd4b4b96u, 0xdcbdbd61u, 0x868b8b0du, 0x858a8a0fu, 0x907070e0u, 0x423e3e7cu,
    0xc4b5b571u, 0xaa6666ccu, 0xd8484890u, 0x05030306u, 0x01f6f6f7u, 0x120e0e1cu, 0xa36161c2u,
    0x5f35356au, 0xf95757aeu, 0xd0b9b969u, 0x91868617u, 0x58c1c199u, 0x271d1d3au, 0xb99e9e27u,
    0x38e1e1d9u, 0x13f8f8ebu, 0xb398982bu, 0x33111122u, 0xbb6969d2u, 0x70d9d9a9u, 0x898e8e07u,
    0xa7949433u, 0xb69b9b2du, 0x221e1e3cu, 0x92878715u, 0x20e9e9c9u, 0x49cece87u, 0xff5555aau,
    0x78282850u, 0x7adfdfa5u, 0x8f8c8c03u, 0xf8a1a159u, 0x80898909u, 0x170d0d1au, 0xdabfbf65u,
    0x31e6e6d7u, 0xc6424284u, 0xb86868d0u, 0xc3414182u, 0xb0999929u, 0x772d2d5au, 0x110f0f1eu,
    0xcbb0b07bu, 0xfc5454a8u, 0xd6bbbb6du, 0x3a16162cu,
};

static inline uint32_t aes_rotl(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

/* One AES encryption round on the state as four little-endian column words (the byte order of
 * the AESENC instruction's register): SubBytes, ShiftRows, MixColumns unless `last` (by the
 * table above), then xor with the round key. */
static inline void aes_round_sw(uint32_t s[4], const uint64_t rk[2], int last)
{
    uint32_t t[4];
    for (int c = 0; c < 4; c++) {
        uint32_t x0 = s[c] & 0xff, x1 = (s[(c + 1) & 3] >> 8) & 0xff;
        uint32_t x2 = (s[(c + 2) & 3] >> 16) & 0xff, x3 = s[(c + 3) & 3] >> 24;
        if (last)
            t[c] = (uint32_t)aes_sbox[x0] | (uint32_t)aes_sbox[x1] << 8 |
                   (uint32_t)aes_sbox[x2] << 16 | (uint32_t)aes_sbox[x3] << 24;
        else
            t[c] = aes_te0[x0] ^ aes_rotl(aes_te0[x1], 8) ^ aes_rotl(aes_te0[x2], 16) ^
                   aes_rotl(aes_te0[x3], 24);
    }
    s[0] = t[0] ^ (uint32_t)rk[0];
    s[1] = t[1] ^ (uint32_t)(rk[0] >> 32);
    s[2] = t[2] ^ (uint32_t)rk[1];
    s[3] = t[3] ^ (uint32_t)(rk[1] >> 32);
}
#endif

/* ARS-5 of one counter (c0, c1, c2, c3): the 128 bits as out[0] (low 64), out[1]. */
static inline void ars5_one(const ars_key *k, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                            uint64_t out[2])
{
#if defined(__AES__)
    __m128i v = _mm_set_epi32((int)c3, (int)c2, (int)c1, (int)c0);
    v = _mm_xor_si128(v, _mm_set_epi64x((long long)k->rk[0][1], (long long)k->rk[0][0]));
    for (int r = 1; r < 5; r++)
        v = _mm_aesenc_si128(v, _mm_set_epi64x((long long)k->rk[r][1], (long long)k->rk[r][0]));
    v = _mm_aesenclast_si128(v, _mm_set_epi64x((long long)k->rk[5][1], (long long)k->rk[5][0]));
    _mm_storeu_si128((__m128i *)(void *)out, v);
#else
    uint32_t w[4] = {c0 ^ (uint32_t)k->rk[0][0], c1 ^ (uint32_t)(k->rk[0][0] >> 32),
                     c2 ^ (uint32_t)k->rk[0][1], c3 ^ (uint32_t)(k->rk[0][1] >> 32)};
    for (int r = 1; r < 6; r++)
        aes_round_sw(w, k->rk[r], r == 5);
    out[0] = w[0] | (uint64_t)w[1] << 32;
    out[1] = w[2] | (uint64_t)w[3] << 32;
#endif
}

/* ARS-5 of counters (base + j, c1, c2, c3), j = 0..nblk-1 (nblk a multiple of 4): block j's
 * 128 bits go to out[2j] (low 64) and out[2j+1] (high 64). */
static inline void ars5_blocks(const ars_key *k, uint32_t base, uint32_t c1, uint32_t c2,
                               uint32_t c3, int nblk, uint64_t *out)
{
#if defined(__VAES__) && defined(__AVX512F__)
    __m512i rk[6];
    for (int r = 0; r < 6; r++)
        rk[r] =
            _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k->rk[r][1], (long long)k->rk[r][0]));
    __m512i ctr = _mm512_set_epi32((int)c3, (int)c2, (int)c1, (int)(base + 3), (int)c3, (int)c2,
                                   (int)c1, (int)(base + 2), (int)c3, (int)c2, (int)c1,
                                   (int)(base + 1), (int)c3, (int)c2, (int)c1, (int)base);
    const __m512i four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
    for (int j = 0; j < nblk; j += 4) {
        __m512i v = _mm512_xor_si512(ctr, rk[0]);
        v = _mm512_aesenc_epi128(v, rk[1]);
        v = _mm512_aesenc_epi128(v, rk[2]);
        v = _mm512_aesenc_epi128(v, rk[3]);
        v = _mm512_aesenc_epi128(v, rk[4]);
        v = _mm512_aesenclast_epi128(v, rk[5]);
        _mm512_storeu_si512((void *)(out + 2 * j), v);
        ctr = _mm512_add_epi32(ctr, four);
    }
#elif defined(__AES__)
    __m128i rk[6];
    for (int r = 0; r < 6; r++)
        rk[r] = _mm_set_epi64x((long long)k->rk[r][1], (long long)k->rk[r][0]);
    /* the counter moves by a vector add, four blocks' rounds interleaved (measured on AMD EPYC:
     * floor 0.70 -> 0.66 ns per normal on the AVX2 kernel against one block at a time built
     * from scalars) */
    __m128i ctr = _mm_set_epi32((int)c3, (int)c2, (int)c1, (int)base);
    const __m128i one = _mm_set_epi32(0, 0, 0, 1);
    for (int j = 0; j < nblk; j += 4) {
        __m128i v[4];
        for (int q = 0; q < 4; q++) {
            v[q] = _mm_xor_si128(ctr, rk[0]);
            ctr = _mm_add_epi32(ctr, one);
        }
        for (int r = 1; r < 5; r++)
            for (int q = 0; q < 4; q++)
                v[q] = _mm_aesenc_si128(v[q], rk[r]);
        for (int q = 0; q < 4; q++)
            _mm_storeu_si128((__m128i *)(void *)(out + 2 * (j + q)),
                             _mm_aesenclast_si128(v[q], rk[5]));
    }
#else
    for (int j = 0; j < nblk; j++)
        ars5_one(k, base + (uint32_t)j, c1, c2, c3, out + 2 * j);
#endif
}

/* ---- Ziggurat ---- */

/* A ziggurat's tables (sim/ziggurat_tables.h: 2048 boxes; sim/ziggurat256_tables.h: 256). A
 * word's bits: box index in bits 0..log2(boxes)-1, sign in the next bit (`boxes`), the uniform in
 * bits 12..63 (its top 32 bits, w >> 32, meet the box's acceptance threshold). */
typedef struct {
    const uint64_t *kw;
    const double *xnext, *f;
    const zig_wedge_box *wedge;
    uint64_t boxes;
    int sign_shift;
    double r, tail_p;
} zig_table;

static const zig_table zig2048 = {zig_kw,    zig_xnext, zig_f, zig_wedge,
                                  ZIG_BOXES, 11,        ZIG_R, ZIG_TAIL_P};
static const zig_table zig256 = {zig256_kw, zig256_xnext, zig256_f,     zig256_wedge, ZIG256_BOXES,
                                 8,         ZIG256_R,     ZIG256_TAIL_P};

/* A uniform in (0, 1) from the top 53 bits of a word. */
static inline double zig_u01(uint64_t w)
{
    return (as_double(0x4330000000000000ull | (w >> 12)) - 0x1p52 + 0.5) * 0x1p-52;
}

/* The words the slow path draws, for one batch of 64 normals (batch b): words 0..7 from 4 ARS
 * blocks (b*4 + j, step lo, step hi, 1), then words 8 + 2m, 9 + 2m from block (b, step lo, step
 * hi, 2 + m). Consumed in lane order, so which word serves which normal depends only on the
 * batch's own words. zig_fix computes words 0..7 when a batch has a rejected lane; `next` is the
 * index of the next word to consume. */
typedef struct {
    const ars_key *k;
    uint32_t b, c1, c2, next, blk;
    uint64_t w[8], x[2];
} zig_src;

static inline uint64_t zig_next(zig_src *s)
{
    uint32_t j = s->next++;
    if (j < 8)
        return s->w[j];
    if ((j - 8) / 2 != s->blk) {
        s->blk = (j - 8) / 2;
        ars5_one(s->k, s->b, s->c1, s->c2, 2 + s->blk, s->x);
    }
    return s->x[j & 1];
}

/* Box i's x for word w: u = w >> 12 times the box width (a float, so the product is the same
 * in every lane width). */
static inline double zig_x(const zig_table *t, uint64_t w, unsigned i)
{
    float ws;
    uint32_t bits = (uint32_t)t->kw[i];
    memcpy(&ws, &bits, sizeof ws);
    return small_to_double(w >> 12) * (double)ws;
}

/* Where the fast path rejected word w0: the exact tests (sim/gen_ziggurat_tables.py), redrawing
 * from the batch's words `s` until a point falls under the curve. */
__attribute__((noinline)) static double zig_slow(const zig_table *tb, uint64_t w0, zig_src *s)
{
    uint64_t w = w0;
    for (;;) {
        unsigned i = (unsigned)(w & (tb->boxes - 1));
        uint64_t neg = (w & tb->boxes) << (63 - tb->sign_shift);
        double x = zig_x(tb, w, i);
        if ((w >> 32) < (tb->kw[i] >> 32) || x < tb->xnext[i])
            return as_double(nrm_as_u64(x) ^ neg);
        if (i == 0) {
            /* beyond r in the base box: the tail with probability tail_p, drawn as
             * x = r - log(u1)/r, accepted when -2 log(u2) > (x - r)^2 */
            if (zig_u01(zig_next(s)) < tb->tail_p)
                for (;;) {
                    double t = -nrm_log(zig_u01(zig_next(s))) / tb->r;
                    double y = -nrm_log(zig_u01(zig_next(s)));
                    if (y + y > t * t)
                        return as_double(nrm_as_u64(tb->r + t) ^ neg);
                }
        } else {
            double y = tb->f[i] + zig_u01(zig_next(s)) * (tb->f[i + 1] - tb->f[i]);
            if (y < 1.0 && nrm_log(y) < -0.5 * x * x)
                return as_double(nrm_as_u64(x) ^ neg);
        }
        w = zig_next(s);
    }
}

/* The table entries of n words, looked up one by one (the generic kernels): scalar loads
 * are cheaper than a vector gather here (and GCC would emulate one lane by lane anyway). Done for
 * several batches before their arithmetic so that the stores have left the store buffer when the
 * vector loads read them. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
static inline void
zig_lookup(const zig_table *t, const uint64_t *wd, uint64_t *e, size_t n)
{
    for (size_t l = 0; l < n; l++)
        e[l] = t->kw[wd[l] & (t->boxes - 1)];
}

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define ZIG_ENTRIES_IN_REGISTERS 1
/* The table entries of 8 words straight into a vector register: scalar index arithmetic, each
 * entry loaded into a lane (vmovq, vpinsrq) and the four pairs joined by inserts. No store per
 * normal: on AMD Zen 5 this beats both zig_lookup's stores, which bound the loop, and
 * vpgatherqq (measured: floor 0.50 vs 0.64 and 0.71 ns per normal). */
static inline __m512i zig_entries8(const uint64_t *kw, const uint64_t *w, uint64_t im)
{
    __m128i p[4];
    for (int j = 0; j < 4; j++)
        p[j] =
            _mm_insert_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(kw + (w[2 * j] & im))),
                             (long long)kw[w[2 * j + 1] & im], 1);
    __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(p[0]), p[1], 1);
    __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(p[2]), p[3], 1);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
#elif defined(__AVX2__)
#define ZIG_ENTRIES_IN_REGISTERS 1
/* The table entries of words w[0], w[1] straight into a 128-bit register (vmovq, vpinsrq), as
 * zig_entries8 does for AVX-512; zig_batch splits them into widths and thresholds by in-lane
 * shuffles. Measured on AMD EPYC (the AVX2 kernel): floor 1.16 -> 0.79 ns per normal
 * against zig_lookup's stores; vpgatherqq 25% slower than these inserts. */
static inline __m128 zig_entries2(const uint64_t *kw, const uint64_t *w, uint64_t im)
{
    return _mm_castsi128_ps(
        _mm_insert_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(kw + (w[0] & im))),
                         (long long)kw[w[1] & im], 1));
}
#endif

/* 64 normals from 64 words and their table entries (ee from zig_lookup; AVX-512 and AVX2 look
 * them up themselves, ee unused): the branch-free fast path. Returns the mask of the lanes it
 * rejected (bit l: o[l] is still to be drawn, by zig_fix). The arithmetic is the same on every
 * instruction set (an exact int-to-double conversion, one product with a float, a sign flip), so
 * are the bits. */
static inline uint64_t zig_batch(const zig_table *t, const uint64_t *wd, const uint64_t *ee,
                                 double *o)
{
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    (void)ee;
    uint64_t bad = 0;
    const __m512i ms = _mm512_set1_epi64((long long)t->boxes);
    const __m512i hi = _mm512_set1_epi64((long long)0xffffffff00000000ull);
    for (int l = 0; l < ROTEQ_KERNEL_BATCH; l += 8) {
        __m512i w = _mm512_loadu_si512((const void *)(wd + l));
        __m512i e = zig_entries8(t->kw, wd + l, t->boxes - 1);
        __m512d ws = _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_cvtepi64_epi32(e)));
        __m512d x = _mm512_mul_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(w, 12)), ws);
        __m512i sg = _mm512_slli_epi64(_mm512_and_si512(w, ms), 63 - t->sign_shift);
        _mm512_storeu_pd(o + l, _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x), sg)));
        bad |= (uint64_t)_mm512_cmpge_epu64_mask(w, _mm512_and_si512(e, hi)) << l;
    }
    return bad;
#elif defined(__AVX2__)
    (void)ee;
    uint64_t bad = 0;
    const uint64_t im = t->boxes - 1;
    const __m256i ms = _mm256_set1_epi64x((long long)t->boxes);
    const __m256i magic = _mm256_set1_epi64x(0x4330000000000000ll);
    const __m256d two52 = _mm256_set1_pd(0x1p52);
    for (int l = 0; l < ROTEQ_KERNEL_BATCH; l += 8) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)(wd + l));
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(const void *)(wd + l + 4));
        __m128 p0 = zig_entries2(t->kw, wd + l, im), p1 = zig_entries2(t->kw, wd + l + 2, im);
        __m128 p2 = zig_entries2(t->kw, wd + l + 4, im), p3 = zig_entries2(t->kw, wd + l + 6, im);
        __m256d ws0 = _mm256_cvtps_pd(_mm_shuffle_ps(p0, p1, 0x88));
        __m256d ws1 = _mm256_cvtps_pd(_mm_shuffle_ps(p2, p3, 0x88));
        __m256d u0 = _mm256_sub_pd(
            _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(w0, 12), magic)), two52);
        __m256d u1 = _mm256_sub_pd(
            _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(w1, 12), magic)), two52);
        __m256i s0 = _mm256_slli_epi64(_mm256_and_si256(w0, ms), 63 - t->sign_shift);
        __m256i s1 = _mm256_slli_epi64(_mm256_and_si256(w1, ms), 63 - t->sign_shift);
        _mm256_storeu_pd(o + l, _mm256_castsi256_pd(_mm256_xor_si256(
                                    _mm256_castpd_si256(_mm256_mul_pd(u0, ws0)), s0)));
        _mm256_storeu_pd(o + l + 4, _mm256_castsi256_pd(_mm256_xor_si256(
                                        _mm256_castpd_si256(_mm256_mul_pd(u1, ws1)), s1)));
        /* w >= threshold << 32 exactly when w >> 32 >= threshold: the high words of lanes 0, 1,
         * 4, 5 | 2, 3, 6, 7 (one in-lane shuffle each) against their thresholds, unsigned. */
        __m256i wh = _mm256_castps_si256(
            _mm256_shuffle_ps(_mm256_castsi256_ps(w0), _mm256_castsi256_ps(w1), 0xdd));
        __m256i th = _mm256_castps_si256(
            _mm256_set_m128(_mm_shuffle_ps(p1, p3, 0xdd), _mm_shuffle_ps(p0, p2, 0xdd)));
        __m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(wh, th), wh);
        bad |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(ge)) << l;
    }
    /* bits 2, 3 of each byte hold lanes 4, 5 and bits 4, 5 lanes 2, 3: back into lane order */
    return (bad & 0xc3c3c3c3c3c3c3c3ull) | ((bad & 0x0c0c0c0c0c0c0c0cull) << 2) |
           ((bad >> 2) & 0x0c0c0c0c0c0c0c0cull);
#else
    uint8_t bad[ROTEQ_KERNEL_BATCH];
    uint64_t any = 0;
#pragma omp simd reduction(| : any)
    for (int l = 0; l < ROTEQ_KERNEL_BATCH; l++) {
        uint64_t w = wd[l], e = ee[l];
        float ws;
        uint32_t bits = (uint32_t)e;
        memcpy(&ws, &bits, sizeof ws);
        double x = small_to_double(w >> 12) * (double)ws;
        o[l] = as_double(nrm_as_u64(x) ^ ((w & t->boxes) << (63 - t->sign_shift)));
        uint64_t rej = w >= (e & 0xffffffff00000000ull);
        bad[l] = (uint8_t)rej;
        any |= rej;
    }
    if (!any)
        return 0;
    uint64_t m = 0;
    for (int l = 0; l < ROTEQ_KERNEL_BATCH; l++)
        m |= (uint64_t)bad[l] << l;
    return m;
#endif
}

/* The lanes of batch b that zig_batch rejected (mask `bad`), in lane order, with the batch's own
 * slow-path words. The common case - a wedge point that the bounds of sim/ziggurat_tables.h
 * decide from its one uniform, accepted, or else rejected and the next word accepted by the fast
 * test - is branch-free, so that no unpredictable branch waits for it; zig_slow takes the rest
 * (base box, bounds undecided, a second rejection, a threshold that left x < xnext open). The
 * bounds hold only where the exact test agrees, so the words consumed and the results are
 * zig_slow's own. */
static inline void zig_fix(const zig_table *t, const uint64_t *wd, double *o, uint64_t bad,
                           const ars_key *k, uint32_t b, uint32_t c1, uint32_t c2)
{
    zig_src s = {k, b, c1, c2, 0, UINT32_MAX, {0}, {0}};
    ars5_blocks(k, 4 * b, c1, c2, 1, 4, s.w);
    const uint64_t im = t->boxes - 1;
    const int sh = 63 - t->sign_shift;
    while (bad) {
        int l = __builtin_ctzll(bad);
        bad &= bad - 1;
        uint64_t w = wd[l];
        uint32_t j = s.next;
        if (__builtin_expect(j <= 6, 1)) {
            unsigned i = (unsigned)(w & im);
            double x = zig_x(t, w, i);
            uint64_t w1 = s.w[j + 1];
            unsigned i1 = (unsigned)(w1 & im);
            double x1 = zig_x(t, w1, i1);
            const zig_wedge_box *g = &t->wedge[i];
            double tt = x - g->xn;
            double D = (zig_u01(s.w[j]) - (double)g->a) - tt * ((double)g->b + (double)g->c * tt);
            uint64_t acc = D < (double)g->lo;
            uint64_t rej = D > (double)g->hi;
            uint64_t ok1 = (w1 >> 32) < (t->kw[i1] >> 32);
            uint64_t open = (uint64_t)(tt < 0.0) | ((acc | rej) ^ 1) | ((acc | ok1) ^ 1);
            if (__builtin_expect(!open, 1)) {
                uint64_t m = 0 - acc;
                uint64_t r0 = nrm_as_u64(x) ^ ((w & t->boxes) << sh);
                uint64_t r1 = nrm_as_u64(x1) ^ ((w1 & t->boxes) << sh);
                o[l] = as_double((r0 & m) | (r1 & ~m));
                s.next = j + 2 - (uint32_t)acc;
                continue;
            }
        }
        o[l] = zig_slow(t, w, &s);
    }
}

/* Normals are drawn ZIG_GROUP batches at a time: their words, their table entries (zig_lookup;
 * in zig_batch's own loop on AVX-512 and AVX2), the fast path of all, then the rejected lanes of
 * all, so that the slow path costs one branch per group rather than one per batch. */
#define ZIG_GROUP 4

static inline void zig_group(const zig_table *t, const uint64_t *wd, const uint64_t *ee, double *o,
                             size_t nb, const ars_key *k, uint32_t b0, uint32_t c1, uint32_t c2)
{
    uint64_t bad[ZIG_GROUP], any = 0;
    for (size_t b = 0; b < nb; b++) {
        bad[b] = zig_batch(t, wd + b * ROTEQ_KERNEL_BATCH, ee + b * ROTEQ_KERNEL_BATCH,
                           o + b * ROTEQ_KERNEL_BATCH);
        any |= bad[b];
    }
    if (__builtin_expect(any != 0, 0))
        for (size_t b = 0; b < nb; b++)
            if (bad[b])
                zig_fix(t, wd + b * ROTEQ_KERNEL_BATCH, o + b * ROTEQ_KERNEL_BATCH, bad[b], k,
                        b0 + (uint32_t)b, c1, c2);
}

/* ---- The variants ---- */

static inline void normals_philox_bm(int rounds, uint64_t seed, uint32_t stream, uint64_t step,
                                     double *out, size_t ngen)
{
    const uint32_t k0 = (uint32_t)seed, k1 = stream;
    const uint32_t c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32), c3 = (uint32_t)(seed >> 32);
    for (size_t b = 0; b < ngen / ROTEQ_KERNEL_BATCH; b++) {
        uint32_t x[4][NL];
        philox_lanes_r(rounds, k0, k1, (uint32_t)(b * NL), c1, c2, c3, x);
        double *o = (double *)__builtin_assume_aligned(out + b * ROTEQ_KERNEL_BATCH, 64);
        bm_pairs(x[0], x[1], o, NL, NL);
        bm_pairs(x[2], x[3], o + 2 * NL, NL, NL);
    }
}

static inline void normals_ars_bm(uint64_t seed, uint32_t stream, uint64_t step, double *out,
                                  size_t ngen)
{
    const ars_key k = ars_key_make(seed, stream);
    const uint32_t c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32);
    for (size_t b = 0; b < ngen / ROTEQ_KERNEL_BATCH; b++) {
        uint64_t wd[2 * NL];
        uint32_t a[4 * NL];
        ars5_blocks(&k, (uint32_t)(b * NL), c1, c2, 0, NL, wd);
        for (int i = 0; i < 2 * NL; i++) {
            a[2 * i] = (uint32_t)wd[i];
            a[2 * i + 1] = (uint32_t)(wd[i] >> 32);
        }
        double *o = (double *)__builtin_assume_aligned(out + b * ROTEQ_KERNEL_BATCH, 64);
        bm_pairs(a, a + 2 * NL, o, 2 * NL, 2 * NL);
    }
}

static inline void normals_ars_zig(uint64_t seed, uint32_t stream, uint64_t step, double *out,
                                   size_t ngen)
{
    const ars_key k = ars_key_make(seed, stream);
    const uint32_t c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32);
    const size_t nbatch = ngen / ROTEQ_KERNEL_BATCH;
    for (size_t b0 = 0; b0 < nbatch; b0 += ZIG_GROUP) {
        size_t nb = nbatch - b0 < ZIG_GROUP ? nbatch - b0 : ZIG_GROUP;
        uint64_t wd[ZIG_GROUP * ROTEQ_KERNEL_BATCH], ee[ZIG_GROUP * ROTEQ_KERNEL_BATCH];
        ars5_blocks(&k, (uint32_t)(b0 * 2 * NL), c1, c2, 0, (int)(nb * 2 * NL), wd);
#if !defined(ZIG_ENTRIES_IN_REGISTERS)
        zig_lookup(&zig2048, wd, ee, nb * ROTEQ_KERNEL_BATCH);
#endif
        zig_group(&zig2048, wd, ee, out + b0 * ROTEQ_KERNEL_BATCH, nb, &k, (uint32_t)b0, c1, c2);
    }
}

static inline void normals_philox_zig(int rounds, uint64_t seed, uint32_t stream, uint64_t step,
                                      double *out, size_t ngen)
{
    const ars_key k = ars_key_make(seed, stream);
    const uint32_t k0 = (uint32_t)seed, k1 = stream;
    const uint32_t c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32), c3 = (uint32_t)(seed >> 32);
    const size_t nbatch = ngen / ROTEQ_KERNEL_BATCH;
    for (size_t b0 = 0; b0 < nbatch; b0 += ZIG_GROUP) {
        size_t nb = nbatch - b0 < ZIG_GROUP ? nbatch - b0 : ZIG_GROUP;
        uint64_t wd[ZIG_GROUP * ROTEQ_KERNEL_BATCH], ee[ZIG_GROUP * ROTEQ_KERNEL_BATCH];
        for (size_t h = 0; h < 2 * nb; h++) {
            uint32_t x[4][NL];
            philox_lanes_r(rounds, k0, k1, (uint32_t)((2 * b0 + h) * NL), c1, c2, c3, x);
            for (int l = 0; l < NL; l++) {
                wd[h * 2 * NL + (size_t)l] = x[0][l] | (uint64_t)x[1][l] << 32;
                wd[h * 2 * NL + NL + (size_t)l] = x[2][l] | (uint64_t)x[3][l] << 32;
            }
        }
#if !defined(ZIG_ENTRIES_IN_REGISTERS)
        zig_lookup(&zig2048, wd, ee, nb * ROTEQ_KERNEL_BATCH);
#endif
        zig_group(&zig2048, wd, ee, out + b0 * ROTEQ_KERNEL_BATCH, nb, &k, (uint32_t)b0, c1, c2);
    }
}

/* The 256-box ziggurat: on AVX-512 its table is held in 32 vector registers (the widths' float
 * bits and the thresholds, 16 x 16 words each) and an entry is looked up by permutes - 8
 * two-register permutes on the index's low 5 bits, blended by bits 5, 6 and 7 - so no load per
 * normal; elsewhere by the scalar lookups from zig256_kw, the same values. Its fast path takes
 * 98.5% of draws (2048 boxes: 99.8%), the rest go through the same zig_slow(). */
#if defined(__AVX512F__) && defined(__AVX512DQ__)
static inline __m512i zig256_perm(const __m512i *t, __m512i idx)
{
    __m512i r[8];
    for (int j = 0; j < 8; j++)
        r[j] = _mm512_permutex2var_epi32(t[2 * j], idx, t[2 * j + 1]);
    const __mmask16 m5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    const __mmask16 m6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
    const __mmask16 m7 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(128));
    for (int j = 0; j < 8; j += 2)
        r[j] = _mm512_mask_blend_epi32(m5, r[j], r[j + 1]);
    r[0] = _mm512_mask_blend_epi32(m6, r[0], r[2]);
    r[4] = _mm512_mask_blend_epi32(m6, r[4], r[6]);
    return _mm512_mask_blend_epi32(m7, r[0], r[4]);
}

/* 64 normals from 64 words: 16 at a time, the low and high 32 bits of the words by two permutes,
 * the entry by zig256_perm, then zig_batch's arithmetic and rejection test. */
static inline void zig256_batch_reg(const __m512i *tw, const __m512i *tk, const uint64_t *wd,
                                    double *o, const ars_key *k, uint32_t b, uint32_t c1,
                                    uint32_t c2)
{
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i ms = _mm512_set1_epi64(ZIG256_BOXES);
    uint64_t bad = 0;
    for (int l = 0; l < ROTEQ_KERNEL_BATCH; l += 16) {
        __m512i w0 = _mm512_loadu_si512((const void *)(wd + l));
        __m512i w1 = _mm512_loadu_si512((const void *)(wd + l + 8));
        __m512i lo = _mm512_permutex2var_epi32(w0, even, w1);
        __m512i hi = _mm512_permutex2var_epi32(w0, odd, w1);
        __m512i wb = zig256_perm(tw, lo);
        bad |= (uint64_t)_mm512_cmpge_epu32_mask(hi, zig256_perm(tk, lo)) << l;
        __m512d ws0 = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_castsi512_ps(wb)));
        __m512d ws1 = _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(wb, 1)));
        __m512d x0 = _mm512_mul_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(w0, 12)), ws0);
        __m512d x1 = _mm512_mul_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(w1, 12)), ws1);
        __m512i s0 = _mm512_slli_epi64(_mm512_and_si512(w0, ms), 63 - 8);
        __m512i s1 = _mm512_slli_epi64(_mm512_and_si512(w1, ms), 63 - 8);
        _mm512_storeu_pd(o + l, _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x0), s0)));
        _mm512_storeu_pd(o + l + 8,
                         _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x1), s1)));
    }
    if (bad)
        zig_fix(&zig256, wd, o, bad, k, b, c1, c2);
}
#endif

static inline void normals_ars_zig256(uint64_t seed, uint32_t stream, uint64_t step, double *out,
                                      size_t ngen)
{
    const ars_key k = ars_key_make(seed, stream);
    const uint32_t c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32);
    const size_t nbatch = ngen / ROTEQ_KERNEL_BATCH;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    __m512i tw[16], tk[16];
    for (int j = 0; j < 16; j++) {
        tw[j] = _mm512_load_si512((const void *)(zig256_wbits + 16 * j));
        tk[j] = _mm512_load_si512((const void *)(zig256_k + 16 * j));
    }
#endif
    for (size_t b0 = 0; b0 < nbatch; b0 += ZIG_GROUP) {
        size_t nb = nbatch - b0 < ZIG_GROUP ? nbatch - b0 : ZIG_GROUP;
        uint64_t wd[ZIG_GROUP * ROTEQ_KERNEL_BATCH];
        ars5_blocks(&k, (uint32_t)(b0 * 2 * NL), c1, c2, 0, (int)(nb * 2 * NL), wd);
#if defined(__AVX512F__) && defined(__AVX512DQ__)
        for (size_t b = 0; b < nb; b++)
            zig256_batch_reg(tw, tk, wd + b * ROTEQ_KERNEL_BATCH,
                             out + (b0 + b) * ROTEQ_KERNEL_BATCH, &k, (uint32_t)(b0 + b), c1, c2);
#else
        uint64_t ee[ZIG_GROUP * ROTEQ_KERNEL_BATCH];
        zig_lookup(&zig256, wd, ee, nb * ROTEQ_KERNEL_BATCH);
        zig_group(&zig256, wd, ee, out + b0 * ROTEQ_KERNEL_BATCH, nb, &k, (uint32_t)b0, c1, c2);
#endif
    }
}

/* The variant `kind` (roteq_sim_normal_kind). */
static inline void normals_of(roteq_sim_normal_kind kind, uint64_t seed, uint32_t stream,
                              uint64_t step, double *out, size_t ngen)
{
    switch (kind) {
    case ROTEQ_NORMALS_ARS5_ZIGGURAT:
        normals_ars_zig(seed, stream, step, out, ngen);
        break;
    case ROTEQ_NORMALS_ARS5_ZIGGURAT256:
        normals_ars_zig256(seed, stream, step, out, ngen);
        break;
    case ROTEQ_NORMALS_ARS5_BOXMULLER:
        normals_ars_bm(seed, stream, step, out, ngen);
        break;
    case ROTEQ_NORMALS_PHILOX7_ZIGGURAT:
        normals_philox_zig(7, seed, stream, step, out, ngen);
        break;
    case ROTEQ_NORMALS_PHILOX10_ZIGGURAT:
        normals_philox_zig(10, seed, stream, step, out, ngen);
        break;
    case ROTEQ_NORMALS_PHILOX7_BOXMULLER:
        normals_philox_bm(7, seed, stream, step, out, ngen);
        break;
    case ROTEQ_NORMALS_PHILOX10_BOXMULLER:
    default:
        normals_philox_bm(10, seed, stream, step, out, ngen);
        break;
    }
}

#undef NL
#endif
