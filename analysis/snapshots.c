/* snapshots.c - a directory of weight snapshots turned into trace rows.
 *
 * Entries carry their step in their name: `step_500.safetensors`, HF Trainer's `checkpoint-500/`
 * (one or more .safetensors shards inside), or a folder `500/` holding one .npy per layer (file
 * stem = layer name). Files are mmap'd and only two snapshots are mapped at any time: each new
 * one is compared with the previous, then the previous is unmapped. Every float tensor of rank
 * >= 2 whose name matches --layers is a layer; its rows are the neurons. The first snapshot gives
 * norms only; each later one gives norms and the angle to the previous snapshot, which spans
 * `gap` optimizer steps (theory's k-step angle).
 *
 * A mapped file that shrinks while it is read (an in-place rewrite, `rsync --inplace`, a trainer
 * still writing) raises SIGBUS on the first page past its new end. Reading through the mapping
 * keeps ingest at memory speed (pread into a buffer would copy every byte twice), so the kernels
 * run under a SIGBUS handler that jumps back here and the file is named in an error; a file
 * whose size or modification time differs after it was read is an error too. */
#include "roteq_analysis.h"
#include "roteq_util.h"
#include "torch_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *name; /* entry name inside the directory */
    long step;
    int is_dir;
    int root; /* HF's final model at the top of the directory (name "."): its model files only */
    double logged_lr; /* HF's trainer_state.json log_history at this step, else NAN */
} entry;

typedef struct {
    void *base;
    size_t size;
    struct stat sb; /* when mapped: a change by the time it has been read is an error */
} mapping;

typedef struct {
    roteq_analysis_tensor_info info;
    const unsigned char *data;
    const char *file; /* for messages (points into the snapshot's file list) */
    size_t map;       /* index of its mapping */
    int axis;         /* the neuron axis it was stored with (rows are along it now) */
} tensor;

typedef struct {
    mapping *maps;
    char **files;
    size_t nmaps;
    tensor *t;
    size_t nt;
    roteq_torch_archive **arch; /* torch.save files: storages read into memory */
    size_t narch;
    double **owned; /* images with the neuron axis moved first */
    size_t nowned;
} snapshot;

/* What the readers need besides the entry: compiled regexes and the neuron-axis sources. */
typedef struct {
    const roteq_snapshot_options *opt;
    const regex_t *layers, *exclude;
    const roteq_analysis_meta *meta;
    unsigned conventions;
    roteq_torch_pool *pool;
} reader;

static void snapshot_clear(snapshot *s)
{
    for (size_t i = 0; i < s->nmaps; i++) {
        if (s->maps[i].base)
            munmap(s->maps[i].base, s->maps[i].size);
        free(s->files[i]);
    }
    for (size_t i = 0; i < s->nt; i++)
        free(s->t[i].info.name);
    for (size_t i = 0; i < s->narch; i++)
        roteq_torch_archive_free(s->arch[i]);
    for (size_t i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->maps);
    free(s->files);
    free(s->t);
    free(s->arch);
    free(s->owned);
    memset(s, 0, sizeof *s);
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

/* The step in an entry's name. An integer labelled step / global_step / checkpoint / iter /
 * iteration (`epoch2_step1000`, `checkpoint-500`, `iter_300`) wins; a name with one integer uses
 * it; several integers and no label are ambiguous (`epoch2_500`: is the step 2 or 500?).
 * Returns 0 with *step set, ROTEQ_ENOTFOUND when the name holds no integer, or ROTEQ_EFORMAT
 * with the message set. */
static int label_before(const char *name, const char *digits)
{
    static const char *const labels[] = {"step", "checkpoint", "iter", "iteration"};
    const char *p = digits;
    if (p > name && (p[-1] == '_' || p[-1] == '-' || p[-1] == '='))
        p--;
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        size_t n = strlen(labels[i]);
        if ((size_t)(p - name) < n || strncasecmp(p - n, labels[i], n) != 0)
            continue;
        const char *b = p - n; /* the label starts a word */
        if (b == name || !((b[-1] >= 'a' && b[-1] <= 'z') || (b[-1] >= 'A' && b[-1] <= 'Z')))
            return 1;
    }
    return 0;
}

#define ROTEQ_MAX_STEP 1000000000000000L

