/*
 * lg_grpc.c -- the gRPC driver of halo-loadgen.
 *
 * N channels (--connections), each its own TCP connection (a local
 * subchannel pool plus a distinguishing channel arg: by default gRPC shares
 * one subchannel between identical channels, which would funnel all load
 * through one connection), and K unary Export calls in flight per channel
 * (--inflight), all on one completion queue polled by this thread.
 *
 * A slot is one in-flight call: its request byte buffer (a fresh slice
 * holding a stamped copy of a pooled request), the receive buffers, and the
 * time the request was due. A call's six ops go in one batch, so one
 * completion means the call is over. After a retryable refusal
 * (UNAVAILABLE, RESOURCE_EXHAUSTED) the slot rests 10 ms before its next
 * request, like a client backing off, instead of spinning.
 */
#include "lg.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_METHOD                                                          \
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

typedef struct gslot {
    int chan;
    bool busy;
    double sched;    /* when the request was due */
    double ready_at; /* backoff: no new request before this */
    grpc_call *call;
    grpc_byte_buffer *req, *resp;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
} gslot;

typedef struct grun {
    const lg_opts *o;
    const lg_pool *pool;
    lg_stats *st;
    lg_sched sched;
    grpc_completion_queue *cq;
    grpc_channel **chans;
    void **methods; /* registered call handles, one per channel */
    gslot *slots;
    int n_slots, busy;
} grun;

static const char *grpc_code_name(grpc_status_code c)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if ((int)c >= 0 && (size_t)c < sizeof(names) / sizeof(names[0]))
        return names[c];
    return "UNKNOWN_CODE";
}

static int open_channels(grun *g)
{
    char target[300];
    snprintf(target, sizeof(target), "%s:%d", g->o->host, g->o->port);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    if (!creds) {
        fprintf(stderr, "halo-loadgen: could not create grpc credentials\n");
        return -1;
    }
    for (int i = 0; i < g->o->connections; i++) {
        grpc_arg args[3];
        args[0].type = GRPC_ARG_INTEGER;
        args[0].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
        args[0].value.integer = 1;
        args[1].type = GRPC_ARG_INTEGER;
        args[1].key = (char *)"halo.loadgen.channel";
        args[1].value.integer = i;
        args[2].type = GRPC_ARG_INTEGER;
        args[2].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
        args[2].value.integer = 64 << 20;
        grpc_channel_args ca = {3, args};
        g->chans[i] = grpc_channel_create(target, creds, &ca);
        g->methods[i] =
            grpc_channel_register_call(g->chans[i], EXPORT_METHOD, NULL, NULL);
    }
    grpc_channel_credentials_release(creds);
    return 0;
}

static void slot_reset(gslot *s)
{
    if (s->call)
        grpc_call_unref(s->call);
    if (s->req)
        grpc_byte_buffer_destroy(s->req);
    if (s->resp)
        grpc_byte_buffer_destroy(s->resp);
    grpc_metadata_array_destroy(&s->md_init);
    grpc_metadata_array_destroy(&s->md_trail);
    grpc_slice_unref(s->details);
    s->call = NULL;
    s->req = s->resp = NULL;
    s->details = grpc_empty_slice();
    s->busy = false;
}

/* Starts one Export on slot s; on failure counts it and returns -1. */
static int start_call(grun *g, gslot *s, uint64_t seq, double sched)
{
    size_t len = lg_pool_req_len(g->pool, seq);
    grpc_slice body = grpc_slice_malloc(len);
    lg_pool_stamp(g->pool, seq, GRPC_SLICE_START_PTR(body));
    s->req = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis(g->o->timeout_ms, GPR_TIMESPAN));
    s->call = grpc_channel_create_registered_call(
        g->chans[s->chan], NULL, GRPC_PROPAGATE_DEFAULTS, g->cq,
        g->methods[s->chan], deadline, NULL);
    grpc_metadata_array_init(&s->md_init);
    grpc_metadata_array_init(&s->md_trail);
    s->details = grpc_empty_slice();
    s->sched = sched;

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->md_trail;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;

    g->st->sent++;
    g->st->spans_sent += (uint64_t)lg_pool_spans(g->pool);
    g->st->bytes_sent += len;
    if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
        lg_stats_answer(g->st, "start-error", false, 0, 0, lg_now() - sched);
        slot_reset(s);
        return -1;
    }
    s->busy = true;
    g->busy++;
    return 0;
}

