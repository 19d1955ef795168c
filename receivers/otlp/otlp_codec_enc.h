/*
 * otlp_codec_enc.h -- what the OTLP encoders share.
 *
 * Every encoder works over an array of span pointers: the kafka exporter
 * hands over a batch's spans grouped by trace id without copying them, and
 * the contiguous-array entry points (halo_otlp_encode_pb / _json) only build
 * such an array. Spans are grouped into resourceSpans / scopeSpans entries
 * by runs of consecutive spans sharing a resource (same pointer or equal
 * content), and within that a scope, so entries keep the order in which the
 * spans came.
 *
 * halo_otlp_encode_pb runs the direct wire encoder of otlp_codec_pbenc.c.
 * The protobuf-c encoder it replaced stays available as
 * otlp_encode_pb_reference (otlp_codec_pb.c) so that tests and the
 * differential fuzzer can check that both write the same bytes. Not part of
 * the public contract.
 */
#ifndef HALO_OTLP_CODEC_ENC_H
#define HALO_OTLP_CODEC_ENC_H

#include "otlp_codec.h"

/* Length of the run of spans starting at i that share spans[i]'s resource
 * (same pointer or equal content), and of those sharing its scope. The
 * encoders group by these. */
size_t otlp_resource_run_refs(const halo_span *const *spans, size_t n,
                              size_t i);
size_t otlp_scope_run_refs(const halo_span *const *spans, size_t n, size_t i);

/* A malloc'd array of pointers to spans[0..n) (at least one slot, so never
 * NULL for n == 0); NULL when out of memory. The caller frees it. */
const halo_span **otlp_span_refs(const halo_span *spans, size_t n);

/* The direct wire encoder (what halo_otlp_encode_pb_refs runs). Appends
 * the ExportTraceServiceRequest to out; HALO_ENOMEM when out ran out of
 * memory, HALO_EINVAL when attribute values nest deeper than
 * OTLP_MAX_VALUE_DEPTH (out then holds a partial message). */
halo_status otlp_encode_pbenc(const halo_span *const *spans, size_t n,
                              halo_buf *out);

/* The protobuf-c encoder, kept as the reference for differential tests:
 * same contract, same bytes. */
halo_status otlp_encode_pb_reference(const halo_span *const *spans, size_t n,
                                     halo_buf *out);

#endif
