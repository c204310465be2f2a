/* test_torch.c - torch.save archives read without executing anything, and optimizer state mapped
 * onto layers.
 *
 * The archives are built here, byte by byte: pickles written with the opcodes torch.save uses
 * (protocol 2), zipped with libzip (entries stored, as torch does), so every corruption can be
 * placed exactly: a forbidden global, a recursion bomb, a truncated zip, a CRC mismatch, a view
 * past its storage, shape/stride overflow, a storage of the wrong size, a tensor shared by two
 * names. The e2e suite checks the same readers against files torch itself wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_analysis.h"
#include "roteq_test.h"
#include "roteq_util.h"
#include "torch_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

/* ---- a pickle writer */

typedef struct {
    unsigned char b[1 << 16];
    size_t n;
} pk;

static void raw(pk *p, const void *s, size_t n)
{
    assert_true(p->n + n <= sizeof p->b);
    memcpy(p->b + p->n, s, n);
    p->n += n;
}
static void op(pk *p, unsigned char c)
{
    raw(p, &c, 1);
}
static void str(pk *p, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    op(p, 'X');
    raw(p, &n, 4);
    raw(p, s, n);
}
static void integer(pk *p, int32_t v)
{
    op(p, 'J');
    raw(p, &v, 4);
}
static void flt(pk *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    op(p, 'G');
    for (int i = 7; i >= 0; i--)
        op(p, (unsigned char)(u >> (8 * i)));
}
static void global(pk *p, const char *mod, const char *name)
{
    op(p, 'c');
    raw(p, mod, strlen(mod));
    op(p, '\n');
    raw(p, name, strlen(name));
    op(p, '\n');
}
static void ints_tuple(pk *p, const long *v, size_t n)
{
    op(p, '(');
    for (size_t i = 0; i < n; i++)
        integer(p, (int32_t)v[i]);
    op(p, 't');
}
/* A tensor as torch.save pickles it: _rebuild_tensor_v2(persistent storage, offset, size,
 * stride, False, OrderedDict()). */
static void tensor(pk *p, const char *type, const char *key, long numel, long offset,
                   const long *shape, const long *stride, size_t rank)
{
    global(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '(');
    op(p, '(');
    str(p, "storage");
    global(p, "torch", type);
    str(p, key);
    str(p, "cpu");
    integer(p, (int32_t)numel);
    op(p, 't');
    op(p, 'Q');
    integer(p, (int32_t)offset);
    ints_tuple(p, shape, rank);
    ints_tuple(p, stride, rank);
    op(p, 0x89);
    global(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    op(p, 't');
    op(p, 'R');
}
static void matrix(pk *p, const char *key, long rows, long cols)
{
    long shape[2] = {rows, cols}, stride[2] = {cols, 1};
    tensor(p, "FloatStorage", key, 64, 0, shape, stride, 2); /* storages hold 64 floats */
}
static void start(pk *p)
{
    p->n = 0;
    op(p, 0x80);
    op(p, 2);
}

/* ---- zips */

typedef struct {
    const char *name;
    const void *data;
    size_t n;
} entry;

static void write_zip(const char *path, const entry *e, size_t n)
{
    int err = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    assert_non_null(z);
    for (size_t i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, e[i].data, e[i].n, 0);
        assert_non_null(s);
        zip_int64_t idx = zip_file_add(z, e[i].name, s, ZIP_FL_OVERWRITE);
        assert_true(idx >= 0);
        assert_int_equal(zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0), 0);
    }
    assert_int_equal(zip_close(z), 0);
}

static float F[64];

/* An archive holding `p` as data.pkl and one storage data/0 of `nfloats` floats F[]. */
static void write_archive(const char *path, const pk *p, size_t nfloats)
{
    entry e[3] = {{"archive/data.pkl", p->b, p->n},
                  {"archive/data/0", F, nfloats * sizeof(float)},
                  {"archive/version", "3\n", 2}};
    write_zip(path, e, 3);
}

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = roteq_test_tmpdir();
    for (int i = 0; i < 64; i++)
        F[i] = (float)(0.37 * (i + 1) - 0.013 * i * i);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    roteq_test_rmtree(dir);
    return 0;
}

/* Open `p` archived with 64 floats; returns the status, message in roteq_error_message(). */
static int open_pickle(const pk *p, roteq_torch_archive **a)
{
    char *path = roteq_test_path(dir, "t.pt");
    write_archive(path, p, 64);
    int st = roteq_torch_archive_open(path, a);
    free(path);
    return st;
}

