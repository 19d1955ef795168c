/*
 * lg_pool.c -- the requests halo-loadgen sends.
 *
 * At start we build a pool of distinct ExportTraceServiceRequests (256 by
 * default), each holding spans_per_request spans of realistic AI-agent runs:
 * every trace is an AGENT root, a CHAIN under it, then alternating LLM calls
 * (model, token counts, prompt and completion text) and TOOL calls (tool
 * name, JSON arguments and results of a few hundred bytes). The pool mixes
 * the semantic conventions halo normalizes: OpenInference keys,
 * OpenTelemetry GenAI `gen_ai.*` keys, and both at once. About one tool call
 * in 25 fails (status ERROR plus an `exception` event).
 *
 * Encoding uses a small protobuf writer of our own (no shared code with the
 * daemon under test). After encoding, a wire-format walker finds the byte
 * offsets of every trace id, span id, parent span id and timestamp in the
 * request, and checks them against what was generated -- so a bug in the
 * writer fails at start instead of producing garbage load.
 *
 * Before each send, lg_pool_stamp() copies one pooled request and rewrites
 * those bytes in place: ids are derived from a per-request sequence number
 * (and a random per-process nonce in the trace id), timestamps are shifted
 * to "now". The store deduplicates on (trace_id, span_id), so every span
 * sent must be new; this costs one memcpy plus ~40 bytes of patching per
 * span, instead of re-encoding.
 *
 *   x        = seq (48 bits) << 16 | trace index (16 bits)
 *   trace_id = nonce[8] XOR mix(~x) | mix(x)     (both 64-bit big endian)
 *   span_id  =            seq (48-bit big endian) | span index + 1 (16-bit)
 *
 * mix is a bijection on 64 bits (the splitmix64 finalizer), so trace ids
 * stay unique while looking random, as OpenTelemetry SDKs make them: a
 * store then inserts them all over its trace-id indexes, not in order at
 * their end. --ids sequential gives trace_id = nonce | x instead (the
 * cheap case for a B-tree; the figures before 2026-11-23 used it).
 */
#include "lg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- a minimal protobuf writer ------------------------------------------ */

