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
    /* A point larger than the memory available now is an ERROR row, not a swapping machine
     * (points running side by side each take their share before the next one checks). */
    double need = roteq_sim_memory(&cfg, 1);
    const char *what;
    uint64_t avail = roteq_mem_available(&what);
    if (avail && need > (double)avail) {
        char need_s[32], avail_s[32];
        roteq_format_bytes(need, need_s, sizeof need_s);
        roteq_format_bytes((double)avail, avail_s, sizeof avail_s);
        return roteq_error_set(ROTEQ_ENOMEM,
                               "%zu neurons of dimension %zu need about %s, more than the %s "
                               "available (%s)",
                               cfg.neurons, cfg.dim, need_s, avail_s, what);
    }
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
