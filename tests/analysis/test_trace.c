/* test_trace.c - the CSV trace reader and the accumulator: parsing (columns by name, comments,
 * CRLF, chunk boundaries, number conversion), the estimators on traces whose answer is known by
 * construction, dead and collapsed neurons, predictions from theory, the convergence step and
 * rate, verdicts, the metadata sidecar, and every bad-input error with its file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_analysis.h"
#include "roteq_test.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Feed `s` in chunks of `chunk` bytes (0: all at once) into a fresh accumulator. */
static int run(const char *s, size_t chunk, const roteq_analysis_meta *meta, size_t window,
               roteq_analysis_result **res)
{
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, meta);
    cfg.window = window;
    cfg.per_neuron = 1;
    roteq_analysis *a = roteq_analysis_alloc(&cfg);
    assert_non_null(a);
    roteq_analysis_csv_reader *r = roteq_analysis_csv_reader_alloc("t.csv", a);
    assert_non_null(r);
    size_t n = strlen(s);
    int st = 0;
    if (chunk == 0)
        chunk = n ? n : 1;
    for (size_t i = 0; i < n && !st; i += chunk)
        st = roteq_analysis_csv_reader_feed(r, s + i, n - i < chunk ? n - i : chunk);
    if (!st)
        st = roteq_analysis_csv_reader_finish(r);
    roteq_analysis_csv_reader_free(r);
    if (!st)
        st = roteq_analysis_finish(a, res);
    roteq_analysis_free(a);
    return st;
}

static roteq_analysis_meta no_meta(void)
{
    roteq_analysis_meta m;
    roteq_analysis_meta_init(&m);
    return m;
}

static void test_columns_any_order(void **state)
{
    (void)state;
    roteq_analysis_meta m = no_meta();
    const char *a = "# written by hand\n# second comment\n"
                    "step,layer,neuron,norm,angle\n"
                    "1,fc1,0,2.5,0.01\n1,fc1,1,3.5,0.03\n2,fc1,0,2.5,0.01\n2,fc1,1,3.5,0.03\n";
    const char *b = "angle,extra,norm,neuron,layer,step\r\n"
                    "0.01,x,2.5,0,fc1,1\r\n0.03,y,3.5,1,fc1,1\r\n\r\n"
                    "0.01,,2.5,0,fc1,2.0\r\n0.03,z,3.5,1.,fc1,2";
    roteq_analysis_result *ra, *rb;
    assert_int_equal(run(a, 0, &m, 200, &ra), 0);
    assert_int_equal(run(b, 0, &m, 200, &rb), 0);
    assert_int_equal(ra->nlayers, 1);
    assert_int_equal(rb->nlayers, 1);
    assert_string_equal(rb->layers[0].name, "fc1");
    assert_int_equal(rb->layers[0].neurons, 2);
    assert_close(ra->layers[0].norm, 3.0, 1e-15);
    assert_close(rb->layers[0].norm, 3.0, 1e-15);
    /* RMS over neurons and steps of {0.01, 0.03}: sqrt((1e-4 + 9e-4) / 2). */
    assert_close(rb->layers[0].angular_update, sqrt(5e-4), 1e-14);
    assert_close(rb->layers[0].cv, (0.03 - 0.01) / sqrt(2.0) / 0.02, 1e-12);
    /* SE over neurons: norms 2.5 and 3.5 (sd 1/sqrt(2), SE 1/2); angle by the delta method,
     * squares 1e-4 and 9e-4: sd(a^2) = 8e-4/sqrt(2), SE = 4e-4 / (2 sqrt(5e-4)). */
    assert_close(rb->layers[0].norm_se, 0.5, 1e-12);
    assert_close(rb->layers[0].angle_se, 4e-4 / (2 * sqrt(5e-4)), 1e-9);
    assert_int_equal(rb->layers[0].verdict, ROTEQ_ANALYSIS_NO_PREDICTION);
    assert_true(isnan(rb->layers[0].pred_angle));
    roteq_analysis_result_free(ra);
    roteq_analysis_result_free(rb);
}

/* A long synthetic trace: 3 layers, 16 neurons, 400 steps, with angles and norms that vary by
 * neuron and step so that chunk boundaries fall everywhere. */
static char *long_trace(void)
{
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle,lr,weight_decay\n");
    for (int s = 0; s < 400; s++)
        for (int l = 0; l < 3; l++)
            for (int i = 0; i < 16; i++)
                roteq_test_textf(&t, "%d,layer.%d,%d,%.17g,%.17g,0.001,0.5\n", s, l, i,
                                 1.0 + 0.1 * l + 0.01 * i + 1e-4 * (s % 7),
                                 0.002 * (1 + l) * (1 + 0.01 * i));
    return t.s;
}

