/* tensorfile.c - header parsers for the two tensor containers a snapshot series may use:
 * safetensors (8-byte little-endian header length, a JSON header, raw data) and NumPy .npy
 * (magic, version, a Python-dict header, raw data). Both work on a memory image so that the
 * mmap'd file and the libFuzzer targets share them; neither trusts a single byte of the header:
 * every length and offset is checked against the file size, and every product against overflow. */
#include "roteq_analysis.h"
#include "roteq_util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

size_t roteq_analysis_dtype_size(roteq_dtype dt)
{
    switch (dt) {
    case ROTEQ_DT_F64:
        return 8;
    case ROTEQ_DT_F32:
        return 4;
    case ROTEQ_DT_F16:
    case ROTEQ_DT_BF16:
        return 2;
    default:
        return 0;
    }
}

const char *roteq_analysis_dtype_name(const roteq_analysis_tensor_info *t)
{
    static const char *const names[] = {"F64", "F32", "F16", "BF16", "non-float"};
    if (t->dtype_name[0])
        return t->dtype_name;
    return t->dtype <= ROTEQ_DT_OTHER ? names[t->dtype] : "non-float";
}

void roteq_analysis_tensor_infos_free(roteq_analysis_tensor_info *t, size_t n)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(t[i].name);
    free(t);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Element size of a safetensors dtype string; 0 for an unknown one. */
static size_t st_dtype(const char *s, roteq_dtype *dt)
{
    static const struct {
        const char *name;
        roteq_dtype dt;
        size_t size;
    } table[] = {{"F64", ROTEQ_DT_F64, 8},      {"F32", ROTEQ_DT_F32, 4},
                 {"F16", ROTEQ_DT_F16, 2},      {"BF16", ROTEQ_DT_BF16, 2},
                 {"I64", ROTEQ_DT_OTHER, 8},    {"U64", ROTEQ_DT_OTHER, 8},
                 {"I32", ROTEQ_DT_OTHER, 4},    {"U32", ROTEQ_DT_OTHER, 4},
                 {"I16", ROTEQ_DT_OTHER, 2},    {"U16", ROTEQ_DT_OTHER, 2},
                 {"I8", ROTEQ_DT_OTHER, 1},     {"U8", ROTEQ_DT_OTHER, 1},
                 {"BOOL", ROTEQ_DT_OTHER, 1},   {"F8_E4M3", ROTEQ_DT_OTHER, 1},
                 {"F8_E5M2", ROTEQ_DT_OTHER, 1}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(s, table[i].name) == 0) {
            *dt = table[i].dt;
            return table[i].size;
        }
    return 0;
}

/* numel * size without overflow; 0 on success. */
static int shape_bytes(const uint64_t *shape, size_t rank, size_t size, uint64_t *out)
{
    uint64_t n = size;
    for (size_t i = 0; i < rank; i++)
        if (__builtin_mul_overflow(n, shape[i], &n))
            return -1;
    *out = n;
    return 0;
}

static int st_tensor(const char *name, const char *key, json_t *v, uint64_t data_start,
                     uint64_t file_size, roteq_analysis_tensor_info *t)
{
    if (!json_is_object(v))
        return roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s': header entry is not an object",
                               name, key);
    json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]",
                               name, key);
    size_t esize = st_dtype(json_string_value(dtype), &t->dtype);
    if (esize == 0)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", name, key,
                               json_string_value(dtype));
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", json_string_value(dtype));
    t->rank = json_array_size(shape);
    if (t->rank > ROTEQ_TENSOR_MAX_RANK)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s': rank %zu is above %d", name, key,
                               t->rank, ROTEQ_TENSOR_MAX_RANK);
    for (size_t i = 0; i < t->rank; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return roteq_error_set(
                ROTEQ_EFORMAT, "%s: tensor '%s': shape must hold non-negative integers", name, key);
        t->shape[i] = (uint64_t)json_integer_value(d);
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b))
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': data_offsets must be integers 0 <= begin <= end",
                               name, key);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    if (end > file_size - data_start)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the file "
                               "(%llu data bytes)",
                               name, key, (unsigned long long)begin, (unsigned long long)end,
                               (unsigned long long)(file_size - data_start));
    uint64_t need = 0;
    if (shape_bytes(t->shape, t->rank, esize, &need) || need != end - begin)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': shape and dtype %s need %llu bytes but "
                               "data_offsets span %llu",
                               name, key, json_string_value(dtype), (unsigned long long)need,
                               (unsigned long long)(end - begin));
    t->offset = data_start + begin;
    t->nbytes = end - begin;
    t->name = strdup(key);
    if (t->name == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    return ROTEQ_OK;
}

