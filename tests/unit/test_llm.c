/*
 * test_llm.c -- the chat-completions client (analyzer/llm.h) against the
 * scripted server tests/llm_mock (binary halo-llm-mock, $HALO_LLM_MOCK),
 * started per test as a child process and stopped by PID.
 *
 * Each test writes a script of model turns, runs the client against it,
 * and reads back the mock's record of what the client sent. Decoding of
 * odd replies is also tested directly on halo_llm_decode_reply.
 */
#include "analyzer/llm.h"
#include "core/clock.h"
#include "core/log.h"
#include "harness.h"
#include "llm_mock.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY "sk-test-5ecret-DO-NOT-LEAK"

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

/* ---- helpers ----------------------------------------------------------------
 */

static halo_llm_cfg cfg_for(const char *base_url)
{
    halo_llm_cfg c = {0};
    c.base_url = (char *)base_url;
    c.model = "test-model";
    c.timeout = 10 * 1000000000ll;
    c.temperature = 0.2;
    c.max_tokens = 512;
    c.max_retries = 2;
    return c;
}

static json_t *conversation(void)
{
    return json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                     "You analyze traces.", "role", "user", "content",
                     "What failed?");
}

static json_t *weather_tools(void)
{
    return json_loads("[{\"type\":\"function\",\"function\":{\"name\":"
                      "\"get_weather\",\"description\":\"weather\","
                      "\"parameters\":{\"type\":\"object\",\"properties\":"
                      "{\"city\":{\"type\":\"string\"}}}}}]",
                      0, NULL);
}

/* A scripted 200 with this message object text. */
#define OK_TURN(msg)                                                           \
    "{\"status\":200,\"body\":{\"id\":\"chatcmpl-1\",\"model\":\"test-"        \
    "model\","                                                                 \
    "\"choices\":[{\"index\":0,\"message\":" msg ",\"finish_reason\":"         \
    "\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}}\n"

/* ---- tests -----------------------------------------------------------------
 */

