/* Integration tests with real child processes: this binary starts copies
 * of itself as nodes (tr_system_spawn_nodes; a copy sees TROUPE_NODE_ID and
 * runs child_main instead of the tests). Each test bounds its own time with
 * an alarm, so a lost message fails instead of hanging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include <troupe.h>

enum { MSG_DATA = 1, MSG_ACK, MSG_END, MSG_SUMMARY, MSG_PID };
enum { PAYLOAD = 64, WINDOW = 4096 };

static long stream_count(void)
{
    const char *v = getenv("TR_STRESS_MESSAGES");
    return v && atol(v) > 0 ? atol(v) : 1000000;
}

/* The payload of message seq: seq then bytes derived from it. */
static void fill(unsigned char *p, uint64_t seq)
{
    memcpy(p, &seq, sizeof seq);
    for (size_t i = sizeof seq; i < PAYLOAD; i++)
        p[i] = (unsigned char)(seq * 31 + i);
}

static uint64_t mix(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

/* ---- in the children: a sink that checks order and content ---- */

typedef struct {
    uint64_t next, hash;
    bool bad;
} sink_state;

static void sink_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sink_state *s = state;
    switch (tr_msg_type(msg)) {
    case MSG_PID: {
        int64_t pid = getpid();
        tr_reply(ctx, tr_msg_new(MSG_PID, &pid, sizeof pid));
        return;
    }
    case MSG_DATA: {
        unsigned char want[PAYLOAD];
        fill(want, s->next);
        s->bad |= tr_msg_size(msg) != PAYLOAD || memcmp(tr_msg_data(msg), want, PAYLOAD) != 0;
        s->hash = mix(s->hash, tr_msg_data(msg), tr_msg_size(msg));
        if (++s->next % (WINDOW / 2) == 0)
            tr_reply(ctx, tr_msg_new(MSG_ACK, &s->next, sizeof s->next));
        return;
    }
    case MSG_END: {
        uint64_t summary[2] = {s->bad ? 0 : s->next, s->hash};
        tr_reply(ctx, tr_msg_new(MSG_SUMMARY, summary, sizeof summary));
        return;
    }
    }
}

static const tr_behavior sink = {.name = "sink", .state_size = sizeof(sink_state), .receive = sink_receive};

static const tr_behavior prober; /* below: a restarted node's neighbour */
static const tr_behavior sayer;  /* below: last words before a node stops */

static int child_main(uint16_t me)
{
    /* A member that starts late (see restarted_node_reaches_a_late_member). */
    const char *late = getenv("TR_TEST_LATE_NODE");
    if (late && atoi(late) == me)
        usleep(500000);
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = me;
    cfg.workers = 2;
    tr_system *sys;
    if (tr_system_new(&cfg, &sys) != 0 || tr_register_behavior(sys, &sink) != 0 ||
        tr_register_behavior(sys, &prober) != 0 || tr_register_behavior(sys, &sayer) != 0 ||
        tr_system_join(sys) != 0 || tr_system_stop_with_node(sys, 1) != 0)
        return 1;
    tr_system_run(sys);
    tr_system_free(sys);
    return 0;
}

/* ---- in the test: sources that stream to sinks in other processes ---- */

typedef struct {
    uint16_t node; /* the sink's */
    bool kill_it;  /* kill the sink's process with SIGKILL halfway */
    /* results */
    bool complete, spawn_unknown_refused, saw_node_down, saw_actor_down;
    long sent;
} source_job;

typedef struct {
    source_job *job;
    tr_addr sink;
    uint64_t next, acked, hash, spawn_ref, unknown_ref;
    int64_t pid;
    bool ended;
} source_state;

static long total;

