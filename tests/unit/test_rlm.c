/*
 * test_rlm.c -- the RLM engine (analyzer/rlm.c) against the scripted
 * OpenAI-compatible server (tests/llm_mock), over a real SQLite store:
 * every tool the script calls runs and its result arrives in the next
 * request; SQL that writes is refused; subquery opens a nested
 * conversation and the depth limit holds; malformed tool arguments are
 * answered with an error for the model; invented trace ids are dropped;
 * turn and token budgets force final_report; an unreachable server leaves
 * the detectors' report; and the secrets stored in the spans appear in no
 * request the server received.
 */
#include "fixture_spans.h"
#include "harness.h"
#include "llm_mock.h"

#include "analyzer/analyzer.h"
#include "analyzer/redact.h"
#include "analyzer/rlm.h"
#include "storage/store.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_NS 3600000000000ull
#define T1 "abababababababab0000000000000001"
#define T2 "abababababababab0000000000000002"
#define T3 "abababababababab0000000000000003"
#define SECRET_KEY "sk-proj-QWERTYUIOPASDFGHJKLZXCVBNM123456"
#define SECRET_MAIL "bob.smith@example.com"

/* ---- the store: three runs of agent "support", one failing ----------------
 */

static bool fill_store(const char *name, char *spec, size_t cap)
{
    snprintf(spec, cap, "sqlite:%s/%s.db", halo_test_tmpdir(), name);
    halo_store *st = NULL;
    halo_err err = {{0}};
    if (halo_store_open(spec, NULL, &st, &err) != HALO_OK)
        return false;
    span_opts o[6] = {
        {.trace = 1,
         .span = 1,
         .start_ms = 60000,
         .dur_ms = 900,
         .agent = "support"},
        {.trace = 1,
         .span = 2,
         .parent = 1,
         .start_ms = 60100,
         .dur_ms = 200,
         .agent = "support",
         .type = "TOOL"},
        {.trace = 2,
         .span = 3,
         .start_ms = 120000,
         .dur_ms = 900,
         .status = HALO_STATUS_ERROR,
         .agent = "support"},
        {.trace = 2,
         .span = 4,
         .parent = 3,
         .start_ms = 120100,
         .dur_ms = 500,
         .status = HALO_STATUS_ERROR,
         .agent = "support",
         .type = "TOOL"},
        {.trace = 3,
         .span = 5,
         .start_ms = 180000,
         .dur_ms = 700,
         .agent = "support"},
        {.trace = 3,
         .span = 6,
         .parent = 5,
         .start_ms = 180100,
         .dur_ms = 90,
         .agent = "support",
         .type = "TOOL"},
    };
    halo_batch *b = batch_of(o, 6);
    if (!b)
        return false;
    for (halo_chunk *c = b->head; c; c = c->next)
        for (size_t i = 0; i < c->n; i++) {
            halo_span *s = &c->spans[i];
            if (strcmp(s->d.span_type, "TOOL")) {
                /* tokens, no price known for the model */
                s->d.has_input_tokens = true;
                s->d.input_tokens = 500;
                continue;
            }
            s->d.tool_name = "lookup";
            s->d.input = "{\"order\": 7, \"note\": \"my key is " SECRET_KEY
                         ", mail " SECRET_MAIL "\"}";
            s->d.output = s->status_code == HALO_STATUS_ERROR
                              ? "upstream timeout"
                              : "{\"status\": \"shipped\"}";
        }
    bool ok = halo_store_write_batch(st, b, NULL, &err) == HALO_OK;
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
    return ok;
}

/* ---- scripts
 * ----------------------------------------------------------------- */

/* One scripted model turn calling tools: calls is a JSON array of
 * [name, arguments] pairs; an arguments string is sent as is (malformed
 * JSON on purpose), an object is dumped. */
