/* Tests for src/node/wire.c (the frame codec of docs/wire.md) and for
 * printing and parsing addresses. Input from a peer must never crash: a
 * malformed frame is an error with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/wire.h"

static wire_header sample(uint32_t length)
{
    return (wire_header){.op = WIRE_SEND, .flags = WIRE_FLAG_MSGPACK, .credit = 7,
                         .length = length, .type = 0xabcdef01u,
                         .from = 0x0102030405060708ull, .to = 0x1112131415161718ull};
}

static void header__round_trips_every_field_little_endian(void **state)
{
    (void)state;
    unsigned char b[WIRE_HEADER_SIZE];
    wire_header h = sample(5), d;
    wire_encode_header(&h, b);
    assert_memory_equal(b, "TR\x01\x02", 4);
    assert_int_equal(b[8], 5);   /* length, least significant byte first */
    assert_int_equal(b[16], 8);  /* from */
    assert_int_equal(wire_decode_header(b, 100, &d, NULL), 0);
    assert_int_equal(d.op, h.op);
    assert_int_equal(d.flags, h.flags);
    assert_int_equal(d.credit, h.credit);
    assert_int_equal(d.length, h.length);
    assert_int_equal(d.type, h.type);
    assert_int_equal(d.from, h.from);
    assert_int_equal(d.to, h.to);
}

static void expect_bad_header(void (*corrupt)(unsigned char *), uint32_t max, const char *reason)
{
    unsigned char b[WIRE_HEADER_SIZE];
    wire_header h = sample(10), d;
    wire_encode_header(&h, b);
    corrupt(b);
    const char *why = NULL;
    assert_int_equal(wire_decode_header(b, max, &d, &why), TR_EPROTO);
    assert_non_null(why);
    assert_non_null(strstr(why, reason));
}

static void bad_magic(unsigned char *b) { b[0] = 'X'; }
static void bad_version(unsigned char *b) { b[2] = 2; }
static void op_zero(unsigned char *b) { b[3] = 0; }
static void op_unknown(unsigned char *b) { b[3] = WIRE_OP_LAST + 1; }
static void reserved_flag(unsigned char *b) { b[5] = 0x80; }
static void no_change(unsigned char *b) { (void)b; }

static void header__malformed__eproto_with_a_reason(void **state)
{
    (void)state;
    expect_bad_header(bad_magic, 100, "magic");
    expect_bad_header(bad_version, 100, "version");
    expect_bad_header(op_zero, 100, "operation");
    expect_bad_header(op_unknown, 100, "operation");
    expect_bad_header(reserved_flag, 100, "flag");
    expect_bad_header(no_change, 9, "limit"); /* length 10 over a limit of 9 */
}

/* Encodes `count` SEND frames with bodies "0", "11", "222", ... */
static size_t encode_stream(unsigned char *out, int count)
{
    size_t n = 0;
    for (int i = 0; i < count; i++) {
        wire_header h = sample((uint32_t)(i % 9 + 1));
        h.type = (uint32_t)i;
        wire_encode_header(&h, out + n);
        n += WIRE_HEADER_SIZE;
        memset(out + n, '0' + i % 9, h.length);
        n += h.length;
    }
    return n;
}

static void reader__frames_split_anywhere__come_out_whole_and_in_order(void **state)
{
    (void)state;
    unsigned char stream[64 * 48];
    size_t n = encode_stream(stream, 64);
    for (size_t chunk = 1; chunk <= 97; chunk += 16) { /* byte by byte, and more */
        wire_reader r;
        wire_reader_init(&r, 0);
        int next = 0;
        for (size_t off = 0; off < n; off += chunk) {
            size_t len = off + chunk > n ? n - off : chunk;
            assert_int_equal(wire_reader_feed(&r, stream + off, len), 0);
            wire_header h;
            const unsigned char *body;
            int rc;
            while ((rc = wire_reader_next(&r, &h, &body, NULL)) == 1) {
                assert_int_equal(h.type, next);
                assert_int_equal(h.length, next % 9 + 1);
                for (uint32_t k = 0; k < h.length; k++)
                    assert_int_equal(body[k], '0' + next % 9);
                next++;
            }
            assert_int_equal(rc, 0);
        }
        assert_int_equal(next, 64);
        assert_int_equal(wire_reader_finish(&r, NULL), 0);
        wire_reader_fini(&r);
    }
}

