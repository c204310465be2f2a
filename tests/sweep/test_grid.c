/* test_grid.c - GRID parsing and expansion: product order, points, groups and inheritance,
 * per-point seeds, the grid hash, malformed grids (one message naming the key) and bad points
 * (a reason per point, the grid still loads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_sweep.h"
#include "roteq_test.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Point i of g (decoded on demand); a few buffers rotate so that two can be compared. */
static const roteq_sweep_point *point_at(const roteq_sweep_grid *g, size_t i)
{
    static roteq_sweep_point buf[4];
    static int k;
    k = (k + 1) % 4;
    return roteq_sweep_grid_point(g, i, &buf[k]);
}

static roteq_sweep_grid *parse_ok(const char *text)
{
    roteq_sweep_grid *g = roteq_sweep_grid_parse(text, "g.json");
    if (g == NULL)
        print_error("unexpected error: %s\n", roteq_error_message());
    assert_non_null(g);
    return g;
}

static void test_product_order(void **state)
{
    (void)state;
    roteq_sweep_grid *g =
        parse_ok("{\"seed\": 11, \"fixed\": {\"optimizer\": \"adamw\", \"weight_decay\": 0.125,"
                 " \"neurons\": 17, \"steps\": 300},"
                 " \"axes\": {\"lr\": [0.001, 0.002], \"dim\": [32, 64, 96]}}");
    assert_int_equal(g->npoints, 6);
    assert_true(g->seed == 11);
    /* File order, last axis fastest: (lr0, 32), (lr0, 64), (lr0, 96), (lr1, 32), ... */
    const double lr[] = {0.001, 0.001, 0.001, 0.002, 0.002, 0.002};
    const size_t dim[] = {32, 64, 96, 32, 64, 96};
    for (size_t i = 0; i < 6; i++) {
        const roteq_sweep_point *p = point_at(g, i);
        assert_int_equal(p->index, i);
        assert_string_equal(p->error, "");
        assert_ptr_equal(p->cfg.opt, &roteq_adamw);
        assert_close(p->cfg.hp.lr, lr[i], 0);
        assert_close(p->cfg.hp.weight_decay, 0.125, 0);
        assert_close(p->cfg.hp.beta1, roteq_adamw.defaults.beta1, 0); /* default kept */
        assert_int_equal(p->cfg.dim, dim[i]);
        assert_int_equal(p->cfg.neurons, 17);
        assert_int_equal(p->cfg.steps, 300);
        assert_true(p->seed == roteq_sweep_point_seed(11, i));
        assert_true(p->cfg.seed == p->seed);
    }
    roteq_sweep_grid_free(g);
}

static void test_points_groups_inheritance(void **state)
{
    (void)state;
    /* Top-level fixed < group fixed < explicit point < the group's axes (innermost wins);
     * points are crossed with the axes of their level; groups nest. */
    roteq_sweep_grid *g = parse_ok(
        "{\"fixed\": {\"weight_decay\": 0.5, \"dim\": 48, \"lr\": 0.01},"
        " \"groups\": ["
        "  {\"fixed\": {\"optimizer\": \"sgdm\"},"
        "   \"points\": [{\"momentum\": 0.9}, {\"momentum\": 0.5, \"dim\": 24}],"
        "   \"axes\": {\"lr\": [0.1, 0.2]}},"
        "  {\"fixed\": {\"optimizer\": \"lion\", \"lr\": 0.0003},"
        "   \"groups\": [{\"points\": [{\"beta1\": 0, \"beta2\": 0}]}, {\"fixed\": {\"dim\": 80}}]}"
        " ]}");
    assert_int_equal(g->npoints, 6);
    roteq_sweep_point p[6];
    for (size_t i = 0; i < 6; i++)
        roteq_sweep_grid_point(g, i, &p[i]);
    assert_ptr_equal(p[0].cfg.opt, &roteq_sgdm);
    assert_close(p[0].cfg.hp.momentum, 0.9, 0);
    assert_close(p[0].cfg.hp.lr, 0.1, 0);
    assert_int_equal(p[0].cfg.dim, 48);
    assert_close(p[1].cfg.hp.lr, 0.2, 0);
    assert_close(p[2].cfg.hp.momentum, 0.5, 0);
    assert_int_equal(p[2].cfg.dim, 24);
    assert_close(p[3].cfg.hp.weight_decay, 0.5, 0);
    assert_ptr_equal(p[4].cfg.opt, &roteq_lion);
    assert_close(p[4].cfg.hp.beta1, 0, 0);
    assert_close(p[4].cfg.hp.beta2, 0, 0);
    assert_close(p[4].cfg.hp.lr, 0.0003, 0);
    assert_int_equal(p[5].cfg.dim, 80);
    assert_close(p[5].cfg.hp.beta1, roteq_lion.defaults.beta1, 0);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(p[i].error, "");
    roteq_sweep_grid_free(g);
}

