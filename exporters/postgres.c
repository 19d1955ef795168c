/*
 * postgres.c -- the postgres exporter: spans into PostgreSQL.
 *
 * The sqlite exporter's shape with several writers: consume(), on the
 * caller's thread, encodes the batch into prepared rows (halo_pg_prepare:
 * the same rows as the SQLite store's), frees the decoded spans when it
 * holds the only reference, and appends batch + rows to one bounded queue
 * that num_connections writer threads take groups from
 * (postgres_writer.c), each writer with its own connection. A batch is
 * answered HALO_OK only after the transaction holding it committed (group
 * commit, DESIGN §4).
 *
 * The database may be down at start or go away later: start() never fails
 * for that (it waits at most START_WAIT_NS for the first connection attempt
 * so a daemon whose database is up accepts spans from the first request),
 * the writers reconnect by themselves with backoff, and meanwhile consume()
 * refuses at once with HALO_ERETRY and the reason ("postgres: database
 * unavailable (127.0.0.1:5432/halo: ...), retrying"), which the receivers
 * answer with gRPC UNAVAILABLE / HTTP 503 and the Kafka receiver retries.
 * A full queue is refused the same way, before any encoding.
 *
 * shutdown() refuses new batches (HALO_ESHUTDOWN), lets the writers drain
 * the queue, and waits for them as long as they make progress; when no
 * group was written for STALL_NS (a database that stopped answering) the
 * writers' sockets are shut down, so a write blocked on the network
 * returns, and whatever is left is answered HALO_ERETRY. It never hangs.
 *
 * The DSN's password never reaches a log line or an error message: every
 * text about a connection comes from storage/pg_conn.c, which removes it.
 */
#include "postgres_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define START_WAIT_NS 2000000000ull /* start() waits this long at most */
#define STALL_NS 5000000000ull      /* shutdown: no progress this long */

/* ---- metrics ------------------------------------------------------------- */

static void register_metrics(pgx *x)
{
    halo_exporter_metrics_register(&x->m, x->id);
    char labels[256];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", x->id);
    x->m_up = halo_gauge("halo_exporter_connections_up",
                         "database connections up (postgres exporter)", labels);
}

/* ---- lifecycle ----------------------------------------------------------- */

/* cfg->dsn, else $HALO_PG_DSN, else "" (libpq's PG* variables). */
static char *resolve_dsn(const pgx_cfg *cfg)
{
    const char *dsn = cfg->dsn && *cfg->dsn ? cfg->dsn : getenv("HALO_PG_DSN");
    return strdup(dsn ? dsn : "");
}

static halo_status init_writers(pgx *x)
{
    x->n_w = (size_t)x->cfg->num_connections;
    x->w = calloc(x->n_w, sizeof *x->w);
    if (!x->w)
        return HALO_ENOMEM;
    for (size_t i = 0; i < x->n_w; i++) {
        pgx_writer *w = &x->w[i];
        w->x = x;
        w->index = (int)i + 1;
        w->abort_fd = -1;
        w->delay_ns = (uint64_t)x->cfg->reconnect_initial_ns;
        w->seed = (unsigned)(halo_mono_ns() ^ (uint64_t)getpid() * 2654435761u ^
                             (uint64_t)i * 40503u);
        size_t n = x->cap < PGX_GROUP_BATCHES ? x->cap : PGX_GROUP_BATCHES;
        w->group = calloc(n, sizeof *w->group);
        w->rows = calloc(n, sizeof *w->rows);
        if (!w->group || !w->rows)
            return HALO_ENOMEM;
    }
    return HALO_OK;
}

static void init_sync(pgx *x)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->work_cv, &ca);
    pthread_cond_init(&x->state_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&x->idle_cv, NULL);
    pthread_mutex_init(&x->mu, NULL);
    pthread_mutex_init(&x->schema_mu, NULL);
    atomic_init(&x->stop, false);
}

