/* index.c - the accumulator's two lookups, so that memory and time follow the data present:
 * layer names to layers (a trace may hold tens of thousands of layers; a linear scan per new
 * name was quadratic), and each layer's neuron indices to dense slots of its per-neuron rings
 * (a trace may number neurons sparsely: a row of neuron 4194303 must not size the rings for four
 * million neurons). Both are open-addressing tables with linear probing, at most half full.
 *
 * A recorder writes neurons 0..n-1, so slot i usually holds neuron i: that case is checked first
 * and costs no hashing. Slots are in first-seen order; roteq_analysis_layer_sort_neurons puts
 * them in index order before results are computed, so a dense trace gives the same per-neuron
 * results in the same order whatever order its rows come in. */
#include "analysis_internal.h"
#include "roteq_util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t hash_index(uint64_t x)
{
    x ^= x >> 33; /* murmur3's finaliser: consecutive indices spread over the table */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

int roteq_analysis_index_find_layer(const roteq_analysis *a, const char *name, size_t len,
                                    size_t *index)
{
    if (a->lhash_cap == 0)
        return 0;
    size_t mask = a->lhash_cap - 1;
    for (size_t h = hash_name(name, len) & mask; a->lhash[h]; h = (h + 1) & mask) {
        const roteq_layer *L = &a->layers[a->lhash[h] - 1];
        if (L->name_len == len && memcmp(L->name, name, len) == 0) {
            *index = a->lhash[h] - 1;
            return 1;
        }
    }
    return 0;
}

static void put_layer(size_t *table, size_t cap, const roteq_layer *L, size_t index)
{
    size_t h = hash_name(L->name, L->name_len) & (cap - 1);
    while (table[h])
        h = (h + 1) & (cap - 1);
    table[h] = index + 1;
}

int roteq_analysis_index_add_layer(roteq_analysis *a, size_t index)
{
    if (2 * (a->nlayers + 1) > a->lhash_cap) {
        size_t cap = a->lhash_cap ? 2 * a->lhash_cap : 16;
        size_t *t = calloc(cap, sizeof *t);
        if (t == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        for (size_t i = 0; i < a->nlayers; i++)
            if (i != index)
                put_layer(t, cap, &a->layers[i], i);
        free(a->lhash);
        a->lhash = t;
        a->lhash_cap = cap;
    }
    put_layer(a->lhash, a->lhash_cap, &a->layers[index], index);
    return ROTEQ_OK;
}

static void put_neuron(uint32_t *table, size_t cap, size_t neuron, size_t slot)
{
    size_t h = hash_index(neuron) & (cap - 1);
    while (table[h])
        h = (h + 1) & (cap - 1);
    table[h] = (uint32_t)(slot + 1);
}

static int rehash_neurons(roteq_layer *L, size_t cap)
{
    uint32_t *t = calloc(cap, sizeof *t);
    if (t == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < L->nneur; i++)
        put_neuron(t, cap, L->ids[i], i);
    free(L->nhash);
    L->nhash = t;
    L->nhash_cap = cap;
    return ROTEQ_OK;
}

int roteq_analysis_index_neuron(roteq_analysis *a, roteq_layer *L, size_t neuron, size_t *slot)
{
    if (neuron < L->nneur && L->ids[neuron] == neuron) {
        *slot = neuron;
        return ROTEQ_OK;
    }
    if (L->nhash_cap) {
        size_t mask = L->nhash_cap - 1;
        for (size_t h = hash_index(neuron) & mask; L->nhash[h]; h = (h + 1) & mask)
            if (L->ids[L->nhash[h] - 1] == neuron) {
                *slot = L->nhash[h] - 1;
                return ROTEQ_OK;
            }
    }
    if (L->nneur == ROTEQ_ANALYSIS_MAX_NEURONS)
        return roteq_error_set(ROTEQ_EFORMAT, "layer '%s' has more than %zu neurons", L->name,
                               ROTEQ_ANALYSIS_MAX_NEURONS);
    int st = L->nneur < L->cap ? ROTEQ_OK : roteq_analysis_layer_grow(a, L, L->nneur + 1);
    if (!st && 2 * (L->nneur + 1) > L->nhash_cap)
        st = rehash_neurons(L, L->nhash_cap ? 2 * L->nhash_cap : 16);
    if (st)
        return st;
    L->ids[L->nneur] = neuron;
    put_neuron(L->nhash, L->nhash_cap, neuron, L->nneur);
    *slot = L->nneur++;
    return ROTEQ_OK;
}

typedef struct {
    size_t id, slot;
} id_slot;

static int cmp_id(const void *x, const void *y)
{
    size_t a = ((const id_slot *)x)->id, b = ((const id_slot *)y)->id;
    return (a > b) - (a < b);
}

/* Move slot `from`'s state to slot `to`. */
static void move_slot(roteq_layer *L, size_t W, size_t to, size_t from)
{
    memcpy(&L->ring_norm[to * W], &L->ring_norm[from * W], W * sizeof *L->ring_norm);
    memcpy(&L->ring_angle[to * W], &L->ring_angle[from * W], W * sizeof *L->ring_angle);
    if (L->ring_upd)
        memcpy(&L->ring_upd[to * ROTEQ_UPD_CH * W], &L->ring_upd[from * ROTEQ_UPD_CH * W],
               ROTEQ_UPD_CH * W * sizeof *L->ring_upd);
    L->last_step[to] = L->last_step[from];
    L->ids[to] = L->ids[from];
}

int roteq_analysis_layer_sort_neurons(roteq_analysis *a, roteq_layer *L)
{
    size_t N = L->nneur, W = L->ring_w, i = 1;
    (void)a;
    while (i < N && L->ids[i - 1] < L->ids[i])
        i++;
    if (i >= N)
        return ROTEQ_OK;                      /* already in index order: the usual case */
    id_slot *perm = malloc(N * sizeof *perm); /* slot k is to hold old slot perm[k].slot */
    unsigned char *done = calloc(N, 1);
    double *tmp = malloc((2 + ROTEQ_UPD_CH) * W * sizeof *tmp);
    if (perm == NULL || done == NULL || tmp == NULL) {
        free(perm), free(done), free(tmp);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    for (i = 0; i < N; i++)
        perm[i] = (id_slot){L->ids[i], i};
    qsort(perm, N, sizeof *perm, cmp_id);
    /* Apply the permutation in place, cycle by cycle, through one slot's worth of buffer. */
    for (size_t k = 0; k < N; k++) {
        if (done[k] || perm[k].slot == k)
            continue;
        memcpy(tmp, &L->ring_norm[k * W], W * sizeof *tmp);
        memcpy(tmp + W, &L->ring_angle[k * W], W * sizeof *tmp);
        if (L->ring_upd)
            memcpy(tmp + 2 * W, &L->ring_upd[k * ROTEQ_UPD_CH * W], ROTEQ_UPD_CH * W * sizeof *tmp);
        long last = L->last_step[k];
        size_t id = L->ids[k], j = k;
        while (perm[j].slot != k) {
            move_slot(L, W, j, perm[j].slot);
            done[j] = 1;
            j = perm[j].slot;
        }
        memcpy(&L->ring_norm[j * W], tmp, W * sizeof *tmp);
        memcpy(&L->ring_angle[j * W], tmp + W, W * sizeof *tmp);
        if (L->ring_upd)
            memcpy(&L->ring_upd[j * ROTEQ_UPD_CH * W], tmp + 2 * W, ROTEQ_UPD_CH * W * sizeof *tmp);
        L->last_step[j] = last;
        L->ids[j] = id;
        done[j] = 1;
    }
    free(perm), free(done), free(tmp);
    return rehash_neurons(L, L->nhash_cap);
}