static void test_chunk_boundaries(void **state)
{
    (void)state;
    roteq_analysis_meta m = no_meta();
    char *s = long_trace();
    roteq_analysis_result *r0, *r1;
    assert_int_equal(run(s, 0, &m, 50, &r0), 0);
    const size_t chunks[] = {1, 7, 4096};
    for (size_t c = 0; c < 3; c++) {
        assert_int_equal(run(s, chunks[c], &m, 50, &r1), 0);
        assert_int_equal(r1->nlayers, 3);
        for (size_t l = 0; l < 3; l++) {
            assert_true(r1->layers[l].norm == r0->layers[l].norm);
            assert_true(r1->layers[l].angular_update == r0->layers[l].angular_update);
            assert_int_equal(r1->layers[l].records, 400);
        }
        roteq_analysis_result_free(r1);
    }
    /* Window: the last quarter (100 records) capped at 50: steps 350..399. */
    assert_int_equal(r0->layers[0].window_records, 50);
    assert_int_equal(r0->layers[0].window_start, 350);
    /* Balance: layers rotate at 0.002, 0.004, 0.006 (times the same neuron factors). */
    assert_close(r0->balance, 3.0, 1e-12);
    /* --layers keeps the matching layers only. */
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &m);
    cfg.layers_regex = "layer\\.[02]$";
    cfg.window = 50;
    roteq_analysis *a = roteq_analysis_alloc(&cfg);
    roteq_analysis_csv_reader *rd = roteq_analysis_csv_reader_alloc("t.csv", a);
    assert_int_equal(roteq_analysis_csv_reader_feed(rd, s, strlen(s)), 0);
    assert_int_equal(roteq_analysis_csv_reader_finish(rd), 0);
    assert_int_equal(roteq_analysis_finish(a, &r1), 0);
    assert_int_equal(r1->nlayers, 2);
    assert_string_equal(r1->layers[0].name, "layer.0");
    assert_string_equal(r1->layers[1].name, "layer.2");
    assert_true(r1->layers[1].angular_update == r0->layers[2].angular_update);
    roteq_analysis_result_free(r1);
    roteq_analysis_csv_reader_free(rd);
    roteq_analysis_free(a);
    roteq_analysis_result_free(r0);
    free(s);
}

static void test_number_parser(void **state)
{
    (void)state;
    /* Values written with %.17g must come back to within one ulp (usually exactly). */
    unsigned long x = 88172645463325252UL;
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
    double want[500];
    for (int i = 0; i < 500; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v = ldexp((double)(x >> 11), -53) * pow(10.0, (double)(i % 40) - 20);
        want[i] = v;
        roteq_test_textf(&t, "%d,L,0,%.17g,\n", i, v);
    }
    roteq_test_textf(&t, "500,L,0,1e-3,\n501,L,0,+2.5E+2,\n502,L,0,.5,\n503,L,0,7.,\n504,L,0,0,\n");
    roteq_analysis_meta m = no_meta();
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &m);
    cfg.window = 1;
    /* Read the values back through the series file: it prints the layer mean norm of each
     * record with %.17g. */
    FILE *series = tmpfile();
    assert_non_null(series);
    cfg.series = series;
    roteq_analysis *a = roteq_analysis_alloc(&cfg);
    roteq_analysis_csv_reader *r = roteq_analysis_csv_reader_alloc("n.csv", a);
    assert_int_equal(roteq_analysis_csv_reader_feed(r, t.s, t.n), 0);
    assert_int_equal(roteq_analysis_csv_reader_finish(r), 0);
    roteq_analysis_result *res;
    assert_int_equal(roteq_analysis_finish(a, &res), 0);
    rewind(series);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, series));
    const double extra[] = {1e-3, 250.0, 0.5, 7.0, 0.0};
    for (int i = 0; i < 505; i++) {
        assert_non_null(fgets(line, sizeof line, series));
        char *p = line;
        for (int k = 0; k < 5; k++) /* step,group,lr,weight_decay,n, then norm_mean */
            p = strchr(p, ',') + 1;
        double got = strtod(p, NULL), w = i < 500 ? want[i] : extra[i - 500];
        assert_true(fabs(got - w) <= fabs(w) * 2.3e-16);
    }
    fclose(series);
    roteq_analysis_result_free(res);
    roteq_analysis_csv_reader_free(r);
    roteq_analysis_free(a);
    free(t.s);
}

