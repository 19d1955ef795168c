/*
 * text.c -- the text judgements the detectors share (text.h).
 *
 * The detectors see span outputs and messages from any instrumentation and
 * any tool, cut at 4 KiB, often truncated JSON. So nothing here needs a
 * complete parse: JSON outputs are judged by a tolerant scan of the
 * top-level object's members (a truncated object still shows its first
 * members), and messages by case-insensitive phrase lists. Only argument
 * normalization parses JSON (jansson), and falls back to text.
 */
#include "text.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* Case-insensitive substring search. */
static bool has_ci(const char *s, const char *needle)
{
    return strcasestr(s, needle) != NULL;
}

static bool has_any_ci(const char *s, const char *const *needles)
{
    for (size_t i = 0; needles[i]; i++)
        if (has_ci(s, needles[i]))
            return true;
    return false;
}

bool halo_text_is_empty_output(const char *s)
{
    if (!s)
        return false;
    s = skip_ws(s);
    const char *forms[] = {"", "null", "[]", "{}", "\"\""};
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        if (len == strlen(forms[i]) && !strncmp(s, forms[i], len))
            return true;
    return false;
}

/* ---- top-level members of a (possibly truncated) JSON object ----------- */

/* The value starting at v (after the ':'): does it say "error"? key is the
 * member name, klen its length. */
static bool member_says_error(const char *key, size_t klen, const char *v)
{
#define KEY_IS(lit) (klen == sizeof(lit) - 1 && !strncasecmp(key, lit, klen))
    v = skip_ws(v);
    bool is_null = !strncmp(v, "null", 4);
    bool is_false = !strncmp(v, "false", 5);
    bool is_true = !strncmp(v, "true", 4);
    /* a count of zero errors is no error: 0, 0.0 */
    bool zero = false;
    if (v[0] == '0') {
        const char *q = v + 1;
        if (*q == '.')
            q += 1 + strspn(q + 1, "0");
        zero = !isdigit((unsigned char)*q);
    }
    bool empty = !strncmp(v, "\"\"", 2) || *v == '}' || *v == ',' ||
                 !strncmp(v, "[]", 2) || !strncmp(v, "{}", 2) || !*v || zero;
    if (KEY_IS("error") || KEY_IS("errors") || KEY_IS("exception") ||
        KEY_IS("error_message") || KEY_IS("errormessage"))
        return !is_null && !is_false && !empty;
    if (KEY_IS("iserror") || KEY_IS("is_error"))
        return is_true;
    if (KEY_IS("success") || KEY_IS("ok"))
        return is_false;
    if (KEY_IS("status") || KEY_IS("state") || KEY_IS("result")) {
        if (*v != '"')
            return false;
        return !strncasecmp(v, "\"error\"", 7) ||
               !strncasecmp(v, "\"failed\"", 8) ||
               !strncasecmp(v, "\"failure\"", 9);
    }
    return false;
#undef KEY_IS
}

/* Walk the members of the top-level object at s (s at '{'). */
static bool json_object_says_error(const char *s)
{
    int depth = 0;
    const char *key = NULL; /* start of the last depth-1 string */
    size_t klen = 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == '"') {
            const char *start = p + 1;
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (!*p)
                return false;
            if (depth == 1) {
                key = start;
                klen = (size_t)(p - start);
                const char *after = skip_ws(p + 1);
                if (*after == ':' && member_says_error(key, klen, after + 1))
                    return true;
            }
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        if (depth <= 0)
            return false;
    }
    return false;
}

/* A word that ends in "Error:" or "Exception:" (ValueError:, java.io.
 * IOException:) on the first line (at most 200 bytes): a text that opens
 * with an exception, not a document that mentions one further down. */
