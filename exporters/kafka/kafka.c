/*
 * kafka.c -- the kafka exporter: spans as OTLP messages into a Kafka topic
 * through a librdkafka producer (DESIGN §1 point 3, §4).
 *
 * Message format: each message value is one ExportTraceServiceRequest
 * (otlp_proto, the default, or otlp_json) -- what the OpenTelemetry
 * Collector's kafka exporter writes and its kafka receiver reads. With
 * partition_traces_by_id (default on) the batch's spans are grouped by trace
 * and each message carries one trace's spans keyed by the trace id as 32
 * lower-case hex characters (the Collector's key), so a trace's spans land
 * in one partition. Grouping and splitting to max_message_bytes live in
 * kafka_encode.c.
 *
 * Acknowledgement: consume() encodes the batch on the caller's thread and
 * produces every message with a per-batch tracker as message opaque:
 * {batch, pending count, first failure}. librdkafka's delivery reports are
 * served by one poller thread; when a tracker's count reaches zero the batch
 * is completed with halo_batch_done -- HALO_OK only when every message was
 * acknowledged (acks=all, idempotent producer), else the first failure mapped
 * by halo_kafka_status_of. The count starts at one (a guard held while
 * consume() produces), so no report can complete a batch early. There is no
 * other path to the client: never an early OK, never a silent drop.
 *
 * Backpressure: the encoded bytes awaiting delivery reports are counted;
 * above max_inflight_bytes consume() refuses at once with HALO_ERETRY, before
 * any encoding (receivers answer UNAVAILABLE / 503). librdkafka retries
 * failed sends by itself until `timeout` (message.timeout.ms); then the
 * report fails and so does the batch, retryably. A produce that fails
 * synchronously (local queue full) fails the batch retryably and stops
 * producing its remaining messages.
 *
 * Shutdown: consume() answers HALO_ESHUTDOWN, calls still producing finish,
 * the poller stops, rd_kafka_flush waits up to min(drain_timeout, timeout +
 * 1s), what is left is purged (its reports fail those batches retryably),
 * and any batch still without an answer is failed before the handle goes.
 */
#include "kafka_encode.h"

#include "core/clock.h"
#include "core/component.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_MARGIN_NS 1000000000ull   /* beyond message.timeout.ms */
#define PURGE_WAIT_NS 2000000000ull     /* for the reports of purged messages */
#define FAIL_LOG_EVERY_NS 1000000000ull /* delivery failures: one line / s */
#define POLL_MS 100

static const char *const encoding_values[] = {"otlp_proto", "otlp_json", NULL};
static const char *const compression_values[] = {"none", "gzip", "snappy",
                                                 "lz4",  "zstd", NULL};

typedef struct kafka_cfg {
    halo_strlist brokers;
    char *topic;
    int encoding;
    bool partition_traces_by_id;
    int64_t max_message_bytes;
    int compression;
    int64_t timeout_ns;
    int64_t max_inflight_bytes;
    int64_t drain_timeout_ns;
    halo_kvlist rdkafka;
} kafka_cfg;

/* The opaque of every message is a tracker, or a big_msg for a single span
 * over max_message_bytes (so its failure can name the span); both open with
 * their kind. */
enum { OPQ_BATCH = 1, OPQ_BIG };

typedef struct tracker {
    int kind; /* OPQ_BATCH */
    halo_batch *b;
    size_t n_spans;
    atomic_size_t pending; /* messages without a report, + 1 while producing */
    atomic_int fail_st;    /* first failure; HALO_OK: none */
    char fail_msg[HALO_ERR_MAX];
    size_t bytes; /* encoded bytes charged to the in-flight budget */
    uint64_t t0;
    struct tracker *prev, *next; /* live list */
} tracker;

typedef struct big_msg {
    int kind; /* OPQ_BIG */
    tracker *t;
    uint8_t trace_id[16];
    uint8_t span_id[8];
    size_t len;
} big_msg;

