/*
 * otlp_grpc.c -- OTLP/gRPC transport on the gRPC core C API.
 *
 * TLS (core/tls.h): with a `tls` section the port takes SSL server
 * credentials instead of insecure ones; with client_ca_file gRPC itself
 * requires and verifies the client certificate in the handshake. The
 * transport limits are channel args: max_concurrent_streams, the
 * handshake timeout, max_connection_idle, and a resource quota
 * (memory_limit). libgrpc 1.51 has no connection-count argument.
 *
 * One server, one completion queue served by `threads` threads. We keep
 * OTLP_GRPC_SLOTS generic grpc_server_request_call()s outstanding so many
 * connections are served at once; each completed slot posts a new one.
 *
 * A call (greq) goes through three tagged steps on the queue:
 *   T_NEW   a call arrived: Export -> start RECV_MESSAGE; any other method
 *           is answered UNIMPLEMENTED at once, and with auth configured a
 *           call without a valid `authorization: Bearer` metadata value is
 *           answered UNAUTHENTICATED before its message is read
 *   T_RECV  the message is here (gRPC core has checked
 *           max_receive_message_length and inflated grpc-encoding gzip):
 *           hand it to otlp_dispatch() with grpc_answer as the ack function
 *   T_DONE  the final batch (initial metadata, response, status) completed:
 *           release the call
 * grpc_answer runs once, on whichever thread completed the request's ack
 * (often an exporter's), and starts the final batch there; that is allowed
 * because no other batch of the call is active by then.
 *
 * Lifetime: a greq holds one reference for the queue side (dropped at
 * T_DONE) and one for the ack side (dropped when grpc_answer has run). The
 * struct otlp_grpc outlives every T_DONE (stop waits for `live` == 0), so
 * code may touch it until the final batch is started, never after.
 *
 * Shutdown: grpc_server_shutdown_and_notify stops new calls; in-flight ones
 * are answered by their acks (downstream still runs during receiver
 * shutdown). After otlp_drain_deadline_ns the stragglers are answered
 * UNAVAILABLE here (the claim flag keeps their late acks silent) and the
 * remaining calls are cancelled.
 */
#include "otlp_internal.h"

#include "../../core/log.h"
#include "otlp_codec.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT_METHOD                                                          \
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define OTLP_GRPC_SLOTS 64

typedef enum tag_kind { T_NEW, T_RECV, T_DONE, T_SHUTDOWN } tag_kind;

typedef struct greq greq;

typedef struct gtag {
    tag_kind kind;
    greq *r;
} gtag;

struct greq {
    otlp_req base;
    otlp_grpc *g;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *in;
    grpc_byte_buffer *out;
    int cancelled;
    atomic_int refs;
    greq *prev, *next; /* g->waiting: emitted, answer pending */
    bool listed;
    gtag t_new, t_recv, t_done;
};

struct otlp_grpc {
    halo_component *self;
    const char *prefix;
    char *endpoint;
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int live;       /* accepted calls whose final batch is not done */
    greq *waiting;  /* calls waiting for their ack */
    bool shut_done; /* the shutdown tag came back */
    atomic_bool stopping;
    otlp_metrics m;
    otlp_auth *auth; /* NULL: no authentication */
    gtag t_shutdown;
};

/* ---- gRPC library lifetime -------------------------------------------- */

static pthread_mutex_t lib_mu = PTHREAD_MUTEX_INITIALIZER;
static int lib_users;

/* Set while binding: gRPC's complaint about a busy port is replaced by our
 * own error message, so it is logged at debug level. */
static _Thread_local bool binding;

/* gRPC's own log lines go through ours. */
static void grpc_log_fn(gpr_log_func_args *a)
{
    int lvl = a->severity == GPR_LOG_SEVERITY_ERROR && !binding
                  ? HALO_LOG_WARN
                  : HALO_LOG_DEBUG;
    HALO_LOG_AT(lvl, "grpc", "%s (%s:%d)", a->message, a->file, a->line);
}

static void lib_acquire(void)
{
    pthread_mutex_lock(&lib_mu);
    if (lib_users++ == 0) {
        gpr_set_log_function(grpc_log_fn);
        grpc_init();
    }
    pthread_mutex_unlock(&lib_mu);
}

static void lib_release(void)
{
    pthread_mutex_lock(&lib_mu);
    if (--lib_users == 0)
        grpc_shutdown();
    pthread_mutex_unlock(&lib_mu);
}

/* ---- requests ---------------------------------------------------------- */

