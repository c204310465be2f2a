/* test_muon.c - the Muon simulator (sim/muon.c): its step reproduces the committed reference
 * trajectories of torch.optim.Muon's algorithm (tests/data/muon_steps, written by
 * tests/data/gen_muon_steps.py) to 1e-12; runs are bit-identical for any thread count; the
 * measured equilibrium agrees with theory where theory is exact (momentum 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_sim_muon.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 64

static void parse_header(char *line, roteq_muon_hparams *hp)
{
    for (char *tok = strtok(line + 1, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        if (strcmp(k, "rows") == 0)
            hp->rows = strtoul(v, NULL, 10);
        else if (strcmp(k, "cols") == 0)
            hp->cols = strtoul(v, NULL, 10);
        else if (strcmp(k, "lr") == 0)
            assert_int_equal(roteq_parse_double(v, &hp->lr), 0);
        else if (strcmp(k, "weight_decay") == 0)
            assert_int_equal(roteq_parse_double(v, &hp->weight_decay), 0);
        else if (strcmp(k, "momentum") == 0)
            assert_int_equal(roteq_parse_double(v, &hp->momentum), 0);
        else if (strcmp(k, "eps") == 0)
            assert_int_equal(roteq_parse_double(v, &hp->eps), 0);
        else if (strcmp(k, "nesterov") == 0)
            hp->nesterov = strcmp(v, "True") == 0;
        else if (strcmp(k, "ns_steps") == 0)
            hp->ns_steps = atoi(v);
        else if (strcmp(k, "adjust_lr") == 0)
            assert_int_equal(roteq_muon_adjust_parse(v, &hp->adjust), 0);
    }
}

/* Replays one file; returns the worst relative error over all coordinates and steps. */
static double replay(const char *path, size_t *steps)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[1 << 16];
    roteq_muon_hparams hp = roteq_muon_defaults();
    double W[MAXN], G[MAXN], buf[MAXN] = {0}, x[MAXN], worst = 0;
    roteq_muon_work *wk = NULL;
    size_t n = 0, t = 0;
    int columns = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            parse_header(line, &hp);
            continue;
        }
        if (!columns) {
            columns = 1;
            assert_int_equal(roteq_muon_validate(&hp), 0);
            n = hp.rows * hp.cols;
            assert_true(n <= MAXN);
            wk = roteq_muon_work_alloc(hp.rows, hp.cols);
            assert_non_null(wk);
            continue;
        }
        char *step_s = strtok(line, ","), *kind = strtok(NULL, ",");
        assert_non_null(kind);
        for (size_t i = 0; i < n; i++) {
            char *c = strtok(NULL, ",\r\n");
            assert_non_null(c);
            assert_int_equal(roteq_parse_double(c, &x[i]), 0);
        }
        size_t step = strtoul(step_s, NULL, 10);
        if (step == 0) {
            memcpy(W, x, n * sizeof *x);
        } else if (strcmp(kind, "grad") == 0) {
            assert_int_equal(step, t + 1);
            memcpy(G, x, n * sizeof *x);
        } else {
            t = step;
            roteq_muon_step(wk, &hp, hp.lr, hp.weight_decay, W, buf, G);
            for (size_t i = 0; i < n; i++) {
                double err = fabs(W[i] - x[i]) / fabs(x[i]);
                worst = err > worst ? err : worst;
                if (!(err <= 1e-12))
                    fail_msg("%s: step %zu x%zu = %.17g, reference %.17g (relative error %.3g)",
                             path, t, i, W[i], x[i], err);
            }
        }
    }
    fclose(f);
    roteq_muon_work_free(wk);
    *steps = t;
    return worst;
}

static void test_reference_trajectories(void **state)
{
    (void)state;
    char *dir = roteq_test_path(roteq_test_source_dir(), "tests/data/muon_steps");
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".csv") != 0)
            continue;
        char *path = roteq_test_path(dir, e->d_name);
        size_t steps = 0;
        double worst = replay(path, &steps);
        assert_true(steps >= 20);
        printf("# %-26s %zu steps, worst relative error %.2g\n", e->d_name, steps, worst);
        free(path);
        files++;
    }
    closedir(d);
    free(dir);
    assert_true(files >= 4);
}

static void run(unsigned threads, size_t rows, size_t cols, double momentum,
                roteq_sim_muon_result *res)
{
    roteq_sim_muon_config cfg;
    roteq_sim_muon_config_init(&cfg);
    cfg.hp.lr = 0.02;
    cfg.hp.weight_decay = 0.1;
    cfg.hp.momentum = momentum;
    cfg.hp.rows = rows, cfg.hp.cols = cols;
    cfg.matrices = 5;
    cfg.steps = 60;
    cfg.every = 7;
    cfg.threads = threads;
    cfg.seed = 77;
    assert_int_equal(roteq_sim_muon_run(&cfg, res), 0);
}

