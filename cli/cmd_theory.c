/* cmd_theory.c - `roteq theory`: what the theory of rotational equilibrium predicts for one
 * optimizer and its hyperparameters (closed-form equilibrium, steps to get there, angle
 * between checkpoints), and with --steps the predicted trajectory under lr / weight-decay
 * schedules. All numbers come from theory/; this file only parses flags and prints. */
#include "roteq_cli.h"
#include "roteq_theory.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "theory"

/* A json trajectory is one document, built in memory (about 300 bytes a row): at most 300 MB. */
#define THEORY_JSON_ROWS_MAX 1000000

static void usage(FILE *out)
{
    fputs("usage: roteq theory --optimizer NAME [HYPERPARAMETERS] [--dim C] [--grad-norm G]\n"
          "                    [--init-norm N] [--schedule SPEC] [--wd-schedule SPEC]\n"
          "                    [--steps T] [--every K] [--kstep K] [--format text|csv|json]\n"
          "       roteq theory --list [--format text|json]\n\n"
          "Closed-form rotational equilibrium (expected weight norm and RMS angular update per\n"
          "step) of a scale-invariant neuron, the steps needed to come within 1% of it, and\n"
          "with --steps the predicted trajectory from --init-norm (default: the equilibrium\n"
          "norm with a fresh optimizer state).\n\n"
          "Options:\n"
          "  --optimizer NAME     sgd, sgdm, nesterov, adam_l2, adamw, lion, rv_adamw, rv_sgdm,\n"
          "                       rv_lion\n"
          "  --list               the optimizers and their formulas\n"
          "  --dim C              neuron dimension (norms of AdamW, Adam+L2 and Lion need it)\n"
          "  --grad-norm G        RMS of ||g~||, the gradient norm at unit weight norm (norms of\n"
          "                       the SGD family and Adam+L2 need it)\n"
          "  --init-norm N        ||w_0|| for the trajectory and steps to equilibrium\n"
          "  --schedule SPEC      lr schedule: constant | [warmup:W+]cosine:T[:FLOOR] |\n"
          "                       [warmup:W+]step:S:GAMMA | warmup:W\n"
          "  --wd-schedule SPEC   weight-decay schedule (same grammar)\n"
          "  --steps T            print the predicted trajectory of T steps (at most 1e10;\n"
          "                       progress on stderr when it takes long)\n"
          "  --every K            trajectory rows every K steps (default 1)\n"
          "  --kstep K            also predict the RMS angle between w_t and w_{t+K} (any K:\n"
          "                       long gaps take closed forms)\n"
          "  --format F           text (default), csv or json\n"
          "  --help               this text\n\n",
          out);
    roteq_cli_hparam_usage(out);
    roteq_cli_matrix_usage_note(out, "theory");
    fputs("\nUnknown quantities print as NaN (text), empty (csv) or null (json).\n", out);
}

enum {
    OPT_OPTIMIZER = 1,
    OPT_LIST,
    OPT_DIM,
    OPT_GRAD_NORM,
    OPT_INIT_NORM,
    OPT_SCHEDULE,
    OPT_WD_SCHEDULE,
    OPT_STEPS,
    OPT_EVERY,
    OPT_KSTEP,
    OPT_FORMAT,
    OPT_HELP,
};

typedef struct {
    const roteq_optimizer_type *opt;
    roteq_hparams hp;
    roteq_setting setting;
    double init_norm;
    roteq_schedule lr_sched, wd_sched;
    int have_sched;
    size_t steps, every;
    long kstep;
    roteq_format format;
    roteq_equilibrium eq[ROTEQ_PRED_COUNT];
    roteq_equilibrium stat; /* fixed point of the discrete-time recurrence */
    long steps_to_eq;
    double kstep_angle;
} job;

static json_t *json_num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static int list_optimizers(roteq_format format)
{
    if (format == ROTEQ_FORMAT_JSON) {
        json_t *arr = json_array();
        for (int i = 0; i < ROTEQ_OPT_COUNT; i++) {
            const roteq_optimizer_type *o = roteq_optimizers[i];
            /* the hyperparameters that apply, with their defaults (null: required) */
            json_t *hp = json_object();
            for (int k = 0; k < ROTEQ_HP_COUNT; k++)
                if (o->hparams & ROTEQ_HP_BIT(k))
                    json_object_set_new(hp, roteq_hparam_descs[k].key,
                                        json_num(roteq_hparams_get(&o->defaults, k)));
            /* a matrix family's own ones (ns_steps, adjust_lr) */
            const roteq_matrix_hooks *mx = o->family->matrix;
            for (int k = 0; mx != NULL && k < mx->nextra; k++)
                json_object_set_new(hp, mx->extra[k].key,
                                    json_loads(mx->extra[k].default_json, JSON_DECODE_ANY, NULL));
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:o}", "optimizer", o->name,
                                                 "family", o->family->name, "description",
                                                 o->description, "formula", roteq_theory_formula(o),
                                                 "hparams", hp));
        }
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(arr);
        return ROTEQ_EXIT_OK;
    }
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++) {
        const roteq_optimizer_type *o = roteq_optimizers[i];
        printf("%-9s %s\n          %s\n", o->name, o->description, roteq_theory_formula(o));
    }
    puts("\nG = RMS of ||g~|| (gradient norm at unit weight norm), C = dimension, "
         "eta = lr, lambda = weight decay.");
    return ROTEQ_EXIT_OK;
}

