/* troupe — an actor runtime for C.
 *
 * Programs are written as actors: each has private state and a mailbox,
 * handles one message at a time, and talks to other actors only by sending
 * immutable messages. A work-stealing pool of worker threads runs them.
 *
 * Threads, in the comments below:
 *   "any thread"   — a worker running a handler, the main thread, or a thread
 *                    of another library;
 *   "handler"      — only from inside a behaviour callback (init, receive,
 *                    terminate), with the tr_ctx it was given;
 *   "outside"      — a thread that is not running a handler of this system.
 *
 * Errors: functions that can fail return 0 or a negative TR_E... code;
 * tr_strerror() and tr_err_name() describe a code.
 */
#ifndef TROUPE_H
#define TROUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TR_BUILDING_LIBRARY)
#define TR_API __attribute__((visibility("default")))
#else
#define TR_API
#endif

/* ---- errors ---------------------------------------------------------- */

/* One list makes the codes, tr_strerror and tr_err_name. */
#define TR_ERRNO_MAP(X)                                                      \
    X(EINVAL, -1, "invalid argument")                                        \
    X(ENOMEM, -2, "out of memory")                                           \
    X(EDEAD, -3, "the actor has ended; the message became a dead letter")    \
    X(ESTOPPED, -4, "the system is shutting down")                           \
    X(EBUSY, -5, "the system is already running")                            \
    X(ELOCAL, -6, "the message holds pointers and cannot leave the process") \
    X(ETOOBIG, -7, "the message payload is too large")                       \
    X(ELIMIT, -8, "too many live actors")                                    \
    X(ETHREAD, -9, "a worker thread could not be started")                   \
    X(EFORMAT, -10, "the payload is not valid msgpack")                      \
    X(ENOENT, -11, "not found: no such timer, name or pending ask")          \
    X(EEXIST, -12, "the name is already registered")                         \
    X(ETIMEDOUT, -13, "no reply came in time")                                \
    X(EFULL, -14, "the receiver's mailbox is full")                          \
    X(EPROTO, -15, "a peer broke the wire protocol")                         \
    X(ENODE, -16, "the node is not connected, or it went down")

enum {
    TR_OK = 0,
#define TR_ERR_ENUM(name, code, text) TR_##name = (code),
    TR_ERRNO_MAP(TR_ERR_ENUM)
#undef TR_ERR_ENUM
};

/* A short English sentence for an error code; never NULL. Any thread. */
TR_API const char *tr_strerror(int err);
/* The code's name, such as "TR_EINVAL"; never NULL. Any thread. */
TR_API const char *tr_err_name(int err);

/* ---- types ----------------------------------------------------------- */

typedef struct tr_system tr_system; /* one per process (or per test) */
typedef struct tr_ctx tr_ctx;       /* handed to a handler for one call */
typedef struct tr_msg tr_msg;       /* immutable once sent */

/* An actor's address: a value naming node, slot and incarnation. An address
 * stays valid to use after the actor ends: sends to it become dead letters,
 * even when the slot is reused by a newer actor. */
typedef struct tr_addr {
    uint64_t bits;
} tr_addr;

#define TR_ADDR_NONE ((tr_addr){0})

/* True when a and b name the same actor incarnation. */
static inline bool tr_addr_eq(tr_addr a, tr_addr b) { return a.bits == b.bits; }
/* True for TR_ADDR_NONE (no actor: the sender of a message sent from outside). */
static inline bool tr_addr_is_none(tr_addr a) { return a.bits == 0; }

/* Exit reasons. Zero is a normal end; any other value is abnormal. User
 * reasons are positive; the runtime's own are these. */
#define TR_EXIT_NORMAL 0
#define TR_EXIT_SHUTDOWN (-100) /* the system was freed, or a supervisor stopped it */
#define TR_EXIT_NOPROC (-101)   /* the actor had already ended when watched or linked */
#define TR_EXIT_KILLED (-102)   /* killed with this reason, which cannot be trapped */
#define TR_EXIT_RESTARTS (-103) /* a supervisor gave up: its restart budget ran out */
#define TR_EXIT_NODEDOWN (-104) /* its node went down: the process ended or fell silent */

/* Message types from TR_MSG_SYSTEM up are the runtime's: actors receive them
 * (from the system lane, ahead of their other messages) but may not send
 * them. */