static int parse_step(const char *s, size_t n, long *out)
{
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (v > ROTEQ_MAX_STEP / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int step_of(const char *dir, const char *name, const regex_t *re, long *step)
{
    if (re) {
        regmatch_t m[2];
        if (regexec(re, name, 2, m, 0) != 0)
            return ROTEQ_ENOTFOUND;
        regmatch_t g = m[1].rm_so >= 0 ? m[1] : m[0];
        size_t n = (size_t)(g.rm_eo - g.rm_so);
        const char *s = name + g.rm_so;
        if (n == 0 || strspn(s, "0123456789") < n || parse_step(s, n, step))
            return roteq_error_set(ROTEQ_EFORMAT,
                                   "%s/%s: --step-regex matched '%.*s', not a step number", dir,
                                   name, (int)(n > 40 ? 40 : n), s);
        return ROTEQ_OK;
    }
    size_t runs = 0, labelled = 0;
    long first = -1, lab = -1;
    for (const char *p = name; *p;) {
        size_t n = strspn(p, "0123456789");
        if (n == 0) {
            p++;
            continue;
        }
        long v;
        if (parse_step(p, n, &v))
            return roteq_error_set(ROTEQ_EFORMAT, "%s/%s: step number above %ld", dir, name,
                                   ROTEQ_MAX_STEP);
        if (runs++ == 0)
            first = v;
        if (label_before(name, p)) {
            if (labelled++ && v != lab)
                return roteq_error_set(ROTEQ_EFORMAT,
                                       "%s/%s: two different labelled step numbers (%ld, %ld); "
                                       "pass --step-regex",
                                       dir, name, lab, v);
            lab = v;
        }
        p += n;
    }
    if (labelled) {
        *step = lab;
        return ROTEQ_OK;
    }
    if (runs == 0)
        return ROTEQ_ENOTFOUND;
    if (runs > 1)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s/%s: several numbers in the name and none labelled step, "
                               "global_step, checkpoint- or iter; pass --step-regex",
                               dir, name);
    *step = first;
    return ROTEQ_OK;
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

/* Whether a regular file of the directory is a snapshot; HF's final model files set *root. */
static int snapshot_file(const char *name, int *root)
{
    if (roteq_ckpt_hf_model_file(name)) {
        *root = 1;
        return 0;
    }
    return !roteq_ckpt_aux_file(name) &&
           (has_suffix(name, ".safetensors") || roteq_ckpt_torch_file(name));
}

static int add_entry(entry **e, size_t *n, size_t *cap, const char *name, long step, int is_dir,
                     int root)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        entry *ne = realloc(*e, *cap * sizeof *ne);
        if (ne == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        *e = ne;
    }
    (*e)[*n] = (entry){strdup(name), step, is_dir, root, DNAN};
    if ((*e)[*n].name == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    (*n)++;
    return ROTEQ_OK;
}

/* HF's final model at the top of an output folder is the last snapshot when trainer_state.json
 * gives its step and names no best checkpoint (load_best_model_at_end would have put those
 * weights there), and no checkpoint has that step already; else it is skipped with a note. */
static int root_entry(const char *dir, entry **e, size_t *n, size_t *cap, char *note, size_t len)
{
    long step;
    if (!roteq_ckpt_trainer_step(dir, &step)) {
        snprintf(note, len,
                 "%s: the final model at the top level is skipped: its step is not known (no "
                 "global_step in trainer_state.json)",
                 dir);
        return ROTEQ_OK;
    }
    for (size_t i = 0; i < *n; i++)
        if ((*e)[i].step == step) {
            snprintf(note, len,
                     "%s: the final model at the top level is skipped: step %ld is '%s' already",
                     dir, step, (*e)[i].name);
            return ROTEQ_OK;
        }
    if (roteq_ckpt_best_checkpoint(dir)) {
        snprintf(note, len,
                 "%s: the final model at the top level is skipped: trainer_state.json names a "
                 "best_model_checkpoint, whose weights it may hold",
                 dir);
        return ROTEQ_OK;
    }
    return add_entry(e, n, cap, ".", step, 1, 1);
}

/* List the snapshot entries of `dir`, sorted by step. */
static int list_entries(const char *dir, const reader *rd, const regex_t *step_re, entry **out,
                        size_t *count, char *note, size_t note_len)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return roteq_error_set(ROTEQ_EIO, "%s: %s", dir, strerror(errno));
    entry *e = NULL;
    size_t n = 0, cap = 0;
    int st = ROTEQ_OK, root = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' ||
            (rd->exclude && regexec(rd->exclude, de->d_name, 0, NULL, 0) == 0))
            continue;
        char *path = join(dir, de->d_name);
        struct stat sb;
        if (path == NULL || stat(path, &sb) != 0) {
            free(path);
            continue;
        }
        free(path);
        int is_dir = S_ISDIR(sb.st_mode);
        if (!is_dir && !(S_ISREG(sb.st_mode) && snapshot_file(de->d_name, &root)))
            continue; /* config.json, logs, optimizer.pt, ...: not snapshots */
        long step = -1;
        st = step_of(dir, de->d_name, step_re, &step);
        if (st == ROTEQ_ENOTFOUND) {
            st = ROTEQ_OK;
            if (is_dir)
                continue; /* runs/, logs/: folders without a step are not snapshots */
            st = roteq_error_set(ROTEQ_EFORMAT, "%s/%s: no step number in the name%s", dir,
                                 de->d_name, step_re ? " (--step-regex does not match)" : "");
        }
        if (st || (st = add_entry(&e, &n, &cap, de->d_name, step, is_dir, 0)))
            break;
    }
    closedir(d);
    if (!st && root)
        st = root_entry(dir, &e, &n, &cap, note, note_len);
    const char *other = !st && n == 0 ? roteq_ckpt_unsupported(dir) : NULL;
    if (other)
        st = roteq_error_set(ROTEQ_EUNSUPPORTED, "%s: holds %s, which roteq does not read", dir,
                             other);
    else if (!st && n == 0)
        st = roteq_error_set(ROTEQ_EFORMAT,
                             "%s: no snapshots (numbered .safetensors or torch.save .pt/.bin "
                             "files, or numbered folders of them or of .npy files)",
                             dir);
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
    m->sb = sb;
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

/* A layer candidate (rank >= 2, float, not empty): the only tensors of a torch file read. */
static int weight_like(const roteq_analysis_tensor_info *t, void *ctx)
{
    (void)ctx;
    return t->rank >= 2 && t->dtype != ROTEQ_DT_OTHER && t->nbytes > 0;
}

static int guarded_tensors(roteq_torch_archive *a, const reader *rd, const char *path,
                           roteq_analysis_tensor_info **infos, const unsigned char ***data,
                           size_t *n);

