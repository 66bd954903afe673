/* threadring (Savina): 503 actors in a ring pass a token N hops in all.
 * Usage: bench_threadring N WORKERS */
#include "bench.h"

enum { RING = 503, MSG_NEXT = 1, MSG_TOKEN = 2 };

static void member_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_addr *next = state;
    if (tr_msg_type(msg) == MSG_NEXT) {
        *next = *(const tr_addr *)tr_msg_data(msg);
        return;
    }
    long left = *(const long *)tr_msg_data(msg);
    if (left == 0)
        return;
    left--;
    tr_send(ctx, *next, tr_msg_new(MSG_TOKEN, &left, sizeof left));
}

static const tr_behavior member = {.name = "member", .state_size = sizeof(tr_addr), .receive = member_receive};

int main(int argc, char **argv)
{
    long hops = bench_arg(argc, argv, 1, 10000000);
    tr_system *sys = bench_system(argc, argv);
    tr_addr ring[RING];
    for (int i = 0; i < RING; i++)
        tr_system_spawn(sys, &member, NULL, &ring[i]);
    for (int i = 0; i < RING; i++)
        tr_system_send(sys, ring[i], tr_msg_new(MSG_NEXT, &ring[(i + 1) % RING], sizeof(tr_addr)));
    bench_run(sys); /* the ring is linked */
    tr_system_send(sys, ring[0], tr_msg_new(MSG_TOKEN, &hops, sizeof hops));
    double secs = bench_run(sys);
    bench_report("threadring", hops, secs, "actors=503");
    tr_system_free(sys);
    return 0;
}
