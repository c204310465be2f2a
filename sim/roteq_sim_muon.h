/* roteq_sim_muon.h - the Muon simulator: ensembles of M independent weight matrices (rows x
 * cols), each row a scale-invariant neuron, updated by torch.optim.Muon's algorithm in float64
 * with the matrix products through CBLAS (OpenBLAS), or with the Newton-Schulz iteration in
 * bfloat16 as PyTorch runs it.
 *
 * Separate from the per-neuron engine (roteq_sim.h) because Muon's unit is a whole matrix: the
 * Newton-Schulz iteration couples every row. One matrix per thread, each matrix's random
 * numbers from its own Philox streams, so results are bit-identical for any thread count. */
#ifndef ROTEQ_SIM_MUON_H
#define ROTEQ_SIM_MUON_H

#include "roteq_muon.h"
#include "roteq_schedule.h"

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/* The arithmetic of the Newton-Schulz iteration. FLOAT64: every operation in double.
 * BFLOAT16: torch.optim.Muon's (PyTorch 2.9 runs the iteration on grad.bfloat16()): the input
 * rounded to bfloat16 (through float32, as torch converts a double), its Frobenius norm and the
 * division rounded to bfloat16, and every product (X X^T, b A + c A A, a X + B X) accumulated in
 * float32 from the bfloat16 operands (cblas_sgemm; CPU torch's bfloat16 matmul accumulates in
 * float32), the beta*C + alpha*AB of an addmm formed in float32, then rounded once. The update
 * W <- W d - lr_adj O stays in float64 (O holds bfloat16 values). */
typedef enum {
    ROTEQ_SIM_NS_FLOAT64,
    ROTEQ_SIM_NS_BFLOAT16,
    ROTEQ_SIM_NS_COUNT
} roteq_sim_ns_precision;

extern const char *const roteq_sim_ns_precision_names[ROTEQ_SIM_NS_COUNT];
/* "float64" / "bfloat16"; ROTEQ_ENOTFOUND (message lists both) otherwise. */
int roteq_sim_ns_precision_parse(const char *name, roteq_sim_ns_precision *out);

/* x rounded to the nearest bfloat16, ties to even, returned as the float holding it (torch's
 * c10::BFloat16 round_to_nearest_even): infinities stay, finite values past the largest
 * bfloat16 become infinities, float32 subnormals round like normals, and any NaN becomes
 * torch's quiet NaN 0x7FC0 (positive). */
float roteq_sim_bf16_round(float x);
/* A double to bfloat16 as torch's Tensor.bfloat16() converts it: to float32 first (nearest),
 * then to bfloat16 (nearest), two roundings. */
float roteq_sim_bf16_from_double(double x);

/* Workspace for one matrix's Newton-Schulz iteration and update (no allocation per step). */
typedef struct roteq_muon_work roteq_muon_work;

roteq_muon_work *roteq_muon_work_alloc(size_t rows, size_t cols, roteq_sim_ns_precision prec);
void roteq_muon_work_free(roteq_muon_work *w);

/* O = NS(U): torch.optim.Muon's orthogonalisation of the rows x cols matrix U (row-major),
 * ns_steps quintic iterations on U/max(||U||_F, eps), transposed when rows > cols, in the
 * workspace's precision. */
void roteq_muon_ns(roteq_muon_work *w, const double *U, double *O, int ns_steps, double eps);

/* One Muon step on W (row-major rows x cols) given its gradient G, with the lr and weight
 * decay in force: buf <- lerp(buf, G, 1-momentum); update = lerp(G, buf, momentum) (Nesterov)
 * or buf; W <- W*(1 - lr*wd) - adjusted_lr * NS(update). buf starts at zero. */
void roteq_muon_step(roteq_muon_work *w, const roteq_muon_hparams *hp, double lr, double wd,
                     double *W, double *buf, const double *G);
/* The orthogonalised update O of the last roteq_muon_step (rows x cols, row-major). */
const double *roteq_muon_work_update(const roteq_muon_work *w);

typedef struct {
    roteq_muon_hparams hp;
    roteq_schedule lr_schedule, wd_schedule; /* factors on hp.lr / hp.weight_decay per step */
    size_t matrices, steps;
    uint64_t seed;
    unsigned threads;                    /* 0: all online cores */
    double init_norm;                    /* initial row norm; NAN: theory's best prediction */
    size_t every;                        /* record every k steps; 0: about 200 rows over the run */
    roteq_sim_ns_precision ns_precision; /* default FLOAT64 */
    FILE *trace; /* NULL, or where matrix 0's rows go at every recorded step as trace CSV rows
                    (docs/FORMATS.md §1, layer "W", no header): step,W,row,norm,angle,lr,wd */
} roteq_sim_muon_config;

