/* test_plots.c - roteq_plot() end to end on synthetic inputs: every figure kind is drawn into a
 * temporary folder by the real gnuplot, and the test checks that the figure is a valid PNG/SVG of
 * plausible size and that the data file beside it holds the expected blocks and rows. Then the
 * error paths: NaN and single-point inputs, missing columns, malformed numbers, a missing or
 * failing gnuplot, a scripts folder without the scripts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plots_fixtures.h"
#include "roteq_plots.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *dir;
    char path[4][4096];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = roteq_test_tmpdir();
    for (int i = 0; i < 4; i++)
        snprintf(fx->path[i], sizeof fx->path[i], "%s/in%d.csv", fx->dir, i);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (getenv("ROTEQ_PLOTS_KEEP") != NULL) { /* to look at the figures: keep the folder */
        fprintf(stderr, "# kept %s\n", fx->dir);
        free(fx->dir);
    } else {
        roteq_test_rmtree(fx->dir);
    }
    free(fx);
    unsetenv("ROTEQ_GNUPLOT");
    unsetenv("ROTEQ_PLOTS_DIR");
    return 0;
}

/* Draw and check: figure valid, data file with `blocks` blocks and `rows` rows. */
static void draw(fixture *fx, const char *kind, const char *const *in, size_t n,
                 const roteq_plot_options *o, size_t blocks, size_t rows)
{
    char figure[4400], out[4200];
    snprintf(out, sizeof out, "%s/out", fx->dir);
    roteq_plot_options opt = o ? *o : (roteq_plot_options){0};
    opt.out_dir = out;
    int status = roteq_plot(kind, in, n, &opt, figure, sizeof figure);
    if (status != ROTEQ_OK)
        print_error("roteq_plot(%s): %s\n", kind, roteq_error_message());
    assert_int_equal(status, ROTEQ_OK);
    const char *fmt = opt.format ? opt.format : "png";
    const char *name = opt.name ? opt.name : kind;
    char want[4400], data[4400];
    snprintf(want, sizeof want, "%s/%s.%s", out, name, fmt);
    snprintf(data, sizeof data, "%s/%s.dat", out, name);
    assert_string_equal(figure, want);
    if (strcmp(fmt, "svg") == 0)
        fx_check_svg(figure);
    else
        fx_check_png(figure);
    size_t b, r;
    fx_count_data(data, &b, &r);
    if (b != blocks || r != rows)
        print_error("%s: %zu blocks, %zu rows; want %zu, %zu\n", data, b, r, blocks, rows);
    assert_int_equal(b, blocks);
    assert_int_equal(r, rows);
    char *text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "# roteq plot "));
    assert_non_null(strstr(text, "# redraw: gnuplot -c "));
    free(text);
}

static void test_norm_and_angle(void **state)
{
    fixture *fx = *state;
    const char *groups[] = {"adamw", "sgdm"};
    fx_series(fx->path[0], groups, 2, 150, 0);
    const char *in[] = {fx->path[0]};
    draw(fx, "norm", in, 1, NULL, 2, 300);
    roteq_plot_options o = {.log_y = 1, .title = "angular update, \"log\" y"};
    draw(fx, "angle", in, 1, &o, 2, 300);
    /* --max-step keeps the first steps only. */
    o = (roteq_plot_options){.max_step = 40, .name = "angle40"};
    draw(fx, "angle", in, 1, &o, 2, 80);
}

static void test_norm_many_groups_panels(void **state)
{
    fixture *fx = *state;
    const char *groups[] = {"l0", "l1", "l2", "l3", "l4", "l5"};
    fx_series(fx->path[0], groups, 6, 50, 0);
    const char *in[] = {fx->path[0]};
    draw(fx, "norm", in, 1, NULL, 6, 300);
}

/* Layers of one type (numeric name components as '*') share a panel: the blocks are written
 * panel by panel, the singles pooled in "other layers", and the script gets the panel table. */