/* A torch.save file: the model state dict's tensors; stored storages in place from a mapping
 * (read under the SIGBUS guard), others through libzip. */
static int load_torch(snapshot *s, const char *path, const reader *rd, const char **file,
                      roteq_analysis_tensor_info **infos, const unsigned char ***data, size_t *n)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
    s->maps[s->nmaps - 1].sb = sb; /* not mapped: base NULL */
    roteq_torch_archive **na = realloc(s->arch, (s->narch + 1) * sizeof *na);
    if (na == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    s->arch = na;
    int st = roteq_torch_archive_open_mapped(path, &s->arch[s->narch]);
    if (st)
        return st;
    roteq_torch_archive *a = s->arch[s->narch++];
    roteq_torch_archive_set_pool(a, rd->pool);
    if (rd->opt && rd->opt->mapped)
        rd->opt->mapped(rd->opt->ctx, path);
    *file = s->files[s->nmaps - 1];
    return guarded_tensors(a, rd, path, infos, data, n);
}

/* ---- reading mapped data under a SIGBUS guard */

static _Thread_local sigjmp_buf *fault_jump;

static void on_sigbus(int sig)
{
    if (fault_jump)
        siglongjmp(*fault_jump, 1);
    signal(sig, SIG_DFL); /* not ours (another thread): the default action */
    raise(sig);
}

/* The error for a mapped file that is not what it was when mapped. */
static int changed(const char *path, const struct stat *was, const char *how)
{
    struct stat now;
    if (stat(path, &now) != 0)
        return roteq_error_set(ROTEQ_EIO, "%s: %s while being read (%s)", path, how,
                               strerror(errno));
    return roteq_error_set(ROTEQ_EIO,
                           "%s: %s while being read (%lld bytes when opened, now %lld): "
                           "rewritten in place or still being written?",
                           path, how, (long long)was->st_size, (long long)now.st_size);
}

/* Run fn(job) with SIGBUS caught: 0, or 1 if a mapped page was gone (the file shrank). What fn
 * allocated before the fault is lost, on this error only. */
static int guarded(void (*fn)(void *), void *job)
{
    sigjmp_buf jb;
    if (sigsetjmp(jb, 1)) {
        fault_jump = NULL;
        return 1;
    }
    fault_jump = &jb;
    /* Fences: the compiler must not move fn's reads of the mapping (inlined: a plain memcpy)
     * outside the window where the handler can jump back here. */
    atomic_signal_fence(memory_order_seq_cst);
    fn(job);
    atomic_signal_fence(memory_order_seq_cst);
    fault_jump = NULL;
    return 0;
}

/* Bytes copied out of the mapping under the guard, which allocates nothing: a fault loses no
 * memory. */
typedef struct {
    unsigned char *dst;
    const unsigned char *src;
    size_t n;
} copy_job;

static void run_copy(void *job)
{
    copy_job *j = job;
    memcpy(j->dst, j->src, j->n);
}

/* An .npy header parsed in place under the guard: the parser allocates nothing (it fills *out
 * only), so a fault leaks nothing, and its header (up to 4 GB in version 2) is not copied. */
typedef struct {
    const char *path;
    const unsigned char *data;
    size_t size;
    roteq_analysis_tensor_info *out;
    int st;
} npy_job;

static void run_npy(void *job)
{
    npy_job *j = job;
    j->st = roteq_analysis_npy_parse(j->path, j->data, j->size, j->size, j->out);
}

static int parse_npy(const mapping *m, const char *path, const unsigned char *data,
                     roteq_analysis_tensor_info *out)
{
    npy_job j = {path, data, m->size, out, 0};
    return guarded(run_npy, &j) ? changed(path, &m->sb, "shrank") : j.st;
}

/* A safetensors header: its length word, then the 8 + length bytes the parser reads, copied out
 * of the mapping under the guard into memory allocated before it; jansson then parses the copy
 * unguarded, so a file that shrinks meanwhile cannot jump out of an allocation. */
static int parse_safetensors(const mapping *m, const char *path, const unsigned char *data,
                             roteq_analysis_tensor_info **infos, size_t *n)
{
    unsigned char word[8];
    size_t want = m->size < 8 ? m->size : 8;
    if (guarded(run_copy, &(copy_job){word, data, want}))
        return changed(path, &m->sb, "shrank");
    if (want == 8) {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--)
            hlen = hlen << 8 | word[i];
        /* an oversized or truncated length is reported from the word alone */
        if (hlen <= ROTEQ_SAFETENSORS_MAX_HEADER && hlen <= m->size - 8)
            want = 8 + (size_t)hlen;
    }
    unsigned char *head = malloc(want ? want : 1);
    if (head == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "%s: out of memory for a %zu-byte header", path, want);
    int st = ROTEQ_OK;
    if (guarded(run_copy, &(copy_job){head, data, want}))
        st = changed(path, &m->sb, "shrank");
    else
        st = roteq_analysis_safetensors_parse(path, head, want, m->size, infos, n);
    free(head);
    return st;
}

