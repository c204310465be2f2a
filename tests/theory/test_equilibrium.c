/* test_equilibrium.c - every closed form against values computed independently: with mpmath
 * at 40 digits from the formulas as written in theory/README.md (the Nesterov sum and the Lion
 * lag correlations summed term by term from the filter coefficients rather than through the
 * closed forms the C code uses): theory/tools/test_references.py prints them.
 * Hyperparameters are "high-entropy": eta 0.002385, lambda 0.3121, C 384, G 7.913,
 * alpha 0.87, dampening 0.35, beta1 0.83, beta2 0.994. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <string.h>

#define ETA 0.002385
#define LAM 0.3121
#define DIM 384
#define GN  7.913

static roteq_hparams hp_for(const roteq_optimizer_type *opt)
{
    roteq_hparams hp = roteq_optimizer_defaults(opt);
    hp.lr = ETA;
    hp.weight_decay = LAM;
    hp.momentum = 0.87;
    hp.beta1 = 0.83;
    hp.beta2 = 0.994;
    return hp;
}

static roteq_equilibrium eq_of(const roteq_optimizer_type *opt, roteq_hparams hp, size_t dim,
                               double g, roteq_prediction which)
{
    roteq_setting s = {dim, g};
    roteq_equilibrium e;
    memset(&e, 0, sizeof e);
    assert_int_equal(roteq_theory_equilibrium(opt, &hp, &s, which, &e), ROTEQ_OK);
    assert_non_null(e.source);
    assert_true(strlen(e.source) > 0);
    return e;
}

static void test_sgd_family(void **state)
{
    (void)state;
    roteq_equilibrium e = eq_of(&roteq_sgd, hp_for(&roteq_sgd), DIM, GN, ROTEQ_PRED_BEST);
    assert_close(e.norm, 0.69937763095255634, 1e-13);
    assert_close(e.angular_update, 0.038583895604254374, 1e-13);
    assert_true(e.exact);

    roteq_hparams hp = hp_for(&roteq_sgdm);
    hp.dampening = 0.35;
    e = eq_of(&roteq_sgdm, hp, DIM, GN, ROTEQ_PRED_BEST);
    assert_close(e.norm, 1.0458134880582897, 1e-13);
    assert_close(e.angular_update, 0.02274793344319059, 1e-13);

    /* Without momentum PyTorch ignores dampening: plain SGD. */
    hp.momentum = 0.0;
    e = eq_of(&roteq_sgdm, hp, DIM, GN, ROTEQ_PRED_BEST);
    assert_close(e.norm, 0.69937763095255634, 1e-13);
    assert_close(e.angular_update, 0.038583895604254374, 1e-13);

    e = eq_of(&roteq_nesterov, hp_for(&roteq_nesterov), DIM, GN, ROTEQ_PRED_BEST);
    assert_close(e.norm, 1.1647317104893524, 1e-13);
    assert_close(e.angular_update, 0.033657883667776601, 1e-13);

    /* The paper's SGDM row at the settings of THEORY_NOTES.md: lr 0.1, wd 0.01, alpha 0.9,
     * E||g~||^2 = 127: norm 8.927, rotation 0.03244 (hand-computed from the row). */
    hp = roteq_optimizer_defaults(&roteq_sgdm);
    hp.lr = 0.1, hp.weight_decay = 0.01;
    e = eq_of(&roteq_sgdm, hp, 128, sqrt(127.0), ROTEQ_PRED_PAPER);
    assert_close(e.norm, 8.9267512148903394, 1e-12);
    assert_close(e.angular_update, 0.032444284226152507, 1e-12);
}

