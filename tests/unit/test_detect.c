/*
 * test_detect.c -- the analyzer's detectors on hand-built runs
 * (analyzer/README.md): each finding kind found where it was put, with
 * the right runs cited, and nothing found in clean runs with noise
 * (latency jitter, transient errors that recovered, conversations that
 * grow and end well). Also the text judgements and the report's two
 * renderings.
 */
#include "analyzer/analyzer.h"
#include "analyzer/text.h"
#include "core/span.h"
#include "core/trace_tree.h"
#include "harness.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building runs ------------------------------------------------------- */

enum { MAX_SPANS = 48, POOL = 32768 };

typedef struct rb {
    halo_trace_row tr;
    halo_scan_span s[MAX_SPANS];
    size_t n;
    uint64_t t;
    char pool[POOL];
    size_t used;
    int n_ids;
} rb;

static uint64_t rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
/* A lognormal latency around median ms with log-sd sigma. */
static double jitter(double median, double sigma)
{
    double u1 = urand() + 1e-12, u2 = urand();
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
    return median * exp(sigma * z);
}

static const char *keep(rb *r, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    if (r->used + n > POOL)
        abort();
    char *p = memcpy(r->pool + r->used, s, n);
    r->used += n;
    return p;
}

static void begin(rb *r, int run, uint64_t start_ns)
{
    memset(r, 0, sizeof *r);
    snprintf(r->tr.trace_id, sizeof r->tr.trace_id, "%032x", run + 1);
    r->tr.agent_id = "support";
    r->tr.start_ns = start_ns;
    r->t = start_ns + 1000000;
    halo_scan_span *root = &r->s[r->n++];
    snprintf(root->span_id, 17, "%08x%08x", run + 1, ++r->n_ids);
    root->name = "agent.run";
    root->span_type = "AGENT";
    root->start_ns = start_ns;
    root->input_tokens = root->output_tokens = -1;
    root->cost = -1;
    root->status_code = HALO_STATUS_OK;
    root->output = "Your order ships tomorrow.";
}

static halo_scan_span *span(rb *r, const char *type, const char *name,
                            double ms, int status, const char *in,
                            const char *out)
{
    if (r->n == MAX_SPANS)
        abort();
    halo_scan_span *s = &r->s[r->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->span_id, 17, "%08x%08x",
             (unsigned)strtoul(r->tr.trace_id + 24, NULL, 16), ++r->n_ids);
    memcpy(s->parent_span_id, r->s[0].span_id, 17);
    s->name = keep(r, name);
    s->span_type = type;
    if (!strcmp(type, "TOOL"))
        s->tool_name = s->name;
    s->start_ns = r->t;
    s->duration_ms = ms;
    s->end_ns = r->t + (uint64_t)(ms * 1e6);
    r->t = s->end_ns + 1000000;
    s->status_code = status;
    s->input = keep(r, in);
    s->output = keep(r, out);
    s->input_tokens = s->output_tokens = -1;
    s->cost = -1;
    return s;
}

static halo_scan_span *tool(rb *r, const char *name, double ms, int status,
                            const char *in, const char *out)
{
    return span(r, "TOOL", name, ms, status, in, out);
}

static halo_scan_span *llm(rb *r, const char *model, int64_t in_tok, double ms)
{
    halo_scan_span *s = span(r, "LLM", "chat", ms, HALO_STATUS_OK,
                             "[{\"role\":\"user\"}]", "Let me look that up.");
    s->model = keep(r, model);
    s->input_tokens = in_tok;
    s->output_tokens = 50;
    s->cost = (double)in_tok * 1e-6;
    return s;
}

