/* test_verdicts.c - the judgement on top of the estimates (analysis/verdict.c, settle.c,
 * explain.c): verdicts that name the quantity that is off, a far-off flat layer never called
 * "converging" (issue 13 item 17), verdicts that do not change with --window, the collapse rule
 * against the predicted norm, a settled step for a noisy layer at equilibrium, both predictions
 * and --against, layer classification and the two balances, the k-step angle of snapshots as a
 * consistency check only, and --explain's parts on traces whose radial component, update
 * correlation and norm offset are known by construction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_analysis.h"
#include "roteq_sim_muon.h"
#include "roteq_test.h"
#include "roteq_test_json.h"
#include "roteq_util.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deterministic standard normals (xorshift64* and Box-Muller) for synthetic noise. */
static double normal(uint64_t *s)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
        u[i] = ((double)((*s * 2685821657736338717ULL) >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static roteq_analysis_meta adamw(double lr, double wd, size_t dim)
{
    roteq_analysis_meta m;
    char json[160];
    snprintf(json, sizeof json,
             "{\"optimizer\":\"adamw\",\"lr\":%.17g,\"weight_decay\":%.17g,\"dim\":%zu}", lr, wd,
             dim);
    assert_int_equal(roteq_analysis_meta_parse("meta.json", json, strlen(json), &m), 0);
    return m;
}

static roteq_equilibrium equilibrium(double lr, double wd, size_t dim)
{
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = lr;
    hp.weight_decay = wd;
    roteq_setting s = {dim, DNAN};
    roteq_equilibrium eq;
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &s, ROTEQ_PRED_BEST, &eq), 0);
    return eq;
}

static int run_cfg(const char *csv, const roteq_analysis_config *cfg, roteq_analysis_result **res)
{
    roteq_analysis *a = roteq_analysis_alloc(cfg);
    assert_non_null(a);
    roteq_analysis_csv_reader *r = roteq_analysis_csv_reader_alloc("t.csv", a);
    int st = roteq_analysis_csv_reader_feed(r, csv, strlen(csv));
    if (!st)
        st = roteq_analysis_csv_reader_finish(r);
    roteq_analysis_csv_reader_free(r);
    if (!st)
        st = roteq_analysis_finish(a, res);
    roteq_analysis_free(a);
    return st;
}

static roteq_analysis_result *run(const char *csv, const roteq_analysis_meta *m, size_t window)
{
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, m);
    cfg.window = window;
    cfg.explain = 1;
    roteq_analysis_result *r = NULL;
    if (run_cfg(csv, &cfg, &r))
        fail_msg("analysis failed: %s", roteq_error_message());
    return r;
}

/* A stationary layer whose norm is 13% low while it rotates 1% slow: the verdict names the norm
 * and both errors; the ratio is the norm's. */
static void test_names_the_quantity(void **state)
{
    (void)state;
    roteq_analysis_meta m = adamw(1e-2, 0.1, 64);
    roteq_equilibrium eq = equilibrium(1e-2, 0.1, 64);
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
    for (int s = 1; s <= 800; s++)
        for (int i = 0; i < 16; i++)
            roteq_test_textf(&t, "%d,fc1,%d,%.17g,%.17g\n", s, i,
                             0.87 * eq.norm * (1 + 1e-3 * (i - 7.5)),
                             0.99 * eq.angular_update * (1 + 1e-3 * (i - 7.5)));
    roteq_analysis_result *r = run(t.s, &m, 200);
    const roteq_analysis_layer_result *L = &r->layers[0];
    assert_int_equal(L->verdict, ROTEQ_ANALYSIS_OFF_PREDICTION);
    assert_string_equal(L->off_quantity, "norm");
    assert_close(L->ratio, 0.87, 1e-3);
    assert_string_equal(L->detail, "norm -13.0%, angle -1.0%");
    FILE *f = tmpfile();
    assert_int_equal(roteq_analysis_write_text(f, r), 0);
    long n = ftell(f);
    rewind(f);
    char *buf = calloc((size_t)n + 1, 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    assert_non_null(strstr(buf, "off-prediction (norm -13.0%, angle -1.0%)"));
    free(buf);
    fclose(f);
    roteq_analysis_result_free(r);
    roteq_analysis_meta_clear(&m);
    free(t.s);
}

static json_t *analyze_json(const char *const *args)
{
    const char *argv[24] = {"analyze"};
    size_t n = 1;
    while (args[n - 1])
        argv[n] = args[n - 1], n++;
    argv[n++] = "--format";
    argv[n++] = "json";
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = roteq_test_run(argv, NULL, &out, &err);
    if (rc != 0)
        fail_msg("analyze %s failed (%d): %s", args[0], rc, err);
    json_t *j = roteq_test_json(out);
    free(out), free(err);
    return j;
}

static void simulate(const char *trace, const char *neurons, const char *steps, const char *seed,
                     const char *extra)
{
    const char *sim[] = {"simulate", "--optimizer", "adamw", "--lr",    "1e-2", "--weight-decay",
                         "0.1",      "--neurons",   neurons, "--dim",   "64",   "--steps",
                         steps,      "--seed",      seed,    "--every", "1",    "--trace",
                         trace,      "--quiet",     extra,   NULL};
    char *err = NULL;
    int rc = roteq_test_run(sim, NULL, NULL, &err);
    if (rc != 0)
        fail_msg("roteq simulate failed (%d): %s", rc, err);
    free(err);
}

static const char *verdict_of(json_t *j)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(j, "layers"), 0), "verdict"));
}

