/* roteq_analysis.h - measure rotational equilibrium in training runs of other trainers.
 *
 * Two kinds of input feed one streaming accumulator:
 *   - a long CSV trace (docs/FORMATS.md §1), parsed from memory chunks by
 * roteq_analysis_csv_reader, and
 *   - a snapshot series (a directory of .safetensors files, HF checkpoint-N/ folders, or folders
 *     of one .npy per layer), from which per-neuron norms and the angles between consecutive
 *     snapshots are computed here.
 * The accumulator (roteq_analysis) keeps O(layers x neurons x window) state, never O(rows): a ring
 * of the last `window` records per neuron, a small decimated per-layer trajectory for the rate fit,
 * and the convergence trackers. roteq_analysis_finish() turns it into per-layer results that the
 * writers print as text, CSV or JSON. Predictions come from theory/ only; where theory has none,
 * the prediction is NAN and the verdict is "no prediction". Estimators and verdict rules:
 * analysis/README.md. */
#ifndef ROTEQ_ANALYSIS_H
#define ROTEQ_ANALYSIS_H

#include "roteq_muon.h"
#include "roteq_optimizer.h"
#include "roteq_theory.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* NAN as a double (C's NAN is a float, which -Wdouble-promotion flags in conditionals). */
#define DNAN ((double)NAN)

/* ---------------------------------------------------------------- run metadata (meta.c) */

/* Per-layer entry of the metadata: dimension and hyperparameter overrides (param groups). */
typedef struct {
    char *name;
    size_t dim;                       /* 0: unknown */
    roteq_hparams hp;                 /* values of the bits in `given` */
    unsigned given;                   /* ROTEQ_HP_BIT mask of overrides */
    double grad_norm;                 /* NAN: unknown */
    int has_neuron_axis, neuron_axis; /* "neuron_axis" (negative: from the end) */
    struct {
        char *name;
        size_t size;
    } * split; /* "split": named sub-layers of `size` neurons each, in order along the axis */
    size_t nsplit;
    /* Muon layers (a Muon run's, or "optimizer": "muon" in another run): the matrix shape
     * [rows, cols] ("shape"; 0 unknown) and the Muon hyperparameters given for this layer
     * (ROTEQ_MUON_GIVEN_* bits). other_optimizer: a Muon run's layer that names another
     * optimizer ("optimizer": "adamw", the fallback groups), measured without a prediction. */
    int is_muon;
    const roteq_optimizer_type *matrix_opt; /* the matrix optimizer of an is_muon layer */
    size_t rows, cols;
    roteq_muon_hparams muon_hp;
    unsigned muon_given;
    int other_optimizer;
} roteq_analysis_layer_meta;

/* Bits of the Muon hyperparameters given in the metadata (top level or per layer). */
enum {
    ROTEQ_MUON_GIVEN_LR = 1u << 0,
    ROTEQ_MUON_GIVEN_WD = 1u << 1,
    ROTEQ_MUON_GIVEN_MOMENTUM = 1u << 2,
    ROTEQ_MUON_GIVEN_NESTEROV = 1u << 3,
    ROTEQ_MUON_GIVEN_NS_STEPS = 1u << 4,
    ROTEQ_MUON_GIVEN_ADJUST = 1u << 5,
    ROTEQ_MUON_GIVEN_EPS = 1u << 6,
};

/* The run metadata after merging the JSON sidecar and the command line (the caller applies CLI
 * flags over what roteq_analysis_meta_load read: CLI wins over file, layer overrides included). */
