/* lion.c - the Lion family (Chen et al. 2023, Algorithm 2, decoupled weight decay as in the
 * published code). Coordinate granularity; the norm needs the dimension (every coordinate moves
 * by eta). Three predictions: `best` (arcsine lag sums, derived here), the paper's, and the
 * plain uncorrelated form.
 *
 * The lag structure under the random-walk model: per coordinate, c_t = beta1*m_{t-1} +
 * (1-beta1)*g_t is a fixed linear filter of i.i.d. Gaussian gradients, so c_t and c_{t+k} are
 * jointly Gaussian and the arcsine law gives the correlation of their signs exactly:
 * E[sign c_t sign c_{t+k}] = (2/pi) asin(rho_k). Derivations: theory/README.md ("Lion").
 *
 * Theory part without ROTEQ_KERNEL_SUFFIX, sim part with it (families/README.md). */
#ifndef ROTEQ_KERNEL_SUFFIX
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>

#define B(x)    ROTEQ_HP_BIT(ROTEQ_HP_##x)
#define LION_HP (B(LR) | B(WEIGHT_DECAY) | B(BETA1) | B(BETA2))
#define NONE    ((double)NAN)

extern const roteq_family roteq_family_lion;

/* Defaults of Lion's published code (lr 1e-4, betas 0.9/0.99); its default weight decay 0 has
 * no equilibrium: required. */
const roteq_optimizer_type roteq_lion = {
    .name = "lion",
    .description = "Lion, sign update with decoupled weight decay (Chen et al. 2023)",
    .formula = "best: lag sums of (2/pi)*asin(rho_k) discounted by (1-eta*lambda)^k, radial "
               "part removed [approx.; derived here]; paper: angle sqrt(pi*eta*lambda*K), "
               "K = (1-beta1)^2 + beta1^2*(1-beta2)/(1+beta2), norm eta*sqrt(C)/angle; plain: "
               "norm sqrt(eta*C/(2*lambda)), angle sqrt(2*eta*lambda)",
    .hparams = LION_HP,
    .required = B(WEIGHT_DECAY),
    .defaults = {.lr = 1e-4, .weight_decay = NONE, .beta1 = 0.9, .beta2 = 0.99},
    .flags = ROTEQ_OPTF_DECOUPLED | ROTEQ_OPTF_SIGN,
    .base = &roteq_lion,
    .family = &roteq_family_lion,
    .needs = ROTEQ_NEED_DIM,
    .predictions = ROTEQ_PRED_COUNT,
    .example_lr = 1e-3,
    .example_wd = 1.0,
};

/* Lion's pre-sign signal with i.i.d. unit gradients has stationary variance K (the paper's K):
 * (1-beta1)^2 from g_t, beta1^2 (1-beta2)^2/(1-beta2^2) from the momentum. */
double roteq_lion_K(double beta1, double beta2)
{
    return (1 - beta1) * (1 - beta1) + beta1 * beta1 * (1 - beta2) / (1 + beta2);
}

/* Lag-1 correlation: Cov(c_{t+1}, c_t) = beta1 (1-beta2) [(1-beta1) + beta1 beta2/(1+beta2)];
 * lag k adds a factor beta2^(k-1). */
double roteq_lion_rho1(double beta1, double beta2)
{
    double K = roteq_lion_K(beta1, beta2);
    if (!(K > 0))
        return 0.0;
    return beta1 * (1 - beta2) * ((1 - beta1) + beta1 * beta2 / (1 + beta2)) / K;
}

/* Coefficients of asin(x) = sum_n asin_coef(n) x^(2n+1): (2n)! / (4^n (n!)^2 (2n+1)); the
 * ratio of successive central binomial terms is (2n-1)/(2n). */
#define ASIN_TERMS 48
static double asin_coef(int n)
{
    double c = 1.0;
    for (int i = 1; i <= n; i++)
        c *= (2.0 * i - 1) / (2.0 * i);
    return c / (2.0 * n + 1);
}

/* Equilibrium with decay factor d = 1 - eta*lambda, summed over lags with the arcsine law:
 * *S = 1 + 2 sum_k r_k d^k and *R = sum_{k>=1} r_k d^(k-1), r_k = (2/pi) asin(rho_k). */
