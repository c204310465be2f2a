/* test_sleef.c - the SLEEF comparison `roteq bench` times (sim/bench_sleef.c): the same Philox
 * words through SLEEF's log/sincospi give the philox10-boxmuller normals up to rounding (1e-12 relative,
 * both accuracy classes, every instruction set SLEEF is built for here), the timed loop draws
 * those normals, and the unsupported and invalid cases fail with the right status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_sim.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const roteq_sim_isa isas[] = {ROTEQ_SIM_ISA_AVX2, ROTEQ_SIM_ISA_AVX512};

/* Same uniforms in, so the same normals out: the worst relative difference over many streams
 * and steps (including the step-0 and per-neuron counters), both classes. */
static void test_sleef_matches_engine(void **state)
{
    (void)state;
    const size_t n = 1000; /* not a whole batch: the tail is cut like the engine's */
    double *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    assert_non_null(ref);
    assert_non_null(got);
    const uint64_t seeds[] = {0, 42, 0x123456789abcdefull};
    const uint64_t steps[] = {0, 1, 2, 777, 0x100000007ull, UINT64_MAX};
    int tested = 0;
    for (size_t ii = 0; ii < sizeof isas / sizeof *isas; ii++) {
        if (!roteq_sim_sleef_available(isas[ii]))
            continue;
        for (int u35 = 0; u35 <= 1; u35++) {
            double worst = 0.0, maxabs = 0.0;
            size_t count = 0;
            for (size_t a = 0; a < sizeof seeds / sizeof *seeds; a++)
                for (size_t b = 0; b < sizeof steps / sizeof *steps; b++)
                    for (uint32_t stream = 0; stream < 40; stream += 13) {
                        assert_int_equal(roteq_sim_normals_as(ROTEQ_NORMALS_PHILOX10_BOXMULLER,
                                                              ROTEQ_SIM_ISA_AUTO, seeds[a], stream,
                                                              steps[b], ref, n),
                                         0);
                        assert_int_equal(roteq_sim_sleef_normals(isas[ii], u35, seeds[a], stream,
                                                                 steps[b], got, n),
                                         0);
                        for (size_t i = 0; i < n; i++) {
                            double rel = fabs(got[i] - ref[i]) / fabs(ref[i]);
                            if (rel > worst)
                                worst = rel;
                            if (fabs(ref[i]) > maxabs)
                                maxabs = fabs(ref[i]);
                            count++;
                        }
                    }
            printf("# SLEEF %s %s: %zu normals, worst relative difference %.2g (max |z| %.2f)\n",
                   roteq_sim_isa_names[isas[ii]], u35 ? "u35" : "u10", count, worst, maxabs);
            assert_true(maxabs > 4.0); /* the draws reach the tails, where log matters most */
            assert_true(worst < 1e-12);
            assert_true(worst > 0.0); /* really SLEEF's arithmetic, not the engine's again */
            tested++;
        }
    }
    if (!tested)
        printf("# no SLEEF instruction set on this machine: skipped\n");
    free(ref);
    free(got);
}

/* The timed loop draws those normals: its checksum equals the philox10-boxmuller floor's up to
 * rounding (both sum in the same order), for 1 and 2 threads. */
static void test_sleef_bench(void **state)
{
    (void)state;
    double floor_sum = 0.0;
    assert_true(roteq_sim_bench_normals_as(ROTEQ_NORMALS_PHILOX10_BOXMULLER, 6, 100, 12, 1,
                                           ROTEQ_SIM_ISA_GENERIC, &floor_sum) >= 0);
    for (size_t ii = 0; ii < sizeof isas / sizeof *isas; ii++) {
        if (!roteq_sim_sleef_available(isas[ii]))
            continue;
        for (int u35 = 0; u35 <= 1; u35++)
            for (unsigned th = 1; th <= 2; th++) {
                double sum = NAN;
                double t = roteq_sim_bench_sleef_normals(6, 100, 12, th, isas[ii], u35, &sum);
                assert_true(t >= 0);
                /* 6 * 12 * 128 normals of size ~1 with rounding differences of ~1e-15 each
                 * (the sum itself is O(100), so compare absolutely). */
                assert_true(fabs(sum - floor_sum) < 1e-9);
                assert_true(sum != 0.0);
            }
    }
}

static void test_sleef_errors(void **state)
{
    (void)state;
    double z[8];
    /* The generic kernels have no SLEEF counterpart. */
    assert_false(roteq_sim_sleef_available(ROTEQ_SIM_ISA_GENERIC));
    assert_int_equal(roteq_sim_sleef_normals(ROTEQ_SIM_ISA_GENERIC, 0, 1, 0, 1, z, 8),
                     ROTEQ_EUNSUPPORTED);
    assert_non_null(strstr(roteq_error_message(), "generic"));
    assert_true(roteq_sim_bench_sleef_normals(4, 8, 2, 1, ROTEQ_SIM_ISA_GENERIC, 1, NULL) ==
                (double)ROTEQ_EUNSUPPORTED);
    /* An instruction set out of range. */
    assert_false(roteq_sim_sleef_available(ROTEQ_SIM_ISA_COUNT));
    assert_int_equal(roteq_sim_sleef_normals(ROTEQ_SIM_ISA_COUNT, 0, 1, 0, 1, z, 8), ROTEQ_EINVAL);
    assert_true(roteq_sim_bench_sleef_normals(4, 8, 2, 1, (roteq_sim_isa)-1, 0, NULL) ==
                (double)ROTEQ_EINVAL);
    /* Empty work, where SLEEF exists here. */
    if (roteq_sim_sleef_available(ROTEQ_SIM_ISA_AUTO)) {
        assert_true(roteq_sim_bench_sleef_normals(0, 8, 2, 1, ROTEQ_SIM_ISA_AUTO, 0, NULL) ==
                    (double)ROTEQ_EINVAL);
        assert_true(roteq_sim_bench_sleef_normals(4, 8, 0, 1, ROTEQ_SIM_ISA_AUTO, 0, NULL) ==
                    (double)ROTEQ_EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sleef_matches_engine),
        cmocka_unit_test(test_sleef_bench),
        cmocka_unit_test(test_sleef_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
