/* test_cli.c - `roteq sweep` and `roteq verify` end to end with the real simulator on small
 * grids: usage and malformed grids, a bad point among good ones, rerunning one point bit for
 * bit, a sweep killed part-way and resumed (identical to an uninterrupted run), outputs checked
 * before the work (the grid itself, a directory), a journal write failing in a worker thread,
 * resumed rows that are not whole rows, points larger than the available memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"
#include "sweep_test.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static size_t count_rows(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        if (end == NULL)
            break; /* a line without newline is not a row yet */
        if (*p != '#' && strncmp(p, "index,", 6) != 0)
            n++;
        p = end + 1;
    }
    return n;
}

static const char *const small_grid =
    "{\"seed\": 2024, \"fixed\": {\"neurons\": 16, \"dim\": 32, \"steps\": 3000},\n"
    " \"points\": [\n"
    "  {\"optimizer\": \"adamw\", \"lr\": 0.003, \"weight_decay\": 0.1},\n"
    "  {\"optimizer\": \"sgdm\", \"lr\": 0.05, \"weight_decay\": 0.01, \"momentum\": 0.8},\n"
    "  {\"optimizer\": \"adamw\", \"lr\": 0.003, \"weight_decay\": 0.1, \"beta1\": 1.5},\n"
    "  {\"optimizer\": \"lion\", \"lr\": 0.001, \"weight_decay\": 0.3}\n"
    " ]}\n";

static void test_usage_and_malformed(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(roteq_test_run((const char *[]){"sweep", "--help", NULL}, NULL, &out, &err),
                     0);
    assert_non_null(strstr(out, "usage: roteq sweep GRID --out FILE"));
    free(out);
    free(err);
    assert_int_equal(roteq_test_run((const char *[]){"verify", "--help", NULL}, NULL, &out, &err),
                     0);
    assert_non_null(strstr(out, "usage: roteq verify"));
    free(out);
    free(err);

    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "bad.json"), *rows = roteq_test_path(dir, "rows.csv");
    roteq_test_write_file(grid, "{\"fixed\": {\"optimizer\": \"adamw\"},\n"
                                " \"axes\": {\"lr\": [0.001, \"0.002\"]}}\n");
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--out", rows, NULL}, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "roteq sweep: "));
    assert_non_null(strstr(err, "axes.lr[1]: expected a number"));
    assert_int_equal(strchr(err, '\n') - err + 1, (long)strlen(err)); /* one line */
    assert_int_equal(access(rows, F_OK), -1);                         /* no output file */
    free(out);
    free(err);
    const char *const bad_args[][6] = {
        {"sweep", grid, NULL},                               /* no --out */
        {"sweep", "--out", rows, NULL},                      /* no GRID */
        {"sweep", grid, "--out", rows, "--bogus"},           /* unknown option */
        {"sweep", grid, "--out", rows, "--jobs"},            /* missing value */
        {"sweep", "/nonexistent.json", "--out", rows, NULL}, /* unreadable GRID */
        {"verify", "--tolerance", "-1", NULL},               /* bad value */
    };
    for (size_t i = 0; i < sizeof bad_args / sizeof bad_args[0]; i++) {
        const char *args[7] = {0};
        memcpy(args, bad_args[i], sizeof bad_args[i]);
        assert_int_equal(roteq_test_run(args, NULL, &out, &err), 2);
        assert_non_null(strstr(err, "roteq "));
        free(out);
        free(err);
    }
    /* The verification figure reads CSV: --plot with JSON rows is refused before running. */
    assert_int_equal(roteq_test_run((const char *[]){"verify", "--quick", "--plot", dir, "--out",
                                                     rows, "--format", "json", NULL},
                                    NULL, &out, &err),
                     2);
    assert_non_null(strstr(err, "roteq verify: --plot: the figure reads CSV rows"));
    assert_int_equal(access(rows, F_OK), -1);
    free(out);
    free(err);
    free(grid);
    free(rows);
    roteq_test_rmtree(dir);
}

