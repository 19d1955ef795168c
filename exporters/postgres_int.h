/*
 * postgres_int.h -- the postgres exporter's state, shared by the component
 * (postgres.c: config, consume, lifecycle) and its writer threads
 * (postgres_writer.c: connections, group commit, maintenance).
 *
 * Locking: one mutex (mu) guards the queue, the connection count and the
 * shared bookkeeping; a writer's PGconn is touched only by its own thread.
 * Three condition variables, so a wake-up always reaches a thread that
 * can act on it:
 *   work_cv   connected writers waiting for batches (signalled per batch,
 *             broadcast on stop and when a connection was lost)
 *   state_cv  writers sleeping before a reconnect, the schema set-up,
 *             start() waiting for the first attempt, shutdown() waiting
 *             for the writers to end
 *   idle_cv   consume() calls encoding outside the lock dropped to 0
 *
 * "Refuse at once while the database is down": consume() enqueues only
 * when n_up > 0 (checked under mu), and the writer that takes n_up to 0
 * answers what is queued (retryable) right away, unless a connection
 * comes back first and writes it.
 */
#ifndef HALO_EXPORTER_POSTGRES_INT_H
#define HALO_EXPORTER_POSTGRES_INT_H

#include "core/component.h"
#include "core/metrics.h"
#include "storage/pg_conn.h"
#include "storage/pg_write.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Batches in one group commit at most (and the size of a writer's group
 * arrays, when the queue is longer). */
#define PGX_GROUP_BATCHES 4096

typedef struct pgx_cfg {
    char *dsn;
    int64_t num_connections;
    int64_t queue_size;
    int64_t retention_ns;
    int64_t partitions_ahead;
    int64_t connect_timeout_ns;
    int64_t reconnect_initial_ns;
    int64_t reconnect_max_ns;
} pgx_cfg;

/* A queued batch and its prepared rows. */
typedef struct pgx_queued {
    halo_batch *b;
    halo_store_rows *rows;
} pgx_queued;

typedef struct pgx pgx;

typedef struct pgx_writer {
    pgx *x;
    int index; /* 1-based, for logs */
    pthread_t thread;
    bool started;
    /* the writer thread's own */
    PGconn *conn;
    uint64_t delay_ns; /* next reconnect delay before jitter */
    uint64_t wait_ns;  /* to wait before the next attempt */
    unsigned seed;
    pgx_queued *group; /* a group being written */
    halo_store_rows **rows;
    /* under mu */
    int abort_fd; /* dup of conn's socket (-1): shutdown() unblocks a
                     write stuck on a dead network */
    bool up;      /* counted in n_up */
} pgx_writer;

struct pgx {
    halo_component *self;
    const pgx_cfg *cfg;
    const char *prefix; /* log prefix */
    const char *id;     /* "postgres", "postgres/main" */
    char *dsn;          /* cfg->dsn, else $HALO_PG_DSN, else "" */

    pthread_mutex_t mu;
    pthread_cond_t work_cv, state_cv, idle_cv;
    pgx_queued *ring;
    size_t cap, head, count;
    size_t queued_spans;  /* spans of the queued batches */
    int n_idle;           /* connected writers waiting for work */
    int preparing;        /* consume() calls encoding outside the lock */
    bool stopping;        /* consume() refuses: shutting down */
    atomic_bool stop;     /* writers end; connect attempts are interrupted */
    bool aborting;        /* the drain stalled: fail what is left */
    uint64_t progress_ns; /* monotonic ns: last group written */
    bool closed;
    int n_running; /* writer threads alive */
    int n_up;      /* connections up with the schema ready */
    bool tried;    /* a first connection attempt has finished */
    bool ever_up;
    bool utf8; /* the database is UTF8: prepare stores input/output once */
    uint64_t down_since; /* monotonic ns: n_up dropped to 0 */
    uint64_t next_warn;  /* monotonic ns: next failed attempt logged */
    uint64_t next_maint; /* monotonic ns: partitions + retention due */
    bool maint_busy;
    char where[HALO_PG_WHERE_MAX]; /* the server, password-free */
    char reason[HALO_ERR_MAX];     /* why no connection is up */

    pthread_mutex_t schema_mu; /* the first connection migrates */
    bool schema_ready;         /* under schema_mu */

    pgx_writer *w;
    size_t n_w;

    halo_exporter_metrics m;
    halo_metric *m_up; /* halo_exporter_connections_up */
};

/* postgres_writer.c */
void *pgx_writer_main(void *arg);
/* Complete the batches q[0..n) with st/msg and free their rows. */
void pgx_complete(pgx *x, pgx_queued *q, size_t n, halo_status st,
                  const char *msg);
/* With mu held: the refusal text while no connection is up. */
void pgx_unavailable_msg(const pgx *x, char *buf, size_t cap);

#endif
