/*
 * test_agent_identity.c -- the normalization rules of DESIGN §5.
 *
 * Spans are built by hand in an arena, wrapped into a batch and derived
 * with halo_agent_identity_apply(); each test then reads span->d. The
 * table-driven tests check every source key of every field alone, then the
 * precedence of each list by removing its keys one by one.
 */
#include "fixtures.h"
#include "harness.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/component.h"
#include "processors/agent_identity.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

/* ---- building spans ---------------------------------------------------- */

typedef struct tb {
    halo_arena *a;
    halo_span *spans;
    size_t n, cap;
} tb;

static void tb_init(tb *t, size_t cap)
{
    t->a = halo_arena_new(0);
    t->spans = halo_arena_calloc(t->a, cap, sizeof *t->spans);
    t->n = 0;
    t->cap = cap;
}

static halo_attrs tb_attrs(tb *t, const halo_kv *kvs, size_t n)
{
    halo_attrs a = {NULL, n};
    if (n) {
        a.items = halo_arena_alloc(t->a, n * sizeof *kvs);
        memcpy(a.items, kvs, n * sizeof *kvs);
    }
    return a;
}

static const halo_resource *tb_res(tb *t, const halo_kv *kvs, size_t n)
{
    halo_resource *r = halo_arena_calloc(t->a, 1, sizeof *r);
    r->attrs = tb_attrs(t, kvs, n);
    r->schema_url = "";
    return r;
}

/* trace/span/parent: small numbers written into the ids (parent 0: root). */
static halo_span *tb_span(tb *t, int trace, int span, int parent,
                          const halo_resource *res, const halo_kv *kvs,
                          size_t n)
{
    static const halo_scope scope = {"", "", {NULL, 0}, 0, ""};
    halo_span *sp = &t->spans[t->n++];
    memset(sp, 0, sizeof *sp);
    sp->trace_id[15] = (uint8_t)trace;
    sp->trace_id[14] = (uint8_t)(trace >> 8);
    sp->trace_id[0] = 0xab;
    sp->span_id[7] = (uint8_t)span;
    sp->span_id[6] = (uint8_t)(span >> 8);
    sp->parent_span_id[7] = (uint8_t)parent;
    sp->parent_span_id[6] = (uint8_t)(parent >> 8);
    sp->name = "op";
    sp->trace_state = "";
    sp->status_message = "";
    sp->attrs = tb_attrs(t, kvs, n);
    sp->resource = res;
    sp->scope = &scope;
    return sp;
}

static halo_batch *tb_batch(tb *t)
{
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, t->a, t->spans, t->n);
    return b;
}

static halo_agent_identity *mk_ai(const char *const *prices, size_t n,
                                  bool override)
{
    halo_agent_identity_cfg cfg = {{(char **)prices, n}, override};
    halo_agent_identity *ai = NULL;
    halo_err err = {{0}};
    if (halo_agent_identity_new(&cfg, &ai, &err) != HALO_OK)
        fprintf(stderr, "  could not create: %s\n", err.msg);
    return ai;
}

#define N(a) (sizeof(a) / sizeof *(a))

/* Derive a lone root span with these attributes (empty resource); the
 * result is copied into *out before the batch is released. String fields
 * stay valid only while `keep` (the batch) lives: the caller finishes it. */
static halo_batch *derive_one(const halo_agent_identity *ai, const halo_kv *kvs,
                              size_t n, halo_span **out)
{
    tb t;
    tb_init(&t, 1);
    *out = tb_span(&t, 1, 1, 0, tb_res(&t, NULL, 0), kvs, n);
    halo_batch *b = tb_batch(&t);
    halo_agent_identity_apply(ai, b);
    return b;
}

/* ---- the field tables --------------------------------------------------- */

enum fld {
    AGENT_ID,
    AGENT_NAME,
    SESSION_ID,
    USER_ID,
    MODEL,
    TOOL_NAME,
    INPUT,
    OUTPUT
};

static const char *field(const halo_span *sp, enum fld f)
{
    const halo_derived *d = &sp->d;
    switch (f) {
    case AGENT_ID:
        return d->agent_id;
    case AGENT_NAME:
        return d->agent_name;
    case SESSION_ID:
        return d->session_id;
    case USER_ID:
        return d->user_id;
    case MODEL:
        return d->model;
    case TOOL_NAME:
        return d->tool_name;
    case INPUT:
        return d->input;
    default:
        return d->output;
    }
}

static const char *const agent_id_src[] = {
    "agent.id",   "gen_ai.agent.id",   "inference.agent_id",
    "agent.name", "gen_ai.agent.name", "service.name"};
static const char *const agent_name_src[] = {"agent.name", "gen_ai.agent.name",
                                             "inference.agent_name"};
static const char *const session_src[] = {
    "session.id", "gen_ai.conversation.id", "langfuse.session.id",
    "inference.session_id"};
static const char *const user_src[] = {"user.id", "langfuse.user.id",
                                       "enduser.id"};
