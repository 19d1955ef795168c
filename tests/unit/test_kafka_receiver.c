/*
 * test_kafka_receiver.c -- the Kafka receiver's at-least-once promise,
 * against the mock cluster over TCP.
 *
 * Each test starts its own halo-kafka-mock process ($HALO_KAFKA_MOCK, or
 * the one next to this binary) with a 4-partition otlp_spans topic, reads
 * its "bootstrap" line and stops it by PID at the end. Messages are
 * produced by an rdkafka producer in the test (OTLP protobuf encoded with
 * halo_otlp_encode_pb), one partition chosen per message so the tests know
 * which offsets each partition holds.
 *
 * The receiver component is created directly (schema-filled config) in
 * front of a fake next component that records every batch's span ids and
 * completes it with a chosen status: at once, refused synchronously, or
 * held for the test to complete later -- in any order, as exporters do.
 * Committed offsets are read through a separate handle in the same group
 * (rd_kafka_committed, no membership).
 *
 * Proving "nothing was committed" needs no sleep: a witness message on
 * another partition is confirmed AFTER the one under test was (or was
 * not), and once the witness's offset shows up committed, any stored offset
 * of the partition under test would have travelled in the same auto-commit.
 */
#include "core/clock.h"
#include "harness.h"
#include "kafka_mock.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/buf.h"
#include "core/component.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "receivers/kafka/kafka_rx_internal.h"
#include "receivers/kafka/kafka_rx_offsets.h"
#include "receivers/otlp/otlp_codec.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const halo_component_def halo_receiver_kafka;

#define TOPIC "otlp_spans"
#define NO_OFFSET RD_KAFKA_OFFSET_INVALID /* nothing committed */

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ok = cond, polled every 10 ms until true or ms passed. */
#define WAIT_UNTIL(ok, cond, ms)                                               \
    do {                                                                       \
        uint64_t end_ = now_ms() + (ms);                                       \
        while (!((ok) = (cond)) && now_ms() < end_)                            \
            sleep_ms(10);                                                      \
    } while (0)

/* ---- the mock cluster, a process of its own (kafka_mock.h) ------------ */

static kafka_mock mock;

static void mock_stop(void)
{
    kafka_mock_stop(&mock);
}

/* Start a fresh cluster with otlp_spans:4 (and extra_topic when given);
 * fills mock.bootstrap. */
static bool mock_start(const char *extra_topic)
{
    mock_stop();
    const char *topics[] = {TOPIC ":4", extra_topic, NULL};
    return kafka_mock_start(&mock, topics);
}

/* Send a command ("down", "up") and wait for its "ok" answer. */
static bool mock_cmd(const char *cmd)
{
    return kafka_mock_cmd(&mock, cmd);
}

/* ---- the fake next component ------------------------------------------- */

#define MAX_IDS 8192
#define MAX_HELD 64

typedef struct fake {
    pthread_mutex_t mu;
    halo_status status; /* completes batches with this unless held */
    bool hold;          /* keep batches for the test to complete */
    int refuse;         /* refuse the next N synchronously (ERETRY) */
    uint64_t reject_id; /* batches holding this span id fail EINVAL */
    halo_batch *held[MAX_HELD];
    int n_held; /* held[] slots used (released ones become NULL) */
    int consumes;
    uint64_t ids[MAX_IDS]; /* span ids of every batch, in arrival order */
    int n_ids;
} fake;

