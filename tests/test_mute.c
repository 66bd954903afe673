/* Tests for src/actor/mute.c: an overloaded receiver slows its senders
 * (bounded backlog), and slowing never deadlocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <stdatomic.h>

#include <troupe.h>

#include "support.h"

enum { MSG_DATA = 1, MSG_GO };

static _Atomic long sent, received, max_backlog;

static volatile unsigned work_sink;

static void reset(void) { sent = received = max_backlog = 0; }

static void consumer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    for (int i = 0; i < 200; i++) /* slower than the producers */
        work_sink += (unsigned)i;
    received++;
}

static const tr_behavior consumer = {.name = "consumer", .receive = consumer_receive};

typedef struct {
    tr_addr to;
    long left;
} producer_state;

/* Sends in rounds of 256 and a message to itself to go on: nothing in the
 * program slows it; only the runtime can. */
static void producer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    producer_state *p = state;
    if (tr_msg_type(msg) == MSG_GO && p->left == 0)
        *p = *(const producer_state *)tr_msg_data(msg);
    for (int i = 0; i < 256 && p->left > 0; i++, p->left--) {
        tr_send(ctx, p->to, tr_msg_new(MSG_DATA, NULL, 0));
        long backlog = ++sent - received;
        if (backlog > max_backlog)
            max_backlog = backlog;
    }
    if (p->left > 0)
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_DATA, NULL, 0));
}

static const tr_behavior producer = {
    .name = "producer", .state_size = sizeof(producer_state), .receive = producer_receive};

static void mute__fan_in_of_8_producers__backlog_stays_bounded(void **state)
{
    (void)state;
    reset();
    enum { PRODUCERS = 8, EACH = 200000 };
    /* One worker: the turns interleave the same way whatever the machine is
     * doing, so the bound is structural, not a matter of timing. */
    tr_system *sys = new_system(1);
    tr_addr c;
    tr_system_spawn(sys, &consumer, NULL, &c);
    for (int i = 0; i < PRODUCERS; i++) {
        tr_addr p;
        tr_system_spawn(sys, &producer, NULL, &p);
        producer_state go = {c, EACH};
        tr_system_send(sys, p, tr_msg_new(MSG_GO, &go, sizeof go));
    }
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(received, PRODUCERS * EACH); /* nothing lost */
    /* Without muting the producers run far ahead (measured: a backlog of
     * 1.5 million here); muted, 10,000 to 32,000. */
    if (max_backlog > 150000)
        fail_msg("backlog reached %ld messages", (long)max_backlog);
    tr_system_free(sys);
}

/* Two actors that answer every message with several: they flood each other. */
static _Atomic long flood_budget;

static void flooder_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    tr_addr other = tr_msg_size(msg) ? *(const tr_addr *)tr_msg_data(msg) : tr_sender(ctx);
    for (int i = 0; i < 3 && atomic_fetch_sub(&flood_budget, 1) > 0; i++)
        tr_send(ctx, other, tr_msg_new(MSG_DATA, NULL, 0));
    received++;
}

static const tr_behavior flooder = {.name = "flooder", .receive = flooder_receive};

static void mute__two_actors_flooding_each_other__both_finish(void **state)
{
    (void)state;
    reset();
    flood_budget = 300000;
    tr_system *sys = new_system(2);
    tr_addr a, b;
    tr_system_spawn(sys, &flooder, NULL, &a);
    tr_system_spawn(sys, &flooder, NULL, &b);
    tr_system_send(sys, a, tr_msg_new(MSG_DATA, &b, sizeof b));
    assert_int_equal(tr_system_run(sys), 0); /* returns: no deadlock */
    assert_int_equal(received, 300000 + 1);
    tr_system_free(sys);
}

/* A chain: producers -> relay -> slow consumer. The relay is muted by the
 * consumer while producers keep sending to it; everything still arrives. */
static tr_addr chain_end;

static void relay_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state, (void)msg;
    tr_send(ctx, chain_end, tr_msg_new(MSG_DATA, NULL, 0));
}

static const tr_behavior relay = {.name = "relay", .receive = relay_receive};

static void mute__chain_through_a_muted_relay__everything_arrives(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(3);
    tr_addr r;
    tr_system_spawn(sys, &consumer, NULL, &chain_end);
    tr_system_spawn(sys, &relay, NULL, &r);
    for (int i = 0; i < 4; i++) {
        tr_addr p;
        tr_system_spawn(sys, &producer, NULL, &p);
        producer_state go = {r, 100000};
        tr_system_send(sys, p, tr_msg_new(MSG_GO, &go, sizeof go));
    }
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(received, 4 * 100000);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mute__fan_in_of_8_producers__backlog_stays_bounded),
        cmocka_unit_test(mute__two_actors_flooding_each_other__both_finish),
        cmocka_unit_test(mute__chain_through_a_muted_relay__everything_arrives),
    };
    return cmocka_run_group_tests_name("mute", tests, NULL, NULL);
}