/* Map one file (kind 0 safetensors, 1 npy, 2 torch.save) and append its tensors. */
static int load_file(snapshot *s, const char *path, int kind, const reader *rd)
{
    int npy = kind == 1;
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
    if (kind == 2) {
        roteq_analysis_tensor_info *ti = NULL;
        const unsigned char **td = NULL;
        const char *file = NULL;
        size_t k = 0;
        int st = load_torch(s, path, rd, &file, &ti, &td, &k);
        tensor *nt = st ? NULL : realloc(s->t, (s->nt + k + 1) * sizeof *nt);
        if (!st && nt == NULL)
            st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        if (nt)
            s->t = nt;
        for (size_t i = 0; i < k && !st; i++) {
            for (size_t j = 0; j < s->nt && !st; j++)
                if (strcmp(s->t[j].info.name, ti[i].name) == 0)
                    st = roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s' also in %s", path,
                                         ti[i].name, s->t[j].file);
            if (!st) {
                s->t[s->nt++] = (tensor){ti[i], td[i], file, s->nmaps - 1, 0};
                ti[i].name = NULL;
            }
        }
        roteq_analysis_tensor_infos_free(ti, k);
        free(td);
        return st;
    }
    int st = add_map(s, path, m);
    if (st)
        return st;
    if (rd->opt && rd->opt->mapped)
        rd->opt->mapped(rd->opt->ctx, path);
    const char *file = s->files[s->nmaps - 1];
    static const unsigned char empty[1];
    const unsigned char *data = m->base ? m->base : empty;
    roteq_analysis_tensor_info *infos = NULL;
    size_t n = 0;
    if (npy) {
        infos = calloc(1, sizeof *infos);
        if (infos == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        st = parse_npy(m, path, data, infos);
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
        st = parse_safetensors(m, path, data, &infos, &n);
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
        s->t[s->nt++] = (tensor){infos[i], data + infos[i].offset, file, s->nmaps - 1, 0};
    }
    free(infos);
    return ROTEQ_OK;
}

static int apply_axes(snapshot *s, const reader *rd, char *note, size_t note_len);

/* A file of a snapshot folder: 0 safetensors, 1 npy, 2 torch.save, -1 not weights. */
static int file_kind(const char *name, int root)
{
    if (name[0] == '.' || (root && !roteq_ckpt_hf_model_file(name)))
        return -1;
    if (has_suffix(name, ".safetensors"))
        return 0;
    if (has_suffix(name, ".npy"))
        return 1;
    return roteq_ckpt_torch_file(name) && !roteq_ckpt_aux_file(name) ? 2 : -1;
}