static uint64_t id_of(const uint8_t b[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static bool has_id(const halo_batch *b, uint64_t id)
{
    HALO_BATCH_FOREACH(b, c, sp)
    if (id_of(sp->span_id) == id)
        return true;
    return false;
}

static halo_status fake_consume(halo_component *self, halo_batch *b)
{
    fake *f = self->ctx;
    pthread_mutex_lock(&f->mu);
    f->consumes++;
    HALO_BATCH_FOREACH(b, c, sp)
    if (f->n_ids < MAX_IDS)
        f->ids[f->n_ids++] = id_of(sp->span_id);
    if (f->refuse > 0) {
        f->refuse--;
        pthread_mutex_unlock(&f->mu);
        halo_batch_done(b, HALO_ERETRY, "queue full");
        return HALO_ERETRY;
    }
    if (f->reject_id && has_id(b, f->reject_id)) {
        pthread_mutex_unlock(&f->mu);
        halo_batch_done(b, HALO_EINVAL, "span rejected by the store");
        return HALO_OK;
    }
    if (f->hold && f->n_held < MAX_HELD) {
        f->held[f->n_held++] = b;
        pthread_mutex_unlock(&f->mu);
        return HALO_OK;
    }
    halo_status st = f->status;
    pthread_mutex_unlock(&f->mu);
    halo_batch_done(b, st, st == HALO_OK ? "" : "fake failure");
    return HALO_OK;
}

static const halo_component_def fake_def = {
    .kind = HALO_EXPORTER,
    .type = "fake",
    .consume = fake_consume,
};

static int fake_int(fake *f, const int *what)
{
    pthread_mutex_lock(&f->mu);
    int v = *what;
    pthread_mutex_unlock(&f->mu);
    return v;
}

/* How often span id arrived. */
static int fake_seen(fake *f, uint64_t id)
{
    pthread_mutex_lock(&f->mu);
    int n = 0;
    for (int i = 0; i < f->n_ids; i++)
        n += f->ids[i] == id;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Complete held batch i (false when there is none). */
static bool fake_release(fake *f, int i, halo_status st)
{
    pthread_mutex_lock(&f->mu);
    halo_batch *b = i < f->n_held ? f->held[i] : NULL;
    if (b)
        f->held[i] = NULL;
    pthread_mutex_unlock(&f->mu);
    if (b)
        halo_batch_done(b, st, st == HALO_OK ? "" : "fake failure");
    return b != NULL;
}

/* Stop holding and complete every held batch OK. */
static void fake_release_all(fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->hold = false;
    int n = f->n_held;
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < n; i++)
        fake_release(f, i, HALO_OK);
}

/* ---- the receiver under test ------------------------------------------- */

typedef struct rx {
    halo_component c;
    halo_component next;
    halo_component *nexts[1];
    void *cfg;
    halo_node *root;
    bool created;
    fake f;
    char id[32];
    char prefix[48];
} rx;

static rx *live[4]; /* closed by the next test when one failed midway */

static void rx_close(rx *r)
{
    if (r->created) {
        fake_release_all(&r->f);
        r->c.def->shutdown(&r->c);
        r->c.def->shutdown(&r->c); /* safe twice */
        r->c.def->destroy(&r->c);
        r->created = false;
    }
    if (r->cfg)
        halo_config_release(halo_receiver_kafka.schema, r->cfg);
    free(r->cfg);
    halo_node_free(r->root);
    r->cfg = NULL;
    r->root = NULL;
    for (int i = 0; i < 4; i++)
        if (live[i] == r)
            live[i] = NULL;
}

static void cleanup(void)
{
    for (int i = 0; i < 4; i++)
        if (live[i]) {
            rx *r = live[i];
            rx_close(r);
            free(r);
        }
    mock_stop();
}

/* The section's text with the test's defaults: the mock's brokers, short
 * commit interval and session timeout, short drain. */
static halo_status rx_open(rx *r, const char *id, const char *group,
                           const char *extra, bool start, halo_err *err)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->f.mu, NULL);
    r->f.status = HALO_OK;
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "brokers: [\"%s\"]\n"
             "group_id: %s\n"
             "commit_interval: 50ms\n"
             "%s"
             "rdkafka.session.timeout.ms: 3000\n"
             "rdkafka.heartbeat.interval.ms: 300\n"
             "rdkafka.topic.metadata.refresh.interval.ms: 1000\n"
             "%s",
             mock.bootstrap, group,
             extra && strstr(extra, "drain_timeout") ? ""
                                                     : "drain_timeout: 5s\n",
             extra ? extra : "");
    halo_errlist errs = {0};
    r->root = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    r->cfg = calloc(1, halo_receiver_kafka.cfg_size);
    bool ok = r->root && halo_config_apply(halo_receiver_kafka.schema, r->root,
                                           r->cfg, "receivers.kafka", &errs);
    if (!ok) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "config error");
        halo_errlist_free(&errs);
        return HALO_EINVAL;
    }
    halo_errlist_free(&errs);
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->prefix, sizeof r->prefix, "receiver:%s", id);
    r->next.def = &fake_def;
    r->next.id = (char *)"fake";
    r->next.log_prefix = (char *)"exporter:fake";
    r->next.ctx = &r->f;
    r->nexts[0] = &r->next;
    r->c.def = &halo_receiver_kafka;
    r->c.id = r->id;
    r->c.log_prefix = r->prefix;
    r->c.cfg = r->cfg;
    r->c.next = r->nexts;
    r->c.n_next = 1;
    halo_status st = halo_receiver_kafka.create(&r->c, err);
    if (st != HALO_OK)
        return st;
    r->created = true;
    for (int i = 0; i < 4; i++)
        if (!live[i]) {
            live[i] = r;
            break;
        }
    return start ? halo_receiver_kafka.start(&r->c, err) : HALO_OK;
}

static rx *rx_new(const char *id, const char *group, const char *extra)
{
    rx *r = calloc(1, sizeof *r);
    halo_err err = {{0}};
    if (rx_open(r, id, group, extra, true, &err) != HALO_OK) {
        fprintf(stderr, "  receiver: %s\n", err.msg);
        rx_close(r);
        free(r);
        return NULL;
    }
    return r;
}

static void rx_free(rx *r)
{
    if (r) {
        rx_close(r);
        free(r);
    }
}

/* Is any of the receiver's partitions being revoked? (white box) */
static bool rx_revoking(rx *r)
{
    krx_core *k = r->c.ctx;
    bool yes = false;
    pthread_mutex_lock(&k->mu);
    for (krx_part *p = k->parts; p; p = p->next)
        yes = yes || p->revoking;
    pthread_mutex_unlock(&k->mu);
    return yes;
}

/* The consumer handle, NULL once closed (white box). */
static rd_kafka_t *rx_consumer(rx *r)
{
    krx_core *k = r->c.ctx;
    pthread_mutex_lock(&k->mu);
    rd_kafka_t *rk = k->rk;
    pthread_mutex_unlock(&k->mu);
    return rk;
}

static double metric(const char *name, const char *labels)
{
    return halo_metric_value(halo_counter(name, "", labels));
}

static double gauge(const char *name, const char *labels)
{
    return halo_metric_value(halo_gauge(name, "", labels));
}

/* ---- producing and reading offsets ------------------------------------- */

static halo_resource resource;
static halo_scope scope = {.name = "test", .version = "1", .schema_url = ""};
static halo_kv res_attr = {
    .key = "service.name",
    .value = {.type = HALO_VAL_STRING, .u.s = {"svc", 3}}};

/* An ExportTraceServiceRequest of n spans with span ids first, first+1...
 * (span number `bad` gets an all-zero id: the decoder leaves it out). */
