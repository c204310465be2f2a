/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser. The input is a whole
 * file image; when the header is accepted, every float tensor of rank >= 2 is read row by row
 * (norms and angles against itself), so an offset that escaped validation is caught by ASan. */
#include "roteq_analysis.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    roteq_analysis_tensor_info *t = NULL;
    size_t n = 0;
    if (roteq_analysis_safetensors_parse("fuzz.safetensors", data, size, size, &t, &n) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].rank < 2 || t[i].dtype == ROTEQ_DT_OTHER || t[i].shape[0] == 0 || t[i].nbytes == 0)
            continue;
        size_t rows = (size_t)t[i].shape[0];
        size_t cols = (size_t)(t[i].nbytes / roteq_analysis_dtype_size(t[i].dtype) / rows);
        double *norm = malloc(rows * sizeof *norm), *nb = malloc(rows * sizeof *nb);
        double *ang = malloc(rows * sizeof *ang);
        if (norm && nb && ang) {
            roteq_analysis_rows_norms(&t[i], data + t[i].offset, rows, cols, norm);
            roteq_analysis_rows_angles(&t[i], data + t[i].offset, &t[i], data + t[i].offset, rows,
                                       cols, norm, nb, ang);
        }
        free(norm), free(nb), free(ang);
    }
    roteq_analysis_tensor_infos_free(t, n);
    return 0;
}
