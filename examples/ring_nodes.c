/* ring_nodes — a token around a ring of actors spread over 4 processes.
 *
 * Node 1 starts nodes 2, 3 and 4 (copies of this program, joined to each
 * other by tr_system_spawn_nodes), or all four come from the launcher:
 *     ./build/tools/troupe-launch -n 4 ./build/examples/ring_nodes
 * Every node registers the "member" behaviour. Node 1's conductor spawns
 * the members with tr_spawn_remote, round-robin over the nodes, so every
 * hop of the token crosses from one process to another. It tells each
 * member the address of the next (addresses are plain values, valid in any
 * process) with an ask, and starts the token once every member has
 * answered: a member's "next" and the token travel by different processes,
 * so without the answers the token could overtake it. Payloads are msgpack,
 * the portable way.
 * Nodes 2-4 stop when node 1 has gone (tr_system_stop_with_node).
 *
 * Run: ./build/examples/ring_nodes [hops] [pipe|shm]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <troupe.h>

enum { NODES = 4, MEMBERS = 8 };
enum { MSG_NEXT = 1, MSG_TOKEN, MSG_DONE, MSG_READY };

static long hops = 20000;

/* A message holding n unsigned integers as one msgpack array. */
static tr_msg *pack(uint32_t type, int n, const uint64_t *v)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msgpack_pack_uint64(&pk, v[i]);
    tr_msg *m = tr_msg_new_msgpack(type, &buf);
    msgpack_sbuffer_destroy(&buf);
    return m;
}

/* Reads n unsigned integers back; 0 on success. */
static int unpack(const tr_msg *msg, int n, uint64_t *v)
{
    msgpack_unpacked up;
    int rc = tr_msg_unpack(msg, &up);
    const msgpack_object *o = &up.data;
    if (rc == 0 && (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != (uint32_t)n))
        rc = -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (o->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            rc = -1;
        else
            v[i] = o->via.array.ptr[i].via.u64;
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* ---- a member: passes the token on ---- */

static void member_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    tr_addr *next = state;
    uint64_t v[2];
    if (tr_msg_type(msg) == MSG_NEXT && unpack(msg, 1, v) == 0) {
        next->bits = v[0];
        tr_reply(ctx, pack(MSG_READY, 0, NULL));
    } else if (tr_msg_type(msg) == MSG_TOKEN && unpack(msg, 2, v) == 0) { /* [hops left, conductor] */
        if (v[0] == 0) {
            tr_send(ctx, (tr_addr){v[1]}, pack(MSG_DONE, 0, NULL));
            return;
        }
        v[0]--;
        tr_send(ctx, *next, pack(MSG_TOKEN, 2, v));
    }
}

static const tr_behavior member = {
    .name = "member", .state_size = sizeof(tr_addr), .receive = member_receive};

/* ---- node 1's conductor: builds the ring, starts the token ---- */

typedef struct {
    uint64_t refs[MEMBERS];
    tr_addr members[MEMBERS];
    int spawned, ready;
    struct timespec started;
} conductor_state;

static int conductor_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    conductor_state *c = state;
    for (int i = 0; i < MEMBERS; i++) { /* member i lives on node i % 4 + 1 */
        int rc = tr_spawn_remote(ctx, (uint16_t)(i % NODES + 1), "member", NULL, 10000, &c->refs[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void conductor_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    conductor_state *c = state;
    if (tr_msg_type(msg) == TR_MSG_SPAWNED) {
        const tr_spawned *s = tr_msg_data(msg);
        for (int i = 0; i < MEMBERS; i++)
            if (c->refs[i] == tr_reply_to(ctx))
                c->members[i] = s->actor;
        if (s->error != 0) {
            fprintf(stderr, "spawn failed: %s\n", tr_strerror(s->error));
            tr_system_stop(tr_ctx_system(ctx));
            return;
        }
        if (++c->spawned < MEMBERS)
            return;
        for (int i = 0; i < MEMBERS; i++) { /* close the ring */
            uint64_t next = c->members[(i + 1) % MEMBERS].bits;
            tr_ask(ctx, c->members[i], pack(MSG_NEXT, 1, &next), 10000, NULL);
        }
    } else if (tr_msg_type(msg) == MSG_READY) {
        if (++c->ready < MEMBERS)
            return;
        char where[32];
        printf("ring of %d members over %d processes; member 1 is %s\n", MEMBERS, NODES,
               tr_addr_format(c->members[1], where, sizeof where));
        clock_gettime(CLOCK_MONOTONIC, &c->started);
        uint64_t token[2] = {(uint64_t)hops, tr_self(ctx).bits};
        tr_send(ctx, c->members[0], pack(MSG_TOKEN, 2, token));
    } else if (tr_msg_type(msg) == MSG_DONE) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double secs = (double)(now.tv_sec - c->started.tv_sec) +
                      (double)(now.tv_nsec - c->started.tv_nsec) * 1e-9;
        printf("token made %ld hops between processes in %.3f s (%.0f hops per second)\n", hops,
               secs, (double)hops / secs);
        tr_system_stop(tr_ctx_system(ctx));
    } else if (tr_msg_type(msg) == TR_MSG_ASK_TIMEOUT) {
        fprintf(stderr, "a node did not answer\n");
        tr_system_stop(tr_ctx_system(ctx));
    }
}

static const tr_behavior conductor = {.name = "conductor", .state_size = sizeof(conductor_state),
                                      .init = conductor_init, .receive = conductor_receive};

int main(int argc, char **argv)
{
    if (argc > 1 && atol(argv[1]) > 0)
        hops = atol(argv[1]);
    const char *transport = argc > 2 ? argv[2] : "pipe";
    uint16_t me = tr_node_id_from_env(); /* 0: started by hand, so we are node 1 */
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = me ? me : 1;
    tr_system *sys;
    if (tr_system_new(&cfg, &sys) != 0)
        return 1;
    int rc = tr_register_behavior(sys, &member);
    if (rc == 0 && me)
        rc = tr_system_join(sys);
    if (rc == 0 && !me)
        rc = tr_system_spawn_nodes(sys, "/proc/self/exe", argv, 2, NODES - 1, transport);
    if (rc == 0) /* node 1 conducts; the others end when it has gone */
        rc = cfg.node_id == 1 ? tr_system_spawn(sys, &conductor, NULL, NULL)
                              : tr_system_stop_with_node(sys, 1);
    if (rc == 0)
        rc = tr_system_run(sys);
    else
        fprintf(stderr, "node %u: %s\n", (unsigned)cfg.node_id, tr_strerror(rc));
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
