/*
 * test_redact.c -- redaction before text is sent to a model
 * (analyzer/redact.h): every built-in kind with what must stay, secret
 * keys in text and JSON trees at depth, the analyzer.redaction config
 * (custom keys and patterns, errors), NULs and invalid UTF-8, the
 * fixed-point guarantee (redacting twice changes nothing; a secret joined
 * by two replacements is caught), threads, and the cost on span-sized
 * texts (printed, not asserted).
 */
#include "analyzer/redact.h"
#include "harness.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static halo_redactor *defaults(void)
{
    halo_redactor *r = NULL;
    halo_err err = {{0}};
    if (halo_redactor_new(NULL, &r, &err) != HALO_OK) {
        fprintf(stderr, "  halo_redactor_new: %s\n", err.msg);
        return NULL;
    }
    return r;
}

/* Redacted s (static buffer) and its count; checks idempotence on the
 * way: redacting the result again must change nothing. */
static char result[8192];
static size_t redacted;
static const char *red(const halo_redactor *r, const char *s)
{
    size_t n = 0, n2 = 99;
    char *o = halo_redact_text(r, s, strlen(s), &n);
    if (!o)
        return "(oom)";
    char *o2 = halo_redact_text(r, o, strlen(o), &n2);
    if (!o2 || strcmp(o, o2) != 0 || n2 != 0 ||
        halo_redact_scan(r, o, strlen(o)) != 0) {
        snprintf(result, sizeof result, "(not idempotent: \"%s\" -> \"%s\")", o,
                 o2 ? o2 : "(oom)");
    } else {
        snprintf(result, sizeof result, "%s", o);
    }
    free(o);
    free(o2);
    redacted = n;
    return result;
}

/* Each text redacts to its expected output. */
typedef struct pair {
    const char *in, *out;
} pair;

static int check_pairs(const halo_redactor *r, const pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = red(r, p[i].in);
        if (strcmp(got, p[i].out) != 0) {
            fprintf(stderr, "  \"%s\"\n    -> \"%s\"\n    expected \"%s\"\n",
                    p[i].in, got, p[i].out);
            return 0;
        }
    }
    return 1;
}

/* Each text is left as it is, with no redaction counted. */
static int check_kept(const halo_redactor *r, const char *const *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = red(r, t[i]);
        if (strcmp(got, t[i]) != 0 || redacted != 0) {
            fprintf(stderr, "  \"%s\" was changed to \"%s\"\n", t[i], got);
            return 0;
        }
    }
    return 1;
}

#define N(a) (sizeof(a) / sizeof *(a))

TEST(api_keys)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const pair p[] = {
        {"key sk-proj-AbCdEf1234567890GhIjKlMnOpQr end",
         "key [REDACTED:api_key] end"},
        {"ANTHROPIC=sk-ant-api03-Xy12Ab34Cd56Ef78Gh90IjKlMnOp_q-Rs",
         "ANTHROPIC=[REDACTED:api_key]"},
        {"\"sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL\"",
         "\"[REDACTED:api_key]\""},
        {"id AKIAIOSFODNN7EXAMPLE.", "id [REDACTED:aws_key]."},
        {"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         "aws_secret_access_key=[REDACTED:secret]"},
        {"use ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 now",
         "use [REDACTED:api_key] now"},
        {"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
         "[REDACTED:api_key]"},
        {"slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx!",
         "slack [REDACTED:api_key]!"},
        {"k=AIzaSyA1234567890abcdefghijklmnopqrstuv&q=1",
         "k=[REDACTED:api_key]&q=1"},
        {"api_key: abc123def", "api_key: [REDACTED:secret]"},
        {"API-KEY = 'x y z'", "API-KEY = '[REDACTED:secret]'"},
        {"{\"apiKey\": \"v1\", \"n\": 2}",
         "{\"apiKey\": \"[REDACTED:secret]\", \"n\": 2}"},
        {"X-Api-Key: k3y\r\nHost: a",
         "X-Api-Key: [REDACTED:secret]\r\nHost: a"},
        {"OPENAI_API_KEY=abc", "OPENAI_API_KEY=[REDACTED:secret]"},
    };
    CHECK(check_pairs(r, p, N(p)));
    static const char *const kept[] = {
        "task-scheduler-configuration-manager-01",
        "sk-learn-preprocessing-pipelines-and-more",
        "disk-1234567890abcdefghijklmnop",
        "AKIA1234",
        "XAKIAIOSFODNN7EXAMPLE",
        "max_tokens: 100, tokenizer=cl100k, monkey: 3",
        "model gpt-4o-mini and claude-3-5-sonnet-20241022",
        "ghp_short",
        "xoxb-abcdefghijklmnop",
    };
    CHECK(check_kept(r, kept, N(kept)));
    halo_redactor_free(r);
}

