/*
 * clock.h -- the two clocks halo reads, in nanoseconds.
 *
 * halo_mono_ns() measures intervals and deadlines (CLOCK_MONOTONIC, also the
 * clock of every condition variable that waits with a deadline);
 * halo_real_ns() is wall time since the epoch, for timestamps and
 * retention cut-offs.
 */
#ifndef HALO_CLOCK_H
#define HALO_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t halo_ns_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static inline uint64_t halo_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return halo_ns_of(&ts);
}

static inline uint64_t halo_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return halo_ns_of(&ts);
}

/* A deadline in nanoseconds as the timespec pthread_cond_timedwait wants. */
static inline struct timespec halo_timespec_of(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    return ts;
}

#endif
