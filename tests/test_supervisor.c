/* Tests for src/actor/supervisor.c. Children register as "child-<id>" so the
 * test can find the running incarnation; they record starts and stops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stdatomic.h>

#include <troupe.h>

#include "support.h"

enum { MSG_CRASH = 1, MSG_QUIT, MSG_STOP_SUP };

static _Atomic int starts[8], stops[8];
static _Atomic int stop_order[8], stop_seq;
static _Atomic int fail_init[8]; /* child id fails in init while set */
static _Atomic int sup_end_reason, sup_ended;

static void reset(void)
{
    for (int i = 0; i < 8; i++)
        starts[i] = stops[i] = stop_order[i] = fail_init[i] = 0;
    stop_seq = 0;
    sup_end_reason = 12345;
    sup_ended = 0;
}

typedef struct {
    int id;
} child_state;

static int child_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    child_state *c = state;
    c->id = *(const int *)tr_msg_data(arg);
    starts[c->id]++;
    if (fail_init[c->id])
        return 66;
    char name[16];
    snprintf(name, sizeof name, "child-%d", c->id);
    return tr_register(ctx, name);
}

static void child_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_msg_type(msg) == MSG_CRASH)
        tr_exit(ctx, 99);
    else if (tr_msg_type(msg) == MSG_QUIT)
        tr_exit(ctx, TR_EXIT_NORMAL);
}

static void child_terminate(tr_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)reason;
    child_state *c = state;
    stops[c->id]++;
    stop_order[atomic_fetch_add(&stop_seq, 1)] = c->id;
}

static const tr_behavior child = {.name = "child",
                                  .state_size = sizeof(child_state),
                                  .init = child_init,
                                  .receive = child_receive,
                                  .terminate = child_terminate};

/* A child that traps exits and ignores them: it must be killed. */
static int stubborn_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    tr_trap_exit(ctx, true);
    return child_init(ctx, state, arg);
}

static const tr_behavior stubborn = {.name = "stubborn",
                                     .state_size = sizeof(child_state),
                                     .init = stubborn_init,
                                     .receive = child_receive,
                                     .terminate = child_terminate};

static const int ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};

static tr_child_spec spec_of(int id, tr_restart restart)
{
    return (tr_child_spec){.id = "child", .behavior = &child, .init = &ids[id],
                           .init_size = sizeof(int), .restart = restart};
}

/* The test's stand-in parent: watches the supervisor, records how it ended. */
static void parent_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state;
    if (tr_msg_type(msg) == TR_MSG_DOWN) {
        sup_end_reason = ((const tr_down *)tr_msg_data(msg))->reason;
        sup_ended++;
    } else if (tr_msg_type(msg) == MSG_STOP_SUP) {
        tr_kill(ctx, *(const tr_addr *)tr_msg_data(msg), TR_EXIT_SHUTDOWN);
    }
}

static int parent_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    return tr_monitor(ctx, *(const tr_addr *)tr_msg_data(arg), NULL);
}

static const tr_behavior parent = {.name = "parent", .init = parent_init, .receive = parent_receive};

static tr_addr child_addr(tr_system *sys, int id)
{
    char name[16];
    snprintf(name, sizeof name, "child-%d", id);
    tr_addr a = TR_ADDR_NONE;
    tr_whereis(sys, name, &a);
    return a;
}

static void tell_child(tr_system *sys, int id, int type)
{
    tr_addr a = child_addr(sys, id);
    assert_false(tr_addr_is_none(a));
    tr_system_send(sys, a, tr_msg_new((uint32_t)type, NULL, 0));
}

static tr_system *start(tr_supervisor_spec *spec, tr_addr *sup, tr_addr *watcher)
{
    tr_system *sys = new_system(2);
    assert_int_equal(tr_system_spawn_supervisor(sys, spec, sup), 0);
    tr_system_spawn(sys, &parent, tr_msg_new(0, sup, sizeof *sup), watcher);
    assert_int_equal(tr_system_run(sys), 0);
    return sys;
}

