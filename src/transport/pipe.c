/* The pipe transport: a Unix socket or pipe fd as a libuv stream. */
#include "transport.h"

#include "../io/loop.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct transport {
    io_closable closable; /* first: the loop closes a still-open handle with it */
    uv_pipe_t pipe;
    const transport_callbacks *cb;
    void *owner;
    int error;
    bool closing;
};

typedef struct write_req {
    uv_write_t req;
    void *buf;
} write_req;

static void on_handle_closed(uv_handle_t *h)
{
    transport *t = h->data;
    t->cb->on_closed(t->owner, t->error);
    free(t);
}

static void pipe_close(transport *t)
{
    if (t->closing)
        return;
    t->closing = true;
    uv_close((uv_handle_t *)&t->pipe, on_handle_closed);
}

static void fail(transport *t, int error)
{
    if (!t->error)
        t->error = error;
    pipe_close(t);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
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
    free(buf->base);
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    transport *t = req->handle->data;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        fail(t, status);
}

static void free_on_close(uv_handle_t *h) { free(h->data); }

static int pipe_open(uv_loop_t *loop, int fd, const transport_callbacks *cb, void *owner,
                     transport **out)
{
    transport *t = calloc(1, sizeof *t);
    if (!t)
        return UV_ENOMEM;
    t->closable.on_close = on_handle_closed;
    t->cb = cb;
    t->owner = owner;
    int rc = uv_pipe_init(loop, &t->pipe, 0);
    if (rc != 0) {
        free(t);
        close(fd);
        return rc;
    }
    t->pipe.data = t;
    if ((rc = uv_pipe_open(&t->pipe, fd)) != 0)
        close(fd); /* not attached: ours to close */
    else
        rc = uv_read_start((uv_stream_t *)&t->pipe, on_alloc, on_read);
    if (rc != 0) {
        t->closing = true;
        uv_close((uv_handle_t *)&t->pipe, free_on_close); /* no on_closed: never opened */
        return rc;
    }
    *out = t;
    return 0;
}

static int pipe_write(transport *t, void *buf, size_t len)
{
    write_req *w = malloc(sizeof *w);
    if (!w || t->closing) {
        free(w);
        free(buf);
        return t->closing ? UV_EPIPE : UV_ENOMEM;
    }
    w->buf = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&t->pipe, &b, 1, on_written);
    if (rc != 0) {
        free(buf);
        free(w);
        fail(t, rc);
    }
    return rc;
}

const transport_ops transport_pipe = {
    .scheme = "pipe", .open = pipe_open, .write = pipe_write, .close = pipe_close};

const transport_ops *transport_find(const char *scheme)
{
    static const transport_ops *const all[] = {&transport_pipe, &transport_shm};
    for (size_t i = 0; scheme && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(scheme, all[i]->scheme) == 0)
            return all[i];
    return NULL;
}
