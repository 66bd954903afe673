/* Tests for src/node and src/transport through the public API: two systems
 * (nodes 1 and 2) in this process, joined by a socketpair. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <inttypes.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <troupe.h>

enum { MSG_HELLO = 1, MSG_HERE, MSG_SEQ, MSG_DONE, MSG_TOTAL, MSG_LOCAL_TRY };
enum { COUNT = 100000 };

static _Atomic int verified, local_refused;

/* Node id with 2 workers and heartbeats heartbeat_ms apart (0: default). */
static tr_system *beating_node(uint16_t id, uint32_t heartbeat_ms)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = 2;
    cfg.node_id = id;
    cfg.heartbeat_ms = heartbeat_ms;
    tr_system *sys;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    return sys;
}

static tr_system *node_system(uint16_t id) { return beating_node(id, 0); }

/* Nodes 1 and 2 (heartbeats heartbeat_ms apart, 0: default) joined by a
 * socket pair over transport; node 2 can spawn beh (NULL: nothing) by name. */
/* Joins a and b by a socket pair over transport. */
static void pair_connect(const char *transport, tr_system *a, tr_system *b)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(tr_system_connect_via(a, fds[0], transport), 0);
    assert_int_equal(tr_system_connect_via(b, fds[1], transport), 0);
}

static void beating_pair(const char *transport, uint32_t heartbeat_ms, const tr_behavior *beh,
                         tr_system **a, tr_system **b)
{
    *a = beating_node(1, heartbeat_ms);
    *b = beating_node(2, heartbeat_ms);
    if (beh)
        assert_int_equal(tr_register_behavior(*b, beh), 0);
    pair_connect(transport, *a, *b);
}

static void node_pair(const char *transport, const tr_behavior *beh, tr_system **a, tr_system **b)
{
    beating_pair(transport, 0, beh, a, b);
}

/* ---- node 2: the sink checks order and sums ---- */

typedef struct {
    long next;
    uint64_t sum;
    bool out_of_order;
} sink_state;

static int sink_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_register(ctx, "sink");
}

static void sink_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sink_state *s = state;
    switch (tr_msg_type(msg)) {
    case MSG_HELLO: /* from node 1, by name: answer with our own address */
        assert_int_equal(tr_addr_node(tr_sender(ctx)), 1);
        tr_reply(ctx, tr_msg_new(MSG_HERE, NULL, 0));
        return;
    case MSG_SEQ: {
        long seq;
        memcpy(&seq, tr_msg_data(msg), sizeof seq);
        s->out_of_order |= seq != s->next++;
        s->sum += (uint64_t)seq * 2654435761u;
        return;
    }
    case MSG_DONE: {
        uint64_t total[2] = {(uint64_t)s->next, s->out_of_order ? 0 : s->sum};
        tr_reply(ctx, tr_msg_new(MSG_TOTAL, total, sizeof total));
        return;
    }
    }
}

static const tr_behavior sink = {
    .name = "sink", .state_size = sizeof(sink_state), .init = sink_init, .receive = sink_receive};

/* ---- node 1: the source ---- */

enum { MSG_AGAIN = 20 };

typedef struct {
    tr_timer again; /* hello again until the sink answers: it may not be registered yet */
} source_state;

static int source_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    source_state *s = state;
    tr_send_named_node(ctx, 2, "sink", tr_msg_new(MSG_HELLO, NULL, 0));
    return tr_send_every(ctx, tr_self(ctx), tr_msg_new(MSG_AGAIN, NULL, 0), 20, &s->again);
}

static void source_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    source_state *s = state;
    if (tr_msg_type(msg) == MSG_AGAIN) {
        tr_send_named_node(ctx, 2, "sink", tr_msg_new(MSG_HELLO, NULL, 0));
    } else if (tr_msg_type(msg) == MSG_HERE) {
        if (!s->again)
            return; /* an answer to a repeated hello: the rally is on already */
        tr_timer_cancel(tr_ctx_system(ctx), s->again);
        s->again = 0;
        tr_addr sink_addr = tr_sender(ctx);
        assert_int_equal(tr_addr_node(sink_addr), 2);
        tr_msg *local = tr_msg_new(MSG_LOCAL_TRY, NULL, 0);
        tr_msg_set_local(local);
        if (tr_send(ctx, sink_addr, local) == TR_ELOCAL)
            local_refused++;
        /* Every seventh by name: a frame only the io thread reads, among
         * those that idle workers take straight from shared memory. The
         * order must hold across the hand-overs. Sizes vary, so frames end
         * anywhere in the ring. */
        for (long seq = 0; seq < COUNT; seq++) {
            unsigned char body[sizeof seq + 28 * 37] = {0};
            memcpy(body, &seq, sizeof seq);
            tr_msg *m = tr_msg_new(MSG_SEQ, body, sizeof seq + (size_t)(seq % 29) * 37);
            assert_int_equal(seq % 7 == 3 ? tr_send_named_node(ctx, 2, "sink", m)
                                          : tr_send(ctx, sink_addr, m),
                             0);
        }
        tr_send(ctx, sink_addr, tr_msg_new(MSG_DONE, NULL, 0));
    } else if (tr_msg_type(msg) == MSG_TOTAL) {
        const uint64_t *total = tr_msg_data(msg);
        uint64_t sum = 0;
        for (long seq = 0; seq < COUNT; seq++)
            sum += (uint64_t)seq * 2654435761u;
        if (total[0] == COUNT && total[1] == sum)
            verified++;
        tr_system_stop(tr_ctx_system(ctx));
    }
}

static const tr_behavior source = {
    .name = "source", .state_size = sizeof(source_state), .init = source_init, .receive = source_receive};

static void *run(void *sys)
{
    tr_system_run(sys);
    return NULL;
}

/* Runs node 2's sink and node 1's source until the source has checked the
 * total and stopped node 1; freeing node 1 closes the link, so node 2 ends. */
static void run_two_nodes(tr_system *a, tr_system *b)
{
    tr_system_spawn(b, &sink, NULL, NULL);
    pthread_t ta, tb;
    pthread_create(&tb, NULL, run, b);
    tr_system_spawn(a, &source, NULL, NULL);
    pthread_create(&ta, NULL, run, a);
    pthread_join(ta, NULL);
    tr_system_free(a);
    pthread_join(tb, NULL);
    tr_system_free(b);
}

static void send_across(const char *transport)
{
    verified = local_refused = 0;
    tr_system *a, *b;
    node_pair(transport, NULL, &a, &b);
    run_two_nodes(a, b);
    assert_int_equal(verified, 1);
    assert_int_equal(local_refused, 1);
}

static void nodes__send_across__all_arrive_in_order_with_the_right_sum(void **state)
{
    (void)state;
    send_across("pipe");
}

static void nodes__send_across_shm__all_arrive_in_order_with_the_right_sum(void **state)
{
    (void)state;
    send_across("shm");
}

