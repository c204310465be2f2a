/* engine.c - roteq_sim_run(): configuration in, statistics out, no globals.
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
#include "kernel.h"
#include "roteq_sim.h"
#include "roteq_util.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const roteq_grad_model_names[ROTEQ_GRAD_COUNT] = {"scale-invariant", "heterogeneous",
                                                              "anisotropic", "radial"};

const char *const roteq_sim_isa_names[ROTEQ_SIM_ISA_COUNT] = {"auto", "generic", "avx2", "avx512"};

const char *const roteq_sim_normal_names[ROTEQ_NORMALS_COUNT] = {
    "philox10-boxmuller", "philox7-boxmuller", "philox10-ziggurat",
    "philox7-ziggurat",   "ars5-boxmuller",    "ars5-ziggurat"};

const roteq_sim_normal_kind roteq_sim_engine_normals = ROTEQ_KERNEL_NORMALS;

int roteq_grad_model_lookup(const char *name, roteq_grad_model *out)
{
    for (int i = 0; i < ROTEQ_GRAD_COUNT; i++)
        if (name && strcmp(name, roteq_grad_model_names[i]) == 0) {
            *out = (roteq_grad_model)i;
            return ROTEQ_OK;
        }
    return roteq_error_set(ROTEQ_ENOTFOUND,
                           "unknown gradient model '%s' (known: scale-invariant, heterogeneous, "
                           "anisotropic, radial)",
                           name ? name : "");
}

void roteq_sim_config_init(roteq_sim_config *cfg, const roteq_optimizer_type *opt)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->opt = opt;
    cfg->hp = roteq_optimizer_defaults(opt);
    cfg->lr_schedule = roteq_schedule_constant();
    cfg->wd_schedule = roteq_schedule_constant();
    cfg->neurons = 128;
    cfg->dim = 128;
    cfg->steps = 10000;
    cfg->seed = 1;
    cfg->threads = 0;
    cfg->grad_model = ROTEQ_GRAD_SCALE_INVARIANT;
    cfg->grad_norm = NAN;
    cfg->grad_spread = 0.5;
    cfg->dead_fraction = 0.25;
    cfg->radial = 0.0;
    cfg->init_norm = NAN;
    cfg->every = 0;
}

int roteq_sim_config_validate(const roteq_sim_config *cfg)
{
    if (!cfg->opt)
        return roteq_error_set(ROTEQ_EINVAL, "no optimizer given");
    roteq_hparam_id bad;
    if (roteq_hparams_validate(cfg->opt, &cfg->hp, &bad))
        return roteq_error_set(ROTEQ_EINVAL, "%s: %s", roteq_hparam_descs[bad].key,
                               roteq_error_message());
    if (cfg->neurons == 0)
        return roteq_error_set(ROTEQ_EINVAL, "neurons must be positive");
    if (cfg->neurons > UINT32_MAX)
        return roteq_error_set(ROTEQ_EINVAL, "neurons must be below 2^32, got %zu", cfg->neurons);
    if (cfg->dim < 2)
        return roteq_error_set(ROTEQ_EINVAL, "dim must be at least 2, got %zu", cfg->dim);
    if (cfg->dim > ((size_t)1 << 34))
        return roteq_error_set(ROTEQ_EINVAL, "dim %zu is too large", cfg->dim);
    if (cfg->steps == 0)
        return roteq_error_set(ROTEQ_EINVAL, "steps must be positive");
    if (cfg->steps > ROTEQ_SIM_STEPS_MAX)
        return roteq_error_set(ROTEQ_EINVAL, "steps must be at most %llu (1e10), got %zu",
                               (unsigned long long)ROTEQ_SIM_STEPS_MAX, cfg->steps);
    if ((unsigned)cfg->grad_model >= ROTEQ_GRAD_COUNT)
        return roteq_error_set(ROTEQ_EINVAL, "unknown gradient model %d", (int)cfg->grad_model);
    if (!isnan(cfg->grad_norm) && !(cfg->grad_norm > 0.0 && isfinite(cfg->grad_norm)))
        return roteq_error_set(ROTEQ_EINVAL, "grad_norm must be positive, got %g", cfg->grad_norm);
    if (!(cfg->grad_spread >= 0.0 && cfg->grad_spread <= 5.0))
        return roteq_error_set(ROTEQ_EINVAL, "grad_spread must be in [0, 5], got %g",
                               cfg->grad_spread);
    if (!(cfg->dead_fraction >= 0.0 && cfg->dead_fraction < 1.0))
        return roteq_error_set(ROTEQ_EINVAL, "dead_fraction must be in [0, 1), got %g",
                               cfg->dead_fraction);
    if (!isfinite(cfg->radial))
        return roteq_error_set(ROTEQ_EINVAL, "radial must be finite");
    if (!isnan(cfg->init_norm) && !(cfg->init_norm > 0.0 && isfinite(cfg->init_norm)))
        return roteq_error_set(ROTEQ_EINVAL, "init_norm must be positive, got %g", cfg->init_norm);
    return ROTEQ_OK;
}

/* ---- Instruction sets ---- */

