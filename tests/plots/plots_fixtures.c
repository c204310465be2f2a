/* plots_fixtures.c - see plots_fixtures.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plots_fixtures.h"
#include "roteq_test.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fx_series(const char *path, const char *const *groups, size_t ngroups, size_t nsteps,
               size_t nan_every)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# roteq simulate (synthetic test series)\n# seed 7\n", f);
    fputs("step,group,lr,weight_decay,n,norm_mean,norm_std,norm_q05,norm_q50,norm_q95,angle_rms,"
          "angle_mean,angle_std,angle_q05,angle_q50,angle_q95,pred_norm,pred_angle\n",
          f);
    for (size_t g = 0; g < ngroups; g++)
        for (size_t s = 1; s <= nsteps; s++) {
            double eq = 1.3 + 0.1 * (double)g, tau = 0.2 * (double)nsteps;
            double decay = exp(-(double)s / tau);
            double norm = eq + (2.5 - eq) * decay, aeq = 0.0137 * (1.0 + 0.2 * (double)g);
            double angle = aeq * (1.0 + 2.0 * decay) * (1.0 + 0.03 * sin((double)s));
            fprintf(f, "%zu,%s,0.001,0.1,128,%.17g,%.17g,%.17g,%.17g,%.17g,", s, groups[g], norm,
                    0.05 * norm, 0.92 * norm, norm, 1.08 * norm);
            if (nan_every && s % nan_every == 0)
                fputs(",", f);
            else
                fprintf(f, "%.17g,", angle);
            fprintf(f, "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", 0.98 * angle, 0.1 * angle,
                    0.8 * angle, angle, 1.2 * angle, eq + (2.5 - eq) * decay,
                    aeq * (1.0 + 2.0 * decay));
        }
    assert_int_equal(fclose(f), 0);
}

/* A deterministic standard normal (Box-Muller on a 64-bit LCG). */
static double normal(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    double u1 = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    double u2 = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void fx_per_neuron(const char *path, size_t nlayers, size_t neurons, double spread, unsigned seed)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    uint64_t s = seed;
    fprintf(f, "# roteq analyze --per-neuron --format csv (synthetic, seed %u)\n", seed);
    fputs("layer,neuron,norm,angular_update,pred_norm,pred_angle,ratio,status\n", f);
    for (size_t l = 0; l < nlayers; l++) {
        double pred = 0.011 * (1.0 + 0.37 * (double)l);
        for (size_t k = 0; k < neurons; k++) {
            const char *status = k < 2 ? (k == 0 ? "dead" : "collapsed") : "ok";
            double ratio = exp(spread * normal(&s) + 0.1 * spread * (double)l);
            double au = k == 0 ? 0.0 : pred * ratio;
            fprintf(f, "blocks.%zu.mlp_fc,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%s\n", l, k,
                    1.7 + 0.01 * (double)k, au, 1.72, pred, au / pred, status);
        }
    }
    assert_int_equal(fclose(f), 0);
}

void fx_verify(const char *path, size_t per)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# roteq verify --out (synthetic)\n", f);
    fputs("index,seed,optimizer,lr,weight_decay,pred_norm,pred_angle,pred_exact,norm,norm_se,"
          "norm_ci_lo,norm_ci_hi,angle,angle_se,angle_ci_lo,angle_ci_hi,status,reason\n",
          f);
    static const char *const opts[] = {"adamw", "sgdm", "lion"};
    size_t idx = 0;
    for (size_t o = 0; o < 3; o++)
        for (size_t k = 0; k < per; k++, idx++) {
            double lr = 1e-3 * pow(3.0, (double)k), wd = 0.1;
            double pn = sqrt(lr / wd) * (1.0 + (double)o), pa = sqrt(2.0 * lr * wd);
            int approx = o == 2, fail = o == 1 && k == 0, error = o == 0 && k == per - 1;
            double mn = pn * (1.0 + (fail ? 0.2 : approx ? 0.05 : 0.002)), ma = pa * 1.003;
            const char *st = error ? "ERROR" : fail ? "FAIL" : approx ? "APPROX" : "PASS";
            fprintf(f,
                    "%zu,%zu,%s,%.17g,%.17g,%.17g,%.17g,%d,%.17g,%.17g,%.17g,%.17g,%.17g,"
                    "%.17g,%.17g,%.17g,%s,%s\n",
                    idx, 1000 + idx, opts[o], lr, wd, pn, pa, approx ? 0 : 1, mn, 0.01 * mn,
                    0.98 * mn, 1.02 * mn, ma, 0.01 * ma, 0.98 * ma, 1.02 * ma, st,
                    error ? "\"beta1 must be in [0, 1), got 1.5\"" : "");
        }
    assert_int_equal(fclose(f), 0);
}

