/* roteq_test_json.c - see roteq_test_json.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_test_json.h"

json_t *roteq_test_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL)
        fail_msg("bad JSON (%s): %s", e.text, text);
    return j;
}

double roteq_test_jnum(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    if (!json_is_number(v))
        fail_msg("'%s%s%s' is not a number", a, b ? "." : "", b ? b : "");
    return json_number_value(v);
}
