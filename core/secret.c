/*
 * secret.c -- secret names, the registry of secret values, and the URL /
 * key=value redaction every printed DSN or URL goes through (secret.h).
 *
 * The registry is a small array kept sorted by length, longest first, so a
 * secret that contains another is replaced whole before the shorter one is
 * looked for. Scrubbing copies the text once per registered value that
 * occurs in it; messages are short and secrets few, and the common case --
 * no secret in the text -- is a strstr per value.
 */
#include "secret.h"

#include "buf.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof HALO_SECRET_SHOWN - 1 < HALO_SECRET_MIN_LEN,
               "a scrubbed message must never grow");

/* ---- names --------------------------------------------------------------- */

static bool is_sep(char c)
{
    return c == '.' || c == '_' || c == '-';
}

static bool word_is(const char *w, size_t n, const char *s)
{
    return strlen(s) == n && strncasecmp(w, s, n) == 0;
}

static bool contains_ci(const char *h, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(h + i, needle, k) == 0)
            return true;
    return false;
}

/* The last word says the value is where a secret is, not the secret. */
static bool names_a_place(const char *w, size_t n)
{
    static const char *const places[] = {"location", "file", "path", "dir",
                                         "keytab",   "cmd",  "url",  NULL};
    for (size_t i = 0; places[i]; i++)
        if (word_is(w, n, places[i]))
            return true;
    return false;
}

bool halo_secret_name_n(const char *name, size_t n)
{
    static const char *const parts[] = {"password", "passwd",     "secret",
                                        "token",    "credential", "apikey",
                                        "cookie",   NULL};
    static const char *const words[] = {"key", "auth",      "authorization",
                                        "sig", "signature", NULL};
    if (!name || n == 0)
        return false;
    size_t last = n;
    while (last > 0 && !is_sep(name[last - 1]))
        last--;
    if (names_a_place(name + last, n - last))
        return false;
    if (word_is(name, n, "sasl.oauthbearer.config"))
        return true; /* "principal=... extension_x=..." */
    for (size_t i = 0; parts[i]; i++)
        if (contains_ci(name, n, parts[i]))
            return true;
    for (size_t s = 0; s < n;) {
        size_t e = s;
        while (e < n && !is_sep(name[e]))
            e++;
        for (size_t i = 0; words[i]; i++)
            if (word_is(name + s, e - s, words[i]))
                return true;
        s = e + 1;
    }
    return false;
}

bool halo_secret_name(const char *name)
{
    return name && halo_secret_name_n(name, strlen(name));
}

/* ---- the registry -------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    char *vals[HALO_SECRET_MAX]; /* longest first */
    size_t n;
    atomic_size_t seen; /* n, read without mu: most logs have no secret */
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

void halo_secret_register(const char *value)
{
    size_t len = value ? strlen(value) : 0;
    if (len < HALO_SECRET_MIN_LEN)
        return;
    pthread_mutex_lock(&reg.mu);
    size_t at = reg.n;
    for (size_t i = 0; i < reg.n; i++) {
        if (strcmp(reg.vals[i], value) == 0)
            goto cleanup;
        if (at == reg.n && strlen(reg.vals[i]) < len)
            at = i;
    }
    char *copy;
    if (reg.n == HALO_SECRET_MAX || !(copy = strdup(value)))
        goto cleanup;
    memmove(reg.vals + at + 1, reg.vals + at, (reg.n - at) * sizeof *reg.vals);
    reg.vals[at] = copy;
    reg.n++;
    atomic_store(&reg.seen, reg.n);
cleanup:
    pthread_mutex_unlock(&reg.mu);
}

bool halo_secret_scrub_one(char *buf, size_t cap, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (!buf || cap == 0 || n == 0 || !strstr(buf, secret))
        return false;
    halo_buf out = HALO_BUF_INIT;
    for (const char *p = buf; *p;) {
        const char *hit = strstr(p, secret);
        if (!hit) {
            halo_buf_puts(&out, p);
            break;
        }
        halo_buf_append(&out, p, (size_t)(hit - p));
        halo_buf_puts(&out, HALO_SECRET_SHOWN);
        p = hit + n;
    }
    if (out.oom || !out.data) {
        /* cannot rebuild it: say nothing rather than the secret */
        snprintf(buf, cap, "%s", HALO_SECRET_SHOWN);
    } else {
        snprintf(buf, cap, "%s", out.data);
    }
    halo_buf_free(&out);
    return true;
}

bool halo_secret_scrub(char *buf, size_t cap)
{
    bool any = false;
    if (!buf || cap == 0 || atomic_load(&reg.seen) == 0)
        return false;
    pthread_mutex_lock(&reg.mu);
    for (size_t i = 0; i < reg.n; i++)
        any |= halo_secret_scrub_one(buf, cap, reg.vals[i]);
    pthread_mutex_unlock(&reg.mu);
    return any;
}

/* ---- redaction of URLs and key=value strings ----------------------------- */

/* A bounded output string; with reg, every value masked in it is also
 * registered as a secret (halo_secret_register_embedded). */
typedef struct outs {
    char *p;
    size_t cap, len;
    bool reg;
} outs;

