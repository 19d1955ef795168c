/*
 * test_otlp_receiver.c -- the OTLP receiver's answers, over real sockets.
 *
 * The receiver component is started on its own (create/start with a
 * schema-filled config) in front of a fake next component whose consume()
 * records the batch and completes it with a status the test chooses, at
 * once or later from the test thread (as an exporter thread would). A
 * gRPC core client and a plain-socket HTTP client then check the answer
 * mapping of DESIGN §4: OK (+ partial_success), UNAVAILABLE / 503 +
 * Retry-After, INVALID_ARGUMENT / 400, RESOURCE_EXHAUSTED / 413,
 * UNIMPLEMENTED, 404 / 405 / 415, and the drain at shutdown.
 */
#include "core/clock.h"
#include "harness.h"

#include "core/batch.h"
#include "core/buf.h"
#include "core/component.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/service.h"
#include "receivers/otlp/otlp_codec.h"
#include "receivers/otlp/otlp_internal.h"

#include "google/rpc/status.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

extern const halo_component_def halo_receiver_otlp;
extern const halo_component_def halo_extension_metrics;
extern const halo_component_def halo_extension_health_check;

#define EXPORT "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

/* ---- the fake next component ----------------------------------------- */

static struct {
    pthread_mutex_t mu;
    halo_status status; /* what consume answers */
    char msg[128];
    bool hold; /* keep batches for the test to complete */
    halo_batch *held[256];
    int n_held;
    int batches;
    int spans;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static halo_status fake_consume(halo_component *self, halo_batch *b)
{
    (void)self;
    pthread_mutex_lock(&fake.mu);
    fake.batches++;
    fake.spans += (int)b->n_spans;
    if (fake.hold && fake.n_held < 256) {
        fake.held[fake.n_held++] = b;
        pthread_mutex_unlock(&fake.mu);
        return HALO_OK;
    }
    halo_status st = fake.status;
    char msg[128];
    snprintf(msg, sizeof msg, "%s", fake.msg);
    pthread_mutex_unlock(&fake.mu);
    halo_batch_done(b, st, msg);
    return st;
}

static const halo_component_def fake_def = {
    .kind = HALO_EXPORTER,
    .type = "fake",
    .consume = fake_consume,
};

static void fake_reset(halo_status st, const char *msg, bool hold)
{
    pthread_mutex_lock(&fake.mu);
    fake.status = st;
    snprintf(fake.msg, sizeof fake.msg, "%s", msg);
    fake.hold = hold;
    fake.n_held = 0;
    fake.batches = 0;
    fake.spans = 0;
    pthread_mutex_unlock(&fake.mu);
}

static int fake_get(int *what)
{
    pthread_mutex_lock(&fake.mu);
    int v = *what;
    pthread_mutex_unlock(&fake.mu);
    return v;
}

/* Complete every held batch with st. */
static int fake_release(halo_status st, const char *msg)
{
    pthread_mutex_lock(&fake.mu);
    int n = fake.n_held;
    halo_batch *b[256];
    memcpy(b, fake.held, (size_t)n * sizeof *b);
    fake.n_held = 0;
    pthread_mutex_unlock(&fake.mu);
    for (int i = 0; i < n; i++)
        halo_batch_done(b[i], st, msg);
    return n;
}

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

/* Poll *what until it reaches want (5 s deadline). */
static bool wait_held(int want)
{
    uint64_t end = now_ms() + 5000;
    while (now_ms() < end) {
        if (fake_get(&fake.n_held) >= want)
            return true;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* Poll until nothing accepts connections on 127.0.0.1:port (5 s). */
static bool wait_port_closed(int port)
{
    uint64_t end = now_ms() + 5000;
    while (now_ms() < end) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
        if (rc != 0)
            return true;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* ---- the receiver under test ------------------------------------------ */

typedef struct rx {
    halo_component c;
    halo_component next;
    halo_component *nexts[1];
    void *cfg;
    halo_node *root;
    bool created;
} rx;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Fill the config from yaml and create the component; start when asked.
 * Returns the first error (create, then start) or HALO_OK. */
static halo_status rx_open(rx *r, const halo_component_def *def,
                           const char *yaml, bool start, halo_err *err)
{
    memset(r, 0, sizeof *r);
    halo_errlist errs = {0};
    r->root = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    r->cfg = calloc(1, def->cfg_size);
    bool ok = r->root && halo_config_apply(def->schema, r->root, r->cfg,
                                           "receivers.otlp", &errs);
    if (!ok) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "config error");
        halo_errlist_free(&errs);
        return HALO_EINVAL;
    }
    halo_errlist_free(&errs);
    r->next.def = &fake_def;
    r->next.id = (char *)"fake";
    r->next.log_prefix = (char *)"exporter:fake";
    r->nexts[0] = &r->next;
    r->c.def = def;
    r->c.id = (char *)def->type;
    r->c.log_prefix =
        (char *)(def == &halo_receiver_otlp ? "receiver:otlp" : "extension");
    r->c.cfg = r->cfg;
    r->c.next = r->nexts;
    r->c.n_next = 1;
    halo_status st = def->create(&r->c, err);
    if (st != HALO_OK)
        return st;
    r->created = true;
    return start ? def->start(&r->c, err) : HALO_OK;
}

static void rx_close(rx *r)
{
    if (r->created) {
        r->c.def->shutdown(&r->c);
        r->c.def->shutdown(&r->c); /* safe twice */
        r->c.def->destroy(&r->c);
    }
    if (r->cfg)
        halo_config_release(
            r->c.def ? r->c.def->schema : halo_receiver_otlp.schema, r->cfg);
    free(r->cfg);
    halo_node_free(r->root);
    r->cfg = NULL;
    r->root = NULL;
}

static halo_status rx_grpc(rx *r, int port, const char *extra, halo_err *err)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "protocols:\n  grpc:\n    endpoint: 127.0.0.1:%d\n%s", port,
             extra ? extra : "");
    return rx_open(r, &halo_receiver_otlp, yaml, true, err);
}

