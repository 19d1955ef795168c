/*
 * kafka_encode.h -- a batch's spans as Kafka messages: grouped by trace id,
 * encoded as OTLP ExportTraceServiceRequests, split to a size limit.
 *
 * Kept apart from the producer (kafka.c) so the per-span path -- grouping,
 * encoding, splitting -- can be read, tested and measured without a broker.
 *
 * Grouping is stable and linear: one hash-table pass assigns each span a
 * group (its trace), a counting pass lays the span pointers out group after
 * group, each group in batch order. No span is copied; the encoders take
 * span pointers (halo_otlp_encode_pb_refs / _json_refs).
 *
 * Splitting: a group whose encoding exceeds the limit is cut into parts of
 * equal span counts, as many as its size asks for (at least two: halves),
 * and each part that still does not fit is cut again, until every part fits
 * or holds a single span. A single span over the limit is emitted alone,
 * flagged `oversize` (never dropped, never refused here). An encoder learns
 * the encoded bytes per span, so a group that is surely too big is cut before
 * it is encoded whole.
 */
#ifndef HALO_KAFKA_ENCODE_H
#define HALO_KAFKA_ENCODE_H

#include "core/batch.h"
#include "core/buf.h"
#include "core/span.h"
#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>

enum { KX_OTLP_PROTO = 0, KX_OTLP_JSON };

/* Span pointers of a batch, group after group. */
typedef struct kx_groups {
    const halo_span **refs; /* every span of the batch */
    size_t n;
    size_t *starts; /* group g is refs[starts[g] .. starts[g + 1]) */
    size_t n_groups;
} kx_groups;

/* Group b's spans by trace id (by_trace) or into one group. The caller frees
 * g with kx_groups_free, also after a failure. */
halo_status kx_group(const halo_batch *b, bool by_trace, kx_groups *g);
void kx_groups_free(kx_groups *g);

/* One message to produce. data is valid during the emit call only. */
typedef struct kx_msg {
    const char *data;
    size_t len;
    const char *key; /* NULL: no key */
    size_t key_len;
    size_t n_spans;
    const halo_span *first; /* first span of the message */
    bool oversize;          /* a single span larger than the limit */
} kx_msg;

/* Hand one message over; a non-OK status stops the encoding of the batch
 * (the callee has recorded why). */
typedef halo_status (*kx_emit_fn)(void *ud, const kx_msg *m);

typedef struct kx_encoder {
    int encoding;          /* KX_OTLP_PROTO or KX_OTLP_JSON */
    size_t max_bytes;      /* limit on one message's value */
    size_t bytes_per_span; /* learned; 0: unknown */
    halo_buf buf;          /* reused between messages */
} kx_encoder;

/* Emit spans[0..n) (one group) as messages of at most enc->max_bytes each
 * (except single oversize spans), every message with the same key. On an
 * encoding failure returns its status with err set; on an emit failure
 * returns the emit status. */
halo_status kx_encode_group(kx_encoder *enc, const halo_span *const *spans,
                            size_t n, const char *key, size_t key_len,
                            kx_emit_fn emit, void *ud, halo_err *err);

void kx_encoder_free(kx_encoder *enc);

#endif