static void greq_release(greq *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

static void waiting_add(otlp_grpc *g, greq *r)
{
    pthread_mutex_lock(&g->mu);
    r->prev = NULL;
    r->next = g->waiting;
    if (g->waiting)
        g->waiting->prev = r;
    g->waiting = r;
    r->listed = true;
    pthread_mutex_unlock(&g->mu);
}

static void waiting_remove_locked(otlp_grpc *g, greq *r)
{
    if (!r->listed)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        g->waiting = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->listed = false;
}

static void on_done(greq *r);

/* Start the final batch. The caller has claimed the answer. Takes payload.
 * After this returns the call may be finished: do not touch g. */
static void send_final(greq *r, otlp_code code, const char *msg,
                       grpc_byte_buffer *payload)
{
    grpc_op ops[4];
    size_t n = 0;
    grpc_slice details = grpc_empty_slice();
    memset(ops, 0, sizeof ops);
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n++].data.send_initial_metadata.count = 0;
    if (payload) {
        r->out = payload;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = payload;
    }
    if (msg && *msg)
        details = grpc_slice_from_copied_string(msg);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status =
        (grpc_status_code)otlp_grpc_status(code);
    ops[n++].data.send_status_from_server.status_details =
        msg && *msg ? &details : NULL;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &r->cancelled;
    const char *prefix = r->g->prefix;
    grpc_call_error e =
        grpc_call_start_batch(r->call, ops, n, &r->t_done, NULL);
    grpc_slice_unref(details);
    if (e != GRPC_CALL_OK) {
        LOG_ERROR(prefix, "could not answer a grpc call: call error %d",
                  (int)e);
        on_done(r);
    }
}

/* The ack function of an Export (see otlp_dispatch). Any thread. */
static void grpc_answer(void *ud, halo_status st, const char *msg)
{
    greq *r = ud;
    if (!otlp_req_claim(&r->base)) {
        greq_release(r); /* answered at shutdown already */
        return;
    }
    otlp_grpc *g = r->g;
    pthread_mutex_lock(&g->mu);
    waiting_remove_locked(g, r);
    pthread_mutex_unlock(&g->mu);

    otlp_code code = otlp_code_of(st);
    grpc_byte_buffer *payload = NULL;
    if (code == OTLP_C_OK) {
        uint8_t *bytes = NULL;
        size_t len = 0;
        if (halo_otlp_response_pb(r->base.rejected, r->base.reject_msg, &bytes,
                                  &len) != HALO_OK) {
            code = OTLP_C_INTERNAL;
            msg = "could not encode the response";
        } else {
            grpc_slice s =
                len ? grpc_slice_new(bytes, len, free) : grpc_empty_slice();
            if (!len)
                free(bytes);
            payload = grpc_raw_byte_buffer_create(&s, 1);
            grpc_slice_unref(s);
        }
    }
    size_t ok = code == OTLP_C_OK ? r->base.n_spans : 0;
    size_t refused = (code == OTLP_C_OK ? 0 : r->base.n_spans) +
                     (size_t)(r->base.rejected > 0 ? r->base.rejected : 0);
    otlp_metrics_answer(&g->m, code, ok, refused, r->base.start_ns);
    send_final(r, code, msg, payload);
    greq_release(r);
}

/* Answer without an ack (unknown method, unreadable message). */
static void answer_now(greq *r, otlp_code code, const char *msg)
{
    if (!otlp_req_claim(&r->base))
        return;
    otlp_metrics_answer(&r->g->m, code, 0, 0, r->base.start_ns);
    send_final(r, code, msg, NULL);
}

static void request_slot(otlp_grpc *g)
{
    greq *r = calloc(1, sizeof *r);
    if (!r) {
        LOG_ERROR(g->prefix, "out of memory: serving one call less");
        return;
    }
    r->g = g;
    atomic_init(&r->refs, 1);
    atomic_init(&r->base.claimed, false);
    grpc_call_details_init(&r->details);
    grpc_metadata_array_init(&r->md);
    r->t_new = (gtag){T_NEW, r};
    r->t_recv = (gtag){T_RECV, r};
    r->t_done = (gtag){T_DONE, r};
    grpc_call_error e = grpc_server_request_call(
        g->server, &r->call, &r->details, &r->md, g->cq, g->cq, &r->t_new);
    if (e != GRPC_CALL_OK) {
        grpc_call_details_destroy(&r->details);
        grpc_metadata_array_destroy(&r->md);
        free(r);
    }
}

