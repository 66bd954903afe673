/* The wire codec: frames of docs/wire.md, version 1. Pure functions and an
 * incremental reader; no I/O. Everything from a peer is validated here, once:
 * a malformed frame is an error for that connection, never a crash. */
#ifndef TR_WIRE_H
#define TR_WIRE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "troupe.h"

#define WIRE_HEADER_SIZE 32
#define WIRE_VERSION 1
#define WIRE_DEFAULT_MAX_BODY (16u << 20)
#define WIRE_NAME_MAX 63

enum wire_op {
    WIRE_HELLO = 1,
    WIRE_SEND,
    WIRE_NAMED_SEND,
    WIRE_SPAWN,
    WIRE_SPAWN_REPLY,
    WIRE_LINK,
    WIRE_MONITOR,
    WIRE_EXIT,
    WIRE_HEARTBEAT,
    WIRE_GOODBYE,
    WIRE_OP_LAST = WIRE_GOODBYE,
};

#define WIRE_FLAG_MSGPACK 0x1u
#define WIRE_FLAG_SYSTEM 0x2u
#define WIRE_FLAG_REF 0x4u /* a SEND whose body starts with an 8-byte ask reference */
#define WIRE_FLAGS_KNOWN (WIRE_FLAG_MSGPACK | WIRE_FLAG_SYSTEM | WIRE_FLAG_REF)

typedef struct wire_header {
    uint8_t op;
    uint16_t flags;
    uint16_t credit;
    uint32_t length; /* of the body */
    uint32_t type;
    uint64_t from, to;
} wire_header;

/* ---- the header codec, inline: it runs once a frame ---------------------- */

/* Little-endian fields, one load or store each (byte-swapped on a
 * big-endian host): byte loops compiled to a shift and an or per byte,
 * 11% of a receiving worker's time in the shm stream benchmark. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WIRE_LE16(v) __builtin_bswap16(v)
#define WIRE_LE32(v) __builtin_bswap32(v)
#define WIRE_LE64(v) __builtin_bswap64(v)
#else
#define WIRE_LE16(v) (v)
#define WIRE_LE32(v) (v)
#define WIRE_LE64(v) (v)
#endif

static inline void wire_put16(unsigned char *p, uint16_t v)
{
    v = WIRE_LE16(v);
    memcpy(p, &v, sizeof v);
}

static inline void wire_put32(unsigned char *p, uint32_t v)
{
    v = WIRE_LE32(v);
    memcpy(p, &v, sizeof v);
}

static inline void wire_put64(unsigned char *p, uint64_t v)
{
    v = WIRE_LE64(v);
    memcpy(p, &v, sizeof v);
}

static inline uint16_t wire_get16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return WIRE_LE16(v);
}

static inline uint32_t wire_get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return WIRE_LE32(v);
}

static inline uint64_t wire_get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return WIRE_LE64(v);
}

/* Writes h as 32 little-endian bytes. */
static inline void wire_encode_header(const wire_header *h, unsigned char out[WIRE_HEADER_SIZE])
{
    out[0] = 'T';
    out[1] = 'R';
    out[2] = WIRE_VERSION;
    out[3] = h->op;
    wire_put16(out + 4, h->flags);
    wire_put16(out + 6, h->credit);
    wire_put32(out + 8, h->length);
    wire_put32(out + 12, h->type);
    wire_put64(out + 16, h->from);
    wire_put64(out + 24, h->to);
}

/* TR_EPROTO, with *why (if asked for) set to what. */
static inline int wire_fail(const char **why, const char *what)
{
    if (why)
        *why = what;
    return TR_EPROTO;
}

/* Reads and validates a header. Returns 0, or TR_EPROTO with *why saying
 * what was wrong (a static string). */
static inline int wire_decode_header(const unsigned char in[WIRE_HEADER_SIZE], uint32_t max_body,
                                     wire_header *out, const char **why)
{
    if (in[0] != 'T' || in[1] != 'R')
        return wire_fail(why, "bad magic: not a troupe frame");
    if (in[2] != WIRE_VERSION)
        return wire_fail(why, "unsupported protocol version");
    wire_header h = {.op = in[3], .flags = wire_get16(in + 4), .credit = wire_get16(in + 6),
                     .length = wire_get32(in + 8), .type = wire_get32(in + 12),
                     .from = wire_get64(in + 16), .to = wire_get64(in + 24)};
    if (h.op < WIRE_HELLO || h.op > WIRE_OP_LAST)
        return wire_fail(why, "unknown operation");
    if (h.flags & ~WIRE_FLAGS_KNOWN)
        return wire_fail(why, "reserved flag set");
    if (h.length > max_body)
        return wire_fail(why, "frame longer than the limit");
    *out = h;
    return 0;
}

