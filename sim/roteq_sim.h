/* roteq_sim.h - the random-walk simulator as a library call: configuration in, statistics out,
 * no globals. An ensemble of independent neurons (weight vectors of dimension C, float64), each
 * driven by a synthetic gradient model and updated by an optimizer's exact update rule.
 *
 * Reproducibility: every random number is a pure function of (seed, neuron, step, coordinate)
 * through Random123's Philox, so results are bit-identical for any thread count and on any
 * machine of the same kind. The sweep module calls roteq_sim_run() once per grid point. */
#ifndef ROTEQ_SIM_H
#define ROTEQ_SIM_H

#include "roteq_theory.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ROTEQ_GRAD_SCALE_INVARIANT, /* isotropic Gaussian, projected orthogonal to w, divided by ||w|| */
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
    double init_norm;     /* ||w_0|| of every neuron; NAN: the predicted equilibrium norm if known, else 1 */
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
    roteq_sim_stat norm;       /* ||w_t|| */
    roteq_sim_stat angle;      /* angle between w_{t-1} and w_t, radians */
    double angle_rms;          /* sqrt(mean over neurons of angle^2) */
    roteq_sim_stat update_rms; /* RMS over coordinates of w_t - w_{t-1} */
    double pred_norm, pred_angle; /* theory's transient at this step (NAN where unknown) */
} roteq_sim_row;

typedef struct {
    roteq_sim_row *rows;
    size_t nrows;
    /* Measured over the last quarter of the steps (every step, not only recorded ones). Each
     * neuron's time average is one independent sample, so standard errors are the across-neuron
     * standard deviation of those averages over sqrt(N) (for the RMS angle, by the delta method). */
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
    /* Called now and then on the calling thread; may be NULL. */
    void (*on_progress)(void *ctx, size_t step, size_t steps);
    void *ctx;
} roteq_sim_observer;

/* Run the simulation. `obs` may be NULL. On success the caller owns out->rows
 * (release with roteq_sim_result_free). */
int roteq_sim_run(const roteq_sim_config *cfg, const roteq_sim_observer *obs,
                  roteq_sim_result *out);
void roteq_sim_result_free(roteq_sim_result *r);

#endif