/* Issue 13 item 17: a stationary layer 3x off its prediction, with 2 neurons, was "converging" in
 * 8 of 12 seeds (the old rule compared errors of ~2.0 with a fixed tolerance/2). Now in none. */
static void test_far_off_flat_never_converging(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = roteq_test_path(dir, "t.csv");
    for (int seed = 1; seed <= 12; seed++) {
        char s[16];
        snprintf(s, sizeof s, "%d", seed);
        simulate(trace, "2", "2000", s, NULL);
        /* lr/9 predicts a 3x smaller norm and angle than the run has. */
        json_t *j = analyze_json((const char *[]){trace, "--lr", "0.0011111111111111111", NULL});
        const char *v = verdict_of(j);
        if (strcmp(v, "converging") == 0)
            fail_msg("seed %d: a flat layer 3x off reads 'converging'", seed);
        /* Flat here, but with 2 neurons the trend test (3 SE) may call one of the 12 seeds still
         * relaxing: 'off-prediction' (seed 12 of the ARS-5 + ziggurat stream). */
        if (strcmp(v, "not scale-invariant-like") != 0 && strcmp(v, "off-prediction") != 0)
            fail_msg("seed %d: a flat layer 3x off reads '%s'", seed, v);
        json_decref(j);
    }
    free(trace);
    roteq_test_rmtree(dir);
}

/* The same run gives the same verdict whatever --window: at equilibrium with the right
 * hyperparameters, off-prediction (by 23%) with lr x 1.69. */
static void test_window_robust(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = roteq_test_path(dir, "t.csv");
    simulate(trace, "32", "4000", "5", NULL);
    const char *windows[] = {"20", "50", "100", "200", "400", "1000"};
    for (size_t k = 0; k < sizeof windows / sizeof windows[0]; k++) {
        json_t *j = analyze_json((const char *[]){trace, "--window", windows[k], NULL});
        if (strcmp(verdict_of(j), "at equilibrium") != 0)
            fail_msg("--window %s: %s", windows[k], verdict_of(j));
        json_decref(j);
        j = analyze_json((const char *[]){trace, "--window", windows[k], "--lr", "0.0169", NULL});
        if (strcmp(verdict_of(j), "off-prediction") != 0)
            fail_msg("--window %s, lr x 1.69: %s", windows[k], verdict_of(j));
        json_decref(j);
    }
    free(trace);
    roteq_test_rmtree(dir);
}

/* 137 of 256 units collapsed to norm 0.04 against an equilibrium of 0.18 (the median is among
 * them, so the 1%-of-median rule alone misses them): they are counted and left out. */
static void test_collapse_against_prediction(void **state)
{
    (void)state;
    double lr = 1e-3, wd = 0.1;
    size_t dim = 6;
    roteq_analysis_meta m = adamw(lr, wd, dim);
    roteq_equilibrium eq = equilibrium(lr, wd, dim);
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
    for (int s = 1; s <= 400; s++)
        for (int i = 0; i < 256; i++) {
            int low = i < 137;
            double f = 1 + 1e-3 * (i % 7 - 3);
            roteq_test_textf(&t, "%d,h.1.mlp.fc,%d,%.17g,%.17g\n", s, i,
                             (low ? 0.04 / 0.18 : 1.0) * eq.norm * f,
                             (low ? 4.6 : 1.0) * eq.angular_update * f);
        }
    roteq_analysis_result *r = run(t.s, &m, 100);
    const roteq_analysis_layer_result *L = &r->layers[0];
    assert_int_equal(L->collapsed, 137);
    assert_true(fabs(L->rel_norm) < 0.01 && fabs(L->rel_angle) < 0.01);
    assert_non_null(strstr(L->detail, "137/256 collapsed"));
    roteq_analysis_result_free(r);
    roteq_analysis_meta_clear(&m);
    free(t.s);
}

