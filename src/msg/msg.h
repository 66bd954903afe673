/* Messages: immutable once sent, reference counted, from the system's pool.
 *
 * A message carries one embedded delivery link, used when it is sent while
 * its sender holds the only reference (the common case: no allocation besides
 * the message). A message sent while other references exist gets a separate
 * envelope link per delivery, so one message can sit in many mailboxes. */
#ifndef TR_MSG_H
#define TR_MSG_H

#include "../mailbox/mailbox.h"
#include "../platform/platform.h"
#include "../platform/pool.h"

#include <stdatomic.h>
#include <stdint.h>

#include "troupe.h"

/* One delivery of a message: what sits in a mailbox. */
typedef struct msg_link {
    mailbox_node node;
    tr_addr from;
    struct tr_msg *msg;
} msg_link;

struct tr_msg {
    msg_link link;        /* the embedded delivery */
    _Atomic uint32_t refs;
    uint32_t type;
    uint32_t len;
    uint16_t flags;
    int8_t size_class;    /* pool class, or -1 for malloc */
    pool *origin;         /* the pool it came from, NULL for malloc */
    _Alignas(8) unsigned char data[];
};

/* A link to deliver msg from `from`; takes over the caller's reference.
 * NULL when an envelope was needed and memory ran out (the reference is then
 * still the caller's). */
msg_link *msg_link_for_send(tr_msg *msg, tr_addr from);

/* Releases a delivered link and its reference to the message. */
void msg_link_release(msg_link *link);

/* The link that owns a mailbox node. */
static inline msg_link *msg_link_of(mailbox_node *node)
{
    return container_of(node, msg_link, node);
}

#endif