static void test_many_layers_by_type(void **state)
{
    fixture *fx = *state;
    const char *layers[] = {"wte.weight",        "h.0.attn.q.weight",   "h.0.mlp.c_fc.weight",
                            "h.1.attn.q.weight", "h.1.mlp.c_fc.weight", "lm_head.weight"};
    fx_series(fx->path[0], layers, 6, 40, 0);
    const char *in[] = {fx->path[0]};
    roteq_plot_options o = {.log_y = 1};
    draw(fx, "angle", in, 1, &o, 6, 240);
    char data[4400];
    snprintf(data, sizeof data, "%s/out/angle.dat", fx->dir);
    char *text = roteq_test_read_file(data, NULL);
    const char *want[] = {"# block 0: wte.weight",          "# block 1: lm_head.weight",
                          "# block 2: h.0.attn.q.weight",   "# block 3: h.1.attn.q.weight",
                          "# block 4: h.0.mlp.c_fc.weight", "# block 5: h.1.mlp.c_fc.weight"};
    for (size_t i = 0; i < 6; i++)
        assert_non_null(strstr(text, want[i]));
    assert_non_null(strstr(text, "0 \"other layers\" 2 \"h.*.attn.q.weight\" 4 "
                                 "\"h.*.mlp.c_fc.weight\""));
    free(text);
    /* 12 layers of one type (the sequential palette) and 5 without a shared type (one panel
     * each, no panel table), both drawn. */
    char names[13][32];
    const char *deep[13];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "blocks.%d.fc.weight", i);
        deep[i] = names[i];
    }
    deep[12] = "head.weight";
    fx_series(fx->path[1], deep, 13, 30, 0);
    const char *in1[] = {fx->path[1]};
    o = (roteq_plot_options){.name = "deep"};
    draw(fx, "norm", in1, 1, &o, 13, 390);
    const char *cnn[] = {"stem.weight", "layer1.conv1.weight", "layer1.conv2.weight",
                         "layer2.conv1.weight", "fc.weight"};
    fx_series(fx->path[2], cnn, 5, 30, 0);
    const char *in2[] = {fx->path[2]};
    o = (roteq_plot_options){.name = "cnn"};
    draw(fx, "norm", in2, 1, &o, 5, 150);
    snprintf(data, sizeof data, "%s/out/cnn.dat", fx->dir);
    text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "# block 1: layer1.conv1.weight"));
    assert_null(strstr(text, "other layers"));
    free(text);
}

static void test_svg(void **state)
{
    fixture *fx = *state;
    const char *groups[] = {"adamw"};
    fx_series(fx->path[0], groups, 1, 80, 0);
    const char *in[] = {fx->path[0]};
    roteq_plot_options o = {.format = "svg"};
    draw(fx, "norm", in, 1, &o, 1, 80);
}

static void test_transient_labels(void **state)
{
    fixture *fx = *state;
    const char *g0[] = {"adamw"}, *g1[] = {"rv_adamw"};
    fx_series(fx->path[0], g0, 1, 120, 0);
    fx_series(fx->path[1], g1, 1, 120, 0);
    char a[4200], b[4200];
    snprintf(a, sizeof a, "AdamW=%s", fx->path[0]);
    snprintf(b, sizeof b, "RV-AdamW=%s", fx->path[1]);
    const char *in[] = {a, b};
    draw(fx, "transient", in, 2, NULL, 2, 240);
    char data[4400];
    snprintf(data, sizeof data, "%s/out/transient.dat", fx->dir);
    char *text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "\"step\" \"AdamW\""));
    assert_non_null(strstr(text, "\"step\" \"RV-AdamW\""));
    assert_non_null(strstr(text, "synthetic test series")); /* the inputs' '#' lines */
    free(text);
    /* One group is not a comparison. */
    const char *one[] = {fx->path[0]};
    char out[4200];
    snprintf(out, sizeof out, "%s/out", fx->dir);
    roteq_plot_options o = {.out_dir = out};
    assert_int_equal(roteq_plot("transient", one, 1, &o, NULL, 0), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "two or more"));
}

/* Read the numbers of data row `row` (0-based, counting data rows of all blocks). */
static void data_row(const char *path, size_t row, double *v, size_t nv)
{
    char *b = roteq_test_read_file(path, NULL);
    assert_non_null(b);
    size_t k = 0;
    int found = 0;
    for (char *line = strtok(b, "\n"); line && !found; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == '"')
            continue;
        if (k++ != row)
            continue;
        char *p = line;
        for (size_t i = 0; i < nv; i++) {
            while (*p == ' ')
                p++;
            if (*p == '"') { /* a string column (tick label): not counted */
                char *q = strchr(p + 1, '"');
                assert_non_null(q);
                p = q + 1;
                i--;
                continue;
            }
            v[i] = strtod(p, &p);
        }
        found = 1;
    }
    free(b);
    assert_true(found);
}

