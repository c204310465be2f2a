/* test_normals.c - the simulator's standard normals as a distribution (fixed seeds, every check in
 * standard errors): moments to the fourth, a Kolmogorov-Smirnov test against GSL's normal CDF,
 * tail frequencies beyond 4 and 5 sigma, and independence across neighbouring neuron streams,
 * steps (counters), coordinates and seeds - for the kind the engine draws and the 256-box
 * ziggurat in full, for every other kind `roteq bench` times in a lighter form. Bits do not depend
 * on the instruction set (test_engine.c), so the widest kernels draw them here. And the
 * ziggurat's wedge bounds (sim/gen_ziggurat_tables.py), which decide rejected points without a
 * logarithm, against the exact test they must agree with (the kernel header, included here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "normal_inline.h"
#include "roteq_sim.h"
#include "roteq_test.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED 20261130u

static void draw(roteq_sim_normal_kind kind, uint64_t seed, uint32_t stream, uint64_t step,
                 double *z, size_t n)
{
    assert_int_equal(roteq_sim_normals_as(kind, ROTEQ_SIM_ISA_AUTO, seed, stream, step, z, n), 0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sqrt(n) times the Kolmogorov-Smirnov distance of x[0..n) (sorted here) to the normal CDF. */
static double ks_lambda(double *x, size_t n)
{
    qsort(x, n, sizeof *x, cmp_double);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double F = gsl_cdf_ugaussian_P(x[i]);
        d = fmax(d, fmax(F - (double)i / (double)n, (double)(i + 1) / (double)n - F));
    }
    return sqrt((double)n) * d;
}

/* The asymptotic Kolmogorov p-value of lambda. */
static double ks_p(double lambda)
{
    double p = 0.0;
    for (int k = 1; k < 100; k++)
        p += 2.0 * ((k & 1) ? 1.0 : -1.0) * exp(-2.0 * k * k * lambda * lambda);
    return fmin(1.0, fmax(0.0, p));
}

/* Mean, variance, third and fourth moments of `n` normals from streams/steps, within k SE, and
 * the KS test on them (lambda < 1.95: p > 0.001). */
static void check_moments_ks(roteq_sim_normal_kind kind, size_t per, size_t vectors, double k)
{
    const size_t n = per * vectors;
    double *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t v = 0; v < vectors; v++)
        draw(kind, SEED, (uint32_t)(v % 61), 1 + v / 61, x + v * per, per);
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (size_t i = 0; i < n; i++) {
        double z = x[i], z2 = z * z;
        s1 += z;
        s2 += z2;
        s3 += z2 * z;
        s4 += z2 * z2;
    }
    double N = (double)n;
    /* Var(z) = 1, Var(z^2) = 2, Var(z^3) = 15, Var(z^4) = 96 */
    printf("# %s: %zu normals: mean %+.2e, E z^2 %.5f, E z^3 %+.2e, E z^4 %.4f\n",
           roteq_sim_normal_names[kind], n, s1 / N, s2 / N, s3 / N, s4 / N);
    assert_within_se(s1 / N, 0.0, 1.0 / sqrt(N), k, SEED);
    assert_within_se(s2 / N, 1.0, sqrt(2.0 / N), k, SEED);
    assert_within_se(s3 / N, 0.0, sqrt(15.0 / N), k, SEED);
    assert_within_se(s4 / N, 3.0, sqrt(96.0 / N), k, SEED);
    double lambda = ks_lambda(x, n);
    printf("# %s: KS sqrt(n) D = %.3f (p = %.3f)\n", roteq_sim_normal_names[kind], lambda,
           ks_p(lambda));
    assert_true(lambda < 1.95);
    free(x);
}

static void test_engine_moments_ks(void **state)
{
    (void)state;
    check_moments_ks(roteq_sim_engine_normals, 1024, 4096, 4.0); /* 4.2 million */
}