static void test_other_keys(void **state)
{
    (void)state;
    roteq_sweep_grid *g = parse_ok(
        "{\"points\": [{\"optimizer\": \"nesterov\", \"lr\": 0.05, \"weight_decay\": 0.001,"
        " \"momentum\": 0.8, \"nesterov\": true, \"gradient\": \"heterogeneous\","
        " \"grad_norm\": 2.385, \"grad_spread\": 0.75, \"init_norm\": 3.5,"
        " \"schedule\": \"warmup:100+cosine:900\", \"wd_schedule\": \"step:300:0.5\"}]}");
    const roteq_sweep_point *p = point_at(g, 0);
    assert_string_equal(p->error, "");
    assert_int_equal(p->cfg.grad_model, ROTEQ_GRAD_HETEROGENEOUS);
    assert_close(p->cfg.grad_norm, 2.385, 0);
    assert_close(p->cfg.grad_spread, 0.75, 0);
    assert_close(p->cfg.init_norm, 3.5, 0);
    assert_close(p->cfg.hp.nesterov, 1, 0);
    assert_int_equal(p->cfg.lr_schedule.warmup, 100);
    assert_int_equal(p->cfg.lr_schedule.shape, ROTEQ_SCHED_COSINE);
    assert_int_equal(p->cfg.wd_schedule.shape, ROTEQ_SCHED_STEP);
    assert_non_null(strstr(p->lr_schedule, "cosine:900"));
    assert_true(g->seed == 1); /* default */
    roteq_sweep_grid_free(g);
}

static void test_seeds(void **state)
{
    (void)state;
    /* Stable values (a rerun of point i of grid seed s must get the same stream forever) and
     * distinct across indices and nearby grid seeds. */
    uint64_t a = roteq_sweep_point_seed(1, 0);
    assert_true(a == roteq_sweep_point_seed(1, 0));
    for (size_t i = 0; i < 1000; i++)
        for (uint64_t s = 0; s < 3; s++) {
            uint64_t x = roteq_sweep_point_seed(s, i);
            for (uint64_t s2 = s; s2 < 3; s2++)
                for (size_t j = (s2 == s ? i + 1 : 0); j < 1000; j += 97)
                    assert_true(x != roteq_sweep_point_seed(s2, j));
        }
}

static void test_hash(void **state)
{
    (void)state;
    const char *a = "{\"seed\": 5, \"points\": [{\"optimizer\": \"adamw\", \"lr\": 0.001}]}";
    const char *b = "{\"seed\": 5, \"points\": [{\"lr\": 0.001, \"optimizer\": \"adamw\"}]}";
    const char *c = "{\"seed\": 5, \"points\": [{\"optimizer\": \"adamw\", \"lr\": 0.0011}]}";
    const char *d = "{\"seed\": 6, \"points\": [{\"optimizer\": \"adamw\", \"lr\": 0.001}]}";
    roteq_sweep_grid *ga = parse_ok(a), *gb = parse_ok(b), *gc = parse_ok(c), *gd = parse_ok(d);
    assert_true(ga->hash == gb->hash); /* key order does not matter */
    assert_true(ga->hash != gc->hash);
    assert_true(ga->hash != gd->hash);
    roteq_sweep_grid_free(ga);
    roteq_sweep_grid_free(gb);
    roteq_sweep_grid_free(gc);
    roteq_sweep_grid_free(gd);
}

/* Points are decoded from the grid, never expanded: 8 axes of 10 values are 1e8 points held in a
 * few kB, any point found by mixed-radix decoding (last axis fastest); the axis order is part of
 * the hash (it orders the points); a grid beyond 2^64 points is refused. */
