/*
 * batch.c -- acknowledgements and span batches (batch.h).
 *
 * An ack is a reference count plus the first failure recorded; the last
 * unref calls the answer function. A batch owns its chunks (and their
 * arenas) and holds one reference on each ack it carries. Merging moves both
 * lists; cloning deep-copies the spans into one fresh arena so a second
 * pipeline may change them independently.
 */
#include "batch.h"
#include "clock.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct halo_ack {
    atomic_int refs;
    pthread_mutex_t mu;
    halo_status st;
    char msg[HALO_ERR_MAX];
    halo_ack_fn fn;
    void *ud;
};

halo_ack *halo_ack_new(halo_ack_fn fn, void *ud)
{
    halo_ack *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    atomic_init(&a->refs, 1);
    pthread_mutex_init(&a->mu, NULL);
    a->fn = fn;
    a->ud = ud;
    return a;
}

void halo_ack_ref(halo_ack *ack)
{
    atomic_fetch_add(&ack->refs, 1);
}

void halo_ack_fail(halo_ack *ack, halo_status st, const char *msg)
{
    if (st == HALO_OK)
        return;
    pthread_mutex_lock(&ack->mu);
    if (ack->st == HALO_OK) {
        ack->st = st;
        snprintf(ack->msg, sizeof ack->msg, "%s",
                 msg && *msg ? msg : halo_status_str(st));
    }
    pthread_mutex_unlock(&ack->mu);
}

void halo_ack_unref(halo_ack *ack)
{
    if (!ack || atomic_fetch_sub(&ack->refs, 1) != 1)
        return;
    if (ack->fn)
        ack->fn(ack->ud, ack->st, ack->msg);
    pthread_mutex_destroy(&ack->mu);
    free(ack);
}

halo_batch *halo_batch_new(void)
{
    halo_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->created_ns = halo_mono_ns();
    return b;
}

halo_status halo_batch_add_chunk(halo_batch *b, halo_arena *arena,
                                 halo_span *spans, size_t n)
{
    halo_chunk *c = malloc(sizeof *c);
    if (!c) {
        halo_arena_free(arena);
        return HALO_ENOMEM;
    }
    c->arena = arena;
    c->spans = spans;
    c->n = n;
    c->next = NULL;
    if (b->tail)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
    b->n_spans += n;
    b->bytes += halo_arena_reserved(arena);
    return HALO_OK;
}

halo_status halo_batch_add_ack(halo_batch *b, halo_ack *ack)
{
    if (b->n_acks == b->cap_acks) {
        size_t cap = b->cap_acks ? b->cap_acks * 2 : 4;
        halo_ack **p = realloc(b->acks, cap * sizeof *p);
        if (!p)
            return HALO_ENOMEM;
        b->acks = p;
        b->cap_acks = cap;
    }
    halo_ack_ref(ack);
    b->acks[b->n_acks++] = ack;
    return HALO_OK;
}

halo_status halo_batch_merge(halo_batch *dst, halo_batch *src)
{
    if (dst->n_acks + src->n_acks > dst->cap_acks) {
        size_t cap = dst->cap_acks ? dst->cap_acks : 4;
        while (cap < dst->n_acks + src->n_acks)
            cap *= 2;
        halo_ack **p = realloc(dst->acks, cap * sizeof *p);
        if (!p)
            return HALO_ENOMEM;
        dst->acks = p;
        dst->cap_acks = cap;
    }
    if (src->n_acks)
        memcpy(dst->acks + dst->n_acks, src->acks,
               src->n_acks * sizeof *src->acks);
    dst->n_acks += src->n_acks;
    if (src->head) {
        if (dst->tail)
            dst->tail->next = src->head;
        else
            dst->head = src->head;
        dst->tail = src->tail;
    }
    dst->n_spans += src->n_spans;
    dst->bytes += src->bytes;
    if (src->created_ns < dst->created_ns)
        dst->created_ns = src->created_ns;
    free(src->acks);
    free(src);
    return HALO_OK;
}

