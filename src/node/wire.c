/* The wire codec. */
#include "wire.h"

#include "../msg/msg.h"

#include <stdlib.h>
#include <string.h>

/* ---- the reader -------------------------------------------------------------- */

void wire_reader_init(wire_reader *r, uint32_t max_body)
{
    *r = (wire_reader){.max_body = max_body ? max_body : WIRE_DEFAULT_MAX_BODY};
}

void wire_reader_fini(wire_reader *r)
{
    free(r->buf);
    *r = (wire_reader){0};
}

int wire_reader_feed(wire_reader *r, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (r->start > 0 && r->end + n > r->capacity) { /* reclaim what was read */
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end + n > r->capacity) {
        size_t capacity = r->capacity ? r->capacity : 4096;
        while (capacity < r->end + n)
            capacity *= 2;
        unsigned char *buf = realloc(r->buf, capacity);
        if (!buf)
            return TR_ENOMEM;
        r->buf = buf;
        r->capacity = capacity;
    }
    memcpy(r->buf + r->end, data, n);
    r->end += n;
    return 0;
}

int wire_reader_next(wire_reader *r, wire_header *h, const unsigned char **body, const char **why)
{
    if (r->failed)
        return wire_fail(why, "connection already failed");
    size_t available = r->end - r->start;
    if (available < WIRE_HEADER_SIZE)
        return 0;
    int rc = wire_decode_header(r->buf + r->start, r->max_body, h, why);
    if (rc != 0) {
        r->failed = 1;
        return rc;
    }
    if (available - WIRE_HEADER_SIZE < h->length)
        return 0; /* the header is valid; wait for the body */
    *body = r->buf + r->start + WIRE_HEADER_SIZE;
    r->start += WIRE_HEADER_SIZE + h->length;
    return 1;
}

int wire_reader_next_in(wire_reader *r, const unsigned char **data, size_t *len, wire_header *h,
                        const unsigned char **body, const char **why)
{
    if (r->failed)
        return wire_fail(why, "connection already failed");
    if (r->end == r->start) { /* nothing held: straight from data */
        if (*len == 0)
            return 0;
        int rc = wire_frame_at(*data, *len, r->max_body, h, body, why);
        if (rc == 1) {
            *data += WIRE_HEADER_SIZE + h->length;
            *len -= WIRE_HEADER_SIZE + h->length;
            return 1;
        }
        if (rc < 0) {
            r->failed = 1;
            return rc;
        }
        r->start = r->end = 0; /* a first part: keep it */
        rc = wire_reader_feed(r, *data, *len);
        *data += *len;
        *len = 0;
        return rc;
    }
    for (;;) { /* complete the frame held, taking no more than it needs */
        int rc = wire_reader_next(r, h, body, why);
        if (rc != 0 || *len == 0)
            return rc;
        size_t held = r->end - r->start;
        size_t want = held < WIRE_HEADER_SIZE
                          ? WIRE_HEADER_SIZE - held
                          : WIRE_HEADER_SIZE + wire_get32(r->buf + r->start + 8) - held;
        size_t n = want < *len ? want : *len;
        if ((rc = wire_reader_feed(r, *data, n)) != 0)
            return rc;
        *data += n;
        *len -= n;
    }
}

int wire_reader_finish(wire_reader *r, const char **why)
{
    if (r->end != r->start)
        return wire_fail(why, "truncated frame: the stream ended inside it");
    return 0;
}

/* ---- HELLO ------------------------------------------------------------------- */

int wire_hello_encode(const wire_hello *h, msgpack_sbuffer *out)
{
    size_t name_len = strnlen(h->name, sizeof h->name);
    if (name_len > WIRE_NAME_MAX)
        return TR_EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint32(&pk, h->version);
    msgpack_pack_str_with_body(&pk, "node", 4);
    msgpack_pack_uint16(&pk, h->node);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, h->name, name_len);
    msgpack_pack_str_with_body(&pk, "caps", 4);
    msgpack_pack_uint32(&pk, h->caps);
    return 0;
}

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

