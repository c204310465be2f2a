/* hf.c - what trainers leave beside their weights, told apart by name: HF Trainer's output folder
 * (checkpoint-N/ with model.safetensors or pytorch_model.bin shards and their index, optimizer.pt,
 * scheduler.pt, rng_state.pth, trainer_state.json, config.json, the final model at the root), and
 * the formats roteq does not read (TensorFlow, orbax/zarr, torch.distributed.checkpoint), which
 * are named in the error instead of a bare "no snapshots". */
#include "roteq_util.h"
#include "torch_internal.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

int roteq_ckpt_torch_file(const char *name)
{
    return suffix(name, ".pt") || suffix(name, ".pth") || suffix(name, ".bin") ||
           suffix(name, ".ckpt"); /* Lightning's .ckpt is a torch.save file */
}

int roteq_ckpt_aux_file(const char *name)
{
    static const char *const aux[] = {"optimizer.pt",      "scheduler.pt",  "scaler.pt",
                                      "training_args.bin", "optimizer.bin", "scheduler.bin"};
    for (size_t i = 0; i < sizeof aux / sizeof aux[0]; i++)
        if (strcmp(name, aux[i]) == 0)
            return 1;
    return strncmp(name, "rng_state", 9) == 0 && suffix(name, ".pth");
}

/* model.safetensors, pytorch_model.bin, or their shards NAME-00001-of-00003.EXT. */
int roteq_ckpt_hf_model_file(const char *name)
{
    static const char *const stems[] = {"model", "pytorch_model"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(stems[i]);
        if (strncmp(name, stems[i], n) != 0)
            continue;
        const char *p = name + n;
        if (strcmp(p, i ? ".bin" : ".safetensors") == 0)
            return 1;
        unsigned a, b;
        char ext[16];
        int used = 0;
        if (sscanf(p, "-%5u-of-%5u.%15s%n", &a, &b, ext, &used) == 3 && p[used] == '\0' &&
            strcmp(ext, i ? "bin" : "safetensors") == 0)
            return 1;
    }
    return 0;
}

static json_t *load_json(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p == NULL)
        return NULL;
    snprintf(p, n, "%s/%s", dir, name);
    json_t *j = json_load_file(p, 0, NULL);
    free(p);
    return j;
}

int roteq_ckpt_trainer_step(const char *dir, long *step)
{
    json_t *j = load_json(dir, "trainer_state.json");
    json_t *g = json_object_get(j, "global_step");
    int ok = json_is_integer(g) && json_integer_value(g) >= 0;
    if (ok)
        *step = (long)json_integer_value(g);
    json_decref(j);
    return ok;
}

unsigned roteq_ckpt_conventions(const char *dir)
{
    static const char *const gpt2[] = {"gpt2", "openai-gpt", "imagegpt", "decision_transformer"};
    json_t *j = load_json(dir, "config.json");
    const char *t = json_string_value(json_object_get(j, "model_type"));
    unsigned c = ROTEQ_AXIS_FLAX;
    for (size_t i = 0; t && i < sizeof gpt2 / sizeof gpt2[0]; i++)
        if (strcmp(t, gpt2[i]) == 0)
            c |= ROTEQ_AXIS_GPT2;
    json_decref(j);
    return c;
}

int roteq_ckpt_check_index(const char *dir)
{
    static const char *const idx[] = {"model.safetensors.index.json",
                                      "pytorch_model.bin.index.json"};
    for (size_t i = 0; i < 2; i++) {
        json_t *j = load_json(dir, idx[i]);
        if (j == NULL)
            continue;
        json_t *map = json_object_get(j, "weight_map"), *v;
        const char *k;
        int st = ROTEQ_OK;
        json_object_foreach(map, k, v)
        {
            const char *f = json_string_value(v);
            if (f == NULL || strchr(f, '/'))
                continue;
            char path[4096];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dir, f);
            if (stat(path, &sb) != 0) {
                st = roteq_error_set(ROTEQ_EFORMAT, "%s/%s: shard '%s' (of tensor '%s') is missing",
                                     dir, idx[i], f, k);
                break;
            }
        }
        json_decref(j);
        if (st)
            return st;
    }
    return ROTEQ_OK;
}

