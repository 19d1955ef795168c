/*
 * scheduler.c -- the analyzer's scheduler (scheduler.h).
 *
 * State is small: two store handles (a writable one for claims and
 * reports, a read-only one for the analysis itself, so a claim can be
 * renewed while a long scan holds its snapshot) and, per schedule, the
 * newest fire time whose every run is known done. Windows at or before it
 * are not looked at again, so an idle tick costs no query; everything else
 * is decided by the claims in the store, which is what makes several
 * instances (or a restarted one) agree.
 *
 * Stores are opened on the first tick that needs them, so the daemon
 * starts while the database is down; a tick that meets a store error logs
 * it, drops the handles and tries again on the next tick.
 */
#include "scheduler.h"
#include "llm.h"
#include "rlm.h"

#include "../core/clock.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "text.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "analyzer"

/* A run that failed: not tried again before `next` (ns, the scheduler's
 * clock), the delay doubling from 30 s up to an hour. */
typedef struct backoff {
    uint64_t key; /* hash of (schedule, agent, window start); 0: free */
    uint64_t next;
    uint64_t delay;
} backoff;

enum { N_BACKOFF = 256 };

/* Per schedule, on the metrics extension's /metrics. */
typedef struct sched_metrics {
    halo_metric *reports;  /* halo_analyzer_reports_total */
    halo_metric *failed;   /* halo_analyzer_failed_runs_total */
    halo_metric *findings; /* halo_analyzer_findings_total */
    halo_metric *seconds;  /* halo_analyzer_run_seconds */
} sched_metrics;

static void register_metrics(sched_metrics *m, const char *schedule)
{
    static const double bounds[] = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    char labels[200], name[120];
    size_t n = 0;
    for (const char *p = schedule; *p && n + 1 < sizeof name; p++)
        name[n++] = (*p == '"' || *p == '\\' || *p == '\n') ? '_' : *p;
    name[n] = '\0';
    snprintf(labels, sizeof labels, "schedule=\"%s\"", name);
    m->reports = halo_counter("halo_analyzer_reports_total",
                              "reports written by the scheduler", labels);
    m->failed =
        halo_counter("halo_analyzer_failed_runs_total",
                     "scheduled runs that failed (retried later)", labels);
    m->findings = halo_counter("halo_analyzer_findings_total",
                               "findings in the reports written", labels);
    m->seconds = halo_histogram("halo_analyzer_run_seconds",
                                "time to analyze a window and save its report",
                                labels, bounds, sizeof bounds / sizeof *bounds);
}

struct halo_scheduler {
    halo_scheduler_opts o;
    char *spec;
    char owner[160];
    halo_store *rw;
    halo_store *ro;
    int64_t *last_done; /* per schedule: newest fire with every run done */
    backoff backoffs[N_BACKOFF];
    sched_metrics *metrics; /* per schedule */
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static uint64_t now_ns(const halo_scheduler *s)
{
    return s->o.now ? s->o.now(s->o.now_ctx) : halo_real_ns();
}

static void make_owner(char *out, size_t cap)
{
    char host[100] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    unsigned r = (unsigned)(halo_mono_ns() ^ halo_real_ns() ^
                            ((uint64_t)getpid() << 16));
    snprintf(out, cap, "%s/%ld/%08x", host, (long)getpid(), r);
}

halo_status halo_scheduler_new(const halo_scheduler_opts *o,
                               halo_scheduler **out, halo_err *err)
{
    halo_scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->stop, false);
    s->o = *o;
    s->spec = strdup(o->store_spec ? o->store_spec : "");
    s->last_done = calloc(o->cfg->n_schedules ? o->cfg->n_schedules : 1,
                          sizeof *s->last_done);
    s->metrics = calloc(o->cfg->n_schedules ? o->cfg->n_schedules : 1,
                        sizeof *s->metrics);
    if (!s->spec || !s->last_done || !s->metrics) {
        halo_scheduler_free(s);
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < o->cfg->n_schedules; i++) {
        s->last_done[i] = INT64_MIN;
        register_metrics(&s->metrics[i], o->cfg->schedules[i].name);
    }
    if (o->owner)
        snprintf(s->owner, sizeof s->owner, "%s", o->owner);
    else
        make_owner(s->owner, sizeof s->owner);
    *out = s;
    return HALO_OK;
}

static void close_stores(halo_scheduler *s)
{
    halo_store_close(s->rw);
    halo_store_close(s->ro);
    s->rw = s->ro = NULL;
}

