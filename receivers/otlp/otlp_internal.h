/*
 * otlp_internal.h -- what the OTLP receiver's files share.
 *
 * The receiver is split by concern (Fluent Bit style):
 *   otlp.c       the component: config schema, create/start/shutdown
 *   otlp_req.c   the transport-independent part of a request: decode into
 *                an arena, answer at once or emit a batch with an ack,
 *                status mapping and metrics
 *   otlp_grpc.c  gRPC transport (gRPC core C API, one completion queue)
 *   otlp_http.c  HTTP transport (libmicrohttpd, suspend/resume)
 *   core/net.c   endpoint parsing and listening sockets (also used by the
 *                health_check and metrics extensions)
 *
 * Every request has exactly one answer path: a halo_ack_fn-shaped function
 * of its transport. It runs either at once (malformed or empty request,
 * refusal) or later from the exporter's thread when the spans are durable,
 * so it must be thread-safe. At shutdown a transport may answer requests
 * still waiting after its deadline itself; the claim flag in otlp_req makes
 * sure only one of the two answers is sent.
 */
#ifndef HALO_OTLP_INTERNAL_H
#define HALO_OTLP_INTERNAL_H

#include "../../core/batch.h"
#include "../../core/clock.h"
#include "../../core/component.h"
#include "../../core/log.h"
#include "../../core/metrics.h"
#include "../../core/net.h"
#include "../../core/status.h"
#include "../../core/tls.h"
#include "otlp_auth.h"
#include "otlp_limits.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- configuration (filled by the schema in otlp.c) -------------------- */

typedef struct otlp_grpc_cfg {
    char *endpoint;
    int64_t max_recv_msg_size;
    int64_t threads;
    halo_tls_cfg tls; /* core/tls.h */
    bool tls_present;
    int64_t max_concurrent_streams; /* per connection */
    int64_t handshake_timeout;      /* ns */
    int64_t max_connection_idle;    /* ns, 0: never */
    int64_t memory_limit;           /* bytes, gRPC resource quota */
} otlp_grpc_cfg;

typedef struct otlp_http_cfg {
    char *endpoint;
    int64_t max_request_body_size;
    char *traces_url_path;
    int64_t threads;
    halo_tls_cfg tls; /* core/tls.h */
    bool tls_present;
    int64_t max_connections;
    int64_t idle_timeout;        /* ns */
    int64_t read_header_timeout; /* ns */
    int64_t max_header_size;     /* bytes: MHD's per-connection memory */
} otlp_http_cfg;

typedef struct otlp_protocols_cfg {
    otlp_grpc_cfg grpc;
    otlp_http_cfg http;
    bool grpc_present;
    bool http_present;
} otlp_protocols_cfg;

typedef struct otlp_cfg {
    otlp_protocols_cfg protocols;
    bool protocols_present;
    otlp_auth_cfg auth; /* optional bearer tokens (otlp_auth.h) */
    bool auth_present;
    otlp_limits_cfg limits; /* defaults apply without a section */
    bool limits_present;
} otlp_cfg;

/* ---- answers and metrics ---------------------------------------------- */

/* The answers a receiver gives, independent of the transport. */
typedef enum otlp_code {
    OTLP_C_OK = 0,
    OTLP_C_INVALID,         /* gRPC INVALID_ARGUMENT, HTTP 400 */
    OTLP_C_UNAVAILABLE,     /* gRPC UNAVAILABLE, HTTP 503 */
    OTLP_C_TOO_BIG,         /* gRPC RESOURCE_EXHAUSTED, HTTP 413 */
    OTLP_C_INTERNAL,        /* gRPC INTERNAL, HTTP 500 */
    OTLP_C_UNIMPLEMENTED,   /* gRPC unknown method */
    OTLP_C_NOT_FOUND,       /* HTTP 404 */
    OTLP_C_METHOD,          /* HTTP 405 */
    OTLP_C_MEDIA_TYPE,      /* HTTP 415 */
    OTLP_C_CANCELLED,       /* gRPC call failed before it could be answered */
    OTLP_C_UNAUTHENTICATED, /* gRPC UNAUTHENTICATED, HTTP 401 (auth) */
    OTLP_C_N
} otlp_code;

