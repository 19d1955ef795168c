/*
 * redact.c -- redaction before text leaves the process (redact.h).
 *
 * A redactor is a list of rules. A rule finds ranges in one NUL-free
 * segment of the text (a NUL ends every secret); most built-ins are small
 * C scanners (e-mail, card numbers with Luhn, PEM blocks, URL passwords,
 * secret keys' values), linear in the text and exact about boundaries; the
 * token-shaped API keys, bearer/Basic credentials, JWTs and the user's
 * patterns are POSIX EREs run with REG_STARTEND on the segment. A built-in
 * regex (and the PEM, URL and e-mail scanners) runs only when one of its
 * needles ("sk-", "AKIA", "eyJ", "://", "@", ...) occurs, and starts at
 * the first one; one pass over the bytes finds every rule's first needle,
 * so a text without candidates costs that pass, the key scanner and the
 * card scanner (about 30 us for 4 KiB of span JSON, see test_redact).
 *
 * One pass collects every rule's ranges, sorts them, merges overlapping and
 * adjacent ones (a secret two rules see differently is removed whole) and
 * writes the text with each merged range replaced. Passes repeat until one
 * finds nothing, so a secret that appears only once two pieces are joined
 * is caught too, and the result is a fixed point: redacting it again finds
 * nothing. When the text still has matches after MAX_PASSES rewrites (only
 * user patterns that feed on replacements do that) the whole text becomes
 * one replacement, which halo_redactor_new has checked no rule redacts.
 * Rules ignore ranges that already are replacements.
 */
#include "redact.h"

#include "../core/buf.h"

#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_PASSES = 4,
    MAX_NEEDLES = 6,
    MAX_KEY_WALK = 128,   /* bytes scanned back for a key before : or = */
    MAX_JSON_DEPTH = 512, /* deeper subtrees become one replacement */
    MAX_CARD_GROUPS = 24,
};
/* Texts larger than this become one replacement (regoff_t is an int). */
#define MAX_TEXT ((size_t)1 << 28)

typedef enum kind {
    K_API_KEY,
    K_AWS_KEY,
    K_BEARER,
    K_BASIC,
    K_JWT,
    K_PRIVATE_KEY,
    K_EMAIL,
    K_CARD,
    K_URL_PASSWORD,
    K_SECRET,
    K_PATTERN,
    K_COUNT
} kind;

static const char *const kind_names[K_COUNT] = {
    "api_key",      "aws_key",     "bearer",  "basic_auth",
    "jwt",          "private_key", "email",   "card",
    "url_password", "secret",      "pattern",
};

static const char *const default_keys[] = {
    "password",   "passwd",    "secret",        "token",
    "api_key",    "apikey",    "authorization", "cookie",
    "set_cookie", "x_api_key", "private_key",   "secret_access_key",
};

typedef struct range {
    size_t start, end;
    unsigned order; /* rule index: ties sort by rule order */
    kind k;
} range;

typedef struct ranges {
    range *v;
    size_t n, cap;
    bool oom;
} ranges;

typedef struct rule rule;
/* Add the ranges of s[a..b) (no NUL inside) to out; nothing starts before
 * from (a rule's first needle, or a). */
typedef void (*find_fn)(const halo_redactor *r, const rule *ru, const char *s,
                        size_t a, size_t b, size_t from, ranges *out);
/* Judge a regex match: segment [a, b), whole match from ms, the group to
 * replace [gs, ge). */
typedef bool (*accept_fn)(const char *s, size_t a, size_t b, size_t ms,
                          size_t gs, size_t ge);

struct rule {
    find_fn find;
    kind k;
    unsigned order;
    regex_t re;
    bool compiled;
    int group;
    const char *needles[MAX_NEEDLES];
    size_t needle_len[MAX_NEEDLES];
    bool needle_ci;
    accept_fn accept;
};

struct halo_redactor {
    rule *rules;
    size_t n_rules;
    char **keys; /* normalized: lower case, '-' as '_' */
    size_t *key_len;
    size_t n_keys;
    char *tok[K_COUNT]; /* the replacement per kind */
    size_t tok_len[K_COUNT];
    char *plain; /* the untyped replacement (whole-text fallback) */
    size_t plain_len;
    /* rules (the first 64) with needles: by the needles' first byte */
    uint64_t by_byte[256];
    uint64_t needle_rules;
};

/* ---- bytes ----------------------------------------------------------- */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_lower(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_alpha(unsigned char c)
{
    return is_lower(c) || is_upper(c);
}

static bool is_alnum(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static unsigned char lower(unsigned char c)
{
    return is_upper(c) ? (unsigned char)(c + 32) : c;
}

/* Lower case with '-' read as '_': how keys compare. */
static unsigned char key_norm(unsigned char c)
{
    return c == '-' ? '_' : lower(c);
}

/* s[a..b) has no alphanumeric byte just before i. */
static bool left_boundary(const char *s, size_t a, size_t i)
{
    return i == a || !is_alnum((unsigned char)s[i - 1]);
}

static bool right_boundary(const char *s, size_t b, size_t i)
{
    return i >= b || !is_alnum((unsigned char)s[i]);
}

static size_t find_ci(const char *s, size_t a, size_t b, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = a; i + m <= b; i++) {
        size_t j = 0;
        while (j < m && lower((unsigned char)s[i + j]) ==
                            lower((unsigned char)needle[j]))
            j++;
        if (j == m)
            return i;
    }
    return SIZE_MAX;
}

static size_t find_cs(const char *s, size_t a, size_t b, const char *needle)
{
    const char *p = memmem(s + a, b - a, needle, strlen(needle));
    return p ? (size_t)(p - s) : SIZE_MAX;
}

/* ---- ranges and replacement tokens ------------------------------------ */

static void add_range(ranges *out, size_t start, size_t end, const rule *ru)
{
    if (end <= start || out->oom)
        return;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 16;
        range *v = realloc(out->v, cap * sizeof *v);
        if (!v) {
            out->oom = true;
            return;
        }
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n++] = (range){start, end, ru->order, ru->k};
}

