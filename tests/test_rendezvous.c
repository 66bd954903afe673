/* Tests for src/io/rendezvous.c: meeting by name on one host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "io/loop.h"
#include "io/rendezvous.h"
#include "troupe.h"

static _Atomic int accepted_fd = -1;

static void on_accept(void *arg, int fd)
{
    (void)arg;
    atomic_store(&accepted_fd, fd);
}

/* A unique name for this run, so parallel runs never meet. */
static void name_for(char *out, size_t size, const char *what)
{
    snprintf(out, size, "troupe-test-%d-%s", (int)getpid(), what);
}

static void dial__no_one_listens__enoent(void **state)
{
    (void)state;
    char name[64];
    name_for(name, sizeof name, "nobody");
    int fd = -1;
    assert_int_equal(io_dial(name, &fd), TR_ENOENT);
    assert_int_equal(fd, -1);
}

static void listen__bad_names__einval(void **state)
{
    (void)state;
    io_loop *io;
    assert_int_equal(io_loop_new(NULL, &io), 0);
    char longer[200];
    for (size_t i = 0; i < sizeof longer - 1; i++)
        longer[i] = 'x';
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(io_listen(io, "", on_accept, NULL), TR_EINVAL);
    assert_int_equal(io_listen(io, longer, on_accept, NULL), TR_EINVAL);
    int fd;
    assert_int_equal(io_dial(longer, &fd), TR_EINVAL);
    io_loop_free(io);
}

/* A dialled connection reaches the listener's callback as a connected
 * socket; the name is taken while it listens, and free once its loop
 * has stopped. */
static void listen_then_dial__connected_once_name_freed_after(void **state)
{
    (void)state;
    char name[64];
    name_for(name, sizeof name, "meet");
    io_loop *io;
    assert_int_equal(io_loop_new(NULL, &io), 0);
    atomic_store(&accepted_fd, -1);
    assert_int_equal(io_listen(io, name, on_accept, NULL), 0);
    assert_int_equal(io_listen(io, name, on_accept, NULL), TR_EEXIST);
    int fd = -1;
    assert_int_equal(io_dial(name, &fd), 0);
    for (int i = 0; i < 5000 && atomic_load(&accepted_fd) < 0; i++)
        usleep(1000);
    int other = atomic_load(&accepted_fd);
    assert_true(other >= 0);
    assert_int_equal(write(fd, "hi", 2), 2); /* the two ends are one connection */
    char got[2];
    assert_int_equal(read(other, got, 2), 2);
    assert_memory_equal(got, "hi", 2);
    close(fd);
    close(other);
    io_loop_free(io); /* closes the listener: the name is free again */
    assert_int_equal(io_dial(name, &fd), TR_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dial__no_one_listens__enoent),
        cmocka_unit_test(listen__bad_names__einval),
        cmocka_unit_test(listen_then_dial__connected_once_name_freed_after),
    };
    return cmocka_run_group_tests_name("rendezvous", tests, NULL, NULL);
}
