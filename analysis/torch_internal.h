/* torch_internal.h - reading torch.save files without executing anything: a restricted unpickler
 * (pickle.c) that builds a plain value tree, and the zip layer (torchzip.c) that finds data.pkl
 * and reads the storages it refers to. Internal to analysis/ (the snapshot and optimizer-state
 * readers use it; the fuzz targets and tests include it directly). */
#ifndef ROTEQ_TORCH_INTERNAL_H
#define ROTEQ_TORCH_INTERNAL_H

#include "roteq_analysis.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- values (pickle.c) */

typedef enum {
    ROTEQ_PK_NONE,
    ROTEQ_PK_BOOL,
    ROTEQ_PK_INT,
    ROTEQ_PK_FLOAT,
    ROTEQ_PK_STR,
    ROTEQ_PK_BYTES,
    ROTEQ_PK_TUPLE,
    ROTEQ_PK_LIST,
    ROTEQ_PK_DICT, /* dict and collections.OrderedDict */
    ROTEQ_PK_STORAGE,
    ROTEQ_PK_TENSOR,
    ROTEQ_PK_GLOBAL, /* one of the allowed callables or storage types, never called */
} roteq_pk_kind;

typedef struct roteq_pk roteq_pk;

typedef struct {
    roteq_dtype dtype; /* ROTEQ_DT_OTHER for integer, bool, complex, untyped storages */
    size_t esize;      /* bytes per element */
    const char *type;  /* "FloatStorage", ... (static) */
    char *key;         /* entry data/KEY in the archive */
    uint64_t numel;    /* elements, as the pickle declares */
} roteq_pk_storage;

typedef struct {
    const roteq_pk *storage; /* kind ROTEQ_PK_STORAGE */
    uint64_t offset;         /* in elements */
    size_t rank;
    uint64_t shape[ROTEQ_TENSOR_MAX_RANK];
    uint64_t stride[ROTEQ_TENSOR_MAX_RANK]; /* in elements */
    uint64_t numel;
} roteq_pk_tensor;

struct roteq_pk {
    roteq_pk_kind kind;
    unsigned depth; /* nesting depth of containers below (0 for a scalar) */
    int sealed;     /* inside another container: no longer changed (so no value holds itself) */
    union {
        int64_t i; /* BOOL, INT */
        double f;
        struct {
            char *s; /* NUL-terminated copy (may hold NULs inside: use len) */
            size_t len;
        } str; /* STR, BYTES */
        struct {
            roteq_pk **items;
            size_t n, cap;
        } seq; /* TUPLE, LIST */
        struct {
            roteq_pk **keys, **vals;
            size_t n, cap;
        } dict; /* insertion order; a repeated key is kept twice (lookups take the last) */
        roteq_pk_storage *storage;
        roteq_pk_tensor *tensor;
        int global;
    } u;
};

typedef struct roteq_pickle roteq_pickle; /* owns every value of one load */

/* Limits: a pickle longer than this is refused, and so is container nesting deeper than
 * ROTEQ_PICKLE_MAX_DEPTH (a recursion bomb) or a memo index beyond the input length. */
#define ROTEQ_PICKLE_MAX_BYTES ((size_t)1 << 30)
#define ROTEQ_PICKLE_MAX_DEPTH 64u

/* Unpickle `data[0..n)` (protocols 2-5 as torch.save writes them). Only plain containers,
 * scalars, strings, collections.OrderedDict, torch storages (as persistent ids
 * ('storage', TYPE, KEY, LOCATION, NUMEL)) and tensors rebuilt by torch._utils._rebuild_tensor_v2
 * or _rebuild_parameter are accepted; any other global or opcode is refused with one line
 * "NAME: global 'posix.system' is not allowed" (ROTEQ_EFORMAT). Nothing is ever called. */
int roteq_pickle_load(const char *name, const unsigned char *data, size_t n, roteq_pickle **out);
void roteq_pickle_free(roteq_pickle *p);
const roteq_pk *roteq_pickle_root(const roteq_pickle *p);

/* The value of key `key` (a string) in a dict, NULL if absent or `d` is not a dict. */
const roteq_pk *roteq_pk_get(const roteq_pk *d, const char *key);
/* A number (INT, FLOAT, BOOL, or a one-element float tensor is not handled here) as double;
 * 0 when it is one. */
int roteq_pk_number(const roteq_pk *v, double *out);
/* Whether a dict's values include at least one tensor. */
int roteq_pk_has_tensors(const roteq_pk *d);

/* ---------------------------------------------------------------- archives (torchzip.c) */

typedef struct roteq_torch_archive roteq_torch_archive;

/* Open a torch.save zip archive (torch >= 1.6) and unpickle its data.pkl. ROTEQ_EFORMAT naming the
 * file on: not a zip (truncated, corrupt), a legacy (pre-1.6) torch.save file, a TorchScript
 * archive, no or several data.pkl, big-endian storages, and whatever the unpickler refuses. */
