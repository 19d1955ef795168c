/*
 * otlp.c -- the OTLP receiver component: gRPC on 4317, HTTP on 4318.
 *
 * This file is the component's face (nginx module style, top-down): the
 * config schema, the lifecycle functions, and the definition the registry
 * names. The transports live in otlp_grpc.c and otlp_http.c, the shared
 * request logic (decode, emit with an ack, answer mapping, metrics) in
 * otlp_req.c; see otlp_internal.h for how they fit.
 *
 * Acknowledgement (DESIGN §4): a request is answered success only when the
 * pipeline's durable hop confirmed its spans; refusals are retryable
 * (gRPC UNAVAILABLE / HTTP 503 + Retry-After), malformed data is
 * INVALID_ARGUMENT / 400, oversized RESOURCE_EXHAUSTED / 413.
 */
#include "otlp_internal.h"

#include "../../core/log.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config schema ----------------------------------------------------- */

#define KIB 1024.0
#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * 1024.0 * 1024.0)

static const halo_field grpc_schema[] = {
    {.key = "endpoint",
     .type = HALO_F_ENDPOINT,
     .offset = offsetof(otlp_grpc_cfg, endpoint),
     .def = "127.0.0.1:4317",
     .description = "host:port the gRPC server listens on"},
    {.key = "max_recv_msg_size",
     .type = HALO_F_SIZE,
     .offset = offsetof(otlp_grpc_cfg, max_recv_msg_size),
     .def = "64MiB",
     .min = KIB,
     .max = GIB,
     .description = "largest Export message accepted (larger: "
                    "RESOURCE_EXHAUSTED)"},
    {.key = "threads",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_grpc_cfg, threads),
     .def = "2",
     .min = 1,
     .max = 64,
     .description = "threads serving the completion queue"},
    {.key = "tls",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_grpc_cfg, tls),
     .sub = halo_tls_schema,
     .present_offset = offsetof(otlp_grpc_cfg, tls_present),
     .description = "serve TLS (cert_file, key_file; client_ca_file: mTLS)"},
    {.key = "max_concurrent_streams",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_grpc_cfg, max_concurrent_streams),
     .def = "100",
     .min = 1,
     .max = 100000,
     .description = "concurrent calls one connection may have open (more "
                    "wait in the client)"},
    {.key = "handshake_timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(otlp_grpc_cfg, handshake_timeout),
     .def = "10s",
     .min = 1e8,
     .max = 600e9,
     .description = "a new connection must finish its TLS and HTTP/2 "
                    "handshake within this"},
    {.key = "max_connection_idle",
     .type = HALO_F_DURATION,
     .offset = offsetof(otlp_grpc_cfg, max_connection_idle),
     .def = "5m",
     .min = 0,
     .max = 86400e9 * 7,
     .description = "close (GOAWAY) connections without a call for this "
                    "long; 0: never"},
    {.key = "memory_limit",
     .type = HALO_F_SIZE,
     .offset = offsetof(otlp_grpc_cfg, memory_limit),
     .def = "512MiB",
     .min = 16 * MIB,
     .max = 64 * GIB,
     .description = "gRPC's resource quota: buffers of all connections "
                    "together (under pressure gRPC reads less)"},
    {.key = NULL},
};

