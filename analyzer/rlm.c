/*
 * rlm.c -- the RLM engine (rlm.h): conversations with the model, their
 * budgets, sub-calls, and turning the model's final_report into findings.
 *
 * A call (the root or a sub-call) is a loop of turns: send the
 * conversation with the call's tools, run every tool the model asked for,
 * append the results (redacted, capped, each ending with the turns left),
 * until the model calls the closing tool (final_report, or answer in a
 * sub-call). When the turns, the token budget or the deadline run out, one
 * last request offers only the closing tool. A failing model (unreachable,
 * refusing) ends the whole investigation with that error, so the caller
 * keeps the detectors' report.
 *
 * Sub-calls run one at a time, each with a conversation of its own; their
 * depth is limited by max_depth (a call at the limit is not offered
 * subquery at all).
 */
#include "rlm_int.h"
#include "text.h"

#include "../core/clock.h"
#include "../core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "analyzer:rlm"

extern const char halo_prompt_system[];
extern const char halo_prompt_default[];
extern const char halo_prompt_subquery[];
extern const char halo_prompt_final[];

bool rlm_span_in_window(const rlm *R, const halo_span *sp, size_t n)
{
    uint64_t start = UINT64_MAX;
    bool agent = false;
    for (size_t i = 0; i < n; i++) {
        start = sp[i].start_ns < start ? sp[i].start_ns : start;
        agent |=
            sp[i].d.agent_id && !strcmp(sp[i].d.agent_id, R->req->agent_id);
    }
    return n && agent && start >= R->req->window_start_ns &&
           start < R->req->window_end_ns;
}

/* ---- shared state (parallel sub-calls) ------------------------------------
 */

static void lock(const rlm *R)
{
    pthread_mutex_lock(R->mu);
}

static void unlock(const rlm *R)
{
    pthread_mutex_unlock(R->mu);
}

/* ---- messages --------------------------------------------------------------
 */

static void transcript(rlm *R, int depth, const char *event, const json_t *m)
{
    if (!R->transcript)
        return;
    json_t *line = json_pack("{s:i, s:s, s:O}", "depth", depth, "event", event,
                             "message", m);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    if (text) {
        lock(R);
        fprintf(R->transcript, "%s\n", text);
        fflush(R->transcript);
        unlock(R);
    }
    free(text);
    json_decref(line);
}

/* text as the model may see it: redacted. NULL (out of memory) becomes a
 * notice, never the unredacted text. */
static char *redacted(rlm *R, const char *text)
{
    size_t n = 0;
    char *out = halo_redact_text(R->o->redactor, text, strlen(text), &n);
    return out ? out : strdup("[content withheld: out of memory]");
}

/* Append {role, content} (content redacted unless trusted). */
static bool add_message(rlm *R, rlm_call *c, const char *role,
                        const char *content, bool trusted)
{
    char *text = trusted ? strdup(content) : redacted(R, content);
    json_t *m =
        text ? json_pack("{s:s, s:s}", "role", role, "content", text) : NULL;
    free(text);
    if (!m)
        return false;
    transcript(R, c->depth, "sent", m);
    return json_array_append_new(c->messages, m) == 0;
}

static bool add_tool_result(rlm *R, rlm_call *c, const char *id,
                            const char *text)
{
    char *red = redacted(R, text);
    json_t *m = red ? json_pack("{s:s, s:s, s:s}", "role", "tool",
                                "tool_call_id", id, "content", red)
                    : NULL;
    free(red);
    if (!m)
        return false;
    transcript(R, c->depth, "sent", m);
    return json_array_append_new(c->messages, m) == 0;
}

static bool over_budget(const rlm *R)
{
    const halo_rlm_stats *s = R->stats;
    lock(R);
    bool over = R->o->token_budget > 0 &&
                s->input_tokens + s->output_tokens >= R->o->token_budget;
    unlock(R);
    return over || (R->deadline_ns && halo_mono_ns() >= R->deadline_ns);
}

