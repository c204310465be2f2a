/* pickle.c - a restricted unpickler for the data.pkl of torch.save files.
 *
 * Python's pickle is a small stack machine whose GLOBAL/REDUCE opcodes import and call anything,
 * which is why loading an untrusted checkpoint with pickle runs its code. This machine has no way
 * to call: GLOBAL resolves only a fixed list of names (torch._utils._rebuild_tensor_v2 and
 * _rebuild_parameter, collections.OrderedDict, the torch storage types) to tags, and REDUCE
 * applied to a tag builds a plain value (a tensor record, an empty dict) from checked arguments.
 * Every other global and every opcode that instantiates classes (INST, OBJ, NEWOBJ, EXT*) is
 * refused with a line naming it. It accepts what torch.save writes (protocol 2, and 3-5 for
 * pickle_protocol=), the equivalent of torch.load(weights_only=True).
 *
 * Values live in an arena freed at once, so the memo and DUP may share them freely. Memory is
 * linear in the input: each opcode creates at most one value and containers grow by doubling.
 * Nothing walks a value tree recursively, and container nesting beyond ROTEQ_PICKLE_MAX_DEPTH is
 * refused anyway (a recursion bomb is an error, not a stack overflow in a later reader). */
#include "roteq_util.h"
#include "torch_internal.h"

#include <stdlib.h>
#include <string.h>

enum { G_REBUILD_TENSOR = 1, G_REBUILD_PARAMETER, G_ORDERED_DICT, G_STORAGE0 = 100 };

static const struct {
    const char *name;
    roteq_dtype dtype;
    size_t esize;
} storage_types[] = {
    {"FloatStorage", ROTEQ_DT_F32, 4},          {"DoubleStorage", ROTEQ_DT_F64, 8},
    {"HalfStorage", ROTEQ_DT_F16, 2},           {"BFloat16Storage", ROTEQ_DT_BF16, 2},
    {"LongStorage", ROTEQ_DT_OTHER, 8},         {"IntStorage", ROTEQ_DT_OTHER, 4},
    {"ShortStorage", ROTEQ_DT_OTHER, 2},        {"CharStorage", ROTEQ_DT_OTHER, 1},
    {"ByteStorage", ROTEQ_DT_OTHER, 1},         {"BoolStorage", ROTEQ_DT_OTHER, 1},
    {"ComplexFloatStorage", ROTEQ_DT_OTHER, 8}, {"ComplexDoubleStorage", ROTEQ_DT_OTHER, 16},
    {"UntypedStorage", ROTEQ_DT_OTHER, 1},
};
#define NSTORAGE (sizeof storage_types / sizeof storage_types[0])

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
} chunk;

struct roteq_pickle {
    chunk *chunks;
    roteq_pk *root;
};

typedef struct {
    const char *name;
    const unsigned char *p, *end;
    roteq_pickle *pk;
    roteq_pk **stack;
    size_t sp, scap;
    size_t *marks;
    size_t nmarks, mcap;
    roteq_pk **memo;
    size_t mlen, mcount, memo_limit; /* slots, entries set, largest index + 1 allowed */
} machine;

static void *arena(roteq_pickle *p, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    chunk *c = p->chunks;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof *c + cap);
        if (c == NULL)
            return NULL;
        c->next = p->chunks;
        c->used = 0;
        c->cap = cap;
        p->chunks = c;
    }
    void *r = c->mem + c->used;
    c->used += n;
    return r;
}

