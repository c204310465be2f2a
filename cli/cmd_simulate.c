/* cmd_simulate.c - `roteq simulate`: run the random-walk simulator on an ensemble of neurons and
 * report measured equilibrium against theory's prediction. All numerics live in sim/
 * (roteq_sim_run); this file parses flags, refuses a run larger than the machine's available
 * memory before allocating it, opens every output file before the run (so a bad path fails at
 * once and nothing partial is ever left), streams the per-neuron trace and the series rows from
 * the observer callbacks (memory does not grow with --steps / --every), and prints the summary
 * as text, CSV rows or JSON (docs/FORMATS.md §1, §2, §4). */
#include "roteq_cli.h"
#include "roteq_plots.h"
#include "roteq_sim.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "simulate"

static void usage(FILE *out)
{
    fputs(
        "usage: roteq simulate --optimizer NAME [hyperparameters] [options]\n\n"
        "Simulate N independent neurons (weight vectors of dimension C) under an optimizer's\n"
        "exact update rule with synthetic gradients, and compare the last quarter of the run\n"
        "with theory's equilibrium.\n\n"
        "Options:\n"
        "  --optimizer NAME       sgd, sgdm, nesterov, adam_l2, adamw, lion, rv_adamw, rv_sgdm,\n"
        "                         rv_lion (required)\n"
        "  --neurons N            ensemble size (default 128)\n"
        "  --dim C                weight-vector length (default 128)\n"
        "  --steps T              optimizer steps (default 10000, at most 1e10)\n"
        "  --seed S               random seed (default 1); results are bit-identical for any\n"
        "                         --threads\n"
        "  --threads K            worker threads (default: all online cores)\n"
        "  --gradient MODEL       scale-invariant (default), heterogeneous, anisotropic, radial\n"
        "  --grad-norm G          RMS of ||g~|| (default: standard-normal coordinates, sqrt(C-1))\n"
        "  --grad-spread S        heterogeneous: std of the log gradient scale (default 0.5)\n"
        "  --dead-fraction F      anisotropic: fraction of always-zero coordinates (default 0.25)\n"
        "  --radial R             radial: mean radial gradient, relative to ||g~||/||w|| (default "
        "0)\n"
        "  --init-norm X          initial ||w|| (default: the predicted equilibrium norm, else 1)\n"
        "  --schedule SPEC        lr schedule: constant | warmup:W | [warmup:W+]cosine:T[:FLOOR] "
        "|\n"
        "                         [warmup:W+]step:S:GAMMA\n"
        "  --wd-schedule SPEC     weight-decay schedule (same syntax)\n"
        "  --every K              record statistics every K steps (default: about 200 rows)\n"
        "  --out FILE             series CSV: across-neuron statistics per recorded step\n"
        "  --trace FILE           per-neuron trace CSV (step,layer,neuron,norm,angle,...) for\n"
        "                         `roteq analyze`, with its metadata in FILE.json\n"
        "  --format F             text (default), csv (series rows on stdout) or json (summary)\n"
        "  --plot DIR             draw norm and angle figures (with the prediction) into DIR\n"
        "  --isa NAME             auto (default), generic, avx2, avx512: kernel instruction set\n"
        "                         (identical results, different speed)\n"
        "  --no-memory-check      run even when the run needs more memory than the machine has\n"
        "                         available (90% of MemAvailable, or ulimit -v); refused "
        "otherwise\n"
        "  --quiet                no progress (a bar on a terminal, else a line every 10 s)\n"
        "  --help                 this text\n\n",
        out);
    roteq_cli_hparam_usage(out);
    roteq_cli_matrix_usage_note(out, "simulate");
}

enum {
    OPT_OPTIMIZER = 256,
    OPT_NEURONS,
    OPT_DIM,
    OPT_STEPS,
    OPT_SEED,
    OPT_THREADS,
    OPT_GRADIENT,
    OPT_GRAD_NORM,
    OPT_GRAD_SPREAD,
    OPT_DEAD,
    OPT_RADIAL,
    OPT_INIT_NORM,
    OPT_SCHEDULE,
    OPT_WD_SCHEDULE,
    OPT_EVERY,
    OPT_OUT,
    OPT_TRACE,
    OPT_FORMAT,
    OPT_PLOT,
    OPT_ISA,
    OPT_NO_MEMORY_CHECK,
    OPT_QUIET,
    OPT_HELP
};

