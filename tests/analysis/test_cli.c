/* test_cli.c - `roteq analyze` end to end: usage, the round trip from `roteq simulate --trace`
 * (analyze recovers the simulated equilibrium), metadata discovery and command-line precedence,
 * the output files and formats with the JSON keys the issue fixes, and every bad input as one
 * line on stderr with exit status 2. */
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

/* Exit 2 and exactly one stderr line containing `needle`. */
static void expect_bad(const char *const *args, const char *needle)
{
    char *out = NULL, *err = NULL;
    int rc = analyze(args, &out, &err);
    if (rc != 2 || strstr(err, needle) == NULL || strncmp(err, "roteq analyze: ", 15) != 0 ||
        strchr(err, '\n') != err + strlen(err) - 1)
        fail_msg("%s %s: exit %d, stderr '%s' (want '%s')", args[0], args[1] ? args[1] : "", rc,
                 err, needle);
    free(out);
    free(err);
}

static void test_usage(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(analyze((const char *[]){"--help", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "usage: roteq analyze"));
    assert_non_null(strstr(out, "--lr X"));
    free(out), free(err);
    assert_int_equal(analyze((const char *[]){NULL}, &out, &err), 2);
    free(out), free(err);
    expect_bad((const char *[]){"--bogus", "x.csv", NULL}, "unknown option '--bogus'");
    expect_bad((const char *[]){"/nonexistent/trace.csv", NULL}, "/nonexistent/trace.csv");
    expect_bad((const char *[]){"--tolerance", "2", "x", NULL}, "--tolerance: must be in (0, 1)");
    expect_bad((const char *[]){"--window", "0", "x", NULL}, "--window");
    expect_bad((const char *[]){"--format", "xml", "x", NULL}, "--format: 'xml'");
    expect_bad((const char *[]){"--optimizer", "adamx", "x", NULL}, "unknown optimizer");
}

/* `roteq simulate --trace` -> `roteq analyze` recovers what the simulation measured. */
static void test_round_trip(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = roteq_test_path(dir, "trace.csv");
    const char *sim[] = {
        "simulate", "--optimizer", "adamw", "--lr",        "1e-2", "--weight-decay",
        "0.1",      "--neurons",   "64",    "--dim",       "64",   "--steps",
        "4000",     "--seed",      "3",     "--init-norm", "3",    "--every",
        "4",        "--trace",     trace,   "--format",    "json", NULL};
    char *out, *err;
    int rc = roteq_test_run(sim, NULL, &out, &err);
    if (rc != 0)
        fail_msg("roteq simulate failed (%d): %s", rc, err);
    json_t *s = roteq_test_json(out);
    free(out), free(err);

    /* The metadata is found beside the trace (trace.csv.json). */
    rc = analyze((const char *[]){trace, "--window", "250", "--format", "json", NULL}, &out, &err);
    if (rc != 0)
        fail_msg("analyze failed (%d): %s", rc, err);
    json_t *a = roteq_test_json(out);
    free(out), free(err);
    json_t *layers = json_object_get(a, "layers");
    assert_int_equal(json_array_size(layers), 1);
    json_t *L = json_array_get(layers, 0);
    static const char *const keys[] = {"layer",
                                       "dim",
                                       "neurons",
                                       "predicted",
                                       "measured",
                                       "relative_error",
                                       "converged_at_step",
                                       "angular_update_cv",
                                       "verdict"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_get(L, keys[i]) == NULL)
            fail_msg("layer object lacks '%s'", keys[i]);
    assert_true(json_is_number(json_object_get(a, "balance")));
    assert_int_equal(json_integer_value(json_object_get(L, "dim")), 64);
    assert_int_equal(json_integer_value(json_object_get(L, "neurons")), 64);
    /* Same prediction as the simulator's (theory is the one source). */
    assert_close(roteq_test_jnum(L, "predicted", "norm"), roteq_test_jnum(s, "predicted", "norm"),
                 1e-12);
    assert_close(roteq_test_jnum(L, "predicted", "angular_update"),
                 roteq_test_jnum(s, "predicted", "angular_update"), 1e-12);
    /* The measured equilibrium equals the simulator's own measurement (every step of its last
     * quarter; ours every 4th step of the last quarter) within its standard errors. */
    assert_within_se(roteq_test_jnum(L, "measured", "norm"), roteq_test_jnum(s, "measured", "norm"),
                     roteq_test_jnum(s, "measured", "norm_se"), 3, 3);
    assert_within_se(roteq_test_jnum(L, "measured", "angular_update"),
                     roteq_test_jnum(s, "measured", "angular_update"),
                     roteq_test_jnum(s, "measured", "angular_update_se"), 4, 3);
    assert_true(fabs(roteq_test_jnum(L, "relative_error", "angular_update")) < 0.02);
    /* Standard errors by the same method as the simulator's (neurons as samples). */
    assert_close(roteq_test_jnum(L, "measured_se", "norm"),
                 roteq_test_jnum(s, "measured", "norm_se"), 0.3);
    assert_close(roteq_test_jnum(L, "measured_se", "angular_update"),
                 roteq_test_jnum(s, "measured", "angular_update_se"), 0.5);
    assert_true(json_is_integer(json_object_get(L, "converged_at_step")));
    assert_string_equal(json_string_value(json_object_get(L, "verdict")), "at equilibrium");
    json_decref(a);

    /* The command line wins over the metadata and the trace's lr column: a 4x larger lr
     * doubles the predicted angle. */
    rc = analyze((const char *[]){trace, "--lr", "4e-2", "--format", "json", NULL}, &out, &err);
    assert_int_equal(rc, 0);
    a = roteq_test_json(out);
    L = json_array_get(json_object_get(a, "layers"), 0);
    assert_close(roteq_test_jnum(L, "predicted", "angular_update"),
                 2 * roteq_test_jnum(s, "predicted", "angular_update"), 1e-12);
    assert_string_equal(json_string_value(json_object_get(L, "verdict")),
                        "not scale-invariant-like");
    json_decref(a);
    free(out), free(err);

    /* --series and --per-neuron csv outputs; --out. */
    char *series = roteq_test_path(dir, "series.csv"), *report = roteq_test_path(dir, "r.csv");
    rc = analyze((const char *[]){trace, "--series", series, "--per-neuron", "--format", "csv",
                                  "--out", report, NULL},
                 &out, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    char *text = roteq_test_read_file(report, NULL);
    assert_non_null(text);
    assert_true(strncmp(text,
                        "layer,neuron,norm,angular_update,pred_norm,pred_angle,ratio,status\n"
                        "adamw,0,",
                        75) == 0);
    size_t lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 65);
    free(text);
    text = roteq_test_read_file(series, NULL);
    assert_non_null(text);
    assert_true(strncmp(text, "step,group,lr,weight_decay,n,norm_mean,", 39) == 0);
    lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1001); /* header + one row per recorded step */
    free(text), free(out), free(err);
    free(series), free(report);

    /* No metadata and no optimizer: measured without predictions, nulls in JSON. */
    char *bare = roteq_test_path(dir, "bare.csv");
    roteq_test_write_file(bare, "step,layer,neuron,norm,angle\n1,a,0,1.5,0.01\n2,a,0,1.5,0.01\n");
    rc = analyze((const char *[]){bare, "--format", "json", NULL}, &out, &err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "measured without predictions"));
    a = roteq_test_json(out);
    L = json_array_get(json_object_get(a, "layers"), 0);
    assert_true(json_is_null(json_object_get(json_object_get(L, "predicted"), "norm")));
    assert_true(json_is_null(json_object_get(L, "converged_at_step")));
    assert_string_equal(json_string_value(json_object_get(L, "verdict")), "no prediction");
    json_decref(a);
    free(out), free(err), free(bare);
    json_decref(s);
    free(trace);
    roteq_test_rmtree(dir);
}

