/* Worker threads, stealing, parking and quiescence. */
#include "sched.h"

#include <sched.h>

#include <stdlib.h>
#include <string.h>

#define FAIRNESS_TICK 61   /* every so many turns, the inject queue goes first */
#define NEXT_STREAK_MAX 64 /* turns in a row from the next slot */
#define SEARCH_NS 100000  /* searching this long before parking */
#define SEARCH_HOT_NS 5000 /* of which spinning without yielding the core */
#define STEAL_DRAIN_NS 200000 /* steal a queue that needs longer to drain */
#define SAMPLE_NS 10000       /* how often thieves sample their victims */
#define SAMPLE_STALE_NS 10000000 /* samples older than this are retaken */

static _Thread_local sched_worker *current_worker;

sched_worker *sched_current(void) { return current_worker; }

static void free_workers(sched *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        deque_fini(&s->workers[i].runnable); /* safe on a zeroed deque */
        free(s->workers[i].seen_taken);
        free(s->workers[i].seen_change_at);
    }
    free(s->workers);
}

int sched_init(sched *s, unsigned n, sched_run_fn run, void *arg, pool *p)
{
    /* Aligned like the type: a worker's lines are its own, never shared
     * with a neighbour's (calloc aligns to 16 bytes only). */
    s->workers = aligned_alloc(CACHE_LINE, n * sizeof *s->workers);
    if (!s->workers)
        return -1;
    memset(s->workers, 0, n * sizeof *s->workers);
    s->nworkers = n;
    s->run = run;
    s->arg = arg;
    s->pool = p;
    for (unsigned i = 0; i < n; i++) {
        sched_worker *w = &s->workers[i];
        w->seen_taken = calloc(n, sizeof *w->seen_taken);
        w->seen_change_at = calloc(n, sizeof *w->seen_change_at);
        if (!w->seen_taken || !w->seen_change_at || deque_init(&w->runnable, 10) != 0) {
            free_workers(s);
            return -1;
        }
        w->sched = s;
        w->index = i;
        w->rng = 0x9e3779b9u * (i + 1);
    }
    inject_init(&s->inject);
    atomic_init(&s->sleepers, 0);
    atomic_init(&s->spinning, 0);
    atomic_init(&s->state, SCHED_RUNNING);
    atomic_init(&s->holds, 0);
    atomic_init(&s->running, false);
    atomic_init(&s->poll, NULL);
    pthread_mutex_init(&s->park_lock, NULL);
    pthread_cond_init(&s->park_cond, NULL);
    return 0;
}

void sched_fini(sched *s)
{
    free_workers(s);
    inject_fini(&s->inject);
    pthread_mutex_destroy(&s->park_lock);
    pthread_cond_destroy(&s->park_cond);
}

uint64_t sched_sum(sched *s, unsigned counter)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        sum += atomic_load_explicit(&s->workers[i].counters[counter], memory_order_relaxed);
    return sum;
}

/* ---- quiescent states ------------------------------------------------ */

static void quiescent_add(sched_worker *w, uint64_t n)
{
    /* release: everything this worker did in its turn (a late push into a
     * retired mailbox, say) happens before a reclaimer that sees the new
     * count. Only the owner writes it. */
    uint64_t q = atomic_load_explicit(&w->quiescent, memory_order_relaxed);
    atomic_store_explicit(&w->quiescent, q + n, memory_order_release);
}

void sched_quiescent_snapshot(sched *s, uint64_t *snap)
{
    /* seq_cst: ordered after the caller's unpublishing (its seq_cst RMW), so
     * a turn that starts after this read sees the thing gone. */
    for (unsigned i = 0; i < s->nworkers; i++)
        snap[i] = atomic_load(&s->workers[i].quiescent);
}

