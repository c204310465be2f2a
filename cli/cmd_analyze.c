/* cmd_analyze.c - `roteq analyze`: measure rotational equilibrium in a training trace (CSV) or a
 * snapshot series (directory) from another trainer, and compare it with theory's prediction.
 * This file parses flags, finds and merges the metadata (command line wins over the sidecar),
 * opens every output before the work starts (nothing partial is left on failure) and prints;
 * all measuring lives in analysis/. */
#include "roteq_analysis.h"
#include "roteq_cli.h"
#include "roteq_plots.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "analyze"

static void usage(FILE *out)
{
    fputs("usage: roteq analyze TRACE.csv|SNAPSHOT_DIR [--meta FILE] [--optimizer NAME]\n"
          "                     [HYPERPARAMETERS] [--dim C] [--grad-norm G] [--tolerance X]\n"
          "                     [--window K] [--per-neuron] [--layers REGEX] [--step-regex RE]\n"
          "                     [--exclude REGEX] [--key NAME] [--neuron-axis REGEX=AXIS]\n"
          "                     [--series FILE] [--out FILE] [--plot DIR]\n"
          "                     [--format text|csv|json] [--against equilibrium|transient]\n"
          "                     [--explain]\n\n"
          "Measures, per layer, the equilibrium norm and RMS angular update over the final\n"
          "window, their error against theory's prediction, the step from which the layer\n"
          "stayed within the tolerance band, the convergence rate, the spread across neurons,\n"
          "dead and collapsed neurons, and a verdict; and the balance across layers.\n\n"
          "Input: a trace CSV with columns step,layer,neuron,norm,angle[,lr,weight_decay]\n"
          "(any order), or a directory of snapshots (.safetensors or torch.save .pt/.bin files,\n"
          "checkpoint-N/ folders of them, or folders of one .npy per layer). See\n"
          "analysis/README.md and docs/FORMATS.md.\n\n"
          "Options:\n"
          "  --meta FILE          run metadata JSON (default: TRACE.json, then TRACE without\n"
          "                       its extension + .json, beside the input, when present)\n"
          "  --optimizer NAME     sgd, sgdm, nesterov, adam_l2, adamw, lion, rv_adamw, rv_sgdm,\n"
          "                       rv_lion (overrides the metadata)\n"
          "  --dim C              neuron length of every layer (overrides the metadata)\n"
          "  --grad-norm G        RMS gradient norm at unit weight norm (SGD, Adam+L2 norms)\n"
          "  --tolerance X        relative band around the prediction (default 0.05)\n"
          "  --window K           at most K records in the final window, which is the last\n"
          "                       quarter of each layer's records (default 200)\n"
          "  --per-neuron         per-neuron results (csv: docs/FORMATS.md section 3)\n"
          "  --layers REGEX       only layers (trace) or tensors (snapshots) whose name matches\n"
          "                       (POSIX extended regular expression, unanchored)\n"
          "  --step-regex RE      snapshots: the step is RE's first group (or match) in each\n"
          "                       entry's name (default: the integer labelled step, global_step,\n"
          "                       checkpoint- or iter, else the name's only integer)\n"
          "  --exclude REGEX      snapshots: drop the directory's entries whose name matches\n"
          "  --key NAME           torch.save files: the key of the model's state_dict (default:\n"
          "                       the top level, else model, state_dict, model_state_dict)\n"
          "  --neuron-axis RE=A   tensors whose name matches RE have their neurons along axis A\n"
          "                       (negative: from the end; repeatable, first match wins; before\n"
          "                       the metadata's neuron_axis and the Flax/GPT-2 conventions)\n"
          "  --series FILE        per-step statistics of each layer (docs/FORMATS.md section 2)\n"
          "  --out FILE           write the report to FILE instead of stdout\n"
          "  --plot DIR           draw norm, angle and per-neuron histogram figures into DIR\n"
          "  --format F           text (default), csv or json\n"
          "  --against P          the prediction verdicts use: equilibrium (closed form) or\n"
          "                       transient (default: transient where lr/wd vary, else\n"
          "                       equilibrium); both are always reported\n"
          "  --explain            split each layer's angle deviation into parts (needs the\n"
          "                       trace columns update_norm, update_radial[, update_cos_prev])\n"
          "  --help               this text\n\n",
          out);
    roteq_cli_hparam_usage(out);
    fputs("\nExit status: 0 analysed; 2 bad usage or bad input (one line naming the file and\n"
          "line or tensor); 1 an input or output that cannot be read or written, or a snapshot\n"
          "that changes while it is read.\n",
          out);
}

