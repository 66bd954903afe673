/* pingpong: two actors exchange a message N times (N round trips).
 * Usage: bench_pingpong N WORKERS */
#include "bench.h"

static long rounds;

static void player_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    long *hits = state;
    long n = *(const long *)tr_msg_data(msg);
    (*hits)++;
    if (n >= 2 * rounds)
        return;
    n++;
    tr_reply(ctx, tr_msg_new(1, &n, sizeof n));
}

static const tr_behavior player = {.name = "player", .state_size = sizeof(long), .receive = player_receive};

static int server_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    long n = 1;
    return tr_send(ctx, *(const tr_addr *)tr_msg_data(arg), tr_msg_new(1, &n, sizeof n));
}

static const tr_behavior server = {
    .name = "server", .state_size = sizeof(long), .init = server_init, .receive = player_receive};

int main(int argc, char **argv)
{
    rounds = bench_arg(argc, argv, 1, 2000000);
    tr_system *sys = bench_system(argc, argv);
    tr_addr other;
    tr_system_spawn(sys, &player, NULL, &other);
    tr_system_spawn(sys, &server, tr_msg_new(0, &other, sizeof other), NULL);
    double secs = bench_run(sys);
    bench_report("pingpong", rounds, secs, NULL);
    tr_system_free(sys);
    return 0;
}