static int load_snapshot(const char *dir, const entry *e, snapshot *s, const reader *rd, char *note,
                         size_t note_len)
{
    memset(s, 0, sizeof *s);
    char *path = e->root ? strdup(dir) : join(dir, e->name);
    if (path == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    int st = ROTEQ_OK;
    if (!e->is_dir) {
        st = load_file(s, path, has_suffix(path, ".safetensors") ? 0 : 2, rd);
        free(path);
        return st ? st : apply_axes(s, rd, note, note_len);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        st = roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
        free(path);
        return st;
    }
    char **names = NULL;
    size_t n = 0;
    int any_st = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && !st) {
        int kind = file_kind(de->d_name, e->root);
        if (kind < 0)
            continue;
        any_st |= kind == 0;
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
    const char *other = !st && n == 0 ? roteq_ckpt_unsupported(path) : NULL;
    if (other)
        st = roteq_error_set(ROTEQ_EUNSUPPORTED, "%s: holds %s, which roteq does not read", path,
                             other);
    else if (!st && n == 0)
        st = roteq_error_set(ROTEQ_EFORMAT,
                             "%s: no .safetensors or .npy files (nor torch.save .pt/.bin)", path);
    if (!st)
        st = roteq_ckpt_check_index(path);
    if (!st)
        qsort(names, n, sizeof *names, cmp_str); /* readdir order is arbitrary */
    for (size_t i = 0; i < n && !st; i++) {
        int kind = file_kind(names[i], e->root);
        if (kind == 2 && any_st)
            continue; /* HF writes both: the .safetensors are the faster read */
        char *f = join(path, names[i]);
        st = f ? load_file(s, f, kind, rd) : roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        free(f);
    }
    if (!st)
        st = apply_axes(s, rd, note, note_len);
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
    int axis;
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

/* The recorder stores the optimizer's state beside the weights as optimizer/<param>/<key>:
 * read by roteq_analysis_optstate_read, never layers. */
static int optimizer_state(const tensor *t)
{
    return strncmp(t->info.name, "optimizer/", 10) == 0;
}

static int matches(const tensor *t, const regex_t *re)
{
    return re == NULL || regexec(re, t->info.name, 0, NULL, 0) == 0;
}

/* A layer is a float tensor of rank >= 2 with at least one element: an empty tensor has no
 * weights to measure, and its first axis may claim billions of rows that hold no data (the
 * per-neuron state would then be sized by a number no file bytes back). */
static int selected(const tensor *t, const regex_t *re)
{
    return t->info.rank >= 2 && t->info.dtype != ROTEQ_DT_OTHER && t->info.nbytes > 0 &&
           !optimizer_state(t) && matches(t, re);
}

static int cmp_sel(const void *x, const void *y)
{
    return strcmp(((const layer_sel *)x)->name, ((const layer_sel *)y)->name);
}

/* One snapshot's rows of layer L. The lr and weight decay are the optimizer state's for this
 * layer where the checkpoint holds it (the recorder's lr_applied, else the group's lr as saved:
 * the next step's under a schedule), else the lr HF's Trainer logged at this step, so that a
 * scheduled run is predicted with the lr it had at each checkpoint; otherwise the metadata's. */
static int feed(roteq_analysis *a, const layer_sel *L, const entry *e, long gap, const double *norm,
                const double *angle, const char *file, const roteq_analysis_optstate *os)
{
    long step = e->step;
    const roteq_analysis_optstate_layer *s = os ? roteq_analysis_optstate_find(os, L->name) : NULL;
    double lr = s && (s->known & ROTEQ_OPTSTATE_LR) ? s->lr : e->logged_lr;
    double wd = s && (s->known & ROTEQ_OPTSTATE_WEIGHT_DECAY) ? s->weight_decay : DNAN;
    for (size_t i = 0; i < L->rows; i++) {
        roteq_analysis_row row = {.step = step,
                                  .neuron = i,
                                  .norm = norm[i],
                                  .angle = angle ? angle[i] : DNAN,
                                  .lr = lr,
                                  .weight_decay = wd,
                                  .gap = gap};
        if (!isfinite(row.norm))
            return roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s': row %zu is not finite", file,
                                   L->name, i);
        int st = roteq_analysis_add(a, L->index, &row);
        if (st)
            return st;
    }
    return ROTEQ_OK;
}

/* Norms (a == NULL) or norms and angles of one layer's rows, from the mappings. */
typedef struct {
    const layer_sel *L;
    const roteq_analysis_tensor_info *ta, *tb;
    const void *a, *b;
    double *norm_b, *angle;
} rows_job;

static void run_rows(void *job)
{
    const rows_job *j = job;
    if (j->a == NULL)
        roteq_analysis_rows_norms(j->tb, j->b, j->L->rows, j->L->cols, j->norm_b);
    else
        roteq_analysis_rows_angles(j->ta, j->a, j->tb, j->b, j->L->rows, j->L->cols,
                                   j->L->norm_prev, j->norm_b, j->angle);
}

/* After a snapshot has been read: each of its files must be the file it was when mapped (a
 * file replaced by rename leaves the mapped one intact and is not a change). */
static int unchanged(const snapshot *s)
{
    for (size_t i = 0; i < s->nmaps; i++) {
        struct stat now;
        const struct stat *was = &s->maps[i].sb;
        if (stat(s->files[i], &now) != 0 || now.st_ino != was->st_ino || now.st_dev != was->st_dev)
            continue;
        if (now.st_size != was->st_size || now.st_mtim.tv_sec != was->st_mtim.tv_sec ||
            now.st_mtim.tv_nsec != was->st_mtim.tv_nsec)
            return changed(s->files[i], was, "changed");
    }
    return ROTEQ_OK;
}

/* After a fault: name the file of the two that shrank (or the current one). */
static int fault_error(const snapshot *prev, const tensor *tp, const snapshot *cur,
                       const tensor *tc)
{
    const snapshot *s = cur;
    const tensor *t = tc;
    struct stat now;
    if (tp && prev && stat(prev->files[tp->map], &now) == 0 &&
        (size_t)now.st_size < prev->maps[tp->map].size) {
        s = prev;
        t = tp;
    }
    return changed(s->files[t->map], &s->maps[t->map].sb, "shrank");
}

/* roteq_torch_archive_tensors under the SIGBUS guard (CRCs and views read the mapped file). */
typedef struct {
    roteq_torch_archive *a;
    const char *key;
    roteq_analysis_tensor_info **infos;
    const unsigned char ***data;
    size_t *n;
    int st;
} tensors_job;

static void run_tensors(void *job)
{
    tensors_job *j = job;
    j->st = roteq_torch_archive_tensors(j->a, j->key, weight_like, NULL, j->infos, j->data, j->n);
}

static int guarded_tensors(roteq_torch_archive *a, const reader *rd, const char *path,
                           roteq_analysis_tensor_info **infos, const unsigned char ***data,
                           size_t *n)
{
    tensors_job j = {a, rd->opt ? rd->opt->model_key : NULL, infos, data, n, 0};
    if (guarded(run_tensors, &j) == 0)
        return j.st;
    /* What the reader had built when the fault hit (it publishes as it goes). */
    roteq_analysis_tensor_infos_free(*infos, *n);
    free((void *)*data);
    *infos = NULL;
    *data = NULL;
    *n = 0;
    return roteq_error_set(ROTEQ_EIO,
                           "%s: shrank while being read: rewritten in place or still being "
                           "written?",
                           path);
}

/* ---- the neuron axis */

/* tensor_rows, from the mapping. */
typedef struct {
    const roteq_analysis_tensor_info *t;
    const void *data;
    int axis;
    double *out;
} image_job;

static void run_image(void *job)
{
    const image_job *j = job;
    roteq_analysis_tensor_rows(j->t, j->data, j->axis, j->out);
}

/* The tensor as a row-major F64 [rows, cols] image with the neuron axis first. */
static int to_image(snapshot *s, tensor *t, int axis, size_t rows, size_t cols)
{
    double **no = realloc(s->owned, (s->nowned + 1) * sizeof *no);
    if (no == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    s->owned = no;
    double *img = malloc(rows * cols * sizeof *img);
    if (img == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    s->owned[s->nowned++] = img;
    if (guarded(run_image, &(image_job){&t->info, t->data, axis, img}))
        return changed(s->files[t->map], &s->maps[t->map].sb, "shrank");
    t->info.dtype = ROTEQ_DT_F64;
    t->info.fortran_order = 0;
    t->data = (const unsigned char *)img;
    t->info.nbytes = (uint64_t)rows * cols * 8;
    return ROTEQ_OK;
}

/* Sub-layers NAME/SUB of a fused layer (metadata "split"), consecutive blocks of neurons. */
static int split_layer(snapshot *s, size_t i, const roteq_analysis_layer_meta *lm)
{
    tensor *t = &s->t[i];
    size_t rows = (size_t)t->info.shape[0], cols = (size_t)t->info.shape[1], sum = 0;
    for (size_t k = 0; k < lm->nsplit; k++)
        sum += lm->split[k].size;
    if (sum != rows)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': split sizes add up to %zu, but it has %zu neurons",
                               t->file, t->info.name, sum, rows);
    tensor *nt = realloc(s->t, (s->nt + lm->nsplit + 1) * sizeof *nt);
    if (nt == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    s->t = nt;
    t = &s->t[i];
    size_t off = 0;
    for (size_t k = 0; k < lm->nsplit; k++) {
        tensor sub = *t;
        size_t len = strlen(t->info.name) + strlen(lm->split[k].name) + 2;
        if ((sub.info.name = malloc(len)) == NULL)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        snprintf(sub.info.name, len, "%s/%s", t->info.name, lm->split[k].name);
        sub.info.shape[0] = lm->split[k].size;
        sub.info.nbytes = (uint64_t)lm->split[k].size * cols * 8;
        sub.data = t->data + off * cols * 8;
        off += lm->split[k].size;
        s->t[s->nt++] = sub;
    }
    t->info.rank = 1; /* the fused tensor itself is no longer a layer */
    return ROTEQ_OK;
}

/* Neurons along a tensor's neuron axis become its rows: axis 0 as stored; the last axis of a
 * C-ordered tensor by reading it in Fortran order (no copy); any other layout, and every layer
 * that is split, through a float64 image. Notes the first few non-zero axes. */
static int apply_axes(snapshot *s, const reader *rd, char *note, size_t note_len)
{
    size_t nt = s->nt, noted = 0;
    for (size_t i = 0; i < nt; i++) {
        tensor *t = &s->t[i];
        if (t->data == NULL || !weight_like(&t->info, NULL) || optimizer_state(t))
            continue;
        int axis;
        const char *from;
        int st = roteq_analysis_axis_for(t->info.name, t->info.rank, rd->opt ? rd->opt->axes : NULL,
                                         rd->opt ? rd->opt->naxes : 0, rd->meta, rd->conventions,
                                         &axis, &from);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", roteq_error_message());
            return roteq_error_set(st, "%s: %s", t->file, msg);
        }
        const roteq_analysis_layer_meta *lm =
            rd->meta ? roteq_analysis_meta_layer(rd->meta, t->info.name) : NULL;
        int split = lm && lm->nsplit;
        t->axis = axis;
        if (axis == 0 && !split)
            continue;
        uint64_t rows = t->info.shape[axis], numel = 1;
        for (size_t d = 0; d < t->info.rank; d++)
            numel *= t->info.shape[d];
        size_t cols = (size_t)(numel / rows);
        if (axis == (int)t->info.rank - 1 && !t->info.fortran_order && !split)
            t->info.fortran_order = 1; /* row r, element j at j * rows + r */
        else if ((st = to_image(s, t, axis, (size_t)rows, cols)))
            return st;
        t->info.rank = 2;
        t->info.shape[0] = rows;
        t->info.shape[1] = cols;
        if (split && (st = split_layer(s, i, lm)))
            return st;
        if (note && from) {
            size_t used = strlen(note);
            if (noted++ < 4 && used + 1 < note_len)
                snprintf(note + used, note_len - used, "%s%s: axis %d (%s)",
                         used ? "; " : "neuron axis: ", s->t[i].info.name, axis, from);
            else if (noted == 5 && used + 1 < note_len)
                snprintf(note + used, note_len - used, "; ...");
        }
    }
    return ROTEQ_OK;
}

/* ---- the series */

/* Layers of the first snapshot, sorted by name; non-float tensors of rank >= 2 that would
 * otherwise be layers are counted for the note. */
static int select_layers(const char *where, const snapshot *s, const regex_t *re, const char *regex,
                         layer_sel **out, size_t *count, char *note, size_t note_len)
{
    layer_sel *sel = calloc(s->nt + 1, sizeof *sel);
    if (sel == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    size_t nsel = 0, skipped = 0;
    const tensor *first_skipped = NULL;
    for (size_t i = 0; i < s->nt; i++) {
        const tensor *t = &s->t[i];
        if (t->info.rank >= 2 && t->info.dtype == ROTEQ_DT_OTHER && !optimizer_state(t) &&
            matches(t, re)) {
            if (skipped++ == 0)
                first_skipped = t;
            continue;
        }
        if (!selected(t, re))
            continue;
        layer_sel *L = &sel[nsel++];
        L->name = strdup(t->info.name);
        if (L->name == NULL) {
            *out = sel;
            *count = nsel;
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        }
        L->rows = t->info.shape[0];
        L->axis = t->axis;
        L->cols =
            t->info.nbytes / roteq_analysis_dtype_size(t->info.dtype) / (L->rows ? L->rows : 1);
    }
    *out = sel;
    *count = nsel;
    if (skipped)
        snprintf(note, note_len,
                 "%s: %zu tensor%s of rank >= 2 not float (such as '%s', %s): not layers, "
                 "skipped",
                 first_skipped->file, skipped, skipped > 1 ? "s" : "", first_skipped->info.name,
                 roteq_analysis_dtype_name(&first_skipped->info));
    if (nsel == 0)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: no float tensor of rank >= 2%s%s%s", where,
                               re ? " matches --layers '" : "", re ? regex : "", re ? "'" : "");
    qsort(sel, nsel, sizeof *sel, cmp_sel);
    return ROTEQ_OK;
}

/* The first snapshot: norms of every selected layer. */
static int first_snapshot(roteq_analysis *a, const snapshot *s, layer_sel *sel, size_t nsel,
                          const entry *e, const roteq_analysis_optstate *os)
{
    for (size_t i = 0; i < nsel; i++) {
        layer_sel *L = &sel[i];
        const tensor *t = find(s, L->name);
        size_t r = L->rows ? L->rows : 1;
        L->norm_prev = malloc(r * sizeof(double));
        L->norm = malloc(r * sizeof(double));
        L->angle = malloc(r * sizeof(double));
        if (!L->norm_prev || !L->norm || !L->angle)
            return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        int st = roteq_analysis_layer(a, L->name, strlen(L->name), L->cols, &L->index);
        if (st)
            return st;
        roteq_analysis_set_neuron_axis(a, L->index, L->axis);
        if (guarded(run_rows, &(rows_job){L, NULL, &t->info, NULL, t->data, L->norm_prev, NULL}))
            return fault_error(NULL, NULL, s, t);
        L->info_prev = t->info;
        L->data_prev = t->data;
        /* With the optimizer state, the first checkpoint has a per-step angle too. */
        int per_step = roteq_analysis_state_angles(a, os, L->index, &t->info, t->data, L->rows,
                                                   L->cols, L->angle);
        if (per_step < 0)
            return per_step;
        st =
            feed(a, L, e, per_step ? 1 : -1, L->norm_prev, per_step ? L->angle : NULL, t->file, os);
        if (st)
            return st;
    }
    return unchanged(s);
}

/* A later snapshot's tensor for layer L: the same rows, row length and a float dtype. */
static int check_tensor(const char *dir, const entry *e, const entry *e0, const layer_sel *L,
                        const tensor *t)
{
    if (t == NULL)
        return roteq_error_set(ROTEQ_EFORMAT, "%s/%s: tensor '%s' is missing (present in %s/%s)",
                               dir, e->name, L->name, dir, e0->name);
    if (t->info.dtype == ROTEQ_DT_OTHER)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': dtype changes from %s to %s, which is not a "
                               "float dtype roteq reads (F64, F32, F16, BF16)",
                               t->file, L->name, roteq_analysis_dtype_name(&L->info_prev),
                               roteq_analysis_dtype_name(&t->info));
    if (t->info.rank < 2 || t->info.shape[0] != L->rows)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s': row count changes from %zu to %llu",
                               t->file, L->name, L->rows,
                               (unsigned long long)(t->info.rank ? t->info.shape[0] : 0));
    size_t cols =
        t->info.nbytes / roteq_analysis_dtype_size(t->info.dtype) / (L->rows ? L->rows : 1);
    if (cols != L->cols)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': shape or dtype changes (rows of %zu, now %zu)",
                               t->file, L->name, L->cols, cols);
    return ROTEQ_OK;
}

