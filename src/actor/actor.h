/* Actors and the system that runs them: internal definitions. */
#ifndef TR_ACTOR_H
#define TR_ACTOR_H

#include "../mailbox/mailbox.h"
#include "../msg/msg.h"
#include "../platform/platform.h"
#include "../platform/pool.h"
#include "../sched/sched.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "troupe.h"

/* ---- addresses: node(16) | incarnation(22) | index(26) ---------------- */

#define ADDR_INDEX_BITS 26
#define ADDR_GEN_BITS 22
#define ADDR_MAX_INDEX ((1u << ADDR_INDEX_BITS) - 1)
#define ADDR_GEN_MASK ((1u << ADDR_GEN_BITS) - 1)

static inline tr_addr addr_make(uint16_t node, uint32_t gen, uint32_t index)
{
    return (tr_addr){((uint64_t)node << 48) | ((uint64_t)(gen & ADDR_GEN_MASK) << 26) | index};
}
static inline uint32_t addr_index(tr_addr a) { return (uint32_t)(a.bits & ADDR_MAX_INDEX); }
static inline uint32_t addr_gen(tr_addr a) { return (uint32_t)(a.bits >> 26) & ADDR_GEN_MASK; }
static inline uint16_t addr_node(tr_addr a) { return (uint16_t)(a.bits >> 48); }

/* ---- the actor control block ------------------------------------------ */

/* life: incarnation << 32 | LIFE_CLOSED | pins.
 *
 * How a sender is kept from pushing into a recycled slot:
 * - a worker reads life (one plain load), pushes, and is done; the slot of
 *   an ended actor is recycled only after every worker has finished the turn
 *   it was in (quiescent-state reclamation, see limbo below), and the
 *   mailbox is drained once more then, so a push that raced the ending
 *   becomes a dead letter, never a message to the next incarnation;
 * - an outside thread has no turns, so it pins the actor (a fetch_add on
 *   life) while it pushes; an ending actor sets LIFE_CLOSED and waits for the
 *   pins to drain. System-lane sends pin too, even from workers, so that no
 *   monitor or link request can arrive after the ending actor has answered
 *   what was queued. */
#define LIFE_CLOSED (1ull << 31)
#define LIFE_PINS 0x7fffffffull
#define LIFE_GEN_ONE (1ull << 32)

typedef struct actor {
    /* Line 1, read by every sender; written by senders (life's pins, the
     * flag, the mailbox head, queued) and by the runner (tail, turns).
     * Aligned so two actors never share a cache line. */
    _Alignas(CACHE_LINE) _Atomic uint64_t life;
    _Atomic uint32_t scheduled; /* 1 while queued or running: one scheduler at a time */
    /* Bounded: user messages queued. Unbounded: bytes delivered from other
     * nodes since the mailbox was last found empty (see actor_hold). */
    _Atomic uint32_t queued;
    mailbox mailbox;            /* user messages; head by senders, tail by the runner */
    uint32_t bound;             /* most user messages queued; 0 = unbounded */
    uint8_t overflow;           /* a tr_overflow policy, when bounded */
    bool started;
    _Atomic uint8_t pressure;   /* PRESSURE_OVERLOADED / _MUTED / _HOLDS, see mute.c */
    const tr_behavior *behavior;
    void *state;
    /* Line 2: the system lane and what only the runner and spawn touch. */
    mailbox system;             /* system lane: links, monitors, downs; handled first */
    sched_node run_node;
    union {
        tr_msg *init_arg;         /* until started */
        _Atomic(struct actor *) muted; /* after: senders muted on this one (a stack) */
    };
    uint32_t index;
    uint32_t state_size;
    struct actor_ext *ext;   /* links and monitors, made on first use */
    struct actor *next_free; /* on the table's free list, or a muted list */
} actor;

#define PRESSURE_OVERLOADED 1u /* its last turn ended with messages left over */
#define PRESSURE_MUTED 2u      /* parked until the actor it sent to drains */
#define PRESSURE_HOLDS 4u      /* a connection's reading waits for it to drain */

_Static_assert(sizeof(actor) == 2 * CACHE_LINE, "an actor control block is two cache lines");