/* A whole frame at the start of len bytes at data, for a reader that keeps
 * nothing: returns 1 with *h and *body (pointing into data), 0 when data
 * holds only part of one, or TR_EPROTO (with *why). */
static inline int wire_frame_at(const unsigned char *data, size_t len, uint32_t max_body,
                                wire_header *h, const unsigned char **body, const char **why)
{
    if (len < WIRE_HEADER_SIZE)
        return 0;
    int rc = wire_decode_header(data, max_body, h, why);
    if (rc != 0)
        return rc;
    if (len - WIRE_HEADER_SIZE < h->length)
        return 0;
    *body = data + WIRE_HEADER_SIZE;
    return 1;
}

/* An incremental reader: bytes in, whole frames out. */
typedef struct wire_reader {
    unsigned char *buf;
    size_t start, end, capacity; /* unread bytes are buf[start, end) */
    uint32_t max_body;
    int failed; /* once an error is returned, every later call returns it */
} wire_reader;

void wire_reader_init(wire_reader *r, uint32_t max_body);
void wire_reader_fini(wire_reader *r);

/* Appends n bytes from the stream. Returns 0 or TR_ENOMEM. */
int wire_reader_feed(wire_reader *r, const void *data, size_t n);

/* The next whole frame: returns 1 with *h and *body (valid until the next
 * call), 0 when more bytes are needed, or TR_EPROTO (with *why): the
 * connection must be closed. */
int wire_reader_next(wire_reader *r, wire_header *h, const unsigned char **body,
                     const char **why);

/* The next whole frame, taking the bytes it needs from *data (*len of
 * them), which it moves past what it took. When the reader holds nothing,
 * a frame wholly in data is not copied (*body points into data); the
 * reader keeps only a frame's first part until the rest comes. Returns 1
 * with *h and *body (valid until the next call, and while data is), 0 when
 * all of data was taken and no whole frame is left, TR_ENOMEM, or
 * TR_EPROTO (with *why): the connection must be closed. */
int wire_reader_next_in(wire_reader *r, const unsigned char **data, size_t *len, wire_header *h,
                        const unsigned char **body, const char **why);

/* At the end of the stream: 0 if it ended between frames, else TR_EPROTO
 * ("truncated frame"). */
int wire_reader_finish(wire_reader *r, const char **why);

/* The HELLO body. */
typedef struct wire_hello {
    uint32_t version;
    uint16_t node;
    uint32_t caps;
    char name[WIRE_NAME_MAX + 1];
} wire_hello;

/* Appends the msgpack body for h to out. Returns 0 or TR_EINVAL (name too long). */
int wire_hello_encode(const wire_hello *h, msgpack_sbuffer *out);

/* Parses a HELLO body strictly: exactly a map of the four keys with the
 * right types, nothing after it. Returns 0 or TR_EPROTO with *why. */
int wire_hello_decode(const unsigned char *body, size_t len, wire_hello *out, const char **why);

/* One element of a control body array (see wire_array_decode). */
typedef struct wire_field {
    const void *ptr; /* 's' and 'b': the bytes (NULL for a nil 'b'), inside the body */
    size_t len;
    uint64_t u; /* 'u' */
    int64_t i;  /* 'i' */
} wire_field;

/* Parses a control body strictly: exactly one msgpack array whose elements
 * match shape, one letter each: 's' a string of 1..WIRE_NAME_MAX bytes with
 * no NUL, 'u' an unsigned integer, 'i' a signed one (int32 range), 'b' bin or
 * nil. Fields point into body; up holds what they need until the caller
 * destroys it (also after an error). Returns 0 or TR_EPROTO with *why. */
int wire_array_decode(const unsigned char *body, size_t len, const char *shape,
                      msgpack_unpacked *up, wire_field *out, const char **why);

#endif
