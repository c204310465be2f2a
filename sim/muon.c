/* muon.c - the Muon simulator (roteq_sim_muon.h): matrices of scale-invariant rows updated by
 * torch.optim.Muon's algorithm, with the Newton-Schulz products through CBLAS (OpenBLAS).
 *
 * Each matrix runs its whole trajectory on one thread with OpenBLAS held to one thread, and
 * draws its gradients from its own Philox streams (stream = matrix * rows + row), so the
 * results do not depend on the thread count; statistics are reduced in matrix order after the
 * workers join. The algorithm (checked against torch/optim/_muon.py of PyTorch 2.9): the
 * buffer is a lerp towards the gradient, Nesterov takes a lerp of the gradient towards the
 * buffer, the iteration runs on the wide orientation after division by max(||U||_F, eps), and
 * weight decay uses the unadjusted lr. PyTorch runs the iteration in bfloat16: the float64
 * form is the default (theory models it), and the bfloat16 one emulates torch's arithmetic
 * (float32 products of bfloat16 operands, each operation's result rounded to bfloat16), so that
 * a walk shows what a real torch.optim.Muon run settles at. */
#include "roteq_sim_muon.h"
#include "roteq_sim.h"
#include "roteq_util.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const roteq_sim_ns_precision_names[ROTEQ_SIM_NS_COUNT] = {"float64", "bfloat16"};

int roteq_sim_ns_precision_parse(const char *name, roteq_sim_ns_precision *out)
{
    for (int i = 0; i < ROTEQ_SIM_NS_COUNT; i++)
        if (strcmp(name, roteq_sim_ns_precision_names[i]) == 0) {
            *out = (roteq_sim_ns_precision)i;
            return ROTEQ_OK;
        }
    return roteq_error_set(ROTEQ_ENOTFOUND,
                           "unknown Newton-Schulz precision '%s' (float64 or bfloat16)", name);
}

float roteq_sim_bf16_round(float x)
{
    uint32_t u;
    if (isnan(x)) {
        u = 0x7FC00000u;
    } else {
        memcpy(&u, &x, sizeof u);
        u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    }
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

float roteq_sim_bf16_from_double(double x)
{
    return roteq_sim_bf16_round((float)x);
}

struct roteq_muon_work {
    size_t rows, cols, p, q;
    roteq_sim_ns_precision prec;
    double *X, *Y, *A, *B, *U, *O;
    float *Xf, *Yf, *Af, *Bf; /* bfloat16 values held in float32 (BFLOAT16 only) */
};

roteq_muon_work *roteq_muon_work_alloc(size_t rows, size_t cols, roteq_sim_ns_precision prec)
{
    roteq_muon_work *w = calloc(1, sizeof *w);
    if (!w) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory for a %zux%zu Muon workspace", rows, cols);
        return NULL;
    }
    w->rows = rows, w->cols = cols;
    w->p = rows < cols ? rows : cols;
    w->q = rows < cols ? cols : rows;
    size_t n = rows * cols, pp = w->p * w->p;
    w->X = malloc(n * sizeof(double));
    w->Y = malloc(n * sizeof(double));
    w->U = malloc(n * sizeof(double));
    w->O = malloc(n * sizeof(double));
    w->A = malloc(pp * sizeof(double));
    w->B = malloc(pp * sizeof(double));
    w->prec = prec;
    int bf = prec == ROTEQ_SIM_NS_BFLOAT16;
    if (bf) {
        w->Xf = malloc(n * sizeof(float));
        w->Yf = malloc(n * sizeof(float));
        w->Af = malloc(pp * sizeof(float));
        w->Bf = malloc(pp * sizeof(float));
    }
    if (!w->X || !w->Y || !w->U || !w->O || !w->A || !w->B ||
        (bf && (!w->Xf || !w->Yf || !w->Af || !w->Bf))) {
        roteq_muon_work_free(w);
        roteq_error_set(ROTEQ_ENOMEM, "out of memory for a %zux%zu Muon workspace", rows, cols);
        return NULL;
    }
    return w;
}

