/*
 * kafka_rx_dlq.c -- the dead-letter producer.
 *
 * With dead_letter_topic set, a poison message (undecodable, or rejected
 * by the pipeline on its own) is produced to that topic unchanged: same
 * key, same bytes, plus headers saying where it came from and why:
 *
 *   halo.source.topic, halo.source.partition, halo.source.offset, halo.error
 *
 * The producer is the receiver's own (acks=all, idempotent, the section's
 * brokers and rdkafka.* keys minus the consumer-only ones, which would only
 * earn a warning). Its delivery reports are served by a small thread of its
 * own, so they arrive while the poll thread waits in a revocation. A
 * message is marked done -- its offset may be committed -- only on a
 * successful delivery report; a failed one is produced again after a
 * backoff. At shutdown whatever is still queued is purged and left
 * uncommitted (read again after a restart).
 */
#include "kafka_rx_internal.h"

#include "../../core/clock.h"
#include "../../core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_POLL_MS 100
#define DLQ_FLUSH_MS 5000
#define DLQ_BACKOFF_MIN_NS 100000000ull
#define DLQ_BACKOFF_MAX_NS 5000000000ull

/* ---- the conf ---------------------------------------------------------- */

/* True when librdkafka documents key as a consumer-only property (its
 * property table, column C/P == "C"). table: rd_kafka_conf_properties_show
 * output; NULL: unknown, nothing is filtered. */
