/*
 * fuzz_tzif.c -- libFuzzer target for the TZif reader (analyzer/tz.c).
 *
 * The input is parsed as a TZif image from memory (halo_tz_parse, the
 * file-less half of halo_tz_load). When it parses, the zone is queried the
 * way the scheduler does: offsets, civil conversions both ways and the
 * transition walks, at instants derived from the input plus fixed far past
 * and far future ones, and fire times of a grid and a wall-clock schedule.
 * Every error must carry a message; everything is freed (LeakSanitizer).
 */
#include "analyzer/schedule.h"
#include "analyzer/tz_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void query(const halo_tz *tz, int64_t t)
{
    halo_civil c;
    halo_tz_to_civil(tz, t, &c);
    int64_t back = halo_tz_from_civil(tz, &c);
    (void)back;
    (void)halo_tz_offset(tz, t);
    (void)halo_tz_next_transition(tz, t);
    (void)halo_tz_prev_transition(tz, t);
}

static void schedules(const halo_tz *tz, int64_t t)
{
    static const char *const crons[] = {"*/15 * * * *", "30 2 * * *"};
    halo_sched_spec s;
    halo_err err;
    int64_t out[4];
    for (int i = 0; i < 2; i++) {
        if (halo_sched_parse(NULL, NULL, crons[i], 0, tz, &s, &err) != HALO_OK)
            abort();
        (void)halo_sched_next(&s, t);
        (void)halo_sched_due(&s, t, 60, out, 4);
    }
    if (halo_sched_parse("15m", NULL, NULL, 0, tz, &s, &err) != HALO_OK)
        abort();
    (void)halo_sched_next(&s, t);
    (void)halo_sched_due(&s, t, 60, out, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_tz *tz = NULL;
    halo_err err = {{0}};
    if (halo_tz_parse("Fuzz/Zone", data, size, &tz, &err) != HALO_OK) {
        if (tz || !err.msg[0])
            abort(); /* failures leave no zone and say something */
        return 0;
    }
    static const int64_t fixed[] = {INT64_MIN,  -(1LL << 40), 0,
                                    1774746000, 4109878800LL, 1LL << 40,
                                    INT64_MAX};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        query(tz, fixed[i]);
    int64_t t = 1774746000;
    if (size >= 8) {
        memcpy(&t, data + size - 8, 8);
        query(tz, t);
        t = 1774746000 + (t % (200LL * 365 * 86400));
    }
    query(tz, t);
    schedules(tz, t);
    halo_tz_free(tz);
    return 0;
}
