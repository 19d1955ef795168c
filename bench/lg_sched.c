/*
 * lg_sched.c -- when halo-loadgen starts the next request.
 *
 * Closed loop (no --rate): a request starts whenever a connection slot is
 * free; the run measures the peak the daemon sustains.
 *
 * Open loop (--rate R spans/s): requests are due on a fixed timetable, one
 * every spans_per_request / R seconds, whatever the answers do. A request
 * that finds no free slot waits, and its latency is counted from the time it
 * was due, not from when it was finally sent -- otherwise a stalled daemon
 * would hide its own stall (coordinated omission).
 *
 * Both stop issuing after --duration seconds or --requests requests,
 * whichever comes first; the drivers then wait for the requests in flight.
 */
#include "lg.h"

#include <time.h>

double lg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void lg_sched_init(lg_sched *s, const lg_opts *o, int spans_per_request,
                   double now)
{
    s->o = o;
    s->t_start = now;
    s->next_due = now;
    s->interval = o->rate > 0 ? (double)spans_per_request / o->rate : 0;
    s->issued = 0;
    s->stopped = false;
    s->late_max = 0;
}

bool lg_sched_done(lg_sched *s, double now)
{
    if (s->stopped)
        return true;
    if (s->o->requests && s->issued >= s->o->requests)
        s->stopped = true;
    if (s->o->duration_s > 0 && now >= s->t_start + s->o->duration_s)
        s->stopped = true;
    return s->stopped;
}

bool lg_sched_take(lg_sched *s, double now, double *sched_time)
{
    if (lg_sched_done(s, now))
        return false;
    if (s->interval > 0) {
        if (s->next_due > now)
            return false;
        *sched_time = s->next_due;
        s->next_due += s->interval;
        if (now - *sched_time > s->late_max)
            s->late_max = now - *sched_time;
    } else {
        *sched_time = now;
    }
    s->issued++;
    return true;
}

double lg_sched_wait(const lg_sched *s, double now, double cap)
{
    double w = cap;
    if (!s->stopped && s->o->duration_s > 0 &&
        s->t_start + s->o->duration_s - now < w)
        w = s->t_start + s->o->duration_s - now;
    if (!s->stopped && s->interval > 0 && s->next_due - now < w)
        w = s->next_due - now;
    return w > 0 ? w : 0;
}