static void test_bad_point_and_rerun(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *rows = roteq_test_path(dir, "rows.csv");
    roteq_test_write_file(grid, small_grid);
    char *out, *err;
    /* Exit 1: one point is bad; the other three still ran and have rows. */
    assert_int_equal(roteq_test_run((const char *[]){"sweep", grid, "--out", rows, "--jobs", "1",
                                                     "--threads", "3", NULL},
                                    NULL, &out, &err),
                     1);
    assert_non_null(strstr(err, "roteq sweep: point 2: beta1: must be in [0, 1), got 1.5"));
    free(out);
    free(err);
    char *text = roteq_test_read_file(rows, NULL);
    assert_non_null(text);
    assert_int_equal(count_rows(text), 4);
    assert_non_null(strstr(text, ",ERROR,\"beta1: must be in [0, 1), got 1.5\","));
    assert_non_null(strstr(text, "\n0,"));
    assert_non_null(strstr(text, "\n3,"));
    assert_null(strstr(text, "UNKNOWN")); /* every optimizer here has a prediction */

    /* Any point rerun alone gives its row again, bit for bit (timing aside). */
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--point", "3", NULL}, NULL, &out, &err), 0);
    char *a = sweep_test_comparable(out, 0), *b = sweep_test_comparable(text, 0);
    const char *row3 = strstr(b, "\n3,");
    assert_non_null(row3);
    assert_non_null(strstr(a, row3 + 1));
    free(a);
    free(b);
    free(out);
    free(err);
    /* Three threads inside one point at a time, or two points side by side with one thread
     * each: the same numbers. */
    char *rows1 = roteq_test_path(dir, "rows1.csv");
    assert_int_equal(roteq_test_run((const char *[]){"sweep", grid, "--out", rows1, "--threads",
                                                     "1", "--jobs", "2", NULL},
                                    NULL, &out, &err),
                     1);
    char *text1 = roteq_test_read_file(rows1, NULL);
    a = sweep_test_comparable(text, 0);
    b = sweep_test_comparable(text1, 0);
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(text1);
    free(rows1);
    free(out);
    free(err);
    free(text);
    free(grid);
    free(rows);
    roteq_test_rmtree(dir);
}

static void test_kill_and_resume(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *full = roteq_test_path(dir, "full.csv"),
         *part = roteq_test_path(dir, "part.csv");
    /* 12 points of tens of milliseconds each, run one after the other: long enough to kill in the
     * middle even on a fast machine. */
    roteq_test_write_file(grid, "{\"seed\": 77, \"fixed\": {\"optimizer\": \"adamw\","
                                " \"neurons\": 32, \"dim\": 64, \"steps\": 12000,"
                                " \"weight_decay\": 0.1},"
                                " \"axes\": {\"lr\": [0.001, 0.0015, 0.002, 0.003],"
                                " \"beta1\": [0.8, 0.9, 0.95]}}\n");
    char *out, *err;
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--out", full, "--threads", "1", NULL}, NULL,
                       &out, &err),
        0);
    free(out);
    free(err);

    const char *exe = getenv("ROTEQ_EXE");
    char *argv[] = {(char *)exe, "sweep", grid,        "--out", part,
                    "--jobs",    "1",     "--threads", "1",     NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, exe, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    /* Kill it once 3 rows are in the file (SIGKILL: no chance to tidy up). */
    size_t rows = 0;
    for (int i = 0; i < 20000 && rows < 3; i++) {
        char *t = roteq_test_read_file(part, NULL);
        rows = t ? count_rows(t) : 0;
        free(t);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status)); /* it was still running: the test is not vacuous */
    char *text = roteq_test_read_file(part, NULL);
    size_t kept = count_rows(text);
    assert_true(kept >= 3 && kept < 12);
    free(text);

    assert_int_equal(roteq_test_run((const char *[]){"sweep", grid, "--out", part, "--resume",
                                                     "--threads", "1", NULL},
                                    NULL, &out, &err),
                     0);
    assert_non_null(strstr(err, "resumed rows kept"));
    free(out);
    free(err);
    char *want = roteq_test_read_file(full, NULL), *got = roteq_test_read_file(part, NULL);
    char *cw = sweep_test_comparable(want, 0), *cg = sweep_test_comparable(got, 0);
    assert_string_equal(cg, cw);
    free(cw);
    free(cg);
    free(want);
    free(got);
    /* --resume of a complete file runs nothing and changes nothing. */
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--out", full, "--resume", NULL}, NULL, &out,
                       &err),
        0);
    assert_non_null(strstr(err, "0 run here (12 resumed rows kept)"));
    free(out);
    free(err);
    free(grid);
    free(full);
    free(part);
    roteq_test_rmtree(dir);
}

