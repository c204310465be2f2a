/* sweep_test.h - helpers shared by the sweep CLI and MPI tests. */
#ifndef SWEEP_TEST_H
#define SWEEP_TEST_H

/* The rows of a sweep output (CSV, or JSON lines with json = 1) without comment lines and
 * without the run-dependent columns (seconds, threads: the last two), so two runs of the same
 * grid compare equal with strcmp. malloc'd. */
char *sweep_test_comparable(const char *text, int json);

#endif
