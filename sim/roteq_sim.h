/* roteq_sim.h - the random-walk simulator as a library call: configuration in, statistics out,
 * no globals. An ensemble of independent neurons (weight vectors of dimension C, float64), each
 * driven by a synthetic gradient model and updated by an optimizer's exact update rule.
 *
 * Reproducibility: every random number is a pure function of (seed, neuron, step, coordinate)
 * through a counter-based generator (Random123's designs), so results are bit-identical for any
 * thread count and on any machine of the same kind. The sweep module calls roteq_sim_run() once per
 * grid point. */
#ifndef ROTEQ_SIM_H
#define ROTEQ_SIM_H

#include "roteq_theory.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ROTEQ_GRAD_SCALE_INVARIANT, /* isotropic Gaussian, orthogonal to w, divided by ||w|| */
    ROTEQ_GRAD_HETEROGENEOUS,   /* as above with a per-neuron log-normal gradient scale */
    ROTEQ_GRAD_ANISOTROPIC,     /* per-coordinate variances differ, some coordinates dead */
    ROTEQ_GRAD_RADIAL,          /* adds a component along w: breaks scale invariance */
    ROTEQ_GRAD_COUNT
} roteq_grad_model;

extern const char *const roteq_grad_model_names[ROTEQ_GRAD_COUNT]; /* "scale-invariant", ... */
/* ROTEQ_ENOTFOUND with a message listing the known models when `name` is unknown. */
int roteq_grad_model_lookup(const char *name, roteq_grad_model *out);

typedef struct {
    const roteq_optimizer_type *opt;
    roteq_hparams hp;
    roteq_schedule lr_schedule, wd_schedule;
    size_t neurons, dim, steps;
    uint64_t seed;
    unsigned threads; /* 0: all online cores */
    roteq_grad_model grad_model;
    double grad_norm;     /* RMS of ||g~||; NAN: coordinates standard normal (E||g~||^2 = C-1) */
    double grad_spread;   /* heterogeneous: standard deviation of the log gradient scale */
    double dead_fraction; /* anisotropic: fraction of coordinates whose gradient is always 0 */
    double radial;        /* radial: mean radial gradient component, relative to ||g~||/||w|| */
    double init_norm;     /* ||w_0||; NAN: the predicted equilibrium norm if known, else 1 */
    size_t every;         /* record statistics every k steps; 0: about 200 rows over the run */
} roteq_sim_config;

/* Fill `cfg` with defaults for `opt` (its default hyperparameters, 128 neurons, C = 128, 10000
 * steps, seed 1, scale-invariant gradients, all threads). */
void roteq_sim_config_init(roteq_sim_config *cfg, const roteq_optimizer_type *opt);
/* ROTEQ_EINVAL naming the field ("neurons must be positive") on a bad configuration. */
int roteq_sim_config_validate(const roteq_sim_config *cfg);

typedef struct {
    double mean, std, q05, q50, q95;
} roteq_sim_stat;

/* Across-neuron statistics after one recorded step. */
typedef struct {
    size_t step; /* optimizer steps taken (1-based) */
    double lr, weight_decay;
    roteq_sim_stat norm;          /* ||w_t|| */
    roteq_sim_stat angle;         /* angle between w_{t-1} and w_t, radians */
    double angle_rms;             /* sqrt(mean over neurons of angle^2) */
    roteq_sim_stat update_rms;    /* RMS over coordinates of w_t - w_{t-1} */
    double pred_norm, pred_angle; /* theory's transient at this step (NAN where unknown) */
} roteq_sim_row;

typedef struct {
    roteq_sim_row *rows;
    size_t nrows;
    /* Measured over the last quarter of the steps (every step, not only recorded ones). Each
     * neuron's time average is one independent sample, so standard errors are the across-neuron
     * standard deviation of those averages over sqrt(N) (the RMS angle's by the delta method). */
    double norm_mean, norm_se;
    double angle_rms, angle_rms_se;
    roteq_equilibrium predicted[ROTEQ_PRED_COUNT]; /* norm NAN where unknown */
    double seconds;
    unsigned threads_used;
} roteq_sim_result;