int roteq_sim_isa_available(roteq_sim_isa isa)
{
    switch (isa) {
    case ROTEQ_SIM_ISA_AUTO:
    case ROTEQ_SIM_ISA_GENERIC:
        return 1;
#if defined(ROTEQ_HAVE_X86_KERNELS)
    case ROTEQ_SIM_ISA_AVX2:
        __builtin_cpu_init();
        /* the AVX2 kernels draw ARS with AES-NI, the AVX-512 ones with VAES */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("aes");
    case ROTEQ_SIM_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("aes") && __builtin_cpu_supports("vaes");
#endif
    default:
        return 0;
    }
}

roteq_sim_isa roteq_sim_isa_best(void)
{
    if (roteq_sim_isa_available(ROTEQ_SIM_ISA_AVX512))
        return ROTEQ_SIM_ISA_AVX512;
    if (roteq_sim_isa_available(ROTEQ_SIM_ISA_AVX2))
        return ROTEQ_SIM_ISA_AVX2;
    return ROTEQ_SIM_ISA_GENERIC;
}

static const roteq_kernel_ops *kernel_for(roteq_sim_isa isa)
{
    if (isa == ROTEQ_SIM_ISA_AUTO)
        isa = roteq_sim_isa_best();
    if (!roteq_sim_isa_available(isa))
        return NULL;
#if defined(ROTEQ_HAVE_X86_KERNELS)
    if (isa == ROTEQ_SIM_ISA_AVX512)
        return &roteq_kernel_avx512;
    if (isa == ROTEQ_SIM_ISA_AVX2)
        return &roteq_kernel_avx2;
#endif
    return &roteq_kernel_generic;
}

/* ---- Shared helpers ---- */

double roteq_kernel_angle(double a2, double dd, double dw, const double *wnew, const double *d,
                          size_t n)
{
    /* tan(theta) = |d_perp| / (|w| + d.w/|w|) with |d_perp|^2 = |d|^2 - (d.w)^2/|w|^2: an atan2
     * of the sine and cosine parts (never acos). When d is nearly radial that difference
     * cancels, so the orthogonal part is then summed directly (w_old = w_new - d). */
    double perp2 = dd - dw * dw / a2;
    if (!(perp2 > 1e-2 * dd)) {
        double c = dw / a2, s = 0.0;
        for (size_t i = 0; i < n; i++) {
            double e = d[i] - c * (wnew[i] - d[i]);
            s += e * e;
        }
        perp2 = s;
    }
    return atan2(sqrt(a2 * perp2), a2 + dw);
}

