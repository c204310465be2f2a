/* test_muon.c - Muon's theory (theory/muon.c) and its `roteq theory --optimizer muon` command:
 * the adjusted learning rates, the Newton-Schulz map, the spectral constants against a direct
 * quadrature of the quarter-circle law, the limits where the predictions must agree, and bad
 * input. The measured accuracy against simulation is in theory/README.md ("Muon"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_muon.h"
#include "roteq_test.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static roteq_muon_hparams hp_of(size_t r, size_t c, double m, int nesterov)
{
    roteq_muon_hparams hp = roteq_muon_defaults();
    hp.lr = 0.02, hp.weight_decay = 0.1, hp.momentum = m, hp.nesterov = nesterov;
    hp.rows = r, hp.cols = c;
    return hp;
}

static void test_adjusted_lr(void **state)
{
    (void)state;
    roteq_muon_hparams hp = hp_of(128, 32, 0.9, 1);
    assert_close(roteq_muon_adjusted_lr(&hp, 0.02), 0.04, 1e-15);
    hp.rows = 32, hp.cols = 128;
    assert_close(roteq_muon_adjusted_lr(&hp, 0.02), 0.02, 1e-15);
    hp.adjust = ROTEQ_MUON_ADJUST_MATCH_RMS_ADAMW;
    assert_close(roteq_muon_adjusted_lr(&hp, 0.02), 0.2 * 0.02 * sqrt(128.0), 1e-15);
}

static void test_ns_poly(void **state)
{
    (void)state;
    double t = 0.3, p = 3.4445 * t - 4.7750 * t * t * t + 2.0315 * pow(t, 5);
    assert_close(roteq_muon_ns_poly(t, 1), p, 1e-15);
    assert_close(roteq_muon_ns_poly(t, 2), 3.4445 * p - 4.7750 * p * p * p + 2.0315 * pow(p, 5),
                 1e-15);
    /* Small singular values grow by a^k; moderate ones land in the band around 1. */
    assert_close(roteq_muon_ns_poly(1e-9, 5), 1e-9 * pow(3.4445, 5), 1e-6);
    for (double x = 0.05; x < 1; x += 0.05) {
        double y = roteq_muon_ns_poly(x, 5);
        assert_true(y > 0.65 && y < 1.25);
    }
}

/* Square matrices: the singular values of X/sqrt(n) follow the quarter-circle law
 * sqrt(4 - s^2)/pi on [0, 2] and the iteration sees t = s/sqrt(n). A plain midpoint rule in s
 * (a different route from the code's Marchenko-Pastur substitution). */
static void test_spectrum_square(void **state)
{
    (void)state;
    size_t n = 64;
    int N = 400000;
    double h = 2.0 / N, e2 = 0, e1 = 0;
    for (int i = 0; i < N; i++) {
        double s = (i + 0.5) * h, w = sqrt(4 - s * s) / M_PI * h;
        double phi = roteq_muon_ns_poly(s / sqrt((double)n), 5);
        e2 += w * phi * phi, e1 += w * phi * s / sqrt((double)n);
    }
    double q, lin;
    roteq_muon_spectrum(n, n, 5, &q, &lin);
    assert_close(q, e2, 1e-5);
    assert_close(lin, e1, 1e-5);
    /* Tall matrices: the same Frobenius-normalised map on the transpose, shared by more rows. */
    double q2, lin2, q3, lin3;
    roteq_muon_spectrum(128, 64, 5, &q2, &lin2);
    roteq_muon_spectrum(64, 128, 5, &q3, &lin3);
    assert_close(q2, q3 * 64 / 128, 1e-12);
    assert_close(lin2, lin3, 1e-12);
}

/* The chaos weights sum to 1 (Parseval), the first is the linear share lin^2*cols/q, and for
 * square matrices they are the squared coefficients in the Chebyshev polynomials of the
 * second kind (orthonormal for the semicircle: the symmetrised quarter-circle law), computed
 * here by a different route (direct projection in the angle variable). */
