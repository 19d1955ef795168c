/*
 * sqlite.c -- the sqlite exporter: spans into the embedded SQLite store.
 *
 * One writer thread owns the database connection. consume(), on the
 * caller's thread (a receiver, or the batch processor's thread), turns the
 * batch into the store's prepared rows (store.h: prepare -- hex ids, ISO
 * times, the JSON columns: about half of a span's cost before this split),
 * releases the batch's decoded spans when it holds the only reference (the
 * rows are self-contained and about a quarter of their size), appends
 * batch + rows to a bounded queue and wakes the writer, which then only
 * binds and steps. So the encoding of one batch runs on another core while
 * the writer stores the previous one. When the queue is full the batch is
 * refused at once with HALO_ERETRY, which the receivers turn into a
 * retryable answer (backpressure, DESIGN §4); the check runs before the
 * encoding, so a refusal costs nothing.
 *
 * Group commit: the writer takes everything queued (up to GROUP_SPANS
 * spans) and stores it in ONE transaction; only after COMMIT returned does
 * it complete each batch with HALO_OK, which answers the clients whose
 * requests those batches carry. A failed write is rolled back and every
 * batch of the group is completed with HALO_ERETRY and SQLite's message, so
 * the clients retry (the store is idempotent on (trace_id, span_id)).
 *
 * With synchronous=full the store is opened with deferred sync (store.h):
 * COMMIT returns once the log is written, and a second thread, the syncer,
 * fdatasyncs it and only then completes the batches of every group
 * committed before the sync began. The writer meanwhile runs the next
 * transaction, so the disk's sync and SQLite's work overlap instead of
 * adding up; what a client is told is unchanged (OK only once durable).
 *
 * Retention runs in the writer thread, at start and then every
 * min(10 min, retention / 10), as short delete transactions interleaved
 * with the queue: a pending write always goes first.
 *
 * shutdown() stops accepting (consume answers HALO_ESHUTDOWN), lets the
 * writer drain the queue fully, joins it and closes the database.
 */
#include "exporters/sqlite.h"
#include "core/clock.h"
#include "core/component.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/service.h"
#include "storage/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GROUP_SPANS 65536     /* spans per group-commit transaction */
#define UNSYNCED_QUEUES 4     /* committed, unsynced batches: x queue_size */
#define RETENTION_ROWS 1000   /* traces per retention delete step */
#define RETENTION_EVERY 600e9 /* at most 10 minutes between passes */

enum { SYNC_FULL = 0, SYNC_NORMAL };
static const char *const sync_values[] = {"full", "normal", NULL};

typedef struct sqlite_cfg {
    char *path;
    int64_t retention_ns;
    int synchronous;
    int64_t queue_size;
    int64_t busy_timeout_ns;
    int64_t cache_size;
} sqlite_cfg;

/* A queued batch and its prepared rows. */
typedef struct queued {
    halo_batch *b;
    halo_store_rows *rows;
} queued;

typedef struct sqlite_exp {
    halo_component *self;
    const sqlite_cfg *cfg;
    const char *prefix;
    halo_store *store;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t idle_cv; /* preparing dropped to 0 */
    queued *ring;
    size_t cap, head, count;
    int preparing; /* consume() calls encoding outside the lock */
    bool stopping;
    bool thread_started;
    bool closed;
    pthread_t thread;

    /* the syncer (deferred sync): batches committed, not yet synced;
     * appended by the writer, taken whole by the syncer. Under mu. */
    halo_batch **unsynced;
    size_t n_unsynced, cap_unsynced;
    pthread_cond_t sync_cv;
    bool sync_stop;
    bool sync_started;
    pthread_t sync_thread;

    /* writer-thread state */
    uint64_t next_retention; /* monotonic ns; 0: retention off */
    bool retention_active;
    uint64_t retention_cutoff; /* realtime ns */
    int64_t retention_deleted;

    halo_exporter_metrics m;
} sqlite_exp;

/* ---- writing ------------------------------------------------------------- */

/* Complete the group's batches (answering their requests) and free their
 * rows. */
static void complete_group(sqlite_exp *e, queued *group, size_t n,
                           halo_status st, const char *msg)
{
    size_t spans = 0;
    for (size_t i = 0; i < n; i++) {
        spans += group[i].b->n_spans;
        e->store->ops->free_rows(e->store, group[i].rows);
        halo_batch_done(group[i].b, st, msg);
    }
    halo_metric_add(st == HALO_OK ? e->m.sent : e->m.failed, (double)spans);
}

