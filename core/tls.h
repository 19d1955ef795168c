/*
 * tls.h -- TLS for halo's servers: the OTLP receiver's gRPC and HTTP
 * transports and the health_check and metrics extensions.
 *
 * Every server has the same collector-style section,
 *
 *     tls: { cert_file: server.pem, key_file: server.key,
 *            client_ca_file: clients-ca.pem }   # the last one: mTLS
 *
 * described by one schema (halo_tls_schema). At create time
 * halo_tls_load() reads the PEM files into memory and checks them with
 * GnuTLS (readable, PEM, certificate and key belong together, the CA file
 * holds certificates), so a bad file fails `halo validate` and start-up
 * with the field and path in the message; nothing of a key ever appears
 * in a message or log. The servers then take the PEM bytes from the
 * halo_tls: gRPC through its SSL server credentials (otlp_grpc.c),
 * libmicrohttpd through the options built here.
 *
 * mTLS over libmicrohttpd: MHD_OPTION_HTTPS_MEM_TRUST only *asks* the
 * client for a certificate; it neither requires nor verifies one. Servers
 * with a client_ca_file therefore call halo_tls_mhd_peer_ok() on every
 * request and refuse the request when it returns false.
 */
#ifndef HALO_TLS_H
#define HALO_TLS_H

#include "config.h"
#include "status.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* The `tls` section (filled by halo_tls_schema). */
typedef struct halo_tls_cfg {
    char *cert_file;      /* PEM certificate (chain), server first */
    char *key_file;       /* PEM private key of that certificate */
    char *client_ca_file; /* PEM CA certificates; set: mTLS */
} halo_tls_cfg;

/* The schema of a `tls` section; embed it as a HALO_F_SECTION. */
extern const halo_field halo_tls_schema[];

/* Loaded and checked PEM material. The key is wiped when freed. */
typedef struct halo_tls {
    char *cert_pem; /* NUL-terminated */
    char *key_pem;  /* NUL-terminated; secret */
    char *ca_pem;   /* NUL-terminated; NULL without client_ca_file */
    size_t key_len;
} halo_tls;

/* Read and check cfg's files. where names the section in errors, e.g.
 * "receivers.otlp: protocols.grpc.tls" gives
 * "receivers.otlp: protocols.grpc.tls.key_file: could not read /x.pem:
 * no such file or directory". HALO_EINVAL on any problem (message never
 * shows key material). *out is the caller's (halo_tls_free). */
halo_status halo_tls_load(const halo_tls_cfg *cfg, const char *where,
                          halo_tls **out, halo_err *err);
void halo_tls_free(halo_tls *t);

/* True when client certificates are required (client_ca_file set). */
bool halo_tls_mtls(const halo_tls *t);
/* "TLS" or "mTLS", for start-up log lines. */
const char *halo_tls_mode(const halo_tls *t);

/* ---- libmicrohttpd ------------------------------------------------------ */

/* HALO_EUNSUPPORTED when this libmicrohttpd was built without TLS. */
halo_status halo_tls_mhd_check(const char *where, halo_err *err);

/* Fill items with the options that serve t (key, certificate, and the
 * trusted CA with mTLS) and terminate them with MHD_OPTION_END; returns
 * how many options were written before the terminator. items must hold
 * HALO_TLS_MHD_OPTIONS entries. Pass them with MHD_OPTION_ARRAY and add
 * MHD_USE_TLS to the daemon's flags. t must outlive the daemon. */
#define HALO_TLS_MHD_OPTIONS 4
size_t halo_tls_mhd_options(const halo_tls *t, struct MHD_OptionItem *items);

/* With mTLS: true only when the connection's client presented a
 * certificate that verifies against client_ca_file. Without mTLS (or
 * t NULL): true. Call from the connection's own thread (access handler). */
bool halo_tls_mhd_peer_ok(const halo_tls *t, struct MHD_Connection *c);

#endif
