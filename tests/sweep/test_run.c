/* test_run.c - scheduling and output, with a cheap deterministic runner in place of the
 * simulator: every point is run exactly once whatever the number of jobs, bad points and failed
 * runs become ERROR rows while the rest run, the verdict rule, the row text, and the output
 * journal (rows appended whole, --resume after a torn line, refusal of another grid's file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_sweep.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Point i of g (decoded on demand); a few buffers rotate so that two can be compared. */
static const roteq_sweep_point *point_at(const roteq_sweep_grid *g, size_t i)
{
    static roteq_sweep_point buf[4];
    static int k;
    k = (k + 1) % 4;
    return roteq_sweep_grid_point(g, i, &buf[k]);
}

/* Numbers derived from the point alone, like the simulator's; dim 13 fails on purpose. */
static int fake_runner(const roteq_sweep_point *p, unsigned threads, roteq_sweep_record *rec,
                       void *ctx)
{
    (void)ctx;
    if (p->cfg.dim == 13)
        return roteq_error_set(ROTEQ_ERUNTIME, "simulation diverged at step 7 (on purpose)");
    double u = (double)(p->seed % 1024) / 1024.0 - 0.5; /* in [-0.5, 0.5) */
    double pred = sqrt(p->cfg.hp.lr * (double)p->cfg.dim / (2 * p->cfg.hp.weight_decay));
    for (int k = 0; k < ROTEQ_PRED_COUNT; k++)
        rec->pred[k] = (roteq_sweep_prediction){pred * (1 + 0.01 * k), 0.01, p->cfg.dim != 64};
    rec->norm = pred * (1 + 0.002 * u);
    rec->norm_se = pred * 0.001; /* |z| <= 1 */
    rec->angle = 0.01 * (1 - 0.001 * u);
    rec->angle_se = 1e-5;
    rec->threads = threads;
    usleep(1000); /* let the jobs interleave */
    return ROTEQ_OK;
}

typedef struct {
    pthread_mutex_t lock;
    roteq_sweep_record recs[64];
    int seen[64];
    size_t calls, stop_after;
} collector;

static int collect(void *ctx, const roteq_sweep_point *p, const roteq_sweep_record *rec)
{
    collector *c = ctx;
    /* roteq_sweep_run serialises sink calls; the lock would expose a violation to TSan/ASan. */
    assert_int_equal(pthread_mutex_trylock(&c->lock), 0);
    assert_int_equal(p->index, rec->index);
    c->recs[rec->index] = *rec;
    c->seen[rec->index]++;
    c->calls++;
    pthread_mutex_unlock(&c->lock);
    return c->stop_after && c->calls >= c->stop_after ? ROTEQ_ERUNTIME : 0;
}

static const char *const grid_text =
    "{\"seed\": 99, \"fixed\": {\"optimizer\": \"adamw\", \"weight_decay\": 0.1},"
    " \"axes\": {\"lr\": [0.001, 0.002, 0.004], \"dim\": [64, 13, 128, 256]},"
    " \"groups\": [{}, {\"points\": [{\"beta1\": 1.25}]}]}";

static void run_collect(const roteq_sweep_grid *g, unsigned jobs, const unsigned char *skip,
                        collector *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    roteq_sweep_options o = {
        .jobs = jobs, .threads = 1, .runner = fake_runner, .sink = collect, .sink_ctx = c};
    assert_int_equal(roteq_sweep_run(g, skip, &o), 0);
    pthread_mutex_destroy(&c->lock);
}

