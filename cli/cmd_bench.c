/* cmd_bench.c - `roteq bench`: the simulator's speed in ns per neuron-coordinate-step for every
 * optimizer on one thread and on all threads, against its floor (a bare loop that only draws the
 * same normals; beside it the same loop for every other generator/transform and with SLEEF's
 * log/sincospi, the rejected alternatives, each also in cycles per normal)
 * and, when /usr/bin/python3 has them, against NumPy and PyTorch peers doing the same AdamW random
 * walk (bench/numpy_peer.py, bench/torch_peer.py). Every figure comes from this
 * run. Both wall-clock and CPU time (getrusage, all threads) are measured: on a shared machine
 * wall time includes the time other processes held the core, CPU time does not, so the
 * single-thread figures and their ratios are quoted in CPU time, and the thread scaling as the
 * wall-clock speedup together with the CPU-time efficiency (1-thread CPU / K-thread CPU: 1.0
 * means the threads added no work, so on an idle machine the speedup would be about K times
 * that). */
#include "roteq_cli.h"
#include "roteq_sim.h"
#include "roteq_theory.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#define CMD    "bench"
#define PYTHON "/usr/bin/python3"

static void usage(FILE *out)
{
    fputs("usage: roteq bench [options]\n\n"
          "Time the simulator (ns per neuron-coordinate-step, float64, norms and angles every\n"
          "step) for each optimizer on 1 and on all threads, the bare normal-drawing loop (the\n"
          "floor) for the engine's generator and every alternative (Philox4x32-10/-7, ARS-5;\n"
          "Box-Muller, ziggurat; Philox + SLEEF's log/sincospi), with cycles per normal from the\n"
          "calibrated time-stamp counter, and the NumPy / PyTorch peers on the same AdamW work.\n\n"
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

/* Hyperparameters for the timing runs: each optimizer's defaults with its example lr and weight
 * decay (its family file; the work per step does not depend on them). */
static roteq_hparams bench_hparams(const roteq_optimizer_type *opt)
{
    roteq_hparams hp = roteq_optimizer_defaults(opt);
    if (!isnan(opt->example_lr))
        hp.lr = opt->example_lr;
    hp.weight_decay = opt->example_wd;
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING) && isnan(hp.dampening))
        hp.dampening = 0.0;
    return hp;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

typedef struct {
    double wall, cpu; /* ns per neuron-coordinate-step, best of the repeats */
} timing;

/* Rows before the optimizers: the engine's bare normal loop (the floor), the same loop for every
 * other generator/transform the engine could use (KIND_NORMALS + roteq_sim_normal_kind), and
 * Philox4x32-10 words through a Box-Muller with SLEEF's log/sincospi (sim/bench_sleef.c), in
 * SLEEF's accurate class (u10) and its fast class (u35). */
enum {
    KIND_SLEEF_U35 = -1,
    KIND_SLEEF_U10 = -2,
    KIND_FLOOR = -3,
    KIND_NORMALS = -3 - ROTEQ_NORMALS_COUNT
};

/* The clock for cycle counts: the time-stamp counter's rate, calibrated against CLOCK_MONOTONIC
 * over 50 ms (on x86-64 CPUs with a constant-rate TSC, as here, that is the nominal clock, not the
 * boosted one); elsewhere /proc/cpuinfo's "cpu MHz"; NAN when neither exists. */
static double clock_ghz(const char **how)
{
#if defined(__x86_64__)
    double t0 = roteq_seconds(), t1;
    unsigned long long c0 = __rdtsc(), c1;
    do {
        t1 = roteq_seconds();
        c1 = __rdtsc();
    } while (t1 - t0 < 0.05);
    *how = "TSC calibrated against CLOCK_MONOTONIC over 50 ms";
    return (double)(c1 - c0) / (t1 - t0) * 1e-9;
#else
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = NAN;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "cpu MHz", 7) == 0 && strchr(line, ':')) {
            mhz = strtod(strchr(line, ':') + 1, NULL);
            break;
        }
    if (f)
        fclose(f);
    *how = "/proc/cpuinfo cpu MHz";
    return mhz * 1e-3;
#endif
}

/* The CPU's model name from /proc/cpuinfo ("unknown CPU" without one). */
static void cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(buf, size, "%.*s", (int)strcspn(v, "\n"), v);
            break;
        }
    if (f)
        fclose(f);
}

