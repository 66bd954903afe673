/* Child processes (loop thread only). */
#ifndef TR_IO_PROCESS_H
#define TR_IO_PROCESS_H

#include <stdint.h>
#include <uv.h>

/* Called on the loop when a child exits: its exit status, or the signal
 * that ended it (0 if none). */
typedef void (*io_child_exit_fn)(void *arg, int64_t status, int signal);

/* Starts file with argv and env (NULL = ours) as a child: its stdin, stdout
 * and stderr ours, and fds[i] (ours, still ours afterwards) as its fd 3 + i.
 * The child is reaped when it exits, and on_exit (may be NULL) told. Returns
 * 0 or a negative libuv code. */
int io_spawn_child(uv_loop_t *loop, const char *file, char *const argv[], char *const env[],
                   const int *fds, unsigned nfds, io_child_exit_fn on_exit, void *arg);

#endif