static void put(outs *o, const char *s, size_t n)
{
    if (o->cap == 0)
        return;
    size_t room = o->cap - 1 - o->len;
    n = n < room ? n : room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* A secret value v[0..n): "***" in the output (and registered). */
static void mask(outs *o, const char *v, size_t n)
{
    put(o, "***", 3);
    if (o->reg && n >= HALO_SECRET_MIN_LEN) {
        char *copy = strndup(v, n);
        halo_secret_register(copy);
        free(copy);
    }
}

/* The end of a key=value value starting at p (libpq's rules: '...' with
 * backslash escapes, or up to white space, backslash escaping). */
static const char *value_end(const char *p)
{
    bool quoted = *p == '\'';
    if (quoted)
        p++;
    while (*p) {
        if (*p == '\\' && p[1]) {
            p += 2;
            continue;
        }
        if (quoted ? *p == '\'' : isspace((unsigned char)*p) != 0)
            return quoted ? p + 1 : p;
        p++;
    }
    return p;
}

static void redact_pairs(outs *o, const char *p)
{
    while (*p) {
        const char *start = p; /* the white space before the key */
        while (*p && isspace((unsigned char)*p))
            p++;
        const char *k = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t kn = (size_t)(p - k);
        while (*p && isspace((unsigned char)*p))
            p++;
        if (*p != '=') {
            if (*p && halo_secret_name_n(k, kn)) {
                put(o, start, (size_t)(k + kn - start));
                put(o, " ", 1);
                mask(o, p, strlen(p));
                return;
            }
            put(o, start, (size_t)(p - start));
            continue;
        }
        p++;
        while (*p && isspace((unsigned char)*p))
            p++;
        put(o, start, (size_t)(p - start)); /* up to the value */
        const char *end = value_end(p);
        if (halo_secret_name_n(k, kn))
            mask(o, *p == '\'' ? p + 1 : p,
                 (size_t)(end - p) - (*p == '\'' ? 1 + (end[-1] == '\'') : 0));
        else
            put(o, p, (size_t)(end - p));
        p = end;
    }
}

/* A URL query key, percent-decoded, is a secret's. */
static bool secret_query_key(const char *k, size_t n)
{
    char key[64];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned int c = (unsigned char)k[i];
        if (c == '%' && i + 2 < n && isxdigit((unsigned char)k[i + 1]) &&
            isxdigit((unsigned char)k[i + 2]) &&
            sscanf(k + i + 1, "%2x", &c) == 1)
            i += 2;
        if (o == sizeof key)
            return true; /* too long to judge: mask it */
        key[o++] = (char)c;
    }
    return halo_secret_name_n(key, o);
}

/* Query parameters a&b&c (up to a '#'), secret values as ***. */
static void redact_query(outs *o, const char *p)
{
    while (*p) {
        size_t n = strcspn(p, "&");
        size_t kn = strcspn(p, "=&");
        if (kn < n && secret_query_key(p, kn)) {
            put(o, p, kn + 1);
            mask(o, p + kn + 1, n - kn - 1);
        } else {
            put(o, p, n);
        }
        p += n;
        if (*p == '&')
            put(o, p++, 1);
    }
}

/* scheme://[user[:password]@]host...[?params]. The user info ends at the
 * last '@' before the first '?' (else the last '@' at all: a password
 * holding an unencoded '?' or '/' is still masked). */
static void redact_uri(outs *o, const char *uri, const char *auth)
{
    const char *q = strchr(auth, '?');
    const char *at = NULL;
    for (const char *p = auth; *p && (!q || p < q); p++)
        if (*p == '@')
            at = p;
    if (!at)
        at = strrchr(auth, '@');
    put(o, uri, (size_t)(auth - uri));
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon && colon + 1 < at) {
            put(o, auth, (size_t)(colon + 1 - auth));
            mask(o, colon + 1, (size_t)(at - colon - 1));
        } else {
            put(o, auth, (size_t)(at - auth));
        }
        auth = at;
    }
    q = strchr(auth, '?');
    put(o, auth, q ? (size_t)(q + 1 - auth) : strlen(auth));
    if (q)
        redact_query(o, q + 1);
}

/* The start of the authority when s is "scheme://...", else NULL. */
static const char *uri_authority(const char *s)
{
    const char *p = s;
    if (!isalpha((unsigned char)*p))
        return NULL;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    return strncmp(p, "://", 3) == 0 ? p + 3 : NULL;
}

char *halo_redact_url(const char *url, char *out, size_t cap)
{
    outs o = {out, cap, 0, false};
    if (cap)
        out[0] = '\0';
    if (!url)
        return out;
    const char *auth = uri_authority(url);
    if (auth)
        redact_uri(&o, url, auth);
    else
        put(&o, url, strlen(url));
    return out;
}

void halo_secret_register_embedded(const char *text)
{
    if (!text || !strchr(text, uri_authority(text) ? ':' : '='))
        return;
    char scratch[512];
    outs o = {scratch, sizeof scratch, 0, true};
    const char *auth = uri_authority(text);
    if (auth)
        redact_uri(&o, text, auth);
    else
        redact_pairs(&o, text);
}

char *halo_redact_kv_pairs(const char *pairs, char *out, size_t cap)
{
    outs o = {out, cap, 0, false};
    if (cap)
        out[0] = '\0';
    if (pairs)
        redact_pairs(&o, pairs);
    return out;
}