static halo_status rx_http(rx *r, int port, const char *extra, halo_err *err)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "protocols:\n  http:\n    endpoint: 127.0.0.1:%d\n%s", port,
             extra ? extra : "");
    return rx_open(r, &halo_receiver_otlp, yaml, true, err);
}

/* ---- request bodies ---------------------------------------------------- */

static halo_resource resource;
static halo_scope scope = {.name = "test", .version = "1", .schema_url = ""};
static halo_kv res_attr = {
    .key = "service.name",
    .value = {.type = HALO_VAL_STRING, .u.s = {"svc", 3}}};

/* n spans; when bad >= 0, span number `bad` has an all-zero span id. */
static void make_spans(halo_span *s, int n, int bad)
{
    resource.attrs.items = &res_attr;
    resource.attrs.n = 1;
    resource.schema_url = "";
    memset(s, 0, (size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 16; k++)
            s[i].trace_id[k] = (uint8_t)(k + 1);
        if (i != bad)
            for (int k = 0; k < 8; k++)
                s[i].span_id[k] = (uint8_t)(i * 8 + k + 1);
        s[i].trace_state = "";
        s[i].name = "step";
        s[i].kind = 1;
        s[i].start_ns = 1700000000000000000ull + (uint64_t)i;
        s[i].end_ns = s[i].start_ns + 1000;
        s[i].status_message = "";
        s[i].resource = &resource;
        s[i].scope = &scope;
    }
}

static uint8_t *pb_body(int n, int bad, size_t *len)
{
    halo_span s[64];
    make_spans(s, n, bad);
    uint8_t *out = NULL;
    if (halo_otlp_encode_pb(s, (size_t)n, &out, len) != HALO_OK)
        return NULL;
    return out;
}

static char *json_body(int n, int bad, size_t *len)
{
    halo_span s[64];
    make_spans(s, n, bad);
    halo_buf b = HALO_BUF_INIT;
    if (halo_otlp_encode_json(s, (size_t)n, &b) != HALO_OK) {
        halo_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return halo_buf_steal(&b);
}

static uint8_t *gzip_bytes(const void *in, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, len) + 64;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- a gRPC client ----------------------------------------------------- */

typedef struct gres {
    grpc_status_code status;
    char details[512];
    uint8_t *msg;
    size_t msg_len;
    bool has_msg;
} gres;

static void gres_free(gres *g)
{
    free(g->msg);
    g->msg = NULL;
}

static bool grpc_call_once(int port, const char *method, const void *body,
                           size_t len, bool gzip, gres *out)
{
    memset(out, 0, sizeof *out);
    grpc_init(); /* the client's own reference */
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    grpc_arg arg;
    arg.type = GRPC_ARG_INTEGER;
    arg.key = (char *)GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM;
    arg.value.integer = GRPC_COMPRESS_GZIP;
    grpc_channel_args args = {1, &arg};
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, cr, gzip ? &args : NULL);
    grpc_channel_credentials_release(cr);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline = gpr_time_add(
        gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(15, GPR_TIMESPAN));
    grpc_slice m = grpc_slice_from_static_string(method);
    grpc_call *call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, deadline, NULL);
    grpc_slice bs = grpc_slice_from_copied_buffer(body, len);
    grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&bs, 1);
    grpc_slice_unref(bs);
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *resp = NULL;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &out->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    bool ok =
        grpc_call_start_batch(call, ops, 6, (void *)1, NULL) == GRPC_CALL_OK;
    if (ok) {
        grpc_event ev = grpc_completion_queue_pluck(
            cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        ok = ev.type == GRPC_OP_COMPLETE;
    }
    if (ok) {
        snprintf(out->details, sizeof out->details, "%.*s",
                 (int)GRPC_SLICE_LENGTH(details),
                 (const char *)GRPC_SLICE_START_PTR(details));
        if (resp) {
            grpc_byte_buffer_reader rd;
            grpc_byte_buffer_reader_init(&rd, resp);
            grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
            grpc_byte_buffer_reader_destroy(&rd);
            out->msg_len = GRPC_SLICE_LENGTH(all);
            out->msg = malloc(out->msg_len + 1);
            memcpy(out->msg, GRPC_SLICE_START_PTR(all), out->msg_len);
            out->has_msg = true;
            grpc_slice_unref(all);
            grpc_byte_buffer_destroy(resp);
        }
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_byte_buffer_destroy(req);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
               .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    return ok;
}

/* rejected_spans of an ExportTraceServiceResponse, -1 when unparsable. */
static int64_t response_rejected(const uint8_t *b, size_t n, char *msg,
                                 size_t size)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *r =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, n, b);
    if (!r)
        return -1;
    int64_t v = 0;
    msg[0] = '\0';
    if (r->partial_success) {
        v = r->partial_success->rejected_spans;
        snprintf(msg, size, "%s", r->partial_success->error_message);
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
        r, NULL);
    return v;
}

