/* ofile.c - output files that appear only when complete: write to PATH.tmp.XXXXXX in the same
 * directory, then rename over PATH on commit. Readers never see a half-written result, and the
 * temporary files of a process stopped by SIGINT/SIGTERM/SIGHUP are removed by a handler that
 * walks a fixed table of registered paths with async-signal-safe calls only (unlink, sigaction,
 * raise), after killing and reaping the registered children that could still write them. Outputs
 * are checked before the work that fills them (a directory, a missing folder, an input named again
 * as the output), so a long job never fails only at its end. */
#include "roteq_util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct roteq_ofile {
    FILE *stream;
    char *path;     /* final name, or NULL for stdout */
    char *tmp_path; /* temporary name, or NULL for stdout */
    int slot;       /* roteq_tmpfile_register slot of tmp_path, or -1 */
};

/* ---- temporary files removed on a fatal signal ---- */

#define TMP_SLOTS   256
#define CHILD_SLOTS 16

static const char *_Atomic tmp_slots[TMP_SLOTS];
static _Atomic pid_t child_slots[CHILD_SLOTS];
static atomic_flag handlers_installed = ATOMIC_FLAG_INIT;
static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void cleanup_handler(int sig)
{
    int saved = errno;
    /* Children first: one still writing a temporary file would create it again. */
    for (int i = 0; i < CHILD_SLOTS; i++) {
        pid_t pid;
        /* -1: being started on another thread (this one is not it: that thread holds the
         * signals back meanwhile); its pid follows within the spawn call. */
        while ((pid = atomic_load(&child_slots[i])) == -1)
            ;
        if (pid > 0 && kill(pid, SIGKILL) == 0)
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
    }
    for (int i = 0; i < TMP_SLOTS; i++) {
        const char *p = atomic_load(&tmp_slots[i]);
        if (p != NULL)
            unlink(p);
    }
    /* The signal's own default action, so the parent sees the process die of it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    errno = saved;
    raise(sig); /* blocked while the handler runs: delivered on return */
}

