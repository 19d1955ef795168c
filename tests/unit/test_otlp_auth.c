/*
 * test_otlp_auth.c -- the OTLP receiver's bearer tokens (otlp_auth.c):
 * tokens file parsing (comments, allowlists, errors), tokens from the
 * environment, the constant-time check's answers (not its timing), the
 * agent allowlist filter on a decoded request, and that no error message
 * ever contains a token. The transports' use of it is covered end to end
 * by tests/e2e/auth.test.mjs.
 */
#include "harness.h"

#include "core/arena.h"
#include "core/metrics.h"
#include "receivers/otlp/otlp_auth.h"
#include "receivers/otlp/otlp_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOK_A "secret-token-A-0123456789"
#define TOK_B "secret-token-B-abcdefghij"
#define TOK_E1 "env-token-one"
#define TOK_E2 "env-token-two"

static char *write_tokens(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", halo_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

static otlp_auth_cfg file_cfg(char *path)
{
    otlp_auth_cfg c;
    memset(&c, 0, sizeof c);
    c.bearer_token_present = true;
    c.bearer_token.tokens_file = path;
    return c;
}

static otlp_auth_result check(const otlp_auth *a, const char *value,
                              const otlp_auth_token **tok)
{
    return otlp_auth_check(a, value, value ? strlen(value) : 0, tok);
}

/* Load must fail with a message containing want and none of the tokens. */
static bool fails_with(const otlp_auth_cfg *c, const char *want)
{
    otlp_auth *a = NULL;
    halo_err err = {{0}};
    halo_status st = otlp_auth_new(c, "otlp", "receiver:otlp", &a, &err);
    otlp_auth_free(a);
    if (st != HALO_EINVAL || a != NULL) {
        fprintf(stderr, "  expected EINVAL, got %d (%s)\n", (int)st, err.msg);
        return false;
    }
    if (!strstr(err.msg, want)) {
        fprintf(stderr, "  \"%s\" lacks \"%s\"\n", err.msg, want);
        return false;
    }
    const char *secrets[] = {TOK_A, TOK_B, TOK_E1, TOK_E2, "bad\x01tok"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(err.msg, secrets[i])) {
            fprintf(stderr, "  \"%s\" shows a token\n", err.msg);
            return false;
        }
    return true;
}

TEST(tokens_file_with_comments_and_allowlists)
{
    char *path = write_tokens(
        "tokens1", "# tenants\n"
                   "\n"
                   "   " TOK_A " agent-a, agent-c \r\n" TOK_B "   # anyone\n"
                   "  # indented comment\n");
    CHECK(path);
    otlp_auth_cfg c = file_cfg(path);
    otlp_auth *a = NULL;
    halo_err err = {{0}};
    CHECK_INT(otlp_auth_new(&c, "otlp", "receiver:otlp", &a, &err), HALO_OK);
    CHECK_INT(otlp_auth_count(a), 2);
    const otlp_auth_token *ta = NULL, *tb = NULL;
    CHECK_INT(check(a, "Bearer " TOK_A, &ta), OTLP_AUTH_OK);
    CHECK(ta && otlp_auth_token_restricted(ta));
    CHECK_INT(check(a, "bearer   " TOK_B "  ", &tb), OTLP_AUTH_OK);
    CHECK(tb && tb != ta && !otlp_auth_token_restricted(tb));
    /* the allowlist of A: agent-a and agent-c, trimmed */
    halo_span s[3];
    memset(s, 0, sizeof s);
    halo_kv kv[3] = {
        {"agent.id", {.type = HALO_VAL_STRING, .u.s = {"agent-c", 7}}},
        {"agent.id", {.type = HALO_VAL_STRING, .u.s = {"agent-b", 7}}},
        {"agent.id", {.type = HALO_VAL_STRING, .u.s = {"agent-a", 7}}},
    };
    for (int i = 0; i < 3; i++)
        s[i].attrs = (halo_attrs){&kv[i], 1};
    size_t n = 3;
    CHECK_INT(otlp_auth_filter(a, "http", ta, s, &n), 1);
    CHECK_INT(n, 2);
    CHECK(s[0].attrs.items == &kv[0] && s[1].attrs.items == &kv[2]);
    n = 2;
    CHECK_INT(otlp_auth_filter(a, "http", tb, s, &n), 0);
    CHECK_INT(n, 2);
    otlp_auth_free(a);
}

TEST(check_answers)
{
    char *path = write_tokens("tokens2", TOK_A "\n" TOK_B " x\n");
    CHECK(path);
    otlp_auth_cfg c = file_cfg(path);
    otlp_auth *a = NULL;
    halo_err err = {{0}};
    CHECK_INT(otlp_auth_new(&c, "otlp", "receiver:otlp", &a, &err), HALO_OK);
    const otlp_auth_token *t = (const otlp_auth_token *)1;
    CHECK_INT(check(a, NULL, &t), OTLP_AUTH_MISSING);
    CHECK(t == NULL);
    CHECK_INT(check(a, "", &t), OTLP_AUTH_MISSING);
    CHECK_INT(check(a, "   ", &t), OTLP_AUTH_MISSING);
    CHECK_INT(check(a, "Bearer", &t), OTLP_AUTH_INVALID);
    CHECK_INT(check(a, "Bearer ", &t), OTLP_AUTH_INVALID);
    CHECK_INT(check(a, TOK_A, &t), OTLP_AUTH_INVALID);
    CHECK_INT(check(a, "Basic " TOK_A, &t), OTLP_AUTH_INVALID);
    CHECK_INT(check(a, "BearerX " TOK_A, &t), OTLP_AUTH_INVALID);
    CHECK_INT(check(a, "Bearer secret-token-A-012345678", &t),
              OTLP_AUTH_INVALID); /* prefix */
    CHECK_INT(check(a, "Bearer " TOK_A "0", &t), OTLP_AUTH_INVALID);
    CHECK_INT(check(a, "Bearer secret-token-a-0123456789", &t),
              OTLP_AUTH_INVALID); /* case matters */
    CHECK_INT(check(a, "Bearer " TOK_A " " TOK_B, &t), OTLP_AUTH_INVALID);
    CHECK(t == NULL);
    /* longer than any slot */
    char big[OTLP_AUTH_MAX_TOKEN + 20];
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'x', sizeof big - 8);
    big[sizeof big - 1] = '\0';
    CHECK_INT(check(a, big, &t), OTLP_AUTH_INVALID);
    /* a value with an embedded NUL is compared by its length */
    const char nul[] = "Bearer " TOK_A "\0";
    CHECK_INT(otlp_auth_check(a, nul, sizeof nul - 1, &t), OTLP_AUTH_INVALID);
    CHECK_INT(otlp_auth_check(a, nul, sizeof nul - 2, &t), OTLP_AUTH_OK);
    CHECK_INT(check(a, "BEARER\t" TOK_B, &t), OTLP_AUTH_OK);
    CHECK(otlp_auth_token_restricted(t));
    otlp_auth_free(a);
}