static void expect_error(const pk *p, const char *msg)
{
    roteq_torch_archive *a = NULL;
    int st = open_pickle(p, &a);
    if (st == 0) {
        const roteq_pk *d;
        st = roteq_torch_archive_model(a, NULL, &d);
        for (size_t i = 0; !st && i < d->u.dict.n; i++) {
            roteq_analysis_tensor_info info;
            const unsigned char *data;
            st = roteq_torch_archive_tensor(a, d->u.dict.vals[i], "w", &info, &data);
        }
    }
    roteq_torch_archive_free(a);
    if (st == 0 || strstr(roteq_error_message(), msg) == NULL)
        fail_msg("expected an error with '%s', got %d '%s'", msg, st, roteq_error_message());
    assert_int_equal(st, ROTEQ_EFORMAT);
}

/* {'w': 4x8 view at offset 0, 'same': the same tensor (memo), 'vt': its transpose} */
static void test_state_dict(void **state)
{
    (void)state;
    pk p;
    start(&p);
    op(&p, '}');
    op(&p, '(');
    str(&p, "w");
    matrix(&p, "0", 4, 8);
    op(&p, 'q');
    op(&p, 7); /* BINPUT 7 */
    str(&p, "same");
    op(&p, 'h');
    op(&p, 7); /* BINGET 7: a tensor shared by two names */
    str(&p, "vt");
    long shape[2] = {8, 4}, stride[2] = {1, 8};
    tensor(&p, "FloatStorage", "0", 64, 0, shape, stride, 2);
    str(&p, "tail");
    long s3[2] = {2, 3}, st3[2] = {1, 4}; /* neither C nor Fortran order: gathered */
    tensor(&p, "FloatStorage", "0", 64, 5, s3, st3, 2);
    str(&p, "epoch");
    integer(&p, 3);
    op(&p, 'u');
    op(&p, '.');
    roteq_torch_archive *a;
    assert_int_equal(open_pickle(&p, &a), 0);
    const roteq_pk *d;
    if (roteq_torch_archive_model(a, NULL, &d))
        fail_msg("%s", roteq_error_message());
    roteq_analysis_tensor_info iw, is, iv, it;
    const unsigned char *dw, *ds, *dv, *dt;
    assert_int_equal(roteq_torch_archive_tensor(a, roteq_pk_get(d, "w"), "w", &iw, &dw), 0);
    assert_int_equal(roteq_torch_archive_tensor(a, roteq_pk_get(d, "same"), "same", &is, &ds), 0);
    assert_int_equal(roteq_torch_archive_tensor(a, roteq_pk_get(d, "vt"), "vt", &iv, &dv), 0);
    assert_int_equal(roteq_torch_archive_tensor(a, roteq_pk_get(d, "tail"), "tail", &it, &dt), 0);
    assert_ptr_equal(dw, ds); /* read once */
    assert_int_equal(iw.dtype, ROTEQ_DT_F32);
    assert_int_equal(iw.shape[0], 4);
    assert_int_equal(iw.nbytes, 128);
    assert_int_equal(iv.fortran_order, 1);
    double img[64];
    roteq_analysis_tensor_rows(&iw, dw, 0, img);
    for (int i = 0; i < 32; i++)
        assert_close(img[i], (double)F[i], 0);
    roteq_analysis_tensor_rows(&iv, dv, 0, img); /* vt[r][c] = w[c][r] */
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 4; c++)
            assert_close(img[r * 4 + c], (double)F[c * 8 + r], 0);
    roteq_analysis_tensor_rows(&it, dt, 0, img); /* tail[r][c] = F[5 + r + 4c] */
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            assert_close(img[r * 3 + c], (double)F[5 + r + 4 * c], 0);
    /* the neuron axis last: rows are columns */
    roteq_analysis_tensor_rows(&iw, dw, -1, img);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 4; c++)
            assert_close(img[r * 4 + c], (double)F[c * 8 + r], 0);
    roteq_torch_archive_free(a);
}