static void test_dead_and_collapsed(void **state)
{
    (void)state;
    roteq_analysis_meta m = no_meta();
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
    for (int s = 1; s <= 8; s++) {
        roteq_test_textf(&t, "%d,L,0,2.0,0.02\n", s);
        roteq_test_textf(&t, "%d,L,1,2.0,0.04\n", s);
        roteq_test_textf(&t, "%d,L,2,2.0,0\n", s); /* never moves: dead */
        roteq_test_textf(&t, "%d,L,3,0,nan\n", s); /* zero vector: collapsed */
        roteq_test_textf(&t, "%d,L,4,%.17g,0.5\n", s,
                         1e-3 * pow(0.5, s));     /* falling to zero: collapsed */
        roteq_test_textf(&t, "%d,L,5,2.0,\n", s); /* angle unknown: dead */
    }
    roteq_analysis_result *r;
    assert_int_equal(run(t.s, 0, &m, 200, &r), 0);
    const roteq_analysis_layer_result *L = &r->layers[0];
    assert_int_equal(L->neurons, 6);
    assert_int_equal(L->dead, 2);
    assert_int_equal(L->collapsed, 2);
    assert_close(L->norm, 2.0, 1e-15);
    assert_close(L->angular_update, sqrt((0.02 * 0.02 + 0.04 * 0.04) / 2), 1e-14);
    assert_int_equal(L->per_neuron[2].status, ROTEQ_ANALYSIS_NEURON_DEAD);
    assert_int_equal(L->per_neuron[3].status, ROTEQ_ANALYSIS_NEURON_COLLAPSED);
    assert_int_equal(L->per_neuron[4].status, ROTEQ_ANALYSIS_NEURON_COLLAPSED);
    assert_int_equal(L->per_neuron[5].status, ROTEQ_ANALYSIS_NEURON_DEAD);
    /* No NaN may reach the output: JSON has nulls, CSV empty fields. */
    FILE *f = tmpfile();
    assert_int_equal(roteq_analysis_write_json(f, r), 0);
    assert_int_equal(roteq_analysis_write_per_neuron_csv(f, r), 0);
    assert_int_equal(roteq_analysis_write_csv(f, r), 0);
    assert_int_equal(roteq_analysis_write_text(f, r), 0);
    long n = ftell(f);
    rewind(f);
    char *buf = calloc((size_t)n + 1, 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    assert_null(strstr(buf, "nan"));
    assert_null(strstr(buf, "NaN"));
    assert_null(strstr(buf, "inf"));
    free(buf);
    fclose(f);
    roteq_analysis_result_free(r);
    free(t.s);
}

static roteq_analysis_meta adamw_meta(double lr, double wd, size_t dim)
{
    roteq_analysis_meta m;
    char json[256];
    snprintf(json, sizeof json,
             "{\"optimizer\":\"adamw\",\"lr\":%.17g,\"weight_decay\":%.17g,\"beta1\":0.9,"
             "\"layers\":{\"fc1\":{\"dim\":%zu},\"fc2\":{\"dim\":%zu,\"weight_decay\":%.17g}}}",
             lr, wd, dim, 2 * dim, 2 * wd);
    assert_int_equal(roteq_analysis_meta_parse("meta.json", json, strlen(json), &m), 0);
    return m;
}

/* The metadata's optimizer is recognised through the list: every optimizer whose family has
 * matrix hooks makes a matrix run (its type kept, its family's defaults), at the top or for
 * one layer of another run, and every other one a per-neuron run; no name is special. */
static void test_meta_matrix_by_table(void **state)
{
    (void)state;
    int matrices = 0;
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++) {
        const roteq_optimizer_type *o = roteq_optimizers[i];
        char js[512];
        snprintf(js, sizeof js,
                 "{\"optimizer\":\"%s\",\"layers\":{\"w\":{\"shape\":[4,6]},"
                 "\"b\":{\"optimizer\":\"adamw\"}}}",
                 o->name);
        roteq_analysis_meta m;
        assert_int_equal(roteq_analysis_meta_parse("m.json", js, strlen(js), &m), 0);
        if (o->family->matrix) {
            matrices++;
            assert_true(m.muon);
            assert_null(m.opt);
            assert_ptr_equal(m.matrix_opt, o);
            assert_int_equal(m.muon_hp.ns_steps, o->family->matrix->defaults().ns_steps);
            const roteq_analysis_layer_meta *w = roteq_analysis_meta_layer(&m, "w");
            const roteq_analysis_layer_meta *b = roteq_analysis_meta_layer(&m, "b");
            assert_true(w->is_muon && w->rows == 4 && w->cols == 6);
            assert_ptr_equal(w->matrix_opt, o);
            assert_true(b->other_optimizer && !b->is_muon); /* a fallback AdamW group */
            roteq_analysis_meta_clear(&m);
            /* a matrix layer in an AdamW run */
            snprintf(js, sizeof js,
                     "{\"optimizer\":\"adamw\",\"lr\":0.001,\"layers\":{\"w\":"
                     "{\"optimizer\":\"%s\",\"shape\":[4,6]}}}",
                     o->name);
            assert_int_equal(roteq_analysis_meta_parse("m.json", js, strlen(js), &m), 0);
            assert_ptr_equal(m.opt, &roteq_adamw);
            assert_false(m.muon);
            w = roteq_analysis_meta_layer(&m, "w");
            assert_true(w->is_muon);
            assert_ptr_equal(w->matrix_opt, o);
        } else {
            assert_false(m.muon);
            assert_null(m.matrix_opt);
            assert_non_null(m.opt);
            assert_false(roteq_analysis_meta_layer(&m, "w")->is_muon);
        }
        roteq_analysis_meta_clear(&m);
    }
    assert_int_equal(matrices, 1); /* muon */
}

/* A trace that approaches the AdamW equilibrium exactly like the expected-value recurrence:
 * m_{t+1} = (1 - eta*lambda)^2 m_t + u^2 for the mean square norm. */
