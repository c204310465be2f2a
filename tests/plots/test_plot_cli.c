/* test_plot_cli.c - `roteq plot` as a user runs it: --help, usage errors (exit 2), a figure
 * drawn from a synthetic series with flags before and after the inputs, and a missing gnuplot
 * (exit 1 with one clear line on stderr); outputs checked before the work, and no temporary
 * figure left by a run killed while gnuplot draws. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plots_fixtures.h"
#include "roteq_test.h"
#include "roteq_test_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void test_help_and_usage(void **state)
{
    (void)state;
    char *out, *err;
    const char *help[] = {"plot", "--help", NULL};
    assert_int_equal(roteq_test_run(help, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "usage: roteq plot KIND INPUT..."));
    assert_non_null(strstr(out, "transient"));
    free(out);
    free(err);
    const struct {
        const char *args[6];
        const char *msg;
    } bad[] = {
        {{"plot", NULL}, "usage: roteq plot"},
        {{"plot", "norm", NULL}, "roteq plot: norm: no INPUT file given"},
        {{"plot", "pie", "x.csv", NULL}, "roteq plot: unknown kind 'pie'"},
        {{"plot", "norm", "x.csv", "--format", "gif", NULL},
         "roteq plot: --format: 'gif' is not png or svg"},
        {{"plot", "--max-step", "-3", "norm", "x.csv", NULL},
         "roteq plot: --max-step: must be positive"},
        {{"plot", "norm", "--bogus", NULL},
         "roteq plot: unknown option '--bogus' (see roteq plot --help)"},
        {{"plot", "norm", "/nonexistent.csv", NULL}, "roteq plot: cannot read '/nonexistent.csv'"},
        {{"plot", "gallery", "x.csv", NULL}, "roteq plot: gallery takes no INPUT (got 'x.csv')"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = roteq_test_run(bad[i].args, NULL, &out, &err);
        if (rc != 2 || strstr(err, bad[i].msg) == NULL)
            print_error("case %zu: exit %d, stderr: %s\n", i, rc, err);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(err, bad[i].msg));
        assert_string_equal(out, "");
        free(out);
        free(err);
    }
}

/* Run `args` (a `roteq plot` that must draw), check that it printed `dir`/`file` and that the
 * figure is a valid PNG or SVG; returns the data file's path (free it). */
static char *draw_ok(const char *const *args, const char *dir, const char *file)
{
    char *out, *err;
    int rc = roteq_test_run(args, NULL, &out, &err);
    if (rc != 0)
        print_error("stderr: %s\n", err);
    assert_int_equal(rc, 0);
    char want[4400];
    snprintf(want, sizeof want, "%s/%s\n", dir, file);
    assert_string_equal(out, want);
    want[strlen(want) - 1] = '\0';
    if (strstr(file, ".svg"))
        fx_check_svg(want);
    else
        fx_check_png(want);
    free(out);
    free(err);
    strcpy(strrchr(want, '.'), ".dat");
    return strdup(want);
}

static void test_draw(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *in = roteq_test_path(dir, "series.csv"), *outdir = roteq_test_path(dir, "figs/a");
    const char *groups[] = {"adamw", "rv_adamw"};
    fx_series(in, groups, 2, 90, 0);
    char labelled[4200];
    snprintf(labelled, sizeof labelled, "run=%s", in);
    const char *args[] = {"plot", "--format", "svg",     "angle",    labelled, "--out",
                          outdir, "--log-y",  "--title", "two runs", NULL};
    char *dat = draw_ok(args, outdir, "angle.svg");
    char *data = roteq_test_read_file(dat, NULL);
    free(dat);
    assert_non_null(strstr(data, "--title 'two runs' --log-y"));
    assert_non_null(strstr(data, "\"run: rv_adamw\""));
    free(data);

    /* Missing gnuplot: exit 1, one line naming the problem and the fix. */
    char *path = strdup(getenv("PATH"));
    setenv("PATH", dir, 1);
    const char *again[] = {"plot", "norm", in, "--out", outdir, NULL};
    char *out, *err;
    int rc = roteq_test_run(again, NULL, &out, &err);
    setenv("PATH", path, 1);
    free(path);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "roteq plot: gnuplot not found"));
    /* exactly one line */
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
    free(out);
    free(err);
    free(in);
    free(outdir);
    roteq_test_rmtree(dir);
}

