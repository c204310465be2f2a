/* roteq_theory.h - what the theory of rotational equilibrium predicts (Kosson, Messmer, Jaggi,
 * ICML 2024, arXiv 2305.17212): closed-form equilibria per optimizer, and expected-value
 * recurrences for the transient that leads there. Pure functions of hyperparameters: no I/O,
 * no random numbers. Derivations live in theory/README.md. */
#ifndef ROTEQ_THEORY_H
#define ROTEQ_THEORY_H

#include "roteq_muon.h"
#include "roteq_optimizer.h"
#include "roteq_schedule.h"

/* The largest dimension theory accepts: 2^53, where a double still counts every coordinate. */
#define ROTEQ_THEORY_DIM_MAX ((size_t)1 << 53)

/* The neuron the prediction is for. */
typedef struct {
    size_t dim;       /* C, the length of the weight vector; 0 when unknown (norms that grow
                       * with sqrt(C), AdamW's, Adam+L2's and Lion's, are then NAN) */
    double grad_norm; /* RMS of ||g~||, the gradient norm at unit weight norm; NAN when unknown */
} roteq_setting;

/* Which prediction: the best roteq has, the paper's formula, or the plain uncorrelated form.
 * They differ only for the Lion family; for other optimizers all three are the same. */
typedef enum {
    ROTEQ_PRED_BEST,
    ROTEQ_PRED_PAPER,
    ROTEQ_PRED_PLAIN,
    ROTEQ_PRED_COUNT
} roteq_prediction;

extern const char *const roteq_prediction_names[ROTEQ_PRED_COUNT]; /* "best", "paper", "plain" */

typedef struct {
    double norm; /* expected equilibrium ||w||; NAN when it needs grad_norm and none is set */
    double angular_update; /* RMS over neurons and steps of the angle between w_t and w_{t+1} */
    int exact; /* 1 when exact under the random-walk model (C large), 0 if approximate */
    const char
        *source; /* where it comes from: "paper Table 1", "derived here (theory/README.md)" */
} roteq_equilibrium;

/* ---- Optimizer families (GSL's gsl_rng_type pattern: constant data and function pointers) ----
 * Every optimizer type points to its family (families/<family>.c), whose hooks the drivers below
 * call; no driver names an optimizer. The hooks' arguments are validated by the drivers. The
 * transient state and the stationary state are internal (theory/theory_internal.h). */
typedef struct roteq_transient roteq_transient;
typedef struct roteq_stationary roteq_stationary;

/* A matrix-granularity family's own theory (ROTEQ_GRAN_MATRIX): its hyperparameters beyond
 * roteq_hparams (the shape among them) do not fit the per-neuron hooks' (hp, C, G), so it
 * predicts through these, over the matrix hyperparameters of theory/roteq_muon.h (Muon is the one
 * matrix family). The per-neuron hooks of such a family are NULL and the drivers below refuse it
 * (ROTEQ_EUNSUPPORTED). */
typedef struct {
    const char *key;          /* JSON key, as the recorder writes it: "ns_steps" */
    const char *default_json; /* its default as JSON text: "5", "\"original\"" */
} roteq_matrix_hparam;

typedef struct {
    /* hyperparameters beyond the type's roteq_hparams mask, for `roteq theory --list` */
    const roteq_matrix_hparam *extra;
    int nextra;
    roteq_muon_hparams (*defaults)(void);
    int (*validate)(const roteq_muon_hparams *hp);
    int (*equilibrium)(const roteq_muon_hparams *hp, roteq_muon_prediction which,
                       roteq_muon_equilibrium *out);
    roteq_muon_transient *(*transient_alloc)(const roteq_muon_hparams *hp, double init_norm);
    void (*transient_free)(roteq_muon_transient *tr);
    int (*transient_step)(roteq_muon_transient *tr, double lr, double weight_decay, double *norm,
                          double *angle);
} roteq_matrix_hooks;