static void lag_sums(double beta1, double beta2, double d, double *S, double *R)
{
    double rho1 = roteq_lion_rho1(beta1, beta2);
    double s = 1.0, r = 0.0;
    double rho = rho1, dk = d; /* rho_k and d^k at lag k */
    long k;
    /* Direct sum while the terms matter; the arcsine is evaluated exactly at every lag. */
    for (k = 1; k <= 20000000L; k++) {
        double rk = M_2_PI * asin(rho);
        s += 2 * rk * dk;
        r += rk * dk / d;
        if (rk * dk < 1e-17 * s)
            break;
        rho *= beta2;
        dk *= d;
    }
    if (k > 20000000L && rho > 0) {
        /* Geometric tail with asin x ~ x (rho is small this far out). */
        double tail = M_2_PI * rho * dk / (1 - beta2 * d);
        s += 2 * tail;
        r += tail / d;
    }
    *S = s;
    *R = r;
}

static void predict(const roteq_hparams *hp, double C, roteq_prediction which,
                    roteq_equilibrium *out)
{
    double eta = hp->lr, lam = hp->weight_decay, b1 = hp->beta1, b2 = hp->beta2;
    double size = eta * sqrt(C); /* ||eta*sign(c)||: every coordinate moves by eta */
    if (which == ROTEQ_PRED_PLAIN) {
        /* Uncorrelated updates of fixed size eta*sqrt(C): the AdamW argument with beta1 = 0. */
        double a = sqrt(2 * eta * lam);
        roteq_theory_set(out, size / a, a, b1 == 0.0 && b2 == 0.0,
                         ROTEQ_SRC_DERIVED " (Lion plain)");
    } else if (which == ROTEQ_PRED_PAPER) {
        double a = sqrt(M_PI * eta * lam * roteq_lion_K(b1, b2));
        roteq_theory_set(out, size / a, a, 0, ROTEQ_SRC_PAPER " (Lion row)");
    } else {
        /* Lag sums of the sign autocorrelation, discounted by d^k, and the radial part of the
         * update (a sign update correlated with past updates is not orthogonal to w). With
         * w = -eta sum_n d^n u_{t-1-n}: E||w||^2 = eta^2 C S/(1-d^2), E<w,u> = -eta C R. */
        double d = 1 - eta * lam, S, R;
        lag_sums(b1, b2, d, &S, &R);
        double A = eta * eta * C * S / (1 - d * d);
        double X = -eta * C * R;
        double angle = roteq_step_angle(A, d, eta * X, eta * eta * C);
        roteq_theory_set(out, C > 0 ? sqrt(A) : (double)NAN, angle, 0,
                         ROTEQ_SRC_DERIVED " (Lion best: arcsine lag sums)");
    }
}

static int equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp, double C, double G,
                       roteq_prediction which, roteq_equilibrium *out)
{
    (void)opt, (void)G;
    /* The angles do not depend on C: compute at C = 1 when it is unknown. */
    predict(hp, isnan(C) ? 1.0 : C, which, out);
    if (isnan(C))
        out->norm = (double)NAN;
    return ROTEQ_OK;
}

/* ---- Transient ---- */

/* Lags up to this many are summed with the exact arcsine; beyond, a power series. */
#define LAG_MAX 65536

/* Var of the momentum per coordinate, and the lag history (ring of the last `lags` steps:
 * weight eta_s * prod d, and q_s) plus the series tail for older lags. */
struct roteq_transient_priv {
    double Vm;
    size_t lags, nhist, head;
    double *hw, *hq;
    double tail[ASIN_TERMS];
    double coef[ASIN_TERMS], b2pow[ASIN_TERMS]; /* asin coefficients, beta2^(2n+1) */
};

static void transient_free(roteq_transient *tr)
{
    if (tr->priv) {
        free(tr->priv->hw);
        free(tr->priv->hq);
        free(tr->priv);
        tr->priv = NULL;
    }
}

