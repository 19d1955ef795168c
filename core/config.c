/*
 * config.c -- the config error list and the scalar syntaxes of halo.yaml.
 *
 * Errors are collected, never returned one at a time: `halo validate` must
 * list every problem of a file in one run. Each message is a malloc'd
 * "file:line:col: text" line, scrubbed of every registered secret value
 * (core/secret.h) as it is added: whatever path quoted one -- a value, a
 * library's message, a component's create() error -- `halo validate`
 * prints "***".
 *
 * Durations follow Go's time.ParseDuration (the Collector's users know it):
 * a sequence of <decimal number><unit> ("1h30m", "1.5s", "200ms"), units
 * ns, us/µs, ms, s, m, h, plus d (24h); "0" alone needs no unit. Sizes are a
 * decimal number and an optional unit, binary (KiB..TiB) or SI (KB..TB).
 * Both parse exactly with 128-bit intermediates: no floating point, so
 * "1.1s" is exactly 1100000000ns and overflow is detected, not wrapped.
 *
 * The formatters print a value in the largest unit that divides it exactly,
 * for range messages ("must be between 1ms and 1h").
 */
#include "config_internal.h"
#include "secret.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- error list ------------------------------------------------------- */

bool halo_errlist_vaddloc(halo_errlist *l, const char *file, int line, int col,
                          const char *fmt, va_list ap)
{
    if (!l)
        return false;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        return false;
    /* never longer after: a secret (HALO_SECRET_MIN_LEN bytes at least)
     * becomes HALO_SECRET_SHOWN, shorter */
    halo_secret_scrub(msg, strlen(msg) + 1);
    char *full = msg;
    if (file) {
        if (asprintf(&full, "%s:%d:%d: %s", file, line, col, msg) < 0)
            full = NULL;
        free(msg);
        if (!full)
            return false;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **m = realloc(l->msgs, cap * sizeof *m);
        if (!m) {
            free(full);
            return false;
        }
        l->msgs = m;
        l->cap = cap;
    }
    l->msgs[l->n++] = full;
    return true;
}

bool halo_errlist_addloc(halo_errlist *l, const char *file, int line, int col,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = halo_errlist_vaddloc(l, file, line, col, fmt, ap);
    va_end(ap);
    return ok;
}

void halo_errlist_add(halo_errlist *l, const halo_node *at, const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (at)
        halo_errlist_vaddloc(l, at->file ? at->file : "<config>", at->line,
                             at->col, fmt, ap);
    else
        halo_errlist_vaddloc(l, NULL, 0, 0, fmt, ap);
    va_end(ap);
}

void halo_errlist_free(halo_errlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->msgs[i]);
    free(l->msgs);
    l->msgs = NULL;
    l->n = l->cap = 0;
}

/* ---- decimal numbers -------------------------------------------------- */

typedef unsigned __int128 u128;

/* A non-negative decimal "12", "1.5", ".5", "3." at *sp: integer part and
 * fraction (frac / scale, at most 18 significant fraction digits; further
 * digits are dropped, as Go does). Advances *sp. */
static bool parse_decimal(const char **sp, uint64_t *ip, uint64_t *frac,
                          uint64_t *scale)
{
    const char *s = *sp;
    uint64_t v = 0, f = 0, sc = 1;
    bool digits = false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        digits = true;
    }
    if (*s == '.') {
        s++;
        for (; *s >= '0' && *s <= '9'; s++) {
            digits = true;
            if (sc < 1000000000000000000ULL) {
                f = f * 10 + (uint64_t)(*s - '0');
                sc *= 10;
            }
        }
    }
    if (!digits)
        return false;
    *sp = s;
    *ip = v;
    *frac = f;
    *scale = sc;
    return true;
}

/* v.frac * unit, truncated; false above INT64_MAX. */
static bool scale_value(uint64_t v, uint64_t frac, uint64_t scale,
                        uint64_t unit, u128 *out)
{
    u128 r = (u128)v * unit + (u128)frac * unit / scale;
    if (r > (u128)INT64_MAX)
        return false;
    *out = r;
    return true;
}

/* ---- durations ------------------------------------------------------- */

