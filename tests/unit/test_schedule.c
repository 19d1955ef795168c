/*
 * test_schedule.c -- time zones (TZif reader, POSIX TZ footers, civil
 * conversions, DST gaps and folds) and schedules (parsing, fire times,
 * windows, grace and catch-up).
 *
 * Expected instants were verified once against the system's zdump and
 * date(1) (tzdata 2025b) and are hard-coded here. The zone tests need the
 * tzdata package (/usr/share/zoneinfo); the malformed-file tests build
 * their TZif images in memory or in the test's scratch directory.
 */
#include "analyzer/schedule.h"
#include "analyzer/tz_internal.h"
#include "harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* "YYYY-MM-DDTHH:MM" in UTC -> epoch seconds (test helper; the day-number
 * code it uses is itself checked against date(1) in civil_days). */
static int64_t Z(const char *iso)
{
    int y, mo, d, h, mi;
    if (sscanf(iso, "%d-%d-%dT%d:%d", &y, &mo, &d, &h, &mi) != 5)
        abort();
    return halo_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static halo_tz *zone(const char *name)
{
    halo_tz *tz = NULL;
    halo_err err = {{0}};
    if (halo_tz_load(name, &tz, &err) != HALO_OK) {
        fprintf(stderr, "  cannot load %s: %s\n", name, err.msg);
        return NULL;
    }
    return tz;
}

static halo_civil civil(int y, int mo, int d, int h, int mi)
{
    halo_civil c = {.year = y, .mon = mo, .mday = d, .hour = h, .min = mi};
    return c;
}

static int64_t from_civil(const halo_tz *tz, int y, int mo, int d, int h,
                          int mi)
{
    halo_civil c = civil(y, mo, d, h, mi);
    return halo_tz_from_civil(tz, &c);
}

/* 1 if tz shows the given local time at t. */
static int shows(const halo_tz *tz, int64_t t, int y, int mo, int d, int h,
                 int mi, int wday)
{
    halo_civil c;
    halo_tz_to_civil(tz, t, &c);
    return c.year == y && c.mon == mo && c.mday == d && c.hour == h &&
           c.min == mi && c.sec == 0 && c.wday == wday;
}

/* Parse or die (for the fire-time tests). */
static halo_sched_spec spec(const char *every, const char *at, const char *cron,
                            const halo_tz *tz)
{
    halo_sched_spec s;
    halo_err err = {{0}};
    if (halo_sched_parse(every, at, cron, 0, tz, &s, &err) != HALO_OK) {
        fprintf(stderr, "  parse failed: %s\n", err.msg);
        abort();
    }
    return s;
}

static int64_t window_start(const halo_sched_spec *s, int64_t f)
{
    int64_t start;
    halo_sched_window(s, f, &start);
    return start;
}

/* ---- civil dates and zones ------------------------------------------------
 */

TEST(civil_days)
{
    CHECK_INT(Z("1970-01-01T00:00"), 0);
    CHECK_INT(Z("2026-03-29T01:00"), 1774746000);
    CHECK_INT(Z("2026-10-25T01:00"), 1792890000);
    CHECK_INT(Z("2100-03-28T01:00"), 4109878800LL);
    CHECK_INT(Z("2000-02-29T12:00"), 951825600);
    CHECK_INT(Z("1900-03-01T00:00"), -2203891200LL);
    int64_t y;
    int m, d, wd;
    halo_civil_from_days(halo_days_from_civil(2100, 3, 1) - 1, &y, &m, &d, &wd);
    CHECK(y == 2100 && m == 2 && d == 28 && wd == 0); /* 2100: no Feb 29 */
    CHECK_INT(halo_days_in_month(2000, 2), 29);
    CHECK_INT(halo_days_in_month(2100, 2), 28);
}

TEST(tz_utc_builtin)
{
    const char *names[] = {"UTC", "Etc/UTC", "Z"};
    for (int i = 0; i < 3; i++) {
        halo_tz *tz = zone(names[i]);
        CHECK(tz);
        CHECK_STR(halo_tz_name(tz), names[i]);
        CHECK_INT(halo_tz_offset(tz, Z("2026-07-01T12:00")), 0);
        CHECK(shows(tz, Z("2026-11-23T10:05"), 2026, 11, 23, 10, 5, 1));
        CHECK_INT(from_civil(tz, 2026, 11, 23, 10, 5), Z("2026-11-23T10:05"));
        halo_tz_free(tz);
    }
}

TEST(tz_paris)
{
    halo_tz *tz = zone("Europe/Paris");
    CHECK(tz);
    int64_t spring = 1774746000, fall = 1792890000; /* 01:00Z both */
    CHECK_INT(halo_tz_offset(tz, spring - 1), 3600);
    CHECK_INT(halo_tz_offset(tz, spring), 7200);
    CHECK(shows(tz, spring, 2026, 3, 29, 3, 0, 0));
    CHECK(shows(tz, spring - 60, 2026, 3, 29, 1, 59, 0));
    CHECK_INT(halo_tz_offset(tz, fall - 1), 7200);
    CHECK_INT(halo_tz_offset(tz, fall), 3600);
    CHECK(shows(tz, fall, 2026, 10, 25, 2, 0, 0));
    /* DST gap: 02:00..02:59 does not exist, maps to the jump */
    CHECK_INT(from_civil(tz, 2026, 3, 29, 2, 30), spring);
    CHECK_INT(from_civil(tz, 2026, 3, 29, 2, 0), spring);
    CHECK_INT(from_civil(tz, 2026, 3, 29, 3, 0), spring);
    CHECK_INT(from_civil(tz, 2026, 3, 29, 1, 59), spring - 60);
    /* fold: 02:00..02:59 happens twice, the first occurrence wins */
    CHECK_INT(from_civil(tz, 2026, 10, 25, 2, 30), fall - 1800);
    CHECK_INT(from_civil(tz, 2026, 10, 25, 1, 59), fall - 3660);
    CHECK_INT(from_civil(tz, 2026, 10, 25, 3, 0), fall + 3600);
    /* year 2100: past the last transition, the footer rule decides */
    int64_t s2100 = Z("2100-03-28T01:00"), f2100 = Z("2100-10-31T01:00");
    CHECK_INT(halo_tz_offset(tz, s2100 - 1), 3600);
    CHECK_INT(halo_tz_offset(tz, s2100), 7200);
    CHECK(shows(tz, s2100, 2100, 3, 28, 3, 0, 0));
    CHECK_INT(halo_tz_offset(tz, f2100 - 1), 7200);
    CHECK_INT(halo_tz_offset(tz, f2100), 3600);
    CHECK_INT(from_civil(tz, 2100, 3, 28, 2, 15), s2100);
    CHECK_INT(from_civil(tz, 2100, 10, 31, 2, 15), f2100 - 2700);
    /* before the first transition: local mean time, type 0 (+0:09:21) */
    CHECK_INT(halo_tz_offset(tz, Z("1880-01-01T00:00")), 561);
    halo_tz_free(tz);
}

TEST(tz_new_york)
{
    halo_tz *tz = zone("America/New_York");
    CHECK(tz);
    int64_t spring = Z("2026-03-08T07:00"), fall = Z("2026-11-01T06:00");
    CHECK_INT(halo_tz_offset(tz, spring - 1), -18000);
    CHECK_INT(halo_tz_offset(tz, spring), -14400);
    CHECK(shows(tz, spring, 2026, 3, 8, 3, 0, 0));
    CHECK_INT(halo_tz_offset(tz, fall - 1), -14400);
    CHECK_INT(halo_tz_offset(tz, fall), -18000);
    CHECK(shows(tz, fall, 2026, 11, 1, 1, 0, 0));
    CHECK_INT(from_civil(tz, 2026, 3, 8, 2, 30), spring);
    CHECK_INT(from_civil(tz, 2026, 11, 1, 1, 30), Z("2026-11-01T05:30"));
    int64_t s2100 = Z("2100-03-14T07:00"), f2100 = Z("2100-11-07T06:00");
    CHECK_INT(halo_tz_offset(tz, s2100 - 1), -18000);
    CHECK_INT(halo_tz_offset(tz, s2100), -14400);
    CHECK_INT(halo_tz_offset(tz, f2100 - 1), -14400);
    CHECK_INT(halo_tz_offset(tz, f2100), -18000);
    halo_tz_free(tz);
}

TEST(tz_lord_howe_half_hour_dst)
{
    halo_tz *tz = zone("Australia/Lord_Howe");
    CHECK(tz);
    int64_t on = Z("2026-10-03T15:30"), off = Z("2026-04-04T15:00");
    CHECK_INT(halo_tz_offset(tz, on - 1), 37800);
    CHECK_INT(halo_tz_offset(tz, on), 39600);
    CHECK(shows(tz, on, 2026, 10, 4, 2, 30, 0));
    CHECK_INT(halo_tz_offset(tz, off - 1), 39600);
    CHECK_INT(halo_tz_offset(tz, off), 37800);
    CHECK(shows(tz, off, 2026, 4, 5, 1, 30, 0));
    /* gap 02:00..02:29, fold 01:30..01:59 */
    CHECK_INT(from_civil(tz, 2026, 10, 4, 2, 10), on);
    CHECK_INT(from_civil(tz, 2026, 4, 5, 1, 45), Z("2026-04-04T14:45"));
    CHECK_INT(halo_tz_offset(tz, Z("2100-10-02T15:30")), 39600);
    CHECK_INT(halo_tz_offset(tz, Z("2100-10-02T15:29")), 37800);
    CHECK_INT(halo_tz_offset(tz, Z("2100-04-03T15:00")), 37800);
    halo_tz_free(tz);
}

TEST(tz_kolkata_no_dst)
{
    halo_tz *tz = zone("Asia/Kolkata");
    CHECK(tz);
    CHECK_INT(halo_tz_offset(tz, Z("2026-01-15T00:00")), 19800);
    CHECK_INT(halo_tz_offset(tz, Z("2026-07-15T00:00")), 19800);
    CHECK_INT(halo_tz_offset(tz, Z("2100-07-15T00:00")), 19800);
    CHECK(shows(tz, Z("2026-06-01T00:00"), 2026, 6, 1, 5, 30, 1));
    CHECK_INT(from_civil(tz, 2026, 6, 1, 5, 30), Z("2026-06-01T00:00"));
    halo_tz_free(tz);
}

TEST(tz_unknown_and_bad_names)
{
    halo_tz *tz = (halo_tz *)1;
    halo_err err = {{0}};
    unsetenv("TZDIR");
    CHECK_INT(halo_tz_load("Mars/Olympus", &tz, &err), HALO_EINVAL);
    CHECK(tz == NULL);
    CHECK_STR(err.msg, "unknown time zone \"Mars/Olympus\" (no file "
                       "/usr/share/zoneinfo/Mars/Olympus; is the tzdata "
                       "package installed?)");
    CHECK_INT(halo_tz_load("../../etc/passwd", &tz, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "invalid time zone name \"../../etc/passwd\"");
    CHECK_INT(halo_tz_load("/etc/passwd", &tz, &err), HALO_EINVAL);
    CHECK_INT(halo_tz_load("", &tz, &err), HALO_EINVAL);
    CHECK_INT(halo_tz_load("Europe", &tz, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "unknown time zone \"Europe\" "
                       "(/usr/share/zoneinfo/Europe is not a time zone file)");
}

/* ---- TZif images built by hand ------------------------------------------ */

typedef struct img {
    uint8_t b[1024];
    size_t n;
} img;

static void put(img *m, const void *p, size_t n)
{
    if (m->n + n > sizeof m->b)
        abort();
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void put32(img *m, uint32_t v)
{
    uint8_t b[4] = {v >> 24, v >> 16, v >> 8, v};
    put(m, b, 4);
}

static void put64(img *m, int64_t v)
{
    put32(m, (uint32_t)((uint64_t)v >> 32));
    put32(m, (uint32_t)v);
}

/* Header with the given counts (isut, isstd, leap, time, type, char). */
static void header(img *m, char version, uint32_t timecnt, uint32_t typecnt)
{
    put(m, "TZif", 4);
    put(m, &version, 1);
    static const uint8_t zero[15];
    put(m, zero, 15);
    put32(m, 0);
    put32(m, 0);
    put32(m, 0);
    put32(m, timecnt);
    put32(m, typecnt);
    put32(m, 4);
}

/* A v2+ image: one transition at t1 from type 0 (off0) to type 1 (off1),
 * then footer `footer`. The v1 block is empty but for one type. */
static void build(img *m, char version, int64_t t1, int32_t off0, int32_t off1,
                  const char *footer)
{
    m->n = 0;
    header(m, version, 0, 1);
    put32(m, (uint32_t)off0);
    put(m, "\0\0", 2);
    put(m, "XXX\0", 4);
    header(m, version, 1, 2);
    put64(m, t1);
    put(m, "\1", 1);
    put32(m, (uint32_t)off0);
    put(m, "\0\0", 2);
    put32(m, (uint32_t)off1);
    put(m, "\1\0", 2);
    put(m, "XXX\0", 4);
    put(m, "\n", 1);
    put(m, footer, strlen(footer));
    put(m, "\n", 1);
}

static halo_status parse_img(const img *m, halo_tz **tz, halo_err *err)
{
    return halo_tz_parse("Test/Zone", m->b, m->n, tz, err);
}

TEST(tzif_footer_rules)
{
    img m;
    halo_tz *tz;
    halo_err err = {{0}};
    /* negative rule times (v3): Greenland-like, -03/-02 */
    build(&m, '3', Z("2000-01-01T00:00"), -10800, -10800,
          "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1");
    CHECK_INT(parse_img(&m, &tz, &err), HALO_OK);
    CHECK_INT(halo_tz_offset(tz, Z("2030-03-31T01:00") - 1), -10800);
    CHECK_INT(halo_tz_offset(tz, Z("2030-03-31T01:00")), -7200);
    CHECK_INT(halo_tz_offset(tz, Z("2030-10-27T01:00") - 1), -7200);
    CHECK_INT(halo_tz_offset(tz, Z("2030-10-27T01:00")), -10800);
    halo_tz_free(tz);
    /* Jn never counts Feb 29, n does */
    build(&m, '2', Z("2000-01-01T00:00"), -10800, -10800, "AAA3BBB,J60/2,300");
    CHECK_INT(parse_img(&m, &tz, &err), HALO_OK);
    CHECK_INT(halo_tz_offset(tz, Z("2028-03-01T05:00") - 1), -10800);
    CHECK_INT(halo_tz_offset(tz, Z("2028-03-01T05:00")), -7200);
    halo_tz_free(tz);
    build(&m, '2', Z("2000-01-01T00:00"), -10800, -10800, "AAA3BBB,59/2,300");
    CHECK_INT(parse_img(&m, &tz, &err), HALO_OK);
    CHECK_INT(halo_tz_offset(tz, Z("2028-02-29T05:00") - 1), -10800);
    CHECK_INT(halo_tz_offset(tz, Z("2028-02-29T05:00")), -7200);
    CHECK_INT(halo_tz_offset(tz, Z("2030-03-01T05:00")), -7200);
    halo_tz_free(tz);
    /* permanent DST (v3: end at 25:00 on Dec 31 meets next year's start) */
    build(&m, '3', Z("2000-01-01T00:00"), -18000, -14400,
          "EST5EDT,0/0,J365/25");
    CHECK_INT(parse_img(&m, &tz, &err), HALO_OK);
    CHECK_INT(halo_tz_offset(tz, Z("2030-01-01T05:00")), -14400);
    CHECK_INT(halo_tz_offset(tz, Z("2030-07-01T00:00")), -14400);
    CHECK_INT(halo_tz_offset(tz, Z("2030-12-31T23:59")), -14400);
    halo_tz_free(tz);
    /* explicit DST offset, <+0330> names, minutes in offsets */
    build(&m, '2', Z("2000-01-01T00:00"), 12600, 12600, "<+0330>-3:30");
    CHECK_INT(parse_img(&m, &tz, &err), HALO_OK);
    CHECK_INT(halo_tz_offset(tz, Z("2100-01-01T00:00")), 12600);
    halo_tz_free(tz);
    /* an empty footer: the last transition's type applies forever */
    build(&m, '2', Z("2000-01-01T00:00"), 3600, 7200, "");
    CHECK_INT(parse_img(&m, &tz, &err), HALO_OK);
    CHECK_INT(halo_tz_offset(tz, Z("1999-12-31T23:59")), 3600);
    CHECK_INT(halo_tz_offset(tz, Z("2100-01-01T00:00")), 7200);
    halo_tz_free(tz);
}

TEST(tzif_malformed)
{
    img m;
    halo_tz *tz = (halo_tz *)1;
    halo_err err = {{0}};
    build(&m, '2', 0, 3600, 7200, "CET-1CEST,M3.5.0,M10.5.0/3");
    /* every truncation fails cleanly */
    for (size_t n = 0; n < m.n; n++) {
        CHECK(halo_tz_parse("T", m.b, n, &tz, &err) != HALO_OK);
        CHECK(tz == NULL);
        CHECK(err.msg[0] != '\0');
    }
    CHECK_INT(halo_tz_parse("T", m.b, 0, &tz, &err), HALO_EINVAL);
    CHECK_STR(err.msg,
              "invalid time zone file for \"T\": truncated header at byte 0");
    CHECK_INT(halo_tz_parse("T", m.b, 44, &tz, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "invalid time zone file for \"T\": data block needs "
                       "10 bytes, 0 remain (0 transitions, 1 types)");
    CHECK_INT(halo_tz_parse("T", m.b, m.n - 1, &tz, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "invalid time zone file for \"T\": footer not "
                       "terminated");
    /* absurd counts */
    img a = {.n = 0};
    header(&a, '2', 0xffffffffu, 1);
    CHECK_INT(parse_img(&a, &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "data block needs 21474836485 bytes, 0 remain");
    a.n = 0;
    header(&a, '2', 0, 0x10000);
    CHECK_INT(parse_img(&a, &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "65536 local time types (expected 1 to 256)");
    /* bad magic, bad version */
    img b = m;
    b.b[0] = 'X';
    CHECK_INT(parse_img(&b, &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "no TZif magic");
    b = m;
    b.b[4] = '1';
    CHECK_INT(parse_img(&b, &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown TZif version byte 0x31");
    /* transition naming a type that does not exist (v2 block index byte) */
    b = m;
    size_t v2 = 44 + 6 + 4;
    b.b[v2 + 44 + 8] = 7;
    CHECK_INT(parse_img(&b, &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "transition 0 names type 7 of 2");
    /* offset beyond 26h */
    b = m;
    b.b[v2 + 44 + 9] = 0x7f;
    CHECK_INT(parse_img(&b, &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "offset");
    CHECK_CONTAINS(err.msg, "is beyond 26 hours");
    /* bad footers */
    const char *bad[] = {"CET",
                         "CET-1CEST,M3.5.0",
                         "CET-1CEST,M13.5.0,M1.1.0",
                         "CET-1CEST,M3.5.0/168,M10.5.0",
                         "C-1",
                         "CET-1CEST,M3.5.0,M10.5.0x",
                         "<AB>1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        build(&b, '3', 0, 3600, 7200, bad[i]);
        CHECK_INT(parse_img(&b, &tz, &err), HALO_EINVAL);
        CHECK_CONTAINS(err.msg, "invalid TZ string");
    }
    /* leap seconds are refused as not supported */
    a.n = 0;
    put(&a, "TZif", 4);
    put(&a, "\0", 1);
    static const uint8_t zero[15];
    put(&a, zero, 15);
    uint32_t counts[6] = {0, 0, 1, 0, 1, 4};
    for (int i = 0; i < 6; i++)
        put32(&a, counts[i]);
    put(&a, "\0\0\0\0\0\0UTC\0", 10);
    put(&a, "\0\0\0\0\0\0\0\0", 8);
    CHECK_INT(parse_img(&a, &tz, &err), HALO_EUNSUPPORTED);
    CHECK_CONTAINS(err.msg, "leap second records: not supported");
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

TEST(tzif_files_in_tzdir)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/zoneinfo", halo_test_tmpdir());
    mkdir(dir, 0700);
    img m;
    build(&m, '2', 0, 3600, 7200, "CET-1CEST,M3.5.0,M10.5.0/3");
    snprintf(path, sizeof path, "%s/Good", dir);
    CHECK(write_file(path, m.b, m.n) == 0);
    snprintf(path, sizeof path, "%s/Truncated", dir);
    CHECK(write_file(path, m.b, 70) == 0);
    snprintf(path, sizeof path, "%s/Empty", dir);
    CHECK(write_file(path, m.b, 0) == 0);
    snprintf(path, sizeof path, "%s/Huge", dir);
    char *big = calloc(1, (2u << 20));
    CHECK(big);
    memcpy(big, m.b, m.n);
    int wr = write_file(path, big, 2u << 20);
    free(big);
    CHECK(wr == 0);
    setenv("TZDIR", dir, 1);
    halo_tz *tz = NULL;
    halo_err err = {{0}};
    CHECK_INT(halo_tz_load("Good", &tz, &err), HALO_OK);
    CHECK_INT(halo_tz_offset(tz, Z("2030-07-01T00:00")), 7200);
    halo_tz_free(tz);
    CHECK_INT(halo_tz_load("Truncated", &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid time zone file for \"Truncated\"");
    CHECK_INT(halo_tz_load("Empty", &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "truncated header");
    CHECK_INT(halo_tz_load("Huge", &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "is too large (2097152 bytes, limit 1 MiB)");
    CHECK_INT(halo_tz_load("Europe/Paris", &tz, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown time zone \"Europe/Paris\" (no file ");
    CHECK_CONTAINS(err.msg, "/zoneinfo/Europe/Paris; is the tzdata");
    CHECK_INT(halo_tz_load("UTC", &tz, &err), HALO_OK); /* no file needed */
    halo_tz_free(tz);
    unsetenv("TZDIR");
}

/* ---- schedule parsing ------------------------------------------------------
 */

static const char *parse_err(const char *every, const char *at,
                             const char *cron, int64_t window_ns)
{
    static halo_err err;
    halo_sched_spec s;
    memset(&err, 0, sizeof err);
    if (halo_sched_parse(every, at, cron, window_ns, NULL, &s, &err) !=
        HALO_EINVAL)
        return "(no error)";
    return err.msg;
}

TEST(parse_errors)
{
    const char *both = "schedule: exactly one of every and cron must be given";
    CHECK_STR(parse_err("hourly", NULL, "* * * * *", 0), both);
    CHECK_STR(parse_err(NULL, NULL, NULL, 0), both);
    CHECK_STR(parse_err("fortnightly", NULL, NULL, 0),
              "every: expected hourly, daily, weekly or a duration such as "
              "\"15m\", got \"fortnightly\"");
    CHECK_STR(parse_err("", NULL, NULL, 0),
              "every: expected hourly, daily, weekly or a duration such as "
              "\"15m\", got \"\"");
    CHECK_STR(parse_err("30s", NULL, NULL, 0),
              "every: duration \"30s\" is shorter than 1m");
    CHECK_STR(parse_err("400d", NULL, NULL, 0),
              "every: duration \"400d\" is longer than 366d");
    CHECK_STR(parse_err("hourly", "02:00", NULL, 0),
              "at: only allowed with every: daily or weekly");
    CHECK_STR(parse_err(NULL, "02:00", "0 2 * * *", 0),
              "at: only allowed with every: daily or weekly");
    CHECK_STR(parse_err("daily", "25:00", NULL, 0),
              "at: expected HH:MM, got \"25:00\"");
    CHECK_STR(parse_err("daily", "2:5", NULL, 0),
              "at: expected HH:MM, got \"2:5\"");
    CHECK_STR(parse_err("daily", "Mon 02:00", NULL, 0),
              "at: expected HH:MM, got \"Mon 02:00\"");
    CHECK_STR(parse_err("weekly", "Mo 02:00", NULL, 0),
              "at: expected \"Day HH:MM\" (Day one of Sun..Sat) or "
              "\"HH:MM\", got \"Mo 02:00\"");
    CHECK_STR(parse_err("hourly", NULL, NULL, 30000000000LL),
              "window: must be 0 or at least 1m, got 30000000000 ns");
    CHECK_STR(parse_err(NULL, NULL, "0 0 * *", 0),
              "cron: expected 5 fields (minute hour day-of-month month "
              "day-of-week), got 4");
    CHECK_STR(parse_err(NULL, NULL, "0 0 * * * *", 0),
              "cron: expected 5 fields (minute hour day-of-month month "
              "day-of-week), got 6");
    CHECK_STR(parse_err(NULL, NULL, "0 24 * * *", 0),
              "cron: field 2 (hour): 24 is out of range 0-23");
    CHECK_STR(parse_err(NULL, NULL, "60 0 * * *", 0),
              "cron: field 1 (minute): 60 is out of range 0-59");
    CHECK_STR(parse_err(NULL, NULL, "0 0 0 * *", 0),
              "cron: field 3 (day-of-month): 0 is out of range 1-31");
    CHECK_STR(parse_err(NULL, NULL, "0 0 * 13 *", 0),
              "cron: field 4 (month): 13 is out of range 1-12");
    CHECK_STR(parse_err(NULL, NULL, "0 0 * * 8", 0),
              "cron: field 5 (day-of-week): 8 is out of range 0-7");
    CHECK_STR(parse_err(NULL, NULL, "*/0 * * * *", 0),
              "cron: field 1 (minute): invalid step in \"*/0\"");
    CHECK_STR(parse_err(NULL, NULL, "a * * * *", 0),
              "cron: field 1 (minute): invalid number \"a\"");
    CHECK_STR(parse_err(NULL, NULL, "0 0 * foo *", 0),
              "cron: field 4 (month): unknown value \"foo\"");
    CHECK_STR(parse_err(NULL, NULL, "0 0 * * mon-x", 0),
              "cron: field 5 (day-of-week): unknown value \"x\"");
    CHECK_STR(parse_err(NULL, NULL, "0 0 10-5 * *", 0),
              "cron: field 3 (day-of-month): range is reversed in \"10-5\"");
    CHECK_STR(parse_err(NULL, NULL, "0,,5 * * * *", 0),
              "cron: field 1 (minute): empty list element in \"0,,5\"");
    CHECK_STR(parse_err(NULL, NULL, "0 1- * * *", 0),
              "cron: field 2 (hour): empty value");
    CHECK_STR(parse_err(NULL, NULL, "0 0 31 2 *", 0),
              "cron: \"0 0 31 2 *\" never fires (no allowed day-of-month "
              "exists in the allowed months)");
    CHECK_STR(parse_err(NULL, NULL, "0 0 31 4,6,9,11 *", 0),
              "cron: \"0 0 31 4,6,9,11 *\" never fires (no allowed "
              "day-of-month exists in the allowed months)");
}

TEST(parse_ok)
{
    halo_sched_spec s;
    halo_err err = {{0}};
    CHECK_INT(halo_sched_parse(NULL, NULL, "*/15 9-17 * * mon-fri", 0, NULL, &s,
                               &err),
              HALO_OK);
    CHECK_INT(s.every, HALO_EVERY_CRON);
    CHECK(s.cron.minutes == (1ull | 1ull << 15 | 1ull << 30 | 1ull << 45));
    CHECK_INT(s.cron.hours, 0x3fe00);
    CHECK_INT(s.cron.wdays, 0x3e);
    CHECK(s.cron.mday_star && !s.cron.wday_star);
    CHECK(s.tz != NULL); /* UTC when none given */
    CHECK_INT(
        halo_sched_parse(NULL, NULL, "0 12 * JAN,dec 7", 0, NULL, &s, &err),
        HALO_OK);
    CHECK_INT(s.cron.wdays, 1);
    CHECK_INT(s.cron.months, 1 << 1 | 1 << 12);
    CHECK_INT(halo_sched_parse(NULL, NULL, "0 0 1-10/3,5/10 * 5-7", 0, NULL, &s,
                               &err),
              HALO_OK);
    CHECK_INT(s.cron.mdays,
              1 << 1 | 1 << 4 | 1 << 5 | 1 << 7 | 1 << 10 | 1 << 15 | 1 << 25);
    CHECK_INT(s.cron.wdays, 1 << 5 | 1 << 6 | 1);
    CHECK_INT(halo_sched_parse(NULL, NULL, "0 0 29 2 *", 0, NULL, &s, &err),
              HALO_OK);
    CHECK_INT(
        halo_sched_parse("weekly", "friday 17:30", NULL, 0, NULL, &s, &err),
        HALO_OK);
    CHECK_INT(s.at_wday, 5);
    CHECK_INT(s.at_minute, 17 * 60 + 30);
    CHECK_INT(halo_sched_parse("weekly", "9:05", NULL, 0, NULL, &s, &err),
              HALO_OK);
    CHECK_INT(s.at_wday, 1);
    CHECK_INT(s.at_minute, 9 * 60 + 5);
    CHECK_INT(
        halo_sched_parse("1h30m", NULL, NULL, 3600000000000LL, NULL, &s, &err),
        HALO_OK);
    CHECK_INT(s.every, HALO_EVERY_DURATION);
    CHECK_INT(s.period_s, 5400);
    CHECK_INT(s.window_s, 3600);
    CHECK_INT(halo_sched_parse("Daily", NULL, NULL, 0, NULL, &s, &err),
              HALO_OK);
    CHECK_INT(s.every, HALO_EVERY_DAILY);
    CHECK_INT(s.at_minute, 0);
}

/* ---- fire times ------------------------------------------------------------
 */

TEST(hourly_alignment)
{
    halo_sched_spec s = spec("hourly", NULL, NULL, NULL);
    int64_t ten = Z("2026-11-23T10:00");
    CHECK_INT(halo_sched_prev(&s, ten), ten);
    CHECK_INT(halo_sched_prev(&s, ten + 3599), ten);
    CHECK_INT(halo_sched_prev(&s, ten - 1), ten - 3600);
    CHECK_INT(halo_sched_next(&s, ten), ten + 3600);
    CHECK_INT(halo_sched_next(&s, ten - 1), ten);
    CHECK_INT(window_start(&s, ten), Z("2026-11-23T09:00")); /* [09, 10) */
    /* local full hours: Kolkata is +05:30 */
    halo_tz *kol = zone("Asia/Kolkata");
    CHECK(kol);
    s = spec("hourly", NULL, NULL, kol);
    CHECK_INT(halo_sched_prev(&s, ten), Z("2026-11-23T09:30"));
    CHECK_INT(halo_sched_next(&s, ten), Z("2026-11-23T10:30"));
    halo_tz_free(kol);
    /* Paris: every UTC hour is a local full hour, folds included */
    halo_tz *par = zone("Europe/Paris");
    CHECK(par);
    s = spec("hourly", NULL, NULL, par);
    int64_t fall = Z("2026-10-25T01:00");
    CHECK_INT(halo_sched_prev(&s, fall + 10), fall);
    CHECK_INT(window_start(&s, fall), fall - 3600);
    CHECK_INT(halo_sched_next(&s, fall), fall + 3600);
    halo_tz_free(par);
}

TEST(daily_utc_and_paris_dst)
{
    halo_sched_spec s = spec("daily", "02:00", NULL, NULL);
    int64_t f = Z("2026-11-23T02:00");
    CHECK_INT(halo_sched_prev(&s, Z("2026-11-23T10:00")), f);
    CHECK_INT(halo_sched_prev(&s, f), f);
    CHECK_INT(halo_sched_next(&s, f), f + 86400);
    CHECK_INT(window_start(&s, f), f - 86400);

    halo_tz *par = zone("Europe/Paris");
    CHECK(par);
    s = spec("daily", "02:00", NULL, par);
    /* spring: 02:00 on Mar 29 does not exist, fires at the jump (01:00Z) */
    int64_t d28 = Z("2026-03-28T01:00"), d29 = Z("2026-03-29T01:00");
    int64_t d30 = Z("2026-03-30T00:00");
    CHECK_INT(halo_sched_next(&s, d28), d29);
    CHECK_INT(halo_sched_next(&s, d29), d30);
    CHECK_INT(halo_sched_prev(&s, d30 - 1), d29);
    CHECK_INT(window_start(&s, d29), d28);
    CHECK_INT(window_start(&s, d30), d29);
    CHECK_INT(d30 - window_start(&s, d30), 23 * 3600);
    /* fall: 02:00 on Oct 25 happens twice, fires once (first, CEST) */
    int64_t o24 = Z("2026-10-24T00:00"), o25 = Z("2026-10-25T00:00");
    int64_t o26 = Z("2026-10-26T01:00");
    CHECK_INT(halo_sched_next(&s, o24), o25);
    CHECK_INT(halo_sched_next(&s, o25), o26);
    CHECK_INT(halo_sched_prev(&s, Z("2026-10-25T01:30")), o25);
    CHECK_INT(window_start(&s, o25), o24);
    CHECK_INT(o26 - window_start(&s, o26), 25 * 3600);
    /* far future, footer rule */
    CHECK_INT(halo_sched_next(&s, Z("2100-03-27T12:00")),
              Z("2100-03-28T01:00"));
    /* default at: local midnight */
    s = spec("daily", NULL, NULL, par);
    CHECK_INT(halo_sched_prev(&s, Z("2026-11-23T10:00")),
              Z("2026-11-22T23:00"));
    halo_tz_free(par);
}

TEST(weekly_monday)
{
    /* 2026-11-23 is a Monday */
    halo_sched_spec s = spec("weekly", "Mon 02:00", NULL, NULL);
    int64_t f = Z("2026-11-23T02:00");
    CHECK_INT(halo_sched_prev(&s, Z("2026-11-25T12:00")), f);
    CHECK_INT(halo_sched_prev(&s, f - 1), f - 7 * 86400);
    CHECK_INT(halo_sched_next(&s, f), f + 7 * 86400);
    CHECK_INT(window_start(&s, f), Z("2026-11-16T02:00"));
    s = spec("weekly", "02:00", NULL, NULL); /* Monday by default */
    CHECK_INT(halo_sched_prev(&s, Z("2026-11-25T12:00")), f);
    s = spec("weekly", NULL, NULL, NULL);
    CHECK_INT(halo_sched_prev(&s, Z("2026-11-25T12:00")),
              Z("2026-11-23T00:00"));
    s = spec("weekly", "SUNDAY 23:59", NULL, NULL);
    CHECK_INT(halo_sched_next(&s, f), Z("2026-11-29T23:59"));
}

TEST(duration_alignment)
{
    halo_sched_spec s = spec("15m", NULL, NULL, NULL);
    int64_t t = Z("2026-11-23T10:07");
    CHECK_INT(halo_sched_prev(&s, t), Z("2026-11-23T10:00"));
    CHECK_INT(halo_sched_next(&s, t), Z("2026-11-23T10:15"));
    CHECK_INT(window_start(&s, Z("2026-11-23T10:00")), Z("2026-11-23T09:45"));
    /* 7h does not divide a day: multiples of 7h since the epoch, any zone */
    halo_tz *par = zone("Europe/Paris");
    CHECK(par);
    s = spec("7h", NULL, NULL, par);
    int64_t ten = Z("2026-11-23T10:00");             /* 1795428000 */
    CHECK_INT(halo_sched_prev(&s, ten), 1795424400); /* 71247 * 25200 */
    CHECK_INT(halo_sched_next(&s, ten), 1795424400 + 25200);
    CHECK_INT(window_start(&s, 1795424400), 1795424400 - 25200);
    /* 6h divides a day: 00, 06, 12, 18 local (CET = UTC+1) */
    s = spec("6h", NULL, NULL, par);
    CHECK_INT(halo_sched_prev(&s, ten), Z("2026-11-23T05:00"));
    CHECK_INT(halo_sched_next(&s, ten), Z("2026-11-23T11:00"));
    /* 15m across the spring jump: 01:45 CET then 03:00 CEST, 15m apart */
    s = spec("15m", NULL, NULL, par);
    int64_t jump = Z("2026-03-29T01:00");
    CHECK_INT(halo_sched_next(&s, jump - 1), jump);
    CHECK_INT(window_start(&s, jump), jump - 900);
    halo_tz_free(par);
    /* Lord Howe: 1h grid shifts by 30 min at the DST change */
    halo_tz *lh = zone("Australia/Lord_Howe");
    CHECK(lh);
    s = spec("1h", NULL, NULL, lh);
    /* 01:00 +10:30 = 14:30Z; next full local hour 03:00 +11 = 16:00Z */
    CHECK_INT(halo_sched_next(&s, Z("2026-10-03T14:30")),
              Z("2026-10-03T16:00"));
    CHECK_INT(halo_sched_prev(&s, Z("2026-10-03T15:59")),
              Z("2026-10-03T14:30"));
    halo_tz_free(lh);
}

TEST(cron_business_hours)
{
    halo_sched_spec s = spec(NULL, NULL, "*/15 9-17 * * mon-fri", NULL);
    CHECK_INT(halo_sched_prev(&s, Z("2026-11-23T10:07")),
              Z("2026-11-23T10:00"));
    CHECK_INT(halo_sched_next(&s, Z("2026-11-23T10:07")),
              Z("2026-11-23T10:15"));
    CHECK_INT(halo_sched_next(&s, Z("2026-11-23T17:45")),
              Z("2026-11-24T09:00"));
    /* Friday evening -> Monday morning */
    CHECK_INT(halo_sched_next(&s, Z("2026-11-27T17:50")),
              Z("2026-11-30T09:00"));
    CHECK_INT(halo_sched_prev(&s, Z("2026-11-28T12:00")),
              Z("2026-11-27T17:45"));
    CHECK_INT(window_start(&s, Z("2026-11-30T09:00")), Z("2026-11-27T17:45"));
    CHECK_INT(window_start(&s, Z("2026-11-30T09:15")), Z("2026-11-30T09:00"));
}

TEST(cron_days)
{
    halo_sched_spec s = spec(NULL, NULL, "0 0 1,15 * *", NULL);
    CHECK_INT(halo_sched_next(&s, Z("2026-11-23T00:00")),
              Z("2026-12-01T00:00"));
    CHECK_INT(halo_sched_next(&s, Z("2026-12-01T00:00")),
              Z("2026-12-15T00:00"));
    CHECK_INT(window_start(&s, Z("2026-12-01T00:00")), Z("2026-11-15T00:00"));
    /* 7 is Sunday, like 0 and sun */
    const char *sundays[] = {"0 12 * * 7", "0 12 * * 0", "0 12 * * SUN"};
    for (int i = 0; i < 3; i++) {
        s = spec(NULL, NULL, sundays[i], NULL);
        CHECK_INT(halo_sched_next(&s, Z("2026-11-23T00:00")),
                  Z("2026-11-29T12:00"));
        CHECK_INT(halo_sched_prev(&s, Z("2026-11-23T00:00")),
                  Z("2026-11-22T12:00"));
    }
    /* both restricted: a day matching either fires (Fridays and the 13th) */
    s = spec(NULL, NULL, "0 0 13 * fri", NULL);
    CHECK_INT(halo_sched_next(&s, Z("2026-11-23T00:00")),
              Z("2026-11-27T00:00"));
    CHECK_INT(halo_sched_next(&s, Z("2026-12-11T00:00")),
              Z("2026-12-13T00:00")); /* a Sunday, by day-of-month */
    CHECK_INT(halo_sched_next(&s, Z("2026-12-13T00:00")),
              Z("2026-12-18T00:00"));
    /* Vixie: "*\/2" counts as unrestricted, so both must match */
    s = spec(NULL, NULL, "0 0 */2 * fri", NULL);
    CHECK_INT(halo_sched_next(&s, Z("2026-11-23T00:00")),
              Z("2026-11-27T00:00"));
    CHECK_INT(halo_sched_next(&s, Z("2026-11-27T00:00")),
              Z("2026-12-11T00:00"));
    /* Feb 29: every 4 years, and 2100 is not a leap year */
    s = spec(NULL, NULL, "0 0 29 2 *", NULL);
    CHECK_INT(halo_sched_next(&s, Z("2026-11-23T00:00")),
              Z("2028-02-29T00:00"));
    CHECK_INT(halo_sched_next(&s, Z("2096-03-01T00:00")),
              Z("2104-02-29T00:00"));
    CHECK_INT(halo_sched_prev(&s, Z("2104-02-28T00:00")),
              Z("2096-02-29T00:00"));
}

TEST(cron_dst)
{
    halo_tz *par = zone("Europe/Paris");
    CHECK(par);
    int64_t jump = Z("2026-03-29T01:00"), fold = Z("2026-10-25T01:00");
    /* a skipped time fires at the jump, once */
    halo_sched_spec s = spec(NULL, NULL, "30 2 * * *", par);
    CHECK_INT(halo_sched_next(&s, Z("2026-03-28T12:00")), jump);
    CHECK_INT(halo_sched_next(&s, jump), Z("2026-03-30T00:30"));
    s = spec(NULL, NULL, "*/15 * * * *", par);
    CHECK_INT(halo_sched_next(&s, jump - 900), jump);
    CHECK_INT(halo_sched_next(&s, jump), jump + 900);
    CHECK_INT(halo_sched_prev(&s, jump + 899), jump);
    CHECK_INT(window_start(&s, jump), jump - 900);
    /* a repeated time fires once, at its first occurrence */
    s = spec(NULL, NULL, "*/30 * * * *", par);
    CHECK_INT(halo_sched_next(&s, fold - 3600), fold - 1800); /* 02:30 */
    CHECK_INT(halo_sched_next(&s, fold - 1800), fold + 3600); /* 03:00 CET */
    CHECK_INT(halo_sched_prev(&s, fold + 2700), fold - 1800);
    CHECK_INT(window_start(&s, fold + 3600), fold - 1800);
    halo_tz_free(par);
    /* Lord Howe: 02:15 does not exist on Oct 4 (02:00 -> 02:30) */
    halo_tz *lh = zone("Australia/Lord_Howe");
    CHECK(lh);
    s = spec("daily", "02:15", NULL, lh);
    CHECK_INT(halo_sched_next(&s, Z("2026-10-03T00:00")),
              Z("2026-10-03T15:30"));
    CHECK_INT(halo_sched_next(&s, Z("2026-10-03T15:30")),
              Z("2026-10-04T15:15"));
    halo_tz_free(lh);
}

TEST(grace_and_catch_up)
{
    halo_sched_spec s = spec("hourly", NULL, NULL, NULL);
    int64_t ten = Z("2026-11-23T10:00"), out[8];
    /* the 10:00 run is due only at 10:05 with a 5m grace */
    CHECK_INT(halo_sched_due(&s, ten + 299, 300, out, 1), 1);
    CHECK_INT(out[0], ten - 3600);
    CHECK_INT(halo_sched_due(&s, ten + 300, 300, out, 1), 1);
    CHECK_INT(out[0], ten);
    /* catch-up: newest first, at most max */
    CHECK_INT(halo_sched_due(&s, ten + 300, 300, out, 3), 3);
    CHECK_INT(out[0], ten);
    CHECK_INT(out[1], ten - 3600);
    CHECK_INT(out[2], ten - 7200);
    CHECK_INT(halo_sched_due(&s, ten + 300, 300, out, 0), 0);
    s = spec("daily", "02:00", NULL, NULL);
    CHECK_INT(halo_sched_due(&s, ten, 3600, out, 2), 2);
    CHECK_INT(out[0], Z("2026-11-23T02:00"));
    CHECK_INT(out[1], Z("2026-11-22T02:00"));
}

TEST(window_override)
{
    halo_sched_spec s;
    halo_err err = {{0}};
    CHECK_INT(
        halo_sched_parse("hourly", NULL, NULL, 7200000000000LL, NULL, &s, &err),
        HALO_OK);
    int64_t ten = Z("2026-11-23T10:00"), start;
    halo_sched_window(&s, ten, &start);
    CHECK_INT(start, ten - 7200);
    CHECK_INT(halo_sched_parse(NULL, NULL, "0 9 * * mon-fri", 86400000000000LL,
                               NULL, &s, &err),
              HALO_OK);
    halo_sched_window(&s, Z("2026-11-30T09:00"), &start); /* Monday */
    CHECK_INT(start, Z("2026-11-29T09:00"));
}

/* prev/next agree with each other at many instants, in several zones. */
TEST(prev_next_consistency)
{
    const char *zones[] = {"UTC", "Europe/Paris", "Australia/Lord_Howe",
                           "America/New_York"};
    struct {
        const char *every, *at, *cron;
    } specs[] = {
        {"hourly", NULL, NULL},
        {"15m", NULL, NULL},
        {"7h", NULL, NULL},
        {"daily", "02:30", NULL},
        {"weekly", "Sun 01:45", NULL},
        {NULL, NULL, "*/20 1-3 * * *"},
        {NULL, NULL, "0 0 13 * fri"},
        {NULL, NULL, "0 0 29 2 *"},
    };
    uint64_t rng = 42;
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        halo_tz *tz = zone(zones[z]);
        CHECK(tz);
        for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
            halo_sched_spec s =
                spec(specs[k].every, specs[k].at, specs[k].cron, tz);
            for (int i = 0; i < 300; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                /* 2020..2110, biased to DST change days */
                int64_t t = Z("2020-01-01T00:00") +
                            (int64_t)(rng >> 33) % (90LL * 365 * 86400);
                if (i % 2)
                    t = Z("2026-03-29T00:00") + (int64_t)(rng >> 40) % 7200 +
                        (i % 4 == 1 ? 0 : 210 * 86400);
                int64_t p = halo_sched_prev(&s, t);
                int64_t n = halo_sched_next(&s, t);
                CHECK(p <= t && n > t);
                CHECK_INT(halo_sched_next(&s, p), n);
                CHECK_INT(halo_sched_prev(&s, n), n);
                CHECK_INT(halo_sched_prev(&s, n - 1), p);
            }
        }
        halo_tz_free(tz);
    }
}
