/* cmd_bench.c - `roteq bench`: the simulator's speed in ns per neuron-coordinate-step for every
 * optimizer on one thread and on all threads, against its floor (a bare loop that only draws the
 * same normals) and, when /usr/bin/python3 has them, against NumPy and PyTorch peers doing the
 * same AdamW random walk (bench/numpy_peer.py, bench/torch_peer.py). Every figure comes from this
 * run: on a shared machine absolute times drift, ratios measured together are what to quote. */
#include "roteq_cli.h"
#include "roteq_sim.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD    "bench"
#define PYTHON "/usr/bin/python3"

static void usage(FILE *out)
{
    fputs("usage: roteq bench [options]\n\n"
          "Time the simulator (ns per neuron-coordinate-step, float64, norms and angles every\n"
          "step) for each optimizer on 1 and on all threads, the bare normal-drawing loop, and\n"
          "the NumPy / PyTorch peers on the same AdamW work.\n\n"
          "Options:\n"
          "  --neurons N       ensemble size (default 128)\n"
          "  --dim C           weight-vector length (default 128)\n"
          "  --steps T         steps (default 20000)\n"
          "  --threads K       the multi-thread column (default: all online cores)\n"
          "  --optimizer NAME  only this optimizer (default: all)\n"
          "  --isa NAME        auto (default), generic, avx2, avx512\n"
          "  --repeat R        best of R timings per figure (default 3; the machine is shared)\n"
          "  --no-peers        do not run the Python peers\n"
          "  --peer-steps T    steps for the peers (default: --steps)\n"
          "  --format F        text (default) or json\n"
          "  --help            this text\n",
          out);
}

enum {
    OPT_NEURONS = 256,
    OPT_DIM,
    OPT_STEPS,
    OPT_THREADS,
    OPT_OPTIMIZER,
    OPT_ISA,
    OPT_NO_PEERS,
    OPT_PEER_STEPS,
    OPT_FORMAT,
    OPT_REPEAT,
    OPT_HELP
};

/* Hyperparameters for the timing runs: each optimizer's defaults, with the required ones set to
 * the values the theory notes use (the work per step does not depend on them). */
static roteq_hparams bench_hparams(const roteq_optimizer_type *opt)
{
    roteq_hparams hp = roteq_optimizer_defaults(opt);
    if (isnan(hp.lr))
        hp.lr = 0.1;
    if (opt->flags & (ROTEQ_OPTF_ADAPTIVE | ROTEQ_OPTF_SIGN))
        hp.lr = 1e-3;
    hp.weight_decay = (opt->flags & ROTEQ_OPTF_MOMENTUM) || opt->id == ROTEQ_OPT_SGD ? 0.01
                      : opt->id == ROTEQ_OPT_ADAM_L2                                 ? 0.05
                                                                                     : 1.0;
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING) && isnan(hp.dampening))
        hp.dampening = 0.0;
    return hp;
}

static double time_sim(const roteq_optimizer_type *opt, size_t N, size_t C, size_t T,
                       unsigned threads, roteq_sim_isa isa, double *norm)
{
    roteq_sim_config cfg;
    roteq_sim_config_init(&cfg, opt);
    cfg.hp = bench_hparams(opt);
    cfg.neurons = N;
    cfg.dim = C;
    cfg.steps = T;
    cfg.threads = threads;
    roteq_sim_options ex = {isa, 0};
    roteq_sim_result r;
    if (roteq_sim_run_ex(&cfg, &ex, NULL, &r))
        return -1;
    *norm = r.norm_mean;
    double ns = r.seconds * 1e9 / ((double)N * (double)C * (double)T);
    roteq_sim_result_free(&r);
    return ns;
}

/* Run a peer script; NAN when python or its module is missing. */
static double run_peer(const char *script, size_t N, size_t C, size_t T)
{
    if (access(PYTHON, X_OK) != 0)
        return NAN;
    const char *src = getenv("ROTEQ_SOURCE_DIR");
    if (!src || !*src)
        src = ROTEQ_SOURCE_DIR;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 " PYTHON
             " '%s/bench/%s' --neurons %zu --dim %zu --steps %zu 2>/dev/null",
             src, script, N, C, T);
    FILE *p = popen(cmd, "r");
    if (!p)
        return NAN;
    char line[512] = "";
    double ns = NAN;
    while (fgets(line, sizeof line, p)) {
        const char *k = strstr(line, "ns_per_ncs=");
        if (k)
            ns = strtod(k + 11, NULL);
    }
    if (pclose(p) != 0)
        return NAN;
    return ns;
}