TEST(bearer_basic_jwt)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const pair p[] = {
        {"curl -H 'x: Bearer abc123XYZ789token' url",
         "curl -H 'x: Bearer [REDACTED:bearer]' url"},
        {"Authorization: Bearer abc123", "Authorization: [REDACTED:secret]"},
        {"{\"authorization\":\"Basic dXNlcjpwYXNzd29yZA==\"}",
         "{\"authorization\":\"[REDACTED:secret]\"}"},
        {"sent Basic dXNlcjpwYXNzd29yZA== to it",
         "sent Basic [REDACTED:basic_auth] to it"},
        {"t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0."
         "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk ok",
         "t=[REDACTED:jwt] ok"},
        {"unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. done",
         "unsigned [REDACTED:jwt] done"},
    };
    CHECK(check_pairs(r, p, N(p)));
    static const char *const kept[] = {
        "the bearer instrument is payable to the bearer",
        "a basic idea, Basic functionality, basic setup",
        "Basic abcd", /* decodes to no "user:password" */
        "eyJ alone and eyJhbGci.notjwt",
    };
    CHECK(check_kept(r, kept, N(kept)));
    halo_redactor_free(r);
}

TEST(emails)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const pair p[] = {
        {"contact john.doe+x@example.co.uk now",
         "contact [REDACTED:email] now"},
        {"<a@b.io>, c_d@e-f.com.", "<[REDACTED:email]>, [REDACTED:email]."},
        {"mailto:bob@example.org", "mailto:[REDACTED:email]"},
    };
    CHECK(check_pairs(r, p, N(p)));
    CHECK_INT(halo_redact_scan(r, "x a@b.io y c@d.fr", 17), 2);
    static const char *const kept[] = {
        "user@localhost", "npm i @scope/pkg",
        "pkg@1.2.3",      "claude-3-5-sonnet@20240620",
        "a @ b.com",      "@@",
        "x@.com",
    };
    CHECK(check_kept(r, kept, N(kept)));
    halo_redactor_free(r);
}

TEST(card_numbers)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const pair p[] = {
        {"card 4111 1111 1111 1111 exp", "card [REDACTED:card] exp"},
        {"4111-1111-1111-1111", "[REDACTED:card]"},
        {"n=4111111111111111;", "n=[REDACTED:card];"},
        {"amex 378282246310005", "amex [REDACTED:card]"},
        {"mc:5555555555554444,4012888888881881",
         "mc:[REDACTED:card],[REDACTED:card]"},
    };
    CHECK(check_pairs(r, p, N(p)));
    static const char *const kept[] = {
        "order 4111111111111112 shipped", /* fails Luhn */
        "order 1234567812345678 shipped", /* fails Luhn */
        "t=1763812345678901234 ns",       /* a timestamp, issuer 1 */
        "ms 1763812345678",               /* a timestamp in ms */
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "uuid 41111111-1111-1111-1111-111111111111",
        "at 2026-11-16T09:00:00.123456789Z",
        "plain 42, 3.14159, 4111111111111111111111 (22 digits)",
        "4111 1111 1111 111x",
        "1.4111111111111111",
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    };
    CHECK(check_kept(r, kept, N(kept)));
    halo_redactor_free(r);
}

TEST(private_keys_and_url_passwords)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const pair p[] = {
        {"k=-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1\nabc=\n"
         "-----END RSA PRIVATE KEY-----\nafter",
         "k=[REDACTED:private_key]\nafter"},
        {"-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nMIIE",
         "[REDACTED:private_key]"},
        {"postgres://halo:s3cret@db:5432/x", "postgres://halo:"
                                             "[REDACTED:url_password]@db:5432/"
                                             "x"},
        {"redis://:p@ss@cache/0", "redis://:[REDACTED:url_password]@cache/0"},
    };
    CHECK(check_pairs(r, p, N(p)));
    static const char *const kept[] = {
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "http://host:8080/a@b",
        "https://example.com/path?q=1",
        "ssh://host.example.com:22/x",
    };
    CHECK(check_kept(r, kept, N(kept)));
    halo_redactor_free(r);
}

