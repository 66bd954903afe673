/* pingpong — two actors bounce a ball back and forth.
 *
 * Shows spawning with an init message, tr_reply (answer whoever sent the
 * message) and the system ending by itself once nothing is left to do.
 * Prints "100000 round trips".
 *
 * Run: ./build/examples/pingpong [round trips]
 */
#include <stdio.h>
#include <stdlib.h>
#include <troupe.h>

enum { MSG_BALL = 1 };

typedef struct {
    long hits;  /* times the ball has been hit so far */
    long limit; /* hits to play: two per round trip */
} ball;

static void player_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    ball b = *(const ball *)tr_msg_data(msg);
    if (++b.hits == b.limit) {
        printf("%ld round trips\n", b.hits / 2);
        return; /* nothing more is sent: the system goes quiet, run returns */
    }
    tr_reply(ctx, tr_msg_new(MSG_BALL, &b, sizeof b));
}

static const tr_behavior player = {.name = "player", .receive = player_receive};

/* The server's init message names the other player and the ball to serve. */
typedef struct {
    tr_addr other;
    ball ball;
} serve;

static int server_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    const serve *s = tr_msg_data(arg);
    return tr_send(ctx, s->other, tr_msg_new(MSG_BALL, &s->ball, sizeof s->ball));
}

static const tr_behavior server = {
    .name = "server", .init = server_init, .receive = player_receive};

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 100000;
    tr_system *sys;
    if (rounds < 1 || tr_system_new(NULL, &sys) != 0)
        return 1;
    serve s = {.ball = {.hits = 0, .limit = 2 * rounds}};
    tr_system_spawn(sys, &player, NULL, &s.other);
    tr_system_spawn(sys, &server, tr_msg_new(0, &s, sizeof s), NULL);
    int rc = tr_system_run(sys);
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
