/* test_checkpoints.c - one small PyTorch run saved the ways trainers save it
 * (tests/e2e/checkpoints_run.py): safetensors files, a folder of torch.save state dicts,
 * training-script dicts with the optimizer, HF checkpoint-N/ folders of sharded
 * pytorch_model.bin, and Flax-layout .npy with neuron_axis metadata. `roteq analyze` must give
 * the same per-layer numbers on all of them, refuse a pickle that would run a command without
 * running it, and map the optimizer's numbered state onto the right layers (fc2 and fc3 share a
 * shape). The run happens once, in the group setup, with ROTEQ_PYTHON (Debian's python3-torch);
 * a missing torch fails the setup, never skips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_analysis.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <errno.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

static char *tmp;

static int group_setup(void **state)
{
    (void)state;
    tmp = roteq_test_tmpdir();
    const char *py = getenv("ROTEQ_PYTHON");
    if (py == NULL || *py == '\0')
        py = "/usr/bin/python3";
    char *script = roteq_test_path(roteq_test_source_dir(), "tests/e2e/checkpoints_run.py");
    char *argv[] = {(char *)py, script, tmp, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, 2, 1); /* keep the TAP stream clean */
    pid_t pid;
    int rc = posix_spawn(&pid, py, &fa, NULL, argv, environ), status = 0;
    posix_spawn_file_actions_destroy(&fa);
    free(script);
    if (rc != 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "checkpoints_run.py failed: is python3-torch installed "
                        "(scripts/setup.sh)?\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    roteq_test_rmtree(tmp);
    return 0;
}

/* `roteq analyze DIR --format json` with AdamW's hyperparameters (plus `extra`, may be NULL):
 * must exit 0; the report parsed, stderr into *err when asked. */
static json_t *analyze(const char *sub, const char *extra, const char *extra2, char **err)
{
    char *dir = roteq_test_path(tmp, sub);
    const char *args[] = {"analyze", dir,    "--format", "json",           "--optimizer",
                          "adamw",   "--lr", "3e-3",     "--weight-decay", "0.1",
                          extra,     extra2, NULL};
    char *out = NULL, *e = NULL;
    int rc = roteq_test_run(args, NULL, &out, &e);
    if (rc != 0)
        fail_msg("roteq analyze %s: exit %d: %s", sub, rc, e ? e : "");
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    free(out);
    free(dir);
    if (err)
        *err = e;
    else
        free(e);
    return j;
}

static json_t *layer(json_t *r, const char *name)
{
    json_t *ls = json_object_get(r, "layers"), *l;
    size_t i;
    json_array_foreach(ls, i, l) if (strcmp(json_string_value(json_object_get(l, "layer")), name) ==
                                     0) return l;
    fail_msg("no layer %s", name);
    return NULL;
}

static double sub(json_t *l, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(l, a), b));
}

static const char *const layers[] = {"conv.weight", "fc1.weight", "fc2.weight", "fc3.weight",
                                     "head.weight"};

/* Per-layer measured numbers of `got` equal those of `want` to rtol (the angles only when
 * `angles`: checkpoints with the optimizer state measure the last step's angle instead of the
 * k-step one). */
static void same_numbers_as(json_t *want, json_t *got, double rtol, int angles)
{
    assert_int_equal(json_array_size(json_object_get(got, "layers")), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *a = layer(want, layers[i]), *b = layer(got, layers[i]);
        assert_int_equal(json_integer_value(json_object_get(a, "neurons")),
                         json_integer_value(json_object_get(b, "neurons")));
        assert_int_equal(json_integer_value(json_object_get(a, "dim")),
                         json_integer_value(json_object_get(b, "dim")));
        assert_int_equal(json_integer_value(json_object_get(a, "records")),
                         json_integer_value(json_object_get(b, "records")));
        assert_close(sub(b, "measured", "norm"), sub(a, "measured", "norm"), rtol);
        if (!angles)
            continue;
        assert_close(sub(b, "measured", "angular_update"), sub(a, "measured", "angular_update"),
                     rtol);
        assert_close(json_number_value(json_object_get(b, "angular_update_cv")),
                     json_number_value(json_object_get(a, "angular_update_cv")), rtol * 1e3);
    }
}

static void same_numbers(json_t *want, json_t *got, double rtol)
{
    same_numbers_as(want, got, rtol, 1);
}

/* Every layer's angles are the last step's, rebuilt exactly from the optimizer state. */
static void per_step_from_state(json_t *r)
{
    for (size_t i = 0; i < 5; i++) {
        json_t *l = layer(r, layers[i]);
        const char *src = json_string_value(json_object_get(l, "angle_source"));
        if (src == NULL || strstr(src, "per-step from optimizer state, exact") == NULL)
            fail_msg("%s: angle_source '%s'", layers[i], src ? src : "(none)");
        assert_true(json_is_true(json_object_get(l, "angle_judged")));
    }
}

/* torch.save folders, training-script dicts and HF checkpoint folders hold the same float32
 * bits as the safetensors: the numbers are identical. */
