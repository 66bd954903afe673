/* The shared-memory transport.
 *
 * Each side makes one ring in a memfd of its own, for what it sends, and
 * hands the memfd to the peer over the Unix socket the connection was opened
 * on (SCM_RIGHTS). The ring is a single-producer single-consumer byte ring:
 * the frames' byte stream goes in at head and out at tail, so a frame larger
 * than the ring simply passes in pieces. The socket stays for three things:
 * the memfd hand-over, wake-ups, and noticing the peer's end (EOF when its
 * process exits, however it dies).
 *
 * Wake-ups, without lost ones: a reader with nothing to read spins briefly
 * (an idle handle keeps the loop polling without sleeping, so io tasks still
 * run), then sets `reader_sleeping` and looks once more before it sleeps;
 * a writer that finds the flag set after publishing clears it and sends one
 * byte. Symmetrically a writer facing a full ring sets `writer_waiting` and
 * looks again; the reader clears it after freeing space and sends one byte.
 * All flags and positions are sequentially consistent, which makes each
 * store-then-load pair a Dekker handshake. Senders on any thread write
 * into our ring directly, under the producer lock. Readers are the loop
 * (woken, or spinning) and, between their turns, workers looking for work,
 * one at a time under the owner's lock; a worker that leaves bytes it
 * cannot handle (a control frame, a frame cut by the ring's end) kicks the
 * loop, which reads everything. Nothing is dropped: bytes that do not fit
 * wait on our side, in order, and the loop moves them in as the reader
 * frees room. */
#include "transport.h"

#include "offer.h"

#include "../io/loop.h"
#include "../platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RING_BYTES (1u << 20)
#define RING_MAGIC 0x74726f7570657231ull /* "troupér1" */

#define SPIN_NS 200000 /* how long an idle reader spins before it sleeps */
#define WATCH_MS 1     /* how often the loop looks while a worker watches the ring */

typedef struct ring {
    _Alignas(CACHE_LINE) _Atomic uint64_t head; /* bytes ever written: the writer's */
    _Atomic uint32_t reader_sleeping;           /* set by the reader */
    _Alignas(CACHE_LINE) _Atomic uint64_t tail; /* bytes ever read: the reader's */
    _Atomic uint32_t writer_waiting;            /* set by the writer */
    _Alignas(CACHE_LINE) uint64_t magic;
    uint64_t size;
    _Alignas(CACHE_LINE) unsigned char data[];
} ring;

#define MAP_BYTES (sizeof(ring) + RING_BYTES)

/* Bytes waiting on our side for room in the ring. */
typedef struct pending {
    struct pending *next;
    unsigned char *buf;
    size_t len, done;
} pending;

struct transport {
    io_closable closable; /* first: the loop closes still-open handles with it */
    uv_poll_t poll;       /* the socket */
    uv_idle_t spin;       /* active while the reader spins */
    uv_async_t kick;      /* a reader off the loop left bytes for it */
    uv_timer_t watch;     /* the next look while a worker watches the ring */
    unsigned handles;     /* still open */
    uint64_t idle_since;  /* when the spinning reader last found nothing, or 0 */
    uint64_t seen_head, seen_tail; /* the ring's positions at the loop's last look */
    int fd;
    const transport_callbacks *cb;
    void *owner;
    ring *in;  /* the peer's, to read; NULL until its memfd came */
    int error;
    bool closing; /* loop thread; `shut` tells senders */
    pthread_mutex_t lock; /* the producer side: guards what follows */
    ring *out; /* ours, to write */
    uint64_t head, tail_seen; /* our head, and the reader's tail as last seen */
    pending *first, *last;
    bool shut;
    size_t pending_bytes;
    /* pending_bytes as of the end of the last locked section: read by
     * anyone. Whoever takes it from non-zero to zero (a sender moving what
     * waited into the ring, or the loop's flush), the loop says so to the
     * owner (on_drained), drained_unsaid carrying a sender's news to it. */
    _Atomic size_t backlog;
    bool drained_unsaid;
};

