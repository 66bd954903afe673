/* Tests for src/sched/deque.c: the Chase–Lev work-stealing deque. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <pthread.h>

#include "sched/deque.h"

#define ITEM(i) ((void *)(uintptr_t)((i) + 2)) /* never NULL or DEQUE_ABORT */
#define INDEX(x) ((uintptr_t)(x) - 2)

static void deque_pop__returns_newest_first(void **state)
{
    (void)state;
    deque d;
    assert_int_equal(deque_init(&d, 2), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(deque_push(&d, ITEM(i)), 0);
    for (int i = 2; i >= 0; i--)
        assert_ptr_equal(deque_pop(&d), ITEM(i));
    assert_null(deque_pop(&d));
    deque_fini(&d);
}

static void deque_steal__returns_oldest_first(void **state)
{
    (void)state;
    deque d;
    assert_int_equal(deque_init(&d, 2), 0);
    for (int i = 0; i < 3; i++)
        deque_push(&d, ITEM(i));
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(deque_steal(&d), ITEM(i));
    assert_null(deque_steal(&d));
    assert_int_equal(deque_size(&d), 0);
    deque_fini(&d);
}

static void deque_push__past_capacity__grows_and_keeps_order(void **state)
{
    (void)state;
    deque d;
    assert_int_equal(deque_init(&d, 1), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(deque_push(&d, ITEM(i)), 0);
    assert_int_equal(deque_size(&d), 1000);
    assert_ptr_equal(deque_steal(&d), ITEM(0));
    for (int i = 999; i >= 1; i--)
        assert_ptr_equal(deque_pop(&d), ITEM(i));
    assert_null(deque_pop(&d));
    deque_fini(&d);
}

/* ---- stress: the owner pushes and pops while thieves steal ---- */

enum { THIEVES = 4 };

typedef struct {
    deque *d;
    _Atomic unsigned char *taken;
    _Atomic int *done;
    uint64_t stolen;
} thief_arg;

static void *thief(void *p)
{
    thief_arg *a = p;
    while (!atomic_load(a->done)) {
        void *x = deque_steal(a->d);
        if (x && x != DEQUE_ABORT) {
            atomic_fetch_add(&a->taken[INDEX(x)], 1);
            a->stolen++;
        }
    }
    return NULL;
}

static void deque__steal_under_contention__every_item_taken_once(void **state)
{
    (void)state;
    const char *env = getenv("TR_STRESS_MESSAGES");
    size_t n = env ? strtoull(env, NULL, 10) : 1000000;
    deque d;
    assert_int_equal(deque_init(&d, 4), 0);
    _Atomic unsigned char *taken = calloc(n, 1);
    _Atomic int done = 0;
    pthread_t threads[THIEVES];
    thief_arg args[THIEVES];
    for (int t = 0; t < THIEVES; t++) {
        args[t] = (thief_arg){&d, taken, &done, 0};
        pthread_create(&threads[t], NULL, thief, &args[t]);
    }
    uint64_t popped = 0;
    for (size_t i = 0; i < n; i++) {
        deque_push(&d, ITEM(i));
        if (i % 3 == 0) { /* the owner takes some back, racing for the last */
            void *x = deque_pop(&d);
            if (x) {
                atomic_fetch_add(&taken[INDEX(x)], 1);
                popped++;
            }
        }
    }
    void *x;
    while ((x = deque_pop(&d))) {
        atomic_fetch_add(&taken[INDEX(x)], 1);
        popped++;
    }
    atomic_store(&done, 1);
    uint64_t total = popped;
    for (int t = 0; t < THIEVES; t++) {
        pthread_join(threads[t], NULL);
        total += args[t].stolen;
    }
    assert_int_equal(total, n);
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&taken[i]) != 1)
            fail_msg("item %zu taken %d times", i, (int)atomic_load(&taken[i]));
    free((void *)taken);
    deque_fini(&d);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(deque_pop__returns_newest_first),
        cmocka_unit_test(deque_steal__returns_oldest_first),
        cmocka_unit_test(deque_push__past_capacity__grows_and_keeps_order),
    };
    const struct CMUnitTest stress[] = {
        cmocka_unit_test(deque__steal_under_contention__every_item_taken_once),
    };
    if (argc > 1 && argv[1][0] == 's')
        return cmocka_run_group_tests_name("deque stress", stress, NULL, NULL);
    return cmocka_run_group_tests_name("deque", unit, NULL, NULL);
}
