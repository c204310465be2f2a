/* cmd_verify.c - `roteq verify [--quick]`: every optimizer's equilibrium formula against
 * simulation, through the sweep machinery (one roteq_sim_run per grid point, same rows as
 * `roteq sweep`, MPI when started by mpirun).
 *
 * The grid is built in here (print it with --print-grid; run it with `roteq sweep` to get the
 * same rows). Its points are chosen so that each run measures an equilibrium and not a
 * transient, and so that the corrections the exact formulas leave out (order eta*lambda,
 * 1 - beta2 and 1/C) stay below the standard error; sweep/README.md gives the reasoning and the
 * measurements behind the choice. The PASS rule: an exact formula passes when both predicted
 * quantities lie within --tolerance (4) standard errors of the measurement. Approximate
 * formulas (Adam+L2, Lion with momentum) are APPROX with their measured error; for Lion all
 * three predictions (best, paper, plain) are shown. */
#include "roteq_cli.h"
#include "roteq_plots.h"
#include "roteq_sweep.h"
#include "roteq_theory.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Why these points (measurements in sweep/README.md):
 * - each family's groups come from its file (families/<family>.c, verify_groups), chosen so
 *   that each run measures an equilibrium and not a transient;
 * - steps >= 4/(eta*lambda_eff): the last quarter, where measurements are taken, starts a full
 *   relaxation time after the start, although runs start at the predicted norm;
 * - hyperparameters are PyTorch's defaults where they have one; C = 64, 128 and 256;
 * - the PASS rule allows, besides 4 SE, the corrections the exact formulas leave out
 *   (roteq_sweep_model_floor): at the full grid's standard errors AdamW's norm shows its
 *   O(1 - beta2) correction (-0.1% at beta2 = 0.999) and the rotational variants their
 *   O((1 - update_norm_decay)/C) one.
 * Writes the grid text into buf; -1 if it does not fit. */
static int verify_grid(char *buf, size_t n, uint64_t seed, size_t neurons, size_t steps)
{
    int len = snprintf(buf, n,
                       "{\"seed\": %llu, \"name\": \"roteq verify\",\n"
                       " \"fixed\": {\"neurons\": %zu, \"dim\": 128, \"steps\": %zu},\n"
                       " \"groups\": [",
                       (unsigned long long)seed, neurons, steps);
    const char *sep = "\n  ";
    for (int i = 0; len >= 0 && (size_t)len < n && i < ROTEQ_OPT_COUNT; i++) {
        const roteq_family *f = roteq_optimizers[i]->family;
        int first = 1; /* each family once, where its first optimizer is listed */
        for (int j = 0; j < i; j++)
            first = first && roteq_optimizers[j]->family != f;
        if (!first || f->verify_groups == NULL)
            continue;
        len += snprintf(buf + len, n - (size_t)len, "%s%s", sep, f->verify_groups);
        sep = ",\n  ";
    }
    if (len >= 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, "\n ]}\n");
    return len >= 0 && (size_t)len < n ? 0 : -1;
}

static void usage(FILE *out)
{
    fputs(
        "usage: roteq verify [--quick] [--out FILE] [--format csv|json] [--plot DIR]\n"
        "                    [--seed S] [--tolerance K] [--jobs J] [--threads K] [--print-grid]\n\n"
        "Simulate every optimizer at several (lr, weight decay, betas/momentum, C) points,\n"
        "including Lion at betas (0,0), (0.5,0.9), (0.9,0.99), (0.95,0.98), and compare the\n"
        "measured equilibrium norm and angular update (95% confidence intervals from the\n"
        "simulator's standard errors) with theory. Verdicts: PASS / FAIL for exact formulas\n"
        "(PASS when both lie within K standard errors), APPROX for approximations (with their\n"
        "measured error), UNKNOWN without a prediction, ERROR when a run failed.\n\n"
        "Options:\n"
        "  --quick           the small grid (under a minute on 2 cores; part of the tests)\n"
        "  --out FILE        also write the rows (the format of roteq sweep --out)\n"
        "  --format F        csv (default) or json, for --out\n"
        "  --plot DIR        draw the verification figure into DIR (rows go to DIR/verify.csv\n"
        "                    unless --out is given)\n"
        "  --seed S          grid seed (default 20240723)\n"
        "  --tolerance K     PASS rule in standard errors (default 4)\n"
        "  --jobs J, --threads K   as in roteq sweep\n"
        "  --print-grid      print the grid as a roteq sweep GRID file and exit\n\n"
        "Exit status: 0 every exact formula passed; 1 a FAIL, ERROR or UNKNOWN row; 2 usage.\n",
        out);
}

