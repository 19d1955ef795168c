/*
 * detect_int.h -- what the detector files share: the accumulator, its
 * groups (one per (kind, subject): the runs and spans a pattern was seen
 * in, and what it wasted), per-run facts, per-step latencies.
 *
 * detect.c owns the accumulator and the per-run pass (every detector that
 * looks inside one run); detect_window.c the window-wide detectors (slow
 * steps, regressions); detect_text.c the findings' wording and ranking.
 */
#ifndef HALO_DETECT_INT_H
#define HALO_DETECT_INT_H

#include "analyzer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a + b for token counts: negatives (unknown) count as 0, the sum
 * saturates at INT64_MAX (counts come from users' attributes). */
static inline int64_t tok_add(int64_t a, int64_t b)
{
    if (a < 0)
        a = 0;
    if (b < 0)
        b = 0;
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* A string -> index map (open addressing); owns copies of its keys. */
typedef struct strmap {
    char **keys; /* by index */
    size_t n;
    size_t cap_keys;
    int32_t *slots; /* -1 empty, else index into keys */
    size_t n_slots; /* power of two */
} strmap;

/* Index of key (inserted when absent); -1 on out-of-memory. */
int32_t strmap_intern(strmap *m, const char *key, size_t len);
/* Index of key, -1 when absent. */
int32_t strmap_find(const strmap *m, const char *key, size_t len);
void strmap_free(strmap *m);

/* What the report needs of one run of the window. */
typedef struct run_info {
    uint8_t trace_id[16];
    uint64_t start_ns;
    double duration_ms;
    double cost;
    int64_t tokens;
    int32_t main_model;   /* index in d->models, -1: none */
    uint8_t root_span[8]; /* all zero: none */
} run_info;

/* A run of the previous window (regressions). */
typedef struct prev_run {
    uint64_t start_ns;
    double duration_ms;
    double cost;
    int64_t tokens;
} prev_run;

typedef struct group {
    const char *kind;
    char *subject; /* tool / step / model the pattern is about; "" none */
    char *example; /* an example message or argument, NULL none */
    int32_t *runs; /* distinct, ascending (runs arrive in order) */
    size_t n_runs;
    size_t cap_runs;
    int64_t unrec_runs; /* error_cluster: runs with an unrecovered error */
    int32_t last_unrec;
    uint8_t (*spans)[8]; /* at most max_evidence */
    size_t n_spans;
    size_t cap_spans;
    int64_t occurrences; /* loops, duplicate calls, error spans, ... */
    int64_t extra;       /* retries in loops, ... */
    double wasted_ms;
    int64_t wasted_tokens;
    double wasted_cost;
    double num[4];  /* figures the wording needs (detect_window.c) */
    uint64_t at_ns; /* regressions: when the change happened */
} group;

/* One span's latency, for the window-wide step statistics. */
typedef struct step_sample {
    double ms;
    int32_t run;
    uint8_t span_id[8];
} step_sample;

typedef struct step_samples {
    step_sample *v;
    size_t n;
    size_t cap;
} step_samples;

struct halo_detect {
    halo_detect_config cfg;
    run_info *runs;
    size_t n_runs;
    size_t cap_runs;
    prev_run *prev;
    size_t n_prev;
    size_t cap_prev;
    strmap group_keys; /* "kind\x1fsubject[\x1fsignature]" -> groups[] */
    group *groups;
    size_t cap_groups;
    strmap steps; /* "TYPE:name" -> step_lat[] */
    step_samples *step_lat;
    size_t cap_steps;
    strmap models; /* run_info.main_model */
    /* per-run scratch, reused */
    struct span_scratch *sc;
    size_t cap_sc;
    int32_t *order;
    size_t cap_order;
    bool oom;
};

/* The group for (kind, subject[, signature]); NULL on out-of-memory. The
 * first call for a key creates it with `example` (may be NULL). */
group *detect_group(halo_detect *d, const char *kind, const char *subject,
                    const char *signature, const char *example);
/* Count run r in g (idempotent within a run); unrecovered for
 * error_cluster. */
void group_add_run(halo_detect *d, group *g, int32_t r);
void group_add_span(halo_detect *d, group *g, const char *span_hex);
void group_add_span_bytes(halo_detect *d, group *g, const uint8_t id[8]);

/* detect_window.c: slow steps and regressions, adding findings to r. */
halo_status detect_window_findings(halo_detect *d, halo_report *r,
                                   halo_err *err);

/* detect_text.c: a finding of g (title, texts, evidence) appended to r;
 * false on out-of-memory. */
bool finding_from_group(halo_detect *d, const group *g, halo_report *r);
/* Append an empty finding to r (NULL on out-of-memory). */
halo_finding *finding_new(halo_report *r);
/* The threshold of runs a pattern needs in this window. */
int64_t detect_needed_runs(const halo_detect *d);

#endif