static void end(rb *r, int status)
{
    halo_scan_span *root = &r->s[0];
    root->status_code = status;
    root->end_ns = r->t;
    root->duration_ms = (double)(root->end_ns - root->start_ns) / 1e6;
    r->tr.end_ns = r->t;
    r->tr.duration_ms = root->duration_ms;
    for (size_t i = 0; i < r->n; i++) {
        const halo_scan_span *s = &r->s[i];
        r->tr.input_tokens += s->input_tokens > 0 ? s->input_tokens : 0;
        r->tr.output_tokens += s->output_tokens > 0 ? s->output_tokens : 0;
        r->tr.cost += s->cost > 0 ? s->cost : 0;
        r->tr.error_count += s->status_code == HALO_STATUS_ERROR;
    }
    r->tr.span_count = (int64_t)r->n;
}

static void add(halo_detect *d, rb *r)
{
    halo_scan_trace t = {&r->tr, r->s, r->n};
    halo_err err = {{0}};
    if (halo_detect_add(d, &t, &err) != HALO_OK)
        abort();
}

static const uint64_t T0 = 1795000000ull * 1000000000ull;

/* A clean run: LLM, tool, LLM, tool, LLM, with jitter; conversation grows
 * and ends well. A share of runs has a transient error that recovered. */
static void clean_run(rb *r, int run, const char *model, double tool_ms)
{
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    char in[96], out[96];
    llm(r, model, 800 + run % 50, jitter(900, 0.4));
    snprintf(in, sizeof in, "{\"query\": \"order %d status\"}", run);
    snprintf(out, sizeof out, "{\"results\": [{\"id\": %d}]}", run);
    if (run % 23 == 5) { /* transient: one failure, one good retry */
        tool(r, "search", jitter(tool_ms, 0.2), HALO_STATUS_ERROR, in, NULL)
            ->status_message = "connection reset by peer";
    }
    tool(r, "search", jitter(tool_ms, 0.2), HALO_STATUS_OK, in, out);
    llm(r, model, 1600 + run % 50, jitter(900, 0.4));
    snprintf(in, sizeof in, "{\"order_id\": \"ORD-%d\"}", run);
    snprintf(out, sizeof out, "{\"status\": \"shipped\", \"eta\": %d}", run);
    tool(r, "lookup", jitter(60, 0.2), HALO_STATUS_OK, in, out);
    llm(r, model, 2400 + run % 50, jitter(900, 0.4));
    end(r, HALO_STATUS_OK);
}

static halo_report *finish(halo_detect *d)
{
    halo_report *r = calloc(1, sizeof *r);
    halo_err err = {{0}};
    if (!r || halo_detect_finish(d, r, &err) != HALO_OK)
        abort();
    return r;
}

static size_t count_kind(const halo_report *r, const char *kind)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_findings; i++)
        n += !strcmp(r->findings[i].kind, kind);
    return n;
}

static const halo_finding *find_kind(const halo_report *r, const char *kind)
{
    for (size_t i = 0; i < r->n_findings; i++)
        if (!strcmp(r->findings[i].kind, kind))
            return &r->findings[i];
    return NULL;
}

static bool cites(const halo_finding *f, int run)
{
    char id[33];
    snprintf(id, sizeof id, "%032x", run + 1);
    for (size_t i = 0; i < f->n_trace_ids; i++)
        if (!strcmp(f->trace_ids[i], id))
            return true;
    return false;
}

static void dump(const halo_report *r)
{
    for (size_t i = 0; i < r->n_findings; i++)
        fprintf(stderr, "    finding %s: %s (%lld runs)\n", r->findings[i].kind,
                r->findings[i].title, (long long)r->findings[i].traces);
}

static rb R;

/* ---- clean windows ------------------------------------------------------- */

TEST(clean_runs_with_noise_give_no_findings)
{
    halo_detect *d = halo_detect_new(NULL);
    for (int i = 0; i < 300; i++) {
        clean_run(&R, i, "gpt-4o-mini", 120);
        add(d, &R);
    }
    halo_report *r = finish(d);
    dump(r);
    CHECK_INT(r->n_findings, 0);
    halo_report_free(r);
    halo_detect_free(d);
}

/* ---- per-run patterns ---------------------------------------------------- */

