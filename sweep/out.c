/* out.c - the sweep's output file, which doubles as its checkpoint.
 *
 * While a sweep runs, FILE is a journal: each finished point is appended as one whole line with
 * a single write() on an O_APPEND descriptor, so a sweep killed at any moment keeps every row it
 * finished and never a torn one (at worst the very line being written when the process died,
 * which --resume drops). This is the one output of roteq that is deliberately visible while
 * incomplete: that is what makes a killed sweep resumable. When every point is done the file is
 * rewritten sorted by index through roteq_ofile (temporary file + rename), so the finished file
 * is the same whatever order points finished in, and however many processes ran them.
 *
 * Every row carries the grid's hash, so --resume refuses a FILE written for another grid. */
#include "roteq_sweep.h"
#include "roteq_util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct roteq_sweep_out {
    char *path; /* NULL: standard output */
    int fd;
    roteq_sweep_format fmt;
    const roteq_sweep_grid *g;
    char *preamble; /* CSV comment lines and header; empty for JSON lines */
    /* Row texts in the order written (owned), for the final rewrite sorted by index, where the
     * last row of a point wins: memory follows the rows present, not the grid's size. */
    struct out_row {
        size_t index, seq;
        char *text;
    } * rows;
    size_t nrows, cap;
    size_t resumed;
};

static void rows_clear(roteq_sweep_out *o)
{
    for (size_t i = 0; i < o->nrows; i++)
        free(o->rows[i].text);
    o->nrows = 0;
}

/* Keep `text` (taking ownership) as the latest row of point `index`. */
static int rows_add(roteq_sweep_out *o, size_t index, char *text)
{
    if (o->nrows == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 64;
        struct out_row *r = realloc(o->rows, cap * sizeof *r);
        if (r == NULL) {
            free(text);
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        }
        o->rows = r;
        o->cap = cap;
    }
    o->rows[o->nrows] = (struct out_row){index, o->nrows, text};
    o->nrows++;
    return ROTEQ_OK;
}

static int by_index_then_seq(const void *a, const void *b)
{
    const struct out_row *x = a, *y = b;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void out_free(roteq_sweep_out *o)
{
    if (o == NULL)
        return;
    if (o->fd >= 0)
        close(o->fd);
    rows_clear(o);
    free(o->rows);
    free(o->preamble);
    free(o->path);
    free(o);
}

void roteq_sweep_out_abandon(roteq_sweep_out *o)
{
    out_free(o);
}

size_t roteq_sweep_out_resumed(const roteq_sweep_out *o)
{
    return o->resumed;
}

static int write_all(int fd, const char *buf, size_t n, const char *path)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path,
                                   w < 0 ? strerror(errno) : "short write");
        buf += w;
        n -= (size_t)w;
    }
    return ROTEQ_OK;
}

static char *make_preamble(roteq_sweep_format fmt, const roteq_sweep_grid *g, const char *header)
{
    if (fmt == ROTEQ_SWEEP_JSON)
        return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fprintf(f, "# roteq sweep rows: grid %s, seed %llu, %zu points, grid hash %016llx\n", g->name,
            (unsigned long long)g->seed, g->npoints, (unsigned long long)g->hash);
    if (header)
        fprintf(f, "# %s\n", header);
    roteq_sweep_csv_header(f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Split a CSV line (no newline) into at most `max` fields in place; returns the count. The
 * fields read back here (index, status, grid) are never quoted, but quoted fields (reasons)
 * are skipped correctly. */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        if (n < max)
            fields[n] = p;
        n++;
        int quoted = 0;
        while (*p && (quoted || *p != ',')) {
            if (*p == '"')
                quoted = !quoted;
            p++;
        }
        if (*p == '\0')
            break;
        *p++ = '\0';
    }
    return n;
}

/* 1 when `line` (no newline) is the column header line of `preamble` (rows are resumed as
 * text, so their columns must be exactly ours). */
static int header_matches(const char *preamble, const char *line)
{
    const char *h = strstr(preamble, "index,");
    size_t n = strlen(line);
    return h && strncmp(h, line, n) == 0 && h[n] == '\n';
}

typedef struct {
    long index;
    char status[16];
    char grid[24];
} row_id;

static int known_status(const char *s)
{
    for (int v = 0; v < ROTEQ_SWEEP_VERDICT_COUNT; v++)
        if (strcmp(s, roteq_sweep_verdict_names[v]) == 0)
            return 1;
    return 0;
}

