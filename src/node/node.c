/* Connections between nodes: the handshake, frames in (on the loop
 * thread), heartbeats, connecting. Frames out are send.c's; workers'
 * reading of shared memory is poll.c's.
 *
 * Receiving: the loop reads every connection. A transport whose bytes any
 * thread can see (shared memory) is read by idle workers too (poll.c); the
 * connection's read lock keeps one reader at a time. */
#include "node_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void resume_on_loop(io_task *task, uv_loop_t *loop);

int node_new(uint16_t id, const char *name, uint32_t heartbeat_ms, io_loop *io,
             const node_callbacks *cb, void *arg, node **out)
{
    if (id == 0 || !name || !*name || strlen(name) > WIRE_NAME_MAX || heartbeat_ms == 0 || !io ||
        !cb)
        return TR_EINVAL;
    node *n = calloc(1, sizeof *n);
    if (!n)
        return TR_ENOMEM;
    *n = (node){.id = id, .heartbeat_ms = heartbeat_ms, .io = io, .cb = cb, .arg = arg};
    n->lanes = calloc(UINT16_MAX + 1, sizeof *n->lanes); /* pages untouched until used */
    if (!n->lanes) {
        free(n);
        return TR_ENOMEM;
    }
    strcpy(n->name, name);
    n->resume.run = resume_on_loop;
    atomic_init(&n->handshaking, 0);
    atomic_init(&n->dropped, 0);
    *out = n;
    return 0;
}

uint64_t node_dropped(node *n) { return atomic_load(&n->dropped); }

unsigned node_handshaking(node *n) { return atomic_load(&n->handshaking); }

connection *node_route(node *n, uint16_t peer)
{
    for (connection *c = n->connections; c; c = c->next)
        if (c->peer == peer)
            return c;
    return NULL;
}

void node_free(node *n)
{
    if (!n)
        return;
    while (n->waiting) { /* only if the loop stopped during a handshake */
        frame_task *f = n->waiting;
        n->waiting = f->next_waiting;
        frame_drop(f);
    }
    for (uint32_t i = 0; i <= UINT16_MAX; i++) {
        lane *l = atomic_load_explicit(&n->lanes[i], memory_order_relaxed);
        if (l) {
            pthread_mutex_destroy(&l->lock);
            pthread_mutex_destroy(&l->poll_lock);
            free(l->waiters);
            free(l);
        }
    }
    free(n->lanes);
    free(n);
}

/* ---- frames in -------------------------------------------------------------- */

/* Logs "<what> node <peer> (<its name>): <why>" for c. */
static void log_connection(const connection *c, const char *what, const char *why)
{
    const node *n = c->node;
    bool named = c->peer_name[0] != '\0';
    fprintf(stderr, "troupe: node %u (%s): %s node %u%s%s%s: %s\n", (unsigned)n->id, n->name, what,
            (unsigned)c->peer, named ? " (" : "", c->peer_name, named ? ")" : "", why);
}

static void broken(connection *c, const char *why)
{
    atomic_store_explicit(&c->cut, true, memory_order_relaxed); /* workers stop reading it */
    if (!c->why) {
        c->why = why;
        log_connection(c, "closing the connection to", why);
    }
    c->ops->close(c->t);
}

/* Decodes a control body of shape into f, or cuts the connection off. */
static bool control_in(connection *c, const wire_header *h, const unsigned char *body,
                       const char *shape, msgpack_unpacked *up, wire_field *f)
{
    const char *why = NULL;
    msgpack_unpacked_init(up);
    if (wire_array_decode(body, h->length, shape, up, f, &why) == 0)
        return true;
    msgpack_unpacked_destroy(up);
    broken(c, why);
    return false;
}

static void name_copy(char out[WIRE_NAME_MAX + 1], const wire_field *f)
{
    memcpy(out, f->ptr, f->len);
    out[f->len] = '\0';
}

static void batch_flush(connection *c, batch *b, bool must);

