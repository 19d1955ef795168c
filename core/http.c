/*
 * http.c -- libmicrohttpd helpers shared by the HTTP servers (http.h).
 *
 * Each server decides what to answer; this file only turns an answer into
 * an MHD response (and releases it once queued, as MHD keeps its own
 * reference), gives MHD's error log lines the daemon's log prefix, and
 * keeps the header-phase guard (below).
 */
#include "http.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <linux/tcp.h> /* tcp_info with tcpi_bytes_received */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum MHD_Result halo_http_reply(struct MHD_Connection *c, unsigned code,
                                const char *type, char *body, size_t len,
                                bool must_free, const char *header,
                                const char *value)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (header)
        MHD_add_response_header(r, header, value);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* MHD logs one line per failed TLS handshake or refused connection: a
 * flood of bad clients must not flood the log. At most LOG_BURST lines
 * per LOG_WINDOW_NS (all servers together); the next line after a window
 * says how many were left out. */
#define LOG_BURST 10
#define LOG_WINDOW_NS 10000000000u

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t log_window_start;
static unsigned log_in_window;
static unsigned long long log_dropped;

void halo_http_log(void *cls, const char *fmt, va_list ap)
{
    const char *prefix = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    uint64_t now = halo_mono_ns();
    unsigned long long dropped = 0;
    pthread_mutex_lock(&log_mu);
    if (now - log_window_start >= LOG_WINDOW_NS) {
        log_window_start = now;
        log_in_window = 0;
        dropped = log_dropped;
        log_dropped = 0;
    }
    bool show = log_in_window < LOG_BURST;
    if (show)
        log_in_window++;
    else
        log_dropped++;
    pthread_mutex_unlock(&log_mu);
    if (dropped)
        LOG_WARN(prefix, "http: %llu similar messages left out", dropped);
    if (show)
        LOG_WARN(prefix, "http: %s", line);
}

/* ---- header-phase guard ----------------------------------------------------
 *
 * Each connection gets a record (MHD's socket context) on the guard's
 * list, in one of three states:
 *   WAIT  the clock runs since `since` (the accept, or the first byte of
 *         the next request on a kept-alive connection)
 *   IDLE  between requests: no clock; `mark` is the kernel's count of
 *         bytes received (TCP_INFO tcpi_bytes_received) when the previous
 *         request completed, so the sweeper sees when the next one starts
 *         (MHD reads it at once, so only the kernel's count tells)
 *   BODY  the access handler has the headers: MHD's idle timeout and the
 *         handler's own limits take over
 * A sweeper thread walks the list a few times per timeout: IDLE records
 * whose byte count moved become WAIT, WAIT records past the deadline have
 * their socket shut down (MHD then sees the end of the stream and closes
 * the connection itself).
 *
 * fd reuse: MHD calls NOTIFY_CLOSED before it closes a connection's
 * socket, and the record leaves the list there under the guard's mutex.
 * The sweeper holds that mutex while it calls shutdown(), so every fd it
 * touches still belongs to the connection it was recorded for.
 */

typedef enum gstate { G_WAIT, G_IDLE, G_BODY } gstate;

typedef struct gconn {
    struct gconn *prev, *next;
    struct halo_http_guard *g;
    int fd;
    gstate state;
    uint64_t since_ns;
    uint64_t mark;
    bool cut;
} gconn;

struct halo_http_guard {
    char *prefix;
    uint64_t timeout_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t sweeper;
    bool stop; /* under mu */
    gconn *conns;
    uint64_t cut_unlogged; /* under mu: since the last log line */
    uint64_t logged_ns;
    halo_metric *counter;
};

/* Bytes the kernel received on fd; false when it cannot tell. */
static bool tcp_bytes(int fd, uint64_t *out)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) +
                  sizeof ti.tcpi_bytes_received)
        return false;
    *out = ti.tcpi_bytes_received;
    return true;
}

