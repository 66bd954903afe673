/* nodes — troupe between two processes (node 1 starts node 2 as a copy of
 * this program), beside bench/raw_ipc's bare limits.
 *
 *   nodes stream TRANSPORT SIZE N   node 1 sends N messages of SIZE bytes to
 *                                   an actor on node 2, keeping at most
 *                                   WINDOW unacknowledged (the receiver acks
 *                                   every WINDOW/2): messages/s and MB/s
 *   nodes pingpong TRANSPORT N      N round trips: rate, and the median and
 *                                   99th percentile round trip in µs
 *   nodes idle TRANSPORT MS         a connected pair doing nothing for MS
 *                                   milliseconds: the CPU both processes
 *                                   used, as a percentage of one core
 * TRANSPORT is pipe or shm. Node 2 is this program again, or the one
 * BENCH_EXE names (a script running it under callgrind, say, to count the
 * instructions a received message costs).
 */
#include "bench.h"

#include <math.h>
#include <string.h>
#include <sys/resource.h>

enum { MSG_DATA = 1, MSG_ACK, MSG_PING, MSG_PONG, MSG_CPU, MSG_GO, WINDOW = 8192 };

static const char *mode, *transport;
static long n, size;
static double *rtts;

static double cpu_secs(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

/* ---- node 2 ---- */

static void peer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    long *got = state;
    switch (tr_msg_type(msg)) {
    case MSG_DATA:
        if (++*got % (WINDOW / 2) == 0)
            tr_reply(ctx, tr_msg_new(MSG_ACK, got, sizeof *got));
        return;
    case MSG_PING:
        tr_reply(ctx, tr_msg_new(MSG_PONG, NULL, 0));
        return;
    case MSG_CPU: {
        double used = cpu_secs();
        tr_reply(ctx, tr_msg_new(MSG_CPU, &used, sizeof used));
        return;
    }
    }
}

static const tr_behavior peer = {.name = "peer", .state_size = sizeof(long), .receive = peer_receive};

/* ---- node 1 ---- */

typedef struct {
    tr_addr peer;
    long sent, acked, done;
    double t0, t1, cpu0, peer_cpu0; /* t1: the end, when known before finish */
    unsigned char *payload;
} driver_state;

static void finish(tr_ctx *ctx, driver_state *d, const char *extra_fmt, double a, double b)
{
    double secs = (d->t1 ? d->t1 : bench_now()) - d->t0;
    char name[64], extra[96];
    snprintf(name, sizeof name, "nodes_%s_%s%s%.0ld", mode, transport, size ? "_" : "", size);
    snprintf(extra, sizeof extra, extra_fmt, a, b);
    bench_report(name, strcmp(mode, "idle") == 0 ? n : n, secs, extra);
    free(d->payload);
    tr_system_stop(tr_ctx_system(ctx));
}

