/*
 * analyzer_config.h -- the `analyzer:` section of halo.yaml (DESIGN §3, §7).
 *
 *   analyzer:
 *     store: sqlite            # the exporter whose store the analyzer reads
 *     reports_dir: reports
 *     lease: 10m               # how long a claimed run stays claimed
 *     llm: { base_url, model, api_key, timeout }   # the RLM engine's
 *     detectors: { min_traces: 3, ... }            # analyzer.h thresholds
 *     redaction: { keys: [...], patterns: [...] }  # redact.h
 *     schedules:
 *       - { name: hourly, every: hourly, window: 1h, agents: ["*"] }
 *       - { name: nightly, every: daily, at: "02:00", timezone: Europe/Paris,
 *           grace: 5m, catch_up: 7 }
 *       - { name: workdays, cron: "0 9-17 * * mon-fri", window: 1h }
 *
 * Parsing checks every key with file:line like the components' sections,
 * and each schedule's timing through halo_sched_parse.
 */
#ifndef HALO_ANALYZER_CONFIG_H
#define HALO_ANALYZER_CONFIG_H

#include "../core/config.h"
#include "analyzer.h"
#include "redact.h"
#include "schedule.h"

typedef struct halo_schedule_cfg {
    char *name;
    char *every;
    char *at;
    char *cron;
    char *timezone;
    int64_t window;       /* ns; 0: from the previous fire time */
    int64_t grace;        /* ns */
    int64_t catch_up;     /* windows */
    halo_strlist agents;  /* "*" = every agent active in the window */
    char *prompt;         /* the RLM engine's (not built: detectors only) */
    int64_t max_depth;    /* RLM: sub-call nesting */
    int64_t max_turns;    /* RLM: turns per call */
    int64_t span_limit;   /* RLM: spans view_trace shows */
    int64_t token_budget; /* RLM: tokens over every call, 0: none */
    int64_t timeout;      /* RLM: ns for the whole investigation */
    int64_t max_parallel; /* RLM: sub-calls of one turn at once */
    /* filled by halo_analyzer_config_parse */
    halo_tz *tz;
    halo_sched_spec spec;
} halo_schedule_cfg;

/* The RLM engine's model: an OpenAI-compatible chat-completions server
 * (analyzer/llm.h, LLM.md). */
typedef struct halo_llm_cfg {
    char *base_url; /* ".../v1": POST {base_url}/chat/completions */
    char *model;
    char *api_key;        /* bearer token; NULL/"": none sent; never logged */
    int64_t timeout;      /* ns: one call, retries and waits included */
    double temperature;   /* 0..2 */
    int64_t max_tokens;   /* 0: not sent (the server's default) */
    int64_t max_retries;  /* on 429/5xx/connection errors */
    halo_strlist headers; /* extra "Name: value" request headers */
} halo_llm_cfg;

typedef struct halo_analyzer_config {
    bool present; /* the section exists */
    char *store;
    char *reports_dir;
    int64_t lease; /* ns */
    halo_llm_cfg llm;
    bool llm_present;
    halo_detect_config detectors;
    bool detectors_present;
    halo_redact_cfg redaction;
    bool redaction_present;
    halo_schedule_cfg *schedules;
    size_t n_schedules;
} halo_analyzer_config;

/* Parse root's `analyzer` section (absent: defaults, no schedules) into
 * cfg (zeroed by the caller). Every problem goes to errs with file:line;
 * false when any was added. */
bool halo_analyzer_config_parse(const halo_node *root,
                                halo_analyzer_config *cfg, halo_errlist *errs);
void halo_analyzer_config_free(halo_analyzer_config *cfg);

/* A schedule's defaults (for `halo analyze`, which has no schedule):
 * release with halo_schedule_cfg_release. */
void halo_schedule_cfg_defaults(halo_schedule_cfg *s);
void halo_schedule_cfg_release(halo_schedule_cfg *s);

#endif