typedef struct {
    const roteq_optimizer_type *opt; /* NULL: no optimizer known, measure without predictions */
    roteq_hparams hp;                /* top-level values of the bits in `given` */
    unsigned given;
    size_t dim;       /* default dimension for layers without one; 0 unknown */
    double grad_norm; /* NAN unknown */
    roteq_analysis_layer_meta *layers;
    size_t nlayers;
    char *path;      /* the file it came from (for messages), NULL if none */
    unsigned forced; /* ROTEQ_HP_BIT of lr / weight_decay given on the command line: these win
                        over a trace's lr / weight_decay columns too */
    /* "optimizer" naming a matrix optimizer (Muon: its family has matrix hooks, found by name in
     * the optimizer list; opt stays NULL): predictions come from that family's matrix hooks with
     * these top-level values (bits in muon_given) over its defaults (torch.optim.Muon's). */
    int muon;
    const roteq_optimizer_type *matrix_opt;
    roteq_muon_hparams muon_hp;
    unsigned muon_given;
} roteq_analysis_meta;

/* Empty metadata (no optimizer, nothing given). */
void roteq_analysis_meta_init(roteq_analysis_meta *m);
void roteq_analysis_meta_clear(roteq_analysis_meta *m);
/* Parse JSON text (`path` names it in messages). ROTEQ_EFORMAT "PATH: ..." on malformed JSON or
 * fields of the wrong type; ROTEQ_ENOTFOUND for an unknown optimizer; ROTEQ_EINVAL for an
 * unknown hyperparameter key or one that does not apply to the optimizer. */
int roteq_analysis_meta_parse(const char *path, const char *text, size_t len,
                              roteq_analysis_meta *out);
int roteq_analysis_meta_load(const char *path, roteq_analysis_meta *out);
/* The layer's entry or NULL. */
const roteq_analysis_layer_meta *roteq_analysis_meta_layer(const roteq_analysis_meta *m,
                                                           const char *name);

/* ---------------------------------------------------------------- accumulator (accum.c) */

/* The prediction a verdict is drawn against: AUTO takes the transient where lr or weight decay
 * vary along the run (and theory has one), else the closed-form equilibrium. */
typedef enum {
    ROTEQ_AGAINST_AUTO,
    ROTEQ_AGAINST_EQUILIBRIUM,
    ROTEQ_AGAINST_TRANSIENT,
} roteq_analysis_against;

typedef struct {
    const roteq_analysis_meta *meta; /* required; may hold no optimizer */
    const char *source;              /* trace file or directory, for messages */
    double tolerance;                /* relative band for "at equilibrium" (default 0.05) */
    size_t window;            /* records kept per neuron for the final window (default 200) */
    size_t smooth;            /* records in the trailing average of the convergence test (5) */
    int per_neuron;           /* keep per-neuron results */
    FILE *series;             /* NULL, or where to write the series CSV of docs/FORMATS.md §2 */
    const char *layers_regex; /* trace rows of other layers are skipped (POSIX extended); NULL all.
                                 Snapshots select tensors by roteq_snapshot_options instead. */
    roteq_analysis_against against; /* which prediction the verdict and settled step use */
    int explain;                    /* compute the explain decomposition (needs update columns) */
} roteq_analysis_config;

void roteq_analysis_config_init(roteq_analysis_config *cfg, const roteq_analysis_meta *meta);

typedef struct roteq_analysis roteq_analysis;

/* One (step, layer, neuron) observation. angle NAN: unknown or undefined; lr/wd NAN: not given
 * (the metadata's values apply). gap: optimizer steps the angle spans (1 for a trace; k for
 * snapshots k steps apart). */
typedef struct {
    long step;
    size_t neuron;
    double norm, angle, lr, weight_decay;
    long gap;
    /* Optional update statistics (docs/FORMATS.md §1), valid where the ROTEQ_ROW_* bit is set in
     * `has` (zero-initialised rows have none). With the step written as
     * w_{t+1} = (1 - lr*wd) w_t + lr d_t: grad_cos = cos(loss gradient, w_t); update_norm =
     * ||d_t||; update_radial = <d_t, w_t>/||w_t||; update_cos_prev = cos(d_t, d_{t-1}). */
    double grad_cos, update_norm, update_radial, update_cos_prev;
    unsigned has;
} roteq_analysis_row;

