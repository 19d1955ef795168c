/*
 * test_tls.c -- the shared `tls` section (core/tls.c): loading and
 * checking the PEM files with exact error messages (missing file, key of
 * another certificate, certificate without key, garbage, encrypted key,
 * a CA file without certificates), that no error ever shows a byte of a
 * key, the libmicrohttpd options it builds, and the OTLP receiver and the
 * extensions failing `create` with those messages. The certificates are
 * made with the `openssl` CLI (a test dependency). Serving TLS and mTLS
 * is covered end to end by tests/e2e/tls.test.mjs.
 */
#include "harness.h"

#include "core/component.h"
#include "core/config.h"
#include "core/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const halo_component_def halo_receiver_otlp;
extern const halo_component_def halo_extension_metrics;

#define WHERE "receivers.otlp: protocols.grpc.tls"

static char dir[600];

static const char *path_of(const char *name)
{
    static char p[8][700]; /* a few alive at once */
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

static bool write_file(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "wb");
    if (!f)
        return false;
    fputs(text, f);
    return fclose(f) == 0;
}

/* Two key pairs (a, b) with self-signed certificates, once per run. */
static bool make_certs(void)
{
    if (dir[0])
        return true;
    snprintf(dir, sizeof dir, "%s/tls", halo_test_tmpdir());
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && for n in a b; do "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -keyout $n.key -out $n.pem -days 2 -subj /CN=$n "
             ">/dev/null 2>&1 || exit 1; done && "
             "openssl pkey -in a.key -aes256 -passout pass:pw -out enc.key "
             ">/dev/null 2>&1",
             dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "  openssl could not make the test certificates\n");
        dir[0] = '\0';
        return false;
    }
    return true;
}

static halo_tls_cfg cfg_of(const char *cert, const char *key, const char *ca)
{
    halo_tls_cfg c = {(char *)cert, (char *)key, (char *)ca};
    return c;
}

/* Pieces of a.key's private part: in PKCS#8 EC keys the secret scalar
 * follows a ~36-byte header (base64 characters ~48..92); the public key
 * after it also sits in the certificate, so it is no evidence. */
static bool shows_key(const char *msg)
{
    char *key = halo_test_read_file(path_of("a.key"));
    if (!key)
        return true;
    char body[1024];
    size_t n = 0;
    for (char *line = strtok(key, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "-----", 5) != 0)
            for (const char *c = line; *c && n < sizeof body - 1; c++)
                if (*c != '\r')
                    body[n++] = *c;
    body[n] = '\0';
    free(key);
    bool found = false;
    for (size_t at = 48; at + 12 <= 92 && at + 12 <= n; at += 12) {
        char piece[13];
        memcpy(piece, body + at, 12);
        piece[12] = '\0';
        if (strstr(msg, piece))
            found = true;
    }
    return found;
}

/* Loading fails with exactly want (and shows no key). */
static bool fails_exactly(halo_tls_cfg c, const char *want)
{
    halo_tls *t = (halo_tls *)1;
    halo_err err = {{0}};
    halo_status st = halo_tls_load(&c, WHERE, &t, &err);
    if (st != HALO_EINVAL || t != NULL) {
        fprintf(stderr, "  expected EINVAL, got %d (%s)\n", (int)st, err.msg);
        return false;
    }
    if (strcmp(err.msg, want) != 0) {
        fprintf(stderr, "  got      \"%s\"\n  expected \"%s\"\n", err.msg,
                want);
        return false;
    }
    if (shows_key(err.msg)) {
        fprintf(stderr, "  \"%s\" shows key material\n", err.msg);
        return false;
    }
    return true;
}

TEST(loads_a_matching_pair)
{
    CHECK(make_certs());
    halo_tls_cfg c = cfg_of(path_of("a.pem"), path_of("a.key"), NULL);
    halo_tls *t = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_tls_load(&c, WHERE, &t, &err), HALO_OK);
    CHECK(t && t->cert_pem && t->key_pem && !t->ca_pem);
    CHECK(strstr(t->cert_pem, "BEGIN CERTIFICATE"));
    CHECK(shows_key(t->key_pem)); /* the leak check can see a key */
    CHECK(!shows_key(t->cert_pem));
    CHECK(!halo_tls_mtls(t));
    CHECK_STR(halo_tls_mode(t), "TLS");
    struct MHD_OptionItem o[HALO_TLS_MHD_OPTIONS];
    CHECK_INT(halo_tls_mhd_options(t, o), 2);
    CHECK_INT(o[0].option, MHD_OPTION_HTTPS_MEM_KEY);
    CHECK(o[0].ptr_value == t->key_pem);
    CHECK_INT(o[1].option, MHD_OPTION_HTTPS_MEM_CERT);
    CHECK_INT(o[2].option, MHD_OPTION_END);
    /* without a CA, any connection passes the peer check */
    CHECK(halo_tls_mhd_peer_ok(t, NULL));
    halo_tls_free(t);

    /* with a CA: mTLS, and MHD trusts it */
    c.client_ca_file = (char *)path_of("b.pem");
    CHECK_INT(halo_tls_load(&c, WHERE, &t, &err), HALO_OK);
    CHECK(halo_tls_mtls(t));
    CHECK_STR(halo_tls_mode(t), "mTLS");
    CHECK_INT(halo_tls_mhd_options(t, o), 3);
    CHECK_INT(o[2].option, MHD_OPTION_HTTPS_MEM_TRUST);
    CHECK(o[2].ptr_value == t->ca_pem);
    CHECK_INT(o[3].option, MHD_OPTION_END);
    halo_tls_free(t);
    halo_tls_free(NULL);
}