TEST(env_tokens)
{
    setenv("HALO_TEST_AUTH_TOKENS", " " TOK_E1 ",, \n" TOK_E2 " ,", 1);
    otlp_auth_cfg c;
    memset(&c, 0, sizeof c);
    c.bearer_token_present = true;
    c.bearer_token.tokens_env = "HALO_TEST_AUTH_TOKENS";
    otlp_auth *a = NULL;
    halo_err err = {{0}};
    CHECK_INT(otlp_auth_new(&c, "otlp", "receiver:otlp", &a, &err), HALO_OK);
    CHECK_INT(otlp_auth_count(a), 2);
    const otlp_auth_token *t = NULL;
    CHECK_INT(check(a, "Bearer " TOK_E1, &t), OTLP_AUTH_OK);
    CHECK(!otlp_auth_token_restricted(t));
    CHECK_INT(check(a, "Bearer " TOK_E2, &t), OTLP_AUTH_OK);
    CHECK_INT(check(a, "Bearer " TOK_E1 "," TOK_E2, &t), OTLP_AUTH_INVALID);
    otlp_auth_free(a);

    /* file and env together */
    c.bearer_token.tokens_file = write_tokens("tokens3", TOK_A " agent-a\n");
    CHECK(c.bearer_token.tokens_file);
    CHECK_INT(otlp_auth_new(&c, "otlp", "receiver:otlp", &a, &err), HALO_OK);
    CHECK_INT(otlp_auth_count(a), 3);
    CHECK_INT(check(a, "Bearer " TOK_A, &t), OTLP_AUTH_OK);
    CHECK(otlp_auth_token_restricted(t));
    CHECK_INT(check(a, "Bearer " TOK_E2, &t), OTLP_AUTH_OK);
    otlp_auth_free(a);
    unsetenv("HALO_TEST_AUTH_TOKENS");
}

