/* optstate.c - an optimizer's saved state mapped onto the weights it updates.
 *
 * With Adam-family optimizers and heavy-ball SGD, the state (moments, momentum buffer, step and
 * the group's hyperparameters) determines the last update exactly, so one checkpoint gives the
 * per-step rotation. PyTorch's optimizer.state_dict() numbers parameters 0..N-1 in param-group
 * order instead of naming them; this file recovers the names from the model's state dict, whose
 * tensors come in module order, the order model.parameters() lists them and in which every param
 * group keeps its members. The assignment must be the only order-preserving one consistent with
 * the shape of every state tensor; equal shapes next to a frozen or an unlisted tensor can admit
 * several, and then reading fails instead of guessing. Sources: a training-script torch.save dict,
 * an HF checkpoint folder (optimizer.pt beside the weights), or a recorder snapshot that names
 * each tensor `optimizer/<param>/<key>` and stores groups in its metadata. */
#include "roteq_util.h"
#include "torch_internal.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *name;
    roteq_analysis_tensor_info info; /* info.name unused */
    const unsigned char *data;       /* NULL until read */
    roteq_torch_archive *arch;       /* torch: read on demand from here */
    const roteq_pk *pk;
} wtensor;

typedef struct {
    wtensor *t;
    size_t n, cap;
} wlist;

typedef struct {
    const char *path;
    wlist w;     /* the model's weights (model order when `ordered`) */
    int ordered; /* safetensors files do not keep the model's order */
    roteq_torch_archive **arch;
    size_t narch;
    unsigned char **bufs;
    size_t nbufs;
    roteq_torch_archive *opt_arch; /* the archive holding `opt` */
    const roteq_pk *opt;           /* optimizer.state_dict() */
    const char *opt_file;
    json_t *rec; /* the recorder's roteq.optimizer metadata */
    wlist ot;    /* the recorder's optimizer/<param>/<key> tensors */
} source;

static int oom(void)
{
    return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
}

static int wlist_add(wlist *l, const char *name, size_t len, wtensor **out)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        wtensor *t = realloc(l->t, cap * sizeof *t);
        if (t == NULL)
            return oom();
        l->t = t;
        l->cap = cap;
    }
    wtensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    if ((t->name = strndup(name, len)) == NULL)
        return oom();
    l->n++;
    *out = t;
    return ROTEQ_OK;
}

static void wlist_clear(wlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->t[i].name);
    free(l->t);
}

static void source_clear(source *s)
{
    wlist_clear(&s->w);
    wlist_clear(&s->ot);
    for (size_t i = 0; i < s->narch; i++)
        roteq_torch_archive_free(s->arch[i]);
    for (size_t i = 0; i < s->nbufs; i++)
        free(s->bufs[i]);
    free(s->arch);
    free(s->bufs);
    if (s->rec)
        json_decref(s->rec);
}

static int keep_archive(source *s, roteq_torch_archive *a)
{
    roteq_torch_archive **n = realloc(s->arch, (s->narch + 1) * sizeof *n);
    if (n == NULL) {
        roteq_torch_archive_free(a);
        return oom();
    }
    s->arch = n;
    s->arch[s->narch++] = a;
    return ROTEQ_OK;
}

/* The tensor's data, read on first use. */
static int wdata(wtensor *t)
{
    if (t->data || t->arch == NULL)
        return ROTEQ_OK;
    return roteq_torch_archive_tensor(t->arch, t->pk, t->name, &t->info, &t->data);
}

/* Geometry of a pickled tensor without reading it. */
static void pk_info(const roteq_pk *v, roteq_analysis_tensor_info *info)
{
    memset(info, 0, sizeof *info);
    const roteq_pk_tensor *t = v->u.tensor;
    info->dtype = t->storage->u.storage->dtype;
    info->rank = t->rank;
    memcpy(info->shape, t->shape, sizeof info->shape);
    info->nbytes = t->numel * t->storage->u.storage->esize;
}

static int add_torch_dict(source *s, roteq_torch_archive *a, const roteq_pk *d)
{
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const roteq_pk *k = d->u.dict.keys[i], *v = d->u.dict.vals[i];
        if (k->kind != ROTEQ_PK_STR || v->kind != ROTEQ_PK_TENSOR)
            continue;
        wtensor *t;
        int st = wlist_add(&s->w, k->u.str.s, k->u.str.len, &t);
        if (st)
            return st;
        t->arch = a;
        t->pk = v;
        pk_info(v, &t->info);
    }
    return ROTEQ_OK;
}

