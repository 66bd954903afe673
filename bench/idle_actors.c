/* idle_actors: N actors alive at once, all spawned and waiting, then each
 * told to stop. Reports the memory each idle actor costs (resident memory
 * grown while spawning, divided by N; the actors' own state is 8 bytes) and
 * the rate of spawn plus stop. Usage: bench_idle_actors N WORKERS */
#include "bench.h"

#include <unistd.h>

static long current_rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void idler_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state, (void)msg;
    tr_exit(ctx, TR_EXIT_NORMAL);
}

static const tr_behavior idler = {.name = "idler", .state_size = 8, .receive = idler_receive};

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    tr_system *sys = bench_system(argc, argv);
    tr_addr *addrs = malloc((size_t)n * sizeof *addrs);
    if (!addrs)
        return 1;
    long before = current_rss_kb() - (long)((size_t)n * sizeof *addrs / 1024);
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        int rc = tr_system_spawn(sys, &idler, NULL, &addrs[i]);
        if (rc != 0) {
            fprintf(stderr, "spawn %ld: %s\n", i, tr_strerror(rc));
            return 1;
        }
    }
    long grown = current_rss_kb() - before;
    for (long i = 0; i < n; i++)
        tr_system_send(sys, addrs[i], tr_msg_new(1, NULL, 0));
    bench_run(sys);
    double secs = bench_now() - t0;
    tr_stats st;
    tr_system_stats(sys, &st);
    char extra[64];
    snprintf(extra, sizeof extra, "bytes_per_actor=%ld exited=%llu", grown * 1024 / n,
             (unsigned long long)st.exited);
    bench_report("idle_actors", n, secs, extra);
    tr_system_free(sys);
    free(addrs);
    return 0;
}
