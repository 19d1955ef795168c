/*
 * otlp_http.c -- OTLP/HTTP transport on libmicrohttpd.
 *
 * MHD runs its own thread pool (`threads` workers, poll) on a socket we
 * bind ourselves (core/net.c). Only `POST <traces_url_path>` is served:
 * other paths get 404, other methods 405 with `Allow: POST`. The body is
 * application/x-protobuf or application/json, identity or gzip, at most
 * max_request_body_size bytes before and after inflating (413 otherwise).
 *
 * TLS (core/tls.h): MHD_USE_TLS with the PEM key and certificate; with
 * client_ca_file MHD only asks for a client certificate, so the first
 * handler call of each request verifies it (403 otherwise). Limits:
 * max_connections, idle_timeout and max_header_size are MHD options;
 * read_header_timeout is the guard of core/http.c (it learns where each
 * request is from the handler's first call and the completion callback).
 *
 * The access handler sees a request in three phases: headers (checked at
 * once; a bad request is answered right there, and so is one without a
 * valid `Authorization: Bearer` token when auth is configured: 401 with
 * `WWW-Authenticate: Bearer`), body pieces (collected,
 * bounded), and the end. At the end the body goes to otlp_dispatch() with
 * http_answer as the ack function, and the connection is suspended until
 * that function has stored the answer and resumed it; the handler then
 * queues the response. The answer may come before we suspend (refusals are
 * synchronous), so r->mu orders "suspended" against "ready".
 *
 * Lifetime: an hreq holds a reference for the connection (dropped when MHD
 * reports the request completed) and one for its ack. The struct otlp_http
 * outlives every request (stop waits for `open` == 0); http_answer touches
 * it only before resuming the connection, never after.
 *
 * Shutdown: the listening socket is quiesced and closed, requests arriving
 * on kept-alive connections are answered 503, in-flight ones are answered
 * by their acks; after otlp_drain_deadline_ns the stragglers are answered
 * 503 here. MHD forbids stopping with suspended connections, hence the
 * `forcing` flag that stops new suspensions once the sweep has begun.
 */
#include "otlp_internal.h"

#include "../../core/buf.h"
#include "../../core/http.h"
#include "../../core/log.h"
#include "otlp_codec.h"

#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

typedef struct hreq hreq;

struct otlp_http {
    halo_component *self;
    const char *prefix;
    char *endpoint;
    char *path;
    size_t max_body;
    struct MHD_Daemon *daemon;
    int listen_fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;      /* requests MHD has not reported completed */
    hreq *waiting; /* dispatched, answer pending */
    bool stopping; /* under mu */
    bool forcing;  /* under mu: shutdown answers stragglers itself */
    otlp_metrics m;
    otlp_auth *auth;        /* NULL: no authentication */
    const halo_tls *tls;    /* NULL: plaintext */
    halo_http_guard *guard; /* read_header_timeout */
    halo_metric *tls_refused;
};

struct hreq {
    otlp_req base;
    otlp_http *h;
    struct MHD_Connection *conn;
    atomic_int refs;
    bool json;       /* request (and response) format */
    bool gzip;       /* Content-Encoding: gzip */
    bool too_big;    /* body over the limit: discarding the rest */
    bool dispatched; /* the end of the body was seen */
    bool no_cert;    /* mTLS: refused, no valid client certificate */
    uint8_t *body;
    size_t len, cap;
    hreq *prev, *next;
    bool listed;
    /* the answer, under mu */
    pthread_mutex_t mu;
    bool suspended;
    bool ready;
    otlp_code code;
    char *resp; /* malloc'd body, handed to MHD */
    size_t resp_len;
};

/* ---- requests ---------------------------------------------------------- */

static hreq *hreq_new(otlp_http *h, struct MHD_Connection *conn)
{
    hreq *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->conn = conn;
    atomic_init(&r->refs, 1);
    atomic_init(&r->base.claimed, false);
    pthread_mutex_init(&r->mu, NULL);
    r->base.start_ns = halo_mono_ns();
    return r;
}

static void hreq_release(hreq *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->body);
    free(r->resp);
    free(r);
}

static void waiting_remove_locked(otlp_http *h, hreq *r)
{
    if (!r->listed)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        h->waiting = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->listed = false;
}