static void print_text_double(double x)
{
    if (isfinite(x))
        printf("%.6g", x);
    else
        fputs("NaN", stdout);
}

/* Optimizers whose predictions (best, paper, plain) differ: all are shown. */
static int several_predictions(const roteq_optimizer_type *o)
{
    return o->predictions > 1;
}

/* Run the trajectory, calling `row` every `every` steps (and at the last step). */
typedef void (*row_fn)(void *ctx, size_t t, double lr, double wd, double norm, double angle);

static int trajectory(const job *j, row_fn row, void *ctx)
{
    roteq_transient *tr = roteq_transient_alloc(j->opt, &j->hp, &j->setting, j->init_norm);
    if (tr == NULL)
        return -1;
    roteq_cli_progress progress;
    roteq_cli_progress_init(&progress, CMD, 1);
    for (size_t t = 1; t <= j->steps; t++) {
        if (t % 4096 == 0)
            roteq_cli_progress_update(&progress, t, j->steps);
        double lr = j->hp.lr * roteq_schedule_factor(&j->lr_sched, (long)t);
        double wd = j->hp.weight_decay * roteq_schedule_factor(&j->wd_sched, (long)t);
        double norm, angle;
        if (roteq_transient_step(tr, lr, wd, &norm, &angle)) {
            roteq_transient_free(tr);
            return -1;
        }
        if (t % j->every == 0 || t == j->steps)
            row(ctx, t, lr, wd, norm, angle);
    }
    roteq_cli_progress_update(&progress, j->steps, j->steps);
    roteq_transient_free(tr);
    return 0;
}

static void row_csv(void *ctx, size_t t, double lr, double wd, double norm, double angle)
{
    (void)ctx;
    printf("%zu,", t);
    roteq_fprint_csv_double(stdout, lr);
    fputc(',', stdout);
    roteq_fprint_csv_double(stdout, wd);
    fputc(',', stdout);
    roteq_fprint_csv_double(stdout, norm);
    fputc(',', stdout);
    roteq_fprint_csv_double(stdout, angle);
    fputc('\n', stdout);
}

static void row_text(void *ctx, size_t t, double lr, double wd, double norm, double angle)
{
    (void)ctx;
    printf("%10zu  %-12.6g %-12.6g ", t, lr, wd);
    print_text_double(norm);
    fputs("  ", stdout);
    print_text_double(angle);
    fputc('\n', stdout);
}

static void row_json(void *ctx, size_t t, double lr, double wd, double norm, double angle)
{
    json_array_append_new((json_t *)ctx,
                          json_pack("{s:I, s:o, s:o, s:o, s:o}", "step", (json_int_t)t, "lr",
                                    json_num(lr), "weight_decay", json_num(wd), "norm",
                                    json_num(norm), "angular_update", json_num(angle)));
}

static json_t *hparams_json(const job *j)
{
    json_t *h = json_object();
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        if (j->opt->hparams & ROTEQ_HP_BIT(i)) {
            double v = roteq_hparams_get(&j->hp, (roteq_hparam_id)i);
            json_object_set_new(h, roteq_hparam_descs[i].key,
                                roteq_hparam_descs[i].kind == ROTEQ_HPKIND_FLAG
                                    ? json_boolean(v != 0.0)
                                    : json_num(v));
        }
    return h;
}

