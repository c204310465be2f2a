/* torchzip.c - the zip layer of torch.save files (torch >= 1.6): ARCHIVE/data.pkl, the pickle that
 * describes the object, and ARCHIVE/data/KEY, one entry per storage. Zip parsing is libzip's; this
 * file decides what a torch archive must hold and reads storages through zip_fread, which copies
 * from the file (no mapping that a shrinking file could turn into SIGBUS) and checks each entry's
 * CRC at its end. A storage is read once and shared by every tensor viewing it (tied weights, the
 * views of one flat buffer). Views that are neither C- nor Fortran-contiguous are gathered. */
#include "roteq_util.h"
#include "torch_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

typedef struct {
    const roteq_pk_storage *s;
    unsigned char *data; /* owned (NULL when in place) */
    size_t size;
    const unsigned char *at; /* the bytes: data, or in the mapped file */
} cached;

/* Storage buffers kept between archives: a series reads storages of the same sizes snapshot
 * after snapshot, and a fresh allocation of that size costs a page fault per 4 KiB page (the
 * kernel zeroes each one) on top of the copy. */
struct roteq_torch_pool {
    unsigned char **buf;
    size_t *size;
    size_t n, cap;
};

roteq_torch_pool *roteq_torch_pool_alloc(void)
{
    return calloc(1, sizeof(roteq_torch_pool));
}

void roteq_torch_pool_free(roteq_torch_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->buf[i]);
    free(p->buf);
    free(p->size);
    free(p);
}

static unsigned char *pool_take(roteq_torch_pool *p, size_t size)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (p->size[i] == size) {
            unsigned char *b = p->buf[i];
            p->buf[i] = p->buf[--p->n];
            p->size[i] = p->size[p->n];
            return b;
        }
    return malloc(size ? size : 1);
}

static void pool_give(roteq_torch_pool *p, unsigned char *b, size_t size)
{
    if (p && p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        unsigned char **nb = realloc(p->buf, cap * sizeof *nb);
        size_t *ns = nb ? realloc(p->size, cap * sizeof *ns) : NULL;
        if (nb)
            p->buf = nb;
        if (ns) {
            p->size = ns;
            p->cap = cap;
        }
    }
    if (p == NULL || p->n == p->cap) {
        free(b);
        return;
    }
    p->buf[p->n] = b;
    p->size[p->n++] = size;
}

/* The bytes libzip reads: a file through pread (a file that shrinks gives short reads, which
 * libzip reports, never SIGBUS) or a memory image. Reads are positioned by libzip, which records
 * where the last one started: after libzip has parsed an entry's local header and read its first
 * byte, that is where the entry's data begins, so a stored storage can be used in place. */
typedef struct {
    int fd; /* -1: memory image */
    const unsigned char *mem;
    uint64_t size, pos, last_read;
    zip_error_t err;
} zsrc;

