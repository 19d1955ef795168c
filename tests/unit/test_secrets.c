/*
 * test_secrets.c -- no secret reaches a log line, an error message, the
 * metrics or `halo validate` output, on any path (issue 8).
 *
 * Every secret setting gets its own canary string: the LLM api_key and a
 * secret header, the redaction hash_key, Kafka's sasl.password and
 * ssl.key.password, a PostgreSQL DSN password (URI and key=value), bearer
 * tokens, a misspelt ${env:...} default, a secret URL query key. Each test
 * provokes the errors of one path -- a bad value next to (or in) the
 * secret, librdkafka rejecting an option, libpq failing to connect or to
 * parse, curl failing to connect, an invalid token list -- captures stderr
 * (the log) and the error strings, and checks that (a) the error is still
 * clear (it names the field or the failure) and (b) no canary appears, nor
 * in a /metrics rendering. `halo validate` and `halo traces list --store`
 * run as the real binary ($HALO_BIN).
 */
#include "harness.h"

#include "analyzer/analyzer_config.h"
#include "analyzer/llm.h"
#include "core/buf.h"
#include "core/component.h"
#include "core/config.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/secret.h"
#include "receivers/otlp/otlp_auth.h"
#include "storage/store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const halo_component_def halo_exporter_kafka;
extern const halo_component_def halo_exporter_postgres;

#define C_LLM "canary-llm-key-7f3a"
#define C_HDR "canary-hdr-key-91bd"
#define C_HASH "canary-hash-key-c0de"
#define C_SASL "canary-sasl-pw-55e1"
#define C_SSLKEY "canary-sslkey-pw-a9"
#define C_PG "canary-pg-pw-0b7c"
#define C_PG2 "canary-pg-kv-pw-61"
#define C_TOKEN "canary-bearer-tok-3d"
#define C_DEF "canary-default-e4"
#define C_URLQ "canary-url-query-88"

static const char *const canaries[] = {
    C_LLM, C_HDR,   C_HASH, C_SASL, C_SSLKEY, C_PG,
    C_PG2, C_TOKEN, C_DEF,  C_URLQ, NULL,
};

/* The first canary in text, else NULL. */
static const char *leaked(const char *text)
{
    for (size_t i = 0; text && canaries[i]; i++)
        if (strstr(text, canaries[i]))
            return canaries[i];
    return NULL;
}

#define CHECK_CLEAN(text)                                                      \
    do {                                                                       \
        const char *t_ = (text), *l_ = leaked(t_);                             \
        if (l_)                                                                \
            fprintf(stderr, "  %s:%d: %s leaked in:\n%s\n", __FILE__,          \
                    __LINE__, l_, t_);                                         \
        CHECK(!l_);                                                            \
    } while (0)

/* The metrics page, as /metrics serves it. */
static char *metrics_page(void)
{
    halo_buf b = HALO_BUF_INIT;
    halo_metrics_render(&b);
    return halo_buf_steal(&b);
}

static const char *halo_bin(void)
{
    const char *b = getenv("HALO_BIN");
    return b && *b ? b : "./halo";
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fputs(text, f);
    return fclose(f) == 0;
}

/* ---- one component from YAML ------------------------------------------- */

typedef struct comp {
    halo_component c;
    void *cfg;
    halo_node *root;
    const halo_component_def *def;
} comp;

/* Config, create, start when asked; the first config error into err. */
static halo_status comp_open(comp *x, const halo_component_def *def,
                             const char *yaml, bool start, halo_err *err)
{
    halo_errlist errs = {0};
    memset(x, 0, sizeof *x);
    x->def = def;
    x->root = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    x->cfg = calloc(1, def->cfg_size);
    if (!x->root || !halo_config_apply(def->schema, x->root, x->cfg,
                                       "exporters.x", &errs)) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "config error");
        halo_errlist_free(&errs);
        return HALO_EINVAL;
    }
    halo_errlist_free(&errs);
    x->c = (halo_component){.def = def,
                            .id = (char *)"x/secret",
                            .log_prefix = (char *)"exporter:x",
                            .cfg = x->cfg};
    halo_status st = def->create(&x->c, err);
    if (st == HALO_OK && start)
        st = def->start(&x->c, err);
    return st;
}

