/* laststep.c - the per-step angle at a checkpoint that carries the optimizer state.
 *
 * Snapshots k steps apart give k-step angles, which depend on how the k updates correlate and so
 * cannot be judged against the random-walk prediction. A checkpoint that also holds the
 * optimizer's state (optstate.c reads it from torch.save dicts, HF checkpoint folders and the
 * recorder's snapshots) determines the last update, so w_{t-1} can be rebuilt and the angle of the
 * single step t measured, as a trace would have recorded it:
 *   AdamW:  w_t = (1 - lr*wd) w_{t-1} - lr m^/(sqrt(v^) + eps), so
 *           w_{t-1} = (w_t + lr m^/(sqrt(v^) + eps)) / (1 - lr*wd)            (exact)
 *   Adam with L2 (decay inside the gradient, hence inside m and v):
 *           w_{t-1} = w_t + lr m^/(sqrt(v^) + eps)                           (exact)
 *   SGD, heavy ball (the buffer is the update, decay and dampening included):
 *           w_{t-1} = w_t + lr buf                                           (exact)
 *   SGD, Nesterov: the update g + momentum*buf needs the last gradient, which is not stored;
 *           taken as buf (equal for a gradient at its running mean)          (approximate)
 *   Lion (exp_avg only): the update sign(beta1 m_{t-1} + (1-beta1) g) needs m_{t-1} and g;
 *           taken as sign(m_t), decay decoupled                              (approximate)
 *   Muon (a matrix layer; momentum_buffer): W_t = (1 - lr*wd) W_{t-1} - lr_adj NS(update) with
 *           update = buf (heavy ball), so
 *           W_{t-1} = (W_t + lr_adj NS(buf)) / (1 - lr*wd)                    (exact)
 *           Nesterov's update lerp(g, buf, momentum) needs the last gradient: taken as buf
 *                                                                             (approximate)
 *           with NS torch.optim.Muon's Newton-Schulz iteration and lr_adj its adjusted lr, at
 *           the layer's ns_steps, eps and adjust_lr (theory/README.md "Muon").
 * with m^ = exp_avg/(1 - beta1^t), v^ = exp_avg_sq/(1 - beta2^t) (torch's bias corrections, t the
 * state's step; with amsgrad the state's max_exp_avg_sq, the running maximum the step divided
 * by, takes exp_avg_sq's place). The lr must be the one the last step applied: the recorder stores
 * it (lr_applied); a torch state_dict stores the group's lr after any scheduler step, which is the
 * next step's, so with a moving schedule the angle is off by that lr ratio: such layers are
 * marked "lr as saved". */
#include "analysis_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int roteq_analysis_checkpoint_state(const char *path, const roteq_analysis_meta *meta,
                                    roteq_analysis_optstate **out, char *why, size_t cap)
{
    roteq_analysis_optstate_options o;
    memset(&o, 0, sizeof o);
    o.meta = meta;
    *out = NULL;
    int st = roteq_analysis_optstate_read(path, &o, out);
    if (st == ROTEQ_OK || st == ROTEQ_ENOTFOUND) {
        if (st)
            *out = NULL;
        return ROTEQ_OK;
    }
    if (st == ROTEQ_ENOMEM)
        return st;
    /* Unreadable or ambiguous state: the weights still give k-step angles. */
    snprintf(why, cap, "%s", roteq_error_message());
    *out = NULL;
    return ROTEQ_OK;
}

typedef enum {
    KIND_NONE,
    KIND_ADAMW,
    KIND_ADAM_L2,
    KIND_SGD,
    KIND_NESTEROV,
    KIND_LION,
    KIND_MUON,
    KIND_MUON_NESTEROV
} kind;

/* Which update rule the state belongs to: the stored class name, else the metadata's optimizer,
 * else what the state holds. */
static kind rule_of(const roteq_analysis_optstate_layer *s, const char *cls,
                    const roteq_optimizer_type *opt)
{
    if (s->exp_avg && s->exp_avg_sq) {
        if (cls)
            return strcasecmp(cls, "AdamW") == 0 ? KIND_ADAMW : KIND_ADAM_L2;
        if (opt == &roteq_adam_l2)
            return KIND_ADAM_L2;
        return KIND_ADAMW;
    }
    if (s->momentum_buffer)
        return (s->known & ROTEQ_OPTSTATE_NESTEROV) && s->nesterov ? KIND_NESTEROV : KIND_SGD;
    if (s->exp_avg)
        return KIND_LION;
    return KIND_NONE;
}