/* Snapshot k against the previous one: norms and angles of every selected layer. */
static int next_snapshot(roteq_analysis *a, const char *dir, const entry *e, const entry *e0,
                         long gap, const snapshot *prev, const snapshot *cur, layer_sel *sel,
                         size_t nsel, const roteq_analysis_optstate *os)
{
    for (size_t i = 0; i < nsel; i++) {
        layer_sel *L = &sel[i];
        const tensor *t = find(cur, L->name);
        int st = check_tensor(dir, e, e0, L, t);
        if (st)
            return st;
        if (guarded(run_rows, &(rows_job){L, &L->info_prev, &t->info, L->data_prev, t->data,
                                          L->norm, L->angle}))
            return fault_error(prev, find(prev, L->name), cur, t);
        /* The optimizer state, where present, replaces the k-step angle by the last step's. */
        int per_step = roteq_analysis_state_angles(a, os, L->index, &t->info, t->data, L->rows,
                                                   L->cols, L->angle);
        if (per_step < 0)
            return per_step;
        st = feed(a, L, e, per_step ? 1 : gap, L->norm, L->angle, t->file, os);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", roteq_error_message());
            if (strncmp(msg, t->file, strlen(t->file)) != 0)
                st = roteq_error_set(st, "%s: %s", t->file, msg);
            return st;
        }
        double *tmp = L->norm_prev;
        L->norm_prev = L->norm;
        L->norm = tmp;
        L->info_prev = t->info;
        L->data_prev = t->data;
    }
    int st = unchanged(prev);
    return st ? st : unchanged(cur);
}