enum {
    OPT_META = 1,
    OPT_OPTIMIZER,
    OPT_DIM,
    OPT_GRAD_NORM,
    OPT_TOLERANCE,
    OPT_WINDOW,
    OPT_PER_NEURON,
    OPT_LAYERS,
    OPT_STEP_REGEX,
    OPT_EXCLUDE,
    OPT_KEY,
    OPT_NEURON_AXIS,
    OPT_SERIES,
    OPT_OUT,
    OPT_PLOT,
    OPT_FORMAT,
    OPT_HELP,
    OPT_AGAINST,
    OPT_EXPLAIN,
};

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The sidecar beside the input: INPUT.json (what the recorder and `roteq simulate --trace`
 * write), then INPUT without its extension + .json. Returns a malloc'd path or NULL. */
static char *find_meta(const char *input)
{
    size_t n = strlen(input);
    while (n > 1 && input[n - 1] == '/')
        n--;
    char *p = malloc(n + 6);
    if (p == NULL)
        return NULL;
    snprintf(p, n + 6, "%.*s.json", (int)n, input);
    if (file_exists(p))
        return p;
    const char *slash = strrchr(input, '/'), *dot = strrchr(input, '.');
    if (dot && (!slash || dot > slash) && (size_t)(dot - input) < n) {
        snprintf(p, n + 6, "%.*s.json", (int)(dot - input), input);
        if (file_exists(p))
            return p;
    }
    free(p);
    return NULL;
}

/* Command line over metadata: the CLI's values replace the file's at every level. */
static int merge_cli(roteq_analysis_meta *m, const roteq_optimizer_type *opt,
                     const roteq_cli_hparams *h, size_t dim, double grad_norm)
{
    if (m->muon && (opt || h->given))
        return roteq_cli_fail(CMD,
                              "%s: a %s run takes its optimizer and hyperparameters from "
                              "the metadata only",
                              m->path ? m->path : "metadata", m->matrix_opt->name);
    if (opt)
        m->opt = opt;
    if ((h->given & ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV)) && m->opt && m->opt->nesterov_variant)
        m->opt = m->opt->nesterov_variant;
    if (h->given && m->opt == NULL)
        return roteq_cli_fail(CMD, "hyperparameter flags need --optimizer (or an optimizer in "
                                   "the metadata)");
    for (int i = 0; i < ROTEQ_HP_COUNT; i++) {
        if (!(h->given & ROTEQ_HP_BIT(i)) ||
            (i == ROTEQ_HP_NESTEROV && m->opt->nesterov_variant == m->opt))
            continue;
        if (!(m->opt->hparams & ROTEQ_HP_BIT(i)))
            return roteq_cli_fail(CMD, "--%s: does not apply to %s", roteq_hparam_descs[i].flag,
                                  m->opt->name);
        roteq_hparams_set(&m->hp, (roteq_hparam_id)i, roteq_hparams_get(&h->values, i));
        m->given |= ROTEQ_HP_BIT(i);
        m->forced |= ROTEQ_HP_BIT(i);
        for (size_t k = 0; k < m->nlayers; k++)
            m->layers[k].given &= ~ROTEQ_HP_BIT(i);
    }
    if (m->opt) {
        /* A file read before the optimizer was known (it came from the command line) may hold
         * keys that do not apply. */
        unsigned stray = m->given & ~m->opt->hparams & ~ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV);
        for (size_t k = 0; k < m->nlayers && !stray; k++)
            stray = m->layers[k].given & ~m->opt->hparams & ~ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV);
        for (int i = 0; i < ROTEQ_HP_COUNT; i++)
            if (stray & ROTEQ_HP_BIT(i))
                return roteq_cli_fail(CMD, "%s: %s does not apply to %s",
                                      m->path ? m->path : "metadata", roteq_hparam_descs[i].key,
                                      m->opt->name);
    }
    if (dim) {
        m->dim = dim;
        for (size_t k = 0; k < m->nlayers; k++)
            m->layers[k].dim = 0;
    }
    if (!isnan(grad_norm)) {
        m->grad_norm = grad_norm;
        for (size_t k = 0; k < m->nlayers; k++)
            m->layers[k].grad_norm = DNAN;
    }
    return 0;
}