static void test_grad_norm_unknown(void **state)
{
    (void)state;
    /* The SGD family's norm needs ||g~||; its rotation does not. Adam+L2 needs both. */
    roteq_equilibrium e = eq_of(&roteq_sgdm, hp_for(&roteq_sgdm), DIM, NAN, ROTEQ_PRED_BEST);
    assert_true(isnan(e.norm));
    assert_close(e.angular_update, sqrt(2 * ETA * LAM / 1.87), 1e-13);
    e = eq_of(&roteq_adam_l2, hp_for(&roteq_adam_l2), DIM, NAN, ROTEQ_PRED_BEST);
    assert_true(isnan(e.norm));
    assert_true(isnan(e.angular_update));
    /* dim 0 = unknown: AdamW's and Lion's norms scale with sqrt(C), rotations do not. */
    e = eq_of(&roteq_adamw, hp_for(&roteq_adamw), 0, NAN, ROTEQ_PRED_BEST);
    assert_true(isnan(e.norm));
    assert_close(e.angular_update, 0.01175993685162035, 1e-13);
    for (int p = 0; p < ROTEQ_PRED_COUNT; p++) {
        roteq_equilibrium a = eq_of(&roteq_lion, hp_for(&roteq_lion), 0, NAN, p);
        roteq_equilibrium b = eq_of(&roteq_lion, hp_for(&roteq_lion), DIM, NAN, p);
        assert_true(isnan(a.norm));
        assert_close(a.angular_update, b.angular_update, 1e-14);
    }
}

static void test_adam(void **state)
{
    (void)state;
    roteq_equilibrium e = eq_of(&roteq_adamw, hp_for(&roteq_adamw), DIM, NAN, ROTEQ_PRED_BEST);
    assert_close(e.norm, 1.2112894138960339, 1e-13);
    assert_close(e.angular_update, 0.01175993685162035, 1e-13);
    assert_true(e.exact);
    /* The acceptance numbers: lr 1e-3, wd 0.5, C 512, beta1 0.9. */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.weight_decay = 0.5;
    e = eq_of(&roteq_adamw, hp, 512, NAN, ROTEQ_PRED_BEST);
    assert_close(e.norm, 0.7155, 1e-4);
    assert_close(e.angular_update, 0.007255, 1e-4);

    e = eq_of(&roteq_adam_l2, hp_for(&roteq_adam_l2), DIM, GN, ROTEQ_PRED_BEST);
    assert_close(e.norm, 0.83989268533609195, 1e-13);
    assert_close(e.angular_update, 0.016960127484326669, 1e-13);
    assert_false(e.exact);
}

static void test_lion(void **state)
{
    (void)state;
    roteq_hparams hp = hp_for(&roteq_lion);
    roteq_equilibrium best = eq_of(&roteq_lion, hp, DIM, NAN, ROTEQ_PRED_BEST);
    roteq_equilibrium paper = eq_of(&roteq_lion, hp, DIM, NAN, ROTEQ_PRED_PAPER);
    roteq_equilibrium plain = eq_of(&roteq_lion, hp, DIM, NAN, ROTEQ_PRED_PLAIN);
    assert_close(paper.angular_update, 0.0085105392510671185, 1e-13);
    assert_close(paper.norm, 5.491574965292931, 1e-13);
    assert_close(best.norm, 5.242822397925308, 1e-12);
    assert_close(best.angular_update, 0.0088865383327203427, 1e-12);
    assert_close(plain.norm, sqrt(ETA * DIM / (2 * LAM)), 1e-14);
    assert_close(plain.angular_update, sqrt(2 * ETA * LAM), 1e-14);
    assert_false(paper.exact);
    assert_false(plain.exact); /* betas are not zero */
    /* Paper and plain are updates of size eta*sqrt(C): norm x angle is exact for them. */
    assert_close(paper.norm * paper.angular_update, ETA * sqrt(DIM), 1e-14);

    /* beta1 = beta2 = 0: signSGD, updates uncorrelated. Best is then the exact discrete
     * balance E||w||^2 = eta^2 C/(1-d^2), angle atan(eta sqrt(C)/(d ||w||)). */
    hp.beta1 = hp.beta2 = 0.0;
    best = eq_of(&roteq_lion, hp, DIM, NAN, ROTEQ_PRED_BEST);
    plain = eq_of(&roteq_lion, hp, DIM, NAN, ROTEQ_PRED_PLAIN);
    double d = 1 - ETA * LAM, A = ETA * ETA * DIM / (1 - d * d);
    assert_close(best.norm, sqrt(A), 1e-14);
    assert_close(best.angular_update, atan(ETA * sqrt(DIM) / (d * sqrt(A))), 1e-13);
    assert_true(plain.exact);
    assert_close(best.norm, plain.norm, ETA * LAM); /* equal to first order in eta*lambda */

    /* The paper's own numbers at lr 1e-3, wd 1, C 128 (THEORY_NOTES.md): 1.702 / 0.00665 at
     * (0.9, 0.99), 0.3935 / 0.02875 at (0.5, 0.9), 0.2019 / 0.05605 at (0, 0). */
    const double grid[3][4] = {
        {0.9, 0.99, 1.702, 0.00665}, {0.5, 0.9, 0.3935, 0.02875}, {0.0, 0.0, 0.2019, 0.05605}};
    for (int i = 0; i < 3; i++) {
        roteq_hparams h = roteq_optimizer_defaults(&roteq_lion);
        h.lr = 1e-3, h.weight_decay = 1.0, h.beta1 = grid[i][0], h.beta2 = grid[i][1];
        roteq_equilibrium p = eq_of(&roteq_lion, h, 128, NAN, ROTEQ_PRED_PAPER);
        assert_close(p.norm, grid[i][2], 6e-4);
        assert_close(p.angular_update, grid[i][3], 6e-4);
    }
}