void roteq_pickle_free(roteq_pickle *p)
{
    if (p == NULL)
        return;
    for (chunk *c = p->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(p);
}

const roteq_pk *roteq_pickle_root(const roteq_pickle *p)
{
    return p->root;
}

static int oom(void)
{
    return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
}

static int bad(const machine *m, const char *what)
{
    return roteq_error_set(ROTEQ_EFORMAT, "%s: %s", m->name, what);
}

static roteq_pk *value(machine *m, roteq_pk_kind kind)
{
    roteq_pk *v = arena(m->pk, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
    }
    return v;
}

static int push(machine *m, roteq_pk *v)
{
    if (v == NULL)
        return oom();
    if (m->sp == m->scap) {
        size_t cap = m->scap ? 2 * m->scap : 64;
        roteq_pk **s = realloc(m->stack, cap * sizeof *s);
        if (s == NULL)
            return oom();
        m->stack = s;
        m->scap = cap;
    }
    m->stack[m->sp++] = v;
    return ROTEQ_OK;
}

static int pop(machine *m, roteq_pk **v)
{
    size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
    if (m->sp <= floor)
        return bad(m, "stack underflow (corrupt pickle)");
    *v = m->stack[--m->sp];
    return ROTEQ_OK;
}

/* The items above the topmost mark: first index and count; the mark is dropped. */
static int pop_mark(machine *m, size_t *first, size_t *count)
{
    if (m->nmarks == 0)
        return bad(m, "no MARK on the stack (corrupt pickle)");
    *first = m->marks[--m->nmarks];
    *count = m->sp - *first;
    return ROTEQ_OK;
}

static int need(machine *m, size_t n)
{
    if ((size_t)(m->end - m->p) < n)
        return bad(m, "truncated pickle");
    return ROTEQ_OK;
}

static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static unsigned deeper(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

/* Append v to a TUPLE/LIST's items, tracking the nesting depth. */
/* A value goes into container c: c must not be inside another container already, nor be v.
 * Pickles of tensors and state dicts fill each container before placing it; refusing the rest
 * rules out cycles (a list that holds itself), so every value tree is finite and its depth,
 * fixed once a container is placed, is exact. */
static int place(machine *m, roteq_pk *c, roteq_pk *v)
{
    if (c->sealed || v == c)
        return bad(m, "a container changed after being placed in another, or holding itself");
    v->sealed = 1;
    return ROTEQ_OK;
}

static int seq_add(machine *m, roteq_pk *s, roteq_pk *v)
{
    int st = place(m, s, v);
    if (st)
        return st;
    if (s->u.seq.n == s->u.seq.cap) {
        size_t cap = s->u.seq.cap ? 2 * s->u.seq.cap : 4;
        roteq_pk **items = arena(m->pk, cap * sizeof *items);
        if (items == NULL)
            return oom();
        if (s->u.seq.n)
            memcpy(items, s->u.seq.items, s->u.seq.n * sizeof *items);
        s->u.seq.items = items;
        s->u.seq.cap = cap;
    }
    s->u.seq.items[s->u.seq.n++] = v;
    s->depth = deeper(s->depth, v->depth + 1);
    if (s->depth > ROTEQ_PICKLE_MAX_DEPTH)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: containers nested deeper than %u", m->name,
                               ROTEQ_PICKLE_MAX_DEPTH);
    return ROTEQ_OK;
}

static int dict_set(machine *m, roteq_pk *d, roteq_pk *k, roteq_pk *v)
{
    int st = place(m, d, k);
    if (!st)
        st = place(m, d, v);
    if (st)
        return st;
    if (d->u.dict.n == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? 2 * d->u.dict.cap : 8;
        roteq_pk **keys = arena(m->pk, cap * sizeof *keys);
        roteq_pk **vals = arena(m->pk, cap * sizeof *vals);
        if (keys == NULL || vals == NULL)
            return oom();
        if (d->u.dict.n) {
            memcpy(keys, d->u.dict.keys, d->u.dict.n * sizeof *keys);
            memcpy(vals, d->u.dict.vals, d->u.dict.n * sizeof *vals);
        }
        d->u.dict.keys = keys;
        d->u.dict.vals = vals;
        d->u.dict.cap = cap;
    }
    d->u.dict.keys[d->u.dict.n] = k;
    d->u.dict.vals[d->u.dict.n++] = v;
    d->depth = deeper(d->depth, deeper(k->depth, v->depth) + 1);
    if (d->depth > ROTEQ_PICKLE_MAX_DEPTH)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: containers nested deeper than %u", m->name,
                               ROTEQ_PICKLE_MAX_DEPTH);
    return ROTEQ_OK;
}

