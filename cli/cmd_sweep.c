/* cmd_sweep.c - `roteq sweep`. FOUNDATION PLACEHOLDER: replaced by the issue that owns this command. */
#include "roteq_cli.h"

int roteq_cmd_sweep(int argc, char **argv)
{
    (void)argc, (void)argv;
    return roteq_cli_fail("sweep", "not implemented yet");
}