static void test_equilibrium_source(void **state)
{
    fixture *fx = *state;
    /* Without eq_* columns: the prediction at the last step of the whole run, also when
     * --max-step draws only the beginning; the legend says so. fx_series: pred_norm(s) =
     * eq + (2.5 - eq) exp(-s / (0.2 T)), eq = 1.3 for group 0. */
    const char *g0[] = {"adamw"}, *g1[] = {"rv_adamw"};
    fx_series(fx->path[0], g0, 1, 200, 0);
    fx_series(fx->path[1], g1, 1, 200, 0);
    const char *in[] = {fx->path[0], fx->path[1]};
    roteq_plot_options o = {.max_step = 30};
    draw(fx, "transient", in, 2, &o, 2, 60);
    char data[4400];
    snprintf(data, sizeof data, "%s/out/transient.dat", fx->dir);
    double v[7];
    data_row(data, 0, v, 7);
    double last = 1.3 + 1.2 * exp(-200.0 / 40.0), first = 1.3 + 1.2 * exp(-1.0 / 40.0);
    assert_close(v[0], 1.0, 0);
    assert_close(v[4], first / last, 1e-12); /* pred_norm / equilibrium at step 1 */
    o = (roteq_plot_options){.max_step = 30};
    draw(fx, "norm", in, 2, &o, 2, 60);
    snprintf(data, sizeof data, "%s/out/norm.dat", fx->dir);
    data_row(data, 0, v, 6);
    assert_close(v[5], last, 1e-12);
    char *text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "'prediction at the last step'"));
    free(text);

    /* With eq_norm/eq_angle columns they are the equilibrium. */
    roteq_test_write_file(fx->path[2],
                          "step,group,norm_mean,norm_q05,norm_q95,pred_norm,eq_norm,eq_angle\n"
                          "1,a,2,1.9,2.1,2.05,1.25,0.01\n2,a,1.8,1.7,1.9,1.85,1.25,0.01\n"
                          "3,a,1.6,1.5,1.7,1.65,1.25,0.01\n");
    const char *eq[] = {fx->path[2]};
    o = (roteq_plot_options){.name = "norm_eq"};
    draw(fx, "norm", eq, 1, &o, 1, 3);
    snprintf(data, sizeof data, "%s/out/norm_eq.dat", fx->dir);
    data_row(data, 2, v, 6);
    assert_close(v[5], 1.25, 0);
    text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, " equilibrium\n")); /* the legend argument */
    free(text);

    /* Per quantity and group: an empty eq_norm (what `roteq simulate` writes for a rotational
     * variant, whose norm theory does not predict) falls back to that group's last pred_norm,
     * while its eq_angle still comes from the column. */
    roteq_test_write_file(fx->path[3],
                          "step,group,angle_rms,angle_q05,angle_q95,pred_angle,norm_mean,norm_q05,"
                          "norm_q95,pred_norm,eq_norm,eq_angle\n"
                          "1,a,0.02,0.01,0.03,0.021,2,1.9,2.1,2.05,1.25,0.01\n"
                          "2,a,0.015,0.01,0.02,0.016,1.8,1.7,1.9,1.85,1.25,0.01\n"
                          "1,rv,0.008,0.007,0.009,0.009,1,1,1,1.1,,0.009\n"
                          "2,rv,0.009,0.008,0.010,0.009,1,1,1,0.9,,0.009\n");
    const char *mixed[] = {fx->path[3]};
    o = (roteq_plot_options){.name = "mixed_tr"};
    draw(fx, "transient", mixed, 1, &o, 2, 4);
    snprintf(data, sizeof data, "%s/out/mixed_tr.dat", fx->dir);
    data_row(data, 3, v, 7); /* rv, step 2 */
    assert_close(v[1], 0.009 / 0.009, 1e-15);
    assert_close(v[3], 1.0 / 0.9, 1e-15); /* norm relative to the last pred_norm */
    data_row(data, 0, v, 7);              /* a, step 1 */
    assert_close(v[1], 0.02 / 0.01, 1e-15);
    assert_close(v[3], 2.0 / 1.25, 1e-15);
    text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "equilibrium norm 1.25 (eq_norm column), angular update 0.01 "
                                 "(eq_angle column)"));
    assert_non_null(strstr(text, "equilibrium norm 0.90000000000000002 (prediction at the last "
                                 "step), angular update 0.0089999999999999993 (eq_angle column)"));
    free(text);
    /* The norm figure's legend names the weaker source; the angle figure's is the column. */
    o = (roteq_plot_options){.name = "mixed_norm"};
    draw(fx, "norm", mixed, 1, &o, 2, 4);
    snprintf(data, sizeof data, "%s/out/mixed_norm.dat", fx->dir);
    text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "'prediction at the last step'"));
    free(text);
    data_row(data, 3, v, 6);
    assert_close(v[5], 0.9, 0);
    o = (roteq_plot_options){.name = "mixed_angle"};
    draw(fx, "angle", mixed, 1, &o, 2, 4);
    snprintf(data, sizeof data, "%s/out/mixed_angle.dat", fx->dir);
    text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, " equilibrium\n"));
    free(text);
    data_row(data, 3, v, 6);
    assert_close(v[5], 0.009, 0);
}

