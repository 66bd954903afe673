/* pool_map — a process pool mapping a CPU-heavy function over inputs, the
 * actor version of Python's multiprocessing.Pool.map.
 *
 * Node 1 starts 3 worker processes (nodes 2-4) and spawns one "mapper" on
 * each with tr_spawn_remote. The pool actor keeps every mapper busy with two
 * asks at a time (tr_ask_then: the continuation gets the answer), hands the
 * next input to whichever mapper answers, and stores each result at its
 * input's index, so results come out in input order however the work was
 * spread. The function: the number of primes below n, by trial division.
 * Payloads are msgpack: [index, n] out, [index, count] back.
 *
 * Run: ./build/examples/pool_map [inputs] [pipe|shm]
 */
#include <stdio.h>
#include <stdlib.h>
#include <troupe.h>

enum { WORKERS = 3, IN_FLIGHT = 2, MSG_WORK = 1, MSG_RESULT };

static int inputs = 24;

static uint64_t primes_below(uint64_t n)
{
    uint64_t count = 0;
    for (uint64_t k = 2; k < n; k++) {
        bool prime = true;
        for (uint64_t d = 2; d * d <= k && prime; d++)
            prime = k % d != 0;
        count += prime;
    }
    return count;
}

static uint64_t input_at(int i) { return 20000 + 5000 * (uint64_t)i; }

static tr_msg *pair(uint32_t type, uint64_t a, uint64_t b)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, a);
    msgpack_pack_uint64(&pk, b);
    tr_msg *m = tr_msg_new_msgpack(type, &buf);
    msgpack_sbuffer_destroy(&buf);
    return m;
}

static int unpair(const tr_msg *msg, uint64_t *a, uint64_t *b)
{
    msgpack_unpacked up;
    int rc = tr_msg_unpack(msg, &up);
    const msgpack_object *o = &up.data;
    if (rc == 0 && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2 &&
        o->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        o->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *a = o->via.array.ptr[0].via.u64;
        *b = o->via.array.ptr[1].via.u64;
    } else {
        rc = -1;
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* ---- on the worker nodes ---- */

static void mapper_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)state;
    uint64_t index, n;
    if (tr_msg_type(msg) == MSG_WORK && unpair(msg, &index, &n) == 0)
        tr_reply(ctx, pair(MSG_RESULT, index, primes_below(n)));
}

static const tr_behavior mapper = {.name = "mapper", .receive = mapper_receive};

/* ---- node 1: the pool ---- */

typedef struct {
    tr_addr mappers[WORKERS];
    int ready, next, done;
    uint64_t *results;
    int per_node[WORKERS];
} pool_state;

static void got_result(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg);

/* Gives mapper w the next input, if any is left. */
static void feed(tr_ctx *ctx, pool_state *p, int w)
{
    if (p->next == inputs)
        return;
    int i = p->next++;
    tr_ask_then(ctx, p->mappers[w], pair(MSG_WORK, (uint64_t)i, input_at(i)), 60000, got_result,
                (void *)(intptr_t)w);
}

static void got_result(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg)
{
    pool_state *p = state;
    int w = (int)(intptr_t)arg;
    uint64_t index, count;
    if (status != 0 || unpair(reply, &index, &count) != 0 || index >= (uint64_t)inputs) {
        fprintf(stderr, "a mapper failed: %s\n", tr_strerror(status));
        tr_system_stop(tr_ctx_system(ctx));
        return;
    }
    p->results[index] = count;
    p->per_node[w]++;
    if (++p->done < inputs) {
        feed(ctx, p, w);
        return;
    }
    for (int i = 0; i < inputs; i++)
        printf("primes below %llu: %llu\n", (unsigned long long)input_at(i),
               (unsigned long long)p->results[i]);
    printf("mapped %d inputs, in order; per worker node:", inputs);
    for (int k = 0; k < WORKERS; k++)
        printf(" %d", p->per_node[k]);
    printf("\n");
    tr_system_stop(tr_ctx_system(ctx));
}

static void spawned(tr_ctx *ctx, void *state, const tr_msg *reply, int status, void *arg)
{
    pool_state *p = state;
    const tr_spawned *s = reply ? tr_msg_data(reply) : NULL;
    if (status != 0 || s->error != 0) {
        fprintf(stderr, "could not start a mapper: %s\n", tr_strerror(status ? status : s->error));
        tr_system_stop(tr_ctx_system(ctx));
        return;
    }
    int w = (int)(intptr_t)arg;
    p->mappers[w] = s->actor;
    if (++p->ready < WORKERS)
        return;
    for (int k = 0; k < IN_FLIGHT; k++)
        for (int m = 0; m < WORKERS; m++)
            feed(ctx, p, m);
}

static int pool_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)arg;
    pool_state *p = state;
    p->results = calloc((size_t)inputs, sizeof *p->results);
    if (!p->results)
        return TR_ENOMEM;
    for (int w = 0; w < WORKERS; w++) {
        int rc = tr_spawn_remote_then(ctx, (uint16_t)(w + 2), "mapper", NULL, 10000, spawned,
                                      (void *)(intptr_t)w);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void pool_terminate(tr_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)reason;
    free(((pool_state *)state)->results);
}

static void pool_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    (void)ctx, (void)state, (void)msg; /* answers go to the continuations */
}

static const tr_behavior pool = {.name = "pool", .state_size = sizeof(pool_state),
                                 .init = pool_init, .receive = pool_receive,
                                 .terminate = pool_terminate};

int main(int argc, char **argv)
{
    if (argc > 1 && atoi(argv[1]) > 0)
        inputs = atoi(argv[1]);
    const char *transport = argc > 2 ? argv[2] : "pipe";
    uint16_t me = tr_node_id_from_env();
    tr_config cfg;
    tr_config_init(&cfg);
    cfg.node_id = me ? me : 1;
    tr_system *sys;
    if (tr_system_new(&cfg, &sys) != 0)
        return 1;
    int rc = tr_register_behavior(sys, &mapper);
    if (rc == 0 && me)
        rc = tr_system_join(sys);
    if (rc == 0 && !me)
        rc = tr_system_spawn_nodes(sys, "/proc/self/exe", argv, 2, WORKERS, transport);
    if (rc == 0) /* node 1 runs the pool; worker nodes end when it has gone */
        rc = me > 1 ? tr_system_stop_with_node(sys, 1) : tr_system_spawn(sys, &pool, NULL, NULL);
    if (rc == 0)
        rc = tr_system_run(sys);
    else
        fprintf(stderr, "node %u: %s\n", (unsigned)cfg.node_id, tr_strerror(rc));
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