static int cmp_offset(const void *x, const void *y)
{
    const roteq_analysis_tensor_info *a = *(const roteq_analysis_tensor_info *const *)x,
                                     *b = *(const roteq_analysis_tensor_info *const *)y;
    return (a->offset > b->offset) - (a->offset < b->offset);
}

/* Two tensors whose data overlap would alias each other's weights (a crafted or corrupt
 * header): refused. Empty tensors hold no bytes and may sit anywhere. */
static int check_overlap(const char *name, roteq_analysis_tensor_info *t, size_t n)
{
    roteq_analysis_tensor_info **by = malloc((n ? n : 1) * sizeof *by);
    if (by == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].nbytes)
            by[m++] = &t[i];
    qsort(by, m, sizeof *by, cmp_offset);
    int st = ROTEQ_OK;
    for (size_t i = 1; i < m && !st; i++)
        if (by[i - 1]->offset + by[i - 1]->nbytes > by[i]->offset)
            st = roteq_error_set(ROTEQ_EFORMAT, "%s: tensors '%s' and '%s' overlap in the file",
                                 name, by[i - 1]->name, by[i]->name);
    free(by);
    return st;
}

int roteq_analysis_safetensors_parse(const char *name, const unsigned char *data, size_t n,
                                     uint64_t file_size, roteq_analysis_tensor_info **out,
                                     size_t *count)
{
    *out = NULL;
    *count = 0;
    if (file_size < 8 || n < 8)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: truncated safetensors header (%llu bytes)", name,
                               (unsigned long long)file_size);
    uint64_t hlen = le64(data);
    if (hlen > ROTEQ_SAFETENSORS_MAX_HEADER)
        return roteq_error_set(
            ROTEQ_EFORMAT, "%s: oversized safetensors header (%llu bytes, at most %llu)", name,
            (unsigned long long)hlen, (unsigned long long)ROTEQ_SAFETENSORS_MAX_HEADER);
    if (hlen > file_size - 8 || hlen > n - 8)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: truncated safetensors header (declares %llu bytes, file has "
                               "%llu after the length)",
                               name, (unsigned long long)hlen, (unsigned long long)(file_size - 8));
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: safetensors header is not valid JSON: %s", name,
                               jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return roteq_error_set(ROTEQ_EFORMAT, "%s: safetensors header is not a JSON object", name);
    }
    roteq_analysis_tensor_info *t = calloc(json_object_size(root) + 1, sizeof *t);
    if (t == NULL) {
        json_decref(root);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    size_t k = 0;
    int st = ROTEQ_OK;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        st = st_tensor(name, key, v, 8 + hlen, file_size, &t[k]);
        if (st)
            break;
        k++;
    }
    json_decref(root);
    if (!st)
        st = check_overlap(name, t, k);
    if (st) {
        roteq_analysis_tensor_infos_free(t, k);
        return st;
    }
    *out = t;
    *count = k;
    return ROTEQ_OK;
}

/* ---- .npy: the header is a Python dict literal like
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * parsed by a small tokenizer that accepts exactly what numpy writes (and reorderings). */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int take(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string into buf (truncated to n-1); 0 on failure. */
static int quoted(cursor *c, char *buf, size_t n)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (k + 1 < n)
            buf[k++] = *c->p;
        c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    buf[k] = '\0';
    return 1;
}

static int word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

static int npy_fail(const char *name, const char *why)
{
    return roteq_error_set(ROTEQ_EFORMAT, "%s: malformed .npy header: %s", name, why);
}