static void test_forbidden_global(void **state)
{
    (void)state;
    pk p;
    start(&p);
    global(&p, "posix", "system");
    str(&p, "touch pwned");
    op(&p, 0x85);
    op(&p, 'R');
    op(&p, '.');
    expect_error(&p, "global 'posix.system' is not allowed");
    start(&p);
    op(&p, 0x8c);
    op(&p, 2);
    raw(&p, "os", 2);
    op(&p, 0x8c);
    op(&p, 6);
    raw(&p, "system", 6);
    op(&p, 0x93); /* STACK_GLOBAL */
    op(&p, '.');
    expect_error(&p, "global 'os.system' is not allowed");
    start(&p);
    global(&p, "collections", "OrderedDict");
    op(&p, ')');
    op(&p, 0x81); /* NEWOBJ */
    op(&p, '.');
    expect_error(&p, "opcode NEWOBJ");
}

static void test_recursion_bomb(void **state)
{
    (void)state;
    pk p;
    start(&p);
    for (int i = 0; i < 5000; i++)
        op(&p, ']');
    for (int i = 0; i < 4999; i++)
        op(&p, 'a');
    op(&p, '.');
    expect_error(&p, "nested deeper than 64");
    start(&p);
    for (int i = 0; i < 5000; i++)
        op(&p, '(');
    for (int i = 0; i < 5000; i++)
        op(&p, 't');
    op(&p, '.');
    expect_error(&p, "nested deeper than 64");
    /* a dict placed in another and changed afterwards (found by fuzz_pickle: a cycle) */
    start(&p);
    raw(&p, "}}2}}s}s}s.", 11);
    expect_error(&p, "a container changed after being placed in another");
    start(&p);
    raw(&p, "]2a.", 4); /* a list holding itself */
    expect_error(&p, "holding itself");
}

static void test_bad_views(void **state)
{
    (void)state;
    pk p;
    long shape[2] = {4, 8}, stride[2] = {8, 1};
    start(&p);
    op(&p, '}');
    str(&p, "w");
    tensor(&p, "FloatStorage", "0", 64, 40, shape, stride, 2); /* 40 + 31 >= 64 */
    op(&p, 's');
    op(&p, '.');
    expect_error(&p, "reaches past its storage");
    long big[2] = {1L << 30, 1L << 30}, bstride[2] = {1L << 30, 1};
    start(&p);
    op(&p, '}');
    str(&p, "w");
    global(&p, "torch._utils", "_rebuild_tensor_v2");
    op(&p, '(');
    op(&p, '(');
    str(&p, "storage");
    global(&p, "torch", "FloatStorage");
    str(&p, "0");
    str(&p, "cpu");
    integer(&p, 64);
    op(&p, 't');
    op(&p, 'Q');
    integer(&p, 0);
    op(&p, '(');
    for (int i = 0; i < 3; i++) { /* (2^30)^3 elements, strides 2^60: overflow */
        integer(&p, (int32_t)big[0]);
    }
    op(&p, 't');
    op(&p, '(');
    op(&p, 0x8a); /* LONG1 of 8 bytes: 2^60 */
    op(&p, 8);
    uint64_t s60 = (uint64_t)1 << 60;
    raw(&p, &s60, 8);
    op(&p, 0x8a);
    op(&p, 8);
    raw(&p, &s60, 8);
    integer(&p, (int32_t)bstride[1]);
    op(&p, 't');
    op(&p, 0x89);
    op(&p, 'N');
    op(&p, 't');
    op(&p, 'R');
    op(&p, 's');
    op(&p, '.');
    expect_error(&p, "overflows 64 bits");
    /* a storage whose bytes disagree with its type: 64 floats read as DoubleStorage of 64 */
    start(&p);
    op(&p, '}');
    str(&p, "w");
    tensor(&p, "DoubleStorage", "0", 64, 0, shape, stride, 2);
    op(&p, 's');
    op(&p, '.');
    expect_error(&p, "dtype mismatch");
}