static void test_lazy_points(void **state)
{
    (void)state;
    char text[2048];
    int n = snprintf(text, sizeof text, "{\"fixed\": {\"optimizer\": \"adamw\"}, \"axes\": {");
    const char *keys[8] = {"lr",      "weight_decay", "beta1", "beta2",
                           "neurons", "dim",          "steps", "init_norm"};
    for (int k = 0; k < 8; k++) {
        n += snprintf(text + n, sizeof text - (size_t)n, "%s\"%s\": [", k ? ", " : "", keys[k]);
        for (int v = 0; v < 10; v++) {
            double x = k == 0   ? 1e-4 * (v + 1)
                       : k == 1 ? 0.01 * (v + 1)
                       : k == 2 ? 0.8 + 0.01 * v
                       : k == 3 ? 0.9 + 0.009 * v
                                : 2 + v;
            n += snprintf(text + n, sizeof text - (size_t)n, "%s%.17g", v ? ", " : "", x);
        }
        n += snprintf(text + n, sizeof text - (size_t)n, "]");
    }
    snprintf(text + n, sizeof text - (size_t)n, "}}");
    roteq_sweep_grid *g = parse_ok(text);
    assert_int_equal(g->npoints, 100000000);
    roteq_sweep_point p;
    roteq_sweep_grid_point(g, 12345678, &p); /* digits 1 2 3 4 5 6 7 8, lr slowest */
    assert_string_equal(p.error, "");
    assert_close(p.cfg.hp.lr, 2e-4, 1e-15);
    assert_close(p.cfg.hp.weight_decay, 0.03, 1e-15);
    assert_close(p.cfg.hp.beta1, 0.83, 1e-15);
    assert_close(p.cfg.hp.beta2, 0.936, 1e-15);
    assert_int_equal(p.cfg.neurons, 7);
    assert_int_equal(p.cfg.dim, 8);
    assert_int_equal(p.cfg.steps, 9);
    assert_close(p.cfg.init_norm, 10, 0);
    assert_int_equal(p.index, 12345678);
    assert_true(p.seed == roteq_sweep_point_seed(g->seed, 12345678));
    roteq_sweep_grid_point(g, 99999999, &p);
    assert_close(p.cfg.hp.lr, 1e-3, 1e-15);
    assert_int_equal(p.cfg.init_norm, 11);
    roteq_sweep_grid_free(g);

    const char *ab = "{\"fixed\": {\"optimizer\": \"adamw\"}, \"axes\": {\"lr\": [0.001, 0.002], "
                     "\"beta1\": [0.8, 0.9]}}";
    const char *ba = "{\"fixed\": {\"optimizer\": \"adamw\"}, \"axes\": {\"beta1\": [0.8, 0.9], "
                     "\"lr\": [0.001, 0.002]}}";
    roteq_sweep_grid *g1 = parse_ok(ab), *g2 = parse_ok(ba);
    assert_true(g1->hash != g2->hash);
    roteq_sweep_point p1, p2;
    assert_close(roteq_sweep_grid_point(g1, 1, &p1)->cfg.hp.beta1, 0.9, 0);
    assert_close(roteq_sweep_grid_point(g2, 1, &p2)->cfg.hp.lr, 0.002, 0);
    roteq_sweep_grid_free(g1);
    roteq_sweep_grid_free(g2);

    /* 10 axes of 10 values at the top and again in a group: 1e20 points */
    const char *ten[10] = {"lr",    "weight_decay", "beta1", "beta2",  "eps",
                           "steps", "neurons",      "dim",   "radial", "init_norm"};
    char axes[1024];
    n = 0;
    for (int a = 0; a < 10; a++)
        n += snprintf(axes + n, sizeof axes - (size_t)n, "%s\"%s\": [%s]", a ? ", " : "", ten[a],
                      "1, 2, 3, 4, 5, 6, 7, 8, 9, 10");
    char big[4096];
    snprintf(big, sizeof big,
             "{\"fixed\": {\"optimizer\": \"adamw\"}, \"axes\": {%s}, \"groups\": [{\"axes\": "
             "{%s}}]}",
             axes, axes);
    assert_null(roteq_sweep_grid_parse(big, "big.json"));
    assert_non_null(strstr(roteq_error_message(), "big.json: the grid has more than 2^64 points"));
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"{\"axes\": {\"lr\": [0.1, \"x\"]}}", "g.json: axes.lr[1]: expected a number"},
        {"{\"axes\": {\"lr\": []}}", "g.json: axes.lr: expected a non-empty list"},
        {"{\"axes\": {\"lr\": 0.1}}", "g.json: axes.lr: expected a non-empty list"},
        {"{\"fixed\": {\"lrr\": 1}}", "g.json: fixed.lrr: unknown key 'lrr'"},
        {"{\"fixed\": {\"weight-decay\": 1}}", "g.json: fixed.weight-decay: unknown key"},
        {"{\"fixed\": {\"optimizer\": 3}}", "g.json: fixed.optimizer: expected a string"},
        {"{\"fixed\": {\"dim\": 2.5}}", "g.json: fixed.dim: expected an integer"},
        {"{\"fixed\": {\"nesterov\": \"yes\"}}", "g.json: fixed.nesterov: expected true or false"},
        {"{\"points\": []}", "g.json: points: expected a non-empty list of objects"},
        {"{\"points\": [3]}", "g.json: points[0]: expected an object"},
        {"{\"groups\": [{\"points\": [{\"seed\": 1}]}]}",
         "g.json: groups[0].points[0].seed: the seed is set once"},
        {"{\"groups\": [{\"axes\": {\"beta1\": [0.9, null]}}]}",
         "g.json: groups[0].axes.beta1[1]: expected a number"},
        {"{\"seed\": -1}", "g.json: seed: expected a non-negative integer"},
        {"{\"sed\": 1}", "g.json: sed: unknown key"},
        {"{\"fixed\": {\"lr\": 1},}", "g.json: line 1:"},
        {"[1, 2]", "g.json: top level: expected an object"},
        {"{\"fixed\": {\"lr\": 1}, \"fixed\": {\"lr\": 2}}", "g.json: line 1:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        roteq_error_clear();
        roteq_sweep_grid *g = roteq_sweep_grid_parse(cases[i].text, "g.json");
        if (g != NULL || strstr(roteq_error_message(), cases[i].message) == NULL)
            print_error("case %zu: %s\n  got: %s\n  want: %s\n", i, cases[i].text,
                        roteq_error_message(), cases[i].message);
        assert_null(g);
        assert_non_null(strstr(roteq_error_message(), cases[i].message));
        assert_null(strchr(roteq_error_message(), '\n'));
    }
    assert_null(roteq_sweep_grid_load("/nonexistent/grid.json"));
    assert_int_equal(roteq_error_status(), ROTEQ_EIO);
    assert_non_null(strstr(roteq_error_message(), "/nonexistent/grid.json"));
}