/* Series rows go to up to three streams as they are summarised: --out, stdout (--format csv)
 * and the series file the --plot figures read. */
#define SERIES_SINKS 3

typedef struct {
    const roteq_sim_config *cfg;
    FILE *trace;
    FILE *series[SERIES_SINKS];
    const char *names[SERIES_SINKS + 1]; /* the outputs' names for messages; trace last */
    const char *failed;                  /* the output a write failed on */
    roteq_cli_progress progress;
    const char *layer;
} sim_ctx;

static int on_record(void *vctx, size_t step, double lr, double wd, const double *norms,
                     const double *angles, size_t n)
{
    sim_ctx *c = vctx;
    if (!c->trace)
        return 0;
    for (size_t i = 0; i < n; i++) {
        fprintf(c->trace, "%zu,%s,%zu,", step, c->layer, i);
        roteq_fprint_csv_double(c->trace, norms[i]);
        fputc(',', c->trace);
        roteq_fprint_csv_double(c->trace, angles[i]);
        fputc(',', c->trace);
        roteq_fprint_csv_double(c->trace, lr);
        fputc(',', c->trace);
        roteq_fprint_csv_double(c->trace, wd);
        fputc('\n', c->trace);
    }
    if (!ferror(c->trace))
        return 0;
    c->failed = c->names[SERIES_SINKS];
    return ROTEQ_EIO;
}

static void on_progress(void *vctx, size_t step, size_t steps)
{
    sim_ctx *c = vctx;
    roteq_cli_progress_update(&c->progress, step, steps);
}

static void write_comment_header(FILE *f, const roteq_sim_config *cfg)
{
    char lr_s[128], wd_s[128];
    roteq_schedule_format(&cfg->lr_schedule, lr_s, sizeof lr_s);
    roteq_schedule_format(&cfg->wd_schedule, wd_s, sizeof wd_s);
    fprintf(f,
            "# roteq simulate --optimizer %s --neurons %zu --dim %zu --steps %zu --seed %llu"
            " --gradient %s --schedule %s --wd-schedule %s\n",
            cfg->opt->name, cfg->neurons, cfg->dim, cfg->steps, (unsigned long long)cfg->seed,
            roteq_grad_model_names[cfg->grad_model], lr_s, wd_s);
    fputs("#", f);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        if (cfg->opt->hparams & ROTEQ_HP_BIT(i))
            fprintf(f, " %s=%.17g", roteq_hparam_descs[i].key,
                    roteq_hparams_get(&cfg->hp, (roteq_hparam_id)i));
    fprintf(f, " grad_norm=%.17g\n",
            isnan(cfg->grad_norm) ? sqrt((double)cfg->dim - 1.0) : cfg->grad_norm);
}

static void csv_stat(FILE *f, const roteq_sim_stat *s, int with_std)
{
    double v[5] = {s->mean, s->std, s->q05, s->q50, s->q95};
    for (int i = 0; i < 5; i++) {
        if (i == 1 && !with_std)
            continue;
        fputc(',', f);
        roteq_fprint_csv_double(f, v[i]);
    }
}

/* The series CSV (docs/FORMATS.md section 2). eq_norm, eq_angle: theory's static equilibrium for
 * the run's base hyperparameters (ROTEQ_PRED_BEST, the same on every row; empty where theory has
 * none), so that `roteq plot` draws the equilibrium itself rather than the transient's value at
 * the last step, which is the equilibrium only once the run has settled. */
static void write_series_header(FILE *f, const roteq_sim_config *cfg)
{
    write_comment_header(f, cfg);
    fputs("step,group,lr,weight_decay,n,norm_mean,norm_std,norm_q05,norm_q50,norm_q95,"
          "angle_rms,angle_mean,angle_std,angle_q05,angle_q50,angle_q95,pred_norm,pred_angle,"
          "eq_norm,eq_angle,update_rms_mean,update_rms_q05,update_rms_q50,update_rms_q95\n",
          f);
}

