/*
 * json_attrs.h -- span attributes, events, links, resources and scopes as
 * JSON text, and back.
 *
 * The stores keep these parts of a span as JSON columns (DESIGN §6) so
 * users' SQL can reach into them (json_extract(attributes, '$."tool.name"'))
 * and `halo export` can rebuild the OTLP span. The encoding is meant for
 * people first:
 *
 *   attributes  a flat object {"key": value, ...} in attribute order
 *   value       STRING -> "text", BOOL -> true/false, INT -> 42,
 *               DOUBLE -> 42.0 / 1e+300 (always a '.' or an exponent, so a
 *               double never reads back as an int), ARRAY -> [...],
 *               KVLIST -> {...}, BYTES -> "base64", EMPTY -> null
 *   events      [{"name", "time_unix_nano" (integer), "attributes": {...},
 *                 "dropped_attributes_count"}]
 *   links       [{"trace_id" (32 hex), "span_id" (16 hex), "trace_state",
 *                 "flags", "attributes": {...}, "dropped_attributes_count"}]
 *   scope       {"name", "version", "attributes": {...},
 *                "dropped_attributes_count", "schema_url"}, members other
 *               than name left out when empty or zero
 *
 * Values nested deeper than HALO_JSON_MAX_DEPTH are written as null.
 * Plain JSON cannot tell two types apart: BYTES are written as the string
 * of their base64 text, NaN/Infinity doubles as the strings "NaN",
 * "Infinity", "-Infinity". The value_types sidecar (json_types.c) lists
 * where such values are, and applying it to the decoded span gives them
 * their types back. Duplicate keys inside one attribute list keep only the
 * last value.
 *
 * Encoders append to a halo_buf (check buf->oom once at the end). Decoders
 * parse with jansson, never trust the text (a column may have been edited
 * by hand), and allocate everything they return in the caller's arena; a
 * wrong shape is HALO_EINVAL naming the field.
 */
#ifndef HALO_JSON_ATTRS_H
#define HALO_JSON_ATTRS_H

#include "arena.h"
#include "base64.h"
#include "buf.h"
#include "span.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- encoding (append to out) ------------------------------------------ */

/* Values nested deeper than this (arrays and kvlists; an attribute list's
 * values are at depth 1, a lone value at 0) are written as null, so the
 * encoders' recursion is bounded whatever built the value. */
#define HALO_JSON_MAX_DEPTH 64

/* Doubles and strings as buf.h's halo_buf_json_double / halo_buf_json_str
 * write them, BYTES as base64 strings (base64.h). */
void halo_json_encode_value(halo_buf *out, const halo_value *v);
void halo_json_encode_attrs(halo_buf *out, const halo_attrs *a);
void halo_json_encode_events(halo_buf *out, const halo_event *ev, size_t n);
void halo_json_encode_links(halo_buf *out, const halo_link *l, size_t n);
void halo_json_encode_scope(halo_buf *out, const halo_scope *s);

/* ---- attributes with values stored elsewhere ---------------------------- */

/* A text the caller stores in a column of its own (a span's input or
 * output, which OpenInference's input.value / output.value repeat). */
typedef struct halo_json_cut {
    const char *s; /* NULL: nothing to cut */
    size_t len;
    /* out: 1-based position, in characters, of the `null` written in place
     * of the attribute that held the text; 0 when none was cut */
    int64_t at;
} halo_json_cut;

/* Texts shorter than this are not worth a placeholder. */
#define HALO_JSON_CUT_MIN 16

/* halo_json_encode_attrs, except that the first top-level STRING attribute
 * whose value is exactly cut[i]'s text (and valid UTF-8, HALO_JSON_CUT_MIN
 * bytes or more) is written as null, and cut[i].at says where. Splicing
 * the JSON string of cut[i]'s text back over those four characters
 * gives an object that decodes to the same attributes as
 * halo_json_encode_attrs's (the stores' `spans` views do it in SQL). One
 * attribute is cut for one text at most. */
void halo_json_encode_attrs_cut(halo_buf *out, const halo_attrs *a,
                                halo_json_cut *cut, size_t n_cut);

/* ---- decoding (into arena) --------------------------------------------- */

/* text[0..len) is the column's content; NULL or "" decode to the empty
 * value (no attributes, no events...). what names the column in messages. */
halo_status halo_json_decode_attrs(const char *text, size_t len,
                                   halo_arena *arena, halo_attrs *out,
                                   const char *what, halo_err *err);
halo_status halo_json_decode_events(const char *text, size_t len,
                                    halo_arena *arena, halo_event **out,
                                    size_t *n, halo_err *err);
halo_status halo_json_decode_links(const char *text, size_t len,
                                   halo_arena *arena, halo_link **out,
                                   size_t *n, halo_err *err);
/* Fills every field of *out ("" for absent strings). */
halo_status halo_json_decode_scope(const char *text, size_t len,
                                   halo_arena *arena, halo_scope *out,
                                   halo_err *err);

/* ---- the value_types sidecar (json_types.c) ----------------------------- */

/* Append the marks of sp's values that plain JSON reads back as another
 * type (BYTES, non-finite DOUBLE) in its attributes, resource, scope,
 * events and links. Appends nothing and returns false when there are
 * none (store NULL then). */
bool halo_json_encode_value_types(halo_buf *out, const halo_span *sp);

/* Give the marked values of a decoded span their types back: text[0..len)
 * is the sidecar (NULL or "": nothing to do); sp's attributes, events and
 * links and the given resource and scope attribute lists (which the caller
 * may share between spans: applying is idempotent) are changed in place,
 * bytes allocated in arena. HALO_EINVAL names a mark that does not fit the
 * span. */
halo_status halo_json_apply_value_types(const char *text, size_t len,
                                        halo_arena *arena, halo_span *sp,
                                        halo_attrs *resource_attrs,
                                        halo_attrs *scope_attrs, halo_err *err);

#endif
