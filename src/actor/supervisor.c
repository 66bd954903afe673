/* Supervisors: an actor behaviour built on links, trapped exits and timers.
 *
 * The supervisor traps exits and spawns each child linked to it. An exit
 * from a child is a failure to handle by policy; an exit from anyone else
 * (its own parent) makes it stop its children and end with that reason.
 * Stopping is a small state machine: one child at a time, newest first, an
 * exit signal and a grace timer, then the next; when none is left, either
 * the children to restart are started again in order, or the supervisor
 * ends. */
#include "actor.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_SHUTDOWN_MS 5000
#define SUP_STOP_TIMEOUT 0xfffe0100u /* to itself: a stopping child's grace is over */

typedef struct child_config {
    const tr_behavior *behavior;
    const tr_supervisor_spec *supervisor;
    size_t init_offset; /* of the init payload in the config message */
    size_t init_size;
    uint32_t init_type;
    tr_restart restart;
    bool has_init;
} child_config;

/* The supervisor's copy of its spec: the payload of its init message (the
 * children's init payloads follow the array), which it keeps a reference to.
 * Were it freed before it ran, the message would go with nothing to leak. */
typedef struct sup_config {
    tr_strategy strategy;
    unsigned max_restarts;
    uint64_t within_ms, shutdown_ms;
    size_t n;
    child_config children[];
} sup_config;

enum after_stop { THEN_NOTHING, THEN_RESTART, THEN_EXIT };

typedef struct sup_state {
    tr_msg *cfg_msg; /* our reference to the config message */
    const sup_config *cfg;
    tr_addr *children;      /* running child per spec, or TR_ADDR_NONE */
    bool *finished;         /* ended for good: not to be started again */
    uint64_t *restarts_at;  /* ring of the last max_restarts restart times (ms) */
    unsigned ring_next, ring_used;
    /* stopping: children stop_low..stop_high, newest first */
    bool stopping;
    size_t stop_low, stop_high;
    tr_addr stopping_child;
    uint64_t stop_generation;
    tr_timer stop_timer; /* the stopping child's grace; cancelled when it ends */
    enum after_stop after;
    size_t restart_from;
    int exit_reason;
} sup_state;

static uint64_t now_ms(void) { return platform_now_ns() / 1000000u; }

/* A message holding a copy of spec, or NULL (bad spec or no memory). */
static tr_msg *config_message(const tr_supervisor_spec *spec)
{
    if (!spec || !spec->children || spec->nchildren == 0 || spec->nchildren > 65536)
        return NULL;
    size_t size = sizeof(sup_config) + spec->nchildren * sizeof(child_config);
    for (size_t i = 0; i < spec->nchildren; i++) {
        const tr_child_spec *c = &spec->children[i];
        bool runnable = c->supervisor || (c->behavior && c->behavior->receive);
        if (!runnable || c->init_size > UINT32_MAX)
            return NULL;
        size += (c->init_size + 7) & ~(size_t)7;
    }
    void *data;
    tr_msg *m = tr_msg_alloc(0, size, &data);
    if (!m)
        return NULL;
    sup_config *cfg = data;
    *cfg = (sup_config){.strategy = spec->strategy,
                        .max_restarts = spec->max_restarts,
                        .within_ms = spec->within_ms,
                        .shutdown_ms = spec->shutdown_ms ? spec->shutdown_ms : DEFAULT_SHUTDOWN_MS,
                        .n = spec->nchildren};
    size_t offset = sizeof(sup_config) + spec->nchildren * sizeof(child_config);
    for (size_t i = 0; i < cfg->n; i++) {
        const tr_child_spec *c = &spec->children[i];
        cfg->children[i] = (child_config){.behavior = c->behavior, .supervisor = c->supervisor,
                                          .init_offset = offset,
                                          .init_size = c->init_size, .init_type = c->init_type,
                                          .restart = c->restart, .has_init = c->init != NULL};
        if (c->init_size)
            memcpy((char *)data + offset, c->init, c->init_size);
        offset += (c->init_size + 7) & ~(size_t)7;
    }
    tr_msg_set_local(m); /* behaviour pointers: this process only */
    return m;
}