static void test_every_point_once_any_jobs(void **state)
{
    (void)state;
    roteq_sweep_grid *g = roteq_sweep_grid_parse(grid_text, "g.json");
    assert_non_null(g);
    assert_int_equal(g->npoints, 24);
    collector *one = malloc(sizeof *one), *three = malloc(sizeof *three);
    run_collect(g, 1, NULL, one);
    run_collect(g, 3, NULL, three);
    for (size_t i = 0; i < g->npoints; i++) {
        assert_int_equal(one->seen[i], 1);
        assert_int_equal(three->seen[i], 1);
        char *a = roteq_sweep_format_row(ROTEQ_SWEEP_CSV, g, point_at(g, i), &one->recs[i]);
        char *b = roteq_sweep_format_row(ROTEQ_SWEEP_CSV, g, point_at(g, i), &three->recs[i]);
        /* Identical up to the timing columns (the last two: seconds, threads). */
        *strrchr(a, ',') = '\0';
        *strrchr(b, ',') = '\0';
        *strrchr(a, ',') = '\0';
        *strrchr(b, ',') = '\0';
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    /* A bad point among good ones: ERROR with its reason, the others ran. dim 13 failed in the
     * runner; beta1 = 1.25 failed before running. */
    size_t errors = 0;
    for (size_t i = 0; i < g->npoints; i++) {
        const roteq_sweep_record *r = &one->recs[i];
        const roteq_sweep_point *p = point_at(g, i);
        if (p->error[0]) {
            assert_int_equal(r->verdict, ROTEQ_SWEEP_VERDICT_ERROR);
            assert_non_null(strstr(r->reason, "beta1: must be in [0, 1), got 1.25"));
            assert_true(r->seconds == 0.0);
            errors++;
        } else if (p->cfg.dim == 13) {
            assert_int_equal(r->verdict, ROTEQ_SWEEP_VERDICT_ERROR);
            assert_string_equal(r->reason, "simulation diverged at step 7 (on purpose)");
            errors++;
        } else {
            assert_int_equal(r->verdict, p->cfg.dim == 64 ? ROTEQ_SWEEP_VERDICT_APPROX
                                                          : ROTEQ_SWEEP_VERDICT_PASS);
            assert_true(r->seconds > 0.0);
        }
    }
    assert_int_equal(errors, 3 + 12);
    free(one);
    free(three);
    roteq_sweep_grid_free(g);
}

static void test_skip_and_stop(void **state)
{
    (void)state;
    roteq_sweep_grid *g = roteq_sweep_grid_parse(grid_text, "g.json");
    unsigned char skip[24] = {0};
    for (size_t i = 0; i < 24; i += 2)
        skip[i] = 1;
    collector *c = malloc(sizeof *c);
    run_collect(g, 2, skip, c);
    for (size_t i = 0; i < 24; i++)
        assert_int_equal(c->seen[i], !skip[i]);
    /* A sink that fails stops the dealing and its status comes back. */
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->stop_after = 4;
    roteq_sweep_options o = {
        .jobs = 1, .threads = 1, .runner = fake_runner, .sink = collect, .sink_ctx = c};
    assert_int_equal(roteq_sweep_run(g, NULL, &o), ROTEQ_ERUNTIME);
    assert_int_equal(c->calls, 4);
    pthread_mutex_destroy(&c->lock);
    free(c);
    roteq_sweep_grid_free(g);
}

static void test_judge(void **state)
{
    (void)state;
    roteq_sweep_record r;
    memset(&r, 0, sizeof r);
    r.pred[ROTEQ_PRED_BEST] = (roteq_sweep_prediction){2.0, 0.01, 1};
    r.norm = 2.0 + 3.9 * 0.01;
    r.norm_se = 0.01;
    r.angle = 0.01 - 3.9e-5;
    r.angle_se = 1e-5;
    r.verdict = ROTEQ_SWEEP_VERDICT_PASS;
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_PASS);
    r.angle = 0.01 - 4.1e-5;
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_FAIL);
    roteq_sweep_judge(&r, 5.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_PASS);
    /* The relative floor (eta*lambda): 4.1 SE = 4.1e-3 relative passes with a 1e-3 floor. */
    roteq_sweep_judge(&r, 4.0, 1e-3);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_PASS);
    roteq_sweep_judge(&r, 4.0, 1e-5);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_FAIL);
    r.norm_se = NAN; /* no standard error: nothing to pass with */
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_FAIL);
    r.pred[ROTEQ_PRED_BEST].exact = 0;
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_APPROX);
    /* Angle-only predictions (rotational variants) are judged on the angle alone. */
    r.pred[ROTEQ_PRED_BEST].exact = 1;
    r.pred[ROTEQ_PRED_BEST].norm = NAN;
    r.norm_se = 0.01;
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_FAIL); /* angle is 4.1 SE off */
    r.angle = 0.01 - 3.9e-5;
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_PASS);
    r.pred[ROTEQ_PRED_BEST].angular_update = NAN;
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_UNKNOWN);
    r.verdict = ROTEQ_SWEEP_VERDICT_ERROR;
    roteq_sweep_judge(&r, 4.0, 0.0);
    assert_int_equal(r.verdict, ROTEQ_SWEEP_VERDICT_ERROR);
    assert_close(roteq_sweep_rel_err(1.1, 1.0), 0.1, 1e-12);
    assert_close(roteq_sweep_z(1.1, 1.0, 0.05), 2.0, 1e-12);
    assert_true(isnan(roteq_sweep_rel_err(NAN, 1.0)));
    assert_true(isnan(roteq_sweep_z(1.0, 1.0, 0.0)));
}

