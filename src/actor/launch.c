/* Starting node processes: a child node of this system, several joined in
 * a full mesh, or a whole program of N nodes from a launcher (tr_launch).
 *
 * Every pair of nodes gets its own Unix socket pair, made here before any
 * child starts; a child receives its ends as fds 3, 4, ... and reads which
 * peer each belongs to, and over which transport, from its environment
 * (TROUPE_NODE_ID, TROUPE_NODE_PEERS = "id:fd,id:fd", TROUPE_NODE_TRANSPORT).
 * Children are exec'd with libuv's process API, never forked from this
 * threaded process.
 *
 * A mesh has a random name (TROUPE_NODE_MESH) and a list of members
 * (TROUPE_NODE_MEMBERS = "1,2,3"). Each member listens under its name in
 * the mesh (io/rendezvous.h), and a member that starts with fewer peers
 * than members (one restarted after a crash, by whichever node started it
 * again) dials the others' names: it rejoins the whole mesh, not only the
 * node that started it. */
#include "actor.h"

#include "../io/loop.h"
#include "../io/process.h"
#include "../io/rendezvous.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- the mesh's name and members ------------------------------------------- */

#define TOKEN_LEN 16 /* hex digits */

typedef struct mesh_state {
    char token[TOKEN_LEN + 1];
    uint16_t *ids; /* members, this node among them */
    unsigned count, cap;
    bool listening[2]; /* under the pipe name, the shm name */
} mesh_state;

static void token_make(char out[TOKEN_LEN + 1])
{
    uint64_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) { /* no entropy yet: unique enough here */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        r = ((uint64_t)getpid() << 40) ^ (uint64_t)t.tv_sec * 1000000000u ^ (uint64_t)t.tv_nsec;
    }
    snprintf(out, TOKEN_LEN + 1, "%016llx", (unsigned long long)r);
}

static bool token_ok(const char *t)
{
    size_t n = 0;
    for (; t[n]; n++)
        if (!((t[n] >= '0' && t[n] <= '9') || (t[n] >= 'a' && t[n] <= 'f')))
            return false;
    return n == TOKEN_LEN;
}

/* Where node id of the mesh listens for connections over transport. */
static void mesh_name(char *out, size_t size, const char *token, const char *transport,
                      uint16_t id)
{
    snprintf(out, size, "troupe-%s-%s-%u", token, transport, (unsigned)id);
}

static bool members_add(mesh_state *ms, uint16_t id)
{
    for (unsigned i = 0; i < ms->count; i++)
        if (ms->ids[i] == id)
            return true;
    if (ms->count == ms->cap) {
        unsigned cap = ms->cap ? 2 * ms->cap : 16;
        uint16_t *grown = realloc(ms->ids, cap * sizeof *grown);
        if (!grown)
            return false;
        ms->ids = grown;
        ms->cap = cap;
    }
    ms->ids[ms->count++] = id;
    return true;
}

/* The environment entries naming the mesh and its members, malloc'd. */
static int mesh_env(const char *token, const uint16_t *ids, unsigned count, char *env[2])
{
    size_t size = 32 + (size_t)count * 6;
    env[0] = malloc(64);
    env[1] = malloc(size);
    if (!env[0] || !env[1]) {
        free(env[0]);
        free(env[1]);
        env[0] = env[1] = NULL;
        return TR_ENOMEM;
    }
    snprintf(env[0], 64, "TROUPE_NODE_MESH=%s", token);
    size_t used = (size_t)snprintf(env[1], size, "TROUPE_NODE_MEMBERS=");
    for (unsigned i = 0; i < count; i++)
        used += (size_t)snprintf(env[1] + used, size - used, "%s%u", i ? "," : "", (unsigned)ids[i]);
    return 0;
}

static const char *transport_static(const char *t) { return strcmp(t, "shm") == 0 ? "shm" : "pipe"; }

static void on_mesh_accept_pipe(void *arg, int fd)
{
    if (actor_connect(arg, fd, "pipe", 0) != 0)
        close(fd);
}

static void on_mesh_accept_shm(void *arg, int fd)
{
    if (actor_connect(arg, fd, "shm", 0) != 0)
        close(fd);
}

/* Makes sys a member of a mesh (a new one unless it is one already) that
 * also counts ids, listening over transport; fills env for children (or
 * not, with NULL). */
static int mesh_enter(tr_system *sys, const char *transport, const uint16_t *ids, unsigned count,
                      char *env[2])
{
    io_loop *io;
    int rc = actor_io(sys, &io);
    if (rc != 0)
        return rc;
    bool shm = strcmp(transport, "shm") == 0, listen_now = false;
    char token[TOKEN_LEN + 1];
    pthread_mutex_lock(&sys->io_lock);
    if (!sys->mesh && (sys->mesh = calloc(1, sizeof *sys->mesh)))
        token_make(sys->mesh->token);
    mesh_state *ms = sys->mesh;
    rc = ms && members_add(ms, sys->node_id) ? 0 : TR_ENOMEM;
    for (unsigned i = 0; i < count && rc == 0; i++)
        if (!members_add(ms, ids[i]))
            rc = TR_ENOMEM;
    if (rc == 0) {
        listen_now = !ms->listening[shm];
        ms->listening[shm] = true;
        memcpy(token, ms->token, sizeof token);
        rc = env ? mesh_env(ms->token, ms->ids, ms->count, env) : 0;
    }
    pthread_mutex_unlock(&sys->io_lock);
    if (rc == 0 && listen_now) {
        char name[96];
        mesh_name(name, sizeof name, token, transport, sys->node_id);
        io_listen(io, name, shm ? on_mesh_accept_shm : on_mesh_accept_pipe, sys);
        /* failing to listen only means a restarted peer cannot come back */
    }
    return rc;
}