static void turn(halo_buf *script, const char *calls_json, int tokens)
{
    json_t *calls = json_loads(calls_json, 0, NULL);
    json_t *tc = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        json_t *args = json_array_get(c, 1);
        char *text = json_is_string(args) ? strdup(json_string_value(args))
                                          : json_dumps(args, JSON_COMPACT);
        char id[32];
        snprintf(id, sizeof id, "c%u", (unsigned)(i % 1000));
        json_array_append_new(tc,
                              json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id,
                                        "type", "function", "function", "name",
                                        json_string_value(json_array_get(c, 0)),
                                        "arguments", text));
        free(text);
    }
    json_t *line =
        json_pack("{s:{s:[{s:i, s:{s:s, s:n, s:o}, s:s}], s:{s:i, s:i}}}",
                  "body", "choices", "index", 0, "message", "role", "assistant",
                  "content", "tool_calls", tc, "finish_reason", "tool_calls",
                  "usage", "prompt_tokens", tokens, "completion_tokens", 20);
    char *text = json_dumps(line, JSON_COMPACT);
    halo_buf_puts(script, text);
    halo_buf_putc(script, '\n');
    free(text);
    json_decref(line);
    json_decref(calls);
}

/* ---- running the engine
 * -------------------------------------------------------- */

typedef struct run {
    halo_report *r;
    halo_rlm_stats stats;
    halo_status st;
    halo_err err;
    json_t *requests;
} run;

static void investigate(const char *name, const char *script, halo_rlm_opts *o,
                        run *out)
{
    memset(out, 0, sizeof *out);
    char spec[600];
    llm_mock m;
    if (!fill_store(name, spec, sizeof spec) ||
        !llm_mock_start(&m, name, script)) {
        out->st = HALO_EIO;
        return;
    }
    halo_store *st = NULL;
    halo_store_opts ro = {.read_only = true};
    halo_store_open(spec, &ro, &st, &out->err);
    halo_analyze_req req = {0};
    req.agent_id = "support";
    req.schedule = "manual";
    req.window_start_ns = T0;
    req.window_end_ns = T0 + HOUR_NS;
    halo_analyze(st, &req, &out->r, &out->err);
    halo_llm_cfg llm = {0};
    llm.base_url = m.base_url;
    llm.model = "scripted";
    llm.timeout = 20ll * 1000000000;
    llm.temperature = 0.2;
    llm.max_tokens = 1000;
    llm.max_retries = 1;
    halo_redact_cfg rc = {.defaults = true};
    halo_redactor *red = NULL;
    halo_redactor_new(&rc, &red, &out->err);
    o->llm = &llm;
    o->redactor = red;
    if (o->max_parallel > 1)
        o->store_spec = spec; /* parallel sub-calls open their own */
    if (out->r)
        out->st =
            halo_rlm_investigate(st, &req, o, out->r, &out->stats, &out->err);
    llm_mock_stop(&m);
    out->requests = llm_mock_requests(&m);
    halo_redactor_free(red);
    halo_store_close(st);
}

static void run_free(run *x)
{
    halo_report_free(x->r);
    json_decref(x->requests);
}

/* The messages of request i. */
static json_t *messages(const run *x, size_t i)
{
    return json_object_get(
        json_object_get(json_array_get(x->requests, i), "body"), "messages");
}

/* The whole text of request i. */
static char *request_text(const run *x, size_t i)
{
    return json_dumps(json_array_get(x->requests, i), JSON_COMPACT);
}

static const char *last_content(const run *x, size_t i)
{
    json_t *ms = messages(x, i);
    return json_string_value(json_object_get(
        json_array_get(ms, json_array_size(ms) - 1), "content"));
}

static bool offers_tool(const run *x, size_t i, const char *name)
{
    json_t *tools = json_object_get(
        json_object_get(json_array_get(x->requests, i), "body"), "tools");
    size_t k;
    json_t *t;
    json_array_foreach(tools, k, t)
    {
        const char *n = json_string_value(
            json_object_get(json_object_get(t, "function"), "name"));
        if (n && !strcmp(n, name))
            return true;
    }
    return false;
}

