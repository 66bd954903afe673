/* Tests for src/actor/watch.c: links, monitors, exit signals, and the
 * system lane they travel in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stdatomic.h>

#include <troupe.h>

#include "support.h"

enum { MSG_DIE = 1, MSG_WATCH, MSG_LINK, MSG_UNLINK, MSG_DEMONITOR_THEN_KILL, MSG_TRAP, MSG_KILL };

static _Atomic long downs, exits_trapped, terminated, noproc_downs, user_msgs;
static _Atomic long reason_sum;
static _Atomic int last_reason;
static _Atomic long user_msgs_at_down;

static void reset(void)
{
    downs = exits_trapped = terminated = noproc_downs = user_msgs = reason_sum = 0;
    last_reason = 12345;
}

typedef struct {
    tr_addr arg;
    int reason;
} order;

/* A scripted actor: does what each message says, records what it receives. */
static void puppet_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    const order *o = tr_msg_data(msg);
    switch (tr_msg_type(msg)) {
    case TR_MSG_DOWN: {
        const tr_down *d = tr_msg_data(msg);
        downs++;
        user_msgs_at_down = user_msgs;
        reason_sum += d->reason;
        if (d->reason == TR_EXIT_NOPROC)
            noproc_downs++;
        return;
    }
    case TR_MSG_EXIT: {
        const tr_exit_info *e = tr_msg_data(msg);
        exits_trapped++;
        reason_sum += e->reason;
        return;
    }
    case MSG_DIE:
        tr_exit(ctx, o->reason);
        return;
    case MSG_WATCH:
        assert_int_equal(tr_monitor(ctx, o->arg, NULL), 0);
        return;
    case MSG_LINK:
        assert_int_equal(tr_link(ctx, o->arg), 0);
        return;
    case MSG_UNLINK:
        tr_unlink(ctx, o->arg);
        return;
    case MSG_DEMONITOR_THEN_KILL: {
        uint64_t ref;
        assert_int_equal(tr_monitor(ctx, o->arg, &ref), 0);
        assert_int_equal(tr_demonitor(ctx, ref), 0);
        assert_int_equal(tr_demonitor(ctx, ref), TR_EINVAL);
        tr_kill(ctx, o->arg, o->reason);
        return;
    }
    case MSG_TRAP:
        tr_trap_exit(ctx, true);
        return;
    case MSG_KILL:
        tr_kill(ctx, o->arg, o->reason);
        return;
    default:
        user_msgs++;
    }
}

static void puppet_terminate(tr_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)state;
    terminated++;
    last_reason = reason;
}

static const tr_behavior puppet = {
    .name = "puppet", .receive = puppet_receive, .terminate = puppet_terminate};

static tr_addr spawn_puppet(tr_system *sys)
{
    tr_addr a;
    assert_int_equal(tr_system_spawn(sys, &puppet, NULL, &a), 0);
    return a;
}

static void tell(tr_system *sys, tr_addr to, int type, tr_addr arg, int reason)
{
    order o = {arg, reason};
    tr_system_send(sys, to, tr_msg_new((uint32_t)type, &o, sizeof o));
}

static void monitor__target_exits__one_down_with_its_reason(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr watcher = spawn_puppet(sys), target = spawn_puppet(sys);
    tell(sys, watcher, MSG_WATCH, target, 0);
    tr_system_run(sys); /* the monitor is in place */
    tell(sys, target, MSG_DIE, TR_ADDR_NONE, 77);
    tr_system_run(sys);
    assert_int_equal(downs, 1);
    assert_int_equal(reason_sum, 77);
    tr_system_free(sys);
}

static void monitor__target_already_ended__down_with_noproc(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr watcher = spawn_puppet(sys), target = spawn_puppet(sys);
    tell(sys, target, MSG_DIE, TR_ADDR_NONE, 5);
    tr_system_run(sys);
    tell(sys, watcher, MSG_WATCH, target, 0);
    tr_system_run(sys);
    assert_int_equal(downs, 1);
    assert_int_equal(noproc_downs, 1);
    tr_system_free(sys);
}

