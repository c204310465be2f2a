/* optimizer.c - the optimizer table (names, hyperparameters, PyTorch defaults) and validation.
 * sim/ indexes its update rules by the same roteq_opt_id; see roteq_optimizer.h. */
#include "roteq_optimizer.h"
#include "roteq_util.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define HP(id, key, flag, field, kind, help)                                                       \
    [id] = {id, key, flag, help, offsetof(roteq_hparams, field), kind}

const roteq_hparam_desc roteq_hparam_descs[ROTEQ_HP_COUNT] = {
    HP(ROTEQ_HP_LR, "lr", "lr", lr, ROTEQ_HPKIND_REAL, "learning rate eta"),
    HP(ROTEQ_HP_WEIGHT_DECAY, "weight_decay", "weight-decay", weight_decay, ROTEQ_HPKIND_REAL,
       "weight decay lambda"),
    HP(ROTEQ_HP_BETA1, "beta1", "beta1", beta1, ROTEQ_HPKIND_REAL, "first-moment decay beta1"),
    HP(ROTEQ_HP_BETA2, "beta2", "beta2", beta2, ROTEQ_HPKIND_REAL, "second-moment decay beta2"),
    HP(ROTEQ_HP_EPS, "eps", "eps", eps, ROTEQ_HPKIND_REAL, "Adam epsilon"),
    HP(ROTEQ_HP_MOMENTUM, "momentum", "momentum", momentum, ROTEQ_HPKIND_REAL,
       "SGD momentum alpha"),
    HP(ROTEQ_HP_DAMPENING, "dampening", "dampening", dampening, ROTEQ_HPKIND_REAL,
       "SGD momentum dampening"),
    HP(ROTEQ_HP_NESTEROV, "nesterov", "nesterov", nesterov, ROTEQ_HPKIND_FLAG, "Nesterov momentum"),
    HP(ROTEQ_HP_UPDATE_NORM_DECAY, "update_norm_decay", "update-norm-decay", update_norm_decay,
       ROTEQ_HPKIND_REAL, "RV: decay of the running RMS of the update size"),
};

#define B(x)    ROTEQ_HP_BIT(ROTEQ_HP_##x)
#define SGD_HP  (B(LR) | B(WEIGHT_DECAY) | B(MOMENTUM) | B(DAMPENING) | B(NESTEROV))
#define ADAM_HP (B(LR) | B(WEIGHT_DECAY) | B(BETA1) | B(BETA2) | B(EPS))
#define LION_HP (B(LR) | B(WEIGHT_DECAY) | B(BETA1) | B(BETA2))
#define RV      B(UPDATE_NORM_DECAY)

/* Defaults are PyTorch's (torch.optim 1.13) and Lion's published code (lr 1e-4, betas 0.9/0.99).
 * Where PyTorch has no default (SGD's lr) or a default of zero weight decay, the value is
 * required: a zero weight decay has no equilibrium. sgdm defaults to momentum 0.9, the value
 * the paper and most recipes use (PyTorch's 0 would make it plain SGD). The RV update-size
 * decay 0.9 is update_norm_decay_factor in the paper's published code. */
#define NONE ((double)NAN)
const roteq_optimizer_type roteq_sgd = {"sgd",
                                        ROTEQ_OPT_SGD,
                                        "SGD, weight decay as L2 in the gradient (torch.optim.SGD)",
                                        B(LR) | B(WEIGHT_DECAY),
                                        B(LR) | B(WEIGHT_DECAY),
                                        {.lr = NONE, .weight_decay = NONE},
                                        0,
                                        ROTEQ_OPT_SGD};
const roteq_optimizer_type roteq_sgdm = {
    "sgdm",
    ROTEQ_OPT_SGDM,
    "SGD with heavy-ball momentum and optional dampening (torch.optim.SGD)",
    SGD_HP,
    B(LR) | B(WEIGHT_DECAY),
    {.lr = NONE, .weight_decay = NONE, .momentum = 0.9},
    ROTEQ_OPTF_MOMENTUM,
    ROTEQ_OPT_SGDM};
