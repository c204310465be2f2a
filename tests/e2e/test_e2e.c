/* test_e2e.c - the "other trainer" path end to end: real PyTorch training on Fashion-MNIST
 * (AdamW, SGD with momentum, Adam+L2, AdamW under a cosine schedule) and a small convolutional
 * net, recorded by adapters/torch/roteq_recorder.py (CSV trace, metadata JSON, safetensors
 * snapshots in both layouts), then `roteq analyze --format json` on each, checked against
 * `roteq theory` for the recorded hyperparameters and against each other. Also the plain-NumPy
 * example of docs/TRAINERS.md.
 *
 * The trainers run once, in the group setup, with the Python given by ROTEQ_PYTHON (meson passes
 * Debian's /usr/bin/python3, which has python3-torch after scripts/setup.sh). A missing torch,
 * numpy or dataset makes the setup fail with Python's message: never a silent skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

/* Short runs: a few hundred steps of a narrow MLP keep the whole file well under a minute on
 * two shared cores; snapshots every step make the snapshot path see exactly the CSV's steps. */
#define STEPS  "300"
#define HIDDEN "64,32"
#define HID1   64
#define HID2   32

static char *tmp;

/* Run ROTEQ_PYTHON with args (NULL-terminated); its stdout goes to our stderr so that the TAP
 * stream stays clean. Returns the exit status. */
