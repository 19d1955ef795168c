/*
 * agent_identity.c -- span normalization (DESIGN §5).
 *
 * Every span gets its derived fields (span->d): which agent, session and
 * user it belongs to, its type, model, tool, tokens, cost, input and output,
 * whatever semantic convention the client used. This runs on the receiver
 * threads for every span, so it is built for speed:
 *
 *   - One pass over a span's attributes classifies each key into a slot
 *     (the ~36 keys we care about; a switch on the key's length picks the
 *     few candidates to compare). Every field is then read from the slots
 *     in its precedence order: no lookup per (field, key) pair.
 *   - The run-identity fields (agent_id, agent_name, session_id, user_id)
 *     fall back to the trace's root span and then to the resource. Roots
 *     are indexed per batch in a small open-addressing hash on the trace
 *     id, built in a first pass (children usually come before their root),
 *     each with its own identity resolved once. Resources are shared by
 *     consecutive spans: the last one's identity is cached.
 *   - The other fields (span_type, model, tool_name, tokens, cost,
 *     input/output) come from the span itself only: a child LLM span's type
 *     or model is not its root's.
 *
 * Identity resolution is per level: at the first level (span, root,
 * resource) that names the agent by any key, agent_name is that level's
 * name key, or else that level's agent_id. So a sub-agent span carrying
 * only gen_ai.agent.id is not given the name of the orchestrator at its
 * root. When a run-identity value comes from the resource, its HALO_FB_*
 * bit is set: the store re-derives it when the root arrives in a later
 * batch.
 *
 * Values: identity, model and tool fields take non-empty strings, and
 * integers rendered as decimal text (a numeric user.id); other types are
 * skipped. Tokens take non-negative integers, integral doubles and strings
 * of digits. Input/output take strings as they are (empty included) and any
 * other value as compact JSON (core/json_attrs.h, as the stores write
 * attributes). Built strings live in the span's chunk arena.
 */
#include "processors/agent_identity.h"

#include "core/component.h"
#include "core/json_attrs.h"
#include "core/log.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define N_OF(a) (sizeof(a) / sizeof *(a))

/* ---- the keys we read ------------------------------------------------- */

enum key_slot {
    K_AGENT_ID,
    K_GENAI_AGENT_ID,
    K_INF_AGENT_ID,
    K_AGENT_NAME,
    K_GENAI_AGENT_NAME,
    K_SERVICE_NAME,
    K_INF_AGENT_NAME,
    K_SESSION_ID,
    K_GENAI_CONVERSATION_ID,
    K_LANGFUSE_SESSION_ID,
    K_INF_SESSION_ID,
    K_USER_ID,
    K_LANGFUSE_USER_ID,
    K_ENDUSER_ID,
    K_OI_SPAN_KIND,
    K_GENAI_OPERATION_NAME,
    K_TOOL_NAME,
    K_GENAI_TOOL_NAME,
    K_TOOL_CALL_FUNCTION_NAME,
    K_LLM_MODEL_NAME,
    K_GENAI_RESPONSE_MODEL,
    K_GENAI_REQUEST_MODEL,
    K_INF_LLM_MODEL_NAME,
    K_LLM_TOKENS_PROMPT,
    K_LLM_TOKENS_COMPLETION,
    K_GENAI_USAGE_INPUT,
    K_GENAI_USAGE_OUTPUT,
    K_GENAI_USAGE_PROMPT,
    K_GENAI_USAGE_COMPLETION,
    K_INF_LLM_INPUT_TOKENS,
    K_INF_LLM_OUTPUT_TOKENS,
    K_LLM_COST_TOTAL,
    K_INPUT_VALUE,
    K_OUTPUT_VALUE,
    K_GENAI_TOOL_CALL_ARGUMENTS,
    K_GENAI_TOOL_CALL_RESULT,
    K_COUNT
};

#define KEY(s)                                                                 \
    {                                                                          \
        s, sizeof(s) - 1                                                       \
    }