static void test_histogram(void **state)
{
    fixture *fx = *state;
    fx_per_neuron(fx->path[0], 3, 64, 0.05, 11);
    const char *in[] = {fx->path[0]};
    /* 3 layers, 62 usable neurons each: ceil(sqrt(62)) = 8 bins per panel. */
    draw(fx, "histogram", in, 1, NULL, 3, 24);
    char data[4400];
    snprintf(data, sizeof data, "%s/out/histogram.dat", fx->dir);
    char *text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "n=62"));
    assert_non_null(strstr(text, "(2 excluded)"));
    assert_non_null(strstr(text, "linear"));
    free(text);
    /* SVG works for the multi-panel figures too. */
    roteq_plot_options svg = {.format = "svg", .name = "histogram_svg"};
    draw(fx, "histogram", in, 1, &svg, 3, 24);
    /* A wide spread gives log-spaced bins. */
    fx_per_neuron(fx->path[1], 2, 400, 1.5, 5);
    const char *wide[] = {fx->path[1]};
    roteq_plot_options o = {.name = "wide"};
    draw(fx, "histogram", wide, 1, &o, 2, 40);
    snprintf(data, sizeof data, "%s/out/wide.dat", fx->dir);
    text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "log-spaced"));
    free(text);
}

static void test_balance_layers(void **state)
{
    fixture *fx = *state;
    fx_per_neuron(fx->path[0], 4, 40, 0.05, 1);
    fx_per_neuron(fx->path[1], 4, 40, 0.8, 2);
    char a[4200], b[4200];
    snprintf(a, sizeof a, "AdamW=%s", fx->path[0]);
    snprintf(b, sizeof b, "Adam+L2=%s", fx->path[1]);
    const char *in[] = {a, b};
    draw(fx, "balance", in, 2, NULL, 2, 8);
    roteq_plot_options o = {.log_y = 1, .name = "balance_log"};
    draw(fx, "balance", in, 2, &o, 2, 8);
    /* Series CSVs whose groups are layers (roteq analyze --series) work the same way. */
    const char *layers[] = {"conv1", "conv2", "fc"};
    fx_series(fx->path[2], layers, 3, 60, 0);
    const char *series[] = {fx->path[2]};
    o = (roteq_plot_options){.name = "balance_series"};
    draw(fx, "balance", series, 1, &o, 1, 3);
}

static void test_balance_neurons(void **state)
{
    fixture *fx = *state;
    fx_per_neuron(fx->path[0], 1, 50, 0.05, 3);
    fx_per_neuron(fx->path[1], 1, 50, 0.9, 4);
    const char *in[] = {fx->path[0], fx->path[1]};
    /* One layer per run: neurons sorted, 48 usable neurons each. */
    draw(fx, "balance", in, 2, NULL, 2, 96);
    const char *one[] = {fx->path[0]};
    assert_int_equal(roteq_plot("balance", one, 1, NULL, NULL, 0), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "one layer"));
}