typedef struct {
    /* Called on the calling thread at each recorded step with every neuron's norm and the angle
     * of the step just taken. A non-zero return aborts the run and is returned by roteq_sim_run. */
    int (*on_record)(void *ctx, size_t step, double lr, double weight_decay, const double *norms,
                     const double *angles, size_t neurons);
    /* Called now and then on the calling thread (at least every ~1e8 coordinate-steps of its
     * own neurons, records or not); may be NULL. */
    void (*on_progress)(void *ctx, size_t step, size_t steps);
    void *ctx;
    /* Called on the calling thread with each row as it is summarised (after on_record), with
     * the result so far (its `predicted` is set); may be NULL. Non-zero aborts as above. */
    int (*on_row)(void *ctx, const roteq_sim_row *row, const roteq_sim_result *partial);
} roteq_sim_observer;

/* Longest run: 1e10 steps (days of work even for one small neuron). */
#define ROTEQ_SIM_STEPS_MAX 10000000000ULL
/* Rows a run keeps in memory (about 170 bytes each) unless they stream. */
#define ROTEQ_SIM_ROWS_MAX 1000000
/* Bytes a run of `cfg` allocates (exactly what roteq_sim_run_ex takes, to the cache line;
 * `keep_rows` 0 when the rows stream): about N (C_pad (1 + state vectors) + 6 + 3 slots) * 8
 * for N neurons of C coordinates, plus 170 bytes per kept row. cfg must be valid. */
double roteq_sim_memory(const roteq_sim_config *cfg, int keep_rows);

/* Run the simulation. `obs` may be NULL. On success the caller owns out->rows
 * (release with roteq_sim_result_free). */
int roteq_sim_run(const roteq_sim_config *cfg, const roteq_sim_observer *obs,
                  roteq_sim_result *out);
void roteq_sim_result_free(roteq_sim_result *r);

/* ---- Update rules ------------------------------------------------------------------------------
 * One optimizer step on one neuron given its gradient: the reference form of each rule, defined
 * with the optimizer in its family file (families/<family>.c) and found by the optimizer type.
 * The engine's fused kernels inline the same per-coordinate arithmetic, and
 * tests/sim/test_parity.c drives these rules with PyTorch's recorded trajectories. */

/* Per-step coefficients of a rule, computed once per step from the hyperparameters, the step
 * number t (1-based) and the lr / weight decay in force (schedules applied). */
typedef struct {
    size_t t;
    double lr, wd;                      /* in force at this step */
    double neg_lr;                      /* -lr */
    double decay;                       /* 1 - lr*wd (decoupled rules) */
    double momentum, mom_keep, mom_new; /* SGD: buf = keep*buf + new*d (keep 0, new 1 at t = 1) */
    int nesterov;
    double beta1, one_m_beta1, beta2, one_m_beta2, eps;
    double bc1, bc2_sqrt, neg_step_size; /* Adam: 1-beta1^t, sqrt(1-beta2^t), -lr/(1-beta1^t) */
    double rv_rate;                      /* RV: target angular update eta_r at this step */
    double rv_decay;                     /* RV: update_norm_decay */
    double rv_bc;                        /* RV: 1 - update_norm_decay^t */
} roteq_sim_coef;

/* `rv_rate` is the equilibrium angular update of the base optimizer at the base lr and weight
 * decay (from theory; ignored for non-RV rules); it is rescaled here by sqrt(lr*wd) in force. */
void roteq_sim_coef_init(roteq_sim_coef *k, const roteq_optimizer_type *opt,
                         const roteq_hparams *hp, size_t t, double lr, double wd, double rv_rate);