/* 200 clean runs, then `n` runs made by fn (run numbers 200..200+n). */
static halo_report *with_pattern(void (*fn)(rb *, int), int n)
{
    halo_detect *d = halo_detect_new(NULL);
    for (int i = 0; i < 200 + n; i++) {
        if (i >= 200)
            fn(&R, i);
        else
            clean_run(&R, i, "gpt-4o-mini", 120);
        add(d, &R);
    }
    halo_report *r = finish(d);
    halo_detect_free(d);
    return r;
}

static bool cites_all(const halo_finding *f, int from, int n)
{
    for (int i = from; i < from + n; i++)
        if (!cites(f, i))
            return false;
    return (int)f->n_trace_ids == n;
}

static void retry_run(rb *r, int run)
{
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    llm(r, "gpt-4o-mini", 900, 800);
    const char *args[] = {"{\"q\": \"weather in paris\"}",
                          "{\"q\": \"weather paris\"}",
                          "{\"q\":\"weather in paris\"}"};
    for (int k = 0; k < 3; k++)
        tool(r, "web_search", 300, HALO_STATUS_ERROR, args[k], "")
            ->status_message = "upstream timeout";
    tool(r, "web_search", 300, HALO_STATUS_OK, args[0], "{\"temp\": 11}");
    llm(r, "gpt-4o-mini", 1900, 800);
    end(r, HALO_STATUS_OK);
}

TEST(retry_loop_found_and_not_double_counted)
{
    halo_report *r = with_pattern(retry_run, 12);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_RETRY_LOOP);
    CHECK(f != NULL);
    CHECK_CONTAINS(f->title, "web_search");
    CHECK(cites_all(f, 200, 12));
    CHECK_INT(f->n_span_ids, 12 * 4);
    CHECK(f->wasted_ms >= 12 * 900 - 1);
    CHECK_INT(count_kind(r, HALO_KIND_ERROR_CLUSTER), 0);
    CHECK_INT(r->n_findings, 1);
    halo_report_free(r);
}

static void silent_run(rb *r, int run)
{
    const char *outs[] = {"{\"error\": \"quota exceeded\", \"code\": 429}",
                          "Error: connection refused",
                          "Traceback (most recent call last):\n  File x",
                          "{\"success\": false, \"message\": \"no rows\"}"};
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    llm(r, "gpt-4o-mini", 900, 800);
    tool(r, "crm_lookup", 100, run % 2 ? HALO_STATUS_OK : HALO_STATUS_UNSET,
         "{\"id\": 1}", outs[run % 4]);
    llm(r, "gpt-4o-mini", 1900, 800);
    end(r, HALO_STATUS_OK);
}

TEST(silent_failure_found)
{
    halo_report *r = with_pattern(silent_run, 16);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_SILENT_FAILURE);
    CHECK(f != NULL);
    CHECK_CONTAINS(f->title, "crm_lookup");
    CHECK(cites_all(f, 200, 16));
    CHECK_INT(r->n_findings, 1);
    halo_report_free(r);
}

static void duplicate_run(rb *r, int run)
{
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    llm(r, "gpt-4o-mini", 900, 800);
    tool(r, "get_order", 100, HALO_STATUS_OK, "{\"id\": 7, \"full\": true}",
         "{\"total\": 12}");
    llm(r, "gpt-4o-mini", 1900, 800);
    tool(r, "get_order", 100, HALO_STATUS_OK, "{\"full\":true,\"id\":7}",
         "{\"total\": 12}");
    end(r, HALO_STATUS_OK);
}

/* Polling: the same call, a different answer each time: not a duplicate. */
static void polling_run(rb *r, int run)
{
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    char out[64];
    for (int k = 0; k < 3; k++) {
        snprintf(out, sizeof out, "{\"state\": \"step %d\"}", k);
        tool(r, "job_status", 100, HALO_STATUS_OK, "{\"job\": 1}", out);
    }
    end(r, HALO_STATUS_OK);
}

