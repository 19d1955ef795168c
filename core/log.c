/*
 * log.c -- leveled logging (log.h).
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so lines from different threads never interleave. Timestamps are UTC with
 * millisecond precision; the level is padded so prefixes line up.
 *
 * Every line is scrubbed of the registered secret values (core/secret.h)
 * before it is written: whatever a component or a library puts in a
 * message, a password, token or API key the configuration holds shows as
 * "***". That is one strstr per registered secret per line, and log lines
 * are not a hot path.
 */
#include "log.h"
#include "clock.h"
#include "secret.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int halo_log_min_level = HALO_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "off"};

void halo_log_set_level(int level)
{
    if (level >= HALO_LOG_DEBUG && level <= HALO_LOG_OFF)
        halo_log_min_level = level;
}

int halo_log_level_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i <= HALO_LOG_OFF; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return HALO_LOG_WARN;
    return -1;
}

void halo_log(int level, const char *prefix, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (level < HALO_LOG_DEBUG || level > HALO_LOG_ERROR)
        level = HALO_LOG_ERROR;
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level], prefix ? prefix : "halo");
    if (n < 0)
        return;
    if ((size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n] = '\0';
    if (halo_secret_scrub(line, sizeof line - 1))
        n = (int)strlen(line);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void halo_log_every_init(halo_log_every *e)
{
    pthread_mutex_init(&e->mu, NULL);
    e->last_ns = 0;
    e->count = 0;
}

void halo_log_every_destroy(halo_log_every *e)
{
    pthread_mutex_destroy(&e->mu);
}

uint64_t halo_log_every_hit(halo_log_every *e, uint64_t interval_ns)
{
    uint64_t now = halo_mono_ns(), n = 0;
    pthread_mutex_lock(&e->mu);
    e->count++;
    if (e->last_ns == 0 || now - e->last_ns >= interval_ns) {
        n = e->count;
        e->count = 0;
        e->last_ns = now ? now : 1;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}