/* ---- an HTTP client ---------------------------------------------------- */

typedef struct hres {
    int status;
    char headers[2048];
    uint8_t *body;
    size_t body_len;
} hres;

static void hres_free(hres *h)
{
    free(h->body);
    h->body = NULL;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* One request on a fresh connection; head is the request line + headers
 * (without the blank line); body may be NULL. Reads until close. When
 * chunked, the body is sent with chunked transfer encoding. */
static bool http_do(int port, const char *head, const void *body, size_t len,
                    bool chunked, hres *out)
{
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return false;
    }
    char h[2048];
    if (chunked)
        snprintf(h, sizeof h,
                 "%s\r\nHost: x\r\nConnection: close\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 head);
    else
        snprintf(h, sizeof h,
                 "%s\r\nHost: x\r\nConnection: close\r\nContent-Length: "
                 "%zu\r\n\r\n",
                 head, len);
    bool sent = write_all(fd, h, strlen(h));
    if (sent && chunked) {
        for (size_t off = 0; sent && off < len; off += 4096) {
            size_t n = len - off < 4096 ? len - off : 4096;
            char cl[32];
            snprintf(cl, sizeof cl, "%zx\r\n", n);
            sent = write_all(fd, cl, strlen(cl)) &&
                   write_all(fd, (const char *)body + off, n) &&
                   write_all(fd, "\r\n", 2);
        }
        sent = sent && write_all(fd, "0\r\n\r\n", 5);
    } else if (sent && len) {
        sent = write_all(fd, body, len);
    }
    /* a server may answer early and close: read whatever came back */
    halo_buf in = HALO_BUF_INIT;
    char buf[8192];
    uint64_t end = now_ms() + 15000;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        halo_buf_append(&in, buf, (size_t)n);
    }
    close(fd);
    halo_buf_putc(&in, '\0');
    char *hdr_end = in.data ? strstr(in.data, "\r\n\r\n") : NULL;
    if (!hdr_end || sscanf(in.data, "HTTP/1.%*d %d", &out->status) != 1) {
        halo_buf_free(&in);
        return false;
    }
    size_t hl = (size_t)(hdr_end - in.data);
    snprintf(out->headers, sizeof out->headers, "%.*s", (int)hl, in.data);
    out->body_len = in.len - 1 - (hl + 4);
    out->body = malloc(out->body_len + 1);
    memcpy(out->body, hdr_end + 4, out->body_len);
    out->body[out->body_len] = '\0';
    halo_buf_free(&in);
    return true;
}

static bool http_post(int port, const char *type, const char *encoding,
                      const void *body, size_t len, hres *out)
{
    char head[512];
    snprintf(head, sizeof head,
             "POST /v1/traces HTTP/1.1\r\nContent-Type: %s%s%s", type,
             encoding ? "\r\nContent-Encoding: " : "",
             encoding ? encoding : "");
    return http_do(port, head, body, len, false, out);
}

/* google.rpc.Status from a protobuf body; false when unparsable. */
static bool rpc_status(const hres *h, int *code, char *msg, size_t size)
{
    Google__Rpc__Status *s =
        google__rpc__status__unpack(NULL, h->body_len, h->body);
    if (!s)
        return false;
    *code = s->code;
    snprintf(msg, size, "%s", s->message);
    google__rpc__status__free_unpacked(s, NULL);
    return true;
}

static double metric(const char *name, const char *labels)
{
    return halo_metric_value(halo_counter(name, "", labels));
}

/* ---- gRPC tests -------------------------------------------------------- */

