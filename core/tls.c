/*
 * tls.c -- the shared `tls` section, PEM loading and checks, and the
 * libmicrohttpd glue (tls.h).
 *
 * Loading reads each file whole (at most 1 MiB) and checks it with GnuTLS,
 * the library libmicrohttpd serves TLS with:
 *   cert_file       at least one PEM certificate, every one parseable
 *   key_file        one PEM private key, unencrypted
 *   the pair        gnutls_certificate_set_x509_key_mem2 refuses a key
 *                   that does not belong to the first certificate
 *   client_ca_file  at least one PEM certificate
 * Messages name the section, the field and the path, and use GnuTLS'
 * error strings, which never quote the input: no key byte can leak. The
 * key's buffer is wiped before it is freed.
 *
 * Peer verification (mTLS over libmicrohttpd): MHD trusts client_ca_file
 * in its GnuTLS credentials and asks the client for a certificate; we ask
 * GnuTLS whether one was presented and whether it verifies against that
 * trust list, once per request.
 */
#include "tls.h"

#include "log.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PEM_MAX ((size_t)1 << 20)

const halo_field halo_tls_schema[] = {
    {.key = "cert_file",
     .type = HALO_F_STRING,
     .offset = offsetof(halo_tls_cfg, cert_file),
     .description = "PEM certificate (chain) the server presents"},
    {.key = "key_file",
     .type = HALO_F_STRING,
     .offset = offsetof(halo_tls_cfg, key_file),
     .description = "PEM private key of cert_file (unencrypted)"},
    {.key = "client_ca_file",
     .type = HALO_F_STRING,
     .offset = offsetof(halo_tls_cfg, client_ca_file),
     .description = "PEM CA certificates; when set, clients must present "
                    "a certificate signed by one of them (mTLS)"},
    {.key = NULL},
};

/* ---- files --------------------------------------------------------------- */

/* Read path whole into a NUL-terminated buffer (*len without the NUL). */
static halo_status read_pem(const char *where, const char *field,
                            const char *path, char **out, size_t *len,
                            halo_err *err)
{
    char eb[128];
    char *buf = NULL;
    halo_status st = HALO_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st = halo_fail(err, HALO_EINVAL, "%s.%s: could not read %s: %s", where,
                       field, path, halo_strerror_lc(errno, eb, sizeof eb));
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode) || (size_t)sb.st_size > PEM_MAX) {
        st = halo_fail(err, HALO_EINVAL, "%s.%s: could not read %s: %s", where,
                       field, path,
                       S_ISREG(sb.st_mode) ? "larger than 1 MiB"
                                           : "not a regular file");
        goto cleanup;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    size_t n = 0;
    while (n < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)sb.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = halo_fail(err, HALO_EINVAL, "%s.%s: could not read %s: %s",
                           where, field, path,
                           halo_strerror_lc(errno, eb, sizeof eb));
            goto cleanup;
        }
        if (r == 0)
            break; /* shrank while reading: take what is there */
        n += (size_t)r;
    }
    buf[n] = '\0';
    if (n == 0) {
        st = halo_fail(err, HALO_EINVAL, "%s.%s: %s is empty", where, field,
                       path);
        goto cleanup;
    }
    *out = buf;
    *len = n;
    buf = NULL;
cleanup:
    if (buf) {
        explicit_bzero(buf, (size_t)sb.st_size + 1);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return st;
}

/* ---- checks -------------------------------------------------------------- */

/* pem holds at least one parseable certificate. */
static halo_status check_certs(const char *where, const char *field,
                               const char *path, const char *pem, size_t len,
                               halo_err *err)
{
    if (!strstr(pem, "-----BEGIN CERTIFICATE-----") &&
        !strstr(pem, "-----BEGIN X509 CERTIFICATE-----"))
        return halo_fail(err, HALO_EINVAL,
                         "%s.%s: %s holds no PEM certificate (\"-----BEGIN "
                         "CERTIFICATE-----\")",
                         where, field, path);
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    int rc =
        gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0)
        return halo_fail(err, HALO_EINVAL, "%s.%s: %s: invalid certificate: %s",
                         where, field, path, gnutls_strerror(rc));
    time_t now = time(NULL);
    for (unsigned i = 0; i < n; i++) {
        time_t exp = gnutls_x509_crt_get_expiration_time(crts[i]);
        if (i == 0 && exp != (time_t)-1 && exp < now)
            LOG_WARN("tls", "%s.%s: the certificate in %s has expired", where,
                     field, path);
        gnutls_x509_crt_deinit(crts[i]);
    }
    gnutls_free(crts);
    if (n == 0)
        return halo_fail(err, HALO_EINVAL, "%s.%s: %s holds no PEM certificate",
                         where, field, path);
    return HALO_OK;
}

