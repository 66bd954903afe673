/* msgpack-c helpers for portable payloads. */
#include "msg.h"

#include <string.h>

tr_msg *tr_msg_new_msgpack(uint32_t type, const msgpack_sbuffer *buf)
{
    if (!buf)
        return NULL;
    tr_msg *m = tr_msg_new(type, buf->data, buf->size);
    if (m)
        m->flags |= TR_MSG_MSGPACK;
    return m;
}

/* Big-endian length fields. */
static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int msgpack_check(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t pos = 0;
    uint64_t pending = 1; /* objects still to read */
    while (pending > 0) {
        if (pos >= len)
            return TR_EFORMAT;
        unsigned char t = p[pos++];
        pending--;
        uint64_t skip = 0, items = 0;
        int lenbytes = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            /* fixint, nil, booleans: just the byte */
        } else if (t >= 0x80 && t <= 0x8f) {
            items = 2u * (t & 0x0f);
        } else if (t >= 0x90 && t <= 0x9f) {
            items = t & 0x0f;
        } else if (t >= 0xa0 && t <= 0xbf) {
            skip = t & 0x1f;
        } else {
            switch (t) {
            case 0xc4: case 0xd9: lenbytes = 1; break;             /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;             /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;             /* bin32, str32 */
            case 0xc7: lenbytes = 1, skip = 1; break;              /* ext8 (+ type) */
            case 0xc8: lenbytes = 2, skip = 1; break;              /* ext16 */
            case 0xc9: lenbytes = 4, skip = 1; break;              /* ext32 */
            case 0xca: case 0xce: case 0xd2: skip = 4; break;      /* 32-bit numbers */
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;      /* 64-bit numbers */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xd4: skip = 2; break;                            /* fixext1..16 (+ type) */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde: /* array16, map16 */
            case 0xdd: case 0xdf: { /* array32, map32 */
                int n = t == 0xdc || t == 0xde ? 2 : 4;
                if (len - pos < (size_t)n)
                    return TR_EFORMAT;
                items = be(p + pos, n) * (t >= 0xde ? 2u : 1u);
                pos += (size_t)n;
                break;
            }
            default: /* 0xc1: never used */
                return TR_EFORMAT;
            }
        }
        if (lenbytes) {
            if (len - pos < (size_t)lenbytes)
                return TR_EFORMAT;
            skip += be(p + pos, lenbytes);
            pos += (size_t)lenbytes;
        }
        if (skip > len - pos)
            return TR_EFORMAT;
        pos += (size_t)skip;
        pending += items;
        if (pending > len - pos) /* every element takes at least one byte */
            return TR_EFORMAT;
    }
    return pos == len ? 0 : TR_EFORMAT;
}

int tr_msg_unpack(const tr_msg *msg, msgpack_unpacked *out)
{
    if (!msg || !out)
        return TR_EINVAL;
    msgpack_unpacked_init(out);
    if (msgpack_check(msg->data, msg->len) != 0)
        return TR_EFORMAT;
    size_t off = 0;
    msgpack_unpack_return rc =
        msgpack_unpack_next(out, (const char *)msg->data, msg->len, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != msg->len)
        return TR_EFORMAT;
    return 0;
}