/* One request. A failure is fatal for the investigation. */
static halo_status chat(rlm *R, rlm_call *c, const json_t *tools,
                        halo_llm_reply *rep)
{
    memset(rep, 0, sizeof *rep);
    /* the caller's progress hook: the scheduler renews its claim there,
     * and a false answer (stopping, or the claim lost) ends the run */
    if (!R->worker && R->req->progress &&
        !R->req->progress(R->req->progress_ctx, -1, -1)) {
        R->fatal =
            halo_fail(&R->fatal_err, HALO_ESHUTDOWN, "investigation stopped");
        return R->fatal;
    }
    lock(R);
    R->stats->llm_calls++;
    unlock(R);
    halo_status st =
        halo_llm_chat(R->llm, c->messages, tools, rep, &R->fatal_err);
    if (st != HALO_OK) {
        R->fatal = st;
        return st;
    }
    lock(R);
    if (rep->prompt_tokens > 0)
        R->stats->input_tokens += rep->prompt_tokens;
    if (rep->completion_tokens > 0)
        R->stats->output_tokens += rep->completion_tokens;
    unlock(R);
    transcript(R, c->depth, "received", rep->message);
    if (json_array_append(c->messages, rep->message) != 0) {
        R->fatal = halo_fail(&R->fatal_err, HALO_ENOMEM, "out of memory");
        return R->fatal;
    }
    return HALO_OK;
}

/* ---- parallel sub-calls
 * ------------------------------------------------------- */

typedef struct sub_job {
    rlm R; /* a copy: its own client and store handle */
    rlm_call *parent;
    const json_t *args;
    char *text;
    bool done;
    pthread_mutex_t *mu; /* the batch's: done, cv */
    pthread_cond_t *cv;
} sub_job;

static void *sub_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "rlm-subquery");
    sub_job *j = arg;
    j->text = rlm_subquery(&j->R, j->parent, j->args);
    pthread_mutex_lock(j->mu);
    j->done = true;
    pthread_cond_signal(j->cv);
    pthread_mutex_unlock(j->mu);
    return NULL;
}

/* Wait for jobs[0..n) while telling the caller's progress hook (the
 * scheduler renews its claim there) about once a second. */
static void wait_jobs(rlm *R, sub_job *jobs, size_t n, pthread_mutex_t *mu,
                      pthread_cond_t *cv)
{
    pthread_mutex_lock(mu);
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += !jobs[i].done;
        if (!left)
            break;
        struct timespec dl = halo_timespec_of(halo_mono_ns() + 1000000000u);
        if (pthread_cond_timedwait(cv, mu, &dl) != 0 && R->req->progress) {
            pthread_mutex_unlock(mu);
            R->req->progress(R->req->progress_ctx, -1, -1);
            pthread_mutex_lock(mu);
        }
    }
    pthread_mutex_unlock(mu);
}

/* The turn's subquery calls, run in parallel (max_parallel at a time),
 * each with its own client and store handle: their texts by call index
 * (NULL where a call did not run here). NULL when nothing runs in
 * parallel (the calls then run in turn, as the other tools). */