/* Figure 7 as a user makes it: `roteq simulate --optimizer muon --format json` per momentum
 * (its summary carries all three predictions of both quantities, as `roteq theory` gives them),
 * then `roteq plot muon` on the summaries. A bad summary is exit 2 with one line naming the
 * file, nothing on stdout and no output file. */
static void test_muon_from_simulate(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *paths[2] = {roteq_test_path(dir, "m0.json"), roteq_test_path(dir, "m09.json")};
    char *figs = roteq_test_path(dir, "figs");
    const char *momenta[2] = {"0", "0.9"};
    char *out, *err;
    for (int i = 0; i < 2; i++) {
        const char *sim[] = {"simulate", "--optimizer", "muon", "--shape",  "8x16", "--momentum",
                             momenta[i], "--matrices",  "2",    "--steps",  "200",  "--seed",
                             "3",        "--threads",   "1",    "--format", "json", NULL};
        assert_int_equal(roteq_test_run(sim, NULL, &out, &err), 0);
        roteq_test_write_file(paths[i], out);
        json_t *s = roteq_test_json(out);
        free(out), free(err);
        const char *theory[] = {"theory",     "--optimizer", "muon",     "--shape", "8x16",
                                "--momentum", momenta[i],    "--format", "json",    NULL};
        assert_int_equal(roteq_test_run(theory, NULL, &out, &err), 0);
        json_t *t = roteq_test_json(out);
        free(out), free(err);
        assert_close(roteq_test_jnum(s, "predicted_angular_update_plain", NULL),
                     roteq_test_jnum(t, "angular_update_plain", NULL), 0);
        assert_close(roteq_test_jnum(s, "predicted_angular_update_lionlike", NULL),
                     roteq_test_jnum(t, "angular_update_lionlike", NULL), 0);
        assert_close(roteq_test_jnum(s, "predicted_norm_lionlike", NULL),
                     roteq_test_jnum(t, "equilibrium_norm_lionlike", NULL), 0);
        json_decref(s);
        json_decref(t);
    }
    const char *plot[] = {"plot", "muon", paths[1], paths[0], "--out", figs, NULL};
    char *dat = draw_ok(plot, figs, "muon.png");
    size_t blocks, rows;
    fx_count_data(dat, &blocks, &rows);
    free(dat);
    assert_int_equal(blocks, 1);
    assert_int_equal(rows, 2);

    char *bad = roteq_test_path(dir, "bad.json"), *none = roteq_test_path(dir, "none");
    roteq_test_write_file(bad, "{\"optimizer\": \"muon\",\n  \"hparams\": {\"momentum\": 0.5,}\n");
    const char *refused[] = {"plot", "muon", paths[0], bad, "--out", none, NULL};
    int rc = roteq_test_run(refused, NULL, &out, &err);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "roteq plot: "));
    assert_non_null(strstr(err, "bad.json:2:"));
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
    assert_int_equal(fx_count_entries(none), 0);
    free(out), free(err);
    free(bad), free(none), free(figs), free(paths[0]), free(paths[1]);
    roteq_test_rmtree(dir);
}

/* Outputs checked before any input is read: the data file that is an input (by its name or
 * through a symlink) is refused with exit 2 and left intact; a figure path that is a directory
 * is exit 1 naming it, and no data file is written. */
