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
#include "roteq_sim_muon.h"
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
    same(roteq_theory_model_floor(&roteq_sgd_copy, &ha, 128),
         roteq_theory_model_floor(&roteq_sgd, &hb, 128), "model floor");
}

/* The PASS rule's model floor comes from each family's hook: every listed optimizer has one, and
 * it is the terms its closed forms drop (sweep/README.md, "PASS rule"). */
static void test_model_floor(void **state)
{
    (void)state;
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++) {
        const roteq_optimizer_type *o = roteq_optimizers[i];
        roteq_hparams h = roteq_optimizer_defaults(o);
        h.lr = 0.001, h.weight_decay = 0.1;
        double f = roteq_theory_model_floor(o, &h, 64);
        if (!(f >= h.lr * h.weight_decay && f < 0.01))
            fail_msg("%s: model floor %g", o->name, f);
    }
    roteq_hparams h = roteq_optimizer_defaults(&roteq_rv_adamw);
    h.lr = 0.001, h.weight_decay = 0.1;
    same(roteq_theory_model_floor(&roteq_sgd, &h, 64), h.lr * h.weight_decay, "sgd floor");
    same(roteq_theory_model_floor(&roteq_adamw, &h, 64), h.lr * h.weight_decay + (1.0 - h.beta2),
         "adamw floor");
    same(roteq_theory_model_floor(&roteq_rv_adamw, &h, 64),
         h.lr * h.weight_decay + (1.0 - h.beta2) + (1.0 - h.update_norm_decay) / 64.0,
         "rv_adamw floor");
    same(roteq_theory_model_floor(&roteq_rv_sgdm, &h, 0), h.lr * h.weight_decay, "rv_sgdm, no C");
    assert_true(isnan(roteq_theory_model_floor(NULL, &h, 64)));
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

/* A matrix family carries its simulator in its family file (ROTEQ_SIM_MATRIX_RULE): exactly the
 * optimizers with theory's matrix hooks have one, the per-neuron ones (sgd_copy among them) do
 * not, its verify points are valid configurations, and a run through it measures something. */
static void test_matrix_hooks(void **state)
{
    (void)state;
    int matrices = 0;
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++) {
        const roteq_optimizer_type *o = roteq_optimizers[i];
        const roteq_sim_matrix *sm = roteq_sim_matrix_for(o);
        assert_int_equal(sm != NULL, o->family->matrix != NULL);
        if (sm == NULL)
            continue;
        matrices++;
        assert_true(sm->nverify_points > 0 && sm->nverify_quick_points > 0);
        for (size_t k = 0; k < sm->nverify_points + sm->nverify_quick_points; k++) {
            const roteq_sim_matrix_point *pt =
                k < sm->nverify_points ? &sm->verify_points[k]
                                       : &sm->verify_quick_points[k - sm->nverify_points];
            roteq_sim_muon_config c;
            sm->config_init(&c);
            c.hp.lr = sm->verify_lr, c.hp.weight_decay = sm->verify_wd;
            c.hp.rows = pt->rows, c.hp.cols = pt->cols, c.hp.momentum = pt->momentum;
            c.hp.nesterov = pt->nesterov, c.hp.ns_steps = pt->ns_steps;
            c.matrices = sm->verify_matrices[0], c.steps = sm->verify_steps[0];
            assert_int_equal(o->family->matrix->validate(&c.hp), 0);
            assert_int_equal(sm->config_validate(&c), 0);
        }
        roteq_sim_muon_config c;
        sm->config_init(&c);
        c.hp.lr = 0.02, c.hp.rows = 8, c.hp.cols = 16, c.matrices = 2, c.steps = 200;
        c.threads = 1;
        roteq_sim_muon_result r;
        assert_int_equal(sm->run(&c, &r), 0);
        assert_true(r.row_norm > 0 && r.row_angle_rms > 0 && r.nrows > 0);
        sm->result_free(&r);
    }
    assert_int_equal(matrices, 1); /* muon */
    assert_null(roteq_sim_matrix_for(&roteq_sgd_copy));
    assert_null(roteq_sim_matrix_for(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listed),      cmocka_unit_test(test_theory),
        cmocka_unit_test(test_model_floor), cmocka_unit_test(test_matrix_hooks),
        cmocka_unit_test(test_simulate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