typedef struct roteq_sim_rule {
    const roteq_optimizer_type *opt;
    unsigned state_vectors; /* per-coordinate state vectors beside w (m, v, momentum buffer) */
    unsigned scalars;       /* per-neuron scalar state (RV: target norm, running update size) */
    /* Prepare a fresh neuron: zero state; RV also centres w and records its norm. */
    void (*init)(double *w, double *state, double *scalars, size_t dim, size_t stride);
    /* One step: w and the state vectors (vector j at state + j*stride) are updated in place. */
    void (*step)(const roteq_sim_coef *k, double *w, const double *g, double *state,
                 double *scalars, size_t dim, size_t stride);
    /* Adjusts the coefficients roteq_sim_coef_init computed (may be NULL). */
    void (*coef)(roteq_sim_coef *k, const roteq_optimizer_type *opt, const roteq_hparams *hp);
    /* The fused loop over the cp (padded) coordinates of a neuron: gradient alpha*z + beta*w,
     * the rule, step d written over z, sums[] = ||w_new||^2, ||d||^2, <d, w_old> (sim/kernel.c).
     * NULL: the engine materialises the gradient and calls step. */
    void (*fused)(const roteq_sim_coef *k, size_t cp, double alpha, double beta, double *w,
                  double *z, double *s1, double *s2, double sums[3]);
    /* A matrix-granularity family's simulator (roteq_sim_muon.h): its ensembles of whole
     * matrices run there, not in the per-neuron engine. NULL for per-neuron rules. */
    const struct roteq_sim_matrix *matrix;
} roteq_sim_rule;

/* The rule of `opt`; NULL (ROTEQ_EUNSUPPORTED set) for a type with no rule. */
const roteq_sim_rule *roteq_sim_rule_for(const roteq_optimizer_type *opt);
/* The matrix simulator of `opt` (its family file's ROTEQ_SIM_MATRIX_RULE); NULL, with no error
 * set, for an optimizer the per-neuron engine runs. */
const struct roteq_sim_matrix *roteq_sim_matrix_for(const roteq_optimizer_type *opt);

/* ---- Engine options ---------------------------------------------------------------------------
 * The kernels are compiled for several instruction sets and give identical bits on each
 * (tests/sim/test_engine.c checks); ROTEQ_SIM_ISA_AUTO picks the widest the CPU supports. */
typedef enum {
    ROTEQ_SIM_ISA_AUTO,
    ROTEQ_SIM_ISA_GENERIC, /* portable C, any x86-64 (or other) CPU */
    ROTEQ_SIM_ISA_AVX2,    /* AVX2 + FMA units (x86-64-v3) */
    ROTEQ_SIM_ISA_AVX512,  /* AVX-512 (x86-64-v4) */
    ROTEQ_SIM_ISA_COUNT
} roteq_sim_isa;

extern const char *const roteq_sim_isa_names[ROTEQ_SIM_ISA_COUNT]; /* "auto", "generic", ... */
/* 1 when this build and this CPU can run `isa` (AUTO: always). */
int roteq_sim_isa_available(roteq_sim_isa isa);
/* The instruction set AUTO resolves to here. */
roteq_sim_isa roteq_sim_isa_best(void);

/* Extended run options, kept apart from roteq_sim_config so its layout (used by sweep/) stays as
 * agreed. roteq_sim_run() uses the defaults (all zero: auto ISA, fused kernels). */
typedef struct {
    roteq_sim_isa isa;
    int reference;   /* 1: drive the rule table with materialised gradients instead of the fused
                        kernels (slow; tests use it to check the kernels bit for bit) */
    int stream_rows; /* 1: rows go only to the observer's on_row; out->rows stays NULL and
                        out->nrows counts them (memory independent of steps / every) */
} roteq_sim_options;

int roteq_sim_run_ex(const roteq_sim_config *cfg, const roteq_sim_options *ex,
                     const roteq_sim_observer *obs, roteq_sim_result *out);

/* ---- Normal generators ------------------------------------------------------------------------
 * Counter-based generator + transform (sim/normal_inline.h; sim/README.md says which the engine
 * draws and why). Each is a pure function of (seed, stream, step, index) with identical bits on
 * every instruction set. */
