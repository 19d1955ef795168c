/*
 * kafka_receiver.c -- the Kafka receiver component: OTLP trace messages
 * from Kafka topics into the pipeline, at least once.
 *
 * This file is the component's face (nginx module style, top-down): the
 * config schema, the lifecycle functions and the definition the registry
 * names. The work happens in kafka_rx_poll.c (consume, decode, batch, ack),
 * kafka_rx_rebalance.c (partition ownership) and kafka_rx_dlq.c (dead
 * letters); kafka_rx_internal.h explains how they fit.
 *
 * create() builds and checks both librdkafka confs (the consumer's and the
 * dead-letter producer's), so `halo validate` reports a bad rdkafka.* key
 * without connecting anywhere; start() makes the handles, subscribes and
 * starts the poll thread. shutdown() stops consuming, waits (bounded by
 * drain_timeout) for the in-flight messages to be confirmed, commits their
 * offsets and closes the consumer; it is safe without start and twice.
 */
#include "kafka_rx_internal.h"

#include "../../core/buf.h"
#include "../../core/clock.h"
#include "../../core/log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config schema ----------------------------------------------------- */

static const char *const offset_values[] = {"earliest", "latest", NULL};
static const char *const encoding_values[] = {"otlp_proto", "otlp_json", NULL};

static const halo_field schema[] = {
    {.key = "brokers",
     .type = HALO_F_STRLIST,
     .offset = offsetof(krx_cfg, brokers),
     .def = "localhost:9092",
     .description = "bootstrap brokers (host:port)"},
    {.key = "topics",
     .type = HALO_F_STRLIST,
     .offset = offsetof(krx_cfg, topics),
     .def = "otlp_spans",
     .description = "topics to consume (a name starting with ^ is a "
                    "regular expression)"},
    {.key = "group_id",
     .type = HALO_F_STRING,
     .offset = offsetof(krx_cfg, group_id),
     .def = "halo",
     .description = "consumer group: receivers sharing it split the "
                    "partitions"},
    {.key = "initial_offset",
     .type = HALO_F_ENUM,
     .offset = offsetof(krx_cfg, initial_offset),
     .def = "earliest",
     .enum_values = offset_values,
     .description = "where a partition without a committed offset starts "
                    "(auto.offset.reset)"},
    {.key = "encoding",
     .type = HALO_F_ENUM,
     .offset = offsetof(krx_cfg, encoding),
     .def = "otlp_proto",
     .enum_values = encoding_values,
     .description = "message value: an ExportTraceServiceRequest in "
                    "protobuf (otlp_proto) or OTLP/JSON (otlp_json)"},
    {.key = "dead_letter_topic",
     .type = HALO_F_STRING,
     .offset = offsetof(krx_cfg, dead_letter_topic),
     .description = "where undecodable or rejected messages are produced "
                    "(bytes unchanged); unset: they are skipped"},
    {.key = "max_inflight_messages",
     .type = HALO_F_INT,
     .offset = offsetof(krx_cfg, max_inflight_messages),
     .def = "20000",
     .min = 1,
     .max = 10000000,
     .description = "messages consumed but not yet confirmed above which "
                    "consumption stops (the partitions are paused when "
                    "that lasts 2 s)"},
    {.key = "max_inflight_bytes",
     .type = HALO_F_SIZE,
     .offset = offsetof(krx_cfg, max_inflight_bytes),
     /* 12 MiB keeps a SQLite persist node under DESIGN's 128 MiB (16 MiB
      * peaked at 122-160 MiB) for ~5% of its spans/s (bench/README.md,
      * 2026-11-23, session 7) */
     .def = "12MiB",
     .min = 1024,
     .max = 1024.0 * 1024 * 1024 * 1024,
     .description = "message bytes consumed but not yet confirmed above "
                    "which consumption stops (the partitions are paused when "
                    "that lasts 2 s)"},
    {.key = "commit_interval",
     .type = HALO_F_DURATION,
     .offset = offsetof(krx_cfg, commit_interval_ns),
     .def = "1s",
     .min = 10e6,
     .max = 3600e9,
     .description = "how often confirmed offsets are committed "
                    "(auto.commit.interval.ms)"},
    {.key = "drain_timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(krx_cfg, drain_timeout_ns),
     .def = "10s",
     .min = 0,
     .max = 3600e9,
     .description = "at shutdown and on partition revocation, the longest "
                    "wait for in-flight messages to be confirmed"},
    {.key = "rdkafka.",
     .type = HALO_F_PASSTHROUGH,
     .offset = offsetof(krx_cfg, rdkafka),
     .description = "any librdkafka consumer property "
                    "(rdkafka.session.timeout.ms, "
                    "rdkafka.security.protocol, ...), overriding halo's"},
    {0},
};