/* Under an lr schedule the prediction is theory's transient, and a simulated run follows it. */
static void test_round_trip_schedule(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *trace = roteq_test_path(dir, "sched.csv");
    const char *sim[] = {"simulate",
                         "--optimizer",
                         "adamw",
                         "--lr",
                         "1e-2",
                         "--weight-decay",
                         "0.1",
                         "--neurons",
                         "64",
                         "--dim",
                         "64",
                         "--steps",
                         "4000",
                         "--seed",
                         "5",
                         "--every",
                         "4",
                         "--schedule",
                         "warmup:200+cosine:3800:0.1",
                         "--trace",
                         trace,
                         NULL};
    char *out, *err;
    int rc = roteq_test_run(sim, NULL, &out, &err);
    if (rc != 0)
        fail_msg("roteq simulate failed (%d): %s", rc, err);
    free(out), free(err);
    rc = analyze((const char *[]){trace, "--format", "json", NULL}, &out, &err);
    assert_int_equal(rc, 0);
    json_t *a = roteq_test_json(out);
    json_t *L = json_array_get(json_object_get(a, "layers"), 0);
    assert_true(json_is_true(json_object_get(L, "scheduled")));
    assert_string_equal(json_string_value(json_object_get(L, "prediction")), "transient");
    assert_close(roteq_test_jnum(L, "lr", NULL), 1e-3, 1e-12); /* the cosine floor at the end */
    /* 64 neurons: the measured RMS angle has a relative SE of about 0.3%; the transient is
     * derived for C large, so allow 2%. */
    assert_true(fabs(roteq_test_jnum(L, "relative_error", "angular_update")) < 0.02);
    assert_true(fabs(roteq_test_jnum(L, "relative_error", "norm")) < 0.02);
    assert_string_equal(json_string_value(json_object_get(L, "verdict")), "at equilibrium");
    json_decref(a);
    free(out), free(err), free(trace);
    roteq_test_rmtree(dir);
}

