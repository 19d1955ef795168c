/*
 * test_kafka_exporter.c -- the kafka exporter against a Kafka mock cluster
 * in its own process (halo-kafka-mock, over TCP like a real broker).
 *
 * Each test starts a mock ($HALO_KAFKA_MOCK, or halo-kafka-mock next to
 * this binary) with its topics and --commands (down/up on its stdin), creates
 * the exporter component directly from YAML, hands it batches of hand-built
 * spans whose acks record their final status, and then reads the topic back
 * with a librdkafka consumer: every message is decoded with the OTLP
 * decoders and checked span by span against what was sent, its key against
 * its spans' trace id, its partition against the other messages of the
 * trace, its size against max_message_bytes. Waits poll a condition with a
 * deadline; the one deliberate pause checks that an ack does NOT come while
 * the broker is down.
 */
#include "core/clock.h"
#include "harness.h"
#include "kafka_mock.h"

#include "core/batch.h"
#include "core/component.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "receivers/otlp/otlp_codec.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const halo_component_def halo_exporter_kafka;

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

static void nap(void)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

/* ---- the exporter under test --------------------------------------------- */

typedef struct kx {
    halo_component c;
    void *cfg;
    halo_node *root;
    bool created;
} kx;

/* Fill the config from yaml, create the exporter, start it when asked. */
static halo_status kx_open(kx *x, const char *id, const char *yaml, bool start,
                           halo_err *err)
{
    memset(x, 0, sizeof *x);
    const halo_component_def *def = &halo_exporter_kafka;
    halo_errlist errs = {0};
    x->root = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    x->cfg = calloc(1, def->cfg_size);
    bool ok = x->root && halo_config_apply(def->schema, x->root, x->cfg,
                                           "exporters.kafka", &errs);
    if (!ok) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "config error");
        halo_errlist_free(&errs);
        return HALO_EINVAL;
    }
    halo_errlist_free(&errs);
    x->c.def = def;
    x->c.id = (char *)id;
    x->c.log_prefix = (char *)"exporter:kafka";
    x->c.cfg = x->cfg;
    halo_status st = def->create(&x->c, err);
    x->created = x->c.ctx != NULL;
    if (st != HALO_OK)
        return st;
    return start ? def->start(&x->c, err) : HALO_OK;
}

static void kx_close(kx *x)
{
    if (x->created) {
        x->c.def->shutdown(&x->c);
        x->c.def->shutdown(&x->c); /* safe twice */
        x->c.def->destroy(&x->c);
    }
    if (x->cfg)
        halo_config_release(halo_exporter_kafka.schema, x->cfg);
    free(x->cfg);
    halo_node_free(x->root);
    memset(x, 0, sizeof *x);
}

static halo_status kx_consume(kx *x, halo_batch *b)
{
    return x->c.def->consume(&x->c, b);
}

/* ---- spans --------------------------------------------------------------- */

/* Span S of trace T: ids, names and attributes all follow from (T, S), so
 * a decoded span can be checked without keeping the sent ones. */
static halo_kv res_attr = {
    .key = "service.name",
    .value = {.type = HALO_VAL_STRING, .u.s = {"svc-kafka", 9}}};
static halo_resource resource = {.attrs = {&res_attr, 1}, .schema_url = ""};
static halo_scope scope = {
    .name = "kafka-test", .version = "1", .schema_url = ""};

static void trace_id_of(int t, uint8_t id[16])
{
    for (int k = 0; k < 16; k++)
        id[k] = (uint8_t)(0x10 + k);
    id[0] = 0xa0;
    id[1] = (uint8_t)(t >> 8);
    id[2] = (uint8_t)t;
}

static void span_id_of(int t, int s, uint8_t id[8])
{
    uint8_t v[8] = {0xb0,       (uint8_t)(t >> 8),
                    (uint8_t)t, (uint8_t)(s >> 8),
                    (uint8_t)s, 1,
                    2,          3};
    memcpy(id, v, 8);
}

