/* test_cli_simulate.c - `roteq simulate` and `roteq bench` from the outside: help, every
 * bad-input path (one line, exit 2, no output file left behind), outputs that cannot be written
 * (exit 1 naming them, before the run), runs larger than the available memory (refused up
 * front), rows that stream (memory independent of --steps / --every), progress when stderr is
 * not a terminal, and the files a good run writes (series CSV, trace CSV + metadata, JSON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"

#include <dirent.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t count_lines(const char *s, const char *prefix)
{
    size_t n = 0;
    for (const char *p = s; p && *p;) {
        if (!prefix || strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_help(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    const char *args[] = {"simulate", "--help", NULL};
    assert_int_equal(roteq_test_run(args, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "usage: roteq simulate"));
    assert_non_null(strstr(out, "--weight-decay"));
    /* the matrix optimizers, and where their own flags are */
    assert_non_null(strstr(out, "Matrix optimizers (muon)"));
    assert_non_null(strstr(out, "`roteq simulate --optimizer muon --help`"));
    free(out);
    free(err);
    const char *bargs[] = {"bench", "--help", NULL};
    assert_int_equal(roteq_test_run(bargs, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "usage: roteq bench"));
    free(out);
    free(err);
}

/* Each bad input: exit 2, exactly one line on stderr mentioning `needle`, nothing in the output
 * directory (the --out file is requested in every case). */
static void test_bad_input(void **state)
{
    (void)state;
    struct {
        const char *flag, *value, *needle;
    } cases[] = {
        {"--gradient", "sideways", "unknown gradient model"},
        {"--neurons", "0", "--neurons"},
        {"--dim", "0", "--dim"},
        {"--steps", "0", "--steps"},
        {"--steps", "12x", "not a"},
        {"--lr", "fast", "--lr"},
        {"--beta1", "1.5", "--beta1"},
        {"--momentum", "0.9", "does not apply"},
        {"--schedule", "cosine:", "--schedule"},
        {"--format", "yaml", "--format"},
        {"--grad-norm", "-1", "--grad-norm"},
        {"--dead-fraction", "1", "--dead-fraction"},
        {"--isa", "sse9", "--isa"},
        {"--bogus", "1", "unknown option"},
        {"--every", "0", "--every"},
        {"--threads", "-1", "--threads"},
        {"--radial", "x", "--radial"},
        {"--seed", "-5", "--seed"},
        {"--init-norm", "0", "--init-norm"},
        {"--grad-spread", "9", "--grad-spread"},
        {"--steps", "1000000000000000", "--steps: at most 10000000000 (1e10)"},
        {"--weight-decay", "1500", "no equilibrium"},
        {"--wd-schedule", "step:0:0.5", "--wd-schedule"},
    };
    char *dir = roteq_test_tmpdir();
    char *out_path = roteq_test_path(dir, "series.csv");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"simulate", "--optimizer", "adamw",       "--steps",      "20",
                              "--out",    out_path,      cases[i].flag, cases[i].value, NULL};
        char *out = NULL, *err = NULL;
        int rc = roteq_test_run(args, NULL, &out, &err);
        if (rc != 2 || !strstr(err, cases[i].needle) || count_lines(err, "roteq simulate:") != 1 ||
            count_lines(err, NULL) != 1)
            fail_msg("%s %s: exit %d, stderr '%s'", cases[i].flag, cases[i].value, rc, err);
        assert_int_equal(count_entries(dir), 0);
        free(out);
        free(err);
    }
    /* No optimizer, an unknown one, a stray argument. */
    const char *const *more[] = {
        (const char *[]){"simulate", "--steps", "10", NULL},
        (const char *[]){"simulate", "--optimizer", "adamx", NULL},
        (const char *[]){"simulate", "--optimizer", "adamw", "extra", NULL},
        (const char *[]){"simulate", "--optimizer", "adamw", "--steps", NULL},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        char *err = NULL;
        assert_int_equal(roteq_test_run(more[i], NULL, NULL, &err), 2);
        assert_int_equal(count_lines(err, NULL), 1);
        free(err);
    }
    free(out_path);
    roteq_test_rmtree(dir);
}

/* An output path that cannot be written (a missing folder, a directory, a plot folder that
 * cannot be made, the trace on the --out file): exit 1 naming it before the run (no "seed"
 * line: nothing ran), and the other output that could be written is not left behind either. */
