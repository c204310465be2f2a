/* roteq_test.h - helpers shared by every cmocka test executable.
 * Include after <setjmp.h>, <stdarg.h>, <stddef.h> and <cmocka.h>. */
#ifndef ROTEQ_TEST_H
#define ROTEQ_TEST_H

#include <stddef.h>

/* cmocka 1.1.5 has no double comparison (assert_float_equal casts to float). Relative tolerance
 * `rtol`, with `want` == 0 compared absolutely. */
void roteq_assert_close(double got, double want, double rtol, const char *expr, const char *file,
                        int line);
#define assert_close(got, want, rtol)                                                              \
    roteq_assert_close((got), (want), (rtol), #got, __FILE__, __LINE__)

/* Stochastic check in standard errors: fails when |got - want| > k * se, printing the seed. */
void roteq_assert_within_se(double got, double want, double se, double k, unsigned long seed,
                            const char *expr, const char *file, int line);
#define assert_within_se(got, want, se, k, seed)                                                   \
    roteq_assert_within_se((got), (want), (se), (k), (seed), #got, __FILE__, __LINE__)

/* Run the roteq executable (path from the ROTEQ_EXE environment variable, set by meson) with
 * `args` (NULL-terminated, without the program name), capturing stdout and stderr into
 * malloc'd strings (either pointer may be NULL). Returns the exit status, or -1 if it died
 * on a signal. `stdin_text` may be NULL. */
int roteq_test_run(const char *const *args, const char *stdin_text, char **out, char **err);

/* A growing text for building inputs (traces, grids): zero-initialise, append with
 * roteq_test_textf (printf-style), free(t.s). */
typedef struct {
    char *s;
    size_t n, cap;
} roteq_test_text;
void roteq_test_textf(roteq_test_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A fresh temporary directory (removed with everything in it by roteq_test_rmtree). */
char *roteq_test_tmpdir(void);
void roteq_test_rmtree(char *dir); /* frees `dir` too */
/* Path join into a malloc'd string. */
char *roteq_test_path(const char *dir, const char *name);
/* Write or read a whole file (malloc'd, NUL-terminated; NULL if missing). */
void roteq_test_write_file(const char *path, const char *text);
char *roteq_test_read_file(const char *path, size_t *len);
/* The source tree, from the ROTEQ_SOURCE_DIR environment variable (set by meson). */
const char *roteq_test_source_dir(void);

#endif