static void make_span(halo_arena *a, halo_span *sp, int t, int s, size_t pad)
{
    memset(sp, 0, sizeof *sp);
    trace_id_of(t, sp->trace_id);
    span_id_of(t, s, sp->span_id);
    if (s > 0)
        span_id_of(t, 0, sp->parent_span_id);
    char name[64];
    snprintf(name, sizeof name, "span-%d-%d", t, s);
    sp->name = halo_arena_strdup(a, name);
    sp->trace_state = "";
    sp->status_message = "";
    sp->kind = 1 + s % 5;
    sp->start_ns = 1700000000000000000ull + (uint64_t)t * 1000000 + (uint64_t)s;
    sp->end_ns = sp->start_ns + 1000 + (uint64_t)s;
    sp->status_code = s % 3;
    size_t n_attrs = pad ? 2 : 1;
    halo_kv *kv = halo_arena_calloc(a, n_attrs, sizeof *kv);
    kv[0].key = "seq";
    kv[0].value.type = HALO_VAL_INT;
    kv[0].value.u.i = (int64_t)t * 100000 + s;
    if (pad) {
        char *p = halo_arena_alloc(a, pad + 1);
        memset(p, 'x', pad);
        p[pad] = '\0';
        kv[1].key = "pad";
        kv[1].value.type = HALO_VAL_STRING;
        kv[1].value.u.s.ptr = p;
        kv[1].value.u.s.len = pad;
    }
    sp->attrs.items = kv;
    sp->attrs.n = n_attrs;
    sp->resource = &resource;
    sp->scope = &scope;
}

/* A batch of spans s0 .. s0+per-1 of traces t0 .. t0+n_traces-1, the spans
 * of a trace interleaved with the others' and spread over two chunks; span
 * (t0, s0) gets `big_pad` bytes of padding when non-zero. One ack, on r. */
static halo_batch *make_batch(int t0, int n_traces, int s0, int per, size_t pad,
                              size_t big_pad, halo_test_ack *r)
{
    halo_batch *b = halo_batch_new();
    size_t total = (size_t)n_traces * (size_t)per, half = total / 2;
    size_t i = 0;
    halo_arena *a[2] = {halo_arena_new(0), halo_arena_new(0)};
    halo_span *sp[2] = {
        halo_arena_calloc(a[0], half ? half : 1, sizeof(halo_span)),
        halo_arena_calloc(a[1], total - half, sizeof(halo_span))};
    for (int s = s0; s < s0 + per; s++)
        for (int t = t0; t < t0 + n_traces; t++, i++) {
            int c = i < half ? 0 : 1;
            size_t at = c ? i - half : i;
            size_t p = t == t0 && s == s0 && big_pad ? big_pad : pad;
            make_span(a[c], &sp[c][at], t, s, p);
        }
    if (half)
        halo_batch_add_chunk(b, a[0], sp[0], half);
    else
        halo_arena_free(a[0]);
    halo_batch_add_chunk(b, a[1], sp[1], total - half);
    halo_ack *ack = halo_ack_new(halo_test_on_ack, r);
    halo_batch_add_ack(b, ack);
    halo_ack_unref(ack);
    return b;
}

/* ---- reading the topic back ---------------------------------------------- */

#define MAX_TRACES 256
#define MAX_SPANS 256

typedef struct readback {
    int encoding_json;
    size_t max_bytes;
    bool keyed;
    int msgs;
    int oversize_msgs; /* single spans over max_bytes */
    int spans;
    int partition[MAX_TRACES]; /* -1: not seen */
    int partitions_used;
    unsigned char seen[MAX_TRACES][MAX_SPANS];
    char why[1024]; /* first problem */
} readback;

static void rb_init(readback *rb, bool json, size_t max_bytes, bool keyed)
{
    memset(rb, 0, sizeof *rb);
    rb->encoding_json = json;
    rb->max_bytes = max_bytes;
    rb->keyed = keyed;
    for (int t = 0; t < MAX_TRACES; t++)
        rb->partition[t] = -1;
}

