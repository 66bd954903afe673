/* Starting node processes: a child node of this system, several joined in
 * a full mesh, or a whole program of N nodes from a launcher (tr_launch).
 *
 * Every pair of nodes gets its own Unix socket pair, made here before any
 * child starts; a child receives its ends as fds 3, 4, ... and reads which
 * peer each belongs to, and over which transport, from its environment
 * (TROUPE_NODE_ID, TROUPE_NODE_PEERS = "id:fd,id:fd", TROUPE_NODE_TRANSPORT).
 * Children are exec'd with libuv's process API, never forked from this
 * threaded process. */
#include "actor.h"

#include "../io/loop.h"
#include "../io/process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

/* ---- the mesh: one socket pair per pair of members ------------------------ */

typedef struct mesh {
    unsigned n;
    const uint16_t *ids;
    int *ends; /* ends[i * n + j]: member i's end towards j (-1: none, or handed on) */
} mesh;

static void mesh_close(mesh *m, unsigned member)
{
    for (unsigned j = 0; j < m->n; j++) {
        int *fd = &m->ends[member * m->n + j];
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
    }
}

static void mesh_free(mesh *m)
{
    for (unsigned i = 0; m->ends && i < m->n; i++)
        mesh_close(m, i);
    free(m->ends);
}

static int mesh_make(mesh *m, const uint16_t *ids, unsigned n)
{
    *m = (mesh){.n = n, .ids = ids, .ends = malloc((size_t)n * n * sizeof(int))};
    if (!m->ends)
        return TR_ENOMEM;
    for (unsigned k = 0; k < n * n; k++)
        m->ends[k] = -1;
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = i + 1; j < n; j++) {
            int fds[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
                mesh_free(m);
                return TR_ENOMEM; /* out of descriptors */
            }
            m->ends[i * n + j] = fds[0];
            m->ends[j * n + i] = fds[1];
        }
    return 0;
}

/* ---- one child ------------------------------------------------------------- */

typedef struct child_plan {
    char **argv, **env;
    int *fds;
    unsigned nfds;
} child_plan;

static void free_strings(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

static void plan_free(child_plan *p)
{
    free_strings(p->argv);
    free_strings(p->env);
    free(p->fds);
}

/* argv with program first, our environment without TROUPE_NODE_*, and the
 * member's settings; its ends of the mesh become fds 3, 4, ... */
static int plan_child(child_plan *p, const mesh *m, unsigned member, const char *program,
                      char *const argv[], const char *transport)
{
    size_t argc = 0, envc = 0;
    while (argv && argv[argc])
        argc++;
    while (environ[envc])
        envc++;
    *p = (child_plan){.argv = calloc(argc + 2, sizeof(char *)),
                      .env = calloc(envc + 4, sizeof(char *)),
                      .fds = calloc(m->n, sizeof(int))};
    size_t peers_size = 32 + (size_t)m->n * 16;
    char *peers = malloc(peers_size);
    if (!p->argv || !p->env || !p->fds || !peers) {
        free(peers);
        return TR_ENOMEM;
    }
    p->argv[0] = strdup(program);
    for (size_t i = 1; i < argc; i++)
        p->argv[i] = strdup(argv[i]);
    size_t e = 0;
    for (size_t i = 0; i < envc; i++)
        if (strncmp(environ[i], "TROUPE_NODE_", 12) != 0)
            p->env[e++] = strdup(environ[i]);
    size_t used = (size_t)snprintf(peers, peers_size, "TROUPE_NODE_PEERS=");
    for (unsigned j = 0; j < m->n; j++) {
        if (j == member)
            continue;
        p->fds[p->nfds] = m->ends[member * m->n + j];
        used += (size_t)snprintf(peers + used, peers_size - used, "%s%u:%u", p->nfds ? "," : "",
                                 (unsigned)m->ids[j], 3 + p->nfds);
        p->nfds++;
    }
    char id[32], via[64];
    snprintf(id, sizeof id, "TROUPE_NODE_ID=%u", (unsigned)m->ids[member]);
    snprintf(via, sizeof via, "TROUPE_NODE_TRANSPORT=%s", transport);
    p->env[e++] = strdup(id);
    p->env[e++] = peers;
    p->env[e++] = strdup(via);
    for (size_t i = 0; i < e; i++)
        if (!p->env[i])
            return TR_ENOMEM;
    for (size_t i = 0; i < argc; i++)
        if (!p->argv[i])
            return TR_ENOMEM;
    return 0;
}

static bool transport_known(const char *t)
{
    return t && (strcmp(t, "pipe") == 0 || strcmp(t, "shm") == 0);
}

/* ---- child nodes of a running system ----------------------------------------- */

/* uv_spawn must run on the loop thread: the caller waits for it there. */
typedef struct spawn_task {
    io_task task;
    const child_plan *plan;
    int rc;
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
} spawn_task;

static void spawn_on_loop(io_task *task, uv_loop_t *loop)
{
    spawn_task *t = container_of(task, spawn_task, task);
    const child_plan *p = t->plan;
    int rc = loop ? io_spawn_child(loop, p->argv[0], p->argv, p->env, p->fds, p->nfds, NULL, NULL)
                  : UV_ECANCELED;
    pthread_mutex_lock(&t->lock);
    t->rc = rc;
    t->finished = true;
    pthread_cond_signal(&t->done);
    pthread_mutex_unlock(&t->lock);
}

static int spawn_via_loop(io_loop *io, const child_plan *plan)
{
    spawn_task t = {.task.run = spawn_on_loop, .plan = plan};
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.done, NULL);
    io_loop_submit(io, &t.task);
    pthread_mutex_lock(&t.lock);
    while (!t.finished)
        pthread_cond_wait(&t.done, &t.lock);
    pthread_mutex_unlock(&t.lock);
    pthread_mutex_destroy(&t.lock);
    pthread_cond_destroy(&t.done);
    return t.rc == 0 ? 0 : TR_EINVAL;
}

