/* cmd_simulate.c - `roteq simulate`: run the random-walk simulator on an ensemble of neurons and
 * report measured equilibrium against theory's prediction. All numerics live in sim/
 * (roteq_sim_run); this file parses flags, opens every output file before the run (so a bad
 * path fails at once and nothing partial is ever left), streams the per-neuron trace from the
 * observer callback, and prints the summary as text, CSV rows or JSON (docs/FORMATS.md §1, §2,
 * §4). */
#include "roteq_cli.h"
#include "roteq_plots.h"
#include "roteq_sim.h"

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
        "  --steps T              optimizer steps (default 10000)\n"
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
        "  --quiet                no progress bar\n"
        "  --help                 this text\n\n",
        out);
    roteq_cli_hparam_usage(out);
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
    OPT_QUIET,
    OPT_HELP
};

typedef struct {
    const roteq_sim_config *cfg;
    FILE *trace;
    int progress;
    double last_progress;
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
    return ferror(c->trace) ? ROTEQ_EIO : 0;
}

static void on_progress(void *vctx, size_t step, size_t steps)
{
    sim_ctx *c = vctx;
    if (!c->progress)
        return;
    double now = roteq_seconds();
    if (step < steps && now - c->last_progress < 0.2)
        return;
    c->last_progress = now;
    int width = 40, done = (int)((double)width * (double)step / (double)steps);
    fprintf(stderr, "\r[%.*s%*s] %3d%% step %zu/%zu", done,
            "========================================", width - done, "",
            (int)(100.0 * (double)step / (double)steps), step, steps);
    if (step >= steps)
        fputs("\r\033[K", stderr);
    fflush(stderr);
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
static void write_series(FILE *f, const roteq_sim_config *cfg, const roteq_sim_result *r)
{
    write_comment_header(f, cfg);
    fputs("step,group,lr,weight_decay,n,norm_mean,norm_std,norm_q05,norm_q50,norm_q95,"
          "angle_rms,angle_mean,angle_std,angle_q05,angle_q50,angle_q95,pred_norm,pred_angle,"
          "eq_norm,eq_angle,update_rms_mean,update_rms_q05,update_rms_q50,update_rms_q95\n",
          f);
    const roteq_equilibrium *eq = &r->predicted[ROTEQ_PRED_BEST];
    for (size_t i = 0; i < r->nrows; i++) {
        const roteq_sim_row *w = &r->rows[i];
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

int roteq_cmd_simulate(int argc, char **argv)
{
    if (roteq_cli_is_muon(argc, argv))
        return roteq_cmd_muon_simulate(argc, argv);
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
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, OPT_HELP},
    };
    size_t nopt = 0;
    while (opts[nopt].name)
        nopt++;
    nopt = roteq_cli_hparam_options(opts, nopt);
    opts[nopt] = (struct option){NULL, 0, NULL, 0};

    roteq_cli_hparams hps;
    roteq_cli_hparams_init(&hps);
    const roteq_optimizer_type *opt = NULL;
    roteq_sim_config cfg;
    roteq_sim_config_init(&cfg, &roteq_adamw);
    roteq_schedule lr_s = roteq_schedule_constant(), wd_s = roteq_schedule_constant();
    const char *out_path = NULL, *trace_path = NULL, *plot_dir = NULL;
    roteq_format format = ROTEQ_FORMAT_TEXT;
    roteq_sim_options ex = {ROTEQ_SIM_ISA_AUTO, 0};
    int quiet = 0;
    size_t sz;
    double d;

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int h = roteq_cli_hparam_option(CMD, c, optarg, &hps);
        if (h < 0)
            return ROTEQ_EXIT_USAGE;
        if (h > 0)
            continue;
        switch (c) {
        case OPT_OPTIMIZER:
            if (!(opt = roteq_optimizer_lookup(optarg)))
                return roteq_cli_fail(CMD, "--optimizer: %s", roteq_error_message());
            break;
        case OPT_NEURONS:
        case OPT_DIM:
        case OPT_STEPS:
        case OPT_EVERY:
        case OPT_THREADS: {
            const char *flag = c == OPT_NEURONS ? "neurons"
                               : c == OPT_DIM   ? "dim"
                               : c == OPT_STEPS ? "steps"
                               : c == OPT_EVERY ? "every"
                                                : "threads";
            if (roteq_cli_size(CMD, flag, optarg, &sz))
                return ROTEQ_EXIT_USAGE;
            if (sz == 0 && c != OPT_THREADS)
                return roteq_cli_fail(CMD, "--%s: must be positive", flag);
            if (c == OPT_NEURONS)
                cfg.neurons = sz;
            else if (c == OPT_DIM) {
                if (sz < 2)
                    return roteq_cli_fail(CMD, "--dim: must be at least 2, got %zu", sz);
                cfg.dim = sz;
            } else if (c == OPT_STEPS)
                cfg.steps = sz;
            else if (c == OPT_EVERY)
                cfg.every = sz;
            else {
                if (sz > 4096)
                    return roteq_cli_fail(CMD, "--threads: at most 4096, got %zu", sz);
                cfg.threads = (unsigned)sz;
            }
            break;
        }
        case OPT_SEED:
            if (roteq_parse_u64(optarg, &cfg.seed))
                return roteq_cli_fail(CMD, "--seed: %s", roteq_error_message());
            break;
        case OPT_GRADIENT:
            if (roteq_grad_model_lookup(optarg, &cfg.grad_model))
                return roteq_cli_fail(CMD, "--gradient: %s", roteq_error_message());
            break;
        case OPT_GRAD_NORM:
        case OPT_GRAD_SPREAD:
        case OPT_DEAD:
        case OPT_RADIAL:
        case OPT_INIT_NORM: {
            const char *flag = c == OPT_GRAD_NORM     ? "grad-norm"
                               : c == OPT_GRAD_SPREAD ? "grad-spread"
                               : c == OPT_DEAD        ? "dead-fraction"
                               : c == OPT_RADIAL      ? "radial"
                                                      : "init-norm";
            if (roteq_cli_double(CMD, flag, optarg, &d))
                return ROTEQ_EXIT_USAGE;
            if (c == OPT_GRAD_NORM || c == OPT_INIT_NORM) {
                if (!(d > 0))
                    return roteq_cli_fail(CMD, "--%s: must be positive, got %s", flag, optarg);
                *(c == OPT_GRAD_NORM ? &cfg.grad_norm : &cfg.init_norm) = d;
            } else if (c == OPT_GRAD_SPREAD) {
                if (!(d >= 0 && d <= 5))
                    return roteq_cli_fail(CMD, "--grad-spread: must be in [0, 5], got %s", optarg);
                cfg.grad_spread = d;
            } else if (c == OPT_DEAD) {
                if (!(d >= 0 && d < 1))
                    return roteq_cli_fail(CMD, "--dead-fraction: must be in [0, 1), got %s",
                                          optarg);
                cfg.dead_fraction = d;
            } else {
                cfg.radial = d;
            }
            break;
        }
        case OPT_SCHEDULE:
            if (roteq_cli_schedule(CMD, "schedule", optarg, &lr_s))
                return ROTEQ_EXIT_USAGE;
            break;
        case OPT_WD_SCHEDULE:
            if (roteq_cli_schedule(CMD, "wd-schedule", optarg, &wd_s))
                return ROTEQ_EXIT_USAGE;
            break;
        case OPT_OUT:
            out_path = optarg;
            break;
        case OPT_TRACE:
            trace_path = optarg;
            break;
        case OPT_FORMAT:
            if (roteq_cli_format(CMD, optarg, "text,csv,json", &format))
                return ROTEQ_EXIT_USAGE;
            break;
        case OPT_PLOT:
            plot_dir = optarg;
            break;
        case OPT_ISA: {
            int found = 0;
            for (int i = 0; i < ROTEQ_SIM_ISA_COUNT; i++)
                if (strcmp(optarg, roteq_sim_isa_names[i]) == 0) {
                    ex.isa = (roteq_sim_isa)i;
                    found = 1;
                }
            if (!found)
                return roteq_cli_fail(CMD,
                                      "--isa: unknown '%s' (known: auto, generic, avx2, "
                                      "avx512)",
                                      optarg);
            if (!roteq_sim_isa_available(ex.isa))
                return roteq_cli_fail(CMD, "--isa: %s is not available on this machine", optarg);
            break;
        }
        case OPT_QUIET:
            quiet = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return ROTEQ_EXIT_OK;
        case ':':
        default:
            return roteq_cli_bad_option(CMD, c, argv);
        }
    }
    if (optind < argc)
        return roteq_cli_fail(CMD, "unexpected argument '%s'", argv[optind]);
    if (!opt)
        return roteq_cli_fail(CMD, "--optimizer is required (see roteq simulate --help)");
    roteq_hparams hp;
    if (roteq_cli_hparams_finish(CMD, &opt, &hps, &hp))
        return ROTEQ_EXIT_USAGE;
    cfg.opt = opt;
    cfg.hp = hp;
    cfg.lr_schedule = lr_s;
    cfg.wd_schedule = wd_s;
    if (roteq_sim_config_validate(&cfg))
        return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE);
    if (plot_dir && make_dir(plot_dir))
        return roteq_cli_fail(CMD, "--plot: cannot create directory '%s'", plot_dir);

    /* Open every output before the run: a bad path fails now, and nothing is left behind. */
    roteq_ofile *out_f = NULL, *trace_f = NULL, *meta_f = NULL;
    if (out_path && !(out_f = roteq_ofile_open(out_path)))
        return roteq_cli_fail(CMD, "--out: %s", roteq_error_message());
    if (trace_path && !(trace_f = roteq_ofile_open(trace_path))) {
        roteq_ofile_abort(out_f);
        return roteq_cli_fail(CMD, "--trace: %s", roteq_error_message());
    }
    if (trace_f && strcmp(trace_path, "-") != 0 && write_trace_meta(trace_path, &cfg, &meta_f)) {
        roteq_ofile_abort(out_f);
        roteq_ofile_abort(trace_f);
        return roteq_cli_fail(CMD, "--trace: cannot write metadata %s.json: %s", trace_path,
                              roteq_error_message());
    }
    sim_ctx ctx = {&cfg, trace_f ? roteq_ofile_stream(trace_f) : NULL, 0, 0.0, opt->name};
    ctx.progress = !quiet && isatty(STDERR_FILENO) &&
                   (double)cfg.neurons * (double)cfg.dim * (double)cfg.steps > 3e8;
    if (ctx.trace) {
        write_comment_header(ctx.trace, &cfg);
        fputs("step,layer,neuron,norm,angle,lr,weight_decay\n", ctx.trace);
    }
    roteq_sim_observer obs = {on_record, on_progress, &ctx};
    roteq_sim_result res;
    fprintf(stderr, "roteq simulate: seed %llu\n", (unsigned long long)cfg.seed);
    int st = roteq_sim_run_ex(&cfg, &ex, &obs, &res);
    if (st) {
        roteq_ofile_abort(out_f);
        roteq_ofile_abort(trace_f);
        roteq_ofile_abort(meta_f);
        if (st == ROTEQ_EIO)
            return roteq_cli_fail(CMD, "--trace: write error on %s", trace_path);
        return roteq_cli_fail_lib(CMD, st == ROTEQ_EINVAL || st == ROTEQ_EUNSUPPORTED
                                           ? ROTEQ_EXIT_USAGE
                                           : ROTEQ_EXIT_FAIL);
    }
    if (out_f)
        write_series(roteq_ofile_stream(out_f), &cfg, &res);
    int rc = ROTEQ_EXIT_OK;
    if (out_f && roteq_ofile_commit(out_f))
        rc = roteq_cli_fail(CMD, "--out: %s", roteq_error_message());
    if (trace_f && roteq_ofile_commit(trace_f))
        rc = roteq_cli_fail(CMD, "--trace: %s", roteq_error_message());
    if (meta_f && roteq_ofile_commit(meta_f))
        rc = roteq_cli_fail(CMD, "--trace: %s", roteq_error_message());
    if (rc) {
        roteq_sim_result_free(&res);
        return rc;
    }

    if (format == ROTEQ_FORMAT_JSON) {
        json_t *o = summary_json(&cfg, &res);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        fputc('\n', stdout);
        json_decref(o);
    } else if (format == ROTEQ_FORMAT_CSV) {
        write_series(stdout, &cfg, &res);
    } else {
        print_text(stdout, &cfg, &res);
    }

    if (plot_dir) {
        /* The figures read the series CSV; write one into DIR when --out did not. */
        char series[4096];
        if (out_path && strcmp(out_path, "-") != 0)
            snprintf(series, sizeof series, "%s", out_path);
        else {
            snprintf(series, sizeof series, "%s/series.csv", plot_dir);
            roteq_ofile *sf = roteq_ofile_open(series);
            if (!sf || (write_series(roteq_ofile_stream(sf), &cfg, &res), roteq_ofile_commit(sf))) {
                roteq_sim_result_free(&res);
                return roteq_cli_fail(CMD, "--plot: %s", roteq_error_message());
            }
        }
        const char *inputs[1] = {series};
        const char *kinds[2] = {"norm", "angle"};
        for (int k = 0; k < 2; k++) {
            roteq_plot_options po;
            memset(&po, 0, sizeof po);
            po.out_dir = plot_dir;
            po.format = "png";
            po.log_y = k == 1;
            char fig[4096];
            if (roteq_plot(kinds[k], inputs, 1, &po, fig, sizeof fig)) {
                roteq_sim_result_free(&res);
                return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
            }
            fprintf(stderr, "roteq simulate: wrote %s\n", fig);
        }
    }
    roteq_sim_result_free(&res);
    return rc;
}