otlp_code otlp_code_of(halo_status st);
/* gRPC status code number (grpc_status_code / google.rpc.Code). */
int otlp_grpc_status(otlp_code c);
/* HTTP status code. */
int otlp_http_status(otlp_code c);

/* Per transport metrics of one receiver instance (core/metrics.h names). */
typedef struct otlp_metrics {
    halo_metric *accepted;
    halo_metric *refused;
    halo_metric *latency;
    halo_metric *requests[OTLP_C_N]; /* NULL for codes the transport lacks */
} otlp_metrics;

/* Register the metrics; transport is "grpc" or "http". */
void otlp_metrics_init(otlp_metrics *m, const char *receiver,
                       const char *transport);
/* Count one answered request. */
void otlp_metrics_answer(const otlp_metrics *m, otlp_code code, size_t accepted,
                         size_t refused, uint64_t start_ns);

/* What the request path keeps per receiver about its limits: the
 * counters (registered at create, so the series exist at 0) and the
 * rate-limited log line. */
enum { OTLP_LM_DROPPED, OTLP_LM_TRUNCATED, OTLP_LM_REFUSED, OTLP_LM_N };
typedef struct otlp_limits_state {
    halo_metric *m[OTLP_LM_N];
    halo_log_every log;
} otlp_limits_state;

void otlp_limits_state_init(otlp_limits_state *l, const char *receiver);
void otlp_limits_state_destroy(otlp_limits_state *l);

/* ---- the transport-independent request -------------------------------- */

typedef struct otlp_req {
    uint64_t start_ns;    /* monotonic, when the request arrived */
    size_t n_spans;       /* spans emitted downstream */
    int64_t rejected;     /* spans the decoder left out */
    char reject_msg[256]; /* why (for partial_success) */
    atomic_bool claimed;  /* set by whoever sends the answer */
    /* auth (otlp_auth.h): set by the transport before otlp_dispatch when
     * the receiver has auth; the token's allowlist filters the spans */
    otlp_auth *auth;
    const otlp_auth_token *token;
    const char *transport; /* "grpc" or "http" */
} otlp_req;

/* Claim the right to answer; false when someone already did. */
bool otlp_req_claim(otlp_req *r);

/* Decode body (protobuf or OTLP/JSON) into a fresh arena, enforce the
 * receiver's limits (otlp_limits.h: too many spans are answered
 * HALO_ETOOBIG at once, attributes dropped and values cut in place) and
 * deliver it: malformed, empty, too large or all-rejected requests are
 * answered at once through answer(ud, ...); otherwise the spans are emitted
 * downstream in a batch whose ack calls answer(ud, ...) when they are
 * durable (or refused). answer runs exactly once, possibly before this
 * returns. */
void otlp_dispatch(halo_component *self, otlp_req *r, const uint8_t *body,
                   size_t len, bool json, halo_ack_fn answer, void *ud);

/* ---- transports ------------------------------------------------------- */

typedef struct otlp_grpc otlp_grpc;
typedef struct otlp_http otlp_http;

/* The receiver's state (self->ctx), made by otlp.c's create. */
typedef struct otlp_ctx {
    otlp_grpc *grpc;
    otlp_http *http;
    otlp_auth *auth;    /* NULL without an auth section */
    halo_tls *grpc_tls; /* NULL: plaintext */
    halo_tls *http_tls; /* NULL: plaintext */
    otlp_limits_state limits;
} otlp_ctx;

/* auth: NULL when the receiver has no auth section; else every call must
 * carry a valid bearer token. tls: NULL for plaintext; else the loaded
 * `tls` section (client certificates required when it has a CA). Both
 * outlive the transport. */
halo_status otlp_grpc_start(halo_component *self, const otlp_grpc_cfg *cfg,
                            otlp_auth *auth, const halo_tls *tls,
                            otlp_grpc **out, halo_err *err);
/* Stop accepting, wait (bounded) for in-flight answers, free. NULL ok. */
void otlp_grpc_stop(otlp_grpc *g);

halo_status otlp_http_start(halo_component *self, const otlp_http_cfg *cfg,
                            otlp_auth *auth, const halo_tls *tls,
                            otlp_http **out, halo_err *err);
void otlp_http_stop(otlp_http *h);

/* How long shutdown waits for in-flight requests before answering them
 * "unavailable" itself: 10 s (tests lower it). */
extern uint64_t otlp_drain_deadline_ns;

#endif