static void test_zip_damage(void **state)
{
    (void)state;
    pk p;
    start(&p);
    op(&p, '}');
    str(&p, "w");
    matrix(&p, "0", 4, 8);
    op(&p, 's');
    op(&p, '.');
    char *path = roteq_test_path(dir, "d.pt");
    write_archive(path, &p, 64);
    size_t n;
    char *img = roteq_test_read_file(path, &n);
    assert_non_null(img);
    /* truncated: half the file (the central directory is gone) */
    FILE *f = fopen(path, "wb");
    fwrite(img, 1, n / 2, f);
    fclose(f);
    roteq_torch_archive *a = NULL;
    assert_int_equal(roteq_torch_archive_open(path, &a), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "not a zip archive"));
    /* CRC mismatch: one byte of the stored floats changed */
    char *hit = NULL;
    for (size_t i = 0; hit == NULL && i + 16 <= n; i++)
        if (memcmp(img + i, F, 16) == 0)
            hit = img + i;
    assert_non_null(hit);
    hit[9] ^= 0x40;
    f = fopen(path, "wb");
    fwrite(img, 1, n, f);
    fclose(f);
    assert_int_equal(roteq_torch_archive_open(path, &a), 0);
    const roteq_pk *d;
    assert_int_equal(roteq_torch_archive_model(a, NULL, &d), 0);
    roteq_analysis_tensor_info info;
    const unsigned char *data;
    assert_int_equal(roteq_torch_archive_tensor(a, roteq_pk_get(d, "w"), "w", &info, &data),
                     ROTEQ_EFORMAT);
    if (strstr(roteq_error_message(), "CRC mismatch") == NULL)
        fail_msg("%s", roteq_error_message());
    roteq_torch_archive_free(a);
    /* the same through the mapping (stored storages used in place, CRC computed here) and over
     * a memory image */
    for (int k = 0; k < 2; k++) {
        if (k == 0)
            assert_int_equal(roteq_torch_archive_open_mapped(path, &a), 0);
        else
            assert_int_equal(roteq_torch_archive_open_buffer("mem.pt", img, n, &a), 0);
        assert_int_equal(roteq_torch_archive_model(a, NULL, &d), 0);
        assert_int_equal(roteq_torch_archive_tensor(a, roteq_pk_get(d, "w"), "w", &info, &data),
                         ROTEQ_EFORMAT);
        if (strstr(roteq_error_message(), "CRC mismatch") == NULL)
            fail_msg("%s", roteq_error_message());
        roteq_torch_archive_free(a);
    }
    hit[9] ^= 0x40; /* intact again: read in place */
    assert_int_equal(roteq_torch_archive_open_buffer("mem.pt", img, n, &a), 0);
    assert_int_equal(roteq_torch_archive_model(a, NULL, &d), 0);
    assert_int_equal(roteq_torch_archive_tensor(a, roteq_pk_get(d, "w"), "w", &info, &data), 0);
    assert_ptr_equal(data, (const unsigned char *)hit);
    roteq_torch_archive_free(a);
    /* not a torch archive; the legacy format is named */
    entry e = {"readme.txt", "hi", 2};
    write_zip(path, &e, 1);
    assert_int_equal(roteq_torch_archive_open(path, &a), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "without ARCHIVE/data.pkl"));
    roteq_test_write_file(path, "\x80\x02\x8a\x0a"
                                "l\xfc\x9c"
                                "F\xf9 j\xa8P\x19.");
    assert_int_equal(roteq_torch_archive_open(path, &a), ROTEQ_EUNSUPPORTED);
    assert_non_null(strstr(roteq_error_message(), "legacy torch.save format"));
    free(img);
    free(path);
}

/* A training-script dict: {'model': {fc1.weight, fc1.bias, fc2.weight, fc2.bias, [extra]},
 * 'optimizer': {'state': {i: {'step', 'exp_avg', 'exp_avg_sq'}}, 'param_groups': [...]}} where
 * fc1 and fc2 share a shape. Storage k holds F shifted by k so that each tensor differs. */
