/*
 * fuzz_kafka_payload.c -- libFuzzer target for what the Kafka path does with
 * untrusted message bytes beyond the OTLP decoders themselves.
 *
 * The input is cut into up to 16 "messages" (each: a 2-byte little-endian
 * length, then that many bytes). Like the kafka receiver, every message is
 * decoded (protobuf, or OTLP/JSON when bit 0 of the first input byte is set)
 * into ONE shared arena, and the spans of the messages that decoded are
 * gathered into one chunk. Like the kafka exporter, that batch is then
 * grouped by trace id and encoded into messages split to a small size limit
 * (from the second input byte). Every produced message must decode again,
 * the spans must add up to the gathered count, every message must hold one
 * trace only and fit the limit unless it is a single oversize span;
 * anything else aborts.
 *
 *   cmake -S . -B build-fuzz -DHALO_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   build-fuzz/fuzz_kafka_payload -max_total_time=30
 */
#include "core/arena.h"
#include "core/batch.h"
#include "exporters/kafka/kafka_encode.h"
#include "receivers/otlp/otlp_codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 16

typedef struct check {
    int encoding;
    size_t limit;
    size_t spans;
} check;

static halo_status check_msg(void *ud, const kx_msg *m)
{
    check *c = ud;
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err;
    if (!a)
        abort();
    halo_status st = c->encoding == KX_OTLP_JSON
                         ? halo_otlp_decode_json(m->data, m->len, a, &r, &err)
                         : halo_otlp_decode_pb((const uint8_t *)m->data, m->len,
                                               a, &r, &err);
    if (st != HALO_OK || r.rejected != 0 || r.n != m->n_spans) {
        fprintf(stderr, "a produced message does not decode back: %s\n",
                err.msg);
        abort();
    }
    if (m->len > c->limit && !(m->oversize && m->n_spans == 1)) {
        fprintf(stderr, "message of %zu bytes over the %zu limit\n", m->len,
                c->limit);
        abort();
    }
    for (size_t i = 1; i < r.n; i++)
        if (memcmp(r.spans[i].trace_id, r.spans[0].trace_id, 16) != 0)
            abort(); /* one trace per message */
    char hex[33];
    halo_hex_encode(r.spans[0].trace_id, 16, hex);
    if (!m->key || m->key_len != 32 || memcmp(m->key, hex, 32) != 0)
        abort(); /* keyed by that trace */
    c->spans += r.n;
    halo_arena_free(a);
    return HALO_OK;
}

/* The gathered spans as one chunk of the shared arena, as the receiver
 * builds it; NULL when nothing decoded. */
static halo_batch *gather(const uint8_t *data, size_t size, int encoding)
{
    halo_arena *arena = halo_arena_new(0);
    halo_otlp_result parts[MAX_MSGS];
    size_t n_parts = 0, total = 0;
    if (!arena)
        return NULL;
    while (size >= 2 && n_parts < MAX_MSGS) {
        size_t len = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        halo_err err;
        halo_status st =
            encoding == KX_OTLP_JSON
                ? halo_otlp_decode_json((const char *)data, len, arena,
                                        &parts[n_parts], &err)
                : halo_otlp_decode_pb(data, len, arena, &parts[n_parts], &err);
        if (st == HALO_OK && parts[n_parts].n > 0)
            total += parts[n_parts++].n;
        data += len;
        size -= len;
    }
    halo_batch *b = total ? halo_batch_new() : NULL;
    halo_span *all = b ? halo_arena_alloc(arena, total * sizeof *all) : NULL;
    if (!all) {
        if (b)
            halo_batch_done(b, HALO_OK, "");
        halo_arena_free(arena);
        return NULL;
    }
    size_t at = 0;
    for (size_t i = 0; i < n_parts; i++) {
        memcpy(all + at, parts[i].spans, parts[i].n * sizeof *all);
        at += parts[i].n;
    }
    if (halo_batch_add_chunk(b, arena, all, at) != HALO_OK)
        abort();
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    check c = {data[0] & 1 ? KX_OTLP_JSON : KX_OTLP_PROTO,
               256 + (size_t)data[1] * 64, 0};
    halo_batch *b = gather(data + 2, size - 2, c.encoding);
    if (!b)
        return 0;
    kx_groups g;
    if (kx_group(b, true, &g) != HALO_OK)
        abort();
    kx_encoder enc = {.encoding = c.encoding, .max_bytes = c.limit};
    for (size_t i = 0; i < g.n_groups; i++) {
        const halo_span *const *spans = g.refs + g.starts[i];
        size_t n = g.starts[i + 1] - g.starts[i];
        char key[33];
        halo_hex_encode(spans[0]->trace_id, 16, key);
        halo_err err;
        if (kx_encode_group(&enc, spans, n, key, 32, check_msg, &c, &err) !=
            HALO_OK) {
            fprintf(stderr, "encoding failed: %s\n", err.msg);
            abort();
        }
    }
    if (c.spans != b->n_spans) {
        fprintf(stderr, "%zu spans gathered, %zu in the messages\n", b->n_spans,
                c.spans);
        abort();
    }
    kx_encoder_free(&enc);
    kx_groups_free(&g);
    halo_batch_done(b, HALO_OK, "");
    return 0;
}
