/* cmd_muon.c - `roteq theory` and `roteq simulate` for a matrix-granularity optimizer (Muon,
 * families/muon.c), and its rows of `roteq verify` and `roteq bench`.
 *
 * A matrix optimizer has hyperparameters the per-neuron table has no place for (the shape,
 * ns_steps, adjust_lr), so its two commands parse their own flags here, predict through the
 * family's matrix hooks (theory) and simulate through its matrix simulator (the family file's
 * sim part, roteq_sim_matrix_for); cmd_theory.c and cmd_simulate.c hand over when the optimizer
 * named by --optimizer has those hooks. The flags are Muon's, as the hooks are typed by its
 * hyperparameters. */
#include "roteq_cli.h"
#include "roteq_muon.h"
#include "roteq_sim.h"
#include "roteq_sim_muon.h"
#include "roteq_sweep.h"
#include "roteq_theory.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    OPT_OPTIMIZER = 1,
    OPT_LR,
    OPT_WD,
    OPT_MOMENTUM,
    OPT_NESTEROV,
    OPT_NO_NESTEROV,
    OPT_NS_STEPS,
    OPT_ADJUST,
    OPT_EPS,
    OPT_SHAPE,
    OPT_FORMAT,
    OPT_MATRICES,
    OPT_STEPS,
    OPT_SEED,
    OPT_THREADS,
    OPT_INIT_NORM,
    OPT_EVERY,
    OPT_SCHEDULE,
    OPT_WD_SCHEDULE,
    OPT_TRACE,
    OPT_NS_PRECISION,
    OPT_HELP,
};

const roteq_optimizer_type *roteq_cli_named_optimizer(int argc, char **argv)
{
    const char *name = NULL;
    for (int i = 1; i < argc && name == NULL; i++) {
        if (strncmp(argv[i], "--optimizer=", 12) == 0)
            name = argv[i] + 12;
        else if (strcmp(argv[i], "--optimizer") == 0 && i + 1 < argc)
            name = argv[i + 1];
    }
    return name ? roteq_optimizer_lookup(name) : NULL;
}

static void usage_hparams(FILE *out)
{
    fputs("  --shape ROWSxCOLS    the weight matrix (required); rows are the neurons\n"
          "  --lr X               learning rate (default 1e-3)\n"
          "  --weight-decay X     decoupled weight decay, applied with the unadjusted lr (0.1)\n"
          "  --momentum X         momentum in [0, 1) (0.95)\n"
          "  --no-nesterov        the buffer itself instead of the Nesterov lerp\n"
          "  --ns-steps K         Newton-Schulz iterations, 1..99 (5)\n"
          "  --adjust-lr F        original (lr*sqrt(max(1,rows/cols)), default) or\n"
          "                       match_rms_adamw (0.2*lr*sqrt(max(rows,cols)))\n"
          "  --eps X              Frobenius-norm floor before the iteration (1e-7)\n",
          out);
}

/* The flags both commands share; 1 if `c` was one of them, -1 on a bad value. */
static int hparam_flag(const char *cmd, int c, const char *arg, roteq_muon_hparams *hp)
{
    double v;
    size_t k;
    switch (c) {
    case OPT_LR:
        return roteq_cli_double(cmd, "lr", arg, &hp->lr) ? -1 : 1;
    case OPT_WD:
        return roteq_cli_double(cmd, "weight-decay", arg, &hp->weight_decay) ? -1 : 1;
    case OPT_MOMENTUM:
        return roteq_cli_double(cmd, "momentum", arg, &hp->momentum) ? -1 : 1;
    case OPT_EPS:
        return roteq_cli_double(cmd, "eps", arg, &hp->eps) ? -1 : 1;
    case OPT_NESTEROV:
        hp->nesterov = 1;
        return 1;
    case OPT_NO_NESTEROV:
        hp->nesterov = 0;
        return 1;
    case OPT_NS_STEPS:
        if (roteq_cli_size(cmd, "ns-steps", arg, &k))
            return -1;
        if (k < 1 || k > 99) {
            roteq_cli_fail(cmd, "--ns-steps: must be in 1..99, got %s", arg);
            return -1;
        }
        hp->ns_steps = (int)k;
        return 1;
    case OPT_ADJUST:
        if (roteq_muon_adjust_parse(arg, &hp->adjust)) {
            roteq_cli_fail(cmd, "--adjust-lr: %s", roteq_error_message());
            return -1;
        }
        return 1;
    case OPT_SHAPE:
        if (roteq_muon_shape_parse(arg, &hp->rows, &hp->cols)) {
            roteq_cli_fail(cmd, "--shape: %s", roteq_error_message());
            return -1;
        }
        return 1;
    default:
        (void)v;
        return 0;
    }
}

static int finish_hparams(const char *cmd, const roteq_optimizer_type *opt,
                          const roteq_muon_hparams *hp)
{
    if (hp->rows == 0)
        return roteq_cli_fail(cmd, "--shape ROWSxCOLS is required for %s", opt->name);
    if (opt->family->matrix->validate(hp))
        return roteq_cli_fail(cmd, "%s", roteq_error_message());
    return 0;
}