static roteq_pk *string(machine *m, roteq_pk_kind kind, const unsigned char *s, size_t n)
{
    roteq_pk *v = value(m, kind);
    char *c = v ? arena(m->pk, n + 1) : NULL;
    if (c == NULL)
        return NULL;
    memcpy(c, s, n);
    c[n] = '\0';
    v->u.str.s = c;
    v->u.str.len = n;
    return v;
}

/* A string opcode's payload: length field of `lenbytes` bytes, then the bytes. */
static int op_string(machine *m, roteq_pk_kind kind, size_t lenbytes)
{
    int st = need(m, lenbytes);
    if (st)
        return st;
    uint64_t n = le(m->p, lenbytes);
    m->p += lenbytes;
    if (n > (uint64_t)(m->end - m->p))
        return bad(m, "truncated pickle (string longer than the data)");
    roteq_pk *v = string(m, kind, m->p, (size_t)n);
    m->p += n;
    return push(m, v);
}

/* Resolve module.name to an allowed tag, or refuse naming it. */
static int resolve(machine *m, const char *mod, size_t ml, const char *nm, size_t nl, int *tag)
{
#define IS(a, b)                                                                                   \
    (ml == strlen(a) && memcmp(mod, a, ml) == 0 && nl == strlen(b) && !memcmp(nm, b, nl))
    if (IS("torch._utils", "_rebuild_tensor_v2"))
        *tag = G_REBUILD_TENSOR;
    else if (IS("torch._utils", "_rebuild_parameter"))
        *tag = G_REBUILD_PARAMETER;
    else if (IS("collections", "OrderedDict"))
        *tag = G_ORDERED_DICT;
    else {
        *tag = 0;
        int torch = (ml == 5 && memcmp(mod, "torch", 5) == 0) ||
                    (ml == 13 && memcmp(mod, "torch.storage", 13) == 0);
        for (size_t i = 0; torch && i < NSTORAGE; i++)
            if (nl == strlen(storage_types[i].name) && memcmp(nm, storage_types[i].name, nl) == 0)
                *tag = G_STORAGE0 + (int)i;
    }
#undef IS
    if (*tag)
        return ROTEQ_OK;
    return roteq_error_set(ROTEQ_EFORMAT,
                           "%s: global '%.*s.%.*s' is not allowed (only tensors, storages, "
                           "OrderedDict and plain values are read)",
                           m->name, (int)(ml > 200 ? 200 : ml), mod, (int)(nl > 200 ? 200 : nl),
                           nm);
}

static int push_global(machine *m, int tag)
{
    roteq_pk *g = value(m, ROTEQ_PK_GLOBAL);
    if (g)
        g->u.global = tag;
    return push(m, g);
}

/* GLOBAL: "module\nname\n". */
static int op_global(machine *m)
{
    const unsigned char *a = m->p, *nl1 = memchr(a, '\n', (size_t)(m->end - a));
    const unsigned char *b = nl1 ? nl1 + 1 : NULL;
    const unsigned char *nl2 = b ? memchr(b, '\n', (size_t)(m->end - b)) : NULL;
    if (nl2 == NULL)
        return bad(m, "truncated pickle (GLOBAL)");
    m->p = nl2 + 1;
    int tag, st = resolve(m, (const char *)a, (size_t)(nl1 - a), (const char *)b, (size_t)(nl2 - b),
                          &tag);
    return st ? st : push_global(m, tag);
}

