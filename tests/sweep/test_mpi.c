/* test_mpi.c - `mpirun --oversubscribe -np 3 roteq sweep` gives the same rows as one process
 * (timing columns aside), in CSV and JSON, including a bad point and a matrix optimizer's (Muon)
 * points, and resumes a partial file.
 * Registered only in MPI builds (suite 'mpi'); mpirun's path comes from ROTEQ_MPIRUN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"
#include "sweep_test.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Run argv (argv[0] a path), stdout and stderr into `log`; the exit status (-1 on a signal). */
static int run(char *const *argv, const char *log)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) > 1) {
        char *text = roteq_test_read_file(log, NULL);
        print_error("%s %s exited %d:\n%s\n", argv[0], argv[1], status, text ? text : "");
        free(text);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *const grid_text =
    "{\"seed\": 31,\n"
    " \"groups\": [\n"
    "  {\"fixed\": {\"optimizer\": \"adamw\", \"weight_decay\": 0.1, \"steps\": 2000, "
    "\"neurons\": 16, \"dim\": 32},\n"
    "   \"axes\": {\"lr\": [0.001, 0.003, 0.01]}},\n"
    "  {\"fixed\": {\"optimizer\": \"lion\", \"lr\": 0.001, \"weight_decay\": 0.3, \"steps\": "
    "6000, \"neurons\": 16, \"dim\": 32},\n"
    "   \"points\": [{\"beta1\": 0, \"beta2\": 0}, {\"beta1\": 0.9, \"beta2\": 0.99}]},\n"
    "  {\"fixed\": {\"neurons\": 16, \"dim\": 32},\n"
    "   \"points\": [{\"optimizer\": \"sgdm\", \"lr\": 0.1, \"weight_decay\": 0.01, \"steps\": "
    "500},\n"
    "              {\"optimizer\": \"sgdm\", \"lr\": 0.1, \"weight_decay\": 0.01, \"momentum\": "
    "2}]},\n"
    "  {\"fixed\": {\"optimizer\": \"muon\", \"lr\": 0.02, \"weight_decay\": 0.1, \"shape\": "
    "\"16x24\", \"matrices\": 2, \"steps\": 300},\n"
    "   \"axes\": {\"momentum\": [0.9, 0.95]}}\n"
    " ]}\n";

static void compare_formats(const char *format)
{
    int json = strcmp(format, "json") == 0;
    const char *exe = getenv("ROTEQ_EXE"), *mpirun = getenv("ROTEQ_MPIRUN");
    assert_non_null(mpirun);
    char *dir = roteq_test_tmpdir();
    char *grid = roteq_test_path(dir, "g.json"), *one = roteq_test_path(dir, "one.out"),
         *three = roteq_test_path(dir, "three.out"), *log = roteq_test_path(dir, "log.txt");
    roteq_test_write_file(grid, grid_text);
    char *a1[] = {(char *)exe, "sweep", grid, "--out", one, "--format", (char *)format, NULL};
    assert_int_equal(run(a1, log), 1); /* one bad point: exit 1, the others ran */
    char *a3[] = {(char *)mpirun, "--oversubscribe", "-np", "3",        (char *)exe,    "sweep",
                  grid,           "--out",           three, "--format", (char *)format, NULL};
    assert_int_equal(run(a3, log), 1);
    char *t1 = roteq_test_read_file(one, NULL), *t3 = roteq_test_read_file(three, NULL);
    assert_non_null(t3);
    char *c1 = sweep_test_comparable(t1, json), *c3 = sweep_test_comparable(t3, json);
    assert_string_equal(c3, c1);
    assert_non_null(strstr(c1, "momentum: must be in [0, 1), got 2"));
    /* the matrix optimizer's rows, the same for any rank count */
    assert_non_null(strstr(c1, "16x24 matrices"));
    free(c1);
    free(c3);
    free(t1);
    free(t3);

    /* Resume under MPI: keep the header and the first two rows of the finished file. */
    if (!json) {
        char *text = roteq_test_read_file(one, NULL);
        char *p = text;
        for (int lines = 0; lines < 5 && p; lines++) /* 2 comments, header, 2 rows */
            p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
        assert_non_null(p);
        *p = '\0';
        roteq_test_write_file(three, text);
        free(text);
        char *ar[] = {(char *)mpirun, "--oversubscribe", "-np", "3",        (char *)exe, "sweep",
                      grid,           "--out",           three, "--resume", NULL};
        assert_int_equal(run(ar, log), 1);
        char *tl = roteq_test_read_file(log, NULL);
        assert_non_null(strstr(tl, "7 run here (2 resumed rows kept)"));
        free(tl);
        t1 = roteq_test_read_file(one, NULL);
        t3 = roteq_test_read_file(three, NULL);
        c1 = sweep_test_comparable(t1, 0);
        c3 = sweep_test_comparable(t3, 0);
        assert_string_equal(c3, c1);
        free(c1);
        free(c3);
        free(t1);
        free(t3);
    }
    free(grid);
    free(one);
    free(three);
    free(log);
    roteq_test_rmtree(dir);
}

static void test_three_ranks_csv(void **state)
{
    (void)state;
    compare_formats("csv");
}

static void test_three_ranks_json(void **state)
{
    (void)state;
    compare_formats("json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_ranks_csv),
        cmocka_unit_test(test_three_ranks_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
