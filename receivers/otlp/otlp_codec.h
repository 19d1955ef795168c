/*
 * otlp_codec.h -- OTLP trace data in and out of the halo span model.
 *
 * Decoders take untrusted bytes: they never crash, never read out of
 * bounds, and on bad input return HALO_EINVAL with a message naming what
 * was wrong ("resourceSpans[0].scopeSpans[1].spans[3].traceId: expected 32
 * hex digits, got 31"). Spans that are individually invalid (trace id not
 * 16 bytes or all zero, span id not 8 bytes or all zero) are left out and
 * counted in `rejected` with a message for OTLP partial_success; the rest of
 * the request is kept.
 *
 * Everything decoded lives in the caller's arena.
 */
#ifndef HALO_OTLP_CODEC_H
#define HALO_OTLP_CODEC_H

#include "../../core/arena.h"
#include "../../core/buf.h"
#include "../../core/span.h"
#include "../../core/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct halo_otlp_result {
    halo_span *spans; /* in the arena */
    size_t n;
    int64_t rejected;     /* spans left out */
    char reject_msg[256]; /* why the first one was left out */
    size_t carried;       /* spans the request carries (protobuf: counted by
                             the first pass, also when max_spans refused) */
} halo_otlp_result;

/* The first arena block to decode a request of len bytes into: the direct
 * protobuf decoder needs ~2.3x the body in the span model, so 2.5x holds a
 * typical request in one block; small requests start at the arena's
 * default, large ones at one 2 MiB block (later blocks double up to it). */
size_t halo_otlp_arena_first(size_t len);

/* ExportTraceServiceRequest, protobuf wire format. */
halo_status halo_otlp_decode_pb(const uint8_t *buf, size_t len,
                                halo_arena *arena, halo_otlp_result *out,
                                halo_err *err);
/* The same, refusing a request of more than max_spans spans (0: no limit)
 * with HALO_ETOOBIG in the first pass, before anything is allocated:
 * out->carried then says how many it carries. A 64 MiB request of tiny
 * spans would otherwise take ~1 GiB once decoded before a limit applied
 * after decoding could refuse it. */
#define HALO_OTLP_TOO_MANY_SPANS                                               \
    "request of %zu spans exceeds max_spans_per_request (%zu)"
halo_status halo_otlp_decode_pb_max(const uint8_t *buf, size_t len,
                                    size_t max_spans, halo_arena *arena,
                                    halo_otlp_result *out, halo_err *err);
/* ExportTraceServiceRequest, OTLP/JSON (hex ids, lowerCamelCase, int64 as
 * string or number, enums as integers, unknown fields ignored). Also accepts
 * snake_case field names. */
halo_status halo_otlp_decode_json(const char *buf, size_t len,
                                  halo_arena *arena, halo_otlp_result *out,
                                  halo_err *err);
/* One line of HALO-style span JSONL (one flat span object per line, see
 * otlp_codec.c for the accepted shape). Decodes into one span. */
halo_status halo_span_decode_jsonl(const char *line, size_t len,
                                   halo_arena *arena, halo_otlp_result *out,
                                   halo_err *err);

/* OTLP/JSON ExportTraceServiceRequest of spans, grouped by resource and
 * scope (by pointer identity, then by equal content): each run of
 * consecutive spans sharing a resource is one resourceSpans entry, each run
 * within it sharing a scope one scopeSpans entry, in the spans' order.
 * Appends to out. HALO_EINVAL when attribute values nest deeper than 32
 * levels, HALO_ENOMEM when out ran out of memory. */
halo_status halo_otlp_encode_json(const halo_span *spans, size_t n,
                                  halo_buf *out);
/* Same, protobuf wire format, written straight from the spans
 * (otlp_codec_pbenc.c); *out is malloc'd (never NULL on success, even for
 * 0 bytes). On failure nothing is written and *out is NULL. */
halo_status halo_otlp_encode_pb(const halo_span *spans, size_t n, uint8_t **out,
                                size_t *out_len);

/* The same two encodings for spans given by pointer, in any order (the
 * kafka exporter groups a batch's spans by trace id without copying them).
 * Append to out; on failure out->oom or the status says why (the protobuf
 * one then appends nothing). Output is byte-identical to encoding the same
 * spans as a contiguous array in the order of the pointers. */
halo_status halo_otlp_encode_pb_refs(const halo_span *const *spans, size_t n,
                                     halo_buf *out);
halo_status halo_otlp_encode_json_refs(const halo_span *const *spans, size_t n,
                                       halo_buf *out);

/* ExportTraceServiceResponse; partial_success only when rejected > 0. */
halo_status halo_otlp_response_pb(int64_t rejected, const char *msg,
                                  uint8_t **out, size_t *out_len);
void halo_otlp_response_json(int64_t rejected, const char *msg, halo_buf *out);

/* google.rpc.Status {code, message} in protobuf (HTTP error bodies for
 * application/x-protobuf) and JSON. */
halo_status halo_rpc_status_pb(int code, const char *msg, uint8_t **out,
                               size_t *out_len);
void halo_rpc_status_json(int code, const char *msg, halo_buf *out);

#endif
