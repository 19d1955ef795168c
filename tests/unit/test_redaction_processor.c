/*
 * test_redaction_processor.c -- processors/redaction: secrets planted in
 * span, event, link and resource attributes, nested kvlists, input.value
 * and the derived fields are gone after the processor ran; everything else
 * is intact; allowed_keys keeps only what it lists; hash mode is keyed and
 * joinable; configuration mistakes are reported.
 *
 * Spans are built by hand in an arena (as test_agent_identity.c does),
 * wrapped into a batch and redacted with halo_redaction_apply() or through
 * the component's consume().
 */
#include "harness.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/component.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/service.h"
#include "processors/redaction.h"

#include <stdlib.h>

#define N(a) (sizeof(a) / sizeof *(a))

static const char email[] = "jane.doe@example.com";
static const char bearer[] = "Bearer abc123XYZ789token";
static const char password[] = "hunter2-correct-horse";

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

static halo_value vs(const char *s)
{
    halo_value v = {.type = HALO_VAL_STRING};
    v.u.s.ptr = s;
    v.u.s.len = strlen(s);
    return v;
}

static halo_value vi(int64_t i)
{
    halo_value v = {.type = HALO_VAL_INT};
    v.u.i = i;
    return v;
}

static halo_kv *kvs_copy(tb *t, const halo_kv *kvs, size_t n)
{
    halo_kv *items = halo_arena_alloc(t->a, n * sizeof *kvs);
    memcpy(items, kvs, n * sizeof *kvs);
    return items;
}

static halo_value vkv(tb *t, const halo_kv *kvs, size_t n)
{
    halo_value v = {.type = HALO_VAL_KVLIST};
    v.u.kv.items = kvs_copy(t, kvs, n);
    v.u.kv.n = n;
    return v;
}

static halo_attrs tb_attrs(tb *t, const halo_kv *kvs, size_t n)
{
    halo_attrs a = {NULL, n};
    if (n)
        a.items = kvs_copy(t, kvs, n);
    return a;
}

static halo_span *tb_span(tb *t, const halo_kv *kvs, size_t n,
                          const halo_kv *res_kvs, size_t n_res)
{
    static const halo_scope scope = {"", "", {NULL, 0}, 0, ""};
    halo_resource *r = halo_arena_calloc(t->a, 1, sizeof *r);
    r->attrs = tb_attrs(t, res_kvs, n_res);
    r->schema_url = "";
    halo_span *sp = &t->spans[t->n++];
    memset(sp, 0, sizeof *sp);
    sp->trace_id[15] = (uint8_t)t->n;
    sp->span_id[7] = (uint8_t)t->n;
    sp->name = "op";
    sp->trace_state = "";
    sp->status_message = "";
    sp->attrs = tb_attrs(t, kvs, n);
    sp->resource = r;
    sp->scope = &scope;
    return sp;
}

static void tb_event(tb *t, halo_span *sp, const char *name, const halo_kv *kvs,
                     size_t n)
{
    sp->events = halo_arena_calloc(t->a, 1, sizeof *sp->events);
    sp->events[0].name = name;
    sp->events[0].attrs = tb_attrs(t, kvs, n);
    sp->n_events = 1;
}

static halo_batch *tb_batch(tb *t)
{
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, t->a, t->spans, t->n);
    return b;
}

