/* settle.c - per-record bookkeeping that the settled step and `--explain` need, kept apart from
 * the accumulator's parsing and storage (accum.c): the update statistics of a record, the noise
 * of the layer-level values from record to record, and the entered-and-stayed trackers.
 *
 * The settled step is the first record from which the trailing estimate (mean norm and RMS angle
 * over the last S records) stayed within the band |measured/predicted - 1| <= tolerance +
 * 3 SE/predicted, where SE is the standard error of that trailing estimate. A fixed 5-record band
 * is not enough: a 5-record RMS over a few dozen neurons of a real network moves by more than 10%
 * from record to record, so a layer at equilibrium would leave a 5% band again and again. So S
 * adapts (at least `smooth` records, more until 3 SE fit within the tolerance, at most the
 * window) and the band is widened by what noise remains. The noise comes from the records
 * themselves (half the mean squared successive difference, which a slow drift barely inflates)
 * and, for the angle, from the spread across neurons within a record, whichever is larger.
 * analysis/README.md states the rule. */
#include "analysis_internal.h"

#include <math.h>
#include <stdlib.h>

/* Standard errors of the trailing estimate widen the band by this many. */
#define ROTEQ_SETTLE_Z 3.0
/* Exponential mean of the successive differences over about this many records. */
#define ROTEQ_NOISE_SPAN 64

void roteq_analysis_record_row_updates(roteq_layer *L, const roteq_analysis_row *row)
{
    if (!(row->norm > 0))
        return;
    if ((row->has & ROTEQ_ROW_GRAD_COS) && isfinite(row->grad_cos)) {
        L->r_ngc++;
        L->r_grad_cos2 += row->grad_cos * row->grad_cos;
    }
}

void roteq_analysis_record_close_updates(const roteq_layer *L, roteq_rec *r)
{
    r->ngc = L->r_ngc;
    r->m4_angle = L->r_na ? L->r_sum_a4 / (double)L->r_na : DNAN;
    r->grad_cos2 = L->r_ngc ? L->r_grad_cos2 / (double)L->r_ngc : DNAN;
}

/* Trailing means over the last `smooth` closed records (the newest is at index records-1), with
 * the standard errors of the mean norm and of the RMS angle. */
typedef struct {
    double mn, ma, pn, pa, se_n, se_a;
} trailing;

/* Standard error of a mean over S consecutive records, from the kept records themselves: the
 * scatter of the means of the last B >= 4 blocks of S records about their linear trend (batch
 * means; slow fluctuations that successive differences miss count here). `angle` picks the mean
 * squared angle, else the mean norm. -1 when fewer than 4 blocks are kept. */
static double block_se(const roteq_analysis *a, const roteq_layer *L, size_t S, int angle)
{
    size_t W = a->cfg.window, avail = L->records < W ? L->records : W, B = avail / S;
    if (S == 0 || B < 4)
        return -1;
    double y[64];
    if (B > 64)
        B = 64;
    for (size_t b = 0; b < B; b++) {
        double sum = 0;
        size_t n = 0;
        for (size_t j = 0; j < S; j++) {
            const roteq_rec *r = &L->recs[(L->records - 1 - b * S - j) % W];
            if (angle ? r->na > 0 : r->n > 0)
                sum += angle ? r->ms_angle : r->mean_norm, n++;
        }
        if (n == 0)
            return -1;
        y[b] = sum / (double)n;
    }
    return sqrt(roteq_analysis_detrended_var(y, B));
}

/* Records in the trailing estimate: at least `smooth`, more until ROTEQ_SETTLE_Z standard errors
 * of the estimate fit in the tolerance (record-to-record noise first, then the block scatter of
 * the kept records), at most a quarter of the kept records. Also returns the block standard errors
 * of the mean norm and of the mean squared angle at that length (0 where unknown). */