static void test_verify(void **state)
{
    fixture *fx = *state;
    fx_verify(fx->path[0], 4);
    const char *in[] = {fx->path[0]};
    /* 3 optimizers x 4 rows, one ERROR row skipped. */
    draw(fx, "verify", in, 1, NULL, 3, 11);
    char data[4400];
    snprintf(data, sizeof data, "%s/out/verify.dat", fx->dir);
    char *text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "11 points drawn, 1 rows skipped"));
    assert_non_null(strstr(text, " 1 0 ")); /* an APPROX row */
    assert_non_null(strstr(text, " 0 1 ")); /* a FAIL row */
    free(text);
    /* The first adamw row: measured = 1.002 x predicted norm, 1.003 x predicted angle. */
    double v[12];
    data_row(data, 0, v, 12);
    assert_close(v[10], 0.2, 1e-9);
    assert_close(v[11], 0.3, 1e-9);
}

/* Figure 7 from three summaries given out of order: one block, rows sorted by momentum, the
 * errors 100 (predicted/measured - 1) and 95% intervals computed from the summaries, the command
 * that wrote each summary in the '#' lines, and the error panels' range passed to the script. */
static void test_muon(void **state)
{
    fixture *fx = *state;
    char paths[3][4200];
    const double m[3] = {0.9, 0, 0.5};
    const char *in[3];
    for (int i = 0; i < 3; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/m%d.json", fx->dir, i);
        fx_muon(paths[i], m[i], 64);
        in[i] = paths[i];
    }
    draw(fx, "muon", in, 3, NULL, 1, 3);
    char data[4400];
    snprintf(data, sizeof data, "%s/out/muon.dat", fx->dir);
    const double sorted[3] = {0, 0.5, 0.9};
    for (size_t r = 0; r < 3; r++) {
        double v[22];
        data_row(data, r, v, 22);
        double norm = 0.3 / sqrt(1.0 - sorted[r]), angle = 0.06 * sqrt(1.0 - sorted[r]);
        assert_close(v[0], sorted[r], 0);
        assert_close(v[1], 1.0 / (1.0 - sorted[r]), 1e-15);
        assert_close(v[2], norm, 1e-15);
        assert_close(v[3], norm * (1 - 1.96e-3), 1e-15); /* 95% interval */
        assert_close(v[5], 1.004 * norm, 1e-15);
        assert_close(v[8], angle, 1e-15);
        assert_close(v[14], 0.4, 1e-9);                      /* best norm error, % */
        assert_close(v[15], 100 * (0.3 / norm - 1), 1e-9);   /* plain */
        assert_close(v[16], -3, 1e-9);                       /* lionlike */
        assert_close(v[17], 0.196, 1e-9);                    /* interval half-width */
        assert_close(v[18], -0.3, 1e-9);                     /* best angle error */
        assert_close(v[19], 100 * (0.06 / angle - 1), 1e-9); /* plain */
        assert_close(v[20], 5, 1e-9);                        /* lionlike */
    }
    char *text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "#   roteq simulate --optimizer muon --shape 64x64 --lr 0.02 "
                                 "--weight-decay 0.1 --momentum 0.5 --ns-steps 5 --adjust-lr "
                                 "original --eps 1e-07 --matrices 8 --steps 4000 --seed 41"));
    assert_non_null(strstr(text, " \"0.9\" "));
    /* title, setting, x range, error range 2 (best's 0.4% + 0.2% interval, x 1.5, up to 2) */
    assert_non_null(strstr(text, "'64x64, lr 0.02, weight decay 0.1, Nesterov, ns_steps 5' "));
    assert_non_null(strstr(text, " 2\n"));
    free(text);
}