static void connect__bad_arguments__einval(void **state)
{
    (void)state;
    tr_system *zero = node_system(0);
    int fds[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
    assert_int_equal(tr_system_connect(zero, fds[0]), TR_EINVAL); /* node 0 cannot connect */
    assert_int_equal(tr_system_connect(NULL, fds[0]), TR_EINVAL);
    tr_system *one = node_system(1);
    assert_int_equal(tr_system_connect(one, -1), TR_EINVAL);
    assert_int_equal(tr_system_connect_via(one, fds[0], "carrier-pigeon"), TR_EINVAL);
    assert_int_equal(tr_system_connect_via(one, fds[0], NULL), TR_EINVAL);
    assert_int_equal(tr_system_stop_with_node(one, 1), TR_EINVAL); /* ourselves */
    assert_int_equal(tr_system_stop_with_node(one, 0), TR_EINVAL);
    assert_int_equal(tr_system_stop_with_node(NULL, 2), TR_EINVAL);
    assert_int_equal(tr_system_join(one), TR_EINVAL); /* not started as a node */
    assert_int_equal(tr_system_spawn_nodes(one, "/proc/self/exe", NULL, 1, 2, "pipe"), TR_EINVAL);
    assert_int_equal(tr_system_spawn_nodes(one, "/proc/self/exe", NULL, 2, 1, "tcp"), TR_EINVAL);
    assert_int_equal(tr_system_spawn_nodes(one, "/proc/self/exe", NULL, 65535, 2, "pipe"), TR_EINVAL);
    assert_int_equal(tr_launch("/proc/self/exe", NULL, 0, "pipe", NULL), TR_EINVAL);
    assert_int_equal(tr_launch("/proc/self/exe", NULL, 2, "carrier-pigeon", NULL), TR_EINVAL);
    assert_int_equal(tr_system_spawn_node(one, "/nonexistent/program", NULL, 2), TR_EINVAL);
    assert_int_equal(tr_system_spawn_node(one, "/proc/self/exe", NULL, 1), TR_EINVAL); /* ours */
    assert_int_equal(tr_system_spawn_node(zero, "/proc/self/exe", NULL, 2), TR_EINVAL);
    close(fds[0]);
    close(fds[1]);
    tr_system_free(zero);
    tr_system_free(one);
}

/* tr_launch reports each node's exit status, 128 + the signal for a kill. */
static void launch__statuses__exit_codes_and_signals(void **state)
{
    (void)state;
    int status[2] = {-1, -1};
    char *exits[] = {"sh", "-c", "exit $((TROUPE_NODE_ID + 2))", NULL};
    assert_int_equal(tr_launch("/bin/sh", exits, 2, "pipe", status), 0);
    assert_int_equal(status[0], 3); /* node 1 */
    assert_int_equal(status[1], 4); /* node 2 */
    char *killed[] = {"sh", "-c", "kill -9 $$", NULL};
    assert_int_equal(tr_launch("/bin/sh", killed, 2, "shm", status), 0);
    assert_int_equal(status[0], 128 + 9);
    assert_int_equal(status[1], 128 + 9);
    assert_int_equal(tr_launch("/nonexistent/program", NULL, 1, "pipe", NULL), TR_EINVAL);
}

/* tr_system_join refuses a malformed environment. */
static void join__malformed_environment__einval(void **state)
{
    (void)state;
    tr_system *two = node_system(2);
    setenv("TROUPE_NODE_ID", "2", 1);
    const char *bad[] = {"x", "1", "1:", "1:2", "0:5", "70000:5", "1:5,", "1:5;3:6"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("TROUPE_NODE_PEERS", bad[i], 1);
        assert_int_equal(tr_system_join(two), TR_EINVAL);
    }
    setenv("TROUPE_NODE_PEERS", "1:5", 1);
    setenv("TROUPE_NODE_TRANSPORT", "tcp", 1);
    assert_int_equal(tr_system_join(two), TR_EINVAL);
    setenv("TROUPE_NODE_TRANSPORT", "pipe", 1);
    /* the mesh: a 16-hex-digit name and its members, both or neither */
    const char *bad_mesh[][2] = {{"0123456789abcdef", NULL}, {NULL, "1,2"},
                                 {"0123456789abcde", "1,2"}, {"0123456789abcdeX", "1,2"},
                                 {"0123456789abcdef", ""},   {"0123456789abcdef", "1,,2"},
                                 {"0123456789abcdef", "1,0"}, {"0123456789abcdef", "1,2,"}};
    for (size_t i = 0; i < sizeof bad_mesh / sizeof bad_mesh[0]; i++) {
        bad_mesh[i][0] ? setenv("TROUPE_NODE_MESH", bad_mesh[i][0], 1) : unsetenv("TROUPE_NODE_MESH");
        bad_mesh[i][1] ? setenv("TROUPE_NODE_MEMBERS", bad_mesh[i][1], 1)
                       : unsetenv("TROUPE_NODE_MEMBERS");
        assert_int_equal(tr_system_join(two), TR_EINVAL);
    }
    unsetenv("TROUPE_NODE_MESH");
    unsetenv("TROUPE_NODE_MEMBERS");
    setenv("TROUPE_NODE_ID", "3", 1); /* not this system's number */
    assert_int_equal(tr_system_join(two), TR_EINVAL);
    unsetenv("TROUPE_NODE_ID");
    unsetenv("TROUPE_NODE_PEERS");
    unsetenv("TROUPE_NODE_TRANSPORT");
    tr_system_free(two);
}

/* ---- a peer that writes garbage is cut off; the good one goes on ---- */

static void write_all(int fd, const void *p, size_t n)
{
    assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* Reads until the other end closes: 0 then, -1 on another error. A Unix
 * socket closed with bytes of ours still unread gives ECONNRESET instead of
 * EOF, which says the same here (we often write a last byte it need not
 * read). */
static int read_to_end(int fd)
{
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        ;
    return n == 0 || errno == ECONNRESET ? 0 : -1;
}

static void nodes__garbage_peer__cut_off_while_the_good_link_works(void **state)
{
    (void)state;
    verified = local_refused = 0;
    int good[2], bad[2], bad_version[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, good), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, bad), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, bad_version), 0);
    tr_system *a = node_system(1), *b = node_system(2);
    /* node 1 gets three connections: two from misbehaving peers */
    assert_int_equal(tr_system_connect(a, bad[0]), 0);
    assert_int_equal(tr_system_connect(a, bad_version[0]), 0);
    write_all(bad[1], "this is not a troupe frame, not at all", 38);
    unsigned char header[32] = {'T', 'R', 9, 1}; /* version 9 */
    write_all(bad_version[1], header, sizeof header);
    assert_int_equal(tr_system_connect(a, good[0]), 0);
    assert_int_equal(tr_system_connect(b, good[1]), 0);
    run_two_nodes(a, b);
    /* the bad peers got node 1's HELLO, then saw it close the connection */
    assert_int_equal(read_to_end(bad[1]), 0);
    assert_int_equal(read_to_end(bad_version[1]), 0);
    close(bad[1]);
    close(bad_version[1]);
    assert_int_equal(verified, 1); /* the good link carried everything */
}

/* ---- remote spawn, asks, monitors and links across nodes ---- */

enum { MSG_PING = 40, MSG_PONG, MSG_QUIT, MSG_STOP_NODE };

static _Atomic int spawned_ok, spawn_unknown, pong_ok, down_normal, noconn_spawn, noconn_down;

static int echo_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)ctx;
    if (arg && tr_msg_size(arg) == sizeof(long))
        memcpy(state, tr_msg_data(arg), sizeof(long));
    return 0;
}

static void echo_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    if (tr_msg_type(msg) == MSG_PING)
        tr_reply(ctx, tr_msg_new(MSG_PONG, state, sizeof(long)));
    else if (tr_msg_type(msg) == MSG_QUIT)
        tr_exit(ctx, 7);
    else if (tr_msg_type(msg) == MSG_STOP_NODE)
        tr_system_stop(tr_ctx_system(ctx));
}

static const tr_behavior echo = {
    .name = "echo", .state_size = sizeof(long), .init = echo_init, .receive = echo_receive};

typedef struct {
    uint64_t echo_ref, unknown_ref, monitor_ref;
    tr_addr echo;
    int answers;
} driver_state;

static int driver_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    driver_state *d = state;
    long seed = 42;
    assert_int_equal(tr_spawn_remote(ctx, 2, "echo", tr_msg_new(0, &seed, sizeof seed), 5000,
                                     &d->echo_ref), 0);
    return tr_spawn_remote(ctx, 2, "no-such-behaviour", NULL, 5000, &d->unknown_ref);
}

static void driver_done_part(tr_ctx *ctx, driver_state *d)
{
    if (++d->answers == 3) /* unknown behaviour, the echo's down, node 7's down */
        tr_system_stop(tr_ctx_system(ctx));
}

static void driver_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    driver_state *d = state;
    switch (tr_msg_type(msg)) {
    case TR_MSG_SPAWNED: {
        const tr_spawned *sp = tr_msg_data(msg);
        if (tr_reply_to(ctx) == d->unknown_ref) {
            spawn_unknown += sp->error == TR_ENOENT && tr_addr_is_none(sp->actor);
            driver_done_part(ctx, d);
            return;
        }
        assert_int_equal(tr_reply_to(ctx), d->echo_ref);
        spawned_ok += sp->error == 0 && tr_addr_node(sp->actor) == 2;
        d->echo = sp->actor;
        assert_int_equal(tr_monitor(ctx, d->echo, &d->monitor_ref), 0);
        assert_int_equal(tr_ask(ctx, d->echo, tr_msg_new(MSG_PING, NULL, 0), 5000, NULL), 0);
        /* the handshake is over now, so a node never connected is known down */
        noconn_spawn += tr_spawn_remote(ctx, 7, "echo", NULL, 5000, NULL) == TR_ENODE;
        tr_addr stranger;
        assert_int_equal(tr_addr_parse("<7.1.1>", &stranger), 0);
        assert_int_equal(tr_monitor(ctx, stranger, NULL), 0);
        tr_send(ctx, stranger, tr_msg_new(MSG_PING, NULL, 0)); /* no connection: dropped, counted */
        return;
    }
    case MSG_PONG:
        pong_ok += tr_reply_to(ctx) != 0 && *(const long *)tr_msg_data(msg) == 42;
        tr_send(ctx, d->echo, tr_msg_new(MSG_QUIT, NULL, 0));
        return;
    case TR_MSG_DOWN: {
        const tr_down *dn = tr_msg_data(msg);
        if (tr_addr_node(dn->actor) == 7)
            noconn_down += dn->reason == TR_EXIT_NODEDOWN;
        else
            down_normal += dn->ref == d->monitor_ref && dn->reason == 7 &&
                           tr_addr_eq(dn->actor, d->echo);
        driver_done_part(ctx, d);
        return;
    }
    }
}

static const tr_behavior driver = {
    .name = "driver", .state_size = sizeof(driver_state), .init = driver_init, .receive = driver_receive};

/* Node 1 running `first` and node 2 (with echo registered) joined by a
 * socketpair; node 1 runs until its actor stops it, then both are freed. */
static tr_stats pair_stats;

static void run_pair(const tr_behavior *first)
{
    tr_system *a, *b;
    node_pair("pipe", &echo, &a, &b);
    assert_int_equal(tr_register_behavior(b, &echo), TR_EEXIST);
    pthread_t ta, tb;
    pthread_create(&tb, NULL, run, b);
    tr_system_spawn(a, first, NULL, NULL);
    pthread_create(&ta, NULL, run, a);
    pthread_join(ta, NULL);
    tr_system_stats(a, &pair_stats);
    tr_system_free(a);
    pthread_join(tb, NULL);
    tr_system_free(b);
}

