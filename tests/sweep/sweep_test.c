/* sweep_test.c - helpers shared by the sweep CLI and MPI tests (see sweep_test.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "sweep_test.h"

#include <stdlib.h>
#include <string.h>

char *sweep_test_comparable(const char *text, int json)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;
    assert_non_null(out);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (*line != '#') {
            size_t keep = len;
            if (json) {
                const char *s = strstr(line, ",\"seconds\":");
                if (s && s < line + len)
                    keep = (size_t)(s - line);
            } else {
                int commas = 0;
                while (keep > 0 && commas < 2)
                    if (line[--keep] == ',')
                        commas++;
            }
            memcpy(o, line, keep);
            o += keep;
            *o++ = '\n';
        }
        line += len + (end != NULL);
    }
    *o = '\0';
    return out;
}
