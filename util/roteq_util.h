/* roteq_util.h - the bottom layer every module shares: status codes and the one error message,
 * strict number parsing, and output files that appear only when complete.
 *
 * Errors follow GSL/libvips: a function returns an int status (0 or a negative ROTEQ_E* code) or
 * NULL, and the code that *detects* a problem records one human-readable message with
 * roteq_error_set(). Callers propagate the status silently; only the CLI prints the message. The
 * message buffer is thread-local, so simulator threads never clobber each other's messages. */
#ifndef ROTEQ_UTIL_H
#define ROTEQ_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

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
int roteq_ofile_commit(roteq_ofile *f);
void roteq_ofile_abort(roteq_ofile *f);

/* Check, before any work, that `path` can become an output: not a directory, in an existing
 * writable directory, and not the same file as any of inputs[0..ninputs) (NULL entries are
 * skipped; see roteq_same_file). "-" always passes. ROTEQ_EIO "cannot write 'P': Is a directory"
 * or ROTEQ_EINVAL "'P' is the same file as the input 'I'", to be prefixed with the flag. */
int roteq_ofile_check(const char *path, const char *const *inputs, size_t ninputs);
/* 1 when `a` and `b` name the same existing file (equal st_dev and st_ino after following
 * symbolic links, so relative paths, hard links and symlinks are caught), else 0. */
int roteq_same_file(const char *a, const char *b);

/* Temporary files that SIGINT, SIGTERM and SIGHUP remove before the process dies (with the
 * signal's default action, so the exit status still tells the signal). roteq_ofile registers
 * its own; other writers of PATH.tmp.* files register theirs. The first call installs the
 * handlers, where the signal's disposition is still the default. `path` must stay valid until
 * unregistered. Returns a slot for roteq_tmpfile_unregister, or -1 when all slots are taken
 * (the file is then simply not cleaned up). */
int roteq_tmpfile_register(const char *path);
void roteq_tmpfile_unregister(int slot);
/* A child process (gnuplot drawing into a registered temporary file) that the same handler kills
 * with SIGKILL and reaps before it removes the files, so that the child cannot create one again
 * after the parent is gone. The slot is taken before the child starts (roteq_child_begin; -1 when
 * all are taken) and given its pid right after (roteq_child_started, pid <= 0: it did not start),
 * with this thread's signals held back in between (roteq_cleanup_signals_block(1, &old) ...
 * roteq_cleanup_signals_block(0, &old)): a signal delivered meanwhile to another thread (the
 * BLAS library's) waits in the handler for the pid. */
int roteq_child_begin(void);
void roteq_child_started(int slot, pid_t pid);
void roteq_child_unregister(int slot);
void roteq_cleanup_signals_block(int block, sigset_t *old);

/* Bytes a new allocation may use: 90% of MemAvailable from /proc/meminfo, lowered to the
 * address-space limit (RLIMIT_AS) when one is set; 0 when unknown. `what` (may be NULL) receives a
 * short description of the source for messages ("90% of MemAvailable", "RLIMIT_AS"). */
uint64_t roteq_mem_available(const char **what);
/* A byte count for messages: "512 B", "3.4 MB", "17.2 GB" (decimal units). */
void roteq_format_bytes(double bytes, char *buf, size_t n);

/* Write a double as JSON/CSV text that round-trips (%.17g); NaN/Inf become `null` in JSON and
 * the empty string in CSV. */
void roteq_fprint_json_double(FILE *out, double x);
void roteq_fprint_csv_double(FILE *out, double x);

/* Monotonic wall clock in seconds. */
double roteq_seconds(void);

#endif