static zip_int64_t zsrc_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
    zsrc *z = ud;
    switch (cmd) {
    case ZIP_SOURCE_OPEN:
        z->pos = 0;
        return 0;
    case ZIP_SOURCE_READ: {
        uint64_t n = z->pos >= z->size ? 0 : z->size - z->pos;
        if (n > len)
            n = len;
        z->last_read = z->pos;
        if (z->fd < 0) {
            memcpy(data, z->mem + z->pos, (size_t)n);
        } else {
            ssize_t got = pread(z->fd, data, (size_t)n, (off_t)z->pos);
            if (got < 0) {
                zip_error_set(&z->err, ZIP_ER_READ, errno);
                return -1;
            }
            n = (uint64_t)got;
        }
        z->pos += n;
        return (zip_int64_t)n;
    }
    case ZIP_SOURCE_CLOSE:
        return 0;
    case ZIP_SOURCE_STAT: {
        zip_stat_t *st = data;
        zip_stat_init(st);
        st->size = z->size;
        st->valid |= ZIP_STAT_SIZE;
        return sizeof *st;
    }
    case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&z->err, data, len);
    case ZIP_SOURCE_SEEK: {
        zip_int64_t np = zip_source_seek_compute_offset(z->pos, z->size, data, len, &z->err);
        if (np < 0)
            return -1;
        z->pos = (uint64_t)np;
        return 0;
    }
    case ZIP_SOURCE_TELL:
        return (zip_int64_t)z->pos;
    case ZIP_SOURCE_FREE:
        return 0;
    case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(
            ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR,
            ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL, ZIP_SOURCE_SUPPORTS, ZIP_SOURCE_FREE, -1);
    default:
        zip_error_set(&z->err, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

struct roteq_torch_archive {
    char *name; /* the file, for messages */
    roteq_torch_pool *pool;
    zsrc src;
    const unsigned char *map; /* the whole file mapped (NULL for a memory image: src.mem) */
    size_t map_size;
    zip_t *z;
    char *prefix; /* "archive/" */
    uint64_t file_size;
    roteq_pickle *pk;
    cached *cache;
    size_t ncache, ccap;
    unsigned char **owned; /* gathered views */
    size_t nowned;
};

static int oom(void)
{
    return roteq_error_set(ROTEQ_ENOMEM, "out of memory");
}

void roteq_torch_archive_free(roteq_torch_archive *a)
{
    if (a == NULL)
        return;
    if (a->z)
        zip_discard(a->z);
    if (a->map)
        munmap((void *)a->map, a->map_size);
    if (a->src.fd >= 0)
        close(a->src.fd);
    zip_error_fini(&a->src.err);
    for (size_t i = 0; i < a->ncache; i++)
        if (a->cache[i].data)
            pool_give(a->pool, a->cache[i].data, a->cache[i].size);
    for (size_t i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    free(a->cache);
    free(a->owned);
    roteq_pickle_free(a->pk);
    free(a->prefix);
    free(a->name);
    free(a);
}

const roteq_pk *roteq_torch_archive_root(const roteq_torch_archive *a)
{
    return roteq_pickle_root(a->pk);
}

const char *roteq_torch_archive_name(const roteq_torch_archive *a)
{
    return a->name;
}

void roteq_torch_archive_set_pool(roteq_torch_archive *a, roteq_torch_pool *pool)
{
    a->pool = pool;
}

/* Read entry `idx` of `size` bytes into buf, checking the CRC (libzip checks it when a read
 * reaches the end of the entry, hence the extra read). */
static int read_entry(roteq_torch_archive *a, zip_int64_t idx, const char *entry, void *buf,
                      uint64_t size)
{
    zip_file_t *f = zip_fopen_index(a->z, (zip_uint64_t)idx, 0);
    if (f == NULL)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: entry '%s': %s", a->name, entry,
                               zip_error_strerror(zip_get_error(a->z)));
    unsigned char extra;
    zip_int64_t got = size ? zip_fread(f, buf, size) : 0;
    zip_int64_t end = got == (zip_int64_t)size ? zip_fread(f, &extra, 1) : -1;
    int st = ROTEQ_OK;
    if (got != (zip_int64_t)size || end != 0) {
        zip_error_t *e = zip_file_get_error(f);
        if (zip_error_code_zip(e) == ZIP_ER_CRC)
            st = roteq_error_set(ROTEQ_EFORMAT, "%s: entry '%s': CRC mismatch (corrupt archive)",
                                 a->name, entry);
        else if (end > 0)
            st = roteq_error_set(ROTEQ_EFORMAT, "%s: entry '%s': longer than its declared size",
                                 a->name, entry);
        else
            st = roteq_error_set(ROTEQ_EFORMAT, "%s: entry '%s': %s", a->name, entry,
                                 got < 0 || end < 0 ? zip_error_strerror(e) : "truncated");
    }
    zip_fclose(f);
    return st;
}

/* Index and uncompressed size of PREFIX + rest; -1 when absent. Sizes the data cannot back (a
 * stored entry longer than its bytes, or beyond deflate's 1032:1) are refused before any
 * allocation. */
static int locate(roteq_torch_archive *a, const char *rest, zip_int64_t *idx, uint64_t *size)
{
    size_t n = strlen(a->prefix) + strlen(rest) + 1;
    char *full = malloc(n);
    if (full == NULL)
        return oom();
    snprintf(full, n, "%s%s", a->prefix, rest);
    *idx = zip_name_locate(a->z, full, 0);
    free(full);
    if (*idx < 0)
        return ROTEQ_OK;
    zip_stat_t sb;
    if (zip_stat_index(a->z, (zip_uint64_t)*idx, 0, &sb) != 0 ||
        (sb.valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE)) != (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE))
        return roteq_error_set(ROTEQ_EFORMAT, "%s: entry '%s': no size", a->name, rest);
    if (sb.comp_size > a->file_size || sb.size / 1100 > sb.comp_size + 1)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: entry '%s': declared size %llu is not backed by the file",
                               a->name, rest, (unsigned long long)sb.size);
    *size = sb.size;
    return ROTEQ_OK;
}