static void pump(tr_ctx *ctx, driver_state *d)
{
    while (d->sent < n && d->sent - d->acked < WINDOW) {
        tr_send(ctx, d->peer, tr_msg_new(MSG_DATA, d->payload, (size_t)size));
        if (++d->sent == n) /* its answer comes after every message before it */
            tr_ask(ctx, d->peer, tr_msg_new(MSG_PING, NULL, 0), 60000, NULL);
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void start(tr_ctx *ctx, driver_state *d)
{
    d->t0 = bench_now();
    if (strcmp(mode, "stream") == 0) {
        d->payload = calloc(1, (size_t)size);
        pump(ctx, d);
    } else if (strcmp(mode, "pingpong") == 0) {
        tr_send(ctx, d->peer, tr_msg_new(MSG_PING, NULL, 0));
    } else { /* idle: look at the CPU clocks now and after n ms */
        d->cpu0 = cpu_secs();
        tr_ask(ctx, d->peer, tr_msg_new(MSG_CPU, NULL, 0), 10000, NULL);
    }
}

static void driver_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    driver_state *d = state;
    switch (tr_msg_type(msg)) {
    case TR_MSG_SPAWNED: {
        const tr_spawned *s = tr_msg_data(msg);
        if (s->error) {
            fprintf(stderr, "remote spawn: %s\n", tr_strerror(s->error));
            tr_system_stop(tr_ctx_system(ctx));
            return;
        }
        d->peer = s->actor;
        /* one round trip first, so both sides are connected and warm */
        tr_ask(ctx, d->peer, tr_msg_new(MSG_PING, NULL, 0), 10000, NULL);
        return;
    }
    case MSG_ACK:
        memcpy(&d->acked, tr_msg_data(msg), sizeof d->acked);
        pump(ctx, d);
        return;
    case MSG_PONG:
        if (tr_reply_to(ctx) && d->t0 == 0) { /* the warm-up */
            start(ctx, d);
            return;
        }
        if (tr_reply_to(ctx)) { /* the end of the stream */
            finish(ctx, d, "mb_s=%.1f size=%.0f",
                   (double)n * (double)size / (bench_now() - d->t0) / 1e6, (double)size);
            return;
        }
        rtts[d->done] = bench_now();
        if (++d->done < n) {
            tr_send(ctx, d->peer, tr_msg_new(MSG_PING, NULL, 0));
            return;
        }
        d->t1 = rtts[n - 1]; /* sorting the round trips is not part of them */
        for (long i = n - 1; i > 0; i--)
            rtts[i] = (rtts[i] - rtts[i - 1]) * 1e6;
        rtts[0] = (rtts[0] - d->t0) * 1e6;
        qsort(rtts, (size_t)n, sizeof *rtts, cmp);
        finish(ctx, d, "p50_us=%.1f p99_us=%.1f", rtts[n / 2], rtts[n * 99 / 100]);
        return;
    case MSG_CPU: {
        double peer_cpu;
        memcpy(&peer_cpu, tr_msg_data(msg), sizeof peer_cpu);
        if (!d->peer_cpu0) {
            d->peer_cpu0 = peer_cpu;
            tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_GO, NULL, 0), (uint64_t)n, NULL);
            return;
        }
        double wall = bench_now() - d->t0;
        finish(ctx, d, "cpu_pct=%.2f peer_cpu_pct=%.2f", (cpu_secs() - d->cpu0) / wall * 100,
               (peer_cpu - d->peer_cpu0) / wall * 100);
        return;
    }
    case MSG_GO:
        tr_ask(ctx, d->peer, tr_msg_new(MSG_CPU, NULL, 0), 10000, NULL);
        return;
    }
}

static int driver_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_spawn_remote(ctx, 2, "peer", NULL, 10000, NULL);
}

static const tr_behavior driver = {.name = "driver", .state_size = sizeof(driver_state),
                                   .init = driver_init, .receive = driver_receive};

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "stream";
    transport = argc > 2 ? argv[2] : "shm";
    bool stream = strcmp(mode, "stream") == 0;
    size = stream ? bench_arg(argc, argv, 3, 64) : 0;
    n = bench_arg(argc, argv, stream ? 4 : 3, stream ? 2000000 : strcmp(mode, "idle") == 0 ? 1000 : 100000);
    if (n <= 0 || size < 0 || size > (1 << 20) ||
        (!stream && strcmp(mode, "pingpong") != 0 && strcmp(mode, "idle") != 0)) {
        fprintf(stderr, "usage: nodes stream pipe|shm SIZE N | pingpong pipe|shm N | idle pipe|shm MS\n");
        return 2;
    }
    uint16_t me = tr_node_id_from_env();
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = me ? me : 1;
    tr_system *sys;
    if (tr_system_new(&cfg, &sys) != 0)
        return 1;
    int rc = tr_register_behavior(sys, &peer);
    if (rc == 0 && me)
        rc = tr_system_join(sys);
    const char *exe = getenv("BENCH_EXE");
    if (rc == 0 && !me)
        rc = tr_system_spawn_nodes(sys, exe ? exe : "/proc/self/exe", argv, 2, 1, transport);
    rtts = me ? NULL : calloc((size_t)n, sizeof *rtts);
    if (rc == 0)
        rc = me ? tr_system_stop_with_node(sys, 1) : tr_system_spawn(sys, &driver, NULL, NULL);
    if (rc == 0)
        rc = tr_system_run(sys);
    else
        fprintf(stderr, "node %u: %s\n", (unsigned)cfg.node_id, tr_strerror(rc));
    tr_system_free(sys);
    free(rtts);
    return rc == 0 ? 0 : 1;
}