/* ---- starting and stopping ------------------------------------------------ */

static int start_child(tr_ctx *ctx, sup_state *s, size_t i)
{
    const child_config *c = &s->cfg->children[i];
    if (c->supervisor)
        return tr_spawn_supervisor(ctx, c->supervisor, &s->children[i]);
    tr_msg *arg = NULL;
    const char *init = (const char *)s->cfg + c->init_offset;
    if (c->has_init && !(arg = tr_msg_new(c->init_type, init, c->init_size)))
        return TR_ENOMEM;
    return tr_spawn_link(ctx, c->behavior, arg, &s->children[i]);
}

static void start_from(tr_ctx *ctx, sup_state *s, size_t first)
{
    for (size_t i = first; i < s->cfg->n; i++) {
        if (!tr_addr_is_none(s->children[i]) || s->finished[i])
            continue;
        int rc = start_child(ctx, s, i);
        if (rc != 0) { /* cannot even spawn: the supervisor fails */
            tr_exit(ctx, rc);
            return;
        }
    }
}

static void stop_next(tr_ctx *ctx, sup_state *s);

/* Stops children stop_low..high newest first, then does `after`. */
static void stop_range(tr_ctx *ctx, sup_state *s, size_t low, size_t high, enum after_stop after)
{
    s->stopping = true;
    s->stop_low = low;
    s->stop_high = high;
    s->after = after;
    stop_next(ctx, s);
}

static void stop_next(tr_ctx *ctx, sup_state *s)
{
    for (size_t i = s->stop_high + 1; i-- > s->stop_low;) {
        if (tr_addr_is_none(s->children[i]))
            continue;
        s->stop_high = i;
        s->stopping_child = s->children[i];
        s->children[i] = TR_ADDR_NONE; /* its exit is expected, not a failure */
        /* a temporary child stopped by us is not started again either */
        s->finished[i] = s->cfg->children[i].restart == TR_RESTART_TEMPORARY;
        tr_kill(ctx, s->stopping_child, TR_EXIT_SHUTDOWN);
        uint64_t gen = ++s->stop_generation;
        tr_send_after(ctx, tr_self(ctx), tr_msg_new(SUP_STOP_TIMEOUT, &gen, sizeof gen),
                      s->cfg->shutdown_ms, &s->stop_timer);
        return;
    }
    s->stopping = false;
    s->stopping_child = TR_ADDR_NONE;
    if (s->after == THEN_RESTART)
        start_from(ctx, s, s->restart_from);
    else if (s->after == THEN_EXIT)
        tr_exit(ctx, s->exit_reason);
}

/* ---- policy ---------------------------------------------------------------- */

/* Records a restart; false when it would exceed the budget. */
static bool within_budget(sup_state *s)
{
    unsigned max = s->cfg->max_restarts;
    uint64_t now = now_ms();
    if (max == 0)
        return false;
    if (s->ring_used == max && now - s->restarts_at[s->ring_next] < s->cfg->within_ms)
        return false; /* the oldest of the last max restarts is still within the window */
    s->restarts_at[s->ring_next] = now;
    s->ring_next = (s->ring_next + 1) % max;
    if (s->ring_used < max)
        s->ring_used++;
    return true;
}