typedef struct {
    const char *input, *meta_path, *layers, *step_regex, *series, *out, *plot, *exclude, *key;
    roteq_analysis_axis_rule axes[16];
    char axis_re[16][256];
    size_t naxes;
    const roteq_optimizer_type *opt;
    roteq_cli_hparams h;
    size_t dim, window;
    double grad_norm, tolerance;
    int per_neuron, explain;
    roteq_analysis_against against;
    roteq_format format;
} args;

/* --neuron-axis REGEX=AXIS (the last '=' splits: regexes may hold '='). */
static int parse_axis(const char *arg, args *a)
{
    const char *eq = strrchr(arg, '=');
    char *end;
    long axis = eq ? strtol(eq + 1, &end, 10) : 0;
    if (eq == NULL || eq == arg || eq[1] == '\0' || *end != '\0' || axis < -8 || axis > 7 ||
        (size_t)(eq - arg) >= sizeof a->axis_re[0])
        return roteq_cli_fail(CMD,
                              "--neuron-axis: expected REGEX=AXIS with AXIS in -8..7, got '%s'",
                              arg) != 0;
    if (a->naxes == sizeof a->axes / sizeof a->axes[0])
        return roteq_cli_fail(CMD, "--neuron-axis: at most 16 rules") != 0;
    memcpy(a->axis_re[a->naxes], arg, (size_t)(eq - arg));
    a->axis_re[a->naxes][eq - arg] = '\0';
    a->axes[a->naxes] = (roteq_analysis_axis_rule){a->axis_re[a->naxes], (int)axis};
    a->naxes++;
    return 0;
}

