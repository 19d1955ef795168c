/*
 * rlm_tools.c -- the tools the RLM engine's model calls (rlm.h), each a
 * function from its JSON arguments to text for the model. Every tool is
 * scoped to the agent and window under investigation (a sub-call may be
 * narrowed further to a list of runs); bad arguments and store errors come
 * back as "error: ..." text, never as a failure of the investigation.
 * Results are capped in size; the engine redacts them before they leave.
 */
#include "rlm_int.h"
#include "text.h"

#include "../core/buf.h"
#include "../core/trace_tree.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_RESULT = 16384, IO_MAX = 300 };

/* The tools' JSON schemas (OpenAI function calling). */
static const char TOOL_SQL[] =
    "{\"type\":\"function\",\"function\":{\"name\":\"sql\",\"description\":"
    "\"Run ONE read-only SELECT (SQLite or PostgreSQL dialect, whichever the "
    "store is) over the relations spans and traces, which contain only this "
    "agent's runs in the window. Columns of spans: trace_id, span_id, "
    "parent_span_id, name, span_type, tool_name, model, start_time, "
    "end_time, duration_ms, status_code (OK/ERROR/UNSET), status_message, "
    "input, output, input_tokens, output_tokens, cost, attributes (JSON). "
    "Columns of traces: trace_id, root_name, start_time, end_time, "
    "duration_ms, span_count, error_count, llm_calls, tool_calls, "
    "input_tokens, output_tokens, cost, priced_spans (spans that had a "
    "cost: with 0, a cost of 0 means no price was known). At most 100 "
    "rows come back: "
    "aggregate.\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"query\":{\"type\":\"string\"}},\"required\":[\"query\"]}}}";
static const char TOOL_VIEW[] =
    "{\"type\":\"function\",\"function\":{\"name\":\"view_trace\","
    "\"description\":\"One run as an indented tree of its spans: name, type, "
    "duration, status, tool, model, tokens, and each span's input and "
    "output cut short.\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"trace_id\":{\"type\":\"string\",\"description\":\"32 hex digits\"}},"
    "\"required\":[\"trace_id\"]}}}";
static const char TOOL_SEARCH[] =
    "{\"type\":\"function\",\"function\":{\"name\":\"search\","
    "\"description\":\"Find spans whose input, output or status message "
    "contains a text (case-insensitive); returns trace id, span id, span "
    "name and a snippet around each match.\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"query\":{\"type\":\"string\"},\"limit\":"
    "{\"type\":\"integer\"}},\"required\":[\"query\"]}}}";
static const char TOOL_DETECTORS[] =
    "{\"type\":\"function\",\"function\":{\"name\":\"detectors\","
    "\"description\":\"The findings of halo's deterministic detectors for "
    "this window (kind, title, runs affected, example trace ids, "
    "hypothesis).\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}";
static const char TOOL_SUBQUERY[] =
    "{\"type\":\"function\",\"function\":{\"name\":\"subquery\","
    "\"description\":\"Ask a fresh analyst, with its own context and the "
    "same tools, a narrow question about some runs; returns its short "
    "answer and the trace ids supporting it.\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"question\":{\"type\":\"string\"},"
    "\"trace_ids\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
    "\"description\":\"the runs to look at (default: all of the window)\"}},"
    "\"required\":[\"question\"]}}}";
static const char TOOL_FINAL[] =
    "{\"type\":\"function\",\"function\":{\"name\":\"final_report\","
    "\"description\":\"End the investigation with the recurring failure "
    "patterns found (possibly none).\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"findings\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"object\",\"properties\":{\"kind\":{\"type\":\"string\",\"description\":"
    "\"tool_retry_loop, silent_failure, duplicate_tool_call, slow_span, "
    "invalid_tool_input, unknown_tool, context_growth, cost_regression, "
    "error_cluster, latency_regression, or other\"},\"title\":{\"type\":"
    "\"string\"},\"trace_ids\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}},\"span_ids\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}},\"hypothesis\":{\"type\":\"string\"},\"recommendation\":{"
    "\"type\":\"string\"}},\"required\":[\"kind\",\"title\",\"trace_ids\","
    "\"hypothesis\",\"recommendation\"]}}},\"required\":[\"findings\"]}}}";