static void write_training(const char *path, int extra, int nparams)
{
    static float S[12][64];
    char keys[12][4];
    for (int k = 0; k < 12; k++) {
        snprintf(keys[k], sizeof keys[k], "%d", k);
        for (int i = 0; i < 64; i++)
            S[k][i] = F[i] + (float)k;
    }
    pk p;
    start(&p);
    op(&p, '}');
    op(&p, '(');
    str(&p, "model");
    op(&p, '}');
    op(&p, '(');
    const char *names[5] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "extra.weight"};
    for (int j = 0; j < 4 + extra; j++) {
        int i = extra ? (j + 4) % 5 : j; /* the frozen tensor first */
        str(&p, names[i]);
        long shape[2] = {4, 8}, stride[2] = {8, 1};
        tensor(&p, "FloatStorage", keys[i], 64, 0, shape, stride, i % 2 && i < 4 ? 1 : 2);
    }
    op(&p, 'u');
    str(&p, "optimizer");
    op(&p, '}');
    op(&p, '(');
    str(&p, "state");
    op(&p, '}');
    op(&p, '(');
    for (int i = 0; i < nparams; i++) {
        integer(&p, i);
        op(&p, '}');
        op(&p, '(');
        str(&p, "step");
        long none[1] = {0};
        tensor(&p, "FloatStorage", keys[11], 64, (long)i, none, none, 0); /* 0-d step */
        str(&p, "exp_avg");
        long shape[2] = {4, 8}, stride[2] = {8, 1};
        tensor(&p, "FloatStorage", keys[5 + i], 64, 0, shape, stride, i % 2 ? 1 : 2);
        str(&p, "exp_avg_sq");
        tensor(&p, "FloatStorage", keys[5 + i], 64, 32, shape, stride, i % 2 ? 1 : 2);
        op(&p, 'u');
    }
    op(&p, 'u');
    str(&p, "param_groups");
    op(&p, ']');
    op(&p, '}');
    op(&p, '(');
    str(&p, "lr");
    flt(&p, 0.00125);
    str(&p, "betas");
    flt(&p, 0.9);
    flt(&p, 0.995);
    op(&p, 0x86);
    str(&p, "eps");
    flt(&p, 1e-8);
    str(&p, "weight_decay");
    flt(&p, 0.05);
    str(&p, "params");
    op(&p, ']');
    op(&p, '(');
    for (int i = 0; i < nparams; i++)
        integer(&p, i);
    op(&p, 'e');
    op(&p, 'u');
    op(&p, 'a');
    op(&p, 'u');
    str(&p, "epoch");
    integer(&p, 2);
    op(&p, 'u');
    op(&p, '.');
    entry e[13] = {{"ck/data.pkl", p.b, p.n}};
    char en[12][32];
    for (int k = 0; k < 12; k++) {
        snprintf(en[k], sizeof en[k], "ck/data/%d", k);
        e[k + 1] = (entry){en[k], S[k], sizeof S[k]};
    }
    write_zip(path, e, 13);
}

static void test_optimizer_by_order(void **state)
{
    (void)state;
    char *path = roteq_test_path(dir, "train.pt");
    write_training(path, 0, 4);
    roteq_analysis_optstate *s = NULL;
    int st = roteq_analysis_optstate_read(path, NULL, &s);
    if (st)
        fail_msg("%s", roteq_error_message());
    assert_string_equal(s->mapping, "order");
    assert_int_equal(s->nlayers, 2);
    for (int l = 0; l < 2; l++) {
        const roteq_analysis_optstate_layer *L =
            roteq_analysis_optstate_find(s, l ? "fc2.weight" : "fc1.weight");
        assert_non_null(L);
        int k = 5 + 2 * l; /* optimizer ids 0 and 2: storages 5 and 7 */
        assert_int_equal(L->rows, 4);
        assert_int_equal(L->cols, 8);
        assert_int_equal(L->step, (long)(F[2 * l] + 11.0f));
        assert_true(L->known & ROTEQ_OPTSTATE_STEP && L->known & ROTEQ_OPTSTATE_BETAS);
        assert_false(L->known & ROTEQ_OPTSTATE_LR_APPLIED);
        assert_close(L->lr, 0.00125, 0);
        assert_close(L->beta2, 0.995, 0);
        assert_close(L->weight_decay, 0.05, 0);
        for (int i = 0; i < 32; i++) {
            assert_close(L->weight[i], (double)(F[i] + (float)(2 * l)), 0);
            assert_close(L->exp_avg[i], (double)(F[i] + (float)k), 0);
            assert_close(L->exp_avg_sq[i], (double)(F[32 + i] + (float)k), 0);
        }
        assert_null(L->momentum_buffer);
    }
    roteq_analysis_optstate_free(s);
    /* a frozen tensor of fc1's shape before it: two orders fit */
    write_training(path, 1, 4);
    assert_int_equal(roteq_analysis_optstate_read(path, NULL, &s), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "more than one order"));
    /* neuron axis last: rows are the 8 columns */
    write_training(path, 0, 4);
    roteq_analysis_axis_rule rule = {"^fc2", -1};
    roteq_analysis_optstate_options o = {.axes = &rule, .naxes = 1};
    assert_int_equal(roteq_analysis_optstate_read(path, &o, &s), 0);
    const roteq_analysis_optstate_layer *L = roteq_analysis_optstate_find(s, "fc2.weight");
    assert_int_equal(L->neuron_axis, 1);
    assert_int_equal(L->rows, 8);
    assert_close(L->exp_avg[1 * 4 + 2], (double)(F[2 * 8 + 1] + 7.0f), 0);
    roteq_analysis_optstate_free(s);
    free(path);
}

/* ---- snapshot directories: the layouts trainers leave */