static void comp_close(comp *x)
{
    if (x->c.ctx) {
        x->def->shutdown(&x->c);
        x->def->destroy(&x->c);
    }
    if (x->cfg)
        halo_config_release(x->def->schema, x->cfg);
    free(x->cfg);
    halo_node_free(x->root);
    memset(x, 0, sizeof *x);
}

/* ---- the rules ----------------------------------------------------------- */

TEST(secret_names)
{
    static const char *const yes[] = {"sasl.password",
                                      "ssl.key.password",
                                      "ssl.keystore.password",
                                      "ssl.key.pem",
                                      "sasl.oauthbearer.client.secret",
                                      "sasl.oauthbearer.config",
                                      "password",
                                      "sslpassword",
                                      "api_key",
                                      "x-api-key",
                                      "Authorization",
                                      "access_token",
                                      "apikey",
                                      "X-Amz-Signature",
                                      "client_secret",
                                      NULL};
    static const char *const no[] = {"ssl.key.location",
                                     "ssl.ca.location",
                                     "ssl.keystore.location",
                                     "sasl.kerberos.keytab",
                                     "sasl.username",
                                     "security.protocol",
                                     "sslkey",
                                     "sslrootcert",
                                     "passfile",
                                     "sslmode",
                                     "linger.ms",
                                     "keepalives",
                                     "sasl.oauthbearer.token.endpoint.url",
                                     "user",
                                     NULL};
    for (size_t i = 0; yes[i]; i++) {
        if (!halo_secret_name(yes[i]))
            fprintf(stderr, "  %s should be a secret\n", yes[i]);
        CHECK(halo_secret_name(yes[i]));
    }
    for (size_t i = 0; no[i]; i++) {
        if (halo_secret_name(no[i]))
            fprintf(stderr, "  %s should not be a secret\n", no[i]);
        CHECK(!halo_secret_name(no[i]));
    }
}

TEST(redaction_of_urls_and_pairs)
{
    char out[256];
    CHECK_STR(halo_redact_url("https://u:" C_PG "@h:1/v1?a=1&api_key=" C_URLQ
                              "&b=2",
                              out, sizeof out),
              "https://u:***@h:1/v1?a=1&api_key=***&b=2");
    CHECK_STR(
        halo_redact_url("http://h/x?access%5Ftoken=" C_URLQ, out, sizeof out),
        "http://h/x?access%5Ftoken=***");
    CHECK_STR(halo_redact_kv_pairs("host=h sslkey=/k password='" C_PG2
                                   " x' sslmode=require",
                                   out, sizeof out),
              "host=h sslkey=/k password=*** sslmode=require");
    CHECK_STR(
        halo_pg_redact_dsn("postgres:host=h password=" C_PG2, out, sizeof out),
        "postgres:host=h password=***");

    /* the registry: registered values go, short ones are not taken */
    char msg[128];
    halo_secret_register("canary-registry-1");
    halo_secret_register("abc");
    snprintf(msg, sizeof msg, "x canary-registry-1 y abc canary-registry-1");
    CHECK(halo_secret_scrub(msg, sizeof msg));
    CHECK_STR(msg, "x *** y abc ***");
}

/* ---- the config schema --------------------------------------------------- */

typedef struct inner_cfg {
    char *key;
    bool on;
} inner_cfg;

typedef struct outer_cfg {
    inner_cfg llm;
    bool llm_present;
    char *secret_with_default;
    int64_t n;
    halo_kvlist pass;
} outer_cfg;

static const halo_field inner_schema[] = {
    {.key = "key", .type = HALO_F_SECRET, .offset = offsetof(inner_cfg, key)},
    {.key = "on", .type = HALO_F_BOOL, .offset = offsetof(inner_cfg, on)},
    {.key = NULL},
};

