/*
 * redact.h -- redaction of span contents before anything leaves the process
 * (DESIGN §7: "span contents pass through redaction before they leave").
 *
 *   analyzer:
 *     redaction:
 *       defaults: true        # the built-in detectors and secret keys
 *       keys: [ssn, pin]      # more keys whose values are secret
 *       patterns: ['ORD-[0-9]{8}']   # more POSIX extended regexes
 *       replacement: "[REDACTED]"
 *       typed: true           # "[REDACTED:email]": say what was removed
 *
 * Built-in detectors (defaults: true): API keys (OpenAI/Anthropic sk-...,
 * AWS AKIA/ASIA ids, GitHub ghp_/gho_/ghu_/ghs_/ghr_/github_pat_, Slack
 * xox?-, Google AIza), bearer tokens, HTTP Basic credentials, JWTs, e-mail
 * addresses, card numbers (13-19 digits passing the Luhn check, issuer
 * digit 2-6), PEM private key blocks and passwords in URLs; and the values
 * of secret keys, in JSON trees and in text ("password=...",
 * "\"token\": \"...\"", "Authorization: Basic ..."). A key is secret when,
 * lower-cased with '-' read as '_', it equals a listed key or ends with one
 * preceded by a non-alphanumeric character: "api_key" covers "X-Api-Key",
 * "OPENAI_API_KEY" and "http.request.header.api_key"; "token" covers
 * "access_token" but not "max_tokens". Default keys: password, passwd,
 * secret, token, api_key, apikey, authorization, cookie, set_cookie,
 * x_api_key, private_key, secret_access_key.
 *
 * Guarantees, for any bytes (invalid UTF-8 and NULs included):
 * - the output contains nothing a detector or pattern would redact: a
 *   text is redacted again until a pass finds nothing (a secret that two
 *   replacements would join is caught on the next pass); after four passes
 *   that still find something the whole text becomes one replacement;
 * - so redacting twice changes nothing: redact(redact(x)) == redact(x);
 * - a replacement is never itself redacted (halo_redactor_new refuses
 *   keys, patterns or a replacement that would make it so).
 *
 * A redactor is immutable after halo_redactor_new and may be shared by
 * threads (glibc serializes regexec on one pattern, so heavy parallel use
 * contends on the user's patterns; the built-ins mostly run as C code).
 */
#ifndef HALO_ANALYZER_REDACT_H
#define HALO_ANALYZER_REDACT_H

#include "../core/config.h"
#include "../core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct halo_redact_cfg {
    bool defaults;         /* the built-in detectors and keys */
    halo_strlist keys;     /* more secret keys (case-insensitive) */
    halo_strlist patterns; /* more POSIX EREs, the whole match replaced */
    char *replacement;     /* NULL: "[REDACTED]" */
    bool typed;            /* "[REDACTED:kind]" instead of replacement */
} halo_redact_cfg;

/* For analyzer.redaction in halo.yaml, with halo_config_apply. */
extern const halo_field halo_redact_schema[];

typedef struct halo_redactor halo_redactor;

/* Compile cfg; cfg NULL means the built-ins with typed replacements (a
 * zeroed cfg has defaults false: take cfg from halo_config_apply). A bad
 * pattern or key: HALO_EINVAL, "analyzer.redaction.patterns[2]: invalid
 * regular expression ...". */
halo_status halo_redactor_new(const halo_redact_cfg *cfg, halo_redactor **out,
                              halo_err *err);
void halo_redactor_free(halo_redactor *r);

/* s[0..len) redacted into a malloc'd NUL-terminated copy (len bytes of
 * input, NULs included; *out_len, when given, gets the output length).
 * n_redacted (may be NULL) gets the number of replacements. NULL when out
 * of memory. */
char *halo_redact_text_n(const halo_redactor *r, const char *s, size_t len,
                         size_t *out_len, size_t *n_redacted);
/* The same, when the caller needs no output length (no NULs expected). */
char *halo_redact_text(const halo_redactor *r, const char *s, size_t len,
                       size_t *n_redacted);

/* In place: values under secret keys become the replacement (except null
 * and booleans); every other string is redacted as text; integers that are
 * card numbers become the replacement. Keys are kept. n_redacted (may be
 * NULL) is incremented by the number of replacements. */
void halo_redact_json(const halo_redactor *r, json_t *v, size_t *n_redacted);

/* Does key name a secret (see above)? */
bool halo_redact_is_secret_key(const halo_redactor *r, const char *key,
                               size_t len);

/* How many ranges one redaction pass would replace in s[0..len): 0 means
 * the text is clean (redacted output always scans as 0). */
size_t halo_redact_scan(const halo_redactor *r, const char *s, size_t len);

#endif
