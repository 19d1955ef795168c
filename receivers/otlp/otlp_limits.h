/*
 * otlp_limits.h -- limits on what one OTLP request may carry (issue 8).
 *
 * The transports bound the bytes of a request (max_recv_msg_size,
 * max_request_body_size); these bound what the bytes decode into, after the
 * decoder and before anything goes downstream (otlp_dispatch):
 *   max_spans_per_request       more: the whole request is refused
 *                               (RESOURCE_EXHAUSTED / 413), nothing stored
 *   max_attributes_per_span     attributes past it are dropped and counted
 *                               in the owner's dropped_attributes_count
 *   max_attribute_value_length  longer string/bytes values are cut at a
 *                               character boundary, a marker appended, and
 *                               counted; never rejected
 *
 * Where the attribute limits apply: the span's attributes, each event's and
 * each link's (each list on its own), and also the resource's and the
 * scope's: those are stored with every span of the request (the `resource`
 * column), so an unbounded resource would multiply. The first
 * max_attributes_per_span attributes of a list are kept, in their order.
 * Values are checked at any depth inside arrays and kvlists (kvlist entries
 * are not attributes: only their values' lengths are limited). The derived
 * input/output fields (agent_identity) point into attribute values, so they
 * are cut too.
 *
 * A cut value is OTLP_LIMITS_MARKER ("…[truncated by halo: N bytes]", N the
 * original length) appended to the longest prefix that ends on a UTF-8
 * character boundary (BYTES values: on any byte) and leaves room for the
 * marker, so a stored value is never longer than max_attribute_value_length
 * and applying the limits again changes nothing.
 *
 * The functions are pure over a decoded request (a halo_span array and the
 * arena it lives in); the receiver adds metrics and the log (otlp_req.c).
 */
#ifndef HALO_OTLP_LIMITS_H
#define HALO_OTLP_LIMITS_H

#include "../../core/arena.h"
#include "../../core/config.h"
#include "../../core/span.h"
#include "../../core/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct otlp_limits_cfg {
    int64_t max_spans_per_request;
    int64_t max_attributes_per_span;
    int64_t max_attribute_value_length;
} otlp_limits_cfg;

extern const halo_field otlp_limits_schema[];

/* The marker's text before and after the original length, and the longest
 * marker (20 digits). max_attribute_value_length is at least 64 (schema),
 * so a cut value always keeps some of its text. */
#define OTLP_LIMITS_MARKER_HEAD "\xe2\x80\xa6[truncated by halo: "
#define OTLP_LIMITS_MARKER_TAIL " bytes]"
#define OTLP_LIMITS_MARKER_MAX 50

/* What otlp_limits_apply changed. */
typedef struct otlp_limits_stats {
    uint64_t attrs_dropped;    /* attributes dropped, all lists */
    uint64_t values_truncated; /* string/bytes values cut */
    size_t spans_touched;      /* spans with a list or a value changed */
    size_t first_span;         /* index of the first; SIZE_MAX: none */
} otlp_limits_stats;

/* HALO_ETOOBIG when n_spans is over max_spans_per_request, with a message
 * naming both ("request of 100001 spans exceeds max_spans_per_request
 * (100000)"); else HALO_OK. A limit <= 0 means none. */
halo_status otlp_limits_check_spans(const otlp_limits_cfg *cfg, size_t n_spans,
                                    halo_err *err);

/* Apply max_attributes_per_span and max_attribute_value_length to
 * spans[0..n) in place (their resources and scopes too), allocating cut
 * values from arena. value_bound is an upper bound of every string/bytes
 * value's length (the decoded body's size: decoding never makes a value
 * longer than its encoding; SIZE_MAX when unknown): when it is within the
 * limit, values are not visited at all and only the list sizes are
 * compared. Limits <= 0 mean none. *st is filled. HALO_ENOMEM when a cut
 * value could not be allocated (values cut before stay cut). */
halo_status otlp_limits_apply(const otlp_limits_cfg *cfg, halo_span *spans,
                              size_t n, size_t value_bound, halo_arena *arena,
                              otlp_limits_stats *st);

/* The longest prefix of s[0..len) of at most max bytes that does not end
 * inside a UTF-8 sequence (for invalid UTF-8: backs up at most 3 bytes). */
size_t otlp_limits_utf8_prefix(const char *s, size_t len, size_t max);

/* Write the marker for a value of original_len bytes into buf (NUL
 * terminated when size allows); returns its length (<=
 * OTLP_LIMITS_MARKER_MAX). */
size_t otlp_limits_marker(char *buf, size_t size, size_t original_len);

#endif