static halo_status pg_create(halo_component *self, halo_err *err)
{
    const pgx_cfg *cfg = self->cfg;
    if (cfg->reconnect_initial_ns > cfg->reconnect_max_ns)
        return halo_fail(err, HALO_EINVAL,
                         "invalid reconnect_initial_interval: above "
                         "reconnect_max_interval");
    char *dsn = resolve_dsn(cfg);
    if (!dsn)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_status st = halo_pg_dsn_check(dsn, err);
    if (st != HALO_OK) {
        free(dsn);
        return st;
    }
    pgx *x = calloc(1, sizeof *x);
    if (!x) {
        free(dsn);
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    x->self = self;
    x->cfg = cfg;
    x->dsn = dsn;
    x->prefix = self->log_prefix ? self->log_prefix : "exporter:postgres";
    x->id = self->id ? self->id : "postgres";
    x->cap = (size_t)cfg->queue_size;
    x->next_maint = UINT64_MAX; /* set by the first connection */
    init_sync(x);
    self->ctx = x;
    x->ring = calloc(x->cap, sizeof *x->ring);
    if (!x->ring || init_writers(x) != HALO_OK)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    register_metrics(x);
    halo_metric_set(x->m_up, 0);
    return HALO_OK;
}

/* Wait (bounded) for the first connection attempt to finish, so a daemon
 * whose database is up accepts spans from the first request. */
static void wait_first_attempt(pgx *x)
{
    uint64_t wait = (uint64_t)x->cfg->connect_timeout_ns + 100000000u;
    if (wait > START_WAIT_NS)
        wait = START_WAIT_NS;
    uint64_t deadline = halo_mono_ns() + wait;
    pthread_mutex_lock(&x->mu);
    while (!x->tried && halo_mono_ns() < deadline) {
        struct timespec ts = halo_timespec_of(deadline);
        pthread_cond_timedwait(&x->state_cv, &x->mu, &ts);
    }
    bool tried = x->tried;
    pthread_mutex_unlock(&x->mu);
    if (!tried)
        LOG_INFO(x->prefix, "still connecting to PostgreSQL: spans are "
                            "refused (retryable) until a connection is up");
}

static halo_status pg_start(halo_component *self, halo_err *err)
{
    pgx *x = self->ctx;
    for (size_t i = 0; i < x->n_w; i++) {
        pgx_writer *w = &x->w[i];
        pthread_mutex_lock(&x->mu);
        x->n_running++;
        pthread_mutex_unlock(&x->mu);
        if (pthread_create(&w->thread, NULL, pgx_writer_main, w) != 0) {
            pthread_mutex_lock(&x->mu);
            x->n_running--;
            pthread_mutex_unlock(&x->mu);
            return halo_fail(err, HALO_EIO, "could not start writer thread %zu",
                             i + 1);
        }
        w->started = true;
    }
    wait_first_attempt(x);
    return HALO_OK;
}

/* With mu held: HALO_OK when a batch may be queued now, else the status
 * and the message (into msg) to refuse it with. */
static halo_status can_queue(const pgx *x, char *msg, size_t cap)
{
    if (x->stopping) {
        snprintf(msg, cap, "%s: shutting down", x->id);
        return HALO_ESHUTDOWN;
    }
    if (x->n_up == 0) {
        pgx_unavailable_msg(x, msg, cap);
        return HALO_ERETRY;
    }
    if (x->count == x->cap) {
        snprintf(msg, cap, "%s: exporter queue full", x->id);
        return HALO_ERETRY;
    }
    return HALO_OK;
}

/* With mu held: append to the queue and wake one writer. */
static void enqueue(pgx *x, halo_batch *b, halo_store_rows *rows)
{
    x->ring[(x->head + x->count) % x->cap] = (pgx_queued){b, rows};
    x->count++;
    x->queued_spans += b->n_spans;
    halo_metric_set(x->m.depth, (double)x->count);
    pthread_cond_signal(&x->work_cv);
}

static halo_status pg_consume(halo_component *self, halo_batch *b)
{
    pgx *x = self->ctx;
    char msg[HALO_ERR_MAX + HALO_PG_WHERE_MAX + 64];
    pthread_mutex_lock(&x->mu);
    halo_status st = can_queue(x, msg, sizeof msg);
    if (st == HALO_OK)
        x->preparing++;
    bool cut_io = x->utf8;
    pthread_mutex_unlock(&x->mu);
    if (st != HALO_OK)
        return halo_batch_refuse(b, x->m.failed, st, msg);

    halo_err err = {{0}};
    halo_store_rows *rows = NULL;
    halo_status pst = halo_pg_prepare(b, cut_io, &rows, &err);
    if (pst == HALO_OK)
        halo_batch_release_spans(b);

    pthread_mutex_lock(&x->mu);
    st = pst == HALO_OK ? can_queue(x, msg, sizeof msg) : pst;
    if (st == HALO_OK)
        enqueue(x, b, rows);
    if (--x->preparing == 0)
        pthread_cond_broadcast(&x->idle_cv);
    pthread_mutex_unlock(&x->mu);
    if (st == HALO_OK)
        return HALO_OK;
    halo_pg_free_rows(rows);
    if (pst != HALO_OK) {
        LOG_ERROR(x->prefix, "%s", err.msg);
        snprintf(msg, sizeof msg, "%s: %s", x->id, err.msg);
        st = HALO_ERETRY;
    }
    return halo_batch_refuse(b, x->m.failed, st, msg);
}

/* With mu held: wait for the writers to end while they make progress;
 * when they stall, cut their sockets so blocked writes return. */
static void wait_writers(pgx *x)
{
    x->progress_ns = halo_mono_ns();
    while (x->n_running > 0) {
        uint64_t deadline = x->progress_ns + STALL_NS;
        if (halo_mono_ns() >= deadline)
            break;
        struct timespec ts = halo_timespec_of(deadline);
        pthread_cond_timedwait(&x->state_cv, &x->mu, &ts);
    }
    if (x->n_running == 0)
        return;
    LOG_WARN(x->prefix,
             "no write finished for %llus: closing the connections, "
             "answering what is left retryable",
             (unsigned long long)(STALL_NS / 1000000000u));
    x->aborting = true;
    for (size_t i = 0; i < x->n_w; i++)
        if (x->w[i].abort_fd >= 0)
            shutdown(x->w[i].abort_fd, SHUT_RDWR);
    pthread_cond_broadcast(&x->work_cv);
}

static void pg_shutdown(halo_component *self)
{
    pgx *x = self->ctx;
    if (!x || x->closed)
        return;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    atomic_store(&x->stop, true);
    pthread_cond_broadcast(&x->work_cv);
    pthread_cond_broadcast(&x->state_cv);
    while (x->preparing > 0)
        pthread_cond_wait(&x->idle_cv, &x->mu);
    wait_writers(x);
    pthread_mutex_unlock(&x->mu);
    for (size_t i = 0; i < x->n_w; i++)
        if (x->w[i].started)
            pthread_join(x->w[i].thread, NULL);
    /* left by a stalled drain */
    char msg[128];
    snprintf(msg, sizeof msg,
             "%s: shut down before the database confirmed the spans", x->id);
    while (x->count) {
        pgx_queued q = x->ring[x->head];
        x->head = (x->head + 1) % x->cap;
        x->count--;
        pgx_complete(x, &q, 1, HALO_ERETRY, msg);
    }
    halo_metric_set(x->m.depth, 0);
    halo_metric_set(x->m_up, 0);
    if (x->ever_up)
        LOG_INFO(x->prefix, "closed the connections to %s", x->where);
    x->closed = true;
}

static void pg_destroy(halo_component *self)
{
    pgx *x = self->ctx;
    if (!x)
        return;
    pg_shutdown(self);
    for (size_t i = 0; x->w && i < x->n_w; i++) {
        free(x->w[i].group);
        free(x->w[i].rows);
    }
    free(x->w);
    pthread_cond_destroy(&x->work_cv);
    pthread_cond_destroy(&x->state_cv);
    pthread_cond_destroy(&x->idle_cv);
    pthread_mutex_destroy(&x->mu);
    pthread_mutex_destroy(&x->schema_mu);
    free(x->ring);
    free(x->dsn);
    free(x);
    self->ctx = NULL;
}

/* ---- the component ------------------------------------------------------- */

static const halo_field schema[] = {
    {.key = "dsn",
     .type = HALO_F_STRING,
     .offset = offsetof(pgx_cfg, dsn),
     .description = "libpq connection URI or key=value string; empty: "
                    "$HALO_PG_DSN, else libpq's PG* environment variables "
                    "and defaults (checked by halo validate; never logged "
                    "with its password)"},
    {.key = "num_connections",
     .type = HALO_F_INT,
     .offset = offsetof(pgx_cfg, num_connections),
     .def = "4",
     .min = 1,
     .max = 64,
     .description = "writer threads, each with its own connection, taking "
                    "group commits from one queue"},
    {.key = "queue_size",
     .type = HALO_F_INT,
     .offset = offsetof(pgx_cfg, queue_size),
     .def = "64",
     .min = 1,
     .max = 65536,
     .description = "batches waiting for a writer before new ones are "
                    "refused (retryable)"},
    {.key = "retention",
     .type = HALO_F_DURATION,
     .offset = offsetof(pgx_cfg, retention_ns),
     .def = "720h",
     .min = 0,
     .max = 87600 * 3600e9,
     .description = "drop the day partitions (and traces) older than this, "
                    "checked at start and hourly (0: keep forever)"},
    {.key = "partitions_ahead",
     .type = HALO_F_INT,
     .offset = offsetof(pgx_cfg, partitions_ahead),
     .def = "3",
     .min = 0,
     .max = 60,
     .description = "day partitions of spans created ahead of today, at the "
                    "first connection and then hourly (from yesterday on)"},
    {.key = "connect_timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(pgx_cfg, connect_timeout_ns),
     .def = "10s",
     .min = 100e6,
     .max = 3600e9,
     .description = "longest connection attempt (all hosts of the DSN); "
                    "overrides the DSN's connect_timeout"},
    {.key = "reconnect_initial_interval",
     .type = HALO_F_DURATION,
     .offset = offsetof(pgx_cfg, reconnect_initial_ns),
     .def = "250ms",
     .min = 1e6,
     .max = 3600e9,
     .description = "first wait before reconnecting; doubles per failed "
                    "attempt (with jitter)"},
    {.key = "reconnect_max_interval",
     .type = HALO_F_DURATION,
     .offset = offsetof(pgx_cfg, reconnect_max_ns),
     .def = "30s",
     .min = 1e6,
     .max = 3600e9,
     .description = "longest wait between reconnection attempts"},
    {0},
};

const halo_component_def halo_exporter_postgres = {
    .kind = HALO_EXPORTER,
    .type = "postgres",
    .description = "stores spans in PostgreSQL (daily partitions, group "
                   "commit over several connections, reconnects by itself)",
    .schema = schema,
    .cfg_size = sizeof(pgx_cfg),
    .create = pg_create,
    .start = pg_start,
    .consume = pg_consume,
    .shutdown = pg_shutdown,
    .destroy = pg_destroy,
};