/* Hand a committed group to the syncer; false when out of memory (the
 * caller then syncs and completes it itself). */
static bool defer_group(sqlite_exp *e, queued *group, size_t n)
{
    pthread_mutex_lock(&e->mu);
    if (e->n_unsynced + n > e->cap_unsynced) {
        size_t cap = e->cap_unsynced ? e->cap_unsynced * 2 : 64;
        while (cap < e->n_unsynced + n)
            cap *= 2;
        halo_batch **p = realloc(e->unsynced, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&e->mu);
            return false;
        }
        e->unsynced = p;
        e->cap_unsynced = cap;
    }
    for (size_t i = 0; i < n; i++)
        e->unsynced[e->n_unsynced++] = group[i].b;
    pthread_cond_signal(&e->sync_cv);
    pthread_mutex_unlock(&e->mu);
    for (size_t i = 0; i < n; i++) /* the rows are in the database now */
        e->store->ops->free_rows(e->store, group[i].rows);
    return true;
}

/* Whether a commit is confirmed only after a sync (synchronous=full on a
 * store that syncs on request). */
static bool syncs(const sqlite_exp *e)
{
    return e->cfg->synchronous == SYNC_FULL && e->store->ops->sync;
}

/* Make what was committed durable. A failure is final (store.h): the
 * store has logged it, and the health check goes red. */
static halo_status sync_store(sqlite_exp *e, halo_err *err)
{
    halo_status st = e->store->ops->sync(e->store, err);
    if (st != HALO_OK)
        halo_service_fail(e->self->svc, err->msg);
    return st;
}

/* Sync the store and complete batches[0..n) with the outcome. */
static void sync_and_complete(sqlite_exp *e, halo_batch **batches, size_t n)
{
    halo_err err = {{0}};
    halo_status st = sync_store(e, &err);
    size_t spans = 0;
    for (size_t i = 0; i < n; i++) {
        spans += batches[i]->n_spans;
        halo_batch_done(batches[i], st == HALO_OK ? HALO_OK : HALO_ERETRY,
                        st == HALO_OK ? "" : err.msg);
    }
    halo_metric_add(st == HALO_OK ? e->m.sent : e->m.failed, (double)spans);
}

static void *syncer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "sqlite-sync");
    sqlite_exp *e = arg;
    halo_batch **mine = NULL;
    size_t cap_mine = 0;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (!e->n_unsynced) {
            if (e->sync_stop)
                break;
            pthread_cond_wait(&e->sync_cv, &e->mu);
            continue;
        }
        /* take the whole list: swap it with ours (emptied) */
        halo_batch **taken = e->unsynced;
        size_t n = e->n_unsynced, cap = e->cap_unsynced;
        e->unsynced = mine;
        e->cap_unsynced = cap_mine;
        e->n_unsynced = 0;
        pthread_mutex_unlock(&e->mu);
        sync_and_complete(e, taken, n);
        mine = taken;
        cap_mine = cap;
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    free(mine);
    return NULL;
}

static void write_group(sqlite_exp *e, queued *group, halo_store_rows **rows,
                        size_t n)
{
    halo_err err = {{0}};
    halo_write_stats ws;
    uint64_t t0 = halo_mono_ns();
    for (size_t i = 0; i < n; i++)
        rows[i] = group[i].rows;
    halo_status st = e->store->ops->write_rows(e->store, rows, n, &ws, &err);
    halo_metric_observe(e->m.write, (double)(halo_mono_ns() - t0) / 1e9);
    if (st != HALO_OK) {
        LOG_ERROR(e->prefix, "%s", err.msg);
        complete_group(e, group, n, HALO_ERETRY, err.msg);
        return;
    }
    if (ws.duplicates) {
        halo_metric_add(e->m.dup, (double)ws.duplicates);
        LOG_DEBUG(e->prefix, "%lld spans already stored (redelivery)",
                  (long long)ws.duplicates);
    }
    if (e->sync_started && defer_group(e, group, n))
        return;
    /* no syncer, or no memory to hand the group over: sync here */
    if (syncs(e) && sync_store(e, &err) != HALO_OK) {
        complete_group(e, group, n, HALO_ERETRY, err.msg);
        return;
    }
    complete_group(e, group, n, HALO_OK, "");
}

/* Take up to GROUP_SPANS spans' worth of batches (at least one) off the
 * queue. Called with mu held. */