TEST(grpc_export_ok_after_downstream_ok)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", false);
    CHECK_INT(rx_grpc(&r, port, NULL, &err), HALO_OK);
    size_t len;
    uint8_t *body = pb_body(3, -1, &len);
    CHECK(body);
    gres g;
    CHECK(grpc_call_once(port, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_OK);
    CHECK(g.has_msg);
    char msg[256];
    CHECK_INT(response_rejected(g.msg, g.msg_len, msg, sizeof msg), 0);
    CHECK_INT(fake_get(&fake.spans), 3);
    CHECK_INT(fake_get(&fake.batches), 1);
    CHECK(metric("halo_receiver_accepted_spans_total",
                 "receiver=\"otlp\",transport=\"grpc\"") >= 3);
    CHECK(metric("halo_receiver_requests_total",
                 "receiver=\"otlp\",transport=\"grpc\",code=\"OK\"") >= 1);
    gres_free(&g);
    free(body);
    rx_close(&r);
}

TEST(grpc_retry_is_unavailable)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_ERETRY, "queue full", false);
    CHECK_INT(rx_grpc(&r, port, NULL, &err), HALO_OK);
    size_t len;
    uint8_t *body = pb_body(2, -1, &len);
    gres g;
    CHECK(grpc_call_once(port, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_UNAVAILABLE);
    CHECK_CONTAINS(g.details, "queue full");
    gres_free(&g);
    fake_reset(HALO_ETOOBIG, "batch too large", false);
    CHECK(grpc_call_once(port, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    gres_free(&g);
    fake_reset(HALO_ENOTFOUND, "odd", false);
    CHECK(grpc_call_once(port, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_INTERNAL);
    gres_free(&g);
    free(body);
    rx_close(&r);
}

TEST(grpc_garbage_is_invalid_argument)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", false);
    CHECK_INT(rx_grpc(&r, port, NULL, &err), HALO_OK);
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    gres g;
    CHECK(grpc_call_once(port, EXPORT, junk, sizeof junk, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_INVALID_ARGUMENT);
    CHECK(g.details[0] != '\0');
    CHECK_INT(fake_get(&fake.batches), 0);
    gres_free(&g);
    rx_close(&r);
}

TEST(grpc_unknown_method_is_unimplemented)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    CHECK_INT(rx_grpc(&r, port, NULL, &err), HALO_OK);
    gres g;
    CHECK(grpc_call_once(port, "/x.Y/Z", "", 0, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_UNIMPLEMENTED);
    CHECK_STR(g.details, "unknown method /x.Y/Z");
    gres_free(&g);
    rx_close(&r);
}

TEST(grpc_oversized_is_resource_exhausted)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", false);
    CHECK_INT(rx_grpc(&r, port, "    max_recv_msg_size: 1KiB\n", &err),
              HALO_OK);
    size_t len;
    uint8_t *body = pb_body(40, -1, &len);
    CHECK(len > 1024);
    gres g;
    CHECK(grpc_call_once(port, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    CHECK_INT(fake_get(&fake.batches), 0);
    gres_free(&g);
    /* the server is still fine afterwards */
    free(body);
    body = pb_body(1, -1, &len);
    CHECK(len < 1024);
    CHECK(grpc_call_once(port, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_OK);
    gres_free(&g);
    free(body);
    rx_close(&r);
}

TEST(grpc_gzip_and_partial_success)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", false);
    CHECK_INT(rx_grpc(&r, port, NULL, &err), HALO_OK);
    size_t len;
    uint8_t *body = pb_body(50, 7, &len);
    gres g;
    CHECK(grpc_call_once(port, EXPORT, body, len, true, &g));
    CHECK_INT(g.status, GRPC_STATUS_OK);
    char msg[256];
    CHECK_INT(response_rejected(g.msg, g.msg_len, msg, sizeof msg), 1);
    CHECK(msg[0] != '\0');
    CHECK_INT(fake_get(&fake.spans), 49);
    gres_free(&g);
    free(body);
    /* every span rejected: answered at once, nothing emitted */
    fake_reset(HALO_OK, "", false);
    body = pb_body(1, 0, &len);
    CHECK(grpc_call_once(port, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_OK);
    CHECK_INT(response_rejected(g.msg, g.msg_len, msg, sizeof msg), 1);
    CHECK_INT(fake_get(&fake.batches), 0);
    gres_free(&g);
    free(body);
    /* empty request: success, nothing emitted */
    CHECK(grpc_call_once(port, EXPORT, "", 0, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_OK);
    CHECK_INT(response_rejected(g.msg, g.msg_len, msg, sizeof msg), 0);
    CHECK_INT(fake_get(&fake.batches), 0);
    gres_free(&g);
    rx_close(&r);
}

typedef struct client_job {
    int port;
    const uint8_t *body;
    size_t len;
    atomic_int result; /* 0 until answered; grpc or HTTP status, -1 error */
    bool http;
} client_job;

static void *client_thread(void *arg)
{
    client_job *j = arg;
    int result = -1;
    if (j->http) {
        hres h;
        if (http_post(j->port, "application/x-protobuf", NULL, j->body, j->len,
                      &h))
            result = h.status;
        hres_free(&h);
    } else {
        gres g;
        if (grpc_call_once(j->port, EXPORT, j->body, j->len, false, &g))
            result = (int)g.status;
        gres_free(&g);
    }
    atomic_store(&j->result, result);
    return NULL;
}

/* Answers wait for the ack, which comes later from another thread. */
static void concurrent_acks(int *halo_test_failed, bool http)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", true);
    CHECK_INT(http ? rx_http(&r, port, NULL, &err)
                   : rx_grpc(&r, port, NULL, &err),
              HALO_OK);
    size_t len;
    uint8_t *body = pb_body(5, -1, &len);
    enum { N = 12 };
    client_job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i].port = port;
        jobs[i].body = body;
        jobs[i].len = len;
        jobs[i].http = http;
        atomic_init(&jobs[i].result, 0);
        CHECK(pthread_create(&t[i], NULL, client_thread, &jobs[i]) == 0);
    }
    bool all_held = wait_held(N);
    /* nobody may have been answered before the ack */
    for (int i = 0; i < N; i++)
        CHECK_INT(atomic_load(&jobs[i].result), 0);
    CHECK_INT(fake_release(HALO_OK, ""), N);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    CHECK(all_held);
    for (int i = 0; i < N; i++)
        CHECK_INT(atomic_load(&jobs[i].result), http ? 200 : GRPC_STATUS_OK);
    free(body);
    rx_close(&r);
}

TEST(grpc_answers_wait_for_async_acks)
{
    concurrent_acks(halo_test_failed, false);
}

TEST(http_answers_wait_for_async_acks)
{
    concurrent_acks(halo_test_failed, true);
}

static void *shutdown_thread(void *arg)
{
    halo_component *c = arg;
    c->def->shutdown(c);
    return NULL;
}

/* Shutdown waits for in-flight requests and they get their real answer. */
static void drain_on_shutdown(int *halo_test_failed, bool http)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", true);
    CHECK_INT(http ? rx_http(&r, port, NULL, &err)
                   : rx_grpc(&r, port, NULL, &err),
              HALO_OK);
    size_t len;
    uint8_t *body = pb_body(2, -1, &len);
    client_job job = {.port = port, .body = body, .len = len, .http = http};
    atomic_init(&job.result, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_thread, &job) == 0);
    bool held = wait_held(1);
    pthread_t st;
    CHECK(pthread_create(&st, NULL, shutdown_thread, &r.c) == 0);
    /* once it stops accepting, it must still deliver this answer */
    bool closed = wait_port_closed(port);
    CHECK_INT(fake_release(HALO_OK, ""), held ? 1 : 0);
    pthread_join(st, NULL);
    pthread_join(t, NULL);
    CHECK(held);
    CHECK(closed);
    CHECK_INT(atomic_load(&job.result), http ? 200 : GRPC_STATUS_OK);
    /* and nothing listens any more */
    gres g;
    hres h;
    if (http)
        CHECK(!http_post(port, "application/x-protobuf", NULL, body, len, &h));
    else
        CHECK(grpc_call_once(port, EXPORT, body, len, false, &g) &&
              g.status == GRPC_STATUS_UNAVAILABLE);
    free(body);
    rx_close(&r);
}

TEST(grpc_shutdown_drains_in_flight)
{
    drain_on_shutdown(halo_test_failed, false);
}

TEST(http_shutdown_drains_in_flight)
{
    drain_on_shutdown(halo_test_failed, true);
}

/* A downstream that never answers: after the drain deadline the receiver
 * answers UNAVAILABLE / 503 itself and stops; the late ack is harmless. */
static void forced_on_deadline(int *halo_test_failed, bool http)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", true);
    CHECK_INT(http ? rx_http(&r, port, NULL, &err)
                   : rx_grpc(&r, port, NULL, &err),
              HALO_OK);
    size_t len;
    uint8_t *body = pb_body(2, -1, &len);
    client_job job = {.port = port, .body = body, .len = len, .http = http};
    atomic_init(&job.result, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_thread, &job) == 0);
    bool held = wait_held(1);
    uint64_t saved = otlp_drain_deadline_ns;
    otlp_drain_deadline_ns = 200000000u;
    r.c.def->shutdown(&r.c);
    otlp_drain_deadline_ns = saved;
    pthread_join(t, NULL);
    CHECK(held);
    CHECK_INT(atomic_load(&job.result), http ? 503 : GRPC_STATUS_UNAVAILABLE);
    rx_close(&r);
    /* the ack arrives after the receiver is gone */
    CHECK_INT(fake_release(HALO_OK, ""), 1);
    free(body);
}