/* The standard planted span: every kind of place a secret can hide. */
static halo_span *planted(tb *t)
{
    halo_kv auth[] = {{"auth", vs(bearer)}, {"retries", vi(3)}};
    halo_kv http[] = {{"headers", vkv(t, auth, N(auth))},
                      {"method", vs("POST")}};
    halo_kv kvs[] = {
        {"llm.prompt", vs("use key sk-proj-AbCdEf1234567890GhIjKlMnOpQr now")},
        {"input.value", vs("pay with 4111 1111 1111 1111 please")},
        {"http", vkv(t, http, N(http))},
        {"password", vs(password)},
        {"gen_ai.request.model", vs("gpt-4o")},
        {"note", vs("hello world")},
        {"count", vi(42)},
        {"card.int", vi(4111111111111111LL)},
    };
    halo_kv res[] = {{"service.name", vs("checkout")},
                     {"owner.email", vs(email)}};
    halo_span *sp = tb_span(t, kvs, N(kvs), res, N(res));
    halo_kv ev[] = {{"user.email", vs(email)}, {"step", vs("login")}};
    tb_event(t, sp, "exception", ev, N(ev));
    sp->status_message = "failed for jane.doe@example.com";
    /* as if agent_identity had run: d.input points into the attribute */
    sp->d.input = sp->attrs.items[1].value.u.s.ptr;
    sp->d.user_id = halo_arena_strdup(t->a, email); /* not an attr's */
    sp->d.model = sp->attrs.items[4].value.u.s.ptr;
    return sp;
}

/* ---- helpers ------------------------------------------------------------ */

static halo_redaction *mk(halo_redaction_cfg *cfg)
{
    halo_redaction *rd = NULL;
    halo_err err = {{0}};
    if (halo_redaction_new(cfg, NULL, &rd, &err) != HALO_OK)
        fprintf(stderr, "  could not create: %s\n", err.msg);
    return rd;
}

static halo_redaction_cfg defaults_cfg(void)
{
    halo_redaction_cfg c = {.defaults = true, .typed = true};
    return c;
}

/* Every string anywhere in v appended to out (for "is it gone" checks). */
static void dump_value(const halo_value *v, halo_buf *out);
static void dump_kvs(const halo_kv *kv, size_t n, halo_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        halo_buf_printf(out, "%s=", kv[i].key);
        dump_value(&kv[i].value, out);
        halo_buf_putc(out, '\n');
    }
}
static void dump_value(const halo_value *v, halo_buf *out)
{
    switch (v->type) {
    case HALO_VAL_STRING:
    case HALO_VAL_BYTES:
        halo_buf_append(out, v->u.s.ptr, v->u.s.len);
        break;
    case HALO_VAL_INT:
        halo_buf_printf(out, "%lld", (long long)v->u.i);
        break;
    case HALO_VAL_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            dump_value(&v->u.arr.items[i], out);
        break;
    case HALO_VAL_KVLIST:
        dump_kvs(v->u.kv.items, v->u.kv.n, out);
        break;
    default:
        break;
    }
}

/* The whole span as text: attributes, resource, events, d fields. */
static char *dump_span(const halo_span *sp)
{
    halo_buf b = HALO_BUF_INIT;
    dump_kvs(sp->attrs.items, sp->attrs.n, &b);
    dump_kvs(sp->resource->attrs.items, sp->resource->attrs.n, &b);
    for (size_t i = 0; i < sp->n_events; i++) {
        halo_buf_printf(&b, "event %s\n", sp->events[i].name);
        dump_kvs(sp->events[i].attrs.items, sp->events[i].attrs.n, &b);
    }
    const char *d[] = {sp->d.input, sp->d.output, sp->d.user_id, sp->d.model,
                       sp->status_message};
    for (size_t i = 0; i < N(d); i++)
        halo_buf_printf(&b, "d%zu=%s\n", i, d[i] ? d[i] : "(null)");
    halo_buf_putc(&b, '\0');
    return halo_buf_steal(&b);
}

static const halo_value *get(const halo_attrs *a, const char *key)
{
    return halo_attrs_get(a, key);
}

static const char *str_of(const halo_value *v)
{
    return v && v->type == HALO_VAL_STRING ? v->u.s.ptr : NULL;
}

/* ---- mask --------------------------------------------------------------- */

