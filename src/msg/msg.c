/* Reference-counted immutable messages. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>


/* Slow path of block_alloc: the thread's pool (refilling its cache), or
 * malloc for threads outside any system and for large blocks. */
static __attribute__((noinline)) void *block_alloc_slow(size_t size, int *cls, pool **origin)
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

/* A block of size bytes: from the thread's pool cache when it can. */
static inline void *block_alloc(size_t size, int8_t *cls_out, pool **origin)
{
    int cls = pool_class_of(size);
    void *b = cls >= 0 ? pool_cache_take(cls, origin) : NULL;
    if (!b)
        b = block_alloc_slow(size, &cls, origin);
    *cls_out = (int8_t)cls;
    return b;
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
    if (len > UINT32_MAX - sizeof(tr_msg))
        return NULL;
    int8_t cls;
    pool *origin;
    tr_msg *m = block_alloc(sizeof(tr_msg) + len, &cls, &origin);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->link.msg = m;
    m->type = type;
    m->len = (uint32_t)len;
    m->flags = 0;
    m->size_class = cls;
    m->origin = origin;
    if (data)
        *data = m->data;
    return m;
}

tr_msg *tr_msg_new(uint32_t type, const void *data, size_t len)
{
    void *payload;
    tr_msg *m = tr_msg_alloc(type, len, &payload);
    if (m && len)
        memcpy(payload, data, len);
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
    envelope *e = block_alloc(sizeof *e, &cls, &origin);
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
