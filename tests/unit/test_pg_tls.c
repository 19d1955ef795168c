/*
 * test_pg_tls.c -- PostgreSQL over TLS (sslmode) with certificates made by
 * the test itself.
 *
 * The test makes two CAs with the `openssl` CLI (test_certs.h): CA "a"
 * signs the server certificate (subjectAltName 127.0.0.1 and localhost),
 * CA "b" signs nothing the server shows. It starts two throwaway servers
 * with tests/pg/pg_server.sh: one with ssl=on (PG_SSL_CERT / PG_SSL_KEY),
 * one without. Then:
 *   - sslmode=verify-full sslrootcert=<CA a>: the store opens (the schema
 *     is migrated over TLS), the connection is encrypted, the postgres
 *     exporter stores a batch and acks it, `halo traces list --store`
 *     works -- by IP and by host name;
 *   - sslrootcert=<CA b>: every one of those fails, saying the
 *     certificate could not be verified, and never shows the password;
 *   - sslmode=require against the server without ssl: fails, saying the
 *     server does not support SSL.
 */
#include "fixture_spans.h"
#include "harness.h"
#include "test_certs.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/clock.h"
#include "core/component.h"
#include "core/config.h"
#include "storage/pg_conn.h"
#include "storage/store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern const halo_component_def halo_exporter_postgres;

#define SECRET "canary-tls-pw-4e21"

typedef struct server {
    char dir[256];
    char port[16];
} server;

static struct {
    char script[1024];
    char certs_a[700], certs_b[700];
    server tls, plain;
    bool tried, ok;
} env;

static void stop_one(server *s)
{
    char cmd[1400];
    if (!s->dir[0])
        return;
    snprintf(cmd, sizeof cmd, "'%s' stop '%s'", env.script, s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not stop the server in %s\n", s->dir);
    s->dir[0] = '\0';
}

static void stop_all(void)
{
    stop_one(&env.tls);
    stop_one(&env.plain);
}

#define DSN_PORT_AT "dsn postgresql://postgres@127.0.0.1:"

/* pg_server.sh start with env_prefix ("PG_SSL_CERT=... " or ""); the port
 * from its "dsn" line. */
static bool start_one(server *s, const char *env_prefix)
{
    char cmd[2600];
    snprintf(s->dir, sizeof s->dir, "/tmp/halo-pgtls-XXXXXX");
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        return false;
    }
    snprintf(cmd, sizeof cmd, "%s'%s' start '%s'", env_prefix, env.script,
             s->dir);
    int rc;
    char *out = halo_test_run(cmd, &rc);
    const char *c = out ? strstr(out, DSN_PORT_AT) : NULL;
    if (c)
        snprintf(s->port, sizeof s->port, "%d", atoi(c + strlen(DSN_PORT_AT)));
    free(out);
    return rc == 0 && s->port[0];
}