/* Count the data rows of a CSV sweep file (lines after the header). */
static size_t csv_rows(const char *text)
{
    size_t n = 0, header = 0;
    for (const char *p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        if (*p == '#' || *p == '\n')
            continue;
        if (!header++)
            continue;
        n++;
    }
    return n;
}

static void write_all_points(roteq_sweep_out *out, const roteq_sweep_grid *g,
                             const unsigned char *skip, size_t limit)
{
    size_t written = 0;
    for (size_t i = g->npoints; i-- > 0 && written < limit;) { /* reverse order on purpose */
        if (skip[i])
            continue;
        roteq_sweep_record rec;
        memset(&rec, 0, sizeof rec);
        rec.index = i;
        rec.seed = point_at(g, i)->seed;
        if (point_at(g, i)->error[0] || fake_runner(point_at(g, i), 1, &rec, NULL)) {
            rec.verdict = ROTEQ_SWEEP_VERDICT_ERROR;
            snprintf(rec.reason, sizeof rec.reason, "bad, \"quoted\"");
        } else {
            roteq_sweep_judge(&rec, 4.0, 0.0);
        }
        assert_int_equal(roteq_sweep_out_write(out, point_at(g, i), &rec), 0);
        written++;
    }
}

static void strip_seconds(char *text)
{
    /* Blank the run-dependent columns (seconds, threads): everything after the grid hash. */
    char *line = text;
    while (line && *line) {
        char *end = strchr(line, '\n');
        if (*line != '#') {
            char *last = end ? end : line + strlen(line);
            int commas = 0;
            char *q = last;
            while (q > line && commas < 2)
                if (*--q == ',')
                    commas++;
            if (commas == 2 && strncmp(line, "index,", 6) != 0)
                memset(q, ' ', (size_t)(last - q));
        }
        line = end ? end + 1 : NULL;
    }
}

