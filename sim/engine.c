/* engine.c - roteq_sim_run(): configuration in, statistics out, no globals. This file is the run
 * and its threads; configuration and instruction sets are in config.c, the gradient models and
 * initial weights in gradient.c, the statistics in stats.c, the bare normal loops in bench.c.
 *
 *
 * The ensemble lives in one 64-byte aligned block: per neuron its weight vector then the rule's
 * state vectors, each padded to a multiple of 8 doubles, contiguous so one neuron's state stays
 * in L1 while it is stepped. Threads own contiguous ranges of neurons and step each neuron
 * through a chunk of steps at a time. At each recorded step a thread writes its neurons'
 * statistics into a ring of slots (up to 16) and moves on; the calling thread (which also steps its
 * own neurons) summarises a record once every thread has completed it. No barrier: a thread the
 * OS deschedules for a while (the machine is shared) delays nobody until the ring is full.
 * Nothing is allocated after the threads start, and roteq_sim_memory() says beforehand how much
 * will be; rows can stream to the observer instead of being kept. Every random number is a function
 * of (seed, neuron, step, coordinate), so the result does not depend on the thread count or on the
 * instruction set chosen. */
#include "sim_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- The run ---- */

#define CHUNK      256               /* steps whose coefficients a thread prepares at once */
#define PIECE_WORK ((size_t)1 << 27) /* coordinate-steps between progress calls, about 0.1 s */

typedef struct run run;

typedef struct {
    run *r;
    size_t n0, n1;
    double *scratch;      /* 3*ngen doubles */
    roteq_sim_coef *coef; /* CHUNK */
    pthread_t thread;
    unsigned index;
    int started;
} worker;

struct run {
    const roteq_sim_config *cfg;
    const roteq_kernel_ops *ops;
    roteq_kernel_cfg kc;
    double rv_rate;
    size_t nvec, neuron_doubles;
    double *vec, *nsc;
    double *ring; /* ring_slots slots of 3N doubles per record: norm[N], angle[N], urms[N] */
    size_t ring_slots;
    double *sum_norm, *sum_ang2; /* per neuron, over the last quarter */
    size_t q_start, quarter;     /* first step of the last quarter, and its length */
    size_t every, nrec;          /* record steps every, 2 every, ..., and the last */
    unsigned nworkers;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    int gate_open, stop;
    size_t processed; /* records summarised by the calling thread */
    size_t *done;     /* per worker: records completed */
    const roteq_sim_observer *obs;
};

/* Records in flight: a worker may run up to ring_slots records ahead of the summaries, so a thread
 * that the OS deschedules for a while delays nobody until the ring is full. */
#define RING_MAX   16
#define RING_BYTES ((size_t)64 << 20) /* at most 64 MB of slots for very large ensembles */

static size_t rec_step(const run *r, size_t j)
{
    return (j + 1) * r->every < r->cfg->steps ? (j + 1) * r->every : r->cfg->steps;
}

static double *slot(const run *r, size_t j)
{
    return r->ring + (j % r->ring_slots) * 3 * r->cfg->neurons;
}

