/*
 * redaction.h -- the redaction processor: secrets are removed from spans
 * before any exporter sees them (issue 8). Exposed for tests and for code
 * that wants the same rules outside a pipeline.
 *
 * Value matching is analyzer/redact.h's redactor (built-in detectors, the
 * user's extra patterns, secret keys); this processor walks the span model
 * (span, event, link and resource attributes, nested arrays and kvlists,
 * the status message and the derived fields of DESIGN §5) and replaces what
 * the redactor finds, either by a mask token or by a keyed hash. See
 * redaction.c for the design and processors/README.md for the user
 * documentation. The component itself is halo_processor_redaction.
 */
#ifndef HALO_REDACTION_H
#define HALO_REDACTION_H

#include "core/batch.h"
#include "core/component.h"
#include "core/config.h"
#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { HALO_REDACT_MASK = 0, HALO_REDACT_HASH = 1 };

/* The config struct its schema fills. */
typedef struct halo_redaction_cfg {
    halo_strlist blocked_keys;   /* values under these keys are removed */
    halo_strlist blocked_values; /* more POSIX EREs */
    halo_strlist allowed_keys;   /* when set: only these attributes kept */
    bool defaults;               /* built-in detectors and secret keys */
    bool typed;                  /* "[REDACTED:email]" */
    int action;                  /* HALO_REDACT_* */
    char *hash_key;              /* 32 hex digits; action hash */
} halo_redaction_cfg;

/* The schema (processors.redaction in halo.yaml). */
extern const halo_field halo_redaction_schema[];

/* The prepared, read-only state; safe to share between threads. */
typedef struct halo_redaction halo_redaction;

/* What one apply did. */
typedef struct halo_redaction_stats {
    size_t redactions;    /* values (or parts of values) replaced */
    size_t spans;         /* spans with at least one change */
    size_t dropped_attrs; /* attributes removed by allowed_keys */
} halo_redaction_stats;

/* Compile cfg. where ("processors.redaction") prefixes error messages: a bad
 * pattern is HALO_EINVAL "processors.redaction.blocked_values[1]: invalid
 * regular expression ..."; action hash without a valid hash_key (nor
 * $HALO_REDACTION_HASH_KEY) is HALO_EINVAL too. */
halo_status halo_redaction_new(const halo_redaction_cfg *cfg, const char *where,
                               halo_redaction **out, halo_err *err);
void halo_redaction_free(halo_redaction *rd);

/* Redact every span of b in place. New strings are allocated in each
 * span's chunk arena (a chunk without one gets a fresh arena). When memory
 * runs out, a value that could not be rewritten becomes a static mask
 * token: nothing is ever left unredacted. stats may be NULL. */
void halo_redaction_apply(const halo_redaction *rd, halo_batch *b,
                          halo_redaction_stats *stats);

/* SipHash-2-4 of data[0..len) under the 16-byte key (little-endian words,
 * as in the reference implementation). */
uint64_t halo_siphash24(const uint8_t key[16], const void *data, size_t len);

/* The component (bottom of redaction.c). */
extern const halo_component_def halo_processor_redaction;

#endif
