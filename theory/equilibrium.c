/* equilibrium.c - closed-form rotational equilibria: the expected weight norm and the RMS
 * angular update per step of a scale-invariant neuron under the random-walk model, for every
 * optimizer in the table (theory/roteq_optimizer.h). Kept apart from the transient
 * (transient.c) because these are the formulas people quote and check; every one cites its
 * source, and the derivations are in theory/README.md.
 *
 * "exact" means exact under the random-walk model in the limit of large C and small eta*lambda
 * (relative errors O(1/C) and O(eta*lambda/(1-beta)); the transient recurrences carry the
 * discrete-time corrections). Approximate formulas rely on a further assumption whose error
 * does not vanish in that limit (measured errors in theory/README.md). */
#include "theory_internal.h"
#include "roteq_util.h"

#include <math.h>

const char *const roteq_prediction_names[ROTEQ_PRED_COUNT] = {"best", "paper", "plain"};

#define SRC_PAPER   "Kosson et al. 2024 (arXiv 2305.17212), equilibrium table"
#define SRC_DERIVED "derived here (theory/README.md)"
#define SRC_RV      "rotation fixed by construction: epfml/REQ rotational optimizers (etar)"

static void set(roteq_equilibrium *out, double norm, double angle, int exact, const char *src)
{
    out->norm = norm;
    out->angular_update = angle;
    out->exact = exact;
    out->source = src;
}

/* SGD with heavy-ball (or Nesterov) momentum alpha, dampening factor c = 1 - dampening,
 * weight decay as L2 in the gradient (PyTorch semantics). The decay passes through the
 * momentum exactly like the gradient does, so both act with the effective learning rate
 * eta*c/(1-alpha); derivation in theory/README.md ("SGD family"). */
static void sgd_family(double eta, double lam, double alpha, double c, int nesterov, double G,
                       roteq_equilibrium *out)
{
    if (alpha == 0.0)
        c = 1.0; /* PyTorch ignores dampening without momentum (no buffer) */
    double norm = isnan(G) ? ROTEQ_NAN : pow(eta * c * G * G / (2 * lam * (1 - alpha)), 0.25);
    if (nesterov) {
        double a = alpha;
        set(out, norm, sqrt(2 * eta * lam * (1 + 2 * a - 2 * a * a * a) / (1 + a)), 1,
            SRC_DERIVED " (Nesterov)");
    } else {
        set(out, norm, sqrt(2 * eta * lam * c / (1 + alpha)), 1,
            alpha == 0.0 || c == 1.0 ? SRC_PAPER " (SGDM row)" : SRC_DERIVED " (dampening)");
    }
}

static void sgd_params(const roteq_optimizer_type *opt, const roteq_hparams *hp, double *alpha,
                       double *c, int *nesterov)
{
    *alpha = 0.0, *c = 1.0, *nesterov = 0;
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_MOMENTUM))
        *alpha = hp->momentum;
    if (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING))
        *c = 1.0 - hp->dampening;
    if (opt->id == ROTEQ_OPT_NESTEROV ||
        ((opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV)) && hp->nesterov != 0.0))
        *nesterov = 1;
}

static void lion(const roteq_hparams *hp, double C, roteq_prediction which, roteq_equilibrium *out)
{
    double eta = hp->lr, lam = hp->weight_decay, b1 = hp->beta1, b2 = hp->beta2;
    double size = eta * sqrt(C); /* ||eta*sign(c)||: every coordinate moves by eta */
    switch (which) {
    case ROTEQ_PRED_PLAIN: {
        /* Uncorrelated updates of fixed size eta*sqrt(C): the AdamW argument with beta1 = 0. */
        double a = sqrt(2 * eta * lam);
        set(out, size / a, a, b1 == 0.0 && b2 == 0.0, SRC_DERIVED " (Lion plain)");
        return;
    }
    case ROTEQ_PRED_PAPER: {
        double a = sqrt(M_PI * eta * lam * roteq_lion_K(b1, b2));
        set(out, size / a, a, 0, SRC_PAPER " (Lion row)");
        return;
    }
    default: {
        /* Lag sums of the sign autocorrelation, discounted by d^k, and the radial part of the
         * update (a sign update correlated with past updates is not orthogonal to w). With
         * w = -eta sum_n d^n u_{t-1-n}: E||w||^2 = eta^2 C S/(1-d^2), E<w,u> = -eta C R. */
        double d = 1 - eta * lam, S, R;
        roteq_lion_lag_sums(b1, b2, d, &S, &R);
        double A = eta * eta * C * S / (1 - d * d);
        double X = -eta * C * R;
        double angle = roteq_step_angle(A, d, eta * X, eta * eta * C);
        set(out, C > 0 ? sqrt(A) : ROTEQ_NAN, angle, 0,
            SRC_DERIVED " (Lion best: arcsine lag sums)");
        return;
    }
    }
}

