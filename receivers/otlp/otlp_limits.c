/*
 * otlp_limits.c -- the limits section of the OTLP receiver (otlp_limits.h).
 */
#include "otlp_limits.h"

#include <stddef.h>

const halo_field otlp_limits_schema[] = {
    {.key = "max_spans_per_request",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_limits_cfg, max_spans_per_request),
     .def = "100000",
     .min = 1,
     .max = 10000000,
     .description = "spans one Export may carry (more: the request is "
                    "refused with RESOURCE_EXHAUSTED / 413)"},
    {.key = "max_attributes_per_span",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_limits_cfg, max_attributes_per_span),
     .def = "1024",
     .min = 1,
     .max = 1000000,
     .description = "attributes kept per span, event and link (the rest "
                    "are dropped and counted)"},
    {.key = "max_attribute_value_length",
     .type = HALO_F_SIZE,
     .offset = offsetof(otlp_limits_cfg, max_attribute_value_length),
     .def = "1MiB",
     .min = 64,
     .max = 1024.0 * 1024.0 * 1024.0,
     .description = "longest string or bytes attribute value kept (longer: "
                    "cut, a marker appended, counted)"},
    {.key = NULL},
};