/* The same stream through wire_reader_next_in: frames come out whole and in
 * order however it is cut, and a frame wholly inside a chunk while the
 * reader holds nothing is read in place, not copied. */
static void reader_next_in__frames_split_anywhere__whole_in_order_in_place(void **state)
{
    (void)state;
    unsigned char stream[64 * 48];
    size_t n = encode_stream(stream, 64);
    size_t chunks[] = {1, 2, 17, 33, 47, 97, n}; /* byte by byte, ..., all at once */
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        size_t chunk = chunks[c];
        wire_reader r;
        wire_reader_init(&r, 0);
        int next = 0, in_place = 0;
        for (size_t off = 0; off < n; off += chunk) {
            const unsigned char *at = stream + off;
            size_t len = off + chunk > n ? n - off : chunk;
            wire_header h;
            const unsigned char *body;
            int rc;
            while ((rc = wire_reader_next_in(&r, &at, &len, &h, &body, NULL)) == 1) {
                assert_int_equal(h.type, next);
                assert_int_equal(h.length, next % 9 + 1);
                for (uint32_t k = 0; k < h.length; k++)
                    assert_int_equal(body[k], '0' + next % 9);
                in_place += body >= stream && body < stream + n;
                next++;
            }
            assert_int_equal(rc, 0);
            assert_int_equal(len, 0); /* everything taken */
        }
        assert_int_equal(next, 64);
        if (chunk == n)
            assert_int_equal(in_place, 64);
        assert_int_equal(wire_reader_finish(&r, NULL), 0);
        wire_reader_fini(&r);
    }
}

static void reader__stream_ends_inside_a_frame__truncated(void **state)
{
    (void)state;
    unsigned char stream[2 * 48];
    size_t n = encode_stream(stream, 2);
    wire_reader r;
    wire_reader_init(&r, 0);
    wire_reader_feed(&r, stream, n - 3);
    wire_header h;
    const unsigned char *body;
    assert_int_equal(wire_reader_next(&r, &h, &body, NULL), 1);
    assert_int_equal(wire_reader_next(&r, &h, &body, NULL), 0);
    const char *why = NULL;
    assert_int_equal(wire_reader_finish(&r, &why), TR_EPROTO);
    assert_non_null(strstr(why, "truncated"));
    wire_reader_fini(&r);
}

static void reader__oversized_length__rejected_before_the_body_arrives(void **state)
{
    (void)state;
    wire_reader r;
    wire_reader_init(&r, 1024);
    unsigned char b[WIRE_HEADER_SIZE];
    wire_header h = sample(UINT32_MAX);
    wire_encode_header(&h, b);
    wire_reader_feed(&r, b, sizeof b); /* 4 GiB announced, nothing sent */
    const unsigned char *body;
    const char *why = NULL;
    assert_int_equal(wire_reader_next(&r, &h, &body, &why), TR_EPROTO);
    assert_non_null(strstr(why, "limit"));
    /* the error sticks: the connection is done */
    assert_int_equal(wire_reader_next(&r, &h, &body, NULL), TR_EPROTO);
    wire_reader_fini(&r);
}