static void write_series_row(FILE *f, const roteq_sim_config *cfg, const roteq_equilibrium *eq,
                             const roteq_sim_row *w)
{
    fprintf(f, "%zu,%s,", w->step, cfg->opt->name);
    roteq_fprint_csv_double(f, w->lr);
    fputc(',', f);
    roteq_fprint_csv_double(f, w->weight_decay);
    fprintf(f, ",%zu", cfg->neurons);
    csv_stat(f, &w->norm, 1);
    fputc(',', f);
    roteq_fprint_csv_double(f, w->angle_rms);
    csv_stat(f, &w->angle, 1);
    fputc(',', f);
    roteq_fprint_csv_double(f, w->pred_norm);
    fputc(',', f);
    roteq_fprint_csv_double(f, w->pred_angle);
    fputc(',', f);
    roteq_fprint_csv_double(f, eq->norm);
    fputc(',', f);
    roteq_fprint_csv_double(f, eq->angular_update);
    csv_stat(f, &w->update_rms, 0);
    fputc('\n', f);
}

static int on_row(void *vctx, const roteq_sim_row *row, const roteq_sim_result *partial)
{
    sim_ctx *c = vctx;
    for (int i = 0; i < SERIES_SINKS; i++)
        if (c->series[i]) {
            write_series_row(c->series[i], c->cfg, &partial->predicted[ROTEQ_PRED_BEST], row);
            if (ferror(c->series[i])) {
                c->failed = c->names[i];
                return ROTEQ_EIO;
            }
        }
    return 0;
}

static double rel_err(double got, double want)
{
    return isfinite(want) && want != 0.0 ? (got - want) / want : (double)NAN;
}

