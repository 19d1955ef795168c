/*
 * kafka.c -- librdkafka configuration, logging and error mapping shared by
 * the kafka receiver and exporter (see kafka.h).
 *
 * Secrets. rdkafka.* options whose name is a secret's (sasl.password,
 * ssl.key.password, ssl.keystore.password, sasl.oauthbearer.client.secret:
 * core/secret.h) were registered by the config schema; every text that
 * comes from librdkafka is scrubbed of them: a rejected option's reason
 * here, its log lines and error events by halo_log itself (core/log.c). A
 * rejected secret option never quotes its value.
 *
 * Files. Options naming a file (ssl.ca.location, ssl.key.location, ...)
 * are only opened by librdkafka when the handle is made (start), so a
 * missing or unreadable file is found here, at create / `halo validate`
 * time, with the path and the system's reason.
 */
#include "kafka.h"

#include "buf.h"
#include "log.h"
#include "secret.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* librdkafka's lines and errors go through halo_log, which scrubs every
 * registered secret (core/log.c): nothing to do here for them. */
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
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) ==
        RD_KAFKA_CONF_OK)
        return HALO_OK;
    if (halo_secret_name(key)) /* also when too short to be registered */
        halo_secret_scrub_one(why, sizeof why, value);
    halo_secret_scrub(why, sizeof why);
    return halo_fail(err, HALO_EINVAL, "%s%s: %s", shown, key, why);
}

/* A file option ("...location": ssl.ca.location, ssl.key.location, ...)
 * must name a readable file or directory; ssl.ca.location may also be
 * librdkafka's "probe" (the system's CA paths). */
static halo_status check_file(const char *key, const char *value, halo_err *err)
{
    size_t kl = strlen(key), sl = strlen(".location");
    if (kl < sl || strcmp(key + kl - sl, ".location") != 0)
        return HALO_OK;
    if (strcmp(key, "ssl.ca.location") == 0 && strcmp(value, "probe") == 0)
        return HALO_OK;
    if (access(value, R_OK) != 0)
        return halo_fail(err, HALO_EINVAL,
                         "rdkafka.%s: could not read \"%s\": %s", key, value,
                         strerror(errno));
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
    for (size_t i = 0; st == HALO_OK && passthrough && i < passthrough->n; i++)
        st = check_file(passthrough->keys[i], passthrough->values[i], err);
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