/* Rewrite the first `from` in the file at `path` to `to`. */
static void rewrite(const char *path, const char *from, const char *to)
{
    char *text = roteq_test_read_file(path, NULL);
    char *at = strstr(text, from);
    assert_non_null(at);
    char *out = malloc(strlen(text) + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    roteq_test_write_file(path, out);
    free(out);
    free(text);
}

/* Every bad summary is refused with one message naming the file (and line and column for bad
 * JSON), and nothing is written. */
static void test_muon_errors(void **state)
{
    fixture *fx = *state;
    char out[4200], a[4200], b[4200];
    snprintf(out, sizeof out, "%s/err", fx->dir);
    snprintf(a, sizeof a, "%s/a.json", fx->dir);
    snprintf(b, sizeof b, "%s/b.json", fx->dir);
    roteq_plot_options o = {.out_dir = out};
    const char *in[] = {a, b};
    static const struct {
        const char *from, *to; /* in a.json (momentum 0); NULL: the text below instead */
        const char *text;
        int b_rows; /* b.json: momentum 0.5, rows x 64 */
        double b_momentum;
        size_t n;
        int status;
        const char *msg;
    } cases[] = {
        {NULL, NULL, "{\"optimizer\": \"muon\",\n \"hparams\": }\n", 64, 0.5, 2, ROTEQ_EFORMAT,
         "a.json:2:13: not a JSON summary"},
        {NULL, NULL, "step,row_norm\n1,2\n", 64, 0.5, 2, ROTEQ_EFORMAT,
         "a.json:1:4: not a JSON summary: '[' or '{' expected near 'step'"},
        {NULL, NULL, "[1, 2]\n", 64, 0.5, 2, ROTEQ_EFORMAT, "the top level is not an object"},
        {NULL, NULL, "{\"optimizer\": \"muon\", \"seed\": 1, \"seed\": 2}", 64, 0.5, 2,
         ROTEQ_EFORMAT, "duplicate object key"},
        {NULL, NULL, "{\"optimizer\": \"adamw\", \"hparams\": {\"lr\": 0.001}}", 64, 0.5, 2,
         ROTEQ_EFORMAT, "a.json: optimizer 'adamw': roteq plot muon reads"},
        {"\"predicted_angular_update_plain\"", "\"other\"", NULL, 64, 0.5, 2, ROTEQ_ENOTFOUND,
         "a.json: no key 'predicted_angular_update_plain'"},
        {"\"momentum\": 0,", "\"momentum\": 1.5,", NULL, 64, 0.5, 2, ROTEQ_EFORMAT,
         "a.json: momentum 1.5 is not in [0, 1)"},
        {"\"predicted_angular_update_plain\": 0.06", "\"predicted_angular_update_plain\": -0.06",
         NULL, 64, 0.5, 2, ROTEQ_EFORMAT,
         "a.json: predicted_angular_update_plain is '-0.06', not a positive number"},
        {"\"predicted_norm_plain\": 0.3,", "\"predicted_norm_plain\": \"big\",", NULL, 64, 0.5, 2,
         ROTEQ_EFORMAT, "a.json:1: column 'predicted_norm_plain': 'big' is not a number"},
        {NULL, NULL, NULL, 128, 0.5, 2, ROTEQ_EINVAL,
         "b.json: hparams.shape.0 128 differs from 64 in"},
        {NULL, NULL, NULL, 64, 0, 2, ROTEQ_EINVAL, "momentum 0 is also the momentum of"},
        {NULL, NULL, NULL, 64, 0.5, 1, ROTEQ_EINVAL, "needs two or more summaries, got one"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_muon(a, 0, 64);
        if (cases[i].text)
            roteq_test_write_file(a, cases[i].text);
        else if (cases[i].from)
            rewrite(a, cases[i].from, cases[i].to);
        fx_muon(b, cases[i].b_momentum, cases[i].b_rows);
        int status = roteq_plot("muon", in, cases[i].n, &o, NULL, 0);
        const char *msg = roteq_error_message();
        if (status != cases[i].status || strstr(msg, cases[i].msg) == NULL)
            print_error("case %zu: status %d, message: %s\n", i, status, msg);
        assert_int_equal(status, cases[i].status);
        assert_non_null(strstr(msg, cases[i].msg));
        assert_null(strchr(msg, '\n'));
        assert_int_equal(fx_count_entries(out), 0); /* nothing half-written */
    }
    const char *missing[] = {a, "/nonexistent/m.json"};
    assert_int_equal(roteq_plot("muon", missing, 2, &o, NULL, 0), ROTEQ_EIO);
    assert_non_null(strstr(roteq_error_message(), "cannot read '/nonexistent/m.json'"));
}

static void test_nan_and_single_point(void **state)
{
    fixture *fx = *state;
    const char *groups[] = {"adamw", "lion"};
    fx_series(fx->path[0], groups, 2, 60, 7);
    const char *in[] = {fx->path[0]};
    draw(fx, "angle", in, 1, NULL, 2, 120);
    char data[4400];
    snprintf(data, sizeof data, "%s/out/angle.dat", fx->dir);
    char *text = roteq_test_read_file(data, NULL);
    assert_non_null(strstr(text, "NaN")); /* missing values stay missing, drawn as gaps */
    free(text);

    fx_series(fx->path[1], groups, 1, 1, 0);
    const char *single[] = {fx->path[1]};
    char out[4200];
    snprintf(out, sizeof out, "%s/single", fx->dir);
    roteq_plot_options o = {.out_dir = out};
    assert_int_equal(roteq_plot("norm", single, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "1 recorded step; a curve needs two or more"));
    assert_int_equal(fx_count_entries(out), 0); /* nothing half-written */

    /* Every measured value missing. */
    fx_series(fx->path[2], groups, 1, 5, 1);
    const char *allnan[] = {fx->path[2]};
    assert_int_equal(roteq_plot("angle", allnan, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "no finite angle value"));

    /* A single neuron per layer still draws a histogram. */
    roteq_test_write_file(fx->path[3], "layer,neuron,norm,angular_update,pred_norm,pred_angle,"
                                       "ratio,status\nfc,0,1.2,0.0105,1.2,0.01,1.05,ok\n");
    const char *one[] = {fx->path[3]};
    draw(fx, "histogram", one, 1, NULL, 1, 8);
}

static void test_input_errors(void **state)
{
    fixture *fx = *state;
    char out[4200];
    snprintf(out, sizeof out, "%s/err", fx->dir);
    roteq_plot_options o = {.out_dir = out};
    const char *in[] = {fx->path[0]};

    roteq_test_write_file(fx->path[0], "# c\nstep,group,norm_mean\n1,a,1\n2,a,1\n");
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_ENOTFOUND);
    assert_non_null(strstr(roteq_error_message(), "no column 'norm_q05'"));
    assert_non_null(strstr(roteq_error_message(), "columns: step,group,norm_mean"));

    roteq_test_write_file(fx->path[0], "step,group,angle_rms,angle_q05,angle_q95,pred_angle\n"
                                       "1,a,0.1,0.1,0.1,0.1\n2,a,0.1x,0.1,0.1,0.1\n");
    assert_int_equal(roteq_plot("angle", in, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(
        strstr(roteq_error_message(), ":3: column 'angle_rms': '0.1x' is not a number"));

    roteq_test_write_file(fx->path[0], "step,group\n1,a,3\n");
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), ":2: 3 fields, the header has 2"));

    roteq_test_write_file(fx->path[0], "step,\"group\n1,a\n");
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "unterminated quote"));

    roteq_test_write_file(fx->path[0], "{\"index\":0,\"optimizer\":\"adamw\"}\n");
    assert_int_equal(roteq_plot("verify", in, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), ":1: this is JSON"));

    roteq_test_write_file(fx->path[0], "# only comments\n");
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "no header line"));

    const char *missing[] = {"/nonexistent/series.csv"};
    assert_int_equal(roteq_plot("norm", missing, 1, &o, NULL, 0), ROTEQ_EIO);
    assert_non_null(strstr(roteq_error_message(), "cannot read '/nonexistent/series.csv'"));

    assert_int_equal(roteq_plot("pie", in, 1, &o, NULL, 0), ROTEQ_ENOTFOUND);
    assert_non_null(strstr(roteq_error_message(), "unknown figure kind 'pie'"));
    assert_int_equal(roteq_plot("norm", in, 0, &o, NULL, 0), ROTEQ_EINVAL);
    roteq_plot_options bad = {.out_dir = out, .format = "jpeg"};
    assert_int_equal(roteq_plot("norm", in, 1, &bad, NULL, 0), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "'jpeg' is not png or svg"));
    bad = (roteq_plot_options){.out_dir = out, .name = "a/b"};
    assert_int_equal(roteq_plot("norm", in, 1, &bad, NULL, 0), ROTEQ_EINVAL);
    bad = (roteq_plot_options){.out_dir = fx->path[0]}; /* a file, not a folder */
    assert_int_equal(roteq_plot("norm", in, 1, &bad, NULL, 0), ROTEQ_EIO);

    /* Per-neuron input without any usable neuron, verify rows without usable points. */
    roteq_test_write_file(fx->path[1], "layer,neuron,angular_update,pred_angle,ratio,status\n"
                                       "fc,0,0,0.01,0,dead\n");
    const char *dead[] = {fx->path[1]};
    assert_int_equal(roteq_plot("histogram", dead, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "no neuron with status ok"));
    roteq_test_write_file(fx->path[1], "optimizer,pred_norm,norm,pred_angle,angle,status\n"
                                       "adamw,,,,,ERROR\n");
    assert_int_equal(roteq_plot("verify", dead, 1, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "no row with a positive prediction"));
    roteq_test_write_file(fx->path[1], "layer,x\nfc,1\n");
    const char *odd[] = {fx->path[1], fx->path[1]};
    assert_int_equal(roteq_plot("balance", odd, 2, &o, NULL, 0), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "neither a per-neuron CSV"));
}