/* ---- the actor table: index -> control block, never freed while the system
 * lives (type-stable), so a stale address can always be checked safely. ---- */

#define TABLE_PAGE_BITS 12
#define TABLE_PAGE_SIZE (1u << TABLE_PAGE_BITS)
#define TABLE_PAGES (1u << (ADDR_INDEX_BITS - TABLE_PAGE_BITS))

typedef struct actor_table {
    _Atomic(actor *) pages[TABLE_PAGES];
    pthread_mutex_t lock; /* guards the free list and growth */
    actor *free_list;
    uint32_t next_index; /* first never-used index */
    _Atomic uint32_t limit; /* indexes below this have a page */
} actor_table;

int table_init(actor_table *t);
void table_fini(actor_table *t);
/* A free control block with a new incarnation, or NULL (TR_ENOMEM or
 * TR_ELIMIT in *err). Any thread. */
actor *table_acquire(actor_table *t, int *err);
/* Returns an ended actor's block to the free list. Any thread. */
void table_release(actor_table *t, actor *a);
/* The block at index, or NULL if that index was never handed out. */
static inline actor *table_lookup(actor_table *t, uint32_t index)
{
    /* acquire: pairs with the release that published the page. */
    if (index >= atomic_load_explicit(&t->limit, memory_order_acquire))
        return NULL;
    actor *page = atomic_load_explicit(&t->pages[index >> TABLE_PAGE_BITS], memory_order_relaxed);
    return &page[index & (TABLE_PAGE_SIZE - 1)];
}
/* Calls fn for every block ever handed out (live or not). Not thread-safe. */
void table_for_each(actor_table *t, void (*fn)(actor *a, void *arg), void *arg);

/* ---- limbo: ended actors waiting for every worker to pass a quiescent
 * state before their slot is reused. One per worker, touched only by it. -- */

#define LIMBO_BATCH 32

typedef struct limbo {
    actor *fresh;   /* ended since the snapshot below */
    unsigned fresh_count;
    actor *waiting; /* ended before the snapshot: reusable once it passed */
    uint64_t *snapshot;
} limbo;

/* ---- the system ------------------------------------------------------- */

enum { COUNT_DELIVERED = 0, COUNT_SPAWNED = 1, COUNT_EXITED = 2 };

struct tr_system {
    sched sched;
    actor_table table;
    pool *pool;
    unsigned batch;
    uint16_t node_id;
    _Atomic bool closing; /* tr_system_free has begun */
    limbo *limbo;         /* one per worker */
    /* Counted off the pool: actors spawned or ended outside any worker. */
    _Atomic uint64_t outside_spawned, outside_exited, dead_letters;
    _Atomic uint64_t next_ref; /* monitor and ask references, timer ids */
    _Atomic uint64_t late_replies, overflowed;
    struct name_registry *names;
    pthread_mutex_t io_lock;   /* guards making io and timers */
    struct io_loop *io;        /* the io thread, made on first use */
    struct timer_registry *timers;
    _Atomic(struct node *) node; /* connections to other nodes, made on first connect */
    struct remote_registry *remote; /* peers, remote watchers, spawnable behaviours */
    uint32_t heartbeat_ms;
    char node_name[TR_NAME_MAX + 1]; /* this node's, for handshakes */
    struct mesh_state *mesh; /* under io_lock: the mesh this node is part of (launch.c) */
};

/* The runtime's own messages in the system lane (users see only the public
 * TR_MSG_DOWN and TR_MSG_EXIT). */
#define SYS_LINK (TR_MSG_SYSTEM + 0x100u) /* from: who links to us */
#define SYS_UNLINK (SYS_LINK + 1u)         /* from: who unlinks */
#define SYS_MONITOR (SYS_LINK + 2u)        /* from: the watcher; payload: uint64_t ref */
#define SYS_DEMONITOR (SYS_LINK + 3u)      /* from: the watcher; payload: uint64_t ref */
#define SYS_LINK_EXIT (SYS_LINK + 4u)      /* from: a linked actor that ended; payload: int32_t */
#define SYS_KILL (SYS_LINK + 5u)           /* from: the killer; payload: int32_t reason */
#define SYS_RECV_TIMEOUT (SYS_LINK + 6u)   /* from: self; payload: uint64_t generation */
#define SYS_ASK_TIMEOUT (SYS_LINK + 7u)    /* from: self; payload: uint64_t ask ref */
#define SYS_NODE_DOWN (SYS_LINK + 8u)      /* from: the node's address; payload: uint64_t node */