TEST(grpc_shutdown_deadline_answers_unavailable)
{
    forced_on_deadline(halo_test_failed, false);
}

TEST(http_shutdown_deadline_answers_503)
{
    forced_on_deadline(halo_test_failed, true);
}

TEST(port_in_use_fails_start)
{
    rx a, b;
    halo_err err = {{0}};
    int port = free_port();
    CHECK_INT(rx_grpc(&a, port, NULL, &err), HALO_OK);
    CHECK(rx_grpc(&b, port, NULL, &err) != HALO_OK);
    char want[128];
    snprintf(want, sizeof want,
             "could not listen on 127.0.0.1:%d (grpc): address already in "
             "use",
             port);
    CHECK_STR(err.msg, want);
    rx_close(&b);
    rx_close(&a);
    CHECK_INT(rx_http(&a, port, NULL, &err), HALO_OK);
    CHECK(rx_http(&b, port, NULL, &err) != HALO_OK);
    snprintf(want, sizeof want,
             "could not listen on 127.0.0.1:%d (http): address already in "
             "use",
             port);
    CHECK_STR(err.msg, want);
    rx_close(&b);
    rx_close(&a);
}

/* Endpoints by name and IPv6 literal; gRPC and HTTP side by side. */
TEST(endpoint_forms)
{
    rx r;
    halo_err err = {{0}};
    int gport = free_port(), hport = free_port();
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "protocols:\n  grpc:\n    endpoint: localhost:%d\n"
             "  http:\n    endpoint: \"[::1]:%d\"\n",
             gport, hport);
    fake_reset(HALO_OK, "", false);
    CHECK_INT(rx_open(&r, &halo_receiver_otlp, yaml, true, &err), HALO_OK);
    size_t len;
    uint8_t *body = pb_body(1, -1, &len);
    gres g;
    CHECK(grpc_call_once(gport, EXPORT, body, len, false, &g));
    CHECK_INT(g.status, GRPC_STATUS_OK);
    gres_free(&g);
    /* HTTP listens on ::1 only: IPv4 loopback must not answer */
    hres h;
    CHECK(!http_post(hport, "application/x-protobuf", NULL, body, len, &h));
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                              .sin6_port = htons((uint16_t)hport)};
    a6.sin6_addr = in6addr_loopback;
    CHECK(connect(fd, (struct sockaddr *)&a6, sizeof a6) == 0);
    char req[256];
    snprintf(req, sizeof req,
             "POST /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Content-Type: application/x-protobuf\r\nContent-Length: "
             "%zu\r\n\r\n",
             len);
    CHECK(write_all(fd, req, strlen(req)) && write_all(fd, body, len));
    char resp[64] = {0};
    ssize_t n = recv(fd, resp, sizeof resp - 1, MSG_WAITALL);
    close(fd);
    CHECK(n > 12);
    CHECK_CONTAINS(resp, "HTTP/1.1 200");
    CHECK_INT(fake_get(&fake.batches), 2);
    free(body);
    rx_close(&r);
}