TEST(secret_keys_in_text)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const pair p[] = {
        {"{\"password\": \"hunter2\", \"user\": \"bob\"}",
         "{\"password\": \"[REDACTED:secret]\", \"user\": \"bob\"}"},
        {"{\\\"password\\\":\\\"p w\\\"}",
         "{\\\"password\\\":\\\"[REDACTED:secret]\\\"}"},
        {"GET /cb?access_token=abc&x=1",
         "GET /cb?access_token=[REDACTED:secret]"
         "&x=1"},
        {"Cookie: a=b; c=d\nX: y", "Cookie: [REDACTED:secret]\nX: y"},
        {"PASSWORD=pa:ss rest", "PASSWORD=[REDACTED:secret] rest"},
        {"{\"secret\": {\"value\": \"v\", \"n\": [1]}, \"k\": 1}",
         "{\"secret\": [REDACTED:secret], \"k\": 1}"},
        {"db.password = \"unterminated", "db.password = \"[REDACTED:secret]"},
        {"clientSecret: abc", "clientSecret: [REDACTED:secret]"},
    };
    CHECK(check_pairs(r, p, N(p)));
    static const char *const kept[] = {
        "{\"password\": null, \"token\": true, \"secret_name\": \"db\"}",
        "max_tokens=10 total_tokens: 5 tokenizer: x",
        "if token == other:",
        "password:",
    };
    CHECK(check_kept(r, kept, N(kept)));

    CHECK(halo_redact_is_secret_key(r, "X-Api-Key", 9));
    CHECK(
        halo_redact_is_secret_key(r, "http.request.header.authorization", 33));
    CHECK(halo_redact_is_secret_key(r, "openaiApiKey", 12));
    CHECK(halo_redact_is_secret_key(r, "refresh_token", 13));
    CHECK(halo_redact_is_secret_key(r, "SET-COOKIE", 10));
    CHECK(!halo_redact_is_secret_key(r, "max_tokens", 10));
    CHECK(!halo_redact_is_secret_key(r, "secretary", 9));
    CHECK(!halo_redact_is_secret_key(r, "passwordless", 12));
    CHECK(!halo_redact_is_secret_key(r, "monkey", 6));
    halo_redactor_free(r);
}

TEST(nothing_to_redact_is_unchanged)
{
    halo_redactor *r = defaults();
    CHECK(r);
    const char *t =
        "{\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":"
        "\"00f067aa0ba902b7\",\"start\":\"2026-11-16T09:00:00Z\","
        "\"start_time_unix_nano\":1763283600000000000,\"model\":"
        "\"gpt-4o-2024-08-06\",\"tool\":\"search\",\"args\":{\"q\":"
        "\"weather in Paris\",\"k\":5},\"usage\":{\"input_tokens\":1234},"
        "\"id\":\"550e8400-e29b-41d4-a716-446655440000\"}";
    CHECK_STR(red(r, t), t);
    CHECK_INT(redacted, 0);
    halo_redactor_free(r);
}

TEST(counts_nuls_and_invalid_utf8)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const char in[] = "a\0sk-proj-AbCdEf1234567890GhIjKlMnOpQr\0"
                             "\xff\xfe x@y.com \xc3";
    size_t olen = 0, n = 0;
    char *o = halo_redact_text_n(r, in, sizeof in - 1, &olen, &n);
    CHECK(o);
    static const char want[] = "a\0[REDACTED:api_key]\0"
                               "\xff\xfe [REDACTED:email] \xc3";
    CHECK_INT(olen, sizeof want - 1);
    CHECK(!memcmp(o, want, olen));
    CHECK_INT(o[olen], 0);
    CHECK_INT(n, 2);
    free(o);

    /* a NUL ends a token like any other separator: two pieces */
    static const char cut[] = "sk-proj-AbCdEf12\0"
                              "34567890GhIjKlMnOpQr";
    o = halo_redact_text_n(r, cut, sizeof cut - 1, &olen, &n);
    CHECK(o);
    CHECK_INT(n, 0);
    free(o);

    /* length is honoured: nothing past len is read or redacted */
    const char *s = "ok a@b.io";
    o = halo_redact_text(r, s, 4, &n);
    CHECK_STR(o, "ok a");
    CHECK_INT(n, 0);
    free(o);
    o = halo_redact_text(r, NULL, 0, &n);
    CHECK_STR(o, "");
    free(o);
    /* three kinds, four replacements */
    CHECK_STR(red(r, "a@b.io c@d.io 4111111111111111 password=x"),
              "[REDACTED:email] [REDACTED:email] [REDACTED:card] "
              "password=[REDACTED:secret]");
    CHECK_INT(redacted, 4);
    halo_redactor_free(r);
}