struct tr_ctx {
    tr_system *sys;
    actor *self;
    tr_addr self_addr;
    sched_worker *worker; /* NULL during shutdown */
    tr_addr sender;
    uint64_t request_ref; /* the message being handled is an ask with this ref */
    uint64_t reply_to;    /* the message being handled answers our ask with this ref */
    unsigned sent;        /* sends in this turn: they use up the turn too */
    struct actor *mute_on; /* an overloaded actor sent to in this turn */
    uint16_t mute_on_node; /* a node whose backlog this turn found over the limit */
    bool exiting;
    int reason;
};

/* The one send path, for handlers (w set) and outside threads (w NULL), into
 * the user or the system lane, with an ask reference (0 for none). Always
 * takes msg. */
int actor_deliver(tr_system *sys, sched_worker *w, tr_addr from, tr_addr to, tr_msg *msg,
                  bool system_lane, uint64_t ref);

/* Delivers n user messages from another node (node.h's items: sender,
 * message, ask reference) to `to` as actor_deliver would one by one, with
 * one pin, one push of a chain and one scheduling: on worker w when given
 * (a worker between turns, on its thread), else through the inject queue
 * (the io thread). Takes the first *taken: all n, but for a bounded
 * mailbox that refuses when full, which takes what it has room for (with
 * must, all n); the rest are still the caller's. Returns whether `to` is
 * behind (see actor_hold), as it is when it took fewer. */
struct node_item;
bool actor_deliver_many(tr_system *sys, sched_worker *w, tr_addr to, const struct node_item *items,
                        unsigned n, bool must, unsigned *taken);

/* actor_deliver_many says an actor is behind when more than 1 MiB from
 * other nodes waits in its mailbox (a bounded one: when it is half full),
 * and flags it overloaded before the push, so its runner sees the flag
 * when it drains what was pushed. A connection's reading then waits for it
 * to drain (actor_hold): true if that stands (node_resume follows its
 * drain or end), false if it is not overloaded any more, is parked itself,
 * or has ended. actor_holding: whether `to` still has a connection waiting
 * so. Any thread. */
bool actor_hold(tr_system *sys, tr_addr to);
bool actor_holding(tr_system *sys, tr_addr to);

/* Asks (ask.c), on the asking actor's runner: a reply that arrived in the
 * system lane (true: hand it to receive), and an ask's deadline. */
bool ask_take_reply(tr_ctx *ctx, actor *a, msg_link *link);
/* Starts an ask: registers it under a new reference, calls send(ctx, ref,
 * data) to send the request, and arms the deadline if send returns 0 (else
 * returns what send did). The answer must come into the asker's system lane
 * with that reference. Handler only. */
typedef int (*ask_send_fn)(tr_ctx *ctx, uint64_t ref, void *data);
int ask_start(tr_ctx *ctx, ask_send_fn send, void *data, uint16_t node, uint32_t down_type,
              uint64_t timeout_ms, tr_reply_fn fn, void *arg, uint64_t *ref_out);
/* Node went down: each ask to it ends now, with TR_ENODE (a continuation),
 * a TR_MSG_SPAWNED with error TR_ENODE (a spawn request), or
 * TR_MSG_ASK_TIMEOUT. On the asker's runner. */
void ask_node_down(tr_ctx *ctx, actor *a, uint16_t node);
void ask_timed_out(tr_ctx *ctx, actor *a, uint64_t ref);

/* Names (names.c): the registry is made with the system; an ending actor's
 * name is released. */
int names_init(tr_system *sys);
void names_fini(tr_system *sys);
void names_release(tr_system *sys, const char *name, tr_addr owner);

/* Links and monitors (watch.c). watch_handle runs a runtime message from the
 * system lane and says whether it also goes to the user's receive;
 * watch_fire tells watchers and links that a ended; watch_answer_dead answers
 * a system message that reached an ended actor (a monitor request gets its
 * down); watch_free releases the name, timers and bookkeeping. All on the
 * actor's runner. */