#define TR_MSG_SYSTEM 0xffff0000u
#define TR_MSG_DOWN 0xffff0001u /* a monitored actor ended; payload tr_down */
#define TR_MSG_EXIT 0xffff0002u /* a linked actor ended (when trapping exits); payload tr_exit_info */
#define TR_MSG_TIMEOUT 0xffff0003u /* nothing arrived in time (tr_receive_timeout); no payload */
#define TR_MSG_ASK_TIMEOUT 0xffff0004u /* a tr_ask got no reply in time; payload: uint64_t ref */
#define TR_MSG_SPAWNED 0xffff0005u /* the answer to tr_spawn_remote; payload tr_spawned */

typedef struct tr_down {
    tr_addr actor;  /* who ended */
    int32_t reason; /* why; TR_EXIT_NOPROC if it had ended before the monitor */
    uint64_t ref;   /* the monitor, as tr_monitor returned it */
} tr_down;

typedef struct tr_spawned {
    tr_addr actor; /* the new actor, or TR_ADDR_NONE on error */
    int32_t error; /* 0, or TR_ENOENT (no such behaviour there), TR_ENOMEM, ... */
} tr_spawned;

typedef struct tr_exit_info {
    tr_addr actor; /* the linked actor that ended, or the one that called tr_kill */
    int32_t reason;
} tr_exit_info;

/* What an actor does. The runtime allocates state_size zeroed bytes of
 * private state before init and frees them after terminate.
 *
 * init      — optional; runs once on a worker before any message, with the
 *             init message given to spawn (or NULL). A non-zero return ends
 *             the actor at once with that reason (terminate is still called).
 * receive   — required; one message at a time. msg is borrowed until it
 *             returns; keep it longer with tr_msg_ref.
 * terminate — optional; runs once when an actor that has started (whose
 *             init ran, even if it failed) ends, with the reason.
 *
 * The behaviour is borrowed: it must outlive every actor that uses it
 * (a static const struct is the usual way). */
typedef struct tr_behavior {
    const char *name;
    size_t state_size;
    int (*init)(tr_ctx *ctx, void *state, const tr_msg *arg);
    void (*receive)(tr_ctx *ctx, void *state, const tr_msg *msg);
    void (*terminate)(tr_ctx *ctx, void *state, int reason);
} tr_behavior;

/* ---- system ---------------------------------------------------------- */

typedef struct tr_config {
    unsigned workers; /* worker threads; 0 = one per online CPU */
    unsigned batch;   /* messages an actor handles per turn before others run; 0 = 64 */
    uint16_t node_id; /* this process's node number in addresses; 0 by default */
    uint32_t heartbeat_ms; /* idle node connections send a heartbeat this often, and a peer
                              silent for 4 of them is down; 0 = 1000 */
    const char *node_name; /* this node's name in handshakes and logs, 1 to 63 bytes
                              (copied); NULL = "<program>[<pid>]" */
} tr_config;

/* Fills cfg with the defaults. Any thread. */
TR_API void tr_config_init(tr_config *cfg);

/* Creates a system; NULL cfg means defaults. Stores it in *out and returns 0,
 * or returns TR_EINVAL (bad configuration) or TR_ENOMEM. Any thread. */
TR_API int tr_system_new(const tr_config *cfg, tr_system **out);

/* Starts the workers and blocks until the system is quiescent (no actor
 * runnable, no message in flight, nothing pending) or tr_system_stop is
 * called. May be called again after it returns, to run what was sent since.
 * Returns 0, TR_EBUSY if already running, or TR_ETHREAD. Outside only. */
TR_API int tr_system_run(tr_system *sys);

/* Asks a running system to stop: workers finish the handler they are in and
 * tr_system_run returns. Messages still queued stay queued, and messages
 * from other nodes are still read into mailboxes. A call before
 * tr_system_run has begun (on another thread, say) or after it returned has
 * no effect: to stop a run started elsewhere, first know it runs (an actor
 * of it has run). Any thread, handlers included. */
TR_API void tr_system_stop(tr_system *sys);

/* Ends every live actor (terminate with TR_EXIT_SHUTDOWN), drops queued
 * messages, and frees the system. Connections to other nodes end in order
 * first: everything sent to a peer reaches it before it sees this node
 * down (waiting at most 4 heartbeats for a peer that does not answer).
 * Accepts NULL. Outside only, when tr_system_run is not running. */
TR_API void tr_system_free(tr_system *sys);