static char **run_subqueries(rlm *R, rlm_call *c, const halo_llm_reply *rep)
{
    size_t n = 0;
    for (size_t k = 0; k < rep->n_calls; k++)
        n += !strcmp(rep->calls[k].name, "subquery") && rep->calls[k].args;
    if (n < 2 || R->o->max_parallel <= 1 || !R->o->store_spec || R->worker ||
        c->depth + 1 > R->o->max_depth)
        return NULL;
    char **texts = calloc(rep->n_calls, sizeof *texts);
    sub_job *jobs = calloc(rep->n_calls, sizeof *jobs);
    pthread_t *th = calloc(rep->n_calls, sizeof *th);
    size_t *idx = calloc(rep->n_calls, sizeof *idx);
    if (!texts || !jobs || !th || !idx) {
        free(texts);
        free(jobs);
        free(th);
        free(idx);
        return NULL;
    }
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_condattr_t ca;
    pthread_cond_t cv;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    size_t k = 0;
    while (k < rep->n_calls) {
        /* the next batch: up to max_parallel sub-calls */
        size_t nb = 0;
        for (; k < rep->n_calls && (int64_t)nb < R->o->max_parallel; k++) {
            const halo_llm_call *call = &rep->calls[k];
            if (strcmp(call->name, "subquery") || !call->args)
                continue;
            sub_job *j = &jobs[nb];
            memset(j, 0, sizeof *j);
            j->R = *R;
            j->R.worker = true;
            j->R.llm = NULL;
            j->R.st = NULL;
            j->parent = c;
            j->args = call->args;
            j->mu = &mu;
            j->cv = &cv;
            halo_err e = {{0}};
            halo_store_opts ro = {.read_only = true};
            if (halo_llm_new(R->o->llm, &j->R.llm, &e) != HALO_OK ||
                halo_store_open(R->o->store_spec, &ro, &j->R.st, &e) !=
                    HALO_OK ||
                pthread_create(&th[nb], NULL, sub_thread, j) != 0) {
                /* no thread for it: it runs in turn with the others */
                LOG_WARN(PREFIX, "a sub-call runs in turn: %s",
                         e.msg[0] ? e.msg : "no thread");
                halo_llm_free(j->R.llm);
                halo_store_close(j->R.st);
                continue;
            }
            idx[nb++] = k;
        }
        wait_jobs(R, jobs, nb, &mu, &cv);
        for (size_t i = 0; i < nb; i++) {
            pthread_join(th[i], NULL);
            texts[idx[i]] = jobs[i].text;
            if (jobs[i].R.fatal && !R->fatal) {
                R->fatal = jobs[i].R.fatal;
                R->fatal_err = jobs[i].R.fatal_err;
            }
            halo_llm_free(jobs[i].R.llm);
            halo_store_close(jobs[i].R.st);
        }
    }
    pthread_cond_destroy(&cv);
    free(jobs);
    free(th);
    free(idx);
    return texts;
}

/* ---- a call -----------------------------------------------------------------
 */

/* Run call c until the model calls its closing tool: *result gets that
 * tool's arguments (a new reference), or NULL when it never did. */
static halo_status converse(rlm *R, rlm_call *c, bool root, json_t **result)
{
    *result = NULL;
    const char *closing = root ? "final_report" : "answer";
    int max_turns = R->o->max_turns > 0 ? (int)R->o->max_turns : 20;
    bool can_sub = c->depth < R->o->max_depth;
    json_t *tools = rlm_tool_set(root, can_sub, false);
    json_t *last = rlm_tool_set(root, false, true);
    if (!tools || !last) {
        json_decref(tools);
        json_decref(last);
        return halo_fail(&R->fatal_err, R->fatal = HALO_ENOMEM,
                         "out of memory");
    }
    for (c->turn = 1; c->turn <= max_turns && !over_budget(R) && !*result;
         c->turn++) {
        halo_llm_reply rep;
        if (chat(R, c, tools, &rep) != HALO_OK)
            break;
        if (rep.n_calls == 0) {
            char *nudge = halo_text_printf(
                "Use the tools to investigate, then call %s. (%d of %d turns "
                "used)",
                closing, c->turn, max_turns);
            bool ok = nudge && add_message(R, c, "user", nudge, true);
            free(nudge);
            halo_llm_reply_clear(&rep);
            if (!ok)
                break;
            continue;
        }
        char **pre = run_subqueries(R, c, &rep);
        for (size_t k = 0; k < rep.n_calls; k++) {
            const halo_llm_call *call = &rep.calls[k];
            lock(R);
            R->stats->tool_calls++;
            unlock(R);
            char *text;
            if (pre && pre[k]) {
                text = pre[k]; /* a parallel sub-call's answer */
                pre[k] = NULL;
            } else if (!strcmp(call->name, closing) && call->args && !*result) {
                *result = json_incref(call->args);
                text = strdup("received");
            } else if (!strcmp(call->name, closing)) {
                text = halo_text_printf(
                    "error: the arguments of %s are not a JSON "
                    "object (%s)",
                    closing, call->error ? call->error : "?");
            } else {
                text = rlm_exec_tool(R, c, call);
            }
            char *full = text ? halo_text_printf("%s\n[%d of %d turns used]",
                                                 text, c->turn, max_turns)
                              : NULL;
            bool ok = full && add_tool_result(R, c, call->id, full);
            free(text);
            free(full);
            if (!ok || R->fatal)
                break;
        }
        for (size_t k = 0; pre && k < rep.n_calls; k++)
            free(pre[k]);
        free(pre);
        halo_llm_reply_clear(&rep);
        if (R->fatal)
            break;
    }
    if (!*result && !R->fatal) {
        /* out of turns or budget: one last request, the closing tool only */
        lock(R);
        R->stats->forced_final = true;
        unlock(R);
        halo_llm_reply rep;
        if (add_message(R, c, "user", halo_prompt_final, true) &&
            chat(R, c, last, &rep) == HALO_OK) {
            for (size_t k = 0; k < rep.n_calls && !*result; k++)
                if (!strcmp(rep.calls[k].name, closing) && rep.calls[k].args)
                    *result = json_incref(rep.calls[k].args);
            halo_llm_reply_clear(&rep);
        }
    }
    json_decref(tools);
    json_decref(last);
    return R->fatal;
}

