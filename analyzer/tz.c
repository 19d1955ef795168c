/*
 * tz.c -- time zones for the scheduler: a TZif reader (RFC 8536) and the
 * conversions between instants and local wall-clock times (schedule.h).
 *
 * Design
 * - A zone is the TZif file's transition list (the 64-bit data block of a
 *   v2+ file, the 32-bit one of a v1 file), each transition naming a local
 *   time type of which we keep only the UTC offset, plus the footer's POSIX
 *   TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3") that governs every instant at or
 *   after the last transition. Instants before the first transition use
 *   type 0, as RFC 8536 says.
 * - The file is untrusted: every count is checked against the bytes that
 *   remain before anything is read, every index against its table, offsets
 *   against +-26h, transition times against +-2^60 and their order; files
 *   over 1 MiB are refused. Files with leap-second records ("right/" zones)
 *   are refused as not supported: their times are not POSIX times.
 * - No libc time functions (localtime_r and mktime read the process-global
 *   TZ): civil dates come from day-number arithmetic (days_from_civil).
 * - The footer rule is evaluated per year: the DST start and end instants
 *   of the neighbouring years are listed and the latest one <= t decides.
 *   This handles southern-hemisphere rules (start after end) and v3
 *   "permanent DST" rules (start and end meeting at the year boundary).
 * - Local -> instant walks the intervals of constant offset around the wall
 *   time: the first interval that contains it wins (first occurrence of a
 *   repeated time); if the wall time falls between two intervals it was
 *   skipped, and the start of the later interval (the jump) is returned.
 */
#include "tz_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_UTOFF (26 * 3600)
#define MAX_TRANS_TIME ((int64_t)1 << 60)
#define FOOTER_MAX 256
#define NAME_MAX_LEN 255

/* One date of a POSIX TZ rule: Jn, n or Mm.w.d, and its local time. */
typedef struct tz_rule_date {
    char kind; /* 'J' (1..365, no Feb 29), 'N' (0..365), 'M' */
    int day;   /* J and N */
    int mon, week, wday;
    int32_t time; /* seconds after local midnight, -167h..167h */
} tz_rule_date;

typedef struct tz_posix {
    bool present;
    bool has_dst;
    int32_t std_off; /* seconds east of UTC */
    int32_t dst_off;
    tz_rule_date start, end;
} tz_posix;

struct halo_tz {
    char *name;
    size_t ntrans;
    int64_t *trans;   /* strictly ascending */
    uint8_t *ttype;   /* type index of each transition */
    size_t ntypes;    /* >= 1 */
    int32_t *offsets; /* utoff of each type */
    tz_posix footer;
};

/* ---- civil dates --------------------------------------------------------
 * Howard Hinnant's algorithms: eras of 400 years, years starting in March
 * so the leap day is the last day of the year. */

int64_t halo_days_from_civil(int64_t year, int mon, int64_t mday)
{
    int64_t y = year - (mon <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = mon > 2 ? mon - 3 : mon + 9;
    int64_t doy = (153 * mp + 2) / 5 + mday - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void halo_civil_from_days(int64_t days, int64_t *year, int *mon, int *mday,
                          int *wday)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *mday = (int)(doy - (153 * mp + 2) / 5 + 1);
    *mon = m;
    *year = yoe + era * 400 + (m <= 2);
    if (wday) {
        int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
        *wday = (int)(w < 0 ? w + 7 : w);
    }
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int halo_days_in_month(int64_t year, int mon)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon < 1 || mon > 12)
        return 0;
    return dim[mon - 1] + (mon == 2 && is_leap(year));
}