/* False when shutdown is already answering stragglers itself. */
static bool waiting_add(otlp_http *h, hreq *r)
{
    pthread_mutex_lock(&h->mu);
    bool ok = !h->forcing;
    if (ok) {
        r->prev = NULL;
        r->next = h->waiting;
        if (h->waiting)
            h->waiting->prev = r;
        h->waiting = r;
        r->listed = true;
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

/* The response body for code: ExportTraceServiceResponse on success,
 * google.rpc.Status otherwise, in the request's format. */
static void build_body(hreq *r, otlp_code code, const char *msg)
{
    halo_buf b = HALO_BUF_INIT;
    uint8_t *pb = NULL;
    size_t n = 0;
    if (r->json) {
        if (code == OTLP_C_OK)
            halo_otlp_response_json(r->base.rejected, r->base.reject_msg, &b);
        else
            halo_rpc_status_json(otlp_grpc_status(code), msg, &b);
        n = b.len;
        r->resp = halo_buf_steal(&b);
        if (!r->resp)
            n = 0;
    } else {
        halo_status st =
            code == OTLP_C_OK
                ? halo_otlp_response_pb(r->base.rejected, r->base.reject_msg,
                                        &pb, &n)
                : halo_rpc_status_pb(otlp_grpc_status(code), msg, &pb, &n);
        if (st != HALO_OK) {
            free(pb);
            pb = NULL;
            n = 0;
        }
        r->resp = (char *)pb;
    }
    r->resp_len = r->resp ? n : 0;
    halo_buf_free(&b);
}

/* Store the answer and wake the connection if it sleeps. The caller has
 * claimed the answer. After this, r->h may be gone. */
static void publish(hreq *r, otlp_code code, const char *msg)
{
    build_body(r, code, msg);
    pthread_mutex_lock(&r->mu);
    r->code = code;
    r->ready = true;
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
}

static void count(otlp_http *h, hreq *r, otlp_code code)
{
    size_t ok = code == OTLP_C_OK ? r->base.n_spans : 0;
    size_t refused = (code == OTLP_C_OK ? 0 : r->base.n_spans) +
                     (size_t)(r->base.rejected > 0 ? r->base.rejected : 0);
    otlp_metrics_answer(&h->m, code, ok, refused, r->base.start_ns);
}

/* The ack function of a dispatched request. Any thread. */
static void http_answer(void *ud, halo_status st, const char *msg)
{
    hreq *r = ud;
    if (otlp_req_claim(&r->base)) {
        otlp_http *h = r->h;
        otlp_code code = otlp_code_of(st);
        pthread_mutex_lock(&h->mu);
        waiting_remove_locked(h, r);
        pthread_mutex_unlock(&h->mu);
        count(h, r, code);
        publish(r, code, msg);
    }
    hreq_release(r);
}

/* ---- responses --------------------------------------------------------- */

static enum MHD_Result queue(hreq *r)
{
    const char *header = NULL, *value = NULL;
    if (r->code == OTLP_C_UNAVAILABLE) {
        header = MHD_HTTP_HEADER_RETRY_AFTER;
        value = "1";
    } else if (r->code == OTLP_C_METHOD) {
        header = MHD_HTTP_HEADER_ALLOW;
        value = "POST";
    } else if (r->code == OTLP_C_UNAUTHENTICATED) {
        header = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
        value = "Bearer";
    }
    char *body = r->resp;
    r->resp = NULL; /* handed to MHD */
    unsigned status = (unsigned)otlp_http_status(r->code);
    if (r->no_cert) { /* not a bearer-token matter: no WWW-Authenticate */
        status = MHD_HTTP_FORBIDDEN;
        header = value = NULL;
    }
    return halo_http_reply(r->conn, status,
                           r->json ? "application/json"
                                   : "application/x-protobuf",
                           body, r->resp_len, true, header, value);
}

/* Answer from the access handler itself (no ack involved). */
static enum MHD_Result answer_now(hreq *r, otlp_code code, const char *msg)
{
    if (otlp_req_claim(&r->base)) {
        count(r->h, r, code);
        build_body(r, code, msg);
        r->code = code;
        r->ready = true;
    }
    return queue(r);
}

/* ---- request checks ---------------------------------------------------- */

/* mTLS: the request's connection must carry a client certificate that
 * verifies against client_ca_file; otherwise 403 with a
 * google.rpc.Status {UNAUTHENTICATED} body, counted in
 * halo_receiver_tls_refused_total (not in requests_total). */
static enum MHD_Result refuse_no_cert(otlp_http *h, hreq *r)
{
    (void)otlp_req_claim(&r->base);
    halo_metric_add(h->tls_refused, 1);
    r->json = true;
    r->no_cert = true;
    build_body(r, OTLP_C_UNAUTHENTICATED,
               "a client certificate signed by the receiver's "
               "client_ca_file is required");
    r->code = OTLP_C_UNAUTHENTICATED;
    r->ready = true;
    return queue(r);
}

/* "application/json; charset=utf-8" -> json. False when unsupported. */
static bool parse_content_type(const char *ct, bool *json)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == strlen("application/json") &&
        strncasecmp(ct, "application/json", n) == 0) {
        *json = true;
        return true;
    }
    if (n == strlen("application/x-protobuf") &&
        strncasecmp(ct, "application/x-protobuf", n) == 0) {
        *json = false;
        return true;
    }
    return false;
}

