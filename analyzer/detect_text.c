/*
 * detect_text.c -- a group becomes a finding: its evidence (trace and span
 * ids), its measured impact, and its wording (title, what, hypothesis,
 * recommendation) -- one template per kind, filled with the group's
 * subject, counts and an example message. Then the findings are scored,
 * given a severity, sorted and ranked (README.md, Impact).
 */
#include "detect_int.h"
#include "text.h"

#include "../core/buf.h"
#include "../core/span.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

halo_finding *finding_new(halo_report *r)
{
    halo_finding *f =
        realloc(r->findings, (r->n_findings + 1) * sizeof *r->findings);
    if (!f)
        return NULL;
    r->findings = f;
    f = &r->findings[r->n_findings++];
    memset(f, 0, sizeof *f);
    return f;
}

static void example_text(const char *s, char *out, size_t cap)
{
    halo_text_one_line(s, out, cap < 124 ? cap : 124);
}

/* "TOOL:search" -> "tool `search`", "LLM:gpt-4o" -> "model `gpt-4o`". */
static void step_label(const char *step, char *out, size_t cap)
{
    const char *colon = strchr(step, ':');
    if (!colon) {
        snprintf(out, cap, "`%s`", step);
        return;
    }
    const char *what = "step";
    if (!strncmp(step, "TOOL:", 5))
        what = "tool";
    else if (!strncmp(step, "LLM:", 4))
        what = "LLM calls of model";
    else if (!strncmp(step, "RETRIEVER:", 10))
        what = "retriever";
    snprintf(out, cap, "%s `%s`", what, colon + 1);
}

static void iso_minute(uint64_t ns, char *out, size_t cap)
{
    char iso[HALO_ISO_NS_LEN];
    halo_iso_from_ns(ns, iso);
    snprintf(out, cap, "%.16sZ", iso);
}

static void money_or_tokens(double v, bool cost, char *out, size_t cap)
{
    if (cost)
        snprintf(out, cap, "$%.4f", v);
    else
        snprintf(out, cap, "%.0f tokens", v);
}

