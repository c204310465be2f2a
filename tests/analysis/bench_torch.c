/* bench_torch.c - ingest speed of torch.save snapshots against safetensors holding the same
 * tensors (goal: within 2x). The same random F32 weights (4 layers of 1024 x 4096, 6 snapshots)
 * are written as step_N.safetensors and as step_N.pt (a torch.save zip: protocol-2 pickle, one
 * stored entry per storage, as torch writes it), each series is analysed three times (the first
 * pass fills the page cache; the best of the other two counts), and the figures are printed.
 * Run: meson test -C BUILD --benchmark --suite analysis -v */
#include "roteq_analysis.h"
#include "roteq_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#define SNAPS  6
#define LAYERS 4
#define ROWS   1024
#define COLS   4096

static void die(const char *what)
{
    fprintf(stderr, "bench_torch: %s: %s\n", what, roteq_error_message());
    exit(1);
}

/* Append a protocol-2 pickle fragment. */
static size_t put(unsigned char *b, size_t n, const void *s, size_t len)
{
    memcpy(b + n, s, len);
    return n + len;
}

static size_t put_str(unsigned char *b, size_t n, const char *s)
{
    uint32_t len = (uint32_t)strlen(s);
    b[n++] = 'X';
    n = put(b, n, &len, 4);
    return put(b, n, s, len);
}

static size_t put_int(unsigned char *b, size_t n, int32_t v)
{
    b[n++] = 'J';
    return put(b, n, &v, 4);
}

/* data.pkl of {layerL.weight: F32 tensor [ROWS, COLS] on storage L}. */
static size_t make_pickle(unsigned char *b)
{
    size_t n = put(b, 0, "\x80\x02}(", 4);
    for (int l = 0; l < LAYERS; l++) {
        char name[32], key[8];
        snprintf(name, sizeof name, "layer%d.weight", l);
        snprintf(key, sizeof key, "%d", l);
        n = put_str(b, n, name);
        n = put(b, n, "ctorch._utils\n_rebuild_tensor_v2\n((", 35);
        n = put_str(b, n, "storage");
        n = put(b, n, "ctorch\nFloatStorage\n", 20);
        n = put_str(b, n, key);
        n = put_str(b, n, "cpu");
        n = put_int(b, n, ROWS * COLS);
        n = put(b, n, "tQ", 2);
        n = put_int(b, n, 0);
        n = put(b, n, "(", 1);
        n = put_int(b, n, ROWS);
        n = put_int(b, n, COLS);
        n = put(b, n, "t(", 2);
        n = put_int(b, n, COLS);
        n = put_int(b, n, 1);
        n = put(b, n,
                "t\x89"
                "ccollections\nOrderedDict\n)RtR",
                31);
    }
    return put(b, n, "u.", 2);
}

static void write_pt(const char *path, const float *data, const unsigned char *pkl, size_t pn)
{
    int err = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (z == NULL)
        die(path);
    zip_source_t *s = zip_source_buffer(z, pkl, pn, 0);
    zip_int64_t i = zip_file_add(z, "step/data.pkl", s, 0);
    zip_set_file_compression(z, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    for (int l = 0; l < LAYERS; l++) {
        char name[32];
        snprintf(name, sizeof name, "step/data/%d", l);
        s = zip_source_buffer(z, data + (size_t)l * ROWS * COLS, (size_t)ROWS * COLS * 4, 0);
        i = zip_file_add(z, name, s, 0);
        zip_set_file_compression(z, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    }
    if (zip_close(z) != 0)
        die("zip_close");
}

static void write_st(const char *path, const float *data)
{
    char hdr[4096];
    size_t hn = 1, per = (size_t)ROWS * COLS * 4;
    hdr[0] = '{';
    for (size_t l = 0; l < LAYERS; l++)
        hn += (size_t)snprintf(hdr + hn, sizeof hdr - hn,
                               "%s\"layer%zu.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                               "\"data_offsets\":[%zu,%zu]}",
                               l ? "," : "", l, ROWS, COLS, l * per, (l + 1) * per);
    hdr[hn++] = '}';
    while ((hn + 8) % 8)
        hdr[hn++] = ' ';
    FILE *f = fopen(path, "wb");
    uint64_t h = hn;
    fwrite(&h, 8, 1, f);
    fwrite(hdr, 1, hn, f);
    fwrite(data, 1, per * LAYERS, f);
    fclose(f);
}

static double best_time(const char *dir, const roteq_analysis_config *cfg)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = roteq_seconds();
        roteq_analysis *a;
        if (roteq_analysis_read_snapshots(dir, NULL, cfg, &a))
            die("read_snapshots");
        roteq_analysis_result *res;
        if (roteq_analysis_finish(a, &res))
            die("finish");
        double t = roteq_seconds() - t0;
        if (rep > 0 && t < best)
            best = t;
        roteq_analysis_result_free(res);
        roteq_analysis_free(a);
    }
    return best;
}

int main(void)
{
    char tmpl[] = "/tmp/roteq-bench-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    if (tmp == NULL)
        return 1;
    char st_dir[4096], pt_dir[4096], path[8192];
    snprintf(st_dir, sizeof st_dir, "%s/st", tmp);
    snprintf(pt_dir, sizeof pt_dir, "%s/pt", tmp);
    mkdir(st_dir, 0777);
    mkdir(pt_dir, 0777);
    size_t nf = (size_t)LAYERS * ROWS * COLS;
    float *data = malloc(nf * sizeof *data);
    unsigned char *pkl = malloc(1 << 16);
    if (data == NULL || pkl == NULL)
        return 1;
    size_t pn = make_pickle(pkl);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int k = 0; k < SNAPS; k++) {
        for (size_t j = 0; j < nf; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            data[j] = (float)((double)(x >> 11) * 0x1p-53 - 0.5);
        }
        snprintf(path, sizeof path, "%s/step_%d.safetensors", st_dir, k * 100);
        write_st(path, data);
        snprintf(path, sizeof path, "%s/step_%d.pt", pt_dir, k * 100);
        write_pt(path, data, pkl, pn);
    }
    free(data);
    free(pkl);
    roteq_analysis_meta meta;
    roteq_analysis_meta_init(&meta);
    meta.opt = &roteq_adamw;
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &meta);
    double t_st = best_time(st_dir, &cfg), t_pt = best_time(pt_dir, &cfg);
    double bytes = (double)SNAPS * (double)nf * 4;
    printf("Snapshot series, %d x %.0f MB F32 (%d layers of %d x %d), one core:\n", SNAPS,
           (double)nf * 4 / 1e6, LAYERS, ROWS, COLS);
    printf("  safetensors (mmap)                   %8.2f GB/s\n", bytes / t_st / 1e9);
    printf("  torch.save .pt (libzip, CRC checked) %8.2f GB/s  (%.2fx the safetensors time)\n",
           bytes / t_pt / 1e9, t_pt / t_st);
    for (int k = 0; k < SNAPS; k++) {
        snprintf(path, sizeof path, "%s/step_%d.safetensors", st_dir, k * 100);
        remove(path);
        snprintf(path, sizeof path, "%s/step_%d.pt", pt_dir, k * 100);
        remove(path);
    }
    rmdir(st_dir);
    rmdir(pt_dir);
    rmdir(tmp);
    return 0;
}