static const roteq_pk *find_optimizer(const roteq_pk *root)
{
    if (roteq_pk_get(root, "state") && roteq_pk_get(root, "param_groups"))
        return root;
    static const char *const keys[] = {"optimizer", "optimizer_state_dict", "optim"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const roteq_pk *o = roteq_pk_get(root, keys[i]);
        if (roteq_pk_get(o, "state") && roteq_pk_get(o, "param_groups"))
            return o;
    }
    return NULL;
}

/* A torch.save file: weights (unless it is an optimizer.pt) and optimizer state if present. */
static int load_torch(source *s, const char *path, const char *key, int weights)
{
    roteq_torch_archive *a;
    int st = roteq_torch_archive_open(path, &a);
    if (st || (st = keep_archive(s, a)))
        return st;
    const roteq_pk *opt = find_optimizer(roteq_torch_archive_root(a));
    if (opt && s->opt == NULL) {
        s->opt = opt;
        s->opt_arch = a;
        s->opt_file = roteq_torch_archive_name(a);
    }
    if (!weights)
        return ROTEQ_OK;
    const roteq_pk *d;
    if ((st = roteq_torch_archive_model(a, key, &d)))
        return st;
    return add_torch_dict(s, a, d);
}

static int read_whole(const char *path, unsigned char **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    unsigned char *b = malloc(cap);
    while (b) {
        len += fread(b + len, 1, cap - len, f);
        if (len < cap)
            break;
        unsigned char *nb = realloc(b, cap *= 2);
        if (nb == NULL)
            free(b);
        b = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (b == NULL)
        return oom();
    if (err) {
        free(b);
        return roteq_error_set(ROTEQ_EIO, "%s: read error", path);
    }
    *out = b;
    *n = len;
    return ROTEQ_OK;
}

/* The `roteq.optimizer` entry of a safetensors header's __metadata__, parsed. */
static int recorder_meta(const char *path, const unsigned char *b, size_t n, json_t **out)
{
    *out = NULL;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0 && n >= 8; i--)
        hlen = hlen << 8 | b[i];
    json_t *h = json_loadb((const char *)b + 8, (size_t)hlen, 0, NULL); /* parse checked it */
    const char *txt =
        json_string_value(json_object_get(json_object_get(h, "__metadata__"), "roteq.optimizer"));
    int st = ROTEQ_OK;
    if (txt) {
        json_error_t e;
        *out = json_loads(txt, 0, &e);
        if (*out == NULL || !json_is_object(*out))
            st = roteq_error_set(ROTEQ_EFORMAT,
                                 "%s: metadata roteq.optimizer is not a JSON "
                                 "object",
                                 path);
    }
    json_decref(h);
    return st;
}

/* Whether a safetensors file holds optimizer state (an `optimizer/...` tensor or the recorder's
 * roteq.optimizer metadata), from its header alone: analyze asks this of every snapshot, and
 * reading whole files that hold only weights doubled the time of a snapshot analysis. A header
 * that cannot be read says yes, so that the full read reports the problem. */
static int safetensors_has_state(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 1;
    unsigned char len8[8];
    uint64_t hlen = 0;
    int yes = 1;
    if (fread(len8, 1, 8, f) == 8) {
        for (int i = 7; i >= 0; i--)
            hlen = hlen << 8 | len8[i];
        char *h = hlen <= ROTEQ_SAFETENSORS_MAX_HEADER ? malloc((size_t)hlen) : NULL;
        json_t *j =
            h && fread(h, 1, (size_t)hlen, f) == hlen ? json_loadb(h, (size_t)hlen, 0, NULL) : NULL;
        free(h);
        if (json_is_object(j)) {
            yes = json_object_get(json_object_get(j, "__metadata__"), "roteq.optimizer") != NULL;
            const char *k;
            json_t *v;
            json_object_foreach(j, k, v)
            {
                yes |= strncmp(k, "optimizer/", 10) == 0;
            }
        }
        json_decref(j);
    }
    fclose(f);
    return yes;
}