/* Counters of a system. Reading them while it runs gives a recent snapshot. */
typedef struct tr_stats {
    uint64_t spawned;      /* actors ever spawned */
    uint64_t exited;       /* actors that have ended */
    uint64_t delivered;    /* messages handed to receive */
    uint64_t dead_letters; /* messages to actors that had ended (or dropped at shutdown) */
    uint64_t late_replies; /* replies that came after their ask had timed out */
    uint64_t overflowed;   /* messages dropped or refused by full bounded mailboxes */
    uint64_t node_dropped; /* frames to nodes with no connection (down, or never joined) */
    uint64_t node_backlog_peak; /* most bytes seen waiting on our side for one node */
    uint64_t node_waits;   /* times an actor was paused until a node's backlog drained */
    uint64_t node_holds;   /* times reading from a node waited for an overloaded actor */
    unsigned workers;
} tr_stats;

/* Copies the counters into *out. Any thread. */
TR_API void tr_system_stats(tr_system *sys, tr_stats *out);

/* ---- actors ---------------------------------------------------------- */

/* Spawns an actor from outside any handler. Takes ownership of arg (may be
 * NULL) on success and on failure. On 0 stores the address in *out (out may
 * be NULL). Errors: TR_EINVAL (no behaviour or no receive), TR_ENOMEM,
 * TR_ELIMIT, TR_ESTOPPED. Outside only. */
TR_API int tr_system_spawn(tr_system *sys, const tr_behavior *beh, tr_msg *arg,
                           tr_addr *out);

/* Spawns an actor from a handler; the new actor starts on the caller's worker
 * (cache-warm) and may be stolen by another. Ownership and errors as for
 * tr_system_spawn. Handler only. */
TR_API int tr_spawn(tr_ctx *ctx, const tr_behavior *beh, tr_msg *arg, tr_addr *out);

/* As tr_spawn, and links the new actor with the caller before it runs (so
 * even a failing init reaches the caller as an exit). Handler only. */
TR_API int tr_spawn_link(tr_ctx *ctx, const tr_behavior *beh, tr_msg *arg, tr_addr *out);

/* What a bounded mailbox does with a message that finds it full. Only user
 * messages count against the bound; system messages (exits, downs, timers,
 * replies) have their own lane and are never refused or dropped. */
typedef enum tr_overflow {
    TR_OVERFLOW_REFUSE,      /* the send fails with TR_EFULL (the message is released);
                              * the sender knows and may retry (keep a tr_msg_ref). A
                              * plain send from another node, whose tr_send has
                              * returned, is not refused: it waits on its connection,
                              * which stops reading until the mailbox has drained */
    TR_OVERFLOW_DROP_NEWEST, /* the arriving message is dropped and counted; the send
                              * returns 0. What is queued is kept, in order. */
    TR_OVERFLOW_DROP_OLDEST, /* the arriving message is kept and the oldest queued ones
                              * are dropped (counted) as the receiver gets to them, so
                              * it sees the newest `bound`. */
} tr_overflow;

typedef struct tr_spawn_opts {
    uint32_t mailbox_bound; /* most user messages queued; 0 = unbounded */
    tr_overflow overflow;   /* what a full mailbox does */
    bool link;              /* link with the spawning actor (tr_spawn_opt only) */
} tr_spawn_opts;

/* tr_spawn with options (opts NULL = defaults). Handler only. */
TR_API int tr_spawn_opt(tr_ctx *ctx, const tr_behavior *beh, tr_msg *arg,
                        const tr_spawn_opts *opts, tr_addr *out);

/* tr_system_spawn with options (link is ignored). Outside only. */
TR_API int tr_system_spawn_opt(tr_system *sys, const tr_behavior *beh, tr_msg *arg,
                               const tr_spawn_opts *opts, tr_addr *out);

/* Sends msg to `to`. Always takes ownership of msg. Returns 0 when it was
 * queued, TR_EDEAD when the target had already ended (the message is counted
 * as a dead letter and released), TR_ESTOPPED while the system is being
 * freed, TR_EINVAL for a NULL msg. Per sender–receiver pair, messages arrive
 * in the order sent. Handler only. */
TR_API int tr_send(tr_ctx *ctx, tr_addr to, tr_msg *msg);

/* Like tr_send, from outside any handler; the receiver sees TR_ADDR_NONE as
 * the sender. Any thread that is not in a handler of sys. */
TR_API int tr_system_send(tr_system *sys, tr_addr to, tr_msg *msg);

/* Sends msg to the sender of the message being handled; as tr_send. Returns
 * TR_EINVAL (and releases msg) when there is no sender. Handler only. */
TR_API int tr_reply(tr_ctx *ctx, tr_msg *msg);

/* The running actor's own address. Handler only. */
TR_API tr_addr tr_self(const tr_ctx *ctx);

/* The sender of the message being handled, TR_ADDR_NONE in init, terminate,
 * and for messages sent from outside. Handler only. */