static json_t *jnum(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *hparams_json(const roteq_sim_config *cfg)
{
    json_t *h = json_object();
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        if (cfg->opt->hparams & ROTEQ_HP_BIT(i)) {
            double v = roteq_hparams_get(&cfg->hp, (roteq_hparam_id)i);
            if (roteq_hparam_descs[i].kind == ROTEQ_HPKIND_FLAG)
                json_object_set_new(h, roteq_hparam_descs[i].key, json_boolean(v != 0.0));
            else
                json_object_set_new(h, roteq_hparam_descs[i].key, jnum(v));
        }
    return h;
}

static json_t *summary_json(const roteq_sim_config *cfg, const roteq_sim_result *r)
{
    const roteq_equilibrium *p = &r->predicted[ROTEQ_PRED_BEST];
    json_t *o = json_object();
    json_object_set_new(o, "optimizer", json_string(cfg->opt->name));
    json_object_set_new(o, "hparams", hparams_json(cfg));
    json_object_set_new(o, "neurons", json_integer((json_int_t)cfg->neurons));
    json_object_set_new(o, "dim", json_integer((json_int_t)cfg->dim));
    json_object_set_new(o, "steps", json_integer((json_int_t)cfg->steps));
    json_object_set_new(o, "seed", json_integer((json_int_t)cfg->seed));
    json_object_set_new(o, "gradient", json_string(roteq_grad_model_names[cfg->grad_model]));
    json_object_set_new(
        o, "grad_norm",
        jnum(isnan(cfg->grad_norm) ? sqrt((double)cfg->dim - 1.0) : cfg->grad_norm));
    json_t *pr = json_object();
    json_object_set_new(pr, "norm", jnum(p->norm));
    json_object_set_new(pr, "angular_update", jnum(p->angular_update));
    json_object_set_new(o, "predicted", pr);
    json_t *m = json_object();
    json_object_set_new(m, "norm", jnum(r->norm_mean));
    json_object_set_new(m, "angular_update", jnum(r->angle_rms));
    json_object_set_new(m, "norm_se", jnum(r->norm_se));
    json_object_set_new(m, "angular_update_se", jnum(r->angle_rms_se));
    json_object_set_new(m, "window_steps",
                        json_integer((json_int_t)(cfg->steps / 4 ? cfg->steps / 4 : 1)));
    json_object_set_new(o, "measured", m);
    json_t *re = json_object();
    json_object_set_new(re, "norm", jnum(rel_err(r->norm_mean, p->norm)));
    json_object_set_new(re, "angular_update", jnum(rel_err(r->angle_rms, p->angular_update)));
    json_object_set_new(o, "relative_error", re);
    json_t *all = json_object();
    for (int k = 0; k < ROTEQ_PRED_COUNT; k++) {
        const roteq_equilibrium *e = &r->predicted[k];
        json_t *x = json_object();
        json_object_set_new(x, "norm", jnum(e->norm));
        json_object_set_new(x, "angular_update", jnum(e->angular_update));
        json_object_set_new(x, "exact", json_boolean(e->exact));
        json_object_set_new(x, "source", e->source ? json_string(e->source) : json_null());
        json_object_set_new(all, roteq_prediction_names[k], x);
    }
    json_object_set_new(o, "predictions", all);
    json_object_set_new(o, "threads", json_integer(r->threads_used));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    return o;
}

static void print_text(FILE *f, const roteq_sim_config *cfg, const roteq_sim_result *r)
{
    const roteq_equilibrium *p = &r->predicted[ROTEQ_PRED_BEST];
    fprintf(f, "%s: %zu neurons, C = %zu, %zu steps, seed %llu, %s gradients, %u threads, %.2f s\n",
            cfg->opt->name, cfg->neurons, cfg->dim, cfg->steps, (unsigned long long)cfg->seed,
            roteq_grad_model_names[cfg->grad_model], r->threads_used, r->seconds);
    fprintf(f, "last quarter (%zu steps):   measured              predicted     rel. error\n",
            cfg->steps / 4 ? cfg->steps / 4 : 1);
    fprintf(f, "  norm              %.6g +- %.2g   %-12.6g  %+.3g%%\n", r->norm_mean, r->norm_se,
            p->norm, 100 * rel_err(r->norm_mean, p->norm));
    fprintf(f, "  angular update    %.6g +- %.2g   %-12.6g  %+.3g%%\n", r->angle_rms,
            r->angle_rms_se, p->angular_update, 100 * rel_err(r->angle_rms, p->angular_update));
    if (p->source)
        fprintf(f, "prediction: %s (%s)\n", p->source, p->exact ? "exact" : "approximate");
}

static int write_trace_meta(const char *trace_path, const roteq_sim_config *cfg, roteq_ofile **meta)
{
    size_t n = strlen(trace_path) + 6;
    char *p = malloc(n);
    if (!p)
        return -1;
    snprintf(p, n, "%s.json", trace_path);
    *meta = roteq_ofile_open(p);
    free(p);
    if (!*meta)
        return -1;
    json_t *o = json_object();
    json_object_set_new(o, "optimizer", json_string(cfg->opt->name));
    json_object_set_new(o, "dim", json_integer((json_int_t)cfg->dim));
    json_object_set_new(
        o, "grad_norm",
        jnum(isnan(cfg->grad_norm) ? sqrt((double)cfg->dim - 1.0) : cfg->grad_norm));
    json_t *h = hparams_json(cfg);
    json_object_update(o, h);
    json_decref(h);
    json_object_set_new(o, "source", json_string("roteq simulate"));
    json_object_set_new(o, "seed", json_integer((json_int_t)cfg->seed));
    json_object_set_new(o, "neurons", json_integer((json_int_t)cfg->neurons));
    json_object_set_new(o, "steps", json_integer((json_int_t)cfg->steps));
    json_object_set_new(o, "gradient", json_string(roteq_grad_model_names[cfg->grad_model]));
    int rc = json_dumpf(o, roteq_ofile_stream(*meta), JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    fputc('\n', roteq_ofile_stream(*meta));
    json_decref(o);
    return rc;
}

static int make_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return S_ISDIR(sb.st_mode) ? 0 : -1;
    return mkdir(dir, 0777);
}

/* Everything the command line decides. */
typedef struct {
    roteq_sim_config cfg;
    roteq_sim_options ex;
    roteq_cli_hparams hps;
    const roteq_optimizer_type *opt;
    roteq_schedule lr_s, wd_s;
    const char *out_path, *trace_path, *plot_dir;
    roteq_format format;
    int quiet, memory_check;
} sim_args;

/* --neurons, --dim, --steps, --every, --threads. */
static int parse_count(int c, const char *arg, sim_args *a)
{
    const char *flag = c == OPT_NEURONS ? "neurons"
                       : c == OPT_DIM   ? "dim"
                       : c == OPT_STEPS ? "steps"
                       : c == OPT_EVERY ? "every"
                                        : "threads";
    size_t sz;
    if (roteq_cli_size(CMD, flag, arg, &sz))
        return ROTEQ_EXIT_USAGE;
    if (sz == 0 && c != OPT_THREADS)
        return roteq_cli_fail(CMD, "--%s: must be positive", flag);
    if (c == OPT_NEURONS) {
        a->cfg.neurons = sz;
    } else if (c == OPT_DIM) {
        if (sz < 2)
            return roteq_cli_fail(CMD, "--dim: must be at least 2, got %zu", sz);
        a->cfg.dim = sz;
    } else if (c == OPT_STEPS) {
        if (sz > ROTEQ_CLI_STEPS_MAX)
            return roteq_cli_fail(CMD, "--steps: at most %zu (1e10), got %zu", ROTEQ_CLI_STEPS_MAX,
                                  sz);
        a->cfg.steps = sz;
    } else if (c == OPT_EVERY) {
        a->cfg.every = sz;
    } else {
        if (sz > 4096)
            return roteq_cli_fail(CMD, "--threads: at most 4096, got %zu", sz);
        a->cfg.threads = (unsigned)sz;
    }
    return -1;
}

/* --grad-norm, --grad-spread, --dead-fraction, --radial, --init-norm. */
static int parse_real(int c, const char *arg, sim_args *a)
{
    const char *flag = c == OPT_GRAD_NORM     ? "grad-norm"
                       : c == OPT_GRAD_SPREAD ? "grad-spread"
                       : c == OPT_DEAD        ? "dead-fraction"
                       : c == OPT_RADIAL      ? "radial"
                                              : "init-norm";
    double d;
    if (roteq_cli_double(CMD, flag, arg, &d))
        return ROTEQ_EXIT_USAGE;
    if (c == OPT_GRAD_NORM || c == OPT_INIT_NORM) {
        if (!(d > 0))
            return roteq_cli_fail(CMD, "--%s: must be positive, got %s", flag, arg);
        *(c == OPT_GRAD_NORM ? &a->cfg.grad_norm : &a->cfg.init_norm) = d;
    } else if (c == OPT_GRAD_SPREAD) {
        if (!(d >= 0 && d <= 5))
            return roteq_cli_fail(CMD, "--grad-spread: must be in [0, 5], got %s", arg);
        a->cfg.grad_spread = d;
    } else if (c == OPT_DEAD) {
        if (!(d >= 0 && d < 1))
            return roteq_cli_fail(CMD, "--dead-fraction: must be in [0, 1), got %s", arg);
        a->cfg.dead_fraction = d;
    } else {
        a->cfg.radial = d;
    }
    return -1;
}

static int parse_isa(const char *arg, sim_args *a)
{
    for (int i = 0; i < ROTEQ_SIM_ISA_COUNT; i++)
        if (strcmp(arg, roteq_sim_isa_names[i]) == 0) {
            a->ex.isa = (roteq_sim_isa)i;
            if (!roteq_sim_isa_available(a->ex.isa))
                return roteq_cli_fail(CMD, "--isa: %s is not available on this machine", arg);
            return -1;
        }
    return roteq_cli_fail(CMD, "--isa: unknown '%s' (known: auto, generic, avx2, avx512)", arg);
}

/* One option; -1 to go on, else the exit code. */
static int parse_option(int c, char **argv, sim_args *a)
{
    int h = roteq_cli_hparam_option(CMD, c, optarg, &a->hps);
    if (h != 0)
        return h < 0 ? ROTEQ_EXIT_USAGE : -1;
    switch (c) {
    case OPT_OPTIMIZER:
        if (!(a->opt = roteq_optimizer_lookup(optarg)))
            return roteq_cli_fail(CMD, "--optimizer: %s", roteq_error_message());
        return -1;
    case OPT_NEURONS:
    case OPT_DIM:
    case OPT_STEPS:
    case OPT_EVERY:
    case OPT_THREADS:
        return parse_count(c, optarg, a);
    case OPT_SEED:
        if (roteq_parse_u64(optarg, &a->cfg.seed))
            return roteq_cli_fail(CMD, "--seed: %s", roteq_error_message());
        return -1;
    case OPT_GRADIENT:
        if (roteq_grad_model_lookup(optarg, &a->cfg.grad_model))
            return roteq_cli_fail(CMD, "--gradient: %s", roteq_error_message());
        return -1;
    case OPT_GRAD_NORM:
    case OPT_GRAD_SPREAD:
    case OPT_DEAD:
    case OPT_RADIAL:
    case OPT_INIT_NORM:
        return parse_real(c, optarg, a);
    case OPT_SCHEDULE:
    case OPT_WD_SCHEDULE:
        if (roteq_cli_schedule(CMD, c == OPT_SCHEDULE ? "schedule" : "wd-schedule", optarg,
                               c == OPT_SCHEDULE ? &a->lr_s : &a->wd_s))
            return ROTEQ_EXIT_USAGE;
        return -1;
    case OPT_OUT:
    case OPT_TRACE:
    case OPT_PLOT:
        *(c == OPT_OUT ? &a->out_path : c == OPT_TRACE ? &a->trace_path : &a->plot_dir) = optarg;
        return -1;
    case OPT_FORMAT:
        return roteq_cli_format(CMD, optarg, "text,csv,json", &a->format) ? ROTEQ_EXIT_USAGE : -1;
    case OPT_ISA:
        return parse_isa(optarg, a);
    case OPT_NO_MEMORY_CHECK:
        a->memory_check = 0;
        return -1;
    case OPT_QUIET:
        a->quiet = 1;
        return -1;
    case OPT_HELP:
        usage(stdout);
        return ROTEQ_EXIT_OK;
    case ':':
    default:
        return roteq_cli_bad_option(CMD, c, argv);
    }
}

/* Parse and validate the command line into `a`; -1 to run, else the exit code. */
static int parse_args(int argc, char **argv, sim_args *a)
{
    struct option opts[64] = {
        {"optimizer", required_argument, NULL, OPT_OPTIMIZER},
        {"neurons", required_argument, NULL, OPT_NEURONS},
        {"dim", required_argument, NULL, OPT_DIM},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"gradient", required_argument, NULL, OPT_GRADIENT},
        {"grad-norm", required_argument, NULL, OPT_GRAD_NORM},
        {"grad-spread", required_argument, NULL, OPT_GRAD_SPREAD},
        {"dead-fraction", required_argument, NULL, OPT_DEAD},
        {"radial", required_argument, NULL, OPT_RADIAL},
        {"init-norm", required_argument, NULL, OPT_INIT_NORM},
        {"schedule", required_argument, NULL, OPT_SCHEDULE},
        {"wd-schedule", required_argument, NULL, OPT_WD_SCHEDULE},
        {"every", required_argument, NULL, OPT_EVERY},
        {"out", required_argument, NULL, OPT_OUT},
        {"trace", required_argument, NULL, OPT_TRACE},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"plot", required_argument, NULL, OPT_PLOT},
        {"isa", required_argument, NULL, OPT_ISA},
        {"no-memory-check", no_argument, NULL, OPT_NO_MEMORY_CHECK},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, OPT_HELP},
    };
    size_t nopt = 0;
    while (opts[nopt].name)
        nopt++;
    nopt = roteq_cli_hparam_options(opts, nopt);
    opts[nopt] = (struct option){NULL, 0, NULL, 0};

    memset(a, 0, sizeof *a);
    roteq_cli_hparams_init(&a->hps);
    roteq_sim_config_init(&a->cfg, &roteq_adamw);
    a->lr_s = a->wd_s = roteq_schedule_constant();
    a->format = ROTEQ_FORMAT_TEXT;
    a->ex.isa = ROTEQ_SIM_ISA_AUTO;
    a->memory_check = 1;
    optind = 1;
    opterr = 0;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        if ((rc = parse_option(c, argv, a)) >= 0)
            return rc;
    if (optind < argc)
        return roteq_cli_fail(CMD, "unexpected argument '%s'", argv[optind]);
    if (!a->opt)
        return roteq_cli_fail(CMD, "--optimizer is required (see roteq simulate --help)");
    if (roteq_cli_hparams_finish(CMD, &a->opt, &a->hps, &a->cfg.hp))
        return ROTEQ_EXIT_USAGE;
    a->cfg.opt = a->opt;
    a->cfg.lr_schedule = a->lr_s;
    a->cfg.wd_schedule = a->wd_s;
    if (roteq_sim_config_validate(&a->cfg))
        return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE);
    return -1;
}