/* A resumed JSON row is kept as text, so it must be a whole row: exactly the keys a row of this
 * roteq has (`keys`, from a row formatted here), a known status. */
static int parse_json_row(const char *line, const json_t *keys, row_id *id)
{
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
    const json_t *ix = json_object_get(j, "index"), *st = json_object_get(j, "status"),
                 *gr = json_object_get(j, "grid");
    int ok = json_is_integer(ix) && json_is_string(st) && json_is_string(gr) &&
             known_status(json_string_value(st)) && json_object_size(j) == json_object_size(keys);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)keys, key, val)
    {
        if (ok && json_object_get(j, key) == NULL)
            ok = 0;
    }
    if (ok) {
        id->index = (long)json_integer_value(ix);
        snprintf(id->status, sizeof id->status, "%s", json_string_value(st));
        snprintf(id->grid, sizeof id->grid, "%s", json_string_value(gr));
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* The keys of a JSON row of this roteq: those of a row formatted for point 0. */
static json_t *json_row_keys(const roteq_sweep_out *o)
{
    roteq_sweep_record rec;
    memset(&rec, 0, sizeof rec);
    rec.verdict = ROTEQ_SWEEP_VERDICT_ERROR;
    roteq_sweep_point pt;
    char *text =
        roteq_sweep_format_row(ROTEQ_SWEEP_JSON, o->g, roteq_sweep_grid_point(o->g, 0, &pt), &rec);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j;
}

/* Read the rows of an existing FILE for --resume. */
static int load_existing(roteq_sweep_out *o, unsigned char *skip)
{
    FILE *f = fopen(o->path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            return 1; /* nothing to resume: start afresh */
        return roteq_error_set(ROTEQ_EIO, "cannot read '%s': %s", o->path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0, ncols = 0;
    ssize_t len;
    long lineno = 0, complete_bytes = 0;
    int col_index = -1, col_status = -1, col_grid = -1, have_header = 0, status = 0;
    json_t *keys = o->fmt == ROTEQ_SWEEP_JSON ? json_row_keys(o) : NULL;
    if (o->fmt == ROTEQ_SWEEP_JSON && keys == NULL) {
        fclose(f);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    char want[24];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)o->g->hash);
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] != '\n')
            break; /* torn last line of a killed sweep: dropped (and truncated below) */
        complete_bytes += len;
        line[len - 1] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        int is_json = line[0] == '{';
        if (is_json != (o->fmt == ROTEQ_SWEEP_JSON)) {
            status = roteq_error_set(
                ROTEQ_EFORMAT, "%s: line %ld: written as %s; resume with --format %s", o->path,
                lineno, is_json ? "JSON" : "CSV", is_json ? "json" : "csv");
            break;
        }
        row_id id = {.index = -1};
        if (is_json) {
            if (parse_json_row(line, keys, &id)) {
                status = roteq_error_set(ROTEQ_EFORMAT,
                                         "%s: line %ld: not a whole sweep row of this roteq (its "
                                         "keys or status differ); run without --resume",
                                         o->path, lineno);
                break;
            }
        } else {
            char *copy = strdup(line);
            char *fields[128];
            if (copy == NULL) {
                status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
                break;
            }
            if (!have_header && !header_matches(o->preamble, line)) {
                free(copy);
                status = roteq_error_set(ROTEQ_EFORMAT,
                                         "%s: line %ld: columns differ from this roteq's sweep "
                                         "rows (another version?); run without --resume",
                                         o->path, lineno);
                break;
            }
            size_t n = csv_split(copy, fields, 128);
            if (!have_header) {
                for (size_t i = 0; i < n && i < 128; i++) {
                    if (strcmp(fields[i], "index") == 0)
                        col_index = (int)i;
                    else if (strcmp(fields[i], "status") == 0)
                        col_status = (int)i;
                    else if (strcmp(fields[i], "grid") == 0)
                        col_grid = (int)i;
                }
                free(copy);
                have_header = 1;
                ncols = n;
                if (col_index < 0 || col_status < 0 || col_grid < 0) {
                    status = roteq_error_set(ROTEQ_EFORMAT,
                                             "%s: line %ld: not a sweep header (needs index, "
                                             "status and grid columns)",
                                             o->path, lineno);
                    break;
                }
                continue;
            }
            size_t idx;
            if (n == ncols && roteq_parse_size(fields[col_index], &idx) == 0 &&
                known_status(fields[col_status])) {
                id.index = (long)idx;
                snprintf(id.status, sizeof id.status, "%s", fields[col_status]);
                snprintf(id.grid, sizeof id.grid, "%s", fields[col_grid]);
            }
            free(copy);
            if (id.index < 0) {
                status = roteq_error_set(ROTEQ_EFORMAT, "%s: line %ld: not a sweep row", o->path,
                                         lineno);
                break;
            }
        }
        if (strcmp(id.grid, want) != 0) {
            status = roteq_error_set(ROTEQ_EFORMAT,
                                     "%s: line %ld: row of another grid (hash %s, this grid %s); "
                                     "run without --resume to start afresh",
                                     o->path, lineno, id.grid, want);
            break;
        }
        if ((size_t)id.index >= o->g->npoints) {
            status = roteq_error_set(ROTEQ_EFORMAT, "%s: line %ld: index %ld outside the grid",
                                     o->path, lineno, id.index);
            break;
        }
        line[len - 1] = '\n';
        char *text = strndup(line, (size_t)len);
        if (text == NULL) {
            status = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            break;
        }
        if (rows_add(o, (size_t)id.index, text)) {
            status = ROTEQ_ENOMEM;
            break;
        }
        /* ERROR rows are retried: the failure may have been transient (memory, a signal). */
        if (skip)
            skip[id.index] = strcmp(id.status, "ERROR") != 0;
        o->resumed++;
    }
    free(line);
    json_decref(keys);
    fclose(f);
    if (status)
        return status;
    if (!have_header && o->fmt == ROTEQ_SWEEP_CSV)
        return 1; /* no header yet: an empty or comment-only file, start afresh */
    if (truncate(o->path, complete_bytes) != 0)
        return roteq_error_set(ROTEQ_EIO, "cannot truncate '%s': %s", o->path, strerror(errno));
    return 0;
}

