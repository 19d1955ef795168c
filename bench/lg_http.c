/*
 * lg_http.c -- the OTLP/HTTP driver of halo-loadgen.
 *
 * N keep-alive TCP connections (--connections), one request in flight on
 * each (HTTP/1.1 has no multiplexing and we do not pipeline), driven by one
 * epoll loop on this thread. Every request is
 *
 *   POST /v1/traces HTTP/1.1
 *   Content-Type: application/x-protobuf
 *   Content-Length: n
 *
 * with a stamped copy of a pooled request as body. The response parser is
 * deliberately minimal: the status line, then the headers we need
 * (Content-Length, Connection: close); a body without Content-Length
 * (chunked, or read-until-close) counts as a "bad-response" failure and the
 * connection is reopened. A 200 body is read as an ExportTraceServiceResponse
 * for partial_success.
 *
 * Connection state machine:
 *   DOWN -> CONNECTING -> IDLE -> SENDING -> READING -> IDLE ...
 * Any socket error or timeout closes the connection (the request in flight,
 * if any, counts as failed) and it reconnects after 100 ms. After a
 * 503/429 the connection rests 10 ms before its next request.
 */
#include "lg.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEADER 16384
#define MAX_BODY (64 << 20)

typedef enum hstate {
    HC_DOWN,
    HC_CONNECTING,
    HC_IDLE,
    HC_SENDING,
    HC_READING,
} hstate;

typedef struct hconn {
    int fd;
    hstate state;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    uint8_t *in;
    size_t in_len, in_cap;
    double sched;    /* when the request in flight was due */
    double started;  /* when it was sent, for the timeout */
    double ready_at; /* no reconnect / request before this */
} hconn;

typedef struct hrun {
    const lg_opts *o;
    const lg_pool *pool;
    lg_stats *st;
    lg_sched sched;
    int ep;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    hconn *conns;
    int busy;
    uint64_t connect_errors;
    int last_connect_errno;
} hrun;

static int resolve(hrun *h)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port[16];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", h->o->port);
    int rc = getaddrinfo(h->o->host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "halo-loadgen: could not resolve \"%s\": %s\n",
                h->o->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&h->addr, res->ai_addr, res->ai_addrlen);
    h->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void conn_close(hrun *h, hconn *c, double retry_after)
{
    if (c->fd >= 0) {
        epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = HC_DOWN;
    c->in_len = 0;
    c->ready_at = lg_now() + retry_after;
}

/* The request in flight on c failed with `label`; reopen the connection. */
static void conn_fail(hrun *h, hconn *c, const char *label)
{
    double now = lg_now();
    if (c->state == HC_SENDING || c->state == HC_READING) {
        h->busy--;
        h->st->t_end = now;
        lg_stats_answer(h->st, label, false, lg_pool_spans(h->pool), 0,
                        now - c->sched);
    } else if (c->state == HC_CONNECTING) {
        h->connect_errors++;
    }
    conn_close(h, c, 0.1);
}

static int watch(hrun *h, hconn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(h->ep, op, c->fd, &ev);
}

static void conn_open(hrun *h, hconn *c)
{
    c->fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        h->last_connect_errno = errno;
        h->connect_errors++;
        c->ready_at = lg_now() + 0.1;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = HC_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&h->addr, h->addr_len) != 0 &&
        errno != EINPROGRESS) {
        h->last_connect_errno = errno;
        conn_fail(h, c, "conn-error");
        return;
    }
    if (watch(h, c, EPOLLOUT, EPOLL_CTL_ADD) != 0)
        conn_fail(h, c, "conn-error");
}

static void on_connected(hrun *h, hconn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
        h->last_connect_errno = err ? err : errno;
        conn_fail(h, c, "conn-error");
        return;
    }
    c->state = HC_IDLE;
    watch(h, c, EPOLLIN, EPOLL_CTL_MOD); /* notices a server-side close */
}

/* Writes what it can of the request; switches to reading when done. */
static void send_some(hrun *h, hconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(h, c, EPOLLOUT | EPOLLIN, EPOLL_CTL_MOD);
            return;
        }
        conn_fail(h, c, "conn-error");
        return;
    }
    c->state = HC_READING;
    watch(h, c, EPOLLIN, EPOLL_CTL_MOD);
}