void roteq_sim_muon_config_init(roteq_sim_muon_config *cfg);
/* ROTEQ_EINVAL naming the field, or when the run would need more memory than is available. */
int roteq_sim_muon_config_validate(const roteq_sim_muon_config *cfg);
/* Bytes the run needs (workspaces per thread, statistics per matrix and record). */
double roteq_sim_muon_memory(const roteq_sim_muon_config *cfg);

typedef struct {
    size_t step;
    double row_norm;      /* mean over rows and matrices of ||w_row|| */
    double row_angle_rms; /* RMS over rows and matrices of the step's row angle */
    double matrix_norm;   /* mean Frobenius norm */
    double matrix_angle_rms;
    double pred_norm, pred_angle; /* theory's transient (roteq_muon_transient) at this step */
} roteq_sim_muon_row;

typedef struct {
    roteq_sim_muon_row *rows;
    size_t nrows;
    /* Last quarter of the steps; each matrix's time average is one independent sample, so the
     * standard errors are across matrices (rows of one matrix are coupled). */
    double row_norm, row_norm_se, row_angle_rms, row_angle_rms_se;
    double matrix_norm, matrix_norm_se, matrix_angle_rms, matrix_angle_rms_se;
    double q_row, q_row_se; /* measured E||o_row||^2 of the orthogonalised update */
    double seconds;
    unsigned threads_used;
} roteq_sim_muon_result;

int roteq_sim_muon_run(const roteq_sim_muon_config *cfg, roteq_sim_muon_result *out);
void roteq_sim_muon_result_free(roteq_sim_muon_result *r);

/* Benchmark of the Newton-Schulz iteration on one thread: `reps` orthogonalisations of an n x n
 * Gaussian matrix; returns seconds, and *flops the floating-point operations they count
 * (X X^T as dsyrk, then two dgemms per step); CPU time of the calling thread.
 * roteq_sim_muon_bench_dgemm times `reps` square
 * n x n dgemms (2 n^3 flops each) on one thread, the ceiling to compare against. */
double roteq_sim_muon_bench_ns(size_t n, int ns_steps, size_t reps, double *flops);
double roteq_sim_muon_bench_dgemm(size_t n, size_t reps, double *flops);
/* CPU seconds per step of the whole walk (gradients, step, statistics) on one n x n matrix,
 * one thread: what bench/muon_peer.py does in torch. Negative status on failure. */
double roteq_sim_muon_bench_walk(size_t n, size_t steps);

/* ---- A matrix family's simulator, as its family file registers it ----------------------------
 * The sim part of a matrix-granularity family (families/<family>.c) gives one of these in its
 * rule-table entry (ROTEQ_SIM_MATRIX_RULE, sim/family_sim.h); the drivers (simulate, verify,
 * bench, sweep) reach it through roteq_sim_matrix_for(opt) and never name the optimizer. Typed by
 * Muon's configuration, as the theory's matrix hooks are by its hyperparameters: a second matrix
 * family would generalise roteq_sim_muon_config. */

/* One point of `roteq verify`'s matrix rows: the hyperparameters that vary between points. */
typedef struct {
    size_t rows, cols;
    double momentum;
    int nesterov, ns_steps;
    roteq_sim_ns_precision ns_precision;
} roteq_sim_matrix_point;

typedef struct roteq_sim_matrix {
    void (*config_init)(roteq_sim_muon_config *cfg);
    int (*config_validate)(const roteq_sim_muon_config *cfg);
    int (*run)(const roteq_sim_muon_config *cfg, roteq_sim_muon_result *out);
    void (*result_free)(roteq_sim_muon_result *r);
    /* `roteq bench`'s rows: the orthogonalisation, the dgemm ceiling, the whole walk. */
    double (*bench_ns)(size_t n, int ns_steps, size_t reps, double *flops);
    double (*bench_dgemm)(size_t n, size_t reps, double *flops);
    double (*bench_walk)(size_t n, size_t steps);
    /* `roteq verify`'s points (full and --quick) at lr verify_lr, weight decay verify_wd, and
     * the ensemble each runs: matrices and steps (full, quick). */
    const roteq_sim_matrix_point *verify_points, *verify_quick_points;
    size_t nverify_points, nverify_quick_points;
    double verify_lr, verify_wd;
    size_t verify_matrices[2], verify_steps[2];
} roteq_sim_matrix;

#endif