/* The flags both commands take (a table row each; clang-format keeps them one per line). */
#define COMMON_OPTS                                                                                \
    {"optimizer", required_argument, NULL, OPT_OPTIMIZER},                                         \
        {"lr", required_argument, NULL, OPT_LR},                                                   \
        {"weight-decay", required_argument, NULL, OPT_WD},                                         \
        {"momentum", required_argument, NULL, OPT_MOMENTUM},                                       \
        {"nesterov", no_argument, NULL, OPT_NESTEROV},                                             \
        {"no-nesterov", no_argument, NULL, OPT_NO_NESTEROV},                                       \
        {"ns-steps", required_argument, NULL, OPT_NS_STEPS},                                       \
        {"adjust-lr", required_argument, NULL, OPT_ADJUST},                                        \
        {"eps", required_argument, NULL, OPT_EPS}, {"shape", required_argument, NULL, OPT_SHAPE},  \
        {"format", required_argument, NULL, OPT_FORMAT},                                           \
        {"schedule", required_argument, NULL, OPT_SCHEDULE},                                       \
        {"wd-schedule", required_argument, NULL, OPT_WD_SCHEDULE},                                 \
        {"init-norm", required_argument, NULL, OPT_INIT_NORM},                                     \
        {"steps", required_argument, NULL, OPT_STEPS},                                             \
        {"every", required_argument, NULL, OPT_EVERY},                                             \
    {                                                                                              \
        "help", no_argument, NULL, OPT_HELP                                                        \
    }

/* --schedule, --wd-schedule, --init-norm, --steps, --every: 1 if `c` was one, -1 if bad. */
typedef struct {
    roteq_schedule lr, wd;
    double init_norm;
    size_t steps, every;
} run_flags;