static const char *const model_src[] = {
    "llm.model_name", "gen_ai.response.model", "gen_ai.request.model",
    "inference.llm.model_name"};
static const char *const tool_src[] = {"tool.name", "gen_ai.tool.name",
                                       "tool_call.function.name"};
static const char *const input_src[] = {"input.value",
                                        "gen_ai.tool.call.arguments"};
static const char *const output_src[] = {"output.value",
                                         "gen_ai.tool.call.result"};

static const struct {
    enum fld f;
    const char *name;
    const char *const *keys;
    size_t n;
} lists[] = {
    {AGENT_ID, "agent_id", agent_id_src, N(agent_id_src)},
    {AGENT_NAME, "agent_name", agent_name_src, N(agent_name_src)},
    {SESSION_ID, "session_id", session_src, N(session_src)},
    {USER_ID, "user_id", user_src, N(user_src)},
    {MODEL, "model", model_src, N(model_src)},
    {TOOL_NAME, "tool_name", tool_src, N(tool_src)},
    {INPUT, "input", input_src, N(input_src)},
    {OUTPUT, "output", output_src, N(output_src)},
};

TEST(each_source_key_alone_yields_its_field)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    CHECK(ai);
    for (size_t l = 0; l < N(lists); l++) {
        for (size_t k = 0; k < lists[l].n; k++) {
            char val[96];
            snprintf(val, sizeof val, "v:%s", lists[l].keys[k]);
            halo_kv kv = S(lists[l].keys[k], val);
            halo_span *sp;
            halo_batch *b = derive_one(ai, &kv, 1, &sp);
            const char *got = field(sp, lists[l].f);
            int ok = got && strcmp(got, val) == 0;
            if (!ok)
                fprintf(stderr, "  %s from %s: got %s\n", lists[l].name,
                        lists[l].keys[k], got ? got : "(null)");
            halo_batch_done(b, HALO_OK, "");
            CHECK(ok);
        }
    }
    halo_agent_identity_free(ai);
}

TEST(precedence_within_each_list)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    CHECK(ai);
    for (size_t l = 0; l < N(lists); l++) {
        /* all keys present, then drop them from the front one by one */
        for (size_t first = 0; first < lists[l].n; first++) {
            halo_kv kvs[8];
            char vals[8][96];
            size_t n = 0;
            /* reverse order in the span so list order, not attribute
             * order, decides */
            for (size_t k = lists[l].n; k-- > first;) {
                snprintf(vals[n], sizeof vals[n], "v:%s", lists[l].keys[k]);
                kvs[n] = S(lists[l].keys[k], vals[n]);
                n++;
            }
            char want[96];
            snprintf(want, sizeof want, "v:%s", lists[l].keys[first]);
            halo_span *sp;
            halo_batch *b = derive_one(ai, kvs, n, &sp);
            const char *got = field(sp, lists[l].f);
            int ok = got && strcmp(got, want) == 0;
            if (!ok)
                fprintf(stderr, "  %s: want %s, got %s\n", lists[l].name, want,
                        got ? got : "(null)");
            halo_batch_done(b, HALO_OK, "");
            CHECK(ok);
        }
    }
    halo_agent_identity_free(ai);
}

TEST(agent_name_falls_back_to_agent_id)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    const char *id_only[] = {"agent.id", "gen_ai.agent.id",
                             "inference.agent_id", "service.name"};
    for (size_t k = 0; k < N(id_only); k++) {
        halo_kv kv = S(id_only[k], "the-id");
        halo_span *sp;
        halo_batch *b = derive_one(ai, &kv, 1, &sp);
        const char *name = sp->d.agent_name, *id = sp->d.agent_id;
        int ok = name && id && !strcmp(name, "the-id") && !strcmp(id, "the-id");
        halo_batch_done(b, HALO_OK, "");
        CHECK(ok);
    }
    /* a name key beats agent_id for the name; agent.id wins the id */
    halo_kv kvs[] = {S("agent.id", "a-1"), S("inference.agent_name", "Bot")};
    halo_span *sp;
    halo_batch *b = derive_one(ai, kvs, 2, &sp);
    CHECK_STR(sp->d.agent_id, "a-1");
    CHECK_STR(sp->d.agent_name, "Bot");
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

/* ---- levels: span, root, resource ---------------------------------------- */