typedef struct {
    roteq_sweep_record *recs;
    roteq_sweep_out *out;
    int write_failed;
} verify_ctx;

static int verify_sink(void *ctx, const roteq_sweep_point *p, const roteq_sweep_record *rec)
{
    verify_ctx *v = ctx;
    v->recs[p->index] = *rec;
    if (v->out && roteq_sweep_out_write(v->out, p, rec)) {
        v->write_failed = 1;
        return ROTEQ_EIO;
    }
    return 0;
}

/* "lr=0.001 wd=0.1 b1=0.9 b2=0.999": the hyperparameters that set the equilibrium. */
static void settings(char *buf, size_t n, const roteq_sweep_point *p)
{
    const roteq_hparams *h = &p->cfg.hp;
    const roteq_optimizer_type *opt = p->cfg.opt;
    int len = snprintf(buf, n, "lr=%g wd=%g", h->lr, h->weight_decay);
    if (opt && (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_MOMENTUM)) && len >= 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, " mom=%g", h->momentum);
    if (opt && (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_BETA1)) && len >= 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, " b1=%g b2=%g", h->beta1, h->beta2);
}

static void print_pct(double x)
{
    if (isfinite(x))
        printf(" %+7.3f%%", 100 * x);
    else
        printf(" %8s", "-");
}

static void print_quantity(double pred, double meas, double se)
{
    if (isfinite(pred))
        printf(" %10.5g", pred);
    else
        printf(" %10s", "-");
    if (isfinite(meas))
        printf(" %10.5g +-%9.2g", meas, ROTEQ_SWEEP_CI_Z * se);
    else
        printf(" %10s   %9s", "-", "");
    print_pct(roteq_sweep_rel_err(meas, pred));
    double z = roteq_sweep_z(meas, pred, se);
    if (isfinite(z))
        printf(" %6.1f", z);
    else
        printf(" %6s", "-");
}

static void print_table(const roteq_sweep_grid *g, const roteq_sweep_record *recs, double tolerance,
                        double wall, int ranks)
{
    printf("roteq verify: %zu points, seed %llu; an exact formula PASSes when "
           "|measured - predicted| <= %g SE + f*|predicted| for each predicted quantity,\n"
           "f = lr*wd (+ 1-beta2 for Adam types, + (1-update_norm_decay)/C for RV-*): the order "
           "of the corrections it leaves out\n",
           g->npoints, (unsigned long long)g->seed, tolerance);
    printf("(measured: mean norm and RMS angular update over the last quarter of the steps, "
           "+- 95%% CI; err = relative error; z = error in standard errors)\n\n");
    printf("%3s %-9s %-32s %5s %4s %6s |%11s %24s %9s %6s |%11s %24s %9s %6s | %s\n", "#",
           "optimizer", "hyperparameters", "C", "N", "steps", "pred norm", "measured norm", "err",
           "z", "pred angle", "measured angle", "err", "z", "verdict");
    size_t count[ROTEQ_SWEEP_VERDICT_COUNT] = {0};
    for (size_t i = 0; i < g->npoints; i++) {
        roteq_sweep_point pt;
        const roteq_sweep_point *p = roteq_sweep_grid_point(g, i, &pt);
        const roteq_sweep_record *r = &recs[i];
        char hp[64];
        settings(hp, sizeof hp, p);
        printf("%3zu %-9s %-32s %5zu %4zu %6zu |", i, p->optimizer, hp, p->cfg.dim, p->cfg.neurons,
               p->cfg.steps);
        print_quantity(r->pred[ROTEQ_PRED_BEST].norm, r->norm, r->norm_se);
        printf(" |");
        print_quantity(r->pred[ROTEQ_PRED_BEST].angular_update, r->angle, r->angle_se);
        printf(" | %s\n", roteq_sweep_verdict_names[r->verdict]);
        count[r->verdict]++;
        if (r->verdict == ROTEQ_SWEEP_VERDICT_ERROR)
            printf("    %s\n", r->reason);
        /* The Lion family: the paper's and the plain prediction beside roteq's best. */
        if (p->cfg.opt && (p->cfg.opt->flags & ROTEQ_OPTF_SIGN) &&
            r->verdict != ROTEQ_SWEEP_VERDICT_ERROR)
            for (int k = ROTEQ_PRED_PAPER; k < ROTEQ_PRED_COUNT; k++) {
                const roteq_sweep_prediction *pr = &r->pred[k];
                printf("    %-5s %-38s %5s %4s %6s |", roteq_prediction_names[k],
                       pr->exact ? "(exact here)" : "(approximate)", "", "", "");
                print_quantity(pr->norm, r->norm, r->norm_se);
                printf(" |");
                print_quantity(pr->angular_update, r->angle, r->angle_se);
                printf(" |\n");
            }
    }
    printf("\n%zu PASS, %zu FAIL, %zu APPROX, %zu UNKNOWN, %zu ERROR; %d rank%s, wall %.1f s\n",
           count[ROTEQ_SWEEP_VERDICT_PASS], count[ROTEQ_SWEEP_VERDICT_FAIL],
           count[ROTEQ_SWEEP_VERDICT_APPROX], count[ROTEQ_SWEEP_VERDICT_UNKNOWN],
           count[ROTEQ_SWEEP_VERDICT_ERROR], ranks, ranks > 1 ? "s" : "", wall);
}

