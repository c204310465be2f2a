/* gnuplot.c - everything between a prepared data file and a finished figure: where the scripts
 * live, the '#' header every data file starts with (so a user can redraw it with gnuplot alone),
 * and running `gnuplot -c SCRIPT DATA OUT ARGS...` as a child process. The figure is drawn into
 * a temporary file beside the final one and renamed only when gnuplot succeeded, so a failed or
 * interrupted run never leaves a truncated image under the final name, and a run killed by
 * SIGINT, SIGTERM or SIGHUP leaves no temporary file either (util's cleanup registry). */
#include "plots_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef ROTEQ_PLOTS_DIR
#define ROTEQ_PLOTS_DIR ""
#endif
#ifndef ROTEQ_PLOTS_INSTALL_DIR
#define ROTEQ_PLOTS_INSTALL_DIR ""
#endif

static int has_style(const char *dir)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/style.gp", dir);
    return dir[0] != '\0' && stat(p, &st) == 0;
}

int roteq_plots_scripts_dir(char *buf, size_t len)
{
    const char *env = getenv("ROTEQ_PLOTS_DIR");
    if (env != NULL && env[0] != '\0') {
        if (!has_style(env))
            return roteq_error_set(ROTEQ_ENOTFOUND,
                                   "ROTEQ_PLOTS_DIR='%s' holds no style.gp (point it at roteq's "
                                   "plots/ folder)",
                                   env);
        snprintf(buf, len, "%s", env);
        return ROTEQ_OK;
    }
    /* Beside the executable for a relocated install: EXE_DIR/../share/roteq/plots. */
    char beside[4096] = "";
    ssize_t n = readlink("/proc/self/exe", beside, sizeof beside - 1);
    if (n > 0) {
        beside[n] = '\0';
        char *slash = strrchr(beside, '/');
        if (slash != NULL &&
            (size_t)(slash - beside) + sizeof "/../share/roteq/plots" < sizeof beside)
            memcpy(slash, "/../share/roteq/plots", sizeof "/../share/roteq/plots");
        else
            beside[0] = '\0';
    }
    const char *candidates[] = {ROTEQ_PLOTS_DIR, ROTEQ_PLOTS_INSTALL_DIR, beside};
    for (size_t i = 0; i < 3; i++)
        if (has_style(candidates[i])) {
            snprintf(buf, len, "%s", candidates[i]);
            return ROTEQ_OK;
        }
    return roteq_error_set(ROTEQ_ENOTFOUND,
                           "gnuplot scripts not found in '%s', '%s' or beside the executable: set "
                           "ROTEQ_PLOTS_DIR to roteq's plots/ folder",
                           ROTEQ_PLOTS_DIR, ROTEQ_PLOTS_INSTALL_DIR);
}

/* mkdir -p */
static int make_dir(const char *dir)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return roteq_error_set(ROTEQ_EINVAL, "output folder name too long: '%s'", dir);
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return roteq_error_set(ROTEQ_EIO, "cannot create folder '%s': %s", p, strerror(errno));
        *s = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return roteq_error_set(ROTEQ_EIO, "'%s' is not a folder", dir);
    return ROTEQ_OK;
}

int roteq_plots_job_init(roteq_plots_job *job, const char *kind, const char *script,
                         const roteq_plot_options *opt)
{
    memset(job, 0, sizeof *job);
    job->kind = kind;
    job->script = script;
    const char *dir = opt && opt->out_dir && opt->out_dir[0] ? opt->out_dir : ".";
    const char *name = opt && opt->name && opt->name[0] ? opt->name : kind;
    job->format = opt && opt->format && opt->format[0] ? opt->format : "png";
    if (strcmp(job->format, "png") != 0 && strcmp(job->format, "svg") != 0)
        return roteq_error_set(ROTEQ_EINVAL, "format '%s' is not png or svg", job->format);
    if (strchr(name, '/') != NULL)
        return roteq_error_set(ROTEQ_EINVAL, "figure name '%s' must not contain '/'", name);
    if (snprintf(job->dir, sizeof job->dir, "%s", dir) >= (int)sizeof job->dir ||
        snprintf(job->name, sizeof job->name, "%s", name) >= (int)sizeof job->name)
        return roteq_error_set(ROTEQ_EINVAL, "output path too long");
    snprintf(job->data_path, sizeof job->data_path, "%s/%s.dat", job->dir, job->name);
    snprintf(job->figure_path, sizeof job->figure_path, "%s/%s.%s", job->dir, job->name,
             job->format);
    return make_dir(job->dir);
}