#define ROTEQ_ROW_GRAD_COS        1u
#define ROTEQ_ROW_UPDATE_NORM     2u
#define ROTEQ_ROW_UPDATE_RADIAL   4u
#define ROTEQ_ROW_UPDATE_COS_PREV 8u

roteq_analysis *roteq_analysis_alloc(const roteq_analysis_config *cfg);
void roteq_analysis_free(roteq_analysis *a);
/* Whether rows carry lr / weight decay (then they may stand in for missing metadata). Call
 * before the first layer is created (the CSV reader does so after the header). */
void roteq_analysis_set_columns(roteq_analysis *a, int has_lr, int has_wd);
/* Index of the layer called name[0..len), created on first sight with `dim` (0 unknown; a
 * snapshot knows it). Fails (ROTEQ_EINVAL) when the prediction needs a hyperparameter that
 * neither metadata, command line nor a trace column gives, or a known dim disagrees. */
int roteq_analysis_layer(roteq_analysis *a, const char *name, size_t len, size_t dim,
                         size_t *index);
/* Add one row. Rows of one layer come in non-decreasing step order; ROTEQ_EFORMAT (message
 * without location, the reader prefixes file and line) on steps going backwards, a duplicate
 * (step, layer, neuron), or more than ROTEQ_ANALYSIS_MAX_NEURONS distinct neurons in a layer.
 * Neuron indices may be sparse: state is kept for the neurons present only. */
int roteq_analysis_add(roteq_analysis *a, size_t layer, const roteq_analysis_row *row);
#define ROTEQ_ANALYSIS_MAX_NEURONS ((size_t)1 << 22)
/* Record the axis along which a layer's neurons were taken (reported; the snapshot reader sets
 * it, a trace's layers take their metadata's neuron_axis, else 0). */
void roteq_analysis_set_neuron_axis(roteq_analysis *a, size_t layer, int axis);

/* ---------------------------------------------------------------- results (finish.c) */

typedef enum {
    ROTEQ_ANALYSIS_NEURON_OK,
    ROTEQ_ANALYSIS_NEURON_DEAD, /* no defined, non-zero angle in the window: the unit does not move
                                 */
    ROTEQ_ANALYSIS_NEURON_COLLAPSED, /* norm reached 0, or below 1% of the layer's median */
} roteq_analysis_status;

extern const char *const roteq_analysis_status_names[3]; /* "ok", "dead", "collapsed" */

typedef struct {
    double norm, angular_update; /* window mean norm and RMS angle; NAN if none */
    double pred_norm, pred_angle;
    roteq_analysis_status status;
    size_t index; /* the neuron's index in the trace (row in a snapshot) */
} roteq_analysis_neuron;

typedef enum {
    ROTEQ_ANALYSIS_NO_PREDICTION,
    ROTEQ_ANALYSIS_AT_EQUILIBRIUM,
    ROTEQ_ANALYSIS_CONVERGING,
    ROTEQ_ANALYSIS_OFF_PREDICTION,
    ROTEQ_ANALYSIS_NOT_SCALE_INVARIANT,
    ROTEQ_ANALYSIS_NO_DATA,
} roteq_analysis_verdict;

extern const char *const roteq_analysis_verdict_names[6];

/* Why a layer's angular update differs from the random-walk prediction (`--explain`, from the
 * trace's update columns; analysis/README.md "Explain" defines every term). The parts are fractions
 * of the predicted angle and add up to `deviation`. */
typedef struct {
    int valid;                    /* the trace has update_norm and update_radial */
    double cond_norm, cond_angle; /* the equilibrium conditional on the measured update */
    double update_ratio;          /* RMS ||d|| / the model's */
    double radial_fraction;       /* E<w,d> / (||w|| RMS||d||): the update's mean cosine with w */
    double cos_prev;              /* mean cos(d_t, d_{t-1}); NAN without the column */
    double deviation;             /* measured / predicted angle - 1: the sum of the parts */
    double update_size, norm_response, radial, correlation, nonstationary, residual;
} roteq_analysis_explain;