void roteq_muon_work_free(roteq_muon_work *w)
{
    if (!w)
        return;
    free(w->X), free(w->Y), free(w->A), free(w->B), free(w->U), free(w->O);
    free(w->Xf), free(w->Yf), free(w->Af), free(w->Bf);
    free(w);
}

static void round_all(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = roteq_sim_bf16_round(x[i]);
}

/* torch.optim.Muon's _zeropower_via_newtonschulz on grad.bfloat16() (struct comment in
 * roteq_sim_muon.h). torch reduces the norm's squares in float32 (in its own order); here the
 * bfloat16 squares are summed in double, which can differ from torch's only when the float32
 * sums straddle a bfloat16 rounding boundary. */
static void ns_bf16(roteq_muon_work *w, const double *U, double *O, int ns_steps, double eps)
{
    size_t r = w->rows, c = w->cols, p = w->p, q = w->q, n = r * c;
    int tr = r > c;
    float *X = w->Xf, *Y = w->Yf, *A = w->Af, *B = w->Bf;
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++)
            X[tr ? j * r + i : i * c + j] = roteq_sim_bf16_from_double(U[i * c + j]);
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)X[i] * (double)X[i];
    /* clamp(min=eps) compares in float32 and stores eps rounded to bfloat16 */
    float norm = roteq_sim_bf16_from_double(sqrt(ss));
    if (norm < (float)eps)
        norm = roteq_sim_bf16_from_double(eps);
    for (size_t i = 0; i < n; i++)
        X[i] = roteq_sim_bf16_round(X[i] / norm);
    const int P = (int)p, Q = (int)q;
    for (int k = 0; k < ns_steps; k++) {
        /* gram = X X^T; gram_update = addmm(gram, gram, gram, beta=b, alpha=c);
         * X = addmm(X, gram_update, X, beta=a): each rounded to bfloat16 once */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, P, Q, 1.0f, X, Q, 0.0f, A, P);
        for (size_t i = 0; i < p; i++) {
            for (size_t j = i; j < p; j++)
                A[i * p + j] = roteq_sim_bf16_round(A[i * p + j]);
            for (size_t j = 0; j < i; j++)
                A[i * p + j] = A[j * p + i];
        }
        memcpy(B, A, p * p * sizeof *B);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, P, P, (float)ROTEQ_MUON_NS_C, A,
                    P, A, P, (float)ROTEQ_MUON_NS_B, B, P);
        round_all(B, p * p);
        memcpy(Y, X, n * sizeof *Y);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, Q, P, 1.0f, B, P, X, Q,
                    (float)ROTEQ_MUON_NS_A, Y, Q);
        round_all(Y, n);
        float *t = X;
        X = Y, Y = t;
    }
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++)
            O[i * c + j] = (double)X[tr ? j * r + i : i * c + j];
}

void roteq_muon_ns(roteq_muon_work *w, const double *U, double *O, int ns_steps, double eps)
{
    if (w->prec == ROTEQ_SIM_NS_BFLOAT16) {
        ns_bf16(w, U, O, ns_steps, eps);
        return;
    }
    size_t r = w->rows, c = w->cols, p = w->p, q = w->q, n = r * c;
    int tr = r > c;
    double *X = w->X, *Y = w->Y, *A = w->A, *B = w->B;
    if (tr) {
        for (size_t i = 0; i < r; i++)
            for (size_t j = 0; j < c; j++)
                X[j * r + i] = U[i * c + j];
    } else {
        memcpy(X, U, n * sizeof *X);
    }
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += X[i] * X[i];
    double norm = sqrt(ss);
    if (norm < eps)
        norm = eps;
    for (size_t i = 0; i < n; i++)
        X[i] /= norm;
    const int P = (int)p, Q = (int)q;
    for (int k = 0; k < ns_steps; k++) {
        /* A = X X^T (upper triangle by dsyrk, mirrored); B = b A + c A A; Y = a X + B X. */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, P, Q, 1.0, X, Q, 0.0, A, P);
        for (size_t i = 0; i < p; i++)
            for (size_t j = 0; j < i; j++)
                A[i * p + j] = A[j * p + i];
        memcpy(B, A, p * p * sizeof *B);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, P, P, ROTEQ_MUON_NS_C, A, P, A, P,
                    ROTEQ_MUON_NS_B, B, P);
        memcpy(Y, X, n * sizeof *Y);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, Q, P, 1.0, B, P, X, Q,
                    ROTEQ_MUON_NS_A, Y, Q);
        double *t = X;
        X = Y, Y = t;
    }
    if (tr) {
        for (size_t i = 0; i < r; i++)
            for (size_t j = 0; j < c; j++)
                O[i * c + j] = X[j * r + i];
    } else {
        memcpy(O, X, n * sizeof *O);
    }
}

