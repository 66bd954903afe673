/* Meeting by name: see rendezvous.h. */
#include "rendezvous.h"

#include "../platform/platform.h"

#include "troupe.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The abstract address for name: a NUL, then the name (no terminator). */
static socklen_t address_of(const char *name, struct sockaddr_un *sa)
{
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof sa->sun_path)
        return 0;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path + 1, name, len);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

typedef struct listener {
    io_closable closable; /* first: the loop closes a still-open handle with it */
    uv_poll_t poll;
    io_task task; /* the start, on the loop */
    io_accept_fn on_accept;
    void *arg;
    int fd;
} listener;

static void listener_closed(uv_handle_t *h)
{
    listener *l = h->data;
    close(l->fd);
    free(l);
}

static void on_connection(uv_poll_t *h, int status, int events)
{
    listener *l = h->data;
    (void)events;
    if (status < 0)
        return;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN: all taken; anything else: try again next time */
        struct ucred who;
        socklen_t len = sizeof who;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &who, &len) == 0 && who.uid == getuid())
            l->on_accept(l->arg, fd);
        else
            close(fd); /* another user's process */
    }
}

static void listen_on_loop(io_task *task, uv_loop_t *loop)
{
    listener *l = container_of(task, listener, task);
    if (!loop || uv_poll_init(loop, &l->poll, l->fd) != 0) {
        close(l->fd);
        free(l);
        return;
    }
    l->poll.data = l;
    uv_poll_start(&l->poll, UV_READABLE, on_connection);
}

int io_listen(io_loop *io, const char *name, io_accept_fn on_accept, void *arg)
{
    struct sockaddr_un sa;
    socklen_t sa_len = address_of(name, &sa);
    if (!io || !on_accept || sa_len == 0)
        return TR_EINVAL;
    listener *l = calloc(1, sizeof *l);
    if (!l)
        return TR_ENOMEM;
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        free(l);
        return TR_ENOMEM;
    }
    if (bind(l->fd, (struct sockaddr *)&sa, sa_len) != 0 || listen(l->fd, 64) != 0) {
        int rc = errno == EADDRINUSE ? TR_EEXIST : TR_EINVAL;
        close(l->fd);
        free(l);
        return rc;
    }
    l->closable.on_close = listener_closed;
    l->on_accept = on_accept;
    l->arg = arg;
    l->task.run = listen_on_loop;
    io_loop_submit(io, &l->task);
    return 0;
}

int io_dial(const char *name, int *fd)
{
    struct sockaddr_un sa;
    socklen_t sa_len = address_of(name, &sa);
    if (!fd || sa_len == 0)
        return TR_EINVAL;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return TR_ENOMEM;
    /* A Unix socket connects at once, or is refused: no one listens there
     * (that node is not running), or its backlog is full. */
    if (connect(s, (struct sockaddr *)&sa, sa_len) != 0) {
        close(s);
        return TR_ENOENT;
    }
    *fd = s;
    return 0;
}
