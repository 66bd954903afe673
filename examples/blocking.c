/* blocking — a blocking call off the workers, while the actors keep going.
 *
 * In a thread pool, one blocking call (a slow disk, a library that waits)
 * stalls the thread it runs on. A handler must never block a worker, so the
 * "hasher" hands its slow job to tr_run_blocking: the job runs on a separate
 * pool and its result comes back as a message. Meanwhile a "ticker" actor
 * keeps ticking on the workers — even with a single worker.
 *
 * Run: ./build/examples/blocking
 */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <troupe.h>

enum { MSG_HASHED = 1, MSG_TICK };

static _Atomic int ticks;       /* counted by the ticker, read by the hasher */
static _Atomic int ticks_during; /* ticks while the job ran: main checks it */

/* The blocking work: on a pool thread, never on a worker. */
static tr_msg *slow_hash(void *arg)
{
    const char *text = arg;
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL); /* stands for a slow read or a blocking library */
    unsigned long h = 5381;
    for (const char *p = text; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return tr_msg_new(MSG_HASHED, &h, sizeof h);
}

static int hasher_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    *(int *)state = ticks; /* ticks so far */
    printf("hasher: handing the slow job to the blocking pool\n");
    return tr_run_blocking(ctx, slow_hash, "the quick brown fox", MSG_HASHED);
}

static void hasher_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    printf("hasher: result %lx arrived as a message\n", *(const unsigned long *)tr_msg_data(msg));
    ticks_during = ticks - *(int *)state;
    printf("ticker: %d ticks while the slow job ran, on the only worker\n", ticks_during);
    tr_exit(ctx, TR_EXIT_NORMAL);
}

static const tr_behavior hasher = {
    .name = "hasher", .state_size = sizeof(int), .init = hasher_init, .receive = hasher_receive};

/* The ticker ticks every 20 ms for 500 ms, on the workers. */
static int ticker_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    tr_timer *t = state;
    return tr_send_every(ctx, tr_self(ctx), tr_msg_new(MSG_TICK, NULL, 0), 20, t);
}

static void ticker_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    tr_timer *t = state;
    if (++ticks == 25)
        tr_timer_cancel(tr_ctx_system(ctx), *t);
}

static const tr_behavior ticker = {
    .name = "ticker", .state_size = sizeof(tr_timer), .init = ticker_init, .receive = ticker_receive};

int main(void)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = 1; /* one worker: if the slow job ran on it, the ticker would stop */
    tr_system *sys;
    if (tr_system_new(&cfg, &sys) != 0)
        return 1;
    tr_system_spawn(sys, &hasher, NULL, NULL);
    tr_system_spawn(sys, &ticker, NULL, NULL);
    int rc = tr_system_run(sys);
    tr_system_free(sys);
    return rc == 0 && ticks_during > 0 ? 0 : 1;
}
