/* ofile.c - output files that appear only when complete: write to PATH.tmp.XXXXXX in the same
 * directory, then rename over PATH on commit. Readers never see a half-written result. */
#include "roteq_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct roteq_ofile {
    FILE *stream;
    char *path;     /* final name, or NULL for stdout */
    char *tmp_path; /* temporary name, or NULL for stdout */
};

roteq_ofile *roteq_ofile_open(const char *path)
{
    roteq_ofile *f = calloc(1, sizeof *f);
    if (f == NULL) {
        roteq_error_set(ROTEQ_ENOMEM, "out of memory opening '%s'", path);
        return NULL;
    }
    if (strcmp(path, "-") == 0) {
        f->stream = stdout;
        return f;
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
    free(f->path);
    free(f->tmp_path);
    free(f);
    return NULL;
}

FILE *roteq_ofile_stream(const roteq_ofile *f)
{
    return f->stream;
}

const char *roteq_ofile_path(const roteq_ofile *f)
{
    return f->path ? f->path : "-";
}

static void ofile_release(roteq_ofile *f)
{
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