static char *approach_trace(double lr, double wd, size_t dim, double init_factor, long steps,
                            double angle_factor)
{
    roteq_equilibrium eq;
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = lr;
    hp.weight_decay = wd;
    roteq_setting s = {dim, DNAN};
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &s, ROTEQ_PRED_BEST, &eq), 0);
    double a2 = (1 - lr * wd) * (1 - lr * wd);
    double m_eq = eq.norm * eq.norm, u2 = (1 - a2) * m_eq;
    double m = init_factor * init_factor * m_eq;
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
    for (long k = 1; k <= steps; k++) {
        double prev = m;
        m = a2 * m + u2;
        /* Angle in proportion to the update over the norm (equal to theory's at equilibrium). */
        double ang = angle_factor * eq.angular_update * sqrt(m_eq / prev);
        for (int i = 0; i < 8; i++)
            roteq_test_textf(&t, "%ld,fc1,%d,%.17g,%.17g\n", k, i, sqrt(m) * (1 + 1e-3 * (i - 3.5)),
                             ang * (1 + 1e-3 * (i - 3.5)));
    }
    return t.s;
}

static void test_prediction_and_convergence(void **state)
{
    (void)state;
    double lr = 1e-2, wd = 0.5;
    size_t dim = 64;
    roteq_analysis_meta m = adamw_meta(lr, wd, dim);
    char *s = approach_trace(lr, wd, dim, 3.0, 4000, 1.0);
    roteq_analysis_result *r;
    assert_int_equal(run(s, 0, &m, 400, &r), 0);
    const roteq_analysis_layer_result *L = &r->layers[0];
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = lr;
    hp.weight_decay = wd;
    roteq_setting set = {dim, DNAN};
    roteq_equilibrium eq;
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &set, ROTEQ_PRED_BEST, &eq), 0);
    assert_int_equal(L->dim, dim);
    assert_string_equal(L->prediction, "static");
    assert_close(L->pred_norm, eq.norm, 1e-12);
    assert_close(L->pred_angle, eq.angular_update, 1e-12);
    assert_true(fabs(L->rel_norm) < 1e-3);
    assert_true(fabs(L->rel_angle) < 1e-3);
    assert_int_equal(L->verdict, ROTEQ_ANALYSIS_AT_EQUILIBRIUM);
    /* Entered the 5% band: the norm deviation sqrt(1 + 8 a^(2t)) - 1 falls under 5% (and the
     * smoothed angle with it) after about ln(0.1025/8)/ln(a^2) steps. */
    double a2 = (1 - lr * wd) * (1 - lr * wd);
    double t_norm = log(((1.05 * 1.05) - 1) / 8) / log(a2);
    assert_true(L->converged_at > 0);
    assert_true(fabs((double)L->converged_at - t_norm) < 0.05 * t_norm + 10);
    /* Rate of the mean-square-norm approach: exactly -ln(a^2) per step by construction. */
    assert_close(L->rate, -log(a2), 1e-6);
    /* The predicted rate is the same fit applied to theory's transient from the same initial
     * norm; for AdamW it is slower than the decay alone (Adam's second moment lags). */
    assert_true(L->pred_rate > 0 && L->pred_rate <= -log(a2) * 1.01);
    roteq_analysis_result_free(r);
    free(s);

    /* The same run 30% too fast in rotation: off-prediction with the ratio. */
    s = approach_trace(lr, wd, dim, 1.0, 2000, 1.3);
    assert_int_equal(run(s, 0, &m, 400, &r), 0);
    assert_int_equal(r->layers[0].verdict, ROTEQ_ANALYSIS_OFF_PREDICTION);
    assert_close(r->layers[0].ratio, 1.3, 1e-3);
    assert_int_equal(r->layers[0].converged_at, -1);
    roteq_analysis_result_free(r);
    free(s);

    /* Three times too fast and settled: not scale-invariant-like. */
    s = approach_trace(lr, wd, dim, 1.0, 2000, 3.0);
    assert_int_equal(run(s, 0, &m, 400, &r), 0);
    assert_int_equal(r->layers[0].verdict, ROTEQ_ANALYSIS_NOT_SCALE_INVARIANT);
    roteq_analysis_result_free(r);
    free(s);

    /* Off by 30% for 1992 steps, then on the prediction for the last 8: the trailing average
     * enters the band at the very end, but the final window says off-prediction, so there is
     * no entered-and-stayed step. */
    {
        roteq_hparams hp2 = roteq_optimizer_defaults(&roteq_adamw);
        hp2.lr = lr;
        hp2.weight_decay = wd;
        roteq_equilibrium e2;
        assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp2, &set, ROTEQ_PRED_BEST, &e2),
                         0);
        roteq_test_text t = {0};
        roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
        for (long k = 1; k <= 2000; k++)
            for (int i = 0; i < 8; i++)
                roteq_test_textf(&t, "%ld,fc1,%d,%.17g,%.17g\n", k, i, e2.norm,
                                 e2.angular_update * (k > 1992 ? 1.0 : 1.3));
        assert_int_equal(run(t.s, 0, &m, 400, &r), 0);
        assert_int_equal(r->layers[0].verdict, ROTEQ_ANALYSIS_OFF_PREDICTION);
        assert_int_equal(r->layers[0].converged_at, -1);
        roteq_analysis_result_free(r);
        free(t.s);
    }

    /* Cut short while still far: converging. */
    s = approach_trace(lr, wd, dim, 3.0, 300, 1.0);
    assert_int_equal(run(s, 0, &m, 400, &r), 0);
    assert_int_equal(r->layers[0].verdict, ROTEQ_ANALYSIS_CONVERGING);
    roteq_analysis_result_free(r);
    free(s);
    roteq_analysis_meta_clear(&m);
}