/* ---- flow control: a flood to a slow actor on another node ---- */

enum { MSG_FLOOD = 30, MSG_BURST, MSG_FLOOD_DONE, MSG_FLOOD_TOTAL };
enum { FLOOD_COUNT = 5000, FLOOD_SIZE = 4096, FLOOD_BURST = 32 };

static _Atomic int flood_ok;
/* Both systems are in this process: how many the sender has sent, and the
 * most the receiver ever saw sent and not yet handled (in its mailbox, in
 * the ring or socket, or waiting on the sender's side). */
static _Atomic long flood_sent, flood_lag_max;

static void slow_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    long *next = state;
    if (tr_msg_type(msg) == MSG_FLOOD) {
        long seq;
        memcpy(&seq, tr_msg_data(msg), sizeof seq);
        if (seq == *next)
            ++*next;
        long lag = atomic_load(&flood_sent) - seq;
        if (lag > atomic_load(&flood_lag_max))
            atomic_store(&flood_lag_max, lag);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do /* 20 µs a message: far slower than the sender */
            clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 20000);
    } else if (tr_msg_type(msg) == MSG_FLOOD_DONE) {
        tr_reply(ctx, tr_msg_new(MSG_FLOOD_TOTAL, next, sizeof *next));
    }
}

static const tr_behavior slow = {.name = "slow", .state_size = sizeof(long), .receive = slow_receive};

typedef struct {
    tr_addr sink;
    long sent;
} flood_state;

static int flood_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_spawn_remote(ctx, 2, "slow", NULL, 10000, NULL);
}

static void flood_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    flood_state *f = state;
    switch (tr_msg_type(msg)) {
    case TR_MSG_SPAWNED:
        assert_int_equal(((const tr_spawned *)tr_msg_data(msg))->error, 0);
        f->sink = ((const tr_spawned *)tr_msg_data(msg))->actor;
        __attribute__((fallthrough)); /* start */
    case MSG_BURST: { /* a burst a turn, as fast as we are let */
        unsigned char body[FLOOD_SIZE] = {0};
        for (int i = 0; i < FLOOD_BURST && f->sent < FLOOD_COUNT; i++, f->sent++) {
            memcpy(body, &f->sent, sizeof f->sent);
            assert_int_equal(tr_send(ctx, f->sink, tr_msg_new(MSG_FLOOD, body, sizeof body)), 0);
            atomic_store(&flood_sent, f->sent + 1);
        }
        tr_send(ctx, f->sent < FLOOD_COUNT ? tr_self(ctx) : f->sink,
                tr_msg_new(f->sent < FLOOD_COUNT ? MSG_BURST : MSG_FLOOD_DONE, NULL, 0));
        return;
    }
    case MSG_FLOOD_TOTAL: {
        long got;
        memcpy(&got, tr_msg_data(msg), sizeof got);
        flood_ok = got == FLOOD_COUNT; /* every one, in order */
        tr_system_stop(tr_ctx_system(ctx));
        return;
    }
    }
}

static const tr_behavior flood = {
    .name = "flood", .state_size = sizeof(flood_state), .init = flood_init, .receive = flood_receive};

/* A sender far faster than its receiver on another node: everything
 * arrives in order; the receiving node stops reading while the receiver is
 * overloaded, so the bytes wait in the ring or socket and then on the
 * sender's side, where they stay near the limit (1 MiB) as the sender is
 * paused. At no time are more than a few hundred of the 5000 messages
 * (20 MB) sent and not yet handled; without the receiving side's hold,
 * nearly all of them were, in the receiver's mailbox. test_node_procs
 * stops the receiving process to pause the sender another way. */
static void flow_control(const char *transport)
{
    flood_ok = 0;
    flood_sent = flood_lag_max = 0;
    tr_system *a, *b;
    node_pair(transport, &slow, &a, &b);
    pthread_t tb;
    pthread_create(&tb, NULL, run, b);
    tr_system_spawn(a, &flood, NULL, NULL);
    tr_system_run(a);
    tr_stats st, rst;
    tr_system_stats(a, &st);
    tr_system_stats(b, &rst);
    tr_system_free(a);
    pthread_join(tb, NULL);
    tr_system_free(b);
    assert_int_equal(flood_ok, 1);
    assert_true(st.node_backlog_peak < 2u << 20);
    /* (How often reading stopped, and the sender waited, depends on how
     * much faster than the receiver the sender runs: under valgrind maybe
     * never.) */
    if (flood_lag_max >= FLOOD_COUNT / 3)
        fail_msg("%s: %ld messages outstanding at most, %" PRIu64 " holds, %" PRIu64
                 " sender waits", transport, (long)flood_lag_max, rst.node_holds, st.node_waits);
}

static void nodes__flood_to_a_slow_node_pipe__in_order_backlog_bounded(void **state)
{
    (void)state;
    flow_control("pipe");
}

static void nodes__flood_to_a_slow_node_shm__in_order_backlog_bounded(void **state)
{
    (void)state;
    flow_control("shm");
}

/* ---- flow control both ways: two slow relays, each feeding the other node ---- */

enum { CROSS_COUNT = 3000 };

static tr_system *cross_sys[2];
static _Atomic int cross_done, cross_bad;

/* A sink: counts the floods that reach it, in order; the second sink to
 * have them all stops both systems. */
static void cross_sink_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    long *next = state, seq;
    if (tr_msg_type(msg) != MSG_FLOOD)
        return;
    memcpy(&seq, tr_msg_data(msg), sizeof seq);
    if (seq != (*next)++)
        cross_bad = 1;
    if (*next == CROSS_COUNT && atomic_fetch_add(&cross_done, 1) == 1) {
        tr_system_stop(cross_sys[0]);
        tr_system_stop(cross_sys[1]);
    }
}

static const tr_behavior cross_sink = {
    .name = "cross_sink", .state_size = sizeof(long), .receive = cross_sink_receive};

/* A relay: 20 µs a message, each passed on to the sink on the other node. */
static int relay_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)ctx;
    memcpy(state, tr_msg_data(arg), sizeof(tr_addr));
    return 0;
}

static void relay_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    const tr_addr *sink = state;
    slow_receive(ctx, &(long){0}, msg); /* its 20 µs (and no answer: no MSG_FLOOD_DONE comes) */
    assert_int_equal(tr_send(ctx, *sink, tr_msg_ref(msg)), 0);
}

static const tr_behavior relay = {
    .name = "relay", .state_size = sizeof(tr_addr), .init = relay_init, .receive = relay_receive};

/* A flooder: CROSS_COUNT messages of FLOOD_SIZE bytes to the relay on the
 * other node, a burst a turn, as fast as it is let. */
static int cross_flood_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    flood_state *f = state;
    memcpy(&f->sink, tr_msg_data(arg), sizeof f->sink);
    return tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_BURST, NULL, 0));
}

static void cross_flood_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    flood_state *f = state;
    (void)msg;
    unsigned char body[FLOOD_SIZE] = {0};
    for (int i = 0; i < FLOOD_BURST && f->sent < CROSS_COUNT; i++, f->sent++) {
        memcpy(body, &f->sent, sizeof f->sent);
        assert_int_equal(tr_send(ctx, f->sink, tr_msg_new(MSG_FLOOD, body, sizeof body)), 0);
    }
    if (f->sent < CROSS_COUNT)
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_BURST, NULL, 0));
}

static const tr_behavior cross_flood = {.name = "cross_flood", .state_size = sizeof(flood_state),
                                        .init = cross_flood_init, .receive = cross_flood_receive};

static tr_msg *addr_msg(tr_addr a) { return tr_msg_new(0, &a, sizeof a); }

/* Each node floods a slow relay on the other, which passes every message
 * on to a sink back on the first: both relays are overloaded, so each node
 * stops reading the other's connection, while each relay sends more to the
 * node that stopped reading from it. Everything arrives, in order: a relay
 * that a connection waits for is never paused for its own sends (paused,
 * it could not drain, and each node would wait for the other for ever). */
static void flow_control_both_ways(const char *transport)
{
    cross_done = cross_bad = 0;
    /* The actors are made before the connection (and its io thread), so
     * that ThreadSanitizer sees them made before the other node's messages
     * reach them: it cannot see the ordering through shared memory mapped
     * twice (both ends of a ring are in this one process). */
    tr_system *a = beating_node(1, 60000), *b = beating_node(2, 60000);
    cross_sys[0] = a;
    cross_sys[1] = b;
    tr_addr sink_a, sink_b, relay_a, relay_b;
    assert_int_equal(tr_system_spawn(a, &cross_sink, NULL, &sink_a), 0);
    assert_int_equal(tr_system_spawn(b, &cross_sink, NULL, &sink_b), 0);
    assert_int_equal(tr_system_spawn(a, &relay, addr_msg(sink_b), &relay_a), 0);
    assert_int_equal(tr_system_spawn(b, &relay, addr_msg(sink_a), &relay_b), 0);
    assert_int_equal(tr_system_spawn(a, &cross_flood, addr_msg(relay_b), NULL), 0);
    assert_int_equal(tr_system_spawn(b, &cross_flood, addr_msg(relay_a), NULL), 0);
    pair_connect(transport, a, b);
    alarm(120);
    pthread_t tb;
    pthread_create(&tb, NULL, run, b);
    tr_system_run(a);
    pthread_join(tb, NULL);
    alarm(0);
    tr_system_free(a);
    tr_system_free(b);
    assert_int_equal(cross_done, 2);
    assert_int_equal(cross_bad, 0);
}

