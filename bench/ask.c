/* ask: N sequential ask/reply round trips between two actors (each ask with
 * a deadline timer, cancelled by the reply), to compare with pingpong.
 * Usage: bench_ask N WORKERS */
#include "bench.h"

enum { MSG_Q = 1, MSG_A };

static long rounds;

static void server_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state, (void)msg;
    tr_reply(ctx, tr_msg_new(MSG_A, NULL, 0));
}

static const tr_behavior server = {.name = "server", .receive = server_receive};

typedef struct {
    tr_addr server;
    long done;
} client_state;

static void on_reply(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg);

static void ask_once(tr_ctx *ctx, client_state *c)
{
    tr_ask_then(ctx, c->server, tr_msg_new(MSG_Q, NULL, 0), 10000, on_reply, NULL);
}

static void on_reply(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg)
{
    (void)reply, (void)arg;
    client_state *c = state;
    if (status == 0 && ++c->done < rounds)
        ask_once(ctx, c);
}

static int client_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    client_state *c = state;
    c->server = *(const tr_addr *)tr_msg_data(arg);
    ask_once(ctx, c);
    return 0;
}

static void client_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
}

static const tr_behavior client = {.name = "client",
                                   .state_size = sizeof(client_state),
                                   .init = client_init,
                                   .receive = client_receive};

int main(int argc, char **argv)
{
    rounds = bench_arg(argc, argv, 1, 200000);
    tr_system *sys = bench_system(argc, argv);
    tr_addr s;
    tr_system_spawn(sys, &server, NULL, &s);
    tr_system_spawn(sys, &client, tr_msg_new(0, &s, sizeof s), NULL);
    double secs = bench_run(sys);
    bench_report("ask", rounds, secs, "timeout_ms=10000");
    tr_system_free(sys);
    return 0;
}
