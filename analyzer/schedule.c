/*
 * schedule.c -- schedule specs: parsing and fire-time arithmetic
 * (schedule.h). Pure functions: the caller passes every instant.
 *
 * Design
 * Two families of schedules:
 *
 * - Wall-clock schedules (daily, weekly, cron) match local civil minutes
 *   (date, HH:MM). Their fire times are halo_tz_from_civil() of the matching
 *   minutes: a minute skipped by a DST jump fires at the jump instant (all
 *   the skipped minutes of one jump fire once, together), a repeated minute
 *   fires at its first occurrence only. from_civil is non-decreasing in the
 *   wall time, so next(t) is the first matching minute at or after the wall
 *   time of t whose instant is > t. prev(t) starts from the last matching
 *   minute at or before the wall time of t and then steps forward with
 *   next() (in a fold, a later wall time may still map to an instant <= t).
 *   Matching minutes are searched by day, then hour, then minute, skipping
 *   whole months and days that cannot match; the search is bounded to 12
 *   years (a Feb 29 cron fires at least every 8 years; crons that never
 *   fire are rejected by the parser). When a hand-made spec matches nothing
 *   in the bound, next() returns INT64_MAX and prev() INT64_MIN.
 *
 * - Instant-grid schedules (hourly, every: <duration>). A period that
 *   divides 24h fires at every instant whose local clock reads a multiple of
 *   the period since local midnight: within an interval of constant UTC
 *   offset o those are the t with (t + o) mod p == 0. Repeated local times
 *   fire twice and skipped ones never, so windows keep the period's length
 *   across DST changes whenever the shift is a multiple of the period. Other
 *   periods fire at multiples of the period since the Unix epoch.
 *
 * Cron follows Vixie cron: when day-of-month and day-of-week are both
 * restricted a day matching either fires; a field counts as unrestricted
 * ("*") when its text starts with '*', so "*\/2" is unrestricted too.
 */
#include "schedule.h"
#include "tz_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PERIOD_S (366LL * 86400)
#define SEARCH_DAYS (12 * 366)
#define TOKEN_SHOW 40

/* ---- parsing: every / at ------------------------------------------------ */

static const char *const wday_names[7] = {"sunday",    "monday",   "tuesday",
                                          "wednesday", "thursday", "friday",
                                          "saturday"};
static const char *const mon_names[12] = {"jan", "feb", "mar", "apr",
                                          "may", "jun", "jul", "aug",
                                          "sep", "oct", "nov", "dec"};

/* A duration "90s", "15m", "6h", "1d", "1h30m": whole numbers with units. */
static bool parse_duration(const char *s, int64_t *out)
{
    int64_t total = 0;
    if (!*s)
        return false;
    while (*s) {
        int64_t v = 0;
        int nd = 0;
        while (isdigit((unsigned char)*s)) {
            if (++nd > 9)
                return false;
            v = v * 10 + (*s++ - '0');
        }
        int64_t unit;
        switch (*s++) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return false;
        }
        if (nd == 0)
            return false;
        total += v * unit;
        if (total > MAX_PERIOD_S * 10)
            return false;
    }
    *out = total;
    return true;
}

static halo_status parse_every(const char *every, halo_sched_spec *out,
                               halo_err *err)
{
    if (strcasecmp(every, "hourly") == 0) {
        out->every = HALO_EVERY_HOURLY;
        out->period_s = 3600;
        return HALO_OK;
    }
    if (strcasecmp(every, "daily") == 0) {
        out->every = HALO_EVERY_DAILY;
        return HALO_OK;
    }
    if (strcasecmp(every, "weekly") == 0) {
        out->every = HALO_EVERY_WEEKLY;
        return HALO_OK;
    }
    int64_t p;
    if (!parse_duration(every, &p))
        return halo_fail(err, HALO_EINVAL,
                         "every: expected hourly, daily, weekly or a duration "
                         "such as \"15m\", got \"%.*s\"",
                         TOKEN_SHOW, every);
    if (p < 60)
        return halo_fail(err, HALO_EINVAL,
                         "every: duration \"%.*s\" is shorter than 1m",
                         TOKEN_SHOW, every);
    if (p > MAX_PERIOD_S)
        return halo_fail(err, HALO_EINVAL,
                         "every: duration \"%.*s\" is longer than 366d",
                         TOKEN_SHOW, every);
    out->every = HALO_EVERY_DURATION;
    out->period_s = p;
    return HALO_OK;
}

