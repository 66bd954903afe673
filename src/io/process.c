/* Child processes on the io loop: exec'd with libuv's process API (never a
 * fork of this threaded process), one extra fd handed over as fd 3. */
#include "loop.h"
#include "process.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct child {
    io_closable closable; /* first: the loop closes a still-open handle with it */
    uv_process_t process;
} child;

static void free_child(uv_handle_t *h) { free(h->data); }

static void on_child_exit(uv_process_t *p, int64_t status, int signal)
{
    (void)status, (void)signal;
    uv_close((uv_handle_t *)p, free_child);
}

int io_spawn_child(uv_loop_t *loop, const char *file, char *const argv[], char *const env[],
                   int fd3)
{
    child *c = calloc(1, sizeof *c);
    if (!c)
        return UV_ENOMEM;
    c->closable.on_close = free_child;
    uv_stdio_container_t stdio[4] = {
        {.flags = UV_INHERIT_FD, .data.fd = 0},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
        {.flags = UV_INHERIT_FD, .data.fd = fd3},
    };
    uv_process_options_t opt = {.exit_cb = on_child_exit, .file = file, .args = (char **)argv,
                                .env = (char **)env, .stdio_count = 4, .stdio = stdio};
    c->process.data = c;
    int rc = uv_spawn(loop, &c->process, &opt);
    if (rc != 0) {
        /* libuv requires closing the handle even when the spawn failed */
        uv_close((uv_handle_t *)&c->process, free_child);
    }
    return rc;
}
