/* Tests for src/msg and src/platform/pool.c: messages and their memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "msg/msg.h"
#include "platform/pool.h"

static void msg_new__copies_payload_and_type(void **state)
{
    (void)state;
    char text[] = "hello";
    tr_msg *m = tr_msg_new(42, text, sizeof text);
    assert_non_null(m);
    text[0] = 'j'; /* the message holds a copy */
    assert_int_equal(tr_msg_type(m), 42);
    assert_int_equal(tr_msg_size(m), sizeof text);
    assert_string_equal(tr_msg_data(m), "hello");
    assert_int_equal(tr_msg_flags(m), 0);
    tr_msg_unref(m);
}

static void msg_new__empty_and_large_payloads(void **state)
{
    (void)state;
    tr_msg *empty = tr_msg_new(1, NULL, 0);
    assert_non_null(empty);
    assert_int_equal(tr_msg_size(empty), 0);
    tr_msg_unref(empty);
    size_t big = 1 << 20;
    char *data = malloc(big);
    memset(data, 0x5a, big);
    tr_msg *m = tr_msg_new(2, data, big);
    assert_non_null(m);
    assert_memory_equal(tr_msg_data(m), data, big);
    tr_msg_unref(m);
    free(data);
}

static void msg_alloc__payload_built_in_place(void **state)
{
    (void)state;
    void *p = NULL;
    tr_msg *m = tr_msg_alloc(3, 300, &p); /* a larger size class */
    assert_non_null(m);
    assert_ptr_equal(p, tr_msg_data(m));
    memset(p, 0x7e, 300);
    assert_int_equal(tr_msg_size(m), 300);
    assert_int_equal(((const unsigned char *)tr_msg_data(m))[299], 0x7e);
    tr_msg_unref(m);
    assert_null(tr_msg_alloc(1, (size_t)UINT32_MAX + 1, &p)); /* over 4 GiB */
}

static void msg_ref__keeps_message_until_last_unref(void **state)
{
    (void)state;
    tr_msg *m = tr_msg_new(7, "abc", 4);
    tr_msg *r1 = tr_msg_ref(m), *r2 = tr_msg_ref(m);
    assert_ptr_equal(r1, m);
    assert_int_equal(atomic_load(&m->refs), 3);
    tr_msg_unref(r1);
    tr_msg_unref(r2);
    assert_int_equal(atomic_load(&m->refs), 1);
    assert_string_equal(tr_msg_data(m), "abc"); /* still alive */
    tr_msg_unref(m);
    tr_msg_unref(NULL); /* accepted */
}

static void msg_link__only_reference__uses_embedded_link(void **state)
{
    (void)state;
    tr_msg *m = tr_msg_new(1, NULL, 0);
    msg_link *link = msg_link_for_send(m, TR_ADDR_NONE);
    assert_ptr_equal(link, &m->link);
    msg_link_release(link);
}

static void msg_link__shared_message__gets_envelope_per_delivery(void **state)
{
    (void)state;
    tr_msg *m = tr_msg_new(1, "x", 2);
    tr_msg *second = tr_msg_ref(m);
    msg_link *a = msg_link_for_send(m, (tr_addr){5});
    msg_link *b = msg_link_for_send(second, (tr_addr){6});
    assert_ptr_not_equal(a, &m->link);
    assert_ptr_equal(a->msg, m);
    assert_ptr_equal(b->msg, m);
    assert_int_equal(a->from.bits, 5);
    msg_link_release(a);
    msg_link_release(b); /* frees the message: ASan/valgrind check the count */
}

static void msg_set_local__sets_flag(void **state)
{
    (void)state;
    tr_msg *m = tr_msg_new(1, NULL, 0);
    tr_msg_set_local(m);
    assert_true(tr_msg_flags(m) & TR_MSG_LOCAL);
    tr_msg_unref(m);
}

static void msg_msgpack__round_trips_an_object(void **state)
{
    (void)state;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1234);
    msgpack_pack_str_with_body(&pk, "hi", 2);
    tr_msg *m = tr_msg_new_msgpack(9, &buf);
    msgpack_sbuffer_destroy(&buf);
    assert_non_null(m);
    assert_true(tr_msg_flags(m) & TR_MSG_MSGPACK);
    msgpack_unpacked up;
    assert_int_equal(tr_msg_unpack(m, &up), 0);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(up.data.via.array.size, 2);
    assert_int_equal(up.data.via.array.ptr[0].via.u64, 1234);
    assert_memory_equal(up.data.via.array.ptr[1].via.str.ptr, "hi", 2);
    msgpack_unpacked_destroy(&up);
    tr_msg_unref(m);
}