char *rlm_subquery(rlm *R, rlm_call *parent, const json_t *args)
{
    const char *q = json_string_value(json_object_get(args, "question"));
    if (!q || !*q)
        return strdup("error: `question` (a string) is required");
    if (parent->depth + 1 > R->o->max_depth)
        return strdup("error: the sub-call depth limit is reached; answer "
                      "this yourself");
    halo_buf b = HALO_BUF_INIT;
    halo_buf_puts(&b, q);
    const json_t *ids = json_object_get(args, "trace_ids");
    size_t i, k = 0;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        const char *s = json_string_value(v);
        if (!rlm_trace_id(s, NULL, NULL) || k >= 50)
            continue;
        halo_buf_printf(&b, "%s%.32s", k++ ? ", " : "\n\nThe runs: ", s);
    }
    halo_buf_putc(&b, '\0');
    rlm_call sub = {json_array(), parent->depth + 1, 0};
    lock(R);
    if (sub.depth > R->stats->max_depth_reached)
        R->stats->max_depth_reached = sub.depth;
    unlock(R);
    json_t *res = NULL;
    if (sub.messages && !b.oom &&
        add_message(R, &sub, "system", halo_prompt_subquery, true) &&
        add_message(R, &sub, "user", b.data, false))
        converse(R, &sub, false, &res);
    halo_buf_free(&b);
    json_decref(sub.messages);
    if (R->fatal) {
        json_decref(res);
        return strdup("error: the sub-call failed");
    }
    if (!res)
        return strdup("the sub-call ended without an answer");
    halo_buf out = HALO_BUF_INIT;
    const char *ans = json_string_value(json_object_get(res, "answer"));
    halo_buf_printf(&out, "answer: %s", ans ? ans : "(none)");
    const json_t *tids = json_object_get(res, "trace_ids");
    k = 0;
    json_array_foreach(tids, i, v)
    {
        const char *s = json_string_value(v);
        if (rlm_trace_id(s, NULL, NULL) && k < 100)
            halo_buf_printf(&out, "%s%.32s", k++ ? " " : "\ntrace ids: ", s);
    }
    json_decref(res);
    return halo_buf_steal(&out);
}

/* ---- the final report
 * --------------------------------------------------------- */

static const char *const KINDS[] = {
    HALO_KIND_RETRY_LOOP,     HALO_KIND_SILENT_FAILURE,
    HALO_KIND_DUPLICATE_CALL, HALO_KIND_SLOW_SPAN,
    HALO_KIND_INVALID_INPUT,  HALO_KIND_UNKNOWN_TOOL,
    HALO_KIND_CONTEXT_GROWTH, HALO_KIND_COST_REGRESSION,
    HALO_KIND_ERROR_CLUSTER,  HALO_KIND_LATENCY_REGRESSION,
};

static const char *known_kind(const char *k)
{
    for (size_t i = 0; k && i < sizeof KINDS / sizeof *KINDS; i++)
        if (!strcmp(k, KINDS[i]))
            return KINDS[i];
    return "other";
}

/* Is trace id (lower-case hex) one of the agent's runs in the window?
 * Answers are cached in `seen` (id -> true/false). */
