/* pipeline — a fast producer and a slow consumer, held in check.
 *
 * Without a limit the queue between them grows as long as the producer
 * outpaces the consumer, until memory runs out. Here the consumer's mailbox
 * is bounded (100 messages) with the "refuse" policy: a send to a full
 * mailbox fails with TR_EFULL, and the producer keeps that item and tries
 * again a little later, without blocking its worker. Every item arrives, in
 * order, and the queue never holds more than 100.
 *
 * Run: ./build/examples/pipeline
 */
#include <stdio.h>
#include <time.h>
#include <troupe.h>

enum { ITEMS = 5000, BOUND = 100, MSG_ITEM = 1, MSG_GO };

/* ---- the consumer: slow, checks the order ---- */

typedef struct {
    long next;
    bool out_of_order;
} consumer_state;

static void consumer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    consumer_state *c = state;
    long item = *(const long *)tr_msg_data(msg);
    c->out_of_order |= item != c->next++;
    struct timespec work = {0, 20 * 1000}; /* 20 us of work per item */
    nanosleep(&work, NULL);
    if (c->next == ITEMS)
        printf("consumer: %ld items, %s\n", c->next, c->out_of_order ? "OUT OF ORDER" : "in order");
}

static const tr_behavior consumer = {
    .name = "consumer", .state_size = sizeof(consumer_state), .receive = consumer_receive};

/* ---- the producer: as fast as it may ---- */

typedef struct {
    tr_addr consumer;
    long next, waits;
} producer_state;

static void producer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    producer_state *p = state;
    if (tr_msg_type(msg) == MSG_GO && p->next == 0)
        p->consumer = *(const tr_addr *)tr_msg_data(msg);
    for (int burst = 0; burst < 64 && p->next < ITEMS; burst++) {
        tr_msg *item = tr_msg_new(MSG_ITEM, &p->next, sizeof p->next);
        if (tr_send(ctx, p->consumer, item) == TR_EFULL) { /* the item was released */
            p->waits++; /* full: try the same item again in 1 ms */
            tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_GO, NULL, 0), 1, NULL);
            return;
        }
        p->next++;
    }
    if (p->next < ITEMS)
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_GO, NULL, 0)); /* go on after others */
    else
        printf("producer: sent %ld items; told to wait %s\n", p->next,
               p->waits > 0 ? "many times" : "never");
}

static const tr_behavior producer = {
    .name = "producer", .state_size = sizeof(producer_state), .receive = producer_receive};

int main(void)
{
    tr_system *sys;
    if (tr_system_new(NULL, &sys) != 0)
        return 1;
    tr_spawn_opts bounded = {.mailbox_bound = BOUND, .overflow = TR_OVERFLOW_REFUSE};
    tr_addr c, p;
    tr_system_spawn_opt(sys, &consumer, NULL, &bounded, &c);
    tr_system_spawn(sys, &producer, NULL, &p);
    tr_system_send(sys, p, tr_msg_new(MSG_GO, &c, sizeof c));
    int rc = tr_system_run(sys);
    tr_stats st;
    tr_system_stats(sys, &st);
    printf("refused sends: %s; nothing lost\n", st.overflowed > 0 ? "yes, retried" : "none");
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
