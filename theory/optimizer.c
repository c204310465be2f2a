/* optimizer.c - the hyperparameter table, the list of optimizer types (their definitions are in
 * the family files, families/<family>.c; the list in families/roteq_families.def), lookup by
 * name and validation. */
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

const roteq_optimizer_type *const roteq_optimizers[ROTEQ_OPT_COUNT + 1] = {
#define ROTEQ_OPTIMIZER(family, name) &roteq_##name,
#include "roteq_families.def"
#undef ROTEQ_OPTIMIZER
    NULL,
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