typedef struct {
    char *name;
    size_t dim, neurons, dead, collapsed;
    size_t records;             /* recorded steps seen */
    long first_step, last_step; /* of the records */
    long window_start;          /* first step of the final window */
    size_t window_records;
    long gap;                /* steps each angle spans (1 for a trace), 0 when it varies */
    int scheduled;           /* lr or weight decay changed during the run */
    const char *prediction;  /* the one in use: "static", "transient", "instantaneous", "none" */
    double lr, weight_decay; /* in force at the last record (NAN unknown) */
    double pred_norm, pred_angle, norm, angular_update;
    double norm_se, angle_se;   /* standard errors, neurons as the independent samples */
    double rel_norm, rel_angle; /* measured / predicted - 1, NAN where no prediction */
    /* Both predictions over the final window: the closed-form equilibrium at the records' lr and
     * weight decay, and theory's transient through every step (NAN where theory has none). */
    double eq_norm, eq_angle, rel_eq_norm, rel_eq_angle;
    double tr_norm, tr_angle, rel_tr_norm, rel_tr_angle;
    long converged_at;        /* -1: never */
    double rate, pred_rate;   /* convergence rate per step of the mean square norm; NAN */
    double cv, q05, q50, q95; /* across ok neurons of their RMS angular update */
    roteq_analysis_verdict verdict;
    double ratio; /* measured / predicted of off_quantity (the angle where neither is off) */
    const char *off_quantity; /* "norm" or "angle": furthest from its prediction; NULL none */
    char detail[128];         /* what the verdict rests on: "norm +13.0%, angle -1.0%" */
    int angle_judged;         /* 0: k-step angles (snapshots), a consistency check only */
    char angle_source[192];   /* "per-step" (trace), "k-step", or rebuilt from optimizer state */
    double step_angle_pred;   /* predicted per-step angle (equilibrium); NAN none */
    double implied_corr;      /* k-step: angle^2 / (k x predicted per-step angle^2); NAN */
    int scale_invariant;      /* 1 yes, 0 no, -1 unknown */
    char evidence[96];        /* why: "grad_cos rms 2e-06 (random: 0.04)", "name: embedding" */
    double grad_cos_rms;      /* over the window's records; NAN without the column */
    roteq_analysis_explain explain;
    roteq_analysis_neuron *per_neuron; /* NULL unless config.per_neuron */
    int neuron_axis; /* the axis its neurons were taken along (a trace: the metadata's value) */
    /* Muon: the whole matrix over the final window. Measured Frobenius norm sqrt(sum of the
     * rows' norm^2) per record, averaged; RMS matrix angle from the rows' norms and angles where
     * every row was recorded one step after its previous record, else NAN (analysis/README.md
     * "Muon runs"); predictions from roteq_muon_equilibrium_of's best. */
    int has_matrix;
    size_t matrix_rows, matrix_cols;
    double matrix_norm, matrix_pred_norm, matrix_angle, matrix_pred_angle;
} roteq_analysis_layer_result;

typedef struct {
    roteq_analysis_layer_result *layers;
    size_t nlayers;
    double balance;      /* max/min of the measured angular update over the layers not
                            classified as non-scale-invariant; NAN if none */
    double balance_pred; /* the same for the predictions */
    double balance_all;  /* over every layer */
    double balance_all_pred;
    size_t balance_layers; /* layers in `balance` */
    const char *optimizer; /* NULL if none */
    double tolerance;
    size_t window;
    int explain; /* the explain decomposition was asked for */
} roteq_analysis_result;

/* Close every open record and compute the results (the accumulator stays allocated). */
int roteq_analysis_finish(roteq_analysis *a, roteq_analysis_result **out);
void roteq_analysis_result_free(roteq_analysis_result *r);

