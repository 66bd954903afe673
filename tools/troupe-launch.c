/* troupe-launch — starts N nodes of a troupe program on this host.
 *
 *   troupe-launch [-n N] [-t pipe|shm] program [args...]
 *
 * Starts N copies of program (default 2) as nodes 1..N, each joined to every
 * other by its own socket pair over the chosen transport (default pipe), and
 * waits until all have exited. Each node calls tr_system_join to connect.
 * Prints a line for every node that failed; exits 0 when all exited 0, else
 * with the first failing status. A thin front for tr_launch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <troupe.h>

static int usage(void)
{
    fprintf(stderr, "usage: troupe-launch [-n nodes] [-t pipe|shm] program [args...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    unsigned nodes = 2;
    const char *transport = "pipe";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "-n") == 0) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(argv[++i], &end, 10);
            if (errno || *end || n == 0 || n > 65535)
                return usage();
            nodes = (unsigned)n;
        } else if (strcmp(argv[i], "-t") == 0) {
            transport = argv[++i];
        } else {
            return usage();
        }
    }
    if (i >= argc)
        return usage();
    int *status = calloc(nodes, sizeof *status);
    if (!status)
        return 1;
    int rc = tr_launch(argv[i], argv + i, nodes, transport, status);
    if (rc != 0)
        fprintf(stderr, "troupe-launch: %s\n", tr_strerror(rc));
    int first_failure = 0;
    for (unsigned n = 0; n < nodes; n++)
        if (status[n] != 0) {
            fprintf(stderr, "troupe-launch: node %u exited with status %d\n", n + 1, status[n]);
            if (!first_failure)
                first_failure = status[n];
        }
    free(status);
    return rc != 0 ? 1 : first_failure;
}