static size_t take_group(sqlite_exp *e, queued *group)
{
    size_t n = 0, spans = 0;
    while (e->count &&
           (n == 0 || spans + e->ring[e->head].b->n_spans <= GROUP_SPANS)) {
        queued q = e->ring[e->head];
        e->head = (e->head + 1) % e->cap;
        e->count--;
        group[n++] = q;
        spans += q.b->n_spans;
    }
    halo_metric_set(e->m.depth, (double)e->count);
    return n;
}

/* ---- retention ----------------------------------------------------------- */

static uint64_t retention_interval(const sqlite_cfg *cfg)
{
    double every = (double)cfg->retention_ns / 10;
    if (every > RETENTION_EVERY)
        every = RETENTION_EVERY;
    if (every < 10e6)
        every = 10e6;
    return (uint64_t)every;
}

/* Start a pass when one is due. */
static void retention_check(sqlite_exp *e)
{
    if (!e->next_retention || e->retention_active ||
        halo_mono_ns() < e->next_retention)
        return;
    e->retention_active = true;
    e->retention_cutoff = halo_real_ns() - (uint64_t)e->cfg->retention_ns;
    e->retention_deleted = 0;
    e->next_retention = halo_mono_ns() + retention_interval(e->cfg);
}

/* One short delete transaction of the current pass. */
static void retention_step(sqlite_exp *e)
{
    halo_err err = {{0}};
    int64_t deleted = 0;
    bool more = false;
    halo_status st = e->store->ops->retention_step(
        e->store, e->retention_cutoff, RETENTION_ROWS, &deleted, &more, &err);
    e->retention_deleted += deleted;
    if (st != HALO_OK) {
        LOG_WARN(e->prefix, "retention: %s", err.msg);
        more = false;
    }
    if (!more) {
        e->retention_active = false;
        if (e->retention_deleted) {
            char cutoff[HALO_ISO_NS_LEN];
            halo_iso_from_ns(e->retention_cutoff, cutoff);
            LOG_INFO(e->prefix, "retention: deleted %lld rows older than %s",
                     (long long)e->retention_deleted, cutoff);
        }
    }
}

/* Wait for work or for the next retention pass. Called with mu held. */
static void wait_for_work(sqlite_exp *e)
{
    if (!e->next_retention) {
        pthread_cond_wait(&e->cv, &e->mu);
        return;
    }
    uint64_t now = halo_mono_ns();
    if (now >= e->next_retention)
        return;
    struct timespec ts = halo_timespec_of(e->next_retention);
    pthread_cond_timedwait(&e->cv, &e->mu, &ts);
}

static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "sqlite-writer");
    sqlite_exp *e = arg;
    queued *group = malloc(e->cap * sizeof *group);
    halo_store_rows **rows = malloc(e->cap * sizeof *rows);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->count && group && rows) {
            size_t n = take_group(e, group);
            pthread_mutex_unlock(&e->mu);
            write_group(e, group, rows, n);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->count) { /* no memory for a group: one batch at a time */
            queued q = e->ring[e->head];
            halo_store_rows *r1;
            e->head = (e->head + 1) % e->cap;
            e->count--;
            pthread_mutex_unlock(&e->mu);
            write_group(e, &q, &r1, 1);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->stopping)
            break;
        retention_check(e);
        if (e->retention_active) {
            pthread_mutex_unlock(&e->mu);
            retention_step(e);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        wait_for_work(e);
    }
    pthread_mutex_unlock(&e->mu);
    free(group);
    free(rows);
    return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

static const char *prefix_of(const halo_component *self)
{
    return self->log_prefix ? self->log_prefix : "exporter:sqlite";
}

static halo_status sqlite_create(halo_component *self, halo_err *err)
{
    const sqlite_cfg *cfg = self->cfg;
    if (!cfg->path || !*cfg->path)
        return halo_fail(err, HALO_EINVAL, "invalid path: empty");
    sqlite_exp *e = calloc(1, sizeof *e);
    if (!e)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    e->self = self;
    e->cfg = cfg;
    e->prefix = prefix_of(self);
    e->cap = (size_t)cfg->queue_size;
    e->ring = calloc(e->cap, sizeof *e->ring);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&e->idle_cv, NULL);
    pthread_cond_init(&e->sync_cv, NULL);
    pthread_mutex_init(&e->mu, NULL);
    self->ctx = e;
    if (!e->ring)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_exporter_metrics_register(&e->m, self->id ? self->id : "sqlite");
    return HALO_OK;
}