static const halo_field outer_schema[] = {
    {.key = "llm",
     .type = HALO_F_SECTION,
     .offset = offsetof(outer_cfg, llm),
     .sub = inner_schema,
     .present_offset = offsetof(outer_cfg, llm_present)},
    {.key = "dflt",
     .type = HALO_F_SECRET,
     .offset = offsetof(outer_cfg, secret_with_default),
     .def = "canary-schema-default",
     .description = "a secret with a default"},
    {.key = "n", .type = HALO_F_INT, .offset = offsetof(outer_cfg, n)},
    {.key = "rdkafka.",
     .type = HALO_F_PASSTHROUGH,
     .offset = offsetof(outer_cfg, pass)},
    {.key = NULL},
};

/* Apply yaml to outer_schema; every error message joined into *msgs. */
static bool apply_outer(const char *yaml, outer_cfg *cfg, char **msgs)
{
    halo_errlist errs = {0};
    halo_buf b = HALO_BUF_INIT;
    memset(cfg, 0, sizeof *cfg);
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    bool ok = root && halo_config_apply(outer_schema, root, cfg, "x", &errs);
    for (size_t i = 0; i < errs.n; i++)
        halo_buf_printf(&b, "%s\n", errs.msgs[i]);
    halo_buf_putc(&b, '\0');
    *msgs = halo_buf_steal(&b);
    halo_errlist_free(&errs);
    halo_node_free(root);
    return ok;
}

TEST(schema_never_shows_a_secret)
{
    outer_cfg cfg;
    char *msgs = NULL;
    /* a secret section given a scalar: the scalar is not quoted */
    CHECK(!apply_outer("llm: " C_LLM "\n", &cfg, &msgs));
    CHECK_CONTAINS(msgs, "x.llm: expected a mapping, got a scalar");
    CHECK_CLEAN(msgs);
    halo_config_release(outer_schema, &cfg);
    free(msgs);

    /* the secret is read; an error elsewhere that quotes it (here a value
     * equal to it) shows *** instead */
    CHECK(!apply_outer("llm: { key: " C_LLM ", on: " C_LLM " }\n"
                       "rdkafka.sasl.password: " C_SASL "\n"
                       "n: " C_SASL "\n",
                       &cfg, &msgs));
    CHECK_STR(cfg.llm.key, C_LLM);
    CHECK_INT(cfg.pass.n, 1);
    CHECK_STR(cfg.pass.values[0], C_SASL);
    CHECK_CONTAINS(msgs, "x.llm.on: invalid boolean \"***\"");
    CHECK_CONTAINS(msgs, "x.n: invalid integer \"***\"");
    CHECK_CLEAN(msgs);
    halo_config_release(outer_schema, &cfg);
    free(msgs);

    /* a misspelt default is quoted only up to its operator */
    halo_errlist errs = {0};
    const char *y = "k: ${env:HALO_NO_SUCH_VAR-" C_DEF "}\n";
    CHECK(!halo_config_parse(y, strlen(y), "t.yaml", &errs));
    CHECK(errs.n == 1);
    CHECK_CONTAINS(errs.msgs[0],
                   "invalid substitution \"${env:HALO_NO_SUCH_VAR-...}\"");
    CHECK_CLEAN(errs.msgs[0]);
    halo_errlist_free(&errs);

    /* describe: a secret's default is not printed */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f);
    halo_config_describe(outer_schema, "", f);
    fclose(f);
    CHECK_CONTAINS(text, "secret");
    CHECK(!strstr(text, "canary-schema-default"));
    free(text);
}

/* ---- halo validate ------------------------------------------------------- */

static const char validate_yaml[] =
    "receivers:\n"
    "  otlp:\n"
    "    protocols: { http: { endpoint: \"127.0.0.1:0\" } }\n"
    "    auth: { bearer_token: { tokens_env: HALO_TEST_SECRET_TOKENS } }\n"
    "processors:\n"
    "  redaction: { action: hash, hash_key: \"" C_HASH "\" }\n"
    "exporters:\n"
    "  kafka:\n"
    "    brokers: [\"127.0.0.1:1\"]\n"
    "    topic: t\n"
    "    rdkafka.sasl.password: \"" C_SASL "\"\n"
    "    rdkafka.ssl.key.password: \"" C_SSLKEY "\"\n"
    "    rdkafka.ssl.ca.location: /nonexistent/halo-ca.pem\n"
    "  postgres:\n"
    "    dsn: \"postgresql://halo:" C_PG "@127.0.0.1:1/x?bogus=" C_PG "\"\n"
    "analyzer:\n"
    "  store: postgres\n"
    "  llm:\n"
    "    base_url: \"http://127.0.0.1:1/v1?api_key=" C_URLQ "\"\n"
    "    model: m\n"
    "    api_key: \"" C_LLM "\"\n"
    "    headers: [\"x-api-key: " C_HDR "\"]\n"
    "    temperature: \"" C_LLM "\"\n"
    "service:\n"
    "  pipelines:\n"
    "    traces: { receivers: [otlp], processors: [redaction],\n"
    "              exporters: [kafka, postgres] }\n";

