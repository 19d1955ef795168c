/*
 * otlp_codec_internal.h -- what the codec's source files share.
 *
 * The codec is split by concern:
 *   otlp_codec_common.c  shared empties, per-span id checks and rejects,
 *                        resource/scope equality for the encoders
 *   otlp_codec_pb.c      protobuf: the pre-check (framing, nesting, size
 *                        guard), the protobuf-c reference decoder and
 *                        reference encoder, responses and google.rpc.Status
 *   otlp_codec_pbwire.c  the protobuf decoder in use: wire bytes straight
 *                        into halo_spans in the arena (2x faster, 2.4x less
 *                        memory than protobuf-c + conversion; proven equal
 *                        by a differential test and fuzzer)
 *   otlp_codec_pbenc.c   the protobuf encoder in use: halo_spans straight
 *                        to wire bytes, sizes first (4x faster than
 *                        protobuf-c; byte-identical, proven by a
 *                        differential test and fuzzer; otlp_codec_enc.h)
 *   otlp_codec_json.c    OTLP/JSON in (jansson) and out, JSON responses,
 *                        and the JSON value helpers the JSONL decoder uses
 *   otlp_codec.c         HALO-style span JSONL (one flat span per line)
 *
 * Nothing here is part of the public contract (otlp_codec.h).
 */
#ifndef HALO_OTLP_CODEC_INTERNAL_H
#define HALO_OTLP_CODEC_INTERNAL_H

#include "../../core/base64.h"
#include "otlp_codec.h"

#include <jansson.h>
#include <stdbool.h>

/* Deepest nesting of attribute values (AnyValue inside arrays / kvlists). A
 * top-level attribute value is depth 1. */
#define OTLP_MAX_VALUE_DEPTH 32

/* The resource and scope of spans that came without one. Shared by every
 * decoded request: never written to. */
extern const halo_resource otlp_empty_resource;
extern const halo_scope otlp_empty_scope;

/* Count one rejected span in out; the first reject's reason (printf style,
 * normally "<path>: invalid trace_id (...)") is kept in out->reject_msg. */
void otlp_reject(halo_otlp_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checks the ids of a span: trace id 16 bytes and not all zero, span id 8
 * bytes and not all zero, parent empty or 8 bytes. On failure writes the
 * reason ("invalid trace_id (length 15, expected 16)") into why and returns
 * false. */
bool otlp_check_span_ids(size_t trace_len, const uint8_t *trace_id,
                         size_t span_len, const uint8_t *span_id,
                         size_t parent_len, char *why, size_t why_size);
/* Same for a link: trace id 16 bytes, span id 8 bytes (zero allowed). */
bool otlp_check_link_ids(size_t trace_len, size_t span_len, char *why,
                         size_t why_size);

/* Deep equality, for grouping spans under one resource / scope entry. */
bool otlp_value_equal(const halo_value *a, const halo_value *b);
bool otlp_attrs_equal(const halo_attrs *a, const halo_attrs *b);
bool otlp_resource_equal(const halo_resource *a, const halo_resource *b);
bool otlp_scope_equal(const halo_scope *a, const halo_scope *b);

/* --- JSON decoding helpers (otlp_codec_json.c), shared with JSONL ------- */

/* A decoding context: the arena, the error, and the path of the value being
 * decoded ("resourceSpans[0].scopeSpans[1].spans[3]") for messages. */
typedef struct otlp_jctx {
    halo_arena *arena;
    halo_err *err;
    size_t plen;
    char path[384];
} otlp_jctx;

/* Append ".name" (or "name" at the root) / "[i]" to the path; returns the
 * previous length for otlp_jpath_pop. */
size_t otlp_jpath_field(otlp_jctx *c, const char *name);
size_t otlp_jpath_index(otlp_jctx *c, size_t i);
void otlp_jpath_pop(otlp_jctx *c, size_t len);
/* Parse buf[0..len) as JSON and run decode over its root with a fresh
 * context; a syntax error is HALO_EINVAL with its line and column. out is
 * cleared first and holds no spans when decoding fails. */
typedef halo_status (*otlp_jdecode_fn)(otlp_jctx *c, json_t *root,
                                       halo_otlp_result *out);
halo_status otlp_jdecode(const char *buf, size_t len, halo_arena *arena,
                         otlp_jdecode_fn decode, halo_otlp_result *out,
                         halo_err *err);
/* Decodes one link; *ok false (reason in why) when its ids are unusable. */
typedef halo_status (*otlp_jlink_fn)(otlp_jctx *c, json_t *l, halo_link *out,
                                     bool *ok, char *why, size_t why_size);
/* The links of array arr into links[0..n) with decode (the path is left as
 * it was). Stops at the first unusable link: *ok false and why
 * "links[i]: <reason>". */
halo_status otlp_jlinks(otlp_jctx *c, json_t *arr, halo_link *links,
                        otlp_jlink_fn decode, bool *ok, char *why,
                        size_t why_size);
/* HALO_EINVAL with "<path>: <what>". */
halo_status otlp_jfail(otlp_jctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* HALO_ENOMEM "could not allocate memory for <path>". */
halo_status otlp_jnomem(otlp_jctx *c);

/* The member called camel or snake (either may be NULL); JSON null counts
 * as absent. *used is set to the name found (for paths). */
json_t *otlp_jget(json_t *obj, const char *camel, const char *snake,
                  const char **used);

/* Typed readers. Each reads member `name` (camel / snake) of obj when
 * present and leaves *out untouched when it is absent; a wrong type is
 * HALO_EINVAL naming the path. */
halo_status otlp_jstr(otlp_jctx *c, json_t *obj, const char *camel,
                      const char *snake, const char **out);
halo_status otlp_ju64(otlp_jctx *c, json_t *obj, const char *camel,
                      const char *snake, uint64_t *out);
halo_status otlp_ju32(otlp_jctx *c, json_t *obj, const char *camel,
                      const char *snake, uint32_t *out);

/* Value parsers for a json_t already in hand (path already pushed). */
halo_status otlp_jval_u64(otlp_jctx *c, json_t *v, uint64_t *out);
halo_status otlp_jval_i64(otlp_jctx *c, json_t *v, int64_t *out);
halo_status otlp_jval_double(otlp_jctx *c, json_t *v, double *out);
/* A copy of a JSON string in the arena (NUL-terminated; *len optional). */
halo_status otlp_jval_str(otlp_jctx *c, json_t *v, const char **out,
                          size_t *len);
/* Hex id, optional "0x" prefix, either case: decodes up to max bytes into
 * id and sets *len to the number of bytes the hex stands for (which may be
 * more than max: the caller rejects the span). Non-hex characters or an odd
 * number of digits are HALO_EINVAL ("expected 32 hex digits, got 31"). */
halo_status otlp_jval_hex(otlp_jctx *c, json_t *v, size_t expect, uint8_t *id,
                          size_t max, size_t *len);

/* OTLP/JSON attributes: an array of {"key": ..., "value": AnyValue}. */
halo_status otlp_jattrs_otlp(otlp_jctx *c, json_t *arr, halo_attrs *out,
                             int depth);
/* Flat attributes: an object of key -> plain JSON value (string, bool,
 * integer, real, array, object, null). */
halo_status otlp_jattrs_map(otlp_jctx *c, json_t *obj, halo_attrs *out,
                            int depth);
/* Either of the two, by the JSON type of v. */
halo_status otlp_jattrs_any(otlp_jctx *c, json_t *v, halo_attrs *out);

#endif
