/* Names: a system-wide map from name to address, under a read-write lock
 * (lookups are many, registrations few). */
#include "actor.h"
#include "ext.h"

#include <stdlib.h>
#include <string.h>

#define NAME_BUCKETS 256

typedef struct name_entry {
    struct name_entry *next;
    tr_addr addr;
    char name[TR_NAME_MAX + 1];
} name_entry;

struct name_registry {
    pthread_rwlock_t lock;
    name_entry *buckets[NAME_BUCKETS];
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % NAME_BUCKETS;
}

int names_init(tr_system *sys)
{
    sys->names = calloc(1, sizeof *sys->names);
    if (!sys->names)
        return TR_ENOMEM;
    pthread_rwlock_init(&sys->names->lock, NULL);
    return 0;
}

void names_fini(tr_system *sys)
{
    if (!sys->names)
        return;
    for (unsigned i = 0; i < NAME_BUCKETS; i++)
        for (name_entry *e = sys->names->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_rwlock_destroy(&sys->names->lock);
    free(sys->names);
    sys->names = NULL;
}

static name_entry **slot(struct name_registry *r, const char *name)
{
    name_entry **p = &r->buckets[hash(name)];
    while (*p && strcmp((*p)->name, name) != 0)
        p = &(*p)->next;
    return p;
}

static bool valid(const char *name)
{
    return name && name[0] && strlen(name) <= TR_NAME_MAX;
}

int tr_register(tr_ctx *ctx, const char *name)
{
    actor_ext *x = ctx ? ext_of(ctx->self) : NULL;
    if (!ctx || !valid(name) || (x && x->name))
        return TR_EINVAL;
    name_entry *e = calloc(1, sizeof *e);
    char *copy = strdup(name);
    if (!x || !e || !copy) {
        free(e);
        free(copy);
        return TR_ENOMEM;
    }
    strcpy(e->name, name);
    e->addr = ctx->self_addr;
    struct name_registry *r = ctx->sys->names;
    pthread_rwlock_wrlock(&r->lock);
    name_entry **p = slot(r, name);
    int rc = *p ? TR_EEXIST : 0;
    if (rc == 0)
        *p = e;
    pthread_rwlock_unlock(&r->lock);
    if (rc != 0) {
        free(e);
        free(copy);
        return rc;
    }
    x->name = copy;
    return 0;
}

void names_release(tr_system *sys, const char *name, tr_addr owner)
{
    struct name_registry *r = sys->names;
    pthread_rwlock_wrlock(&r->lock);
    name_entry **p = slot(r, name);
    name_entry *e = *p;
    if (e && tr_addr_eq(e->addr, owner))
        *p = e->next;
    else
        e = NULL;
    pthread_rwlock_unlock(&r->lock);
    free(e);
}

int tr_unregister(tr_ctx *ctx)
{
    actor_ext *x = ctx ? ctx->self->ext : NULL;
    if (!x || !x->name)
        return TR_ENOENT;
    names_release(ctx->sys, x->name, ctx->self_addr);
    free(x->name);
    x->name = NULL;
    return 0;
}

int tr_whereis(tr_system *sys, const char *name, tr_addr *out)
{
    if (!sys || !valid(name))
        return TR_ENOENT;
    struct name_registry *r = sys->names;
    pthread_rwlock_rdlock(&r->lock);
    name_entry *e = *slot(r, name);
    if (e && out)
        *out = e->addr;
    pthread_rwlock_unlock(&r->lock);
    return e ? 0 : TR_ENOENT;
}

int tr_send_named(tr_ctx *ctx, const char *name, tr_msg *msg)
{
    tr_addr to;
    if (!ctx || tr_whereis(ctx->sys, name, &to) != 0) {
        tr_msg_unref(msg);
        return ctx ? TR_ENOENT : TR_EINVAL;
    }
    return tr_send(ctx, to, msg);
}