static int64_t clamp_t(int64_t t)
{
    if (t > HALO_TZ_T_LIMIT)
        return HALO_TZ_T_LIMIT;
    if (t < -HALO_TZ_T_LIMIT)
        return -HALO_TZ_T_LIMIT;
    return t;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- the footer rule ---------------------------------------------------- */

/* Day number of a rule date in `year`. */
static int64_t rule_day(const tz_rule_date *d, int64_t year)
{
    int64_t jan1 = halo_days_from_civil(year, 1, 1);
    if (d->kind == 'J')
        return jan1 + d->day - 1 + (is_leap(year) && d->day >= 60);
    if (d->kind == 'N')
        return jan1 + d->day;
    int64_t first = halo_days_from_civil(year, d->mon, 1);
    int64_t y;
    int m, md, wd1;
    halo_civil_from_days(first, &y, &m, &md, &wd1);
    int64_t day = first + (d->wday - wd1 + 7) % 7 + 7 * (d->week - 1);
    int64_t last = first + halo_days_in_month(year, d->mon) - 1;
    while (day > last)
        day -= 7;
    return day;
}

typedef struct rule_tr {
    int64_t at;
    bool dst; /* state from this instant on */
} rule_tr;

/* The rule's transitions in years y0..y0+n-1, sorted; ties put the end
 * (DST off) before the start so permanent-DST rules stay in DST. */
static size_t rule_transitions(const tz_posix *p, int64_t y0, int n,
                               rule_tr *out)
{
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        int64_t y = y0 + i;
        out[k].at = rule_day(&p->start, y) * 86400 + p->start.time - p->std_off;
        out[k++].dst = true;
        out[k].at = rule_day(&p->end, y) * 86400 + p->end.time - p->dst_off;
        out[k++].dst = false;
    }
    for (size_t i = 1; i < k; i++) {
        rule_tr v = out[i];
        size_t j = i;
        while (j > 0 && (out[j - 1].at > v.at ||
                         (out[j - 1].at == v.at && out[j - 1].dst && !v.dst))) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = v;
    }
    return k;
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    int m, d;
    halo_civil_from_days(floor_div(t, 86400), &y, &m, &d, NULL);
    return y;
}

static int32_t footer_offset(const tz_posix *p, int64_t t)
{
    if (!p->has_dst)
        return p->std_off;
    rule_tr tr[8];
    size_t n = rule_transitions(p, year_of(t) - 2, 4, tr);
    bool dst = !tr[0].dst;
    for (size_t i = 0; i < n && tr[i].at <= t; i++)
        dst = tr[i].dst;
    return dst ? p->dst_off : p->std_off;
}

static int64_t footer_next(const tz_posix *p, int64_t t)
{
    if (!p->has_dst)
        return INT64_MAX;
    rule_tr tr[8];
    size_t n = rule_transitions(p, year_of(t) - 1, 4, tr);
    for (size_t i = 0; i < n; i++)
        if (tr[i].at > t)
            return tr[i].at;
    return INT64_MAX;
}

static int64_t footer_prev(const tz_posix *p, int64_t t)
{
    if (!p->has_dst)
        return INT64_MIN;
    rule_tr tr[8];
    size_t n = rule_transitions(p, year_of(t) - 2, 4, tr);
    int64_t best = INT64_MIN;
    for (size_t i = 0; i < n && tr[i].at <= t; i++)
        best = tr[i].at;
    return best;
}

/* ---- POSIX TZ strings --------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* An abbreviation: 3+ letters, or <...> of letters, digits, + and -. */
static bool parse_abbr(const char **sp)
{
    const char *s = *sp;
    size_t n = 0;
    if (*s == '<') {
        s++;
        while (is_alpha(s[n]) || is_digit(s[n]) || s[n] == '+' || s[n] == '-')
            n++;
        if (s[n] != '>' || n < 3)
            return false;
        *sp = s + n + 1;
        return true;
    }
    while (is_alpha(s[n]))
        n++;
    if (n < 3)
        return false;
    *sp = s + n;
    return true;
}