/* A layer at equilibrium whose angles carry 25% common-mode noise from step to step (the batch)
 * and 30% per neuron: a 5-record trailing RMS leaves a fixed 5% band again and again, the band
 * widened by the trailing estimate's standard error does not. It settles within its first
 * relaxation time. */
static void test_settled_with_noise(void **state)
{
    (void)state;
    double lr = 1e-2, wd = 0.1;
    roteq_analysis_meta m = adamw(lr, wd, 64);
    roteq_equilibrium eq = equilibrium(lr, wd, 64);
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
    for (int s = 1; s <= 3000; s++) {
        double common = 0.25 * normal(&rng);
        for (int i = 0; i < 48; i++) {
            double a = eq.angular_update * (1 + common + 0.3 * normal(&rng)) / sqrt(1.1525);
            roteq_test_textf(&t, "%d,conv,%d,%.17g,%.17g\n", s, i,
                             eq.norm * (1 + 0.02 * (i % 5 - 2)), fabs(a));
        }
    }
    roteq_analysis_result *r = run(t.s, &m, 200);
    const roteq_analysis_layer_result *L = &r->layers[0];
    assert_int_equal(L->verdict, ROTEQ_ANALYSIS_AT_EQUILIBRIUM);
    assert_true(L->converged_at >= 1 && L->converged_at < 1000);
    roteq_analysis_result_free(r);
    roteq_analysis_meta_clear(&m);
    free(t.s);
}

/* A warmup (lr column rising for 100 steps): both predictions are reported; by default the
 * verdict uses the transient, --against equilibrium the per-step closed form. */
