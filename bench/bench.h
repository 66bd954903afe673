/* Helpers shared by the benchmarks: arguments, a clock, peak memory, and the
 * one result line each benchmark prints:
 *   workload=<name> n=<N> secs=<s> rate=<per second> rss_kb=<peak> [key=value...]
 */
#ifndef TR_BENCH_H
#define TR_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <troupe.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Peak resident memory of this process, from VmHWM (getrusage's maxrss
 * survives exec, so it would report the parent's peak when that was larger). */
static inline long bench_peak_rss_kb(void)
{
    char line[128];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* argv[1] is N (default given), argv[2] the worker count (0 = one per CPU). */
static inline long bench_arg(int argc, char **argv, int i, long fallback)
{
    return argc > i ? atol(argv[i]) : fallback;
}

static inline tr_system *bench_system(int argc, char **argv)
{
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.workers = (unsigned)bench_arg(argc, argv, 2, 0);
    tr_system *sys;
    int rc = tr_system_new(&cfg, &sys);
    if (rc != 0) {
        fprintf(stderr, "tr_system_new: %s\n", tr_strerror(rc));
        exit(1);
    }
    return sys;
}

static inline void bench_report(const char *name, long n, double secs, const char *extra)
{
    printf("workload=%s n=%ld secs=%.4f rate=%.0f rss_kb=%ld%s%s\n", name, n, secs,
           secs > 0 ? (double)n / secs : 0.0, bench_peak_rss_kb(), extra ? " " : "",
           extra ? extra : "");
    fflush(stdout);
}

/* Runs sys to quiescence and returns the seconds it took. */
static inline double bench_run(tr_system *sys)
{
    double t0 = bench_now();
    int rc = tr_system_run(sys);
    if (rc != 0) {
        fprintf(stderr, "tr_system_run: %s\n", tr_strerror(rc));
        exit(1);
    }
    return bench_now() - t0;
}

#endif
