/* roteq_schedule.h - learning-rate and weight-decay schedules as multipliers of the base value.
 * One parser and one evaluator, shared by theory's transient and the simulator's update loop.
 *
 * SPEC grammar:  constant | [warmup:W+]SHAPE | warmup:W
 *   warmup:W          linear warmup, factor t/W for steps t = 1..W
 *   cosine:T[:FLOOR]  cosine decay over T steps after warmup, from 1 to FLOOR (default 0), then
 * FLOOR step:S:GAMMA      multiply by GAMMA every S steps after warmup constant          factor 1
 * Steps count optimizer steps from 1 (the first update). */
#ifndef ROTEQ_SCHEDULE_H
#define ROTEQ_SCHEDULE_H

#include <stddef.h>

typedef enum { ROTEQ_SCHED_CONSTANT, ROTEQ_SCHED_COSINE, ROTEQ_SCHED_STEP } roteq_schedule_shape;

typedef struct {
    long warmup; /* linear warmup steps, 0 for none */
    roteq_schedule_shape shape;
    long period;  /* cosine: length T; step: interval S */
    double param; /* cosine: floor factor; step: gamma */
} roteq_schedule;

/* The constant schedule (factor 1 everywhere). */
roteq_schedule roteq_schedule_constant(void);

/* Parse SPEC. On failure ROTEQ_EINVAL with message "malformed schedule 'SPEC': ...". */
int roteq_schedule_parse(const char *spec, roteq_schedule *out);

/* The multiplier in force at optimizer step t (t >= 1). */
double roteq_schedule_factor(const roteq_schedule *s, long t);

/* Write SPEC back (canonical form) into buf; returns the length it needed. */
int roteq_schedule_format(const roteq_schedule *s, char *buf, size_t n);

/* 1 when the factor is 1 at every step. */
int roteq_schedule_is_constant(const roteq_schedule *s);

#endif