static void test_layer_overrides_and_schedule(void **state)
{
    (void)state;
    roteq_analysis_meta m = adamw_meta(1e-3, 0.1, 32);
    const roteq_analysis_layer_meta *lm = roteq_analysis_meta_layer(&m, "fc2");
    assert_non_null(lm);
    assert_int_equal(lm->dim, 64);
    assert_close(lm->hp.weight_decay, 0.2, 0);
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle,lr,weight_decay\n");
    for (int s = 1; s <= 100; s++) {
        roteq_test_textf(&t, "%d,fc2,0,1.0,0.01,0.001,\n",
                         s); /* empty weight_decay: metadata's 0.2 */
        roteq_test_textf(&t, "%d,fc1,0,1.0,0.01,%.17g,0.1\n", s, 1e-3 * (s < 50 ? 1.0 : 0.5));
    }
    roteq_analysis_result *r;
    assert_int_equal(run(t.s, 0, &m, 200, &r), 0);
    assert_int_equal(r->nlayers, 2);
    const roteq_analysis_layer_result *f2 = &r->layers[0], *f1 = &r->layers[1];
    assert_string_equal(f2->name, "fc2");
    assert_int_equal(f2->dim, 64);
    assert_false(f2->scheduled);
    assert_close(f2->weight_decay, 0.2, 0);
    assert_close(f2->pred_angle, sqrt(2 * 1e-3 * 0.2 * 0.1 / 1.9), 1e-12);
    assert_true(f1->scheduled);
    assert_true(strcmp(f1->prediction, "transient") == 0 ||
                strcmp(f1->prediction, "instantaneous") == 0);
    assert_close(f1->lr, 5e-4, 0);
    roteq_analysis_result_free(r);
    free(t.s);
    roteq_analysis_meta_clear(&m);
}

/* Bad input: each fails with a message naming the file and line. */
static void expect_error(const char *csv, const roteq_analysis_meta *m, const char *needle)
{
    roteq_analysis_result *r = NULL;
    int st = run(csv, 0, m, 200, &r);
    if (st == 0) {
        roteq_analysis_result_free(r);
        fail_msg("accepted bad input: %s", csv);
    }
    if (strstr(roteq_error_message(), needle) == NULL)
        fail_msg("message '%s' lacks '%s'", roteq_error_message(), needle);
    assert_non_null(strstr(roteq_error_message(), "t.csv"));
    assert_null(strchr(roteq_error_message(), '\n'));
}

static void test_bad_input(void **state)
{
    (void)state;
    roteq_analysis_meta m = no_meta();
    const char *H = "step,layer,neuron,norm,angle\n";
    char buf[512];
#define BAD(body, needle)                                                                          \
    do {                                                                                           \
        snprintf(buf, sizeof buf, "%s%s", H, body);                                                \
        expect_error(buf, &m, needle);                                                             \
    } while (0)
    expect_error("step,layer,neuron,norm\n1,a,0,1\n", &m, "t.csv:1: missing column 'angle'");
    expect_error("step,layer,neuron,norm,angle,norm\n", &m, "appears twice");
    expect_error("", &m, "no header");
    expect_error("# only a comment\n", &m, "no header");
    BAD("1,a,0,abc,0.1\n", "t.csv:2: column 'norm': 'abc' is not a number");
    BAD("1,a,0,1.0,0.1x\n", "column 'angle': '0.1x'");
    BAD("x,a,0,1.0,0.1\n", "column 'step': 'x' is not a non-negative integer");
    BAD("-1,a,0,1.0,0.1\n", "column 'step'");
    BAD("1,a,1.5,1.0,0.1\n", "column 'neuron'");
    BAD("1,a,0,nan,0.1\n", "column 'norm': nan is not finite");
    BAD("1,a,0,inf,0.1\n", "not finite");
    BAD("1,a,0,1e999,0.1\n", "not finite");
    BAD("1,a,0,-0.5,0.1\n", "is negative");
    BAD("1,a,0,,0.1\n", "column 'norm' is empty");
    BAD("1,a,0,1.0,-0.1\n", "outside [0, pi]");
    BAD("1,a,0,1.0,4\n", "outside [0, pi]");
    BAD("1,a,0,1.0\n", "expected 5 fields, found 4");
    BAD("1,a,0,1.0,0.1,7\n", "more than 5 fields");
    BAD("2,a,0,1.0,0.1\n1,a,0,1.0,0.1\n", "t.csv:3: step 1 of layer 'a' comes after step 2");
    BAD("1,a,0,1.0,0.1\n1,b,0,1.0,0.1\n1,a,0,1.0,0.1\n",
        "t.csv:4: duplicate row for step 1, layer 'a', neuron 0");
    BAD("1,,0,1.0,0.1\n", "empty layer name");
    BAD("1,\"fc,1,0,1.0,0.1\n", "column 'layer': quoted field without its closing quote");
    BAD("1,\"fc\"1,0,1.0,0.1\n", "column 'layer': text after the closing quote");
    BAD("1,a,0,1.0,3.1416\n", "column 'angle': 3.1415999999999999 is outside [0, pi]");
    BAD("1,a,0,1.0,-1e-5\n", "outside [0, pi]");
    expect_error("step,layer,neuron,norm,angle\n", &m, "t.csv: no data rows after the header");
    expect_error("# c\nstep,layer,neuron,norm,angle\n\n", &m, "no data rows after the header");
    expect_error("\x1f\x8b\x08\x00\x00\x00\x00\x00", &m,
                 "t.csv: gzip-compressed; decompress it first (gunzip)");
    expect_error("\x28\xb5\x2f\xfd\x00", &m, "t.csv: zstd-compressed");
    expect_error("step,layer,neuron,norm,angle,lr\n1,a,0,1,0.1,-1\n", &m, "column 'lr'");
    /* Metadata missing a hyperparameter the optimizer needs (SGD has no default lr). */
    roteq_analysis_meta sgd;
    const char *js = "{\"optimizer\":\"sgd\",\"weight_decay\":0.01}";
    assert_int_equal(roteq_analysis_meta_parse("sgd.json", js, strlen(js), &sgd), 0);
    expect_error("step,layer,neuron,norm,angle\n1,a,0,1,0.1\n", &sgd,
                 "sgd.json: layer 'a': missing hyperparameter 'lr' needed by sgd");
    /* ... which a trace column may supply. */
    roteq_analysis_result *r;
    assert_int_equal(run("step,layer,neuron,norm,angle,lr\n1,a,0,1,0.1,0.1\n", 0, &sgd, 10, &r), 0);
    roteq_analysis_result_free(r);
    roteq_analysis_meta_clear(&sgd);
#undef BAD
}

