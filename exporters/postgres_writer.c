/*
 * postgres_writer.c -- the postgres exporter's writer threads: one
 * connection each, group commit from the shared queue, reconnection with
 * backoff, the schema set-up and the hourly maintenance.
 *
 * A writer's life:
 *
 *   no connection --connect (non-blocking, connect_timeout)--> set-up -->
 *   up: take a group, write it, complete its batches; idle: check the
 *   connection, run maintenance when due
 *
 *   a lost connection (a failed write on a connection that no longer
 *   answers, or an idle one found closed) --> down: wait the backoff
 *   (exponential from reconnect_initial_interval to
 *   reconnect_max_interval, each wait drawn in [d/2, d] so several writers
 *   and several halo instances do not reconnect in step), connect again
 *
 * The first connection to come up migrates the schema and runs the first
 * maintenance (below) before any connection counts as up (others wait on
 * schema_mu), so no write ever meets a missing table.
 *
 * Group commit: a writer takes queued batches up to GROUP_SPANS spans (an
 * equal share of what is queued when other writers are idle, so a burst
 * is written over several connections at once), writes their prepared
 * rows in ONE transaction (halo_pg_write_rows), and
 * completes every batch with HALO_OK only after that returned: the commit
 * is done (DESIGN §4). On failure the batches are answered, never held:
 *   - data PostgreSQL refuses (HALO_EINVAL): a group of several batches is
 *     written again batch by batch, so only the batch holding the bad span
 *     is refused (HALO_EINVAL with PostgreSQL's message: HTTP 400, and the
 *     Kafka receiver treats it as a poison message) -- never a retry loop;
 *   - anything else: HALO_ERETRY with the message; the clients retry, the
 *     store is idempotent, so a write that did commit before its answer was
 *     lost does no harm when it comes again.
 * A connection that no longer answers after a failure is dropped.
 *
 * When the last connection goes, the queue is emptied at once (retryable)
 * and consume() refuses new batches until a connection is up again.
 * When a connection is lost the idle writers are woken to check theirs
 * (one poll(), no round trip), and they also check every IDLE_TICK_NS:
 * the count of connections up follows an outage within milliseconds.
 *
 * Maintenance (the first connection, before it counts as up; then hourly,
 * one writer at a time): the day partitions from yesterday (or the
 * retention cut-off, if later) through today + partitions_ahead, then
 * retention (halo_pg_retention: whole day partitions dropped). The hourly
 * pass waits for an empty queue unless it is overdue by a minute, so it
 * can neither delay writes nor starve. A failed pass is tried again a
 * minute later; writes go on meanwhile (rows of a day without a partition
 * land in spans_default).
 */
#include "postgres_int.h"

#include "core/clock.h"
#include "core/log.h"
#include "storage/pg_schema.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GROUP_SPANS 65536          /* spans per group-commit transaction */
#define IDLE_TICK_NS 1000000000ull /* idle connections checked this often */
#define MAINT_EVERY_NS 3600000000000ull /* partitions + retention, hourly */
#define MAINT_RETRY_NS 60000000000ull   /* after a failed maintenance */
#define MAINT_OVERDUE_NS 60000000000ull /* then it goes before writes */
#define DAY_S INT64_C(86400)

/* ---- small helpers ------------------------------------------------------- */

/* "250ms", "1.5s", "30s". */
static void fmt_delay(uint64_t ns, char *buf, size_t cap)
{
    if (ns < 1000000000u)
        snprintf(buf, cap, "%llums", (unsigned long long)(ns / 1000000u));
    else
        snprintf(buf, cap, "%.3gs", (double)ns / 1e9);
}

void pgx_unavailable_msg(const pgx *x, char *buf, size_t cap)
{
    if (!x->tried)
        snprintf(buf, cap,
                 "%s: database unavailable (connecting%s%s), retrying", x->id,
                 x->where[0] ? " to " : "", x->where);
    else
        snprintf(buf, cap, "%s: database unavailable (%s: %s), retrying", x->id,
                 x->where, x->reason);
}

void pgx_complete(pgx *x, pgx_queued *q, size_t n, halo_status st,
                  const char *msg)
{
    size_t spans = 0;
    for (size_t i = 0; i < n; i++) {
        spans += q[i].b->n_spans;
        halo_pg_free_rows(q[i].rows);
        halo_batch_done(q[i].b, st, msg);
    }
    if (n)
        halo_metric_add(st == HALO_OK ? x->m.sent : x->m.failed, (double)spans);
}

