/* counter — the shared counter, the actor way.
 *
 * The classic race: ten threads each add 1 a thousand times to a shared int
 * and the total comes out short, unless every add takes a lock. Here the
 * count is the private state of one actor; ten producer actors send it "add"
 * messages. The counter handles one message at a time, so no add is lost and
 * no lock is needed. Prints "total 10000".
 *
 * Run: ./build/examples/counter
 */
#include <stdio.h>
#include <troupe.h>

enum { MSG_ADD = 1, MSG_DONE = 2 };
enum { PRODUCERS = 10, ADDS = 1000 };

/* The counter: private state, touched only by its own handler. */
typedef struct {
    long total;
    int producers_done;
} counter_state;

static void counter_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    counter_state *c = state;
    if (tr_msg_type(msg) == MSG_ADD) {
        c->total += 1;
    } else if (tr_msg_type(msg) == MSG_DONE && ++c->producers_done == PRODUCERS) {
        /* Each producer's adds arrive before its "done" (per-pair order). */
        printf("total %ld\n", c->total);
        tr_exit(ctx, TR_EXIT_NORMAL);
    }
}

static const tr_behavior counter = {
    .name = "counter", .state_size = sizeof(counter_state), .receive = counter_receive};

/* A producer: its init message holds the counter's address. */
static int producer_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    const tr_addr *target = tr_msg_data(arg);
    for (int i = 0; i < ADDS; i++)
        tr_send(ctx, *target, tr_msg_new(MSG_ADD, NULL, 0));
    tr_send(ctx, *target, tr_msg_new(MSG_DONE, NULL, 0));
    tr_exit(ctx, TR_EXIT_NORMAL);
    return 0;
}

static void producer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
}

static const tr_behavior producer = {
    .name = "producer", .init = producer_init, .receive = producer_receive};

int main(void)
{
    tr_system *sys;
    if (tr_system_new(NULL, &sys) != 0)
        return 1;
    tr_addr c;
    tr_system_spawn(sys, &counter, NULL, &c);
    for (int i = 0; i < PRODUCERS; i++)
        tr_system_spawn(sys, &producer, tr_msg_new(0, &c, sizeof c), NULL);
    int rc = tr_system_run(sys); /* returns when every message is handled */
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