const roteq_optimizer_type roteq_nesterov = {
    "nesterov",
    ROTEQ_OPT_NESTEROV,
    "SGD with Nesterov momentum (torch.optim.SGD, nesterov=True)",
    B(LR) | B(WEIGHT_DECAY) | B(MOMENTUM),
    B(LR) | B(WEIGHT_DECAY),
    {.lr = NONE, .weight_decay = NONE, .momentum = 0.9, .nesterov = 1},
    ROTEQ_OPTF_MOMENTUM,
    ROTEQ_OPT_NESTEROV};
const roteq_optimizer_type roteq_adam_l2 = {
    "adam_l2",
    ROTEQ_OPT_ADAM_L2,
    "Adam with L2 weight decay in the gradient (torch.optim.Adam)",
    ADAM_HP,
    B(WEIGHT_DECAY),
    {.lr = 1e-3, .weight_decay = NONE, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
    ROTEQ_OPTF_ADAPTIVE,
    ROTEQ_OPT_ADAM_L2};
const roteq_optimizer_type roteq_adamw = {
    "adamw",
    ROTEQ_OPT_ADAMW,
    "AdamW, decoupled weight decay (torch.optim.AdamW)",
    ADAM_HP,
    0,
    {.lr = 1e-3, .weight_decay = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
    ROTEQ_OPTF_DECOUPLED | ROTEQ_OPTF_ADAPTIVE,
    ROTEQ_OPT_ADAMW};
const roteq_optimizer_type roteq_lion = {
    "lion",
    ROTEQ_OPT_LION,
    "Lion, sign update with decoupled weight decay (Chen et al. 2023)",
    LION_HP,
    B(WEIGHT_DECAY),
    {.lr = 1e-4, .weight_decay = NONE, .beta1 = 0.9, .beta2 = 0.99},
    ROTEQ_OPTF_DECOUPLED | ROTEQ_OPTF_SIGN,
    ROTEQ_OPT_LION};
const roteq_optimizer_type roteq_rv_adamw = {"rv_adamw",
                                             ROTEQ_OPT_RV_ADAMW,
                                             "rotational AdamW: equilibrium rotation from step 1",
                                             ADAM_HP | RV,
                                             0,
                                             {.lr = 1e-3,
                                              .weight_decay = 1e-2,
                                              .beta1 = 0.9,
                                              .beta2 = 0.999,
                                              .eps = 1e-8,
                                              .update_norm_decay = 0.9},
                                             ROTEQ_OPTF_ROTATIONAL | ROTEQ_OPTF_ADAPTIVE,
                                             ROTEQ_OPT_ADAMW};
const roteq_optimizer_type roteq_rv_sgdm = {
    "rv_sgdm",
    ROTEQ_OPT_RV_SGDM,
    "rotational SGD with momentum: equilibrium rotation from step 1",
    SGD_HP | RV,
    B(LR) | B(WEIGHT_DECAY),
    {.lr = NONE, .weight_decay = NONE, .momentum = 0.9, .update_norm_decay = 0.9},
    ROTEQ_OPTF_ROTATIONAL | ROTEQ_OPTF_MOMENTUM,
    ROTEQ_OPT_SGDM};
const roteq_optimizer_type roteq_rv_lion = {
    "rv_lion",
    ROTEQ_OPT_RV_LION,
    "rotational Lion: equilibrium rotation from step 1",
    LION_HP | RV,
    B(WEIGHT_DECAY),
    {.lr = 1e-4, .weight_decay = NONE, .beta1 = 0.9, .beta2 = 0.99, .update_norm_decay = 0.9},
    ROTEQ_OPTF_ROTATIONAL | ROTEQ_OPTF_SIGN,
    ROTEQ_OPT_LION};

const roteq_optimizer_type *const roteq_optimizers[ROTEQ_OPT_COUNT] = {
    [ROTEQ_OPT_SGD] = &roteq_sgd,           [ROTEQ_OPT_SGDM] = &roteq_sgdm,
    [ROTEQ_OPT_NESTEROV] = &roteq_nesterov, [ROTEQ_OPT_ADAM_L2] = &roteq_adam_l2,
    [ROTEQ_OPT_ADAMW] = &roteq_adamw,       [ROTEQ_OPT_LION] = &roteq_lion,
    [ROTEQ_OPT_RV_ADAMW] = &roteq_rv_adamw, [ROTEQ_OPT_RV_SGDM] = &roteq_rv_sgdm,
    [ROTEQ_OPT_RV_LION] = &roteq_rv_lion,
};

const roteq_optimizer_type *roteq_optimizer_lookup(const char *name)
{
    for (int i = 0; i < ROTEQ_OPT_COUNT; i++)
        if (name != NULL && strcmp(roteq_optimizers[i]->name, name) == 0)
            return roteq_optimizers[i];
    char known[256] = "";
    size_t len = 0;
    for (int i = 0; i < ROTEQ_OPT_COUNT && len < sizeof known; i++)
        len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "",
                                roteq_optimizers[i]->name);
    roteq_error_set(ROTEQ_ENOTFOUND, "unknown optimizer '%s' (known: %s)", name ? name : "", known);
    return NULL;
}

const roteq_hparam_desc *roteq_hparam_lookup(const char *name)
{
    for (int i = 0; i < ROTEQ_HP_COUNT; i++)
        if (strcmp(roteq_hparam_descs[i].key, name) == 0 ||
            strcmp(roteq_hparam_descs[i].flag, name) == 0)
            return &roteq_hparam_descs[i];
    return NULL;
}

double roteq_hparams_get(const roteq_hparams *hp, roteq_hparam_id id)
{
    double v;
    memcpy(&v, (const char *)hp + roteq_hparam_descs[id].offset, sizeof v);
    return v;
}

void roteq_hparams_set(roteq_hparams *hp, roteq_hparam_id id, double value)
{
    memcpy((char *)hp + roteq_hparam_descs[id].offset, &value, sizeof value);
}

roteq_hparams roteq_optimizer_defaults(const roteq_optimizer_type *opt)
{
    return opt->defaults;
}

static int in_unit(double x)
{
    return x >= 0.0 && x < 1.0;
}

int roteq_hparams_validate(const roteq_optimizer_type *opt, const roteq_hparams *hp,
                           roteq_hparam_id *bad)
{
    for (int i = 0; i < ROTEQ_HP_COUNT; i++) {
        if (!(opt->hparams & ROTEQ_HP_BIT(i)))
            continue;
        double v = roteq_hparams_get(hp, (roteq_hparam_id)i);
        const char *problem = NULL;
        if (isnan(v))
            problem = "is required";
        else if (!isfinite(v))
            problem = "must be finite";
        else {
            switch ((roteq_hparam_id)i) {
            case ROTEQ_HP_LR:
            case ROTEQ_HP_WEIGHT_DECAY:
                if (!(v > 0.0))
                    problem = "must be positive";
                break;
            case ROTEQ_HP_EPS:
                if (v < 0.0)
                    problem = "must be non-negative";
                break;
            case ROTEQ_HP_NESTEROV:
                if (v != 0.0 && v != 1.0)
                    problem = "must be 0 or 1";
                break;
            default:
                if (!in_unit(v))
                    problem = "must be in [0, 1)";
                break;
            }
        }
        if (problem == NULL && i == ROTEQ_HP_DAMPENING && hp->nesterov != 0.0 && v != 0.0 &&
            (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV)))
            problem = "must be 0 with Nesterov momentum (as in PyTorch)";
        if (problem == NULL && i == ROTEQ_HP_MOMENTUM && hp->nesterov != 0.0 && !(v > 0.0))
            problem = "must be positive with Nesterov momentum (as in PyTorch)";
        if (problem != NULL) {
            if (bad)
                *bad = (roteq_hparam_id)i;
            if (isnan(v))
                return roteq_error_set(ROTEQ_EINVAL, "%s for %s", problem, opt->name);
            return roteq_error_set(ROTEQ_EINVAL, "%s, got %.17g", problem, v);
        }
    }
    /* One step multiplies w by 1 - lr*weight_decay (decoupled) or shrinks it by that much of
     * itself (L2 in the gradient): at 1 or more the weights are wiped out or flip sign every
     * step, and no equilibrium exists. */
    double decay = hp->lr * hp->weight_decay;
    if ((opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_LR)) &&
        (opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_WEIGHT_DECAY)) && !(decay < 1.0)) {
        if (bad)
            *bad = ROTEQ_HP_WEIGHT_DECAY;
        return roteq_error_set(ROTEQ_EINVAL,
                               "lr*weight_decay = %.17g is at least 1: each step would shrink the "
                               "weights to zero or past it, so there is no equilibrium",
                               decay);
    }
    return ROTEQ_OK;
}