/* ---- tests ------------------------------------------------------------------
 */

TEST(tools_subquery_and_final_report)
{
    halo_buf s = HALO_BUF_INIT;
    turn(&s,
         "[[\"sql\", {\"query\": \"SELECT count(*) AS n FROM traces\"}],"
         " [\"search\", {\"query\": \"my key\"}]]",
         100);
    turn(&s,
         "[[\"view_trace\", {\"trace_id\": \"" T2 "\"}],"
         " [\"subquery\", {\"question\": \"why did it fail?\", \"trace_ids\":"
         " [\"" T2 "\"]}]]",
         200);
    /* the sub-call: a write (refused), then its answer */
    turn(&s, "[[\"sql\", {\"query\": \"DELETE FROM spans\"}]]", 50);
    turn(&s,
         "[[\"answer\", {\"answer\": \"lookup timed out\", \"trace_ids\": "
         "[\"" T2 "\"]}]]",
         60);
    /* back in the root: malformed arguments, then the report */
    turn(&s, "[[\"view_trace\", \"{not json\"]]", 300);
    turn(&s,
         "[[\"final_report\", {\"findings\": ["
         "{\"kind\": \"error_cluster\", \"title\": \"lookup times out\","
         " \"trace_ids\": [\"" T2 "\", \"ffffffffffffffffffffffffffffffff\"],"
         " \"hypothesis\": \"the carrier API is slow\","
         " \"recommendation\": \"add a timeout\"},"
         "{\"kind\": \"made_up\", \"title\": \"nothing real\","
         " \"trace_ids\": [\"00000000000000000000000000000000\"],"
         " \"hypothesis\": \"h\", \"recommendation\": \"r\"}]}]]",
         400);
    halo_buf_putc(&s, '\0');
    halo_rlm_opts o = {.max_depth = 2, .max_turns = 10};
    char tpath[600];
    snprintf(tpath, sizeof tpath, "%s/transcript.jsonl", halo_test_tmpdir());
    o.transcript_path = tpath;
    run x;
    investigate("rlm_full", s.data, &o, &x);
    halo_buf_free(&s);
    if (x.st != HALO_OK)
        fprintf(stderr, "  %s\n", x.err.msg);
    CHECK(x.st == HALO_OK);
    CHECK_INT(json_array_size(x.requests), 6);
    /* the overview: tokens without a price are not a cost of 0 */
    char *t0 = request_text(&x, 0);
    CHECK_CONTAINS(t0, "1500 input and 0 output tokens, cost: no price "
                       "known.");
    free(t0);
    /* each tool's result arrives in the next request */
    json_t *m1 = messages(&x, 1);
    char *t1 = json_dumps(m1, JSON_COMPACT);
    CHECK_CONTAINS(t1, "n\\n3\\n(1 row)");
    CHECK_CONTAINS(t1, "my key is [REDACTED], mail [REDACTED]");
    free(t1);
    /* the sub-call: its own conversation, its own prompt, depth 1 */
    CHECK_CONTAINS(json_string_value(json_object_get(
                       json_array_get(messages(&x, 2), 0), "content")),
                   "narrow question");
    CHECK(offers_tool(&x, 2, "answer") && !offers_tool(&x, 2, "final_report"));
    CHECK_CONTAINS(last_content(&x, 3), "error:");
    char *t4 = request_text(&x, 4);
    CHECK_CONTAINS(t4, "answer: lookup timed out");
    CHECK_CONTAINS(t4, "upstream timeout"); /* view_trace's output */
    free(t4);
    CHECK_CONTAINS(last_content(&x, 5), "not a JSON object");
    /* nothing secret left the process */
    for (size_t i = 0; i < json_array_size(x.requests); i++) {
        char *t = request_text(&x, i);
        CHECK(!strstr(t, SECRET_KEY) && !strstr(t, "sk-proj-QWERTY"));
        CHECK(!strstr(t, SECRET_MAIL));
        free(t);
    }
    /* the report: the invented ids dropped, a finding with none left gone */
    CHECK_STR(x.r->mode, "rlm");
    CHECK_STR(x.r->model, "scripted");
    CHECK_INT(x.stats.invented_ids, 2);
    CHECK_INT(x.stats.max_depth_reached, 1);
    CHECK_INT(x.r->budget.llm_calls, 6);
    CHECK_INT(x.r->budget.input_tokens, 1110);
    bool found = false;
    for (size_t i = 0; i < x.r->n_findings; i++) {
        const halo_finding *f = &x.r->findings[i];
        CHECK(strcmp(f->title, "nothing real"));
        if (!strcmp(f->title, "lookup times out")) {
            found = true;
            CHECK_INT(f->n_trace_ids, 1);
            CHECK_STR(f->trace_ids[0], T2);
        }
    }
    CHECK(found);
    char *js = halo_report_json(x.r);
    json_t *j = json_loads(js, 0, NULL);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "mode")), "rlm"));
    json_decref(j);
    free(js);
    /* the transcript holds every exchange */
    FILE *tf = fopen(tpath, "r");
    CHECK(tf != NULL);
    int lines = 0, c;
    while ((c = fgetc(tf)) != EOF)
        lines += c == '\n';
    fclose(tf);
    CHECK(lines >= 6 + 6);
    run_free(&x);
}

