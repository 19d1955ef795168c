/*
 * analyzer_config.c -- the `analyzer:` section (analyzer_config.h).
 *
 * The section's plain keys go through the same schema machinery as the
 * components' (halo_config_apply: defaults, types, bounds, unknown keys
 * with did-you-mean); `schedules` is a list, so each element is applied to
 * the schedule schema on its own, then its timing is checked by
 * halo_sched_parse and its name for uniqueness. Errors carry the file:line
 * of the offending key.
 */
#include "analyzer_config.h"
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOFF(f) offsetof(halo_schedule_cfg, f)
static const halo_field schedule_schema[] = {
    {"name", HALO_F_STRING, SOFF(name), NULL, 0, 0, NULL, NULL, 0,
     "the schedule's name (reports_dir/<agent>/<name>/...)"},
    {"every", HALO_F_STRING, SOFF(every), NULL, 0, 0, NULL, NULL, 0,
     "hourly, daily, weekly or a duration (15m, 6h)"},
    {"at", HALO_F_STRING, SOFF(at), NULL, 0, 0, NULL, NULL, 0,
     "daily: \"HH:MM\"; weekly: \"Mon HH:MM\""},
    {"cron", HALO_F_STRING, SOFF(cron), NULL, 0, 0, NULL, NULL, 0,
     "5-field cron expression, instead of every"},
    {"timezone", HALO_F_STRING, SOFF(timezone), "UTC", 0, 0, NULL, NULL, 0,
     "IANA time zone of every/at/cron"},
    {"window", HALO_F_DURATION, SOFF(window), "0", 0, 3.2e16, NULL, NULL, 0,
     "the span of time a run analyzes (0: since the previous fire time)"},
    {"grace", HALO_F_DURATION, SOFF(grace), "5m", 0, 8.64e14, NULL, NULL, 0,
     "wait this long after a window ends, for late spans"},
    {"catch_up", HALO_F_INT, SOFF(catch_up), "24", 1, 1000, NULL, NULL, 0,
     "missed windows run after downtime, at most"},
    {"agents", HALO_F_STRLIST, SOFF(agents), "*", 0, 0, NULL, NULL, 0,
     "agent ids to report on; \"*\": every agent active in the window"},
    {"prompt", HALO_F_STRING, SOFF(prompt), NULL, 0, 0, NULL, NULL, 0,
     "the RLM engine's question (default: analyzer/prompts/default.md)"},
    {"max_depth", HALO_F_INT, SOFF(max_depth), "2", 0, 10, NULL, NULL, 0,
     "RLM: sub-call depth"},
    {"max_turns", HALO_F_INT, SOFF(max_turns), "20", 1, 1000, NULL, NULL, 0,
     "RLM: turns per call"},
    {"span_limit", HALO_F_INT, SOFF(span_limit), "200", 1, 100000, NULL, NULL,
     0, "RLM: spans of one run view_trace shows"},
    {"token_budget", HALO_F_INT, SOFF(token_budget), "500000", 0, 1e10, NULL,
     NULL, 0, "RLM: prompt + completion tokens of every call (0: none)"},
    {"timeout", HALO_F_DURATION, SOFF(timeout), "15m", 1e9, 8.64e13, NULL, NULL,
     0, "RLM: wall-clock time of one investigation"},
    {"max_parallel", HALO_F_INT, SOFF(max_parallel), "2", 1, 16, NULL, NULL, 0,
     "RLM: sub-calls of one turn run at once"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, NULL},
};
#undef SOFF

