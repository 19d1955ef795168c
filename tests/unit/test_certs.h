/*
 * test_certs.h -- test certificates made with the `openssl` CLI.
 *
 * Header-only (static functions) so a test binary needs no change to the
 * build: include it from the one test file that uses it. test_certs_make
 * writes into dir:
 *   ca.crt / ca.key          a self-signed CA ("halo test CA <name>")
 *   server.crt / server.key  a server certificate signed by it, with
 *                            subjectAltName IP:127.0.0.1 and DNS:localhost;
 *                            server.key unencrypted (PostgreSQL reads it)
 *   client.key               the server key again, encrypted with
 *                            key_pass (AES-256) when key_pass is given
 * Every file is readable by its owner only, except the certificates.
 */
#ifndef HALO_TEST_CERTS_H
#define HALO_TEST_CERTS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static bool test_certs_run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "  failed (%d): %s\n", rc, cmd);
    return rc == 0;
}

static bool test_certs_make(const char *dir, const char *name,
                            const char *key_pass)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && umask 077 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key "
             "-out ca.crt -days 2 -subj '/CN=halo test CA %s' "
             ">openssl.log 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout server.key "
             "-out server.csr -subj /CN=localhost >>openssl.log 2>&1 && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' >san.ext "
             "&& openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
             "-CAcreateserial -out server.crt -days 2 -extfile san.ext "
             ">>openssl.log 2>&1 && chmod 644 ca.crt server.crt",
             dir, name);
    if (!test_certs_run(cmd))
        return false;
    if (!key_pass)
        return true;
    snprintf(cmd, sizeof cmd,
             "cd '%s' && umask 077 && openssl pkey -in server.key -aes256 "
             "-passout 'pass:%s' -out client.key >>openssl.log 2>&1",
             dir, key_pass);
    return test_certs_run(cmd);
}

#endif
