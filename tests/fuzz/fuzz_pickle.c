/* fuzz_pickle.c - libFuzzer target for the restricted unpickler. The input is a pickle; when it
 * loads, the value tree is walked the way the readers do (dict lookups, numbers, tensors), so a
 * value that escaped validation (a view past its storage, a broken container) is caught by ASan or
 * UBSan. Nothing the input says is ever called. */
#include "roteq_util.h"
#include "torch_internal.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void visit(const roteq_pk *v, unsigned depth)
{
    if (depth > ROTEQ_PICKLE_MAX_DEPTH + 1)
        abort(); /* the unpickler bounds nesting */
    double x;
    switch (v->kind) {
    case ROTEQ_PK_TUPLE:
    case ROTEQ_PK_LIST:
        for (size_t i = 0; i < v->u.seq.n && i < 64; i++)
            visit(v->u.seq.items[i], depth + 1);
        break;
    case ROTEQ_PK_DICT:
        for (size_t i = 0; i < v->u.dict.n && i < 64; i++) {
            visit(v->u.dict.keys[i], depth + 1);
            visit(v->u.dict.vals[i], depth + 1);
        }
        (void)roteq_pk_get(v, "model");
        (void)roteq_pk_has_tensors(v);
        break;
    case ROTEQ_PK_TENSOR: {
        const roteq_pk_tensor *t = v->u.tensor;
        const roteq_pk_storage *s = t->storage->u.storage;
        if (t->rank > ROTEQ_TENSOR_MAX_RANK)
            abort();
        uint64_t last = t->offset;
        for (size_t d = 0; d < t->rank; d++)
            if (t->shape[d])
                last += (t->shape[d] - 1) * t->stride[d];
        if (t->numel && last >= s->numel)
            abort(); /* a view past its storage was accepted */
        break;
    }
    case ROTEQ_PK_STR:
    case ROTEQ_PK_BYTES:
        if (v->u.str.s[v->u.str.len] != '\0')
            abort();
        break;
    default:
        (void)roteq_pk_number(v, &x);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    roteq_pickle *p = NULL;
    if (roteq_pickle_load("fuzz.pkl", data, size, &p) == 0)
        visit(roteq_pickle_root(p), 0);
    roteq_pickle_free(p);
    return 0;
}
