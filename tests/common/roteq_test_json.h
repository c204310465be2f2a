/* roteq_test_json.h - reading the CLI's JSON output in tests: the parse that fails the test with
 * the text it could not read, and the number at a path that fails it naming the path. */
#ifndef ROTEQ_TEST_JSON_H
#define ROTEQ_TEST_JSON_H

#include <jansson.h>

/* The parsed `text` (json_decref it); fails the test on bad JSON. */
json_t *roteq_test_json(const char *text);
/* The number o[a] (b NULL) or o[a][b]; fails the test when it is missing or not a number. */
double roteq_test_jnum(json_t *o, const char *a, const char *b);

#endif