TEST(duplicate_call_found_polling_is_not)
{
    halo_report *r = with_pattern(duplicate_run, 10);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_DUPLICATE_CALL);
    CHECK(f != NULL);
    CHECK(cites_all(f, 200, 10));
    CHECK_INT(f->n_span_ids, 10); /* the repeated calls only */
    CHECK_INT(r->n_findings, 1);
    halo_report_free(r);
    r = with_pattern(polling_run, 30);
    dump(r);
    CHECK_INT(r->n_findings, 0);
    halo_report_free(r);
}

static void invalid_run(rb *r, int run)
{
    const char *msgs[] = {"1 validation error for SearchArgs\nquery\n  field "
                          "required",
                          "'city' is a required property",
                          "TypeError: lookup() got an unexpected keyword "
                          "argument 'q'",
                          "invalid arguments: expected integer for 'limit'"};
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    llm(r, "gpt-4o-mini", 900, 800);
    tool(r, "geo_lookup", 5, HALO_STATUS_ERROR, "{\"q\": \"x\"}", NULL)
        ->status_message = msgs[run % 4];
    llm(r, "gpt-4o-mini", 1900, 800);
    end(r, HALO_STATUS_OK);
}

static void unknown_run(rb *r, int run)
{
    const char *msgs[] = {"unknown tool: web_browse",
                          "Tool 'web_browse' not found",
                          ("Error: web_browse is not a valid tool, try one "
                           "of [search, lookup]")};
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    llm(r, "gpt-4o-mini", 900, 800);
    tool(r, "web_browse", 1, HALO_STATUS_ERROR, "{}", msgs[run % 3]);
    llm(r, "gpt-4o-mini", 1900, 800);
    end(r, HALO_STATUS_OK);
}

TEST(invalid_input_and_unknown_tool_found)
{
    halo_report *r = with_pattern(invalid_run, 9);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_INVALID_INPUT);
    CHECK(f != NULL);
    CHECK(cites_all(f, 200, 9));
    CHECK_INT(r->n_findings, 1);
    halo_report_free(r);
    r = with_pattern(unknown_run, 9);
    dump(r);
    f = find_kind(r, HALO_KIND_UNKNOWN_TOOL);
    CHECK(f != NULL);
    CHECK_CONTAINS(f->title, "web_browse");
    CHECK(cites_all(f, 200, 9));
    CHECK_INT(r->n_findings, 1);
    halo_report_free(r);
}

static void growth_run(rb *r, int run)
{
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    int64_t tok = 2000;
    for (int k = 0; k < 6; k++, tok = tok * 19 / 10) {
        llm(r, "gpt-4o", tok, 900);
        char path[48];
        snprintf(path, sizeof path, "{\"path\": \"part-%d\"}", k);
        tool(r, "read_file", 50, HALO_STATUS_OK, path, "lots of text");
    }
    halo_scan_span *last =
        span(r, "LLM", "chat", 30, HALO_STATUS_ERROR, "[...]", NULL);
    last->model = "gpt-4o";
    last->input_tokens = tok;
    last->status_message = "This model's maximum context length is 128000 "
                           "tokens (context_length_exceeded)";
    end(r, HALO_STATUS_ERROR);
    r->s[0].status_message = "agent failed";
}

TEST(context_growth_found_normal_growth_is_not)
{
    halo_report *r = with_pattern(growth_run, 8);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_CONTEXT_GROWTH);
    CHECK(f != NULL);
    CHECK(cites_all(f, 200, 8));
    CHECK_INT(r->n_findings, 1); /* its errors are not an error_cluster */
    halo_report_free(r);
}

static void cluster_run(rb *r, int run)
{
    char msg[96];
    snprintf(msg, sizeof msg, "order %d not found in shard %d", 48000 + run,
             run % 7);
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    llm(r, "gpt-4o-mini", 900, 800);
    tool(r, "get_order", 20, HALO_STATUS_ERROR, "{\"id\": 1}", NULL)
        ->status_message = keep(r, msg);
    end(r, HALO_STATUS_ERROR);
    r->s[0].status_message = keep(r, msg); /* propagated: not counted */
}