struct roteq_family {
    const char *name;
    roteq_granularity granularity;
    /* Closed forms; C and G are NAN where unknown (hyperparameters already validated). */
    int (*equilibrium)(const roteq_optimizer_type *opt, const roteq_hparams *hp, double C, double G,
                       roteq_prediction which, roteq_equilibrium *out);
    /* Transient: extra state (may be NULL), one step returning the step's angle, the
     * stationary state, and E = A - E<w_t, w_{t+k}> at equilibrium for the k-step angle (NULL:
     * unknown). kstep_angle (may be NULL) replaces the generic k-step angle entirely. */
    int (*transient_init)(roteq_transient *tr);
    void (*transient_free)(roteq_transient *tr);
    double (*transient_step)(roteq_transient *tr, double eta, double lam);
    int (*stationary)(const roteq_transient *tr, double eta, double lam, roteq_stationary *st);
    double (*kstep_drift)(const roteq_transient *tr, const roteq_stationary *st, double eta,
                          double lam, long k);
    double (*kstep_angle)(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                          const roteq_setting *s, long k);
    /* Rate of the linearised mean-square-norm recurrence at equilibrium (per step); NULL or
     * NAN: no closed form. */
    double (*convergence_rate)(const roteq_optimizer_type *opt, double lr, double wd);
    /* The relative error the closed forms may show at these hyperparameters beside the standard
     * error: the terms the random-walk model's first-order expansion drops (order eta*lambda for
     * every family, and the family's own, as AdamW's 1 - beta2); `roteq verify`'s and `roteq
     * sweep`'s PASS rule allows it (sweep/README.md). dim 0: unknown. Every family gives one (NAN
     * without: no exact prediction would pass). */
    double (*model_floor)(const roteq_optimizer_type *opt, const roteq_hparams *hp, size_t dim);
    int holds_norm; /* 1: the norm stays at its initial value (rotational variants) */
    /* Groups of `roteq verify`'s grid for the family's optimizers (JSON text, roteq sweep GRID
     * syntax), chosen so that each run measures an equilibrium (sweep/README.md); NULL: none. */
    const char *verify_groups;
    /* ROTEQ_GRAN_MATRIX only: the matrix theory above; NULL otherwise */
    const roteq_matrix_hooks *matrix;
};

/* Equilibrium for `opt` with validated hyperparameters `hp`. ROTEQ_EINVAL on invalid input. */
int roteq_theory_equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                             const roteq_setting *s, roteq_prediction which,
                             roteq_equilibrium *out);

/* The exact fixed point of the transient recurrences below at constant hyperparameters: the
 * discrete-time equilibrium of the random-walk model, without the first-order expansion in
 * eta*lambda of the closed forms (they differ by O(eta*lambda/(1-beta)): -0.45% in AdamW's
 * norm at eta*lambda = 1e-3, beta1 = 0.9). For Lion it equals the `best` closed form. Norm NAN
 * where the scale is unknown, as above; RV variants give their target rotation.
 * (Added by the theory issue; derivation in theory/README.md.) */
int roteq_theory_stationary(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                            const roteq_setting *s, roteq_equilibrium *out);

/* Human-readable formulas for `roteq theory --list`. */
const char *roteq_theory_formula(const roteq_optimizer_type *opt);

/* Transient: expected-value recurrences for E||w_t||^2 and the expected angular update at each
 * step, from ||w_0|| = init_norm, under per-step lr and weight decay (schedules). */

roteq_transient *roteq_transient_alloc(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                       const roteq_setting *s, double init_norm);
void roteq_transient_free(roteq_transient *tr);
/* Advance one optimizer step using the lr and weight decay in force at that step; writes the
 * predicted RMS norm after the step and the predicted RMS angular update of the step (NAN
 * where the prediction needs grad_norm and none is set). */
int roteq_transient_step(roteq_transient *tr, double lr, double weight_decay, double *norm,
                         double *angular_update);

/* Steps until the predicted norm and angular update stay within `tol` (relative) of equilibrium,
 * with constant hyperparameters; -1 if not reached within max_steps. */
long roteq_theory_steps_to_equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                       const roteq_setting *s, double init_norm, double tol,
                                       long max_steps);

/* Rate (per step) at which the mean-square norm's deviation from equilibrium decays near
 * equilibrium, from the linearised recurrence (analysis/README.md); NAN where the family has no
 * closed form or the norm is held constant. */
double roteq_theory_convergence_rate(const roteq_optimizer_type *opt, double lr, double wd);

/* The family's model floor (roteq_family.model_floor) for validated `hp` and dimension `dim`
 * (0: unknown); NAN for a NULL type or a family without one. */
double roteq_theory_model_floor(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                size_t dim);

/* RMS angle between w_t and w_{t+k} at equilibrium (checkpoints k steps apart). k = 1 gives the
 * angular update. */
double roteq_theory_kstep_angle(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                const roteq_setting *s, long k);

#endif
