/*
 * batch.c -- the batch processor: adaptive group commit.
 *
 * Requests are merged into one pending batch (chunks and acks move, no span
 * is copied). When the pending batch is sent depends on how busy the
 * downstream is, which the processor knows exactly: every batch it sends
 * carries one extra ack of its own, completed when the exporter is done
 * with it.
 *
 *   - fewer than max_in_flight batches downstream: send at once, so a
 *     lightly loaded pipeline adds no delay at all;
 *   - otherwise keep merging: send when a downstream batch completes, when
 *     send_batch_size spans have gathered, or when the oldest request has
 *     waited `timeout` -- whichever comes first.
 *
 * Under load the batches grow by themselves (many requests, one commit);
 * the acks of every coalesced request are completed by the exporter after
 * its write is durable, never earlier. Sends happen on the thread whose
 * request triggered them, or on the processor's thread when a completion or
 * the timeout did (never on the exporter's thread, which only signals).
 *
 * Shutdown sends what is pending and waits until everything sent is done.
 */
#include "core/clock.h"
#include "core/component.h"
#include "core/log.h"
#include "core/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct batch_cfg {
    int64_t send_batch_size;
    int64_t timeout_ns;
    int64_t max_in_flight;
} batch_cfg;

typedef struct batch_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_running;
    bool stopping;
    halo_batch *pending;
    uint64_t pending_since; /* CLOCK_MONOTONIC ns */
    int64_t in_flight;      /* sent downstream, not yet done */
    halo_metric *m_size;
    halo_metric *m_trigger[3];
} batch_ctx;

enum { TRIG_IDLE, TRIG_SIZE, TRIG_TIMEOUT };