static void test_unwritable_output(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *good = roteq_test_path(dir, "series.csv");
    char *bad = roteq_test_path(dir, "missing/trace.csv");
    char *sub = roteq_test_path(dir, "adir");
    struct {
        const char *flag, *value, *needle;
        int code;
    } cases[] = {
        {"--trace", bad, "--trace: cannot write", 1},
        {"--trace", sub, "Is a directory", 1},
        {"--plot", "/nonexistent/roteq/figs", "--plot: cannot create directory", 1},
        {"--trace", good, "--trace: '", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(mkdir(sub, 0777), 0);
        const char *args[] = {"simulate", "--optimizer", "adamw",       "--steps",      "20",
                              "--out",    good,          cases[i].flag, cases[i].value, NULL};
        char *err = NULL;
        int rc = roteq_test_run(args, NULL, NULL, &err);
        if (rc != cases[i].code || !strstr(err, cases[i].needle) || count_lines(err, NULL) != 1)
            fail_msg("%s %s: exit %d, stderr '%s'", cases[i].flag, cases[i].value, rc, err);
        assert_int_equal(rmdir(sub), 0);
        assert_int_equal(count_entries(dir), 0);
        free(err);
    }
    /* --out DIR: refused at once, not after the run. */
    assert_int_equal(mkdir(sub, 0777), 0);
    const char *args[] = {"simulate", "--optimizer", "adamw", "--steps", "20", "--out", sub, NULL};
    char *err = NULL;
    assert_int_equal(roteq_test_run(args, NULL, NULL, &err), 1);
    assert_non_null(strstr(err, "roteq simulate: --out: cannot write"));
    assert_non_null(strstr(err, "Is a directory"));
    assert_int_equal(count_lines(err, NULL), 1);
    assert_int_equal(count_entries(dir), 1);
    free(err);
    free(good);
    free(bad);
    free(sub);
    roteq_test_rmtree(dir);
}

/* A run that needs more memory than is available is refused before anything is allocated,
 * naming the figures; --no-memory-check tries anyway (here under ulimit -v 2 GB, so it fails
 * with "out of memory" instead of swapping). */
static void test_memory_limit(void **state)
{
    (void)state;
    char *err = NULL;
    const char *huge[] = {"simulate",   "--optimizer", "adamw", "--neurons",
                          "4294967295", "--dim",       "1024",  NULL};
    assert_int_equal(roteq_test_run(huge, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "roteq simulate: --neurons 4294967295 --dim 1024 needs about "));
    assert_non_null(strstr(err, "TB, more than the "));
    assert_non_null(strstr(err, "available here (90% of MemAvailable)"));
    assert_non_null(strstr(err, "--no-memory-check"));
    assert_int_equal(count_lines(err, NULL), 1);
    free(err);

#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer reserves terabytes of address space for its shadow memory: under a 2 GB
     * RLIMIT_AS the child cannot start. The release suite runs this half. */
    return;
#endif
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)2 << 30;
    assert_int_equal(setrlimit(RLIMIT_AS, &low), 0);
    const char *big[] = {"simulate", "--optimizer", "adamw",   "--neurons", "4000000",
                         "--dim",    "128",         "--steps", "10",        NULL};
    int rc = roteq_test_run(big, NULL, NULL, &err);
    const char *forced[] = {"simulate", "--optimizer", "adamw",   "--neurons", "4000000",
                            "--dim",    "128",         "--steps", "10",        "--no-memory-check",
                            NULL};
    char *err2 = NULL;
    int rc2 = roteq_test_run(forced, NULL, NULL, &err2);
    assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "needs about 12.7 GB, more than the 2.15 GB available here "
                                "(RLIMIT_AS)"));
    assert_int_equal(rc2, 1);
    assert_non_null(strstr(err2, "out of memory for 4000000 neurons of dimension 128"));
    free(err);
    free(err2);
}

/* --every 1 keeps no row in memory: the rows stream to their outputs. 150000 rows took 25 MB
 * more (170 bytes a row and 8 for its step; 1e8 rows were 17 GB) before; now the whole process
 * stays near 19 MB (20.5 MB under AddressSanitizer) whatever the number of rows. */
#if defined(__SANITIZE_ADDRESS__)
#define STREAM_PEAK_KB (40 * 1024) /* AddressSanitizer's own overhead alone is about 20 MB */
#else
#define STREAM_PEAK_KB (32 * 1024) /* about 19 MB streaming; keeping the rows added 25 MB */
#endif
static void test_rows_stream(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *out_path = roteq_test_path(dir, "series.csv");
    /* In a fresh process, so that the peak of earlier children does not count. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *args[] = {"simulate", "--optimizer", "sgd", "--lr",  "0.1",    "--weight-decay",
                              "0.01",     "--neurons",   "1",   "--dim", "2",      "--steps",
                              "150000",   "--every",     "1",   "--out", out_path, "--format",
                              "json",     "--quiet",     NULL};
        char *out = NULL, *err = NULL;
        if (roteq_test_run(args, NULL, &out, &err) != 0)
            _exit(3);
        struct rusage ru;
        if (getrusage(RUSAGE_CHILDREN, &ru) != 0)
            _exit(4);
        fprintf(stderr, "peak memory %ld kB with --every 1 --steps 150000\n", ru.ru_maxrss);
        _exit(ru.ru_maxrss < STREAM_PEAK_KB ? 0 : 5);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char *csv = roteq_test_read_file(out_path, NULL);
    assert_int_equal(count_lines(csv, "149999,sgd,"), 1);
    assert_int_equal(count_lines(csv, NULL), 150003); /* two comments, the header, the rows */
    free(csv);
    free(out_path);
    roteq_test_rmtree(dir);
}