static int run_python(const char *const *args)
{
    const char *py = getenv("ROTEQ_PYTHON");
    if (py == NULL || *py == '\0')
        py = "/usr/bin/python3";
    size_t n = 0;
    while (args[n])
        n++;
    char **argv = calloc(n + 2, sizeof *argv);
    assert_non_null(argv);
    argv[0] = (char *)py;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    pid_t pid;
    int rc = posix_spawn(&pid, py, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    if (rc != 0) {
        fprintf(stderr, "e2e: cannot run %s: %s\n", py, strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *src_path(const char *rel)
{
    return roteq_test_path(roteq_test_source_dir(), rel);
}

static char *tmp_path(const char *rel)
{
    return roteq_test_path(tmp, rel);
}

static int train(const char *optimizer, const char *out, const char *snap_every, const char *layout,
                 const char *schedule)
{
    char *script = src_path("examples/fashion_mnist/train.py");
    char *dir = tmp_path(out);
    const char *args[] = {script,     "--optimizer",       optimizer, "--steps",
                          STEPS,      "--hidden",          HIDDEN,    "--threads",
                          "1",        "--train-size",      "20000",   "--out",
                          dir,        "--schedule",        schedule,  "--snapshot-every",
                          snap_every, "--snapshot-layout", layout,    NULL};
    int rc = run_python(args);
    if (rc != 0)
        fprintf(stderr,
                "e2e: train.py --optimizer %s failed (exit %d): is python3-torch "
                "installed (scripts/setup.sh)?\n",
                optimizer, rc);
    free(script);
    free(dir);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    tmp = roteq_test_tmpdir();
    if (train("adamw", "adamw", "1", "files", "constant") != 0 ||
        train("sgdm", "sgdm", "10", "hf", "constant") != 0 ||
        train("adam_l2", "adam_l2", "0", "files", "constant") != 0 ||
        train("adamw", "cosine", "0", "files", "cosine") != 0)
        return -1;
    char *script = src_path("examples/numpy_trace.py");
    char *out = tmp_path("numpy_trace.csv");
    const char *args[] = {script, out, NULL};
    int rc = run_python(args);
    free(script);
    free(out);
    if (rc != 0)
        return -1;
    script = src_path("tests/e2e/conv_run.py");
    out = tmp_path("conv");
    const char *conv_args[] = {script, out, NULL};
    rc = run_python(conv_args);
    free(script);
    free(out);
    return rc == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    roteq_test_rmtree(tmp);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

/* `roteq ARGS...`: must exit 0; returns its stdout parsed as JSON. */
static json_t *roteq_json(const char *const *args)
{
    char *out = NULL, *err = NULL;
    int rc = roteq_test_run(args, NULL, &out, &err);
    if (rc != 0) {
        print_error("roteq %s %s exited %d: %s\n", args[0], args[1] ? args[1] : "", rc, err);
        fail();
    }
    json_error_t jerr;
    json_t *root = json_loads(out, 0, &jerr);
    if (root == NULL) {
        print_error("roteq %s: not JSON (%s at line %d): %.300s\n", args[0], jerr.text, jerr.line,
                    out);
        fail();
    }
    free(out);
    free(err);
    return root;
}

static json_t *analyze_opt(const char *input, const char *meta, const char *extra)
{
    char *in = tmp_path(input);
    char *m = meta ? tmp_path(meta) : NULL;
    const char *args[8] = {"analyze", in, "--format", "json"};
    size_t n = 4;
    if (m) {
        args[n++] = "--meta";
        args[n++] = m;
    }
    if (extra)
        args[n++] = extra;
    args[n] = NULL;
    json_t *root = roteq_json(args);
    free(in);
    free(m);
    return root;
}

static double num(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v)) {
        print_error("JSON key '%s' is %s, want a number\n", key, v ? "not a number" : "missing");
        fail();
    }
    return json_number_value(v);
}

static double sub(const json_t *obj, const char *key, const char *inner)
{
    json_t *o = json_object_get(obj, key);
    if (!json_is_object(o)) {
        print_error("JSON key '%s' missing or not an object\n", key);
        fail();
    }
    return num(o, inner);
}

static json_t *layer(const json_t *root, const char *name)
{
    json_t *layers = json_object_get(root, "layers");
    assert_true(json_is_array(layers));
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *n = json_string_value(json_object_get(l, "layer"));
        if (n && strcmp(n, name) == 0)
            return l;
    }
    print_error("no layer '%s' in the analysis\n", name);
    fail();
    return NULL;
}

static json_t *analyze(const char *input, const char *meta)
{
    return analyze_opt(input, meta, NULL);
}

/* The fields issue 4 promises for each layer, all finite where there is a prediction. */
static void check_layer_fields(const json_t *l, size_t dim, size_t neurons)
{
    assert_int_equal((size_t)num(l, "dim"), dim);
    assert_int_equal((size_t)num(l, "neurons"), neurons);
    double pn = sub(l, "predicted", "norm"), pa = sub(l, "predicted", "angular_update");
    double mn = sub(l, "measured", "norm"), ma = sub(l, "measured", "angular_update");
    assert_true(isfinite(pn) && pn > 0 && isfinite(pa) && pa > 0);
    assert_true(isfinite(mn) && mn > 0 && isfinite(ma) && ma > 0);
    /* relative_error is measured/predicted - 1 of the same numbers. */
    assert_close(sub(l, "relative_error", "norm"), mn / pn - 1, 1e-9);
    assert_close(sub(l, "relative_error", "angular_update"), ma / pa - 1, 1e-9);
    double cv = num(l, "angular_update_cv");
    assert_true(isfinite(cv) && cv >= 0);
    json_t *conv = json_object_get(l, "converged_at_step");
    assert_true(conv != NULL && (json_is_null(conv) || json_is_integer(conv)));
    assert_true(json_is_string(json_object_get(l, "verdict")));
}

/* `roteq theory` for the recorded hyperparameters: {norm, angular_update, kstep_angle}. */
typedef struct {
    double norm, angle, kstep_angle;
} theory;

static theory roteq_theory(const char *const *hp, size_t dim, double grad_norm, long kstep)
{
    char d[32], g[64], k[32];
    snprintf(d, sizeof d, "%zu", dim);
    snprintf(g, sizeof g, "%.17g", grad_norm);
    snprintf(k, sizeof k, "%ld", kstep);
    const char *args[32] = {"theory", "--dim", d, "--kstep", k, "--format", "json"};
    size_t n = 7;
    for (size_t i = 0; hp[i]; i++)
        args[n++] = hp[i];
    if (isfinite(grad_norm)) {
        args[n++] = "--grad-norm";
        args[n++] = g;
    }
    args[n] = NULL;
    json_t *t = roteq_json(args);
    json_t *jn = json_object_get(t, "equilibrium_norm");
    theory out = {json_is_number(jn) ? json_number_value(jn) : (double)NAN,
                  num(t, "angular_update"), num(t, "kstep_angle")};
    json_decref(t);
    return out;
}

/* The metadata the recorder wrote (for grad_norm). */
static json_t *load_meta(const char *rel)
{
    char *p = tmp_path(rel);
    json_error_t jerr;
    json_t *m = json_load_file(p, 0, &jerr);
    if (m == NULL) {
        print_error("%s: %s\n", p, jerr.text);
        fail();
    }
    free(p);
    return m;
}

static const char *const ADAMW_HP[] = {"--optimizer",    "adamw", "--lr", "0.001",
                                       "--weight-decay", "1.0",   NULL};
static const char *const SGDM_HP[] = {"--optimizer", "sgdm",       "--lr", "0.05", "--weight-decay",
                                      "0.005",       "--momentum", "0.9",  NULL};

/* ---------------------------------------------------------------- tests */

/* AdamW, CSV path, metadata found beside the trace: dims, finite values, predictions equal to
 * `roteq theory`, and the hidden layer that starts near equilibrium is there. */
static void test_csv_adamw(void **state)
{
    (void)state;
    json_t *r = analyze("adamw/trace.csv", NULL);
    const struct {
        const char *name;
        size_t dim, neurons;
    } want[] = {{"fc1.weight", 784, HID1}, {"fc2.weight", HID1, HID2}, {"out.weight", HID2, 10}};
    assert_int_equal(json_array_size(json_object_get(r, "layers")), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *l = layer(r, want[i].name);
        check_layer_fields(l, want[i].dim, want[i].neurons);
        theory t = roteq_theory(ADAMW_HP, want[i].dim, NAN, 1);
        assert_close(sub(l, "predicted", "norm"), t.norm, 1e-12);
        assert_close(sub(l, "predicted", "angular_update"), t.angle, 1e-12);
    }
    /* fc1 (C = 784) starts at ||w|| ~ 0.58 against a predicted 0.63, so 300 steps bring its
     * rotation to the prediction (the full 3000-step run lands within 10%). A recorder or
     * reader that got angles or norms wrong by a constant factor fails here. */
    json_t *fc1 = layer(r, "fc1.weight");
    assert_true(fabs(sub(fc1, "relative_error", "angular_update")) < 0.25);
    assert_true(fabs(sub(fc1, "relative_error", "norm")) < 0.25);
    double balance = num(r, "balance");
    assert_true(isfinite(balance) && balance >= 1.0);
    json_decref(r);
}

/* Snapshots every step (step_*.safetensors written by the recorder) hold the same weights the
 * CSV rows were computed from: the two paths must agree to rounding. */
static void test_snapshots_agree_with_csv(void **state)
{
    (void)state;
    json_t *c = analyze("adamw/trace.csv", "adamw/trace.csv.json");
    json_t *s = analyze("adamw/snapshots", "adamw/trace.csv.json");
    const char *names[] = {"fc1.weight", "fc2.weight", "out.weight"};
    assert_int_equal(json_array_size(json_object_get(s, "layers")), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *lc = layer(c, names[i]), *ls = layer(s, names[i]);
        assert_int_equal((size_t)num(ls, "dim"), (size_t)num(lc, "dim"));
        assert_int_equal((size_t)num(ls, "neurons"), (size_t)num(lc, "neurons"));
        assert_close(sub(ls, "predicted", "norm"), sub(lc, "predicted", "norm"), 1e-12);
        assert_close(sub(ls, "predicted", "angular_update"), sub(lc, "predicted", "angular_update"),
                     1e-12);
        assert_close(sub(ls, "measured", "norm"), sub(lc, "measured", "norm"), 1e-9);
        assert_close(sub(ls, "measured", "angular_update"), sub(lc, "measured", "angular_update"),
                     1e-9);
        assert_close(num(ls, "angular_update_cv"), num(lc, "angular_update_cv"), 1e-6);
    }
    assert_close(num(s, "balance"), num(c, "balance"), 1e-9);
    json_decref(c);
    json_decref(s);
}

/* SGD with momentum, HF checkpoint-N/model.safetensors every 10 steps: the snapshot path must
 * predict the 10-step angle, the CSV path the 1-step one, both with the recorder's measured
 * grad_norm in the norm prediction, and both must measure about the same norm. */
static void test_hf_checkpoints_sgdm(void **state)
{
    (void)state;
    json_t *meta = load_meta("sgdm/trace.csv.json");
    json_t *c = analyze("sgdm/trace.csv", NULL);
    json_t *s = analyze("sgdm/snapshots", NULL); /* metadata: sgdm/snapshots.json */
    const struct {
        const char *name;
        size_t dim, neurons;
    } want[] = {{"fc1.weight", 784, HID1}, {"fc2.weight", HID1, HID2}, {"out.weight", HID2, 10}};
    for (size_t i = 0; i < 3; i++) {
        json_t *lm = json_object_get(json_object_get(meta, "layers"), want[i].name);
        double g = num(lm, "grad_norm");
        assert_true(isfinite(g) && g > 0);
        theory t = roteq_theory(SGDM_HP, want[i].dim, g, 10);
        json_t *lc = layer(c, want[i].name), *ls = layer(s, want[i].name);
        check_layer_fields(lc, want[i].dim, want[i].neurons);
        check_layer_fields(ls, want[i].dim, want[i].neurons);
        assert_close(sub(lc, "predicted", "angular_update"), t.angle, 1e-12);
        assert_close(sub(ls, "predicted", "angular_update"), t.kstep_angle, 1e-12);
        assert_close(sub(lc, "predicted", "norm"), t.norm, 1e-12);
        assert_close(sub(ls, "predicted", "norm"), t.norm, 1e-12);
        /* Same weights sampled every step vs every 10th: mean norms over the final windows
         * agree closely (the norm moves by ~eta*lambda/(1-alpha) = 0.25% per step). */
        assert_close(sub(ls, "measured", "norm"), sub(lc, "measured", "norm"), 0.05);
    }
    json_decref(meta);
    json_decref(c);
    json_decref(s);
}

/* Convolutions: the recorder's rows of a [out, in, kh, kw] weight (out x in*kh*kw, C order) and
 * the snapshot reader's (trailing axes flattened) are the same neurons: per-neuron results of
 * the two paths agree to rounding, for a 3x3 and a non-square 3x2 kernel. The two layers are in
 * param groups with different lr and weight decay: the per-layer overrides of the metadata
 * must reach the predictions. */
static void test_conv_rows_agree(void **state)
{
    (void)state;
    json_t *c = analyze_opt("conv/trace.csv", NULL, "--per-neuron");
    json_t *s = analyze_opt("conv/snapshots", NULL, "--per-neuron");
    static const char *const hp1[] = {"--optimizer",    "adamw", "--lr", "0.002",
                                      "--weight-decay", "0.5",   NULL};
    static const char *const hp2[] = {"--optimizer",    "adamw", "--lr", "0.001",
                                      "--weight-decay", "0.25",  NULL};
    const struct {
        const char *name;
        size_t dim, neurons;
        const char *const *hp;
    } want[] = {{"conv1.weight", 3 * 3 * 3, 8, hp1}, {"conv2.weight", 8 * 3 * 2, 12, hp2}};
    for (size_t i = 0; i < 2; i++) {
        json_t *lc = layer(c, want[i].name), *ls = layer(s, want[i].name);
        check_layer_fields(lc, want[i].dim, want[i].neurons);
        check_layer_fields(ls, want[i].dim, want[i].neurons);
        theory t = roteq_theory(want[i].hp, want[i].dim, NAN, 1);
        assert_close(sub(lc, "predicted", "angular_update"), t.angle, 1e-12);
        assert_close(sub(lc, "predicted", "norm"), t.norm, 1e-12);
        assert_close(sub(ls, "predicted", "angular_update"), t.angle, 1e-12);
        json_t *pc = json_object_get(lc, "per_neuron"), *ps = json_object_get(ls, "per_neuron");
        assert_int_equal(json_array_size(pc), want[i].neurons);
        assert_int_equal(json_array_size(ps), want[i].neurons);
        for (size_t k = 0; k < want[i].neurons; k++) {
            json_t *nc = json_array_get(pc, k), *ns = json_array_get(ps, k);
            assert_int_equal((size_t)num(nc, "neuron"), k);
            assert_int_equal((size_t)num(ns, "neuron"), k);
            assert_close(num(ns, "norm"), num(nc, "norm"), 1e-12);
            assert_close(num(ns, "angular_update"), num(nc, "angular_update"), 1e-9);
        }
    }
    json_decref(c);
    json_decref(s);
}

/* Adam + L2 (torch.optim.Adam with weight_decay): both predictions need the gradient norm, which
 * the recorder measured; they must be theory's for it, and dead/collapsed units are counts. */
static void test_csv_adam_l2(void **state)
{
    (void)state;
    json_t *meta = load_meta("adam_l2/trace.csv.json");
    assert_string_equal(json_string_value(json_object_get(meta, "optimizer")), "adam_l2");
    json_t *r = analyze("adam_l2/trace.csv", NULL);
    const char *hp[] = {"--optimizer", "adam_l2", "--lr", "0.001", "--weight-decay", "0.005", NULL};
    const struct {
        const char *name;
        size_t dim, neurons;
    } want[] = {{"fc1.weight", 784, HID1}, {"fc2.weight", HID1, HID2}, {"out.weight", HID2, 10}};
    for (size_t i = 0; i < 3; i++) {
        json_t *lm = json_object_get(json_object_get(meta, "layers"), want[i].name);
        theory t = roteq_theory(hp, want[i].dim, num(lm, "grad_norm"), 1);
        json_t *l = layer(r, want[i].name);
        check_layer_fields(l, want[i].dim, want[i].neurons);
        assert_close(sub(l, "predicted", "norm"), t.norm, 1e-12);
        assert_close(sub(l, "predicted", "angular_update"), t.angle, 1e-12);
        assert_true(json_is_integer(json_object_get(l, "dead")));
        assert_true(json_is_integer(json_object_get(l, "collapsed")));
    }
    json_decref(meta);
    json_decref(r);
}

/* AdamW under a cosine lr schedule (factor 1 -> 0.1 over the run, roteq's cosine:300:0.1): the
 * recorder writes each step's lr, and the analysis must see the schedule, predict the transient
 * from it, and end at the final lr. The hidden fc1 tracks that prediction (at equilibrium within
 * 2% in this run; 25% allowed). */
static void test_cosine_schedule(void **state)
{
    (void)state;
    json_t *r = analyze("cosine/trace.csv", NULL);
    const char *names[] = {"fc1.weight", "fc2.weight", "out.weight"};
    for (size_t i = 0; i < 3; i++) {
        json_t *l = layer(r, names[i]);
        assert_true(json_is_true(json_object_get(l, "scheduled")));
        assert_string_equal(json_string_value(json_object_get(l, "prediction")), "transient");
        assert_close(num(l, "lr"), 1e-4, 1e-12);
        assert_close(num(l, "weight_decay"), 1.0, 0);
        double pa = sub(l, "predicted", "angular_update");
        assert_true(isfinite(pa) && pa > 0);
    }
    json_t *fc1 = layer(r, "fc1.weight");
    assert_true(fabs(sub(fc1, "relative_error", "angular_update")) < 0.25);
    json_decref(r);
}

/* The plain-NumPy example (SGD on a scale-invariant random walk, gradient norm sqrt(C - 1) at
 * unit weight norm) is a valid trace and sits at the closed forms: rotation sqrt(2 eta lambda)
 * = 0.1, norm (eta G^2 / (2 lambda))^(1/4) = 3.357. */
static void test_numpy_example(void **state)
{
    (void)state;
    json_t *r = analyze("numpy_trace.csv", NULL);
    json_t *l = layer(r, "toy");
    assert_int_equal((size_t)num(l, "dim"), 128);
    assert_int_equal((size_t)num(l, "neurons"), 64);
    const char *hp[] = {"--optimizer", "sgd", "--lr", "0.1", "--weight-decay", "0.05", NULL};
    theory t = roteq_theory(hp, 128, sqrt(127.0), 1);
    assert_close(sub(l, "predicted", "angular_update"), t.angle, 1e-12);
    assert_close(sub(l, "predicted", "norm"), t.norm, 1e-12);
    assert_close(sub(l, "measured", "angular_update"), t.angle, 0.03);
    assert_close(sub(l, "measured", "norm"), t.norm, 0.03);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_adamw),           cmocka_unit_test(test_snapshots_agree_with_csv),
        cmocka_unit_test(test_hf_checkpoints_sgdm), cmocka_unit_test(test_csv_adam_l2),
        cmocka_unit_test(test_cosine_schedule),     cmocka_unit_test(test_conv_rows_agree),
        cmocka_unit_test(test_numpy_example),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
