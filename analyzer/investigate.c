/*
 * investigate.c -- one analysis as the scheduler and `halo analyze` run
 * it (rlm.h): the detectors always, the RLM engine when a model is
 * configured, and the detectors' report with a note when the model fails.
 */
#include "llm.h"
#include "rlm.h"

#include "../core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void halo_rlm_opts_init(halo_rlm_opts *ro, const halo_analyzer_config *a,
                        const halo_schedule_cfg *sc)
{
    memset(ro, 0, sizeof *ro);
    ro->llm = &a->llm;
    ro->prompt = sc->prompt;
    ro->max_depth = sc->max_depth;
    ro->max_turns = sc->max_turns;
    ro->token_budget = sc->token_budget;
    ro->timeout_ns = sc->timeout;
    ro->span_limit = sc->span_limit;
    ro->max_parallel = sc->max_parallel;
}

bool halo_transcript_path(const char *dir, const char *agent_id,
                          const char *schedule, uint64_t window_start_ns,
                          char *out, size_t cap)
{
    static const char ext[] = ".transcript.jsonl";
    halo_err err = {{0}};
    if (cap <= sizeof ext ||
        halo_report_base_path(dir, agent_id, schedule, window_start_ns, out,
                              cap - sizeof ext, &err) != HALO_OK)
        return false;
    strcat(out, ext);
    return true;
}

halo_status halo_investigate(halo_store *st, const halo_analyze_req *req,
                             const halo_investigate_opts *o, halo_report **out,
                             halo_err *err)
{
    halo_status s = halo_analyze(st, req, out, err);
    if (s != HALO_OK || !halo_llm_configured(&o->acfg->llm))
        return s;
    halo_report *r = *out;
    halo_schedule_cfg defaults;
    const halo_schedule_cfg *sc = o->sched;
    if (!sc) {
        halo_schedule_cfg_defaults(&defaults);
        sc = &defaults;
    }
    halo_redactor *red = NULL;
    halo_err rerr = {{0}};
    halo_rlm_opts ro;
    halo_rlm_opts_init(&ro, o->acfg, sc);
    if (o->prompt)
        ro.prompt = o->prompt;
    ro.store_spec = o->store_spec;
    char path[4200];
    if (o->reports_dir &&
        halo_transcript_path(o->reports_dir, r->agent_id, r->schedule,
                             r->window_start_ns, path, sizeof path)) {
        remove(path); /* a re-run replaces it, like the report */
        ro.transcript_path = path;
    }
    halo_rlm_stats stats;
    s = halo_redactor_new(&o->acfg->redaction, &red, &rerr);
    if (s == HALO_OK) {
        ro.redactor = red;
        s = halo_rlm_investigate(st, req, &ro, r, &stats, &rerr);
    }
    if (s != HALO_OK) {
        LOG_WARN("analyzer",
                 "agent %s: the model could not be used, the "
                 "report comes from the detectors only: %s",
                 req->agent_id, rerr.msg);
        free(r->note);
        r->note = NULL;
        if (asprintf(&r->note,
                     "the model could not be used (%s); this report comes "
                     "from the deterministic detectors only",
                     rerr.msg) < 0)
            r->note = NULL;
    }
    halo_redactor_free(red);
    if (sc == &defaults)
        halo_schedule_cfg_release(&defaults);
    return HALO_OK;
}
