/*
 * batch.h -- acknowledgements and span batches: the reliability promise.
 *
 * An ack stands for one incoming request (an OTLP Export, an import chunk, a
 * Kafka message). The receiver creates it with the function that answers
 * the client, attaches it to the batch holding the request's spans, emits
 * the batch, and drops its own reference. Whoever holds the batch later
 * (batch processor, exporter) completes it with halo_batch_done(); when the
 * last batch that carries the ack is done, the ack's function runs once with
 * the final status: HALO_OK only if every exporter that received the spans
 * confirmed them durable, otherwise the first failure recorded.
 *
 * A batch is a list of chunks, each an arena with the spans decoded into it,
 * plus the acks of the requests those spans came from. The batch processor
 * merges batches by moving chunks and acks (no span is copied), which is how
 * group commit completes many requests with one write.
 *
 * Ownership: consume()/emit transfers one reference of the batch to the
 * callee, which must eventually call halo_batch_done() on it exactly once
 * (or pass the reference on). Fan-out takes extra references.
 */
#ifndef HALO_BATCH_H
#define HALO_BATCH_H

#include "arena.h"
#include "span.h"
#include "status.h"

#include <stdatomic.h>
#include <stddef.h>

typedef struct halo_ack halo_ack;

/* Called once, from whichever thread completed the last reference.
 * msg is "" on success. */
typedef void (*halo_ack_fn)(void *ud, halo_status st, const char *msg);

/* NULL when out of memory. Starts with one reference. */
halo_ack *halo_ack_new(halo_ack_fn fn, void *ud);
void halo_ack_ref(halo_ack *ack);
/* Record a failure; the first recorded failure is the one reported. */
void halo_ack_fail(halo_ack *ack, halo_status st, const char *msg);
/* Drop a reference; the last one runs the function and frees the ack. */
void halo_ack_unref(halo_ack *ack);

typedef struct halo_chunk {
    halo_arena *arena; /* owned; may be NULL when spans live elsewhere */
    halo_span *spans;
    size_t n;
    struct halo_chunk *next;
} halo_chunk;

typedef struct halo_batch {
    atomic_int refs;
    halo_chunk *head;
    halo_chunk *tail;
    size_t n_spans;
    size_t bytes; /* arena bytes reserved by the chunks */
    halo_ack **acks;
    size_t n_acks;
    size_t cap_acks;
    uint64_t created_ns; /* monotonic, for latency metrics */
} halo_batch;

/* An empty batch with one reference; NULL when out of memory. */
halo_batch *halo_batch_new(void);
/* Append spans[0..n) living in arena (the batch takes ownership of the arena,
 * also on failure). */
halo_status halo_batch_add_chunk(halo_batch *b, halo_arena *arena,
                                 halo_span *spans, size_t n);
/* Attach ack (takes its own reference). */
halo_status halo_batch_add_ack(halo_batch *b, halo_ack *ack);
/* Move every chunk and ack of src to dst and release src (src must have a
 * single reference). */
halo_status halo_batch_merge(halo_batch *dst, halo_batch *src);
/* A deep copy with fresh arenas and the same acks, for fan-out into
 * pipelines whose processors change spans. NULL when out of memory. */
halo_batch *halo_batch_clone(const halo_batch *b);
void halo_batch_ref(halo_batch *b);
/* Complete one reference: a non-OK status is recorded on every ack. The last
 * reference frees the chunks and releases the acks. */
void halo_batch_done(halo_batch *b, halo_status st, const char *msg);

/* For exporters that turned b into self-contained data (rows, messages):
 * when nobody else holds b (no fan-out), free its decoded spans now rather
 * than after the write -- they are the larger part of the memory in flight.
 * The acks and n_spans stay; the chunks keep no spans. */
void halo_batch_release_spans(halo_batch *b);

/* An exporter refusing b: counts its spans on `failed` (a halo_metric
 * counter; NULL: none), completes b with st and msg, and returns st. */
struct halo_metric;
halo_status halo_batch_refuse(halo_batch *b, struct halo_metric *failed,
                              halo_status st, const char *msg);

#define HALO_BATCH_FOREACH(b, c, sp)                                           \
    for (halo_chunk *c = (b)->head; c; c = c->next)                            \
        for (halo_span *sp = c->spans; sp < c->spans + c->n; sp++)

#endif