/* ---- a slow actor with a bounded mailbox, flooded from another node ---- */

static _Atomic long bounded_got;

static void slow_counter_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    slow_receive(ctx, state, msg); /* 20 µs; counts the floods that come in order */
    bounded_got = *(long *)state;
}

static const tr_behavior slow_counter = {
    .name = "slow_counter", .state_size = sizeof(long), .receive = slow_counter_receive};

/* A remote send to a full bounded mailbox cannot be refused to its sender
 * (it has returned): the connection stops reading once the mailbox is half
 * full, and what one read brings beyond its room waits in the connection
 * until the actor has drained. So a flood of 3000 messages of 4 KiB, in
 * bursts of 32, loses nothing and keeps its order, into a bound of 256 (the
 * hold alone kept drops away there: they began after 140-350 had arrived
 * without it) and into a bound of 4, smaller than a burst (where the held
 * messages are needed: without them, 2,200-2,800 of the 3,000 were
 * dropped, in 6 runs). */
/* Stops a system running on thread, waits for the run, frees it. */
static void stop_and_free(tr_system *sys, pthread_t thread)
{
    tr_system_stop(sys);
    pthread_join(thread, NULL);
    tr_system_free(sys);
}

/* Node 1 (*a) floods a slow_counter on node 2 (*b, its mailbox bounded
 * at bound unless 0), both running on threads *ta and *tb. */
static void flood_a_counter(const char *transport, uint32_t heartbeat_ms, uint32_t bound,
                            tr_system **a, tr_system **b, pthread_t *ta, pthread_t *tb)
{
    bounded_got = 0;
    *a = beating_node(1, heartbeat_ms);
    *b = beating_node(2, heartbeat_ms);
    tr_addr counter;
    tr_spawn_opts opts = {.mailbox_bound = bound, .overflow = TR_OVERFLOW_REFUSE};
    assert_int_equal(tr_system_spawn_opt(*b, &slow_counter, NULL, &opts, &counter), 0);
    assert_int_equal(tr_system_spawn(*a, &cross_flood, addr_msg(counter), NULL), 0);
    pair_connect(transport, *a, *b); /* after the actors: see flow_control_both_ways */
    pthread_create(ta, NULL, run, *a);
    pthread_create(tb, NULL, run, *b);
}

static void bounded_flood(const char *transport, uint32_t bound)
{
    tr_system *a, *b;
    pthread_t ta, tb;
    flood_a_counter(transport, 60000, bound, &a, &b, &ta, &tb);
    tr_stats st;
    for (int ms = 0; ms < 60000; ms++) { /* until all came, or one was dropped */
        tr_system_stats(b, &st);
        if (bounded_got == CROSS_COUNT || st.overflowed)
            break;
        usleep(1000);
    }
    stop_and_free(a, ta);
    stop_and_free(b, tb);
    if (bounded_got != CROSS_COUNT || st.overflowed)
        fail_msg("%s, bound %u: %ld of %d arrived in order, %" PRIu64 " dropped", transport,
                 (unsigned)bound, (long)bounded_got, CROSS_COUNT, st.overflowed);
}

static void nodes__flood_to_a_slow_bounded_mailbox_pipe__nothing_dropped(void **state)
{
    (void)state;
    bounded_flood("pipe", 256);
    bounded_flood("pipe", 4);
}

static void nodes__flood_to_a_slow_bounded_mailbox_shm__nothing_dropped(void **state)
{
    (void)state;
    bounded_flood("shm", 256);
    bounded_flood("shm", 4);
}

/* ---- a node stopped mid-flood still lets its peer go ---- */

/* Node 2 stops (tr_system_stop) while node 1 floods its slow actor and the
 * connection holds for it: with no worker left to drain that actor, the
 * connection reads again, so node 1's tr_system_free finds its goodbye
 * read and answered at once instead of waiting for the goodbye deadline
 * (4 heartbeats: 20 s here). */
static void stopped_mid_flood(const char *transport)
{
    alarm(120);
    tr_system *a, *b;
    pthread_t ta, tb;
    flood_a_counter(transport, 5000, 0, &a, &b, &ta, &tb);
    tr_stats st;
    do { /* until reading has waited for the slow actor, which has run (so
          * node 2's run has begun, and tr_system_stop stops it) */
        usleep(1000);
        tr_system_stats(b, &st);
    } while ((st.node_holds == 0 || bounded_got == 0) && bounded_got < CROSS_COUNT);
    tr_system_stop(b);
    pthread_join(tb, NULL);
    tr_system_stop(a);
    pthread_join(ta, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tr_system_free(a);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tr_system_free(b);
    alarm(0);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (secs > 10)
        fail_msg("%s: node 1's free took %.1f s", transport, secs);
}

static void nodes__peer_stopped_mid_flood_pipe__free_does_not_wait_for_it(void **state)
{
    (void)state;
    stopped_mid_flood("pipe");
}

static void nodes__peer_stopped_mid_flood_shm__free_does_not_wait_for_it(void **state)
{
    (void)state;
    stopped_mid_flood("shm");
}

/* ---- many senders into one small bounded mailbox ---- */

enum { MSG_MANY = 70, MSG_MANY_GO };
enum { MANY_SOURCES = 5, MANY_EACH = 1500, MANY_BURST = 32 };

typedef struct {
    long src; /* (a long: no padding goes out uninitialised) */
    long seq;
} many_msg;

static _Atomic long many_total;
static _Atomic int many_bad;

static int many_sink_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_register(ctx, "many_sink");
}

/* Checks that each source's messages come in order, 2 µs each. */
static void many_sink_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx;
    long *next = state;
    many_msg m;
    if (tr_msg_type(msg) != MSG_MANY || tr_msg_size(msg) != sizeof m) {
        many_bad = 1;
        return;
    }
    memcpy(&m, tr_msg_data(msg), sizeof m);
    if (m.src < 0 || m.src >= MANY_SOURCES || m.seq != next[m.src]++)
        many_bad = 1;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 2000);
    many_total++;
}

static const tr_behavior many_sink = {.name = "many_sink", .state_size = MANY_SOURCES * sizeof(long),
                                      .init = many_sink_init, .receive = many_sink_receive};

typedef struct {
    tr_addr sink; /* TR_ADDR_NONE: by name, on node 2 */
    int src;
    long seq;
} many_source;

static int many_source_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    memcpy(state, tr_msg_data(arg), sizeof(many_source));
    return tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_MANY_GO, NULL, 0));
}

/* A burst a turn, by address or by name; a local send refused by the full
 * mailbox is tried again next turn. */
static void many_source_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)msg;
    many_source *s = state;
    for (int i = 0; i < MANY_BURST && s->seq < MANY_EACH; i++) {
        many_msg m = {s->src, s->seq};
        tr_msg *out = tr_msg_new(MSG_MANY, &m, sizeof m);
        int rc = tr_addr_is_none(s->sink) ? tr_send_named_node(ctx, 2, "many_sink", out)
                                          : tr_send(ctx, s->sink, out);
        if (rc == TR_EFULL)
            break;
        assert_int_equal(rc, 0);
        s->seq++;
    }
    if (s->seq < MANY_EACH)
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_MANY_GO, NULL, 0));
}

static const tr_behavior many_source_beh = {.name = "many_source", .state_size = sizeof(many_source),
                                            .init = many_source_init, .receive = many_source_receive};

static tr_msg *source_msg(tr_addr sink, int src)
{
    many_source s = {sink, src, 0};
    return tr_msg_new(0, &s, sizeof s);
}

/* Four sources on node 1 (two by address, two by name) and one on node 2
 * flood a sink bounded at 4 that refuses when full: the local source is
 * refused and retries, the remote ones wait on their connection; every
 * message arrives, each source's in order. */
static void many_into_small_bound(const char *transport)
{
    many_total = 0;
    many_bad = 0;
    tr_system *a = beating_node(1, 60000), *b = beating_node(2, 60000);
    tr_addr sink, found;
    tr_spawn_opts opts = {.mailbox_bound = 4, .overflow = TR_OVERFLOW_REFUSE};
    assert_int_equal(tr_system_spawn_opt(b, &many_sink, NULL, &opts, &sink), 0);
    assert_int_equal(tr_system_spawn(b, &many_source_beh, source_msg(sink, 4), NULL), 0);
    pair_connect(transport, a, b); /* after node 2's actors: see flow_control_both_ways */
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run, a);
    pthread_create(&tb, NULL, run, b);
    for (int ms = 0; ms < 10000 && tr_whereis(b, "many_sink", &found) != 0; ms++)
        usleep(1000);
    for (int src = 0; src < 4; src++)
        assert_int_equal(
            tr_system_spawn(a, &many_source_beh, source_msg(src < 2 ? sink : TR_ADDR_NONE, src), NULL),
            0);
    for (int ms = 0; ms < 60000 && many_total < MANY_SOURCES * MANY_EACH && !many_bad; ms++)
        usleep(1000);
    tr_stats st;
    tr_system_stats(b, &st);
    stop_and_free(a, ta);
    stop_and_free(b, tb);
    if (many_total != MANY_SOURCES * MANY_EACH || many_bad || st.dead_letters)
        fail_msg("%s: %ld of %d arrived, %s, %" PRIu64 " dead letters", transport, (long)many_total,
                 MANY_SOURCES * MANY_EACH, many_bad ? "out of order" : "in order", st.dead_letters);
}