static void reader__random_bytes__error_never_crash(void **state)
{
    (void)state;
    srand(12345);
    int errors = 0;
    for (int round = 0; round < 2000; round++) {
        unsigned char junk[256];
        size_t n = (size_t)(rand() % (int)sizeof junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (unsigned char)rand();
        if (round % 2 && n >= 3) /* half start like a frame, to get further in */
            memcpy(junk, "TR\x01", 3);
        wire_reader r;
        wire_reader_init(&r, 4096);
        wire_reader_feed(&r, junk, n);
        wire_header h;
        const unsigned char *body;
        int rc;
        while ((rc = wire_reader_next(&r, &h, &body, NULL)) == 1)
            assert_true(h.length <= 4096);
        errors += rc < 0 || wire_reader_finish(&r, NULL) < 0;
        wire_reader_fini(&r);
        wire_reader_init(&r, 4096); /* and in place, in two pieces */
        const unsigned char *at = junk;
        size_t left = n / 2, rest = n - n / 2;
        while ((rc = wire_reader_next_in(&r, &at, &left, &h, &body, NULL)) == 1 ||
               (rc == 0 && rest && (left = rest, rest = 0, true)))
            if (rc == 1)
                assert_true(h.length <= 4096);
        wire_reader_fini(&r);
        wire_hello hello;
        wire_hello_decode(junk, n, &hello, NULL); /* must not crash either */
    }
    assert_true(errors > 1900);
}

static void hello__round_trips(void **state)
{
    (void)state;
    wire_hello h = {.version = WIRE_VERSION, .node = 42, .caps = 3}, d;
    strcpy(h.name, "worker-node");
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    assert_int_equal(wire_hello_encode(&h, &buf), 0);
    assert_int_equal(wire_hello_decode((unsigned char *)buf.data, buf.size, &d, NULL), 0);
    assert_int_equal(d.node, 42);
    assert_int_equal(d.caps, 3);
    assert_string_equal(d.name, "worker-node");
    /* one byte more, and it is rejected */
    msgpack_sbuffer_write(&buf, "x", 1);
    const char *why = NULL;
    assert_int_equal(wire_hello_decode((unsigned char *)buf.data, buf.size, &d, &why), TR_EPROTO);
    assert_non_null(strstr(why, "one well-formed"));
    msgpack_sbuffer_destroy(&buf);
}

static int decode_packed(void (*pack)(msgpack_packer *), const char **why)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    pack(&pk);
    wire_hello d;
    int rc = wire_hello_decode((unsigned char *)buf.data, buf.size, &d, why);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

static void kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

static void wrong_version(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    kv_uint(pk, "v", 2), kv_uint(pk, "node", 1), kv_uint(pk, "caps", 0);
    msgpack_pack_str_with_body(pk, "name", 4), msgpack_pack_str_with_body(pk, "a", 1);
}

static void node_too_big(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    kv_uint(pk, "v", 1), kv_uint(pk, "node", 70000), kv_uint(pk, "caps", 0);
    msgpack_pack_str_with_body(pk, "name", 4), msgpack_pack_str_with_body(pk, "a", 1);
}

static void repeated_key(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    kv_uint(pk, "v", 1), kv_uint(pk, "v", 1), kv_uint(pk, "caps", 0);
    msgpack_pack_str_with_body(pk, "name", 4), msgpack_pack_str_with_body(pk, "a", 1);
}

static void not_a_map(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }

static void hello__malformed__eproto(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(decode_packed(wrong_version, &why), TR_EPROTO);
    assert_non_null(strstr(why, "version"));
    assert_int_equal(decode_packed(node_too_big, &why), TR_EPROTO);
    assert_int_equal(decode_packed(repeated_key, &why), TR_EPROTO);
    assert_int_equal(decode_packed(not_a_map, &why), TR_EPROTO);
    assert_int_equal(wire_hello_decode((const unsigned char *)"", 0, &(wire_hello){0}, &why),
                     TR_EPROTO);
}

static void addr__format_and_parse_round_trip_and_reject_junk(void **state)
{
    (void)state;
    tr_addr a = {((uint64_t)7 << 48) | ((uint64_t)12345 << 26) | 678}, b;
    char text[32];
    tr_addr_format(a, text, sizeof text);
    assert_string_equal(text, "<7.678.12345>");
    assert_int_equal(tr_addr_parse(text, &b), 0);
    assert_true(tr_addr_eq(a, b));
    const char *junk[] = {"", "<", "<1.2>", "<1.2.3", "<1.2.3>x", "1.2.3", "<a.2.3>",
                          "<70000.1.1>", "<1.99999999.1>", "<1.1.9999999>", "<-1.2.3>", "< 1.2.3>"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(tr_addr_parse(junk[i], &b), TR_EINVAL);
    assert_int_equal(tr_addr_parse(NULL, &b), TR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header__round_trips_every_field_little_endian),
        cmocka_unit_test(header__malformed__eproto_with_a_reason),
        cmocka_unit_test(reader__frames_split_anywhere__come_out_whole_and_in_order),
        cmocka_unit_test(reader_next_in__frames_split_anywhere__whole_in_order_in_place),
        cmocka_unit_test(reader__stream_ends_inside_a_frame__truncated),
        cmocka_unit_test(reader__oversized_length__rejected_before_the_body_arrives),
        cmocka_unit_test(reader__random_bytes__error_never_crash),
        cmocka_unit_test(hello__round_trips),
        cmocka_unit_test(hello__malformed__eproto),
        cmocka_unit_test(addr__format_and_parse_round_trip_and_reject_junk),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
