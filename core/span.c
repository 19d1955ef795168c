/* span.c -- small helpers over the span model (span.h). */
#include "span.h"

#include <string.h>

bool halo_span_is_root(const halo_span *s)
{
    return halo_bytes_zero(s->parent_span_id, sizeof s->parent_span_id);
}

const halo_value *halo_attrs_get(const halo_attrs *a, const char *key)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i].key, key) == 0)
            return &a->items[i].value;
    return NULL;
}

void halo_hex_encode(const uint8_t *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool halo_hex_decode(const char *hex, size_t hexlen, uint8_t *bytes, size_t n)
{
    if (hexlen != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool halo_bytes_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

const char *halo_status_code_name(int code)
{
    switch (code) {
    case HALO_STATUS_OK:
        return "OK";
    case HALO_STATUS_ERROR:
        return "ERROR";
    default:
        return "UNSET";
    }
}