static void test_rotational(void **state)
{
    (void)state;
    /* RV variants: rotation of the base optimizer (RV-Lion: the paper's Lion formula, as the
     * published RotationalLion), norm held at the initial value (unknown here). */
    roteq_equilibrium e = eq_of(&roteq_rv_adamw, hp_for(&roteq_rv_adamw), DIM, GN, 0);
    assert_true(isnan(e.norm));
    assert_close(e.angular_update, 0.01175993685162035, 1e-13);
    assert_true(e.exact);
    roteq_hparams hp = hp_for(&roteq_rv_sgdm);
    hp.dampening = 0.35;
    e = eq_of(&roteq_rv_sgdm, hp, DIM, GN, 0);
    assert_close(e.angular_update, 0.02274793344319059, 1e-13);
    hp.dampening = 0.0, hp.nesterov = 1.0;
    e = eq_of(&roteq_rv_sgdm, hp, DIM, GN, 0);
    assert_close(e.angular_update, 0.033657883667776601, 1e-13);
    for (int p = 0; p < ROTEQ_PRED_COUNT; p++) {
        e = eq_of(&roteq_rv_lion, hp_for(&roteq_rv_lion), DIM, GN, p);
        assert_close(e.angular_update, 0.0085105392510671185, 1e-13);
    }
}

static void test_errors(void **state)
{
    (void)state;
    roteq_hparams hp = hp_for(&roteq_adamw);
    roteq_setting s = {DIM, NAN};
    roteq_equilibrium e;
    assert_int_equal(roteq_theory_equilibrium(NULL, &hp, &s, 0, &e), ROTEQ_EINVAL);
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &s, ROTEQ_PRED_COUNT, &e),
                     ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "prediction"));
    s.grad_norm = -1.0;
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &s, 0, &e), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "grad_norm"));
    s.grad_norm = NAN;
    hp.beta1 = 1.0;
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &s, 0, &e), ROTEQ_EINVAL);
    hp = hp_for(&roteq_sgd);
    hp.lr = NAN;
    assert_int_equal(roteq_theory_equilibrium(&roteq_sgd, &hp, &s, 0, &e), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "required"));
    hp.lr = 0.1, hp.weight_decay = 0.0;
    assert_int_equal(roteq_theory_equilibrium(&roteq_sgd, &hp, &s, 0, &e), ROTEQ_EINVAL);
}

static void test_formulas(void **state)
{
    (void)state;
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++) {
        const char *f = roteq_theory_formula(roteq_optimizers[i]);
        assert_non_null(f);
        assert_true(strlen(f) > 20);
        assert_non_null(strstr(f, "angle"));
    }
    assert_string_equal(roteq_theory_formula(NULL), "");
    assert_string_equal(roteq_prediction_names[ROTEQ_PRED_PAPER], "paper");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_family), cmocka_unit_test(test_grad_norm_unknown),
        cmocka_unit_test(test_adam),       cmocka_unit_test(test_lion),
        cmocka_unit_test(test_rotational), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_formulas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