#define RB_FAIL(rb, ...)                                                       \
    do {                                                                       \
        if (!(rb)->why[0])                                                     \
            snprintf((rb)->why, sizeof(rb)->why, __VA_ARGS__);                 \
        return;                                                                \
    } while (0)

/* One decoded span against what (T, S) says it must be. */
static void check_span(readback *rb, const halo_span *sp, int partition,
                       const rd_kafka_message_t *m)
{
    int t, s;
    if (!sp->name || sscanf(sp->name, "span-%d-%d", &t, &s) != 2 || t < 0 ||
        t >= MAX_TRACES || s < 0 || s >= MAX_SPANS)
        RB_FAIL(rb, "unexpected span name %s", sp->name ? sp->name : "(null)");
    uint8_t tid[16], sid[8], pid[8] = {0};
    trace_id_of(t, tid);
    span_id_of(t, s, sid);
    if (s > 0)
        span_id_of(t, 0, pid);
    if (memcmp(sp->trace_id, tid, 16) || memcmp(sp->span_id, sid, 8) ||
        memcmp(sp->parent_span_id, pid, 8))
        RB_FAIL(rb, "%s: ids differ", sp->name);
    uint64_t start =
        1700000000000000000ull + (uint64_t)t * 1000000 + (uint64_t)s;
    if (sp->start_ns != start || sp->end_ns != start + 1000 + (uint64_t)s ||
        sp->kind != 1 + s % 5 || sp->status_code != s % 3)
        RB_FAIL(rb, "%s: times, kind or status differ", sp->name);
    const halo_value *seq = halo_attrs_get(&sp->attrs, "seq");
    if (!seq || seq->type != HALO_VAL_INT ||
        seq->u.i != (int64_t)t * 100000 + s)
        RB_FAIL(rb, "%s: attribute seq differs", sp->name);
    const halo_value *svc =
        halo_attrs_get(&sp->resource->attrs, "service.name");
    if (!svc || strcmp(svc->u.s.ptr, "svc-kafka") != 0 ||
        strcmp(sp->scope->name, "kafka-test") != 0)
        RB_FAIL(rb, "%s: resource or scope differs", sp->name);
    if (rb->keyed) {
        char hex[33];
        halo_hex_encode(tid, 16, hex);
        if (m->key_len != 32 || memcmp(m->key, hex, 32) != 0)
            RB_FAIL(rb, "%s: message key \"%.*s\", expected %s", sp->name,
                    (int)m->key_len, m->key ? (const char *)m->key : "", hex);
        if (rb->partition[t] >= 0 && rb->partition[t] != partition)
            RB_FAIL(rb, "trace %d in partitions %d and %d", t, rb->partition[t],
                    partition);
    } else if (m->key) {
        RB_FAIL(rb, "unkeyed message has a key");
    }
    if (rb->partition[t] < 0)
        rb->partition[t] = partition;
    if (rb->seen[t][s]++)
        RB_FAIL(rb, "%s delivered twice", sp->name);
    rb->spans++;
    rb->partitions_used |= 1 << (partition & 31);
}

static void check_message(readback *rb, const rd_kafka_message_t *m)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result res;
    halo_err err = {{0}};
    memset(&res, 0, sizeof res);
    halo_status st =
        rb->encoding_json
            ? halo_otlp_decode_json(m->payload, m->len, a, &res, &err)
            : halo_otlp_decode_pb(m->payload, m->len, a, &res, &err);
    rb->msgs++;
    if (st != HALO_OK || res.rejected || res.n == 0) {
        if (!rb->why[0])
            snprintf(rb->why, sizeof rb->why,
                     "message %d does not decode: %.400s", rb->msgs, err.msg);
    } else if (m->len > rb->max_bytes && res.n != 1) {
        if (!rb->why[0])
            snprintf(rb->why, sizeof rb->why,
                     "message of %zu bytes (> %zu) holds %zu spans", m->len,
                     rb->max_bytes, res.n);
    } else {
        if (m->len > rb->max_bytes)
            rb->oversize_msgs++;
        for (size_t i = 0; i < res.n; i++)
            check_span(rb, &res.spans[i], m->partition, m);
    }
    halo_arena_free(a);
}