/* With the lock held, at the end of a section that changed what is pending. */
static void publish_backlog(transport *t)
{
    atomic_store_explicit(&t->backlog, t->pending_bytes, memory_order_relaxed);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---- closing ----------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    transport *t = h->data;
    if (--t->handles > 0)
        return;
    /* The owner first: once it returns no sender can still be inside send
     * (the caller of send keeps the transport alive until then), so the
     * ring and the socket can go. */
    if (t->cb)
        t->cb->on_closed(t->owner, t->error);
    while (t->first) {
        pending *p = t->first;
        t->first = p->next;
        free(p->buf);
        free(p);
    }
    if (t->out)
        munmap(t->out, MAP_BYTES);
    if (t->in)
        munmap(t->in, MAP_BYTES);
    close(t->fd);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static void shm_close(transport *t)
{
    if (t->closing)
        return;
    t->closing = true;
    pthread_mutex_lock(&t->lock);
    t->shut = true; /* senders stop here */
    pthread_mutex_unlock(&t->lock);
    uv_close((uv_handle_t *)&t->poll, on_handle_closed);
    uv_close((uv_handle_t *)&t->spin, on_handle_closed);
    uv_close((uv_handle_t *)&t->kick, on_handle_closed);
    uv_close((uv_handle_t *)&t->watch, on_handle_closed);
}

static void fail(transport *t, int error)
{
    if (!t->error)
        t->error = error;
    shm_close(t);
}

/* One byte to the peer: "look at the rings". A full socket buffer means
 * wake-ups are already waiting there, which is as good; any other failure
 * means the peer is gone, which the loop learns from the socket. Any thread. */
static void wake_peer(transport *t)
{
    char b = 'w';
    ssize_t rc = send(t->fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)rc;
}

/* ---- writing ----------------------------------------------------------------- */

/* Asks the loop to look at the transport: bytes a reader off the loop
 * left, news a sender has for the owner. Any thread, not holding the lock. */
static void kick(transport *t)
{
    pthread_mutex_lock(&t->lock);
    if (!t->shut) /* the async handle is not closing yet */
        uv_async_send(&t->kick);
    pthread_mutex_unlock(&t->lock);
}


/* Copies what fits of buf into the ring; returns how much. */
static size_t ring_put(transport *t, const unsigned char *buf, size_t len)
{
    ring *r = t->out;
    uint64_t head = t->head;
    /* The reader's tail is looked up only when the last one seen leaves too
     * little room: reading its line on every write would move it here. */
    if (RING_BYTES - (size_t)(head - t->tail_seen) < len)
        t->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t room = RING_BYTES - (size_t)(head - t->tail_seen);
    size_t n = len < room ? len : room;
    size_t at = (size_t)(head & (RING_BYTES - 1)), first = RING_BYTES - at;
    if (n <= first) {
        memcpy(r->data + at, buf, n);
    } else {
        memcpy(r->data + at, buf, first);
        memcpy(r->data, buf + first, n - first);
    }
    if (n) {
        t->head = head + n;
        /* release: the bytes before the position; after_write's fence then
         * orders it before the look at the sleeping flag. */
        atomic_store_explicit(&r->head, t->head, memory_order_release);
    }
    return n;
}

/* Appends len bytes to the pending queue. With the lock held. */
static bool pend(transport *t, const unsigned char *buf, size_t len)
{
    pending *p = malloc(sizeof *p);
    unsigned char *copy = malloc(len);
    if (!p || !copy) {
        free(p);
        free(copy);
        return false;
    }
    memcpy(copy, buf, len);
    *p = (pending){.buf = copy, .len = len};
    t->pending_bytes += len;
    if (t->last)
        t->last->next = p;
    else
        t->first = p;
    t->last = p;
    return true;
}

/* Moves pending bytes into the ring, in order. With the lock held; returns
 * whether it wrote anything. */
static bool flush_locked(transport *t)
{
    bool wrote = false;
    while (t->first) {
        pending *p = t->first;
        size_t n = ring_put(t, p->buf + p->done, p->len - p->done);
        wrote |= n > 0;
        p->done += n;
        t->pending_bytes -= n;
        if (p->done < p->len) { /* full: ask the reader to say when it read */
            atomic_store(&t->out->writer_waiting, 1);
            t->tail_seen = atomic_load(&t->out->tail);
            if (t->tail_seen + RING_BYTES == t->head)
                break; /* still full: its wake-up will come */
            atomic_store(&t->out->writer_waiting, 0);
            continue;
        }
        t->first = p->next;
        if (!t->first)
            t->last = NULL;
        free(p->buf);
        free(p);
    }
    return wrote;
}

/* After writing: wakes the reader if it sleeps. Any thread. */
static void after_write(transport *t, bool wrote)
{
    if (!wrote)
        return;
    /* seq_cst: our head store before this load, against the reader's
     * sleeping store before its look at the head (a Dekker pair). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&t->out->reader_sleeping, memory_order_relaxed) &&
        atomic_exchange(&t->out->reader_sleeping, 0))
        wake_peer(t);
}

/* Loop thread: moves what waits into the ring, and tells the owner when
 * nothing waits any more. */
static void flush(transport *t)
{
    pthread_mutex_lock(&t->lock);
    bool had = t->first != NULL;
    bool wrote = !t->shut && flush_locked(t);
    bool drained = (had && !t->first) || t->drained_unsaid;
    t->drained_unsaid = false;
    publish_backlog(t);
    pthread_mutex_unlock(&t->lock);
    after_write(t, wrote);
    if (drained)
        t->cb->on_drained(t->owner);
}

static size_t shm_backlog(transport *t)
{
    return atomic_load_explicit(&t->backlog, memory_order_relaxed);
}

static int shm_send(transport *t, const void *a, size_t alen, const void *b, size_t blen,
                    bool on_loop)
{
    (void)on_loop;
    int rc = 0;
    bool wrote = false;
    bool drained = false;
    pthread_mutex_lock(&t->lock);
    if (!t->shut && t->first) { /* what waits goes first, if the reader made room */
        wrote = flush_locked(t);
        drained = !t->first;
        t->drained_unsaid |= drained;
    }
    if (t->shut) {
        rc = UV_EPIPE;
    } else if (!t->first) { /* nothing waiting ahead: straight into the ring */
        size_t n = ring_put(t, a, alen);
        wrote |= n > 0;
        if (n < alen && !pend(t, (const unsigned char *)a + n, alen - n))
            rc = UV_ENOMEM;
        if (rc == 0 && blen) {
            size_t m = t->first ? 0 : ring_put(t, b, blen);
            wrote |= m > 0;
            if (m < blen && !pend(t, (const unsigned char *)b + m, blen - m))
                rc = UV_ENOMEM;
        }
        if (t->first)
            flush_locked(t); /* sets writer_waiting, so the reader's wake-up comes */
    } else if (!pend(t, a, alen) || (blen && !pend(t, b, blen))) {
        rc = UV_ENOMEM;
    }
    publish_backlog(t);
    pthread_mutex_unlock(&t->lock);
    after_write(t, wrote);
    if (drained)
        kick(t); /* the loop says so to the owner (its thread, not ours) */
    return rc;
}

/* ---- reading ----------------------------------------------------------------- */

static void read_ring_cb(uv_idle_t *h);

static size_t shm_read(transport *t, size_t (*take)(void *arg, const void *data, size_t len),
                       void *arg, bool on_loop)
{
    ring *r = t->in;
    if (!r)
        return 0;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (head == tail)
        return 0;
    if (head - tail > RING_BYTES) { /* the peer broke the ring */
        if (on_loop)
            fail(t, UV_EPROTO);
        else
            kick(t);
        return 0;
    }
    size_t took = offer_read(r->data, RING_BYTES, tail, (size_t)(head - tail),
                             !(on_loop && t->closing), take, arg);
    if (took) {
        atomic_store(&r->tail, tail + took); /* seq_cst: then the waiting flag is read */
        if (atomic_load(&r->writer_waiting) && atomic_exchange(&r->writer_waiting, 0))
            wake_peer(t);
    }
    return took;
}

/* Whether bytes waited in the ring since the last look and no one took
 * any meanwhile; notes what it saw for the next look. */
static bool left_waiting(transport *t)
{
    uint64_t head = atomic_load(&t->in->head), tail = atomic_load(&t->in->tail);
    bool waited = t->seen_head != t->seen_tail && tail == t->seen_tail;
    t->seen_head = head;
    t->seen_tail = tail;
    return head != tail && waited;
}

static void watch_cb(uv_timer_t *h);

/* The loop's next look: on its next turn (spinning), or in WATCH_MS when a
 * worker watches the ring (no spinning then). */
static void look_again(transport *t, bool spin)
{
    if (t->closing)
        return; /* reading may have cut the connection off: no handle may start */
    if (spin) {
        uv_timer_stop(&t->watch);
        if (!uv_is_active((uv_handle_t *)&t->spin))
            uv_idle_start(&t->spin, read_ring_cb);
    } else {
        uv_idle_stop(&t->spin);
        if (!uv_is_active((uv_handle_t *)&t->watch))
            uv_timer_start(&t->watch, watch_cb, WATCH_MS, 0);
    }
}

/* Reads what came; when nothing did for SPIN_NS, arranges to sleep. The
 * loop looks again on each of its turns while it spins, or now and then
 * while a worker watches the ring (the owner's `watched`). Either way it
 * leaves new bytes to workers until its next look (they run their actors
 * at once, where the loop would hand them over): it reads only bytes that
 * waited untaken since. Woken or kicked (eager), it reads at once. */
static void read_ring(transport *t, bool eager)
{
    if (t->closing || !t->in)
        return;
    bool spin = !t->cb->watched(t->owner);
    if (!left_waiting(t) && !eager && t->seen_head != t->seen_tail) {
        t->idle_since = 0; /* bytes are coming or being taken: a worker's turn */
        look_again(t, spin);
        if (spin)
            sched_yield();
        return;
    }
    if (t->cb->on_readable(t->owner, false)) {
        t->idle_since = 0;
        flush(t); /* answers may be waiting for room */
        look_again(t, spin);
        return;
    }
    if (!spin) { /* a worker watches, and wakes us when it stops */
        t->idle_since = 0;
        look_again(t, false);
        return;
    }
    look_again(t, true);
    uint64_t now = now_ns();
    if (!t->idle_since)
        t->idle_since = now;
    if (now - t->idle_since < SPIN_NS) {
        sched_yield(); /* spin, but let a thread with work have the core */
        return;
    }
    atomic_store(&t->in->reader_sleeping, 1);
    if (atomic_load(&t->in->head) != atomic_load_explicit(&t->in->tail, memory_order_relaxed)) {
        atomic_store(&t->in->reader_sleeping, 0);
        return; /* it came as we were going to sleep */
    }
    t->idle_since = 0;
    uv_idle_stop(&t->spin); /* asleep: the writer will wake us */
}

static void watch_cb(uv_timer_t *h) { read_ring(h->data, false); }

/* Whether fd is a ring we can map safely: exactly our size, and sealed so
 * that the peer can never shrink it under us (touching a page past the end
 * of a mapped file raises SIGBUS). */
static bool ring_fd_ok(int fd)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == MAP_BYTES &&
           seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_SEAL);
}