bool sched_quiescent_passed(sched *s, const uint64_t *snap)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        /* acquire: pairs with the release in quiescent_add. */
        uint64_t now = atomic_load_explicit(&s->workers[i].quiescent, memory_order_acquire);
        if (now == snap[i] && !(snap[i] & 1))
            return false; /* still in the turn it was in (or between turns) */
    }
    return true;
}

/* ---- waking ---------------------------------------------------------- */

/* Wakes a parked worker for new work, unless one is already searching: it
 * will find the work, and a single searcher at a time keeps a burst of
 * pushes from waking (and paying a futex call for) every sleeper. */
static void wake_one(sched *s)
{
    /* seq_cst (with the fence): the push before these reads and a searcher's
     * spinning-- then sleepers++ before its last look at the queues (in park)
     * are ordered, so either we see a searcher or a sleeper, or it sees the
     * push. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&s->spinning) != 0 || atomic_load(&s->sleepers) == 0)
        return;
    pthread_mutex_lock(&s->park_lock);
    pthread_cond_signal(&s->park_cond);
    pthread_mutex_unlock(&s->park_lock);
}

/* Puts surplus work where thieves can take it, and calls one. */
static void push_surplus(sched_worker *w, sched_node *n)
{
    if (deque_push(&w->runnable, n) != 0) {
        sched_inject(w->sched, n); /* out of memory to grow: never lose it */
        return;
    }
    wake_one(w->sched);
}

void sched_push(sched_worker *w, sched_node *n)
{
    sched_node *previous = w->next;
    w->next = n;
    if (previous)
        push_surplus(w, previous);
}

void sched_requeue(sched_worker *w, sched_node *n)
{
    /* Not new work, so no one is woken: this worker gets back to it soon. */
    if (deque_push(&w->runnable, n) != 0)
        sched_inject(w->sched, n);
}

void sched_inject(sched *s, sched_node *n)
{
    inject_push(&s->inject, n);
    wake_one(s);
}

void sched_set_poll(sched *s, sched_poll_fn poll)
{
    atomic_store_explicit(&s->poll, poll, memory_order_release);
}

void sched_hold(sched *s) { atomic_fetch_add(&s->holds, 1); }

void sched_release(sched *s)
{
    /* seq_cst: pairs with the last parker's read of holds (see park). */
    if (atomic_fetch_sub(&s->holds, 1) != 1)
        return;
    if (atomic_load(&s->sleepers) != s->nworkers)
        return;
    /* Everyone sleeps: let one look again, it may find the system quiescent. */
    pthread_mutex_lock(&s->park_lock);
    pthread_cond_signal(&s->park_cond);
    pthread_mutex_unlock(&s->park_lock);
}

void sched_stop(sched *s)
{
    int expected = SCHED_RUNNING;
    atomic_compare_exchange_strong(&s->state, &expected, SCHED_STOP);
    pthread_mutex_lock(&s->park_lock);
    pthread_cond_broadcast(&s->park_cond);
    pthread_mutex_unlock(&s->park_lock);
}

/* ---- finding work ---------------------------------------------------- */

/* True when victim's queue would take its owner longer than STEAL_DRAIN_NS
 * to drain at the rate seen since the thief's last look, or when the owner
 * has taken nothing for that long (it is stuck in a long handler). */
static bool worth_stealing(sched_worker *thief, sched_worker *victim, uint64_t now,
                           uint64_t elapsed)
{
    int64_t size = deque_size(&victim->runnable);
    if (size == 0)
        return false;
    unsigned v = victim->index;
    /* relaxed: a rate estimate; the deque itself orders the stolen item. */
    uint64_t taken = atomic_load_explicit(&victim->taken, memory_order_relaxed);
    uint64_t progress = taken - thief->seen_taken[v];
    if (progress == 0)
        return now - thief->seen_change_at[v] >= STEAL_DRAIN_NS;
    thief->seen_taken[v] = taken;
    thief->seen_change_at[v] = now;
    return (uint64_t)size * elapsed > STEAL_DRAIN_NS * progress;
}

/* One look at every other worker, SAMPLE_NS after the last. */
static sched_node *steal_once(sched_worker *w, uint64_t now)
{
    sched *s = w->sched;
    unsigned n = s->nworkers;
    uint64_t elapsed = now - w->seen_at;
    if (n < 2 || elapsed < SAMPLE_NS)
        return NULL;
    w->seen_at = now;
    unsigned start = platform_rand(&w->rng) % n;
    for (unsigned i = 0; i < n; i++) {
        sched_worker *victim = &s->workers[(start + i) % n];
        if (victim == w || !worth_stealing(w, victim, now, elapsed))
            continue;
        void *x = deque_steal(&victim->runnable);
        if (x && x != DEQUE_ABORT) {
            /* More left there: let another sleeper help too. */
            if (deque_size(&victim->runnable) > 0) {
                atomic_fetch_sub(&s->spinning, 1);
                wake_one(s);
                atomic_fetch_add(&s->spinning, 1);
            }
            return x;
        }
    }
    return NULL;
}

/* The oldest runnable in w's own deque. */
static inline __attribute__((always_inline)) sched_node *take_own(sched_worker *w)
{
    for (;;) {
        void *x = deque_steal(&w->runnable);
        if (x == DEQUE_ABORT)
            continue;
        if (x) /* relaxed: a statistic for thieves, written only here */
            atomic_store_explicit(&w->taken,
                                  atomic_load_explicit(&w->taken, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        return x;
    }
}

/* What the poll hook found and pushed onto w, or NULL; *delivered says
 * whether it found anything (maybe for actors already queued elsewhere). */
static sched_node *poll_once(sched_worker *w, sched_poll_fn poll, bool *delivered)
{
    if (!(*delivered = poll(w, w->sched->arg, false, false)))
        return NULL;
    sched_node *n = w->next;
    w->next = NULL;
    return n ? n : take_own(w);
}

/* Searches other workers and the inject queue for a while, counted as
 * spinning so pushers need not wake anyone meanwhile. */
static sched_node *search(sched_worker *w)
{
    sched *s = w->sched;
    sched_node *n = NULL;
    quiescent_add(w, 1); /* odd: searching, inside no turn */
    atomic_fetch_add(&s->spinning, 1);
    /* acquire: pairs with sched_set_poll; read once a search (set once) */
    sched_poll_fn poll = atomic_load_explicit(&s->poll, memory_order_acquire);
    uint64_t start = platform_now_ns(), now = start;
    /* Samples outlive a search (a victim stuck in a long handler is seen
     * as stalled across several); after a long park they are stale. */
    if (start - w->seen_at > SAMPLE_STALE_NS) {
        for (unsigned i = 0; i < s->nworkers; i++) {
            w->seen_taken[i] = atomic_load_explicit(&s->workers[i].taken, memory_order_relaxed);
            w->seen_change_at[i] = start;
        }
        w->seen_at = start;
    }
    while (now - start < SEARCH_NS) {
        if ((n = steal_once(w, now)) || (n = inject_pop(&s->inject)))
            break;
        bool delivered = false;
        if (poll && (n = poll_once(w, poll, &delivered)))
            break;
        if (delivered) /* reading for busy actors is work: not idle yet */
            start = now;
        if (atomic_load_explicit(&s->state, memory_order_relaxed) != SCHED_RUNNING)
            break;
        /* Past the first microseconds, give the core to any thread that
         * has work (an io thread, another process's worker) instead of
         * spinning it away: where cores are spare this costs nothing. */
        /* One pause a look, not more: a pause takes 25 ns on an AMD EPYC
         * (up to 140 cycles on recent Intel cores), and the 16 a look this
         * had kept looks 0.4 µs apart, so a message from another process
         * waited 0.2 µs on average to be seen: half of what one hop of a
         * cross-process ping-pong costs (round trips 0.8 -> 0.4 µs). */
        if (now - start < SEARCH_HOT_NS)
            cpu_relax();
        else
            sched_yield();
        now = platform_now_ns();
    }
    if (poll)
        poll(w, s->arg, true, n == NULL); /* let go of polling */
    atomic_fetch_sub(&s->spinning, 1);
    quiescent_add(w, 1);
    return n;
}

static sched_node *next_runnable(sched_worker *w)
{
    sched *s = w->sched;
    sched_node *n = w->next;
    if (n) {
        w->next = NULL;
        if (++w->next_streak <= NEXT_STREAK_MAX)
            return n;
        sched_requeue(w, n); /* a long chain: let the queue run */
    }
    w->next_streak = 0;
    if (++w->tick % FAIRNESS_TICK == 0 && (n = inject_pop(&s->inject)))
        return n;
    if ((n = take_own(w)) || (n = inject_pop(&s->inject)))
        return n;
    return search(w);
}

/* ---- parking and quiescence ------------------------------------------ */

static bool work_visible(sched *s)
{
    if (inject_size(&s->inject))
        return true;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (deque_size(&s->workers[i].runnable))
            return true;
    return false;
}

/* Parks w until there is work (true) or the system stops (false). The last
 * worker to park finds the system quiescent when no work is visible and
 * nothing is held: every other worker sleeps, so nothing can make new work
 * except a holder, and holders release only after scheduling theirs. */
static bool park(sched_worker *w)
{
    sched *s = w->sched;
    bool keep_running = true;
    quiescent_add(w, 1); /* odd: parked, inside no turn */
    pthread_mutex_lock(&s->park_lock);
    atomic_fetch_add(&s->sleepers, 1);
    for (;;) {
        if (atomic_load(&s->state) != SCHED_RUNNING) {
            keep_running = false;
            break;
        }
        if (work_visible(s))
            break;
        if (atomic_load(&s->sleepers) == s->nworkers && atomic_load(&s->holds) == 0) {
            atomic_store(&s->state, SCHED_QUIESCENT);
            pthread_cond_broadcast(&s->park_cond);
            keep_running = false;
            break;
        }
        pthread_cond_wait(&s->park_cond, &s->park_lock);
    }
    atomic_fetch_sub(&s->sleepers, 1);
    pthread_mutex_unlock(&s->park_lock);
    quiescent_add(w, 1);
    return keep_running;
}

static void *worker_main(void *arg)
{
    sched_worker *w = arg;
    sched *s = w->sched;
    current_worker = w;
    pool_bind_thread(s->pool, &w->cache);
    for (;;) {
        if (atomic_load_explicit(&s->state, memory_order_relaxed) != SCHED_RUNNING)
            break;
        sched_node *n = next_runnable(w);
        if (n) {
            s->run(n, w, s->arg);
            quiescent_add(w, 2);
        }
        else if (!park(w))
            break;
    }
    pool_unbind_thread();
    current_worker = NULL;
    return NULL;
}

int sched_run(sched *s)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&s->running, &expected, true))
        return -2;
    atomic_store(&s->state, SCHED_RUNNING);
    unsigned started = 0;
    int rc = 0;
    for (; started < s->nworkers; started++) {
        if (pthread_create(&s->workers[started].thread, NULL, worker_main,
                           &s->workers[started]) != 0) {
            sched_stop(s);
            rc = -1;
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(s->workers[i].thread, NULL);
    /* Work left on a stopped worker's own lists moves to the inject queue so
     * a later run finds it. */
    for (unsigned i = 0; i < s->nworkers; i++) {
        sched_worker *w = &s->workers[i];
        sched_node *n;
        if (w->next)
            inject_push(&s->inject, w->next);
        w->next = NULL;
        while ((n = deque_pop(&w->runnable)))
            inject_push(&s->inject, n);
    }
    atomic_store(&s->running, false);
    return rc;
}