/* Refuse, before allocating anything, a run that needs more memory than the machine has
 * available (rows stream, so it does not depend on --steps or --every). */
static int check_memory(const sim_args *a)
{
    double need = roteq_sim_memory(&a->cfg, 0);
    const char *what;
    uint64_t avail = roteq_mem_available(&what);
    if (!a->memory_check || avail == 0 || need <= (double)avail)
        return 0;
    char need_s[32], avail_s[32];
    roteq_format_bytes(need, need_s, sizeof need_s);
    roteq_format_bytes((double)avail, avail_s, sizeof avail_s);
    roteq_cli_fail(CMD,
                   "--neurons %zu --dim %zu needs about %s, more than the %s available here (%s); "
                   "use fewer neurons or a smaller dimension, or --no-memory-check to try anyway",
                   a->cfg.neurons, a->cfg.dim, need_s, avail_s, what);
    return -1;
}

typedef struct {
    roteq_ofile *out, *trace, *meta, *series;
    char series_path[4096];
} outputs;

static void outputs_abort(outputs *o)
{
    roteq_ofile_abort(o->out);
    roteq_ofile_abort(o->trace);
    roteq_ofile_abort(o->meta);
    roteq_ofile_abort(o->series);
    memset(o, 0, sizeof *o);
}

/* Open every output before the run: a bad path fails now, and nothing is left behind. I/O
 * failures are exit 1 naming the output. */