static void named_send_in(connection *c, const wire_header *h, const unsigned char *body)
{
    msgpack_unpacked up;
    wire_field f[2];
    if (!control_in(c, h, body, "sb", &up, f))
        return;
    char name[WIRE_NAME_MAX + 1];
    name_copy(name, &f[0]);
    tr_msg *m = node_message_of(h->type, h->flags, f[1].ptr, f[1].len);
    msgpack_unpacked_destroy(&up);
    if (!m)
        return;
    /* Then as a plain send: it counts toward a hold, and waits here when
     * its mailbox is bounded and full. */
    batch b = {.to = c->node->cb->whereis(c->node->arg, name), .n = 1};
    b.items[0] = (node_item){(tr_addr){h->from}, m, 0};
    if (tr_addr_is_none(b.to))
        tr_msg_unref(m); /* a dead letter */
    else
        batch_flush(c, &b, false);
}

static void spawn_in(connection *c, const wire_header *h, const unsigned char *body)
{
    msgpack_unpacked up;
    wire_field f[4];
    if (!control_in(c, h, body, "sbuu", &up, f))
        return;
    char name[WIRE_NAME_MAX + 1];
    name_copy(name, &f[0]);
    tr_msg *init = NULL;
    if (f[1].ptr && !(init = node_message_of((uint32_t)f[2].u, h->flags, f[1].ptr, f[1].len))) {
        msgpack_unpacked_destroy(&up);
        node_spawn_reply(c->node, c->peer, (tr_addr){h->from}, TR_ADDR_NONE, f[3].u, TR_ENOMEM);
        return;
    }
    msgpack_unpacked_destroy(&up);
    c->node->cb->spawn(c->node->arg, c->peer, name, init, (tr_addr){h->from}, f[3].u);
}

static void spawn_reply_in(connection *c, const wire_header *h, const unsigned char *body)
{
    msgpack_unpacked up;
    wire_field f[2];
    if (!control_in(c, h, body, "ui", &up, f))
        return;
    msgpack_unpacked_destroy(&up);
    c->node->cb->spawn_reply(c->node->arg, (tr_addr){h->to}, (tr_addr){h->from}, f[0].u,
                             (int)f[1].i);
}

/* Whether every message read must go to its actor now, room or not: the
 * node is leaving or the transport ending, and reading goes on regardless
 * of holds. Loop thread. */
static bool reading_to_the_end(const connection *c) { return c->bye != BYE_NONE || c->last_read; }

/* Hands b's messages over (must: all of them, room or not). Loop thread. */
static void batch_flush(connection *c, batch *b, bool must)
{
    if (b->n && connection_deliver(c, b, NULL, must || reading_to_the_end(c)) < 0) {
        for (unsigned i = 0; i < b->n; i++)
            tr_msg_unref(b->items[i].msg);
        b->n = 0;
        broken(c, "a runtime message this peer may not send, or with a malformed payload");
    }
}

/* A SEND's ask reference, if its flags say it has one: moves body and len
 * past it. False when it is missing or zero. */
bool node_ask_ref(const wire_header *h, const unsigned char **body, size_t *len, uint64_t *ref)
{
    *ref = 0;
    if (!(h->flags & WIRE_FLAG_REF))
        return true;
    if (*len < sizeof *ref || (*ref = wire_get64(*body)) == 0)
        return false;
    *body += sizeof *ref;
    *len -= sizeof *ref;
    return true;
}

static void send_in(connection *c, batch *b, const wire_header *h, const unsigned char *body)
{
    node *n = c->node;
    uint64_t ref;
    size_t len = h->length;
    if (!node_ask_ref(h, &body, &len, &ref)) {
        broken(c, "a send with a missing or zero ask reference");
        return;
    }
    tr_msg *m = node_message_of(h->type, h->flags, body, len);
    if (!m)
        return;
    if (!(h->flags & WIRE_FLAG_SYSTEM)) { /* user lane: batched per receiver */
        if (b->n && b->to.bits != h->to)
            batch_flush(c, b, false);
        if (c->why) {
            tr_msg_unref(m);
            return;
        }
        b->to = (tr_addr){h->to};
        b->items[b->n++] = (node_item){(tr_addr){h->from}, m, ref};
        /* Full: out now, so that a hold it causes stops the reading before
         * the next frame, which may be for the same actor. */
        if (b->n == BATCH_MAX)
            batch_flush(c, b, false);
        return;
    }
    /* A system-lane message keeps its place after the user ones: they all
     * go, even into a full mailbox (none can wait behind it). */
    batch_flush(c, b, true);
    if (!c->why && n->cb->deliver(n->arg, (tr_addr){h->from}, (tr_addr){h->to}, m, true, ref) != 0)
        broken(c, "a runtime message this peer may not send, or with a malformed payload");
    else if (c->why)
        tr_msg_unref(m);
}