int roteq_theory_equilibrium(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                             const roteq_setting *s, roteq_prediction which, roteq_equilibrium *out)
{
    if (opt == NULL || hp == NULL || s == NULL || out == NULL)
        return roteq_error_set(ROTEQ_EINVAL, "roteq_theory_equilibrium: NULL argument");
    if ((int)which < 0 || which >= ROTEQ_PRED_COUNT)
        return roteq_error_set(ROTEQ_EINVAL, "unknown prediction %d", (int)which);
    if (!isnan(s->grad_norm) && !(s->grad_norm > 0 && isfinite(s->grad_norm)))
        return roteq_error_set(ROTEQ_EINVAL, "grad_norm must be positive, got %.17g", s->grad_norm);
    if (s->dim > ROTEQ_THEORY_DIM_MAX)
        return roteq_error_set(ROTEQ_EINVAL, "dim must be at most 2^53 = %zu, got %zu",
                               ROTEQ_THEORY_DIM_MAX, s->dim);
    int st = roteq_hparams_validate(opt, hp, NULL);
    if (st)
        return st;
    /* dim 0 means unknown: norms that scale with sqrt(C) become ROTEQ_NAN, rotations stay. */
    double C = s->dim > 0 ? (double)s->dim : ROTEQ_NAN, G = s->grad_norm;
    double eta = hp->lr, lam = hp->weight_decay;
    double alpha, c;
    int nesterov;

    switch (opt->id) {
    case ROTEQ_OPT_SGD:
    case ROTEQ_OPT_SGDM:
    case ROTEQ_OPT_NESTEROV:
        sgd_params(opt, hp, &alpha, &c, &nesterov);
        sgd_family(eta, lam, alpha, c, nesterov, G, out);
        return ROTEQ_OK;
    case ROTEQ_OPT_ADAMW:
        /* Normalised updates of squared size C(1-beta1)/(1+beta1) per step, each gradient
         * moving w by eta*g/sqrt(v) in total through the momentum. */
        set(out, sqrt(eta * C / (2 * lam)), sqrt(2 * eta * lam * (1 - hp->beta1) / (1 + hp->beta1)),
            1, SRC_PAPER " (AdamW row)");
        return ROTEQ_OK;
    case ROTEQ_OPT_ADAM_L2: {
        /* Assumes the gradient dominates Adam's second moment (lambda*||w||^2 << ||g~||) and
         * eps << sqrt(v): the L2 term then acts as a decoupled decay of rate
         * lambda_eff = lambda*||w||*sqrt(C)/||g~||, and the AdamW balance gives
         * ||w||^3 = eta*||g~||*sqrt(C)/(2*lambda). */
        double norm = cbrt(eta * G * sqrt(C) / (2 * lam));
        double lam_eff = lam * norm * sqrt(C) / G;
        set(out, norm, sqrt(2 * eta * lam_eff * (1 - hp->beta1) / (1 + hp->beta1)), 0,
            SRC_DERIVED " (Adam+L2, gradient dominates the second moment)");
        return ROTEQ_OK;
    }
    case ROTEQ_OPT_LION:
        lion(hp, isnan(C) ? 1.0 : C, which, out);
        if (isnan(C))
            out->norm = ROTEQ_NAN;
        return ROTEQ_OK;
    case ROTEQ_OPT_RV_ADAMW:
    case ROTEQ_OPT_RV_SGDM:
    case ROTEQ_OPT_RV_LION: {
        /* The rotational variants enforce the base optimizer's equilibrium rotation from the
         * first step and hold every neuron's norm at its initial value (unknown here: ROTEQ_NAN).
         * RV-Lion targets the paper's Lion rotation, as the published RotationalLion does. */
        roteq_equilibrium base;
        if (opt->id == ROTEQ_OPT_RV_SGDM) {
            sgd_params(opt, hp, &alpha, &c, &nesterov);
            sgd_family(eta, lam, alpha, c, nesterov, ROTEQ_NAN, &base);
        } else if (opt->id == ROTEQ_OPT_RV_LION) {
            lion(hp, 1.0, ROTEQ_PRED_PAPER, &base);
        } else {
            base.angular_update = sqrt(2 * eta * lam * (1 - hp->beta1) / (1 + hp->beta1));
        }
        set(out, ROTEQ_NAN, base.angular_update, 1, SRC_RV);
        return ROTEQ_OK;
    }
    default:
        return roteq_error_set(ROTEQ_EUNSUPPORTED, "no equilibrium formula for %s", opt->name);
    }
}