typedef struct kafka_exp {
    halo_kafka_opaque ko; /* first: librdkafka's log/error glue */
    halo_component *self;
    const kafka_cfg *cfg;
    const char *prefix;
    char *brokers_text; /* "a:9092,b:9092", for log lines */

    rd_kafka_conf_t *conf; /* built in create, owned until start */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;

    pthread_mutex_t mu;
    pthread_cond_t idle_cv;
    int producing; /* consume() calls using rk */
    bool stopping;
    bool closed;
    tracker *live; /* batches awaiting their answer */

    pthread_t poller;
    bool poller_started;
    atomic_bool poller_stop;

    atomic_llong inflight_bytes;
    atomic_long msgs_pending;
    atomic_size_t bytes_per_span; /* the encoders' shared estimate */

    pthread_mutex_t log_mu;
    uint64_t last_fail_log;
    long fails_unlogged;

    halo_exporter_metrics m;
} kafka_exp;

/* ---- completion ---------------------------------------------------------- */

static void record_failure(tracker *t, halo_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The first failure wins; its message is written by the thread that won
 * and read after the pending count reached zero (which orders the two). */
static void record_failure(tracker *t, halo_status st, const char *fmt, ...)
{
    int none = HALO_OK;
    if (!atomic_compare_exchange_strong(&t->fail_st, &none, (int)st))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->fail_msg, sizeof t->fail_msg, fmt, ap);
    va_end(ap);
}

/* One log line per second at most, however many batches fail. */
static void log_failure(kafka_exp *e, const tracker *t)
{
    uint64_t now = halo_mono_ns();
    long skipped = -1;
    pthread_mutex_lock(&e->log_mu);
    if (now - e->last_fail_log >= FAIL_LOG_EVERY_NS || e->last_fail_log == 0) {
        skipped = e->fails_unlogged;
        e->fails_unlogged = 0;
        e->last_fail_log = now;
    } else {
        e->fails_unlogged++;
    }
    pthread_mutex_unlock(&e->log_mu);
    if (skipped < 0)
        return;
    if (skipped > 0)
        LOG_WARN(e->prefix, "%s (%zu spans; %ld more failed batches not shown)",
                 t->fail_msg, t->n_spans, skipped);
    else
        LOG_WARN(e->prefix, "%s (%zu spans)", t->fail_msg, t->n_spans);
}

static void live_link(kafka_exp *e, tracker *t)
{
    pthread_mutex_lock(&e->mu);
    t->next = e->live;
    if (e->live)
        e->live->prev = t;
    e->live = t;
    pthread_mutex_unlock(&e->mu);
}

static void live_unlink(kafka_exp *e, tracker *t)
{
    pthread_mutex_lock(&e->mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        e->live = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&e->mu);
}

/* Answer the batch: every message reported (or never produced). */
static void complete(kafka_exp *e, tracker *t)
{
    live_unlink(e, t);
    atomic_fetch_sub(&e->inflight_bytes, (long long)t->bytes);
    halo_status st = (halo_status)atomic_load(&t->fail_st);
    halo_metric_add(st == HALO_OK ? e->m.sent : e->m.failed,
                    (double)t->n_spans);
    halo_metric_observe(e->m.write, (double)(halo_mono_ns() - t->t0) / 1e9);
    if (st != HALO_OK)
        log_failure(e, t);
    halo_batch_done(t->b, st, st == HALO_OK ? "" : t->fail_msg);
    free(t);
}

static void tracker_release(kafka_exp *e, tracker *t)
{
    if (atomic_fetch_sub(&t->pending, 1) == 1)
        complete(e, t);
}

/* A failure report of a single oversize span names it. */
static void big_failed(kafka_exp *e, const big_msg *m, rd_kafka_resp_err_t err)
{
    char trace[33], span[17];
    halo_hex_encode(m->trace_id, 16, trace);
    halo_hex_encode(m->span_id, 8, span);
    record_failure(m->t, halo_kafka_status_of(err),
                   "kafka: delivery to %s failed for span %s of trace %s, "
                   "alone in a message of %zu bytes (over "
                   "max_message_bytes %lld): %s",
                   e->cfg->topic, span, trace, m->len,
                   (long long)e->cfg->max_message_bytes, rd_kafka_err2str(err));
}

