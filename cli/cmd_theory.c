/* cmd_theory.c - `roteq theory`. FOUNDATION PLACEHOLDER: replaced by the issue that owns this command. */
#include "roteq_cli.h"

int roteq_cmd_theory(int argc, char **argv)
{
    (void)argc, (void)argv;
    return roteq_cli_fail("theory", "not implemented yet");
}