TEST(span_beats_root_beats_resource)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    tb t;
    tb_init(&t, 8);
    halo_kv rk[] = {S("service.name", "svc"), S("session.id", "res-s"),
                    S("user.id", "res-u")};
    const halo_resource *res = tb_res(&t, rk, N(rk));
    halo_kv own[] = {S("session.id", "child-s")};
    halo_kv root_kv[] = {S("session.id", "root-s"), S("agent.id", "root-a")};
    /* children first, as SDKs export them before their root */
    halo_span *c1 = tb_span(&t, 1, 2, 1, res, own, 1);
    halo_span *c2 = tb_span(&t, 1, 3, 1, res, NULL, 0);
    halo_span *root = tb_span(&t, 1, 1, 0, res, root_kv, N(root_kv));
    halo_span *orphan = tb_span(&t, 2, 5, 4, res, NULL, 0);
    halo_batch *b = tb_batch(&t);
    CHECK_INT(halo_agent_identity_apply(ai, b), HALO_OK);

    CHECK_STR(c1->d.session_id, "child-s");
    CHECK_STR(c1->d.agent_id, "root-a");
    CHECK_STR(c1->d.agent_name, "root-a");
    CHECK_STR(c1->d.user_id, "res-u");
    CHECK_INT(c1->d.fallback_mask, HALO_FB_USER_ID);

    CHECK_STR(c2->d.session_id, "root-s");
    CHECK_STR(c2->d.agent_id, "root-a");
    CHECK_INT(c2->d.fallback_mask, HALO_FB_USER_ID);

    CHECK_STR(root->d.session_id, "root-s");
    CHECK_STR(root->d.agent_id, "root-a");
    CHECK_INT(root->d.fallback_mask, HALO_FB_USER_ID);

    /* root not in the batch: resource, every identity bit set */
    CHECK_STR(orphan->d.session_id, "res-s");
    CHECK_STR(orphan->d.agent_id, "svc");
    CHECK_STR(orphan->d.agent_name, "svc");
    CHECK_STR(orphan->d.user_id, "res-u");
    CHECK_INT(orphan->d.fallback_mask, HALO_FB_AGENT_ID | HALO_FB_AGENT_NAME |
                                           HALO_FB_SESSION_ID |
                                           HALO_FB_USER_ID);
    for (size_t i = 0; i < t.n; i++)
        CHECK_STR(t.spans[i].d.service_name, "svc");
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(fallback_mask_only_for_resource_values)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    tb t;
    tb_init(&t, 4);
    halo_kv rk[] = {S("service.name", "svc")};
    const halo_resource *res = tb_res(&t, rk, 1);
    halo_kv root_kv[] = {S("user.id", "u-root")};
    halo_kv own[] = {S("gen_ai.conversation.id", "conv")};
    tb_span(&t, 7, 1, 0, res, root_kv, 1);
    halo_span *c = tb_span(&t, 7, 2, 1, res, own, 1);
    halo_batch *b = tb_batch(&t);
    halo_agent_identity_apply(ai, b);
    CHECK_STR(c->d.agent_id, "svc");
    CHECK_STR(c->d.agent_name, "svc");
    CHECK_STR(c->d.session_id, "conv");
    CHECK_STR(c->d.user_id, "u-root");
    CHECK_INT(c->d.fallback_mask, HALO_FB_AGENT_ID | HALO_FB_AGENT_NAME);
    halo_batch_done(b, HALO_OK, "");

    /* nothing anywhere: no values, no bits */
    tb_init(&t, 1);
    c = tb_span(&t, 1, 2, 1, tb_res(&t, NULL, 0), NULL, 0);
    b = tb_batch(&t);
    halo_agent_identity_apply(ai, b);
    CHECK(c->d.agent_id == NULL && c->d.agent_name == NULL);
    CHECK(c->d.session_id == NULL && c->d.user_id == NULL);
    CHECK(c->d.service_name == NULL);
    CHECK_INT(c->d.fallback_mask, 0);
    CHECK_STR(c->d.span_type, "UNKNOWN");
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(root_fallback_only_for_identity_fields)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    tb t;
    tb_init(&t, 2);
    halo_kv rich[] = {S("openinference.span.kind", "AGENT"),
                      S("llm.model_name", "m"),
                      S("tool.name", "t"),
                      I("llm.token_count.prompt", 5),
                      I("llm.token_count.completion", 6),
                      D("llm.cost.total", 0.5),
                      S("input.value", "in"),
                      S("output.value", "out"),
                      S("agent.name", "A")};
    const halo_resource *res = tb_res(&t, rich, N(rich));
    tb_span(&t, 3, 1, 0, res, rich, N(rich));
    halo_span *c = tb_span(&t, 3, 2, 1, res, NULL, 0);
    halo_batch *b = tb_batch(&t);
    halo_agent_identity_apply(ai, b);
    CHECK_STR(c->d.agent_name, "A");
    CHECK_INT(c->d.fallback_mask, 0);
    CHECK_STR(c->d.span_type, "UNKNOWN");
    CHECK(c->d.model == NULL && c->d.tool_name == NULL);
    CHECK(c->d.input == NULL && c->d.output == NULL);
    CHECK(!c->d.has_input_tokens && !c->d.has_output_tokens);
    CHECK(!c->d.has_cost);
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(sub_agent_keeps_its_own_name_level)
{
    /* a child naming its agent by id only is not given the root's name */
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    tb t;
    tb_init(&t, 2);
    const halo_resource *res = tb_res(&t, NULL, 0);
    halo_kv root_kv[] = {S("gen_ai.agent.name", "orchestrator")};
    halo_kv own[] = {S("gen_ai.agent.id", "sub-1")};
    tb_span(&t, 4, 1, 0, res, root_kv, 1);
    halo_span *c = tb_span(&t, 4, 2, 1, res, own, 1);
    halo_batch *b = tb_batch(&t);
    halo_agent_identity_apply(ai, b);
    CHECK_STR(c->d.agent_id, "sub-1");
    CHECK_STR(c->d.agent_name, "sub-1");
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(root_in_another_chunk)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    tb t1, t2;
    tb_init(&t1, 1);
    tb_init(&t2, 1);
    halo_kv root_kv[] = {I("user.id", 42), S("session.id", "s-9")};
    halo_span *c = tb_span(&t1, 5, 2, 1, tb_res(&t1, NULL, 0), NULL, 0);
    tb_span(&t2, 5, 1, 0, tb_res(&t2, NULL, 0), root_kv, 2);
    halo_batch *b = tb_batch(&t1);
    halo_batch_add_chunk(b, t2.a, t2.spans, t2.n);
    CHECK_INT(halo_agent_identity_apply(ai, b), HALO_OK);
    CHECK_STR(c->d.user_id, "42");
    CHECK_STR(c->d.session_id, "s-9");
    CHECK_INT(c->d.fallback_mask, 0);
    /* copied into the child's own chunk, not pointing at the root's */
    CHECK(c->d.session_id != t2.spans[0].attrs.items[1].value.u.s.ptr);
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(many_traces_index)
{
    /* 3000 traces, children before roots, interleaved */
    enum { T = 3000 };
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    tb t;
    tb_init(&t, 2 * T);
    const halo_resource *res = tb_res(&t, NULL, 0);
    char(*ids)[16] = malloc(T * sizeof *ids);
    for (int i = 0; i < T; i++)
        tb_span(&t, i, 2, 1, res, NULL, 0);
    for (int i = T - 1; i >= 0; i--) {
        snprintf(ids[i], sizeof ids[i], "a-%d", i);
        halo_kv kv = S("agent.id", ids[i]);
        tb_span(&t, i, 1, 0, res, &kv, 1);
    }
    halo_batch *b = tb_batch(&t);
    halo_agent_identity_apply(ai, b);
    int bad = 0;
    for (int i = 0; i < T; i++)
        bad += !t.spans[i].d.agent_id ||
               strcmp(t.spans[i].d.agent_id, ids[i]) != 0;
    halo_batch_done(b, HALO_OK, "");
    free(ids);
    halo_agent_identity_free(ai);
    CHECK_INT(bad, 0);
}

/* ---- values ---------------------------------------------------------------
 */

TEST(integer_identity_values_become_text)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    halo_kv kvs[] = {I("user.id", -7), I("session.id", 123456789012345),
                     B("agent.id", true), S("gen_ai.agent.id", "")};
    halo_span *sp;
    halo_batch *b = derive_one(ai, kvs, N(kvs), &sp);
    CHECK_STR(sp->d.user_id, "-7");
    CHECK_STR(sp->d.session_id, "123456789012345");
    CHECK(sp->d.agent_id == NULL); /* bool and empty string are skipped */
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(chunk_without_arena_is_safe)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    halo_kv kvs[] = {I("user.id", 9), S("session.id", "s"),
                     I("input.value", 3)};
    halo_span sp;
    memset(&sp, 0, sizeof sp);
    sp.attrs.items = kvs;
    sp.attrs.n = N(kvs);
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, NULL, &sp, 1);
    CHECK_INT(halo_agent_identity_apply(ai, b), HALO_OK);
    CHECK(sp.d.user_id == NULL); /* needs building: left unset */
    CHECK(sp.d.input == NULL);
    CHECK_STR(sp.d.session_id, "s");
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(input_output_json_for_structured_values)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    halo_kv inner[] = {S("q", "a\"b"), I("n", 2)};
    halo_value arr_items[] = {{.type = HALO_VAL_BOOL, .u.b = true},
                              {.type = HALO_VAL_DOUBLE, .u.d = 1.5}};
    halo_kv in = {.key = "input.value"};
    in.value.type = HALO_VAL_KVLIST;
    in.value.u.kv.items = inner;
    in.value.u.kv.n = 2;
    halo_kv out = {.key = "gen_ai.tool.call.result"};
    out.value.type = HALO_VAL_ARRAY;
    out.value.u.arr.items = arr_items;
    out.value.u.arr.n = 2;
    halo_kv kvs[] = {in, out, S("output.value", "")};
    halo_span *sp;
    halo_batch *b = derive_one(ai, kvs, N(kvs), &sp);
    CHECK_STR(sp->d.input, "{\"q\":\"a\\\"b\",\"n\":2}");
    CHECK_STR(sp->d.output, ""); /* an empty string is a value here */
    halo_batch_done(b, HALO_OK, "");

    halo_kv kvs2[] = {out};
    b = derive_one(ai, kvs2, 1, &sp);
    CHECK_STR(sp->d.output, "[true,1.5]");
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

