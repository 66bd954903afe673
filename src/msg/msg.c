/* Reference-counted immutable messages. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>


/* Slow path of msg_block_alloc: the thread's pool (refilling its cache),
 * or malloc for threads outside any system and for large blocks. */
void *msg_block_alloc_slow(size_t size, int *cls, pool **origin)
{
    pool *p = pool_thread_pool();
    if (p && *cls >= 0) {
        *origin = p;
        return pool_alloc(p, *cls);
    }
    *cls = -1;
    *origin = NULL;
    return malloc(size);
}

void msg_block_free_slow(pool *origin, int8_t cls, void *block)
{
    if (cls < 0)
        free(block);
    else
        pool_release(origin, cls, block);
}

tr_msg *tr_msg_alloc(uint32_t type, size_t len, void **data)
{
    tr_msg *m = msg_alloc(type, len);
    if (m && data)
        *data = m->data;
    return m;
}

tr_msg *tr_msg_new(uint32_t type, const void *data, size_t len)
{
    tr_msg *m = msg_alloc(type, len);
    if (m && len)
        memcpy(m->data, data, len);
    return m;
}

uint32_t tr_msg_type(const tr_msg *msg) { return msg->type; }
const void *tr_msg_data(const tr_msg *msg) { return msg->data; }
size_t tr_msg_size(const tr_msg *msg) { return msg->len; }
uint32_t tr_msg_flags(const tr_msg *msg) { return msg->flags; }
void tr_msg_set_local(tr_msg *msg) { msg->flags |= TR_MSG_LOCAL; }

tr_msg *tr_msg_ref(const tr_msg *msg)
{
    tr_msg *m = (tr_msg *)msg; /* the count is not part of the immutable payload */
    /* relaxed: taking a reference needs no ordering; the caller already holds one. */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void tr_msg_unref(tr_msg *msg)
{
    if (msg)
        msg_unref(msg);
}

msg_link *msg_envelope_new(tr_msg *msg)
{
    int8_t cls;
    pool *origin;
    envelope *e = msg_block_alloc(sizeof *e, &cls, &origin);
    if (!e)
        return NULL;
    e->origin = origin;
    e->size_class = cls;
    e->ref = 0;
    e->link.msg = msg;
    return &e->link;
}

void msg_envelope_free(msg_link *link)
{
    envelope *e = container_of(link, envelope, link);
    msg_block_free(e->origin, e->size_class, e);
}