TEST(plain_answer)
{
    llm_mock m;
    CHECK(llm_mock_start(&m, "plain",
                         OK_TURN("{\"role\":\"assistant\",\"content\":\"All "
                                 "good.\"}")));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    halo_status st = halo_llm_chat(c, msgs, NULL, &r, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_STR(r.content, "All good.");
    CHECK_STR(r.finish_reason, "stop");
    CHECK_STR(r.model, "test-model");
    CHECK_INT(r.prompt_tokens, 12);
    CHECK_INT(r.completion_tokens, 3);
    CHECK_INT(r.n_calls, 0);
    CHECK_INT(r.attempts, 1);
    CHECK_STR(json_string_value(json_object_get(r.message, "role")),
              "assistant");
    CHECK_STR(json_string_value(json_object_get(r.message, "content")),
              "All good.");
    halo_llm_reply_clear(&r);

    json_t *reqs = llm_mock_requests(&m);
    CHECK_INT(json_array_size(reqs), 1);
    json_t *q = json_array_get(reqs, 0);
    CHECK_STR(json_string_value(json_object_get(q, "path")),
              "/v1/chat/completions");
    json_t *hd = json_object_get(q, "headers");
    CHECK_STR(json_string_value(json_object_get(hd, "content-type")),
              "application/json");
    CHECK(!json_object_get(hd, "authorization")); /* no api_key, no header */
    json_t *b = json_object_get(q, "body");
    CHECK_STR(json_string_value(json_object_get(b, "model")), "test-model");
    CHECK(json_real_value(json_object_get(b, "temperature")) == 0.2);
    CHECK_INT(json_integer_value(json_object_get(b, "max_tokens")), 512);
    CHECK(json_is_false(json_object_get(b, "stream")));
    CHECK(!json_object_get(b, "tools"));
    CHECK(json_equal(json_object_get(b, "messages"), msgs));
    json_decref(reqs);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

/* Three turns: a call with string arguments, one with object arguments
 * and no id, then the answer -- which the llm_mock gives only when the
 * request carries the second tool result under the generated id. */
TEST(tool_call_round_trip)
{
    llm_mock m;
    CHECK(llm_mock_start(
        &m, "tools",
        OK_TURN("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
                "\"id\":\"call_abc\",\"type\":\"function\",\"function\":{"
                "\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": "
                "\\\"Paris\\\"}\"}}]}") //
        OK_TURN("{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{"
                "\"function\":{\"name\":\"get_weather\",\"arguments\":{"
                "\"city\":\"Oslo\"}}}]}") //
        "{\"expect\":{\"contains\":\"\\\"tool_call_id\\\":\\\"call_1\\\"\"},"
        "\"body\":{\"choices\":[{\"message\":{\"role\":\"assistant\","
        "\"content\":\"Paris 20C, Oslo 5C\"},\"finish_reason\":\"stop\"}]}}"
        "\n"));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    cfg.api_key = KEY;
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    json_t *tools = weather_tools();
    halo_llm_reply r;

    CHECK_INT(halo_llm_chat(c, msgs, tools, &r, &err), HALO_OK);
    CHECK_INT(r.n_calls, 1);
    CHECK_STR(r.calls[0].id, "call_abc");
    CHECK_STR(r.calls[0].name, "get_weather");
    CHECK_STR(r.calls[0].arguments, "{\"city\": \"Paris\"}");
    CHECK(r.calls[0].error == NULL);
    CHECK_STR(json_string_value(json_object_get(r.calls[0].args, "city")),
              "Paris");
    CHECK_STR(r.content, "");
    CHECK(json_is_null(json_object_get(r.message, "content")));
    json_array_append(msgs, r.message);
    json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "role", "tool",
                                          "tool_call_id", r.calls[0].id,
                                          "content", "20C"));
    halo_llm_reply_clear(&r);

    CHECK_INT(halo_llm_chat(c, msgs, tools, &r, &err), HALO_OK);
    CHECK_INT(r.n_calls, 1);
    CHECK_STR(r.calls[0].id, "call_1"); /* generated */
    CHECK_STR(r.calls[0].arguments, "{\"city\":\"Oslo\"}");
    CHECK_STR(json_string_value(json_object_get(r.calls[0].args, "city")),
              "Oslo");
    json_array_append(msgs, r.message);
    json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "role", "tool",
                                          "tool_call_id", r.calls[0].id,
                                          "content", "5C"));
    halo_llm_reply_clear(&r);

    halo_status st = halo_llm_chat(c, msgs, tools, &r, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_STR(r.content, "Paris 20C, Oslo 5C");
    CHECK_INT(r.prompt_tokens, -1); /* no usage */
    halo_llm_reply_clear(&r);

    json_t *reqs = llm_mock_requests(&m);
    CHECK_INT(json_array_size(reqs), 3);
    json_t *q = json_array_get(reqs, 2);
    CHECK_STR(json_string_value(json_object_get(json_object_get(q, "headers"),
                                                "authorization")),
              "Bearer " KEY);
    json_t *b = json_object_get(q, "body");
    CHECK(json_equal(json_object_get(b, "tools"), tools));
    /* the second assistant message went back with string arguments */
    json_t *am = json_array_get(json_object_get(b, "messages"), 4);
    json_t *fn = json_object_get(
        json_array_get(json_object_get(am, "tool_calls"), 0), "function");
    CHECK_STR(json_string_value(json_object_get(fn, "arguments")),
              "{\"city\":\"Oslo\"}");
    json_decref(reqs);
    json_decref(msgs);
    json_decref(tools);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

TEST(malformed_tool_arguments_are_for_the_model)
{
    llm_mock m;
    CHECK(llm_mock_start(
        &m, "malformed",
        OK_TURN("{\"role\":\"assistant\",\"tool_calls\":["
                "{\"id\":\"a\",\"function\":{\"name\":\"search\","
                "\"arguments\":\"{\\\"q\\\": \\\"tim\"}},"
                "{\"id\":\"b\",\"function\":{\"name\":\"search\","
                "\"arguments\":\"[1,2]\"}},"
                "{\"id\":\"c\",\"function\":{\"name\":\"list\","
                "\"arguments\":\"\"}}]}")));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_OK);
    CHECK_INT(r.n_calls, 3);
    CHECK(r.calls[0].args == NULL);
    CHECK_STR(r.calls[0].arguments, "{\"q\": \"tim");
    CHECK_CONTAINS(r.calls[0].error, "\"search\" are not valid JSON");
    CHECK(r.calls[1].args == NULL);
    CHECK_CONTAINS(r.calls[1].error, "an array, not a JSON object");
    CHECK(json_is_object(r.calls[2].args)); /* blank: no arguments */
    CHECK_INT(json_object_size(r.calls[2].args), 0);
    CHECK(r.calls[2].error == NULL);
    CHECK_INT(json_array_size(json_object_get(r.message, "tool_calls")), 3);
    halo_llm_reply_clear(&r);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

TEST(retry_after_is_honoured)
{
    llm_mock m;
    CHECK(llm_mock_start(
        &m, "429",
        "{\"status\":429,\"headers\":{\"Retry-After\":\"1\"},"
        "\"body\":{\"error\":{\"message\":\"rate limited\"}}}\n" //
        OK_TURN("{\"role\":\"assistant\",\"content\":\"ok\"}")));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    uint64_t t0 = now_ms();
    halo_status st = halo_llm_chat(c, msgs, NULL, &r, &err);
    uint64_t took = now_ms() - t0;
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(r.attempts, 2);
    CHECK_STR(r.content, "ok");
    CHECK(took >= 950);
    CHECK(took < 5000);
    halo_llm_reply_clear(&r);
    json_t *reqs = llm_mock_requests(&m);
    CHECK_INT(json_array_size(reqs), 2);
    json_decref(reqs);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

TEST(overloaded_server_gives_eretry)
{
    llm_mock m;
    const char *t503 = "{\"status\":503,\"body\":{\"error\":{\"message\":"
                       "\"overloaded\"}}}\n";
    char script[1024];
    snprintf(script, sizeof script, "%s%s%s%s", t503, t503, t503,
             OK_TURN("{\"content\":\"too late\"}"));
    CHECK(llm_mock_start(&m, "503", script));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_ERETRY);
    CHECK_CONTAINS(err.msg, "HTTP 503: overloaded");
    CHECK_CONTAINS(err.msg, "gave up after 3 attempts");
    CHECK(r.message == NULL && r.content == NULL);
    json_t *reqs = llm_mock_requests(&m);
    CHECK_INT(json_array_size(reqs), 3); /* max_retries 2: 3 attempts */
    json_decref(reqs);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

TEST(dropped_connection_is_retried)
{
    llm_mock m;
    CHECK(llm_mock_start(
        &m, "drop", "{\"drop\":true}\n" OK_TURN("{\"content\":\"back\"}")));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    halo_status st = halo_llm_chat(c, msgs, NULL, &r, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(r.attempts, 2);
    CHECK_STR(r.content, "back");
    halo_llm_reply_clear(&r);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

TEST(unreachable_server_gives_eretry_quickly)
{
    int port = closed_port();
    CHECK(port > 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    halo_llm_cfg cfg = cfg_for(url);
    cfg.max_retries = 1;
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    uint64_t t0 = now_ms();
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_ERETRY);
    uint64_t took = now_ms() - t0;
    CHECK_CONTAINS(err.msg, "could not reach http://127.0.0.1:");
    CHECK_CONTAINS(err.msg, "gave up after 2 attempts");
    CHECK(took < 3000); /* one backoff of at most 0.5 s */
    json_decref(msgs);
    halo_llm_free(c);
}

TEST(slow_server_times_out)
{
    llm_mock m;
    CHECK(llm_mock_start(&m, "slow",
                         "{\"delay_ms\":3000,\"body\":{\"choices\":[]}}\n"));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    cfg.timeout = 1000000000ll;
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    uint64_t t0 = now_ms();
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_ERETRY);
    uint64_t took = now_ms() - t0;
    CHECK(took >= 900 && took < 2500);
    CHECK_CONTAINS(err.msg, "imeout");
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

TEST(bad_request_gives_einval_with_the_servers_message)
{
    llm_mock m;
    CHECK(llm_mock_start(&m, "400",
                         "{\"status\":400,\"body\":{\"error\":{\"message\":"
                         "\"max_tokens is too large: 999999\",\"type\":"
                         "\"invalid_request_error\"}}}\n" //
                         OK_TURN("{\"content\":\"not reached\"}")));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "HTTP 400: max_tokens is too large: 999999");
    json_t *reqs = llm_mock_requests(&m);
    CHECK_INT(json_array_size(reqs), 1); /* not retried */
    json_decref(reqs);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

TEST(undecodable_reply_gives_einval)
{
    llm_mock m;
    CHECK(llm_mock_start(
        &m, "garbage",
        "{\"body\":\"<html>bad gateway</html>\"}\n"
        "{\"body\":{\"choices\":[{\"message\":{\"content\":7}}]}}"
        "\n"));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid reply from http://127.0.0.1:");
    CHECK_CONTAINS(err.msg, "reply is not JSON");
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg,
                   "choices[0].message.content is a number, expected a "
                   "string");
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

TEST(oversized_reply_gives_etoobig)
{
    size_t n = HALO_LLM_MAX_REPLY + 1024;
    char *script = malloc(n + 64);
    CHECK(script);
    int off = sprintf(script, "{\"body\":\"");
    memset(script + off, 'x', n);
    strcpy(script + off + n, "\"}\n");
    llm_mock m;
    bool started = llm_mock_start(&m, "big", script);
    free(script);
    CHECK(started);
    halo_llm_cfg cfg = cfg_for(m.base_url);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_ETOOBIG);
    CHECK_CONTAINS(err.msg, "over 8388608 bytes");
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

/* ---- the key ----------------------------------------------------------------
 */

/* A 401 that echoes the key (as some servers do), a 503 retried, then a
 * success: the key is in the Authorization header of each request, and in
 * no log line or error message; the extra headers are sent. */
TEST(api_key_is_sent_but_never_shown)
{
    llm_mock m;
    CHECK(llm_mock_start(
        &m, "key",
        "{\"status\":401,\"body\":{\"error\":{\"message\":"
        "\"Incorrect API key provided: " KEY "\"}}}\n"
        "{\"status\":503,\"headers\":{\"retry-after-ms\":\"200\"},"
        "\"body\":\"upstream " KEY " down\"}\n" //
        OK_TURN("{\"content\":\"fine\"}")));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    cfg.api_key = KEY;
    char *hdrs[] = {"X-Title: halo", "OpenAI-Organization: org-42"};
    cfg.headers.items = hdrs;
    cfg.headers.n = 2;
    halo_llm *c = NULL;
    halo_err err = {{0}}, err2 = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    halo_test_capture cp;
    int level = halo_log_min_level;
    CHECK(halo_test_capture_start(&cp, "key.log"));
    halo_log_set_level(HALO_LOG_DEBUG);
    halo_status st1 = halo_llm_chat(c, msgs, NULL, &r, &err);
    halo_status st2 = halo_llm_chat(c, msgs, NULL, &r, &err2);
    halo_log_set_level(level);
    char *log = halo_test_capture_end(&cp);
    CHECK(log);
    CHECK_INT(st1, HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "HTTP 401: Incorrect API key provided: ***");
    CHECK(!strstr(err.msg, KEY));
    if (st2 != HALO_OK)
        fprintf(stderr, "  %s\n", err2.msg);
    CHECK_INT(st2, HALO_OK);
    CHECK_INT(r.attempts, 2);
    halo_llm_reply_clear(&r);
    CHECK_CONTAINS(log, "[analyzer:llm] POST http://127.0.0.1:");
    CHECK_CONTAINS(log, "model test-model, 2 messages, 0 tools");
    CHECK_CONTAINS(log, "HTTP 401");
    CHECK_CONTAINS(log, "upstream *** down; retrying in 0.2 s");
    if (strstr(log, KEY) || strstr(log, "org-42"))
        fprintf(stderr, "  leaked:\n%s\n", log);
    CHECK(!strstr(log, KEY));
    CHECK(!strstr(log, "org-42"));
    free(log);

    json_t *reqs = llm_mock_requests(&m);
    CHECK_INT(json_array_size(reqs), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *hd = json_object_get(json_array_get(reqs, i), "headers");
        CHECK_STR(json_string_value(json_object_get(hd, "authorization")),
                  "Bearer " KEY);
        CHECK_STR(json_string_value(json_object_get(hd, "x-title")), "halo");
        CHECK_STR(json_string_value(json_object_get(hd, "openai-organization")),
                  "org-42");
    }
    json_decref(reqs);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}

/* ---- configuration
 * ----------------------------------------------------------- */

static void expect_bad(int *halo_test_failed, halo_llm_cfg cfg,
                       const char *needle)
{
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_EINVAL);
    CHECK(c == NULL);
    CHECK_CONTAINS(err.msg, needle);
}

TEST(bad_configs_are_refused)
{
    expect_bad(halo_test_failed, cfg_for(NULL), "llm.base_url is required");
    expect_bad(halo_test_failed, cfg_for("ftp://h/v1"), "http:// or https://");
    expect_bad(halo_test_failed, cfg_for("not a url"), "invalid llm.base_url");
    expect_bad(halo_test_failed, cfg_for("http://u:hunter2@h/v1"),
               "credentials do not belong");
    halo_err err = {{0}};
    halo_llm *c = NULL;
    halo_llm_cfg cfg = cfg_for("http://u:hunter2@h/v1");
    halo_llm_new(&cfg, &c, &err);
    CHECK(!strstr(err.msg, "hunter2"));
    expect_bad(halo_test_failed, cfg_for("http://h/v1?key=1"), "query");
    cfg = cfg_for("http://h/v1");
    cfg.model = "";
    expect_bad(halo_test_failed, cfg, "llm.model is required");
    char *bad1[] = {"NoColon"};
    cfg = cfg_for("http://h/v1");
    cfg.headers.items = bad1;
    cfg.headers.n = 1;
    expect_bad(halo_test_failed, cfg, "llm.headers[0]: expected");
    char *bad2[] = {"X-Ok: 1", "Bad Name: v"};
    cfg.headers.items = bad2;
    cfg.headers.n = 2;
    expect_bad(halo_test_failed, cfg, "llm.headers[1]");
    char *bad3[] = {"X-Ok: a\r\nInjected: 1"};
    cfg.headers.items = bad3;
    cfg.headers.n = 1;
    expect_bad(halo_test_failed, cfg, "line break");
    char *auth[] = {"authorization: Bearer other"};
    cfg.headers.items = auth;
    cfg.api_key = KEY;
    expect_bad(halo_test_failed, cfg, "Authorization is already sent");
    cfg.api_key = NULL; /* without a key, a custom Authorization is fine */
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *notarray = json_object();
    halo_llm_reply r;
    CHECK_INT(halo_llm_chat(c, notarray, NULL, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid messages");
    json_decref(notarray);
    halo_llm_free(c);
}

/* ---- decoding
 * ------------------------------------------------------------------ */

static halo_status decode(const char *s, halo_llm_reply *r, halo_err *err)
{
    return halo_llm_decode_reply(s, strlen(s), r, err);
}

TEST(decode_accepts_server_variants)
{
    halo_llm_reply r;
    halo_err err = {{0}};
    /* content parts; no usage; no finish_reason */
    CHECK_INT(decode("{\"choices\":[{\"message\":{\"content\":[{\"type\":"
                     "\"text\",\"text\":\"a\"},{\"type\":\"image_url\"},"
                     "{\"type\":\"text\",\"text\":\"b\"}]}}]}",
                     &r, &err),
              HALO_OK);
    CHECK_STR(r.content, "ab");
    CHECK(r.finish_reason == NULL);
    CHECK_INT(r.prompt_tokens, -1);
    CHECK_INT(r.completion_tokens, -1);
    halo_llm_reply_clear(&r);
    /* missing ids are generated in order; null arguments are none */
    CHECK_INT(decode("{\"choices\":[{\"message\":{\"tool_calls\":["
                     "{\"function\":{\"name\":\"a\",\"arguments\":null}},"
                     "{\"id\":\"\",\"function\":{\"name\":\"b\"}}]},"
                     "\"finish_reason\":\"tool_calls\"}]}",
                     &r, &err),
              HALO_OK);
    CHECK_INT(r.n_calls, 2);
    CHECK_STR(r.calls[0].id, "call_0");
    CHECK_STR(r.calls[1].id, "call_1");
    CHECK(json_is_object(r.calls[1].args));
    CHECK_STR(r.finish_reason, "tool_calls");
    json_t *tc = json_object_get(r.message, "tool_calls");
    CHECK_STR(
        json_string_value(json_object_get(
            json_object_get(json_array_get(tc, 0), "function"), "arguments")),
        "{}");
    halo_llm_reply_clear(&r);
    /* non-object arguments of the model's are its error, not ours */
    CHECK_INT(decode("{\"choices\":[{\"message\":{\"tool_calls\":["
                     "{\"function\":{\"name\":\"a\",\"arguments\":42}}]}}]}",
                     &r, &err),
              HALO_OK);
    CHECK(r.calls[0].args == NULL);
    CHECK_CONTAINS(r.calls[0].error, "a number, not a JSON object");
    halo_llm_reply_clear(&r);
}

TEST(decode_names_the_bad_field)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"", "reply is empty"},
        {"{\"choices\":", "reply is not JSON"},
        {"[1]", "reply is an array, expected a JSON object"},
        {"{}", "choices is missing"},
        {"{\"choices\":{}}", "choices is an object, expected an array"},
        {"{\"choices\":[]}", "choices is empty"},
        {"{\"choices\":[1]}", "choices[0] is a number"},
        {"{\"choices\":[{}]}", "choices[0].message is missing"},
        {"{\"choices\":[{\"message\":{\"tool_calls\":{}}}]}",
         "choices[0].message.tool_calls is an object"},
        {"{\"choices\":[{\"message\":{\"tool_calls\":[\"x\"]}}]}",
         "choices[0].message.tool_calls[0] is a string"},
        {"{\"choices\":[{\"message\":{\"tool_calls\":[{}]}}]}",
         "tool_calls[0].function is missing"},
        {"{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{}}]}}]}",
         "tool_calls[0].function.name is missing"},
        {"{\"choices\":[{\"message\":{},\"finish_reason\":1}]}",
         "choices[0].finish_reason is a number"},
        {"{\"error\":{\"message\":\"model not loaded\"}}",
         "the server answered with an error: model not loaded"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        halo_llm_reply r;
        halo_err err = {{0}};
        CHECK_INT(decode(cases[i].body, &r, &err), HALO_EINVAL);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        CHECK(r.message == NULL && r.calls == NULL && r.content == NULL);
    }
}

/* ---- halo.yaml
 * ------------------------------------------------------------------ */

static bool parse_llm(const char *yaml, halo_analyzer_config *cfg,
                      halo_errlist *errs)
{
    memset(cfg, 0, sizeof *cfg);
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", errs);
    bool ok = root && halo_analyzer_config_parse(root, cfg, errs);
    halo_node_free(root);
    return ok;
}

TEST(config_keys)
{
    halo_analyzer_config cfg;
    halo_errlist errs = {0};
    CHECK(parse_llm("analyzer:\n"
                    "  llm:\n"
                    "    base_url: http://127.0.0.1:11434/v1\n"
                    "    model: qwen2.5:7b\n",
                    &cfg, &errs));
    CHECK(cfg.llm.temperature == 0.2);
    CHECK_INT(cfg.llm.max_tokens, 4096);
    CHECK_INT(cfg.llm.max_retries, 4);
    CHECK_INT(cfg.llm.timeout, 120 * 1000000000ll);
    CHECK_INT(cfg.llm.headers.n, 0);
    CHECK(cfg.llm.api_key == NULL);
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg.llm, &c, &err), HALO_OK);
    halo_llm_free(c);
    halo_analyzer_config_free(&cfg);

    CHECK(parse_llm("analyzer:\n"
                    "  llm:\n"
                    "    base_url: https://api.openai.com/v1\n"
                    "    model: gpt-4o-mini\n"
                    "    api_key: sk-x\n"
                    "    timeout: 30s\n"
                    "    temperature: 0\n"
                    "    max_tokens: 0\n"
                    "    max_retries: 0\n"
                    "    headers: [\"OpenAI-Project: p1\", \"X-A: b\"]\n",
                    &cfg, &errs));
    CHECK(cfg.llm.temperature == 0);
    CHECK_INT(cfg.llm.max_tokens, 0);
    CHECK_INT(cfg.llm.max_retries, 0);
    CHECK_INT(cfg.llm.headers.n, 2);
    CHECK_STR(cfg.llm.headers.items[0], "OpenAI-Project: p1");
    CHECK_STR(cfg.llm.api_key, "sk-x");
    halo_analyzer_config_free(&cfg);

    CHECK(!parse_llm("analyzer:\n"
                     "  llm:\n"
                     "    temperature: 3\n"
                     "    max_retries: -1\n",
                     &cfg, &errs));
    CHECK_INT(errs.n, 2);
    CHECK_CONTAINS(errs.msgs[0], "temperature");
    CHECK_CONTAINS(errs.msgs[1], "max_retries");
    halo_analyzer_config_free(&cfg);
    halo_errlist_free(&errs);

    /* what the client would refuse, the config parse (halo validate)
     * refuses too, at the llm section's line; an empty base_url is "no
     * model" and fine */
    CHECK(!parse_llm("analyzer:\n"
                     "  llm:\n"
                     "    base_url: ftp://models.example/v1\n"
                     "    model: m\n",
                     &cfg, &errs));
    CHECK_INT(errs.n, 1);
    CHECK_CONTAINS(errs.msgs[0], "analyzer: invalid llm.base_url "
                                 "\"ftp://models.example/v1\": expected an "
                                 "http:// or https:// URL");
    halo_analyzer_config_free(&cfg);
    halo_errlist_free(&errs);
    CHECK(!parse_llm("analyzer:\n  llm: { base_url: http://h/v1 }\n", &cfg,
                     &errs));
    CHECK_INT(errs.n, 1);
    CHECK_CONTAINS(errs.msgs[0], "analyzer: llm.model is required");
    halo_analyzer_config_free(&cfg);
    halo_errlist_free(&errs);
    CHECK(parse_llm("analyzer:\n  llm: { base_url: \"\", model: \"\" }\n", &cfg,
                    &errs));
    halo_analyzer_config_free(&cfg);
    halo_errlist_free(&errs);
}

/* max_tokens 0 leaves the field out of the request. */
TEST(max_tokens_zero_is_not_sent)
{
    llm_mock m;
    CHECK(llm_mock_start(&m, "notokens", OK_TURN("{\"content\":\"k\"}")));
    halo_llm_cfg cfg = cfg_for(m.base_url);
    cfg.max_tokens = 0;
    cfg.temperature = 1;
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_OK);
    json_t *msgs = conversation();
    halo_llm_reply r;
    CHECK_INT(halo_llm_chat(c, msgs, NULL, &r, &err), HALO_OK);
    halo_llm_reply_clear(&r);
    json_t *reqs = llm_mock_requests(&m);
    json_t *b = json_object_get(json_array_get(reqs, 0), "body");
    CHECK(b);
    CHECK(!json_object_get(b, "max_tokens"));
    CHECK(json_number_value(json_object_get(b, "temperature")) == 1.0);
    json_decref(reqs);
    json_decref(msgs);
    halo_llm_free(c);
    llm_mock_stop(&m);
}