/* librdkafka's delivery report, on the poller thread (or the shutdown
 * thread while it flushes). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg,
                        void *opaque)
{
    (void)rk;
    kafka_exp *e = opaque;
    int *kind = msg->_private;
    tracker *t = (tracker *)kind;
    big_msg *big = NULL;
    if (*kind == OPQ_BIG) {
        big = (big_msg *)kind;
        t = big->t;
    }
    if (msg->err && big)
        big_failed(e, big, msg->err);
    else if (msg->err && msg->partition != RD_KAFKA_PARTITION_UA)
        record_failure(t, halo_kafka_status_of(msg->err),
                       "kafka: delivery to %s failed: %s (partition %d, "
                       "brokers %s)",
                       e->cfg->topic, rd_kafka_err2str(msg->err),
                       (int)msg->partition, e->brokers_text);
    else if (msg->err)
        record_failure(t, halo_kafka_status_of(msg->err),
                       "kafka: delivery to %s failed: %s (brokers %s)",
                       e->cfg->topic, rd_kafka_err2str(msg->err),
                       e->brokers_text);
    free(big);
    atomic_fetch_sub(&e->msgs_pending, 1);
    tracker_release(e, t);
}

static void *poller_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kafka-tx-poll");
    kafka_exp *e = arg;
    while (!atomic_load(&e->poller_stop)) {
        rd_kafka_poll(e->rk, POLL_MS);
        long depth = atomic_load(&e->msgs_pending);
        halo_metric_set(e->m.depth, (double)(depth > 0 ? depth : 0));
    }
    return NULL;
}

/* ---- producing ----------------------------------------------------------- */

typedef struct produce_ctx {
    kafka_exp *e;
    tracker *t;
} produce_ctx;

/* The opaque of one message: the tracker, or for a lone oversize span a
 * big_msg naming it (NULL when out of memory). */
static void *msg_opaque(tracker *t, const kx_msg *m)
{
    if (!m->oversize)
        return t;
    big_msg *big = malloc(sizeof *big);
    if (!big)
        return NULL;
    big->kind = OPQ_BIG;
    big->t = t;
    memcpy(big->trace_id, m->first->trace_id, 16);
    memcpy(big->span_id, m->first->span_id, 8);
    big->len = m->len;
    return big;
}