static void test_bad_points(void **state)
{
    (void)state;
    roteq_sweep_grid *g =
        parse_ok("{\"fixed\": {\"weight_decay\": 0.1, \"lr\": 0.001, \"dim\": 40},"
                 " \"points\": ["
                 "  {\"optimizer\": \"adamw\"},"
                 "  {\"optimizer\": \"adamw\", \"beta1\": 1.5},"
                 "  {\"optimizer\": \"adamx\"},"
                 "  {\"optimizer\": \"adamw\", \"momentum\": 0.9},"
                 "  {\"optimizer\": \"adamw\", \"neurons\": 0},"
                 "  {\"optimizer\": \"adamw\", \"gradient\": \"isotropic\"},"
                 "  {\"optimizer\": \"adamw\", \"schedule\": \"cosine\"},"
                 "  {\"lr\": 0.1},"
                 "  {\"optimizer\": \"sgdm\", \"lr\": -1}"
                 " ]}");
    assert_int_equal(g->npoints, 9);
    static const char *const want[] = {
        "",
        "beta1: must be in [0, 1), got 1.5",
        "optimizer: unknown optimizer 'adamx'",
        "momentum: does not apply to adamw",
        "neurons: must be a positive integer, got 0",
        "gradient: ",
        "schedule: ",
        "optimizer: not given",
        "lr: must be positive",
    };
    for (size_t i = 0; i < 9; i++) {
        if (want[i][0] == '\0')
            assert_string_equal(point_at(g, i)->error, "");
        else if (strstr(point_at(g, i)->error, want[i]) == NULL) {
            print_error("point %zu: '%s', want '%s'\n", i, point_at(g, i)->error, want[i]);
            fail();
        }
    }
    /* The other fields of a bad point are still filled in, so its row shows what was asked. */
    assert_int_equal(point_at(g, 1)->cfg.dim, 40);
    roteq_sweep_grid_free(g);
}

/* A matrix optimizer's points (its family's simulator): its own keys, the per-neuron engine's
 * refused and the other way round, the row columns describing the ensemble, and the runner giving
 * exactly what the family's simulator gives for the point's seed. */
