/* Tests for bounded mailboxes (src/actor/actor.c: admit, beyond_bound). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include <troupe.h>

#include "support.h"

enum { MSG_SEQ = 1, MSG_WATCH };

static _Atomic long received, first_seq, last_seq, downs;

static void reset(void)
{
    received = downs = 0;
    first_seq = last_seq = -1;
}

static void sink_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_msg_type(msg) == TR_MSG_DOWN) {
        downs++;
        return;
    }
    if (tr_msg_type(msg) == MSG_WATCH) {
        tr_monitor(ctx, *(const tr_addr *)tr_msg_data(msg), NULL);
        return;
    }
    long seq = *(const long *)tr_msg_data(msg);
    if (received++ == 0)
        first_seq = seq;
    last_seq = seq;
}

static const tr_behavior sink = {.name = "sink", .receive = sink_receive};

static tr_addr spawn_bounded(tr_system *sys, uint32_t bound, tr_overflow policy)
{
    tr_spawn_opts o = {.mailbox_bound = bound, .overflow = policy};
    tr_addr a;
    assert_int_equal(tr_system_spawn_opt(sys, &sink, NULL, &o, &a), 0);
    return a;
}

static int send_seq(tr_system *sys, tr_addr to, long seq)
{
    return tr_system_send(sys, to, tr_msg_new(MSG_SEQ, &seq, sizeof seq));
}

static uint64_t overflowed(tr_system *sys)
{
    tr_stats st;
    tr_system_stats(sys, &st);
    return st.overflowed;
}

static void refuse__full_mailbox__sender_gets_efull(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(1);
    tr_addr a = spawn_bounded(sys, 10, TR_OVERFLOW_REFUSE);
    for (long i = 0; i < 20; i++)
        assert_int_equal(send_seq(sys, a, i), i < 10 ? 0 : TR_EFULL);
    tr_system_run(sys);
    assert_int_equal(received, 10);
    assert_int_equal(last_seq, 9);
    assert_int_equal(overflowed(sys), 10);
    assert_int_equal(send_seq(sys, a, 99), 0); /* room again */
    tr_system_free(sys);
}

static void drop_newest__full_mailbox__keeps_the_first_in_order(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(1);
    tr_addr a = spawn_bounded(sys, 10, TR_OVERFLOW_DROP_NEWEST);
    for (long i = 0; i < 20; i++)
        assert_int_equal(send_seq(sys, a, i), 0);
    tr_system_run(sys);
    assert_int_equal(received, 10);
    assert_int_equal(first_seq, 0);
    assert_int_equal(last_seq, 9);
    assert_int_equal(overflowed(sys), 10);
    tr_system_free(sys);
}

static void drop_oldest__full_mailbox__keeps_the_newest(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(1);
    tr_addr a = spawn_bounded(sys, 10, TR_OVERFLOW_DROP_OLDEST);
    for (long i = 0; i < 25; i++)
        assert_int_equal(send_seq(sys, a, i), 0);
    tr_system_run(sys);
    assert_int_equal(received, 10);
    assert_int_equal(first_seq, 15);
    assert_int_equal(last_seq, 24);
    assert_int_equal(overflowed(sys), 15);
    tr_system_free(sys);
}

static void quit_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state, (void)msg;
    tr_exit(ctx, 3);
}

static const tr_behavior quitter = {.name = "quitter", .receive = quit_receive};

static void system_lane__full_mailbox__down_still_arrives(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(1);
    tr_addr watcher = spawn_bounded(sys, 1, TR_OVERFLOW_REFUSE), target;
    tr_system_spawn(sys, &quitter, NULL, &target);
    tr_system_send(sys, watcher, tr_msg_new(MSG_WATCH, &target, sizeof target));
    tr_system_run(sys);
    assert_int_equal(send_seq(sys, watcher, 1), 0);
    assert_int_equal(send_seq(sys, watcher, 2), TR_EFULL); /* full */
    tr_system_send(sys, target, tr_msg_new(1, NULL, 0));   /* ends: a down to the full one */
    tr_system_run(sys);
    assert_int_equal(downs, 1);
    tr_system_free(sys);
}

static void spawn_opt__bad_policy__einval(void **state)
{
    (void)state;
    tr_system *sys = new_system(1);
    tr_spawn_opts o = {.mailbox_bound = 1, .overflow = (tr_overflow)42};
    assert_int_equal(tr_system_spawn_opt(sys, &sink, NULL, &o, NULL), TR_EINVAL);
    tr_system_free(sys);
}

/* ---- many threads against one bounded mailbox ---- */

typedef struct {
    tr_system *sys;
    tr_addr to;
    long accepted, refused;
} flooder;

static void *flood(void *p)
{
    flooder *f = p;
    for (long i = 0; i < 20000; i++) {
        int rc = send_seq(f->sys, f->to, i);
        if (rc == 0)
            f->accepted++;
        else if (rc == TR_EFULL)
            f->refused++;
    }
    return NULL;
}

static void *run_system(void *sys)
{
    tr_system_run(sys);
    return NULL;
}

static void refuse__threads_racing_the_consumer__counts_add_up(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a = spawn_bounded(sys, 64, TR_OVERFLOW_REFUSE);
    pthread_t runner, threads[4];
    flooder f[4];
    pthread_create(&runner, NULL, run_system, sys);
    for (int i = 0; i < 4; i++) {
        f[i] = (flooder){sys, a, 0, 0};
        pthread_create(&threads[i], NULL, flood, &f[i]);
    }
    long accepted = 0, refused = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        accepted += f[i].accepted;
        refused += f[i].refused;
    }
    pthread_join(runner, NULL);
    tr_system_run(sys);
    assert_int_equal(accepted + refused, 4 * 20000);
    assert_int_equal(received, accepted);
    assert_int_equal(overflowed(sys), (uint64_t)refused);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuse__full_mailbox__sender_gets_efull),
        cmocka_unit_test(drop_newest__full_mailbox__keeps_the_first_in_order),
        cmocka_unit_test(drop_oldest__full_mailbox__keeps_the_newest),
        cmocka_unit_test(system_lane__full_mailbox__down_still_arrives),
        cmocka_unit_test(spawn_opt__bad_policy__einval),
        cmocka_unit_test(refuse__threads_racing_the_consumer__counts_add_up),
    };
    return cmocka_run_group_tests_name("bound", tests, NULL, NULL);
}