static void test_meta_errors(void **state)
{
    (void)state;
    struct {
        const char *json, *needle;
        int status;
    } cases[] = {
        {"{\"optimizer\":", "m.json:1:", ROTEQ_EFORMAT},
        {"[1,2]", "must be a JSON object", ROTEQ_EFORMAT},
        {"{\"optimizer\":\"adamx\"}", "unknown optimizer 'adamx'", ROTEQ_ENOTFOUND},
        {"{\"optimizer\":\"adamw\",\"momentum\":0.9}", "momentum does not apply to adamw",
         ROTEQ_EINVAL},
        {"{\"optimizer\":\"adamw\",\"lr\":\"fast\"}", "lr must be a number", ROTEQ_EFORMAT},
        {"{\"optimizer\":\"adamw\",\"layers\":{\"fc1\":{\"dim\":-3}}}", "layers.fc1.dim must be",
         ROTEQ_EFORMAT},
        {"{\"optimizer\":\"adamw\",\"layers\":[1]}", "layers must be an object", ROTEQ_EFORMAT},
        {"{\"optimizer\":\"adamw\",\"betas\":[0.9]}", "betas must be a pair", ROTEQ_EFORMAT},
        /* a key given twice is refused and named; grad_norm as --grad-norm refuses it */
        {"{\"optimizer\":\"adamw\",\"lr\":0.1,\"lr\":0.2}", "m.json:1: duplicate object key",
         ROTEQ_EFORMAT},
        {"{\"optimizer\":\"adamw\",\"lr\":0.1,\"lr\":0.2}", "lr", ROTEQ_EFORMAT},
        {"{\"optimizer\":\"sgd\",\"grad_norm\":-1}", "m.json: grad_norm must be positive, got -1",
         ROTEQ_EFORMAT},
        {"{\"optimizer\":\"sgd\",\"layers\":{\"fc\":{\"grad_norm\":0}}}",
         "m.json: layers.fc.grad_norm must be positive, got 0", ROTEQ_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        roteq_analysis_meta m;
        int st = roteq_analysis_meta_parse("m.json", cases[i].json, strlen(cases[i].json), &m);
        assert_int_equal(st, cases[i].status);
        if (strstr(roteq_error_message(), cases[i].needle) == NULL)
            fail_msg("'%s' lacks '%s'", roteq_error_message(), cases[i].needle);
    }
    roteq_analysis_meta m;
    const char *ok = "{\"optimizer\":\"adamw\",\"betas\":[0.8,0.99],\"recorder\":{\"x\":1},"
                     "\"eps\":null,\"dim\":12}";
    assert_int_equal(roteq_analysis_meta_parse("m.json", ok, strlen(ok), &m), 0);
    assert_ptr_equal(m.opt, &roteq_adamw);
    assert_close(m.hp.beta1, 0.8, 0);
    assert_close(m.hp.beta2, 0.99, 0);
    assert_int_equal(m.dim, 12);
    roteq_analysis_meta_clear(&m);
    /* SGD(nesterov=True) as PyTorch spells it is roteq's nesterov. */
    const char *nest = "{\"optimizer\":\"sgdm\",\"lr\":0.1,\"weight_decay\":1e-4,"
                       "\"momentum\":0.9,\"dampening\":0,\"nesterov\":true}";
    assert_int_equal(roteq_analysis_meta_parse("m.json", nest, strlen(nest), &m), 0);
    assert_ptr_equal(m.opt, &roteq_nesterov);
    assert_int_equal(m.given & ~roteq_nesterov.hparams, 0);
    roteq_analysis_meta_clear(&m);
    assert_int_equal(roteq_analysis_meta_load("/nonexistent/m.json", &m), ROTEQ_EIO);
    /* A UTF-8 byte-order mark is skipped, as in traces. */
    const char *bom = "\xEF\xBB\xBF{\"optimizer\":\"adamw\",\"lr\":0.25}";
    assert_int_equal(roteq_analysis_meta_parse("m.json", bom, strlen(bom), &m), 0);
    assert_ptr_equal(m.opt, &roteq_adamw);
    assert_close(m.hp.lr, 0.25, 0);
    roteq_analysis_meta_clear(&m);
    /* An impossible value names the key and the reason (the message once printed into itself). */
    const char *b1 = "{\"optimizer\":\"adamw\",\"lr\":0.1,\"weight_decay\":0.1,\"beta1\":1}";
    assert_int_equal(roteq_analysis_meta_parse("m.json", b1, strlen(b1), &m), 0);
    expect_error("step,layer,neuron,norm,angle\n1,fc1,0,1,0.1\n", &m,
                 "m.json: layer 'fc1': beta1 must be in [0, 1), got 1");
    roteq_analysis_meta_clear(&m);
}

static void test_series_output(void **state)
{
    (void)state;
    roteq_analysis_meta m = adamw_meta(1e-2, 0.5, 64);
    char *s = approach_trace(1e-2, 0.5, 64, 1.0, 50, 1.0);
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &m);
    FILE *f = tmpfile();
    cfg.series = f;
    roteq_analysis *a = roteq_analysis_alloc(&cfg);
    roteq_analysis_csv_reader *r = roteq_analysis_csv_reader_alloc("t.csv", a);
    assert_int_equal(roteq_analysis_csv_reader_feed(r, s, strlen(s)), 0);
    assert_int_equal(roteq_analysis_csv_reader_finish(r), 0);
    roteq_analysis_result *res;
    assert_int_equal(roteq_analysis_finish(a, &res), 0);
    rewind(f);
    char line[2048];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "step,group,lr,weight_decay,n,norm_mean,norm_std,norm_q05,norm_q50,"
                              "norm_q95,angle_rms,angle_mean,angle_std,angle_q05,angle_q50,"
                              "angle_q95,pred_norm,pred_angle,eq_norm,eq_angle\n");
    /* eq_*: the static equilibrium at the row's hyperparameters, the same as theory's. */
    roteq_hparams hp = roteq_optimizer_defaults(&roteq_adamw);
    hp.lr = 1e-2;
    hp.weight_decay = 0.5;
    roteq_setting set = {64, DNAN};
    roteq_equilibrium eq;
    assert_int_equal(roteq_theory_equilibrium(&roteq_adamw, &hp, &set, ROTEQ_PRED_BEST, &eq), 0);
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        int commas = 0;
        char *last[2] = {NULL, NULL};
        for (char *p = line; *p; p++)
            if (*p == ',') {
                commas++;
                last[0] = last[1];
                last[1] = p + 1;
            }
        assert_int_equal(commas, 19);
        assert_non_null(strstr(line, ",fc1,0.01,0.5,8,"));
        assert_close(strtod(last[0], NULL), eq.norm, 1e-12);
        assert_close(strtod(last[1], NULL), eq.angular_update, 1e-12);
        rows++;
    }
    assert_int_equal(rows, 50);
    fclose(f);
    roteq_analysis_result_free(res);
    roteq_analysis_csv_reader_free(r);
    roteq_analysis_free(a);
    free(s);
    roteq_analysis_meta_clear(&m);
}

