/*
 * component.h -- receivers, processors, exporters and extensions.
 *
 * A component type is declared once, as a const halo_component_def at the
 * bottom of its file (Fluent Bit / Collector factory style): its kind, type
 * name, config schema and lifecycle functions. The service creates instances
 * from halo.yaml ("type" or "type/name"), fills their config struct from the
 * schema, and wires them into pipelines:
 *
 *   receiver --emit--> processor --emit--> ... --emit--> exporter(s)
 *
 * Lifecycle: create (config is filled, nothing started) -> start (open
 * sockets/files/threads, return quickly) -> consume (processors, exporters;
 * any thread) -> shutdown (stop accepting, drain what is in flight; safe
 * without start, safe twice) -> destroy.
 */
#ifndef HALO_COMPONENT_H
#define HALO_COMPONENT_H

#include "batch.h"
#include "config.h"
#include "status.h"

typedef enum halo_kind {
    HALO_RECEIVER = 0,
    HALO_PROCESSOR,
    HALO_EXPORTER,
    HALO_EXTENSION,
} halo_kind;

typedef struct halo_component halo_component;

typedef struct halo_component_def {
    halo_kind kind;
    const char *type; /* "otlp", "batch", "sqlite" */
    const char *description;
    const halo_field *schema; /* {NULL}-terminated */
    size_t cfg_size;          /* the struct the schema fills */
    /* Allocate self->ctx from self->cfg. Nothing may be started yet. */
    halo_status (*create)(halo_component *self, halo_err *err);
    /* Open sockets, files, threads. NULL: nothing to start. */
    halo_status (*start)(halo_component *self, halo_err *err);
    /* Processors and exporters: take one reference of b (see batch.h).
     * Returns what became of it synchronously (HALO_OK: accepted; the final
     * answer always travels through halo_batch_done). */
    halo_status (*consume)(halo_component *self, halo_batch *b);
    /* Stop accepting and drain. Safe without start and safe twice. */
    void (*shutdown)(halo_component *self);
    /* Free ctx. */
    void (*destroy)(halo_component *self);
} halo_component_def;

struct halo_component {
    const halo_component_def *def;
    char *id;              /* "sqlite", "kafka/ingest" */
    char *log_prefix;      /* "exporter:sqlite" */
    void *cfg;             /* filled by the schema */
    void *ctx;             /* the component's state */
    halo_component **next; /* downstream consumers (processors: 1; receivers:
                              one per pipeline they feed) */
    size_t n_next;
    struct halo_service *svc;
    /* Its section of the configuration, for errors found at create (valid
     * while the service is being built only). */
    const struct halo_node *cfg_node;
};

/* Pass b to every downstream consumer (one reference each; consumers after
 * the first get a clone so processors may change spans). Takes the caller's
 * reference. Returns the first synchronous refusal, else HALO_OK. */
halo_status halo_emit(halo_component *self, halo_batch *b);

/* The registry of every built-in component type. */
const halo_component_def *halo_component_find(halo_kind kind, const char *type);
const char *halo_kind_name(halo_kind kind); /* "receiver", ... */
/* Every built-in def. */
extern const halo_component_def *const halo_component_defs[];
extern const size_t halo_component_defs_n;

#endif
