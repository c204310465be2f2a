/* grid.c - GRID files: JSON with fixed parameters, axes (their product) and explicit points,
 * nested in groups, expanded into a flat list of points each holding a full simulator config.
 *
 * Two kinds of trouble are kept apart on purpose. A malformed grid (bad JSON, an unknown key, a
 * string where a number belongs, an empty axis) stops everything with one message naming the
 * key, because nothing sensible can run. A point whose values are out of range (beta1 = 1.5, an
 * unknown optimizer, a hyperparameter that does not apply) is still a point: it carries its
 * reason, is reported as an ERROR row, and the other points run. */
#include "roteq_sweep.h"
#include "roteq_util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define WHERE_MAX 512

/* ---- keys ------------------------------------------------------------------------------ */

typedef enum { KT_STRING, KT_NUMBER, KT_FLAG, KT_COUNT } key_type;

typedef enum {
    K_OPTIMIZER,
    K_NEURONS,
    K_DIM,
    K_STEPS,
    K_GRADIENT,
    K_GRAD_NORM,
    K_GRAD_SPREAD,
    K_DEAD_FRACTION,
    K_RADIAL,
    K_INIT_NORM,
    K_LR_SCHEDULE,
    K_WD_SCHEDULE,
    /* a matrix optimizer's (families/README.md, "A matrix-granularity family") */
    K_SHAPE,
    K_MATRICES,
    K_NS_STEPS,
    K_ADJUST_LR,
    K_NS_PRECISION,
    K_NONHP_COUNT
} point_key;

static const struct {
    const char *key;
    key_type type;
} point_keys[K_NONHP_COUNT] = {
    [K_OPTIMIZER] = {"optimizer", KT_STRING},
    [K_NEURONS] = {"neurons", KT_COUNT},
    [K_DIM] = {"dim", KT_COUNT},
    [K_STEPS] = {"steps", KT_COUNT},
    [K_GRADIENT] = {"gradient", KT_STRING},
    [K_GRAD_NORM] = {"grad_norm", KT_NUMBER},
    [K_GRAD_SPREAD] = {"grad_spread", KT_NUMBER},
    [K_DEAD_FRACTION] = {"dead_fraction", KT_NUMBER},
    [K_RADIAL] = {"radial", KT_NUMBER},
    [K_INIT_NORM] = {"init_norm", KT_NUMBER},
    [K_LR_SCHEDULE] = {"schedule", KT_STRING},
    [K_WD_SCHEDULE] = {"wd_schedule", KT_STRING},
    [K_SHAPE] = {"shape", KT_STRING},
    [K_MATRICES] = {"matrices", KT_COUNT},
    [K_NS_STEPS] = {"ns_steps", KT_COUNT},
    [K_ADJUST_LR] = {"adjust_lr", KT_STRING},
    [K_NS_PRECISION] = {"ns_precision", KT_STRING},
};

