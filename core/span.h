/*
 * span.h -- the span model that flows through pipelines.
 *
 * A decoded OTLP request becomes an array of halo_span whose memory (strings,
 * attribute arrays, events, resources) lives in one arena. Strings are
 * NUL-terminated; attribute string/bytes values also carry their length.
 * Resources and scopes are shared by the spans that came under them.
 *
 * The fields under `d` are derived by the agent_identity processor
 * (DESIGN §5); decoders leave them zero. Derived strings point either into
 * the span's own attribute values or into the chunk's arena.
 */
#ifndef HALO_SPAN_H
#define HALO_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum halo_val_type {
    HALO_VAL_EMPTY = 0,
    HALO_VAL_STRING,
    HALO_VAL_BOOL,
    HALO_VAL_INT,
    HALO_VAL_DOUBLE,
    HALO_VAL_BYTES,
    HALO_VAL_ARRAY,
    HALO_VAL_KVLIST,
} halo_val_type;

typedef struct halo_kv halo_kv;
typedef struct halo_value halo_value;

struct halo_value {
    halo_val_type type;
    union {
        struct {
            const char *ptr; /* NUL-terminated for STRING; raw for BYTES */
            size_t len;
        } s;
        bool b;
        int64_t i;
        double d;
        struct {
            halo_value *items;
            size_t n;
        } arr;
        struct {
            halo_kv *items;
            size_t n;
        } kv;
    } u;
};

struct halo_kv {
    const char *key; /* NUL-terminated */
    halo_value value;
};

typedef struct halo_attrs {
    halo_kv *items;
    size_t n;
} halo_attrs;

typedef struct halo_resource {
    halo_attrs attrs;
    uint32_t dropped_attrs;
    const char *schema_url; /* "" when absent */
} halo_resource;

typedef struct halo_scope {
    const char *name;    /* "" when absent */
    const char *version; /* "" when absent */
    halo_attrs attrs;
    uint32_t dropped_attrs;
    const char *schema_url; /* "" when absent */
} halo_scope;

typedef struct halo_event {
    uint64_t time_ns;
    const char *name;
    halo_attrs attrs;
    uint32_t dropped_attrs;
} halo_event;

typedef struct halo_link {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    const char *trace_state;
    halo_attrs attrs;
    uint32_t dropped_attrs;
    uint32_t flags;
} halo_link;

/* OTLP Status.code */
enum { HALO_STATUS_UNSET = 0, HALO_STATUS_OK = 1, HALO_STATUS_ERROR = 2 };

/* Bits of halo_derived.fallback_mask: the field came from the resource
 * fallback because neither the span nor its trace's root span (as far as the
 * batch showed) had it. The store re-derives such fields when the root span
 * arrives later. */
enum {
    HALO_FB_AGENT_ID = 1u << 0,
    HALO_FB_AGENT_NAME = 1u << 1,
    HALO_FB_SESSION_ID = 1u << 2,
    HALO_FB_USER_ID = 1u << 3,
};

typedef struct halo_derived {
    const char *agent_id; /* NULL when unknown */
    const char *agent_name;
    const char *session_id;
    const char *user_id;
    const char *service_name; /* resource service.name */
    const char *span_type;    /* "LLM", "TOOL", "AGENT", ..., "UNKNOWN" */
    const char *model;
    const char *tool_name;
    const char *input;
    const char *output;
    int64_t input_tokens; /* valid when has_input_tokens */
    int64_t output_tokens;
    double cost; /* valid when has_cost */
    bool has_input_tokens;
    bool has_output_tokens;
    bool has_cost;
    uint32_t fallback_mask; /* HALO_FB_* */
} halo_derived;

typedef struct halo_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_span_id[8]; /* all zero: a root span */
    const char *trace_state;   /* "" when absent */
    uint32_t flags;
    const char *name;
    int kind; /* OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client,
                 4 producer, 5 consumer */
    uint64_t start_ns;
    uint64_t end_ns;
    int status_code;            /* HALO_STATUS_* */
    const char *status_message; /* "" when absent */
    halo_attrs attrs;
    halo_event *events;
    size_t n_events;
    halo_link *links;
    size_t n_links;
    uint32_t dropped_attrs;
    uint32_t dropped_events;
    uint32_t dropped_links;
    const halo_resource *resource; /* never NULL after decoding */
    const halo_scope *scope;       /* never NULL after decoding */
    halo_derived d;
} halo_span;

/* "OK", "ERROR", or "UNSET" for any other code (HALO_STATUS_*). */
const char *halo_status_code_name(int code);

/* True when the span has no parent. */
bool halo_span_is_root(const halo_span *s);

/* Attribute lookup by key (linear scan); NULL when absent. */
const halo_value *halo_attrs_get(const halo_attrs *a, const char *key);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void halo_hex_encode(const uint8_t *bytes, size_t n, char *out);
/* Parse exactly 2n hex digits (either case) into bytes; false on error. */
bool halo_hex_decode(const char *hex, size_t hexlen, uint8_t *bytes, size_t n);
/* True when all n bytes are zero. */
bool halo_bytes_zero(const uint8_t *b, size_t n);

#endif
