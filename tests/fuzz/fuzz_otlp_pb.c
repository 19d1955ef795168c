/*
 * fuzz_otlp_pb.c -- libFuzzer target for halo_otlp_decode_pb.
 *
 * Decodes the input as an ExportTraceServiceRequest into a fresh arena.
 * When it decodes, the spans must survive a protobuf and an OTLP/JSON round
 * trip with the same count (the encoders and decoders agree on every value
 * the protobuf decoder can produce); anything else aborts.
 *
 *   cmake -S . -B build-fuzz -DHALO_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   build-fuzz/fuzz_otlp_pb tests/fuzz/corpus/fuzz_otlp_pb -max_total_time=30
 */
#include "core/arena.h"
#include "core/buf.h"
#include "receivers/otlp/otlp_codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void roundtrip(const halo_otlp_result *r)
{
    uint8_t *pb = NULL;
    size_t len = 0;
    halo_buf js = HALO_BUF_INIT;
    halo_err err;
    halo_otlp_result back;
    if (halo_otlp_encode_pb(r->spans, r->n, &pb, &len) != HALO_OK)
        abort();
    halo_arena *a = halo_arena_new(0);
    if (halo_otlp_decode_pb(pb, len, a, &back, &err) != HALO_OK ||
        back.n != r->n || back.rejected != 0) {
        fprintf(stderr, "protobuf round trip: %s\n", err.msg);
        abort();
    }
    if (halo_otlp_encode_json(r->spans, r->n, &js) != HALO_OK)
        abort();
    if (halo_otlp_decode_json(js.data, js.len, a, &back, &err) != HALO_OK ||
        back.n != r->n || back.rejected != 0) {
        fprintf(stderr, "JSON round trip: %s\n", err.msg);
        abort();
    }
    halo_arena_free(a);
    halo_buf_free(&js);
    free(pb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_arena *arena = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err;
    if (!arena)
        return 0;
    if (halo_otlp_decode_pb(data, size, arena, &r, &err) == HALO_OK)
        roundtrip(&r);
    halo_arena_free(arena);
    return 0;
}