/* A safetensors file of F32 tensors (names[i], rows x cols, values F + i + step / 8). */
static void write_st(const char *path, const char *const *names, const size_t (*shape)[2], size_t n,
                     int step)
{
    char hdr[4096];
    size_t h = 0, off = 0;
    h += (size_t)snprintf(hdr + h, sizeof hdr - h, "{");
    for (size_t i = 0; i < n; i++) {
        size_t b = shape[i][0] * shape[i][1] * 4;
        h += (size_t)snprintf(hdr + h, sizeof hdr - h,
                              "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],\"data_offsets\":"
                              "[%zu,%zu]}",
                              i ? "," : "", names[i], shape[i][0], shape[i][1], off, off + b);
        off += b;
    }
    h += (size_t)snprintf(hdr + h, sizeof hdr - h, "}");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t len = h;
    fwrite(&len, 8, 1, f);
    fwrite(hdr, 1, h, f);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < shape[i][0] * shape[i][1]; k++) {
            float v = F[k % 64] * (1.0f + 0.01f * (float)(k % 7) * (float)step) + (float)i;
            fwrite(&v, 4, 1, f);
        }
    fclose(f);
}

/* Read DIR as a series (meta JSON text or NULL); returns the status, results in *r. */
static int series(const char *sub, const char *meta, const roteq_snapshot_options *o,
                  roteq_analysis_result **r, char *notes, size_t nlen)
{
    roteq_analysis_meta m;
    roteq_analysis_meta_init(&m);
    if (meta)
        assert_int_equal(roteq_analysis_meta_parse("m.json", meta, strlen(meta), &m), 0);
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &m);
    char *d = roteq_test_path(dir, sub);
    FILE *nf = tmpfile();
    roteq_snapshot_options so = o ? *o : (roteq_snapshot_options){0};
    so.notes = nf;
    roteq_analysis *a = NULL;
    int st = roteq_analysis_read_snapshots(d, &so, &cfg, &a);
    if (!st)
        st = roteq_analysis_finish(a, r);
    roteq_analysis_free(a);
    rewind(nf);
    size_t k = fread(notes, 1, nlen - 1, nf);
    notes[k] = '\0';
    fclose(nf);
    free(d);
    roteq_analysis_meta_clear(&m);
    return st;
}