static bool consumer_only(const char *table, const char *key)
{
    size_t kl = strlen(key);
    for (const char *line = table; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > kl && strncmp(line, key, kl) == 0 &&
            (line[kl] == ' ' || line[kl] == '|')) {
            const char *bar = memchr(line, '|', len);
            if (bar) {
                const char *c = bar + 1;
                while (*c == ' ')
                    c++;
                if (*c == 'C' && (c[1] == ' ' || c[1] == '|'))
                    return true;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

static char *property_table(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    rd_kafka_conf_properties_show(f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                      void *opaque);

rd_kafka_conf_t *krx_dlq_conf_new(krx_core *k, const krx_cfg *cfg,
                                  halo_err *err)
{
    static const char *const settings[] = {
        "acks", "all", "enable.idempotence", "true", NULL,
    };
    char *table = property_table();
    halo_kvlist mine = {0};
    rd_kafka_conf_t *conf = NULL;
    if (cfg->rdkafka.n) {
        mine.keys = calloc(cfg->rdkafka.n, sizeof *mine.keys);
        mine.values = calloc(cfg->rdkafka.n, sizeof *mine.values);
        if (!mine.keys || !mine.values) {
            halo_fail(err, HALO_ENOMEM, "out of memory");
            goto cleanup;
        }
    }
    for (size_t i = 0; i < cfg->rdkafka.n; i++) {
        if (consumer_only(table, cfg->rdkafka.keys[i]))
            continue;
        mine.keys[mine.n] = cfg->rdkafka.keys[i];
        mine.values[mine.n] = cfg->rdkafka.values[i];
        mine.n++;
    }
    halo_err why = {{0}};
    conf =
        halo_kafka_conf_new(&cfg->brokers, settings, &mine, &k->opaque, &why);
    /* a poison message's offset is committed on its delivery report */
    if (conf && halo_kafka_require_acks_all(
                    conf,
                    "a dead letter's offset is committed only once every "
                    "in-sync replica has it",
                    &why) != HALO_OK) {
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    if (conf)
        rd_kafka_conf_set_dr_msg_cb(conf, delivered);
    else
        halo_errf(err, "dead-letter producer: %s", why.msg);
cleanup:
    free(mine.keys);
    free(mine.values);
    free(table);
    return conf;
}

/* ---- producing --------------------------------------------------------- */

static uint64_t backoff_ns(unsigned attempts)
{
    uint64_t ns = DLQ_BACKOFF_MIN_NS;
    for (unsigned i = 1; i < attempts && ns < DLQ_BACKOFF_MAX_NS; i++)
        ns *= 2;
    return ns < DLQ_BACKOFF_MAX_NS ? ns : DLQ_BACKOFF_MAX_NS;
}

/* Back on the pending list after a failure. */
static void again(krx_core *k, krx_msg *m)
{
    pthread_mutex_lock(&k->mu);
    m->attempts++;
    bool last = krx_schedule_locked(k, m, KRX_DEAD_LETTER,
                                    halo_mono_ns() + backoff_ns(m->attempts));
    pthread_mutex_unlock(&k->mu);
    if (last)
        krx_core_free(k);
}

void krx_dlq_send(krx_core *k, krx_msg *m)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)m->part->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    m->state = KRX_DLQ_SENT;
    /* no copy flag: the bytes live in m until its delivery report */
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->dlq, RD_KAFKA_V_TOPIC(k->dlq_topic),
        RD_KAFKA_V_KEY((void *)m->key, m->key_len),
        RD_KAFKA_V_VALUE((void *)m->payload, m->len),
        RD_KAFKA_V_HEADER("halo.source.topic", m->part->topic, -1),
        RD_KAFKA_V_HEADER("halo.source.partition", part, -1),
        RD_KAFKA_V_HEADER("halo.source.offset", off, -1),
        RD_KAFKA_V_HEADER("halo.error", m->why, -1), RD_KAFKA_V_OPAQUE(m),
        RD_KAFKA_V_END);
    if (e) {
        krx_warn_limited(k,
                         "%s/%d/%lld: could not produce to dead-letter "
                         "topic %s: %s",
                         m->part->topic, (int)m->part->partition,
                         (long long)m->offset, k->dlq_topic,
                         rd_kafka_err2str(e));
        again(k, m);
    }
}

/* Delivery report, on the DLQ thread (or in the final flush). */
static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                      void *opaque)
{
    (void)rk;
    (void)opaque;
    krx_msg *m = rkm->_private;
    krx_core *k = m->k;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        halo_metric_add(k->m.dead_letter, 1);
        LOG_DEBUG(k->prefix, "%s/%d/%lld: produced to dead-letter topic %s",
                  m->part->topic, (int)m->part->partition, (long long)m->offset,
                  k->dlq_topic);
        pthread_mutex_lock(&k->mu);
        bool last = krx_finish_locked(k, m, true);
        pthread_mutex_unlock(&k->mu);
        if (last)
            krx_core_free(k);
        return;
    }
    if (rkm->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
        rkm->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        krx_warn_limited(k, "%s/%d/%lld: dead-letter delivery failed: %s",
                         m->part->topic, (int)m->part->partition,
                         (long long)m->offset, rd_kafka_err2str(rkm->err));
    again(k, m); /* finished unstored instead when closing */
}

/* ---- the thread -------------------------------------------------------- */

static void *dlq_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kafka-rx-dlq");
    krx_core *k = arg;
    while (!atomic_load(&k->dlq_stop))
        rd_kafka_poll(k->dlq, DLQ_POLL_MS);
    return NULL;
}

halo_status krx_dlq_start(krx_core *k, halo_err *err)
{
    if (!k->dlq_conf)
        return HALO_OK;
    char why[512];
    k->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, k->dlq_conf, why, sizeof why);
    if (!k->dlq)
        return halo_fail(err, HALO_EINVAL,
                         "could not create the dead-letter producer: %s", why);
    k->dlq_conf = NULL; /* rd_kafka_new took it */
    if (pthread_create(&k->dlq_thread, NULL, dlq_main, k) != 0) {
        rd_kafka_destroy(k->dlq);
        k->dlq = NULL;
        return halo_fail(err, HALO_EIO,
                         "could not start the dead-letter thread");
    }
    k->dlq_running = true;
    return HALO_OK;
}

void krx_dlq_stop(krx_core *k)
{
    if (!k->dlq)
        return;
    rd_kafka_purge(k->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (k->dlq_running) {
        atomic_store(&k->dlq_stop, true);
        pthread_join(k->dlq_thread, NULL);
        k->dlq_running = false;
    }
    /* serves the purged messages' reports: they are finished unstored */
    if (rd_kafka_flush(k->dlq, DLQ_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        LOG_WARN(k->prefix, "dead-letter producer: %d message(s) left",
                 rd_kafka_outq_len(k->dlq));
    rd_kafka_destroy(k->dlq);
    k->dlq = NULL;
}