/* Check what the headers tell; OTLP_C_OK when the body may come. */
static otlp_code check_headers(otlp_http *h, hreq *r, const char *url,
                               const char *method, char *msg, size_t size)
{
    struct MHD_Connection *c = r->conn;
    const char *ct =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    bool ct_ok = parse_content_type(ct, &r->json);
    if (!ct_ok)
        r->json = true; /* errors in JSON when the type is unknown */
    if (strcmp(url, h->path) != 0) {
        snprintf(msg, size, "no such path %.200s (traces are accepted at %s)",
                 url, h->path);
        return OTLP_C_NOT_FOUND;
    }
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
        snprintf(msg, size, "method %.32s not allowed on %s (use POST)", method,
                 h->path);
        return OTLP_C_METHOD;
    }
    if (h->auth) {
        const char *az =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        otlp_auth_result why =
            otlp_auth_check(h->auth, az, az ? strlen(az) : 0, &r->base.token);
        if (why != OTLP_AUTH_OK) {
            otlp_auth_refused(h->auth, "http", why);
            snprintf(msg, size, "%s", OTLP_AUTH_MESSAGE);
            return OTLP_C_UNAUTHENTICATED;
        }
        r->base.auth = h->auth;
        r->base.transport = "http";
    }
    if (!ct_ok) {
        snprintf(msg, size,
                 "unsupported content type \"%.100s\" (use "
                 "application/x-protobuf or application/json)",
                 ct ? ct : "");
        return OTLP_C_MEDIA_TYPE;
    }
    const char *ce =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (ce && *ce && strcasecmp(ce, "identity") != 0) {
        if (strcasecmp(ce, "gzip") != 0) {
            snprintf(msg, size,
                     "unsupported content encoding \"%.100s\" (use gzip or "
                     "identity)",
                     ce);
            return OTLP_C_MEDIA_TYPE;
        }
        r->gzip = true;
    }
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > h->max_body) {
            snprintf(msg, size,
                     "request body of %llu bytes exceeds "
                     "max_request_body_size (%zu bytes)",
                     n, h->max_body);
            return OTLP_C_TOO_BIG;
        }
        /* reserve what was announced, up to 1 MiB: a client that only
         * claims a large body must not cost that much memory */
        if (errno == 0 && end != cl && n > 0) {
            size_t want = n < ((size_t)1 << 20) ? (size_t)n : (size_t)1 << 20;
            r->body = malloc(want);
            r->cap = r->body ? want : 0;
        }
    }
    pthread_mutex_lock(&h->mu);
    bool stopping = h->stopping;
    pthread_mutex_unlock(&h->mu);
    if (stopping) {
        snprintf(msg, size, "receiver is shutting down");
        return OTLP_C_UNAVAILABLE;
    }
    return OTLP_C_OK;
}

/* Keep a piece of the body; past the limit, only count. */
static void collect(otlp_http *h, hreq *r, const char *data, size_t n)
{
    if (r->too_big)
        return;
    if (n > h->max_body - r->len) {
        r->too_big = true;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + n)
            cap *= 2;
        if (cap > h->max_body)
            cap = h->max_body;
        uint8_t *p = realloc(r->body, cap);
        if (!p) {
            r->too_big = true; /* answered 503 below: out of memory */
            r->cap = SIZE_MAX;
            return;
        }
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
}

