/*
 * otlp_limits.h -- limits on what one OTLP request may carry (issue 8).
 *
 * The transports bound the bytes of a request (max_recv_msg_size,
 * max_request_body_size); these bound what the bytes decode into, after the
 * decoder and before anything goes downstream:
 *   max_spans_per_request       more: the whole request is refused
 *                               (RESOURCE_EXHAUSTED / 413), nothing stored
 *   max_attributes_per_span     attributes past it are dropped and counted
 *   max_attribute_value_length  longer string/bytes values are cut at a
 *                               character boundary, a marker appended, and
 *                               counted; never rejected
 */
#ifndef HALO_OTLP_LIMITS_H
#define HALO_OTLP_LIMITS_H

#include "../../core/config.h"

#include <stdint.h>

typedef struct otlp_limits_cfg {
    int64_t max_spans_per_request;
    int64_t max_attributes_per_span;
    int64_t max_attribute_value_length;
} otlp_limits_cfg;

extern const halo_field otlp_limits_schema[];

#endif
