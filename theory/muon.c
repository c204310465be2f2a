/* muon.c - Muon's rotational equilibrium: a weight matrix whose rows are scale-invariant
 * neurons, updated by the Newton-Schulz-orthogonalised momentum with decoupled weight decay
 * (torch.optim.Muon). Its own file because Muon is a matrix optimizer: its predictions need the
 * matrix shape and the spectrum the Newton-Schulz iteration sees, which the per-neuron table
 * does not know. The lag sums are Lion's (lion.c): Muon's Nesterov input is Lion's pre-sign
 * signal with beta1 = momentum^2, beta2 = momentum, its heavy-ball input Lion's with
 * beta1 = beta2 = momentum. Derivations: theory/README.md, "Muon". */
#include "roteq_muon.h"
#include "roteq_util.h"
#include "theory_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const roteq_muon_adjust_names[ROTEQ_MUON_ADJUST_COUNT] = {"original",
                                                                      "match_rms_adamw"};
const char *const roteq_muon_prediction_names[ROTEQ_MUON_PRED_COUNT] = {"best", "plain",
                                                                        "lionlike"};

roteq_muon_hparams roteq_muon_defaults(void)
{
    roteq_muon_hparams hp = {.lr = 1e-3,
                             .weight_decay = 0.1,
                             .momentum = 0.95,
                             .nesterov = 1,
                             .ns_steps = 5,
                             .eps = 1e-7,
                             .adjust = ROTEQ_MUON_ADJUST_ORIGINAL,
                             .rows = 0,
                             .cols = 0};
    return hp;
}

int roteq_muon_validate(const roteq_muon_hparams *hp)
{
    if (!(hp->lr > 0 && isfinite(hp->lr)))
        return roteq_error_set(ROTEQ_EINVAL, "lr must be positive, got %.17g", hp->lr);
    if (!(hp->weight_decay > 0 && isfinite(hp->weight_decay)))
        return roteq_error_set(ROTEQ_EINVAL,
                               "weight_decay must be positive (no equilibrium without it), got "
                               "%.17g",
                               hp->weight_decay);
    if (!(hp->lr * hp->weight_decay < 1))
        return roteq_error_set(ROTEQ_EINVAL, "lr*weight_decay must be below 1, got %.17g",
                               hp->lr * hp->weight_decay);
    if (!(hp->momentum >= 0 && hp->momentum < 1))
        return roteq_error_set(ROTEQ_EINVAL, "momentum must be in [0, 1), got %.17g", hp->momentum);
    if (hp->nesterov != 0 && hp->nesterov != 1)
        return roteq_error_set(ROTEQ_EINVAL, "nesterov must be 0 or 1, got %d", hp->nesterov);
    if (hp->ns_steps < 1 || hp->ns_steps > 99)
        return roteq_error_set(ROTEQ_EINVAL, "ns_steps must be in 1..99, got %d", hp->ns_steps);
    if (!(hp->eps >= 0 && isfinite(hp->eps)))
        return roteq_error_set(ROTEQ_EINVAL, "eps must be non-negative, got %.17g", hp->eps);
    if ((int)hp->adjust < 0 || hp->adjust >= ROTEQ_MUON_ADJUST_COUNT)
        return roteq_error_set(ROTEQ_EINVAL, "unknown adjust_lr %d", (int)hp->adjust);
    if (hp->rows < 1 || hp->cols < 1 || hp->rows * hp->cols < 2)
        return roteq_error_set(ROTEQ_EINVAL,
                               "shape must be ROWSxCOLS with at least 2 entries, "
                               "got %zux%zu",
                               hp->rows, hp->cols);
    if (hp->rows > 65536 || hp->cols > 65536)
        return roteq_error_set(ROTEQ_EINVAL, "shape %zux%zu: each side must be at most 65536",
                               hp->rows, hp->cols);
    return ROTEQ_OK;
}

int roteq_muon_shape_parse(const char *s, size_t *rows, size_t *cols)
{
    const char *x = s ? strchr(s, 'x') : NULL;
    char head[32];
    size_t r, c;
    if (x == NULL || x == s || (size_t)(x - s) >= sizeof head)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not ROWSxCOLS with positive sizes",
                               s ? s : "");
    snprintf(head, sizeof head, "%.*s", (int)(x - s), s);
    if (roteq_parse_size(head, &r) || roteq_parse_size(x + 1, &c) || r == 0 || c == 0)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not ROWSxCOLS with positive sizes", s);
    *rows = r, *cols = c;
    return ROTEQ_OK;
}