/* A roteq built without MPI but started by mpirun/srun would run the whole grid once per rank,
 * all writing the same FILE: it must refuse. (MPI builds are tested under mpirun in test_mpi.c.) */
#if !ROTEQ_TEST_MPI_BUILD
static void test_launcher_without_mpi(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *rows = roteq_test_path(dir, "rows.csv");
    roteq_test_write_file(grid, small_grid);
    char *out, *err;
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    int rc = roteq_test_run((const char *[]){"sweep", grid, "--out", rows, NULL}, NULL, &out, &err);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "built without MPI"));
    assert_int_equal(access(rows, F_OK), -1);
    free(out);
    free(err);
    free(grid);
    free(rows);
    roteq_test_rmtree(dir);
}
#endif

/* --out naming GRID (itself, through a symlink, or a relative path) is refused and GRID is left
 * as it was; --out DIR fails at once with exit 1, before any point runs. */
static void test_output_checked_first(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *link = roteq_test_path(dir, "link.json");
    char *dotted = roteq_test_path(dir, "./sub/../g.json"), *sub = roteq_test_path(dir, "sub");
    roteq_test_write_file(grid, small_grid);
    assert_int_equal(symlink("g.json", link), 0);
    assert_int_equal(mkdir(sub, 0777), 0);
    const char *same[] = {grid, link, dotted};
    for (int i = 0; i < 3; i++) {
        char *out, *err;
        assert_int_equal(roteq_test_run((const char *[]){"sweep", grid, "--out", same[i], NULL},
                                        NULL, &out, &err),
                         2);
        assert_non_null(strstr(err, "roteq sweep: --out: '"));
        assert_non_null(strstr(err, "' is the same file as the input '"));
        assert_null(strchr(err, '\n') + 1 == err + strlen(err) ? NULL : "more than one line");
        free(out);
        free(err);
        char *text = roteq_test_read_file(grid, NULL);
        assert_string_equal(text, small_grid);
        free(text);
    }
    char *out, *err;
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--out", sub, NULL}, NULL, &out, &err), 1);
    assert_non_null(strstr(err, "roteq sweep: --out: cannot write"));
    assert_non_null(strstr(err, "Is a directory"));
    assert_null(strstr(err, "point"));
    free(out);
    free(err);
    free(grid);
    free(link);
    free(dotted);
    free(sub);
    roteq_test_rmtree(dir);
}

/* A journal write that fails on a worker thread (here: a file size limit reached after the
 * header) is reported with its reason and exit 1, never "success". */
static void test_journal_write_failure(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *rows = roteq_test_path(dir, "rows.csv");
    roteq_test_write_file(grid, small_grid);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    low = old;
    low.rlim_cur = 1500; /* the preamble fits, the rows do not */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
    char *out, *err;
    int rc = roteq_test_run(
        (const char *[]){"sweep", grid, "--out", rows, "--jobs", "2", "--threads", "1", NULL}, NULL,
        &out, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, 1);
    assert_null(strstr(err, "success"));
    assert_non_null(strstr(err, "rows.csv"));
    assert_non_null(strstr(err, "File too large"));
    free(out);
    free(err);
    free(grid);
    free(rows);
    roteq_test_rmtree(dir);
}

/* --resume keeps rows as text, so a row must be whole: an index-only JSON row, a row with an
 * unknown status or a CSV row with missing columns is refused, naming the line. */