static void test_torch_layouts_agree(void **state)
{
    (void)state;
    json_t *st = analyze("st", NULL, NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(layer(st, "fc1.weight"), "records")), 11);
    json_t *pt = analyze("pt", NULL, NULL, NULL);
    json_t *train = analyze("train", NULL, NULL, NULL);
    json_t *train_key = analyze("train", "--key", "model", NULL);
    char *err = NULL;
    json_t *hf = analyze("hf", NULL, NULL, &err);
    same_numbers(st, pt, 0);
    /* The training-script dicts and HF folders carry the optimizer state: the same norms, and
     * per-step angles (the same in both). */
    same_numbers_as(st, train, 0, 0);
    same_numbers_as(st, train_key, 0, 0);
    same_numbers_as(st, hf, 0, 0);
    same_numbers(train, hf, 0);
    same_numbers(train, train_key, 0);
    per_step_from_state(train);
    per_step_from_state(hf);
    assert_non_null(strstr(err, "final model at the top level is skipped: step 40 is "
                                "'checkpoint-40' already"));
    free(err);
    json_decref(st);
    json_decref(pt);
    json_decref(train);
    json_decref(train_key);
    json_decref(hf);
}

/* Flax layout ([in, out], [kh, kw, in, out]) with "neuron_axis": -1 in the metadata: the same
 * neurons, their elements summed in another order (so equal to rounding, not bit for bit). */
static void test_flax_layout(void **state)
{
    (void)state;
    char *meta = roteq_test_path(tmp, "flax.json");
    json_t *st = analyze("st", NULL, NULL, NULL);
    json_t *fx = analyze("flax", "--meta", meta, NULL);
    same_numbers(st, fx, 1e-12);
    for (size_t i = 0; i < 5; i++) { /* the axis is reported: conv [kh, kw, in, out] has it at 3 */
        assert_int_equal(json_integer_value(json_object_get(layer(st, layers[i]), "neuron_axis")),
                         0);
        assert_int_equal(json_integer_value(json_object_get(layer(fx, layers[i]), "neuron_axis")),
                         i == 0 ? 3 : 1);
    }
    /* the same from the command line instead of the metadata */
    json_t *cl = analyze("flax", "--neuron-axis", ".=-1", NULL);
    same_numbers(st, cl, 1e-12);
    json_decref(st);
    json_decref(fx);
    json_decref(cl);
    free(meta);
}

static void test_pickle_code_refused(void **state)
{
    (void)state;
    char *dir = roteq_test_path(tmp, "evil"), *pwned = roteq_test_path(tmp, "pwned");
    const char *args[] = {"analyze", dir, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(roteq_test_run(args, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "step_1.pt: global 'posix.system' is not allowed"));
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
    struct stat sb;
    assert_int_not_equal(stat(pwned, &sb), 0); /* nothing ran */
    free(out);
    free(err);
    free(dir);
    free(pwned);
}

/* The optimizer's state, numbered in the checkpoint, lands on the layers torch had it for:
 * fc2 and fc3 share the shape [16, 16], so only the order tells them apart. */
static void check_state(const char *sub_path, json_t *want)
{
    char *path = roteq_test_path(tmp, sub_path);
    roteq_analysis_optstate *s = NULL;
    if (roteq_analysis_optstate_read(path, NULL, &s) != 0)
        fail_msg("%s", roteq_error_message());
    assert_string_equal(s->mapping, "order");
    assert_int_equal(s->nlayers, json_object_size(want));
    const char *name;
    json_t *w;
    json_object_foreach(want, name, w)
    {
        const roteq_analysis_optstate_layer *L = roteq_analysis_optstate_find(s, name);
        assert_non_null(L);
        assert_int_equal(L->step, json_integer_value(json_object_get(w, "step")));
        assert_close(L->lr, 3e-3, 0);
        assert_close(L->weight_decay, 0.1, 0);
        assert_close(L->beta2, 0.999, 0);
        assert_true(L->known & ROTEQ_OPTSTATE_EPS);
        const char *keys[3] = {"exp_avg", "exp_avg_sq", "weight"};
        const double *got[3] = {L->exp_avg, L->exp_avg_sq, L->weight};
        for (int k = 0; k < 3; k++) {
            json_t *v = json_object_get(w, keys[k]), *x;
            size_t i;
            assert_non_null(got[k]);
            json_array_foreach(v, i, x) assert_close(got[k][i], json_number_value(x), 0);
        }
    }
    roteq_analysis_optstate_free(s);
    free(path);
}

static void test_optimizer_state(void **state)
{
    (void)state;
    char *exp = roteq_test_path(tmp, "expected_state.json");
    json_t *want = json_load_file(exp, 0, NULL);
    assert_non_null(want);
    assert_int_equal(json_object_size(want), 5);
    check_state("train/step_40.pt", want);
    check_state("hf/checkpoint-40", want); /* optimizer.pt beside sharded pytorch_model.bin */
    json_decref(want);
    free(exp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_layouts_agree),
        cmocka_unit_test(test_flax_layout),
        cmocka_unit_test(test_pickle_code_refused),
        cmocka_unit_test(test_optimizer_state),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