/* Input/output JSON is the stores' attribute encoding (core/json_attrs.h):
 * integral doubles keep ".0", bytes are base64, non-finite doubles are
 * strings. */
TEST(input_output_json_is_the_store_encoding)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    halo_value items[] = {v_dbl(2500.0), v_bytes("\xfb\xff", 2), v_dbl(NAN)};
    halo_kv kvs[] = {{.key = "input.value", .value = v_arr(items, 3)}};
    halo_span *sp;
    halo_batch *b = derive_one(ai, kvs, N(kvs), &sp);
    CHECK_STR(sp->d.input, "[2500.0,\"+/8=\",\"NaN\"]");
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

/* ---- span_type ----------------------------------------------------------- */

static const char *type_of(const halo_agent_identity *ai, const halo_kv *kvs,
                           size_t n, char *out, size_t outlen)
{
    halo_span *sp;
    halo_batch *b = derive_one(ai, kvs, n, &sp);
    snprintf(out, outlen, "%s", sp->d.span_type ? sp->d.span_type : "(null)");
    halo_batch_done(b, HALO_OK, "");
    return out;
}

TEST(span_type_from_openinference_kind)
{
    static const char *const kinds[][2] = {
        {"llm", "LLM"},
        {"tool", "TOOL"},
        {"agent", "AGENT"},
        {"chain", "CHAIN"},
        {"retriever", "RETRIEVER"},
        {"embedding", "EMBEDDING"},
        {"reranker", "RERANKER"},
        {"guardrail", "GUARDRAIL"},
        {"evaluator", "EVALUATOR"},
        {"Llm", "LLM"},
        {"CHAIN", "CHAIN"},
        {"my_kind", "MY_KIND"},
    };
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    char buf[64];
    for (size_t i = 0; i < N(kinds); i++) {
        halo_kv kv = S("openinference.span.kind", kinds[i][0]);
        CHECK_STR(type_of(ai, &kv, 1, buf, sizeof buf), kinds[i][1]);
    }
    /* the kind beats gen_ai.operation.name and tool.name */
    halo_kv both[] = {S("gen_ai.operation.name", "chat"), S("tool.name", "x"),
                      S("openinference.span.kind", "retriever")};
    CHECK_STR(type_of(ai, both, 3, buf, sizeof buf), "RETRIEVER");
    /* "unknown" says nothing: the next rule decides */
    halo_kv unk[] = {S("openinference.span.kind", "unknown"),
                     S("gen_ai.operation.name", "chat")};
    CHECK_STR(type_of(ai, unk, 2, buf, sizeof buf), "LLM");
    halo_agent_identity_free(ai);
}

