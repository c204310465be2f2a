/* accum.c - the streaming accumulator: rows (step, layer, neuron, norm, angle) in, bounded state
 * out. Per layer it keeps a ring of the last `window` values of every neuron (the final window),
 * layer-level statistics of each recorded step with the prediction in force then, two
 * convergence trackers (static equilibrium, predicted transient), and a decimated trajectory for
 * the rate fit: O(layers x neurons x window) memory whatever the length of the trace.
 * finish.c turns this state into results; the estimators are explained in analysis/README.md. */
#include "analysis_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void roteq_analysis_config_init(roteq_analysis_config *cfg, const roteq_analysis_meta *meta)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->meta = meta;
    cfg->source = "trace";
    cfg->tolerance = 0.05;
    cfg->window = 200;
    cfg->smooth = 5;
}

roteq_analysis *roteq_analysis_alloc(const roteq_analysis_config *cfg)
{
    if (cfg->meta == NULL || !(cfg->tolerance > 0.0) || cfg->window == 0 ||
        cfg->window > ((size_t)1 << 20)) {
        roteq_error_set(ROTEQ_EINVAL, "analysis: need metadata, tolerance > 0 and a window of "
                                      "1..1048576 records");
        return NULL;
    }
    roteq_analysis *a = calloc(1, sizeof *a);
    if (a == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    if (a->cfg.smooth == 0)
        a->cfg.smooth = 1;
    if (a->cfg.smooth > a->cfg.window)
        a->cfg.smooth = a->cfg.window;
    a->last_layer = SIZE_MAX;
    if (cfg->layers_regex) {
        int rc = regcomp(&a->re, cfg->layers_regex, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char buf[128];
            regerror(rc, &a->re, buf, sizeof buf);
            roteq_error_set(ROTEQ_EINVAL, "--layers: invalid regular expression '%s': %s",
                            cfg->layers_regex, buf);
            free(a);
            return NULL;
        }
        a->have_re = 1;
    }
    if (cfg->series)
        fputs("step,group,lr,weight_decay,n,norm_mean,norm_std,norm_q05,norm_q50,norm_q95,"
              "angle_rms,angle_mean,angle_std,angle_q05,angle_q50,angle_q95,pred_norm,pred_angle,"
              "eq_norm,eq_angle\n",
              cfg->series);
    return a;
}

static void layer_free(roteq_layer *L)
{
    free(L->name);
    free(L->ring_norm);
    free(L->ring_angle);
    free(L->ring_upd);
    free(L->last_step);
    free(L->ids);
    free(L->nhash);
    free(L->recs);
    free(L->traj);
    roteq_transient_free(L->tr);
    roteq_analysis_tracker_free(&L->conv_static);
    roteq_analysis_tracker_free(&L->conv_tr);
}

void roteq_analysis_free(roteq_analysis *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nlayers; i++)
        layer_free(&a->layers[i]);
    free(a->layers);
    free(a->lhash);
    free(a->scratch);
    if (a->have_re)
        regfree(&a->re);
    free(a);
}

void roteq_analysis_set_columns(roteq_analysis *a, int has_lr, int has_wd)
{
    a->has_lr = has_lr;
    a->has_wd = has_wd;
}

static const char *meta_name(const roteq_analysis_meta *m)
{
    return m->path ? m->path : "metadata";
}

/* A Muon layer: torch.optim.Muon's defaults < metadata (a Muon run's; another run's lr and weight
 * decay) < layer; the matrix is the layer's neurons (rows) by its dim (cols) unless "shape" says
 * otherwise. A Muon run's fallback group of another optimizer is measured without a prediction. */