static void monitor__target_dying_at_the_same_moment__exactly_one_down(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(4);
    enum { N = 2000 };
    tr_addr watcher = spawn_puppet(sys);
    /* The target's death and the monitor request race across workers. */
    for (int i = 0; i < N; i++) {
        tr_addr target = spawn_puppet(sys);
        tell(sys, target, MSG_DIE, TR_ADDR_NONE, 1);
        tell(sys, watcher, MSG_WATCH, target, 0);
    }
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(downs, N);
    /* each down says 1 (seen dying) or noproc (already gone) */
    assert_int_equal(reason_sum, (N - noproc_downs) * 1 + noproc_downs * TR_EXIT_NOPROC);
    tr_system_free(sys);
}

static void demonitor__before_target_ends__no_down(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr watcher = spawn_puppet(sys), target = spawn_puppet(sys);
    tell(sys, watcher, MSG_DEMONITOR_THEN_KILL, target, 9);
    tr_system_run(sys);
    assert_int_equal(terminated, 1); /* the target was killed */
    assert_int_equal(last_reason, 9);
    assert_int_equal(downs, 0);      /* but the monitor was gone */
    tr_system_free(sys);
}

static void link__abnormal_exit__ends_linked_actor_with_same_reason(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a = spawn_puppet(sys), b = spawn_puppet(sys);
    tell(sys, a, MSG_LINK, b, 0);
    tr_system_run(sys);
    tell(sys, b, MSG_DIE, TR_ADDR_NONE, 42);
    tr_system_run(sys);
    assert_int_equal(terminated, 2);
    assert_int_equal(last_reason, 42);
    assert_int_equal(tr_system_send(sys, a, tr_msg_new(100, NULL, 0)), TR_EDEAD);
    tr_system_free(sys);
}

static void link__normal_exit__linked_actor_lives(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a = spawn_puppet(sys), b = spawn_puppet(sys);
    tell(sys, a, MSG_LINK, b, 0);
    tr_system_run(sys);
    tell(sys, b, MSG_DIE, TR_ADDR_NONE, TR_EXIT_NORMAL);
    tr_system_run(sys);
    assert_int_equal(terminated, 1);
    assert_int_equal(tr_system_send(sys, a, tr_msg_new(100, NULL, 0)), 0);
    tr_system_free(sys);
}

static void link__trapping_exits__receives_exit_message_instead(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a = spawn_puppet(sys), b = spawn_puppet(sys);
    tell(sys, a, MSG_TRAP, TR_ADDR_NONE, 0);
    tell(sys, a, MSG_LINK, b, 0);
    tr_system_run(sys);
    tell(sys, b, MSG_DIE, TR_ADDR_NONE, 13);
    tr_system_run(sys);
    assert_int_equal(terminated, 1);
    assert_int_equal(exits_trapped, 1);
    assert_int_equal(reason_sum, 13);
    tr_system_free(sys);
}

static void link__cycle_of_three__one_failure_ends_all_once(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(3);
    tr_addr a = spawn_puppet(sys), b = spawn_puppet(sys), c = spawn_puppet(sys);
    tell(sys, a, MSG_LINK, b, 0);
    tell(sys, b, MSG_LINK, c, 0);
    tell(sys, c, MSG_LINK, a, 0);
    tr_system_run(sys);
    tell(sys, b, MSG_DIE, TR_ADDR_NONE, 3);
    assert_int_equal(tr_system_run(sys), 0); /* and it returns: no endless signalling */
    assert_int_equal(terminated, 3);
    assert_int_equal(last_reason, 3);
    tr_system_free(sys);
}

static void unlink__then_exit__partner_lives(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a = spawn_puppet(sys), b = spawn_puppet(sys);
    tell(sys, a, MSG_LINK, b, 0);
    tr_system_run(sys);
    tell(sys, a, MSG_UNLINK, b, 0);
    tr_system_run(sys);
    tell(sys, b, MSG_DIE, TR_ADDR_NONE, 8);
    tr_system_run(sys);
    assert_int_equal(terminated, 1);
    tr_system_free(sys);
    assert_int_equal(terminated, 2); /* a, at shutdown */
}

static void link__to_ended_actor__acts_as_noproc_exit(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a = spawn_puppet(sys), b = spawn_puppet(sys);
    tell(sys, b, MSG_DIE, TR_ADDR_NONE, 0);
    tr_system_run(sys);
    tell(sys, a, MSG_LINK, b, 0);
    tr_system_run(sys);
    assert_int_equal(terminated, 2);
    assert_int_equal(last_reason, TR_EXIT_NOPROC);
    tr_system_free(sys);
}