/* ---------------------------------------------------------------- output (report.c) */

int roteq_analysis_write_text(FILE *out, const roteq_analysis_result *r);
int roteq_analysis_write_csv(FILE *out, const roteq_analysis_result *r);
/* docs/FORMATS.md §3 (needs config.per_neuron). */
int roteq_analysis_write_per_neuron_csv(FILE *out, const roteq_analysis_result *r);
int roteq_analysis_write_json(FILE *out, const roteq_analysis_result *r);

/* ---------------------------------------------------------------- CSV trace (csv.c) */

/* A streaming parser of the trace CSV that can be fed from memory in arbitrary chunks (the file
 * reader and the fuzz target use the same code). When the header has been parsed the reader
 * tells the sink which optional columns exist (roteq_analysis_set_columns). Errors name `name`
 * and the line. */
typedef struct roteq_analysis_csv_reader roteq_analysis_csv_reader;

roteq_analysis_csv_reader *roteq_analysis_csv_reader_alloc(const char *name, roteq_analysis *sink);
void roteq_analysis_csv_reader_free(roteq_analysis_csv_reader *r);
/* Feed bytes; complete lines are parsed, a partial last line is kept for the next call. */
int roteq_analysis_csv_reader_feed(roteq_analysis_csv_reader *r, const char *buf, size_t n);
/* End of input: parse a last line without newline; fail if the header never came or no data
 * row followed it. */
int roteq_analysis_csv_reader_finish(roteq_analysis_csv_reader *r);

/* Read a whole trace file ("-" for stdin) into an accumulator made from `cfg`. On success the
 * caller owns *out. */
int roteq_analysis_read_csv(const char *path, const roteq_analysis_config *cfg,
                            roteq_analysis **out);

/* ---------------------------------------------------------------- tensors (safetensors.c, npy.c)
 */

typedef enum {
    ROTEQ_DT_F64,
    ROTEQ_DT_F32,
    ROTEQ_DT_F16,
    ROTEQ_DT_BF16,
    ROTEQ_DT_OTHER
} roteq_dtype;

#define ROTEQ_TENSOR_MAX_RANK 8

typedef struct {
    char *name;
    roteq_dtype dtype;
    size_t rank;
    uint64_t shape[ROTEQ_TENSOR_MAX_RANK];
    uint64_t offset, nbytes; /* of the data, from the start of the file */
    int fortran_order;       /* npy only: column-major data */
    char dtype_name[32];     /* as the file spells it ("I8", "<i4"), for messages; may be "" */
} roteq_analysis_tensor_info;

/* Bytes per element of a float dtype roteq reads; 0 for ROTEQ_DT_OTHER. */
size_t roteq_analysis_dtype_size(roteq_dtype dt);
/* The dtype as the file spells it, else roteq's name for it ("F32", ..., "non-float"). */
const char *roteq_analysis_dtype_name(const roteq_analysis_tensor_info *t);

/* Parse a safetensors file image (the first `n` bytes of a file of `file_size` bytes: the header
 * parser needs only 8 + header length bytes). Tensors of every dtype are listed (dtype OTHER for
 * integer/bool/F8 ones, which are not weights). ROTEQ_EFORMAT naming `name` and the tensor on a
 * truncated or oversized header, malformed JSON, a shape/dtype that disagrees with data_offsets,
 * or offsets outside the file. *out is a malloc'd array (free with
 * roteq_analysis_tensor_infos_free). */
int roteq_analysis_safetensors_parse(const char *name, const unsigned char *data, size_t n,
                                     uint64_t file_size, roteq_analysis_tensor_info **out,
                                     size_t *count);
#define ROTEQ_SAFETENSORS_MAX_HEADER ((uint64_t)100 << 20)
void roteq_analysis_tensor_infos_free(roteq_analysis_tensor_info *t, size_t n);

