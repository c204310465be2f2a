/* test_cli_theory.c - golden tests of `roteq theory`, run as a subprocess: --help, --list,
 * the json / csv / text outputs (the acceptance numbers among them), and every error
 * path with its exit status 2 and a one-line message naming the flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(const char *const *args, char **out, char **err)
{
    return roteq_test_run(args, NULL, out, err);
}

/* The number after "key": in a json text; NAN if the key is missing or null. */
static double json_number(const char *json, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    if (p == NULL)
        return NAN;
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0)
        return NAN;
    return strtod(p, NULL);
}

static void test_help(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(run((const char *[]){"theory", "--help", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "usage: roteq theory"));
    assert_non_null(strstr(out, "--weight-decay"));
    assert_non_null(strstr(out, "`roteq theory --optimizer muon --help`"));
    assert_string_equal(err, "");
    free(out), free(err);
}

static void test_list(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(run((const char *[]){"theory", "--list", NULL}, &out, &err), 0);
    const char *names[] = {"sgd",  "sgdm",     "nesterov", "adam_l2", "adamw",
                           "lion", "rv_adamw", "rv_sgdm",  "rv_lion"};
    for (size_t i = 0; i < 9; i++) {
        char line[32];
        snprintf(line, sizeof line, "\n%s ", names[i]);
        if (i > 0 && strstr(out, line) == NULL)
            fail_msg("--list lacks %s", names[i]);
    }
    assert_non_null(strstr(out, "sqrt(pi*eta*lambda*K)"));
    free(out), free(err);
    assert_int_equal(
        run((const char *[]){"theory", "--list", "--format", "json", NULL}, &out, &err), 0);
    assert_non_null(strstr(out, "\"optimizer\": \"rv_lion\""));
    assert_non_null(strstr(out, "\"formula\""));
    free(out), free(err);
}

static void test_adamw_json(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(
        run((const char *[]){"theory", "--optimizer", "adamw", "--lr", "1e-3", "--weight-decay",
                             "0.5", "--dim", "512", "--format", "json", NULL},
            &out, &err),
        0);
    /* The acceptance numbers, 4 significant digits. */
    char buf[32];
    snprintf(buf, sizeof buf, "%.4g", json_number(out, "equilibrium_norm"));
    assert_string_equal(buf, "0.7155");
    snprintf(buf, sizeof buf, "%.4g", json_number(out, "angular_update"));
    assert_string_equal(buf, "0.007255");
    assert_non_null(strstr(out, "\"optimizer\": \"adamw\""));
    assert_non_null(strstr(out, "\"exact\": true"));
    assert_true(json_number(out, "steps_to_equilibrium") >= 1);
    assert_non_null(strstr(out, "\"grad_norm\": null"));
    /* The discrete-time fixed point sits O(eta lambda beta1/(1-beta1)) below (test_transient.c
     * checks its value). */
    double st = json_number(out, "stationary_norm");
    assert_true(st < 0.7155 && st > 0.71);
    free(out), free(err);
}

static void test_lion_json(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(run((const char *[]){"theory", "--optimizer", "lion", "--lr", "1e-3",
                                          "--weight-decay", "1", "--dim", "128", "--beta1", "0.5",
                                          "--beta2", "0.9", "--format", "json", NULL},
                         &out, &err),
                     0);
    /* paper: sqrt(pi eta lambda K), K = 0.25 + 0.25*0.1/1.9 (hand-computed: 0.028752998...) */
    double K = 0.25 + 0.25 * 0.1 / 1.9, a = sqrt(M_PI * 1e-3 * K);
    assert_close(json_number(out, "angular_update_paper"), a, 1e-15);
    assert_close(json_number(out, "equilibrium_norm_paper"), 1e-3 * sqrt(128.0) / a, 1e-15);
    assert_close(json_number(out, "angular_update_plain"), sqrt(2e-3), 1e-15);
    assert_close(json_number(out, "equilibrium_norm_plain"), sqrt(1e-3 * 128 / 2), 1e-15);
    /* best is neither (values in test_equilibrium.c) */
    double best = json_number(out, "equilibrium_norm");
    assert_true(best > 0.41 && best < 0.43);
    assert_non_null(strstr(out, "\"exact\": false"));
    free(out), free(err);
}

static void test_grad_norm_null(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(run((const char *[]){"theory", "--optimizer", "sgdm", "--lr", "0.1",
                                          "--weight-decay", "0.01", "--format", "json", NULL},
                         &out, &err),
                     0);
    assert_non_null(strstr(out, "\"equilibrium_norm\": null"));
    assert_close(json_number(out, "angular_update"), sqrt(2 * 0.1 * 0.01 / 1.9), 1e-15);
    free(out), free(err);
    /* --nesterov on sgdm selects Nesterov */
    assert_int_equal(run((const char *[]){"theory", "--optimizer", "sgdm", "--nesterov", "--lr",
                                          "0.1", "--weight-decay", "0.01", "--grad-norm", "3",
                                          "--format", "json", NULL},
                         &out, &err),
                     0);
    assert_non_null(strstr(out, "\"optimizer\": \"nesterov\""));
    assert_true(json_number(out, "equilibrium_norm") > 0);
    free(out), free(err);
}

static void test_csv_trajectory(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(
        run((const char *[]){"theory", "--optimizer", "adamw", "--dim", "64", "--init-norm", "2",
                             "--schedule", "warmup:10+cosine:90", "--steps", "100", "--every", "10",
                             "--format", "csv", NULL},
            &out, &err),
        0);
    assert_true(strncmp(out, "step,lr,weight_decay,norm,angular_update\n", 41) == 0);
    int rows = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        rows++;
    assert_int_equal(rows, 11);
    /* step 10: end of warmup, lr 1e-3; step 100: cosine at 0. */
    assert_non_null(strstr(out, "\n10,0.001,0.01,"));
    assert_non_null(strstr(out, "\n100,0,0.01,"));
    free(out), free(err);
    /* without --steps: one row per prediction */
    assert_int_equal(run((const char *[]){"theory", "--optimizer", "lion", "--weight-decay", "1",
                                          "--format", "csv", NULL},
                         &out, &err),
                     0);
    assert_non_null(strstr(out, "optimizer,prediction,equilibrium_norm,angular_update,exact"));
    assert_non_null(strstr(out, "\nlion,best,"));
    assert_non_null(strstr(out, "\nlion,paper,"));
    assert_non_null(strstr(out, "\nlion,plain,"));
    assert_non_null(strstr(out, "\nlion,stationary,"));
    free(out), free(err);
}

static void test_text(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(run((const char *[]){"theory", "--optimizer", "rv_lion", "--weight-decay",
                                          "0.3", "--kstep", "100", NULL},
                         &out, &err),
                     0);
    assert_non_null(strstr(out, "rv_lion"));
    assert_non_null(strstr(out, "held at its initial value"));
    assert_non_null(strstr(out, "angle over 100 steps"));
    assert_non_null(strstr(out, "steps to equilibrium"));
    free(out), free(err);
}

static void test_errors(void **state)
{
    (void)state;
    struct {
        const char *args[12];
        const char *msg;
    } cases[] = {
        {{"theory", NULL}, "--optimizer is required"},
        {{"theory", "--optimizer", "adamx", NULL}, "--optimizer: unknown optimizer 'adamx'"},
        {{"theory", "--optimizer", "sgd", "--weight-decay", "0.1", NULL}, "--lr: is required"},
        {{"theory", "--optimizer", "sgd", "--lr", "0.1", NULL}, "--weight-decay: is required"},
        {{"theory", "--optimizer", "adamw", "--lr", "0", NULL}, "--lr: must be positive"},
        {{"theory", "--optimizer", "adamw", "--lr", "-1e-3", NULL}, "--lr: must be positive"},
        {{"theory", "--optimizer", "adamw", "--weight-decay", "0", NULL},
         "--weight-decay: must be positive"},
        {{"theory", "--optimizer", "adamw", "--lr", "abc", NULL}, "--lr: 'abc' is not a number"},
        {{"theory", "--optimizer", "adamw", "--beta1", "1", NULL}, "--beta1: must be in [0, 1)"},
        {{"theory", "--optimizer", "lion", "--weight-decay", "1", "--beta2", "-0.1", NULL},
         "--beta2: must be in [0, 1)"},
        {{"theory", "--optimizer", "sgdm", "--lr", "1", "--weight-decay", "1", "--momentum", "1",
          NULL},
         "--momentum: must be in [0, 1)"},
        {{"theory", "--optimizer", "sgdm", "--lr", "1", "--weight-decay", "1", "--dampening", "1.5",
          NULL},
         "--dampening: must be in [0, 1)"},
        {{"theory", "--optimizer", "sgd", "--lr", "1", "--weight-decay", "1", "--beta1", "0.9",
          NULL},
         "--beta1: does not apply to sgd"},
        {{"theory", "--optimizer", "adamw", "--steps", "10", "--schedule", "cosine", NULL},
         "--schedule: malformed schedule 'cosine'"},
        {{"theory", "--optimizer", "adamw", "--steps", "10", "--wd-schedule", "step:0:1", NULL},
         "--wd-schedule: malformed schedule"},
        {{"theory", "--optimizer", "adamw", "--schedule", "warmup:5", NULL}, "need --steps"},
        {{"theory", "--optimizer", "adamw", "--steps", "0", NULL}, "--steps: must be positive"},
        {{"theory", "--optimizer", "adamw", "--dim", "0", NULL}, "--dim: must be positive"},
        {{"theory", "--optimizer", "adamw", "--dim", "-3", NULL}, "--dim:"},
        {{"theory", "--optimizer", "sgd", "--lr", "1", "--weight-decay", "1", "--grad-norm", "0",
          NULL},
         "--grad-norm: must be positive"},
        {{"theory", "--optimizer", "adamw", "--init-norm", "-2", NULL}, "--init-norm: must be"},
        {{"theory", "--optimizer", "adamw", "--kstep", "0", NULL}, "--kstep: must be at least 1"},
        {{"theory", "--optimizer", "adamw", "--format", "xml", NULL}, "--format: 'xml'"},
        {{"theory", "--list", "--format", "csv", NULL}, "--format"},
        {{"theory", "--optimizer", "adamw", "--bogus", NULL}, "unknown option '--bogus'"},
        {{"theory", "--optimizer", NULL}, "needs a value"},
        {{"theory", "--optimizer", "adamw", "extra", NULL}, "unexpected argument 'extra'"},
        /* no equilibrium, or none that a double holds: the reason, never "success" */
        {{"theory", "--optimizer", "lion", "--lr", "1e300", "--weight-decay", "0.1", NULL},
         "--weight-decay: lr*weight_decay = 1.0000000000000001e+299 is at least 1"},
        {{"theory", "--optimizer", "adamw", "--lr", "1", "--weight-decay", "1", NULL},
         "so there is no equilibrium"},
        {{"theory", "--optimizer", "lion", "--lr", "1e300", "--weight-decay", "1e-301", "--dim",
          "10", NULL},
         "lion has no finite equilibrium norm"},
        {{"theory", "--optimizer", "adamw", "--dim", "18446744073709551615", NULL},
         "--dim: must be at most 2^53 = 9007199254740992"},
        /* absurd lengths: the limit named, at once */
        {{"theory", "--optimizer", "adamw", "--steps", "1000000000000000", "--every",
          "100000000000000", NULL},
         "--steps: at most 10000000000 (1e10)"},
        {{"theory", "--optimizer", "adamw", "--steps", "2000000", "--format", "json", NULL},
         "--format json: at most 1000000 trajectory rows"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = run(cases[i].args, &out, &err);
        if (rc != 2 || strncmp(err, "roteq theory: ", 14) != 0 ||
            strstr(err, cases[i].msg) == NULL || strchr(err, '\n') != err + strlen(err) - 1)
            fail_msg("case %zu: exit %d, stderr '%s', want 2 and '%s'", i, rc, err, cases[i].msg);
        assert_string_equal(out, "");
        free(out), free(err);
    }
}

/* Long gaps are closed forms: a gap of 1e15 steps answers at once (pi/2: w has forgotten). */
static void test_long_kstep(void **state)
{
    (void)state;
    const char *args[] = {"theory",           "--optimizer", "adamw", "--kstep",
                          "1000000000000000", "--format",    "json",  NULL};
    char *out, *err;
    assert_int_equal(run(args, &out, &err), 0);
    assert_true(fabs(json_number(out, "kstep_angle") - M_PI / 2) < 1e-9);
    assert_true(json_number(out, "kstep") == 1e15);
    free(out), free(err);
}

/* A long trajectory reports progress on stderr also when stderr is not a terminal (here a
 * pipe), a line per ROTEQ_PROGRESS_SECONDS; stdout keeps only the rows. */
static void test_progress_not_a_terminal(void **state)
{
    (void)state;
    setenv("ROTEQ_PROGRESS_SECONDS", "0", 1);
    const char *args[] = {"theory",  "--optimizer", "adamw",    "--steps", "20000",
                          "--every", "10000",       "--format", "csv",     NULL};
    char *out, *err;
    assert_int_equal(run(args, &out, &err), 0);
    unsetenv("ROTEQ_PROGRESS_SECONDS");
    assert_non_null(strstr(err, "roteq theory: step 4096 of 20000 (20.5%)"));
    assert_non_null(strstr(err, "roteq theory: step 16384 of 20000"));
    assert_null(strstr(out, "roteq"));
    assert_non_null(strstr(out, "\n20000,"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),           cmocka_unit_test(test_list),
        cmocka_unit_test(test_adamw_json),     cmocka_unit_test(test_lion_json),
        cmocka_unit_test(test_grad_norm_null), cmocka_unit_test(test_csv_trajectory),
        cmocka_unit_test(test_text),           cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_kstep),     cmocka_unit_test(test_progress_not_a_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