/* Consume every message of topic (n_parts partitions) into rb. */
static bool read_topic(const char *bootstrap, const char *topic, int n_parts,
                       readback *rb)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                      sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "kexp-test", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                      sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        snprintf(rb->why, sizeof rb->why, "consumer: %.400s", errstr);
        return false;
    }
    long long total = 0;
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(n_parts);
    for (int p = 0; p < n_parts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e) {
            snprintf(rb->why, sizeof rb->why, "watermarks %s[%d]: %s", topic, p,
                     rd_kafka_err2str(e));
            break;
        }
        total += hi - lo;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    bool ok = !rb->why[0] && rd_kafka_assign(rk, parts) == 0;
    uint64_t end = now_ms() + 15000;
    long long got = 0;
    while (ok && got < total && now_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            got++;
            check_message(rb, m);
        }
        rd_kafka_message_destroy(m);
    }
    if (ok && got < total && !rb->why[0])
        snprintf(rb->why, sizeof rb->why, "read %lld of %lld messages", got,
                 total);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return !rb->why[0];
}

/* Every span of traces [t0, t0+n) with `per` spans seen exactly once. */
static bool rb_complete(readback *rb, int t0, int n, int per)
{
    for (int t = t0; t < t0 + n; t++)
        for (int s = 0; s < per; s++)
            if (rb->seen[t][s] != 1) {
                snprintf(rb->why, sizeof rb->why, "span-%d-%d seen %d times", t,
                         s, rb->seen[t][s]);
                return false;
            }
    return true;
}

#define CHECK_RB(rb, cond)                                                     \
    do {                                                                       \
        if (!(cond))                                                           \
            fprintf(stderr, "  readback: %s\n", (rb)->why);                    \
        CHECK(cond);                                                           \
    } while (0)

static double metric_of(const char *name, const char *id)
{
    char labels[128];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", id);
    return halo_metric_value(halo_counter(name, "", labels));
}

/* ---- tests --------------------------------------------------------------- */

/* (1) the answer waits for the broker's acknowledgement, and what was
 * acknowledged reads back as exactly the spans sent, keyed by trace */
TEST(ok_only_after_delivery_and_spans_read_back)
{
    kafka_mock m;
    CHECK(kafka_mock_start(&m, (const char *const[]){"otlp_spans:4", NULL}));
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "brokers: [\"%s\"]\n"
             "timeout: 30s\n"
             "rdkafka.reconnect.backoff.ms: 20\n"
             "rdkafka.reconnect.backoff.max.ms: 200\n",
             m.bootstrap);
    kx x;
    halo_err err = {{0}};
    halo_status st = kx_open(&x, "kafka/ok", yaml, true, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);

    halo_test_ack r1, r2;
    halo_test_ack_init(&r1);
    halo_test_ack_init(&r2);
    CHECK_INT(kx_consume(&x, make_batch(0, 10, 0, 4, 20, 0, &r1)), HALO_OK);
    CHECK(halo_test_ack_wait(&r1, 1, 15000));
    CHECK_INT(r1.st, HALO_OK);

    /* broker down: the batch is accepted, but no answer comes */
    CHECK(kafka_mock_cmd(&m, "down"));
    CHECK_INT(kx_consume(&x, make_batch(10, 10, 0, 4, 20, 0, &r2)), HALO_OK);
    uint64_t until = now_ms() + 700;
    while (now_ms() < until) {
        CHECK_INT(halo_test_ack_calls(&r2), 0);
        nap();
    }
    CHECK(kafka_mock_cmd(&m, "up"));
    CHECK(halo_test_ack_wait(&r2, 1, 20000));
    if (r2.st != HALO_OK)
        fprintf(stderr, "  %s\n", r2.msg);
    CHECK_INT(r2.st, HALO_OK);
    CHECK_INT(halo_test_ack_calls(&r2), 1);
    CHECK(metric_of("halo_exporter_sent_spans_total", "kafka/ok") == 80);

    readback *rb = malloc(sizeof *rb);
    rb_init(rb, false, 1000000, true);
    bool ok = read_topic(m.bootstrap, "otlp_spans", 4, rb);
    CHECK_RB(rb, ok);
    CHECK_RB(rb, rb_complete(rb, 0, 20, 4));
    CHECK_INT(rb->spans, 80);
    CHECK_INT(rb->msgs, 20); /* one message per trace */
    free(rb);
    kx_close(&x);
    kafka_mock_stop(&m);
}