static uint8_t *otlp_msg(uint64_t first, int n, int bad, size_t *len)
{
    halo_span s[32];
    resource.attrs.items = &res_attr;
    resource.attrs.n = 1;
    resource.schema_url = "";
    memset(s, 0, sizeof s);
    for (int i = 0; i < n && i < 32; i++) {
        for (int k = 0; k < 16; k++)
            s[i].trace_id[k] = (uint8_t)(k + 1);
        uint64_t id = i == bad ? 0 : first + (uint64_t)i;
        for (int k = 0; k < 8; k++)
            s[i].span_id[k] = (uint8_t)(id >> (56 - 8 * k));
        s[i].trace_state = "";
        s[i].name = "step";
        s[i].kind = 1;
        s[i].start_ns = 1700000000000000000ull + (uint64_t)i;
        s[i].end_ns = s[i].start_ns + 1000;
        s[i].status_message = "";
        s[i].resource = &resource;
        s[i].scope = &scope;
    }
    uint8_t *out = NULL;
    if (halo_otlp_encode_pb(s, (size_t)n, &out, len) != HALO_OK)
        return NULL;
    return out;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o)
{
    (void)rk;
    (void)o;
    int64_t *out = m->_private;
    if (out)
        *out = m->err ? -2 : m->offset;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

/* A conf for the test's own handles: the mock's brokers, no log lines. */
static rd_kafka_conf_t *test_conf(void)
{
    char why[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", mock.bootstrap, why, sizeof why);
    rd_kafka_conf_set_log_cb(c, quiet_log);
    return c;
}

static rd_kafka_t *producer_new(void)
{
    char why[512];
    rd_kafka_conf_t *c = test_conf();
    rd_kafka_conf_set(c, "bootstrap.servers", mock.bootstrap, why, sizeof why);
    rd_kafka_conf_set(c, "linger.ms", "0", why, sizeof why);
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof why);
    if (!p)
        fprintf(stderr, "  producer: %s\n", why);
    return p;
}

/* Produce one message and wait for it; its offset, or < 0. */
static int64_t produce(rd_kafka_t *p, int partition, const void *val,
                       size_t len, const char *key)
{
    int64_t off = -3;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_VALUE((void *)val, len),
        RD_KAFKA_V_KEY((void *)key, key ? strlen(key) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&off),
        RD_KAFKA_V_END);
    if (e)
        return -4;
    rd_kafka_flush(p, 10000);
    return off;
}

/* Produce n spans (ids first..) to a partition; its offset or < 0. */
static int64_t produce_spans(rd_kafka_t *p, int partition, uint64_t first,
                             int n)
{
    size_t len;
    uint8_t *body = otlp_msg(first, n, -1, &len);
    if (!body)
        return -5;
    int64_t off = produce(p, partition, body, len, NULL);
    free(body);
    return off;
}

/* A consumer handle in the group that never joins: reads commits. */
static rd_kafka_t *observer_new(const char *group)
{
    char why[512];
    rd_kafka_conf_t *c = test_conf();
    rd_kafka_conf_set(c, "group.id", group, why, sizeof why);
    return rd_kafka_new(RD_KAFKA_CONSUMER, c, why, sizeof why);
}

/* The group's committed offset of a partition (NO_OFFSET: none; -2: the
 * query failed). */
static int64_t committed(rd_kafka_t *obs, int partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, TOPIC, partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(obs, l, 5000);
    int64_t off = e || l->elems[0].err ? -2 : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

/* ---- the tests --------------------------------------------------------- */

TEST(offsets_only_move_over_a_done_prefix)
{
    krx_track t;
    krx_track_init(&t);
    uint64_t s[200];
    /* offsets 10, 11, 13 (a gap), then enough to make the ring grow */
    int64_t offs[200];
    for (int i = 0; i < 200; i++) {
        offs[i] = i < 2 ? 10 + i : 11 + i;
        CHECK_INT(krx_track_push(&t, offs[i], &s[i]), HALO_OK);
    }
    CHECK_INT(t.next, -1);
    CHECK(!krx_track_done(&t, s[1])); /* later first: nothing moves */
    CHECK_INT(t.next, -1);
    CHECK(krx_track_done(&t, s[0])); /* now both */
    CHECK_INT(t.next, 12);
    CHECK(!krx_track_done(&t, s[0])); /* twice: ignored */
    CHECK(!krx_track_done(&t, 9999)); /* unknown: ignored */
    for (int i = 199; i >= 3; i--)    /* all but s[2], backwards */
        CHECK(!krx_track_done(&t, s[i]));
    CHECK_INT(t.next, 12);
    CHECK_INT(krx_track_pending(&t), 198);
    CHECK(krx_track_done(&t, s[2]));
    CHECK_INT(t.next, offs[199] + 1);
    CHECK_INT(krx_track_pending(&t), 0);
    /* the ring wraps around without losing order */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++)
            CHECK_INT(krx_track_push(&t, 1000 + round * 50 + i, &s[i]),
                      HALO_OK);
        for (int i = 49; i >= 1; i--)
            CHECK(!krx_track_done(&t, s[i]));
        CHECK(krx_track_done(&t, s[0]));
        CHECK_INT(t.next, 1000 + round * 50 + 50);
    }
    krx_track_free(&t);
}