TEST(no_protocol_is_a_create_error)
{
    rx r;
    halo_err err = {{0}};
    CHECK(rx_open(&r, &halo_receiver_otlp, "protocols: {}\n", false, &err) ==
          HALO_EINVAL);
    CHECK_STR(err.msg, "receivers.otlp: no protocol configured (add "
                       "protocols.grpc or protocols.http)");
    rx_close(&r);
    CHECK(rx_open(&r, &halo_receiver_otlp, "{}\n", false, &err) == HALO_EINVAL);
    rx_close(&r);
}

TEST(config_defaults)
{
    rx r;
    halo_err err = {{0}};
    CHECK_INT(rx_open(&r, &halo_receiver_otlp,
                      "protocols:\n  grpc:\n  http: {}\n", false, &err),
              HALO_OK);
    const otlp_cfg *cfg = r.cfg;
    CHECK(cfg->protocols.grpc_present);
    CHECK(cfg->protocols.http_present);
    CHECK_STR(cfg->protocols.grpc.endpoint, "127.0.0.1:4317");
    CHECK_INT(cfg->protocols.grpc.max_recv_msg_size, 64 << 20);
    CHECK_INT(cfg->protocols.grpc.threads, 2);
    CHECK_STR(cfg->protocols.http.endpoint, "127.0.0.1:4318");
    CHECK_INT(cfg->protocols.http.max_request_body_size, 64 << 20);
    CHECK_STR(cfg->protocols.http.traces_url_path, "/v1/traces");
    CHECK_INT(cfg->protocols.http.threads, 2);
    rx_close(&r);
    CHECK_INT(
        rx_open(&r, &halo_receiver_otlp, "protocols:\n  http:\n", false, &err),
        HALO_OK);
    cfg = r.cfg;
    CHECK(!cfg->protocols.grpc_present);
    CHECK(cfg->protocols.http_present);
    rx_close(&r);
    halo_errlist errs = {0};
    const char *bad = "protocols:\n  grpc:\n    max_recv_msg_size: 10\n";
    halo_node *root = halo_config_parse(bad, strlen(bad), "t.yaml", &errs);
    CHECK(root);
    void *c = calloc(1, halo_receiver_otlp.cfg_size);
    CHECK(!halo_config_apply(halo_receiver_otlp.schema, root, c,
                             "receivers.otlp", &errs));
    CHECK(errs.n >= 1);
    CHECK_CONTAINS(errs.msgs[0], "max_recv_msg_size");
    halo_config_release(halo_receiver_otlp.schema, c);
    free(c);
    halo_node_free(root);
    halo_errlist_free(&errs);
}