/* The four texts of g; false on out-of-memory. */
static bool word(const halo_detect *d, const group *g, halo_finding *f)
{
    size_t n = g->n_runs, total = d->n_runs;
    double share = total ? 100.0 * (double)n / (double)total : 0;
    /* names come from users' spans: one line, no Markdown code breaks */
    char subj[400];
    halo_text_one_line(g->subject, subj, sizeof subj);
    const char *s = subj;
    long long occ = (long long)g->occurrences;
    char ex[160];
    example_text(g->example, ex, sizeof ex);
    const char *k = g->kind;
    if (!strcmp(k, HALO_KIND_RETRY_LOOP)) {
        f->title = halo_text_printf(
            "`%s` is retried after failing, in %zu runs", s, n);
        f->what = halo_text_printf(
            "`%s` returned a failed result and the agent called it again "
            "with the same or near-identical arguments: %lld loops of %.1f "
            "retries on average, in %zu of %zu runs (%.1f%%).",
            s, occ, occ ? (double)g->extra / (double)occ : 0, n, total, share);
        f->hypothesis = halo_text_printf(
            "The agent does not act on the failure it gets back (e.g. \"%s\") "
            "and repeats the call; the tool keeps failing for these "
            "arguments, so every retry is wasted.",
            ex);
        f->recommendation = halo_text_printf(
            "Make `%s` return an actionable error, cap identical retries (one "
            "retry with backoff), and let the model change its arguments or "
            "give up after a failure.",
            s);
    } else if (!strcmp(k, HALO_KIND_SILENT_FAILURE)) {
        f->title =
            halo_text_printf("%s reports success but returns an error, in %zu "
                             "runs",
                             s, n);
        f->what = halo_text_printf(
            "%lld spans of %s ended with status OK/UNSET while "
            "their output carried an error, in %zu of %zu runs "
            "(%.1f%%).",
            occ, s, n, total, share);
        f->hypothesis = halo_text_printf(
            "The step catches its failure and returns the error as a normal "
            "result (e.g. \"%s\"), so the span status hides it from error "
            "rates and alerts, and the agent may take the error for data.",
            ex);
        f->recommendation = halo_text_printf(
            "Set the span status to ERROR when the step fails, and make the "
            "agent check results for errors before using them.");
    } else if (!strcmp(k, HALO_KIND_DUPLICATE_CALL)) {
        f->title = halo_text_printf(
            "`%s` is called again with identical arguments, in "
            "%zu runs",
            s, n);
        f->what = halo_text_printf(
            "%lld calls of `%s` repeated an earlier successful call with the "
            "same arguments and got the same result back, in %zu of %zu runs "
            "(%.1f%%); they took %.0f ms in all.",
            occ, s, n, total, share, g->wasted_ms);
        f->hypothesis = halo_text_printf(
            "The agent loses track of results it already has (e.g. arguments "
            "%s): the earlier result fell out of its context, or its plan "
            "re-runs finished steps.",
            ex);
        f->recommendation = halo_text_printf(
            "Keep tool results in the agent's context or cache them within a "
            "run, and skip a call identical to one already answered.");
    } else if (!strcmp(k, HALO_KIND_INVALID_INPUT)) {
        f->title =
            halo_text_printf("`%s` rejects the arguments it is called with, in "
                             "%zu runs",
                             s, n);
        f->what =
            halo_text_printf("%lld calls of `%s` were rejected because their "
                             "arguments violate its schema, in %zu of %zu runs "
                             "(%.1f%%).",
                             occ, s, n, total, share);
        f->hypothesis = halo_text_printf(
            "The model writes arguments that do not match the tool's schema "
            "(e.g. \"%s\"): the tool's description or schema is unclear or "
            "out of date.",
            ex);
        f->recommendation = halo_text_printf(
            "Tighten `%s`'s description and JSON schema (required fields, "
            "types, an example), validate arguments before the call, and "
            "return the validation error to the model so it can fix the call.",
            s);
    } else if (!strcmp(k, HALO_KIND_UNKNOWN_TOOL)) {
        f->title =
            halo_text_printf("The model requests a tool that does not exist "
                             "(`%s`), in %zu runs",
                             s, n);
        f->what =
            halo_text_printf("%lld requests for `%s`, which is not one of the "
                             "agent's tools, in %zu of %zu runs (%.1f%%).",
                             occ, s, n, total, share);
        f->hypothesis = halo_text_printf(
            "The model invents a tool name (e.g. \"%s\"): a renamed or "
            "removed tool is still mentioned in the prompt, or the name is "
            "close to a real one.",
            ex);
        f->recommendation = halo_text_printf(
            "Remove stale tool names from the prompt and examples, map close "
            "names to the real tools, and answer an unknown tool with the "
            "list of valid ones.");
    } else if (!strcmp(k, HALO_KIND_CONTEXT_GROWTH)) {
        f->title =
            halo_text_printf("The context grows until the run fails, in %zu "
                             "runs",
                             n);
        f->what = halo_text_printf(
            "In %zu of %zu runs (%.1f%%) the prompt grew at almost every LLM "
            "call, by %.0f tokens per run on average, and the run ended in "
            "failure or truncation.",
            n, total, share, occ ? (double)g->extra / (double)occ : 0);
        f->hypothesis = halo_text_printf(
            "The agent keeps every message and tool result in its context "
            "without trimming until it reaches the model's limit (e.g. "
            "\"%s\").",
            ex);
        f->recommendation = halo_text_printf(
            "Summarize or drop old turns and large tool outputs, cap the "
            "number of steps, and stop or compact before the context limit.");
    } else if (!strcmp(k, HALO_KIND_ERROR_CLUSTER)) {
        char ex80[100];
        example_text(g->example, ex80, 90);
        f->title =
            halo_text_printf("`%s` fails with \"%s\", in %zu runs", s, ex80, n);
        f->what = halo_text_printf(
            "%lld errors of `%s` with the same message (up to ids and "
            "numbers) in %zu of %zu runs (%.1f%%); %lld of those runs did "
            "not recover.",
            occ, s, n, total, share, (long long)g->unrec_runs);
        f->hypothesis = halo_text_printf(
            "A systematic failure of `%s` (\"%s\"): it recurs across runs "
            "with the same message, so it has a common cause (missing data, "
            "a configuration, a failing dependency), not chance.",
            s, ex);
        f->recommendation = halo_text_printf(
            "Open the example traces, fix the cause or handle this error "
            "explicitly in `%s` (validate inputs, retry with backoff only if "
            "transient, give the agent a fallback).",
            s);
    } else if (!strcmp(k, HALO_KIND_SLOW_SPAN) && g->num[3] < 0) {
        char label[300];
        step_label(s, label, sizeof label);
        f->title = halo_text_printf(
            "%s is consistently slow: median %.0f ms, %.0fx "
            "its peers'",
            label, g->num[0], g->num[2] > 0 ? g->num[0] / g->num[2] : 0);
        f->what = halo_text_printf(
            "%lld spans of %s had a median of %.0f ms (p95 %.0f ms), while "
            "the median of the other steps of its kind is %.0f ms; it ran in "
            "%zu of %zu runs (%.1f%%).",
            occ, label, g->num[0], g->num[1], g->num[2], n, total, share);
        f->hypothesis = halo_text_printf(
            "The step itself is slow every time (a slow dependency, large "
            "payloads, no caching), so it sets the pace of every run that "
            "uses it.");
        f->recommendation = halo_text_printf(
            "Profile the step: cache its results, shrink its inputs, use a "
            "faster model or endpoint, or run it in parallel with other "
            "work.");
    } else if (!strcmp(k, HALO_KIND_SLOW_SPAN)) {
        char label[300];
        step_label(s, label, sizeof label);
        f->title =
            halo_text_printf("%s is slow in %zu runs (slow calls' median %.0f "
                             "ms, usual %.0f ms)",
                             label, n, g->num[2], g->num[0]);
        f->what = halo_text_printf(
            "%lld spans of %s took %.0f ms or more (p50 %.0f ms, p95 %.0f "
            "ms over the window; the slow ones' median %.0f ms), in %zu of "
            "%zu runs (%.1f%%).",
            occ, label, g->num[3], g->num[0], g->num[1], g->num[2], n, total,
            share);
        f->hypothesis = halo_text_printf(
            "The step is intermittently slow: a slow or rate-limited "
            "dependency, unusually large inputs, or timeouts and retries "
            "inside the step.");
        f->recommendation = halo_text_printf(
            "Compare the slow spans' inputs with fast ones; give the step a "
            "timeout with a fallback, cache its results, or run it in "
            "parallel with other work.");
    } else { /* regressions */
        bool latency = !strcmp(k, HALO_KIND_LATENCY_REGRESSION);
        char at[40], b[40], a[40];
        iso_minute(g->at_ns, at, sizeof at);
        if (latency) {
            snprintf(b, sizeof b, "%.0f ms", g->num[0]);
            snprintf(a, sizeof a, "%.0f ms", g->num[1]);
        } else {
            money_or_tokens(g->num[0], g->num[3] != 0, b, sizeof b);
            money_or_tokens(g->num[1], g->num[3] != 0, a, sizeof a);
        }
        double ratio = g->num[0] > 0 ? g->num[1] / g->num[0] : 0;
        const char *metric = latency          ? "duration"
                             : g->num[3] != 0 ? "cost"
                                              : "token count";
        f->title =
            halo_text_printf("Run %s rose %.1fx from %s", metric, ratio, at);
        f->what = halo_text_printf(
            "From %s, the median %s per run went from %s to %s "
            "(%.1fx), over the %zu runs since (%.1f%% of the "
            "window).",
            at, metric, b, a, ratio, n, share);
        char *part2 = NULL;
        const char *sep = strchr(s, '\x1f');
        if (latency && sep) {
            char step[300], label[320];
            double sb = 0, sa = 0;
            snprintf(step, sizeof step, "%.*s", (int)(sep - s), s);
            sscanf(sep + 1, "%lf\x1f%lf", &sb, &sa);
            step_label(step, label, sizeof label);
            part2 = halo_text_printf(
                "The largest change is in %s, whose median went "
                "from %.0f ms to %.0f ms.",
                label, sb, sa);
        } else if (sep) {
            part2 =
                halo_text_printf("The runs' main model changed from `%.*s` to "
                                 "`%s` at that point.",
                                 (int)(sep - s), s, sep + 1);
        }
        f->hypothesis = halo_text_printf(
            "Something changed at %s: a deployment, a model, a prompt, a tool "
            "or a dependency. %s",
            at,
            part2 ? part2
                  : (latency ? "No single step explains it."
                             : "The model stayed the same: prompts, "
                               "retrieved context or tool outputs grew."));
        free(part2);
        f->recommendation = halo_text_printf(
            "Compare a run before and after %s (halo traces show) and revert "
            "or confirm the change; watch the %s per run.",
            at, metric);
    }
    return f->title && f->what && f->hypothesis && f->recommendation;
}