/* With mu held: move queued batches, up to max_spans' worth (at least
 * one) and PGX_GROUP_BATCHES, into out. */
static size_t take(pgx *x, pgx_queued *out, size_t max_spans)
{
    size_t n = 0, spans = 0;
    while (x->count && n < PGX_GROUP_BATCHES &&
           (n == 0 || spans + x->ring[x->head].b->n_spans <= max_spans)) {
        out[n] = x->ring[x->head];
        spans += out[n++].b->n_spans;
        x->queued_spans -= out[n - 1].b->n_spans;
        x->head = (x->head + 1) % x->cap;
        x->count--;
    }
    halo_metric_set(x->m.depth, (double)x->count);
    return n;
}

/* With mu held: wait on cv until deadline (monotonic ns) or a wake-up. */
static void wait_until(pgx *x, pthread_cond_t *cv, uint64_t deadline)
{
    struct timespec ts = halo_timespec_of(deadline);
    pthread_cond_timedwait(cv, &x->mu, &ts);
}

/* The next reconnect wait: d drawn in [delay/2, delay], then the delay
 * doubles up to reconnect_max_interval. */
static uint64_t next_delay(pgx_writer *w)
{
    const pgx_cfg *cfg = w->x->cfg;
    uint64_t d = w->delay_ns, max = (uint64_t)cfg->reconnect_max_ns;
    w->delay_ns = d >= max / 2 ? max : d * 2;
    double r = (double)rand_r(&w->seed) / RAND_MAX;
    return d / 2 + (uint64_t)((double)(d - d / 2) * r);
}

/* Sleep ns unless the exporter stops first. */
static void backoff(pgx_writer *w, uint64_t ns)
{
    pgx *x = w->x;
    uint64_t deadline = halo_mono_ns() + ns;
    pthread_mutex_lock(&x->mu);
    while (!atomic_load(&x->stop) && halo_mono_ns() < deadline)
        wait_until(x, &x->state_cv, deadline);
    pthread_mutex_unlock(&x->mu);
}

/* ---- connection state ---------------------------------------------------- */

/* An idle connection's health without a round trip: read what the server
 * sent and look at the status. A server going away sends a goodbye
 * message, then closes: the read that takes the message does not see the
 * end yet, so read until nothing more is pending (a few rounds at most). */
static bool idle_alive(PGconn *c)
{
    for (int round = 0; round < 8; round++) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (p.fd < 0)
            return false;
        if (poll(&p, 1, 0) <= 0)
            break;
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
            return false;
    }
    return PQstatus(c) == CONNECTION_OK;
}

/* After a failure: does the connection still answer? */
static bool still_answers(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK)
        return false;
    PGresult *r = PQexec(c, "SELECT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok && PQstatus(c) == CONNECTION_OK;
}

static void attach(pgx_writer *w, PGconn *c)
{
    pgx *x = w->x;
    w->conn = c;
    int fd = fcntl(PQsocket(c), F_DUPFD_CLOEXEC, 0);
    pthread_mutex_lock(&x->mu);
    w->abort_fd = fd;
    pthread_mutex_unlock(&x->mu);
}

static void detach(pgx_writer *w)
{
    pgx *x = w->x;
    pthread_mutex_lock(&x->mu);
    if (w->abort_fd >= 0)
        close(w->abort_fd);
    w->abort_fd = -1;
    pthread_mutex_unlock(&x->mu);
    PQfinish(w->conn);
    w->conn = NULL;
}

/* With mu held: the writer's connection stops counting. */
static void go_down(pgx_writer *w, const char *why)
{
    pgx *x = w->x;
    if (w->up) {
        w->up = false;
        x->n_up--;
        halo_metric_set(x->m_up, x->n_up);
        if (x->n_up == 0)
            x->down_since = halo_mono_ns();
    }
    if (x->n_up > 0)
        return;
    snprintf(x->reason, sizeof x->reason, "%s", why);
    x->tried = true;
}

/* Answer the batches queued while no connection is up (retryable), one at
 * a time outside the lock; stops as soon as a connection is back (it then
 * writes the rest). */
static void answer_orphans(pgx *x)
{
    char msg[HALO_ERR_MAX + HALO_PG_WHERE_MAX + 64];
    pgx_queued q;
    for (;;) {
        pthread_mutex_lock(&x->mu);
        size_t got = x->n_up == 0 && x->count ? take(x, &q, 0) : 0;
        pgx_unavailable_msg(x, msg, sizeof msg);
        pthread_mutex_unlock(&x->mu);
        if (!got)
            return;
        pgx_complete(x, &q, 1, HALO_ERETRY, msg);
    }
}

