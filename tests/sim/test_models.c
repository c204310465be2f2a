/* test_models.c - what the gradient models and the rotational variants are for, as regression
 * checks (fixed seeds, tolerances far outside the run-to-run noise measured in sim/README.md):
 * AdamW balances rotation across neurons with different gradient scales while Adam + L2 does
 * not; dead coordinates drop out of Adam's equilibrium norm; a radial gradient component moves
 * the equilibrium; RV-AdamW holds the norm fixed and rotates at theory's rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_sim.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEURONS 48

/* Per-neuron sums of angle^2 over the last quarter, from the observer (every step recorded). */
typedef struct {
    size_t from;
    double ang2[NEURONS], norm[NEURONS];
    size_t count;
} per_neuron;

static int collect(void *ctx, size_t step, double lr, double wd, const double *norms,
                   const double *angles, size_t n)
{
    per_neuron *p = ctx;
    (void)lr, (void)wd;
    if (step < p->from)
        return 0;
    for (size_t i = 0; i < n; i++) {
        p->ang2[i] += angles[i] * angles[i];
        p->norm[i] += norms[i];
    }
    p->count++;
    return 0;
}

static roteq_sim_config config(const roteq_optimizer_type *opt, double lr, double wd)
{
    roteq_sim_config c;
    roteq_sim_config_init(&c, opt);
    c.hp.lr = lr;
    c.hp.weight_decay = wd;
    c.neurons = NEURONS;
    c.dim = 64;
    c.steps = 6000;
    c.seed = 2385;
    return c;
}

/* Coefficient of variation across neurons of the per-neuron RMS angle. */
static double angle_cv(const roteq_sim_config *c)
{
    per_neuron p;
    memset(&p, 0, sizeof p);
    p.from = c->steps - c->steps / 4 + 1;
    roteq_sim_config cc = *c;
    cc.every = 5;
    roteq_sim_observer obs = {collect, NULL, &p};
    roteq_sim_result r;
    assert_int_equal(roteq_sim_run(&cc, &obs, &r), 0);
    roteq_sim_result_free(&r);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < NEURONS; i++) {
        double rms = sqrt(p.ang2[i] / (double)p.count);
        s += rms;
        s2 += rms * rms;
    }
    double mean = s / NEURONS;
    return sqrt(fmax(s2 / NEURONS - mean * mean, 0.0)) / mean;
}

static void test_heterogeneous_balance(void **state)
{
    (void)state;
    roteq_sim_config a = config(&roteq_adamw, 1e-3, 1.0);
    a.grad_model = ROTEQ_GRAD_HETEROGENEOUS;
    a.grad_spread = 1.0;
    roteq_sim_config l2 = config(&roteq_adam_l2, 1e-3, 0.1);
    l2.grad_model = ROTEQ_GRAD_HETEROGENEOUS;
    l2.grad_spread = 1.0;
    double cv_adamw = angle_cv(&a), cv_l2 = angle_cv(&l2);
    printf("# heterogeneous (spread 1): angle CV across neurons adamw %.4f, adam_l2 %.4f\n",
           cv_adamw, cv_l2);
    assert_true(cv_adamw < 0.03);
    assert_true(cv_l2 > 0.15);
}

static void test_dead_coordinates(void **state)
{
    (void)state;
    roteq_sim_config c = config(&roteq_adamw, 1e-3, 1.0);
    c.grad_model = ROTEQ_GRAD_ANISOTROPIC;
    c.dead_fraction = 0.5;
    c.init_norm = sqrt(1e-3 * 32 / 2.0);
    roteq_sim_result r;
    assert_int_equal(roteq_sim_run(&c, NULL, &r), 0);
    double live = sqrt(1e-3 * 32 / 2.0); /* sqrt(eta * C_live / (2 lambda)) */
    printf("# adamw, half the coordinates dead: norm %.5g, live-coordinate formula %.5g, "
           "full-C formula %.5g\n",
           r.norm_mean, live, r.predicted[ROTEQ_PRED_BEST].norm);
    assert_close(r.norm_mean, live, 0.015);
    assert_close(r.angle_rms, r.predicted[ROTEQ_PRED_BEST].angular_update, 0.01);
    roteq_sim_result_free(&r);
}

static void test_radial_breaks_equilibrium(void **state)
{
    (void)state;
    double norms[3];
    const double rho[3] = {-0.02, 0.0, 0.02};
    double pred = NAN;
    for (int i = 0; i < 3; i++) {
        roteq_sim_config c = config(&roteq_adamw, 1e-3, 1.0);
        c.grad_model = ROTEQ_GRAD_RADIAL;
        c.radial = rho[i];
        roteq_sim_result r;
        assert_int_equal(roteq_sim_run(&c, NULL, &r), 0);
        norms[i] = r.norm_mean;
        pred = r.predicted[ROTEQ_PRED_BEST].norm;
        roteq_sim_result_free(&r);
    }
    printf("# adamw radial -0.02 / 0 / +0.02: norm %.4g / %.4g / %.4g (pred %.4g)\n", norms[0],
           norms[1], norms[2], pred);
    assert_close(norms[1], pred, 0.01);
    assert_true(norms[0] > 1.2 * pred);
    assert_true(norms[2] < 0.8 * pred);
}

static void test_rv_adamw(void **state)
{
    (void)state;
    roteq_sim_config c = config(&roteq_rv_adamw, 1e-3, 1.0);
    c.steps = 2000;
    c.init_norm = 2.385;
    roteq_sim_result r;
    assert_int_equal(roteq_sim_run(&c, NULL, &r), 0);
    double target = r.predicted[ROTEQ_PRED_BEST].angular_update;
    printf("# rv_adamw: RMS angle %.6g, target %.6g; norm %.10g (spread %.2g)\n", r.angle_rms,
           target, r.norm_mean, r.rows[r.nrows - 1].norm.std);
    assert_close(r.angle_rms, target, 0.005);
    /* The norm never moves from the centred initial norm (rescaled every step). */
    for (size_t i = 0; i < r.nrows; i++) {
        assert_close(r.rows[i].norm.mean, r.rows[0].norm.mean, 1e-12);
        assert_close(r.rows[i].norm.q95, r.rows[0].norm.q95, 1e-12);
    }
    assert_true(r.norm_mean < 2.385 && r.norm_mean > 2.0); /* centring removed a little */
    roteq_sim_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heterogeneous_balance),
        cmocka_unit_test(test_dead_coordinates),
        cmocka_unit_test(test_radial_breaks_equilibrium),
        cmocka_unit_test(test_rv_adamw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