static int resolve_muon(roteq_analysis *a, roteq_layer *L, const roteq_analysis_layer_meta *lm)
{
    const roteq_analysis_meta *m = a->cfg.meta;
    L->hp = roteq_optimizer_defaults(&roteq_sgd);
    L->hp.lr = L->hp.weight_decay = DNAN;
    if (lm && lm->other_optimizer)
        return ROTEQ_OK;
    const roteq_optimizer_type *mo = lm && lm->matrix_opt ? lm->matrix_opt : m->matrix_opt;
    const roteq_matrix_hooks *mx = mo->family->matrix;
    roteq_muon_hparams hp = m->muon_hp;
    if (!m->muon) {
        hp = mx->defaults();
        hp.lr = m->given & ROTEQ_HP_BIT(ROTEQ_HP_LR) ? m->hp.lr : DNAN;
        hp.weight_decay =
            m->given & ROTEQ_HP_BIT(ROTEQ_HP_WEIGHT_DECAY) ? m->hp.weight_decay : DNAN;
    }
    unsigned g = lm ? lm->muon_given : 0;
    const roteq_muon_hparams *o = lm ? &lm->muon_hp : NULL;
    if (g & ROTEQ_MUON_GIVEN_LR)
        hp.lr = o->lr;
    if (g & ROTEQ_MUON_GIVEN_WD)
        hp.weight_decay = o->weight_decay;
    if (g & ROTEQ_MUON_GIVEN_MOMENTUM)
        hp.momentum = o->momentum;
    if (g & ROTEQ_MUON_GIVEN_NESTEROV)
        hp.nesterov = o->nesterov;
    if (g & ROTEQ_MUON_GIVEN_NS_STEPS)
        hp.ns_steps = o->ns_steps;
    if (g & ROTEQ_MUON_GIVEN_ADJUST)
        hp.adjust = o->adjust;
    if (g & ROTEQ_MUON_GIVEN_EPS)
        hp.eps = o->eps;
    if (!m->muon && (m->forced & ROTEQ_HP_BIT(ROTEQ_HP_LR))) /* the command line wins */
        hp.lr = m->hp.lr;
    if (!m->muon && (m->forced & ROTEQ_HP_BIT(ROTEQ_HP_WEIGHT_DECAY)))
        hp.weight_decay = m->hp.weight_decay;
    hp.rows = lm ? lm->rows : 0;
    hp.cols = lm && lm->cols ? lm->cols : L->dim;
    if (lm && lm->cols && L->dim && lm->cols != L->dim)
        return roteq_error_set(ROTEQ_EINVAL, "%s: layer '%s' has shape [%zu, %zu] but rows of %zu",
                               meta_name(m), L->name, lm->rows, lm->cols, L->dim);
    if (hp.cols == 0)
        return roteq_error_set(ROTEQ_EINVAL,
                               "%s: layer '%s': %s needs the matrix shape: give "
                               "layers.%s.shape [rows, cols] or its dim (the row length)",
                               meta_name(m), L->name, mo->name, L->name);
    L->dim = hp.cols;
    roteq_muon_hparams check = hp;
    if (isnan(check.lr) && a->has_lr)
        check.lr = 1.0; /* placeholder: the column gives it */
    if (isnan(check.weight_decay) && a->has_wd)
        check.weight_decay = 1.0;
    if (isnan(check.lr) || isnan(check.weight_decay))
        return roteq_error_set(ROTEQ_EINVAL,
                               "%s: layer '%s': missing hyperparameter '%s' needed by %s (give "
                               "it in the metadata or as a trace column)",
                               meta_name(m), L->name, isnan(check.lr) ? "lr" : "weight_decay",
                               mo->name);
    if (check.rows == 0)
        check.rows = 2; /* placeholder: counted at the first record */
    if (mx->validate(&check)) {
        char why[256];
        snprintf(why, sizeof why, "%s", roteq_error_message());
        return roteq_error_set(ROTEQ_EINVAL, "%s: layer '%s': %s", meta_name(m), L->name, why);
    }
    L->muon = 1;
    L->mhp = hp;
    L->mx = mx;
    L->hp.lr = hp.lr;
    L->hp.weight_decay = hp.weight_decay;
    return ROTEQ_OK;
}

/* Resolve the layer's hyperparameters: optimizer defaults < metadata < layer override (the CLI
 * has already been merged into the metadata). A value the optimizer requires and nobody gives
 * is an error, unless a trace column supplies it row by row. */