static halo_status open_stores(halo_scheduler *s, halo_err *err)
{
    if (s->rw && s->ro)
        return HALO_OK;
    close_stores(s);
    halo_store_opts rw = {0}, ro = {.read_only = true};
    halo_status st = halo_store_open(s->spec, &rw, &s->rw, err);
    if (st == HALO_OK)
        st = halo_store_open(s->spec, &ro, &s->ro, err);
    if (st != HALO_OK)
        close_stores(s);
    return st;
}

/* ---- one run ------------------------------------------------------------- */

typedef struct run_ctx {
    halo_scheduler *s;
    const halo_run_key *key;
    uint64_t last_renew;
} run_ctx;

/* Renew the claim when a third of the lease has passed (force: now).
 * False when the claim is lost (taken over) or the scheduler stops: the
 * run must end without saving. */
static bool renew_claim(run_ctx *c, bool force)
{
    if (atomic_load(&c->s->stop))
        return false;
    uint64_t now = now_ns(c->s);
    uint64_t lease = (uint64_t)c->s->o.cfg->lease;
    if (!force && now - c->last_renew < lease / 3)
        return true;
    halo_claim_result res;
    halo_err err = {{0}};
    halo_status st = c->s->rw->ops->claim_run(c->s->rw, c->key, c->s->owner,
                                              now, lease, &res, &err);
    if (st == HALO_OK && res == HALO_CLAIM_TAKEN) {
        c->last_renew = now;
        return true;
    }
    if (st != HALO_OK) { /* the database: keep going, the lease may hold */
        LOG_WARN(PREFIX, "could not renew the claim on a run of agent %s: %s",
                 c->key->agent_id, err.msg);
        return true;
    }
    LOG_WARN(PREFIX,
             "the run of agent %s was taken over by another "
             "instance (its lease expired): abandoned",
             c->key->agent_id);
    return false;
}

/* Progress of a long scan. */
static bool renew(void *ctx, int64_t done, int64_t total)
{
    (void)done;
    (void)total;
    return renew_claim(ctx, false);
}

/* Analyze and save one claimed run. */
static halo_status do_run(halo_scheduler *s, const halo_schedule_cfg *sc,
                          const halo_run_key *k, char *report_id,
                          size_t *n_findings, halo_err *err)
{
    run_ctx rc = {s, k, now_ns(s)};
    halo_analyze_req req = {0};
    req.agent_id = k->agent_id;
    req.schedule = sc->name;
    req.window_start_ns = k->window_start_ns;
    req.window_end_ns = k->window_end_ns;
    req.cfg = &s->o.cfg->detectors;
    req.progress = renew;
    req.progress_ctx = &rc;
    halo_report *r = NULL;
    halo_investigate_opts io = {s->o.cfg, sc, NULL, s->o.cfg->reports_dir,
                                s->spec};
    halo_status st = halo_investigate(s->ro, &req, &io, &r, err);
    if (st != HALO_OK)
        return st;
    if (!renew_claim(&rc, true)) { /* still ours? */
        halo_report_free(r);
        return halo_fail(err, HALO_ESHUTDOWN, "the run's claim was lost");
    }
    st = halo_report_save(s->rw, r, s->o.cfg->reports_dir, err);
    snprintf(report_id, 40, "%s", r->id);
    *n_findings = r->n_findings;
    halo_report_free(r);
    return st;
}

static uint64_t run_hash(const halo_run_key *k)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "%s\x1f%s\x1f%llu", k->schedule,
                     k->agent_id, (unsigned long long)k->window_start_ns);
    uint64_t h = halo_text_hash(buf, n > 0 ? (size_t)n : 0);
    return h ? h : 1;
}

static backoff *backoff_find(halo_scheduler *s, uint64_t key)
{
    for (size_t i = 0; i < N_BACKOFF; i++)
        if (s->backoffs[i].key == key)
            return &s->backoffs[i];
    return NULL;
}

/* A failure of run key: the next try waits twice as long as the last. */
static uint64_t backoff_fail(halo_scheduler *s, uint64_t key, uint64_t now)
{
    backoff *b = backoff_find(s, key);
    if (!b) { /* a free slot, else the one due soonest */
        b = &s->backoffs[0];
        for (size_t i = 0; i < N_BACKOFF && b->key; i++)
            if (!s->backoffs[i].key || s->backoffs[i].next < b->next)
                b = &s->backoffs[i];
        *b = (backoff){key, 0, 0};
    }
    uint64_t max = 3600ull * 1000000000u;
    b->delay = b->delay ? (b->delay * 2 > max ? max : b->delay * 2)
                        : 30ull * 1000000000u;
    b->next = now + b->delay;
    return b->delay;
}

/* Claim, run, finish one (schedule, agent, window). *done: the run is
 * known done (by us or anyone). A store error on the claim fails. */