/* ---- create ------------------------------------------------------------ */

static halo_status check_cfg(const halo_component *self, const krx_cfg *cfg,
                             halo_err *err)
{
    if (cfg->topics.n == 0)
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: topics: at least one topic is needed",
                         self->id);
    for (size_t i = 0; i < cfg->topics.n; i++) {
        if (!cfg->topics.items[i][0])
            return halo_fail(err, HALO_EINVAL,
                             "receivers.%s: topics[%zu]: empty topic name",
                             self->id, i);
        if (cfg->dead_letter_topic &&
            strcmp(cfg->topics.items[i], cfg->dead_letter_topic) == 0)
            return halo_fail(err, HALO_EINVAL,
                             "receivers.%s: dead_letter_topic \"%s\" cannot "
                             "be one of the consumed topics",
                             self->id, cfg->dead_letter_topic);
    }
    if (!cfg->group_id || !cfg->group_id[0])
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: group_id: must not be empty", self->id);
    if (cfg->dead_letter_topic && !cfg->dead_letter_topic[0])
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: dead_letter_topic: must not be empty "
                         "(leave it unset to skip poison messages)",
                         self->id);
    /* at-least-once rests on storing offsets only after confirmation */
    for (size_t i = 0; i < cfg->rdkafka.n; i++)
        if (strcmp(cfg->rdkafka.keys[i], "enable.auto.offset.store") == 0 &&
            strcmp(cfg->rdkafka.values[i], "false") != 0)
            return halo_fail(err, HALO_EINVAL,
                             "receivers.%s: rdkafka.enable.auto.offset.store "
                             "cannot be enabled: the receiver stores an "
                             "offset only after its message was confirmed",
                             self->id);
    return HALO_OK;
}

static void metrics_init(krx_metrics *m, const char *id)
{
    char l[256], l2[320];
    snprintf(l, sizeof l, "receiver=\"%s\",transport=\"kafka\"", id);
    m->accepted = halo_counter("halo_receiver_accepted_spans_total",
                               "Spans stored durably and acknowledged.", l);
    m->refused = halo_counter(
        "halo_receiver_refused_spans_total",
        "Spans refused (malformed, rejected, or the pipeline said no).", l);
    snprintf(l, sizeof l, "receiver=\"%s\"", id);
    snprintf(l2, sizeof l2, "%s,reason=\"decode\"", l);
    m->skip_decode =
        halo_counter("halo_kafka_receiver_skipped_messages_total",
                     "Kafka messages not stored: undecodable (decode) or "
                     "rejected by the pipeline (rejected).",
                     l2);
    snprintf(l2, sizeof l2, "%s,reason=\"rejected\"", l);
    m->skip_refused =
        halo_counter("halo_kafka_receiver_skipped_messages_total",
                     "Kafka messages not stored: undecodable (decode) or "
                     "rejected by the pipeline (rejected).",
                     l2);
    m->dead_letter =
        halo_counter("halo_kafka_receiver_dead_letter_messages_total",
                     "Skipped messages delivered to the dead-letter topic.", l);
    m->retried = halo_counter("halo_kafka_receiver_retried_messages_total",
                              "Messages emitted again after a retryable "
                              "refusal downstream.",
                              l);
    m->inflight = halo_gauge("halo_kafka_receiver_inflight_messages",
                             "Messages consumed and not yet confirmed.", l);
    m->paused = halo_gauge("halo_kafka_receiver_paused",
                           "1 while the partitions are paused because too "
                           "much is in flight.",
                           l);
    m->pauses = halo_counter("halo_kafka_receiver_pauses_total",
                             "Times the partitions were paused because the "
                             "pipeline stayed full.",
                             l);
    m->nudges = halo_counter("halo_kafka_receiver_fetch_wakeups_total",
                             "Times librdkafka's idle fetcher was woken "
                             "after its queue drained (librdkafka < 2.2).",
                             l);
}