TR_API tr_addr tr_sender(const tr_ctx *ctx);

/* The system the handler runs in. Handler only. */
TR_API tr_system *tr_ctx_system(const tr_ctx *ctx);

/* Replaces the running actor's behaviour from the next message on; the state
 * is kept, so beh->state_size may not exceed the size allocated at spawn.
 * beh is borrowed, as at spawn. Returns 0 or TR_EINVAL. Handler only. */
TR_API int tr_become(tr_ctx *ctx, const tr_behavior *beh);

/* Ends the running actor when the current handler returns: terminate runs
 * with reason, and messages still queued become dead letters. Handler only. */
TR_API void tr_exit(tr_ctx *ctx, int reason);

/* ---- links and monitors ---------------------------------------------- *
 * Failure is a message. A monitor is one-way: when the target ends, the
 * watcher receives exactly one TR_MSG_DOWN (also when the target had already
 * ended: reason TR_EXIT_NOPROC). A link is two-way: when either actor ends
 * abnormally the other ends with the same reason, unless it traps exits, in
 * which case it receives a TR_MSG_EXIT instead (also for normal ends).
 * Down and exit messages travel in the system lane: they are never dropped
 * or held back by a full mailbox, and so they may overtake user messages the
 * ended actor sent earlier. */

/* Monitors target; stores the monitor's reference in *ref (ref may be NULL).
 * Returns 0 or TR_EINVAL / TR_ENOMEM. Handler only. */
TR_API int tr_monitor(tr_ctx *ctx, tr_addr target, uint64_t *ref);

/* Removes a monitor: no down message for it is delivered afterwards, even
 * one already on its way. Returns 0, or TR_EINVAL for an unknown ref. */
TR_API int tr_demonitor(tr_ctx *ctx, uint64_t ref);

/* Links the running actor with other (idempotent). Linking to an actor that
 * has ended acts as if it ended with TR_EXIT_NOPROC. Returns 0 or TR_EINVAL /
 * TR_ENOMEM. Handler only. */
TR_API int tr_link(tr_ctx *ctx, tr_addr other);

/* Removes a link, both ways. Returns 0 (also if there was none). */
TR_API int tr_unlink(tr_ctx *ctx, tr_addr other);

/* Whether exit signals from links (and tr_kill) arrive as TR_MSG_EXIT
 * messages instead of ending the actor. Off at spawn. Handler only. */
TR_API void tr_trap_exit(tr_ctx *ctx, bool trap);

/* Sends an exit signal to target: it ends with reason, or receives a
 * TR_MSG_EXIT if it traps exits (TR_EXIT_KILLED cannot be trapped; a normal
 * reason is ignored unless trapped). Returns 0 or TR_EDEAD. Handler only. */
TR_API int tr_kill(tr_ctx *ctx, tr_addr target, int reason);

/* ---- timers ----------------------------------------------------------- *
 * Timers run on the system's io thread (a libuv loop). Their messages travel
 * in the system lane, so a full mailbox never drops one. A pending timer
 * keeps tr_system_run from returning: cancel periodic timers when done (a
 * periodic timer whose target has ended stops by itself). */

typedef uint64_t tr_timer; /* 0 is never a timer */

/* Delivers msg to `to` after delay_ms (from the calling actor). Takes msg.
 * Stores the timer in *timer (may be NULL). Returns 0, TR_EINVAL (no msg, or a
 * runtime type) or TR_ENOMEM. Handler only. */
TR_API int tr_send_after(tr_ctx *ctx, tr_addr to, tr_msg *msg, uint64_t delay_ms,
                         tr_timer *timer);

/* Delivers msg (shared, not copied) to `to` every period_ms until cancelled
 * or `to` has ended. As tr_send_after. Handler only. */
TR_API int tr_send_every(tr_ctx *ctx, tr_addr to, tr_msg *msg, uint64_t period_ms,
                         tr_timer *timer);

/* tr_send_after from outside any handler (the sender is TR_ADDR_NONE). Any
 * thread not in a handler of sys. */
TR_API int tr_system_send_after(tr_system *sys, tr_addr to, tr_msg *msg, uint64_t delay_ms,
                                tr_timer *timer);

/* Cancels a timer. Returns 0 when it was cancelled before firing (a one-shot
 * timer's message is then never delivered; a periodic timer fires no more,
 * though ticks it delivered before are still in the mailbox), or TR_ENOENT
 * when it had already fired, was cancelled, or is unknown. Any thread. */
TR_API int tr_timer_cancel(tr_system *sys, tr_timer timer);

