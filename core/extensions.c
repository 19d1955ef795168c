/*
 * extensions.c -- the health_check and metrics extensions.
 *
 * Both are tiny HTTP servers (libmicrohttpd, one internal polling thread)
 * answering GET on one path:
 *   health_check  200 {"status":"Server available"} while the service is
 *                 ready (halo_service_ready: started, not shutting down,
 *                 no component failed), 503 {"status":"Server not
 *                 available"} otherwise, with "reason" when a component
 *                 failed for good (halo_service_fail)
 *   metrics       200 text/plain; version=0.0.4, every internal metric
 * Other paths get 404, other methods on the path 405. They consume nothing.
 * With a `tls` section (core/tls.h) they serve HTTPS only; with its
 * client_ca_file a request without a valid client certificate gets 403.
 * Slow clients are bounded by fixed limits (EXT_* below), the header
 * phase by the guard of core/http.h.
 * The listening socket is bound by halo_tcp_listen (receivers/otlp/
 * core/net.c) so "address already in use" is reported as such.
 */
#include "arena.h"
#include "buf.h"
#include "component.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "service.h"
#include "tls.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const halo_component_def halo_extension_metrics;

typedef struct ext_cfg {
    char *endpoint;
    char *path;
    halo_tls_cfg tls;
    bool tls_present;
} ext_cfg;

typedef struct ext_ctx {
    halo_component *self;
    struct MHD_Daemon *daemon;
    bool is_metrics;
    halo_tls *tls;          /* NULL: plain HTTP */
    halo_http_guard *guard; /* read_header_timeout */
} ext_ctx;

/* Fixed transport limits (the OTLP receiver makes them configurable):
 * a scrape or probe is one small GET. */
#define EXT_IDLE_TIMEOUT_S 30u
#define EXT_READ_HEADER_TIMEOUT_NS 10000000000u
#define EXT_MAX_CONNECTIONS 64u
#define EXT_MEMORY_LIMIT ((size_t)16384)

#define TLS_FIELD(cfgtype)                                                     \
    {                                                                          \
        .key = "tls", .type = HALO_F_SECTION,                                  \
        .offset = offsetof(cfgtype, tls), .sub = halo_tls_schema,              \
        .present_offset = offsetof(cfgtype, tls_present),                      \
        .description = "serve HTTPS (cert_file, key_file; client_ca_file: "    \
                       "mTLS)"                                                 \
    }

static const halo_field health_schema[] = {
    {.key = "endpoint",
     .type = HALO_F_ENDPOINT,
     .offset = offsetof(ext_cfg, endpoint),
     .def = "127.0.0.1:13133",
     .description = "host:port the health check listens on"},
    {.key = "path",
     .type = HALO_F_STRING,
     .offset = offsetof(ext_cfg, path),
     .def = "/",
     .description = "path answering GET"},
    TLS_FIELD(ext_cfg),
    {.key = NULL},
};

static const halo_field metrics_schema[] = {
    {.key = "endpoint",
     .type = HALO_F_ENDPOINT,
     .offset = offsetof(ext_cfg, endpoint),
     .def = "127.0.0.1:8888",
     .description = "host:port the Prometheus endpoint listens on"},
    {.key = "path",
     .type = HALO_F_STRING,
     .offset = offsetof(ext_cfg, path),
     .def = "/metrics",
     .description = "path answering GET"},
    TLS_FIELD(ext_cfg),
    {.key = NULL},
};

static enum MHD_Result reply_static(struct MHD_Connection *c, unsigned code,
                                    const char *type, const char *body)
{
    bool allow = code == MHD_HTTP_METHOD_NOT_ALLOWED;
    return halo_http_reply(c, code, type, (char *)body, strlen(body), false,
                           allow ? MHD_HTTP_HEADER_ALLOW : NULL, "GET, HEAD");
}

static enum MHD_Result serve_health(ext_ctx *x, struct MHD_Connection *c)
{
    const halo_service *svc = x->self->svc;
    if (svc && halo_service_ready(svc))
        return reply_static(c, MHD_HTTP_OK, "application/json",
                            "{\"status\":\"Server available\"}");
    const char *why = halo_service_failure(svc);
    if (!why)
        return reply_static(c, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                            "{\"status\":\"Server not available\"}");
    halo_buf b = HALO_BUF_INIT;
    static const char head[] =
        "{\"status\":\"Server not available\",\"reason\":";
    halo_buf_append(&b, head, sizeof head - 1);
    halo_buf_json_str(&b, why, strlen(why));
    halo_buf_putc(&b, '}');
    size_t len = b.len;
    char *body = halo_buf_steal(&b);
    if (!body)
        return reply_static(c, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                            "{\"status\":\"Server not available\"}");
    return halo_http_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                           body, len, true, NULL, NULL);
}

