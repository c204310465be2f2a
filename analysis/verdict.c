/* verdict.c - what a layer's numbers mean, in words a researcher can check: the verdict (with the
 * quantity that is off and by how much), whether the theory covers the layer at all
 * (scale-invariant or not, and why), from the final-window estimates of finish.c. Separate from
 * finish.c because these are rules of judgement, stated one by one in analysis/README.md
 * ("Verdict rules", "Which layers the theory covers"), not estimators. */
#include "analysis_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A prediction error counts as within the tolerance up to this many standard errors more. */
#define ROTEQ_VERDICT_Z 2.0
/* "converging": the error must shrink by this many standard errors of the change ... */
#define ROTEQ_TREND_Z 3.0
/* ... and by this fraction of itself (a far-off flat layer moves by noise only). */
#define ROTEQ_TREND_FRACTION 0.1
/* Blocks of the final window for the trend's standard error. */
#define ROTEQ_TREND_BLOCKS 8
/* grad_cos RMS times sqrt(dim), the RMS cosine of a random direction being 1: below LOW the layer
 * is scale-invariant, above HIGH it is not; between, it is not classified. */
#define ROTEQ_GRAD_COS_LOW  0.1
#define ROTEQ_GRAD_COS_HIGH 0.3

/* The worst |log(measured/predicted)| over the judged quantities, over records [from, to). */
static double block_error(const roteq_analysis *a, const roteq_layer *L, size_t from, size_t to,
                          int transient, int norm, int angle)
{
    size_t W = a->cfg.window;
    double sn = 0, spn = 0, sa = 0, spa = 0, e = DNAN;
    size_t nn = 0, na = 0;
    for (size_t ri = from; ri < to; ri++) {
        const roteq_rec *r = &L->recs[ri % W];
        double pn = transient ? r->pt_norm : r->ps_norm, pa = transient ? r->pt_angle : r->ps_angle;
        if (r->n)
            sn += r->mean_norm, spn += pn, nn++;
        if (r->na)
            sa += r->ms_angle, spa += pa * pa, na++;
    }
    if (norm && nn && sn > 0 && spn > 0)
        e = fabs(log(sn / spn));
    if (angle && na && sa > 0 && spa > 0) {
        double ea = 0.5 * fabs(log(sa / spa));
        e = isfinite(e) ? fmax(e, ea) : ea;
    }
    return e;
}

/* How the worst log error changes over the window: `drop` from its first half to its second,
 * with the standard error of that change from the scatter of ROTEQ_TREND_BLOCKS block errors
 * about their linear trend. */
typedef struct {
    int known;
    double e1, drop, se;
} trend;

/* Moving towards the prediction beyond noise: the error shrinks by more than tolerance/2, more
 * than ROTEQ_TREND_Z standard errors, and more than ROTEQ_TREND_FRACTION of itself. */
static int is_converging(const trend *t, double tol)
{
    return t->known && t->drop > tol / 2 && t->drop > ROTEQ_TREND_Z * t->se &&
           t->drop > ROTEQ_TREND_FRACTION * t->e1;
}

/* No change beyond noise either way (unknown for a window under 2 x ROTEQ_TREND_BLOCKS records). */
static int is_flat(const trend *t, double tol)
{
    return t->known && fabs(t->drop) <= fmax(tol / 2, ROTEQ_TREND_Z * t->se);
}

static trend window_trend(const roteq_analysis *a, const roteq_layer *L, size_t r0, int transient,
                          int norm, int angle)
{
    trend t = {0, DNAN, DNAN, DNAN};
    size_t Wn = L->records - r0, B = ROTEQ_TREND_BLOCKS;
    if (Wn < 2 * B)
        return t;
    double e1 = block_error(a, L, r0, r0 + Wn / 2, transient, norm, angle);
    double e2 = block_error(a, L, r0 + Wn / 2, L->records, transient, norm, angle);
    if (!isfinite(e1) || !isfinite(e2))
        return t;
    double y[ROTEQ_TREND_BLOCKS];
    for (size_t b = 0; b < B; b++) {
        y[b] = block_error(a, L, r0 + b * Wn / B, r0 + (b + 1) * Wn / B, transient, norm, angle);
        if (!isfinite(y[b]))
            return t;
    }
    double k = (double)B;
    /* Each half is the mean of B/2 blocks: the difference has variance 2 s^2 / (B/2). */
    t.known = 1;
    t.e1 = e1;
    t.drop = e1 - e2;
    t.se = sqrt(roteq_analysis_detrended_var(y, B) * 4.0 / k);
    return t;
}