static void test_resume_rejects_partial_rows(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *rows = roteq_test_path(dir, "rows.json");
    char *csv = roteq_test_path(dir, "rows.csv");
    roteq_test_write_file(grid, small_grid);
    char *out, *err;
    assert_int_equal(roteq_test_run((const char *[]){"sweep", grid, "--out", rows, "--format",
                                                     "json", "--point", "0", NULL},
                                    NULL, &out, &err),
                     0);
    free(err);
    free(out);
    out = roteq_test_read_file(rows, NULL);
    /* the grid hash from a real row, then a row with only index, status and grid */
    const char *h = strstr(out, "\"grid\":\"");
    assert_non_null(h);
    char hash[17];
    memcpy(hash, h + 8, 16);
    hash[16] = '\0';
    free(out);
    char line[256];
    snprintf(line, sizeof line, "{\"index\": 1, \"status\": \"PASS\", \"grid\": \"%s\"}\n", hash);
    roteq_test_write_file(rows, line);
    assert_int_equal(roteq_test_run((const char *[]){"sweep", grid, "--out", rows, "--format",
                                                     "json", "--resume", NULL},
                                    NULL, &out, &err),
                     2);
    assert_non_null(strstr(err, "rows.json: line 1: not a whole sweep row"));
    char *text = roteq_test_read_file(rows, NULL);
    assert_string_equal(text, line);
    free(text);
    free(out);
    free(err);
    /* CSV: a row cut short of its columns */
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--out", csv, "--point", "0", NULL}, NULL,
                       &out, &err),
        0);
    free(err);
    free(out);
    out = roteq_test_read_file(csv, NULL);
    char *comma = strrchr(out, ',');
    assert_non_null(comma);
    strcpy(comma, "\n");
    roteq_test_write_file(csv, out);
    free(out);
    assert_int_equal(roteq_test_run((const char *[]){"sweep", grid, "--out", csv, "--resume", NULL},
                                    NULL, &out, &err),
                     2);
    assert_non_null(strstr(err, "not a sweep row"));
    free(out);
    free(err);
    free(grid);
    free(rows);
    free(csv);
    roteq_test_rmtree(dir);
}

/* A point that needs more memory than is available is an ERROR row naming the figures; the
 * other points run. */
static void test_point_beyond_memory(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *rows = roteq_test_path(dir, "rows.csv");
    roteq_test_write_file(grid,
                          "{\"fixed\": {\"optimizer\": \"adamw\", \"steps\": 100, \"dim\": 1024},"
                          " \"axes\": {\"neurons\": [4, 4000000000]}}");
    char *out, *err;
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--out", rows, NULL}, NULL, &out, &err), 1);
    assert_non_null(strstr(err, "point 1: 4000000000 neurons of dimension 1024 need about "));
    assert_non_null(strstr(err, "TB, more than the "));
    char *text = roteq_test_read_file(rows, NULL);
    assert_int_equal(count_rows(text), 2);
    free(text);
    free(out);
    free(err);
    free(grid);
    free(rows);
    roteq_test_rmtree(dir);
}

/* A 1e8-point grid (8 axes of 10 values, 600 bytes): --point I runs that point at once with
 * memory independent of the grid's size; a whole run is refused with the limit named. */
static void test_huge_grid_point(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *rows = roteq_test_path(dir, "rows.csv");
    roteq_test_write_file(
        grid, "{\"fixed\": {\"optimizer\": \"adamw\", \"steps\": 20}, \"axes\": {"
              "\"lr\": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4, 1e-3],"
              "\"weight_decay\": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1],"
              "\"beta1\": [0.8, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.89],"
              "\"beta2\": [0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99],"
              "\"eps\": [1e-8, 2e-8, 3e-8, 4e-8, 5e-8, 6e-8, 7e-8, 8e-8, 9e-8, 1e-7],"
              "\"neurons\": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],"
              "\"dim\": [4, 5, 6, 7, 8, 9, 10, 11, 12, 13],"
              "\"init_norm\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *out = NULL, *err = NULL;
        int rc = roteq_test_run((const char *[]){"sweep", grid, "--point", "99999999", NULL}, NULL,
                                &out, &err);
        struct rusage ru;
        getrusage(RUSAGE_CHILDREN, &ru);
        fprintf(stderr, "point 99999999 of 1e8: exit %d, peak %ld kB\n", rc, ru.ru_maxrss);
        _exit(rc == 0 && strstr(out, "\n99999999,") && ru.ru_maxrss < 50 * 1024 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char *out, *err;
    assert_int_equal(
        roteq_test_run((const char *[]){"sweep", grid, "--out", rows, NULL}, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "100000000 points; a whole sweep keeps about 1 KB per point"));
    assert_non_null(strstr(err, "at most 10000000 points"));
    assert_non_null(strstr(err, "--point I"));
    free(out);
    free(err);
    free(grid);
    free(rows);
    roteq_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_and_malformed),
        cmocka_unit_test(test_bad_point_and_rerun),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_output_checked_first),
        cmocka_unit_test(test_journal_write_failure),
        cmocka_unit_test(test_resume_rejects_partial_rows),
        cmocka_unit_test(test_point_beyond_memory),
        cmocka_unit_test(test_huge_grid_point),
#if !ROTEQ_TEST_MPI_BUILD
        cmocka_unit_test(test_launcher_without_mpi),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
