/*
 * log.h -- leveled logging to stderr with per-component prefixes.
 *
 * A line looks like:
 *   2026-11-22T15:41:29.123Z info  [receiver:otlp] listening on 127.0.0.1:4317
 * (grpc) The prefix names the component instance ("exporter:sqlite",
 * "processor:batch/fast") or the subsystem ("service", "cli"). Thread-safe: one
 * write(2) per line.
 */
#ifndef HALO_LOG_H
#define HALO_LOG_H

#include <pthread.h>
#include <stdint.h>

enum halo_log_level {
    HALO_LOG_DEBUG = 0,
    HALO_LOG_INFO = 1,
    HALO_LOG_WARN = 2,
    HALO_LOG_ERROR = 3,
    HALO_LOG_OFF = 4,
};

extern int halo_log_min_level;

void halo_log_set_level(int level);
/* "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int halo_log_level_parse(const char *name);
void halo_log(int level, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define HALO_LOG_AT(lvl, prefix, ...)                                          \
    do {                                                                       \
        if ((lvl) >= halo_log_min_level)                                       \
            halo_log((lvl), (prefix), __VA_ARGS__);                            \
    } while (0)
#define LOG_DEBUG(prefix, ...) HALO_LOG_AT(HALO_LOG_DEBUG, prefix, __VA_ARGS__)
#define LOG_INFO(prefix, ...) HALO_LOG_AT(HALO_LOG_INFO, prefix, __VA_ARGS__)
#define LOG_WARN(prefix, ...) HALO_LOG_AT(HALO_LOG_WARN, prefix, __VA_ARGS__)
#define LOG_ERROR(prefix, ...) HALO_LOG_AT(HALO_LOG_ERROR, prefix, __VA_ARGS__)

/* One line at most per interval for an event that may come in floods
 * (refused requests, limits hit): halo_log_every_hit counts the event and
 * returns 0 while the last line is younger than interval_ns; otherwise the
 * number of events since that line, this one included, and the caller
 * writes its line. Thread-safe. */
typedef struct halo_log_every {
    pthread_mutex_t mu;
    uint64_t last_ns; /* monotonic; 0: no line yet */
    uint64_t count;   /* events since the last line */
} halo_log_every;

void halo_log_every_init(halo_log_every *e);
void halo_log_every_destroy(halo_log_every *e);
uint64_t halo_log_every_hit(halo_log_every *e, uint64_t interval_ns);

#endif