/* (2) one message per trace, keyed by the trace id in hex; a trace in one
 * partition, the traces spread over several */
TEST(keys_are_trace_ids_and_traces_keep_one_partition)
{
    kafka_mock m;
    CHECK(kafka_mock_start(&m, (const char *const[]){"keyed:4", NULL}));
    char yaml[512];
    snprintf(yaml, sizeof yaml, "brokers: [\"%s\"]\ntopic: keyed\n",
             m.bootstrap);
    kx x;
    halo_err err = {{0}};
    CHECK_INT(kx_open(&x, "kafka/keys", yaml, true, &err), HALO_OK);
    halo_test_ack r[3];
    for (int i = 0; i < 3; i++) {
        halo_test_ack_init(&r[i]);
        /* spans 3i..3i+2 of the same 40 traces in each batch: later spans
         * of a trace must follow the first ones into their partition */
        CHECK_INT(kx_consume(&x, make_batch(0, 40, 3 * i, 3, 0, 0, &r[i])),
                  HALO_OK);
        CHECK(halo_test_ack_wait(&r[i], 1, 15000));
        CHECK_INT(r[i].st, HALO_OK);
    }
    readback *rb = malloc(sizeof *rb);
    rb_init(rb, false, 1000000, true);
    bool ok = read_topic(m.bootstrap, "keyed", 4, rb);
    CHECK_RB(rb, ok);
    CHECK_RB(rb, rb_complete(rb, 0, 40, 9));
    CHECK_INT(rb->msgs, 120); /* one per trace per batch */
    CHECK(__builtin_popcount((unsigned)rb->partitions_used) > 1);
    free(rb);
    kx_close(&x);
    kafka_mock_stop(&m);
}

/* consume() from several receiver threads at once: every batch answered
 * OK, every span delivered once; an empty batch is answered OK at once */
typedef struct worker {
    kx *x;
    int t0;
    halo_test_ack acks[10];
    int refused;
} worker;

static void *consume_many(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 10; i++) {
        halo_test_ack_init(&w->acks[i]);
        /* 10 batches of 5 traces, 2 spans each */
        if (kx_consume(w->x, make_batch(w->t0 + 5 * i, 5, 0, 2, 10, 0,
                                        &w->acks[i])) != HALO_OK)
            w->refused++;
    }
    return NULL;
}