/* torch.lerp(a, b, w) on CPU: a + w (b - a) for |w| < 1/2, else b - (b - a)(1 - w). */
static double lerp(double a, double b, double w)
{
    return fabs(w) < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w);
}

void roteq_muon_step(roteq_muon_work *w, const roteq_muon_hparams *hp, double lr, double wd,
                     double *W, double *buf, const double *G)
{
    size_t n = w->rows * w->cols;
    double m = hp->momentum;
    for (size_t i = 0; i < n; i++) {
        buf[i] = lerp(buf[i], G[i], 1 - m);
        w->U[i] = hp->nesterov ? lerp(G[i], buf[i], m) : buf[i];
    }
    roteq_muon_ns(w, w->U, w->O, hp->ns_steps, hp->eps);
    double d = 1 - lr * wd, neg = -roteq_muon_adjusted_lr(hp, lr);
    for (size_t i = 0; i < n; i++) {
        double x = W[i] * d;
        W[i] = x + neg * w->O[i];
    }
}

const double *roteq_muon_work_update(const roteq_muon_work *w)
{
    return w->O;
}

void roteq_sim_muon_config_init(roteq_sim_muon_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->hp = roteq_muon_defaults();
    cfg->hp.rows = cfg->hp.cols = 64;
    cfg->matrices = 16;
    cfg->steps = 4000;
    cfg->seed = 1;
    cfg->init_norm = NAN;
    cfg->lr_schedule = cfg->wd_schedule = roteq_schedule_constant();
}

int roteq_sim_muon_config_validate(const roteq_sim_muon_config *cfg)
{
    int st = roteq_muon_validate(&cfg->hp);
    if (st)
        return st;
    if (cfg->matrices < 1)
        return roteq_error_set(ROTEQ_EINVAL, "matrices must be positive");
    if (cfg->steps < 1)
        return roteq_error_set(ROTEQ_EINVAL, "steps must be positive");
    if ((unsigned)cfg->ns_precision >= ROTEQ_SIM_NS_COUNT)
        return roteq_error_set(ROTEQ_EINVAL, "ns_precision must be float64 or bfloat16");
    if (cfg->hp.cols < 2)
        return roteq_error_set(ROTEQ_EINVAL, "a row needs at least 2 columns to rotate, got %zu",
                               cfg->hp.cols);
    if ((double)cfg->matrices * (double)cfg->hp.rows > 4294967295.0)
        return roteq_error_set(ROTEQ_EINVAL, "matrices*rows must fit in 32 bits (Philox streams)");
    if (!isnan(cfg->init_norm) && !(cfg->init_norm > 0 && isfinite(cfg->init_norm)))
        return roteq_error_set(ROTEQ_EINVAL, "init_norm must be positive, got %g", cfg->init_norm);
    /* Refuse before allocating what cannot fit (overcommitted memory would be killed later). */
    double need = roteq_sim_muon_memory(cfg);
    const char *what;
    uint64_t avail = roteq_mem_available(&what);
    if (avail > 0 && need > (double)avail) {
        char need_s[32], avail_s[32];
        roteq_format_bytes(need, need_s, sizeof need_s);
        roteq_format_bytes((double)avail, avail_s, sizeof avail_s);
        return roteq_error_set(ROTEQ_EINVAL,
                               "%zux%zu matrices need about %s, more than the %s available (%s)",
                               cfg->hp.rows, cfg->hp.cols, need_s, avail_s, what);
    }
    return ROTEQ_OK;
}