/* With auth: find the call's `authorization` metadata and check it. False
 * when the call was refused (answered UNAUTHENTICATED, counted, logged). */
static bool authorize(greq *r)
{
    otlp_grpc *g = r->g;
    const char *value = NULL;
    size_t len = 0;
    for (size_t i = 0; i < r->md.count; i++) {
        if (grpc_slice_str_cmp(r->md.metadata[i].key, "authorization") != 0)
            continue;
        value = (const char *)GRPC_SLICE_START_PTR(r->md.metadata[i].value);
        len = GRPC_SLICE_LENGTH(r->md.metadata[i].value);
        if (!value)
            value = "";
        break;
    }
    otlp_auth_result why = otlp_auth_check(g->auth, value, len, &r->base.token);
    if (why == OTLP_AUTH_OK) {
        r->base.auth = g->auth;
        r->base.transport = "grpc";
        return true;
    }
    otlp_auth_refused(g->auth, "grpc", why);
    answer_now(r, OTLP_C_UNAUTHENTICATED, OTLP_AUTH_MESSAGE);
    return false;
}

static void on_new(greq *r, bool ok)
{
    otlp_grpc *g = r->g;
    if (!ok) { /* the server is shutting down: an unused slot */
        grpc_call_details_destroy(&r->details);
        grpc_metadata_array_destroy(&r->md);
        free(r);
        return;
    }
    pthread_mutex_lock(&g->mu);
    g->live++;
    pthread_mutex_unlock(&g->mu);
    if (!atomic_load(&g->stopping))
        request_slot(g);
    r->base.start_ns = halo_mono_ns();
    if (grpc_slice_str_cmp(r->details.method, EXPORT_METHOD) != 0) {
        char msg[320];
        snprintf(msg, sizeof msg, "unknown method %.*s",
                 (int)(GRPC_SLICE_LENGTH(r->details.method) > 256
                           ? 256
                           : GRPC_SLICE_LENGTH(r->details.method)),
                 (const char *)GRPC_SLICE_START_PTR(r->details.method));
        answer_now(r, OTLP_C_UNIMPLEMENTED, msg);
        return;
    }
    if (g->auth && !authorize(r))
        return;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &r->in;
    if (grpc_call_start_batch(r->call, &op, 1, &r->t_recv, NULL) !=
        GRPC_CALL_OK)
        answer_now(r, OTLP_C_INTERNAL, "could not read the request");
}

/* The message as one contiguous slice (gRPC has decompressed it). */
static bool read_message(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return false;
    *out = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    return true;
}

static void on_recv(greq *r, bool ok)
{
    otlp_grpc *g = r->g;
    if (!ok) {
        /* the call failed while receiving: cancelled by the client, or a
         * message over max_recv_msg_size that gRPC answered
         * RESOURCE_EXHAUSTED itself. Finish it quietly. */
        answer_now(r, OTLP_C_CANCELLED, "");
        return;
    }
    if (!r->in) {
        answer_now(r, OTLP_C_INVALID, "missing ExportTraceServiceRequest");
        return;
    }
    grpc_slice msg;
    bool readable = read_message(r->in, &msg);
    grpc_byte_buffer_destroy(r->in);
    r->in = NULL;
    if (!readable) {
        answer_now(r, OTLP_C_INVALID, "could not decompress the message");
        return;
    }
    atomic_fetch_add(&r->refs, 1); /* the ack side */
    waiting_add(g, r);
    otlp_dispatch(g->self, &r->base, GRPC_SLICE_START_PTR(msg),
                  GRPC_SLICE_LENGTH(msg), false, grpc_answer, r);
    grpc_slice_unref(msg);
}

static void on_done(greq *r)
{
    otlp_grpc *g = r->g;
    grpc_call_unref(r->call);
    r->call = NULL;
    grpc_call_details_destroy(&r->details);
    grpc_metadata_array_destroy(&r->md);
    if (r->in)
        grpc_byte_buffer_destroy(r->in);
    if (r->out)
        grpc_byte_buffer_destroy(r->out);
    r->in = r->out = NULL;
    pthread_mutex_lock(&g->mu);
    g->live--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu); /* g may be gone after this */
    greq_release(r);
}

static void *cq_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "otlp-grpc");
    otlp_grpc *g = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        gtag *t = ev.tag;
        switch (t->kind) {
        case T_NEW:
            on_new(t->r, ev.success != 0);
            break;
        case T_RECV:
            on_recv(t->r, ev.success != 0);
            break;
        case T_DONE:
            on_done(t->r);
            break;
        case T_SHUTDOWN:
            pthread_mutex_lock(&g->mu);
            g->shut_done = true;
            pthread_cond_broadcast(&g->cv);
            pthread_mutex_unlock(&g->mu);
            break;
        }
    }
    return NULL;
}

