/* bench.c - the floor of the engine for `roteq bench`: the bare loop that draws the same normals
 * and nothing else (any kind of normals), over threads, and the SLEEF comparison
 * (bench_sleef.c's kernels; the engine does not use SLEEF). */
#include "sim_internal.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

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
    unsigned T = threads ? threads : roteq_sim_online_cores();
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
        ok = (jobs[i].scratch = roteq_sim_aligned_doubles(ngen)) != NULL;
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
    const roteq_kernel_ops *ops = roteq_sim_normal_ops(kind, isa);
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
    double *buf = roteq_sim_aligned_doubles(roteq_sim_normals_padded(n));
    if (!buf)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory for %zu normals", n);
    ops->normals(seed, stream, step, buf, roteq_sim_normals_padded(n));
    memcpy(out, buf, n * sizeof *out);
    free(buf);
    return ROTEQ_OK;
}
