/* plots_fixtures.h - synthetic inputs in the formats of docs/FORMATS.md and checks on the files
 * a figure leaves behind, shared by the plots test executables. The inputs are generated here
 * (not taken from the simulator) so that the plots tests depend on the plots module alone. */
#ifndef ROTEQ_PLOTS_FIXTURES_H
#define ROTEQ_PLOTS_FIXTURES_H

#include <stddef.h>

/* Series CSV (section 2): `ngroups` groups named by `groups`, steps 1..nsteps. The norm relaxes
 * from 2.5 to an equilibrium of 1.3 + 0.1 g, the angle from 3x its equilibrium. `nan_every` > 0
 * leaves the measured angle empty on every nan_every-th row. */
void fx_series(const char *path, const char *const *groups, size_t ngroups, size_t nsteps,
               size_t nan_every);
/* Per-neuron CSV (section 3): `nlayers` layers of `neurons` neurons; ratios spread by `spread`
 * (log-normal), two neurons per layer marked dead. */
void fx_per_neuron(const char *path, size_t nlayers, size_t neurons, double spread, unsigned seed);
/* Verify/sweep rows (section 6): 3 optimizers x `per` rows with PASS, APPROX, FAIL, ERROR. */
void fx_verify(const char *path, size_t per);
/* A Muon summary (section 4, `roteq simulate --optimizer muon --format json`) for a rows x 64
 * matrix at `momentum`: measured row norm 0.3/sqrt(1 - momentum) and angle 0.06 sqrt(1 - m)
 * with SEs of 0.1%; best = measured x 1.004 (norm) and x 0.997 (angle), plain the momentum-0
 * values, lionlike = measured x 0.97 (norm) and x 1.05 (angle). */
void fx_muon(const char *path, double momentum, int rows);

/* Checks on outputs (cmocka failures). */
void fx_check_png(const char *path);
void fx_check_svg(const char *path);
/* Blocks (header lines starting with '"') and data rows of a gnuplot data file. */
void fx_count_data(const char *path, size_t *blocks, size_t *rows);
/* Number of entries in `dir` (for "no temporary file left behind"). */
size_t fx_count_entries(const char *dir);

#endif
