/* cli_common.c - pieces every subcommand shares: error lines and the hyperparameter flags. */
#include "roteq_cli.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int roteq_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "roteq %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return ROTEQ_EXIT_USAGE;
}

int roteq_cli_bad_option(const char *cmd, int c, char *const *argv)
{
    /* optind already points past the offending word; for a short option inside a group
     * ("-xq") that word is the group, so name the option character itself. */
    const char *word = argv[optind - 1];
    char shortopt[3] = {'-', (char)optopt, '\0'};
    if (optopt != 0 && (word[0] != '-' || word[1] == '-' || word[2] != '\0'))
        word = word[1] == '-' ? word : shortopt;
    if (c == ':')
        return roteq_cli_fail(cmd, "%s: needs a value", word);
    return roteq_cli_fail(cmd, "unknown option '%s' (see roteq %s --help)", word, cmd);
}

int roteq_cli_fail_lib(const char *cmd, int code)
{
    const char *msg = roteq_error_message();
    fprintf(stderr, "roteq %s: %s\n", cmd, *msg ? msg : roteq_strerror(roteq_error_status()));
    return code;
}

void roteq_cli_hparams_init(roteq_cli_hparams *h)
{
    memset(h, 0, sizeof *h);
}

size_t roteq_cli_hparam_options(struct option *opts, size_t n)
{
    for (int i = 0; i < ROTEQ_HP_COUNT; i++) {
        const roteq_hparam_desc *d = &roteq_hparam_descs[i];
        opts[n++] =
            (struct option){d->flag, d->kind == ROTEQ_HPKIND_FLAG ? no_argument : required_argument,
                            NULL, ROTEQ_CLI_HP_OPT + i};
    }
    return n;
}

int roteq_cli_hparam_option(const char *cmd, int opt, const char *arg, roteq_cli_hparams *h)
{
    if (opt < ROTEQ_CLI_HP_OPT || opt >= ROTEQ_CLI_HP_OPT + ROTEQ_HP_COUNT)
        return 0;
    roteq_hparam_id id = (roteq_hparam_id)(opt - ROTEQ_CLI_HP_OPT);
    const roteq_hparam_desc *d = &roteq_hparam_descs[id];
    double v = 1.0;
    if (d->kind == ROTEQ_HPKIND_REAL && roteq_cli_double(cmd, d->flag, arg, &v))
        return -1;
    roteq_hparams_set(&h->values, id, v);
    h->given |= ROTEQ_HP_BIT(id);
    return 1;
}

int roteq_cli_hparams_finish(const char *cmd, const roteq_optimizer_type **optp,
                             const roteq_cli_hparams *h, roteq_hparams *out)
{
    const roteq_optimizer_type *opt = *optp;
    if ((h->given & ROTEQ_HP_BIT(ROTEQ_HP_NESTEROV)) && opt->nesterov_variant)
        opt = opt->nesterov_variant;
    roteq_hparams hp = roteq_optimizer_defaults(opt);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++) {
        if (!(h->given & ROTEQ_HP_BIT(i)))
            continue;
        if (i == ROTEQ_HP_NESTEROV && opt->nesterov_variant == opt)
            continue; /* implied by the optimizer */
        if (!(opt->hparams & ROTEQ_HP_BIT(i))) {
            roteq_cli_fail(cmd, "--%s: does not apply to %s", roteq_hparam_descs[i].flag,
                           opt->name);
            return -1;
        }
        roteq_hparams_set(&hp, (roteq_hparam_id)i, roteq_hparams_get(&h->values, i));
    }
    roteq_hparam_id bad;
    if (roteq_hparams_validate(opt, &hp, &bad)) {
        roteq_cli_fail(cmd, "--%s: %s", roteq_hparam_descs[bad].flag, roteq_error_message());
        return -1;
    }
    *optp = opt;
    *out = hp;
    return 0;
}

void roteq_cli_hparam_usage(FILE *out)
{
    fputs("Hyperparameters (defaults are PyTorch's; see `roteq theory --list`):\n", out);
    for (int i = 0; i < ROTEQ_HP_COUNT; i++) {
        const roteq_hparam_desc *d = &roteq_hparam_descs[i];
        char flag[40];
        snprintf(flag, sizeof flag, "--%s%s", d->flag, d->kind == ROTEQ_HPKIND_FLAG ? "" : " X");
        fprintf(out, "  %-22s %s\n", flag, d->help);
    }
}

int roteq_cli_double(const char *cmd, const char *flag, const char *arg, double *out)
{
    if (roteq_parse_double(arg, out)) {
        roteq_cli_fail(cmd, "--%s: %s", flag, roteq_error_message());
        return -1;
    }
    return 0;
}

int roteq_cli_size(const char *cmd, const char *flag, const char *arg, size_t *out)
{
    if (roteq_parse_size(arg, out)) {
        roteq_cli_fail(cmd, "--%s: %s", flag, roteq_error_message());
        return -1;
    }
    return 0;
}

int roteq_cli_schedule(const char *cmd, const char *flag, const char *arg, roteq_schedule *out)
{
    if (roteq_schedule_parse(arg, out)) {
        roteq_cli_fail(cmd, "--%s: %s", flag, roteq_error_message());
        return -1;
    }
    return 0;
}

int roteq_cli_format(const char *cmd, const char *arg, const char *allowed, roteq_format *out)
{
    static const char *const names[] = {"text", "csv", "json"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(arg, names[i]) != 0)
            continue;
        /* `allowed` is a comma-separated list; match whole words. */
        size_t n = strlen(names[i]);
        for (const char *p = allowed; (p = strstr(p, names[i])) != NULL; p += n)
            if ((p == allowed || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
                *out = (roteq_format)i;
                return 0;
            }
    }
    roteq_cli_fail(cmd, "--format: '%s' is not one of %s", arg, allowed);
    return -1;
}

void roteq_cli_progress_init(roteq_cli_progress *p, const char *cmd, int enabled)
{
    p->cmd = cmd;
    p->enabled = enabled;
    p->tty = isatty(STDERR_FILENO);
    p->drawn = 0;
    p->interval = ROTEQ_CLI_PROGRESS_LOG_SECONDS;
    const char *env = getenv("ROTEQ_PROGRESS_SECONDS");
    double v;
    if (env && roteq_parse_double(env, &v) == 0 && v >= 0)
        p->interval = v;
    p->start = p->last = roteq_seconds();
}

void roteq_cli_progress_update(roteq_cli_progress *p, size_t step, size_t total)
{
    if (!p->enabled || total == 0)
        return;
    double now = roteq_seconds(), frac = (double)step / (double)total;
    if (!p->tty) {
        if (now - p->last < p->interval || step >= total)
            return;
        p->last = now;
        double el = now - p->start;
        fprintf(stderr, "roteq %s: step %zu of %zu (%.1f%%), %.0f s elapsed, about %.0f s left\n",
                p->cmd, step, total, 100.0 * frac, el, frac > 0 ? el * (1 - frac) / frac : 0.0);
        return;
    }
    if (step < total ? now - p->last < 0.2 : !p->drawn)
        return;
    p->last = now;
    p->drawn = 1;
    int width = 40, done = (int)((double)width * frac);
    fprintf(stderr, "\r[%.*s%*s] %3d%% step %zu/%zu", done,
            "========================================", width - done, "", (int)(100.0 * frac), step,
            total);
    if (step >= total)
        fputs("\r\033[K", stderr);
    fflush(stderr);
}