static int print_json(const job *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "optimizer", json_string(j->opt->name));
    json_object_set_new(o, "hparams", hparams_json(j));
    json_object_set_new(o, "dim",
                        j->setting.dim ? json_integer((json_int_t)j->setting.dim) : json_null());
    json_object_set_new(o, "grad_norm", json_num(j->setting.grad_norm));
    json_object_set_new(o, "equilibrium_norm", json_num(j->eq[0].norm));
    json_object_set_new(o, "angular_update", json_num(j->eq[0].angular_update));
    json_object_set_new(o, "exact", json_boolean(j->eq[0].exact));
    json_object_set_new(o, "source", json_string(j->eq[0].source));
    if (several_predictions(j->opt))
        for (int p = ROTEQ_PRED_PAPER; p < ROTEQ_PRED_COUNT; p++) {
            char key[64];
            snprintf(key, sizeof key, "equilibrium_norm_%s", roteq_prediction_names[p]);
            json_object_set_new(o, key, json_num(j->eq[p].norm));
            snprintf(key, sizeof key, "angular_update_%s", roteq_prediction_names[p]);
            json_object_set_new(o, key, json_num(j->eq[p].angular_update));
            snprintf(key, sizeof key, "exact_%s", roteq_prediction_names[p]);
            json_object_set_new(o, key, json_boolean(j->eq[p].exact));
        }
    json_object_set_new(o, "stationary_norm", json_num(j->stat.norm));
    json_object_set_new(o, "stationary_angular_update", json_num(j->stat.angular_update));
    json_object_set_new(o, "init_norm", json_num(j->init_norm));
    json_object_set_new(o, "steps_to_equilibrium",
                        j->steps_to_eq >= 0 ? json_integer(j->steps_to_eq) : json_null());
    if (j->kstep > 0) {
        json_object_set_new(o, "kstep", json_integer(j->kstep));
        json_object_set_new(o, "kstep_angle", json_num(j->kstep_angle));
    }
    if (j->steps > 0) {
        char buf[128];
        roteq_schedule_format(&j->lr_sched, buf, sizeof buf);
        json_object_set_new(o, "schedule", json_string(buf));
        roteq_schedule_format(&j->wd_sched, buf, sizeof buf);
        json_object_set_new(o, "wd_schedule", json_string(buf));
        json_t *rows = json_array();
        if (trajectory(j, row_json, rows)) {
            json_decref(rows);
            json_decref(o);
            return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE);
        }
        json_object_set_new(o, "trajectory", rows);
    }
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    fputc('\n', stdout);
    json_decref(o);
    return ROTEQ_EXIT_OK;
}

static int print_csv(const job *j)
{
    if (j->steps > 0) {
        puts("step,lr,weight_decay,norm,angular_update");
        return trajectory(j, row_csv, NULL) ? roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE)
                                            : ROTEQ_EXIT_OK;
    }
    puts("optimizer,prediction,equilibrium_norm,angular_update,exact,steps_to_equilibrium");
    int n = several_predictions(j->opt) ? ROTEQ_PRED_COUNT : 1;
    for (int p = 0; p < n; p++) {
        printf("%s,%s,", j->opt->name, roteq_prediction_names[p]);
        roteq_fprint_csv_double(stdout, j->eq[p].norm);
        fputc(',', stdout);
        roteq_fprint_csv_double(stdout, j->eq[p].angular_update);
        printf(",%d,", j->eq[p].exact);
        if (p == 0 && j->steps_to_eq >= 0)
            printf("%ld", j->steps_to_eq);
        fputc('\n', stdout);
    }
    printf("%s,stationary,", j->opt->name);
    roteq_fprint_csv_double(stdout, j->stat.norm);
    fputc(',', stdout);
    roteq_fprint_csv_double(stdout, j->stat.angular_update);
    printf(",%d,\n", j->stat.exact);
    return ROTEQ_EXIT_OK;
}

static int print_text(const job *j)
{
    printf("optimizer            %s (%s)\n", j->opt->name, j->opt->description);
    fputs("hyperparameters     ", stdout);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        if (j->opt->hparams & ROTEQ_HP_BIT(i))
            printf(" %s=%.6g", roteq_hparam_descs[i].key, roteq_hparams_get(&j->hp, i));
    fputc('\n', stdout);
    int n = several_predictions(j->opt) ? ROTEQ_PRED_COUNT : 1;
    for (int p = 0; p < n; p++) {
        const roteq_equilibrium *e = &j->eq[p];
        printf("%-20s norm ",
               several_predictions(j->opt) ? roteq_prediction_names[p] : "equilibrium");
        print_text_double(e->norm);
        fputs("  angular update ", stdout);
        print_text_double(e->angular_update);
        printf(" rad  [%s; %s]\n", e->exact ? "exact" : "approximate", e->source);
    }
    fputs("stationary           norm ", stdout);
    print_text_double(j->stat.norm);
    fputs("  angular update ", stdout);
    print_text_double(j->stat.angular_update);
    fputs(" rad  [discrete-time fixed point of the recurrence]\n", stdout);
    if (isnan(j->eq[0].norm))
        printf("%-20s %s\n", "",
               j->opt->flags & ROTEQ_OPTF_ROTATIONAL ? "(the norm is held at its initial value)"
                                                     : "(the norm needs --grad-norm and/or --dim)");
    fputs("steps to equilibrium ", stdout);
    if (j->steps_to_eq >= 0)
        printf("%ld (within 1%%, ", j->steps_to_eq);
    else
        fputs("unknown (", stdout);
    if (isnan(j->init_norm))
        fputs("from the equilibrium norm, fresh optimizer state)\n", stdout);
    else
        printf("from norm %.6g)\n", j->init_norm);
    if (j->kstep > 0) {
        printf("angle over %ld steps ", j->kstep);
        print_text_double(j->kstep_angle);
        fputs(" rad (RMS, at equilibrium)\n", stdout);
    }
    if (j->steps > 0) {
        printf("\n%10s  %-12s %-12s %-10s  %s\n", "step", "lr", "weight_decay", "norm",
               "angular_update");
        if (trajectory(j, row_text, NULL))
            return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE);
    }
    return ROTEQ_EXIT_OK;
}