static const struct {
    const char *name;
    size_t len;
} key_names[K_COUNT] = {
    [K_AGENT_ID] = KEY("agent.id"),
    [K_GENAI_AGENT_ID] = KEY("gen_ai.agent.id"),
    [K_INF_AGENT_ID] = KEY("inference.agent_id"),
    [K_AGENT_NAME] = KEY("agent.name"),
    [K_GENAI_AGENT_NAME] = KEY("gen_ai.agent.name"),
    [K_SERVICE_NAME] = KEY("service.name"),
    [K_INF_AGENT_NAME] = KEY("inference.agent_name"),
    [K_SESSION_ID] = KEY("session.id"),
    [K_GENAI_CONVERSATION_ID] = KEY("gen_ai.conversation.id"),
    [K_LANGFUSE_SESSION_ID] = KEY("langfuse.session.id"),
    [K_INF_SESSION_ID] = KEY("inference.session_id"),
    [K_USER_ID] = KEY("user.id"),
    [K_LANGFUSE_USER_ID] = KEY("langfuse.user.id"),
    [K_ENDUSER_ID] = KEY("enduser.id"),
    [K_OI_SPAN_KIND] = KEY("openinference.span.kind"),
    [K_GENAI_OPERATION_NAME] = KEY("gen_ai.operation.name"),
    [K_TOOL_NAME] = KEY("tool.name"),
    [K_GENAI_TOOL_NAME] = KEY("gen_ai.tool.name"),
    [K_TOOL_CALL_FUNCTION_NAME] = KEY("tool_call.function.name"),
    [K_LLM_MODEL_NAME] = KEY("llm.model_name"),
    [K_GENAI_RESPONSE_MODEL] = KEY("gen_ai.response.model"),
    [K_GENAI_REQUEST_MODEL] = KEY("gen_ai.request.model"),
    [K_INF_LLM_MODEL_NAME] = KEY("inference.llm.model_name"),
    [K_LLM_TOKENS_PROMPT] = KEY("llm.token_count.prompt"),
    [K_LLM_TOKENS_COMPLETION] = KEY("llm.token_count.completion"),
    [K_GENAI_USAGE_INPUT] = KEY("gen_ai.usage.input_tokens"),
    [K_GENAI_USAGE_OUTPUT] = KEY("gen_ai.usage.output_tokens"),
    [K_GENAI_USAGE_PROMPT] = KEY("gen_ai.usage.prompt_tokens"),
    [K_GENAI_USAGE_COMPLETION] = KEY("gen_ai.usage.completion_tokens"),
    [K_INF_LLM_INPUT_TOKENS] = KEY("inference.llm.input_tokens"),
    [K_INF_LLM_OUTPUT_TOKENS] = KEY("inference.llm.output_tokens"),
    [K_LLM_COST_TOTAL] = KEY("llm.cost.total"),
    [K_INPUT_VALUE] = KEY("input.value"),
    [K_OUTPUT_VALUE] = KEY("output.value"),
    [K_GENAI_TOOL_CALL_ARGUMENTS] = KEY("gen_ai.tool.call.arguments"),
    [K_GENAI_TOOL_CALL_RESULT] = KEY("gen_ai.tool.call.result"),
};

/* Precedence lists (DESIGN §5 table). */
static const uint8_t agent_id_keys[] = {K_AGENT_ID,         K_GENAI_AGENT_ID,
                                        K_INF_AGENT_ID,     K_AGENT_NAME,
                                        K_GENAI_AGENT_NAME, K_SERVICE_NAME};
static const uint8_t agent_name_keys[] = {K_AGENT_NAME, K_GENAI_AGENT_NAME,
                                          K_INF_AGENT_NAME};
static const uint8_t session_keys[] = {K_SESSION_ID, K_GENAI_CONVERSATION_ID,
                                       K_LANGFUSE_SESSION_ID, K_INF_SESSION_ID};
static const uint8_t user_keys[] = {K_USER_ID, K_LANGFUSE_USER_ID,
                                    K_ENDUSER_ID};
static const uint8_t model_keys[] = {K_LLM_MODEL_NAME, K_GENAI_RESPONSE_MODEL,
                                     K_GENAI_REQUEST_MODEL,
                                     K_INF_LLM_MODEL_NAME};