int roteq_muon_adjust_parse(const char *name, roteq_muon_adjust *out)
{
    for (int i = 0; i < ROTEQ_MUON_ADJUST_COUNT; i++)
        if (name && strcmp(name, roteq_muon_adjust_names[i]) == 0) {
            *out = (roteq_muon_adjust)i;
            return ROTEQ_OK;
        }
    return roteq_error_set(ROTEQ_ENOTFOUND,
                           "unknown adjust_lr '%s' (known: original, "
                           "match_rms_adamw)",
                           name ? name : "");
}

double roteq_muon_adjusted_lr(const roteq_muon_hparams *hp, double lr)
{
    double r = (double)hp->rows, c = (double)hp->cols;
    if (hp->adjust == ROTEQ_MUON_ADJUST_MATCH_RMS_ADAMW)
        return lr * 0.2 * sqrt(r > c ? r : c);
    return lr * sqrt(r / c > 1 ? r / c : 1.0);
}

double roteq_muon_ns_poly(double t, int ns_steps)
{
    for (int i = 0; i < ns_steps; i++) {
        double t2 = t * t;
        t = ROTEQ_MUON_NS_A * t + ROTEQ_MUON_NS_B * t * t2 + ROTEQ_MUON_NS_C * t * t2 * t2;
    }
    return t;
}

void roteq_muon_spectrum(size_t rows, size_t cols, int ns_steps, double *q_row, double *lin)
{
    /* The iteration runs on the p x q orientation (p = min side). For i.i.d. unit entries the
     * eigenvalues lambda of X X^T / q follow Marchenko-Pastur with ratio y = p/q on
     * [(1-sqrt y)^2, (1+sqrt y)^2]; a singular value of X is sqrt(q lambda) and, after division
     * by ||X||_F ~ sqrt(p q), the iteration sees t = sqrt(lambda/p). With
     * lambda = lo + (hi-lo)(1-cos th)/2 the density times d lambda is
     * ((hi-lo)/2)^2 sin^2 th / (2 pi y lambda) d th: smooth also at y = 1 (hard edge). */
    double p = (double)(rows < cols ? rows : cols), q = (double)(rows < cols ? cols : rows);
    double y = p / q, lo = (1 - sqrt(y)) * (1 - sqrt(y)), hi = (1 + sqrt(y)) * (1 + sqrt(y));
    const int n = 20000; /* midpoint rule; the integrand is smooth in th */
    double h = M_PI / n, mass = 0, e_phi2 = 0, e_phis = 0;
    for (int i = 0; i < n; i++) {
        double th = (i + 0.5) * h, s = sin(th);
        double lam = lo + (hi - lo) * (1 - cos(th)) / 2;
        double wgt = (hi - lo) * (hi - lo) / 4 * s * s / (2 * M_PI * y * lam) * h;
        double phi = roteq_muon_ns_poly(sqrt(lam / p), ns_steps);
        mass += wgt;
        e_phi2 += wgt * phi * phi;
        e_phis += wgt * phi * sqrt(lam / q);
    }
    e_phi2 /= mass, e_phis /= mass;
    /* E||O||_F^2 = p E phi^2 shared by the original rows; E<O, X> / (p q) per entry. */
    *q_row = p * e_phi2 / (double)rows;
    *lin = e_phis;
}