typedef struct pb {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} pb;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static void pb_reserve(pb *b, size_t more)
{
    if (b->oom || b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void pb_raw(pb *b, const void *data, size_t n)
{
    pb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void pb_varint(pb *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    pb_raw(b, tmp, n);
}

static void pb_tag(pb *b, int field, int wt)
{
    pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wt);
}

static void pb_bytes(pb *b, int field, const void *data, size_t n)
{
    pb_tag(b, field, WT_LEN);
    pb_varint(b, n);
    pb_raw(b, data, n);
}

static void pb_str(pb *b, int field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static void pb_fixed64(pb *b, int field, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    pb_tag(b, field, WT_I64);
    pb_raw(b, le, 8);
}

static void pb_uint(pb *b, int field, uint64_t v)
{
    pb_tag(b, field, WT_VARINT);
    pb_varint(b, v);
}

/* Appends `sub` as embedded message `field`. */
static void pb_msg(pb *b, int field, const pb *sub)
{
    if (sub->oom)
        b->oom = true;
    pb_bytes(b, field, sub->p, sub->len);
}

/* KeyValue{key, AnyValue{string_value}} as repeated field `field`. The sizes
 * of these small nested messages are computed directly, without a temporary
 * buffer. */
static void pb_kv_str(pb *b, int field, const char *key, const char *val)
{
    size_t kl = strlen(key), vl = strlen(val);
    size_t any = 1 + varint_len(vl) + vl;
    pb_tag(b, field, WT_LEN);
    pb_varint(b, 1 + varint_len(kl) + kl + 1 + varint_len(any) + any);
    pb_str(b, 1, key);
    pb_tag(b, 2, WT_LEN);
    pb_varint(b, any);
    pb_str(b, 1, val);
}

static void pb_kv_int(pb *b, int field, const char *key, int64_t val)
{
    size_t kl = strlen(key);
    size_t any = 1 + varint_len((uint64_t)val);
    pb_tag(b, field, WT_LEN);
    pb_varint(b, 1 + varint_len(kl) + kl + 1 + varint_len(any) + any);
    pb_str(b, 1, key);
    pb_tag(b, 2, WT_LEN);
    pb_varint(b, any);
    pb_uint(b, 3, (uint64_t)val);
}

static void pb_kv_double(pb *b, int field, const char *key, double val)
{
    size_t kl = strlen(key);
    uint64_t bits;
    memcpy(&bits, &val, 8);
    pb_tag(b, field, WT_LEN);
    pb_varint(b, 1 + varint_len(kl) + kl + 1 + 1 + 9);
    pb_str(b, 1, key);
    pb_tag(b, 2, WT_LEN);
    pb_varint(b, 9);
    pb_fixed64(b, 4, bits);
}

/* KeyValue{key, AnyValue{array_value{values: [string]}}}. */
static void pb_kv_str_array1(pb *b, int field, const char *key, const char *val)
{
    size_t kl = strlen(key), vl = strlen(val);
    size_t elem = 1 + varint_len(vl) + vl;    /* AnyValue */
    size_t arr = 1 + varint_len(elem) + elem; /* ArrayValue */
    size_t any = 1 + varint_len(arr) + arr;   /* AnyValue */
    pb_tag(b, field, WT_LEN);
    pb_varint(b, 1 + varint_len(kl) + kl + 1 + varint_len(any) + any);
    pb_str(b, 1, key);
    pb_tag(b, 2, WT_LEN);
    pb_varint(b, any);
    pb_tag(b, 5, WT_LEN);
    pb_varint(b, arr);
    pb_tag(b, 1, WT_LEN);
    pb_varint(b, elem);
    pb_str(b, 1, val);
}

/* ---- a minimal protobuf reader ------------------------------------------ */

typedef struct rd {
    const uint8_t *p, *end, *base;
} rd;

static bool rd_varint(rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return false;
        uint8_t c = *r->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Reads one field header and, for WT_LEN, the payload bounds. */
typedef struct rd_field {
    int num, wt;
    uint64_t u;          /* varint value */
    const uint8_t *data; /* WT_LEN / WT_I64 / WT_I32 payload */
    size_t len;
} rd_field;

static bool rd_next(rd *r, rd_field *f)
{
    uint64_t key;
    if (!rd_varint(r, &key) || key >> 3 == 0 || key >> 3 > 0x1fffffff)
        return false;
    f->num = (int)(key >> 3);
    f->wt = (int)(key & 7);
    f->data = NULL;
    f->len = 0;
    f->u = 0;
    switch (f->wt) {
    case WT_VARINT:
        return rd_varint(r, &f->u);
    case WT_I64:
    case WT_I32:
        f->len = f->wt == WT_I64 ? 8 : 4;
        break;
    case WT_LEN:
        if (!rd_varint(r, &f->u))
            return false;
        f->len = (size_t)f->u;
        break;
    default:
        return false;
    }
    if ((size_t)(r->end - r->p) < f->len)
        return false;
    f->data = r->p;
    r->p += f->len;
    return true;
}

static rd rd_sub(const rd *parent, const rd_field *f)
{
    rd r = {f->data, f->data + f->len, parent->base};
    return r;
}

/* ---- the pool ----------------------------------------------------------- */

typedef struct lg_span_ref {
    uint32_t trace_off, span_off, parent_off; /* parent_off 0: root */
    uint16_t trace_idx;                       /* trace within request */
    int32_t parent_idx;                       /* -1: root */
} lg_span_ref;

typedef struct lg_req {
    uint8_t *buf;
    size_t len;
    uint32_t *time_offs; /* every fixed64 timestamp */
    size_t n_times;
} lg_req;

struct lg_pool {
    lg_req *reqs;
    int n_reqs;
    int spans;
    lg_span_ref *refs; /* n_reqs * spans */
    uint8_t nonce[8];
    bool sequential_ids;
    uint64_t gen_ns; /* wall clock at generation */
    size_t max_len;
};

/* Generation state: a deterministic PRNG and the text it picks. */
typedef struct gen {
    uint64_t rng;
    int text_pct; /* scales every free-text length (--text-size) */
    int conv;     /* 0 OpenInference, 1 GenAI, 2 both */
    char agent[64], session[64], user[64], model[64];
} gen;

static uint64_t rnd(gen *g)
{
    /* xorshift64* */
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 0x2545F4914F6CDD1DULL;
}

static int rnd_in(gen *g, int lo, int hi)
{
    return lo + (int)(rnd(g) % (uint64_t)(hi - lo + 1));
}

#define PICK(g, arr) (arr)[rnd(g) % (sizeof(arr) / sizeof((arr)[0]))]

static const char *const WORDS[] = {
    "the",       "customer", "order",   "refund",   "invoice",   "shipping",
    "account",   "search",   "results", "policy",   "returned",  "status",
    "please",    "check",    "weather", "forecast", "flight",    "booking",
    "database",  "query",    "summary", "document", "retrieved", "context",
    "answer",    "question", "because", "however",  "approved",  "pending",
    "error",     "timeout",  "user",    "request",  "latest",    "report",
    "quarterly", "revenue",  "growth",  "ticket",   "escalate",  "support",
};
static const char *const AGENTS[] = {
    "support-bot",     "research-agent", "travel-planner", "code-reviewer",
    "sales-assistant", "data-analyst",   "triage-agent",   "billing-helper",
};
static const char *const MODELS[] = {
    "gpt-4o-2024-08-06",       "gpt-4o-mini",    "claude-3-5-sonnet-20241022",
    "claude-3-haiku-20240307", "gemini-1.5-pro", "llama-3.1-70b-instruct",
};
static const char *const TOOLS[] = {
    "search_orders", "get_weather",   "lookup_customer", "run_sql",
    "fetch_url",     "create_ticket", "send_email",      "vector_search",
};
static const char *const TOOL_ERRORS[] = {
    "tool timed out after 30s",
    "connection refused by upstream",
    "invalid arguments: missing field 'id'",
    "rate limited (429)",
};

/* Appends random words to dst (cap bytes) until about `target` bytes. */
static void gen_words(gen *g, char *dst, size_t cap, size_t target)
{
    size_t n = strlen(dst);
    target = target * (size_t)g->text_pct / 100;
    while (n + 16 < cap && n < target) {
        const char *w = PICK(g, WORDS);
        n += (size_t)snprintf(dst + n, cap - n, "%s%s", n ? " " : "", w);
    }
}

static void gen_text(gen *g, char *dst, size_t cap, size_t target)
{
    dst[0] = '\0';
    gen_words(g, dst, cap, target);
}

static void gen_json_args(gen *g, char *dst, size_t cap, size_t target)
{
    char q[1024] = "";
    gen_words(g, q, sizeof(q), target > 60 ? target - 60 : 16);
    snprintf(dst, cap,
             "{\"query\": \"%s\", \"limit\": %d, \"filters\": {\"region\": "
             "\"eu-west-1\", \"status\": \"open\"}}",
             q, rnd_in(g, 5, 50));
}

static void gen_json_result(gen *g, char *dst, size_t cap, size_t target)
{
    char a[1024] = "", b[1024] = "";
    gen_words(g, a, sizeof(a), target / 2);
    gen_words(g, b, sizeof(b), target / 2);
    snprintf(dst, cap,
             "{\"results\": [{\"id\": \"r-%d\", \"text\": \"%s\"}, {\"id\": "
             "\"r-%d\", \"text\": \"%s\"}], \"total\": %d}",
             rnd_in(g, 1000, 9999), a, rnd_in(g, 1000, 9999), b,
             rnd_in(g, 2, 40));
}

/* One span under construction. */
typedef struct span_in {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    bool has_parent;
    const char *name;
    int kind;
    uint64_t start_ns, end_ns;
    int status; /* 0 unset, 1 ok, 2 error */
    const char *status_msg;
} span_in;

static void put_be(uint8_t *dst, uint64_t v, int nbytes)
{
    for (int i = nbytes - 1; i >= 0; i--) {
        dst[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void make_trace_id(const lg_pool *pool, uint64_t seq, int t,
                          uint8_t out[16])
{
    uint64_t x = seq << 16 | (uint64_t)(uint16_t)t;
    if (pool->sequential_ids) {
        memcpy(out, pool->nonce, 8);
        put_be(out + 8, x, 8);
        return;
    }
    put_be(out, mix64(~x), 8);
    for (int i = 0; i < 8; i++)
        out[i] ^= pool->nonce[i];
    put_be(out + 8, mix64(x), 8);
}

static void make_span_id(uint64_t seq, int k, uint8_t out[8])
{
    put_be(out, seq, 6);
    put_be(out + 6, (uint64_t)k + 1, 2);
}

/* Span fields common to every kind; attributes are written by the caller
 * into the same buffer afterwards (field order does not matter). */
static void enc_span_head(pb *b, const span_in *s)
{
    pb_bytes(b, 1, s->trace_id, 16);
    pb_bytes(b, 2, s->span_id, 8);
    if (s->has_parent)
        pb_bytes(b, 4, s->parent_id, 8);
    pb_str(b, 5, s->name);
    pb_uint(b, 6, (uint64_t)s->kind);
    pb_fixed64(b, 7, s->start_ns);
    pb_fixed64(b, 8, s->end_ns);
}

static void enc_span_status(pb *b, pb *tmp, const span_in *s)
{
    if (!s->status)
        return;
    tmp->len = 0;
    if (s->status_msg)
        pb_str(tmp, 2, s->status_msg);
    pb_uint(tmp, 3, (uint64_t)s->status);
    pb_msg(b, 15, tmp);
}

/* exception event at time t. */
static void enc_exception_event(pb *b, pb *tmp, uint64_t t, const char *msg)
{
    tmp->len = 0;
    pb_fixed64(tmp, 1, t);
    pb_str(tmp, 2, "exception");
    pb_kv_str(tmp, 3, "exception.type", "ToolError");
    pb_kv_str(tmp, 3, "exception.message", msg);
    pb_msg(b, 11, tmp);
}

static void enc_agent_attrs(gen *g, pb *b)
{
    char in[512], out[1024];
    gen_text(g, in, sizeof(in), 150);
    gen_text(g, out, sizeof(out), 300);
    if (g->conv != 1) {
        pb_kv_str(b, 9, "openinference.span.kind", "AGENT");
        pb_kv_str(b, 9, "agent.name", g->agent);
        pb_kv_str(b, 9, "session.id", g->session);
        pb_kv_str(b, 9, "user.id", g->user);
    }
    if (g->conv != 0) {
        pb_kv_str(b, 9, "gen_ai.operation.name", "invoke_agent");
        pb_kv_str(b, 9, "gen_ai.agent.name", g->agent);
        pb_kv_str(b, 9, "gen_ai.conversation.id", g->session);
        if (g->conv == 1)
            pb_kv_str(b, 9, "enduser.id", g->user);
    }
    pb_kv_str(b, 9, "input.value", in);
    pb_kv_str(b, 9, "input.mime_type", "text/plain");
    pb_kv_str(b, 9, "output.value", out);
    pb_kv_str(b, 9, "output.mime_type", "text/plain");
    pb_kv_str(b, 9, "agent.version", "2.3.1");
    pb_kv_int(b, 9, "agent.max_iterations", 15);
}

static void enc_chain_attrs(gen *g, pb *b)
{
    char in[512], out[512];
    gen_text(g, in, sizeof(in), 120);
    gen_text(g, out, sizeof(out), 200);
    pb_kv_str(b, 9, "openinference.span.kind", "CHAIN");
    pb_kv_str(b, 9, "session.id", g->session);
    pb_kv_str(b, 9, "input.value", in);
    pb_kv_str(b, 9, "output.value", out);
    pb_kv_str(b, 9, "metadata", "{\"ls_run_depth\": 1, \"retries\": 0}");
    pb_kv_str(b, 9, "langchain.chain.type", "AgentExecutor");
}

static void enc_llm_attrs(gen *g, pb *b)
{
    char in[1024], out[1024];
    gen_text(g, in, sizeof(in), 400);
    gen_text(g, out, sizeof(out), 250);
    int prompt = rnd_in(g, 200, 4000), completion = rnd_in(g, 20, 800);
    if (g->conv != 1) {
        pb_kv_str(b, 9, "openinference.span.kind", "LLM");
        pb_kv_str(b, 9, "llm.model_name", g->model);
        pb_kv_str(b, 9, "llm.provider", "openai");
        pb_kv_int(b, 9, "llm.token_count.prompt", prompt);
        pb_kv_int(b, 9, "llm.token_count.completion", completion);
        pb_kv_int(b, 9, "llm.token_count.total", prompt + completion);
        pb_kv_str(b, 9, "llm.invocation_parameters",
                  "{\"temperature\": 0.2, \"max_tokens\": 1024}");
    }
    if (g->conv != 0) {
        pb_kv_str(b, 9, "gen_ai.operation.name", "chat");
        pb_kv_str(b, 9, "gen_ai.system", "openai");
        pb_kv_str(b, 9, "gen_ai.request.model", g->model);
        pb_kv_str(b, 9, "gen_ai.response.model", g->model);
        pb_kv_double(b, 9, "gen_ai.request.temperature", 0.2);
        pb_kv_int(b, 9, "gen_ai.usage.input_tokens", prompt);
        pb_kv_int(b, 9, "gen_ai.usage.output_tokens", completion);
        pb_kv_str_array1(b, 9, "gen_ai.response.finish_reasons", "stop");
    }
    pb_kv_str(b, 9, "input.value", in);
    pb_kv_str(b, 9, "output.value", out);
    pb_kv_str(b, 9, "input.mime_type", "text/plain");
    pb_kv_str(b, 9, "output.mime_type", "text/plain");
}

static void enc_tool_attrs(gen *g, pb *b, const char *tool)
{
    char in[1024], out[2048];
    gen_json_args(g, in, sizeof(in), (size_t)rnd_in(g, 150, 350));
    gen_json_result(g, out, sizeof(out), (size_t)rnd_in(g, 200, 500));
    if (g->conv != 1) {
        pb_kv_str(b, 9, "openinference.span.kind", "TOOL");
        pb_kv_str(b, 9, "tool.name", tool);
        pb_kv_str(b, 9, "tool.description",
                  "Looks things up in the company systems");
        pb_kv_str(b, 9, "input.value", in);
        pb_kv_str(b, 9, "output.value", out);
        pb_kv_str(b, 9, "input.mime_type", "application/json");
        pb_kv_str(b, 9, "output.mime_type", "application/json");
    }
    if (g->conv != 0) {
        char id[32];
        snprintf(id, sizeof(id), "call_%08x", (unsigned)rnd(g));
        pb_kv_str(b, 9, "gen_ai.operation.name", "execute_tool");
        pb_kv_str(b, 9, "gen_ai.tool.name", tool);
        pb_kv_str(b, 9, "gen_ai.tool.call.id", id);
        pb_kv_str(b, 9, "gen_ai.tool.type", "function");
        if (g->conv == 1) {
            pb_kv_str(b, 9, "gen_ai.tool.call.arguments", in);
            pb_kv_str(b, 9, "gen_ai.tool.call.result", out);
        }
    }
    pb_kv_str(b, 9, "session.id", g->session);
    pb_kv_int(b, 9, "tool.attempt", 1);
    pb_kv_str(b, 9, "code.function", "run_tool");
}

static void enc_resource(gen *g, pb *b)
{
    pb_kv_str(b, 1, "service.name", g->agent);
    pb_kv_str(b, 1, "service.version", "2.3.1");
    pb_kv_str(b, 1, "deployment.environment", "production");
    pb_kv_str(b, 1, "telemetry.sdk.name", "opentelemetry");
    pb_kv_str(b, 1, "telemetry.sdk.language", "python");
    pb_kv_str(b, 1, "telemetry.sdk.version", "1.27.0");
    pb_kv_str(b, 1, "host.name", "agent-worker-3");
}

/* Builds the spans of one request into `spans` (ScopeSpans.spans), and
 * fills refs[] with each span's trace and parent index. */
typedef struct gen_ctx {
    gen g;
    const lg_pool *pool;
    uint64_t now_ns;
    int spans, per_trace, text_pct;
    pb span, tmp;
} gen_ctx;

static void gen_one_span(gen_ctx *c, pb *scope, int k, int root_k,
                         lg_span_ref *ref, uint64_t *clock_ns)
{
    int pos = k - root_k; /* position within the trace */
    int t = ref->trace_idx;
    span_in s = {0};
    make_trace_id(c->pool, 0, t, s.trace_id);
    make_span_id(0, k, s.span_id);
    s.kind = 1;
    s.start_ns = *clock_ns;
    /* parents: root <- chain <- llm/tool */
    ref->parent_idx = pos == 0 ? -1 : pos == 1 ? root_k : root_k + 1;
    if (ref->parent_idx >= 0) {
        s.has_parent = true;
        make_span_id(0, ref->parent_idx, s.parent_id);
    }
    char tool[64] = "";
    uint64_t dur_ms;
    if (pos == 0) {
        s.name = c->g.conv == 1 ? "invoke_agent" : "agent.run";
        dur_ms = 30000;
    } else if (pos == 1) {
        s.name = "AgentExecutor";
        dur_ms = 29000;
    } else if (pos % 2 == 0) {
        s.name = c->g.conv == 1 ? "chat" : "ChatOpenAI";
        s.kind = 3;
        dur_ms = (uint64_t)rnd_in(&c->g, 300, 3000);
    } else {
        snprintf(tool, sizeof(tool), "%s", PICK(&c->g, TOOLS));
        s.name = tool;
        dur_ms = (uint64_t)rnd_in(&c->g, 5, 500);
        if (rnd(&c->g) % 25 == 0) {
            s.status = 2;
            s.status_msg = PICK(&c->g, TOOL_ERRORS);
        }
    }
    s.end_ns = s.start_ns + dur_ms * 1000000ULL;
    if (pos >= 2)
        *clock_ns = s.end_ns + 1000000ULL;

    pb *b = &c->span;
    b->len = 0;
    enc_span_head(b, &s);
    if (pos == 0)
        enc_agent_attrs(&c->g, b);
    else if (pos == 1)
        enc_chain_attrs(&c->g, b);
    else if (pos % 2 == 0)
        enc_llm_attrs(&c->g, b);
    else
        enc_tool_attrs(&c->g, b, tool);
    if (s.status == 2)
        enc_exception_event(b, &c->tmp, s.end_ns, s.status_msg);
    enc_span_status(b, &c->tmp, &s);
    pb_msg(scope, 2, b);
}

/* Encodes one whole request into out. */
static void gen_request(gen_ctx *c, lg_span_ref *refs, pb *out)
{
    pb scope = {0}, rs = {0}, sub = {0};
    /* scope */
    pb_str(&sub, 1, "openinference.instrumentation.langchain");
    pb_str(&sub, 2, "0.1.28");
    pb_msg(&scope, 1, &sub);
    uint64_t clock_ns = 0;
    int root_k = 0;
    for (int k = 0; k < c->spans; k++) {
        if (k % c->per_trace == 0) {
            root_k = k;
            clock_ns = c->now_ns - 60ULL * 1000000000ULL +
                       (uint64_t)rnd_in(&c->g, 0, 1000) * 1000000ULL;
            snprintf(c->g.session, sizeof(c->g.session), "sess-%08x",
                     (unsigned)rnd(&c->g));
            snprintf(c->g.user, sizeof(c->g.user), "user-%04d",
                     rnd_in(&c->g, 1, 5000));
        }
        refs[k].trace_idx = (uint16_t)(k / c->per_trace);
        gen_one_span(c, &scope, k, root_k, &refs[k], &clock_ns);
    }
    /* resource */
    sub.len = 0;
    enc_resource(&c->g, &sub);
    pb_msg(&rs, 1, &sub);
    pb_msg(&rs, 2, &scope);
    pb_msg(out, 1, &rs);
    if (scope.oom || rs.oom || sub.oom)
        out->oom = true;
    free(scope.p);
    free(rs.p);
    free(sub.p);
}

/* ---- finding the bytes to patch ----------------------------------------- */

static bool id_at(const lg_req *r, uint32_t off, const uint8_t *want, size_t n)
{
    return off + n <= r->len && memcmp(r->buf + off, want, n) == 0;
}

static bool add_time(lg_req *r, size_t *cap, uint32_t off)
{
    if (r->n_times == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        uint32_t *p = realloc(r->time_offs, nc * sizeof(*p));
        if (!p)
            return false;
        r->time_offs = p;
        *cap = nc;
    }
    r->time_offs[r->n_times++] = off;
    return true;
}

/* Event.time_unix_nano of one Event. */
static bool walk_event(const rd *sr, const rd_field *f, lg_req *r, size_t *cap)
{
    rd er = rd_sub(sr, f);
    rd_field ef;
    while (er.p < er.end) {
        if (!rd_next(&er, &ef))
            return false;
        if (ef.num == 1 && ef.wt == WT_I64 &&
            !add_time(r, cap, (uint32_t)(ef.data - er.base)))
            return false;
    }
    return true;
}

/* Walks one Span; records offsets into ref and r->time_offs. */
static bool walk_span(rd *sr, lg_req *r, lg_span_ref *ref, size_t *cap)
{
    rd_field f;
    ref->trace_off = ref->span_off = ref->parent_off = 0;
    while (sr->p < sr->end) {
        if (!rd_next(sr, &f))
            return false;
        uint32_t off = (uint32_t)(f.data - sr->base);
        bool ok = true;
        if (f.num == 1 && f.wt == WT_LEN && f.len == 16)
            ref->trace_off = off;
        else if (f.num == 2 && f.wt == WT_LEN && f.len == 8)
            ref->span_off = off;
        else if (f.num == 4 && f.wt == WT_LEN && f.len == 8)
            ref->parent_off = off;
        else if ((f.num == 7 || f.num == 8) && f.wt == WT_I64)
            ok = add_time(r, cap, off);
        else if (f.num == 11 && f.wt == WT_LEN)
            ok = walk_event(sr, &f, r, cap);
        if (!ok)
            return false;
    }
    return ref->trace_off && ref->span_off;
}

/* Finds every span of request r; refs[] must already hold trace/parent
 * indexes. Checks the count and that each id found is the generated one. */
static int walk_request(lg_pool *pool, lg_req *r, lg_span_ref *refs)
{
    rd top = {r->buf, r->buf + r->len, r->buf};
    rd_field f1, f2, f3;
    int k = 0;
    size_t cap = 0;
    while (top.p < top.end) {
        if (!rd_next(&top, &f1))
            return -1;
        if (f1.num != 1 || f1.wt != WT_LEN)
            continue;
        rd rs = rd_sub(&top, &f1);
        while (rs.p < rs.end) {
            if (!rd_next(&rs, &f2))
                return -1;
            if (f2.num != 2 || f2.wt != WT_LEN)
                continue;
            rd ss = rd_sub(&rs, &f2);
            while (ss.p < ss.end) {
                if (!rd_next(&ss, &f3))
                    return -1;
                if (f3.num != 2 || f3.wt != WT_LEN)
                    continue;
                if (k >= pool->spans)
                    return -1;
                rd sp = rd_sub(&ss, &f3);
                if (!walk_span(&sp, r, &refs[k], &cap))
                    return -1;
                k++;
            }
        }
    }
    if (k != pool->spans)
        return -1;
    for (k = 0; k < pool->spans; k++) {
        uint8_t tid[16], sid[8];
        make_trace_id(pool, 0, refs[k].trace_idx, tid);
        make_span_id(0, k, sid);
        if (!id_at(r, refs[k].trace_off, tid, 16) ||
            !id_at(r, refs[k].span_off, sid, 8))
            return -1;
        if ((refs[k].parent_idx >= 0) != (refs[k].parent_off != 0))
            return -1;
        if (refs[k].parent_idx >= 0) {
            make_span_id(0, refs[k].parent_idx, sid);
            if (!id_at(r, refs[k].parent_off, sid, 8))
                return -1;
        }
    }
    return 0;
}

/* ---- public ------------------------------------------------------------- */

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void make_nonce(uint8_t nonce[8])
{
    if (getrandom(nonce, 8, 0) != 8) {
        uint64_t x = wall_ns() ^ ((uint64_t)getpid() << 32);
        memcpy(nonce, &x, 8);
    }
    nonce[0] |= 1; /* never all zero */
}

static int build_one(lg_pool *pool, gen_ctx *c, int i)
{
    lg_req *r = &pool->reqs[i];
    lg_span_ref *refs = pool->refs + (size_t)i * (size_t)pool->spans;
    pb out = {0};
    c->g.rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
    c->g.text_pct = c->text_pct;
    c->g.conv = i % 3;
    snprintf(c->g.agent, sizeof(c->g.agent), "%s", PICK(&c->g, AGENTS));
    snprintf(c->g.model, sizeof(c->g.model), "%s", PICK(&c->g, MODELS));
    gen_request(c, refs, &out);
    if (out.oom || c->span.oom || c->tmp.oom) {
        free(out.p);
        fprintf(stderr, "halo-loadgen: out of memory building requests\n");
        return -1;
    }
    r->buf = out.p;
    r->len = out.len;
    if (walk_request(pool, r, refs) != 0) {
        fprintf(stderr,
                "halo-loadgen: internal error: request %d does not "
                "parse back as generated\n",
                i);
        return -1;
    }
    if (r->len > pool->max_len)
        pool->max_len = r->len;
    return 0;
}

lg_pool *lg_pool_create(const lg_opts *o)
{
    lg_pool *pool = calloc(1, sizeof(*pool));
    gen_ctx c = {0};
    if (!pool)
        goto oom;
    pool->n_reqs = o->pool_size;
    pool->spans = o->spans_per_request;
    pool->reqs = calloc((size_t)pool->n_reqs, sizeof(*pool->reqs));
    pool->refs =
        calloc((size_t)pool->n_reqs * (size_t)pool->spans, sizeof(*pool->refs));
    if (!pool->reqs || !pool->refs)
        goto oom;
    make_nonce(pool->nonce);
    pool->sequential_ids = o->sequential_ids;
    pool->gen_ns = wall_ns();
    c.pool = pool;
    c.now_ns = pool->gen_ns;
    c.spans = pool->spans;
    c.per_trace = o->spans_per_trace;
    c.text_pct = o->text_pct;
    for (int i = 0; i < pool->n_reqs; i++)
        if (build_one(pool, &c, i) != 0)
            goto fail;
    free(c.span.p);
    free(c.tmp.p);
    return pool;
oom:
    fprintf(stderr, "halo-loadgen: out of memory building requests\n");
fail:
    free(c.span.p);
    free(c.tmp.p);
    lg_pool_destroy(pool);
    return NULL;
}

void lg_pool_destroy(lg_pool *pool)
{
    if (!pool)
        return;
    for (int i = 0; pool->reqs && i < pool->n_reqs; i++) {
        free(pool->reqs[i].buf);
        free(pool->reqs[i].time_offs);
    }
    free(pool->reqs);
    free(pool->refs);
    free(pool);
}

size_t lg_pool_req_len(const lg_pool *pool, uint64_t idx)
{
    return pool->reqs[idx % (uint64_t)pool->n_reqs].len;
}

size_t lg_pool_max_len(const lg_pool *pool)
{
    return pool->max_len;
}

int lg_pool_spans(const lg_pool *pool)
{
    return pool->spans;
}

void lg_pool_stamp(const lg_pool *pool, uint64_t seq, uint8_t *dst)
{
    size_t i = (size_t)(seq % (uint64_t)pool->n_reqs);
    const lg_req *r = &pool->reqs[i];
    const lg_span_ref *refs = pool->refs + i * (size_t)pool->spans;
    memcpy(dst, r->buf, r->len);
    for (int k = 0; k < pool->spans; k++) {
        make_trace_id(pool, seq, refs[k].trace_idx, dst + refs[k].trace_off);
        make_span_id(seq, k, dst + refs[k].span_off);
        if (refs[k].parent_off)
            make_span_id(seq, refs[k].parent_idx, dst + refs[k].parent_off);
    }
    uint64_t shift = wall_ns() - pool->gen_ns;
    for (size_t t = 0; t < r->n_times; t++) {
        uint8_t *p = dst + r->time_offs[t];
        uint64_t v = 0;
        for (int b = 7; b >= 0; b--)
            v = (v << 8) | p[b];
        v += shift;
        for (int b = 0; b < 8; b++)
            p[b] = (uint8_t)(v >> (8 * b));
    }
}

int64_t lg_parse_export_response(const uint8_t *buf, size_t len)
{
    rd r = {buf, buf + len, buf};
    rd_field f, g;
    int64_t rejected = 0;
    while (r.p < r.end) {
        if (!rd_next(&r, &f))
            return -1;
        if (f.num != 1 || f.wt != WT_LEN)
            continue;
        rd ps = rd_sub(&r, &f);
        while (ps.p < ps.end) {
            if (!rd_next(&ps, &g))
                return -1;
            if (g.num == 1 && g.wt == WT_VARINT)
                rejected = (int64_t)g.u;
        }
    }
    return rejected < 0 ? -1 : rejected;
}
