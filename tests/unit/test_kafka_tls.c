/*
 * test_kafka_tls.c -- the rdkafka.* options for TLS and SASL, as far as
 * this machine can test them.
 *
 * librdkafka's mock cluster has no TLS listener, so a TLS round trip
 * cannot run here. What can: this librdkafka build has ssl and sasl
 * (builtin.features); the TLS/SASL options reach librdkafka unchanged; a
 * missing ssl.ca.location file is an error at create (what `halo
 * validate` reports), naming the option and the path; a wrong
 * ssl.key.password fails at start, clearly and without the password;
 * against the plaintext mock broker with security.protocol=ssl no span is
 * acknowledged (the batch is answered retryably); and no password reaches
 * the log. Certificates come from the `openssl` CLI (test_certs.h).
 */
#include "fixture_spans.h"
#include "harness.h"
#include "kafka_mock.h"
#include "test_certs.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/clock.h"
#include "core/component.h"
#include "core/config.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/metrics.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const halo_component_def halo_exporter_kafka;

#define KEY_PASS "canary-kafka-keypw-17"
#define SASL_PASS "canary-kafka-sasl-2b"

static char certs[256];

static bool make_certs(void)
{
    if (certs[0])
        return true;
    snprintf(certs, sizeof certs, "%s/kafka-ca", halo_test_tmpdir());
    if (mkdir(certs, 0700) != 0 || !test_certs_make(certs, "kafka", KEY_PASS)) {
        certs[0] = '\0';
        return false;
    }
    return true;
}

/* ---- the exporter from YAML -----------------------------------------------
 */

typedef struct kx {
    halo_component c;
    void *cfg;
    halo_node *root;
} kx;

static halo_status kx_open(kx *x, const char *yaml, bool start, halo_err *err)
{
    const halo_component_def *def = &halo_exporter_kafka;
    halo_errlist errs = {0};
    memset(x, 0, sizeof *x);
    x->root = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    x->cfg = calloc(1, def->cfg_size);
    if (!x->root || !halo_config_apply(def->schema, x->root, x->cfg,
                                       "exporters.kafka", &errs)) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "config error");
        halo_errlist_free(&errs);
        return HALO_EINVAL;
    }
    halo_errlist_free(&errs);
    x->c = (halo_component){.def = def,
                            .id = (char *)"kafka/tls",
                            .log_prefix = (char *)"exporter:kafka",
                            .cfg = x->cfg};
    halo_status st = def->create(&x->c, err);
    if (st == HALO_OK && start)
        st = def->start(&x->c, err);
    return st;
}

static void kx_close(kx *x)
{
    if (x->c.ctx) {
        x->c.def->shutdown(&x->c);
        x->c.def->destroy(&x->c);
    }
    if (x->cfg)
        halo_config_release(halo_exporter_kafka.schema, x->cfg);
    free(x->cfg);
    halo_node_free(x->root);
    memset(x, 0, sizeof *x);
}

/* The TLS + SASL options, files from certs. */
static void tls_yaml(char *buf, size_t cap, const char *brokers,
                     const char *protocol, const char *key_pass,
                     const char *extra)
{
    snprintf(buf, cap,
             "brokers: [\"%s\"]\ntopic: tls\ntimeout: 2s\n"
             "drain_timeout: 500ms\n"
             "rdkafka.security.protocol: %s\n"
             "rdkafka.ssl.ca.location: %s/ca.crt\n"
             "rdkafka.ssl.certificate.location: %s/server.crt\n"
             "rdkafka.ssl.key.location: %s/client.key\n"
             "rdkafka.ssl.key.password: \"%s\"\n"
             "rdkafka.sasl.mechanisms: PLAIN\n"
             "rdkafka.sasl.username: halo\n"
             "rdkafka.sasl.password: \"" SASL_PASS "\"\n"
             "%s",
             brokers, protocol, certs, certs, certs, key_pass,
             extra ? extra : "");
}

/* ---- acks ------------------------------------------------------------------
 */

static halo_batch *one_span(halo_test_ack *r)
{
    span_opts o = {.trace = 0x5e,
                   .span = 1,
                   .start_ns = halo_real_ns() - T0,
                   .dur_ns = 1000,
                   .agent = "agent-tls"};
    return acked_batch_of(&o, 1, halo_test_on_ack, r);
}

/* ---- the tests
 * --------------------------------------------------------------- */

TEST(this_librdkafka_has_ssl_and_sasl)
{
    char v[1024];
    size_t n = sizeof v;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_get(conf, "builtin.features", v, &n) ==
          RD_KAFKA_CONF_OK);
    rd_kafka_conf_destroy(conf);
    char padded[1100];
    snprintf(padded, sizeof padded, ",%s,", v);
    CHECK_CONTAINS(padded, ",ssl,");
    CHECK_CONTAINS(padded, ",sasl_plain,");
    CHECK_CONTAINS(padded, ",sasl_scram,");
}