/* Inflate r->body in place of itself, bounded by max_body. */
static otlp_code gunzip(otlp_http *h, hreq *r, char *msg, size_t size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        snprintf(msg, size, "out of memory");
        return OTLP_C_UNAVAILABLE;
    }
    size_t cap = r->len * 4 < 65536 ? 65536 : r->len * 4, len = 0;
    if (cap > h->max_body)
        cap = h->max_body;
    uint8_t *out = malloc(cap + 1);
    otlp_code code = OTLP_C_OK;
    z.next_in = r->body;
    z.avail_in = (uInt)r->len;
    int zr = Z_OK;
    while (out && zr != Z_STREAM_END) {
        if (len == cap) {
            if (cap >= h->max_body) {
                snprintf(msg, size,
                         "decompressed request body exceeds "
                         "max_request_body_size (%zu bytes)",
                         h->max_body);
                code = OTLP_C_TOO_BIG;
                break;
            }
            size_t ncap = cap * 2 > h->max_body ? h->max_body : cap * 2;
            uint8_t *p = realloc(out, ncap + 1);
            if (!p) {
                free(out);
                out = NULL;
                break;
            }
            out = p;
            cap = ncap;
        }
        z.next_out = out + len;
        z.avail_out = (uInt)(cap - len);
        zr = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0)) {
            snprintf(msg, size, "invalid gzip body: %s",
                     z.msg ? z.msg
                           : (zr == Z_BUF_ERROR ? "unexpected end of data"
                                                : "corrupt data"));
            code = OTLP_C_INVALID;
            break;
        }
    }
    inflateEnd(&z);
    if (!out) {
        snprintf(msg, size, "out of memory");
        return OTLP_C_UNAVAILABLE;
    }
    if (code != OTLP_C_OK) {
        free(out);
        return code;
    }
    free(r->body);
    r->body = out;
    r->len = r->cap = len;
    return OTLP_C_OK;
}

/* The whole body is here: check it, dispatch it, then wait for the ack. */
static enum MHD_Result finish_body(otlp_http *h, hreq *r)
{
    char msg[320];
    r->dispatched = true;
    if (r->too_big) {
        if (r->cap == SIZE_MAX)
            return answer_now(r, OTLP_C_UNAVAILABLE, "out of memory");
        snprintf(msg, sizeof msg,
                 "request body exceeds max_request_body_size (%zu bytes)",
                 h->max_body);
        return answer_now(r, OTLP_C_TOO_BIG, msg);
    }
    if (r->gzip) {
        otlp_code c = gunzip(h, r, msg, sizeof msg);
        if (c != OTLP_C_OK)
            return answer_now(r, c, msg);
    }
    atomic_fetch_add(&r->refs, 1); /* the ack side */
    if (!waiting_add(h, r)) {
        hreq_release(r);
        return answer_now(r, OTLP_C_UNAVAILABLE, "receiver is shutting down");
    }
    static const uint8_t empty[1];
    otlp_dispatch(h->self, &r->base, r->body ? r->body : empty, r->len, r->json,
                  http_answer, r);
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    pthread_mutex_lock(&r->mu);
    bool ready = r->ready;
    if (!ready) {
        r->suspended = true;
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
    return ready ? queue(r) : MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    otlp_http *h = cls;
    hreq *r = *con_cls;
    (void)version;
    if (!r) {
        r = hreq_new(h, conn);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        pthread_mutex_lock(&h->mu);
        h->open++;
        pthread_mutex_unlock(&h->mu);
        halo_http_guard_headers_done(conn);
        if (!halo_tls_mhd_peer_ok(h->tls, conn))
            return refuse_no_cert(h, r);
        char msg[320];
        otlp_code c = check_headers(h, r, url, method, msg, sizeof msg);
        return c == OTLP_C_OK ? MHD_YES : answer_now(r, c, msg);
    }
    if (*upload_size) {
        collect(h, r, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->dispatched)
        return finish_body(h, r);
    pthread_mutex_lock(&r->mu);
    bool ready = r->ready;
    pthread_mutex_unlock(&r->mu);
    return ready ? queue(r) : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    otlp_http *h = cls;
    hreq *r = *con_cls;
    (void)toe;
    halo_http_guard_request_done(conn);
    if (!r)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&h->mu);
    waiting_remove_locked(h, r);
    h->open--;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    hreq_release(r);
}

/* ---- start and stop ---------------------------------------------------- */

static void free_http(otlp_http *h)
{
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->endpoint);
    free(h->path);
    free(h);
}

static bool wait_open_zero(otlp_http *h, uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u),
                          (long)(deadline_ns % 1000000000u)};
    pthread_mutex_lock(&h->mu);
    while (h->open > 0)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) == ETIMEDOUT)
            break;
    bool done = h->open == 0;
    pthread_mutex_unlock(&h->mu);
    return done;
}

/* Answer 503 to every request still waiting for its ack. */
static void force_answers(otlp_http *h)
{
    pthread_mutex_lock(&h->mu);
    h->forcing = true;
    pthread_mutex_unlock(&h->mu);
    for (;;) {
        pthread_mutex_lock(&h->mu);
        hreq *r = h->waiting;
        if (r) {
            waiting_remove_locked(h, r);
            atomic_fetch_add(&r->refs, 1); /* keep it while we answer */
        }
        pthread_mutex_unlock(&h->mu);
        if (!r)
            return;
        if (otlp_req_claim(&r->base)) {
            count(h, r, OTLP_C_UNAVAILABLE);
            publish(r, OTLP_C_UNAVAILABLE, "receiver is shutting down");
        }
        hreq_release(r);
    }
}