/* If the running actor handles no user message within ms from now, it
 * receives one TR_MSG_TIMEOUT. Handling a user message (or calling this
 * again, or with ms 0) cancels it; set it again to keep waiting. Returns 0 or
 * TR_ENOMEM. Handler only. */
TR_API int tr_receive_timeout(tr_ctx *ctx, uint64_t ms);

/* ---- supervisors ------------------------------------------------------ *
 * A supervisor is an actor that starts children from specifications, links
 * to them, and restarts them by policy when they end. When more than
 * max_restarts restarts happen within within_ms, it stops its children and
 * fails with TR_EXIT_RESTARTS, so the failure escalates to its own
 * supervisor. Children are stopped in reverse start order, one at a time:
 * each gets an exit signal TR_EXIT_SHUTDOWN and, if it has not ended after
 * shutdown_ms, TR_EXIT_KILLED. */

typedef enum tr_restart {
    TR_RESTART_PERMANENT, /* always restarted */
    TR_RESTART_TRANSIENT, /* restarted when it ends abnormally (not NORMAL or SHUTDOWN) */
    TR_RESTART_TEMPORARY, /* never restarted */
} tr_restart;

typedef enum tr_strategy {
    TR_ONE_FOR_ONE,  /* restart the child that ended */
    TR_ONE_FOR_ALL,  /* stop the others, restart all */
    TR_REST_FOR_ONE, /* stop those started after it, restart it and them */
} tr_strategy;

struct tr_supervisor_spec;

typedef struct tr_child_spec {
    const char *id;              /* for logs; copied */
    const tr_behavior *behavior; /* borrowed, as at spawn */
    /* Or, instead of a behaviour, a supervisor with this spec (borrowed: it
     * must outlive the parent, as it is read again at each restart). */
    const struct tr_supervisor_spec *supervisor;
    const void *init;            /* init message payload, copied; NULL for no init message */
    size_t init_size;
    uint32_t init_type;
    tr_restart restart;
} tr_child_spec;

typedef struct tr_supervisor_spec {
    tr_strategy strategy;
    unsigned max_restarts; /* R: at most R restarts ... */
    uint64_t within_ms;    /* ... in T ms; more and the supervisor fails */
    uint64_t shutdown_ms;  /* a stopping child's grace period; 0 means 5000 */
    const tr_child_spec *children;
    size_t nchildren;
} tr_supervisor_spec;

/* Ask a supervisor with this type (tr_ask, any payload): the reply holds a
 * tr_addr per child, in spec order, TR_ADDR_NONE for one not running. */
#define TR_SUPERVISOR_WHICH 0xfffe0001u

/* Spawns a supervisor linked to the caller (so it fails with its parent and
 * its failure reaches the parent). The spec is copied. Returns as tr_spawn,
 * or TR_EINVAL for a spec without children or behaviours. Handler only. */
TR_API int tr_spawn_supervisor(tr_ctx *ctx, const tr_supervisor_spec *spec, tr_addr *out);

/* The same from outside any handler (the top of a tree; nothing is linked). */
TR_API int tr_system_spawn_supervisor(tr_system *sys, const tr_supervisor_spec *spec,
                                      tr_addr *out);

/* ---- ask and reply ---------------------------------------------------- *
 * An ask is a request that expects one reply: the target answers with
 * tr_reply. The reply, or a timeout, reaches the asking actor as a message
 * (or through a continuation run in its context), never by blocking a
 * worker. Exactly one of the two arrives; a reply that comes after the
 * timeout is dropped and counted in tr_stats.late_replies. Replies travel in
 * the system lane. */

/* The continuation of tr_ask_then, run by the asking actor's runner: reply is
 * the answer (borrowed until it returns) with status 0, or NULL with status
 * TR_ETIMEDOUT, or TR_ENODE when the target's node went down first. */
typedef void (*tr_reply_fn)(tr_ctx *ctx, void *state, const tr_msg *reply, int status,
                            void *arg);

/* Sends request to target and waits, without blocking, up to timeout_ms for
 * its reply: it arrives in receive with tr_reply_to(ctx) == *ref, or a
 * TR_MSG_ASK_TIMEOUT carrying the ref does (at once when the target's node
 * goes down). Takes request. Returns 0, TR_EDEAD (the target had ended:
 * nothing will arrive), TR_ENODE (its node is not connected), TR_EINVAL or
 * TR_ENOMEM. Handler only. */
TR_API int tr_ask(tr_ctx *ctx, tr_addr target, tr_msg *request, uint64_t timeout_ms,
                  uint64_t *ref);

