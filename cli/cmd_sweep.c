/* cmd_sweep.c - `roteq sweep GRID --out FILE`: run every point of a grid (sweep/), one row per
 * point, on this machine's cores or dealt to MPI ranks when started by mpirun/srun.
 *
 * MPI is initialised and finalised here, not in main(), so that no other command pays for it.
 * Every rank parses the same GRID; only rank 0 reads or writes FILE and prints. */
#include "roteq_cli.h"
#include "roteq_sweep.h"
#include "sweep_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fputs(
        "usage: roteq sweep GRID --out FILE [--format csv|json] [--resume]\n"
        "                   [--jobs J] [--threads K] [--tolerance K] [--point I]\n"
        "       mpirun -np R roteq sweep GRID --out FILE ...   (built with -Dmpi=enabled)\n\n"
        "Run every point of GRID (JSON: seed, fixed, axes, points, groups; see sweep/README.md),\n"
        "one simulation per point seeded from the grid seed and the point index, and write one\n"
        "row per point: parameters, predicted and measured norm and angular update with 95%\n"
        "confidence intervals, relative errors, status (PASS/FAIL/APPROX/UNKNOWN/ERROR), seconds.\n"
        "Rows are appended as points finish (a killed sweep keeps them); the finished file is\n"
        "sorted by index and identical, timing columns aside, for any number of jobs or ranks.\n\n"
        "Options:\n"
        "  --out FILE        output file ('-': standard output, sorted at the end)\n"
        "  --format F        csv (default) or json (one object per line)\n"
        "  --resume          keep the rows already in FILE and run only the missing points\n"
        "  --jobs J          points run at once in this process (default: one per core, each\n"
        "                    with one thread; a single point gets every core; see\n"
        "                    sweep/README.md for why; under MPI one point per rank)\n"
        "  --threads K       simulator threads per point (default: the cores / J; 1 per rank)\n"
        "  --tolerance K     PASS when |measured - predicted| <= K standard errors + the\n"
        "                    formula's model tolerance (column rel_floor; default K = 4)\n"
        "  --point I         run point I alone (rerun a row bit for bit); default --out -\n"
        "  --progress        one line per finished point on stderr (default when a terminal)\n\n"
        "Exit status: 0 all points ran; 1 some point is ERROR; 2 bad GRID or options.\n",
        out);
}

typedef struct {
    roteq_sweep_out *out;
    size_t total, done;
    int progress;
    size_t errors;
    int write_failed;
    char write_error[1024]; /* the sink may run on a worker thread: its message, kept here */
} sweep_ctx;

static int sweep_sink(void *ctx, const roteq_sweep_point *p, const roteq_sweep_record *rec)
{
    sweep_ctx *s = ctx;
    s->done++;
    if (rec->verdict == ROTEQ_SWEEP_VERDICT_ERROR) {
        s->errors++;
        fprintf(stderr, "roteq sweep: point %zu: %s\n", p->index, rec->reason);
    } else if (s->progress) {
        fprintf(stderr, "roteq sweep: [%zu/%zu] point %zu %s %s (%.2f s)\n", s->done, s->total,
                p->index, p->optimizer, roteq_sweep_verdict_names[rec->verdict], rec->seconds);
    }
    int st = roteq_sweep_out_write(s->out, p, rec);
    if (st && !s->write_failed) {
        s->write_failed = 1;
        const char *msg = roteq_error_message();
        snprintf(s->write_error, sizeof s->write_error, "%s", *msg ? msg : roteq_strerror(st));
    }
    return st;
}

typedef struct {
    const char *out_path, *grid_path;
    roteq_format fmt;
    int resume, progress;
    size_t jobs, threads, point;
    double tolerance;
} sweep_args;

