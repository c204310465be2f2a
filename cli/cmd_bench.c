/* cmd_bench.c - `roteq bench`. FOUNDATION PLACEHOLDER: replaced by the issue that owns this command. */
#include "roteq_cli.h"

int roteq_cmd_bench(int argc, char **argv)
{
    (void)argc, (void)argv;
    return roteq_cli_fail("bench", "not implemented yet");
}