TEST(missing_files)
{
    CHECK(make_certs());
    char want[2048];
    char nokey[700], nocert[700];
    snprintf(nokey, sizeof nokey, "%s", path_of("no-such.key"));
    snprintf(nocert, sizeof nocert, "%s", path_of("no-such.pem"));
    snprintf(want, sizeof want,
             WHERE ".key_file: could not read %s: no such file or directory",
             nokey);
    CHECK(fails_exactly(cfg_of(path_of("a.pem"), nokey, NULL), want));
    snprintf(want, sizeof want,
             WHERE ".cert_file: could not read %s: no such file or directory",
             nocert);
    CHECK(fails_exactly(cfg_of(nocert, path_of("a.key"), NULL), want));
    snprintf(want, sizeof want,
             WHERE ".client_ca_file: could not read %s: no such file or "
                   "directory",
             nocert);
    CHECK(fails_exactly(cfg_of(path_of("a.pem"), path_of("a.key"), nocert),
                        want));
    snprintf(want, sizeof want,
             WHERE ".cert_file: could not read %s: not a regular file", dir);
    CHECK(fails_exactly(cfg_of(dir, path_of("a.key"), NULL), want));
}

TEST(key_of_another_certificate)
{
    CHECK(make_certs());
    char want[2048];
    snprintf(want, sizeof want,
             WHERE ": the private key in %s does not match the certificate "
                   "in %s",
             path_of("a.key"), path_of("b.pem"));
    CHECK(
        fails_exactly(cfg_of(path_of("b.pem"), path_of("a.key"), NULL), want));
}

TEST(cert_and_key_go_together)
{
    CHECK(make_certs());
    CHECK(fails_exactly(cfg_of(path_of("a.pem"), NULL, NULL),
                        WHERE ": cert_file is set but key_file is not (both "
                              "are required)"));
    CHECK(fails_exactly(cfg_of(NULL, path_of("a.key"), NULL),
                        WHERE ": key_file is set but cert_file is not (both "
                              "are required)"));
    CHECK(fails_exactly(cfg_of("", "", path_of("a.pem")),
                        WHERE ": cert_file and key_file are required"));
}

TEST(garbage_pem)
{
    CHECK(make_certs());
    char want[2048];
    CHECK(write_file("garbage.pem", "hello, this is not PEM\n"));
    CHECK(write_file("empty.pem", ""));
    CHECK(write_file("broken.pem", "-----BEGIN CERTIFICATE-----\n"
                                   "bm90IGEgY2VydGlmaWNhdGU=\n"
                                   "-----END CERTIFICATE-----\n"));
    const char *g = path_of("garbage.pem");
    snprintf(want, sizeof want,
             WHERE ".cert_file: %s holds no PEM certificate (\"-----BEGIN "
                   "CERTIFICATE-----\")",
             g);
    CHECK(fails_exactly(cfg_of(g, path_of("a.key"), NULL), want));
    snprintf(want, sizeof want,
             WHERE ".key_file: %s holds no PEM private key (\"-----BEGIN "
                   "PRIVATE KEY-----\")",
             g);
    CHECK(fails_exactly(cfg_of(path_of("a.pem"), g, NULL), want));
    /* a certificate where the key should be */
    snprintf(want, sizeof want,
             WHERE ".key_file: %s holds no PEM private key (\"-----BEGIN "
                   "PRIVATE KEY-----\")",
             path_of("a.pem"));
    CHECK(
        fails_exactly(cfg_of(path_of("a.pem"), path_of("a.pem"), NULL), want));
    snprintf(want, sizeof want, WHERE ".cert_file: %s is empty",
             path_of("empty.pem"));
    CHECK(fails_exactly(cfg_of(path_of("empty.pem"), path_of("a.key"), NULL),
                        want));
    /* PEM markers around something that is not a certificate */
    halo_tls_cfg c = cfg_of(path_of("broken.pem"), path_of("a.key"), NULL);
    halo_tls *t = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_tls_load(&c, WHERE, &t, &err), HALO_EINVAL);
    snprintf(want, sizeof want, WHERE ".cert_file: %s: invalid certificate: ",
             path_of("broken.pem"));
    CHECK(strncmp(err.msg, want, strlen(want)) == 0);
    /* a key file used as the CA */
    snprintf(want, sizeof want,
             WHERE ".client_ca_file: %s holds no PEM certificate (\"-----BEGIN "
                   "CERTIFICATE-----\")",
             path_of("a.key"));
    CHECK(fails_exactly(
        cfg_of(path_of("a.pem"), path_of("a.key"), path_of("a.key")), want));
}

