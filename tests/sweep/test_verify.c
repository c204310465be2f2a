/* test_verify.c - `roteq verify --quick` as part of the suite: every exact formula passes,
 * every optimizer is there, Lion at four betas with all three predictions, rows written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t count_rows(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        if (end == NULL)
            break;
        if (*p != '#' && strncmp(p, "index,", 6) != 0)
            n++;
        p = end + 1;
    }
    return n;
}

static void test_verify_quick(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *rows = roteq_test_path(dir, "verify.csv");
    char *out, *err;
    int rc = roteq_test_run((const char *[]){"verify", "--quick", "--out", rows, NULL}, NULL, &out,
                            &err);
    if (rc != 0)
        print_error("roteq verify --quick exited %d:\n%s\n%s\n", rc, out, err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, " 0 FAIL, "));
    assert_non_null(strstr(out, " 0 UNKNOWN, 0 ERROR"));
    /* Every optimizer, Lion at four betas with all three predictions. */
    const char *names[] = {" sgd ",           " sgdm ",     " nesterov ",    " adamw ",
                           " adam_l2 ",       " lion ",     " rv_adamw ",    " rv_sgdm ",
                           " rv_lion ",       "b1=0 b2=0",  "b1=0.5 b2=0.9", "b1=0.9 b2=0.99",
                           "b1=0.95 b2=0.98", "    paper ", "    plain "};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(strstr(out, names[i]));
    /* Muon's matrix rows follow the per-neuron table. */
    assert_non_null(strstr(out, "Muon (torch.optim.Muon"));
    assert_non_null(strstr(out, " 64x64 "));
    assert_non_null(strstr(out, " 32x128 "));
    assert_non_null(strstr(out, "nesterov ns 5 bf16 "));
    assert_null(strstr(out, "ERROR:"));
    char *text = roteq_test_read_file(rows, NULL);
    assert_non_null(text);
    assert_true(count_rows(text) >= 19);
    /* ... and are written with the other rows (sweep/README.md, "Matrix rows"), after them, in
     * the same columns: the table's measured row norm, the shape in `reason`, APPROX. */
    size_t muon = 0, muon_bf16 = 0;
    for (const char *p = strstr(text, ",muon,"); p; p = strstr(p + 1, ",muon,")) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        assert_null(strstr(eol, ",sgd,")); /* after the per-neuron rows */
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(eol - p), p);
        assert_non_null(strstr(line, ",APPROX,"));
        assert_non_null(strstr(line, " matrices, ns_steps 5, adjust_lr original"));
        muon_bf16 += strstr(line, "adjust_lr original, Newton-Schulz in bfloat16: ") != NULL;
        muon++;
    }
    assert_int_equal(muon, 3);
    assert_int_equal(muon_bf16, 1);
    assert_non_null(strstr(text, ",0.02,0.10000000000000001,,,,0.94999999999999996,,1,,256,64,1200,"
                                 "scale-invariant,"));
    assert_non_null(strstr(text, "\"64x64 matrices,"));
    assert_non_null(strstr(text, "\"32x128 matrices,"));
    free(text);
    free(out);
    free(err);
    free(rows);
    roteq_test_rmtree(dir);
}

/* Outputs refused before the run: a directory (exit 1, named), the rows that are the figure's
 * data file (exit 2), a figure path that is a directory (exit 1). Nothing runs: no rows. */
static void test_outputs_checked(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *plots = roteq_test_path(dir, "plots"), *png = roteq_test_path(dir, "plots/verify.png");
    char *dat = roteq_test_path(dir, "plots/verify.dat"), *rows = roteq_test_path(dir, "r.csv");
    const struct {
        const char *args[8];
        int rc;
        const char *msg1, *msg2;
    } cases[] = {
        {{"verify", "--quick", "--out", dir, NULL},
         1,
         "roteq verify: --out: cannot write '",
         "Is a directory"},
        {{"verify", "--quick", "--plot", plots, "--out", dat, NULL},
         2,
         "roteq verify: --plot: '",
         "is the same file as the input"},
        {{"verify", "--quick", "--plot", plots, "--out", rows, NULL},
         1,
         "roteq verify: --plot: cannot write '",
         "verify.png': Is a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (i == 2)
            assert_int_equal(mkdir(png, 0777), 0);
        char *out, *err;
        int rc = roteq_test_run(cases[i].args, NULL, &out, &err);
        if (rc != cases[i].rc || !strstr(err, cases[i].msg1) || !strstr(err, cases[i].msg2))
            print_error("case %zu: exit %d, stderr: %s\n", i, rc, err);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(err, cases[i].msg1));
        assert_non_null(strstr(err, cases[i].msg2));
        assert_string_equal(out, ""); /* before the run: no table */
        free(out);
        free(err);
    }
    assert_int_equal(access(rows, F_OK), -1);
    assert_int_equal(access(dat, F_OK), -1);
    free(plots);
    free(png);
    free(dat);
    free(rows);
    roteq_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outputs_checked),
        cmocka_unit_test(test_verify_quick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