static void pump(tr_ctx *ctx, source_state *s)
{
    unsigned char p[PAYLOAD];
    while (s->next < (uint64_t)total && s->next - s->acked < WINDOW) {
        if (s->job->kill_it && s->pid && s->next == (uint64_t)total / 2) {
            kill((pid_t)s->pid, SIGKILL); /* mid-stream */
            s->pid = 0;
        }
        fill(p, s->next++);
        s->hash = mix(s->hash, p, PAYLOAD);
        if (tr_send(ctx, s->sink, tr_msg_new(MSG_DATA, p, PAYLOAD)) != 0)
            break;
        s->job->sent++;
    }
    if (s->next == (uint64_t)total && !s->ended) {
        s->ended = true;
        tr_send(ctx, s->sink, tr_msg_new(MSG_END, NULL, 0));
    }
}

static _Atomic int sources_left;

static void source_done(tr_ctx *ctx)
{
    tr_exit(ctx, TR_EXIT_NORMAL);
    if (--sources_left == 0)
        tr_system_stop(tr_ctx_system(ctx));
}

static int source_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    source_state *s = state;
    s->job = *(source_job *const *)tr_msg_data(arg);
    s->pid = 0; /* the hash starts at 0 on both sides */
    tr_monitor_node(ctx, s->job->node, NULL);
    int rc = tr_spawn_remote(ctx, s->job->node, "no-such-behaviour", NULL, 10000, &s->unknown_ref);
    return rc ? rc : tr_spawn_remote(ctx, s->job->node, "sink", NULL, 10000, &s->spawn_ref);
}

static void source_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    source_state *s = state;
    switch (tr_msg_type(msg)) {
    case TR_MSG_SPAWNED: {
        const tr_spawned *sp = tr_msg_data(msg);
        if (tr_reply_to(ctx) == s->unknown_ref) {
            s->job->spawn_unknown_refused = sp->error == TR_ENOENT;
            return;
        }
        assert_int_equal(sp->error, 0);
        s->sink = sp->actor;
        tr_monitor(ctx, s->sink, NULL);
        tr_ask(ctx, s->sink, tr_msg_new(MSG_PID, NULL, 0), 10000, NULL);
        return;
    }
    case MSG_PID:
        memcpy(&s->pid, tr_msg_data(msg), sizeof s->pid);
        pump(ctx, s);
        return;
    case MSG_ACK:
        memcpy(&s->acked, tr_msg_data(msg), sizeof s->acked);
        pump(ctx, s);
        return;
    case MSG_SUMMARY: {
        const uint64_t *summary = tr_msg_data(msg);
        s->job->complete = summary[0] == (uint64_t)total && summary[1] == s->hash;
        if (!s->job->complete) /* what went wrong, for the log */
            fprintf(stderr, "node %u: the sink counted %llu of %ld (0: out of order), %s hash\n",
                    (unsigned)s->job->node, (unsigned long long)summary[0], total,
                    summary[1] == s->hash ? "same" : "another");
        source_done(ctx);
        return;
    }
    case TR_MSG_DOWN: {
        const tr_down *d = tr_msg_data(msg);
        if (d->reason != TR_EXIT_NODEDOWN)
            return;
        if (tr_addr_eq(d->actor, tr_node_addr(s->job->node)))
            s->job->saw_node_down = true;
        else if (tr_addr_eq(d->actor, s->sink))
            s->job->saw_actor_down = true;
        if (s->job->saw_node_down && s->job->saw_actor_down) {
            if (!s->job->kill_it)
                fprintf(stderr, "node %u went down after %ld sent\n", (unsigned)s->job->node,
                        s->job->sent);
            source_done(ctx);
        }
        return;
    }
    }
}

static const tr_behavior source = {.name = "source", .state_size = sizeof(source_state),
                                   .init = source_init, .receive = source_receive};

/* Node 1, the test's own system; with a transport, nodes 2..count+1 are
 * started too, as copies of this program. */
static tr_system *node_one(const char *transport, unsigned count)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = 1;
    cfg.workers = 2;
    tr_system *sys;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    if (transport)
        assert_int_equal(tr_system_spawn_nodes(sys, "/proc/self/exe", NULL, 2, count, transport),
                         0);
    return sys;
}

