/* finish.c - from the accumulator's bounded state to per-layer results: the final-window
 * estimates (mean norm, RMS angular update over neurons and steps), dead and collapsed neurons,
 * homogeneity across neurons, the prediction that applies (static, transient or per-step
 * equilibrium), the convergence step and rate, and the verdict. The rules are stated in
 * analysis/README.md; this file implements exactly those. */
#include "analysis_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const roteq_analysis_status_names[3] = {"ok", "dead", "collapsed"};
const char *const roteq_analysis_verdict_names[6] = {
    "no prediction",  "at equilibrium",           "converging",
    "off-prediction", "not scale-invariant-like", "no data"};

double roteq_analysis_quantile_sorted(const double *x, size_t n, double q);

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* A neuron whose window-mean norm is below this fraction of the layer's median is collapsed. */
#define ROTEQ_COLLAPSE_FRACTION 0.01

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

/* Rate of the linearised mean-square-norm recurrence at equilibrium, derived in
 * analysis/README.md: decoupled decay with a norm-independent update size contracts the deviation
 * by (1 - eta*lambda)^2 per step; plain SGD with L2 by 2(1 - eta*lambda)^2 - 1. */
static double analytic_rate(const roteq_optimizer_type *opt, double lr, double wd)
{
    if (opt == NULL || !(lr > 0) || !(wd > 0) || lr * wd >= 0.5)
        return DNAN;
    if (opt->flags & ROTEQ_OPTF_ROTATIONAL)
        return DNAN; /* the norm is held constant: no approach to fit */
    if (opt->flags & ROTEQ_OPTF_DECOUPLED)
        return -2.0 * log1p(-lr * wd);
    if (opt->id == ROTEQ_OPT_SGD) {
        double A = (1 - lr * wd) * (1 - lr * wd);
        return -log(2 * A - 1);
    }
    return DNAN;
}

static double rel(double m, double p)
{
    return isfinite(m) && isfinite(p) && p > 0 ? m / p - 1.0 : DNAN;
}

/* Largest |relative error| among the quantities that have a prediction; DNAN if none. */
static double worst(double rn, double ra)
{
    double e = DNAN;
    if (isfinite(rn))
        e = fabs(rn);
    if (isfinite(ra))
        e = isfinite(e) ? fmax(e, fabs(ra)) : fabs(ra);
    return e;
}

/* Relative error over records [from, to) of the window, from the layer-level record stats. */
static double half_error(const roteq_analysis *a, const roteq_layer *L, size_t from, size_t to,
                         int transient)
{
    size_t W = a->cfg.window;
    double sn = 0, spn = 0, sa = 0, spa = 0;
    size_t nn = 0, na = 0;
    for (size_t ri = from; ri < to; ri++) {
        const roteq_rec *r = &L->recs[ri % W];
        double pn = transient ? r->pt_norm : r->ps_norm, pa = transient ? r->pt_angle : r->ps_angle;
        if (r->n) {
            sn += r->mean_norm;
            spn += pn;
            nn++;
        }
        if (r->na) {
            sa += r->ms_angle;
            spa += pa * pa;
            na++;
        }
    }
    double rn = nn ? rel(sn / (double)nn, spn / (double)nn) : DNAN;
    double ra = na ? rel(sqrt(sa / (double)na), sqrt(spa / (double)na)) : DNAN;
    return worst(rn, ra);
}

