/* test_muon.c - `roteq analyze` on Muon runs: the round trip from `roteq simulate --optimizer muon
 * --trace` (rows and the whole matrix recovered against theory's best prediction, the shape taken
 * from "shape" or from dim and the neuron count), a fallback group of another optimizer measured
 * without a prediction, and the metadata errors as one line on stderr with exit status 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"
#include "roteq_test_json.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int analyze(const char *const *args, char **out, char **err)
{
    const char *argv[32] = {"analyze"};
    size_t n = 1;
    while (args[n - 1])
        argv[n] = args[n - 1], n++;
    argv[n] = NULL;
    return roteq_test_run(argv, NULL, out, err);
}

static json_t *run_json(const char *const *argv)
{
    char *out, *err;
    int rc = roteq_test_run(argv, NULL, &out, &err);
    if (rc != 0)
        fail_msg("roteq %s failed (%d): %s", argv[0], rc, err);
    json_t *j = roteq_test_json(out);
    free(out), free(err);
    return j;
}

/* The one layer of `roteq analyze TRACE [--meta META] --format json`. */
static json_t *analyze_layer(const char *trace, const char *meta, json_t **root)
{
    const char *args[] = {trace, "--format", "json", meta ? "--meta" : NULL, meta, NULL};
    char *out, *err;
    int rc = analyze(args, &out, &err);
    if (rc != 0)
        fail_msg("analyze failed (%d): %s", rc, err);
    *root = roteq_test_json(out);
    free(out), free(err);
    json_t *layers = json_object_get(*root, "layers");
    assert_int_equal(json_array_size(layers), 1);
    return json_array_get(layers, 0);
}

static char *simulate_trace(const char *dir)
{
    char *trace = roteq_test_path(dir, "muon.csv");
    const char *sim[] = {"simulate", "--optimizer",    "muon", "--shape",     "64x64", "--lr",
                         "0.02",     "--weight-decay", "0.1",  "--matrices",  "1",     "--steps",
                         "4000",     "--every",        "1",    "--init-norm", "2",     "--trace",
                         trace,      "--format",       "json", NULL};
    json_decref(run_json(sim));
    return trace;
}

/* The simulated walk's rows at theory's best within a few %, the verdict at equilibrium, and
 * the Frobenius norm from the rows' norms at the matrix prediction. */