/* Starts nodes 2.. (one per job) over transport and a source for each. */
static void run_jobs(const char *transport, source_job *jobs, unsigned n)
{
    alarm(240); /* a lost message fails the test instead of hanging it */
    tr_system *sys = node_one(transport, n);
    sources_left = (int)n;
    for (unsigned i = 0; i < n; i++) {
        source_job *job = &jobs[i];
        assert_int_equal(tr_system_spawn(sys, &source, tr_msg_new(0, &job, sizeof job), NULL), 0);
    }
    assert_int_equal(tr_system_run(sys), 0);
    tr_system_free(sys);
    alarm(0);
}

static void stream(const char *transport)
{
    total = stream_count();
    source_job jobs[2] = {{.node = 2}, {.node = 3}};
    run_jobs(transport, jobs, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(jobs[i].complete); /* every message, in order, with its checksum */
        assert_true(jobs[i].spawn_unknown_refused);
    }
}

static void procs__stream_over_pipe__complete_and_in_order(void **state)
{
    (void)state;
    stream("pipe");
}

static void procs__stream_over_shm__complete_and_in_order(void **state)
{
    (void)state;
    stream("shm");
}

/* Node 2 is killed halfway through its stream; node 3's goes on. */
static void sigkill(const char *transport)
{
    total = stream_count() / 4;
    source_job jobs[2] = {{.node = 2, .kill_it = true}, {.node = 3}};
    run_jobs(transport, jobs, 2);
    assert_true(jobs[0].saw_node_down);
    assert_true(jobs[0].saw_actor_down);
    assert_false(jobs[0].complete);
    assert_true(jobs[1].complete); /* nothing to the live node was lost */
}

static void procs__child_killed_mid_stream_pipe__downs_and_the_other_goes_on(void **state)
{
    (void)state;
    sigkill("pipe");
}

static void procs__child_killed_mid_stream_shm__downs_and_the_other_goes_on(void **state)
{
    (void)state;
    sigkill("shm");
}

/* ---- a node restarted under a supervisor ---- */

/* The keeper starts node 2 and lives as long as it does; its supervisor
 * restarts it, and so the node, when the node goes down. */
static int keeper_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    int rc = tr_system_spawn_node(tr_ctx_system(ctx), "/proc/self/exe", NULL, 2);
    return rc ? rc : tr_monitor_node(ctx, 2, NULL);
}

static void keeper_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_msg_type(msg) == TR_MSG_DOWN)
        tr_exit(ctx, TR_EXIT_NODEDOWN); /* the supervisor starts us, and the node, again */
}

static const tr_behavior keeper = {.name = "keeper", .init = keeper_init, .receive = keeper_receive};

enum { MSG_TRY = 50 };
enum { LIVES = 3 };

typedef struct {
    int64_t pids[LIVES];
    int lives;
    tr_addr sink;
    tr_addr supervisor;
} reviver_state;

static int64_t revived_pids[LIVES];
static int revived;

/* Keeps the address that arg carries, and starts trying (MSG_TRY). */
static int start_trying(tr_ctx *ctx, tr_addr *keep, const tr_msg *arg)
{
    memcpy(keep, tr_msg_data(arg), sizeof *keep);
    return tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_TRY, NULL, 0));
}

static void try_later(tr_ctx *ctx)
{
    tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_TRY, NULL, 0), 20, NULL);
}

/* Asks node for a sink, or tries again soon if it cannot be asked yet. */
static void ask_for_sink(tr_ctx *ctx, uint16_t node, uint32_t timeout_ms)
{
    if (tr_spawn_remote(ctx, node, "sink", NULL, timeout_ms, NULL) != 0)
        try_later(ctx);
}

static int reviver_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    return start_trying(ctx, &((reviver_state *)state)->supervisor, arg);
}