/* "H:MM" or "HH:MM" into minutes after midnight; false if malformed. */
static bool parse_hhmm(const char *s, int *minute)
{
    int h = 0, m, n = 0;
    while (isdigit((unsigned char)s[n]) && n < 2)
        h = h * 10 + (s[n++] - '0');
    if (n == 0 || s[n] != ':' || !isdigit((unsigned char)s[n + 1]) ||
        !isdigit((unsigned char)s[n + 2]) || s[n + 3] != '\0')
        return false;
    m = (s[n + 1] - '0') * 10 + (s[n + 2] - '0');
    if (h > 23 || m > 59)
        return false;
    *minute = h * 60 + m;
    return true;
}

/* A day name, 3 letters or full, any case; -1 if none. */
static int day_index(const char *s, size_t n)
{
    for (int i = 0; i < 7; i++)
        if ((n == 3 || n == strlen(wday_names[i])) &&
            strncasecmp(s, wday_names[i], n) == 0)
            return i;
    return -1;
}

static halo_status parse_at(const char *at, halo_sched_spec *out, halo_err *err)
{
    if (out->every == HALO_EVERY_DAILY) {
        if (!parse_hhmm(at, &out->at_minute))
            return halo_fail(err, HALO_EINVAL,
                             "at: expected HH:MM, got \"%.*s\"", TOKEN_SHOW,
                             at);
        return HALO_OK;
    }
    const char *sp = strchr(at, ' ');
    const char *hm = at;
    if (sp) {
        int d = day_index(at, (size_t)(sp - at));
        hm = sp + 1;
        while (*hm == ' ')
            hm++;
        if (d < 0 || !parse_hhmm(hm, &out->at_minute))
            goto bad;
        out->at_wday = d;
        return HALO_OK;
    }
    if (parse_hhmm(at, &out->at_minute))
        return HALO_OK;
bad:
    return halo_fail(err, HALO_EINVAL,
                     "at: expected \"Day HH:MM\" (Day one of Sun..Sat) or "
                     "\"HH:MM\", got \"%.*s\"",
                     TOKEN_SHOW, at);
}

/* ---- parsing: cron --------------------------------------------------------
 */

typedef struct cron_field {
    const char *name;
    int lo, hi;               /* accepted numbers */
    const char *const *names; /* names for lo.. (3 letters), or NULL */
    int name_base;            /* value of names[0] */
} cron_field;

static const char *const dow3[7] = {"sun", "mon", "tue", "wed",
                                    "thu", "fri", "sat"};

static const cron_field cron_fields[5] = {
    {"minute", 0, 59, NULL, 0},       {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0}, {"month", 1, 12, mon_names, 1},
    {"day-of-week", 0, 7, dow3, 0},
};

typedef struct cron_ctx {
    int idx; /* 0..4 */
    const cron_field *f;
    halo_err *err;
} cron_ctx;

static halo_status cron_fail(const cron_ctx *c, const char *what,
                             const char *tok, size_t n)
{
    return halo_fail(c->err, HALO_EINVAL, "cron: field %d (%s): %s \"%.*s\"",
                     c->idx + 1, c->f->name, what,
                     (int)(n > TOKEN_SHOW ? TOKEN_SHOW : n), tok);
}

