/* meta.c - the run metadata sidecar (JSON, parsed with jansson): the optimizer, its
 * hyperparameters, and per-layer dimension and overrides (param groups differ). The command line
 * is merged over this by the CLI. Keys that are not roteq's are ignored so that recorders may add
 * their own; a hyperparameter that does not apply to the optimizer is an error (a typo or a
 * wrong optimizer would silently change every prediction). */
#include "roteq_analysis.h"
#include "roteq_theory.h"
#include "roteq_util.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void roteq_analysis_meta_init(roteq_analysis_meta *m)
{
    memset(m, 0, sizeof *m);
    m->grad_norm = DNAN;
}

void roteq_analysis_meta_clear(roteq_analysis_meta *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nlayers; i++) {
        free(m->layers[i].name);
        for (size_t k = 0; k < m->layers[i].nsplit; k++)
            free(m->layers[i].split[k].name);
        free(m->layers[i].split);
    }
    free(m->layers);
    free(m->path);
    roteq_analysis_meta_init(m);
}

const roteq_analysis_layer_meta *roteq_analysis_meta_layer(const roteq_analysis_meta *m,
                                                           const char *name)
{
    for (size_t i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i].name, name) == 0)
            return &m->layers[i];
    return NULL;
}

/* A positive integer dimension. */
static int get_dim(const char *path, const char *where, json_t *v, size_t *out)
{
    if (v == NULL || json_is_null(v))
        return ROTEQ_OK;
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: %sdim must be a positive integer", path, where);
    *out = (size_t)json_integer_value(v);
    return ROTEQ_OK;
}

/* "neuron_axis": an integer (negative counts from the end; checked against the rank later);
 * "split": {"q": 768, "k": 768, "v": 768}, named sub-layers along the neuron axis, in order. */
static int get_axis(const char *path, const char *where, json_t *l, roteq_analysis_layer_meta *lm)
{
    json_t *v = json_object_get(l, "neuron_axis"), *sp = json_object_get(l, "split");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < -8 || json_integer_value(v) > 7)
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %sneuron_axis must be an integer in -8..7",
                                   path, where);
        lm->has_neuron_axis = 1;
        lm->neuron_axis = (int)json_integer_value(v);
    }
    if (sp == NULL || json_is_null(sp))
        return ROTEQ_OK;
    if (!json_is_object(sp) || json_object_size(sp) == 0)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: %ssplit must be an object of sub-layer sizes, e.g. "
                               "{\"q\": 768, \"k\": 768, \"v\": 768}",
                               path, where);
    lm->split = calloc(json_object_size(sp), sizeof *lm->split);
    if (lm->split == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    const char *key;
    json_t *n;
    json_object_foreach(sp, key, n)
    {
        if (!json_is_integer(n) || json_integer_value(n) <= 0)
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %ssplit.%s must be a positive integer", path,
                                   where, key);
        if ((lm->split[lm->nsplit].name = strdup(key)) == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        lm->split[lm->nsplit++].size = (size_t)json_integer_value(n);
    }
    return ROTEQ_OK;
}

static int get_number(const char *path, const char *where, const char *key, json_t *v, double *out)
{
    if (json_is_boolean(v) && strcmp(key, "nesterov") == 0) {
        *out = json_is_true(v) ? 1.0 : 0.0;
        return ROTEQ_OK;
    }
    if (!json_is_number(v))
        return roteq_error_set(ROTEQ_EFORMAT, "%s: %s%s must be a number", path, where, key);
    *out = json_number_value(v);
    return ROTEQ_OK;
}