/* Find ARCHIVE/data.pkl (the only entry of that name one level down). */
static int find_prefix(roteq_torch_archive *a)
{
    zip_int64_t n = zip_get_num_entries(a->z, 0);
    int script = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *nm = zip_get_name(a->z, (zip_uint64_t)i, 0);
        if (nm == NULL)
            continue;
        const char *slash = strchr(nm, '/');
        if (slash == NULL)
            continue;
        if (strcmp(slash, "/constants.pkl") == 0 || strncmp(slash, "/code/", 6) == 0)
            script = 1;
        if (strcmp(slash, "/data.pkl") != 0)
            continue;
        if (a->prefix)
            return roteq_error_set(ROTEQ_EFORMAT, "%s: several data.pkl entries", a->name);
        a->prefix = strndup(nm, (size_t)(slash - nm) + 1);
        if (a->prefix == NULL)
            return oom();
    }
    if (a->prefix == NULL)
        return roteq_error_set(ROTEQ_EFORMAT,
                               script ? "%s: a TorchScript archive (torch.jit.save), not a "
                                        "torch.save file: save the model's state_dict() instead"
                                      : "%s: zip archive without ARCHIVE/data.pkl: not a "
                                        "torch.save file",
                               a->name);
    return ROTEQ_OK;
}

static int check_byteorder(roteq_torch_archive *a)
{
    zip_int64_t idx;
    uint64_t size;
    int st = locate(a, "byteorder", &idx, &size);
    if (st || idx < 0)
        return st; /* torch < 2.1 writes none: little-endian */
    char buf[16] = "";
    if (size >= sizeof buf)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: malformed byteorder entry", a->name);
    if ((st = read_entry(a, idx, "byteorder", buf, size)))
        return st;
    if (strcmp(buf, "little") != 0)
        return roteq_error_set(ROTEQ_EUNSUPPORTED,
                               "%s: storages are '%s'-endian; only little-endian is read", a->name,
                               buf);
    return ROTEQ_OK;
}

static int finish_open(roteq_torch_archive *a, roteq_torch_archive **out)
{
    int st = find_prefix(a);
    if (!st)
        st = check_byteorder(a);
    zip_int64_t idx = -1;
    uint64_t size = 0;
    if (!st)
        st = locate(a, "data.pkl", &idx, &size);
    if (!st && size > ROTEQ_PICKLE_MAX_BYTES)
        st = roteq_error_set(ROTEQ_EFORMAT, "%s: data.pkl of %llu bytes is above the limit",
                             a->name, (unsigned long long)size);
    unsigned char *pkl = NULL;
    if (!st && (pkl = malloc(size ? size : 1)) == NULL)
        st = oom();
    if (!st)
        st = read_entry(a, idx, "data.pkl", pkl, size);
    if (!st)
        st = roteq_pickle_load(a->name, pkl, (size_t)size, &a->pk);
    free(pkl);
    if (st) {
        roteq_torch_archive_free(a);
        return st;
    }
    *out = a;
    return ROTEQ_OK;
}

static roteq_torch_archive *archive_new(const char *name, uint64_t file_size)
{
    roteq_torch_archive *a = calloc(1, sizeof *a);
    if (a == NULL || (a->name = strdup(name)) == NULL) {
        free(a);
        oom();
        return NULL;
    }
    a->file_size = file_size;
    a->src.fd = -1;
    zip_error_init(&a->src.err);
    return a;
}

/* Why a file that is not a zip may be one anyway: the legacy format starts with a pickled magic
 * number (protocol 2, LONG1 0x1950a86a20f9469cfc6c). */
static int not_zip(const char *name, const unsigned char *head, size_t n, zip_error_t *err)
{
    static const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9};
    if (n >= sizeof legacy && memcmp(head, legacy, sizeof legacy) == 0)
        return roteq_error_set(ROTEQ_EUNSUPPORTED,
                               "%s: legacy torch.save format (torch < 1.6 or "
                               "_use_new_zipfile_serialization=False): re-save it with torch.save "
                               "in torch >= 1.6",
                               name);
    return roteq_error_set(ROTEQ_EFORMAT, "%s: not a zip archive (truncated or corrupt: %s)", name,
                           zip_error_strerror(err));
}

