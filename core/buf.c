/*
 * buf.c -- growable byte buffer (buf.h).
 *
 * Growth doubles; an allocation failure latches `oom` so callers check once.
 * The JSON helpers validate UTF-8 as they copy: JSON output must be valid
 * whatever bytes a client sent us.
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

void halo_buf_append(halo_buf *b, const void *p, size_t n)
{
    if (!halo_buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void halo_buf_puts(halo_buf *b, const char *s)
{
    halo_buf_append(b, s, strlen(s));
}

void halo_buf_putc(halo_buf *b, char c)
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

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void halo_buf_json_str(halo_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    if (!halo_buf_reserve(b, n + 2))
        return;
    halo_buf_putc(b, '"');
    size_t run = 0; /* start of a run of bytes copied as they are */
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_seq(p + i, n - i);
            if (l) {
                i += l;
                continue;
            }
        }
        halo_buf_append(b, p + run, i - run);
        switch (c) {
        case '"':
            halo_buf_puts(b, "\\\"");
            break;
        case '\\':
            halo_buf_puts(b, "\\\\");
            break;
        case '\n':
            halo_buf_puts(b, "\\n");
            break;
        case '\r':
            halo_buf_puts(b, "\\r");
            break;
        case '\t':
            halo_buf_puts(b, "\\t");
            break;
        default:
            if (c < 0x20) {
                char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15],
                               0};
                halo_buf_puts(b, esc);
            } else {
                halo_buf_puts(b, "\xEF\xBF\xBD"); /* U+FFFD */
            }
        }
        i++;
        run = i;
    }
    halo_buf_append(b, p + run, n - run);
    halo_buf_putc(b, '"');
}

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
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.17g", d);
    /* shortest representation that reads back exactly */
    for (int prec = 1; prec < 17; prec++) {
        char t2[40];
        snprintf(t2, sizeof t2, "%.*g", prec, d);
        if (strtod(t2, NULL) == d) {
            n = snprintf(tmp, sizeof tmp, "%s", t2);
            break;
        }
    }
    halo_buf_append(b, tmp, (size_t)n);
    if (!strpbrk(tmp, ".eEn"))
        halo_buf_puts(b, ".0");
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