static int run_flag(const char *cmd, int c, const char *arg, run_flags *f)
{
    switch (c) {
    case OPT_SCHEDULE:
        return roteq_cli_schedule(cmd, "schedule", arg, &f->lr) ? -1 : 1;
    case OPT_WD_SCHEDULE:
        return roteq_cli_schedule(cmd, "wd-schedule", arg, &f->wd) ? -1 : 1;
    case OPT_INIT_NORM:
        if (roteq_cli_double(cmd, "init-norm", arg, &f->init_norm))
            return -1;
        if (!(f->init_norm > 0 && isfinite(f->init_norm))) {
            roteq_cli_fail(cmd, "--init-norm: must be positive, got %s", arg);
            return -1;
        }
        return 1;
    case OPT_STEPS:
        return roteq_cli_size(cmd, "steps", arg, &f->steps) ? -1 : 1;
    case OPT_EVERY:
        return roteq_cli_size(cmd, "every", arg, &f->every) ? -1 : 1;
    default:
        return 0;
    }
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *hparams_json(const roteq_muon_hparams *hp)
{
    return json_pack("{s:o, s:o, s:o, s:b, s:i, s:o, s:s, s:[I,I]}", "lr", num(hp->lr),
                     "weight_decay", num(hp->weight_decay), "momentum", num(hp->momentum),
                     "nesterov", hp->nesterov, "ns_steps", hp->ns_steps, "eps", num(hp->eps),
                     "adjust_lr", roteq_muon_adjust_names[hp->adjust], "shape",
                     (json_int_t)hp->rows, (json_int_t)hp->cols);
}

static void theory_usage(FILE *out)
{
    fputs("usage: roteq theory --optimizer muon --shape ROWSxCOLS [--lr X] [--weight-decay X]\n"
          "                    [--momentum X] [--no-nesterov] [--ns-steps K]\n"
          "                    [--adjust-lr original|match_rms_adamw] [--format text|json]\n"
          "                    [--steps T [--every K] [--init-norm X] [--schedule S]\n"
          "                     [--wd-schedule S] [--format text|csv|json]]\n\n"
          "Muon's rotational equilibrium for a matrix whose rows are scale-invariant neurons:\n"
          "per row and for the whole matrix, three predictions (best, plain, lionlike;\n"
          "theory/README.md \"Muon\"). With --steps, the transient: the RMS row norm and angle at\n"
          "every step from --init-norm (default: best's norm) under the schedules.\n\n",
          out);
    usage_hparams(out);
}

static int theory_print(const roteq_muon_hparams *hp, const roteq_muon_equilibrium *eq,
                        roteq_format format)
{
    if (format == ROTEQ_FORMAT_JSON) {
        json_t *o = json_pack(
            "{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:s}", "optimizer",
            "muon", "hparams", hparams_json(hp), "equilibrium_norm", num(eq[0].norm),
            "angular_update", num(eq[0].angular_update), "equilibrium_norm_plain", num(eq[1].norm),
            "angular_update_plain", num(eq[1].angular_update), "equilibrium_norm_lionlike",
            num(eq[2].norm), "angular_update_lionlike", num(eq[2].angular_update), "matrix_norm",
            num(eq[0].matrix_norm), "matrix_angular_update", num(eq[0].matrix_angular_update),
            "update_row_sq", num(eq[0].q_row), "exact", eq[0].exact, "source", eq[0].source);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        fputc('\n', stdout);
        json_decref(o);
        return ROTEQ_EXIT_OK;
    }
    printf("optimizer      muon %zux%zu, lr %g, weight decay %g, momentum %g, %s, ns_steps %d, "
           "adjust_lr %s (adjusted lr %.6g)\n",
           hp->rows, hp->cols, hp->lr, hp->weight_decay, hp->momentum,
           hp->nesterov ? "nesterov" : "heavy ball", hp->ns_steps,
           roteq_muon_adjust_names[hp->adjust], roteq_muon_adjusted_lr(hp, hp->lr));
    printf("E||o_row||^2   %.6g\n", eq[0].q_row);
    printf("%-10s %12s %12s %12s %12s\n", "prediction", "row norm", "row angle", "matrix norm",
           "matrix angle");
    for (int i = 0; i < ROTEQ_MUON_PRED_COUNT; i++)
        printf("%-10s %12.6g %12.6g %12.6g %12.6g\n", roteq_muon_prediction_names[i], eq[i].norm,
               eq[i].angular_update, eq[i].matrix_norm, eq[i].matrix_angular_update);
    return ROTEQ_EXIT_OK;
}

/* The transient under schedules, one row every `every` steps (and the last). */
static int theory_trajectory(const roteq_matrix_hooks *mx, const roteq_muon_hparams *hp,
                             const run_flags *rf, double init, roteq_format format)
{
    if (rf->steps > 100000000)
        return roteq_cli_fail("theory", "--steps: at most 1e8, got %zu", rf->steps);
    roteq_muon_transient *tr = mx->transient_alloc(hp, init);
    if (!tr)
        return roteq_cli_fail_lib("theory", ROTEQ_EXIT_USAGE);
    json_t *rows = format == ROTEQ_FORMAT_JSON ? json_array() : NULL;
    if (format == ROTEQ_FORMAT_CSV)
        printf("step,lr,weight_decay,norm,angular_update\n");
    else if (format == ROTEQ_FORMAT_TEXT)
        printf("%10s %12s %12s %14s %14s\n", "step", "lr", "weight_decay", "row norm", "row angle");
    size_t every = rf->every ? rf->every : 1;
    for (size_t t = 1; t <= rf->steps; t++) {
        double lr = hp->lr * roteq_schedule_factor(&rf->lr, (long)t);
        double wd = hp->weight_decay * roteq_schedule_factor(&rf->wd, (long)t);
        double n, a;
        if (mx->transient_step(tr, lr, wd, &n, &a)) {
            mx->transient_free(tr);
            json_decref(rows);
            return roteq_cli_fail("theory", "step %zu: %s", t, roteq_error_message());
        }
        if (t % every != 0 && t != rf->steps)
            continue;
        if (rows)
            json_array_append_new(
                rows, json_pack("{s:I, s:o, s:o, s:o, s:o}", "step", (json_int_t)t, "lr", num(lr),
                                "weight_decay", num(wd), "norm", num(n), "angular_update", num(a)));
        else if (format == ROTEQ_FORMAT_CSV)
            printf("%zu,%.17g,%.17g,%.17g,%.17g\n", t, lr, wd, n, a);
        else
            printf("%10zu %12.6g %12.6g %14.8g %14.8g\n", t, lr, wd, n, a);
    }
    mx->transient_free(tr);
    if (rows) {
        json_t *o = json_pack("{s:s, s:o, s:o, s:o}", "optimizer", "muon", "hparams",
                              hparams_json(hp), "init_norm", num(init), "trajectory", rows);
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    }
    return ROTEQ_EXIT_OK;
}

int roteq_cmd_matrix_theory(const roteq_optimizer_type *opt, int argc, char **argv)
{
    static const char *cmd = "theory";
    const roteq_matrix_hooks *mx = opt->family->matrix;
    struct option opts[] = {COMMON_OPTS, {0, 0, 0, 0}};
    roteq_muon_hparams hp = mx->defaults();
    roteq_format format = ROTEQ_FORMAT_TEXT;
    run_flags rf = {roteq_schedule_constant(), roteq_schedule_constant(), NAN, 0, 1};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int r = hparam_flag(cmd, c, optarg, &hp);
        if (r == 0)
            r = run_flag(cmd, c, optarg, &rf);
        if (r < 0)
            return ROTEQ_EXIT_USAGE;
        if (r > 0 || c == OPT_OPTIMIZER)
            continue;
        if (c == OPT_HELP) {
            theory_usage(stdout);
            return ROTEQ_EXIT_OK;
        }
        if (c == OPT_FORMAT) {
            if (roteq_cli_format(cmd, optarg, "text,csv,json", &format))
                return ROTEQ_EXIT_USAGE;
            continue;
        }
        return roteq_cli_bad_option(cmd, c, argv);
    }
    if (optind < argc)
        return roteq_cli_fail(cmd, "unexpected argument '%s'", argv[optind]);
    if (finish_hparams(cmd, opt, &hp))
        return ROTEQ_EXIT_USAGE;
    roteq_muon_equilibrium eq[ROTEQ_MUON_PRED_COUNT];
    for (int i = 0; i < ROTEQ_MUON_PRED_COUNT; i++)
        if (mx->equilibrium(&hp, (roteq_muon_prediction)i, &eq[i]))
            return roteq_cli_fail_lib(cmd, ROTEQ_EXIT_USAGE);
    if (rf.steps > 0)
        return theory_trajectory(mx, &hp, &rf, isnan(rf.init_norm) ? eq[0].norm : rf.init_norm,
                                 format);
    if (format == ROTEQ_FORMAT_CSV)
        return roteq_cli_fail(cmd, "--format csv is for the trajectory (--steps T)");
    return theory_print(&hp, eq, format);
}

