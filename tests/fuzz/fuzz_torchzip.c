/* fuzz_torchzip.c - libFuzzer target for the torch.save zip layer: the input is a whole archive
 * image opened through libzip from memory; when it opens, the model's tensors are read (CRC and
 * size checks, views, gathering) and every float tensor of rank >= 2 goes through the row
 * kernels and the neuron-axis image, so a storage or view that escaped validation is caught by
 * ASan. */
#include "roteq_util.h"
#include "torch_internal.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    roteq_torch_archive *a = NULL;
    if (roteq_torch_archive_open_buffer("fuzz.pt", data, size, &a) != 0)
        return 0;
    roteq_analysis_tensor_info *t = NULL;
    const unsigned char **d = NULL;
    size_t n = 0;
    if (roteq_torch_archive_tensors(a, NULL, NULL, NULL, &t, &d, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (t[i].rank < 2 || t[i].dtype == ROTEQ_DT_OTHER || t[i].shape[0] == 0 ||
                t[i].nbytes == 0 || d[i] == NULL || t[i].nbytes > ((uint64_t)1 << 24))
                continue;
            size_t rows = (size_t)t[i].shape[0];
            size_t cols = (size_t)(t[i].nbytes / roteq_analysis_dtype_size(t[i].dtype) / rows);
            double *norm = malloc(rows * sizeof *norm);
            double *img =
                malloc((size_t)t[i].nbytes / roteq_analysis_dtype_size(t[i].dtype) * sizeof *img);
            if (norm && img) {
                roteq_analysis_rows_norms(&t[i], d[i], rows, cols, norm);
                roteq_analysis_tensor_rows(&t[i], d[i], -1, img);
            }
            free(norm);
            free(img);
        }
        roteq_analysis_tensor_infos_free(t, n);
        free(d);
    }
    roteq_torch_archive_free(a);
    return 0;
}