/* pem holds one unencrypted private key GnuTLS can read. */
static halo_status check_key(const char *where, const char *path,
                             const char *pem, size_t len, halo_err *err)
{
    if (strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
        strstr(pem, "Proc-Type: 4,ENCRYPTED"))
        return halo_fail(err, HALO_EINVAL,
                         "%s.key_file: %s: encrypted private keys are not "
                         "supported (decrypt it, e.g. openssl pkey -in %s)",
                         where, path, path);
    const char *begin = strstr(pem, "-----BEGIN ");
    if (!begin || !strstr(begin, "PRIVATE KEY-----"))
        return halo_fail(err, HALO_EINVAL,
                         "%s.key_file: %s holds no PEM private key "
                         "(\"-----BEGIN PRIVATE KEY-----\")",
                         where, path);
    gnutls_x509_privkey_t key;
    if (gnutls_x509_privkey_init(&key) < 0)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    int rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL,
                                         GNUTLS_PKCS_PLAIN);
    gnutls_x509_privkey_deinit(key);
    if (rc < 0)
        return halo_fail(err, HALO_EINVAL,
                         "%s.key_file: %s: invalid private key: %s", where,
                         path, gnutls_strerror(rc));
    return HALO_OK;
}

/* The key belongs to the first certificate of the chain. */
static halo_status check_pair(const char *where, const halo_tls_cfg *cfg,
                              const halo_tls *t, halo_err *err)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    gnutls_datum_t c = {(unsigned char *)t->cert_pem,
                        (unsigned)strlen(t->cert_pem)};
    gnutls_datum_t k = {(unsigned char *)t->key_pem, (unsigned)t->key_len};
    int rc = gnutls_certificate_set_x509_key_mem2(
        cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
    gnutls_certificate_free_credentials(cred);
    if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
        return halo_fail(err, HALO_EINVAL,
                         "%s: the private key in %s does not match the "
                         "certificate in %s",
                         where, cfg->key_file, cfg->cert_file);
    if (rc < 0)
        return halo_fail(err, HALO_EINVAL,
                         "%s: could not use the key in %s with the "
                         "certificate in %s: %s",
                         where, cfg->key_file, cfg->cert_file,
                         gnutls_strerror(rc));
    return HALO_OK;
}

/* ---- loading ------------------------------------------------------------- */

static bool set(const char *s)
{
    return s && *s;
}

halo_status halo_tls_load(const halo_tls_cfg *cfg, const char *where,
                          halo_tls **out, halo_err *err)
{
    *out = NULL;
    if (!set(cfg->cert_file) || !set(cfg->key_file))
        return halo_fail(
            err, HALO_EINVAL, "%s: %s", where,
            set(cfg->cert_file)  ? "cert_file is set but key_file is not "
                                   "(both are required)"
            : set(cfg->key_file) ? "key_file is set but cert_file is not "
                                   "(both are required)"
                                 : "cert_file and key_file are required");
    halo_tls *t = calloc(1, sizeof *t);
    if (!t)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    size_t clen = 0, alen = 0;
    halo_status st =
        read_pem(where, "cert_file", cfg->cert_file, &t->cert_pem, &clen, err);
    if (st == HALO_OK)
        st = check_certs(where, "cert_file", cfg->cert_file, t->cert_pem, clen,
                         err);
    if (st == HALO_OK)
        st = read_pem(where, "key_file", cfg->key_file, &t->key_pem,
                      &t->key_len, err);
    if (st == HALO_OK)
        st = check_key(where, cfg->key_file, t->key_pem, t->key_len, err);
    if (st == HALO_OK)
        st = check_pair(where, cfg, t, err);
    if (st == HALO_OK && set(cfg->client_ca_file)) {
        st = read_pem(where, "client_ca_file", cfg->client_ca_file, &t->ca_pem,
                      &alen, err);
        if (st == HALO_OK)
            st = check_certs(where, "client_ca_file", cfg->client_ca_file,
                             t->ca_pem, alen, err);
    }
    if (st != HALO_OK) {
        halo_tls_free(t);
        return st;
    }
    *out = t;
    return HALO_OK;
}

void halo_tls_free(halo_tls *t)
{
    if (!t)
        return;
    if (t->key_pem) {
        explicit_bzero(t->key_pem, t->key_len);
        free(t->key_pem);
    }
    free(t->cert_pem);
    free(t->ca_pem);
    free(t);
}

bool halo_tls_mtls(const halo_tls *t)
{
    return t && t->ca_pem;
}

const char *halo_tls_mode(const halo_tls *t)
{
    return halo_tls_mtls(t) ? "mTLS" : "TLS";
}

/* ---- libmicrohttpd ------------------------------------------------------- */

halo_status halo_tls_mhd_check(const char *where, halo_err *err)
{
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES)
        return HALO_OK;
    return halo_fail(err, HALO_EUNSUPPORTED,
                     "%s: TLS is not supported: this libmicrohttpd was built "
                     "without it",
                     where);
}

size_t halo_tls_mhd_options(const halo_tls *t, struct MHD_OptionItem *items)
{
    size_t n = 0;
    items[n++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, t->key_pem};
    items[n++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, t->cert_pem};
    if (t->ca_pem)
        items[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, t->ca_pem};
    items[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return n;
}

bool halo_tls_mhd_peer_ok(const halo_tls *t, struct MHD_Connection *c)
{
    if (!halo_tls_mtls(t))
        return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned n = 0;
    if (!gnutls_certificate_get_peers(s, &n) || n == 0)
        return false; /* no certificate presented */
    unsigned status = 0;
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}