static void simulate_usage(FILE *out)
{
    fputs("usage: roteq simulate --optimizer muon --shape ROWSxCOLS [--matrices M] [--steps T]\n"
          "                      [--seed S] [--threads N] [--init-norm X] [--every K]\n"
          "                      [MUON HYPERPARAMETERS] [--format text|csv|json]\n"
          "                      [--trace FILE]\n\n"
          "Simulates M independent matrices whose rows are scale-invariant neurons (each row's\n"
          "gradient is orthogonal to it, scaled by 1/||row||), updated by torch.optim.Muon's\n"
          "algorithm in float64 (products through OpenBLAS, one matrix per thread; results do\n"
          "not depend on the thread count). Statistics over the last quarter, with standard\n"
          "errors across matrices; csv prints the recorded series.\n\n"
          "  --matrices M         matrices in the ensemble (16)\n"
          "  --steps T            optimizer steps (4000)\n"
          "  --seed S             Philox seed (1)\n"
          "  --threads N          worker threads (0: all cores)\n"
          "  --init-norm X        initial row norm (default: the best prediction)\n"
          "  --every K            record every K steps (default: ~200 rows)\n"
          "  --schedule S         lr schedule (as for the other optimizers; roteq theory --help)\n"
          "  --wd-schedule S      weight-decay schedule\n"
          "  --trace FILE         matrix 0's rows at every recorded step as a per-neuron trace\n"
          "                       (layer W; docs/FORMATS.md §1) and FILE.json, its metadata,\n"
          "                       for roteq analyze\n"
          "  --ns-precision P     float64 (default) or bfloat16: the Newton-Schulz iteration as\n"
          "                       torch.optim.Muon runs it (bfloat16 values, float32 sums;\n"
          "                       sim/README.md); theory predicts the float64 walk\n"
          "csv rows carry theory's transient (pred_norm, pred_angle) beside the measurement.\n",
          out);
    usage_hparams(out);
}