double roteq_sim_muon_memory(const roteq_sim_muon_config *cfg)
{
    /* per worker thread: W, W_old, buffer, G and the workspace's X, Y, U, O (8 matrices) plus
     * two p x p Gram matrices (and their float32 copies in bfloat16); per matrix the
     * statistics; per record the series */
    double n = (double)cfg->hp.rows * (double)cfg->hp.cols;
    double p = (double)(cfg->hp.rows < cfg->hp.cols ? cfg->hp.rows : cfg->hp.cols);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double T = cfg->threads ? cfg->threads : (cores > 0 ? (double)cores : 1.0);
    if (T > (double)cfg->matrices)
        T = (double)cfg->matrices;
    size_t every = cfg->every ? cfg->every : (cfg->steps + 199) / 200;
    double nrec = (double)(cfg->steps / (every ? every : 1));
    double f32 = cfg->ns_precision == ROTEQ_SIM_NS_BFLOAT16 ? 0.5 * (2 * n + 2 * p * p) : 0;
    return 8.0 *
           (T * (8 * n + 2 * p * p + f32) + (double)cfg->matrices * (5 + 4 * nrec) + 6 * nrec);
}

enum { ACC_ROWNORM, ACC_ROWANG2, ACC_FROB, ACC_MATANG2, ACC_Q, ACC_COUNT };

typedef struct {
    const roteq_sim_muon_config *cfg;
    double init_norm;
    size_t nrec, every, q_start;
    double *acc; /* [matrix][ACC_COUNT]: last-quarter time sums */
    double *rec; /* [matrix][nrec][4]: recorded steps */
    unsigned nthreads, tid;
    int status;
} muon_job;

/* Scale-invariant row gradients: g = (z - (z.w) w/||w||^2)/||w|| from the row's normals. */
static int row_gradients(const roteq_sim_muon_config *cfg, size_t mat, uint64_t step,
                         const double *W, double *G)
{
    size_t R = cfg->hp.rows, C = cfg->hp.cols;
    for (size_t i = 0; i < R; i++) {
        double *g = G + i * C;
        const double *w = W + i * C;
        int st = roteq_sim_normals(cfg->seed, (uint32_t)(mat * R + i), step, g, C);
        if (st)
            return st;
        double ww = 0, zw = 0;
        for (size_t j = 0; j < C; j++)
            ww += w[j] * w[j], zw += g[j] * w[j];
        double k = zw / ww, s = 1 / sqrt(ww);
        for (size_t j = 0; j < C; j++)
            g[j] = (g[j] - k * w[j]) * s;
    }
    return ROTEQ_OK;
}

/* Angle between a and b (length n): 2 asin(||a/|a| - b/|b|||/2), stable for tiny angles. */
static double angle_between(const double *a, const double *b, size_t n, double *nb)
{
    double aa = 0, bb = 0;
    for (size_t j = 0; j < n; j++)
        aa += a[j] * a[j], bb += b[j] * b[j];
    double ia = 1 / sqrt(aa), ib = 1 / sqrt(bb), dd = 0;
    for (size_t j = 0; j < n; j++) {
        double e = a[j] * ia - b[j] * ib;
        dd += e * e;
    }
    *nb = sqrt(bb);
    return 2 * asin(fmin(1.0, sqrt(dd) / 2));
}

