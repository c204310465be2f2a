/* muon.c - the Muon family (momentum orthogonalised by a Newton-Schulz iteration, decoupled
 * weight decay; torch.optim.Muon, PyTorch 2.9). Matrix granularity: one update couples every row
 * of a weight matrix, so the prediction needs the shape, and the per-neuron hooks (hp, C, G)
 * cannot carry it; the family predicts through its matrix hooks (roteq_matrix_hooks), which are
 * theory/muon.c's functions. Derivations: theory/README.md ("Muon").
 *
 * Theory part without ROTEQ_KERNEL_SUFFIX, sim part with it (families/README.md). */
#ifndef ROTEQ_KERNEL_SUFFIX
#include "theory_internal.h"

#include <math.h>

#define B(x) ROTEQ_HP_BIT(ROTEQ_HP_##x)

extern const roteq_family roteq_family_muon;

/* torch.optim.Muon's defaults (roteq_muon_defaults): lr 1e-3, weight decay 0.1, momentum 0.95,
 * Nesterov. */
const roteq_optimizer_type roteq_muon = {
    .name = "muon",
    .description =
        "Muon, orthogonalised momentum per weight matrix (torch.optim.Muon); needs --shape",
    .formula = ROTEQ_MUON_FORMULA,
    .hparams = B(LR) | B(WEIGHT_DECAY) | B(MOMENTUM) | B(NESTEROV),
    .defaults = {.lr = 1e-3, .weight_decay = 0.1, .momentum = 0.95, .nesterov = 1},
    .flags = ROTEQ_OPTF_DECOUPLED | ROTEQ_OPTF_MOMENTUM,
    .base = &roteq_muon,
    .family = &roteq_family_muon,
    .needs = ROTEQ_NEED_SHAPE,
    .predictions = ROTEQ_MUON_PRED_COUNT,
    .example_lr = 0.02,
    .example_wd = 0.1,
};

static const roteq_matrix_hparam extra[] = {
    {"ns_steps", "5"},
    {"adjust_lr", "\"original\""},
};

static const roteq_matrix_hooks matrix = {
    .extra = extra,
    .nextra = (int)(sizeof extra / sizeof extra[0]),
    .defaults = roteq_muon_defaults,
    .validate = roteq_muon_validate,
    .equilibrium = roteq_muon_equilibrium_of,
    .transient_alloc = roteq_muon_transient_alloc,
    .transient_free = roteq_muon_transient_free,
    .transient_step = roteq_muon_transient_step,
};

const roteq_family roteq_family_muon = {
    .name = "muon",
    .granularity = ROTEQ_GRAN_MATRIX,
    .matrix = &matrix,
};

#else /* ---- sim part: compiled once per instruction set (sim/meson.build) ---- */
#include "family_sim.h"

/* No per-neuron rule: the engine refuses a matrix family (roteq_sim_config_validate) and its
 * matrices run in sim/muon.c's engine (roteq_sim_muon_run, CBLAS). The entry keeps the rule table
 * complete, one per listed optimizer. */
ROTEQ_SIM_RULE(muon, 0, 0, roteq_sim_init_zero, NULL, NULL, NULL);
#endif