/* Parse the command line; -1 to run, else the exit code. Only rank 0 speaks (`err`). */
static int parse_args(int argc, char **argv, FILE *err, sweep_args *a)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},     {"format", required_argument, NULL, 'f'},
        {"resume", no_argument, NULL, 'r'},        {"jobs", required_argument, NULL, 'j'},
        {"threads", required_argument, NULL, 't'}, {"tolerance", required_argument, NULL, 'k'},
        {"point", required_argument, NULL, 'p'},   {"progress", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (err)                                                                                   \
            roteq_cli_fail("sweep", __VA_ARGS__);                                                  \
        return ROTEQ_EXIT_USAGE;                                                                   \
    } while (0)
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            a->out_path = optarg;
            break;
        case 'f':
            if (roteq_cli_format("sweep", optarg, "csv,json", &a->fmt))
                return ROTEQ_EXIT_USAGE;
            break;
        case 'r':
            a->resume = 1;
            break;
        case 'j':
            if (roteq_cli_size("sweep", "jobs", optarg, &a->jobs))
                return ROTEQ_EXIT_USAGE;
            if (a->jobs == 0 || a->jobs > 4096)
                FAIL("--jobs: must be in 1..4096, got %s", optarg);
            break;
        case 't':
            if (roteq_cli_size("sweep", "threads", optarg, &a->threads))
                return ROTEQ_EXIT_USAGE;
            if (a->threads > 4096)
                FAIL("--threads: must be at most 4096, got %s", optarg);
            break;
        case 'k':
            if (roteq_cli_double("sweep", "tolerance", optarg, &a->tolerance))
                return ROTEQ_EXIT_USAGE;
            if (!(a->tolerance > 0))
                FAIL("--tolerance: must be positive, got %s", optarg);
            break;
        case 'p':
            if (roteq_cli_size("sweep", "point", optarg, &a->point))
                return ROTEQ_EXIT_USAGE;
            break;
        case 'P':
            a->progress = 1;
            break;
        case 'h':
            if (err)
                usage(stdout);
            return ROTEQ_EXIT_OK;
        case ':':
        default:
            if (err)
                roteq_cli_bad_option("sweep", c, argv);
            return ROTEQ_EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        FAIL(optind == argc ? "GRID is missing (try roteq sweep --help)"
                            : "one GRID expected, got '%s' too",
             argv[optind + 1]);
    a->grid_path = argv[optind];
    if (a->out_path == NULL && a->point == (size_t)-1)
        FAIL("--out FILE is required");
    if (a->out_path == NULL)
        a->out_path = "-";
    if (a->resume && strcmp(a->out_path, "-") == 0)
        FAIL("--resume needs --out FILE");
#undef FAIL
    return -1;
}

/* FILE checked before anything runs: not GRID itself (under any name), not a directory, in a
 * folder that takes files. Exit 2 for the grid named again, 1 for a FILE that cannot be written. */
static int check_output(const sweep_args *a, FILE *err)
{
    const char *inputs[1] = {a->grid_path};
    int st = roteq_ofile_check(a->out_path, inputs, 1);
    if (st == ROTEQ_OK)
        return ROTEQ_OK;
    if (err)
        roteq_cli_fail("sweep", "--out: %s", roteq_error_message());
    return st == ROTEQ_EINVAL ? ROTEQ_EXIT_USAGE : ROTEQ_EXIT_FAIL;
}

/* Every rank loads GRID; rank 0 also opens FILE. Returns 1 when this rank is ready. */
static int prepare(const sweep_args *a, int rank, int size, FILE *err, roteq_sweep_grid **gp,
                   unsigned char **skipp, roteq_sweep_out **outp, int *code)
{
    roteq_sweep_grid *g = *gp = roteq_sweep_grid_load(a->grid_path);
    if (g == NULL) {
        if (err)
            roteq_cli_fail_lib("sweep", ROTEQ_EXIT_USAGE);
        return 0;
    }
    if (a->point != (size_t)-1 && a->point >= g->npoints) {
        if (err)
            roteq_cli_fail("sweep", "--point: %zu is outside the grid (%zu points)", a->point,
                           g->npoints);
        return 0;
    }
    if (a->point == (size_t)-1 && g->npoints > ROTEQ_SWEEP_RUN_POINTS_MAX) {
        if (err)
            roteq_cli_fail("sweep",
                           "%s: %zu points; a whole sweep keeps about 1 KB per point (deal order, "
                           "skip flag, row), at most %d points: split the grid, or run single "
                           "points with --point I",
                           a->grid_path, g->npoints, ROTEQ_SWEEP_RUN_POINTS_MAX);
        return 0;
    }
    /* --point I needs nothing per point: the grid is never expanded */
    if (a->point == (size_t)-1 && (*skipp = calloc(g->npoints, 1)) == NULL) {
        if (err)
            roteq_cli_fail("sweep", "out of memory");
        return 0;
    }
    if (rank != 0)
        return 1;
    char header[512];
    snprintf(header, sizeof header, "roteq sweep %s --out %s: %s", a->grid_path, a->out_path,
             size > 1 ? "MPI ranks" : "one process");
    *outp = roteq_sweep_out_open(a->out_path,
                                 a->fmt == ROTEQ_FORMAT_JSON ? ROTEQ_SWEEP_JSON : ROTEQ_SWEEP_CSV,
                                 g, a->resume, header, *skipp);
    if (*outp == NULL) {
        /* a FILE that cannot be written is an I/O failure; a FILE to resume that is not ours
         * is bad input */
        *code = roteq_cli_fail_lib("sweep", roteq_error_status() == ROTEQ_EIO ? ROTEQ_EXIT_FAIL
                                                                              : ROTEQ_EXIT_USAGE);
        return 0;
    }
    return 1;
}