static const char TOOL_ANSWER[] =
    "{\"type\":\"function\",\"function\":{\"name\":\"answer\","
    "\"description\":\"End this sub-investigation with a short answer and "
    "the trace ids that support it.\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"answer\":{\"type\":\"string\"},\"trace_ids\":{"
    "\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"required\":["
    "\"answer\"]}}}";

static json_t *tools_of(const char *const *defs, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *t = json_loads(defs[i], 0, NULL);
        if (!t || json_array_append_new(a, t) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *rlm_tool_set(bool root, bool can_subquery, bool final_only)
{
    const char *defs[7];
    size_t n = 0;
    if (!final_only) {
        defs[n++] = TOOL_SQL;
        defs[n++] = TOOL_VIEW;
        defs[n++] = TOOL_SEARCH;
        defs[n++] = TOOL_DETECTORS;
        if (can_subquery)
            defs[n++] = TOOL_SUBQUERY;
    }
    defs[n++] = root ? TOOL_FINAL : TOOL_ANSWER;
    return tools_of(defs, n);
}

/* ---- helpers ---------------------------------------------------------------
 */

static char *str_arg(const json_t *args, const char *key)
{
    const json_t *v = json_object_get(args, key);
    return json_is_string(v) ? (char *)json_string_value(v) : NULL;
}

bool rlm_trace_id(const char *s, uint8_t bytes[16], char low[33])
{
    uint8_t b[16];
    if (!s || strlen(s) != 32 || !halo_hex_decode(s, 32, b, 16))
        return false;
    if (bytes)
        memcpy(bytes, b, 16);
    if (low)
        halo_hex_encode(b, 16, low);
    return true;
}

static char *cap(char *text)
{
    size_t len = text ? strlen(text) : 0;
    if (len > MAX_RESULT)
        strcpy(text + halo_utf8_prefix(text, len, MAX_RESULT), "\n... (cut)");
    return text;
}

/* ---- the tools --------------------------------------------------------------
 */

static char *tool_sql(rlm *R, const json_t *args)
{
    const char *q = str_arg(args, "query");
    if (!q || !*q)
        return strdup("error: `query` (a string) is required");
    halo_sql_req req = {0};
    req.agent_id = R->req->agent_id;
    req.since_ns = R->req->window_start_ns;
    req.until_ns = R->req->window_end_ns;
    req.sql = q;
    req.max_rows = 100;
    req.max_bytes = MAX_RESULT;
    req.timeout_ms = 5000;
    halo_arena *a = halo_arena_new(0);
    char *text = NULL;
    halo_err err = {{0}};
    char *out;
    if (a && R->st->ops->sql_query(R->st, &req, a, &text, &err) == HALO_OK)
        out = strdup(text ? text : "");
    else
        out = halo_text_printf("error: %s", a ? err.msg : "out of memory");
    halo_arena_free(a);
    return cap(out);
}

static char *tool_view(rlm *R, const json_t *args)
{
    const char *tid = str_arg(args, "trace_id");
    uint8_t id[16];
    char low[33];
    if (!rlm_trace_id(tid, id, low))
        return strdup("error: `trace_id` must be 32 hex digits");
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = NULL;
    size_t n = 0;
    halo_err err = {{0}};
    if (!a)
        return strdup("error: out of memory");
    halo_status s = R->st->ops->get_trace(R->st, id, a, &sp, &n, &err);
    char *out;
    if (s == HALO_ENOTFOUND || (s == HALO_OK && !rlm_span_in_window(R, sp, n)))
        out = halo_text_printf(
            "error: trace %s is not one of this agent's runs in "
            "the window",
            low);
    else if (s != HALO_OK)
        out = halo_text_printf("error: %s", err.msg);
    else {
        size_t limit = R->o->span_limit > 0 ? (size_t)R->o->span_limit : 200;
        halo_buf b = HALO_BUF_INIT;
        halo_trace_text_opts o = {.io_max = IO_MAX};
        halo_trace_text(low, sp, n < limit ? n : limit, &o, &b);
        if (n > limit)
            halo_buf_printf(&b, "... %zu more spans not shown\n", n - limit);
        out = halo_buf_steal(&b);
    }
    halo_arena_free(a);
    return cap(out);
}

static char *tool_search(rlm *R, const json_t *args)
{
    const char *q = str_arg(args, "query");
    if (!q || !*q)
        return strdup("error: `query` (a string) is required");
    json_int_t limit = json_integer_value(json_object_get(args, "limit"));
    halo_search_req req = {0};
    req.agent_id = R->req->agent_id;
    req.since_ns = R->req->window_start_ns;
    req.until_ns = R->req->window_end_ns;
    req.query = q;
    req.limit = limit > 0 && limit <= 100 ? limit : 20;
    req.snippet = 160;
    halo_arena *a = halo_arena_new(0);
    halo_search_hit *hits = NULL;
    size_t n = 0;
    halo_err err = {{0}};
    if (!a ||
        R->st->ops->search_spans(R->st, &req, a, &hits, &n, &err) != HALO_OK) {
        halo_arena_free(a);
        return halo_text_printf("error: %s", a ? err.msg : "out of memory");
    }
    halo_buf b = HALO_BUF_INIT;
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        halo_buf_printf(&b, "trace %s span %s %s %s: %s\n", hits[i].trace_id,
                        hits[i].span_id, hits[i].name ? hits[i].name : "-",
                        hits[i].field ? hits[i].field : "-",
                        hits[i].snippet ? hits[i].snippet : "");
        shown++;
    }
    if (!shown)
        halo_buf_printf(&b, "no span contains \"%s\"\n", q);
    halo_arena_free(a);
    return cap(halo_buf_steal(&b));
}

char *rlm_detectors_text(const halo_report *r, size_t max_ids)
{
    halo_buf b = HALO_BUF_INIT;
    if (!r->n_findings)
        halo_buf_puts(&b, "The detectors found no recurring problem.\n");
    for (size_t i = 0; i < r->n_findings; i++) {
        const halo_finding *f = &r->findings[i];
        halo_buf_printf(&b,
                        "%zu. [%s, %s] %s: %" PRId64 " runs (%.1f%%); "
                        "examples:",
                        i + 1, f->kind, f->severity, f->title, f->traces,
                        100.0 * f->fraction);
        for (size_t k = 0; k < f->n_trace_ids && k < max_ids; k++)
            halo_buf_printf(&b, " %s", f->trace_ids[k]);
        halo_buf_printf(&b, "\n   hypothesis: %s\n", f->hypothesis);
    }
    return halo_buf_steal(&b);
}

static char *tool_detectors(rlm *R)
{
    if (!R->detectors) /* a follow-up: the report is in the conversation */
        return strdup("The report above lists the findings, the detectors' "
                      "among them.");
    return cap(rlm_detectors_text(R->detectors, 5));
}

char *rlm_exec_tool(rlm *R, rlm_call *c, const halo_llm_call *call)
{
    if (!call->args)
        return halo_text_printf(
            "error: the arguments of %s are not a JSON object "
            "(%s); call it again with valid JSON",
            call->name, call->error ? call->error : "malformed");
    if (!strcmp(call->name, "sql"))
        return tool_sql(R, call->args);
    if (!strcmp(call->name, "view_trace"))
        return tool_view(R, call->args);
    if (!strcmp(call->name, "search"))
        return tool_search(R, call->args);
    if (!strcmp(call->name, "detectors"))
        return tool_detectors(R);
    if (!strcmp(call->name, "subquery"))
        return rlm_subquery(R, c, call->args);
    return halo_text_printf("error: there is no tool named \"%s\"", call->name);
}