/* Fields a spreadsheet or a float32 writer produces: quoted layer names with commas or quotes
 * (RFC 4180), long numbers, and angles a rounding beyond [0, pi]. */
static void test_quoting_and_float32(void **state)
{
    (void)state;
    roteq_analysis_meta m = no_meta();
    char n75[80] = "0.";
    for (int i = 0; i < 70; i++)
        strcat(n75, "0");
    strcat(n75, "125"); /* 75 characters: 1.25e-71 */
    assert_int_equal(strlen(n75), 75);
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle,note\n");
    for (int s = 1; s <= 4; s++) {
        roteq_test_textf(&t, "%d,\"blocks.0,attn\",0,2.0,0.02,\"x, y\"\n", s);
        roteq_test_textf(&t, "%d,\"say \"\"hi\"\"\",0,%s,3.1415927,\n", s, n75); /* float32(pi) */
        roteq_test_textf(&t, "%d,plain,0,1.0,%s,\n", s, s == 1 ? "-1e-7" : "0.5");
    }
    roteq_analysis_result *r;
    assert_int_equal(run(t.s, 5, &m, 200, &r), 0);
    assert_int_equal(r->nlayers, 3);
    const roteq_analysis_layer_result *q = NULL, *h = NULL, *pl = NULL;
    for (size_t i = 0; i < r->nlayers; i++) {
        if (strcmp(r->layers[i].name, "blocks.0,attn") == 0)
            q = &r->layers[i];
        if (strcmp(r->layers[i].name, "say \"hi\"") == 0)
            h = &r->layers[i];
        if (strcmp(r->layers[i].name, "plain") == 0)
            pl = &r->layers[i];
    }
    assert_non_null(q);
    assert_non_null(h);
    assert_non_null(pl);
    assert_close(q->angular_update, 0.02, 1e-15);
    assert_close(h->norm, 1.25e-71, 1e-15);
    assert_true(h->per_neuron[0].angular_update == 3.14159265358979323846); /* clamped */
    assert_close(pl->per_neuron[0].angular_update, 0.5, 1e-15); /* -1e-7 was taken as 0 */
    roteq_analysis_result_free(r);
    free(t.s);
}