TEST(validate_output_has_no_secret)
{
    char path[700], cmd[1600];
    int rc = 0;
    snprintf(path, sizeof path, "%s/secrets.yaml", halo_test_tmpdir());
    CHECK(write_file(path, validate_yaml));
    snprintf(cmd, sizeof cmd,
             "HALO_TEST_SECRET_TOKENS='" C_TOKEN " " C_TOKEN "' "
             "'%s' validate --config '%s' 2>&1",
             halo_bin(), path);
    char *out = halo_test_run(cmd, &rc);
    CHECK(out);
    if (rc != 1)
        fprintf(stderr, "  output:\n%s\n", out);
    CHECK_INT(rc, 1);
    /* every error still says what is wrong */
    CHECK_CONTAINS(out, "temperature: invalid number \"***\"");
    CHECK_CONTAINS(out, "v1?api_key=***\": a query or fragment");
    CHECK_CLEAN(out);
    free(out);

    /* the same file with the value errors fixed: what create() finds */
    char *fixed = strdup(validate_yaml);
    CHECK(fixed);
    char *t = strstr(fixed, "    temperature:");
    memcpy(t, "    #", 5);
    /* and without the base_url whose query halo validate refuses */
    char *u = strstr(fixed, "    base_url:");
    memmove(u, strchr(u, '\n') + 1, strlen(strchr(u, '\n') + 1) + 1);
    CHECK(write_file(path, fixed));
    free(fixed);
    out = halo_test_run(cmd, &rc);
    CHECK(out);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(out, "rdkafka.ssl.ca.location: could not read "
                        "\"/nonexistent/halo-ca.pem\"");
    CHECK_CLEAN(out);
    free(out);

    /* a DSN's password is a secret from the moment the schema reads the
     * DSN, before the exporter that parses it is created */
    CHECK(write_file(path,
                     "exporters:\n"
                     "  postgres:\n"
                     "    dsn: \"postgresql://halo:" C_PG "@127.0.0.1:1/x\"\n"
                     "    num_connections: \"" C_PG "\"\n"
                     "  sqlite/b: { path: \"host=h password='" C_SASL
                     "' dbname=x\", retention: \"" C_SASL "\" }\n"));
    out = halo_test_run(cmd, &rc);
    CHECK(out);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(out, "num_connections: invalid integer \"***\"");
    CHECK_CONTAINS(out, "retention: invalid duration \"***\"");
    CHECK_CLEAN(out);
    free(out);

    /* a misspelt ${env:...} default */
    CHECK(write_file(path, "exporters:\n  debug: {}\n"
                           "  kafka: { topic: \"${env:HALO_NO_SUCH_X-" C_DEF
                           "}\" }\n"));
    out = halo_test_run(cmd, &rc);
    CHECK(out);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(out, "invalid substitution");
    CHECK_CLEAN(out);
    free(out);
}

/* ---- Kafka --------------------------------------------------------------- */