/* mkdir -p of the directory holding path. */
static halo_status make_parent_dir(const char *path, halo_err *err)
{
    char dir[4096];
    if (!halo_dir_of(path, dir, sizeof dir))
        return halo_fail(err, HALO_EINVAL, "invalid path \"%s\": too long",
                         path);
    return halo_mkdir_p(dir, 0755, err);
}

/* Let the syncer complete what was committed, then join it. */
static void stop_syncer(sqlite_exp *e)
{
    if (!e->sync_started)
        return;
    pthread_mutex_lock(&e->mu);
    e->sync_stop = true;
    pthread_cond_signal(&e->sync_cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->sync_thread, NULL);
    e->sync_started = false;
}

static halo_status sqlite_start(halo_component *self, halo_err *err)
{
    sqlite_exp *e = self->ctx;
    const sqlite_cfg *cfg = e->cfg;
    halo_status st = make_parent_dir(cfg->path, err);
    if (st != HALO_OK)
        return st;
    halo_store_opts o = {
        .path = cfg->path,
        .read_only = false,
        .synchronous =
            cfg->synchronous == SYNC_NORMAL ? HALO_SYNC_NORMAL : HALO_SYNC_FULL,
        .busy_timeout_ms = cfg->busy_timeout_ns / 1000000,
        .cache_kib = cfg->cache_size / 1024,
        .background_checkpoint = true,
        .deferred_sync = cfg->synchronous == SYNC_FULL,
    };
    st = halo_store_open_sqlite(&o, &e->store, err);
    if (st != HALO_OK)
        return st;
    if (cfg->retention_ns > 0)
        e->next_retention = halo_mono_ns(); /* a first pass at start */
    /* without the syncer, write_group syncs each group itself */
    if (syncs(e) && pthread_create(&e->sync_thread, NULL, syncer_main, e) == 0)
        e->sync_started = true;
    if (pthread_create(&e->thread, NULL, writer_main, e) != 0) {
        stop_syncer(e);
        halo_store_close(e->store);
        e->store = NULL;
        return halo_fail(err, HALO_EIO, "could not start the writer thread");
    }
    e->thread_started = true;
    char keep[32];
    halo_format_duration(cfg->retention_ns, keep, sizeof keep);
    LOG_INFO(e->prefix, "writing to %s (synchronous=%s, retention %s)",
             cfg->path, sync_values[cfg->synchronous],
             cfg->retention_ns > 0 ? keep : "off: 0 keeps everything");
    return HALO_OK;
}

/* With mu held: HALO_OK when a batch may be queued now, else the status
 * and message to refuse it with. */
static halo_status can_queue(const sqlite_exp *e, const char **msg)
{
    *msg = "";
    if (e->stopping) {
        *msg = "sqlite exporter is shutting down";
        return HALO_ESHUTDOWN;
    }
    if (!e->store) {
        *msg = "sqlite exporter is not started";
        return HALO_ERETRY;
    }
    if (e->count == e->cap) {
        *msg = "sqlite exporter queue full";
        return HALO_ERETRY;
    }
    /* the writer empties the queue into commits the disk has not synced
     * yet: bound those too, or a stalled disk would take everything */
    if (e->n_unsynced >= UNSYNCED_QUEUES * e->cap) {
        *msg = "sqlite exporter waiting for the disk (log sync)";
        return HALO_ERETRY;
    }
    return HALO_OK;
}

static halo_status sqlite_consume(halo_component *self, halo_batch *b)
{
    sqlite_exp *e = self->ctx;
    const char *msg;
    pthread_mutex_lock(&e->mu);
    halo_status st = can_queue(e, &msg);
    if (st == HALO_OK)
        e->preparing++;
    pthread_mutex_unlock(&e->mu);
    if (st != HALO_OK)
        return halo_batch_refuse(b, e->m.failed, st, msg);

    halo_err err = {{0}};
    halo_store_rows *rows = NULL;
    halo_status pst = e->store->ops->prepare(e->store, b, &rows, &err);
    if (pst == HALO_OK)
        halo_batch_release_spans(b);

    pthread_mutex_lock(&e->mu);
    st = pst == HALO_OK ? can_queue(e, &msg) : pst;
    if (st == HALO_OK) {
        e->ring[(e->head + e->count) % e->cap] = (queued){b, rows};
        e->count++;
        halo_metric_set(e->m.depth, (double)e->count);
        pthread_cond_signal(&e->cv);
    } else {
        /* before preparing drops: once it is 0, shutdown may close the
         * store and clear e->store */
        e->store->ops->free_rows(e->store, rows);
    }
    if (--e->preparing == 0)
        pthread_cond_broadcast(&e->idle_cv);
    pthread_mutex_unlock(&e->mu);
    if (st == HALO_OK)
        return HALO_OK;
    if (pst != HALO_OK) {
        LOG_ERROR(e->prefix, "%s", err.msg);
        halo_metric_add(e->m.failed, (double)b->n_spans);
        halo_batch_done(b, HALO_ERETRY, err.msg);
        return HALO_ERETRY;
    }
    return halo_batch_refuse(b, e->m.failed, st, msg);
}