/* One option into `j`; -1 to go on, else the exit code. */
static int parse_option(int c, char **argv, job *j, const char **opt_name, int *list)
{
    double x;
    switch (c) {
    case OPT_OPTIMIZER:
        *opt_name = optarg;
        return -1;
    case OPT_LIST:
        *list = 1;
        return -1;
    case OPT_DIM:
        if (roteq_cli_size(CMD, "dim", optarg, &j->setting.dim))
            return ROTEQ_EXIT_USAGE;
        if (j->setting.dim == 0)
            return roteq_cli_fail(CMD, "--dim: must be positive, got 0");
        if (j->setting.dim > ROTEQ_THEORY_DIM_MAX)
            return roteq_cli_fail(CMD, "--dim: must be at most 2^53 = %zu, got %zu",
                                  ROTEQ_THEORY_DIM_MAX, j->setting.dim);
        return -1;
    case OPT_GRAD_NORM:
    case OPT_INIT_NORM: {
        const char *flag = c == OPT_GRAD_NORM ? "grad-norm" : "init-norm";
        if (roteq_cli_double(CMD, flag, optarg, &x))
            return ROTEQ_EXIT_USAGE;
        if (!(x > 0))
            return roteq_cli_fail(CMD, "--%s: must be positive, got %.17g", flag, x);
        *(c == OPT_GRAD_NORM ? &j->setting.grad_norm : &j->init_norm) = x;
        return -1;
    }
    case OPT_SCHEDULE:
    case OPT_WD_SCHEDULE:
        if (roteq_cli_schedule(CMD, c == OPT_SCHEDULE ? "schedule" : "wd-schedule", optarg,
                               c == OPT_SCHEDULE ? &j->lr_sched : &j->wd_sched))
            return ROTEQ_EXIT_USAGE;
        j->have_sched = 1;
        return -1;
    case OPT_STEPS:
    case OPT_EVERY: {
        const char *flag = c == OPT_STEPS ? "steps" : "every";
        size_t v;
        if (roteq_cli_size(CMD, flag, optarg, &v))
            return ROTEQ_EXIT_USAGE;
        if (v == 0)
            return roteq_cli_fail(CMD, "--%s: must be positive, got 0", flag);
        if (c == OPT_STEPS && v > ROTEQ_CLI_STEPS_MAX)
            return roteq_cli_fail(CMD,
                                  "--steps: at most %zu (1e10) steps of the trajectory, got %zu",
                                  ROTEQ_CLI_STEPS_MAX, v);
        *(c == OPT_STEPS ? &j->steps : &j->every) = v;
        return -1;
    }
    case OPT_KSTEP: {
        long v;
        if (roteq_parse_long(optarg, &v))
            return roteq_cli_fail(CMD, "--kstep: %s", roteq_error_message());
        if (v < 1)
            return roteq_cli_fail(CMD, "--kstep: must be at least 1, got %ld", v);
        j->kstep = v;
        return -1;
    }
    case OPT_FORMAT:
        if (roteq_cli_format(CMD, optarg, "text,csv,json", &j->format))
            return ROTEQ_EXIT_USAGE;
        return -1;
    case OPT_HELP:
        usage(stdout);
        return ROTEQ_EXIT_OK;
    case ':':
    default:
        return roteq_cli_bad_option(CMD, c, argv);
    }
}