static double sign(double x)
{
    return (x > 0) - (x < 0);
}

/* Rebuild w_{t-1} into prev (rows x cols) from w (the checkpoint's weight). Returns the rule used
 * or KIND_NONE when the state or a hyperparameter it needs is missing. */
static kind rebuild(const roteq_analysis_optstate_layer *s, const char *cls,
                    const roteq_analysis_meta *meta, const double *w, double *prev)
{
    kind k = rule_of(s, cls, meta->opt);
    double lr = (s->known & ROTEQ_OPTSTATE_LR) ? s->lr : meta->hp.lr;
    double wd = (s->known & ROTEQ_OPTSTATE_WEIGHT_DECAY) ? s->weight_decay : meta->hp.weight_decay;
    size_t n = s->rows * s->cols;
    if (k == KIND_NONE || !(lr > 0) || !(wd >= 0) || !(lr * wd < 1))
        return KIND_NONE;
    if (k == KIND_ADAMW || k == KIND_ADAM_L2) {
        if (!(s->known & ROTEQ_OPTSTATE_STEP) || !(s->known & ROTEQ_OPTSTATE_BETAS) ||
            !(s->known & ROTEQ_OPTSTATE_EPS) || s->step < 1)
            return KIND_NONE;
        double bc1 = 1 - pow(s->beta1, (double)s->step), bc2 = 1 - pow(s->beta2, (double)s->step);
        double step_size = lr / bc1, sq = sqrt(bc2), keep = k == KIND_ADAMW ? 1 - lr * wd : 1.0;
        const double *v = s->max_exp_avg_sq ? s->max_exp_avg_sq : s->exp_avg_sq;
        for (size_t i = 0; i < n; i++)
            prev[i] = (w[i] + step_size * s->exp_avg[i] / (sqrt(v[i]) / sq + s->eps)) / keep;
    } else if (k == KIND_SGD || k == KIND_NESTEROV) {
        for (size_t i = 0; i < n; i++)
            prev[i] = w[i] + lr * s->momentum_buffer[i];
    } else {
        for (size_t i = 0; i < n; i++)
            prev[i] = (w[i] + lr * sign(s->exp_avg[i])) / (1 - lr * wd);
    }
    return k;
}

/* O = NS(U) for the r x c matrix U, as torch.optim.Muon orthogonalises: U/max(||U||_F, eps),
 * transposed when r > c, then `steps` quintic iterations X <- a X + (b A + c A^2) X with
 * A = X X^T. Plain loops: analysis does not link the simulator's BLAS engine, and this runs once
 * per layer and checkpoint. */
static int newton_schulz(const double *U, double *O, size_t r, size_t c, int steps, double eps)
{
    int tr = r > c;
    size_t p = tr ? c : r, q = tr ? r : c;
    double *mem = malloc((2 * p * q + 2 * p * p) * sizeof *mem), *X = mem;
    if (mem == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    double *Y = X + p * q, *A = Y + p * q, *B = A + p * p, ss = 0;
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++) {
            X[tr ? j * r + i : i * c + j] = U[i * c + j];
            ss += U[i * c + j] * U[i * c + j];
        }
    double norm = fmax(sqrt(ss), eps);
    for (size_t i = 0; i < p * q; i++)
        X[i] /= norm;
    for (int k = 0; k < steps; k++) {
        for (size_t i = 0; i < p; i++)
            for (size_t j = 0; j <= i; j++) {
                double d = 0;
                for (size_t l = 0; l < q; l++)
                    d += X[i * q + l] * X[j * q + l];
                A[i * p + j] = A[j * p + i] = d;
            }
        for (size_t i = 0; i < p; i++)
            for (size_t j = 0; j < p; j++) {
                double d = 0;
                for (size_t l = 0; l < p; l++)
                    d += A[i * p + l] * A[l * p + j];
                B[i * p + j] = ROTEQ_MUON_NS_B * A[i * p + j] + ROTEQ_MUON_NS_C * d;
            }
        for (size_t i = 0; i < p; i++) {
            for (size_t j = 0; j < q; j++)
                Y[i * q + j] = ROTEQ_MUON_NS_A * X[i * q + j];
            for (size_t l = 0; l < p; l++)
                for (size_t j = 0; j < q; j++)
                    Y[i * q + j] += B[i * p + l] * X[l * q + j];
        }
        double *t = X;
        X = Y, Y = t;
    }
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++)
            O[i * c + j] = X[tr ? j * r + i : i * c + j];
    free(mem);
    return ROTEQ_OK;
}