/* Rank 0 after the run: the sorted FILE and the summary line. */
static int finish(const sweep_args *a, sweep_ctx *ctx, int st, roteq_sweep_out **outp,
                  const roteq_sweep_grid *g, int size, double wall)
{
    (void)a;
    if (ctx->write_failed) {
        /* The journal keeps every row written so far; --resume continues from there. */
        roteq_cli_fail("sweep", "%s", ctx->write_error);
        return ROTEQ_EXIT_FAIL;
    }
    if (st)
        return roteq_cli_fail_lib("sweep", ROTEQ_EXIT_FAIL);
    size_t resumed = roteq_sweep_out_resumed(*outp);
    st = roteq_sweep_out_close(*outp);
    *outp = NULL;
    if (st)
        return roteq_cli_fail_lib("sweep", ROTEQ_EXIT_FAIL);
    fprintf(stderr,
            "roteq sweep: %zu points, %zu run here (%zu resumed rows kept), %zu ERROR; "
            "%d rank%s, wall %.2f s\n",
            g->npoints, ctx->total, resumed, ctx->errors, size, size > 1 ? "s" : "", wall);
    return ctx->errors ? ROTEQ_EXIT_FAIL : ROTEQ_EXIT_OK;
}

int roteq_cmd_sweep(int argc, char **argv)
{
    int rank = 0, size = 1;
    if (roteq_sweep_mpi_init(&argc, &argv, &rank, &size))
        return roteq_cli_fail_lib("sweep", ROTEQ_EXIT_USAGE);
    sweep_args a = {.fmt = ROTEQ_FORMAT_CSV,
                    .progress = isatty(STDERR_FILENO),
                    .point = (size_t)-1,
                    .tolerance = ROTEQ_SWEEP_TOLERANCE};
    FILE *err = rank != 0 ? NULL : stderr;
    roteq_sweep_grid *g = NULL;
    unsigned char *skip = NULL;
    roteq_sweep_out *out = NULL;
    int code = parse_args(argc, argv, err, &a);
    if (code >= 0)
        goto done;
    code = ROTEQ_EXIT_USAGE;
    int ok = (rank != 0 || (code = check_output(&a, err)) == ROTEQ_OK) &&
             prepare(&a, rank, size, err, &g, &skip, &out, &code);
    /* All ranks agree before dealing starts, so a failure on any of them stops all of them
     * instead of leaving some waiting. */
    if (!roteq_sweep_mpi_all(ok)) {
        if (code == ROTEQ_EXIT_OK)
            code = ROTEQ_EXIT_USAGE;
        goto done;
    }
    sweep_ctx ctx = {.out = out, .progress = a.progress, .total = skip ? 0 : 1};
    for (size_t i = 0; skip && i < g->npoints; i++)
        ctx.total += !skip[i];
    roteq_sweep_options o = {
        .jobs = (unsigned)a.jobs,
        .threads = (unsigned)a.threads,
        .tolerance = a.tolerance,
        .sink = sweep_sink,
        .sink_ctx = &ctx,
    };
    double t0 = roteq_seconds();
    int st = ROTEQ_OK;
    if (a.point == (size_t)-1) {
        st = roteq_sweep_run_mpi(g, skip, &o);
    } else if (rank == 0) {
        /* one point, decoded from the grid, on every core of this process */
        roteq_sweep_record rec;
        roteq_sweep_point pt;
        roteq_sweep_eval(g, &o, a.point, roteq_sweep_threads_per_point(&o, 1), &rec);
        st = sweep_sink(&ctx, roteq_sweep_grid_point(g, a.point, &pt), &rec);
    }
    double wall = roteq_seconds() - t0;
    code = rank != 0 ? ROTEQ_EXIT_OK : finish(&a, &ctx, st, &out, g, size, wall);
done:
    roteq_sweep_out_abandon(out);
    free(skip);
    roteq_sweep_grid_free(g);
    roteq_sweep_mpi_finalize();
    return code;
}