static void one_for_one__crashed_child_alone_is_restarted(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_PERMANENT), spec_of(1, TR_RESTART_PERMANENT)};
    tr_supervisor_spec spec = {TR_ONE_FOR_ONE, 5, 1000, 0, kids, 2};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    assert_int_equal(starts[0], 1);
    tr_addr before = child_addr(sys, 0);
    tell_child(sys, 0, MSG_CRASH);
    tr_system_run(sys);
    assert_int_equal(starts[0], 2);
    assert_int_equal(starts[1], 1);
    assert_false(tr_addr_eq(before, child_addr(sys, 0))); /* a new incarnation */
    assert_int_equal(sup_ended, 0);
    tr_system_free(sys);
}

static void one_for_all__crash_restarts_every_child(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_PERMANENT), spec_of(1, TR_RESTART_PERMANENT),
                            spec_of(2, TR_RESTART_PERMANENT)};
    tr_supervisor_spec spec = {TR_ONE_FOR_ALL, 5, 1000, 0, kids, 3};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    tell_child(sys, 1, MSG_CRASH);
    tr_system_run(sys);
    for (int i = 0; i < 3; i++)
        assert_int_equal(starts[i], 2);
    assert_int_equal(stop_order[1], 2); /* the others stopped newest first */
    assert_int_equal(stop_order[2], 0);
    tr_system_free(sys);
}

static void rest_for_one__crash_restarts_it_and_those_after(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_PERMANENT), spec_of(1, TR_RESTART_PERMANENT),
                            spec_of(2, TR_RESTART_PERMANENT)};
    tr_supervisor_spec spec = {TR_REST_FOR_ONE, 5, 1000, 0, kids, 3};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    tell_child(sys, 1, MSG_CRASH);
    tr_system_run(sys);
    assert_int_equal(starts[0], 1);
    assert_int_equal(starts[1], 2);
    assert_int_equal(starts[2], 2);
    tr_system_free(sys);
}

static void restart_kinds__transient_on_failure_only_temporary_never(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_TRANSIENT), spec_of(1, TR_RESTART_TRANSIENT),
                            spec_of(2, TR_RESTART_TEMPORARY)};
    tr_supervisor_spec spec = {TR_ONE_FOR_ONE, 5, 1000, 0, kids, 3};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    tell_child(sys, 2, MSG_CRASH); /* temporary: stays down... */
    tr_system_run(sys);
    tell_child(sys, 0, MSG_QUIT);  /* normal: stays down */
    tell_child(sys, 1, MSG_CRASH); /* abnormal: restarted, and only it */
    tr_system_run(sys);
    assert_int_equal(starts[0], 1);
    assert_int_equal(starts[1], 2);
    assert_int_equal(starts[2], 1);
    tr_system_free(sys);
}

static void budget__exhausted__supervisor_stops_children_and_fails(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_PERMANENT), spec_of(1, TR_RESTART_PERMANENT)};
    tr_supervisor_spec spec = {TR_ONE_FOR_ONE, 2, 60000, 0, kids, 2};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    for (int i = 0; i < 3; i++) { /* the third crash in the window is one too many */
        tell_child(sys, 0, MSG_CRASH);
        tr_system_run(sys);
    }
    assert_int_equal(starts[0], 3);
    assert_int_equal(sup_ended, 1);
    assert_int_equal(sup_end_reason, TR_EXIT_RESTARTS);
    assert_int_equal(stops[1], 1); /* the healthy child was stopped too */
    assert_true(tr_addr_is_none(child_addr(sys, 1)));
    tr_system_free(sys);
}

static void budget__child_failing_during_restart__gives_up_without_looping(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_PERMANENT)};
    tr_supervisor_spec spec = {TR_ONE_FOR_ONE, 3, 60000, 0, kids, 1};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    fail_init[0] = 1; /* every restart fails in init */
    tell_child(sys, 0, MSG_CRASH);
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(starts[0], 1 + 3); /* the first, then three failed restarts */
    assert_int_equal(sup_ended, 1);
    assert_int_equal(sup_end_reason, TR_EXIT_RESTARTS);
    tr_system_free(sys);
}

