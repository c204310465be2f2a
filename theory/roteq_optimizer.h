/* roteq_optimizer.h - the optimizer types roteq knows: for each, its name, which
 * hyperparameters apply, their defaults (PyTorch's), how they are validated, and the family
 * (families/<family>.c) whose hooks predict it (theory/) and step it (sim/).
 *
 * The types are defined in the family files and listed once, in families/roteq_families.def;
 * drivers iterate roteq_optimizers[] and call the family hooks, never naming an optimizer.
 * Adding one: families/README.md. */
#ifndef ROTEQ_OPTIMIZER_H
#define ROTEQ_OPTIMIZER_H

#include <stddef.h>

/* ROTEQ_OPT_INDEX_<name>: the position of each optimizer in roteq_optimizers[] (the order of
 * families/roteq_families.def); ROTEQ_OPT_COUNT of them. Not an identity to switch on. */
enum {
#define ROTEQ_OPTIMIZER(family, name) ROTEQ_OPT_INDEX_##name,
#include "roteq_families.def"
#undef ROTEQ_OPTIMIZER
    ROTEQ_OPT_COUNT
};

typedef enum {
    ROTEQ_HP_LR,
    ROTEQ_HP_WEIGHT_DECAY,
    ROTEQ_HP_BETA1,
    ROTEQ_HP_BETA2,
    ROTEQ_HP_EPS,
    ROTEQ_HP_MOMENTUM,
    ROTEQ_HP_DAMPENING,
    ROTEQ_HP_NESTEROV,
    ROTEQ_HP_UPDATE_NORM_DECAY, /* RV: decay of the running RMS of the update size */
    ROTEQ_HP_COUNT
} roteq_hparam_id;

#define ROTEQ_HP_BIT(id) (1u << (id))

/* All hyperparameters as doubles so that generic code (CLI flags, JSON metadata, sweep grids)
 * can address them through roteq_hparam_desc; `nesterov` is 0 or 1. */
typedef struct {
    double lr;
    double weight_decay;
    double beta1, beta2, eps;
    double momentum, dampening, nesterov;
    double update_norm_decay;
} roteq_hparams;

typedef enum { ROTEQ_HPKIND_REAL, ROTEQ_HPKIND_FLAG } roteq_hparam_kind;

typedef struct {
    roteq_hparam_id id;
    const char *key;  /* JSON / CSV / grid key: "weight_decay" */
    const char *flag; /* CLI long option without dashes: "weight-decay" */
    const char *help;
    size_t offset; /* offsetof(roteq_hparams, field) */
    roteq_hparam_kind kind;
} roteq_hparam_desc;

extern const roteq_hparam_desc roteq_hparam_descs[ROTEQ_HP_COUNT];

/* Look a hyperparameter up by JSON key or CLI flag name ("weight_decay" or "weight-decay"). */
const roteq_hparam_desc *roteq_hparam_lookup(const char *name);
double roteq_hparams_get(const roteq_hparams *hp, roteq_hparam_id id);
void roteq_hparams_set(roteq_hparams *hp, roteq_hparam_id id, double value);

enum {
    ROTEQ_OPTF_DECOUPLED = 1u << 0,  /* weight decay applied outside the gradient */
    ROTEQ_OPTF_ROTATIONAL = 1u << 1, /* a rotational variant (RV-*) */
    ROTEQ_OPTF_SIGN = 1u << 2,       /* sign-based update (Lion family) */
    ROTEQ_OPTF_ADAPTIVE = 1u << 3,   /* Adam-style second-moment normaliser */
    ROTEQ_OPTF_MOMENTUM = 1u << 4,   /* SGD-style momentum buffer */
};

/* What a unit of the optimizer's update acts on: each coordinate on its own (SGD, Adam, Lion),
 * a whole neuron (the rotational variants), or a whole matrix (Muon). */
typedef enum { ROTEQ_GRAN_COORDINATE, ROTEQ_GRAN_NEURON, ROTEQ_GRAN_MATRIX } roteq_granularity;

/* Scales a prediction needs (roteq_setting): without them the norm (or the angle) is NAN. */
enum {
    ROTEQ_NEED_DIM = 1u << 0,       /* C */
    ROTEQ_NEED_GRAD_NORM = 1u << 1, /* RMS of ||g~|| */
    ROTEQ_NEED_SHAPE = 1u << 2,     /* rows x cols of the matrix (matrix granularity) */
};

/* The family's data and theory hooks (theory/roteq_theory.h); the sim hooks are in sim/, keyed by
 * the optimizer type pointer (sim/family_sim.h). */
typedef struct roteq_family roteq_family;

typedef struct roteq_optimizer_type {
    const char *name;        /* CLI / JSON name: "adamw" */
    const char *description; /* one line, for --list and usage */
    const char *formula;     /* the prediction as text, for `roteq theory --list` */
    unsigned hparams;        /* ROTEQ_HP_BIT mask of the hyperparameters that apply */
    unsigned required;       /* mask of those that have no default and must be given */
    roteq_hparams defaults;
    unsigned flags; /* ROTEQ_OPTF_* */
    /* RV-*: the optimizer whose equilibrium it targets, and with which prediction; else itself */
    const struct roteq_optimizer_type *base;
    int base_prediction; /* a roteq_prediction (roteq_theory.h) */
    const roteq_family *family;
    unsigned needs;        /* ROTEQ_NEED_* for the equilibrium norm */
    int angle_needs_scale; /* 1: the angle too needs `needs` (no scale-free form: Adam+L2) */
    int predictions;       /* distinct predictions worth showing (Lion: best, paper, plain) */
    /* Where `nesterov` names a variant rather than a hyperparameter (torch.optim.SGD's flag: sgdm
     * with nesterov=True is the nesterov optimizer): the optimizer nesterov=True selects, itself
     * when the flag is implied (nesterov); NULL where nesterov is an ordinary hyperparameter. */
    const struct roteq_optimizer_type *nesterov_variant;
    /* Typical hyperparameters for benchmarks (the work per step does not depend on them):
     * lr (NAN: the default) and weight decay. */
    double example_lr, example_wd;
} roteq_optimizer_type;

#define ROTEQ_OPTIMIZER(family, name) extern const roteq_optimizer_type roteq_##name;
#include "roteq_families.def"
#undef ROTEQ_OPTIMIZER

/* Every optimizer, in the order of families/roteq_families.def; NULL-terminated. */
extern const roteq_optimizer_type *const roteq_optimizers[ROTEQ_OPT_COUNT + 1];

/* NULL (message "unknown optimizer 'x' (known: sgd, sgdm, ...)") when the name is not known. */
const roteq_optimizer_type *roteq_optimizer_lookup(const char *name);

/* A hyperparameter set holding the optimizer's defaults; required ones are NAN. */
roteq_hparams roteq_optimizer_defaults(const roteq_optimizer_type *opt);

/* Check every hyperparameter that applies to `opt`: lr and weight decay positive and given,
 * betas/momentum/dampening/update_norm_decay in [0, 1), eps >= 0, nesterov 0 or 1 and only with
 * zero dampening, and lr*weight_decay below 1 (beyond, no equilibrium exists; reported on
 * weight_decay). On failure returns ROTEQ_EINVAL, stores the offending id in *bad (if non-NULL),
 * and sets a message that does not name the flag ("must be in [0, 1), got 1.5") so that callers
 * can prefix it with their own spelling ("--beta1: " or "meta.json: beta1: "). */
int roteq_hparams_validate(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                           roteq_hparam_id *bad);

#endif