/* ---- start and stop ---------------------------------------------------- */

static void free_grpc(otlp_grpc *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->threads);
    free(g->endpoint);
    free(g);
}

/* Wait until the server's shutdown tag is back and no call is live, or
 * until deadline_ns (0: no deadline). True when drained. */
static bool wait_drained(otlp_grpc *g, uint64_t deadline_ns)
{
    pthread_mutex_lock(&g->mu);
    while (!(g->shut_done && g->live == 0)) {
        if (deadline_ns) {
            struct timespec ts = {(time_t)(deadline_ns / 1000000000u),
                                  (long)(deadline_ns % 1000000000u)};
            if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) == ETIMEDOUT)
                break;
        } else {
            pthread_cond_wait(&g->cv, &g->mu);
        }
    }
    bool drained = g->shut_done && g->live == 0;
    pthread_mutex_unlock(&g->mu);
    return drained;
}

/* Answer every call still waiting for its ack: UNAVAILABLE, so clients
 * retry elsewhere or later. Returns how many were answered. */
static int force_answers(otlp_grpc *g)
{
    int n = 0;
    for (;;) {
        pthread_mutex_lock(&g->mu);
        greq *r = g->waiting;
        if (r)
            waiting_remove_locked(g, r);
        pthread_mutex_unlock(&g->mu);
        if (!r)
            return n;
        if (!otlp_req_claim(&r->base))
            continue; /* its ack is answering right now */
        otlp_metrics_answer(&g->m, OTLP_C_UNAVAILABLE, 0, r->base.n_spans,
                            r->base.start_ns);
        send_final(r, OTLP_C_UNAVAILABLE, "receiver is shutting down", NULL);
        n++;
    }
}

void otlp_grpc_stop(otlp_grpc *g)
{
    if (!g)
        return;
    atomic_store(&g->stopping, true);
    grpc_server_shutdown_and_notify(g->server, g->cq, &g->t_shutdown);
    if (!wait_drained(g, halo_mono_ns() + otlp_drain_deadline_ns)) {
        LOG_WARN(g->prefix,
                 "grpc calls still in flight after %gs: answering them "
                 "unavailable",
                 (double)otlp_drain_deadline_ns / 1e9);
        grpc_server_cancel_all_calls(g->server);
        /* calls that were still being dispatched join the waiting list
         * late: sweep until everything is finished */
        do
            force_answers(g);
        while (!wait_drained(g, halo_mono_ns() + 100000000u));
    }
    grpc_server_destroy(g->server);
    grpc_completion_queue_shutdown(g->cq);
    for (int i = 0; i < g->n_threads; i++)
        pthread_join(g->threads[i], NULL);
    grpc_completion_queue_destroy(g->cq);
    LOG_INFO(g->prefix, "stopped listening on %s (grpc)", g->endpoint);
    free_grpc(g);
    lib_release();
}

/* Tear down a server that never started serving (no threads yet). */
static void abort_server(otlp_grpc *g)
{
    grpc_server_shutdown_and_notify(g->server, g->cq, &g->t_shutdown);
    grpc_server_cancel_all_calls(g->server);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag == &g->t_shutdown)
            break;
    }
    grpc_server_destroy(g->server);
    grpc_completion_queue_shutdown(g->cq);
    while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                      NULL)
               .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(g->cq);
}

static halo_status init_sync(otlp_grpc *g)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return HALO_ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return HALO_ENOMEM;
    pthread_mutex_init(&g->mu, NULL);
    return HALO_OK;
}

static grpc_arg int_arg(const char *key, int64_t v)
{
    grpc_arg a;
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = v > INT_MAX ? INT_MAX : (int)v;
    return a;
}

/* The server's channel args: message size, no port sharing, and the
 * transport limits. quota is referenced by the args (gRPC takes its own
 * reference). Returns how many were written (at most 6). */