/* Takes the peer's memfd from a message, maps it as the ring to read. */
static int take_ring(transport *t, struct msghdr *m)
{
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len < CMSG_LEN(sizeof(int)))
        return UV_EPROTO;
    int memfd;
    memcpy(&memfd, CMSG_DATA(c), sizeof memfd);
    if (t->in || c->cmsg_len != CMSG_LEN(sizeof(int)) || (m->msg_flags & MSG_CTRUNC) ||
        !ring_fd_ok(memfd)) {
        close(memfd);
        return UV_EPROTO; /* a second ring, several fds, or not a sealed ring */
    }
    void *p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    close(memfd);
    if (p == MAP_FAILED)
        return UV_EPROTO;
    ring *r = p;
    if (r->magic != RING_MAGIC || r->size != RING_BYTES) {
        munmap(p, MAP_BYTES);
        return UV_EPROTO;
    }
    t->in = r;
    return 0;
}

static void read_ring_cb(uv_idle_t *h) { read_ring(h->data, false); }

static void kick_cb(uv_async_t *h)
{
    read_ring(h->data, true);
    flush(h->data);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    transport *t = h->data;
    if (status < 0) { /* libuv reports POLLERR as EBADF: the peer reset the socket */
        t->cb->on_readable(t->owner, true); /* what it wrote before it went */
        fail(t, status == UV_EBADF ? UV_ECONNRESET : status);
        return;
    }
    if (events & (UV_READABLE | UV_DISCONNECT)) {
        for (;;) { /* wake-up bytes, the peer's memfd, or its end */
            char buf[64];
            union {
                char space[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
            } control;
            struct iovec iov = {buf, sizeof buf};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                               .msg_controllen = sizeof control.space};
            ssize_t n = recvmsg(t->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
            if (n > 0 && m.msg_controllen > 0) {
                int rc = take_ring(t, &m);
                if (rc != 0) {
                    fail(t, rc);
                    return;
                }
            } else if (n == 0) { /* the peer closed: read what it left, then end */
                t->cb->on_readable(t->owner, true);
                shm_close(t);
                return;
            } else if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno != EINTR) {
                    fail(t, uv_translate_sys_error(errno));
                    return;
                }
            }
        }
    }
    read_ring(t, true);
    flush(t);
}