static double *aligned_doubles(size_t n)
{
    void *p = NULL;
    size_t bytes = (n * sizeof(double) + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
    if (posix_memalign(&p, 64, bytes))
        return NULL;
    memset(p, 0, bytes);
    return p;
}

size_t roteq_sim_normals_padded(size_t n)
{
    return (n + ROTEQ_KERNEL_BATCH - 1) / ROTEQ_KERNEL_BATCH * ROTEQ_KERNEL_BATCH;
}

/* The kernels of `isa` for normals of `kind`, or NULL with the error set. */
static const roteq_kernel_ops *normal_ops(roteq_sim_normal_kind kind, roteq_sim_isa isa)
{
    const roteq_kernel_ops *ops = NULL;
    if ((unsigned)kind >= ROTEQ_NORMALS_COUNT)
        roteq_error_set(ROTEQ_EINVAL, "unknown kind of normals %d", (int)kind);
    else if ((unsigned)isa >= ROTEQ_SIM_ISA_COUNT)
        roteq_error_set(ROTEQ_EINVAL, "unknown instruction set %d", (int)isa);
    else if (!(ops = kernel_for(isa)))
        roteq_error_set(ROTEQ_EUNSUPPORTED, "instruction set %s is not available here",
                        roteq_sim_isa_names[isa]);
    return ops;
}

int roteq_sim_normals_as(roteq_sim_normal_kind kind, roteq_sim_isa isa, uint64_t seed,
                         uint32_t stream, uint64_t step, double *out, size_t n)
{
    const roteq_kernel_ops *ops = normal_ops(kind, isa);
    if (!ops)
        return roteq_error_status();
    /* The kernels write whole aligned batches: go through an aligned buffer so that callers
     * need neither alignment nor padding. */
    double *buf = aligned_doubles(roteq_sim_normals_padded(n));
    if (!buf)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu normals", n);
    ops->normals_as(kind, seed, stream, step, buf, roteq_sim_normals_padded(n));
    memcpy(out, buf, n * sizeof *out);
    free(buf);
    return ROTEQ_OK;
}

int roteq_sim_normals(uint64_t seed, uint32_t stream, uint64_t step, double *out, size_t n)
{
    return roteq_sim_normals_as(ROTEQ_KERNEL_NORMALS, ROTEQ_SIM_ISA_AUTO, seed, stream, step, out,
                                n);
}

static unsigned online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

/* The k-th smallest of a[0..n) (0-based), partially reordering a: quickselect with a
 * median-of-three pivot. In place, so summarising a record allocates nothing (qsort may). */
static double select_kth(double *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        double x = a[lo], y = a[mid], z = a[hi];
        double pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                double t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* Mean, sample std (n-1) and linearly interpolated quantiles (NumPy's default) of x[0..n);
 * `tmp` holds n doubles. NaNs (undefined angles) are skipped. */
static roteq_sim_stat summarise(const double *x, size_t n, double *tmp)
{
    size_t m = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) {
            tmp[m++] = x[i];
            sum += x[i];
        }
    roteq_sim_stat s = {NAN, NAN, NAN, NAN, NAN};
    if (m == 0)
        return s;
    s.mean = sum / (double)m;
    double ss = 0.0;
    for (size_t i = 0; i < m; i++)
        ss += (tmp[i] - s.mean) * (tmp[i] - s.mean);
    s.std = m > 1 ? sqrt(ss / (double)(m - 1)) : 0.0;
    double qs[3] = {0.05, 0.5, 0.95}, *dst[3] = {&s.q05, &s.q50, &s.q95};
    for (int j = 0; j < 3; j++) {
        double h = (double)(m - 1) * qs[j];
        size_t lo = (size_t)floor(h);
        double a = select_kth(tmp, m, lo), b = a;
        /* after selection every element above position lo is >= a: the next order statistic
         * is their minimum */
        if (lo + 1 < m) {
            b = tmp[lo + 1];
            for (size_t i = lo + 2; i < m; i++)
                if (tmp[i] < b)
                    b = tmp[i];
        }
        *dst[j] = a + (h - (double)lo) * (b - a);
    }
    return s;
}

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
    size_t q_start;              /* first step of the last quarter */
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
    row->norm = summarise(rec, N, sm->tmp);
    row->angle = summarise(rec + N, N, sm->tmp);
    double a2 = 0.0;
    for (size_t n = 0; n < N; n++)
        a2 += rec[N + n] * rec[N + n];
    row->angle_rms = sqrt(a2 / (double)N);
    row->update_rms = summarise(rec + 2 * N, N, sm->tmp);
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

/* Anisotropic coordinate scales (sim/README.md): the last floor(f*C) coordinates are dead
 * (always zero, like inputs that never fire); the live ones have variances spread
 * log-uniformly over a factor 10, normalised so the total variance is C as in the isotropic
 * model. */
static double *anisotropic_scales(const roteq_sim_config *cfg, size_t cpad)
{
    double *sc = aligned_doubles(cpad);
    if (!sc)
        return NULL;
    size_t dead = (size_t)floor(cfg->dead_fraction * (double)cfg->dim);
    size_t live = cfg->dim - dead;
    if (live < 2)
        live = 2;
    double total = 0.0;
    for (size_t i = 0; i < live; i++) {
        double var = pow(10.0, live > 1 ? (double)i / (double)(live - 1) : 0.0);
        sc[i] = var;
        total += var;
    }
    for (size_t i = 0; i < live; i++)
        sc[i] = sqrt(sc[i] * (double)cfg->dim / total);
    return sc;
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
    l->nthreads = cfg->threads ? cfg->threads : online_cores();
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
    const roteq_kernel_ops *ops = kernel_for(ex->isa);
    if (!ops)
        return roteq_error_set(ROTEQ_EUNSUPPORTED, "instruction set %s is not available here",
                               roteq_sim_isa_names[ex->isa]);
    double t_start = roteq_seconds();
    const size_t N = cfg->neurons, C = cfg->dim;
    const double gnorm = isnan(cfg->grad_norm) ? sqrt((double)C - 1.0) : cfg->grad_norm;
    predict(cfg, gnorm, out);

    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.ops = ops;
    r.obs = obs;
    if ((cfg->opt->flags & ROTEQ_OPTF_ROTATIONAL) && (st = rv_target_rate(cfg, gnorm, &r.rv_rate)))
        return st;
    const roteq_sim_rule *rule = ops->rule_for(cfg->opt), *ref = roteq_sim_rule_for(cfg->opt);
    if (rule == NULL || ref == NULL)
        return roteq_error_set(ROTEQ_EUNSUPPORTED, "no update rule for %s", cfg->opt->name);
    size_t cpad = (C + ROTEQ_KERNEL_PAD - 1) / ROTEQ_KERNEL_PAD * ROTEQ_KERNEL_PAD;
    r.kc = (roteq_kernel_cfg){
        .rule = rule,
        .ref = ref,
        .reference = ex->reference,
        .dim = C,
        .cpad = cpad,
        .ngen = roteq_sim_normals_padded(cpad),
        .stride = cpad,
        .seed = cfg->seed,
        /* isotropic: E||g~||^2 = s^2 (C-1) after projection, so s = G/sqrt(C-1) */
        .g_scale = isnan(cfg->grad_norm) ? 1.0 : cfg->grad_norm / sqrt((double)C - 1.0),
        .radial_coef = cfg->grad_model == ROTEQ_GRAD_RADIAL ? cfg->radial * gnorm : 0.0,
        .coord_scale = NULL,
    };
    layout lay;
    int keep_rows = !ex->stream_rows;
    layout_of(cfg, keep_rows, &lay);
    r.nvec = lay.nvec;
    r.neuron_doubles = lay.neuron_doubles;
    unsigned nthreads = lay.nthreads;
    r.every = lay.every;
    r.nrec = lay.nrec;
    size_t quarter = cfg->steps / 4 ? cfg->steps / 4 : 1;
    r.q_start = cfg->steps - quarter + 1;
    if (keep_rows && r.nrec > ROTEQ_SIM_ROWS_MAX)
        return roteq_error_set(ROTEQ_EINVAL,
                               "%zu records would be kept in memory, at most %d: record less "
                               "often (every) or stream the rows (roteq_sim_options.stream_rows)",
                               r.nrec, ROTEQ_SIM_ROWS_MAX);

    if (N > SIZE_MAX / sizeof(double) / r.neuron_doubles)
        return roteq_error_set(ROTEQ_ENOMEM, "%zu neurons of dimension %zu do not fit in memory", N,
                               C);
    worker *wk = calloc(nthreads, sizeof *wk);
    r.vec = aligned_doubles(N * r.neuron_doubles);
    r.nsc = aligned_doubles(N * ROTEQ_NS_COUNT);
    r.ring_slots = lay.ring_slots;
    r.ring = aligned_doubles(r.ring_slots * 3 * N);
    r.done = calloc(nthreads, sizeof *r.done);
    r.nworkers = nthreads;
    r.sum_norm = aligned_doubles(N);
    r.sum_ang2 = aligned_doubles(N);
    if (keep_rows)
        out->rows = calloc(r.nrec, sizeof *out->rows);
    double *tmp = aligned_doubles(N);
    double *init = aligned_doubles(r.kc.ngen);
    int ok = wk && r.vec && r.nsc && r.ring && r.done && r.sum_norm && r.sum_ang2 &&
             (out->rows || !keep_rows) && tmp && init;
    if (ok && cfg->grad_model == ROTEQ_GRAD_ANISOTROPIC)
        ok = (r.kc.coord_scale = anisotropic_scales(cfg, cpad)) != NULL;
    for (unsigned i = 0; ok && i < nthreads; i++) {
        wk[i].r = &r;
        wk[i].index = i;
        wk[i].n0 = N * i / nthreads;
        wk[i].n1 = N * (i + 1) / nthreads;
        wk[i].scratch = aligned_doubles(3 * r.kc.ngen);
        wk[i].coef = calloc(CHUNK, sizeof *wk[i].coef);
        ok = wk[i].scratch && wk[i].coef;
    }
    if (!ok) {
        free(tmp);
        free(init);
        free_run(&r, wk, wk ? nthreads : 0);
        roteq_sim_result_free(out);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu neurons of dimension %zu", N,
                               C);
    }

    /* Initial weights: a uniformly random direction (normals of step counter 0) scaled to the
     * initial norm; the heterogeneous model's per-neuron scale from a reserved counter. */
    double init_norm = cfg->init_norm;
    if (isnan(init_norm))
        init_norm = isfinite(out->predicted[ROTEQ_PRED_BEST].norm) &&
                            out->predicted[ROTEQ_PRED_BEST].norm > 0
                        ? out->predicted[ROTEQ_PRED_BEST].norm
                        : 1.0;
    for (size_t n = 0; n < N; n++) {
        double *w = r.vec + n * r.neuron_doubles, *ns = r.nsc + n * ROTEQ_NS_COUNT;
        ops->normals(cfg->seed, (uint32_t)n, 0, init, r.kc.ngen);
        double ss = 0.0;
        for (size_t i = 0; i < C; i++)
            ss += init[i] * init[i];
        double f = init_norm / sqrt(ss);
        for (size_t i = 0; i < C; i++)
            w[i] = init[i] * f;
        rule->init(w, w + cpad, ns + ROTEQ_NS_RULE, C, cpad);
        double acc[8] = {0};
        for (size_t i = 0; i < cpad; i += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += w[i + l] * w[i + l];
        ns[ROTEQ_NS_A2] =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        ns[ROTEQ_NS_GSCALE] = 1.0;
        if (cfg->grad_model == ROTEQ_GRAD_HETEROGENEOUS) {
            ops->normals(cfg->seed, (uint32_t)n, ROTEQ_KERNEL_STEP_NEURON, init, r.kc.ngen);
            ns[ROTEQ_NS_GSCALE] = exp(cfg->grad_spread * init[0]);
        }
    }
    free(init);

    /* The transient prediction, advanced by the calling thread between recorded steps. */
    roteq_setting setting = {C, gnorm};
    roteq_transient *tr = roteq_transient_alloc(cfg->opt, &cfg->hp, &setting, init_norm);
    roteq_error_clear();
    int constant = roteq_schedule_is_constant(&cfg->lr_schedule) &&
                   roteq_schedule_is_constant(&cfg->wd_schedule);
    summary sm = {out, tmp, tr, 0, NAN, NAN, constant};

    /* Workers wait at a gate until every thread exists, so a failed pthread_create releases
     * the others (stop) before any work starts. */
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    unsigned started = 1;
    pthread_mutex_lock(&r.mu);
    for (unsigned i = 1; i < nthreads; i++) {
        if (pthread_create(&wk[i].thread, NULL, worker_main, &wk[i]) != 0)
            break;
        wk[i].started = 1;
        started++;
    }
    if (started < nthreads)
        r.stop = 1;
    r.gate_open = 1;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    int status = ROTEQ_OK;
    if (started == nthreads) {
        /* The calling thread steps its own neurons and summarises records as they complete,
         * blocking only when its own ring slot is still unsummarised. */
        size_t prev = 0, own = (wk[0].n1 - wk[0].n0) * C;
        size_t piece = own * CHUNK >= PIECE_WORK ? CHUNK : PIECE_WORK / own / CHUNK * CHUNK;
        for (size_t j = 0; j < r.nrec && status == ROTEQ_OK; j++) {
            while (status == ROTEQ_OK && r.processed + r.ring_slots <= j)
                summarise_next(&r, &sm, 1, &status);
            if (status != ROTEQ_OK)
                break;
            size_t end = rec_step(&r, j) + 1;
            /* Long stretches between records in pieces of whole chunks (the same arithmetic),
             * with progress after each. */
            for (size_t t0 = prev + 1; t0 < end;) {
                size_t t1 = end - t0 > piece ? t0 + piece : end;
                run_range(&wk[0], t0, t1, t1 == end ? slot(&r, j) : NULL);
                if (t1 < end && obs && obs->on_progress)
                    obs->on_progress(obs->ctx, t1 - 1, cfg->steps);
                t0 = t1;
            }
            prev = end - 1;
            pthread_mutex_lock(&r.mu);
            r.done[0] = j + 1;
            pthread_mutex_unlock(&r.mu);
            while (status == ROTEQ_OK && summarise_next(&r, &sm, 0, &status))
                ;
        }
        while (status == ROTEQ_OK && r.processed < r.nrec)
            summarise_next(&r, &sm, 1, &status);
    }
    for (unsigned i = 1; i < nthreads; i++)
        if (wk[i].started)
            pthread_join(wk[i].thread, NULL);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    roteq_transient_free(tr);
    if (started < nthreads && status == ROTEQ_OK)
        status = roteq_error_set(ROTEQ_ERUNTIME, "cannot start %u threads", nthreads);

    if (status == ROTEQ_OK) {
        /* Last-quarter summary: each neuron's time averages are the independent samples. */
        double qn = (double)quarter, mn = 0.0, ma = 0.0;
        for (size_t n = 0; n < N; n++) {
            mn += r.sum_norm[n] / qn;
            ma += r.sum_ang2[n] / qn;
        }
        mn /= (double)N;
        ma /= (double)N;
        double vn = 0.0, va = 0.0;
        for (size_t n = 0; n < N; n++) {
            double dn = r.sum_norm[n] / qn - mn, da = r.sum_ang2[n] / qn - ma;
            vn += dn * dn;
            va += da * da;
        }
        double dof = N > 1 ? (double)(N - 1) : 1.0;
        out->norm_mean = mn;
        out->norm_se = sqrt(vn / dof / (double)N);
        out->angle_rms = sqrt(ma);
        /* delta method: se(sqrt(m)) = se(m) / (2 sqrt(m)) */
        out->angle_rms_se = ma > 0 ? sqrt(va / dof / (double)N) / (2.0 * sqrt(ma)) : 0.0;
        out->threads_used = nthreads;
        out->seconds = roteq_seconds() - t_start;
    } else {
        roteq_sim_result_free(out);
    }
    free(tmp);
    free_run(&r, wk, nthreads);
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

/* ---- The bare normal loop (the engine's floor) ---- */

typedef struct {
    const roteq_kernel_ops *ops;
    int kind; /* roteq_sim_normal_kind, or -1: ops->bench (SLEEF) */
    uint64_t seed;
    size_t n0, n1, steps, ngen;
    double *scratch, sum;
    int created;
} bench_job;

static void *bench_main(void *arg)
{
    bench_job *j = arg;
    j->sum = j->kind < 0 ? j->ops->bench(j->seed, j->n0, j->n1, j->steps, j->scratch, j->ngen)
                         : j->ops->bench_as((roteq_sim_normal_kind)j->kind, j->seed, j->n0, j->n1,
                                            j->steps, j->scratch, j->ngen);
    return NULL;
}

/* The bare loop of `ops` (a kernel or a SLEEF variant) over `threads` threads. */
static double bench_ops(const roteq_kernel_ops *ops, int kind, size_t neurons, size_t dim,
                        size_t steps, unsigned threads, double *checksum)
{
    if (neurons == 0 || dim == 0 || steps == 0)
        return roteq_error_set(ROTEQ_EINVAL, "neurons, dim and steps must be positive");
    unsigned T = threads ? threads : online_cores();
    if (T > neurons)
        T = (unsigned)neurons;
    size_t cpad = (dim + ROTEQ_KERNEL_PAD - 1) / ROTEQ_KERNEL_PAD * ROTEQ_KERNEL_PAD;
    size_t ngen = roteq_sim_normals_padded(cpad);
    bench_job *jobs = calloc(T, sizeof *jobs);
    pthread_t *th = calloc(T, sizeof *th);
    int ok = jobs && th;
    for (unsigned i = 0; ok && i < T; i++) {
        jobs[i] = (bench_job){ops,  kind, 1, neurons * i / T, neurons * (i + 1) / T, steps, ngen,
                              NULL, 0,    0};
        ok = (jobs[i].scratch = aligned_doubles(ngen)) != NULL;
    }
    double secs = ROTEQ_ENOMEM;
    if (ok) {
        double t0 = roteq_seconds();
        for (unsigned i = 1; i < T; i++)
            jobs[i].created = pthread_create(&th[i], NULL, bench_main, &jobs[i]) == 0;
        bench_main(&jobs[0]);
        for (unsigned i = 1; i < T; i++) {
            if (jobs[i].created)
                pthread_join(th[i], NULL);
            else
                bench_main(&jobs[i]); /* could not start a thread: do its share here */
        }
        secs = roteq_seconds() - t0;
        double s = 0.0;
        for (unsigned i = 0; i < T; i++)
            s += jobs[i].sum;
        if (checksum)
            *checksum = s;
    } else {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    for (unsigned i = 0; jobs && i < T; i++)
        free(jobs[i].scratch);
    free(jobs);
    free(th);
    return secs;
}

double roteq_sim_bench_normals(size_t neurons, size_t dim, size_t steps, unsigned threads,
                               roteq_sim_isa isa, double *checksum)
{
    return roteq_sim_bench_normals_as(ROTEQ_KERNEL_NORMALS, neurons, dim, steps, threads, isa,
                                      checksum);
}

double roteq_sim_bench_normals_as(roteq_sim_normal_kind kind, size_t neurons, size_t dim,
                                  size_t steps, unsigned threads, roteq_sim_isa isa,
                                  double *checksum)
{
    const roteq_kernel_ops *ops = normal_ops(kind, isa);
    if (!ops)
        return roteq_error_status();
    return bench_ops(ops, (int)kind, neurons, dim, steps, threads, checksum);
}

/* ---- The SLEEF comparison (bench_sleef.c) ---- */

static const roteq_kernel_ops *sleef_for(roteq_sim_isa isa, int u35)
{
    if ((unsigned)isa >= ROTEQ_SIM_ISA_COUNT) {
        roteq_error_set(ROTEQ_EINVAL, "unknown instruction set %d", (int)isa);
        return NULL;
    }
    if (isa == ROTEQ_SIM_ISA_AUTO)
        isa = roteq_sim_isa_best();
#if defined(ROTEQ_HAVE_X86_KERNELS)
    if (isa == ROTEQ_SIM_ISA_AVX512 && roteq_sim_isa_available(isa))
        return u35 ? &roteq_sleef_u35_avx512 : &roteq_sleef_u10_avx512;
    if (isa == ROTEQ_SIM_ISA_AVX2 && roteq_sim_isa_available(isa))
        return u35 ? &roteq_sleef_u35_avx2 : &roteq_sleef_u10_avx2;
#else
    (void)u35;
#endif
    roteq_error_set(ROTEQ_EUNSUPPORTED, "no SLEEF normals for instruction set %s here",
                    roteq_sim_isa_names[isa]);
    return NULL;
}

int roteq_sim_sleef_available(roteq_sim_isa isa)
{
    if ((unsigned)isa >= ROTEQ_SIM_ISA_COUNT)
        return 0;
    if (isa == ROTEQ_SIM_ISA_AUTO)
        isa = roteq_sim_isa_best();
#if defined(ROTEQ_HAVE_X86_KERNELS)
    return (isa == ROTEQ_SIM_ISA_AVX512 || isa == ROTEQ_SIM_ISA_AVX2) &&
           roteq_sim_isa_available(isa);
#else
    return 0;
#endif
}

double roteq_sim_bench_sleef_normals(size_t neurons, size_t dim, size_t steps, unsigned threads,
                                     roteq_sim_isa isa, int u35, double *checksum)
{
    const roteq_kernel_ops *ops = sleef_for(isa, u35);
    if (!ops)
        return roteq_error_status();
    return bench_ops(ops, -1, neurons, dim, steps, threads, checksum);
}

int roteq_sim_sleef_normals(roteq_sim_isa isa, int u35, uint64_t seed, uint32_t stream,
                            uint64_t step, double *out, size_t n)
{
    const roteq_kernel_ops *ops = sleef_for(isa, u35);
    if (!ops)
        return roteq_error_status();
    double *buf = aligned_doubles(roteq_sim_normals_padded(n));
    if (!buf)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu normals", n);
    ops->normals(seed, stream, step, buf, roteq_sim_normals_padded(n));
    memcpy(out, buf, n * sizeof *out);
    free(buf);
    return ROTEQ_OK;
}
