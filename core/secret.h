/*
 * secret.h -- keeping secrets (passwords, API keys, tokens, hash keys) out
 * of logs, error messages and `halo validate` output.
 *
 * Three tools, used at the roots rather than at each message:
 *
 *   - halo_secret_name: is a setting's NAME a secret's? One rule for the
 *     library pass-through options (rdkafka.sasl.password), libpq
 *     connection keywords (password, sslpassword) and URL query keys
 *     (?api_key=): it contains password/passwd/secret/token/credential/
 *     apikey, or one of its words (split on . _ -) is "key", "auth" or
 *     "authorization" -- unless its last word says it is a file or a path
 *     (ssl.key.location, sasl.kerberos.keytab, sslkey is not "key").
 *   - halo_redact_url / halo_redact_kv_pairs: a URL or a libpq key=value
 *     string fit to print: a URL's user:PASSWORD@ and the values of secret
 *     query keys / secret keywords replaced by "***".
 *   - a process-wide registry of secret VALUES: the config schema registers
 *     every HALO_F_SECRET value and every secret pass-through option as it
 *     reads them (components register what they load from elsewhere: token
 *     files, environment variables), and the places where text from a
 *     library or a server meets a message (the config error list,
 *     librdkafka's log and error callbacks, libpq and libcurl errors) pass
 *     it through halo_secret_scrub. Values shorter than HALO_SECRET_MIN_LEN
 *     are not registered: scrubbing "ab" from every message would mangle
 *     them and hides nothing worth hiding.
 *
 * Thread-safe: registration (config load, component create) and scrubbing
 * (any thread) take one mutex; the registry lives until exit.
 */
#ifndef HALO_SECRET_H
#define HALO_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* What a scrubbed value becomes in messages. */
#define HALO_SECRET_SHOWN "***"
#define HALO_SECRET_MIN_LEN 6
#define HALO_SECRET_MAX 256 /* registered values at most (then ignored) */

/* The rule above, on name[0..n) (case-insensitive). */
bool halo_secret_name_n(const char *name, size_t n);
bool halo_secret_name(const char *name);

/* Remember value (copied) so halo_secret_scrub replaces it. NULL, short
 * values and duplicates are ignored. */
void halo_secret_register(const char *value);

/* Register the secrets a setting's text carries inside it: the password
 * of a URL's user info and the values of its secret query keys
 * (postgresql://u:PASSWORD@h/db, https://h/v1?api_key=KEY), or the values
 * of secret keys in libpq key=value pairs (password=PASSWORD). The config
 * schema calls it on every string value, so a DSN's password is a secret
 * before any component has parsed the DSN. */
void halo_secret_register_embedded(const char *text);

/* Replace every occurrence of secret in buf (NUL-terminated, cap bytes)
 * by HALO_SECRET_SHOWN, truncating to fit. True when one was replaced. */
bool halo_secret_scrub_one(char *buf, size_t cap, const char *secret);
/* The same for every registered value. */
bool halo_secret_scrub(char *buf, size_t cap);

/* url with the password of its user info and the values of its secret
 * query keys (halo_secret_name, percent-decoded) replaced by "***", into
 * out (cap bytes, always NUL-terminated, truncated to fit). A string that
 * is not scheme://... is copied as it is. Returns out. */
char *halo_redact_url(const char *url, char *out, size_t cap);

/* libpq-style key=value pairs (values bare or '...' quoted, backslash
 * escapes) with the values of secret keys replaced by "***". A secret key
 * without '=' masks the rest (it may be the secret, malformed). Returns
 * out. */
char *halo_redact_kv_pairs(const char *pairs, char *out, size_t cap);

#endif