/* ---- HTTP tests -------------------------------------------------------- */

TEST(http_protobuf_json_gzip_ok)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_OK, "", false);
    CHECK_INT(rx_http(&r, port, NULL, &err), HALO_OK);
    size_t len;
    uint8_t *body = pb_body(4, -1, &len);
    hres h;
    CHECK(http_post(port, "application/x-protobuf", NULL, body, len, &h));
    CHECK_INT(h.status, 200);
    CHECK_CONTAINS(h.headers, "application/x-protobuf");
    char msg[256];
    CHECK_INT(response_rejected(h.body, h.body_len, msg, sizeof msg), 0);
    CHECK_INT(fake_get(&fake.spans), 4);
    hres_free(&h);

    size_t zlen;
    uint8_t *z = gzip_bytes(body, len, &zlen);
    CHECK(z);
    CHECK(http_post(port, "application/x-protobuf", "gzip", z, zlen, &h));
    CHECK_INT(h.status, 200);
    CHECK_INT(fake_get(&fake.spans), 8);
    hres_free(&h);
    free(z);
    free(body);

    char *js = json_body(3, 1, &len);
    CHECK(js);
    CHECK(
        http_post(port, "application/json; charset=utf-8", NULL, js, len, &h));
    CHECK_INT(h.status, 200);
    CHECK_CONTAINS(h.headers, "application/json");
    CHECK_CONTAINS((char *)h.body, "partialSuccess");
    CHECK_CONTAINS((char *)h.body, "rejectedSpans");
    CHECK_INT(fake_get(&fake.spans), 10);
    hres_free(&h);
    free(js);
    CHECK(metric("halo_receiver_requests_total",
                 "receiver=\"otlp\",transport=\"http\",code=\"200\"") >= 3);
    rx_close(&r);
}

TEST(http_error_mapping)
{
    rx r;
    halo_err err = {{0}};
    int port = free_port();
    fake_reset(HALO_ERETRY, "memory limit reached", false);
    CHECK_INT(rx_http(&r, port, "    max_request_body_size: 4KiB\n", &err),
              HALO_OK);
    size_t len;
    uint8_t *body = pb_body(2, -1, &len);
    hres h;
    int code;
    char msg[256];

    /* refused downstream: 503 + Retry-After, Status body */
    CHECK(http_post(port, "application/x-protobuf", NULL, body, len, &h));
    CHECK_INT(h.status, 503);
    CHECK_CONTAINS(h.headers, "Retry-After: 1");
    CHECK(rpc_status(&h, &code, msg, sizeof msg));
    CHECK_INT(code, 14);
    CHECK_CONTAINS(msg, "memory limit reached");
    hres_free(&h);

    /* malformed protobuf: 400 naming the problem */
    fake_reset(HALO_OK, "", false);
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};
    CHECK(
        http_post(port, "application/x-protobuf", NULL, junk, sizeof junk, &h));
    CHECK_INT(h.status, 400);
    CHECK(rpc_status(&h, &code, msg, sizeof msg));
    CHECK_INT(code, 3);
    CHECK(msg[0] != '\0');
    hres_free(&h);

    /* malformed JSON: 400 with a JSON Status */
    CHECK(http_post(port, "application/json", NULL, "{\"resourceSpans\":", 17,
                    &h));
    CHECK_INT(h.status, 400);
    CHECK_CONTAINS((char *)h.body, "\"message\"");
    hres_free(&h);

    /* other path, other method */
    CHECK(http_do(port,
                  "POST /v1/metrics HTTP/1.1\r\nContent-Type: "
                  "application/json",
                  "{}", 2, false, &h));
    CHECK_INT(h.status, 404);
    hres_free(&h);
    CHECK(http_do(port, "GET /v1/traces HTTP/1.1", NULL, 0, false, &h));
    CHECK_INT(h.status, 405);
    CHECK_CONTAINS(h.headers, "Allow: POST");
    hres_free(&h);

    /* unsupported media type and encoding */
    CHECK(http_post(port, "text/plain", NULL, "hi", 2, &h));
    CHECK_INT(h.status, 415);
    hres_free(&h);
    CHECK(http_post(port, "application/x-protobuf", "br", body, len, &h));
    CHECK_INT(h.status, 415);
    hres_free(&h);

    /* too large: by Content-Length, chunked, and after inflating */
    uint8_t *big = calloc(1, 8192);
    CHECK(http_post(port, "application/x-protobuf", NULL, big, 8192, &h));
    CHECK_INT(h.status, 413);
    hres_free(&h);
    CHECK(http_do(port,
                  "POST /v1/traces HTTP/1.1\r\nContent-Type: "
                  "application/x-protobuf",
                  big, 8192, true, &h));
    CHECK_INT(h.status, 413);
    hres_free(&h);
    size_t zlen;
    uint8_t *z = gzip_bytes(big, 8192, &zlen);
    CHECK(zlen < 4096);
    CHECK(http_post(port, "application/x-protobuf", "gzip", z, zlen, &h));
    CHECK_INT(h.status, 413);
    hres_free(&h);
    free(z);

    /* corrupt gzip: 400 */
    CHECK(http_post(port, "application/x-protobuf", "gzip", "notgzip", 7, &h));
    CHECK_INT(h.status, 400);
    hres_free(&h);
    free(big);

    /* still serving afterwards */
    CHECK(http_post(port, "application/x-protobuf", NULL, body, len, &h));
    CHECK_INT(h.status, 200);
    hres_free(&h);
    free(body);
    CHECK_INT(fake_get(&fake.batches), 1);
    rx_close(&r);
}