/* Close the connection (lost, or shutting down). When it was the last one
 * up, consume() refuses from now on and the queued batches are answered
 * retryable. The other writers are woken to check their own connections.
 * True when it was the last one. */
static bool lose(pgx_writer *w, const char *why)
{
    pgx *x = w->x;
    pthread_mutex_lock(&x->mu);
    bool was_last = w->up && x->n_up == 1;
    go_down(w, why);
    pthread_cond_broadcast(&x->work_cv);
    pthread_mutex_unlock(&x->mu);
    detach(w);
    answer_orphans(x);
    return was_last;
}

/* A lost connection: close it, say why and when the next attempt is. */
static void lost(pgx_writer *w, const char *why)
{
    pgx *x = w->x;
    char delay[32], where[HALO_PG_WHERE_MAX];
    pthread_mutex_lock(&x->mu);
    snprintf(where, sizeof where, "%s", x->where);
    pthread_mutex_unlock(&x->mu);
    w->wait_ns = next_delay(w);
    fmt_delay(w->wait_ns, delay, sizeof delay);
    if (atomic_load(&x->stop)) {
        LOG_WARN(x->prefix, "connection %d/%zu to %s lost: %s (shutting down)",
                 w->index, x->n_w, where, why);
        lose(w, why);
        return;
    }
    LOG_WARN(x->prefix, "connection %d/%zu to %s lost: %s; reconnecting in %s",
             w->index, x->n_w, where, why, delay);
    if (lose(w, why))
        LOG_WARN(x->prefix,
                 "no connection to %s left: spans are refused (retryable) "
                 "until one is back",
                 where);
}

/* ---- connecting ---------------------------------------------------------- */

/* The day partitions from yesterday (or the retention cut-off, when that
 * is later) through today + partitions_ahead. */
static halo_status ensure_partitions(const pgx *x, PGconn *c, halo_err *err)
{
    int64_t now = (int64_t)(halo_real_ns() / 1000000000u);
    int64_t from = now - DAY_S;
    if (x->cfg->retention_ns > 0) {
        int64_t cutoff = now - x->cfg->retention_ns / 1000000000;
        if (from < cutoff)
            from = cutoff;
    }
    int ahead = (int)((now / DAY_S - from / DAY_S) + x->cfg->partitions_ahead);
    return halo_pg_ensure_partitions(c, from, ahead, err);
}

/* Partitions, then retention; the next pass is due in an hour (in a
 * minute after a failure). */
static halo_status maintenance(pgx *x, PGconn *c, halo_err *err)
{
    halo_status st = ensure_partitions(x, c, err);
    int64_t cutoff = (int64_t)(halo_real_ns() / 1000000000u) -
                     x->cfg->retention_ns / 1000000000;
    if (st == HALO_OK && x->cfg->retention_ns > 0 && cutoff > 0)
        st = halo_pg_retention(c, cutoff, NULL, err);
    pthread_mutex_lock(&x->mu);
    x->maint_busy = false;
    x->next_maint =
        halo_mono_ns() + (st == HALO_OK ? MAINT_EVERY_NS : MAINT_RETRY_NS);
    pthread_mutex_unlock(&x->mu);
    return st;
}

/* After a failed maintenance: true when the connection still works (the
 * failure is then only logged: spans_default takes rows of days without a
 * partition). */
static bool survives(pgx *x, PGconn *c, const char *msg)
{
    if (!still_answers(c))
        return false;
    LOG_WARN(x->prefix, "maintenance: %s (again in a minute)", msg);
    return true;
}

/* The first connection up migrates and runs the first maintenance (the
 * partitions, retention at start); the others wait for it here. */
static halo_status ensure_schema(pgx_writer *w, halo_err *err)
{
    pgx *x = w->x;
    halo_status st = HALO_OK;
    pthread_mutex_lock(&x->schema_mu);
    if (!x->schema_ready) {
        halo_err merr = {{0}};
        st = halo_pg_migrate(w->conn, err);
        if (st == HALO_OK && maintenance(x, w->conn, &merr) != HALO_OK &&
            !survives(x, w->conn, merr.msg))
            st = halo_fail(err, HALO_ERETRY, "%s", merr.msg);
        x->schema_ready = st == HALO_OK;
    }
    pthread_mutex_unlock(&x->schema_mu);
    return st;
}