static void test_against(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = roteq_test_path(dir, "t.csv");
    simulate(trace, "16", "3000", "2", "--schedule=warmup:100");
    json_t *j = analyze_json((const char *[]){trace, NULL});
    json_t *L = json_array_get(json_object_get(j, "layers"), 0);
    assert_string_equal(json_string_value(json_object_get(L, "against")), "transient");
    assert_string_equal(json_string_value(json_object_get(L, "prediction")), "transient");
    json_t *eqb = json_object_get(L, "equilibrium"), *trb = json_object_get(L, "transient");
    assert_true(json_is_object(eqb) && json_is_object(trb));
    assert_close(
        json_real_value(json_object_get(json_object_get(L, "predicted"), "angular_update")),
        json_real_value(json_object_get(trb, "angular_update")), 1e-15);
    assert_true(json_is_real(json_object_get(eqb, "angular_update")));
    assert_true(json_is_real(json_object_get(json_object_get(eqb, "relative_error"), "norm")));
    double eq_angle = json_real_value(json_object_get(eqb, "angular_update"));
    json_decref(j);
    j = analyze_json((const char *[]){trace, "--against", "equilibrium", NULL});
    L = json_array_get(json_object_get(j, "layers"), 0);
    assert_string_equal(json_string_value(json_object_get(L, "against")), "equilibrium");
    assert_close(
        json_real_value(json_object_get(json_object_get(L, "predicted"), "angular_update")),
        eq_angle, 1e-15);
    json_decref(j);
    char *out = NULL, *err = NULL;
    int rc = roteq_test_run((const char *[]){"analyze", trace, "--against", "both", NULL}, NULL,
                            &out, &err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--against"));
    free(out), free(err);
    free(trace);
    roteq_test_rmtree(dir);
}

/* Classification from the recorded gradient cosine (and by name without it) and the two
 * balances: the output layer rotating at 0.3x is left out of `balance`, not of `balance_all`. */
static void test_classification_and_balance(void **state)
{
    (void)state;
    roteq_analysis_meta m = adamw(1e-2, 0.1, 64);
    roteq_equilibrium eq = equilibrium(1e-2, 0.1, 64);
    const struct {
        const char *name;
        double angle, grad_cos; /* grad_cos < 0: empty field */
    } layers[] = {{"fc1.weight", 1.0, 2e-6},
                  {"fc2.weight", 1.1, 1e-6},
                  {"out.weight", 0.3, 0.5},
                  {"wte.weight", 0.5, -1}};
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle,grad_cos\n");
    for (int s = 1; s <= 400; s++)
        for (size_t l = 0; l < 4; l++)
            for (int i = 0; i < 8; i++) {
                double f = 1 + 1e-3 * (i - 3.5);
                roteq_test_textf(&t, "%d,%s,%d,%.17g,%.17g,", s, layers[l].name, i, eq.norm * f,
                                 layers[l].angle * eq.angular_update * f);
                if (layers[l].grad_cos >= 0)
                    roteq_test_textf(&t, "%.17g", layers[l].grad_cos * (i % 2 ? 1 : -1));
                roteq_test_textf(&t, "\n");
            }
    roteq_analysis_result *r = run(t.s, &m, 100);
    assert_int_equal(r->nlayers, 4);
    assert_int_equal(r->layers[0].scale_invariant, 1);
    assert_non_null(strstr(r->layers[0].evidence, "grad_cos"));
    assert_close(r->layers[0].grad_cos_rms, 2e-6, 1e-9);
    assert_int_equal(r->layers[1].scale_invariant, 1);
    assert_int_equal(r->layers[2].scale_invariant, 0);
    assert_int_equal(r->layers[2].verdict, ROTEQ_ANALYSIS_NOT_SCALE_INVARIANT);
    assert_int_equal(r->layers[3].scale_invariant, 0);
    assert_non_null(strstr(r->layers[3].evidence, "embedding"));
    assert_int_equal(r->balance_layers, 2);
    assert_close(r->balance, 1.1, 1e-9);
    assert_close(r->balance_all, 1.1 / 0.3, 1e-9);
    FILE *f = tmpfile();
    assert_int_equal(roteq_analysis_write_json(f, r), 0);
    rewind(f);
    json_error_t e;
    json_t *j = json_loadf(f, 0, &e);
    assert_non_null(j);
    assert_close(json_real_value(json_object_get(j, "balance_all")), 1.1 / 0.3, 1e-12);
    json_t *L0 = json_array_get(json_object_get(j, "layers"), 0);
    assert_true(json_is_true(json_object_get(L0, "scale_invariant")));
    json_t *L3 = json_array_get(json_object_get(j, "layers"), 3);
    assert_true(json_is_false(json_object_get(L3, "scale_invariant")));
    json_decref(j);
    fclose(f);
    roteq_analysis_result_free(r);
    roteq_analysis_meta_clear(&m);
    free(t.s);
}

/* Snapshots 100 steps apart whose updates are correlated: the 100-step angle is 0.6x the
 * random-walk k-step prediction while the norm sits at equilibrium. The rotation is not judged
 * from it: at equilibrium by the norm, with the implied update correlation reported. */
static void test_kstep_not_judged(void **state)
{
    (void)state;
    double lr = 1e-2, wd = 0.1;
    size_t dim = 64;
    roteq_analysis_meta m = adamw(lr, wd, dim);
    roteq_equilibrium eq = equilibrium(lr, wd, dim);
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = lr, hp.weight_decay = wd;
    roteq_setting set = {dim, DNAN};
    double ak = roteq_theory_kstep_angle(&roteq_adamw, &hp, &set, 100);
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &m);
    roteq_analysis *a = roteq_analysis_alloc(&cfg);
    size_t li;
    assert_int_equal(roteq_analysis_layer(a, "conv1.weight", 12, dim, &li), 0);
    for (long s = 0; s <= 5000; s += 100)
        for (size_t i = 0; i < 16; i++) {
            double f = 1 + 1e-3 * ((double)i - 7.5);
            roteq_analysis_row row = {.step = s,
                                      .neuron = i,
                                      .norm = eq.norm * f,
                                      .angle = s ? 0.6 * ak * f : DNAN,
                                      .lr = DNAN,
                                      .weight_decay = DNAN,
                                      .gap = s ? 100 : -1};
            assert_int_equal(roteq_analysis_add(a, li, &row), 0);
        }
    roteq_analysis_result *r;
    assert_int_equal(roteq_analysis_finish(a, &r), 0);
    const roteq_analysis_layer_result *L = &r->layers[0];
    assert_false(L->angle_judged);
    assert_int_equal(L->verdict, ROTEQ_ANALYSIS_AT_EQUILIBRIUM);
    assert_close(L->rel_angle, -0.4, 1e-3);
    assert_close(L->step_angle_pred, eq.angular_update, 1e-12);
    assert_close(L->implied_corr, pow(0.6 * ak, 2) / (100 * pow(eq.angular_update, 2)), 1e-3);
    assert_non_null(strstr(L->detail, "100-step angle not judged"));
    roteq_analysis_result_free(r);
    roteq_analysis_free(a);
    roteq_analysis_meta_clear(&m);
}

/* A stationary synthetic layer with a known update: size U = f_size x the model's, a radial part
 * X_rad on top of the correlation-induced <w,d>, lag-1 cosine rho, and a norm at n_off x its
 * balance. The angle of each step is computed exactly, atan2(eta p, a n + eta r). `ncollapsed`
 * more neurons sit at 1% of that norm with updates of the same size (Adam normalises them): the
 * parts must be those of the live neurons alone. */
typedef struct {
    double f_size, kappa_rad, kappa_corr, n_off;
} explain_case;