static int outputs_open(const sim_args *a, outputs *o)
{
    memset(o, 0, sizeof *o);
    if (a->out_path && a->trace_path && strcmp(a->out_path, "-") != 0 &&
        (strcmp(a->out_path, a->trace_path) == 0 || roteq_same_file(a->out_path, a->trace_path)))
        return roteq_cli_fail(CMD, "--trace: '%s' is also the --out file", a->trace_path);
    if (a->plot_dir && make_dir(a->plot_dir)) {
        roteq_cli_fail(CMD, "--plot: cannot create directory '%s'", a->plot_dir);
        return ROTEQ_EXIT_FAIL;
    }
    const char *flag = "--out";
    if (a->out_path && !(o->out = roteq_ofile_open(a->out_path)))
        goto fail;
    flag = "--trace";
    if (a->trace_path && !(o->trace = roteq_ofile_open(a->trace_path)))
        goto fail;
    if (o->trace && strcmp(a->trace_path, "-") != 0 &&
        write_trace_meta(a->trace_path, &a->cfg, &o->meta))
        goto fail;
    /* The figures read a series CSV: --out's file, else one written into DIR. */
    flag = "--plot";
    if (a->plot_dir && a->out_path && strcmp(a->out_path, "-") != 0)
        snprintf(o->series_path, sizeof o->series_path, "%s", a->out_path);
    else if (a->plot_dir) {
        snprintf(o->series_path, sizeof o->series_path, "%s/series.csv", a->plot_dir);
        if (!(o->series = roteq_ofile_open(o->series_path)))
            goto fail;
    }
    return 0;
fail:
    roteq_cli_fail(CMD, "%s: %s", flag, roteq_error_message());
    outputs_abort(o);
    return ROTEQ_EXIT_FAIL;
}