TEST(error_cluster_groups_messages_up_to_ids)
{
    halo_report *r = with_pattern(cluster_run, 11);
    dump(r);
    CHECK_INT(count_kind(r, HALO_KIND_ERROR_CLUSTER), 1);
    const halo_finding *f = find_kind(r, HALO_KIND_ERROR_CLUSTER);
    CHECK(cites_all(f, 200, 11));
    CHECK_INT(f->n_span_ids, 11);
    CHECK_CONTAINS(f->title, "get_order");
    CHECK_INT(r->n_findings, 1);
    halo_report_free(r);
}

/* ---- window-wide patterns ------------------------------------------------ */

TEST(slow_step_found_wide_latency_is_not)
{
    halo_detect *d = halo_detect_new(NULL);
    for (int i = 0; i < 300; i++) {
        clean_run(&R, i, "gpt-4o-mini", i % 10 == 3 ? 3000 : 120);
        add(d, &R);
    }
    halo_report *r = finish(d);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_SLOW_SPAN);
    CHECK(f != NULL);
    CHECK_CONTAINS(f->title, "tool `search`");
    for (int i = 0; i < 300; i++)
        CHECK(cites(f, i) == (i % 10 == 3));
    CHECK_INT(r->n_findings, 1);
    halo_report_free(r);
    halo_detect_free(d);
}

/* A tool with a wide but ordinary latency distribution (log-sd 1.3: p95
 * about 8x the median) has a long tail, not a slow mode. */
TEST(wide_latency_distribution_is_not_slow)
{
    for (int sigma10 = 10; sigma10 <= 14; sigma10 += 2) {
        halo_detect *d = halo_detect_new(NULL);
        for (int i = 0; i < 240; i++) {
            clean_run(&R, i, "gpt-4o-mini", 120);
            for (int k = 0; k < 4; k++) {
                char in[48];
                snprintf(in, sizeof in, "{\"url\": \"u%d-%d\"}", i, k);
                tool(&R, "browse", jitter(1000, sigma10 / 10.0), HALO_STATUS_OK,
                     in, "<html>");
            }
            add(d, &R);
        }
        halo_report *r = finish(d);
        dump(r);
        CHECK_INT(count_kind(r, HALO_KIND_SLOW_SPAN), 0);
        halo_report_free(r);
        halo_detect_free(d);
    }
}

static void render_run(rb *r, int run)
{
    clean_run(r, run, "gpt-4o-mini", 120);
    tool(r, "render_pdf", jitter(4000, 0.2), HALO_STATUS_OK, "{\"doc\": 1}",
         "{\"pages\": 3}");
    r->tr.duration_ms += 4000;
}

TEST(consistently_slow_step_against_its_peers)
{
    halo_report *r = with_pattern(render_run, 25);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_SLOW_SPAN);
    CHECK(f != NULL);
    CHECK_CONTAINS(f->title, "tool `render_pdf` is consistently slow");
    CHECK(cites_all(f, 200, 25));
    /* (the window's last 25 runs are slower: a latency regression too) */
    CHECK_INT(count_kind(r, HALO_KIND_SLOW_SPAN), 1);
    halo_report_free(r);
}

static void series(halo_detect *d, int n, int change, double factor,
                   bool latency)
{
    for (int i = 0; i < n; i++) {
        bool after = i >= change;
        clean_run(&R, i, after && !latency ? "gpt-4o" : "gpt-4o-mini",
                  after && latency ? 120 * factor * 8 : 120);
        if (!latency) {
            R.tr.cost *= (after ? factor : 1) * jitter(1, 0.2);
        }
        add(d, &R);
    }
}