TEST(concurrent_consumers)
{
    kafka_mock m;
    CHECK(kafka_mock_start(&m, (const char *const[]){"many:3", NULL}));
    char yaml[512];
    snprintf(yaml, sizeof yaml, "brokers: [\"%s\"]\ntopic: many\n",
             m.bootstrap);
    kx x;
    halo_err err = {{0}};
    CHECK_INT(kx_open(&x, "kafka/many", yaml, true, &err), HALO_OK);

    halo_test_ack r0;
    halo_test_ack_init(&r0);
    halo_batch *empty = halo_batch_new();
    halo_ack *ack = halo_ack_new(halo_test_on_ack, &r0);
    halo_batch_add_ack(empty, ack);
    halo_ack_unref(ack);
    CHECK_INT(kx_consume(&x, empty), HALO_OK);
    CHECK_INT(halo_test_ack_calls(&r0), 1);
    CHECK_INT(r0.st, HALO_OK);

    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].x = &x;
        w[i].t0 = 50 * i;
        CHECK(pthread_create(&th[i], NULL, consume_many, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK_INT(w[i].refused, 0);
        for (int k = 0; k < 10; k++) {
            CHECK(halo_test_ack_wait(&w[i].acks[k], 1, 15000));
            CHECK_INT(w[i].acks[k].st, HALO_OK);
            CHECK_INT(halo_test_ack_calls(&w[i].acks[k]), 1);
        }
    }
    CHECK(metric_of("halo_exporter_sent_spans_total", "kafka/many") == 400);
    kx_close(&x);

    readback *rb = malloc(sizeof *rb);
    rb_init(rb, false, 1000000, true);
    bool ok = read_topic(m.bootstrap, "many", 3, rb);
    CHECK_RB(rb, ok);
    CHECK_RB(rb, rb_complete(rb, 0, 200, 2));
    CHECK_INT(rb->msgs, 200);
    free(rb);
    kafka_mock_stop(&m);
}

/* (3) requests over max_message_bytes become several messages under it;
 * a single span over it goes alone; nothing is lost */
TEST(large_requests_are_split_never_refused)
{
    kafka_mock m;
    CHECK(kafka_mock_start(
        &m, (const char *const[]){"split:2", "unkeyed:3", NULL}));
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "brokers: [\"%s\"]\ntopic: split\nmax_message_bytes: 4096\n",
             m.bootstrap);
    kx x;
    halo_err err = {{0}};
    CHECK_INT(kx_open(&x, "kafka/split", yaml, true, &err), HALO_OK);
    halo_test_ack r1;
    halo_test_ack_init(&r1);
    /* one trace of 200 spans, ~100 bytes each: ~20 KB */
    CHECK_INT(kx_consume(&x, make_batch(0, 1, 0, 200, 60, 0, &r1)), HALO_OK);
    CHECK(halo_test_ack_wait(&r1, 1, 15000));
    CHECK_INT(r1.st, HALO_OK);
    kx_close(&x);

    readback *rb = malloc(sizeof *rb);
    rb_init(rb, false, 4096, true);
    bool ok = read_topic(m.bootstrap, "split", 2, rb);
    CHECK_RB(rb, ok);
    CHECK_RB(rb, rb_complete(rb, 0, 1, 200));
    CHECK(rb->msgs >= 5);
    CHECK_INT(rb->oversize_msgs, 0);

    /* unkeyed, OTLP/JSON, with one 10 KB span among 3 traces */
    snprintf(yaml, sizeof yaml,
             "brokers: [\"%s\"]\ntopic: unkeyed\nmax_message_bytes: 4096\n"
             "partition_traces_by_id: false\nencoding: otlp_json\n"
             "compression: zstd\n",
             m.bootstrap);
    CHECK_INT(kx_open(&x, "kafka/unkeyed", yaml, true, &err), HALO_OK);
    halo_test_ack r2;
    halo_test_ack_init(&r2);
    CHECK_INT(kx_consume(&x, make_batch(0, 3, 0, 30, 40, 10000, &r2)), HALO_OK);
    CHECK(halo_test_ack_wait(&r2, 1, 15000));
    CHECK_INT(r2.st, HALO_OK);
    kx_close(&x);
    rb_init(rb, true, 4096, false);
    ok = read_topic(m.bootstrap, "unkeyed", 3, rb);
    CHECK_RB(rb, ok);
    CHECK_RB(rb, rb_complete(rb, 0, 3, 30));
    CHECK_INT(rb->oversize_msgs, 1);
    CHECK(rb->msgs >= 4);
    free(rb);

    /* a lone span larger than what librdkafka may send (here lowered with
     * rdkafka.message.max.bytes): a permanent error naming the span */
    snprintf(yaml, sizeof yaml,
             "brokers: [\"%s\"]\ntopic: split\nmax_message_bytes: 4096\n"
             "rdkafka.message.max.bytes: 8000\n"
             "rdkafka.batch.size: 8000\n",
             m.bootstrap);
    CHECK_INT(kx_open(&x, "kafka/toobig", yaml, true, &err), HALO_OK);
    halo_test_ack r3;
    halo_test_ack_init(&r3);
    CHECK_INT(kx_consume(&x, make_batch(7, 1, 0, 3, 10, 20000, &r3)),
              HALO_EINVAL);
    CHECK(halo_test_ack_wait(&r3, 1, 15000));
    CHECK_INT(r3.st, HALO_EINVAL);
    char span[17];
    uint8_t sid[8];
    span_id_of(7, 0, sid);
    halo_hex_encode(sid, 8, span);
    CHECK_CONTAINS(r3.msg, span);
    kx_close(&x);
    kafka_mock_stop(&m);
}

