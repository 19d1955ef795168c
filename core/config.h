/*
 * config.h -- halo.yaml: a generic tree, variable substitution, and schema
 * validation into typed structs.
 *
 * The YAML is parsed with libyaml into halo_node trees that remember
 * file:line:col. ${env:VAR}, ${VAR} and ${env:VAR:-default} are substituted
 * in scalars as they are read; $$ is a literal $. Components never see the
 * tree: each declares a schema (a halo_field table) and the core fills the
 * component's config struct from its section, reporting unknown keys, wrong
 * types and out-of-range values with file:line. Every error is collected in
 * a halo_errlist so `halo validate` can list them all. Secrets
 * (HALO_F_SECRET fields, secret pass-through options) never appear in an
 * error: every message added to a halo_errlist is scrubbed of the secret
 * values read so far (core/secret.h).
 */
#ifndef HALO_CONFIG_H
#define HALO_CONFIG_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error list ------------------------------------------------------- */

typedef struct halo_errlist {
    char **msgs; /* "file:line:col: message" */
    size_t n;
    size_t cap;
} halo_errlist;

typedef struct halo_node halo_node;

/* Append "file:line:col: <fmt>" (location from at; at may be NULL). */
void halo_errlist_add(halo_errlist *l, const halo_node *at, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));
void halo_errlist_free(halo_errlist *l);

/* ---- the generic tree ------------------------------------------------- */

typedef enum halo_node_type {
    HALO_NODE_NULL = 0, /* empty value, "~" or "null" */
    HALO_NODE_SCALAR,
    HALO_NODE_MAP,
    HALO_NODE_SEQ,
} halo_node_type;

/* A map value's location is its key's (errors point at the key). */
struct halo_node {
    halo_node_type type;
    char *value;       /* SCALAR: text after substitution */
    bool quoted;       /* SCALAR: written in quotes */
    char **keys;       /* MAP: keys[i] names items[i] */
    halo_node **items; /* MAP values / SEQ elements */
    size_t n;
    const char *file; /* shared, owned by the root */
    int line;         /* 1-based */
    int col;          /* 1-based */
};

/* Parse YAML text. name is used in error locations. Returns NULL and adds
 * to errs on any error (syntax errors with their line, undefined variables
 * without a default, duplicate keys). */
halo_node *halo_config_parse(const char *text, size_t len, const char *name,
                             halo_errlist *errs);
/* Read and parse a file. */
halo_node *halo_config_parse_file(const char *path, halo_errlist *errs);
void halo_node_free(halo_node *root);

/* MAP lookup; NULL when absent or when map is not a MAP. */
const halo_node *halo_node_get(const halo_node *map, const char *key);

/* ---- scalars ---------------------------------------------------------- */

/* "200ms", "5s", "1m", "1h", "720h", "1h30m", "0"; also "us"/"ns"/"d".
 * Result in nanoseconds. */
bool halo_parse_duration(const char *s, int64_t *ns);

/* The name in names (NULL-terminated) that key most likely misspells
 * (at most two edits away, and fewer edits than the name is long), or
 * NULL: the "did you mean" of config errors. */
const char *halo_config_closest(const char *key, const char *const *names);

/* ns as the config would write it, in the largest unit that divides it
 * exactly ("1h", "90m", "1500ms", "720h"). */
void halo_format_duration(int64_t ns, char *out, size_t cap);

/* "64MiB", "1GiB", "512KiB", "1000000", "10MB" (SI), "1KB". In bytes. */
bool halo_parse_size(const char *s, int64_t *bytes);
bool halo_parse_bool(const char *s, bool *out);

/* ---- schema ----------------------------------------------------------- */

typedef enum halo_field_type {
    HALO_F_BOOL,        /* bool */
    HALO_F_INT,         /* int64_t, bounds min/max */
    HALO_F_DOUBLE,      /* double, bounds min/max */
    HALO_F_STRING,      /* char * (malloc'd; NULL when unset and no default) */
    HALO_F_DURATION,    /* int64_t nanoseconds, bounds in ns */
    HALO_F_SIZE,        /* int64_t bytes, bounds in bytes */
    HALO_F_ENUM,        /* int: index into enum_values */
    HALO_F_ENDPOINT,    /* char *: "host:port" (validated) */
    HALO_F_STRLIST,     /* halo_strlist */
    HALO_F_SECTION,     /* nested map: sub schema, fields at offset + their
                           own offsets; present flag (bool) at present_offset */
    HALO_F_PASSTHROUGH, /* halo_kvlist: every key starting with `key`
                           ("rdkafka.") as prefix-stripped name -> text;
                           values of secret names (core/secret.h:
                           rdkafka.sasl.password) are secrets as below */
    HALO_F_SECRET,      /* char *, like STRING, but a secret (API key,
                           password, hash key): its value is registered
                           with halo_secret_register (so every config error
                           and scrubbed library message shows "***"
                           instead), never quoted in an error, and its
                           default is not shown by describe */
} halo_field_type;

typedef struct halo_strlist {
    char **items;
    size_t n;
} halo_strlist;

typedef struct halo_kvlist {
    char **keys;
    char **values;
    size_t n;
} halo_kvlist;

typedef struct halo_field {
    const char *key;
    halo_field_type type;
    size_t offset;   /* into the config struct */
    const char *def; /* default, in config syntax; NULL: zero/NULL */
    double min;      /* bounds for INT/DOUBLE/DURATION/SIZE when min < max */
    double max;
    const char *const *enum_values; /* ENUM: NULL-terminated */
    const struct halo_field *sub;   /* SECTION: {NULL}-terminated */
    size_t present_offset;          /* SECTION: offset of a bool set when
                                       the key is present; 0: no flag */
    const char *description;
} halo_field;

/* Fill cfg from section (a MAP or NULL for "all defaults"): defaults first,
 * then the section's keys. Every problem is added to errs with its
 * location, prefixed by `where` ("exporters.sqlite"). Returns false when any
 * error was added. cfg must be zeroed by the caller. */
bool halo_config_apply(const halo_field *schema, const halo_node *section,
                       void *cfg, const char *where, halo_errlist *errs);
/* Free the strings and lists a schema put into cfg. */
void halo_config_release(const halo_field *schema, void *cfg);

/* Print a schema as "key  type  default  description" lines (for --help
 * and docs). */
void halo_config_describe(const halo_field *schema, const char *indent,
                          void *file /* FILE * */);

#endif