static const halo_field llm_schema[] = {
    {"base_url", HALO_F_STRING, offsetof(halo_llm_cfg, base_url), NULL, 0, 0,
     NULL, NULL, 0, "OpenAI-compatible API base URL"},
    {"model", HALO_F_STRING, offsetof(halo_llm_cfg, model), NULL, 0, 0, NULL,
     NULL, 0, "model name"},
    {"api_key", HALO_F_SECRET, offsetof(halo_llm_cfg, api_key), NULL, 0, 0,
     NULL, NULL, 0, "API key (sent as a bearer token)"},
    {"timeout", HALO_F_DURATION, offsetof(halo_llm_cfg, timeout), "120s", 1e9,
     3.6e12, NULL, NULL, 0, "per call: every attempt and wait between them"},
    {"temperature", HALO_F_DOUBLE, offsetof(halo_llm_cfg, temperature), "0.2",
     0, 2, NULL, NULL, 0, "sampling temperature"},
    {"max_tokens", HALO_F_INT, offsetof(halo_llm_cfg, max_tokens), "4096", 0,
     1e7, NULL, NULL, 0, "completion tokens per call (0: not sent)"},
    {"max_retries", HALO_F_INT, offsetof(halo_llm_cfg, max_retries), "4", 0, 20,
     NULL, NULL, 0, "retries on 429, 5xx and connection errors"},
    {"headers", HALO_F_STRLIST, offsetof(halo_llm_cfg, headers), NULL, 0, 0,
     NULL, NULL, 0, "extra request headers, \"Name: value\" each"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, NULL},
};

#define AOFF(f) offsetof(halo_analyzer_config, f)
static const halo_field analyzer_schema[] = {
    {"store", HALO_F_STRING, AOFF(store), NULL, 0, 0, NULL, NULL, 0,
     "the exporter (sqlite or postgres) whose store the analyzer reads"},
    {"reports_dir", HALO_F_STRING, AOFF(reports_dir), "reports", 0, 0, NULL,
     NULL, 0, "where report files go: <dir>/<agent>/<schedule>/<start>.json"},
    {"lease", HALO_F_DURATION, AOFF(lease), "10m", 1e9, 8.64e13, NULL, NULL, 0,
     "a claimed run is taken over by another instance after this"},
    {"llm", HALO_F_SECTION, AOFF(llm), NULL, 0, 0, NULL, llm_schema,
     AOFF(llm_present), "the RLM engine's model"},
    {"detectors", HALO_F_SECTION, AOFF(detectors), NULL, 0, 0, NULL,
     halo_detect_schema, AOFF(detectors_present), "detector thresholds"},
    {"redaction", HALO_F_SECTION, AOFF(redaction), NULL, 0, 0, NULL,
     halo_redact_schema, AOFF(redaction_present),
     "what is removed from span contents before they reach a model"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, NULL},
};
#undef AOFF

/* The analyzer map without its `schedules` key (a shallow view). */
static halo_node without_schedules(const halo_node *an, char **keys,
                                   halo_node **items)
{
    halo_node v = *an;
    v.keys = keys;
    v.items = items;
    v.n = 0;
    for (size_t i = 0; i < an->n; i++) {
        if (!strcmp(an->keys[i], "schedules"))
            continue;
        keys[v.n] = an->keys[i];
        items[v.n++] = an->items[i];
    }
    return v;
}

static void parse_schedule(const halo_node *item, size_t idx,
                           halo_schedule_cfg *s, halo_errlist *errs)
{
    char where[64];
    snprintf(where, sizeof where, "analyzer.schedules[%zu]", idx);
    if (!halo_config_apply(schedule_schema, item, s, where, errs))
        return;
    if (!s->name || !*s->name) {
        halo_errlist_add(errs, item, "%s: name is required", where);
        return;
    }
    halo_err err = {{0}};
    if (halo_tz_load(s->timezone, &s->tz, &err) != HALO_OK) {
        halo_errlist_add(errs, halo_node_get(item, "timezone"),
                         "analyzer.schedules[%zu] (%s): timezone: %s", idx,
                         s->name, err.msg);
        return;
    }
    if (halo_sched_parse(s->every, s->at, s->cron, s->window, s->tz, &s->spec,
                         &err) != HALO_OK)
        halo_errlist_add(errs, item, "analyzer.schedules[%zu] (%s): %s", idx,
                         s->name, err.msg);
}

