/* Child processes (loop thread only). */
#ifndef TR_IO_PROCESS_H
#define TR_IO_PROCESS_H

#include <uv.h>

/* Starts file with argv and env (NULL = ours) as a child, its stdin, stdout
 * and stderr ours, and fd3 (ours, still ours afterwards) as its fd 3. The
 * child is reaped when it exits. Returns 0 or a negative libuv code. */
int io_spawn_child(uv_loop_t *loop, const char *file, char *const argv[], char *const env[],
                   int fd3);

#endif
