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

int tr_msg_unpack(const tr_msg *msg, msgpack_unpacked *out)
{
    if (!msg || !out)
        return TR_EINVAL;
    msgpack_unpacked_init(out);
    size_t off = 0;
    msgpack_unpack_return rc =
        msgpack_unpack_next(out, (const char *)msg->data, msg->len, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != msg->len)
        return TR_EFORMAT;
    return 0;
}