bool finding_from_group(halo_detect *d, const group *g, halo_report *r)
{
    halo_finding *f = finding_new(r);
    if (!f)
        return false;
    f->kind = g->kind;
    f->traces = (int64_t)g->n_runs;
    f->fraction = d->n_runs ? (double)g->n_runs / (double)d->n_runs : 0;
    f->wasted_ms = g->wasted_ms;
    f->wasted_tokens = g->wasted_tokens;
    f->wasted_cost = g->wasted_cost;
    size_t nt = g->n_runs;
    if ((int64_t)nt > d->cfg.max_evidence)
        nt = (size_t)d->cfg.max_evidence;
    f->trace_ids = calloc(nt ? nt : 1, sizeof *f->trace_ids);
    f->span_ids = calloc(g->n_spans ? g->n_spans : 1, sizeof *f->span_ids);
    if (!f->trace_ids || !f->span_ids)
        return false;
    for (size_t i = 0; i < nt; i++) {
        if (!(f->trace_ids[i] = malloc(33)))
            return false;
        halo_hex_encode(d->runs[g->runs[i]].trace_id, 16, f->trace_ids[i]);
        f->n_trace_ids++;
    }
    for (size_t i = 0; i < g->n_spans; i++) {
        if (!(f->span_ids[i] = malloc(17)))
            return false;
        halo_hex_encode(g->spans[i], 8, f->span_ids[i]);
        f->n_span_ids++;
    }
    return word(d, g, f);
}

