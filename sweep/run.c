/* run.c - running a grid on one machine: `jobs` worker threads take points from a shared queue
 * (most expensive first) and hand finished records to the caller's sink one at a time.
 *
 * Each point is independent and seeded from its index, so the order in which points finish does
 * not change any number; the output file is sorted by index when the sweep completes. Why points
 * run side by side, one per core, by default rather than one at a time with every core inside
 * is measured in sweep/README.md. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "sweep_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void roteq_sweep_eval(const roteq_sweep_grid *g, const roteq_sweep_options *o, size_t index,
                      unsigned threads, roteq_sweep_record *rec)
{
    roteq_sweep_point pt;
    const roteq_sweep_point *p = roteq_sweep_grid_point(g, index, &pt);
    memset(rec, 0, sizeof *rec);
    rec->index = index;
    rec->seed = p->seed;
    for (int k = 0; k < ROTEQ_PRED_COUNT; k++)
        rec->pred[k] = (roteq_sweep_prediction){NAN, NAN, 0};
    rec->norm = rec->norm_se = rec->angle = rec->angle_se = NAN;
    rec->seconds = 0.0;
    rec->rel_floor = NAN;
    if (p->error[0]) {
        rec->verdict = ROTEQ_SWEEP_VERDICT_ERROR;
        snprintf(rec->reason, sizeof rec->reason, "%s", p->error);
        return;
    }
    roteq_sweep_runner runner = o->runner ? o->runner : roteq_sweep_sim_runner;
    roteq_error_clear();
    double t0 = roteq_seconds();
    int st = runner(p, threads, rec, o->runner_ctx);
    rec->seconds = roteq_seconds() - t0;
    if (st) {
        rec->verdict = ROTEQ_SWEEP_VERDICT_ERROR;
        const char *msg = roteq_error_message();
        snprintf(rec->reason, sizeof rec->reason, "%s", *msg ? msg : roteq_strerror(st));
        return;
    }
    rec->verdict = ROTEQ_SWEEP_VERDICT_PASS;
    rec->rel_floor = roteq_sweep_model_floor(p);
    roteq_sweep_judge(rec, o->tolerance > 0 ? o->tolerance : ROTEQ_SWEEP_TOLERANCE, rec->rel_floor);
}

static double point_cost(const roteq_sweep_point *p)
{
    if (p->error[0])
        return 0.0;
    return (double)p->cfg.neurons * (double)p->cfg.dim * (double)p->cfg.steps;
}

typedef struct {
    double cost;
    size_t index;
} costed;

static int by_cost(const void *a, const void *b)
{
    const costed *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

size_t *roteq_sweep_deal_order(const roteq_sweep_grid *g, const unsigned char *skip, size_t *n)
{
    size_t *order = malloc((g->npoints ? g->npoints : 1) * sizeof *order);
    costed *c = malloc((g->npoints ? g->npoints : 1) * sizeof *c);
    if (order == NULL || c == NULL) {
        free(order);
        free(c);
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        return NULL;
    }
    size_t m = 0;
    roteq_sweep_point pt;
    for (size_t i = 0; i < g->npoints; i++)
        if (skip == NULL || !skip[i])
            c[m++] = (costed){point_cost(roteq_sweep_grid_point(g, i, &pt)), i};
    /* By decreasing cost, ties in index order (the order the insertion sort of small grids gave) */
    qsort(c, m, sizeof *c, by_cost);
    for (size_t i = 0; i < m; i++)
        order[i] = c[i].index;
    free(c);
    *n = m;
    return order;
}

/* The cores this process may run on: its affinity mask, which mpirun's binding, taskset, cgroups
 * and Slurm's --cpus-per-task all restrict, rather than every core of the machine. */
static unsigned usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

unsigned roteq_sweep_threads_per_point(const roteq_sweep_options *o, unsigned jobs)
{
    if (o->threads > 0)
        return o->threads;
    unsigned per = usable_cores() / (jobs > 0 ? jobs : 1);
    return per > 0 ? per : 1;
}

typedef struct {
    const roteq_sweep_grid *g;
    const roteq_sweep_options *o;
    const size_t *order;
    size_t n, next;
    unsigned threads;
    pthread_mutex_t lock;
    int stop, status;
} local_queue;

static void *local_worker(void *arg)
{
    local_queue *q = arg;
    roteq_sweep_record rec;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        if (q->stop || q->next == q->n) {
            pthread_mutex_unlock(&q->lock);
            break;
        }
        size_t idx = q->order[q->next++];
        pthread_mutex_unlock(&q->lock);

        roteq_sweep_eval(q->g, q->o, idx, q->threads, &rec);

        pthread_mutex_lock(&q->lock);
        if (!q->stop && q->o->sink) {
            roteq_sweep_point pt;
            int st = q->o->sink(q->o->sink_ctx, roteq_sweep_grid_point(q->g, idx, &pt), &rec);
            if (st) {
                q->stop = 1;
                q->status = st;
            }
        }
        pthread_mutex_unlock(&q->lock);
    }
    return NULL;
}

int roteq_sweep_run(const roteq_sweep_grid *g, const unsigned char *skip,
                    const roteq_sweep_options *o)
{
    local_queue q = {.g = g, .o = o};
    size_t *order = roteq_sweep_deal_order(g, skip, &q.n);
    if (order == NULL)
        return ROTEQ_ENOMEM;
    q.order = order;
    /* Default: as many points at once as there are cores (one thread each), but never more
     * than there are points, so a single point gets every core. */
    unsigned jobs = o->jobs > 0 ? o->jobs : usable_cores();
    if (jobs > q.n)
        jobs = q.n > 0 ? (unsigned)q.n : 1;
    q.threads = roteq_sweep_threads_per_point(o, jobs);
    pthread_mutex_init(&q.lock, NULL);
    pthread_t *tids = jobs > 1 ? calloc(jobs - 1, sizeof *tids) : NULL;
    unsigned started = 0;
    if (tids != NULL)
        for (; started < jobs - 1; started++)
            if (pthread_create(&tids[started], NULL, local_worker, &q) != 0)
                break; /* fewer workers is still correct, only slower */
    local_worker(&q);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&q.lock);
    free(tids);
    free(order);
    return q.status;
}
