/*
 * kafka.h -- librdkafka glue shared by the kafka receiver and exporter.
 *
 * Both build their rd_kafka_conf_t the same way: bootstrap.servers from the
 * `brokers` list, then the component's own settings (acks=all, idempotence,
 * group.id, ...), then every `rdkafka.*` key of the section passed straight
 * to rd_kafka_conf_set() (DESIGN §3), so a user can override anything. An
 * unknown or invalid key is an error naming the key, reported by `halo
 * validate` because components build their conf in create(). So is an
 * unreadable file named by a `*.location` option (ssl.ca.location, ...).
 * Values of secret options (sasl.password, ssl.key.password: see
 * core/secret.h) never appear in those errors or in librdkafka's log lines.
 *
 * librdkafka's own log lines and error events go to halo's log with the
 * component's prefix: the handle's opaque must point at a struct whose
 * first member is the `const char *` log prefix (halo_kafka_opaque).
 */
#ifndef HALO_KAFKA_H
#define HALO_KAFKA_H

#include "config.h"
#include "status.h"

#include <librdkafka/rdkafka.h>

/* Embed as the FIRST member of the struct passed as the handle's opaque. */
typedef struct halo_kafka_opaque {
    const char *log_prefix;
} halo_kafka_opaque;

/* A new conf: bootstrap.servers, then settings (NULL-terminated key, value
 * pairs; may be NULL), then passthrough (the section's rdkafka.* keys,
 * prefix stripped), then the log and error callbacks and opaque. NULL and
 * err set ("rdkafka.linger.ms: Invalid value ...") on any error. */
rd_kafka_conf_t *halo_kafka_conf_new(const halo_strlist *brokers,
                                     const char *const *settings,
                                     const halo_kvlist *passthrough,
                                     halo_kafka_opaque *opaque, halo_err *err);

/* A delivery report proves durability only with acks=all: HALO_EINVAL
 * ("rdkafka.acks: 1 cannot be used: <why> (acks=all)") when the user's
 * rdkafka.acks (or request.required.acks) weakened it in conf. */
halo_status halo_kafka_require_acks_all(const rd_kafka_conf_t *conf,
                                        const char *why, halo_err *err);

/* True when a passthrough key (prefix stripped) was given by the user. */
bool halo_kafka_conf_has(const halo_kvlist *passthrough, const char *key);

/* "brokers: ..." errors for an empty list or an entry without host:port. */
halo_status halo_kafka_check_brokers(const halo_strlist *brokers,
                                     halo_err *err);

/* The retryable/fatal classification of a delivery or consume error:
 * HALO_ERETRY for anything a later attempt may fix (timeouts, brokers
 * down, queue full), HALO_EINVAL for messages the broker will never take
 * (too large, invalid), HALO_EIO otherwise. */
halo_status halo_kafka_status_of(rd_kafka_resp_err_t err);

#endif