/* Up to `maxd` digits with a value <= maxv. */
static bool parse_num(const char **sp, int maxd, int maxv, int *out)
{
    const char *s = *sp;
    int v = 0, n = 0;
    while (is_digit(s[n]) && n < maxd)
        v = v * 10 + (s[n++] - '0');
    if (n == 0 || is_digit(s[n]) || v > maxv)
        return false;
    *sp = s + n;
    *out = v;
    return true;
}

/* [+-]h[:mm[:ss]] with hours <= maxh; seconds into *out. */
static bool parse_hms(const char **sp, int maxh, int32_t *out)
{
    const char *s = *sp;
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!parse_num(&s, 3, maxh, &h))
        return false;
    if (*s == ':') {
        s++;
        if (!parse_num(&s, 2, 59, &m))
            return false;
        if (*s == ':') {
            s++;
            if (!parse_num(&s, 2, 59, &sec))
                return false;
        }
    }
    *sp = s;
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
}

static bool parse_rule_date(const char **sp, tz_rule_date *d)
{
    const char *s = *sp;
    if (*s == 'M') {
        s++;
        d->kind = 'M';
        if (!parse_num(&s, 2, 12, &d->mon) || d->mon < 1 || *s++ != '.' ||
            !parse_num(&s, 1, 5, &d->week) || d->week < 1 || *s++ != '.' ||
            !parse_num(&s, 1, 6, &d->wday))
            return false;
    } else if (*s == 'J') {
        s++;
        d->kind = 'J';
        if (!parse_num(&s, 3, 365, &d->day) || d->day < 1)
            return false;
    } else {
        d->kind = 'N';
        if (!parse_num(&s, 3, 365, &d->day))
            return false;
    }
    d->time = 2 * 3600;
    if (*s == '/') {
        s++;
        if (!parse_hms(&s, 167, &d->time))
            return false;
    }
    *sp = s;
    return true;
}

/* Parse a POSIX TZ string (with the RFC 8536 v3 extension of rule times
 * from -167h to 167h). An empty string means "no rule". */
static bool parse_posix_tz(const char *s, tz_posix *p)
{
    int32_t off;
    memset(p, 0, sizeof *p);
    if (*s == '\0')
        return true;
    if (!parse_abbr(&s) || !parse_hms(&s, 24, &off))
        return false;
    p->present = true;
    p->std_off = -off; /* POSIX offsets count hours west */
    p->dst_off = p->std_off;
    if (*s == '\0')
        return true;
    if (!parse_abbr(&s))
        return false;
    p->has_dst = true;
    p->dst_off = p->std_off + 3600;
    if (*s != ',' && *s != '\0') {
        if (!parse_hms(&s, 24, &off))
            return false;
        p->dst_off = -off;
    }
    if (*s == '\0') { /* POSIX default: the US rules */
        const char *def = "M3.2.0,M11.1.0";
        return parse_rule_date(&def, &p->start) && *def++ == ',' &&
               parse_rule_date(&def, &p->end);
    }
    if (*s++ != ',' || !parse_rule_date(&s, &p->start) || *s++ != ',' ||
        !parse_rule_date(&s, &p->end))
        return false;
    return *s == '\0';
}

/* ---- TZif parsing -------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    size_t len, pos;
} reader;

typedef struct tzif_header {
    int version; /* 1, 2, 3, ... */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static halo_status read_header(reader *r, const char *name, tzif_header *h,
                               halo_err *err)
{
    if (r->len - r->pos < 44)
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": truncated header "
                         "at byte %zu",
                         name, r->pos);
    const uint8_t *p = r->p + r->pos;
    if (memcmp(p, "TZif", 4) != 0)
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": no TZif magic",
                         name);
    if (p[4] == 0)
        h->version = 1;
    else if (p[4] >= '2' && p[4] <= '9')
        h->version = p[4] - '0';
    else
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": unknown TZif "
                         "version byte 0x%02x",
                         name, p[4]);
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    r->pos += 44;
    if (h->typecnt == 0 || h->typecnt > 256)
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": %u local time "
                         "types (expected 1 to 256)",
                         name, h->typecnt);
    if ((h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": indicator counts "
                         "%u and %u do not match %u types",
                         name, h->isutcnt, h->isstdcnt, h->typecnt);
    return HALO_OK;
}