static int outputs_commit(outputs *o)
{
    struct {
        roteq_ofile **f;
        const char *flag;
    } all[] = {
        {&o->out, "--out"}, {&o->trace, "--trace"}, {&o->meta, "--trace"}, {&o->series, "--plot"}};
    int rc = ROTEQ_EXIT_OK;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (*all[i].f && roteq_ofile_commit(*all[i].f) && rc == ROTEQ_EXIT_OK) {
            roteq_cli_fail(CMD, "%s: %s", all[i].flag, roteq_error_message());
            rc = ROTEQ_EXIT_FAIL;
        }
        *all[i].f = NULL;
    }
    return rc;
}

static int draw_figures(const sim_args *a, const outputs *o)
{
    const char *inputs[1] = {o->series_path};
    const char *kinds[2] = {"norm", "angle"};
    for (int k = 0; k < 2; k++) {
        roteq_plot_options po;
        memset(&po, 0, sizeof po);
        po.out_dir = a->plot_dir;
        po.format = "png";
        po.log_y = k == 1;
        char fig[4096];
        if (roteq_plot(kinds[k], inputs, 1, &po, fig, sizeof fig))
            return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
        fprintf(stderr, "roteq simulate: wrote %s\n", fig);
    }
    return ROTEQ_EXIT_OK;
}