static void append(char *buf, size_t cap, const char *fmt, double x)
{
    size_t n = strlen(buf);
    if (n < cap)
        snprintf(buf + n, cap - n, fmt, x);
}

/* "norm +13.0%, angle -1.0%": the errors the verdict rests on. */
static void describe(const roteq_analysis_layer_result *R, char *buf, size_t cap)
{
    buf[0] = '\0';
    /* Beyond +100000% a power of ten says as much as 150 digits would. */
    if (isfinite(R->rel_norm))
        append(buf, cap, fabs(R->rel_norm) < 1e3 ? "norm %+.1f%%" : "norm %+.2g%%",
               100 * R->rel_norm);
    if (isfinite(R->rel_angle) && R->angle_judged)
        append(buf, cap,
               fabs(R->rel_angle) < 1e3 ? (buf[0] ? ", angle %+.1f%%" : "angle %+.1f%%")
                                        : (buf[0] ? ", angle %+.2g%%" : "angle %+.2g%%"),
               100 * R->rel_angle);
    else if (isfinite(R->rel_angle) && R->gap > 1)
        append(buf, cap, buf[0] ? "; %.0f-step angle not judged" : "%.0f-step angle not judged",
               (double)R->gap);
    else if (isfinite(R->rel_angle))
        append(buf, cap, buf[0] ? "; k-step angles not judged" : "k-step angles not judged", 0.0);
    if (R->neurons && 10 * R->collapsed > R->neurons) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%zu/%zu collapsed", n ? ", " : "", R->collapsed, R->neurons);
    }
}

void roteq_analysis_verdict_decide(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                                   int transient, size_t nok, roteq_analysis_layer_result *R)
{
    double tol = a->cfg.tolerance;
    int use_norm = isfinite(R->rel_norm);
    int use_angle = isfinite(R->rel_angle) && R->angle_judged;
    double en = use_norm ? fabs(log1p(R->rel_norm)) : -1;
    double ea = use_angle ? fabs(log1p(R->rel_angle)) : -1;
    if (use_norm || use_angle) {
        int norm_worse = en > ea;
        R->off_quantity = norm_worse ? "norm" : "angle";
        R->ratio = 1 + (norm_worse ? R->rel_norm : R->rel_angle);
    }
    describe(R, R->detail, sizeof R->detail);
    if (nok == 0 || !isfinite(R->angular_update)) {
        R->verdict = ROTEQ_ANALYSIS_NO_DATA;
    } else if (!use_norm && !use_angle) {
        R->verdict = ROTEQ_ANALYSIS_NO_PREDICTION;
    } else {
        int in = 1;
        if (use_norm)
            in &= fabs(R->rel_norm) <=
                  tol + ROTEQ_VERDICT_Z * (isfinite(R->norm_se) ? R->norm_se : 0) / R->pred_norm;
        if (use_angle)
            in &= fabs(R->rel_angle) <=
                  tol + ROTEQ_VERDICT_Z * (isfinite(R->angle_se) ? R->angle_se : 0) / R->pred_angle;
        trend t = window_trend(a, L, r0, transient, use_norm, use_angle);
        if (in)
            R->verdict = ROTEQ_ANALYSIS_AT_EQUILIBRIUM;
        else if (is_converging(&t, tol))
            R->verdict = ROTEQ_ANALYSIS_CONVERGING;
        else if (R->scale_invariant == 0 ||
                 (R->scale_invariant < 0 && is_flat(&t, tol) && (R->ratio > 2.0 || R->ratio < 0.5)))
            R->verdict = ROTEQ_ANALYSIS_NOT_SCALE_INVARIANT;
        else
            R->verdict = ROTEQ_ANALYSIS_OFF_PREDICTION;
        if (R->verdict == ROTEQ_ANALYSIS_OFF_PREDICTION && !is_flat(&t, tol))
            append(R->detail, sizeof R->detail,
                   t.drop > 0 ? ", moving towards it" : ", moving away", 0.0);
    }
    if (R->verdict == ROTEQ_ANALYSIS_NOT_SCALE_INVARIANT && R->scale_invariant < 0) {
        R->scale_invariant = 0;
        snprintf(R->evidence, sizeof R->evidence,
                 "heuristic: settled at %s x%.3g of the prediction", R->off_quantity, R->ratio);
    }
    /* The settled step, for the band the verdict used (README: "Entered-and-stayed step"). Only
     * the final-window estimate confirms a layer stayed there, so only a layer at equilibrium has
     * one. */
    R->converged_at = -1;
    if (R->verdict == ROTEQ_ANALYSIS_AT_EQUILIBRIUM)
        R->converged_at = roteq_analysis_settled(
            transient ? &L->conv_tr : &L->conv_static,
            tol + ROTEQ_VERDICT_Z * (isfinite(R->norm_se) ? R->norm_se : 0) / R->pred_norm,
            use_angle
                ? tol + ROTEQ_VERDICT_Z * (isfinite(R->angle_se) ? R->angle_se : 0) / R->pred_angle
                : 0,
            use_norm, use_angle);
}