static const struct {
    const char *name;
    uint64_t ns;
} duration_units[] = {
    {"ns", 1ULL},
    {"us", 1000ULL},
    {"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000ULL}, /* U+03BC greek mu */
    {"ms", 1000000ULL},
    {"s", 1000000000ULL},
    {"m", 60ULL * 1000000000ULL},
    {"h", 3600ULL * 1000000000ULL},
    {"d", 86400ULL * 1000000000ULL},
};

static bool duration_unit(const char *u, size_t n, uint64_t *ns)
{
    for (size_t i = 0; i < sizeof duration_units / sizeof *duration_units;
         i++) {
        const char *name = duration_units[i].name;
        if (strlen(name) == n && memcmp(name, u, n) == 0) {
            *ns = duration_units[i].ns;
            return true;
        }
    }
    return false;
}

bool halo_parse_duration(const char *s, int64_t *ns)
{
    if (!s || !ns)
        return false;
    if (*s == '+')
        s++;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return true;
    }
    if (!*s)
        return false;
    u128 total = 0;
    while (*s) {
        uint64_t v, frac, scale, unit;
        if (!parse_decimal(&s, &v, &frac, &scale))
            return false;
        size_t n = 0;
        while (s[n] && s[n] != '.' && !(s[n] >= '0' && s[n] <= '9'))
            n++;
        if (!duration_unit(s, n, &unit))
            return false;
        s += n;
        u128 part;
        if (!scale_value(v, frac, scale, unit, &part))
            return false;
        total += part;
        if (total > (u128)INT64_MAX)
            return false;
    }
    *ns = (int64_t)total;
    return true;
}

void halo_format_duration(int64_t ns, char *out, size_t cap)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        {"h", 3600LL * 1000000000LL},
        {"m", 60LL * 1000000000LL},
        {"s", 1000000000LL},
        {"ms", 1000000LL},
        {"us", 1000LL},
    };
    if (ns == 0) {
        snprintf(out, cap, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (ns % units[i].ns == 0) {
            snprintf(out, cap, "%" PRId64 "%s", ns / units[i].ns,
                     units[i].name);
            return;
        }
    }
    snprintf(out, cap, "%" PRId64 "ns", ns);
}

/* ---- sizes ------------------------------------------------------------ */

static const struct {
    const char *name;
    uint64_t bytes;
} size_units[] = {
    {"TiB", 1ULL << 40}, {"GiB", 1ULL << 30},      {"MiB", 1ULL << 20},
    {"KiB", 1ULL << 10}, {"TB", 1000000000000ULL}, {"GB", 1000000000ULL},
    {"MB", 1000000ULL},  {"KB", 1000ULL},          {"B", 1ULL},
};

bool halo_parse_size(const char *s, int64_t *bytes)
{
    if (!s || !bytes)
        return false;
    uint64_t v, frac, scale, unit = 1;
    if (!parse_decimal(&s, &v, &frac, &scale))
        return false;
    const char *num_end = s;
    while (*s == ' ')
        s++;
    if (s != num_end && !*s)
        return false; /* trailing blanks without a unit */
    if (*s) {
        bool found = false;
        for (size_t i = 0; i < sizeof size_units / sizeof *size_units; i++) {
            if (strcmp(s, size_units[i].name) == 0) {
                unit = size_units[i].bytes;
                found = true;
                break;
            }
        }
        if (!found)
            return false;
    }
    u128 r;
    if (!scale_value(v, frac, scale, unit, &r))
        return false;
    *bytes = (int64_t)r;
    return true;
}

void halo_format_size(int64_t bytes, char *out, size_t cap)
{
    if (bytes > 0) {
        for (size_t i = 0; i < sizeof size_units / sizeof *size_units; i++) {
            int64_t u = (int64_t)size_units[i].bytes;
            if (bytes % u == 0) {
                snprintf(out, cap, "%" PRId64 "%s", bytes / u,
                         size_units[i].name);
                return;
            }
        }
    }
    snprintf(out, cap, "%" PRId64 "B", bytes);
}

/* ---- booleans --------------------------------------------------------- */

bool halo_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (!s || !out)
        return false;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}
