/* theory_internal.h - what the theory drivers (equilibrium.c, transient.c) and the theory parts
 * of the family files (families/<family>.c) share, and nobody else: the family type with its
 * hooks, the state of the transient recurrences, their stationary state, and numerical helpers.
 * Not installed, not included outside theory/ and families/ (tests reach these numbers through
 * the public API). */
#ifndef ROTEQ_THEORY_INTERNAL_H
#define ROTEQ_THEORY_INTERNAL_H

#include "roteq_theory.h"

#include <math.h>

/* NAN is a float; the double keeps -Wdouble-promotion quiet in conditionals. */
#define ROTEQ_NAN ((double)NAN)

typedef struct roteq_transient_priv roteq_transient_priv; /* a family's own transient state */

/* The state of the transient recurrences (transient.c drives them, the family steps them). The
 * second moments below are the ones every linear optimizer needs; a family with more state
 * (Lion's lag history) allocates it in transient_init and keeps it in `priv`. */
struct roteq_transient {
    const roteq_optimizer_type *opt;
    roteq_hparams hp; /* base values; lr and weight decay come with each step */
    double C, G2;     /* dimension and E||g~||^2 used (placeholders when the scale is unknown) */
    int norm_known;   /* the absolute norm is determined */
    int angle_known;  /* the angles are determined (scale-free when starting at equilibrium) */
    long t;           /* steps taken */
    double A;         /* E||w_t||^2 */
    double B;         /* E||b_{t-1}||^2: SGD buffer or Adam first moment (raw gradient units) */
    double Y;         /* E<b_{t-1}, w_t> */
    double v;         /* Adam: per-coordinate second moment (before bias correction) */
    double alpha, c;  /* SGD momentum and 1 - dampening */
    int nesterov;
    roteq_transient_priv *priv;
};

/* The stationary state of the recurrences at constant hyperparameters. */
struct roteq_stationary {
    double A, B, Y;     /* E||w||^2, E||b||^2, E<b_{t-1}, w_t> */
    double k;           /* Adam: the step scale eta / (sqrt(v) + eps) */
    double angle;       /* the angular update per step */
    int exact;          /* exact under the random-walk model as C grows */
    const char *source; /* NULL: "fixed point of the transient recurrence" */
};

/* k-step gaps up to this many steps run a family's cross-moment recurrence step by step (results
 * identical to earlier releases); longer ones use its closed forms, whose cost does not grow
 * with k. */
#define ROTEQ_KSTEP_LOOP_MAX 65536

/* E_k of the affine map M = I + X on the state (E, Q, 1) from (E0, Q0), by repeated squaring
 * with powers kept as I + X (transient.c): for linear k-step recurrences over long gaps. */
double roteq_theory_affine_power_E(double X[3][3], long k, double E0, double Q0);

/* The generic k-step angle (transient.c), for families that map onto another optimizer. */
double roteq_theory_kstep_generic(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                  const roteq_setting *s, long k);
/* The model floor's order-eta*lambda term, lr * weight_decay (equilibrium.c): the whole
 * model_floor hook of the families that drop nothing else (SGD, Lion, Muon). */
double roteq_theory_floor_lr_wd(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                                size_t dim);
/* 1 when `s` gives every scale `opt` needs. */
int roteq_theory_scale_known(const roteq_optimizer_type *opt, const roteq_setting *s);
void roteq_theory_set(roteq_equilibrium *out, double norm, double angle, int exact,
                      const char *src);

#define ROTEQ_SRC_PAPER   "Kosson et al. 2024 (arXiv 2305.17212), equilibrium table"
#define ROTEQ_SRC_DERIVED "derived here (theory/README.md)"

/* Lion's per-coordinate pre-sign signal c_t = beta1*m_{t-1} + (1-beta1)*g_t, with i.i.d. unit
 * gradients, has stationary variance K (the paper's K) and lag-k correlation
 * rho_k = rho1 * beta2^(k-1), k >= 1 (families/lion.c; theory/README.md, "Lion"). Muon's Nesterov
 * input has the same lag structure (theory/muon.c). */
double roteq_lion_K(double beta1, double beta2);
double roteq_lion_rho1(double beta1, double beta2);

/* Angle (radians) between w and w' = d*w - delta when E||w||^2 = A, E<w,delta> = P and
 * E||delta||^2 = Q (mean-field: large C). Stable for tiny angles. */
double roteq_step_angle(double A, double d, double P, double Q);

#endif