static bool setup(void)
{
    if (env.tried)
        return env.ok;
    env.tried = true;
    const char *src = getenv("HALO_SOURCE_DIR");
    if (src && *src)
        snprintf(env.script, sizeof env.script, "%s/tests/pg/pg_server.sh",
                 src);
    else
        snprintf(env.script, sizeof env.script, "%.*s/../pg/pg_server.sh",
                 (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
    snprintf(env.certs_a, sizeof env.certs_a, "%s/ca-a", halo_test_tmpdir());
    snprintf(env.certs_b, sizeof env.certs_b, "%s/ca-b", halo_test_tmpdir());
    if (mkdir(env.certs_a, 0700) != 0 || mkdir(env.certs_b, 0700) != 0 ||
        !test_certs_make(env.certs_a, "a", NULL) ||
        !test_certs_make(env.certs_b, "b", NULL))
        return false;
    atexit(stop_all);
    char pre[1600];
    snprintf(pre, sizeof pre,
             "PG_SSL_CERT='%s/server.crt' PG_SSL_KEY='%s/server.key' ",
             env.certs_a, env.certs_a);
    env.ok = start_one(&env.tls, pre) && start_one(&env.plain, "");
    return env.ok;
}

/* A DSN for s: host, sslmode and CA (a or b, NULL: none). */
static const char *dsn_of(const server *s, const char *host,
                          const char *sslmode, const char *ca, char *buf,
                          size_t cap)
{
    int n = snprintf(buf, cap,
                     "postgresql://postgres:" SECRET "@%s:%s/postgres"
                     "?sslmode=%s&connect_timeout=10",
                     host, s->port, sslmode);
    if (ca)
        snprintf(buf + n, cap - (size_t)n, "&sslrootcert=%s/ca.crt", ca);
    return buf;
}

static char *traces_list(const char *dsn, int *rc)
{
    char cmd[1600];
    const char *bin = getenv("HALO_BIN");
    snprintf(cmd, sizeof cmd, "'%s' traces list --store '%s' 2>&1",
             bin && *bin ? bin : "./halo", dsn);
    return halo_test_run(cmd, rc);
}

/* ---- the exporter -------------------------------------------------------- */

/* One span of trace `key` in a batch whose ack lands in r. */
static halo_batch *one_span(uint64_t key, halo_test_ack *r)
{
    span_opts o = {.trace = key,
                   .span = 1,
                   .start_ns = halo_real_ns() - T0,
                   .dur_ns = 1000,
                   .agent = "agent-tls"};
    return acked_batch_of(&o, 1, halo_test_on_ack, r);
}

/* Create and start the exporter for dsn, send one span and wait for its
 * ack; while it is refused (not connected yet), again, for within_ms: the
 * last status (and message into msg). */
static halo_status export_one(const char *dsn, uint64_t key, int within_ms,
                              char *msg, size_t cap)
{
    const halo_component_def *def = &halo_exporter_postgres;
    char yaml[1200];
    halo_errlist errs = {0};
    halo_err err = {{0}};
    snprintf(yaml, sizeof yaml,
             "dsn: \"%s\"\nnum_connections: 1\nconnect_timeout: 5s\n"
             "reconnect_initial_interval: 50ms\n",
             dsn);
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    void *cfg = calloc(1, def->cfg_size);
    halo_component c = {.def = def,
                        .id = (char *)"postgres/tls",
                        .log_prefix = (char *)"exporter:postgres",
                        .cfg = cfg};
    halo_status st = HALO_EINVAL;
    halo_test_ack r = HALO_TEST_ACK_INIT;
    if (!root || !halo_config_apply(def->schema, root, cfg, "x", &errs)) {
        snprintf(msg, cap, "%s", errs.n ? errs.msgs[0] : "config error");
        goto cleanup;
    }
    if ((st = def->create(&c, &err)) != HALO_OK ||
        (st = def->start(&c, &err)) != HALO_OK) {
        snprintf(msg, cap, "%s", err.msg);
        goto cleanup;
    }
    /* refused (retryably) while not connected: retry until the deadline */
    uint64_t end = halo_mono_ns() + (uint64_t)within_ms * 1000000u;
    do {
        halo_test_ack_init(&r);
        halo_status cst = def->consume(&c, one_span(key, &r));
        if (!halo_test_ack_wait(&r, 1, 15000)) {
            st = HALO_EIO;
            snprintf(msg, cap, "no ack");
            goto cleanup;
        }
        st = r.st;
        snprintf(msg, cap, "%s", r.msg);
        if (cst == HALO_OK && st == HALO_OK)
            break;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    } while (halo_mono_ns() < end);
cleanup:
    if (c.ctx) {
        def->shutdown(&c);
        def->destroy(&c);
    }
    halo_config_release(def->schema, cfg);
    free(cfg);
    halo_node_free(root);
    halo_errlist_free(&errs);
    return st;
}

/* ---- the tests ------------------------------------------------------------
 */

TEST(verify_full_with_the_right_ca_works)
{
    CHECK(setup());
    static const char *const hosts[] = {"127.0.0.1", "localhost", NULL};
    for (size_t i = 0; hosts[i]; i++) {
        char dsn[1200], msg[512];
        dsn_of(&env.tls, hosts[i], "verify-full", env.certs_a, dsn, sizeof dsn);
        PGconn *c = NULL;
        halo_err err = {{0}};
        halo_status st = halo_pg_connect(dsn, &c, &err);
        if (st != HALO_OK)
            fprintf(stderr, "  %s\n", err.msg);
        CHECK_INT(st, HALO_OK);
        CHECK(PQsslInUse(c));
        PQfinish(c);

        halo_store *s = NULL;
        st = halo_store_open(dsn, NULL, &s, &err);
        if (st != HALO_OK)
            fprintf(stderr, "  %s\n", err.msg);
        CHECK_INT(st, HALO_OK);
        s->ops->close(s);

        st = export_one(dsn, 100 + i, 15000, msg, sizeof msg);
        if (st != HALO_OK)
            fprintf(stderr, "  %s\n", msg);
        CHECK_INT(st, HALO_OK);

        int rc = 0;
        char *out = traces_list(dsn, &rc);
        CHECK(out);
        if (rc != 0)
            fprintf(stderr, "  %s\n", out);
        CHECK_INT(rc, 0);
        CHECK_CONTAINS(out, "agent-tls");
        free(out);
    }
}

TEST(verify_full_with_another_ca_fails_clearly)
{
    CHECK(setup());
    char dsn[1200], msg[512];
    dsn_of(&env.tls, "127.0.0.1", "verify-full", env.certs_b, dsn, sizeof dsn);
    halo_store *s = NULL;
    halo_err err = {{0}};
    CHECK(halo_store_open(dsn, NULL, &s, &err) != HALO_OK);
    CHECK_CONTAINS(err.msg, "could not connect to PostgreSQL at "
                            "\"127.0.0.1:");
    CHECK_CONTAINS(err.msg, "certificate verify failed");
    CHECK(!strstr(err.msg, SECRET));

    CHECK(export_one(dsn, 200, 1500, msg, sizeof msg) != HALO_OK);
    CHECK_CONTAINS(msg, "certificate verify failed");
    CHECK(!strstr(msg, SECRET));

    int rc = 0;
    char *out = traces_list(dsn, &rc);
    CHECK(out);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(out, "certificate verify failed");
    CHECK(!strstr(out, SECRET));
    free(out);

    /* verify-full checks the name too: the right CA, but a host name the
     * certificate (127.0.0.1, localhost) does not carry */
    snprintf(dsn, sizeof dsn,
             "postgres:host=halo-wrong.invalid hostaddr=127.0.0.1 port=%s "
             "user=postgres password=" SECRET " sslmode=verify-full "
             "sslrootcert=%s/ca.crt",
             env.tls.port, env.certs_a);
    memset(&err, 0, sizeof err);
    CHECK(halo_store_open(dsn, NULL, &s, &err) != HALO_OK);
    CHECK_CONTAINS(err.msg, "does not match host name");
    CHECK(!strstr(err.msg, SECRET));
}

TEST(require_against_a_server_without_ssl_fails_clearly)
{
    CHECK(setup());
    char dsn[1200];
    dsn_of(&env.plain, "127.0.0.1", "require", NULL, dsn, sizeof dsn);
    halo_store *s = NULL;
    halo_err err = {{0}};
    CHECK(halo_store_open(dsn, NULL, &s, &err) != HALO_OK);
    CHECK_CONTAINS(err.msg, "server does not support SSL");
    CHECK(!strstr(err.msg, SECRET));
    /* the same server without sslmode=require: plaintext works */
    dsn_of(&env.plain, "127.0.0.1", "disable", NULL, dsn, sizeof dsn);
    memset(&err, 0, sizeof err);
    halo_status st = halo_store_open(dsn, NULL, &s, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    s->ops->close(s);
}