/* One timing of the engine (kind >= 0: optimizer id) or of a bare normal loop (KIND_*). */
static int time_once(int kind, size_t N, size_t C, size_t T, unsigned threads, roteq_sim_isa isa,
                     timing *t)
{
    double ncs = (double)N * (double)C * (double)T, c0 = cpu_seconds(), wall;
    if (kind < 0) {
        double sum;
        wall = kind == KIND_FLOOR ? roteq_sim_bench_normals(N, C, T, threads, isa, &sum)
               : kind < KIND_FLOOR
                   ? roteq_sim_bench_normals_as((roteq_sim_normal_kind)(kind - KIND_NORMALS), N, C,
                                                T, threads, isa, &sum)
                   : roteq_sim_bench_sleef_normals(N, C, T, threads, isa, kind == KIND_SLEEF_U35,
                                                   &sum);
        if (wall < 0)
            return -1;
    } else {
        const roteq_optimizer_type *opt = roteq_optimizers[kind];
        roteq_sim_config cfg;
        roteq_sim_config_init(&cfg, opt);
        cfg.hp = bench_hparams(opt);
        cfg.neurons = N;
        cfg.dim = C;
        cfg.steps = T;
        cfg.threads = threads;
        roteq_sim_options ex = {isa, 0, 0};
        roteq_sim_result r;
        if (roteq_sim_run_ex(&cfg, &ex, NULL, &r))
            return -1;
        wall = r.seconds;
        roteq_sim_result_free(&r);
    }
    double cpu = cpu_seconds() - c0;
    t->wall = fmin(t->wall, wall * 1e9 / ncs);
    t->cpu = fmin(t->cpu, cpu * 1e9 / ncs);
    return 0;
}

static const char *bench_source_dir(void)
{
    const char *src = getenv("ROTEQ_SOURCE_DIR");
    return src && *src ? src : ROTEQ_SOURCE_DIR;
}

/* Run a peer script; NAN when python or its module is missing. */
static timing run_peer(const char *script, size_t N, size_t C, size_t T)
{
    timing t = {NAN, NAN};
    if (access(PYTHON, X_OK) != 0)
        return t;
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
        return t;
    char line[512] = "";
    while (fgets(line, sizeof line, p)) {
        const char *k = strstr(line, " ns_per_ncs="), *c = strstr(line, "cpu_ns_per_ncs=");
        if (k)
            t.wall = strtod(k + 12, NULL);
        if (c)
            t.cpu = strtod(c + 15, NULL);
    }
    if (pclose(p) != 0)
        t.wall = t.cpu = NAN;
    return t;
}

typedef struct {
    size_t N, C, T, peer_T, threads, repeat;
    const roteq_optimizer_type *only;
    roteq_sim_isa isa;
    int peers;
    roteq_format format;
} bench_args;

/* Options into `a`. Returns -1 to go on, else the exit status (0 after --help). */
static int parse_args(int argc, char **argv, bench_args *a)
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
    size_t v;
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
            *(c == OPT_NEURONS   ? &a->N
              : c == OPT_DIM     ? &a->C
              : c == OPT_STEPS   ? &a->T
              : c == OPT_THREADS ? &a->threads
              : c == OPT_REPEAT  ? &a->repeat
                                 : &a->peer_T) = v;
            break;
        }
        case OPT_OPTIMIZER:
            if (!(a->only = roteq_optimizer_lookup(optarg)))
                return roteq_cli_fail(CMD, "--optimizer: %s", roteq_error_message());
            break;
        case OPT_ISA: {
            int found = 0;
            for (int i = 0; i < ROTEQ_SIM_ISA_COUNT; i++)
                if (strcmp(optarg, roteq_sim_isa_names[i]) == 0) {
                    a->isa = (roteq_sim_isa)i;
                    found = 1;
                }
            if (!found || !roteq_sim_isa_available(a->isa))
                return roteq_cli_fail(CMD, "--isa: '%s' is not available here", optarg);
            break;
        }
        case OPT_NO_PEERS:
            a->peers = 0;
            break;
        case OPT_FORMAT:
            if (roteq_cli_format(CMD, optarg, "text,json", &a->format))
                return ROTEQ_EXIT_USAGE;
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
    if (!a->peer_T)
        a->peer_T = a->T;
    return -1;
}

/* The row's label: the floor, another kind of normals, SLEEF, or an optimizer. */
static void row_name(int kind, char *name, size_t n)
{
    if (kind == KIND_FLOOR)
        snprintf(name, n, "floor: %s", roteq_sim_normal_names[roteq_sim_engine_normals]);
    else if (kind < KIND_FLOOR)
        snprintf(name, n, "normals %s", roteq_sim_normal_names[kind - KIND_NORMALS]);
    else if (kind < 0)
        snprintf(name, n, "philox10 + SLEEF %s BM", kind == KIND_SLEEF_U35 ? "u35" : "u10");
    else
        snprintf(name, n, "%s", roteq_optimizers[kind]->name);
}