TEST(config_is_checked_without_connecting)
{
    cleanup();
    snprintf(mock.bootstrap, sizeof mock.bootstrap, "127.0.0.1:1");
    rx r;
    halo_err err = {{0}};
    /* defaults */
    CHECK_INT(rx_open(&r, "kafka", "g", NULL, false, &err), HALO_OK);
    const krx_cfg *cfg = r.cfg;
    CHECK_INT(cfg->topics.n, 1);
    CHECK_STR(cfg->topics.items[0], "otlp_spans");
    CHECK_INT(cfg->initial_offset, KRX_EARLIEST);
    CHECK_INT(cfg->encoding, KRX_OTLP_PROTO);
    CHECK(cfg->dead_letter_topic == NULL);
    CHECK_INT(cfg->commit_interval_ns, 50000000);
    rx_close(&r); /* shutdown without start, twice, then destroy */

    CHECK_INT(
        rx_open(&r, "kafka", "g", "rdkafka.no.such.thing: 1\n", false, &err),
        HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "rdkafka.no.such.thing");
    rx_close(&r);

    CHECK_INT(rx_open(&r, "kafka", "g", "dead_letter_topic: otlp_spans\n",
                      false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "dead_letter_topic");
    rx_close(&r);

    CHECK_INT(rx_open(&r, "kafka", "g",
                      "rdkafka.enable.auto.offset.store: true\n", false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "enable.auto.offset.store");
    rx_close(&r);

    CHECK_INT(
        rx_open(&r, "kafka", "g", "initial_offset: middle\n", false, &err),
        HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "initial_offset");
    rx_close(&r);

    /* the dead-letter producer's conf is checked too, and gets no
     * consumer-only keys (session.timeout.ms above would only warn) */
    CHECK_INT(rx_open(&r, "kafka", "g",
                      "dead_letter_topic: dlq\nrdkafka.linger.ms: nope\n",
                      false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "linger.ms");
    rx_close(&r);
    /* a dead letter's offset is committed on its delivery report, which
     * proves durability only with acks=all */
    CHECK_INT(rx_open(&r, "kafka", "g",
                      "dead_letter_topic: dlq\nrdkafka.acks: 1\n"
                      "rdkafka.enable.idempotence: false\n",
                      false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "rdkafka.acks");
    rx_close(&r);
    CHECK_INT(rx_open(&r, "kafka", "g",
                      "dead_letter_topic: dlq\nencoding: otlp_json\n"
                      "initial_offset: latest\n",
                      false, &err),
              HALO_OK);
    rx_close(&r);
}

TEST(commits_only_what_was_confirmed_in_order)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-order");
    CHECK(p && obs);
    rx *r = rx_new("kafka/order", "g-order", NULL);
    CHECK(r);
    r->f.hold = true;
    bool ok;
    /* one message per partition, each in a batch of its own (the next is
     * produced only once the previous one is held) */
    for (int part = 0; part < 4; part++) {
        CHECK_INT(produce_spans(p, part, 100 + 10 * (uint64_t)part, 3), 0);
        /* the first one waits out the group join too: generous on a
         * loaded machine (a clean-clone run once missed 20 s) */
        WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == part + 1, 60000);
        CHECK(ok);
    }
    for (int part = 0; part < 4; part++)
        for (int i = 0; i < 3; i++)
            CHECK_INT(fake_seen(&r->f, 100 + 10 * (uint64_t)part + i), 1);
    /* witness: partition 3 confirmed and committed, the others held */
    CHECK(fake_release(&r->f, 3, HALO_OK));
    WAIT_UNTIL(ok, committed(obs, 3) == 1, 10000);
    CHECK(ok);
    for (int part = 0; part < 3; part++)
        CHECK_INT(committed(obs, part), NO_OFFSET);

    /* a later message of partition 0 confirmed before the earlier one */
    CHECK_INT(produce_spans(p, 0, 200, 2), 1);
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == 5, 10000);
    CHECK(ok);
    CHECK(fake_release(&r->f, 4, HALO_OK)); /* partition 0, offset 1 */
    CHECK(fake_release(&r->f, 1, HALO_OK)); /* witness: partition 1 */
    WAIT_UNTIL(ok, committed(obs, 1) == 1, 10000);
    CHECK(ok);
    CHECK_INT(committed(obs, 0), NO_OFFSET); /* not past offset 0 */
    CHECK(fake_release(&r->f, 0, HALO_OK));  /* the earlier one */
    WAIT_UNTIL(ok, committed(obs, 0) == 2, 10000);
    CHECK(ok);
    CHECK(fake_release(&r->f, 2, HALO_OK));
    WAIT_UNTIL(ok, committed(obs, 2) == 1, 10000);
    CHECK(ok);
    CHECK_INT(metric("halo_receiver_accepted_spans_total",
                     "receiver=\"kafka/order\",transport=\"kafka\""),
              14);
    CHECK_INT(gauge("halo_kafka_receiver_inflight_messages",
                    "receiver=\"kafka/order\""),
              0);
    rx_free(r);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

TEST(retryable_refusals_redeliver_until_ok)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-retry");
    CHECK(p && obs);
    rx *r = rx_new("kafka/retry", "g-retry", NULL);
    CHECK(r);
    r->f.hold = true;
    bool ok;
    CHECK_INT(produce_spans(p, 0, 300, 2), 0);
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == 1, 60000);
    CHECK(ok);
    CHECK(fake_release(&r->f, 0, HALO_ERETRY)); /* store said "later" */
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == 2, 10000);
    CHECK(ok);
    CHECK_INT(fake_seen(&r->f, 300), 2); /* the same spans again */
    CHECK_INT(fake_seen(&r->f, 301), 2);
    /* witness on partition 1: partition 0 is still not committed */
    CHECK_INT(produce_spans(p, 1, 310, 1), 0);
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == 3, 10000);
    CHECK(ok);
    CHECK(fake_release(&r->f, 2, HALO_OK));
    WAIT_UNTIL(ok, committed(obs, 1) == 1, 10000);
    CHECK(ok);
    CHECK_INT(committed(obs, 0), NO_OFFSET);
    CHECK(fake_release(&r->f, 1, HALO_OK));
    WAIT_UNTIL(ok, committed(obs, 0) == 1, 10000);
    CHECK(ok);

    /* refused synchronously by halo_emit's consumer, twice */
    pthread_mutex_lock(&r->f.mu);
    r->f.hold = false;
    r->f.refuse = 2;
    pthread_mutex_unlock(&r->f.mu);
    CHECK_INT(produce_spans(p, 2, 320, 1), 0);
    WAIT_UNTIL(ok, committed(obs, 2) == 1, 10000);
    CHECK(ok);
    CHECK_INT(fake_seen(&r->f, 320), 3);
    CHECK_INT(metric("halo_kafka_receiver_retried_messages_total",
                     "receiver=\"kafka/retry\""),
              3);
    rx_free(r);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

