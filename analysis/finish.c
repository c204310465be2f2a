/* finish.c - from the accumulator's bounded state to per-layer results: the final-window
 * estimates (mean norm, RMS angular update over neurons and steps), dead and collapsed neurons,
 * homogeneity across neurons, both predictions (closed-form equilibrium and transient) and the
 * one in use, the settled step and the convergence rate, and the balance across layers. The
 * verdict and the layer classification live in verdict.c, `--explain` in explain.c. The rules
 * are stated in analysis/README.md; these files implement exactly those. */
#include "analysis_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const roteq_analysis_status_names[3] = {"ok", "dead", "collapsed"};
const char *const roteq_analysis_verdict_names[6] = {
    "no prediction",  "at equilibrium",           "converging",
    "off-prediction", "not scale-invariant-like", "no data"};

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* A neuron whose window-mean norm is below this fraction of the layer's median is collapsed; so
 * is one below ROTEQ_COLLAPSE_PRED of the predicted equilibrium norm, where that prediction does
 * not depend on the gradient's scale (decoupled decay), so that a layer where most units
 * collapsed (the median among them) is still caught. */
#define ROTEQ_COLLAPSE_FRACTION 0.01
#define ROTEQ_COLLAPSE_PRED     0.25

/* Fit the exponential approach of the mean square norm to m_inf: least squares of ln|m_t - m_inf|
 * on t over the leading points still outside twice the band (2*tol*m_inf, the squared norm's band)
 * and on the same side as the first. Returns the rate per step or DNAN when there is no transient
 * to fit (the run starts inside the band, or fewer than 3 points). */
static double fit_rate(const roteq_traj_point *p, size_t n, int pred, double m_inf, double tol)
{
    if (!(m_inf > 0) || n < 3)
        return DNAN;
    double band = 2 * tol * m_inf;
    double d0 = (pred ? p[0].pt_msq : p[0].msq) - m_inf;
    if (!(fabs(d0) > 2 * band))
        return DNAN;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (pred ? p[i].pt_msq : p[i].msq) - m_inf;
        if (!(fabs(d) > band) || (d > 0) != (d0 > 0))
            break;
        double x = (double)(p[i].step - p[0].step), y = log(fabs(d));
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        k++;
    }
    if (k < 3)
        return DNAN;
    double kd = (double)k, den = kd * sxx - sx * sx;
    if (!(den > 0))
        return DNAN;
    return -(kd * sxy - sx * sy) / den;
}

/* Rate of the linearised mean-square-norm recurrence at equilibrium (theory's, from the
 * optimizer's family; derived in analysis/README.md). */
static double analytic_rate(const roteq_optimizer_type *opt, double lr, double wd)
{
    return roteq_theory_convergence_rate(opt, lr, wd);
}

static double rel(double m, double p)
{
    return isfinite(m) && isfinite(p) && p > 0 ? m / p - 1.0 : DNAN;
}

/* Per-neuron window statistics: mean norm, RMS angle, status. */
typedef struct {
    double *mean_norm, *au, *tmp;
    roteq_analysis_status *status;
} neuron_ws;

static void ws_free(neuron_ws *w)
{
    free(w->mean_norm), free(w->au), free(w->tmp), free(w->status);
}

