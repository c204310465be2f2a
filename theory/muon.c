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

/* kappa with kappa/asin(kappa) = w1 (decreasing from 1 at 0 to 2/pi at 1), by bisection. */
static double kappa_for(double w1)
{
    if (!(w1 < 1.0))
        return 0.0;
    if (w1 <= M_2_PI)
        return 1.0;
    double a = 0.0, b = 1.0;
    for (int i = 0; i < 200 && b - a > 1e-16; i++) {
        double m = 0.5 * (a + b);
        if (m / asin(m) > w1)
            a = m;
        else
            b = m;
    }
    return 0.5 * (a + b);
}

double roteq_muon_lag_corr(double rho, double w1)
{
    /* The arcsine law of a sign map, asin(kappa rho)/asin(kappa), with kappa set so that its
     * linear (first-chaos) share kappa/asin(kappa) is the update's own w1 (README "Muon"). */
    double kappa = kappa_for(w1);
    if (kappa == 0.0)
        return rho;
    return asin(kappa * rho) / asin(kappa);
}

/* S = 1 + 2 sum_k f(rho_k) d^k, R = sum_k f(rho_k) d^(k-1) with rho_k = rho1 b2^(k-1). */
static void lag_sums(double rho1, double b2, double w1, double d, double *S, double *R)
{
    double s = 1.0, r = 0.0, rho = rho1, dk = d;
    for (long k = 1; k <= 100000000L && rho > 0; k++) {
        double fk = roteq_muon_lag_corr(rho, w1);
        s += 2 * fk * dk;
        r += fk * dk / d;
        if (fk * dk < 1e-17 * s)
            break;
        rho *= b2;
        dk *= d;
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
        double S, Rs, w1 = lin * lin * C / q;
        lag_sums(roteq_lion_rho1(b1, b2), b2, w1, d, &S, &Rs);
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

const char *roteq_muon_formula(void)
{
    return "best: row norm^2 = eta_adj^2 q S/(1-d^2), S = 1 + 2 sum_k f(rho_k) d^k, f the "
           "arcsine-like lag law of the orthogonalised momentum, radial part removed from the "
           "angle [approx.; derived here]; plain: row norm^2 = eta_adj^2 q/(2 eta lambda), "
           "angle sqrt(2 eta lambda); lionlike: row norm^2 = eta_adj^2 lin^2 cols/(2 eta lambda "
           "K), angle eta_adj sqrt(q)/norm; q = E||o_row||^2 and lin from the Marchenko-Pastur "
           "spectrum through the Newton-Schulz quintic; eta_adj = adjusted lr";
}