TEST(span_type_from_genai_operation)
{
    static const char *const ops[][2] = {
        {"chat", "LLM"},
        {"text_completion", "LLM"},
        {"generate_content", "LLM"},
        {"execute_tool", "TOOL"},
        {"invoke_agent", "AGENT"},
        {"create_agent", "AGENT"},
        {"embeddings", "EMBEDDING"},
        {"retrieval", "RETRIEVER"},
        {"something_else", "UNKNOWN"},
    };
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    char buf[64];
    for (size_t i = 0; i < N(ops); i++) {
        halo_kv kv = S("gen_ai.operation.name", ops[i][0]);
        CHECK_STR(type_of(ai, &kv, 1, buf, sizeof buf), ops[i][1]);
    }
    /* an operation beats the tool rule */
    halo_kv kvs[] = {S("tool.name", "t"), S("gen_ai.operation.name", "chat")};
    CHECK_STR(type_of(ai, kvs, 2, buf, sizeof buf), "LLM");
    halo_agent_identity_free(ai);
}

TEST(span_type_tool_rule_and_unknown)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    char buf[64];
    halo_kv t1 = S("tool.name", "search");
    halo_kv t2 = S("gen_ai.tool.name", "search");
    halo_kv t3 = S("tool_call.function.name", "search");
    CHECK_STR(type_of(ai, &t1, 1, buf, sizeof buf), "TOOL");
    CHECK_STR(type_of(ai, &t2, 1, buf, sizeof buf), "TOOL");
    /* a tool call requested by an LLM does not make the span a TOOL */
    CHECK_STR(type_of(ai, &t3, 1, buf, sizeof buf), "UNKNOWN");
    CHECK_STR(type_of(ai, NULL, 0, buf, sizeof buf), "UNKNOWN");
    halo_agent_identity_free(ai);
}

/* ---- tokens and cost ------------------------------------------------------
 */

static const char *const in_tok_src[] = {
    "llm.token_count.prompt", "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens", "inference.llm.input_tokens"};
static const char *const out_tok_src[] = {
    "llm.token_count.completion", "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens", "inference.llm.output_tokens"};

