/*
 * json_budget.c -- jansson's allocation functions with a per-thread budget
 * (json_budget.h).
 *
 * Each allocation carries a header with its size and whether it counted
 * against a budget. Frees of counted blocks give the bytes back to the
 * budget of the thread that frees them, if that thread has one open: the
 * tree of a budgeted parse is freed by the same thread (json_decref after
 * the walk), and a block freed elsewhere is simply not credited, which
 * only makes a later budget on that thread stricter, never looser.
 */
#include "json_budget.h"

#include <jansson.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct hdr {
    alignas(max_align_t) size_t size;
    bool counted;
} hdr;

static _Thread_local size_t budget; /* 0: none open */
static _Thread_local size_t used;
static _Thread_local bool refused;

static void *budget_malloc(size_t n)
{
    bool count = budget != 0;
    if (count && (n > budget || used > budget - n)) {
        refused = true;
        return NULL;
    }
    if (n > SIZE_MAX - sizeof(hdr))
        return NULL;
    hdr *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->size = n;
    h->counted = count;
    if (count)
        used += n;
    return h + 1;
}

static void budget_free(void *p)
{
    if (!p)
        return;
    hdr *h = (hdr *)p - 1;
    if (h->counted && budget)
        used = h->size < used ? used - h->size : 0;
    free(h);
}

/* Before main, so no jansson value exists yet: a block must be freed by
 * the functions that allocated it. */
__attribute__((constructor)) static void install(void)
{
    json_set_alloc_funcs(budget_malloc, budget_free);
}

void halo_json_budget_begin(size_t bytes)
{
    budget = bytes ? bytes : 1;
    used = 0;
    refused = false;
}

bool halo_json_budget_end(void)
{
    bool r = refused;
    budget = 0;
    used = 0;
    refused = false;
    return r;
}

size_t halo_json_budget_used(void)
{
    return budget ? used : 0;
}
