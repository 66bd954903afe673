/* Meeting by name on one host: abstract Unix sockets (no file, gone with
 * the process that listens). A node listens under a name made from its
 * mesh and its number; one that starts later (restarted after a crash)
 * dials the others' names to rejoin. Only processes of our own user are
 * accepted (SO_PEERCRED). */
#ifndef TR_IO_RENDEZVOUS_H
#define TR_IO_RENDEZVOUS_H

#include "loop.h"

/* Called on the loop thread with each accepted socket, which it takes. */
typedef void (*io_accept_fn)(void *arg, int fd);

/* Listens under name (1..100 bytes) until the loop stops; each connection
 * from a process of our user goes to on_accept. Returns 0, TR_EEXIST when
 * someone listens under name already, TR_EINVAL or TR_ENOMEM. Any thread. */
int io_listen(io_loop *io, const char *name, io_accept_fn on_accept, void *arg);

/* Connects to whoever listens under name: 0 with the socket in *fd (the
 * caller's), TR_ENOENT when no one does, TR_EINVAL or TR_ENOMEM. Does not
 * block. Any thread. */
int io_dial(const char *name, int *fd);

#endif