TEST(tokens_from_every_key_and_type)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    for (int side = 0; side < 2; side++) {
        const char *const *src = side ? out_tok_src : in_tok_src;
        for (size_t k = 0; k < 4; k++) {
            halo_kv forms[] = {I(src[k], 12), D(src[k], 12.0), S(src[k], "12")};
            for (size_t f = 0; f < N(forms); f++) {
                halo_span *sp;
                halo_batch *b = derive_one(ai, &forms[f], 1, &sp);
                bool has =
                    side ? sp->d.has_output_tokens : sp->d.has_input_tokens;
                int64_t v = side ? sp->d.output_tokens : sp->d.input_tokens;
                bool other =
                    side ? sp->d.has_input_tokens : sp->d.has_output_tokens;
                halo_batch_done(b, HALO_OK, "");
                if (!has || v != 12 || other)
                    fprintf(stderr, "  %s form %zu\n", src[k], f);
                CHECK(has && v == 12 && !other);
            }
        }
    }
    halo_agent_identity_free(ai);
}

TEST(tokens_precedence_and_rejects)
{
    halo_agent_identity *ai = mk_ai(NULL, 0, false);
    /* invalid values are skipped in favour of the next key */
    halo_kv kvs[] = {D("llm.token_count.prompt", 12.5),
                     S("gen_ai.usage.input_tokens", "12a"),
                     I("gen_ai.usage.prompt_tokens", -1),
                     I("inference.llm.input_tokens", 77),
                     I("gen_ai.usage.output_tokens", 3),
                     I("llm.token_count.completion", 4)};
    halo_span *sp;
    halo_batch *b = derive_one(ai, kvs, N(kvs), &sp);
    CHECK(sp->d.has_input_tokens);
    CHECK_INT(sp->d.input_tokens, 77);
    CHECK(sp->d.has_output_tokens);
    CHECK_INT(sp->d.output_tokens, 4);
    halo_batch_done(b, HALO_OK, "");
    halo_kv bad[] = {S("llm.token_count.prompt", ""),
                     D("llm.token_count.completion", NAN)};
    b = derive_one(ai, bad, 2, &sp);
    CHECK(!sp->d.has_input_tokens && !sp->d.has_output_tokens);
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-12;
}

