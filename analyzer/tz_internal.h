/*
 * tz_internal.h -- what tz.c shares with schedule.c, the unit tests and the
 * TZif fuzzer, beyond the public zone API of schedule.h.
 *
 * halo_tz_parse() is halo_tz_load() without the file system: it parses a
 * TZif image held in memory (untrusted bytes). The civil-date helpers are
 * the proleptic Gregorian day-number conversions both files compute with
 * (no libc time functions: localtime_r/mktime depend on the process-global
 * TZ and are not thread-safe with it).
 *
 * All instants handed to the zone functions are clamped to
 * [-HALO_TZ_T_LIMIT, HALO_TZ_T_LIMIT] (about +-285 million years), so the
 * year of any instant fits in an int and no arithmetic can overflow.
 */
#ifndef HALO_TZ_INTERNAL_H
#define HALO_TZ_INTERNAL_H

#include "schedule.h"

#include <stddef.h>
#include <stdint.h>

#define HALO_TZ_T_LIMIT ((int64_t)1 << 53)
/* Largest TZif file halo_tz_load() reads. */
#define HALO_TZ_FILE_MAX ((size_t)1 << 20)

/* Parse a TZif image (RFC 8536, versions 1 to 4) as zone `name`. */
halo_status halo_tz_parse(const char *name, const uint8_t *data, size_t len,
                          halo_tz **out, halo_err *err);

/* A shared, never freed UTC zone (for specs parsed without a zone). */
const halo_tz *halo_tz_utc(void);

/* The first instant > t at which the zone's offset may change, or
 * INT64_MAX when there is none. */
int64_t halo_tz_next_transition(const halo_tz *tz, int64_t t);
/* The last instant <= t at which the zone's offset may have changed, or
 * INT64_MIN when there is none. */
int64_t halo_tz_prev_transition(const halo_tz *tz, int64_t t);

/* Days since 1970-01-01 of a proleptic Gregorian date (mon 1..12; mday may
 * run past the month, it is added linearly). */
int64_t halo_days_from_civil(int64_t year, int mon, int64_t mday);
/* The date of a day number; wday 0 Sunday .. 6 Saturday (may be NULL). */
void halo_civil_from_days(int64_t days, int64_t *year, int *mon, int *mday,
                          int *wday);
/* Days in month `mon` (1..12) of `year`. */
int halo_days_in_month(int64_t year, int mon);

#endif
