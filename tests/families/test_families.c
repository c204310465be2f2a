/* test_families.c - adding an optimizer is one file and one line: built against libraries that
 * include tests/families/sgd_copy.c (a copy of SGD under the name sgd_copy) through the single
 * line in tests/families/test_optimizers.def, this checks that every driver knows it - lookup by
 * name, the list, theory's closed forms, stationary state, transient, steps to equilibrium and
 * k-step angle, the simulator's rule and its fused and reference paths - and that every number
 * equals plain SGD's bit for bit (the same mathematics under another name). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_sim.h"
#include "roteq_test.h"

#include <math.h>
#include <string.h>

static roteq_hparams hparams(const roteq_optimizer_type *opt)
{
    roteq_hparams hp = roteq_optimizer_defaults(opt);
    hp.lr = 0.1;
    hp.weight_decay = 0.01;
    return hp;
}

static void same(double a, double b, const char *what)
{
    if (memcmp(&a, &b, sizeof a) != 0 && !(isnan(a) && isnan(b)))
        fail_msg("%s: sgd_copy %.17g, sgd %.17g", what, a, b);
}

static void test_listed(void **state)
{
    (void)state;
    const roteq_optimizer_type *c = roteq_optimizer_lookup("sgd_copy");
    assert_ptr_equal(c, &roteq_sgd_copy);
    assert_ptr_equal(roteq_optimizers[ROTEQ_OPT_INDEX_sgd_copy], &roteq_sgd_copy);
    assert_int_equal(ROTEQ_OPT_COUNT, ROTEQ_OPT_INDEX_sgd_copy + 1);
    assert_null(roteq_optimizers[ROTEQ_OPT_COUNT]);
    assert_string_equal(roteq_theory_formula(c), roteq_theory_formula(&roteq_sgd));
    assert_non_null(roteq_sim_rule_for(c));
    assert_ptr_equal(roteq_sim_rule_for(c)->opt, c);
}

static void test_theory(void **state)
{
    (void)state;
    roteq_hparams ha = hparams(&roteq_sgd_copy), hb = hparams(&roteq_sgd);
    roteq_setting s = {128, 11.0};
    for (int p = 0; p < ROTEQ_PRED_COUNT; p++) {
        roteq_equilibrium a, b;
        assert_int_equal(roteq_theory_equilibrium(&roteq_sgd_copy, &ha, &s, p, &a), 0);
        assert_int_equal(roteq_theory_equilibrium(&roteq_sgd, &hb, &s, p, &b), 0);
        same(a.norm, b.norm, "equilibrium norm");
        same(a.angular_update, b.angular_update, "equilibrium angle");
        assert_int_equal(a.exact, b.exact);
    }
    roteq_equilibrium a, b;
    assert_int_equal(roteq_theory_stationary(&roteq_sgd_copy, &ha, &s, &a), 0);
    assert_int_equal(roteq_theory_stationary(&roteq_sgd, &hb, &s, &b), 0);
    same(a.norm, b.norm, "stationary norm");
    same(a.angular_update, b.angular_update, "stationary angle");
    roteq_transient *ta = roteq_transient_alloc(&roteq_sgd_copy, &ha, &s, 5.0);
    roteq_transient *tb = roteq_transient_alloc(&roteq_sgd, &hb, &s, 5.0);
    assert_non_null(ta);
    assert_non_null(tb);
    for (int t = 1; t <= 500; t++) {
        double na, aa, nb, ab;
        assert_int_equal(roteq_transient_step(ta, 0.1, 0.01, &na, &aa), 0);
        assert_int_equal(roteq_transient_step(tb, 0.1, 0.01, &nb, &ab), 0);
        same(na, nb, "transient norm");
        same(aa, ab, "transient angle");
    }
    roteq_transient_free(ta);
    roteq_transient_free(tb);
    long ka = roteq_theory_steps_to_equilibrium(&roteq_sgd_copy, &ha, &s, 5.0, 0.01, 100000);
    assert_true(ka > 0);
    assert_int_equal(ka, roteq_theory_steps_to_equilibrium(&roteq_sgd, &hb, &s, 5.0, 0.01, 100000));
    same(roteq_theory_kstep_angle(&roteq_sgd_copy, &ha, &s, 50),
         roteq_theory_kstep_angle(&roteq_sgd, &hb, &s, 50), "k-step angle");
    same(roteq_theory_convergence_rate(&roteq_sgd_copy, 0.1, 0.01),
         roteq_theory_convergence_rate(&roteq_sgd, 0.1, 0.01), "convergence rate");
}

static void run(const roteq_optimizer_type *opt, int reference, roteq_sim_result *r)
{
    roteq_sim_config c;
    roteq_sim_config_init(&c, opt);
    c.hp = hparams(opt);
    c.neurons = 6;
    c.dim = 37;
    c.steps = 300;
    c.every = 10;
    c.threads = 2;
    roteq_sim_options ex = {ROTEQ_SIM_ISA_AUTO, reference, 0};
    assert_int_equal(roteq_sim_run_ex(&c, &ex, NULL, r), 0);
}

static void test_simulate(void **state)
{
    (void)state;
    for (int reference = 0; reference < 2; reference++) {
        roteq_sim_result a, b;
        run(&roteq_sgd_copy, reference, &a);
        run(&roteq_sgd, reference, &b);
        assert_int_equal(a.nrows, b.nrows);
        for (size_t i = 0; i < a.nrows; i++) {
            same(a.rows[i].norm.mean, b.rows[i].norm.mean, "row norm");
            same(a.rows[i].angle.mean, b.rows[i].angle.mean, "row angle");
            same(a.rows[i].pred_norm, b.rows[i].pred_norm, "row predicted norm");
        }
        same(a.norm_mean, b.norm_mean, "measured norm");
        same(a.angle_rms, b.angle_rms, "measured angle");
        assert_true(a.norm_mean > 0 && a.angle_rms > 0);
        roteq_sim_result_free(&a);
        roteq_sim_result_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listed),
        cmocka_unit_test(test_theory),
        cmocka_unit_test(test_simulate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
