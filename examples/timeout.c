/* timeout — asking with a deadline, and timers that are cancelled.
 *
 * A service answers each question after a delay the question names (it
 * defers the reply and answers from a timer, so it never blocks a worker).
 * The client asks twice: with a deadline longer than the delay (the answer
 * arrives) and shorter (the ask times out; the answer that comes later is
 * dropped and counted, never taken for an on-time answer). It also starts a
 * periodic heartbeat and cancels it after three beats, and cancels a reminder
 * before it fires.
 *
 * Run: ./build/examples/timeout
 */
#include <stdio.h>
#include <troupe.h>

enum { MSG_QUESTION = 1, MSG_ANSWER, MSG_ANSWER_NOW, MSG_BEAT, MSG_REMINDER, MSG_DONE };

/* ---- the service: answers after the delay asked for ---- */

typedef struct {
    tr_reply_token to;
    long delay_ms;
} pending;

static void service_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    if (tr_msg_type(msg) == MSG_QUESTION) { /* answer later, from a timer */
        pending p = {tr_defer_reply(ctx), *(const long *)tr_msg_data(msg)};
        tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_ANSWER_NOW, &p, sizeof p),
                      (uint64_t)p.delay_ms, NULL);
    } else if (tr_msg_type(msg) == MSG_ANSWER_NOW) {
        const pending *p = tr_msg_data(msg);
        tr_reply_with(ctx, p->to, tr_msg_new(MSG_ANSWER, &p->delay_ms, sizeof p->delay_ms));
    }
}

static const tr_behavior service = {.name = "service", .receive = service_receive};

/* ---- the client ---- */

typedef struct {
    tr_addr service;
    tr_timer heartbeat;
    int beats;
    int looks; /* for the late answer's count */
} client_state;

static void ask(tr_ctx *ctx, client_state *c, long delay_ms, uint64_t deadline_ms)
{
    printf("asking for an answer in %ld ms, with a %llu ms deadline\n", delay_ms,
           (unsigned long long)deadline_ms);
    tr_ask(ctx, c->service, tr_msg_new(MSG_QUESTION, &delay_ms, sizeof delay_ms), deadline_ms, NULL);
}

static int client_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    client_state *c = state;
    c->service = *(const tr_addr *)tr_msg_data(arg);
    ask(ctx, c, 20, 500);
    tr_timer reminder;
    tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_REMINDER, NULL, 0), 50, &reminder);
    if (tr_timer_cancel(tr_ctx_system(ctx), reminder) == 0)
        printf("reminder cancelled before it fired\n");
    return tr_send_every(ctx, tr_self(ctx), tr_msg_new(MSG_BEAT, NULL, 0), 30, &c->heartbeat);
}

static void client_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    client_state *c = state;
    switch (tr_msg_type(msg)) {
    case MSG_ANSWER:
        printf("answer after %ld ms: in time\n", *(const long *)tr_msg_data(msg));
        ask(ctx, c, 300, 100); /* this one will not make it */
        return;
    case TR_MSG_ASK_TIMEOUT:
        printf("no answer within the deadline: timed out\n");
        /* wait for the late answer to come (and be dropped), then finish */
        tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_DONE, NULL, 0), 300, NULL);
        return;
    case MSG_BEAT:
        if (++c->beats == 3 && tr_timer_cancel(tr_ctx_system(ctx), c->heartbeat) == 0)
            printf("heartbeat cancelled after 3 beats\n");
        return;
    case MSG_REMINDER:
        printf("reminder fired (it should not have)\n");
        return;
    case MSG_DONE: {
        tr_stats st;
        tr_system_stats(tr_ctx_system(ctx), &st);
        if (st.late_replies == 0 && ++c->looks < 50) { /* a busy machine: not yet, look again */
            tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_DONE, NULL, 0), 100, NULL);
            return;
        }
        printf("late answers dropped: %llu\n", (unsigned long long)st.late_replies);
        return;
    }
    }
}

static const tr_behavior client = {.name = "client",
                                   .state_size = sizeof(client_state),
                                   .init = client_init,
                                   .receive = client_receive};

int main(void)
{
    tr_system *sys;
    if (tr_system_new(NULL, &sys) != 0)
        return 1;
    tr_addr s;
    tr_system_spawn(sys, &service, NULL, &s);
    tr_system_spawn(sys, &client, tr_msg_new(0, &s, sizeof s), NULL);
    int rc = tr_system_run(sys); /* returns when no timer is left pending */
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
