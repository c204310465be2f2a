/* test_transient.c - the expected-value recurrences: their fixed points against independently
 * computed equilibria, their trajectories against a direct Monte Carlo random walk done here
 * (fixed seeds, tolerances in standard errors), the steps to equilibrium, the k-step angle,
 * and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Run the transient for `steps` constant steps; return the last norm and angle. */
static void run_const(const roteq_optimizer_type *opt, const roteq_hparams *hp, size_t dim,
                      double g, double init, long steps, double *norm, double *angle)
{
    roteq_setting s = {dim, g};
    roteq_transient *tr = roteq_transient_alloc(opt, hp, &s, init);
    assert_non_null(tr);
    for (long t = 0; t < steps; t++)
        assert_int_equal(roteq_transient_step(tr, hp->lr, hp->weight_decay, norm, angle), 0);
    roteq_transient_free(tr);
}

static void test_fixed_points(void **state)
{
    (void)state;
    /* eta 0.002385, lambda 0.3121, C 384, G 7.913 as in test_equilibrium.c. The recurrences
     * keep the discrete-time terms the closed forms drop, so they agree with them to
     * O(eta*lambda/(1-beta)) only; where an exact discrete value is known it is checked to
     * 1e-9. */
    const double eta = 0.002385, lam = 0.3121, G = 7.913;
    const size_t C = 384;
    double norm, angle;

    /* Plain SGD: A^2 = G^2 eta / (lambda (2 - eta lambda)) exactly (README). */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_sgd);
    hp.lr = eta, hp.weight_decay = lam;
    run_const(&roteq_sgd, &hp, C, G, 3.0, 40000, &norm, &angle);
    assert_close(norm, pow(G * G * eta / (lam * (2 - eta * lam)), 0.25), 1e-9);
    /* tan(angle) = eta ||g|| / ((1 - eta lambda) ||w||) = sqrt(eta lambda (2 - eta lambda)) /
     * (1 - eta lambda) (README). */
    assert_close(angle, atan(sqrt(eta * lam * (2 - eta * lam)) / (1 - eta * lam)), 1e-9);

    /* AdamW: mpmath sum over n of c_n^2 (the decayed momentum filter) gives 1.209115257675442;
     * the paper's first-order form is 1.2112894138960339. */
    hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = eta, hp.weight_decay = lam, hp.beta1 = 0.83, hp.beta2 = 0.994, hp.eps = 0.0;
    run_const(&roteq_adamw, &hp, C, NAN, 0.5, 40000, &norm, &angle);
    assert_close(norm, 1.209115257675442, 1e-9);
    roteq_setting s = {C, NAN};
    roteq_equilibrium eq;
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &s, 0, &eq), 0);
    assert_close(angle, eq.angular_update, 4 * eta * lam / (1 - hp.beta1));

    /* The SGD family and Adam+L2 against their closed forms, to first order. */
    const roteq_optimizer_type *fam[] = {&roteq_sgdm, &roteq_nesterov, &roteq_adam_l2};
    for (int i = 0; i < 3; i++) {
        hp = roteq_optimizer_defaults(fam[i]);
        hp.lr = fam[i] == &roteq_adam_l2 ? 1e-3 : 0.1;
        hp.weight_decay = fam[i] == &roteq_adam_l2 ? 0.05 : 0.01;
        if (fam[i] == &roteq_sgdm)
            hp.dampening = 0.35;
        run_const(fam[i], &hp, 128, sqrt(127.0), 2.0, 200000, &norm, &angle);
        s = (roteq_setting){128, sqrt(127.0)};
        assert_int_equal(roteq_theory_equilibrium(fam[i], &hp, &s, 0, &eq), 0);
        assert_close(norm, eq.norm, 0.005);
        assert_close(angle, eq.angular_update, 0.005);
        /* k = 1 uses the analytic stationary state: it must equal the recurrence's limit. */
        assert_close(roteq_theory_kstep_angle(fam[i], &hp, &s, 1), angle, 1e-8);
    }

    /* Lion: the recurrence (exact arcsine on the ring of recent lags, power series beyond)
     * converges to the closed-form lag sums (direct arcsine at every lag), including a case
     * with rho_1 = 0.85 where the ring holds many lags. */
    const double betas[3][2] = {{0.83, 0.994}, {0.95, 0.98}, {0.0, 0.0}};
    for (int i = 0; i < 3; i++) {
        hp = roteq_optimizer_defaults(&roteq_lion);
        hp.lr = 1e-3, hp.weight_decay = 1.0, hp.beta1 = betas[i][0], hp.beta2 = betas[i][1];
        run_const(&roteq_lion, &hp, C, NAN, 0.3, 40000, &norm, &angle);
        s = (roteq_setting){C, NAN};
        assert_int_equal(roteq_theory_equilibrium(&roteq_lion, &hp, &s, 0, &eq), 0);
        assert_close(norm, eq.norm, 1e-10);
        assert_close(angle, eq.angular_update, 1e-10);
        assert_close(roteq_theory_kstep_angle(&roteq_lion, &hp, &s, 1), angle, 1e-9);
    }
}