static void child_ended(tr_ctx *ctx, sup_state *s, size_t i, int reason)
{
    s->children[i] = TR_ADDR_NONE;
    tr_restart r = s->cfg->children[i].restart;
    bool abnormal = reason != TR_EXIT_NORMAL && reason != TR_EXIT_SHUTDOWN;
    if (r == TR_RESTART_TEMPORARY || (r == TR_RESTART_TRANSIENT && !abnormal)) {
        s->finished[i] = true;
        return;
    }
    if (!within_budget(s)) {
        s->exit_reason = TR_EXIT_RESTARTS;
        stop_range(ctx, s, 0, s->cfg->n - 1, THEN_EXIT);
        return;
    }
    switch (s->cfg->strategy) {
    case TR_ONE_FOR_ONE: {
        int rc = start_child(ctx, s, i);
        if (rc != 0)
            tr_exit(ctx, rc);
        break;
    }
    case TR_ONE_FOR_ALL:
        s->restart_from = 0;
        stop_range(ctx, s, 0, s->cfg->n - 1, THEN_RESTART);
        break;
    case TR_REST_FOR_ONE:
        s->restart_from = i;
        stop_range(ctx, s, i, s->cfg->n - 1, THEN_RESTART);
        break;
    }
}

/* ---- the behaviour ----------------------------------------------------------- */

static int sup_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    sup_state *s = state;
    s->cfg_msg = tr_msg_ref(arg);
    s->cfg = tr_msg_data(arg);
    s->children = calloc(s->cfg->n, sizeof *s->children);
    s->finished = calloc(s->cfg->n, sizeof *s->finished);
    s->restarts_at = calloc(s->cfg->max_restarts ? s->cfg->max_restarts : 1, sizeof(uint64_t));
    if (!s->children || !s->finished || !s->restarts_at)
        return TR_ENOMEM;
    tr_trap_exit(ctx, true);
    start_from(ctx, s, 0);
    return 0;
}

static void sup_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    sup_state *s = state;
    switch (tr_msg_type(msg)) {
    case TR_MSG_EXIT: {
        const tr_exit_info *e = tr_msg_data(msg);
        if (s->stopping && tr_addr_eq(e->actor, s->stopping_child)) {
            tr_timer_cancel(tr_ctx_system(ctx), s->stop_timer); /* it ended in time */
            stop_next(ctx, s);
            return;
        }
        for (size_t i = 0; i < s->cfg->n; i++)
            if (tr_addr_eq(s->children[i], e->actor)) {
                if (s->stopping) /* failed while others are being stopped */
                    s->children[i] = TR_ADDR_NONE;
                else
                    child_ended(ctx, s, i, e->reason);
                return;
            }
        if (e->reason != TR_EXIT_NORMAL) { /* our parent failed, or told us to stop */
            s->exit_reason = e->reason;
            stop_range(ctx, s, 0, s->cfg->n - 1, THEN_EXIT);
        }
        return;
    }
    case SUP_STOP_TIMEOUT: /* a stopping child overstayed its grace: kill it */
        if (s->stopping && *(const uint64_t *)tr_msg_data(msg) == s->stop_generation)
            tr_kill(ctx, s->stopping_child, TR_EXIT_KILLED);
        return;
    case TR_SUPERVISOR_WHICH:
        tr_reply(ctx, tr_msg_new(TR_SUPERVISOR_WHICH, s->children, s->cfg->n * sizeof(tr_addr)));
        return;
    }
}

static void sup_terminate(tr_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)reason; /* linked children get our exit signal */
    sup_state *s = state;
    tr_msg_unref(s->cfg_msg);
    free(s->children);
    free(s->finished);
    free(s->restarts_at);
}

static const tr_behavior supervisor = {.name = "supervisor",
                                       .state_size = sizeof(sup_state),
                                       .init = sup_init,
                                       .receive = sup_receive,
                                       .terminate = sup_terminate};

int tr_spawn_supervisor(tr_ctx *ctx, const tr_supervisor_spec *spec, tr_addr *out)
{
    tr_msg *m = ctx ? config_message(spec) : NULL;
    if (!m)
        return TR_EINVAL;
    return tr_spawn_link(ctx, &supervisor, m, out);
}

int tr_system_spawn_supervisor(tr_system *sys, const tr_supervisor_spec *spec, tr_addr *out)
{
    tr_msg *m = sys ? config_message(spec) : NULL;
    if (!m)
        return TR_EINVAL;
    return tr_system_spawn(sys, &supervisor, m, out);
}