static size_t server_args(const otlp_grpc_cfg *cfg, grpc_resource_quota *quota,
                          grpc_arg *args)
{
    size_t n = 0;
    args[n++] =
        int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, cfg->max_recv_msg_size);
    /* without this, a second daemon could share the port silently */
    args[n++] = int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0);
    args[n++] =
        int_arg(GRPC_ARG_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams);
    args[n++] = int_arg(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                        cfg->handshake_timeout / 1000000);
    if (cfg->max_connection_idle > 0)
        args[n++] = int_arg(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                            cfg->max_connection_idle / 1000000);
    if (quota) {
        args[n].type = GRPC_ARG_POINTER;
        args[n].key = (char *)GRPC_ARG_RESOURCE_QUOTA;
        args[n].value.pointer.p = quota;
        args[n++].value.pointer.vtable = grpc_resource_quota_arg_vtable();
    }
    return n;
}

/* Plaintext, TLS, or TLS requiring a client certificate that verifies
 * against client_ca_file. */
static grpc_server_credentials *server_creds(const halo_tls *tls)
{
    if (!tls)
        return grpc_insecure_server_credentials_create();
    grpc_ssl_pem_key_cert_pair pair = {tls->key_pem, tls->cert_pem};
    return grpc_ssl_server_credentials_create_ex(
        tls->ca_pem, &pair, 1,
        halo_tls_mtls(tls)
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
}

static halo_status bind_server(otlp_grpc *g, const otlp_grpc_cfg *cfg,
                               const halo_tls *tls, halo_err *err)
{
    grpc_arg args[6];
    grpc_resource_quota *quota = grpc_resource_quota_create("otlp-grpc");
    if (quota)
        grpc_resource_quota_resize(quota, (size_t)cfg->memory_limit);
    grpc_channel_args ch = {server_args(cfg, quota, args), args};
    g->server = grpc_server_create(&ch, NULL);
    if (quota)
        grpc_resource_quota_unref(quota); /* the server holds its own */
    g->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->server, g->cq, NULL);
    grpc_server_credentials *creds = server_creds(tls);
    if (!creds) {
        abort_server(g);
        return halo_fail(err, HALO_EINVAL,
                         "could not listen on %s (grpc): grpc refused the "
                         "tls certificate or key",
                         cfg->endpoint);
    }
    binding = true;
    int port = grpc_server_add_http2_port(g->server, cfg->endpoint, creds);
    binding = false;
    grpc_server_credentials_release(creds);
    if (port != 0)
        return HALO_OK;
    int e = halo_tcp_probe_bind(cfg->endpoint);
    char ebuf[128];
    abort_server(g);
    return halo_fail(
        err, HALO_EIO, "could not listen on %s (grpc): %s", cfg->endpoint,
        e ? halo_strerror_lc(e, ebuf, sizeof ebuf) : "grpc could not bind it");
}

halo_status otlp_grpc_start(halo_component *self, const otlp_grpc_cfg *cfg,
                            otlp_auth *auth, const halo_tls *tls,
                            otlp_grpc **out, halo_err *err)
{
    otlp_grpc *g = calloc(1, sizeof *g);
    if (!g || !(g->endpoint = strdup(cfg->endpoint)) ||
        !(g->threads = calloc((size_t)cfg->threads, sizeof *g->threads)) ||
        init_sync(g) != HALO_OK) {
        if (g) {
            free(g->threads);
            free(g->endpoint);
        }
        free(g);
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    g->self = self;
    g->prefix = self->log_prefix;
    g->auth = auth;
    g->t_shutdown = (gtag){T_SHUTDOWN, NULL};
    atomic_init(&g->stopping, false);
    otlp_metrics_init(&g->m, self->id, "grpc");
    lib_acquire();
    halo_status st = bind_server(g, cfg, tls, err);
    if (st != HALO_OK) {
        free_grpc(g);
        lib_release();
        return st;
    }
    grpc_server_start(g->server);
    for (int i = 0; i < (int)cfg->threads; i++) {
        if (pthread_create(&g->threads[i], NULL, cq_thread, g) != 0) {
            LOG_WARN(g->prefix, "could not start grpc thread %d", i + 1);
            break;
        }
        g->n_threads++;
    }
    if (g->n_threads == 0) {
        abort_server(g); /* no call was requested yet */
        free_grpc(g);
        lib_release();
        return halo_fail(err, HALO_EIO, "could not start grpc threads");
    }
    for (int i = 0; i < OTLP_GRPC_SLOTS; i++)
        request_slot(g);
    if (tls)
        LOG_INFO(g->prefix, "listening on %s (grpc, %s%s)", cfg->endpoint,
                 halo_tls_mode(tls),
                 halo_tls_mtls(tls) ? ": client certificates required" : "");
    else
        LOG_INFO(g->prefix, "listening on %s (grpc)", cfg->endpoint);
    *out = g;
    return HALO_OK;
}
