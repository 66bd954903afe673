/* mailbox_<P>p: P producers send N messages in all (16-byte payloads) into
 * one consumer's mailbox.
 *
 * Each producer keeps at most WINDOW messages unacknowledged, and the
 * consumer acknowledges every ACK_EVERY messages from each producer: credit
 * flow control, the actor form of a bounded queue (Go's buffered channel).
 * Without it nothing slows a producer and memory grows with the backlog, as
 * in CAF's version of this benchmark; the fault-tolerance issue brings
 * runtime backpressure. Acks are 1 in ACK_EVERY extra messages, not counted.
 * WINDOW 0 turns flow control off: each producer sends in rounds of 256 and
 * a message to itself to go on, and nothing slows it (that shows what the
 * backlog costs in memory). BOUND > 0 gives the consumer a bounded mailbox
 * (refuse policy) of that size, to measure what counting costs.
 * Usage: bench_mailbox N WORKERS PRODUCERS [WINDOW [BOUND]] */
#include "bench.h"

#include <string.h>

enum { MSG_DATA = 1, MSG_ACK = 2, MAX_PRODUCERS = 64 };

static long window = 1024, ack_every;

typedef struct {
    long until_ack[MAX_PRODUCERS]; /* messages left before the next ack */
    long count, expected;
} consumer_state;

typedef struct {
    uint64_t producer, seq;
} payload;

static void consumer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    consumer_state *c = state;
    const payload *p = tr_msg_data(msg);
    if (ack_every && --c->until_ack[p->producer] == 0) {
        c->until_ack[p->producer] = ack_every;
        tr_reply(ctx, tr_msg_new(MSG_ACK, NULL, 0));
    }
    if (++c->count == c->expected)
        tr_exit(ctx, TR_EXIT_NORMAL);
}

static int consumer_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)ctx;
    consumer_state *c = state;
    c->expected = *(const long *)tr_msg_data(arg);
    for (int i = 0; i < MAX_PRODUCERS; i++)
        c->until_ack[i] = ack_every;
    return 0;
}

static const tr_behavior consumer = {.name = "consumer",
                                     .state_size = sizeof(consumer_state),
                                     .init = consumer_init,
                                     .receive = consumer_receive};

typedef struct {
    tr_addr target;
    uint64_t id;
    long left;
} producer_state;

static void produce(tr_ctx *ctx, producer_state *p, long n)
{
    payload body = {p->id, 0};
    for (; n > 0 && p->left > 0; n--, p->left--) {
        body.seq = (uint64_t)p->left;
        tr_send(ctx, p->target, tr_msg_new(MSG_DATA, &body, sizeof body));
    }
}

enum { UNBOUNDED_ROUND = 256 };

static int producer_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    memcpy(state, tr_msg_data(arg), sizeof(producer_state));
    if (window == 0) /* no flow control: go on by messages to ourselves */
        return tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_ACK, NULL, 0));
    produce(ctx, state, window);
    return 0;
}

static void producer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    producer_state *p = state;
    if (window) { /* an ack: ACK_EVERY more credits */
        produce(ctx, p, ack_every);
        return;
    }
    produce(ctx, p, UNBOUNDED_ROUND);
    if (p->left > 0)
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_ACK, NULL, 0));
}

static const tr_behavior producer = {.name = "producer",
                                     .state_size = sizeof(producer_state),
                                     .init = producer_init,
                                     .receive = producer_receive};

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 10000000);
    long producers = bench_arg(argc, argv, 3, 1);
    window = bench_arg(argc, argv, 4, window);
    if (producers < 1 || producers > MAX_PRODUCERS || (window != 0 && window < 4))
        return 1;
    ack_every = window / 4;
    tr_system *sys = bench_system(argc, argv);
    long total = n / producers * producers;
    long bound = bench_arg(argc, argv, 5, 0);
    tr_spawn_opts opts = {.mailbox_bound = (uint32_t)bound, .overflow = TR_OVERFLOW_REFUSE};
    tr_addr c;
    tr_system_spawn_opt(sys, &consumer, tr_msg_new(0, &total, sizeof total), &opts, &c);
    for (long i = 0; i < producers; i++) {
        producer_state p = {c, (uint64_t)i, n / producers};
        tr_system_spawn(sys, &producer, tr_msg_new(0, &p, sizeof p), NULL);
    }
    double secs = bench_run(sys);
    char name[32], extra[48];
    snprintf(name, sizeof name, "mailbox_%ldp", producers);
    snprintf(extra, sizeof extra, "window=%ld bound=%ld", window, bound);
    bench_report(name, total, secs, extra);
    tr_system_free(sys);
    return 0;
}
