/* analysis_internal.h - the accumulator's state, shared by accum.c (streaming rows in) and
 * finish.c (results out). Not installed, not included outside analysis/. */
#ifndef ROTEQ_ANALYSIS_INTERNAL_H
#define ROTEQ_ANALYSIS_INTERNAL_H

#include "roteq_analysis.h"
#include "roteq_theory.h"

#include <regex.h>

/* Layer-level statistics of one recorded step, with the predictions in force then. */
typedef struct {
    long step, gap;
    double lr, wd;
    size_t n;         /* neurons with a row and a non-zero norm */
    size_t na;        /* of those, with a defined non-zero angle */
    double mean_norm; /* over the n */
    double msq_norm;  /* mean of ||w||^2 */
    double ms_angle;  /* mean of angle^2 over defined angles */
    double m4_angle;  /* mean of angle^4 (the across-neuron spread of angle^2) */
    /* mean grad_cos^2 over the ngc rows that have it */
    size_t ngc;
    double grad_cos2;
    double ps_norm, ps_angle; /* static (instantaneous) equilibrium at this record's lr, wd, gap */
    double m_angle; /* Muon: angle between vec(W) at the previous record and at this one, from
                       the rows' norms and angles; NAN unless every row had its previous value */
    double pt_norm, pt_angle; /* transient (falls back to the static values) */
} roteq_rec;

/* A point of the decimated trajectory kept for the convergence-rate fit. */
typedef struct {
    long step;
    double msq, pt_msq;
} roteq_traj_point;

#define ROTEQ_TRAJ_CAP 2048

/* Settled-step tracker (settle.c), one per prediction. For the norm and the angle, the records
 * whose excess x = |trailing measured/predicted - 1| - 3 SE is larger than every later record's
 * (suffix maxima of the level floor(log1p(x/1e-3)/0.01), so at most ~3000 of them): the settled
 * step for any band b, known only at the end, is the record after the latest one with x > b. */
typedef struct {
    long step, next; /* the record, and the next record's step (-1: none yet) */
    double y;        /* level of the excess */
} roteq_exceed;

typedef struct {
    roteq_exceed *e;
    size_t n, cap;
    int any, lost; /* some record had an estimate; an allocation failed (settled unknown) */
    long first;    /* step of the first record with an estimate */
} roteq_exceed_stack;

typedef struct {
    roteq_exceed_stack q[2]; /* norm, angle */
} roteq_tracker;

/* Record-to-record noise of the layer-level values (settle.c): exponential means of half the
 * squared successive differences of the mean norm and the mean square angle. */
typedef struct {
    size_t n;
    double prev_norm, prev_ms, v_norm, v_ms;
    /* The trailing length and block standard errors, recomputed every 16 records (they follow
     * the noise level, which changes slowly; every record cost 4x the ingest time). */
    size_t s_len, s_at;
    double s_bse_n, s_bse_ms;
} roteq_noise;

/* Channels of roteq_layer.ring_upd. */
enum { ROTEQ_UPD_D2, ROTEQ_UPD_RADIAL, ROTEQ_UPD_COS_PREV, ROTEQ_UPD_CH };

typedef struct {
    char *name;
    size_t name_len;
    int skip; /* not selected by layers_regex: rows are ignored */
    size_t dim;
    int neuron_axis;
    double grad_norm;
    roteq_hparams hp;       /* resolved; lr / weight_decay may be NAN when a column supplies them */
    int muon;               /* a Muon run's layer with a prediction (not a fallback group) */
    roteq_muon_hparams mhp; /* resolved; rows 0 until the first record counts the neurons */
    const roteq_matrix_hooks *mx; /* its family's matrix hooks (muon layers) */

    size_t nneur, cap;              /* neurons seen (slots in use), slots allocated */
    double *ring_norm, *ring_angle; /* [cap][ring_w], by slot: record r at r % window */
    /* --explain only (else NULL): [cap][ROTEQ_UPD_CH][ring_w], the rows' ||d||^2, update_radial
     * and update_cos_prev by slot, so that the explanation is taken over the final window's live
     * neurons, as the measured angle is */
    double *ring_upd;
    size_t ring_w;   /* records per neuron allocated: grows with the records
                        up to the window (a short run does not pay for it) */
    long *last_step; /* per slot: step of its last row, -1 none */
    size_t *ids;     /* per slot: the neuron index (index.c) */
    uint32_t *nhash; /* neuron index -> slot + 1, 0 empty (index.c) */
    size_t nhash_cap;

    int open;
    long cur_step;
    size_t records; /* closed records */
    size_t slot;    /* ring slot of the open record */
    /* sums of the open record */
    size_t r_n, r_na;
    double r_sum_norm, r_sum_sq, r_sum_a2, r_sum_a4, r_lr, r_wd;
    long r_gap;
    size_t r_ngc;
    size_t r_m_rows; /* Muon: rows with their norm at the previous record (gap steps before) */
    double r_m_dot, r_m_p2, r_m_c2; /* sum of prev*norm*cos(angle), prev^2, norm^2 over them */
    double r_grad_cos2;

    roteq_rec *recs; /* [window] ring of closed records, allocated as records come */
    size_t recs_cap;

    /* cached static prediction */
    double c_lr, c_wd;
    long c_gap;
    double c_pn, c_pa;

    roteq_transient *tr;
    int tr_state; /* 0 not started, 1 running, -1 unavailable */
    long tr_step;
    double tr_norm, tr_angle;

    double lr_min, lr_max, wd_min, wd_max;
    long gap_first;
    int gap_varies;

    roteq_tracker conv_static, conv_tr;
    roteq_noise noise;
    unsigned step_src; /* ROTEQ_STEP_*: per-step angles rebuilt from optimizer state */

    roteq_traj_point *traj;
    size_t ntraj, traj_cap, stride;
} roteq_layer;