static void start_request(hrun *h, hconn *c, uint64_t seq, double sched)
{
    size_t body = lg_pool_req_len(h->pool, seq);
    int hl = snprintf((char *)c->out, c->out_cap,
                      "POST /v1/traces HTTP/1.1\r\nHost: %s:%d\r\n"
                      "Content-Type: application/x-protobuf\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      h->o->host, h->o->port, body);
    lg_pool_stamp(h->pool, seq, c->out + hl);
    c->out_len = (size_t)hl + body;
    c->out_off = 0;
    c->sched = sched;
    c->started = lg_now();
    c->state = HC_SENDING;
    h->busy++;
    h->st->sent++;
    h->st->spans_sent += (uint64_t)lg_pool_spans(h->pool);
    h->st->bytes_sent += c->out_len;
    send_some(h, c);
}

/* ---- response parsing --------------------------------------------------- */

typedef struct hresp {
    int status;
    size_t header_len; /* through the blank line */
    size_t body_len;
    bool close;
} hresp;

/* 1: complete response in c->in; 0: need more bytes; -1: unusable. */
static int parse_response(const hconn *c, hresp *r)
{
    const char *p = (const char *)c->in;
    const char *end = memmem(p, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len > MAX_HEADER ? -1 : 0;
    r->header_len = (size_t)(end - p) + 4;
    if (r->header_len < 14 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return -1;
    r->status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        r->status = r->status * 10 + (p[i] - '0');
    }
    bool have_len = false;
    r->close = p[7] == '0'; /* HTTP/1.0 closes by default */
    r->body_len = 0;
    /* the status line ends at or before `end` */
    const char *line = (const char *)memchr(p, '\n', (size_t)(end - p) + 2) + 1;
    while (line < end + 2) {
        const char *eol = memchr(line, '\n', (size_t)(end + 2 - line));
        if (!eol)
            break;
        size_t n = (size_t)(eol - line);
        if (n > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            char *e;
            unsigned long long v = strtoull(line + 15, &e, 10);
            if (e == line + 15 || v > MAX_BODY)
                return -1;
            r->body_len = (size_t)v;
            have_len = true;
        } else if (n > 11 && strncasecmp(line, "connection:", 11) == 0) {
            r->close = memmem(line, n, "close", 5) != NULL;
        } else if (n > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0) {
            return -1; /* chunked: not supported by this parser */
        }
        line = eol + 1;
    }
    if (!have_len)
        return r->status == 204 || r->status == 304 ? 1 : -1;
    return c->in_len >= r->header_len + r->body_len ? 1 : 0;
}

static void label_for(int status, char *buf, size_t n)
{
    snprintf(buf, n, "%d", status);
}

static void on_response(hrun *h, hconn *c, const hresp *r)
{
    double now = lg_now();
    int spans = lg_pool_spans(h->pool);
    char label[16];
    h->busy--;
    h->st->t_end = now;
    label_for(r->status, label, sizeof(label));
    if (r->status == 200) {
        int64_t rej =
            lg_parse_export_response(c->in + r->header_len, r->body_len);
        if (rej < 0)
            lg_stats_answer(h->st, "bad-response", false, spans, 0,
                            now - c->sched);
        else
            lg_stats_answer(h->st, label, true, spans, rej, now - c->sched);
    } else {
        lg_stats_answer(h->st, label, false, spans, 0, now - c->sched);
        if (r->status == 503 || r->status == 429)
            c->ready_at = now + 0.010;
    }
    size_t used = r->header_len + r->body_len;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->state = HC_IDLE;
    if (r->close)
        conn_close(h, c, 0);
}

static bool grow_in(hconn *c)
{
    if (c->in_cap - c->in_len >= 16384)
        return true;
    size_t cap = c->in_cap * 2;
    uint8_t *p = realloc(c->in, cap);
    if (!p)
        return false;
    c->in = p;
    c->in_cap = cap;
    return true;
}

static void read_some(hrun *h, hconn *c)
{
    for (;;) {
        if (!grow_in(c)) {
            conn_fail(h, c, "out-of-memory");
            return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_fail(h, c, "conn-error"); /* EOF or error */
        return;
    }
    if (c->state != HC_READING) {
        if (c->in_len) /* bytes nobody asked for */
            conn_fail(h, c, "bad-response");
        return;
    }
    hresp r;
    int rc = parse_response(c, &r);
    if (rc < 0)
        conn_fail(h, c, "bad-response");
    else if (rc > 0)
        on_response(h, c, &r);
}

static void on_event(hrun *h, hconn *c, uint32_t events)
{
    if (c->state == HC_CONNECTING) {
        on_connected(h, c);
        return;
    }
    if (c->state == HC_SENDING && (events & EPOLLOUT))
        send_some(h, c);
    if (c->fd >= 0 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        read_some(h, c);
}

/* ---- the loop ----------------------------------------------------------- */

static void tend_conns(hrun *h, double now)
{
    for (int i = 0; i < h->o->connections; i++) {
        hconn *c = &h->conns[i];
        double sched;
        if ((c->state == HC_SENDING || c->state == HC_READING) &&
            now - c->started > h->o->timeout_ms / 1e3) {
            conn_fail(h, c, "timeout");
            continue;
        }
        if (c->ready_at > now)
            continue;
        if (c->state == HC_DOWN && !lg_sched_done(&h->sched, now))
            conn_open(h, c);
        else if (c->state == HC_IDLE && lg_sched_take(&h->sched, now, &sched))
            start_request(h, c, lg_sched_seq(&h->sched), sched);
    }
}

static void loop(hrun *h)
{
    struct epoll_event evs[64];
    for (;;) {
        double now = lg_now();
        tend_conns(h, now);
        lg_stats_sample_rss(h->st, h->o->pid, now);
        if (lg_sched_done(&h->sched, now) && h->busy == 0)
            break;
        double wait = lg_sched_wait(&h->sched, now, 0.01);
        int n = epoll_wait(h->ep, evs, 64, (int)(wait * 1e3 + 0.999));
        for (int i = 0; i < n; i++)
            on_event(h, evs[i].data.ptr, evs[i].events);
    }
}

static int alloc_conns(hrun *h)
{
    size_t out_cap = lg_pool_max_len(h->pool) + 512 + strlen(h->o->host);
    h->conns = calloc((size_t)h->o->connections, sizeof(*h->conns));
    if (!h->conns)
        return -1;
    for (int i = 0; i < h->o->connections; i++) {
        hconn *c = &h->conns[i];
        c->fd = -1;
        c->out_cap = out_cap;
        c->out = malloc(out_cap);
        c->in_cap = 65536;
        c->in = malloc(c->in_cap);
        if (!c->out || !c->in)
            return -1;
    }
    return 0;
}

static void free_conns(hrun *h)
{
    for (int i = 0; h->conns && i < h->o->connections; i++) {
        if (h->conns[i].fd >= 0)
            close(h->conns[i].fd);
        free(h->conns[i].out);
        free(h->conns[i].in);
    }
    free(h->conns);
}

int lg_run_http(const lg_opts *o, const lg_pool *pool, lg_stats *st)
{
    int rc = -1;
    hrun h = {.o = o, .pool = pool, .st = st, .ep = -1};
    if (resolve(&h) != 0)
        goto cleanup;
    h.ep = epoll_create1(EPOLL_CLOEXEC);
    if (h.ep < 0) {
        perror("halo-loadgen: epoll_create1");
        goto cleanup;
    }
    if (alloc_conns(&h) != 0) {
        fprintf(stderr, "halo-loadgen: out of memory\n");
        goto cleanup;
    }
    double now = lg_now();
    lg_sched_init(&h.sched, o, lg_pool_spans(pool), now);
    st->t_start = st->t_end = now;
    loop(&h);
    st->late_max = h.sched.late_max;
    if (h.connect_errors)
        fprintf(stderr, "halo-loadgen: %llu failed connection attempts (%s)\n",
                (unsigned long long)h.connect_errors,
                strerror(h.last_connect_errno));
    rc = 0;
cleanup:
    free_conns(&h);
    if (h.ep >= 0)
        close(h.ep);
    return rc;
}