static void kill__killed_reason__cannot_be_trapped(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a = spawn_puppet(sys), b = spawn_puppet(sys);
    tell(sys, b, MSG_TRAP, TR_ADDR_NONE, 0);
    tell(sys, a, MSG_KILL, b, 21); /* trapped: a message */
    tr_system_run(sys);
    assert_int_equal(exits_trapped, 1);
    assert_int_equal(terminated, 0);
    tell(sys, a, MSG_KILL, b, TR_EXIT_KILLED);
    tr_system_run(sys);
    assert_int_equal(terminated, 1);
    assert_int_equal(last_reason, TR_EXIT_KILLED);
    tr_system_free(sys);
}

static void system_lane__down_overtakes_a_full_mailbox(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(1);
    tr_addr watcher = spawn_puppet(sys), target = spawn_puppet(sys);
    tell(sys, watcher, MSG_WATCH, target, 0);
    tr_system_run(sys);
    /* The target is told to end first, then the watcher gets a backlog; with
     * one worker the target runs first, so its down reaches the watcher
     * behind 1000 queued messages. */
    tell(sys, target, MSG_DIE, TR_ADDR_NONE, 4);
    for (int i = 0; i < 1000; i++)
        tr_system_send(sys, watcher, tr_msg_new(100, NULL, 0));
    tr_system_run(sys);
    assert_int_equal(downs, 1);
    assert_int_equal(user_msgs, 1000);
    assert_int_equal(user_msgs_at_down, 0); /* the down jumped the queue */
    tr_system_free(sys);
}

static int linking_parent_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    tr_spawn_opts linked = {.link = true};
    tr_addr child;
    assert_int_equal(tr_spawn_opt(ctx, &puppet, NULL, &linked, &child), 0);
    return tr_send(ctx, child, tr_msg_new(MSG_DIE, &(order){TR_ADDR_NONE, 31}, sizeof(order)));
}

static const tr_behavior linking_parent = {.name = "linking parent",
                                           .init = linking_parent_init,
                                           .receive = puppet_receive,
                                           .terminate = puppet_terminate};

static void spawn_opt__link__child_failure_ends_the_parent(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_system_spawn(sys, &linking_parent, NULL, NULL);
    tr_system_run(sys);
    assert_int_equal(terminated, 2); /* the child, then the parent through the link */
    assert_int_equal(last_reason, 31);
    tr_system_free(sys);
}

static void send__reserved_type__einval(void **state)
{
    (void)state;
    tr_system *sys = new_system(1);
    tr_addr a = spawn_puppet(sys);
    tr_down fake = {a, 0, 1};
    assert_int_equal(tr_system_send(sys, a, tr_msg_new(TR_MSG_DOWN, &fake, sizeof fake)),
                     TR_EINVAL);
    tr_system_free(sys);
}

static void monitor__many_watchers__each_gets_one_down(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(4);
    enum { N = 1000 };
    tr_addr target = spawn_puppet(sys);
    for (int i = 0; i < N; i++)
        tell(sys, spawn_puppet(sys), MSG_WATCH, target, 0);
    tr_system_run(sys);
    tell(sys, target, MSG_DIE, TR_ADDR_NONE, 2);
    tr_system_run(sys);
    assert_int_equal(downs, N);
    assert_int_equal(reason_sum, 2 * N);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(monitor__target_exits__one_down_with_its_reason),
        cmocka_unit_test(monitor__target_already_ended__down_with_noproc),
        cmocka_unit_test(monitor__target_dying_at_the_same_moment__exactly_one_down),
        cmocka_unit_test(demonitor__before_target_ends__no_down),
        cmocka_unit_test(link__abnormal_exit__ends_linked_actor_with_same_reason),
        cmocka_unit_test(link__normal_exit__linked_actor_lives),
        cmocka_unit_test(link__trapping_exits__receives_exit_message_instead),
        cmocka_unit_test(link__cycle_of_three__one_failure_ends_all_once),
        cmocka_unit_test(unlink__then_exit__partner_lives),
        cmocka_unit_test(link__to_ended_actor__acts_as_noproc_exit),
        cmocka_unit_test(kill__killed_reason__cannot_be_trapped),
        cmocka_unit_test(system_lane__down_overtakes_a_full_mailbox),
        cmocka_unit_test(spawn_opt__link__child_failure_ends_the_parent),
        cmocka_unit_test(send__reserved_type__einval),
        cmocka_unit_test(monitor__many_watchers__each_gets_one_down),
    };
    return cmocka_run_group_tests_name("watch", tests, NULL, NULL);
}