int roteq_muon_chaos(size_t rows, size_t cols, int ns_steps, double *w, int n)
{
    /* Free Mehler formula (README "Muon"): expand the odd scalar map x -> phi_K(x/sqrt(p)) on
     * the symmetrised singular-value law of X/sqrt(q) (Marchenko-Pastur, the nodes of
     * roteq_muon_spectrum) in its orthonormal polynomials P_k; then
     * E<O(X), O(Y)>/E||O||^2 = sum_k w_k rho^k with w_k = c_k^2/sum c^2. The measure is
     * symmetric, so P_k has the parity of k and the three-term recurrence has no diagonal
     * term; odd k only carry weight. Stieltjes procedure on the discretised measure. */
    double p = (double)(rows < cols ? rows : cols), q = (double)(rows < cols ? cols : rows);
    double y = p / q, lo = (1 - sqrt(y)) * (1 - sqrt(y)), hi = (1 + sqrt(y)) * (1 + sqrt(y));
    const int N = 20000;
    double *x = malloc(5 * (size_t)N * sizeof *x);
    if (!x)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for Muon's chaos weights");
    double *mu = x + N, *f = x + 2 * N, *P = x + 3 * N, *Pm = x + 4 * N, tot = 0, mass = 0;
    for (int i = 0; i < N; i++) {
        double th = (i + 0.5) * M_PI / N, s = sin(th);
        double lam = lo + (hi - lo) * (1 - cos(th)) / 2;
        mu[i] = s * s / lam; /* the density up to a constant factor */
        x[i] = sqrt(lam);
        f[i] = roteq_muon_ns_poly(sqrt(lam / p), ns_steps);
        mass += mu[i];
    }
    for (int i = 0; i < N; i++) {
        mu[i] /= mass;
        tot += mu[i] * f[i] * f[i];
    }
    /* P_k = (x P_{k-1} - b_{k-1} P_{k-2})/b_k: P holds the latest polynomial, Pm the one
     * before (first the unnormalised new one while its norm b_k is summed). */
    for (int i = 0; i < N; i++)
        Pm[i] = 0.0, P[i] = 1.0; /* P_{-1}, P_0 */
    double bprev = 0.0;
    for (int k = 1, j = 0; j < n; k++) {
        double bb = 0.0;
        for (int i = 0; i < N; i++) {
            double v = x[i] * P[i] - bprev * Pm[i];
            Pm[i] = v;
            bb += mu[i] * v * v;
        }
        double b = sqrt(bb), c = 0.0;
        for (int i = 0; i < N; i++) {
            double v = Pm[i] / b;
            Pm[i] = P[i], P[i] = v;
            c += mu[i] * f[i] * v;
        }
        bprev = b;
        if (k % 2 == 1)
            w[j++] = c * c / tot;
    }
    free(x);
    return ROTEQ_OK;
}

double roteq_muon_lag_corr(double rho, const double *w, int n)
{
    double f = 0.0, rk = rho;
    for (int j = 0; j < n; j++, rk *= rho * rho)
        f += w[j] * rk;
    return f;
}

/* S = 1 + 2 sum_i f(rho_i) d^i, R = sum_i f(rho_i) d^(i-1) with rho_i = rho1 b2^(i-1): per
 * chaos degree k the lag sum is geometric, rho1^k d/(1 - b2^k d). */
static void lag_sums(double rho1, double b2, const double *w, int n, double d, double *S, double *R)
{
    double s = 1.0, r = 0.0, r1k = rho1, b2k = b2;
    for (int j = 0; j < n; j++) {
        double g = w[j] * r1k / (1 - b2k * d);
        s += 2 * d * g;
        r += g;
        r1k *= rho1 * rho1, b2k *= b2 * b2;
    }
    *S = s;
    *R = r;
}

int roteq_muon_equilibrium_of(const roteq_muon_hparams *hp, roteq_muon_prediction which,
                              roteq_muon_equilibrium *out)
{
    int st = roteq_muon_validate(hp);
    if (st)
        return st;
    if ((int)which < 0 || which >= ROTEQ_MUON_PRED_COUNT)
        return roteq_error_set(ROTEQ_EINVAL, "unknown Muon prediction %d", (int)which);
    double eta = hp->lr, lam = hp->weight_decay, m = hp->momentum, d = 1 - eta * lam;
    double ea = roteq_muon_adjusted_lr(hp, eta), C = (double)hp->cols, Rr = (double)hp->rows;
    double q, lin;
    roteq_muon_spectrum(hp->rows, hp->cols, hp->ns_steps, &q, &lin);
    /* The update's input as Lion's pre-sign filter: Nesterov (1-m^2) g_t + m^2 buf_{t-1},
     * heavy ball (1-m) g_t + m buf_{t-1}; the buffer is an EMA with decay m. */
    double b1 = hp->nesterov ? m * m : m, b2 = m;
    double A, angle;
    out->q_row = q;
    switch (which) {
    case ROTEQ_MUON_PRED_PLAIN:
        /* Uncorrelated updates of size ea^2 q per row against decay 2 eta lambda. */
        A = ea * ea * q / (2 * eta * lam);
        angle = sqrt(2 * eta * lam);
        out->exact = m == 0.0;
        out->source = "derived here (theory/README.md): Muon plain, uncorrelated updates";
        break;
    case ROTEQ_MUON_PRED_LIONLIKE: {
        /* The paper's Lion argument: linearise O ~ lin * U / sigma_U and count each gradient's
         * total displacement through the filter (weights sum to 1). */
        double K = roteq_lion_K(b1, b2);
        A = ea * ea * lin * lin * C / (2 * eta * lam * K);
        angle = ea * sqrt(q) / sqrt(A);
        out->exact = 0;
        out->source = "derived here (theory/README.md): Muon Lion-style linearised momentum";
        break;
    }
    default: {
        double S, Rs, w[ROTEQ_MUON_CHAOS_TERMS];
        st = roteq_muon_chaos(hp->rows, hp->cols, hp->ns_steps, w, ROTEQ_MUON_CHAOS_TERMS);
        if (st)
            return st;
        lag_sums(roteq_lion_rho1(b1, b2), b2, w, ROTEQ_MUON_CHAOS_TERMS, d, &S, &Rs);
        A = ea * ea * q * S / (1 - d * d);
        angle = roteq_step_angle(A, d, -ea * ea * q * Rs, ea * ea * q);
        out->exact = m == 0.0;
        out->source = "derived here (theory/README.md): Muon best, lag sums of the "
                      "orthogonalised momenta";
        break;
    }
    }
    out->norm = sqrt(A);
    out->angular_update = angle;
    /* Rows are exchangeable and the row sums of <w, o> add up: the matrix sees the same
     * ratio of update to weight as its rows. */
    out->matrix_norm = sqrt(Rr * A);
    out->matrix_angular_update = angle;
    return ROTEQ_OK;
}