/* Memory follows the neurons present: sparse indices are neurons of their own (not millions of
 * empty ones), results list neurons by index whatever the row order, and 20,000 layer names
 * cost a hash lookup each, not a scan. */
static void test_sparse_neurons_and_many_layers(void **state)
{
    (void)state;
    roteq_analysis_meta m = no_meta();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    roteq_test_text t = {0};
    roteq_test_textf(&t, "step,layer,neuron,norm,angle\n");
    for (int s = 1; s <= 4; s++) {
        roteq_test_textf(&t, "%d,L,4194303,2.0,0.02\n", s);
        roteq_test_textf(&t, "%d,L,99999999999,3.0,0.04\n", s);
        roteq_test_textf(&t, "%d,L,7,1.0,0.01\n", s);
    }
    roteq_analysis_result *r;
    assert_int_equal(run(t.s, 7, &m, 200, &r), 0);
    getrusage(RUSAGE_SELF, &ru1);
    assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 64 * 1024); /* KiB: was 13.4 GB of rings */
    const roteq_analysis_layer_result *L = &r->layers[0];
    assert_int_equal(L->neurons, 3);
    assert_int_equal(L->dead + L->collapsed, 0);
    assert_int_equal(L->per_neuron[0].index, 7);
    assert_int_equal(L->per_neuron[1].index, 4194303);
    assert_int_equal(L->per_neuron[2].index, 99999999999);
    assert_close(L->per_neuron[0].angular_update, 0.01, 1e-15);
    assert_close(L->per_neuron[1].angular_update, 0.02, 1e-15);
    assert_close(L->per_neuron[2].angular_update, 0.04, 1e-15);
    assert_close(L->norm, 2.0, 1e-15);
    roteq_analysis_result_free(r);
    free(t.s);

    /* Rows in any neuron order give the results of the ordered trace, bit for bit. */
    roteq_test_text a = {0}, b = {0};
    roteq_test_textf(&a, "step,layer,neuron,norm,angle\n");
    roteq_test_textf(&b, "step,layer,neuron,norm,angle\n");
    static const int order[] = {5, 2, 0, 4, 1, 3};
    for (int s = 1; s <= 12; s++)
        for (int k = 0; k < 6; k++) {
            roteq_test_textf(&a, "%d,L,%d,%.17g,%.17g\n", s, k, 1.5 + 0.1 * k + 0.01 * s,
                             0.01 * (k + 1));
            int j = order[(k + s) % 6];
            roteq_test_textf(&b, "%d,L,%d,%.17g,%.17g\n", s, j, 1.5 + 0.1 * j + 0.01 * s,
                             0.01 * (j + 1));
        }
    roteq_analysis_result *ra, *rb;
    assert_int_equal(run(a.s, 0, &m, 200, &ra), 0);
    assert_int_equal(run(b.s, 0, &m, 200, &rb), 0);
    const roteq_analysis_layer_result *x = &ra->layers[0], *y = &rb->layers[0];
    assert_int_equal(x->neurons, 6);
    assert_int_equal(y->neurons, 6);
    assert_true(x->norm == y->norm && x->angular_update == y->angular_update);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(y->per_neuron[i].index, i);
        assert_true(x->per_neuron[i].norm == y->per_neuron[i].norm);
        assert_true(x->per_neuron[i].angular_update == y->per_neuron[i].angular_update);
    }
    roteq_analysis_result_free(ra);
    roteq_analysis_result_free(rb);
    free(a.s), free(b.s);

    /* 20,000 layers of one neuron: a few KiB each, each new name found in constant time. */
    roteq_test_text c = {0};
    roteq_test_textf(&c, "step,layer,neuron,norm,angle\n");
    for (int s = 1; s <= 2; s++)
        for (int l = 0; l < 20000; l++)
            roteq_test_textf(&c, "%d,blocks.%d.w,0,1.5,0.01\n", s, l);
    getrusage(RUSAGE_SELF, &ru0);
    roteq_analysis_result *rc;
    assert_int_equal(run(c.s, 0, &m, 200, &rc), 0);
    getrusage(RUSAGE_SELF, &ru1);
    assert_int_equal(rc->nlayers, 20000);
    assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 400 * 1024); /* KiB: was 1.5 GB */
    roteq_analysis_result_free(rc);
    free(c.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_any_order),
        cmocka_unit_test(test_chunk_boundaries),
        cmocka_unit_test(test_number_parser),
        cmocka_unit_test(test_dead_and_collapsed),
        cmocka_unit_test(test_prediction_and_convergence),
        cmocka_unit_test(test_layer_overrides_and_schedule),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_meta_errors),
        cmocka_unit_test(test_meta_matrix_by_table),
        cmocka_unit_test(test_series_output),
        cmocka_unit_test(test_sparse_neurons_and_many_layers),
        cmocka_unit_test(test_quoting_and_float32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
