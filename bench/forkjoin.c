/* Savina Fork-Join, two forms.
 *   fj_create:     N actors are created, each gets one message, does a little
 *                  arithmetic and ends. A driver creates them in rounds of
 *                  1000 so the workers interleave creation with the work.
 *   fj_throughput: 60 actors; a driver sends N messages round-robin to them,
 *                  in rounds, each handled with the same little arithmetic.
 * Usage: bench_forkjoin create|throughput N WORKERS */
#include "bench.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

enum { ROUND = 1000, THROUGHPUT_ACTORS = 60 };

static _Atomic double sink; /* keeps the arithmetic from being optimised out */

static void work(void)
{
    double x = 37.2;
    atomic_store_explicit(&sink, sqrt(x * x + 1.0), memory_order_relaxed);
}

static void once_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state, (void)msg;
    work();
    tr_exit(ctx, TR_EXIT_NORMAL);
}

static const tr_behavior once = {.name = "fj-once", .receive = once_receive};

static void worker_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    work();
}

static const tr_behavior fj_worker = {.name = "fj-worker", .receive = worker_receive};

typedef struct {
    long left;
    long next;
    tr_addr workers[THROUGHPUT_ACTORS];
    int throughput;
} driver_state;

static int driver_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    memcpy(state, tr_msg_data(arg), sizeof(driver_state));
    return tr_send(ctx, tr_self(ctx), tr_msg_new(0, NULL, 0));
}

static void driver_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    driver_state *d = state;
    for (int i = 0; i < ROUND && d->left > 0; i++, d->left--) {
        tr_addr to;
        if (d->throughput) {
            to = d->workers[d->next];
            d->next = d->next + 1 == THROUGHPUT_ACTORS ? 0 : d->next + 1;
        }
        else if (tr_spawn(ctx, &once, NULL, &to) != 0)
            continue;
        tr_send(ctx, to, tr_msg_new(1, NULL, 0));
    }
    if (d->left > 0)
        tr_send(ctx, tr_self(ctx), tr_msg_new(0, NULL, 0));
    else
        tr_exit(ctx, TR_EXIT_NORMAL);
}

static const tr_behavior driver = {.name = "fj-driver",
                                   .state_size = sizeof(driver_state),
                                   .init = driver_init,
                                   .receive = driver_receive};

int main(int argc, char **argv)
{
    int throughput = argc > 1 && strcmp(argv[1], "throughput") == 0;
    long n = bench_arg(argc, argv, 2, throughput ? 6000000 : 1000000);
    tr_system *sys = bench_system(argc - 1, argv + 1);
    static driver_state d;
    d.left = n;
    d.throughput = throughput;
    if (throughput)
        for (int i = 0; i < THROUGHPUT_ACTORS; i++)
            tr_system_spawn(sys, &fj_worker, NULL, &d.workers[i]);
    tr_system_spawn(sys, &driver, tr_msg_new(0, &d, sizeof d), NULL);
    double secs = bench_run(sys);
    bench_report(throughput ? "fj_throughput" : "fj_create", n, secs,
                 throughput ? "actors=60" : NULL);
    tr_system_free(sys);
    return 0;
}