static const halo_field http_schema[] = {
    {.key = "endpoint",
     .type = HALO_F_ENDPOINT,
     .offset = offsetof(otlp_http_cfg, endpoint),
     .def = "127.0.0.1:4318",
     .description = "host:port the HTTP server listens on"},
    {.key = "max_request_body_size",
     .type = HALO_F_SIZE,
     .offset = offsetof(otlp_http_cfg, max_request_body_size),
     .def = "64MiB",
     .min = KIB,
     .max = GIB,
     .description = "largest request body, before and after gzip "
                    "(larger: 413)"},
    {.key = "traces_url_path",
     .type = HALO_F_STRING,
     .offset = offsetof(otlp_http_cfg, traces_url_path),
     .def = "/v1/traces",
     .description = "path that accepts POSTed traces"},
    {.key = "threads",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_http_cfg, threads),
     .def = "2",
     .min = 1,
     .max = 64,
     .description = "HTTP worker threads"},
    {.key = "tls",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_http_cfg, tls),
     .sub = halo_tls_schema,
     .present_offset = offsetof(otlp_http_cfg, tls_present),
     .description = "serve HTTPS (cert_file, key_file; client_ca_file: "
                    "mTLS)"},
    {.key = "max_connections",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_http_cfg, max_connections),
     .def = "1024",
     .min = 1,
     .max = 100000,
     .description = "open connections at most; more are closed at once"},
    {.key = "idle_timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(otlp_http_cfg, idle_timeout),
     .def = "60s",
     .min = 1e9,
     .max = 3600e9,
     .description = "close a connection that sends nothing for this long "
                    "(whole seconds)"},
    {.key = "read_header_timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(otlp_http_cfg, read_header_timeout),
     .def = "10s",
     .min = 1e8,
     .max = 3600e9,
     .description = "a request's headers must be complete this long after "
                    "its first byte (the accept for the first request)"},
    {.key = "max_header_size",
     .type = HALO_F_SIZE,
     .offset = offsetof(otlp_http_cfg, max_header_size),
     .def = "32KiB",
     .min = 4 * KIB,
     .max = MIB,
     .description = "memory per connection for the request line and "
                    "headers (larger: 431)"},
    {.key = NULL},
};

static const halo_field protocols_schema[] = {
    {.key = "grpc",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_protocols_cfg, grpc),
     .sub = grpc_schema,
     .present_offset = offsetof(otlp_protocols_cfg, grpc_present),
     .description = "OTLP/gRPC (TraceService/Export)"},
    {.key = "http",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_protocols_cfg, http),
     .sub = http_schema,
     .present_offset = offsetof(otlp_protocols_cfg, http_present),
     .description = "OTLP/HTTP (protobuf or JSON, gzip or not)"},
    {.key = NULL},
};

static const halo_field otlp_schema[] = {
    {.key = "protocols",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_cfg, protocols),
     .sub = protocols_schema,
     .present_offset = offsetof(otlp_cfg, protocols_present),
     .description = "which transports to serve (at least one)"},
    {.key = "auth",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_cfg, auth),
     .sub = otlp_auth_schema,
     .present_offset = offsetof(otlp_cfg, auth_present),
     .description = "require a bearer token on every request (otlp_auth.c)"},
    {.key = "limits",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_cfg, limits),
     .sub = otlp_limits_schema,
     .present_offset = offsetof(otlp_cfg, limits_present),
     .description = "what one request may carry (otlp_limits.h)"},
    {.key = NULL},
};

/* ---- lifecycle --------------------------------------------------------- */

/* Load protocols.<proto>.tls when present; errors name the section. */
static halo_status load_tls(halo_component *self, const char *proto,
                            bool present, const halo_tls_cfg *cfg,
                            halo_tls **out, halo_err *err)
{
    if (!present)
        return HALO_OK;
    char where[160];
    snprintf(where, sizeof where, "receivers.%s: protocols.%s.tls", self->id,
             proto);
    /* libmicrohttpd serves HTTPS only when built with GnuTLS */
    if (strcmp(proto, "http") == 0) {
        halo_status st = halo_tls_mhd_check(where, err);
        if (st != HALO_OK)
            return st;
    }
    return halo_tls_load(cfg, where, out, err);
}

static void free_ctx(otlp_ctx *ctx)
{
    if (!ctx)
        return;
    otlp_auth_free(ctx->auth);
    halo_tls_free(ctx->grpc_tls);
    halo_tls_free(ctx->http_tls);
    otlp_limits_state_destroy(&ctx->limits);
    free(ctx);
}