/* ---- extensions -------------------------------------------------------- */

TEST(extensions_serve_metrics_and_health)
{
    rx m, hc;
    halo_err err = {{0}};
    char yaml[128];
    int mport = free_port(), hport = free_port();
    snprintf(yaml, sizeof yaml, "endpoint: 127.0.0.1:%d\n", mport);
    CHECK_INT(rx_open(&m, &halo_extension_metrics, yaml, true, &err), HALO_OK);
    snprintf(yaml, sizeof yaml, "endpoint: 127.0.0.1:%d\npath: /health\n",
             hport);
    CHECK_INT(rx_open(&hc, &halo_extension_health_check, yaml, true, &err),
              HALO_OK);
    halo_metric_add(halo_counter("halo_test_probe_total", "probe", NULL), 1);
    hres h;
    CHECK(http_do(mport, "GET /metrics HTTP/1.1", NULL, 0, false, &h));
    CHECK_INT(h.status, 200);
    CHECK_CONTAINS(h.headers, "text/plain; version=0.0.4");
    CHECK_CONTAINS((char *)h.body, "halo_test_probe_total");
    hres_free(&h);
    CHECK(http_do(mport, "GET /nope HTTP/1.1", NULL, 0, false, &h));
    CHECK_INT(h.status, 404);
    hres_free(&h);
    /* no service behind it: not ready */
    CHECK(http_do(hport, "GET /health HTTP/1.1", NULL, 0, false, &h));
    CHECK_INT(h.status, 503);
    CHECK_STR((char *)h.body, "{\"status\":\"Server not available\"}");
    hres_free(&h);
    rx_close(&hc);
    rx_close(&m);
}

/* A component that failed for good (halo_service_fail: the SQLite store
 * could not sync its log) turns the health check red with the reason,
 * for the rest of the service's life; the first reason is kept. */
TEST(health_check_reports_a_failed_component)
{
    int hport = free_port(), rport = free_port();
    char yaml[600];
    snprintf(yaml, sizeof yaml,
             "receivers:\n"
             "  otlp: {protocols: {http: {endpoint: 127.0.0.1:%d}}}\n"
             "exporters:\n"
             "  debug: {}\n"
             "extensions:\n"
             "  health_check: {endpoint: 127.0.0.1:%d}\n"
             "service:\n"
             "  pipelines:\n"
             "    traces: {receivers: [otlp], exporters: [debug]}\n",
             rport, hport);
    halo_errlist errs = {0}, warns = {0};
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    halo_service *svc = root ? halo_service_build(root, &errs, &warns) : NULL;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  %s\n", errs.msgs[i]);
    halo_errlist_free(&errs);
    halo_errlist_free(&warns);
    CHECK(svc);
    halo_err err = {{0}};
    CHECK_INT(halo_service_start(svc, HALO_START_EXTENSIONS, &err), HALO_OK);
    hres h;
    CHECK(http_do(hport, "GET / HTTP/1.1", NULL, 0, false, &h));
    CHECK_INT(h.status, 200);
    hres_free(&h);
    CHECK(halo_service_ready(svc));
    CHECK(!halo_service_failure(svc));
    halo_service_fail(svc, "could not sync \"x.db-wal\": I/O error");
    halo_service_fail(svc, "a later reason");
    CHECK(!halo_service_ready(svc));
    CHECK(http_do(hport, "GET / HTTP/1.1", NULL, 0, false, &h));
    CHECK_INT(h.status, 503);
    CHECK_STR((char *)h.body,
              "{\"status\":\"Server not available\",\"reason\":\"could not "
              "sync \\\"x.db-wal\\\": I/O error\"}");
    hres_free(&h);
    halo_service_fail(NULL, "ignored"); /* outside a service: nothing */
    halo_service_shutdown(svc);
    halo_service_free(svc);
    halo_node_free(root);
}
