/* rows.c - per-neuron norms and angles between two snapshots of a weight tensor, in float64
 * whatever the stored dtype. A neuron is a row along the first axis with the trailing axes
 * flattened; the order of elements inside a row does not change a norm or an angle, so a
 * Fortran-ordered .npy is read with a stride instead of being transposed.
 *
 * The angle uses 2*atan2(|a^ - b^|, |a^ + b^|) on the unit vectors a^ = a/|a|, b^ = b/|b|
 * (Kahan's formula): at 1e-3 rad, acos of the cosine loses half the digits (cos = 1 - 5e-7),
 * while this form stays accurate to a few ulps at every angle from 0 to pi. */
#include "roteq_analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double f16_to_double(uint16_t h)
{
    unsigned sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp((double)mant, -24); /* subnormal */
    else if (exp == 31)
        v = mant ? DNAN : ((double)INFINITY);
    else
        v = ldexp((double)(mant | 0x400), (int)exp - 25);
    return sign ? -v : v;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Elements j0..j0+n of row `row` of a tensor with `rows` rows of `cols` elements, as doubles. */
static void load_row(const roteq_analysis_tensor_info *t, const void *data, size_t row, size_t rows,
                     size_t cols, size_t j0, size_t n, double *out)
{
    size_t es = roteq_analysis_dtype_size(t->dtype);
    size_t first = t->fortran_order ? row + j0 * rows : row * cols + j0;
    size_t stride = t->fortran_order ? rows : 1;
    const unsigned char *p = (const unsigned char *)data + first * es;
    switch (t->dtype) {
    case ROTEQ_DT_F64:
        if (stride == 1)
            memcpy(out, p, n * sizeof *out);
        else
            for (size_t j = 0; j < n; j++)
                memcpy(&out[j], p + j * stride * 8, 8);
        break;
    case ROTEQ_DT_F32:
        if (stride == 1) { /* contiguous: a loop the compiler vectorises */
            for (size_t j = 0; j < n; j++) {
                float f;
                memcpy(&f, p + 4 * j, 4);
                out[j] = (double)f;
            }
            break;
        }
        for (size_t j = 0; j < n; j++) {
            float f;
            memcpy(&f, p + j * stride * 4, 4);
            out[j] = (double)f;
        }
        break;
    case ROTEQ_DT_F16:
        for (size_t j = 0; j < n; j++) {
            uint16_t h;
            memcpy(&h, p + j * stride * 2, 2);
            out[j] = f16_to_double(h);
        }
        break;
    case ROTEQ_DT_BF16:
        if (stride == 1) {
            for (size_t j = 0; j < n; j++) {
                uint16_t h;
                memcpy(&h, p + 2 * j, 2);
                uint32_t u = (uint32_t)h << 16;
                float f;
                memcpy(&f, &u, 4);
                out[j] = (double)f;
            }
            break;
        }
        for (size_t j = 0; j < n; j++) {
            uint16_t h;
            memcpy(&h, p + j * stride * 2, 2);
            out[j] = (double)bf16_to_float(h);
        }
        break;
    default:
        for (size_t j = 0; j < n; j++)
            out[j] = DNAN;
        break;
    }
}

/* Two-lane vectors (GCC and clang vector extensions: one SSE2 register), two accumulators each:
 * independent partial sums in a fixed order, so results do not depend on the build's flags. */
typedef double v2d __attribute__((vector_size(16)));

static double sumsq(const double *x, size_t n)
{
    v2d s0 = {0, 0}, s1 = {0, 0};
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        v2d v0, v1;
        memcpy(&v0, x + j, sizeof v0);
        memcpy(&v1, x + j + 2, sizeof v1);
        s0 += v0 * v0;
        s1 += v1 * v1;
    }
    v2d s = s0 + s1;
    double t = s[0] + s[1];
    for (; j < n; j++)
        t += x[j] * x[j];
    return t;
}

/* Rows longer than this are processed in chunks of it, in buffers on the stack (two of 16 KiB):
 * the snapshot reader runs these under a SIGBUS guard that jumps out when a mapped file shrinks,
 * and a heap buffer would be lost on that jump. */
#define ROW_CHUNK 2048

