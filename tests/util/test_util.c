/* test_util.c - status codes, error messages, strict parsing, atomic output files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"
#include "roteq_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_error_message(void **state)
{
    (void)state;
    roteq_error_clear();
    assert_string_equal(roteq_error_message(), "");
    assert_int_equal(roteq_error_set(ROTEQ_EFORMAT, "bad line %d\nsecond", 7), ROTEQ_EFORMAT);
    assert_string_equal(roteq_error_message(), "bad line 7 second");
    assert_int_equal(roteq_error_status(), ROTEQ_EFORMAT);
    assert_string_equal(roteq_strerror(ROTEQ_EIO), "input/output error");
    assert_string_equal(roteq_strerror(-999), "unknown error");
}

static void test_parse_double(void **state)
{
    (void)state;
    double v;
    assert_int_equal(roteq_parse_double("2.385e-3", &v), 0);
    assert_close(v, 2.385e-3, 0);
    const char *bad[] = {"", " 1", "1e3x", "nan", "inf", "1e999", "abc", "0x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(roteq_parse_double(bad[i], &v), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "'0x'"));
}

static void test_parse_integers(void **state)
{
    (void)state;
    size_t s;
    long l;
    uint64_t u;
    assert_int_equal(roteq_parse_size("12345", &s), 0);
    assert_int_equal(s, 12345);
    assert_int_equal(roteq_parse_size("-1", &s), ROTEQ_EINVAL);
    assert_int_equal(roteq_parse_size("1.5", &s), ROTEQ_EINVAL);
    assert_int_equal(roteq_parse_long("-42", &l), 0);
    assert_int_equal(l, -42);
    assert_int_equal(roteq_parse_long("99999999999999999999999", &l), ROTEQ_EINVAL);
    assert_int_equal(roteq_parse_u64("18446744073709551615", &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(roteq_parse_u64("18446744073709551616", &u), ROTEQ_EINVAL);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_ofile_commit_and_abort(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *path = roteq_test_path(dir, "out.csv");

    roteq_ofile *f = roteq_ofile_open(path);
    assert_non_null(f);
    fputs("a,b\n1,2\n", roteq_ofile_stream(f));
    assert_null(roteq_test_read_file(path, NULL)); /* not visible before commit */
    assert_int_equal(roteq_ofile_commit(f), 0);
    char *text = roteq_test_read_file(path, NULL);
    assert_string_equal(text, "a,b\n1,2\n");
    free(text);
    /* The committed file has the mode fopen would give it, not mkstemp's 0600. */
    struct stat sb;
    mode_t mask = umask(0022);
    assert_int_equal(stat(path, &sb), 0);
    umask(mask);
    assert_int_equal(sb.st_mode & 0777, 0666 & ~mask);

    /* An aborted rewrite leaves the previous complete file and no temporary behind. */
    f = roteq_ofile_open(path);
    fputs("partial", roteq_ofile_stream(f));
    roteq_ofile_abort(f);
    text = roteq_test_read_file(path, NULL);
    assert_string_equal(text, "a,b\n1,2\n");
    free(text);
    assert_int_equal(count_entries(dir), 1);

    roteq_ofile_abort(NULL);
    assert_int_equal(roteq_ofile_commit(NULL), 0);

    char *missing = roteq_test_path(dir, "no/such/dir/x.csv");
    assert_null(roteq_ofile_open(missing));
    assert_int_equal(roteq_error_status(), ROTEQ_EIO);
    assert_non_null(strstr(roteq_error_message(), "no/such/dir/x.csv"));
    free(missing);
    free(path);
    roteq_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_parse_double),
        cmocka_unit_test(test_parse_integers),
        cmocka_unit_test(test_ofile_commit_and_abort),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
