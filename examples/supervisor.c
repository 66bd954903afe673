/* supervisor — let it crash: a worker that fails is restarted, and a failure
 * that keeps coming back escalates.
 *
 * A supervisor starts a "worker" that crashes on every third job it handles.
 * A client sends ten jobs by name with tr_ask and a deadline; when a job gets
 * no answer (the worker crashed on it), the client sends it again, to the
 * new worker the supervisor started. Then the client makes the worker crash
 * over and over: more than 5 restarts in a second exhausts the supervisor's
 * budget, it gives up, and the client, which monitors it, is told why.
 *
 * Run: ./build/examples/supervisor
 */
#include <stdio.h>
#include <troupe.h>

enum { MSG_JOB = 1, MSG_DONE, MSG_CRASH };

/* ---- the worker: crashes on every third job ---- */

static int worker_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state, (void)arg;
    return tr_register(ctx, "worker"); /* each new incarnation takes the name */
}

static void worker_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    int *handled = state;
    if (tr_msg_type(msg) == MSG_CRASH || ++*handled % 3 == 0) {
        tr_exit(ctx, 1); /* a failure: the job is not answered */
        return;
    }
    tr_reply(ctx, tr_msg_new(MSG_DONE, tr_msg_data(msg), sizeof(int)));
}

static const tr_behavior worker = {
    .name = "worker", .state_size = sizeof(int), .init = worker_init, .receive = worker_receive};

/* ---- the client ---- */

typedef struct {
    int job, retries;
    tr_addr supervisor;
} client_state;

static void send_job(tr_ctx *ctx, client_state *c)
{
    tr_addr w;
    if (tr_whereis(tr_ctx_system(ctx), "worker", &w) != 0 ||
        tr_ask(ctx, w, tr_msg_new(MSG_JOB, &c->job, sizeof c->job), 100, NULL) != 0)
        tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_JOB, NULL, 0), 10, NULL); /* try again */
}

static int client_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    client_state *c = state;
    c->supervisor = *(const tr_addr *)tr_msg_data(arg);
    tr_monitor(ctx, c->supervisor, NULL);
    c->job = 1;
    send_job(ctx, c);
    return 0;
}

static void client_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    client_state *c = state;
    switch (tr_msg_type(msg)) {
    case MSG_DONE:
        printf("job %d: done\n", *(const int *)tr_msg_data(msg));
        if (++c->job <= 10) {
            send_job(ctx, c);
            return;
        }
        printf("all 10 jobs done; %d of them were sent again after a crash\n", c->retries);
        for (int i = 0; i < 7; i++) /* now crash it faster than the budget allows */
            tr_send_after(ctx, tr_self(ctx), tr_msg_new(MSG_CRASH, NULL, 0), 20 * (uint64_t)i, NULL);
        return;
    case TR_MSG_ASK_TIMEOUT:
        printf("job %d: no answer (the worker crashed), sending it again\n", c->job);
        c->retries++;
        send_job(ctx, c);
        return;
    case MSG_JOB: /* a retry after the worker's name was briefly gone */
        send_job(ctx, c);
        return;
    case MSG_CRASH: {
        tr_addr w;
        if (tr_whereis(tr_ctx_system(ctx), "worker", &w) == 0)
            tr_send(ctx, w, tr_msg_new(MSG_CRASH, NULL, 0));
        return;
    }
    case TR_MSG_DOWN: {
        const tr_down *d = tr_msg_data(msg);
        printf("the supervisor gave up (%s): its restart budget was exhausted\n",
               d->reason == TR_EXIT_RESTARTS ? "TR_EXIT_RESTARTS" : "another reason");
        tr_exit(ctx, TR_EXIT_NORMAL);
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
    tr_child_spec children[] = {{.id = "worker", .behavior = &worker, .restart = TR_RESTART_PERMANENT}};
    tr_supervisor_spec spec = {.strategy = TR_ONE_FOR_ONE, .max_restarts = 5, .within_ms = 1000,
                               .children = children, .nchildren = 1};
    tr_addr sup;
    tr_system_spawn_supervisor(sys, &spec, &sup);
    tr_system_spawn(sys, &client, tr_msg_new(0, &sup, sizeof sup), NULL);
    int rc = tr_system_run(sys);
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