/* kx_emit_fn: produce one message (librdkafka copies value and key). */
static halo_status produce(void *ud, const kx_msg *m)
{
    produce_ctx *p = ud;
    kafka_exp *e = p->e;
    void *opaque = msg_opaque(p->t, m);
    if (!opaque) {
        record_failure(p->t, HALO_ERETRY, "kafka: out of memory");
        return HALO_ENOMEM;
    }
    atomic_fetch_add(&p->t->pending, 1);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(e->rk, RD_KAFKA_V_RKT(e->rkt),
                          RD_KAFKA_V_VALUE((void *)m->data, m->len),
                          RD_KAFKA_V_KEY(m->key, m->key_len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->t->bytes += m->len;
        atomic_fetch_add(&e->msgs_pending, 1);
        return HALO_OK;
    }
    atomic_fetch_sub(&p->t->pending, 1); /* no report will come */
    if (opaque != p->t)
        free(opaque);
    halo_status st = halo_kafka_status_of(err);
    if (m->oversize) {
        char span[17];
        halo_hex_encode(m->first->span_id, 8, span);
        record_failure(p->t, st,
                       "kafka: could not produce span %s alone in a message "
                       "of %zu bytes to %s: %s",
                       span, m->len, e->cfg->topic, rd_kafka_err2str(err));
    } else {
        record_failure(p->t, st, "kafka: could not produce to %s: %s",
                       e->cfg->topic, rd_kafka_err2str(err));
    }
    return st;
}

/* Every group of the batch as messages; stops at the first failure. */
static void produce_batch(kafka_exp *e, tracker *t)
{
    kx_groups g;
    halo_status st = kx_group(t->b, e->cfg->partition_traces_by_id, &g);
    if (st != HALO_OK) {
        record_failure(t, HALO_ERETRY, "kafka: could not group spans: %s",
                       halo_status_str(st));
        kx_groups_free(&g);
        return;
    }
    kx_encoder enc = {
        .encoding = e->cfg->encoding,
        .max_bytes = (size_t)e->cfg->max_message_bytes,
        .bytes_per_span =
            atomic_load_explicit(&e->bytes_per_span, memory_order_relaxed),
    };
    produce_ctx p = {e, t};
    halo_err err = {{0}};
    for (size_t k = 0; k < g.n_groups && st == HALO_OK; k++) {
        const halo_span *const *spans = g.refs + g.starts[k];
        size_t n = g.starts[k + 1] - g.starts[k];
        char key[33];
        bool keyed = e->cfg->partition_traces_by_id;
        if (keyed)
            halo_hex_encode(spans[0]->trace_id, 16, key);
        st = kx_encode_group(&enc, spans, n, keyed ? key : NULL, keyed ? 32 : 0,
                             produce, &p, &err);
        if (st != HALO_OK && err.msg[0])
            record_failure(t, st == HALO_ENOMEM ? HALO_ERETRY : st, "kafka: %s",
                           err.msg);
    }
    if (enc.bytes_per_span)
        atomic_store_explicit(&e->bytes_per_span, enc.bytes_per_span,
                              memory_order_relaxed);
    kx_encoder_free(&enc);
    kx_groups_free(&g);
}

/* ---- consume ------------------------------------------------------------- */

/* With mu held: HALO_OK when a batch may be produced now, else why not. */
static halo_status can_produce(const kafka_exp *e, char *msg, size_t cap)
{
    if (e->stopping) {
        snprintf(msg, cap, "kafka exporter is shutting down");
        return HALO_ESHUTDOWN;
    }
    if (!e->rk) {
        snprintf(msg, cap, "kafka exporter is not started");
        return HALO_ERETRY;
    }
    long long inflight = atomic_load(&e->inflight_bytes);
    if (inflight >= e->cfg->max_inflight_bytes) {
        snprintf(msg, cap,
                 "kafka exporter: %lld bytes await delivery to %s "
                 "(max_inflight_bytes %lld); retry later",
                 inflight, e->cfg->topic,
                 (long long)e->cfg->max_inflight_bytes);
        return HALO_ERETRY;
    }
    char why[256];
    if (rd_kafka_fatal_error(e->rk, why, sizeof why)) {
        snprintf(msg, cap, "kafka producer failed fatally: %s", why);
        return HALO_EIO;
    }
    return HALO_OK;
}

static tracker *tracker_new(halo_batch *b)
{
    tracker *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kind = OPQ_BATCH;
    t->b = b;
    t->n_spans = b->n_spans;
    t->t0 = halo_mono_ns();
    atomic_init(&t->pending, 1); /* the guard, dropped after producing */
    atomic_init(&t->fail_st, HALO_OK);
    return t;
}

static halo_status kafka_consume(halo_component *self, halo_batch *b)
{
    kafka_exp *e = self->ctx;
    char msg[HALO_ERR_MAX];
    pthread_mutex_lock(&e->mu);
    halo_status st = can_produce(e, msg, sizeof msg);
    if (st == HALO_OK)
        e->producing++;
    pthread_mutex_unlock(&e->mu);
    if (st != HALO_OK)
        return halo_batch_refuse(b, e->m.failed, st, msg);

    tracker *t = tracker_new(b);
    if (t) {
        live_link(e, t);
        produce_batch(e, t);
        halo_batch_release_spans(b);
        atomic_fetch_add(&e->inflight_bytes, (long long)t->bytes);
        /* read before the guard goes: the batch may complete at once */
        st = (halo_status)atomic_load(&t->fail_st);
        tracker_release(e, t);
    }
    /* only now may shutdown go on and fail what is left */
    pthread_mutex_lock(&e->mu);
    if (--e->producing == 0)
        pthread_cond_broadcast(&e->idle_cv);
    pthread_mutex_unlock(&e->mu);
    if (!t)
        return halo_batch_refuse(b, e->m.failed, HALO_ERETRY,
                                 "kafka exporter: out of memory");
    return st;
}

/* ---- lifecycle ----------------------------------------------------------- */

/* librdkafka's message.max.bytes: room for max_message_bytes, and for a
 * lone span over it up to the receivers' 64 MiB request limit. */
static long long librdkafka_max_bytes(const kafka_cfg *cfg)
{
    long long want = cfg->max_message_bytes;
    if (want < 64ll << 20)
        want = 64ll << 20;
    want += 1 << 20;
    return want > 1000000000 ? 1000000000 : want;
}

/* The producer settings, before the user's rdkafka.* keys (KV: one
 * key/value pair per line). */
#define KV(k, v) k, v
static rd_kafka_conf_t *build_conf(kafka_exp *e, halo_err *err)
{
    const kafka_cfg *cfg = e->cfg;
    char timeout_ms[32], max_bytes[32], queue_kb[32];
    long long ms = cfg->timeout_ns / 1000000;
    snprintf(timeout_ms, sizeof timeout_ms, "%lld", ms > 0 ? ms : 1);
    snprintf(max_bytes, sizeof max_bytes, "%lld", librdkafka_max_bytes(cfg));
    /* librdkafka's own queue limit well above ours, so max_inflight_bytes
     * refuses first and "queue full" stays exceptional */
    long long kb = cfg->max_inflight_bytes / 1024 * 2 + (64 << 10);
    snprintf(queue_kb, sizeof queue_kb, "%lld",
             kb > 2147483647 ? 2147483647 : kb);
    const char *const settings[] = {
        KV("enable.idempotence", "true"),
        KV("acks", "all"),
        KV("compression.codec", compression_values[cfg->compression]),
        KV("message.timeout.ms", timeout_ms),
        KV("message.max.bytes", max_bytes),
        KV("queue.buffering.max.kbytes", queue_kb),
        KV("queue.buffering.max.messages", "1000000"),
        KV("linger.ms", "5"),
        KV("batch.num.messages", "10000"),
        /* keyed messages hashed like the Java client (murmur2), so other
         * producers of the topic place a trace in the same partition */
        KV("partitioner", "murmur2_random"),
        NULL,
    };
    rd_kafka_conf_t *conf = halo_kafka_conf_new(&cfg->brokers, settings,
                                                &cfg->rdkafka, &e->ko, err);
    if (conf && halo_kafka_require_acks_all(
                    conf,
                    "a request is answered only after every in-sync replica "
                    "has its spans",
                    err) != HALO_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (conf)
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    return conf;
}

static char *join_brokers(const halo_strlist *l)
{
    halo_buf b = HALO_BUF_INIT;
    for (size_t i = 0; i < l->n; i++)
        halo_buf_printf(&b, "%s%s", i ? "," : "", l->items[i]);
    if (l->n == 0)
        halo_buf_puts(&b, "");
    return halo_buf_steal(&b);
}

static halo_status kafka_create(halo_component *self, halo_err *err)
{
    const kafka_cfg *cfg = self->cfg;
    if (!cfg->topic || !*cfg->topic)
        return halo_fail(err, HALO_EINVAL, "invalid topic: empty");
    kafka_exp *e = calloc(1, sizeof *e);
    if (!e)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    e->self = self;
    e->cfg = cfg;
    e->prefix = self->log_prefix ? self->log_prefix : "exporter:kafka";
    e->ko.log_prefix = e->prefix;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->log_mu, NULL);
    pthread_cond_init(&e->idle_cv, NULL);
    self->ctx = e;
    halo_exporter_metrics_register(&e->m, self->id ? self->id : "kafka");
    e->brokers_text = join_brokers(&cfg->brokers);
    if (!e->brokers_text)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    e->conf = build_conf(e, err);
    return e->conf ? HALO_OK : HALO_EINVAL;
}

static halo_status kafka_start(halo_component *self, halo_err *err)
{
    kafka_exp *e = self->ctx;
    if (!e->conf)
        return halo_fail(err, HALO_EINVAL, "kafka exporter already started");
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, e->conf, why, sizeof why);
    if (!rk)
        return halo_fail(err, HALO_EINVAL, "could not create the producer: %s",
                         why);
    e->conf = NULL; /* now rk's */
    e->rkt = rd_kafka_topic_new(rk, e->cfg->topic, NULL);
    if (!e->rkt) {
        rd_kafka_destroy(rk);
        return halo_fail(err, HALO_EINVAL, "invalid topic \"%s\": %s",
                         e->cfg->topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
    }
    e->rk = rk;
    if (pthread_create(&e->poller, NULL, poller_main, e) != 0) {
        rd_kafka_topic_destroy(e->rkt);
        rd_kafka_destroy(rk);
        e->rk = NULL;
        e->rkt = NULL;
        return halo_fail(err, HALO_EIO, "could not start the poller thread");
    }
    e->poller_started = true;
    LOG_INFO(e->prefix,
             "producing to topic %s on %s (%s, compression %s, %s, "
             "max_message_bytes %lld)",
             e->cfg->topic, e->brokers_text, encoding_values[e->cfg->encoding],
             compression_values[e->cfg->compression],
             e->cfg->partition_traces_by_id ? "keyed by trace id" : "unkeyed",
             (long long)e->cfg->max_message_bytes);
    return HALO_OK;
}

/* Serve reports until none is outstanding or the deadline passes. */
static void drain_reports(kafka_exp *e, uint64_t deadline)
{
    while (atomic_load(&e->msgs_pending) > 0 && halo_mono_ns() < deadline)
        rd_kafka_poll(e->rk, 50);
}

/* Deliver what librdkafka still holds, within bounds, then purge the rest
 * so every batch gets its (retryable) answer from a report. */
static void flush_and_purge(kafka_exp *e)
{
    uint64_t wait = (uint64_t)e->cfg->timeout_ns + FLUSH_MARGIN_NS;
    if ((uint64_t)e->cfg->drain_timeout_ns < wait)
        wait = (uint64_t)e->cfg->drain_timeout_ns;
    long pending = atomic_load(&e->msgs_pending);
    if (pending > 0)
        LOG_INFO(e->prefix, "waiting up to %.1fs for %ld messages to %s",
                 (double)wait / 1e9, pending, e->cfg->topic);
    rd_kafka_flush(e->rk, (int)(wait / 1000000));
    pending = atomic_load(&e->msgs_pending);
    if (pending > 0) {
        LOG_WARN(e->prefix,
                 "%ld messages not delivered by shutdown: purged, their "
                 "requests answered retryably",
                 pending);
        rd_kafka_purge(e->rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    drain_reports(e, halo_mono_ns() + PURGE_WAIT_NS);
}

/* Batches whose reports never came (the handle is gone): answer them. */
static void fail_leftovers(kafka_exp *e)
{
    for (;;) {
        pthread_mutex_lock(&e->mu);
        tracker *t = e->live;
        pthread_mutex_unlock(&e->mu);
        if (!t)
            return;
        record_failure(t, HALO_ERETRY,
                       "kafka: exporter shut down before delivery to %s was "
                       "confirmed",
                       e->cfg->topic);
        complete(e, t);
    }
}

static void kafka_shutdown(halo_component *self)
{
    kafka_exp *e = self->ctx;
    if (!e || e->closed)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    while (e->producing > 0)
        pthread_cond_wait(&e->idle_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (e->poller_started) {
        atomic_store(&e->poller_stop, true);
        pthread_join(e->poller, NULL);
        e->poller_started = false;
    }
    if (e->rk) {
        flush_and_purge(e);
        rd_kafka_topic_destroy(e->rkt);
        rd_kafka_destroy(e->rk);
        e->rkt = NULL;
        e->rk = NULL;
        LOG_INFO(e->prefix, "producer closed");
    }
    fail_leftovers(e);
    halo_metric_set(e->m.depth, 0);
    e->closed = true;
}

static void kafka_destroy(halo_component *self)
{
    kafka_exp *e = self->ctx;
    if (!e)
        return;
    kafka_shutdown(self);
    if (e->conf)
        rd_kafka_conf_destroy(e->conf);
    pthread_cond_destroy(&e->idle_cv);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->log_mu);
    free(e->brokers_text);
    free(e);
    self->ctx = NULL;
}

static const halo_field schema[] = {
    {.key = "brokers",
     .type = HALO_F_STRLIST,
     .offset = offsetof(kafka_cfg, brokers),
     .def = "localhost:9092",
     .description = "bootstrap brokers (host:port)"},
    {.key = "topic",
     .type = HALO_F_STRING,
     .offset = offsetof(kafka_cfg, topic),
     .def = "otlp_spans",
     .description = "topic the messages are produced to"},
    {.key = "encoding",
     .type = HALO_F_ENUM,
     .offset = offsetof(kafka_cfg, encoding),
     .def = "otlp_proto",
     .enum_values = encoding_values,
     .description = "message value: an ExportTraceServiceRequest in "
                    "protobuf (otlp_proto) or OTLP/JSON (otlp_json)"},
    {.key = "partition_traces_by_id",
     .type = HALO_F_BOOL,
     .offset = offsetof(kafka_cfg, partition_traces_by_id),
     .def = "true",
     .description = "one trace per message, keyed by the trace id (hex), "
                    "so a trace's spans land in one partition"},
    {.key = "max_message_bytes",
     .type = HALO_F_SIZE,
     .offset = offsetof(kafka_cfg, max_message_bytes),
     .def = "1000000",
     .min = 1024,
     .max = 512.0 * 1024 * 1024,
     .description = "larger requests are split into several messages (a "
                    "single larger span is sent alone)"},
    {.key = "compression",
     .type = HALO_F_ENUM,
     .offset = offsetof(kafka_cfg, compression),
     .def = "none",
     .enum_values = compression_values,
     .description = "compression codec of the produced batches"},
    {.key = "timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(kafka_cfg, timeout_ns),
     .def = "5s",
     .min = 100e6,
     .max = 3600e9,
     .description = "how long librdkafka retries a message before its "
                    "request fails retryably (message.timeout.ms)"},
    {.key = "max_inflight_bytes",
     .type = HALO_F_SIZE,
     .offset = offsetof(kafka_cfg, max_inflight_bytes),
     .def = "64MiB",
     .min = 1024,
     .max = 1024.0 * 1024 * 1024 * 1024,
     .description = "encoded bytes awaiting delivery reports above which "
                    "new batches are refused (retryable)"},
    {.key = "drain_timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(kafka_cfg, drain_timeout_ns),
     .def = "30s",
     .min = 0,
     .max = 3600e9,
     .description = "at shutdown, the longest wait for delivery reports "
                    "(capped by timeout + 1s) before the rest is purged "
                    "and answered retryably"},
    {.key = "rdkafka.",
     .type = HALO_F_PASSTHROUGH,
     .offset = offsetof(kafka_cfg, rdkafka),
     .description = "any librdkafka producer property (rdkafka.linger.ms, "
                    "rdkafka.security.protocol, ...), overriding halo's"},
    {0},
};

const halo_component_def halo_exporter_kafka = {
    .kind = HALO_EXPORTER,
    .type = "kafka",
    .description = "produces spans as OTLP messages to a Kafka topic",
    .schema = schema,
    .cfg_size = sizeof(kafka_cfg),
    .create = kafka_create,
    .start = kafka_start,
    .consume = kafka_consume,
    .shutdown = kafka_shutdown,
    .destroy = kafka_destroy,
};