TEST(cost_regression_found_at_its_change_point)
{
    halo_detect *d = halo_detect_new(NULL);
    series(d, 240, 150, 3, false);
    halo_report *r = finish(d);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_COST_REGRESSION);
    CHECK(f != NULL);
    CHECK(f->traces >= 88 && f->traces <= 92);
    CHECK(cites(f, 200) && cites(f, 239) && !cites(f, 140));
    CHECK_CONTAINS(f->hypothesis, "from `gpt-4o-mini` to `gpt-4o`");
    halo_report_free(r);
    halo_detect_free(d);
}

TEST(latency_regression_names_the_step)
{
    halo_detect *d = halo_detect_new(NULL);
    series(d, 240, 100, 3, true);
    halo_report *r = finish(d);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_LATENCY_REGRESSION);
    CHECK(f != NULL);
    CHECK(f->traces >= 138 && f->traces <= 142);
    CHECK_CONTAINS(f->hypothesis, "tool `search`");
    halo_report_free(r);
    halo_detect_free(d);
}

TEST(regression_against_the_previous_window)
{
    halo_detect *d = halo_detect_new(NULL);
    for (int i = 0; i < 100; i++) {
        halo_trace_row p = {0};
        p.start_ns = T0 - (uint64_t)(100 - i) * 60000000000ull;
        p.cost = 0.005 * jitter(1, 0.2);
        p.duration_ms = 3000;
        halo_detect_add_previous(d, &p);
    }
    for (int i = 0; i < 100; i++) {
        clean_run(&R, i, "gpt-4o-mini", 120);
        R.tr.cost = 0.02 * jitter(1, 0.2);
        add(d, &R);
    }
    halo_report *r = finish(d);
    dump(r);
    const halo_finding *f = find_kind(r, HALO_KIND_COST_REGRESSION);
    CHECK(f != NULL);
    CHECK_INT(f->traces, 100);
    CHECK_INT(count_kind(r, HALO_KIND_LATENCY_REGRESSION), 0);
    halo_report_free(r);
    halo_detect_free(d);
}

/* ---- text judgements ------------------------------------------------------
 */

TEST(text_error_recognition)
{
    CHECK(halo_text_carries_error("{\"error\": \"boom\"}"));
    CHECK(halo_text_carries_error("{\"ok\": false, \"data\": 1}"));
    CHECK(halo_text_carries_error("{\"isError\": true, \"content\": []}"));
    CHECK(halo_text_carries_error("{\"status\": \"failed\"}"));
    CHECK(halo_text_carries_error("{\"a\": 1, \"error\": {\"code\": 5"));
    CHECK(halo_text_carries_error("Error: no such file"));
    CHECK(halo_text_carries_error("ERROR 503 upstream"));
    CHECK(halo_text_carries_error("Failed to connect"));
    CHECK(halo_text_carries_error("raised ValueError: bad"));
    CHECK(!halo_text_carries_error("{\"error\": null, \"rows\": [1]}"));
    CHECK(!halo_text_carries_error("{\"errors\": []}"));
    CHECK(!halo_text_carries_error("{\"updated\": 3, \"errors\": 0}"));
    CHECK(!halo_text_carries_error("{\"errors\": 0.0}"));
    CHECK(halo_text_carries_error("{\"errors\": 2}"));
    CHECK(!halo_text_carries_error("The docs explain it.\nTypeError: x"));
    CHECK(!halo_text_carries_error(
        "{\"jobs\": [{\"status\": \"failed\", \"id\": 1}]}"));
    CHECK(!halo_text_carries_error("error handling is described below"));
    CHECK(!halo_text_carries_error("[{\"error\": \"x\"}]"));
    CHECK(!halo_text_carries_error(NULL));
    CHECK(halo_text_is_empty_output("  null "));
    CHECK(halo_text_is_empty_output("[]"));
    CHECK(!halo_text_is_empty_output(NULL));
    CHECK(!halo_text_is_empty_output("0"));
    CHECK(halo_text_says_unknown_tool("Tool 'calc_v2' not found"));
    CHECK(halo_text_says_unknown_tool("function `fetch` does not exist"));
    CHECK(!halo_text_says_unknown_tool("tool returned: file not found"));
    CHECK(halo_text_says_invalid_input("'city' is a required property"));
    CHECK(!halo_text_says_invalid_input("order 12 not found"));
    CHECK(halo_text_says_context_limit("context_length_exceeded"));
}