typedef struct {
    int quick, print_grid;
    const char *out_path, *plot_dir;
    roteq_format fmt;
    size_t jobs, threads;
    uint64_t seed;
    double tolerance;
} verify_args;

/* Options into `a`. Returns -1 to go on, else the exit status (0 after --help). */
static int parse_args(int argc, char **argv, int rank, verify_args *a)
{
    static const struct option opts[] = {
        {"quick", no_argument, NULL, 'q'},
        {"out", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {"plot", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 's'},
        {"tolerance", required_argument, NULL, 'k'},
        {"jobs", required_argument, NULL, 'j'},
        {"threads", required_argument, NULL, 't'},
        {"print-grid", no_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            a->quick = 1;
            break;
        case 'o':
            a->out_path = optarg;
            break;
        case 'f':
            if (roteq_cli_format("verify", optarg, "csv,json", &a->fmt))
                return ROTEQ_EXIT_USAGE;
            break;
        case 'P':
            a->plot_dir = optarg;
            break;
        case 's':
            if (roteq_parse_u64(optarg, &a->seed))
                return roteq_cli_fail("verify", "--seed: %s", roteq_error_message());
            break;
        case 'k':
            if (roteq_cli_double("verify", "tolerance", optarg, &a->tolerance))
                return ROTEQ_EXIT_USAGE;
            if (!(a->tolerance > 0))
                return roteq_cli_fail("verify", "--tolerance: must be positive, got %s", optarg);
            break;
        case 'j':
            if (roteq_cli_size("verify", "jobs", optarg, &a->jobs))
                return ROTEQ_EXIT_USAGE;
            if (a->jobs == 0 || a->jobs > 4096)
                return roteq_cli_fail("verify", "--jobs: must be in 1..4096, got %s", optarg);
            break;
        case 't':
            if (roteq_cli_size("verify", "threads", optarg, &a->threads))
                return ROTEQ_EXIT_USAGE;
            if (a->threads > 4096)
                return roteq_cli_fail("verify", "--threads: must be at most 4096, got %s", optarg);
            break;
        case 'g':
            a->print_grid = 1;
            break;
        case 'h':
            if (rank == 0)
                usage(stdout);
            return ROTEQ_EXIT_OK;
        case ':':
        default:
            roteq_cli_bad_option("verify", c, argv);
            return ROTEQ_EXIT_USAGE;
        }
    }
    if (optind != argc)
        return roteq_cli_fail("verify", "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* Every output checked before the run (exit 1 for one that cannot be written, 2 for one that
 * is another): --out FILE, and for --plot DIR the rows DIR/verify.csv (when --out is not
 * given), the figure and its data file, none of which may be the rows. */
static int check_outputs(verify_args *a, char **rows_path)
{
    if (a->plot_dir && a->out_path && a->fmt == ROTEQ_FORMAT_JSON)
        return roteq_cli_fail("verify", "--plot: the figure reads CSV rows; drop --format json");
    const char *flag = "--plot";
    int st = ROTEQ_OK;
    if (a->plot_dir) { /* first: it creates the folder the rows may go to */
        roteq_plot_options po = {.out_dir = a->plot_dir, .format = "png"};
        const char *rows[1] = {a->out_path};
        st = roteq_plot_check_outputs("verify", rows, a->out_path ? 1 : 0, &po);
        if (st == ROTEQ_OK && a->out_path == NULL) {
            size_t n = strlen(a->plot_dir) + sizeof "/verify.csv";
            if ((*rows_path = malloc(n)) == NULL)
                return roteq_cli_fail("verify", "out of memory");
            snprintf(*rows_path, n, "%s/verify.csv", a->plot_dir);
            a->out_path = *rows_path;
            a->fmt = ROTEQ_FORMAT_CSV; /* the figure reads CSV */
        }
    }
    if (st == ROTEQ_OK && a->out_path) {
        flag = *rows_path ? "--plot" : "--out";
        st = roteq_ofile_check(a->out_path, NULL, 0);
    }
    if (st == ROTEQ_OK)
        return ROTEQ_EXIT_OK;
    roteq_cli_fail("verify", "%s: %s", flag, roteq_error_message());
    return st == ROTEQ_EINVAL ? ROTEQ_EXIT_USAGE : ROTEQ_EXIT_FAIL;
}

/* The rows' output on rank 0 (--out, or DIR/verify.csv for --plot). Returns 1 when ready. */
static int open_rows(verify_args *a, int rank, const roteq_sweep_grid *g, unsigned char *skip,
                     verify_ctx *ctx, char **rows_path, int *code)
{
    if (rank != 0)
        return 1;
    if ((*code = check_outputs(a, rows_path)) != ROTEQ_EXIT_OK)
        return 0;
    if (a->out_path) {
        ctx->out = roteq_sweep_out_open(
            a->out_path, a->fmt == ROTEQ_FORMAT_JSON ? ROTEQ_SWEEP_JSON : ROTEQ_SWEEP_CSV, g, 0,
            a->quick ? "roteq verify --quick" : "roteq verify", skip);
        if (ctx->out == NULL) {
            *code = roteq_cli_fail_lib("verify", ROTEQ_EXIT_FAIL);
            return 0;
        }
    }
    return 1;
}

/* After the grid, on rank 0: the points of the optimizers the per-neuron sweep cannot run, those
 * with a matrix simulator (cmd_muon.c). Their rows join the grid's in the output, as points
 * after the grid's; their table goes into *text, printed after the per-neuron one. */
static int verify_matrix(const verify_args *a, const roteq_sweep_grid *g, verify_ctx *ctx,
                         char **text)
{
    size_t len = 0;
    FILE *t = open_memstream(text, &len);
    if (t == NULL)
        return roteq_cli_fail("verify", "out of memory");
    roteq_cli_matrix_verify_args m = {.quick = a->quick,
                                      .threads = (unsigned)a->threads,
                                      .seed = a->seed,
                                      .tolerance = a->tolerance,
                                      .out = ctx->out,
                                      .next_index = g->npoints,
                                      .text = t};
    int code = ROTEQ_EXIT_OK;
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++)
        if (roteq_sim_matrix_for(roteq_optimizers[i]) != NULL) {
            int rc = roteq_cli_matrix_verify(roteq_optimizers[i], &m);
            if (rc != ROTEQ_EXIT_OK)
                code = rc;
        }
    if (fclose(t) != 0 || *text == NULL)
        return roteq_cli_fail("verify", "out of memory");
    ctx->write_failed |= m.write_failed;
    return code;
}

/* After the run, on rank 0: the table, the matrix optimizers' table, the verdicts' exit status,
 * the figure. */
static int report(const verify_args *a, const roteq_sweep_grid *g, const roteq_sweep_record *recs,
                  double wall, int size, const char *matrix_text, int code)
{
    print_table(g, recs, a->tolerance, wall, size);
    fputs(matrix_text, stdout);
    for (size_t i = 0; i < g->npoints; i++)
        if (recs[i].verdict == ROTEQ_SWEEP_VERDICT_FAIL ||
            recs[i].verdict == ROTEQ_SWEEP_VERDICT_ERROR ||
            recs[i].verdict == ROTEQ_SWEEP_VERDICT_UNKNOWN)
            code = ROTEQ_EXIT_FAIL;
    if (a->plot_dir) {
        const char *inputs[] = {a->out_path};
        roteq_plot_options po = {.out_dir = a->plot_dir, .format = "png", .title = NULL};
        char figure[4096];
        if (roteq_plot("verify", inputs, 1, &po, figure, sizeof figure))
            code = roteq_cli_fail_lib("verify", ROTEQ_EXIT_FAIL);
        else
            fprintf(stderr, "roteq verify: figure %s\n", figure);
    }
    return code;
}

int roteq_cmd_verify(int argc, char **argv)
{
    int rank = 0, size = 1;
    if (roteq_sweep_mpi_init(&argc, &argv, &rank, &size))
        return roteq_cli_fail_lib("verify", ROTEQ_EXIT_USAGE);
    int code = ROTEQ_EXIT_USAGE;
    verify_args a = {.fmt = ROTEQ_FORMAT_CSV, .seed = 20240723, .tolerance = ROTEQ_SWEEP_TOLERANCE};
    roteq_sweep_grid *g = NULL;
    roteq_sweep_record *recs = NULL;
    unsigned char *skip = NULL;
    char *rows_path = NULL, *matrix_text = NULL;
    verify_ctx ctx = {0};
    int parsed = parse_args(argc, argv, rank, &a);
    if (parsed >= 0) {
        code = parsed;
        goto done;
    }

    /* The full grid is the quick one with more neurons and longer runs: smaller standard
     * errors, the same equilibria. */
    size_t neurons = a.quick ? 32 : 128, steps = a.quick ? 40000 : 160000;
    char text[8192];
    if (verify_grid(text, sizeof text, a.seed, neurons, steps)) {
        roteq_cli_fail("verify", "the grid does not fit in %zu bytes", sizeof text);
        goto done;
    }
    if (a.print_grid) {
        if (rank == 0)
            fputs(text, stdout);
        code = ROTEQ_EXIT_OK;
        goto done;
    }
    g = roteq_sweep_grid_parse(text, a.quick ? "verify --quick grid" : "verify grid");
    if (g == NULL) {
        code = roteq_cli_fail_lib("verify", ROTEQ_EXIT_FAIL);
        goto done;
    }
    recs = calloc(g->npoints, sizeof *recs);
    skip = calloc(g->npoints, 1);
    if (recs == NULL || skip == NULL) {
        roteq_cli_fail("verify", "out of memory");
        goto done;
    }
    ctx.recs = recs;
    if (!roteq_sweep_mpi_all(open_rows(&a, rank, g, skip, &ctx, &rows_path, &code))) {
        if (code == ROTEQ_EXIT_OK)
            code = ROTEQ_EXIT_USAGE; /* another rank failed */
        goto done;
    }

    roteq_sweep_options o = {.jobs = (unsigned)a.jobs,
                             .threads = (unsigned)a.threads,
                             .tolerance = a.tolerance,
                             .sink = verify_sink,
                             .sink_ctx = &ctx};
    double t0 = roteq_seconds();
    int st = roteq_sweep_run_mpi(g, NULL, &o);
    double wall = roteq_seconds() - t0;
    if (rank != 0) {
        code = ROTEQ_EXIT_OK;
        goto done;
    }
    int matrix_code = st ? ROTEQ_EXIT_OK : verify_matrix(&a, g, &ctx, &matrix_text);
    if (st || ctx.write_failed) {
        code = roteq_cli_fail_lib("verify", ROTEQ_EXIT_FAIL);
        goto done;
    }
    if (matrix_text == NULL) {
        code = matrix_code;
        goto done;
    }
    if (ctx.out) {
        st = roteq_sweep_out_close(ctx.out);
        ctx.out = NULL;
        if (st) {
            code = roteq_cli_fail_lib("verify", ROTEQ_EXIT_FAIL);
            goto done;
        }
    }
    code = report(&a, g, recs, wall, size, matrix_text, matrix_code);
done:
    free(matrix_text);
    roteq_sweep_out_abandon(ctx.out);
    free(rows_path);
    free(skip);
    free(recs);
    roteq_sweep_grid_free(g);
    roteq_sweep_mpi_finalize();
    return code;
}