/* With stderr a pipe, a long run still says how far it is (a line per ROTEQ_PROGRESS_SECONDS),
 * also between records far apart; --quiet silences it. */
static void test_progress_not_a_terminal(void **state)
{
    (void)state;
    setenv("ROTEQ_PROGRESS_SECONDS", "0", 1);
    const char *args[] = {"simulate", "--optimizer", "adamw",     "--neurons", "64",
                          "--dim",    "64",          "--threads", "1",         "--steps",
                          "70000",    "--every",     "70000",     NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(roteq_test_run(args, NULL, &out, &err), 0);
    assert_non_null(strstr(err, "roteq simulate: step 32768 of 70000 (46.8%)"));
    assert_non_null(strstr(err, "roteq simulate: step 65536 of 70000"));
    free(out);
    free(err);
    const char *quiet[] = {"simulate", "--optimizer", "adamw",   "--steps", "3000",
                           "--every",  "100",         "--quiet", NULL};
    assert_int_equal(roteq_test_run(quiet, NULL, &out, &err), 0);
    unsetenv("ROTEQ_PROGRESS_SECONDS");
    assert_string_equal(err, "roteq simulate: seed 1\n");
    free(out);
    free(err);
}

static void test_outputs(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *series = roteq_test_path(dir, "series.csv");
    char *trace = roteq_test_path(dir, "trace.csv");
    char *meta = roteq_test_path(dir, "trace.csv.json");
    const char *args[] = {"simulate", "--optimizer", "sgdm", "--lr",    "0.1",  "--weight-decay",
                          "0.01",     "--neurons",   "5",    "--dim",   "19",   "--steps",
                          "100",      "--every",     "25",   "--seed",  "2385", "--threads",
                          "2",        "--out",       series, "--trace", trace,  "--format",
                          "json",     NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(roteq_test_run(args, NULL, &out, &err), 0);
    assert_non_null(strstr(err, "seed 2385"));
    assert_non_null(strstr(out, "\"predicted\""));
    assert_non_null(strstr(out, "\"measured\""));
    assert_non_null(strstr(out, "\"relative_error\""));
    assert_non_null(strstr(out, "\"angular_update_se\""));
    assert_non_null(strstr(out, "\"optimizer\": \"sgdm\""));
    size_t len;
    char *s = roteq_test_read_file(series, &len);
    assert_non_null(s);
    assert_non_null(strstr(s, "step,group,lr,weight_decay,n,norm_mean,norm_std"));
    assert_non_null(strstr(s, "pred_norm,pred_angle,eq_norm,eq_angle,update_rms_mean"));
    assert_int_equal(count_lines(s, "#"), 2);
    assert_int_equal(count_lines(s, NULL), 2 + 1 + 4); /* comments, header, steps 25..100 */
    assert_non_null(strstr(s, "\n100,sgdm,"));
    /* eq_norm, eq_angle (fields 19, 20) on every row: the summary's predicted equilibrium,
     * SGDM's (eta G^2 / (2 lambda (1 - alpha)))^(1/4) with G^2 = C - 1 = 18, and
     * sqrt(2 eta lambda / (1 + alpha)). */
    int eq_rows = 0;
    for (const char *row = strstr(s, "\n25,sgdm,"); row; row = strchr(row + 1, '\n')) {
        if (!row[1])
            break;
        eq_rows++;
        const char *p = row;
        for (int k = 0; k < 18; k++)
            p = strchr(p + 1, ',');
        char *end;
        double en = strtod(p + 1, &end), ea = strtod(end + 1, NULL);
        assert_true(*end == ',');
        assert_close(en, pow(0.1 * 18 / (2 * 0.01 * 0.1), 0.25), 1e-12);
        assert_close(ea, sqrt(2 * 0.1 * 0.01 / 1.9), 1e-12);
    }
    assert_int_equal(eq_rows, 4);
    char *t = roteq_test_read_file(trace, &len);
    assert_non_null(t);
    assert_non_null(strstr(t, "step,layer,neuron,norm,angle,lr,weight_decay\n"));
    assert_int_equal(count_lines(t, "100,sgdm,"), 5);
    assert_int_equal(count_lines(t, NULL), 2 + 1 + 4 * 5);
    char *m = roteq_test_read_file(meta, &len);
    assert_non_null(m);
    assert_non_null(strstr(m, "\"optimizer\": \"sgdm\""));
    assert_non_null(strstr(m, "\"dim\": 19"));
    assert_int_equal(count_entries(dir), 3); /* no temporary files left */
    free(s);
    free(t);
    free(m);
    free(out);
    free(err);

    /* The same run on one thread writes the same trace, bit for bit. */
    char *trace1 = roteq_test_path(dir, "trace1.csv");
    args[18] = "1";
    args[22] = trace1;
    assert_string_equal(args[17], "--threads");
    assert_int_equal(roteq_test_run(args, NULL, NULL, NULL), 0);
    t = roteq_test_read_file(trace, &len);
    char *t1 = roteq_test_read_file(trace1, NULL);
    assert_string_equal(t, t1);
    free(t);
    free(t1);
    free(trace1);
    free(series);
    free(trace);
    free(meta);
    roteq_test_rmtree(dir);
}

static void test_text_and_csv(void **state)
{
    (void)state;
    char *out = NULL;
    const char *args[] = {"simulate",
                          "--optimizer",
                          "lion",
                          "--weight-decay",
                          "1.0",
                          "--neurons",
                          "4",
                          "--dim",
                          "16",
                          "--steps",
                          "40",
                          "--every",
                          "10",
                          "--gradient",
                          "heterogeneous",
                          NULL};
    assert_int_equal(roteq_test_run(args, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "angular update"));
    assert_non_null(strstr(out, "heterogeneous"));
    free(out);
    const char *cargs[] = {"simulate", "--optimizer", "rv_adamw", "--neurons", "4",
                           "--dim",    "16",          "--steps",  "40",        "--every",
                           "10",       "--format",    "csv",      NULL};
    assert_int_equal(roteq_test_run(cargs, NULL, &out, NULL), 0);
    assert_int_equal(count_lines(out, "40,rv_adamw,"), 1);
    /* Theory has no norm for a rotational variant: eq_norm is empty, eq_angle its target. */
    const char *row = strstr(out, "\n40,rv_adamw,");
    assert_non_null(row);
    for (int k = 0; k < 18; k++)
        row = strchr(row + 1, ',');
    assert_true(row[1] == ',');
    assert_close(strtod(row + 2, NULL), sqrt(2 * 1e-3 * 1e-2 * 0.1 / 1.9), 1e-12);
    free(out);
}

static void test_bench(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    const char *args[] = {"bench", "--neurons",   "4",     "--dim",      "16", "--steps",
                          "50",    "--optimizer", "adamw", "--no-peers", NULL};
    assert_int_equal(roteq_test_run(args, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "floor: "));
    assert_non_null(strstr(out, "floor: ars5-ziggurat"));
    assert_non_null(strstr(out, "normals philox10-boxmuller"));
    assert_non_null(strstr(out, "cycles"));
    assert_non_null(strstr(out, "GHz"));
    assert_non_null(strstr(out, "adamw"));
    free(out);
    free(err);
    const char *bad[] = {"bench", "--steps", "0", NULL};
    assert_int_equal(roteq_test_run(bad, NULL, NULL, &err), 2);
    assert_int_equal(count_lines(err, NULL), 1);
    free(err);
}

/* --ns-precision for Muon: bfloat16 is named in the text and JSON output; a bad value is one
 * line naming the flag, exit 2. */
static void test_muon_ns_precision(void **state)
{
    (void)state;
    const char *base[] = {"simulate", "--optimizer",    "muon",     "--shape",    "8x12", "--lr",
                          "0.02",     "--weight-decay", "0.1",      "--matrices", "2",    "--steps",
                          "40",       "--ns-precision", "bfloat16", "--format",   "json", NULL};
    char *out = NULL, *err = NULL;
    int rc = roteq_test_run(base, NULL, &out, &err);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(out, "\"ns_precision\": \"bfloat16\""));
    free(out), free(err);
    base[16] = "text";
    assert_int_equal(roteq_test_run(base, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "Newton-Schulz in bfloat16"));
    free(out), free(err);
    base[14] = "bf16";
    assert_int_equal(roteq_test_run(base, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "--ns-precision"));
    assert_int_equal(count_lines(err, NULL), 1);
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_unwritable_output),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_rows_stream),
        cmocka_unit_test(test_progress_not_a_terminal),
        cmocka_unit_test(test_outputs),
        cmocka_unit_test(test_text_and_csv),
        cmocka_unit_test(test_bench),
        cmocka_unit_test(test_muon_ns_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