/* Bytes of the data block following header h (tsize: 4 or 8). All counts
 * are < 2^32, so the sum cannot overflow 64 bits. */
static uint64_t block_size(const tzif_header *h, unsigned tsize)
{
    return (uint64_t)h->timecnt * tsize + h->timecnt +
           (uint64_t)h->typecnt * 6 + h->charcnt +
           (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static halo_status check_block(const reader *r, const char *name,
                               const tzif_header *h, unsigned tsize,
                               halo_err *err)
{
    uint64_t need = block_size(h, tsize);
    if (need > r->len - r->pos)
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": data block needs "
                         "%llu bytes, %zu remain (%u transitions, %u types)",
                         name, (unsigned long long)need, r->len - r->pos,
                         h->timecnt, h->typecnt);
    return HALO_OK;
}

static halo_status read_transitions(reader *r, const char *name,
                                    const tzif_header *h, unsigned tsize,
                                    halo_tz *tz, halo_err *err)
{
    const uint8_t *times = r->p + r->pos;
    const uint8_t *idx = times + (size_t)h->timecnt * tsize;
    tz->ntrans = h->timecnt;
    if (h->timecnt) {
        tz->trans = malloc(sizeof *tz->trans * h->timecnt);
        tz->ttype = malloc(h->timecnt);
        if (!tz->trans || !tz->ttype)
            return halo_fail(err, HALO_ENOMEM,
                             "out of memory reading time zone \"%s\"", name);
    }
    for (size_t i = 0; i < h->timecnt; i++) {
        int64_t t = tsize == 8 ? be64(times + 8 * i)
                               : (int64_t)(int32_t)be32(times + 4 * i);
        if (t < -MAX_TRANS_TIME || t > MAX_TRANS_TIME)
            return halo_fail(err, HALO_EINVAL,
                             "invalid time zone file for \"%s\": transition "
                             "%zu time %lld out of range",
                             name, i, (long long)t);
        if (i > 0 && t <= tz->trans[i - 1])
            return halo_fail(err, HALO_EINVAL,
                             "invalid time zone file for \"%s\": transition "
                             "times not ascending at entry %zu",
                             name, i);
        if (idx[i] >= h->typecnt)
            return halo_fail(err, HALO_EINVAL,
                             "invalid time zone file for \"%s\": transition "
                             "%zu names type %u of %u",
                             name, i, idx[i], h->typecnt);
        tz->trans[i] = t;
        tz->ttype[i] = idx[i];
    }
    r->pos += (size_t)h->timecnt * (tsize + 1);
    return HALO_OK;
}

static halo_status read_types(reader *r, const char *name, const tzif_header *h,
                              halo_tz *tz, halo_err *err)
{
    const uint8_t *p = r->p + r->pos;
    tz->ntypes = h->typecnt;
    tz->offsets = malloc(sizeof *tz->offsets * h->typecnt);
    if (!tz->offsets)
        return halo_fail(err, HALO_ENOMEM,
                         "out of memory reading time zone \"%s\"", name);
    for (size_t i = 0; i < h->typecnt; i++, p += 6) {
        int32_t off = (int32_t)be32(p);
        if (off < -MAX_UTOFF || off > MAX_UTOFF)
            return halo_fail(err, HALO_EINVAL,
                             "invalid time zone file for \"%s\": type %zu "
                             "offset %ld is beyond 26 hours",
                             name, i, (long)off);
        if (p[4] > 1)
            return halo_fail(err, HALO_EINVAL,
                             "invalid time zone file for \"%s\": type %zu "
                             "isdst %u is not 0 or 1",
                             name, i, p[4]);
        if (p[5] >= h->charcnt)
            return halo_fail(err, HALO_EINVAL,
                             "invalid time zone file for \"%s\": type %zu "
                             "abbreviation index %u past %u bytes",
                             name, i, p[5], h->charcnt);
        tz->offsets[i] = off;
    }
    r->pos += (size_t)h->typecnt * 6;
    return HALO_OK;
}

/* The rest of the block: abbreviations, leap seconds, indicators. */
static halo_status skip_block_tail(reader *r, const char *name,
                                   const tzif_header *h, unsigned tsize,
                                   halo_err *err)
{
    if (h->leapcnt)
        return halo_fail(err, HALO_EUNSUPPORTED,
                         "time zone \"%s\" has leap second records: not "
                         "supported (use a zone outside \"right/\")",
                         name);
    r->pos += (size_t)h->charcnt + (size_t)h->leapcnt * (tsize + 4) +
              h->isstdcnt + h->isutcnt;
    return HALO_OK;
}

/* The footer: "\n" TZ-string "\n" after the v2+ data block. */
static halo_status read_footer(reader *r, const char *name, halo_tz *tz,
                               halo_err *err)
{
    size_t left = r->len - r->pos;
    const uint8_t *p = r->p + r->pos;
    if (left < 2 || p[0] != '\n')
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": missing footer",
                         name);
    const uint8_t *nl = memchr(p + 1, '\n', left - 1);
    size_t n = nl ? (size_t)(nl - p - 1) : 0;
    if (!nl || n >= FOOTER_MAX)
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": footer %s", name,
                         nl ? "longer than 255 bytes" : "not terminated");
    char buf[FOOTER_MAX];
    memcpy(buf, p + 1, n);
    buf[n] = '\0';
    if (strlen(buf) != n || !parse_posix_tz(buf, &tz->footer))
        return halo_fail(err, HALO_EINVAL,
                         "invalid time zone file for \"%s\": invalid TZ "
                         "string \"%.64s\" in footer",
                         name, buf);
    r->pos += n + 2;
    return HALO_OK;
}