static void test_round_trip(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = simulate_trace(dir);
    json_t *th =
        run_json((const char *[]){"theory", "--optimizer", "muon", "--shape", "64x64", "--lr",
                                  "0.02", "--weight-decay", "0.1", "--format", "json", NULL});
    json_t *root;
    json_t *L = analyze_layer(trace, NULL, &root); /* metadata beside it: muon.csv.json */
    assert_string_equal(json_string_value(json_object_get(root, "optimizer")), "muon");
    assert_close(roteq_test_jnum(L, "predicted", "norm"),
                 roteq_test_jnum(th, "equilibrium_norm", NULL), 1e-12);
    assert_close(roteq_test_jnum(L, "predicted", "angular_update"),
                 roteq_test_jnum(th, "angular_update", NULL), 1e-12);
    double en = roteq_test_jnum(L, "relative_error", "norm"),
           ea = roteq_test_jnum(L, "relative_error", "angular_update");
    print_message("# muon 64x64 trace: row norm %+.2f%%, RMS angle %+.2f%%\n", 100 * en, 100 * ea);
    assert_true(fabs(en) < 0.03 && fabs(ea) < 0.03);
    assert_string_equal(json_string_value(json_object_get(L, "verdict")), "at equilibrium");
    json_t *M = json_object_get(L, "matrix");
    assert_non_null(M);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(M, "shape"), 0)), 64);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(M, "shape"), 1)), 64);
    assert_close(roteq_test_jnum(M, "predicted_norm", NULL),
                 roteq_test_jnum(th, "matrix_norm", NULL), 1e-12);
    assert_close(roteq_test_jnum(M, "predicted_angle", NULL),
                 roteq_test_jnum(th, "matrix_angular_update", NULL), 1e-12);
    assert_close(roteq_test_jnum(M, "norm", NULL), roteq_test_jnum(M, "predicted_norm", NULL),
                 0.03);
    double ma = roteq_test_jnum(M, "angle", NULL);
    print_message(
        "# Frobenius norm %+.2f%%, RMS matrix angle %+.2f%%\n",
        100 * (roteq_test_jnum(M, "norm", NULL) / roteq_test_jnum(M, "predicted_norm", NULL) - 1),
        100 * (ma / roteq_test_jnum(M, "predicted_angle", NULL) - 1));
    assert_close(ma, roteq_test_jnum(M, "predicted_angle", NULL), 0.03);
    json_decref(root);

    /* No "shape": cols from dim, rows from the neurons of the first record; same results. */
    char *meta = roteq_test_path(dir, "dim.json");
    roteq_test_write_file(meta, "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, "
                                "\"momentum\": 0.95, \"nesterov\": 1.0, \"ns_steps\": 5.0, "
                                "\"adjust_lr\": \"original\", \"layers\": {\"W\": {\"dim\": 64}}}");
    json_t *root2;
    json_t *L2 = analyze_layer(trace, meta, &root2);
    assert_close(roteq_test_jnum(L2, "predicted", "norm"),
                 roteq_test_jnum(th, "equilibrium_norm", NULL), 1e-12);
    M = json_object_get(L2, "matrix");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(M, "shape"), 0)), 64);
    json_decref(root2);

    /* A fallback group of another optimizer (the recorder's AdamW groups): measured only. */
    roteq_test_write_file(meta, "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, "
                                "\"layers\": {\"W\": {\"dim\": 64, \"optimizer\": \"adamw\", "
                                "\"beta1\": 0.9}}}");
    L2 = analyze_layer(trace, meta, &root2);
    assert_string_equal(json_string_value(json_object_get(L2, "verdict")), "no prediction");
    assert_null(json_object_get(L2, "matrix"));
    json_decref(root2);

    /* A Muon layer in a run whose main optimizer is another (the recorder's per-layer
     * "optimizer"), taking the run's lr and weight decay: predicted as Muon. */
    roteq_test_write_file(meta, "{\"optimizer\": \"adamw\", \"lr\": 0.02, \"weight_decay\": 0.1, "
                                "\"beta1\": 0.9, \"layers\": {\"W\": {\"dim\": 64, \"optimizer\": "
                                "\"muon\", \"momentum\": 0.95, \"ns_steps\": 5.0}}}");
    L2 = analyze_layer(trace, meta, &root2);
    assert_string_equal(json_string_value(json_object_get(root2, "optimizer")), "adamw");
    assert_close(roteq_test_jnum(L2, "predicted", "norm"),
                 roteq_test_jnum(th, "equilibrium_norm", NULL), 1e-12);
    assert_close(roteq_test_jnum(L2, "predicted", "angular_update"),
                 roteq_test_jnum(th, "angular_update", NULL), 1e-12);
    assert_string_equal(json_string_value(json_object_get(L2, "verdict")), "at equilibrium");
    assert_non_null(json_object_get(L2, "matrix"));
    json_decref(root2);

    /* Other settings move the prediction: ns_steps 10 and no Nesterov are read. */
    roteq_test_write_file(meta, "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, "
                                "\"nesterov\": false, \"layers\": {\"W\": {\"shape\": [64, 64], "
                                "\"ns_steps\": 10}}}");
    json_t *th2 = run_json((const char *[]){"theory", "--optimizer", "muon", "--shape", "64x64",
                                            "--lr", "0.02", "--weight-decay", "0.1", "--ns-steps",
                                            "10", "--no-nesterov", "--format", "json", NULL});
    L2 = analyze_layer(trace, meta, &root2);
    assert_close(roteq_test_jnum(L2, "predicted", "norm"),
                 roteq_test_jnum(th2, "equilibrium_norm", NULL), 1e-12);
    json_decref(root2);
    json_decref(th2);
    json_decref(th);
    free(meta);
    free(trace);
    roteq_test_rmtree(dir);
}