static void test_journal_and_resume(void **state)
{
    (void)state;
    char *dir = roteq_test_tmpdir();
    char *full = roteq_test_path(dir, "full.csv"), *part = roteq_test_path(dir, "part.csv");
    roteq_sweep_grid *g = roteq_sweep_grid_parse(grid_text, "g.json");
    unsigned char skip[24];

    /* A whole run: rows appended in completion order, sorted at close. */
    roteq_sweep_out *out = roteq_sweep_out_open(full, ROTEQ_SWEEP_CSV, g, 0, "test", skip);
    assert_non_null(out);
    for (size_t i = 0; i < 24; i++)
        assert_int_equal(skip[i], 0);
    write_all_points(out, g, skip, 24);
    char *journal = roteq_test_read_file(full, NULL);
    assert_int_equal(csv_rows(journal), 24);
    assert_non_null(strstr(journal, "\n23,")); /* written first: journal order */
    assert_true(strstr(journal, "\n23,") < strstr(journal, "\n0,"));
    free(journal);
    assert_int_equal(roteq_sweep_out_close(out), 0);
    char *want = roteq_test_read_file(full, NULL);
    assert_true(strstr(want, "\n0,") < strstr(want, "\n23,")); /* sorted */
    assert_non_null(strstr(want, "\"bad, \"\"quoted\"\"\""));

    /* A killed run: 7 whole rows and half of the 8th. */
    out = roteq_sweep_out_open(part, ROTEQ_SWEEP_CSV, g, 0, "test", skip);
    write_all_points(out, g, skip, 8);
    roteq_sweep_out_abandon(out);
    size_t len;
    char *text = roteq_test_read_file(part, &len);
    assert_int_equal(csv_rows(text), 8);
    FILE *f = fopen(part, "wb");
    fwrite(text, 1, len - 40, f); /* tear the last row */
    fclose(f);
    free(text);

    out = roteq_sweep_out_open(part, ROTEQ_SWEEP_CSV, g, 1, "test", skip);
    assert_non_null(out);
    assert_int_equal(roteq_sweep_out_resumed(out), 7);
    size_t skipped = 0;
    for (size_t i = 0; i < 24; i++)
        skipped += skip[i];
    /* Kept: rows 23..17 (written in reverse). Index = 2 * combo + group; odd indices are the
     * beta1 = 1.25 group (bad), and combo 9 has dim 13 (the runner fails): ERROR rows are
     * retried, so only 22 and 20 are skipped. */
    assert_int_equal(skipped, 2);
    assert_int_equal(skip[22], 1);
    assert_int_equal(skip[20], 1);
    assert_int_equal(skip[23], 0);
    assert_int_equal(skip[18], 0);
    assert_int_equal(skip[16], 0); /* the torn row */
    write_all_points(out, g, skip, 24);
    assert_int_equal(roteq_sweep_out_close(out), 0);
    char *got = roteq_test_read_file(part, NULL);
    strip_seconds(got);
    strip_seconds(want);
    assert_string_equal(got, want);
    free(got);

    /* Resuming with another grid, or another format, is refused and leaves FILE alone. */
    roteq_sweep_grid *other = roteq_sweep_grid_parse(
        "{\"seed\": 98, \"points\": [{\"optimizer\": \"adamw\"}]}", "h.json");
    unsigned char skip1[1];
    assert_null(roteq_sweep_out_open(full, ROTEQ_SWEEP_CSV, other, 1, NULL, skip1));
    assert_non_null(strstr(roteq_error_message(), "row of another grid"));
    assert_null(roteq_sweep_out_open(full, ROTEQ_SWEEP_JSON, g, 1, NULL, skip));
    assert_non_null(strstr(roteq_error_message(), "resume with --format csv"));
    char *after = roteq_test_read_file(full, NULL);
    strip_seconds(after);
    assert_string_equal(after, want);
    free(after);
    /* JSON lines: a torn last object is dropped like a torn CSV row. */
    char *torn = roteq_test_path(dir, "torn.json");
    out = roteq_sweep_out_open(torn, ROTEQ_SWEEP_JSON, g, 0, NULL, skip);
    write_all_points(out, g, skip, 5); /* indices 23..19 */
    roteq_sweep_out_abandon(out);
    size_t tlen;
    char *ttext = roteq_test_read_file(torn, &tlen);
    f = fopen(torn, "wb");
    fwrite(ttext, 1, tlen - 30, f);
    fclose(f);
    free(ttext);
    out = roteq_sweep_out_open(torn, ROTEQ_SWEEP_JSON, g, 1, NULL, skip);
    assert_non_null(out);
    assert_int_equal(roteq_sweep_out_resumed(out), 4);
    assert_int_equal(skip[22], 1); /* kept, not an ERROR row */
    assert_int_equal(skip[19], 0); /* torn */
    roteq_sweep_out_abandon(out);
    ttext = roteq_test_read_file(torn, &tlen);
    assert_true(tlen > 0 && ttext[tlen - 1] == '\n'); /* truncated to whole lines */
    free(ttext);
    free(torn);
    /* A header with other columns (another roteq version) is refused too. */
    char *oldv = roteq_test_path(dir, "old.csv");
    roteq_test_write_file(oldv, "# old\nindex,seed,optimizer,status,grid\n0,1,adamw,PASS,x\n");
    assert_null(roteq_sweep_out_open(oldv, ROTEQ_SWEEP_CSV, g, 1, NULL, skip));
    assert_non_null(strstr(roteq_error_message(), "columns differ"));
    free(oldv);
    /* --resume on a missing file starts afresh. */
    char *fresh = roteq_test_path(dir, "fresh.json");
    out = roteq_sweep_out_open(fresh, ROTEQ_SWEEP_JSON, g, 1, NULL, skip);
    assert_non_null(out);
    assert_int_equal(roteq_sweep_out_resumed(out), 0);
    write_all_points(out, g, skip, 3);
    roteq_sweep_out_abandon(out);
    out = roteq_sweep_out_open(fresh, ROTEQ_SWEEP_JSON, g, 1, NULL, skip);
    assert_non_null(out);
    assert_int_equal(roteq_sweep_out_resumed(out), 3);
    assert_int_equal(roteq_sweep_out_close(out), 0);
    /* An unwritable path is a clear error. */
    assert_null(roteq_sweep_out_open("/nonexistent/dir/x.csv", ROTEQ_SWEEP_CSV, g, 0, NULL, skip));
    assert_non_null(strstr(roteq_error_message(), "/nonexistent/dir/x.csv"));

    free(fresh);
    free(want);
    roteq_sweep_grid_free(other);
    roteq_sweep_grid_free(g);
    free(full);
    free(part);
    roteq_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_point_once_any_jobs),
        cmocka_unit_test(test_skip_and_stop),
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_journal_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
