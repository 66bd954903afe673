/* The pipe transport: a Unix socket or pipe fd as a libuv stream.
 *
 * A sender on any thread writes its frames to the socket itself when
 * nothing is waiting ahead of them (no gathered bytes, no write of libuv's
 * under way): one non-blocking send, no hop through the loop. Otherwise,
 * or for what the socket did not take, it appends to one output buffer
 * under the lock, and the loop thread writes out everything gathered so
 * far in one write (batching, woken by an async handle that merges
 * wake-ups). Reading is the loop's. */
#include "transport.h"

#include "../io/loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct transport {
    io_closable closable; /* first: the loop closes still-open handles with it */
    uv_pipe_t pipe;
    uv_async_t flush; /* senders off the loop ask for a write with it */
    unsigned handles; /* still open */
    const transport_callbacks *cb;
    void *owner;
    int error;
    pthread_mutex_t lock; /* guards what follows */
    bool closing;
    int fd;             /* the socket, for senders' direct writes; -1 if not a socket */
    unsigned writing;   /* libuv writes under way */
    unsigned char *out; /* gathered, not yet handed to libuv */
    size_t out_len, out_cap;
    /* Bytes sent and not yet taken by the kernel (gathered, or in a write
     * libuv has not finished): added by senders, taken off by the loop. */
    _Atomic size_t backlog;
    /* Loop thread only: where reads land (libuv reads into one buffer at a
     * time and hands it back before the next). */
    char in[64 * 1024];
};

/* What a socket's buffers are asked to hold (the kernel doubles it, and
 * caps it at net.core.wmem_max). With the default (208 KiB) a 64 B stream
 * ran at 9.1M msgs/s and took 747 ms of CPU, with 1 MiB at 10.3M and
 * 684 ms (9 interleaved runs; 512 KiB and 2 MiB helped too). */
#define SOCKET_BUFFER (1 << 20)

typedef struct write_req {
    uv_write_t req;
    unsigned char *buf;
    size_t len;
} write_req;

/* Loop thread: len bytes are no longer ours to hold; with a libuv write
 * ended (or never made), direct sends may go again. */
static void written(transport *t, size_t len, bool write_ended)
{
    if (write_ended) {
        pthread_mutex_lock(&t->lock);
        t->writing--;
        pthread_mutex_unlock(&t->lock);
    }
    if (len && atomic_fetch_sub(&t->backlog, len) == len)
        t->cb->on_drained(t->owner);
}

static void on_handle_closed(uv_handle_t *h)
{
    transport *t = h->data;
    if (--t->handles > 0)
        return;
    t->cb->on_closed(t->owner, t->error);
    pthread_mutex_destroy(&t->lock);
    free(t->out);
    free(t);
}

static void pipe_close(transport *t)
{
    pthread_mutex_lock(&t->lock);
    bool was = t->closing;
    t->closing = true; /* no sender touches the async handle after this */
    pthread_mutex_unlock(&t->lock);
    if (was)
        return;
    uv_close((uv_handle_t *)&t->pipe, on_handle_closed);
    uv_close((uv_handle_t *)&t->flush, on_handle_closed);
}

static void fail(transport *t, int error)
{
    if (!t->error)
        t->error = error;
    pipe_close(t);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    transport *t = h->data;
    *buf = uv_buf_init(t->in, sizeof t->in);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    transport *t = s->data;
    if (n > 0 && !t->closing)
        t->cb->on_data(t->owner, buf->base, (size_t)n);
    else if (n == UV_EOF)
        pipe_close(t);
    else if (n < 0)
        fail(t, (int)n);
    (void)buf; /* t->in: ours */
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    transport *t = req->handle->data;
    size_t len = w->len;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        fail(t, status);
    written(t, len, true);
}

/* Loop thread: hands everything gathered to libuv as one write. */
static void write_out(transport *t)
{
    pthread_mutex_lock(&t->lock);
    unsigned char *buf = t->out;
    size_t len = t->out_len;
    bool closing = t->closing;
    t->out = NULL;
    t->out_len = t->out_cap = 0;
    if (len && !closing)
        t->writing++; /* from now: direct sends would overtake it */
    pthread_mutex_unlock(&t->lock);
    write_req *w = len && !closing ? malloc(sizeof *w) : NULL;
    if (!w) {
        free(buf);
        if (len && !closing)
            fail(t, UV_ENOMEM);
        written(t, len, len && !closing);
        return;
    }
    w->buf = buf;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&t->pipe, &b, 1, on_written);
    if (rc != 0) {
        free(buf);
        free(w);
        fail(t, rc);
        written(t, len, true);
    }
}

static void on_flush(uv_async_t *a) { write_out(a->data); }