static int run_matrix(muon_job *job, roteq_muon_work *wk, double *W, double *Wold, double *buf,
                      double *G, size_t mat)
{
    const roteq_sim_muon_config *cfg = job->cfg;
    size_t R = cfg->hp.rows, C = cfg->hp.cols, n = R * C;
    for (size_t i = 0; i < R; i++) {
        int st = roteq_sim_normals(cfg->seed, (uint32_t)(mat * R + i), 0, W + i * C, C);
        if (st)
            return st;
        double ss = 0;
        for (size_t j = 0; j < C; j++)
            ss += W[i * C + j] * W[i * C + j];
        for (size_t j = 0; j < C; j++)
            W[i * C + j] *= job->init_norm / sqrt(ss);
    }
    memset(buf, 0, n * sizeof *buf);
    double *acc = job->acc + mat * ACC_COUNT, *rec = job->rec + mat * job->nrec * 4;
    for (size_t t = 1; t <= cfg->steps; t++) {
        int st = row_gradients(cfg, mat, t, W, G);
        if (st)
            return st;
        memcpy(Wold, W, n * sizeof *W);
        double lr = cfg->hp.lr * roteq_schedule_factor(&cfg->lr_schedule, (long)t);
        double wd = cfg->hp.weight_decay * roteq_schedule_factor(&cfg->wd_schedule, (long)t);
        roteq_muon_step(wk, &cfg->hp, lr, wd, W, buf, G);
        int quarter = t >= job->q_start, record = t % job->every == 0;
        if (!quarter && !record)
            continue;
        double rn = 0, ra2 = 0, frob, qs = 0;
        FILE *tr = record && mat == 0 ? cfg->trace : NULL;
        for (size_t i = 0; i < R; i++) {
            double nb, a = angle_between(Wold + i * C, W + i * C, C, &nb);
            rn += nb, ra2 += a * a;
            if (tr)
                fprintf(tr, "%zu,W,%zu,%.17g,%.17g,%.17g,%.17g\n", t, i, nb, a, lr, wd);
        }
        double ma = angle_between(Wold, W, n, &frob);
        rn /= (double)R, ra2 /= (double)R;
        if (quarter) {
            for (size_t i = 0; i < n; i++)
                qs += wk->O[i] * wk->O[i];
            acc[ACC_ROWNORM] += rn, acc[ACC_ROWANG2] += ra2, acc[ACC_FROB] += frob;
            acc[ACC_MATANG2] += ma * ma, acc[ACC_Q] += qs / (double)R;
        }
        if (record) {
            double *r = rec + (t / job->every - 1) * 4;
            r[0] = rn, r[1] = ra2, r[2] = frob, r[3] = ma * ma;
        }
    }
    return ROTEQ_OK;
}

static void *muon_worker(void *arg)
{
    muon_job *job = arg;
    const roteq_sim_muon_config *cfg = job->cfg;
    size_t n = cfg->hp.rows * cfg->hp.cols;
    roteq_muon_work *wk = roteq_muon_work_alloc(cfg->hp.rows, cfg->hp.cols, cfg->ns_precision);
    double *mem = malloc(4 * n * sizeof(double));
    if (!wk || !mem) {
        job->status = roteq_error_set(ROTEQ_ENOMEM, "out of memory for a %zux%zu matrix",
                                      cfg->hp.rows, cfg->hp.cols);
    } else {
        for (size_t mat = job->tid; mat < cfg->matrices && !job->status; mat += job->nthreads)
            job->status = run_matrix(job, wk, mem, mem + n, mem + 2 * n, mem + 3 * n, mat);
    }
    free(mem);
    roteq_muon_work_free(wk);
    return NULL;
}

/* Mean and standard error over matrices of per-matrix values v[mat*stride]. */
static void mean_se(const double *v, size_t stride, size_t M, double *mean, double *se)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < M; i++)
        s += v[i * stride];
    double mu = s / (double)M;
    for (size_t i = 0; i < M; i++)
        s2 += (v[i * stride] - mu) * (v[i * stride] - mu);
    *mean = mu;
    *se = M > 1 ? sqrt(s2 / (double)(M - 1) / (double)M) : (double)NAN;
}

