/* json.c - a JSON summary (one object, such as `roteq simulate --optimizer muon --format json`)
 * read as a table of one row, so that a figure kind fed by summaries finds its values by name
 * exactly as the CSV kinds do (roteq_plots_csv_col, roteq_plots_csv_num) and shares their
 * error messages. Nested objects become dotted names ("hparams.momentum"), array elements
 * indexed ones ("hparams.shape.0"); numbers are written back with %.17g, so nothing is lost,
 * true/false become 1/0 and null an empty (missing) value. */
#include "plots_internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *text; /* "name\0value\0name\0value\0..." */
    size_t len, cap;
    size_t n;
} flat;

static int flat_put(flat *f, const char *s)
{
    size_t l = strlen(s) + 1;
    if (roteq_plots_grow((void **)&f->text, &f->cap, f->len + l, 1))
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    memcpy(f->text + f->len, s, l);
    f->len += l;
    return ROTEQ_OK;
}

/* The shortest %g form that reads back as `x` (0.1, not 0.10000000000000001): the values are
 * shown in titles and commands, and no digit is lost. */
static void shortest(char *buf, size_t len, double x)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

/* Append `v` under `name`, objects and arrays recursively. */
static int flatten(flat *f, const char *name, const json_t *v)
{
    char buf[64], key[512];
    const char *value = buf;
    if (json_is_object(v) || json_is_array(v)) {
        size_t i = 0;
        const char *k;
        const json_t *item;
        int status = ROTEQ_OK;
        if (json_is_object(v)) {
            json_object_foreach((json_t *)v, k, item)
            {
                snprintf(key, sizeof key, "%s%s%s", name, name[0] ? "." : "", k);
                if ((status = flatten(f, key, item)))
                    return status;
            }
        } else {
            json_array_foreach(v, i, item)
            {
                snprintf(key, sizeof key, "%s%s%zu", name, name[0] ? "." : "", i);
                if ((status = flatten(f, key, item)))
                    return status;
            }
        }
        return status;
    }
    if (json_is_string(v))
        value = json_string_value(v);
    else if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        shortest(buf, sizeof buf, json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, sizeof buf, "%d", json_is_true(v) ? 1 : 0);
    else
        buf[0] = '\0'; /* null: missing */
    int status = flat_put(f, name);
    if (status == ROTEQ_OK)
        status = flat_put(f, value);
    f->n += status == ROTEQ_OK;
    return status;
}

/* The flattened pairs into `t`: names and the single row point into t->buffer. */
static int flat_table(flat *f, roteq_plots_csv *t)
{
    t->buffer = f->text;
    f->text = NULL;
    t->ncols = f->n;
    t->nrows = 1;
    t->names = calloc(f->n ? f->n : 1, sizeof *t->names);
    t->cells = calloc(f->n ? f->n : 1, sizeof *t->cells);
    t->lineno = calloc(1, sizeof *t->lineno);
    if (t->names == NULL || t->cells == NULL || t->lineno == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    t->lineno[0] = 1;
    char *p = t->buffer;
    for (size_t i = 0; i < f->n; i++) {
        t->names[i] = p;
        p += strlen(p) + 1;
        t->cells[i] = p;
        p += strlen(p) + 1;
    }
    return ROTEQ_OK;
}

int roteq_plots_json_read(const char *path, roteq_plots_csv **out)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return roteq_error_set(ROTEQ_EIO, "cannot read '%s': %s", path, strerror(errno));
    json_error_t err;
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &err);
    fclose(fp);
    if (root == NULL)
        return roteq_error_set(ROTEQ_EFORMAT, "%s:%d:%d: not a JSON summary: %s", path, err.line,
                               err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s:1: not a JSON summary: the top level is not "
                               "an object",
                               path);
    }
    roteq_plots_csv *t = calloc(1, sizeof *t);
    flat f = {0};
    int status = t ? flatten(&f, "", root) : roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    json_decref(root);
    if (status == ROTEQ_OK && (t->path = strdup(path)) == NULL)
        status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    if (status == ROTEQ_OK)
        status = flat_table(&f, t);
    free(f.text);
    if (status != ROTEQ_OK) {
        roteq_plots_csv_free(t);
        return status;
    }
    *out = t;
    return ROTEQ_OK;
}
