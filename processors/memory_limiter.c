/*
 * memory_limiter.c -- refuse new data while too much is in flight.
 *
 * Every decoded request lives in an arena, and every arena adds its size to
 * a process-wide counter until its batch is done (stored or refused). When
 * that counter is above `limit`, new batches are refused with HALO_ERETRY:
 * the receiver answers gRPC UNAVAILABLE / HTTP 503 + Retry-After and the
 * client's SDK retries later. Nothing already accepted is touched. Place it
 * first in a pipeline so refused data costs as little as possible.
 */
#include "core/component.h"
#include "core/log.h"
#include "core/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ml_cfg {
    int64_t limit;
} ml_cfg;

typedef struct ml_ctx {
    halo_metric *m_refused;
    atomic_bool refusing; /* to log transitions once, not per request */
} ml_ctx;

static halo_status ml_create(halo_component *self, halo_err *err)
{
    ml_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    char labels[256];
    snprintf(labels, sizeof labels, "processor=\"%s\"", self->id);
    x->m_refused = halo_counter("halo_processor_refused_spans_total",
                                "spans refused for lack of memory", labels);
    self->ctx = x;
    return HALO_OK;
}

static halo_status ml_consume(halo_component *self, halo_batch *b)
{
    ml_ctx *x = self->ctx;
    ml_cfg *cfg = self->cfg;
    int64_t inflight = halo_arena_total_reserved();
    if (inflight > cfg->limit) {
        if (!atomic_exchange(&x->refusing, true))
            LOG_WARN(self->log_prefix,
                     "refusing data: %.1f MiB in flight, limit %.1f MiB",
                     inflight / 1048576.0, cfg->limit / 1048576.0);
        halo_metric_add(x->m_refused, (double)b->n_spans);
        char msg[160];
        snprintf(msg, sizeof msg,
                 "memory limit reached (%.0f MiB in flight, limit %.0f "
                 "MiB): retry later",
                 inflight / 1048576.0, cfg->limit / 1048576.0);
        halo_batch_done(b, HALO_ERETRY, msg);
        return HALO_ERETRY;
    }
    if (atomic_exchange(&x->refusing, false))
        LOG_INFO(self->log_prefix, "accepting data again");
    return halo_emit(self, b);
}

static void ml_destroy(halo_component *self)
{
    free(self->ctx);
    self->ctx = NULL;
}

static const halo_field ml_schema[] = {
    {.key = "limit",
     .type = HALO_F_SIZE,
     .offset = offsetof(ml_cfg, limit),
     .def = "512MiB",
     .min = 1048576,
     .max = 1099511627776.0,
     .description = "decoded span data in flight above which new data is "
                    "refused (retryably)"},
    {0},
};

const halo_component_def halo_processor_memory_limiter = {
    .kind = HALO_PROCESSOR,
    .type = "memory_limiter",
    .description = "refuses new data with a retryable error while too much "
                   "is in flight",
    .schema = ml_schema,
    .cfg_size = sizeof(ml_cfg),
    .create = ml_create,
    .consume = ml_consume,
    .destroy = ml_destroy,
};
