/* schedule.c - parse and evaluate lr / weight-decay schedules (grammar in roteq_schedule.h). */
#include "roteq_schedule.h"
#include "roteq_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_GRAMMAR "expected constant, warmup:W, cosine:T[:FLOOR] or step:S:GAMMA, joined by +"

roteq_schedule roteq_schedule_constant(void)
{
    return (roteq_schedule){0, ROTEQ_SCHED_CONSTANT, 0, 1.0};
}

/* Split "a:b:c" into at most 4 fields in place; returns the field count. */
static int split_fields(char *s, char **f, int max)
{
    int n = 0;
    f[n++] = s;
    for (char *p = s; *p; p++)
        if (*p == ':') {
            if (n == max)
                return max + 1;
            *p = '\0';
            f[n++] = p + 1;
        }
    return n;
}

static int parse_positive_long(const char *s, long *out)
{
    long v;
    if (roteq_parse_long(s, &v) || v <= 0)
        return -1;
    *out = v;
    return 0;
}

int roteq_schedule_parse(const char *spec, roteq_schedule *out)
{
    if (spec == NULL || *spec == '\0')
        return roteq_error_set(ROTEQ_EINVAL, "malformed schedule '': " SCHED_GRAMMAR);
    char buf[256];
    if (strlen(spec) >= sizeof buf)
        return roteq_error_set(ROTEQ_EINVAL, "malformed schedule: longer than %zu characters",
                               sizeof buf - 1);
    strcpy(buf, spec);
    /* strtok would silently skip empty parts ("warmup:5+", "a++b"); they are malformed. */
    size_t len = strlen(spec);
    if (spec[0] == '+' || spec[len - 1] == '+' || strstr(spec, "++") != NULL)
        return roteq_error_set(ROTEQ_EINVAL, "malformed schedule '%s': empty part between '+'",
                               spec);
    roteq_schedule s = roteq_schedule_constant();
    int have_warmup = 0, have_shape = 0;
    char *save = NULL;
    for (char *part = strtok_r(buf, "+", &save); part; part = strtok_r(NULL, "+", &save)) {
        char *f[4];
        int n = split_fields(part, f, 3);
        const char *why = NULL;
        if (strcmp(f[0], "constant") == 0) {
            if (n != 1 || have_shape)
                why = "constant takes no parameters and comes once";
            have_shape = 1;
        } else if (strcmp(f[0], "warmup") == 0) {
            if (n != 2 || have_warmup || have_shape || parse_positive_long(f[1], &s.warmup))
                why = "warmup:W needs a positive step count W and comes first";
            have_warmup = 1;
        } else if (strcmp(f[0], "cosine") == 0) {
            s.shape = ROTEQ_SCHED_COSINE;
            s.param = 0.0;
            if (n < 2 || n > 3 || have_shape || parse_positive_long(f[1], &s.period) ||
                (n == 3 && (roteq_parse_double(f[2], &s.param) || s.param < 0 || s.param > 1)))
                why = "cosine:T[:FLOOR] needs a positive length T and a floor in [0, 1]";
            have_shape = 1;
        } else if (strcmp(f[0], "step") == 0) {
            s.shape = ROTEQ_SCHED_STEP;
            if (n != 3 || have_shape || parse_positive_long(f[1], &s.period) ||
                roteq_parse_double(f[2], &s.param) || !(s.param > 0))
                why = "step:S:GAMMA needs a positive interval S and a positive GAMMA";
            have_shape = 1;
        } else {
            why = SCHED_GRAMMAR;
        }
        if (why)
            return roteq_error_set(ROTEQ_EINVAL, "malformed schedule '%s': %s", spec, why);
    }
    if (!have_warmup && !have_shape)
        return roteq_error_set(ROTEQ_EINVAL, "malformed schedule '%s': " SCHED_GRAMMAR, spec);
    *out = s;
    return ROTEQ_OK;
}

double roteq_schedule_factor(const roteq_schedule *s, long t)
{
    if (s->warmup > 0 && t <= s->warmup)
        return (double)t / (double)s->warmup;
    long u = t - s->warmup; /* steps after warmup, >= 1 */
    switch (s->shape) {
    case ROTEQ_SCHED_COSINE: {
        double x = u >= s->period ? 1.0 : (double)u / (double)s->period;
        return s->param + (1.0 - s->param) * 0.5 * (1.0 + cos(M_PI * x));
    }
    case ROTEQ_SCHED_STEP:
        return pow(s->param, (double)(u / s->period));
    default:
        return 1.0;
    }
}

int roteq_schedule_format(const roteq_schedule *s, char *buf, size_t n)
{
    char shape[96] = "";
    switch (s->shape) {
    case ROTEQ_SCHED_COSINE:
        snprintf(shape, sizeof shape, "cosine:%ld:%.17g", s->period, s->param);
        break;
    case ROTEQ_SCHED_STEP:
        snprintf(shape, sizeof shape, "step:%ld:%.17g", s->period, s->param);
        break;
    default:
        if (s->warmup == 0)
            strcpy(shape, "constant");
        break;
    }
    if (s->warmup > 0)
        return snprintf(buf, n, "warmup:%ld%s%s", s->warmup, shape[0] ? "+" : "", shape);
    return snprintf(buf, n, "%s", shape);
}

int roteq_schedule_is_constant(const roteq_schedule *s)
{
    return s->warmup == 0 &&
           (s->shape == ROTEQ_SCHED_CONSTANT || (s->shape == ROTEQ_SCHED_STEP && s->param == 1.0));
}
