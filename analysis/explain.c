/* explain.c - `roteq analyze --explain`: why a layer's angular update differs from the
 * random-walk prediction, from the trace's update statistics (docs/FORMATS.md §1: update_norm,
 * update_radial, update_cos_prev).
 *
 * With the step written as w_{t+1} = a w_t + eta d_t, a = 1 - eta*lambda, the squared norm obeys
 * ||w_{t+1}||^2 = a^2 ||w_t||^2 + eta^2 ||d_t||^2 + 2 a eta <w_t, d_t> exactly, so at stationarity
 *     (1 - a^2) E||w||^2 = eta^2 E||d||^2 + 2 a eta E<w,d> = eta^2 E||d||^2 kappa,
 * kappa = 1 + 2 a E<w,d> / (eta E||d||^2), and the angle of one step is eta ||d_perp|| / (a ||w||)
 * to first order. Hence the equilibrium angle conditional on the measured update is
 * sqrt((1 - a^2) phi / kappa), phi = E||d_perp||^2 / E||d||^2: the size of the update sets the
 * norm, not the angle. The random-walk model is the same balance with the model's update
 * (size U_m and kappa_m, read off theory's predicted norm and angle). The deviation of the
 * measured angle splits, in logarithms, into exact terms (analysis/README.md "Explain"):
 *     ln(U/U_m)                          update size against the model (at the predicted norm)
 *   - ln(U/U_m)                          the balance norm's response to it (cancels at balance)
 *   + 1/2 ln(phi) - 1/2 ln(kappa/kappa_c) the update's component along w beyond its correlation
 *   - 1/2 ln(kappa_c/kappa_m)            correlation with past updates beyond the model's
 *   + ln(n_c/n)                          the norm not at the balance of its update (not stationary)
 *   + residual                           the rest: measured RMS angle vs the first-order angle
 * with kappa_c = (1 + a rho)/(1 - a rho), the kappa of updates whose correlation decays
 * geometrically from the measured lag-1 cosine rho. Logarithmic terms are scaled by
 * deviation / ln(1 + deviation) so that the parts are fractions of the predicted angle adding up
 * to the measured deviation. */
#include "analysis_internal.h"

#include <math.h>

typedef struct {
    double w2, d2, wd, p2w2, rho;
    size_t n;
} window_updates;

/* Means over the final window's rows of its live neurons (those the measured angle is taken
 * over: a collapsed neuron's update is as large as a live one's while its norm is tiny). */
static window_updates gather(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                             const roteq_analysis_status *status)
{
    size_t W = a->cfg.window, RW = L->ring_w, ncp = 0;
    window_updates u = {0, 0, 0, 0, 0, 0};
    for (size_t i = 0; L->ring_upd && i < L->nneur; i++) {
        if (status[i] != ROTEQ_ANALYSIS_NEURON_OK)
            continue;
        const double *up = &L->ring_upd[i * ROTEQ_UPD_CH * RW];
        for (size_t ri = r0; ri < L->records; ri++) {
            size_t s = ri % W;
            double n = L->ring_norm[i * RW + s], d2 = up[ROTEQ_UPD_D2 * RW + s];
            double r = up[ROTEQ_UPD_RADIAL * RW + s], c = up[ROTEQ_UPD_COS_PREV * RW + s];
            if (n > 0 && isfinite(d2) && isfinite(r)) {
                u.w2 += n * n, u.d2 += d2, u.wd += r * n, u.p2w2 += fmax(0.0, d2 - r * r) / (n * n);
                u.n++;
            }
            if (n > 0 && isfinite(c))
                u.rho += c, ncp++;
        }
    }
    if (u.n) {
        double k = (double)u.n;
        u.w2 /= k, u.d2 /= k, u.wd /= k, u.p2w2 /= k;
    }
    u.rho = ncp ? u.rho / (double)ncp : DNAN;
    return u;
}

void roteq_analysis_explain_layer(const roteq_analysis *a, const roteq_layer *L, size_t r0,
                                  const roteq_analysis_status *status,
                                  roteq_analysis_layer_result *R)
{
    roteq_analysis_explain *E = &R->explain;
    *E = (roteq_analysis_explain){0,    DNAN, DNAN, DNAN, DNAN, DNAN, DNAN,
                                  DNAN, DNAN, DNAN, DNAN, DNAN, DNAN};
    window_updates u = gather(a, L, r0, status);
    double eta = R->lr, lam = R->weight_decay, Ap = R->eq_angle, Am = R->angular_update;
    if (!u.n || !(u.w2 > 0) || !(u.d2 > 0) || !(eta > 0) || !(lam >= 0) || !(eta * lam < 1))
        return;
    double aa = 1 - eta * lam, one_a2 = 1 - aa * aa;
    double n = sqrt(u.w2), U = sqrt(u.d2), kappa = 1 + 2 * aa * u.wd / (eta * u.d2);
    double phi = u.p2w2 * u.w2 / u.d2;
    E->valid = 1;
    E->radial_fraction = u.wd / (n * U);
    E->cos_prev = u.rho;
    if (one_a2 > 0 && kappa > 0) {
        E->cond_norm = eta * U * sqrt(kappa / one_a2);
        E->cond_angle = eta * sqrt(u.p2w2) * n / (aa * E->cond_norm);
    }
    if (!(Ap > 0) || !(Am > 0) || !(kappa > 0) || !(phi > 0) || !(one_a2 > 0))
        return;
    double kappa_m = one_a2 / (aa * aa * Ap * Ap);
    double kappa_c = kappa_m, total = log(Am / Ap);
    if (isfinite(u.rho) && fabs(aa * u.rho) < 1)
        kappa_c = (1 + aa * u.rho) / (1 - aa * u.rho);
    double l_size = 0, l_resp = 0;
    if (isfinite(R->eq_norm) && R->eq_norm > 0) {
        double Um = Ap * aa * R->eq_norm / eta;
        E->update_ratio = U / Um;
        l_size = log(U / Um);
        l_resp = -l_size;
    }
    double l_radial = 0.5 * log(phi) - 0.5 * log(kappa / kappa_c);
    double l_corr = -0.5 * log(kappa_c / kappa_m);
    double l_nonstat = log(E->cond_norm / n);
    double l_resid = total - (l_size + l_resp + l_radial + l_corr + l_nonstat);
    E->deviation = Am / Ap - 1;
    double scale = fabs(total) > 1e-12 ? E->deviation / total : 1.0;
    E->update_size = isfinite(E->update_ratio) ? l_size * scale : DNAN;
    E->norm_response = isfinite(E->update_ratio) ? l_resp * scale : DNAN;
    E->radial = l_radial * scale;
    E->correlation = isfinite(u.rho) ? l_corr * scale : DNAN;
    E->nonstationary = l_nonstat * scale;
    E->residual = l_resid * scale;
}