static void on_data(void *owner, const void *data, size_t len);
static void goodbye_said(node *n);

/* c's handshake is done: its peer is node peer. With waited, frames came
 * while it waited for an older connection to end: they are read now. */
static void connection_up(connection *c, uint16_t peer, bool waited)
{
    static const unsigned char nothing[1];
    node *n = c->node;
    c->peer = peer;
    c->claims = 0;
    n->cb->connection_up(n->arg, peer, c->peer_name);
    handshake_over(n, peer);
    if (waited)
        on_data(c, nothing, 0);
    lane_set(n, peer, c); /* after what waited: direct sends come behind it */
}

/* The connection to peer ended: a newer one that waited for that takes over. */
static void claim_settled(node *n, uint16_t peer)
{
    for (connection *c = n->connections; c; c = c->next)
        if (c->claims == peer && !c->why) {
            connection_up(c, peer, true);
            return;
        }
}

static void hello_in(connection *c, const wire_header *h, const unsigned char *body)
{
    node *n = c->node;
    wire_hello hello;
    const char *why = "expected a HELLO first";
    if (h->op != WIRE_HELLO || wire_hello_decode(body, h->length, &hello, &why) != 0) {
        broken(c, why);
        return;
    }
    if (hello.node == 0 || hello.node == n->id) {
        broken(c, "the peer's node number is 0, or ours");
        return;
    }
    if (c->expected && hello.node != c->expected) {
        broken(c, "the peer is not the node expected on this connection");
        return;
    }
    for (size_t i = 0; (c->peer_name[i] = hello.name[i]); i++)
        if ((unsigned char)hello.name[i] < 0x20 || hello.name[i] == 0x7f)
            c->peer_name[i] = '?'; /* it goes to logs: no control characters */
    if (node_route(n, hello.node)) { /* wait: the old one may be about to end */
        c->claims = hello.node;
        c->claimed_at = uv_now(n->loop);
        return;
    }
    connection_up(c, hello.node, false);
}

static void frame_in(connection *c, batch *b, const wire_header *h, const unsigned char *body)
{
    if (c->peer == 0) { /* the first frame must be the peer's HELLO */
        hello_in(c, h, body);
        return;
    }
    if (c->bye == BYE_SAID && h->op != WIRE_GOODBYE)
        return; /* we are leaving: only the peer's goodbye matters */
    if (h->op == WIRE_SEND) {
        send_in(c, b, h, body);
        return;
    }
    /* What came before goes first, all of it (nothing may wait behind a
     * control frame; a heartbeat has no place in the order). */
    batch_flush(c, b, h->op != WIRE_HEARTBEAT);
    if (c->why)
        return;
    switch (h->op) {
    case WIRE_NAMED_SEND:
        named_send_in(c, h, body);
        return;
    case WIRE_SPAWN:
        spawn_in(c, h, body);
        return;
    case WIRE_SPAWN_REPLY:
        spawn_reply_in(c, h, body);
        return;
    case WIRE_HEARTBEAT:
        if (h->length != 0)
            broken(c, "a heartbeat with a body");
        return;
    case WIRE_GOODBYE: /* the peer ends in order: nothing follows */
        if (h->length != 0) {
            broken(c, "a goodbye with a body");
            return;
        }
        c->bye = BYE_HEARD;
        atomic_store_explicit(&c->cut, true, memory_order_relaxed);
        c->ops->close(c->t);
        return;
    default:
        broken(c, h->op == WIRE_HELLO ? "a second HELLO" : "an operation this node does not support");
    }
}

/* Whether c's reading waits for an actor now: not once the node is leaving
 * or the transport ending, when every byte still counts. Loop thread. */
static bool reading_held(const connection *c) { return !reading_to_the_end(c) && connection_held(c); }

void connection_hold(connection *c, tr_addr to)
{
    node *n = c->node;
    /* (Not c->bye: the loop's alone. A hold made as the node says goodbye
     * stops nothing: reading_held ignores it, and cut stops the workers.) */
    if (connection_held(c) || c->last_read || atomic_load(&n->stopped))
        return; /* (stopped: no actor drains to end a hold) */
    /* seq_cst: the mark before the actor's flag (hold), so that a drain
     * clearing the flag after this finds the mark when it resumes us. */
    atomic_store(&c->held_on, to.bits);
    if (n->cb->hold(n->arg, to))
        atomic_fetch_add_explicit(&n->holds, 1, memory_order_relaxed); /* a statistic */
    else
        atomic_store(&c->held_on, 0); /* it drained meanwhile */
}