/* Hyperparameters of one object (top level or a layer) into hp/given. */
static int get_hparams(const char *path, const char *where, const roteq_optimizer_type *opt,
                       json_t *obj, roteq_hparams *hp, unsigned *given, double *grad_norm)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (json_is_null(v))
            continue;
        if (strcmp(key, "grad_norm") == 0) {
            int st = get_number(path, where, key, v, grad_norm);
            if (st)
                return st;
            if (!(*grad_norm > 0) || !isfinite(*grad_norm)) /* as --grad-norm refuses it */
                return roteq_error_set(ROTEQ_EFORMAT, "%s: %sgrad_norm must be positive, got %g",
                                       path, where, *grad_norm);
            continue;
        }
        if (strcmp(key, "betas") == 0) { /* PyTorch spells them as a pair */
            if (!json_is_array(v) || json_array_size(v) != 2)
                return roteq_error_set(ROTEQ_EFORMAT, "%s: %sbetas must be a pair of numbers", path,
                                       where);
            for (size_t i = 0; i < 2; i++) {
                double b = 0;
                int st =
                    get_number(path, where, i ? "betas[1]" : "betas[0]", json_array_get(v, i), &b);
                if (st)
                    return st;
                roteq_hparam_id id = i ? ROTEQ_HP_BETA2 : ROTEQ_HP_BETA1;
                if (opt && !(opt->hparams & ROTEQ_HP_BIT(id)))
                    return roteq_error_set(ROTEQ_EINVAL, "%s: %sbetas do not apply to %s", path,
                                           where, opt->name);
                roteq_hparams_set(hp, id, b);
                *given |= ROTEQ_HP_BIT(id);
            }
            continue;
        }
        const roteq_hparam_desc *d = NULL;
        for (int i = 0; i < ROTEQ_HP_COUNT; i++)
            if (strcmp(roteq_hparam_descs[i].key, key) == 0)
                d = &roteq_hparam_descs[i];
        if (d == NULL)
            continue; /* not ours: recorders may add their own keys */
        double x = 0;
        int st = get_number(path, where, key, v, &x);
        if (st)
            return st;
        if (opt && !(opt->hparams & ROTEQ_HP_BIT(d->id)))
            return roteq_error_set(ROTEQ_EINVAL, "%s: %s%s does not apply to %s", path, where, key,
                                   opt->name);
        roteq_hparams_set(hp, d->id, x);
        *given |= ROTEQ_HP_BIT(d->id);
    }
    return ROTEQ_OK;
}

/* Muon's keys (lr, weight_decay, momentum, nesterov, ns_steps, adjust_lr, eps) of one object into
 * hp/given; another roteq hyperparameter (betas, dampening, ...) does not apply to `opt`. */
static int get_muon(const char *path, const char *where, const roteq_optimizer_type *opt,
                    json_t *obj, roteq_muon_hparams *hp, unsigned *given)
{
    static const struct {
        const char *key;
        unsigned bit;
    } keys[] = {{"lr", ROTEQ_MUON_GIVEN_LR},
                {"weight_decay", ROTEQ_MUON_GIVEN_WD},
                {"momentum", ROTEQ_MUON_GIVEN_MOMENTUM},
                {"nesterov", ROTEQ_MUON_GIVEN_NESTEROV},
                {"ns_steps", ROTEQ_MUON_GIVEN_NS_STEPS},
                {"adjust_lr", ROTEQ_MUON_GIVEN_ADJUST},
                {"eps", ROTEQ_MUON_GIVEN_EPS}};
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (json_is_null(v))
            continue;
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (strcmp(keys[i].key, key) == 0)
                bit = keys[i].bit;
        if (bit == 0) {
            int ours = strcmp(key, "betas") == 0;
            for (int i = 0; i < ROTEQ_HP_COUNT; i++)
                ours |= strcmp(roteq_hparam_descs[i].key, key) == 0;
            if (ours)
                return roteq_error_set(ROTEQ_EINVAL, "%s: %s%s does not apply to %s", path, where,
                                       key, opt->name);
            continue; /* not ours: recorders may add their own keys */
        }
        if (bit == ROTEQ_MUON_GIVEN_ADJUST) {
            if (!json_is_string(v) || roteq_muon_adjust_parse(json_string_value(v), &hp->adjust))
                return roteq_error_set(ROTEQ_EINVAL,
                                       "%s: %sadjust_lr must be \"original\" or "
                                       "\"match_rms_adamw\"",
                                       path, where);
            *given |= bit;
            continue;
        }
        double x = 0;
        int st = get_number(path, where, key, v, &x);
        if (st)
            return st;
        if (bit == ROTEQ_MUON_GIVEN_NS_STEPS) {
            if (!(x >= 1 && x <= 99 && x == floor(x)))
                return roteq_error_set(ROTEQ_EINVAL,
                                       "%s: %sns_steps must be an integer in 1..99, got %g", path,
                                       where, x);
            hp->ns_steps = (int)x;
        } else if (bit == ROTEQ_MUON_GIVEN_NESTEROV) {
            if (x != 0.0 && x != 1.0)
                return roteq_error_set(ROTEQ_EINVAL, "%s: %snesterov must be true or false", path,
                                       where);
            hp->nesterov = (int)x;
        } else {
            *(bit == ROTEQ_MUON_GIVEN_LR         ? &hp->lr
              : bit == ROTEQ_MUON_GIVEN_WD       ? &hp->weight_decay
              : bit == ROTEQ_MUON_GIVEN_MOMENTUM ? &hp->momentum
                                                 : &hp->eps) = x;
        }
        *given |= bit;
    }
    return ROTEQ_OK;
}