static void mkdirs(const char *sub)
{
    char *d = roteq_test_path(dir, sub);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

static void put(const char *sub, const char *text)
{
    char *p = roteq_test_path(dir, sub);
    roteq_test_write_file(p, text);
    free(p);
}

/* HF's logged learning rates (trainer_state.json's log_history) at each checkpoint's step:
 * linear between logged steps, the nearest outside them, a repeated step's first entry; and the
 * checkpoints of a folder without optimizer.pt are predicted with them, not the metadata's lr. */
static void test_logged_lr(void **state)
{
    (void)state;
    mkdirs("lh/checkpoint-10");
    mkdirs("lh/checkpoint-20");
    char *d = roteq_test_path(dir, "lh");
    const long steps[6] = {5, 10, 15, 30, 40, 50};
    double lr[6];
    assert_int_equal(roteq_ckpt_logged_lr(d, NULL, steps, lr, 6), 0); /* no trainer_state.json */
    assert_true(isnan(lr[0]) && isnan(lr[5]));
    put("lh/checkpoint-20/trainer_state.json",
        "{\"global_step\": 20, \"log_history\": [{\"step\": 10, \"learning_rate\": 0.001}, "
        "{\"step\": 20, \"learning_rate\": 0.002}, {\"step\": 20, \"eval_loss\": 1.5}, "
        "{\"step\": 20, \"learning_rate\": 0.009}, {\"step\": 40, \"learning_rate\": 0.004}, "
        "{\"step\": 40, \"train_runtime\": 3.0}]}");
    assert_int_equal(roteq_ckpt_logged_lr(d, "checkpoint-20", steps, lr, 6), 1);
    const double want[6] = {0.001, 0.001, 0.0015, 0.003, 0.004, 0.004};
    for (int i = 0; i < 6; i++)
        assert_close(lr[i], want[i], 1e-15);
    static const char *const names[] = {"a.weight"};
    static const size_t shape[1][2] = {{4, 6}};
    for (int k = 1; k <= 2; k++) {
        char path[64];
        snprintf(path, sizeof path, "lh/checkpoint-%d/model.safetensors", 10 * k);
        char *p = roteq_test_path(dir, path);
        write_st(p, names, shape, 1, k);
        free(p);
    }
    roteq_analysis_result *r = NULL;
    char notes[2048];
    int st = series("lh", "{\"optimizer\":\"adamw\",\"lr\":0.5,\"weight_decay\":0.1}", NULL, &r,
                    notes, sizeof notes);
    if (st)
        fail_msg("%s", roteq_error_message());
    assert_close(r->layers[0].lr, 0.002, 1e-15);
    roteq_analysis_result_free(r);
    free(d);
}

/* A torch file that shrinks after it is mapped, while its storages are read (their CRCs): an
 * error naming it, and nothing leaked of the tensor list built so far (this test runs in the ASan
 * suite with leak detection). */
static void shrink_on_map(void *ctx, const char *path)
{
    if (strcmp(path, (const char *)ctx) == 0)
        assert_int_equal(truncate(path, 8192), 0);
}

static void test_shrinks_while_read(void **state)
{
    (void)state;
    enum { N = 128 * 128 };
    static float big[N];
    for (int i = 0; i < N; i++)
        big[i] = F[i % 64];
    pk p;
    start(&p);
    op(&p, '}');
    op(&p, '(');
    long shape[2] = {128, 128}, stride[2] = {128, 1};
    str(&p, "a.weight");
    tensor(&p, "FloatStorage", "0", N, 0, shape, stride, 2);
    str(&p, "b.weight");
    tensor(&p, "FloatStorage", "1", N, 0, shape, stride, 2);
    op(&p, 'u');
    op(&p, '.');
    mkdirs("shrink");
    char *files[2] = {roteq_test_path(dir, "shrink/step_1.pt"),
                      roteq_test_path(dir, "shrink/step_2.pt")};
    entry e[4] = {{"archive/data.pkl", p.b, p.n},
                  {"archive/data/0", big, sizeof big},
                  {"archive/data/1", big, sizeof big},
                  {"archive/version", "3\n", 2}};
    for (int k = 0; k < 2; k++)
        write_zip(files[k], e, 4);
    roteq_snapshot_options so = {.mapped = shrink_on_map, .ctx = files[1]};
    roteq_analysis_result *r = NULL;
    char notes[2048];
    int st = series("shrink", NULL, &so, &r, notes, sizeof notes);
    assert_int_equal(st, ROTEQ_EIO);
    if (strstr(roteq_error_message(), "step_2.pt: shrank while being read") == NULL)
        fail_msg("unexpected error: %s", roteq_error_message());
    free(files[0]), free(files[1]);
}

static void test_series_layouts(void **state)
{
    (void)state;
    static const char *const names[] = {"a.weight", "Dense_0.kernel", "optimizer/a.weight/exp_avg",
                                        "c_attn.weight"};
    static const size_t shape[4][2] = {{4, 6}, {6, 3}, {4, 6}, {4, 9}};
    mkdirs("s1/checkpoint-10");
    mkdirs("s1/checkpoint-20");
    mkdirs("s1/runs"); /* TensorBoard logs: no step, not a snapshot */
    char path[256];
    for (int k = 1; k <= 2; k++) {
        snprintf(path, sizeof path, "s1/checkpoint-%d/model.safetensors", 10 * k);
        char *p = roteq_test_path(dir, path);
        write_st(p, names, shape, 4, k);
        free(p);
    }
    char *p = roteq_test_path(dir, "s1/model.safetensors"); /* the final model, step 30 */
    write_st(p, names, shape, 4, 3);
    free(p);
    put("s1/trainer_state.json", "{\"global_step\": 30}");
    put("s1/optimizer.pt", "not read");
    put("s1/config.json", "{\"model_type\": \"gpt2\"}");
    roteq_analysis_result *r = NULL;
    char notes[2048];
    const char *meta = "{\"layers\":{\"c_attn.weight\":{\"split\":{\"q\":3,\"k\":3,\"v\":3}}}}";
    int st = series("s1", meta, NULL, &r, notes, sizeof notes);
    if (st)
        fail_msg("%s", roteq_error_message());
    /* optimizer/ is not a layer; c_attn is GPT-2's Conv1D (config.json): 9 neurons of 4, split
     * into q, k, v; Dense_0.kernel is Flax's [in, out]: 3 neurons of 6 */
    assert_int_equal(r->nlayers, 5);
    const char *want[5] = {"Dense_0.kernel", "a.weight", "c_attn.weight/k", "c_attn.weight/q",
                           "c_attn.weight/v"};
    const size_t neurons[5] = {3, 4, 3, 3, 3}, dims[5] = {6, 6, 4, 4, 4};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(r->layers[i].name, want[i]);
        assert_int_equal(r->layers[i].neurons, neurons[i]);
        assert_int_equal(r->layers[i].dim, dims[i]);
        assert_int_equal(r->layers[i].records, 3); /* the root model is step 30 */
        assert_int_equal(r->layers[i].last_step, 30);
    }
    assert_non_null(strstr(notes, "Dense_0.kernel: axis 1 (Flax 'kernel' convention)"));
    assert_non_null(strstr(notes, "GPT-2 Conv1D convention"));
    roteq_analysis_result_free(r);
    /* --exclude drops the final model; a best checkpoint makes the root model unknown */
    roteq_snapshot_options o = {.exclude_regex = "^model"};
    assert_int_equal(series("s1", NULL, &o, &r, notes, sizeof notes), 0);
    assert_int_equal(r->layers[0].records, 2);
    roteq_analysis_result_free(r);
    put("s1/trainer_state.json", "{\"global_step\": 30, \"best_model_checkpoint\": \"x\"}");
    assert_int_equal(series("s1", NULL, NULL, &r, notes, sizeof notes), 0);
    assert_int_equal(r->layers[0].records, 2);
    assert_non_null(strstr(notes, "names a best_model_checkpoint"));
    roteq_analysis_result_free(r);
    /* a split that does not add up, an axis beyond the rank */
    meta = "{\"layers\":{\"c_attn.weight\":{\"split\":{\"q\":3,\"k\":3}}}}";
    assert_int_equal(series("s1", meta, NULL, &r, notes, sizeof notes), ROTEQ_EFORMAT);
    assert_non_null(strstr(roteq_error_message(), "split sizes add up to 6, but it has 9"));
    meta = "{\"layers\":{\"a.weight\":{\"neuron_axis\":2}}}";
    assert_int_equal(series("s1", meta, NULL, &r, notes, sizeof notes), ROTEQ_EINVAL);
    assert_non_null(strstr(roteq_error_message(), "neuron axis 2 (metadata) is outside"));
}