static void test_threads_bit_identical(void **state)
{
    (void)state;
    roteq_sim_muon_result a, b;
    run(1, 9, 6, 0.9, &a);
    run(3, 9, 6, 0.9, &b);
    assert_int_equal(a.nrows, 8);
    assert_int_equal(b.nrows, a.nrows);
    assert_memory_equal(a.rows, b.rows, a.nrows * sizeof *a.rows);
    assert_memory_equal(&a.row_norm, &b.row_norm, sizeof(double));
    assert_memory_equal(&a.row_angle_rms, &b.row_angle_rms, sizeof(double));
    assert_memory_equal(&a.matrix_norm, &b.matrix_norm, sizeof(double));
    assert_memory_equal(&a.matrix_angle_rms, &b.matrix_angle_rms, sizeof(double));
    roteq_sim_muon_result_free(&a);
    roteq_sim_muon_result_free(&b);
}

/* At momentum 0 successive updates are uncorrelated: the plain form with the measured
 * E||o_row||^2 is exact up to the O(1/C) mean field and the first-order decay. */
static void test_momentum_zero_equilibrium(void **state)
{
    (void)state;
    roteq_sim_muon_config cfg;
    roteq_sim_muon_config_init(&cfg);
    cfg.hp.lr = 0.02, cfg.hp.weight_decay = 0.1, cfg.hp.momentum = 0.0;
    cfg.hp.rows = 32, cfg.hp.cols = 48;
    cfg.matrices = 6, cfg.steps = 3000, cfg.threads = 2, cfg.seed = 5;
    roteq_sim_muon_result res;
    assert_int_equal(roteq_sim_muon_run(&cfg, &res), 0);
    roteq_muon_equilibrium best;
    assert_int_equal(roteq_muon_equilibrium_of(&cfg.hp, ROTEQ_MUON_PRED_BEST, &best), 0);
    /* the Marchenko-Pastur spectrum gives E||o_row||^2 to finite-size accuracy */
    assert_close(res.q_row, best.q_row, 0.01);
    double ea = roteq_muon_adjusted_lr(&cfg.hp, cfg.hp.lr), d = 1 - 0.02 * 0.1;
    double norm = sqrt(ea * ea * res.q_row / (1 - d * d));
    assert_within_se(res.row_norm, norm, res.row_norm_se, 4, 5);
    assert_close(res.row_norm, norm, 0.01);
    assert_close(res.row_angle_rms, best.angular_update, 0.02);
    assert_close(res.matrix_norm, sqrt(32.0) * res.row_norm, 0.01);
    roteq_sim_muon_result_free(&res);
}

/* Under a warm-up + cosine schedule from 3x the equilibrium norm, the recorded rows follow
 * theory's transient (pred_norm is RMS, the measurement a mean: allow 1%). */
static void test_transient_schedule(void **state)
{
    (void)state;
    roteq_sim_muon_config cfg;
    roteq_sim_muon_config_init(&cfg);
    cfg.hp.lr = 0.02, cfg.hp.weight_decay = 0.1, cfg.hp.momentum = 0.9;
    cfg.hp.rows = 32, cfg.hp.cols = 64;
    cfg.matrices = 4, cfg.steps = 1000, cfg.every = 100, cfg.threads = 2, cfg.seed = 9;
    cfg.init_norm = 3.0;
    assert_int_equal(roteq_schedule_parse("warmup:100+cosine:900:0.1", &cfg.lr_schedule), 0);
    roteq_sim_muon_result res;
    assert_int_equal(roteq_sim_muon_run(&cfg, &res), 0);
    assert_int_equal(res.nrows, 10);
    for (size_t i = 0; i < res.nrows; i++)
        assert_close(res.rows[i].row_norm, res.rows[i].pred_norm, 0.01);
    roteq_sim_muon_result_free(&res);
}

static void test_bad_config(void **state)
{
    (void)state;
    roteq_sim_muon_config cfg;
    roteq_sim_muon_config_init(&cfg);
    roteq_sim_muon_result res;
    cfg.hp.momentum = 1.0;
    assert_int_equal(roteq_sim_muon_run(&cfg, &res), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "momentum"));
    cfg.hp.momentum = 0.9, cfg.hp.cols = 1;
    assert_int_equal(roteq_sim_muon_run(&cfg, &res), ROTEQ_EINVAL);
    cfg.hp.cols = 8, cfg.matrices = 0;
    assert_int_equal(roteq_sim_muon_run(&cfg, &res), ROTEQ_EINVAL);
    /* 60000 x 60000 matrices (29 GB each, eight per thread) are refused before allocating */
    cfg.matrices = 2, cfg.hp.rows = cfg.hp.cols = 60000;
    assert_int_equal(roteq_sim_muon_run(&cfg, &res), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "available"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_trajectories),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_momentum_zero_equilibrium),
        cmocka_unit_test(test_transient_schedule),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
