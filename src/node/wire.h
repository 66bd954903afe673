/* The wire codec: frames of docs/wire.md, version 1. Pure functions and an
 * incremental reader; no I/O. Everything from a peer is validated here, once:
 * a malformed frame is an error for that connection, never a crash. */
#ifndef TR_WIRE_H
#define TR_WIRE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

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

/* 64- and 32-bit little-endian fields. */
void wire_put64(unsigned char *p, uint64_t v);
uint64_t wire_get64(const unsigned char *p);
uint32_t wire_get32(const unsigned char *p);

/* Writes h as 32 little-endian bytes. */
void wire_encode_header(const wire_header *h, unsigned char out[WIRE_HEADER_SIZE]);

/* Reads and validates a header. Returns 0, or TR_EPROTO with *why saying
 * what was wrong (a static string). */
int wire_decode_header(const unsigned char in[WIRE_HEADER_SIZE], uint32_t max_body,
                       wire_header *out, const char **why);

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

/* A whole frame at the start of len bytes at data, for a reader that keeps
 * nothing: returns 1 with *h and *body (pointing into data), 0 when data
 * holds only part of one, or TR_EPROTO (with *why). */
int wire_frame_at(const unsigned char *data, size_t len, uint32_t max_body, wire_header *h,
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
