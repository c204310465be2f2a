/* sweep_internal.h - pieces shared by the local (threads) and MPI schedulers of sweep/. */
#ifndef ROTEQ_SWEEP_INTERNAL_H
#define ROTEQ_SWEEP_INTERNAL_H

#include "roteq_sweep.h"

/* Evaluate point `index` into `rec` (never fails: a bad point or a failed run gives an ERROR
 * record with its reason), then judge it. */
void roteq_sweep_eval(const roteq_sweep_grid *g, const roteq_sweep_options *o, size_t index,
                      unsigned threads, roteq_sweep_record *rec);

/* The points to run (skip[i] == 0), most expensive first (neurons x dim x steps), so that the
 * long points start early and the dynamic dealing ends with short ones. malloc'd; *n set. */
size_t *roteq_sweep_deal_order(const roteq_sweep_grid *g, const unsigned char *skip, size_t *n);

/* Threads per point when `jobs` points run at once in this process: --threads if given, else
 * the cores this process may use (its affinity mask) shared among the jobs. */
unsigned roteq_sweep_threads_per_point(const roteq_sweep_options *o, unsigned jobs);

#endif
