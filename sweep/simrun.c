/* simrun.c - the runner that evaluates a grid point: exactly one roteq_sim_run() call with the
 * point's configuration and seed. Kept apart from the scheduling code so that tests can swap in
 * a cheap deterministic runner and exercise resume, MPI dealing and bad points in milliseconds. */
#include "roteq_sweep.h"
#include "roteq_util.h"

#include <math.h>
#include <string.h>

int roteq_sweep_sim_runner(const roteq_sweep_point *p, unsigned threads, roteq_sweep_record *rec,
                           void *ctx)
{
    (void)ctx;
    roteq_sim_config cfg = p->cfg;
    cfg.seed = p->seed;
    cfg.threads = threads;
    /* The sweep only needs the last-quarter summary: record rarely to keep memory small. */
    cfg.every = cfg.steps;
    roteq_sim_result res;
    memset(&res, 0, sizeof res);
    int st = roteq_sim_run(&cfg, NULL, &res);
    if (st) {
        roteq_sim_result_free(&res);
        return st;
    }
    for (int k = 0; k < ROTEQ_PRED_COUNT; k++) {
        rec->pred[k].norm = res.predicted[k].norm;
        rec->pred[k].angular_update = res.predicted[k].angular_update;
        rec->pred[k].exact = res.predicted[k].exact;
    }
    rec->norm = res.norm_mean;
    rec->norm_se = res.norm_se;
    rec->angle = res.angle_rms;
    rec->angle_se = res.angle_rms_se;
    rec->threads = res.threads_used;
    roteq_sim_result_free(&res);
    return ROTEQ_OK;
}