static int ws_alloc(neuron_ws *w, size_t N)
{
    size_t n = N ? N : 1;
    w->mean_norm = malloc(n * sizeof *w->mean_norm);
    w->au = malloc(n * sizeof *w->au);
    w->tmp = malloc(n * sizeof *w->tmp);
    w->status = malloc(n * sizeof *w->status);
    if (!w->mean_norm || !w->au || !w->tmp || !w->status) {
        ws_free(w);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    return ROTEQ_OK;
}

/* The predictions over the final window (records r0..): the closed-form equilibrium at each
 * record's lr, weight decay and gap, and theory's transient; then the one the verdict uses.
 * Returns 1 when that is the transient (or per-record equilibrium of a schedule). */
static int predictions(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                       roteq_analysis_layer_result *R)
{
    size_t W = a->cfg.window, Wn = L->records - r0;
    if (a->cfg.meta->opt == NULL && !L->muon)
        return 0;
    double sn = 0, sa = 0, tn = 0, ta = 0;
    for (size_t ri = r0; ri < L->records; ri++) {
        const roteq_rec *r = &L->recs[ri % W];
        sn += r->ps_norm, sa += r->ps_angle * r->ps_angle;
        tn += r->pt_norm, ta += r->pt_angle * r->pt_angle;
    }
    double k = (double)Wn;
    R->eq_norm = isfinite(sn) ? sn / k : DNAN;
    R->eq_angle = isfinite(sa) ? sqrt(sa / k) : DNAN;
    if (L->tr_state > 0) {
        R->tr_norm = isfinite(tn) ? tn / k : DNAN;
        R->tr_angle = isfinite(ta) ? sqrt(ta / k) : DNAN;
    }
    R->scheduled = L->lr_max > L->lr_min || L->wd_max > L->wd_min;
    roteq_analysis_against ag = a->cfg.against;
    int transient = ag == ROTEQ_AGAINST_TRANSIENT ||
                    (ag == ROTEQ_AGAINST_AUTO && R->scheduled && L->tr_state > 0);
    if (transient && L->tr_state > 0) {
        R->prediction = "transient";
        R->pred_norm = R->tr_norm, R->pred_angle = R->tr_angle;
    } else {
        transient = 0;
        R->prediction = R->scheduled ? "instantaneous" : "static";
        R->pred_norm = R->eq_norm, R->pred_angle = R->eq_angle;
    }
    if (!isfinite(R->pred_norm) && !isfinite(R->pred_angle))
        R->prediction = "none";
    return transient;
}

/* Per-neuron window means, status (dead, collapsed, ok); returns the number of ok neurons. */
static size_t neuron_status(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                            const roteq_analysis_layer_result *R, neuron_ws *w)
{
    size_t W = a->cfg.window, N = L->nneur, nmed = 0;
    for (size_t i = 0; i < N; i++) {
        double sn = 0, sa = 0;
        size_t cn = 0, ca = 0;
        int zero_norm = 0, moved = 0;
        for (size_t ri = r0; ri < L->records; ri++) {
            size_t s = ri % W;
            double nv = L->ring_norm[i * L->ring_w + s], av = L->ring_angle[i * L->ring_w + s];
            if (!isnan(nv))
                sn += nv, cn++, zero_norm |= nv == 0.0;
            if (!isnan(av))
                sa += av * av, ca++, moved |= av != 0.0;
        }
        w->mean_norm[i] = cn ? sn / (double)cn : DNAN;
        w->au[i] = ca ? sqrt(sa / (double)ca) : DNAN;
        if (cn && zero_norm)
            w->status[i] = ROTEQ_ANALYSIS_NEURON_COLLAPSED;
        else if (!cn || !ca || !moved)
            w->status[i] = ROTEQ_ANALYSIS_NEURON_DEAD;
        else {
            w->status[i] = ROTEQ_ANALYSIS_NEURON_OK;
            w->tmp[nmed++] = w->mean_norm[i];
        }
    }
    qsort(w->tmp, nmed, sizeof *w->tmp, cmp_double);
    double floor = ROTEQ_COLLAPSE_FRACTION * roteq_analysis_quantile_sorted(w->tmp, nmed, 0.5);
    const roteq_optimizer_type *opt = a->cfg.meta->opt;
    if (opt && (opt->flags & ROTEQ_OPTF_DECOUPLED) && !(opt->flags & ROTEQ_OPTF_ROTATIONAL) &&
        isfinite(R->pred_norm) && R->pred_norm > 0) {
        /* Against the prediction, unless that would leave no unit: then the whole layer sits
         * low, which the verdict reports as the norm's error. */
        double p = ROTEQ_COLLAPSE_PRED * R->pred_norm;
        if (nmed && w->tmp[nmed - 1] >= p)
            floor = fmax(floor, p);
    }
    size_t nok = 0;
    for (size_t i = 0; i < N; i++) {
        if (w->status[i] == ROTEQ_ANALYSIS_NEURON_OK && w->mean_norm[i] < floor)
            w->status[i] = ROTEQ_ANALYSIS_NEURON_COLLAPSED;
        nok += w->status[i] == ROTEQ_ANALYSIS_NEURON_OK;
    }
    return nok;
}

/* Pooled estimates over the ok neurons' window values, homogeneity and standard errors (README:
 * "What is measured"). */
static void pooled(const roteq_analysis *a, const roteq_layer *L, size_t r0, neuron_ws *w,
                   roteq_analysis_layer_result *R)
{
    size_t W = a->cfg.window, N = L->nneur;
    double pn_sum = 0, pa_sum = 0;
    size_t pn_cnt = 0, pa_cnt = 0, nok = 0;
    for (size_t i = 0; i < N; i++) {
        R->dead += w->status[i] == ROTEQ_ANALYSIS_NEURON_DEAD;
        R->collapsed += w->status[i] == ROTEQ_ANALYSIS_NEURON_COLLAPSED;
        if (w->status[i] != ROTEQ_ANALYSIS_NEURON_OK)
            continue;
        for (size_t ri = r0; ri < L->records; ri++) {
            size_t s = i * L->ring_w + ri % W;
            double nv = L->ring_norm[s], av = L->ring_angle[s];
            if (!isnan(nv))
                pn_sum += nv, pn_cnt++;
            if (!isnan(av))
                pa_sum += av * av, pa_cnt++;
        }
        w->tmp[nok++] = w->au[i];
    }
    R->norm = pn_cnt ? pn_sum / (double)pn_cnt : DNAN;
    R->angular_update = pa_cnt ? sqrt(pa_sum / (double)pa_cnt) : DNAN;
    if (nok == 0)
        return;
    double s = 0, ss = 0;
    for (size_t i = 0; i < nok; i++)
        s += w->tmp[i];
    double mu = s / (double)nok;
    for (size_t i = 0; i < nok; i++)
        ss += (w->tmp[i] - mu) * (w->tmp[i] - mu);
    R->cv = nok > 1 && mu > 0 ? sqrt(ss / (double)(nok - 1)) / mu : DNAN;
    qsort(w->tmp, nok, sizeof *w->tmp, cmp_double);
    R->q05 = roteq_analysis_quantile_sorted(w->tmp, nok, 0.05);
    R->q50 = roteq_analysis_quantile_sorted(w->tmp, nok, 0.50);
    R->q95 = roteq_analysis_quantile_sorted(w->tmp, nok, 0.95);
    /* Each ok neuron's window average is one sample (neurons are the independent units; steps
     * of one neuron are correlated): SE of the mean norm, and of the RMS angle by the delta
     * method on the mean of per-neuron mean squares. */
    if (nok < 2)
        return;
    double sn = 0, ssn = 0, sa = 0, ssa = 0;
    for (size_t i = 0; i < N; i++) {
        if (w->status[i] != ROTEQ_ANALYSIS_NEURON_OK)
            continue;
        double a2 = w->au[i] * w->au[i];
        sn += w->mean_norm[i], ssn += w->mean_norm[i] * w->mean_norm[i];
        sa += a2, ssa += a2 * a2;
    }
    double k = (double)nok, mn = sn / k, ma = sa / k;
    double vn = fmax(0.0, (ssn - k * mn * mn) / (k - 1)),
           va = fmax(0.0, (ssa - k * ma * ma) / (k - 1));
    R->norm_se = sqrt(vn / k);
    R->angle_se = ma > 0 ? sqrt(va / k) / (2 * sqrt(ma)) : DNAN;
}

/* Snapshots k > 1 steps apart: the measured angle spans k updates, whose correlation the
 * random-walk k-step model does not know. Report the per-step prediction and the update
 * correlation the k-step angle implies, mean over the window's records of
 * angle^2 / (k x predicted per-step angle^2) (1 for uncorrelated updates). */
static void kstep(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                  roteq_analysis_layer_result *R)
{
    size_t W = a->cfg.window;
    const roteq_rec *last = &L->recs[(L->records - 1) % W];
    double pn, pa;
    roteq_analysis_layer_static_prediction(a, L, last->lr, last->wd, 1, &pn, &pa);
    R->step_angle_pred = pa;
    R->angle_judged = L->gap_first <= 1 && !L->gap_varies;
    if (R->angle_judged)
        return;
    snprintf(R->angle_source, sizeof R->angle_source, "k-step");
    double s = 0;
    size_t n = 0;
    for (size_t ri = r0; ri < L->records; ri++) {
        const roteq_rec *r = &L->recs[ri % W];
        double p1, a1;
        if (!r->na || r->gap < 1)
            continue;
        roteq_analysis_layer_static_prediction(a, L, r->lr, r->wd, 1, &p1, &a1);
        if (isfinite(a1) && a1 > 0)
            s += r->ms_angle / ((double)r->gap * a1 * a1), n++;
    }
    R->implied_corr = n ? s / (double)n : DNAN;
}

/* Convergence rates of the mean square norm (README: "Convergence rate"). */
static void rates(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                  roteq_analysis_layer_result *R)
{
    size_t W = a->cfg.window;
    const roteq_analysis_meta *m = a->cfg.meta;
    const roteq_rec *last = &L->recs[(L->records - 1) % W];
    double m_inf = 0; /* the window mean of the layer's mean square norm */
    for (size_t ri = r0; ri < L->records; ri++)
        m_inf += L->recs[ri % W].msq_norm;
    m_inf /= (double)(L->records - r0);
    R->rate = fit_rate(L->traj, L->ntraj, 0, m_inf, a->cfg.tolerance);
    if (!m->opt || L->muon || R->scheduled)
        return;
    if (L->tr_state > 0) {
        double pm_inf =
            isfinite(R->eq_norm) ? R->eq_norm * R->eq_norm : L->traj[L->ntraj - 1].pt_msq;
        R->pred_rate = fit_rate(L->traj, L->ntraj, 1, pm_inf, a->cfg.tolerance);
    } else if (isfinite(R->rate)) {
        R->pred_rate = analytic_rate(m->opt, last->lr, last->wd);
    }
}

/* Where the angles come from, in words (laststep.c rebuilds the last step from optimizer state). */
static void angle_source(const roteq_layer *L, roteq_analysis_layer_result *R)
{
    unsigned b = L->step_src;
    if (!b) {
        snprintf(R->angle_source, sizeof R->angle_source, "per-step");
        return;
    }
    snprintf(R->angle_source, sizeof R->angle_source, "per-step from optimizer state, %s%s%s%s",
             b & ROTEQ_STEP_APPROX ? "approximate" : "exact",
             b & ROTEQ_STEP_NESTEROV ? " (Nesterov: last gradient not stored)" : "",
             b & ROTEQ_STEP_LION ? " (Lion: previous momentum not stored)" : "",
             b & ROTEQ_STEP_LR_SAVED ? ", lr as saved (the next step's under a schedule)" : "");
}

static void result_init(const roteq_layer *L, roteq_analysis_layer_result *R)
{
    R->dim = L->dim;
    R->neurons = L->nneur;
    R->records = L->records;
    R->converged_at = -1;
    R->pred_norm = R->pred_angle = R->norm = R->angular_update = DNAN;
    R->eq_norm = R->eq_angle = R->rel_eq_norm = R->rel_eq_angle = DNAN;
    R->tr_norm = R->tr_angle = R->rel_tr_norm = R->rel_tr_angle = DNAN;
    R->rel_norm = R->rel_angle = R->rate = R->pred_rate = DNAN;
    R->cv = R->q05 = R->q50 = R->q95 = R->ratio = DNAN;
    R->norm_se = R->angle_se = DNAN;
    R->lr = R->weight_decay = DNAN;
    R->step_angle_pred = R->implied_corr = R->grad_cos_rms = DNAN;
    R->angle_judged = 1;
    R->scale_invariant = -1;
    R->prediction = "none";
    R->verdict = ROTEQ_ANALYSIS_NO_DATA;
}

/* Muon: the whole matrix over the final window. The Frobenius norm is sqrt(n E||w_row||^2) per
 * record; the matrix angle (RMS) from <W_prev, W> = sum of the rows' prev*norm*cos(angle), known
 * when every record of the window holds every row one step after the previous record (a trace
 * recorded every step; not snapshots k > 1 apart): else NAN. The predictions are best's at the
 * last record's lr and weight decay. */
static void matrix(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                   roteq_analysis_layer_result *R)
{
    size_t W = a->cfg.window;
    R->has_matrix = 1;
    R->matrix_rows = L->mhp.rows, R->matrix_cols = L->mhp.cols;
    R->matrix_norm = R->matrix_pred_norm = R->matrix_angle = R->matrix_pred_angle = DNAN;
    double s = 0, a2 = 0;
    for (size_t ri = r0; ri < L->records; ri++) {
        const roteq_rec *r = &L->recs[ri % W];
        s += sqrt((double)r->n * r->msq_norm);
        a2 += r->m_angle * r->m_angle;
    }
    if (isfinite(s))
        R->matrix_norm = s / (double)(L->records - r0);
    if (isfinite(a2) && R->gap == 1)
        R->matrix_angle = sqrt(a2 / (double)(L->records - r0));
    roteq_muon_hparams hp = L->mhp;
    hp.lr = R->lr, hp.weight_decay = R->weight_decay;
    roteq_muon_equilibrium eq;
    if (isnan(hp.lr) || isnan(hp.weight_decay) || L->mx->validate(&hp) ||
        L->mx->equilibrium(&hp, ROTEQ_MUON_PRED_BEST, &eq))
        return;
    R->matrix_pred_norm = isfinite(eq.matrix_norm) ? eq.matrix_norm : DNAN;
    R->matrix_pred_angle =
        R->gap == 1 && isfinite(eq.matrix_angular_update) ? eq.matrix_angular_update : DNAN;
}

static int finish_layer(roteq_analysis *a, roteq_layer *L, roteq_analysis_layer_result *R)
{
    int st = roteq_analysis_layer_close_record(a, L);
    if (!st)
        st = roteq_analysis_layer_sort_neurons(a, L);
    if (st)
        return st;
    size_t W = a->cfg.window, N = L->nneur;
    R->name = strdup(L->name);
    R->neuron_axis = L->neuron_axis;
    if (R->name == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    result_init(L, R);
    if (L->records == 0)
        return ROTEQ_OK;
    const roteq_rec *last = &L->recs[(L->records - 1) % W];
    R->first_step = L->traj[0].step;
    R->last_step = last->step;
    R->lr = last->lr;
    R->weight_decay = last->wd;
    R->gap = L->gap_varies ? 0 : L->gap_first;

    /* The final window: the last quarter of the records, at most `window` of them. */
    size_t Wn = (L->records + 3) / 4;
    if (Wn > W)
        Wn = W;
    size_t r0 = L->records - Wn;
    R->window_records = Wn;
    R->window_start = L->recs[r0 % W].step;

    int transient = predictions(a, L, r0, R);
    neuron_ws w;
    if (ws_alloc(&w, N))
        return roteq_error_status();
    size_t nok = neuron_status(a, L, r0, R, &w);
    pooled(a, L, r0, &w, R);
    if (L->muon)
        matrix(a, L, r0, R);
    R->rel_norm = rel(R->norm, R->pred_norm);
    R->rel_angle = rel(R->angular_update, R->pred_angle);
    R->rel_eq_norm = rel(R->norm, R->eq_norm);
    R->rel_eq_angle = rel(R->angular_update, R->eq_angle);
    R->rel_tr_norm = rel(R->norm, R->tr_norm);
    R->rel_tr_angle = rel(R->angular_update, R->tr_angle);
    angle_source(L, R);
    if (a->cfg.meta->opt && !L->muon)
        kstep(a, L, r0, R);
    rates(a, L, r0, R);
    roteq_analysis_classify(a, L, r0, R);
    roteq_analysis_verdict_decide(a, L, r0, transient, nok, R);
    if (a->cfg.explain)
        roteq_analysis_explain_layer(a, L, r0, w.status, R);

    if (a->cfg.per_neuron) {
        R->per_neuron = malloc((N ? N : 1) * sizeof *R->per_neuron);
        if (R->per_neuron == NULL) {
            ws_free(&w);
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < N; i++)
            R->per_neuron[i] = (roteq_analysis_neuron){w.mean_norm[i], w.au[i],     R->pred_norm,
                                                       R->pred_angle,  w.status[i], L->ids[i]};
    }
    ws_free(&w);
    return ROTEQ_OK;
}

/* max/min of the layers' positive measured (or predicted) angular updates; only_si leaves out
 * the layers classified as not scale-invariant. */
static double spread(const roteq_analysis_result *r, int measured, int only_si)
{
    double mx = -((double)INFINITY), mn = ((double)INFINITY);
    for (size_t i = 0; i < r->nlayers; i++) {
        const roteq_analysis_layer_result *L = &r->layers[i];
        double v = measured ? L->angular_update : L->pred_angle;
        if (only_si && L->scale_invariant == 0)
            continue;
        if (isfinite(v) && v > 0)
            mx = fmax(mx, v), mn = fmin(mn, v);
    }
    return mn <= mx ? mx / mn : DNAN;
}

int roteq_analysis_finish(roteq_analysis *a, roteq_analysis_result **out)
{
    roteq_analysis_result *r = calloc(1, sizeof *r);
    if (r == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    r->layers = calloc(a->nlayers ? a->nlayers : 1, sizeof *r->layers);
    if (r->layers == NULL) {
        free(r);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    const roteq_analysis_meta *m = a->cfg.meta;
    r->optimizer = m->opt ? m->opt->name : m->muon ? m->matrix_opt->name : NULL;
    r->tolerance = a->cfg.tolerance;
    r->window = a->cfg.window;
    r->explain = a->cfg.explain;
    for (size_t i = 0; i < a->nlayers; i++) {
        if (a->layers[i].skip)
            continue;
        int st = finish_layer(a, &a->layers[i], &r->layers[r->nlayers++]);
        if (st) {
            roteq_analysis_result_free(r);
            return st;
        }
    }
    if (a->have_re && r->nlayers == 0) {
        roteq_analysis_result_free(r);
        return roteq_error_set(ROTEQ_EFORMAT, "%s: no layer matches --layers '%s'", a->cfg.source,
                               a->cfg.layers_regex);
    }
    /* Balance across layers: max/min of the layers' RMS angular update (the paper's central
     * observable: AdamW keeps it near 1, Adam with L2 does not). The theory covers
     * scale-invariant layers; `balance` leaves out those classified as not scale-invariant. */
    r->balance = spread(r, 1, 1);
    r->balance_pred = spread(r, 0, 1);
    r->balance_all = spread(r, 1, 0);
    r->balance_all_pred = spread(r, 0, 0);
    for (size_t i = 0; i < r->nlayers; i++)
        r->balance_layers += r->layers[i].scale_invariant != 0 &&
                             isfinite(r->layers[i].angular_update) &&
                             r->layers[i].angular_update > 0;
    *out = r;
    return ROTEQ_OK;
}

void roteq_analysis_result_free(roteq_analysis_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nlayers; i++) {
        free(r->layers[i].name);
        free(r->layers[i].per_neuron);
    }
    free(r->layers);
    free(r);
}
