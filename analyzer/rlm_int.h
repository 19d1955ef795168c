/*
 * rlm_int.h -- what the RLM engine's files share (rlm.c: conversations,
 * budgets, the final report; rlm_tools.c: the tools).
 */
#ifndef HALO_RLM_INT_H
#define HALO_RLM_INT_H

#include "llm.h"
#include "rlm.h"

#include "../core/buf.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct rlm {
    halo_store *st;
    const halo_analyze_req *req;
    const halo_rlm_opts *o;
    const halo_report *detectors; /* the detectors' findings (evidence) */
    halo_llm *llm;
    FILE *transcript;
    halo_rlm_stats *stats;
    uint64_t deadline_ns; /* monotonic; 0: none */
    halo_status fatal;    /* the model failed: stop everything */
    halo_err fatal_err;
    /* stats, the transcript and the turn budget are shared with the
     * threads of parallel sub-calls (each has its own client and store
     * handle): this lock guards them */
    pthread_mutex_t *mu;
    bool worker; /* a parallel sub-call's thread (no progress hook) */
} rlm;

/* One conversation: the root call (depth 0) or a sub-call. */
typedef struct rlm_call {
    json_t *messages;
    int depth;
    int turn;
} rlm_call;

/* The tools of a call (a JSON array): the root's end with final_report, a
 * sub-call's with answer; can_subquery adds subquery; final_only: just the
 * closing tool. */
json_t *rlm_tool_set(bool root, bool can_subquery, bool final_only);
/* Run the tool the model asked for; malloc'd text for the model (errors
 * as "error: ..."). */
char *rlm_exec_tool(rlm *R, rlm_call *c, const halo_llm_call *call);
/* The subquery tool (rlm.c): a nested call. */
char *rlm_subquery(rlm *R, rlm_call *parent, const json_t *args);
/* The detector findings as text (the `detectors` tool, the overview). */
char *rlm_detectors_text(const halo_report *r, size_t max_ids);
/* Are these spans (one trace) the agent's, starting in the window? */
bool rlm_span_in_window(const rlm *R, const halo_span *sp, size_t n);
/* s is a trace id (32 hex digits, either case): true, and its bytes and
 * lower-case hex where the pointers are not NULL. */
bool rlm_trace_id(const char *s, uint8_t bytes[16], char low[33]);

#endif