static void parse_schedules(const halo_node *seq, halo_analyzer_config *cfg,
                            halo_errlist *errs)
{
    if (seq->type == HALO_NODE_NULL)
        return;
    if (seq->type != HALO_NODE_SEQ) {
        halo_errlist_add(errs, seq, "analyzer.schedules: expected a list");
        return;
    }
    cfg->schedules = calloc(seq->n ? seq->n : 1, sizeof *cfg->schedules);
    if (!cfg->schedules) {
        halo_errlist_add(errs, seq, "out of memory");
        return;
    }
    cfg->n_schedules = seq->n;
    for (size_t i = 0; i < seq->n; i++) {
        const halo_node *item = seq->items[i];
        if (item->type != HALO_NODE_MAP) {
            halo_errlist_add(errs, item,
                             "analyzer.schedules[%zu]: expected a mapping", i);
            continue;
        }
        parse_schedule(item, i, &cfg->schedules[i], errs);
        for (size_t j = 0; j < i; j++)
            if (cfg->schedules[i].name && cfg->schedules[j].name &&
                !strcmp(cfg->schedules[i].name, cfg->schedules[j].name))
                halo_errlist_add(errs, item,
                                 "analyzer.schedules[%zu]: duplicate name "
                                 "\"%s\"",
                                 i, cfg->schedules[i].name);
    }
}

/* A configured model (base_url set: empty means "no model") is checked as
 * the RLM engine will check it (URL shape, model, headers), so `halo
 * validate` reports what would otherwise fail at the first scheduled
 * run. */
static void check_llm(const halo_node *an, const halo_analyzer_config *cfg,
                      halo_errlist *errs)
{
    if (!cfg->llm_present || !halo_llm_configured(&cfg->llm))
        return;
    halo_err err = {{0}};
    if (halo_llm_check_cfg(&cfg->llm, &err) != HALO_OK) {
        const halo_node *at = halo_node_get(an, "llm");
        halo_errlist_add(errs, at ? at : an, "analyzer: %s", err.msg);
    }
}

bool halo_analyzer_config_parse(const halo_node *root,
                                halo_analyzer_config *cfg, halo_errlist *errs)
{
    size_t before = errs->n;
    const halo_node *an = halo_node_get(root, "analyzer");
    cfg->present = an != NULL;
    if (an && an->type != HALO_NODE_MAP && an->type != HALO_NODE_NULL) {
        halo_errlist_add(errs, an, "analyzer: expected a mapping");
        return false;
    }
    if (!an || an->type == HALO_NODE_NULL) {
        halo_config_apply(analyzer_schema, NULL, cfg, "analyzer", errs);
        return errs->n == before;
    }
    char **keys = calloc(an->n ? an->n : 1, sizeof *keys);
    halo_node **items = calloc(an->n ? an->n : 1, sizeof *items);
    if (!keys || !items) {
        free(keys);
        free(items);
        halo_errlist_add(errs, an, "out of memory");
        return false;
    }
    halo_node view = without_schedules(an, keys, items);
    halo_config_apply(analyzer_schema, &view, cfg, "analyzer", errs);
    free(keys);
    free(items);
    const halo_node *seq = halo_node_get(an, "schedules");
    if (seq)
        parse_schedules(seq, cfg, errs);
    check_llm(an, cfg, errs);
    return errs->n == before;
}

void halo_analyzer_config_free(halo_analyzer_config *cfg)
{
    for (size_t i = 0; i < cfg->n_schedules; i++) {
        halo_config_release(schedule_schema, &cfg->schedules[i]);
        halo_tz_free(cfg->schedules[i].tz);
    }
    free(cfg->schedules);
    halo_config_release(analyzer_schema, cfg);
    memset(cfg, 0, sizeof *cfg);
}

void halo_schedule_cfg_defaults(halo_schedule_cfg *s)
{
    memset(s, 0, sizeof *s);
    halo_errlist errs = {0};
    halo_config_apply(schedule_schema, NULL, s, "schedule", &errs);
    halo_errlist_free(&errs);
}

void halo_schedule_cfg_release(halo_schedule_cfg *s)
{
    halo_config_release(schedule_schema, s);
    halo_tz_free(s->tz);
    memset(s, 0, sizeof *s);
}
