/*
 * report.c -- the report in its two forms: JSON exactly per the
 * halo.report/v1 contract (DESIGN §7; impact carries three more measured
 * figures: wasted_ms, wasted_tokens, wasted_cost), and Markdown for people
 * with the same content. Both are written by hand into a halo_buf so the
 * key order is the contract's and numbers keep their type (integers as
 * integers, doubles with a '.').
 */
#include "analyzer.h"

#include "../core/buf.h"
#include "../core/trace_tree.h"
#include "text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void halo_finding_clear(halo_finding *f)
{
    free(f->title);
    free(f->what);
    free(f->hypothesis);
    free(f->recommendation);
    for (size_t k = 0; k < f->n_trace_ids; k++)
        free(f->trace_ids[k]);
    for (size_t k = 0; k < f->n_span_ids; k++)
        free(f->span_ids[k]);
    free(f->trace_ids);
    free(f->span_ids);
    memset(f, 0, sizeof *f);
}

void halo_report_free(halo_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_findings; i++)
        halo_finding_clear(&r->findings[i]);
    free(r->findings);
    free(r->agent_id);
    free(r->schedule);
    free(r->model);
    free(r->note);
    free(r);
}

void halo_report_make_id(const char *agent_id, const char *schedule,
                         uint64_t window_start_ns, char out[40])
{
    halo_buf b = HALO_BUF_INIT;
    halo_buf_printf(&b, "%s\x1f%s\x1f%" PRIu64, agent_id ? agent_id : "",
                    schedule ? schedule : "", window_start_ns);
    uint64_t h = halo_text_hash(b.data ? b.data : "", b.len);
    halo_buf_free(&b);
    snprintf(out, 40, "r-%016" PRIx64, h);
}

/* "2026-11-16T09:00:00Z", with 9 fractional digits only when needed. */
static void iso(uint64_t ns, char out[HALO_ISO_NS_LEN])
{
    halo_iso_from_ns(ns, out);
    if (ns % 1000000000u == 0)
        strcpy(out + 19, "Z");
}

/* ---- JSON ---------------------------------------------------------------- */

static void key(halo_buf *b, const char *k)
{
    halo_buf_json_str(b, k, strlen(k));
    halo_buf_putc(b, ':');
}

static void str_or_null(halo_buf *b, const char *s)
{
    if (s)
        halo_buf_json_str(b, s, strlen(s));
    else
        halo_buf_puts(b, "null");
}

static void kv_str(halo_buf *b, const char *k, const char *v, bool comma)
{
    key(b, k);
    str_or_null(b, v);
    if (comma)
        halo_buf_putc(b, ',');
}

static void kv_int(halo_buf *b, const char *k, int64_t v, bool comma)
{
    key(b, k);
    halo_buf_json_int(b, v);
    if (comma)
        halo_buf_putc(b, ',');
}

static void kv_dbl(halo_buf *b, const char *k, double v, bool comma)
{
    key(b, k);
    halo_buf_json_double(b, v);
    if (comma)
        halo_buf_putc(b, ',');
}

static void id_array(halo_buf *b, char *const *ids, size_t n)
{
    halo_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            halo_buf_putc(b, ',');
        halo_buf_json_str(b, ids[i], strlen(ids[i]));
    }
    halo_buf_putc(b, ']');
}

static void finding_json(halo_buf *b, const halo_finding *f)
{
    halo_buf_putc(b, '{');
    kv_int(b, "rank", f->rank, true);
    kv_str(b, "kind", f->kind, true);
    kv_str(b, "title", f->title, true);
    kv_str(b, "severity", f->severity, true);
    key(b, "impact");
    halo_buf_putc(b, '{');
    kv_int(b, "traces", f->traces, true);
    kv_dbl(b, "fraction", f->fraction, true);
    kv_dbl(b, "wasted_ms", f->wasted_ms, true);
    kv_int(b, "wasted_tokens", f->wasted_tokens, true);
    kv_dbl(b, "wasted_cost", f->wasted_cost, false);
    halo_buf_puts(b, "},");
    key(b, "evidence");
    halo_buf_putc(b, '{');
    key(b, "trace_ids");
    id_array(b, f->trace_ids, f->n_trace_ids);
    halo_buf_putc(b, ',');
    key(b, "span_ids");
    id_array(b, f->span_ids, f->n_span_ids);
    halo_buf_puts(b, "},");
    kv_str(b, "hypothesis", f->hypothesis, true);
    kv_str(b, "recommendation", f->recommendation, false);
    halo_buf_putc(b, '}');
}

