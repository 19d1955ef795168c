/*
 * config_internal.h -- what the three parts of the config module share.
 *
 * config.h is split in three files by concern:
 *   config.c         the error list and the scalar parsers (durations,
 *                    sizes, booleans) plus their inverse for messages
 *   config_yaml.c    libyaml events -> halo_node tree, ${...} substitution
 *   config_schema.c  halo_field tables: apply, release, describe
 * Nothing here is for use outside core/config*.c.
 */
#ifndef HALO_CONFIG_INTERNAL_H
#define HALO_CONFIG_INTERNAL_H

#include "config.h"

#include <stdarg.h>

/* Limits that keep hostile YAML (deep nesting, alias bombs, huge maps)
 * bounded. Keys are per mapping: duplicate checks are linear per key. */
#define HALO_CONFIG_MAX_DEPTH 64
#define HALO_CONFIG_MAX_NODES 100000
#define HALO_CONFIG_MAX_KEYS 4096
#define HALO_CONFIG_MAX_ANCHORS 1024 /* each alias looks them up linearly */
#define HALO_CONFIG_MAX_FILE (16 * 1024 * 1024)

/* Append "file:line:col: <message>" without a node (file may be NULL: then
 * just the message). Returns false when the message could not be stored
 * (allocation failure), so callers that count errors can count anyway. */
bool halo_errlist_addloc(halo_errlist *l, const char *file, int line, int col,
                         const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
bool halo_errlist_vaddloc(halo_errlist *l, const char *file, int line, int col,
                          const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* halo_format_duration is in config.h. Write a size in the largest unit
 * that divides it exactly ("64MiB", "10MB", "1000B"). */
void halo_format_size(int64_t bytes, char *out, size_t cap);

#endif