struct roteq_analysis {
    roteq_analysis_config cfg;
    regex_t re;
    int have_re;
    int has_lr, has_wd;
    roteq_layer *layers;
    size_t nlayers, cap;
    size_t *lhash; /* layer name -> index + 1, 0 empty (index.c) */
    size_t lhash_cap;
    size_t last_layer; /* cache for consecutive rows of one layer */
    double *scratch;   /* quantiles of the series */
    size_t scratch_cap;
};

/* Static equilibrium at (lr, wd, gap): NAN where theory has none. */
void roteq_analysis_layer_static_prediction(const roteq_analysis *a, const roteq_layer *L,
                                            double lr, double wd, long gap, double *norm,
                                            double *angle);
/* Close the open record of layer L (no-op if none is open). */
int roteq_analysis_layer_close_record(roteq_analysis *a, roteq_layer *L);
/* Room for `need` neuron slots in L's per-neuron state. */
int roteq_analysis_layer_grow(roteq_analysis *a, roteq_layer *L, size_t need);

/* index.c: 1 and *index if a layer of that name exists, else 0. */
int roteq_analysis_index_find_layer(const roteq_analysis *a, const char *name, size_t len,
                                    size_t *index);
/* Enter layers[index] (its name set) into the table. */
int roteq_analysis_index_add_layer(roteq_analysis *a, size_t index);
/* The slot of a neuron index in L, made on first sight. */
int roteq_analysis_index_neuron(roteq_analysis *a, roteq_layer *L, size_t neuron, size_t *slot);
/* Put L's slots in neuron-index order (results list neurons by index). */
int roteq_analysis_layer_sort_neurons(roteq_analysis *a, roteq_layer *L);

/* Bits of roteq_layer.step_src (laststep.c). */
enum {
    ROTEQ_STEP_EXACT = 1u << 0,    /* some per-step angles rebuilt exactly */
    ROTEQ_STEP_APPROX = 1u << 1,   /* some rebuilt approximately */
    ROTEQ_STEP_NESTEROV = 1u << 2, /* ... for Nesterov momentum (last gradient not stored) */
    ROTEQ_STEP_LION = 1u << 3,     /* ... for Lion (previous momentum not stored) */
    ROTEQ_STEP_LR_SAVED = 1u << 4, /* with the group lr as saved, not the last step's */
};

/* settle.c: add one row's update statistics to the open record, and finish the record's sums. */
void roteq_analysis_record_row_updates(roteq_layer *L, const roteq_analysis_row *row);
void roteq_analysis_record_close_updates(const roteq_layer *L, roteq_rec *r);
/* settle.c: after a record closed, advance the noise estimate and both settled-step trackers. */
void roteq_analysis_layer_track(const roteq_analysis *a, roteq_layer *L);
void roteq_analysis_tracker_free(roteq_tracker *t);
/* The settled step for bands (relative, beyond 3 trailing SE) on the norm and the angle; a
 * quantity is ignored when `use_*` is 0 or it never had an estimate. -1: never. */
long roteq_analysis_settled(const roteq_tracker *t, double band_norm, double band_angle,
                            int use_norm, int use_angle);

/* finish.c / verdict.c / explain.c: internals of roteq_analysis_finish. */
double roteq_analysis_quantile_sorted(const double *x, size_t n, double q);
void roteq_analysis_verdict_decide(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                                   int transient, size_t nok, roteq_analysis_layer_result *R);
void roteq_analysis_classify(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                             roteq_analysis_layer_result *R);
void roteq_analysis_explain_layer(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                                  const roteq_analysis_status *status,
                                  roteq_analysis_layer_result *R);

/* Residual variance (n - 2 degrees of freedom) of the least-squares line through y[0..n-1]
 * against 0..n-1: the noise of block means once a linear trend is taken out (n >= 3). */
static inline double roteq_analysis_detrended_var(const double *y, size_t n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, k = (double)n;
    for (size_t b = 0; b < n; b++) {
        double x = (double)b;
        sx += x, sy += y[b], sxx += x * x, sxy += x * y[b];
    }
    double slope = (k * sxy - sx * sy) / (k * sxx - sx * sx), icpt = (sy - slope * sx) / k;
    double rss = 0;
    for (size_t b = 0; b < n; b++) {
        double d = y[b] - icpt - slope * (double)b;
        rss += d * d;
    }
    return rss / (k - 2);
}

#endif
