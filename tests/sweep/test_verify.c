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
    assert_null(strstr(out, "ERROR:"));
    char *text = roteq_test_read_file(rows, NULL);
    assert_non_null(text);
    assert_true(count_rows(text) >= 16);
    free(text);
    free(out);
    free(err);
    free(rows);
    roteq_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_quick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
