/* axis.c - the neuron axis of a weight and the float64 image with neurons as rows.
 *
 * roteq measures a neuron as one slice of a weight. PyTorch puts the output axis first, so the
 * snapshot reader walks rows; Flax kernels and HF's GPT-2 Conv1D put it last. Rather than teach
 * every reader every layout, a weight whose neuron axis is not 0 is copied once into a float64
 * rows x cols image (this file), which the readers then treat like any row-major F64 tensor. */
#include "roteq_analysis.h"
#include "roteq_util.h"

#include <regex.h>
#include <string.h>

static double f16(uint16_t h)
{
    unsigned sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp((double)mant, -24);
    else if (exp == 31)
        v = mant ? DNAN : ((double)INFINITY);
    else
        v = ldexp((double)(mant | 0x400), (int)exp - 25);
    return sign ? -v : v;
}

static double element(roteq_dtype dt, const unsigned char *p)
{
    switch (dt) {
    case ROTEQ_DT_F64: {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    case ROTEQ_DT_F32: {
        float f;
        memcpy(&f, p, 4);
        return (double)f;
    }
    case ROTEQ_DT_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return f16(h);
    }
    case ROTEQ_DT_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return (double)f;
    }
    default:
        return DNAN;
    }
}

void roteq_analysis_tensor_rows(const roteq_analysis_tensor_info *t, const void *data, int axis,
                                double *out)
{
    size_t rank = t->rank ? t->rank : 1;
    uint64_t shape[ROTEQ_TENSOR_MAX_RANK];
    for (size_t d = 0; d < rank; d++)
        shape[d] = t->rank ? t->shape[d] : 1;
    size_t ax = (size_t)(axis < 0 ? axis + (int)rank : axis);
    /* Strides of the stored order, in elements. */
    uint64_t stride[ROTEQ_TENSOR_MAX_RANK], s = 1, numel = 1;
    for (size_t k = 0; k < rank; k++) {
        size_t d = t->fortran_order ? k : rank - 1 - k;
        stride[d] = s;
        s *= shape[d];
        numel *= shape[d];
    }
    if (numel == 0)
        return;
    size_t es = roteq_analysis_dtype_size(t->dtype);
    uint64_t rows = shape[ax], cols = numel / rows;
    const unsigned char *base = data;
    /* Odometer over the C-order index of the tensor: the output row is idx[ax], the column the
     * C-order rank of the other axes, which advances by one per step with idx[ax] held out. */
    uint64_t idx[ROTEQ_TENSOR_MAX_RANK] = {0}, col = 0;
    for (uint64_t k = 0; k < numel; k++) {
        uint64_t off = 0;
        for (size_t d = 0; d < rank; d++)
            off += idx[d] * stride[d];
        out[idx[ax] * cols + col] = element(t->dtype, base + off * es);
        /* next index, with the neuron axis innermost so columns advance in order */
        size_t d = rank;
        if (++idx[ax] < rows)
            continue;
        idx[ax] = 0;
        col++;
        while (d-- > 0) {
            if (d == ax)
                continue;
            if (++idx[d] < shape[d])
                break;
            idx[d] = 0;
        }
    }
}

/* Flax and orbax name a dense or conv weight `kernel` ([in, out], [kh, kw, in, out]). */
static int flax_kernel(const char *name)
{
    size_t n = strlen(name);
    if (n < 6 || strcmp(name + n - 6, "kernel") != 0)
        return 0;
    return n == 6 || name[n - 7] == '.' || name[n - 7] == '/' || name[n - 7] == '_';
}

/* HF GPT-2's Conv1D modules: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj ([in, out]). */
static int gpt2_conv1d(const char *name)
{
    static const char *const mods[] = {"c_attn.weight", "c_proj.weight", "c_fc.weight",
                                       "q_attn.weight"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        size_t m = strlen(mods[i]);
        if (n >= m && strcmp(name + n - m, mods[i]) == 0 && (n == m || name[n - m - 1] == '.'))
            return 1;
    }
    return 0;
}

int roteq_analysis_axis_for(const char *name, size_t rank, const roteq_analysis_axis_rule *rules,
                            size_t nrules, const roteq_analysis_meta *meta, unsigned conventions,
                            int *axis, const char **source)
{
    int a = 0;
    const char *from = NULL;
    const roteq_analysis_layer_meta *lm = meta ? roteq_analysis_meta_layer(meta, name) : NULL;
    for (size_t i = 0; i < nrules && from == NULL; i++) {
        regex_t re;
        if (regcomp(&re, rules[i].regex, REG_EXTENDED | REG_NOSUB) != 0)
            return roteq_error_set(ROTEQ_EINVAL, "--neuron-axis: invalid regular expression '%s'",
                                   rules[i].regex);
        if (regexec(&re, name, 0, NULL, 0) == 0) {
            a = rules[i].axis;
            from = "--neuron-axis";
        }
        regfree(&re);
    }
    if (from == NULL && lm && lm->has_neuron_axis) {
        a = lm->neuron_axis;
        from = "metadata";
    }
    if (from == NULL && (conventions & ROTEQ_AXIS_FLAX) && flax_kernel(name)) {
        a = -1;
        from = "Flax 'kernel' convention";
    }
    if (from == NULL && (conventions & ROTEQ_AXIS_GPT2) && gpt2_conv1d(name)) {
        a = -1;
        from = "GPT-2 Conv1D convention (config.json)";
    }
    int r = (int)(rank ? rank : 1);
    if (a < -r || a >= r)
        return roteq_error_set(ROTEQ_EINVAL,
                               "tensor '%s': neuron axis %d (%s) is outside its %d axes", name, a,
                               from ? from : "metadata", r);
    *axis = a < 0 ? a + r : a;
    if (source)
        *source = from;
    return ROTEQ_OK;
}
