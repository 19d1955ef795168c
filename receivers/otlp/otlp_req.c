/*
 * otlp_req.c -- the part of an OTLP Export that does not depend on the
 * transport: decode, hand downstream with an ack, map statuses, count.
 *
 * DESIGN §4: a request is answered success only once its spans are
 * durable, which is when the ack created here runs. Requests that carry
 * nothing to store (empty, or every span rejected by the decoder) and
 * malformed ones are answered at once through the same function, so each
 * transport has a single answer path.
 *
 * Between decoding and emitting, the receiver's limits (otlp_limits.h) are
 * enforced: too many spans refuse the request (RESOURCE_EXHAUSTED / 413,
 * nothing emitted), too many attributes and too long values are dropped or
 * cut. Each is counted per receiver (halo_receiver_limit_*_total) and
 * logged at most once every 10 s per receiver, naming the span, never a
 * value.
 */
#include "../../core/clock.h"
#include "../../core/log.h"
#include "otlp_internal.h"

#include "otlp_codec.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t otlp_drain_deadline_ns = 10ull * 1000000000ull;

otlp_code otlp_code_of(halo_status st)
{
    switch (st) {
    case HALO_OK:
        return OTLP_C_OK;
    case HALO_ERETRY:
    case HALO_ESHUTDOWN:
    case HALO_EIO:
        return OTLP_C_UNAVAILABLE;
    case HALO_EINVAL:
        return OTLP_C_INVALID;
    case HALO_ETOOBIG:
        return OTLP_C_TOO_BIG;
    default:
        return OTLP_C_INTERNAL;
    }
}

/* google.rpc.Code values */
int otlp_grpc_status(otlp_code c)
{
    static const int codes[OTLP_C_N] = {
        [OTLP_C_OK] = 0,
        [OTLP_C_INVALID] = 3,
        [OTLP_C_UNAVAILABLE] = 14,
        [OTLP_C_TOO_BIG] = 8,
        [OTLP_C_INTERNAL] = 13,
        [OTLP_C_UNIMPLEMENTED] = 12,
        [OTLP_C_NOT_FOUND] = 5,
        [OTLP_C_METHOD] = 12,
        [OTLP_C_MEDIA_TYPE] = 3,
        [OTLP_C_CANCELLED] = 1,
        [OTLP_C_UNAUTHENTICATED] = 16,
    };
    return c < OTLP_C_N ? codes[c] : 13;
}

int otlp_http_status(otlp_code c)
{
    static const int codes[OTLP_C_N] = {
        [OTLP_C_OK] = 200,
        [OTLP_C_INVALID] = 400,
        [OTLP_C_UNAVAILABLE] = 503,
        [OTLP_C_TOO_BIG] = 413,
        [OTLP_C_INTERNAL] = 500,
        [OTLP_C_UNIMPLEMENTED] = 501,
        [OTLP_C_NOT_FOUND] = 404,
        [OTLP_C_METHOD] = 405,
        [OTLP_C_MEDIA_TYPE] = 415,
        [OTLP_C_CANCELLED] = 499,
        [OTLP_C_UNAUTHENTICATED] = 401,
    };
    return c < OTLP_C_N ? codes[c] : 500;
}

/* The code label of requests_total, per transport; NULL: never answered
 * that way on this transport. */