roteq_sweep_out *roteq_sweep_out_open(const char *path, roteq_sweep_format fmt,
                                      const roteq_sweep_grid *g, int resume, const char *header,
                                      unsigned char *skip)
{
    roteq_sweep_out *o = calloc(1, sizeof *o);
    if (o == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        return NULL;
    }
    o->fd = -1;
    o->fmt = fmt;
    o->g = g;
    o->preamble = make_preamble(fmt, g, header);
    if (o->preamble == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto fail;
    }
    if (skip)
        memset(skip, 0, g->npoints);
    if (strcmp(path, "-") == 0)
        return o; /* standard output: everything is printed, sorted, at close */
    if ((o->path = strdup(path)) == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto fail;
    }
    int fresh = 1;
    if (resume) {
        int st = load_existing(o, skip);
        if (st < 0)
            goto fail;
        fresh = st == 1;
    }
    if (fresh) {
        rows_clear(o);
        if (skip)
            memset(skip, 0, g->npoints);
        o->resumed = 0;
    }
    o->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
    if (o->fd < 0) {
        roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (fresh && write_all(o->fd, o->preamble, strlen(o->preamble), path))
        goto fail;
    return o;
fail:
    out_free(o);
    return NULL;
}

int roteq_sweep_out_write(roteq_sweep_out *o, const roteq_sweep_point *p,
                          const roteq_sweep_record *rec)
{
    char *row = roteq_sweep_format_row(o->fmt, o->g, p, rec);
    if (row == NULL)
        return ROTEQ_ENOMEM;
    if (o->fd >= 0) {
        int st = write_all(o->fd, row, strlen(row), o->path);
        if (st) {
            free(row);
            return st;
        }
    }
    return rows_add(o, p->index, row);
}

int roteq_sweep_out_close(roteq_sweep_out *o)
{
    if (o == NULL)
        return ROTEQ_OK;
    if (o->fd >= 0) {
        close(o->fd);
        o->fd = -1;
    }
    roteq_ofile *f = roteq_ofile_open(o->path ? o->path : "-");
    if (f == NULL) {
        out_free(o);
        return roteq_error_status();
    }
    FILE *s = roteq_ofile_stream(f);
    fputs(o->preamble, s);
    qsort(o->rows, o->nrows, sizeof *o->rows, by_index_then_seq);
    for (size_t i = 0; i < o->nrows; i++)
        if (i + 1 == o->nrows || o->rows[i + 1].index != o->rows[i].index)
            fputs(o->rows[i].text, s);
    int st = roteq_ofile_commit(f);
    out_free(o);
    return st;
}
