/* roteq_test.c - shared test helpers (see roteq_test.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

void roteq_assert_close(double got, double want, double rtol, const char *expr, const char *file,
                        int line)
{
    double err = want == 0.0 ? fabs(got) : fabs(got - want) / fabs(want);
    if (!(err <= rtol)) {
        print_error("%s = %.17g, want %.17g (relative error %.3g > %.3g)\n", expr, got, want, err,
                    rtol);
        _fail(file, line);
    }
}

void roteq_assert_within_se(double got, double want, double se, double k, unsigned long seed,
                            const char *expr, const char *file, int line)
{
    if (!(fabs(got - want) <= k * se)) {
        print_error("%s = %.10g, want %.10g +- %g*%.3g (off by %.2f SE; seed %lu)\n", expr, got,
                    want, k, se, fabs(got - want) / se, seed);
        _fail(file, line);
    }
}

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void buffer_append(buffer *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

int roteq_test_run(const char *const *args, const char *stdin_text, char **out, char **err)
{
    const char *exe = getenv("ROTEQ_EXE");
    assert_non_null(exe);
    size_t n = 0;
    while (args[n])
        n++;
    char **argv = calloc(n + 2, sizeof *argv);
    assert_non_null(argv);
    argv[0] = (char *)exe;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];

    int pin[2], pout[2], perr[2];
    assert_int_equal(pipe(pin), 0);
    assert_int_equal(pipe(pout), 0);
    assert_int_equal(pipe(perr), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    posix_spawn_file_actions_addclose(&fa, pin[1]);
    posix_spawn_file_actions_addclose(&fa, pout[0]);
    posix_spawn_file_actions_addclose(&fa, perr[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    assert_int_equal(rc, 0);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (stdin_text) {
        size_t left = strlen(stdin_text);
        const char *p = stdin_text;
        while (left > 0) {
            ssize_t w = write(pin[1], p, left);
            if (w <= 0)
                break;
            p += w;
            left -= (size_t)w;
        }
    }
    close(pin[1]);

    buffer bo = {0}, be = {0};
    buffer_append(&bo, "", 0);
    buffer_append(&be, "", 0);
    struct pollfd fds[2] = {{pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[65536];
            ssize_t r = read(fds[i].fd, chunk, sizeof chunk);
            if (r <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else {
                buffer_append(i == 0 ? &bo : &be, chunk, (size_t)r);
            }
        }
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = bo.data;
    else
        free(bo.data);
    if (err)
        *err = be.data;
    else
        free(be.data);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char *roteq_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = malloc(4096);
    assert_non_null(dir);
    snprintf(dir, 4096, "%s/roteq-test-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void roteq_test_rmtree(char *dir)
{
    if (dir == NULL)
        return;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

char *roteq_test_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void roteq_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

char *roteq_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    buffer b = {0};
    buffer_append(&b, "", 0);
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        buffer_append(&b, chunk, r);
    fclose(f);
    if (len)
        *len = b.len;
    return b.data;
}

const char *roteq_test_source_dir(void)
{
    const char *d = getenv("ROTEQ_SOURCE_DIR");
    assert_non_null(d);
    return d;
}

void roteq_test_textf(roteq_test_text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(t->s ? t->s + t->n : NULL, t->s ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (t->s && (size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        t->cap = (t->cap + (size_t)k + 1) * 2;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
}
