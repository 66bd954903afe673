/* bank — two accounts transferring money to each other at the same time.
 *
 * With threads, each transfer locks both accounts; two transfers in opposite
 * directions that lock in opposite order deadlock. Here each account is an
 * actor that owns its balance. A transfer is a message to the paying
 * account: it takes the money out of its own balance and sends a deposit to
 * the other. No account ever waits for another, so there is nothing to
 * deadlock on, and money in flight is in a message, never lost or doubled.
 *
 * Two tellers each order 10000 transfers, one from A to B and one from B to
 * A, concurrently. When the system is quiet, main asks an auditor to collect
 * both balances. Prints the balances and "total 2000 (conserved)".
 *
 * Run: ./build/examples/bank
 */
#include <stdio.h>
#include <troupe.h>

enum { MSG_TRANSFER = 1, MSG_DEPOSIT, MSG_BALANCE_REQ, MSG_BALANCE };
enum { OPENING = 1000, TRANSFERS = 10000 };

typedef struct {
    long amount;
    tr_addr to;
} transfer;

typedef struct {
    long balance;
    long refused; /* transfers refused for lack of funds */
} account_state;

static int account_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)ctx, (void)arg;
    ((account_state *)state)->balance = OPENING;
    return 0;
}

static void account_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    account_state *acc = state;
    switch (tr_msg_type(msg)) {
    case MSG_TRANSFER: {
        const transfer *t = tr_msg_data(msg);
        if (acc->balance < t->amount) {
            acc->refused++;
            return;
        }
        acc->balance -= t->amount; /* the money now travels in the deposit */
        tr_send(ctx, t->to, tr_msg_new(MSG_DEPOSIT, &t->amount, sizeof t->amount));
        break;
    }
    case MSG_DEPOSIT:
        acc->balance += *(const long *)tr_msg_data(msg);
        break;
    case MSG_BALANCE_REQ:
        tr_reply(ctx, tr_msg_new(MSG_BALANCE, &acc->balance, sizeof acc->balance));
        break;
    }
}

static const tr_behavior account = {.name = "account",
                                    .state_size = sizeof(account_state),
                                    .init = account_init,
                                    .receive = account_receive};

/* A teller orders TRANSFERS transfers from one account to the other. */
typedef struct {
    tr_addr from, to;
} teller_order;

static int teller_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    const teller_order *o = tr_msg_data(arg);
    for (long i = 0; i < TRANSFERS; i++) {
        transfer t = {.amount = 1 + i % 7, .to = o->to};
        tr_send(ctx, o->from, tr_msg_new(MSG_TRANSFER, &t, sizeof t));
    }
    tr_exit(ctx, TR_EXIT_NORMAL);
    return 0;
}

static void ignore(tr_ctx *ctx, void *state, const tr_msg *msg) { (void)ctx, (void)state, (void)msg; }

static const tr_behavior teller = {.name = "teller", .init = teller_init, .receive = ignore};

/* The auditor asks both accounts for their balance and adds them up. */
typedef struct {
    long total;
    int answers;
} auditor_state;

static int auditor_init(tr_ctx *ctx, void *state, const tr_msg *arg)
{
    (void)state;
    const tr_addr *accounts = tr_msg_data(arg);
    for (int i = 0; i < 2; i++)
        tr_send(ctx, accounts[i], tr_msg_new(MSG_BALANCE_REQ, NULL, 0));
    return 0;
}

static void auditor_receive(tr_ctx *ctx, void *state, const tr_msg *msg)
{
    auditor_state *a = state;
    long balance = *(const long *)tr_msg_data(msg);
    printf("account balance %ld\n", balance);
    a->total += balance;
    if (++a->answers == 2) {
        printf("total %ld (%s)\n", a->total, a->total == 2 * OPENING ? "conserved" : "LOST");
        tr_exit(ctx, TR_EXIT_NORMAL);
    }
}

static const tr_behavior auditor = {.name = "auditor",
                                    .state_size = sizeof(auditor_state),
                                    .init = auditor_init,
                                    .receive = auditor_receive};

int main(void)
{
    tr_system *sys;
    if (tr_system_new(NULL, &sys) != 0)
        return 1;
    tr_addr acct[2];
    tr_system_spawn(sys, &account, NULL, &acct[0]);
    tr_system_spawn(sys, &account, NULL, &acct[1]);
    teller_order a_to_b = {acct[0], acct[1]}, b_to_a = {acct[1], acct[0]};
    tr_system_spawn(sys, &teller, tr_msg_new(0, &a_to_b, sizeof a_to_b), NULL);
    tr_system_spawn(sys, &teller, tr_msg_new(0, &b_to_a, sizeof b_to_a), NULL);
    int rc = tr_system_run(sys); /* every transfer and deposit settled */
    tr_system_spawn(sys, &auditor, tr_msg_new(0, acct, sizeof acct), NULL);
    rc |= tr_system_run(sys); /* a second run: the audit */
    tr_system_free(sys);
    return rc == 0 ? 0 : 1;
}