int connection_deliver(connection *c, batch *b, void *worker, bool must)
{
    node *n = c->node;
    if (c->kept.n && b != &c->kept)
        must = true; /* one run waits at most: this one is for another actor */
    while (b->n) {
        unsigned taken = b->n;
        int rc = n->cb->deliver_batch(n->arg, worker, b->to, b->items, b->n, must, &taken);
        if (rc < 0)
            return rc;
        if (rc == NODE_OVERLOADED)
            connection_hold(c, b->to);
        if (taken == b->n) {
            b->n = 0;
            break;
        }
        /* A full bounded mailbox: the rest waits, ahead of whatever comes
         * after it, until that actor drains and the hold ends (unhold).
         * No hold (it drained meanwhile, or it is parked itself and so is
         * never waited for): the rest goes now, room or not. */
        b->n -= taken;
        memmove(b->items, b->items + taken, b->n * sizeof b->items[0]);
        if (connection_held(c)) {
            if (b != &c->kept) {
                c->kept.to = b->to;
                c->kept.n = b->n;
                memcpy(c->kept.items, b->items, b->n * sizeof b->items[0]);
                b->n = 0;
            }
            break;
        }
        must = true;
    }
    return 0;
}

/* Whether the len bytes at p, with nothing held in c's reader, are only
 * the first part of a frame of at most `keep` bytes: a part the loop may
 * leave with its transport until the frame is whole. */
static bool small_tail(const connection *c, const unsigned char *p, size_t len, size_t keep)
{
    if (!keep || len == 0 || c->reader.start != c->reader.end || c->claims || !c->peer)
        return false;
    size_t frame = len < WIRE_HEADER_SIZE ? WIRE_HEADER_SIZE
                                          : WIRE_HEADER_SIZE + (size_t)wire_get32(p + 8);
    return frame > len && frame <= keep;
}

/* Frames in: what arrived, or (keep > 0) all of it but the part of a frame
 * of at most keep bytes at its end. Returns how many bytes it took. */
static size_t frames_in(connection *c, const unsigned char *data, size_t len, size_t keep)
{
    if (c->why || c->bye == BYE_HEARD)
        return len; /* closing: ignore the rest */
    if (small_tail(c, data, len, keep))
        return 0; /* not for nothing: a tail alone is not a sign of life */
    c->last_in = uv_now(c->node->loop);
    wire_header h;
    const unsigned char *body, *at = data;
    const char *why = NULL;
    int rc = 0;
    batch b;
    b.n = 0;
    if (c->claims) { /* waiting to take over from an older connection: keep it all */
        if (len && wire_reader_feed(&c->reader, data, len) != 0)
            broken(c, "out of memory");
        return len;
    }
    if (c->kept.n && !reading_held(c)) /* the end: what waited goes first */
        batch_flush(c, &c->kept, true);
    while (!c->why && c->bye != BYE_HEARD && !c->claims && !reading_held(c) &&
           !small_tail(c, at, len, keep) &&
           (rc = wire_reader_next_in(&c->reader, &at, &len, &h, &body, &why)) == 1)
        frame_in(c, &b, &h, body);
    if (c->claims && len && wire_reader_feed(&c->reader, at, len) != 0)
        broken(c, "out of memory"); /* the HELLO made it wait: the rest waits too */
    if (!c->why)
        batch_flush(c, &b, false);
    for (unsigned i = 0; i < b.n; i++) /* cut off meanwhile: what was gathered goes */
        tr_msg_unref(b.items[i].msg);
    if (!c->why && rc < 0)
        broken(c, rc == TR_ENOMEM ? "out of memory" : why);
    if (!c->why && !c->claims && len && reading_held(c)) { /* (reading_held: no goodbye either) */
        if (c->ops->read)
            return (size_t)(at - data); /* the rest waits in the ring */
        if (wire_reader_feed(&c->reader, at, len) != 0) { /* the rest of this read waits here */
            broken(c, "out of memory");
        } else if (!c->paused) { /* and the stream behind it in the socket */
            c->paused = true;
            c->ops->pause(c->t, true);
        }
        return (size_t)(at - data) + len;
    }
    /* a tail left: it stays with the transport; otherwise all was taken */
    return c->why || c->claims || c->bye == BYE_HEARD || !small_tail(c, at, len, keep)
               ? (size_t)(at - data) + len
               : (size_t)(at - data);
}