/* Name components that mark layers outside the theory's scope, by convention of common models:
 * embeddings (their rows are looked up, not normalised), output layers (logits, no normalisation
 * after them), and attention queries and keys (their scale sets the softmax temperature). */
static const char *name_kind(const char *name)
{
    static const struct {
        const char *part, *kind;
    } known[] = {
        {"embed", "embedding"},         {"embedding", "embedding"},   {"embeddings", "embedding"},
        {"wte", "embedding"},           {"wpe", "embedding"},         {"tok_emb", "embedding"},
        {"pos_emb", "embedding"},       {"lm_head", "output layer"},  {"head", "output layer"},
        {"classifier", "output layer"}, {"out", "output layer"},      {"output", "output layer"},
        {"logits", "output layer"},     {"fc_out", "output layer"},   {"q_proj", "attention query"},
        {"k_proj", "attention key"},    {"query", "attention query"}, {"key", "attention key"},
        {"wq", "attention query"},      {"wk", "attention key"},
    };
    const char *p = name;
    while (*p) {
        const char *e = strchr(p, '.');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strlen(known[i].part) == n && strncmp(p, known[i].part, n) == 0)
                return known[i].kind;
        p += n;
        if (*p)
            p++;
    }
    return NULL;
}

void roteq_analysis_classify(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                             roteq_analysis_layer_result *R)
{
    size_t W = a->cfg.window, n = 0;
    double s = 0;
    for (size_t ri = r0; ri < L->records; ri++) {
        const roteq_rec *r = &L->recs[ri % W];
        if (r->ngc)
            s += r->grad_cos2, n++;
    }
    if (n) {
        R->grad_cos_rms = sqrt(s / (double)n);
        if (R->dim == 0) {
            snprintf(R->evidence, sizeof R->evidence,
                     "grad_cos rms %.2g (dim unknown: not classified)", R->grad_cos_rms);
            return;
        }
        double random = 1 / sqrt((double)R->dim), x = R->grad_cos_rms / random;
        if (x < ROTEQ_GRAD_COS_LOW)
            R->scale_invariant = 1;
        else if (x > ROTEQ_GRAD_COS_HIGH)
            R->scale_invariant = 0;
        snprintf(R->evidence, sizeof R->evidence, "grad_cos rms %.2g (a random direction: %.2g)",
                 R->grad_cos_rms, random);
        return;
    }
    const char *kind = name_kind(R->name);
    if (kind) {
        R->scale_invariant = 0;
        snprintf(R->evidence, sizeof R->evidence, "heuristic: name says %s", kind);
        return;
    }
    snprintf(R->evidence, sizeof R->evidence, "no grad_cos column");
}