/* analyzer.redaction from YAML into a redactor; *err gets its message. */
static halo_status from_yaml(const char *yaml, halo_redact_cfg *cfg,
                             halo_redactor **r, halo_err *err)
{
    halo_errlist errs = {0};
    memset(cfg, 0, sizeof *cfg);
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    halo_status st = HALO_EINVAL;
    if (!root) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "parse failed");
        goto cleanup;
    }
    const halo_node *an = halo_node_get(root, "analyzer");
    if (!halo_config_apply(halo_redact_schema, halo_node_get(an, "redaction"),
                           cfg, "analyzer.redaction", &errs)) {
        halo_errf(err, "%s", errs.msgs[0]);
        goto cleanup;
    }
    st = halo_redactor_new(cfg, r, err);
cleanup:
    halo_node_free(root);
    halo_errlist_free(&errs);
    return st;
}

TEST(config_keys_and_patterns)
{
    halo_redact_cfg cfg;
    halo_redactor *r = NULL;
    halo_err err = {{0}};
    const char *y = "analyzer:\n"
                    "  redaction:\n"
                    "    keys: [ssn, Pin-Code]\n"
                    "    patterns: ['ORD-[0-9]{8}', 'internal-[a-z]+']\n"
                    "    replacement: <hidden>\n"
                    "    typed: false\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_OK);
    CHECK(cfg.defaults);
    static const pair p[] = {
        {"ssn: 123-45-6789, pin_code=1234", "ssn: <hidden>, pin_code=<hidden>"},
        {"ref ORD-12345678 at internal-billing.", "ref <hidden> at <hidden>."},
        {"mail a@b.io password: <hidden>", "mail <hidden> password: <hidden>"},
        {"ORD-1234567", "ORD-1234567"},
    };
    CHECK(check_pairs(r, p, N(p)));
    halo_redactor_free(r);
    halo_config_release(halo_redact_schema, &cfg);

    /* defaults off: only what was asked for */
    y = "analyzer:\n  redaction:\n    defaults: false\n"
        "    patterns: ['ORD-[0-9]{8}']\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_OK);
    CHECK_STR(red(r, "a@b.io password=x ORD-12345678"),
              "a@b.io password=x [REDACTED:pattern]");
    halo_redactor_free(r);
    halo_config_release(halo_redact_schema, &cfg);

    /* no section: every default */
    CHECK_INT(from_yaml("analyzer: {}\n", &cfg, &r, &err), HALO_OK);
    CHECK(cfg.defaults && cfg.typed);
    CHECK_STR(cfg.replacement, "[REDACTED]");
    CHECK_STR(red(r, "a@b.io"), "[REDACTED:email]");
    halo_redactor_free(r);
    halo_config_release(halo_redact_schema, &cfg);

    /* unknown key, with its line */
    y = "analyzer:\n  redaction:\n    keyz: [a]\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "t.yaml:3");
    CHECK_CONTAINS(err.msg, "keyz");
    halo_config_release(halo_redact_schema, &cfg);
}