static void reviver_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    reviver_state *r = state;
    switch (tr_msg_type(msg)) {
    case MSG_TRY: /* the node may not be back yet: try until it answers */
        ask_for_sink(ctx, 2, 2000);
        return;
    case TR_MSG_ASK_TIMEOUT:
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_TRY, NULL, 0));
        return;
    case TR_MSG_SPAWNED: {
        const tr_spawned *sp = tr_msg_data(msg);
        if (sp->error) {
            try_later(ctx);
            return;
        }
        r->sink = sp->actor;
        tr_monitor(ctx, r->sink, NULL);
        tr_ask(ctx, r->sink, tr_msg_new(MSG_PID, NULL, 0), 5000, NULL);
        return;
    }
    case MSG_PID: {
        memcpy(&r->pids[r->lives], tr_msg_data(msg), sizeof(int64_t));
        revived_pids[r->lives] = r->pids[r->lives];
        revived = ++r->lives;
        if (r->lives == LIVES) { /* enough: stop the tree, and with it node 2 */
            tr_kill(ctx, r->supervisor, TR_EXIT_SHUTDOWN);
            tr_system_stop(tr_ctx_system(ctx));
            return;
        }
        kill((pid_t)r->pids[r->lives - 1], SIGKILL);
        return;
    }
    case TR_MSG_DOWN: /* the sink's node went down: wait for its next life */
        try_later(ctx);
        return;
    }
}

static const tr_behavior reviver = {.name = "reviver", .state_size = sizeof(reviver_state),
                                    .init = reviver_init, .receive = reviver_receive};

static void procs__killed_node_under_a_supervisor__restarted(void **state)
{
    (void)state;
    alarm(120);
    revived = 0;
    tr_system *sys = node_one(NULL, 0);
    static const tr_child_spec children[] = {{.id = "node 2", .behavior = &keeper,
                                              .restart = TR_RESTART_PERMANENT}};
    static const tr_supervisor_spec spec = {.strategy = TR_ONE_FOR_ONE, .max_restarts = 10,
                                            .within_ms = 60000, .children = children,
                                            .nchildren = 1};
    tr_addr sup;
    assert_int_equal(tr_system_spawn_supervisor(sys, &spec, &sup), 0);
    assert_int_equal(tr_system_spawn(sys, &reviver, tr_msg_new(0, &sup, sizeof sup), NULL), 0);
    assert_int_equal(tr_system_run(sys), 0);
    tr_system_free(sys);
    alarm(0);
    assert_int_equal(revived, LIVES);
    for (int i = 1; i < LIVES; i++) /* each life a new process */
        assert_true(revived_pids[i] != revived_pids[i - 1]);
}

/* ---- a restarted node rejoins the whole mesh ---- */

/* On node 2: reaches node 3 (retrying while it is not connected) and tells
 * the conductor the pid of the process behind it. */
typedef struct {
    tr_addr conductor;
    int tries;
} prober_state;

static int prober_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    return start_trying(ctx, &((prober_state *)state)->conductor, arg);
}

static void prober_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    prober_state *p = state;
    switch (tr_msg_type(msg)) {
    case MSG_TRY:
    case TR_MSG_ASK_TIMEOUT:
        if (++p->tries > 1500) { /* 30 s (a loaded machine, a sanitizer): node 3 never came back */
            int64_t none = 0;
            tr_send(ctx, p->conductor, tr_msg_new(MSG_PID, &none, sizeof none));
            tr_exit(ctx, TR_EXIT_NORMAL);
        } else {
            ask_for_sink(ctx, 3, 1000);
        }
        return;
    case TR_MSG_SPAWNED: {
        const tr_spawned *sp = tr_msg_data(msg);
        if (sp->error)
            try_later(ctx);
        else
            tr_ask(ctx, sp->actor, tr_msg_new(MSG_PID, NULL, 0), 5000, NULL);
        return;
    }
    case MSG_PID:
        tr_send(ctx, p->conductor, tr_msg_new(MSG_PID, tr_msg_data(msg), sizeof(int64_t)));
        tr_exit(ctx, TR_EXIT_NORMAL);
        return;
    }
}

static const tr_behavior prober = {.name = "prober", .state_size = sizeof(prober_state),
                                   .init = prober_init, .receive = prober_receive};

/* On node 1: kills node 3, starts it again, and asks node 2 to reach it. */
typedef struct {
    int phase;
    int64_t old_pid;
} conductor_state;

static const char *mesh_transport;
static int64_t rejoin_old_pid, rejoin_new_pid;

