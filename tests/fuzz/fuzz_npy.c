/* fuzz_npy.c - libFuzzer target for the .npy header parser. The input is a whole file image;
 * when it is accepted as a float tensor, its rows are read (C or Fortran order), so a size that
 * escaped validation is caught by ASan. */
#include "roteq_analysis.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    roteq_analysis_tensor_info t;
    if (roteq_analysis_npy_parse("fuzz.npy", data, size, size, &t) != 0)
        return 0;
    /* As analysis/snapshots.c: an empty tensor is not a layer (its rows hold no data). */
    if (t.dtype == ROTEQ_DT_OTHER || t.rank < 1 || t.shape[0] == 0 || t.nbytes == 0)
        return 0;
    size_t rows = (size_t)t.shape[0];
    size_t cols = (size_t)(t.nbytes / roteq_analysis_dtype_size(t.dtype) / rows);
    double *norm = malloc(rows * sizeof *norm), *nb = malloc(rows * sizeof *nb);
    double *ang = malloc(rows * sizeof *ang);
    if (norm && nb && ang) {
        roteq_analysis_rows_norms(&t, data + t.offset, rows, cols, norm);
        roteq_analysis_rows_angles(&t, data + t.offset, &t, data + t.offset, rows, cols, NULL, nb,
                                   ang);
    }
    free(norm), free(nb), free(ang);
    return 0;
}
