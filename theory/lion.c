/* lion.c - the lag structure of Lion's sign updates under the random-walk model, shared by the
 * closed form ("best" prediction, equilibrium.c) and the transient (transient.c).
 *
 * Per coordinate, c_t = beta1*m_{t-1} + (1-beta1)*g_t is a fixed linear filter of i.i.d.
 * Gaussian gradients, so c_t and c_{t+k} are jointly Gaussian and the arcsine law gives the
 * correlation of their signs exactly: E[sign c_t sign c_{t+k}] = (2/pi) asin(rho_k). The
 * derivation of K, rho_1 and the sums is in theory/README.md ("Lion"). */
#include "theory_internal.h"

#include <math.h>

double roteq_lion_K(double beta1, double beta2)
{
    /* Var(c)/Var(g): (1-beta1)^2 from g_t, beta1^2 (1-beta2)^2/(1-beta2^2) from the momentum. */
    return (1 - beta1) * (1 - beta1) + beta1 * beta1 * (1 - beta2) / (1 + beta2);
}

double roteq_lion_rho1(double beta1, double beta2)
{
    /* Cov(c_{t+1}, c_t) = beta1 (1-beta2) [(1-beta1) + beta1 beta2/(1+beta2)]; lag k adds a
     * factor beta2^(k-1). */
    double K = roteq_lion_K(beta1, beta2);
    if (!(K > 0))
        return 0.0;
    return beta1 * (1 - beta2) * ((1 - beta1) + beta1 * beta2 / (1 + beta2)) / K;
}

double roteq_asin_coef(int n)
{
    /* asin x = sum_n (2n)! / (4^n (n!)^2 (2n+1)) x^(2n+1); the ratio of successive central
     * binomial terms is (2n-1)/(2n). */
    double c = 1.0;
    for (int i = 1; i <= n; i++)
        c *= (2.0 * i - 1) / (2.0 * i);
    return c / (2.0 * n + 1);
}

void roteq_lion_lag_sums(double beta1, double beta2, double d, double *S, double *R)
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

double roteq_step_angle(double A, double d, double P, double Q)
{
    double radial = (d * A - P) / sqrt(A);
    double perp2 = Q - P * P / A;
    return atan2(sqrt(perp2 > 0 ? perp2 : 0.0), radial);
}