static const uint8_t tool_keys[] = {K_TOOL_NAME, K_GENAI_TOOL_NAME,
                                    K_TOOL_CALL_FUNCTION_NAME};
static const uint8_t in_tok_keys[] = {K_LLM_TOKENS_PROMPT, K_GENAI_USAGE_INPUT,
                                      K_GENAI_USAGE_PROMPT,
                                      K_INF_LLM_INPUT_TOKENS};
static const uint8_t out_tok_keys[] = {
    K_LLM_TOKENS_COMPLETION, K_GENAI_USAGE_OUTPUT, K_GENAI_USAGE_COMPLETION,
    K_INF_LLM_OUTPUT_TOKENS};
static const uint8_t input_keys[] = {K_INPUT_VALUE,
                                     K_GENAI_TOOL_CALL_ARGUMENTS};
static const uint8_t output_keys[] = {K_OUTPUT_VALUE, K_GENAI_TOOL_CALL_RESULT};

/* Keys bucketed by length, built once: a key is compared only with the
 * (at most five) known keys of its length. */
#define MAX_KEY_LEN 32
#define MAX_PER_LEN 8
static uint8_t by_len[MAX_KEY_LEN][MAX_PER_LEN];
static uint8_t n_by_len[MAX_KEY_LEN];
static pthread_once_t by_len_once = PTHREAD_ONCE_INIT;

static void build_by_len(void)
{
    for (int k = 0; k < K_COUNT; k++) {
        size_t len = key_names[k].len;
        if (len < MAX_KEY_LEN && n_by_len[len] < MAX_PER_LEN)
            by_len[len][n_by_len[len]++] = (uint8_t)k;
    }
}

/* The slot of key, or -1 when it is none of ours. */
static int classify(const char *key)
{
    size_t len = strnlen(key, MAX_KEY_LEN);
    if (len >= MAX_KEY_LEN)
        return -1;
    for (int i = 0; i < n_by_len[len]; i++) {
        int k = by_len[len][i];
        if (key[0] == key_names[k].name[0] &&
            memcmp(key, key_names[k].name, len) == 0)
            return k;
    }
    return -1;
}

typedef const halo_value *slots[K_COUNT];

/* Fill slot[] from one attribute list (the first occurrence of a key
 * wins). */
static void scan_attrs(const halo_attrs *a, slots slot)
{
    memset(slot, 0, sizeof(slots));
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        const halo_kv *kv = &a->items[i];
        int k = kv->key ? classify(kv->key) : -1;
        if (k >= 0 && !slot[k])
            slot[k] = &kv->value;
    }
}

/* ---- price table ------------------------------------------------------ */

typedef struct price {
    char *model; /* without the trailing '*' */
    size_t len;
    bool prefix;
    double in, out; /* USD per 1M tokens */
} price;

struct halo_agent_identity {
    price *prices;
    size_t n_prices;
    bool override;
};

static char *trimmed_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return strndup(s, n);
}

/* A non-negative finite number filling all of s. */
static bool parse_amount(const char *s, double *out)
{
    char *end;
    if (!*s)
        return false;
    double d = strtod(s, &end);
    if (*end || !isfinite(d) || d < 0)
        return false;
    *out = d;
    return true;
}

