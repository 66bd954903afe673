/* Actors on other nodes: connecting a system to peers, sending across, and
 * what arrives from them. The node layer does the wire; this file is the
 * glue between it and actors. */
#include "actor.h"

#include "../io/process.h"
#include "../node/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void deliver_in(void *arg, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane)
{
    actor_deliver(arg, NULL, from, to, msg, system_lane, 0);
}

static void deliver_named_in(void *arg, const char *name, tr_addr from, tr_msg *msg)
{
    tr_system *sys = arg;
    tr_addr to;
    if (tr_whereis(sys, name, &to) != 0) {
        /* relaxed: a statistic. */
        atomic_fetch_add_explicit(&sys->dead_letters, 1, memory_order_relaxed);
        tr_msg_unref(msg);
        return;
    }
    actor_deliver(sys, NULL, from, to, msg, false, 0);
}

static void connection_closed(void *arg, uint16_t peer, int error, const char *why)
{
    (void)peer, (void)error, (void)why; /* logged by the node; node-down comes next */
    tr_system *sys = arg;
    sched_release(&sys->sched); /* the connection no longer keeps the system up */
}

static const node_callbacks callbacks = {
    .deliver = deliver_in, .deliver_named = deliver_named_in, .connection_closed = connection_closed};

int tr_system_connect(tr_system *sys, int fd)
{
    io_loop *io;
    if (!sys || fd < 0 || sys->node_id == 0)
        return TR_EINVAL;
    int rc = actor_io(sys, &io);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&sys->io_lock);
    if (!sys->node)
        rc = node_new(sys->node_id, io, &callbacks, sys, &sys->node);
    pthread_mutex_unlock(&sys->io_lock);
    if (rc != 0)
        return rc;
    sched_hold(&sys->sched); /* released when the connection closes */
    rc = node_connect(sys->node, "pipe", fd);
    if (rc != 0)
        sched_release(&sys->sched);
    return rc;
}

int actor_remote_send(tr_system *sys, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane)
{
    if (!sys->node) { /* not connected to anyone */
        atomic_fetch_add_explicit(&sys->dead_letters, 1, memory_order_relaxed);
        tr_msg_unref(msg);
        return TR_EDEAD;
    }
    return node_send(sys->node, from, to, msg, system_lane);
}

int tr_send_named_node(tr_ctx *ctx, uint16_t node_id, const char *name, tr_msg *msg)
{
    if (!ctx) {
        tr_msg_unref(msg);
        return TR_EINVAL;
    }
    if (node_id == ctx->sys->node_id)
        return tr_send_named(ctx, name, msg);
    if (!ctx->sys->node) {
        tr_msg_unref(msg);
        return TR_EDEAD;
    }
    ctx->sent++;
    return node_send_named(ctx->sys->node, node_id, name, ctx->self_addr, msg);
}

uint16_t tr_addr_node(tr_addr addr) { return addr_node(addr); }

void actor_remote_free(tr_system *sys)
{
    node_free(sys->node); /* after the io loop stopped: connections are closed */
    sys->node = NULL;
}

/* ---- child nodes ------------------------------------------------------- */

extern char **environ;

typedef struct spawn_task {
    io_task task;
    tr_system *sys;
    char **argv;
    char **env;
    int child_fd;
    int rc;
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
} spawn_task;

static void free_strings(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* argv copied, and our environment plus the child's node settings. */
static int prepare(spawn_task *t, const char *program, char *const argv[], uint16_t node)
{
    size_t argc = 0, envc = 0;
    while (argv && argv[argc])
        argc++;
    while (environ[envc])
        envc++;
    t->argv = calloc(argc + 2, sizeof *t->argv);
    t->env = calloc(envc + 3, sizeof *t->env);
    if (!t->argv || !t->env)
        return TR_ENOMEM;
    t->argv[0] = strdup(program);
    for (size_t i = 1; i < argc; i++)
        t->argv[i] = strdup(argv[i]);
    size_t e = 0;
    for (size_t i = 0; i < envc; i++)
        if (strncmp(environ[i], "TROUPE_NODE_", 12) != 0)
            t->env[e++] = strdup(environ[i]);
    char id[32];
    snprintf(id, sizeof id, "TROUPE_NODE_ID=%u", (unsigned)node);
    t->env[e++] = strdup(id);
    t->env[e++] = strdup("TROUPE_NODE_FD=3");
    return 0;
}

static void spawn_on_loop(io_task *task, uv_loop_t *loop)
{
    spawn_task *t = container_of(task, spawn_task, task);
    int rc = loop ? io_spawn_child(loop, t->argv[0], t->argv, t->env, t->child_fd) : UV_ECANCELED;
    pthread_mutex_lock(&t->lock);
    t->rc = rc;
    t->finished = true;
    pthread_cond_signal(&t->done);
    pthread_mutex_unlock(&t->lock);
}

int tr_system_spawn_node(tr_system *sys, const char *program, char *const argv[], uint16_t node)
{
    io_loop *io;
    int fds[2];
    if (!sys || !program || node == 0 || node == sys->node_id || sys->node_id == 0)
        return TR_EINVAL;
    int rc = actor_io(sys, &io);
    if (rc != 0)
        return rc;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        return TR_ENOMEM;
    spawn_task t = {.task.run = spawn_on_loop, .sys = sys, .child_fd = fds[1]};
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.done, NULL);
    rc = prepare(&t, program, argv, node);
    if (rc == 0) { /* uv_spawn must run on the loop: wait for it there */
        io_loop_submit(io, &t.task);
        pthread_mutex_lock(&t.lock);
        while (!t.finished)
            pthread_cond_wait(&t.done, &t.lock);
        pthread_mutex_unlock(&t.lock);
        rc = t.rc == 0 ? 0 : TR_EINVAL;
    }
    close(fds[1]); /* the child has its copy */
    free_strings(t.argv);
    free_strings(t.env);
    pthread_mutex_destroy(&t.lock);
    pthread_cond_destroy(&t.done);
    if (rc != 0) {
        close(fds[0]);
        return rc;
    }
    return tr_system_connect(sys, fds[0]);
}

uint16_t tr_node_id_from_env(void)
{
    const char *id = getenv("TROUPE_NODE_ID");
    long v = id ? strtol(id, NULL, 10) : 0;
    return v > 0 && v <= 65535 ? (uint16_t)v : 0;
}

int tr_system_connect_parent(tr_system *sys)
{
    const char *fd = getenv("TROUPE_NODE_FD");
    long v = fd ? strtol(fd, NULL, 10) : -1;
    if (v < 0 || v > 1024)
        return TR_EINVAL;
    return tr_system_connect(sys, (int)v);
}
