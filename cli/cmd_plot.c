/* cmd_plot.c - `roteq plot`. FOUNDATION PLACEHOLDER: replaced by the issue that owns this command. */
#include "roteq_cli.h"

int roteq_cmd_plot(int argc, char **argv)
{
    (void)argc, (void)argv;
    return roteq_cli_fail("plot", "not implemented yet");
}