static const char *const grpc_labels[OTLP_C_N] = {
    [OTLP_C_OK] = "OK",
    [OTLP_C_INVALID] = "INVALID_ARGUMENT",
    [OTLP_C_UNAVAILABLE] = "UNAVAILABLE",
    [OTLP_C_TOO_BIG] = "RESOURCE_EXHAUSTED",
    [OTLP_C_INTERNAL] = "INTERNAL",
    [OTLP_C_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [OTLP_C_CANCELLED] = "CANCELLED",
    [OTLP_C_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

static const char *const http_labels[OTLP_C_N] = {
    [OTLP_C_OK] = "200",
    [OTLP_C_INVALID] = "400",
    [OTLP_C_UNAVAILABLE] = "503",
    [OTLP_C_TOO_BIG] = "413",
    [OTLP_C_INTERNAL] = "500",
    [OTLP_C_NOT_FOUND] = "404",
    [OTLP_C_METHOD] = "405",
    [OTLP_C_MEDIA_TYPE] = "415",
    [OTLP_C_UNAUTHENTICATED] = "401",
};

/* ---- limits: metrics and the rate-limited log ------------------------- */

static const struct {
    const char *name;
    const char *help;
} limit_metric_defs[OTLP_LM_N] = {
    [OTLP_LM_DROPPED] = {"halo_receiver_limit_dropped_attributes_total",
                         "Attributes dropped past max_attributes_per_span."},
    [OTLP_LM_TRUNCATED] = {"halo_receiver_limit_truncated_values_total",
                           "String and bytes attribute values cut to "
                           "max_attribute_value_length."},
    [OTLP_LM_REFUSED] = {"halo_receiver_limit_refused_requests_total",
                         "Export requests refused for carrying more than "
                         "max_spans_per_request spans."},
};

#define LIMITS_LOG_INTERVAL_NS (10ull * 1000000000ull)

void otlp_limits_state_init(otlp_limits_state *l, const char *receiver)
{
    char labels[160];
    snprintf(labels, sizeof labels, "receiver=\"%s\"", receiver);
    for (int i = 0; i < OTLP_LM_N; i++)
        l->m[i] = halo_counter(limit_metric_defs[i].name,
                               limit_metric_defs[i].help, labels);
    halo_log_every_init(&l->log);
}

void otlp_limits_state_destroy(otlp_limits_state *l)
{
    halo_log_every_destroy(&l->log);
}

/* One line at most every 10 s per receiver: true when this limit hit is
 * to be logged, with *skipped the hits since the previous line that were
 * not. */
static bool limits_log_due(otlp_limits_state *l, uint64_t *skipped)
{
    uint64_t n = halo_log_every_hit(&l->log, LIMITS_LOG_INTERVAL_NS);
    *skipped = n ? n - 1 : 0;
    return n != 0;
}

/* "; 12 more requests hit the limits in the last 10 s" or "" */
static void skipped_text(char *buf, size_t size, uint64_t skipped)
{
    buf[0] = '\0';
    if (skipped)
        snprintf(buf, size,
                 "; %" PRIu64 " more request%s hit the limits since the "
                 "previous line",
                 skipped, skipped == 1 ? "" : "s");
}

static otlp_limits_state *limits_of(halo_component *self)
{
    return &((otlp_ctx *)self->ctx)->limits;
}

static void limits_refused(halo_component *self, size_t n_spans,
                           const otlp_limits_cfg *cfg)
{
    otlp_limits_state *l = limits_of(self);
    halo_metric_add(l->m[OTLP_LM_REFUSED], 1);
    uint64_t skipped = 0;
    if (!limits_log_due(l, &skipped))
        return;
    char more[96];
    skipped_text(more, sizeof more, skipped);
    LOG_WARN(self->log_prefix,
             "refused a request of %zu spans: more than "
             "max_spans_per_request (%" PRId64 ")%s",
             n_spans, cfg->max_spans_per_request, more);
}

/* The whole request refused for carrying more than max_spans_per_request
 * (carried, the rejected ones included): every span counts as refused. */
static void refuse_too_many(halo_component *self, otlp_req *r,
                            halo_arena *arena, size_t carried, const char *msg,
                            halo_ack_fn answer, void *ud)
{
    const otlp_cfg *cfg = self->cfg;
    halo_arena_free(arena);
    r->n_spans = carried - (size_t)(r->rejected > 0 ? r->rejected : 0);
    limits_refused(self, carried, &cfg->limits);
    answer(ud, HALO_ETOOBIG, msg);
}

static void limits_applied(halo_component *self, const halo_otlp_result *res,
                           const otlp_limits_cfg *cfg,
                           const otlp_limits_stats *st)
{
    otlp_limits_state *l = limits_of(self);
    if (st->attrs_dropped)
        halo_metric_add(l->m[OTLP_LM_DROPPED], (double)st->attrs_dropped);
    if (st->values_truncated)
        halo_metric_add(l->m[OTLP_LM_TRUNCATED], (double)st->values_truncated);
    uint64_t skipped = 0;
    if (!limits_log_due(l, &skipped))
        return;
    char trace[33] = "-", span[17] = "-", more[96];
    if (st->first_span < res->n) {
        halo_hex_encode(res->spans[st->first_span].trace_id, 16, trace);
        halo_hex_encode(res->spans[st->first_span].span_id, 8, span);
    }
    skipped_text(more, sizeof more, skipped);
    LOG_WARN(self->log_prefix,
             "limits hit by %zu span%s (first: trace %s span %s): %" PRIu64
             " attributes dropped (max_attributes_per_span %" PRId64
             "), %" PRIu64
             " values truncated (max_attribute_value_length %" PRId64 ")%s",
             st->spans_touched, st->spans_touched == 1 ? "" : "s", trace, span,
             st->attrs_dropped, cfg->max_attributes_per_span,
             st->values_truncated, cfg->max_attribute_value_length, more);
}

/* Enforce the attribute limits on the request's spans. body_len bounds
 * every decoded value's length (otlp_limits_apply skips the values when it
 * is within the limit). */
static halo_status apply_limits(halo_component *self, halo_otlp_result *res,
                                size_t body_len, halo_arena *arena)
{
    const otlp_cfg *cfg = self->cfg;
    if (!cfg)
        return HALO_OK;
    otlp_limits_stats st;
    halo_status rc = otlp_limits_apply(&cfg->limits, res->spans, res->n,
                                       body_len, arena, &st);
    if (st.attrs_dropped || st.values_truncated)
        limits_applied(self, res, &cfg->limits, &st);
    return rc;
}

void otlp_metrics_init(otlp_metrics *m, const char *receiver,
                       const char *transport)
{
    char labels[256];
    bool grpc = strcmp(transport, "grpc") == 0;
    snprintf(labels, sizeof labels, "receiver=\"%s\",transport=\"%s\"",
             receiver, transport);
    m->accepted =
        halo_counter("halo_receiver_accepted_spans_total",
                     "Spans stored durably and acknowledged.", labels);
    m->refused = halo_counter(
        "halo_receiver_refused_spans_total",
        "Spans refused (malformed, rejected, or the pipeline said no).",
        labels);
    m->latency =
        halo_histogram("halo_export_latency_seconds",
                       "Time from an Export request's arrival to its answer.",
                       labels, halo_latency_buckets, halo_latency_buckets_n);
    for (int c = 0; c < OTLP_C_N; c++) {
        const char *code = grpc ? grpc_labels[c] : http_labels[c];
        m->requests[c] = NULL;
        if (!code)
            continue;
        char l[320];
        snprintf(l, sizeof l, "%s,code=\"%s\"", labels, code);
        m->requests[c] = halo_counter("halo_receiver_requests_total",
                                      "Export requests by answer.", l);
    }
}

void otlp_metrics_answer(const otlp_metrics *m, otlp_code code, size_t accepted,
                         size_t refused, uint64_t start_ns)
{
    if (accepted)
        halo_metric_add(m->accepted, (double)accepted);
    if (refused)
        halo_metric_add(m->refused, (double)refused);
    if (code < OTLP_C_N && m->requests[code])
        halo_metric_add(m->requests[code], 1);
    if (start_ns) {
        uint64_t now = halo_mono_ns();
        double s = now > start_ns ? (double)(now - start_ns) / 1e9 : 0;
        halo_metric_observe(m->latency, s);
    }
}

bool otlp_req_claim(otlp_req *r)
{
    return !atomic_exchange(&r->claimed, true);
}

/* Hand the decoded spans downstream. Every failure still ends in exactly
 * one call of answer, through the ack when one exists. */
static void emit(halo_component *self, otlp_req *r, halo_arena *arena,
                 const halo_otlp_result *res, halo_ack_fn answer, void *ud)
{
    halo_batch *b = halo_batch_new();
    if (!b) {
        halo_arena_free(arena);
        answer(ud, HALO_ERETRY, "out of memory");
        return;
    }
    r->n_spans = res->n;
    halo_ack *ack = halo_ack_new(answer, ud);
    if (!ack) {
        halo_arena_free(arena);
        halo_batch_done(b, HALO_ENOMEM, "out of memory");
        r->n_spans = 0;
        answer(ud, HALO_ERETRY, "out of memory");
        return;
    }
    if (halo_batch_add_chunk(b, arena, res->spans, res->n) != HALO_OK ||
        halo_batch_add_ack(b, ack) != HALO_OK) {
        /* the batch owns the arena now; the ack answers below */
        halo_ack_fail(ack, HALO_ERETRY, "out of memory");
        halo_batch_done(b, HALO_ERETRY, "out of memory");
        halo_ack_unref(ack);
        return;
    }
    (void)halo_emit(self, b); /* refusals reach the ack as well */
    halo_ack_unref(ack);
}

/* Drop the spans of agents the request's token may not write (its
 * allowlist) and report them in partial_success with the decoder's. */
static void auth_filter(otlp_req *r, halo_otlp_result *res)
{
    size_t dropped =
        otlp_auth_filter(r->auth, r->transport, r->token, res->spans, &res->n);
    if (!dropped)
        return;
    char own[128];
    snprintf(own, sizeof own, "%zu spans of agents this token may not write",
             dropped);
    if (r->rejected > 0 && r->reject_msg[0]) {
        size_t l = strlen(r->reject_msg);
        snprintf(r->reject_msg + l, sizeof r->reject_msg - l, "; %s", own);
    } else {
        snprintf(r->reject_msg, sizeof r->reject_msg, "%s", own);
    }
    r->rejected += (int64_t)dropped;
}

void otlp_dispatch(halo_component *self, otlp_req *r, const uint8_t *body,
                   size_t len, bool json, halo_ack_fn answer, void *ud)
{
    halo_otlp_result res;
    halo_err err = {{0}};
    memset(&res, 0, sizeof res);
    halo_arena *arena = halo_arena_new(halo_otlp_arena_first(len));
    if (!arena) {
        answer(ud, HALO_ERETRY, "out of memory");
        return;
    }
    const otlp_cfg *cfg = self->cfg;
    /* protobuf: too many spans are refused by the decoder's first pass,
     * before the spans are built (JSON: after, by the check below) */
    size_t max_spans = cfg && cfg->limits.max_spans_per_request > 0
                           ? (size_t)cfg->limits.max_spans_per_request
                           : 0;
    halo_status st =
        json ? halo_otlp_decode_json((const char *)body, len, arena, &res, &err)
             : halo_otlp_decode_pb_max(body, len, max_spans, arena, &res, &err);
    if (st == HALO_ETOOBIG && max_spans && res.carried > max_spans) {
        refuse_too_many(self, r, arena, res.carried, err.msg, answer, ud);
        return;
    }
    if (st != HALO_OK) {
        halo_arena_free(arena);
        if (st == HALO_ENOMEM)
            st = HALO_ERETRY;
        answer(ud, st, err.msg[0] ? err.msg : halo_status_str(st));
        return;
    }
    r->rejected = res.rejected;
    snprintf(r->reject_msg, sizeof r->reject_msg, "%s", res.reject_msg);
    size_t carried = res.n + (size_t)(res.rejected > 0 ? res.rejected : 0);
    if (cfg &&
        otlp_limits_check_spans(&cfg->limits, carried, &err) != HALO_OK) {
        refuse_too_many(self, r, arena, carried, err.msg, answer, ud);
        return;
    }
    auth_filter(r, &res);
    if (res.n == 0) {
        /* nothing to store: empty request, or every span rejected */
        halo_arena_free(arena);
        answer(ud, HALO_OK, "");
        return;
    }
    if (apply_limits(self, &res, len, arena) != HALO_OK) {
        halo_arena_free(arena);
        answer(ud, HALO_ERETRY, "out of memory");
        return;
    }
    emit(self, r, arena, &res, answer, ud);
}