/* One row, as text or appended to `rows`; cycles per normal for the normal-only rows. */
static void emit_row(roteq_format format, json_t *rows, const char *name, timing t1, timing tK,
                     double xf, int normals_row, double cyc)
{
    double speedup = t1.wall / tK.wall, eff = t1.cpu / tK.cpu;
    if (format == ROTEQ_FORMAT_TEXT) {
        printf("  %-28s %9.3f  %10.3f  %11.3f  %6.2fx  %8.2f  %7.2f", name, t1.cpu, t1.wall,
               tK.wall, speedup, eff, xf);
        if (normals_row)
            printf("  %6.2f", cyc);
        putchar('\n');
        fflush(stdout);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "cpu_ns_1_thread", json_real(t1.cpu));
    json_object_set_new(o, "wall_ns_1_thread", json_real(t1.wall));
    json_object_set_new(o, "wall_ns_all_threads", json_real(tK.wall));
    json_object_set_new(o, "cpu_ns_all_threads", json_real(tK.cpu));
    json_object_set_new(o, "speedup", json_real(speedup));
    json_object_set_new(o, "cpu_efficiency", json_real(eff));
    json_object_set_new(o, "vs_floor", json_real(xf));
    if (normals_row && isfinite(cyc))
        json_object_set_new(o, "cycles_per_normal", json_real(cyc));
    json_array_append_new(rows, o);
}

/* The figures every run shares, for the closing summary. */
typedef struct {
    timing floor1, adamw1, p10bm;
    double ghz;
    const char *clock_how;
    char model[200];
    unsigned K;
    roteq_sim_isa used;
} bench_run;