static bool real_trace(rlm *R, const char *id, json_t *seen)
{
    json_t *v = json_object_get(seen, id);
    if (v)
        return json_is_true(v);
    uint8_t b[16];
    halo_hex_decode(id, 32, b, 16);
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = NULL;
    size_t n = 0;
    halo_err err = {{0}};
    bool ok = a &&
              R->st->ops->get_trace(R->st, b, a, &sp, &n, &err) == HALO_OK &&
              rlm_span_in_window(R, sp, n);
    halo_arena_free(a);
    json_object_set_new(seen, id, json_boolean(ok));
    return ok;
}

static char *str_or(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return strdup(s && *s ? s : def);
}

/* The ids of a finding (lower-cased, checked): into f. */
static bool finding_ids(rlm *R, const json_t *in, halo_finding *f, json_t *seen)
{
    const json_t *tids = json_object_get(in, "trace_ids");
    const json_t *sids = json_object_get(in, "span_ids");
    size_t nt = json_array_size(tids), ns = json_array_size(sids);
    f->trace_ids = calloc(nt ? nt : 1, sizeof *f->trace_ids);
    f->span_ids = calloc(ns ? ns : 1, sizeof *f->span_ids);
    if (!f->trace_ids || !f->span_ids)
        return false;
    for (size_t i = 0; i < nt && i < 1000; i++) {
        const char *s = json_string_value(json_array_get(tids, i));
        char low[33];
        if (!rlm_trace_id(s, NULL, low))
            continue;
        bool dup = false;
        for (size_t k = 0; k < f->n_trace_ids && !dup; k++)
            dup = !strcmp(f->trace_ids[k], low);
        if (dup)
            continue;
        if (!real_trace(R, low, seen)) {
            R->stats->invented_ids++;
            continue;
        }
        if (!(f->trace_ids[f->n_trace_ids] = strdup(low)))
            return false;
        f->n_trace_ids++;
    }
    for (size_t i = 0; i < ns && i < 1000; i++) {
        const char *s = json_string_value(json_array_get(sids, i));
        uint8_t b[8];
        if (!s || strlen(s) != 16 || !halo_hex_decode(s, 16, b, 8))
            continue;
        char *low = malloc(17);
        if (!low)
            return false;
        halo_hex_encode(b, 8, low);
        f->span_ids[f->n_span_ids++] = low;
    }
    return true;
}

/* The detector finding of the same kind that covers most of f's runs. */
static halo_finding *same_as_detector(halo_report *r, size_t n_det,
                                      const halo_finding *f)
{
    for (size_t i = 0; i < n_det; i++) {
        halo_finding *d = &r->findings[i];
        if (strcmp(d->kind, f->kind))
            continue;
        size_t common = 0;
        for (size_t a = 0; a < f->n_trace_ids; a++)
            for (size_t b = 0; b < d->n_trace_ids; b++)
                if (!strcmp(f->trace_ids[a], d->trace_ids[b])) {
                    common++;
                    break;
                }
        if (f->n_trace_ids && 2 * common >= f->n_trace_ids)
            return d;
    }
    return NULL;
}

/* The model's findings into r, beside the detectors'. */
static halo_status apply_final(rlm *R, const json_t *args, halo_report *r,
                               halo_err *err)
{
    const json_t *list = json_object_get(args, "findings");
    size_t n_det = r->n_findings;
    json_t *seen = json_object();
    if (!seen)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *in = json_array_get(list, i);
        if (!json_is_object(in))
            continue;
        halo_finding f = {0};
        f.kind = known_kind(json_string_value(json_object_get(in, "kind")));
        f.title = str_or(in, "title", "(untitled)");
        f.hypothesis = str_or(in, "hypothesis", "");
        f.recommendation = str_or(in, "recommendation", "");
        if (!f.title || !f.hypothesis || !f.recommendation ||
            !finding_ids(R, in, &f, seen)) {
            halo_finding_clear(&f);
            json_decref(seen);
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        }
        if (!f.n_trace_ids) { /* nothing real to stand on */
            halo_finding_clear(&f);
            continue;
        }
        halo_finding *d = same_as_detector(r, n_det, &f);
        if (d) { /* the model explains a detector finding: its words */
            free(d->hypothesis);
            free(d->recommendation);
            d->hypothesis = f.hypothesis;
            d->recommendation = f.recommendation;
            f.hypothesis = f.recommendation = NULL;
            halo_finding_clear(&f);
            continue;
        }
        f.what =
            halo_text_printf("Found by the model in %zu runs.", f.n_trace_ids);
        f.traces = (int64_t)f.n_trace_ids;
        f.fraction = r->stats.traces > 0
                         ? (double)f.n_trace_ids / (double)r->stats.traces
                         : 0;
        halo_finding *slot =
            realloc(r->findings, (r->n_findings + 1) * sizeof *r->findings);
        if (!slot || !f.what) {
            halo_finding_clear(&f);
            json_decref(seen);
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        }
        r->findings = slot;
        r->findings[r->n_findings++] = f;
    }
    json_decref(seen);
    halo_findings_rank(r);
    return HALO_OK;
}

