/* roteq_muon.h - Muon (momentum orthogonalised by a Newton-Schulz iteration, decoupled weight
 * decay; torch.optim.Muon, PyTorch 2.9) as theory sees it: its hyperparameters and the
 * equilibrium of a weight matrix whose rows are scale-invariant neurons.
 *
 * Muon couples every row of a matrix, so its hyperparameters include the matrix shape and its
 * predictions come per row and for the whole matrix. Kept apart from the per-neuron optimizer
 * table (roteq_optimizer.h), which has no notion of shape. Derivations: theory/README.md,
 * section "Muon". Pure functions: no I/O, no random numbers. */
#ifndef ROTEQ_MUON_H
#define ROTEQ_MUON_H

#include <stddef.h>

/* torch.optim.Muon's adjust_lr_fn. */
typedef enum {
    ROTEQ_MUON_ADJUST_ORIGINAL, /* lr * sqrt(max(1, rows/cols)) (Keller Jordan's; the default) */
    ROTEQ_MUON_ADJUST_MATCH_RMS_ADAMW, /* 0.2 * lr * sqrt(max(rows, cols)) (Moonlight) */
    ROTEQ_MUON_ADJUST_COUNT
} roteq_muon_adjust;

extern const char *const roteq_muon_adjust_names[ROTEQ_MUON_ADJUST_COUNT];

/* Newton-Schulz quintic coefficients (a, b, c) of torch.optim.Muon (Keller Jordan's). */
#define ROTEQ_MUON_NS_A 3.4445
#define ROTEQ_MUON_NS_B (-4.7750)
#define ROTEQ_MUON_NS_C 2.0315

typedef struct {
    double lr, weight_decay, momentum;
    int nesterov; /* 0 or 1 (default 1) */
    int ns_steps; /* Newton-Schulz iterations, 1..99 (default 5) */
    double eps;   /* the Frobenius norm is clamped to at least eps (default 1e-7) */
    roteq_muon_adjust adjust;
    size_t rows, cols;
} roteq_muon_hparams;

/* torch.optim.Muon's defaults: lr 1e-3, weight decay 0.1, momentum 0.95, Nesterov, 5 steps,
 * eps 1e-7, adjust "original"; shape 0x0 (must be given). */
roteq_muon_hparams roteq_muon_defaults(void);

/* ROTEQ_EINVAL with a message naming the field ("momentum must be in [0, 1), got 1.5") when a
 * hyperparameter is out of range; the shape must be at least 1x2 or 2x1 (a 1x1 matrix has no
 * direction to rotate in). */
int roteq_muon_validate(const roteq_muon_hparams *hp);

/* "ROWSxCOLS", two positive integers (roteq_parse_size's spelling), into *rows, *cols;
 * ROTEQ_EINVAL ("'6x' is not ROWSxCOLS with positive sizes") otherwise. The sizes' upper bounds
 * are roteq_muon_validate's. */
int roteq_muon_shape_parse(const char *s, size_t *rows, size_t *cols);

/* "original" / "match_rms_adamw"; ROTEQ_ENOTFOUND (message lists both) otherwise. */
int roteq_muon_adjust_parse(const char *name, roteq_muon_adjust *out);

/* The learning rate the orthogonalised update is applied with, for lr in force (schedules). */
double roteq_muon_adjusted_lr(const roteq_muon_hparams *hp, double lr);

/* The Newton-Schulz scalar map applied to one singular value t of the normalised input. */
double roteq_muon_ns_poly(double t, int ns_steps);

/* Spectral constants of the orthogonalised update for i.i.d. Gaussian input of the given shape
 * (Marchenko-Pastur spectrum pushed through the iteration; theory/README.md "Muon"):
 * q_row = E||o_row||^2 (1 for an exact orthogonalisation of a wide or square matrix),
 * lin   = E<O, X>/E||X||^2 * sqrt(E||X||^2/(rows*cols)), the per-entry linear coefficient of O on
 *         unit-variance input, so lin^2*cols/q_row is the linear share w1 of the update. */
