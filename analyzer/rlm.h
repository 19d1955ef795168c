/*
 * rlm.h -- the RLM engine (DESIGN §7, issue 6): a language model that
 * investigates one agent's window through tools and recursive sub-calls,
 * and writes the report's findings.
 *
 * The root call gets the system prompt (prompts/system.md), the question
 * (the schedule's prompt, else prompts/default.md) and a compact overview
 * of the window (counts, the detector findings). Its tools:
 *
 *   sql          one read-only SELECT over `spans` and `traces`, which show
 *                only this agent's runs in the window (store sql_query)
 *   view_trace   one run as an indented tree, inputs and outputs cut short
 *   search       text search in span inputs, outputs and status messages
 *   detectors    the deterministic findings, as evidence
 *   subquery     a fresh sub-call, with its own conversation, on a question
 *                about some runs; depth-limited (max_depth)
 *   final_report the findings (root call); a sub-call ends with `answer`
 *
 * Budgets: max_turns per call (the model is told the turns left with every
 * tool result; when they run out one last call allows only final_report),
 * a token budget over every call and a wall-clock deadline. Everything sent
 * to the model passes through the redactor first. Cited trace ids are
 * checked against the store; invented ones are dropped and counted.
 *
 * Every request and reply is appended to a transcript (JSON lines) when a
 * path is given: the audit trail next to the report.
 */
#ifndef HALO_RLM_H
#define HALO_RLM_H

#include "../storage/store.h"
#include "analyzer.h"
#include "analyzer_config.h"
#include "redact.h"

typedef struct halo_rlm_opts {
    const halo_llm_cfg *llm;
    const halo_redactor *redactor; /* required */
    const char *prompt;            /* NULL: prompts/default.md */
    int64_t max_depth;             /* sub-call nesting (default 2) */
    int64_t max_turns;             /* per call (default 20) */
    int64_t token_budget;          /* prompt + completion, all calls; 0: none */
    int64_t timeout_ns;          /* wall clock for the investigation; 0: none */
    int64_t span_limit;          /* spans view_trace shows; 0: 200 */
    const char *transcript_path; /* NULL: no transcript */
    /* Sub-calls asked for in one turn run in parallel, this many at a time,
     * each with its own client and its own store handle opened from
     * store_spec (NULL, or max_parallel <= 1: one at a time). */
    int64_t max_parallel;
    const char *store_spec;
} halo_rlm_opts;

typedef struct halo_rlm_stats {
    int64_t llm_calls;
    int64_t max_depth_reached;
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t tool_calls;
    int64_t invented_ids; /* cited trace ids not in the window: dropped */
    bool forced_final;    /* turns or budget ran out */
} halo_rlm_stats;

/* Investigate r's window (r: the detectors' report of req's window, its
 * stats and findings already there). On success r becomes the RLM report:
 * mode "rlm", model set, the model's findings (cited ids checked, impact
 * measured, kinds outside the ten named "other") ranked with the
 * detectors' by impact, budget filled. When the model cannot be reached or
 * fails, r is left as it was (mode "detectors") and the error says why:
 * the caller keeps the detectors' report and notes the fallback. */
halo_status halo_rlm_investigate(halo_store *st, const halo_analyze_req *req,
                                 const halo_rlm_opts *o, halo_report *r,
                                 halo_rlm_stats *stats, halo_err *err);

/* A follow-up question on a stored report (its JSON; its agent and window
 * in req): a call with the same tools, given the report, ending with
 * `answer`. *answer: malloc'd text (the answer, then the runs it cites). */
halo_status halo_rlm_chat(halo_store *st, const halo_analyze_req *req,
                          const halo_rlm_opts *o, const char *report_json,
                          const char *question, char **answer,
                          halo_rlm_stats *stats, halo_err *err);

/* ro filled from the configuration: the model of a, the prompt and the
 * budgets of schedule sc (the rest zero: redactor, transcript, store spec
 * are the caller's). */
void halo_rlm_opts_init(halo_rlm_opts *ro, const halo_analyzer_config *a,
                        const halo_schedule_cfg *sc);

/* The transcript beside a report: <dir>/<agent>/<schedule>/<window-start>
 * .transcript.jsonl into out (directories created); false when the path
 * cannot be made. */
bool halo_transcript_path(const char *dir, const char *agent_id,
                          const char *schedule, uint64_t window_start_ns,
                          char *out, size_t cap);

/* ---- one analysis, with the model when there is one ---------------------- */

typedef struct halo_investigate_opts {
    const halo_analyzer_config *acfg;
    const halo_schedule_cfg *sched; /* budgets and prompt; NULL: defaults */
    const char *prompt;             /* overrides the schedule's */
    const char *reports_dir;        /* the transcript beside the report;
                                       NULL: none kept */
    const char *store_spec;         /* st's spec: parallel sub-calls open their
                                       own handles (NULL: sub-calls in turn) */
} halo_investigate_opts;

/* The detectors (halo_analyze), then, when analyzer.llm has a base_url,
 * the RLM engine over the same window. When the model cannot be used the
 * detectors' report stands, with a note saying why (never no report). With
 * no model configured nothing leaves the machine. */
halo_status halo_investigate(halo_store *st, const halo_analyze_req *req,
                             const halo_investigate_opts *o, halo_report **out,
                             halo_err *err);

#endif
