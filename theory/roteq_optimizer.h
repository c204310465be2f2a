/* roteq_optimizer.h - the one definition of every optimizer roteq knows: its name, which
 * hyperparameters apply, their defaults (PyTorch's), and how they are validated.
 *
 * theory/ computes each optimizer's equilibrium from this table; sim/ keeps a parallel table of
 * update rules indexed by the same roteq_opt_id. Adding an optimizer means one entry here, one
 * closed form in theory/, one update rule in sim/. */
#ifndef ROTEQ_OPTIMIZER_H
#define ROTEQ_OPTIMIZER_H

#include <stddef.h>

typedef enum {
    ROTEQ_OPT_SGD,      /* torch.optim.SGD, momentum 0, L2 weight decay in the gradient */
    ROTEQ_OPT_SGDM,     /* torch.optim.SGD with heavy-ball momentum (and optional dampening) */
    ROTEQ_OPT_NESTEROV, /* torch.optim.SGD(nesterov=True) */
    ROTEQ_OPT_ADAM_L2,  /* torch.optim.Adam with weight_decay (L2 through the normaliser) */
    ROTEQ_OPT_ADAMW,    /* torch.optim.AdamW (decoupled) */
    ROTEQ_OPT_LION,     /* Lion, Chen et al. 2023, Algorithm 2 (decoupled) */
    ROTEQ_OPT_RV_ADAMW, /* rotational variants, Kosson et al. 2024 */
    ROTEQ_OPT_RV_SGDM,
    ROTEQ_OPT_RV_LION,
    ROTEQ_OPT_COUNT
} roteq_opt_id;

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

typedef struct roteq_optimizer_type {
    const char *name; /* CLI / JSON name: "adamw" */
    roteq_opt_id id;
    const char *description; /* one line, for --list and usage */
    unsigned hparams;        /* ROTEQ_HP_BIT mask of the hyperparameters that apply */
    unsigned required;       /* mask of those that have no default and must be given */
    roteq_hparams defaults;
    unsigned flags;    /* ROTEQ_OPTF_* */
    roteq_opt_id base; /* for RV-*: the optimizer whose equilibrium it targets; else itself */
} roteq_optimizer_type;

extern const roteq_optimizer_type roteq_sgd, roteq_sgdm, roteq_nesterov, roteq_adam_l2, roteq_adamw,
    roteq_lion, roteq_rv_adamw, roteq_rv_sgdm, roteq_rv_lion;

/* All optimizers, indexed by roteq_opt_id. */
extern const roteq_optimizer_type *const roteq_optimizers[ROTEQ_OPT_COUNT];

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
