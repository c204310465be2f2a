/* main.c - the `roteq` executable: dispatch to a subcommand from the table below. */
#include "roteq_cli.h"

#include <string.h>

static const roteq_cli_command commands[] = {
    {"theory", "closed-form equilibrium and predicted transient for an optimizer",
     roteq_cmd_theory},
    {"simulate", "random-walk simulation of an ensemble of neurons", roteq_cmd_simulate},
    {"verify", "check every equilibrium formula against simulation", roteq_cmd_verify},
    {"sweep", "run a grid of simulations (threads, or MPI ranks)", roteq_cmd_sweep},
    {"analyze", "measure equilibrium in training traces from other trainers", roteq_cmd_analyze},
    {"plot", "draw figures with gnuplot", roteq_cmd_plot},
    {"bench", "speed of the simulator against its floor", roteq_cmd_bench},
};

static void usage(FILE *out)
{
    fputs(
        "usage: roteq COMMAND [OPTIONS]\n"
        "       roteq COMMAND --help\n\n"
        "Rotational equilibrium of neural-network weights (Kosson, Messmer, Jaggi, ICML 2024).\n\n"
        "Commands:\n",
        out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return ROTEQ_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return ROTEQ_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        puts("roteq " ROTEQ_VERSION);
        return ROTEQ_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "roteq: unknown command '%s' (try roteq --help)\n", argv[1]);
    return ROTEQ_EXIT_USAGE;
}