TEST(encrypted_key)
{
    CHECK(make_certs());
    char want[2048];
    const char *k = path_of("enc.key");
    snprintf(want, sizeof want,
             WHERE ".key_file: %s: encrypted private keys are not supported "
                   "(decrypt it, e.g. openssl pkey -in %s)",
             k, k);
    CHECK(fails_exactly(cfg_of(path_of("a.pem"), k, NULL), want));
}

/* Create a component from YAML; the create error, or HALO_OK. */
static halo_status create(const halo_component_def *def, const char *id,
                          const char *yaml, halo_err *err)
{
    halo_errlist errs = {0};
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    void *cfg = calloc(1, def->cfg_size);
    halo_status st = HALO_EINVAL;
    if (!root || !halo_config_apply(def->schema, root, cfg, id, &errs)) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "config error");
        goto cleanup;
    }
    halo_component c;
    memset(&c, 0, sizeof c);
    c.def = def;
    c.id = (char *)id;
    c.log_prefix = (char *)id;
    c.cfg = cfg;
    st = def->create(&c, err);
    if (st == HALO_OK)
        def->destroy(&c);
cleanup:
    halo_errlist_free(&errs);
    halo_config_release(def->schema, cfg);
    free(cfg);
    halo_node_free(root);
    return st;
}

TEST(components_report_the_section)
{
    CHECK(make_certs());
    char yaml[4096], want[2048];
    halo_err err = {{0}};
    snprintf(yaml, sizeof yaml,
             "protocols:\n  grpc:\n    endpoint: 127.0.0.1:1\n"
             "  http:\n    endpoint: 127.0.0.1:2\n    tls:\n"
             "      cert_file: %s\n      key_file: %s\n",
             path_of("a.pem"), path_of("b.key"));
    CHECK_INT(create(&halo_receiver_otlp, "otlp", yaml, &err), HALO_EINVAL);
    snprintf(want, sizeof want,
             "receivers.otlp: protocols.http.tls: the private key in %s does "
             "not match the certificate in %s",
             path_of("b.key"), path_of("a.pem"));
    CHECK_STR(err.msg, want);

    snprintf(yaml, sizeof yaml,
             "protocols:\n  grpc:\n    tls:\n      key_file: %s\n",
             path_of("a.key"));
    CHECK_INT(create(&halo_receiver_otlp, "otlp", yaml, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "receivers.otlp: protocols.grpc.tls: key_file is set "
                       "but cert_file is not (both are required)");

    snprintf(yaml, sizeof yaml,
             "tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n",
             path_of("a.pem"), path_of("a.key"), path_of("nope.pem"));
    CHECK_INT(create(&halo_extension_metrics, "metrics", yaml, &err),
              HALO_EINVAL);
    snprintf(want, sizeof want,
             "extensions.metrics: tls.client_ca_file: could not read %s: no "
             "such file or directory",
             path_of("nope.pem"));
    CHECK_STR(err.msg, want);

    /* good files: created */
    snprintf(yaml, sizeof yaml,
             "protocols:\n  grpc:\n    tls:\n      cert_file: %s\n"
             "      key_file: %s\n      client_ca_file: %s\n",
             path_of("a.pem"), path_of("a.key"), path_of("b.pem"));
    CHECK_INT(create(&halo_receiver_otlp, "otlp", yaml, &err), HALO_OK);

    /* unknown keys in the section are config errors */
    CHECK_INT(create(&halo_receiver_otlp, "receivers.otlp",
                     "protocols:\n  grpc:\n    tls:\n      ca_file: x\n", &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "ca_file");
}

TEST(transport_limits_are_checked)
{
    halo_err err = {{0}};
    CHECK_INT(create(&halo_receiver_otlp, "otlp",
                     "protocols:\n  http:\n    threads: 4\n"
                     "    max_connections: 2\n",
                     &err),
              HALO_EINVAL);
    CHECK_STR(err.msg, "receivers.otlp: protocols.http.max_connections (2) "
                       "must be at least protocols.http.threads (4)");
    CHECK_INT(create(&halo_receiver_otlp, "receivers.otlp",
                     "protocols:\n  http:\n    read_header_timeout: 1ms\n",
                     &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "read_header_timeout");
    CHECK_INT(create(&halo_receiver_otlp, "receivers.otlp",
                     "protocols:\n  grpc:\n    max_concurrent_streams: 0\n",
                     &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "max_concurrent_streams");
}
