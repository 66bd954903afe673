/* Stress: a supervision tree of 10,000 workers (100 supervisors of 100, under
 * one top supervisor) while a chaos actor kills workers at random, round
 * after round. Every monitor must yield exactly one down, every killed worker
 * must be restarted exactly once, and nothing may leak (ASan, valgrind). */
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

enum { MIDS_MAX = 100, KIDS = 100, KILL_REASON = 7 };

static int mids = MIDS_MAX, rounds = 5;
static _Atomic long inits, monitors, downs, downs_killed;

static int worker_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)ctx, (void)state, (void)arg;
    inits++;
    return 0;
}

static void worker_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
}

static const tr_behavior worker = {.name = "worker", .init = worker_init, .receive = worker_receive};

typedef struct {
    uint32_t rng;
    int round, known;
    long pending;
    tr_addr top;
    tr_addr mid[MIDS_MAX];
    tr_addr kid[MIDS_MAX][KIDS];
} chaos_state;

static void ask_mids(tr_ctx *ctx, chaos_state *c);

static void kill_some(tr_ctx *ctx, chaos_state *c)
{
    for (int m = 0; m < mids; m++)
        for (int k = 0; k < KIDS; k++) {
            c->rng ^= c->rng << 13, c->rng ^= c->rng >> 17, c->rng ^= c->rng << 5;
            if (c->rng % 10 != 0 || tr_addr_is_none(c->kid[m][k]))
                continue;
            assert_int_equal(tr_monitor(ctx, c->kid[m][k], NULL), 0);
            monitors++;
            c->pending++;
            tr_kill(ctx, c->kid[m][k], KILL_REASON);
        }
}

static void on_mid(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg)
{
    chaos_state *c = state;
    assert_int_equal(status, 0);
    int m = (int)(intptr_t)arg;
    memcpy(c->kid[m], tr_msg_data(reply), sizeof c->kid[m]);
    if (++c->known < mids)
        return;
    kill_some(ctx, c);
    if (c->pending == 0) /* nothing picked this round */
        ask_mids(ctx, c);
}

static void ask_mids(tr_ctx *ctx, chaos_state *c)
{
    if (++c->round > rounds) {
        tr_exit(ctx, TR_EXIT_NORMAL); /* the tree settles: the test then checks it */
        return;
    }
    c->known = 0;
    for (int m = 0; m < mids; m++)
        tr_ask_then(ctx, c->mid[m], tr_msg_new(TR_SUPERVISOR_WHICH, NULL, 0), 60000, on_mid,
                    (void *)(intptr_t)m);
}

static void on_top(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg)
{
    (void)arg;
    chaos_state *c = state;
    assert_int_equal(status, 0);
    memcpy(c->mid, tr_msg_data(reply), (size_t)mids * sizeof(tr_addr));
    ask_mids(ctx, c);
}

static int chaos_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    chaos_state *c = state;
    c->rng = 2463534242u;
    c->top = *(const tr_addr *)tr_msg_data(arg);
    return tr_ask_then(ctx, c->top, tr_msg_new(TR_SUPERVISOR_WHICH, NULL, 0), 60000, on_top, NULL);
}

static void chaos_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    chaos_state *c = state;
    if (tr_msg_type(msg) != TR_MSG_DOWN)
        return;
    const tr_down *d = tr_msg_data(msg);
    downs++;
    if (d->reason == KILL_REASON)
        downs_killed++;
    if (--c->pending == 0) /* every down of this round is in: next round */
        ask_mids(ctx, c);
}

static const tr_behavior chaos = {.name = "chaos",
                                  .state_size = sizeof(chaos_state),
                                  .init = chaos_init,
                                  .receive = chaos_receive};

static int stopper_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    tr_kill(ctx, *(const tr_addr *)tr_msg_data(arg), TR_EXIT_SHUTDOWN);
    tr_exit(ctx, TR_EXIT_NORMAL);
    return 0;
}

static const tr_behavior stopper = {.name = "stopper", .init = stopper_init, .receive = worker_receive};

static void tree__random_failures__no_lost_down_and_every_kill_restarted(void **state)
{
    (void)state;
    const char *scale = getenv("TR_STRESS_SCALE");
    if (scale && atoi(scale) < 100) { /* slow builds: a smaller tree, fewer rounds */
        mids = 10;
        rounds = 3;
    }
    static tr_child_spec kids[KIDS];
    for (int k = 0; k < KIDS; k++)
        kids[k] = (tr_child_spec){.id = "worker", .behavior = &worker,
                                  .restart = TR_RESTART_PERMANENT};
    static tr_supervisor_spec mid_spec = {TR_ONE_FOR_ONE, 100000, 600000, 0, kids, KIDS};
    static tr_child_spec mid_kids[MIDS_MAX];
    for (int m = 0; m < MIDS_MAX; m++)
        mid_kids[m] = (tr_child_spec){.id = "mid", .supervisor = &mid_spec};
    tr_supervisor_spec top_spec = {TR_ONE_FOR_ONE, 10, 600000, 0, mid_kids, (size_t)mids};

    tr_system *sys = new_system(4);
    tr_addr top;
    assert_int_equal(tr_system_spawn_supervisor(sys, &top_spec, &top), 0);
    tr_system_spawn(sys, &chaos, tr_msg_new(0, &top, sizeof top), NULL);
    assert_int_equal(tr_system_run(sys), 0);

    long workers = (long)mids * KIDS;
    assert_true(monitors > workers / 20 * (rounds - 1)); /* plenty were killed */
    assert_int_equal(downs, monitors);                   /* no down lost or doubled */
    assert_int_equal(inits, workers + downs_killed);     /* each killed one restarted once */

    /* Then the whole tree is shut down in order, from the top. */
    tr_system_spawn(sys, &stopper, tr_msg_new(0, &top, sizeof top), NULL);
    assert_int_equal(tr_system_run(sys), 0);
    tr_stats st;
    tr_system_stats(sys, &st);
    assert_int_equal(st.spawned - st.exited, 0); /* every supervisor and worker ended */
    tr_system_free(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tree__random_failures__no_lost_down_and_every_kill_restarted),
    };
    return cmocka_run_group_tests_name("supervisor stress", tests, NULL, NULL);
}