/* One value: a number or a name, at s[0..n). */
static halo_status cron_value(const cron_ctx *c, const char *s, size_t n,
                              int *out)
{
    if (n > 0 && isdigit((unsigned char)s[0])) {
        long v = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)s[i]))
                return cron_fail(c, "invalid number", s, n);
            if (v < 1000000)
                v = v * 10 + (s[i] - '0');
        }
        if (v < c->f->lo || v > c->f->hi)
            return halo_fail(c->err, HALO_EINVAL,
                             "cron: field %d (%s): %.*s is out of range %d-%d",
                             c->idx + 1, c->f->name,
                             (int)(n > TOKEN_SHOW ? TOKEN_SHOW : n), s,
                             c->f->lo, c->f->hi);
        *out = (int)v;
        return HALO_OK;
    }
    if (c->f->names && n == 3) {
        int count = c->idx == 3 ? 12 : 7;
        for (int i = 0; i < count; i++)
            if (strncasecmp(s, c->f->names[i], 3) == 0) {
                *out = c->f->name_base + i;
                return HALO_OK;
            }
    }
    if (n == 0)
        return halo_fail(c->err, HALO_EINVAL,
                         "cron: field %d (%s): empty value", c->idx + 1,
                         c->f->name);
    return cron_fail(c, c->f->names ? "unknown value" : "invalid number", s, n);
}

/* One list element: "*", "v", "a-b", each optionally "/step". */
static halo_status cron_element(const cron_ctx *c, const char *s, size_t n,
                                uint64_t *bits)
{
    const char *slash = memchr(s, '/', n);
    size_t rn = slash ? (size_t)(slash - s) : n;
    int lo, hi, step = 1;
    halo_status st;
    if (slash) {
        const char *ss = slash + 1;
        size_t sn = n - rn - 1;
        long v = 0;
        if (sn == 0 || sn > 3)
            return cron_fail(c, "invalid step in", s, n);
        for (size_t i = 0; i < sn; i++) {
            if (!isdigit((unsigned char)ss[i]))
                return cron_fail(c, "invalid step in", s, n);
            v = v * 10 + (ss[i] - '0');
        }
        if (v < 1 || v > c->f->hi)
            return cron_fail(c, "invalid step in", s, n);
        step = (int)v;
    }
    if (rn == 1 && s[0] == '*') {
        lo = c->f->lo;
        hi = c->idx == 4 ? 6 : c->f->hi;
    } else {
        const char *dash = memchr(s, '-', rn);
        size_t an = dash ? (size_t)(dash - s) : rn;
        if ((st = cron_value(c, s, an, &lo)) != HALO_OK)
            return st;
        hi = lo;
        if (dash) {
            if ((st = cron_value(c, dash + 1, rn - an - 1, &hi)) != HALO_OK)
                return st;
            if (hi < lo)
                return cron_fail(c, "range is reversed in", s, n);
        } else if (slash) {
            hi = c->idx == 4 ? 6 : c->f->hi; /* "5/10" means 5-max/10 */
            if (lo > hi)
                hi = lo;
        }
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t)1 << (c->idx == 4 && v == 7 ? 0 : v);
    return HALO_OK;
}

/* A comma-separated list at s[0..n) into bits; *star if it starts with *. */
static halo_status cron_field_parse(const cron_ctx *c, const char *s, size_t n,
                                    uint64_t *bits, bool *star)
{
    *bits = 0;
    *star = s[0] == '*';
    size_t i = 0;
    for (;;) {
        const char *comma = memchr(s + i, ',', n - i);
        size_t en = comma ? (size_t)(comma - (s + i)) : n - i;
        if (en == 0)
            return halo_fail(c->err, HALO_EINVAL,
                             "cron: field %d (%s): empty list element in "
                             "\"%.*s\"",
                             c->idx + 1, c->f->name,
                             (int)(n > TOKEN_SHOW ? TOKEN_SHOW : n), s);
        halo_status st = cron_element(c, s + i, en, bits);
        if (st != HALO_OK)
            return st;
        if (!comma)
            return HALO_OK;
        i += en + 1;
    }
}

/* Whether some allowed day-of-month exists in some allowed month (leap
 * years included), so that a day-of-month-only cron fires at all. */
static bool cron_feasible(const halo_cron *cr)
{
    if (cr->mday_star || !cr->wday_star)
        return true;
    for (int m = 1; m <= 12; m++) {
        if (!(cr->months >> m & 1))
            continue;
        for (int d = 1; d <= halo_days_in_month(2000, m); d++)
            if (cr->mdays >> d & 1)
                return true;
    }
    return false;
}