typedef enum {
    ROTEQ_NORMALS_PHILOX10_BOXMULLER, /* Philox4x32-10 + Box-Muller (fdlibm log, sin/cos) */
    ROTEQ_NORMALS_PHILOX7_BOXMULLER,  /* Philox4x32-7 (Random123's minimum rounds) */
    ROTEQ_NORMALS_PHILOX10_ZIGGURAT,  /* 2048-box ziggurat, one 64-bit word per normal */
    ROTEQ_NORMALS_PHILOX7_ZIGGURAT,
    ROTEQ_NORMALS_ARS5_BOXMULLER, /* ARS-5 (AES rounds: Random123's ars4x32_R(5, ...)) */
    ROTEQ_NORMALS_ARS5_ZIGGURAT,
    ROTEQ_NORMALS_ARS5_ZIGGURAT256, /* 256 boxes: the table in AVX-512 registers, no loads */
    ROTEQ_NORMALS_COUNT
} roteq_sim_normal_kind;

extern const char *const roteq_sim_normal_names[ROTEQ_NORMALS_COUNT]; /* "philox10-boxmuller" */
/* The kind the engine draws. */
extern const roteq_sim_normal_kind roteq_sim_engine_normals;

/* n normals of `kind` for (seed, stream, step) computed by the kernels of `isa` (the same bits on
 * each); ROTEQ_EINVAL / ROTEQ_EUNSUPPORTED / ROTEQ_ENOMEM. */
int roteq_sim_normals_as(roteq_sim_normal_kind kind, roteq_sim_isa isa, uint64_t seed,
                         uint32_t stream, uint64_t step, double *out, size_t n);
/* The bare loop of roteq_sim_bench_normals for any kind. */
double roteq_sim_bench_normals_as(roteq_sim_normal_kind kind, size_t neurons, size_t dim,
                                  size_t steps, unsigned threads, roteq_sim_isa isa,
                                  double *checksum);

/* The floor of the engine: draw the same normals (the engine's kind, `dim` per neuron and step)
 * and nothing else, over `threads` threads (0: all). Returns seconds elapsed, or a
 * negative status. `checksum` (may be NULL) receives the sum of all normals so the work cannot
 * be optimised away. */
double roteq_sim_bench_normals(size_t neurons, size_t dim, size_t steps, unsigned threads,
                               roteq_sim_isa isa, double *checksum);

/* The SLEEF comparison (sim/bench_sleef.c; the engine does not use SLEEF): the same Philox words
 * turned into normals by a Box-Muller with SLEEF's vectorised log and sincospi, u35 = 0: its
 * accurate functions (log u10, sincospi u05: the kernel's accuracy class), u35 = 1: its fast ones
 * (3.5 ulp). Available for the AVX-512 and AVX2 instruction sets (AUTO: the widest the CPU has);
 * otherwise ROTEQ_EUNSUPPORTED. roteq_sim_bench_sleef_normals times the same bare loop as
 * roteq_sim_bench_normals; roteq_sim_sleef_normals gives the n normals it draws for (seed,
 * stream, step), which equal roteq_sim_normals' up to rounding. */
int roteq_sim_sleef_available(roteq_sim_isa isa);
double roteq_sim_bench_sleef_normals(size_t neurons, size_t dim, size_t steps, unsigned threads,
                                     roteq_sim_isa isa, int u35, double *checksum);
int roteq_sim_sleef_normals(roteq_sim_isa isa, int u35, uint64_t seed, uint32_t stream,
                            uint64_t step, double *out, size_t n);

/* n standard normals for (seed, stream, step), exactly as the engine draws a neuron's gradient
 * coordinates (stream = neuron index; coordinate i is out[i]; drawn by the widest kernels, the
 * same bits as every other). ROTEQ_ENOMEM if a temporary
 * buffer cannot be allocated. roteq_sim_normals_padded(n): how many the engine draws per
 * neuron-step for n coordinates (whole batches of 64). */
size_t roteq_sim_normals_padded(size_t n);
int roteq_sim_normals(uint64_t seed, uint32_t stream, uint64_t step, double *out, size_t n);

#endif
