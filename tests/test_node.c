/* Tests for src/node and src/transport through the public API: two systems
 * (nodes 1 and 2) in this process, joined by a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <troupe.h>

enum { MSG_HELLO = 1, MSG_HERE, MSG_SEQ, MSG_DONE, MSG_TOTAL, MSG_LOCAL_TRY };
enum { COUNT = 100000 };

static _Atomic int verified, local_refused;

static tr_system *node_system(uint16_t id)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = 2;
    cfg.node_id = id;
    tr_system *sys;
    assert_int_equal(tr_system_new(&cfg, &sys), 0);
    return sys;
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
        for (long seq = 0; seq < COUNT; seq++)
            assert_int_equal(tr_send(ctx, sink_addr, tr_msg_new(MSG_SEQ, &seq, sizeof seq)), 0);
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

static void nodes__send_across__all_arrive_in_order_with_the_right_sum(void **state)
{
    (void)state;
    verified = local_refused = 0;
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    tr_system *a = node_system(1), *b = node_system(2);
    assert_int_equal(tr_system_connect(a, fds[0]), 0);
    assert_int_equal(tr_system_connect(b, fds[1]), 0);
    run_two_nodes(a, b);
    assert_int_equal(verified, 1);
    assert_int_equal(local_refused, 1);
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
    assert_int_equal(tr_system_spawn_node(one, "/nonexistent/program", NULL, 2), TR_EINVAL);
    assert_int_equal(tr_system_spawn_node(one, "/proc/self/exe", NULL, 1), TR_EINVAL); /* ours */
    assert_int_equal(tr_system_spawn_node(zero, "/proc/self/exe", NULL, 2), TR_EINVAL);
    close(fds[0]);
    close(fds[1]);
    tr_system_free(zero);
    tr_system_free(one);
}

/* ---- a peer that writes garbage is cut off; the good one goes on ---- */

static void write_all(int fd, const void *p, size_t n)
{
    assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* Reads until the end of the stream: 0 at EOF, -1 on error. */
static int read_to_end(int fd)
{
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        ;
    return (int)n;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nodes__send_across__all_arrive_in_order_with_the_right_sum),
        cmocka_unit_test(connect__bad_arguments__einval),
        cmocka_unit_test(nodes__garbage_peer__cut_off_while_the_good_link_works),
    };
    return cmocka_run_group_tests_name("node", tests, NULL, NULL);
}