/* Every kind roteq bench times is a correct normal generator too (lighter: 2^18 each). */
static void test_every_kind_moments_ks(void **state)
{
    (void)state;
    for (int kind = 0; kind < ROTEQ_NORMALS_COUNT; kind++)
        check_moments_ks((roteq_sim_normal_kind)kind, 1024, 256, 4.5);
}

/* Tail frequencies beyond 4 and 5 sigma in 5e7 normals (expected 3167 and 28.7): binomial
 * standard errors. */
static void check_tails(roteq_sim_normal_kind kind)
{
    const size_t per = 4096, vectors = 12207; /* 5.0e7 */
    double *z = malloc(per * sizeof *z);
    assert_non_null(z);
    size_t c4 = 0, c5 = 0;
    double biggest = 0;
    for (size_t v = 0; v < vectors; v++) {
        draw(kind, SEED + 1, (uint32_t)(v % 127), 1 + v / 127, z, per);
        for (size_t i = 0; i < per; i++) {
            double a = fabs(z[i]);
            c4 += a > 4.0;
            c5 += a > 5.0;
            biggest = fmax(biggest, a);
        }
    }
    double N = (double)(per * vectors);
    double p4 = 2.0 * gsl_cdf_ugaussian_Q(4.0), p5 = 2.0 * gsl_cdf_ugaussian_Q(5.0);
    printf("# %s, %.3g normals: beyond 4 sigma %zu (expected %.1f), beyond 5 sigma %zu (expected "
           "%.1f); largest |z| %.3f\n",
           roteq_sim_normal_names[kind], N, c4, p4 * N, c5, p5 * N, biggest);
    assert_within_se((double)c4 / N, p4, sqrt(p4 * (1 - p4) / N), 4, SEED + 1);
    assert_within_se((double)c5 / N, p5, sqrt(p5 * (1 - p5) / N), 4, SEED + 1);
    free(z);
}

/* Correlation of z and of z^2 between paired draws, in standard errors (unit variances known:
 * r = mean(x y), r2 = mean((x^2-1)(y^2-1))/2, each with SE 1/sqrt(m)). */
typedef struct {
    double sxy, sqq;
    size_t m;
} corr;

static void corr_add(corr *c, const double *x, const double *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->sxy += x[i] * y[i];
        c->sqq += (x[i] * x[i] - 1.0) * (y[i] * y[i] - 1.0) / 2.0;
    }
    c->m += n;
}

static void corr_check(const corr *c, const char *what)
{
    double m = (double)c->m, r = c->sxy / m, r2 = c->sqq / m, se = 1.0 / sqrt(m);
    printf("# %-40s corr %+.2f SE, of squares %+.2f SE (%zu pairs)\n", what, r / se, r2 / se, c->m);
    assert_within_se(r, 0.0, se, 4.5, SEED + 2);
    assert_within_se(r2, 0.0, se, 4.5, SEED + 2);
}

