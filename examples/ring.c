/* ring — a token passed around a ring of actors.
 *
 * Each actor knows only the next one: main tells it with a "link" message
 * after spawning the whole ring (addresses are plain values and travel in
 * messages). Then main hands the token to actor 0, carrying the number of
 * hops left; each actor passes it on. The actor that receives it with no hops
 * left prints where it stopped.
 * Prints "token stopped at actor 0 after 10000 hops (10 laps of 1000)".
 *
 * Run: ./build/examples/ring [actors] [laps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <troupe.h>

enum { MSG_LINK = 1, MSG_TOKEN = 2 };

typedef struct {
    int id;
    tr_addr next;
} member_state;

typedef struct {
    long hops_left, hops, laps, size;
} token;

static int member_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)ctx;
    ((member_state *)state)->id = *(const int *)tr_msg_data(arg);
    return 0;
}

static void member_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    member_state *m = state;
    if (tr_msg_type(msg) == MSG_LINK) {
        m->next = *(const tr_addr *)tr_msg_data(msg);
        return;
    }
    token t = *(const token *)tr_msg_data(msg);
    if (t.hops_left == 0) {
        printf("token stopped at actor %d after %ld hops (%ld laps of %ld)\n", m->id,
               t.hops, t.laps, t.size);
        return;
    }
    t.hops_left--;
    tr_send(ctx, m->next, tr_msg_new(MSG_TOKEN, &t, sizeof t));
}

static const tr_behavior member = {.name = "ring member",
                                   .state_size = sizeof(member_state),
                                   .init = member_init,
                                   .receive = member_receive};

int main(int argc, char **argv)
{
    int size = argc > 1 ? atoi(argv[1]) : 1000;
    long laps = argc > 2 ? atol(argv[2]) : 10;
    tr_system *sys;
    if (size < 1 || laps < 0 || tr_system_new(NULL, &sys) != 0)
        return 1;
    tr_addr *ring = calloc((size_t)size, sizeof *ring);
    if (!ring)
        return 1;
    for (int i = 0; i < size; i++)
        tr_system_spawn(sys, &member, tr_msg_new(0, &i, sizeof i), &ring[i]);
    for (int i = 0; i < size; i++)
        tr_system_send(sys, ring[i], tr_msg_new(MSG_LINK, &ring[(i + 1) % size], sizeof(tr_addr)));
    token t = {.hops_left = laps * size, .hops = laps * size, .laps = laps, .size = size};
    tr_system_send(sys, ring[0], tr_msg_new(MSG_TOKEN, &t, sizeof t));
    int rc = tr_system_run(sys);
    tr_system_free(sys);
    free(ring);
    return rc == 0 ? 0 : 1;
}