struct roteq_muon_transient {
    roteq_muon_hparams hp;
    double A, q, rho1, beta;
    double w[ROTEQ_MUON_CHAOS_TERMS];  /* chaos weights times rho1^k */
    double bk[ROTEQ_MUON_CHAOS_TERMS]; /* beta^k */
    double G[ROTEQ_MUON_CHAOS_TERMS];  /* sum_j eta_{t-j} (decays since) beta^(k(j-1)) */
};

roteq_muon_transient *roteq_muon_transient_alloc(const roteq_muon_hparams *hp, double init_norm)
{
    if (roteq_muon_validate(hp))
        return NULL;
    if (!(init_norm > 0 && isfinite(init_norm))) {
        roteq_error_set(ROTEQ_EINVAL, "init_norm must be positive, got %.17g", init_norm);
        return NULL;
    }
    roteq_muon_transient *tr = calloc(1, sizeof *tr);
    if (!tr) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory for a Muon transient");
        return NULL;
    }
    tr->hp = *hp;
    tr->A = init_norm * init_norm;
    double lin, m = hp->momentum;
    roteq_muon_spectrum(hp->rows, hp->cols, hp->ns_steps, &tr->q, &lin);
    tr->beta = m;
    tr->rho1 = roteq_lion_rho1(hp->nesterov ? m * m : m, m);
    if (roteq_muon_chaos(hp->rows, hp->cols, hp->ns_steps, tr->w, ROTEQ_MUON_CHAOS_TERMS)) {
        free(tr);
        return NULL;
    }
    double r = tr->rho1, b = tr->beta;
    for (int j = 0; j < ROTEQ_MUON_CHAOS_TERMS; j++) {
        tr->w[j] *= r, tr->bk[j] = b;
        r *= tr->rho1 * tr->rho1, b *= tr->beta * tr->beta;
    }
    return tr;
}

void roteq_muon_transient_free(roteq_muon_transient *tr)
{
    free(tr);
}

int roteq_muon_transient_step(roteq_muon_transient *tr, double lr, double weight_decay,
                              double *norm, double *angle)
{
    if (!(lr > 0 && weight_decay >= 0 && lr * weight_decay < 1))
        return roteq_error_set(ROTEQ_EINVAL, "lr %.17g, weight decay %.17g out of range", lr,
                               weight_decay);
    /* w_{t+1} = d w_t - e o_t; E<w_t, o_t> = -q sum_k w_k rho1^k G_k with
     * G_k(t+1) = e_t + beta^k d_t G_k(t) (README "Muon", transient). */
    double d = 1 - lr * weight_decay, e = roteq_muon_adjusted_lr(&tr->hp, lr), X = 0;
    for (int j = 0; j < ROTEQ_MUON_CHAOS_TERMS; j++)
        X += tr->w[j] * tr->G[j];
    X *= -tr->q;
    *angle = roteq_step_angle(tr->A, d, e * X, e * e * tr->q);
    tr->A = d * d * tr->A - 2 * d * e * X + e * e * tr->q;
    for (int j = 0; j < ROTEQ_MUON_CHAOS_TERMS; j++)
        tr->G[j] = e + tr->bk[j] * d * tr->G[j];
    *norm = sqrt(tr->A);
    return ROTEQ_OK;
}

const char *roteq_muon_formula(void)
{
    return ROTEQ_MUON_FORMULA;
}
