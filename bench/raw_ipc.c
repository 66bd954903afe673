/* raw_ipc — the machine's own limits for moving messages between two
 * processes, with no runtime around them: the yardstick for bench/nodes.
 *
 *   raw_ipc shm-stream SIZE N    one process writes N messages of SIZE bytes
 *                                into a shared-memory ring, the other reads
 *                                them; both spin (no sleeping)
 *   raw_ipc shm-pingpong N       a message back and forth through shared
 *                                memory, both spinning
 *   raw_ipc pipe-stream SIZE N   the same stream through a pipe in 64 KiB writes
 *   raw_ipc pipe-pingpong N      64 bytes back and forth over two pipes
 *
 * A single-threaded program, so fork() is fine here. Prints the usual
 * result line (rate = messages or round trips per second, mb_s for streams).
 */
#include "bench.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define RING (1u << 20)

typedef struct {
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) unsigned char data[RING];
} ring;

static void *shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static void copy_in(ring *r, uint64_t at, const unsigned char *p, size_t n)
{
    size_t i = (size_t)(at & (RING - 1)), first = RING - i < n ? RING - i : n;
    memcpy(r->data + i, p, first);
    memcpy(r->data, p + first, n - first);
}

static void copy_out(ring *r, uint64_t at, unsigned char *p, size_t n)
{
    size_t i = (size_t)(at & (RING - 1)), first = RING - i < n ? RING - i : n;
    memcpy(p, r->data + i, first);
    memcpy(p + first, r->data, n - first);
}

static void shm_stream(size_t size, long n)
{
    ring *r = shared(sizeof *r);
    unsigned char msg[4096] = {0};
    if (fork() == 0) { /* the reader */
        uint64_t tail = 0, sum = 0;
        for (long i = 0; i < n; i++) {
            while (atomic_load_explicit(&r->head, memory_order_acquire) - tail < size)
                ;
            copy_out(r, tail, msg, size);
            sum += msg[0];
            tail += size;
            atomic_store_explicit(&r->tail, tail, memory_order_release);
        }
        _exit(sum == (uint64_t)n * 7 ? 0 : 1);
    }
    double t0 = bench_now();
    uint64_t head = 0;
    msg[0] = 7;
    for (long i = 0; i < n; i++) {
        while (head + size - atomic_load_explicit(&r->tail, memory_order_acquire) > RING)
            ;
        copy_in(r, head, msg, size);
        head += size;
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    int status;
    wait(&status);
    double secs = bench_now() - t0;
    char extra[64];
    snprintf(extra, sizeof extra, "size=%zu mb_s=%.1f", size, (double)n * (double)size / secs / 1e6);
    char name[64];
    snprintf(name, sizeof name, "raw_shm_stream_%zu", size);
    bench_report(name, n, secs, extra);
}

static void shm_pingpong(long n)
{
    _Atomic uint64_t *ball = shared(2 * 64); /* [0]: to the child, [8]: back */
    if (fork() == 0) {
        for (uint64_t i = 1; i <= (uint64_t)n; i++) {
            while (atomic_load_explicit(&ball[0], memory_order_acquire) != i)
                ;
            atomic_store_explicit(&ball[8], i, memory_order_release);
        }
        _exit(0);
    }
    double t0 = bench_now();
    for (uint64_t i = 1; i <= (uint64_t)n; i++) {
        atomic_store_explicit(&ball[0], i, memory_order_release);
        while (atomic_load_explicit(&ball[8], memory_order_acquire) != i)
            ;
    }
    double secs = bench_now() - t0;
    wait(NULL);
    char extra[64];
    snprintf(extra, sizeof extra, "rtt_us=%.2f", secs / (double)n * 1e6);
    bench_report("raw_shm_pingpong", n, secs, extra);
}

static void pipe_stream(size_t size, long n)
{
    int p[2];
    if (pipe(p) != 0)
        exit(1);
    static unsigned char buf[65536];
    size_t total = (size_t)n * size;
    if (fork() == 0) {
        close(p[1]);
        size_t got = 0;
        ssize_t k;
        while ((k = read(p[0], buf, sizeof buf)) > 0)
            got += (size_t)k;
        _exit(got == total ? 0 : 1);
    }
    close(p[0]);
    double t0 = bench_now();
    size_t per_write = sizeof buf / size * size; /* whole messages per 64 KiB write */
    for (size_t sent = 0; sent < total;) {
        size_t len = total - sent < per_write ? total - sent : per_write;
        ssize_t k = write(p[1], buf, len);
        if (k <= 0)
            exit(1);
        sent += (size_t)k;
    }
    close(p[1]);
    int status;
    wait(&status);
    double secs = bench_now() - t0;
    char extra[64];
    snprintf(extra, sizeof extra, "size=%zu mb_s=%.1f", size, (double)total / secs / 1e6);
    char name[64];
    snprintf(name, sizeof name, "raw_pipe_stream_%zu", size);
    bench_report(name, n, secs, WEXITSTATUS(status) == 0 ? extra : "LOST");
}

static void pipe_pingpong(long n)
{
    int there[2], back[2];
    if (pipe(there) != 0 || pipe(back) != 0)
        exit(1);
    unsigned char msg[64] = {0};
    if (fork() == 0) {
        for (long i = 0; i < n; i++)
            if (read(there[0], msg, sizeof msg) != sizeof msg ||
                write(back[1], msg, sizeof msg) != sizeof msg)
                _exit(1);
        _exit(0);
    }
    double t0 = bench_now();
    for (long i = 0; i < n; i++)
        if (write(there[1], msg, sizeof msg) != sizeof msg || read(back[0], msg, sizeof msg) != sizeof msg)
            exit(1);
    double secs = bench_now() - t0;
    wait(NULL);
    char extra[64];
    snprintf(extra, sizeof extra, "rtt_us=%.2f", secs / (double)n * 1e6);
    bench_report("raw_pipe_pingpong", n, secs, extra);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    long size = bench_arg(argc, argv, 2, 64);
    if (strstr(mode, "stream") && (size < 1 || size > 4096)) {
        fprintf(stderr, "raw_ipc: SIZE must be 1..4096\n");
        return 2;
    }
    if (strcmp(mode, "shm-stream") == 0)
        shm_stream((size_t)bench_arg(argc, argv, 2, 64), bench_arg(argc, argv, 3, 20000000));
    else if (strcmp(mode, "shm-pingpong") == 0)
        shm_pingpong(bench_arg(argc, argv, 2, 1000000));
    else if (strcmp(mode, "pipe-stream") == 0)
        pipe_stream((size_t)bench_arg(argc, argv, 2, 64), bench_arg(argc, argv, 3, 20000000));
    else if (strcmp(mode, "pipe-pingpong") == 0)
        pipe_pingpong(bench_arg(argc, argv, 2, 100000));
    else {
        fprintf(stderr, "usage: raw_ipc shm-stream|pipe-stream SIZE N | shm-pingpong|pipe-pingpong N\n");
        return 2;
    }
    return 0;
}