static void test_stationary(void **state)
{
    (void)state;
    /* The public fixed point equals the recurrence's limit and the independent values. */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = 0.002385, hp.weight_decay = 0.3121, hp.beta1 = 0.83, hp.beta2 = 0.994, hp.eps = 0;
    roteq_setting s = {384, NAN};
    roteq_equilibrium e, b;
    assert_int_equal(roteq_theory_stationary(&roteq_adamw, &hp, &s, &e), 0);
    assert_close(e.norm, 1.209115257675442, 1e-12); /* mpmath, test_fixed_points */
    assert_true(e.exact);
    hp = roteq_optimizer_defaults(&roteq_lion);
    hp.lr = 1e-3, hp.weight_decay = 0.7;
    assert_int_equal(roteq_theory_stationary(&roteq_lion, &hp, &s, &e), 0);
    assert_int_equal(roteq_theory_equilibrium(&roteq_lion, &hp, &s, ROTEQ_PRED_BEST, &b), 0);
    assert_close(e.norm, b.norm, 1e-14);
    assert_close(e.angular_update, b.angular_update, 1e-14);
    hp = roteq_optimizer_defaults(&roteq_sgd);
    hp.lr = 0.01, hp.weight_decay = 0.1;
    s.grad_norm = 2.0;
    assert_int_equal(roteq_theory_stationary(&roteq_sgd, &hp, &s, &e), 0);
    assert_close(e.norm, pow(4.0 * 0.01 / (0.1 * (2 - 1e-3)), 0.25), 1e-14);
    s.grad_norm = NAN; /* rotation still known */
    assert_int_equal(roteq_theory_stationary(&roteq_sgd, &hp, &s, &e), 0);
    assert_true(isnan(e.norm));
    assert_close(e.angular_update, atan(sqrt(1e-3 * (2 - 1e-3)) / (1 - 1e-3)), 1e-12);
    hp = roteq_optimizer_defaults(&roteq_rv_lion);
    hp.weight_decay = 0.5;
    assert_int_equal(roteq_theory_stationary(&roteq_rv_lion, &hp, &s, &e), 0);
    assert_int_equal(roteq_theory_equilibrium(&roteq_rv_lion, &hp, &s, 0, &b), 0);
    assert_close(e.angular_update, b.angular_update, 1e-15);
    assert_int_equal(roteq_theory_stationary(NULL, &hp, &s, &e), ROTEQ_EINVAL);
    hp.beta1 = 2;
    assert_int_equal(roteq_theory_stationary(&roteq_rv_lion, &hp, &s, &e), ROTEQ_EINVAL);
}

/* ---- Monte Carlo: a direct float64 random walk of N neurons (PyTorch update rules) ---- */

typedef struct {
    uint64_t s[4];
} rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(rng *r) /* xoshiro256** */
{
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return res;
}

