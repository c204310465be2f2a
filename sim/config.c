/* config.c - the simulator's configuration (defaults, validation), the instruction sets and
 * their kernels, aligned buffers, and the normals API (exactly the normals a neuron draws). */
#include "sim_internal.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const roteq_sim_isa_names[ROTEQ_SIM_ISA_COUNT] = {"auto", "generic", "avx2", "avx512"};

const char *const roteq_sim_normal_names[ROTEQ_NORMALS_COUNT] = {
    "philox10-boxmuller", "philox7-boxmuller", "philox10-ziggurat", "philox7-ziggurat",
    "ars5-boxmuller",     "ars5-ziggurat",     "ars5-ziggurat256"};

const roteq_sim_normal_kind roteq_sim_engine_normals = ROTEQ_KERNEL_NORMALS;

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
    if (cfg->opt->family->granularity == ROTEQ_GRAN_MATRIX)
        return roteq_error_set(ROTEQ_EUNSUPPORTED,
                               "%s updates whole matrices: its ensembles run in the matrix "
                               "engine (sim/roteq_sim_muon.h), not the per-neuron one",
                               cfg->opt->name);
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

const roteq_kernel_ops *roteq_sim_kernel_for(roteq_sim_isa isa)
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

double *roteq_sim_aligned_doubles(size_t n)
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

const roteq_kernel_ops *roteq_sim_normal_ops(roteq_sim_normal_kind kind, roteq_sim_isa isa)
{
    const roteq_kernel_ops *ops = NULL;
    if ((unsigned)kind >= ROTEQ_NORMALS_COUNT)
        roteq_error_set(ROTEQ_EINVAL, "unknown kind of normals %d", (int)kind);
    else if ((unsigned)isa >= ROTEQ_SIM_ISA_COUNT)
        roteq_error_set(ROTEQ_EINVAL, "unknown instruction set %d", (int)isa);
    else if (!(ops = roteq_sim_kernel_for(isa)))
        roteq_error_set(ROTEQ_EUNSUPPORTED, "instruction set %s is not available here",
                        roteq_sim_isa_names[isa]);
    return ops;
}

int roteq_sim_normals_as(roteq_sim_normal_kind kind, roteq_sim_isa isa, uint64_t seed,
                         uint32_t stream, uint64_t step, double *out, size_t n)
{
    const roteq_kernel_ops *ops = roteq_sim_normal_ops(kind, isa);
    if (!ops)
        return roteq_error_status();
    /* The kernels write whole aligned batches: go through an aligned buffer so that callers
     * need neither alignment nor padding. */
    double *buf = roteq_sim_aligned_doubles(roteq_sim_normals_padded(n));
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

unsigned roteq_sim_online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}