static void free_unopened(uv_handle_t *h)
{
    transport *t = h->data;
    if (--t->handles > 0)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static int pipe_open(uv_loop_t *loop, int fd, const transport_callbacks *cb, void *owner,
                     transport **out)
{
    transport *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        return UV_ENOMEM;
    }
    t->closable.on_close = on_handle_closed;
    t->cb = cb;
    t->owner = owner;
    pthread_mutex_init(&t->lock, NULL);
    int rc = uv_pipe_init(loop, &t->pipe, 0);
    if (rc != 0) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        close(fd);
        return rc;
    }
    t->pipe.data = t->flush.data = t;
    t->handles = 1;
    if ((rc = uv_async_init(loop, &t->flush, on_flush)) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&t->pipe, free_unopened);
        return rc;
    }
    t->handles = 2;
    int type;
    socklen_t type_len = sizeof type;
    t->fd = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 ? fd : -1;
    if (t->fd >= 0) { /* room for more in flight: the kernel may give less (wmem_max) */
        int size = SOCKET_BUFFER;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    if ((rc = uv_pipe_open(&t->pipe, fd)) != 0)
        close(fd); /* not attached: ours to close */
    else
        rc = uv_read_start((uv_stream_t *)&t->pipe, on_alloc, on_read);
    if (rc != 0) {
        t->closing = true;
        uv_close((uv_handle_t *)&t->pipe, free_unopened); /* no on_closed: never opened */
        uv_close((uv_handle_t *)&t->flush, free_unopened);
        return rc;
    }
    *out = t;
    return 0;
}

/* With the lock held and nothing waiting: sends what the socket takes now
 * of the frame; moves a, alen, b, blen past it. */
static void send_direct(transport *t, const void **a, size_t *alen, const void **b, size_t *blen)
{
    struct iovec iov[2] = {{(void *)*a, *alen}, {(void *)*b, *blen}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = *blen ? 2 : 1};
    ssize_t n = sendmsg(t->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0)
        return; /* full, or an error the loop will meet too: all goes the loop's way */
    size_t took = (size_t)n, first = took < *alen ? took : *alen;
    *a = (const unsigned char *)*a + first;
    *alen -= first;
    if (took > first) { /* b may be NULL (blen 0): no arithmetic on it then */
        *b = (const unsigned char *)*b + (took - first);
        *blen -= took - first;
    }
}

static int pipe_send(transport *t, const void *a, size_t alen, const void *b, size_t blen,
                     bool on_loop)
{
    pthread_mutex_lock(&t->lock);
    int rc = t->closing ? UV_EPIPE : 0;
    if (rc == 0 && t->fd >= 0 && t->out_len == 0 && t->writing == 0) {
        send_direct(t, &a, &alen, &b, &blen);
        if (alen + blen == 0) {
            pthread_mutex_unlock(&t->lock);
            return 0;
        }
        if (alen == 0) { /* what is left is in b: keep the code below to one part */
            a = b;
            alen = blen;
            blen = 0;
        }
    }
    size_t need = t->out_len + alen + blen;
    if (rc == 0 && need > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = realloc(t->out, cap);
        if (p) {
            t->out = p;
            t->out_cap = cap;
        } else {
            rc = UV_ENOMEM;
        }
    }
    bool first = t->out_len == 0;
    if (rc == 0) {
        memcpy(t->out + t->out_len, a, alen);
        if (blen)
            memcpy(t->out + t->out_len + alen, b, blen);
        t->out_len = need;
        atomic_fetch_add(&t->backlog, alen + blen);
    }
    if (rc == 0 && first && !on_loop)
        uv_async_send(&t->flush); /* under the lock: the handle is not closing */
    pthread_mutex_unlock(&t->lock);
    if (rc == 0 && on_loop)
        write_out(t);
    return rc;
}

static size_t pipe_backlog(transport *t) { return atomic_load(&t->backlog); }

static void pipe_pause(transport *t, bool paused)
{
    if (t->closing)
        return;
    int rc = paused ? uv_read_stop((uv_stream_t *)&t->pipe)
                    : uv_read_start((uv_stream_t *)&t->pipe, on_alloc, on_read);
    if (rc != 0)
        fail(t, rc);
}

const transport_ops transport_pipe = {.scheme = "pipe", .gather_max = 16384, .open = pipe_open, .send = pipe_send,
                                      .backlog = pipe_backlog, .pause = pipe_pause, .close = pipe_close};

const transport_ops *transport_find(const char *scheme)
{
    static const transport_ops *const all[] = {&transport_pipe, &transport_shm};
    for (size_t i = 0; scheme && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(scheme, all[i]->scheme) == 0)
            return all[i];
    return NULL;
}