static void simulate_print(const roteq_sim_muon_config *cfg, const roteq_sim_muon_result *res,
                           const roteq_muon_equilibrium *eq, roteq_format format)
{
    if (format == ROTEQ_FORMAT_CSV) {
        printf("step,row_norm,row_angle_rms,matrix_norm,matrix_angle_rms,pred_norm,pred_angle\n");
        for (size_t i = 0; i < res->nrows; i++) {
            const roteq_sim_muon_row *r = &res->rows[i];
            printf("%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", r->step, r->row_norm,
                   r->row_angle_rms, r->matrix_norm, r->matrix_angle_rms, r->pred_norm,
                   r->pred_angle);
        }
        return;
    }
    if (format == ROTEQ_FORMAT_JSON) {
        json_t *o = json_pack(
            "{s:s, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
            "s:o, s:o, s:o, s:o}",
            "optimizer", "muon", "hparams", hparams_json(&cfg->hp), "matrices",
            (json_int_t)cfg->matrices, "steps", (json_int_t)cfg->steps, "seed",
            (json_int_t)cfg->seed, "row_norm", num(res->row_norm), "row_norm_se",
            num(res->row_norm_se), "row_angle_rms", num(res->row_angle_rms), "row_angle_rms_se",
            num(res->row_angle_rms_se), "matrix_norm", num(res->matrix_norm), "matrix_norm_se",
            num(res->matrix_norm_se), "matrix_angle_rms", num(res->matrix_angle_rms),
            "matrix_angle_rms_se", num(res->matrix_angle_rms_se), "update_row_sq", num(res->q_row),
            "predicted_norm", num(eq[0].norm), "predicted_angular_update",
            num(eq[0].angular_update), "predicted_norm_plain", num(eq[1].norm),
            "predicted_angular_update_plain", num(eq[1].angular_update), "predicted_norm_lionlike",
            num(eq[2].norm), "predicted_angular_update_lionlike", num(eq[2].angular_update));
        json_object_set_new(o, "update_row_sq_se", num(res->q_row_se));
        json_object_set_new(o, "ns_precision",
                            json_string(roteq_sim_ns_precision_names[cfg->ns_precision]));
        json_object_set_new(o, "seconds", json_real(res->seconds));
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        fputc('\n', stdout);
        json_decref(o);
        return;
    }
    printf("muon %zux%zu, %zu matrices, %zu steps, seed %llu, %.2f s on %u threads%s\n",
           cfg->hp.rows, cfg->hp.cols, cfg->matrices, cfg->steps, (unsigned long long)cfg->seed,
           res->seconds, res->threads_used,
           cfg->ns_precision == ROTEQ_SIM_NS_BFLOAT16 ? ", Newton-Schulz in bfloat16" : "");
    printf("%-22s %12s %10s %12s %12s %12s\n", "last quarter", "measured", "SE", "best", "plain",
           "lionlike");
    const double meas[4] = {res->row_norm, res->row_angle_rms, res->matrix_norm,
                            res->matrix_angle_rms};
    const double se[4] = {res->row_norm_se, res->row_angle_rms_se, res->matrix_norm_se,
                          res->matrix_angle_rms_se};
    static const char *const names[4] = {"row norm", "row angle (RMS)", "matrix norm",
                                         "matrix angle (RMS)"};
    for (int k = 0; k < 4; k++) {
        double p[3];
        for (int i = 0; i < 3; i++)
            p[i] = k == 0   ? eq[i].norm
                   : k == 1 ? eq[i].angular_update
                   : k == 2 ? eq[i].matrix_norm
                            : eq[i].matrix_angular_update;
        printf("%-22s %12.6g %10.2g %12.6g %12.6g %12.6g\n", names[k], meas[k], se[k], p[0], p[1],
               p[2]);
    }
    printf("%-22s %12.6g %10s %12.6g\n", "E||o_row||^2", res->q_row, "", eq[0].q_row);
}

/* The metadata `roteq analyze` reads beside a --trace (docs/FORMATS.md "Muon"). */
static int write_trace_meta(const roteq_sim_muon_config *cfg, FILE *f)
{
    const roteq_muon_hparams *hp = &cfg->hp;
    json_t *o =
        json_pack("{s:s, s:o, s:o, s:o, s:b, s:i, s:s, s:o, s:{s:{s:[I,I]}}}", "optimizer", "muon",
                  "lr", num(hp->lr), "weight_decay", num(hp->weight_decay), "momentum",
                  num(hp->momentum), "nesterov", hp->nesterov, "ns_steps", hp->ns_steps,
                  "adjust_lr", roteq_muon_adjust_names[hp->adjust], "eps", num(hp->eps), "layers",
                  "W", "shape", (json_int_t)hp->rows, (json_int_t)hp->cols);
    if (o)
        json_object_set_new(o, "ns_precision",
                            json_string(roteq_sim_ns_precision_names[cfg->ns_precision]));
    int bad = o == NULL || json_dumpf(o, f, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) != 0;
    json_decref(o);
    return bad || fputc('\n', f) == EOF;
}

/* Opens --trace and its metadata (both appear only when complete). */
static int open_trace(const char *cmd, const char *path, roteq_sim_muon_config *cfg,
                      roteq_ofile **trace, roteq_ofile **meta)
{
    if (strcmp(path, "-") == 0)
        return roteq_cli_fail(cmd, "--trace: needs a file (its metadata goes beside it)");
    char *mp = malloc(strlen(path) + 6);
    if (mp == NULL)
        return roteq_cli_fail(cmd, "out of memory");
    sprintf(mp, "%s.json", path);
    *trace = roteq_ofile_open(path);
    *meta = *trace ? roteq_ofile_open(mp) : NULL;
    free(mp);
    if (*meta == NULL)
        return roteq_cli_fail_lib(cmd, ROTEQ_EXIT_FAIL);
    cfg->trace = roteq_ofile_stream(*trace);
    fprintf(cfg->trace, "# roteq simulate --optimizer muon: matrix 0 of %zu, seed %llu\n",
            cfg->matrices, (unsigned long long)cfg->seed);
    fputs("step,layer,neuron,norm,angle,lr,weight_decay\n", cfg->trace);
    if (write_trace_meta(cfg, roteq_ofile_stream(*meta)))
        return roteq_cli_fail(cmd, "--trace: cannot write %s.json", path);
    return ROTEQ_EXIT_OK;
}

void roteq_cli_matrix_usage_note(FILE *out, const char *cmd)
{
    const char *first = NULL;
    fputs("\nMatrix optimizers (", out);
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++)
        if (roteq_optimizers[i]->family->matrix) {
            fprintf(out, "%s%s", first ? ", " : "", roteq_optimizers[i]->name);
            if (!first)
                first = roteq_optimizers[i]->name;
        }
    if (!first) {
        fputs("none)\n", out);
        return;
    }
    fprintf(out,
            "): --shape ROWSxCOLS and their own flags, listed by\n"
            "`roteq %s --optimizer %s --help`.\n",
            cmd, first);
}