static void on_data(void *owner, const void *data, size_t len) { frames_in(owner, data, len, 0); }

static void on_closed(void *owner, int error)
{
    connection *c = owner;
    node *n = c->node;
    const char *why = c->why;
    if (!why && wire_reader_finish(&c->reader, &why) != 0)
        log_connection(c, "connection to", why);
    else if (!why && error && error != UV_ECONNRESET && error != UV_EPIPE) /* not just gone */
        log_connection(c, "lost the connection to", uv_strerror(error));
    for (connection **p = &n->connections; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    if (c->peer == 0) /* it never finished its handshake */
        handshake_over(n, 0);
    else {
        lane_set(n, c->peer, NULL); /* no sender nor reader finds it after this */
        lane_release_waiters(n, c->peer); /* nothing will drain: let them go on */
    }
    pthread_mutex_lock(&c->read_lock); /* a worker still reading has finished */
    pthread_mutex_unlock(&c->read_lock);
    pthread_mutex_destroy(&c->read_lock);
    /* Messages a full mailbox left waiting came before the end: they go
     * first, before any down this end causes (all taken: they were
     * accepted once, and with must nothing is left). */
    connection_deliver(c, &c->kept, NULL, true);
    uint16_t peer = c->peer;
    n->cb->connection_closed(n->arg, c->peer ? c->peer : c->expected, why ? TR_EPROTO : error,
                             why);
    wire_reader_fini(&c->reader);
    free(c);
    if (peer) /* its downs first, then a newer connection's up */
        claim_settled(n, peer);
    if (n->goodbye && !n->connections)
        goodbye_said(n);
}

/* read's take on the loop: everything, through the reader, but for the
 * part of a small frame at the end (unless c->last_read). That part stays
 * with the transport, where a worker can read the frame once it is whole:
 * taken into the reader, it would keep workers out until the loop had read
 * its end. */
static size_t take_all(void *arg, const void *data, size_t len)
{
    connection *c = arg;
    return frames_in(c, data, len, c->last_read ? 0 : c->ops->whole_max);
}

static bool on_readable(void *owner, bool last)
{
    connection *c = owner;
    if (!last && pthread_mutex_trylock(&c->read_lock) != 0)
        return true; /* a worker is reading */
    if (last) {
        pthread_mutex_lock(&c->read_lock);
        c->last_read = true; /* every byte now: a frame cut short is the peer's fault */
    }
    size_t took = c->ops->read(c->t, take_all, c, true);
    pthread_mutex_unlock(&c->read_lock);
    return took > 0;
}

/* Whether a worker polls c, so that the loop need not spin on it. */
static bool watched(void *owner)
{
    connection *c = owner;
    /* Held: the loop need not spin either; node_resume wakes it. */
    return connection_held(c) || (c->polled && atomic_load(&c->node->poller) != NULL);
}

static void on_drained(void *owner)
{
    connection *c = owner;
    if (c->peer)
        lane_release_waiters(c->node, c->peer);
}

static const transport_callbacks connection_callbacks = {
    .on_data = on_data, .on_readable = on_readable, .watched = watched,
    .on_drained = on_drained, .on_closed = on_closed};

/* ---- holding: an overloaded actor stops the reading that feeds it ------------ */

/* Loop thread: c reads again, first the messages a full mailbox left it
 * (kept), then what its reader kept (pipe: the rest of the read that met
 * the hold; any transport: frames that waited there for an older
 * connection to end); either may hold it again. */
static void unhold(connection *c)
{
    static const unsigned char nothing[1];
    atomic_store(&c->held_on, 0);
    if (c->why || c->bye == BYE_HEARD)
        return; /* closing: on_closed delivers what was kept */
    /* Under the read lock: from the moment held_on is 0 a worker may read
     * (it does not while something is kept), and make a kept run itself. */
    pthread_mutex_lock(&c->read_lock);
    batch_flush(c, &c->kept, false);
    if (!c->why && !connection_held(c) && !c->claims && c->reader.start != c->reader.end)
        frames_in(c, nothing, 0, 0);
    pthread_mutex_unlock(&c->read_lock);
    if (c->why || connection_held(c))
        return;
    if (c->paused) {
        c->paused = false;
        c->ops->pause(c->t, false);
    } else if (c->ops->wake) {
        c->ops->wake(c->t); /* the loop reads at once if no worker does */
    }
}

/* Loop thread: every connection held on an actor that has drained since
 * (or on any actor, once the workers have stopped) reads again. */
static void resume_on_loop(io_task *task, uv_loop_t *loop)
{
    node *n = container_of(task, node, resume);
    atomic_store(&n->resume_queued, false); /* a drain from now on queues us again */
    if (!loop)
        return;
    bool stopped = atomic_load(&n->stopped);
    for (connection *c = n->connections; c; c = c->next) {
        uint64_t to = atomic_load(&c->held_on);
        if (to && (stopped || !n->cb->holding(n->arg, (tr_addr){to})))
            unhold(c);
    }
}

void node_resume(node *n)
{
    if (!atomic_exchange(&n->resume_queued, true))
        io_loop_submit(n->io, &n->resume);
}

void node_set_running(node *n, bool running)
{
    if (!n)
        return;
    /* seq_cst: a hold made before this is undone by the resume below; one
     * after sees the flag (connection_hold). */
    atomic_store(&n->stopped, !running);
    if (!running)
        node_resume(n);
}

uint64_t node_holds(node *n) { return atomic_load_explicit(&n->holds, memory_order_relaxed); }

/* ---- heartbeats ------------------------------------------------------------------ */

/* A frame with no body (heartbeat, hello's header aside) to c. */
static void empty_frame_out(connection *c, uint8_t op)
{
    wire_header h = {.op = op};
    size_t len;
    unsigned char *bytes = frame_bytes(&h, NULL, &len);
    if (bytes)
        connection_write(c, bytes, len);
}

static void on_beat(uv_timer_t *t)
{
    node *n = ((beat_timer *)t->data)->node;
    uint64_t now = uv_now(n->loop), beat = n->heartbeat_ms;
    for (connection *c = n->connections, *next; c; c = next) {
        next = c->next; /* broken() only starts closing: c stays listed */
        if (c->why || c->bye != BYE_NONE)
            continue;
        if (atomic_exchange_explicit(&c->heard, false, memory_order_relaxed) ||
            connection_held(c))
            c->last_in = now; /* workers read from it, or we do not read: not its silence */
        if (c->claims && now - c->claimed_at >= NODE_SILENT_BEATS * beat) {
            broken(c, "the peer's node is connected already, and that connection goes on");
            continue;
        }
        /* A peer still starting (a new process, maybe under a sanitizer on a
         * loaded machine) gets longer to say hello than one to keep talking. */
        uint64_t limit = c->peer ? NODE_SILENT_BEATS * beat
                                 : (NODE_HELLO_MS > NODE_SILENT_BEATS * beat ? NODE_HELLO_MS
                                                                            : NODE_SILENT_BEATS * beat);
        if (now - c->last_in >= limit)
            broken(c, c->peer ? "the peer fell silent (no heartbeat)" : "no HELLO in time");
        else if (now - c->last_out >= beat)
            empty_frame_out(c, WIRE_HEARTBEAT);
    }
}

static void free_beat(uv_handle_t *h) { free(h->data); }

static void start_beating(node *n, uv_loop_t *loop)
{
    if (n->beat)
        return;
    n->loop = loop;
    n->beat = calloc(1, sizeof *n->beat);
    if (!n->beat)
        return; /* no heartbeats: only a closed stream will tell a peer is down */
    n->beat->closable.on_close = free_beat;
    n->beat->node = n;
    uv_timer_init(loop, &n->beat->timer);
    n->beat->timer.data = n->beat; /* the loop's close-all finds the closable here */
    uv_timer_start(&n->beat->timer, on_beat, n->heartbeat_ms, n->heartbeat_ms);
}

/* ---- connecting ---------------------------------------------------------------- */

typedef struct connect_task {
    io_task task;
    node *node;
    const transport_ops *ops;
    int fd;
    uint16_t expected;
} connect_task;

static void hello_out(connection *c)
{
    wire_hello hello = {.version = WIRE_VERSION, .node = c->node->id};
    strcpy(hello.name, c->node->name);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    wire_hello_encode(&hello, &buf);
    wire_header h = {.op = WIRE_HELLO, .length = (uint32_t)buf.size};
    size_t len;
    unsigned char *bytes = frame_bytes(&h, buf.data, &len);
    if (bytes)
        connection_write(c, bytes, len);
    msgpack_sbuffer_destroy(&buf);
}

static void connect_on_loop(io_task *task, uv_loop_t *loop)
{
    connect_task *ct = container_of(task, connect_task, task);
    node *n = ct->node;
    connection *c = loop ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        close(ct->fd);
        atomic_fetch_sub(&n->handshaking, 1);
        n->cb->connection_closed(n->arg, ct->expected, TR_ENOMEM, "could not open the connection");
        free(ct);
        return;
    }
    start_beating(n, loop);
    pthread_mutex_init(&c->read_lock, NULL);
    c->node = n;
    c->ops = ct->ops;
    c->expected = ct->expected;
    c->last_in = c->last_out = uv_now(loop);
    wire_reader_init(&c->reader, 0);
    int rc = ct->ops->open(loop, ct->fd, &connection_callbacks, c, &c->t);
    free(ct);
    if (rc != 0) {
        wire_reader_fini(&c->reader);
        pthread_mutex_destroy(&c->read_lock);
        handshake_over(n, 0);
        n->cb->connection_closed(n->arg, c->expected, TR_EINVAL,
                                 "the transport could not open the endpoint");
        free(c);
        return;
    }
    c->next = n->connections;
    n->connections = c;
    hello_out(c);
}