/* The processor's own ack on a sent batch: downstream is done with it. */
static void on_downstream_done(void *ud, halo_status st, const char *msg)
{
    (void)st;
    (void)msg;
    batch_ctx *x = ud;
    pthread_mutex_lock(&x->mu);
    x->in_flight--;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* Send b downstream. Called without the lock; in_flight was already
 * counted by the caller. */
static void send(halo_component *self, halo_batch *b, int trigger)
{
    batch_ctx *x = self->ctx;
    halo_metric_observe(x->m_size, (double)b->n_spans);
    halo_metric_add(x->m_trigger[trigger], 1);
    halo_ack *mine = halo_ack_new(on_downstream_done, x);
    if (!mine) {
        /* cannot track it: count it done now (only the adaptivity
         * suffers, never an acknowledgement) */
        on_downstream_done(x, HALO_OK, "");
    } else {
        /* attached, the batch holds it from now on; not attached (out of
         * memory), this unref is the last and counts the batch done now.
         * Either way on_downstream_done runs exactly once. */
        (void)halo_batch_add_ack(b, mine);
        halo_ack_unref(mine);
    }
    halo_emit(self, b);
}

/* With the lock held: take the pending batch if it should go now. */
static halo_batch *take_due(halo_component *self, int *trigger)
{
    batch_ctx *x = self->ctx;
    batch_cfg *cfg = self->cfg;
    if (!x->pending)
        return NULL;
    if (x->in_flight < cfg->max_in_flight)
        *trigger = TRIG_IDLE;
    else if ((int64_t)x->pending->n_spans >= cfg->send_batch_size)
        *trigger = TRIG_SIZE;
    else if (halo_mono_ns() >= x->pending_since + (uint64_t)cfg->timeout_ns)
        *trigger = TRIG_TIMEOUT;
    else
        return NULL;
    halo_batch *b = x->pending;
    x->pending = NULL;
    x->in_flight++;
    return b;
}

static void *batch_main(void *arg)
{
    pthread_setname_np(pthread_self(), "batch");
    halo_component *self = arg;
    batch_ctx *x = self->ctx;
    batch_cfg *cfg = self->cfg;
    pthread_mutex_lock(&x->mu);
    while (!x->stopping) {
        int trigger;
        halo_batch *b = take_due(self, &trigger);
        if (b) {
            pthread_mutex_unlock(&x->mu);
            send(self, b, trigger);
            pthread_mutex_lock(&x->mu);
            continue;
        }
        if (!x->pending) {
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        struct timespec ts =
            halo_timespec_of(x->pending_since + (uint64_t)cfg->timeout_ns);
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

static halo_status batch_create(halo_component *self, halo_err *err)
{
    batch_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    pthread_mutex_init(&x->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->cv, &ca);
    pthread_condattr_destroy(&ca);
    char labels[256], l2[320];
    snprintf(labels, sizeof labels, "processor=\"%s\"", self->id);
    x->m_size = halo_histogram("halo_processor_batch_size",
                               "spans per batch sent downstream", labels,
                               halo_size_buckets, halo_size_buckets_n);
    static const char *const names[] = {"idle", "size", "timeout"};
    for (int i = 0; i < 3; i++) {
        snprintf(l2, sizeof l2, "%s,trigger=\"%s\"", labels, names[i]);
        x->m_trigger[i] =
            halo_counter("halo_processor_batch_sends_total",
                         "batches sent, by what triggered them", l2);
    }
    self->ctx = x;
    return HALO_OK;
}

static halo_status batch_start(halo_component *self, halo_err *err)
{
    batch_ctx *x = self->ctx;
    pthread_mutex_lock(&x->mu);
    int rc = pthread_create(&x->thread, NULL, batch_main, self);
    x->thread_running = rc == 0;
    pthread_mutex_unlock(&x->mu);
    if (rc != 0)
        return halo_fail(err, HALO_EIO, "could not start the batch thread");
    return HALO_OK;
}

static halo_status batch_consume(halo_component *self, halo_batch *b)
{
    batch_ctx *x = self->ctx;
    pthread_mutex_lock(&x->mu);
    if (x->stopping || !x->thread_running) {
        /* draining (halo import's last batches): pass through */
        x->in_flight++;
        pthread_mutex_unlock(&x->mu);
        send(self, b, TRIG_IDLE);
        return HALO_OK;
    }
    if (!x->pending) {
        x->pending = b;
        x->pending_since = b->created_ns;
    } else if (halo_batch_merge(x->pending, b) != HALO_OK) {
        pthread_mutex_unlock(&x->mu);
        halo_batch_done(b, HALO_ERETRY, "out of memory merging a batch");
        return HALO_ERETRY;
    }
    int trigger;
    halo_batch *due = take_due(self, &trigger);
    if (!due)
        pthread_cond_signal(&x->cv); /* arm the timeout */
    pthread_mutex_unlock(&x->mu);
    if (due)
        send(self, due, trigger);
    return HALO_OK;
}

static void batch_shutdown(halo_component *self)
{
    batch_ctx *x = self->ctx;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    halo_batch *b = x->pending;
    x->pending = NULL;
    if (b)
        x->in_flight++;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_mutex_lock(&x->mu);
    bool joinable = x->thread_running;
    x->thread_running = false;
    pthread_mutex_unlock(&x->mu);
    if (joinable)
        pthread_join(x->thread, NULL);
    if (b)
        send(self, b, TRIG_TIMEOUT);
    /* everything sent must be done before the context may go away */
    pthread_mutex_lock(&x->mu);
    uint64_t next_log = halo_mono_ns() + 5000000000u;
    while (x->in_flight > 0) {
        struct timespec ts = halo_timespec_of(halo_mono_ns() + 1000000000u);
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
        if (x->in_flight > 0 && halo_mono_ns() > next_log) {
            LOG_WARN(self->log_prefix,
                     "waiting for %lld batch(es) to be written downstream",
                     (long long)x->in_flight);
            next_log = halo_mono_ns() + 5000000000u;
        }
    }
    pthread_mutex_unlock(&x->mu);
}

static void batch_destroy(halo_component *self)
{
    batch_ctx *x = self->ctx;
    batch_shutdown(self);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x);
    self->ctx = NULL;
}

static const halo_field batch_schema[] = {
    {.key = "send_batch_size",
     .type = HALO_F_INT,
     .offset = offsetof(batch_cfg, send_batch_size),
     .def = "8192",
     .min = 1,
     .max = 1000000,
     .description = "spans that make a batch be sent even while the "
                    "downstream is busy"},
    {.key = "timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(batch_cfg, timeout_ns),
     .def = "200ms",
     .min = 0,
     .max = 3600e9,
     .description = "longest a request waits for a busy downstream before "
                    "its batch is sent anyway"},
    {.key = "max_in_flight",
     .type = HALO_F_INT,
     .offset = offsetof(batch_cfg, max_in_flight),
     .def = "2",
     .min = 1,
     .max = 1024,
     .description = "batches downstream may hold before new requests are "
                    "merged instead of sent at once"},
    {0},
};

const halo_component_def halo_processor_batch = {
    .kind = HALO_PROCESSOR,
    .type = "batch",
    .description = "coalesces requests into batches while the store is busy; "
                   "their acknowledgements complete together after one "
                   "durable write",
    .schema = batch_schema,
    .cfg_size = sizeof(batch_cfg),
    .create = batch_create,
    .start = batch_start,
    .consume = batch_consume,
    .shutdown = batch_shutdown,
    .destroy = batch_destroy,
};