static void nodes__many_senders_into_a_small_bound_pipe__all_in_order(void **state)
{
    (void)state;
    many_into_small_bound("pipe");
}

static void nodes__many_senders_into_a_small_bound_shm__all_in_order(void **state)
{
    (void)state;
    many_into_small_bound("shm");
}

static void nodes__slow_relays_both_ways_pipe__no_deadlock_nothing_lost(void **state)
{
    (void)state;
    flow_control_both_ways("pipe");
}

static void nodes__slow_relays_both_ways_shm__no_deadlock_nothing_lost(void **state)
{
    (void)state;
    flow_control_both_ways("shm");
}

static void nodes__remote_spawn_ask_monitor__work_as_locally(void **state)
{
    (void)state;
    spawned_ok = spawn_unknown = pong_ok = down_normal = noconn_spawn = noconn_down = 0;
    run_pair(&driver);
    assert_int_equal(spawned_ok, 1);
    assert_int_equal(spawn_unknown, 1);
    assert_int_equal(pong_ok, 1);
    assert_int_equal(down_normal, 1);
    assert_int_equal(noconn_spawn, 1);
    assert_int_equal(noconn_down, 1);
    assert_true(pair_stats.node_dropped >= 1); /* the send to node 7 */
}

/* ---- a node that goes down: monitors get downs, links fire ---- */

static _Atomic int nodedown_monitor, nodedown_node, nodedown_link, nodedown_ask;

/* An ask the echo never answers (it ignores the type) ends when its node goes. */
static void unanswered(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg);

typedef struct {
    uint64_t refs[2];
    tr_addr victims[2];
    int got, events;
} watcher_state;

static int watcher_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    watcher_state *w = state;
    tr_trap_exit(ctx, true);
    assert_int_equal(tr_spawn_remote(ctx, 2, "echo", NULL, 5000, &w->refs[0]), 0);
    return tr_spawn_remote(ctx, 2, "echo", NULL, 5000, &w->refs[1]);
}

static void watcher_event(tr_ctx *ctx, watcher_state *w)
{
    if (++w->events == 4) /* two downs, a link exit, an ask ended */
        tr_system_stop(tr_ctx_system(ctx));
}

static void unanswered(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg)
{
    (void)arg;
    nodedown_ask += reply == NULL && status == TR_ENODE;
    watcher_event(ctx, state);
}

static void watcher_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    watcher_state *w = state;
    if (tr_msg_type(msg) == TR_MSG_SPAWNED) {
        const tr_spawned *sp = tr_msg_data(msg);
        assert_int_equal(sp->error, 0);
        w->victims[w->got++] = sp->actor;
        if (w->got < 2)
            return;
        assert_int_equal(tr_monitor(ctx, w->victims[0], NULL), 0);
        assert_int_equal(tr_link(ctx, w->victims[1]), 0);
        assert_int_equal(tr_monitor_node(ctx, 2, NULL), 0);
        assert_int_equal(tr_ask_then(ctx, w->victims[0], tr_msg_new(99, NULL, 0), 60000,
                                     unanswered, NULL), 0);
        /* node 2 stops and is freed: its connection closes */
        tr_send(ctx, w->victims[0], tr_msg_new(MSG_STOP_NODE, NULL, 0));
    } else if (tr_msg_type(msg) == TR_MSG_DOWN) {
        const tr_down *dn = tr_msg_data(msg);
        if (tr_addr_eq(dn->actor, tr_node_addr(2)))
            nodedown_node += dn->reason == TR_EXIT_NODEDOWN;
        else
            nodedown_monitor += dn->reason == TR_EXIT_NODEDOWN && tr_addr_eq(dn->actor, w->victims[0]);
        watcher_event(ctx, w);
    } else if (tr_msg_type(msg) == TR_MSG_EXIT) {
        const tr_exit_info *e = tr_msg_data(msg);
        nodedown_link += e->reason == TR_EXIT_NODEDOWN && tr_addr_eq(e->actor, w->victims[1]);
        watcher_event(ctx, w);
    }
}

static const tr_behavior watcher = {.name = "watcher", .state_size = sizeof(watcher_state),
                                    .init = watcher_init, .receive = watcher_receive};

static void *run_and_free(void *sys)
{
    tr_system_run(sys);
    tr_system_free(sys);
    return NULL;
}

/* An actor whose init marks its system as running: a tr_system_stop made
 * before tr_system_run has begun has no effect, so tests that stop a system
 * they started on a thread wait for this first. */
static int running_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)ctx, (void)state;
    _Atomic int *up;
    memcpy(&up, tr_msg_data(arg), sizeof up);
    *up = 1;
    return 0;
}

static void running_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
}

static const tr_behavior running_probe = {.name = "running", .init = running_init,
                                          .receive = running_receive};

/* Runs sys on a new thread; returns once it runs. */
static void run_started(tr_system *sys, pthread_t *thread)
{
    static _Atomic int up;
    up = 0;
    _Atomic int *flag = &up;
    assert_int_equal(tr_system_spawn(sys, &running_probe, tr_msg_new(0, &flag, sizeof flag), NULL),
                     0);
    pthread_create(thread, NULL, run, sys);
    while (!up)
        usleep(1000);
}

/* Tells the test node 2 is up: a remote spawn was answered. */
static _Atomic int peer_answered;

static bool wait_for(_Atomic int *flag)
{
    for (int i = 0; i < 5000 && !*flag; i++)
        usleep(1000);
    return *flag;
}

static int syncer_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_spawn_remote(ctx, 2, "echo", NULL, 10000, NULL);
}

static void syncer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_msg_type(msg) == TR_MSG_SPAWNED)
        peer_answered = 1;
    tr_exit(ctx, TR_EXIT_NORMAL);
}

static const tr_behavior syncer = {.name = "syncer", .init = syncer_init, .receive = syncer_receive};

/* A system told to stop with node 2 returns from run once node 2 is gone. */
static void stop_with_node__peer_freed__run_returns(void **state)
{
    (void)state;
    peer_answered = 0;
    tr_system *a, *b;
    node_pair("shm", &echo, &a, &b);
    assert_int_equal(tr_system_spawn(a, &syncer, NULL, NULL), 0);
    int other[2]; /* a second connection, to a silent peer, keeps node 1 up on its own */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
    assert_int_equal(tr_system_connect(a, other[0]), 0);
    assert_int_equal(tr_system_stop_with_node(a, 2), 0);
    pthread_t ta;
    pthread_create(&ta, NULL, run, a);
    while (!peer_answered) /* node 2 is connected */
        usleep(1000);
    tr_system_free(b); /* node 2 goes: node 1's run returns though `other` is open */
    pthread_join(ta, NULL);
    tr_system_free(a);
    close(other[1]);
}

static void nodes__peer_goes_down__downs_and_link_exits_with_nodedown(void **state)
{
    (void)state;
    nodedown_monitor = nodedown_node = nodedown_link = nodedown_ask = 0;
    tr_system *a, *b;
    node_pair("shm", &echo, &a, &b);
    pthread_t tb;
    pthread_create(&tb, NULL, run_and_free, b); /* node 2 ends when told to stop */
    tr_system_spawn(a, &watcher, NULL, NULL);
    tr_system_run(a);
    pthread_join(tb, NULL);
    tr_system_free(a);
    assert_int_equal(nodedown_monitor, 1);
    assert_int_equal(nodedown_node, 1);
    assert_int_equal(nodedown_link, 1);
    assert_int_equal(nodedown_ask, 1); /* at once, not after its 60 s deadline */
}

/* ---- a peer that falls silent is cut off by the heartbeat ---- */

static void raw_frame(int fd, uint8_t op, const void *body, uint32_t len)
{
    unsigned char h[32] = {'T', 'R', 1, op};
    for (int i = 0; i < 4; i++)
        h[8 + i] = (unsigned char)(len >> (8 * i));
    write_all(fd, h, sizeof h);
    if (len)
        write_all(fd, body, len);
}

static void raw_hello_named(int fd, uint16_t node, const char *name)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_str_with_body(&pk, "node", 4);
    msgpack_pack_uint16(&pk, node);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, name, strlen(name));
    msgpack_pack_str_with_body(&pk, "caps", 4);
    msgpack_pack_uint32(&pk, 0);
    raw_frame(fd, 1, b.data, (uint32_t)b.size);
    msgpack_sbuffer_destroy(&b);
}

static void raw_hello(int fd, uint16_t node) { raw_hello_named(fd, node, "raw"); }