/* (4) broker down longer than `timeout`: the answer is retryable, not OK;
 * once the broker is back a new batch goes through */
TEST(broker_down_fails_retryably_then_recovers)
{
    kafka_mock m;
    CHECK(kafka_mock_start(&m, (const char *const[]){"down:2", NULL}));
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "brokers: [\"%s\"]\ntopic: down\ntimeout: 1s\n"
             "rdkafka.reconnect.backoff.ms: 20\n"
             "rdkafka.reconnect.backoff.max.ms: 200\n",
             m.bootstrap);
    kx x;
    halo_err err = {{0}};
    CHECK_INT(kx_open(&x, "kafka/down", yaml, true, &err), HALO_OK);
    CHECK(kafka_mock_cmd(&m, "down"));
    halo_test_ack r1, r2;
    halo_test_ack_init(&r1);
    halo_test_ack_init(&r2);
    CHECK_INT(kx_consume(&x, make_batch(0, 5, 0, 2, 0, 0, &r1)), HALO_OK);
    CHECK(halo_test_ack_wait(&r1, 1, 15000));
    CHECK_INT(r1.st, HALO_ERETRY);
    CHECK_CONTAINS(r1.msg, "kafka: delivery to down failed");
    CHECK_CONTAINS(r1.msg, m.bootstrap); /* where it tried to deliver */
    CHECK(metric_of("halo_exporter_failed_spans_total", "kafka/down") == 10);

    CHECK(kafka_mock_cmd(&m, "up"));
    CHECK_INT(kx_consume(&x, make_batch(5, 5, 0, 2, 0, 0, &r2)), HALO_OK);
    CHECK(halo_test_ack_wait(&r2, 1, 20000));
    if (r2.st != HALO_OK)
        fprintf(stderr, "  %s\n", r2.msg);
    CHECK_INT(r2.st, HALO_OK);
    kx_close(&x);

    readback *rb = malloc(sizeof *rb);
    rb_init(rb, false, 1000000, true);
    bool ok = read_topic(m.bootstrap, "down", 2, rb);
    CHECK_RB(rb, ok);
    CHECK_RB(rb, rb_complete(rb, 5, 5, 2));
    free(rb);
    kafka_mock_stop(&m);
}

/* (5) over max_inflight_bytes a batch is refused at once, retryably;
 * (7) shutdown with undelivered messages answers them retryably and
 * returns without waiting for the message timeout */
