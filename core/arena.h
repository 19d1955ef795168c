/*
 * arena.h -- region allocator: allocate many small pieces, free them once.
 *
 * Each decoded OTLP request lives in one arena (nginx pools): protobuf-c
 * decodes into it through halo_arena_pb_allocator(), the decoder's spans and
 * strings are carved from it, and the whole request is released with one
 * halo_arena_free() when its batch is done. Not thread-safe: an arena belongs
 * to one owner at a time (ownership moves with the batch chunk holding it).
 *
 * Every arena adds its reserved bytes to a process-wide counter so the
 * memory_limiter can refuse new data when too much is in flight.
 */
#ifndef HALO_ARENA_H
#define HALO_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Under AddressSanitizer every block comes from malloc, so ASan's redzones
 * still catch a decoder writing past a block (and no block is mapped). */
#if defined(__SANITIZE_ADDRESS__)
#define HALO_ARENA_MALLOC_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HALO_ARENA_MALLOC_ONLY 1
#endif
#endif

typedef struct halo_arena halo_arena;

/* The usable bytes of the largest block an arena grows by (one 2 MiB huge
 * page with its header): an allocation larger than that gets a block of
 * its own size, and arenas grown past it add blocks of this size, which any
 * arena can then reuse from the pool. */
#define HALO_ARENA_BLOCK_MAX (((size_t)2 << 20) - 64)

/* A new arena whose first block holds at least first_block bytes (0: 4 KiB).
 * Returns NULL when out of memory. */
halo_arena *halo_arena_new(size_t first_block);
/* 16-byte aligned, uninitialized; NULL when out of memory. */
void *halo_arena_alloc(halo_arena *a, size_t n);
/* Zeroed. */
void *halo_arena_calloc(halo_arena *a, size_t count, size_t size);
/* Copy of s[0..n) with a terminating NUL. */
char *halo_arena_strndup(halo_arena *a, const char *s, size_t n);
char *halo_arena_strdup(halo_arena *a, const char *s);
/* Frees every block; NULL is allowed. */
void halo_arena_free(halo_arena *a);
/* Bytes the next allocation can take without starting a new block. */
size_t halo_arena_room(const halo_arena *a);
/* Bytes reserved by this arena's blocks. */
size_t halo_arena_reserved(const halo_arena *a);
/* Bytes reserved by all live arenas of the process. */
int64_t halo_arena_total_reserved(void);
/* Bytes of freed blocks the process keeps for reuse (not counted above). */
int64_t halo_arena_pooled_bytes(void);

/* A protobuf-c allocator that allocates from a (free is a no-op). The
 * returned struct refers to a; it must not outlive it. */
ProtobufCAllocator halo_arena_pb_allocator(halo_arena *a);

#endif