/* As tr_ask, but fn(ctx, state, reply, status, arg) runs with the outcome
 * instead of a message. Handler only. */
TR_API int tr_ask_then(tr_ctx *ctx, tr_addr target, tr_msg *request, uint64_t timeout_ms,
                       tr_reply_fn fn, void *arg);

/* While handling a reply to an ask: that ask's ref; otherwise 0. Handler only. */
TR_API uint64_t tr_reply_to(const tr_ctx *ctx);

/* Where the reply to the message being handled goes (its sender, and its ask
 * reference if it is an ask), to answer later from another handler. */
typedef struct tr_reply_token {
    tr_addr to;
    uint64_t ref;
} tr_reply_token;

/* The token for the message being handled. Handler only. */
TR_API tr_reply_token tr_defer_reply(const tr_ctx *ctx);

/* Answers a deferred request, as tr_reply would have. Takes msg. Returns as
 * tr_send, or TR_EINVAL for a token without a sender. Handler only. */
TR_API int tr_reply_with(tr_ctx *ctx, tr_reply_token token, tr_msg *msg);

/* ---- names ------------------------------------------------------------ */

#define TR_NAME_MAX 63 /* bytes in a registered name */

/* Registers the running actor under name in its system, until it ends (or
 * tr_unregister). Returns 0, TR_EEXIST (taken), TR_EINVAL (empty or too long,
 * or the actor already has a name) or TR_ENOMEM. Handler only. */
TR_API int tr_register(tr_ctx *ctx, const char *name);

/* Gives up the running actor's name. Returns 0 or TR_ENOENT. Handler only. */
TR_API int tr_unregister(tr_ctx *ctx);

/* The actor registered under name, in *out. Returns 0 or TR_ENOENT. Any thread. */
TR_API int tr_whereis(tr_system *sys, const char *name, tr_addr *out);

/* Sends msg to the actor registered under name; as tr_send, and TR_ENOENT
 * (msg released) when no one has the name. Handler only. */
TR_API int tr_send_named(tr_ctx *ctx, const char *name, tr_msg *msg);

/* ---- blocking work ------------------------------------------------------ *
 * A handler must not block a worker. Blocking calls (file I/O, a blocking
 * library, a CPU-heavy job) run on a separate pool of threads (libuv's, sized
 * by UV_THREADPOOL_SIZE, 4 by default) while the workers go on with other
 * actors; the result comes back as a message. */

/* Runs on a pool thread: does the blocking work with arg and returns the
 * message to deliver (or NULL: then an empty message of done_type). */
typedef tr_msg *(*tr_blocking_fn)(void *arg);

/* Runs fn(arg) on the blocking pool and delivers its result to the running
 * actor (in the system lane, so never dropped). arg is the caller's, and must
 * stay valid until the result arrives. Returns 0, TR_EINVAL or TR_ENOMEM.
 * Handler only. */
TR_API int tr_run_blocking(tr_ctx *ctx, tr_blocking_fn fn, void *arg, uint32_t done_type);

/* Writes "<node.index.incarnation>" into buf (at least 32 bytes is enough);
 * returns buf. Any thread. */
TR_API char *tr_addr_format(tr_addr addr, char *buf, size_t size);

/* ---- nodes ------------------------------------------------------------ *
 * Several processes (nodes), each running a system with its own node_id
 * (tr_config.node_id, 1..65535), joined by connections. An address names its
 * node, so tr_send is the same call for a local and a remote actor.
 * Messages marked TR_MSG_LOCAL are refused for remote sends (TR_ELOCAL);
 * payloads are copied byte for byte (use msgpack for portable ones). Across
 * nodes delivery is at most once; per sender–receiver pair, in order.
 * Asks, links and monitors work across nodes as within one. When a node
 * goes down (its connection closes, or it falls silent for 4 heartbeats),
 * every monitor of an actor there gets a down with TR_EXIT_NODEDOWN and
 * every link to one fires with that reason. Monitoring or linking an actor
 * of a node that is not connected gives that down at once. */

/* Connects this system to a peer over fd (a Unix socket or pipe end; the
 * system takes it), speaking docs/wire.md. Both systems need distinct,
 * non-zero node ids. While the connection is open it keeps tr_system_run
 * from returning; it closes when the peer closes it, on a protocol error
 * (logged), or at tr_system_free. Returns 0 or TR_EINVAL / TR_ENOMEM. Any
 * thread not in a handler. */
TR_API int tr_system_connect(tr_system *sys, int fd);