static void run_range(worker *wk, size_t t0, size_t t1, double *rec)
{
    run *r = wk->r;
    const roteq_sim_config *cfg = r->cfg;
    for (size_t c0 = t0; c0 < t1; c0 += CHUNK) {
        size_t c1 = c0 + CHUNK < t1 ? c0 + CHUNK : t1;
        for (size_t t = c0; t < c1; t++)
            roteq_sim_coef_init(&wk->coef[t - c0], cfg->opt, &cfg->hp, t,
                                cfg->hp.lr * roteq_schedule_factor(&cfg->lr_schedule, (long)t),
                                cfg->hp.weight_decay *
                                    roteq_schedule_factor(&cfg->wd_schedule, (long)t),
                                r->rv_rate);
        for (size_t n = wk->n0; n < wk->n1; n++) {
            double *v = r->vec + n * r->neuron_doubles, *ns = r->nsc + n * ROTEQ_NS_COUNT;
            roteq_kernel_out o = {0, 0, 0};
            double sn = 0.0, sa = 0.0;
            for (size_t t = c0; t < c1; t++) {
                r->ops->step(&r->kc, &wk->coef[t - c0], t, (uint32_t)n, v, ns, wk->scratch, &o);
                if (t >= r->q_start) {
                    sn += o.norm;
                    sa += o.angle * o.angle;
                }
            }
            r->sum_norm[n] += sn;
            r->sum_ang2[n] += sa;
            if (c1 == t1 && rec) {
                rec[n] = o.norm;
                rec[cfg->neurons + n] = o.angle;
                rec[2 * cfg->neurons + n] = o.update_rms;
            }
        }
    }
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    run *r = wk->r;
    size_t prev = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->gate_open)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    for (size_t j = 0; j < r->nrec; j++) {
        pthread_mutex_lock(&r->mu);
        while (!r->stop && j >= r->processed + r->ring_slots)
            pthread_cond_wait(&r->cv, &r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        run_range(wk, prev + 1, rec_step(r, j) + 1, slot(r, j));
        prev = rec_step(r, j);
        pthread_mutex_lock(&r->mu);
        r->done[wk->index] = j + 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

/* The calling thread's bookkeeping for the rows. */
typedef struct {
    roteq_sim_result *out;
    double *tmp; /* N doubles */
    roteq_transient *tr;
    size_t tr_step;
    double pn, pa;
    int constant;
} summary;

/* Row j from its ring slot, the transient advanced to its step, the observer called. Returns
 * the observer's status (non-zero: stop). */
static int summarise_record(run *r, summary *sm, size_t j)
{
    const roteq_sim_config *cfg = r->cfg;
    const size_t N = cfg->neurons;
    const double *rec = slot(r, j);
    size_t t = rec_step(r, j);
    roteq_sim_row streamed, *row = sm->out->rows ? &sm->out->rows[sm->out->nrows] : &streamed;
    sm->out->nrows++;
    row->step = t;
    row->lr = cfg->hp.lr * roteq_schedule_factor(&cfg->lr_schedule, (long)t);
    row->weight_decay = cfg->hp.weight_decay * roteq_schedule_factor(&cfg->wd_schedule, (long)t);
    row->norm = roteq_sim_summarise(rec, N, sm->tmp);
    row->angle = roteq_sim_summarise(rec + N, N, sm->tmp);
    double a2 = 0.0;
    for (size_t n = 0; n < N; n++)
        a2 += rec[N + n] * rec[N + n];
    row->angle_rms = sqrt(a2 / (double)N);
    row->update_rms = roteq_sim_summarise(rec + 2 * N, N, sm->tmp);
    if (sm->tr) {
        for (; sm->tr_step < t; sm->tr_step++) {
            long s = (long)sm->tr_step + 1;
            if (roteq_transient_step(
                    sm->tr, cfg->hp.lr * roteq_schedule_factor(&cfg->lr_schedule, s),
                    cfg->hp.weight_decay * roteq_schedule_factor(&cfg->wd_schedule, s), &sm->pn,
                    &sm->pa)) {
                sm->pn = sm->pa = NAN;
                roteq_error_clear();
            }
        }
    } else if (sm->constant) {
        sm->pn = sm->out->predicted[ROTEQ_PRED_BEST].norm;
        sm->pa = sm->out->predicted[ROTEQ_PRED_BEST].angular_update;
    }
    row->pred_norm = sm->pn;
    row->pred_angle = sm->pa;
    const roteq_sim_observer *obs = r->obs;
    int rc = 0;
    if (obs && obs->on_record)
        rc = obs->on_record(obs->ctx, t, row->lr, row->weight_decay, rec, rec + N, N);
    if (!rc && obs && obs->on_row)
        rc = obs->on_row(obs->ctx, row, sm->out);
    if (obs && obs->on_progress)
        obs->on_progress(obs->ctx, t, cfg->steps);
    return rc;
}

/* Summarise the next record once every worker has completed it. Returns 1 if it did, 0 if
 * nothing was ready (block = 0) or all are done; an observer's stop lands in *status. */
static int summarise_next(run *r, summary *sm, int block, int *status)
{
    size_t k = r->processed;
    if (k >= r->nrec)
        return 0;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        size_t m = SIZE_MAX;
        for (unsigned w = 0; w < r->nworkers; w++)
            m = r->done[w] < m ? r->done[w] : m;
        if (m > k)
            break;
        if (!block) {
            pthread_mutex_unlock(&r->mu);
            return 0;
        }
        pthread_cond_wait(&r->cv, &r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    int rc = summarise_record(r, sm, k);
    pthread_mutex_lock(&r->mu);
    r->processed = k + 1;
    if (rc) {
        r->stop = 1;
        *status = rc;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 1;
}

/* Theory's equilibria for the result and the RV target rate. */
static void predict(const roteq_sim_config *cfg, double gnorm, roteq_sim_result *out)
{
    roteq_setting s = {cfg->dim, gnorm};
    for (int p = 0; p < ROTEQ_PRED_COUNT; p++) {
        roteq_equilibrium e = {NAN, NAN, 0, NULL};
        if (roteq_theory_equilibrium(cfg->opt, &cfg->hp, &s, (roteq_prediction)p, &e)) {
            e.norm = e.angular_update = NAN;
            e.exact = 0;
            e.source = NULL;
        }
        out->predicted[p] = e;
    }
    roteq_error_clear();
}

/* The RV target rotation: theory's equilibrium angular update for the RV optimizer itself (the
 * theory module defines which formula an RV variant enforces, e.g. the paper's Lion rate, as the
 * published code does); the base optimizer's best prediction if theory has none for it. */
static int rv_target_rate(const roteq_sim_config *cfg, double gnorm, double *rate)
{
    const roteq_optimizer_type *base = cfg->opt->base;
    roteq_setting s = {cfg->dim, gnorm};
    roteq_equilibrium e;
    int st = roteq_theory_equilibrium(cfg->opt, &cfg->hp, &s, ROTEQ_PRED_BEST, &e);
    if (st || !(e.angular_update > 0.0))
        st = roteq_theory_equilibrium(base, &cfg->hp, &s, ROTEQ_PRED_BEST, &e);
    if (st || !(e.angular_update > 0.0))
        return roteq_error_set(st ? st : ROTEQ_EUNSUPPORTED,
                               "%s needs theory's equilibrium rotation of %s: %s", cfg->opt->name,
                               base->name, st ? roteq_error_message() : "not available");
    roteq_error_clear();
    *rate = e.angular_update;
    return ROTEQ_OK;
}

static void free_run(run *r, worker *wk, size_t nw)
{
    for (size_t i = 0; i < nw; i++) {
        free(wk[i].scratch);
        free(wk[i].coef);
    }
    free(wk);
    free(r->vec);
    free(r->nsc);
    free(r->ring);
    free(r->done);
    free(r->sum_norm);
    free(r->sum_ang2);
    free((void *)r->kc.coord_scale);
}

/* What a run allocates, from its configuration alone: roteq_sim_memory() and the run agree. */
typedef struct {
    size_t cpad, ngen, nvec, neuron_doubles, every, nrec, ring_slots;
    unsigned nthreads;
    double bytes;
} layout;

static size_t aligned_bytes(double n)
{
    return (size_t)(ceil(n * (double)sizeof(double) / 64.0) * 64.0);
}

static void layout_of(const roteq_sim_config *cfg, int keep_rows, layout *l)
{
    const size_t N = cfg->neurons, C = cfg->dim;
    l->cpad = (C + ROTEQ_KERNEL_PAD - 1) / ROTEQ_KERNEL_PAD * ROTEQ_KERNEL_PAD;
    l->ngen = roteq_sim_normals_padded(l->cpad);
    const roteq_sim_rule *rule = roteq_sim_rule_for(cfg->opt);
    l->nvec = 1 + (rule ? rule->state_vectors : 0);
    l->neuron_doubles = l->nvec * l->cpad;
    l->nthreads = cfg->threads ? cfg->threads : roteq_sim_online_cores();
    if (l->nthreads > N)
        l->nthreads = (unsigned)N;
    l->every = cfg->every ? cfg->every : (cfg->steps + 199) / 200;
    l->nrec = (cfg->steps + l->every - 1) / l->every;
    l->ring_slots = RING_BYTES / (3 * N * sizeof(double));
    l->ring_slots = l->ring_slots > RING_MAX ? RING_MAX : l->ring_slots < 2 ? 2 : l->ring_slots;
    double n = (double)N, T = (double)l->nthreads;
    l->bytes = (double)aligned_bytes(n * (double)l->neuron_doubles)   /* weights and state */
               + (double)aligned_bytes(n * ROTEQ_NS_COUNT)            /* per-neuron scalars */
               + (double)aligned_bytes((double)l->ring_slots * 3 * n) /* records in flight */
               + 3 * (double)aligned_bytes(n) /* last-quarter sums, summary scratch */
               + T * ((double)aligned_bytes(3.0 * (double)l->ngen) +
                      CHUNK * (double)sizeof(roteq_sim_coef) + (double)sizeof(worker) +
                      (double)sizeof(size_t)) +
               2 * (double)aligned_bytes((double)l->ngen) /* initial draw, coordinate scales */
               + (keep_rows ? (double)l->nrec * (double)sizeof(roteq_sim_row) : 0.0) +
               ((cfg->opt->flags & ROTEQ_OPTF_SIGN) ? 2.0 * 65536 * sizeof(double) /* theory's
                                                                                     lag history */
                                                    : 0.0);
}

double roteq_sim_memory(const roteq_sim_config *cfg, int keep_rows)
{
    layout l;
    layout_of(cfg, keep_rows, &l);
    return l.bytes;
}

int roteq_sim_run(const roteq_sim_config *cfg, const roteq_sim_observer *obs, roteq_sim_result *out)
{
    return roteq_sim_run_ex(cfg, NULL, obs, out);
}

/* Everything the run needs before the threads start: the rule built for the kernels' instruction
 * set, the kernel configuration, the record steps and every buffer (nothing is allocated after
 * the threads start; layout_of says how much). On failure nothing is left allocated. */
static int run_setup(run *r, worker **wkp, double **tmp, double **init, const roteq_sim_options *ex,
                     double gnorm, roteq_sim_result *out)
{
    const roteq_sim_config *cfg = r->cfg;
    const size_t N = cfg->neurons, C = cfg->dim;
    int st;
    if ((cfg->opt->flags & ROTEQ_OPTF_ROTATIONAL) && (st = rv_target_rate(cfg, gnorm, &r->rv_rate)))
        return st;
    const roteq_sim_rule *rule = r->ops->rule_for(cfg->opt), *ref = roteq_sim_rule_for(cfg->opt);
    if (rule == NULL || ref == NULL)
        return roteq_error_set(ROTEQ_EUNSUPPORTED, "no update rule for %s", cfg->opt->name);
    size_t cpad = (C + ROTEQ_KERNEL_PAD - 1) / ROTEQ_KERNEL_PAD * ROTEQ_KERNEL_PAD;
    r->kc = (roteq_kernel_cfg){
        .rule = rule,
        .ref = ref,
        .reference = ex->reference,
        .dim = C,
        .cpad = cpad,
        .ngen = roteq_sim_normals_padded(cpad),
        .stride = cpad,
        .seed = cfg->seed,
        .coord_scale = NULL,
    };
    roteq_sim_gradient_setup(&r->kc, cfg, gnorm);
    layout lay;
    int keep_rows = !ex->stream_rows;
    layout_of(cfg, keep_rows, &lay);
    r->nvec = lay.nvec;
    r->neuron_doubles = lay.neuron_doubles;
    unsigned nthreads = lay.nthreads;
    r->every = lay.every;
    r->nrec = lay.nrec;
    r->quarter = cfg->steps / 4 ? cfg->steps / 4 : 1;
    r->q_start = cfg->steps - r->quarter + 1;
    if (keep_rows && r->nrec > ROTEQ_SIM_ROWS_MAX)
        return roteq_error_set(ROTEQ_EINVAL,
                               "%zu records would be kept in memory, at most %d: record less "
                               "often (every) or stream the rows (roteq_sim_options.stream_rows)",
                               r->nrec, ROTEQ_SIM_ROWS_MAX);

    if (N > SIZE_MAX / sizeof(double) / r->neuron_doubles)
        return roteq_error_set(ROTEQ_ENOMEM, "%zu neurons of dimension %zu do not fit in memory", N,
                               C);
    worker *wk = calloc(nthreads, sizeof *wk);
    r->vec = roteq_sim_aligned_doubles(N * r->neuron_doubles);
    r->nsc = roteq_sim_aligned_doubles(N * ROTEQ_NS_COUNT);
    r->ring_slots = lay.ring_slots;
    r->ring = roteq_sim_aligned_doubles(r->ring_slots * 3 * N);
    r->done = calloc(nthreads, sizeof *r->done);
    r->nworkers = nthreads;
    r->sum_norm = roteq_sim_aligned_doubles(N);
    r->sum_ang2 = roteq_sim_aligned_doubles(N);
    if (keep_rows)
        out->rows = calloc(r->nrec, sizeof *out->rows);
    *tmp = roteq_sim_aligned_doubles(N);
    *init = roteq_sim_aligned_doubles(r->kc.ngen);
    int ok = wk && r->vec && r->nsc && r->ring && r->done && r->sum_norm && r->sum_ang2 &&
             (out->rows || !keep_rows) && *tmp && *init;
    if (ok && cfg->grad_model == ROTEQ_GRAD_ANISOTROPIC)
        ok = (r->kc.coord_scale = roteq_sim_anisotropic_scales(cfg, cpad)) != NULL;
    for (unsigned i = 0; ok && i < nthreads; i++) {
        wk[i].r = r;
        wk[i].index = i;
        wk[i].n0 = N * i / nthreads;
        wk[i].n1 = N * (i + 1) / nthreads;
        wk[i].scratch = roteq_sim_aligned_doubles(3 * r->kc.ngen);
        wk[i].coef = calloc(CHUNK, sizeof *wk[i].coef);
        ok = wk[i].scratch && wk[i].coef;
    }
    if (!ok) {
        free(*tmp);
        free(*init);
        free_run(r, wk, wk ? nthreads : 0);
        roteq_sim_result_free(out);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu neurons of dimension %zu", N,
                               C);
    }
    *wkp = wk;
    return ROTEQ_OK;
}

/* The calling thread's share: it steps its own neurons and summarises records as they complete,
 * blocking only when its own ring slot is still unsummarised. */
static int drive_own(run *r, worker *wk, summary *sm)
{
    const roteq_sim_config *cfg = r->cfg;
    const roteq_sim_observer *obs = r->obs;
    int status = ROTEQ_OK;
    size_t prev = 0, own = (wk[0].n1 - wk[0].n0) * cfg->dim;
    size_t piece = own * CHUNK >= PIECE_WORK ? CHUNK : PIECE_WORK / own / CHUNK * CHUNK;
    for (size_t j = 0; j < r->nrec && status == ROTEQ_OK; j++) {
        while (status == ROTEQ_OK && r->processed + r->ring_slots <= j)
            summarise_next(r, sm, 1, &status);
        if (status != ROTEQ_OK)
            break;
        size_t end = rec_step(r, j) + 1;
        /* Long stretches between records in pieces of whole chunks (the same arithmetic), with
         * progress after each. */
        for (size_t t0 = prev + 1; t0 < end;) {
            size_t t1 = end - t0 > piece ? t0 + piece : end;
            run_range(&wk[0], t0, t1, t1 == end ? slot(r, j) : NULL);
            if (t1 < end && obs && obs->on_progress)
                obs->on_progress(obs->ctx, t1 - 1, cfg->steps);
            t0 = t1;
        }
        prev = end - 1;
        pthread_mutex_lock(&r->mu);
        r->done[0] = j + 1;
        pthread_mutex_unlock(&r->mu);
        while (status == ROTEQ_OK && summarise_next(r, sm, 0, &status))
            ;
    }
    while (status == ROTEQ_OK && r->processed < r->nrec)
        summarise_next(r, sm, 1, &status);
    return status;
}

/* Start the workers, do the calling thread's share, join. Workers wait at a gate until every
 * thread exists, so a failed pthread_create releases the others (stop) before any work
 * starts. */
static int drive(run *r, worker *wk, summary *sm)
{
    const unsigned nthreads = r->nworkers;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    unsigned started = 1;
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 1; i < nthreads; i++) {
        if (pthread_create(&wk[i].thread, NULL, worker_main, &wk[i]) != 0)
            break;
        wk[i].started = 1;
        started++;
    }
    if (started < nthreads)
        r->stop = 1;
    r->gate_open = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    int status = started == nthreads ? drive_own(r, wk, sm) : ROTEQ_OK;
    for (unsigned i = 1; i < nthreads; i++)
        if (wk[i].started)
            pthread_join(wk[i].thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    if (started < nthreads && status == ROTEQ_OK)
        status = roteq_error_set(ROTEQ_ERUNTIME, "cannot start %u threads", nthreads);
    return status;
}

int roteq_sim_run_ex(const roteq_sim_config *cfg, const roteq_sim_options *ex,
                     const roteq_sim_observer *obs, roteq_sim_result *out)
{
    memset(out, 0, sizeof *out);
    int st = roteq_sim_config_validate(cfg);
    if (st)
        return st;
    roteq_sim_options defaults = {ROTEQ_SIM_ISA_AUTO, 0, 0};
    if (!ex)
        ex = &defaults;
    if ((unsigned)ex->isa >= ROTEQ_SIM_ISA_COUNT)
        return roteq_error_set(ROTEQ_EINVAL, "unknown instruction set %d", (int)ex->isa);
    const roteq_kernel_ops *ops = roteq_sim_kernel_for(ex->isa);
    if (!ops)
        return roteq_error_set(ROTEQ_EUNSUPPORTED, "instruction set %s is not available here",
                               roteq_sim_isa_names[ex->isa]);
    double t_start = roteq_seconds();
    const double gnorm = isnan(cfg->grad_norm) ? sqrt((double)cfg->dim - 1.0) : cfg->grad_norm;
    predict(cfg, gnorm, out);

    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.ops = ops;
    r.obs = obs;
    worker *wk = NULL;
    double *tmp = NULL, *init = NULL;
    if ((st = run_setup(&r, &wk, &tmp, &init, ex, gnorm, out)))
        return st;

    double init_norm = cfg->init_norm;
    if (isnan(init_norm))
        init_norm = isfinite(out->predicted[ROTEQ_PRED_BEST].norm) &&
                            out->predicted[ROTEQ_PRED_BEST].norm > 0
                        ? out->predicted[ROTEQ_PRED_BEST].norm
                        : 1.0;
    roteq_sim_init_neurons(cfg, ops, &r.kc, init_norm, r.vec, r.neuron_doubles, r.nsc, init);
    free(init);

    /* The transient prediction, advanced by the calling thread between recorded steps. */
    roteq_setting setting = {cfg->dim, gnorm};
    roteq_transient *tr = roteq_transient_alloc(cfg->opt, &cfg->hp, &setting, init_norm);
    roteq_error_clear();
    int constant = roteq_schedule_is_constant(&cfg->lr_schedule) &&
                   roteq_schedule_is_constant(&cfg->wd_schedule);
    summary sm = {out, tmp, tr, 0, NAN, NAN, constant};
    int status = drive(&r, wk, &sm);
    roteq_transient_free(tr);
    if (status == ROTEQ_OK) {
        roteq_sim_last_quarter(out, r.sum_norm, r.sum_ang2, cfg->neurons, r.quarter);
        out->threads_used = r.nworkers;
        out->seconds = roteq_seconds() - t_start;
    } else {
        roteq_sim_result_free(out);
    }
    free(tmp);
    free_run(&r, wk, r.nworkers);
    return status;
}

void roteq_sim_result_free(roteq_sim_result *r)
{
    if (!r)
        return;
    free(r->rows);
    r->rows = NULL;
    r->nrows = 0;
}
