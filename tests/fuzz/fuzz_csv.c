/* fuzz_csv.c - libFuzzer target for the trace CSV reader and the accumulator behind it.
 * The input is split in two chunks at a position taken from its first byte, so that partial
 * lines across feeds are exercised; a successful parse is finished and printed in every format
 * (to /dev/null), which runs the estimators and writers on whatever the fuzzer found. */
#include "roteq_analysis.h"

#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (devnull == NULL)
        devnull = fopen("/dev/null", "w");
    roteq_analysis_meta meta;
    roteq_analysis_meta_init(&meta);
    meta.opt = &roteq_adamw;
    meta.dim = 16;
    roteq_analysis_config cfg;
    roteq_analysis_config_init(&cfg, &meta);
    cfg.window = 8;
    cfg.per_neuron = 1;
    cfg.series = devnull;
    roteq_analysis *a = roteq_analysis_alloc(&cfg);
    roteq_analysis_csv_reader *r = roteq_analysis_csv_reader_alloc("fuzz.csv", a);
    size_t cut = size ? data[0] % (size + 1) : 0;
    int st = roteq_analysis_csv_reader_feed(r, (const char *)data, cut);
    if (!st)
        st = roteq_analysis_csv_reader_feed(r, (const char *)data + cut, size - cut);
    if (!st)
        st = roteq_analysis_csv_reader_finish(r);
    roteq_analysis_result *res = NULL;
    if (!st && roteq_analysis_finish(a, &res) == 0) {
        /* A layer of millions of neurons is legal; its per-neuron JSON tree is not worth
         * libFuzzer's 2 GB memory limit. */
        size_t neurons = 0;
        for (size_t i = 0; i < res->nlayers; i++)
            neurons += res->layers[i].neurons;
        if (neurons > 100000) {
            roteq_analysis_result_free(res);
            res = NULL;
        }
    }
    if (res) {
        roteq_analysis_write_text(devnull, res);
        roteq_analysis_write_csv(devnull, res);
        roteq_analysis_write_per_neuron_csv(devnull, res);
        roteq_analysis_write_json(devnull, res);
        roteq_analysis_result_free(res);
    }
    roteq_analysis_csv_reader_free(r);
    roteq_analysis_free(a);
    return 0;
}
