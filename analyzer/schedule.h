/*
 * schedule.h -- when the analyzer runs: time zones, schedule specs, fire
 * times and the windows they analyze (pure functions, no clock reads).
 *
 * A schedule (DESIGN §7, `analyzer.schedules[]`) fires at instants computed
 * in its time zone's wall clock:
 *
 *   every: hourly          at every full hour (local)
 *   every: daily  at: HH:MM          every day at HH:MM (default 00:00)
 *   every: weekly at: "Mon HH:MM"    every week (default Mon 00:00)
 *   every: <duration>      (15m, 6h, ...) at every multiple of the duration
 *                          counted from local midnight when it divides a
 *                          day, else from the Unix epoch (UTC)
 *   cron: "m h dom mon dow"          standard 5-field cron, local time
 *
 * The window a fire time f analyzes is [previous fire, f) unless the
 * schedule sets `window`, then [f - window, f). A run for fire f starts at
 * f + grace. All instants are seconds since the Unix epoch (UTC).
 *
 * Time zones are read from the system's IANA database (TZif files under
 * $TZDIR, default /usr/share/zoneinfo, Debian package tzdata), including
 * the POSIX TZ rule in a TZif v2+ footer for instants past the last
 * transition. "UTC" (and "Etc/UTC", "Z") needs no file.
 */
#ifndef HALO_SCHEDULE_H
#define HALO_SCHEDULE_H

#include "../core/status.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- time zones -------------------------------------------------------- */

typedef struct halo_tz halo_tz;

/* Load zone `name` ("UTC", "Europe/Paris", "America/New_York").
 * Errors: HALO_EINVAL "unknown time zone "X" (no file
 * /usr/share/zoneinfo/X; is the tzdata package installed?)", or a clear
 * message for a malformed TZif file (never a crash: the file is parsed as
 * untrusted bytes). Names containing ".." are refused. */
halo_status halo_tz_load(const char *name, halo_tz **out, halo_err *err);
void halo_tz_free(halo_tz *tz);
const char *halo_tz_name(const halo_tz *tz);

/* Broken-down local time. */
typedef struct halo_civil {
    int year;
    int mon;  /* 1..12 */
    int mday; /* 1..31 */
    int hour; /* 0..23 */
    int min;  /* 0..59 */
    int sec;  /* 0..59 */
    int wday; /* 0 Sunday .. 6 Saturday */
} halo_civil;

/* Seconds east of UTC in effect at instant t. */
int32_t halo_tz_offset(const halo_tz *tz, int64_t t);
/* Instant -> local wall clock. */
void halo_tz_to_civil(const halo_tz *tz, int64_t t, halo_civil *out);
/* Local wall clock -> instant (wday ignored). A wall time that does not
 * exist (skipped by a DST change) maps to the instant the clocks jumped
 * forward to; an ambiguous one (repeated) maps to its first occurrence. */
int64_t halo_tz_from_civil(const halo_tz *tz, const halo_civil *c);

/* ---- schedule specs ---------------------------------------------------- */

typedef enum halo_every {
    HALO_EVERY_HOURLY,
    HALO_EVERY_DAILY,
    HALO_EVERY_WEEKLY,
    HALO_EVERY_DURATION,
    HALO_EVERY_CRON,
} halo_every;

/* A parsed 5-field cron expression: a bit per allowed value. */
typedef struct halo_cron {
    uint64_t minutes; /* bits 0..59 */
    uint32_t hours;   /* bits 0..23 */
    uint32_t mdays;   /* bits 1..31 */
    uint16_t months;  /* bits 1..12 */
    uint8_t wdays;    /* bits 0..6 (7 in the text means Sunday too) */
    bool mday_star;   /* day-of-month was "*" */
    bool wday_star;   /* day-of-week was "*" */
} halo_cron;

typedef struct halo_sched_spec {
    halo_every every;
    int at_minute;     /* DAILY/WEEKLY: minutes after local midnight */
    int at_wday;       /* WEEKLY: 0 Sunday .. 6 Saturday (default 1) */
    int64_t period_s;  /* DURATION: the period in seconds (>= 60) */
    halo_cron cron;    /* CRON */
    int64_t window_s;  /* 0: from the previous fire time */
    const halo_tz *tz; /* borrowed; never NULL after parse */
} halo_sched_spec;

/* Parse a schedule. Exactly one of `every` and `cron` must be given; `at`
 * only with daily or weekly. every: "hourly", "daily", "weekly" or a
 * duration of at least 1m ("15m", "6h"); at: "HH:MM" (daily), "Mon HH:MM"
 * or "HH:MM" (weekly; day names Sun..Sat, any case, 3 letters or full);
 * cron: 5 fields with *, lists, ranges, steps (*\/15, 1-5/2), month and day
 * names (jan, mon), 0 or 7 for Sunday; window_ns: 0 or >= 1 minute.
 * Errors name the field and the problem, e.g. "cron: field 2 (hour): 24 is
 * out of range 0-23", "at: expected HH:MM, got "25:00"". */
halo_status halo_sched_parse(const char *every, const char *at,
                             const char *cron, int64_t window_ns,
                             const halo_tz *tz, halo_sched_spec *out,
                             halo_err *err);

/* The latest fire time <= t. */
int64_t halo_sched_prev(const halo_sched_spec *s, int64_t t);
/* The earliest fire time > t. */
int64_t halo_sched_next(const halo_sched_spec *s, int64_t t);
/* The window fire time f analyzes: [*start, f). */
void halo_sched_window(const halo_sched_spec *s, int64_t f, int64_t *start);

/* The fire times whose runs are due at instant now with the given grace
 * (f + grace <= now), newest first, at most max (the catch-up limit):
 * out[0] = prev(now - grace), out[1] = its previous fire, ... Returns how
 * many were written. */
int halo_sched_due(const halo_sched_spec *s, int64_t now, int64_t grace_s,
                   int64_t *out, int max);

#endif
