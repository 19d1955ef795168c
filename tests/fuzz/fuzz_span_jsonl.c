/*
 * fuzz_span_jsonl.c -- libFuzzer target for halo_span_decode_jsonl.
 *
 * Decodes the input as one line of HALO-style span JSONL into a fresh
 * arena. A decoded span must encode to OTLP/JSON that decodes back to one
 * span; anything else aborts.
 */
#include "core/arena.h"
#include "core/buf.h"
#include "receivers/otlp/otlp_codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_arena *arena = halo_arena_new(0);
    halo_otlp_result r, back;
    halo_err err;
    if (!arena)
        return 0;
    if (halo_span_decode_jsonl((const char *)data, size, arena, &r, &err) ==
            HALO_OK &&
        r.n == 1) {
        halo_buf js = HALO_BUF_INIT;
        if (halo_otlp_encode_json(r.spans, r.n, &js) != HALO_OK)
            abort();
        if (halo_otlp_decode_json(js.data, js.len, arena, &back, &err) !=
                HALO_OK ||
            back.n != 1) {
            fprintf(stderr, "JSON round trip: %s\n", err.msg);
            abort();
        }
        halo_buf_free(&js);
    }
    halo_arena_free(arena);
    return 0;
}
