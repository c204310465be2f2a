/* parse.c - strict number parsing shared by the CLI, the trace readers and the JSON readers.
 * strtod alone accepts "1e3abc" (stopping early) and "nan"; a tool that verifies formulas must not.
 */
#include "roteq_util.h"

#include <ctype.h>
#include <errno.h>
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

int roteq_parse_long(const char *s, long *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not an integer", s ? s : "");
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0')
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not an integer", s);
    if (errno == ERANGE)
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is out of range", s);
    *out = v;
    return ROTEQ_OK;
}

int roteq_parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not a non-negative integer", s ? s : "");
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return roteq_error_set(ROTEQ_EINVAL, "'%s' is not a non-negative integer", s);
    if (errno == ERANGE)
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