int roteq_plots_job_arg(roteq_plots_job *job, const char *fmt, ...)
{
    if (job->nargs + 2 >= ROTEQ_PLOTS_MAX_ARGS)
        return roteq_error_set(ROTEQ_EINVAL, "too many arguments for %s", job->script);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->argbuf[job->nargs], sizeof job->argbuf[0], fmt, ap);
    va_end(ap);
    job->args[job->nargs] = job->argbuf[job->nargs];
    job->nargs++;
    return ROTEQ_OK;
}

void roteq_plots_put(FILE *f, double x)
{
    if (isnan(x))
        fputs("NaN", f);
    else
        fprintf(f, "%.17g", x);
}

void roteq_plots_put_header(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++)
        fputc(*s == '"' ? '\'' : *s == '\n' ? ' ' : *s, f);
    fputc('"', f);
}

/* A shell-quoted word for the '#' lines (so they can be pasted). */
static void put_word(FILE *f, const char *s)
{
    int plain = s[0] != '\0';
    for (const char *p = s; *p; p++)
        if (!(strchr("-_./=:+,%", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            plain = 0;
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", f);
        else if (*s != '\n')
            fputc(*s, f);
    fputc('\'', f);
}

int roteq_plots_data_open(roteq_plots_job *job, const char *const *inputs, size_t ninputs,
                          roteq_plots_csv *const *tables, const roteq_plot_options *opt,
                          roteq_ofile **fp)
{
    roteq_ofile *of = roteq_ofile_open(job->data_path);
    if (of == NULL)
        return roteq_error_status();
    FILE *f = roteq_ofile_stream(of);
    fprintf(f, "# roteq plot %s", job->kind);
    for (size_t i = 0; i < ninputs; i++) {
        fputc(' ', f);
        put_word(f, inputs[i]);
    }
    fprintf(f, " --format %s", job->format);
    if (opt && opt->title) {
        fputs(" --title ", f);
        put_word(f, opt->title);
    }
    if (opt && opt->log_y)
        fputs(" --log-y", f);
    if (opt && opt->max_step > 0)
        fprintf(f, " --max-step %.17g", opt->max_step);
    fputc('\n', f);
    for (size_t i = 0; i < ninputs; i++) {
        fprintf(f, "# input %zu: %s\n", i + 1, tables[i]->path);
        for (size_t c = 0; c < tables[i]->ncomments; c++)
            fprintf(f, "#   %s\n", tables[i]->comments[c]);
    }
    *fp = of;
    return ROTEQ_OK;
}

/* Append the redraw command once the arguments are known (called by job_run). */
static void put_redraw(FILE *f, const roteq_plots_job *job, const char *scripts)
{
    fputs("# redraw: gnuplot -c ", f);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", scripts, job->script);
    put_word(f, path);
    fprintf(f, " %s.dat %s.%s", job->name, job->name, job->format);
    for (size_t i = 0; i < job->nargs; i++) {
        fputc(' ', f);
        put_word(f, job->args[i]);
    }
    fputc('\n', f);
}

int roteq_plots_data_finish(roteq_plots_job *job, roteq_ofile *of)
{
    char scripts[4096];
    int status = roteq_plots_scripts_dir(scripts, sizeof scripts);
    if (status != ROTEQ_OK) {
        roteq_ofile_abort(of);
        return status;
    }
    put_redraw(roteq_ofile_stream(of), job, scripts);
    return roteq_ofile_commit(of);
}

/* The last non-empty line of gnuplot's stderr, trimmed, for the error message. */
static void last_line(char *text, char *buf, size_t len)
{
    char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\r'))
        *--end = '\0';
    char *start = strrchr(text, '\n');
    start = start ? start + 1 : text;
    while (*start == ' ' || *start == '^')
        start++;
    snprintf(buf, len, "%s", start);
}

int roteq_plots_job_run(roteq_plots_job *job)
{
    char scripts[4096], script[4400], tmp[4400];
    int status = roteq_plots_scripts_dir(scripts, sizeof scripts);
    if (status != ROTEQ_OK)
        return status;
    snprintf(script, sizeof script, "%s/%s", scripts, job->script);
    /* The temporary figure keeps the extension: the scripts pick the terminal from it. */
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp.XXXXXX.%s", job->dir, job->name, job->format);
    int fd = mkstemps(tmp, (int)strlen(job->format) + 1);
    if (n < 0 || fd < 0)
        return roteq_error_set(ROTEQ_EIO, "cannot write in '%s': %s", job->dir, strerror(errno));
    /* mkstemps creates 0600; a figure is as readable as any file the user creates. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    close(fd);
    /* SIGINT/SIGTERM/SIGHUP while gnuplot draws remove it (util/ofile.c). */
    int slot = roteq_tmpfile_register(tmp);

    const char *gnuplot = getenv("ROTEQ_GNUPLOT");
    if (gnuplot == NULL || gnuplot[0] == '\0')
        gnuplot = "gnuplot";
    const char *argv[ROTEQ_PLOTS_MAX_ARGS + 6];
    size_t a = 0;
    argv[a++] = gnuplot;
    argv[a++] = "-c";
    argv[a++] = script;
    argv[a++] = job->data_path;
    argv[a++] = tmp;
    for (size_t i = 0; i < job->nargs; i++)
        argv[a++] = job->args[i];
    argv[a] = NULL;

    int perr[2];
    if (pipe(perr) != 0) {
        unlink(tmp);
        roteq_tmpfile_unregister(slot);
        return roteq_error_set(ROTEQ_ERUNTIME, "cannot start gnuplot: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    posix_spawn_file_actions_addclose(&fa, perr[0]);
    /* gnuplot is registered for the signal cleanup (killed before its file is removed) with the
     * signals held back until it is; it starts with the mask roteq had. */
    sigset_t mask_was;
    roteq_cleanup_signals_block(1, &mask_was);
    posix_spawnattr_t sa;
    posix_spawnattr_init(&sa);
    posix_spawnattr_setsigmask(&sa, &mask_was);
    posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK);
    int child = roteq_child_begin();
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, gnuplot, &fa, &sa, (char *const *)argv, environ);
    roteq_child_started(child, rc == 0 ? pid : 0);
    roteq_cleanup_signals_block(0, &mask_was);
    posix_spawnattr_destroy(&sa);
    posix_spawn_file_actions_destroy(&fa);
    close(perr[1]);
    if (rc != 0) {
        close(perr[0]);
        unlink(tmp);
        roteq_tmpfile_unregister(slot);
        if (rc == ENOENT)
            return roteq_error_set(
                ROTEQ_ERUNTIME,
                "gnuplot not found (looked for '%s' on PATH): install gnuplot "
                "(Debian gnuplot-nox, see scripts/setup.sh) or set ROTEQ_GNUPLOT",
                gnuplot);
        return roteq_error_set(ROTEQ_ERUNTIME, "cannot run '%s': %s", gnuplot, strerror(rc));
    }
    /* Collect stderr (warnings and errors) until gnuplot closes it. */
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    char chunk[4096];
    for (;;) {
        ssize_t r = read(perr[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (text != NULL && len + (size_t)r + 1 > cap) {
            cap = (len + (size_t)r + 1) * 2;
            char *grown = realloc(text, cap);
            if (grown == NULL)
                free(text);
            text = grown;
        }
        if (text != NULL) {
            memcpy(text + len, chunk, (size_t)r);
            len += (size_t)r;
        }
    }
    close(perr[0]);
    if (text != NULL)
        text[len] = '\0';
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    roteq_child_unregister(child);
    struct stat st;
    int ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    if (ok && (stat(tmp, &st) != 0 || st.st_size == 0)) {
        ok = 0;
        if (text != NULL)
            text[0] = '\0';
    }
    if (!ok) {
        char line[512] = "";
        if (text != NULL)
            last_line(text, line, sizeof line);
        free(text);
        unlink(tmp);
        roteq_tmpfile_unregister(slot);
        if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127)
            return roteq_error_set(ROTEQ_ERUNTIME, "gnuplot ('%s') could not be executed", gnuplot);
        return roteq_error_set(ROTEQ_ERUNTIME, "gnuplot failed on %s with %s: %s", job->data_path,
                               job->script, line[0] ? line : "no figure written");
    }
    free(text);
    int renamed = rename(tmp, job->figure_path);
    int e = errno;
    if (renamed != 0)
        unlink(tmp);
    roteq_tmpfile_unregister(slot);
    if (renamed != 0)
        return roteq_error_set(ROTEQ_EIO, "cannot write '%s': %s", job->figure_path, strerror(e));
    return ROTEQ_OK;
}