/* Append the rows of simulated trace `src` to `out` under the layer name `layer`. */
static void append_as_layer(FILE *out, const char *src, const char *layer)
{
    char *text = roteq_test_read_file(src, NULL);
    assert_non_null(text);
    int header = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !header) {
            header |= line[0] != '#';
            continue;
        }
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        assert_non_null(c2);
        fprintf(out, "%.*s,%s%s\n", (int)(c1 - line), line, layer, c2);
    }
    free(text);
}

/* The paper's central claim, end to end: two layers whose gradients differ 30-fold rotate at the
 * same rate under AdamW (balance 1) but not under Adam with L2, where analyze's balance matches
 * theory's (per-layer grad_norm from the metadata). */
static void test_balance(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    const char *opts[2] = {"adamw", "adam_l2"};
    double balance[2], predicted[2];
    for (int o = 0; o < 2; o++) {
        char *both = roteq_test_path(dir, "both.csv"), *meta = roteq_test_path(dir, "both.json");
        FILE *f = fopen(both, "w");
        fputs("step,layer,neuron,norm,angle,lr,weight_decay\n", f);
        const char *g[2] = {"1", "30"}, *name[2] = {"small_grad", "large_grad"};
        for (int k = 0; k < 2; k++) {
            char *tr = roteq_test_path(dir, "one.csv");
            const char *sim[] = {
                "simulate", "--optimizer", opts[o], "--lr",        "1e-2", "--weight-decay",
                "0.1",      "--neurons",   "32",    "--dim",       "64",   "--steps",
                "3000",     "--seed",      "1",     "--grad-norm", g[k],   "--every",
                "10",       "--trace",     tr,      NULL};
            char *out, *err;
            int rc = roteq_test_run(sim, NULL, &out, &err);
            if (rc != 0)
                fail_msg("simulate: %s", err);
            append_as_layer(f, tr, name[k]);
            free(out), free(err), free(tr);
        }
        fclose(f);
        char js[256];
        snprintf(js, sizeof js,
                 "{\"optimizer\":\"%s\",\"lr\":0.01,\"weight_decay\":0.1,\"dim\":64,"
                 "\"layers\":{\"small_grad\":{\"grad_norm\":1},\"large_grad\":{\"grad_norm\":30}}}",
                 opts[o]);
        roteq_test_write_file(meta, js);
        char *out, *err;
        assert_int_equal(analyze((const char *[]){both, "--format", "json", NULL}, &out, &err), 0);
        json_t *a = roteq_test_json(out);
        balance[o] = roteq_test_jnum(a, "balance", NULL);
        predicted[o] = roteq_test_jnum(a, "balance_predicted", NULL);
        json_t *layers = json_object_get(a, "layers");
        assert_int_equal(json_array_size(layers), 2);
        for (size_t k = 0; k < 2; k++)
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(layers, k), "verdict")),
                "at equilibrium");
        json_decref(a);
        free(out), free(err), free(both), free(meta);
    }
    assert_close(balance[0], 1.0, 0.02);
    assert_close(predicted[0], 1.0, 1e-12);
    assert_true(predicted[1] > 2.5);
    assert_close(balance[1], predicted[1], 0.03);
    roteq_test_rmtree(dir);
}

static void write_raw_st(const char *path, const char *header, size_t data_bytes)
{
    size_t hn = strlen(header);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)hn >> (8 * i)) & 0xff, f);
    fputs(header, f);
    for (size_t i = 0; i < data_bytes; i++)
        fputc(i % 7 == 0 ? 0 : 0x3f, f);
    fclose(f);
}