static void seed_rng(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) { /* splitmix64 */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

static double normal(rng *r)
{
    double u = ((double)(next_u64(r) >> 11) + 0.5) * 0x1.0p-53;
    double v = ((double)(next_u64(r) >> 11) + 0.5) * 0x1.0p-53;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* One neuron, T steps of SGDM (heavy ball, dampening) or AdamW under schedules; records the
 * squared norm and squared angle after each step. Gradients: standard normal coordinates
 * projected orthogonal to w and divided by ||w|| (E||g~||^2 = C - 1). */
static void walk(int adam, const roteq_hparams *hp, const roteq_schedule *ls,
                 const roteq_schedule *ws, size_t C, double init, long T, rng *r, double *n2,
                 double *a2)
{
    double *w = calloc(C, sizeof *w), *b = calloc(C, sizeof *b), *v = calloc(C, sizeof *v);
    double *g = calloc(C, sizeof *g), *wn = calloc(C, sizeof *wn);
    assert_true(w && b && v && g && wn);
    for (size_t i = 0; i < C; i++)
        w[i] = normal(r);
    double s0 = init / sqrt(dot(w, w, C));
    for (size_t i = 0; i < C; i++)
        w[i] *= s0;
    for (long t = 1; t <= T; t++) {
        double eta = hp->lr * roteq_schedule_factor(ls, t);
        double lam = hp->weight_decay * roteq_schedule_factor(ws, t);
        double ww = dot(w, w, C);
        for (size_t i = 0; i < C; i++)
            g[i] = normal(r);
        double proj = dot(g, w, C) / ww, inv = 1 / sqrt(ww);
        for (size_t i = 0; i < C; i++)
            g[i] = (g[i] - proj * w[i]) * inv;
        for (size_t i = 0; i < C; i++) {
            if (adam) {
                b[i] = hp->beta1 * b[i] + (1 - hp->beta1) * g[i];
                v[i] = hp->beta2 * v[i] + (1 - hp->beta2) * g[i] * g[i];
                double u = b[i] / (1 - pow(hp->beta1, (double)t)) /
                           (sqrt(v[i] / (1 - pow(hp->beta2, (double)t))) + hp->eps);
                wn[i] = (1 - eta * lam) * w[i] - eta * u;
            } else {
                double gp = g[i] + lam * w[i];
                b[i] = t == 1 ? gp : hp->momentum * b[i] + (1 - hp->dampening) * gp;
                wn[i] = w[i] - eta * b[i];
            }
        }
        double nn = dot(wn, wn, C), c = dot(w, wn, C) / sqrt(ww * nn);
        double sn = 0; /* chord between unit vectors: stable for tiny angles */
        for (size_t i = 0; i < C; i++) {
            double dlt = wn[i] / sqrt(nn) - w[i] / sqrt(ww);
            sn += dlt * dlt;
        }
        (void)c;
        double ang = 2 * asin(sqrt(sn) / 2);
        n2[t - 1] = nn;
        a2[t - 1] = ang * ang;
        memcpy(w, wn, C * sizeof *w);
    }
    free(w), free(b), free(v), free(g), free(wn);
}

/* Compare sqrt(mean over neurons of ||w_t||^2) and the RMS angle with the transient at a few
 * steps. Tolerance: 4 standard errors across neurons plus the model's O(1/C) mean-field
 * allowance (1/C relative, stated in the README). */
static void check_mc(int adam, roteq_hparams hp, const char *lsched, const char *wsched,
                     double init, uint64_t seed)
{
    const size_t C = 256, N = 24;
    const long T = 500;
    roteq_schedule ls, ws;
    assert_int_equal(roteq_schedule_parse(lsched, &ls), 0);
    assert_int_equal(roteq_schedule_parse(wsched, &ws), 0);
    double *n2 = calloc((size_t)T * N, sizeof *n2), *a2 = calloc((size_t)T * N, sizeof *a2);
    assert_true(n2 && a2);
    rng r;
    seed_rng(&r, seed);
    for (size_t k = 0; k < N; k++)
        walk(adam, &hp, &ls, &ws, C, init, T, &r, n2 + k * T, a2 + k * T);

    const roteq_optimizer_type *opt = adam ? &roteq_adamw : &roteq_sgdm;
    roteq_setting s = {C, sqrt((double)C - 1)};
    roteq_transient *tr = roteq_transient_alloc(opt, &hp, &s, init);
    assert_non_null(tr);
    const long at[] = {1, 2, 5, 20, 60, 150, 300, 500};
    size_t next = 0;
    for (long t = 1; t <= T; t++) {
        double pn, pa;
        assert_int_equal(roteq_transient_step(tr, hp.lr * roteq_schedule_factor(&ls, t),
                                              hp.weight_decay * roteq_schedule_factor(&ws, t), &pn,
                                              &pa),
                         0);
        if (next < sizeof at / sizeof at[0] && t == at[next]) {
            next++;
            double m = 0, q = 0, am = 0, aq = 0;
            for (size_t k = 0; k < N; k++) {
                double x = n2[k * T + t - 1], y = a2[k * T + t - 1];
                m += x, q += x * x, am += y, aq += y * y;
            }
            m /= N, am /= N;
            double se_n2 = sqrt((q / N - m * m) / (N - 1)),
                   se_a2 = sqrt((aq / N - am * am) / (N - 1));
            /* delta method for the square roots */
            double rn = sqrt(m), ra = sqrt(am);
            assert_within_se(rn, pn, se_n2 / (2 * rn) + pn / C, 4, seed);
            assert_within_se(ra, pa, se_a2 / (2 * ra) + pa / C, 4, seed);
        }
    }
    roteq_transient_free(tr);
    free(n2), free(a2);
}

static void test_monte_carlo(void **state)
{
    (void)state;
    /* AdamW from 3x the equilibrium norm under warmup + cosine: the norm decays at rate
     * eta*lambda while the update size follows Adam's bias-corrected moments. */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = 0.02, hp.weight_decay = 0.4, hp.beta1 = 0.9, hp.beta2 = 0.99;
    check_mc(1, hp, "warmup:50+cosine:450:0.1", "constant", 3 * sqrt(0.02 * 256 / 0.8), 11);
    /* SGD with momentum and dampening from a small norm (large early rotations), with a
     * weight-decay step schedule. */
    hp = roteq_optimizer_defaults(&roteq_sgdm);
    hp.lr = 0.05, hp.weight_decay = 0.05, hp.momentum = 0.8, hp.dampening = 0.2;
    check_mc(0, hp, "constant", "step:200:0.5", 1.5, 12);
}

static void test_steps_to_equilibrium(void **state)
{
    (void)state;
    /* Plain SGD from far above: with A >> A*, A_{t+1} ~ (1 - eta lambda)^2 A, so the norm falls
     * as (1 - eta lambda)^t until it nears A*; coming within 1% from 10x takes about
     * ln(10)/(eta lambda) steps plus the final approach. Bounds from that estimate. */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_sgd);
    hp.lr = 0.01, hp.weight_decay = 0.1; /* eta lambda = 1e-3 */
    roteq_setting s = {128, sqrt(127.0)};
    roteq_equilibrium eq;
    assert_int_equal(roteq_theory_equilibrium(&roteq_sgd, &hp, &s, 0, &eq), 0);
    long n = roteq_theory_steps_to_equilibrium(&roteq_sgd, &hp, &s, 10 * eq.norm, 0.01, 100000);
    assert_true(n > 2302 && n < 2302 + 3000);
    /* Starting closer takes fewer steps; a tighter tolerance more. */
    long n2 = roteq_theory_steps_to_equilibrium(&roteq_sgd, &hp, &s, 2 * eq.norm, 0.01, 100000);
    assert_true(n2 > 0 && n2 < n);
    long n3 = roteq_theory_steps_to_equilibrium(&roteq_sgd, &hp, &s, 2 * eq.norm, 0.001, 100000);
    assert_true(n3 > n2);
    /* Cross-check against a trajectory and its long-run limit: from step n on, norm and
     * angle stay within 1% of the limit; at step n - 1 one of them is not. */
    double lim_n, lim_a;
    run_const(&roteq_sgd, &hp, 128, sqrt(127.0), eq.norm, 200000, &lim_n, &lim_a);
    roteq_transient *tr = roteq_transient_alloc(&roteq_sgd, &hp, &s, 10 * eq.norm);
    assert_non_null(tr);
    for (long t = 1; t <= n + 20000; t++) {
        double norm, angle;
        assert_int_equal(roteq_transient_step(tr, hp.lr, hp.weight_decay, &norm, &angle), 0);
        double err = fmax(fabs(norm / lim_n - 1), fabs(angle / lim_a - 1));
        if (t == n - 1)
            assert_true(err > 0.01);
        if (t >= n)
            assert_true(err <= 0.01);
    }
    roteq_transient_free(tr);
    /* Not reachable in the budget: -1 with a message. */
    assert_int_equal(roteq_theory_steps_to_equilibrium(&roteq_sgd, &hp, &s, 10 * eq.norm, 0.01, 10),
                     -1);
    assert_non_null(strstr(roteq_error_message(), "not within"));
    /* Every optimizer reaches equilibrium from its closed-form norm. */
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++) {
        const roteq_optimizer_type *o = roteq_optimizers[i];
        roteq_hparams h = roteq_optimizer_defaults(o);
        h.lr = 1e-3, h.weight_decay = 0.5;
        if (o->family->granularity == ROTEQ_GRAN_MATRIX) {
            /* its transient needs the shape: the matrix hooks (tests/theory, muon) */
            assert_null(roteq_transient_alloc(o, &h, &s, NAN));
            assert_int_equal(roteq_error_status(), ROTEQ_EUNSUPPORTED);
            continue;
        }
        long k = roteq_theory_steps_to_equilibrium(o, &h, &s, NAN, 0.01, 1000000);
        if (k < 1)
            fail_msg("%s: %s", o->name, roteq_error_message());
    }
    /* Errors: a bad tolerance, and a given initial norm whose scale is unknown. */
    assert_int_equal(roteq_theory_steps_to_equilibrium(&roteq_sgd, &hp, &s, 1.0, 0.0, 10), -1);
    roteq_setting nog = {128, NAN};
    assert_int_equal(roteq_theory_steps_to_equilibrium(&roteq_sgd, &hp, &nog, 1.0, 0.01, 10), -1);
    assert_non_null(strstr(roteq_error_message(), "gradient norm"));
}

