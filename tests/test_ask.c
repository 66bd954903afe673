/* Tests for src/actor/ask.c, names.c and blocking.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stdatomic.h>
#include <time.h>

#include <troupe.h>

#include "support.h"

enum { MSG_QUESTION = 1, MSG_ANSWER, MSG_GO, MSG_SILENT, MSG_SLOW, MSG_PING };

static _Atomic long replies, timeouts, mismatches, continuations, pings;

static void reset(void) { replies = timeouts = mismatches = continuations = pings = 0; }

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The server answers questions with question + 1; silent ones it ignores;
 * slow ones it answers only after a timer of the given milliseconds. */
static void server_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    long q = *(const long *)tr_msg_data(msg);
    switch (tr_msg_type(msg)) {
    case MSG_QUESTION: {
        long a = q + 1;
        tr_reply(ctx, tr_msg_new(MSG_ANSWER, &a, sizeof a));
        return;
    }
    case MSG_SLOW: /* answer now, but after doing "work" for q ms: the race */
        sleep_ms(q);
        q++;
        tr_reply(ctx, tr_msg_new(MSG_ANSWER, &q, sizeof q));
        return;
    }
}

static const tr_behavior server = {.name = "server", .receive = server_receive};

typedef struct {
    tr_addr server;
    int mode; /* 0 plain ask, 1 continuation */
    long asks, timeout_ms, slow_ms;
    uint32_t type;
} client_order;

typedef struct {
    uint64_t refs[64];
    int count;
} client_state;

static void on_reply(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg)
{
    (void)state;
    continuations++;
    if (status == 0 && *(const long *)tr_msg_data(reply) == (long)(intptr_t)arg + 1 &&
        tr_reply_to(ctx) != 0)
        replies++;
    else if (status == TR_ETIMEDOUT && reply == NULL)
        timeouts++;
    else
        mismatches++;
}

static void client_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    client_state *c = state;
    switch (tr_msg_type(msg)) {
    case MSG_GO: {
        const client_order *o = tr_msg_data(msg);
        for (long i = 0; i < o->asks; i++) {
            long q = o->type == MSG_SLOW ? o->slow_ms : i;
            tr_msg *req = tr_msg_new(o->type, &q, sizeof q);
            if (o->mode == 1)
                assert_int_equal(tr_ask_then(ctx, o->server, req, (uint64_t)o->timeout_ms, on_reply,
                                             (void *)(intptr_t)q),
                                 0);
            else
                assert_int_equal(tr_ask(ctx, o->server, req, (uint64_t)o->timeout_ms,
                                        &c->refs[c->count++ % 64]),
                                 0);
        }
        return;
    }
    case MSG_ANSWER:
        if (tr_reply_to(ctx) == 0)
            mismatches++;
        replies++;
        return;
    case TR_MSG_ASK_TIMEOUT:
        timeouts++;
        return;
    }
}

static const tr_behavior client = {
    .name = "client", .state_size = sizeof(client_state), .receive = client_receive};

static void go(tr_system *sys, client_order o)
{
    tr_addr c;
    tr_system_spawn(sys, &client, NULL, &c);
    tr_system_send(sys, c, tr_msg_new(MSG_GO, &o, sizeof o));
}

static void ask__answered__reply_arrives_with_its_ref(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr s;
    tr_system_spawn(sys, &server, NULL, &s);
    go(sys, (client_order){.server = s, .asks = 10, .timeout_ms = 60000, .type = MSG_QUESTION});
    assert_int_equal(tr_system_run(sys), 0); /* the answered asks' timers are cancelled */
    assert_int_equal(replies, 10);
    assert_int_equal(timeouts, 0);
    assert_int_equal(mismatches, 0);
    tr_system_free(sys);
}

static void ask_then__continuation_runs_with_the_reply(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr s;
    tr_system_spawn(sys, &server, NULL, &s);
    go(sys, (client_order){.server = s, .mode = 1, .asks = 10, .timeout_ms = 60000,
                           .type = MSG_QUESTION});
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(continuations, 10);
    assert_int_equal(replies, 10);
    assert_int_equal(mismatches, 0);
    tr_system_free(sys);
}

static void ask__no_answer__times_out_once(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr s;
    tr_system_spawn(sys, &server, NULL, &s);
    go(sys, (client_order){.server = s, .asks = 3, .timeout_ms = 20, .type = MSG_SILENT});
    go(sys, (client_order){.server = s, .mode = 1, .asks = 3, .timeout_ms = 20, .type = MSG_SILENT});
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(timeouts, 6);
    assert_int_equal(replies, 0);
    assert_int_equal(mismatches, 0);
    tr_system_free(sys);
}