static void sweep_locked(halo_http_guard *g, uint64_t now)
{
    for (gconn *c = g->conns; c; c = c->next) {
        uint64_t b;
        if (c->state == G_IDLE && tcp_bytes(c->fd, &b) && b != c->mark) {
            c->state = G_WAIT;
            c->since_ns = now;
        }
        if (c->state != G_WAIT || c->cut || now - c->since_ns < g->timeout_ns)
            continue;
        c->cut = true;
        (void)shutdown(c->fd, SHUT_RDWR);
        g->cut_unlogged++;
        halo_metric_add(g->counter, 1);
    }
    /* one line at most every 10 s */
    if (g->cut_unlogged && now - g->logged_ns >= 10000000000u) {
        LOG_WARN(g->prefix,
                 "closed %llu connection%s that did not send a complete "
                 "request header within %gs",
                 (unsigned long long)g->cut_unlogged,
                 g->cut_unlogged == 1 ? "" : "s", (double)g->timeout_ns / 1e9);
        g->cut_unlogged = 0;
        g->logged_ns = now;
    }
}

static void *sweeper_main(void *arg)
{
    pthread_setname_np(pthread_self(), "http-sweeper");
    halo_http_guard *g = arg;
    uint64_t every = g->timeout_ns / 8;
    if (every < 20000000u)
        every = 20000000u;
    if (every > 1000000000u)
        every = 1000000000u;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        uint64_t now = halo_mono_ns();
        sweep_locked(g, now);
        uint64_t at = now + every;
        struct timespec ts = {(time_t)(at / 1000000000u),
                              (long)(at % 1000000000u)};
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

halo_status halo_http_guard_new(const char *prefix, const char *labels,
                                uint64_t read_header_timeout_ns,
                                halo_http_guard **out, halo_err *err)
{
    halo_http_guard *g = calloc(1, sizeof *g);
    pthread_condattr_t ca;
    bool cv_ok = false;
    if (!g || !(g->prefix = strdup(prefix)))
        goto oom;
    g->timeout_ns = read_header_timeout_ns;
    g->counter = halo_counter("halo_http_slow_headers_closed_total",
                              "connections closed because their request "
                              "headers took longer than read_header_timeout",
                              labels);
    if (pthread_condattr_init(&ca) != 0)
        goto oom;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    cv_ok = pthread_cond_init(&g->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv_ok)
        goto oom;
    pthread_mutex_init(&g->mu, NULL);
    if (pthread_create(&g->sweeper, NULL, sweeper_main, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g->prefix);
        free(g);
        return halo_fail(err, HALO_EIO, "could not start a thread");
    }
    *out = g;
    return HALO_OK;
oom:
    if (cv_ok)
        pthread_cond_destroy(&g->cv);
    if (g)
        free(g->prefix);
    free(g);
    return halo_fail(err, HALO_ENOMEM, "out of memory");
}

void halo_http_guard_notify(void *cls, struct MHD_Connection *c,
                            void **socket_context,
                            enum MHD_ConnectionNotificationCode code)
{
    halo_http_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        gconn *gc = ci ? calloc(1, sizeof *gc) : NULL;
        *socket_context = gc;
        if (!gc)
            return; /* unguarded: MHD's idle timeout still applies */
        gc->g = g;
        gc->fd = ci->connect_fd;
        gc->state = G_WAIT;
        gc->since_ns = halo_mono_ns();
        pthread_mutex_lock(&g->mu);
        gc->next = g->conns;
        if (g->conns)
            g->conns->prev = gc;
        g->conns = gc;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    gconn *gc = *socket_context;
    if (!gc)
        return;
    *socket_context = NULL;
    pthread_mutex_lock(&g->mu);
    if (gc->prev)
        gc->prev->next = gc->next;
    else
        g->conns = gc->next;
    if (gc->next)
        gc->next->prev = gc->prev;
    pthread_mutex_unlock(&g->mu);
    free(gc);
}

static gconn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void halo_http_guard_headers_done(struct MHD_Connection *c)
{
    gconn *gc = conn_of(c);
    if (!gc)
        return;
    pthread_mutex_lock(&gc->g->mu);
    gc->state = G_BODY;
    pthread_mutex_unlock(&gc->g->mu);
}

void halo_http_guard_request_done(struct MHD_Connection *c)
{
    gconn *gc = conn_of(c);
    if (!gc)
        return;
    uint64_t b = 0;
    bool known = tcp_bytes(gc->fd, &b);
    pthread_mutex_lock(&gc->g->mu);
    /* without the kernel's count, the clock runs from here */
    gc->state = known ? G_IDLE : G_WAIT;
    gc->mark = b;
    gc->since_ns = halo_mono_ns();
    pthread_mutex_unlock(&gc->g->mu);
}

void halo_http_guard_free(halo_http_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->sweeper, NULL);
    /* MHD_stop_daemon has closed every connection: the list is empty */
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->prefix);
    free(g);
}