static void test_outputs_checked(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *in = roteq_test_path(dir, "norm.dat"), *link = roteq_test_path(dir, "link.csv");
    char *fig = roteq_test_path(dir, "x.png"), *xdat = roteq_test_path(dir, "x.dat");
    const char *groups[] = {"adamw"};
    fx_series(in, groups, 1, 20, 0);
    assert_int_equal(symlink("norm.dat", link), 0);
    size_t len0;
    char *before = roteq_test_read_file(in, &len0);
    assert_int_equal(mkdir(fig, 0777), 0);
    char labelled[4200];
    snprintf(labelled, sizeof labelled, "run=%s", link);
    const struct {
        const char *args[8];
        int rc;
        const char *msg;
    } cases[] = {
        {{"plot", "norm", in, "--out", dir, NULL}, 2, "is the same file as the input"},
        {{"plot", "norm", labelled, "--out", dir, NULL}, 2, "link.csv'"},
        {{"plot", "norm", in, "--out", dir, "--name", "x", NULL}, 1, "x.png': Is a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = roteq_test_run(cases[i].args, NULL, &out, &err);
        if (rc != cases[i].rc || !strstr(err, cases[i].msg) || !strstr(err, "roteq plot: --out: "))
            print_error("case %zu: exit %d, stderr: %s\n", i, rc, err);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(err, "roteq plot: --out: "));
        assert_non_null(strstr(err, cases[i].msg));
        assert_string_equal(out, "");
        free(out);
        free(err);
    }
    size_t len1;
    char *after = roteq_test_read_file(in, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    assert_int_equal(access(xdat, F_OK), -1);
    free(before);
    free(after);
    free(in);
    free(link);
    free(fig);
    free(xdat);
    roteq_test_rmtree(dir);
}

/* A run killed by SIGTERM while gnuplot draws leaves no temporary figure: ROTEQ_GNUPLOT is a
 * script that marks that it started, waits for roteq to be gone, then writes the figure (as a
 * gnuplot that outlived roteq would, creating the removed file again) and marks that. roteq alone
 * gets the signal and must kill it, then die of the signal with the folder holding only what was
 * complete (the input and the data file). */
static void test_killed_leaves_no_tmp(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *in = roteq_test_path(dir, "series.csv"), *outdir = roteq_test_path(dir, "figs");
    char *gp = roteq_test_path(dir, "gp.sh"), *mark = roteq_test_path(dir, "started");
    char *done = roteq_test_path(dir, "wrote");
    const char *groups[] = {"adamw"};
    fx_series(in, groups, 1, 20, 0);
    char script[9000];
    snprintf(script, sizeof script,
             "#!/bin/sh\ntouch '%s'\nwhile kill -0 $PPID 2>/dev/null; do sleep 0.05; done\n"
             "echo figure > \"$4\"\ntouch '%s'\nexec sleep 60\n",
             mark, done);
    roteq_test_write_file(gp, script);
    assert_int_equal(chmod(gp, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0); /* the sleeper is killed with its group below */
        setenv("ROTEQ_GNUPLOT", gp, 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(getenv("ROTEQ_EXE"), "roteq", "plot", "norm", in, "--out", outdir, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    for (int i = 0; i < 2000 && access(mark, F_OK) != 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    assert_int_equal(access(mark, F_OK), 0);
    /* the temporary figure exists while gnuplot runs */
    assert_int_equal(fx_count_entries(outdir), 2);
    assert_int_equal(kill(pid, SIGTERM), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* The script writes as soon as roteq is gone, unless roteq killed it first: give it 2 s
     * (the group is killed after the check, in case it is still there). */
    int wrote = 0;
    for (int i = 0; i < 40 && !wrote; i++) {
        nanosleep(&(struct timespec){0, 50000000}, NULL);
        wrote = access(done, F_OK) == 0;
    }
    kill(-pid, SIGKILL);
    assert_false(wrote);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    DIR *d = opendir(outdir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strstr(e->d_name, ".tmp."))
            print_error("left behind: %s\n", e->d_name);
        assert_null(strstr(e->d_name, ".tmp."));
    }
    closedir(d);
    assert_int_equal(fx_count_entries(outdir), 1); /* norm.dat */
    free(in);
    free(outdir);
    free(gp);
    free(mark);
    free(done);
    roteq_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage),       cmocka_unit_test(test_draw),
        cmocka_unit_test(test_muon_from_simulate),   cmocka_unit_test(test_outputs_checked),
        cmocka_unit_test(test_killed_leaves_no_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