/* The matrix optimizer (a family with matrix hooks: Muon) that `o` names in the optimizer list;
 * NULL for anything else. Recognition by the table, so a new matrix family is recognised by
 * its family file and list line. */
static const roteq_optimizer_type *matrix_named(const json_t *o)
{
    const char *name = json_is_string(o) ? json_string_value(o) : NULL;
    for (int i = 0; name != NULL && i < ROTEQ_OPT_COUNT; i++)
        if (strcmp(roteq_optimizers[i]->name, name) == 0)
            return roteq_optimizers[i]->family->matrix ? roteq_optimizers[i] : NULL;
    return NULL;
}

/* A matrix run's layer (or a layer naming a matrix optimizer): "shape": [rows, cols], and its
 * own hyperparameters unless it names another optimizer (a fallback AdamW group), which leaves
 * it without a prediction. `run`: the run's matrix optimizer, NULL in another run. */
static int get_muon_layer(const char *path, const char *where, json_t *l,
                          const roteq_optimizer_type *run, roteq_analysis_layer_meta *lm)
{
    json_t *o = json_object_get(l, "optimizer"), *sh = json_object_get(l, "shape");
    lm->matrix_opt = run;
    if (o && !json_is_null(o)) {
        if (!json_is_string(o))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %soptimizer must be a string", path, where);
        if ((lm->matrix_opt = matrix_named(o)) == NULL) {
            lm->other_optimizer = 1;
            return ROTEQ_OK;
        }
    }
    lm->is_muon = 1;
    if (sh && !json_is_null(sh)) {
        json_t *r = json_array_get(sh, 0), *c = json_array_get(sh, 1);
        if (!json_is_array(sh) || json_array_size(sh) != 2 || !json_is_integer(r) ||
            !json_is_integer(c) || json_integer_value(r) <= 0 || json_integer_value(c) <= 0)
            return roteq_error_set(ROTEQ_EFORMAT,
                                   "%s: %sshape must be [rows, cols] of positive integers", path,
                                   where);
        lm->rows = (size_t)json_integer_value(r);
        lm->cols = (size_t)json_integer_value(c);
    }
    return get_muon(path, where, lm->matrix_opt, l, &lm->muon_hp, &lm->muon_given);
}