TEST(config_errors)
{
    halo_redact_cfg cfg;
    halo_redactor *r = NULL;
    halo_err err = {{0}};
    const char *y = "analyzer:\n  redaction:\n"
                    "    patterns: ['ok', 'fine', '(unclosed']\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_EINVAL);
    CHECK(!r);
    CHECK_CONTAINS(err.msg, "analyzer.redaction.patterns[2]: invalid regular "
                            "expression \"(unclosed\"");
    halo_config_release(halo_redact_schema, &cfg);

    y = "analyzer:\n  redaction:\n    keys: [ok, '']\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "analyzer.redaction.keys[1]: empty key");
    halo_config_release(halo_redact_schema, &cfg);

    /* a replacement that would itself be redacted never settles */
    y = "analyzer:\n  redaction:\n    replacement: x@example.com\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "analyzer.redaction.replacement");
    halo_config_release(halo_redact_schema, &cfg);
    y = "analyzer:\n  redaction:\n    patterns: ['RED']\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "redacted by a pattern");
    halo_config_release(halo_redact_schema, &cfg);
    y = "analyzer:\n  redaction:\n    replacement: ''\n";
    CHECK_INT(from_yaml(y, &cfg, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "must not be empty");
    halo_config_release(halo_redact_schema, &cfg);
}

TEST(fixed_point_and_fallback)
{
    /* "foo" -> "[R]", whose "]" then joins the "x" after it into a new
     * match: caught by the next pass */
    char *pats[] = {"foo", "\\]x"};
    halo_redact_cfg cfg = {.replacement = "[R]", .patterns = {pats, 2}};
    halo_redactor *r = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_redactor_new(&cfg, &r, &err), HALO_OK);
    CHECK_STR(red(r, "a foox b"), "a [R[R] b");
    CHECK_INT(redacted, 2);
    /* a text that keeps producing matches becomes one replacement */
    CHECK_STR(red(r, "]xxxxxxxxxxxx"), "[R]");
    CHECK(redacted >= 1);
    halo_redactor_free(r);

    /* NULL redactor: a plain copy */
    size_t n = 7;
    char *o = halo_redact_text(NULL, "a@b.io", 6, &n);
    CHECK_STR(o, "a@b.io");
    CHECK_INT(n, 0);
    free(o);
}

TEST(json_trees)
{
    halo_redactor *r = defaults();
    CHECK(r);
    static const struct {
        const char *in, *out;
        size_t n;
    } cases[] = {
        {"{\"headers\":{\"Authorization\":\"Bearer x\"}}",
         "{\"headers\":{\"Authorization\":\"[REDACTED:secret]\"}}", 1},
        {"{\"config\":{\"db\":{\"password\":\"p\",\"host\":\"h\"}}}",
         "{\"config\":{\"db\":{\"password\":\"[REDACTED:secret]\","
         "\"host\":\"h\"}}}",
         1},
        {"[{\"token\":\"t1\"},{\"nested\":[{\"api_key\":{\"a\":[1]}}]}]",
         "[{\"token\":\"[REDACTED:secret]\"},{\"nested\":[{\"api_key\":"
         "\"[REDACTED:secret]\"}]}]",
         2},
        {"{\"msg\":[\"mail a@b.io or c@d.io\",\"ok\"],\"n\":4111111111111111,"
         "\"m\":42,\"max_tokens\":100}",
         "{\"msg\":[\"mail [REDACTED:email] or [REDACTED:email]\",\"ok\"],"
         "\"n\":\"[REDACTED:card]\",\"m\":42,\"max_tokens\":100}",
         3},
        {"{\"password\":null,\"secret\":false,\"cookie\":1234}",
         "{\"password\":null,\"secret\":false,\"cookie\":\"[REDACTED:secret]"
         "\"}",
         1},
        {"{\"args\":\"{\\\"password\\\": \\\"pw\\\"}\"}",
         "{\"args\":\"{\\\"password\\\": \\\"[REDACTED:secret]\\\"}\"}", 1},
        {"\"top-level a@b.io\"", "\"top-level [REDACTED:email]\"", 1},
    };
    for (size_t i = 0; i < N(cases); i++) {
        json_error_t je;
        json_t *v = json_loads(cases[i].in, JSON_DECODE_ANY, &je);
        CHECK(v);
        size_t n = 0;
        halo_redact_json(r, v, &n);
        char *got =
            json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        if (strcmp(got, cases[i].out) != 0)
            fprintf(stderr, "  %s\n    -> %s\n", cases[i].in, got);
        CHECK_STR(got, cases[i].out);
        CHECK_INT(n, cases[i].n);
        /* and again: nothing left */
        n = 0;
        halo_redact_json(r, v, &n);
        CHECK_INT(n, 0);
        free(got);
        json_decref(v);
    }
    halo_redactor_free(r);
}

