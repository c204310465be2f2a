/* snapshots.c - a directory of weight snapshots turned into trace rows.
 *
 * Entries carry their step as the first integer in their name: `step_500.safetensors`,
 * HF Trainer's `checkpoint-500/` (one or more .safetensors shards inside), or a folder `500/`
 * holding one .npy per layer (file stem = layer name). Files are mmap'd and only two snapshots
 * are mapped at any time: each new one is compared with the previous, then the previous is
 * unmapped. Every float tensor of rank >= 2 whose name matches --layers is a layer; its rows are
 * the neurons. The first snapshot gives norms only; each later one gives norms and the angle to
 * the previous snapshot, which spans `gap` optimizer steps (theory's k-step angle). */
#include "roteq_analysis.h"
#include "roteq_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *name; /* entry name inside the directory */
    long step;
    int is_dir;
} entry;

typedef struct {
    void *base;
    size_t size;
} mapping;

typedef struct {
    roteq_analysis_tensor_info info;
    const unsigned char *data;
    const char *file; /* for messages (points into the snapshot's file list) */
} tensor;

typedef struct {
    mapping *maps;
    char **files;
    size_t nmaps;
    tensor *t;
    size_t nt;
} snapshot;

static void snapshot_clear(snapshot *s)
{
    for (size_t i = 0; i < s->nmaps; i++) {
        if (s->maps[i].base)
            munmap(s->maps[i].base, s->maps[i].size);
        free(s->files[i]);
    }
    for (size_t i = 0; i < s->nt; i++)
        free(s->t[i].info.name);
    free(s->maps);
    free(s->files);
    free(s->t);
    memset(s, 0, sizeof *s);
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

/* First run of digits in a name, or -1. */
static long step_of(const char *name)
{
    const char *p = name;
    while (*p && (*p < '0' || *p > '9'))
        p++;
    if (!*p)
        return -1;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (long)1e15)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int cmp_entry(const void *x, const void *y)
{
    const entry *a = x, *b = y;
    return (a->step > b->step) - (a->step < b->step);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* List the snapshot entries of `dir`, sorted by step. */
static int list_entries(const char *dir, entry **out, size_t *count)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return roteq_error_set(ROTEQ_EIO, "%s: %s", dir, strerror(errno));
    entry *e = NULL;
    size_t n = 0, cap = 0;
    int st = ROTEQ_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *path = join(dir, de->d_name);
        struct stat sb;
        if (path == NULL || stat(path, &sb) != 0) {
            free(path);
            continue;
        }
        free(path);
        int is_dir = S_ISDIR(sb.st_mode);
        if (!is_dir && !(S_ISREG(sb.st_mode) && has_suffix(de->d_name, ".safetensors")))
            continue; /* config.json, logs, ...: not snapshots */
        long step = step_of(de->d_name);
        if (step < 0) {
            if (is_dir)
                continue; /* runs/, logs/: folders without a step are not snapshots */
            st = roteq_error_set(ROTEQ_EFORMAT, "%s/%s: no step number in the name", dir,
                                 de->d_name);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            entry *ne = realloc(e, cap * sizeof *e);
            if (ne == NULL) {
                st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
                break;
            }
            e = ne;
        }
        e[n].name = strdup(de->d_name);
        e[n].step = step;
        e[n].is_dir = is_dir;
        if (e[n].name == NULL) {
            st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (!st && n == 0)
        st = roteq_error_set(ROTEQ_EFORMAT,
                             "%s: no snapshots (numbered .safetensors files or folders)", dir);
    if (!st) {
        qsort(e, n, sizeof *e, cmp_entry);
        for (size_t i = 1; i < n; i++)
            if (e[i].step == e[i - 1].step) {
                st = roteq_error_set(ROTEQ_EFORMAT, "%s: '%s' and '%s' both have step %ld", dir,
                                     e[i - 1].name, e[i].name, e[i].step);
                break;
            }
    }
    if (st) {
        for (size_t i = 0; i < n; i++)
            free(e[i].name);
        free(e);
        return st;
    }
    *out = e;
    *count = n;
    return ROTEQ_OK;
}

static int add_map(snapshot *s, const char *path, mapping *m)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
    }
    m->size = (size_t)sb.st_size;
    m->base = NULL;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return roteq_error_set(ROTEQ_EIO, "%s: mmap: %s", path, strerror(errno));
        }
        madvise(p, m->size, MADV_SEQUENTIAL);
        m->base = p;
    }
    close(fd);
    (void)s;
    return ROTEQ_OK;
}