static halo_status one_run(halo_scheduler *s, const halo_schedule_cfg *sc,
                           const halo_run_key *k, halo_tick_stats *ts,
                           bool *done, halo_err *err)
{
    *done = false;
    uint64_t key = run_hash(k);
    backoff *bo = backoff_find(s, key);
    if (bo && now_ns(s) < bo->next) {
        ts->skipped++; /* failed lately: waiting for its next try */
        return HALO_OK;
    }
    halo_claim_result res;
    uint64_t lease = (uint64_t)s->o.cfg->lease;
    halo_status st =
        s->rw->ops->claim_run(s->rw, k, s->owner, now_ns(s), lease, &res, err);
    if (st != HALO_OK)
        return st;
    if (res != HALO_CLAIM_TAKEN) {
        ts->skipped++;
        *done = res == HALO_CLAIM_DONE;
        return HALO_OK;
    }
    char ws[HALO_ISO_NS_LEN], id[40] = "";
    halo_iso_from_ns(k->window_start_ns, ws);
    size_t nf = 0;
    halo_err rerr = {{0}};
    uint64_t t0 = halo_mono_ns();
    halo_status rs = do_run(s, sc, k, id, &nf, &rerr);
    if (rs == HALO_OK && s->o.before_finish &&
        !s->o.before_finish(s->o.hook_ctx, k)) {
        ts->abandoned++;
        return HALO_OK;
    }
    halo_err ferr = {{0}};
    halo_status fs =
        s->rw->ops->finish_run(s->rw, k, s->owner, now_ns(s), rs == HALO_OK, id,
                               rs == HALO_OK ? NULL : rerr.msg, &ferr);
    sched_metrics *m = &s->metrics[sc - s->o.cfg->schedules];
    if (rs != HALO_OK) {
        ts->failed++;
        halo_metric_add(m->failed, 1);
        if (rs == HALO_ESHUTDOWN) /* stopping, or taken over */
            return HALO_OK;
        uint64_t delay = backoff_fail(s, key, now_ns(s));
        LOG_ERROR(PREFIX,
                  "schedule %s, agent %s, window from %.19sZ: the run "
                  "failed (tried again in %llu s): %s",
                  sc->name, k->agent_id, ws,
                  (unsigned long long)(delay / 1000000000u), rerr.msg);
        return HALO_OK;
    }
    if (bo)
        bo->key = 0; /* succeeded: forget its failures */
    if (fs != HALO_OK) {
        LOG_WARN(PREFIX,
                 "schedule %s, agent %s: report %s written, but the "
                 "run could not be marked done: %s",
                 sc->name, k->agent_id, id, ferr.msg);
        return HALO_OK;
    }
    ts->runs++;
    *done = true;
    halo_metric_add(m->reports, 1);
    halo_metric_add(m->findings, (double)nf);
    halo_metric_observe(m->seconds, (double)(halo_mono_ns() - t0) / 1e9);
    LOG_INFO(PREFIX,
             "schedule %s, agent %s, window from %.19sZ: report %s, %zu "
             "finding%s (%.2f s)",
             sc->name, k->agent_id, ws, id, nf, nf == 1 ? "" : "s",
             (double)(halo_mono_ns() - t0) / 1e9);
    return HALO_OK;
}

/* ---- one window ---------------------------------------------------------- */

static bool wants_all(const halo_schedule_cfg *sc)
{
    for (size_t i = 0; i < sc->agents.n; i++)
        if (!strcmp(sc->agents.items[i], "*"))
            return true;
    return false;
}

/* Every run of the window; *all_done when each is known done. */
static halo_status one_window(halo_scheduler *s, const halo_schedule_cfg *sc,
                              uint64_t start_ns, uint64_t end_ns,
                              halo_tick_stats *ts, bool *all_done,
                              halo_err *err)
{
    *all_done = true;
    halo_arena *a = halo_arena_new(0);
    if (!a)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_agent_stats *rows = NULL;
    size_t n = 0;
    halo_status st = HALO_OK;
    if (wants_all(sc))
        st =
            s->ro->ops->agent_stats(s->ro, start_ns, end_ns, a, &rows, &n, err);
    for (size_t i = 0; st == HALO_OK && i < n + sc->agents.n; i++) {
        if (atomic_load(&s->stop)) {
            *all_done = false;
            break;
        }
        const char *agent;
        if (i < n) {
            if (!rows[i].agent_id || rows[i].runs <= 0)
                continue;
            agent = rows[i].agent_id;
        } else {
            agent = sc->agents.items[i - n];
            bool seen = !strcmp(agent, "*");
            for (size_t j = 0; !seen && j < n; j++)
                seen = rows[j].agent_id && !strcmp(rows[j].agent_id, agent);
            if (seen)
                continue;
        }
        halo_run_key k = {sc->name, agent, start_ns, end_ns};
        bool done;
        st = one_run(s, sc, &k, ts, &done, err);
        *all_done = *all_done && done;
    }
    halo_arena_free(a);
    return st;
}