int roteq_cmd_matrix_simulate(const roteq_optimizer_type *opt, int argc, char **argv)
{
    static const char *cmd = "simulate";
    const roteq_sim_matrix *sm = roteq_sim_matrix_for(opt);
    struct option opts[] = {COMMON_OPTS,
                            {"matrices", required_argument, NULL, OPT_MATRICES},
                            {"seed", required_argument, NULL, OPT_SEED},
                            {"threads", required_argument, NULL, OPT_THREADS},
                            {"trace", required_argument, NULL, OPT_TRACE},
                            {"ns-precision", required_argument, NULL, OPT_NS_PRECISION},
                            {0, 0, 0, 0}};
    const char *trace_path = NULL;
    roteq_sim_muon_config cfg;
    sm->config_init(&cfg);
    cfg.hp.rows = cfg.hp.cols = 0;
    roteq_format format = ROTEQ_FORMAT_TEXT;
    size_t threads = 0;
    optind = 0;
    opterr = 0;
    int c, bad = 0;
    run_flags rf = {roteq_schedule_constant(), roteq_schedule_constant(), NAN, cfg.steps, 0};
    while (!bad && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int r = hparam_flag(cmd, c, optarg, &cfg.hp);
        if (r == 0)
            r = run_flag(cmd, c, optarg, &rf);
        if (r != 0 || c == OPT_OPTIMIZER) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case OPT_HELP:
            simulate_usage(stdout);
            return ROTEQ_EXIT_OK;
        case OPT_FORMAT:
            bad = roteq_cli_format(cmd, optarg, "text,csv,json", &format);
            break;
        case OPT_MATRICES:
            bad = roteq_cli_size(cmd, "matrices", optarg, &cfg.matrices);
            break;
        case OPT_SEED:
            if (roteq_parse_u64(optarg, &cfg.seed))
                bad = roteq_cli_fail(cmd, "--seed: %s", roteq_error_message());
            break;
        case OPT_THREADS:
            bad = roteq_cli_size(cmd, "threads", optarg, &threads);
            break;
        case OPT_TRACE:
            trace_path = optarg;
            break;
        case OPT_NS_PRECISION:
            if (roteq_sim_ns_precision_parse(optarg, &cfg.ns_precision))
                bad = roteq_cli_fail(cmd, "--ns-precision: %s", roteq_error_message());
            break;
        default:
            return roteq_cli_bad_option(cmd, c, argv);
        }
    }
    if (bad)
        return ROTEQ_EXIT_USAGE;
    if (optind < argc)
        return roteq_cli_fail(cmd, "unexpected argument '%s'", argv[optind]);
    if (finish_hparams(cmd, opt, &cfg.hp))
        return ROTEQ_EXIT_USAGE;
    cfg.lr_schedule = rf.lr, cfg.wd_schedule = rf.wd, cfg.init_norm = rf.init_norm;
    cfg.steps = rf.steps, cfg.every = rf.every;
    if (threads > 4096)
        return roteq_cli_fail(cmd, "--threads: at most 4096, got %zu", threads);
    cfg.threads = (unsigned)threads;
    if (sm->config_validate(&cfg))
        return roteq_cli_fail(cmd, "%s", roteq_error_message());
    roteq_muon_equilibrium eq[ROTEQ_MUON_PRED_COUNT];
    for (int i = 0; i < ROTEQ_MUON_PRED_COUNT; i++)
        if (opt->family->matrix->equilibrium(&cfg.hp, (roteq_muon_prediction)i, &eq[i]))
            return roteq_cli_fail_lib(cmd, ROTEQ_EXIT_USAGE);
    roteq_ofile *trace = NULL, *meta = NULL;
    if (trace_path) {
        int rc = open_trace(cmd, trace_path, &cfg, &trace, &meta);
        if (rc) {
            roteq_ofile_abort(trace);
            roteq_ofile_abort(meta);
            return rc;
        }
    }
    fprintf(stderr, "roteq simulate: muon, seed %llu\n", (unsigned long long)cfg.seed);
    roteq_sim_muon_result res;
    int st = sm->run(&cfg, &res);
    if (!st && trace) {
        roteq_ofile *t = trace;
        trace = NULL;
        if (roteq_ofile_commit(t)) {
            st = ROTEQ_EIO;
        } else {
            roteq_ofile *m = meta;
            meta = NULL;
            st = roteq_ofile_commit(m) ? ROTEQ_EIO : ROTEQ_OK;
        }
    }
    if (st) {
        roteq_ofile_abort(trace);
        roteq_ofile_abort(meta);
        return roteq_cli_fail_lib(cmd, st == ROTEQ_EINVAL ? ROTEQ_EXIT_USAGE : ROTEQ_EXIT_FAIL);
    }
    simulate_print(&cfg, &res, eq, format);
    sm->result_free(&res);
    return ROTEQ_EXIT_OK;
}

