/* cmd_verify.c - `roteq verify`. FOUNDATION PLACEHOLDER: replaced by the issue that owns this command. */
#include "roteq_cli.h"

int roteq_cmd_verify(int argc, char **argv)
{
    (void)argc, (void)argv;
    return roteq_cli_fail("verify", "not implemented yet");
}