halo_status halo_scheduler_tick(halo_scheduler *s, halo_tick_stats *ts,
                                halo_err *err)
{
    halo_tick_stats local = {0};
    if (!ts)
        ts = &local;
    memset(ts, 0, sizeof *ts);
    const halo_analyzer_config *cfg = s->o.cfg;
    int64_t now = (int64_t)(now_ns(s) / 1000000000u);
    for (size_t i = 0; i < cfg->n_schedules; i++) {
        const halo_schedule_cfg *sc = &cfg->schedules[i];
        int max = (int)sc->catch_up; /* 1..1000 (analyzer_config.c) */
        int64_t fires[1000];
        int n =
            halo_sched_due(&sc->spec, now, sc->grace / 1000000000, fires, max);
        bool contiguous = true;
        for (int k = n - 1; k >= 0; k--) { /* oldest first */
            if (fires[k] <= s->last_done[i])
                continue;
            halo_status st = open_stores(s, err);
            if (st != HALO_OK)
                return st;
            int64_t start;
            halo_sched_window(&sc->spec, fires[k], &start);
            bool all_done;
            st = one_window(s, sc, (uint64_t)start * 1000000000u,
                            (uint64_t)fires[k] * 1000000000u, ts, &all_done,
                            err);
            if (st != HALO_OK) {
                close_stores(s);
                return st;
            }
            contiguous = contiguous && all_done;
            if (contiguous)
                s->last_done[i] = fires[k];
        }
    }
    return HALO_OK;
}

/* ---- the thread ---------------------------------------------------------- */

/* Seconds until the next schedule's fire + grace (at least 1). */
static int64_t next_due_in(const halo_scheduler *s, int64_t now)
{
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < s->o.cfg->n_schedules; i++) {
        const halo_schedule_cfg *sc = &s->o.cfg->schedules[i];
        int64_t grace = sc->grace / 1000000000;
        int64_t at = halo_sched_next(&sc->spec, now - grace) + grace;
        if (at - now < best)
            best = at - now;
    }
    return best < 1 ? 1 : best;
}

static void *loop(void *arg)
{
    pthread_setname_np(pthread_self(), "analyzer-sched");
    halo_scheduler *s = arg;
    int64_t retry = s->o.retry_ns > 0 ? s->o.retry_ns : 30 * 1000000000LL;
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stop)) {
        pthread_mutex_unlock(&s->mu);
        halo_tick_stats ts;
        halo_err err = {{0}};
        if (halo_scheduler_tick(s, &ts, &err) != HALO_OK)
            LOG_ERROR(PREFIX, "could not run the schedules (retrying): %s",
                      err.msg);
        int64_t now = (int64_t)(now_ns(s) / 1000000000u);
        int64_t wait = next_due_in(s, now) * 1000000000LL;
        if (wait > retry)
            wait = retry;
        struct timespec dl = halo_timespec_of(halo_mono_ns() + (uint64_t)wait);
        pthread_mutex_lock(&s->mu);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &dl) == 0)
            ;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

halo_status halo_scheduler_start(halo_scheduler *s, halo_err *err)
{
    if (s->running)
        return HALO_OK;
    if (pthread_create(&s->thread, NULL, loop, s) != 0)
        return halo_fail(err, HALO_EIO, "could not start the scheduler thread");
    s->running = true;
    for (size_t i = 0; i < s->o.cfg->n_schedules; i++) {
        const halo_schedule_cfg *sc = &s->o.cfg->schedules[i];
        char grace[32];
        halo_format_duration(sc->grace, grace, sizeof grace);
        LOG_INFO(PREFIX,
                 "schedule %s: %s%s%s%s, timezone %s, grace %s, catch-up "
                 "%" PRId64 " windows%s",
                 sc->name, sc->cron ? "cron " : "every ",
                 sc->cron ? sc->cron : sc->every, sc->at ? " at " : "",
                 sc->at ? sc->at : "", sc->timezone, grace, sc->catch_up,
                 halo_llm_configured(&s->o.cfg->llm)
                     ? "; with the model"
                     : "; detectors only (no analyzer.llm)");
    }
    return HALO_OK;
}

void halo_scheduler_stop(halo_scheduler *s)
{
    if (!s || !s->running)
        return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = false;
}

void halo_scheduler_free(halo_scheduler *s)
{
    if (!s)
        return;
    halo_scheduler_stop(s);
    close_stores(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->last_done);
    free(s->metrics);
    free(s->spec);
    free(s);
}