/* As tr_system_connect, over the transport named: "pipe" (the bytes go
 * through fd) or "shm" (fd must be a Unix stream socket: each side sends the
 * other a shared-memory ring through it, and it then carries only wake-ups
 * and notices the peer's end). Both sides must name the same transport.
 * Returns 0 or TR_EINVAL / TR_ENOMEM. Any thread not in a handler. */
TR_API int tr_system_connect_via(tr_system *sys, int fd, const char *transport);

/* Sends msg to the actor registered as name on node (this node included).
 * Takes msg. Returns 0, TR_ELOCAL, TR_EDEAD (no connection), TR_ENOENT (a
 * local name nobody has). Handler only. */
TR_API int tr_send_named_node(tr_ctx *ctx, uint16_t node, const char *name, tr_msg *msg);

/* The node an address belongs to. Any thread. */
TR_API uint16_t tr_addr_node(tr_addr addr);

/* The address that stands for a whole node: the `actor` of the down that
 * tr_monitor_node gives. No actor has it. Any thread. */
TR_API tr_addr tr_node_addr(uint16_t node);

/* Monitors a node: a TR_MSG_DOWN with actor tr_node_addr(node) and reason
 * TR_EXIT_NODEDOWN comes when it goes down (at once if it is not connected
 * now). Stored in *ref (may be NULL); tr_demonitor cancels it. Returns 0,
 * TR_EINVAL or TR_ENOMEM. Handler only. */
TR_API int tr_monitor_node(tr_ctx *ctx, uint16_t node, uint64_t *ref);

/* Stops sys (as tr_system_stop) when node goes down, or at once if it is
 * not connected: how a child node ends with its parent (node 1, say) while
 * other children still hold it up. Returns 0, TR_EINVAL or TR_ENOMEM. Outside
 * only, after the connections are made (tr_system_join). */
TR_API int tr_system_stop_with_node(tr_system *sys, uint16_t node);

/* Makes beh spawnable by name (beh->name, at most 63 bytes) from other nodes
 * with tr_spawn_remote. beh is borrowed for the system's life. Returns 0,
 * TR_EINVAL, TR_EEXIST (the name is taken) or TR_ENOMEM. Any thread. */
TR_API int tr_register_behavior(tr_system *sys, const tr_behavior *beh);

/* Asks node (this one included) to spawn the behaviour registered there as
 * name, with init as its init message (may be NULL; taken; it must not be
 * marked local). The answer comes as a TR_MSG_SPAWNED message with
 * tr_reply_to(ctx) == *ref: the new actor, or an error (TR_ENOENT when the
 * node has no such behaviour, TR_ENODE when the node went down first); or,
 * after timeout_ms, as TR_MSG_ASK_TIMEOUT (as for tr_ask). Returns 0,
 * TR_EINVAL, TR_ELOCAL, TR_ENODE (not connected to node) or TR_ENOMEM.
 * Handler only. */
TR_API int tr_spawn_remote(tr_ctx *ctx, uint16_t node, const char *name, tr_msg *init,
                           uint64_t timeout_ms, uint64_t *ref);

/* As tr_spawn_remote, with the answer (msg of type TR_MSG_SPAWNED) or
 * TR_ETIMEDOUT given to fn, as for tr_ask_then. Handler only. */
TR_API int tr_spawn_remote_then(tr_ctx *ctx, uint16_t node, const char *name, tr_msg *init,
                                uint64_t timeout_ms, tr_reply_fn fn, void *arg);

/* Starts program (a path) as a child node numbered node, joined to this
 * system over a socket pair with the pipe transport: tr_system_spawn_nodes
 * with count 1. Returns as that. Any thread (it waits until the child is
 * started, a few milliseconds). */
TR_API int tr_system_spawn_node(tr_system *sys, const char *program, char *const argv[],
                                uint16_t node);

/* Starts count copies of program (a path) as child nodes numbered first ..
 * first + count - 1, every node (this one included) joined to every other by
 * its own socket pair, over transport ("pipe" or "shm"). Each child is
 * exec'd (never forked) with argv (argv[0] is replaced by program;
 * NULL-terminated; may be NULL) and our environment plus TROUPE_NODE_ID,
 * TROUPE_NODE_PEERS, TROUPE_NODE_TRANSPORT, and the mesh's name and members
 * (TROUPE_NODE_MESH, TROUPE_NODE_MEMBERS); it calls tr_system_join. A
 * child's exit closes its connections: monitors of its actors get downs
 * (tr_monitor_node notices the node itself), and the same number may be
 * started again: it then rejoins every member of the mesh. Returns 0, TR_EINVAL (bad arguments, numbers that include
 * ours, or a program that could not be started) or TR_ENOMEM. Any thread (it
 * waits until the children are started). */
