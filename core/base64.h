/*
 * base64.h -- standard base64 (RFC 4648), the one implementation of the
 * tree.
 *
 * The stores write BYTES attribute values as base64 strings
 * (json_attrs.h), OTLP/JSON carries bytes values and ids in it, and the
 * agent_identity processor and the debug exporter show bytes through the
 * same JSON encoders.
 */
#ifndef HALO_BASE64_H
#define HALO_BASE64_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Standard base64 (RFC 4648, padded), without quotes, appended to out. */
void halo_base64_encode(halo_buf *out, const void *data, size_t n);
/* Decodes standard or URL-safe base64, padding optional, into out (which
 * holds at least n * 3 / 4 + 3 bytes). False on an invalid character or
 * length. */
bool halo_base64_decode(const char *s, size_t n, uint8_t *out, size_t *out_len);

#endif
