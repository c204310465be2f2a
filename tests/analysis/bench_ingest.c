/* bench_ingest.c - ingest speed of `roteq analyze` (a meson benchmark: `meson test --benchmark
 * --suite analysis`). Prints figures, asserts nothing about time.
 *
 * CSV: a trace of %.17g numbers (what roteq simulate and the PyTorch recorder write) is parsed
 * from memory and from a file in the page cache, next to two peers on the same bytes in the same
 * run: memchr over the buffer (the memory floor) and a strtod-per-field reader (what a quick
 * implementation would do). Snapshots: a series of F32 and BF16 .safetensors files, read once to
 * fill the page cache, then analysed (norms and stable angles of every row in float64).
 * ROTEQ_BENCH_MB sets the CSV size (default 200). */
#include "roteq_analysis.h"
#include "roteq_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, roteq_error_message());
    exit(1);
}

static char *make_csv(size_t target, size_t *len)
{
    size_t cap = target + 4096;
    char *s = malloc(cap);
    if (s == NULL)
        exit(1);
    size_t n = (size_t)snprintf(s, cap, "step,layer,neuron,norm,angle,lr,weight_decay\n");
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (long step = 1; n < target; step++)
        for (int l = 0; l < 8 && n < target; l++)
            for (int i = 0; i < 256 && n + 200 < cap; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                double u = ldexp((double)(x >> 11), -53);
                n += (size_t)snprintf(s + n, cap - n,
                                      "%ld,blocks.%d.mlp.fc.weight,%d,%.17g,%.17g,"
                                      "0.001,0.1\n",
                                      step, l, i, 0.5 + u, 1e-3 * (0.5 + u));
            }
    *len = n;
    return s;
}

/* A peer: split lines and fields by hand, convert every number with strtod. */
static double strtod_reader(const char *s, size_t n)
{
    double acc = 0;
    const char *p = (const char *)memchr(s, '\n', n) + 1, *end = s + n;
    while (p < end) {
        char *q;
        acc += strtod(p, &q);       /* step */
        p = strchr(q + 1, ',') + 1; /* layer */
        acc += strtod(p, &q);
        acc += strtod(q + 1, &q);
        acc += strtod(q + 1, &q);
        acc += strtod(q + 1, &q);
        acc += strtod(q + 1, &q);
        p = q + 1;
    }
    return acc;
}

static double csv_bench(const char *tmpdir)
{
    const char *mb = getenv("ROTEQ_BENCH_MB");
    size_t target = (size_t)(mb ? atof(mb) : 200.0) << 20, n;
    char *s = make_csv(target, &n);
    double mbytes = (double)n / 1e6;
    roteq_analysis_meta meta;
    roteq_analysis_meta_init(&meta);
    meta.opt = &roteq_adamw;
    meta.dim = 1024;
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &meta);

    double t0 = roteq_seconds();
    size_t lines = 0;
    for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + n - p))) != NULL; p++)
        lines++;
    double t_memchr = roteq_seconds() - t0;

    t0 = roteq_seconds();
    volatile double sink = strtod_reader(s, n);
    (void)sink;
    double t_strtod = roteq_seconds() - t0;

    double t_mem = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        t0 = roteq_seconds();
        roteq_analysis *a = roteq_analysis_alloc(&cfg);
        roteq_analysis_csv_reader *r = roteq_analysis_csv_reader_alloc("bench.csv", a);
        for (size_t off = 0; off < n; off += (size_t)1 << 20) {
            size_t k = n - off < ((size_t)1 << 20) ? n - off : (size_t)1 << 20;
            if (roteq_analysis_csv_reader_feed(r, s + off, k))
                die("feed");
        }
        if (roteq_analysis_csv_reader_finish(r))
            die("finish");
        roteq_analysis_result *res;
        if (roteq_analysis_finish(a, &res))
            die("analysis");
        double t = roteq_seconds() - t0;
        t_mem = t < t_mem ? t : t_mem;
        roteq_analysis_result_free(res);
        roteq_analysis_csv_reader_free(r);
        roteq_analysis_free(a);
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/bench.csv", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite(s, 1, n, f);
    fclose(f);
    free(s);
    double t_file = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        t0 = roteq_seconds();
        roteq_analysis *a;
        if (roteq_analysis_read_csv(path, &cfg, &a))
            die("read_csv");
        roteq_analysis_result *res;
        if (roteq_analysis_finish(a, &res))
            die("analysis");
        double t = roteq_seconds() - t0;
        t_file = t < t_file ? t : t_file;
        roteq_analysis_result_free(res);
        roteq_analysis_free(a);
    }
    /* Peak memory of a whole ingest in a fresh process: bounded by layers x neurons x window,
     * not by the file size. */
    long rss_kb = -1;
    pid_t pid = fork();
    if (pid == 0) {
        roteq_analysis *a;
        if (roteq_analysis_read_csv(path, &cfg, &a))
            _exit(1);
        roteq_analysis_free(a);
        _exit(0);
    }
    int wst;
    struct rusage ru;
    if (pid > 0 && wait4(pid, &wst, 0, &ru) == pid && WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
        rss_kb = ru.ru_maxrss;
    remove(path);
    printf("CSV trace, %.0f MB, %zu rows (%.1f bytes/row), one core:\n", mbytes, lines - 1,
           (double)n / (double)lines);
    printf("  roteq analyze, file in page cache  %8.0f MB/s  (%.0f ns/row)\n", mbytes / t_file,
           t_file * 1e9 / (double)lines);
    printf("  roteq analyze, from memory         %8.0f MB/s\n", mbytes / t_mem);
    printf("  peer: strtod per field (parse only)%8.0f MB/s  (roteq is %.1fx faster)\n",
           mbytes / t_strtod, t_strtod / t_file);
    printf("  floor: memchr over the bytes       %8.0f MB/s\n", mbytes / t_memchr);
    printf("  peak RSS of a process ingesting the file: %.1f MB (8 layers x 256 neurons, "
           "window %zu)\n",
           (double)rss_kb / 1024, cfg.window);
    return mbytes / t_file;
}