static void escalation__child_supervisor_gives_up__parent_restarts_it(void **state)
{
    (void)state;
    reset();
    tr_child_spec leaf_kids[] = {spec_of(0, TR_RESTART_PERMANENT)};
    tr_supervisor_spec leaf = {TR_ONE_FOR_ONE, 1, 60000, 0, leaf_kids, 1};
    tr_child_spec top_kids[] = {{.id = "leaf", .supervisor = &leaf}};
    tr_supervisor_spec top = {TR_ONE_FOR_ONE, 5, 60000, 0, top_kids, 1};
    tr_addr sup, w;
    tr_system *sys = start(&top, &sup, &w);
    tell_child(sys, 0, MSG_CRASH); /* the leaf restarts it */
    tr_system_run(sys);
    tell_child(sys, 0, MSG_CRASH); /* again: the leaf's budget of 1 is gone */
    tr_system_run(sys);
    /* the leaf failed, the top restarted the leaf, which started the child */
    assert_int_equal(starts[0], 3);
    assert_int_equal(sup_ended, 0); /* the top is fine */
    assert_false(tr_addr_is_none(child_addr(sys, 0)));
    tr_system_free(sys);
}

static void shutdown__children_stop_in_reverse_start_order(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_PERMANENT), spec_of(1, TR_RESTART_PERMANENT),
                            spec_of(2, TR_RESTART_PERMANENT), spec_of(3, TR_RESTART_PERMANENT)};
    tr_supervisor_spec spec = {TR_ONE_FOR_ONE, 5, 1000, 0, kids, 4};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    tr_system_send(sys, w, tr_msg_new(MSG_STOP_SUP, &sup, sizeof sup));
    tr_system_run(sys);
    assert_int_equal(stop_seq, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(stop_order[i], 3 - i);
    assert_int_equal(sup_ended, 1);
    assert_int_equal(sup_end_reason, TR_EXIT_SHUTDOWN);
    tr_system_free(sys);
}

static void shutdown__child_ignoring_the_signal__is_killed_after_grace(void **state)
{
    (void)state;
    reset();
    tr_child_spec kids[] = {spec_of(0, TR_RESTART_PERMANENT),
                            {.id = "stubborn", .behavior = &stubborn, .init = &ids[1],
                             .init_size = sizeof(int)}};
    tr_supervisor_spec spec = {TR_ONE_FOR_ONE, 5, 1000, 50, kids, 2};
    tr_addr sup, w;
    tr_system *sys = start(&spec, &sup, &w);
    tr_system_send(sys, w, tr_msg_new(MSG_STOP_SUP, &sup, sizeof sup));
    tr_system_run(sys);
    assert_int_equal(stop_order[0], 1); /* killed after its 50 ms */
    assert_int_equal(stop_order[1], 0);
    assert_int_equal(sup_ended, 1);
    tr_system_free(sys);
}

static void spawn_supervisor__bad_spec__einval(void **state)
{
    (void)state;
    tr_system *sys = new_system(1);
    tr_supervisor_spec empty = {TR_ONE_FOR_ONE, 1, 1, 0, NULL, 0};
    tr_child_spec nobody[] = {{.id = "x", .behavior = NULL}};
    tr_supervisor_spec no_behaviour = {TR_ONE_FOR_ONE, 1, 1, 0, nobody, 1};
    assert_int_equal(tr_system_spawn_supervisor(sys, &empty, NULL), TR_EINVAL);
    assert_int_equal(tr_system_spawn_supervisor(sys, &no_behaviour, NULL), TR_EINVAL);
    assert_int_equal(tr_system_spawn_supervisor(sys, NULL, NULL), TR_EINVAL);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_for_one__crashed_child_alone_is_restarted),
        cmocka_unit_test(one_for_all__crash_restarts_every_child),
        cmocka_unit_test(rest_for_one__crash_restarts_it_and_those_after),
        cmocka_unit_test(restart_kinds__transient_on_failure_only_temporary_never),
        cmocka_unit_test(budget__exhausted__supervisor_stops_children_and_fails),
        cmocka_unit_test(budget__child_failing_during_restart__gives_up_without_looping),
        cmocka_unit_test(escalation__child_supervisor_gives_up__parent_restarts_it),
        cmocka_unit_test(shutdown__children_stop_in_reverse_start_order),
        cmocka_unit_test(shutdown__child_ignoring_the_signal__is_killed_after_grace),
        cmocka_unit_test(spawn_supervisor__bad_spec__einval),
    };
    return cmocka_run_group_tests_name("supervisor", tests, NULL, NULL);
}
