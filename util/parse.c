/* parse.c - strict number parsing shared by the CLI, the trace readers and the JSON readers.
 * strtod alone accepts "1e3abc" (stopping early) and "nan"; a tool that verifies formulas must not.
 */
#include "roteq_util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

int roteq_parse_double(const char *s, double *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not a number", s ? s : "");
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0')
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not a number", s);
    /* ERANGE also flags underflow, but a number below the smallest double is still a number
     * (it rounds to a subnormal or to 0); only overflow is refused. */
    if (!isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not a finite number", s);
    *out = v;
    return ROTEQ_OK;
}

/* Digits with an optional integer power of ten ("50000000", "5e7", "1E+15"), as people write step
 * and neuron counts; exact, so "1.5e3" and "5e-1" are not integers. 1 on a malformed string,
 * 2 on overflow of uint64_t. */
static int digits_exp(const char *s, unsigned long long *out)
{
    if (!isdigit((unsigned char)*s))
        return 1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return 2;
    if (*end == 'e' || *end == 'E') {
        const char *p = end + 1 + (end[1] == '+');
        if (!isdigit((unsigned char)*p))
            return 1;
        unsigned long e = strtoul(p, &end, 10);
        for (; e > 0 && v != 0; e--) {
            if (v > ULLONG_MAX / 10)
                return 2;
            v *= 10;
        }
    }
    if (*end != '\0')
        return 1;
    *out = v;
    return 0;
}

int roteq_parse_long(const char *s, long *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not an integer", s ? s : "");
    int neg = *s == '-';
    unsigned long long v;
    int r = digits_exp(s + (neg || *s == '+'), &v);
    if (r == 1)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not an integer", s);
    if (r == 2 || v > (unsigned long long)LONG_MAX + (unsigned long long)neg)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is out of range", s);
    *out = neg ? (long)(0 - v) : (long)v;
    return ROTEQ_OK;
}

int roteq_parse_u64(const char *s, uint64_t *out)
{
    unsigned long long v;
    int r = s ? digits_exp(s, &v) : 1;
    if (r == 1)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not a non-negative integer", s ? s : "");
    if (r == 2)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is out of range", s);
    *out = (uint64_t)v;
    return ROTEQ_OK;
}

int roteq_parse_size(const char *s, size_t *out)
{
    uint64_t v;
    int st = roteq_parse_u64(s, &v);
    if (st)
        return st;
    if (v > (uint64_t)SIZE_MAX)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is out of range", s);
    *out = (size_t)v;
    return ROTEQ_OK;
}