static halo_status parse_cron(const char *text, halo_cron *cr, halo_err *err)
{
    const char *start[6];
    size_t len[6];
    int nf = 0;
    const char *s = text;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        const char *b = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (nf < 6) {
            start[nf] = b;
            len[nf] = (size_t)(s - b);
        }
        nf++;
    }
    if (nf != 5)
        return halo_fail(err, HALO_EINVAL,
                         "cron: expected 5 fields (minute hour day-of-month "
                         "month day-of-week), got %d",
                         nf);
    uint64_t bits[5];
    bool star[5];
    for (int i = 0; i < 5; i++) {
        cron_ctx c = {.idx = i, .f = &cron_fields[i], .err = err};
        halo_status st =
            cron_field_parse(&c, start[i], len[i], &bits[i], &star[i]);
        if (st != HALO_OK)
            return st;
    }
    cr->minutes = bits[0];
    cr->hours = (uint32_t)bits[1];
    cr->mdays = (uint32_t)bits[2];
    cr->months = (uint16_t)bits[3];
    cr->wdays = (uint8_t)bits[4];
    cr->mday_star = star[2];
    cr->wday_star = star[4];
    if (!cron_feasible(cr))
        return halo_fail(err, HALO_EINVAL,
                         "cron: \"%.*s\" never fires (no allowed "
                         "day-of-month exists in the allowed months)",
                         TOKEN_SHOW, text);
    return HALO_OK;
}

halo_status halo_sched_parse(const char *every, const char *at,
                             const char *cron, int64_t window_ns,
                             const halo_tz *tz, halo_sched_spec *out,
                             halo_err *err)
{
    halo_status st;
    memset(out, 0, sizeof *out);
    out->at_wday = 1;
    out->tz = tz ? tz : halo_tz_utc();
    if ((every == NULL) == (cron == NULL))
        return halo_fail(err, HALO_EINVAL,
                         "schedule: exactly one of every and cron must be "
                         "given");
    if (window_ns < 0 || (window_ns > 0 && window_ns < 60000000000LL))
        return halo_fail(err, HALO_EINVAL,
                         "window: must be 0 or at least 1m, got %lld ns",
                         (long long)window_ns);
    out->window_s = window_ns / 1000000000LL;
    if (cron) {
        if (at)
            return halo_fail(err, HALO_EINVAL,
                             "at: only allowed with every: daily or weekly");
        out->every = HALO_EVERY_CRON;
        return parse_cron(cron, &out->cron, err);
    }
    if ((st = parse_every(every, out, err)) != HALO_OK)
        return st;
    if (!at)
        return HALO_OK;
    if (out->every != HALO_EVERY_DAILY && out->every != HALO_EVERY_WEEKLY)
        return halo_fail(err, HALO_EINVAL,
                         "at: only allowed with every: daily or weekly");
    return parse_at(at, out, err);
}

/* ---- wall-clock schedules ------------------------------------------------ */

/* Daily and weekly as the equivalent cron. */
static void wall_rule(const halo_sched_spec *s, halo_cron *cr)
{
    if (s->every == HALO_EVERY_CRON) {
        *cr = s->cron;
        return;
    }
    memset(cr, 0, sizeof *cr);
    cr->minutes = (uint64_t)1 << (s->at_minute % 60);
    cr->hours = (uint32_t)1 << (s->at_minute / 60 % 24);
    cr->mdays = 0xfffffffeu;
    cr->months = 0x1ffe;
    cr->mday_star = true;
    cr->wday_star = s->every == HALO_EVERY_DAILY;
    cr->wdays = cr->wday_star ? 0x7f : (uint8_t)(1u << (s->at_wday % 7));
}

static bool day_matches(const halo_cron *cr, int mday, int wday)
{
    bool dm = cr->mdays >> mday & 1, wm = cr->wdays >> wday & 1;
    if (cr->mday_star || cr->wday_star)
        return dm && wm;
    return dm || wm;
}

/* A local minute: day number and minute of the day. */
typedef struct wall {
    int64_t day;
    int min; /* 0..1439 */
} wall;