static void write_series(const char *dir, const char *dtype, size_t es, int snaps, size_t layers,
                         size_t rows, size_t cols, size_t *bytes)
{
    char hdr[4096];
    size_t hn = 1, per = rows * cols * es;
    hdr[0] = '{';
    for (size_t l = 0; l < layers; l++)
        hn += (size_t)snprintf(hdr + hn, sizeof hdr - hn,
                               "%s\"layer%zu.weight\":{\"dtype\":\"%s\",\"shape\":[%zu,%zu],"
                               "\"data_offsets\":[%zu,%zu]}",
                               l ? "," : "", l, dtype, rows, cols, l * per, (l + 1) * per);
    hdr[hn++] = '}';
    while ((hn + 8) % 8)
        hdr[hn++] = ' ';
    unsigned char *data = malloc(per * layers);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    *bytes = 0;
    for (int k = 0; k < snaps; k++) {
        for (size_t j = 0; j < per * layers / 2; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* bytes that form finite, moderate floats in both F32 and BF16 */
            data[2 * j] = (unsigned char)x;
            data[2 * j + 1] = (unsigned char)(0x3c + ((x >> 8) & 1));
        }
        char path[8192];
        snprintf(path, sizeof path, "%s/step_%d.safetensors", dir, k * 100);
        FILE *f = fopen(path, "wb");
        uint64_t h = hn;
        for (int i = 0; i < 8; i++)
            fputc((int)(h >> (8 * i)) & 0xff, f);
        fwrite(hdr, 1, hn, f);
        fwrite(data, 1, per * layers, f);
        fclose(f);
        *bytes += 8 + hn + per * layers;
    }
    free(data);
}

static void snapshot_bench(const char *tmpdir, const char *dtype, size_t es)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/snaps_%s", tmpdir, dtype);
    mkdir(dir, 0777);
    size_t bytes;
    const int snaps = 6;
    write_series(dir, dtype, es, snaps, 4, 1024, 4096 * 4 / es, &bytes);
    roteq_analysis_meta meta;
    roteq_analysis_meta_init(&meta);
    meta.opt = &roteq_adamw;
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &meta);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) { /* the first pass fills the page cache */
        double t0 = roteq_seconds();
        roteq_analysis *a;
        if (roteq_analysis_read_snapshots(dir, NULL, &cfg, &a))
            die("read_snapshots");
        roteq_analysis_result *res;
        if (roteq_analysis_finish(a, &res))
            die("analysis");
        double t = roteq_seconds() - t0;
        if (rep > 0 && t < best)
            best = t;
        roteq_analysis_result_free(res);
        roteq_analysis_free(a);
    }
    /* peer: reading the same bytes once (sum of every 64th byte: the page-cache floor) */
    double t0 = roteq_seconds();
    volatile unsigned long sum = 0;
    for (int k = 0; k < snaps; k++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/step_%d.safetensors", dir, k * 100);
        FILE *f = fopen(path, "rb");
        static unsigned char buf[1 << 20];
        size_t m;
        while ((m = fread(buf, 1, sizeof buf, f)) > 0)
            for (size_t i = 0; i < m; i += 64)
                sum += buf[i];
        fclose(f);
        remove(path);
    }
    double t_read = roteq_seconds() - t0;
    rmdir(dir);
    printf("Snapshot series, %d x %.0f MB %s safetensors (4 layers of 1024 rows), one core:\n",
           snaps, (double)bytes / snaps / 1e6, dtype);
    printf("  roteq analyze                      %8.2f GB/s\n", (double)bytes / best / 1e9);
    printf("  floor: fread of the same files     %8.2f GB/s\n", (double)bytes / t_read / 1e9);
}

int main(void)
{
    char tmpl[] = "/tmp/roteq-bench-XXXXXX";
    char *tmpdir = mkdtemp(tmpl);
    if (tmpdir == NULL)
        return 1;
    csv_bench(tmpdir);
    snapshot_bench(tmpdir, "F32", 4);
    snapshot_bench(tmpdir, "BF16", 2);
    rmdir(tmpdir);
    return 0;
}