static int op_stack_global(machine *m)
{
    roteq_pk *nm = NULL, *mod = NULL;
    int st = pop(m, &nm);
    if (!st)
        st = pop(m, &mod);
    if (st)
        return st;
    if (nm->kind != ROTEQ_PK_STR || mod->kind != ROTEQ_PK_STR)
        return bad(m, "STACK_GLOBAL needs two strings");
    int tag;
    st = resolve(m, mod->u.str.s, mod->u.str.len, nm->u.str.s, nm->u.str.len, &tag);
    return st ? st : push_global(m, tag);
}

static int as_uint(const roteq_pk *v, uint64_t *out)
{
    if (v->kind != ROTEQ_PK_INT || v->u.i < 0)
        return -1;
    *out = (uint64_t)v->u.i;
    return 0;
}

/* BINPERSID: ('storage', TYPE, KEY, LOCATION, NUMEL). */
static int op_persid(machine *m)
{
    roteq_pk *pid = NULL;
    int st = pop(m, &pid);
    if (st)
        return st;
    roteq_pk **it = pid->u.seq.items;
    uint64_t numel;
    if (pid->kind != ROTEQ_PK_TUPLE || pid->u.seq.n != 5 || it[0]->kind != ROTEQ_PK_STR ||
        strcmp(it[0]->u.str.s, "storage") != 0 || it[1]->kind != ROTEQ_PK_GLOBAL ||
        it[1]->u.global < G_STORAGE0 || it[2]->kind != ROTEQ_PK_STR ||
        it[3]->kind != ROTEQ_PK_STR || as_uint(it[4], &numel))
        return bad(m, "persistent id is not ('storage', TYPE, KEY, LOCATION, NUMEL)");
    size_t t = (size_t)(it[1]->u.global - G_STORAGE0);
    if (it[2]->u.str.len == 0 || strlen(it[2]->u.str.s) != it[2]->u.str.len ||
        strchr(it[2]->u.str.s, '/') || strcmp(it[2]->u.str.s, "..") == 0)
        return bad(m, "storage key is empty or holds '/'");
    roteq_pk *v = value(m, ROTEQ_PK_STORAGE);
    roteq_pk_storage *s = v ? arena(m->pk, sizeof *s) : NULL;
    if (s == NULL)
        return oom();
    s->dtype = storage_types[t].dtype;
    s->esize = storage_types[t].esize;
    s->type = storage_types[t].name;
    s->key = it[2]->u.str.s;
    s->numel = numel;
    v->u.storage = s;
    return push(m, v);
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]). */
static int rebuild_tensor(machine *m, const roteq_pk *args, roteq_pk **out)
{
    roteq_pk *const *a = args->u.seq.items;
    uint64_t off;
    if (args->u.seq.n < 6 || args->u.seq.n > 7 || a[0]->kind != ROTEQ_PK_STORAGE ||
        as_uint(a[1], &off) || a[2]->kind != ROTEQ_PK_TUPLE || a[3]->kind != ROTEQ_PK_TUPLE)
        return bad(m, "_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)");
    size_t rank = a[2]->u.seq.n;
    if (rank > ROTEQ_TENSOR_MAX_RANK || a[3]->u.seq.n != rank)
        return bad(m, "tensor rank above 8, or size and stride of different lengths");
    roteq_pk *v = value(m, ROTEQ_PK_TENSOR);
    roteq_pk_tensor *t = v ? arena(m->pk, sizeof *t) : NULL;
    if (t == NULL)
        return oom();
    memset(t, 0, sizeof *t);
    t->storage = a[0];
    t->offset = off;
    t->rank = rank;
    uint64_t numel = 1, last = off; /* last element index reached by the view */
    int overflow = 0;
    for (size_t i = 0; i < rank; i++) {
        if (as_uint(a[2]->u.seq.items[i], &t->shape[i]) ||
            as_uint(a[3]->u.seq.items[i], &t->stride[i]))
            return bad(m, "tensor size and stride must be non-negative integers");
        uint64_t span;
        overflow |= __builtin_mul_overflow(numel, t->shape[i], &numel);
        if (t->shape[i] > 0) {
            overflow |= __builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &span);
            overflow |= __builtin_add_overflow(last, span, &last);
        }
    }
    if (overflow)
        return bad(m, "tensor shape or stride overflows 64 bits");
    t->numel = numel;
    if (numel > 0 && last >= a[0]->u.storage->numel)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor view (offset %llu, last element %llu) reaches past "
                               "its storage '%s' of %llu elements",
                               m->name, (unsigned long long)off, (unsigned long long)last,
                               a[0]->u.storage->key, (unsigned long long)a[0]->u.storage->numel);
    v->u.tensor = t;
    *out = v;
    return ROTEQ_OK;
}