/* Every bad input of the issue, through the command: exit 2, one line naming file and place. */
static void test_bad_inputs(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *t = roteq_test_path(dir, "t.csv");
    struct {
        const char *csv, *needle;
    } csv_cases[] = {
        {"step,layer,neuron,norm\n1,a,0,1\n", "t.csv:1: missing column 'angle'"},
        {"step,layer,neuron,norm,angle\n1,a,0,one,0.1\n", "t.csv:2: column 'norm': 'one' is not"},
        {"step,layer,neuron,norm,angle\n1,a,0,nan,0.1\n", "t.csv:2: column 'norm': nan is not "
                                                          "finite"},
        {"step,layer,neuron,norm,angle\n1,a,0,inf,0.1\n", "t.csv:2: column 'norm': inf is not "
                                                          "finite"},
        {"step,layer,neuron,norm,angle\n1,a,0,-2,0.1\n", "t.csv:2: column 'norm': -2 is negative"},
        {"step,layer,neuron,norm,angle\n5,a,0,1,0.1\n4,a,0,1,0.1\n", "t.csv:3: step 4 of layer "
                                                                     "'a' comes after step 5"},
        {"step,layer,neuron,norm,angle\n5,a,0,1,0.1\n5,a,0,1,0.1\n", "t.csv:3: duplicate row for "
                                                                     "step 5, layer 'a', neuron 0"},
    };
    for (size_t i = 0; i < sizeof csv_cases / sizeof csv_cases[0]; i++) {
        roteq_test_write_file(t, csv_cases[i].csv);
        expect_bad((const char *[]){t, NULL}, csv_cases[i].needle);
    }
    /* metadata missing a needed hyperparameter; a malformed metadata file */
    char *meta = roteq_test_path(dir, "m.json");
    roteq_test_write_file(t, "step,layer,neuron,norm,angle\n1,a,0,1,0.1\n");
    roteq_test_write_file(meta, "{\"optimizer\":\"sgdm\",\"weight_decay\":0.1}");
    expect_bad((const char *[]){t, "--meta", meta, NULL},
               "m.json: layer 'a': missing hyperparameter 'lr' needed by sgdm");
    roteq_test_write_file(meta, "{\"optimizer\":\"adamw\",");
    expect_bad((const char *[]){t, "--meta", meta, NULL}, "m.json:1:");
    roteq_test_write_file(meta, "{\"optimizer\":\"adamw\",\"momentum\":0.9}");
    expect_bad((const char *[]){t, "--meta", meta, NULL}, "momentum does not apply to adamw");
    expect_bad((const char *[]){t, "--lr", "0.1", NULL}, "need --optimizer");
    expect_bad((const char *[]){t, "--optimizer", "adamw", "--momentum", "0.9", NULL},
               "--momentum: does not apply to adamw");
    expect_bad((const char *[]){t, "--layers", "^fc", NULL},
               "t.csv: no layer matches --layers '^fc'");
    expect_bad((const char *[]){t, "--layers", "([", NULL}, "--layers: invalid regular expression");
    expect_bad((const char *[]){t, "--meta", "/nonexistent.json", NULL}, "/nonexistent.json");

    /* snapshot containers */
    char *d = roteq_test_path(dir, "snaps");
    assert_int_equal(mkdir(d, 0777), 0);
    expect_bad((const char *[]){d, NULL}, "no snapshots");
    char *p1 = roteq_test_path(d, "step_1.safetensors"),
         *p2 = roteq_test_path(d, "step_2.safetensors");
    roteq_test_write_file(p1, "\x05\0\0");
    expect_bad((const char *[]){d, NULL}, "step_1.safetensors: truncated safetensors header");
    expect_bad((const char *[]){p1, NULL}, "a single snapshot is not a series");
    FILE *f = fopen(p1, "wb");
    fwrite("\0\0\0\0\0\0\x01\0{}", 1, 10, f); /* 2^48-byte header */
    fclose(f);
    expect_bad((const char *[]){d, NULL}, "step_1.safetensors: oversized safetensors header");
    write_raw_st(p1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,240]}}", 24);
    expect_bad((const char *[]){d, NULL}, "tensor 'w': data_offsets [0, 240] lie outside");
    write_raw_st(p1, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
    expect_bad((const char *[]){d, NULL}, "tensor 'w': shape and dtype BF16 need 12 bytes");
    write_raw_st(p1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
    write_raw_st(p2, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}}", 24);
    expect_bad((const char *[]){d, NULL}, "step_2.safetensors: tensor 'w': row count changes "
                                          "from 2 to 3");
    write_raw_st(p2, "{\"w\":{\"dtype\":\"I8\",\"shape\":[2,3],\"data_offsets\":[0,6]}}", 6);
    expect_bad((const char *[]){d, NULL}, "step_2.safetensors: tensor 'w': dtype changes from F32 "
                                          "to I8");
    expect_bad((const char *[]){d, "--step-regex", "([", NULL},
               "--step-regex: invalid regular expression");
    /* and a good pair analyses (exit 0) */
    write_raw_st(p2, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
    char *out, *err;
    assert_int_equal(analyze((const char *[]){d, "--optimizer", "adamw", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "w "));
    free(out), free(err);
    free(p1), free(p2), free(d), free(meta), free(t);
    roteq_test_rmtree(dir);
}

/* Outputs are checked before the work: none may be an input or another output; --series and
 * --plot together draw from the --series file; flags with impossible values are named before
 * any row is read; results that JSON or a table could garble come out whole. */
static void test_outputs(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *t = roteq_test_path(dir, "t.csv"), *meta = roteq_test_path(dir, "t.csv.json");
    char *s = roteq_test_path(dir, "s.csv"), *figs = roteq_test_path(dir, "figs");
    static char csv[16384];
    size_t n = (size_t)snprintf(csv, sizeof csv, "step,layer,neuron,norm,angle\n");
    for (int k = 1; k <= 40; k++) /* a Latin-1 layer name: 0xE9 is not UTF-8 */
        for (int i = 0; i < 4; i++)
            n += (size_t)snprintf(csv + n, sizeof csv - n, "%d,fc\xE9,%d,%.3f,%.4f\n", k, i,
                                  1.0 + 0.1 * i, 0.01 + 0.001 * i);
    roteq_test_write_file(t, csv);
    roteq_test_write_file(meta, "{\"optimizer\":\"adamw\",\"lr\":0.01,\"weight_decay\":0.1}");
    expect_bad((const char *[]){t, "--series", t, NULL}, "t.csv' is the same file as the input");
    expect_bad((const char *[]){t, "--out", meta, NULL}, "is the same file as the input");
    expect_bad((const char *[]){t, "--out", s, "--series", s, NULL},
               "--out and --series name the same file");
    expect_bad((const char *[]){t, "--lr", "-1", NULL},
               "roteq analyze: --lr: must be positive, got -1");
    char *out, *err;
    /* A name that is not UTF-8 keeps its "layer" key in JSON, the byte escaped. */
    assert_int_equal(analyze((const char *[]){t, "--format", "json", NULL}, &out, &err), 0);
    json_t *j = roteq_test_json(out);
    json_t *L = json_array_get(json_object_get(j, "layers"), 0);
    assert_string_equal(json_string_value(json_object_get(L, "layer")), "fc\\xE9");
    json_decref(j);
    free(out), free(err);
    /* An absurd weight decay gives an error of 1e150 %, written as a power of ten. */
    assert_int_equal(analyze((const char *[]){t, "--weight-decay", "1e-300", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "e+"));
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        assert_true(strlen(line) < 300);
    free(out), free(err);
    /* --series with --plot: the figures are drawn from the --series file. */
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        int rc = analyze((const char *[]){t, "--series", s, "--plot", figs, NULL}, &out, &err);
        if (rc != 0)
            fail_msg("--series with --plot: exit %d: %s", rc, err);
        free(out), free(err);
        struct stat sb;
        assert_int_equal(stat(s, &sb), 0);
        char *png = roteq_test_path(figs, "norm.png");
        assert_int_equal(stat(png, &sb), 0);
        free(png);
    }
    free(t), free(meta), free(s), free(figs);
    roteq_test_rmtree(dir);
}

/* A trace on standard input ("-"), with the hyperparameters on the command line. */
static void test_stdin(void **state)
{
    (void)state;
    const char *args[] = {"analyze",        "-",   "--optimizer", "adamw", "--lr", "1e-3",
                          "--weight-decay", "0.1", "--format",    "csv",   NULL};
    char *out, *err;
    int rc = roteq_test_run(args, "step,layer,neuron,norm,angle\n1,fc,0,2,0.001\n2,fc,0,2,0.001\n",
                            &out, &err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\nfc,,1,0,0,2,1,2,"));
    free(out), free(err);
    rc = roteq_test_run(args, "step,layer,neuron,norm,angle\n1,fc,0,2,x\n", &out, &err);
    assert_int_equal(rc, 2);
    assert_string_equal(err, "roteq analyze: -:2: column 'angle': 'x' is not a number\n");
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_schedule),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
