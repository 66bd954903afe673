/* pingpong_nodes — the same actors, now in two processes.
 *
 * The parent (node 1) starts a second copy of this program as node 2 with
 * tr_system_spawn_node (libuv's process API: exec, not fork), joined by a
 * socket pair. Node 2 registers a "ponger" and says hello to the "pinger"
 * on node 1 by name (again every 100 ms until the rally starts, since the
 * pinger may not be there yet). Then the ball goes back and forth: tr_reply
 * answers across processes because an address names its node. After the
 * last round trip node 1 stops; its connection closes, and node 2, with
 * nothing left to do, ends too.
 *
 * Run: ./build/examples/pingpong_nodes [round trips] [pipe|shm]
 * (the transport between the two processes; pipe by default)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <troupe.h>

enum { MSG_READY = 1, MSG_BALL };

static long rounds = 10000;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- node 2 ---- */

typedef struct {
    tr_timer hello;
} ponger_state;

static int ponger_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    ponger_state *p = state;
    tr_register(ctx, "ponger");
    tr_send_named_node(ctx, 1, "pinger", tr_msg_new(MSG_READY, NULL, 0));
    return tr_send_every(ctx, tr_self(ctx), tr_msg_new(MSG_READY, NULL, 0), 100, &p->hello);
}

static void ponger_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    ponger_state *p = state;
    if (tr_msg_type(msg) == MSG_READY) { /* our own reminder: say hello again */
        tr_send_named_node(ctx, 1, "pinger", tr_msg_new(MSG_READY, NULL, 0));
        return;
    }
    if (p->hello) { /* the rally has started */
        tr_timer_cancel(tr_ctx_system(ctx), p->hello);
        p->hello = 0;
    }
    tr_reply(ctx, tr_msg_new(MSG_BALL, tr_msg_data(msg), sizeof(long)));
}

static const tr_behavior ponger = {
    .name = "ponger", .state_size = sizeof(ponger_state), .init = ponger_init, .receive = ponger_receive};

/* ---- node 1 ---- */

typedef struct {
    long hits;
    double started;
} pinger_state;

static int pinger_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_register(ctx, "pinger");
}

static void pinger_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    pinger_state *p = state;
    if (tr_msg_type(msg) == MSG_READY) {
        if (p->started == 0) { /* the first hello: serve */
            printf("node 1: node %u is ready (%s)\n", tr_addr_node(tr_sender(ctx)),
                   "another process");
            p->started = now();
            tr_reply(ctx, tr_msg_new(MSG_BALL, &p->hits, sizeof p->hits));
        }
        return;
    }
    if (++p->hits < rounds) {
        tr_reply(ctx, tr_msg_new(MSG_BALL, &p->hits, sizeof p->hits));
        return;
    }
    double secs = now() - p->started;
    printf("node 1: %ld round trips with node 2 in %.3f s (%.0f per second)\n", p->hits, secs,
           (double)p->hits / secs);
    tr_system_stop(tr_ctx_system(ctx));
}

static const tr_behavior pinger = {
    .name = "pinger", .state_size = sizeof(pinger_state), .init = pinger_init, .receive = pinger_receive};

static tr_system *node_system(uint16_t id)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = id;
    tr_system *sys;
    return tr_system_new(&cfg, &sys) == 0 ? sys : NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = atol(argv[1]) > 0 ? atol(argv[1]) : rounds;
    const char *transport = argc > 2 ? argv[2] : "pipe";
    uint16_t me = tr_node_id_from_env();
    tr_system *sys = node_system(me ? me : 1);
    if (!sys)
        return 1;
    int rc;
    if (me) { /* node 2: started by node 1 */
        rc = tr_system_join(sys);
        tr_system_spawn(sys, &ponger, NULL, NULL);
    } else {
        tr_system_spawn(sys, &pinger, NULL, NULL);
        rc = tr_system_spawn_nodes(sys, "/proc/self/exe", argv, 2, 1, transport);
        if (rc != 0)
            fprintf(stderr, "could not start node 2: %s\n", tr_strerror(rc));
    }
    if (rc == 0)
        rc = tr_system_run(sys); /* node 2 returns when node 1 has gone */
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