/* Check one key = value pair of the grid; `where` names it ("axes.lr[2]"). */
static int check_value(const char *name, const char *where, const char *key, const json_t *v)
{
    key_type type = KT_COUNT;
    int found = 0;
    for (int i = 0; i < K_NONHP_COUNT; i++)
        if (strcmp(point_keys[i].key, key) == 0) {
            type = point_keys[i].type;
            found = 1;
        }
    if (!found) {
        const roteq_hparam_desc *d = roteq_hparam_lookup(key);
        if (d == NULL || strcmp(d->key, key) != 0) {
            if (strcmp(key, "seed") == 0)
                return roteq_error_set(ROTEQ_EFORMAT,
                                       "%s: %s: the seed is set once, at the top of the grid", name,
                                       where);
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: unknown key '%s'", name, where, key);
        }
        type = d->kind == ROTEQ_HPKIND_FLAG ? KT_FLAG : KT_NUMBER;
    }
    switch (type) {
    case KT_STRING:
        if (!json_is_string(v))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected a string", name, where);
        break;
    case KT_NUMBER:
        if (!json_is_number(v))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected a number", name, where);
        break;
    case KT_FLAG:
        if (!json_is_boolean(v) && !json_is_integer(v))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected true or false", name, where);
        break;
    case KT_COUNT:
        if (!json_is_integer(v) &&
            !(json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected an integer", name, where);
        break;
    }
    return ROTEQ_OK;
}

/* ---- building one point from its merged key/value object --------------------------------- */

static double num(const json_t *v)
{
    if (json_is_boolean(v))
        return json_is_true(v) ? 1.0 : 0.0;
    return json_number_value(v);
}

uint64_t roteq_sweep_point_seed(uint64_t grid_seed, size_t index)
{
    /* splitmix64 (Steele, Lea, Flood 2014): a bijective mixer, so distinct indices give
     * distinct seeds for one grid seed, and nearby grid seeds give unrelated streams. */
    uint64_t z = grid_seed;
    for (int round = 0; round < 2; round++) {
        z += 0x9e3779b97f4a7c15u;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        if (round == 0)
            z ^= (uint64_t)index;
    }
    return z;
}

static void point_fail(roteq_sweep_point *p, const char *fmt, ...) ROTEQ_PRINTF(2, 3);
static void point_fail(roteq_sweep_point *p, const char *fmt, ...)
{
    if (p->error[0])
        return; /* the first problem is the reason; the other fields are still filled in */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
}

/* The schedules' keys into `lr`/`wd` and their text into the point. */
static void point_schedules(roteq_sweep_point *p, const json_t *kv, roteq_schedule *lr,
                            roteq_schedule *wd)
{
    struct {
        int key;
        roteq_schedule *s;
        char *text;
    } sch[] = {{K_LR_SCHEDULE, lr, p->lr_schedule}, {K_WD_SCHEDULE, wd, p->wd_schedule}};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(kv, point_keys[sch[i].key].key);
        if (v == NULL)
            continue;
        if (roteq_schedule_parse(json_string_value(v), sch[i].s)) {
            point_fail(p, "%s: %s", point_keys[sch[i].key].key, roteq_error_message());
            snprintf(sch[i].text, ROTEQ_SWEEP_SCHEDULE_MAX, "%s", json_string_value(v));
            continue;
        }
        roteq_schedule_format(sch[i].s, sch[i].text, ROTEQ_SWEEP_SCHEDULE_MAX);
    }
}

/* A count key in 1..max into *out (left alone when absent); 0 if bad (the point fails). */
static int point_count(roteq_sweep_point *p, const json_t *kv, int key, double max, size_t *out)
{
    const json_t *v = json_object_get(kv, point_keys[key].key);
    if (v == NULL)
        return 1;
    double x = num(v);
    if (!(x >= 1.0 && x <= max)) {
        point_fail(p, "%s: must be an integer in 1..%.17g, got %.17g", point_keys[key].key, max, x);
        return 0;
    }
    *out = (size_t)x;
    return 1;
}

/* A matrix optimizer's point: the hyperparameters it has, the shape ("ROWSxCOLS"), the ensemble
 * (matrices, steps), ns_steps, adjust_lr, ns_precision, init_norm and the schedules; the
 * per-neuron engine's keys do not apply. */
static void build_matrix_point(roteq_sweep_point *p, const roteq_optimizer_type *opt,
                               const roteq_sim_matrix *sm, const json_t *kv)
{
    roteq_sim_muon_config *m = &p->mcfg;
    p->matrix = 1;
    sm->config_init(m);
    static const int per_neuron[] = {K_NEURONS,     K_DIM,    K_GRADIENT,     K_GRAD_NORM,
                                     K_GRAD_SPREAD, K_RADIAL, K_DEAD_FRACTION};
    for (size_t i = 0; i < sizeof per_neuron / sizeof per_neuron[0]; i++)
        if (json_object_get(kv, point_keys[per_neuron[i]].key))
            point_fail(p, "%s: does not apply to %s", point_keys[per_neuron[i]].key, opt->name);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)kv, key, val)
    {
        const roteq_hparam_desc *d = roteq_hparam_lookup(key);
        if (d == NULL)
            continue;
        if (!(opt->hparams & ROTEQ_HP_BIT(d->id)))
            point_fail(p, "%s: does not apply to %s", key, opt->name);
        else if (d->id == ROTEQ_HP_NESTEROV)
            m->hp.nesterov = num(val) != 0.0;
        else
            *(d->id == ROTEQ_HP_LR             ? &m->hp.lr
              : d->id == ROTEQ_HP_WEIGHT_DECAY ? &m->hp.weight_decay
                                               : &m->hp.momentum) = num(val);
    }
    const json_t *v = json_object_get(kv, "shape");
    m->hp.rows = m->hp.cols = 0;
    if (v == NULL)
        point_fail(p, "shape: not given (ROWSxCOLS) for %s", opt->name);
    else if (roteq_muon_shape_parse(json_string_value(v), &m->hp.rows, &m->hp.cols))
        point_fail(p, "shape: %s", roteq_error_message());
    size_t ns = (size_t)m->hp.ns_steps;
    point_count(p, kv, K_MATRICES, 1e9, &m->matrices);
    point_count(p, kv, K_STEPS, 1e15, &m->steps);
    if (point_count(p, kv, K_NS_STEPS, 99, &ns))
        m->hp.ns_steps = (int)ns;
    if ((v = json_object_get(kv, "adjust_lr")) != NULL &&
        roteq_muon_adjust_parse(json_string_value(v), &m->hp.adjust))
        point_fail(p, "adjust_lr: %s", roteq_error_message());
    if ((v = json_object_get(kv, "ns_precision")) != NULL &&
        roteq_sim_ns_precision_parse(json_string_value(v), &m->ns_precision))
        point_fail(p, "ns_precision: %s", roteq_error_message());
    if ((v = json_object_get(kv, "init_norm")) != NULL)
        m->init_norm = num(v);
    point_schedules(p, kv, &m->lr_schedule, &m->wd_schedule);
    if (!p->error[0] && sm->config_validate(m))
        point_fail(p, "%s", roteq_error_message());
    roteq_sweep_matrix_describe(opt, m, p);
}

