/* csv.c - the streaming reader of the long trace CSV (docs/FORMATS.md §1).
 *
 * Written for throughput: a 2 GB trace is tens of millions of rows, so each field is parsed in
 * place by hand (no strtok, no sscanf, no per-field strtod) and rows go straight into the
 * accumulator. The reader is fed memory chunks of any size and keeps only a partial last line
 * between calls, so the file reader, stdin and the libFuzzer target share every line of it.
 * Numbers: decimal mantissas of up to 19 digits are converted exactly in 64-bit integers and
 * scaled once in long double, which is correctly rounded in practice and at most one ulp off
 * (a statistic of millions of values does not notice); anything unusual falls back to strtod. */
#include "roteq_analysis.h"
#include "roteq_util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    COL_IGNORE,
    COL_STEP,
    COL_LAYER,
    COL_NEURON,
    COL_NORM,
    COL_ANGLE,
    COL_LR,
    COL_WD,
    COL_GRAD_COS, /* optional update statistics (empty: not available) */
    COL_UPDATE_NORM,
    COL_UPDATE_RADIAL,
    COL_UPDATE_COS_PREV,
    COL_N
};
static const char *const col_names[COL_N] = {
    "",   "step",         "layer",    "neuron",      "norm",          "angle",
    "lr", "weight_decay", "grad_cos", "update_norm", "update_radial", "update_cos_prev"};

#define ROTEQ_PI          3.14159265358979323846
#define ROTEQ_ANGLE_SLACK (4 * 2.384185791015625e-7) /* 4 float32 ulps at pi (2^-22 each) */

#define MAX_COLUMNS 64
#define MAX_LINE    ((size_t)1 << 20)

struct roteq_analysis_csv_reader {
    char *name;
    roteq_analysis *sink;
    size_t line; /* lines consumed */
    int header_done;
    int ncols;
    unsigned char role[MAX_COLUMNS];
    char *tail;
    size_t tail_len, tail_cap;
    size_t rows; /* data rows parsed */
    int sniffed; /* the first bytes were checked for a compressed file */
    char *field; /* a quoted field with "" pairs, unescaped */
    size_t field_cap;
};

roteq_analysis_csv_reader *roteq_analysis_csv_reader_alloc(const char *name, roteq_analysis *sink)
{
    roteq_analysis_csv_reader *r = calloc(1, sizeof *r);
    if (r == NULL || (r->name = strdup(name)) == NULL) {
        free(r);
        roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        return NULL;
    }
    r->sink = sink;
    return r;
}

void roteq_analysis_csv_reader_free(roteq_analysis_csv_reader *r)
{
    if (r == NULL)
        return;
    free(r->name);
    free(r->tail);
    free(r->field);
    free(r);
}

static int fail(const roteq_analysis_csv_reader *r, int status, const char *fmt, ...)
    ROTEQ_PRINTF(3, 4);
static int fail(const roteq_analysis_csv_reader *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return roteq_error_set(status, "%s:%zu: %s", r->name, r->line + 1, msg);
}

/* Prefix a message the accumulator set with file and line. */
static int relocate(const roteq_analysis_csv_reader *r, int status)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", roteq_error_message());
    return fail(r, status, "%s", msg);
}

static int is_end(char c)
{
    return c == '\n' || c == '\r';
}

/* Quote a field for a message, cut at the delimiter and shortened. */
static const char *field_text(const char *p, char buf[48])
{
    size_t n = 0;
    while (n < 40 && p[n] != ',' && !is_end(p[n]))
        n++;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (n == 40 && p[n] != ',' && !is_end(p[n]))
        strcpy(buf + 37, "...");
    return buf;
}

static const long double pow10_ld[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,
                                       1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
                                       1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
                                       1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};

/* Parse a number field starting at p, ending at ',' or end of line. Returns the position after
 * the field, or NULL if the field is not a number. An empty field and nan/NaN give DNAN with
 * *empty set for the former. */