static int conductor_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    int rc = tr_monitor_node(ctx, 3, NULL);
    return rc ? rc : tr_spawn_remote(ctx, 3, "sink", NULL, 10000, NULL);
}

static void conductor_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    conductor_state *c = state;
    switch (tr_msg_type(msg)) {
    case TR_MSG_SPAWNED: {
        const tr_spawned *sp = tr_msg_data(msg);
        assert_int_equal(sp->error, 0);
        if (c->phase == 0)
            tr_ask(ctx, sp->actor, tr_msg_new(MSG_PID, NULL, 0), 10000, NULL);
        return;
    }
    case MSG_PID:
        if (c->phase == 0) { /* node 3's first life */
            memcpy(&c->old_pid, tr_msg_data(msg), sizeof c->old_pid);
            rejoin_old_pid = c->old_pid;
            c->phase = 1;
            kill((pid_t)c->old_pid, SIGKILL);
        } else { /* node 2's answer about node 3's second life */
            memcpy(&rejoin_new_pid, tr_msg_data(msg), sizeof rejoin_new_pid);
            tr_system_stop(tr_ctx_system(ctx));
        }
        return;
    case TR_MSG_DOWN: {
        const tr_down *d = tr_msg_data(msg);
        if (c->phase != 1 || !tr_addr_eq(d->actor, tr_node_addr(3)))
            return;
        c->phase = 2; /* start node 3 again: its only given peer is us */
        assert_int_equal(
            tr_system_spawn_nodes(tr_ctx_system(ctx), "/proc/self/exe", NULL, 3, 1, mesh_transport),
            0);
        tr_addr self = tr_self(ctx);
        assert_int_equal(
            tr_spawn_remote(ctx, 2, "prober", tr_msg_new(0, &self, sizeof self), 10000, NULL), 0);
        return;
    }
    }
}

static const tr_behavior conductor = {.name = "conductor", .state_size = sizeof(conductor_state),
                                      .init = conductor_init, .receive = conductor_receive};

/* late: a node (2) that starts half a second late, or 0. */
static void rejoin(const char *transport, int late)
{
    alarm(120);
    mesh_transport = transport;
    rejoin_old_pid = rejoin_new_pid = -1;
    char late_id[8];
    snprintf(late_id, sizeof late_id, "%d", late);
    if (late)
        setenv("TR_TEST_LATE_NODE", late_id, 1);
    tr_system *sys = node_one(transport, 2);
    unsetenv("TR_TEST_LATE_NODE"); /* the children have it: not node 3's next life */
    assert_int_equal(tr_system_spawn(sys, &conductor, NULL, NULL), 0);
    assert_int_equal(tr_system_run(sys), 0);
    tr_system_free(sys);
    alarm(0);
    assert_true(rejoin_old_pid > 0);
    assert_true(rejoin_new_pid > 0); /* node 2 reached node 3 again */
    assert_true(rejoin_new_pid != rejoin_old_pid);
}

static void procs__restarted_node_pipe__rejoins_the_whole_mesh(void **state)
{
    (void)state;
    rejoin("pipe", 0);
}

static void procs__restarted_node_shm__rejoins_the_whole_mesh(void **state)
{
    (void)state;
    rejoin("shm", 0);
}

/* Node 2 is still starting (not listening yet) when node 3, killed and
 * started again, dials it: node 3 dials again until node 2 answers, since
 * node 2's own socket pair leads to node 3's previous process. Once, under
 * load, node 3 gave up at its first try and node 2 never reached it. */
static void procs__restarted_node__reaches_a_member_still_starting(void **state)
{
    (void)state;
    rejoin("pipe", 2);
}

/* ---- flow control: a flood to a process that does not read ---- */

enum { MSG_BURST = 70, FLOOD_TOTAL = 200000, FLOOD_BURST = 256 };

static _Atomic int64_t flood_pid;
static _Atomic bool flood_complete;

typedef struct {
    tr_addr sink;
    uint64_t next, hash;
} flooder_state;