static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    roteq_cli_hparams_init(&a->h);
    a->grad_norm = DNAN;
    a->tolerance = 0.05;
    a->window = 200;
    a->format = ROTEQ_FORMAT_TEXT;
    struct option opts[32 + ROTEQ_CLI_HP_OPTIONS_MAX] = {
        {"meta", required_argument, NULL, OPT_META},
        {"optimizer", required_argument, NULL, OPT_OPTIMIZER},
        {"dim", required_argument, NULL, OPT_DIM},
        {"grad-norm", required_argument, NULL, OPT_GRAD_NORM},
        {"tolerance", required_argument, NULL, OPT_TOLERANCE},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"per-neuron", no_argument, NULL, OPT_PER_NEURON},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"step-regex", required_argument, NULL, OPT_STEP_REGEX},
        {"exclude", required_argument, NULL, OPT_EXCLUDE},
        {"key", required_argument, NULL, OPT_KEY},
        {"neuron-axis", required_argument, NULL, OPT_NEURON_AXIS},
        {"series", required_argument, NULL, OPT_SERIES},
        {"out", required_argument, NULL, OPT_OUT},
        {"plot", required_argument, NULL, OPT_PLOT},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, OPT_HELP},
        {"against", required_argument, NULL, OPT_AGAINST},
        {"explain", no_argument, NULL, OPT_EXPLAIN},
    };
    size_t n = 19;
    n = roteq_cli_hparam_options(opts, n);
    opts[n] = (struct option){0, 0, 0, 0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int hp = roteq_cli_hparam_option(CMD, c, optarg, &a->h);
        if (hp < 0)
            return ROTEQ_EXIT_USAGE;
        if (hp > 0)
            continue;
        switch (c) {
        case OPT_META:
            a->meta_path = optarg;
            break;
        case OPT_OPTIMIZER:
            a->opt = roteq_optimizer_lookup(optarg);
            if (a->opt == NULL)
                return roteq_cli_fail(CMD, "--optimizer: %s", roteq_error_message());
            if (a->opt->family->matrix != NULL) /* a matrix optimizer needs each layer's shape */
                return roteq_cli_fail(CMD,
                                      "--optimizer %s: give it in the metadata "
                                      "(\"optimizer\": \"%s\", each layer's shape or "
                                      "dim; docs/FORMATS.md)",
                                      optarg, optarg);
            break;
        case OPT_DIM:
            if (roteq_cli_size(CMD, "dim", optarg, &a->dim))
                return ROTEQ_EXIT_USAGE;
            if (a->dim == 0)
                return roteq_cli_fail(CMD, "--dim: must be positive");
            break;
        case OPT_GRAD_NORM:
            if (roteq_cli_double(CMD, "grad-norm", optarg, &a->grad_norm))
                return ROTEQ_EXIT_USAGE;
            if (!(a->grad_norm > 0))
                return roteq_cli_fail(CMD, "--grad-norm: must be positive");
            break;
        case OPT_TOLERANCE:
            if (roteq_cli_double(CMD, "tolerance", optarg, &a->tolerance))
                return ROTEQ_EXIT_USAGE;
            if (!(a->tolerance > 0 && a->tolerance < 1))
                return roteq_cli_fail(CMD, "--tolerance: must be in (0, 1), got %s", optarg);
            break;
        case OPT_WINDOW:
            if (roteq_cli_size(CMD, "window", optarg, &a->window))
                return ROTEQ_EXIT_USAGE;
            if (a->window == 0 || a->window > ((size_t)1 << 20))
                return roteq_cli_fail(CMD, "--window: must be in 1..1048576, got %s", optarg);
            break;
        case OPT_PER_NEURON:
            a->per_neuron = 1;
            break;
        case OPT_LAYERS:
            a->layers = optarg;
            break;
        case OPT_STEP_REGEX:
            a->step_regex = optarg;
            break;
        case OPT_EXCLUDE:
            a->exclude = optarg;
            break;
        case OPT_KEY:
            a->key = optarg;
            break;
        case OPT_NEURON_AXIS:
            if (parse_axis(optarg, a))
                return ROTEQ_EXIT_USAGE;
            break;
        case OPT_SERIES:
            a->series = optarg;
            break;
        case OPT_OUT:
            a->out = optarg;
            break;
        case OPT_PLOT:
            a->plot = optarg;
            break;
        case OPT_FORMAT:
            if (roteq_cli_format(CMD, optarg, "text,csv,json", &a->format))
                return ROTEQ_EXIT_USAGE;
            break;
        case OPT_AGAINST:
            if (strcmp(optarg, "equilibrium") == 0)
                a->against = ROTEQ_AGAINST_EQUILIBRIUM;
            else if (strcmp(optarg, "transient") == 0)
                a->against = ROTEQ_AGAINST_TRANSIENT;
            else
                return roteq_cli_fail(CMD, "--against: expected equilibrium or transient, got '%s'",
                                      optarg);
            break;
        case OPT_EXPLAIN:
            a->explain = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return -1;
        case ':':
        default:
            return roteq_cli_bad_option(CMD, c, argv);
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return ROTEQ_EXIT_USAGE;
    }
    a->input = argv[optind];
    return 0;
}

static int draw(const char *dir, const char *series, const char *neurons)
{
    const char *kinds[3] = {"norm", "angle", "histogram"};
    for (int k = 0; k < 3; k++) {
        roteq_plot_options po;
        memset(&po, 0, sizeof po);
        po.out_dir = dir;
        po.format = "png";
        po.log_y = k == 1;
        const char *inputs[1] = {k < 2 ? series : neurons};
        char fig[4096];
        if (roteq_plot(kinds[k], inputs, 1, &po, fig, sizeof fig))
            return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
        fprintf(stderr, "roteq analyze: wrote %s\n", fig);
    }
    return 0;
}

/* A hyperparameter flag with an impossible value, named before any data is read (else it would
 * surface at the first row, prefixed with a trace line it has nothing to do with). */
static int check_flags(const roteq_analysis_meta *m)
{
    if (m->opt == NULL || m->forced == 0)
        return 0;
    roteq_hparams hp = roteq_optimizer_defaults(m->opt);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        if (m->given & ROTEQ_HP_BIT(i))
            roteq_hparams_set(&hp, (roteq_hparam_id)i, roteq_hparams_get(&m->hp, i));
    if (isnan(hp.lr)) /* given per layer or by a trace column: any valid value stands in */
        hp.lr = 1e-3;
    if (isnan(hp.weight_decay))
        hp.weight_decay = 1e-3;
    roteq_hparam_id bad;
    if (roteq_hparams_validate(m->opt, &hp, &bad) && (m->forced & ROTEQ_HP_BIT(bad)))
        return roteq_cli_fail(CMD, "--%s: %s", roteq_hparam_descs[bad].flag, roteq_error_message());
    return 0;
}