static void install_handlers(void)
{
    if (atomic_flag_test_and_set(&handlers_installed))
        return;
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof cleanup_signals[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(cleanup_signals[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
            (old.sa_flags & SA_SIGINFO))
            continue; /* ignored (nohup) or handled by someone else: leave it */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = cleanup_handler;
        sigfillset(&sa.sa_mask);
        sigaction(cleanup_signals[i], &sa, NULL);
    }
}

int roteq_tmpfile_register(const char *path)
{
    install_handlers();
    for (int i = 0; i < TMP_SLOTS; i++) {
        const char *expected = NULL;
        if (atomic_compare_exchange_strong(&tmp_slots[i], &expected, path))
            return i;
    }
    return -1;
}

void roteq_tmpfile_unregister(int slot)
{
    if (slot >= 0 && slot < TMP_SLOTS)
        atomic_store(&tmp_slots[slot], NULL);
}

int roteq_child_begin(void)
{
    install_handlers();
    for (int i = 0; i < CHILD_SLOTS; i++) {
        pid_t expected = 0;
        if (atomic_compare_exchange_strong(&child_slots[i], &expected, -1))
            return i;
    }
    return -1;
}

void roteq_child_started(int slot, pid_t pid)
{
    if (slot >= 0 && slot < CHILD_SLOTS)
        atomic_store(&child_slots[slot], pid > 0 ? pid : 0);
}

void roteq_child_unregister(int slot)
{
    if (slot >= 0 && slot < CHILD_SLOTS)
        atomic_store(&child_slots[slot], 0);
}

void roteq_cleanup_signals_block(int block, sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof cleanup_signals[0]; i++)
        sigaddset(&set, cleanup_signals[i]);
    if (block)
        pthread_sigmask(SIG_BLOCK, &set, old);
    else
        pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- checks before the work ---- */

int roteq_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (a == NULL || b == NULL || stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int roteq_ofile_check(const char *path, const char *const *inputs, size_t ninputs)
{
    if (strcmp(path, "-") == 0)
        return ROTEQ_OK;
    for (size_t i = 0; i < ninputs; i++)
        if (inputs[i] && roteq_same_file(path, inputs[i]))
            return roteq_error_set(ROTEQ_EINVAL, "'%s' is the same file as the input '%s'", path,
                                   inputs[i]);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path, strerror(EISDIR));
    /* The temporary file goes beside PATH: its directory must exist and take new files. */
    size_t n = strlen(path);
    char *dir = malloc(n + 2);
    if (dir == NULL)
        return roteq_error_set(ROTEQ_ENOMEM, "out of memory checking '%s'", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int err = 0;
    if (stat(dir, &sb) != 0)
        err = errno;
    else if (!S_ISDIR(sb.st_mode))
        err = ENOTDIR;
    else if (access(dir, W_OK | X_OK) != 0)
        err = errno;
    int st =
        err ? roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path, strerror(err)) : ROTEQ_OK;
    free(dir);
    return st;
}

roteq_ofile *roteq_ofile_open(const char *path)
{
    roteq_ofile *f = calloc(1, sizeof *f);
    if (f == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory opening '%s'", path);
        return NULL;
    }
    f->slot = -1;
    if (strcmp(path, "-") == 0) {
        f->stream = stdout;
        return f;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path, strerror(EISDIR));
        free(f);
        return NULL;
    }
    size_t n = strlen(path);
    f->path = strdup(path);
    f->tmp_path = malloc(n + sizeof ".tmp.XXXXXX");
    if (f->path == NULL || f->tmp_path == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory opening '%s'", path);
        goto fail;
    }
    memcpy(f->tmp_path, path, n);
    memcpy(f->tmp_path + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    /* Registered before it exists, so no signal can leave it behind. */
    f->slot = roteq_tmpfile_register(f->tmp_path);
    int fd = mkstemp(f->tmp_path);
    if (fd < 0) {
        roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path, strerror(errno));
        goto fail;
    }
    /* mkstemp creates the file 0600; give the result the mode a plain fopen would (0666 less
     * the umask), since it replaces a user-visible output file. Reading the umask means setting
     * it, which is not thread-safe: outputs are opened from the CLI's main thread. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        unlink(f->tmp_path);
        goto fail;
    }
    f->stream = fdopen(fd, "w");
    if (f->stream == NULL) {
        roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        unlink(f->tmp_path);
        goto fail;
    }
    return f;
fail:
    roteq_tmpfile_unregister(f->slot);
    free(f->path);
    free(f->tmp_path);
    free(f);
    return NULL;
}

FILE *roteq_ofile_stream(const roteq_ofile *f)
{
    return f->stream;
}

static void ofile_release(roteq_ofile *f)
{
    roteq_tmpfile_unregister(f->slot);
    free(f->path);
    free(f->tmp_path);
    free(f);
}

int roteq_ofile_commit(roteq_ofile *f)
{
    if (f == NULL)
        return ROTEQ_OK;
    int status = ROTEQ_OK;
    if (f->path == NULL) {
        if (fflush(stdout) != 0 || ferror(stdout))
            status = roteq_error_set(ROTEQ_EIO, "cannot write to standard output");
        ofile_release(f);
        return status;
    }
    int err = ferror(f->stream);
    if (fclose(f->stream) != 0 || err) {
        status = roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", f->path, strerror(errno));
        unlink(f->tmp_path);
    } else if (rename(f->tmp_path, f->path) != 0) {
        status = roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", f->path, strerror(errno));
        unlink(f->tmp_path);
    }
    ofile_release(f);
    return status;
}

void roteq_ofile_abort(roteq_ofile *f)
{
    if (f == NULL)
        return;
    if (f->path != NULL) {
        fclose(f->stream);
        unlink(f->tmp_path);
    }
    ofile_release(f);
}

void roteq_fprint_json_double(FILE *out, double x)
{
    if (isfinite(x))
        fprintf(out, "%.17g", x);
    else
        fputs("null", out);
}

void roteq_fprint_csv_double(FILE *out, double x)
{
    if (isfinite(x))
        fprintf(out, "%.17g", x);
}

double roteq_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
