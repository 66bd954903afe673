/* The scheduler: worker threads running opaque runnables.
 *
 * Work made runnable on a worker goes to its `next` slot and runs next,
 * cache-warm; thieves never take it, so a chain of sends (ping-pong, a ring)
 * stays on one core instead of bouncing between two. What the slot held
 * before moves to the bottom of the worker's Chase–Lev deque: that is
 * surplus, which idle workers steal. The owner, too, takes from the top, so
 * its own queue runs oldest first and a runnable that used its whole turn
 * (pushed at the bottom) waits behind everything already queued. A chain in
 * the next slot yields to the queue after NEXT_STREAK_MAX turns.
 *
 * Moving an actor to another core costs its cache lines and those of every
 * message sent to it afterwards, more than a trivial handler costs to run.
 * So a thief steals only from a worker whose queue would take longer than
 * STEAL_DRAIN_NS to drain at the rate it is being drained (measured from the
 * `taken` counter over SAMPLE_NS), or that made no progress at all (stuck in
 * a long handler): a burst of small work stays on one warm core, a real
 * backlog spreads out.
 * An idle worker steals from a random victim, checks the inject queue (work
 * from outside the pool), spins briefly, then parks on a condition variable.
 * Parking never loses a wake-up and an idle system burns no CPU.
 *
 * The scheduler knows nothing of actors: it calls run(node) for the layer
 * above, which embeds a sched_node in what it schedules. */
#ifndef TR_SCHED_H
#define TR_SCHED_H

#include "../platform/platform.h"
#include "../platform/pool.h"
#include "deque.h"
#include "inject.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sched sched;
typedef struct sched_worker sched_worker;

/* Runs one runnable on worker w, on w's thread. */
typedef void (*sched_run_fn)(sched_node *runnable, sched_worker *w, void *arg);

/* Looks for work outside the scheduler (another process's messages) from
 * a searching worker, w's thread; work found is pushed with sched_push.
 * Returns whether it pushed any. With leave, the worker stops searching
 * instead (it found work, or parks: parking) and lets go of whatever it
 * holds to look; returns false. */
typedef bool (*sched_poll_fn)(sched_worker *w, void *arg, bool leave, bool parking);

#define SCHED_COUNTERS 4 /* per-worker counters named by the layer above */

struct sched_worker {
    deque runnable; /* aligned internally: top for thieves, bottom for us */
    /* Written by the owning worker only. */
    _Alignas(CACHE_LINE) sched_node *next; /* runs next; never stolen */
    unsigned next_streak; /* turns in a row taken from next */
    sched *sched;
    unsigned index;
    unsigned tick;
    uint32_t rng;
    pool_cache cache;
    pthread_t thread;
    /* Owner writes (relaxed), anyone reads for statistics. */
    _Atomic uint64_t counters[SCHED_COUNTERS];
    /* Quiescent states: +2 after every turn, +1 on parking and on waking,
     * so it is odd while parked. Owner writes, reclaimers read. */
    _Alignas(CACHE_LINE) _Atomic uint64_t quiescent;
    /* Runnables this worker took from its own deque. Owner writes
     * (relaxed); thieves sample it to estimate how soon the owner will drain
     * its queue. */
    _Alignas(CACHE_LINE) _Atomic uint64_t taken;
    /* A thief's samples of every worker: its taken count and when that last
     * changed, and when the thief last looked. Owner only. */
    uint64_t *seen_taken;
    uint64_t *seen_change_at;
    uint64_t seen_at;
};

enum { SCHED_RUNNING = 0, SCHED_STOP = 1, SCHED_QUIESCENT = 2 };

struct sched {
    /* Read-mostly. */
    sched_worker *workers;
    unsigned nworkers;
    sched_run_fn run;
    _Atomic(sched_poll_fn) poll; /* or NULL */
    void *arg;
    pool *pool;
    /* Shared, written when work crosses threads or workers park. */
    _Alignas(CACHE_LINE) inject_queue inject;
    _Alignas(CACHE_LINE) _Atomic unsigned sleepers;
    _Atomic unsigned spinning; /* workers searching for work, not parked */
    _Atomic int state;       /* SCHED_RUNNING / STOP / QUIESCENT */
    _Atomic int64_t holds;   /* pending things that keep the system alive */
    _Atomic bool running;
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
};

/* Sets up n workers (not started). Returns 0 or -1 when out of memory. */
int sched_init(sched *s, unsigned n, sched_run_fn run, void *arg, pool *p);
void sched_fini(sched *s);

/* Makes searching workers call poll (with the arg given to sched_init),
 * and call it with leave when they stop searching. Any thread, also while
 * the workers run (they see it within a search or two). */
void sched_set_poll(sched *s, sched_poll_fn poll);

/* Starts the workers and blocks until quiescent or stopped. Returns 0, or -1
 * when a thread could not be started (those started are stopped again).
 * Outside the pool only. */
int sched_run(sched *s);

/* Asks the workers to stop after their current runnable. Any thread. */
void sched_stop(sched *s);

/* Makes n runnable on worker w (its deque). w's thread only. */
void sched_push(sched_worker *w, sched_node *n);

/* Puts n back after it used its turn: it runs after what is already waiting
 * on w (and may be stolen meanwhile). w's thread only. */
void sched_requeue(sched_worker *w, sched_node *n);

/* Makes n runnable from outside the pool. Any thread. */
void sched_inject(sched *s, sched_node *n);

/* Something pending (an outside send under way, later a timer) that keeps
 * the system from being quiescent. Any thread. */
void sched_hold(sched *s);
void sched_release(sched *s);

/* The worker running on the calling thread, or NULL. */
sched_worker *sched_current(void);

/* Per-worker counters: add on the owning worker, sum from any thread. */
static inline void sched_count(sched_worker *w, unsigned counter, uint64_t n)
{
    /* relaxed: a statistic, written only by this worker. */
    uint64_t v = atomic_load_explicit(&w->counters[counter], memory_order_relaxed);
    atomic_store_explicit(&w->counters[counter], v + n, memory_order_relaxed);
}
uint64_t sched_sum(sched *s, unsigned counter);

/* Quiescent-state-based reclamation. A worker is inside no turn between two
 * turns and while parked. Take a snapshot after unpublishing something (into
 * snap, nworkers entries); once sched_quiescent_passed says every worker has
 * since been quiescent, no turn that could still see the old thing is
 * running, so it can be reused. Any thread. */
void sched_quiescent_snapshot(sched *s, uint64_t *snap);
bool sched_quiescent_passed(sched *s, const uint64_t *snap);

#endif