static int summarise(const muon_job *job, roteq_sim_muon_result *out)
{
    const roteq_sim_muon_config *cfg = job->cfg;
    size_t M = cfg->matrices, nq = cfg->steps - job->q_start + 1;
    double *v = malloc(M * ACC_COUNT * sizeof *v);
    out->rows = calloc(job->nrec ? job->nrec : 1, sizeof *out->rows);
    if (!v || !out->rows) {
        free(v);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for Muon statistics");
    }
    for (size_t i = 0; i < M * ACC_COUNT; i++)
        v[i] = job->acc[i] / (double)nq;
    double ms, ms_se;
    mean_se(v + ACC_ROWNORM, ACC_COUNT, M, &out->row_norm, &out->row_norm_se);
    mean_se(v + ACC_FROB, ACC_COUNT, M, &out->matrix_norm, &out->matrix_norm_se);
    mean_se(v + ACC_ROWANG2, ACC_COUNT, M, &ms, &ms_se);
    out->row_angle_rms = sqrt(ms), out->row_angle_rms_se = ms_se / (2 * sqrt(ms));
    mean_se(v + ACC_MATANG2, ACC_COUNT, M, &ms, &ms_se);
    out->matrix_angle_rms = sqrt(ms), out->matrix_angle_rms_se = ms_se / (2 * sqrt(ms));
    mean_se(v + ACC_Q, ACC_COUNT, M, &out->q_row, &out->q_row_se);
    free(v);
    for (size_t k = 0; k < job->nrec; k++) {
        double s[4] = {0, 0, 0, 0};
        for (size_t mat = 0; mat < M; mat++)
            for (int j = 0; j < 4; j++)
                s[j] += job->rec[(mat * job->nrec + k) * 4 + j];
        roteq_sim_muon_row *r = &out->rows[k];
        r->step = (k + 1) * job->every;
        r->row_norm = s[0] / (double)M;
        r->row_angle_rms = sqrt(s[1] / (double)M);
        r->matrix_norm = s[2] / (double)M;
        r->matrix_angle_rms = sqrt(s[3] / (double)M);
    }
    out->nrows = job->nrec;
    roteq_muon_transient *tr = roteq_muon_transient_alloc(&cfg->hp, job->init_norm);
    if (!tr)
        return ROTEQ_ENOMEM;
    for (size_t t = 1, k = 0; t <= cfg->steps && k < job->nrec; t++) {
        double lr = cfg->hp.lr * roteq_schedule_factor(&cfg->lr_schedule, (long)t);
        double wd = cfg->hp.weight_decay * roteq_schedule_factor(&cfg->wd_schedule, (long)t);
        double pn, pa;
        roteq_muon_transient_step(tr, lr, wd, &pn, &pa);
        if (t % job->every == 0)
            out->rows[k].pred_norm = pn, out->rows[k++].pred_angle = pa;
    }
    roteq_muon_transient_free(tr);
    return ROTEQ_OK;
}

