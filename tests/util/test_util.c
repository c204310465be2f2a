/* test_util.c - status codes, error messages, strict parsing, atomic output files (checked
 * before the work, removed on SIGINT/SIGTERM), available memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"
#include "roteq_util.h"

#include <dirent.h>
#include <signal.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
    /* Long spellings and numbers below the smallest normal double are numbers. */
    const char *n75 = "0.0000000000000000000000000000000000000000000000000000000000000000000001250";
    assert_int_equal(strlen(n75), 75);
    assert_int_equal(roteq_parse_double(n75, &v), 0);
    assert_close(v, 1.25e-70, 1e-15);
    assert_int_equal(roteq_parse_double("1e-310", &v), 0);
    assert_true(v > 0 && v < 1e-300);
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
    /* Counts as people write them: an integer times a power of ten, exactly. */
    assert_int_equal(roteq_parse_size("5e7", &s), 0);
    assert_int_equal(s, 50000000);
    assert_int_equal(roteq_parse_u64("1E+15", &u), 0);
    assert_true(u == 1000000000000000u);
    assert_int_equal(roteq_parse_u64("0e400", &u), 0);
    assert_true(u == 0);
    assert_int_equal(roteq_parse_u64("2e19", &u), ROTEQ_EINVAL); /* past 2^64 */
    assert_int_equal(roteq_parse_long("-3e2", &l), 0);
    assert_int_equal(l, -300);
    assert_int_equal(roteq_parse_long("-9223372036854775808", &l), 0);
    assert_true(l == LONG_MIN);
    assert_int_equal(roteq_parse_long("9223372036854775808", &l), ROTEQ_EINVAL);
    assert_int_equal(roteq_parse_long("1e19", &l), ROTEQ_EINVAL);
    const char *bad[] = {"1.5e3", "5e-1", "5e", "e5", "5e7x", "+5", " 5", "5 ", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(roteq_parse_u64(bad[i], &u), ROTEQ_EINVAL);
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

/* The same file under another name: a hard link, a symlink, a relative path. */
static void test_same_file(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *a = roteq_test_path(dir, "grid.json"), *hard = roteq_test_path(dir, "hard.json");
    char *sym = roteq_test_path(dir, "sym.json"), *other = roteq_test_path(dir, "other.json");
    char *dotted = roteq_test_path(dir, "./sub/../grid.json"), *sub = roteq_test_path(dir, "sub");
    roteq_test_write_file(a, "{}");
    roteq_test_write_file(other, "{}");
    assert_int_equal(mkdir(sub, 0777), 0);
    assert_int_equal(link(a, hard), 0);
    assert_int_equal(symlink("grid.json", sym), 0);
    assert_true(roteq_same_file(a, a));
    assert_true(roteq_same_file(a, hard));
    assert_true(roteq_same_file(sym, a));
    assert_true(roteq_same_file(dotted, a));
    assert_false(roteq_same_file(a, other));
    char *missing = roteq_test_path(dir, "new.csv");
    assert_false(roteq_same_file(missing, a));
    assert_false(roteq_same_file(NULL, a));

    /* roteq_ofile_check: the input named again, a directory, a missing folder; "-" and a new
     * file pass. */
    const char *inputs[] = {other, NULL, a};
    assert_int_equal(roteq_ofile_check(sym, inputs, 3), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "is the same file as the input"));
    assert_non_null(strstr(roteq_error_message(), "grid.json"));
    assert_int_equal(roteq_ofile_check(dir, inputs, 3), ROTEQ_EIO);
    assert_non_null(strstr(roteq_error_message(), "Is a directory"));
    char *nodir = roteq_test_path(dir, "no/such/out.csv");
    assert_int_equal(roteq_ofile_check(nodir, NULL, 0), ROTEQ_EIO);
    assert_non_null(strstr(roteq_error_message(), "No such file"));
    assert_int_equal(roteq_ofile_check("-", inputs, 3), 0);
    assert_int_equal(roteq_ofile_check(missing, inputs, 3), 0);
    assert_int_equal(roteq_ofile_check(hard, NULL, 0), 0); /* replacing an existing file is fine */

    /* Opening a directory as an output fails at once, not at commit. */
    assert_null(roteq_ofile_open(sub));
    assert_int_equal(roteq_error_status(), ROTEQ_EIO);
    assert_non_null(strstr(roteq_error_message(), "Is a directory"));
    free(a);
    free(hard);
    free(sym);
    free(other);
    free(dotted);
    free(sub);
    free(missing);
    free(nodir);
    roteq_test_rmtree(dir);
}

/* A process killed by SIGTERM or SIGINT while writing leaves no PATH.tmp.* file, and still dies
 * of the signal. */
static void test_ofile_removed_on_signal(void **state)
{
    (void)state;
    const int sigs[] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        char *dir = roteq_test_tmpdir();
        char *path = roteq_test_path(dir, "out.csv");
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            roteq_ofile *f = roteq_ofile_open(path);
            roteq_ofile *g = roteq_ofile_open(path);
            if (!f || !g)
                _exit(3);
            fputs("partial", roteq_ofile_stream(f));
            fflush(roteq_ofile_stream(f));
            kill(getpid(), sigs[k]);
            _exit(4); /* not reached */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), sigs[k]);
        assert_int_equal(count_entries(dir), 0);
        free(path);
        roteq_test_rmtree(dir);
    }
}

static unsigned long long meminfo_available_kb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    assert_non_null(f);
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f) && sscanf(line, "MemAvailable: %llu kB", &kb) != 1)
        ;
    fclose(f);
    assert_true(kb > 0);
    return kb;
}

static void test_mem_available(void **state)
{
    (void)state;
    const char *what = NULL;
    /* Headroom below the kernel's figure: a run sized to all of MemAvailable was killed by the
     * OOM killer. MemAvailable moves while other tests run, so the check is against the larger of
     * the readings just before and after, with 2% slack (without the headroom: about 100%). */
    unsigned long long before = meminfo_available_kb();
    uint64_t m = roteq_mem_available(&what);
    unsigned long long after = meminfo_available_kb();
    assert_true(m > 0);
    assert_string_equal(what, "90% of MemAvailable");
    double most = 1024.0 * (double)(before > after ? before : after);
    assert_true((double)m <= 0.92 * most);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* An address-space limit below MemAvailable is what a new allocation may use. */
        struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(3);
        uint64_t lim = roteq_mem_available(&what);
        _exit(lim == ((uint64_t)1 << 30) && strcmp(what, "RLIMIT_AS") == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char buf[32];
    roteq_format_bytes(512, buf, sizeof buf);
    assert_string_equal(buf, "512 B");
    roteq_format_bytes(17.2e9, buf, sizeof buf);
    assert_string_equal(buf, "17.2 GB");
    roteq_format_bytes(1.6e12, buf, sizeof buf);
    assert_string_equal(buf, "1.60 TB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message),  cmocka_unit_test(test_parse_double),
        cmocka_unit_test(test_parse_integers), cmocka_unit_test(test_ofile_commit_and_abort),
        cmocka_unit_test(test_same_file),      cmocka_unit_test(test_ofile_removed_on_signal),
        cmocka_unit_test(test_mem_available),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