TEST(tls_and_sasl_options_reach_librdkafka)
{
    CHECK(make_certs());
    char ca[800], crt[800], key[800];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    snprintf(crt, sizeof crt, "%s/server.crt", certs);
    snprintf(key, sizeof key, "%s/client.key", certs);
    char *keys[] = {
        "security.protocol", "ssl.ca.location",  "ssl.certificate.location",
        "ssl.key.location",  "ssl.key.password", "sasl.mechanisms",
        "sasl.username",     "sasl.password"};
    char *vals[] = {"sasl_ssl", ca,      crt,    key,
                    KEY_PASS,   "PLAIN", "halo", SASL_PASS};
    halo_kvlist pass = {keys, vals, 8};
    halo_strlist brokers = {(char *[]){"127.0.0.1:1"}, 1};
    halo_kafka_opaque op = {.log_prefix = "test"};
    halo_err err = {{0}};
    rd_kafka_conf_t *conf =
        halo_kafka_conf_new(&brokers, NULL, &pass, &op, &err);
    if (!conf)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK(conf);
    for (size_t i = 0; i < 8; i++) {
        char v[1024];
        size_t n = sizeof v;
        CHECK(rd_kafka_conf_get(conf, keys[i], v, &n) == RD_KAFKA_CONF_OK);
        if (strstr(keys[i], "password"))
            continue; /* librdkafka may keep sensitive values to itself */
        CHECK_STR(v, vals[i]);
    }
    rd_kafka_conf_destroy(conf);
}

TEST(a_missing_ca_file_fails_create)
{
    CHECK(make_certs());
    char yaml[4096];
    tls_yaml(yaml, sizeof yaml, "127.0.0.1:1", "ssl", KEY_PASS,
             "rdkafka.ssl.crl.location: /nonexistent/halo.crl\n");
    /* the CA path replaced by one that does not exist */
    char *at = strstr(yaml, "rdkafka.ssl.ca.location: ");
    CHECK(at);
    char fixed[4400];
    snprintf(fixed, sizeof fixed,
             "%.*srdkafka.ssl.ca.location: "
             "/nonexistent/halo-ca.pem%s",
             (int)(at - yaml), yaml, strchr(at, '\n'));
    kx x;
    halo_err err = {{0}};
    CHECK_INT(kx_open(&x, fixed, false, &err), HALO_EINVAL);
    kx_close(&x);
    CHECK_CONTAINS(err.msg, "rdkafka.ssl.ca.location: could not read "
                            "\"/nonexistent/halo-ca.pem\": No such file");
    CHECK(!strstr(err.msg, KEY_PASS) && !strstr(err.msg, SASL_PASS));

    /* "probe" (the system's CA paths) is not a file */
    tls_yaml(yaml, sizeof yaml, "127.0.0.1:1", "ssl", KEY_PASS, NULL);
    at = strstr(yaml, "rdkafka.ssl.ca.location: ");
    snprintf(fixed, sizeof fixed, "%.*srdkafka.ssl.ca.location: probe%s",
             (int)(at - yaml), yaml, strchr(at, '\n'));
    memset(&err, 0, sizeof err);
    halo_status st = kx_open(&x, fixed, false, &err);
    kx_close(&x);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
}

TEST(a_wrong_key_password_fails_start_without_showing_it)
{
    CHECK(make_certs());
    char yaml[4096];
    tls_yaml(yaml, sizeof yaml, "127.0.0.1:1", "ssl", "canary-wrong-keypw-99",
             NULL);
    kx x;
    halo_err err = {{0}};
    halo_test_capture cp;
    CHECK(halo_test_capture_start(&cp, "keypw.log"));
    halo_status st = kx_open(&x, yaml, true, &err);
    kx_close(&x);
    char *log = halo_test_capture_end(&cp);
    CHECK(st != HALO_OK);
    CHECK_CONTAINS(err.msg, "could not create the producer");
    CHECK_CONTAINS(err.msg, "ssl.key.location");
    CHECK(!strstr(err.msg, "canary-wrong-keypw-99"));
    CHECK(log);
    CHECK(!strstr(log, "canary-wrong-keypw-99"));
    CHECK(!strstr(log, SASL_PASS));
    free(log);
}

TEST(ssl_against_a_plaintext_broker_acks_nothing)
{
    CHECK(make_certs());
    kafka_mock m;
    CHECK(kafka_mock_start(&m, (const char *const[]){"tls:1", NULL}));
    char yaml[4096];
    tls_yaml(yaml, sizeof yaml, m.bootstrap, "ssl", KEY_PASS,
             "rdkafka.reconnect.backoff.ms: 20\n"
             "rdkafka.reconnect.backoff.max.ms: 200\n");
    kx x;
    halo_err err = {{0}};
    halo_test_capture cp;
    int level = halo_log_min_level;
    CHECK(halo_test_capture_start(&cp, "plain.log"));
    halo_log_set_level(HALO_LOG_DEBUG);
    halo_status st = kx_open(&x, yaml, true, &err);
    halo_test_ack r = HALO_TEST_ACK_INIT;
    halo_status cst = HALO_EINVAL;
    if (st == HALO_OK)
        cst = x.c.def->consume(&x.c, one_span(&r));
    /* the message timeout is 2 s: the answer comes, and it is not OK */
    if (st == HALO_OK)
        halo_test_ack_wait(&r, 1, 20000);
    kx_close(&x);
    halo_log_set_level(level);
    char *log = halo_test_capture_end(&cp);
    kafka_mock_stop(&m);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK(cst == HALO_OK || cst == HALO_ERETRY);
    CHECK_INT(halo_test_ack_calls(&r), 1);
    CHECK_INT(r.st, HALO_ERETRY);
    CHECK_CONTAINS(r.msg, "delivery to tls failed");
    CHECK(log);
    CHECK_CONTAINS(log, "SSL"); /* librdkafka said what went wrong */
    CHECK(!strstr(log, KEY_PASS));
    CHECK(!strstr(log, SASL_PASS));
    free(log);
}