TEST(text_normalization)
{
    halo_buf b = HALO_BUF_INIT;
    halo_text_normalize_message("order 48213 not found in shard 3 "
                                "(req a3f9c2e1d4b7, user 'bob')",
                                &b);
    halo_buf_putc(&b, '\0');
    CHECK_STR(b.data, "order <n> not found in shard <n> (req <id>, user "
                      "<s>)");
    halo_buf_reset(&b);
    /* a token of dots only (found by fuzz_detect: it never ended) */
    halo_text_normalize_message("... failed at step 3.", &b);
    halo_buf_putc(&b, '\0');
    CHECK_STR(b.data, "... failed at step <n>.");
    halo_buf_reset(&b);
    halo_text_normalize_message("gpt-4o v2 ERR_42 ORD-106167 deadbeef00", &b);
    halo_buf_putc(&b, '\0');
    CHECK_STR(b.data, "gpt-4o v2 ERR_42 <id> <id>");
    halo_buf_reset(&b);
    halo_text_normalize_args("{ \"b\": 1,\n \"a\": [2, 3] }", &b);
    halo_buf_putc(&b, '\0');
    CHECK_STR(b.data, "{\"a\":[2,3],\"b\":1}");
    halo_buf_reset(&b);
    halo_text_normalize_args("  not   json  ", &b);
    halo_buf_putc(&b, '\0');
    CHECK_STR(b.data, "not json");
    halo_buf_free(&b);
    CHECK(halo_text_similarity("weather in Paris", "weather paris") > 0.6);
    CHECK(halo_text_similarity("weather in Paris", "stock price") < 0.1);
    CHECK(halo_text_similarity(NULL, "") == 1.0);
}

/* ---- the report -----------------------------------------------------------
 */