TEST(poison_messages_are_skipped_and_counted)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-poison");
    CHECK(p && obs);
    rx *r = rx_new("kafka/poison", "g-poison", NULL);
    CHECK(r);
    bool ok;
    static const char garbage[] = "\xff\xff\xff not an OTLP request";
    CHECK_INT(produce(p, 0, garbage, sizeof garbage - 1, "k"), 0);
    CHECK_INT(produce_spans(p, 0, 400, 2), 1);
    WAIT_UNTIL(ok, committed(obs, 0) == 2, 60000);
    CHECK(ok);
    CHECK_INT(fake_seen(&r->f, 400), 1);
    CHECK_INT(fake_seen(&r->f, 401), 1);
    CHECK_INT(metric("halo_kafka_receiver_skipped_messages_total",
                     "receiver=\"kafka/poison\",reason=\"decode\""),
              1);

    /* one invalid span: left out and counted, the others flow */
    size_t len;
    uint8_t *body = otlp_msg(410, 3, 1, &len);
    CHECK(body);
    CHECK_INT(produce(p, 1, body, len, NULL), 0);
    free(body);
    WAIT_UNTIL(ok, committed(obs, 1) == 1, 10000);
    CHECK(ok);
    CHECK_INT(fake_seen(&r->f, 410), 1);
    CHECK_INT(fake_seen(&r->f, 412), 1);
    CHECK_INT(metric("halo_receiver_refused_spans_total",
                     "receiver=\"kafka/poison\",transport=\"kafka\""),
              1);

    /* every span invalid: a poison message (reason "rejected") */
    body = otlp_msg(415, 1, 0, &len);
    CHECK(body);
    CHECK_INT(produce(p, 3, body, len, NULL), 0);
    free(body);
    WAIT_UNTIL(ok, committed(obs, 3) == 1, 10000);
    CHECK(ok);
    CHECK_INT(fake_seen(&r->f, 415), 0);
    CHECK_INT(metric("halo_kafka_receiver_skipped_messages_total",
                     "receiver=\"kafka/poison\",reason=\"rejected\""),
              1);

    /* the store rejects one message for good: its neighbours are retried
     * alone and stored, it is skipped, the partition moves on */
    pthread_mutex_lock(&r->f.mu);
    r->f.reject_id = 420;
    pthread_mutex_unlock(&r->f.mu);
    CHECK_INT(produce_spans(p, 2, 420, 1), 0);
    CHECK_INT(produce_spans(p, 2, 430, 1), 1);
    WAIT_UNTIL(ok, committed(obs, 2) == 2, 10000);
    CHECK(ok);
    CHECK(fake_seen(&r->f, 430) >= 1);
    CHECK_INT(metric("halo_kafka_receiver_skipped_messages_total",
                     "receiver=\"kafka/poison\",reason=\"rejected\""),
              2);
    CHECK_INT(metric("halo_receiver_accepted_spans_total",
                     "receiver=\"kafka/poison\",transport=\"kafka\""),
              5);
    rx_free(r);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

/* A run of poison messages that decode whole yet carry nothing to store
 * (every span has a zero id): what each of them left in the gather's arena
 * counts against its byte cap, so the arena is freed every EMIT_BYTES
 * (16 MiB; its blocks double, so it peaks below twice that) instead of
 * growing until the poll runs dry (here the whole run, ~128 MiB). */
#define FLOOD_MSGS 96
#define FLOOD_PARTS 2048 /* one-span requests concatenated: one request */

TEST(a_run_of_poison_messages_keeps_memory_bounded)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    CHECK(p);
    size_t one = 0;
    uint8_t *part = otlp_msg(5000, 1, 0, &one); /* span id zero */
    CHECK(part);
    size_t len = one * FLOOD_PARTS;
    uint8_t *body = malloc(len);
    CHECK(body);
    for (int i = 0; i < FLOOD_PARTS; i++)
        memcpy(body + one * (size_t)i, part, one);
    free(part);
    for (int i = 0; i < FLOOD_MSGS; i++)
        CHECK(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC),
                                RD_KAFKA_V_PARTITION(i % 4),
                                RD_KAFKA_V_VALUE(body, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END) == 0);
    CHECK(rd_kafka_flush(p, 20000) == 0);
    free(body);

    int64_t base = halo_arena_total_reserved(), peak = base;
    rx *r = rx_new("kafka/flood", "g-flood", NULL);
    CHECK(r);
    uint64_t end = now_ms() + 60000;
    while (metric("halo_kafka_receiver_skipped_messages_total",
                  "receiver=\"kafka/flood\",reason=\"rejected\"") <
               FLOOD_MSGS &&
           now_ms() < end) {
        int64_t now = halo_arena_total_reserved();
        if (now > peak)
            peak = now;
        sleep_ms(1);
    }
    CHECK_INT(metric("halo_kafka_receiver_skipped_messages_total",
                     "receiver=\"kafka/flood\",reason=\"rejected\""),
              FLOOD_MSGS);
    fprintf(stderr, "  %d poison messages of %zu bytes: arena peak %.1f MiB\n",
            FLOOD_MSGS, len, (double)(peak - base) / (1 << 20));
    CHECK(peak - base < (int64_t)48 << 20);
    CHECK_INT(fake_int(&r->f, &r->f.consumes), 0);
    rx_free(r);
    rd_kafka_destroy(p);
    mock_stop();
}

