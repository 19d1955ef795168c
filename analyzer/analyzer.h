/*
 * analyzer.h -- one analysis of one agent's runs over one window: the
 * deterministic detectors (README.md documents each algorithm), the
 * findings they produce, and the report (DESIGN §7, halo.report/v1).
 *
 * Flow (run.c): halo_analyze() reads the window's statistics, then streams
 * the window's traces from the store (scan_window) into a halo_detect
 * accumulator -- one call per trace, which keeps only compact per-run
 * observations -- then halo_detect_finish() turns the observations into
 * findings ranked by impact. halo_report_json()/_markdown() render the
 * report; halo_report_save() writes it to the store and reports_dir.
 *
 * Ownership: a halo_report owns everything it points to (free with
 * halo_report_free).
 */
#ifndef HALO_ANALYZER_H
#define HALO_ANALYZER_H

#include "../core/config.h"
#include "../core/status.h"
#include "../storage/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- thresholds (analyzer.detectors in halo.yaml) -------------------- */

typedef struct halo_detect_config {
    int64_t min_traces;        /* a pattern recurs in at least this many runs */
    double min_fraction;       /* ... and this share of the window's runs */
    int64_t max_evidence;      /* trace ids / span ids cited per finding */
    int64_t retry_min_retries; /* calls after the first failure */
    double retry_similarity;   /* word-set Jaccard for near-identical args */
    int64_t slow_min_samples;
    double slow_factor;      /* slow: >= factor x the step's p25 */
    int64_t slow_min_excess; /* ... and >= this many ns over its median */
    double slow_peer_factor; /* consistently slow: x its peers' median */
    int64_t slow_peer_min;   /* ... and a median of at least this (ns) */
    int64_t context_min_calls;
    double context_growth;         /* last / first input tokens */
    int64_t regression_min_runs;   /* on each side of a change point */
    double regression_ratio;       /* median after / median before */
    double regression_min_t;       /* two-sample t statistic of log values */
    double recovered_min_fraction; /* error_cluster of recovered errors */
} halo_detect_config;

/* The schema of analyzer.detectors (defaults in the table). */
extern const halo_field halo_detect_schema[];
/* cfg filled with the defaults. */
void halo_detect_config_defaults(halo_detect_config *cfg);

/* ---- findings and reports ---------------------------------------------- */

/* The ten finding kinds, stable names (DESIGN §7). */
#define HALO_KIND_RETRY_LOOP "tool_retry_loop"
#define HALO_KIND_SILENT_FAILURE "silent_failure"
#define HALO_KIND_DUPLICATE_CALL "duplicate_tool_call"
#define HALO_KIND_SLOW_SPAN "slow_span"
#define HALO_KIND_INVALID_INPUT "invalid_tool_input"
#define HALO_KIND_UNKNOWN_TOOL "unknown_tool"
#define HALO_KIND_CONTEXT_GROWTH "context_growth"
#define HALO_KIND_COST_REGRESSION "cost_regression"
#define HALO_KIND_ERROR_CLUSTER "error_cluster"
#define HALO_KIND_LATENCY_REGRESSION "latency_regression"

typedef struct halo_finding {
    int rank; /* 1 = highest impact */
    const char *kind;
    char *title;
    const char *severity; /* "high" | "medium" | "low" */
    char *what;           /* one sentence: what recurs (Markdown) */
    int64_t traces;       /* runs affected */
    double fraction;      /* traces / the window's runs */
    double wasted_ms;
    int64_t wasted_tokens;
    double wasted_cost;
    double score;     /* ranking key (README.md, Impact) */
    char **trace_ids; /* 32 hex each, at most max_evidence */
    size_t n_trace_ids;
    char **span_ids; /* 16 hex each, at most max_evidence */
    size_t n_span_ids;
    char *hypothesis;
    char *recommendation;
} halo_finding;

typedef struct halo_report_stats {
    int64_t traces;
    int64_t spans;
    int64_t error_traces;
    double p50_ms;
    double p95_ms;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost;
    int64_t priced_spans; /* spans that carried a cost (not rendered) */
} halo_report_stats;

