/*
 * otlp_codec_pbwire.h -- the two protobuf decoders of ExportTraceServiceRequest
 * and the check they share.
 *
 * halo_otlp_decode_pb (otlp_codec.h) is the direct wire-format decoder of
 * otlp_codec_pbwire.c. The protobuf-c based decoder it replaced stays
 * available as otlp_decode_pb_reference (otlp_codec_pb.c) so that tests and
 * the differential fuzzer can check that both give the same result for every
 * input. Not part of the public contract.
 */
#ifndef HALO_OTLP_CODEC_PBWIRE_H
#define HALO_OTLP_CODEC_PBWIRE_H

#include "otlp_codec.h"

/* The message every decoder gives for bytes that do not decode. */
#define OTLP_PB_DECODE_ERROR                                                   \
    "invalid protobuf: could not decode ExportTraceServiceRequest"

/* Pass 1 of both decoders: checks the framing of buf[0..len), the nesting
 * of attribute values and the memory decoding would take (HALO_EINVAL /
 * HALO_ETOOBIG with the message the decoders return), and counts the spans
 * into *n_spans (also on failure, as far as the scan got): more than
 * max_spans (0: no limit) is HALO_ETOOBIG. */
halo_status otlp_pb_precheck(const uint8_t *buf, size_t len, size_t max_spans,
                             size_t *n_spans, halo_err *err);

/* The direct wire decoder (what halo_otlp_decode_pb[_max] runs). */
halo_status otlp_decode_pbwire(const uint8_t *buf, size_t len, size_t max_spans,
                               halo_arena *arena, halo_otlp_result *out,
                               halo_err *err);

/* The protobuf-c decoder, kept as the reference for differential tests. */
halo_status otlp_decode_pb_reference(const uint8_t *buf, size_t len,
                                     halo_arena *arena, halo_otlp_result *out,
                                     halo_err *err);

#endif
