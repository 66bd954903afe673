/* Child processes on the io loop: exec'd with libuv's process API (never a
 * fork of this threaded process), with extra fds handed over from fd 3. */
#include "loop.h"
#include "process.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct child {
    io_closable closable; /* first: the loop closes a still-open handle with it */
    uv_process_t process;
    io_child_exit_fn on_exit;
    void *arg;
} child;

static void free_child(uv_handle_t *h) { free(h->data); }

static void on_child_exit(uv_process_t *p, int64_t status, int signal)
{
    child *c = p->data;
    if (c->on_exit)
        c->on_exit(c->arg, status, signal);
    uv_close((uv_handle_t *)p, free_child);
}

int io_spawn_child(uv_loop_t *loop, const char *file, char *const argv[], char *const env[],
                   const int *fds, unsigned nfds, io_child_exit_fn on_exit, void *arg)
{
    child *c = calloc(1, sizeof *c);
    uv_stdio_container_t *stdio = calloc(3 + nfds, sizeof *stdio);
    if (!c || !stdio) {
        free(c);
        free(stdio);
        return UV_ENOMEM;
    }
    c->closable.on_close = free_child;
    c->on_exit = on_exit;
    c->arg = arg;
    for (unsigned i = 0; i < 3 + nfds; i++)
        stdio[i] = (uv_stdio_container_t){.flags = UV_INHERIT_FD,
                                          .data.fd = i < 3 ? (int)i : fds[i - 3]};
    uv_process_options_t opt = {.exit_cb = on_child_exit, .file = file, .args = (char **)argv,
                                .env = (char **)env, .stdio_count = (int)(3 + nfds),
                                .stdio = stdio};
    c->process.data = c;
    int rc = uv_spawn(loop, &c->process, &opt);
    free(stdio);
    if (rc != 0) {
        /* libuv requires closing the handle even when the spawn failed */
        uv_close((uv_handle_t *)&c->process, free_child);
    }
    return rc;
}