static halo_status consumer_conf(krx_core *k, const krx_cfg *cfg, halo_err *err)
{
    char interval[32];
    snprintf(interval, sizeof interval, "%lld",
             (long long)(cfg->commit_interval_ns / 1000000));
    const char *settings[] = {
        "group.id",
        cfg->group_id,
        "auto.offset.reset",
        offset_values[cfg->initial_offset],
        "enable.auto.commit",
        "true",
        "enable.auto.offset.store",
        "false",
        "enable.partition.eof",
        "false",
        "auto.commit.interval.ms",
        interval,
        /* librdkafka's prefetch is memory too (64 MiB by default). It
         * only has to cover a fetch round trip now that the fetcher is
         * woken when the queue drained (kafka_rx_nudge.c): 8 MiB ran as
         * fast as 32 MiB in bench/kafka.sh */
        "queued.max.messages.kbytes",
        "8192",
        /* librdkafka 2.2+: how long the fetcher backs off when that queue
         * is full (1 s by default); older ones are woken by the receiver
         * (kafka_rx_nudge.c). Last: dropped when unsupported. */
        "fetch.queue.backoff.ms",
        "20",
        NULL,
    };
    if (!krx_fetch_backoff_supported())
        settings[sizeof settings / sizeof *settings - 3] = NULL;
    k->conf = halo_kafka_conf_new(&cfg->brokers, settings, &cfg->rdkafka,
                                  &k->opaque, err);
    if (!k->conf)
        return HALO_EINVAL;
    krx_nudge_init(k, k->conf);
    rd_kafka_conf_set_rebalance_cb(k->conf, krx_rebalance_cb);
    k->topics = rd_kafka_topic_partition_list_new((int)cfg->topics.n);
    if (!k->topics)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    for (size_t i = 0; i < cfg->topics.n; i++)
        rd_kafka_topic_partition_list_add(k->topics, cfg->topics.items[i],
                                          RD_KAFKA_PARTITION_UA);
    return HALO_OK;
}