static void test_gnuplot_missing(void **state)
{
    fixture *fx = *state;
    const char *groups[] = {"adamw"};
    fx_series(fx->path[0], groups, 1, 30, 0);
    const char *in[] = {fx->path[0]};
    char out[4200];
    snprintf(out, sizeof out, "%s/nognuplot", fx->dir);
    roteq_plot_options o = {.out_dir = out};
    char *path = strdup(getenv("PATH"));
    setenv("PATH", fx->dir, 1); /* a folder without gnuplot */
    int status = roteq_plot("norm", in, 1, &o, NULL, 0);
    setenv("PATH", path, 1);
    free(path);
    assert_int_equal(status, ROTEQ_ERUNTIME);
    assert_non_null(strstr(roteq_error_message(), "gnuplot not found"));
    assert_non_null(strstr(roteq_error_message(), "gnuplot-nox"));
    /* The data file is kept (the numbers and the command to draw them), no figure, no temp. */
    assert_int_equal(fx_count_entries(out), 1);

    setenv("ROTEQ_GNUPLOT", "/bin/false", 1);
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_ERUNTIME);
    assert_non_null(strstr(roteq_error_message(), "gnuplot failed"));
    assert_int_equal(fx_count_entries(out), 1);
    setenv("ROTEQ_GNUPLOT", "/bin/true", 1); /* exits 0 but draws nothing */
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_ERUNTIME);
    assert_non_null(strstr(roteq_error_message(), "no figure written"));
    assert_int_equal(fx_count_entries(out), 1);
    unsetenv("ROTEQ_GNUPLOT");
}