static void test_kstep(void **state)
{
    (void)state;
    /* Plain SGD updates are uncorrelated and w forgets at the decay rate: E<w_t, w_{t+k}> =
     * (1 - eta lambda)^k A exactly in the recurrence, so the angle is 2 asin(sqrt((1-d^k)/2))
     * = acos(d^k). */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_sgd);
    hp.lr = 0.01, hp.weight_decay = 0.1;
    roteq_setting s = {128, NAN};
    double d = 1 - 1e-3;
    const long ks[] = {1, 7, 100, 2500, 40000, 100000, 3000000};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        assert_close(roteq_theory_kstep_angle(&roteq_sgd, &hp, &s, ks[i]),
                     acos(pow(d, (double)ks[i])), 1e-9);
    /* Long gaps by the closed forms (time independent of k): acos(d^k) still, at a slow decay
     * where 1e8 steps have not forgotten the start. */
    hp.lr = 1e-5, hp.weight_decay = 1e-4;
    const long long_ks[] = {100000000L, 1000000000L, 1000000000000L, 1000000000000000L};
    for (size_t i = 0; i < sizeof long_ks / sizeof long_ks[0]; i++)
        assert_close(roteq_theory_kstep_angle(&roteq_sgd, &hp, &s, long_ks[i]),
                     acos(exp((double)long_ks[i] * log1p(-1e-9))), 1e-9);
    /* Momentum correlates successive updates, so k-step angles grow faster than sqrt(k). */
    hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = 1e-4, hp.weight_decay = 0.1;
    double a1 = roteq_theory_kstep_angle(&roteq_adamw, &hp, &s, 1);
    double a400 = roteq_theory_kstep_angle(&roteq_adamw, &hp, &s, 400);
    /* AdamW momentum: summing the lag correlations beta1^|i-j| of the updates over a window of
     * k steps gives k (1+b)/(1-b) - 2b (1-b^k)/(1-b)^2; with the per-step update squared
     * angle theta^2: angle_k^2 ~ theta^2 * that, to first order in eta lambda k. */
    double b = 0.9, k = 400, th = a1;
    double sum = k * (1 + b) / (1 - b) - 2 * b * (1 - pow(b, k)) / ((1 - b) * (1 - b));
    assert_close(a400, th * sqrt(sum), 0.05);
    /* Long gaps forget the start: the angle approaches pi/2. */
    assert_close(roteq_theory_kstep_angle(&roteq_adamw, &hp, &s, 2000000), M_PI / 2, 1e-6);
    /* RV variants move like their base optimizer. */
    assert_close(roteq_theory_kstep_angle(&roteq_rv_adamw, &hp, &s, 400), a400, 1e-12);
    /* Errors. */
    assert_true(isnan(roteq_theory_kstep_angle(&roteq_adamw, &hp, &s, 0)));
    assert_true(isnan(roteq_theory_kstep_angle(&roteq_adam_l2, &hp, &s, 5)));
}