static void check_explain(const explain_case *c, int ncollapsed)
{
    double lr = 1e-2, wd = 0.1, aa = 1 - lr * wd;
    size_t dim = 64;
    roteq_analysis_meta m = adamw(lr, wd, dim);
    roteq_equilibrium eq = equilibrium(lr, wd, dim);
    double Ap = eq.angular_update, np = eq.norm;
    double kappa_m = (1 - aa * aa) / (aa * aa * Ap * Ap);
    double kappa_c = kappa_m * c->kappa_corr, kappa = kappa_c * c->kappa_rad;
    double rho = (kappa_c - 1) / (kappa_c + 1) / aa;
    double U = c->f_size * Ap * aa * np / lr;
    double X = (kappa - 1) * lr * U * U / (2 * aa);
    double nc = lr * U * sqrt(kappa / (1 - aa * aa)), n = c->n_off * nc;
    double r = X / n, p = sqrt(U * U - r * r);
    double angle = atan2(lr * p, aa * n + lr * r);
    roteq_test_text t = {0};
    roteq_test_textf(&t,
                     "step,layer,neuron,norm,angle,update_norm,update_radial,update_cos_prev\n");
    double nz = 0.01 * n, az = atan2(lr * U, aa * nz);
    for (int s = 1; s <= 400; s++) {
        for (int i = 0; i < 8; i++)
            roteq_test_textf(&t, "%d,fc,%d,%.17g,%.17g,%.17g,%.17g,%.17g\n", s, i, n, angle, U, r,
                             rho);
        for (int i = 8; i < 8 + ncollapsed; i++)
            roteq_test_textf(&t, "%d,fc,%d,%.17g,%.17g,%.17g,0,0\n", s, i, nz, az, U);
    }
    roteq_analysis_result *res = run(t.s, &m, 100);
    assert_int_equal(res->layers[0].collapsed, ncollapsed);
    const roteq_analysis_explain *E = &res->layers[0].explain;
    assert_true(E->valid);
    double sum = E->update_size + E->norm_response + E->radial + E->correlation + E->nonstationary +
                 E->residual;
    assert_close(sum, E->deviation, 1e-9);
    assert_close(E->deviation, angle / Ap - 1, 1e-9);
    /* Each part as injected (log terms on the scale of the deviation), the residual within 2
     * percentage points. */
    double dev = angle / Ap - 1, scale = fabs(dev) > 1e-12 ? dev / log1p(dev) : 1.0;
    double phi = p * p / (U * U);
    assert_true(fabs(E->update_size - scale * log(c->f_size)) < 1e-9);
    assert_true(fabs(E->update_size + E->norm_response) < 1e-12);
    assert_true(fabs(E->radial - scale * (0.5 * log(phi) - 0.5 * log(c->kappa_rad))) < 1e-9);
    assert_true(fabs(E->correlation + scale * 0.5 * log(c->kappa_corr)) < 1e-9);
    assert_true(fabs(E->nonstationary + scale * log(c->n_off)) < 1e-9);
    assert_true(fabs(E->residual) < 0.02);
    assert_close(E->cond_norm, nc, 1e-9);
    assert_close(E->update_ratio, c->f_size, 1e-9);
    roteq_analysis_result_free(res);
    roteq_analysis_meta_clear(&m);
    free(t.s);
}

static void test_explain_parts(void **state)
{
    (void)state;
    const explain_case cases[] = {
        {1.0, 1.0, 1.0, 1.0},   /* the model itself: every part 0 */
        {0.9, 1.0, 1.0, 1.0},   /* 10% smaller steps: the norm follows, the angle does not move */
        {0.93, 1.19, 1.0, 1.0}, /* an outward radial part (fc1 of examples/fashion_mnist) */
        {1.0, 1.0, 1.15, 1.0},  /* updates more correlated than the model's */
        {1.0, 1.0, 1.0, 1.1},   /* the norm 10% above its balance */
        {0.95, 1.1, 0.9, 0.95}, /* all at once */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int ncollapsed = 0; ncollapsed <= 24; ncollapsed += 24)
            check_explain(&cases[k], ncollapsed);
}

/* ---- per-step angles from checkpoints with optimizer state */