/* libzip over the archive's source; on failure the archive is freed and the error named. */
static int open_zip(roteq_torch_archive *a, roteq_torch_archive **out)
{
    zip_error_t e;
    zip_error_init(&e);
    zip_source_t *src = zip_source_function_create(zsrc_cb, &a->src, &e);
    a->z = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &e) : NULL;
    if (a->z == NULL) {
        if (src)
            zip_source_free(src);
        unsigned char head[16] = {0};
        size_t nh = a->src.fd >= 0 ? (size_t)pread(a->src.fd, head, sizeof head, 0)
                                   : (a->src.size < 16 ? (size_t)a->src.size : 16);
        if (a->src.fd < 0)
            memcpy(head, a->src.mem, nh);
        int st = zip_error_code_zip(&e) == ZIP_ER_READ
                     ? roteq_error_set(ROTEQ_EIO, "%s: %s", a->name, zip_error_strerror(&e))
                     : not_zip(a->name, head, nh > 16 ? 0 : nh, &e);
        zip_error_fini(&e);
        roteq_torch_archive_free(a);
        return st;
    }
    zip_error_fini(&e);
    return finish_open(a, out);
}

static int open_file(const char *path, int map, roteq_torch_archive **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int st = roteq_error_set(ROTEQ_EIO, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return st;
    }
    roteq_torch_archive *a = archive_new(path, (uint64_t)sb.st_size);
    if (a == NULL) {
        close(fd);
        return roteq_error_status();
    }
    a->src.fd = fd;
    a->src.size = (uint64_t)sb.st_size;
    if (map && sb.st_size > 0) { /* stored storages are used in place (page cache, no copy) */
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            a->map = m;
            a->map_size = (size_t)sb.st_size;
            madvise(m, a->map_size, MADV_SEQUENTIAL);
        }
    }
    return open_zip(a, out);
}

int roteq_torch_archive_open(const char *path, roteq_torch_archive **out)
{
    return open_file(path, 0, out);
}

int roteq_torch_archive_open_mapped(const char *path, roteq_torch_archive **out)
{
    return open_file(path, 1, out);
}

int roteq_torch_archive_open_buffer(const char *name, const void *data, size_t n,
                                    roteq_torch_archive **out)
{
    *out = NULL;
    roteq_torch_archive *a = archive_new(name, n);
    if (a == NULL)
        return roteq_error_status();
    a->src.mem = data;
    a->src.size = n;
    return open_zip(a, out);
}

/* Where a stored entry's data lies in the image, found by libzip (see zsrc); -1 if unknown.
 * Checks the CRC-32 over the bytes in place. */
static int stored_at(roteq_torch_archive *a, zip_int64_t idx, const char *entry, uint64_t size,
                     const unsigned char **at)
{
    *at = NULL;
    const unsigned char *base = a->map ? a->map : a->src.fd < 0 ? a->src.mem : NULL;
    zip_stat_t sb;
    if (base == NULL || zip_stat_index(a->z, (zip_uint64_t)idx, 0, &sb) != 0 ||
        !(sb.valid & ZIP_STAT_COMP_METHOD) || !(sb.valid & ZIP_STAT_CRC) ||
        sb.comp_method != ZIP_CM_STORE || sb.comp_size != size || size == 0)
        return ROTEQ_OK;
    zip_file_t *f = zip_fopen_index(a->z, (zip_uint64_t)idx, ZIP_FL_COMPRESSED);
    unsigned char first;
    zip_int64_t got = f ? zip_fread(f, &first, 1) : -1;
    uint64_t off = a->src.last_read;
    if (f)
        zip_fclose(f);
    uint64_t limit = a->map ? a->map_size : a->src.size;
    if (got != 1 || off > limit || size > limit - off || base[off] != first)
        return ROTEQ_OK; /* not where expected: read it through libzip instead */
    uLong crc = crc32_z(0, Z_NULL, 0);
    for (uint64_t done = 0; done < size;) { /* crc32_z takes z_size_t */
        uint64_t n = size - done > ((uint64_t)1 << 30) ? (uint64_t)1 << 30 : size - done;
        crc = crc32_z(crc, base + off + done, (z_size_t)n);
        done += n;
    }
    if (crc != sb.crc)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: entry '%s': CRC mismatch (corrupt archive)",
                               a->name, entry);
    *at = base + off;
    return ROTEQ_OK;
}