TEST(kafka_errors_and_logs_have_no_secret)
{
    comp x;
    halo_err err = {{0}};
    halo_test_capture cp;
    int level = halo_log_min_level;
    CHECK(halo_test_capture_start(&cp, "kafka.log"));
    halo_log_set_level(HALO_LOG_DEBUG);
    /* librdkafka rejects an option next to the passwords */
    halo_status st1 = comp_open(&x, &halo_exporter_kafka,
                                "brokers: [\"127.0.0.1:1\"]\ntopic: t\n"
                                "rdkafka.sasl.password: " C_SASL "\n"
                                "rdkafka.ssl.key.password: " C_SSLKEY "\n"
                                "rdkafka.linger.ms: " C_SASL "\n",
                                false, &err);
    char msg1[HALO_ERR_MAX];
    snprintf(msg1, sizeof msg1, "%s", err.msg);
    comp_close(&x);
    /* a librdkafka handle with every debug context on, SASL over TLS to a
     * broker nobody runs: its log lines, its errors */
    memset(&err, 0, sizeof err);
    halo_status st2 = comp_open(&x, &halo_exporter_kafka,
                                "brokers: [\"127.0.0.1:1\"]\ntopic: t\n"
                                "rdkafka.security.protocol: sasl_ssl\n"
                                "rdkafka.sasl.mechanisms: PLAIN\n"
                                "rdkafka.sasl.username: halo\n"
                                "rdkafka.sasl.password: " C_SASL "\n"
                                "rdkafka.ssl.key.password: " C_SSLKEY "\n"
                                "rdkafka.debug: all\n",
                                true, &err);
    char msg2[HALO_ERR_MAX];
    snprintf(msg2, sizeof msg2, "%s", err.msg);
    comp_close(&x);
    halo_log_set_level(level);
    char *log = halo_test_capture_end(&cp);
    CHECK_INT(st1, HALO_EINVAL);
    CHECK_CONTAINS(msg1, "rdkafka.linger.ms");
    CHECK_CLEAN(msg1);
    if (st2 != HALO_OK)
        fprintf(stderr, "  %s\n", msg2);
    CHECK_INT(st2, HALO_OK);
    CHECK(log);
    CHECK_CONTAINS(log, "sasl.password"); /* librdkafka dumped its config */
    CHECK_CLEAN(log);
    free(log);
    char *page = metrics_page();
    CHECK_CLEAN(page);
    free(page);
}

/* ---- PostgreSQL ---------------------------------------------------------- */

TEST(pg_errors_have_no_secret)
{
    static const char *const specs[] = {
        /* nobody listens on port 1 */
        "postgresql://halo:" C_PG "@127.0.0.1:1/x",
        /* libpq cannot parse these: its message quotes the DSN */
        "postgresql://halo:" C_PG "@127.0.0.1:1/x?bogus=1&password=" C_PG2,
        "postgres:host=127.0.0.1 port=1 password=" C_PG2 " sslmode=" C_PG2,
        "postgres:host=127.0.0.1 port=1 password='" C_PG2 "' nonsense",
        "postgres:host=127.0.0.1 port=1 sslpassword=" C_PG2 " x=" C_PG2,
        NULL,
    };
    halo_test_capture cp;
    CHECK(halo_test_capture_start(&cp, "pg.log"));
    halo_buf errs = HALO_BUF_INIT;
    for (size_t i = 0; specs[i]; i++) {
        halo_store *s = NULL;
        halo_err err = {{0}};
        halo_status st = halo_store_open(specs[i], NULL, &s, &err);
        if (s)
            s->ops->close(s);
        halo_buf_printf(&errs, "%d %s\n", (int)st, err.msg);
    }
    char *log = halo_test_capture_end(&cp);
    halo_buf_putc(&errs, '\0');
    CHECK(log);
    CHECK_CONTAINS(errs.data, "could not connect to PostgreSQL at "
                              "\"127.0.0.1:1/x\"");
    CHECK_CONTAINS(errs.data, "invalid PostgreSQL connection string");
    CHECK_CLEAN(errs.data);
    CHECK_CLEAN(log);
    halo_buf_free(&errs);
    free(log);

    /* the CLI: halo traces list --store */
    int rc = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' traces list --store 'postgresql://halo:" C_PG
             "@127.0.0.1:1/x?connect_timeout=2' 2>&1",
             halo_bin());
    char *out = halo_test_run(cmd, &rc);
    CHECK(out);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(out, "127.0.0.1:1");
    CHECK_CLEAN(out);
    free(out);

    /* the exporter, logging its failed connects */
    comp x;
    halo_err err = {{0}};
    CHECK(halo_test_capture_start(&cp, "pgx.log"));
    int level = halo_log_min_level;
    halo_log_set_level(HALO_LOG_DEBUG);
    halo_status st = comp_open(&x, &halo_exporter_postgres,
                               "dsn: \"host=127.0.0.1 port=1 dbname=x "
                               "password=" C_PG2 "\"\n"
                               "reconnect_initial_interval: 20ms\n",
                               true, &err);
    comp_close(&x);
    halo_log_set_level(level);
    log = halo_test_capture_end(&cp);
    CHECK_INT(st, HALO_OK);
    CHECK(log);
    CHECK_CLEAN(log);
    free(log);
    char *page = metrics_page();
    CHECK_CLEAN(page);
    free(page);
}

