/* mailbox_<P>p: P producers send N messages in all (16-byte payloads) into
 * one consumer's mailbox. Each producer sends in rounds of CHUNK messages and
 * a message to itself to go on, so the workers can interleave it with the
 * consumer. Usage: bench_mailbox N WORKERS PRODUCERS */
#include "bench.h"

#include <string.h>

enum { CHUNK = 256 };

typedef struct {
    long count;
} consumer_state;

static long expected;

static void consumer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    consumer_state *c = state;
    if (++c->count == expected)
        tr_exit(ctx, TR_EXIT_NORMAL);
}

static const tr_behavior consumer = {
    .name = "consumer", .state_size = sizeof(consumer_state), .receive = consumer_receive};

typedef struct {
    tr_addr target;
    long left;
} producer_state;

static int producer_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    memcpy(state, tr_msg_data(arg), sizeof(producer_state));
    return tr_send(ctx, tr_self(ctx), tr_msg_new(0, NULL, 0));
}

static void producer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    producer_state *p = state;
    uint64_t payload[2] = {0, 0};
    for (int i = 0; i < CHUNK && p->left > 0; i++, p->left--) {
        payload[0] = (uint64_t)p->left;
        tr_send(ctx, p->target, tr_msg_new(1, payload, sizeof payload));
    }
    if (p->left > 0)
        tr_send(ctx, tr_self(ctx), tr_msg_new(0, NULL, 0));
}

static const tr_behavior producer = {.name = "producer",
                                     .state_size = sizeof(producer_state),
                                     .init = producer_init,
                                     .receive = producer_receive};

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 10000000);
    long producers = bench_arg(argc, argv, 3, 1);
    tr_system *sys = bench_system(argc, argv);
    expected = n / producers * producers;
    tr_addr c;
    tr_system_spawn(sys, &consumer, NULL, &c);
    for (long i = 0; i < producers; i++) {
        producer_state p = {c, n / producers};
        tr_system_spawn(sys, &producer, tr_msg_new(0, &p, sizeof p), NULL);
    }
    double secs = bench_run(sys);
    char name[32];
    snprintf(name, sizeof name, "mailbox_%ldp", producers);
    bench_report(name, expected, secs, NULL);
    tr_system_free(sys);
    return 0;
}