TEST(depth_limit_holds)
{
    halo_buf s = HALO_BUF_INIT;
    turn(&s, "[[\"subquery\", {\"question\": \"q\"}]]", 10);
    turn(&s, "[[\"final_report\", {\"findings\": []}]]", 10);
    halo_buf_putc(&s, '\0');
    halo_rlm_opts o = {.max_depth = 0, .max_turns = 5};
    run x;
    investigate("rlm_depth", s.data, &o, &x);
    halo_buf_free(&s);
    CHECK(x.st == HALO_OK);
    CHECK(!offers_tool(&x, 0, "subquery"));
    CHECK_CONTAINS(last_content(&x, 1), "depth limit");
    CHECK_INT(x.stats.max_depth_reached, 0);
    CHECK_INT(json_array_size(x.requests), 2);
    run_free(&x);
}

TEST(turn_budget_forces_final_report)
{
    halo_buf s = HALO_BUF_INIT;
    turn(&s, "[[\"detectors\", {}]]", 10);
    turn(&s, "[[\"detectors\", {}]]", 10);
    turn(&s, "[[\"final_report\", {\"findings\": []}]]", 10);
    halo_buf_putc(&s, '\0');
    halo_rlm_opts o = {.max_depth = 1, .max_turns = 2};
    run x;
    investigate("rlm_turns", s.data, &o, &x);
    halo_buf_free(&s);
    CHECK(x.st == HALO_OK);
    CHECK_INT(json_array_size(x.requests), 3);
    CHECK_CONTAINS(last_content(&x, 1), "[1 of 2 turns used]");
    CHECK(offers_tool(&x, 2, "final_report") && !offers_tool(&x, 2, "sql"));
    CHECK_CONTAINS(last_content(&x, 2), "no turns left");
    CHECK(x.stats.forced_final);
    CHECK_STR(x.r->mode, "rlm");
    run_free(&x);
}

TEST(token_budget_forces_final_report)
{
    halo_buf s = HALO_BUF_INIT;
    turn(&s, "[[\"detectors\", {}]]", 5000);
    turn(&s, "[[\"final_report\", {\"findings\": []}]]", 10);
    halo_buf_putc(&s, '\0');
    halo_rlm_opts o = {.max_depth = 1, .max_turns = 20, .token_budget = 4000};
    run x;
    investigate("rlm_tokens", s.data, &o, &x);
    halo_buf_free(&s);
    CHECK(x.st == HALO_OK);
    CHECK_INT(json_array_size(x.requests), 2);
    CHECK(x.stats.forced_final);
    CHECK(offers_tool(&x, 1, "final_report") && !offers_tool(&x, 1, "sql"));
    run_free(&x);
}