static int op_reduce(machine *m)
{
    roteq_pk *args = NULL, *f = NULL, *r = NULL;
    int st = pop(m, &args);
    if (!st)
        st = pop(m, &f);
    if (st)
        return st;
    if (f->kind != ROTEQ_PK_GLOBAL || args->kind != ROTEQ_PK_TUPLE)
        return bad(m, "REDUCE of something that is not an allowed global");
    switch (f->u.global) {
    case G_REBUILD_TENSOR:
        st = rebuild_tensor(m, args, &r);
        break;
    case G_REBUILD_PARAMETER: /* (tensor, requires_grad, hooks): the tensor itself */
        if (args->u.seq.n < 1 || args->u.seq.items[0]->kind != ROTEQ_PK_TENSOR)
            return bad(m, "_rebuild_parameter needs a tensor");
        r = args->u.seq.items[0];
        break;
    case G_ORDERED_DICT: /* OrderedDict(): items come by SETITEMS afterwards */
        if (args->u.seq.n != 0)
            return bad(m, "OrderedDict with constructor arguments is not read");
        r = value(m, ROTEQ_PK_DICT);
        if (r == NULL)
            return oom();
        break;
    default:
        return bad(m, "a storage type cannot be called");
    }
    return st ? st : push(m, r);
}

/* BUILD sets an object's state: OrderedDict's attributes (a state_dict's _metadata) and a
 * parameter's state are dropped; anything else would need a class and is refused. */
static int op_build(machine *m)
{
    roteq_pk *state = NULL, *obj = NULL;
    int st = pop(m, &state);
    if (!st)
        st = pop(m, &obj);
    if (st)
        return st;
    if (obj->kind != ROTEQ_PK_DICT && obj->kind != ROTEQ_PK_TENSOR)
        return bad(m, "BUILD of an object that is not a dict or tensor is not allowed");
    return push(m, obj);
}

static int memo_put(machine *m, uint64_t idx)
{
    if (m->sp == 0)
        return bad(m, "PUT on an empty stack");
    if (idx >= m->memo_limit)
        return bad(m, "memo index beyond the pickle's length");
    if (idx >= m->mlen) {
        size_t n = m->mlen ? m->mlen : 64;
        while (n <= idx)
            n *= 2;
        roteq_pk **nm = realloc(m->memo, n * sizeof *nm);
        if (nm == NULL)
            return oom();
        memset(nm + m->mlen, 0, (n - m->mlen) * sizeof *nm);
        m->memo = nm;
        m->mlen = n;
    }
    if (m->memo[idx] == NULL)
        m->mcount++;
    m->memo[idx] = m->stack[m->sp - 1];
    return ROTEQ_OK;
}

static int memo_get(machine *m, uint64_t idx)
{
    if (idx >= m->mlen || m->memo[idx] == NULL)
        return bad(m, "GET of a memo entry never PUT");
    return push(m, m->memo[idx]);
}