void halo_batch_ref(halo_batch *b)
{
    atomic_fetch_add(&b->refs, 1);
}

void halo_batch_done(halo_batch *b, halo_status st, const char *msg)
{
    if (!b)
        return;
    if (st != HALO_OK)
        for (size_t i = 0; i < b->n_acks; i++)
            halo_ack_fail(b->acks[i], st, msg);
    if (atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    halo_chunk *c = b->head;
    while (c) {
        halo_chunk *next = c->next;
        halo_arena_free(c->arena);
        free(c);
        c = next;
    }
    for (size_t i = 0; i < b->n_acks; i++)
        halo_ack_unref(b->acks[i]);
    free(b->acks);
    free(b);
}

/* ---- deep copy ---------------------------------------------------------- */

/* Copy *s into the arena (NULL stays NULL); false only when out of memory. */
static bool dup_into(halo_arena *a, const char **s)
{
    return !*s || (*s = halo_arena_strdup(a, *s)) != NULL;
}

static bool copy_value(halo_arena *a, halo_value *dst, const halo_value *src,
                       int depth);

static bool copy_attrs(halo_arena *a, halo_attrs *dst, const halo_attrs *src,
                       int depth)
{
    dst->n = src->n;
    dst->items = NULL;
    if (!src->n)
        return true;
    dst->items = halo_arena_calloc(a, src->n, sizeof *dst->items);
    if (!dst->items)
        return false;
    for (size_t i = 0; i < src->n; i++) {
        dst->items[i].key = src->items[i].key;
        if (!dup_into(a, &dst->items[i].key) ||
            !copy_value(a, &dst->items[i].value, &src->items[i].value,
                        depth + 1))
            return false;
    }
    return true;
}

static bool copy_value(halo_arena *a, halo_value *dst, const halo_value *src,
                       int depth)
{
    if (depth > 64)
        return false;
    *dst = *src;
    switch (src->type) {
    case HALO_VAL_STRING:
    case HALO_VAL_BYTES:
        dst->u.s.ptr = halo_arena_strndup(a, src->u.s.ptr, src->u.s.len);
        return dst->u.s.ptr != NULL;
    case HALO_VAL_ARRAY:
        if (!src->u.arr.n)
            return true;
        dst->u.arr.items =
            halo_arena_calloc(a, src->u.arr.n, sizeof *dst->u.arr.items);
        if (!dst->u.arr.items)
            return false;
        for (size_t i = 0; i < src->u.arr.n; i++)
            if (!copy_value(a, &dst->u.arr.items[i], &src->u.arr.items[i],
                            depth + 1))
                return false;
        return true;
    case HALO_VAL_KVLIST: {
        halo_attrs s = {src->u.kv.items, src->u.kv.n}, d;
        if (!copy_attrs(a, &d, &s, depth))
            return false;
        dst->u.kv.items = d.items;
        dst->u.kv.n = d.n;
        return true;
    }
    default:
        return true;
    }
}

/* Copies of resources/scopes are shared like the originals: remember the
 * last original -> copy pair (spans of one resource are consecutive). */
typedef struct clone_ctx {
    halo_arena *a;
    const halo_resource *res_src;
    halo_resource *res_dst;
    const halo_scope *scope_src;
    halo_scope *scope_dst;
} clone_ctx;

static bool copy_derived(halo_arena *a, halo_derived *d)
{
    const char **fields[] = {&d->agent_id, &d->agent_name,   &d->session_id,
                             &d->user_id,  &d->service_name, &d->span_type,
                             &d->model,    &d->tool_name,    &d->input,
                             &d->output};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (!dup_into(a, fields[i]))
            return false;
    return true;
}

static bool copy_span(clone_ctx *cx, halo_span *dst, const halo_span *src)
{
    halo_arena *a = cx->a;
    *dst = *src;
    if (!dup_into(a, &dst->trace_state) || !dup_into(a, &dst->name) ||
        !dup_into(a, &dst->status_message) ||
        !copy_attrs(a, &dst->attrs, &src->attrs, 0) ||
        !copy_derived(a, &dst->d))
        return false;
    if (src->n_events) {
        dst->events = halo_arena_calloc(a, src->n_events, sizeof *dst->events);
        if (!dst->events)
            return false;
        for (size_t i = 0; i < src->n_events; i++) {
            dst->events[i] = src->events[i];
            if (!dup_into(a, &dst->events[i].name) ||
                !copy_attrs(a, &dst->events[i].attrs, &src->events[i].attrs, 0))
                return false;
        }
    }
    if (src->n_links) {
        dst->links = halo_arena_calloc(a, src->n_links, sizeof *dst->links);
        if (!dst->links)
            return false;
        for (size_t i = 0; i < src->n_links; i++) {
            dst->links[i] = src->links[i];
            if (!dup_into(a, &dst->links[i].trace_state) ||
                !copy_attrs(a, &dst->links[i].attrs, &src->links[i].attrs, 0))
                return false;
        }
    }
    if (src->resource && src->resource != cx->res_src) {
        halo_resource *r = halo_arena_calloc(a, 1, sizeof *r);
        if (!r)
            return false;
        *r = *src->resource;
        if (!dup_into(a, &r->schema_url) ||
            !copy_attrs(a, &r->attrs, &src->resource->attrs, 0))
            return false;
        cx->res_src = src->resource;
        cx->res_dst = r;
    }
    dst->resource = src->resource ? cx->res_dst : NULL;
    if (src->scope && src->scope != cx->scope_src) {
        halo_scope *s = halo_arena_calloc(a, 1, sizeof *s);
        if (!s)
            return false;
        *s = *src->scope;
        if (!dup_into(a, &s->name) || !dup_into(a, &s->version) ||
            !dup_into(a, &s->schema_url) ||
            !copy_attrs(a, &s->attrs, &src->scope->attrs, 0))
            return false;
        cx->scope_src = src->scope;
        cx->scope_dst = s;
    }
    dst->scope = src->scope ? cx->scope_dst : NULL;
    return true;
}

halo_batch *halo_batch_clone(const halo_batch *b)
{
    halo_batch *nb = halo_batch_new();
    if (!nb)
        return NULL;
    nb->created_ns = b->created_ns;
    for (const halo_chunk *c = b->head; c; c = c->next) {
        halo_arena *a =
            halo_arena_new(c->arena ? halo_arena_reserved(c->arena) : 4096);
        halo_span *spans =
            a && c->n ? halo_arena_calloc(a, c->n, sizeof *spans) : NULL;
        clone_ctx cx = {a, NULL, NULL, NULL, NULL};
        bool ok = a && (c->n == 0 || spans);
        for (size_t i = 0; ok && i < c->n; i++)
            ok = copy_span(&cx, &spans[i], &c->spans[i]);
        if (!ok || halo_batch_add_chunk(nb, a, spans, c->n) != HALO_OK) {
            if (!ok)
                halo_arena_free(a);
            goto fail;
        }
    }
    for (size_t i = 0; i < b->n_acks; i++)
        if (halo_batch_add_ack(nb, b->acks[i]) != HALO_OK)
            goto fail;
    return nb;
fail:
    halo_batch_done(nb, HALO_OK, "");
    return NULL;
}

void halo_batch_release_spans(halo_batch *b)
{
    if (atomic_load(&b->refs) != 1)
        return; /* fanned out: another exporter still reads the spans */
    for (halo_chunk *c = b->head; c; c = c->next) {
        halo_arena_free(c->arena);
        c->arena = NULL;
        c->spans = NULL;
        c->n = 0;
    }
}

halo_status halo_batch_refuse(halo_batch *b, struct halo_metric *failed,
                              halo_status st, const char *msg)
{
    if (failed)
        halo_metric_add(failed, (double)b->n_spans);
    halo_batch_done(b, st, msg);
    return st;
}