void roteq_analysis_rows_norms(const roteq_analysis_tensor_info *t, const void *data, size_t rows,
                               size_t cols, double *norm)
{
    double buf[ROW_CHUNK];
    for (size_t i = 0; i < rows; i++) {
        double s = 0;
        for (size_t j0 = 0; j0 < cols; j0 += ROW_CHUNK) {
            size_t n = cols - j0 < ROW_CHUNK ? cols - j0 : ROW_CHUNK;
            load_row(t, data, i, rows, cols, j0, n, buf);
            s += sumsq(buf, n);
        }
        norm[i] = sqrt(s);
    }
}

/* Sums of (u - v)^2 and (u + v)^2 for u = a*ia, v = b*ib. */
static void diff_sum(const double *a, const double *b, size_t n, double ia, double ib, double *d,
                     double *s)
{
    v2d d0 = {0, 0}, d1 = {0, 0}, s0 = {0, 0}, s1 = {0, 0};
    const v2d iav = {ia, ia}, ibv = {ib, ib};
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        v2d u0, v0, u1, v1;
        memcpy(&u0, a + j, sizeof u0);
        memcpy(&u1, a + j + 2, sizeof u1);
        memcpy(&v0, b + j, sizeof v0);
        memcpy(&v1, b + j + 2, sizeof v1);
        u0 *= iav, u1 *= iav, v0 *= ibv, v1 *= ibv;
        v2d m0 = u0 - v0, m1 = u1 - v1, p0 = u0 + v0, p1 = u1 + v1;
        d0 += m0 * m0;
        d1 += m1 * m1;
        s0 += p0 * p0;
        s1 += p1 * p1;
    }
    v2d dv = d0 + d1, sv = s0 + s1;
    double dt = dv[0] + dv[1], st = sv[0] + sv[1];
    for (; j < n; j++) {
        double u = a[j] * ia, v = b[j] * ib;
        dt += (u - v) * (u - v);
        st += (u + v) * (u + v);
    }
    *d += dt;
    *s += st;
}

/* Fused kernels for the common case (both rows contiguous, same dtype): convert on the fly and
 * accumulate, so the raw bytes are read once per pass and nothing is stored. */
static inline double ld_f64(const unsigned char *p, size_t j)
{
    double d;
    memcpy(&d, p + 8 * j, 8);
    return d;
}
static inline double ld_f32(const unsigned char *p, size_t j)
{
    float f;
    memcpy(&f, p + 4 * j, 4);
    return (double)f;
}
static inline double ld_bf16(const unsigned char *p, size_t j)
{
    uint16_t h;
    memcpy(&h, p + 2 * j, 2);
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)h << 16}; /* type punning through a union is defined in C */
    return (double)v.f;
}
static inline double ld_f16(const unsigned char *p, size_t j)
{
    uint16_t h;
    memcpy(&h, p + 2 * j, 2);
    return f16_to_double(h);
}

#define ROTEQ_KERNELS(NAME, LOAD)                                                                  \
    static double ksumsq_##NAME(const unsigned char *p, size_t n)                                  \
    {                                                                                              \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                     \
        size_t j = 0;                                                                              \
        for (; j + 4 <= n; j += 4) {                                                               \
            double x0 = LOAD(p, j), x1 = LOAD(p, j + 1), x2 = LOAD(p, j + 2), x3 = LOAD(p, j + 3); \
            s0 += x0 * x0, s1 += x1 * x1, s2 += x2 * x2, s3 += x3 * x3;                            \
        }                                                                                          \
        for (; j < n; j++) {                                                                       \
            double x = LOAD(p, j);                                                                 \
            s0 += x * x;                                                                           \
        }                                                                                          \
        return (s0 + s1) + (s2 + s3);                                                              \
    }                                                                                              \
    static void kdiff_##NAME(const unsigned char *a, const unsigned char *b, size_t n, double ia,  \
                             double ib, double *d, double *s)                                      \
    {                                                                                              \
        double d0 = 0, d1 = 0, s0 = 0, s1 = 0;                                                     \
        size_t j = 0;                                                                              \
        for (; j + 2 <= n; j += 2) {                                                               \
            double u0 = LOAD(a, j) * ia, v0 = LOAD(b, j) * ib;                                     \
            double u1 = LOAD(a, j + 1) * ia, v1 = LOAD(b, j + 1) * ib;                             \
            d0 += (u0 - v0) * (u0 - v0), s0 += (u0 + v0) * (u0 + v0);                              \
            d1 += (u1 - v1) * (u1 - v1), s1 += (u1 + v1) * (u1 + v1);                              \
        }                                                                                          \
        for (; j < n; j++) {                                                                       \
            double u = LOAD(a, j) * ia, v = LOAD(b, j) * ib;                                       \
            d0 += (u - v) * (u - v), s0 += (u + v) * (u + v);                                      \
        }                                                                                          \
        *d = d0 + d1;                                                                              \
        *s = s0 + s1;                                                                              \
    }

