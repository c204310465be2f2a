/* test_parity.c - the update rules reproduce PyTorch's (and Lion's published) trajectories.
 *
 * Reads every CSV file in tests/data/optimizer_steps (written by tests/data/gen_optimizer_steps.py
 * from torch.optim and Lion's published algorithm): `#` header lines give
 * the source and the hyperparameters ("# optimizer=NAME lr=... weight_decay=..."), then rows
 * step,kind,x0..: the initial parameters (step 0), and for each step the gradient PyTorch saw
 * and the parameters after its step. Each file is replayed through roteq_sim_rule_for's rules and
 * every coordinate must agree to 1e-12 relative error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roteq_sim.h"
#include "roteq_test.h"
#include "roteq_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXC 64

/* NAME may carry a variant suffix ("adamw_beta", "sgd_nesterov"): strip '_' suffixes until the
 * optimizer table knows it; nesterov=True selects nesterov. */
static const roteq_optimizer_type *optimizer_for(const char *name, int nesterov)
{
    if (nesterov)
        return &roteq_nesterov;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", name);
    for (;;) {
        const roteq_optimizer_type *o = roteq_optimizer_lookup(buf);
        if (o)
            return o;
        char *us = strrchr(buf, '_');
        if (!us)
            return NULL;
        *us = '\0';
    }
}

typedef struct {
    const roteq_optimizer_type *opt;
    roteq_hparams hp;
    size_t steps_checked;
    double worst;
} replay;