static int flooder_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_spawn_remote(ctx, 2, "sink", NULL, 10000, NULL);
}

/* Stops node 2's process, then sends as fast as it is let: no window. */
static void flooder_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    flooder_state *f = state;
    switch (tr_msg_type(msg)) {
    case TR_MSG_SPAWNED: {
        const tr_spawned *sp = tr_msg_data(msg);
        assert_int_equal(sp->error, 0);
        f->sink = sp->actor;
        tr_ask(ctx, f->sink, tr_msg_new(MSG_PID, NULL, 0), 10000, NULL);
        return;
    }
    case MSG_PID: {
        int64_t pid;
        memcpy(&pid, tr_msg_data(msg), sizeof pid);
        kill((pid_t)pid, SIGSTOP); /* the test lets it go on once we were paused */
        flood_pid = pid;
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_BURST, NULL, 0));
        return;
    }
    case MSG_BURST: {
        unsigned char p[PAYLOAD];
        for (int i = 0; i < FLOOD_BURST && f->next < FLOOD_TOTAL; i++) {
            fill(p, f->next++);
            f->hash = mix(f->hash, p, PAYLOAD);
            assert_int_equal(tr_send(ctx, f->sink, tr_msg_new(MSG_DATA, p, PAYLOAD)), 0);
        }
        bool more = f->next < FLOOD_TOTAL;
        tr_send(ctx, more ? tr_self(ctx) : f->sink, tr_msg_new(more ? MSG_BURST : MSG_END, NULL, 0));
        return;
    }
    case MSG_SUMMARY: {
        const uint64_t *summary = tr_msg_data(msg);
        flood_complete = summary[0] == FLOOD_TOTAL && summary[1] == f->hash;
        tr_system_stop(tr_ctx_system(ctx));
        return;
    }
    }
}

static const tr_behavior flooder = {.name = "flooder", .state_size = sizeof(flooder_state),
                                    .init = flooder_init, .receive = flooder_receive};

static void *run_system(void *sys)
{
    tr_system_run(sys);
    return NULL;
}

/* A sender with no window of its own, to a process that has stopped
 * reading (SIGSTOP), is paused once 1 MiB waits on its side for that node,
 * instead of queueing all 20 MB; once the process goes on, everything
 * arrives, in order. */
static void flood(const char *transport)
{
    alarm(120);
    flood_pid = 0;
    flood_complete = false;
    tr_system *sys = node_one(transport, 1);
    assert_int_equal(tr_system_spawn(sys, &flooder, NULL, NULL), 0);
    pthread_t runner;
    pthread_create(&runner, NULL, run_system, sys);
    tr_stats st = {0};
    for (int i = 0; i < 10000 && !(flood_pid && st.node_waits); i++) {
        usleep(1000);
        tr_system_stats(sys, &st);
    }
    if (flood_pid) /* within the heartbeats' patience (4 s) */
        kill((pid_t)flood_pid, SIGCONT);
    pthread_join(runner, NULL);
    tr_system_stats(sys, &st);
    tr_system_free(sys);
    alarm(0);
    assert_true(st.node_waits > 0);
    assert_true(st.node_backlog_peak > 1u << 20);
    assert_true(st.node_backlog_peak < 2u << 20);
    assert_true(flood_complete);
}

static void procs__flood_to_a_stopped_process_pipe__sender_paused_nothing_lost(void **state)
{
    (void)state;
    flood("pipe");
}

static void procs__flood_to_a_stopped_process_shm__sender_paused_nothing_lost(void **state)
{
    (void)state;
    flood("shm");
}

/* ---- last words: what a node sent just before it stopped arrives ---- */

enum { LAST_WORDS = 100000 }; /* about 10 MB: more than a ring or a socket holds */

/* On node 2: sends LAST_WORDS messages to the actor named in its init
 * message, then stops its whole node in the same turn. */