/* After the rows: the peers, the floor's gain, Muon's rows, and the JSON document. */
static void finish(const bench_args *a, const bench_run *b, json_t *rows)
{
    timing np = {NAN, NAN}, torch = {NAN, NAN};
    if (a->peers) {
        np = run_peer("numpy_peer.py", a->N, a->C, a->peer_T);
        torch = run_peer("torch_peer.py", a->N, a->C, a->peer_T);
    }
    if (a->format == ROTEQ_FORMAT_TEXT) {
        if (isfinite(b->p10bm.cpu) && roteq_sim_engine_normals != ROTEQ_NORMALS_PHILOX10_BOXMULLER)
            printf("floor %s: %.2fx %s than philox10-boxmuller (CPU, 1 thread)\n",
                   roteq_sim_normal_names[roteq_sim_engine_normals],
                   fmax(b->p10bm.cpu / b->floor1.cpu, b->floor1.cpu / b->p10bm.cpu),
                   b->p10bm.cpu >= b->floor1.cpu ? "faster" : "slower");
        if (a->peers) {
            printf("peers (AdamW, 1 thread, %zu steps)      CPU        wall    roteq adamw faster "
                   "(CPU)\n",
                   a->peer_T);
            const char *names[2] = {"NumPy (bench/numpy_peer.py)", "PyTorch (bench/torch_peer.py)"};
            timing vals[2] = {np, torch};
            for (int i = 0; i < 2; i++) {
                if (isnan(vals[i].cpu))
                    printf("  %-28s not available (%s with numpy/torch)\n", names[i], PYTHON);
                else
                    printf("  %-28s %9.3f  %10.3f  %6.1fx\n", names[i], vals[i].cpu, vals[i].wall,
                           vals[i].cpu / b->adamw1.cpu);
            }
        }
        for (int k = 0; k < ROTEQ_OPT_COUNT; k++) /* the matrix optimizers' rows (cmd_muon.c) */
            if (roteq_sim_matrix_for(roteq_optimizers[k]))
                json_decref(roteq_cli_matrix_bench(roteq_optimizers[k], a->peers, PYTHON,
                                                   bench_source_dir(), 1));
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "neurons", json_integer((json_int_t)a->N));
    json_object_set_new(o, "dim", json_integer((json_int_t)a->C));
    json_object_set_new(o, "steps", json_integer((json_int_t)a->T));
    json_object_set_new(o, "threads", json_integer(b->K));
    json_object_set_new(o, "isa", json_string(roteq_sim_isa_names[b->used]));
    json_object_set_new(o, "cpu", json_string(b->model));
    json_object_set_new(o, "clock_ghz", isfinite(b->ghz) ? json_real(b->ghz) : json_null());
    json_object_set_new(o, "clock", json_string(b->clock_how));
    json_object_set_new(o, "normals",
                        json_string(roteq_sim_normal_names[roteq_sim_engine_normals]));
    json_object_set_new(o, "rows", json_incref(rows));
    json_object_set_new(o, "numpy_cpu_ns", isnan(np.cpu) ? json_null() : json_real(np.cpu));
    json_object_set_new(o, "torch_cpu_ns", isnan(torch.cpu) ? json_null() : json_real(torch.cpu));
    for (int k = 0; k < ROTEQ_OPT_COUNT; k++)
        if (roteq_sim_matrix_for(roteq_optimizers[k]))
            json_object_set_new(o, roteq_optimizers[k]->name,
                                roteq_cli_matrix_bench(roteq_optimizers[k], a->peers, PYTHON,
                                                       bench_source_dir(), 0));
    json_dumpf(o, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(o);
}

int roteq_cmd_bench(int argc, char **argv)
{
    bench_args a = {.N = 128,
                    .C = 128,
                    .T = 20000,
                    .repeat = 3,
                    .isa = ROTEQ_SIM_ISA_AUTO,
                    .peers = 1,
                    .format = ROTEQ_FORMAT_TEXT};
    int parsed = parse_args(argc, argv, &a);
    if (parsed >= 0)
        return parsed;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    bench_run b = {.floor1 = {INFINITY, INFINITY}, .adamw1 = {NAN, NAN}, .p10bm = {NAN, NAN}};
    b.K = a.threads ? (unsigned)a.threads : (unsigned)(cores > 0 ? cores : 1);
    b.used = a.isa == ROTEQ_SIM_ISA_AUTO ? roteq_sim_isa_best() : a.isa;

    /* Best of `repeat` for every figure: other processes only ever make a run slower. */
    b.clock_how = "";
    b.ghz = clock_ghz(&b.clock_how);
    cpu_model(b.model, sizeof b.model);
    if (a.format == ROTEQ_FORMAT_TEXT) {
        printf("roteq bench: N = %zu neurons, C = %zu, T = %zu steps, float64, kernels %s, "
               "best of %zu\n",
               a.N, a.C, a.T, roteq_sim_isa_names[b.used], a.repeat);
        printf("CPU %s, %ld online cores; clock %.3f GHz (%s)\n", b.model, cores, b.ghz,
               b.clock_how);
        printf("ns per neuron-coordinate-step  CPU 1 thr  wall 1 thr  wall %u thr  speedup  "
               "CPU eff.  x floor  cycles\n",
               b.K);
    }
    /* Row order: the floor, the other normals, SLEEF, the optimizers (the list's order). */
    int order[ROTEQ_NORMALS_COUNT + 2 + ROTEQ_OPT_COUNT], nrow = 0;
    order[nrow++] = KIND_FLOOR;
    for (int k = 0; k < ROTEQ_NORMALS_COUNT; k++)
        if ((roteq_sim_normal_kind)k != roteq_sim_engine_normals)
            order[nrow++] = KIND_NORMALS + k;
    order[nrow++] = KIND_SLEEF_U10;
    order[nrow++] = KIND_SLEEF_U35;
    for (int k = 0; k < ROTEQ_OPT_COUNT; k++) /* the per-neuron engine's; matrix ones after */
        if ((!a.only || roteq_optimizers[k] == a.only) &&
            roteq_sim_matrix_for(roteq_optimizers[k]) == NULL)
            order[nrow++] = k;
    json_t *rows = json_array();
    for (int r = 0; r < nrow; r++) {
        int kind = order[r];
        char name[64];
        row_name(kind, name, sizeof name);
        if (kind > KIND_FLOOR && kind < 0 && !roteq_sim_sleef_available(a.isa)) {
            if (a.format == ROTEQ_FORMAT_TEXT)
                printf("  %-28s not available for kernels %s\n", name, roteq_sim_isa_names[b.used]);
            continue;
        }
        timing t1 = {INFINITY, INFINITY}, tK = {INFINITY, INFINITY};
        for (size_t i = 0; i < a.repeat; i++)
            if (time_once(kind, a.N, a.C, a.T, 1, a.isa, &t1) ||
                time_once(kind, a.N, a.C, a.T, b.K, a.isa, &tK)) {
                json_decref(rows);
                return roteq_cli_fail_lib(CMD, ROTEQ_EXIT_FAIL);
            }
        if (kind == KIND_FLOOR)
            b.floor1 = t1;
        else if (kind >= 0 && roteq_optimizers[kind] == &roteq_adamw)
            b.adamw1 = t1; /* the peers' reference: they walk AdamW */
        if (kind == KIND_NORMALS + ROTEQ_NORMALS_PHILOX10_BOXMULLER ||
            (kind == KIND_FLOOR && roteq_sim_engine_normals == ROTEQ_NORMALS_PHILOX10_BOXMULLER))
            b.p10bm = t1;
        /* cycles per normal: every normal-only row draws one normal per neuron-coordinate-step */
        emit_row(a.format, rows, name, t1, tK, t1.cpu / b.floor1.cpu, kind < 0,
                 kind < 0 ? t1.cpu * b.ghz : (double)NAN);
    }
    finish(&a, &b, rows);
    json_decref(rows);
    return ROTEQ_EXIT_OK;
}