void otlp_http_stop(otlp_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    int fd = MHD_quiesce_daemon(h->daemon);
    if (fd >= 0)
        close(fd); /* new connections are refused from now on */
    if (!wait_open_zero(h, halo_mono_ns() + otlp_drain_deadline_ns)) {
        LOG_WARN(h->prefix,
                 "http requests still in flight after %gs: answering them "
                 "unavailable",
                 (double)otlp_drain_deadline_ns / 1e9);
        force_answers(h);
        /* give the answers a moment to go out */
        wait_open_zero(h, halo_mono_ns() + 1000000000u);
    }
    MHD_stop_daemon(h->daemon);
    halo_http_guard_free(h->guard);
    LOG_INFO(h->prefix, "stopped listening on %s (http)", h->endpoint);
    free_http(h);
}

static halo_status init_sync(otlp_http *h)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return HALO_ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return HALO_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    return HALO_OK;
}

/* MHD with our socket, the thread pool, TLS when configured, and the
 * transport limits. */
static struct MHD_Daemon *start_daemon(otlp_http *h, const otlp_http_cfg *cfg)
{
    struct MHD_OptionItem tls[HALO_TLS_MHD_OPTIONS];
    /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon sets
     * was_quiesced on each worker before it removes the listening socket
     * from the worker's epoll set, and a worker woken meanwhile removes it
     * itself; quiesce's own EPOLL_CTL_DEL then fails and MHD aborts the
     * process ("Failed to remove listen FD from epoll set", seen once in
     * a `make test` run, in http_shutdown_drains_in_flight). With poll the
     * workers are told through their inter-thread channel (MHD_USE_ITC),
     * which has no such race. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    tls[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if (h->tls) {
        halo_tls_mhd_options(h->tls, tls);
        flags |= MHD_USE_TLS;
    }
    /* whole seconds, rounded up */
    unsigned idle = (unsigned)((cfg->idle_timeout + 999999999) / 1000000000);
    /* the logger must come first to catch messages about the others */
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        halo_http_log, (void *)h->prefix, MHD_OPTION_LISTEN_SOCKET,
        h->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, halo_http_guard_notify, h->guard,
        MHD_OPTION_CONNECTION_TIMEOUT, idle, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)cfg->max_header_size, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

halo_status otlp_http_start(halo_component *self, const otlp_http_cfg *cfg,
                            otlp_auth *auth, const halo_tls *tls,
                            otlp_http **out, halo_err *err)
{
    otlp_http *h = calloc(1, sizeof *h);
    if (!h || !(h->endpoint = strdup(cfg->endpoint)) ||
        !(h->path = strdup(cfg->traces_url_path)) || init_sync(h) != HALO_OK) {
        if (h) {
            free(h->endpoint);
            free(h->path);
        }
        free(h);
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    h->self = self;
    h->prefix = self->log_prefix;
    h->auth = auth;
    h->tls = tls;
    h->max_body = (size_t)cfg->max_request_body_size;
    otlp_metrics_init(&h->m, self->id, "http");
    char labels[256];
    snprintf(labels, sizeof labels, "receiver=\"%s\",transport=\"http\"",
             self->id);
    h->tls_refused = halo_counter(
        "halo_receiver_tls_refused_total",
        "Requests refused for want of a valid client certificate (mTLS).",
        labels);
    halo_status st = halo_http_guard_new(
        h->prefix, labels, (uint64_t)cfg->read_header_timeout, &h->guard, err);
    if (st != HALO_OK) {
        free_http(h);
        return st;
    }
    st = halo_tcp_listen(cfg->endpoint, "http", &h->listen_fd, err);
    if (st != HALO_OK) {
        halo_http_guard_free(h->guard);
        free_http(h);
        return st;
    }
    h->daemon = start_daemon(h, cfg);
    if (!h->daemon) {
        close(h->listen_fd);
        halo_http_guard_free(h->guard);
        free_http(h);
        return halo_fail(err, HALO_EIO,
                         "could not listen on %s (http): could not start "
                         "the http server",
                         cfg->endpoint);
    }
    if (tls)
        LOG_INFO(h->prefix, "listening on %s (http, %s%s)", cfg->endpoint,
                 halo_tls_mode(tls),
                 halo_tls_mtls(tls) ? ": client certificates required" : "");
    else
        LOG_INFO(h->prefix, "listening on %s (http)", cfg->endpoint);
    *out = h;
    return HALO_OK;
}