/* A safetensors file of F64 tensors [rows, cols] with a __metadata__ entry roteq.optimizer. */
static void write_safetensors(const char *path, const char *const *names, const double *const *data,
                              size_t ntensors, size_t rows, size_t cols, const char *meta_json)
{
    roteq_test_text h = {0};
    roteq_test_textf(&h, "{");
    size_t bytes = rows * cols * sizeof(double);
    for (size_t i = 0; i < ntensors; i++)
        roteq_test_textf(
            &h, "\"%s\":{\"dtype\":\"F64\",\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]},",
            names[i], rows, cols, i * bytes, (i + 1) * bytes);
    json_t *js = json_string(meta_json);
    char *quoted = json_dumps(js, JSON_ENCODE_ANY);
    roteq_test_textf(&h, "\"__metadata__\":{\"roteq.optimizer\":%s}}", quoted);
    free(quoted);
    json_decref(js);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = h.n;
    assert_int_equal(fwrite(&n, 8, 1, f), 1);
    assert_int_equal(fwrite(h.s, 1, h.n, f), h.n);
    for (size_t i = 0; i < ntensors; i++)
        assert_int_equal(fwrite(data[i], sizeof(double), rows * cols, f), rows * cols);
    assert_int_equal(fclose(f), 0);
    free(h.s);
}

enum { SN = 16, SC = 24 };

typedef enum { MODE_ADAMW, MODE_SGDM, MODE_AMSGRAD } train_mode;

/* One optimizer step of coordinate k at step t for gradient gj. amsgrad divides by the running
 * maximum vmax of v, which differs from v once the gradients shrink. */
static void train_coord(train_mode mode, long t, size_t k, double gj, double *w, double *m,
                        double *v, double *vmax)
{
    double lr = mode == MODE_SGDM ? 0.05 : 0.01, wd = mode == MODE_SGDM ? 5e-3 : 0.1;
    double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    if (mode == MODE_SGDM) {
        gj += wd * w[k];
        m[k] = t == 1 ? gj : 0.9 * m[k] + gj;
        w[k] -= lr * m[k];
        return;
    }
    m[k] = b1 * m[k] + (1 - b1) * gj;
    v[k] = b2 * v[k] + (1 - b2) * gj * gj;
    vmax[k] = v[k] > vmax[k] ? v[k] : vmax[k];
    double den = mode == MODE_AMSGRAD ? vmax[k] : v[k];
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    w[k] = w[k] * (1 - lr * wd) - lr / bc1 * m[k] / (sqrt(den) / sqrt(bc2) + eps);
}

/* The snapshot of step t: the weight and the optimizer state, with the recorder's metadata. */
static void write_state_snapshot(const char *dir, train_mode mode, int lr_applied, long t,
                                 const double *w, const double *m, const double *v,
                                 const double *vmax)
{
    char meta[512], file[64];
    if (mode == MODE_SGDM)
        snprintf(meta, sizeof meta,
                 "{\"class\":\"SGD\",\"params\":{\"fc.weight\":{\"group\":0}},\"groups\":[{"
                 "\"lr\":0.05,%s\"momentum\":0.9,\"dampening\":0,\"weight_decay\":5e-3,"
                 "\"nesterov\":false}]}",
                 lr_applied ? "\"lr_applied\":0.05," : "");
    else
        snprintf(meta, sizeof meta,
                 "{\"class\":\"AdamW\",\"params\":{\"fc.weight\":{\"group\":0,\"step\":%ld}},"
                 "\"groups\":[{\"lr\":0.01,%s\"betas\":[0.9,0.999],\"eps\":1e-08,"
                 "\"weight_decay\":0.1%s}]}",
                 t, lr_applied ? "\"lr_applied\":0.01," : "",
                 mode == MODE_AMSGRAD ? ",\"amsgrad\":true" : "");
    snprintf(file, sizeof file, "step_%ld.safetensors", t);
    char *path = roteq_test_path(dir, file);
    const char *names[] = {"fc.weight",
                           mode == MODE_SGDM ? "optimizer/fc.weight/momentum_buffer"
                                             : "optimizer/fc.weight/exp_avg",
                           "optimizer/fc.weight/exp_avg_sq", "optimizer/fc.weight/max_exp_avg_sq"};
    const double *data[] = {w, m, v, vmax};
    size_t n = mode == MODE_SGDM ? 2 : mode == MODE_ADAMW ? 3 : 4;
    write_safetensors(path, names, data, n, SN, SC, meta);
    free(path);
}

/* RMS over the rows of the angle between prev and w (rows x cols). */
static double rms_angle(const double *prev, const double *w, size_t rows, size_t cols)
{
    double ss = 0;
    for (size_t r = 0; r < rows; r++) {
        double na = 0, nb = 0, d = 0, su = 0;
        for (size_t j = 0; j < cols; j++)
            na += prev[r * cols + j] * prev[r * cols + j], nb += w[r * cols + j] * w[r * cols + j];
        for (size_t j = 0; j < cols; j++) {
            double a = prev[r * cols + j] / sqrt(na), b = w[r * cols + j] / sqrt(nb);
            d += (a - b) * (a - b), su += (a + b) * (a + b);
        }
        double ang = 2 * atan2(sqrt(d), sqrt(su));
        ss += ang * ang;
    }
    return sqrt(ss / (double)rows);
}