static int load_safetensors(source *s, const char *path)
{
    unsigned char *b = NULL;
    size_t n = 0;
    int st = read_whole(path, &b, &n);
    if (st)
        return st;
    unsigned char **nb = realloc(s->bufs, (s->nbufs + 1) * sizeof *nb);
    if (nb == NULL) {
        free(b);
        return oom();
    }
    s->bufs = nb;
    s->bufs[s->nbufs++] = b;
    roteq_analysis_tensor_info *infos = NULL;
    size_t k = 0;
    if ((st = roteq_analysis_safetensors_parse(path, b, n, n, &infos, &k)))
        return st;
    for (size_t i = 0; i < k && !st; i++) {
        int is_opt = strncmp(infos[i].name, "optimizer/", 10) == 0;
        wtensor *t;
        st = wlist_add(is_opt ? &s->ot : &s->w, infos[i].name, strlen(infos[i].name), &t);
        if (!st) {
            t->info = infos[i];
            t->info.name = NULL;
            t->data = b + infos[i].offset;
        }
    }
    roteq_analysis_tensor_infos_free(infos, k);
    if (!st && s->rec == NULL) {
        st = recorder_meta(path, b, n, &s->rec);
        if (s->rec)
            s->opt_file = path;
    }
    return st;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* An HF checkpoint folder: weights from model*.safetensors or pytorch_model*.bin (shards sorted
 * by name, which is the order HF writes them: the model's), optimizer.pt beside them. */
static int load_folder(source *s, const char *dir, const char *key)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return roteq_error_set(ROTEQ_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    int st = ROTEQ_OK, have_bin = 0, have_st = 0, have_opt = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        int bin = strncmp(nm, "pytorch_model", 13) == 0 && has_suffix(nm, ".bin");
        int sft = strncmp(nm, "model", 5) == 0 && has_suffix(nm, ".safetensors");
        have_opt |= strcmp(nm, "optimizer.pt") == 0;
        if (!bin && !sft)
            continue;
        have_bin |= bin;
        have_st |= sft;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (nn == NULL || (nn[n] = strdup(nm)) == NULL) {
            names = nn ? nn : names;
            st = oom();
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (!st && n == 0)
        st = roteq_error_set(ROTEQ_EFORMAT,
                             "%s: no model.safetensors or pytorch_model.bin (shards) inside", dir);
    if (!st)
        qsort(names, n, sizeof *names, cmp_str);
    size_t plen = strlen(dir) + 64 + 256;
    char *p = st ? NULL : malloc(plen);
    if (!st && p == NULL)
        st = oom();
    for (size_t i = 0; i < n && !st; i++) {
        if (have_bin && has_suffix(names[i], ".safetensors"))
            continue; /* both written: the .bin keeps the model's order */
        snprintf(p, plen, "%s/%.255s", dir, names[i]);
        st = has_suffix(names[i], ".bin") ? load_torch(s, p, key, 1) : load_safetensors(s, p);
    }
    s->ordered = have_bin || !have_st;
    if (!st && have_opt) {
        snprintf(p, plen, "%s/optimizer.pt", dir);
        st = load_torch(s, p, NULL, 0);
    }
    free(p);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

/* ---- the state of one parameter, whatever the source */

/* amsgrad's max_exp_avg_sq is the running maximum that replaces exp_avg_sq in Adam's denominator.
 */
#define NSTATE 4
static const char *const state_keys[NSTATE] = {"exp_avg", "exp_avg_sq", "momentum_buffer",
                                               "max_exp_avg_sq"};

typedef struct {
    unsigned known;
    double lr, beta1, beta2, eps, wd, momentum, dampening;
    int nesterov;
} hparams;

typedef struct {
    wtensor *weight;
    size_t group;
    int has_step;
    double step;
    wtensor st[NSTATE]; /* present when .pk or .data is set */
} param;

static int present(const wtensor *t)
{
    return t->pk != NULL || t->data != NULL;
}

/* A number, or a one-element float tensor (torch >= 1.12 keeps 'step', and capturable optimizers
 * their lr, as tensors). */
static int pk_scalar(roteq_torch_archive *a, const roteq_pk *v, double *out)
{
    if (roteq_pk_number(v, out))
        return 1;
    if (v == NULL || v->kind != ROTEQ_PK_TENSOR || v->u.tensor->numel != 1)
        return 0;
    roteq_analysis_tensor_info info;
    const unsigned char *d;
    if (roteq_torch_archive_tensor(a, v, "scalar", &info, &d) || info.dtype == ROTEQ_DT_OTHER)
        return 0;
    roteq_analysis_tensor_rows(&info, d, 0, out);
    return 1;
}

/* The numeric keys of a param group (torch's state_dict and the recorder's JSON alike). */
static const struct {
    const char *key;
    unsigned bit;
    size_t off;
} num[] = {{"lr", ROTEQ_OPTSTATE_LR, offsetof(hparams, lr)},
           {"eps", ROTEQ_OPTSTATE_EPS, offsetof(hparams, eps)},
           {"weight_decay", ROTEQ_OPTSTATE_WEIGHT_DECAY, offsetof(hparams, wd)},
           {"momentum", ROTEQ_OPTSTATE_MOMENTUM, offsetof(hparams, momentum)},
           {"dampening", ROTEQ_OPTSTATE_DAMPENING, offsetof(hparams, dampening)}};

static void torch_hparams(roteq_torch_archive *a, const roteq_pk *g, hparams *h)
{
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
        double v;
        if (pk_scalar(a, roteq_pk_get(g, num[i].key), &v)) {
            memcpy((char *)h + num[i].off, &v, sizeof v);
            h->known |= num[i].bit;
        }
    }
    const roteq_pk *b = roteq_pk_get(g, "betas");
    if (b && (b->kind == ROTEQ_PK_TUPLE || b->kind == ROTEQ_PK_LIST) && b->u.seq.n == 2 &&
        pk_scalar(a, b->u.seq.items[0], &h->beta1) && pk_scalar(a, b->u.seq.items[1], &h->beta2))
        h->known |= ROTEQ_OPTSTATE_BETAS;
    const roteq_pk *n = roteq_pk_get(g, "nesterov");
    if (n && n->kind == ROTEQ_PK_BOOL) {
        h->nesterov = (int)n->u.i;
        h->known |= ROTEQ_OPTSTATE_NESTEROV;
    }
}

static void json_hparams(json_t *g, hparams *h)
{
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
        json_t *v = json_object_get(g, num[i].key);
        if (json_is_number(v)) {
            double d = json_number_value(v);
            memcpy((char *)h + num[i].off, &d, sizeof d);
            h->known |= num[i].bit;
        }
    }
    json_t *la = json_object_get(g, "lr_applied");
    if (json_is_number(la)) {
        h->lr = json_number_value(la);
        h->known |= ROTEQ_OPTSTATE_LR | ROTEQ_OPTSTATE_LR_APPLIED;
    }
    json_t *b = json_object_get(g, "betas");
    if (json_is_array(b) && json_array_size(b) == 2 && json_is_number(json_array_get(b, 0)) &&
        json_is_number(json_array_get(b, 1))) {
        h->beta1 = json_number_value(json_array_get(b, 0));
        h->beta2 = json_number_value(json_array_get(b, 1));
        h->known |= ROTEQ_OPTSTATE_BETAS;
    }
    json_t *n = json_object_get(g, "nesterov");
    if (json_is_boolean(n)) {
        h->nesterov = json_is_true(n);
        h->known |= ROTEQ_OPTSTATE_NESTEROV;
    }
}

/* ---- mapping numbered parameters onto the model's weights */

/* Buffers a model's state dict holds beside its parameters (BatchNorm's): never optimised. */
static int is_buffer(const wtensor *t)
{
    return t->info.dtype == ROTEQ_DT_OTHER || has_suffix(t->name, ".running_mean") ||
           has_suffix(t->name, ".running_var") || has_suffix(t->name, ".num_batches_tracked");
}

typedef struct {
    size_t rank; /* SIZE_MAX: no state tensor, any shape fits */
    uint64_t shape[ROTEQ_TENSOR_MAX_RANK];
} pshape;

static int fits(const pshape *p, const wtensor *w)
{
    return p->rank == SIZE_MAX ||
           (p->rank == w->info.rank &&
            memcmp(p->shape, w->info.shape, p->rank * sizeof *p->shape) == 0);
}

/* Order-preserving assignments of the parameters `ids` (n, shapes ps[ids[i]]) to candidates
 * cand[0..m), counted up to 2; when there is exactly one, map[ids[i]] = candidate index. */
static int embed(const size_t *ids, size_t n, const pshape *ps, wtensor *const *cand, size_t m,
                 size_t *map, int *count)
{
    unsigned char *w = malloc((n + 1) * (m + 1));
    if (w == NULL)
        return oom();
#define W(i, j) w[(size_t)(i) * (m + 1) + (j)]
    for (size_t j = 0; j <= m; j++)
        W(0, j) = 1;
    for (size_t i = 1; i <= n; i++) {
        W(i, 0) = 0;
        for (size_t j = 1; j <= m; j++) {
            unsigned v = W(i, j - 1) + (fits(&ps[ids[i - 1]], cand[j - 1]) ? W(i - 1, j - 1) : 0);
            W(i, j) = (unsigned char)(v > 2 ? 2 : v);
        }
    }
    *count = W(n, m);
    if (*count == 1)
        for (size_t i = n, j = m; i > 0; j--)
            if (W(i, j - 1) == 0) {
                map[ids[i - 1]] = j - 1;
                i--;
            }
#undef W
    free(w);
    return ROTEQ_OK;
}

static int map_by_order(const source *s, const size_t *grp, size_t n, size_t ngroups,
                        const pshape *ps, size_t *map)
{
    wtensor **cand = malloc((s->w.n + 1) * sizeof *cand);
    size_t *ids = malloc((n + 1) * sizeof *ids), m = 0;
    int st = cand && ids ? ROTEQ_OK : oom(), count = 0;
    for (size_t i = 0; !st && i < s->w.n; i++)
        if (!is_buffer(&s->w.t[i]))
            cand[m++] = &s->w.t[i];
    if (!st && (uint64_t)(n + 1) * (m + 1) > ((uint64_t)1 << 28))
        st = roteq_error_set(ROTEQ_EFORMAT,
                             "%s: %zu optimizer parameters x %zu weights: too many "
                             "to map by order",
                             s->opt_file, n, m);
    for (size_t i = 0; i < n; i++)
        ids[i] = i;
    if (!st)
        st = embed(ids, n, ps, cand, m, map, &count);
    /* Param groups that split the model (HF: decayed weights, then biases and norms) each keep
     * model order; map them one by one and require disjoint results. */
    for (size_t g = 0; !st && count == 0 && ngroups > 1 && g < ngroups; g++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (grp[i] == g)
                ids[k++] = i;
        st = embed(ids, k, ps, cand, m, map, &count);
        if (count != 1)
            break;
    }
    for (size_t i = 0; !st && count == 1 && i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (map[i] == map[j])
                count = 2;
    if (!st && count != 1)
        st = roteq_error_set(ROTEQ_EFORMAT,
                             "%s: the optimizer's %zu numbered parameters fit the model's %zu "
                             "trainable tensors in %s (shapes of their state): cannot tell which "
                             "is which; save parameter names (roteq recorder) instead",
                             s->opt_file, n, m, count == 0 ? "no order" : "more than one order");
    for (size_t i = 0; !st && i < n; i++)
        map[i] = (size_t)(cand[map[i]] - s->w.t);
    free(cand);
    free(ids);
    return st;
}

/* Parameters without the model's order (weights from safetensors): each state shape must match
 * exactly one weight, and no other parameter may share it. */
static int map_by_shape(const source *s, size_t n, const pshape *ps, size_t *map)
{
    for (size_t i = 0; i < n; i++) {
        size_t hits = 0, peers = 0;
        map[i] = SIZE_MAX;
        if (ps[i].rank == SIZE_MAX)
            continue; /* no state: nothing to map */
        for (size_t j = 0; j < s->w.n; j++)
            if (!is_buffer(&s->w.t[j]) && fits(&ps[i], &s->w.t[j])) {
                hits++;
                map[i] = j;
            }
        for (size_t k = 0; k < n; k++)
            peers += ps[k].rank == ps[i].rank &&
                     !memcmp(ps[k].shape, ps[i].shape, ps[i].rank * sizeof *ps[i].shape);
        if (hits != 1 || peers != 1)
            return roteq_error_set(
                ROTEQ_EFORMAT,
                "%s: optimizer parameter %zu: the weights come from .safetensors, which do not "
                "keep "
                "the model's parameter order, and its shape is %s: cannot tell which weight it "
                "belongs to (use pytorch_model.bin or the roteq recorder's named state)",
                s->opt_file, i, hits == 0 ? "in no weight" : "not unique");
    }
    return ROTEQ_OK;
}

/* The state entry of parameter `id` in optimizer.state_dict()["state"]. */
static const roteq_pk *state_of(const roteq_pk *state, int64_t id)
{
    for (size_t i = 0; state && i < state->u.dict.n; i++)
        if (state->u.dict.keys[i]->kind == ROTEQ_PK_INT && state->u.dict.keys[i]->u.i == id)
            return state->u.dict.vals[i];
    return NULL;
}

/* Parameters of a torch optimizer state dict, mapped onto s->w. */
static int torch_params(source *s, param **out, size_t *nout, hparams **hp, size_t *ngroups,
                        const char **mapping)
{
    const roteq_pk *groups = roteq_pk_get(s->opt, "param_groups");
    const roteq_pk *state = roteq_pk_get(s->opt, "state");
    if (groups == NULL || groups->kind != ROTEQ_PK_LIST || state->kind != ROTEQ_PK_DICT)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: optimizer state_dict without a list "
                               "param_groups and a dict state",
                               s->opt_file);
    size_t n = 0, ng = groups->u.seq.n;
    for (size_t g = 0; g < ng; g++) {
        const roteq_pk *ids = roteq_pk_get(groups->u.seq.items[g], "params");
        if (ids == NULL || ids->kind != ROTEQ_PK_LIST)
            return roteq_error_set(ROTEQ_EFORMAT, "%s: param group %zu has no list 'params'",
                                   s->opt_file, g);
        n += ids->u.seq.n;
    }
    param *p = calloc(n + 1, sizeof *p);
    pshape *ps = calloc(n + 1, sizeof *ps);
    size_t *grp = calloc(n + 1, sizeof *grp), *map = calloc(n + 1, sizeof *map);
    hparams *h = calloc(ng + 1, sizeof *h);
    int st = p && ps && grp && map && h ? ROTEQ_OK : oom(), named = ng > 0;
    size_t k = 0;
    for (size_t g = 0; !st && g < ng; g++) {
        const roteq_pk *G = groups->u.seq.items[g], *ids = roteq_pk_get(G, "params");
        const roteq_pk *names = roteq_pk_get(G, "param_names");
        named &= names && names->kind == ROTEQ_PK_LIST && names->u.seq.n == ids->u.seq.n;
        torch_hparams(s->opt_arch, G, &h[g]);
        for (size_t i = 0; i < ids->u.seq.n && !st; i++, k++) {
            const roteq_pk *id = ids->u.seq.items[i];
            if (id->kind != ROTEQ_PK_INT) {
                st = roteq_error_set(ROTEQ_EFORMAT,
                                     "%s: param group %zu: a parameter id is not "
                                     "an integer",
                                     s->opt_file, g);
                break;
            }
            const roteq_pk *e = state_of(state, id->u.i);
            grp[k] = p[k].group = g;
            ps[k].rank = SIZE_MAX;
            p[k].has_step = pk_scalar(s->opt_arch, roteq_pk_get(e, "step"), &p[k].step);
            for (int j = 0; j < NSTATE; j++) {
                const roteq_pk *t = roteq_pk_get(e, state_keys[j]);
                if (t == NULL || t->kind != ROTEQ_PK_TENSOR)
                    continue;
                p[k].st[j].arch = s->opt_arch;
                p[k].st[j].pk = t;
                p[k].st[j].name = (char *)state_keys[j];
                pk_info(t, &p[k].st[j].info);
                ps[k].rank = t->u.tensor->rank;
                memcpy(ps[k].shape, t->u.tensor->shape, sizeof ps[k].shape);
            }
        }
    }
    if (!st && named) {
        *mapping = "names";
        k = 0;
        for (size_t g = 0; g < ng && !st; g++) {
            const roteq_pk *names = roteq_pk_get(groups->u.seq.items[g], "param_names");
            for (size_t i = 0; i < names->u.seq.n && !st; i++, k++) {
                const roteq_pk *nm = names->u.seq.items[i];
                map[k] = SIZE_MAX;
                for (size_t j = 0; nm->kind == ROTEQ_PK_STR && j < s->w.n; j++)
                    if (strcmp(s->w.t[j].name, nm->u.str.s) == 0)
                        map[k] = j;
                if (map[k] == SIZE_MAX)
                    st = roteq_error_set(ROTEQ_EFORMAT,
                                         "%s: optimizer parameter '%s' is not "
                                         "among the weights",
                                         s->opt_file, nm->kind == ROTEQ_PK_STR ? nm->u.str.s : "?");
            }
        }
    } else if (!st) {
        *mapping = "order";
        st = s->ordered ? map_by_order(s, grp, n, ng, ps, map) : map_by_shape(s, n, ps, map);
    }
    for (size_t i = 0; !st && i < n; i++)
        p[i].weight = map[i] == SIZE_MAX ? NULL : &s->w.t[map[i]];
    free(ps);
    free(grp);
    free(map);
    if (st) {
        free(p);
        free(h);
        return st;
    }
    *out = p;
    *nout = n;
    *hp = h;
    *ngroups = ng;
    return ROTEQ_OK;
}

/* Parameters of the recorder's named state: groups and steps from the metadata, tensors
 * optimizer/<param>/<key>. */
static int recorder_params(source *s, param **out, size_t *nout, hparams **hp, size_t *ngroups)
{
    json_t *groups = json_object_get(s->rec, "groups"), *params = json_object_get(s->rec, "params");
    if (!json_is_array(groups) || !json_is_object(params))
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: metadata roteq.optimizer needs 'groups' (a "
                               "list) and 'params' (an object)",
                               s->opt_file);
    size_t ng = json_array_size(groups), n = json_object_size(params), k = 0;
    param *p = calloc(n + 1, sizeof *p);
    hparams *h = calloc(ng + 1, sizeof *h);
    int st = p && h ? ROTEQ_OK : oom();
    for (size_t g = 0; !st && g < ng; g++)
        json_hparams(json_array_get(groups, g), &h[g]);
    const char *name;
    json_t *v;
    json_object_foreach(params, name, v)
    {
        if (st)
            break;
        json_t *g = json_object_get(v, "group"), *step = json_object_get(v, "step");
        if (!json_is_integer(g) || json_integer_value(g) < 0 ||
            (size_t)json_integer_value(g) >= ng) {
            st = roteq_error_set(ROTEQ_EFORMAT,
                                 "%s: roteq.optimizer: parameter '%s' has no valid "
                                 "group",
                                 s->opt_file, name);
            break;
        }
        param *q = &p[k++];
        q->group = (size_t)json_integer_value(g);
        if (json_is_number(step)) {
            q->has_step = 1;
            q->step = json_number_value(step);
        }
        for (size_t i = 0; i < s->w.n; i++)
            if (strcmp(s->w.t[i].name, name) == 0)
                q->weight = &s->w.t[i];
        size_t len = strlen(name);
        for (size_t i = 0; i < s->ot.n; i++) {
            const char *tn = s->ot.t[i].name + 10; /* after "optimizer/" */
            for (int j = 0; j < NSTATE; j++)
                if (strncmp(tn, name, len) == 0 && tn[len] == '/' &&
                    strcmp(tn + len + 1, state_keys[j]) == 0)
                    q->st[j] = s->ot.t[i];
        }
        if (q->weight == NULL)
            st = roteq_error_set(ROTEQ_EFORMAT,
                                 "%s: roteq.optimizer: parameter '%s' is not "
                                 "among the weights",
                                 s->opt_file, name);
    }
    if (st) {
        free(p);
        free(h);
        return st;
    }
    *out = p;
    *nout = k;
    *hp = h;
    *ngroups = ng;
    return ROTEQ_OK;
}

/* ---- the result */

void roteq_analysis_optstate_free(roteq_analysis_optstate *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nlayers; i++) {
        roteq_analysis_optstate_layer *L = &s->layers[i];
        free(L->name);
        free(L->weight);
        free(L->exp_avg);
        free(L->exp_avg_sq);
        free(L->momentum_buffer);
        free(L->max_exp_avg_sq);
    }
    free(s->layers);
    free(s->source);
    free(s->optimizer);
    free(s);
}

static int cmp_layer_name(const void *key, const void *x)
{
    return strcmp((const char *)key, ((const roteq_analysis_optstate_layer *)x)->name);
}

/* The layers are sorted by name (build): every snapshot looks each of its layers up here. */
const roteq_analysis_optstate_layer *roteq_analysis_optstate_find(const roteq_analysis_optstate *s,
                                                                  const char *name)
{
    if (s == NULL || s->nlayers == 0)
        return NULL;
    return bsearch(name, s->layers, s->nlayers, sizeof *s->layers, cmp_layer_name);
}

/* rows x cols float64 image of t (same shape as the weight), or NULL with *st set on error. */
static double *image(wtensor *t, const char *pname, const roteq_analysis_optstate_layer *L,
                     const char *file, int *st)
{
    if ((*st = wdata(t)))
        return NULL;
    if (t->info.dtype == ROTEQ_DT_OTHER || t->info.rank != L->rank ||
        memcmp(t->info.shape, L->shape, L->rank * sizeof *L->shape) != 0) {
        *st = roteq_error_set(ROTEQ_EFORMAT,
                              "%s: optimizer state '%s' of '%s' is not a float "
                              "tensor of the weight's shape",
                              file, t->name, pname);
        return NULL;
    }
    double *d = malloc(L->rows * L->cols * sizeof *d + 1);
    if (d == NULL) {
        *st = oom();
        return NULL;
    }
    roteq_analysis_tensor_rows(&t->info, t->data, L->neuron_axis, d);
    return d;
}

static int make_layer(param *p, const hparams *h, const roteq_analysis_optstate_options *o,
                      const char *file, roteq_analysis_optstate_layer *L)
{
    wtensor *w = p->weight;
    L->name = strdup(w->name);
    if (L->name == NULL)
        return oom();
    L->group = p->group;
    L->known = h->known | (p->has_step ? ROTEQ_OPTSTATE_STEP : 0);
    L->step = p->has_step ? (long)p->step : 0;
    L->lr = h->lr;
    L->beta1 = h->beta1;
    L->beta2 = h->beta2;
    L->eps = h->eps;
    L->weight_decay = h->wd;
    L->momentum = h->momentum;
    L->dampening = h->dampening;
    L->nesterov = h->nesterov;
    L->rank = w->info.rank;
    memcpy(L->shape, w->info.shape, sizeof L->shape);
    int st =
        roteq_analysis_axis_for(w->name, L->rank, o ? o->axes : NULL, o ? o->naxes : 0,
                                o ? o->meta : NULL, o ? o->conventions : 0, &L->neuron_axis, NULL);
    if (st)
        return st;
    uint64_t numel = 1;
    for (size_t i = 0; i < L->rank; i++)
        numel *= L->shape[i];
    L->rows = (size_t)L->shape[L->neuron_axis];
    L->cols = (size_t)(numel / L->rows);
    L->weight = image(w, w->name, L, file, &st);
    double **dst[NSTATE] = {&L->exp_avg, &L->exp_avg_sq, &L->momentum_buffer, &L->max_exp_avg_sq};
    for (int j = 0; j < NSTATE && !st; j++)
        if (present(&p->st[j]))
            *dst[j] = image(&p->st[j], w->name, L, file, &st);
    return st;
}

static int cmp_layer(const void *x, const void *y)
{
    return strcmp(((const roteq_analysis_optstate_layer *)x)->name,
                  ((const roteq_analysis_optstate_layer *)y)->name);
}

static int build(source *s, param *p, size_t n, const hparams *h,
                 const roteq_analysis_optstate_options *o, roteq_analysis_optstate *r)
{
    regex_t re;
    int have_re = 0, st = ROTEQ_OK;
    if (o && o->layers_regex) {
        if (regcomp(&re, o->layers_regex, REG_EXTENDED | REG_NOSUB) != 0)
            return roteq_error_set(ROTEQ_EINVAL, "--layers: invalid regular expression '%s'",
                                   o->layers_regex);
        have_re = 1;
    }
    r->layers = calloc(n + 1, sizeof *r->layers);
    if (r->layers == NULL)
        st = oom();
    for (size_t i = 0; i < n && !st; i++) {
        const wtensor *w = p[i].weight;
        int any = present(&p[i].st[0]) || present(&p[i].st[1]) || present(&p[i].st[2]);
        if (w == NULL || !any || w->info.rank < 2 || w->info.dtype == ROTEQ_DT_OTHER ||
            w->info.nbytes == 0 || (have_re && regexec(&re, w->name, 0, NULL, 0) != 0))
            continue;
        for (size_t j = 0; j < r->nlayers && !st; j++)
            if (strcmp(r->layers[j].name, w->name) == 0)
                st = roteq_error_set(ROTEQ_EFORMAT, "%s: two optimizer parameters map onto '%s'",
                                     s->opt_file, w->name);
        if (!st)
            st = make_layer(&p[i], &h[p[i].group], o, s->opt_file, &r->layers[r->nlayers++]);
    }
    if (have_re)
        regfree(&re);
    if (!st)
        qsort(r->layers, r->nlayers, sizeof *r->layers, cmp_layer);
    return st;
}

int roteq_analysis_optstate_read(const char *path, const roteq_analysis_optstate_options *opt,
                                 roteq_analysis_optstate **out)
{
    *out = NULL;
    source s = {.path = path, .ordered = 1};
    struct stat sb;
    int st = stat(path, &sb) != 0 ? roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno))
                                  : ROTEQ_OK;
    const char *key = opt ? opt->model_key : NULL;
    if (!st && S_ISDIR(sb.st_mode))
        st = load_folder(&s, path, key);
    else if (!st && has_suffix(path, ".safetensors")) {
        st = safetensors_has_state(path) ? load_safetensors(&s, path) : ROTEQ_OK;
        s.ordered = 0;
    } else if (!st)
        st = load_torch(&s, path, key, 1);
    if (!st && s.opt == NULL && s.rec == NULL)
        st = roteq_error_set(ROTEQ_ENOTFOUND,
                             "%s: no optimizer state (no 'optimizer' entry, no "
                             "optimizer.pt, no roteq.optimizer metadata)",
                             path);
    param *p = NULL;
    hparams *h = NULL;
    size_t n = 0, ng = 0;
    roteq_analysis_optstate *r = st ? NULL : calloc(1, sizeof *r);
    if (!st && r == NULL)
        st = oom();
    if (!st && s.rec) {
        r->mapping = "names";
        st = recorder_params(&s, &p, &n, &h, &ng);
        const char *cls = json_string_value(json_object_get(s.rec, "class"));
        if (!st && cls && (r->optimizer = strdup(cls)) == NULL)
            st = oom();
    } else if (!st)
        st = torch_params(&s, &p, &n, &h, &ng, &r->mapping);
    if (!st && (r->source = strdup(s.opt_file)) == NULL)
        st = oom();
    if (!st)
        st = build(&s, p, n, h, opt, r);
    free(p);
    free(h);
    source_clear(&s);
    if (st) {
        roteq_analysis_optstate_free(r);
        return st;
    }
    *out = r;
    return ROTEQ_OK;
}