/* A file or folder name of a format roteq does not read, described; NULL otherwise. */
static const char *unsupported_name(const char *name)
{
    static const struct {
        const char *pat;
        int is_suffix;
        const char *what;
    } t[] = {
        {".distcp", 1,
         "torch.distributed.checkpoint (DCP .distcp shards): convert with "
         "torch.distributed.checkpoint.format_utils.dcp_to_torch_save"},
        {"saved_model.pb", 0, "a TensorFlow SavedModel"},
        {".h5", 1, "a Keras/TensorFlow HDF5 file"},
        {".keras", 1, "a Keras archive"},
        {".index", 1, "a TensorFlow checkpoint (.index + .data-*)"},
        {"_CHECKPOINT_METADATA", 0, "an orbax checkpoint"},
        {"_METADATA", 0, "an orbax/tensorstore checkpoint"},
        {"manifest.ocdbt", 0, "an orbax OCDBT checkpoint"},
        {".zarray", 0, "a zarr array"},
        {".msgpack", 1, "a Flax msgpack checkpoint"},
        {"dynamics.pkl", 0,
         "epfml/REQ's DynamicsLogger log (dynamics.pkl): convert it to a trace "
         "with the script in docs/TRAINERS.md section 7"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].is_suffix ? suffix(name, t[i].pat) : strcmp(name, t[i].pat) == 0)
            return t[i].what;
    return NULL;
}

const char *roteq_ckpt_unsupported(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    const char *what = NULL;
    struct dirent *de;
    while (what == NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' && strcmp(de->d_name, ".zarray") != 0)
            continue;
        what = unsupported_name(de->d_name);
        if (what == NULL && strcmp(de->d_name, "..") != 0) { /* one level down */
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
            DIR *s = opendir(sub);
            struct dirent *se;
            while (s && what == NULL && (se = readdir(s)) != NULL)
                what = unsupported_name(se->d_name);
            if (s)
                closedir(s);
        }
    }
    closedir(d);
    return what;
}

int roteq_ckpt_best_checkpoint(const char *dir)
{
    json_t *j = load_json(dir, "trainer_state.json");
    int best = json_is_string(json_object_get(j, "best_model_checkpoint"));
    json_decref(j);
    return best;
}

/* log_history's (step, learning_rate) pairs in step order, into malloc'd arrays. */
static size_t lr_history(json_t *state, long **steps, double **lrs)
{
    json_t *h = json_object_get(state, "log_history"), *e;
    size_t i, n = 0, cap = json_array_size(h);
    *steps = malloc((cap ? cap : 1) * sizeof **steps);
    *lrs = malloc((cap ? cap : 1) * sizeof **lrs);
    if (*steps == NULL || *lrs == NULL)
        return 0;
    json_array_foreach(h, i, e)
    {
        json_t *st = json_object_get(e, "step"), *lr = json_object_get(e, "learning_rate");
        if (!json_is_integer(st) || !json_is_number(lr) || !(json_number_value(lr) >= 0))
            continue;
        long s = (long)json_integer_value(st);
        if (n && s <= (*steps)[n - 1])
            continue; /* a step logged again (or out of order): the first one stands */
        (*steps)[n] = s;
        (*lrs)[n++] = json_number_value(lr);
    }
    return n;
}

int roteq_ckpt_logged_lr(const char *dir, const char *sub, const long *steps, double *lr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lr[i] = (double)NAN;
    json_t *j = load_json(dir, "trainer_state.json");
    if (j == NULL && sub) {
        size_t len = strlen(dir) + strlen(sub) + 2;
        char *p = malloc(len);
        if (p) {
            snprintf(p, len, "%s/%s", dir, sub);
            j = load_json(p, "trainer_state.json");
            free(p);
        }
    }
    long *ls = NULL;
    double *lv = NULL;
    size_t m = j ? lr_history(j, &ls, &lv) : 0;
    for (size_t i = 0; i < n && m; i++) {
        size_t k = 0;
        while (k < m && ls[k] < steps[i])
            k++;
        if (k == m)
            lr[i] = lv[m - 1];
        else if (ls[k] == steps[i] || k == 0)
            lr[i] = lv[k];
        else {
            double t = (double)(steps[i] - ls[k - 1]) / (double)(ls[k] - ls[k - 1]);
            lr[i] = lv[k - 1] + t * (lv[k] - lv[k - 1]);
        }
    }
    free(ls);
    free(lv);
    json_decref(j);
    return m > 0;
}
