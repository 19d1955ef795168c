/*
 * arena.c -- region allocator (arena.h).
 *
 * A singly linked list of blocks; allocation bumps a pointer in the newest
 * block and starts a new block (doubling up to HALO_ARENA_BLOCK_MAX, at
 * least the request) when it does not fit. Freeing releases every block.
 * The process-wide counter of reserved bytes feeds the memory_limiter and
 * the inflight-bytes gauge.
 *
 * Small blocks come from malloc. Blocks of 64 KiB and more (what decoded
 * requests and prepared rows use) are mapped in power-of-two sizes and kept
 * in a small process-wide pool when freed (at most ARENA_POOL_MAX bytes);
 * beyond that they are unmapped. Reuse avoids page faults on the hot path,
 * and the bound means a burst of large requests gives its memory back to
 * the system instead of staying in malloc's free lists. Measured under the
 * bench load (12,800 spans in flight): peak RSS 215 -> ~160 MiB at the same
 * throughput. (Just lowering malloc's mmap threshold to 64 KiB gave ~135
 * MiB but cost 12% of the throughput in page faults.)
 *
 * A new block is the pool's block of its size or, failing that, of twice
 * its size (resident pages are cheaper than fresh ones); when it must be
 * mapped, as many pooled bytes of other sizes are unmapped first, so the
 * blocks the process holds grow past the live ones' peak only by what the
 * pool held at that peak. Measured on the Kafka -> PostgreSQL persist node,
 * whose live blocks swing by tens of MB per batch in every size: with a 16
 * MiB pool of exact sizes, 4% of the machine's CPU went to zeroing fresh
 * pages; with this policy and 32 MiB, 108-112k spans/s against 91-109k,
 * peak RSS the same within its noise (bench/README.md, session 12). A block
 * of twice the size counts whole in the reserved bytes (the
 * memory_limiter's and the batch sizes' measure): its pages are resident,
 * as the doubling's half-used last block's are.
 *
 * Doubling stops at one 2 MiB block. Until session 14 it went on to 64
 * MiB, so the Kafka persist node's gathers (~17 MiB decoded) ended in a
 * mostly unused 16 MiB block, and blocks of every size from 512 KiB to 16
 * MiB came and went: the pool rarely had the size asked for (measured in
 * bench/README.md, session 14). Now nearly every large block is a 2 MiB
 * one, which any arena can take from the pool.
 *
 * Blocks of 2 MiB and more are aligned to 2 MiB and marked MADV_HUGEPAGE:
 * where transparent huge pages are enabled ("always" or "madvise", as here)
 * a fresh block then takes one page fault per 2 MiB instead of 512. The
 * Kafka persist node, whose gathered batches (~10 MB decoded, ~14 MB of
 * prepared rows) outgrow the pool, spent ~20% of its CPU in page faults;
 * with huge pages its CPU per span fell 15% (4.8 -> 4.1 us, seven runs
 * each, bench/README.md "session 11") at the same peak RSS: the blocks
 * are filled from the start, so at most one huge page per block is partly
 * used.
 */
#include "arena.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct block {
    struct block *prev;
    size_t size; /* usable bytes after the header */
    size_t used;
    int cls; /* -1: malloc'd; else mapped, 2^cls bytes in all */
    _Alignas(16) unsigned char data[];
} block;

#ifdef HALO_ARENA_MALLOC_ONLY /* arena.h */
#define BIG_MIN_CLS 63
#else
#define BIG_MIN_CLS 16 /* 64 KiB: smaller blocks come from malloc */
#endif
#define POOL_MAX_CLS 26 /* 64 MiB (a 32 MiB pool keeps none that large) */
#define ARENA_POOL_MAX ((size_t)32 << 20)

_Static_assert(sizeof(block) + HALO_ARENA_BLOCK_MAX <= ((size_t)2 << 20),
               "a grown block fits one 2 MiB class");

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static block *pool[POOL_MAX_CLS + 1];
static size_t pool_bytes;

struct halo_arena {
    block *cur;
    size_t reserved;
    size_t next_size;
};

static atomic_llong total_reserved;

#define ALIGN16(n) (((n) + 15u) & ~(size_t)15u)

static int size_class(size_t total)
{
    int c = BIG_MIN_CLS;
    while (c < 63 && ((size_t)1 << c) < total)
        c++;
    return c;
}

/* A mapping of `bytes` (a power of two, at least 64 KiB). From 2 MiB up it
 * is aligned to 2 MiB and marked for transparent huge pages: filling it
 * then takes one page fault per 2 MiB instead of 512. */
static block *map_block(size_t bytes)
{
    size_t huge = (size_t)2 << 20;
    if (bytes < huge) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    char *p = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    size_t lead = (huge - (uintptr_t)p % huge) % huge;
    if (lead)
        munmap(p, lead);
    munmap(p + lead + bytes, huge - lead);
    (void)madvise(p + lead, bytes, MADV_HUGEPAGE);
    return (block *)(void *)(p + lead);
}