/* Parse an .npy image (version 1, 2 or 3; '<f8' '<f4' '<f2', '|'/'=' on little-endian hosts).
 * The tensor's name is left NULL. ROTEQ_EFORMAT naming `name` on a bad magic, a truncated header,
 * an unsupported dtype, or a data size that disagrees with the shape. */
int roteq_analysis_npy_parse(const char *name, const unsigned char *data, size_t n,
                             uint64_t file_size, roteq_analysis_tensor_info *out);

/* ---------------------------------------------------------------- neuron axis (axis.c) */

/* Which axis of a weight indexes its neurons: the neuron is the slice at one index of that axis,
 * every other axis flattened (in C order). PyTorch's Linear [out, in] and Conv [out, in, kh, kw]
 * have it at 0; Flax kernels [in, out] / [kh, kw, in, out] and HF's GPT-2 Conv1D [in, out] at -1.
 * Negative values count from the end. */
typedef struct {
    const char *regex; /* POSIX extended, unanchored, matched against the tensor's name */
    int axis;
} roteq_analysis_axis_rule;

/* The float64 image of a tensor with neurons as rows: out[r * cols + j] is element j of neuron r,
 * where rows = shape[axis] and j runs over the other axes in C order. `axis` must lie in
 * [-rank, rank). Works for every dtype of roteq_dtype but OTHER, C or Fortran order. */
void roteq_analysis_tensor_rows(const roteq_analysis_tensor_info *t, const void *data, int axis,
                                double *out);
/* Conventions applied where the layout is unambiguous (roteq_analysis_axis_for's `conventions`):
 * a name ending in `kernel` is a Flax/orbax kernel; `c_attn`/`c_proj`/`c_fc`/`q_attn` weights are
 * HF Conv1D when config.json says the model is GPT-2-type. Both put neurons on the last axis. */
enum { ROTEQ_AXIS_FLAX = 1u << 0, ROTEQ_AXIS_GPT2 = 1u << 1 };

/* The neuron axis (0 <= *axis < rank) of tensor `name`: the first of `rules` whose regex matches,
 * else the layer's "neuron_axis" in `meta`, else a convention of `conventions`, else 0. *source
 * (may be NULL) names where a non-default axis came from (NULL for the default). ROTEQ_EINVAL
 * naming the tensor when the axis lies outside its rank, or for an invalid regex. */
int roteq_analysis_axis_for(const char *name, size_t rank, const roteq_analysis_axis_rule *rules,
                            size_t nrules, const roteq_analysis_meta *meta, unsigned conventions,
                            int *axis, const char **source);

/* ---------------------------------------------------------------- snapshots (snapshots.c) */

typedef struct {
    const char *layers_regex; /* NULL: every tensor of rank >= 2 */
    /* NULL: an entry's step is its integer labelled step/global_step/checkpoint/iter, else its
     * only integer (several unlabelled integers are an error). Else a POSIX extended regular
     * expression whose first group (or whole match) is the step; entries it does not match are
     * skipped if folders, an error if .safetensors files. */
    const char *step_regex;
    FILE *notes; /* NULL, or where a one-line note on skipped non-float tensors goes */
    /* Called after each snapshot is opened, before its tensors are read (progress; tests
     * rewrite files here); NULL: none. */
    void (*opened)(void *ctx, const char *entry);
    void *ctx;
    const char *exclude_regex; /* entries of the directory whose name matches are dropped */
    const char *model_key;     /* torch.save files: key of the model state dict (--key); NULL: the
                                  file's top level, else "model", "state_dict", "model_state_dict" */
    const roteq_analysis_axis_rule *axes; /* --neuron-axis rules (before the metadata's) */
    size_t naxes;
    /* Called with each .safetensors/.npy file's path after it is mapped, before its header is
     * read (tests shrink the file here); NULL: none. Gets `ctx` too. */
    void (*mapped)(void *ctx, const char *path);
} roteq_snapshot_options;