static void test_unsupported_formats(void **state)
{
    (void)state;
    static const struct {
        const char *sub, *file, *msg;
    } t[] = {{"u1", "u1/__0_0.distcp", "torch.distributed.checkpoint"},
             {"u2", "u2/1/saved_model.pb", "TensorFlow SavedModel"},
             {"u3", "u3/ckpt/_CHECKPOINT_METADATA", "orbax checkpoint"},
             {"u4", "u4/model.ckpt-100.index", "TensorFlow checkpoint"},
             {"u5", "u5/dynamics.pkl", "REQ's DynamicsLogger log"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char parent[64];
        snprintf(parent, sizeof parent, "%s", t[i].file);
        *strrchr(parent, '/') = '\0';
        mkdirs(parent);
        put(t[i].file, "x");
        roteq_analysis_result *r = NULL;
        char notes[512];
        int st = series(t[i].sub, NULL, NULL, &r, notes, sizeof notes);
        if (st != ROTEQ_EUNSUPPORTED || !strstr(roteq_error_message(), t[i].msg))
            fail_msg("%s: got %d '%s'", t[i].sub, st, roteq_error_message());
    }
    /* the command: a pickle given as the input is named, not parsed as a CSV; .pt likewise */
    char *pkl = roteq_test_path(dir, "u5/dynamics.pkl"), *pt = roteq_test_path(dir, "one.pt");
    roteq_test_write_file(pt, "x");
    const char *args[] = {"analyze", pkl, NULL}, *args2[] = {"analyze", pt, NULL};
    char *err = NULL;
    assert_int_equal(roteq_test_run(args, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "a Python pickle is not read"));
    free(err);
    assert_int_equal(roteq_test_run(args2, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "a single snapshot is not a series"));
    free(err);
    free(pkl);
    free(pt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_dict),     cmocka_unit_test(test_forbidden_global),
        cmocka_unit_test(test_recursion_bomb), cmocka_unit_test(test_bad_views),
        cmocka_unit_test(test_zip_damage),     cmocka_unit_test(test_optimizer_by_order),
        cmocka_unit_test(test_series_layouts), cmocka_unit_test(test_shrinks_while_read),
        cmocka_unit_test(test_logged_lr),      cmocka_unit_test(test_unsupported_formats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
