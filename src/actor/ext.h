/* An actor's bookkeeping beyond the control block, made on first use: its
 * links, monitors, receive timeout, pending asks and registered name. Only
 * the actor's runner touches it. */
#ifndef TR_ACTOR_EXT_H
#define TR_ACTOR_EXT_H

#include "actor.h"

typedef struct watch_entry {
    tr_addr actor;
    uint64_t ref; /* monitors only */
} watch_entry;

typedef struct watch_list {
    watch_entry *items;
    uint32_t count, capacity;
} watch_list;

/* An ask waiting for its reply: the deadline timer and, for tr_ask_then,
 * the continuation. */
typedef struct pending_ask {
    uint64_t ref;
    tr_timer timer;
    tr_reply_fn fn;
    void *arg;
    uint16_t node;      /* the node asked, when another: its going down ends the ask */
    uint32_t down_type; /* what then comes to receive: TR_MSG_ASK_TIMEOUT or TR_MSG_SPAWNED */
} pending_ask;

typedef struct ask_list {
    pending_ask *items;
    uint32_t count, capacity;
} ask_list;

typedef struct actor_ext {
    watch_list links;    /* actors linked with this one */
    watch_list watchers; /* who monitors this one, with their refs */
    watch_list watching; /* this one's monitors: target and ref */
    bool trap_exit;
    bool remote_watch;          /* it watches something on another node (remote.c) */
    tr_timer receive_timer;     /* the armed receive timeout, or 0 */
    uint64_t receive_timer_gen; /* which arming it belongs to */
    ask_list asks;              /* this one's asks still waiting for a reply */
    char *name;                 /* its registered name, or NULL */
} actor_ext;

/* The actor's bookkeeping, made if needed; NULL when out of memory. */
actor_ext *ext_of(actor *a);

/* A small array with room for one more item after count: items itself, or
 * a grown copy (and *capacity updated), or NULL when out of memory (items is
 * then untouched). */
void *ext_room_for_one(void *items, uint32_t count, uint32_t *capacity, size_t item_size);

/* Small unordered lists: add (0 or TR_ENOMEM), find the entry for actor
 * (ref 0) or for ref (index or -1), remove it (whether it was there). */
int ext_list_add(watch_list *l, tr_addr actor, uint64_t ref);
int64_t ext_list_find(const watch_list *l, tr_addr actor, uint64_t ref);
bool ext_list_remove(watch_list *l, tr_addr actor, uint64_t ref);

#endif