static void build_point(roteq_sweep_point *p, const json_t *kv)
{
    const json_t *v = json_object_get(kv, "optimizer");
    const roteq_optimizer_type *opt = NULL;
    snprintf(p->lr_schedule, sizeof p->lr_schedule, "constant");
    snprintf(p->wd_schedule, sizeof p->wd_schedule, "constant");
    if (v == NULL) {
        point_fail(p, "optimizer: not given");
        return;
    }
    snprintf(p->optimizer, sizeof p->optimizer, "%s", json_string_value(v));
    opt = roteq_optimizer_lookup(json_string_value(v));
    if (opt == NULL) {
        point_fail(p, "optimizer: %s", roteq_error_message());
        return;
    }
    /* As on the command line: nesterov = true on sgdm selects the nesterov optimizer. */
    const json_t *nest = json_object_get(kv, "nesterov");
    int variant = nest && opt->nesterov_variant;
    if (variant) {
        if (num(nest) == 1.0)
            opt = opt->nesterov_variant;
        else if (opt->nesterov_variant == opt)
            point_fail(p, "nesterov: must be true for optimizer %s", opt->name);
    }
    snprintf(p->optimizer, sizeof p->optimizer, "%s", opt->name);
    const roteq_sim_matrix *sm = roteq_sim_matrix_for(opt);
    if (sm) {
        build_matrix_point(p, opt, sm, kv);
        return;
    }
    for (int k = K_SHAPE; k < K_NONHP_COUNT; k++)
        if (json_object_get(kv, point_keys[k].key))
            point_fail(p, "%s: does not apply to %s", point_keys[k].key, opt->name);
    roteq_sim_config_init(&p->cfg, opt);
    p->cfg.seed = p->seed;
    p->cfg.threads = 0;

    const char *key;
    json_t *val;
    json_object_foreach((json_t *)kv, key, val)
    {
        const roteq_hparam_desc *d = roteq_hparam_lookup(key);
        if (d == NULL || (d->id == ROTEQ_HP_NESTEROV && variant))
            continue;
        if (!(opt->hparams & ROTEQ_HP_BIT(d->id))) {
            point_fail(p, "%s: does not apply to %s", key, opt->name);
            continue;
        }
        roteq_hparams_set(&p->cfg.hp, d->id, num(val));
    }
    roteq_hparam_id bad;
    if (roteq_hparams_validate(opt, &p->cfg.hp, &bad))
        point_fail(p, "%s: %s", roteq_hparam_descs[bad].key, roteq_error_message());
    /* Counts are checked for range here: a negative value must not wrap around in size_t. */
    size_t *counts[] = {
        [K_NEURONS] = &p->cfg.neurons, [K_DIM] = &p->cfg.dim, [K_STEPS] = &p->cfg.steps};
    for (int k = K_NEURONS; k <= K_STEPS; k++) {
        v = json_object_get(kv, point_keys[k].key);
        if (v == NULL)
            continue;
        double x = num(v);
        if (!(x >= 1.0 && x <= 1e15)) {
            point_fail(p, "%s: must be a positive integer, got %.17g", point_keys[k].key, x);
            continue;
        }
        *counts[k] = (size_t)x;
    }
    double *reals[] = {[K_GRAD_NORM] = &p->cfg.grad_norm,
                       [K_GRAD_SPREAD] = &p->cfg.grad_spread,
                       [K_DEAD_FRACTION] = &p->cfg.dead_fraction,
                       [K_RADIAL] = &p->cfg.radial,
                       [K_INIT_NORM] = &p->cfg.init_norm};
    for (int k = K_GRAD_NORM; k <= K_INIT_NORM; k++)
        if ((v = json_object_get(kv, point_keys[k].key)) != NULL)
            *reals[k] = num(v);
    if ((v = json_object_get(kv, "gradient")) != NULL &&
        roteq_grad_model_lookup(json_string_value(v), &p->cfg.grad_model))
        point_fail(p, "gradient: %s", roteq_error_message());
    point_schedules(p, kv, &p->cfg.lr_schedule, &p->cfg.wd_schedule);
    if (!p->error[0] && roteq_sim_config_validate(&p->cfg))
        point_fail(p, "%s", roteq_error_message());
}