/* Train SN neurons of SC weights with AdamW, heavy-ball SGD with L2 decay or AdamW with amsgrad
 * on gradients orthogonal to w (3x larger for the first 150 steps, so that amsgrad's maximum
 * stays above v afterwards), writing a snapshot with the optimizer state every 100 steps, and
 * return the RMS over neurons of the true angle of step `steps`. */
static double train_with_state(const char *dir, train_mode mode, int lr_applied, long steps)
{
    static double w[SN * SC], m[SN * SC], v[SN * SC], vmax[SN * SC], prev[SN * SC];
    uint64_t rng = 12345;
    for (size_t i = 0; i < SN * SC; i++)
        w[i] = normal(&rng) * 0.3, m[i] = v[i] = vmax[i] = 0;
    double last = DNAN;
    for (long t = 1; t <= steps; t++) {
        memcpy(prev, w, sizeof w);
        double scale = t <= 150 ? 3.0 : 1.0;
        for (size_t r = 0; r < SN; r++) {
            double g[SC], dot = 0, ww = 0;
            for (size_t j = 0; j < SC; j++)
                g[j] = normal(&rng), dot += g[j] * w[r * SC + j],
                ww += w[r * SC + j] * w[r * SC + j];
            for (size_t j = 0; j < SC; j++) {
                size_t k = r * SC + j;
                train_coord(mode, t, k, scale * (g[j] - dot / ww * w[k]) / sqrt(ww), w, m, v, vmax);
            }
        }
        if (t % 100)
            continue;
        write_state_snapshot(dir, mode, lr_applied, t, w, m, v, vmax);
        last = rms_angle(prev, w, SN, SC);
    }
    return last;
}

static roteq_analysis_result *analyze_dir(const char *dir, const char *optimizer, double lr,
                                          double wd)
{
    roteq_analysis_meta m;
    char json[160];
    snprintf(json, sizeof json, "{\"optimizer\":\"%s\",\"lr\":%.17g,\"weight_decay\":%.17g}",
             optimizer, lr, wd);
    assert_int_equal(roteq_analysis_meta_parse("meta.json", json, strlen(json), &m), 0);
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &m);
    roteq_analysis *a = NULL;
    if (roteq_analysis_read_snapshots(dir, NULL, &cfg, &a))
        fail_msg("%s", roteq_error_message());
    roteq_analysis_result *r = NULL;
    assert_int_equal(roteq_analysis_finish(a, &r), 0);
    roteq_analysis_free(a);
    roteq_analysis_meta_clear(&m);
    return r;
}

/* Snapshots 100 steps apart that carry the optimizer state: the last update is rebuilt exactly
 * (AdamW from m and v with the bias corrections, amsgrad from m and the running maximum of v;
 * heavy-ball SGD from its buffer) and each snapshot's angle is the single step's, equal to the
 * true one to rounding, judged like a trace's. Without lr_applied the layer is marked as using
 * the lr as saved. The layer is predicted with the state's lr and weight decay, whatever the
 * metadata says. */
static void test_per_step_from_state(void **state)
{
    (void)state;
    for (int mode = MODE_ADAMW; mode <= MODE_AMSGRAD; mode++)
        for (int applied = 0; applied < 2; applied++) {
            int sgd = mode == MODE_SGDM;
            char *dir = roteq_test_tmpdir();
            double truth = train_with_state(dir, (train_mode)mode, applied, 400);
            roteq_analysis_result *r =
                analyze_dir(dir, sgd ? "sgdm" : "adamw", sgd ? 0.05 : 0.01, sgd ? 5e-3 : 0.1);
            const roteq_analysis_layer_result *L = &r->layers[0];
            assert_int_equal(r->nlayers, 1); /* optimizer/... tensors are not layers */
            assert_true(L->angle_judged);
            assert_int_equal(L->gap, 1);
            assert_close(L->angular_update, truth, 1e-9);
            assert_non_null(strstr(L->angle_source, "optimizer state, exact"));
            assert_true((strstr(L->angle_source, "lr as saved") != NULL) == !applied);
            roteq_analysis_result_free(r);
            /* The state's lr and weight decay, not the metadata's, predict the checkpoints. */
            r = analyze_dir(dir, sgd ? "sgdm" : "adamw", sgd ? 0.2 : 0.04, sgd ? 1e-3 : 0.3);
            assert_close(r->layers[0].lr, sgd ? 0.05 : 0.01, 1e-15);
            assert_close(r->layers[0].weight_decay, sgd ? 5e-3 : 0.1, 1e-15);
            assert_close(r->layers[0].angular_update, truth, 1e-9);
            roteq_analysis_result_free(r);
            roteq_test_rmtree(dir);
        }
}