TEST(config_errors_hide_tokens)
{
    otlp_auth_cfg c = file_cfg(write_tokens("empty", "# only comments\n\n"));
    CHECK(fails_with(&c, "holds no token"));
    c = file_cfg(write_tokens("zero", ""));
    CHECK(fails_with(&c, "holds no token"));
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-file", halo_test_tmpdir());
    c = file_cfg(missing);
    CHECK(fails_with(&c, "could not open"));
    CHECK(fails_with(&c, "no-such-file"));
    if (geteuid() != 0) { /* root reads anything */
        char *p = write_tokens("unreadable", TOK_A "\n");
        CHECK(p && chmod(p, 0) == 0);
        c = file_cfg(p);
        CHECK(fails_with(&c, "could not open"));
    }
    c = file_cfg(write_tokens("dup", TOK_A " a\n# x\n" TOK_A "\n"));
    CHECK(fails_with(&c, "line 3: duplicate token (same as token 1)"));
    c = file_cfg(write_tokens("ctl", TOK_B "\nbad\x01tok\n"));
    CHECK(fails_with(&c, "line 2: token (7 bytes) has a character"));
    c = file_cfg(write_tokens("emptylist", TOK_B " , ,\n"));
    CHECK(fails_with(&c, "line 1: empty agent allowlist"));
    char longline[OTLP_AUTH_MAX_TOKEN + 8];
    memset(longline, 'k', OTLP_AUTH_MAX_TOKEN + 1);
    strcpy(longline + OTLP_AUTH_MAX_TOKEN + 1, "\n");
    c = file_cfg(write_tokens("long", longline));
    CHECK(fails_with(&c, "token of 513 bytes is longer than 512 bytes"));

    memset(&c, 0, sizeof c);
    CHECK(fails_with(&c, "auth: no method configured"));
    c.bearer_token_present = true;
    CHECK(fails_with(&c, "set tokens_file or tokens_env"));
    c.bearer_token.tokens_env = "HALO_TEST_AUTH_UNSET";
    unsetenv("HALO_TEST_AUTH_UNSET");
    CHECK(fails_with(&c, "environment variable HALO_TEST_AUTH_UNSET is "
                         "not set"));
    setenv("HALO_TEST_AUTH_DUP", TOK_E1 " " TOK_E1, 1);
    c.bearer_token.tokens_env = "HALO_TEST_AUTH_DUP";
    CHECK(fails_with(&c, "HALO_TEST_AUTH_DUP token 2: duplicate token"));
    setenv("HALO_TEST_AUTH_DUP", " , ", 1);
    CHECK(fails_with(&c, "HALO_TEST_AUTH_DUP holds no token"));
    unsetenv("HALO_TEST_AUTH_DUP");
}

