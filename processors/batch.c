/*
 * batch.c -- the batch processor: group commit.
 *
 * Requests are merged into one pending batch (chunks and acks move, no span
 * is copied). The pending batch is sent downstream when it reaches
 * send_batch_size spans -- by the thread whose request filled it, so a busy
 * pipeline needs no hand-off -- or when the oldest request in it has waited
 * `timeout`, by the processor's timer thread. Acks are completed by the
 * exporter only after its write is durable, so every request coalesced into
 * a batch is answered together, after one commit, never early.
 *
 * Shutdown sends what is pending and stops the timer; a batch arriving after
 * that (halo import draining) is passed through unbatched.
 */
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
} batch_cfg;

typedef struct batch_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    bool timer_running;
    bool stopping;
    halo_batch *pending;
    uint64_t pending_since; /* CLOCK_MONOTONIC ns */
    halo_metric *m_size;
    halo_metric *m_by_size;
    halo_metric *m_by_timeout;
} batch_ctx;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void send(halo_component *self, halo_batch *b, halo_metric *trigger)
{
    batch_ctx *x = self->ctx;
    halo_metric_observe(x->m_size, (double)b->n_spans);
    halo_metric_add(trigger, 1);
    halo_emit(self, b);
}

static void *timer_main(void *arg)
{
    halo_component *self = arg;
    batch_ctx *x = self->ctx;
    batch_cfg *cfg = self->cfg;
    pthread_mutex_lock(&x->mu);
    while (!x->stopping) {
        if (!x->pending) {
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        uint64_t due = x->pending_since + (uint64_t)cfg->timeout_ns;
        uint64_t now = mono_ns();
        if (now < due) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = due - now;
            ts.tv_sec += (time_t)(wait / 1000000000u);
            ts.tv_nsec += (long)(wait % 1000000000u);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&x->cv, &x->mu, &ts);
            continue;
        }
        halo_batch *b = x->pending;
        x->pending = NULL;
        pthread_mutex_unlock(&x->mu);
        send(self, b, x->m_by_timeout);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

static halo_status batch_create(halo_component *self, halo_err *err)
{
    (void)err;
    batch_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    pthread_mutex_init(&x->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->cv, &ca);
    pthread_condattr_destroy(&ca);
    char labels[256];
    snprintf(labels, sizeof labels, "processor=\"%s\"", self->id);
    x->m_size = halo_histogram("halo_processor_batch_size",
                               "spans per batch sent downstream", labels,
                               halo_size_buckets, halo_size_buckets_n);
    char l2[300];
    snprintf(l2, sizeof l2, "%s,trigger=\"size\"", labels);
    x->m_by_size = halo_counter("halo_processor_batch_sends_total",
                                "batches sent, by what triggered them", l2);
    snprintf(l2, sizeof l2, "%s,trigger=\"timeout\"", labels);
    x->m_by_timeout = halo_counter("halo_processor_batch_sends_total",
                                   "batches sent, by what triggered them", l2);
    self->ctx = x;
    return HALO_OK;
}

static halo_status batch_start(halo_component *self, halo_err *err)
{
    batch_ctx *x = self->ctx;
    if (pthread_create(&x->timer, NULL, timer_main, self) != 0)
        return halo_fail(err, HALO_EIO, "could not start the timer thread");
    x->timer_running = true;
    return HALO_OK;
}

static halo_status batch_consume(halo_component *self, halo_batch *b)
{
    batch_ctx *x = self->ctx;
    batch_cfg *cfg = self->cfg;
    pthread_mutex_lock(&x->mu);
    if (x->stopping || !x->timer_running || cfg->timeout_ns == 0) {
        pthread_mutex_unlock(&x->mu);
        return halo_emit(self, b);
    }
    if (!x->pending) {
        x->pending = b;
        x->pending_since = b->created_ns;
        pthread_cond_signal(&x->cv);
    } else if (halo_batch_merge(x->pending, b) != HALO_OK) {
        pthread_mutex_unlock(&x->mu);
        halo_batch_done(b, HALO_ERETRY, "out of memory merging a batch");
        return HALO_ERETRY;
    }
    halo_batch *full = NULL;
    if ((int64_t)x->pending->n_spans >= cfg->send_batch_size) {
        full = x->pending;
        x->pending = NULL;
    }
    pthread_mutex_unlock(&x->mu);
    if (full)
        send(self, full, x->m_by_size);
    return HALO_OK;
}

static void batch_shutdown(halo_component *self)
{
    batch_ctx *x = self->ctx;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    halo_batch *b = x->pending;
    x->pending = NULL;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    if (x->timer_running) {
        pthread_join(x->timer, NULL);
        x->timer_running = false;
    }
    if (b)
        send(self, b, x->m_by_timeout);
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
     .description = "spans that make a batch be sent at once"},
    {.key = "timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(batch_cfg, timeout_ns),
     .def = "200ms",
     .min = 0,
     .max = 3600e9,
     .description = "longest wait of a request for its batch to fill (0: "
                    "no batching)"},
    {0},
};

const halo_component_def halo_processor_batch = {
    .kind = HALO_PROCESSOR,
    .type = "batch",
    .description = "coalesces requests into batches; completes their "
                   "acknowledgements together after one durable write",
    .schema = batch_schema,
    .cfg_size = sizeof(batch_cfg),
    .create = batch_create,
    .start = batch_start,
    .consume = batch_consume,
    .shutdown = batch_shutdown,
    .destroy = batch_destroy,
};