static halo_status read_block(reader *r, const char *name, const tzif_header *h,
                              unsigned tsize, halo_tz *tz, halo_err *err)
{
    halo_status st = check_block(r, name, h, tsize, err);
    if (st == HALO_OK)
        st = read_transitions(r, name, h, tsize, tz, err);
    if (st == HALO_OK)
        st = read_types(r, name, h, tz, err);
    if (st == HALO_OK)
        st = skip_block_tail(r, name, h, tsize, err);
    return st;
}

static halo_tz *tz_alloc(const char *name)
{
    halo_tz *tz = calloc(1, sizeof *tz);
    if (!tz)
        return NULL;
    tz->name = strdup(name);
    if (!tz->name) {
        free(tz);
        return NULL;
    }
    return tz;
}

halo_status halo_tz_parse(const char *name, const uint8_t *data, size_t len,
                          halo_tz **out, halo_err *err)
{
    reader r = {.p = data, .len = data ? len : 0, .pos = 0};
    tzif_header h;
    halo_status st;
    *out = NULL;
    halo_tz *tz = tz_alloc(name);
    if (!tz)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    st = read_header(&r, name, &h, err);
    if (st != HALO_OK)
        goto cleanup;
    if (h.version == 1) {
        st = read_block(&r, name, &h, 4, tz, err);
        goto cleanup;
    }
    st = check_block(&r, name, &h, 4, err);
    if (st != HALO_OK)
        goto cleanup;
    r.pos += (size_t)block_size(&h, 4);
    st = read_header(&r, name, &h, err);
    if (st == HALO_OK)
        st = read_block(&r, name, &h, 8, tz, err);
    if (st == HALO_OK)
        st = read_footer(&r, name, tz, err);
cleanup:
    if (st != HALO_OK) {
        halo_tz_free(tz);
        return st;
    }
    *out = tz;
    return HALO_OK;
}

