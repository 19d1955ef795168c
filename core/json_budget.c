/*
 * json_budget.c -- jansson's allocation functions with a per-thread budget
 * (json_budget.h).
 *
 * The blocks are plain malloc blocks (callers free what json_dumps()
 * returns with free(), as jansson documents), and their size for the
 * budget is malloc_usable_size(). A block freed while its thread has a
 * budget open gives its bytes back to that budget: the tree of a budgeted
 * parse is freed by the same thread, and json_loadb() frees nothing it did
 * not allocate itself.
 */
#include "json_budget.h"

#include <jansson.h>
#include <malloc.h>
#include <stdlib.h>

static _Thread_local size_t budget; /* 0: none open */
static _Thread_local size_t used;
static _Thread_local bool refused;

static void *budget_malloc(size_t n)
{
    if (budget && (n > budget || used > budget - n)) {
        refused = true;
        return NULL;
    }
    void *p = malloc(n);
    if (p && budget)
        used += malloc_usable_size(p);
    return p;
}

static void budget_free(void *p)
{
    if (p && budget) {
        size_t n = malloc_usable_size(p);
        used = n < used ? used - n : 0;
    }
    free(p);
}

/* Before main, so every jansson value is allocated by these functions
 * (they are malloc and free, so that alone would not matter). */
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
