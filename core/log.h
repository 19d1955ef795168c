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

#endif
