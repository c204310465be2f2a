/* test_cli.c - golden tests of the `roteq` dispatcher and the misuse handling every subcommand
 * shares (roteq_cli_bad_option): --help to stdout with exit 0, an unknown option or a missing
 * value as exactly one line on stderr with exit 2, nothing on stdout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const commands[] = {"theory",  "simulate", "verify", "sweep",
                                       "analyze", "plot",     "bench"};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Run `args`, expect exit 2, empty stdout and one stderr line starting with `prefix` and
 * containing `needle`. */
static void expect_usage_error(const char *const *args, const char *prefix, const char *needle)
{
    char *out, *err;
    int rc = roteq_test_run(args, NULL, &out, &err);
    if (rc != 2 || out[0] != '\0' || count_lines(err) != 1 ||
        strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, needle) == NULL) {
        print_error("roteq %s %s: rc=%d stdout='%s' stderr='%s' (want rc 2, one line '%s...%s')\n",
                    args[0], args[1] ? args[1] : "", rc, out, err, prefix, needle);
        fail();
    }
    free(out);
    free(err);
}

static void test_dispatch(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(roteq_test_run((const char *[]){"--help", NULL}, NULL, &out, &err), 0);
    for (size_t i = 0; i < NCOMMANDS; i++)
        assert_non_null(strstr(out, commands[i]));
    free(out);
    free(err);
    assert_int_equal(roteq_test_run((const char *[]){"--version", NULL}, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "roteq "));
    free(out);
    free(err);
    assert_int_equal(roteq_test_run((const char *[]){NULL}, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "usage: roteq COMMAND"));
    free(out);
    free(err);
    expect_usage_error((const char *[]){"frobnicate", NULL},
                       "roteq: ", "unknown command 'frobnicate'");
}

static void test_help_per_command(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char *out, *err;
        int rc = roteq_test_run((const char *[]){commands[i], "--help", NULL}, NULL, &out, &err);
        if (rc != 0 || strstr(out, "usage: roteq") == NULL || err[0] != '\0') {
            print_error("roteq %s --help: rc=%d, stdout starts '%.40s', stderr '%s'\n", commands[i],
                        rc, out, err);
            fail();
        }
        free(out);
        free(err);
    }
}

static void test_misuse_per_command(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "roteq %s: ", commands[i]);
        expect_usage_error((const char *[]){commands[i], "--no-such-flag", NULL}, prefix,
                           "unknown option '--no-such-flag'");
        expect_usage_error((const char *[]){commands[i], "--format", NULL}, prefix,
                           "--format: needs a value");
    }
    /* A short option inside a group is named by itself. */
    expect_usage_error((const char *[]){"plot", "-lx", "norm", NULL},
                       "roteq plot: ", "unknown option '-x'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_help_per_command),
        cmocka_unit_test(test_misuse_per_command),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
