/*
 * kafka.c -- librdkafka configuration, logging and error mapping shared by
 * the kafka receiver and exporter (see kafka.h).
 */
#include "kafka.h"

#include "buf.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* librdkafka's syslog levels onto ours. */
static int level_of(int syslog_level)
{
    if (syslog_level <= 3)
        return HALO_LOG_ERROR;
    if (syslog_level == 4)
        return HALO_LOG_WARN;
    if (syslog_level <= 6)
        return HALO_LOG_INFO;
    return HALO_LOG_DEBUG;
}

static const char *prefix_of(const rd_kafka_t *rk)
{
    const halo_kafka_opaque *o = rd_kafka_opaque(rk);
    return o && o->log_prefix ? o->log_prefix : "kafka";
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    HALO_LOG_AT(level_of(level), prefix_of(rk), "librdkafka %s: %s", fac, buf);
}

/* Error events are informational: librdkafka retries by itself, and the
 * outcome of each message arrives through its delivery report. Only a
 * fatal error (idempotence broken) means the handle is unusable. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        LOG_ERROR(prefix_of(rk), "fatal Kafka error: %s: %s",
                  rd_kafka_err2name(orig), why);
        return;
    }
    /* a failed connection is already logged by librdkafka's own line */
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT ||
        err == RD_KAFKA_RESP_ERR__RESOLVE) {
        LOG_DEBUG(prefix_of(rk), "%s: %s", rd_kafka_err2name(err), reason);
        return;
    }
    LOG_WARN(prefix_of(rk), "%s: %s", rd_kafka_err2name(err), reason);
}

halo_status halo_kafka_check_brokers(const halo_strlist *brokers, halo_err *err)
{
    if (brokers->n == 0)
        return halo_fail(err, HALO_EINVAL,
                         "brokers: at least one broker (host:port) is needed");
    for (size_t i = 0; i < brokers->n; i++) {
        const char *b = brokers->items[i];
        const char *colon = strrchr(b, ':');
        if (!b[0] || !colon || colon == b || !colon[1])
            return halo_fail(err, HALO_EINVAL,
                             "brokers[%zu]: \"%s\" is not host:port", i, b);
    }
    return HALO_OK;
}

halo_status halo_kafka_require_acks_all(const rd_kafka_conf_t *conf,
                                        const char *why, halo_err *err)
{
    char v[32];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(conf, "acks", v, &n) != RD_KAFKA_CONF_OK ||
        strcmp(v, "-1") == 0) /* "all" reads back as -1 */
        return HALO_OK;
    return halo_fail(err, HALO_EINVAL,
                     "rdkafka.acks: %s cannot be used: %s (acks=all)", v, why);
}

bool halo_kafka_conf_has(const halo_kvlist *passthrough, const char *key)
{
    for (size_t i = 0; passthrough && i < passthrough->n; i++)
        if (strcmp(passthrough->keys[i], key) == 0)
            return true;
    return false;
}

static halo_status set(rd_kafka_conf_t *conf, const char *shown,
                       const char *key, const char *value, halo_err *err)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) !=
        RD_KAFKA_CONF_OK)
        return halo_fail(err, HALO_EINVAL, "%s%s: %s", shown, key, why);
    return HALO_OK;
}

rd_kafka_conf_t *halo_kafka_conf_new(const halo_strlist *brokers,
                                     const char *const *settings,
                                     const halo_kvlist *passthrough,
                                     halo_kafka_opaque *opaque, halo_err *err)
{
    if (halo_kafka_check_brokers(brokers, err) != HALO_OK)
        return NULL;
    halo_buf list = HALO_BUF_INIT;
    for (size_t i = 0; i < brokers->n; i++)
        halo_buf_printf(&list, "%s%s", i ? "," : "", brokers->items[i]);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf || list.oom) {
        halo_buf_free(&list);
        if (conf)
            rd_kafka_conf_destroy(conf);
        halo_fail(err, HALO_ENOMEM, "out of memory");
        return NULL;
    }
    halo_status st = set(conf, "", "bootstrap.servers", list.data, err);
    halo_buf_free(&list);
    for (size_t i = 0; st == HALO_OK && settings && settings[i]; i += 2)
        st = set(conf, "", settings[i], settings[i + 1], err);
    for (size_t i = 0; st == HALO_OK && passthrough && i < passthrough->n; i++)
        st = set(conf, "rdkafka.", passthrough->keys[i], passthrough->values[i],
                 err);
    if (st != HALO_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    return conf;
}

halo_status halo_kafka_status_of(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return HALO_OK;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return HALO_EINVAL;
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        return HALO_EIO;
    default:
        return HALO_ERETRY;
    }
}