static bool has_error_class(const char *full)
{
    char s[201];
    size_t n = strcspn(full, "\n");
    if (n > 200)
        n = 200;
    memcpy(s, full, n);
    s[n] = '\0';
    const char *tails[] = {"Error:", "Exception:", NULL};
    for (size_t t = 0; tails[t]; t++) {
        size_t tl = strlen(tails[t]);
        for (const char *p = strstr(s, tails[t]); p;
             p = strstr(p + tl, tails[t])) {
            /* a class name: letters right before, e.g. "Value" */
            if (p > s && isalpha((unsigned char)p[-1]))
                return true;
        }
    }
    return false;
}

/* Text that opens like an error report: "Error: ...", "ERROR 503 ...",
 * "error - ...", "Exception: ...", "Failed to ...", "FAILED: ...",
 * "Fatal error ...". A sentence that merely starts with the word "error"
 * ("error handling is ...") does not count. */
static bool starts_error_word(const char *s)
{
    static const struct {
        const char *word;
        const char *const after[6];
    } forms[] = {
        {"error", {":", "(", "[", " -", " code", NULL}},
        {"exception", {":", "(", " in ", NULL}},
        {"failed", {":", " to ", " with ", NULL}},
        {"fatal", {":", " error", NULL}},
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        size_t n = strlen(forms[i].word);
        if (strncasecmp(s, forms[i].word, n))
            continue;
        const char *p = s + n;
        if (*p == ' ' && isdigit((unsigned char)p[1]) && i == 0)
            return true;
        for (size_t k = 0; forms[i].after[k]; k++)
            if (!strncasecmp(p, forms[i].after[k], strlen(forms[i].after[k])))
                return true;
    }
    return false;
}

bool halo_text_carries_error(const char *s)
{
    if (!s)
        return false;
    s = skip_ws(s);
    if (*s == '{')
        return json_object_says_error(s);
    if (*s == '[')
        return false;
    if (starts_error_word(s))
        return true;
    if (strstr(s, "Traceback (most recent call last)"))
        return true;
    return has_error_class(s);
}

bool halo_text_says_invalid_input(const char *s)
{
    static const char *const phrases[] = {
        "validation error",
        "validationerror",
        "invalid argument",
        "invalid input",
        "invalid parameter",
        "invalid params",
        "invalid value for",
        "missing required",
        "required property",
        "required parameter",
        "required argument",
        "required positional argument",
        "required field",
        "field required",
        "is required",
        "is not of type",
        "unexpected keyword argument",
        "unexpected argument",
        "unexpected parameter",
        "unknown argument",
        "unknown parameter",
        "additional properties",
        "additionalproperties",
        "must be of type",
        "expected type",
        "wrong type",
        "does not match schema",
        "schema validation",
        "failed to parse arguments",
        "could not parse arguments",
        "malformed arguments",
        "invalid json in arguments",
        "arguments are not valid",
        NULL,
    };
    return s && has_any_ci(s, phrases);
}

/* "tool X not found", "function 'X' does not exist", ... */
static bool says_named_missing(const char *s)
{
    static const char *const heads[] = {"tool", "function", NULL};
    static const char *const tails[] = {
        "not found",
        "does not exist",
        "doesn't exist",
        "is not available",
        "not available",
        "is not registered",
        "not registered",
        "is unknown",
        "is not defined",
        "is not a valid tool",
        NULL,
    };
    for (size_t h = 0; heads[h]; h++) {
        size_t hl = strlen(heads[h]);
        for (const char *p = strcasestr(s, heads[h]); p;
             p = strcasestr(p + hl, heads[h])) {
            const char *q = skip_ws(p + hl);
            if (*q == ':')
                q = skip_ws(q + 1);
            char quote = (*q == '\'' || *q == '"' || *q == '`') ? *q++ : 0;
            const char *name = q;
            while (*q && (isalnum((unsigned char)*q) || *q == '_' ||
                          *q == '-' || *q == '.'))
                q++;
            if (q == name)
                continue;
            if (quote && *q == quote)
                q++;
            q = skip_ws(q);
            for (size_t t = 0; tails[t]; t++)
                if (!strncasecmp(q, tails[t], strlen(tails[t])))
                    return true;
        }
    }
    return false;
}