static void ask__reply_after_timeout__dropped_and_counted(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr s;
    tr_system_spawn(sys, &server, NULL, &s);
    go(sys, (client_order){.server = s, .asks = 1, .timeout_ms = 10, .slow_ms = 150,
                           .type = MSG_SLOW});
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(timeouts, 1);
    assert_int_equal(replies, 0);
    tr_stats st;
    tr_system_stats(sys, &st);
    assert_int_equal(st.late_replies, 1);
    tr_system_free(sys);
}

static void ask__reply_racing_its_timeout__exactly_one_outcome(void **state)
{
    (void)state;
    reset();
    enum { N = 40 };
    tr_system *sys = new_system(3);
    for (int i = 0; i < N; i++) { /* each on its own server, answers near the deadline */
        tr_addr s;
        tr_system_spawn(sys, &server, NULL, &s);
        go(sys, (client_order){.server = s, .mode = i % 2, .asks = 1, .timeout_ms = 5,
                               .slow_ms = 3 + i % 5, .type = MSG_SLOW});
    }
    assert_int_equal(tr_system_run(sys), 0);
    tr_stats st;
    tr_system_stats(sys, &st);
    assert_int_equal(replies + timeouts, N);
    assert_int_equal(st.late_replies, (uint64_t)timeouts); /* every timed-out one came late */
    assert_int_equal(mismatches, 0);
    tr_system_free(sys);
}

static int dead_asker_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    tr_addr dead = *(const tr_addr *)tr_msg_data(arg);
    long q = 1;
    assert_int_equal(tr_ask(ctx, dead, tr_msg_new(MSG_QUESTION, &q, sizeof q), 10, NULL), TR_EDEAD);
    assert_int_equal(tr_ask(ctx, dead, tr_msg_new(TR_MSG_DOWN, NULL, 0), 10, NULL), TR_EINVAL);
    return 0;
}

static void quit_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state, (void)msg;
    tr_exit(ctx, 0);
}

static const tr_behavior quitter = {.name = "quitter", .receive = quit_receive};
static const tr_behavior dead_asker = {.name = "asker", .init = dead_asker_init, .receive = quit_receive};

static void ask__target_ended__edead_and_nothing_pending(void **state)
{
    (void)state;
    tr_system *sys = new_system(2);
    tr_addr q;
    tr_system_spawn(sys, &quitter, NULL, &q);
    tr_system_send(sys, q, tr_msg_new(1, NULL, 0));
    tr_system_run(sys);
    tr_system_spawn(sys, &dead_asker, tr_msg_new(0, &q, sizeof q), NULL);
    assert_int_equal(tr_system_run(sys), 0);
    tr_system_free(sys);
}

/* ---- names ---- */

static int named_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    const char *name = tr_msg_data(arg);
    int rc = tr_register(ctx, name);
    if (rc == 0)
        assert_int_equal(tr_register(ctx, "second-name"), TR_EINVAL);
    return rc; /* a taken name ends the actor with TR_EEXIST */
}

static void named_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_msg_type(msg) == MSG_PING)
        pings++;
    else if (tr_msg_type(msg) == 99)
        tr_exit(ctx, 0);
    else if (tr_msg_type(msg) == 98)
        assert_int_equal(tr_unregister(ctx), 0);
}

static const tr_behavior named = {.name = "named", .init = named_init, .receive = named_receive};

static int name_user_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    assert_int_equal(tr_send_named(ctx, "svc", tr_msg_new(MSG_PING, NULL, 0)), 0);
    assert_int_equal(tr_send_named(ctx, "nobody", tr_msg_new(MSG_PING, NULL, 0)), TR_ENOENT);
    return 0;
}

static const tr_behavior name_user = {.name = "user", .init = name_user_init, .receive = quit_receive};