static void check_independence(roteq_sim_normal_kind kind)
{
    printf("# %s:\n", roteq_sim_normal_names[kind]);
    enum { C = 512, STREAMS = 64, STEPS = 40 };
    double *a = malloc(C * sizeof *a), *b = malloc(C * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    corr streams = {0}, steps = {0}, seeds = {0}, coord1 = {0}, coord32 = {0}, coord64 = {0};
    for (uint32_t s = 0; s < STREAMS; s++)
        for (uint64_t t = 1; t <= STEPS; t++) {
            draw(kind, SEED, s, t, a, C);
            draw(kind, SEED, s + 1, t, b, C); /* the neighbouring neuron */
            corr_add(&streams, a, b, C);
            draw(kind, SEED, s, t + 1, b, C); /* the next step's counter */
            corr_add(&steps, a, b, C);
            draw(kind, SEED + 1, s, t, b, C); /* the next seed */
            corr_add(&seeds, a, b, C);
            corr_add(&coord1, a, a + 1, C - 1);    /* neighbouring coordinates */
            corr_add(&coord32, a, a + 32, C - 32); /* Box-Muller partners, half a batch */
            corr_add(&coord64, a, a + 64, C - 64); /* the same place in the next batch */
        }
    corr_check(&streams, "neighbouring neurons (stream n, n+1)");
    corr_check(&steps, "consecutive steps (counter t, t+1)");
    corr_check(&seeds, "neighbouring seeds");
    corr_check(&coord1, "neighbouring coordinates (i, i+1)");
    corr_check(&coord32, "coordinates i, i+32");
    corr_check(&coord64, "coordinates i, i+64 (next batch)");
    free(a);
    free(b);
}

static void test_engine_tails(void **state)
{
    (void)state;
    check_tails(roteq_sim_engine_normals);
}

static void test_engine_independence(void **state)
{
    (void)state;
    check_independence(roteq_sim_engine_normals);
}

/* The 256-box ziggurat (a candidate for the engine: the table in registers) in full too. */
static void test_zig256_full(void **state)
{
    (void)state;
    check_moments_ks(ROTEQ_NORMALS_ARS5_ZIGGURAT256, 1024, 4096, 4.0);
    check_tails(ROTEQ_NORMALS_ARS5_ZIGGURAT256);
    check_independence(ROTEQ_NORMALS_ARS5_ZIGGURAT256);
}

/* Box i's wedge points (x in [xnext, W], from words with index i): half with a uniform u drawn
 * at random, half aimed at the curve (u within 2^-20..2^-60 of c(x), where the exact test is
 * closest to the bounds). Wherever zig_fix's bounds decide, they must say what the exact test of
 * zig_slow says; and they must decide almost every random point. */
static void check_wedge(const zig_table *t, int per_box)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    size_t random = 0, decided_random = 0, decided = 0, wrong = 0;
    for (unsigned i = 1; i < t->boxes; i++)
        for (int n = 0; n < per_box; n++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            uint64_t hi = s;
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            /* the top bits just below 1 make x land in the wedge (K[i] 2^-32 of the range up) */
            uint64_t top = (t->kw[i] >> 32) + (hi >> 32) % ((1ull << 32) - (t->kw[i] >> 32));
            uint64_t w = top << 32 | (hi & 0xfffff000u) | i;
            double x = zig_x(t, w, i);
            if (x < t->xnext[i])
                continue;
            double df = t->f[i + 1] - t->f[i], uc = (exp(-0.5 * x * x) - t->f[i]) / df;
            double u = zig_u01(s);
            if (n & 1) {
                if (!(uc > 0.0 && uc < 1.0))
                    continue;
                u = uc + ldexp((double)(s % 2001) - 1000.0, -(int)(30 + (s >> 40) % 40));
                if (!(u > 0.0 && u < 1.0))
                    continue;
            } else {
                random++;
            }
            uint64_t uw = (uint64_t)(u * 0x1p52) << 12;
            const zig_wedge_box *g = &t->wedge[i];
            double tt = x - g->xn;
            double D = (zig_u01(uw) - (double)g->a) - tt * ((double)g->b + (double)g->c * tt);
            int acc = D < (double)g->lo;
            int rej = D > (double)g->hi;
            double y = t->f[i] + zig_u01(uw) * df;
            int exact = y < 1.0 && nrm_log(y) < -0.5 * x * x;
            decided += (size_t)(acc | rej);
            decided_random += (size_t)((acc | rej) & !(n & 1));
            wrong += (size_t)((acc | rej) & (acc != exact));
        }
    printf("# %u boxes: %zu wedge points decided by the bounds, %zu disagree with the exact test; "
           "%zu of %zu random ones decided\n",
           (unsigned)t->boxes, decided, wrong, decided_random, random);
    assert_int_equal(wrong, 0);
    assert_true(decided_random > 0.99 * (double)random);
    (void)zig_slow;
}

static void test_wedge_bounds(void **state)
{
    (void)state;
    check_wedge(&zig2048, 400);
    check_wedge(&zig256, 3200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_moments_ks), cmocka_unit_test(test_every_kind_moments_ks),
        cmocka_unit_test(test_engine_tails),      cmocka_unit_test(test_engine_independence),
        cmocka_unit_test(test_zig256_full),       cmocka_unit_test(test_wedge_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