static krx_core *core_new(const halo_component *self, const krx_cfg *cfg)
{
    krx_core *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->prefix = strdup(self->log_prefix ? self->log_prefix : "receiver:kafka");
    k->dlq_topic =
        cfg->dead_letter_topic ? strdup(cfg->dead_letter_topic) : NULL;
    if (!k->prefix || (cfg->dead_letter_topic && !k->dlq_topic)) {
        free(k->prefix);
        free(k->dlq_topic);
        free(k);
        return NULL;
    }
    k->opaque.log_prefix = k->prefix;
    k->json = cfg->encoding == KRX_OTLP_JSON;
    k->drain_ns = (uint64_t)cfg->drain_timeout_ns;
    k->max_msgs = (size_t)cfg->max_inflight_messages;
    k->max_bytes = (size_t)cfg->max_inflight_bytes;
    k->next_due = UINT64_MAX;
    atomic_init(&k->stop, false);
    atomic_init(&k->dlq_stop, false);
    pthread_mutex_init(&k->mu, NULL);
    pthread_mutex_init(&k->log_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    metrics_init(&k->m, self->id ? self->id : "kafka");
    return k;
}

/* Release what create() made and start() did not take over. */
static void core_release(krx_core *k)
{
    if (k->conf)
        rd_kafka_conf_destroy(k->conf);
    if (k->dlq_conf)
        rd_kafka_conf_destroy(k->dlq_conf);
    if (k->topics)
        rd_kafka_topic_partition_list_destroy(k->topics);
    k->conf = NULL;
    k->dlq_conf = NULL;
    k->topics = NULL;
}

static halo_status krx_create(halo_component *self, halo_err *err)
{
    const krx_cfg *cfg = self->cfg;
    halo_status st = check_cfg(self, cfg, err);
    if (st != HALO_OK)
        return st;
    krx_core *k = core_new(self, cfg);
    if (!k)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    st = consumer_conf(k, cfg, err);
    if (st == HALO_OK && k->dlq_topic) {
        k->dlq_conf = krx_dlq_conf_new(k, cfg, err);
        if (!k->dlq_conf)
            st = HALO_EINVAL;
    }
    if (st != HALO_OK) {
        core_release(k);
        krx_core_free(k);
        return st;
    }
    self->ctx = k;
    return HALO_OK;
}

/* ---- start ------------------------------------------------------------- */

static void log_started(const krx_core *k, const krx_cfg *cfg)
{
    halo_buf t = HALO_BUF_INIT, b = HALO_BUF_INIT;
    for (size_t i = 0; i < cfg->topics.n; i++)
        halo_buf_printf(&t, "%s%s", i ? ", " : "", cfg->topics.items[i]);
    for (size_t i = 0; i < cfg->brokers.n; i++)
        halo_buf_printf(&b, "%s%s", i ? "," : "", cfg->brokers.items[i]);
    LOG_INFO(k->prefix, "consuming %s from %s as group \"%s\" (%s)%s%s",
             t.oom ? "topics" : t.data, b.oom ? "brokers" : b.data,
             cfg->group_id, encoding_values[cfg->encoding],
             k->dlq_topic ? "; dead letters to " : "",
             k->dlq_topic ? k->dlq_topic : "");
    halo_buf_free(&t);
    halo_buf_free(&b);
}

static halo_status krx_start(halo_component *self, halo_err *err)
{
    krx_core *k = self->ctx;
    if (k->rk || !k->conf)
        return k->rk ? HALO_OK
                     : halo_fail(err, HALO_EINVAL,
                                 "the receiver was started once already");
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, k->conf, why, sizeof why);
    if (!rk)
        return halo_fail(err, HALO_EINVAL, "could not create the consumer: %s",
                         why);
    k->conf = NULL; /* rd_kafka_new took it */
    rd_kafka_poll_set_consumer(rk);
    pthread_mutex_lock(&k->mu);
    k->rk = rk;
    pthread_mutex_unlock(&k->mu);
    k->self = self;
    halo_status st = krx_dlq_start(k, err);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (st == HALO_OK && (e = rd_kafka_subscribe(rk, k->topics)) != 0)
        st = halo_fail(err, HALO_EINVAL, "could not subscribe: %s",
                       rd_kafka_err2str(e));
    if (st == HALO_OK) {
        if (pthread_create(&k->poll_thread, NULL, krx_poll_main, k) == 0)
            k->poll_running = true;
        else
            st = halo_fail(err, HALO_EIO, "could not start the poll thread");
    }
    if (st != HALO_OK) {
        krx_dlq_stop(k);
        pthread_mutex_lock(&k->mu);
        k->rk = NULL;
        pthread_mutex_unlock(&k->mu);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return st;
    }
    log_started(k, self->cfg);
    return HALO_OK;
}

/* ---- shutdown and destroy ---------------------------------------------- */

static void krx_shutdown(halo_component *self)
{
    krx_core *k = self->ctx;
    if (!k)
        return;
    if (k->poll_running) {
        atomic_store(&k->stop, true);
        pthread_join(k->poll_thread, NULL);
        k->poll_running = false;
        LOG_INFO(k->prefix, "consumer closed");
    }
    krx_dlq_stop(k);
    k->self = NULL;
}

static void krx_destroy(halo_component *self)
{
    krx_core *k = self->ctx;
    if (!k)
        return;
    krx_shutdown(self);
    core_release(k);
    pthread_mutex_lock(&k->mu);
    k->destroyed = true;
    bool last = k->alive == 0;
    if (!last)
        LOG_WARN(k->prefix,
                 "%zu message(s) still downstream at destroy; their late "
                 "confirmations will be ignored",
                 k->alive);
    pthread_mutex_unlock(&k->mu);
    if (last)
        krx_core_free(k);
    self->ctx = NULL;
}

const halo_component_def halo_receiver_kafka = {
    .kind = HALO_RECEIVER,
    .type = "kafka",
    .description = "OTLP trace messages from Kafka topics, committed only "
                   "after they are stored (at least once)",
    .schema = schema,
    .cfg_size = sizeof(krx_cfg),
    .create = krx_create,
    .start = krx_start,
    .consume = NULL,
    .shutdown = krx_shutdown,
    .destroy = krx_destroy,
};