int roteq_analysis_meta_parse(const char *path, const char *text, size_t len,
                              roteq_analysis_meta *out)
{
    roteq_analysis_meta_init(out);
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        text += 3, len -= 3; /* a UTF-8 byte-order mark, as traces accept */
    json_error_t jerr;
    /* A key given twice would be taken once, silently: refuse it (jansson names the key). */
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return roteq_error_set(ROTEQ_EFORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    int st = ROTEQ_OK;
    out->path = strdup(path);
    if (out->path == NULL) {
        st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto done;
    }
    if (!json_is_object(root)) {
        st = roteq_error_set(ROTEQ_EFORMAT, "%s: the metadata must be a JSON object", path);
        goto done;
    }
    json_t *o = json_object_get(root, "optimizer");
    if (o && !json_is_null(o)) {
        if (!json_is_string(o)) {
            st = roteq_error_set(ROTEQ_EFORMAT, "%s: optimizer must be a string", path);
            goto done;
        }
        if ((out->matrix_opt = matrix_named(o)) != NULL) {
            out->muon = 1;
            out->muon_hp = out->matrix_opt->family->matrix->defaults();
            out->muon_hp.lr = out->muon_hp.weight_decay = DNAN; /* given, or trace columns */
        } else if ((out->opt = roteq_optimizer_lookup(json_string_value(o))) == NULL) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", roteq_error_message());
            st = roteq_error_set(ROTEQ_ENOTFOUND, "%s: %s", path, msg);
            goto done;
        }
    }
    st = get_dim(path, "", json_object_get(root, "dim"), &out->dim);
    if (!st && out->muon)
        st = get_muon(path, "", out->matrix_opt, root, &out->muon_hp, &out->muon_given);
    else if (!st)
        st = get_hparams(path, "", out->opt, root, &out->hp, &out->given, &out->grad_norm);
    if (st)
        goto done;
    json_t *layers = json_object_get(root, "layers");
    if (layers && !json_is_null(layers)) {
        if (!json_is_object(layers)) {
            st =
                roteq_error_set(ROTEQ_EFORMAT, "%s: layers must be an object of layer names", path);
            goto done;
        }
        out->layers = calloc(json_object_size(layers) + 1, sizeof *out->layers);
        if (out->layers == NULL) {
            st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            goto done;
        }
        const char *name;
        json_t *l;
        json_object_foreach(layers, name, l)
        {
            roteq_analysis_layer_meta *lm = &out->layers[out->nlayers];
            lm->grad_norm = DNAN;
            lm->name = strdup(name);
            if (lm->name == NULL) {
                st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
                goto done;
            }
            out->nlayers++;
            char where[300];
            snprintf(where, sizeof where, "layers.%s.", name);
            if (!json_is_object(l)) {
                st = roteq_error_set(ROTEQ_EFORMAT, "%s: layers.%s must be an object", path, name);
                goto done;
            }
            st = get_dim(path, where, json_object_get(l, "dim"), &lm->dim);
            if (!st)
                st = get_axis(path, where, l, lm);
            json_t *lo = json_object_get(l, "optimizer");
            if (!st && (out->muon || matrix_named(lo) != NULL))
                st = get_muon_layer(path, where, l, out->matrix_opt, lm); /* another run's too */
            else if (!st)
                st = get_hparams(path, where, out->opt, l, &lm->hp, &lm->given, &lm->grad_norm);
            if (st)
                goto done;
        }
    }
    /* PyTorch spells Nesterov as SGD(nesterov=True); roteq has it as its own optimizer. */
    if (out->opt && out->opt->nesterov_variant && out->opt->nesterov_variant != out->opt &&
        (out->given & ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV)) && out->hp.nesterov == 1.0) {
        out->opt = out->opt->nesterov_variant;
        out->given &= ~ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV);
        if ((out->given & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING)) && out->hp.dampening == 0.0)
            out->given &= ~ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING);
    }
done:
    json_decref(root);
    if (st)
        roteq_analysis_meta_clear(out);
    return st;
}

int roteq_analysis_meta_load(const char *path, roteq_analysis_meta *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return roteq_error_set(ROTEQ_EIO, "%s: cannot open", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int st = ROTEQ_OK;
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        if (cap >= ((size_t)64 << 20)) {
            st = roteq_error_set(ROTEQ_EFORMAT, "%s: larger than 64 MiB", path);
            break;
        }
        char *b = realloc(buf, cap * 2);
        if (b == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (buf == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    if (!st && err)
        st = roteq_error_set(ROTEQ_EIO, "%s: read error", path);
    if (!st)
        st = roteq_analysis_meta_parse(path, buf, n, out);
    free(buf);
    return st;
}