/* ---- loading ------------------------------------------------------------ */

static bool is_utc_name(const char *name)
{
    return strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0 ||
           strcmp(name, "Z") == 0;
}

static halo_status check_name(const char *name, halo_err *err)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN || name[0] == '/' || strstr(name, ".."))
        return halo_fail(err, HALO_EINVAL, "invalid time zone name \"%.*s\"",
                         (int)(n > 64 ? 64 : n), name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!is_alpha(c) && !is_digit(c) && !strchr("/_+-.", c))
            return halo_fail(err, HALO_EINVAL,
                             "invalid time zone name \"%.64s\"", name);
    }
    return HALO_OK;
}

static halo_status read_file(const char *path, const char *name, uint8_t **data,
                             size_t *len, halo_err *err)
{
    halo_status st = HALO_OK;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *data = NULL;
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return halo_fail(err, HALO_EINVAL,
                             "unknown time zone \"%s\" (no file %s; is the "
                             "tzdata package installed?)",
                             name, path);
        return halo_fail(err, HALO_EIO, "could not open \"%s\": %s", path,
                         strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = halo_fail(err, HALO_EINVAL,
                       "unknown time zone \"%s\" (%s is not a time zone file)",
                       name, path);
        goto cleanup;
    }
    if ((uint64_t)sb.st_size > HALO_TZ_FILE_MAX) {
        st = halo_fail(err, HALO_EINVAL,
                       "time zone file %s is too large (%lld bytes, limit "
                       "1 MiB)",
                       path, (long long)sb.st_size);
        goto cleanup;
    }
    *data = malloc(HALO_TZ_FILE_MAX + 1);
    if (!*data) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    *len = 0;
    for (;;) { /* read to EOF: the size may change under us */
        ssize_t k = read(fd, *data + *len, HALO_TZ_FILE_MAX + 1 - *len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            st = halo_fail(err, HALO_EIO, "could not read \"%s\": %s", path,
                           strerror(errno));
            goto cleanup;
        }
        if (k == 0)
            break;
        *len += (size_t)k;
        if (*len > HALO_TZ_FILE_MAX) {
            st =
                halo_fail(err, HALO_EINVAL,
                          "time zone file %s is too large (limit 1 MiB)", path);
            goto cleanup;
        }
    }
cleanup:
    close(fd);
    if (st != HALO_OK) {
        free(*data);
        *data = NULL;
    }
    return st;
}

halo_status halo_tz_load(const char *name, halo_tz **out, halo_err *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char path[4096];
    halo_status st;
    *out = NULL;
    if (!name)
        return halo_fail(err, HALO_EINVAL, "invalid time zone name (null)");
    if (is_utc_name(name)) {
        halo_tz *tz = tz_alloc(name);
        if (!tz)
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        tz->ntypes = 1;
        tz->offsets = calloc(1, sizeof *tz->offsets);
        if (!tz->offsets) {
            halo_tz_free(tz);
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        }
        *out = tz;
        return HALO_OK;
    }
    st = check_name(name, err);
    if (st != HALO_OK)
        return st;
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return halo_fail(err, HALO_EINVAL, "time zone path too long");
    st = read_file(path, name, &data, &len, err);
    if (st == HALO_OK)
        st = halo_tz_parse(name, data, len, out, err);
    free(data);
    return st;
}

void halo_tz_free(halo_tz *tz)
{
    if (!tz)
        return;
    free(tz->name);
    free(tz->trans);
    free(tz->ttype);
    free(tz->offsets);
    free(tz);
}

const char *halo_tz_name(const halo_tz *tz)
{
    return tz->name;
}

const halo_tz *halo_tz_utc(void)
{
    static int32_t zero = 0;
    static const halo_tz utc = {.name = "UTC", .ntypes = 1, .offsets = &zero};
    return &utc;
}

/* ---- queries ------------------------------------------------------------ */