static const char *parse_double(const char *p, double *out, int *empty)
{
    const char *s = p;
    *empty = 0;
    if (*p == ',' || is_end(*p)) {
        *empty = 1;
        *out = DNAN;
        return p;
    }
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    uint64_t mant = 0;
    int digits = 0, exp10 = 0, any = 0;
    while ((unsigned)(*p - '0') < 10) {
        if (digits < 19) {
            mant = mant * 10 + (uint64_t)(*p - '0');
            if (mant)
                digits++;
        } else {
            exp10++;
        }
        any = 1;
        p++;
    }
    if (*p == '.') {
        p++;
        while ((unsigned)(*p - '0') < 10) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                exp10--;
                if (mant)
                    digits++;
            }
            any = 1;
            p++;
        }
    }
    if (!any) {
        /* nan / inf spelled out (Python, numpy and C all write one of these). */
        static const char *const words[] = {"nan", "NaN", "DNAN",     "inf",
                                            "Inf", "INF", "infinity", "Infinity"};
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
            size_t n = strlen(words[i]);
            if (strncmp(p, words[i], n) == 0 && (p[n] == ',' || is_end(p[n]))) {
                *out = i < 3 ? DNAN : neg ? -((double)INFINITY) : ((double)INFINITY);
                return p + n;
            }
        }
        return NULL;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        int eneg = 0, e = 0, edig = 0;
        if (*p == '-' || *p == '+')
            eneg = *p++ == '-';
        while ((unsigned)(*p - '0') < 10) {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            edig = 1;
            p++;
        }
        if (!edig)
            return NULL;
        exp10 += eneg ? -e : e;
    }
    if (*p != ',' && !is_end(*p))
        return NULL;
    double v;
    if (mant == 0) {
        v = 0.0;
    } else if (mant < ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        /* Clinger's fast path: both operands exact, one rounding. */
        static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        v = exp10 >= 0 ? (double)mant * p10[exp10] : (double)mant / p10[-exp10];
    } else if (exp10 >= -27 && exp10 <= 27) {
        long double m = (long double)mant;
        v = (double)(exp10 >= 0 ? m * pow10_ld[exp10] : m / pow10_ld[-exp10]);
    } else {
        /* The syntax is checked above and the line ends in '\n', so strtod stops at the field's
         * end whatever its length (a 75-digit number is as valid as a short one). */
        char *end;
        v = strtod(s, &end);
        if (end != p)
            return NULL;
        *out = v;
        return p;
    }
    *out = neg ? -v : v;
    return p;
}

