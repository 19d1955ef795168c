/*
 * buf.h -- a growable byte buffer (sds-like, but a plain struct).
 *
 * Appends never fail loudly: on allocation failure the buffer sets `oom`
 * and ignores further appends, so a long sequence of appends is checked once
 * at the end. data is always NUL-terminated when len > 0 and !oom.
 */
#ifndef HALO_BUF_H
#define HALO_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct halo_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
} halo_buf;

#define HALO_BUF_INIT                                                          \
    {                                                                          \
        NULL, 0, 0, false                                                      \
    }

/* The growing paths of halo_buf_append / halo_buf_putc, out of line. */
void halo_buf_append_slow(halo_buf *b, const void *p, size_t n);
void halo_buf_putc_slow(halo_buf *b, char c);

/* Inline when the bytes fit: the JSON encoders on the write path of every
 * span append a few bytes at a time. */
static inline void halo_buf_append(halo_buf *b, const void *p, size_t n)
{
    if (!b->oom && b->cap - b->len > n) {
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    halo_buf_append_slow(b, p, n);
}

static inline void halo_buf_putc(halo_buf *b, char c)
{
    if (!b->oom && b->cap - b->len > 1) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return;
    }
    halo_buf_putc_slow(b, c);
}

static inline void halo_buf_puts(halo_buf *b, const char *s)
{
    halo_buf_append(b, s, strlen(s));
}

void halo_buf_printf(halo_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A JSON string literal, quotes included, escaping per RFC 8259. Invalid
 * UTF-8 bytes are replaced by U+FFFD so the output is always valid JSON. */
void halo_buf_json_str(halo_buf *b, const char *s, size_t n);
/* A JSON number for an integer. */
void halo_buf_json_int(halo_buf *b, int64_t v);
/* A JSON number for a double that reads back exactly, always with a '.' or
 * an exponent so the type is visible ("2500.0", "0.1", "1e+300"; exponents
 * only where %.15g-%.17g would use them); NaN and infinities become the
 * strings "NaN", "Infinity", "-Infinity". */
void halo_buf_json_double(halo_buf *b, double d);
/* Ensure room for n more bytes; false (and oom) on failure. */
bool halo_buf_reserve(halo_buf *b, size_t n);
void halo_buf_reset(halo_buf *b); /* len = 0, keeps memory */
void halo_buf_free(halo_buf *b);
/* Hand the data to the caller (malloc'd, NUL-terminated; NULL when oom) and
 * reset the buffer. */
char *halo_buf_steal(halo_buf *b);

/* The length of the longest prefix of s[0..len) of at most max bytes that
 * does not end inside a UTF-8 character: len when len <= max, else max
 * backed up while s[cut] is a continuation byte (so a lead byte never loses
 * its continuation bytes). On invalid UTF-8 (a run of continuation bytes)
 * it backs up as far as the run goes, to 0 at worst. */
size_t halo_utf8_prefix(const char *s, size_t len, size_t max);

/* Whether s[0..len) is valid UTF-8 (what halo_buf_json_str keeps as it is:
 * no overlong forms, surrogates or code points past U+10FFFF). */
bool halo_utf8_valid(const char *s, size_t len);

/* FNV-1a of p[0..n): the hash of halo's in-memory tables keyed by text or
 * ids. */
uint64_t halo_hash_bytes(const void *p, size_t n);

#endif