static int resolve_layer(roteq_analysis *a, roteq_layer *L, size_t dim)
{
    const roteq_analysis_meta *m = a->cfg.meta;
    const roteq_analysis_layer_meta *lm = roteq_analysis_meta_layer(m, L->name);
    L->dim = lm && lm->dim ? lm->dim : m->dim;
    if (dim) {
        if (L->dim && L->dim != dim)
            return roteq_error_set(ROTEQ_EINVAL,
                                   "%s: layer '%s' has dim %zu but the data has rows of %zu",
                                   meta_name(m), L->name, L->dim, dim);
        L->dim = dim;
    }
    L->grad_norm = lm && !isnan(lm->grad_norm) ? lm->grad_norm : m->grad_norm;
    L->neuron_axis = lm && lm->has_neuron_axis ? lm->neuron_axis : 0;
    if (m->muon || (lm && lm->is_muon))
        return resolve_muon(a, L, lm);
    if (m->opt == NULL)
        return ROTEQ_OK;
    L->hp = roteq_optimizer_defaults(m->opt);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++) {
        if (m->given & ROTEQ_HP_BIT(i))
            roteq_hparams_set(&L->hp, (roteq_hparam_id)i, roteq_hparams_get(&m->hp, i));
        if (lm && (lm->given & ROTEQ_HP_BIT(i)))
            roteq_hparams_set(&L->hp, (roteq_hparam_id)i, roteq_hparams_get(&lm->hp, i));
    }
    roteq_hparams check = L->hp;
    if (isnan(check.lr) && a->has_lr)
        check.lr = 1.0; /* placeholder: the column gives it */
    if (isnan(check.weight_decay) && a->has_wd)
        check.weight_decay = 1.0;
    roteq_hparam_id bad;
    if (roteq_hparams_validate(m->opt, &check, &bad)) {
        const char *key = roteq_hparam_descs[bad].key;
        if (isnan(roteq_hparams_get(&check, bad)))
            return roteq_error_set(
                ROTEQ_EINVAL,
                "%s: layer '%s': missing hyperparameter '%s' needed by %s "
                "(give it in the metadata, as --%s%s)",
                meta_name(m), L->name, key, m->opt->name, roteq_hparam_descs[bad].flag,
                bad == ROTEQ_HP_LR || bad == ROTEQ_HP_WEIGHT_DECAY ? " or as a trace column" : "");
        char why[256]; /* the reason, copied out of the buffer the next message is formatted in */
        snprintf(why, sizeof why, "%s", roteq_error_message());
        if (m->forced & ROTEQ_HP_BIT(bad))
            return roteq_error_set(ROTEQ_EINVAL, "--%s: %s", roteq_hparam_descs[bad].flag, why);
        return roteq_error_set(ROTEQ_EINVAL, "%s: layer '%s': %s %s", meta_name(m), L->name, key,
                               why);
    }
    return ROTEQ_OK;
}

static int init_layer(roteq_analysis *a, roteq_layer *L, size_t dim);

void roteq_analysis_set_neuron_axis(roteq_analysis *a, size_t layer, int axis)
{
    if (layer < a->nlayers)
        a->layers[layer].neuron_axis = axis;
}