/* Analyse a directory of snapshots into an accumulator made from `cfg`. Errors name the
 * snapshot file and tensor: ROTEQ_EFORMAT for malformed or inconsistent snapshots (a layer whose
 * dtype becomes a non-float one), ROTEQ_EIO for a file that cannot be read or that changes
 * (shrinks, grows, is rewritten) while it is read. */
int roteq_analysis_read_snapshots(const char *dir, const roteq_snapshot_options *opt,
                                  const roteq_analysis_config *cfg, roteq_analysis **out);

/* Per-row norms and angles between two row-major (or strided) tensors of the same shape, in
 * float64 with 2*atan2(|a^ - b^|, |a^ + b^|) (exact to rounding at every angle). `norm_a` may
 * carry norms already known (NULL: computed). Writes rows norms of b and angles (NAN when a row
 * of a or b is zero). */
void roteq_analysis_rows_angles(const roteq_analysis_tensor_info *ta, const void *a,
                                const roteq_analysis_tensor_info *tb, const void *b, size_t rows,
                                size_t cols, const double *norm_a, double *norm_b, double *angle);
void roteq_analysis_rows_norms(const roteq_analysis_tensor_info *t, const void *data, size_t rows,
                               size_t cols, double *norm);

/* ---------------------------------------------------------------- optimizer state (optstate.c) */

/* The optimizer state of one checkpoint, mapped onto the layers, for reconstructing the last
 * update (AdamW: u = -lr * (m^ / (sqrt(v^) + eps) + wd * w), m^ = exp_avg / (1 - beta1^step),
 * v^ = exp_avg_sq / (1 - beta2^step); SGD with momentum: the momentum buffer is the last update's
 * direction). Sources (roteq_analysis_optstate_read):
 *   - a training-script torch.save dict: {"model"|"state_dict"|"model_state_dict": weights,
 *     "optimizer"|"optimizer_state_dict"|"optim": optimizer.state_dict(), ...};
 *   - an HF checkpoint-N/ folder: optimizer.pt beside model.safetensors or pytorch_model.bin;
 *   - a recorder snapshot (.safetensors) holding tensors `optimizer/<param>/<state_key>` and the
 *     `__metadata__` key `roteq.optimizer` (docs/FORMATS.md).
 * PyTorch's state_dict numbers parameters instead of naming them; they are mapped by the model's
 * parameter order (each param group's ids in model order), validated by the shape of every state
 * tensor; when more than one assignment fits, reading fails (ROTEQ_EFORMAT, one line) rather than
 * guessing. Names are used when stored (the recorder, torch >= 2.5's `param_names`). */

/* Bits of roteq_analysis_optstate_layer.known: which fields hold values. */
enum {
    ROTEQ_OPTSTATE_STEP = 1u << 0,
    ROTEQ_OPTSTATE_LR = 1u << 1, /* lr: see ROTEQ_OPTSTATE_LR_APPLIED */
    ROTEQ_OPTSTATE_LR_APPLIED = 1u
                                << 2, /* lr is the one the last step applied (the recorder's
                                         lr_applied); without this bit it is the group's lr as
                                         saved, which a scheduler may have moved after the step */
    ROTEQ_OPTSTATE_BETAS = 1u << 3,   /* beta1 and beta2 (Adam family) */
    ROTEQ_OPTSTATE_EPS = 1u << 4,
    ROTEQ_OPTSTATE_WEIGHT_DECAY = 1u << 5,
    ROTEQ_OPTSTATE_MOMENTUM = 1u << 6, /* SGD */
    ROTEQ_OPTSTATE_DAMPENING = 1u << 7,
    ROTEQ_OPTSTATE_NESTEROV = 1u << 8,
};

