/* cmd_simulate.c - `roteq simulate`. FOUNDATION PLACEHOLDER: replaced by the issue that owns this command. */
#include "roteq_cli.h"

int roteq_cmd_simulate(int argc, char **argv)
{
    (void)argc, (void)argv;
    return roteq_cli_fail("simulate", "not implemented yet");
}