TEST(inflight_budget_refuses_and_shutdown_answers_undelivered)
{
    kafka_mock m;
    CHECK(kafka_mock_start(&m, (const char *const[]){"budget:1", NULL}));
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "brokers: [\"%s\"]\ntopic: budget\ntimeout: 60s\n"
             "max_inflight_bytes: 1KiB\ndrain_timeout: 300ms\n",
             m.bootstrap);
    kx x;
    halo_err err = {{0}};
    CHECK_INT(kx_open(&x, "kafka/budget", yaml, true, &err), HALO_OK);
    CHECK(kafka_mock_cmd(&m, "down"));
    halo_test_ack r1, r2;
    halo_test_ack_init(&r1);
    halo_test_ack_init(&r2);
    CHECK_INT(kx_consume(&x, make_batch(0, 4, 0, 4, 100, 0, &r1)), HALO_OK);
    CHECK_INT(halo_test_ack_calls(&r1), 0);
    CHECK_INT(kx_consume(&x, make_batch(4, 1, 0, 1, 0, 0, &r2)), HALO_ERETRY);
    CHECK_INT(halo_test_ack_calls(&r2), 1); /* answered synchronously */
    CHECK_INT(r2.st, HALO_ERETRY);
    CHECK_CONTAINS(r2.msg, "max_inflight_bytes");
    CHECK_INT(halo_test_ack_calls(&r1), 0);

    uint64_t t0 = now_ms();
    x.c.def->shutdown(&x.c);
    CHECK(now_ms() - t0 < 10000);
    CHECK_INT(halo_test_ack_calls(&r1), 1);
    CHECK_INT(r1.st, HALO_ERETRY);
    CHECK_CONTAINS(r1.msg, "kafka: delivery to budget failed");

    halo_test_ack r3;
    halo_test_ack_init(&r3);
    CHECK_INT(kx_consume(&x, make_batch(5, 1, 0, 1, 0, 0, &r3)),
              HALO_ESHUTDOWN);
    CHECK_INT(r3.st, HALO_ESHUTDOWN);
    kx_close(&x);
    kafka_mock_stop(&m);
}

/* (6) rdkafka.* keys reach librdkafka at create(): a bad one is an error
 * naming it (what `halo validate` reports), and create never connects */
TEST(bad_rdkafka_keys_fail_create)
{
    kx x;
    halo_err err = {{0}};
    CHECK_INT(
        kx_open(&x, "kafka/bad",
                "brokers: [\"127.0.0.1:1\"]\nrdkafka.no.such.property: 1\n",
                false, &err),
        HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "rdkafka.no.such.property");
    kx_close(&x);
    memset(&err, 0, sizeof err);
    CHECK_INT(kx_open(&x, "kafka/bad",
                      "brokers: [\"127.0.0.1:1\"]\nrdkafka.linger.ms: banana\n",
                      false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "rdkafka.linger.ms");
    kx_close(&x);
    memset(&err, 0, sizeof err);
    CHECK_INT(
        kx_open(&x, "kafka/bad", "brokers: [\"nohostport\"]\n", false, &err),
        HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "brokers");
    kx_close(&x);

    /* a delivery report proves durability only with acks=all: an override
     * that weakens it (either spelling) is refused at create */
    memset(&err, 0, sizeof err);
    CHECK_INT(kx_open(&x, "kafka/bad",
                      "brokers: [\"127.0.0.1:1\"]\nrdkafka.acks: 1\n"
                      "rdkafka.enable.idempotence: false\n",
                      false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "rdkafka.acks");
    kx_close(&x);
    memset(&err, 0, sizeof err);
    CHECK_INT(kx_open(&x, "kafka/bad",
                      "brokers: [\"127.0.0.1:1\"]\n"
                      "rdkafka.request.required.acks: 0\n"
                      "rdkafka.enable.idempotence: false\n",
                      false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "acks");
    kx_close(&x);
    CHECK_INT(kx_open(&x, "kafka/bad",
                      "brokers: [\"127.0.0.1:1\"]\nrdkafka.acks: -1\n", false,
                      &err),
              HALO_OK);
    kx_close(&x);

    /* good keys: created, not started -- a batch is refused retryably */
    CHECK_INT(kx_open(&x, "kafka/bad",
                      "brokers: [\"127.0.0.1:1\"]\nrdkafka.linger.ms: 20\n",
                      false, &err),
              HALO_OK);
    halo_test_ack r;
    halo_test_ack_init(&r);
    CHECK_INT(kx_consume(&x, make_batch(0, 1, 0, 1, 0, 0, &r)), HALO_ERETRY);
    CHECK_INT(r.st, HALO_ERETRY);
    kx_close(&x);
}