/* partial_success.rejected_spans of the answer, -1 if unreadable. */
static int64_t read_rejected(grpc_byte_buffer *bb)
{
    if (!bb)
        return 0; /* an empty message decodes as a default response */
    grpc_byte_buffer_reader rdr;
    if (!grpc_byte_buffer_reader_init(&rdr, bb))
        return -1;
    grpc_slice all = grpc_byte_buffer_reader_readall(&rdr);
    grpc_byte_buffer_reader_destroy(&rdr);
    int64_t r = lg_parse_export_response(GRPC_SLICE_START_PTR(all),
                                         GRPC_SLICE_LENGTH(all));
    grpc_slice_unref(all);
    return r;
}

static void finish_call(grun *g, gslot *s, bool success)
{
    double now = lg_now();
    int spans = lg_pool_spans(g->pool);
    g->busy--;
    g->st->t_end = now;
    if (!success) {
        lg_stats_answer(g->st, "batch-failed", false, spans, 0, now - s->sched);
    } else if (s->status == GRPC_STATUS_OK) {
        int64_t rej = read_rejected(s->resp);
        if (rej < 0)
            lg_stats_answer(g->st, "bad-response", false, spans, 0,
                            now - s->sched);
        else
            lg_stats_answer(g->st, "OK", true, spans, rej, now - s->sched);
    } else {
        lg_stats_answer(g->st, grpc_code_name(s->status), false, spans, 0,
                        now - s->sched);
        if (s->status == GRPC_STATUS_UNAVAILABLE ||
            s->status == GRPC_STATUS_RESOURCE_EXHAUSTED)
            s->ready_at = now + 0.010;
    }
    slot_reset(s);
}

/* Starts requests on every free slot while the schedule allows. */
static void fill_slots(grun *g, double now)
{
    for (int i = 0; i < g->n_slots; i++) {
        gslot *s = &g->slots[i];
        double sched;
        if (s->busy || s->ready_at > now)
            continue;
        if (!lg_sched_take(&g->sched, now, &sched))
            return;
        start_call(g, s, lg_sched_seq(&g->sched), sched);
    }
}

static void loop(grun *g)
{
    for (;;) {
        double now = lg_now();
        fill_slots(g, now);
        lg_stats_sample_rss(g->st, g->o->pid, now);
        if (lg_sched_done(&g->sched, now) && g->busy == 0)
            break;
        double wait = lg_sched_wait(&g->sched, now, 0.05);
        if (g->busy < g->n_slots && wait > 0.01)
            wait = 0.01; /* a resting slot may become ready */
        gpr_timespec dl = gpr_time_add(
            gpr_now(GPR_CLOCK_MONOTONIC),
            gpr_time_from_micros((int64_t)(wait * 1e6), GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(g->cq, dl, NULL);
        while (ev.type == GRPC_OP_COMPLETE) {
            finish_call(g, ev.tag, ev.success != 0);
            /* drain what is ready without blocking */
            ev = grpc_completion_queue_next(
                g->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
        }
    }
}

static void teardown(grun *g)
{
    for (int i = 0; g->chans && i < g->o->connections; i++)
        if (g->chans[i])
            grpc_channel_destroy(g->chans[i]);
    if (g->cq) {
        grpc_completion_queue_shutdown(g->cq);
        while (grpc_completion_queue_next(
                   g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(g->cq);
    }
    free(g->chans);
    free(g->methods);
    free(g->slots);
}

int lg_run_grpc(const lg_opts *o, const lg_pool *pool, lg_stats *st)
{
    int rc = -1;
    grun g = {.o = o, .pool = pool, .st = st};
    grpc_init();
    g.n_slots = o->connections * o->inflight;
    g.chans = calloc((size_t)o->connections, sizeof(*g.chans));
    g.methods = calloc((size_t)o->connections, sizeof(*g.methods));
    g.slots = calloc((size_t)g.n_slots, sizeof(*g.slots));
    if (!g.chans || !g.methods || !g.slots) {
        fprintf(stderr, "halo-loadgen: out of memory\n");
        goto cleanup;
    }
    for (int i = 0; i < g.n_slots; i++) {
        g.slots[i].chan = i % o->connections;
        g.slots[i].details = grpc_empty_slice();
    }
    g.cq = grpc_completion_queue_create_for_next(NULL);
    if (open_channels(&g) != 0)
        goto cleanup;
    double now = lg_now();
    lg_sched_init(&g.sched, o, lg_pool_spans(pool), now);
    st->t_start = st->t_end = now;
    loop(&g);
    st->late_max = g.sched.late_max;
    rc = 0;
cleanup:
    teardown(&g);
    grpc_shutdown();
    return rc;
}