int node_connect(node *n, const char *scheme, int fd, uint16_t expected)
{
    const transport_ops *ops = transport_find(scheme);
    if (!n || !ops || fd < 0)
        return TR_EINVAL;
    connect_task *ct = malloc(sizeof *ct);
    if (!ct)
        return TR_ENOMEM;
    *ct = (connect_task){.task.run = connect_on_loop, .node = n, .ops = ops, .fd = fd,
                         .expected = expected};
    /* counted from now, so a send made right after waits for this handshake */
    atomic_fetch_add(&n->handshaking, 1);
    io_loop_submit(n->io, &ct->task);
    return 0;
}

/* ---- saying goodbye -------------------------------------------------------------- */

typedef struct goodbye {
    io_waited waited;
    io_closable closable; /* the deadline's: first of what the timer's data points to */
    uv_timer_t deadline;
    node *node;
} goodbye;

static void deadline_closed(uv_handle_t *h)
{
    io_waited_done(&container_of(h, goodbye, deadline)->waited);
}

/* Every connection has closed: node_goodbye may return, once the timer is. */
static void goodbye_said(node *n)
{
    goodbye *g = n->goodbye;
    n->goodbye = NULL;
    uv_close((uv_handle_t *)&g->deadline, deadline_closed);
}

static void goodbye_late(uv_timer_t *t)
{
    goodbye *g = container_of(t, goodbye, deadline);
    for (connection *c = g->node->connections; c; c = c->next)
        if (!c->why && c->bye != BYE_HEARD) /* not closing already */
            broken(c, "no answer to our goodbye in time");
}