/* The matrix from the rows equals the simulator's own whole-matrix measurement over the same
 * steps (800 steps, every step: both average the last 200). */
static void test_matrix_exact(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = roteq_test_path(dir, "m.csv");
    const char *sim[] = {
        "simulate", "--optimizer", "muon", "--shape", "32x48", "--lr",    "0.02", "--weight-decay",
        "0.1",      "--matrices",  "1",    "--steps", "800",   "--every", "1",    "--trace",
        trace,      "--format",    "json", NULL};
    json_t *s = run_json(sim);
    json_t *root;
    json_t *L = analyze_layer(trace, NULL, &root);
    json_t *M = json_object_get(L, "matrix");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(M, "shape"), 1)), 48);
    assert_close(roteq_test_jnum(M, "norm", NULL), roteq_test_jnum(s, "matrix_norm", NULL), 1e-9);
    assert_close(roteq_test_jnum(M, "angle", NULL), roteq_test_jnum(s, "matrix_angle_rms", NULL),
                 1e-9);
    assert_close(roteq_test_jnum(L, "measured", "angular_update"),
                 roteq_test_jnum(s, "row_angle_rms", NULL), 1e-9);
    json_decref(root);
    json_decref(s);

    /* Every 2nd step: the rows' angles span one step, the records two: no matrix angle. */
    const char *sim2[] = {
        "simulate", "--optimizer", "muon", "--shape", "32x48", "--lr",    "0.02", "--weight-decay",
        "0.1",      "--matrices",  "1",    "--steps", "400",   "--every", "2",    "--trace",
        trace,      "--format",    "json", NULL};
    json_decref(run_json(sim2));
    L = analyze_layer(trace, NULL, &root);
    M = json_object_get(L, "matrix");
    assert_true(json_is_null(json_object_get(M, "angle")));
    assert_true(json_is_number(json_object_get(M, "norm")));
    json_decref(root);
    free(trace);
    roteq_test_rmtree(dir);
}

/* A snapshot series of consecutive steps (safetensors, one F64 8x6 matrix each): the matrix angle
 * from the rows equals the angle between the whole matrices, computed here. */
static void test_snapshots(void **state)
{
    (void)state;
    enum { R = 8, C = 6, T = 21 };
    char *dir = roteq_test_tmpdir();
    char *snaps = roteq_test_path(dir, "snaps");
    assert_int_equal(mkdir(snaps, 0700), 0);
    double W[R * C], P[R * C], a2 = 0, frob = 0;
    uint64_t x = 12345;
    for (size_t i = 0; i < R * C; i++)
        W[i] = 1.0 + (double)(i % 7) - 0.5 * (double)(i % 3);
    size_t win = 0;
    for (int t = 0; t < T; t++) {
        memcpy(P, W, sizeof W);
        for (size_t i = 0; t > 0 && i < R * C; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            W[i] = W[i] * 0.998 + 0.02 * ((double)(x >> 11) / 9007199254740992.0 - 0.5);
        }
        if (t >= T - (T + 3) / 4) { /* the final window: the last quarter of the records */
            double pw = 0, pp = 0, ww = 0;
            for (size_t i = 0; i < R * C; i++)
                pw += P[i] * W[i], pp += P[i] * P[i], ww += W[i] * W[i];
            double ang = acos(fmin(1.0, pw / sqrt(pp * ww)));
            a2 += ang * ang, frob += sqrt(ww), win++;
        }
        char name[64];
        snprintf(name, sizeof name, "step_%08d.safetensors", t);
        char *path = roteq_test_path(snaps, name);
        char hdr[128];
        int n = snprintf(hdr, sizeof hdr,
                         "{\"fc.weight\":{\"dtype\":\"F64\",\"shape\":[%d,%d],"
                         "\"data_offsets\":[0,%zu]}}",
                         R, C, sizeof W);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        uint64_t len = (uint64_t)n;
        assert_int_equal(fwrite(&len, 8, 1, f), 1);
        assert_int_equal(fwrite(hdr, 1, (size_t)n, f), (size_t)n);
        assert_int_equal(fwrite(W, sizeof W, 1, f), 1);
        assert_int_equal(fclose(f), 0);
        free(path);
    }
    char *meta = roteq_test_path(dir, "snaps.json");
    roteq_test_write_file(meta, "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1}");
    json_t *root;
    json_t *L = analyze_layer(snaps, NULL, &root);
    json_t *M = json_object_get(L, "matrix");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(M, "shape"), 0)), R);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(M, "shape"), 1)), C);
    assert_int_equal(json_integer_value(json_object_get(L, "window_records")), win);
    assert_close(roteq_test_jnum(M, "angle", NULL), sqrt(a2 / (double)win), 1e-9);
    assert_close(roteq_test_jnum(M, "norm", NULL), frob / (double)win, 1e-12);
    assert_true(json_is_number(json_object_get(M, "predicted_angle")));
    json_decref(root);
    free(meta);
    free(snaps);
    roteq_test_rmtree(dir);
}