/* ---- ranking ------------------------------------------------------------- */

static double share(double part, double whole)
{
    if (!(whole > 0) || !(part > 0))
        return 0;
    return part >= whole ? 1 : part / whole;
}

static int cmp_findings(const void *a, const void *b)
{
    const halo_finding *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->traces != y->traces)
        return x->traces > y->traces ? -1 : 1;
    int c = strcmp(x->kind, y->kind);
    return c ? c : strcmp(x->title, y->title);
}

void halo_findings_rank(halo_report *r)
{
    double ms = r->total_ms, cost = r->total_cost, tokens = r->total_tokens;
    for (size_t i = 0; i < r->n_findings; i++) {
        halo_finding *f = &r->findings[i];
        double waste = share(f->wasted_ms, ms);
        double wt = share((double)f->wasted_tokens, tokens);
        double wc = share(f->wasted_cost, cost);
        f->score = f->fraction + waste + wt + wc;
        double top = f->fraction;
        top = waste > top ? waste : top;
        top = wt > top ? wt : top;
        top = wc > top ? wc : top;
        f->severity = top >= 0.2 ? "high" : top >= 0.05 ? "medium" : "low";
    }
    if (r->n_findings > 1)
        qsort(r->findings, r->n_findings, sizeof *r->findings, cmp_findings);
    for (size_t i = 0; i < r->n_findings; i++)
        r->findings[i].rank = (int)i + 1;
}