/* Beyond 65536 steps the k-step angle comes from closed forms (matrix powers of the SGD and Adam
 * recurrences, Lion's lag sum taken over m instead of k): they continue the step-by-step
 * recurrence smoothly (second differences across the switch as small as on either side), grow
 * with k, and reach pi/2 for gaps of 1e12 and 1e15 steps at once. */
static void test_kstep_long_gaps(void **state)
{
    (void)state;
    const roteq_optimizer_type *opts[] = {&roteq_sgdm,    &roteq_nesterov, &roteq_adamw,
                                          &roteq_adam_l2, &roteq_lion,     &roteq_rv_lion};
    roteq_setting s = {256, 3.0};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        roteq_hparams hp = roteq_optimizer_defaults(opts[i]);
        hp.lr = 1e-6, hp.weight_decay = 1e-3;
        double a[4];
        for (int j = 0; j < 4; j++)
            a[j] = roteq_theory_kstep_angle(opts[i], &hp, &s, 65534 + j);
        double d1 = a[1] - a[0], d2 = a[2] - a[1], d3 = a[3] - a[2];
        if (!(d1 > 0 && d2 > 0 && d3 > 0 && fabs((d3 - d2) - (d2 - d1)) < 1e-6 * d2))
            fail_msg("%s: angles %.17g %.17g %.17g %.17g around 65536 steps", opts[i]->name, a[0],
                     a[1], a[2], a[3]);
        double prev = a[3];
        const long ks[] = {1000000L, 100000000L, 1000000000000L, 1000000000000000L};
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
            double x = roteq_theory_kstep_angle(opts[i], &hp, &s, ks[j]);
            if (!(x >= prev - 1e-12 && x <= M_PI / 2 + 1e-12))
                fail_msg("%s: k = %ld: angle %.17g after %.17g", opts[i]->name, ks[j], x, prev);
            prev = x;
        }
        assert_close(prev, M_PI / 2, 1e-9);
    }
}

