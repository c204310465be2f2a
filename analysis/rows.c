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
static void load_row(const roteq_tensor_info *t, const void *data, size_t row, size_t rows,
                     size_t cols, size_t j0, size_t n, double *out)
{
    size_t es = roteq_dtype_size(t->dtype);
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

static double sumsq(const double *x, size_t n)
{
    /* Four independent partial sums: no reassociation flags needed for the pipeline to fill. */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += x[j] * x[j];
        s1 += x[j + 1] * x[j + 1];
        s2 += x[j + 2] * x[j + 2];
        s3 += x[j + 3] * x[j + 3];
    }
    for (; j < n; j++)
        s0 += x[j] * x[j];
    return (s0 + s1) + (s2 + s3);
}

/* Row buffers live on the stack; longer rows are processed in chunks. */
#define ROW_CHUNK 2048

void roteq_rows_norms(const roteq_tensor_info *t, const void *data, size_t rows, size_t cols,
                      double *norm)
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

void roteq_rows_angles(const roteq_tensor_info *ta, const void *a, const roteq_tensor_info *tb,
                       const void *b, size_t rows, size_t cols, const double *norm_a,
                       double *norm_b, double *angle)
{
    double ba[ROW_CHUNK], bb[ROW_CHUNK];
    for (size_t i = 0; i < rows; i++) {
        double na = 0, nb = 0;
        for (size_t j0 = 0; j0 < cols; j0 += ROW_CHUNK) {
            size_t n = cols - j0 < ROW_CHUNK ? cols - j0 : ROW_CHUNK;
            load_row(tb, b, i, rows, cols, j0, n, bb);
            nb += sumsq(bb, n);
            if (norm_a == NULL) {
                load_row(ta, a, i, rows, cols, j0, n, ba);
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
        double ia = 1.0 / na, ib = 1.0 / nb;
        double d0 = 0, d1 = 0, s0 = 0, s1 = 0;
        for (size_t j0 = 0; j0 < cols; j0 += ROW_CHUNK) {
            size_t n = cols - j0 < ROW_CHUNK ? cols - j0 : ROW_CHUNK;
            if (cols > ROW_CHUNK || norm_a != NULL)
                load_row(ta, a, i, rows, cols, j0, n, ba);
            if (cols > ROW_CHUNK)
                load_row(tb, b, i, rows, cols, j0, n, bb);
            size_t j = 0;
            for (; j + 2 <= n; j += 2) {
                double u0 = ba[j] * ia, v0 = bb[j] * ib, u1 = ba[j + 1] * ia, v1 = bb[j + 1] * ib;
                d0 += (u0 - v0) * (u0 - v0);
                s0 += (u0 + v0) * (u0 + v0);
                d1 += (u1 - v1) * (u1 - v1);
                s1 += (u1 + v1) * (u1 + v1);
            }
            for (; j < n; j++) {
                double u = ba[j] * ia, v = bb[j] * ib;
                d0 += (u - v) * (u - v);
                s0 += (u + v) * (u + v);
            }
        }
        angle[i] = 2.0 * atan2(sqrt(d0 + d1), sqrt(s0 + s1));
    }
}