/* Length of the replacement token p[0..n) starts with, 0 if none. */
static size_t token_prefix(const halo_redactor *r, const char *p, size_t n)
{
    if (r->plain_len <= n && !memcmp(p, r->plain, r->plain_len))
        return r->plain_len;
    for (int k = 0; k < K_COUNT; k++)
        if (r->tok_len[k] <= n && !memcmp(p, r->tok[k], r->tok_len[k]))
            return r->tok_len[k];
    return 0;
}

/* p[0..n) is nothing but replacement tokens (and is not empty). */
static bool all_tokens(const halo_redactor *r, const char *p, size_t n)
{
    if (!n)
        return false;
    while (n) {
        size_t t = token_prefix(r, p, n);
        if (!t)
            return false;
        p += t;
        n -= t;
    }
    return true;
}

/* Add s[start..end) unless it is already redacted; a value that starts
 * with tokens has only the rest redacted. */
static void add_unless_token(const halo_redactor *r, ranges *out, const char *s,
                             size_t start, size_t end, const rule *ru)
{
    size_t t;
    while (start < end && (t = token_prefix(r, s + start, end - start)))
        start += t;
    add_range(out, start, end, ru);
}

/* ---- regex rules ------------------------------------------------------ */

/* One of ru's needles starts at s[i]. */
static bool needle_at(const rule *ru, const char *s, size_t i, size_t b)
{
    for (int k = 0; k < MAX_NEEDLES && ru->needles[k]; k++) {
        const char *nd = ru->needles[k];
        size_t m = ru->needle_len[k], j = 0;
        if (b - i < m)
            continue;
        if (ru->needle_ci)
            while (j < m && lower((unsigned char)s[i + j]) ==
                                lower((unsigned char)nd[j]))
                j++;
        else
            while (j < m && s[i + j] == nd[j])
                j++;
        if (j == m)
            return true;
    }
    return false;
}

static void find_regex(const halo_redactor *r, const rule *ru, const char *s,
                       size_t a, size_t b, size_t from, ranges *out)
{
    regmatch_t m[4];
    size_t nm = (size_t)ru->group + 1;
    while (from < b && !out->oom) {
        m[0].rm_so = (regoff_t)from;
        m[0].rm_eo = (regoff_t)b;
        if (regexec(&ru->re, s, nm, m, REG_STARTEND) != 0)
            return;
        size_t ms = (size_t)m[0].rm_so, me = (size_t)m[0].rm_eo;
        const regmatch_t *g = &m[ru->group];
        bool ok = g->rm_so >= 0 && g->rm_eo > g->rm_so &&
                  (!ru->accept ||
                   ru->accept(s, a, b, ms, (size_t)g->rm_so, (size_t)g->rm_eo));
        if (ok && !all_tokens(r, s + g->rm_so, (size_t)(g->rm_eo - g->rm_so)))
            add_range(out, (size_t)g->rm_so, (size_t)g->rm_eo, ru);
        from = ok && me > ms ? me : ms + 1;
    }
}

static bool has_digit_and_letter(const char *s, size_t a, size_t b)
{
    bool d = false, l = false;
    for (size_t i = a; i < b; i++) {
        d |= is_digit((unsigned char)s[i]);
        l |= is_alpha((unsigned char)s[i]);
    }
    return d && l;
}

static bool accept_left(const char *s, size_t a, size_t b, size_t ms, size_t gs,
                        size_t ge)
{
    (void)b, (void)gs, (void)ge;
    return left_boundary(s, a, ms);
}

/* sk-...: random keys have digits and letters ("sk-learn-..." has none). */
static bool accept_sk(const char *s, size_t a, size_t b, size_t ms, size_t gs,
                      size_t ge)
{
    (void)b;
    return left_boundary(s, a, ms) && has_digit_and_letter(s, gs + 3, ge);
}

static bool accept_both(const char *s, size_t a, size_t b, size_t ms, size_t gs,
                        size_t ge)
{
    (void)gs;
    return left_boundary(s, a, ms) && right_boundary(s, b, ge);
}

static bool accept_digit(const char *s, size_t a, size_t b, size_t ms,
                         size_t gs, size_t ge)
{
    (void)b;
    return left_boundary(s, a, ms) && has_digit_and_letter(s, gs, ge);
}

/* "Bearer <t>": a token has a digit, or is long and mixed-case; "bearer
 * instrument" is prose. */
static bool accept_bearer(const char *s, size_t a, size_t b, size_t ms,
                          size_t gs, size_t ge)
{
    (void)b;
    if (!left_boundary(s, a, ms))
        return false;
    bool d = false, up = false, lo = false;
    for (size_t i = gs; i < ge; i++) {
        unsigned char c = (unsigned char)s[i];
        d |= is_digit(c);
        up |= is_upper(c);
        lo |= is_lower(c);
    }
    return d || (ge - gs >= 24 && up && lo);
}