/* Paths like "groups[1].axes.lr[2]" for messages; silently shortened if absurdly deep. */
static void where_fmt(char *buf, size_t n, const char *fmt, ...) ROTEQ_PRINTF(3, 4);
static void where_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* ---- checking the tree (once, whatever the number of points) -------------------------------- */

static int check_object(const char *name, const char *where, const json_t *obj)
{
    if (!json_is_object(obj))
        return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected an object", name, where);
    const char *key;
    json_t *val;
    char sub[WHERE_MAX];
    json_object_foreach((json_t *)obj, key, val)
    {
        where_fmt(sub, sizeof sub, "%s.%s", where, key);
        int st = check_value(name, sub, key, val);
        if (st)
            return st;
    }
    return ROTEQ_OK;
}

static int check_axes(const char *name, const char *sub, const json_t *val)
{
    if (!json_is_object(val))
        return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected an object of lists", name, sub);
    const char *ak;
    json_t *av;
    json_object_foreach((json_t *)val, ak, av)
    {
        char asub[WHERE_MAX];
        where_fmt(asub, sizeof asub, "%s.%s", sub, ak);
        if (!json_is_array(av) || json_array_size(av) == 0)
            return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected a non-empty list", name, asub);
        size_t i;
        json_t *x;
        json_array_foreach(av, i, x)
        {
            char isub[WHERE_MAX];
            where_fmt(isub, sizeof isub, "%s[%zu]", asub, i);
            int st = check_value(name, isub, ak, x);
            if (st)
                return st;
        }
    }
    return ROTEQ_OK;
}