static void test_unknown_scales(void **state)
{
    (void)state;
    /* Without ||g~|| the SGD trajectory from the equilibrium norm still has angles (the
     * recurrence is scale-free) but no norms; from a given norm neither is known. */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_sgdm);
    hp.lr = 0.1, hp.weight_decay = 0.01;
    roteq_setting s = {128, NAN};
    double norm, angle;
    run_const(&roteq_sgdm, &hp, 128, NAN, NAN, 5, &norm, &angle);
    assert_true(isnan(norm));
    assert_true(angle > 0);
    double a_known;
    run_const(&roteq_sgdm, &hp, 128, 4.2, NAN, 5, &norm, &a_known);
    assert_close(angle, a_known, 1e-12);
    run_const(&roteq_sgdm, &hp, 128, NAN, 2.0, 5, &norm, &angle);
    assert_true(isnan(norm) && isnan(angle));
    /* RV: norm held at the initial value, angle the target. */
    hp = roteq_optimizer_defaults(&roteq_rv_adamw);
    run_const(&roteq_rv_adamw, &hp, 128, NAN, 2.5, 3, &norm, &angle);
    assert_close(norm, 2.5, 0);
    assert_close(angle, sqrt(2 * hp.lr * hp.weight_decay * 0.1 / 1.9), 1e-14);
    (void)s;
}

static void test_errors(void **state)
{
    (void)state;
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    roteq_setting s = {64, NAN};
    assert_null(roteq_transient_alloc(NULL, &hp, &s, 1.0));
    assert_null(roteq_transient_alloc(&roteq_adamw, &hp, &s, -1.0));
    assert_non_null(strstr(roteq_error_message(), "init_norm"));
    s.grad_norm = 0.0;
    assert_null(roteq_transient_alloc(&roteq_adamw, &hp, &s, 1.0));
    s.grad_norm = NAN;
    hp.beta2 = 1.0;
    assert_null(roteq_transient_alloc(&roteq_adamw, &hp, &s, 1.0));
    hp.beta2 = 0.999;
    roteq_transient *tr = roteq_transient_alloc(&roteq_adamw, &hp, &s, 1.0);
    assert_non_null(tr);
    double n, a;
    assert_int_equal(roteq_transient_step(tr, -1.0, 0.1, &n, &a), ROTEQ_EINVAL);
    assert_true(isnan(n) && isnan(a));
    assert_int_equal(roteq_transient_step(tr, 1e-3, NAN, &n, &a), ROTEQ_EINVAL);
    /* lr or weight decay 0 (end of a cosine schedule) are valid steps. */
    assert_int_equal(roteq_transient_step(tr, 0.0, 0.1, &n, &a), 0);
    assert_close(n, 1.0, 0);
    roteq_transient_free(tr);
    roteq_transient_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_points),   cmocka_unit_test(test_stationary),
        cmocka_unit_test(test_monte_carlo),    cmocka_unit_test(test_steps_to_equilibrium),
        cmocka_unit_test(test_kstep),          cmocka_unit_test(test_kstep_long_gaps),
        cmocka_unit_test(test_unknown_scales), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