void fx_muon(const char *path, double momentum, int rows)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    double norm = 0.3 / sqrt(1.0 - momentum), angle = 0.06 * sqrt(1.0 - momentum);
    fprintf(f,
            "{\n  \"optimizer\": \"muon\",\n  \"hparams\": {\"lr\": 0.02, \"weight_decay\": 0.1, "
            "\"momentum\": %.17g, \"nesterov\": true, \"ns_steps\": 5, \"eps\": 1e-07, "
            "\"adjust_lr\": \"original\", \"shape\": [%d, 64]},\n  \"matrices\": 8, "
            "\"steps\": 4000, \"seed\": 41,\n",
            momentum, rows);
    fprintf(f,
            "  \"row_norm\": %.17g, \"row_norm_se\": %.17g, \"row_angle_rms\": %.17g, "
            "\"row_angle_rms_se\": %.17g, \"matrix_norm\": 2.2, \"matrix_norm_se\": null,\n",
            norm, 0.001 * norm, angle, 0.001 * angle);
    fprintf(f,
            "  \"predicted_norm\": %.17g, \"predicted_angular_update\": %.17g, "
            "\"predicted_norm_plain\": 0.3, \"predicted_angular_update_plain\": 0.06, "
            "\"predicted_norm_lionlike\": %.17g, \"predicted_angular_update_lionlike\": %.17g, "
            "\"seconds\": 1.5\n}\n",
            1.004 * norm, 0.997 * angle, 0.97 * norm, 1.05 * angle);
    assert_int_equal(fclose(f), 0);
}

void fx_check_png(const char *path)
{
    size_t len = 0;
    unsigned char *b = (unsigned char *)roteq_test_read_file(path, &len);
    assert_non_null(b);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_true(len > 33);
    assert_memory_equal(b, sig, 8);
    assert_memory_equal(b + 12, "IHDR", 4);
    uint32_t w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    uint32_t h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    assert_true(w >= 300 && w <= 8000);
    assert_true(h >= 200 && h <= 8000);
    /* A figure with axes, curves and text compresses to well over a few kB; an empty canvas
     * of this size is under 3 kB. */
    if (len < 8000)
        print_error("%s: only %zu bytes\n", path, len);
    assert_true(len >= 8000 && len <= 2000000);
    assert_memory_equal(b + len - 8, "IEND", 4);
    free(b);
}

void fx_check_svg(const char *path)
{
    size_t len = 0;
    char *b = roteq_test_read_file(path, &len);
    assert_non_null(b);
    assert_non_null(strstr(b, "<svg"));
    assert_non_null(strstr(b, "</svg>"));
    assert_true(len >= 8000 && len <= 5000000);
    assert_non_null(strstr(b, "<path")); /* something was drawn */
    free(b);
}

void fx_count_data(const char *path, size_t *blocks, size_t *rows)
{
    char *b = roteq_test_read_file(path, NULL);
    assert_non_null(b);
    *blocks = *rows = 0;
    for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '"')
            (*blocks)++;
        else if (line[0] != '#')
            (*rows)++;
    }
    free(b);
}

size_t fx_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}