void actor_mesh_free(tr_system *sys)
{
    if (sys->mesh)
        free(sys->mesh->ids);
    free(sys->mesh);
    sys->mesh = NULL;
}

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
 * member's settings (with the mesh's name and members: mesh_env); its ends
 * of the mesh become fds 3, 4, ... */
static int plan_child(child_plan *p, const mesh *m, unsigned member, const char *program,
                      char *const argv[], const char *transport, char *const named[2])
{
    size_t argc = 0, envc = 0;
    while (argv && argv[argc])
        argc++;
    while (environ[envc])
        envc++;
    *p = (child_plan){.argv = calloc(argc + 2, sizeof(char *)),
                      .env = calloc(envc + 6, sizeof(char *)),
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
    p->env[e++] = strdup(named[0]);
    p->env[e++] = strdup(named[1]);
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
    io_waited waited;
    const child_plan *plan;
    int rc;
} spawn_task;

static void spawn_on_loop(io_task *task, uv_loop_t *loop)
{
    spawn_task *t = container_of(task, spawn_task, waited.task);
    const child_plan *p = t->plan;
    t->rc = loop ? io_spawn_child(loop, p->argv[0], p->argv, p->env, p->fds, p->nfds, NULL, NULL)
                 : UV_ECANCELED;
    io_waited_done(&t->waited);
}

static int spawn_via_loop(io_loop *io, const child_plan *plan)
{
    spawn_task t = {.waited.task.run = spawn_on_loop, .plan = plan};
    io_loop_submit_wait(io, &t.waited);
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
    char *named[2] = {NULL, NULL};
    mesh m;
    if ((rc = mesh_enter(sys, transport, ids + 1, count, named)) != 0 ||
        (rc = mesh_make(&m, ids, count + 1)) != 0) {
        free(named[0]);
        free(named[1]);
        free(ids);
        return rc;
    }
    for (unsigned c = 1; c <= count && rc == 0; c++) {
        child_plan plan;
        rc = plan_child(&plan, &m, c, program, argv, transport, named);
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
    free(named[0]);
    free(named[1]);
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

/* Reads the next id of a TROUPE_NODE_MEMBERS list at *p; false when
 * malformed. */
static bool next_member(const char **p, uint16_t *id)
{
    char *end;
    long i = strtol(*p, &end, 10);
    if (end == *p || i <= 0 || i > 65535 || (*end != ',' && *end != '\0') ||
        (*end == ',' && end[1] == '\0'))
        return false;
    *id = (uint16_t)i;
    *p = *end ? end + 1 : end;
    return true;
}

static bool in_peers(const char *peers, uint16_t member)
{
    uint16_t id;
    int fd;
    for (const char *p = peers; *p && next_peer(&p, &id, &fd);)
        if (id == member)
            return true;
    return false;
}

/* Members a restarted node could not reach at its start: dialled again
 * every REDIAL_MS for REDIAL_FOR_MS. A member may not be listening yet
 * because it is still starting (its own socket pair to us leads to our
 * previous process, which is gone, so only we can join it): a machine
 * under load showed that, and the member never learnt of our return. One
 * that is not running at all is given up after that time. Loop thread. */
#define REDIAL_MS 50
#define REDIAL_FOR_MS 30000

typedef struct redial {
    io_closable closable; /* first: the loop's close-all finds it in the timer's data */
    uv_timer_t timer;
    io_task task; /* the start, on the loop */
    tr_system *sys;
    const char *transport; /* static */
    char token[TOKEN_LEN + 1];
    uint64_t until;  /* loop time, ms */
    unsigned count; /* ids still to reach */
    uint16_t ids[];
} redial;

static void redial_closed(uv_handle_t *h) { free(h->data); }

/* Dials id of the mesh token; true once connected (or given to a
 * connection that failed at once, which the node logs). */
static bool dial_member(tr_system *sys, const char *token, const char *transport, uint16_t id)
{
    char name[96];
    int fd;
    mesh_name(name, sizeof name, token, transport, id);
    if (io_dial(name, &fd) != 0)
        return false; /* not listening (yet) */
    if (actor_connect(sys, fd, transport, id) != 0)
        close(fd);
    return true;
}

static void redial_tick(uv_timer_t *t)
{
    redial *r = t->data;
    unsigned left = 0;
    for (unsigned i = 0; i < r->count; i++) /* (one that dialled us meanwhile is left be) */
        if (!actor_peer_near(r->sys, r->ids[i]) &&
            !dial_member(r->sys, r->token, r->transport, r->ids[i]))
            r->ids[left++] = r->ids[i];
    r->count = left;
    if (left == 0 || uv_now(t->loop) >= r->until)
        uv_close((uv_handle_t *)t, redial_closed);
}

static void redial_start(io_task *task, uv_loop_t *loop)
{
    redial *r = container_of(task, redial, task);
    if (!loop) {
        free(r);
        return;
    }
    r->closable.on_close = redial_closed;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->until = uv_now(loop) + REDIAL_FOR_MS;
    uv_timer_start(&r->timer, redial_tick, REDIAL_MS, REDIAL_MS);
}

/* Joins the mesh named in the environment, if any: listens under our name
 * and dials every member we were given no connection to (we were started
 * again after a crash); those not listening are dialled again for a while
 * (see redial). */
static int join_mesh(tr_system *sys, const char *token, const char *members, const char *peers,
                     const char *transport)
{
    unsigned n = 1;
    for (const char *p = members; *p; p++)
        n += *p == ',';
    uint16_t *ids = malloc(n * sizeof *ids), id;
    if (!ids)
        return TR_ENOMEM;
    n = 0;
    for (const char *p = members; *p && next_member(&p, &id);)
        ids[n++] = id;
    int rc = mesh_enter(sys, transport, ids, n, NULL);
    free(ids);
    if (rc != 0)
        return rc;
    redial *r = calloc(1, sizeof *r + n * sizeof r->ids[0]);
    for (const char *p = members; *p && next_member(&p, &id);) {
        if (id == sys->node_id || in_peers(peers, id) || dial_member(sys, token, transport, id))
            continue;
        if (r)
            r->ids[r->count++] = id; /* without memory, it is only not tried again */
    }
    if (r && r->count) {
        io_loop *io;
        actor_io(sys, &io); /* made by mesh_enter */
        r->sys = sys;
        r->transport = transport;
        memcpy(r->token, token, sizeof r->token);
        r->task.run = redial_start;
        io_loop_submit(io, &r->task);
    } else {
        free(r);
    }
    return 0;
}

int tr_system_join(tr_system *sys)
{
    const char *peers = getenv("TROUPE_NODE_PEERS");
    const char *transport = getenv("TROUPE_NODE_TRANSPORT");
    const char *token = getenv("TROUPE_NODE_MESH"), *members = getenv("TROUPE_NODE_MEMBERS");
    if (!transport)
        transport = "pipe";
    if (!sys || !peers || !*peers || !transport_known(transport) || sys->node_id == 0 ||
        sys->node_id != tr_node_id_from_env() || !token != !members ||
        (token && (!token_ok(token) || !*members)))
        return TR_EINVAL;
    transport = transport_static(transport);
    uint16_t id;
    int fd;
    for (const char *p = peers; *p;) /* all of it checked before any fd is taken */
        if (!next_peer(&p, &id, &fd))
            return TR_EINVAL;
    for (const char *p = members; p && *p;)
        if (!next_member(&p, &id))
            return TR_EINVAL;
    if (token) { /* the mesh's token is ours before a peer can ask us to spawn */
        pthread_mutex_lock(&sys->io_lock);
        if (!sys->mesh && (sys->mesh = calloc(1, sizeof *sys->mesh)))
            memcpy(sys->mesh->token, token, TOKEN_LEN + 1);
        bool ok = sys->mesh && strcmp(sys->mesh->token, token) == 0;
        pthread_mutex_unlock(&sys->io_lock);
        if (!ok)
            return sys->mesh ? TR_EINVAL : TR_ENOMEM;
    }
    for (const char *p = peers; *p && next_peer(&p, &id, &fd);) {
        int rc = actor_connect(sys, fd, transport, id);
        if (rc != 0)
            return rc;
    }
    return token ? join_mesh(sys, token, members, peers, transport) : 0;
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
    char token[TOKEN_LEN + 1], *named[2] = {NULL, NULL};
    token_make(token);
    mesh m;
    int rc = mesh_env(token, ids, count, named);
    if (rc == 0)
        rc = mesh_make(&m, ids, count);
    else
        m = (mesh){0};
    for (unsigned c = 0; c < count && rc == 0; c++) {
        child_plan plan;
        children[c] = (launched_child){&all, c};
        rc = plan_child(&plan, &m, c, program, argv, transport, named);
        if (rc == 0 && io_spawn_child(&loop, plan.argv[0], plan.argv, plan.env, plan.fds,
                                      plan.nfds, on_launched_exit, &children[c]) != 0)
            rc = TR_EINVAL;
        if (rc == 0)
            all.running++;
        plan_free(&plan);
        mesh_close(&m, c);
    }
    mesh_free(&m); /* a node that failed to start is a closed peer to the others */
    free(named[0]);
    free(named[1]);
    uv_run(&loop, UV_RUN_DEFAULT); /* until every child has exited */
    uv_loop_close(&loop);
    free(children);
    free(ids);
    return rc;
}
