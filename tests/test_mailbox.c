/* Tests for src/mailbox: the lock-free MPSC queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <pthread.h>

#include "mailbox/mailbox.h"
#include "platform/platform.h"

typedef struct {
    mailbox_node node;
    unsigned producer;
    uint64_t seq;
} item;

static item *pop_item(mailbox *mb)
{
    mailbox_node *n = mailbox_pop(mb);
    return n ? container_of(n, item, node) : NULL;
}

static void mailbox_pop__when_new__returns_null_and_is_empty(void **state)
{
    (void)state;
    mailbox mb;
    mailbox_init(&mb);
    assert_true(mailbox_empty(&mb));
    assert_null(mailbox_pop(&mb));
}

static void mailbox_pop__returns_items_in_push_order(void **state)
{
    (void)state;
    mailbox mb;
    mailbox_init(&mb);
    item items[5];
    for (int round = 0; round < 3; round++) { /* the stub goes round each time */
        for (int i = 0; i < 5; i++) {
            items[i].seq = (uint64_t)i;
            mailbox_push(&mb, &items[i].node);
            assert_false(mailbox_empty(&mb));
        }
        for (int i = 0; i < 5; i++) {
            item *it = pop_item(&mb);
            assert_non_null(it);
            assert_int_equal(it->seq, i);
        }
        assert_null(mailbox_pop(&mb));
        assert_true(mailbox_empty(&mb));
    }
}

static void mailbox_pop__interleaved_with_push__loses_nothing(void **state)
{
    (void)state;
    mailbox mb;
    mailbox_init(&mb);
    item items[100];
    int next_push = 0, next_pop = 0;
    while (next_pop < 100) {
        if (next_push < 100 && (next_push - next_pop < 2 || next_push % 3)) {
            items[next_push].seq = (uint64_t)next_push;
            mailbox_push(&mb, &items[next_push].node);
            next_push++;
        } else {
            item *it = pop_item(&mb);
            assert_non_null(it);
            assert_int_equal(it->seq, next_pop);
            next_pop++;
        }
    }
    assert_true(mailbox_empty(&mb));
}

/* ---- stress: many producers, one consumer ---- */

enum { PRODUCERS = 8 };

typedef struct {
    mailbox *mb;
    item *items;
    unsigned id;
    uint64_t count;
} producer_arg;

static void *producer(void *p)
{
    producer_arg *a = p;
    for (uint64_t i = 0; i < a->count; i++) {
        a->items[i].producer = a->id;
        a->items[i].seq = i;
        mailbox_push(a->mb, &a->items[i].node);
    }
    return NULL;
}

static void mailbox__eight_producers__no_loss_and_per_producer_fifo(void **state)
{
    (void)state;
    const char *env = getenv("TR_STRESS_MESSAGES");
    uint64_t count = env ? strtoull(env, NULL, 10) : 1000000;
    mailbox mb;
    mailbox_init(&mb);
    pthread_t threads[PRODUCERS];
    producer_arg args[PRODUCERS];
    for (unsigned p = 0; p < PRODUCERS; p++) {
        args[p] = (producer_arg){&mb, malloc(count * sizeof(item)), p, count};
        assert_non_null(args[p].items);
        assert_int_equal(pthread_create(&threads[p], NULL, producer, &args[p]), 0);
    }
    uint64_t expected[PRODUCERS] = {0};
    uint64_t received = 0;
    while (received < PRODUCERS * count) {
        item *it = pop_item(&mb);
        if (!it) {
            cpu_relax();
            continue;
        }
        assert_true(it->producer < PRODUCERS);
        if (it->seq != expected[it->producer])
            fail_msg("producer %u: got %llu, expected %llu", it->producer,
                     (unsigned long long)it->seq, (unsigned long long)expected[it->producer]);
        expected[it->producer]++;
        received++;
    }
    for (unsigned p = 0; p < PRODUCERS; p++) {
        pthread_join(threads[p], NULL);
        assert_int_equal(expected[p], count);
        free(args[p].items);
    }
    assert_null(mailbox_pop(&mb));
    assert_true(mailbox_empty(&mb));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(mailbox_pop__when_new__returns_null_and_is_empty),
        cmocka_unit_test(mailbox_pop__returns_items_in_push_order),
        cmocka_unit_test(mailbox_pop__interleaved_with_push__loses_nothing),
    };
    const struct CMUnitTest stress[] = {
        cmocka_unit_test(mailbox__eight_producers__no_loss_and_per_producer_fifo),
    };
    if (argc > 1 && argv[1][0] == 's')
        return cmocka_run_group_tests_name("mailbox stress", stress, NULL, NULL);
    return cmocka_run_group_tests_name("mailbox", unit, NULL, NULL);
}