static int op_collect(machine *m, roteq_pk_kind kind)
{
    size_t first = 0, count = 0;
    int st = pop_mark(m, &first, &count);
    if (st)
        return st;
    roteq_pk *v = value(m, kind);
    if (v == NULL)
        return oom();
    if (kind == ROTEQ_PK_DICT && count % 2)
        return bad(m, "DICT with an odd number of items");
    for (size_t i = 0; i < count && !st; i += kind == ROTEQ_PK_DICT ? 2 : 1)
        st = kind == ROTEQ_PK_DICT ? dict_set(m, v, m->stack[first + i], m->stack[first + i + 1])
                                   : seq_add(m, v, m->stack[first + i]);
    m->sp = first;
    return st ? st : push(m, v);
}

static int op_tuple_n(machine *m, size_t n)
{
    size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
    if (m->sp - floor < n)
        return bad(m, "stack underflow (corrupt pickle)");
    roteq_pk *v = value(m, ROTEQ_PK_TUPLE);
    if (v == NULL)
        return oom();
    int st = ROTEQ_OK;
    for (size_t i = m->sp - n; i < m->sp && !st; i++)
        st = seq_add(m, v, m->stack[i]);
    m->sp -= n;
    return st ? st : push(m, v);
}

/* APPEND(S) and SETITEM(S): add the items above the mark (or the top one/two) to the container
 * below them. */
static int op_add(machine *m, int is_dict, int marked)
{
    size_t first = 0, count = 0;
    int st = ROTEQ_OK;
    if (marked)
        st = pop_mark(m, &first, &count);
    else {
        count = is_dict ? 2 : 1;
        size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
        if (m->sp - floor < count)
            return bad(m, "stack underflow (corrupt pickle)");
        first = m->sp - count;
    }
    if (st)
        return st;
    size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
    if (first == 0 || first - 1 < floor)
        return bad(m, "nothing to add items to");
    roteq_pk *c = m->stack[first - 1];
    if (is_dict ? c->kind != ROTEQ_PK_DICT : c->kind != ROTEQ_PK_LIST)
        return bad(m, is_dict ? "SETITEM(S) on something that is not a dict"
                              : "APPEND(S) on something that is not a list");
    if (is_dict && count % 2)
        return bad(m, "SETITEMS with an odd number of items");
    for (size_t i = 0; i < count && !st; i += is_dict ? 2 : 1)
        st = is_dict ? dict_set(m, c, m->stack[first + i], m->stack[first + i + 1])
                     : seq_add(m, c, m->stack[first + i]);
    m->sp = first;
    return st;
}

static int op_mark(machine *m)
{
    if (m->nmarks == m->mcap) {
        size_t cap = m->mcap ? 2 * m->mcap : 16;
        size_t *nm = realloc(m->marks, cap * sizeof *nm);
        if (nm == NULL)
            return oom();
        m->marks = nm;
        m->mcap = cap;
    }
    m->marks[m->nmarks++] = m->sp;
    return ROTEQ_OK;
}

static int op_int(machine *m, size_t nbytes, int is_signed)
{
    int st = need(m, nbytes);
    if (st)
        return st;
    uint64_t u = le(m->p, nbytes);
    m->p += nbytes;
    roteq_pk *v = value(m, ROTEQ_PK_INT);
    if (v == NULL)
        return oom();
    v->u.i = is_signed && nbytes == 4 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
    return push(m, v);
}

/* LONG1: a little-endian two's-complement integer of n <= 8 bytes. */
static int op_long1(machine *m)
{
    int st = need(m, 1);
    if (st)
        return st;
    size_t n = *m->p++;
    if (n > 8)
        return bad(m, "integer wider than 64 bits");
    if ((st = need(m, n)))
        return st;
    uint64_t u = le(m->p, n);
    if (n > 0 && n < 8 && (m->p[n - 1] & 0x80))
        u |= ~(uint64_t)0 << (8 * n);
    m->p += n;
    roteq_pk *v = value(m, ROTEQ_PK_INT);
    if (v == NULL)
        return oom();
    v->u.i = (int64_t)u;
    return push(m, v);
}

