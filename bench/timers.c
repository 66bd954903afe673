/* timers: an actor sets N one-shot timers (1 ms) to itself, 1000 at a time,
 * and counts them firing; rate = timers set and fired per second.
 * Usage: bench_timers N WORKERS */
#include "bench.h"

enum { MSG_FIRE = 1, ROUND = 1000 };

typedef struct {
    long left, fired, total;
} setter_state;

static void set_round(tr_ctx *ctx, setter_state *s)
{
    for (int i = 0; i < ROUND && s->left > 0; i++, s->left--)
        tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_FIRE, NULL, 0), 1, NULL);
}

static int setter_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    setter_state *s = state;
    s->total = s->left = *(const long *)tr_msg_data(arg);
    set_round(ctx, s);
    return 0;
}

static void setter_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    setter_state *s = state;
    if (++s->fired % ROUND == 0)
        set_round(ctx, s); /* a round fired: set the next */
}

static const tr_behavior setter = {.name = "setter",
                                   .state_size = sizeof(setter_state),
                                   .init = setter_init,
                                   .receive = setter_receive};

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    tr_system *sys = bench_system(argc, argv);
    tr_system_spawn(sys, &setter, tr_msg_new(0, &n, sizeof n), NULL);
    double secs = bench_run(sys);
    bench_report("timers", n, secs, "delay_ms=1");
    tr_system_free(sys);
    return 0;
}
