/* Tests for src/transport/offer.c: a ring's bytes offered to a reader that
 * takes whole records only (a byte of length, then that many bytes), as the
 * node layer takes whole frames. Every record must come whole and in order
 * wherever the ring's end cuts it, and a reader that stops early must find
 * the rest on its next read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/offer.h"

enum { RING = 256 }; /* small, so records often straddle its end */

typedef struct reader {
    unsigned char seen[1 << 16]; /* the records' bytes, in the order taken */
    size_t nseen;
    unsigned records;
    unsigned limit, this_read; /* limit: records one read takes (0: all) */
    unsigned offers;
} reader;

/* Takes whole records from the front of data. */
static size_t take_records(void *arg, const void *data, size_t len)
{
    reader *r = arg;
    const unsigned char *p = data;
    size_t at = 0;
    r->offers++;
    while (at < len && at + 1 + p[at] <= len && (!r->limit || r->this_read < r->limit)) {
        memcpy(r->seen + r->nseen, p + at, 1 + (size_t)p[at]);
        r->nseen += 1 + (size_t)p[at];
        at += 1 + (size_t)p[at];
        r->records++;
        r->this_read++;
    }
    return at;
}

/* A stream of records of the given lengths: byte i of record k is k+i. */
static size_t make_stream(unsigned char *out, const unsigned char *lengths, size_t count)
{
    size_t at = 0;
    for (size_t k = 0; k < count; k++) {
        out[at++] = lengths[k];
        for (size_t i = 0; i < lengths[k]; i++)
            out[at++] = (unsigned char)(k + i);
    }
    return at;
}

/* Writes len bytes of stream into the ring from position head. */
static void put(unsigned char *ring, uint64_t head, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        ring[(head + i) % RING] = p[i];
}

/* Streams records through the ring, written in pieces of `chunk` bytes and
 * read after each piece; the reader must see the stream exactly. */
static void stream_through(const unsigned char *lengths, size_t count, size_t chunk, unsigned limit)
{
    static unsigned char stream[1 << 16], ring[RING];
    static reader r;
    memset(&r, 0, sizeof r);
    r.limit = limit;
    size_t total = make_stream(stream, lengths, count);
    uint64_t head = 0, tail = 0;
    while (tail < total) {
        size_t room = RING - (size_t)(head - tail), left = total - (size_t)head;
        size_t n = chunk < room ? chunk : room;
        n = n < left ? n : left;
        put(ring, head, stream + head, n);
        head += n;
        unsigned before = r.records;
        r.this_read = 0;
        size_t took = offer_read(ring, RING, tail, (size_t)(head - tail), true, take_records, &r);
        assert_true(took <= head - tail);
        tail += took;
        if (limit)
            assert_true(r.records - before <= limit);
        /* nothing can be stuck for good: a full ring always holds a whole record */
        assert_true(took > 0 || head - tail < RING);
        while (limit && took) { /* the reader comes back for what it left */
            r.this_read = 0;
            took = offer_read(ring, RING, tail, (size_t)(head - tail), true, take_records, &r);
            tail += took;
        }
    }
    assert_int_equal(r.nseen, total);
    assert_memory_equal(r.seen, stream, total);
}

static void offer__records_cut_by_the_ring_end__come_whole_and_in_order(void **state)
{
    (void)state;
    unsigned char lengths[600];
    for (size_t k = 0; k < sizeof lengths; k++)
        lengths[k] = (unsigned char)((k * 37) % 200); /* 0..199: many alignments */
    for (size_t chunk = 1; chunk <= RING; chunk = chunk * 3 + 1)
        stream_through(lengths, sizeof lengths, chunk, 0);
}

static void offer__a_reader_that_stops_early__finds_the_rest_next_time(void **state)
{
    (void)state;
    unsigned char lengths[400];
    for (size_t k = 0; k < sizeof lengths; k++)
        lengths[k] = (unsigned char)(k % 50);
    for (unsigned limit = 1; limit <= 7; limit += 3)
        stream_through(lengths, sizeof lengths, 97, limit);
}

static void offer__not_past_the_end__stops_at_it(void **state)
{
    (void)state;
    unsigned char ring[RING] = {0};
    /* a record of 9 bytes from position RING - 4: cut by the end */
    unsigned char rec[10] = {9, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    put(ring, RING - 4, rec, sizeof rec);
    reader r = {0};
    assert_int_equal(offer_read(ring, RING, RING - 4, sizeof rec, false, take_records, &r), 0);
    assert_int_equal(r.offers, 1); /* only the piece before the end */
    assert_int_equal(offer_read(ring, RING, RING - 4, sizeof rec, true, take_records, &r),
                     sizeof rec);
    assert_memory_equal(r.seen, rec, sizeof rec);
}

static void offer__a_reader_that_stops_far_from_the_end__gets_no_copy(void **state)
{
    (void)state;
    enum { BIG = 4 * OFFER_BOUNCE };
    unsigned char *ring = calloc(1, BIG); /* zero bytes: records of no bytes */
    assert_non_null(ring);
    reader r = {.limit = 10};
    /* stops 2 copies' worth before the end: nothing more is offered */
    uint64_t tail = BIG - 2 * OFFER_BOUNCE;
    assert_int_equal(offer_read(ring, BIG, tail, 3 * OFFER_BOUNCE, true, take_records, &r), 10);
    assert_int_equal(r.offers, 1);
    /* stops just before the end: the copy is offered, and taken from no more */
    r = (reader){.limit = 10};
    tail = BIG - 20;
    assert_int_equal(offer_read(ring, BIG, tail, 100, true, take_records, &r), 10);
    assert_int_equal(r.offers, 2);
    free(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offer__records_cut_by_the_ring_end__come_whole_and_in_order),
        cmocka_unit_test(offer__a_reader_that_stops_early__finds_the_rest_next_time),
        cmocka_unit_test(offer__not_past_the_end__stops_at_it),
        cmocka_unit_test(offer__a_reader_that_stops_far_from_the_end__gets_no_copy),
    };
    return cmocka_run_group_tests_name("offer", tests, NULL, NULL);
}