/* ---- the investigation
 * ---------------------------------------------------------- */

/* Set R up for one investigation or chat: the client, the transcript. */
static halo_status rlm_open(rlm *R, halo_store *st, const halo_analyze_req *req,
                            const halo_rlm_opts *o, const halo_report *r,
                            halo_rlm_stats *stats, halo_err *err)
{
    memset(R, 0, sizeof *R);
    memset(stats, 0, sizeof *stats);
    R->mu = malloc(sizeof *R->mu);
    if (!R->mu)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    pthread_mutex_init(R->mu, NULL);
    if (!halo_llm_configured(o->llm))
        return halo_fail(err, HALO_EUNSUPPORTED,
                         "no model configured (analyzer.llm.base_url)");
    if (!o->redactor)
        return halo_fail(err, HALO_EINVAL, "no redactor: nothing may be sent");
    R->st = st;
    R->req = req;
    R->o = o;
    R->detectors = r;
    R->stats = stats;
    if (o->timeout_ns > 0)
        R->deadline_ns = halo_mono_ns() + (uint64_t)o->timeout_ns;
    halo_status s = halo_llm_new(o->llm, &R->llm, err);
    if (s != HALO_OK)
        return s;
    if (o->transcript_path && !(R->transcript = fopen(o->transcript_path, "a")))
        LOG_WARN(PREFIX, "could not open the transcript \"%s\": %m",
                 o->transcript_path);
    return HALO_OK;
}

static void rlm_close(rlm *R)
{
    if (R->transcript)
        fclose(R->transcript);
    halo_llm_free(R->llm);
    if (R->mu) {
        pthread_mutex_destroy(R->mu);
        free(R->mu);
        R->mu = NULL;
    }
}

static char *overview(const halo_analyze_req *req, const halo_report *r)
{
    char ws[HALO_ISO_NS_LEN], we[HALO_ISO_NS_LEN];
    halo_iso_from_ns(req->window_start_ns, ws);
    halo_iso_from_ns(req->window_end_ns, we);
    const halo_report_stats *s = &r->stats;
    char *det = rlm_detectors_text(r, 3);
    char cost[64];
    halo_report_cost_text(s, cost, sizeof cost);
    char *out = halo_text_printf(
        "Agent %s, window %.19sZ to %.19sZ: %lld runs (%lld with an error "
        "span), %lld spans, run duration p50 %.0f ms / p95 %.0f ms, %lld "
        "input and %lld output tokens, cost: %s.\n\nThe deterministic "
        "detectors found:\n%s",
        req->agent_id, ws, we, (long long)s->traces, (long long)s->error_traces,
        (long long)s->spans, s->p50_ms, s->p95_ms, (long long)s->input_tokens,
        (long long)s->output_tokens, cost, det ? det : "(unavailable)\n");
    free(det);
    return out;
}

