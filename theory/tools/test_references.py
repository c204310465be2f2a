#!/usr/bin/python3
"""Reference values for tests/theory/test_equilibrium.c and test_transient.c.

Computed with mpmath at 40 digits from the formulas as derived in theory/README.md, by a
different route than the C code where one exists: the Nesterov coefficient as an explicit sum
over lags, Lion's lag correlations summed term by term from the filter coefficients (not
through the closed-form K and rho_1), and AdamW's discrete-time fixed point as a sum of squared
filter coefficients (the C code solves a linear recurrence). Run: /usr/bin/python3 THIS_FILE
(needs python3-mpmath) and paste the printed values into the tests.
"""
import mpmath as mp

mp.mp.dps = 40


def p(name, x):
    print(f"{name} = {mp.nstr(x, 17)}")


# "High-entropy" settings shared by the tests.
eta, lam, C, G = mp.mpf("0.002385"), mp.mpf("0.3121"), 384, mp.mpf("7.913")
a, dmp, b1, b2 = mp.mpf("0.87"), mp.mpf("0.35"), mp.mpf("0.83"), mp.mpf("0.994")
c = 1 - dmp

p("sgd_norm", (eta * G**2 / (2 * lam)) ** mp.mpf("0.25"))
p("sgd_angle", mp.sqrt(2 * eta * lam))
p("sgdm_norm", (eta * c * G**2 / (2 * lam * (1 - a))) ** mp.mpf("0.25"))
p("sgdm_angle", mp.sqrt(2 * eta * lam * c / (1 + a)))
# Nesterov: squared per-step coefficients of one gradient, (1+a)^2 + sum_{k>=1} a^(2k+2).
S = (1 + a) ** 2 + mp.nsum(lambda k: a ** (2 * k + 2), [1, mp.inf])
p("nest_angle", mp.sqrt(2 * eta * lam * (1 - a) * S))
p("nest_norm", (eta * G**2 / (2 * lam * (1 - a))) ** mp.mpf("0.25"))
nl2 = mp.cbrt(eta * G * mp.sqrt(C) / (2 * lam))
p("adaml2_norm", nl2)
p("adaml2_angle", mp.sqrt(2 * eta * lam * nl2 * mp.sqrt(C) / G * (1 - b1) / (1 + b1)))
p("adamw_norm", mp.sqrt(eta * C / (2 * lam)))
p("adamw_angle", mp.sqrt(2 * eta * lam * (1 - b1) / (1 + b1)))
K = (1 - b1) ** 2 + b1**2 * (1 - b2) / (1 + b2)
p("lion_paper_angle", mp.sqrt(mp.pi * eta * lam * K))
p("lion_paper_norm", eta * mp.sqrt(C) / mp.sqrt(mp.pi * eta * lam * K))


# Lion best: c_t = sum_j a_j g_{t-j}, a_0 = 1-b1, a_j = b1 (1-b2) b2^(j-1).
def coef(j):
    return (1 - b1) if j == 0 else b1 * (1 - b2) * b2 ** (j - 1)


var = mp.nsum(lambda j: coef(int(j)) ** 2, [0, mp.inf])


def rho(k):
    return (coef(0) * coef(k) + mp.nsum(lambda j: coef(int(j)) * coef(int(j) + k), [1, mp.inf])) / var


d = 1 - eta * lam
rho1 = rho(1)
r = lambda k: 2 / mp.pi * mp.asin(rho1 * b2 ** (k - 1))
print("# rho1", mp.nstr(rho1, 17), "rho2/rho1", mp.nstr(rho(2) / rho1, 17), "(= beta2)")
Ssum = 1 + 2 * mp.nsum(lambda k: r(k) * d**k, [1, mp.inf])
R = mp.nsum(lambda k: r(k) * d ** (k - 1), [1, mp.inf])
A = eta**2 * C * Ssum / (1 - d**2)
X = -eta * C * R
perp = eta * mp.sqrt(C - X**2 / A)
rad = (d * A - eta * X) / mp.sqrt(A)
p("lion_best_norm", mp.sqrt(A))
p("lion_best_angle", mp.atan2(perp, rad))


# AdamW discrete-time fixed point: sum over n of c_n^2, c_n = (1-b1) sum_{k<=n} b1^k d^(n-k).
def cn(n):
    return (1 - b1) * (d ** (n + 1) - b1 ** (n + 1)) / (d - b1)


p("adamw_discrete_norm", mp.sqrt(eta**2 * C * mp.nsum(lambda n: cn(int(n)) ** 2, [0, mp.inf])))
