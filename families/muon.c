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
    .model_floor = roteq_theory_floor_lr_wd,
    .matrix = &matrix,
};

#else /* ---- sim part: compiled once per instruction set (sim/meson.build) ---- */
#include "family_sim.h"
#include "roteq_sim_muon.h"

/* `roteq verify`'s Muon points (lr 0.02, weight decay 0.1): momentum 0 to 0.98, Nesterov on and
 * off, ns_steps 5 and 10, square, tall and wide shapes, and one with the iteration in bfloat16
 * as torch runs it (against the same float64 prediction); --quick three of them on small
 * ensembles. `best` is approximate (the lag law is the large-matrix limit), so the rows are
 * APPROX with their measured error; theory/README.md ("Muon") has the full measured table. */
#define F64  ROTEQ_SIM_NS_FLOAT64
#define BF16 ROTEQ_SIM_NS_BFLOAT16
static const roteq_sim_matrix_point verify_full[] = {
    {64, 64, 0.0, 1, 5, F64},   {64, 64, 0.9, 1, 5, F64},   {64, 64, 0.95, 1, 5, F64},
    {64, 64, 0.95, 0, 5, F64},  {64, 64, 0.95, 1, 10, F64}, {128, 64, 0.95, 1, 5, F64},
    {64, 256, 0.95, 1, 5, F64}, {64, 256, 0.98, 0, 5, F64}, {64, 64, 0.95, 1, 5, BF16},
};
static const roteq_sim_matrix_point verify_quick[] = {
    {64, 64, 0.95, 1, 5, F64}, {32, 128, 0.9, 0, 5, F64}, {64, 64, 0.95, 1, 5, BF16}};

/* No per-neuron rule (the engine refuses a matrix family, roteq_sim_config_validate): the
 * matrices run in sim/muon.c's engine (CBLAS), which the drivers reach through this entry. */
static const roteq_sim_matrix sim = {
    .config_init = roteq_sim_muon_config_init,
    .config_validate = roteq_sim_muon_config_validate,
    .run = roteq_sim_muon_run,
    .result_free = roteq_sim_muon_result_free,
    .bench_ns = roteq_sim_muon_bench_ns,
    .bench_dgemm = roteq_sim_muon_bench_dgemm,
    .bench_walk = roteq_sim_muon_bench_walk,
    .verify_points = verify_full,
    .nverify_points = sizeof verify_full / sizeof verify_full[0],
    .verify_quick_points = verify_quick,
    .nverify_quick_points = sizeof verify_quick / sizeof verify_quick[0],
    .verify_lr = 0.02,
    .verify_wd = 0.1,
    .verify_matrices = {8, 4},
    .verify_steps = {3000, 1200},
};
ROTEQ_SIM_MATRIX_RULE(muon, &sim);
#endif