/* HF's logged lr at each entry's step (roteq_ckpt_logged_lr; the last checkpoint's history when
 * the folder's top level has none). */
static int logged_lrs(const char *dir, entry *e, size_t n)
{
    long *steps = malloc(n * sizeof *steps);
    double *lr = malloc(n * sizeof *lr);
    if (steps == NULL || lr == NULL) {
        free(steps), free(lr);
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        steps[i] = e[i].step;
    const char *last = e[n - 1].is_dir && !e[n - 1].root ? e[n - 1].name : NULL;
    roteq_ckpt_logged_lr(dir, last, steps, lr, n);
    for (size_t i = 0; i < n; i++)
        e[i].logged_lr = lr[i];
    free(steps), free(lr);
    return ROTEQ_OK;
}

/* The optimizer state stored with snapshot entry e, if any (laststep.c). */
static int entry_state(const char *dir, const entry *e, const roteq_analysis_config *cfg,
                       roteq_analysis_optstate **os, char *note, size_t cap)
{
    char *path = join(dir, e->name);
    if (path == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    char why[512] = "";
    int st = roteq_analysis_checkpoint_state(path, cfg->meta, os, why, sizeof why);
    if (why[0] && note[0] == '\0')
        snprintf(note, cap, "%s", why);
    free(path);
    return st;
}

static int compile(const char *flag, const char *regex, int flags, regex_t *re)
{
    int rc = regcomp(re, regex, REG_EXTENDED | flags);
    if (rc == 0)
        return ROTEQ_OK;
    char buf[128];
    regerror(rc, re, buf, sizeof buf);
    return roteq_error_set(ROTEQ_EINVAL, "%s: invalid regular expression '%s': %s", flag, regex,
                           buf);
}

int roteq_analysis_read_snapshots(const char *dir, const roteq_snapshot_options *opt,
                                  const roteq_analysis_config *cfg, roteq_analysis **out)
{
    regex_t re, step_re, ex_re;
    int have_re = 0, have_step_re = 0, have_ex = 0, st = ROTEQ_OK;
    if (opt && opt->layers_regex && !(st = compile("--layers", opt->layers_regex, REG_NOSUB, &re)))
        have_re = 1;
    if (!st && opt && opt->exclude_regex &&
        !(st = compile("--exclude", opt->exclude_regex, REG_NOSUB, &ex_re)))
        have_ex = 1;
    reader rd = {opt,       have_re ? &re : NULL,        have_ex ? &ex_re : NULL,
                 cfg->meta, roteq_ckpt_conventions(dir), roteq_torch_pool_alloc()};
    if (rd.pool == NULL)
        st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
    if (!st && opt && opt->step_regex &&
        !(st = compile("--step-regex", opt->step_regex, 0, &step_re)))
        have_step_re = 1;
    entry *e = NULL;
    size_t ne = 0;
    roteq_analysis *a = NULL;
    snapshot prev = {0}, cur = {0};
    layer_sel *sel = NULL;
    size_t nsel = 0;
    char note[512] = "", note_entries[512] = "", note_axes[512] = "", state_note[512] = "";
    roteq_analysis_optstate *os = NULL;
    /* The handler is ours only while this function runs. */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old_sa);
    if (!st)
        st = list_entries(dir, &rd, have_step_re ? &step_re : NULL, &e, &ne, note_entries,
                          sizeof note_entries);
    if (!st && e[0].is_dir && !e[0].root) { /* HF keeps config.json in each checkpoint too */
        char *first = join(dir, e[0].name);
        if (first == NULL)
            st = roteq_error_set(ROTEQ_ENOMEM, "out of memory");
        else
            rd.conventions |= roteq_ckpt_conventions(first);
        free(first);
    }
    if (!st)
        st = logged_lrs(dir, e, ne);
    if (st)
        goto done;
    a = roteq_analysis_alloc(cfg);
    if (a == NULL) {
        st = roteq_error_status();
        goto done;
    }
    st = load_snapshot(dir, &e[0], &prev, &rd, note_axes, sizeof note_axes);
    if (!st && opt && opt->opened)
        opt->opened(opt->ctx, e[0].name);
    if (!st) {
        char where[4096];
        snprintf(where, sizeof where, "%s/%s", dir, e[0].name);
        st = select_layers(where, &prev, have_re ? &re : NULL, opt ? opt->layers_regex : NULL, &sel,
                           &nsel, note, sizeof note);
    }
    if (!st)
        st = entry_state(dir, &e[0], cfg, &os, state_note, sizeof state_note);
    if (!st)
        st = first_snapshot(a, &prev, sel, nsel, &e[0], os);
    for (size_t k = 1; k < ne && !st; k++) {
        roteq_analysis_optstate_free(os);
        os = NULL;
        st = load_snapshot(dir, &e[k], &cur, &rd, NULL, 0);
        if (!st && opt && opt->opened)
            opt->opened(opt->ctx, e[k].name);
        if (!st)
            st = entry_state(dir, &e[k], cfg, &os, state_note, sizeof state_note);
        if (!st)
            st = next_snapshot(a, dir, &e[k], &e[0], e[k].step - e[k - 1].step, &prev, &cur, sel,
                               nsel, os);
        /* Keep one pair resident: the previous snapshot goes, the current becomes previous. */
        snapshot_clear(&prev);
        prev = cur;
        memset(&cur, 0, sizeof cur);
    }
done:
    roteq_analysis_optstate_free(os);
    sigaction(SIGBUS, &old_sa, NULL);
    for (size_t i = 0; i < nsel; i++) {
        free(sel[i].name);
        free(sel[i].norm_prev);
        free(sel[i].norm);
        free(sel[i].angle);
    }
    free(sel);
    snapshot_clear(&prev);
    snapshot_clear(&cur);
    roteq_torch_pool_free(rd.pool);
    for (size_t i = 0; i < ne; i++)
        free(e[i].name);
    free(e);
    if (have_re)
        regfree(&re);
    if (have_step_re)
        regfree(&step_re);
    if (have_ex)
        regfree(&ex_re);
    if (st) {
        roteq_analysis_free(a);
        return st;
    }
    const char *notes[3] = {note_entries, note_axes, note};
    for (int i = 0; i < 3; i++)
        if (notes[i][0] && opt && opt->notes)
            fprintf(opt->notes, "%s\n", notes[i]);
    if (state_note[0] && opt && opt->notes)
        fprintf(opt->notes, "optimizer state not used: %s\n", state_note);
    *out = a;
    return ROTEQ_OK;
}