static void test_chaos(void **state)
{
    (void)state;
    double w[ROTEQ_MUON_CHAOS_TERMS], q, lin, sum = 0;
    assert_int_equal(roteq_muon_chaos(64, 64, 5, w, ROTEQ_MUON_CHAOS_TERMS), 0);
    roteq_muon_spectrum(64, 64, 5, &q, &lin);
    for (int j = 0; j < ROTEQ_MUON_CHAOS_TERMS; j++)
        sum += w[j];
    assert_close(sum, 1.0, 1e-9);
    assert_close(w[0], lin * lin * 64 / q, 1e-6);
    int N = 200000;
    double tot = 0, c[4] = {0, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        double th = (i + 0.5) * M_PI / N, x = 2 * cos(th);
        double m = 2 / M_PI * sin(th) * sin(th) * (M_PI / N);
        double f = (x > 0 ? 1 : -1) * roteq_muon_ns_poly(fabs(x) / 8, 5);
        tot += m * f * f;
        for (int j = 0; j < 4; j++) /* U_k(x/2) = sin((k+1) th)/sin th, k = 2j+1 */
            c[j] += m * f * sin((2 * j + 2) * th) / sin(th);
    }
    for (int j = 0; j < 4; j++)
        assert_close(w[j], c[j] * c[j] / tot, 2e-4);
    /* f(0) = 0, f(1) = 1, and f(0.9) as measured by Monte Carlo (0.7596 +- 0.002 over 200 pairs
     * of 64x64 matrices, theory/README.md) */
    assert_close(roteq_muon_lag_corr(0.0, w, ROTEQ_MUON_CHAOS_TERMS), 0.0, 0);
    assert_close(roteq_muon_lag_corr(1.0, w, ROTEQ_MUON_CHAOS_TERMS), 1.0, 1e-9);
    assert_close(roteq_muon_lag_corr(0.9, w, ROTEQ_MUON_CHAOS_TERMS), 0.7596, 0.005);
    /* Wide matrices are close to linear. */
    assert_int_equal(roteq_muon_chaos(64, 256, 5, w, ROTEQ_MUON_CHAOS_TERMS), 0);
    assert_true(w[0] > 0.9);
}

static void test_predictions(void **state)
{
    (void)state;
    roteq_muon_equilibrium b, p, l;
    /* Momentum 0: best is the plain form with the exact decay factor. */
    roteq_muon_hparams hp = hp_of(48, 64, 0.0, 1);
    assert_int_equal(roteq_muon_equilibrium_of(&hp, ROTEQ_MUON_PRED_BEST, &b), 0);
    assert_int_equal(roteq_muon_equilibrium_of(&hp, ROTEQ_MUON_PRED_PLAIN, &p), 0);
    double d = 1 - 0.002;
    assert_close(b.norm, sqrt(0.02 * 0.02 * b.q_row / (1 - d * d)), 1e-12);
    assert_close(p.norm, sqrt(0.02 * 0.02 * b.q_row / 0.004), 1e-12);
    assert_close(p.angular_update, sqrt(0.004), 1e-12);
    assert_true(b.exact && p.exact);
    assert_close(b.matrix_norm, sqrt(48.0) * b.norm, 1e-12);
    /* Momentum correlates the updates: the norm grows several-fold, the rotation slows. */
    hp = hp_of(64, 64, 0.95, 1);
    assert_int_equal(roteq_muon_equilibrium_of(&hp, ROTEQ_MUON_PRED_BEST, &b), 0);
    assert_int_equal(roteq_muon_equilibrium_of(&hp, ROTEQ_MUON_PRED_PLAIN, &p), 0);
    assert_int_equal(roteq_muon_equilibrium_of(&hp, ROTEQ_MUON_PRED_LIONLIKE, &l), 0);
    assert_true(b.norm > 4 * p.norm && b.angular_update < p.angular_update / 4);
    assert_close(l.norm * l.angular_update, 0.02 * sqrt(l.q_row), 1e-12);
    assert_false(b.exact);
    /* A tall matrix with "original" has the same rows as its wide transpose. */
    roteq_muon_hparams t = hp_of(128, 64, 0.9, 0), w = hp_of(64, 128, 0.9, 0);
    roteq_muon_equilibrium bt, bw;
    assert_int_equal(roteq_muon_equilibrium_of(&t, ROTEQ_MUON_PRED_BEST, &bt), 0);
    assert_int_equal(roteq_muon_equilibrium_of(&w, ROTEQ_MUON_PRED_BEST, &bw), 0);
    assert_close(bt.norm, bw.norm, 1e-12);
}