static int sayer_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    tr_addr to;
    memcpy(&to, tr_msg_data(arg), sizeof to);
    unsigned char p[PAYLOAD];
    for (uint64_t i = 0; i < LAST_WORDS; i++) {
        fill(p, i);
        if (tr_send(ctx, to, tr_msg_new(MSG_DATA, p, PAYLOAD)) != 0)
            return 0; /* the listener counts short */
    }
    tr_system_stop(tr_ctx_system(ctx));
    return 0;
}

static void sayer_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
}

static const tr_behavior sayer = {.name = "sayer", .init = sayer_init, .receive = sayer_receive};

typedef struct {
    uint64_t next;
    bool bad;
} listener_state;

static uint64_t heard_before_down;
static bool heard_in_order;

static int listener_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    tr_addr me = tr_self(ctx);
    tr_monitor_node(ctx, 2, NULL);
    return tr_spawn_remote(ctx, 2, "sayer", tr_msg_new(0, &me, sizeof me), 10000, NULL);
}

static void listener_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    listener_state *s = state;
    switch (tr_msg_type(msg)) {
    case MSG_DATA: {
        unsigned char want[PAYLOAD];
        fill(want, s->next++);
        s->bad |= tr_msg_size(msg) != PAYLOAD || memcmp(tr_msg_data(msg), want, PAYLOAD) != 0;
        return;
    }
    case TR_MSG_DOWN: /* the system lane overtakes: a user message goes behind the rest */
        tr_send(ctx, tr_self(ctx), tr_msg_new(MSG_END, NULL, 0));
        return;
    case MSG_END:
        heard_before_down = s->next;
        heard_in_order = !s->bad;
        tr_system_stop(tr_ctx_system(ctx));
        return;
    }
}

static const tr_behavior listener = {.name = "listener", .state_size = sizeof(listener_state),
                                     .init = listener_init, .receive = listener_receive};

/* A node that sends and stops at once still delivers everything it sent:
 * it says goodbye after its last frame and waits for it to be read. */
static void last_words(const char *transport)
{
    alarm(120);
    heard_before_down = 0;
    heard_in_order = false;
    tr_system *sys = node_one(transport, 1);
    assert_int_equal(tr_system_spawn(sys, &listener, NULL, NULL), 0);
    assert_int_equal(tr_system_run(sys), 0);
    tr_system_free(sys);
    alarm(0);
    assert_int_equal(heard_before_down, LAST_WORDS);
    assert_true(heard_in_order);
}

static void procs__node_stopping_after_a_burst_pipe__everything_arrives(void **state)
{
    (void)state;
    last_words("pipe");
}

static void procs__node_stopping_after_a_burst_shm__everything_arrives(void **state)
{
    (void)state;
    last_words("shm");
}

int main(void)
{
    uint16_t me = tr_node_id_from_env();
    if (me)
        return child_main(me);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(procs__stream_over_pipe__complete_and_in_order),
        cmocka_unit_test(procs__stream_over_shm__complete_and_in_order),
        cmocka_unit_test(procs__child_killed_mid_stream_pipe__downs_and_the_other_goes_on),
        cmocka_unit_test(procs__child_killed_mid_stream_shm__downs_and_the_other_goes_on),
        cmocka_unit_test(procs__killed_node_under_a_supervisor__restarted),
        cmocka_unit_test(procs__restarted_node_pipe__rejoins_the_whole_mesh),
        cmocka_unit_test(procs__restarted_node_shm__rejoins_the_whole_mesh),
        cmocka_unit_test(procs__restarted_node__reaches_a_member_still_starting),
        cmocka_unit_test(procs__flood_to_a_stopped_process_pipe__sender_paused_nothing_lost),
        cmocka_unit_test(procs__flood_to_a_stopped_process_shm__sender_paused_nothing_lost),
        cmocka_unit_test(procs__node_stopping_after_a_burst_pipe__everything_arrives),
        cmocka_unit_test(procs__node_stopping_after_a_burst_shm__everything_arrives),
    };
    if (getenv("TR_TEST_FILTER")) /* e.g. "*shm*": only the tests it matches */
        cmocka_set_test_filter(getenv("TR_TEST_FILTER"));
    return cmocka_run_group_tests_name("node_procs", tests, NULL, NULL);
}
