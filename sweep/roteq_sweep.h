/* roteq_sweep.h - grids of simulations: a GRID file expands into points, each point is one
 * roteq_sim_run() call, and every point becomes one output row (prediction, measurement,
 * confidence intervals, verdict). Points run concurrently on one machine, or are dealt to MPI
 * ranks; the rows do not depend on how they were scheduled.
 *
 * Reproducibility: a point's seed is roteq_sweep_point_seed(grid seed, index), so any point can
 * be rerun alone (`roteq sweep GRID --point I`) and give the same numbers bit for bit.
 * The grid format and the row columns are documented in sweep/README.md. */
#ifndef ROTEQ_SWEEP_H
#define ROTEQ_SWEEP_H

#include "roteq_sim.h"
#include "roteq_sim_muon.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- grids ---------------------------------------------------------------------------- */

#define ROTEQ_SWEEP_REASON_MAX   256
#define ROTEQ_SWEEP_SCHEDULE_MAX 96

typedef struct {
    size_t index;         /* position in the expanded grid, from 0 */
    uint64_t seed;        /* roteq_sweep_point_seed(grid seed, index) */
    roteq_sim_config cfg; /* complete; cfg.opt is NULL for an unknown optimizer */
    char optimizer[32];   /* as written in the grid */
    char lr_schedule[ROTEQ_SWEEP_SCHEDULE_MAX], wd_schedule[ROTEQ_SWEEP_SCHEDULE_MAX];
    char error[ROTEQ_SWEEP_REASON_MAX]; /* non-empty: bad parameters, the point is not run */
    /* A matrix optimizer's point (its family's simulator, roteq_sim_matrix_for(cfg.opt)): the
     * ensemble it runs; cfg then only describes it for the row (roteq_sweep_matrix_describe). */
    int matrix;
    roteq_sim_muon_config mcfg;
} roteq_sweep_point;

typedef struct {
    char *name; /* file name, for messages */
    uint64_t seed;
    uint64_t hash; /* FNV-1a of the grid (canonical JSON, axis order, seed): tags rows for
                      --resume */
    size_t npoints;
    void *tree; /* the parsed grid: points are decoded from it on demand, never expanded */
} roteq_sweep_grid;

/* Point `index` (< npoints) of the grid, decoded into *p by mixed-radix arithmetic over the axes
 * (time and memory proportional to the grid file, not to npoints: point 0 of a 1e8-point grid
 * is instant). Returns p. */
const roteq_sweep_point *roteq_sweep_grid_point(const roteq_sweep_grid *g, size_t index,
                                                roteq_sweep_point *p);

/* Running a whole grid keeps per point its deal order, skip flag and row text (about 1 KB):
 * grids with more points are refused for whole runs, naming this limit; any single point of
 * any grid still runs with --point I. */
#define ROTEQ_SWEEP_RUN_POINTS_MAX 10000000

/* Parse a GRID (JSON text; `name` is used in messages). A malformed grid (bad JSON, unknown
 * key, value of the wrong type, empty axis) gives NULL and one message naming the key, e.g.
 * "grid.json: axes.lr[2]: expected a number". Points with values out of range (beta1 = 1.5,
 * an unknown optimizer) are not errors here: they carry their reason in point->error. */
roteq_sweep_grid *roteq_sweep_grid_parse(const char *text, const char *name);
roteq_sweep_grid *roteq_sweep_grid_load(const char *path);
void roteq_sweep_grid_free(roteq_sweep_grid *g);

/* splitmix64(splitmix64(grid_seed) ^ index): the point's simulator seed. */
uint64_t roteq_sweep_point_seed(uint64_t grid_seed, size_t index);

/* ---- records (one per point) ------------------------------------------------------------ */

typedef enum {
    ROTEQ_SWEEP_VERDICT_PASS,    /* exact formula, measurement within tolerance SEs */
    ROTEQ_SWEEP_VERDICT_FAIL,    /* exact formula, measurement outside */
    ROTEQ_SWEEP_VERDICT_APPROX,  /* approximate formula: its measured error is reported */
    ROTEQ_SWEEP_VERDICT_UNKNOWN, /* no prediction for this setting */
    ROTEQ_SWEEP_VERDICT_ERROR,   /* bad parameters or the run failed: see reason */
    ROTEQ_SWEEP_VERDICT_COUNT
} roteq_sweep_verdict;