/* ---- the LLM client ------------------------------------------------------ */

TEST(llm_errors_have_no_secret)
{
    char *hdr[] = {(char *)"x-api-key: " C_HDR};
    halo_llm_cfg cfg = {
        .base_url = (char *)"http://127.0.0.1:1/v1?api_key=" C_URLQ,
        .model = (char *)"m",
        .api_key = (char *)C_LLM,
        .timeout = 2000000000,
        .max_retries = 0,
        .headers = {hdr, 1},
    };
    halo_llm *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_llm_new(&cfg, &c, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "a query or fragment");
    CHECK_CONTAINS(err.msg, "api_key=***");
    CHECK_CLEAN(err.msg);

    halo_test_capture cp;
    int level = halo_log_min_level;
    CHECK(halo_test_capture_start(&cp, "llm.log"));
    halo_log_set_level(HALO_LOG_DEBUG);
    cfg.base_url = (char *)"http://127.0.0.1:1/v1";
    memset(&err, 0, sizeof err);
    halo_status st = halo_llm_new(&cfg, &c, &err);
    halo_status st2 = HALO_EINVAL;
    if (st == HALO_OK) {
        json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content",
                                 "hello " C_LLM);
        halo_llm_reply r;
        st2 = halo_llm_chat(c, msgs, NULL, &r, &err);
        json_decref(msgs);
        halo_llm_free(c);
    }
    halo_log_set_level(level);
    char *log = halo_test_capture_end(&cp);
    CHECK_INT(st, HALO_OK);
    CHECK(st2 != HALO_OK);
    CHECK_CONTAINS(err.msg, "127.0.0.1:1");
    CHECK_CLEAN(err.msg);
    CHECK(log);
    CHECK_CLEAN(log);
    free(log);
}

/* ---- bearer tokens --------------------------------------------------------
 */

TEST(auth_errors_have_no_secret)
{
    otlp_auth_cfg cfg = {.bearer_token_present = true};
    cfg.bearer_token.tokens_env = (char *)"HALO_TEST_SECRET_TOKENS2";
    otlp_auth *a = NULL;
    halo_err err = {{0}};
    setenv("HALO_TEST_SECRET_TOKENS2", C_TOKEN "," C_TOKEN, 1);
    CHECK_INT(otlp_auth_new(&cfg, "otlp", "receiver:otlp", &a, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "duplicate token");
    CHECK_CLEAN(err.msg);

    setenv("HALO_TEST_SECRET_TOKENS2", C_TOKEN, 1);
    halo_test_capture cp;
    CHECK(halo_test_capture_start(&cp, "auth.log"));
    halo_status st = otlp_auth_new(&cfg, "otlp", "receiver:otlp", &a, &err);
    const otlp_auth_token *tok = NULL;
    otlp_auth_result r1 = OTLP_AUTH_OK;
    if (st == HALO_OK) {
        const char *v = "Bearer " C_TOKEN "x";
        r1 = otlp_auth_check(a, v, strlen(v), &tok);
        otlp_auth_refused(a, "http", r1);
        otlp_auth_free(a);
    }
    char *log = halo_test_capture_end(&cp);
    unsetenv("HALO_TEST_SECRET_TOKENS2");
    CHECK_INT(st, HALO_OK);
    CHECK_INT(r1, OTLP_AUTH_INVALID);
    CHECK(log);
    CHECK_CONTAINS(log, "without a valid bearer token");
    CHECK_CLEAN(log);
    free(log);
    char *page = metrics_page();
    CHECK_CONTAINS(page, "halo_receiver_auth_failures_total");
    CHECK_CLEAN(page);
    free(page);
}