/* The first pooled block of class k, out of the pool; NULL when there is
 * none. With the pool lock held. */
static block *pool_pop_locked(int k)
{
    block *b = pool[k];
    if (b) {
        pool[k] = b->prev;
        pool_bytes -= (size_t)1 << k;
    }
    return b;
}

/* A pooled block of class c, else of class c + 1 (twice the size: its
 * pages are resident already, which is cheaper than faulting in fresh ones
 * of the right size). With the pool lock held. */
static block *pool_take_locked(int c)
{
    block *b = NULL;
    for (int k = c; !b && k <= POOL_MAX_CLS && k <= c + 1; k++)
        b = pool_pop_locked(k);
    return b;
}

/* Before a fresh mapping of `bytes`: take pooled blocks of other sizes,
 * smallest first, until as many bytes leave the pool (or it is empty).
 * So a miss never adds to the memory the process holds: mapped blocks
 * grow beyond the peak of live ones only by what the pool held when that
 * peak was reached. Returns the list (linked by prev) to unmap, with the
 * pool lock held. */
static block *pool_evict_locked(size_t bytes)
{
    block *out = NULL;
    size_t got = 0;
    for (int k = BIG_MIN_CLS; k <= POOL_MAX_CLS && got < bytes; k++) {
        block *b;
        while (got < bytes && (b = pool_pop_locked(k))) {
            got += (size_t)1 << k;
            b->prev = out;
            out = b;
        }
    }
    return out;
}

/* A block with at least `size` usable bytes (b->size may be larger). */
static block *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(block))
        return NULL;
    size_t total = sizeof(block) + size;
    block *b;
    if (total < ((size_t)1 << BIG_MIN_CLS)) {
        if (!(b = malloc(total)))
            return NULL;
        b->size = size;
        b->cls = -1;
    } else {
        int c = size_class(total);
        block *evicted = NULL;
        b = NULL;
        if (c <= POOL_MAX_CLS) {
            pthread_mutex_lock(&pool_mu);
            if (!(b = pool_take_locked(c)))
                evicted = pool_evict_locked((size_t)1 << c);
            pthread_mutex_unlock(&pool_mu);
        }
        while (evicted) {
            block *next = evicted->prev;
            munmap(evicted, (size_t)1 << evicted->cls);
            evicted = next;
        }
        if (b) {
            c = b->cls;
        } else if (!(b = map_block((size_t)1 << c))) {
            return NULL;
        }
        b->size = ((size_t)1 << c) - sizeof(block);
        b->cls = c;
    }
    b->prev = NULL;
    b->used = 0;
    return b;
}

static void block_free(block *b)
{
    if (b->cls < 0) {
        free(b);
        return;
    }
    size_t bytes = (size_t)1 << b->cls;
    if (b->cls <= POOL_MAX_CLS) {
        pthread_mutex_lock(&pool_mu);
        if (pool_bytes + bytes <= ARENA_POOL_MAX) {
            b->prev = pool[b->cls];
            pool[b->cls] = b;
            pool_bytes += bytes;
            b = NULL;
        }
        pthread_mutex_unlock(&pool_mu);
    }
    if (b)
        munmap(b, bytes);
}

/* The block size an arena asks for after a block of `size`. */
static size_t grown(size_t size)
{
    return size < HALO_ARENA_BLOCK_MAX / 2 ? size * 2 : HALO_ARENA_BLOCK_MAX;
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
    a->reserved = a->cur->size;
    a->next_size = grown(first_block);
    atomic_fetch_add(&total_reserved, (long long)a->reserved);
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
        size_t size = a->next_size < need ? need : a->next_size;
        block *nb = block_new(size);
        if (!nb)
            return NULL;
        nb->prev = b;
        a->cur = nb;
        a->reserved += nb->size;
        atomic_fetch_add(&total_reserved, (long long)nb->size);
        a->next_size = grown(a->next_size);
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
        block_free(b);
        b = prev;
    }
    atomic_fetch_sub(&total_reserved, (long long)a->reserved);
    free(a);
}

size_t halo_arena_room(const halo_arena *a)
{
    return a ? (a->cur->size - a->cur->used) & ~(size_t)15u : 0;
}

size_t halo_arena_reserved(const halo_arena *a)
{
    return a ? a->reserved : 0;
}

int64_t halo_arena_total_reserved(void)
{
    return (int64_t)atomic_load(&total_reserved);
}

int64_t halo_arena_pooled_bytes(void)
{
    pthread_mutex_lock(&pool_mu);
    size_t n = pool_bytes;
    pthread_mutex_unlock(&pool_mu);
    return (int64_t)n;
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