/* First set bit >= from in bits[0..n), or -1. */
static int bit_at_or_after(uint64_t bits, int from, int n)
{
    for (int i = from; i < n; i++)
        if (bits >> i & 1)
            return i;
    return -1;
}

static int bit_at_or_before(uint64_t bits, int from)
{
    for (int i = from; i >= 0; i--)
        if (bits >> i & 1)
            return i;
    return -1;
}

/* The first matching minute >= w; false if none within the bound. */
static bool wall_next_match(const halo_cron *cr, wall w, wall *out)
{
    for (int i = 0; i < 4 * SEARCH_DAYS; i++) {
        int64_t y;
        int mon, md, wd;
        halo_civil_from_days(w.day, &y, &mon, &md, &wd);
        if (!(cr->months >> mon & 1)) {
            w.day += halo_days_in_month(y, mon) - md + 1;
            w.min = 0;
            continue;
        }
        int h = day_matches(cr, md, wd)
                    ? bit_at_or_after(cr->hours, w.min / 60, 24)
                    : -1;
        if (h < 0) {
            w.day++;
            w.min = 0;
            continue;
        }
        int m =
            bit_at_or_after(cr->minutes, h == w.min / 60 ? w.min % 60 : 0, 60);
        if (m < 0) {
            if (h == 23) {
                w.day++;
                w.min = 0;
            } else {
                w.min = (h + 1) * 60;
            }
            continue;
        }
        out->day = w.day;
        out->min = h * 60 + m;
        return true;
    }
    return false;
}

/* The last matching minute <= w; false if none within the bound. */
static bool wall_prev_match(const halo_cron *cr, wall w, wall *out)
{
    for (int i = 0; i < 4 * SEARCH_DAYS; i++) {
        int64_t y;
        int mon, md, wd;
        halo_civil_from_days(w.day, &y, &mon, &md, &wd);
        if (!(cr->months >> mon & 1)) {
            w.day -= md;
            w.min = 1439;
            continue;
        }
        int h = day_matches(cr, md, wd)
                    ? bit_at_or_before(cr->hours, w.min / 60)
                    : -1;
        if (h < 0) {
            w.day--;
            w.min = 1439;
            continue;
        }
        int m =
            bit_at_or_before(cr->minutes, h == w.min / 60 ? w.min % 60 : 59);
        if (m < 0) {
            if (h == 0) {
                w.day--;
                w.min = 1439;
            } else {
                w.min = h * 60 - 1;
            }
            continue;
        }
        out->day = w.day;
        out->min = h * 60 + m;
        return true;
    }
    return false;
}

static wall wall_of(const halo_tz *tz, int64_t t)
{
    halo_civil c;
    halo_tz_to_civil(tz, t, &c);
    wall w = {halo_days_from_civil(c.year, c.mon, c.mday), c.hour * 60 + c.min};
    return w;
}

static int64_t wall_instant(const halo_tz *tz, wall w)
{
    int64_t y;
    halo_civil c = {0};
    halo_civil_from_days(w.day, &y, &c.mon, &c.mday, NULL);
    c.year = (int)y;
    c.hour = w.min / 60;
    c.min = w.min % 60;
    return halo_tz_from_civil(tz, &c);
}

static void wall_step(wall *w, int dir)
{
    w->min += dir;
    if (w->min < 0) {
        w->min = 1439;
        w->day--;
    } else if (w->min > 1439) {
        w->min = 0;
        w->day++;
    }
}

static int64_t wall_next(const halo_sched_spec *s, int64_t t)
{
    halo_cron cr;
    wall w = wall_of(s->tz, t), m;
    wall_rule(s, &cr);
    /* Minutes before the wall time of t map to instants <= t; in a fold or
     * a gap a few matching minutes may still, so skip those. */
    for (int i = 0; i < 4096; i++) {
        if (!wall_next_match(&cr, w, &m))
            return INT64_MAX;
        int64_t f = wall_instant(s->tz, m);
        if (f > t)
            return f;
        w = m;
        wall_step(&w, 1);
    }
    return INT64_MAX;
}

