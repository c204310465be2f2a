/* cmd_sweep.c - `roteq sweep GRID --out FILE`: run every point of a grid (sweep/), one row per
 * point, on this machine's cores or dealt to MPI ranks when started by mpirun/srun.
 *
 * MPI is initialised and finalised here, not in main(), so that no other command pays for it.
 * Every rank parses the same GRID; only rank 0 reads or writes FILE and prints. */
#include "roteq_cli.h"
#include "roteq_sweep.h"

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
    if (st)
        s->write_failed = 1;
    return st;
}

int roteq_cmd_sweep(int argc, char **argv)
{
    int rank = 0, size = 1;
    if (roteq_sweep_mpi_init(&argc, &argv, &rank, &size))
        return roteq_cli_fail_lib("sweep", ROTEQ_EXIT_USAGE);
    int code = ROTEQ_EXIT_USAGE;
    const char *out_path = NULL;
    roteq_format fmt = ROTEQ_FORMAT_CSV;
    int resume = 0, progress = isatty(STDERR_FILENO), quiet_ranks = rank != 0;
    size_t jobs = 0, threads = 0, point = (size_t)-1;
    double tolerance = ROTEQ_SWEEP_TOLERANCE;
    roteq_sweep_grid *g = NULL;
    unsigned char *skip = NULL;
    roteq_sweep_out *out = NULL;

    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},     {"format", required_argument, NULL, 'f'},
        {"resume", no_argument, NULL, 'r'},        {"jobs", required_argument, NULL, 'j'},
        {"threads", required_argument, NULL, 't'}, {"tolerance", required_argument, NULL, 'k'},
        {"point", required_argument, NULL, 'p'},   {"progress", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    /* Only rank 0 speaks: the other ranks fail the same way, silently. */
    FILE *err = quiet_ranks ? NULL : stderr;
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (err)                                                                                   \
            roteq_cli_fail("sweep", __VA_ARGS__);                                                  \
        goto done;                                                                                 \
    } while (0)
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out_path = optarg;
            break;
        case 'f':
            if (roteq_cli_format("sweep", optarg, "csv,json", &fmt))
                goto done;
            break;
        case 'r':
            resume = 1;
            break;
        case 'j':
            if (roteq_cli_size("sweep", "jobs", optarg, &jobs))
                goto done;
            if (jobs == 0 || jobs > 4096)
                FAIL("--jobs: must be in 1..4096, got %s", optarg);
            break;
        case 't':
            if (roteq_cli_size("sweep", "threads", optarg, &threads))
                goto done;
            if (threads > 4096)
                FAIL("--threads: must be at most 4096, got %s", optarg);
            break;
        case 'k':
            if (roteq_cli_double("sweep", "tolerance", optarg, &tolerance))
                goto done;
            if (!(tolerance > 0))
                FAIL("--tolerance: must be positive, got %s", optarg);
            break;
        case 'p':
            if (roteq_cli_size("sweep", "point", optarg, &point))
                goto done;
            break;
        case 'P':
            progress = 1;
            break;
        case 'h':
            if (!quiet_ranks)
                usage(stdout);
            code = ROTEQ_EXIT_OK;
            goto done;
        case ':':
        default:
            if (err)
                roteq_cli_bad_option("sweep", c, argv);
            goto done;
        }
    }
    if (optind != argc - 1)
        FAIL(optind == argc ? "GRID is missing (try roteq sweep --help)"
                            : "one GRID expected, got '%s' too",
             argv[optind + 1]);
    if (out_path == NULL && point == (size_t)-1)
        FAIL("--out FILE is required");
    if (out_path == NULL)
        out_path = "-";
    if (resume && strcmp(out_path, "-") == 0)
        FAIL("--resume needs --out FILE");

    /* Every rank loads GRID; rank 0 also opens FILE. All ranks agree before dealing starts,
     * so a failure on any of them stops all of them instead of leaving some waiting. */
    int ok = 1;
    g = roteq_sweep_grid_load(argv[optind]);
    if (g == NULL) {
        if (err)
            roteq_cli_fail_lib("sweep", ROTEQ_EXIT_USAGE);
        ok = 0;
    } else if (point != (size_t)-1 && point >= g->npoints) {
        if (err)
            roteq_cli_fail("sweep", "--point: %zu is outside the grid (%zu points)", point,
                           g->npoints);
        ok = 0;
    } else if ((skip = calloc(g->npoints, 1)) == NULL) {
        if (err)
            roteq_cli_fail("sweep", "out of memory");
        ok = 0;
    }
    if (ok && rank == 0) {
        char header[512];
        snprintf(header, sizeof header, "roteq sweep %s --out %s: %s", argv[optind], out_path,
                 size > 1 ? "MPI ranks" : "one process");
        out = roteq_sweep_out_open(out_path,
                                   fmt == ROTEQ_FORMAT_JSON ? ROTEQ_SWEEP_JSON : ROTEQ_SWEEP_CSV, g,
                                   resume, header, skip);
        if (out == NULL) {
            roteq_cli_fail_lib("sweep", ROTEQ_EXIT_USAGE);
            ok = 0;
        }
        if (ok && point != (size_t)-1)
            for (size_t i = 0; i < g->npoints; i++)
                skip[i] = i != point;
    }
    if (!roteq_sweep_mpi_all(ok))
        goto done;

    sweep_ctx ctx = {.out = out, .progress = progress};
    for (size_t i = 0; i < g->npoints; i++)
        ctx.total += !skip[i];
    roteq_sweep_options o = {
        .jobs = (unsigned)jobs,
        .threads = (unsigned)threads,
        .tolerance = tolerance,
        .sink = sweep_sink,
        .sink_ctx = &ctx,
    };
    double t0 = roteq_seconds();
    int st = roteq_sweep_run_mpi(g, skip, &o);
    double wall = roteq_seconds() - t0;
    if (rank != 0) {
        code = ROTEQ_EXIT_OK;
        goto done;
    }
    if (st || ctx.write_failed) {
        /* The journal keeps every row written so far; --resume continues from there. */
        roteq_cli_fail_lib("sweep", ROTEQ_EXIT_USAGE);
        code = ROTEQ_EXIT_FAIL;
        goto done;
    }
    size_t resumed = roteq_sweep_out_resumed(out);
    st = roteq_sweep_out_close(out);
    out = NULL;
    if (st) {
        code = roteq_cli_fail_lib("sweep", ROTEQ_EXIT_FAIL);
        goto done;
    }
    fprintf(stderr,
            "roteq sweep: %zu points, %zu run here (%zu resumed rows kept), %zu ERROR; "
            "%d rank%s, wall %.2f s\n",
            g->npoints, ctx.total, resumed, ctx.errors, size, size > 1 ? "s" : "", wall);
    code = ctx.errors ? ROTEQ_EXIT_FAIL : ROTEQ_EXIT_OK;
#undef FAIL
done:
    roteq_sweep_out_abandon(out);
    free(skip);
    roteq_sweep_grid_free(g);
    roteq_sweep_mpi_finalize();
    return code;
}