TR_API int tr_system_spawn_nodes(tr_system *sys, const char *program, char *const argv[],
                                 uint16_t first, unsigned count, const char *transport);

/* In a process started as a node (by tr_system_spawn_nodes or tr_launch):
 * its node number, 0 when it was not started so. Any thread. */
TR_API uint16_t tr_node_id_from_env(void);

/* Copies into buf (size bytes, at least TR_NAME_MAX + 1) the name of node:
 * this system's own (tr_config.node_name), or the one a peer gave in its
 * handshake (the last known, also once it is down). Returns 0, TR_EINVAL,
 * or TR_ENOENT when node never said hello to this system. Any thread. */
TR_API int tr_node_name(tr_system *sys, uint16_t node, char *buf, size_t size);

/* In such a process: connects sys (made with node_id tr_node_id_from_env())
 * to every peer it was given, and to the other members of its mesh that
 * are running (a node started again after a crash is given only its
 * starter); then accepts members started later. Returns 0, TR_EINVAL (not started as a node,
 * another node id, a malformed environment) or TR_ENOMEM. Any thread not in
 * a handler. */
TR_API int tr_system_join(tr_system *sys);

/* A launcher: starts count copies of program as nodes 1 .. count, each
 * joined to every other over transport ("pipe" or "shm"), and waits until
 * all have exited. status (count entries; may be NULL) receives each exit
 * status, 128 + the signal for one killed by a signal. Returns 0 once all
 * have exited, TR_EINVAL (bad arguments, or a node could not be started:
 * the others are still waited for) or TR_ENOMEM. Outside only; needs no
 * system. The tools/troupe-launch program is this function. */
TR_API int tr_launch(const char *program, char *const argv[], unsigned count,
                     const char *transport, int *status);

/* Parses what tr_addr_format writes (for logs and command lines) into *out.
 * Returns 0, or TR_EINVAL for anything else (out of range numbers, extra
 * characters). Any thread. */
TR_API int tr_addr_parse(const char *text, tr_addr *out);

/* ---- messages -------------------------------------------------------- */

/* Message flags. */
#define TR_MSG_LOCAL 0x1u   /* holds pointers: never shipped to another process */
#define TR_MSG_MSGPACK 0x2u /* the payload is one msgpack object */

/* A new message of `type` holding a copy of len bytes at data (data may be
 * NULL when len is 0). The caller owns the one reference. NULL when out of
 * memory or len exceeds 4 GiB. Any thread. */
TR_API tr_msg *tr_msg_new(uint32_t type, const void *data, size_t len);

/* A new message with len uninitialised payload bytes, for building in place:
 * *data points at them until the message is sent. NULL as for tr_msg_new.
 * Any thread. */
TR_API tr_msg *tr_msg_alloc(uint32_t type, size_t len, void **data);

/* The type tag, payload, payload size and flags. Any thread holding a reference. */
TR_API uint32_t tr_msg_type(const tr_msg *msg);
TR_API const void *tr_msg_data(const tr_msg *msg);
TR_API size_t tr_msg_size(const tr_msg *msg);
TR_API uint32_t tr_msg_flags(const tr_msg *msg);

/* Marks a message as holding pointers: it may only travel inside this process.
 * Call before the first send. Any thread owning the only reference. */
TR_API void tr_msg_set_local(tr_msg *msg);

/* A new reference to msg, to keep a received message or to send one message
 * to many actors without copying. Each reference is released once, by
 * tr_msg_unref or by sending it. Any thread holding a reference. */
TR_API tr_msg *tr_msg_ref(const tr_msg *msg);

/* Releases one reference; the message is freed after the last. Accepts NULL.
 * Any thread. */
TR_API void tr_msg_unref(tr_msg *msg);

/* Portable payloads with msgpack-c. A new message holding a copy of what buf
 * holds, flagged TR_MSG_MSGPACK. The caller keeps buf. NULL when out of
 * memory. Any thread. */
TR_API tr_msg *tr_msg_new_msgpack(uint32_t type, const msgpack_sbuffer *buf);

/* Parses a msgpack payload into *out (which the caller then destroys with
 * msgpack_unpacked_destroy, also after an error). Returns 0, TR_EINVAL, or
 * TR_EFORMAT when the payload is not exactly one msgpack object. Any thread
 * holding a reference. */
TR_API int tr_msg_unpack(const tr_msg *msg, msgpack_unpacked *out);

#ifdef __cplusplus
}
#endif
#endif /* TROUPE_H */