static bool uint_in(const msgpack_object *v, uint64_t max, uint64_t *out)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > max)
        return false;
    *out = v->via.u64;
    return true;
}

int wire_hello_decode(const unsigned char *body, size_t len, wire_hello *out, const char **why)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = TR_EPROTO;
    const char *what = "hello is not one well-formed msgpack object";
    if (msgpack_check(body, len) != 0 ||
        msgpack_unpack_next(&up, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS)
        goto done;
    what = "hello has bytes after its map";
    if (off != len)
        goto done;
    const msgpack_object *o = &up.data;
    what = "hello is not a map of four keys";
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != 4)
        goto done;
    wire_hello h = {0};
    unsigned seen = 0;
    for (uint32_t i = 0; i < 4; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        uint64_t u;
        if (key_is(k, "v") && uint_in(v, UINT32_MAX, &u)) {
            h.version = (uint32_t)u;
            seen |= 1;
        } else if (key_is(k, "node") && uint_in(v, UINT16_MAX, &u)) {
            h.node = (uint16_t)u;
            seen |= 2;
        } else if (key_is(k, "caps") && uint_in(v, UINT32_MAX, &u)) {
            h.caps = (uint32_t)u;
            seen |= 4;
        } else if (key_is(k, "name") && v->type == MSGPACK_OBJECT_STR &&
                   v->via.str.size <= WIRE_NAME_MAX && !memchr(v->via.str.ptr, 0, v->via.str.size)) {
            memcpy(h.name, v->via.str.ptr, v->via.str.size);
            seen |= 8;
        } else {
            what = "hello has an unknown key or a value of the wrong type";
            goto done;
        }
    }
    what = "hello repeats a key";
    if (seen != 15)
        goto done;
    what = "hello speaks another protocol version";
    if (h.version != WIRE_VERSION)
        goto done;
    *out = h;
    rc = 0;
done:
    msgpack_unpacked_destroy(&up);
    if (rc != 0 && why)
        *why = what;
    return rc;
}

/* ---- control arrays ----------------------------------------------------------- */

static bool field_of(const msgpack_object *v, char kind, wire_field *f)
{
    *f = (wire_field){0};
    switch (kind) {
    case 's':
        f->ptr = v->via.str.ptr;
        f->len = v->via.str.size;
        return v->type == MSGPACK_OBJECT_STR && f->len > 0 && f->len <= WIRE_NAME_MAX &&
               !memchr(f->ptr, 0, f->len);
    case 'u':
        f->u = v->via.u64;
        return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    case 'i':
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            f->i = v->via.u64 <= INT32_MAX ? (int64_t)v->via.u64 : INT64_MAX;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            f->i = v->via.i64;
        else
            return false;
        return f->i >= INT32_MIN && f->i <= INT32_MAX;
    case 'b':
        if (v->type == MSGPACK_OBJECT_NIL)
            return true;
        f->ptr = v->via.bin.ptr;
        f->len = v->via.bin.size;
        return v->type == MSGPACK_OBJECT_BIN;
    default:
        return false;
    }
}

int wire_array_decode(const unsigned char *body, size_t len, const char *shape,
                      msgpack_unpacked *up, wire_field *out, const char **why)
{
    size_t off = 0, n = strlen(shape);
    if (msgpack_check(body, len) != 0 ||
        msgpack_unpack_next(up, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len)
        return wire_fail(why, "control body is not exactly one msgpack object");
    const msgpack_object *o = &up->data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n)
        return wire_fail(why, "control body is not an array of the right size");
    for (size_t i = 0; i < n; i++)
        if (!field_of(&o->via.array.ptr[i], shape[i], &out[i]))
            return wire_fail(why, "control body has a field of the wrong type");
    return 0;
}