static enum MHD_Result serve_metrics(struct MHD_Connection *c)
{
    halo_buf b = HALO_BUF_INIT;
    /* read at scrape time, so it is current also when no data flows */
    halo_metric_set(halo_gauge("halo_memory_inflight_bytes",
                               "bytes of decoded span data in flight", NULL),
                    (double)halo_arena_total_reserved());
    halo_metric_set(halo_gauge("halo_memory_pooled_bytes",
                               "bytes of freed arena blocks kept for reuse",
                               NULL),
                    (double)halo_arena_pooled_bytes());
    halo_metrics_render(&b);
    size_t len = b.len;
    char *body = halo_buf_steal(&b);
    if (!body)
        return reply_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
                            "out of memory\n");
    return halo_http_reply(c, MHD_HTTP_OK,
                           "text/plain; version=0.0.4; charset=utf-8", body,
                           len, true, NULL, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    ext_ctx *x = cls;
    const ext_cfg *cfg = x->self->cfg;
    (void)version;
    (void)upload;
    if (!*con_cls) { /* headers only so far: wait for the end */
        *con_cls = x;
        halo_http_guard_headers_done(c);
        return MHD_YES;
    }
    if (!halo_tls_mhd_peer_ok(x->tls, c))
        return reply_static(c, MHD_HTTP_FORBIDDEN, "text/plain",
                            "a client certificate signed by client_ca_file "
                            "is required\n");
    if (*upload_size) { /* a body we do not want */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, cfg->path) != 0)
        return reply_static(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_static(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                            "method not allowed\n");
    return x->is_metrics ? serve_metrics(c) : serve_health(x, c);
}

static halo_status ext_create(halo_component *self, halo_err *err)
{
    const ext_cfg *cfg = self->cfg;
    if (!cfg->path || cfg->path[0] != '/')
        return halo_fail(err, HALO_EINVAL,
                         "extensions.%s: path must start with \"/\"", self->id);
    ext_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    x->self = self;
    x->is_metrics = self->def == &halo_extension_metrics;
    if (cfg->tls_present) {
        char where[160];
        snprintf(where, sizeof where, "extensions.%s: tls", self->id);
        halo_status st = halo_tls_mhd_check(where, err);
        if (st == HALO_OK)
            st = halo_tls_load(&cfg->tls, where, &x->tls, err);
        if (st != HALO_OK) {
            free(x);
            return st;
        }
    }
    self->ctx = x;
    return HALO_OK;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con_cls;
    (void)toe;
    halo_http_guard_request_done(c);
}

static struct MHD_Daemon *start_daemon(ext_ctx *x, int fd)
{
    struct MHD_OptionItem tls[HALO_TLS_MHD_OPTIONS];
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    tls[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if (x->tls) {
        halo_tls_mhd_options(x->tls, tls);
        flags |= MHD_USE_TLS;
    }
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, x, MHD_OPTION_EXTERNAL_LOGGER,
        halo_http_log, (void *)x->self->log_prefix, MHD_OPTION_LISTEN_SOCKET,
        fd, MHD_OPTION_CONNECTION_TIMEOUT, EXT_IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, EXT_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, EXT_MEMORY_LIMIT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, halo_http_guard_notify, x->guard,
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

static halo_status ext_start(halo_component *self, halo_err *err)
{
    ext_ctx *x = self->ctx;
    const ext_cfg *cfg = self->cfg;
    if (x->daemon)
        return HALO_OK;
    int fd;
    char labels[160];
    snprintf(labels, sizeof labels, "extension=\"%s\"", self->id);
    halo_status st = halo_http_guard_new(
        self->log_prefix, labels, EXT_READ_HEADER_TIMEOUT_NS, &x->guard, err);
    if (st != HALO_OK)
        return st;
    st = halo_tcp_listen(cfg->endpoint, self->def->type, &fd, err);
    if (st != HALO_OK) {
        halo_http_guard_free(x->guard);
        x->guard = NULL;
        return st;
    }
    x->daemon = start_daemon(x, fd);
    if (!x->daemon) {
        close(fd);
        halo_http_guard_free(x->guard);
        x->guard = NULL;
        return halo_fail(err, HALO_EIO,
                         "could not listen on %s (%s): could not start the "
                         "http server",
                         cfg->endpoint, self->def->type);
    }
    if (x->tls)
        LOG_INFO(self->log_prefix, "listening on %s (%s, %s%s)", cfg->endpoint,
                 self->def->type, halo_tls_mode(x->tls),
                 halo_tls_mtls(x->tls) ? ": client certificates required" : "");
    else
        LOG_INFO(self->log_prefix, "listening on %s (%s)", cfg->endpoint,
                 self->def->type);
    return HALO_OK;
}

static void ext_shutdown(halo_component *self)
{
    ext_ctx *x = self->ctx;
    if (!x || !x->daemon)
        return;
    MHD_stop_daemon(x->daemon);
    x->daemon = NULL;
    halo_http_guard_free(x->guard);
    x->guard = NULL;
}

static void ext_destroy(halo_component *self)
{
    ext_shutdown(self);
    if (self->ctx)
        halo_tls_free(((ext_ctx *)self->ctx)->tls);
    free(self->ctx);
    self->ctx = NULL;
}

const halo_component_def halo_extension_health_check = {
    .kind = HALO_EXTENSION,
    .type = "health_check",
    .description = "HTTP health endpoint for load balancers and compose",
    .schema = health_schema,
    .cfg_size = sizeof(ext_cfg),
    .create = ext_create,
    .start = ext_start,
    .consume = NULL,
    .shutdown = ext_shutdown,
    .destroy = ext_destroy,
};

const halo_component_def halo_extension_metrics = {
    .kind = HALO_EXTENSION,
    .type = "metrics",
    .description = "internal metrics in the Prometheus text format",
    .schema = metrics_schema,
    .cfg_size = sizeof(ext_cfg),
    .create = ext_create,
    .start = ext_start,
    .consume = NULL,
    .shutdown = ext_shutdown,
    .destroy = ext_destroy,
};