/* One matrix point of `roteq verify` as a row of the sweep format (sweep/README.md, "Matrix
 * rows"), run by the sweep's own runner (the three predictions and one run of the family's
 * matrix simulator): the row norm and RMS row angle against best, the Lion-style prediction in
 * the paper's columns and plain; the ensemble as neurons = matrices x rows and dim = cols, the
 * shape and ns_steps in `reason`. `best` is approximate, so the verdict is APPROX. */
static int verify_point(const roteq_optimizer_type *opt, const roteq_sim_matrix *sm,
                        const roteq_sim_matrix_point *pt, const roteq_cli_matrix_verify_args *a,
                        roteq_sweep_point *p, roteq_sweep_record *rec)
{
    roteq_sim_muon_config *cfg = &p->mcfg;
    sm->config_init(cfg);
    cfg->hp.lr = sm->verify_lr, cfg->hp.weight_decay = sm->verify_wd;
    cfg->hp.momentum = pt->momentum, cfg->hp.nesterov = pt->nesterov;
    cfg->hp.ns_steps = pt->ns_steps;
    cfg->ns_precision = pt->ns_precision;
    cfg->hp.rows = pt->rows, cfg->hp.cols = pt->cols;
    cfg->matrices = sm->verify_matrices[a->quick ? 1 : 0];
    cfg->steps = sm->verify_steps[a->quick ? 1 : 0];
    p->matrix = 1;
    p->seed = a->seed;
    roteq_sweep_matrix_describe(opt, cfg, p);
    snprintf(p->lr_schedule, sizeof p->lr_schedule, "constant");
    snprintf(p->wd_schedule, sizeof p->wd_schedule, "constant");
    rec->rel_floor = roteq_theory_model_floor(opt, &p->cfg.hp, p->cfg.dim);
    double t0 = roteq_seconds();
    int st = roteq_sweep_sim_runner(p, a->threads, rec, NULL);
    if (st) {
        rec->verdict = ROTEQ_SWEEP_VERDICT_ERROR;
        snprintf(rec->reason, sizeof rec->reason, "%s", roteq_error_message());
        for (int k = 0; k < ROTEQ_PRED_COUNT; k++)
            rec->pred[k] = (roteq_sweep_prediction){NAN, NAN, 0};
        rec->norm = rec->norm_se = rec->angle = rec->angle_se = rec->seconds = NAN;
        return st;
    }
    rec->seconds = roteq_seconds() - t0;
    rec->verdict = ROTEQ_SWEEP_VERDICT_PASS; /* judged next */
    roteq_sweep_judge(rec, a->tolerance, rec->rel_floor);
    return ROTEQ_OK;
}

int roteq_cli_matrix_verify(const roteq_optimizer_type *opt, roteq_cli_matrix_verify_args *a)
{
    const roteq_sim_matrix *sm = roteq_sim_matrix_for(opt);
    const roteq_sim_matrix_point *pts = a->quick ? sm->verify_quick_points : sm->verify_points;
    size_t n = a->quick ? sm->nverify_quick_points : sm->nverify_points;
    FILE *t = a->text;
    fprintf(t,
            "\nMuon (torch.optim.Muon, lr %g, weight decay %g; matrices of scale-invariant rows; "
            "row norm and RMS row angle, last quarter, +- 95%% CI; err = best/measured - 1; "
            "best is approximate: APPROX with its error)\n",
            sm->verify_lr, sm->verify_wd);
    fprintf(t, "%3s %-7s %-32s %3s %6s |%11s %24s %9s |%11s %24s %9s | %s\n", "#", "shape",
            "hyperparameters", "M", "steps", "best norm", "measured norm", "err", "best angle",
            "measured angle", "err", "plain err / lionlike err (norm)");
    int code = ROTEQ_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        roteq_sweep_point p = {.index = a->next_index++};
        roteq_sweep_record rec = {0};
        int st = verify_point(opt, sm, &pts[i], a, &p, &rec);
        if (a->out && roteq_sweep_out_write(a->out, &p, &rec))
            a->write_failed = 1;
        const roteq_sim_muon_config *cfg = &p.mcfg;
        char shape[48], hp[64];
        snprintf(shape, sizeof shape, "%zux%zu", cfg->hp.rows, cfg->hp.cols);
        snprintf(hp, sizeof hp, "momentum %g %s ns %d%s", cfg->hp.momentum,
                 cfg->hp.nesterov ? "nesterov" : "heavy", cfg->hp.ns_steps,
                 cfg->ns_precision == ROTEQ_SIM_NS_BFLOAT16 ? " bf16" : "");
        fprintf(t, "%3zu %-7s %-32s %3zu %6zu |", i, shape, hp, cfg->matrices, cfg->steps);
        if (st) {
            fprintf(t, " ERROR: %s\n", rec.reason);
            code = ROTEQ_EXIT_FAIL;
            continue;
        }
        const roteq_sweep_prediction *best = &rec.pred[ROTEQ_PRED_BEST];
        fprintf(t,
                " %10.5g %10.5g +-%9.2g %+8.3f%% | %10.5g %10.5g +-%9.2g %+8.3f%% | APPROX "
                "%+.1f%% / %+.1f%%\n",
                best->norm, rec.norm, 1.96 * rec.norm_se, 100 * (best->norm / rec.norm - 1),
                best->angular_update, rec.angle, 1.96 * rec.angle_se,
                100 * (best->angular_update / rec.angle - 1),
                100 * (rec.pred[ROTEQ_PRED_PLAIN].norm / rec.norm - 1),
                100 * (rec.pred[ROTEQ_PRED_PAPER].norm / rec.norm - 1));
    }
    return code;
}