static halo_status parse_price(const char *entry, price *p, halo_err *err)
{
    halo_status st = HALO_EINVAL;
    const char *eq = strrchr(entry, '=');
    char *in = NULL, *out = NULL;
    memset(p, 0, sizeof *p);
    if (!eq) {
        halo_errf(err,
                  "invalid price entry \"%.200s\": expected "
                  "MODEL=INPUT/OUTPUT (USD per 1M tokens)",
                  entry);
        goto cleanup;
    }
    const char *slash = strchr(eq + 1, '/');
    p->model = trimmed_dup(entry, (size_t)(eq - entry));
    in = trimmed_dup(eq + 1, slash ? (size_t)(slash - eq - 1) : strlen(eq + 1));
    out = slash ? trimmed_dup(slash + 1, strlen(slash + 1)) : strdup("");
    if (!p->model || !in || !out) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (!*p->model) {
        halo_errf(err, "invalid price entry \"%.200s\": empty model name",
                  entry);
        goto cleanup;
    }
    if (!slash || !parse_amount(in, &p->in) || !parse_amount(out, &p->out)) {
        halo_errf(err,
                  "invalid price entry \"%.200s\": expected MODEL=INPUT/OUTPUT "
                  "with non-negative numbers (USD per 1M tokens)",
                  entry);
        goto cleanup;
    }
    p->len = strlen(p->model);
    if (p->model[p->len - 1] == '*') {
        p->prefix = true;
        p->model[--p->len] = '\0';
    }
    st = HALO_OK;
cleanup:
    free(in);
    free(out);
    if (st != HALO_OK) {
        free(p->model);
        p->model = NULL;
    }
    return st;
}

static bool same_price_key(const price *a, const price *b)
{
    return a->prefix == b->prefix && strcmp(a->model, b->model) == 0;
}

