/* cmd_analyze.c - `roteq analyze`. FOUNDATION PLACEHOLDER: replaced by the issue that owns this command. */
#include "roteq_cli.h"

int roteq_cmd_analyze(int argc, char **argv)
{
    (void)argc, (void)argv;
    return roteq_cli_fail("analyze", "not implemented yet");
}