/* The transient's fixed point is best's closed form (they share only the chaos weights); from a
 * norm 3x too large it decays at about eta*lambda per step. */
static void test_transient(void **state)
{
    (void)state;
    roteq_muon_hparams hp = hp_of(64, 128, 0.95, 1);
    roteq_muon_equilibrium b;
    assert_int_equal(roteq_muon_equilibrium_of(&hp, ROTEQ_MUON_PRED_BEST, &b), 0);
    roteq_muon_transient *tr = roteq_muon_transient_alloc(&hp, 3 * b.norm);
    assert_non_null(tr);
    double n = 0, a = 0, first = 0;
    for (int t = 1; t <= 40000; t++) {
        assert_int_equal(roteq_muon_transient_step(tr, 0.02, 0.1, &n, &a), 0);
        if (t == 100)
            first = n;
    }
    assert_close(n, b.norm, 1e-10);
    assert_close(a, b.angular_update, 1e-10);
    /* after 100 steps: the decay d^200 of A from 9x, plus at most (1 - d^200) of the
     * equilibrium's A from the updates (less while their correlations build up) */
    double d200 = pow(1 - 0.002, 200), r = first / (3 * b.norm);
    assert_true(r > sqrt(d200) && r < sqrt(d200 + (1 - d200) / 9));
    assert_int_equal(roteq_muon_transient_step(tr, 20, 0.1, &n, &a), ROTEQ_EINVAL);
    roteq_muon_transient_free(tr);
    assert_null(roteq_muon_transient_alloc(&hp, -1));
}

static void test_validate(void **state)
{
    (void)state;
    roteq_muon_hparams hp = hp_of(8, 8, 0.9, 1);
    assert_int_equal(roteq_muon_validate(&hp), 0);
    hp.momentum = 1.0;
    assert_int_equal(roteq_muon_validate(&hp), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "momentum"));
    hp = hp_of(1, 1, 0.9, 1);
    assert_int_equal(roteq_muon_validate(&hp), ROTEQ_EINVAL);
    hp = hp_of(8, 8, 0.9, 1);
    hp.ns_steps = 0;
    assert_int_equal(roteq_muon_validate(&hp), ROTEQ_EINVAL);
    hp.ns_steps = 5, hp.weight_decay = 0;
    assert_int_equal(roteq_muon_validate(&hp), ROTEQ_EINVAL);
    roteq_muon_adjust a;
    assert_int_equal(roteq_muon_adjust_parse("match_rms_adamw", &a), 0);
    assert_int_equal(a, ROTEQ_MUON_ADJUST_MATCH_RMS_ADAMW);
    assert_int_equal(roteq_muon_adjust_parse("spectral", &a), ROTEQ_ENOTFOUND);
}

static double json_number(const char *json, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : (double)NAN;
}