TEST(cost_from_attribute)
{
    const char *prices[] = {"m=1000/1000"};
    halo_agent_identity *ai = mk_ai(prices, 1, false);
    halo_kv forms[] = {D("llm.cost.total", 0.25), I("llm.cost.total", 2),
                       S("llm.cost.total", "0.5")};
    double want[] = {0.25, 2, 0.5};
    for (size_t f = 0; f < N(forms); f++) {
        /* the attribute beats the price table */
        halo_kv kvs[] = {forms[f], S("llm.model_name", "m"),
                         I("llm.token_count.prompt", 1000)};
        halo_span *sp;
        halo_batch *b = derive_one(ai, kvs, N(kvs), &sp);
        bool ok = sp->d.has_cost && near(sp->d.cost, want[f]);
        halo_batch_done(b, HALO_OK, "");
        CHECK(ok);
    }
    halo_kv bad = S("llm.cost.total", "cheap");
    halo_span *sp;
    halo_batch *b = derive_one(ai, &bad, 1, &sp);
    CHECK(!sp->d.has_cost);
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(cost_from_price_table)
{
    const char *prices[] = {"gpt-4o=2.50/10.00", "claude-*=3/15",
                            " claude-3-opus* = 15 / 75 "};
    halo_agent_identity *ai = mk_ai(prices, N(prices), false);
    CHECK(ai);
    static const struct {
        const char *model;
        double want; /* < 0: no cost */
    } cases[] = {
        {"gpt-4o", (1000 * 2.5 + 500 * 10.0) / 1e6},
        {"claude-3-5-sonnet", (1000 * 3.0 + 500 * 15.0) / 1e6},
        {"claude-3-opus-2024", (1000 * 15.0 + 500 * 75.0) / 1e6},
        {"gpt-4o-mini", -1}, /* exact entry: no prefix match */
        {"llama", -1},
    };
    for (size_t i = 0; i < N(cases); i++) {
        halo_kv kvs[] = {S("gen_ai.request.model", cases[i].model),
                         I("gen_ai.usage.input_tokens", 1000),
                         I("gen_ai.usage.output_tokens", 500)};
        halo_span *sp;
        halo_batch *b = derive_one(ai, kvs, N(kvs), &sp);
        bool ok = cases[i].want < 0
                      ? !sp->d.has_cost
                      : sp->d.has_cost && near(sp->d.cost, cases[i].want);
        if (!ok)
            fprintf(stderr, "  model %s: has=%d cost=%g\n", cases[i].model,
                    sp->d.has_cost, sp->d.cost);
        halo_batch_done(b, HALO_OK, "");
        CHECK(ok);
    }
    /* output tokens only */
    halo_kv kvs[] = {S("llm.model_name", "gpt-4o"),
                     I("llm.token_count.completion", 100000)};
    halo_span *sp;
    halo_batch *b = derive_one(ai, kvs, 2, &sp);
    CHECK(sp->d.has_cost && near(sp->d.cost, 1.0));
    halo_batch_done(b, HALO_OK, "");
    /* no tokens: no cost */
    halo_kv m = S("llm.model_name", "gpt-4o");
    b = derive_one(ai, &m, 1, &sp);
    CHECK(!sp->d.has_cost);
    halo_batch_done(b, HALO_OK, "");
    halo_agent_identity_free(ai);
}

TEST(bad_price_entries_rejected_at_create)
{
    static const char *const bad[] = {
        "gpt-4o",  "gpt-4o=abc/1", "=1/2", "gpt-4o=1", "gpt-4o=-1/2",
        "x=1/2/3", "y=1/",         "z=/1", "w=inf/1",
    };
    for (size_t i = 0; i < N(bad); i++) {
        const char *prices[] = {"ok=1/2", bad[i]};
        halo_agent_identity_cfg cfg = {{(char **)prices, 2}, false};
        halo_component self = {.def = &halo_processor_agent_identity,
                               .id = "agent_identity",
                               .log_prefix = "processor:agent_identity",
                               .cfg = &cfg};
        halo_err err = {{0}};
        halo_status st = self.def->create(&self, &err);
        if (st != HALO_EINVAL)
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        CHECK_INT(st, HALO_EINVAL);
        CHECK_CONTAINS(err.msg, bad[i]);
        CHECK_CONTAINS(err.msg, "invalid price entry");
        CHECK(self.ctx == NULL);
    }
    /* duplicates */
    const char *dup[] = {"a=1/2", "a = 3/4"};
    halo_agent_identity_cfg cfg = {{(char **)dup, 2}, false};
    halo_agent_identity *ai = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_agent_identity_new(&cfg, &ai, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "a = 3/4");
    CHECK(ai == NULL);
    /* an exact and a prefix entry for one name are distinct */
    const char *both[] = {"a=1/2", "a*=3/4"};
    cfg.prices.items = (char **)both;
    CHECK_INT(halo_agent_identity_new(&cfg, &ai, &err), HALO_OK);
    halo_agent_identity_free(ai);
}

/* ---- override --------------------------------------------------------------
 */

TEST(override_keeps_or_replaces_preset_fields)
{
    for (int ov = 0; ov < 2; ov++) {
        halo_agent_identity *ai = mk_ai(NULL, 0, ov);
        tb t;
        tb_init(&t, 1);
        halo_kv rk[] = {S("service.name", "svc")};
        halo_kv kvs[] = {S("agent.id", "derived"),
                         S("openinference.span.kind", "TOOL"),
                         I("llm.token_count.prompt", 5)};
        halo_span *sp = tb_span(&t, 1, 1, 0, tb_res(&t, rk, 1), kvs, 3);
        sp->d.agent_id = "preset";
        sp->d.user_id = "preset-user";
        sp->d.span_type = "LLM";
        sp->d.input_tokens = 1;
        sp->d.has_input_tokens = true;
        sp->d.fallback_mask = HALO_FB_AGENT_ID;
        halo_batch *b = tb_batch(&t);
        halo_agent_identity_apply(ai, b);
        CHECK_STR(sp->d.agent_id, ov ? "derived" : "preset");
        CHECK_STR(sp->d.user_id, "preset-user"); /* nothing to replace it */
        CHECK_STR(sp->d.span_type, ov ? "TOOL" : "LLM");
        CHECK_INT(sp->d.input_tokens, ov ? 5 : 1);
        CHECK_INT(sp->d.fallback_mask, ov ? 0 : HALO_FB_AGENT_ID);
        CHECK_STR(sp->d.agent_name, "derived"); /* was unset */
        CHECK_STR(sp->d.service_name, "svc");
        halo_batch_done(b, HALO_OK, "");
        halo_agent_identity_free(ai);
    }
}

/* ---- the component in a pipeline ------------------------------------------
 */

static halo_batch *seen_batch;
static size_t seen_spans;
static char seen_agent[64];

static halo_status sink_consume(halo_component *self, halo_batch *b)
{
    (void)self;
    seen_batch = b;
    seen_spans = b->n_spans;
    snprintf(seen_agent, sizeof seen_agent, "%s",
             b->head && b->head->n && b->head->spans[0].d.agent_id
                 ? b->head->spans[0].d.agent_id
                 : "");
    halo_batch_done(b, HALO_OK, "");
    return HALO_OK;
}

static halo_status ack_status = (halo_status)-1;
static void on_ack(void *ud, halo_status st, const char *msg)
{
    (void)ud;
    (void)msg;
    ack_status = st;
}

TEST(consume_derives_then_emits)
{
    static const halo_component_def sink_def = {
        .kind = HALO_EXPORTER, .type = "sink", .consume = sink_consume};
    halo_component sink = {.def = &sink_def, .id = "sink"};
    halo_component *next[] = {&sink};
    halo_agent_identity_cfg cfg = {{NULL, 0}, false};
    halo_component self = {.def = &halo_processor_agent_identity,
                           .id = "agent_identity",
                           .log_prefix = "processor:agent_identity",
                           .cfg = &cfg,
                           .next = next,
                           .n_next = 1};
    halo_err err = {{0}};
    CHECK_INT(self.def->create(&self, &err), HALO_OK);
    tb t;
    tb_init(&t, 1);
    halo_kv kv = S("agent.id", "pipeline-agent");
    tb_span(&t, 1, 1, 0, tb_res(&t, NULL, 0), &kv, 1);
    halo_batch *b = tb_batch(&t);
    halo_ack *ack = halo_ack_new(on_ack, NULL);
    halo_batch_add_ack(b, ack);
    halo_ack_unref(ack);
    CHECK_INT(self.def->consume(&self, b), HALO_OK);
    CHECK(seen_batch == b);
    CHECK_INT(seen_spans, 1);
    CHECK_STR(seen_agent, "pipeline-agent");
    CHECK_INT(ack_status, HALO_OK);
    self.def->shutdown(&self);
    self.def->destroy(&self);
}

/* ---- speed (printed, not asserted) ----------------------------------------
 */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

TEST(speed_100k_spans_15_attributes)
{
    enum { TRACES = 1000, PER = 100 };
    halo_agent_identity *ai =
        mk_ai((const char *[]){"gpt-4o*=2.5/10"}, 1, false);
    halo_kv rk[] = {S("service.name", "support-agent"),
                    S("telemetry.sdk.name", "opentelemetry"),
                    S("telemetry.sdk.language", "python")};
    halo_kv kvs[] = {S("http.method", "POST"),
                     S("llm.input_messages.0.message.role", "user"),
                     S("llm.input_messages.0.message.content", "hello"),
                     S("llm.output_messages.0.message.role", "assistant"),
                     S("openinference.span.kind", "LLM"),
                     S("llm.model_name", "gpt-4o-2024-08-06"),
                     I("llm.token_count.prompt", 1200),
                     I("llm.token_count.completion", 300),
                     I("llm.token_count.total", 1500),
                     S("input.value", "what is the weather"),
                     S("output.value", "sunny"),
                     S("llm.invocation_parameters", "{\"t\":0}"),
                     S("session.id", "sess-1"),
                     S("code.function", "run"),
                     S("net.peer.name", "api.openai.com")};
    CHECK_INT(N(kvs), 15);
    halo_batch *batches[TRACES];
    halo_span *last = NULL;
    for (int i = 0; i < TRACES; i++) { /* one request per trace */
        tb t;
        tb_init(&t, PER);
        const halo_resource *res = tb_res(&t, rk, N(rk));
        for (int s = PER; s >= 1; s--)
            last = tb_span(&t, i, s, s == 1 ? 0 : 1, res, kvs, N(kvs));
        batches[i] = tb_batch(&t);
    }
    double t0 = now_s();
    for (int i = 0; i < TRACES; i++)
        halo_agent_identity_apply(ai, batches[i]);
    double dt = now_s() - t0;
    printf("  agent_identity: %d spans (batches of %d) in %.3f s: %.0f "
           "spans/s\n",
           TRACES * PER, PER, dt, TRACES * PER / dt);
    CHECK_STR(last->d.span_type, "LLM");
    CHECK_STR(last->d.agent_id, "support-agent");
    CHECK(last->d.has_cost);
    /* the same spans again as one big merged batch */
    for (int i = 1; i < TRACES; i++)
        halo_batch_merge(batches[0], batches[i]);
    t0 = now_s();
    halo_agent_identity_apply(ai, batches[0]);
    dt = now_s() - t0;
    printf("  agent_identity: %d spans (one batch) in %.3f s: %.0f spans/s\n",
           TRACES * PER, dt, TRACES * PER / dt);
    halo_batch_done(batches[0], HALO_OK, "");
    halo_agent_identity_free(ai);
}

/* ---- the schema through the config loader ------------------------------- */

TEST(schema_via_yaml)
{
    const char *yaml = "prices: [\"gpt-4o=2.50/10.00\", \"claude-*=3/15\"]\n"
                       "override: true\n";
    halo_errlist errs = {0};
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    CHECK(root);
    halo_agent_identity_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    CHECK(halo_config_apply(halo_processor_agent_identity.schema, root, &cfg,
                            "processors.agent_identity", &errs));
    CHECK_INT(cfg.prices.n, 2);
    CHECK_STR(cfg.prices.items[1], "claude-*=3/15");
    CHECK(cfg.override);
    halo_agent_identity *ai = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_agent_identity_new(&cfg, &ai, &err), HALO_OK);
    double cost = 0;
    CHECK(halo_agent_identity_price(ai, "claude-3", 1000000, 0, &cost));
    CHECK(near(cost, 3.0));
    halo_agent_identity_free(ai);
    halo_config_release(halo_processor_agent_identity.schema, &cfg);
    halo_node_free(root);

    /* defaults: no prices, override false */
    memset(&cfg, 0, sizeof cfg);
    CHECK(halo_config_apply(halo_processor_agent_identity.schema, NULL, &cfg,
                            "processors.agent_identity", &errs));
    CHECK_INT(cfg.prices.n, 0);
    CHECK(!cfg.override);
    halo_config_release(halo_processor_agent_identity.schema, &cfg);
    CHECK_INT(errs.n, 0);
    halo_errlist_free(&errs);
}