typedef struct halo_report_budget {
    int64_t llm_calls;
    int64_t max_depth_reached;
    int64_t input_tokens;
    int64_t output_tokens;
} halo_report_budget;

typedef struct halo_report {
    char id[40];
    char *agent_id;
    char *schedule;
    uint64_t window_start_ns;
    uint64_t window_end_ns;
    uint64_t generated_at_ns;
    const char *mode; /* "detectors" | "rlm" */
    char *model;      /* NULL: JSON null */
    halo_report_stats stats;
    halo_finding *findings;
    size_t n_findings;
    halo_report_budget budget;
    char *note; /* a remark for people (Markdown only), NULL: none */
    /* the window's totals, for the waste shares (not rendered) */
    double total_ms;
    double total_tokens;
    double total_cost;
} halo_report;

/* Score each finding (its fraction plus the shares of the window's time,
 * tokens and cost it wasted: README.md, Impact), set its severity, sort
 * and number them. Uses r->total_*. */
void halo_findings_rank(halo_report *r);

void halo_report_free(halo_report *r);
/* Free what one finding owns and zero it. */
void halo_finding_clear(halo_finding *f);

/* The report id: "r-" + 16 hex of a hash of (agent, schedule, window
 * start), so re-running a window replaces its report. */
void halo_report_make_id(const char *agent_id, const char *schedule,
                         uint64_t window_start_ns, char out[40]);

/* Render (malloc'd, NUL-terminated; NULL on out-of-memory). */
char *halo_report_json(const halo_report *r);
char *halo_report_markdown(const halo_report *r);
/* The window's cost as people read it: "$0.0123", or "no price known"
 * for tokens without a priced span (store.h: halo_cost_unpriced). */
void halo_report_cost_text(const halo_report_stats *s, char *out, size_t n);

/* ---- the detectors ------------------------------------------------------- */

typedef struct halo_detect halo_detect;

halo_detect *halo_detect_new(const halo_detect_config *cfg);
void halo_detect_free(halo_detect *d);
/* Observe one run of the window (spans in start order). */
halo_status halo_detect_add(halo_detect *d, const halo_scan_trace *t,
                            halo_err *err);
/* Observe one run of the previous window (regressions compare with it):
 * only the trace row is used. */
void halo_detect_add_previous(halo_detect *d, const halo_trace_row *t);
/* Produce the findings, ranked, into r (findings, n_findings). window_runs
 * is the number of runs in the window (the fractions' denominator). */
halo_status halo_detect_finish(halo_detect *d, halo_report *r, halo_err *err);

/* ---- one analysis ---------------------------------------------------------
 */

typedef struct halo_analyze_req {
    const char *agent_id;
    const char *schedule; /* "manual" for `halo analyze` */
    uint64_t window_start_ns;
    uint64_t window_end_ns;
    const halo_detect_config *cfg; /* NULL: defaults */
    /* Progress on long work (NULL: none): called about once a second
     * while runs are read, and before every request to the model (then
     * with -1, -1); returning false stops the analysis (HALO_ESHUTDOWN). */
    bool (*progress)(void *ctx, int64_t runs_done, int64_t runs_total);
    void *progress_ctx;
} halo_analyze_req;

/* Analyze req's window in st: stats, detectors, ranked findings. */
halo_status halo_analyze(halo_store *st, const halo_analyze_req *req,
                         halo_report **out, halo_err *err);

/* reports_dir/<agent>/<schedule>/<window-start> (the directories
 * created) into out: the report's files are this plus ".json", ".md",
 * ".transcript.jsonl". Agent and schedule names are made safe and
 * distinct as path components. */
halo_status halo_report_base_path(const char *reports_dir, const char *agent_id,
                                  const char *schedule,
                                  uint64_t window_start_ns, char *out,
                                  size_t cap, halo_err *err);

/* Store the report (the `reports` table) and, when reports_dir is not
 * NULL, write reports_dir/<agent>/<schedule>/<window-start>.{json,md}
 * (directories created, files replaced atomically). Agent and schedule
 * names are made safe as path components. */
halo_status halo_report_save(halo_store *st, const halo_report *r,
                             const char *reports_dir, halo_err *err);

#endif