char *halo_report_json(const halo_report *r)
{
    halo_buf b = HALO_BUF_INIT;
    char t[HALO_ISO_NS_LEN];
    halo_buf_putc(&b, '{');
    kv_str(&b, "schema", "halo.report/v1", true);
    kv_str(&b, "id", r->id, true);
    kv_str(&b, "agent_id", r->agent_id, true);
    kv_str(&b, "schedule", r->schedule, true);
    key(&b, "window");
    halo_buf_putc(&b, '{');
    iso(r->window_start_ns, t);
    kv_str(&b, "start", t, true);
    iso(r->window_end_ns, t);
    kv_str(&b, "end", t, false);
    halo_buf_puts(&b, "},");
    iso(r->generated_at_ns, t);
    kv_str(&b, "generated_at", t, true);
    kv_str(&b, "mode", r->mode, true);
    kv_str(&b, "model", r->model, true);
    const halo_report_stats *s = &r->stats;
    key(&b, "stats");
    halo_buf_putc(&b, '{');
    kv_int(&b, "traces", s->traces, true);
    kv_int(&b, "spans", s->spans, true);
    kv_int(&b, "error_traces", s->error_traces, true);
    kv_dbl(&b, "p50_ms", s->p50_ms, true);
    kv_dbl(&b, "p95_ms", s->p95_ms, true);
    kv_int(&b, "input_tokens", s->input_tokens, true);
    kv_int(&b, "output_tokens", s->output_tokens, true);
    kv_dbl(&b, "cost", s->cost, false);
    halo_buf_puts(&b, "},");
    key(&b, "findings");
    halo_buf_putc(&b, '[');
    for (size_t i = 0; i < r->n_findings; i++) {
        if (i)
            halo_buf_putc(&b, ',');
        finding_json(&b, &r->findings[i]);
    }
    halo_buf_puts(&b, "],");
    key(&b, "budget");
    halo_buf_putc(&b, '{');
    kv_int(&b, "llm_calls", r->budget.llm_calls, true);
    kv_int(&b, "max_depth_reached", r->budget.max_depth_reached, true);
    kv_int(&b, "input_tokens", r->budget.input_tokens, true);
    kv_int(&b, "output_tokens", r->budget.output_tokens, false);
    halo_buf_puts(&b, "}}\n");
    return halo_buf_steal(&b);
}

/* ---- Markdown ------------------------------------------------------------ */

enum { MD_EXAMPLES = 5 };

static void md_finding(halo_buf *b, const halo_finding *f, int64_t runs)
{
    halo_buf_printf(b, "### %d. %s\n\n", f->rank, f->title);
    halo_buf_printf(b, "*`%s`, severity %s*\n\n", f->kind, f->severity);
    halo_buf_printf(b, "- **What:** %s\n", f->what);
    char wasted[32];
    halo_fmt_duration(f->wasted_ms, wasted, sizeof wasted);
    halo_buf_printf(b,
                    "- **How often:** %" PRId64 " of %" PRId64
                    " runs (%.1f%%); wasted %s, %" PRId64 " tokens",
                    f->traces, runs, 100.0 * f->fraction, wasted,
                    f->wasted_tokens);
    /* No cost at all: no price is known, which is not "free". */
    if (f->wasted_cost > 0)
        halo_buf_printf(b, ", $%.4f", f->wasted_cost);
    halo_buf_puts(b, ".\n");
    halo_buf_puts(b, "- **Examples:** ");
    size_t n = f->n_trace_ids < MD_EXAMPLES ? f->n_trace_ids : MD_EXAMPLES;
    for (size_t i = 0; i < n; i++)
        halo_buf_printf(b, "%s`%s`", i ? ", " : "", f->trace_ids[i]);
    if (f->n_trace_ids > n)
        halo_buf_printf(b, " and %zu more", f->n_trace_ids - n);
    if (n)
        halo_buf_printf(b, " (see `halo traces show %s`)", f->trace_ids[0]);
    halo_buf_puts(b, "\n");
    halo_buf_printf(b, "- **Hypothesis:** %s\n", f->hypothesis);
    halo_buf_printf(b, "- **Recommendation:** %s\n\n", f->recommendation);
}