/* Reads frames until EOF; returns how many heartbeats came. */
static int heartbeats_until_eof(int fd)
{
    unsigned char h[32], body[256];
    int beats = 0;
    while (read(fd, h, sizeof h) == (ssize_t)sizeof h) {
        uint32_t len = (uint32_t)(h[8] | h[9] << 8 | h[10] << 16 | (uint32_t)h[11] << 24);
        assert_true(len <= sizeof body);
        if (len)
            assert_int_equal(read(fd, body, len), (ssize_t)len);
        beats += h[3] == 9;
    }
    return beats;
}

static void nodes__silent_peer__cut_off_after_missed_heartbeats(void **state)
{
    (void)state;
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = 1;
    cfg.node_id = 1;
    cfg.heartbeat_ms = 20;
    tr_system *a;
    assert_int_equal(tr_system_new(&cfg, &a), 0);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(tr_system_connect(a, fds[0]), 0);
    raw_hello(fds[1], 5); /* a valid peer... that then says nothing */
    pthread_t ta;
    pthread_create(&ta, NULL, run, a); /* returns once the connection is gone */
    assert_true(heartbeats_until_eof(fds[1]) >= 1);
    pthread_join(ta, NULL);
    close(fds[1]);
    tr_system_free(a);
}

/* ---- a node that ends says goodbye ---- */

/* Reads one frame's header (its body is skipped); returns its op, or -1 at
 * EOF. */
static int next_op(int fd)
{
    unsigned char h[32], body[256];
    if (read(fd, h, sizeof h) != (ssize_t)sizeof h)
        return -1;
    uint32_t len = (uint32_t)(h[8] | h[9] << 8 | h[10] << 16 | (uint32_t)h[11] << 24);
    assert_true(len <= sizeof body);
    if (len)
        assert_int_equal(read(fd, body, len), (ssize_t)len);
    return h[3];
}

static void *free_system(void *sys)
{
    tr_system_free(sys);
    return NULL;
}

/* tr_system_free ends a connection with GOODBYE after everything else, then
 * waits for the peer to close; one that does not is cut off after the
 * heartbeats' patience, so free still returns. (This raw peer sends no
 * heartbeats of its own: the beats are long enough for it to get to the
 * goodbye before node 1 finds it silent, which 20 ms beats were not on a
 * loaded machine.) */
static void nodes__free__says_goodbye_then_cuts_a_peer_that_stays(void **state)
{
    (void)state;
    alarm(60);
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = 1;
    cfg.node_id = 1;
    cfg.heartbeat_ms = 250;
    tr_system *a;
    assert_int_equal(tr_system_new(&cfg, &a), 0);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(tr_system_connect(a, fds[0]), 0);
    raw_hello(fds[1], 5);
    /* a spawn request it must answer (unknown name): the handshake is over */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, "nope", 4);
    msgpack_pack_nil(&pk);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint64(&pk, 7);
    raw_frame(fds[1], 4, b.data, (uint32_t)b.size);
    msgpack_sbuffer_destroy(&b);
    int op;
    while ((op = next_op(fds[1])) != 5) /* HELLO, maybe heartbeats, then SPAWN_REPLY */
        assert_true(op == 1 || op == 9);
    raw_frame(fds[1], 9, NULL, 0); /* a heartbeat: 4 beats from now before it is silent */
    pthread_t freer;
    pthread_create(&freer, NULL, free_system, a);
    while ((op = next_op(fds[1])) == 9)
        ;
    assert_int_equal(op, 10); /* GOODBYE */
    assert_int_equal(next_op(fds[1]), -1); /* nothing after it; we never answered */
    pthread_join(freer, NULL);
    close(fds[1]);
    alarm(0);
}

/* A peer that says goodbye: what it sent before arrives, what follows the
 * goodbye is ignored, node 1 closes the connection (the peer kept its end
 * open) and the node is down for its watchers. Its name, which holds a
 * control character, is kept with that character replaced. */
enum { MSG_HEARD = 70, MSG_HEARD_ALL };

static _Atomic int heard_count, heard_down;

static int hearer_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_monitor_node(ctx, 5, NULL);
}

static void hearer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    int *count = state;
    if (tr_msg_type(msg) == MSG_HEARD)
        ++*count;
    else if (tr_msg_type(msg) == TR_MSG_DOWN) /* behind the messages: */
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_HEARD_ALL, NULL, 0));
    else if (tr_msg_type(msg) == MSG_HEARD_ALL) {
        heard_count = *count;
        heard_down = 1;
        tr_system_stop(tr_ctx_system(ctx));
    }
}

static const tr_behavior hearer = {.name = "hearer", .state_size = sizeof(int),
                                   .init = hearer_init, .receive = hearer_receive};

/* An empty SEND to `to` in out (32 bytes). */
static void raw_send_frame(unsigned char out[32], tr_addr to, uint32_t type)
{
    memset(out, 0, 32);
    memcpy(out, "TR\x01\x02", 4);
    for (int i = 0; i < 4; i++)
        out[12 + i] = (unsigned char)(type >> (8 * i));
    for (int i = 0; i < 8; i++)
        out[24 + i] = (unsigned char)(to.bits >> (8 * i));
}

static void raw_send(int fd, tr_addr to, uint32_t type)
{
    unsigned char h[32];
    raw_send_frame(h, to, type);
    write_all(fd, h, sizeof h);
}

/* ---- a peer may not send runtime messages, by address or by name ---- */

static _Atomic int victim_user, victim_forged;

static int victim_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_register(ctx, "victim");
}

static void victim_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state;
    if (tr_msg_type(msg) >= TR_MSG_SYSTEM)
        victim_forged++;
    else
        victim_user++;
}

static const tr_behavior victim = {.name = "victim", .init = victim_init, .receive = victim_receive};

/* A SEND or, with name, a NAMED_SEND of type and body to `to`. */
static void raw_message(int fd, const char *name, tr_addr to, uint32_t type, const void *body,
                        uint32_t len)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    if (name) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, name, strlen(name));
        msgpack_pack_bin_with_body(&pk, body, len);
        body = b.data;
        len = (uint32_t)b.size;
    }
    unsigned char h[32];
    raw_send_frame(h, to, type);
    h[3] = name ? 3 : 2; /* NAMED_SEND or SEND */
    for (int i = 0; i < 4; i++)
        h[8 + i] = (unsigned char)(len >> (8 * i));
    write_all(fd, h, sizeof h);
    write_all(fd, body, len);
    msgpack_sbuffer_destroy(&b);
}

/* A runtime message (a DOWN) from a peer, sent to an actor's address or to
 * its name, cuts that connection off and never reaches the actor; a plain
 * named send before it does. */
static void nodes__runtime_message_from_a_peer__cut_off_by_address_or_name(void **state)
{
    (void)state;
    alarm(60);
    victim_user = victim_forged = 0;
    tr_system *a = node_system(1);
    tr_addr v, found;
    assert_int_equal(tr_system_spawn(a, &victim, NULL, &v), 0);
    int fds[2][2];
    for (int i = 0; i < 2; i++) { /* connected before the run: they keep it going */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
        assert_int_equal(tr_system_connect(a, fds[i][0]), 0);
        raw_hello(fds[i][1], (uint16_t)(8 + i));
    }
    pthread_t ta;
    pthread_create(&ta, NULL, run, a);
    for (int ms = 0; ms < 10000 && tr_whereis(a, "victim", &found) != 0; ms++)
        usleep(1000);
    tr_down forged = {0};
    for (int by_name = 0; by_name < 2; by_name++) {
        int fd = fds[by_name][1];
        raw_message(fd, "victim", TR_ADDR_NONE, 7, "hi", 2);
        raw_message(fd, by_name ? "victim" : NULL, v, TR_MSG_DOWN, &forged, sizeof forged);
        assert_int_equal(read_to_end(fd), 0); /* node 1 closed its end */
        close(fd);
    }
    for (int ms = 0; ms < 10000 && victim_user < 2; ms++)
        usleep(1000);
    tr_system_stop(a);
    pthread_join(ta, NULL);
    tr_system_free(a);
    alarm(0);
    assert_int_equal(victim_user, 2);
    assert_int_equal(victim_forged, 0);
}

static void nodes__peer_says_goodbye__rest_ignored_and_node_down(void **state)
{
    (void)state;
    alarm(60);
    heard_count = heard_down = 0;
    tr_system *a = node_system(1);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(tr_system_connect(a, fds[0]), 0);
    tr_addr hearer_addr;
    assert_int_equal(tr_system_spawn(a, &hearer, NULL, &hearer_addr), 0);
    raw_hello_named(fds[1], 5, "r\x1b[2Jaw"); /* a name with a control character */
    raw_send(fds[1], hearer_addr, MSG_HEARD);
    raw_send(fds[1], hearer_addr, MSG_HEARD);
    /* GOODBYE and a SEND after it (not to be read), in one write: node 1
     * closes once it read the goodbye, and a later write would hit EPIPE */
    unsigned char bye_then_send[64] = {'T', 'R', 1, 10};
    raw_send_frame(bye_then_send + 32, hearer_addr, MSG_HEARD);
    write_all(fds[1], bye_then_send, sizeof bye_then_send);
    assert_int_equal(tr_system_run(a), 0);
    assert_int_equal(read_to_end(fds[1]), 0); /* node 1 closed its end */
    close(fds[1]);
    char name[TR_NAME_MAX + 1];
    assert_int_equal(tr_node_name(a, 5, name, sizeof name), 0);
    assert_string_equal(name, "r?[2Jaw"); /* made harmless for logs */
    tr_system_free(a);
    alarm(0);
    assert_int_equal(heard_down, 1);
    assert_int_equal(heard_count, 2);
}