int roteq_sim_muon_run(const roteq_sim_muon_config *cfg, roteq_sim_muon_result *out)
{
    memset(out, 0, sizeof *out);
    int st = roteq_sim_muon_config_validate(cfg);
    if (st)
        return st;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double init_norm = cfg->init_norm;
    if (isnan(init_norm)) {
        roteq_muon_equilibrium e;
        st = roteq_muon_equilibrium_of(&cfg->hp, ROTEQ_MUON_PRED_BEST, &e);
        if (st)
            return st;
        init_norm = e.norm;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned T = cfg->threads ? cfg->threads : (cores > 0 ? (unsigned)cores : 1u);
    if (T > cfg->matrices)
        T = (unsigned)cfg->matrices;
    size_t every = cfg->every ? cfg->every : (cfg->steps + 199) / 200;
    size_t quarter = cfg->steps / 4 ? cfg->steps / 4 : 1;
    muon_job *jobs = calloc(T, sizeof *jobs);
    pthread_t *th = calloc(T, sizeof *th);
    size_t nrec = cfg->steps / every;
    double *acc = calloc(cfg->matrices * ACC_COUNT, sizeof *acc);
    double *rec = calloc(cfg->matrices * (nrec ? nrec : 1) * 4, sizeof *rec);
    if (!jobs || !th || !acc || !rec) {
        free(jobs), free(th), free(acc), free(rec);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu Muon matrices", cfg->matrices);
    }
    /* Each worker calls BLAS on its own matrix: OpenBLAS's own threads would only compete. */
    openblas_set_num_threads(1);
    unsigned started = 0;
    for (unsigned i = 0; i < T; i++) {
        jobs[i] =
            (muon_job){cfg, init_norm, nrec, every, cfg->steps - quarter + 1, acc, rec, T, i, 0};
        if (T > 1 && pthread_create(&th[i], NULL, muon_worker, &jobs[i]) != 0)
            break;
        if (T == 1)
            muon_worker(&jobs[i]);
        started++;
    }
    for (unsigned i = 0; T > 1 && i < started; i++)
        pthread_join(th[i], NULL);
    st = started < T ? roteq_error_set(ROTEQ_ERUNTIME, "cannot start worker threads") : 0;
    for (unsigned i = 0; i < started && !st; i++)
        st = jobs[i].status;
    if (!st)
        st = summarise(&jobs[0], out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    out->threads_used = T;
    free(jobs), free(th), free(acc), free(rec);
    if (st)
        roteq_sim_muon_result_free(out);
    return st;
}

void roteq_sim_muon_result_free(roteq_sim_muon_result *r)
{
    if (!r)
        return;
    free(r->rows);
    r->rows = NULL;
    r->nrows = 0;
}

/* CPU time of the calling thread: the benchmarks run on one thread, and the machine may be
 * shared, so wall time would measure the neighbours. */
static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double roteq_sim_muon_bench_ns(size_t n, int ns_steps, size_t reps, double *flops)
{
    roteq_muon_work *wk = roteq_muon_work_alloc(n, n, ROTEQ_SIM_NS_FLOAT64);
    double *U = malloc(n * n * sizeof *U), *O = malloc(n * n * sizeof *O);
    if (!wk || !U || !O) {
        roteq_muon_work_free(wk), free(U), free(O);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for a %zux%zu benchmark", n, n);
    }
    for (size_t i = 0; i < n; i++)
        if (roteq_sim_normals(1, (uint32_t)i, 1, U + i * n, n)) {
            roteq_muon_work_free(wk), free(U), free(O);
            return ROTEQ_ENOMEM;
        }
    openblas_set_num_threads(1);
    double t0 = now_seconds();
    for (size_t r = 0; r < reps; r++)
        roteq_muon_ns(wk, U, O, ns_steps, 1e-7);
    double sec = now_seconds() - t0;
    double dn = (double)n;
    /* per step: dsyrk n^2 (n+1) ~ n^3, A A 2n^3, B X 2n^3 */
    *flops = (double)reps * ns_steps * (dn * dn * (dn + 1) + 4 * dn * dn * dn);
    roteq_muon_work_free(wk), free(U), free(O);
    return sec;
}

double roteq_sim_muon_bench_dgemm(size_t n, size_t reps, double *flops)
{
    double *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b),
           *c = calloc(n * n, sizeof *c);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for a %zux%zu benchmark", n, n);
    }
    for (size_t i = 0; i < n * n; i++)
        a[i] = 1.0 / (double)(i % 7 + 1), b[i] = 1.0 / (double)(i % 5 + 2);
    openblas_set_num_threads(1);
    double t0 = now_seconds();
    for (size_t r = 0; r < reps; r++)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, a,
                    (int)n, b, (int)n, 0.0, c, (int)n);
    double sec = now_seconds() - t0;
    *flops = (double)reps * 2.0 * (double)n * (double)n * (double)n;
    free(a), free(b), free(c);
    return sec;
}

double roteq_sim_muon_bench_walk(size_t n, size_t steps)
{
    roteq_sim_muon_config cfg;
    roteq_sim_muon_config_init(&cfg);
    cfg.hp.lr = 0.02, cfg.hp.weight_decay = 0.1;
    cfg.hp.rows = cfg.hp.cols = n;
    cfg.matrices = 1, cfg.threads = 1, cfg.steps = steps;
    cfg.init_norm = 1.3; /* near the equilibrium; skips the prediction */
    roteq_sim_muon_result res;
    double t0 = now_seconds();
    int st = roteq_sim_muon_run(&cfg, &res);
    double sec = now_seconds() - t0;
    if (st)
        return st;
    roteq_sim_muon_result_free(&res);
    return sec / (double)steps;
}