/* A message read back: copies, so they outlive the reading handle. */
typedef struct readback {
    char *payload;
    size_t len;
    char *key;
    size_t key_len;
    rd_kafka_headers_t *headers;
} readback;

TEST(otlp_json_messages_with_encoding_otlp_json)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-json");
    CHECK(p && obs);
    rx *r = rx_new("kafka/json", "g-json", "encoding: otlp_json\n");
    CHECK(r);
    bool ok;
    /* a protobuf message is not JSON: skipped; the JSON one flows */
    CHECK_INT(produce_spans(p, 0, 1100, 1), 0);
    size_t len;
    uint8_t *pb = otlp_msg(1110, 2, -1, &len);
    CHECK(pb);
    halo_arena *arena = halo_arena_new(0);
    halo_otlp_result res;
    halo_err err = {{0}};
    CHECK_INT(halo_otlp_decode_pb(pb, len, arena, &res, &err), HALO_OK);
    free(pb);
    halo_buf json = HALO_BUF_INIT;
    CHECK_INT(halo_otlp_encode_json(res.spans, res.n, &json), HALO_OK);
    halo_arena_free(arena);
    int64_t off = produce(p, 0, json.data, json.len, NULL);
    halo_buf_free(&json);
    CHECK_INT(off, 1);
    WAIT_UNTIL(ok, committed(obs, 0) == 2, 60000);
    CHECK(ok);
    CHECK_INT(fake_seen(&r->f, 1100), 0);
    CHECK_INT(fake_seen(&r->f, 1110), 1);
    CHECK_INT(fake_seen(&r->f, 1111), 1);
    CHECK_INT(metric("halo_kafka_receiver_skipped_messages_total",
                     "receiver=\"kafka/json\",reason=\"decode\""),
              1);
    rx_free(r);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

/* The first message of partition 0 of a topic, read from the beginning
 * (assigned, no group membership). */
static bool read_first(const char *topic, readback *out)
{
    memset(out, 0, sizeof *out);
    char why[512];
    rd_kafka_conf_t *c = test_conf();
    rd_kafka_conf_set(c, "group.id", "reader", why, sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, why, sizeof why);
    if (!rk)
        return false;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_message_t *m = NULL;
    uint64_t end = now_ms() + 10000;
    while (!m && now_ms() < end) {
        m = rd_kafka_consumer_poll(rk, 100);
        if (m && m->err) {
            rd_kafka_message_destroy(m);
            m = NULL;
        }
    }
    if (m) {
        out->payload = malloc(m->len + 1);
        memcpy(out->payload, m->payload, m->len);
        out->len = m->len;
        out->key = malloc(m->key_len + 1);
        memcpy(out->key, m->key, m->key_len);
        out->key_len = m->key_len;
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m, &h) == 0 && h)
            out->headers = rd_kafka_headers_copy(h);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return m != NULL;
}

static void readback_free(readback *m)
{
    if (m->headers)
        rd_kafka_headers_destroy(m->headers);
    free(m->payload);
    free(m->key);
}

static bool header_is(rd_kafka_headers_t *h, const char *name, const char *want)
{
    const void *v;
    size_t n;
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) != 0)
        return false;
    return want ? n == strlen(want) && memcmp(v, want, n) == 0 : n > 0;
}

