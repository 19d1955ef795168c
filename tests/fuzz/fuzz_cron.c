/*
 * fuzz_cron.c -- libFuzzer target for the schedule parser and fire-time
 * arithmetic (analyzer/schedule.c).
 *
 * The first byte picks which field the rest feeds (cron, every, or every +
 * at with daily/weekly) and the zone (UTC or, when the tzdata package is
 * installed, Europe/Paris); the text is NUL-terminated. When it parses, the
 * spec's prev/next/window/due run at a few instants, including DST change
 * days and the far future, and their results must be consistent: prev(t)
 * <= t < next(t). Every error must carry a message.
 */
#include "analyzer/schedule.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static halo_tz *paris;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    halo_err err;
    if (halo_tz_load("Europe/Paris", &paris, &err) != HALO_OK)
        paris = NULL;
    return 0;
}

static void exercise(const halo_sched_spec *s)
{
    static const int64_t ts[] = {
        0,          1774745999,   1774746000,   1792889999,
        1792890000, 4109878800LL, -4000000000LL};
    int64_t out[3], start;
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        int64_t p = halo_sched_prev(s, ts[i]);
        int64_t n = halo_sched_next(s, ts[i]);
        if (p > ts[i] || n <= ts[i])
            abort();
        if (p != INT64_MIN)
            halo_sched_window(s, p, &start);
        (void)halo_sched_due(s, ts[i], 300, out, 3);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 512)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const halo_tz *tz = (data[0] & 0x80) && paris ? paris : NULL;
    const char *every = NULL, *at = NULL, *cron = NULL;
    switch (data[0] & 3) {
    case 0:
        cron = text;
        break;
    case 1:
        every = text;
        break;
    case 2:
        every = "daily";
        at = text;
        break;
    default:
        every = "weekly";
        at = text;
        break;
    }
    halo_sched_spec s;
    halo_err err = {{0}};
    int64_t window = (data[0] & 0x40) ? 3600000000000LL : 0;
    if (halo_sched_parse(every, at, cron, window, tz, &s, &err) == HALO_OK)
        exercise(&s);
    else if (!err.msg[0])
        abort();
    free(text);
    return 0;
}