static int transient_init(roteq_transient *tr)
{
    /* Exact arcsine for lags where the stationary correlation exceeds 1/2, a power series
     * (48 terms: error < 1e-15 for rho <= 1/2) beyond. */
    const roteq_hparams *hp = &tr->hp;
    roteq_transient_priv *p = calloc(1, sizeof *p);
    if (p == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    tr->priv = p;
    double rho1 = roteq_lion_rho1(hp->beta1, hp->beta2);
    size_t L = 1;
    double r = rho1;
    while (r > 0.5 && L < LAG_MAX)
        r *= hp->beta2, L++;
    p->lags = L;
    for (int n = 0; n < ASIN_TERMS; n++) {
        p->coef[n] = asin_coef(n);
        p->b2pow[n] = pow(hp->beta2, 2.0 * n + 1);
    }
    p->hw = calloc(L, sizeof *p->hw);
    p->hq = calloc(L, sizeof *p->hq);
    if (p->hw == NULL || p->hq == NULL) {
        transient_free(tr);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    return ROTEQ_OK;
}

/* One step of Lion. X = E<w_t, u_t> = -C sum_j eta_{t-j} prod(d) (2/pi) asin(rho(t, t-j)),
 * with rho(t, s) = beta2^(t-s-1) p_t q_s factorised (README, "Lion transient"). */
static double transient_step(roteq_transient *tr, double eta, double lam)
{
    const roteq_hparams *hp = &tr->hp;
    roteq_transient_priv *P = tr->priv;
    double b1 = hp->beta1, b2 = hp->beta2, d = 1 - eta * lam, A = tr->A;
    double sig2 = tr->G2 / A; /* gradient variance per coordinate, up to a constant */
    double K = (1 - b1) * (1 - b1) * sig2 + b1 * b1 * P->Vm;
    double h = b1 * b2 * P->Vm + (1 - b2) * (1 - b1) * sig2; /* Cov(m_t, c_t) */
    double p = K > 0 ? b1 / sqrt(K) : 0.0, q = K > 0 ? h / sqrt(K) : 0.0;

    double sum = 0.0, b2j = 1.0;
    for (size_t j = 0; j < P->nhist; j++) { /* lag j+1 */
        size_t i = (P->head + P->lags - 1 - j) % P->lags;
        double rho = b2j * p * P->hq[i];
        sum += P->hw[i] * asin(rho > 1 ? 1 : rho);
        b2j *= b2;
    }
    double pn = p;
    for (int n = 0; n < ASIN_TERMS; n++) {
        sum += P->coef[n] * pn * P->tail[n];
        pn *= p * p;
    }
    double X = -tr->C * M_2_PI * sum;
    double angle = roteq_step_angle(A, d, eta * X, eta * eta * tr->C);
    tr->A = d * d * A - 2 * d * eta * X + eta * eta * tr->C;

    /* Age the history by one step: weights pick up this step's decay, the oldest ring entry
     * moves into the series tail, and this step enters at lag 1. */
    double b2L = pow(b2, (double)P->lags);
    for (int n = 0; n < ASIN_TERMS; n++)
        P->tail[n] *= d * P->b2pow[n];
    for (size_t j = 0; j < P->nhist; j++)
        P->hw[j] *= d;
    if (P->nhist == P->lags) {
        size_t old = P->head; /* the slot about to be overwritten holds lag L */
        double qn = P->hq[old], f = b2L * qn;
        for (int n = 0; n < ASIN_TERMS; n++) {
            P->tail[n] += P->hw[old] * f;
            f *= b2L * b2L * qn * qn;
        }
    } else {
        P->nhist++;
    }
    P->hw[P->head] = eta;
    P->hq[P->head] = q;
    P->head = (P->head + 1) % P->lags;
    P->Vm = b2 * b2 * P->Vm + (1 - b2) * (1 - b2) * sig2;
    return angle;
}

static int stationary(const roteq_transient *tr, double eta, double lam, roteq_stationary *st)
{
    double d = 1 - eta * lam, S, R;
    lag_sums(tr->hp.beta1, tr->hp.beta2, d, &S, &R);
    st->A = eta * eta * tr->C * S / (1 - d * d);
    st->angle = roteq_step_angle(st->A, d, -eta * eta * tr->C * R, eta * eta * tr->C);
    /* The lag sums assume Gaussian pre-sign signals in a fixed frame (README). */
    st->exact = 0;
    return ROTEQ_OK;
}

/* F(i) = sum_{j>=1} d^(j-1) r_{i+j}, r_m = (2/pi) asin(rho1 beta2^(m-1)). */
static double lion_F(double rho1, double b2, double d, long i)
{
    double s = 0.0, rho = rho1 * pow(b2, (double)i), dj = 1.0;
    for (long j = 1; j <= 20000000L; j++) {
        double r = M_2_PI * asin(rho);
        s += dj * r;
        if (dj * r <= 1e-17 * s || rho == 0.0)
            break;
        rho *= b2;
        dj *= d;
    }
    return s;
}

/* Lion's E_k = (1 - d^k) A - eta^2 C sum_i d^(k-1-i) F(i) without the sum over i: exchanging the
 * sums gives sum_m r_m d^|k-m| (1 - d^(2 min(k,m))) / (1 - d^2), and r_m decays like beta2^m,
 * so the terms that matter are the first few thousand whatever k is. */
static double kstep_E_long(double A, double eta, double lam, double C, double rho1, double b2,
                           long k)
{
    /* 1 - d of the rounded d = 1 - eta lam that the stationary A was computed with */
    double omd = 1 - (1 - eta * lam), ld = log1p(-omd), one_m_d2 = omd * (2 - omd);
    double wmax = 1 / one_m_d2, s = 0.0, rho = rho1;
    for (long m = 1; m <= 100000000L && rho != 0.0; m++) {
        long n = m < k ? m : k;
        double w = exp((double)labs(k - m) * ld) * -expm1(2.0 * (double)n * ld) / one_m_d2;
        s += M_2_PI * asin(rho) * w;
        /* the rest of the sum is below wmax |rho| b2 / (1 - b2): stop once it is negligible
         * next to the terms so far, or next to A in E (when d^|k-m| has made them tiny) */
        double rest = wmax * fabs(rho) * b2 / (1 - b2);
        if (m > 1 && (rest <= 1e-17 * fabs(s) || eta * eta * C * rest <= 1e-17 * A))
            break;
        rho *= b2;
    }
    return -expm1((double)k * ld) * A - eta * eta * C * s;
}

/* E_{i+1} = (1-d) A + d E_i - eta^2 C F(i); F computed backwards from F(k-1), where the
 * recursion F(i) = r_{i+1} + d F(i+1) is stable; long gaps by the exchanged sum. */
static double kstep_drift(const roteq_transient *tr, const roteq_stationary *st, double eta,
                          double lam, long k)
{
    double A = st->A;
    double d = 1 - eta * lam, b2 = tr->hp.beta2, rho1 = roteq_lion_rho1(tr->hp.beta1, b2);
    if (k > ROTEQ_KSTEP_LOOP_MAX)
        return kstep_E_long(A, eta, lam, tr->C, rho1, b2, k);
    double F = lion_F(rho1, b2, d, k - 1), wsum = 0.0, wi = 1.0;
    for (long i = k - 1; i >= 0; i--) {
        wsum += wi * F; /* d^(k-1-i) F(i) */
        wi *= d;
        if (i > 0) /* F(i-1) = r_i + d F(i) */
            F = M_2_PI * asin(rho1 * pow(b2, (double)(i - 1))) + d * F;
    }
    /* E_k = (1 - d^k) A - eta^2 C sum_i d^(k-1-i) F(i) */
    return (1 - pow(d, (double)k)) * A - eta * eta * tr->C * wsum;
}

/* Decoupled decay with a norm-independent update size (every coordinate moves by eta). */
static double convergence_rate(const roteq_optimizer_type *opt, double lr, double wd)
{
    (void)opt;
    return -2.0 * log1p(-lr * wd);
}

const roteq_family roteq_family_lion = {
    .name = "lion",
    .granularity = ROTEQ_GRAN_COORDINATE,
    .equilibrium = equilibrium,
    .transient_init = transient_init,
    .transient_free = transient_free,
    .transient_step = transient_step,
    .stationary = stationary,
    .kstep_drift = kstep_drift,
    .convergence_rate = convergence_rate,
    .model_floor = roteq_theory_floor_lr_wd,
    .verify_groups =
        "{\"fixed\": {\"optimizer\": \"lion\", \"lr\": 0.001, \"weight_decay\": 0.1},\n"
        "   \"points\": [{\"beta1\": 0, \"beta2\": 0}, {\"beta1\": 0.5, \"beta2\": 0.9},\n"
        "              {\"beta1\": 0.9, \"beta2\": 0.99}, {\"beta1\": 0.95, \"beta2\": 0.98}]}",
};

#else /* ---- sim part: compiled once per instruction set (sim/meson.build) ---- */
#include "family_sim.h"

/* Lion (Chen et al. 2023, Algorithm 2, decoupled decay as in the published code):
 * w = w*(1 - lr*lambda); c = beta1*m + (1-beta1)*g; w += (-lr)*sign(c);
 * m = beta2*m + (1-beta2)*g. */
static inline double rule_lion(const roteq_sim_coef *k, double w, double g, double *m)
{
    double c = k->beta1 * *m + k->one_m_beta1 * g;
    *m = k->beta2 * *m + k->one_m_beta2 * g;
    return w * k->decay + k->neg_lr * roteq_sign(c);
}

static void step_lion(const roteq_sim_coef *k, double *w, const double *g, double *state,
                      double *scalars, size_t dim, size_t stride)
{
    (void)scalars, (void)stride;
    for (size_t i = 0; i < dim; i++)
        w[i] = rule_lion(k, w[i], g[i], &state[i]);
}

ROTEQ_FUSED(fused_lion, wn = rule_lion(k, wo, g, &s1[i + l]))

ROTEQ_SIM_RULE(lion, 1, 0, roteq_sim_init_zero, step_lion, NULL, fused_lion);
#endif