/* Two nodes freed at the same time each read the other's goodbye and close:
 * neither waits for the deadline (4 heartbeats of a minute here, far past
 * the alarm), over either transport. */
static void goodbyes_cross(const char *transport)
{
    alarm(60);
    tr_system *a, *b;
    beating_pair(transport, 60000, &echo, &a, &b);
    peer_answered = 0;
    assert_int_equal(tr_system_spawn(a, &syncer, NULL, NULL), 0);
    pthread_t ta, tb;
    run_started(b, &tb);
    run_started(a, &ta);
    assert_true(wait_for(&peer_answered)); /* both handshakes are over */
    tr_system_stop(a);
    tr_system_stop(b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_create(&ta, NULL, free_system, a);
    pthread_create(&tb, NULL, free_system, b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    alarm(0);
}

static void nodes__both_freed_at_once_pipe__goodbyes_cross(void **state)
{
    (void)state;
    goodbyes_cross("pipe");
}

static void nodes__both_freed_at_once_shm__goodbyes_cross(void **state)
{
    (void)state;
    goodbyes_cross("shm");
}

/* ---- a second connection for a node that is still connected ---- */

static _Atomic int node2_down;

static int node2_watcher_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_monitor_node(ctx, 2, NULL);
}

static void node2_watcher_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state;
    if (tr_msg_type(msg) == TR_MSG_DOWN)
        node2_down = 1;
}

static const tr_behavior node2_watcher = {
    .name = "node2-watcher", .init = node2_watcher_init, .receive = node2_watcher_receive};

/* Joins a (a node 1) to b (node 2) over a new socket pair, and runs a. */
static void join_and_run(tr_system *a, tr_system *b, pthread_t *thread)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(tr_system_connect(a, fds[0]), 0);
    assert_int_equal(tr_system_connect(b, fds[1]), 0);
    pthread_create(thread, NULL, run, a);
}

/* A process started again says hello before node 2 saw its old connection
 * end: the new connection waits (its frames kept), and takes over once the
 * old one ends. A second connection whose node stays connected is cut off
 * after 4 heartbeats, and the first goes on. */
static void nodes__second_connection_for_a_node__waits_for_the_first_to_end(void **state)
{
    (void)state;
    /* Beats of 250 ms: the waiting connection's patience (4 beats) must
     * outlast the old one's end below even on a loaded machine. */
    tr_system *b = beating_node(2, 250), *first = beating_node(1, 250),
              *again = beating_node(1, 250), *third = beating_node(1, 250);
    assert_int_equal(tr_register_behavior(b, &echo), 0);
    pthread_t tb, t1, t2, t3;
    pthread_create(&tb, NULL, run, b);
    peer_answered = 0;
    assert_int_equal(tr_system_spawn(first, &syncer, NULL, NULL), 0);
    join_and_run(first, b, &t1);
    assert_true(wait_for(&peer_answered));
    peer_answered = 0; /* node 1 again, while the first is still connected */
    assert_int_equal(tr_system_spawn(again, &syncer, NULL, NULL), 0);
    join_and_run(again, b, &t2);
    usleep(100000);
    assert_int_equal(peer_answered, 0); /* its spawn request waits in node 2 */
    stop_and_free(first, t1);           /* the old connection ends */
    assert_true(wait_for(&peer_answered)); /* and the new one is served */
    node2_down = 0; /* node 1 once more: this time the other connection stays */
    assert_int_equal(tr_system_spawn(third, &node2_watcher, NULL, NULL), 0);
    join_and_run(third, b, &t3);
    assert_true(wait_for(&node2_down)); /* node 2 cut it off */
    peer_answered = 0;
    assert_int_equal(tr_system_spawn(again, &syncer, NULL, NULL), 0);
    assert_true(wait_for(&peer_answered)); /* the connection it replaced nothing of */
    stop_and_free(third, t3);
    stop_and_free(again, t2);
    stop_and_free(b, tb);
}

/* ---- a hostile shared-memory peer ---- */

enum { RING_HEADER = 192, RING_DATA = 1 << 20 };

/* Offers node 1 a ring of size bytes (sealed or not) over sock; returns the
 * mapping (RING_HEADER + RING_DATA bytes) or NULL when size is smaller. */
static unsigned char *offer_ring(int sock, size_t size, bool seal)
{
    int fd = memfd_create("hostile-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    if (seal)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
    unsigned char *ring = NULL;
    if (size >= RING_HEADER + RING_DATA) {
        ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(ring != MAP_FAILED);
        uint64_t magic = 0x74726f7570657231ull, data = RING_DATA;
        memcpy(ring + 128, &magic, sizeof magic);
        memcpy(ring + 136, &data, sizeof data);
    }
    char b = 'r';
    union {
        char space[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {&b, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                       .msg_controllen = sizeof control.space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    assert_int_equal(sendmsg(sock, &m, 0), 1);
    close(fd);
    return ring;
}

/* Node 1 on an shm connection to a peer that misbehaves: it must close the
 * connection (we see its end) without crashing, and its run must return. */
static void shm_peer_cut_off(size_t size, bool seal, bool break_positions)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = 1;
    cfg.node_id = 1;
    tr_system *a;
    assert_int_equal(tr_system_new(&cfg, &a), 0);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(tr_system_connect_via(a, fds[0], "shm"), 0);
    unsigned char *ring = offer_ring(fds[1], size, seal);
    if (ring && break_positions) { /* a head far beyond what the ring can hold */
        uint64_t head = 5ull * RING_DATA;
        memcpy(ring, &head, sizeof head);
        /* a wake-up; node 1 may have found the ring broken and gone already */
        assert_true(write(fds[1], "w", 1) == 1 || errno == EPIPE);
    }
    pthread_t ta;
    pthread_create(&ta, NULL, run, a);
    assert_int_equal(read_to_end(fds[1]), 0); /* node 1 closed its end */
    pthread_join(ta, NULL);
    tr_system_free(a);
    close(fds[1]);
    if (ring)
        munmap(ring, size);
}

static void shm__small_unsealed_or_broken_ring__cut_off_without_a_crash(void **state)
{
    (void)state;
    shm_peer_cut_off(0, false, false);                            /* empty: SIGBUS if mapped and read */
    shm_peer_cut_off(RING_HEADER + RING_DATA, false, false);      /* right size, but could shrink */
    shm_peer_cut_off(RING_HEADER + RING_DATA, true, true);        /* impossible positions */
}

/* A peer that stops in the middle of a frame: cut off, the other link works. */
static void nodes__truncated_and_oversized_frames__cut_off(void **state)
{
    (void)state;
    verified = local_refused = 0;
    int good[2], cut[2], big[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, good), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, cut), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, big), 0);
    tr_system *a = node_system(1), *b = node_system(2);
    assert_int_equal(tr_system_connect(a, cut[0]), 0);
    assert_int_equal(tr_system_connect(a, big[0]), 0);
    raw_hello(cut[1], 8);
    unsigned char half[40] = {'T', 'R', 1, 2, 0, 0, 0, 0, 100}; /* a SEND of 100 bytes... */
    write_all(cut[1], half, sizeof half);
    shutdown(cut[1], SHUT_WR); /* ...of which only 8 came */
    raw_hello(big[1], 9);
    unsigned char huge[32] = {'T', 'R', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0x7f}; /* 2 GiB */
    write_all(big[1], huge, sizeof huge);
    assert_int_equal(tr_system_connect(a, good[0]), 0);
    assert_int_equal(tr_system_connect(b, good[1]), 0);
    run_two_nodes(a, b);
    assert_int_equal(read_to_end(big[1]), 0);
    assert_int_equal(read_to_end(cut[1]), 0); /* node 1 closed its end too */
    close(big[1]);
    close(cut[1]);
    assert_int_equal(verified, 1);
}

/* ---- messages larger than a ring or a socket buffer ---- */

enum { MSG_WEIGH = 60, MSG_WEIGHT };

static uint64_t weigh(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

static void weigher_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    uint64_t w[2] = {tr_msg_size(msg), weigh(tr_msg_data(msg), tr_msg_size(msg))};
    tr_reply(ctx, tr_msg_new(MSG_WEIGHT, w, sizeof w));
}

static const tr_behavior weigher = {.name = "weigher", .receive = weigher_receive};

/* Up to the largest body a frame may carry, less the ask reference's room. */
static const size_t big_sizes[] = {0, 1, 4095, (1u << 20) - 1, 1u << 20, (1u << 20) + 33,
                                   (3u << 20) + 7, (16u << 20) - 8};
#define BIG_COUNT (sizeof big_sizes / sizeof big_sizes[0])

typedef struct {
    unsigned answered;
    bool wrong;
} big_state;