extern const char *const roteq_sweep_verdict_names[ROTEQ_SWEEP_VERDICT_COUNT]; /* "PASS", ... */

typedef struct {
    double norm, angular_update; /* NAN where unknown */
    int exact;
} roteq_sweep_prediction;

/* Plain data (no pointers), so that MPI ranks can ship it as bytes. */
typedef struct {
    size_t index;
    uint64_t seed;
    int verdict; /* roteq_sweep_verdict */
    roteq_sweep_prediction pred[ROTEQ_PRED_COUNT];
    double norm, norm_se, angle, angle_se; /* measured over the last quarter of the steps */
    double rel_floor; /* model tolerance of the PASS rule, roteq_sweep_model_floor() */
    double seconds;
    unsigned threads;
    char reason[ROTEQ_SWEEP_REASON_MAX];
} roteq_sweep_record;

/* Confidence intervals are measured +- ROTEQ_SWEEP_CI_Z * SE (95%, normal). */
#define ROTEQ_SWEEP_CI_Z 1.959963984540054
/* Default PASS rule: |measured - predicted| <= 4 SE for both norm and angular update. */
#define ROTEQ_SWEEP_TOLERANCE 4.0

/* Set rec->verdict from the best prediction and the measurement: an exact formula PASSes when
 * each predicted quantity lies within tolerance * SE + rel_floor * |predicted| of the
 * measurement. For grid points rel_floor is roteq_sweep_model_floor(): the exact formulas are
 * exact to leading order only, and the corrections they leave out become visible once the
 * standard error is small enough (long runs, many neurons, the almost deterministic rotation of
 * the rotational variants). */
void roteq_sweep_judge(roteq_sweep_record *rec, double tolerance, double rel_floor);
/* The relative size of the corrections a point's exact formula leaves out, from its family's
 * model_floor hook (families/<family>.c; derivations and measurements in sweep/README.md):
 * eta*lambda for every optimizer (one step's decay, the continuous-time limit), plus 1 - beta2
 * for Adam-type optimizers (the second-moment estimate is treated as exact), plus
 * (1 - update_norm_decay)/C for the rotational variants (the update is divided by a running RMS
 * of its size). NAN for a family without one. */
double roteq_sweep_model_floor(const roteq_sweep_point *p);
/* (measured - predicted) / predicted, and (measured - predicted) / SE. NAN when unknown. */
double roteq_sweep_rel_err(double measured, double predicted);
double roteq_sweep_z(double measured, double predicted, double se);

/* Run one point: fill `rec` (measurement, predictions, seconds) without judging it.
 * `threads` is the simulator's thread count (0: all cores). Returns 0 or a status with the
 * message in roteq_error_message(). */
typedef int (*roteq_sweep_runner)(const roteq_sweep_point *p, unsigned threads,
                                  roteq_sweep_record *rec, void *ctx);
/* The real runner: one roteq_sim_run() call. */
int roteq_sweep_sim_runner(const roteq_sweep_point *p, unsigned threads, roteq_sweep_record *rec,
                           void *ctx);

/* A matrix optimizer's point or run in the row columns (sweep/README.md, "Matrix rows"):
 * describe fills p->cfg from the ensemble (hyperparameters in force, neurons = matrices x rows,
 * dim = cols, the row gradients' scale-invariant model); record fills rec from the three
 * predictions `eq` (the family's matrix hooks: best; Lion-style in the paper's columns; plain)
 * and the run `res` (row norm and RMS row angle), and names the shape in rec->reason. */
void roteq_sweep_matrix_describe(const roteq_optimizer_type *opt, const roteq_sim_muon_config *m,
                                 roteq_sweep_point *p);
void roteq_sweep_matrix_record(const roteq_sim_muon_config *m, const roteq_muon_equilibrium *eq,
                               const roteq_sim_muon_result *res, roteq_sweep_record *rec);

/* ---- rows ----------------------------------------------------------------------------- */