static void test_scripts_dir(void **state)
{
    fixture *fx = *state;
    const char *groups[] = {"adamw"};
    fx_series(fx->path[0], groups, 1, 30, 0);
    const char *in[] = {fx->path[0]};
    char out[4200];
    snprintf(out, sizeof out, "%s/dir", fx->dir);
    roteq_plot_options o = {.out_dir = out};
    setenv("ROTEQ_PLOTS_DIR", fx->dir, 1);
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_ENOTFOUND);
    assert_non_null(strstr(roteq_error_message(), "holds no style.gp"));
    /* The source folder named explicitly works like the built-in default. */
    char src[4200];
    snprintf(src, sizeof src, "%s/plots", roteq_test_source_dir());
    setenv("ROTEQ_PLOTS_DIR", src, 1);
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_OK);
    unsetenv("ROTEQ_PLOTS_DIR");
    /* A script error surfaces gnuplot's own message: a copy of the scripts with a broken one. */
    char bad[4200], cmd[20000];
    snprintf(bad, sizeof bad, "%s/badplots", fx->dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cp '%s'/*.gp '%s' && echo 'plot nosuchvar' >> '%s/series.gp'", bad,
             src, bad, bad);
    assert_int_equal(system(cmd), 0);
    setenv("ROTEQ_PLOTS_DIR", bad, 1);
    assert_int_equal(roteq_plot("norm", in, 1, &o, NULL, 0), ROTEQ_ERUNTIME);
    assert_non_null(strstr(roteq_error_message(), "gnuplot failed"));
    assert_non_null(strstr(roteq_error_message(), "undefined variable"));
    unsetenv("ROTEQ_PLOTS_DIR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_norm_and_angle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_norm_many_groups_panels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_layers_by_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equilibrium_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_balance_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_balance_neurons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_muon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_muon_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_and_single_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gnuplot_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scripts_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