void roteq_muon_spectrum(size_t rows, size_t cols, int ns_steps, double *q_row, double *lin);

/* Lag-correlation law of the orthogonalised update, the matrix analogue of Lion's arcsine law:
 * E<O(X), O(Y)>/E||O||^2 = sum_j w[j] rho^(2j+1) for Gaussian X, Y whose entries correlate with
 * rho, in the large-matrix limit (free Mehler formula; theory/README.md "Muon").
 * roteq_muon_chaos fills w[0..n) (the weights of degrees 1, 3, 5, ...; their sum tends to 1,
 * the rest lies beyond degree 2n-1); ROTEQ_ENOMEM if its workspace cannot be allocated. */
#define ROTEQ_MUON_CHAOS_TERMS 300
int roteq_muon_chaos(size_t rows, size_t cols, int ns_steps, double *w, int n);
double roteq_muon_lag_corr(double rho, const double *w, int n);

typedef enum {
    ROTEQ_MUON_PRED_BEST,
    ROTEQ_MUON_PRED_PLAIN,
    ROTEQ_MUON_PRED_LIONLIKE,
    ROTEQ_MUON_PRED_COUNT
} roteq_muon_prediction;

extern const char *const roteq_muon_prediction_names[ROTEQ_MUON_PRED_COUNT];

typedef struct {
    double norm;                  /* RMS row norm at equilibrium */
    double angular_update;        /* RMS angle between a row at t and t+1 */
    double matrix_norm;           /* RMS Frobenius norm of the matrix */
    double matrix_angular_update; /* RMS angle between vec(W_t) and vec(W_{t+1}) */
    double q_row;                 /* E||o_row||^2 used */
    int exact;
    const char *source;
} roteq_muon_equilibrium;

int roteq_muon_equilibrium_of(const roteq_muon_hparams *hp, roteq_muon_prediction which,
                              roteq_muon_equilibrium *out);

/* Transient: E||w_row||^2 and the RMS row angle at every step from a row norm init_norm and a
 * fresh buffer, under per-step lr and weight decay (schedules). The lag correlations are the
 * stationary ones (best's law), carried per chaos degree by a geometric filter, so the
 * momentum's warm-up over the first ~1/(1-momentum) steps is not modelled (README "Muon"). */
typedef struct roteq_muon_transient roteq_muon_transient;
roteq_muon_transient *roteq_muon_transient_alloc(const roteq_muon_hparams *hp, double init_norm);
void roteq_muon_transient_free(roteq_muon_transient *tr);
/* One step with the lr and weight decay in force; writes the RMS row norm after it and the
 * RMS row angle of the step. */
int roteq_muon_transient_step(roteq_muon_transient *tr, double lr, double weight_decay,
                              double *norm, double *angle);

/* Text for `roteq theory --list` (the family type's formula, families/muon.c). */
const char *roteq_muon_formula(void);
#define ROTEQ_MUON_FORMULA                                                                         \
    "best: row norm^2 = eta_adj^2 q S/(1-d^2), S = 1 + 2 sum_k f(rho_k) d^k, f(rho) = "            \
    "sum_k w_k rho^k the lag law of the orthogonalised momentum (free Mehler formula: "            \
    "w_k from the Newton-Schulz map in the polynomials orthogonal for the "                        \
    "Marchenko-Pastur singular values), radial part removed from the angle [approx.; "             \
    "derived here]; plain: row norm^2 = eta_adj^2 q/(2 eta lambda), "                              \
    "angle sqrt(2 eta lambda); lionlike: row norm^2 = eta_adj^2 lin^2 cols/(2 eta lambda "         \
    "K), angle eta_adj sqrt(q)/norm; q = E||o_row||^2 and lin from the Marchenko-Pastur "          \
    "spectrum through the Newton-Schulz quintic; eta_adj = adjusted lr"

#endif
