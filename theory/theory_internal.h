/* theory_internal.h - pieces shared by the files of theory/ and by nobody else: the Lion
 * lag-correlation sums (lion.c) that both the closed form (equilibrium.c) and the transient
 * (transient.c) use, and the stationary state of each recurrence. Not installed, not included
 * outside theory/ (tests reach these numbers through the public API). */
#ifndef ROTEQ_THEORY_INTERNAL_H
#define ROTEQ_THEORY_INTERNAL_H

#include "roteq_theory.h"

#include <math.h>

/* NAN is a float; the double keeps -Wdouble-promotion quiet in conditionals. */
#define ROTEQ_NAN ((double)NAN)

/* Lion's per-coordinate pre-sign signal c_t = beta1*m_{t-1} + (1-beta1)*g_t, with i.i.d. unit
 * gradients, has stationary variance K (the paper's K) and lag-k correlation
 * rho_k = rho1 * beta2^(k-1), k >= 1 (derived in theory/README.md, "Lion"). */
double roteq_lion_K(double beta1, double beta2);
double roteq_lion_rho1(double beta1, double beta2);

/* Equilibrium of Lion with decay factor d = 1 - eta*lambda, summed over lags with the arcsine
 * law: *S = 1 + 2 sum_k r_k d^k and *R = sum_{k>=1} r_k d^(k-1), r_k = (2/pi) asin(rho_k). */
void roteq_lion_lag_sums(double beta1, double beta2, double d, double *S, double *R);

/* Coefficients of asin(x) = sum_n roteq_asin_coef(n) x^(2n+1). */
double roteq_asin_coef(int n);
#define ROTEQ_ASIN_TERMS 48

/* Angle (radians) between w and w' = d*w - delta when E||w||^2 = A, E<w,delta> = P and
 * E||delta||^2 = Q (mean-field: large C). Stable for tiny angles. */
double roteq_step_angle(double A, double d, double P, double Q);

#endif