/* The agent of a span by DESIGN §5's precedence, span before resource. */
TEST(span_agent_precedence)
{
    static const char req[] =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
        "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
        "\"scopeSpans\":[{\"spans\":["
        "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
        "\"spanId\":\"0102030405060701\",\"name\":\"a\",\"attributes\":["
        "{\"key\":\"agent.name\",\"value\":{\"stringValue\":\"named\"}},"
        "{\"key\":\"gen_ai.agent.id\",\"value\":{\"stringValue\":\"agent-"
        "a\"}}]},"
        "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
        "\"spanId\":\"0102030405060702\",\"name\":\"b\"},"
        "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
        "\"spanId\":\"0102030405060703\",\"name\":\"c\",\"attributes\":["
        "{\"key\":\"inference.agent_id\",\"value\":{\"intValue\":\"42\"}}]},"
        "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
        "\"spanId\":\"0102030405060704\",\"name\":\"d\",\"attributes\":["
        "{\"key\":\"agent.id\",\"value\":{\"stringValue\":\"agent-b\"}}]}"
        "]}]}]}";
    halo_arena *arena = halo_arena_new(0);
    CHECK(arena);
    halo_otlp_result res;
    halo_err err = {{0}};
    memset(&res, 0, sizeof res);
    halo_status st =
        halo_otlp_decode_json(req, sizeof req - 1, arena, &res, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  decode: %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(res.n, 4);
    char buf[32];
    CHECK_STR(otlp_auth_span_agent(&res.spans[0], buf, sizeof buf), "agent-a");
    CHECK_STR(otlp_auth_span_agent(&res.spans[1], buf, sizeof buf), "svc");
    CHECK_STR(otlp_auth_span_agent(&res.spans[2], buf, sizeof buf), "42");
    CHECK_STR(otlp_auth_span_agent(&res.spans[3], buf, sizeof buf), "agent-b");

    /* a token for svc and 42: keeps b and c, in order */
    char *path = write_tokens("tokens4", TOK_A " svc,42\n");
    CHECK(path);
    otlp_auth_cfg c = file_cfg(path);
    otlp_auth *a = NULL;
    CHECK_INT(otlp_auth_new(&c, "authtest", "receiver:otlp", &a, &err),
              HALO_OK);
    const otlp_auth_token *t = NULL;
    CHECK_INT(check(a, "Bearer " TOK_A, &t), OTLP_AUTH_OK);
    double before = 0;
    halo_metric *m =
        halo_counter("halo_receiver_auth_rejected_spans_total", "x",
                     "receiver=\"authtest\",transport=\"grpc\"");
    CHECK(m);
    before = halo_metric_value(m);
    size_t n = res.n;
    CHECK_INT(otlp_auth_filter(a, "grpc", t, res.spans, &n), 2);
    CHECK_INT(n, 2);
    CHECK_STR(res.spans[0].name, "b");
    CHECK_STR(res.spans[1].name, "c");
    CHECK(halo_metric_value(m) == before + 2);
    /* a span without any agent is not let through a restricted token */
    halo_span bare;
    memset(&bare, 0, sizeof bare);
    n = 1;
    CHECK_INT(otlp_auth_filter(a, "grpc", t, &bare, &n), 1);
    CHECK_INT(n, 0);
    /* no token: nothing filtered */
    n = 2;
    CHECK_INT(otlp_auth_filter(a, "grpc", NULL, res.spans, &n), 0);
    otlp_auth_free(a);
    halo_arena_free(arena);
}

/* Refusals are counted by transport and reason. */
TEST(refusals_counted)
{
    char *path = write_tokens("tokens5", TOK_A "\n");
    CHECK(path);
    otlp_auth_cfg c = file_cfg(path);
    otlp_auth *a = NULL;
    halo_err err = {{0}};
    CHECK_INT(otlp_auth_new(&c, "authcount", "receiver:otlp", &a, &err),
              HALO_OK);
    halo_metric *miss = halo_counter(
        "halo_receiver_auth_failures_total", "x",
        "receiver=\"authcount\",transport=\"http\",reason=\"missing\"");
    halo_metric *inv = halo_counter(
        "halo_receiver_auth_failures_total", "x",
        "receiver=\"authcount\",transport=\"grpc\",reason=\"invalid\"");
    CHECK(miss && inv);
    double m0 = halo_metric_value(miss), i0 = halo_metric_value(inv);
    otlp_auth_refused(a, "http", OTLP_AUTH_MISSING);
    otlp_auth_refused(a, "grpc", OTLP_AUTH_INVALID);
    otlp_auth_refused(a, "grpc", OTLP_AUTH_INVALID);
    CHECK(halo_metric_value(miss) == m0 + 1);
    CHECK(halo_metric_value(inv) == i0 + 2);
    otlp_auth_free(a);
}
