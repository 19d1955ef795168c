/*
 * arena.c -- region allocator (arena.h).
 *
 * A singly linked list of blocks; allocation bumps a pointer in the newest
 * block and starts a new block (doubling, at least the request) when it does
 * not fit. Freeing releases every block. The process-wide counter of
 * reserved bytes feeds the memory_limiter and the inflight-bytes gauge.
 */
#include "arena.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *prev;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
} block;

struct halo_arena {
    block *cur;
    size_t reserved;
    size_t next_size;
};

static atomic_llong total_reserved;

#define ALIGN16(n) (((n) + 15u) & ~(size_t)15u)

static block *block_new(size_t size)
{
    block *b = malloc(sizeof *b + size);
    if (!b)
        return NULL;
    b->prev = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

halo_arena *halo_arena_new(size_t first_block)
{
    if (first_block == 0)
        first_block = 4096;
    halo_arena *a = malloc(sizeof *a);
    if (!a)
        return NULL;
    a->cur = block_new(first_block);
    if (!a->cur) {
        free(a);
        return NULL;
    }
    a->reserved = first_block;
    a->next_size = first_block * 2;
    atomic_fetch_add(&total_reserved, (long long)first_block);
    return a;
}

void *halo_arena_alloc(halo_arena *a, size_t n)
{
    if (!a)
        return NULL;
    if (n == 0)
        n = 1;
    size_t need = ALIGN16(n);
    if (need < n)
        return NULL; /* overflow */
    block *b = a->cur;
    if (b->size - b->used < need) {
        size_t size = a->next_size;
        if (size < need)
            size = need;
        if (size > ((size_t)64 << 20) && need <= ((size_t)64 << 20))
            size = (size_t)64 << 20; /* cap the doubling at 64 MiB */
        block *nb = block_new(size);
        if (!nb)
            return NULL;
        nb->prev = b;
        a->cur = nb;
        a->reserved += size;
        atomic_fetch_add(&total_reserved, (long long)size);
        if (a->next_size < ((size_t)64 << 20))
            a->next_size *= 2;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

void *halo_arena_calloc(halo_arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = halo_arena_alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

char *halo_arena_strndup(halo_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = halo_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *halo_arena_strdup(halo_arena *a, const char *s)
{
    return halo_arena_strndup(a, s, strlen(s));
}

void halo_arena_free(halo_arena *a)
{
    if (!a)
        return;
    block *b = a->cur;
    while (b) {
        block *prev = b->prev;
        free(b);
        b = prev;
    }
    atomic_fetch_sub(&total_reserved, (long long)a->reserved);
    free(a);
}

size_t halo_arena_reserved(const halo_arena *a)
{
    return a ? a->reserved : 0;
}

int64_t halo_arena_total_reserved(void)
{
    return (int64_t)atomic_load(&total_reserved);
}

static void *pb_alloc(void *ud, size_t size)
{
    return halo_arena_alloc(ud, size);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    (void)p; /* released with the arena */
}

ProtobufCAllocator halo_arena_pb_allocator(halo_arena *a)
{
    ProtobufCAllocator al = {pb_alloc, pb_free, a};
    return al;
}