int roteq_cmd_theory(int argc, char **argv)
{
    const roteq_optimizer_type *named = roteq_cli_named_optimizer(argc, argv);
    if (named != NULL && named->family->matrix != NULL)
        return roteq_cmd_matrix_theory(named, argc, argv);
    struct option opts[32] = {
        {"optimizer", required_argument, NULL, OPT_OPTIMIZER},
        {"list", no_argument, NULL, OPT_LIST},
        {"dim", required_argument, NULL, OPT_DIM},
        {"grad-norm", required_argument, NULL, OPT_GRAD_NORM},
        {"init-norm", required_argument, NULL, OPT_INIT_NORM},
        {"schedule", required_argument, NULL, OPT_SCHEDULE},
        {"wd-schedule", required_argument, NULL, OPT_WD_SCHEDULE},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"every", required_argument, NULL, OPT_EVERY},
        {"kstep", required_argument, NULL, OPT_KSTEP},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, OPT_HELP},
    };
    size_t n = roteq_cli_hparam_options(opts, 12);
    opts[n] = (struct option){0, 0, 0, 0};

    job j;
    memset(&j, 0, sizeof j);
    j.setting.grad_norm = NAN;
    j.init_norm = NAN;
    j.lr_sched = j.wd_sched = roteq_schedule_constant();
    j.every = 1;
    j.format = ROTEQ_FORMAT_TEXT;
    j.steps_to_eq = -1;
    j.kstep_angle = NAN;
    const char *opt_name = NULL;
    int list = 0;
    roteq_cli_hparams h;
    roteq_cli_hparams_init(&h);

    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int r = roteq_cli_hparam_option(CMD, c, optarg, &h);
        if (r < 0)
            return ROTEQ_EXIT_USAGE;
        if (r > 0)
            continue;
        if ((r = parse_option(c, argv, &j, &opt_name, &list)) >= 0)
            return r;
    }
    if (optind < argc)
        return roteq_cli_fail(CMD, "unexpected argument '%s'", argv[optind]);
    if (list) {
        if (j.format == ROTEQ_FORMAT_CSV)
            return roteq_cli_fail(CMD, "--format: --list prints text or json");
        return list_optimizers(j.format);
    }
    if (opt_name == NULL)
        return roteq_cli_fail(CMD, "--optimizer is required (or --list; see --help)");
    j.opt = roteq_optimizer_lookup(opt_name);
    if (j.opt == NULL)
        return roteq_cli_fail(CMD, "--optimizer: %s", roteq_error_message());
    if (roteq_cli_hparams_finish(CMD, &j.opt, &h, &j.hp))
        return ROTEQ_EXIT_USAGE;
    if (j.have_sched && j.steps == 0)
        return roteq_cli_fail(CMD, "--schedule/--wd-schedule: need --steps T for a trajectory");
    /* text and csv rows stream to stdout; a json document is built whole in memory */
    size_t rows = j.steps / j.every + (j.steps % j.every != 0);
    if (j.format == ROTEQ_FORMAT_JSON && rows > THEORY_JSON_ROWS_MAX)
        return roteq_cli_fail(CMD,
                              "--format json: at most %d trajectory rows (they are held in "
                              "memory), got %zu; use --format csv or a larger --every",
                              THEORY_JSON_ROWS_MAX, rows);

    for (int p = 0; p < ROTEQ_PRED_COUNT; p++)
        if (roteq_theory_equilibrium(j.opt, &j.hp, &j.setting, (roteq_prediction)p, &j.eq[p]))
            return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE);
    if (roteq_theory_stationary(j.opt, &j.hp, &j.setting, &j.stat))
        return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE);
    if (j.opt->flags & ROTEQ_OPTF_ROTATIONAL && !isnan(j.init_norm)) {
        for (int p = 0; p < ROTEQ_PRED_COUNT; p++)
            j.eq[p].norm = j.init_norm; /* held at its initial value */
        j.stat.norm = j.init_norm;
    }
    /* Time scale 1/(eta*lambda); give up (null) beyond 100 of them or 10^7 steps. */
    double horizon = 100.0 / (j.hp.lr * j.hp.weight_decay) + 1000.0;
    long max_steps = horizon < 1e7 ? (long)horizon : 10000000L;
    j.steps_to_eq =
        roteq_theory_steps_to_equilibrium(j.opt, &j.hp, &j.setting, j.init_norm, 0.01, max_steps);
    if (j.kstep > 0)
        j.kstep_angle = roteq_theory_kstep_angle(j.opt, &j.hp, &j.setting, j.kstep);

    switch (j.format) {
    case ROTEQ_FORMAT_JSON:
        return print_json(&j);
    case ROTEQ_FORMAT_CSV:
        return print_csv(&j);
    default:
        return print_text(&j);
    }
}