/* `roteq bench`'s Muon rows: the Newton-Schulz iteration's GFLOP/s against OpenBLAS's own dgemm
 * at the same size (both one thread, CPU time), and the whole walk against the PyTorch peer
 * (bench/muon_peer.py, one thread). */
static void muon_peer(const char *python, const char *src, const char *sizes, double work,
                      double *step, double *ns, int count)
{
    for (int i = 0; i < count; i++)
        step[i] = ns[i] = NAN;
    if (access(python, X_OK) != 0)
        return;
    char cmd[8192];
    snprintf(
        cmd, sizeof cmd,
        "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 %s '%s/bench/muon_peer.py' "
        "--sizes %s --work %g 2>/dev/null",
        python, src, sizes, work);
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    char line[512];
    for (int i = 0; i < count && fgets(line, sizeof line, p);) {
        const char *a = strstr(line, "cpu_s_per_step="), *b = strstr(line, "cpu_s_per_ns=");
        if (!a || !b)
            continue;
        step[i] = strtod(a + 15, NULL);
        ns[i] = strtod(b + 13, NULL);
        i++;
    }
    if (pclose(p) != 0)
        for (int i = 0; i < count; i++)
            step[i] = ns[i] = NAN;
}

json_t *roteq_cli_matrix_bench(const roteq_optimizer_type *opt, int peers, const char *python,
                               const char *src, int text)
{
    const roteq_sim_matrix *sm = roteq_sim_matrix_for(opt);
    enum { NS = 3 };
    static const size_t sizes[NS] = {64, 256, 512};
    const double work = 2e9; /* flops per size and measurement: ~0.1 s at 20 GFLOP/s */
    double pstep[NS], pns[NS];
    if (peers)
        muon_peer(python, src, "64,256,512", work, pstep, pns, NS);
    else
        for (int i = 0; i < NS; i++)
            pstep[i] = pns[i] = NAN;
    json_t *rows = json_array();
    if (text)
        printf("Muon (float64, 1 thread, CPU time)  NS GFLOP/s  dgemm GFLOP/s  NS/dgemm   "
               "NS ms  torch NS ms  walk ms/step  torch walk ms/step  roteq faster\n");
    for (int i = 0; i < NS; i++) {
        size_t n = sizes[i];
        double fl_ns, fl_mm, per = 25.0 * (double)n * (double)n * (double)n;
        size_t reps = (size_t)(work / per) + 1;
        double t_ns = sm->bench_ns(n, 5, reps, &fl_ns);
        double t_mm = sm->bench_dgemm(n, (size_t)(work / (2.0 * n * n * n)) + 1, &fl_mm);
        double walk = sm->bench_walk(n, reps);
        if (t_ns <= 0 || t_mm <= 0 || walk <= 0)
            continue;
        double g_ns = fl_ns / t_ns * 1e-9, g_mm = fl_mm / t_mm * 1e-9;
        double ns_ms = 1e3 * t_ns / (double)reps;
        if (text && isfinite(pstep[i]))
            printf("  %3zux%-3zu %27.1f %14.1f %8.0f%% %7.3f %12.3f %13.3f %19.3f %11.2fx\n", n, n,
                   g_ns, g_mm, 100 * g_ns / g_mm, ns_ms, 1e3 * pns[i], 1e3 * walk, 1e3 * pstep[i],
                   pstep[i] / walk);
        else if (text) /* no peer (--no-peers, or it failed): dashes, not nan */
            printf("  %3zux%-3zu %27.1f %14.1f %8.0f%% %7.3f %12s %13.3f %19s %12s\n", n, n, g_ns,
                   g_mm, 100 * g_ns / g_mm, ns_ms, "-", 1e3 * walk, "-", "-");
        json_array_append_new(rows,
                              json_pack("{s:I, s:f, s:f, s:f, s:o, s:f, s:o}", "n", (json_int_t)n,
                                        "ns_gflops", g_ns, "dgemm_gflops", g_mm, "ns_ms", ns_ms,
                                        "torch_ns_ms", num(1e3 * pns[i]), "walk_ms_per_step",
                                        1e3 * walk, "torch_walk_ms_per_step", num(1e3 * pstep[i])));
    }
    return rows;
}