halo_status halo_agent_identity_new(const halo_agent_identity_cfg *cfg,
                                    halo_agent_identity **out, halo_err *err)
{
    halo_status st = HALO_OK;
    halo_agent_identity *ai = calloc(1, sizeof *ai);
    *out = NULL;
    pthread_once(&by_len_once, build_by_len);
    if (!ai)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    ai->override = cfg->override;
    if (cfg->prices.n) {
        ai->prices = calloc(cfg->prices.n, sizeof *ai->prices);
        if (!ai->prices) {
            st = halo_fail(err, HALO_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    for (size_t i = 0; i < cfg->prices.n; i++) {
        price *p = &ai->prices[ai->n_prices];
        st = parse_price(cfg->prices.items[i], p, err);
        if (st != HALO_OK)
            goto cleanup;
        ai->n_prices++;
        for (size_t j = 0; j + 1 < ai->n_prices; j++)
            if (same_price_key(&ai->prices[j], p)) {
                st = halo_fail(err, HALO_EINVAL,
                               "invalid price entry \"%.200s\": duplicate "
                               "price for model \"%.200s%s\"",
                               cfg->prices.items[i], p->model,
                               p->prefix ? "*" : "");
                goto cleanup;
            }
    }
    *out = ai;
cleanup:
    if (st != HALO_OK)
        halo_agent_identity_free(ai);
    return st;
}

void halo_agent_identity_free(halo_agent_identity *ai)
{
    if (!ai)
        return;
    for (size_t i = 0; i < ai->n_prices; i++)
        free(ai->prices[i].model);
    free(ai->prices);
    free(ai);
}

/* Exact entries first, else the longest matching prefix entry. */
static const price *find_price(const halo_agent_identity *ai, const char *model)
{
    const price *best = NULL;
    for (size_t i = 0; i < ai->n_prices; i++) {
        const price *p = &ai->prices[i];
        if (!p->prefix) {
            if (strcmp(p->model, model) == 0)
                return p;
        } else if (strncmp(p->model, model, p->len) == 0 &&
                   (!best || p->len > best->len)) {
            best = p;
        }
    }
    return best;
}

bool halo_agent_identity_price(const halo_agent_identity *ai, const char *model,
                               int64_t input_tokens, int64_t output_tokens,
                               double *cost)
{
    const price *p = model && ai->n_prices ? find_price(ai, model) : NULL;
    if (!p)
        return false;
    double in = input_tokens > 0 ? (double)input_tokens : 0;
    double out = output_tokens > 0 ? (double)output_tokens : 0;
    *cost = (in * p->in + out * p->out) / 1e6;
    return true;
}

/* ---- per-batch work state --------------------------------------------- */

enum { F_AGENT_ID, F_AGENT_NAME, F_SESSION_ID, F_USER_ID, F_COUNT };
static const uint32_t fb_bits[F_COUNT] = {HALO_FB_AGENT_ID, HALO_FB_AGENT_NAME,
                                          HALO_FB_SESSION_ID, HALO_FB_USER_ID};

/* The run-identity values one level (span, root or resource) provides. */
typedef struct ident {
    const char *v[F_COUNT];
} ident;

typedef struct root_entry {
    const halo_span *span; /* NULL: free slot */
    const halo_chunk *chunk;
    ident id;
} root_entry;

#define SMALL_ROOTS 64

typedef struct work {
    const halo_agent_identity *ai;
    const halo_chunk *chunk; /* the chunk being derived */
    halo_arena *arena;       /* its arena (NULL: build nothing) */
    halo_buf scratch;
    bool oom;
    /* roots of the batch by trace id */
    root_entry *roots;
    size_t roots_mask;
    root_entry small[SMALL_ROOTS];
    /* the last resource seen in this chunk */
    bool res_valid;
    const halo_resource *res;
    ident res_id;
    const char *service_name;
} work;

static const char *build_str(work *w, const char *s, size_t n)
{
    if (!w->arena)
        return NULL;
    char *p = halo_arena_strndup(w->arena, s, n);
    if (!p)
        w->oom = true;
    return p;
}

/* An identity-like value: a non-empty string, or an integer as text. */
static const char *value_text(work *w, const halo_value *v)
{
    if (!v)
        return NULL;
    if (v->type == HALO_VAL_STRING && v->u.s.ptr && v->u.s.len)
        return v->u.s.ptr;
    if (v->type == HALO_VAL_INT) {
        char tmp[24];
        int n = snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i);
        return build_str(w, tmp, (size_t)n);
    }
    return NULL;
}

static const char *first_text(work *w, const slots slot, const uint8_t *keys,
                              size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *t = value_text(w, slot[keys[i]]);
        if (t)
            return t;
    }
    return NULL;
}

static void level_ident(work *w, const slots slot, ident *out)
{
    const char *name;
    out->v[F_AGENT_ID] =
        first_text(w, slot, agent_id_keys, N_OF(agent_id_keys));
    name = first_text(w, slot, agent_name_keys, N_OF(agent_name_keys));
    out->v[F_AGENT_NAME] = name ? name : out->v[F_AGENT_ID];
    out->v[F_SESSION_ID] =
        first_text(w, slot, session_keys, N_OF(session_keys));
    out->v[F_USER_ID] = first_text(w, slot, user_keys, N_OF(user_keys));
}

/* ---- root index ------------------------------------------------------- */

static size_t trace_hash(const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    uint64_t h = a ^ (b * 0x9e3779b97f4a7c15ull);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (size_t)h;
}

static root_entry *root_slot(work *w, const uint8_t id[16])
{
    size_t i = trace_hash(id) & w->roots_mask;
    while (w->roots[i].span && memcmp(w->roots[i].span->trace_id, id, 16) != 0)
        i = (i + 1) & w->roots_mask;
    return &w->roots[i];
}

/* Index the batch's root spans, each with its identity resolved from its
 * own attributes (built strings go to the root's chunk arena). */
static void index_roots(work *w, const halo_batch *b)
{
    size_t n = 0, cap = 16;
    HALO_BATCH_FOREACH(b, c, sp)
    n += halo_span_is_root(sp);
    if (!n)
        return;
    while (cap < 2 * n)
        cap *= 2;
    if (cap <= SMALL_ROOTS) {
        w->roots = w->small;
        memset(w->small, 0, cap * sizeof *w->small);
    } else if (!(w->roots = calloc(cap, sizeof *w->roots))) {
        w->oom = true; /* no root fallback for this batch */
        return;
    }
    w->roots_mask = cap - 1;
    HALO_BATCH_FOREACH(b, c, sp)
    {
        if (!halo_span_is_root(sp))
            continue;
        root_entry *e = root_slot(w, sp->trace_id);
        if (e->span)
            continue; /* a second root for one trace: keep the first */
        slots slot;
        e->span = sp;
        e->chunk = c;
        w->arena = c->arena;
        scan_attrs(&sp->attrs, slot);
        level_ident(w, slot, &e->id);
    }
}

static const root_entry *find_root(work *w, const halo_span *sp)
{
    if (!w->roots || halo_span_is_root(sp))
        return NULL;
    const root_entry *e = root_slot(w, sp->trace_id);
    return e->span ? e : NULL;
}

/* ---- span-only fields ------------------------------------------------- */

static const char *const known_kinds[] = {
    "LLM",       "TOOL",     "AGENT",     "CHAIN",     "RETRIEVER",
    "EMBEDDING", "RERANKER", "GUARDRAIL", "EVALUATOR", "PROMPT"};
static const char span_unknown[] = "UNKNOWN";

/* openinference.span.kind, upper-cased; NULL for "unknown" or unusable. */
static const char *oi_kind(work *w, const halo_value *v)
{
    if (!v || v->type != HALO_VAL_STRING || !v->u.s.ptr || !v->u.s.len)
        return NULL;
    for (size_t i = 0; i < N_OF(known_kinds); i++)
        if (strcasecmp(v->u.s.ptr, known_kinds[i]) == 0)
            return known_kinds[i];
    if (strcasecmp(v->u.s.ptr, span_unknown) == 0)
        return NULL;
    char *up = (char *)build_str(w, v->u.s.ptr, v->u.s.len);
    for (char *p = up; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return up;
}

static const struct {
    const char *op;
    const char *type;
} genai_ops[] = {
    {"chat", "LLM"},
    {"text_completion", "LLM"},
    {"generate_content", "LLM"},
    {"execute_tool", "TOOL"},
    {"invoke_agent", "AGENT"},
    {"create_agent", "AGENT"},
    {"embeddings", "EMBEDDING"},
    {"retrieval", "RETRIEVER"},
};

static const char *genai_op_type(const halo_value *v)
{
    if (!v || v->type != HALO_VAL_STRING || !v->u.s.ptr)
        return NULL;
    for (size_t i = 0; i < N_OF(genai_ops); i++)
        if (strcasecmp(v->u.s.ptr, genai_ops[i].op) == 0)
            return genai_ops[i].type;
    return NULL;
}

static const char *span_type_of(work *w, const slots slot)
{
    const char *t = oi_kind(w, slot[K_OI_SPAN_KIND]);
    if (!t)
        t = genai_op_type(slot[K_GENAI_OPERATION_NAME]);
    if (!t && (value_text(w, slot[K_TOOL_NAME]) ||
               value_text(w, slot[K_GENAI_TOOL_NAME])))
        t = "TOOL";
    return t ? t : span_unknown;
}

/* A token count: non-negative integer, integral double, or digits. */
static bool value_count(const halo_value *v, int64_t *out)
{
    if (!v)
        return false;
    switch (v->type) {
    case HALO_VAL_INT:
        if (v->u.i < 0)
            return false;
        *out = v->u.i;
        return true;
    case HALO_VAL_DOUBLE:
        if (!isfinite(v->u.d) || v->u.d < 0 || v->u.d > 9e15 ||
            floor(v->u.d) != v->u.d)
            return false;
        *out = (int64_t)v->u.d;
        return true;
    case HALO_VAL_STRING: {
        int64_t n = 0;
        if (!v->u.s.ptr || !v->u.s.len || v->u.s.len > 18)
            return false;
        for (size_t i = 0; i < v->u.s.len; i++) {
            char c = v->u.s.ptr[i];
            if (c < '0' || c > '9')
                return false;
            n = n * 10 + (c - '0');
        }
        *out = n;
        return true;
    }
    default:
        return false;
    }
}

static bool first_count(const slots slot, const uint8_t *keys, size_t n,
                        int64_t *out)
{
    for (size_t i = 0; i < n; i++)
        if (value_count(slot[keys[i]], out))
            return true;
    return false;
}

/* llm.cost.total: a non-negative finite number, or a string holding one. */
static bool value_cost(const halo_value *v, double *out)
{
    double d;
    if (!v)
        return false;
    if (v->type == HALO_VAL_INT)
        d = (double)v->u.i;
    else if (v->type == HALO_VAL_DOUBLE)
        d = v->u.d;
    else if (v->type == HALO_VAL_STRING && v->u.s.ptr) {
        char *end;
        d = strtod(v->u.s.ptr, &end);
        if (end == v->u.s.ptr || *end)
            return false;
    } else
        return false;
    if (!isfinite(d) || d < 0)
        return false;
    *out = d;
    return true;
}

/* Input/output: strings as they are, anything else as compact JSON. */
static const char *io_value(work *w, const slots slot, const uint8_t *keys,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const halo_value *v = slot[keys[i]];
        if (!v || v->type == HALO_VAL_EMPTY)
            continue;
        if (v->type == HALO_VAL_STRING)
            return v->u.s.ptr ? v->u.s.ptr : "";
        if (!w->arena)
            continue;
        halo_buf_reset(&w->scratch);
        halo_json_encode_value(&w->scratch, v);
        if (w->scratch.oom) {
            w->oom = true;
            halo_buf_free(&w->scratch);
            w->scratch = (halo_buf)HALO_BUF_INIT;
            continue;
        }
        return build_str(w, w->scratch.data, w->scratch.len);
    }
    return NULL;
}

/* ---- putting it together ---------------------------------------------- */

static const char **ident_field(halo_derived *d, int f)
{
    switch (f) {
    case F_AGENT_ID:
        return &d->agent_id;
    case F_AGENT_NAME:
        return &d->agent_name;
    case F_SESSION_ID:
        return &d->session_id;
    default:
        return &d->user_id;
    }
}

static void put_str(const char **dst, const char *v, bool override)
{
    if (v && (override || !*dst))
        *dst = v;
}

/* A root's value used by a span of another chunk is copied into the span's
 * chunk arena, so chunks stay self-contained if a batch is split later. */
static const char *adopt(work *w, const root_entry *r, const char *v)
{
    if (!v || r->chunk == w->chunk || !w->arena)
        return v;
    return build_str(w, v, strlen(v));
}

static const ident *resource_ident(work *w, const halo_resource *res)
{
    if (!w->res_valid || res != w->res) {
        slots slot;
        scan_attrs(res ? &res->attrs : NULL, slot);
        level_ident(w, slot, &w->res_id);
        w->service_name = value_text(w, slot[K_SERVICE_NAME]);
        w->res = res;
        w->res_valid = true;
    }
    return &w->res_id;
}

/* agent_id, agent_name, session_id, user_id: span, then root, then
 * resource (flagged in fallback_mask). */
static void derive_identity(work *w, halo_span *sp, const slots slot)
{
    ident own;
    const root_entry *root = find_root(w, sp);
    const ident *res = resource_ident(w, sp->resource);
    halo_derived *d = &sp->d;
    bool override = w->ai->override;
    level_ident(w, slot, &own);
    for (int f = 0; f < F_COUNT; f++) {
        const char *v = own.v[f];
        bool from_res = false;
        if (!v && root)
            v = adopt(w, root, root->id.v[f]);
        if (!v && (v = res->v[f]))
            from_res = true;
        const char **dst = ident_field(d, f);
        if (!v || (*dst && !override))
            continue;
        *dst = v;
        if (from_res)
            d->fallback_mask |= fb_bits[f];
        else
            d->fallback_mask &= ~fb_bits[f];
    }
    put_str(&d->service_name, w->service_name, override);
}

static void derive_span_fields(work *w, halo_span *sp, const slots slot)
{
    halo_derived *d = &sp->d;
    bool override = w->ai->override;
    int64_t n;
    double cost;
    const char *type = span_type_of(w, slot);
    if (!d->span_type || (override && type != span_unknown))
        d->span_type = type;
    put_str(&d->model, first_text(w, slot, model_keys, N_OF(model_keys)),
            override);
    put_str(&d->tool_name, first_text(w, slot, tool_keys, N_OF(tool_keys)),
            override);
    if (first_count(slot, in_tok_keys, N_OF(in_tok_keys), &n) &&
        (override || !d->has_input_tokens)) {
        d->input_tokens = n;
        d->has_input_tokens = true;
    }
    if (first_count(slot, out_tok_keys, N_OF(out_tok_keys), &n) &&
        (override || !d->has_output_tokens)) {
        d->output_tokens = n;
        d->has_output_tokens = true;
    }
    if (value_cost(slot[K_LLM_COST_TOTAL], &cost) &&
        (override || !d->has_cost)) {
        d->cost = cost;
        d->has_cost = true;
    }
    if (!d->has_cost && d->model &&
        (d->has_input_tokens || d->has_output_tokens) &&
        halo_agent_identity_price(
            w->ai, d->model, d->has_input_tokens ? d->input_tokens : 0,
            d->has_output_tokens ? d->output_tokens : 0, &cost)) {
        d->cost = cost;
        d->has_cost = true;
    }
    put_str(&d->input, io_value(w, slot, input_keys, N_OF(input_keys)),
            override);
    put_str(&d->output, io_value(w, slot, output_keys, N_OF(output_keys)),
            override);
}

halo_status halo_agent_identity_apply(const halo_agent_identity *ai,
                                      halo_batch *b)
{
    work *w = calloc(1, sizeof *w);
    if (!w)
        return HALO_ENOMEM;
    w->ai = ai;
    w->scratch = (halo_buf)HALO_BUF_INIT;
    pthread_once(&by_len_once, build_by_len);
    index_roots(w, b);
    for (halo_chunk *c = b->head; c; c = c->next) {
        w->chunk = c;
        w->arena = c->arena;
        w->res_valid = false; /* resource strings are built per chunk */
        for (halo_span *sp = c->spans; sp < c->spans + c->n; sp++) {
            slots slot;
            scan_attrs(&sp->attrs, slot);
            derive_identity(w, sp, slot);
            derive_span_fields(w, sp, slot);
        }
    }
    halo_status st = w->oom ? HALO_ENOMEM : HALO_OK;
    halo_buf_free(&w->scratch);
    if (w->roots && w->roots != w->small)
        free(w->roots);
    free(w);
    return st;
}

/* ---- the component ---------------------------------------------------- */

static const halo_field schema[] = {
    {.key = "prices",
     .type = HALO_F_STRLIST,
     .offset = offsetof(halo_agent_identity_cfg, prices),
     .description = "per-model prices \"MODEL=INPUT/OUTPUT\" in USD per 1M "
                    "tokens (\"gpt-4o=2.50/10.00\"); a trailing * on MODEL "
                    "matches by prefix; used when a span has no "
                    "llm.cost.total"},
    {.key = "override",
     .type = HALO_F_BOOL,
     .offset = offsetof(halo_agent_identity_cfg, override),
     .def = "false",
     .description = "replace derived fields that an earlier processor "
                    "already set"},
    {.key = NULL},
};

static halo_status ai_create(halo_component *self, halo_err *err)
{
    halo_agent_identity *ai = NULL;
    halo_status st = halo_agent_identity_new(self->cfg, &ai, err);
    if (st == HALO_OK)
        self->ctx = ai;
    return st;
}

static halo_status ai_consume(halo_component *self, halo_batch *b)
{
    if (halo_agent_identity_apply(self->ctx, b) != HALO_OK)
        LOG_WARN(self->log_prefix,
                 "could not derive every field of a batch of %zu spans: out "
                 "of memory",
                 b->n_spans);
    return halo_emit(self, b);
}

static void ai_shutdown(halo_component *self)
{
    (void)self;
}

static void ai_destroy(halo_component *self)
{
    halo_agent_identity_free(self->ctx);
    self->ctx = NULL;
}

const halo_component_def halo_processor_agent_identity = {
    .kind = HALO_PROCESSOR,
    .type = "agent_identity",
    .description = "derives agent, session, user, span type, model, tool, "
                   "tokens, cost, input and output of every span",
    .schema = schema,
    .cfg_size = sizeof(halo_agent_identity_cfg),
    .create = ai_create,
    .start = NULL,
    .consume = ai_consume,
    .shutdown = ai_shutdown,
    .destroy = ai_destroy,
};