const char *roteq_theory_formula(const roteq_optimizer_type *opt)
{
    if (opt == NULL)
        return "";
    switch (opt->id) {
    case ROTEQ_OPT_SGD:
        return "norm (eta*G^2/(2*lambda))^(1/4); angle sqrt(2*eta*lambda)  [exact; paper]";
    case ROTEQ_OPT_SGDM:
        return "norm (eta*c*G^2/(2*lambda*(1-alpha)))^(1/4), c = 1-dampening; "
               "angle sqrt(2*eta*lambda*c/(1+alpha))  [exact; paper, dampening derived here]";
    case ROTEQ_OPT_NESTEROV:
        return "norm (eta*G^2/(2*lambda*(1-alpha)))^(1/4); "
               "angle sqrt(2*eta*lambda*(1+2*alpha-2*alpha^3)/(1+alpha))  [exact; derived here]";
    case ROTEQ_OPT_ADAM_L2:
        return "norm (eta*G*sqrt(C)/(2*lambda))^(1/3); angle sqrt(2*eta*lambda_eff*(1-beta1)/"
               "(1+beta1)), lambda_eff = lambda*norm*sqrt(C)/G  [approx.: gradient dominates "
               "the second moment; derived here]";
    case ROTEQ_OPT_ADAMW:
        return "norm sqrt(eta*C/(2*lambda)); angle sqrt(2*eta*lambda*(1-beta1)/(1+beta1))  "
               "[exact; paper]";
    case ROTEQ_OPT_LION:
        return "best: lag sums of (2/pi)*asin(rho_k) discounted by (1-eta*lambda)^k, radial "
               "part removed [approx.; derived here]; paper: angle sqrt(pi*eta*lambda*K), "
               "K = (1-beta1)^2 + beta1^2*(1-beta2)/(1+beta2), norm eta*sqrt(C)/angle; plain: "
               "norm sqrt(eta*C/(2*lambda)), angle sqrt(2*eta*lambda)";
    case ROTEQ_OPT_RV_ADAMW:
        return "angle sqrt(2*eta*lambda*(1-beta1)/(1+beta1)) from step 1 (AdamW's); norm held "
               "at its initial value  [by construction]";
    case ROTEQ_OPT_RV_SGDM:
        return "angle sqrt(2*eta*lambda*c/(1+alpha)) from step 1 (SGDM's; Nesterov's with "
               "--nesterov); norm held at its initial value  [by construction]";
    case ROTEQ_OPT_RV_LION:
        return "angle sqrt(pi*eta*lambda*K) from step 1 (Lion's paper formula, as the published "
               "RotationalLion); norm held at its initial value  [by construction]";
    default:
        return "";
    }
}
