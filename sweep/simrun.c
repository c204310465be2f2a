/* simrun.c - the runner that evaluates a grid point: exactly one roteq_sim_run() call with the
 * point's configuration and seed, or for a matrix optimizer one run of its family's matrix
 * simulator (roteq_sim_matrix_for). Kept apart from the scheduling code so that tests can swap
 * in a cheap deterministic runner and exercise resume, MPI dealing and bad points in
 * milliseconds. */
#include "roteq_sweep.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void roteq_sweep_matrix_describe(const roteq_optimizer_type *opt, const roteq_sim_muon_config *m,
                                 roteq_sweep_point *p)
{
    const roteq_muon_hparams *h = &m->hp;
    roteq_sim_config *c = &p->cfg;
    c->opt = opt;
    c->hp = roteq_optimizer_defaults(opt);
    c->hp.lr = h->lr, c->hp.weight_decay = h->weight_decay;
    c->hp.momentum = h->momentum, c->hp.nesterov = h->nesterov ? 1.0 : 0.0;
    c->neurons = m->matrices * h->rows, c->dim = h->cols, c->steps = m->steps;
    c->grad_model = ROTEQ_GRAD_SCALE_INVARIANT;
    c->grad_norm = c->grad_spread = c->dead_fraction = c->radial = NAN;
    c->init_norm = m->init_norm;
    c->lr_schedule = m->lr_schedule, c->wd_schedule = m->wd_schedule;
    snprintf(p->optimizer, sizeof p->optimizer, "%s", opt->name);
}

void roteq_sweep_matrix_record(const roteq_sim_muon_config *m, const roteq_muon_equilibrium *eq,
                               const roteq_sim_muon_result *res, roteq_sweep_record *rec)
{
    static const int from[ROTEQ_PRED_COUNT] = {
        [ROTEQ_PRED_BEST] = ROTEQ_MUON_PRED_BEST,
        [ROTEQ_PRED_PAPER] = ROTEQ_MUON_PRED_LIONLIKE,
        [ROTEQ_PRED_PLAIN] = ROTEQ_MUON_PRED_PLAIN,
    };
    for (int k = 0; k < ROTEQ_PRED_COUNT; k++)
        rec->pred[k] = (roteq_sweep_prediction){eq[from[k]].norm, eq[from[k]].angular_update,
                                                eq[from[k]].exact};
    rec->norm = res->row_norm, rec->norm_se = res->row_norm_se;
    rec->angle = res->row_angle_rms, rec->angle_se = res->row_angle_rms_se;
    rec->threads = res->threads_used;
    const roteq_muon_hparams *h = &m->hp;
    snprintf(rec->reason, sizeof rec->reason,
             "%zux%zu matrices, ns_steps %d, adjust_lr %s%s: row norm and RMS row angle", h->rows,
             h->cols, h->ns_steps, roteq_muon_adjust_names[h->adjust],
             m->ns_precision == ROTEQ_SIM_NS_BFLOAT16 ? ", Newton-Schulz in bfloat16" : "");
}

/* A matrix optimizer's point: its three predictions and one run of its family's simulator. */
static int matrix_runner(const roteq_sweep_point *p, unsigned threads, roteq_sweep_record *rec)
{
    const roteq_optimizer_type *opt = p->cfg.opt;
    const roteq_sim_matrix *sm = roteq_sim_matrix_for(opt);
    roteq_sim_muon_config cfg = p->mcfg;
    cfg.seed = p->seed;
    cfg.threads = threads;
    cfg.every = cfg.steps; /* the summary only: one recorded row */
    cfg.trace = NULL;
    roteq_muon_equilibrium eq[ROTEQ_MUON_PRED_COUNT];
    for (int k = 0; k < ROTEQ_MUON_PRED_COUNT; k++) {
        int st = opt->family->matrix->equilibrium(&cfg.hp, (roteq_muon_prediction)k, &eq[k]);
        if (st)
            return st;
    }
    roteq_sim_muon_result res;
    int st = sm->run(&cfg, &res);
    if (st)
        return st;
    roteq_sweep_matrix_record(&cfg, eq, &res, rec);
    sm->result_free(&res);
    return ROTEQ_OK;
}

int roteq_sweep_sim_runner(const roteq_sweep_point *p, unsigned threads, roteq_sweep_record *rec,
                           void *ctx)
{
    (void)ctx;
    if (p->matrix)
        return matrix_runner(p, threads, rec);
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