int roteq_analysis_layer(roteq_analysis *a, const char *name, size_t len, size_t dim, size_t *index)
{
    if (a->last_layer < a->nlayers) {
        roteq_layer *L = &a->layers[a->last_layer];
        if (L->name_len == len && memcmp(L->name, name, len) == 0) {
            *index = a->last_layer;
            return ROTEQ_OK;
        }
    }
    if (roteq_analysis_index_find_layer(a, name, len, index)) {
        a->last_layer = *index;
        return ROTEQ_OK;
    }
    if (len == 0)
        return roteq_error_set(ROTEQ_EFORMAT, "empty layer name");
    if (memchr(name, '\0', len))
        return roteq_error_set(ROTEQ_EFORMAT, "layer name contains a NUL byte");
    if (a->nlayers == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 8;
        roteq_layer *l = realloc(a->layers, cap * sizeof *l);
        if (l == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        a->layers = l;
        a->cap = cap;
    }
    roteq_layer *L = &a->layers[a->nlayers];
    memset(L, 0, sizeof *L);
    L->name = malloc(len + 1);
    if (L->name == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    memcpy(L->name, name, len);
    L->name[len] = '\0';
    L->name_len = len;
    int st = ROTEQ_OK;
    if (a->have_re && regexec(&a->re, L->name, 0, NULL, 0) != 0)
        L->skip = 1; /* remembered, so later rows of it cost one lookup */
    else
        st = init_layer(a, L, dim);
    if (!st)
        st = roteq_analysis_index_add_layer(a, a->nlayers);
    if (st) {
        layer_free(L);
        return st;
    }
    a->last_layer = *index = a->nlayers++;
    return ROTEQ_OK;
}

static int init_layer(roteq_analysis *a, roteq_layer *L, size_t dim)
{
    L->stride = 1;
    L->c_gap = -1;
    L->lr_min = L->wd_min = ((double)INFINITY);
    L->lr_max = L->wd_max = -((double)INFINITY);
    L->gap_first = -1;
    return resolve_layer(a, L, dim);
}

/* A ring of `cap` neurons x `ch` channels x `w` records from `old` (oldcap x ch x oldw, may be
 * NULL): the old entries copied, new ones NAN. */
static double *rering(const double *old, size_t oldcap, size_t oldw, size_t cap, size_t ch,
                      size_t w)
{
    double *r = malloc(cap * ch * w * sizeof *r);
    if (r == NULL)
        return NULL;
    for (size_t i = 0; i < cap; i++)
        for (size_t c = 0; c < ch; c++)
            for (size_t j = 0; j < w; j++) {
                int kept = old && i < oldcap && j < oldw;
                r[(i * ch + c) * w + j] = kept ? old[(i * ch + c) * oldw + j] : DNAN;
            }
    return r;
}

/* Ring storage for `cap` neurons of `w` records each, the old rows copied, new entries NAN. */
static int relayout(roteq_layer *L, size_t cap, size_t w, int upd)
{
    /* The window is kept per neuron: refuse sizes no machine here has rather than thrash. */
    double per = 16.0 + (upd ? 8.0 * ROTEQ_UPD_CH : 0.0);
    if ((double)cap * (double)w * per > 16.0 * (1 << 30))
        return roteq_error_set(ROTEQ_ENOMEM,
                               "layer '%s': %zu neurons with a window of %zu records need more "
                               "than 16 GiB (lower --window%s)",
                               L->name, cap, w, upd ? ", or leave out --explain" : "");
    double *rn = rering(L->ring_norm, L->cap, L->ring_w, cap, 1, w);
    double *ra = rering(L->ring_angle, L->cap, L->ring_w, cap, 1, w);
    double *ru = upd ? rering(L->ring_upd, L->cap, L->ring_w, cap, ROTEQ_UPD_CH, w) : NULL;
    if (rn == NULL || ra == NULL || (upd && ru == NULL)) {
        free(rn), free(ra), free(ru);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu neurons", cap);
    }
    free(L->ring_norm);
    free(L->ring_angle);
    free(L->ring_upd);
    L->ring_norm = rn;
    L->ring_angle = ra;
    L->ring_upd = ru;
    L->ring_w = w;
    return ROTEQ_OK;
}

int roteq_analysis_layer_grow(roteq_analysis *a, roteq_layer *L, size_t need)
{
    size_t cap = L->cap ? 2 * L->cap : 1; /* a layer of one neuron holds one window */
    while (cap < need)
        cap *= 2;
    size_t w = L->ring_w ? L->ring_w : (a->cfg.window < 8 ? a->cfg.window : 8);
    long *ls = realloc(L->last_step, cap * sizeof *ls);
    if (ls == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu neurons", need);
    L->last_step = ls;
    size_t *ids = realloc(L->ids, cap * sizeof *ids);
    if (ids == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu neurons", need);
    L->ids = ids;
    int st = relayout(L, cap, w, a->cfg.explain);
    if (st)
        return st;
    for (size_t i = L->cap; i < cap; i++)
        ls[i] = -1;
    L->cap = cap;
    return ROTEQ_OK;
}

/* --explain: row's update statistics into neuron i's ring slot (NAN where it has none). */
static void keep_updates(roteq_layer *L, size_t i, const roteq_analysis_row *row)
{
    double *u = &L->ring_upd[i * ROTEQ_UPD_CH * L->ring_w + L->slot];
    int has = (row->has & ROTEQ_ROW_UPDATE_NORM) && (row->has & ROTEQ_ROW_UPDATE_RADIAL) &&
              isfinite(row->update_norm) && isfinite(row->update_radial);
    u[ROTEQ_UPD_D2 * L->ring_w] = has ? row->update_norm * row->update_norm : DNAN;
    u[ROTEQ_UPD_RADIAL * L->ring_w] = has ? row->update_radial : DNAN;
    u[ROTEQ_UPD_COS_PREV * L->ring_w] =
        (row->has & ROTEQ_ROW_UPDATE_COS_PREV) && isfinite(row->update_cos_prev)
            ? row->update_cos_prev
            : DNAN;
}

static int open_record(roteq_analysis *a, roteq_layer *L, long step, long gap)
{
    size_t W = a->cfg.window;
    if (L->records >= L->ring_w && L->ring_w < W && L->cap) { /* room for one more record */
        size_t w = 2 * L->ring_w;
        int st = relayout(L, L->cap, w < W ? w : W, a->cfg.explain);
        if (st)
            return st;
    }
    size_t RW = L->ring_w;
    L->open = 1;
    L->cur_step = step;
    L->slot = L->records % W;
    for (size_t i = 0; i < L->nneur; i++) {
        L->ring_norm[i * RW + L->slot] = L->ring_angle[i * RW + L->slot] = DNAN;
        for (size_t c = 0; L->ring_upd && c < ROTEQ_UPD_CH; c++)
            L->ring_upd[(i * ROTEQ_UPD_CH + c) * RW + L->slot] = DNAN;
    }
    L->r_n = L->r_na = 0;
    L->r_sum_norm = L->r_sum_sq = L->r_sum_a2 = L->r_sum_a4 = 0.0;
    L->r_lr = L->r_wd = DNAN;
    L->r_gap = gap;
    L->r_ngc = 0;
    L->r_grad_cos2 = 0.0;
    L->r_m_rows = 0;
    L->r_m_dot = L->r_m_p2 = L->r_m_c2 = 0.0;
    return ROTEQ_OK;
}

/* Muon: the row's part of <W_prev, W> = sum prev_i norm_i cos(angle_i), where prev_i is its norm
 * in the previous record, taken only when that record is the step the angle starts from. */
static void matrix_row(const roteq_analysis *a, const roteq_layer *L_, size_t i,
                       const roteq_analysis_row *row)
{
    roteq_layer *L = (roteq_layer *)L_;
    size_t W = a->cfg.window;
    if (L->records == 0 || row->gap < 1 || isnan(row->angle) ||
        L->last_step[i] != row->step - row->gap ||
        L->recs[(L->records - 1) % W].step != row->step - row->gap)
        return;
    double p = L->ring_norm[i * L->ring_w + (L->records - 1) % W];
    if (!(p >= 0))
        return;
    L->r_m_rows++;
    L->r_m_dot += p * row->norm * cos(row->angle);
    L->r_m_p2 += p * p;
    L->r_m_c2 += row->norm * row->norm;
}

int roteq_analysis_add(roteq_analysis *a, size_t layer, const roteq_analysis_row *row)
{
    roteq_layer *L = &a->layers[layer];
    if (L->skip)
        return ROTEQ_OK;
    if (!L->open) {
        int so = open_record(a, L, row->step, row->gap);
        if (so)
            return so;
    } else if (row->step != L->cur_step) {
        if (row->step < L->cur_step)
            return roteq_error_set(ROTEQ_EFORMAT,
                                   "step %ld of layer '%s' comes after step %ld (steps go "
                                   "backwards)",
                                   row->step, L->name, L->cur_step);
        int sc = roteq_analysis_layer_close_record(a, L);
        if (!sc)
            sc = open_record(a, L, row->step, row->gap);
        if (sc)
            return sc;
    }
    size_t i;
    int st = roteq_analysis_index_neuron(a, L, row->neuron, &i);
    if (st)
        return st;
    if (L->last_step[i] == row->step)
        return roteq_error_set(ROTEQ_EFORMAT, "duplicate row for step %ld, layer '%s', neuron %zu",
                               row->step, L->name, row->neuron);
    if (L->muon)
        matrix_row(a, L, i, row);
    L->last_step[i] = row->step;
    size_t RW = L->ring_w;
    L->ring_norm[i * RW + L->slot] = row->norm;
    L->ring_angle[i * RW + L->slot] = row->angle;
    if (L->ring_upd)
        keep_updates(L, i, row);
    /* Per-record statistics leave out what the final window will call dead or collapsed as far
     * as one row can tell: a zero norm, an undefined or exactly zero angle. */
    if (row->norm > 0) {
        L->r_n++;
        L->r_sum_norm += row->norm;
        L->r_sum_sq += row->norm * row->norm;
        if (!isnan(row->angle) && row->angle != 0) {
            L->r_na++;
            L->r_sum_a2 += row->angle * row->angle;
            L->r_sum_a4 += row->angle * row->angle * row->angle * row->angle;
        }
    }
    roteq_analysis_record_row_updates(L, row);
    if (!isnan(row->lr))
        L->r_lr = row->lr;
    if (!isnan(row->weight_decay))
        L->r_wd = row->weight_decay;
    return ROTEQ_OK;
}

void roteq_analysis_layer_static_prediction(const roteq_analysis *a, const roteq_layer *L,
                                            double lr, double wd, long gap, double *norm,
                                            double *angle)
{
    const roteq_analysis_meta *m = a->cfg.meta;
    *norm = *angle = DNAN;
    if (L->muon) {
        roteq_muon_hparams hp = L->mhp;
        roteq_muon_equilibrium eq;
        hp.lr = lr, hp.weight_decay = wd;
        /* Muon's theory has no k-step angle: snapshots k > 1 steps apart get none. */
        if (!isnan(lr) && !isnan(wd) && hp.rows && L->mx->validate(&hp) == ROTEQ_OK &&
            L->mx->equilibrium(&hp, ROTEQ_MUON_PRED_BEST, &eq) == ROTEQ_OK) {
            *norm = isfinite(eq.norm) ? eq.norm : DNAN;
            *angle = gap <= 1 && isfinite(eq.angular_update) ? eq.angular_update : DNAN;
        }
        return;
    }
    if (m->opt == NULL || isnan(lr) || isnan(wd))
        return;
    roteq_hparams hp = L->hp;
    hp.lr = lr;
    hp.weight_decay = wd;
    roteq_setting s = {L->dim ? L->dim : 1, L->grad_norm};
    roteq_equilibrium eq;
    if (roteq_theory_equilibrium(m->opt, &hp, &s, ROTEQ_PRED_BEST, &eq) == ROTEQ_OK) {
        /* A norm that scales with C means nothing when C is unknown. */
        *norm = L->dim && isfinite(eq.norm) ? eq.norm : DNAN;
        *angle = isfinite(eq.angular_update) ? eq.angular_update : DNAN;
    }
    if (gap > 1) {
        double k = roteq_theory_kstep_angle(m->opt, &hp, &s, gap);
        *angle = isfinite(k) && k >= 0.0 ? k : DNAN;
    }
}

/* Largest jump in steps the transient is advanced through (records far apart in steps). */
#define ROTEQ_TRANSIENT_MAX_JUMP 10000000L

static void advance_transient(roteq_analysis *a, roteq_layer *L, roteq_rec *r)
{
    const roteq_analysis_meta *m = a->cfg.meta;
    if (L->muon)
        return; /* Muon's transient is not used here (analysis/README.md "Muon runs") */
    if (m->opt == NULL || r->gap > 1 || isnan(r->lr) || isnan(r->wd) || L->tr_state < 0) {
        if (m->opt != NULL && r->gap > 1)
            L->tr_state = -1; /* the transient predicts single steps, not k-step angles */
        return;
    }
    if (L->tr_state == 0) {
        roteq_setting s = {L->dim ? L->dim : 1, L->grad_norm};
        roteq_hparams hp = L->hp;
        hp.lr = r->lr;
        hp.weight_decay = r->wd;
        L->tr = roteq_transient_alloc(m->opt, &hp, &s, sqrt(r->msq_norm));
        if (L->tr == NULL) {
            L->tr_state = -1;
            return;
        }
        L->tr_state = 1;
        L->tr_step = r->step;
        L->tr_norm = sqrt(r->msq_norm);
        L->tr_angle = r->ps_angle; /* the step into the first record is not modelled */
        return;
    }
    if (r->step - L->tr_step > ROTEQ_TRANSIENT_MAX_JUMP) {
        L->tr_state = -1;
        return;
    }
    for (long s = L->tr_step + 1; s <= r->step; s++) {
        if (roteq_transient_step(L->tr, r->lr, r->wd, &L->tr_norm, &L->tr_angle)) {
            L->tr_state = -1;
            return;
        }
    }
    L->tr_step = r->step;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Quantile of sorted x[0..n) with linear interpolation (Hyndman-Fan type 7, numpy's default). */
double roteq_analysis_quantile_sorted(const double *x, size_t n, double q)
{
    if (n == 0)
        return DNAN;
    double h = q * (double)(n - 1);
    size_t lo = (size_t)h;
    if (lo + 1 >= n)
        return x[n - 1];
    return x[lo] + (h - (double)lo) * (x[lo + 1] - x[lo]);
}

static void print_csv_name(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Mean, std, and the 5/50/95% quantiles of the open record's values in a ring, over the neurons
 * with a non-zero norm and a non-zero value (as the record's n and sums). */
static int column_stats(roteq_analysis *a, const roteq_layer *L, const double *ring, double st[5])
{
    if (a->scratch_cap < L->nneur) {
        double *s = realloc(a->scratch, L->nneur * sizeof *s);
        if (s == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        a->scratch = s;
        a->scratch_cap = L->nneur;
    }
    size_t n = 0;
    double sum = 0;
    for (size_t i = 0; i < L->nneur; i++) {
        double v = ring[i * L->ring_w + L->slot], nv = L->ring_norm[i * L->ring_w + L->slot];
        if (isfinite(v) && v != 0 && nv > 0) { /* the neurons the record's n counts */
            a->scratch[n++] = v;
            sum += v;
        }
    }
    double mean = n ? sum / (double)n : DNAN, ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (a->scratch[i] - mean) * (a->scratch[i] - mean);
    qsort(a->scratch, n, sizeof *a->scratch, cmp_double);
    st[0] = mean;
    st[1] = n > 1 ? sqrt(ss / (double)(n - 1)) : DNAN;
    st[2] = roteq_analysis_quantile_sorted(a->scratch, n, 0.05);
    st[3] = roteq_analysis_quantile_sorted(a->scratch, n, 0.50);
    st[4] = roteq_analysis_quantile_sorted(a->scratch, n, 0.95);
    return ROTEQ_OK;
}

/* One series row (docs/FORMATS.md section 2): pred_* is the transient where theory has one, eq_*
 * the static equilibrium at this record's lr, weight decay and snapshot gap (empty where theory
 * has none), which `roteq plot` draws as the equilibrium line. */
static int write_series_row(roteq_analysis *a, const roteq_layer *L, const roteq_rec *r)
{
    FILE *f = a->cfg.series;
    double sn[5], sa[5];
    int st = column_stats(a, L, L->ring_norm, sn);
    if (!st)
        st = column_stats(a, L, L->ring_angle, sa);
    if (st)
        return st;
    fprintf(f, "%ld,", r->step);
    print_csv_name(f, L->name);
    double v[] = {r->lr,       r->wd,      (double)r->n,
                  sn[0],       sn[1],      sn[2],
                  sn[3],       sn[4],      r->na ? sqrt(r->ms_angle) : DNAN,
                  sa[0],       sa[1],      sa[2],
                  sa[3],       sa[4],      r->pt_norm,
                  r->pt_angle, r->ps_norm, r->ps_angle};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        fputc(',', f);
        if (i == 2)
            fprintf(f, "%zu", r->n);
        else
            roteq_fprint_csv_double(f, v[i]);
    }
    fputc('\n', f);
    return ferror(f) ? roteq_error_set(ROTEQ_EIO, "cannot write the series file") : ROTEQ_OK;
}

static int add_traj(roteq_layer *L, const roteq_rec *r)
{
    /* Keep every stride-th record; when full, drop every other point and double the stride,
     * so the trajectory spans the whole run at bounded size. */
    if ((L->records - 1) % L->stride != 0)
        return ROTEQ_OK;
    if (L->ntraj == ROTEQ_TRAJ_CAP) {
        for (size_t i = 0; i < ROTEQ_TRAJ_CAP / 2; i++)
            L->traj[i] = L->traj[2 * i];
        L->ntraj = ROTEQ_TRAJ_CAP / 2;
        L->stride *= 2;
        if ((L->records - 1) % L->stride != 0)
            return ROTEQ_OK;
    }
    if (L->ntraj == L->traj_cap) { /* grows with the run up to ROTEQ_TRAJ_CAP points */
        size_t cap = L->traj_cap ? 2 * L->traj_cap : 16;
        roteq_traj_point *t = realloc(L->traj, cap * sizeof *t);
        if (t == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        L->traj = t;
        L->traj_cap = cap;
    }
    L->traj[L->ntraj++] = (roteq_traj_point){r->step, r->msq_norm, r->pt_norm * r->pt_norm};
    return ROTEQ_OK;
}

int roteq_analysis_layer_close_record(roteq_analysis *a, roteq_layer *L)
{
    if (!L->open)
        return ROTEQ_OK;
    L->open = 0;
    size_t W = a->cfg.window;
    if (L->records >= L->recs_cap && L->recs_cap < W) { /* the ring fills as records come */
        size_t cap = L->recs_cap ? 2 * L->recs_cap : 8;
        cap = cap < W ? cap : W;
        roteq_rec *nr = realloc(L->recs, cap * sizeof *nr);
        if (nr == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        L->recs = nr;
        L->recs_cap = cap;
    }
    roteq_rec *r = &L->recs[L->records % W];
    memset(r, 0, sizeof *r);
    r->step = L->cur_step;
    r->gap = L->r_gap;
    unsigned forced = a->cfg.meta->forced;
    r->lr = isnan(L->r_lr) || (forced & ROTEQ_HP_BIT(ROTEQ_HP_LR)) ? L->hp.lr : L->r_lr;
    r->wd = isnan(L->r_wd) || (forced & ROTEQ_HP_BIT(ROTEQ_HP_WEIGHT_DECAY)) ? L->hp.weight_decay
                                                                             : L->r_wd;
    if (a->cfg.meta->opt == NULL && !L->muon) { /* no resolved hyperparameters: rows say */
        r->lr = L->r_lr;
        r->wd = L->r_wd;
    }
    r->n = L->r_n;
    r->na = L->r_na;
    r->mean_norm = L->r_n ? L->r_sum_norm / (double)L->r_n : DNAN;
    r->msq_norm = L->r_n ? L->r_sum_sq / (double)L->r_n : DNAN;
    r->ms_angle = L->r_na ? L->r_sum_a2 / (double)L->r_na : DNAN;
    roteq_analysis_record_close_updates(L, r);
    if (L->muon && L->mhp.rows == 0)
        L->mhp.rows = L->nneur; /* no "shape": the matrix is the neurons of the first record */
    r->m_angle = DNAN;
    if (L->muon && L->r_m_rows == L->mhp.rows && L->r_m_p2 > 0 && L->r_m_c2 > 0)
        r->m_angle = acos(fmax(-1.0, fmin(1.0, L->r_m_dot / sqrt(L->r_m_p2 * L->r_m_c2))));

    if (r->lr != L->c_lr || r->wd != L->c_wd || r->gap != L->c_gap) {
        roteq_analysis_layer_static_prediction(a, L, r->lr, r->wd, r->gap, &L->c_pn, &L->c_pa);
        L->c_lr = r->lr;
        L->c_wd = r->wd;
        L->c_gap = r->gap;
    }
    r->ps_norm = L->c_pn;
    r->ps_angle = L->c_pa;
    advance_transient(a, L, r);
    r->pt_norm = L->tr_state > 0 ? L->tr_norm : r->ps_norm;
    r->pt_angle = L->tr_state > 0 ? L->tr_angle : r->ps_angle;

    if (!isnan(r->lr)) {
        L->lr_min = fmin(L->lr_min, r->lr);
        L->lr_max = fmax(L->lr_max, r->lr);
    }
    if (!isnan(r->wd)) {
        L->wd_min = fmin(L->wd_min, r->wd);
        L->wd_max = fmax(L->wd_max, r->wd);
    }
    if (r->gap > 0) { /* the first snapshot has no angle (gap -1) */
        if (L->gap_first < 0)
            L->gap_first = r->gap;
        else if (r->gap != L->gap_first)
            L->gap_varies = 1;
    }

    L->records++;
    roteq_analysis_layer_track(a, L);
    int st = add_traj(L, r);
    if (st)
        return st;
    if (a->cfg.series)
        return write_series_row(a, L, r);
    return ROTEQ_OK;
}