TEST(siphash_reference_vectors)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* the SipHash paper's example and the reference vectors */
    CHECK(halo_siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
    CHECK(halo_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(halo_siphash24(key, msg, 1) == 0x74f839c593dc67fdull);
    CHECK(halo_siphash24(key, msg, 8) == 0x93f5f5799a932462ull);
}

TEST(mask_removes_planted_secrets)
{
    halo_redaction_cfg cfg = defaults_cfg();
    halo_redaction *rd = mk(&cfg);
    CHECK(rd);
    tb t;
    tb_init(&t, 1);
    halo_span *sp = planted(&t);
    halo_batch *b = tb_batch(&t);
    halo_redaction_stats st;
    halo_redaction_apply(rd, b, &st);
    char *all = dump_span(sp);
    int leaked = strstr(all, "AbCdEf1234567890") || strstr(all, "jane.doe") ||
                 strstr(all, "4111") || strstr(all, "abc123XYZ") ||
                 strstr(all, "hunter2");
    if (leaked)
        fprintf(stderr, "  leaked:\n%s", all);
    free(all);
    CHECK(!leaked);
    /* the replacements say what they were */
    CHECK_STR(str_of(get(&sp->attrs, "llm.prompt")),
              "use key [REDACTED:api_key] now");
    CHECK_STR(str_of(get(&sp->attrs, "input.value")),
              "pay with [REDACTED:card] please");
    CHECK_STR(str_of(get(&sp->attrs, "password")), "[REDACTED:secret]");
    CHECK_STR(str_of(get(&sp->resource->attrs, "owner.email")),
              "[REDACTED:email]");
    CHECK_STR(str_of(get(&sp->events[0].attrs, "user.email")),
              "[REDACTED:email]");
    /* the kvlist two levels down */
    const halo_value *http = get(&sp->attrs, "http");
    CHECK(http && http->type == HALO_VAL_KVLIST);
    const halo_value *hdr = &http->u.kv.items[0].value;
    CHECK(hdr->type == HALO_VAL_KVLIST);
    CHECK_STR(hdr->u.kv.items[0].value.u.s.ptr, "Bearer [REDACTED:bearer]");
    CHECK_INT(hdr->u.kv.items[1].value.u.i, 3);
    /* an integer card number became a string */
    CHECK_STR(str_of(get(&sp->attrs, "card.int")), "[REDACTED:card]");
    /* derived fields: input takes the rewritten attribute */
    CHECK(sp->d.input == get(&sp->attrs, "input.value")->u.s.ptr);
    CHECK_STR(sp->d.user_id, "[REDACTED:email]");
    CHECK_STR(sp->status_message, "failed for [REDACTED:email]");
    /* non-secrets untouched */
    CHECK_STR(str_of(get(&sp->attrs, "gen_ai.request.model")), "gpt-4o");
    CHECK_STR(sp->d.model, "gpt-4o");
    CHECK_STR(str_of(get(&sp->attrs, "note")), "hello world");
    CHECK_INT(get(&sp->attrs, "count")->u.i, 42);
    CHECK_STR(str_of(get(&sp->resource->attrs, "service.name")), "checkout");
    CHECK_STR(str_of(get(&sp->events[0].attrs, "step")), "login");
    CHECK_STR(sp->events[0].name, "exception");
    CHECK_INT(sp->attrs.n, 8);
    /* api key, card, bearer, password, card.int, resource email, event
     * email, user_id, status message: d.input is not counted twice */
    CHECK_INT(st.redactions, 9);
    CHECK_INT(st.spans, 1);
    CHECK_INT(st.dropped_attrs, 0);
    halo_batch_done(b, HALO_OK, "");
    halo_redaction_free(rd);
}

TEST(untyped_mask_and_user_patterns_and_keys)
{
    char *pats[] = {"ORD-[0-9]{8}"};
    char *keys[] = {"ssn"};
    halo_redaction_cfg cfg = {.defaults = false,
                              .typed = false,
                              .blocked_values = {pats, 1},
                              .blocked_keys = {keys, 1}};
    halo_redaction *rd = mk(&cfg);
    CHECK(rd);
    tb t;
    tb_init(&t, 1);
    halo_kv kvs[] = {{"order", vs("ref ORD-12345678 shipped")},
                     {"customer.SSN", vs("123-45-6789")},
                     {"mail", vs(email)},
                     {"password", vs("kept-without-defaults")}};
    halo_span *sp = tb_span(&t, kvs, N(kvs), NULL, 0);
    halo_batch *b = tb_batch(&t);
    halo_redaction_apply(rd, b, NULL);
    CHECK_STR(str_of(get(&sp->attrs, "order")), "ref [REDACTED] shipped");
    CHECK_STR(str_of(get(&sp->attrs, "customer.SSN")), "[REDACTED]");
    /* defaults off: no e-mail detector, no default keys */
    CHECK_STR(str_of(get(&sp->attrs, "mail")), email);
    CHECK_STR(str_of(get(&sp->attrs, "password")), "kept-without-defaults");
    halo_batch_done(b, HALO_OK, "");
    halo_redaction_free(rd);
}

TEST(depth_bound_masks_deep_values)
{
    halo_redaction_cfg cfg = defaults_cfg();
    halo_redaction *rd = mk(&cfg);
    CHECK(rd);
    tb t;
    tb_init(&t, 1);
    halo_kv leaf = {"deep", vs("plain text")};
    halo_value v = vkv(&t, &leaf, 1);
    for (int i = 0; i < 60; i++) {
        halo_kv k = {"n", v};
        v = vkv(&t, &k, 1);
    }
    halo_kv top = {"tree", v};
    halo_span *sp = tb_span(&t, &top, 1, NULL, 0);
    halo_batch *b = tb_batch(&t);
    halo_redaction_stats st;
    halo_redaction_apply(rd, b, &st);
    const halo_value *cur = &sp->attrs.items[0].value;
    int depth = 0;
    while (cur->type == HALO_VAL_KVLIST && depth < 100) {
        cur = &cur->u.kv.items[0].value;
        depth++;
    }
    CHECK(depth < 60);
    CHECK_STR(str_of(cur), "[REDACTED:secret]");
    CHECK_INT(st.redactions, 1);
    halo_batch_done(b, HALO_OK, "");
    halo_redaction_free(rd);
}

/* ---- allowed_keys ------------------------------------------------------- */

TEST(allowed_keys_keep_only_listed)
{
    char *allow[] = {"gen_ai.*", "input.value", "service.name"};
    halo_redaction_cfg cfg = defaults_cfg();
    cfg.allowed_keys = (halo_strlist){allow, N(allow)};
    halo_redaction *rd = mk(&cfg);
    CHECK(rd);
    tb t;
    tb_init(&t, 1);
    halo_kv kvs[] = {{"gen_ai.request.model", vs("gpt-4o")},
                     {"gen_ai.prompt", vs("mail jane.doe@example.com")},
                     {"input.value", vs("hi")},
                     {"input.value.extra", vs("dropped: exact key only")},
                     {"note", vs("dropped")},
                     {"gen_ai", vs("dropped: the prefix needs its dot")}};
    halo_kv res[] = {{"service.name", vs("svc")}, {"host.name", vs("h1")}};
    halo_span *sp = tb_span(&t, kvs, N(kvs), res, N(res));
    halo_kv ev[] = {{"gen_ai.choice", vs("ok")}, {"other", vs("x")}};
    tb_event(&t, sp, "ev", ev, N(ev));
    sp->d.output = kvs[4].value.u.s.ptr; /* derived from a dropped key */
    halo_batch *b = tb_batch(&t);
    halo_redaction_stats st;
    halo_redaction_apply(rd, b, &st);
    CHECK_INT(sp->attrs.n, 3);
    CHECK_STR(sp->attrs.items[0].key, "gen_ai.request.model");
    CHECK_STR(str_of(&sp->attrs.items[0].value), "gpt-4o");
    CHECK_STR(sp->attrs.items[1].key, "gen_ai.prompt");
    /* allowed values are still redacted */
    CHECK_STR(str_of(&sp->attrs.items[1].value), "mail [REDACTED:email]");
    CHECK_STR(sp->attrs.items[2].key, "input.value");
    CHECK_INT(sp->resource->attrs.n, 1);
    CHECK_STR(sp->resource->attrs.items[0].key, "service.name");
    CHECK_INT(sp->events[0].attrs.n, 1);
    CHECK_STR(sp->events[0].attrs.items[0].key, "gen_ai.choice");
    CHECK(sp->d.output == NULL);
    CHECK_INT(st.dropped_attrs, 5);
    CHECK_INT(st.redactions, 1);
    halo_batch_done(b, HALO_OK, "");
    halo_redaction_free(rd);
}

/* ---- hash --------------------------------------------------------------- */

static const char key_a[] = "000102030405060708090a0b0c0d0e0f";
static const char key_b[] = "ffeeddccbbaa99887766554433221100";

/* Redact one string attribute with action hash under key; the result is
 * copied into out. */
static void hash_one(const char *key, const char *text, char *out, size_t n)
{
    halo_redaction_cfg cfg = defaults_cfg();
    cfg.action = HALO_REDACT_HASH;
    cfg.hash_key = (char *)key;
    halo_redaction *rd = mk(&cfg);
    out[0] = '\0';
    if (!rd)
        return;
    tb t;
    tb_init(&t, 1);
    halo_kv kv = {"v", vs(text)};
    halo_span *sp = tb_span(&t, &kv, 1, NULL, 0);
    halo_batch *b = tb_batch(&t);
    halo_redaction_apply(rd, b, NULL);
    snprintf(out, n, "%s", sp->attrs.items[0].value.u.s.ptr);
    halo_batch_done(b, HALO_OK, "");
    halo_redaction_free(rd);
}

TEST(hash_is_keyed_and_joinable)
{
    char a1[256], a2[256], b1[256], other[256], two[256];
    hash_one(key_a, "mail jane.doe@example.com today", a1, sizeof a1);
    hash_one(key_a, "from jane.doe@example.com", a2, sizeof a2);
    hash_one(key_b, "mail jane.doe@example.com today", b1, sizeof b1);
    hash_one(key_a, "mail john.roe@example.com today", other, sizeof other);
    CHECK(!strstr(a1, "jane"));
    CHECK(!strncmp(a1, "mail [HASH:", 11));
    CHECK_INT(strlen(a1), strlen("mail [HASH:0123456789abcdef] today"));
    /* the same secret hashes the same in different texts */
    CHECK(!strncmp(a1 + 5, a2 + 5, 23));
    /* another key, another hash; another secret, another hash */
    CHECK(strcmp(a1, b1) != 0);
    CHECK(strcmp(a1, other) != 0);
    /* two secrets in one text: each hashed on its own, in place */
    hash_one(key_a, "x jane.doe@example.com y john.roe@example.com z", two,
             sizeof two);
    CHECK(!strncmp(two, "x ", 2));
    CHECK(!strncmp(two + 2, a1 + 5, 23));
    CHECK(!strncmp(two + 25, " y ", 3));
    CHECK(!strncmp(two + 28, other + 5, 23));
    CHECK_STR(two + 51, " z");
    /* the hash is SipHash-2-4 of the matched bytes under the key */
    uint8_t k[16];
    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    char expect[32];
    snprintf(expect, sizeof expect, "[HASH:%016llx]",
             (unsigned long long)halo_siphash24(k, email, strlen(email)));
    CHECK(!strncmp(a2 + 5, expect, 23));
    /* a text holding the internal sentinel byte is hashed whole */
    const char odd[] = "a\x1e jane.doe@example.com";
    char whole[64];
    hash_one(key_a, odd, whole, sizeof whole);
    snprintf(expect, sizeof expect, "[HASH:%016llx]",
             (unsigned long long)halo_siphash24(k, odd, strlen(odd)));
    CHECK_STR(whole, expect);
}

TEST(hash_blocked_key_whole_value)
{
    char h1[128], h2[128];
    halo_redaction_cfg cfg = defaults_cfg();
    cfg.action = HALO_REDACT_HASH;
    cfg.hash_key = (char *)key_a;
    halo_redaction *rd = mk(&cfg);
    CHECK(rd);
    tb t;
    tb_init(&t, 2);
    halo_kv kv1 = {"api_key", vs("plain-but-secret")};
    halo_kv kv2 = {"X-Api-Key", vs("plain-but-secret")};
    halo_span *s1 = tb_span(&t, &kv1, 1, NULL, 0);
    halo_span *s2 = tb_span(&t, &kv2, 1, NULL, 0);
    halo_batch *b = tb_batch(&t);
    halo_redaction_apply(rd, b, NULL);
    snprintf(h1, sizeof h1, "%s", s1->attrs.items[0].value.u.s.ptr);
    snprintf(h2, sizeof h2, "%s", s2->attrs.items[0].value.u.s.ptr);
    halo_batch_done(b, HALO_OK, "");
    halo_redaction_free(rd);
    CHECK(!strncmp(h1, "[HASH:", 6));
    CHECK_INT(strlen(h1), 23);
    CHECK_STR(h1, h2);
}

/* ---- configuration ------------------------------------------------------ */

TEST(config_errors)
{
    halo_redaction *rd = NULL;
    halo_err err = {{0}};
    char *bad[] = {"ok-[0-9]+", "broken[("};
    halo_redaction_cfg cfg = defaults_cfg();
    cfg.blocked_values = (halo_strlist){bad, 2};
    CHECK_INT(halo_redaction_new(&cfg, "processors.redaction/x", &rd, &err),
              HALO_EINVAL);
    CHECK(!rd);
    CHECK_CONTAINS(err.msg, "processors.redaction/x.blocked_values[1]: "
                            "invalid regular expression");
    cfg = defaults_cfg();
    cfg.action = HALO_REDACT_HASH;
    unsetenv("HALO_REDACTION_HASH_KEY");
    CHECK_INT(halo_redaction_new(&cfg, NULL, &rd, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "processors.redaction.hash_key: required when "
                            "action is hash");
    cfg.hash_key = "0011";
    CHECK_INT(halo_redaction_new(&cfg, NULL, &rd, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "hash_key: invalid key (expected 32 hex digits");
    cfg.hash_key = "zz0102030405060708090a0b0c0d0e0f";
    CHECK_INT(halo_redaction_new(&cfg, NULL, &rd, &err), HALO_EINVAL);
    /* the environment provides the key */
    cfg.hash_key = NULL;
    setenv("HALO_REDACTION_HASH_KEY", key_b, 1);
    CHECK_INT(halo_redaction_new(&cfg, NULL, &rd, &err), HALO_OK);
    unsetenv("HALO_REDACTION_HASH_KEY");
    halo_redaction_free(rd);
    char *allow[] = {"*"};
    cfg = defaults_cfg();
    cfg.allowed_keys = (halo_strlist){allow, 1};
    CHECK_INT(halo_redaction_new(&cfg, NULL, &rd, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "allowed_keys[0]");
}

/* Through halo.yaml: schema errors carry file:line, create errors name the
 * key path (create has no node to point at). */
static char *build_errors(const char *yaml)
{
    halo_errlist errs = {0}, warns = {0};
    halo_buf out = HALO_BUF_INIT;
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    halo_service *svc = root ? halo_service_build(root, &errs, &warns) : NULL;
    for (size_t i = 0; i < errs.n; i++)
        halo_buf_printf(&out, "%s\n", errs.msgs[i]);
    halo_service_free(svc);
    halo_node_free(root);
    halo_errlist_free(&errs);
    halo_errlist_free(&warns);
    halo_buf_putc(&out, '\0');
    return halo_buf_steal(&out);
}

#define YAML_HEAD                                                              \
    "receivers:\n  otlp:\n    protocols:\n      http: {}\n"                    \
    "exporters:\n  debug: {}\n"                                                \
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n"           \
    "      processors: [redaction]\n      exporters: [debug]\n"                \
    "processors:\n  redaction:\n"

TEST(config_errors_through_the_service)
{
    char *e = build_errors(YAML_HEAD "    action: scramble\n");
    CHECK_CONTAINS(e, "t.yaml:15:");
    CHECK_CONTAINS(e, "action");
    free(e);
    e = build_errors(YAML_HEAD "    blocked_values: ['a(']\n");
    CHECK_CONTAINS(e, "processors.redaction.blocked_values[0]: invalid "
                      "regular expression");
    free(e);
    unsetenv("HALO_REDACTION_HASH_KEY");
    e = build_errors(YAML_HEAD "    action: hash\n");
    CHECK_CONTAINS(e, "processors.redaction.hash_key: required");
    free(e);
    e = build_errors(YAML_HEAD
                     "    action: hash\n"
                     "    hash_key: 000102030405060708090a0b0c0d0e0f\n"
                     "    allowed_keys: ['gen_ai.*']\n");
    CHECK_STR(e, "");
    free(e);
}

/* ---- the component ------------------------------------------------------ */

static halo_batch *seen_batch;
static char seen_value[128];

static halo_status sink_consume(halo_component *self, halo_batch *b)
{
    (void)self;
    seen_batch = b;
    const halo_value *v =
        b->head && b->head->n
            ? halo_attrs_get(&b->head->spans[0].attrs, "llm.prompt")
            : NULL;
    snprintf(seen_value, sizeof seen_value, "%s",
             v && v->type == HALO_VAL_STRING ? v->u.s.ptr : "");
    halo_batch_done(b, HALO_OK, "");
    return HALO_OK;
}

TEST(consume_redacts_counts_and_emits)
{
    static const halo_component_def sink_def = {
        .kind = HALO_EXPORTER, .type = "sink", .consume = sink_consume};
    halo_component sink = {.def = &sink_def, .id = "sink"};
    halo_component *next[] = {&sink};
    halo_redaction_cfg cfg = defaults_cfg();
    halo_component self = {.def = &halo_processor_redaction,
                           .id = "redaction/t",
                           .log_prefix = "processor:redaction/t",
                           .cfg = &cfg,
                           .next = next,
                           .n_next = 1};
    CHECK(halo_component_find(HALO_PROCESSOR, "redaction") ==
          &halo_processor_redaction);
    halo_err err = {{0}};
    CHECK_INT(self.def->create(&self, &err), HALO_OK);
    tb t;
    tb_init(&t, 2);
    planted(&t);
    planted(&t);
    halo_batch *b = tb_batch(&t);
    CHECK_INT(self.def->consume(&self, b), HALO_OK);
    CHECK(seen_batch == b);
    CHECK_STR(seen_value, "use key [REDACTED:api_key] now");
    halo_buf m = HALO_BUF_INIT;
    halo_metrics_render(&m);
    halo_buf_putc(&m, '\0');
    int ok = strstr(m.data, "halo_processor_redactions_total{processor="
                            "\"redaction/t\"} 18") &&
             strstr(m.data, "halo_processor_redacted_spans_total{processor="
                            "\"redaction/t\"} 2");
    if (!ok)
        fprintf(stderr, "%s", m.data);
    halo_buf_free(&m);
    self.def->destroy(&self);
    CHECK(ok);
}
