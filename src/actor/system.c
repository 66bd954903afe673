/* The system: configuration, lifecycle and statistics. */
#include "actor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_BATCH 64
#define MAX_WORKERS 1024

void tr_config_init(tr_config *cfg)
{
    if (cfg)
        *cfg = (tr_config){0};
}

int tr_system_new(const tr_config *cfg, tr_system **out)
{
    tr_config c;
    tr_config_init(&c);
    if (cfg)
        c = *cfg;
    if (!out)
        return TR_EINVAL;
    *out = NULL;
    if (c.workers > MAX_WORKERS ||
        (c.node_name && (!*c.node_name || strlen(c.node_name) > TR_NAME_MAX)))
        return TR_EINVAL;
    unsigned workers = c.workers ? c.workers : platform_cpu_count();
    tr_system *sys = aligned_alloc(CACHE_LINE, sizeof *sys);
    if (!sys)
        return TR_ENOMEM;
    sys->names = NULL;
    sys->batch = c.batch ? c.batch : DEFAULT_BATCH;
    sys->node_id = c.node_id;
    atomic_init(&sys->closing, false);
    atomic_init(&sys->outside_spawned, 0);
    atomic_init(&sys->outside_exited, 0);
    atomic_init(&sys->dead_letters, 0);
    atomic_init(&sys->next_ref, 0);
    pthread_mutex_init(&sys->io_lock, NULL);
    sys->io = NULL;
    sys->timers = NULL;
    sys->node = NULL;
    sys->remote = NULL;
    sys->mesh = NULL;
    sys->heartbeat_ms = c.heartbeat_ms ? c.heartbeat_ms : 1000;
    if (c.node_name)
        strcpy(sys->node_name, c.node_name);
    else /* cut to fit: a name for people reading logs, not an identity */
        snprintf(sys->node_name, sizeof sys->node_name, "%.50s[%ld]",
                 program_invocation_short_name, (long)getpid());
    atomic_init(&sys->late_replies, 0);
    atomic_init(&sys->overflowed, 0);
    sys->pool = pool_new();
    if (!sys->pool) {
        free(sys);
        return TR_ENOMEM;
    }
    table_init(&sys->table);
    sys->limbo = calloc(workers, sizeof *sys->limbo);
    uint64_t *snapshots = calloc((size_t)workers * workers, sizeof *snapshots);
    if (!sys->limbo || !snapshots || names_init(sys) != 0 ||
        sched_init(&sys->sched, workers, actor_run, sys, sys->pool) != 0) {
        names_fini(sys);
        free(snapshots);
        free(sys->limbo);
        table_fini(&sys->table);
        pool_free(sys->pool);
        free(sys);
        return TR_ENOMEM;
    }
    for (unsigned i = 0; i < workers; i++)
        sys->limbo[i].snapshot = snapshots + (size_t)i * workers;
    *out = sys;
    return 0;
}

int tr_system_run(tr_system *sys)
{
    if (!sys)
        return TR_EINVAL;
    if (sched_current())
        return TR_EBUSY; /* from a handler: would wait for itself */
    actor_remote_running(sys, true);
    int rc = sched_run(&sys->sched);
    if (rc == -2)
        return TR_EBUSY;
    actor_remote_running(sys, false); /* no actor drains: no connection waits for one */
    actor_limbo_flush(sys); /* the workers have stopped: nothing can race */
    return rc == 0 ? 0 : TR_ETHREAD;
}

void tr_system_stop(tr_system *sys)
{
    if (sys)
        sched_stop(&sys->sched);
}

void tr_system_free(tr_system *sys)
{
    if (!sys)
        return;
    atomic_store(&sys->closing, true);
    actor_remote_goodbye(sys); /* what was sent to other nodes reaches them */
    actor_io_free(sys); /* closes timers and connections */
    actor_limbo_flush(sys);
    actor_shutdown_all(sys);
    actor_remote_free(sys);
    actor_mesh_free(sys);
    pthread_mutex_destroy(&sys->io_lock);
    free(sys->limbo[0].snapshot);
    free(sys->limbo);
    names_fini(sys);
    sched_fini(&sys->sched);
    table_fini(&sys->table);
    pool_free(sys->pool);
    free(sys);
}

void tr_system_stats(tr_system *sys, tr_stats *out)
{
    if (!sys || !out)
        return;
    sched *s = &sys->sched;
    *out = (tr_stats){
        .spawned = sched_sum(s, COUNT_SPAWNED) + atomic_load(&sys->outside_spawned),
        .exited = sched_sum(s, COUNT_EXITED) + atomic_load(&sys->outside_exited),
        .delivered = sched_sum(s, COUNT_DELIVERED),
        .dead_letters = atomic_load(&sys->dead_letters),
        .late_replies = atomic_load(&sys->late_replies),
        .overflowed = atomic_load(&sys->overflowed),
        .workers = s->nworkers,
    };
    actor_remote_stats(sys, out);
}
