/* stats.c - across-neuron statistics of a recorded step (mean, std, quantiles without sorting
 * or allocating) and the last-quarter measurements with their standard errors. */
#include "sim_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The k-th smallest of a[0..n) (0-based), partially reordering a: quickselect with a
 * median-of-three pivot. In place, so summarising a record allocates nothing (qsort may). */
static double select_kth(double *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        double x = a[lo], y = a[mid], z = a[hi];
        double pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                double t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* Mean, sample std (n-1) and linearly interpolated quantiles (NumPy's default) of x[0..n);
 * `tmp` holds n doubles. NaNs (undefined angles) are skipped. */
roteq_sim_stat roteq_sim_summarise(const double *x, size_t n, double *tmp)
{
    size_t m = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) {
            tmp[m++] = x[i];
            sum += x[i];
        }
    roteq_sim_stat s = {NAN, NAN, NAN, NAN, NAN};
    if (m == 0)
        return s;
    s.mean = sum / (double)m;
    double ss = 0.0;
    for (size_t i = 0; i < m; i++)
        ss += (tmp[i] - s.mean) * (tmp[i] - s.mean);
    s.std = m > 1 ? sqrt(ss / (double)(m - 1)) : 0.0;
    double qs[3] = {0.05, 0.5, 0.95}, *dst[3] = {&s.q05, &s.q50, &s.q95};
    for (int j = 0; j < 3; j++) {
        double h = (double)(m - 1) * qs[j];
        size_t lo = (size_t)floor(h);
        double a = select_kth(tmp, m, lo), b = a;
        /* after selection every element above position lo is >= a: the next order statistic
         * is their minimum */
        if (lo + 1 < m) {
            b = tmp[lo + 1];
            for (size_t i = lo + 2; i < m; i++)
                if (tmp[i] < b)
                    b = tmp[i];
        }
        *dst[j] = a + (h - (double)lo) * (b - a);
    }
    return s;
}

void roteq_sim_last_quarter(roteq_sim_result *out, const double *sum_norm, const double *sum_ang2,
                            size_t N, size_t quarter)
{
    /* Each neuron's time averages are the independent samples. */
    double qn = (double)quarter, mn = 0.0, ma = 0.0;
    for (size_t n = 0; n < N; n++) {
        mn += sum_norm[n] / qn;
        ma += sum_ang2[n] / qn;
    }
    mn /= (double)N;
    ma /= (double)N;
    double vn = 0.0, va = 0.0;
    for (size_t n = 0; n < N; n++) {
        double dn = sum_norm[n] / qn - mn, da = sum_ang2[n] / qn - ma;
        vn += dn * dn;
        va += da * da;
    }
    double dof = N > 1 ? (double)(N - 1) : 1.0;
    out->norm_mean = mn;
    out->norm_se = sqrt(vn / dof / (double)N);
    out->angle_rms = sqrt(ma);
    /* delta method: se(sqrt(m)) = se(m) / (2 sqrt(m)) */
    out->angle_rms_se = ma > 0 ? sqrt(va / dof / (double)N) / (2.0 * sqrt(ma)) : 0.0;
}