static int b64_value(unsigned char c)
{
    if (is_upper(c))
        return c - 'A';
    if (is_lower(c))
        return c - 'a' + 26;
    if (is_digit(c))
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* "Basic <t>": t decodes to printable "user:password" ("basic idea" does
 * not). */
static bool accept_basic(const char *s, size_t a, size_t b, size_t ms,
                         size_t gs, size_t ge)
{
    (void)b;
    if (!left_boundary(s, a, ms))
        return false;
    unsigned acc = 0, bits = 0;
    size_t n = 0;
    bool colon = false;
    for (size_t i = gs; i < ge && s[i] != '='; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            unsigned char c = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
            if (c < 0x20 || c > 0x7e)
                return false;
            colon |= c == ':';
            n++;
        }
    }
    return colon && n >= 2;
}

typedef struct regex_def {
    kind k;
    const char *re;
    int group;
    const char *needles[MAX_NEEDLES];
    bool needle_ci;
    accept_fn accept;
} regex_def;

static const regex_def builtin_regexes[] = {
    {K_JWT,
     "eyJ[A-Za-z0-9_-]{5,}\\.eyJ[A-Za-z0-9_-]{5,}\\.[A-Za-z0-9_-]*",
     0,
     {"eyJ"},
     false,
     accept_left},
    {K_BEARER,
     "[Bb][Ee][Aa][Rr][Ee][Rr][[:space:]]+([A-Za-z0-9._~+/=-]{8,})",
     1,
     {"bearer"},
     true,
     accept_bearer},
    {K_BASIC,
     "[Bb][Aa][Ss][Ii][Cc][[:space:]]+([A-Za-z0-9+/]{4,}={0,2})",
     1,
     {"basic"},
     true,
     accept_basic},
    {K_API_KEY, "sk-[A-Za-z0-9_-]{20,}", 0, {"sk-"}, false, accept_sk},
    {K_AWS_KEY, "A[KS]IA[0-9A-Z]{16}", 0, {"AKIA", "ASIA"}, false, accept_both},
    {K_API_KEY,
     "gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}",
     0,
     {"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
     false,
     accept_left},
    {K_API_KEY,
     "xox[abprse]-[A-Za-z0-9-]{10,}",
     0,
     {"xox"},
     false,
     accept_digit},
    {K_API_KEY, "AIza[0-9A-Za-z_-]{35}", 0, {"AIza"}, false, accept_left},
};

/* ---- C rules ---------------------------------------------------------- */

static bool email_local(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' ||
           c == '-';
}

static bool email_domain(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '-';
}

/* local@domain.tld: at least one dot, a final label of 2+ letters. */
static size_t email_domain_end(const char *s, size_t d, size_t b)
{
    size_t e = d;
    while (e < b && email_domain((unsigned char)s[e]))
        e++;
    while (e > d && (s[e - 1] == '.' || s[e - 1] == '-'))
        e--;
    if (e == d || !is_alnum((unsigned char)s[d]))
        return 0;
    size_t t = e;
    while (t > d && is_alpha((unsigned char)s[t - 1]))
        t--;
    if (e - t < 2 || t == d || s[t - 1] != '.')
        return 0;
    return e;
}

static void find_email(const halo_redactor *r, const rule *ru, const char *s,
                       size_t a, size_t b, size_t from, ranges *out)
{
    (void)r;
    size_t i = from;
    const char *at;
    while (i < b && (at = memchr(s + i, '@', b - i))) {
        size_t p = (size_t)(at - s), l = p;
        while (l > a && email_local((unsigned char)s[l - 1]))
            l--;
        size_t e = l < p ? email_domain_end(s, p + 1, b) : 0;
        if (e) {
            add_range(out, l, e, ru);
            i = e;
        } else {
            i = p + 1;
        }
    }
}

static bool luhn(const char *digits, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(digits[n - 1 - i] - '0');
        if (i % 2) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

typedef struct group {
    size_t start, end; /* digits s[start..end) */
} group;

/* The groups are a card number: 13-19 digits in all (groups of 3+ when
 * separated), issuer digit 2-6, passing Luhn. The whole sequence or
 * nothing: a UUID or a date made of digit groups is not cut into a card. */
static bool is_card(const char *s, const group *g, size_t ng)
{
    char digits[20];
    size_t nd = 0;
    if (s[g[0].start] < '2' || s[g[0].start] > '6')
        return false;
    for (size_t y = 0; y < ng; y++) {
        size_t len = g[y].end - g[y].start;
        if (nd + len > 19 || (ng > 1 && len < 3))
            return false;
        memcpy(digits + nd, s + g[y].start, len);
        nd += len;
    }
    return nd >= 13 && luhn(digits, nd);
}

/* Digit groups from i separated by one space or one dash (the same
 * separator throughout); returns how many, their end in *end. */
static size_t card_groups(const char *s, size_t i, size_t b, group *g,
                          size_t *end)
{
    size_t ng = 0;
    char sep = 0;
    while (ng < MAX_CARD_GROUPS) {
        size_t e = i;
        while (e < b && is_digit((unsigned char)s[e]))
            e++;
        g[ng++] = (group){i, e};
        *end = e;
        if (e + 1 >= b || !is_digit((unsigned char)s[e + 1]) ||
            (s[e] != ' ' && s[e] != '-') || (sep && s[e] != sep))
            break;
        sep = s[e];
        i = e + 1;
    }
    return ng;
}

static void find_card(const halo_redactor *r, const rule *ru, const char *s,
                      size_t a, size_t b, size_t from, ranges *out)
{
    (void)r;
    size_t i = from;
    while (i < b) {
        if (!is_digit((unsigned char)s[i]) || !left_boundary(s, a, i) ||
            (i > a + 1 && s[i - 1] == '.' &&
             is_digit((unsigned char)s[i - 2]))) {
            i++;
            continue;
        }
        group g[MAX_CARD_GROUPS];
        size_t end, ng = card_groups(s, i, b, g, &end);
        if (!right_boundary(s, b, end) ||
            (end < b && s[end] == '.' && end + 1 < b &&
             is_digit((unsigned char)s[end + 1]))) {
            i = end;
            while (i < b && is_alnum((unsigned char)s[i]))
                i++;
            continue;
        }
        if (is_card(s, g, ng))
            add_range(out, i, end, ru);
        i = end;
    }
}

/* -----BEGIN ... PRIVATE KEY----- to its END line, or to the end of the
 * text when the block was cut. */
static void find_private_key(const halo_redactor *r, const rule *ru,
                             const char *s, size_t a, size_t b, size_t from,
                             ranges *out)
{
    (void)r, (void)a;
    size_t i = from, p;
    while ((p = find_cs(s, i, b, "-----BEGIN ")) != SIZE_MAX) {
        size_t h = p + 11;
        size_t lim = b - h > 100 ? h + 100 : b;
        size_t close = find_cs(s, h, lim, "-----");
        if (close == SIZE_MAX ||
            find_cs(s, h, close, "PRIVATE KEY") == SIZE_MAX) {
            i = h;
            continue;
        }
        size_t end = b, e = find_cs(s, close + 5, b, "-----END ");
        if (e != SIZE_MAX) {
            size_t elim = b - (e + 9) > 100 ? e + 9 + 100 : b;
            size_t c2 = find_cs(s, e + 9, elim, "-----");
            if (c2 != SIZE_MAX)
                end = c2 + 5;
        }
        add_range(out, p, end, ru);
        i = end;
    }
}

static bool url_stop(unsigned char c)
{
    return is_space(c) || c == '/' || c == '?' || c == '#' || c == '"' ||
           c == '\'' || c == '<' || c == '>' || c == '\\';
}

/* scheme://user:PASSWORD@host: the password (up to the last '@' of the
 * authority, as people do write unescaped '@' in passwords). */
static void find_url_password(const halo_redactor *r, const rule *ru,
                              const char *s, size_t a, size_t b, size_t from,
                              ranges *out)
{
    size_t i = from, p;
    while ((p = find_cs(s, i, b, "://")) != SIZE_MAX) {
        size_t u = p + 3, j = u, at = SIZE_MAX, colon = SIZE_MAX;
        while (j < b && j - u < 1024 && !url_stop((unsigned char)s[j])) {
            if (s[j] == '@')
                at = j;
            else if (s[j] == ':' && colon == SIZE_MAX && at == SIZE_MAX)
                colon = j;
            j++;
        }
        if (p > a && is_alpha((unsigned char)s[p - 1]) && at != SIZE_MAX &&
            colon != SIZE_MAX && colon < at)
            add_unless_token(r, out, s, colon + 1, at, ru);
        i = u;
    }
}

/* ---- secret keys ------------------------------------------------------ */

static bool key_matches_at(const char *id, size_t n, const char *k, size_t m)
{
    if (n < m)
        return false;
    const char *t = id + n - m;
    for (size_t i = 0; i < m; i++)
        if (key_norm((unsigned char)t[i]) != (unsigned char)k[i])
            return false;
    if (n == m)
        return true;
    unsigned char before = (unsigned char)t[-1], first = (unsigned char)t[0];
    /* a separator, or a camelCase boundary ("openaiApiKey") */
    return !is_alnum(before) ||
           (is_upper(first) && (is_lower(before) || is_digit(before)));
}

bool halo_redact_is_secret_key(const halo_redactor *r, const char *key,
                               size_t len)
{
    if (!r || !key)
        return false;
    for (size_t i = 0; i < r->n_keys; i++)
        if (key_matches_at(key, len, r->keys[i], r->key_len[i]))
            return true;
    return false;
}

static bool key_char(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

/* The identifier that ends just before s[i] (a ':' or '='), skipping
 * blanks and a closing quote: [*start, *end). */
static bool key_before(const char *s, size_t a, size_t i, size_t *start,
                       size_t *end)
{
    size_t k = i;
    while (k > a && i - k < 8 && (s[k - 1] == ' ' || s[k - 1] == '\t'))
        k--;
    if (k > a && (s[k - 1] == '"' || s[k - 1] == '\'')) {
        k--;
        if (k > a && s[k - 1] == '\\')
            k--;
    }
    *end = k;
    while (k > a && *end - k < MAX_KEY_WALK &&
           key_char((unsigned char)s[k - 1]))
        k--;
    *start = k;
    return *end > k;
}

static bool value_stop(unsigned char c)
{
    return is_space(c) || c == ',' || c == ';' || c == '&' || c == '"' ||
           c == '\'' || c == '}' || c == ']' || c == ')' || c == '<' ||
           c == '>' || c == '\\';
}

/* A JSON-ish value from '{' or '[' to its matching bracket (strings
 * skipped), or b. */
static size_t balanced_end(const char *s, size_t v, size_t b)
{
    size_t depth = 0;
    for (size_t i = v; i < b; i++) {
        char c = s[i];
        if (c == '"') {
            for (i++; i < b && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            if (i >= b)
                return b;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return b;
}

/* The end of the quoted value whose content starts at v (after q). */
static size_t quoted_end(const char *s, size_t v, size_t b, char q,
                         bool escaped)
{
    for (size_t i = v; i < b; i++) {
        if (escaped && s[i] == '\\' && i + 1 < b && s[i + 1] == q)
            return i;
        if (!escaped && s[i] == '\\') {
            i++;
            continue;
        }
        if (!escaped && s[i] == q)
            return i;
    }
    return b;
}

static const char *const auth_schemes[] = {
    "bearer", "basic", "digest", "token", "apikey", "negotiate", "ntlm"};

/* Past "Bearer " and the like at v, else v. */
static size_t skip_scheme(const char *s, size_t v, size_t b)
{
    for (size_t i = 0; i < sizeof auth_schemes / sizeof *auth_schemes; i++) {
        size_t m = strlen(auth_schemes[i]);
        if (v + m < b && find_ci(s, v, v + m, auth_schemes[i]) == v &&
            (s[v + m] == ' ' || s[v + m] == '\t')) {
            size_t e = v + m;
            while (e < b && (s[e] == ' ' || s[e] == '\t'))
                e++;
            return e;
        }
    }
    return v;
}

static bool is_word(const char *s, size_t v, size_t e, const char *w)
{
    return e - v == strlen(w) && !memcmp(s + v, w, e - v);
}

/* The value after the ':' or '=' at i: [*vs, *ve); false when none. */
static bool value_after(const halo_redactor *r, const char *s, size_t i,
                        size_t b, bool to_eol, size_t *vs, size_t *ve)
{
    size_t v = i + 1;
    while (v < b && (s[v] == ' ' || s[v] == '\t'))
        v++;
    if (v >= b)
        return false;
    if (s[v] == '\\' && v + 1 < b && s[v + 1] == '"') {
        *vs = v + 2;
        *ve = quoted_end(s, v + 2, b, '"', true);
    } else if (s[v] == '"' || s[v] == '\'') {
        *vs = v + 1;
        *ve = quoted_end(s, v + 1, b, s[v], false);
    } else if ((s[v] == '{' || s[v] == '[') && !token_prefix(r, s + v, b - v)) {
        *vs = v;
        *ve = balanced_end(s, v, b);
    } else {
        size_t e = v, t;
        while (e < b && (t = token_prefix(r, s + e, b - e)))
            e += t; /* already redacted */
        e = skip_scheme(s, e, b);
        while (e < b && (to_eol ? s[e] != '\n' && s[e] != '\r' && s[e] != '"' &&
                                      s[e] != '\\'
                                : !value_stop((unsigned char)s[e])))
            e++;
        if (is_word(s, v, e, "null") || is_word(s, v, e, "true") ||
            is_word(s, v, e, "false"))
            return false;
        *vs = v;
        *ve = e;
    }
    return *ve > *vs;
}

static void find_keys(const halo_redactor *r, const rule *ru, const char *s,
                      size_t a, size_t b, size_t from, ranges *out)
{
    for (size_t i = from; i < b; i++) {
        char c = s[i];
        if (c != ':' && c != '=')
            continue;
        if ((c == ':' && i + 1 < b && s[i + 1] == '/') ||
            (c == '=' && i + 1 < b && (s[i + 1] == '=' || s[i + 1] == '>')))
            continue;
        size_t ks, ke, vs, ve;
        if (!key_before(s, a, i, &ks, &ke) ||
            !halo_redact_is_secret_key(r, s + ks, ke - ks))
            continue;
        /* a cookie header's value runs to the end of its line */
        static const char cookie[] = "cookie";
        bool to_eol = c == ':' && key_matches_at(s + ks, ke - ks, cookie, 6);
        if (!value_after(r, s, i, b, to_eol, &vs, &ve))
            continue;
        add_unless_token(r, out, s, vs, ve, ru);
        i = ve > i ? ve - 1 : i;
    }
}

/* ---- one pass --------------------------------------------------------- */

/* Where each needle rule's first needle occurs in s[a..b), in one pass
 * (SIZE_MAX: nowhere, the rule cannot match). */
static void first_needles(const halo_redactor *r, const char *s, size_t a,
                          size_t b, size_t *first)
{
    uint64_t pending = r->needle_rules;
    for (size_t i = 0; i < 64; i++)
        first[i] = SIZE_MAX;
    for (size_t i = a; i < b && pending; i++) {
        uint64_t m = r->by_byte[(unsigned char)s[i]] & pending;
        while (m) {
            int k = __builtin_ctzll(m);
            m &= m - 1;
            if (needle_at(&r->rules[k], s, i, b)) {
                first[k] = i;
                pending &= ~(1ull << k);
            }
        }
    }
}

static void scan_segment(const halo_redactor *r, const char *s, size_t a,
                         size_t b, ranges *out)
{
    size_t first[64];
    first_needles(r, s, a, b, first);
    for (size_t i = 0; i < r->n_rules; i++) {
        size_t from = a;
        if (i < 64 && (r->needle_rules >> i & 1) && (from = first[i]) >= b)
            continue;
        r->rules[i].find(r, &r->rules[i], s, a, b, from, out);
    }
}

static void scan_text(const halo_redactor *r, const char *s, size_t len,
                      ranges *out)
{
    size_t a = 0;
    while (a < len) {
        const char *nul = memchr(s + a, '\0', len - a);
        size_t b = nul ? (size_t)(nul - s) : len;
        if (b > a)
            scan_segment(r, s, a, b, out);
        a = b + 1;
    }
}

static int range_cmp(const void *pa, const void *pb)
{
    const range *x = pa, *y = pb;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sort and merge overlapping or adjacent ranges; returns the new count. */
static size_t merge_ranges(ranges *rs)
{
    if (!rs->n)
        return 0;
    qsort(rs->v, rs->n, sizeof *rs->v, range_cmp);
    size_t n = 0;
    for (size_t i = 1; i < rs->n; i++) {
        range *cur = &rs->v[n];
        if (rs->v[i].start <= cur->end) {
            if (rs->v[i].end > cur->end)
                cur->end = rs->v[i].end;
        } else {
            rs->v[++n] = rs->v[i];
        }
    }
    rs->n = n + 1;
    return rs->n;
}

static void apply_ranges(const halo_redactor *r, const char *s, size_t len,
                         const ranges *rs, halo_buf *out)
{
    size_t at = 0;
    for (size_t i = 0; i < rs->n; i++) {
        halo_buf_append(out, s + at, rs->v[i].start - at);
        halo_buf_append(out, r->tok[rs->v[i].k], r->tok_len[rs->v[i].k]);
        at = rs->v[i].end;
    }
    halo_buf_append(out, s + at, len - at);
}

size_t halo_redact_scan(const halo_redactor *r, const char *s, size_t len)
{
    if (!r || !s || !len)
        return 0;
    if (len > MAX_TEXT)
        return 1;
    ranges rs = {0};
    scan_text(r, s, len, &rs);
    size_t n = rs.oom ? 1 : merge_ranges(&rs);
    free(rs.v);
    return n;
}

/* ---- the text API ----------------------------------------------------- */

static char *copy_bytes(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (!c)
        return NULL;
    if (len)
        memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

/* One pass over cur (owned): a new text in *next (NULL: nothing found),
 * false when out of memory. */
static bool one_pass(const halo_redactor *r, const char *cur, size_t len,
                     char **next, size_t *next_len, size_t *count)
{
    ranges rs = {0};
    halo_buf out = HALO_BUF_INIT;
    *next = NULL;
    scan_text(r, cur, len, &rs);
    if (rs.oom) {
        free(rs.v);
        return false;
    }
    if (merge_ranges(&rs)) {
        *count += rs.n;
        apply_ranges(r, cur, len, &rs, &out);
        if (!halo_buf_reserve(&out, 1)) {
            free(rs.v);
            halo_buf_free(&out);
            return false;
        }
        out.data[out.len] = '\0';
        *next_len = out.len;
        *next = out.data;
    }
    free(rs.v);
    return true;
}

char *halo_redact_text_n(const halo_redactor *r, const char *s, size_t len,
                         size_t *out_len, size_t *n_redacted)
{
    size_t count = 0, cur_len = len, dummy;
    char *cur = NULL;
    if (!out_len)
        out_len = &dummy;
    if (!s)
        len = cur_len = 0;
    if (!r) {
        *out_len = len;
        if (n_redacted)
            *n_redacted = 0;
        return copy_bytes(s, len);
    }
    if (len > MAX_TEXT)
        goto whole;
    if (!(cur = copy_bytes(s, len)))
        return NULL;
    for (int pass = 0; pass < MAX_PASSES; pass++) {
        char *next;
        size_t next_len = 0;
        if (!one_pass(r, cur, cur_len, &next, &next_len, &count)) {
            free(cur);
            return NULL;
        }
        if (!next)
            goto done;
        free(cur);
        cur = next;
        cur_len = next_len;
    }
    if (halo_redact_scan(r, cur, cur_len) == 0)
        goto done;
    goto whole; /* still finding secrets: fail closed */
done:
    *out_len = cur_len;
    if (n_redacted)
        *n_redacted = count;
    return cur;
whole:
    free(cur);
    *out_len = r->plain_len;
    if (n_redacted)
        *n_redacted = count + 1;
    return copy_bytes(r->plain, r->plain_len);
}

char *halo_redact_text(const halo_redactor *r, const char *s, size_t len,
                       size_t *n_redacted)
{
    return halo_redact_text_n(r, s, len, NULL, n_redacted);
}

/* ---- JSON ------------------------------------------------------------- */

static json_t *redact_value(const halo_redactor *r, json_t *v, size_t *n,
                            int depth);

static json_t *secret_string(const halo_redactor *r, kind k, size_t *n)
{
    (*n)++;
    return json_stringn(r->tok[k], r->tok_len[k]);
}

static void redact_object(const halo_redactor *r, json_t *obj, size_t *n,
                          int depth)
{
    for (void *it = json_object_iter(obj); it;
         it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *v = json_object_iter_value(it), *nv;
        if (json_is_string(v) &&
            all_tokens(r, json_string_value(v), json_string_length(v)))
            continue; /* already redacted */
        if (halo_redact_is_secret_key(r, key, klen) && !json_is_null(v) &&
            !json_is_boolean(v))
            nv = secret_string(r, K_SECRET, n);
        else
            nv = redact_value(r, v, n, depth + 1);
        if (nv)
            json_object_iter_set_new(obj, it, nv);
    }
}

static void redact_string(const halo_redactor *r, json_t *v, size_t *n)
{
    size_t c = 0, olen = 0;
    char *out = halo_redact_text_n(r, json_string_value(v),
                                   json_string_length(v), &olen, &c);
    if (!out) { /* out of memory: fail closed */
        json_string_set(v, r->plain);
        (*n)++;
        return;
    }
    /* a user's pattern may cut a UTF-8 sequence: then the whole string */
    if (c && json_string_setn(v, out, olen) != 0)
        json_string_set(v, r->plain);
    *n += c;
    free(out);
}

/* A replacement for v in its parent (NULL: v kept, maybe changed in place). */
static json_t *redact_value(const halo_redactor *r, json_t *v, size_t *n,
                            int depth)
{
    if (json_is_string(v) &&
        all_tokens(r, json_string_value(v), json_string_length(v)))
        return NULL; /* already redacted */
    if (depth > MAX_JSON_DEPTH)
        return secret_string(r, K_SECRET, n);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        redact_object(r, v, n, depth);
        return NULL;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *nv = redact_value(r, json_array_get(v, i), n, depth + 1);
            if (nv)
                json_array_set_new(v, i, nv);
        }
        return NULL;
    case JSON_STRING:
        redact_string(r, v, n);
        return NULL;
    case JSON_INTEGER: {
        char digits[32];
        int len = snprintf(digits, sizeof digits, "%" JSON_INTEGER_FORMAT,
                           json_integer_value(v));
        size_t c = 0, olen = 0;
        if (len <= 0 || !halo_redact_scan(r, digits, (size_t)len))
            return NULL;
        char *out = halo_redact_text_n(r, digits, (size_t)len, &olen, &c);
        json_t *nv = out ? json_stringn(out, olen) : NULL;
        free(out);
        *n += c ? c : 1;
        return nv ? nv : json_string(r->plain);
    }
    default:
        return NULL;
    }
}

void halo_redact_json(const halo_redactor *r, json_t *v, size_t *n_redacted)
{
    size_t dummy = 0;
    if (!r || !v)
        return;
    json_t *nv = redact_value(r, v, n_redacted ? n_redacted : &dummy, 0);
    json_decref(nv); /* a top-level scalar cannot be swapped */
}

/* ---- construction ----------------------------------------------------- */

#define ROFF(f) offsetof(halo_redact_cfg, f)
const halo_field halo_redact_schema[] = {
    {"defaults", HALO_F_BOOL, ROFF(defaults), "true", 0, 0, NULL, NULL, 0,
     "the built-in detectors (API keys, tokens, e-mails, cards...) and keys"},
    {"keys", HALO_F_STRLIST, ROFF(keys), NULL, 0, 0, NULL, NULL, 0,
     "more keys whose values are secret (case-insensitive, suffix match)"},
    {"patterns", HALO_F_STRLIST, ROFF(patterns), NULL, 0, 0, NULL, NULL, 0,
     "more POSIX extended regular expressions; the whole match is replaced"},
    {"replacement", HALO_F_STRING, ROFF(replacement), "[REDACTED]", 0, 0, NULL,
     NULL, 0, "what a redacted range becomes"},
    {"typed", HALO_F_BOOL, ROFF(typed), "true", 0, 0, NULL, NULL, 0,
     "say what was removed: \"[REDACTED:email]\""},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, NULL},
};
#undef ROFF

void halo_redactor_free(halo_redactor *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_rules; i++)
        if (r->rules[i].compiled)
            regfree(&r->rules[i].re);
    free(r->rules);
    for (size_t i = 0; i < r->n_keys; i++)
        free(r->keys[i]);
    free(r->keys);
    free(r->key_len);
    for (int k = 0; k < K_COUNT; k++)
        free(r->tok[k]);
    free(r->plain);
    free(r);
}

static halo_status add_key(halo_redactor *r, const char *key, halo_err *err)
{
    size_t m = strlen(key);
    char *k = malloc(m + 1);
    if (!k)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    for (size_t i = 0; i <= m; i++)
        k[i] = (char)key_norm((unsigned char)key[i]);
    r->keys[r->n_keys] = k;
    r->key_len[r->n_keys++] = m;
    return HALO_OK;
}

static halo_status build_keys(halo_redactor *r, const halo_redact_cfg *cfg,
                              halo_err *err)
{
    size_t nd = cfg->defaults ? sizeof default_keys / sizeof *default_keys : 0;
    size_t total = nd + cfg->keys.n;
    r->keys = calloc(total ? total : 1, sizeof *r->keys);
    r->key_len = calloc(total ? total : 1, sizeof *r->key_len);
    if (!r->keys || !r->key_len)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    for (size_t i = 0; i < nd; i++)
        if (add_key(r, default_keys[i], err) != HALO_OK)
            return HALO_ENOMEM;
    for (size_t i = 0; i < cfg->keys.n; i++) {
        const char *k = cfg->keys.items[i];
        if (!k || !*k)
            return halo_fail(err, HALO_EINVAL,
                             "analyzer.redaction.keys[%zu]: empty key", i);
        if (add_key(r, k, err) != HALO_OK)
            return HALO_ENOMEM;
    }
    return HALO_OK;
}

static halo_status build_tokens(halo_redactor *r, const halo_redact_cfg *cfg,
                                halo_err *err)
{
    const char *rep = cfg->replacement ? cfg->replacement : "[REDACTED]";
    size_t rl = strlen(rep);
    if (!rl)
        return halo_fail(err, HALO_EINVAL,
                         "analyzer.redaction.replacement: must not be empty");
    if (!(r->plain = strdup(rep)))
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    r->plain_len = rl;
    bool bracket = rep[rl - 1] == ']';
    for (int k = 0; k < K_COUNT; k++) {
        halo_buf b = HALO_BUF_INIT;
        if (cfg->typed) {
            halo_buf_append(&b, rep, bracket ? rl - 1 : rl);
            halo_buf_printf(&b, ":%s%s", kind_names[k], bracket ? "]" : "");
        } else {
            halo_buf_append(&b, rep, rl);
        }
        r->tok_len[k] = b.len;
        if (!(r->tok[k] = halo_buf_steal(&b)))
            return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    return HALO_OK;
}

static halo_status compile_rule(rule *ru, const char *re, int flags,
                                const char *what, halo_err *err)
{
    int rc = regcomp(&ru->re, re, REG_EXTENDED | flags);
    if (rc != 0) {
        char msg[160];
        regerror(rc, &ru->re, msg, sizeof msg);
        return halo_fail(err, HALO_EINVAL,
                         "%s: invalid regular expression \"%s\": %s", what, re,
                         msg);
    }
    ru->compiled = true;
    return HALO_OK;
}

/* Index rule i's needles by their first byte (both cases when ci). */
static void index_needles(halo_redactor *r, size_t i)
{
    rule *ru = &r->rules[i];
    if (i >= 64 || !ru->needles[0])
        return;
    for (int k = 0; k < MAX_NEEDLES && ru->needles[k]; k++) {
        ru->needle_len[k] = strlen(ru->needles[k]);
        unsigned char c = (unsigned char)ru->needles[k][0];
        r->by_byte[c] |= 1ull << i;
        if (ru->needle_ci && is_alpha(c))
            r->by_byte[c ^ 0x20] |= 1ull << i; /* the other case */
    }
    r->needle_rules |= 1ull << i;
}

static void add_c_rule(halo_redactor *r, find_fn f, kind k, const char *needle)
{
    rule *ru = &r->rules[r->n_rules];
    ru->find = f;
    ru->k = k;
    ru->needles[0] = needle;
    ru->order = (unsigned)r->n_rules;
    index_needles(r, r->n_rules++);
}

static halo_status build_builtins(halo_redactor *r, halo_err *err)
{
    add_c_rule(r, find_private_key, K_PRIVATE_KEY, "-----BEGIN ");
    add_c_rule(r, find_url_password, K_URL_PASSWORD, "://");
    for (size_t i = 0; i < sizeof builtin_regexes / sizeof *builtin_regexes;
         i++) {
        const regex_def *d = &builtin_regexes[i];
        rule *ru = &r->rules[r->n_rules];
        ru->find = find_regex;
        ru->k = d->k;
        ru->group = d->group;
        memcpy(ru->needles, d->needles, sizeof ru->needles);
        ru->needle_ci = d->needle_ci;
        ru->accept = d->accept;
        ru->order = (unsigned)r->n_rules;
        index_needles(r, r->n_rules++);
        if (compile_rule(ru, d->re, 0, "built-in pattern", err) != HALO_OK)
            return HALO_EINVAL;
    }
    add_c_rule(r, find_email, K_EMAIL, "@");
    add_c_rule(r, find_card, K_CARD, NULL);
    return HALO_OK;
}

static halo_status build_patterns(halo_redactor *r, const halo_redact_cfg *cfg,
                                  halo_err *err)
{
    for (size_t i = 0; i < cfg->patterns.n; i++) {
        char what[64];
        snprintf(what, sizeof what, "analyzer.redaction.patterns[%zu]", i);
        const char *p = cfg->patterns.items[i];
        if (!p || !*p)
            return halo_fail(err, HALO_EINVAL, "%s: empty pattern", what);
        rule *ru = &r->rules[r->n_rules];
        ru->find = find_regex;
        ru->k = K_PATTERN;
        ru->order = (unsigned)r->n_rules++;
        if (compile_rule(ru, p, 0, what, err) != HALO_OK)
            return HALO_EINVAL;
    }
    return HALO_OK;
}

/* No rule may redact a replacement, or redacting would never settle. */
static halo_status check_tokens(const halo_redactor *r, halo_err *err)
{
    for (int k = -1; k < K_COUNT; k++) {
        const char *t = k < 0 ? r->plain : r->tok[k];
        size_t tl = k < 0 ? r->plain_len : r->tok_len[k];
        for (size_t i = 0; i < r->n_rules; i++) {
            ranges rs = {0};
            r->rules[i].find(r, &r->rules[i], t, 0, tl, 0, &rs);
            size_t n = rs.n;
            free(rs.v);
            if (!n)
                continue;
            if (r->rules[i].k == K_PATTERN)
                return halo_fail(
                    err, HALO_EINVAL,
                    "analyzer.redaction.replacement: \"%s\" would itself be "
                    "redacted by a pattern; change the pattern or the "
                    "replacement",
                    t);
            return halo_fail(err, HALO_EINVAL,
                             "analyzer.redaction.replacement: \"%s\" would "
                             "itself be redacted (by the keys or a built-in "
                             "detector)",
                             t);
        }
    }
    return HALO_OK;
}

halo_status halo_redactor_new(const halo_redact_cfg *cfg, halo_redactor **out,
                              halo_err *err)
{
    halo_redact_cfg def = {.defaults = true, .typed = true};
    if (!cfg)
        cfg = &def;
    *out = NULL;
    halo_status st = HALO_ENOMEM;
    halo_redactor *r = calloc(1, sizeof *r);
    size_t max_rules = 8 + sizeof builtin_regexes / sizeof *builtin_regexes +
                       cfg->patterns.n + 1;
    if (!r || !(r->rules = calloc(max_rules, sizeof *r->rules))) {
        halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    if ((st = build_tokens(r, cfg, err)) != HALO_OK ||
        (st = build_keys(r, cfg, err)) != HALO_OK)
        goto cleanup;
    if (r->n_keys)
        add_c_rule(r, find_keys, K_SECRET, NULL);
    if ((cfg->defaults && (st = build_builtins(r, err)) != HALO_OK) ||
        (st = build_patterns(r, cfg, err)) != HALO_OK ||
        (st = check_tokens(r, err)) != HALO_OK)
        goto cleanup;
    *out = r;
    return HALO_OK;
cleanup:
    halo_redactor_free(r);
    return st;
}