int roteq_torch_archive_open(const char *path, roteq_torch_archive **out);
/* The same, but storages stored uncompressed are used in place from a read-only mapping of the
 * file (their CRC still checked) instead of being copied: faster, but a file that shrinks while
 * mapped raises SIGBUS on access, so the caller must read under a SIGBUS guard (snapshots.c). */
int roteq_torch_archive_open_mapped(const char *path, roteq_torch_archive **out);
/* The same over a memory image (fuzzing, tests); `data` must outlive the archive. */
int roteq_torch_archive_open_buffer(const char *name, const void *data, size_t n,
                                    roteq_torch_archive **out);
void roteq_torch_archive_free(roteq_torch_archive *a);
const roteq_pk *roteq_torch_archive_root(const roteq_torch_archive *a);
const char *roteq_torch_archive_name(const roteq_torch_archive *a);

/* Storage buffers recycled from one archive to the next (a series reads storages of the same
 * sizes snapshot after snapshot). The pool must outlive every archive that uses it. */
typedef struct roteq_torch_pool roteq_torch_pool;
roteq_torch_pool *roteq_torch_pool_alloc(void);
void roteq_torch_pool_free(roteq_torch_pool *p);
void roteq_torch_archive_set_pool(roteq_torch_archive *a, roteq_torch_pool *pool);

/* A tensor value as a row-major (or Fortran-ordered) image: its storage is read once (CRC checked,
 * size checked against NUMEL x element size; in place when mapped or a memory image and stored
 * uncompressed, else copied) and kept until the archive is freed; a strided view
 * that is neither C- nor Fortran-contiguous is gathered into its own buffer. `info->name` is left
 * NULL. ROTEQ_EFORMAT naming the file and `tname` on a missing storage, a CRC mismatch, a storage
 * whose size disagrees with its type, or a view reaching past its storage. */
int roteq_torch_archive_tensor(roteq_torch_archive *a, const roteq_pk *tensor, const char *tname,
                               roteq_analysis_tensor_info *info, const unsigned char **data);

/* The model's state dict in the archive: root[key] when `key` is given; else the root itself
 * when its values include tensors (a bare state_dict); else the first of root["model"],
 * root["state_dict"], root["model_state_dict"] that holds tensors. ROTEQ_EFORMAT listing the
 * top-level keys otherwise. */
int roteq_torch_archive_model(const roteq_torch_archive *a, const char *key, const roteq_pk **dict);
/* Every tensor of the model's state dict (roteq_torch_archive_model), in its order: *out[i] with
 * its name (malloc'd; free with roteq_analysis_tensor_infos_free) and geometry, (*data)[i] its
 * image, read only for tensors `want` accepts (NULL: all), else NULL. *data is malloc'd; the images
 * live until the archive is freed. On error all three are NULL / 0; while it runs they hold what
 * has been built, so a caller that jumps out of it (a fault reading a mapping) can free that. */
int roteq_torch_archive_tensors(roteq_torch_archive *a, const char *key,
                                int (*want)(const roteq_analysis_tensor_info *info, void *ctx),
                                void *ctx, roteq_analysis_tensor_info **out,
                                const unsigned char ***data, size_t *count);

/* ---------------------------------------------------------------- trainers' folders (hf.c) */

/* A torch.save file by its extension (.pt, .pth, .bin, Lightning's .ckpt). */
int roteq_ckpt_torch_file(const char *name);
/* A trainer's side file that holds no weights (optimizer.pt, scheduler.pt, rng_state*.pth,
 * training_args.bin, ...). */
int roteq_ckpt_aux_file(const char *name);
/* HF's model.safetensors / pytorch_model.bin or one of their NAME-0000i-of-0000n shards. */
int roteq_ckpt_hf_model_file(const char *name);
/* global_step of DIR/trainer_state.json; 0 when unknown. */
int roteq_ckpt_trainer_step(const char *dir, long *step);
/* Whether DIR/trainer_state.json names a best_model_checkpoint. */
int roteq_ckpt_best_checkpoint(const char *dir);
/* The learning rate HF's Trainer logged (trainer_state.json's log_history, "learning_rate" by
 * "step": the lr after that step's scheduler step) at each of steps[0..n-1], into lr[]: linear
 * between the logged steps around it, the nearest logged value outside them, NAN when nothing
 * is logged. From DIR/trainer_state.json, else SUB/trainer_state.json inside DIR (the last
 * checkpoint's, whose history covers the others'). 0 when no history was found. */
int roteq_ckpt_logged_lr(const char *dir, const char *sub, const long *steps, double *lr, size_t n);
/* ROTEQ_AXIS_FLAX, plus ROTEQ_AXIS_GPT2 when DIR/config.json names a GPT-2-type model. */
unsigned roteq_ckpt_conventions(const char *dir);
/* Every shard an *.index.json in DIR lists exists (ROTEQ_EFORMAT naming the first missing). */
int roteq_ckpt_check_index(const char *dir);
/* A description of a format roteq does not read found in DIR or one level down, else NULL. */
const char *roteq_ckpt_unsupported(const char *dir);

#endif