static int finish_layer(roteq_analysis *a, roteq_layer *L, roteq_analysis_layer_result *R)
{
    int st = roteq_analysis_layer_close_record(a, L);
    if (st)
        return st;
    const roteq_analysis_meta *m = a->cfg.meta;
    size_t W = a->cfg.window, N = L->nneur;
    double tol = a->cfg.tolerance;
    R->name = strdup(L->name);
    if (R->name == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    R->dim = L->dim;
    R->neurons = N;
    R->records = L->records;
    R->converged_at = -1;
    R->pred_norm = R->pred_angle = R->norm = R->angular_update = DNAN;
    R->rel_norm = R->rel_angle = R->rate = R->pred_rate = DNAN;
    R->cv = R->q05 = R->q50 = R->q95 = R->ratio = DNAN;
    R->norm_se = R->angle_se = DNAN;
    R->lr = R->weight_decay = DNAN;
    R->prediction = "none";
    R->verdict = ROTEQ_ANALYSIS_NO_DATA;
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

    double *mean_norm = malloc((N ? N : 1) * sizeof *mean_norm);
    double *au = malloc((N ? N : 1) * sizeof *au);
    roteq_analysis_status *status = malloc((N ? N : 1) * sizeof *status);
    double *tmp = malloc((N ? N : 1) * sizeof *tmp);
    if (!mean_norm || !au || !status || !tmp) {
        free(mean_norm), free(au), free(status), free(tmp);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    double *sum_n = tmp; /* reused below for the median and the quantiles */
    size_t nmed = 0;
    for (size_t i = 0; i < N; i++) {
        double sn = 0, sa = 0;
        size_t cn = 0, ca = 0;
        int zero_norm = 0, moved = 0;
        for (size_t ri = r0; ri < L->records; ri++) {
            size_t s = ri % W;
            double nv = L->ring_norm[i * W + s], av = L->ring_angle[i * W + s];
            if (!isnan(nv)) {
                sn += nv;
                cn++;
                zero_norm |= nv == 0.0;
            }
            if (!isnan(av)) {
                sa += av * av;
                ca++;
                moved |= av != 0.0;
            }
        }
        mean_norm[i] = cn ? sn / (double)cn : DNAN;
        au[i] = ca ? sqrt(sa / (double)ca) : DNAN;
        if (cn && zero_norm)
            status[i] = ROTEQ_ANALYSIS_NEURON_COLLAPSED;
        else if (!cn || !ca || !moved)
            status[i] = ROTEQ_ANALYSIS_NEURON_DEAD;
        else {
            status[i] = ROTEQ_ANALYSIS_NEURON_OK;
            sum_n[nmed++] = mean_norm[i];
        }
    }
    qsort(sum_n, nmed, sizeof *sum_n, cmp_double);
    double median = roteq_analysis_quantile_sorted(sum_n, nmed, 0.5);
    for (size_t i = 0; i < N; i++)
        if (status[i] == ROTEQ_ANALYSIS_NEURON_OK &&
            mean_norm[i] < ROTEQ_COLLAPSE_FRACTION * median)
            status[i] = ROTEQ_ANALYSIS_NEURON_COLLAPSED;

    /* Pooled estimates over the ok neurons' window values (see README: "Estimators"). */
    double pn_sum = 0, pa_sum = 0;
    size_t pn_cnt = 0, pa_cnt = 0, nok = 0;
    for (size_t i = 0; i < N; i++) {
        if (status[i] == ROTEQ_ANALYSIS_NEURON_DEAD)
            R->dead++;
        else if (status[i] == ROTEQ_ANALYSIS_NEURON_COLLAPSED)
            R->collapsed++;
        if (status[i] != ROTEQ_ANALYSIS_NEURON_OK)
            continue;
        for (size_t ri = r0; ri < L->records; ri++) {
            size_t s = ri % W;
            double nv = L->ring_norm[i * W + s], av = L->ring_angle[i * W + s];
            if (!isnan(nv))
                pn_sum += nv, pn_cnt++;
            if (!isnan(av))
                pa_sum += av * av, pa_cnt++;
        }
        tmp[nok++] = au[i];
    }
    R->norm = pn_cnt ? pn_sum / (double)pn_cnt : DNAN;
    R->angular_update = pa_cnt ? sqrt(pa_sum / (double)pa_cnt) : DNAN;
    if (nok) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < nok; i++)
            s += tmp[i];
        double mu = s / (double)nok;
        for (size_t i = 0; i < nok; i++)
            ss += (tmp[i] - mu) * (tmp[i] - mu);
        R->cv = nok > 1 && mu > 0 ? sqrt(ss / (double)(nok - 1)) / mu : DNAN;
        qsort(tmp, nok, sizeof *tmp, cmp_double);
        R->q05 = roteq_analysis_quantile_sorted(tmp, nok, 0.05);
        R->q50 = roteq_analysis_quantile_sorted(tmp, nok, 0.50);
        R->q95 = roteq_analysis_quantile_sorted(tmp, nok, 0.95);
    }
    /* Standard errors with each ok neuron's window average as one sample (neurons are the
     * independent units; steps of one neuron are correlated): SE of the mean norm, and of the
     * RMS angle by the delta method on the mean of per-neuron mean squares. */
    if (nok > 1) {
        double sn = 0, ssn = 0, sa = 0, ssa = 0;
        for (size_t i = 0; i < N; i++) {
            if (status[i] != ROTEQ_ANALYSIS_NEURON_OK)
                continue;
            double a2 = au[i] * au[i];
            sn += mean_norm[i], ssn += mean_norm[i] * mean_norm[i];
            sa += a2, ssa += a2 * a2;
        }
        double k = (double)nok, mn = sn / k, ma = sa / k;
        double vn = fmax(0.0, (ssn - k * mn * mn) / (k - 1)),
               va = fmax(0.0, (ssa - k * ma * ma) / (k - 1));
        R->norm_se = sqrt(vn / k);
        R->angle_se = ma > 0 ? sqrt(va / k) / (2 * sqrt(ma)) : DNAN;
    }

    /* Which prediction applies: the static closed form with constant hyperparameters, the
     * transient when lr or weight decay follow a schedule (or, where theory has no transient,
     * the equilibrium at each step's values). */
    int transient = 0;
    if (m->opt) {
        R->scheduled = L->lr_max > L->lr_min || L->wd_max > L->wd_min;
        if (R->scheduled) {
            transient = 1; /* pt_* hold the static values where the transient is unavailable */
            R->prediction = L->tr_state > 0 ? "transient" : "instantaneous";
        } else {
            R->prediction = "static";
        }
        double sn = 0, sa = 0;
        for (size_t ri = r0; ri < L->records; ri++) {
            const roteq_rec *r = &L->recs[ri % W];
            double pn = transient ? r->pt_norm : r->ps_norm;
            double pa = transient ? r->pt_angle : r->ps_angle;
            sn += pn;
            sa += pa * pa;
        }
        R->pred_norm = isfinite(sn) ? sn / (double)Wn : DNAN;
        R->pred_angle = isfinite(sa) ? sqrt(sa / (double)Wn) : DNAN;
        if (!isfinite(R->pred_norm) && !isfinite(R->pred_angle))
            R->prediction = "none";
    }
    R->rel_norm = rel(R->norm, R->pred_norm);
    R->rel_angle = rel(R->angular_update, R->pred_angle);
    roteq_tracker *t = transient ? &L->conv_tr : &L->conv_static;
    R->converged_at = t->candidate;

    /* Convergence rates of the mean square norm. */
    /* m_inf: the window mean of the layer's mean square norm (the fitted quantity itself). */
    double m_inf = 0;
    for (size_t ri = r0; ri < L->records; ri++)
        m_inf += L->recs[ri % W].msq_norm;
    m_inf /= (double)Wn;
    R->rate = fit_rate(L->traj, L->ntraj, 0, m_inf, tol);
    if (m->opt && !R->scheduled) {
        if (L->tr_state > 0) {
            double pm_inf =
                isfinite(R->pred_norm) ? R->pred_norm * R->pred_norm : L->traj[L->ntraj - 1].pt_msq;
            R->pred_rate = fit_rate(L->traj, L->ntraj, 1, pm_inf, tol);
        } else if (isfinite(R->rate)) {
            R->pred_rate = analytic_rate(m->opt, last->lr, last->wd);
        }
    }

    /* Verdict (README: "Verdict rules"). */
    double e = worst(R->rel_norm, R->rel_angle);
    R->ratio = isfinite(R->rel_angle)  ? R->rel_angle + 1
               : isfinite(R->rel_norm) ? R->rel_norm + 1
                                       : DNAN;
    if (nok == 0 || !isfinite(R->angular_update))
        R->verdict = ROTEQ_ANALYSIS_NO_DATA;
    else if (!isfinite(e))
        R->verdict = ROTEQ_ANALYSIS_NO_PREDICTION;
    else if (e <= tol)
        R->verdict = ROTEQ_ANALYSIS_AT_EQUILIBRIUM;
    else {
        size_t h = Wn / 2;
        double e1 = Wn >= 4 ? half_error(a, L, r0, r0 + h, transient) : DNAN;
        double e2 = Wn >= 4 ? half_error(a, L, r0 + h, L->records, transient) : DNAN;
        if (isfinite(e1) && isfinite(e2) && e1 - e2 > tol / 2)
            R->verdict = ROTEQ_ANALYSIS_CONVERGING;
        else if (isfinite(R->ratio) && (R->ratio > 2.0 || R->ratio < 0.5))
            R->verdict = ROTEQ_ANALYSIS_NOT_SCALE_INVARIANT;
        else
            R->verdict = ROTEQ_ANALYSIS_OFF_PREDICTION;
    }
    /* The streaming tracker can open the band on the last few records (noise, or a layer
     * passing through); only the final-window estimate confirms a layer stayed there, so a
     * layer not at equilibrium has no entered-and-stayed step. */
    if (R->verdict != ROTEQ_ANALYSIS_AT_EQUILIBRIUM)
        R->converged_at = -1;

    if (a->cfg.per_neuron) {
        R->per_neuron = malloc((N ? N : 1) * sizeof *R->per_neuron);
        if (R->per_neuron == NULL) {
            free(mean_norm), free(au), free(status), free(tmp);
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < N; i++)
            R->per_neuron[i] = (roteq_analysis_neuron){mean_norm[i], au[i], R->pred_norm,
                                                       R->pred_angle, status[i]};
    }
    free(mean_norm), free(au), free(status), free(tmp);
    return ROTEQ_OK;
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
    r->optimizer = a->cfg.meta->opt ? a->cfg.meta->opt->name : NULL;
    r->tolerance = a->cfg.tolerance;
    r->window = a->cfg.window;
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
     * observable: AdamW keeps it near 1, Adam with L2 does not). */
    double mx = -((double)INFINITY), mn = ((double)INFINITY), pmx = -((double)INFINITY),
           pmn = ((double)INFINITY);
    for (size_t i = 0; i < r->nlayers; i++) {
        double v = r->layers[i].angular_update, p = r->layers[i].pred_angle;
        if (isfinite(v) && v > 0)
            mx = fmax(mx, v), mn = fmin(mn, v);
        if (isfinite(p) && p > 0)
            pmx = fmax(pmx, p), pmn = fmin(pmn, p);
    }
    r->balance = mn <= mx ? mx / mn : DNAN;
    r->balance_pred = pmn <= pmx ? pmx / pmn : DNAN;
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