/* A failed attempt: remember why (consume() says it), log it at most once
 * per backoff step over all writers, and set the wait. */
static void attempt_failed(pgx_writer *w, const halo_pg_target *t,
                           const char *msg, const char *reason)
{
    pgx *x = w->x;
    char delay[32];
    w->wait_ns = next_delay(w);
    fmt_delay(w->wait_ns, delay, sizeof delay);
    uint64_t now = halo_mono_ns();
    pthread_mutex_lock(&x->mu);
    if (x->n_up == 0) {
        if (t->where[0])
            snprintf(x->where, sizeof x->where, "%s", t->where);
        snprintf(x->reason, sizeof x->reason, "%s", reason);
    }
    x->tried = true;
    bool show = now >= x->next_warn;
    if (show)
        x->next_warn = now + w->wait_ns;
    pthread_cond_broadcast(&x->state_cv);
    pthread_mutex_unlock(&x->mu);
    if (show)
        LOG_WARN(x->prefix, "%s; retrying in %s", msg, delay);
    else
        LOG_DEBUG(x->prefix, "connection %d/%zu: %s; retrying in %s", w->index,
                  x->n_w, msg, delay);
}

static void went_up(pgx_writer *w, const halo_pg_target *t)
{
    pgx *x = w->x;
    pthread_mutex_lock(&x->mu);
    w->up = true;
    x->n_up++;
    x->utf8 = halo_pg_utf8(w->conn);
    halo_metric_set(x->m_up, x->n_up);
    snprintf(x->where, sizeof x->where, "%s", t->where);
    bool first = x->n_up == 1 && !x->ever_up;
    bool back = x->n_up == 1 && x->ever_up;
    double down_s = (double)(halo_mono_ns() - x->down_since) / 1e9;
    x->ever_up = x->tried = true;
    x->next_warn = 0;
    pthread_cond_broadcast(&x->state_cv);
    pthread_mutex_unlock(&x->mu);
    w->delay_ns = (uint64_t)x->cfg->reconnect_initial_ns;
    if (first)
        LOG_INFO(x->prefix, "connected to %s (PostgreSQL %s), %zu connection%s",
                 t->where, t->version, x->n_w, x->n_w == 1 ? "" : "s");
    else if (back)
        LOG_INFO(x->prefix, "reconnected to %s after %.1fs: accepting spans",
                 t->where, down_s);
    else
        LOG_DEBUG(x->prefix, "connection %d/%zu to %s up", w->index, x->n_w,
                  t->where);
}

/* One attempt: connect, set the schema up, count the connection. */
static void try_connect(pgx_writer *w)
{
    pgx *x = w->x;
    halo_pg_connect_opts o = {.timeout_ns = x->cfg->connect_timeout_ns,
                              .stop = &x->stop};
    halo_pg_target t;
    halo_err err = {{0}};
    PGconn *c = NULL;
    halo_status st = halo_pg_connect_nb(x->dsn, &o, &c, &t, &err);
    if (st == HALO_ESHUTDOWN)
        return;
    if (st != HALO_OK) {
        attempt_failed(w, &t, err.msg, t.reason);
        return;
    }
    attach(w, c);
    st = ensure_schema(w, &err);
    if (st != HALO_OK) {
        detach(w);
        attempt_failed(w, &t, err.msg, err.msg);
        return;
    }
    went_up(w, &t);
}

/* ---- writing ------------------------------------------------------------- */