/* Map one file and append its tensors. */
static int load_file(snapshot *s, const char *path, int npy)
{
    mapping *nm = realloc(s->maps, (s->nmaps + 1) * sizeof *nm);
    char **nf = nm ? realloc(s->files, (s->nmaps + 1) * sizeof *nf) : NULL;
    if (nm)
        s->maps = nm;
    if (nf)
        s->files = nf;
    if (nm == NULL || nf == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    mapping *m = &s->maps[s->nmaps];
    s->files[s->nmaps] = strdup(path);
    if (s->files[s->nmaps] == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    m->base = NULL;
    m->size = 0;
    s->nmaps++;
    int st = add_map(s, path, m);
    if (st)
        return st;
    const char *file = s->files[s->nmaps - 1];
    static const unsigned char empty[1];
    const unsigned char *data = m->base ? m->base : empty;
    roteq_analysis_tensor_info *infos = NULL;
    size_t n = 0;
    if (npy) {
        infos = calloc(1, sizeof *infos);
        if (infos == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        st = roteq_analysis_npy_parse(path, data, m->size, m->size, infos);
        if (st) {
            free(infos);
            return st;
        }
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        infos->name = strndup(base, strlen(base) - 4);
        n = 1;
        if (infos->name == NULL) {
            free(infos);
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        }
    } else {
        st = roteq_analysis_safetensors_parse(path, data, m->size, m->size, &infos, &n);
        if (st)
            return st;
    }
    tensor *nt = realloc(s->t, (s->nt + n + 1) * sizeof *nt);
    if (nt == NULL) {
        roteq_analysis_tensor_infos_free(infos, n);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    s->t = nt;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < s->nt; j++)
            if (strcmp(s->t[j].info.name, infos[i].name) == 0) {
                char msg[256];
                snprintf(msg, sizeof msg, "%s: tensor '%s' also in %s", path, infos[i].name,
                         s->t[j].file);
                for (size_t k = i; k < n; k++)
                    free(infos[k].name);
                free(infos);
                return roteq_error_set(ROTEQ_EFORMAT, "%s", msg);
            }
        s->t[s->nt++] = (tensor){infos[i], data + infos[i].offset, file};
    }
    free(infos);
    return ROTEQ_OK;
}

static int load_snapshot(const char *dir, const entry *e, snapshot *s)
{
    memset(s, 0, sizeof *s);
    char *path = join(dir, e->name);
    if (path == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    int st = ROTEQ_OK;
    if (!e->is_dir) {
        st = load_file(s, path, 0);
        free(path);
        return st;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        st = roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
        free(path);
        return st;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && !st) {
        if (de->d_name[0] == '.' ||
            !(has_suffix(de->d_name, ".safetensors") || has_suffix(de->d_name, ".npy")))
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (nn == NULL || (nn[n] = strdup(de->d_name)) == NULL) {
            if (nn)
                names = nn;
            st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (!st && n == 0)
        st = roteq_error_set(ROTEQ_EFORMAT, "%s: no .safetensors or .npy files", path);
    if (!st)
        qsort(names, n, sizeof *names, cmp_str); /* readdir order is arbitrary */
    for (size_t i = 0; i < n && !st; i++) {
        char *f = join(path, names[i]);
        st = f ? load_file(s, f, has_suffix(names[i], ".npy"))
               : roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        free(f);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(path);
    return st;
}

/* A selected layer: name, geometry and the norms of the previous snapshot. */
typedef struct {
    char *name;
    size_t rows, cols, index;
    double *norm_prev, *norm, *angle;
    roteq_analysis_tensor_info info_prev;
    const unsigned char *data_prev;
} layer_sel;

static const tensor *find(const snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->nt; i++)
        if (strcmp(s->t[i].info.name, name) == 0)
            return &s->t[i];
    return NULL;
}

/* A layer is a float tensor of rank >= 2 with at least one element: an empty tensor has no
 * weights to measure, and its first axis may claim billions of rows that hold no data (the
 * per-neuron state would then be sized by a number no file bytes back). */
static int selected(const tensor *t, const regex_t *re)
{
    return t->info.rank >= 2 && t->info.dtype != ROTEQ_DT_OTHER && t->info.nbytes > 0 &&
           (re == NULL || regexec(re, t->info.name, 0, NULL, 0) == 0);
}

static int cmp_sel(const void *x, const void *y)
{
    return strcmp(((const layer_sel *)x)->name, ((const layer_sel *)y)->name);
}

static int feed(roteq_analysis *a, const layer_sel *L, long step, long gap, const double *norm,
                const double *angle, const char *file)
{
    for (size_t i = 0; i < L->rows; i++) {
        roteq_analysis_row row = {step, i, norm[i], angle ? angle[i] : DNAN, DNAN, DNAN, gap};
        if (!isfinite(row.norm))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s': row %zu is not finite", file,
                                   L->name, i);
        int st = roteq_analysis_add(a, L->index, &row);
        if (st)
            return st;
    }
    return ROTEQ_OK;
}

int roteq_analysis_read_snapshots(const char *dir, const roteq_snapshot_options *opt,
                                  const roteq_analysis_config *cfg, roteq_analysis **out)
{
    regex_t re;
    int have_re = 0;
    if (opt && opt->layers_regex) {
        int rc = regcomp(&re, opt->layers_regex, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char buf[128];
            regerror(rc, &re, buf, sizeof buf);
            return roteq_error_set(ROTEQ_EINVAL, "--layers: invalid regular expression '%s': %s",
                                   opt->layers_regex, buf);
        }
        have_re = 1;
    }
    entry *e = NULL;
    size_t ne = 0;
    int st = list_entries(dir, &e, &ne);
    roteq_analysis *a = NULL;
    snapshot prev = {0}, cur = {0};
    layer_sel *sel = NULL;
    size_t nsel = 0;
    if (st)
        goto done;
    a = roteq_analysis_alloc(cfg);
    if (a == NULL) {
        st = roteq_error_status();
        goto done;
    }
    st = load_snapshot(dir, &e[0], &prev);
    if (st)
        goto done;
    sel = calloc(prev.nt + 1, sizeof *sel);
    if (sel == NULL) {
        st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < prev.nt; i++) {
        const tensor *t = &prev.t[i];
        if (!selected(t, have_re ? &re : NULL))
            continue;
        layer_sel *L = &sel[nsel++];
        L->name = strdup(t->info.name);
        if (L->name == NULL) {
            st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            goto done;
        }
        L->rows = t->info.shape[0];
        L->cols =
            t->info.nbytes / roteq_analysis_dtype_size(t->info.dtype) / (L->rows ? L->rows : 1);
    }
    if (nsel == 0) {
        st = roteq_error_set(ROTEQ_EFORMAT, "%s/%s: no float tensor of rank >= 2%s%s%s", dir,
                             e[0].name, have_re ? " matches --layers '" : "",
                             have_re ? opt->layers_regex : "", have_re ? "'" : "");
        goto done;
    }
    qsort(sel, nsel, sizeof *sel, cmp_sel);
    for (size_t i = 0; i < nsel && !st; i++) {
        layer_sel *L = &sel[i];
        const tensor *t = find(&prev, L->name);
        size_t r = L->rows ? L->rows : 1;
        L->norm_prev = malloc(r * sizeof(double));
        L->norm = malloc(r * sizeof(double));
        L->angle = malloc(r * sizeof(double));
        if (!L->norm_prev || !L->norm || !L->angle) {
            st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
            break;
        }
        st = roteq_analysis_layer(a, L->name, strlen(L->name), L->cols, &L->index);
        if (st)
            break;
        roteq_analysis_rows_norms(&t->info, t->data, L->rows, L->cols, L->norm_prev);
        L->info_prev = t->info;
        L->data_prev = t->data;
        st = feed(a, L, e[0].step, -1, L->norm_prev, NULL, t->file);
    }
    for (size_t k = 1; k < ne && !st; k++) {
        st = load_snapshot(dir, &e[k], &cur);
        long gap = e[k].step - e[k - 1].step;
        for (size_t i = 0; i < nsel && !st; i++) {
            layer_sel *L = &sel[i];
            const tensor *t = find(&cur, L->name);
            if (t == NULL) {
                st = roteq_error_set(ROTEQ_EFORMAT,
                                     "%s/%s: tensor '%s' is missing (present in "
                                     "%s/%s)",
                                     dir, e[k].name, L->name, dir, e[0].name);
                break;
            }
            if (t->info.rank < 2 || t->info.shape[0] != L->rows) {
                st = roteq_error_set(
                    ROTEQ_EFORMAT, "%s: tensor '%s': row count changes from %zu to %llu", t->file,
                    L->name, L->rows, (unsigned long long)(t->info.rank ? t->info.shape[0] : 0));
                break;
            }
            size_t cols =
                t->info.nbytes / roteq_analysis_dtype_size(t->info.dtype) / (L->rows ? L->rows : 1);
            if (t->info.dtype == ROTEQ_DT_OTHER || cols != L->cols) {
                st = roteq_error_set(
                    ROTEQ_EFORMAT, "%s: tensor '%s': shape or dtype changes (rows of %zu, now %zu)",
                    t->file, L->name, L->cols, cols);
                break;
            }
            roteq_analysis_rows_angles(&L->info_prev, L->data_prev, &t->info, t->data, L->rows,
                                       L->cols, L->norm_prev, L->norm, L->angle);
            st = feed(a, L, e[k].step, gap, L->norm, L->angle, t->file);
            if (st) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", roteq_error_message());
                if (strncmp(msg, t->file, strlen(t->file)) != 0)
                    st = roteq_error_set(st, "%s: %s", t->file, msg);
                break;
            }
            double *tmp = L->norm_prev;
            L->norm_prev = L->norm;
            L->norm = tmp;
            L->info_prev = t->info;
            L->data_prev = t->data;
        }
        /* Keep one pair resident: the previous snapshot goes, the current becomes previous. */
        snapshot_clear(&prev);
        prev = cur;
        memset(&cur, 0, sizeof cur);
    }
done:
    for (size_t i = 0; i < nsel; i++) {
        free(sel[i].name);
        free(sel[i].norm_prev);
        free(sel[i].norm);
        free(sel[i].angle);
    }
    free(sel);
    snapshot_clear(&prev);
    snapshot_clear(&cur);
    for (size_t i = 0; i < ne; i++)
        free(e[i].name);
    free(e);
    if (have_re)
        regfree(&re);
    if (st) {
        roteq_analysis_free(a);
        return st;
    }
    *out = a;
    return ROTEQ_OK;
}
