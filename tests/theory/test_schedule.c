/* test_schedule.c - the schedule grammar: every accepted form, its factor at chosen steps
 * (values worked out by hand from the definitions in roteq_schedule.h), the canonical format
 * round trip, and every malformed case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_schedule.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <math.h>
#include <string.h>

static roteq_schedule parse_ok(const char *spec)
{
    roteq_schedule s;
    if (roteq_schedule_parse(spec, &s) != ROTEQ_OK)
        fail_msg("'%s' rejected: %s", spec, roteq_error_message());
    return s;
}

static void test_constant(void **state)
{
    (void)state;
    roteq_schedule s = parse_ok("constant");
    assert_true(roteq_schedule_is_constant(&s));
    for (long t = 1; t < 5000; t += 997)
        assert_close(roteq_schedule_factor(&s, t), 1.0, 0);
    roteq_schedule c = roteq_schedule_constant();
    assert_true(roteq_schedule_is_constant(&c));
    s = parse_ok("step:10:1");
    assert_true(roteq_schedule_is_constant(&s)); /* gamma 1 never changes anything */
}

static void test_warmup(void **state)
{
    (void)state;
    roteq_schedule s = parse_ok("warmup:8");
    assert_false(roteq_schedule_is_constant(&s));
    assert_close(roteq_schedule_factor(&s, 1), 0.125, 0);
    assert_close(roteq_schedule_factor(&s, 3), 0.375, 0);
    assert_close(roteq_schedule_factor(&s, 8), 1.0, 0);
    assert_close(roteq_schedule_factor(&s, 9), 1.0, 0);
    assert_close(roteq_schedule_factor(&s, 100000), 1.0, 0);
    s = parse_ok("warmup:4+constant");
    assert_close(roteq_schedule_factor(&s, 2), 0.5, 0);
    assert_close(roteq_schedule_factor(&s, 50), 1.0, 0);
}

static void test_cosine(void **state)
{
    (void)state;
    roteq_schedule s = parse_ok("cosine:100");
    /* 0.5 (1 + cos(pi t/100)): t = 25 -> 0.5 (1 + sqrt(2)/2), t = 50 -> 0.5, t >= 100 -> 0. */
    assert_close(roteq_schedule_factor(&s, 25), 0.5 * (1 + sqrt(0.5)), 1e-15);
    assert_close(roteq_schedule_factor(&s, 50), 0.5, 1e-15);
    assert_close(roteq_schedule_factor(&s, 100), 0.0, 1e-15);
    assert_close(roteq_schedule_factor(&s, 1000), 0.0, 1e-15);
    s = parse_ok("warmup:10+cosine:40:0.2");
    assert_close(roteq_schedule_factor(&s, 5), 0.5, 0);
    /* 10 steps into the cosine: 0.2 + 0.8 * 0.5 (1 + cos(pi/4)). */
    assert_close(roteq_schedule_factor(&s, 20), 0.2 + 0.4 * (1 + sqrt(0.5)), 1e-15);
    assert_close(roteq_schedule_factor(&s, 50), 0.2, 1e-15);
    assert_close(roteq_schedule_factor(&s, 5000), 0.2, 1e-15);
}

static void test_step(void **state)
{
    (void)state;
    roteq_schedule s = parse_ok("step:30:0.1");
    assert_close(roteq_schedule_factor(&s, 1), 1.0, 0);
    assert_close(roteq_schedule_factor(&s, 29), 1.0, 0);
    assert_close(roteq_schedule_factor(&s, 30), 0.1, 1e-15);
    assert_close(roteq_schedule_factor(&s, 61), 0.01, 1e-14);
    s = parse_ok("warmup:5+step:10:0.5");
    assert_close(roteq_schedule_factor(&s, 1), 0.2, 0);
    assert_close(roteq_schedule_factor(&s, 14), 1.0, 0);
    assert_close(roteq_schedule_factor(&s, 15), 0.5, 0);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    const char *specs[] = {"constant",    "warmup:7",           "cosine:123:0.25",
                           "step:9:0.75", "warmup:3+cosine:50", "warmup:2+step:4:2.5"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        roteq_schedule a = parse_ok(specs[i]);
        char buf[128];
        int n = roteq_schedule_format(&a, buf, sizeof buf);
        assert_true(n > 0 && (size_t)n < sizeof buf);
        roteq_schedule b = parse_ok(buf);
        for (long t = 1; t < 200; t += 7)
            assert_close(roteq_schedule_factor(&b, t), roteq_schedule_factor(&a, t), 0);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "bogus",
        "constant:1",
        "constant+constant",
        "warmup",
        "warmup:0",
        "warmup:-3",
        "warmup:2.5",
        "warmup:x",
        "warmup:3+warmup:4",
        "cosine",
        "cosine:0",
        "cosine:10:",
        "cosine:10:1.5",
        "cosine:10:-0.1",
        "cosine:10:0.5:1",
        "step:10",
        "step:0:0.5",
        "step:10:0",
        "step:10:-1",
        "step:10:x",
        "cosine:10+step:5:0.5",
        "cosine:10+warmup:5",
        "+",
        "warmup:5+",
        "warmup:5++cosine:10",
        "constant+cosine:10",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        roteq_schedule s;
        roteq_error_clear();
        if (roteq_schedule_parse(bad[i], &s) != ROTEQ_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(roteq_error_message(), "malformed schedule"));
    }
    char longspec[400];
    memset(longspec, 'a', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = '\0';
    roteq_schedule s;
    assert_int_equal(roteq_schedule_parse(longspec, &s), ROTEQ_EINVAL);
    assert_int_equal(roteq_schedule_parse(NULL, &s), ROTEQ_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_warmup),
        cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