static void test_cli(void **state)
{
    (void)state;
    char *out, *err;
    const char *args[] = {"theory",      "--optimizer",     "muon",       "--lr",
                          "0.02",        "--weight-decay",  "0.1",        "--shape",
                          "128x64",      "--no-nesterov",   "--ns-steps", "10",
                          "--adjust-lr", "match_rms_adamw", "--format",   "json",
                          NULL};
    assert_int_equal(roteq_test_run(args, NULL, &out, &err), 0);
    roteq_muon_hparams hp = hp_of(128, 64, 0.95, 0);
    hp.ns_steps = 10, hp.adjust = ROTEQ_MUON_ADJUST_MATCH_RMS_ADAMW;
    roteq_muon_equilibrium e[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(roteq_muon_equilibrium_of(&hp, (roteq_muon_prediction)i, &e[i]), 0);
    assert_close(json_number(out, "equilibrium_norm"), e[0].norm, 1e-14);
    assert_close(json_number(out, "angular_update"), e[0].angular_update, 1e-14);
    assert_close(json_number(out, "equilibrium_norm_plain"), e[1].norm, 1e-14);
    assert_close(json_number(out, "angular_update_lionlike"), e[2].angular_update, 1e-14);
    assert_close(json_number(out, "matrix_norm"), e[0].matrix_norm, 1e-14);
    assert_close(json_number(out, "matrix_angular_update"), e[0].matrix_angular_update, 1e-14);
    free(out), free(err);

    const char *bad[][8] = {
        {"theory", "--optimizer", "muon", "--lr", "0.02", NULL}, /* no shape */
        {"theory", "--optimizer", "muon", "--shape", "64by64", NULL},
        {"theory", "--optimizer", "muon", "--shape", "8x8", "--momentum", "1", NULL},
        {"theory", "--optimizer", "muon", "--shape", "8x8", "--adjust-lr", "x", NULL},
        {"theory", "--optimizer", "muon", "--shape", "8x8", "--beta1", "0.9", NULL},
    };
    const char *want[] = {"--shape", "--shape", "momentum", "--adjust-lr", "beta1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(roteq_test_run(bad[i], NULL, &out, &err), 2);
        if (!strstr(err, want[i]))
            fail_msg("case %zu: stderr '%s' does not name %s", i, err, want[i]);
        assert_int_equal(strchr(err, '\n') - err + 1, (long)strlen(err)); /* one line */
        free(out), free(err);
    }
    const char *traj[] = {"theory",    "--optimizer", "muon", "--shape", "16x32", "--lr",
                          "0.02",      "--steps",     "50",   "--every", "25",    "--schedule",
                          "warmup:10", "--format",    "csv",  NULL};
    assert_int_equal(roteq_test_run(traj, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "step,lr,weight_decay,norm,angular_update\n25,"));
    assert_non_null(strstr(out, "\n50,0.02"));
    free(out), free(err);
    const char *list[] = {"theory", "--list", NULL};
    assert_int_equal(roteq_test_run(list, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "muon"));
    free(out), free(err);
}

/* Muon is a family in the list (families/muon.c): found by name, matrix granularity, needs the
 * shape, its formula and hyperparameters in the type, its matrix hooks the functions above; the
 * per-neuron drivers refuse it with a message instead of predicting without the shape. */
static void test_family(void **state)
{
    (void)state;
    const roteq_optimizer_type *o = roteq_optimizer_lookup("muon");
    assert_non_null(o);
    assert_int_equal(o->family->granularity, ROTEQ_GRAN_MATRIX);
    assert_int_equal(o->needs, ROTEQ_NEED_SHAPE);
    assert_string_equal(roteq_theory_formula(o), roteq_muon_formula());
    const roteq_matrix_hooks *mx = o->family->matrix;
    assert_non_null(mx);
    roteq_muon_hparams d = roteq_muon_defaults(), m = mx->defaults();
    assert_true(o->defaults.lr == d.lr && o->defaults.weight_decay == d.weight_decay &&
                o->defaults.momentum == d.momentum && o->defaults.nesterov == (double)d.nesterov);
    assert_int_equal(mx->nextra, 2);
    assert_string_equal(mx->extra[0].key, "ns_steps");
    assert_string_equal(mx->extra[1].key, "adjust_lr");
    m.lr = 0.02, m.rows = 64, m.cols = 32;
    for (int k = 0; k < ROTEQ_MUON_PRED_COUNT; k++) {
        roteq_muon_equilibrium a, b;
        assert_int_equal(mx->equilibrium(&m, (roteq_muon_prediction)k, &a), ROTEQ_OK);
        assert_int_equal(roteq_muon_equilibrium_of(&m, (roteq_muon_prediction)k, &b), ROTEQ_OK);
        assert_memory_equal(&a.norm, &b.norm, sizeof a.norm);
        assert_memory_equal(&a.matrix_norm, &b.matrix_norm, sizeof a.norm);
    }
    m.rows = 0;
    assert_int_equal(mx->validate(&m), ROTEQ_EINVAL);
    roteq_hparams hp = roteq_optimizer_defaults(o);
    roteq_setting s = {64, NAN};
    roteq_equilibrium eq;
    assert_int_not_equal(roteq_theory_equilibrium(o, &hp, &s, ROTEQ_PRED_BEST, &eq), ROTEQ_OK);
    assert_null(roteq_transient_alloc(o, &hp, &s, 1.0));
    assert_non_null(strstr(roteq_error_message(), "whole matrices"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adjusted_lr),
        cmocka_unit_test(test_ns_poly),
        cmocka_unit_test(test_spectrum_square),
        cmocka_unit_test(test_chaos),
        cmocka_unit_test(test_predictions),
        cmocka_unit_test(test_transient),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_family),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