/* Rebuild W_{t-1} of a Muon layer (L->mhp: its resolved ns_steps, eps, adjust_lr) from its
 * momentum buffer; the state's lr and weight decay where it has them. KIND_NONE without the
 * buffer or a usable lr / weight decay; a negative status on failure. */
static int rebuild_muon(const roteq_analysis_optstate_layer *s, const roteq_layer *L,
                        const double *w, double *prev)
{
    roteq_muon_hparams hp = L->mhp;
    double lr = (s->known & ROTEQ_OPTSTATE_LR) ? s->lr : hp.lr;
    double wd = (s->known & ROTEQ_OPTSTATE_WEIGHT_DECAY) ? s->weight_decay : hp.weight_decay;
    if (s->momentum_buffer == NULL || !(lr > 0) || !(wd >= 0) || !(lr * wd < 1))
        return KIND_NONE;
    hp.rows = s->rows, hp.cols = s->cols;
    int nesterov = (s->known & ROTEQ_OPTSTATE_NESTEROV) ? s->nesterov : hp.nesterov;
    size_t n = s->rows * s->cols;
    int st = newton_schulz(s->momentum_buffer, prev, s->rows, s->cols, hp.ns_steps, hp.eps);
    if (st)
        return st;
    double adj = roteq_muon_adjusted_lr(&hp, lr), keep = 1 - lr * wd;
    for (size_t i = 0; i < n; i++)
        prev[i] = (w[i] + adj * prev[i]) / keep;
    return nesterov ? KIND_MUON_NESTEROV : KIND_MUON;
}

/* Angle between rows a and b: 2 atan2(|a^ - b^|, |a^ + b^|) (accurate at every angle). */
static double row_angle(const double *a, const double *b, size_t n)
{
    double na = 0, nb = 0, d = 0, s = 0;
    for (size_t j = 0; j < n; j++)
        na += a[j] * a[j], nb += b[j] * b[j];
    na = sqrt(na), nb = sqrt(nb);
    if (!(na > 0) || !(nb > 0) || !isfinite(na) || !isfinite(nb))
        return DNAN;
    for (size_t j = 0; j < n; j++) {
        double u = a[j] / na, v = b[j] / nb;
        d += (u - v) * (u - v), s += (u + v) * (u + v);
    }
    return 2 * atan2(sqrt(d), sqrt(s));
}

int roteq_analysis_state_angles(roteq_analysis *a, const roteq_analysis_optstate *os, size_t layer,
                                const roteq_analysis_tensor_info *t, const void *data, size_t rows,
                                size_t cols, double *angle)
{
    roteq_layer *L = &a->layers[layer];
    const roteq_analysis_optstate_layer *s = os ? roteq_analysis_optstate_find(os, L->name) : NULL;
    if (s == NULL || s->rows != rows || s->cols != cols || rows == 0)
        return 0;
    double *w = malloc(2 * rows * cols * sizeof *w), *prev = w ? w + rows * cols : NULL;
    if (w == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    /* The snapshot reader's view has the neurons as rows already. The state is in the layout of
     * the state's own weight: use it only where that weight is the view (same neuron axis). */
    roteq_analysis_tensor_rows(t, data, 0, w);
    if (s->weight)
        for (size_t i = 0; i < rows * cols; i++)
            if (fabs(s->weight[i] - w[i]) > 1e-6 * (fabs(w[i]) + 1e-30)) {
                free(w);
                return 0;
            }
    int k = L->muon ? rebuild_muon(s, L, w, prev)
                    : (int)rebuild(s, os->optimizer, a->cfg.meta, w, prev);
    if (k < 0) {
        free(w);
        return k;
    }
    if (k != KIND_NONE)
        for (size_t i = 0; i < rows; i++)
            angle[i] = row_angle(prev + i * cols, w + i * cols, cols);
    free(w);
    if (k == KIND_NONE)
        return 0;
    int approx = k == KIND_NESTEROV || k == KIND_LION || k == KIND_MUON_NESTEROV;
    L->step_src |= approx ? ROTEQ_STEP_APPROX : ROTEQ_STEP_EXACT;
    if (k == KIND_NESTEROV || k == KIND_MUON_NESTEROV)
        L->step_src |= ROTEQ_STEP_NESTEROV;
    if (k == KIND_LION)
        L->step_src |= ROTEQ_STEP_LION;
    if (!(s->known & ROTEQ_OPTSTATE_LR_APPLIED))
        L->step_src |= ROTEQ_STEP_LR_SAVED;
    return 1;
}
