/* chat — a chat room across processes.
 *
 * Node 1 runs the room, registered under the name "room". Nodes 2-4 each
 * run one user (alice, bob, carol) who joins the room by name (again every
 * 100 ms until the room answers: a message to a name not registered yet is
 * a dead letter, and node 1 may still be starting), says three
 * lines, each after hearing the room echo the one before, and then leaves by
 * ending its whole process. The room monitors every member: when a user's
 * process is gone the monitor's down says so (reason TR_EXIT_NODEDOWN), and
 * the room tells the others. When the last user has left, the room closes.
 * Everything the room hears is printed by node 1, in the order it heard it.
 * Users watch node 1 too (tr_monitor_node), so none outlives the room.
 *
 * Run: ./build/examples/chat [pipe|shm]
 *  or: ./build/tools/troupe-launch -n 4 ./build/examples/chat
 */
#include <stdio.h>
#include <string.h>
#include <troupe.h>

enum { USERS = 3, LINES = 3, MSG_JOIN = 1, MSG_SAY, MSG_HEARD, MSG_KNOCK };

static const char *const names[USERS] = {"alice", "bob", "carol"};
static const char *const lines[LINES] = {"hello, everyone", "this room spans four processes",
                                         "bye for now"};

/* ---- node 1: the room ---- */

typedef struct {
    tr_addr members[USERS];
    char who[USERS][16];
    int count, left;
} room_state;

static int room_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    for (uint16_t node = 2; node < 2 + USERS; node++) /* a user's process may end before it joins */
        tr_monitor_node(ctx, node, NULL);
    return tr_register(ctx, "room");
}

static int member_index(room_state *r, tr_addr a)
{
    for (int i = 0; i < r->count; i++)
        if (tr_addr_eq(r->members[i], a))
            return i;
    return -1;
}

/* Sends text (a message of type MSG_HEARD) to every member still in. */
static void broadcast(tr_ctx *ctx, room_state *r, const char *text)
{
    printf("%s\n", text);
    tr_msg *m = tr_msg_new(MSG_HEARD, text, strlen(text) + 1);
    for (int i = 0; i < r->count; i++)
        if (!tr_addr_is_none(r->members[i]))
            tr_send(ctx, r->members[i], tr_msg_ref(m)); /* one message, shared */
    tr_msg_unref(m);
}

static void room_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    room_state *r = state;
    char text[160];
    int i = member_index(r, tr_sender(ctx));
    switch (tr_msg_type(msg)) {
    case MSG_JOIN:
        if (i >= 0 || r->count == USERS || tr_msg_size(msg) >= sizeof r->who[0])
            return;
        i = r->count++;
        r->members[i] = tr_sender(ctx);
        memcpy(r->who[i], tr_msg_data(msg), tr_msg_size(msg));
        r->who[i][tr_msg_size(msg)] = '\0';
        tr_monitor(ctx, r->members[i], NULL);
        snprintf(text, sizeof text, "* %s joined from node %u", r->who[i],
                 tr_addr_node(r->members[i]));
        broadcast(ctx, r, text);
        return;
    case MSG_SAY:
        if (i < 0)
            return;
        snprintf(text, sizeof text, "<%s> %.*s", r->who[i], (int)tr_msg_size(msg),
                 (const char *)tr_msg_data(msg));
        broadcast(ctx, r, text);
        return;
    case TR_MSG_DOWN: {
        const tr_down *d = tr_msg_data(msg);
        uint16_t node = tr_addr_node(d->actor);
        if (!tr_addr_eq(d->actor, tr_node_addr(node))) { /* a member's monitor */
            if ((i = member_index(r, d->actor)) < 0)
                return;
            r->members[i] = TR_ADDR_NONE;
            snprintf(text, sizeof text, "* %s left (%s)", r->who[i],
                     d->reason == TR_EXIT_NODEDOWN ? "their process ended" : "they stopped");
            broadcast(ctx, r, text);
            return;
        }
        /* a user's node is gone: after its member's own down, if it had joined */
        if (++r->left == USERS) {
            printf("* the room is empty: closing\n");
            tr_system_stop(tr_ctx_system(ctx));
        }
        return;
    }
    }
}

static const tr_behavior room = {
    .name = "room", .state_size = sizeof(room_state), .init = room_init, .receive = room_receive};

/* ---- nodes 2-4: a user ---- */

typedef struct {
    const char *name;
    int said;
    tr_timer knock; /* repeats the join until the room answers */
} user_state;

static int join(tr_ctx *ctx, user_state *u)
{
    return tr_send_named_node(ctx, 1, "room", tr_msg_new(MSG_JOIN, u->name, strlen(u->name)));
}

static void say_next(tr_ctx *ctx, user_state *u)
{
    const char *line = lines[u->said++];
    tr_send_named_node(ctx, 1, "room", tr_msg_new(MSG_SAY, line, strlen(line)));
}

static int user_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    user_state *u = state;
    u->name = names[(tr_addr_node(tr_self(ctx)) - 2) % USERS];
    int rc = tr_monitor_node(ctx, 1, NULL);
    if (rc == 0)
        rc = join(ctx, u);
    return rc ? rc : tr_send_every(ctx, tr_self(ctx), tr_msg_new(MSG_KNOCK, NULL, 0), 100, &u->knock);
}

static void user_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    user_state *u = state;
    if (tr_msg_type(msg) == TR_MSG_DOWN) { /* the room's process is gone */
        tr_system_stop(tr_ctx_system(ctx));
        return;
    }
    if (tr_msg_type(msg) == MSG_KNOCK) {
        join(ctx, u);
        return;
    }
    if (tr_msg_type(msg) != MSG_HEARD)
        return;
    char mine[64];
    snprintf(mine, sizeof mine, "<%s> %s", u->name, u->said ? lines[u->said - 1] : "");
    const char *heard = tr_msg_data(msg);
    bool my_join = u->said == 0 && strstr(heard, u->name) && strstr(heard, "joined");
    if (!my_join && strcmp(heard, mine) != 0)
        return; /* someone else's line */
    if (u->knock) { /* in: stop knocking */
        tr_timer_cancel(tr_ctx_system(ctx), u->knock);
        u->knock = 0;
    }
    if (u->said < LINES)
        say_next(ctx, u); /* the room heard our last line: say the next */
    else
        tr_system_stop(tr_ctx_system(ctx)); /* said everything: leave, process and all */
}

static const tr_behavior user = {
    .name = "user", .state_size = sizeof(user_state), .init = user_init, .receive = user_receive};

int main(int argc, char **argv)
{
    const char *transport = argc > 1 ? argv[1] : "pipe";
    uint16_t me = tr_node_id_from_env();
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = me ? me : 1;
    tr_system *sys;
    if (tr_system_new(&cfg, &sys) != 0)
        return 1;
    int rc = 0;
    if (cfg.node_id == 1) { /* the room first, so joins find the name */
        rc = tr_system_spawn(sys, &room, NULL, NULL);
        if (rc == 0 && !me)
            rc = tr_system_spawn_nodes(sys, "/proc/self/exe", argv, 2, USERS, transport);
        if (rc == 0 && me)
            rc = tr_system_join(sys);
    } else {
        rc = tr_system_join(sys);
        if (rc == 0)
            rc = tr_system_spawn(sys, &user, NULL, NULL);
    }
    if (rc == 0)
        rc = tr_system_run(sys);
    else
        fprintf(stderr, "node %u: %s\n", (unsigned)cfg.node_id, tr_strerror(rc));
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