bool halo_text_says_unknown_tool(const char *s)
{
    static const char *const phrases[] = {
        "unknown tool",        "tool not found",     "no such tool",
        "not a valid tool",    "invalid tool",       "unsupported tool",
        "unknown function",    "no tool named",      "tool_not_found",
        "unknown_tool",        "not found in tools", "no tool with name",
        "tool does not exist", "function not found", NULL,
    };
    return s && (has_any_ci(s, phrases) || says_named_missing(s));
}

bool halo_text_says_context_limit(const char *s)
{
    static const char *const phrases[] = {
        "context length",
        "context_length",
        "maximum context",
        "context window",
        "context limit",
        "too many tokens",
        "token limit",
        "max_tokens",
        "maximum tokens",
        "prompt is too long",
        "truncat",
        "tokens exceeds",
        "exceeds the maximum",
        NULL,
    };
    return s && has_any_ci(s, phrases);
}

bool halo_text_quoted_name(const char *s, char *out, size_t cap)
{
    if (!s || cap == 0)
        return false;
    for (const char *p = s; *p; p++) {
        char q = *p;
        if (q != '\'' && q != '"' && q != '`')
            continue;
        const char *start = p + 1, *e = start;
        while (*e && (isalnum((unsigned char)*e) || *e == '_' || *e == '-' ||
                      *e == '.'))
            e++;
        if (*e == q && e > start) {
            size_t n = (size_t)(e - start);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, start, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* ---- normalization ------------------------------------------------------- */

static bool is_tok(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '.' || c >= 0x80;
}

/* The token [p, e): its normalized form. */
static void put_token(halo_buf *b, const char *p, const char *e)
{
    bool digit = false, all_num = true;
    for (const char *q = p; q < e; q++) {
        if (isdigit((unsigned char)*q))
            digit = true;
        else if (*q != '.' && *q != ',' && *q != '-')
            all_num = false;
    }
    if (!digit) {
        halo_buf_append(b, p, (size_t)(e - p));
        return;
    }
    /* UUID 8-4-4-4-12 */
    if (e - p == 36 && p[8] == '-' && p[13] == '-' && p[18] == '-' &&
        p[23] == '-') {
        halo_buf_puts(b, "<uuid>");
        return;
    }
    if (all_num) {
        halo_buf_puts(b, "<n>");
        return;
    }
    /* an id: 8+ hex digits, or a run of 3+ digits (ORD-106167, req_8f3a2
     * is hex); names with a digit or two stay (gpt-4o, v2, utf8, ERR_42) */
    size_t hex = 0, run = 0, max_run = 0;
    for (const char *q = p; q < e; q++) {
        hex += isxdigit((unsigned char)*q) != 0;
        run = isdigit((unsigned char)*q) ? run + 1 : 0;
        max_run = run > max_run ? run : max_run;
    }
    if ((hex == (size_t)(e - p) && hex >= 8) || max_run >= 3)
        halo_buf_puts(b, "<id>");
    else
        halo_buf_append(b, p, (size_t)(e - p));
}

void halo_text_normalize_message(const char *s, halo_buf *b)
{
    enum { CAP = 160 };
    size_t start = b->len;
    bool space = false;
    for (const char *p = s ? s : ""; *p && b->len - start < CAP;) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            space = b->len > start;
            p++;
            continue;
        }
        if (space)
            halo_buf_putc(b, ' ');
        space = false;
        if (c == '\'' || c == '"' || c == '`') {
            const char *e = strchr(p + 1, (char)c);
            if (e && e - p <= 200) {
                halo_buf_puts(b, "<s>");
                p = e + 1;
                continue;
            }
        }
        if (is_tok(c)) {
            const char *e = p;
            while (*e && is_tok((unsigned char)*e))
                e++;
            /* a trailing '.' ends a sentence, not the token */
            const char *te = e;
            while (te > p && te[-1] == '.')
                te--;
            if (te == p) /* dots only: keep them, and move on */
                te = e;
            put_token(b, p, te);
            p = te;
            continue;
        }
        halo_buf_putc(b, (char)c);
        p++;
    }
    /* cut at a UTF-8 character boundary */
    size_t len = b->len - start;
    if (len > CAP)
        len = CAP;
    while (len > 0 && ((unsigned char)b->data[start + len] & 0xC0) == 0x80 &&
           start + len < b->len)
        len--;
    b->len = start + len;
    if (b->data && !b->oom)
        b->data[b->len] = '\0';
}

static void collapse_ws(const char *s, halo_buf *b)
{
    bool space = false;
    size_t start = b->len;
    for (const char *p = skip_ws(s); *p; p++) {
        if (isspace((unsigned char)*p)) {
            space = true;
            continue;
        }
        if (space && b->len > start)
            halo_buf_putc(b, ' ');
        space = false;
        halo_buf_putc(b, *p);
    }
}

void halo_text_normalize_args(const char *s, halo_buf *b)
{
    if (!s)
        return;
    const char *t = skip_ws(s);
    if (*t == '{' || *t == '[') {
        json_t *j = json_loads(t, JSON_DECODE_ANY, NULL);
        if (j) {
            char *c =
                json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            json_decref(j);
            if (c) {
                halo_buf_puts(b, c);
                free(c);
                return;
            }
        }
    }
    collapse_ws(t, b);
}

/* ---- similarity ---------------------------------------------------------- */

uint64_t halo_text_hash(const void *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ull;
    }
    return h;
}

