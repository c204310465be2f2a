/* csv.c - the CSV reader the figures share. Every roteq CSV (docs/FORMATS.md) is read by column
 * name so that writers may add or reorder columns; '#' lines before the header are kept because
 * they name the command, seed and hyperparameters, which the figure's data file repeats.
 * Fields are not quoted in roteq's formats (layer names hold no commas), so a row is split on
 * commas and must have exactly as many fields as the header. */
#include "plots_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void roteq_plots_csv_free(roteq_plots_csv *t)
{
    if (t == NULL)
        return;
    free(t->path);
    free(t->label);
    free(t->comments);
    free(t->names);
    free(t->cells);
    free(t->lineno);
    free(t->buffer);
    free(t);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        roteq_error_set(ROTEQ_EIO, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (buf == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory reading '%s'", path);
        return NULL;
    }
    if (err) {
        free(buf);
        roteq_error_set(ROTEQ_EIO, "cannot read '%s'", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Split `line` in place on commas into at most `max` fields; returns the field count, or 0 for
 * an unterminated quote. A field may be quoted as in RFC 4180 ("a,b" and "say ""x""") - the
 * sweep rows quote their free-text `reason` - and is unquoted in place. */
static size_t split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *field = p;
        if (*p == '"') {
            char *w = p;
            p++;
            for (;;) {
                if (*p == '\0')
                    return 0;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            if (*p != ',' && *p != '\0')
                return 0;
            char sep = *p;
            *w = '\0';
            if (n < max)
                fields[n] = field;
            n++;
            if (sep == '\0')
                break;
            p++;
            continue;
        }
        char *comma = strchr(p, ',');
        if (n < max)
            fields[n] = field;
        n++;
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

int roteq_plots_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

int roteq_plots_csv_read(const char *path, roteq_plots_csv **out)
{
    *out = NULL;
    roteq_plots_csv *t = calloc(1, sizeof *t);
    size_t len = 0;
    if (t == NULL || (t->path = strdup(path)) == NULL) {
        roteq_plots_csv_free(t);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory reading '%s'", path);
    }
    t->buffer = slurp(path, &len);
    if (t->buffer == NULL) {
        int status = roteq_error_status();
        roteq_plots_csv_free(t);
        return status;
    }
    size_t ccap = 0, cellcap = 0, rowcap = 0, lineno = 0;
    int status = ROTEQ_OK;
    char *next = t->buffer;
    while (next != NULL && *next != '\0') {
        char *line = next;
        lineno++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t l = strlen(line);
        if (l > 0 && line[l - 1] == '\r')
            line[--l] = '\0';
        if (t->names == NULL && line[0] == '#') {
            char *c = line + 1;
            while (*c == ' ')
                c++;
            if (roteq_plots_grow((void **)&t->comments, &ccap, t->ncomments + 1,
                                 sizeof *t->comments))
                goto nomem;
            t->comments[t->ncomments++] = c;
            continue;
        }
        if (l == 0)
            continue; /* blank lines carry no data */
        if (t->names == NULL) {
            if (line[0] == '{' || line[0] == '[') {
                status = roteq_error_set(ROTEQ_EFORMAT,
                                         "%s:%zu: this is JSON; roteq plot reads the CSV form "
                                         "(write it with --format csv)",
                                         path, lineno);
                goto fail;
            }
            char *copy = strdup(line);
            t->ncols = copy ? split(copy, NULL, 0) : 0;
            free(copy);
            if (t->ncols == 0) {
                status = roteq_error_set(ROTEQ_EFORMAT, "%s:%zu: unterminated quote in the header",
                                         path, lineno);
                goto fail;
            }
            t->names = calloc(t->ncols, sizeof *t->names);
            if (t->names == NULL)
                goto nomem;
            split(line, t->names, t->ncols);
            for (size_t c = 0; c < t->ncols; c++)
                if (t->names[c][0] == '\0') {
                    status = roteq_error_set(
                        ROTEQ_EFORMAT, "%s:%zu: empty column name in the header", path, lineno);
                    goto fail;
                }
            continue;
        }
        if (line[0] == '#')
            continue; /* a comment after the header: allowed, ignored */
        if (roteq_plots_grow((void **)&t->cells, &cellcap, (t->nrows + 1) * t->ncols,
                             sizeof *t->cells) ||
            roteq_plots_grow((void **)&t->lineno, &rowcap, t->nrows + 1, sizeof *t->lineno))
            goto nomem;
        size_t got = split(line, t->cells + t->nrows * t->ncols, t->ncols);
        if (got == 0) {
            status = roteq_error_set(ROTEQ_EFORMAT, "%s:%zu: unterminated quote", path, lineno);
            goto fail;
        }
        if (got != t->ncols) {
            status = roteq_error_set(ROTEQ_EFORMAT, "%s:%zu: %zu fields, the header has %zu", path,
                                     lineno, got, t->ncols);
            goto fail;
        }
        t->lineno[t->nrows++] = lineno;
    }
    if (t->names == NULL) {
        status = roteq_error_set(ROTEQ_EFORMAT, "%s: no header line (empty file?)", path);
        goto fail;
    }
    *out = t;
    return ROTEQ_OK;
nomem:
    status = roteq_error_set(ROTEQ_ENOMEM, "out of memory reading '%s'", path);
fail:
    roteq_plots_csv_free(t);
    return status;
}

long roteq_plots_csv_col(const roteq_plots_csv *t, const char *name)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (strcmp(t->names[c], name) == 0)
            return (long)c;
    return -1;
}

int roteq_plots_csv_need(const roteq_plots_csv *t, const char *const *names, long *col)
{
    for (size_t i = 0; names[i] != NULL; i++)
        if ((*col = roteq_plots_csv_col(t, names[i])) >= 0)
            return ROTEQ_OK;
    char want[256] = "", have[512] = "";
    size_t w = 0, h = 0;
    for (size_t i = 0; names[i] != NULL && w < sizeof want; i++)
        w += (size_t)snprintf(want + w, sizeof want - w, "%s'%s'", i ? " or " : "", names[i]);
    for (size_t c = 0; c < t->ncols && h < sizeof have; c++)
        h += (size_t)snprintf(have + h, sizeof have - h, "%s%s", c ? "," : "", t->names[c]);
    return roteq_error_set(ROTEQ_ENOTFOUND, "%s: no column %s (columns: %s)", t->path, want, have);
}

const char *roteq_plots_csv_str(const roteq_plots_csv *t, size_t row, long col)
{
    return col < 0 ? "" : t->cells[row * t->ncols + (size_t)col];
}

int roteq_plots_csv_num(const roteq_plots_csv *t, size_t row, long col, double *out)
{
    const char *s = roteq_plots_csv_str(t, row, col);
    if (s[0] == '\0' || strcasecmp(s, "nan") == 0 || strcasecmp(s, "-nan") == 0) {
        *out = (double)NAN;
        return ROTEQ_OK;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return roteq_error_set(ROTEQ_EFORMAT, "%s:%zu: column '%s': '%s' is not a number", t->path,
                               t->lineno[row], t->names[col], s);
    *out = v; /* inf is kept: the figures drop non-finite values where they must */
    return ROTEQ_OK;
}

int roteq_plots_csv_groups(const roteq_plots_csv *t, long col, const char ***groups,
                           size_t *ngroups)
{
    const char **g = NULL;
    size_t n = 0, cap = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        const char *s = roteq_plots_csv_str(t, r, col);
        size_t i = 0;
        while (i < n && strcmp(g[i], s) != 0)
            i++;
        if (i < n)
            continue;
        if (roteq_plots_grow((void **)&g, &cap, n + 1, sizeof *g)) {
            free(g);
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory reading '%s'", t->path);
        }
        g[n++] = s;
    }
    *groups = g;
    *ngroups = n;
    return ROTEQ_OK;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

const char *roteq_plots_input_path(const char *input)
{
    /* LABEL=PATH: the label may itself hold '=' ("lr=1e-3=run.csv"), so split at the first
     * '=' after which an existing file follows. */
    if (!exists(input))
        for (const char *eq = strchr(input + 1, '='); eq != NULL; eq = strchr(eq + 1, '='))
            if (exists(eq + 1))
                return eq + 1;
    return input;
}

int roteq_plots_read_inputs(const char *const *inputs, size_t n, roteq_plots_reader read,
                            roteq_plots_csv ***tables)
{
    roteq_plots_csv **t = calloc(n ? n : 1, sizeof *t);
    if (t == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *path = roteq_plots_input_path(inputs[i]);
        size_t llen = path == inputs[i] ? 0 : (size_t)(path - inputs[i]) - 1;
        int status = read(path, &t[i]);
        if (status == ROTEQ_OK && llen > 0 && (t[i]->label = strndup(inputs[i], llen)) == NULL)
            status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        if (status != ROTEQ_OK) {
            roteq_plots_free_inputs(t, n);
            return status;
        }
    }
    *tables = t;
    return ROTEQ_OK;
}

void roteq_plots_free_inputs(roteq_plots_csv **tables, size_t n)
{
    if (tables == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        roteq_plots_csv_free(tables[i]);
    free(tables);
}

void roteq_plots_basename(const char *path, char *buf, size_t len)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (n >= len)
        n = len - 1;
    memcpy(buf, b, n);
    buf[n] = '\0';
}

int roteq_plots_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double roteq_plots_quantile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return (double)NAN;
    double h = p * (double)(n - 1);
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}