static int op_float(machine *m)
{
    int st = need(m, 8);
    if (st)
        return st;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | m->p[i]; /* big-endian */
    m->p += 8;
    roteq_pk *v = value(m, ROTEQ_PK_FLOAT);
    if (v == NULL)
        return oom();
    memcpy(&v->u.f, &u, 8);
    return push(m, v);
}

static int op_simple(machine *m, roteq_pk_kind kind, int64_t i)
{
    roteq_pk *v = value(m, kind);
    if (v)
        v->u.i = i;
    return push(m, v);
}

static int op_refused(machine *m, unsigned char op)
{
    const char *what =
        op == 'c'                    ? "GLOBAL"
        : op == 'i'                  ? "INST"
        : op == 'o'                  ? "OBJ"
        : op == 0x81                 ? "NEWOBJ"
        : op == 0x92                 ? "NEWOBJ_EX"
        : (op >= 0x82 && op <= 0x84) ? "EXT"
        : op == 'P'                  ? "PERSID (text)"
        : (op == 'I' || op == 'L' || op == 'F' || op == 'S' || op == 'V' || op == 'p' || op == 'g')
            ? "a protocol-0 text opcode"
        : op == 0x8f || op == 0x90 || op == 0x91 ? "a set"
        : op == 0x96 || op == 0x97 || op == 0x98 ? "an out-of-band buffer"
                                                 : NULL;
    if (what)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: pickle opcode %s (0x%02x) is not allowed",
                               m->name, what, op);
    return roteq_error_set(ROTEQ_EFORMAT, "%s: unknown pickle opcode 0x%02x", m->name, op);
}

/* One opcode; *stop set at STOP. */
static int step(machine *m, int *stop)
{
    unsigned char op = *m->p++;
    roteq_pk *v = NULL;
    int st;
    switch (op) {
    case 0x80: /* PROTO */
        if ((st = need(m, 1)))
            return st;
        if (*m->p < 2 || *m->p > 5)
            return bad(m, "pickle protocol other than 2-5");
        m->p++;
        return ROTEQ_OK;
    case 0x95: /* FRAME: a length hint */
        if ((st = need(m, 8)))
            return st;
        m->p += 8;
        return ROTEQ_OK;
    case '.':
        *stop = 1;
        return ROTEQ_OK;
    case '(':
        return op_mark(m);
    case '0':
        return pop(m, &v);
    case '1': {
        size_t first = 0, count = 0;
        if ((st = pop_mark(m, &first, &count)))
            return st;
        m->sp = first;
        return ROTEQ_OK;
    }
    case '2':
        if (m->sp == 0)
            return bad(m, "DUP on an empty stack");
        return push(m, m->stack[m->sp - 1]);
    case 'N':
        return op_simple(m, ROTEQ_PK_NONE, 0);
    case 0x88:
        return op_simple(m, ROTEQ_PK_BOOL, 1);
    case 0x89:
        return op_simple(m, ROTEQ_PK_BOOL, 0);
    case 'J':
        return op_int(m, 4, 1);
    case 'K':
        return op_int(m, 1, 0);
    case 'M':
        return op_int(m, 2, 0);
    case 0x8a:
        return op_long1(m);
    case 'G':
        return op_float(m);
    case 'X':
        return op_string(m, ROTEQ_PK_STR, 4);
    case 0x8c:
        return op_string(m, ROTEQ_PK_STR, 1);
    case 0x8d:
        return op_string(m, ROTEQ_PK_STR, 8);
    case 'T':
        return op_string(m, ROTEQ_PK_STR, 4);
    case 'U':
        return op_string(m, ROTEQ_PK_STR, 1);
    case 'B':
        return op_string(m, ROTEQ_PK_BYTES, 4);
    case 'C':
        return op_string(m, ROTEQ_PK_BYTES, 1);
    case 0x8e:
        return op_string(m, ROTEQ_PK_BYTES, 8);
    case ')':
        return push(m, value(m, ROTEQ_PK_TUPLE));
    case 't':
        return op_collect(m, ROTEQ_PK_TUPLE);
    case 0x85:
    case 0x86:
    case 0x87:
        return op_tuple_n(m, (size_t)(op - 0x84));
    case ']':
        return push(m, value(m, ROTEQ_PK_LIST));
    case 'l':
        return op_collect(m, ROTEQ_PK_LIST);
    case 'a':
        return op_add(m, 0, 0);
    case 'e':
        return op_add(m, 0, 1);
    case '}':
        return push(m, value(m, ROTEQ_PK_DICT));
    case 'd':
        return op_collect(m, ROTEQ_PK_DICT);
    case 's':
        return op_add(m, 1, 0);
    case 'u':
        return op_add(m, 1, 1);
    case 'q':
    case 'h':
        if ((st = need(m, 1)))
            return st;
        m->p++;
        return op == 'q' ? memo_put(m, m->p[-1]) : memo_get(m, m->p[-1]);
    case 'r':
    case 'j':
        if ((st = need(m, 4)))
            return st;
        m->p += 4;
        return op == 'r' ? memo_put(m, le(m->p - 4, 4)) : memo_get(m, le(m->p - 4, 4));
    case 0x94: /* MEMOIZE: the next index */
        return memo_put(m, m->mcount);
    case 'c':
        return op_global(m);
    case 0x93:
        return op_stack_global(m);
    case 'Q':
        return op_persid(m);
    case 'R':
        return op_reduce(m);
    case 'b':
        return op_build(m);
    default:
        return op_refused(m, op);
    }
}