static halo_status otlp_create(halo_component *self, halo_err *err)
{
    const otlp_cfg *cfg = self->cfg;
    const otlp_protocols_cfg *p = &cfg->protocols;
    if (!p->grpc_present && !p->http_present)
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: no protocol configured (add "
                         "protocols.grpc or protocols.http)",
                         self->id);
    if (p->grpc_present && p->http_present && p->grpc.endpoint &&
        p->http.endpoint && strcmp(p->grpc.endpoint, p->http.endpoint) == 0)
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: protocols.grpc and protocols.http "
                         "cannot share endpoint %s",
                         self->id, p->grpc.endpoint);
    if (p->http_present &&
        (!p->http.traces_url_path || p->http.traces_url_path[0] != '/'))
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: protocols.http.traces_url_path must "
                         "start with \"/\"",
                         self->id);
    if (p->http_present && p->http.max_connections < p->http.threads)
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: protocols.http.max_connections (%lld) "
                         "must be at least protocols.http.threads (%lld)",
                         self->id, (long long)p->http.max_connections,
                         (long long)p->http.threads);
    otlp_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    self->ctx = ctx; /* otlp_destroy frees what was loaded on failure */
    otlp_limits_state_init(&ctx->limits, self->id);
    /* the PEM files load once, here: `halo validate` checks them */
    halo_status st =
        load_tls(self, "grpc", p->grpc_present && p->grpc.tls_present,
                 &p->grpc.tls, &ctx->grpc_tls, err);
    if (st == HALO_OK)
        st = load_tls(self, "http", p->http_present && p->http.tls_present,
                      &p->http.tls, &ctx->http_tls, err);
    /* the tokens load once, here (no reload); errors never show a token */
    if (st == HALO_OK && cfg->auth_present) {
        st = otlp_auth_new(&cfg->auth, self->id, self->log_prefix, &ctx->auth,
                           err);
        if (st == HALO_OK)
            LOG_INFO(self->log_prefix,
                     "bearer token authentication: %zu tokens",
                     otlp_auth_count(ctx->auth));
    }
    if (st != HALO_OK) {
        free_ctx(ctx);
        self->ctx = NULL;
    }
    return st;
}

static halo_status otlp_start(halo_component *self, halo_err *err)
{
    const otlp_cfg *cfg = self->cfg;
    otlp_ctx *ctx = self->ctx;
    halo_status st = HALO_OK;
    if (cfg->protocols.grpc_present && !ctx->grpc)
        st = otlp_grpc_start(self, &cfg->protocols.grpc, ctx->auth,
                             ctx->grpc_tls, &ctx->grpc, err);
    if (st == HALO_OK && cfg->protocols.http_present && !ctx->http)
        st = otlp_http_start(self, &cfg->protocols.http, ctx->auth,
                             ctx->http_tls, &ctx->http, err);
    if (st != HALO_OK) {
        otlp_grpc_stop(ctx->grpc);
        ctx->grpc = NULL;
    }
    return st;
}

static void *stop_grpc_thread(void *arg)
{
    otlp_grpc_stop(arg);
    return NULL;
}

/* Both transports drain at the same time, so the worst case is one
 * deadline, not two. */
static void otlp_shutdown(halo_component *self)
{
    otlp_ctx *ctx = self->ctx;
    if (!ctx)
        return;
    pthread_t t;
    bool threaded = ctx->grpc && ctx->http &&
                    pthread_create(&t, NULL, stop_grpc_thread, ctx->grpc) == 0;
    if (!threaded)
        otlp_grpc_stop(ctx->grpc);
    otlp_http_stop(ctx->http);
    if (threaded)
        pthread_join(t, NULL);
    ctx->grpc = NULL;
    ctx->http = NULL;
}

static void otlp_destroy(halo_component *self)
{
    otlp_shutdown(self); /* in case the service skipped it */
    free_ctx(self->ctx);
    self->ctx = NULL;
}

const halo_component_def halo_receiver_otlp = {
    .kind = HALO_RECEIVER,
    .type = "otlp",
    .description = "OTLP traces over gRPC and HTTP (protobuf or JSON)",
    .schema = otlp_schema,
    .cfg_size = sizeof(otlp_cfg),
    .create = otlp_create,
    .start = otlp_start,
    .consume = NULL,
    .shutdown = otlp_shutdown,
    .destroy = otlp_destroy,
};