/* Check a node's keys and values, then its groups; `where` is the node's path ("" at the top). */
static int check_node(const char *name, const json_t *node, const char *where, int top)
{
    char sub[WHERE_MAX], prefix[WHERE_MAX];
    where_fmt(prefix, sizeof prefix, "%s%s", where, *where ? "." : "");
    if (!json_is_object(node))
        return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected an object", name,
                               *where ? where : "top level");
    const char *key;
    json_t *val;
    int st = ROTEQ_OK;
    json_object_foreach((json_t *)node, key, val)
    {
        where_fmt(sub, sizeof sub, "%s%s", prefix, key);
        if (strcmp(key, "fixed") == 0) {
            st = check_object(name, sub, val);
        } else if (strcmp(key, "axes") == 0) {
            st = check_axes(name, sub, val);
        } else if (strcmp(key, "points") == 0 || strcmp(key, "groups") == 0) {
            if (!json_is_array(val) || json_array_size(val) == 0)
                return roteq_error_set(ROTEQ_EFORMAT,
                                       "%s: %s: expected a non-empty list of objects", name, sub);
            size_t i;
            json_t *x;
            json_array_foreach(val, i, x)
            {
                char isub[WHERE_MAX];
                where_fmt(isub, sizeof isub, "%s[%zu]", sub, i);
                if (key[0] == 'p')
                    st = check_object(name, isub, x);
                else {
                    where_fmt(isub, sizeof isub, "%sgroups[%zu]", prefix, i);
                    st = check_node(name, x, isub, 0);
                }
                if (st)
                    return st;
            }
        } else if (top && strcmp(key, "seed") == 0) {
            if (!json_is_integer(val) || json_integer_value(val) < 0)
                return roteq_error_set(ROTEQ_EFORMAT, "%s: seed: expected a non-negative integer",
                                       name);
        } else if (strcmp(key, "name") == 0 || strcmp(key, "description") == 0) {
            if (!json_is_string(val))
                return roteq_error_set(ROTEQ_EFORMAT, "%s: %s: expected a string", name, sub);
        } else {
            return roteq_error_set(ROTEQ_EFORMAT,
                                   "%s: %s: unknown key (known: seed, name, description, fixed, "
                                   "axes, points, groups)",
                                   name, sub);
        }
        if (st)
            return st;
    }
    return ROTEQ_OK;
}

/* ---- enumeration without expansion ----------------------------------------------------------
 * A node's points are, outermost first, its `points` entries, the product of its axes (file
 * order, last axis fastest) and its groups in turn: index = ((p A) + a) G + g for A axis
 * combinations and G points in the groups. So point i is found by mixed-radix decoding, in time
 * and memory proportional to the grid file, never to the number of points. */

#define COUNT_OVERFLOW SIZE_MAX

static size_t mul_count(size_t a, size_t b)
{
    return a == COUNT_OVERFLOW || b == COUNT_OVERFLOW || (b && a > (COUNT_OVERFLOW - 1) / b)
               ? COUNT_OVERFLOW
               : a * b;
}

static size_t axes_count(const json_t *node)
{
    size_t n = 1;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)json_object_get(node, "axes"), key, val)
    {
        n = mul_count(n, json_array_size(val));
    }
    return n;
}

static size_t node_count(const json_t *node)
{
    const json_t *points = json_object_get(node, "points"),
                 *groups = json_object_get(node, "groups");
    size_t g = groups ? 0 : 1, i;
    json_t *x;
    json_array_foreach(groups, i, x)
    {
        size_t c = node_count(x);
        g = c == COUNT_OVERFLOW || g > COUNT_OVERFLOW - 1 - c ? COUNT_OVERFLOW : g + c;
    }
    return mul_count(mul_count(points ? json_array_size(points) : 1, axes_count(node)), g);
}

/* The merged key/value object of point `index` of `node` over `base` (new reference). */
static json_t *decode(const json_t *node, const json_t *base, size_t index)
{
    json_t *kv = json_copy((json_t *)base);
    const json_t *fixed = json_object_get(node, "fixed"), *points = json_object_get(node, "points");
    const json_t *axes = json_object_get(node, "axes"), *groups = json_object_get(node, "groups");
    if (kv == NULL || (fixed && json_object_update(kv, (json_t *)fixed))) {
        json_decref(kv);
        return NULL;
    }
    size_t G =
        groups ? node_count(node) / (points ? json_array_size(points) : 1) / axes_count(node) : 1;
    size_t g = index % G, rest = index / G, A = axes_count(node);
    size_t a = rest % A, p = rest / A;
    if (points && json_object_update(kv, json_array_get(points, p))) {
        json_decref(kv);
        return NULL;
    }
    if (axes) {
        /* last axis fastest: peel the digits from the last axis backwards */
        size_t n = json_object_size(axes), k = n;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (keys == NULL) {
            json_decref(kv);
            return NULL;
        }
        const char *key;
        json_t *val;
        size_t j = 0;
        json_object_foreach((json_t *)axes, key, val)
        {
            keys[j++] = key;
        }
        while (k-- > 0) {
            const json_t *values = json_object_get(axes, keys[k]);
            size_t len = json_array_size(values);
            json_object_set(kv, keys[k], json_array_get(values, a % len));
            a /= len;
        }
        free(keys);
    }
    if (!groups)
        return kv;
    size_t i;
    json_t *x;
    json_array_foreach(groups, i, x)
    {
        size_t c = node_count(x);
        if (g < c) {
            json_t *out = decode(x, kv, g);
            json_decref(kv);
            return out;
        }
        g -= c;
    }
    json_decref(kv);
    return NULL;
}