TEST(dead_letters_keep_their_bytes)
{
    cleanup();
    CHECK(mock_start("otlp_dlq:1"));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-dlq");
    CHECK(p && obs);
    rx *r = rx_new("kafka/dlq", "g-dlq", "dead_letter_topic: otlp_dlq\n");
    CHECK(r);
    bool ok;
    static const char garbage[] = "\x0a\xff\xff\xff\xff garbage \x00\x01";
    CHECK_INT(produce(p, 0, garbage, sizeof garbage - 1, "poison-key"), 0);
    CHECK_INT(produce_spans(p, 0, 500, 2), 1);
    WAIT_UNTIL(ok, committed(obs, 0) == 2, 60000);
    CHECK(ok);
    CHECK_INT(fake_seen(&r->f, 500), 1);
    CHECK_INT(metric("halo_kafka_receiver_dead_letter_messages_total",
                     "receiver=\"kafka/dlq\""),
              1);
    CHECK_INT(metric("halo_kafka_receiver_skipped_messages_total",
                     "receiver=\"kafka/dlq\",reason=\"decode\""),
              1);
    readback m;
    CHECK(read_first("otlp_dlq", &m));
    bool same = m.len == sizeof garbage - 1 &&
                memcmp(m.payload, garbage, m.len) == 0 &&
                m.key_len == strlen("poison-key") &&
                memcmp(m.key, "poison-key", m.key_len) == 0;
    bool headers = header_is(m.headers, "halo.source.topic", TOPIC) &&
                   header_is(m.headers, "halo.source.partition", "0") &&
                   header_is(m.headers, "halo.source.offset", "0") &&
                   header_is(m.headers, "halo.error", NULL);
    readback_free(&m);
    CHECK(same);
    CHECK(headers);
    rx_free(r);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

TEST(a_restart_resumes_after_the_committed_offset)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-restart");
    CHECK(p && obs);
    rx *a = rx_new("kafka/first", "g-restart", NULL);
    CHECK(a);
    bool ok;
    for (int part = 0; part < 4; part++)
        CHECK_INT(produce_spans(p, part, 600 + (uint64_t)part, 1), 0);
    WAIT_UNTIL(ok, fake_int(&a->f, &a->f.n_ids) == 4, 60000);
    CHECK(ok);
    rx_free(a); /* shutdown commits what was confirmed */
    for (int part = 0; part < 4; part++)
        CHECK_INT(committed(obs, part), 1);

    rx *b = rx_new("kafka/second", "g-restart", NULL);
    CHECK(b);
    for (int part = 0; part < 4; part++)
        CHECK_INT(produce_spans(p, part, 700 + (uint64_t)part, 1), 1);
    /* each partition's new message comes after its old one: once all new
     * ones arrived, any redelivery would have arrived first */
    WAIT_UNTIL(ok, fake_int(&b->f, &b->f.n_ids) >= 4, 60000);
    CHECK(ok);
    for (int part = 0; part < 4; part++) {
        CHECK_INT(fake_seen(&b->f, 600 + (uint64_t)part), 0);
        CHECK_INT(fake_seen(&b->f, 700 + (uint64_t)part), 1);
    }
    rx_free(b);
    for (int part = 0; part < 4; part++)
        CHECK_INT(committed(obs, part), 2);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

TEST(too_much_in_flight_pauses_consumption)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-pause");
    CHECK(p && obs);
    rx *r = rx_new("kafka/pause", "g-pause", "max_inflight_messages: 2\n");
    CHECK(r);
    r->f.hold = true;
    bool ok;
    CHECK_INT(produce_spans(p, 0, 800, 1), 0);
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == 1, 60000);
    CHECK(ok);
    for (int i = 1; i < 20; i++)
        CHECK_INT(produce_spans(p, 0, 800 + (uint64_t)i, 1), i);
    WAIT_UNTIL(
        ok,
        gauge("halo_kafka_receiver_paused", "receiver=\"kafka/pause\"") == 1,
        10000);
    CHECK(ok);
    CHECK(fake_int(&r->f, &r->f.n_ids) < 20);
    /* confirm as they come (one span per message, several messages may
     * share a batch): everything arrives once, in the end resumed */
    uint64_t end = now_ms() + 20000;
    while (fake_int(&r->f, &r->f.n_ids) < 20 && now_ms() < end) {
        for (int i = 0; i < fake_int(&r->f, &r->f.n_held); i++)
            fake_release(&r->f, i, HALO_OK);
        sleep_ms(10);
    }
    for (int i = 0; i < fake_int(&r->f, &r->f.n_held); i++)
        fake_release(&r->f, i, HALO_OK);
    CHECK_INT(fake_int(&r->f, &r->f.n_ids), 20);
    WAIT_UNTIL(ok, committed(obs, 0) == 20, 10000);
    CHECK(ok);
    WAIT_UNTIL(
        ok,
        gauge("halo_kafka_receiver_paused", "receiver=\"kafka/pause\"") == 0,
        5000);
    CHECK(ok);
    rx_free(r);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

/* A pipeline that is full only briefly is waited for, not paused: pausing
 * would drop librdkafka's prefetched messages (they are fetched again). */
TEST(a_briefly_full_pipeline_holds_back_without_pausing)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    rd_kafka_t *obs = observer_new("g-hold");
    CHECK(p && obs);
    rx *r = rx_new("kafka/hold", "g-hold", "max_inflight_messages: 2\n");
    CHECK(r);
    r->f.hold = true;
    bool ok;
    for (int i = 0; i < 20; i++)
        CHECK_INT(produce_spans(p, 0, 1500 + (uint64_t)i, 1), i);
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) >= 1, 60000);
    CHECK(ok);
    /* confirm as they come: the pipeline is full again and again, never
     * for long */
    uint64_t end = now_ms() + 20000;
    while (fake_int(&r->f, &r->f.n_ids) < 20 && now_ms() < end) {
        for (int i = 0; i < fake_int(&r->f, &r->f.n_held); i++)
            fake_release(&r->f, i, HALO_OK);
        sleep_ms(5);
    }
    for (int i = 0; i < fake_int(&r->f, &r->f.n_held); i++)
        fake_release(&r->f, i, HALO_OK);
    CHECK_INT(fake_int(&r->f, &r->f.n_ids), 20);
    WAIT_UNTIL(ok, committed(obs, 0) == 20, 10000);
    CHECK(ok);
    CHECK(metric("halo_kafka_receiver_pauses_total",
                 "receiver=\"kafka/hold\"") == 0);
    CHECK(gauge("halo_kafka_receiver_paused", "receiver=\"kafka/hold\"") == 0);
    rx_free(r);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

/* librdkafka < 2.2 idles its fetcher for up to a second once the prefetch
 * queue filled; the receiver wakes it when the queue drained. With a 1 KiB
 * queue every message (each its own produce batch) fills it: 30 messages
 * would take ~30 s without the wake-ups. */
TEST(a_full_prefetch_queue_does_not_stall_the_fetcher)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    CHECK(p);
    for (int i = 0; i < 30; i++)
        CHECK_INT(produce_spans(p, 1, 2000 + 20 * (uint64_t)i, 20), i);
    rx *r = rx_new("kafka/nudge", "g-nudge",
                   "rdkafka.queued.max.messages.kbytes: 1\n");
    CHECK(r);
    bool ok;
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_ids) > 0, 60000);
    CHECK(ok);
    uint64_t first = now_ms();
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_ids) == 600, 30000);
    CHECK(ok);
    uint64_t took = now_ms() - first;
    if (!krx_fetch_backoff_supported())
        CHECK(metric("halo_kafka_receiver_fetch_wakeups_total",
                     "receiver=\"kafka/nudge\"") > 0);
    if (took >= 10000)
        fprintf(stderr, "  30 messages took %llu ms\n",
                (unsigned long long)took);
    CHECK(took < 10000);
    rx_free(r);
    rd_kafka_destroy(p);
    mock_stop();
}