static void names__register_lookup_send_and_release_at_end(void **state)
{
    (void)state;
    reset();
    tr_system *sys = new_system(2);
    tr_addr a, b, found;
    tr_system_spawn(sys, &named, tr_msg_new(0, "svc", 4), &a);
    tr_system_run(sys);
    assert_int_equal(tr_whereis(sys, "svc", &found), 0);
    assert_true(tr_addr_eq(found, a));
    tr_system_spawn(sys, &named, tr_msg_new(0, "svc", 4), &b); /* taken: ends */
    tr_system_spawn(sys, &name_user, NULL, NULL);
    tr_system_run(sys);
    assert_int_equal(pings, 1);
    assert_int_equal(tr_whereis(sys, "svc", &found), 0);
    assert_true(tr_addr_eq(found, a)); /* still the first */
    tr_system_send(sys, a, tr_msg_new(99, NULL, 0));
    tr_system_run(sys);
    assert_int_equal(tr_whereis(sys, "svc", &found), TR_ENOENT); /* released */
    assert_int_equal(tr_whereis(sys, "", &found), TR_ENOENT);
    tr_system_spawn(sys, &named, tr_msg_new(0, "svc", 4), &b); /* free again */
    tr_system_run(sys);
    assert_int_equal(tr_whereis(sys, "svc", &found), 0);
    assert_true(tr_addr_eq(found, b));
    tr_system_send(sys, b, tr_msg_new(98, NULL, 0));
    tr_system_run(sys);
    assert_int_equal(tr_whereis(sys, "svc", &found), TR_ENOENT);
    tr_system_free(sys);
}

/* ---- blocking work ---- */

static _Atomic int blocking_done;
static _Atomic long pings_during_block;

static tr_msg *slow_square(void *arg)
{
    long x = (long)(intptr_t)arg;
    long before = pings;
    sleep_ms(100); /* a blocking call */
    pings_during_block = pings - before;
    long sq = x * x;
    return tr_msg_new(MSG_ANSWER, &sq, sizeof sq);
}

static tr_msg *nothing(void *arg)
{
    (void)arg;
    return NULL;
}

static int blocker_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    assert_int_equal(tr_run_blocking(ctx, slow_square, (void *)(intptr_t)12, 7), 0);
    assert_int_equal(tr_run_blocking(ctx, nothing, NULL, 77), 0);
    assert_int_equal(tr_run_blocking(ctx, NULL, NULL, 77), TR_EINVAL);
    return 0;
}

static void blocker_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state;
    if (tr_msg_type(msg) == MSG_ANSWER && *(const long *)tr_msg_data(msg) == 144)
        blocking_done++;
    if (tr_msg_type(msg) == 77 && tr_msg_size(msg) == 0)
        blocking_done++;
}

static const tr_behavior blocker = {.name = "blocker", .init = blocker_init, .receive = blocker_receive};

/* A ping-pong pair that keeps going until the blocking work is done. */
static void bouncer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state, (void)msg;
    pings++;
    if (blocking_done < 2)
        tr_reply(ctx, tr_msg_new(MSG_PING, NULL, 0));
}

static int serve_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    return tr_send(ctx, *(const tr_addr *)tr_msg_data(arg), tr_msg_new(MSG_PING, NULL, 0));
}

static const tr_behavior bouncer = {.name = "bouncer", .receive = bouncer_receive};
static const tr_behavior serving_bouncer = {
    .name = "serving bouncer", .init = serve_init, .receive = bouncer_receive};

static void run_blocking__result_arrives_while_the_worker_runs_others(void **state)
{
    (void)state;
    reset();
    blocking_done = 0;
    pings_during_block = 0;
    tr_system *sys = new_system(1); /* one worker: it must not be the one blocked */
    tr_system_spawn(sys, &blocker, NULL, NULL);
    tr_addr b1;
    tr_system_spawn(sys, &bouncer, NULL, &b1);
    tr_system_spawn(sys, &serving_bouncer, tr_msg_new(0, &b1, sizeof b1), NULL);
    assert_int_equal(tr_system_run(sys), 0);
    assert_int_equal(blocking_done, 2);
    /* The pair kept going during the call (on the only worker: had the call
     * run there, nothing would have moved). Any progress proves it; how much
     * depends on the machine's load. */
    assert_true(pings_during_block > 0);
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ask__answered__reply_arrives_with_its_ref),
        cmocka_unit_test(ask_then__continuation_runs_with_the_reply),
        cmocka_unit_test(ask__no_answer__times_out_once),
        cmocka_unit_test(ask__reply_after_timeout__dropped_and_counted),
        cmocka_unit_test(ask__reply_racing_its_timeout__exactly_one_outcome),
        cmocka_unit_test(ask__target_ended__edead_and_nothing_pending),
        cmocka_unit_test(names__register_lookup_send_and_release_at_end),
        cmocka_unit_test(run_blocking__result_arrives_while_the_worker_runs_others),
    };
    return cmocka_run_group_tests_name("ask", tests, NULL, NULL);
}