static void write_group(pgx_writer *w, pgx_queued *g, size_t n)
{
    pgx *x = w->x;
    halo_err err = {{0}};
    halo_write_stats ws;
    char msg[HALO_ERR_MAX + 64];
    for (size_t i = 0; i < n; i++)
        w->rows[i] = g[i].rows;
    uint64_t t0 = halo_mono_ns();
    halo_status st = halo_pg_write_rows(w->conn, w->rows, n, &ws, &err);
    halo_metric_observe(x->m.write, (double)(halo_mono_ns() - t0) / 1e9);
    if (st == HALO_OK) {
        if (ws.duplicates) {
            halo_metric_add(x->m.dup, (double)ws.duplicates);
            LOG_DEBUG(x->prefix, "%lld spans already stored (redelivery)",
                      (long long)ws.duplicates);
        }
        pgx_complete(x, g, n, HALO_OK, "");
        return;
    }
    snprintf(msg, sizeof msg, "%s: %s", x->id, err.msg);
    if (st == HALO_EINVAL && n > 1 && PQstatus(w->conn) == CONNECTION_OK) {
        LOG_WARN(x->prefix, "%s: writing the group's %zu batches one by one",
                 err.msg, n);
        size_t i = 0;
        for (; i < n && w->conn; i++)
            write_group(w, &g[i], 1);
        if (i < n) /* the connection went on the way */
            pgx_complete(x, g + i, n - i, HALO_ERETRY, msg);
        return;
    }
    if (st == HALO_EINVAL) {
        LOG_ERROR(x->prefix, "refused a batch of %zu spans: %s",
                  g[0].b->n_spans, err.msg);
        pgx_complete(x, g, n, HALO_EINVAL, msg);
        return;
    }
    pgx_complete(x, g, n, HALO_ERETRY, msg);
    if (!still_answers(w->conn))
        lost(w, err.msg);
    else
        LOG_ERROR(x->prefix, "%s", err.msg);
}

static void maintain(pgx_writer *w)
{
    halo_err err = {{0}};
    if (maintenance(w->x, w->conn, &err) != HALO_OK &&
        !survives(w->x, w->conn, err.msg))
        lost(w, err.msg);
}

/* With mu held: the spans one writer takes. Up to GROUP_SPANS, but an
 * equal share when other writers are idle, so a burst is written by
 * several connections at once. */
static size_t group_limit(const pgx *x)
{
    size_t share = x->queued_spans / (size_t)(x->n_idle + 1);
    return share < GROUP_SPANS ? share : GROUP_SPANS;
}

enum step { STEP_WRITE, STEP_MAINTAIN, STEP_CHECK, STEP_END };

/* With mu held: what a connected writer does next (waiting, when there is
 * nothing to do, for work or the next idle check). */
static enum step next_step(pgx_writer *w, size_t *n)
{
    pgx *x = w->x;
    if (x->aborting)
        return STEP_END;
    uint64_t now = halo_mono_ns();
    bool due = !x->maint_busy && !x->stopping && now >= x->next_maint;
    if (due && (x->count == 0 || now >= x->next_maint + MAINT_OVERDUE_NS)) {
        x->maint_busy = true;
        return STEP_MAINTAIN;
    }
    if (x->count) {
        *n = take(x, w->group, group_limit(x));
        return STEP_WRITE;
    }
    if (x->stopping)
        return STEP_END;
    uint64_t until = now + IDLE_TICK_NS;
    if (!x->maint_busy && x->next_maint < until)
        until = x->next_maint;
    x->n_idle++;
    wait_until(x, &x->work_cv, until);
    x->n_idle--;
    return STEP_CHECK;
}

/* Serve while connected; false when the writer must end. */
static bool serve(pgx_writer *w)
{
    pgx *x = w->x;
    size_t n = 0;
    while (w->conn) {
        pthread_mutex_lock(&x->mu);
        enum step s = next_step(w, &n);
        pthread_mutex_unlock(&x->mu);
        switch (s) {
        case STEP_WRITE:
            write_group(w, w->group, n);
            pthread_mutex_lock(&x->mu);
            x->progress_ns = halo_mono_ns();
            if (x->stopping) /* shutdown() watches the progress */
                pthread_cond_broadcast(&x->state_cv);
            pthread_mutex_unlock(&x->mu);
            break;
        case STEP_MAINTAIN:
            maintain(w);
            break;
        case STEP_CHECK:
            if (!idle_alive(w->conn)) {
                char why[HALO_ERR_MAX];
                halo_pg_error_text(w->conn, NULL, why, sizeof why);
                lost(w, why[0] ? why : "the server closed the connection");
            }
            break;
        case STEP_END:
            lose(w, "shutting down");
            return false;
        }
    }
    return true;
}

void *pgx_writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "pg-writer");
    pgx_writer *w = arg;
    pgx *x = w->x;
    while (!atomic_load(&x->stop) || w->conn) {
        if (w->conn) {
            if (!serve(w))
                break;
            continue;
        }
        if (w->wait_ns) {
            backoff(w, w->wait_ns);
            w->wait_ns = 0;
            continue;
        }
        try_connect(w);
    }
    pthread_mutex_lock(&x->mu);
    x->n_running--;
    pthread_cond_broadcast(&x->state_cv);
    pthread_mutex_unlock(&x->mu);
    return NULL;
}