static void goodbye_on_loop(io_task *task, uv_loop_t *loop)
{
    goodbye *g = container_of(task, goodbye, waited.task);
    node *n = g->node;
    if (!loop || !n->connections) {
        io_waited_done(&g->waited);
        return;
    }
    n->goodbye = g;
    uv_timer_init(loop, &g->deadline);
    g->deadline.data = &g->closable;
    g->closable.on_close = deadline_closed;
    uv_timer_start(&g->deadline, goodbye_late, (uint64_t)NODE_SILENT_BEATS * n->heartbeat_ms, 0);
    for (connection *c = n->connections; c; c = c->next) {
        if (c->why || c->bye != BYE_NONE)
            continue; /* closing already */
        atomic_store_explicit(&c->cut, true, memory_order_relaxed); /* workers read no more */
        if (!c->peer || c->claims) { /* no peer yet to say it to */
            c->bye = BYE_HEARD;
            c->ops->close(c->t);
            continue;
        }
        empty_frame_out(c, WIRE_GOODBYE); /* after everything sent before */
        c->bye = BYE_SAID; /* from now on only the peer's goodbye is read */
        if (connection_held(c))
            unhold(c); /* no actor runs any more to drain */
    }
}

void node_goodbye(node *n)
{
    if (!n)
        return;
    goodbye g = {.waited.task.run = goodbye_on_loop, .node = n};
    io_loop_submit_wait(n->io, &g.waited);
}