static void sqlite_shutdown(halo_component *self)
{
    sqlite_exp *e = self->ctx;
    if (!e || e->closed)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_signal(&e->cv);
    /* consume() calls still encoding use the store: let them finish (they
     * then see `stopping` and refuse) */
    while (e->preparing > 0)
        pthread_cond_wait(&e->idle_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started)
        pthread_join(e->thread, NULL);
    e->thread_started = false;
    stop_syncer(e);
    /* never started: nobody will write what was queued */
    while (e->count) {
        queued q = e->ring[e->head];
        e->head = (e->head + 1) % e->cap;
        e->count--;
        halo_metric_add(e->m.failed, (double)q.b->n_spans);
        if (e->store)
            e->store->ops->free_rows(e->store, q.rows);
        halo_batch_done(q.b, HALO_ESHUTDOWN,
                        "sqlite exporter is shutting down");
    }
    halo_metric_set(e->m.depth, 0);
    if (e->store) {
        halo_store_close(e->store);
        e->store = NULL;
        LOG_INFO(e->prefix, "closed %s", e->cfg->path);
    }
    e->closed = true;
}

static void sqlite_destroy(halo_component *self)
{
    sqlite_exp *e = self->ctx;
    if (!e)
        return;
    sqlite_shutdown(self);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->idle_cv);
    pthread_cond_destroy(&e->sync_cv);
    free(e->unsynced);
    pthread_mutex_destroy(&e->mu);
    free(e->ring);
    free(e);
    self->ctx = NULL;
}

halo_store *halo_sqlite_exporter_store(const halo_component *self)
{
    const sqlite_exp *e = self->ctx;
    return e ? e->store : NULL;
}

static const halo_field schema[] = {
    {.key = "path",
     .type = HALO_F_STRING,
     .offset = offsetof(sqlite_cfg, path),
     .def = "data/halo.db",
     .description = "database file (its directory is created)"},
    {.key = "retention",
     .type = HALO_F_DURATION,
     .offset = offsetof(sqlite_cfg, retention_ns),
     .def = "720h",
     .min = 0,
     .max = 87600 * 3600e9,
     .description = "delete spans and traces older than this (0: keep "
                    "forever)"},
    {.key = "synchronous",
     .type = HALO_F_ENUM,
     .offset = offsetof(sqlite_cfg, synchronous),
     .def = "full",
     .enum_values = sync_values,
     .description = "full: a confirmed span survives power loss; normal: "
                    "faster, may lose the last commits on power loss"},
    {.key = "queue_size",
     .type = HALO_F_INT,
     .offset = offsetof(sqlite_cfg, queue_size),
     .def = "64",
     .min = 1,
     .max = 65536,
     .description = "batches waiting for the writer before new ones are "
                    "refused (retryable)"},
    {.key = "busy_timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(sqlite_cfg, busy_timeout_ns),
     .def = "5s",
     .min = 0,
     .max = 3600e9,
     .description = "how long a write waits for a lock held by another "
                    "connection"},
    {.key = "cache_size",
     .type = HALO_F_SIZE,
     .offset = offsetof(sqlite_cfg, cache_size),
     .def = "16MiB",
     .min = 1024 * 1024,
     .max = 4096.0 * 1024 * 1024,
     .description = "SQLite page cache of the writer connection"},
    {0},
};

const halo_component_def halo_exporter_sqlite = {
    .kind = HALO_EXPORTER,
    .type = "sqlite",
    .description = "stores spans in an embedded SQLite database",
    .schema = schema,
    .cfg_size = sizeof(sqlite_cfg),
    .create = sqlite_create,
    .start = sqlite_start,
    .consume = sqlite_consume,
    .shutdown = sqlite_shutdown,
    .destroy = sqlite_destroy,
};