/* ---- opening ------------------------------------------------------------------- */

/* Makes our ring and sends its memfd to the peer. */
static int offer_ring(transport *t)
{
    int memfd = memfd_create("troupe-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0)
        return uv_translate_sys_error(errno);
    int rc = 0;
    /* sealed at its size: the peer may rely on it never shrinking */
    if (ftruncate(memfd, MAP_BYTES) != 0 ||
        fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = uv_translate_sys_error(errno);
        goto out;
    }
    void *p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED) {
        rc = uv_translate_sys_error(errno);
        goto out;
    }
    t->out = p;
    t->out->magic = RING_MAGIC;
    t->out->size = RING_BYTES;
    char b = 'r';
    union {
        char space[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {&b, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                       .msg_controllen = sizeof control.space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &memfd, sizeof memfd);
    if (sendmsg(t->fd, &m, MSG_NOSIGNAL) != 1)
        rc = uv_translate_sys_error(errno);
out:
    close(memfd); /* the mapping (and the peer's copy) keep it alive */
    return rc;
}

static void free_unopened(uv_handle_t *h)
{
    transport *t = h->data;
    if (--t->handles > 0)
        return;
    if (t->out)
        munmap(t->out, MAP_BYTES);
    close(t->fd);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static int shm_open_fd(uv_loop_t *loop, int fd, const transport_callbacks *cb, void *owner,
                       transport **out)
{
    transport *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        return UV_ENOMEM;
    }
    t->closable.on_close = on_handle_closed;
    t->fd = fd;
    t->owner = owner;
    pthread_mutex_init(&t->lock, NULL);
    int rc = uv_poll_init(loop, &t->poll, fd);
    if (rc != 0) {
        close(fd);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return rc;
    }
    uv_idle_init(loop, &t->spin);
    uv_async_init(loop, &t->kick, kick_cb);
    uv_timer_init(loop, &t->watch);
    t->poll.data = t->spin.data = t->kick.data = t->watch.data = t;
    t->handles = 4;
    rc = offer_ring(t);
    if (rc == 0)
        rc = uv_poll_start(&t->poll, UV_READABLE | UV_DISCONNECT, on_poll);
    if (rc != 0) {
        t->closing = true;
        uv_close((uv_handle_t *)&t->poll, free_unopened); /* no on_closed: never opened */
        uv_close((uv_handle_t *)&t->spin, free_unopened);
        uv_close((uv_handle_t *)&t->kick, free_unopened);
        uv_close((uv_handle_t *)&t->watch, free_unopened);
        return rc;
    }
    t->cb = cb;
    *out = t;
    return 0;
}

const transport_ops transport_shm = {
    .scheme = "shm", .gather_max = 512, .whole_max = OFFER_BOUNCE / 2, .open = shm_open_fd, .send = shm_send, .backlog = shm_backlog,
    .read = shm_read, .wake = kick, .close = shm_close};