int tr_system_spawn_nodes(tr_system *sys, const char *program, char *const argv[], uint16_t first,
                          unsigned count, const char *transport)
{
    if (!sys || !program || sys->node_id == 0 || first == 0 || count == 0 ||
        (uint32_t)first + count - 1 > UINT16_MAX || !transport_known(transport) ||
        (sys->node_id >= first && sys->node_id < first + count))
        return TR_EINVAL;
    io_loop *io;
    int rc = actor_io(sys, &io);
    if (rc != 0)
        return rc;
    uint16_t *ids = malloc((count + 1) * sizeof *ids);
    if (!ids)
        return TR_ENOMEM;
    ids[0] = sys->node_id;
    for (unsigned i = 0; i < count; i++)
        ids[i + 1] = (uint16_t)(first + i);
    mesh m;
    if ((rc = mesh_make(&m, ids, count + 1)) != 0) {
        free(ids);
        return rc;
    }
    for (unsigned c = 1; c <= count && rc == 0; c++) {
        child_plan plan;
        rc = plan_child(&plan, &m, c, program, argv, transport);
        if (rc == 0)
            rc = spawn_via_loop(io, &plan);
        plan_free(&plan);
        mesh_close(&m, c); /* the child has its copies */
    }
    for (unsigned j = 1; j <= count && rc == 0; j++) { /* our ends: taken by the connection */
        int *fd = &m.ends[j];
        rc = actor_connect(sys, *fd, transport, ids[j]);
        *fd = -1;
    }
    mesh_free(&m);
    free(ids);
    return rc;
}

int tr_system_spawn_node(tr_system *sys, const char *program, char *const argv[], uint16_t node)
{
    return tr_system_spawn_nodes(sys, program, argv, node, 1, "pipe");
}

/* ---- inside a child --------------------------------------------------------- */

uint16_t tr_node_id_from_env(void)
{
    const char *id = getenv("TROUPE_NODE_ID");
    char *end;
    long v = id ? strtol(id, &end, 10) : 0;
    return v > 0 && v <= 65535 && *end == '\0' ? (uint16_t)v : 0;
}

/* Reads the next "id:fd" of a TROUPE_NODE_PEERS list at *p; false when
 * malformed. */
static bool next_peer(const char **p, uint16_t *id, int *fd)
{
    char *end;
    long i = strtol(*p, &end, 10);
    if (end == *p || *end != ':' || i <= 0 || i > 65535)
        return false;
    const char *f = end + 1;
    long d = strtol(f, &end, 10);
    if (end == f || d < 3 || d > 65535 || (*end != ',' && *end != '\0') ||
        (*end == ',' && end[1] == '\0'))
        return false;
    *id = (uint16_t)i;
    *fd = (int)d;
    *p = *end ? end + 1 : end;
    return true;
}

int tr_system_join(tr_system *sys)
{
    const char *peers = getenv("TROUPE_NODE_PEERS");
    const char *transport = getenv("TROUPE_NODE_TRANSPORT");
    if (!transport)
        transport = "pipe";
    if (!sys || !peers || !*peers || !transport_known(transport) || sys->node_id == 0 ||
        sys->node_id != tr_node_id_from_env())
        return TR_EINVAL;
    uint16_t id;
    int fd;
    for (const char *p = peers; *p;) /* all of it checked before any fd is taken */
        if (!next_peer(&p, &id, &fd))
            return TR_EINVAL;
    for (const char *p = peers; *p && next_peer(&p, &id, &fd);) {
        int rc = actor_connect(sys, fd, transport, id);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- a launcher: N nodes of one program ----------------------------------------- */

typedef struct launched {
    int *status;
    unsigned running;
} launched;

typedef struct launched_child {
    launched *all;
    unsigned index;
} launched_child;

static void on_launched_exit(void *arg, int64_t status, int signal)
{
    launched_child *c = arg;
    if (c->all->status)
        c->all->status[c->index] = signal ? 128 + signal : (int)status;
    c->all->running--;
}

int tr_launch(const char *program, char *const argv[], unsigned count, const char *transport,
              int *status)
{
    if (!program || count == 0 || count > UINT16_MAX || !transport_known(transport))
        return TR_EINVAL;
    uint16_t *ids = malloc(count * sizeof *ids);
    launched_child *children = calloc(count, sizeof *children);
    uv_loop_t loop;
    if (!ids || !children || uv_loop_init(&loop) != 0) {
        free(ids);
        free(children);
        return TR_ENOMEM;
    }
    for (unsigned i = 0; i < count; i++)
        ids[i] = (uint16_t)(i + 1);
    launched all = {.status = status};
    mesh m;
    int rc = mesh_make(&m, ids, count);
    for (unsigned c = 0; c < count && rc == 0; c++) {
        child_plan plan;
        children[c] = (launched_child){&all, c};
        rc = plan_child(&plan, &m, c, program, argv, transport);
        if (rc == 0 && io_spawn_child(&loop, plan.argv[0], plan.argv, plan.env, plan.fds,
                                      plan.nfds, on_launched_exit, &children[c]) != 0)
            rc = TR_EINVAL;
        if (rc == 0)
            all.running++;
        plan_free(&plan);
        mesh_close(&m, c);
    }
    mesh_free(&m); /* a node that failed to start is a closed peer to the others */
    uv_run(&loop, UV_RUN_DEFAULT); /* until every child has exited */
    uv_loop_close(&loop);
    free(children);
    free(ids);
    return rc;
}