bool watch_handle(tr_ctx *ctx, actor *a, msg_link *link);
void watch_fire(tr_ctx *ctx, actor *a, int reason);
void watch_answer_dead(tr_system *sys, sched_worker *w, tr_addr dead, msg_link *link, int reason);
void watch_answer_dead_msg(tr_system *sys, sched_worker *w, tr_addr dead, tr_addr from,
                           const tr_msg *m, int reason);
void watch_free(tr_ctx *ctx, actor *a);
/* Links a child not yet running with the spawning actor: 0 or TR_ENOMEM. */
int watch_link_new(tr_ctx *parent, actor *child, tr_addr child_addr);

/* Before a user message is handled by an actor with bookkeeping (a->ext):
 * cancels a receive timeout (the handler may set a new one). */
void watch_before_message(tr_ctx *ctx, actor *a);

/* The io loop (started on first use) and timers (timer.c). actor_io returns
 * 0 or TR_ENOMEM; actor_io_free stops the loop and drops pending timers.
 * actor_timer_internal sets a one-shot timer to the running actor that may
 * carry a runtime message type. */
int actor_io(tr_system *sys, struct io_loop **out);
void actor_io_free(tr_system *sys);
int actor_timer_internal(tr_ctx *ctx, tr_msg *msg, uint64_t delay_ms, tr_timer *timer);

/* Backpressure for unbounded mailboxes and for other nodes (mute.c).
 * mute_after_turn parks the runner on ctx->mute_on_node's backlog or on
 * ctx->mute_on if it should wait (true: do not reschedule it);
 * mute_release wakes every actor muted on a (it drained, or ended);
 * mute_resume wakes one actor muted on a node (its backlog drained). */
bool mute_after_turn(tr_ctx *ctx, actor *a);
void mute_release(tr_system *sys, sched_worker *w, actor *a);
void mute_resume(tr_system *sys, actor *a);

/* Other nodes (remote.c): a send to an address of another node, with an ask
 * reference or 0 (takes msg); frames dropped for want of a connection; and
 * freeing the node after the io loop stopped. */
int actor_remote_send(tr_system *sys, tr_addr from, tr_addr to, tr_msg *msg, bool system_lane,
                      uint64_t ref);
/* Connects over fd with transport ("pipe" or "shm") to node expected (0:
 * whichever answers). Returns as tr_system_connect_via. */
int actor_connect(tr_system *sys, int fd, const char *transport, uint16_t expected);
/* Whether node is connected, or a connection to it is being made. Any
 * thread. */
bool actor_peer_near(tr_system *sys, uint16_t node);
/* Frees what launch.c kept of the mesh, after the io loop stopped. */
void actor_mesh_free(tr_system *sys);
/* Fills the node counters of *out. Any thread. */
void actor_remote_stats(tr_system *sys, tr_stats *out);
/* Ends every connection in order (node_goodbye), before the io loop stops. */
void actor_remote_goodbye(tr_system *sys);
/* The workers start (true) or have stopped (false): see node_set_running. */
void actor_remote_running(tr_system *sys, bool running);
void actor_remote_free(tr_system *sys);
/* The running actor watches (monitors or links) something on node: it is
 * told with SYS_NODE_DOWN when that node goes down. Returns 0, TR_ENODE (it
 * is down already, or was never connected) or TR_ENOMEM. remote_unwatch
 * forgets an ending actor. */
int remote_watch(tr_ctx *ctx, uint16_t node);
void remote_unwatch(tr_system *sys, tr_addr local);

/* Runs an actor for one turn; the scheduler's run callback. */
void actor_run(sched_node *node, sched_worker *w, void *arg);

/* The scheduler's poll: a searching worker reads other nodes' messages
 * from shared memory (node_poll). */
bool actor_poll(sched_worker *w, void *arg, bool leave, bool parking);
/* Ends every live actor at shutdown and frees what they hold. */
void actor_shutdown_all(tr_system *sys);
/* Recycles every ended actor in limbo; no worker may be running. */
void actor_limbo_flush(tr_system *sys);
/* The address of a live actor. */
tr_addr actor_addr(tr_system *sys, actor *a);

#endif