/* No output may be a directory, lie in a missing folder, or be an input (the trace, the
 * metadata) or another output: each would fail or destroy data only after the work. */
static int check_outputs(const args *a, const char *series, const char *neurons, const char *meta)
{
    const char *inputs[2] = {strcmp(a->input, "-") ? a->input : NULL, meta};
    const struct {
        const char *flag, *path;
    } outs[3] = {
        {"--out", a->out}, {a->series ? "--series" : "--plot", series}, {"--plot", neurons}};
    for (int i = 0; i < 3; i++) {
        if (outs[i].path == NULL)
            continue;
        int st = roteq_ofile_check(outs[i].path, inputs, 2);
        if (st) {
            roteq_cli_fail(CMD, "%s: %s", outs[i].flag, roteq_error_message());
            return st == ROTEQ_EIO ? ROTEQ_EXIT_FAIL : ROTEQ_EXIT_USAGE;
        }
        for (int j = 0; j < i; j++)
            if (outs[j].path && strcmp(outs[j].path, "-") != 0 &&
                (strcmp(outs[i].path, outs[j].path) == 0 ||
                 roteq_same_file(outs[i].path, outs[j].path)))
                return roteq_cli_fail(CMD, "%s and %s name the same file '%s'", outs[j].flag,
                                      outs[i].flag, outs[i].path);
    }
    return 0;
}

static int write_report(FILE *f, const args *a, const roteq_analysis_result *r)
{
    switch (a->format) {
    case ROTEQ_FORMAT_JSON:
        return roteq_analysis_write_json(f, r);
    case ROTEQ_FORMAT_CSV:
        return a->per_neuron ? roteq_analysis_write_per_neuron_csv(f, r)
                             : roteq_analysis_write_csv(f, r);
    default:
        return roteq_analysis_write_text(f, r);
    }
}