TEST(shutdown_is_bounded_when_the_broker_is_down)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    CHECK(p);
    rx *r = rx_new("kafka/down", "g-down",
                   "drain_timeout: 2s\nrdkafka.log_level: 0\n");
    CHECK(r);
    r->f.hold = true;
    bool ok;
    CHECK_INT(produce_spans(p, 0, 1000, 1), 0);
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == 1, 60000);
    CHECK(ok);
    CHECK_INT(produce_spans(p, 1, 1001, 1), 0);
    WAIT_UNTIL(ok, fake_int(&r->f, &r->f.n_held) == 2, 60000);
    CHECK(ok);
    rd_kafka_destroy(p);
    CHECK(mock_cmd("down"));
    /* the broker gone, one message confirmed (its offset stored, not yet
     * committed), one never: the drain waits 2 s, the final commit gives
     * up in bounded time, and so does the close */
    CHECK(fake_release(&r->f, 1, HALO_OK));
    uint64_t t0 = now_ms();
    krx_core *k = r->c.ctx;
    atomic_store(&k->stop, true); /* as shutdown() does, keeping r alive */
    WAIT_UNTIL(ok, !rx_consumer(r), 30000);
    uint64_t took = now_ms() - t0;
    fake_release(&r->f, 0, HALO_OK); /* late: stores nothing */
    rx_free(r);
    CHECK(ok);
    CHECK(took < 15000);
    mock_stop();
}

/* How often span id arrived at either receiver. */
static int seen2(rx *a, rx *b, uint64_t id)
{
    return fake_seen(&a->f, id) + fake_seen(&b->f, id);
}

/* Partitions assigned to a receiver (white box). */
static int rx_parts(rx *r)
{
    krx_core *k = r->c.ctx;
    int n = 0;
    pthread_mutex_lock(&k->mu);
    for (krx_part *p = k->parts; p; p = p->next)
        n++;
    pthread_mutex_unlock(&k->mu);
    return n;
}

/* Two receivers in one group. The first holds four unconfirmed messages
 * when the second joins: its revocation waits for them (observable: it
 * stays "revoking" until the test confirms them; without the wait it would
 * be over in microseconds) and commits nothing unconfirmed. Then the two
 * split the partitions and together store everything.
 *
 * The confirmations that arrive during the revocation are stored and
 * committed synchronously before the unassign. A real broker accepts that
 * commit (the group is still preparing the rebalance, old generation); the
 * mock refuses every commit while its group is joining, so here messages
 * confirmed around a rebalance are read again by the partition's next
 * owner: at least once, never lost (stores are idempotent). */
static void two_in_a_group(int *halo_test_failed, const char *strategy)
{
    cleanup();
    CHECK(mock_start(NULL));
    rd_kafka_t *p = producer_new();
    char group[64], extra[128], ida[32], idb[32];
    snprintf(group, sizeof group, "g-two-%s", strategy);
    snprintf(extra, sizeof extra, "rdkafka.partition.assignment.strategy: %s\n",
             strategy);
    snprintf(ida, sizeof ida, "kafka/a-%s", strategy);
    snprintf(idb, sizeof idb, "kafka/b-%s", strategy);
    rd_kafka_t *obs = observer_new(group);
    CHECK(p && obs);
    rx *a = rx_new(ida, group, extra);
    CHECK(a);
    a->f.hold = true;
    bool ok;
    for (int part = 0; part < 4; part++) {
        CHECK_INT(produce_spans(p, part, 900 + (uint64_t)part, 1), 0);
        WAIT_UNTIL(ok, fake_int(&a->f, &a->f.n_held) == part + 1, 60000);
        CHECK(ok);
    }
    rx *b = rx_new(idb, group, extra);
    CHECK(b);
    WAIT_UNTIL(ok, rx_revoking(a), 60000);
    CHECK(ok);
    for (int part = 0; part < 4; part++)
        CHECK_INT(committed(obs, part), NO_OFFSET);
    CHECK(rx_revoking(a)); /* still waiting for its confirmations */
    fake_release_all(&a->f);
    WAIT_UNTIL(ok, !rx_revoking(a), 10000);
    CHECK(ok);

    /* the group settles with two partitions each */
    WAIT_UNTIL(ok, rx_parts(a) == 2 && rx_parts(b) == 2, 30000);
    CHECK(ok);
    for (int part = 0; part < 4; part++)
        CHECK_INT(produce_spans(p, part, 950 + (uint64_t)part, 1), 1);
    WAIT_UNTIL(ok,
               committed(obs, 0) == 2 && committed(obs, 1) == 2 &&
                   committed(obs, 2) == 2 && committed(obs, 3) == 2,
               30000);
    CHECK(ok);
    for (int part = 0; part < 4; part++) {
        CHECK_INT(fake_seen(&a->f, 900 + (uint64_t)part) >= 1, 1);
        CHECK_INT(seen2(a, b, 950 + (uint64_t)part) >= 1, 1);
    }
    rx_free(b);
    rx_free(a);
    rd_kafka_destroy(obs);
    rd_kafka_destroy(p);
    mock_stop();
}

TEST(rebalance_hands_over_only_confirmed_offsets_eager)
{
    two_in_a_group(halo_test_failed, "range");
}

TEST(rebalance_hands_over_only_confirmed_offsets_cooperative)
{
    two_in_a_group(halo_test_failed, "cooperative-sticky");
}

__attribute__((constructor)) static void quiet(void)
{
    const char *lvl = getenv("HALO_TEST_LOG");
    halo_log_set_level(lvl ? halo_log_level_parse(lvl) : HALO_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
}
