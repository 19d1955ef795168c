/*
 * text.h -- the text judgements the detectors share (README.md, Shared
 * notions): does an output carry an error, is it empty, does a message say
 * the arguments were rejected / the tool does not exist / the context ran
 * out; message and argument normalization; word-set similarity.
 *
 * Every function takes possibly-NULL, possibly-invalid-UTF-8 text that was
 * cut at some byte count, and never reads past its NUL.
 */
#ifndef HALO_ANALYZER_TEXT_H
#define HALO_ANALYZER_TEXT_H

#include "../core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "", "null", "[]", "{}" (whitespace around ignored). NULL (no output
 * recorded) is not empty. */
bool halo_text_is_empty_output(const char *s);
/* The output carries an error (README.md). NULL: false. */
bool halo_text_carries_error(const char *s);
/* Case-insensitive: the message says the tool's arguments were rejected. */
bool halo_text_says_invalid_input(const char *s);
/* ... the requested tool does not exist. */
bool halo_text_says_unknown_tool(const char *s);
/* ... a context or token limit was hit, or output was truncated. */
bool halo_text_says_context_limit(const char *s);

/* The first quoted ('x', "x", `x`) or "tool: x" name in s, into out (cap
 * bytes); false when none. */
bool halo_text_quoted_name(const char *s, char *out, size_t cap);

/* Normalized message into b (README.md): numbers, hex ids, UUIDs and quoted
 * strings replaced, whitespace collapsed, at most 160 bytes. */
void halo_text_normalize_message(const char *s, halo_buf *b);

/* Normalized arguments into b: canonical JSON when s parses as JSON, else
 * trimmed text with whitespace runs collapsed. NULL: "". */
void halo_text_normalize_args(const char *s, halo_buf *b);

/* Word-set Jaccard similarity of a and b (words: runs of letters and
 * digits, lower-cased), 1.0 when both have no words. */
double halo_text_similarity(const char *a, const char *b);

/* s fit for one line of Markdown, into out (cap bytes, NUL-terminated):
 * control characters become spaces (runs collapsed), backticks spaces and
 * double quotes single ones, so a name cannot close a code span, start a
 * heading or embed a link target; cut with "..." at a character boundary.
 * The byte 0x1f is kept (callers use it as a field separator). */
void halo_text_one_line(const char *s, char *out, size_t cap);

/* A malloc'd printf; NULL on out-of-memory. */
char *halo_text_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* 64-bit FNV-1a of n bytes. */
uint64_t halo_text_hash(const void *p, size_t n);

#endif