static size_t trailing_length(const roteq_analysis *a, const roteq_layer *L, double *bse_n,
                              double *bse_ms)
{
    const roteq_noise *z = &L->noise;
    double need = (double)a->cfg.smooth, tol = a->cfg.tolerance;
    if (z->n > 1 && z->prev_norm > 0 && z->prev_ms > 0) {
        double rn = sqrt(z->v_norm) / z->prev_norm, ra = sqrt(z->v_ms) / (2 * z->prev_ms);
        double r = ROTEQ_SETTLE_Z * fmax(rn, ra) / tol;
        need = fmax(need, ceil(r * r));
    }
    size_t W = a->cfg.window, avail = L->records < W ? L->records : W;
    size_t S = need < (double)W ? (size_t)need : W;
    *bse_n = *bse_ms = 0;
    for (; S >= 1 && 4 * S <= avail; S *= 2) {
        double sn = block_se(a, L, S, 0), sm = block_se(a, L, S, 1);
        *bse_n = sn > 0 ? sn : 0;
        *bse_ms = sm > 0 ? sm : 0;
        double rn = z->prev_norm > 0 ? *bse_n / z->prev_norm : 0;
        double ra = z->prev_ms > 0 ? *bse_ms / (2 * z->prev_ms) : 0;
        if (ROTEQ_SETTLE_Z * fmax(rn, ra) <= tol)
            break;
    }
    return S < L->records ? S : L->records;
}

#define ROTEQ_TRAILING_EVERY 16

static size_t trailing_records(const roteq_analysis *a, roteq_layer *L, double *bse_n,
                               double *bse_ms)
{
    roteq_noise *z = &L->noise;
    if (z->s_len == 0 || L->records - z->s_at >= ROTEQ_TRAILING_EVERY) {
        z->s_len = trailing_length(a, L, &z->s_bse_n, &z->s_bse_ms);
        z->s_at = L->records;
    }
    *bse_n = z->s_bse_n;
    *bse_ms = z->s_bse_ms;
    return z->s_len < L->records ? z->s_len : L->records;
}

static trailing smoothed(const roteq_analysis *a, roteq_layer *L, int transient)
{
    double bse_n, bse_ms;
    size_t W = a->cfg.window, S = trailing_records(a, L, &bse_n, &bse_ms);
    double sn = 0, sa = 0, spn = 0, spa = 0, cross = 0;
    size_t nn = 0, na = 0, nsamp = 0;
    for (size_t j = 0; j < S; j++) {
        const roteq_rec *r = &L->recs[(L->records - 1 - j) % W];
        double p_n = transient ? r->pt_norm : r->ps_norm;
        double p_a = transient ? r->pt_angle : r->ps_angle;
        if (r->n) {
            sn += r->mean_norm;
            spn += p_n;
            nn++;
        }
        if (r->na) {
            sa += r->ms_angle;
            spa += p_a * p_a;
            na++;
            cross += fmax(0.0, r->m4_angle - r->ms_angle * r->ms_angle) * (double)r->na;
            nsamp += r->na;
        }
    }
    trailing t = {DNAN, DNAN, DNAN, DNAN, DNAN, DNAN};
    if (nn) {
        t.mn = sn / (double)nn;
        t.pn = spn / (double)nn;
        t.se_n = fmax(L->noise.n > 1 ? sqrt(L->noise.v_norm / (double)nn) : 0.0, bse_n);
    }
    if (na) {
        double ms = sa / (double)na;
        t.ma = sqrt(ms);
        t.pa = sqrt(spa / (double)na);
        /* Variance of the trailing mean of angle^2: record-to-record, or across the neurons and
         * steps it averages (as if independent), whichever is larger. */
        double v_time = L->noise.n > 1 ? L->noise.v_ms / (double)na : 0.0;
        double v_cross = nsamp ? cross / (double)nsamp / (double)nsamp : 0.0;
        double v = fmax(fmax(v_time, v_cross), bse_ms * bse_ms);
        t.se_a = ms > 0 ? sqrt(v) / (2 * t.ma) : 0.0;
    }
    return t;
}

