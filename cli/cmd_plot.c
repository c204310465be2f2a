/* cmd_plot.c - `roteq plot KIND INPUT...`: draw one figure from files other commands wrote
 * (docs/FORMATS.md) with the gnuplot scripts in plots/. All the work is roteq_plot(); this file
 * only parses flags, prints the figure's path on stdout and maps errors to exit codes: bad input
 * or usage 2, gnuplot missing or failing 1. */
#include "roteq_cli.h"
#include "roteq_plots.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void usage(FILE *out)
{
    fputs("usage: roteq plot KIND INPUT... [--out DIR] [--format png|svg] [--title TEXT]\n"
          "                  [--name NAME] [--log-y] [--max-step N]\n"
          "       roteq plot gallery [--out DIR]\n\n"
          "Draw a figure with gnuplot from roteq's CSV files (for muon, JSON summaries).\n"
          "Writes DIR/NAME.FORMAT and its data file DIR/NAME.dat (whose '#' lines hold the\n"
          "gnuplot command that redraws it) and prints the figure's path. An INPUT may be\n"
          "LABEL=FILE to name its run in the legend.\n\n"
          "Kinds:\n",
          out);
    const char *summary;
    for (size_t i = 0; roteq_plot_kind(i, &summary) != NULL; i++)
        fprintf(out, "  %-10s %s\n", roteq_plot_kind(i, NULL), summary);
    fputs("  gallery    figures 1-7 from the simulator, fixed seeds (plots/gallery.sh; --out\n"
          "             default gallery; `meson compile -C BUILD figures` writes docs/gallery)\n",
          out);
    fputs("\nOptions:\n"
          "  --out DIR        folder for the figure and its data (default: .; created if missing)\n"
          "  --format FMT     png (default) or svg\n"
          "  --title TEXT     figure title (default: derived from the kind)\n"
          "  --name NAME      base name of the outputs (default: KIND)\n"
          "  --log-y          logarithmic y axis (angle, transient, balance)\n"
          "  --max-step N     series kinds: only steps <= N (e.g. the warmup for transient)\n"
          "  --help           this text\n\n"
          "Environment: ROTEQ_PLOTS_DIR (folder of the .gp scripts), ROTEQ_GNUPLOT (the gnuplot\n"
          "program, default gnuplot on PATH). See plots/README.md for each figure's columns.\n",
          out);
}

/* `roteq plot gallery`: run plots/gallery.sh with this executable. The figures need the
 * simulator and the analyzer, so the gallery is a script over roteq commands rather than
 * library calls (plots/ depends on util only). */
static int gallery(const char *out_dir)
{
    char scripts[4096], script[4200], exe[4096];
    if (roteq_plot_scripts_dir(scripts, sizeof scripts) != 0)
        return roteq_cli_fail_lib("plot", ROTEQ_EXIT_FAIL);
    snprintf(script, sizeof script, "%s/gallery.sh", scripts);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return roteq_cli_fail("plot", "gallery: cannot find the roteq executable: %s",
                              strerror(errno));
    exe[n] = '\0';
    char *argv[] = {"sh", script, exe, (char *)out_dir, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(stderr, "roteq plot: gallery: cannot run /bin/sh: %s\n", strerror(rc));
        return ROTEQ_EXIT_FAIL;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "roteq plot: gallery: %s failed\n", script);
        return ROTEQ_EXIT_FAIL;
    }
    return ROTEQ_EXIT_OK;
}

/* Apply one parsed flag; returns -1 to go on, else the exit code. */
static int apply(int c, const char *arg, roteq_plot_options *opt, char **argv)
{
    switch (c) {
    case 'o':
        opt->out_dir = arg;
        return -1;
    case 'f':
        if (strcmp(arg, "png") != 0 && strcmp(arg, "svg") != 0)
            return roteq_cli_fail("plot", "--format: '%s' is not png or svg", arg);
        opt->format = arg;
        return -1;
    case 't':
        opt->title = arg;
        return -1;
    case 'n':
        if (arg[0] == '\0' || strchr(arg, '/') != NULL)
            return roteq_cli_fail("plot", "--name: '%s' must be a file name without '/'", arg);
        opt->name = arg;
        return -1;
    case 'l':
        opt->log_y = 1;
        return -1;
    case 'm':
        if (roteq_cli_double("plot", "max-step", arg, &opt->max_step))
            return ROTEQ_EXIT_USAGE;
        if (!(opt->max_step > 0))
            return roteq_cli_fail("plot", "--max-step: must be positive, got %s", arg);
        return -1;
    case 'h':
        usage(stdout);
        return ROTEQ_EXIT_OK;
    default:
        return roteq_cli_bad_option("plot", c, argv);
    }
}

int roteq_cmd_plot(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},   {"format", required_argument, NULL, 'f'},
        {"title", required_argument, NULL, 't'}, {"name", required_argument, NULL, 'n'},
        {"log-y", no_argument, NULL, 'l'},       {"max-step", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    roteq_plot_options opt = {.out_dir = NULL, .format = "png"}; /* NULL out_dir: "." */
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    if (inputs == NULL)
        return roteq_cli_fail("plot", "out of memory");
    const char *kind = NULL;
    size_t n = 0;
    /* Flags may come before or after KIND and the inputs: getopt stops ('+') at each word that
     * is not a flag, which is collected, and parsing goes on after it. */
    optind = 0;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+:o:f:t:n:lm:h", longopts, NULL);
        if (c != -1) {
            int rc = apply(c, optarg, &opt, argv);
            if (rc >= 0) {
                free(inputs);
                return rc;
            }
            continue;
        }
        if (optind >= argc)
            break;
        if (kind == NULL)
            kind = argv[optind];
        else
            inputs[n++] = argv[optind];
        optind++;
    }
    if (kind == NULL) {
        free(inputs);
        usage(stderr);
        return ROTEQ_EXIT_USAGE;
    }
    if (strcmp(kind, "gallery") == 0) {
        int rc = n > 0 ? roteq_cli_fail("plot", "gallery takes no INPUT (got '%s')", inputs[0])
                       : gallery(opt.out_dir ? opt.out_dir : "gallery");
        free(inputs);
        return rc;
    }
    int known = 0;
    for (size_t i = 0; roteq_plot_kind(i, NULL) != NULL; i++)
        known |= strcmp(kind, roteq_plot_kind(i, NULL)) == 0;
    if (!known) {
        free(inputs);
        return roteq_cli_fail("plot",
                              "unknown kind '%s' (known: norm, angle, histogram, balance, verify, "
                              "transient, muon; see roteq plot --help)",
                              kind);
    }
    if (n == 0) {
        free(inputs);
        return roteq_cli_fail("plot", "%s: no INPUT file given", kind);
    }
    /* The outputs before any input is read: exit 1 for one that cannot be written, 2 for one
     * that is an input. */
    int status = roteq_plot_check_outputs(kind, inputs, n, &opt);
    if (status != ROTEQ_OK) {
        free(inputs);
        roteq_cli_fail("plot", "--out: %s", roteq_error_message());
        return status == ROTEQ_EINVAL ? ROTEQ_EXIT_USAGE : ROTEQ_EXIT_FAIL;
    }
    char figure[4400];
    status = roteq_plot(kind, inputs, n, &opt, figure, sizeof figure);
    free(inputs);
    if (status != ROTEQ_OK)
        return roteq_cli_fail_lib("plot",
                                  status == ROTEQ_ERUNTIME ? ROTEQ_EXIT_FAIL : ROTEQ_EXIT_USAGE);
    puts(figure);
    return ROTEQ_EXIT_OK;
}