/* Muon (torch.optim.Muon's step, sim/muon.c) on a rows x cols matrix, a snapshot with the
 * momentum buffer every 100 steps; returns the RMS over rows of the true angle of the last step. */
static double train_muon(const char *dir, size_t rows, size_t cols, int nesterov, long steps)
{
    size_t n = rows * cols;
    double *w = calloc(4 * n, sizeof *w), *buf = w + n, *g = buf + n, *prev = g + n;
    assert_non_null(w);
    roteq_muon_hparams hp = roteq_muon_defaults();
    hp.lr = 0.02, hp.weight_decay = 0.1, hp.nesterov = nesterov, hp.rows = rows, hp.cols = cols;
    roteq_muon_work *work = roteq_muon_work_alloc(rows, cols, ROTEQ_SIM_NS_FLOAT64);
    assert_non_null(work);
    uint64_t rng = 777;
    for (size_t i = 0; i < n; i++)
        w[i] = normal(&rng) * 0.5;
    double last = DNAN;
    for (long t = 1; t <= steps; t++) {
        memcpy(prev, w, n * sizeof *w);
        for (size_t i = 0; i < n; i++)
            g[i] = normal(&rng);
        roteq_muon_step(work, &hp, hp.lr, hp.weight_decay, w, buf, g);
        if (t % 100)
            continue;
        char meta[256], file[64];
        snprintf(meta, sizeof meta,
                 "{\"class\":\"Muon\",\"params\":{\"fc.weight\":{\"group\":0}},\"groups\":[{"
                 "\"lr\":0.02,\"lr_applied\":0.02,\"momentum\":0.95,\"weight_decay\":0.1,"
                 "\"nesterov\":%s}]}",
                 nesterov ? "true" : "false");
        snprintf(file, sizeof file, "step_%ld.safetensors", t);
        char *path = roteq_test_path(dir, file);
        const char *names[] = {"fc.weight", "optimizer/fc.weight/momentum_buffer"};
        const double *data[] = {w, buf};
        write_safetensors(path, names, data, 2, rows, cols, meta);
        free(path);
        last = rms_angle(prev, w, rows, cols);
    }
    roteq_muon_work_free(work);
    free(w);
    return last;
}

/* Checkpoints of a Muon layer with its momentum buffer: the last step is rebuilt through the
 * Newton-Schulz iteration, exactly for heavy-ball momentum (wide and tall matrices, the tall
 * one transposed inside the iteration) and approximately for Nesterov (the last gradient is not
 * stored), marked so. */
static void test_per_step_muon(void **state)
{
    (void)state;
    static const size_t shapes[][2] = {{6, 10}, {10, 6}};
    for (int nesterov = 0; nesterov < 2; nesterov++)
        for (size_t k = 0; k < 2; k++) {
            char *dir = roteq_test_tmpdir();
            double truth = train_muon(dir, shapes[k][0], shapes[k][1], nesterov, 300);
            /* Nesterov or not comes from the state's group. */
            roteq_analysis_result *r = analyze_dir(dir, "muon", 0.02, 0.1);
            const roteq_analysis_layer_result *L = &r->layers[0];
            assert_int_equal(r->nlayers, 1);
            assert_int_equal(L->gap, 1);
            if (!nesterov) {
                assert_close(L->angular_update, truth, 1e-9);
                assert_non_null(strstr(L->angle_source, "optimizer state, exact"));
            } else {
                print_message("muon %zux%zu nesterov: rebuilt angle %.6g, true %.6g (%+.1f%%)\n",
                              shapes[k][0], shapes[k][1], L->angular_update, truth,
                              100 * (L->angular_update / truth - 1));
                assert_close(L->angular_update, truth, 0.5);
                assert_non_null(strstr(L->angle_source, "approximate"));
                assert_non_null(strstr(L->angle_source, "Nesterov"));
            }
            roteq_analysis_result_free(r);
            roteq_test_rmtree(dir);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_the_quantity),
        cmocka_unit_test(test_far_off_flat_never_converging),
        cmocka_unit_test(test_window_robust),
        cmocka_unit_test(test_collapse_against_prediction),
        cmocka_unit_test(test_settled_with_noise),
        cmocka_unit_test(test_against),
        cmocka_unit_test(test_classification_and_balance),
        cmocka_unit_test(test_kstep_not_judged),
        cmocka_unit_test(test_explain_parts),
        cmocka_unit_test(test_per_step_from_state),
        cmocka_unit_test(test_per_step_muon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
