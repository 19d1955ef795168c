/*
 * test_registry.c -- every built-in component is linked and well formed.
 *
 * Each expected type must be found under its kind, with the parts the
 * service relies on.
 */
#include "core/component.h"
#include "harness.h"

TEST(every_component_is_registered)
{
    static const struct {
        halo_kind kind;
        const char *type;
    } want[] = {
        {HALO_RECEIVER, "otlp"},          {HALO_PROCESSOR, "agent_identity"},
        {HALO_PROCESSOR, "batch"},        {HALO_PROCESSOR, "memory_limiter"},
        {HALO_EXPORTER, "sqlite"},        {HALO_EXPORTER, "debug"},
        {HALO_EXTENSION, "health_check"}, {HALO_EXTENSION, "metrics"},
        {HALO_RECEIVER, "kafka"},         {HALO_EXPORTER, "kafka"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const halo_component_def *d =
            halo_component_find(want[i].kind, want[i].type);
        if (!d)
            fprintf(stderr, "  missing %s %s\n", halo_kind_name(want[i].kind),
                    want[i].type);
        CHECK(d != NULL);
        CHECK(d->schema != NULL);
        CHECK(d->cfg_size > 0);
        CHECK(d->create != NULL);
        if (d->kind == HALO_PROCESSOR || d->kind == HALO_EXPORTER)
            CHECK(d->consume != NULL);
    }
    for (size_t i = 0; i < halo_component_defs_n; i++)
        CHECK(halo_component_defs[i] != NULL);
}