/* Non-negative integer field. */
static const char *parse_index(const char *p, long *out)
{
    long v = 0;
    const char *s = p;
    while ((unsigned)(*p - '0') < 10) {
        if (p - s >= 18)
            return NULL;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (p == s)
        return NULL;
    if (*p == '.') { /* "12.0": integers that went through a float column (pandas) */
        p++;
        while (*p == '0')
            p++;
    }
    if (*p != ',' && !is_end(*p))
        return NULL;
    *out = v;
    return p;
}

static int parse_header(roteq_analysis_csv_reader *r, const char *p, const char *end)
{
    int seen[COL_N] = {0};
    r->ncols = 0;
    while (p <= end) {
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *a = p, *b = q;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
            b--;
        if (b - a >= 2 && *a == '"' && b[-1] == '"')
            a++, b--;
        if (r->ncols == MAX_COLUMNS)
            return fail(r, ROTEQ_EFORMAT, "more than %d columns in the header", MAX_COLUMNS);
        int role = COL_IGNORE;
        for (int c = 1; c < COL_N; c++)
            if ((size_t)(b - a) == strlen(col_names[c]) &&
                memcmp(a, col_names[c], (size_t)(b - a)) == 0)
                role = c;
        if (role != COL_IGNORE && seen[role]++)
            return fail(r, ROTEQ_EFORMAT, "column '%s' appears twice in the header",
                        col_names[role]);
        r->role[r->ncols++] = (unsigned char)role;
        p = q + 1;
    }
    for (int c = COL_STEP; c <= COL_ANGLE; c++)
        if (!seen[c])
            return fail(r, ROTEQ_EFORMAT,
                        "missing column '%s' (a trace needs step,layer,neuron,norm,angle)",
                        col_names[c]);
    r->header_done = 1;
    if (r->sink)
        roteq_analysis_set_columns(r->sink, seen[COL_LR], seen[COL_WD]);
    return ROTEQ_OK;
}

static int bad_number(const roteq_analysis_csv_reader *r, int col, const char *p)
{
    char buf[48];
    return fail(r, ROTEQ_EFORMAT, "column '%s': '%s' is not a %s", col_names[r->role[col]],
                field_text(p, buf),
                r->role[col] == COL_STEP || r->role[col] == COL_NEURON ? "non-negative integer"
                                                                       : "number");
}

/* An optional update statistic (empty or nan: not available). Cosines lie in [-1, 1] (a few
 * float32 ulps beyond are clamped), update_norm is >= 0. */
static int update_column(const roteq_analysis_csv_reader *r, int role, double x, int empty,
                         roteq_analysis_row *row)
{
    if (empty || isnan(x))
        return ROTEQ_OK;
    int cosine = role == COL_GRAD_COS || role == COL_UPDATE_COS_PREV;
    if (!isfinite(x) || (cosine && fabs(x) > 1 + 1e-6) || (role == COL_UPDATE_NORM && x < 0))
        return fail(r, ROTEQ_EFORMAT, "column '%s': %.17g is %s", col_names[role], x,
                    cosine                    ? "outside [-1, 1]"
                    : role == COL_UPDATE_NORM ? "not a finite non-negative number"
                                              : "not finite");
    if (cosine)
        x = fmax(-1.0, fmin(1.0, x));
    switch (role) {
    case COL_GRAD_COS:
        row->grad_cos = x, row->has |= ROTEQ_ROW_GRAD_COS;
        break;
    case COL_UPDATE_NORM:
        row->update_norm = x, row->has |= ROTEQ_ROW_UPDATE_NORM;
        break;
    case COL_UPDATE_RADIAL:
        row->update_radial = x, row->has |= ROTEQ_ROW_UPDATE_RADIAL;
        break;
    default:
        row->update_cos_prev = x, row->has |= ROTEQ_ROW_UPDATE_COS_PREV;
        break;
    }
    return ROTEQ_OK;
}

/* A field that opens with '"' (RFC 4180): up to the closing quote, "" standing for one quote,
 * so a layer name may hold commas. *s, *n: the contents, in the line or (when unescaped) in
 * r->field. Returns the position after the field, or NULL with the message set. */
static const char *quoted_field(roteq_analysis_csv_reader *r, int col, const char *p,
                                const char **s, size_t *n)
{
    const char *q = p + 1;
    size_t pairs = 0;
    for (;; q++) {
        if (*q == '\n') {
            fail(r, ROTEQ_EFORMAT,
                 "column '%s': quoted field without its closing quote on this line (line "
                 "breaks inside fields are not supported)",
                 col_names[r->role[col]]);
            return NULL;
        }
        if (*q == '"') {
            if (q[1] != '"')
                break;
            q++, pairs++;
        }
    }
    const char *end = q + 1;
    if (*end != ',' && !is_end(*end)) {
        fail(r, ROTEQ_EFORMAT, "column '%s': text after the closing quote",
             col_names[r->role[col]]);
        return NULL;
    }
    *s = p + 1;
    *n = (size_t)(q - (p + 1));
    if (pairs == 0)
        return end;
    if (r->field_cap < *n) {
        char *b = realloc(r->field, *n);
        if (b == NULL) {
            roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            return NULL;
        }
        r->field = b;
        r->field_cap = *n;
    }
    size_t k = 0;
    for (const char *c = p + 1; c < q; c++) {
        r->field[k++] = *c;
        if (*c == '"')
            c++; /* the second quote of a pair */
    }
    *s = r->field;
    *n = k;
    return end;
}

/* One data line starting at p; the caller guarantees a '\n' terminates it. */
static int parse_row(roteq_analysis_csv_reader *r, const char *p)
{
    roteq_analysis_row row = {
        .norm = DNAN, .angle = DNAN, .lr = DNAN, .weight_decay = DNAN, .gap = 1};
    const char *layer = NULL;
    size_t layer_len = 0;
    long v;
    int empty;
    for (int c = 0; c < r->ncols; c++) {
        const char *f = p;
        switch (r->role[c]) {
        case COL_STEP:
        case COL_NEURON:
            p = parse_index(f, &v);
            if (p == NULL)
                return bad_number(r, c, f);
            if (r->role[c] == COL_STEP)
                row.step = v;
            else
                row.neuron = (size_t)v;
            break;
        case COL_LAYER:
            if (*f == '"') {
                p = quoted_field(r, c, f, &layer, &layer_len);
                if (p == NULL)
                    return roteq_error_status();
                break;
            }
            while (*p != ',' && !is_end(*p))
                p++;
            layer = f;
            layer_len = (size_t)(p - f);
            break;
        case COL_NORM:
        case COL_ANGLE:
        case COL_LR:
        case COL_WD:
        case COL_GRAD_COS:
        case COL_UPDATE_NORM:
        case COL_UPDATE_RADIAL:
        case COL_UPDATE_COS_PREV: {
            double x;
            p = parse_double(f, &x, &empty);
            if (p == NULL)
                return bad_number(r, c, f);
            const char *what = col_names[r->role[c]];
            if (r->role[c] == COL_NORM) {
                if (empty)
                    return fail(r, ROTEQ_EFORMAT, "column 'norm' is empty");
                if (!isfinite(x))
                    return fail(r, ROTEQ_EFORMAT, "column 'norm': %g is not finite", x);
                if (x < 0)
                    return fail(r, ROTEQ_EFORMAT, "column 'norm': %.17g is negative", x);
                row.norm = x;
            } else if (r->role[c] == COL_ANGLE) {
                /* A trace written in float32 rounds pi up to 3.1415927 (float32(pi) exceeds pi by
                 * 8.7e-8): values within a few float32 ulps of the bounds are clamped to them. */
                if (isinf(x) || x < -ROTEQ_ANGLE_SLACK || x > ROTEQ_PI + ROTEQ_ANGLE_SLACK)
                    return fail(r, ROTEQ_EFORMAT, "column 'angle': %.17g is outside [0, pi]", x);
                row.angle = x < 0 ? 0.0 : x > ROTEQ_PI ? ROTEQ_PI : x;
            } else if (r->role[c] >= COL_GRAD_COS) {
                int st = update_column(r, r->role[c], x, empty, &row);
                if (st)
                    return st;
            } else {
                if (isinf(x) || x < 0)
                    return fail(r, ROTEQ_EFORMAT,
                                "column '%s': %.17g is not a finite "
                                "non-negative number",
                                what, x);
                if (r->role[c] == COL_LR)
                    row.lr = x;
                else
                    row.weight_decay = x;
            }
            break;
        }
        default: {
            const char *ignored;
            size_t ignored_len;
            if (*f == '"' && (p = quoted_field(r, c, f, &ignored, &ignored_len)) == NULL)
                return roteq_error_status();
            while (*p != ',' && !is_end(*p))
                p++;
            break;
        }
        }
        if (c + 1 < r->ncols) {
            if (*p != ',')
                return fail(r, ROTEQ_EFORMAT, "expected %d fields, found %d", r->ncols, c + 1);
            p++;
        }
    }
    if (*p == '\r')
        p++;
    if (*p != '\n')
        return fail(r, ROTEQ_EFORMAT, "more than %d fields", r->ncols);
    r->rows++;
    if (r->sink == NULL)
        return ROTEQ_OK;
    size_t li;
    int st = roteq_analysis_layer(r->sink, layer, layer_len, 0, &li);
    if (!st)
        st = roteq_analysis_add(r->sink, li, &row);
    return st ? relocate(r, st) : ROTEQ_OK;
}

/* Parse the complete lines in [p, end); end[-1] is '\n'. */
static int parse_lines(roteq_analysis_csv_reader *r, const char *p, const char *end)
{
    while (p < end) {
        if (*p == '\n' || (*p == '\r' && p[1] == '\n')) { /* blank line */
            p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
            r->line++;
            continue;
        }
        if (!r->header_done) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (r->line == 0 && nl - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
                p += 3; /* a UTF-8 byte-order mark (spreadsheet exports) */
            if (*p != '#') {
                int st = parse_header(r, p, nl);
                if (st)
                    return st;
            }
            p = nl + 1;
            r->line++;
            continue;
        }
        int st = parse_row(r, p);
        if (st)
            return st;
        p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
        r->line++;
    }
    return ROTEQ_OK;
}

static int append_tail(roteq_analysis_csv_reader *r, const char *buf, size_t n)
{
    if (r->tail_len + n + 1 > MAX_LINE)
        return fail(r, ROTEQ_EFORMAT, "line longer than %zu bytes", MAX_LINE);
    if (r->tail_len + n + 1 > r->tail_cap) {
        size_t cap = (r->tail_len + n + 1) * 2;
        char *t = realloc(r->tail, cap);
        if (t == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        r->tail = t;
        r->tail_cap = cap;
    }
    memcpy(r->tail + r->tail_len, buf, n);
    r->tail_len += n;
    return ROTEQ_OK;
}

/* memrchr is a GNU extension. */
static const char *last_newline(const char *buf, size_t n)
{
    while (n > 0)
        if (buf[--n] == '\n')
            return buf + n;
    return NULL;
}

/* A compressed file read as text fails on its first line with a puzzling message: name it. */
static int sniff(const roteq_analysis_csv_reader *r, const unsigned char *b, size_t n)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *what, *tool;
    } kinds[] = {{"\x1f\x8b", 2, "gzip", "gunzip"},
                 {"\x28\xb5\x2f\xfd", 4, "zstd", "unzstd"},
                 {"BZh", 3, "bzip2", "bunzip2"},
                 {"\xfd"
                  "7zXZ\x00",
                  6, "xz", "unxz"},
                 {"PK\x03\x04", 4, "zip", "unzip"}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (n >= kinds[i].len && memcmp(b, kinds[i].magic, kinds[i].len) == 0)
            return roteq_error_set(ROTEQ_EFORMAT,
                                   "%s: %s-compressed; decompress it first (%s), or pipe it: "
                                   "%s -c FILE | roteq analyze -",
                                   r->name, kinds[i].what, kinds[i].tool, kinds[i].tool);
    return ROTEQ_OK;
}

int roteq_analysis_csv_reader_feed(roteq_analysis_csv_reader *r, const char *buf, size_t n)
{
    if (n == 0)
        return ROTEQ_OK;
    if (!r->sniffed) {
        r->sniffed = 1;
        int st = sniff(r, (const unsigned char *)buf, n);
        if (st)
            return st;
    }
    if (r->tail_len) {
        const char *nl = memchr(buf, '\n', n);
        size_t take = nl ? (size_t)(nl - buf) + 1 : n;
        int st = append_tail(r, buf, take);
        if (st || nl == NULL)
            return st;
        st = parse_lines(r, r->tail, r->tail + r->tail_len);
        r->tail_len = 0;
        if (st)
            return st;
        buf += take;
        n -= take;
    }
    const char *last = last_newline(buf, n);
    if (last == NULL)
        return append_tail(r, buf, n);
    int st = parse_lines(r, buf, last + 1);
    if (st)
        return st;
    return append_tail(r, last + 1, n - (size_t)(last + 1 - buf));
}

int roteq_analysis_csv_reader_finish(roteq_analysis_csv_reader *r)
{
    if (r->tail_len) {
        int st = append_tail(r, "\n", 1);
        if (st)
            return st;
        st = parse_lines(r, r->tail, r->tail + r->tail_len);
        r->tail_len = 0;
        if (st)
            return st;
    }
    if (!r->header_done)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: no header line (need step,layer,neuron,norm,"
                               "angle)",
                               r->name);
    if (r->rows == 0)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: no data rows after the header", r->name);
    return ROTEQ_OK;
}

int roteq_analysis_read_csv(const char *path, const roteq_analysis_config *cfg,
                            roteq_analysis **out)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY);
    if (fd < 0)
        return roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    roteq_analysis *a = roteq_analysis_alloc(cfg);
    if (a == NULL) { /* the message is set */
        if (fd != 0)
            close(fd);
        return roteq_error_status();
    }
    roteq_analysis_csv_reader *r = roteq_analysis_csv_reader_alloc(path, a);
    size_t cap = (size_t)1 << 20;
    char *buf = malloc(cap);
    int st = r && buf ? ROTEQ_OK : roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    while (!st) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            st = roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        st = roteq_analysis_csv_reader_feed(r, buf, (size_t)n);
    }
    if (!st)
        st = roteq_analysis_csv_reader_finish(r);
    free(buf);
    roteq_analysis_csv_reader_free(r);
    if (fd != 0)
        close(fd);
    if (st) {
        roteq_analysis_free(a);
        return st;
    }
    *out = a;
    return ROTEQ_OK;
}