/* Index of the last transition <= t, or -1 when t precedes them all. */
static ptrdiff_t find_trans(const halo_tz *tz, int64_t t)
{
    size_t lo = 0, hi = tz->ntrans; /* answer in [lo, hi) + 1 */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

/* Whether the footer rule governs instant t. */
static bool uses_footer(const halo_tz *tz, int64_t t)
{
    return tz->footer.present &&
           (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1]);
}

int32_t halo_tz_offset(const halo_tz *tz, int64_t t)
{
    t = clamp_t(t);
    if (uses_footer(tz, t))
        return footer_offset(&tz->footer, t);
    ptrdiff_t i = find_trans(tz, t);
    return tz->offsets[i < 0 ? 0 : tz->ttype[i]];
}

int64_t halo_tz_next_transition(const halo_tz *tz, int64_t t)
{
    t = clamp_t(t);
    if (uses_footer(tz, t)) {
        int64_t n = footer_next(&tz->footer, t);
        return n > HALO_TZ_T_LIMIT ? INT64_MAX : n;
    }
    ptrdiff_t i = find_trans(tz, t);
    if ((size_t)(i + 1) < tz->ntrans)
        return tz->trans[i + 1];
    return INT64_MAX;
}

int64_t halo_tz_prev_transition(const halo_tz *tz, int64_t t)
{
    t = clamp_t(t);
    ptrdiff_t i = find_trans(tz, t);
    int64_t best = i < 0 ? INT64_MIN : tz->trans[i];
    if (uses_footer(tz, t)) {
        int64_t f = footer_prev(&tz->footer, t);
        if (f > best && f >= -HALO_TZ_T_LIMIT)
            best = f;
    }
    return best;
}

void halo_tz_to_civil(const halo_tz *tz, int64_t t, halo_civil *out)
{
    t = clamp_t(t);
    int64_t local = t + halo_tz_offset(tz, t);
    int64_t days = floor_div(local, 86400);
    int64_t sod = local - days * 86400;
    int64_t year;
    halo_civil_from_days(days, &year, &out->mon, &out->mday, &out->wday);
    out->year = (int)year;
    out->hour = (int)(sod / 3600);
    out->min = (int)(sod / 60 % 60);
    out->sec = (int)(sod % 60);
}

/* Local seconds (seconds since 1970-01-01 00:00 local) of a civil time;
 * out-of-range months are normalized, the rest added linearly. */
static int64_t civil_seconds(const halo_civil *c)
{
    int64_t mon0 = (int64_t)c->mon - 1;
    int64_t year = (int64_t)c->year + floor_div(mon0, 12);
    int mon = (int)(mon0 - floor_div(mon0, 12) * 12) + 1;
    if (year > 300000000)
        year = 300000000;
    if (year < -300000000)
        year = -300000000;
    int64_t days = halo_days_from_civil(year, mon, c->mday);
    return clamp_t(days * 86400 + (int64_t)c->hour * 3600 +
                   (int64_t)c->min * 60 + c->sec);
}

int64_t halo_tz_from_civil(const halo_tz *tz, const halo_civil *c)
{
    int64_t local = civil_seconds(c);
    /* Any instant showing `local` lies within +-26h of it; walk the
     * intervals of constant offset from 2 days before. */
    int64_t s = local - 2 * 86400;
    for (int i = 0; i < 256 && s <= local + 2 * 86400; i++) {
        int32_t o = halo_tz_offset(tz, s);
        int64_t e = halo_tz_next_transition(tz, s);
        int64_t cand = local - o;
        if (cand >= s && cand < e)
            return cand; /* first interval that shows it: first occurrence */
        if (cand < s && i > 0)
            return s; /* passed over: skipped by a jump that happened at s */
        if (e == INT64_MAX)
            break;
        s = e;
    }
    return local - halo_tz_offset(tz, local - halo_tz_offset(tz, local));
}