TEST(report_json_follows_the_contract_and_markdown_its_layout)
{
    halo_report *r = with_pattern(retry_run, 12);
    r->agent_id = strdup("support");
    r->schedule = strdup("hourly");
    r->mode = "detectors";
    r->window_start_ns = T0;
    r->window_end_ns = T0 + 3600000000000ull;
    r->generated_at_ns = T0 + 3700000000000ull;
    r->stats.traces = 212;
    r->stats.p50_ms = 0.139; /* below a millisecond */
    r->stats.p95_ms = 2500;
    halo_report_make_id(r->agent_id, r->schedule, T0, r->id);
    char id2[40];
    halo_report_make_id("support", "hourly", T0, id2);
    CHECK_STR(r->id, id2);
    char *js = halo_report_json(r);
    json_error_t e;
    json_t *j = json_loads(js, 0, &e);
    CHECK(j != NULL);
    const char *keys[] = {"schema", "id",           "agent_id", "schedule",
                          "window", "generated_at", "mode",     "model",
                          "stats",  "findings",     "budget"};
    CHECK_INT(json_object_size(j), sizeof keys / sizeof *keys);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CHECK(json_object_get(j, keys[i]) != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "schema")),
              "halo.report/v1");
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(j, "window"), "start")),
              "2026-11-18T11:06:40Z");
    CHECK(json_is_null(json_object_get(j, "model")));
    json_t *f = json_array_get(json_object_get(j, "findings"), 0);
    CHECK_INT(json_integer_value(json_object_get(f, "rank")), 1);
    CHECK_STR(json_string_value(json_object_get(f, "kind")), "tool_retry_loop");
    json_t *imp = json_object_get(f, "impact");
    CHECK_INT(json_integer_value(json_object_get(imp, "traces")), 12);
    CHECK(json_is_real(json_object_get(imp, "fraction")));
    json_t *ev = json_object_get(f, "evidence");
    CHECK_INT(json_array_size(json_object_get(ev, "trace_ids")), 12);
    CHECK_INT(strlen(json_string_value(
                  json_array_get(json_object_get(ev, "trace_ids"), 0))),
              32);
    CHECK_INT(strlen(json_string_value(
                  json_array_get(json_object_get(ev, "span_ids"), 0))),
              16);
    json_decref(j);
    free(js);
    char *md = halo_report_markdown(r);
    CHECK_CONTAINS(md, "# halo report: support\n");
    CHECK_CONTAINS(md, "\n## Summary\n");
    CHECK_CONTAINS(md, "\n## Agent stats\n");
    CHECK_CONTAINS(md, "\n## Findings\n");
    CHECK_CONTAINS(md, "\n### 1. `web_search` is retried after failing");
    CHECK_CONTAINS(md, "- **What:** ");
    CHECK_CONTAINS(md, "- **How often:** 12 of 212 runs");
    /* durations in the unit they round to, as `halo agents` shows them */
    CHECK_CONTAINS(md, " | 139.0us | 2.50s | ");
    char wasted[64];
    halo_fmt_duration(r->findings[0].wasted_ms, wasted, sizeof wasted);
    CHECK(strstr(wasted, "s") != NULL);
    CHECK_CONTAINS(md, wasted);
    CHECK_CONTAINS(md, "- **Examples:** `000000000000000000000000000000c9`");
    CHECK_CONTAINS(md, "- **Hypothesis:** ");
    CHECK_CONTAINS(md, "- **Recommendation:** ");
    CHECK_CONTAINS(md, " | $0.");
    free(md);
    /* tokens but no cost at all: no price is known, which is not "free" */
    r->stats.input_tokens = 1000;
    r->stats.cost = 0;
    md = halo_report_markdown(r);
    CHECK_CONTAINS(md, " | no price known |");
    free(md);
    /* ... unless spans carried a cost: a model priced at 0 is free */
    r->stats.priced_spans = 3;
    md = halo_report_markdown(r);
    CHECK_CONTAINS(md, " | $0.0000 |");
    CHECK(!strstr(md, "no price known"));
    free(md);
    halo_report_free(r);
}

static void evil_run(rb *r, int run)
{
    begin(r, run, T0 + (uint64_t)run * 60000000000ull);
    tool(r, "evil`\n\n# Injected\n![x](http://x.example/p.png)", 5,
         HALO_STATUS_ERROR, "{}", NULL)
        ->status_message = "Tool 'evil' not found";
    end(r, HALO_STATUS_OK);
}

/* Names come from users' spans: they cannot break out of the Markdown. */
TEST(markdown_names_stay_on_one_line)
{
    halo_report *r = with_pattern(evil_run, 9);
    r->agent_id = strdup("agent\n# fake heading");
    r->schedule = strdup("s`x");
    r->mode = "detectors";
    CHECK(r->n_findings == 1);
    CHECK(!strchr(r->findings[0].title, '\n'));
    char *md = halo_report_markdown(r);
    CHECK(md != NULL);
    CHECK(!strstr(md, "\n# Injected"));
    CHECK(!strstr(md, "\n# fake heading"));
    CHECK_CONTAINS(md, "# halo report: agent # fake heading\n");
    free(md);
    halo_report_free(r);
}

/* A run whose root span was not stored (every span has a parent): no
 * root to cite or to judge the run's end by (found by fuzz_detect: the
 * root index pointed past the spans). */
TEST(run_without_a_stored_root)
{
    halo_detect *d = halo_detect_new(NULL);
    for (int i = 0; i < 30; i++) {
        clean_run(&R, i, "gpt-4o-mini", 120);
        for (size_t k = 0; k < R.n; k++)
            snprintf(R.s[k].parent_span_id, 17, "%016x", 0xdead);
        add(d, &R);
    }
    halo_report *r = finish(d);
    CHECK_INT(r->n_findings, 0);
    halo_report_free(r);
    halo_detect_free(d);
}