halo_status halo_rlm_investigate(halo_store *st, const halo_analyze_req *req,
                                 const halo_rlm_opts *o, halo_report *r,
                                 halo_rlm_stats *stats, halo_err *err)
{
    rlm R;
    halo_status s = rlm_open(&R, st, req, o, r, stats, err);
    if (s != HALO_OK)
        return s;
    rlm_call root = {json_array(), 0, 0};
    char *ov = overview(req, r);
    halo_buf q = HALO_BUF_INIT;
    halo_buf_printf(&q, "%s\n\n%s",
                    o->prompt && *o->prompt ? o->prompt : halo_prompt_default,
                    ov ? ov : "");
    halo_buf_putc(&q, '\0');
    json_t *result = NULL;
    if (!root.messages || !ov || q.oom ||
        !add_message(&R, &root, "system", halo_prompt_system, true) ||
        !add_message(&R, &root, "user", q.data, false))
        s = halo_fail(err, HALO_ENOMEM, "out of memory");
    else if ((s = converse(&R, &root, true, &result)) != HALO_OK)
        *err = R.fatal_err;
    else
        s = apply_final(&R, result, r, err);
    if (s == HALO_OK) {
        r->mode = "rlm";
        free(r->model);
        r->model = strdup(o->llm->model ? o->llm->model : "");
        r->budget.llm_calls = stats->llm_calls;
        r->budget.max_depth_reached = stats->max_depth_reached;
        r->budget.input_tokens = stats->input_tokens;
        r->budget.output_tokens = stats->output_tokens;
        LOG_INFO(PREFIX,
                 "agent %s: %lld model calls, %lld tool calls, %lld+%lld "
                 "tokens, depth %lld%s, %lld invented trace ids dropped",
                 req->agent_id, (long long)stats->llm_calls,
                 (long long)stats->tool_calls, (long long)stats->input_tokens,
                 (long long)stats->output_tokens,
                 (long long)stats->max_depth_reached,
                 stats->forced_final ? ", final report forced" : "",
                 (long long)stats->invented_ids);
    }
    json_decref(result);
    json_decref(root.messages);
    halo_buf_free(&q);
    free(ov);
    rlm_close(&R);
    return s;
}

/* ---- follow-up questions
 * ----------------------------------------------------- */

halo_status halo_rlm_chat(halo_store *st, const halo_analyze_req *req,
                          const halo_rlm_opts *o, const char *report_json,
                          const char *question, char **answer,
                          halo_rlm_stats *stats, halo_err *err)
{
    *answer = NULL;
    if (!question || !*question)
        return halo_fail(err, HALO_EINVAL, "the question is empty");
    rlm R;
    halo_status s = rlm_open(&R, st, req, o, NULL, stats, err);
    if (s != HALO_OK)
        return s;
    halo_buf q = HALO_BUF_INIT;
    halo_buf_printf(&q,
                    "This is the report (halo.report/v1) on this agent's "
                    "window:\n%s\n\nA follow-up question about it: "
                    "%s\n\nAnswer it with evidence from the tools, then call "
                    "`answer`.",
                    report_json ? report_json : "{}", question);
    halo_buf_putc(&q, '\0');
    rlm_call c = {json_array(), 0, 0};
    json_t *result = NULL;
    if (!c.messages || q.oom ||
        !add_message(&R, &c, "system", halo_prompt_system, true) ||
        !add_message(&R, &c, "user", q.data, false))
        s = halo_fail(err, HALO_ENOMEM, "out of memory");
    else if ((s = converse(&R, &c, false, &result)) != HALO_OK)
        *err = R.fatal_err;
    else if (!result)
        s = halo_fail(err, HALO_EIO, "the model gave no answer");
    if (s == HALO_OK) {
        halo_buf out = HALO_BUF_INIT;
        const char *a = json_string_value(json_object_get(result, "answer"));
        halo_buf_puts(&out, a ? a : "(no answer)");
        size_t i, k = 0;
        json_t *v, *seen = json_object();
        json_array_foreach(json_object_get(result, "trace_ids"), i, v)
        {
            /* only real runs of the window are cited */
            const char *id = json_string_value(v);
            char low[33];
            if (k >= 50 || !seen || !rlm_trace_id(id, NULL, low))
                continue;
            if (real_trace(&R, low, seen))
                halo_buf_printf(&out, "%s%s", k++ ? "\n  " : "\n\nruns:\n  ",
                                low);
            else
                stats->invented_ids++;
        }
        json_decref(seen);
        halo_buf_putc(&out, '\n');
        *answer = halo_buf_steal(&out);
        if (!*answer)
            s = halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    json_decref(result);
    json_decref(c.messages);
    halo_buf_free(&q);
    rlm_close(&R);
    return s;
}