typedef enum { ROTEQ_SWEEP_CSV, ROTEQ_SWEEP_JSON } roteq_sweep_format;

/* The CSV header line (with newline), and one row as a malloc'd line ending in '\n'
 * (JSON: one object per line). Timing columns: `seconds` and `threads` only. */
void roteq_sweep_csv_header(FILE *out);
char *roteq_sweep_format_row(roteq_sweep_format fmt, const roteq_sweep_grid *g,
                             const roteq_sweep_point *p, const roteq_sweep_record *rec);

/* ---- running -------------------------------------------------------------------------- */

typedef struct {
    unsigned jobs;    /* points run at once in this process (0: one per usable core, at most
                         one per point; under MPI one per rank) */
    unsigned threads; /* simulator threads per point (0: the usable cores / jobs; 1 per MPI rank) */
    double tolerance; /* PASS rule in SEs (0: ROTEQ_SWEEP_TOLERANCE) */
    roteq_sweep_runner runner; /* NULL: roteq_sweep_sim_runner */
    void *runner_ctx;
    /* Called once per finished point, serialised (never concurrently), on any thread;
     * under MPI only on rank 0. A non-zero return stops dealing new points. */
    int (*sink)(void *ctx, const roteq_sweep_point *p, const roteq_sweep_record *rec);
    void *sink_ctx;
} roteq_sweep_options;

/* Run every point whose skip[i] is 0 (`skip` may be NULL). Bad points produce an ERROR record
 * without running. Returns 0, or the sink's non-zero return. */
int roteq_sweep_run(const roteq_sweep_grid *g, const unsigned char *skip,
                    const roteq_sweep_options *o);

/* ---- output file: a journal of whole rows, sorted when the sweep completes ---------------- */

typedef struct roteq_sweep_out roteq_sweep_out;

/* Open FILE for the grid. Without `resume` FILE is started afresh. With `resume` the rows
 * already in FILE for this grid are kept (a torn last line is dropped) and skip[i] is set for
 * each point that has a row (error rows excepted: those points run again); a FILE written for
 * another grid or in another format is ROTEQ_EFORMAT. `skip` has g->npoints entries, or is
 * NULL (a single point: nothing to skip). Memory follows the rows written, not the grid. "-"
 * writes to standard output, in index order at close. `header` is a comment line (without '#')
 * for the CSV preamble, may be NULL. */
roteq_sweep_out *roteq_sweep_out_open(const char *path, roteq_sweep_format fmt,
                                      const roteq_sweep_grid *g, int resume, const char *header,
                                      unsigned char *skip);
/* Append one row: a single write() of the whole line, then fsync-free flush. */
int roteq_sweep_out_write(roteq_sweep_out *o, const roteq_sweep_point *p,
                          const roteq_sweep_record *rec);
/* Rows already in FILE when resuming (in file order), for summaries. */
size_t roteq_sweep_out_resumed(const roteq_sweep_out *o);
/* Rewrite FILE sorted by point index (one row per point, the last written wins), through a
 * temporary file and a rename, and free `o`. */
int roteq_sweep_out_close(roteq_sweep_out *o);
/* Free without rewriting (the journal stays as it is, resumable). Accepts NULL. */
void roteq_sweep_out_abandon(roteq_sweep_out *o);

/* ---- MPI ------------------------------------------------------------------------------ */

/* Initialise MPI when this process was started by mpirun/srun (and roteq was built with
 * -Dmpi=enabled); otherwise a no-op with rank 0 of 1. */
int roteq_sweep_mpi_init(int *argc, char ***argv, int *rank, int *size);
void roteq_sweep_mpi_finalize(void);
/* Like roteq_sweep_run, dealing points dynamically to all ranks: rank 0 deals, gathers every
 * record and calls the sink; other ranks only compute. `skip` is read on rank 0 only. With one
 * rank it is roteq_sweep_run. Collective: every rank calls it. */
int roteq_sweep_run_mpi(const roteq_sweep_grid *g, const unsigned char *skip,
                        const roteq_sweep_options *o);
/* Logical AND of `ok` over ranks (1 without MPI): lets every rank agree to stop early. */
int roteq_sweep_mpi_all(int ok);

#endif