ROTEQ_KERNELS(f64, ld_f64)
ROTEQ_KERNELS(f32, ld_f32)
ROTEQ_KERNELS(bf16, ld_bf16)
ROTEQ_KERNELS(f16, ld_f16)

typedef struct {
    double (*sumsq)(const unsigned char *, size_t);
    void (*diff)(const unsigned char *, const unsigned char *, size_t, double, double, double *,
                 double *);
} kernel;

static const kernel kernels[] = {{ksumsq_f64, kdiff_f64},
                                 {ksumsq_f32, kdiff_f32},
                                 {ksumsq_f16, kdiff_f16},
                                 {ksumsq_bf16, kdiff_bf16}};

/* The fused path: C order, same dtype on both sides. */
static void rows_angles_fused(const kernel *k, size_t es, const unsigned char *a,
                              const unsigned char *b, size_t rows, size_t cols,
                              const double *norm_a, double *norm_b, double *angle)
{
    for (size_t i = 0; i < rows; i++) {
        const unsigned char *ra = a + i * cols * es, *rb = b + i * cols * es;
        double nb = sqrt(k->sumsq(rb, cols));
        double na = norm_a ? norm_a[i] : sqrt(k->sumsq(ra, cols));
        norm_b[i] = nb;
        if (!(na > 0) || !(nb > 0) || !isfinite(na) || !isfinite(nb)) {
            angle[i] = DNAN;
            continue;
        }
        double d, s;
        k->diff(ra, rb, cols, 1.0 / na, 1.0 / nb, &d, &s);
        angle[i] = 2.0 * atan2(sqrt(d), sqrt(s));
    }
}

void roteq_analysis_rows_angles(const roteq_analysis_tensor_info *ta, const void *a,
                                const roteq_analysis_tensor_info *tb, const void *b, size_t rows,
                                size_t cols, const double *norm_a, double *norm_b, double *angle)
{
    if (ta->dtype == tb->dtype && !ta->fortran_order && !tb->fortran_order &&
        ta->dtype != ROTEQ_DT_OTHER) {
        rows_angles_fused(&kernels[ta->dtype], roteq_analysis_dtype_size(ta->dtype), a, b, rows,
                          cols, norm_a, norm_b, angle);
        return;
    }
    double ba[ROW_CHUNK], bb[ROW_CHUNK];
    int one_chunk = cols <= ROW_CHUNK;
    for (size_t i = 0; i < rows; i++) {
        double na = 0, nb = 0;
        /* Pass 1: norms. A row that fits one chunk stays in the buffers for pass 2. */
        for (size_t j0 = 0; j0 < cols; j0 += ROW_CHUNK) {
            size_t n = cols - j0 < ROW_CHUNK ? cols - j0 : ROW_CHUNK;
            load_row(tb, b, i, rows, cols, j0, n, bb);
            nb += sumsq(bb, n);
            if (norm_a == NULL || one_chunk) {
                load_row(ta, a, i, rows, cols, j0, n, ba);
                if (norm_a == NULL)
                    na += sumsq(ba, n);
            }
        }
        nb = sqrt(nb);
        na = norm_a ? norm_a[i] : sqrt(na);
        norm_b[i] = nb;
        if (!(na > 0) || !(nb > 0) || !isfinite(na) || !isfinite(nb)) {
            angle[i] = DNAN; /* a zero (or non-finite) vector has no direction */
            continue;
        }
        /* Pass 2: the unit vectors' difference and sum. */
        double d = 0, s = 0;
        for (size_t j0 = 0; j0 < cols; j0 += ROW_CHUNK) {
            size_t n = cols - j0 < ROW_CHUNK ? cols - j0 : ROW_CHUNK;
            if (!one_chunk) {
                load_row(ta, a, i, rows, cols, j0, n, ba);
                load_row(tb, b, i, rows, cols, j0, n, bb);
            }
            diff_sum(ba, bb, n, 1.0 / na, 1.0 / nb, &d, &s);
        }
        angle[i] = 2.0 * atan2(sqrt(d), sqrt(s));
    }
}
