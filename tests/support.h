/* Helpers shared by the tests that go through the public API. Include after
 * <cmocka.h>. */
#ifndef TR_TEST_SUPPORT_H
#define TR_TEST_SUPPORT_H

#include <troupe.h>

/* A system with this many workers (more than the machine's cores is fine:
 * it shakes out races); fails the test if it cannot be made. */
static inline tr_system *new_system(unsigned workers)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = workers;
    tr_system *sys = NULL;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    assert_non_null(sys);
    return sys;
}

#endif
