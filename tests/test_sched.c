/* Tests for src/sched: workers, quiescence, holds, stop, parking and the
 * quiescent-state tracking, with plain runnables (no actors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "platform/pool.h"
#include "sched/sched.h"

typedef struct {
    sched_node node;
    _Atomic int runs;
    int children; /* runnables this one makes runnable when it runs */
} job;

typedef struct {
    sched s;
    pool *pool;
    job *jobs;
    size_t njobs;
    _Atomic size_t next_child;
    _Atomic long total_runs;
    _Atomic int stop_after; /* sched_stop from the run that reaches it */
} fixture;

static void run_job(sched_node *n, sched_worker *w, void *arg)
{
    fixture *f = arg;
    job *j = container_of(n, job, node);
    atomic_fetch_add(&j->runs, 1);
    long total = atomic_fetch_add(&f->total_runs, 1) + 1;
    for (int i = 0; i < j->children; i++) {
        size_t k = atomic_fetch_add(&f->next_child, 1);
        if (k < f->njobs)
            sched_push(w, &f->jobs[k].node);
    }
    if (f->stop_after && total == f->stop_after)
        sched_stop(w->sched);
}

static fixture *fixture_new(unsigned workers, size_t njobs)
{
    fixture *f = calloc(1, sizeof *f);
    f->pool = pool_new();
    f->jobs = calloc(njobs, sizeof *f->jobs);
    f->njobs = njobs;
    assert_int_equal(sched_init(&f->s, workers, run_job, f, f->pool), 0);
    return f;
}

static int setup(void **state)
{
    *state = NULL;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f) {
        sched_fini(&f->s);
        pool_free(f->pool);
        free(f->jobs);
        free(f);
    }
    return 0;
}

static void sched_run__nothing_to_do__returns(void **state)
{
    fixture *f = *state = fixture_new(3, 0);
    assert_int_equal(sched_run(&f->s), 0);
    assert_int_equal(f->s.state, SCHED_QUIESCENT);
}

static void sched_run__injected_tree_of_work__every_runnable_runs_once(void **state)
{
    /* 10 roots injected from outside; each run makes up to 3 more runnable
     * on its worker, until 30,000 have run; 4 workers on this machine's 2
     * cores, so stealing and parking both happen. */
    enum { N = 30000, ROOTS = 10 };
    fixture *f = *state = fixture_new(4, N);
    for (size_t i = 0; i < N; i++)
        f->jobs[i].children = 3;
    f->next_child = ROOTS;
    for (size_t i = 0; i < ROOTS; i++)
        sched_inject(&f->s, &f->jobs[i].node);
    assert_int_equal(sched_run(&f->s), 0);
    assert_int_equal(f->total_runs, N);
    for (size_t i = 0; i < N; i++)
        if (f->jobs[i].runs != 1)
            fail_msg("job %zu ran %d times", i, f->jobs[i].runs);
}

static void sched_stop__from_a_runnable__run_returns_with_work_left(void **state)
{
    enum { N = 1000 };
    fixture *f = *state = fixture_new(2, N);
    for (size_t i = 0; i < N; i++)
        sched_inject(&f->s, &f->jobs[i].node);
    f->stop_after = 10;
    assert_int_equal(sched_run(&f->s), 0);
    long ran = f->total_runs;
    assert_true(ran >= 10 && ran < N);
    /* What was left is still queued: a second run finishes it. */
    f->stop_after = 0;
    assert_int_equal(sched_run(&f->s), 0);
    assert_int_equal(f->total_runs, N);
}

typedef struct {
    fixture *f;
    int delay_ms;
} releaser_arg;

static void *release_later(void *p)
{
    releaser_arg *a = p;
    struct timespec t = {0, a->delay_ms * 1000000L};
    nanosleep(&t, NULL);
    sched_inject(&a->f->s, &a->f->jobs[0].node);
    sched_release(&a->f->s);
    return NULL;
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sched_hold__keeps_run_alive_and_idle_workers_burn_no_cpu(void **state)
{
    fixture *f = *state = fixture_new(4, 1);
    sched_hold(&f->s); /* as a pending timer would */
    releaser_arg a = {f, 300};
    pthread_t t;
    pthread_create(&t, NULL, release_later, &a);
    double cpu0 = cpu_seconds();
    assert_int_equal(sched_run(&f->s), 0);
    double cpu = cpu_seconds() - cpu0;
    pthread_join(t, NULL);
    /* run waited for the hold, then ran the work handed in with it */
    assert_int_equal(f->total_runs, 1);
    /* 4 workers idle for 300 ms: parked, not spinning (spinning would use
     * about 2 CPU-seconds per second here). Not under valgrind, which runs
     * one thread at a time and makes every instruction dear. */
    if (!getenv("TR_UNDER_VALGRIND") && cpu > 0.05)
        fail_msg("idle workers used %.3f CPU seconds in 0.3 s", cpu);
}

static void quiescent__passes_once_every_worker_was_between_turns(void **state)
{
    fixture *f = *state = fixture_new(2, 0);
    sched *s = &f->s;
    uint64_t snap[2];
    /* worker 0 in a turn (even), worker 1 parked (odd) */
    s->workers[0].quiescent = 4;
    s->workers[1].quiescent = 7;
    sched_quiescent_snapshot(s, snap);
    assert_false(sched_quiescent_passed(s, snap)); /* worker 0 still in it */
    s->workers[1].quiescent = 8;                   /* woke up: irrelevant */
    assert_false(sched_quiescent_passed(s, snap));
    s->workers[0].quiescent = 6; /* finished that turn */
    assert_true(sched_quiescent_passed(s, snap));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sched_run__nothing_to_do__returns, setup, teardown),
        cmocka_unit_test_setup_teardown(
            sched_run__injected_tree_of_work__every_runnable_runs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_stop__from_a_runnable__run_returns_with_work_left,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            sched_hold__keeps_run_alive_and_idle_workers_burn_no_cpu, setup, teardown),
        cmocka_unit_test_setup_teardown(quiescent__passes_once_every_worker_was_between_turns,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