static _Atomic int big_whole, big_refused, big_answered;

static int big_sender_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_spawn_remote(ctx, 2, "weigher", NULL, 10000, NULL);
}

static void big_sender_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    big_state *b = state;
    if (tr_msg_type(msg) == TR_MSG_SPAWNED) {
        const tr_spawned *sp = tr_msg_data(msg);
        assert_int_equal(sp->error, 0);
        for (size_t i = 0; i < BIG_COUNT; i++) {
            unsigned char *p;
            tr_msg *m = tr_msg_alloc(MSG_WEIGH, big_sizes[i], (void **)&p);
            assert_non_null(m);
            for (size_t j = 0; j < big_sizes[i]; j++)
                p[j] = (unsigned char)(j * 131 + i);
            assert_int_equal(tr_send(ctx, sp->actor, m), 0);
        }
        big_refused = tr_send(ctx, sp->actor, tr_msg_alloc(MSG_WEIGH, 16u << 20, NULL)) ==
                      TR_ETOOBIG;
        return;
    }
    if (tr_msg_type(msg) != MSG_WEIGHT)
        return;
    uint64_t w[2];
    memcpy(w, tr_msg_data(msg), sizeof w);
    size_t i = b->answered++, size = big_sizes[i];
    big_answered = (int)b->answered;
    unsigned char *want = malloc(size + 1);
    for (size_t j = 0; j < size; j++)
        want[j] = (unsigned char)(j * 131 + i);
    uint64_t expected = weigh(want, size);
    free(want);
    if (w[0] != size || w[1] != expected) { /* what went wrong, for the log */
        b->wrong = true;
        fprintf(stderr, "message %zu of %zu bytes came as %llu bytes, %s hash\n", i, size,
                (unsigned long long)w[0], w[1] == expected ? "same" : "another");
    }
    if (b->answered == BIG_COUNT) {
        big_whole = !b->wrong;
        tr_system_stop(tr_ctx_system(ctx));
    }
}

static const tr_behavior big_sender = {.name = "big-sender", .state_size = sizeof(big_state),
                                       .init = big_sender_init, .receive = big_sender_receive};

/* Messages from empty to the largest a frame carries (16 MiB), larger than
 * the shm ring (1 MiB) and any socket buffer, arrive whole and in order;
 * one byte more is refused at the send. */
static void big_messages(const char *transport)
{
    alarm(120);
    big_whole = big_refused = 0;
    big_answered = 0;
    /* Heartbeats of a minute: this test is about sizes, and a slow build
     * (valgrind) may take seconds over the largest. */
    tr_system *a, *b;
    beating_pair(transport, 60000, &weigher, &a, &b);
    pthread_t tb;
    pthread_create(&tb, NULL, run, b);
    assert_int_equal(tr_system_spawn(a, &big_sender, NULL, NULL), 0);
    assert_int_equal(tr_system_run(a), 0);
    tr_system_free(a); /* node 2's link closes: it is told to stop below */
    stop_and_free(b, tb);
    alarm(0);
    if (!big_whole)
        fprintf(stderr, "%s: %d of %zu answered\n", transport, big_answered, BIG_COUNT);
    assert_true(big_whole);
    assert_true(big_refused);
}

static void nodes__messages_larger_than_the_ring_pipe__arrive_whole(void **state)
{
    (void)state;
    big_messages("pipe");
}

static void nodes__messages_larger_than_the_ring_shm__arrive_whole(void **state)
{
    (void)state;
    big_messages("shm");
}

/* ---- names in the handshake ---- */

/* Each node learns the other's name from its HELLO: the configured one, or
 * "<program>[<pid>]" by default; a name must be 1 to 63 bytes. */
static void nodes__names__exchanged_in_the_handshake(void **state)
{
    (void)state;
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = 1;
    char long_name[TR_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    tr_system *a;
    cfg.node_name = long_name; /* 64 bytes */
    assert_int_equal(tr_system_new(&cfg, &a), TR_EINVAL);
    cfg.node_name = "";
    assert_int_equal(tr_system_new(&cfg, &a), TR_EINVAL);
    cfg.node_name = long_name + 1; /* 63 */
    assert_int_equal(tr_system_new(&cfg, &a), 0);
    tr_system_free(a);
    cfg.node_name = "alpha";
    cfg.workers = 2;
    assert_int_equal(tr_system_new(&cfg, &a), 0);
    tr_system *b = node_system(2);
    assert_int_equal(tr_register_behavior(b, &echo), 0);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(tr_system_connect(a, fds[0]), 0);
    assert_int_equal(tr_system_connect(b, fds[1]), 0);
    peer_answered = 0;
    assert_int_equal(tr_system_spawn(a, &syncer, NULL, NULL), 0);
    pthread_t ta, tb;
    run_started(b, &tb);
    run_started(a, &ta);
    assert_true(wait_for(&peer_answered)); /* both handshakes are over */
    char name[TR_NAME_MAX + 1], want[TR_NAME_MAX + 1];
    assert_int_equal(tr_node_name(b, 1, name, sizeof name), 0);
    assert_string_equal(name, "alpha");
    assert_int_equal(tr_node_name(a, 1, name, sizeof name), 0);
    assert_string_equal(name, "alpha");
    snprintf(want, sizeof want, "test_node[%ld]", (long)getpid());
    assert_int_equal(tr_node_name(a, 2, name, sizeof name), 0);
    assert_string_equal(name, want);
    assert_int_equal(tr_node_name(a, 9, name, sizeof name), TR_ENOENT); /* never met */
    assert_int_equal(tr_node_name(a, 2, name, TR_NAME_MAX), TR_EINVAL);
    assert_int_equal(tr_node_name(a, 2, NULL, sizeof name), TR_EINVAL);
    assert_int_equal(tr_node_name(NULL, 2, name, sizeof name), TR_EINVAL);
    stop_and_free(a, ta);
    stop_and_free(b, tb);
}

int main(void)
{
    /* Raw peers write to sockets node 1 may have closed: an error, not death. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nodes__send_across__all_arrive_in_order_with_the_right_sum),
        cmocka_unit_test(nodes__send_across_shm__all_arrive_in_order_with_the_right_sum),
        cmocka_unit_test(connect__bad_arguments__einval),
        cmocka_unit_test(launch__statuses__exit_codes_and_signals),
        cmocka_unit_test(join__malformed_environment__einval),
        cmocka_unit_test(nodes__garbage_peer__cut_off_while_the_good_link_works),
        cmocka_unit_test(nodes__remote_spawn_ask_monitor__work_as_locally),
        cmocka_unit_test(nodes__flood_to_a_slow_node_pipe__in_order_backlog_bounded),
        cmocka_unit_test(nodes__flood_to_a_slow_node_shm__in_order_backlog_bounded),
        cmocka_unit_test(nodes__flood_to_a_slow_bounded_mailbox_pipe__nothing_dropped),
        cmocka_unit_test(nodes__flood_to_a_slow_bounded_mailbox_shm__nothing_dropped),
        cmocka_unit_test(nodes__peer_stopped_mid_flood_pipe__free_does_not_wait_for_it),
        cmocka_unit_test(nodes__peer_stopped_mid_flood_shm__free_does_not_wait_for_it),
        cmocka_unit_test(nodes__many_senders_into_a_small_bound_pipe__all_in_order),
        cmocka_unit_test(nodes__many_senders_into_a_small_bound_shm__all_in_order),
        cmocka_unit_test(nodes__runtime_message_from_a_peer__cut_off_by_address_or_name),
        cmocka_unit_test(nodes__slow_relays_both_ways_pipe__no_deadlock_nothing_lost),
        cmocka_unit_test(nodes__slow_relays_both_ways_shm__no_deadlock_nothing_lost),
        cmocka_unit_test(nodes__peer_goes_down__downs_and_link_exits_with_nodedown),
        cmocka_unit_test(stop_with_node__peer_freed__run_returns),
        cmocka_unit_test(nodes__silent_peer__cut_off_after_missed_heartbeats),
        cmocka_unit_test(nodes__second_connection_for_a_node__waits_for_the_first_to_end),
        cmocka_unit_test(nodes__free__says_goodbye_then_cuts_a_peer_that_stays),
        cmocka_unit_test(nodes__both_freed_at_once_pipe__goodbyes_cross),
        cmocka_unit_test(nodes__peer_says_goodbye__rest_ignored_and_node_down),
        cmocka_unit_test(nodes__both_freed_at_once_shm__goodbyes_cross),
        cmocka_unit_test(nodes__names__exchanged_in_the_handshake),
        cmocka_unit_test(nodes__messages_larger_than_the_ring_pipe__arrive_whole),
        cmocka_unit_test(nodes__messages_larger_than_the_ring_shm__arrive_whole),
        cmocka_unit_test(nodes__truncated_and_oversized_frames__cut_off),
        cmocka_unit_test(shm__small_unsealed_or_broken_ring__cut_off_without_a_crash),
    };
    if (getenv("TR_TEST_FILTER")) /* e.g. "*shm*": only the tests it matches */
        cmocka_set_test_filter(getenv("TR_TEST_FILTER"));
    return cmocka_run_group_tests_name("node", tests, NULL, NULL);
}