TEST(unreachable_model_leaves_the_detectors_report)
{
    /* an empty script: every request answered 500, retried, given up */
    halo_rlm_opts o = {.max_depth = 1, .max_turns = 5};
    run x;
    investigate("rlm_down", "", &o, &x);
    CHECK(x.st == HALO_ERETRY || x.st == HALO_EINVAL);
    CHECK(x.r != NULL);
    CHECK_STR(x.r->mode, "detectors");
    CHECK(x.r->model == NULL);
    run_free(&x);
}

/* A sub-call's answer, held back delay_ms by the server. */
static void slow_answer(halo_buf *script, const char *text, int delay_ms)
{
    json_t *args = json_pack("{s:s}", "answer", text);
    char *a = json_dumps(args, JSON_COMPACT);
    json_t *line = json_pack(
        "{s:i, s:{s:[{s:i, s:{s:s, s:n, s:[{s:s, s:s, s:{s:s, s:s}}]}, "
        "s:s}], s:{s:i, s:i}}}",
        "delay_ms", delay_ms, "body", "choices", "index", 0, "message", "role",
        "assistant", "content", "tool_calls", "id", "a1", "type", "function",
        "function", "name", "answer", "arguments", a, "finish_reason",
        "tool_calls", "usage", "prompt_tokens", 10, "completion_tokens", 5);
    char *t = json_dumps(line, JSON_COMPACT);
    halo_buf_puts(script, t);
    halo_buf_putc(script, '\n');
    free(t);
    free(a);
    json_decref(line);
    json_decref(args);
}

static long long arrived(const run *x, size_t i)
{
    return json_integer_value(
        json_object_get(json_array_get(x->requests, i), "t_ms"));
}

/* Two sub-calls asked for in one turn: with max_parallel 2 both reach the
 * server before either is answered (each answer is held back 1.5 s); one
 * at a time, the second waits for the first. */
static void parallel_case(int max_parallel, long long *gap,
                          int *halo_test_failed)
{
    halo_buf s = HALO_BUF_INIT;
    turn(&s,
         "[[\"subquery\", {\"question\": \"what fails in " T1 "?\"}],"
         " [\"subquery\", {\"question\": \"what fails in " T2 "?\"}]]",
         10);
    slow_answer(&s, "first answer", 1500);
    slow_answer(&s, "second answer", 1500);
    turn(&s, "[[\"final_report\", {\"findings\": []}]]", 10);
    halo_buf_putc(&s, '\0');
    halo_rlm_opts o = {
        .max_depth = 2, .max_turns = 5, .max_parallel = max_parallel};
    run x;
    char name[32];
    snprintf(name, sizeof name, "rlm_par%d", max_parallel);
    investigate(name, s.data, &o, &x);
    halo_buf_free(&s);
    CHECK(x.st == HALO_OK);
    CHECK_INT(json_array_size(x.requests), 4);
    char *last = request_text(&x, 3);
    CHECK_CONTAINS(last, "answer: first answer");
    CHECK_CONTAINS(last, "answer: second answer");
    free(last);
    CHECK_INT(x.stats.max_depth_reached, 1);
    CHECK_INT(x.r->budget.llm_calls, 4);
    *gap = arrived(&x, 2) - arrived(&x, 1);
    run_free(&x);
}

TEST(parallel_subqueries)
{
    long long par = -1, seq = -1;
    parallel_case(2, &par, halo_test_failed);
    parallel_case(1, &seq, halo_test_failed);
    fprintf(stderr,
            "    second sub-call arrived %lld ms after the first in "
            "parallel, %lld ms one at a time\n",
            par, seq);
    CHECK(par >= 0 && par < 1000);
    CHECK(seq >= 1400);
}