/* The bytes of storage s, read on first use. */
static int storage_data(roteq_torch_archive *a, const roteq_pk_storage *s, const char *tname,
                        const unsigned char **data)
{
    for (size_t i = 0; i < a->ncache; i++)
        if (a->cache[i].s == s || strcmp(a->cache[i].s->key, s->key) == 0) {
            if (a->cache[i].s->esize != s->esize || a->cache[i].s->numel != s->numel)
                return roteq_error_set(ROTEQ_EFORMAT,
                                       "%s: tensor '%s': storage 'data/%s' is declared twice "
                                       "with different types",
                                       a->name, tname, s->key);
            *data = a->cache[i].at;
            return ROTEQ_OK;
        }
    char rest[64 + 256];
    snprintf(rest, sizeof rest, "data/%.256s", s->key);
    zip_int64_t idx;
    uint64_t size, want;
    int st = locate(a, rest, &idx, &size);
    if (st)
        return st;
    if (idx < 0)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: tensor '%s': storage entry '%s' is missing",
                               a->name, tname, rest);
    if (__builtin_mul_overflow(s->numel, (uint64_t)s->esize, &want) || want != size)
        return roteq_error_set(ROTEQ_EFORMAT,
                               "%s: tensor '%s': storage '%s' holds %llu bytes but %s of %llu "
                               "elements needs %llu (dtype mismatch)",
                               a->name, tname, rest, (unsigned long long)size, s->type,
                               (unsigned long long)s->numel, (unsigned long long)want);
    if (a->ncache == a->ccap) {
        size_t cap = a->ccap ? 2 * a->ccap : 16;
        cached *c = realloc(a->cache, cap * sizeof *c);
        if (c == NULL)
            return oom();
        a->cache = c;
        a->ccap = cap;
    }
    const unsigned char *in_place;
    if ((st = stored_at(a, idx, rest, size, &in_place)))
        return st;
    if (in_place) {
        a->cache[a->ncache++] = (cached){s, NULL, 0, in_place};
        *data = in_place;
        return ROTEQ_OK;
    }
    unsigned char *buf = pool_take(a->pool, (size_t)size);
    if (buf == NULL)
        return oom();
    if ((st = read_entry(a, idx, rest, buf, size))) {
        pool_give(a->pool, buf, (size_t)size);
        return st;
    }
    a->cache[a->ncache++] = (cached){s, buf, (size_t)size, buf};
    *data = buf;
    return ROTEQ_OK;
}

/* Copy a strided view into C order, one element of `es` bytes at a time. */
static void gather(const roteq_pk_tensor *t, size_t es, const unsigned char *src,
                   unsigned char *dst)
{
    uint64_t idx[ROTEQ_TENSOR_MAX_RANK] = {0};
    for (uint64_t k = 0; k < t->numel; k++) {
        uint64_t off = t->offset;
        for (size_t d = 0; d < t->rank; d++)
            off += idx[d] * t->stride[d];
        memcpy(dst + k * es, src + off * es, es);
        for (size_t d = t->rank; d-- > 0;) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

/* Whether strides are those of C order (or Fortran order), ignoring axes of length 1. */
static int contiguous(const roteq_pk_tensor *t, int fortran)
{
    uint64_t expect = 1;
    for (size_t k = 0; k < t->rank; k++) {
        size_t d = fortran ? k : t->rank - 1 - k;
        if (t->shape[d] != 1 && t->stride[d] != expect)
            return 0;
        expect *= t->shape[d];
    }
    return 1;
}

int roteq_torch_archive_tensor(roteq_torch_archive *a, const roteq_pk *tensor, const char *tname,
                               roteq_analysis_tensor_info *info, const unsigned char **data)
{
    memset(info, 0, sizeof *info);
    *data = NULL;
    if (tensor == NULL || tensor->kind != ROTEQ_PK_TENSOR)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: '%s' is not a tensor", a->name, tname);
    const roteq_pk_tensor *t = tensor->u.tensor;
    const roteq_pk_storage *s = t->storage->u.storage;
    info->dtype = s->dtype;
    info->rank = t->rank;
    memcpy(info->shape, t->shape, sizeof info->shape);
    info->nbytes = t->numel * s->esize; /* no overflow: the view lies inside the storage */
    if (t->numel == 0)
        return ROTEQ_OK;
    const unsigned char *base;
    int st = storage_data(a, s, tname, &base);
    if (st)
        return st;
    if (contiguous(t, 0) || (t->rank >= 2 && contiguous(t, 1))) {
        info->fortran_order = !contiguous(t, 0);
        *data = base + t->offset * s->esize;
        return ROTEQ_OK;
    }
    unsigned char **o = realloc(a->owned, (a->nowned + 1) * sizeof *o);
    if (o == NULL)
        return oom();
    a->owned = o;
    unsigned char *buf = malloc(info->nbytes);
    if (buf == NULL)
        return oom();
    gather(t, s->esize, base, buf);
    a->owned[a->nowned++] = buf;
    *data = buf;
    return ROTEQ_OK;
}

int roteq_torch_archive_model(const roteq_torch_archive *a, const char *key, const roteq_pk **dict)
{
    const roteq_pk *root = roteq_torch_archive_root(a);
    *dict = NULL;
    if (root->kind != ROTEQ_PK_DICT)
        return roteq_error_set(ROTEQ_EFORMAT, "%s: holds no dict of tensors (a state_dict)",
                               a->name);
    if (key) {
        const roteq_pk *d = roteq_pk_get(root, key);
        if (d == NULL || d->kind != ROTEQ_PK_DICT)
            return roteq_error_set(ROTEQ_EFORMAT, "%s: no dict under the key '%s' (--key)", a->name,
                                   key);
        *dict = d;
        return ROTEQ_OK;
    }
    if (roteq_pk_has_tensors(root)) {
        *dict = root;
        return ROTEQ_OK;
    }
    static const char *const keys[] = {"model", "state_dict", "model_state_dict"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const roteq_pk *d = roteq_pk_get(root, keys[i]);
        if (roteq_pk_has_tensors(d)) {
            *dict = d;
            return ROTEQ_OK;
        }
    }
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < root->u.dict.n && used + 1 < sizeof list; i++) {
        const roteq_pk *k = root->u.dict.keys[i];
        if (k->kind == ROTEQ_PK_STR)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s'%.40s'", used ? ", " : "",
                                     k->u.str.s);
        if (used >= sizeof list)
            used = sizeof list - 1;
    }
    return roteq_error_set(ROTEQ_EFORMAT,
                           "%s: no model state_dict at the top level or under 'model', "
                           "'state_dict', 'model_state_dict' (keys: %s); name it with --key",
                           a->name, used ? list : "none");
}