static void msg_unpack__garbage__returns_eformat(void **state)
{
    (void)state;
    const unsigned char truncated[] = {0x92, 0x01}; /* array of 2, one element */
    tr_msg *m = tr_msg_new(1, truncated, sizeof truncated);
    msgpack_unpacked up;
    assert_int_equal(tr_msg_unpack(m, &up), TR_EFORMAT);
    msgpack_unpacked_destroy(&up);
    tr_msg_unref(m);
    const unsigned char two[] = {0x01, 0x02}; /* two objects, not one */
    m = tr_msg_new(1, two, sizeof two);
    assert_int_equal(tr_msg_unpack(m, &up), TR_EFORMAT);
    msgpack_unpacked_destroy(&up);
    tr_msg_unref(m);
    assert_int_equal(tr_msg_unpack(NULL, &up), TR_EINVAL);
}

static void msg_unpack__hostile_sizes__rejected_before_allocating(void **state)
{
    (void)state;
    /* An array32 announcing 4 billion elements in 5 bytes: msgpack-c alone
     * would try to allocate about 100 GB. */
    const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const unsigned char huge_str[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
    const unsigned char huge_map[] = {0xdf, 0x10, 0x00, 0x00, 0x00, 0x01, 0x02};
    const unsigned char unused_type[] = {0xc1};
    assert_int_equal(msgpack_check(huge_array, sizeof huge_array), TR_EFORMAT);
    assert_int_equal(msgpack_check(huge_str, sizeof huge_str), TR_EFORMAT);
    assert_int_equal(msgpack_check(huge_map, sizeof huge_map), TR_EFORMAT);
    assert_int_equal(msgpack_check(unused_type, 1), TR_EFORMAT);
    tr_msg *m = tr_msg_new(1, huge_array, sizeof huge_array);
    msgpack_unpacked up;
    assert_int_equal(tr_msg_unpack(m, &up), TR_EFORMAT);
    msgpack_unpacked_destroy(&up);
    tr_msg_unref(m);
    /* and what is well formed passes, nested containers included */
    const unsigned char ok[] = {0x82, 0xa1, 'a', 0x93, 0x01, 0xcd, 0x01, 0x00, 0xc0, 0xa1, 'b', 0xc3};
    assert_int_equal(msgpack_check(ok, sizeof ok), 0);
    assert_int_equal(msgpack_check(ok, sizeof ok - 1), TR_EFORMAT); /* truncated */
}

static void pool_class_of__maps_sizes_to_classes(void **state)
{
    (void)state;
    assert_int_equal(pool_class_of(1), 0);
    assert_int_equal(pool_class_of(64), 0);
    assert_int_equal(pool_class_of(65), 1);
    assert_int_equal(pool_class_of(POOL_MAX_BLOCK), POOL_CLASSES - 1);
    assert_int_equal(pool_class_of(POOL_MAX_BLOCK + 1), -1);
}

/* Blocks allocated on one bound thread and freed on another come back. */
typedef struct {
    pool *p;
    void **blocks;
    int n;
} pool_arg;

static void *free_on_other_thread(void *arg)
{
    pool_arg *a = arg;
    pool_cache cache;
    pool_bind_thread(a->p, &cache);
    for (int i = 0; i < a->n; i++)
        pool_release(a->p, 1, a->blocks[i]);
    pool_unbind_thread();
    return NULL;
}

static void pool__blocks_cross_threads_and_are_reused(void **state)
{
    (void)state;
    pool *p = pool_new();
    pool_cache cache;
    pool_bind_thread(p, &cache);
    enum { N = 1000 };
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = pool_alloc(p, 1);
        assert_non_null(blocks[i]);
        assert_int_equal((uintptr_t)blocks[i] % 64, 0);
        memset(blocks[i], i & 0xff, 128);
    }
    pool_arg arg = {p, blocks, N};
    pthread_t t;
    pthread_create(&t, NULL, free_on_other_thread, &arg);
    pthread_join(t, NULL);
    for (int i = 0; i < N; i++) { /* now served from the depot */
        blocks[i] = pool_alloc(p, 1);
        assert_non_null(blocks[i]);
    }
    for (int i = 0; i < N; i++)
        pool_release(p, 1, blocks[i]);
    void *unbound = NULL;
    pool_unbind_thread();
    unbound = pool_alloc(p, 0); /* a thread without a cache uses the depot */
    assert_non_null(unbound);
    pool_release(p, 0, unbound);
    pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(msg_new__copies_payload_and_type),
        cmocka_unit_test(msg_new__empty_and_large_payloads),
        cmocka_unit_test(msg_alloc__payload_built_in_place),
        cmocka_unit_test(msg_ref__keeps_message_until_last_unref),
        cmocka_unit_test(msg_link__only_reference__uses_embedded_link),
        cmocka_unit_test(msg_link__shared_message__gets_envelope_per_delivery),
        cmocka_unit_test(msg_set_local__sets_flag),
        cmocka_unit_test(msg_msgpack__round_trips_an_object),
        cmocka_unit_test(msg_unpack__garbage__returns_eformat),
        cmocka_unit_test(msg_unpack__hostile_sizes__rejected_before_allocating),
        cmocka_unit_test(pool_class_of__maps_sizes_to_classes),
        cmocka_unit_test(pool__blocks_cross_threads_and_are_reused),
    };
    return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
