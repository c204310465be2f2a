/* roteq_util.h - the bottom layer every module shares: status codes and the one error message,
 * strict number parsing, and output files that appear only when complete.
 *
 * Errors follow GSL/libvips: a function returns an int status (0 or a negative ROTEQ_E* code) or
 * NULL, and the code that *detects* a problem records one human-readable message with
 * roteq_error_set(). Callers propagate the status silently; only the CLI prints the message. The
 * message buffer is thread-local, so simulator threads never clobber each other's messages. */
#ifndef ROTEQ_UTIL_H
#define ROTEQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __GNUC__
#define ROTEQ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ROTEQ_PRINTF(f, a)
#endif

enum {
    ROTEQ_OK = 0,
    ROTEQ_EINVAL = -1,       /* invalid argument or hyperparameter */
    ROTEQ_ENOMEM = -2,       /* allocation failed */
    ROTEQ_EIO = -3,          /* file could not be opened, read or written */
    ROTEQ_EFORMAT = -4,      /* malformed input data (CSV, safetensors, npy, JSON) */
    ROTEQ_EUNSUPPORTED = -5, /* valid request that roteq does not support */
    ROTEQ_ENOTFOUND = -6,    /* unknown name (optimizer, gradient model, column) */
    ROTEQ_ERUNTIME = -7,     /* an external program failed (gnuplot, MPI) */
};

/* A short fixed description of a status code ("invalid argument"). */
const char *roteq_strerror(int status);

/* Record the message for the current thread and return `status` (so callers can
 * `return roteq_error_set(ROTEQ_EINVAL, "...")`). The message should be one line without a
 * trailing newline and name the offending file/line/tensor/flag. */
int roteq_error_set(int status, const char *fmt, ...) ROTEQ_PRINTF(2, 3);
/* The last message recorded on this thread, or the empty string. */
const char *roteq_error_message(void);
/* The last status recorded on this thread (0 after roteq_error_clear). */
int roteq_error_status(void);
void roteq_error_clear(void);

/* Strict parsing: the whole string must be a number; doubles must be finite.
 * On failure set a message of the form "'abc' is not a number" and return ROTEQ_EINVAL. */
int roteq_parse_double(const char *s, double *out);
int roteq_parse_size(const char *s, size_t *out); /* non-negative integer */
int roteq_parse_long(const char *s, long *out);
int roteq_parse_u64(const char *s, uint64_t *out);

/* Output files that appear only when complete. roteq_ofile_open("-") writes to stdout; any other
 * path is written to a temporary file beside it (same directory, so the final rename is atomic)
 * which roteq_ofile_commit() flushes and renames over `path`. roteq_ofile_abort() removes the
 * temporary file; both free the handle and accept NULL. A process killed before commit leaves
 * only a file named PATH.tmp.XXXXXX, never a truncated PATH. */
typedef struct roteq_ofile roteq_ofile;
roteq_ofile *roteq_ofile_open(const char *path);
FILE *roteq_ofile_stream(const roteq_ofile *f);
const char *roteq_ofile_path(const roteq_ofile *f);
int roteq_ofile_commit(roteq_ofile *f);
void roteq_ofile_abort(roteq_ofile *f);

/* Write a double as JSON/CSV text that round-trips (%.17g); NaN/Inf become `null` in JSON and
 * the empty string in CSV. */
void roteq_fprint_json_double(FILE *out, double x);
void roteq_fprint_csv_double(FILE *out, double x);

/* Monotonic wall clock in seconds. */
double roteq_seconds(void);

#endif