/* ---- the grid ------------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

/* The order of every node's axes (it decides the order of the points; the canonical text below
 * sorts keys), depth first. */
static uint64_t hash_axes_order(uint64_t h, const json_t *node)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)json_object_get(node, "axes"), key, val)
    {
        h = fnv1a(h, key, strlen(key) + 1);
    }
    h = fnv1a(h, "|", 1);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(node, "groups"), i, x)
    {
        h = hash_axes_order(h, x);
    }
    return h;
}

void roteq_sweep_grid_free(roteq_sweep_grid *g)
{
    if (g == NULL)
        return;
    free(g->name);
    json_decref((json_t *)g->tree);
    free(g);
}

const roteq_sweep_point *roteq_sweep_grid_point(const roteq_sweep_grid *g, size_t index,
                                                roteq_sweep_point *p)
{
    memset(p, 0, sizeof *p);
    p->index = index;
    p->seed = roteq_sweep_point_seed(g->seed, index);
    json_t *empty = json_object();
    json_t *kv = empty && index < g->npoints ? decode((const json_t *)g->tree, empty, index) : NULL;
    json_decref(empty);
    if (kv == NULL) {
        point_fail(p, "cannot decode point %zu (out of memory or outside the grid)", index);
        return p;
    }
    build_point(p, kv);
    json_decref(kv);
    return p;
}

roteq_sweep_grid *roteq_sweep_grid_parse(const char *text, const char *name)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        roteq_error_set(ROTEQ_EFORMAT, "%s: line %d: %s", name, jerr.line, jerr.text);
        return NULL;
    }
    roteq_sweep_grid *g = NULL;
    size_t n = 0;
    if (check_node(name, root, "", 1))
        goto fail;
    n = node_count(root);
    if (n == COUNT_OVERFLOW) {
        roteq_error_set(ROTEQ_EFORMAT, "%s: the grid has more than 2^64 points", name);
        goto fail;
    }
    g = calloc(1, sizeof *g);
    char *canon = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (g == NULL || canon == NULL || (g->name = strdup(name)) == NULL) {
        free(canon);
        roteq_error_set(ROTEQ_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    const json_t *seed = json_object_get(root, "seed");
    g->seed = seed ? (uint64_t)json_integer_value(seed) : 1;
    g->npoints = n;
    /* The hash covers what decides every point's numbers: the grid as written (canonical: keys
     * sorted, reals round-tripped), the order of its axes, and the seed. */
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%llu;", (unsigned long long)g->seed);
    g->hash = fnv1a(0xcbf29ce484222325u, canon, strlen(canon) + 1);
    g->hash = hash_axes_order(g->hash, root);
    g->hash = fnv1a(g->hash, buf, (size_t)len);
    free(canon);
    g->tree = root;
    return g;
fail:
    roteq_sweep_grid_free(g);
    json_decref(root);
    return NULL;
}

roteq_sweep_grid *roteq_sweep_grid_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        roteq_error_set(ROTEQ_EIO, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (len + 4096 + 1) * 2;
            char *t = realloc(text, cap);
            if (t == NULL) {
                free(text);
                fclose(f);
                roteq_error_set(ROTEQ_ENOMEM, "%s: out of memory", path);
                return NULL;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(text);
        roteq_error_set(ROTEQ_EIO, "cannot read '%s'", path);
        return NULL;
    }
    text[len] = '\0';
    roteq_sweep_grid *g = roteq_sweep_grid_parse(text, path);
    free(text);
    return g;
}