int roteq_cmd_simulate(int argc, char **argv)
{
    const roteq_optimizer_type *named = roteq_cli_named_optimizer(argc, argv);
    if (named != NULL && roteq_sim_matrix_for(named) != NULL)
        return roteq_cmd_matrix_simulate(named, argc, argv);
    sim_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (check_memory(&a))
        return ROTEQ_EXIT_USAGE;
    outputs o;
    if ((rc = outputs_open(&a, &o)) != 0)
        return rc;

    sim_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = &a.cfg;
    ctx.layer = a.opt->name;
    ctx.trace = o.trace ? roteq_ofile_stream(o.trace) : NULL;
    ctx.names[0] = a.out_path;
    ctx.names[1] = "standard output";
    ctx.names[2] = o.series_path;
    ctx.names[3] = a.trace_path;
    ctx.series[0] = o.out ? roteq_ofile_stream(o.out) : NULL;
    ctx.series[1] = a.format == ROTEQ_FORMAT_CSV ? stdout : NULL;
    ctx.series[2] = o.series ? roteq_ofile_stream(o.series) : NULL;
    for (int i = 0; i < SERIES_SINKS; i++)
        if (ctx.series[i])
            write_series_header(ctx.series[i], &a.cfg);
    roteq_cli_progress_init(&ctx.progress, CMD, !a.quiet);
    if (ctx.trace) {
        write_comment_header(ctx.trace, &a.cfg);
        fputs("step,layer,neuron,norm,angle,lr,weight_decay\n", ctx.trace);
    }
    roteq_sim_observer obs = {on_record, on_progress, &ctx, on_row};
    roteq_sim_result res;
    a.ex.stream_rows = 1;
    fprintf(stderr, "roteq simulate: seed %llu\n", (unsigned long long)a.cfg.seed);
    int st = roteq_sim_run_ex(&a.cfg, &a.ex, &obs, &res);
    if (st) {
        outputs_abort(&o);
        if (st == ROTEQ_EIO && ctx.failed) {
            roteq_cli_fail(CMD, "cannot write '%s': %s", ctx.failed, strerror(errno));
            return ROTEQ_EXIT_FAIL;
        }
        return roteq_cli_fail_lib(CMD, st == ROTEQ_EINVAL || st == ROTEQ_EUNSUPPORTED
                                           ? ROTEQ_EXIT_USAGE
                                           : ROTEQ_EXIT_FAIL);
    }
    if ((rc = outputs_commit(&o)) != ROTEQ_EXIT_OK) {
        outputs_abort(&o);
        return rc;
    }
    if (a.format == ROTEQ_FORMAT_JSON) {
        json_t *js = summary_json(&a.cfg, &res);
        json_dumpf(js, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        fputc('\n', stdout);
        json_decref(js);
    } else if (a.format == ROTEQ_FORMAT_TEXT) {
        print_text(stdout, &a.cfg, &res);
    }
    roteq_sim_result_free(&res);
    return a.plot_dir ? draw_figures(&a, &o) : ROTEQ_EXIT_OK;
}