static void parse_header(char *line, char *optname, size_t n, roteq_hparams *hp, int *nesterov,
                         unsigned *given)
{
    for (char *tok = strtok(line + 1, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *key = tok, *val = eq + 1;
        if (strcmp(key, "optimizer") == 0) {
            snprintf(optname, n, "%s", val);
        } else if (strcmp(key, "nesterov") == 0) {
            *nesterov = strcmp(val, "True") == 0 || strcmp(val, "1") == 0;
        } else {
            const roteq_hparam_desc *d = roteq_hparam_lookup(key);
            assert_non_null(d);
            double v;
            assert_int_equal(roteq_parse_double(val, &v), 0);
            roteq_hparams_set(hp, d->id, v);
            *given |= ROTEQ_HP_BIT(d->id);
        }
    }
}

static void replay_file(const char *path, replay *rp)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192], optname[64] = "";
    roteq_hparams given_hp;
    memset(&given_hp, 0, sizeof given_hp);
    unsigned given = 0;
    int nesterov = 0, header_done = 0;
    size_t ncoord = 0, t = 0;
    double w[MAXC], g[MAXC], state[4 * MAXC], scal[4] = {0};
    int have_grad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            parse_header(line, optname, sizeof optname, &given_hp, &nesterov, &given);
            continue;
        }
        if (!header_done) { /* the column line */
            header_done = 1;
            rp->opt = optimizer_for(optname, nesterov);
            if (!rp->opt)
                fail_msg("%s: unknown optimizer '%s'", path, optname);
            rp->hp = roteq_optimizer_defaults(rp->opt);
            for (int i = 0; i < ROTEQ_HP_COUNT; i++)
                if (given & ROTEQ_HP_BIT(i))
                    roteq_hparams_set(&rp->hp, (roteq_hparam_id)i,
                                      roteq_hparams_get(&given_hp, (roteq_hparam_id)i));
            if (rp->opt->hparams & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING) &&
                !(given & ROTEQ_HP_BIT(ROTEQ_HP_DAMPENING)))
                rp->hp.dampening = 0.0;
            if (rp->opt == &roteq_sgd) /* plain SGD: no momentum buffer */
                rp->hp.momentum = 0.0;
            for (char *c = strtok(line, ",\r\n"); c; c = strtok(NULL, ",\r\n"))
                if (c[0] == 'x')
                    ncoord++;
            assert_true(ncoord > 0 && ncoord <= MAXC);
            memset(state, 0, sizeof state);
            continue;
        }
        char *step_s = strtok(line, ","), *kind = strtok(NULL, ",");
        assert_non_null(kind);
        double x[MAXC];
        for (size_t i = 0; i < ncoord; i++) {
            char *c = strtok(NULL, ",\r\n");
            assert_non_null(c);
            assert_int_equal(roteq_parse_double(c, &x[i]), 0);
        }
        size_t step = strtoul(step_s, NULL, 10);
        if (strcmp(kind, "grad") == 0) {
            memcpy(g, x, sizeof x);
            have_grad = 1;
            assert_int_equal(step, t + 1);
        } else if (step == 0) {
            memcpy(w, x, sizeof x);
        } else {
            assert_true(have_grad);
            t = step;
            roteq_sim_coef k;
            roteq_sim_coef_init(&k, rp->opt, &rp->hp, t, rp->hp.lr, rp->hp.weight_decay, NAN);
            roteq_sim_rule_for(rp->opt)->step(&k, w, g, state, scal, ncoord, MAXC);
            for (size_t i = 0; i < ncoord; i++) {
                double err = fabs(w[i] - x[i]) / fabs(x[i]);
                if (err > rp->worst)
                    rp->worst = err;
                if (!(err <= 1e-12))
                    fail_msg("%s: step %zu x%zu = %.17g, PyTorch %.17g (relative error %.3g)", path,
                             t, i, w[i], x[i], err);
            }
            rp->steps_checked++;
            have_grad = 0;
        }
    }
    fclose(f);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void test_reference_trajectories(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/optimizer_steps", roteq_test_source_dir());
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    size_t files = 0;
    unsigned seen = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!ends_with(e->d_name, ".csv"))
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        replay rp = {0};
        replay_file(path, &rp);
        assert_true(rp.steps_checked >= 10);
        printf("# %-22s %-9s %zu steps, worst relative error %.2g\n", e->d_name, rp.opt->name,
               rp.steps_checked, rp.worst);
        for (int id = 0; id < ROTEQ_OPT_COUNT; id++)
            if (roteq_optimizers[id] == rp.opt)
                seen |= 1u << id;
        files++;
    }
    closedir(d);
    assert_true(files >= 1);
    /* Every non-rotational rule must be covered by at least one reference file. */
    for (int id = 0; id < ROTEQ_OPT_COUNT; id++)
        if (!(roteq_optimizers[id]->flags & ROTEQ_OPTF_ROTATIONAL) && !(seen & (1u << id)) &&
            roteq_optimizers[id]->family->granularity != ROTEQ_GRAN_MATRIX)
            fail_msg("no reference trajectory for %s", roteq_optimizers[id]->name);
}

/* The table is complete and consistent with theory's optimizer table. */
static void test_rule_table(void **state)
{
    (void)state;
    for (int id = 0; id < ROTEQ_OPT_COUNT; id++) {
        const roteq_sim_rule *r = roteq_sim_rule_for(roteq_optimizers[id]);
        assert_non_null(r);
        assert_ptr_equal(r->opt, roteq_optimizers[id]);
        if (roteq_optimizers[id]->family->granularity == ROTEQ_GRAN_MATRIX) {
            /* no per-neuron step: the engine refuses it, with a message */
            assert_null(r->step);
            roteq_sim_config c;
            roteq_sim_config_init(&c, roteq_optimizers[id]);
            assert_int_equal(roteq_sim_config_validate(&c), ROTEQ_EUNSUPPORTED);
            assert_non_null(strstr(roteq_error_message(), "whole matrices"));
            continue;
        }
        assert_non_null(r->step);
        assert_non_null(r->init);
        int rv = (roteq_optimizers[id]->flags & ROTEQ_OPTF_ROTATIONAL) != 0;
        assert_int_equal(r->scalars, rv ? 2 : 0);
    }
    assert_null(roteq_optimizers[ROTEQ_OPT_COUNT]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_table),
        cmocka_unit_test(test_reference_trajectories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