enum { MAX_WORDS = 256 };

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted distinct hashes of s's lower-cased words; returns the count. */
static size_t word_set(const char *s, uint64_t *out)
{
    size_t n = 0;
    char w[64];
    for (const char *p = s ? s : ""; *p && n < MAX_WORDS;) {
        if (!isalnum((unsigned char)*p)) {
            p++;
            continue;
        }
        size_t l = 0;
        while (*p && isalnum((unsigned char)*p)) {
            if (l < sizeof w)
                w[l++] = (char)tolower((unsigned char)*p);
            p++;
        }
        out[n++] = halo_text_hash(w, l);
    }
    qsort(out, n, sizeof *out, cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || out[m - 1] != out[i])
            out[m++] = out[i];
    return m;
}

double halo_text_similarity(const char *a, const char *b)
{
    uint64_t wa[MAX_WORDS], wb[MAX_WORDS];
    size_t na = word_set(a, wa), nb = word_set(b, wb);
    if (na == 0 && nb == 0)
        return 1.0;
    size_t i = 0, j = 0, common = 0;
    while (i < na && j < nb) {
        if (wa[i] == wb[j]) {
            common++;
            i++;
            j++;
        } else if (wa[i] < wb[j]) {
            i++;
        } else {
            j++;
        }
    }
    return (double)common / (double)(na + nb - common);
}

void halo_text_one_line(const char *s, char *out, size_t cap)
{
    if (cap == 0)
        return;
    size_t n = 0, max = cap > 4 ? cap - 4 : 0;
    const char *p = s ? s : "";
    for (; *p && n < max; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\x1f') {
            out[n++] = (char)c; /* a field separator of the caller's */
            continue;
        }
        if (c < 0x20 || c == 0x7f || c == '`' || c == '"')
            c = c == '"' ? '\'' : ' ';
        if (c == ' ' && n && out[n - 1] == ' ')
            continue;
        out[n++] = (char)c;
    }
    if (*p) {
        /* cut inside a character: drop its first bytes */
        if (((unsigned char)*p & 0xC0) == 0x80) {
            while (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0x80)
                n--;
            if (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0xC0)
                n--;
        }
        if (n + 3 < cap) {
            memcpy(out + n, "...", 3);
            n += 3;
        }
    }
    out[n] = '\0';
}

char *halo_text_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}
