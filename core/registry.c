/*
 * registry.c -- every built-in component type, and halo_emit().
 *
 * The definitions live at the bottom of each component's file; this table
 * is the one place that lists them.
 */
#include "component.h"

#include <string.h>

#define HALO_DEF(name) extern const halo_component_def name

HALO_DEF(halo_receiver_otlp);
HALO_DEF(halo_receiver_kafka);
HALO_DEF(halo_processor_agent_identity);
HALO_DEF(halo_processor_batch);
HALO_DEF(halo_processor_memory_limiter);
HALO_DEF(halo_processor_redaction);
HALO_DEF(halo_exporter_sqlite);
HALO_DEF(halo_exporter_postgres);
HALO_DEF(halo_exporter_debug);
HALO_DEF(halo_exporter_kafka);
HALO_DEF(halo_extension_health_check);
HALO_DEF(halo_extension_metrics);

const halo_component_def *const halo_component_defs[] = {
    &halo_receiver_otlp,          &halo_processor_agent_identity,
    &halo_processor_batch,        &halo_processor_memory_limiter,
    &halo_exporter_sqlite,        &halo_exporter_debug,
    &halo_extension_health_check, &halo_extension_metrics,
    &halo_receiver_kafka,         &halo_exporter_kafka,
    &halo_exporter_postgres,      &halo_processor_redaction,
};
const size_t halo_component_defs_n =
    sizeof halo_component_defs / sizeof *halo_component_defs;

const halo_component_def *halo_component_find(halo_kind kind, const char *type)
{
    for (size_t i = 0; i < halo_component_defs_n; i++) {
        const halo_component_def *d = halo_component_defs[i];
        if (!d)
            continue;
        if (d->kind == kind && strcmp(d->type, type) == 0)
            return d;
    }
    return NULL;
}

const char *halo_kind_name(halo_kind kind)
{
    switch (kind) {
    case HALO_RECEIVER:
        return "receiver";
    case HALO_PROCESSOR:
        return "processor";
    case HALO_EXPORTER:
        return "exporter";
    case HALO_EXTENSION:
        return "extension";
    }
    return "component";
}

halo_status halo_emit(halo_component *self, halo_batch *b)
{
    if (self->n_next == 0) {
        halo_batch_done(b, HALO_EUNSUPPORTED, "no downstream consumer");
        return HALO_EUNSUPPORTED;
    }
    halo_status first = HALO_OK;
    /* clones first: the original goes last since consume may free it */
    for (size_t i = 1; i < self->n_next; i++) {
        halo_batch *c = halo_batch_clone(b);
        if (!c) {
            for (size_t k = 0; k < b->n_acks; k++)
                halo_ack_fail(b->acks[k], HALO_ERETRY,
                              "out of memory cloning a batch");
            if (first == HALO_OK)
                first = HALO_ERETRY;
            continue;
        }
        halo_component *n = self->next[i];
        halo_status st = n->def->consume(n, c);
        if (st != HALO_OK && first == HALO_OK)
            first = st;
    }
    halo_component *n = self->next[0];
    halo_status st = n->def->consume(n, b);
    return first != HALO_OK ? first : st;
}
