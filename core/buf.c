/*
 * buf.c -- growable byte buffer (buf.h).
 *
 * Growth doubles; an allocation failure latches `oom` so callers check once.
 * The JSON helpers are the only JSON scalar encoders of the tree (the
 * attribute encoders of json_attrs.c, the OTLP/JSON encoder and the CLI all
 * go through them), and they are on the write path of every span: strings
 * are copied in plain runs found 8 bytes at a time, validating UTF-8 as they
 * go (JSON output must be valid whatever bytes a client sent us), and
 * integers are formatted without printf. halo_utf8_prefix is the one
 * "cut at most max bytes on a character boundary" of the tree (the OTLP
 * limits keep their own, which backs up at most 3 bytes on invalid UTF-8).
 */
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool halo_buf_reserve(halo_buf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->cap - b->len > n)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void halo_buf_append_slow(halo_buf *b, const void *p, size_t n)
{
    if (!halo_buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void halo_buf_putc_slow(halo_buf *b, char c)
{
    if (!halo_buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void halo_buf_printf(halo_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !halo_buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Bytes that may appear as they are inside a JSON string. */
static const uint8_t plain[256] = {
#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
    R16(0), R16(0), /* control characters */
    1,      1,      0 /* " */, 1,      1,      1,      1,         1,
    1,      1,      1,         1,      1,      1,      1,         1,
    R16(1), R16(1), 1,         1,      1,      1,      1,         1,
    1,      1,      1,         1,      1,      1,      0 /* \ */, 1,
    1,      1,      R16(1),    R16(1), R16(0), R16(0), R16(0),    R16(0),
    R16(0), R16(0), R16(0),    R16(0), /* >= 0x80 */
#undef R16
};

/* Length of the valid UTF-8 sequence at p (n bytes left); 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
#define HAS_ZERO(x) (((x)-ONES) & ~(x)&HIGHS)

/* Length of the run of plain bytes at p (8 bytes at a time). */
static size_t plain_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        uint64_t special = (v & HIGHS) | HAS_ZERO(v & ~0x1F1F1F1F1F1F1F1Full) |
                           HAS_ZERO(v ^ (ONES * '"')) |
                           HAS_ZERO(v ^ (ONES * '\\'));
        if (special)
            break;
    }
    while (i < n && plain[p[i]])
        i++;
    return i;
}

/* One byte that cannot stay as it is: its escape, or U+FFFD for a byte
 * that is not part of valid UTF-8 (the output is always valid JSON). */
static void put_escape(halo_buf *b, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
        halo_buf_append(b, "\\\"", 2);
        break;
    case '\\':
        halo_buf_append(b, "\\\\", 2);
        break;
    case '\n':
        halo_buf_append(b, "\\n", 2);
        break;
    case '\r':
        halo_buf_append(b, "\\r", 2);
        break;
    case '\t':
        halo_buf_append(b, "\\t", 2);
        break;
    default:
        if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            halo_buf_append(b, esc, 6);
        } else {
            halo_buf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD */
        }
    }
}

/* Plain runs (and valid UTF-8 between them) are copied in one piece: this
 * runs over every attribute key and value of every stored span. */
void halo_buf_json_str(halo_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!halo_buf_reserve(b, n + 2))
        return;
    halo_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        i += plain_run(p + i, n - i);
        /* valid UTF-8 stays as it is */
        while (i < n && p[i] >= 0x80) {
            size_t l = utf8_len(p + i, n - i);
            if (!l)
                break;
            i += l;
            i += plain_run(p + i, n - i);
        }
        halo_buf_append(b, p + start, i - start);
        if (i < n)
            put_escape(b, p[i++]);
    }
    halo_buf_putc(b, '"');
}

/* Decimal digits without printf: this runs for every int attribute of
 * every stored span. */
void halo_buf_json_int(halo_buf *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    halo_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* Integral values below 1e15 take the integer path ("2500.0"); others the
 * first of %.15g, %.16g, %.17g that reads back exactly. */
void halo_buf_json_double(halo_buf *b, double d)
{
    if (isnan(d)) {
        halo_buf_puts(b, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        halo_buf_puts(b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    if (fabs(d) < 1e15 && d == (double)(int64_t)d && !signbit(d)) {
        halo_buf_json_int(b, (int64_t)d);
        halo_buf_append(b, ".0", 2);
        return;
    }
    char tmp[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    halo_buf_append(b, tmp, (size_t)n);
    if (!strpbrk(tmp, ".eE"))
        halo_buf_append(b, ".0", 2);
}

void halo_buf_reset(halo_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void halo_buf_free(halo_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

char *halo_buf_steal(halo_buf *b)
{
    char *p = b->oom ? NULL : b->data;
    if (b->oom)
        free(b->data);
    else if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
    return p;
}

bool halo_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        uint64_t v;
        if (i + 8 <= n && (memcpy(&v, p + i, 8), !(v & HIGHS))) {
            i += 8;
        } else if (p[i] < 0x80) {
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (!l)
                return false;
            i += l;
        }
    }
    return true;
}

size_t halo_utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

uint64_t halo_hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