int roteq_analysis_npy_parse(const char *name, const unsigned char *data, size_t n,
                             uint64_t file_size, roteq_analysis_tensor_info *out)
{
    memset(out, 0, sizeof *out);
    if (n < 10 || file_size < 10 || memcmp(data, "\x93NUMPY", 6) != 0)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: not a .npy file (bad magic or truncated)", name);
    unsigned major = data[6];
    uint64_t hlen, start;
    if (major == 1) {
        hlen = (uint64_t)data[8] | (uint64_t)data[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12)
            return npy_fail(name, "truncated");
        hlen = (uint64_t)data[8] | (uint64_t)data[9] << 8 | (uint64_t)data[10] << 16 |
               (uint64_t)data[11] << 24;
        start = 12;
    } else {
        return roteq_error_set(ROTEQ_EFORMAT, "%s: unsupported .npy version %u", name, major);
    }
    if (hlen > n - start || hlen > file_size - start)
        return npy_fail(name, "truncated (header longer than the file)");
    cursor c = {(const char *)data + start, (const char *)data + start + hlen};
    int have_descr = 0, have_order = 0, have_shape = 0;
    char descr[32] = "";
    if (!take(&c, '{'))
        return npy_fail(name, "expected '{'");
    while (!take(&c, '}')) {
        char key[32];
        if (!quoted(&c, key, sizeof key) || !take(&c, ':'))
            return npy_fail(name, "expected 'key':");
        if (strcmp(key, "descr") == 0) {
            if (!quoted(&c, descr, sizeof descr))
                return npy_fail(name, "descr must be a string");
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (word(&c, "True"))
                out->fortran_order = 1;
            else if (!word(&c, "False"))
                return npy_fail(name, "fortran_order must be True or False");
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (!take(&c, '('))
                return npy_fail(name, "shape must be a tuple");
            out->rank = 0;
            while (!take(&c, ')')) {
                skip_ws(&c);
                uint64_t v = 0;
                const char *s = c.p;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    if (v > (UINT64_MAX - 9) / 10)
                        return npy_fail(name, "shape entry too large");
                    v = v * 10 + (uint64_t)(*c.p++ - '0');
                }
                if (c.p == s)
                    return npy_fail(name, "shape must hold non-negative integers");
                if (out->rank == ROTEQ_TENSOR_MAX_RANK)
                    return npy_fail(name, "rank above 8");
                out->shape[out->rank++] = v;
                if (!take(&c, ',')) {
                    if (!take(&c, ')'))
                        return npy_fail(name, "expected ',' or ')' in shape");
                    break;
                }
            }
            have_shape = 1;
        } else {
            return npy_fail(name, "unknown key");
        }
        if (!take(&c, ',')) {
            if (!take(&c, '}'))
                return npy_fail(name, "expected ',' or '}'");
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return npy_fail(name, "needs descr, fortran_order and shape");
    size_t esize;
    if (descr[0] == '>')
        return roteq_error_set(ROTEQ_EFORMAT, "%s: big-endian dtype '%s' is not supported", name,
                               descr);
    if ((descr[0] == '<' || descr[0] == '=') && strcmp(descr + 1, "f8") == 0)
        out->dtype = ROTEQ_DT_F64;
    else if ((descr[0] == '<' || descr[0] == '=') && strcmp(descr + 1, "f4") == 0)
        out->dtype = ROTEQ_DT_F32;
    else if ((descr[0] == '<' || descr[0] == '=') && strcmp(descr + 1, "f2") == 0)
        out->dtype = ROTEQ_DT_F16;
    else
        out->dtype = ROTEQ_DT_OTHER;
    snprintf(out->dtype_name, sizeof out->dtype_name, "%s", descr);
    esize = roteq_analysis_dtype_size(out->dtype);
    out->offset = start + hlen;
    out->nbytes = file_size - out->offset;
    if (out->dtype == ROTEQ_DT_OTHER)
        return ROTEQ_OK; /* not a weight; the caller skips it */
    uint64_t need = 0;
    if (shape_bytes(out->shape, out->rank, esize, &need))
        return npy_fail(name, "shape overflows");
    if (need != out->nbytes)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: shape and dtype '%s' need %llu data bytes but the file has "
                               "%llu",
                               name, descr, (unsigned long long)need,
                               (unsigned long long)out->nbytes);
    return ROTEQ_OK;
}