/* Excess values are stored as y = log1p(x / ROTEQ_EXCEED_UNIT), merged within ROTEQ_EXCEED_MERGE.
 */
#define ROTEQ_EXCEED_UNIT  1e-3
#define ROTEQ_EXCEED_MERGE 0.01

static double excess_y(double x)
{
    return log1p(fmin(fmax(x, 0.0), 1e12) / ROTEQ_EXCEED_UNIT);
}

static void push(roteq_exceed_stack *s, long step, double x)
{
    if (!s->any) {
        s->any = 1;
        s->first = step;
    }
    if (s->n && s->e[s->n - 1].next < 0)
        s->e[s->n - 1].next = step; /* the top is always the previous record */
    double y = excess_y(x);
    while (s->n && s->e[s->n - 1].y <= y)
        s->n--; /* no longer above every later value's level */
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        roteq_exceed *e = realloc(s->e, cap * sizeof *e);
        if (e == NULL) {
            s->lost = 1;
            return;
        }
        s->e = e;
        s->cap = cap;
    }
    s->e[s->n++] = (roteq_exceed){step, -1, y};
}

/* One record's trailing estimate: the excess of each predicted quantity. */
static void track(roteq_tracker *tk, long step, const trailing *t)
{
    if (isfinite(t->pn) && t->pn > 0 && isfinite(t->mn))
        push(&tk->q[0], step, fabs(t->mn / t->pn - 1.0) - ROTEQ_SETTLE_Z * t->se_n / t->pn);
    if (isfinite(t->pa) && t->pa > 0 && isfinite(t->ma))
        push(&tk->q[1], step, fabs(t->ma / t->pa - 1.0) - ROTEQ_SETTLE_Z * t->se_a / t->pa);
}

/* The record after the latest one whose excess may be above the band (its level at or above the
 * band's: at most 1% of resolution, on the late side); `first` if none; -1 if that is the last
 * record (never settled). */
static long settled_one(const roteq_exceed_stack *s, double band)
{
    double yb = excess_y(band);
    for (size_t k = s->n; k-- > 0;)
        if (s->e[k].y >= yb)
            return s->e[k].next;
    return s->first;
}

long roteq_analysis_settled(const roteq_tracker *t, double band_norm, double band_angle,
                            int use_norm, int use_angle)
{
    long at = -2;
    const double band[2] = {band_norm, band_angle};
    const int use[2] = {use_norm, use_angle};
    for (int q = 0; q < 2; q++) {
        const roteq_exceed_stack *s = &t->q[q];
        if (!use[q] || !s->any)
            continue;
        long k = s->lost ? -1 : settled_one(s, band[q]);
        if (k < 0)
            return -1;
        at = k > at ? k : at;
    }
    return at < 0 ? -1 : at;
}

void roteq_analysis_tracker_free(roteq_tracker *t)
{
    for (int q = 0; q < 2; q++)
        free(t->q[q].e);
}

static void update_noise(roteq_noise *z, const roteq_rec *r)
{
    if (!r->n || !r->na)
        return;
    if (z->n > 0) {
        double dn = r->mean_norm - z->prev_norm, dm = r->ms_angle - z->prev_ms;
        double w = z->n < ROTEQ_NOISE_SPAN ? 1.0 / (double)z->n : 1.0 / ROTEQ_NOISE_SPAN;
        z->v_norm += w * (0.5 * dn * dn - z->v_norm);
        z->v_ms += w * (0.5 * dm * dm - z->v_ms);
    }
    z->n++;
    z->prev_norm = r->mean_norm;
    z->prev_ms = r->ms_angle;
}

void roteq_analysis_layer_track(const roteq_analysis *a, roteq_layer *L)
{
    const roteq_rec *r = &L->recs[(L->records - 1) % a->cfg.window];
    update_noise(&L->noise, r);
    trailing t = smoothed(a, L, 0);
    track(&L->conv_static, r->step, &t);
    t = smoothed(a, L, 1);
    track(&L->conv_tr, r->step, &t);
}