typedef struct {
    char *name;     /* the parameter's name in the weights, e.g. "fc1.weight" */
    size_t group;   /* param-group index */
    unsigned known; /* ROTEQ_OPTSTATE_* bits */
    long step;      /* optimizer steps applied to this parameter ('step' of its state) */
    double lr, beta1, beta2, eps, weight_decay, momentum, dampening;
    int nesterov;
    /* Layout: the weight's shape as stored, its neuron axis (>= 0) and the rows x cols image every
     * array below uses (roteq_analysis_tensor_rows: row r = neuron r, the layout the snapshot
     * reader measures). */
    size_t rank;
    uint64_t shape[ROTEQ_TENSOR_MAX_RANK];
    int neuron_axis;
    size_t rows, cols;
    double *weight;          /* the weight at this checkpoint; NULL when the source holds none */
    double *exp_avg;         /* Adam family's first moment; NULL when absent */
    double *exp_avg_sq;      /* second moment; NULL when absent */
    double *momentum_buffer; /* SGD's momentum buffer; NULL when absent */
    double *max_exp_avg_sq;  /* amsgrad's running maximum of exp_avg_sq; NULL when absent */
} roteq_analysis_optstate_layer;

typedef struct {
    char *source;        /* the file the state was read from */
    char *optimizer;     /* class name ("AdamW", "SGD", ...) when the source stores it (the recorder
                            does; torch's state_dict does not), else NULL */
    const char *mapping; /* "names" or "order": how parameters were matched to weights */
    roteq_analysis_optstate_layer *layers; /* layers (float weights of rank >= 2) with state,
                                              sorted by name */
    size_t nlayers;
} roteq_analysis_optstate;

typedef struct {
    const char *model_key;    /* key of the weights in a training-script dict (--key); NULL tries
                                 model, state_dict, model_state_dict */
    const char *layers_regex; /* only these layers (NULL all) */
    const roteq_analysis_axis_rule *axes; /* neuron-axis rules, first match wins; NULL none */
    size_t naxes;
    const roteq_analysis_meta *meta; /* per-layer "neuron_axis" (NULL none) */
    unsigned conventions;            /* ROTEQ_AXIS_* applied */
} roteq_analysis_optstate_options;

/* Read the optimizer state of the checkpoint at `path` (a .pt/.pth/.bin file, a checkpoint
 * folder, or a .safetensors snapshot). ROTEQ_ENOTFOUND when it holds no optimizer state;
 * ROTEQ_EFORMAT naming the file and the parameter or tensor on malformed state, a shape that
 * disagrees with its weight, or an ambiguous mapping. *out is freed with _free. */
int roteq_analysis_optstate_read(const char *path, const roteq_analysis_optstate_options *opt,
                                 roteq_analysis_optstate **out);
void roteq_analysis_optstate_free(roteq_analysis_optstate *s);
/* ---------------------------------------------------------------- last step (laststep.c) */

/* The optimizer state of the checkpoint at `path`, or *out NULL when it holds none; state that
 * cannot be read or mapped leaves *out NULL with the reason in why[cap] (the weights still give
 * k-step angles). Fails only when out of memory. */
int roteq_analysis_checkpoint_state(const char *path, const roteq_analysis_meta *meta,
                                    roteq_analysis_optstate **out, char *why, size_t cap);
/* Per-neuron angle of the last update of accumulator layer `layer` at a checkpoint, rebuilt from
 * the optimizer state `os` (NULL: none) and the weight (tensor `t` at `data`, rows x cols with
 * the neurons as rows). Returns 1 with angle[rows] written, 0 when the state does not cover the
 * layer (or its weight is in another layout) or lacks
 * what the update rule needs, ROTEQ_ENOMEM. */
int roteq_analysis_state_angles(roteq_analysis *a, const roteq_analysis_optstate *os, size_t layer,
                                const roteq_analysis_tensor_info *t, const void *data, size_t rows,
                                size_t cols, double *angle);

/* The layer called `name`, or NULL. */
const roteq_analysis_optstate_layer *roteq_analysis_optstate_find(const roteq_analysis_optstate *s,
                                                                  const char *name);

#endif