void halo_report_cost_text(const halo_report_stats *s, char *out, size_t n)
{
    if (halo_cost_unpriced(s->cost, s->priced_spans, s->input_tokens,
                           s->output_tokens))
        snprintf(out, n, "no price known");
    else
        snprintf(out, n, "$%.4f", s->cost);
}

char *halo_report_markdown(const halo_report *r)
{
    halo_buf b = HALO_BUF_INIT;
    char ws[HALO_ISO_NS_LEN], we[HALO_ISO_NS_LEN], gen[HALO_ISO_NS_LEN];
    iso(r->window_start_ns, ws);
    iso(r->window_end_ns, we);
    iso(r->generated_at_ns, gen);
    const halo_report_stats *s = &r->stats;
    char agent[300], sched[300];
    halo_text_one_line(r->agent_id, agent, sizeof agent);
    halo_text_one_line(r->schedule, sched, sizeof sched);
    halo_buf_printf(&b, "# halo report: %s\n\n", agent);
    halo_buf_printf(&b,
                    "Schedule `%s`, window %s to %s, generated %s by the %s "
                    "(report `%s`).\n\n",
                    sched, ws, we, gen, r->mode, r->id);
    if (r->note) {
        char note[600];
        halo_text_one_line(r->note, note, sizeof note);
        halo_buf_printf(&b, "> **Note:** %s\n\n", note);
    }
    halo_buf_puts(&b, "## Summary\n\n");
    if (s->traces == 0 && r->n_findings == 0) {
        halo_buf_puts(&b, "No runs of this agent in this window.\n\n");
    } else if (r->n_findings == 0) {
        halo_buf_puts(&b, "No recurring problems found in this window.\n\n");
    } else {
        halo_buf_printf(&b,
                        "%zu recurring problem%s found in %" PRId64
                        " runs. The largest: %s.\n\n",
                        r->n_findings, r->n_findings == 1 ? "" : "s", s->traces,
                        r->findings[0].title);
        for (size_t i = 0; i < r->n_findings; i++)
            halo_buf_printf(&b, "%zu. `%s` (%s): %s\n", i + 1,
                            r->findings[i].kind, r->findings[i].severity,
                            r->findings[i].title);
        halo_buf_puts(&b, "\n");
    }
    halo_buf_puts(&b, "## Agent stats\n\n");
    halo_buf_puts(&b, "| runs | spans | runs with errors | p50 | p95 | input "
                      "tokens | output tokens | cost |\n");
    halo_buf_puts(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    char cost[64], p50[32], p95[32];
    halo_report_cost_text(s, cost, sizeof cost);
    /* the unit each rounds to, as `halo agents` shows them: 139.0us, not
     * 0 ms */
    halo_fmt_duration(s->p50_ms, p50, sizeof p50);
    halo_fmt_duration(s->p95_ms, p95, sizeof p95);
    halo_buf_printf(
        &b,
        "| %" PRId64 " | %" PRId64 " | %" PRId64
        " (%.1f%%) | %s | %s | %" PRId64 " | %" PRId64 " | %s |\n\n",
        s->traces, s->spans, s->error_traces,
        s->traces ? 100.0 * (double)s->error_traces / (double)s->traces : 0.0,
        p50, p95, s->input_tokens, s->output_tokens, cost);
    halo_buf_puts(&b, "## Findings\n\n");
    if (r->n_findings == 0)
        halo_buf_puts(&b, "No recurring problems found in this window.\n");
    for (size_t i = 0; i < r->n_findings; i++)
        md_finding(&b, &r->findings[i], s->traces);
    return halo_buf_steal(&b);
}