int roteq_cmd_analyze(int argc, char **argv)
{
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? ROTEQ_EXIT_OK : rc;
    struct stat sb;
    if (strcmp(a.input, "-") != 0 && stat(a.input, &sb) != 0)
        return roteq_cli_fail(CMD, "%s: %s", a.input, strerror(errno));
    int is_dir = strcmp(a.input, "-") != 0 && S_ISDIR(sb.st_mode);
    /* One checkpoint is not a series: angles need consecutive snapshots. Say so rather than
     * reading the binary file as a CSV trace and reporting a missing column. */
    size_t len = strlen(a.input);
    if (!is_dir && ((len > 12 && strcmp(a.input + len - 12, ".safetensors") == 0) ||
                    (len > 4 && strcmp(a.input + len - 4, ".npy") == 0) ||
                    (len > 3 && strcmp(a.input + len - 3, ".pt") == 0) ||
                    (len > 4 && strcmp(a.input + len - 4, ".pth") == 0) ||
                    (len > 4 && strcmp(a.input + len - 4, ".bin") == 0) ||
                    (len > 5 && strcmp(a.input + len - 5, ".ckpt") == 0)))
        return roteq_cli_fail(CMD,
                              "%s: a single snapshot is not a series; pass the folder that "
                              "holds the step-numbered snapshots",
                              a.input);

    if (!is_dir && len > 4 && strcmp(a.input + len - 4, ".pkl") == 0)
        return roteq_cli_fail(CMD,
                              "%s: a Python pickle is not read (running it could run anything); "
                              "for epfml/REQ's dynamics.pkl see docs/TRAINERS.md section 7",
                              a.input);

    roteq_analysis_meta meta;
    roteq_analysis_meta_init(&meta);
    char *found = a.meta_path ? NULL : find_meta(a.input);
    const char *meta_path = a.meta_path ? a.meta_path : found;
    if (meta_path && roteq_analysis_meta_load(meta_path, &meta)) {
        free(found);
        return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_USAGE);
    }
    if (merge_cli(&meta, a.opt, &a.h, a.dim, a.grad_norm) || check_flags(&meta)) {
        free(found);
        roteq_analysis_meta_clear(&meta);
        return ROTEQ_EXIT_USAGE;
    }

    /* Every output is checked and opened before the work, so a bad path fails at once. */
    char plot_series[4096], plot_neurons[4096];
    if (a.plot) {
        if (mkdir(a.plot, 0777) != 0 && errno != EEXIST) {
            free(found);
            roteq_analysis_meta_clear(&meta);
            return roteq_cli_fail(CMD, "--plot: %s: %s", a.plot, strerror(errno));
        }
        snprintf(plot_series, sizeof plot_series, "%s/series.csv", a.plot);
        snprintf(plot_neurons, sizeof plot_neurons, "%s/neurons.csv", a.plot);
        a.per_neuron = 1;
    }
    const char *series_path = a.series ? a.series : a.plot ? plot_series : NULL;
    rc = check_outputs(&a, series_path, a.plot ? plot_neurons : NULL, meta_path);
    free(found);
    if (rc) {
        roteq_analysis_meta_clear(&meta);
        return rc;
    }
    roteq_ofile *out = roteq_ofile_open(a.out ? a.out : "-");
    roteq_ofile *series = series_path ? roteq_ofile_open(series_path) : NULL;
    roteq_ofile *neurons = a.plot ? roteq_ofile_open(plot_neurons) : NULL;
    if (!out || (series_path && !series) || (a.plot && !neurons)) {
        rc = roteq_cli_fail(CMD, "%s", roteq_error_message());
        goto fail;
    }

    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &meta);
    cfg.source = a.input;
    cfg.tolerance = a.tolerance;
    cfg.window = a.window;
    cfg.per_neuron = a.per_neuron;
    cfg.against = a.against;
    cfg.explain = a.explain;
    cfg.series = series ? roteq_ofile_stream(series) : NULL;
    cfg.layers_regex = is_dir ? NULL : a.layers;
    roteq_analysis *an = NULL;
    int st;
    if (is_dir) {
        roteq_snapshot_options so = {.layers_regex = a.layers,
                                     .step_regex = a.step_regex,
                                     .notes = stderr,
                                     .exclude_regex = a.exclude,
                                     .model_key = a.key,
                                     .axes = a.axes,
                                     .naxes = a.naxes};
        st = roteq_analysis_read_snapshots(a.input, &so, &cfg, &an);
    } else {
        st = roteq_analysis_read_csv(a.input, &cfg, &an);
    }
    roteq_analysis_result *res = NULL;
    if (!st)
        st = roteq_analysis_finish(an, &res);
    roteq_analysis_free(an);
    if (st) {
        rc = roteq_cli_fail_lib(CMD, st == ROTEQ_ENOMEM || st == ROTEQ_EIO ? ROTEQ_EXIT_FAIL
                                                                           : ROTEQ_EXIT_USAGE);
        goto fail;
    }
    if (write_report(roteq_ofile_stream(out), &a, res) ||
        (neurons && roteq_analysis_write_per_neuron_csv(roteq_ofile_stream(neurons), res))) {
        roteq_analysis_result_free(res);
        rc = roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
        goto fail;
    }
    roteq_analysis_result_free(res);
    if ((series && roteq_ofile_commit(series)) || (neurons && roteq_ofile_commit(neurons))) {
        series = neurons = NULL;
        rc = roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
        goto fail;
    }
    series = neurons = NULL;
    if (roteq_ofile_commit(out)) {
        out = NULL;
        rc = roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
        goto fail;
    }
    out = NULL;
    if (meta.opt == NULL && !meta.muon)
        fprintf(stderr, "roteq analyze: no optimizer (--optimizer or --meta): measured without "
                        "predictions\n");
    roteq_analysis_meta_clear(&meta);
    return a.plot ? draw(a.plot, series_path, plot_neurons) : ROTEQ_EXIT_OK;
fail:
    roteq_ofile_abort(out);
    roteq_ofile_abort(series);
    roteq_ofile_abort(neurons);
    roteq_analysis_meta_clear(&meta);
    return rc;
}