static void test_matrix_points(void **state)
{
    (void)state;
    roteq_sweep_grid *g = parse_ok(
        "{\"seed\": 3, \"fixed\": {\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1},"
        " \"points\": ["
        "  {\"shape\": \"6x10\", \"matrices\": 2, \"steps\": 120, \"momentum\": 0.9,"
        "   \"nesterov\": false, \"ns_steps\": 7, \"adjust_lr\": \"match_rms_adamw\"},"
        "  {\"shape\": \"6x10\", \"dim\": 10},"
        "  {},"
        "  {\"shape\": \"6x\"},"
        "  {\"shape\": \"6x10\", \"beta1\": 0.9},"
        "  {\"shape\": \"6x10\", \"ns_steps\": 100},"
        "  {\"shape\": \"6x10\", \"adjust_lr\": \"sqrt\"},"
        "  {\"optimizer\": \"sgd\", \"shape\": \"6x10\"}"
        " ]}");
    static const char *const want[] = {
        "",
        "dim: does not apply to muon",
        "shape: not given",
        "shape: '6x' is not ROWSxCOLS",
        "beta1: does not apply to muon",
        "ns_steps: must be an integer in 1..99",
        "adjust_lr: ",
        "shape: does not apply to sgd",
    };
    assert_int_equal(g->npoints, 8);
    for (size_t i = 0; i < 8; i++)
        if (strstr(point_at(g, i)->error, want[i]) == NULL ||
            (!want[i][0] && point_at(g, i)->error[0])) {
            print_error("point %zu: '%s', want '%s'\n", i, point_at(g, i)->error, want[i]);
            fail();
        }
    const roteq_sweep_point *p = point_at(g, 0);
    assert_true(p->matrix);
    assert_ptr_equal(p->cfg.opt, &roteq_muon);
    assert_int_equal(p->mcfg.hp.rows, 6);
    assert_int_equal(p->mcfg.hp.cols, 10);
    assert_int_equal(p->mcfg.hp.ns_steps, 7);
    assert_int_equal(p->mcfg.hp.nesterov, 0);
    assert_int_equal(p->mcfg.hp.adjust, ROTEQ_MUON_ADJUST_MATCH_RMS_ADAMW);
    assert_int_equal(p->cfg.neurons, 12); /* the rows of both matrices */
    assert_int_equal(p->cfg.dim, 10);
    assert_int_equal(p->cfg.steps, 120);
    assert_false(point_at(g, 7)->matrix);

    roteq_sweep_record rec;
    memset(&rec, 0, sizeof rec);
    assert_int_equal(roteq_sweep_sim_runner(p, 1, &rec, NULL), 0);
    roteq_sim_muon_config c = p->mcfg;
    c.seed = p->seed, c.threads = 1, c.every = c.steps;
    roteq_sim_muon_result res;
    assert_int_equal(roteq_sim_muon_run(&c, &res), 0);
    assert_memory_equal(&rec.norm, &res.row_norm, sizeof rec.norm);
    assert_memory_equal(&rec.angle, &res.row_angle_rms, sizeof rec.angle);
    assert_memory_equal(&rec.norm_se, &res.row_norm_se, sizeof rec.norm_se);
    roteq_sim_muon_result_free(&res);
    roteq_muon_equilibrium best, lionlike;
    assert_int_equal(roteq_muon_equilibrium_of(&c.hp, ROTEQ_MUON_PRED_BEST, &best), 0);
    assert_int_equal(roteq_muon_equilibrium_of(&c.hp, ROTEQ_MUON_PRED_LIONLIKE, &lionlike), 0);
    assert_memory_equal(&rec.pred[ROTEQ_PRED_BEST].norm, &best.norm, sizeof best.norm);
    assert_memory_equal(&rec.pred[ROTEQ_PRED_PAPER].norm, &lionlike.norm, sizeof best.norm);
    assert_false(rec.pred[ROTEQ_PRED_BEST].exact);
    assert_non_null(strstr(rec.reason, "6x10 matrices, ns_steps 7, adjust_lr match_rms_adamw"));
    char *row = roteq_sweep_format_row(ROTEQ_SWEEP_CSV, g, p, &rec);
    assert_non_null(row);
    assert_non_null(strstr(row,
                           ",muon,0.02,0.10000000000000001,,,,0.90000000000000002,,0,,12,10,120,"
                           "scale-invariant,,,,,,constant,constant,"));
    free(row);
    roteq_sweep_grid_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_order), cmocka_unit_test(test_points_groups_inheritance),
        cmocka_unit_test(test_other_keys),    cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_hash),          cmocka_unit_test(test_lazy_points),
        cmocka_unit_test(test_malformed),     cmocka_unit_test(test_bad_points),
        cmocka_unit_test(test_matrix_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