int roteq_torch_archive_tensors(roteq_torch_archive *a, const char *key,
                                int (*want)(const roteq_analysis_tensor_info *info, void *ctx),
                                void *ctx, roteq_analysis_tensor_info **out,
                                const unsigned char ***data, size_t *count)
{
    *out = NULL;
    *data = NULL;
    *count = 0;
    const roteq_pk *d;
    int st = roteq_torch_archive_model(a, key, &d);
    if (st)
        return st;
    roteq_analysis_tensor_info *t = calloc(d->u.dict.n + 1, sizeof *t);
    const unsigned char **p = calloc(d->u.dict.n + 1, sizeof *p);
    size_t n = 0;
    if (t == NULL || p == NULL)
        st = oom();
    /* Published as they grow: a caller whose read of a mapping faults (the file shrank; the
     * snapshot reader's SIGBUS guard jumps out of this loop) frees what was built so far. */
    *out = t;
    *data = p;
    for (size_t i = 0; !st && i < d->u.dict.n; i++) {
        const roteq_pk *k = d->u.dict.keys[i], *v = d->u.dict.vals[i];
        if (k->kind != ROTEQ_PK_STR || v->kind != ROTEQ_PK_TENSOR)
            continue; /* _metadata, _extra_state and other non-tensors */
        const roteq_pk_tensor *pt = v->u.tensor;
        roteq_analysis_tensor_info *ti = &t[n];
        ti->dtype = pt->storage->u.storage->dtype;
        ti->rank = pt->rank;
        memcpy(ti->shape, pt->shape, sizeof ti->shape);
        ti->nbytes = pt->numel * pt->storage->u.storage->esize;
        if ((ti->name = strdup(k->u.str.s)) == NULL) {
            st = oom();
            break;
        }
        *count = ++n;
        if (want == NULL || want(ti, ctx)) {
            /* read into a copy: the name stays in t[] should the read not return */
            roteq_analysis_tensor_info got;
            st = roteq_torch_archive_tensor(a, v, ti->name, &got, &p[n - 1]);
            if (!st) {
                got.name = ti->name;
                *ti = got;
            }
        }
    }
    if (st) {
        roteq_analysis_tensor_infos_free(t, n);
        free(p);
        *out = NULL;
        *data = NULL;
        *count = 0;
    }
    return st;
}