static void machine_clear(machine *m)
{
    free(m->stack);
    free(m->marks);
    free(m->memo);
}

int roteq_pickle_load(const char *name, const unsigned char *data, size_t n, roteq_pickle **out)
{
    *out = NULL;
    if (n > ROTEQ_PICKLE_MAX_BYTES)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: pickle of %zu bytes is above the limit of %zu",
                               name, n, ROTEQ_PICKLE_MAX_BYTES);
    roteq_pickle *pk = calloc(1, sizeof *pk);
    if (pk == NULL)
        return oom();
    machine m = {.name = name, .p = data, .end = data + n, .pk = pk, .memo_limit = n + 1};
    int st = ROTEQ_OK, stop = 0;
    while (!st && !stop) {
        if (m.p >= m.end) {
            st = bad(&m, "truncated pickle (no STOP)");
            break;
        }
        st = step(&m, &stop);
    }
    if (!st && (m.sp != 1 || m.nmarks != 0))
        st = bad(&m, "pickle does not end with exactly one value");
    if (!st)
        pk->root = m.stack[0];
    machine_clear(&m);
    if (st) {
        roteq_pickle_free(pk);
        return st;
    }
    *out = pk;
    return ROTEQ_OK;
}

const roteq_pk *roteq_pk_get(const roteq_pk *d, const char *key)
{
    if (d == NULL || d->kind != ROTEQ_PK_DICT)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = d->u.dict.n; i-- > 0;) {
        const roteq_pk *k = d->u.dict.keys[i];
        if (k->kind == ROTEQ_PK_STR && k->u.str.len == len && memcmp(k->u.str.s, key, len) == 0)
            return d->u.dict.vals[i];
    }
    return NULL;
}

int roteq_pk_number(const roteq_pk *v, double *out)
{
    if (v == NULL)
        return 0;
    if (v->kind == ROTEQ_PK_INT || v->kind == ROTEQ_PK_BOOL) {
        *out = (double)v->u.i;
        return 1;
    }
    if (v->kind == ROTEQ_PK_FLOAT) {
        *out = v->u.f;
        return 1;
    }
    return 0;
}

int roteq_pk_has_tensors(const roteq_pk *d)
{
    if (d == NULL || d->kind != ROTEQ_PK_DICT)
        return 0;
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (d->u.dict.vals[i]->kind == ROTEQ_PK_TENSOR)
            return 1;
    return 0;
}