static int64_t wall_prev(const halo_sched_spec *s, int64_t t)
{
    halo_cron cr;
    wall w = wall_of(s->tz, t), m;
    int64_t f = INT64_MIN;
    wall_rule(s, &cr);
    for (int i = 0; i < 4096; i++) {
        if (!wall_prev_match(&cr, w, &m))
            return INT64_MIN;
        f = wall_instant(s->tz, m);
        if (f <= t)
            break;
        w = m;
        wall_step(&w, -1);
    }
    if (f > t)
        return INT64_MIN;
    /* A later wall time may map to an instant still <= t (in a fold). */
    for (int i = 0; i < 4096; i++) {
        int64_t n = wall_next(s, f);
        if (n > t)
            break;
        f = n;
    }
    return f;
}

/* ---- instant-grid schedules ------------------------------------------------
 */

static int64_t mod_floor(int64_t a, int64_t b)
{
    int64_t r = a % b;
    return r < 0 ? r + b : r;
}

/* The grid period: hourly is a 1h duration. */
static int64_t grid_period(const halo_sched_spec *s)
{
    return s->every == HALO_EVERY_HOURLY ? 3600 : s->period_s;
}

static int64_t grid_next(const halo_sched_spec *s, int64_t t)
{
    int64_t p = grid_period(s);
    if (t >= HALO_TZ_T_LIMIT)
        return INT64_MAX;
    if (t < -HALO_TZ_T_LIMIT)
        t = -HALO_TZ_T_LIMIT;
    if (86400 % p != 0)
        return t - mod_floor(t, p) + p;
    int64_t x = t + 1;
    for (int i = 0; i < 4096; i++) {
        int64_t o = halo_tz_offset(s->tz, x);
        int64_t e = halo_tz_next_transition(s->tz, x);
        int64_t r = mod_floor(x + o, p);
        int64_t c = r == 0 ? x : x + (p - r);
        if (c < e)
            return c;
        if (e >= HALO_TZ_T_LIMIT)
            return INT64_MAX;
        x = e;
    }
    return INT64_MAX;
}

static int64_t grid_prev(const halo_sched_spec *s, int64_t t)
{
    int64_t p = grid_period(s);
    if (t <= -HALO_TZ_T_LIMIT)
        return INT64_MIN;
    if (t > HALO_TZ_T_LIMIT)
        t = HALO_TZ_T_LIMIT;
    if (86400 % p != 0)
        return t - mod_floor(t, p);
    int64_t x = t;
    for (int i = 0; i < 4096; i++) {
        int64_t o = halo_tz_offset(s->tz, x);
        int64_t a = halo_tz_prev_transition(s->tz, x);
        int64_t c = x - mod_floor(x + o, p);
        if (c >= a)
            return c;
        if (a <= -HALO_TZ_T_LIMIT)
            return INT64_MIN;
        x = a - 1;
    }
    return INT64_MIN;
}

/* ---- public
 * ------------------------------------------------------------------ */

static bool is_grid(const halo_sched_spec *s)
{
    return s->every == HALO_EVERY_HOURLY ||
           (s->every == HALO_EVERY_DURATION && s->period_s > 0);
}

int64_t halo_sched_prev(const halo_sched_spec *s, int64_t t)
{
    return is_grid(s) ? grid_prev(s, t) : wall_prev(s, t);
}

int64_t halo_sched_next(const halo_sched_spec *s, int64_t t)
{
    return is_grid(s) ? grid_next(s, t) : wall_next(s, t);
}

void halo_sched_window(const halo_sched_spec *s, int64_t f, int64_t *start)
{
    if (s->window_s > 0)
        *start = f - s->window_s;
    else
        *start = f == INT64_MIN ? f : halo_sched_prev(s, f - 1);
}

int halo_sched_due(const halo_sched_spec *s, int64_t now, int64_t grace_s,
                   int64_t *out, int max)
{
    int n = 0;
    int64_t at;
    if (__builtin_sub_overflow(now, grace_s, &at))
        return 0;
    int64_t f = halo_sched_prev(s, at);
    while (n < max && f != INT64_MIN) {
        out[n++] = f;
        f = halo_sched_prev(s, f - 1);
    }
    return n;
}