TEST(json_depth_and_scalars)
{
    halo_redactor *r = defaults();
    CHECK(r);
    /* 600 nested arrays around an e-mail: the deep part goes whole */
    json_t *root = json_array(), *cur = root;
    for (int i = 0; i < 600; i++) {
        json_t *a = json_array();
        json_array_append_new(cur, a);
        cur = a;
    }
    json_array_append_new(cur, json_string("a@b.io"));
    size_t n = 0;
    halo_redact_json(r, root, &n);
    CHECK(n >= 1);
    char *d = json_dumps(root, JSON_COMPACT);
    CHECK(d && !strstr(d, "a@b.io"));
    free(d);
    n = 0;
    halo_redact_json(r, root, &n);
    CHECK_INT(n, 0);
    json_decref(root);

    /* a top-level integer cannot be swapped for a string: left */
    json_t *i = json_integer(4111111111111111LL);
    n = 0;
    halo_redact_json(r, i, &n);
    CHECK_INT(json_integer_value(i), 4111111111111111LL);
    json_decref(i);
    /* an embedded NUL in a string */
    json_t *s = json_stringn("x\0a@b.io", 8);
    halo_redact_json(r, s, &n);
    CHECK_INT(json_string_length(s), 18);
    CHECK(!memcmp(json_string_value(s), "x\0[REDACTED:email]", 18));
    json_decref(s);
    halo_redactor_free(r);
}

typedef struct worker {
    const halo_redactor *r;
    int ok;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    const char *in = "Bearer abc123XYZ789token x a@b.io sk-proj-"
                     "AbCdEf1234567890GhIjKlMnOpQr 4111111111111111";
    const char *want = "Bearer [REDACTED:bearer] x [REDACTED:email] "
                       "[REDACTED:api_key] [REDACTED:card]";
    w->ok = 1;
    for (int i = 0; i < 300; i++) {
        char *o = halo_redact_text(w->r, in, strlen(in), NULL);
        if (!o || strcmp(o, want) != 0)
            w->ok = 0;
        free(o);
    }
    return NULL;
}

TEST(threads_share_a_redactor)
{
    halo_redactor *r = defaults();
    CHECK(r);
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){r, 0};
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        CHECK(w[i].ok);
    halo_redactor_free(r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A span-like 4 KiB text: JSON with words, numbers, ids, URLs. */
static void span_text(char *buf, size_t cap, unsigned seed, int dense)
{
    static const char *const words[] = {
        "the",   "agent",   "called", "search",  "tool",  "with",
        "query", "results", "error:", "retry",   "token", "usage",
        "model", "gpt-4o",  "Paris",  "weather", "ok",    "failed",
    };
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n,
                          "{\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
                          "\"url\":\"https://api.example.com/v1/x?a=1\","
                          "\"output\":\"");
    while (n + 64 < cap) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % 40;
        if (dense && k == 0)
            n += (size_t)snprintf(buf + n, cap - n, "bob%u@mail.example.com ",
                                  seed % 1000);
        else if (dense && k == 1)
            n += (size_t)snprintf(buf + n, cap - n, "4111111111111111 ");
        else if (dense && k == 2)
            n += (size_t)snprintf(buf + n, cap - n, "password=%u ", seed);
        else if (k < 5)
            n += (size_t)snprintf(buf + n, cap - n, "%u, ", seed);
        else
            n += (size_t)snprintf(buf + n, cap - n, "%s ",
                                  words[k % (sizeof words / sizeof *words)]);
    }
    snprintf(buf + n, cap - n, "\"}");
}

TEST(cost_on_span_sized_texts)
{
    enum { TEXTS = 2000, SIZE = 4096 };
    halo_redactor *r = defaults();
    CHECK(r);
    char *texts = malloc((size_t)TEXTS * SIZE);
    CHECK(texts);
    for (int dense = 0; dense < 2; dense++) {
        size_t total = 0, nred = 0;
        for (unsigned i = 0; i < TEXTS; i++)
            span_text(texts + (size_t)i * SIZE, SIZE, i, dense);
        double t0 = now_s();
        for (unsigned i = 0; i < TEXTS; i++) {
            const char *t = texts + (size_t)i * SIZE;
            size_t n = 0, len = strlen(t);
            char *o = halo_redact_text(r, t, len, &n);
            if (!o || (dense && !n))
                break;
            free(o);
            total += len;
            nred += n;
        }
        double dt = now_s() - t0;
        CHECK(total > (size_t)TEXTS * (SIZE - 100));
        fprintf(stderr,
                "  %s: %d texts, %.1f MB in %.3f s (%.1f MB/s, %.1f us "
                "each), %zu redactions\n",
                dense ? "with secrets" : "clean", TEXTS, (double)total / 1e6,
                dt, (double)total / 1e6 / dt, dt / TEXTS * 1e6, nred);
    }
    free(texts);
    halo_redactor_free(r);
}