/* One stderr line, exit 2, naming the file and the key. */
static void expect_meta_error(const char *dir, const char *trace, const char *meta_text,
                              const char *needle)
{
    char *meta = roteq_test_path(dir, "bad.json");
    roteq_test_write_file(meta, meta_text);
    char *out, *err;
    int rc = analyze((const char *[]){trace, "--meta", meta, NULL}, &out, &err);
    if (rc != 2 || strstr(err, needle) == NULL || strstr(err, meta) == NULL ||
        strncmp(err, "roteq analyze: ", 15) != 0 || strchr(err, '\n') != err + strlen(err) - 1)
        fail_msg("exit %d, stderr '%s' (want one line naming %s with '%s')", rc, err, meta, needle);
    free(out), free(err), free(meta);
}

static void test_errors(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = roteq_test_path(dir, "t.csv");
    roteq_test_write_file(trace, "step,layer,neuron,norm,angle\n1,W,0,1,0.01\n1,W,1,1,0.01\n");
    expect_meta_error(dir, trace, "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1}",
                      "layer 'W': muon needs the matrix shape: give layers.W.shape [rows, cols] "
                      "or its dim (the row length)");
    expect_meta_error(dir, trace,
                      "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, \"dim\": 4, "
                      "\"ns_steps\": 0}",
                      "ns_steps must be an integer in 1..99, got 0");
    expect_meta_error(dir, trace,
                      "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, "
                      "\"layers\": {\"W\": {\"dim\": 4, \"ns_steps\": 2.5}}}",
                      "layers.W.ns_steps must be an integer in 1..99, got 2.5");
    expect_meta_error(dir, trace,
                      "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, \"dim\": 4, "
                      "\"adjust_lr\": \"fast\"}",
                      "adjust_lr must be \"original\" or \"match_rms_adamw\"");
    expect_meta_error(dir, trace,
                      "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, \"dim\": 4, "
                      "\"beta1\": 0.9}",
                      "beta1 does not apply to muon");
    expect_meta_error(dir, trace,
                      "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, \"dim\": 4, "
                      "\"momentum\": 1.5}",
                      "momentum");
    expect_meta_error(dir, trace, "{\"optimizer\": \"muon\", \"weight_decay\": 0.1, \"dim\": 4}",
                      "missing hyperparameter 'lr' needed by muon");
    expect_meta_error(dir, trace,
                      "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, "
                      "\"layers\": {\"W\": {\"shape\": [4]}}}",
                      "layers.W.shape must be [rows, cols] of positive integers");
    expect_meta_error(dir, trace,
                      "{\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, "
                      "\"layers\": {\"W\": {\"shape\": [2, 4], \"dim\": 5}}}",
                      "layer 'W' has shape [2, 4] but rows of 5");
    char *out, *err;
    assert_int_equal(analyze((const char *[]){trace, "--optimizer", "muon", NULL}, &out, &err), 2);
    assert_non_null(strstr(err, "--optimizer muon: give it in the metadata"));
    free(out), free(err);
    free(trace);
    roteq_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_matrix_exact),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