int roteq_cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"neurons", required_argument, NULL, OPT_NEURONS},
        {"dim", required_argument, NULL, OPT_DIM},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"optimizer", required_argument, NULL, OPT_OPTIMIZER},
        {"isa", required_argument, NULL, OPT_ISA},
        {"no-peers", no_argument, NULL, OPT_NO_PEERS},
        {"peer-steps", required_argument, NULL, OPT_PEER_STEPS},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"repeat", required_argument, NULL, OPT_REPEAT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    size_t N = 128, C = 128, T = 20000, peer_T = 0, threads = 0, repeat = 3, v;
    const roteq_optimizer_type *only = NULL;
    roteq_sim_isa isa = ROTEQ_SIM_ISA_AUTO;
    int peers = 1;
    roteq_format format = ROTEQ_FORMAT_TEXT;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case OPT_NEURONS:
        case OPT_DIM:
        case OPT_STEPS:
        case OPT_THREADS:
        case OPT_REPEAT:
        case OPT_PEER_STEPS: {
            const char *flag = c == OPT_NEURONS   ? "neurons"
                               : c == OPT_DIM     ? "dim"
                               : c == OPT_STEPS   ? "steps"
                               : c == OPT_THREADS ? "threads"
                               : c == OPT_REPEAT  ? "repeat"
                                                  : "peer-steps";
            if (roteq_cli_size(CMD, flag, optarg, &v))
                return ROTEQ_EXIT_USAGE;
            if (v == 0 || (c == OPT_DIM && v < 2) || (c == OPT_THREADS && v > 4096))
                return roteq_cli_fail(CMD, "--%s: out of range: %s", flag, optarg);
            *(c == OPT_NEURONS   ? &N
              : c == OPT_DIM     ? &C
              : c == OPT_STEPS   ? &T
              : c == OPT_THREADS ? &threads
              : c == OPT_REPEAT  ? &repeat
                                 : &peer_T) = v;
            break;
        }
        case OPT_OPTIMIZER:
            if (!(only = roteq_optimizer_lookup(optarg)))
                return roteq_cli_fail(CMD, "--optimizer: %s", roteq_error_message());
            break;
        case OPT_ISA: {
            int found = 0;
            for (int i = 0; i < ROTEQ_SIM_ISA_COUNT; i++)
                if (strcmp(optarg, roteq_sim_isa_names[i]) == 0) {
                    isa = (roteq_sim_isa)i;
                    found = 1;
                }
            if (!found || !roteq_sim_isa_available(isa))
                return roteq_cli_fail(CMD, "--isa: '%s' is not available here", optarg);
            break;
        }
        case OPT_NO_PEERS:
            peers = 0;
            break;
        case OPT_FORMAT:
            if (roteq_cli_format(CMD, optarg, "text,json", &format))
                return ROTEQ_EXIT_USAGE;
            break;
        case OPT_HELP:
            usage(stdout);
            return ROTEQ_EXIT_OK;
        case ':':
            return roteq_cli_fail(CMD, "%s: needs a value", argv[optind - 1]);
        default:
            return roteq_cli_fail(CMD, "unknown option '%s' (see roteq bench --help)",
                                  argv[optind - 1]);
        }
    }
    if (optind < argc)
        return roteq_cli_fail(CMD, "unexpected argument '%s'", argv[optind]);
    if (!peer_T)
        peer_T = T;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned K = threads ? (unsigned)threads : (unsigned)(cores > 0 ? cores : 1);
    roteq_sim_isa used = isa == ROTEQ_SIM_ISA_AUTO ? roteq_sim_isa_best() : isa;
    double ncs = (double)N * (double)C * (double)T;

    /* Best of `repeat` for every figure: other processes only ever make a run slower. */
    double sum, f1 = INFINITY, fK = INFINITY;
    for (size_t i = 0; i < repeat; i++) {
        double a = roteq_sim_bench_normals(N, C, T, 1, isa, &sum);
        double b = roteq_sim_bench_normals(N, C, T, K, isa, &sum);
        if (a < 0 || b < 0)
            return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
        f1 = fmin(f1, a);
        fK = fmin(fK, b);
    }
    f1 *= 1e9 / ncs;
    fK *= 1e9 / ncs;

    json_t *rows = json_array();
    if (format == ROTEQ_FORMAT_TEXT) {
        printf("roteq bench: N = %zu neurons, C = %zu, T = %zu steps, float64, kernels %s, "
               "%u threads, best of %zu\n",
               N, C, T, roteq_sim_isa_names[used], K, repeat);
        printf("ns per neuron-coordinate-step   1 thread  %2u threads  speedup  x floor (1 thr)\n",
               K);
        printf("  %-28s %8.3f  %10.3f  %6.2fx  %6.2f\n", "normals only (floor)", f1, fK, f1 / fK,
               1.0);
        fflush(stdout);
    }
    double adamw1 = NAN;
    for (int id = 0; id < ROTEQ_OPT_COUNT; id++) {
        const roteq_optimizer_type *opt = roteq_optimizers[id];
        if (only && opt != only)
            continue;
        double norm, t1 = INFINITY, tK = INFINITY;
        for (size_t i = 0; i < repeat; i++) {
            double a = time_sim(opt, N, C, T, 1, isa, &norm);
            double b = a >= 0 ? time_sim(opt, N, C, T, K, isa, &norm) : -1;
            if (a < 0 || b < 0)
                return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
            t1 = fmin(t1, a);
            tK = fmin(tK, b);
        }
        if (opt->id == ROTEQ_OPT_ADAMW)
            adamw1 = t1;
        if (format == ROTEQ_FORMAT_TEXT) {
            printf("  %-28s %8.3f  %10.3f  %6.2fx  %6.2f\n", opt->name, t1, tK, t1 / tK, t1 / f1);
            fflush(stdout);
        } else {
            json_t *o = json_object();
            json_object_set_new(o, "optimizer", json_string(opt->name));
            json_object_set_new(o, "ns_1_thread", json_real(t1));
            json_object_set_new(o, "ns_all_threads", json_real(tK));
            json_object_set_new(o, "speedup", json_real(t1 / tK));
            json_object_set_new(o, "vs_floor", json_real(t1 / f1));
            json_array_append_new(rows, o);
        }
    }
    double np_ns = NAN, torch_ns = NAN;
    if (peers) {
        np_ns = run_peer("numpy_peer.py", N, C, peer_T);
        torch_ns = run_peer("torch_peer.py", N, C, peer_T);
    }
    if (format == ROTEQ_FORMAT_TEXT) {
        if (peers) {
            printf("peers (AdamW, 1 thread, %zu steps):\n", peer_T);
            const char *names[2] = {"NumPy (bench/numpy_peer.py)", "PyTorch (bench/torch_peer.py)"};
            double vals[2] = {np_ns, torch_ns};
            for (int i = 0; i < 2; i++) {
                if (isnan(vals[i]))
                    printf("  %-28s not available (%s with numpy/torch)\n", names[i], PYTHON);
                else
                    printf("  %-28s %8.3f  roteq adamw is %.1fx faster\n", names[i], vals[i],
                           vals[i] / adamw1);
            }
        }
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "neurons", json_integer((json_int_t)N));
        json_object_set_new(o, "dim", json_integer((json_int_t)C));
        json_object_set_new(o, "steps", json_integer((json_int_t)T));
        json_object_set_new(o, "threads", json_integer(K));
        json_object_set_new(o, "isa", json_string(roteq_sim_isa_names[used]));
        json_object_set_new(o, "floor_ns_1_thread", json_real(f1));
        json_object_set_new(o, "floor_ns_all_threads", json_real(fK));
        json_object_set_new(o, "optimizers", rows);
        rows = NULL;
        json_object_set_new(o, "numpy_ns", isnan(np_ns) ? json_null() : json_real(np_ns));
        json_object_set_new(o, "torch_ns", isnan(torch_ns) ? json_null() : json_real(torch_ns));
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    }
    json_decref(rows);
    return ROTEQ_EXIT_OK;
}
